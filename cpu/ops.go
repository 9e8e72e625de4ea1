package cpu

import (
	"math"

	"github.com/verbatimhq/verbatim/tensor"
)

func shapeErr(op string, format string, args ...any) {
	e := tensor.Errorf(format, args...)
	e.Msg = "cpu: " + op + ": " + e.Msg
	panic(e)
}

// Linear: dst[r, n] = x[r, :] . w[n, :] + bias[n]. w is F32, F16 or a quant format. With a
// quantized w, up to 8 rows of x (decoding) are quantized to int8 blocks and multiplied with the
// blocks directly (gemvQ: the result differs from float32 arithmetic on the dequantized weights
// by the rounding of x, at most half a step of its block's scale per value); more rows go
// through GEMM, which dequantizes the weights while packing them.
//
// An F16 dst (tensor.HalfCaches) gets the float32 result rounded once (linearF16).
func (be *Backend) Linear(dst, x, w, bias *tensor.Tensor) {
	if w.Rank() != 2 {
		shapeErr("Linear", "weight %v is not rank 2", w.Shape)
	}
	if dst.DType == tensor.F16 {
		be.linearF16(dst, x, w, bias)
		return
	}
	xd, wm, dd := be.f32(x), be.weight(w, 1, w.Shape[1]), be.f32(dst)
	n, k := w.Shape[0], w.Shape[1]
	if x.Dim(-1) != k || dst.Dim(-1) != n || dst.Rows() != x.Rows() {
		shapeErr("Linear", "x %v, w %v, dst %v", x.Shape, w.Shape, dst.Shape)
	}
	rows := x.Rows()
	acc := false
	if bias != nil {
		bd := be.f32(bias)
		if bias.Len() != n {
			shapeErr("Linear", "bias %v for %d outputs", bias.Shape, n)
		}
		for r := range rows {
			copy(dd[r*n:(r+1)*n], bd)
		}
		acc = true
	}
	if wm.q != nil && rows <= 8 && !be.f32q {
		be.gemvQ(w.DType, rows, n, k, xd, wm.q, dd, n, acc)
		return
	}
	be.gemm(rows, n, k, mat{data: xd, rs: k, cs: 1}, wm, dd, n, 1, acc)
}

// MatMul: dst[b] = alpha * op(a[b]) op(b[b]).
func (be *Backend) MatMul(dst, a, b *tensor.Tensor, transA, transB bool, alpha float32) {
	ad, bd, dd := be.f32(a), be.f32(b), be.f32(dst)
	if a.Rank() < 2 || a.Rank() > 3 || b.Rank() < 2 || b.Rank() > 3 {
		shapeErr("MatMul", "a %v, b %v: want rank 2 or 3", a.Shape, b.Shape)
	}
	batch := 1
	if a.Rank() == 3 {
		batch = a.Shape[0]
	}
	if b.Rank() == 3 && (a.Rank() != 3 || b.Shape[0] != batch) {
		shapeErr("MatMul", "batch of a %v and b %v differ", a.Shape, b.Shape)
	}
	ar, ac := a.Dim(-2), a.Dim(-1)
	br, bc := b.Dim(-2), b.Dim(-1)
	m, k := ar, ac
	am := mat{rs: ac, cs: 1}
	if transA {
		m, k = ac, ar
		am = mat{rs: 1, cs: ac}
	}
	kb, n := br, bc
	bm := mat{rs: bc, cs: 1}
	if transB {
		kb, n = bc, br
		bm = mat{rs: 1, cs: bc}
	}
	if kb != k || dst.Rank() < 2 || dst.Dim(-2) != m || dst.Dim(-1) != n || dst.Len() != batch*m*n {
		shapeErr("MatMul", "a %v (trans %v), b %v (trans %v), dst %v", a.Shape, transA, b.Shape, transB, dst.Shape)
	}
	for i := range batch {
		am.data = ad[i*ar*ac : (i+1)*ar*ac]
		if b.Rank() == 3 {
			bm.data = bd[i*br*bc : (i+1)*br*bc]
		} else {
			bm.data = bd
		}
		be.gemm(m, n, k, am, bm, dd[i*m*n:(i+1)*m*n], n, alpha, false)
	}
}

