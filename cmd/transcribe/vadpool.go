package main

import (
	"runtime"

	"github.com/verbatimhq/verbatim/cpu"
	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/vad"
)

// openVADs opens n copies of the VAD, each on a CPU backend of one thread: Silero's ops are too
// small to share out (a pass over 10 minutes took 4.0 s on one thread here, 5.5 s on two, before
// its convolutions were grouped; about 0.7 s on one since, BenchmarkStream -cpu 1), and the
// copies run the first passes of several files at once (pipeline.Runner.AddVAD). It returns them
// with the function that closes them.
func openVADs(n int) ([]*vad.Model, func(), error) {
	var vs []*vad.Model
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	for range n {
		vb, err := cpu.New(cpu.Options{Threads: 1})
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		closers = append(closers, func() { vb.Close() })
		v, err := vad.Default(vb)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		closers = append(closers, func() { v.Close() })
		vs = append(vs, v)
	}
	return vs, closeAll, nil
}

// vadCopies is how many VAD first passes a runner on b runs at once: with a GPU, all the cores
// but two (at most 16), which the driver and the decoders need: the batches wait for the first
// passes of the files they start (on 32 files of 10 minutes the CLI's gather phase, which
// includes that wait, was 6.2 of its 55.6 s with 8 copies on an H100 machine's 16 cores, the
// device idle); on the CPU one, beside the transcription that uses the cores.
func vadCopies(b tensor.Backend) int {
	if b.Name() == "cpu" {
		return 1
	}
	return max(1, min(16, runtime.NumCPU()-2))
}
