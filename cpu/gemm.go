package cpu

import (
	"math"
	"unsafe"

	"github.com/verbatimhq/verbatim/tensor"
)

// mat is a strided matrix view: element (i, j) is data[i*rs + j*cs], or the binary16 value
// h[i*rs + j*cs] when h is set (an F16 weight; data is then nil), or element i*rs + j*cs of the
// quantized blocks q (format qt, qrow bytes per weight row of qk elements) when q is set.
type mat struct {
	data   []float32
	rs, cs int
	h      []uint16
	q      []byte
	qt     tensor.DType
	qk     int
	qrow   int
}

func (m mat) at(i, j int) float32 {
	if m.h != nil {
		return tensor.F16ToF32(m.h[i*m.rs+j*m.cs])
	}
	if m.q != nil {
		e := i*m.rs + j*m.cs
		r, c := e/m.qk, e%m.qk
		bsz := m.qt.RowBytes(qBlock)
		off := r*m.qrow + c/qBlock*bsz
		var v [qBlock]float32
		dequant(m.qt, m.q[off:off+bsz], v[:])
		return v[c%qBlock]
	}
	return m.data[i*m.rs+j*m.cs]
}

// simd is a set of kernels for one instruction-set level.
type simd struct {
	name string
	// mr x nr is the register tile of kern.
	mr, nr int
	// kern computes the mr x nr tile c (row stride ldc) = (or += when acc) a * b, where a is a
	// packed panel a[p*mr+i] and b a packed panel b[p*nr+j], p < k.
	kern func(k int, a, b, c *float32, ldc int, acc bool)
	// dot4 sets out[r] = sum_p x[p] * w[r*ldw+p] for r < 4 and p < k, k a multiple of dotStep.
	dot4    func(k int, x, w *float32, ldw int, out *float32)
	dotStep int
	// dot4h is dot4 with binary16 weights w (same k and dotStep).
	dot4h func(k int, x *float32, w *uint16, ldw int, out *float32)
	// gemvh sets (or adds to, when acc) out[j] = sum_p x[p] * w[j*ldw+p] for j < n, binary16
	// weights w, n a positive multiple of 4 and k a positive multiple of dotStep.
	gemvh func(k int, x *float32, w *uint16, ldw int, out *float32, n int, acc bool)
	// gemvhr[r], where set (2 <= r <= maxRowsH), is gemvh for r rows of x at once (ldx floats
	// apart, their outputs ldo floats apart), n a positive multiple of 2: each weight is widened
	// once for all r rows, and every output is the same bits as gemvh's.
	gemvhr [maxRowsH + 1]gemvhRows
	// dothr[r] is gemvhr[r] with the bits of dot4h instead (its sums are reduced in another
	// order): the attention scores of r queries against the same F16 keys.
	dothr [maxRowsH + 1]gemvhRows
	// expSum sets x[i] = exp(x[i] - m) for i < n (a multiple of expStep) and returns the sum.
	expSum  func(x *float32, n int, m float32) float32
	expStep int
	// vmax returns the largest of x[:n], n a positive multiple of vecStep.
	vmax func(x *float32, n int) float32
	// gelu sets dst[i] = GELU(x[i]) for i < n, a multiple of vecStep.
	gelu func(dst, x *float32, n int)
	// wsum sets out[:d] = sum_{j<n} p[j] * v[j*ldv:][:d], d a multiple of vecStep.
	wsum    func(out *float32, d int, p *float32, n int, v *float32, ldv int)
	vecStep int
	// wsumh is wsum with binary16 rows v (F16 attention caches), d a multiple of hStep.
	wsumh func(out *float32, d int, p *float32, n int, v *uint16, ldv int)
	// wsumhr[r], where set (2 <= r <= maxRowsH), is wsumh for r rows of probabilities (ldp
	// floats apart, n >= 1) into r output rows (ldo floats apart) at once, d a multiple of
	// hStep: each value row is widened once for all r, and every output is wsumh's bits.
	wsumhr [maxRowsH + 1]wsumhRows
	hStep  int
	// softmaxCols normalizes the nr columns of an n x nr block (n >= 1) without dividing: each
	// column becomes exp(x - its max), and inv[j] is 1 / the column's sum.
	softmaxCols func(st *float32, n int, inv *float32)
	// gemvq are the quantized matrix-vector kernels for q8_0, q5_0, q5_1 and q4_0 (qIndex).
	gemvq [4]qgemv
	// gemvqm, where set, are those kernels for 2 to maxQRows activation rows at once (qgemvm),
	// by format and row count.
	gemvqm [4][maxQRows + 1]qgemvm
	// dequant, where set, writes the values of nb >= 1 blocks at src into dst[:32*nb], the same
	// bits as tensor.Dequantize (by qIndex; nil: dequant uses tensor.Dequantize).
	dequant [4]func(dst *float32, src *byte, nb int)
}