// Conv1D by im2col and GEMM: dst[b] = w [Cout, Cin*K] x cols [Cin*K, Tout] + bias.
func (be *Backend) Conv1D(dst, x, w, bias *tensor.Tensor, stride, pad int) {
	be.conv1D(dst, x, w, bias, nil, stride, pad)
}

// Conv1DScratch is Conv1D with its columns (im2col, at most about packBLimit floats) in
// scratch, an F32 tensor that overlaps neither x nor dst, where it holds them; else in memory
// of their own, as Conv1D. An encoder passes the part of its scratch that the convolution does
// not use, so that an encoding allocates nothing (the columns were 4 MB a window for base,
// garbage as soon as the convolution ends).
func (be *Backend) Conv1DScratch(dst, x, w, bias, scratch *tensor.Tensor, stride, pad int) {
	be.conv1D(dst, x, w, bias, be.f32(scratch), stride, pad)
}

func (be *Backend) conv1D(dst, x, w, bias *tensor.Tensor, scratch []float32, stride, pad int) {
	if w.Rank() != 3 {
		shapeErr("Conv1D", "w %v is not rank 3", w.Shape)
	}
	xd, wm, dd := be.f32(x), be.weight(w, w.Shape[1]*w.Shape[2], 1), be.f32(dst)
	if x.Rank() < 2 || x.Rank() > 3 || stride < 1 || pad < 0 {
		shapeErr("Conv1D", "x %v, w %v, stride %d, pad %d", x.Shape, w.Shape, stride, pad)
	}
	cout, cin, kw := w.Shape[0], w.Shape[1], w.Shape[2]
	batch := 1
	if x.Rank() == 3 {
		batch = x.Shape[0]
	}
	t := x.Dim(-1)
	if x.Dim(-2) != cin || t+2*pad < kw {
		shapeErr("Conv1D", "x %v, w %v, pad %d", x.Shape, w.Shape, pad)
	}
	tout := (t+2*pad-kw)/stride + 1
	if dst.Dim(-1) != tout || dst.Dim(-2) != cout || dst.Len() != batch*cout*tout {
		shapeErr("Conv1D", "dst %v, want [%d %d %d]", dst.Shape, batch, cout, tout)
	}
	var bd []float32
	if bias != nil {
		bd = be.f32(bias)
		if len(bd) != cout {
			shapeErr("Conv1D", "bias %v for %d channels", bias.Shape, cout)
		}
	}
	ck := cin * kw
	// im2col in slabs of output times (a multiple of the GEMM tile's width, so every result is
	// as with one slab: see packBLimit), bounding the scratch to about packBLimit floats.
	slab := tout
	if nr := active.nr; ck*tout > packBLimit {
		slab = min(tout, max(nr, packBLimit/ck/nr*nr))
	}
	// Few output times an element (the VAD's frames, 4 STFT columns each): the columns of several
	// elements go through one GEMM, whose weights are then packed once for all of them instead
	// of once an element. Column slabs change no bits (TestGemmColumnSlabs), so neither does this.
	if g := min(batch, max(active.nr, packBLimit/ck/active.nr*active.nr)/tout); slab == tout && g > 1 {
		be.conv1DGrouped(dd, xd, wm, bd, scratch, batch, g, cin, t, cout, tout, kw, stride, pad)
		return
	}
	// The columns are in the caller's scratch, or made for this call, not kept as backend-wide
	// scratch: Conv1D runs only at the start of an encoding, and memory kept until the next one
	// would add to everything a decoder holds meanwhile (5 MB for mini and base; the allocation
	// costs far less than the convolution).
	cols := scratch
	if len(cols) < ck*slab {
		cols = make([]float32, ck*slab)
	}
	cols = cols[:ck*slab]
	for bi := range batch {
		xb := xd[bi*cin*t : (bi+1)*cin*t]
		out := dd[bi*cout*tout : (bi+1)*cout*tout]
		fillBias(out, bd, tout)
		for o0 := 0; o0 < tout; o0 += slab {
			n := min(slab, tout-o0)
			be.pool.split(ck, n, func(lo, hi int) {
				for r := lo; r < hi; r++ {
					c, j := r/kw, r%kw
					im2colRow(cols[r*n:(r+1)*n], xb[c*t:(c+1)*t], o0, stride, j-pad)
				}
			})
			be.gemm(cout, n, ck, wm, mat{data: cols, rs: n, cs: 1}, out[o0:], tout, 1, bd != nil)
		}
	}
}

