package cuda

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/verbatimhq/verbatim/tensor"
)

func u64(p uint64) uint64       { return p }
func i32(v int) uint64          { return uint64(uint32(int32(v))) }
func f32(v float32) uint64      { return uint64(math.Float32bits(v)) }
func i64(v int) uint64          { return uint64(int64(v)) }
func dtc(t tensor.DType) uint64 { return uint64(t) } // kernel dtype code: 0 f32, 1 f16, 2 bf16

func fail(format string, args ...any) { panic(tensor.Errorf("cuda: "+format, args...)) }

// kernel records a launch of a compiled kernel. Arguments are 64-bit slots (ints and floats in
// the low bytes), copied into the worker's parameter block at launch.
func (be *Backend) kernel(name string, grid, block [3]uint32, shmem uint32, args ...uint64) {
	k, ok := be.fn[name]
	if !ok || k.params != len(args) {
		fail("%s: launched with %d arguments, declared with %d (known: %v)", name, len(args), k.params, ok && k.params >= 0)
	}
	f := k.f
	if be.g.on {
		be.sign(name, []uint64{uint64(f), uint64(grid[0]), uint64(grid[1]), uint64(grid[2]),
			uint64(block[0]), uint64(block[1]), uint64(block[2]), uint64(shmem)})
		be.sign("args", args)
	}
	be.push(name, func() error {
		copy(be.args[:], args)
		return be.l.check(name, be.l.drv.cuLaunchKernel(f, grid[0], grid[1], grid[2], block[0], block[1], block[2],
			shmem, be.stream, unsafe.Pointer(&be.params[0]), 0))
	})
}

// grid1 is a grid-stride launch shape for n elements.
func (be *Backend) grid1(n int) [3]uint32 {
	b := (n + 255) / 256
	b = max(1, min(b, be.sms*32))
	return [3]uint32{uint32(b), 1, 1}
}

var block256 = [3]uint32{256, 1, 1}

// operand is one GEMM input or output: device address, CUDA data type, leading dimension and
// batch stride (elements).
type operand struct {
	p      uint64
	dt     int32
	ld     int
	stride int
}

func cudaType(dt tensor.DType) int32 {
	switch dt {
	case tensor.F32:
		return cudaR32F
	case tensor.F16:
		return cudaR16F
	case tensor.BF16:
		return cudaR16BF
	}
	panic(&tensor.Error{Msg: "cuda: GEMM on " + dt.String(), Err: tensor.ErrNotImplemented})
}

// gemm records C[b] = alpha * op(A[b]) x op(B[b]) for row-major matrices (A is [M, K] or [K, M]
// with ta, B is [K, N] or [N, K] with tb, C is [M, N]), f32 accumulation. cuBLAS is column-major,
// so it computes C^T = op(B)^T op(A)^T.
func (be *Backend) gemm(label string, ta, tb bool, m, n, k, batch int, alpha float32, a, b, c operand) {
	be.gemmBeta(label, ta, tb, m, n, k, batch, alpha, 0, a, b, c)
}

// gemmBeta is gemm with C = alpha * op(A) op(B) + beta * C.
func (be *Backend) gemmBeta(label string, ta, tb bool, m, n, k, batch int, alpha, beta float32, a, b, c operand) {
	opA, opB := int32(cublasOpN), int32(cublasOpN)
	if tb {
		opA = cublasOpT
	}
	if ta {
		opB = cublasOpT
	}
	be.enqueueSig(label, func() error {
		al, bt := alpha, beta
		return cublasCheck("cublasGemmStridedBatchedEx", be.l.blas.gemmSBEx(be.blas, opA, opB, int32(n), int32(m), int32(k),
			unsafe.Pointer(&al), b.p, b.dt, int32(b.ld), int64(b.stride), a.p, a.dt, int32(a.ld), int64(a.stride),
			unsafe.Pointer(&bt), c.p, c.dt, int32(c.ld), int64(c.stride), int32(batch), cublasCompute32F, cublasGemmDefault))
	}, uint64(opA), uint64(opB), uint64(m), uint64(n), uint64(k), uint64(batch), bits(alpha), bits(beta),
		a.p, uint64(a.dt), uint64(a.ld), uint64(a.stride), b.p, uint64(b.dt), uint64(b.ld), uint64(b.stride),
		c.p, uint64(c.dt), uint64(c.ld), uint64(c.stride))
}

// scratch is a temporary device block for one op; it goes back to the cache at once, which is
// safe because everything runs in order on one stream.
func (be *Backend) scratch(bytes int) uint64 {
	p := be.malloc(bytes)
	be.release(p)
	return p
}

func (be *Backend) f32Act(what string, ts ...*tensor.Tensor) {
	for _, t := range ts {
		be.buf(t)
		if t.DType != tensor.F32 {
			fail("%s: %v is not an F32 activation", what, t)
		}
	}
}

func floatWeight(what string, t *tensor.Tensor) {
	switch t.DType {
	case tensor.F32, tensor.F16, tensor.BF16:
	default:
		panic(&tensor.Error{Msg: fmt.Sprintf("cuda: %s: weight dtype %s", what, t.DType), Err: tensor.ErrNotImplemented})
	}
}

func checkInt32(what string, n int) {
	if n >= math.MaxInt32 {
		fail("%s: %d elements is more than one launch handles", what, n)
	}
}

// widen returns an F32 copy (scratch) of a 16-bit weight, for Precise mode.
func (be *Backend) widen(w *tensor.Tensor) uint64 {
	n := w.Len()
	p := be.scratch(4 * n)
	be.kernel("k_cvt", be.grid1(n), block256, 0, u64(p), 0, u64(ptr(w)), dtc(w.DType), i64(n))
	return p
}

// Epilogues of a Linear (see tensor.FusedLinear).
const (
	epiNone = iota
	epiAdd  // dst += x w^T + bias
	epiGELU // dst = GELU(x w^T + bias)
)

// Linear: dst[r, n] = x[r, :] . w[n, :] + bias[n]. dst may be F16 (tensor.HalfKV).
func (be *Backend) Linear(dst, x, w, bias *tensor.Tensor) {
	be.linear("Linear", dst, x, w, bias, epiNone)
}

// LinearAdd: dst += x w^T + bias, the residual add in the same launch (small row counts) or as
// the GEMM's beta = 1 (large ones).
func (be *Backend) LinearAdd(dst, x, w, bias *tensor.Tensor) {
	be.linear("LinearAdd", dst, x, w, bias, epiAdd)
}

// LinearGELU: dst = GELU(x w^T + bias), bias and GELU in one pass after the GEMM (or in the same
// launch for small row counts).
func (be *Backend) LinearGELU(dst, x, w, bias *tensor.Tensor) {
	be.linear("LinearGELU", dst, x, w, bias, epiGELU)
}

// HalfKV reports that F16 keys and values are accepted (not in Precise mode).
func (be *Backend) HalfKV() bool { return !be.opts.Precise }

// HalfCaches reports that a decoder's self-attention caches may be F16 too, for 16-bit and
// quantized models (tensor.HalfCaches): half the memory (large-v3's are 147 MB a sequence in
// F32) and half the bytes each step's attention reads. Not with Options.Precise.
func (be *Backend) HalfCaches() bool { return !be.opts.Precise }

var _ tensor.HalfCaches = (*Backend)(nil)

func overlap(a, b *tensor.Tensor) bool {
	pa, pb := ptr(a), ptr(b)
	ea, eb := pa+uint64(a.Len()*elemSize(a.DType)), pb+uint64(b.Len()*elemSize(b.DType))
	return pa < eb && pb < ea
}

// linearMMAWarps is k_linear_mma's warps a block (LM_MAXW in kernels.cu): in BenchmarkSmallOps
// on an H100, 8 warps beat 4 at every size of large-v3's decoder (5 rows of fc2, K = 5120: 7.6
// against 12.6 us) and matched them on the LM head.
const linearMMAWarps = 8

