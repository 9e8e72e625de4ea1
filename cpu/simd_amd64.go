//go:build amd64 && !purego

package cpu

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// pause runs the PAUSE instruction n times (n >= 1), the pool's polling hint.
func pause(n int)

//go:noescape
func kern12x32(k int, a, b, c *float32, ldc int, acc bool)

//go:noescape
func kern6x16(k int, a, b, c *float32, ldc int, acc bool)

//go:noescape
func dot4AVX512(k int, x, w *float32, ldw int, out *float32)

//go:noescape
func dot4AVX2(k int, x, w *float32, ldw int, out *float32)

//go:noescape
func dot4F16AVX512(k int, x *float32, w *uint16, ldw int, out *float32)

//go:noescape
func dot4F16AVX2(k int, x *float32, w *uint16, ldw int, out *float32)

//go:noescape
func gemvF16AVX512(k int, x *float32, w *uint16, ldw int, out *float32, n int, acc bool)

//go:noescape
func gemvF16R2AVX512(k int, x *float32, ldx int, w *uint16, ldw int, out *float32, ldo, n int, acc bool)

//go:noescape
func gemvF16R3AVX512(k int, x *float32, ldx int, w *uint16, ldw int, out *float32, ldo, n int, acc bool)

//go:noescape
func gemvF16R4AVX512(k int, x *float32, ldx int, w *uint16, ldw int, out *float32, ldo, n int, acc bool)

//go:noescape
func gemvF16R5AVX512(k int, x *float32, ldx int, w *uint16, ldw int, out *float32, ldo, n int, acc bool)

//go:noescape
func dotF16R2AVX512(k int, x *float32, ldx int, w *uint16, ldw int, out *float32, ldo, n int, acc bool)

//go:noescape
func dotF16R3AVX512(k int, x *float32, ldx int, w *uint16, ldw int, out *float32, ldo, n int, acc bool)

//go:noescape
func dotF16R4AVX512(k int, x *float32, ldx int, w *uint16, ldw int, out *float32, ldo, n int, acc bool)

//go:noescape
func dotF16R5AVX512(k int, x *float32, ldx int, w *uint16, ldw int, out *float32, ldo, n int, acc bool)

//go:noescape
func gemvF16AVX2(k int, x *float32, w *uint16, ldw int, out *float32, n int, acc bool)

//go:noescape
func gemvQ8_0AVX2(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, n int)

//go:noescape
func gemvQ5_0AVX2(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, n int)

//go:noescape
func gemvQ5_1AVX2(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, n int)

//go:noescape
func gemvQ4_0AVX2(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, n int)

// avx2Q are the quantized matrix-vector kernels. They are AVX2 (32 weights of a block fill one
// YMM register) on AVX-512 machines too: 512-bit registers would hold two blocks with their two
// scales, which costs more shuffling than it saves while decoding is bound by memory.
var avx2Q = [4]qgemv{gemvQ8_0AVX2, gemvQ5_0AVX2, gemvQ5_1AVX2, gemvQ4_0AVX2}

