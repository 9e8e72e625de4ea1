package whisper

import (
	"context"
	"io"

	"github.com/verbatimhq/verbatim/whisper/mel"
)

// Test helpers: a task decoded alone, token rows, and audio held in memory (the program reads
// every input as a stream).

// run decodes the window behind s, which must hold t.nGroup empty sequences.
func (t *decodeTask) run(s stepper) (*decodeResult, error) {
	res, err := decodeTasks(context.Background(), s, []*decodeTask{t})
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

func repeatRows(toks []int, n int) [][]int32 {
	row := make([]int32, len(toks))
	for i, v := range toks {
		row[i] = int32(v)
	}
	out := make([][]int32, n)
	for i := range out {
		out[i] = row
	}
	return out
}

// SampleSource returns an AudioSource reading samples in memory.
func SampleSource(samples []float32) AudioSource { return &sliceSource{s: samples} }

type sliceSource struct {
	s   []float32
	pos int
}

// Len is the number of samples.
func (s *sliceSource) Len() int { return len(s.s) }

func (s *sliceSource) Read(p []float32) (int, error) {
	n := copy(p, s.s[s.pos:])
	s.pos += n
	if s.pos == len(s.s) {
		return n, io.EOF
	}
	return n, nil
}

// hfWindow is the [nMels, 3000] features of samples zero-padded (or cut) to 30 s, as Hugging
// Face's WhisperFeatureExtractor computes them.
func hfWindow(samples []float32, nMels int) []float32 {
	buf := make([]float32, mel.ChunkSamples)
	copy(buf, samples)
	data, _ := mel.Compute(buf, nMels)
	return data
}
