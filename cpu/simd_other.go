//go:build !amd64 || purego

package cpu

// availableSIMD lists the kernel sets this machine can run: the pure-Go one.
func availableSIMD() []*simd { return []*simd{&genericSIMD} }
