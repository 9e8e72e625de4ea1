//go:build !amd64 || purego

package cpu

// availableSIMD lists the kernel sets this machine can run: the pure-Go one.
func availableSIMD() []*simd { return []*simd{&genericSIMD} }

// cvtF16SIMD converts nothing: the caller's scalar loop does it all.
func cvtF16SIMD(dst *float32, src *uint16, n int) int { return 0 }

// cvtF32F16SIMD converts nothing: the caller's scalar loop does it all.
func cvtF32F16SIMD(dst *uint16, src *float32, n int) int { return 0 }

// pause does nothing: the pool's polling loops have no hint instruction here.
func pause(n int) {}