// smallKernel is k_linear_small's kernel for rows rows: one, up to 4, or 8 a pass.
func smallKernel(rows int) string {
	switch {
	case rows == 1:
		return "k_linear_small1"
	case rows <= 4:
		return "k_linear_small4"
	}
	return "k_linear_small8"
}

func (be *Backend) linear(name string, dst, x, w, bias *tensor.Tensor, epi int) {
	// A packed x (the f16 output of a LinearGELU) is read in place by the f16 GEMM paths; a dst
	// that is packed and fully overwritten here is forgotten rather than widened.
	xPacked := be.packedExact(x) && w.DType == tensor.F16 && !be.opts.Precise && x.Rows() > be.gemvRows
	if epi != epiAdd && be.packedExact(dst) {
		if b, ok := x.Buf.(*buffer); ok && b.be == be && !overlap(dst, x) {
			delete(be.packed, ptr(dst))
		}
	}
	if _, ok := be.padOutExact(dst); ok && epi != epiAdd {
		if b, ok := x.Buf.(*buffer); ok && b.be == be && !overlap(dst, x) {
			be.dropPadOut(ptr(dst), ptr(dst)+1)
		}
	}
	be.pkHold = xPacked
	be.f32Act(name, x)
	be.pkHold = false
	be.buf(dst)
	xPacked = xPacked && be.packedExact(x) // unless dst overlapped it and widened it
	if dst.DType != tensor.F32 && !(dst.DType == tensor.F16 && epi == epiNone && !be.opts.Precise) {
		fail("%s: dst %v is not an F32 activation", name, dst)
	}
	be.buf(w)
	floatWeight(name, w)
	if w.Rank() != 2 {
		fail("%s: weight %v is not rank 2", name, w)
	}
	n, k := w.Dim(0), w.Dim(1)
	if x.Dim(-1) != k {
		fail("%s: x %v against weight %v", name, x, w)
	}
	rows := x.Rows()
	if dst.Dim(-1) != n || dst.Rows() != rows || dst.Rank() != x.Rank() {
		fail("%s: dst %v for x %v and weight %v", name, dst, x, w)
	}
	if bias != nil {
		be.buf(bias)
		floatWeight(name+" bias", bias)
		if bias.Len() != n {
			fail("%s: bias %v for %d outputs", name, bias, n)
		}
	}
	if rows == 0 || n == 0 {
		return
	}
	if epi != epiNone && overlap(dst, x) {
		fail("%s: dst %v aliases x %v", name, dst, x)
	}
	checkInt32(name, rows*max(n, k))
	bp, bdt := uint64(0), uint64(0)
	if bias != nil {
		bp, bdt = ptr(bias), dtc(bias.DType)
	}
	gelu := uint64(0)
	if epi == epiGELU {
		gelu = 1
	}
	half := w.DType == tensor.F16 || w.DType == tensor.BF16
	if half && !be.opts.Precise && rows <= be.gemvRows && k%8 == 0 && ptr(x)%16 == 0 && ptr(w)%16 == 0 {
		resid := uint64(0)
		if epi == epiAdd {
			resid = ptr(dst)
		}
		if rows >= 2 && rows <= 8 && k%32 == 0 {
			// The tensor cores for 2 to 8 rows (x rounded to the weight's type, as the GEMMs
			// round it); one row, more than 8 (Options.SmallRows over 8) or another K take
			// k_linear_small, which keeps x in f32. BenchmarkSmallOps on an H100: 5 rows of
			// 1280 x 1280 in 3.5 us against 6.8, of the LM head in 51 us against 149; one row
			// of 1280 x 1280 in 3.3 us against 2.9.
			be.kernel("k_linear_mma", [3]uint32{uint32((n + 7) / 8), 1, 1}, [3]uint32{32 * linearMMAWarps, 1, 1}, 0,
				u64(ptr(dst)), dtc(dst.DType), u64(ptr(x)), u64(ptr(w)), dtc(w.DType), u64(bp), bdt, u64(resid), gelu,
				i32(rows), i32(n), i32(k))
			be.wrote(dst)
			return
		}
		be.kernel(smallKernel(rows), [3]uint32{uint32((n + 7) / 8), 1, 1}, block256, 0, u64(ptr(dst)), dtc(dst.DType), u64(ptr(x)),
			u64(ptr(w)), dtc(w.DType), u64(bp), bdt, u64(resid), gelu, i32(rows), i32(n), i32(k))
		be.wrote(dst)
		return
	}
	if be.useLt && half && !be.opts.Precise && be.linearViaLt(dst, x, w, bias, rows, n, k, epi, xPacked) {
		return
	}
	if xPacked { // not taken by cuBLASLt: widen x for the paths below
		be.unpack(x)
		xPacked = false
	}
	beta := float32(0)
	if epi == epiAdd {
		beta = 1
	}
	hit := be.shadowHit(x, w.DType) && !overlap(dst, x)
	be.keepShadow = hit
	c := operand{p: ptr(dst), dt: cudaType(dst.DType), ld: n}
	switch {
	case w.DType == tensor.F32:
		be.gemmBeta("gemm_f32", false, true, rows, n, k, 1, 1, beta,
			operand{p: ptr(x), dt: cudaR32F, ld: k}, operand{p: ptr(w), dt: cudaR32F, ld: k}, c)
	case be.opts.Precise:
		be.gemmBeta("gemm_f32", false, true, rows, n, k, 1, 1, beta,
			operand{p: ptr(x), dt: cudaR32F, ld: k}, operand{p: be.widen(w), dt: cudaR32F, ld: k}, c)
	default:
		// Round the activations to the weight's 16-bit type for a tensor-core GEMM, unless the op
		// that wrote x left an f16 copy of it.
		xh := be.sh.buf
		if !hit {
			xh = be.scratch(2 * rows * k)
			be.kernel("k_cvt", be.grid1(rows*k), block256, 0, u64(xh), dtc(w.DType), u64(ptr(x)), 0, i64(rows*k))
		}
		t := cudaType(w.DType)
		be.gemmBeta("gemm_f16", false, true, rows, n, k, 1, 1, beta, operand{p: xh, dt: t, ld: k}, operand{p: ptr(w), dt: t, ld: k}, c)
	}
	if bias != nil || epi == epiGELU {
		shadow := uint64(0)
		if epi == epiGELU && half && !be.opts.Precise {
			shadow = be.shadowBuf(rows * n)
		}
		nb := n
		be.kernel("k_epi", be.grid1(rows*n), block256, 0, u64(ptr(dst)), dtc(dst.DType), u64(ptr(dst)), dtc(dst.DType),
			u64(bp), bdt, i32(nb), gelu, 0, u64(shadow), i64(rows*n))
		be.keepShadow = false
		if shadow != 0 {
			be.setShadow(dst)
			return
		}
	}
	be.keepShadow = false
	be.wrote(dst)
}

