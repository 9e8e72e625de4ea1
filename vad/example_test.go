package vad_test

import (
	"fmt"

	"github.com/verbatimhq/verbatim/cpu"
	"github.com/verbatimhq/verbatim/vad"
)

// Speech probabilities of 32 ms frames become padded segments in seconds.
func ExampleSegmentsFromProbs() {
	var probs []float32
	for i := range 60 {
		p := float32(0.05)
		if i >= 10 && i < 30 {
			p = 0.95 // 0.32 s .. 0.96 s
		}
		probs = append(probs, p)
	}
	segs, err := vad.SegmentsFromProbs(probs, vad.DefaultOptions())
	if err != nil {
		panic(err)
	}
	for _, s := range segs {
		fmt.Printf("%.2f-%.2f\n", s.Start, s.End)
	}
	// Output:
	// 0.29-0.99
}

// The embedded model on the CPU backend, fed in pieces as a long recording would be.
func ExampleModel_NewStream() {
	b, err := cpu.New(cpu.Options{Threads: 1})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	m, err := vad.Default(b)
	if err != nil {
		panic(err)
	}
	defer m.Close()
	s := m.NewStream()
	defer s.Close()
	silence := make([]float32, 1000)
	var probs []float32
	for range 3 {
		p, err := s.Push(silence)
		if err != nil {
			panic(err)
		}
		probs = append(probs, p...)
	}
	p, err := s.Flush()
	if err != nil {
		panic(err)
	}
	probs = append(probs, p...)
	fmt.Println(len(probs), "frames; speech:", probs[0] >= 0.5)
	// Output:
	// 6 frames; speech: false
}
