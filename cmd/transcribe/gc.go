package main

import (
	"os"
	"runtime/debug"
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
const gcPercent = 10

func init() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}