// im2colRow writes row[o] = src[(o0+o)*stride + off], 0 where that is outside src: one row of
// Conv1D's columns (input channel c, kernel tap j: off = j - pad).
func im2colRow(row, src []float32, o0, stride, off int) {
	for o := range row {
		if ti := (o0+o)*stride + off; ti >= 0 && ti < len(src) {
			row[o] = src[ti]
		} else {
			row[o] = 0
		}
	}
}

// fillBias sets row c (of width w) of out to bias[c], for a GEMM that adds to it; nothing
// without a bias.
func fillBias(out, bias []float32, w int) {
	for c, b := range bias {
		row := out[c*w : (c+1)*w]
		for i := range row {
			row[i] = b
		}
	}
}

// conv1DGrouped is conv1D for g elements of the batch a GEMM: their im2col columns side by side
// (element-major), the GEMM into a [cout, g*tout] block, then each element's rows to dd. The
// columns and the block are the caller's scratch where it is large enough, else the backend's
// third shared buffer, kept (the VAD convolves every 2 s of audio; its buffer is 0.5 MB, and the
// columns are at most packBLimit floats). The whisper encoder's batch of one never comes here.
func (be *Backend) conv1DGrouped(dd, xd []float32, wm mat, bd, scratch []float32, batch, g, cin, t, cout, tout, kw, stride, pad int) {
	ck, n := cin*kw, g*tout
	cols := scratch
	if len(cols) < ck*n+cout*n {
		cols = be.sharedBuf(2, ck*n+cout*n)
	}
	out := cols[ck*n : ck*n+cout*n]
	cols = cols[:ck*n]
	for b0 := 0; b0 < batch; b0 += g {
		ng := min(g, batch-b0)
		w := ng * tout // columns this group
		be.pool.split(ck, w, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				c, j := r/kw, r%kw
				row := cols[r*w : (r+1)*w]
				for e := range ng {
					im2colRow(row[e*tout:(e+1)*tout], xd[((b0+e)*cin+c)*t:((b0+e)*cin+c+1)*t], 0, stride, j-pad)
				}
			}
		})
		o := out[:cout*w]
		fillBias(o, bd, w)
		be.gemm(cout, w, ck, wm, mat{data: cols[:ck*w], rs: w, cs: 1}, o, w, 1, bd != nil)
		for e := range ng {
			for c := range cout {
				copy(dd[((b0+e)*cout+c)*tout:((b0+e)*cout+c+1)*tout], o[c*w+e*tout:c*w+(e+1)*tout])
			}
		}
	}
}

// LayerNorm over the last dimension; gamma and beta may be nil (1 and 0).
func (be *Backend) LayerNorm(dst, x, gamma, beta *tensor.Tensor, eps float32) {
	xd, dd := be.f32(x), be.f32(dst)
	c := x.Dim(-1)
	if dst.Len() != x.Len() || dst.Dim(-1) != c {
		shapeErr("LayerNorm", "x %v, dst %v", x.Shape, dst.Shape)
	}
	var g, b []float32
	if gamma != nil {
		g = be.f32(gamma)
	}
	if beta != nil {
		b = be.f32(beta)
	}
	if (g != nil && len(g) != c) || (b != nil && len(b) != c) {
		shapeErr("LayerNorm", "x %v with gamma/beta of other size", x.Shape)
	}
	rows := x.Rows()
	be.pool.split(rows, 8*c, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			in := xd[r*c : (r+1)*c]
			out := dd[r*c : (r+1)*c]
			var sum float32
			for _, v := range in {
				sum += v
			}
			mean := sum / float32(c)
			var sq float32
			for _, v := range in {
				d := v - mean
				sq += d * d
			}
			inv := float32(1 / math.Sqrt(float64(sq/float32(c)+eps)))
			switch {
			case g != nil && b != nil:
				for i, v := range in {
					out[i] = (v-mean)*inv*g[i] + b[i]
				}
			default:
				for i, v := range in {
					y := (v - mean) * inv
					if g != nil {
						y *= g[i]
					}
					if b != nil {
						y += b[i]
					}
					out[i] = y
				}
			}
		}
	})
}