// linearViaLt runs a Linear with a 16-bit weight as one cublasLtMatmul: the bias in the
// epilogue, the residual of LinearAdd as C with beta = 1. LinearGELU writes f16 (bias in the
// epilogue) into the first half of dst's buffer, applies the exact erf GELU there in place
// (k_gelu_h) and records dst as packed (packed.go): cuBLASLt's own GELU epilogue is the tanh
// approximation, up to 4.7e-4 off, 3.8 times the fast path's tolerance at x = -2.84. It reports
// false, recording nothing, where cuBLASLt has no plan or a pointer is not 256-byte aligned.
func (be *Backend) linearViaLt(dst, x, w, bias *tensor.Tensor, rows, n, k, epi int, xPacked bool) bool {
	if ptr(dst)%ltAlign != 0 || ptr(w)%ltAlign != 0 || (xPacked && ptr(x)%ltAlign != 0) {
		return false
	}
	if xPacked && w.DType != tensor.F16 {
		return false
	}
	if epi == epiGELU && (w.DType != tensor.F16 || dst.DType != tensor.F32 || overlap(dst, x)) {
		return false
	}
	ddt := dst.DType
	if epi == epiGELU {
		ddt = tensor.F16
	}
	// The GEMM input: the packed x, the shadow, or a k_cvt scratch.
	var xh uint64
	hit := false
	switch {
	case xPacked:
		xh = ptr(x)
	case be.shadowHit(x, w.DType) && !overlap(dst, x):
		xh, hit = be.sh.buf, true
	}
	bp, ok := be.ltBias(bias, ddt)
	if !ok {
		return false
	}
	// Unless Options.NoPadN, an output count that is not a multiple of 8 (the LM head's 51,866)
	// runs on a zero-padded copy of the weight into a block of n8 columns, which dst's readers
	// find through be.padOut (padout.go).
	wp, n8 := ptr(w), n
	if !be.opts.NoPadN && n%8 != 0 && epi == epiNone && bp == 0 && ddt == tensor.F32 && !overlap(dst, x) {
		if p := be.paddedWeight(w, (n+7)&^7); p != 0 {
			wp, n8 = p, (n+7)&^7
		}
	}
	key := ltKey{rows: rows, n: n8, k: k, wdt: cudaType(w.DType), ddt: cudaType(ddt), bias: bp != 0, accum: epi == epiAdd}
	if be.ltPlanFor(key) == nil {
		return false
	}
	be.keepShadow = hit
	xh = be.ltInput(xh, x, w.DType, rows, k)
	if n8 != n { // dst's values stay in tmp until something other than a pick reads them (padout.go)
		tmp := be.malloc(rows * n8 * 4)
		be.linearLt(tmp, cudaR32F, xh, wp, w.DType, 0, rows, n8, k, false)
		be.padOut[ptr(dst)] = padOut{tmp: tmp, rows: rows, n: n, n8: n8}
	} else {
		be.linearLt(ptr(dst), cudaType(ddt), xh, wp, w.DType, bp, rows, n, k, epi == epiAdd)
	}
	be.keepShadow = false
	be.wrote(dst)
	if epi == epiGELU {
		m := rows * n
		be.kernel("k_gelu_h", be.grid1((m+7)/8), block256, 0, u64(ptr(dst)), i64(m))
		be.packed[ptr(dst)] = m
	}
	return true
}

// LinearRows (tensor.RowsLinear): a decoder step's new keys or values (x [B, 1, K], one token
// a sequence) projected by one cublasLtMatmul straight into row at of each sequence's f16 cache
// (dst [B, T, N]: the output's rows T*N elements apart), the bias in the epilogue, instead of a
// GEMM into a scratch and k_setrows (two launches a projection, 64 a step of large-v3). The
// product is rounded to f16 once, as k_setrows rounds the scratch's f32, but the bias is added
// as its f16 copy. It reports false, doing nothing, where the cuBLASLt path of Linear would not
// run (few rows, another weight type, Precise, lt=off), for F32 caches, with kvrows=copy, or
// where cuBLASLt has no plan or a pointer is not 256-byte aligned.
func (be *Backend) LinearRows(dst *tensor.Tensor, at int, x, w, bias *tensor.Tensor) bool {
	if be.opts.NoKVRows || !be.useLt || be.opts.Precise || w.DType != tensor.F16 || dst.DType != tensor.F16 {
		return false
	}
	if dst.Rank() != 3 || x.Rank() != 3 || w.Rank() != 2 || x.Dim(1) != 1 || x.Dim(0) != dst.Dim(0) ||
		x.Dim(2) != w.Dim(1) || dst.Dim(2) != w.Dim(0) || at < 0 || at >= dst.Dim(1) || (bias != nil && bias.Len() != w.Dim(0)) {
		return false
	}
	rows, n, k := x.Dim(0), w.Dim(0), w.Dim(1)
	if rows <= be.gemvRows || n == 0 || k == 0 || be.packedExact(x) {
		return false
	}
	be.f32Act("LinearRows", x)
	be.buf(dst)
	be.buf(w)
	p := ptr(dst) + uint64(2*at*n)
	if p%ltAlign != 0 || ptr(w)%ltAlign != 0 {
		return false
	}
	checkInt32("LinearRows", rows*dst.Dim(1)*n)
	bp, ok := be.epilogueBias("LinearRows", bias, tensor.F16)
	if !ok {
		return false
	}
	key := ltKey{rows: rows, n: n, k: k, wdt: cudaR16F, ddt: cudaR16F, bias: bp != 0, ldd: dst.Dim(1) * n}
	plan := be.ltPlanFor(key)
	if plan == nil {
		return false
	}
	xh := be.ltStepInput(x, w.DType, rows, k)
	be.ltMatmul(plan, p, xh, ptr(w), bp, rows, n, k, false)
	be.keepShadow = false
	be.wrote(dst)
	return true
}

var _ tensor.RowsLinear = (*Backend)(nil)

// FusesQKV (tensor.QKVRows) reports whether LinearQKV may run: where LinearRows would, unless
// Options.NoQKV.
func (be *Backend) FusesQKV() bool {
	return !be.opts.NoQKV && !be.opts.NoKVRows && be.useLt && !be.opts.Precise
}

// LinearQKV (tensor.QKVRows): a decoder step's queries, keys and values (x [B, 1, K], one token
// a sequence) by one cublasLtMatmul of the fused weight w [3N, K], bias in the epilogue, into an
// f32 scratch [B, 3N], which k_qkv_rows splits: the queries to q (F32), the keys and values
// rounded to f16 into row at of each sequence's caches. Three GEMMs of 320 rows and 1,280
// outputs (large-v3's step) take about 9 us each on an H100, bound by their latency, not their
// bytes or the tensor cores (docs/performance.md); one of 3,840 outputs and the split take less.
// The queries are the same f32 values as Linear's; the keys and values are rounded once, with
// the bias added in f32 (LinearRows adds the bias's f16 copy). It reports false, doing nothing,
// where LinearRows would, where q is not F32 or a row of a destination is not 16- (q) or 8-byte
// (caches) aligned, or where cuBLASLt has no plan.
func (be *Backend) LinearQKV(q, kc, vc *tensor.Tensor, at int, x, w, bias *tensor.Tensor) bool {
	if !be.FusesQKV() || w.DType != tensor.F16 || kc.DType != tensor.F16 || vc.DType != tensor.F16 || q.DType != tensor.F32 {
		return false
	}
	if kc.Rank() != 3 || x.Rank() != 3 || w.Rank() != 2 || x.Dim(1) != 1 || !tensor.SameShape(kc.Shape, vc.Shape) {
		return false
	}
	rows, n, k := x.Dim(0), kc.Dim(2), x.Dim(2)
	if kc.Dim(0) != rows || w.Dim(0) != 3*n || w.Dim(1) != k || q.Len() != rows*n || at < 0 || at >= kc.Dim(1) ||
		(bias != nil && bias.Len() != 3*n) || n%4 != 0 {
		return false
	}
	if rows <= be.gemvRows || k == 0 || be.packedExact(x) {
		return false
	}
	be.f32Act("LinearQKV", q, x)
	be.buf(kc)
	be.buf(vc)
	be.buf(w)
	kp, vp := ptr(kc)+uint64(2*at*n), ptr(vc)+uint64(2*at*n)
	if ptr(w)%ltAlign != 0 || ptr(q)%16 != 0 || kp%8 != 0 || vp%8 != 0 {
		return false
	}
	checkInt32("LinearQKV", rows*kc.Dim(1)*n)
	bp, ok := be.epilogueBias("LinearQKV", bias, tensor.F32)
	if !ok {
		return false
	}
	plan := be.ltPlanFor(ltKey{rows: rows, n: 3 * n, k: k, wdt: cudaR16F, ddt: cudaR32F, bias: bp != 0})
	if plan == nil {
		return false
	}
	out := be.malloc(4 * rows * 3 * n) // held until the split is queued: ltInput's scratch is another block
	xh := be.ltStepInput(x, w.DType, rows, k)
	be.ltMatmul(plan, out, xh, ptr(w), bp, rows, 3*n, k, false)
	be.kernel("k_qkv_rows", be.grid1(rows*3*n/4), block256, 0, u64(ptr(q)), u64(kp), u64(vp), u64(out),
		i32(rows), i32(n), i64(kc.Dim(1)*n))
	be.keepShadow = false
	be.release(out)
	be.wrote(q)
	be.wrote(kc)
	be.wrote(vc)
	return true
}

