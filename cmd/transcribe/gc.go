package main

import (
	"os"
	"runtime/debug"

	"github.com/verbatimhq/verbatim/tensor"
)

// gcPercent is the garbage collector's GOGC for every command, unless GOGC is set. Go's default
// of 100 lets the heap grow to twice what is live before collecting, and the CPU backend's live
// heap is large and almost all pointer-free (activations, caches, packed operands), so a
// transcription's peak resident memory was mostly garbage waiting for a collection (base, 47 s of
// audio: 150 MB live, 260 MB before each collection). A collection marks only the small
// pointerful part, a few milliseconds however large the buffers, so collecting when the heap
// has grown by a tenth costs little: mini on 2 minutes of audio collects 145 times instead of 70
// (a few milliseconds of CPU each, no change in wall time that the run-to-run noise shows) and
// peaks at 128-132 MB instead of 143-145 MB.
//
// With a GPU backend the weights, activations and caches are in the device's memory (or, on a
// Mac, mapped from the file), the heap is small, and a decoding's steps allocate (beam search's
// candidates, token lists) at a pace that a GOGC of 10 turns into a collection every few steps
// on the critical path between them: gcFor puts Go's default back there.
const gcPercent = 10

func init() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

// gcFor sets GOGC for the backend that opened: Go's default of 100 for a GPU (gcPercent's
// comment), gcPercent for the CPU; unless GOGC is set.
func gcFor(b tensor.Backend) {
	if os.Getenv("GOGC") != "" {
		return
	}
	if b.Name() == "cpu" {
		debug.SetGCPercent(gcPercent)
	} else {
		debug.SetGCPercent(100)
	}
}