// unary applies f elementwise, in parallel.
func (be *Backend) unary(op string, dst, x *tensor.Tensor, cost int, f func(out, in []float32)) {
	xd, dd := be.f32(x), be.f32(dst)
	if len(xd) != len(dd) {
		shapeErr(op, "x %v, dst %v", x.Shape, dst.Shape)
	}
	const chunk = 4096
	be.pool.split((len(xd)+chunk-1)/chunk, chunk*cost, func(lo, hi int) {
		hi = min(hi*chunk, len(xd))
		f(dd[lo*chunk:hi], xd[lo*chunk:hi])
	})
}

// GELU, erf form, with a float32 erf accurate to 5e-7.
func (be *Backend) GELU(dst, x *tensor.Tensor) {
	be.unary("GELU", dst, x, 20, func(out, in []float32) {
		s := active
		n := len(in) / s.vecStep * s.vecStep
		if n > 0 {
			s.gelu(&out[0], &in[0], n)
		}
		for i := n; i < len(in); i++ {
			out[i] = gelu32(in[i])
		}
	})
}

// Sigmoid: 1 / (1 + exp(-x)).
func (be *Backend) Sigmoid(dst, x *tensor.Tensor) {
	be.unary("Sigmoid", dst, x, 15, func(out, in []float32) {
		for i, v := range in {
			out[i] = 1 / (1 + exp32(-v))
		}
	})
}

// Tanh elementwise.
func (be *Backend) Tanh(dst, x *tensor.Tensor) {
	be.unary("Tanh", dst, x, 15, func(out, in []float32) {
		for i, v := range in {
			if v > 9 || v < -9 {
				out[i] = float32(math.Copysign(1, float64(v)))
				continue
			}
			if v > -0.03 && v < 0.03 {
				// tanh x = x - x^3/3 + 2x^5/15, avoiding cancellation below.
				v2 := v * v
				out[i] = v * (1 - v2/3 + 2*v2*v2/15)
				continue
			}
			e := exp32(2 * v)
			out[i] = (e - 1) / (e + 1)
		}
	})
}

// ReLU elementwise.
func (be *Backend) ReLU(dst, x *tensor.Tensor) {
	be.unary("ReLU", dst, x, 1, func(out, in []float32) {
		for i, v := range in {
			out[i] = max(v, 0)
		}
	})
}

// Sqrt elementwise, correctly rounded (NaN for negative inputs).
func (be *Backend) Sqrt(dst, x *tensor.Tensor) {
	be.unary("Sqrt", dst, x, 2, func(out, in []float32) {
		for i, v := range in {
			out[i] = float32(math.Sqrt(float64(v)))
		}
	})
}

// Scale: dst = x * s.
func (be *Backend) Scale(dst, x *tensor.Tensor, s float32) {
	be.unary("Scale", dst, x, 1, func(out, in []float32) {
		for i, v := range in {
			out[i] = v * s
		}
	})
}

// binary applies f to rows of a with the broadcast b.
func (be *Backend) binary(op string, dst, a, b *tensor.Tensor, f func(out, x, y []float32)) {
	ad, bd, dd := be.f32(a), be.f32(b), be.f32(dst)
	if len(dd) != len(ad) || b.Rank() > a.Rank() || !tensor.SameShape(b.Shape, a.Shape[a.Rank()-b.Rank():]) {
		shapeErr(op, "a %v, b %v, dst %v", a.Shape, b.Shape, dst.Shape)
	}
	n := len(bd)
	if n == 0 {
		return
	}
	rows := len(ad) / n
	if n >= 1024 || rows == 1 {
		be.pool.split(rows, n, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				f(dd[r*n:(r+1)*n], ad[r*n:(r+1)*n], bd)
			}
		})
		return
	}
	// Small b: group rows into chunks of about 4096 elements.
	per := max(1, 4096/n)
	be.pool.split((rows+per-1)/per, per*n, func(lo, hi int) {
		for r := lo * per; r < min(rows, hi*per); r++ {
			f(dd[r*n:(r+1)*n], ad[r*n:(r+1)*n], bd)
		}
	})
}

// Add: dst = a + b (b broadcast over leading dimensions).
func (be *Backend) Add(dst, a, b *tensor.Tensor) {
	be.binary("Add", dst, a, b, func(out, x, y []float32) {
		for i, v := range x {
			out[i] = v + y[i]
		}
	})
}