var _ tensor.QKVRows = (*Backend)(nil)

// ltAlign is the alignment in bytes cuBLASLt's plans take for every pointer (the heuristic is
// asked with aligned placeholders): a Linear whose output, weight or bias is not so aligned
// takes another path.
const ltAlign = 256

// epilogueBias checks an op's bias (nil for none) and returns it as ltBias does.
func (be *Backend) epilogueBias(what string, bias *tensor.Tensor, dt tensor.DType) (uint64, bool) {
	if bias != nil {
		be.buf(bias)
		floatWeight(what+" bias", bias)
	}
	return be.ltBias(bias, dt)
}

// ltBias returns bias in dtype dt for a cuBLASLt epilogue (0 for none) and whether that copy is
// aligned (ltAlign). Converting it leaves the shadow valid.
func (be *Backend) ltBias(bias *tensor.Tensor, dt tensor.DType) (uint64, bool) {
	if bias == nil {
		return 0, true
	}
	be.keepShadow = true // a bias conversion does not touch the shadow
	bp := be.biasAs(bias, dt)
	be.keepShadow = false
	return bp, bp%ltAlign == 0
}

// ltStepInput is ltInput for LinearRows and LinearQKV: the shadow where it holds x, with
// keepShadow set so that the ops the caller queues next leave it valid (the caller clears it),
// else x converted into a scratch.
func (be *Backend) ltStepInput(x *tensor.Tensor, wdt tensor.DType, rows, k int) uint64 {
	if be.shadowHit(x, wdt) {
		be.keepShadow = true
		return be.sh.buf
	}
	return be.ltInput(0, x, wdt, rows, k)
}

// ltInput returns the 16-bit GEMM input for x with a weight of dtype wdt: xh where the caller
// has one (the packed x, the shadow), else x converted into a scratch by k_cvt.
func (be *Backend) ltInput(xh uint64, x *tensor.Tensor, wdt tensor.DType, rows, k int) uint64 {
	if xh != 0 {
		return xh
	}
	xh = be.scratch(2 * rows * k)
	be.kernel("k_cvt", be.grid1(rows*k), block256, 0, u64(xh), dtc(wdt), u64(ptr(x)), 0, i64(rows*k))
	return xh
}

// MatMul: dst[b] = alpha * op(a[b]) x op(b[b]), f32.
func (be *Backend) MatMul(dst, a, b *tensor.Tensor, transA, transB bool, alpha float32) {
	be.f32Act("MatMul", dst, a, b)
	if a.Rank() < 2 || a.Rank() > 3 || b.Rank() < 2 || b.Rank() > 3 || b.Rank() > a.Rank() {
		fail("MatMul: ranks of %v and %v", a, b)
	}
	batch := 1
	if a.Rank() == 3 {
		batch = a.Dim(0)
	}
	if b.Rank() == 3 && b.Dim(0) != batch {
		fail("MatMul: batch of %v and %v", a, b)
	}
	m, k := a.Dim(-2), a.Dim(-1)
	if transA {
		m, k = k, m
	}
	kb, n := b.Dim(-2), b.Dim(-1)
	if transB {
		kb, n = n, kb
	}
	if kb != k {
		fail("MatMul: inner dimensions of %v and %v (transA=%v, transB=%v)", a, b, transA, transB)
	}
	want := []int{m, n}
	if a.Rank() == 3 {
		want = []int{batch, m, n}
	}
	if !tensor.SameShape(dst.Shape, want) {
		fail("MatMul: dst %v, want %v", dst, want)
	}
	if m == 0 || n == 0 || batch == 0 {
		return
	}
	lda, ldb := k, n
	if transA {
		lda = m
	}
	if transB {
		ldb = k
	}
	sb := 0
	if b.Rank() == 3 {
		sb = k * n
	}
	be.gemm("matmul", transA, transB, m, n, k, batch, alpha,
		operand{p: ptr(a), dt: cudaR32F, ld: lda, stride: m * k},
		operand{p: ptr(b), dt: cudaR32F, ld: ldb, stride: sb},
		operand{p: ptr(dst), dt: cudaR32F, ld: n, stride: m * n})
}

// Conv1D by im2col and one strided-batched GEMM per call.
func (be *Backend) Conv1D(dst, x, w, bias *tensor.Tensor, stride, pad int) {
	be.f32Act("Conv1D", dst, x)
	be.buf(w)
	floatWeight("Conv1D", w)
	if w.Rank() != 3 {
		fail("Conv1D: weight %v is not [Cout, Cin, K]", w)
	}
	cout, cin, kw := w.Dim(0), w.Dim(1), w.Dim(2)
	batch := 1
	switch x.Rank() {
	case 2:
	case 3:
		batch = x.Dim(0)
	default:
		fail("Conv1D: input %v", x)
	}
	if x.Dim(-2) != cin {
		fail("Conv1D: input %v against weight %v", x, w)
	}
	if stride < 1 || pad < 0 {
		fail("Conv1D: stride %d, pad %d", stride, pad)
	}
	tin := x.Dim(-1)
	tout := (tin+2*pad-kw)/stride + 1
	want := []int{cout, tout}
	if x.Rank() == 3 {
		want = []int{batch, cout, tout}
	}
	if tout < 0 || !tensor.SameShape(dst.Shape, want) {
		fail("Conv1D: dst %v, want %v", dst, want)
	}
	if bias != nil {
		be.buf(bias)
		floatWeight("Conv1D bias", bias)
		if bias.Len() != cout {
			fail("Conv1D: bias %v for %d channels", bias, cout)
		}
	}
	if dst.Len() == 0 {
		return
	}
	ck := cin * kw
	ncol := batch * ck * tout
	checkInt32("Conv1D", ncol)
	colDT, wp := w.DType, ptr(w)
	if w.DType == tensor.F32 || be.opts.Precise {
		colDT = tensor.F32
	}
	// col is held until the GEMM is queued, so that the widened weight's scratch (released at
	// once) cannot be given the same block.
	col := be.malloc(ncol * elemSize(colDT))
	defer be.release(col)
	if colDT == tensor.F32 && w.DType != tensor.F32 {
		wp = be.widen(w)
	}
	be.kernel("k_im2col", be.grid1(ncol), block256, 0, u64(col), dtc(colDT), u64(ptr(x)),
		i32(cin), i32(tin), i32(kw), i32(stride), i32(pad), i32(tout), i64(ncol))
	t := cudaType(colDT)
	be.gemm("conv_gemm", false, false, cout, tout, ck, batch, 1,
		operand{p: wp, dt: t, ld: ck, stride: 0},
		operand{p: col, dt: t, ld: tout, stride: ck * tout},
		operand{p: ptr(dst), dt: cudaR32F, ld: tout, stride: cout * tout})
	if bias != nil {
		n := dst.Len()
		be.kernel("k_bias_mid", be.grid1(n), block256, 0, u64(ptr(dst)), u64(ptr(bias)), dtc(bias.DType), i32(cout), i32(tout), i64(n))
	}
}

// LayerNorm over the last dimension, one block per row.
func (be *Backend) LayerNorm(dst, x, gamma, beta *tensor.Tensor, eps float32) {
	be.layerNorm(dst, x, gamma, beta, eps, false)
}