// gemvhRows is the type of simd.gemvhr's kernels.
type gemvhRows func(k int, x *float32, ldx int, w *uint16, ldw int, out *float32, ldo, n int, acc bool)

// wsumhRows is the type of simd.wsumhr's kernels.
type wsumhRows func(out *float32, ldo, d int, p *float32, ldp, n int, v *uint16, ldv int)

// maxRowsH is the most activation rows one gemvhr kernel takes.
const maxRowsH = 5

// Cache blocking. kcBlock x nr floats of B (one micro-panel) stay in L1 while the mcBlock rows
// of A (mcBlock x kcBlock floats) stay in L2.
const (
	kcBlock = 256
	mcBlock = 96
	ncBlock = 256
)

var genericSIMD = simd{
	name: "go", mr: 4, nr: 8, kern: kernGeneric,
	dot4: dot4Generic, dotStep: 1,
	dot4h: dot4F16Generic, gemvh: gemvF16Generic,
	expSum: expSumGeneric, expStep: 1,
	vmax: vmaxGeneric, gelu: geluGeneric, wsum: wsumGeneric, vecStep: 1,
	wsumh: wsumF16Generic, hStep: 1,
	softmaxCols: softmaxCols8,
	gemvq:       genericQ,
}

func softmaxCols8(st *float32, n int, inv *float32) {
	softmaxColsGeneric(unsafe.Slice(st, n*8), 8, unsafe.Slice(inv, 8))
}

// softmaxColsGeneric is softmaxCols for any width nr.
func softmaxColsGeneric(st []float32, nr int, inv []float32) {
	n := len(st) / nr
	for j := range nr {
		m := st[j]
		for r := 1; r < n; r++ {
			m = max(m, st[r*nr+j])
		}
		var sum float32
		for r := range n {
			e := exp32(st[r*nr+j] - m)
			st[r*nr+j] = e
			sum += e
		}
		inv[j] = 1 / sum
	}
}

// active is the kernel set in use; tests may switch it.
var active = availableSIMD()[0]

func kernGeneric(k int, a, b, c *float32, ldc int, acc bool) {
	const mr, nr = 4, 8
	ap := unsafe.Slice(a, k*mr)
	bp := unsafe.Slice(b, k*nr)
	var t [mr][nr]float32
	for p := range k {
		av := (*[mr]float32)(ap[p*mr:])
		bv := (*[nr]float32)(bp[p*nr:])
		for i := range mr {
			ai := av[i]
			ti := &t[i]
			for j := range nr {
				ti[j] += ai * bv[j]
			}
		}
	}
	cs := unsafe.Slice(c, (mr-1)*ldc+nr)
	for i := range mr {
		row := cs[i*ldc : i*ldc+nr]
		if acc {
			for j := range row {
				row[j] += t[i][j]
			}
		} else {
			copy(row, t[i][:])
		}
	}
}