// Mul: dst = a * b (b broadcast over leading dimensions).
func (be *Backend) Mul(dst, a, b *tensor.Tensor) {
	be.binary("Mul", dst, a, b, func(out, x, y []float32) {
		for i, v := range x {
			out[i] = v * y[i]
		}
	})
}

// Softmax over the last dimension.
func (be *Backend) Softmax(dst, x *tensor.Tensor) {
	xd, dd := be.f32(x), be.f32(dst)
	c := x.Dim(-1)
	if len(xd) != len(dd) || dst.Dim(-1) != c {
		shapeErr("Softmax", "x %v, dst %v", x.Shape, dst.Shape)
	}
	be.pool.split(x.Rows(), 10*c, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			if &dd[r*c] != &xd[r*c] {
				copy(dd[r*c:(r+1)*c], xd[r*c:(r+1)*c])
			}
			softmaxRow(dd[r*c : (r+1)*c])
		}
	})
}

// softmaxRow normalizes x in place and returns nothing; a row of -inf becomes NaN as in PyTorch.
func softmaxRow(x []float32) {
	if len(x) == 0 {
		return
	}
	s := expSum(x, vmax(x))
	inv := 1 / s
	for i := range x {
		x[i] *= inv
	}
}

// vmax returns the largest element of a non-empty x.
func vmax(x []float32) float32 {
	s := active
	n := len(x) / s.vecStep * s.vecStep
	m := x[0]
	if n > 0 {
		m = s.vmax(&x[0], n)
	}
	for _, v := range x[n:] {
		if v > m {
			m = v
		}
	}
	return m
}

// expSum sets x[i] = exp(x[i] - m) and returns the sum, with the SIMD kernel where it applies.
func expSum(x []float32, m float32) float32 {
	s := active
	n := len(x) / s.expStep * s.expStep
	var sum float32
	if n > 0 {
		sum = s.expSum(&x[0], n, m)
	}
	for i := n; i < len(x); i++ {
		e := exp32(x[i] - m)
		x[i] = e
		sum += e
	}
	return sum
}

// Gather: dst[i, :] = table[ids[i], :], table F32, F16 or quantized (the rows read are
// dequantized).
func (be *Backend) Gather(dst, table *tensor.Tensor, ids []int32) {
	dd := be.f32(dst)
	if table.Rank() != 2 {
		shapeErr("Gather", "table %v is not rank 2", table.Shape)
	}
	n, c := table.Shape[0], table.Shape[1]
	if dst.Len() != len(ids)*c || dst.Dim(-1) != c {
		shapeErr("Gather", "dst %v for %d ids of width %d", dst.Shape, len(ids), c)
	}
	for _, id := range ids {
		if id < 0 || int(id) >= n {
			shapeErr("Gather", "id %d outside table %v", id, table.Shape)
		}
	}
	if isQuant(table.DType) {
		td, rb := be.qbytes(table), table.DType.RowBytes(c)
		for i, id := range ids {
			dequant(table.DType, td[int(id)*rb:(int(id)+1)*rb], dd[i*c:(i+1)*c])
		}
		return
	}
	if table.DType == tensor.F16 { // an embedding kept in binary16
		td := be.f16(table)
		for i, id := range ids {
			cvtF16(dd[i*c:(i+1)*c], td[int(id)*c:(int(id)+1)*c])
		}
		return
	}
	td := be.f32(table)
	if &td[0] == &dd[0] && len(ids) > 0 {
		shapeErr("Gather", "dst aliases table")
	}
	for i, id := range ids {
		copy(dd[i*c:(i+1)*c], td[int(id)*c:(int(id)+1)*c])
	}
}