// LayerNormHalf is LayerNorm for a result that only Linear reads (tensor.HalfOutputs): unless
// Options.NoHalfOut, over more rows than the small-row kernels take, only its f16 values are
// written, packed into dst's buffer, and the GEMMs read them in place (the f32 write and the
// shadow's copy spared).
func (be *Backend) LayerNormHalf(dst, x, gamma, beta *tensor.Tensor, eps float32) {
	be.layerNorm(dst, x, gamma, beta, eps, true)
}

// halfOut reports whether a result of rows rows that only Linear reads is written packed
// (LayerNormHalf, AttentionHalf).
func (be *Backend) halfOut(rows int) bool {
	return !be.opts.NoHalfOut && !be.opts.Precise && rows > be.gemvRows
}

// overwrites forgets the packed tensors that lie within t, which an op is about to write whole:
// their values are replaced, so nothing widens them first. Unlike forgetPacked (Discard) it
// keeps an entry that reaches past t: buf widens that one, as t's write covers only part of it.
func (be *Backend) overwrites(t *tensor.Tensor) {
	if len(be.packed) == 0 {
		return
	}
	p := ptr(t)
	e := p + uint64(t.Len()*elemSize(t.DType))
	for a, n := range be.packed {
		if a >= p && a+uint64(4*n) <= e {
			delete(be.packed, a)
		}
	}
}

// packedOut records dst, written as f16 into its own buffer's first half, as packed.
func (be *Backend) packedOut(dst *tensor.Tensor) {
	be.wrote(dst)
	be.packed[ptr(dst)] = dst.Len()
}

func (be *Backend) layerNorm(dst, x, gamma, beta *tensor.Tensor, eps float32, half bool) {
	half = half && !overlap(dst, x)
	if half {
		be.overwrites(dst)
	}
	be.f32Act("LayerNorm", dst, x)
	half = half && be.halfOut(x.Rows())
	be.buf(gamma)
	be.buf(beta)
	floatWeight("LayerNorm", gamma)
	floatWeight("LayerNorm", beta)
	c := x.Dim(-1)
	if dst.Len() != x.Len() || dst.Dim(-1) != c || gamma.Len() != c || beta.Len() != c {
		fail("LayerNorm: dst %v, x %v, gamma %v, beta %v", dst, x, gamma, beta)
	}
	rows := x.Rows()
	if rows == 0 || c == 0 {
		return
	}
	shadow, out := uint64(0), ptr(dst)
	switch {
	case half:
		shadow, out = ptr(dst), 0
	case !be.opts.Precise && rows > be.gemvRows:
		shadow = be.shadowBuf(rows * c)
	}
	be.kernel("k_layernorm", [3]uint32{uint32(rows), 1, 1}, block256, 0, u64(out), u64(ptr(x)),
		u64(ptr(gamma)), dtc(gamma.DType), u64(ptr(beta)), dtc(beta.DType), i32(c), f32(eps), u64(shadow))
	switch {
	case half:
		be.packedOut(dst)
	case shadow != 0:
		be.setShadow(dst)
	}
}

func (be *Backend) unary(name string, op int, dst, x *tensor.Tensor, s float32) {
	be.f32Act(name, dst, x)
	if dst.Len() != x.Len() {
		fail("%s: dst %v for x %v", name, dst, x)
	}
	n := x.Len()
	if n == 0 {
		return
	}
	be.kernel("k_unary", be.grid1(n), block256, 0, u64(ptr(dst)), u64(ptr(x)), i64(n), i32(op), f32(s))
}

// GELU (erf form), elementwise.
func (be *Backend) GELU(dst, x *tensor.Tensor) { be.unary("GELU", 0, dst, x, 0) }

// Sigmoid, elementwise.
func (be *Backend) Sigmoid(dst, x *tensor.Tensor) { be.unary("Sigmoid", 1, dst, x, 0) }

// Tanh, elementwise.
func (be *Backend) Tanh(dst, x *tensor.Tensor) { be.unary("Tanh", 2, dst, x, 0) }

// ReLU, elementwise.
func (be *Backend) ReLU(dst, x *tensor.Tensor) { be.unary("ReLU", 3, dst, x, 0) }

// Scale: dst = x * s.
func (be *Backend) Scale(dst, x *tensor.Tensor, s float32) { be.unary("Scale", 4, dst, x, s) }

// Sqrt, elementwise.
func (be *Backend) Sqrt(dst, x *tensor.Tensor) { be.unary("Sqrt", 5, dst, x, 0) }

// binary: dst = a (op) b with b broadcast over a's leading dimensions; b may be a 16-bit weight.
func (be *Backend) binary(name string, dst, a, b *tensor.Tensor, op int) {
	be.f32Act(name, dst, a)
	be.buf(b)
	floatWeight(name, b)
	if dst.Len() != a.Len() {
		fail("%s: dst %v for a %v", name, dst, a)
	}
	bs := b.Shape
	for len(bs) > 1 && bs[0] == 1 && len(bs) > len(a.Shape) {
		bs = bs[1:]
	}
	if len(bs) > len(a.Shape) || !tensor.SameShape(bs, a.Shape[len(a.Shape)-len(bs):]) {
		if !(name == "bias" && b.Len() == a.Dim(-1)) {
			fail("%s: %v is not a trailing part of %v", name, b, a)
		}
	}
	n, nb := a.Len(), b.Len()
	if n == 0 {
		return
	}
	checkInt32(name, n)
	be.kernel("k_binary", be.grid1(n), block256, 0, u64(ptr(dst)), u64(ptr(a)), u64(ptr(b)), dtc(b.DType),
		i64(n), i32(nb), i32(op))
}

// Add: dst = a + b (b broadcast).
func (be *Backend) Add(dst, a, b *tensor.Tensor) { be.binary("Add", dst, a, b, 0) }

// Mul: dst = a * b (b broadcast).
func (be *Backend) Mul(dst, a, b *tensor.Tensor) { be.binary("Mul", dst, a, b, 1) }

// Softmax over the last dimension, one block per row.
func (be *Backend) Softmax(dst, x *tensor.Tensor) {
	be.f32Act("Softmax", dst, x)
	c := x.Dim(-1)
	if dst.Len() != x.Len() || dst.Dim(-1) != c {
		fail("Softmax: dst %v for x %v", dst, x)
	}
	rows := x.Rows()
	if rows == 0 || c == 0 {
		return
	}
	be.kernel("k_softmax", [3]uint32{uint32(rows), 1, 1}, block256, 0, u64(ptr(dst)), u64(ptr(x)), i32(c))
}

func (be *Backend) attnCheck(what string, q, k *tensor.Tensor, heads, kvLen int) (b, tq, tk, d int) {
	if q.Rank() != 3 || k.Rank() != 3 {
		fail("%s: q %v, k %v are not [B, T, H*D]", what, q, k)
	}
	b, tq, tk = q.Dim(0), q.Dim(1), k.Dim(1)
	hd := q.Dim(2)
	if heads <= 0 || hd%heads != 0 || k.Dim(0) != b || k.Dim(2) != hd {
		fail("%s: q %v, k %v with %d heads", what, q, k, heads)
	}
	if kvLen < 1 || kvLen > tk {
		fail("%s: kvLen %d of %d keys", what, kvLen, tk)
	}
	d = hd / heads
	if d > 128 && !(d == 64) {
		panic(&tensor.Error{Msg: fmt.Sprintf("cuda: %s: head size %d > 128", what, d), Err: tensor.ErrNotImplemented})
	}
	if kvLen > 12000 {
		panic(&tensor.Error{Msg: fmt.Sprintf("cuda: %s: %d keys", what, kvLen), Err: tensor.ErrNotImplemented})
	}
	return b, tq, tk, d
}