func dot4Generic(k int, x, w *float32, ldw int, out *float32) {
	xs := unsafe.Slice(x, k)
	ws := unsafe.Slice(w, 3*ldw+k)
	o := unsafe.Slice(out, 4)
	w0, w1, w2, w3 := ws[:k], ws[ldw:ldw+k], ws[2*ldw:2*ldw+k], ws[3*ldw:3*ldw+k]
	var s0, s1, s2, s3 float32
	for p, v := range xs {
		s0 += v * w0[p]
		s1 += v * w1[p]
		s2 += v * w2[p]
		s3 += v * w3[p]
	}
	o[0], o[1], o[2], o[3] = s0, s1, s2, s3
}

func gemvF16Generic(k int, x *float32, w *uint16, ldw int, out *float32, n int, acc bool) {
	ws := unsafe.Slice(w, (n-1)*ldw+k)
	o := unsafe.Slice(out, n)
	var t [4]float32
	for j := 0; j < n; j += 4 {
		dot4F16Generic(k, x, &ws[j*ldw], ldw, &t[0])
		for r, v := range t {
			if acc {
				o[j+r] += v
			} else {
				o[j+r] = v
			}
		}
	}
}

func dot4F16Generic(k int, x *float32, w *uint16, ldw int, out *float32) {
	xs := unsafe.Slice(x, k)
	ws := unsafe.Slice(w, 3*ldw+k)
	o := unsafe.Slice(out, 4)
	w0, w1, w2, w3 := ws[:k], ws[ldw:ldw+k], ws[2*ldw:2*ldw+k], ws[3*ldw:3*ldw+k]
	var s0, s1, s2, s3 float32
	for p, v := range xs {
		s0 += v * f16(w0[p])
		s1 += v * f16(w1[p])
		s2 += v * f16(w2[p])
		s3 += v * f16(w3[p])
	}
	o[0], o[1], o[2], o[3] = s0, s1, s2, s3
}

// f16 widens a binary16 value exactly, with a fast path for normal numbers and zero.
func f16(h uint16) float32 {
	if e := h & 0x7c00; e != 0 && e != 0x7c00 {
		return math.Float32frombits(uint32(h&0x8000)<<16 | (uint32(h&0x7fff)+0x1c000)<<13)
	}
	return tensor.F16ToF32(h)
}

// cvtF16 sets dst[i] = f32(src[i]) for every i < len(src), with the SIMD kernel where it applies.
func cvtF16(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	n := 0
	if len(src) > 0 {
		n = cvtF16SIMD(&dst[0], &src[0], len(src))
	}
	for i := n; i < len(src); i++ {
		dst[i] = f16(src[i])
	}
}

// dotH returns sum x[p]*f32(y[p]) (the scalar tail helper of the f16 dot kernels).
func dotH(x []float32, y []uint16) float32 {
	var s float32
	for i, v := range x {
		s += v * f16(y[i])
	}
	return s
}

func expSumGeneric(x *float32, n int, m float32) float32 {
	xs := unsafe.Slice(x, n)
	var s float32
	for i, v := range xs {
		e := exp32(v - m)
		xs[i] = e
		s += e
	}
	return s
}

func vmaxGeneric(x *float32, n int) float32 {
	xs := unsafe.Slice(x, n)
	m := xs[0]
	for _, v := range xs[1:] {
		if v > m {
			m = v
		}
	}
	return m
}

func geluGeneric(dst, x *float32, n int) {
	xs, ds := unsafe.Slice(x, n), unsafe.Slice(dst, n)
	for i, v := range xs {
		ds[i] = gelu32(v)
	}
}

func wsumGeneric(out *float32, d int, p *float32, n int, v *float32, ldv int) {
	o := unsafe.Slice(out, d)
	clear(o)
	if n == 0 {
		return
	}
	ps := unsafe.Slice(p, n)
	vs := unsafe.Slice(v, (n-1)*ldv+d)
	for j, pj := range ps {
		row := vs[j*ldv : j*ldv+d]
		for i, x := range row {
			o[i] += pj * x
		}
	}
}

