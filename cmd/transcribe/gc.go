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
// has grown by a quarter costs little (see the commit that set it for figures).
const gcPercent = 25

func init() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}