// Copy: dst = src elementwise, converting between F32 and I32, from F16 or a quant format to
// F32, and from F32 to F16 (rounded to nearest even).
func (be *Backend) Copy(dst, src *tensor.Tensor) {
	if dst.Len() != src.Len() {
		shapeErr("Copy", "src %v, dst %v", src.Shape, dst.Shape)
	}
	switch {
	case dst.DType == tensor.F32 && src.DType == tensor.F32:
		copy(be.f32(dst), be.f32(src))
	case dst.DType == tensor.I32 && src.DType == tensor.I32:
		copy(be.i32(dst), be.i32(src))
	case dst.DType == tensor.F32 && src.DType == tensor.I32:
		d := be.f32(dst)
		for i, v := range be.i32(src) {
			d[i] = float32(v)
		}
	case dst.DType == tensor.F32 && src.DType == tensor.F16:
		cvtF16(be.f32(dst), be.f16(src))
	case dst.DType == tensor.F32 && isQuant(src.DType):
		dequant(src.DType, be.qbytes(src), be.f32(dst))
	case dst.DType == tensor.F16 && src.DType == tensor.F16:
		copy(be.f16(dst), be.f16(src))
	case dst.DType == tensor.F16 && src.DType == tensor.F32:
		cvtF32F16(be.f16(dst), be.f32(src))
	case dst.DType == tensor.I32 && src.DType == tensor.F32:
		d := be.i32(dst)
		for i, v := range be.f32(src) {
			d[i] = int32(v)
		}
	default:
		panic(&tensor.Error{Msg: "cpu: Copy " + src.DType.String() + " to " + dst.DType.String(), Err: tensor.ErrNotImplemented})
	}
}

// SetRows writes src [B, n, C] into dst [B, T, C] at rows [at, at+n). An F16 dst (an attention
// cache, tensor.HalfCaches) takes F32 src rounded, or F16 src as it is.
func (be *Backend) SetRows(dst *tensor.Tensor, at int, src *tensor.Tensor) {
	b3 := func(t *tensor.Tensor) (int, int, int) {
		switch t.Rank() {
		case 2:
			return 1, t.Shape[0], t.Shape[1]
		case 3:
			return t.Shape[0], t.Shape[1], t.Shape[2]
		}
		shapeErr("SetRows", "%v is not rank 2 or 3", t.Shape)
		return 0, 0, 0
	}
	bd, tt, c := b3(dst)
	bs, n, cs := b3(src)
	if bd != bs || c != cs || at < 0 || at+n > tt {
		shapeErr("SetRows", "src %v into dst %v at %d", src.Shape, dst.Shape, at)
	}
	switch {
	case dst.DType == tensor.F16 && src.DType == tensor.F32:
		sd, dd := be.f32(src), be.f16(dst)
		for b := range bd {
			cvtF32F16(dd[(b*tt+at)*c:(b*tt+at+n)*c], sd[b*n*c:(b+1)*n*c])
		}
	case dst.DType == tensor.F16 && src.DType == tensor.F16:
		sd, dd := be.f16(src), be.f16(dst)
		for b := range bd {
			copy(dd[(b*tt+at)*c:(b*tt+at+n)*c], sd[b*n*c:(b+1)*n*c])
		}
	default:
		sd, dd := be.f32(src), be.f32(dst)
		for b := range bd {
			copy(dd[(b*tt+at)*c:(b*tt+at+n)*c], sd[b*n*c:(b+1)*n*c])
		}
	}
}

// Transpose swaps the last two dimensions, in cache blocks.
func (be *Backend) Transpose(dst, src *tensor.Tensor) {
	sd, dd := be.f32(src), be.f32(dst)
	if src.Rank() < 2 || dst.Rank() != src.Rank() {
		shapeErr("Transpose", "src %v, dst %v", src.Shape, dst.Shape)
	}
	r := src.Rank()
	m, n := src.Shape[r-2], src.Shape[r-1]
	if !tensor.SameShape(dst.Shape[:r-2], src.Shape[:r-2]) || dst.Shape[r-2] != n || dst.Shape[r-1] != m {
		shapeErr("Transpose", "src %v, dst %v", src.Shape, dst.Shape)
	}
	if m*n == 0 {
		return
	}
	batch := len(sd) / (m * n)
	const blk = 32
	bm := (m + blk - 1) / blk
	be.pool.split(batch*bm, blk*n, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			b, i0 := t/bm, (t%bm)*blk
			s := sd[b*m*n : (b+1)*m*n]
			d := dd[b*m*n : (b+1)*m*n]
			i1 := min(m, i0+blk)
			for j0 := 0; j0 < n; j0 += blk {
				j1 := min(n, j0+blk)
				for i := i0; i < i1; i++ {
					row := s[i*n : i*n+j1]
					for j := j0; j < j1; j++ {
						d[j*m+i] = row[j]
					}
				}
			}
		}
	})
}