// dot returns sum x[p]*y[p] (the scalar tail helper for the SIMD dot kernels).
func dot(x, y []float32) float32 {
	var s float32
	for i, v := range x {
		s += v * y[i]
	}
	return s
}

// packA copies rows [i0, i0+m) and columns [p0, p0+kc) of alpha*A into panels of mr rows:
// panel q holds dst[q*mr*kc + p*mr + i] = alpha*A(i0+q*mr+i, p0+p), zero past row m.
func packA(dst []float32, a mat, i0, m, p0, kc, mr int, alpha float32) {
	for q := 0; q*mr < m; q++ {
		pd := dst[q*mr*kc : (q+1)*mr*kc]
		rows := min(mr, m-q*mr)
		if rows < mr {
			clear(pd)
		}
		base := (i0 + q*mr) * a.rs
		if a.h != nil && a.cs == 1 {
			var tmp [kcBlock]float32
			for i := range rows {
				src := a.h[base+i*a.rs+p0 : base+i*a.rs+p0+kc]
				for c0 := 0; c0 < kc; c0 += kcBlock {
					t := tmp[:min(kcBlock, kc-c0)]
					cvtF16(t, src[c0:c0+len(t)])
					for p, v := range t {
						pd[(c0+p)*mr+i] = v * alpha
					}
				}
			}
			continue
		}
		if a.h != nil && a.rs == 1 { // an F16 value cache read transposed (attention's V^T)
			var tmp [16]float32
			for p := range kc {
				off := base + (p0+p)*a.cs
				t := tmp[:rows]
				cvtF16(t, a.h[off:off+rows])
				for i, v := range t {
					pd[p*mr+i] = v * alpha
				}
			}
			continue
		}
		if a.h != nil {
			for p := range kc {
				for i := range rows {
					pd[p*mr+i] = a.at(i0+q*mr+i, p0+p) * alpha
				}
			}
			continue
		}
		if a.cs == 1 {
			for i := range rows {
				src := a.data[base+i*a.rs+p0 : base+i*a.rs+p0+kc]
				for p, v := range src {
					pd[p*mr+i] = v * alpha
				}
			}
			continue
		}
		for p := range kc {
			off := base + (p0+p)*a.cs
			row := pd[p*mr : p*mr+rows]
			if a.rs == 1 {
				src := a.data[off : off+rows]
				for i, v := range src {
					row[i] = v * alpha
				}
				continue
			}
			for i := range row {
				row[i] = a.data[off+i*a.rs] * alpha
			}
		}
	}
}

// packB copies rows [p0, p0+kc) and columns [j0, j0+n) of B into panels of nr columns:
// panel q holds dst[q*nr*kc + p*nr + j] = B(p0+p, j0+q*nr+j), zero past column n.
func packB(dst []float32, b mat, j0, n, p0, kc, nr int) {
	var qtmp []float32 // dequantized values; made once a call (dequant's kernel call makes it escape)
	for q := 0; q*nr < n; q++ {
		pd := dst[q*nr*kc : (q+1)*nr*kc]
		cols := min(nr, n-q*nr)
		if cols < nr {
			clear(pd)
		}
		base := (j0 + q*nr) * b.cs
		if b.q != nil && b.rs == 1 && b.cs == b.qk && p0%qBlock == 0 && kc%qBlock == 0 {
			// A quantized weight row per column: dequantize the kc values, as F16 is widened.
			if qtmp == nil {
				qtmp = make([]float32, kcBlock)
			}
			bsz := b.qt.RowBytes(qBlock)
			for j := range cols {
				off := (j0+q*nr+j)*b.qrow + p0/qBlock*bsz
				for c0 := 0; c0 < kc; c0 += kcBlock {
					t := qtmp[:min(kcBlock, kc-c0)]
					dequant(b.qt, b.q[off+c0/qBlock*bsz:off+(c0+len(t))/qBlock*bsz], t)
					for p, v := range t {
						pd[(c0+p)*nr+j] = v
					}
				}
			}
			continue
		}
		if b.h != nil && b.rs == 1 {
			var tmp [kcBlock]float32
			for j := range cols {
				src := b.h[base+j*b.cs+p0 : base+j*b.cs+p0+kc]
				for c0 := 0; c0 < kc; c0 += kcBlock {
					t := tmp[:min(kcBlock, kc-c0)]
					cvtF16(t, src[c0:c0+len(t)])
					for p, v := range t {
						pd[(c0+p)*nr+j] = v
					}
				}
			}
			continue
		}
		if b.q != nil || b.h != nil { // the general layouts: one value at a time
			for p := range kc {
				for j := range cols {
					pd[p*nr+j] = b.at(p0+p, j0+q*nr+j)
				}
			}
			continue
		}
		if b.cs == 1 {
			for p := range kc {
				off := base + (p0+p)*b.rs
				copy(pd[p*nr:p*nr+cols], b.data[off:off+cols])
			}
			continue
		}
		if b.rs == 1 {
			for j := range cols {
				src := b.data[base+j*b.cs+p0 : base+j*b.cs+p0+kc]
				for p, v := range src {
					pd[p*nr+j] = v
				}
			}
			continue
		}
		for p := range kc {
			for j := range cols {
				pd[p*nr+j] = b.at(p0+p, j0+q*nr+j)
			}
		}
	}
}

