package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/verbatimhq/verbatim/tensor"
)

// round16 returns x rounded to binary16 and back, and the binary16 bits.
func round16(x []float32) ([]float32, []uint16) {
	r, h := make([]float32, len(x)), make([]uint16, len(x))
	for i, v := range x {
		h[i] = tensor.F32ToF16(v)
		r[i] = tensor.F16ToF32(h[i])
	}
	return r, h
}

// TestHalfCaches checks the F16 cache paths (tensor.HalfCaches) with every kernel set: Linear,
// SetRows and Copy into F16 store exactly the rounding of their F32 results, and Attention (both
// the blocked and the few-query path) and AttentionProbs with F16 keys and values agree with the
// F32 ops on the rounded values. Head widths that are not a multiple of the vector width
// exercise the kernels' scalar tails.
func TestHalfCaches(t *testing.T) {
	withSIMD(t, func(t *testing.T) {
		be := newBackend(t, 2)
		rng := rand.New(rand.NewPCG(3, 4))
		randn := func(n int) []float32 {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			return x
		}
		up16 := func(h []uint16, shape ...int) *tensor.Tensor {
			t := be.Alloc(tensor.F16, shape...)
			copy(be.f16(t), h)
			return t
		}

		// Linear into F16: a few rows, and GEMM's tiles (with row slabs, and column slabs).
		for _, sh := range [][2]int{{3, 48}, {9, 48}, {40, 48}, {300, 48}, {70000, 48}, {20, 40000}} {
			rows, n := sh[0], sh[1]
			x, w, bias := be.FromF32(randn(rows*32), rows, 32), be.FromF32(randn(n*32), n, 32), be.FromF32(randn(n), n)
			for _, b := range []*tensor.Tensor{bias, nil} {
				want := be.Alloc(tensor.F32, rows, n)
				be.Linear(want, x, w, b)
				got := be.Alloc(tensor.F16, rows, n)
				be.Linear(got, x, w, b)
				_, wh := round16(be.f32(want))
				for i, h := range be.f16(got) {
					if h != wh[i] {
						t.Fatalf("Linear [%d %d], bias %v: element %d is %#x, want %#x", rows, n, b != nil, i, h, wh[i])
					}
				}
			}
		}

		// SetRows and Copy into F16.
		src := randn(2 * 3 * 20)
		_, sh := round16(src)
		cache := be.Alloc(tensor.F16, 2, 10, 20)
		be.SetRows(cache, 4, be.FromF32(src, 2, 3, 20))
		for b := range 2 {
			for i := range 3 * 20 {
				if got := be.f16(cache)[(b*10+4)*20+i]; got != sh[b*60+i] {
					t.Fatalf("SetRows: batch %d element %d is %#x, want %#x", b, i, got, sh[b*60+i])
				}
			}
		}
		cp := be.Alloc(tensor.F16, len(src))
		be.Copy(cp, be.FromF32(src, len(src)))
		for i, h := range be.f16(cp) {
			if h != sh[i] {
				t.Fatalf("Copy: element %d is %#x, want %#x", i, h, sh[i])
			}
		}

		// Attention and AttentionProbs.
		for _, d := range []int{64, 20} {
			const b, tk, heads = 2, 37, 3
			hd := heads * d
			kf, kh := round16(randn(b * tk * hd))
			vf, vh := round16(randn(b * tk * hd))
			for _, tq := range []int{1, 5, 30} {
				for _, causal := range []bool{false, true} {
					q := be.FromF32(randn(b*tq*hd), b, tq, hd)
					want, got := be.Alloc(tensor.F32, b, tq, hd), be.Alloc(tensor.F32, b, tq, hd)
					kv := tk - 3
					be.Attention(want, q, be.FromF32(kf, b, tk, hd), be.FromF32(vf, b, tk, hd), heads, kv, 0.3, causal)
					be.Attention(got, q, up16(kh, b, tk, hd), up16(vh, b, tk, hd), heads, kv, 0.3, causal)
					for i, w := range be.f32(want) {
						if g := be.f32(got)[i]; math.Abs(float64(g-w)) > 1e-4 {
							t.Fatalf("Attention d=%d tq=%d causal=%v: element %d is %g, want %g", d, tq, causal, i, g, w)
						}
					}
					pw, pg := be.Alloc(tensor.F32, b, heads, tq, kv), be.Alloc(tensor.F32, b, heads, tq, kv)
					be.AttentionProbs(pw, q, be.FromF32(kf, b, tk, hd), heads, kv, 0.3, causal)
					be.AttentionProbs(pg, q, up16(kh, b, tk, hd), heads, kv, 0.3, causal)
					for i, w := range be.f32(pw) {
						if g := be.f32(pg)[i]; math.Abs(float64(g-w)) > 1e-5 {
							t.Fatalf("AttentionProbs d=%d tq=%d causal=%v: element %d is %g, want %g", d, tq, causal, i, g, w)
						}
					}
				}
			}
		}
	})
}
