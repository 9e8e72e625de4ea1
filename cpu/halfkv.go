package cpu

import (
	"unsafe"

	"github.com/verbatimhq/verbatim/tensor"
)

// F16 attention caches (tensor.HalfCaches). A decoder's self-attention caches and the encoder
// output's cross-attention keys and values are most of what a transcription keeps in memory
// besides the weights (base with 5 beams: 92 MB in float32). Kept as binary16 they take half:
// Linear and SetRows round their float32 results once as they store them, and Attention and
// AttentionProbs widen the keys and values as they read them (F16C), with float32 arithmetic
// as before.

var _ tensor.HalfCaches = (*Backend)(nil)

// HalfCaches reports that attention caches may be F16.
func (be *Backend) HalfCaches() bool { return true }

// linearF16 is Linear into an F16 dst: dst holds exactly the rounding of what Linear into an F32
// dst computes. Past 8 rows (where Linear takes GEMM whatever the weights) GEMM rounds each tile
// of the result as it completes it (gemmOut), so no float32 copy of the result is made; a few
// rows are computed into a small float32 buffer first.
func (be *Backend) linearF16(dst, x, w, bias *tensor.Tensor) {
	hd := be.f16(dst)
	rows, n, k := x.Rows(), w.Shape[0], w.Shape[1]
	if dst.Rows() != rows || dst.Dim(-1) != n || x.Dim(-1) != k {
		shapeErr("Linear", "x %v, w %v, dst %v", x.Shape, w.Shape, dst.Shape)
	}
	if rows > 8 && k > 0 {
		var bd []float32
		if bias != nil {
			if bd = be.f32(bias); len(bd) != n {
				shapeErr("Linear", "bias %v for %d outputs", bias.Shape, n)
			}
		}
		be.gemmSlabsOut(rows, n, k, mat{data: be.f32(x), rs: k, cs: 1}, be.weight(w, 1, k), gemmOut{h: hd, bias: bd, ldc: n}, 1, false)
		return
	}
	tmp := make([]float32, rows*n)
	be.Linear(&tensor.Tensor{DType: tensor.F32, Shape: []int{rows, n}, Buf: &buffer{be: be, f32: tmp}}, x.Reshape(rows, k), w, bias)
	cvtF32F16(hd, tmp)
}

// cvtF32F16 sets dst[i] = f16(src[i]) (rounded to nearest even) for every i < len(dst).
func cvtF32F16(dst []uint16, src []float32) {
	src = src[:len(dst)]
	n := 0
	if len(dst) > 0 {
		n = cvtF32F16SIMD(&dst[0], &src[0], len(dst))
	}
	for i := n; i < len(dst); i++ {
		dst[i] = tensor.F32ToF16(src[i])
	}
}

// kvData is the storage of an attention key or value operand: float32 or binary16.
type kvData struct {
	f []float32
	h []uint16
}

func (be *Backend) kvData(op string, t *tensor.Tensor) kvData {
	switch t.DType {
	case tensor.F32:
		return kvData{f: be.f32(t)}
	case tensor.F16:
		return kvData{h: be.f16(t)}
	}
	shapeErr(op, "keys and values %v: want f32 or f16", t)
	return kvData{}
}

// mat is the strided matrix view of the operand from element off on.
func (d kvData) mat(off, rs, cs int) mat {
	if d.h != nil {
		return mat{h: d.h[off:], rs: rs, cs: cs}
	}
	return mat{data: d.f[off:], rs: rs, cs: cs}
}

// scores sets sc[j] = scale * q . k[off+j*ldk : off+j*ldk+len(q)].
func (d kvData) scores(sc, q []float32, off, ldk int, scale float32) {
	if d.h == nil {
		scores(sc, q, d.f[off:], ldk, scale)
		return
	}
	k := d.h[off:]
	s := active
	n := len(q)
	dv := n / s.dotStep * s.dotStep
	var out [4]float32
	j := 0
	if dv > 0 {
		for ; j+4 <= len(sc); j += 4 {
			s.dot4h(dv, &q[0], &k[j*ldk], ldk, &out[0])
			for r := range 4 {
				v := out[r]
				if dv < n {
					v += dotH(q[dv:], k[(j+r)*ldk+dv:(j+r)*ldk+n])
				}
				sc[j+r] = v * scale
			}
		}
	}
	for ; j < len(sc); j++ {
		sc[j] = dotH(q, k[j*ldk:j*ldk+n]) * scale
	}
}

// wsum sets out = sum_j p[j] * v[off+j*ldv:][:len(out)].
func (d kvData) wsum(out, p []float32, off, ldv int) {
	if d.h == nil {
		wsum(out, p, d.f[off:], ldv)
		return
	}
	v := d.h[off:]
	s := active
	n := len(out)
	dv := n / s.hStep * s.hStep
	if len(p) == 0 {
		clear(out)
		return
	}
	_ = v[(len(p)-1)*ldv+n-1] // bounds check for the kernel
	if dv > 0 {
		s.wsumh(&out[0], dv, &p[0], len(p), &v[0], ldv)
	}
	if dv < n {
		wsumF16Generic(&out[dv], n-dv, &p[0], len(p), &v[dv], ldv)
	}
}

func wsumF16Generic(out *float32, d int, p *float32, n int, v *uint16, ldv int) {
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
			o[i] += pj * f16(x)
		}
	}
}