//go:noescape
func gemvQ8_0AVX2M2(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ8_0AVX2M3(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ8_0AVX2M4(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ8_0AVX2M5(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ5_0AVX2M2(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ5_0AVX2M3(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ5_0AVX2M4(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ5_0AVX2M5(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ4_0AVX2M2(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ4_0AVX2M3(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ4_0AVX2M4(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ4_0AVX2M5(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ5_1AVX2M2(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ5_1AVX2M3(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ5_1AVX2M4(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ5_1AVX2M5(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

// avx2QM are the AVX2 quantized kernels for 2 to 5 activation rows (as vnniQM: each weight
// block unpacked once for all rows), for processors without AVX-512 VNNI.
var avx2QM = [4][maxQRows + 1]qgemvm{
	{2: gemvQ8_0AVX2M2, 3: gemvQ8_0AVX2M3, 4: gemvQ8_0AVX2M4, 5: gemvQ8_0AVX2M5},
	{2: gemvQ5_0AVX2M2, 3: gemvQ5_0AVX2M3, 4: gemvQ5_0AVX2M4, 5: gemvQ5_0AVX2M5},
	{2: gemvQ5_1AVX2M2, 3: gemvQ5_1AVX2M3, 4: gemvQ5_1AVX2M4, 5: gemvQ5_1AVX2M5},
	{2: gemvQ4_0AVX2M2, 3: gemvQ4_0AVX2M3, 4: gemvQ4_0AVX2M4, 5: gemvQ4_0AVX2M5},
}

//go:noescape
func gemvQ8_0VNNI(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, n int)

//go:noescape
func gemvQ5_0VNNI(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, n int)

//go:noescape
func gemvQ5_1VNNI(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, n int)

//go:noescape
func gemvQ4_0VNNI(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, n int)

// vnniQ are the quantized kernels with AVX-512 VNNI (one VPDPBUSD per block), used by the
// avx512 set where the processor has it.
var vnniQ = [4]qgemv{gemvQ8_0VNNI, gemvQ5_0VNNI, gemvQ5_1VNNI, gemvQ4_0VNNI}

//go:noescape
func gemvQ8_0VNNI2(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ8_0VNNI3(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ8_0VNNI4(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ8_0VNNI5(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ5_0VNNI2(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ5_0VNNI3(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ5_0VNNI4(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ5_0VNNI5(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ4_0VNNI2(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ4_0VNNI3(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ4_0VNNI4(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ4_0VNNI5(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ5_1VNNI2(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ5_1VNNI3(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ5_1VNNI4(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

//go:noescape
func gemvQ5_1VNNI5(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)

// vnniQM are the quantized kernels with AVX-512 VNNI for 2 to 5 activation rows at once
// (qgemvm, by format and row count), where every weight block is unpacked once for all of them:
// beam search's rows.
var vnniQM = [4][maxQRows + 1]qgemvm{
	{2: gemvQ8_0VNNI2, 3: gemvQ8_0VNNI3, 4: gemvQ8_0VNNI4, 5: gemvQ8_0VNNI5},
	{2: gemvQ5_0VNNI2, 3: gemvQ5_0VNNI3, 4: gemvQ5_0VNNI4, 5: gemvQ5_0VNNI5},
	{2: gemvQ5_1VNNI2, 3: gemvQ5_1VNNI3, 4: gemvQ5_1VNNI4, 5: gemvQ5_1VNNI5},
	{2: gemvQ4_0VNNI2, 3: gemvQ4_0VNNI3, 4: gemvQ4_0VNNI4, 5: gemvQ4_0VNNI5},
}

//go:noescape
func dequantQ8_0AVX512(dst *float32, src *byte, nb int)

//go:noescape
func dequantQ5_0AVX512(dst *float32, src *byte, nb int)

//go:noescape
func dequantQ4_0AVX512(dst *float32, src *byte, nb int)

// avx512Deq are the dequantizing kernels of GEMM packing (q5_1, whose minimum would need a
// second rounding step to match, stays in Go).
var avx512Deq = [4]func(dst *float32, src *byte, nb int){dequantQ8_0AVX512, dequantQ5_0AVX512, nil, dequantQ4_0AVX512}

func hasVNNI() bool {
	return cpu.X86.HasAVX512VNNI && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512BW
}

//go:noescape
func cvtF16AVX512(dst *float32, src *uint16, n int)

//go:noescape
func cvtF16AVX2(dst *float32, src *uint16, n int)

//go:noescape
func expSumAVX512(x *float32, n int, m float32) float32

//go:noescape
func maxAVX512(x *float32, n int) float32

//go:noescape
func geluAVX512(dst, x *float32, n int)

//go:noescape
func wsumAVX512(out *float32, d int, p *float32, n int, v *float32, ldv int)

//go:noescape
func wsumF16AVX512(out *float32, d int, p *float32, n int, v *uint16, ldv int)

//go:noescape
func wsumF16R2AVX512(out *float32, ldo, d int, p *float32, ldp, n int, v *uint16, ldv int)

//go:noescape
func wsumF16R3AVX512(out *float32, ldo, d int, p *float32, ldp, n int, v *uint16, ldv int)

//go:noescape
func wsumF16R4AVX512(out *float32, ldo, d int, p *float32, ldp, n int, v *uint16, ldv int)

//go:noescape
func wsumF16R5AVX512(out *float32, ldo, d int, p *float32, ldp, n int, v *uint16, ldv int)

//go:noescape
func wsumF16AVX2(out *float32, d int, p *float32, n int, v *uint16, ldv int)

//go:noescape
func cvtF32F16AVX512(dst *uint16, src *float32, n int)

//go:noescape
func cvtF32F16AVX2(dst *uint16, src *float32, n int)

//go:noescape
func softmaxCols32AVX512(st *float32, n int, inv *float32)

func softmaxCols16(st *float32, n int, inv *float32) {
	softmaxColsGeneric(unsafe.Slice(st, n*16), 16, unsafe.Slice(inv, 16))
}

var avx512SIMD = simd{
	name: "avx512", mr: 12, nr: 32, kern: kern12x32,
	dot4: dot4AVX512, dotStep: 16,
	dot4h: dot4F16AVX512, gemvh: gemvF16AVX512,
	gemvhr: [maxRowsH + 1]gemvhRows{2: gemvF16R2AVX512, 3: gemvF16R3AVX512, 4: gemvF16R4AVX512, 5: gemvF16R5AVX512},
	dothr:  [maxRowsH + 1]gemvhRows{2: dotF16R2AVX512, 3: dotF16R3AVX512, 4: dotF16R4AVX512, 5: dotF16R5AVX512},
	expSum: expSumAVX512, expStep: 16,
	vmax: maxAVX512, gelu: geluAVX512, wsum: wsumAVX512, vecStep: 16,
	wsumh: wsumF16AVX512, hStep: 16,
	wsumhr:      [maxRowsH + 1]wsumhRows{2: wsumF16R2AVX512, 3: wsumF16R3AVX512, 4: wsumF16R4AVX512, 5: wsumF16R5AVX512},
	softmaxCols: softmaxCols32AVX512,
	gemvq:       avx2Q,
	gemvqm:      avx2QM,
}

var avx2SIMD = simd{
	name: "avx2", mr: 6, nr: 16, kern: kern6x16,
	dot4: dot4AVX2, dotStep: 8,
	dot4h: dot4F16AVX2, gemvh: gemvF16AVX2,
	expSum: expSumGeneric, expStep: 1,
	vmax: vmaxGeneric, gelu: geluGeneric, wsum: wsumGeneric, vecStep: 1,
	wsumh: wsumF16AVX2, hStep: 8,
	softmaxCols: softmaxCols16,
	gemvq:       avx2Q,
	gemvqm:      avx2QM,
}

func hasAVX512() bool { return cpu.X86.HasAVX512F }
func hasAVX2() bool   { return cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C }

// availableSIMD lists the kernel sets this machine can run, best first.
func availableSIMD() []*simd {
	var s []*simd
	if hasAVX512() {
		if cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL {
			avx512SIMD.dequant = avx512Deq
		}
		switch {
		case hasVNNI():
			avx512SIMD.gemvq = vnniQ
			avx512SIMD.gemvqm = vnniQM
		case !hasAVX2():
			avx512SIMD.gemvq = genericQ
			avx512SIMD.gemvqm = [4][maxQRows + 1]qgemvm{}
		}
		s = append(s, &avx512SIMD)
	}
	if hasAVX2() {
		s = append(s, &avx2SIMD)
	}
	return append(s, &genericSIMD)
}

// cvtF16SIMD converts the first n/step*step values of src into dst with the active kernel set
// and returns how many it converted (0 for the pure-Go set). The direct calls keep dst and src
// from escaping, so callers may convert into stack arrays.
func cvtF16SIMD(dst *float32, src *uint16, n int) int {
	switch active {
	case &avx512SIMD:
		n = n / 16 * 16
		cvtF16AVX512(dst, src, n)
	case &avx2SIMD:
		n = n / 8 * 8
		cvtF16AVX2(dst, src, n)
	default:
		return 0
	}
	return n
}

// cvtF32F16SIMD rounds the first n/step*step values of src to binary16 into dst with the active
// kernel set and returns how many it converted (0 for the pure-Go set).
func cvtF32F16SIMD(dst *uint16, src *float32, n int) int {
	switch active {
	case &avx512SIMD:
		n = n / 16 * 16
		cvtF32F16AVX512(dst, src, n)
	case &avx2SIMD:
		n = n / 8 * 8
		cvtF32F16AVX2(dst, src, n)
	default:
		return 0
	}
	return n
}