// macro computes the m x n block c (row stride ldc) = (or += when acc) packed A panels (m rows,
// depth kc, aStride floats apart) times packed B panels (n columns, depth kc, bStride floats
// apart). tmp holds mr*nr floats for edge tiles.
func macro(s *simd, m, n, kc int, ap []float32, aStride int, bp []float32, bStride int, c []float32, ldc int, acc bool, tmp []float32) {
	mr, nr := s.mr, s.nr
	for jq := 0; jq*nr < n; jq++ {
		cols := min(nr, n-jq*nr)
		b := &bp[jq*bStride]
		for iq := 0; iq*mr < m; iq++ {
			rows := min(mr, m-iq*mr)
			a := &ap[iq*aStride]
			off := iq*mr*ldc + jq*nr
			if rows == mr && cols == nr {
				s.kern(kc, a, b, &c[off], ldc, acc)
				continue
			}
			s.kern(kc, a, b, &tmp[0], nr, false)
			for i := range rows {
				dst := c[off+i*ldc : off+i*ldc+cols]
				src := tmp[i*nr : i*nr+cols]
				if acc {
					for j, v := range src {
						dst[j] += v
					}
				} else {
					copy(dst, src)
				}
			}
		}
	}
}

// packBLimit is the most floats gemm packs of B at once (4 MB): wider B is done in column slabs.
// packALimit is the same for A (taller A is done in row slabs), and Conv1D's im2col columns are
// made in slabs of the same size. The packed operands are backend-wide scratch kept from op to
// op, so these bound the CPU backend's resident scratch: an encoder's whole activation matrix
// (large-v3: 1500 x 5120 floats, 31 MB, packed for fc2) or a whole vocabulary projection would
// otherwise stay allocated for the life of the backend. A slab repacks the other operand, which
// costs little beside its multiplications (a slab of 4 MB holds a few hundred rows or columns
// of Whisper's widths), and every result is computed exactly as without slabs: slabs start at
// multiples of the kernel's tile, so each element sees the same tiles and the same order of
// additions (the small cases, gemv, are chosen before slabbing).
const (
	packBLimit = 1 << 20
	packALimit = 1 << 20
)

// columns returns m without its first j0 columns, for a matrix whose columns are contiguous
// (rs == 1; a quantized one must hold one weight row per column).
func (m mat) columns(j0 int) mat {
	switch {
	case m.q != nil:
		m.q = m.q[j0*m.qrow:]
	case m.h != nil:
		m.h = m.h[j0*m.cs:]
	default:
		m.data = m.data[j0*m.cs:]
	}
	return m
}