// Attention: fused tensor-core flash attention for head size 64 and at least 16 query rows,
// otherwise (and with Options.Precise) one exact f32 block per query row and head.
func (be *Backend) Attention(dst, q, k, v *tensor.Tensor, heads, kvLen int, scale float32, causal bool) {
	be.attention(dst, q, k, v, heads, kvLen, scale, causal, false)
}

// AttentionHalf is Attention for a result that only Linear reads (tensor.HalfOutputs): unless
// Options.NoHalfOut, where the f16 flash kernel runs (f16 keys and values, over more rows than
// the small-row kernels take), only its f16 values are written, packed into dst's buffer.
func (be *Backend) AttentionHalf(dst, q, k, v *tensor.Tensor, heads, kvLen int, scale float32, causal bool) {
	be.attention(dst, q, k, v, heads, kvLen, scale, causal, true)
}

func (be *Backend) attention(dst, q, k, v *tensor.Tensor, heads, kvLen int, scale float32, causal, half bool) {
	half = half && !overlap(dst, q) && !overlap(dst, k) && !overlap(dst, v)
	if half {
		be.overwrites(dst)
	}
	be.f32Act("Attention", dst, q)
	kvdt := be.kvAct("Attention", k, v)
	b, tq, tk, d := be.attnCheck("Attention", q, k, heads, kvLen)
	if !tensor.SameShape(v.Shape, k.Shape) || !tensor.SameShape(dst.Shape, q.Shape) {
		fail("Attention: dst %v, q %v, k %v, v %v", dst, q, k, v)
	}
	if b == 0 || tq == 0 {
		return
	}
	cz := 0
	if causal {
		cz = 1
	}
	if d == 64 && tq >= 16 && !be.opts.Precise {
		wide := kvdt == 1 && be.flashF16 && vec16(k, v)
		shadow, out := uint64(0), ptr(dst)
		switch {
		case wide && half && be.halfOut(b*tq):
			shadow, out = ptr(dst), 0 // the f16 values alone, packed in dst
		case b*tq > be.gemvRows:
			shadow = be.shadowBuf(dst.Len())
		}
		grid := [3]uint32{uint32((tq + 127) / 128), uint32(heads), uint32(b)}
		if wide {
			// 4 warps of 32 rows a 128-row block
			be.kernel("k_attn_flash_w", grid, [3]uint32{128, 1, 1}, 0, u64(out), u64(ptr(q)), u64(ptr(k)), u64(ptr(v)),
				i32(tq), i32(tk), i32(heads), i32(kvLen), f32(scale), i32(cz), u64(shadow))
			if out == 0 {
				be.packedOut(dst)
				return
			}
		} else {
			be.kernel("k_attn_flash", grid, [3]uint32{256, 1, 1}, 0,
				u64(ptr(dst)), u64(ptr(q)), u64(ptr(k)), u64(ptr(v)), i32(tq), i32(tk), i32(heads), i32(kvLen), f32(scale), i32(cz),
				i32(vec4(d, k, v)), kvdt, u64(shadow))
		}
		if shadow != 0 {
			be.setShadow(dst)
		}
		return
	}
	if d == 64 && tq < 16 && !be.opts.Precise && be.splitAttn && vec16(k, v) {
		be.attnSplit(dst, q, k, v, b, tq, tk, heads, kvLen, scale, cz, kvdt)
		return
	}
	be.attnRows(dst, q, k, v, b, tq, tk, heads, d, kvLen, scale, cz, 0, kvdt)
}

// vec16 reports whether K and V rows allow 16-byte loads of every 8 f16 (or 4 f32) values.
func vec16(ts ...*tensor.Tensor) bool {
	for _, t := range ts {
		if ptr(t)%16 != 0 || t.Dim(-1)%(16/elemSize(t.DType)) != 0 {
			return false
		}
	}
	return true
}

// attnSplitChunk is the number of keys per block of k_attn_split: 256 (the kernel's most), halved
// while the launch would have fewer than two blocks per SM, down to 32.
func attnSplitChunk(rows, kvLen, sms int) int {
	chunk := 256
	for chunk > 32 && rows*((kvLen+chunk-1)/chunk) < 2*sms {
		chunk /= 2
	}
	return chunk
}

// attnGroups are the group kernels' sizes (k_attn_group{2,4,5,8}_h), smallest first, and
// attnGroupKernels their names.
var (
	attnGroups       = [...]int{2, 4, 5, 8}
	attnGroupKernels = [...]string{"k_attn_group2_h", "k_attn_group4_h", "k_attn_group5_h", "k_attn_group8_h"}
)

// attnGroup is the group kernel for tq query rows that read the same keys and values: the index
// in attnGroups of the smallest group of at least tq rows, or -1 (one row, or more than 8: the
// kernel per row).
func attnGroup(tq int) int {
	for i, g := range attnGroups {
		if tq > 1 && tq <= g {
			return i
		}
	}
	return -1
}

// attnSplit: split-K decoding attention (head size 64): one block per (slice of chunk keys,
// query row and head, batch), then a combine unless one slice covers every key. Non-causal rows
// against f16 keys and values (cross-attention: a window's beams or candidates are its query
// rows) take one block per (slice, head, batch) for all the rows instead, so each key and value
// is read once for all of them.
func (be *Backend) attnSplit(dst, q, k, v *tensor.Tensor, b, tq, tk, heads, kvLen int, scale float32, causal int, kvdt uint64) {
	group := attnGroup(tq)
	if be.opts.AttnEach || causal != 0 || kvdt != 1 {
		group = -1
	}
	be.attnSplitAt(dst, q, k, v, 0, group, b, tq, tk, heads, kvLen, scale, causal, kvdt)
}

// attnSplitAt is attnSplit with the group kernel group (an index of attnGroups, or -1: the
// kernel per row) and, for the group kernel, the device table widx of each group's window (0:
// group i reads window i).
func (be *Backend) attnSplitAt(dst, q, k, v *tensor.Tensor, widx uint64, group, b, tq, tk, heads, kvLen int, scale float32, causal int, kvdt uint64) {
	rows := b * tq * heads
	blocks := rows // blocks per slice of keys
	if group >= 0 {
		blocks = b * heads
	}
	chunk := attnSplitChunk(blocks, kvLen, be.sms)
	splits := (kvLen + chunk - 1) / chunk
	shadow := uint64(0)
	if b*tq > be.gemvRows {
		shadow = be.shadowBuf(dst.Len())
	}
	part := uint64(0)
	if splits > 1 {
		part = be.scratch(4 * rows * splits * 66)
	}
	switch {
	case group >= 0:
		name := "k_attn_gmma_h" // any group size up to 8
		if be.opts.NoAttnMMA {
			name = attnGroupKernels[group]
		}
		be.kernel(name, [3]uint32{uint32(splits), uint32(heads), uint32(b)}, [3]uint32{128, 1, 1}, 0,
			u64(ptr(dst)), u64(part), u64(ptr(q)), u64(ptr(k)), u64(ptr(v)), u64(widx), i32(tq), i32(tk), i32(heads), i32(kvLen),
			f32(scale), i32(chunk), u64(shadow))
	default:
		kern := "k_attn_split_f"
		if kvdt == 1 {
			kern = "k_attn_split_h"
		}
		be.kernel(kern, [3]uint32{uint32(splits), uint32(tq * heads), uint32(b)}, [3]uint32{128, 1, 1}, 0,
			u64(ptr(dst)), u64(part), u64(ptr(q)), u64(ptr(k)), u64(ptr(v)), i32(tq), i32(tk), i32(heads), i32(kvLen),
			f32(scale), i32(causal), i32(chunk), u64(shadow))
	}
	if splits > 1 {
		be.kernel("k_attn_combine", [3]uint32{uint32(tq * heads), uint32(b), 1}, [3]uint32{64, 1, 1}, 0,
			u64(ptr(dst)), u64(part), i32(splits), i32(tq), i32(heads), u64(shadow))
	}
	if shadow != 0 {
		be.setShadow(dst)
	}
}

