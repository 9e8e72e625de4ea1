//go:build race

package cpu

// raceDetector: this is a -race build. The race detector sees only the Go heap's memory, so
// mutable buffers (AllocExplicit's tensors, the packed operands) stay in the heap, where it
// checks the ops' workers; weight copies, read only, are mapped as always.
const raceDetector = true