// rows returns m without its first i0 rows (not quantized: gemm's A never is).
func (m mat) rows(i0 int) mat {
	if m.h != nil {
		m.h = m.h[i0*m.rs:]
	} else {
		m.data = m.data[i0*m.rs:]
	}
	return m
}

func roundUp(n, m int) int { return (n + m - 1) / m * m }

// scratch returns a float32 slice of length n from per-worker storage.
func (be *Backend) scratch(w, slot, n int) []float32 {
	s := &be.pool.scratch[w][slot]
	if cap(*s) < n {
		*s = make([]float32, n+n/4)
	}
	return (*s)[:n]
}

// gemm computes c (m x n, row stride ldc) = alpha * A(m x k) * B(k x n), or adds it to c when
// acc. It packs both operands once and runs tiles of the result on the worker pool.
func (be *Backend) gemm(m, n, k int, a, b mat, c []float32, ldc int, alpha float32, acc bool) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		if !acc {
			for i := range m {
				clear(c[i*ldc : i*ldc+n])
			}
		}
		return
	}
	if a.q != nil {
		panic(tensor.Errorf("cpu: gemm: a quantized left operand"))
	}
	if (m <= 5 || m <= 8 && b.h != nil) && a.h == nil && a.q == nil && b.q == nil && a.cs == 1 && b.rs == 1 {
		be.gemv(m, n, k, a, b, c, ldc, alpha, acc)
		return
	}
	be.gemmSlabs(m, n, k, a, b, c, ldc, alpha, acc)
}

// gemmOut is where gemmSlabsOut writes its result: c (row stride ldc) as gemm, or, with h set,
// the binary16 rounding of it into h (row stride ldc), each tile computed in per-worker scratch
// (starting from bias, where given, else zero) and rounded once complete, so that no float32
// copy of the whole result is needed (linearF16).
type gemmOut struct {
	c    []float32
	h    []uint16
	bias []float32
	ldc  int
}

// at is the output from row i0 and column j0 on.
func (o gemmOut) at(i0, j0 int) gemmOut {
	off := i0*o.ldc + j0
	if o.h != nil {
		o.h = o.h[off:]
		if o.bias != nil {
			o.bias = o.bias[j0:]
		}
		return o
	}
	o.c = o.c[off:]
	return o
}

// gemmSlabs is gemm past its small cases: packed operands, in slabs of at most packALimit and
// packBLimit floats (see packBLimit).
func (be *Backend) gemmSlabs(m, n, k int, a, b mat, c []float32, ldc int, alpha float32, acc bool) {
	be.gemmSlabsOut(m, n, k, a, b, gemmOut{c: c, ldc: ldc}, alpha, acc)
}