// AttendsWindows: the group kernels take 2 to 8 query rows of head size 64 against f16 keys and
// values (Options.AttnEach and Precise leave it to Attention).
func (be *Backend) AttendsWindows(g int, k *tensor.Tensor) bool {
	return attnGroup(g) >= 0 && k.DType == tensor.F16 && !be.opts.AttnEach && !be.opts.Precise && be.splitAttn
}

// AttentionWindows (tensor.WindowAttention): the group kernel with each group's window read from
// the table windows.
func (be *Backend) AttentionWindows(dst, q, k, v, windows *tensor.Tensor, heads, kvLen int, scale float32) {
	be.f32Act("AttentionWindows", dst, q)
	kvdt := be.kvAct("AttentionWindows", k, v)
	be.buf(windows)
	if q.Rank() != 3 || k.Rank() != 3 || !tensor.SameShape(v.Shape, k.Shape) || !tensor.SameShape(dst.Shape, q.Shape) ||
		q.Dim(2) != k.Dim(2) || windows.DType != tensor.I32 || windows.Len() != q.Dim(0) {
		fail("AttentionWindows: dst %v, q %v, k %v, v %v, windows %v", dst, q, k, v, windows)
	}
	b, g, tk := q.Dim(0), q.Dim(1), k.Dim(1)
	group := attnGroup(g)
	if !be.AttendsWindows(g, k) || heads <= 0 || q.Dim(2) != heads*64 || kvLen > tk || !vec16(k, v) {
		fail("AttentionWindows: %d rows a group, %d heads, k %v: no kernel", g, heads, k)
	}
	if b == 0 {
		return
	}
	be.attnSplitAt(dst, q, k, v, ptr(windows), group, b, g, tk, heads, kvLen, scale, 0, kvdt)
}

// vec4 reports whether K and V rows (head slices of d elements) are aligned for 4-element loads
// (16 bytes of f32, 8 of f16).
func vec4(d int, ts ...*tensor.Tensor) int {
	if d%4 != 0 {
		return 0
	}
	for _, t := range ts {
		if t != nil && (ptr(t)%uint64(4*elemSize(t.DType)) != 0 || t.Dim(-1)%4 != 0) {
			return 0
		}
	}
	return 1
}

// kvAct checks attention keys and values: F32, or F16 outside Precise mode (tensor.HalfKV), both
// of one dtype. It returns the kernel dtype code.
func (be *Backend) kvAct(what string, k, v *tensor.Tensor) uint64 {
	be.buf(k)
	if v != nil {
		be.buf(v)
		if v.DType != k.DType {
			fail("%s: k %v and v %v of different dtypes", what, k, v)
		}
	}
	switch {
	case k.DType == tensor.F32:
	case k.DType == tensor.F16 && !be.opts.Precise:
	default:
		fail("%s: k %v is not an F32 (or F16) activation", what, k)
	}
	return dtc(k.DType)
}

func (be *Backend) attnRows(out, q, k, v *tensor.Tensor, b, tq, tk, heads, d, kvLen int, scale float32, causal, probs int, kvdt uint64) {
	shmem := uint32(4 * (d + max(kvLen, 1024)))
	vp := uint64(0)
	if v != nil {
		vp = ptr(v)
	}
	be.kernel("k_attn_rows", [3]uint32{uint32(tq), uint32(heads), uint32(b)}, [3]uint32{256, 1, 1}, shmem,
		u64(ptr(out)), u64(ptr(q)), u64(ptr(k)), u64(vp), i32(tq), i32(tk), i32(heads), i32(d), i32(kvLen),
		f32(scale), i32(causal), i32(probs), i32(vec4(d, k, v)), kvdt)
}

// AttentionProbs writes the attention probabilities [B, H, Tq, kvLen] (exact f32 kernel).
func (be *Backend) AttentionProbs(probs, q, k *tensor.Tensor, heads, kvLen int, scale float32, causal bool) {
	be.f32Act("AttentionProbs", probs, q)
	kvdt := be.kvAct("AttentionProbs", k, nil)
	b, tq, tk, d := be.attnCheck("AttentionProbs", q, k, heads, kvLen)
	if !tensor.SameShape(probs.Shape, []int{b, heads, tq, kvLen}) {
		fail("AttentionProbs: probs %v, want [%d %d %d %d]", probs, b, heads, tq, kvLen)
	}
	if b == 0 || tq == 0 {
		return
	}
	cz := 0
	if causal {
		cz = 1
	}
	be.attnRows(probs, q, k, nil, b, tq, tk, heads, d, kvLen, scale, cz, 1, kvdt)
}

// Gather: dst[i, :] = table[ids[i], :]. The ids are copied now, so the caller may reuse them.
func (be *Backend) Gather(dst, table *tensor.Tensor, ids []int32) {
	be.f32Act("Gather", dst)
	be.buf(table)
	floatWeight("Gather", table)
	if table.Rank() != 2 {
		fail("Gather: table %v is not [N, C]", table)
	}
	rows, c := table.Dim(0), table.Dim(1)
	if !tensor.SameShape(dst.Shape, []int{len(ids), c}) {
		fail("Gather: dst %v for %d ids of %v", dst, len(ids), table)
	}
	for _, id := range ids {
		if id < 0 || int(id) >= rows {
			fail("Gather: id %d outside [0, %d)", id, rows)
		}
	}
	if len(ids) == 0 || c == 0 {
		return
	}
	dev := be.scratch(4 * len(ids))
	nb := uint64(4 * len(ids))
	if pin := be.graphPinned(unsafe.Slice((*byte)(unsafe.Pointer(&ids[0])), nb)); pin != nil {
		// Recording a graph: the ids go through the pinned input area, whose address the
		// graph keeps (the values are read when the copy runs, captured or replayed).
		be.enqueueSig("gather_ids", func() error {
			return be.l.check("cuMemcpyHtoDAsync", be.l.drv.cuMemcpyHtoDAsync(dev, pin, nb, be.stream))
		}, dev, uint64(uintptr(pin)), nb)
	} else {
		host := append([]int32(nil), ids...)
		be.enqueue("gather_ids", func() error {
			return be.l.check("cuMemcpyHtoDAsync", be.l.drv.cuMemcpyHtoDAsync(dev, unsafe.Pointer(&host[0]), nb, be.stream))
		})
	}
	n := dst.Len()
	be.kernel("k_gather", be.grid1(n), block256, 0, u64(ptr(dst)), u64(ptr(table)), dtc(table.DType), u64(dev), i32(c), i64(n))
}

// Copy converts between F32, F16 and BF16 (or copies I32 and equal types byte for byte).
func (be *Backend) Copy(dst, src *tensor.Tensor) {
	be.buf(dst)
	be.buf(src)
	if dst.Len() != src.Len() {
		fail("Copy: dst %v for src %v", dst, src)
	}
	n := src.Len()
	if n == 0 {
		return
	}
	if dst.DType == src.DType {
		dp, sp, nb := ptr(dst), ptr(src), uint64(n*elemSize(src.DType))
		be.enqueueSig("copy", func() error {
			return be.l.check("cuMemcpyDtoDAsync", be.l.drv.cuMemcpyDtoDAsync(dp, sp, nb, be.stream))
		}, dp, sp, nb)
		return
	}
	floatWeight("Copy", dst)
	floatWeight("Copy", src)
	be.kernel("k_cvt", be.grid1(n), block256, 0, u64(ptr(dst)), dtc(dst.DType), u64(ptr(src)), dtc(src.DType), i64(n))
}

