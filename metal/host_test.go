package metal

import "testing"

// TestKernelsCompileHost compiles kernels.metal as C++ (g++, testdata/mslhost/emu.h standing in
// for metal_stdlib, warnings as errors: the host emulation's build) even in -short runs: CI
// catches C++-level mistakes in the kernels without a Mac. Metal's compiler on a Mac is the real
// check.
func TestKernelsCompileHost(t *testing.T) {
	path, names := emulator(t)
	t.Logf("%s: %d kernels", path, len(names))
}