// gemmSlabsOut is gemmSlabs into out (acc is ignored for an F16 out, whose tiles start from
// its bias).
func (be *Backend) gemmSlabsOut(m, n, k int, a, b mat, out gemmOut, alpha float32, acc bool) {
	s := active
	mr, nr := s.mr, s.nr
	mPad, nPad := roundUp(m, mr), roundUp(n, nr)
	if nPad*k > packBLimit && n > nr && b.rs == 1 && (b.q == nil || b.cs == b.qk) {
		// A wide weight (the vocabulary projection over a prompt): run column slabs one after
		// another, so packed B stays at most packBLimit floats instead of the whole weight in
		// float32.
		cols := max(nr, packBLimit/k/nr*nr)
		for j0 := 0; j0 < n; j0 += cols {
			be.gemmSlabsOut(m, min(cols, n-j0), k, a, b.columns(j0), out.at(0, j0), alpha, acc)
		}
		return
	}
	if mPad*k > packALimit && m > mr {
		// A tall activation matrix (an encoder's): row slabs, each packing B again.
		rows := max(mr, packALimit/k/mr*mr)
		for i0 := 0; i0 < m; i0 += rows {
			be.gemmSlabsOut(min(rows, m-i0), n, k, a.rows(i0), b, out.at(i0, 0), alpha, acc)
		}
		return
	}
	ap := be.sharedBuf(0, mPad*k)
	bp := be.sharedBuf(1, nPad*k)
	nkb := (k + kcBlock - 1) / kcBlock
	// Pack A and B: one job per (k block, panel group).
	ma := (mPad / mr)
	nb := (nPad / nr)
	const group = 8
	gA := (ma + group - 1) / group
	gB := (nb + group - 1) / group
	be.pool.split(nkb*(gA+gB), group*mr*kcBlock, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			kb, g := t/(gA+gB), t%(gA+gB)
			p0 := kb * kcBlock
			kc := min(kcBlock, k-p0)
			if g < gA {
				i0 := g * group * mr
				rows := min(group*mr, m-i0)
				if rows > 0 {
					packA(ap[p0*mPad+i0*kc:], a, i0, rows, p0, kc, mr, alpha)
				}
			} else {
				j0 := (g - gA) * group * nr
				cols := min(group*nr, n-j0)
				if cols > 0 {
					packB(bp[p0*nPad+j0*kc:], b, j0, cols, p0, kc, nr)
				}
			}
		}
	})
	mc := roundUp(min(mcBlock, mPad), mr)
	nc := roundUp(min(ncBlock, nPad), nr)
	// Prefer more, smaller tiles when there are few.
	for (mPad+mc-1)/mc*((nPad+nc-1)/nc) < 4*be.pool.n && mc > mr {
		mc = roundUp(mc/2, mr)
	}
	tm, tn := (m+mc-1)/mc, (n+nc-1)/nc
	be.pool.run(tm*tn, func(w, t int) {
		tmp := be.scratch(w, 0, mr*nr)
		i0, j0 := (t/tn)*mc, (t%tn)*nc
		rows, cols := min(mc, m-i0), min(nc, n-j0)
		c, ldc, acc := out.c, out.ldc, acc
		if out.h != nil { // the tile in scratch, from the bias or zero
			c, ldc, acc = be.scratch(w, 2, rows*cols), cols, out.bias != nil
			if acc {
				for i := range rows {
					copy(c[i*cols:(i+1)*cols], out.bias[j0:j0+cols])
				}
			}
		} else {
			c = c[i0*ldc+j0:]
		}
		for kb := range nkb {
			p0 := kb * kcBlock
			kc := min(kcBlock, k-p0)
			macro(s, rows, cols, kc, ap[p0*mPad+i0*kc:], mr*kc, bp[p0*nPad+j0*kc:], nr*kc, c, ldc, acc || kb > 0, tmp)
		}
		if out.h != nil {
			for i := range rows {
				cvtF32F16(out.h[(i0+i)*out.ldc+j0:(i0+i)*out.ldc+j0+cols], c[i*cols:(i+1)*cols])
			}
		}
	})
}

// sharedBuf returns backend-wide scratch slot i with at least n floats (not zeroed). A slot
// grows to exactly what is asked: the packed operands are bounded (packALimit, packBLimit, an
// encoder's attention panels), so it grows a few times at most, and a quarter more than the
// largest request was up to 2.5 MB held for the life of the backend. The slots are mapped
// outside the Go heap (where the system allows, and not in a -race build), as the weights are
// (offHeapMem): 8 MB for base, which the collector's pacing let the heap grow by a tenth of. A
// slot's slice is not kept past the op that asked for it, so growing unmaps the old one.
func (be *Backend) sharedBuf(i, n int) []float32 {
	s := &be.shared[i]
	if cap(*s) < n {
		unmapAnon(be.sharedMem[i])
		be.sharedMem[i] = nil
		if !raceDetector { // its detector sees only the heap
			be.sharedMem[i] = mapAnon(4 * n)
		}
		if mem := be.sharedMem[i]; mem != nil {
			*s = unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(mem))), n)
		} else {
			*s = make([]float32, n)
		}
	}
	return (*s)[:n]
}