// CopyRows is tensor.CopyRows in one launch (k_copy_rows): a table of the pairs' addresses and
// the rows goes up first, then every pair's rows are copied in 16-byte units where everything is
// aligned to them.
func (be *Backend) CopyRows(dst, src []*tensor.Tensor, dstRows, srcRows []int32, n int) {
	P, R := len(dst), len(dstRows)
	if P == 0 || R == 0 || n == 0 {
		return
	}
	if R > 65535 || P > 65535 {
		fail("CopyRows: %d rows of %d pairs", R, P)
	}
	es := elemSize(dst[0].DType)
	if es == 0 {
		fail("CopyRows: %v", dst[0].DType)
	}
	d0, s0 := dst[0], src[0]
	dStride, sStride := d0.Dim(1)*d0.Dim(2)*es, s0.Dim(1)*s0.Dim(2)*es
	rowBytes := n * d0.Dim(2) * es
	table := make([]byte, 16*P+8*R)
	align := uint64(dStride | sStride | rowBytes)
	for p := range dst {
		be.buf(dst[p])
		be.buf(src[p])
		dp, sp := ptr(dst[p]), ptr(src[p])
		binary.LittleEndian.PutUint64(table[16*p:], dp)
		binary.LittleEndian.PutUint64(table[16*p+8:], sp)
		align |= dp | sp
	}
	for i := range R {
		binary.LittleEndian.PutUint32(table[16*P+4*i:], uint32(dstRows[i]))
		binary.LittleEndian.PutUint32(table[16*P+4*(R+i):], uint32(srcRows[i]))
	}
	w := 2
	switch {
	case align%16 == 0:
		w = 16
	case align%4 == 0:
		w = 4
	}
	units := rowBytes / w
	dev := be.scratch(len(table))
	be.enqueue("copy_rows_table", func() error {
		return be.l.check("cuMemcpyHtoDAsync", be.l.drv.cuMemcpyHtoDAsync(dev, unsafe.Pointer(&table[0]), uint64(len(table)), be.stream))
	})
	gx := min((units+255)/256, 64)
	be.kernel("k_copy_rows", [3]uint32{uint32(gx), uint32(R), uint32(P)}, block256, 0,
		u64(dev), u64(dev+uint64(16*P)), i32(R), i64(units), i32(w), i64(dStride), i64(sStride))
}

var _ tensor.RowCopier = (*Backend)(nil)

// SetRows writes src [B, n, C] into rows [at, at+n) of dst [B, T, C]; an F16 dst (an attention
// cache, tensor.HalfCaches) gets src rounded once.
func (be *Backend) SetRows(dst *tensor.Tensor, at int, src *tensor.Tensor) {
	be.f32Act("SetRows", src)
	be.buf(dst)
	if dst.DType != tensor.F32 && (dst.DType != tensor.F16 || !be.HalfCaches()) {
		fail("SetRows: dst %v is not an F32 (or F16) activation", dst)
	}
	d3, s3 := dst.Shape, src.Shape
	if len(d3) == 2 {
		d3 = []int{1, d3[0], d3[1]}
	}
	if len(s3) == 2 {
		s3 = []int{1, s3[0], s3[1]}
	}
	if len(d3) != 3 || len(s3) != 3 || d3[0] != s3[0] || d3[2] != s3[2] {
		fail("SetRows: dst %v, src %v", dst, src)
	}
	if at < 0 || at+s3[1] > d3[1] {
		fail("SetRows: rows [%d, %d) of %v", at, at+s3[1], dst)
	}
	n := src.Len()
	if n == 0 {
		return
	}
	be.kernel("k_setrows", be.grid1(n), block256, 0, u64(ptr(dst)), dtc(dst.DType), u64(ptr(src)), i32(s3[1]), i32(s3[2]), i32(d3[1]), i32(at), i64(n))
}

// Transpose swaps the last two dimensions.
func (be *Backend) Transpose(dst, src *tensor.Tensor) {
	be.f32Act("Transpose", dst, src)
	r := src.Rank()
	if r < 2 || dst.Rank() != r {
		fail("Transpose: dst %v, src %v", dst, src)
	}
	m, n := src.Dim(-2), src.Dim(-1)
	if !tensor.SameShape(dst.Shape[:r-2], src.Shape[:r-2]) || dst.Dim(-2) != n || dst.Dim(-1) != m {
		fail("Transpose: dst %v for src %v", dst, src)
	}
	batch := tensor.Numel(src.Shape[:r-2])
	if src.Len() == 0 {
		return
	}
	be.kernel("k_transpose", [3]uint32{uint32((n + 31) / 32), uint32((m + 31) / 32), uint32(batch)}, [3]uint32{32, 8, 1}, 0,
		u64(ptr(dst)), u64(ptr(src)), i32(m), i32(n))
}

// LogMel computes log-mel windows on the device (tensor.LogMeler): k_logmel's blocks each take 16
// frames of a window (framing, periodic Hann window, a 400-point DFT and the filterbank, in f32),
// k_logmel_norm clamps every window at its maximum less 8 and scales it as the reference does.
// The values are the host's (whisper/mel, float64) within f32 rounding: TestLogMel.
func (be *Backend) LogMel(dst *tensor.Tensor, samples []float32, stride int, lens, sizes []int, pad int, filters *tensor.Tensor) {
	be.checkOpen()
	const hop, half, nBins, tf = 160, 200, 201, 16
	n := len(lens)
	if n == 0 {
		return
	}
	if dst.DType != tensor.F32 || len(dst.Shape) != 3 || dst.Shape[0] != n || filters.DType != tensor.F32 ||
		len(filters.Shape) != 2 || filters.Shape[0] != dst.Shape[1] || filters.Shape[1] != nBins || len(sizes) != n ||
		len(samples) < max(1, (n-1)*stride+lens[n-1]) || pad < 0 {
		panic(tensor.Errorf("cuda: log-mel of %d windows into %s%v, filters %s%v, %d samples of stride %d", n, dst.DType, dst.Shape,
			filters.DType, filters.Shape, len(samples), stride))
	}
	nMels, frames := dst.Shape[1], dst.Shape[2]
	// The frames whose maximum counts: those written and those the samples reach (whisper/mel's
	// HeadInto), and a frame of zeros where there is one among the rest.
	comp := 0
	params := make([]int32, 4*n)
	for i, l := range lens {
		total := (l + pad) / hop
		if l < 0 || l > stride || sizes[i] < 0 || sizes[i] > frames || sizes[i] > total {
			panic(tensor.Errorf("cuda: log-mel window %d: %d samples (stride %d), %d frames of %d", i, l, stride, sizes[i], frames))
		}
		live := min(total, (l+half+hop-1)/hop)
		c := max(sizes[i], live)
		zero := int32(0)
		if c < total {
			zero = 1
		}
		params[4*i], params[4*i+1], params[4*i+2], params[4*i+3] = int32(l), int32(sizes[i]), int32(c), zero
		comp = max(comp, c)
	}
	tiles := (comp + tf - 1) / tf
	if tiles == 0 {
		tiles = 1
	}
	x := be.upload(tensor.F32, unsafe.Pointer(&samples[0]), []int{min(len(samples), n*stride)})
	pp := be.upload(tensor.I32, unsafe.Pointer(&params[0]), []int{len(params)})
	raw := be.newTensor(tensor.F32, []int{n, nMels, tiles * tf})
	bmax := be.newTensor(tensor.F32, []int{n, tiles})
	be.kernel("k_logmel", [3]uint32{uint32(tiles), uint32(n), 1}, block256, 0, u64(ptr(raw)), u64(ptr(bmax)), u64(ptr(x)),
		i64(stride), u64(ptr(pp)), i32(pad), u64(ptr(filters)), i32(nMels), i32(tiles))
	be.kernel("k_logmel_norm", [3]uint32{uint32(n), 16, 1}, block256, 0, u64(ptr(dst)), u64(ptr(raw)), u64(ptr(bmax)), u64(ptr(pp)),
		i32(nMels), i32(tiles), i32(frames))
	be.wrote(dst)
	for _, t := range []*tensor.Tensor{x, pp, raw, bmax} {
		be.Free(t) // back to the cache: later ops on the stream reuse them after these kernels
	}
}