// gemv handles a few rows of A against B whose columns are contiguous (B.rs == 1), as in
// Linear during decoding: each output is a dot product, parallel over the columns of B.
func (be *Backend) gemv(m, n, k int, a, b mat, c []float32, ldc int, alpha float32, acc bool) {
	s := active
	kv := k / s.dotStep * s.dotStep
	if b.h != nil {
		be.gemvH(m, n, k, kv, a, b, c, ldc, alpha, acc)
		return
	}
	be.pool.split((n+3)/4, 8*k*m, func(lo, hi int) {
		var out [4]float32
		for q := lo; q < hi; q++ {
			j := q * 4
			if j+4 <= n {
				w := b.data[j*b.cs:]
				for i := range m {
					x := a.data[i*a.rs : i*a.rs+k]
					if kv > 0 {
						s.dot4(kv, &x[0], &w[0], b.cs, &out[0])
					} else {
						out = [4]float32{}
					}
					for r := range 4 {
						v := out[r]
						if kv < k {
							v += dot(x[kv:], w[r*b.cs+kv:r*b.cs+k])
						}
						v *= alpha
						if acc {
							c[i*ldc+j+r] += v
						} else {
							c[i*ldc+j+r] = v
						}
					}
				}
				continue
			}
			for ; j < n; j++ {
				w := b.data[j*b.cs : j*b.cs+k]
				for i := range m {
					v := dot(a.data[i*a.rs:i*a.rs+k], w) * alpha
					if acc {
						c[i*ldc+j] += v
					} else {
						c[i*ldc+j] = v
					}
				}
			}
		}
	})
}

// gemvH is gemv for binary16 weights (b.h): the kernels widen them as they load, so each weight
// is read once, at half the bytes of f32. Each row of a runs over blocks of weight rows small
// enough to stay in L2 for the next row of a.
func (be *Backend) gemvH(m, n, k, kv int, a, b mat, c []float32, ldc int, alpha float32, acc bool) {
	s := active
	fast := kv == k && alpha == 1
	const blk = 64 // groups of 4 weight rows per L2 block
	be.pool.split((n+3)/4, 8*k*m, func(lo, hi int) {
		var out [4]float32
		for q0 := lo; q0 < hi; q0 += blk {
			q1 := min(hi, q0+blk, n/4)
			if fast && q1 > q0 {
				w, nq := &b.h[q0*4*b.cs], (q1-q0)*4
				for i := 0; i < m; {
					r := rowsCall(m - i)
					if f := s.gemvhr[r]; r > 1 && f != nil {
						f(k, &a.data[i*a.rs], a.rs, w, b.cs, &c[i*ldc+q0*4], ldc, nq, acc)
						i += r
						continue
					}
					s.gemvh(k, &a.data[i*a.rs], w, b.cs, &c[i*ldc+q0*4], nq, acc)
					i++
				}
			} else {
				q1 = q0
			}
			for q := q1; q < min(hi, q0+blk); q++ {
				j := q * 4
				if j+4 <= n {
					w := b.h[j*b.cs:]
					for i := range m {
						x := a.data[i*a.rs : i*a.rs+k]
						if kv > 0 {
							s.dot4h(kv, &x[0], &w[0], b.cs, &out[0])
						} else {
							out = [4]float32{}
						}
						for r := range 4 {
							v := out[r]
							if kv < k {
								v += dotH(x[kv:], w[r*b.cs+kv:r*b.cs+k])
							}
							v *= alpha
							if acc {
								c[i*ldc+j+r] += v
							} else {
								c[i*ldc+j+r] = v
							}
						}
					}
					continue
				}
				for ; j < n; j++ {
					w := b.h[j*b.cs : j*b.cs+k]
					for i := range m {
						v := dotH(a.data[i*a.rs:i*a.rs+k], w) * alpha
						if acc {
							c[i*ldc+j] += v
						} else {
							c[i*ldc+j] = v
						}
					}
				}
			}
		}
	})
}
