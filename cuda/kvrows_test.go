package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/verbatimhq/verbatim/tensor"
)

// TestLinearRows: a decoder step's projection written by its GEMM straight into row at of each
// sequence's f16 cache (Backend.LinearRows) against Linear into an f32 scratch and SetRows (the
// path kvrows=copy keeps), and both against a float64 product of the same f16-rounded inputs:
// the other rows of the cache untouched, the written row within an f16 rounding (the bias is
// added as its f16 copy). With and without a bias, with x read from a layer norm's f16 shadow
// or converted, recorded for a graph, and the cases that must report false (few rows, two
// tokens a sequence, kvrows=copy) leaving the cache as it was.
func TestLinearRows(t *testing.T) {
	rnd := uniform(rand.New(rand.NewPCG(11, 3)))
	const n, k, T, at = 256, 128, 12, 7
	wv, bv, gv := rnd(n*k, 0.1), rnd(n, 0.5), rnd(k, 1)
	wr := roundHalf(t, wv)
	for _, c := range []struct {
		opts    Options
		rows    int
		tokens  int
		bias    bool
		ln      bool
		graph   bool
		applies bool
	}{
		{rows: 160, tokens: 1, applies: true},
		{rows: 160, tokens: 1, bias: true, applies: true},
		{rows: 160, tokens: 1, bias: true, ln: true, applies: true},
		{rows: 40, tokens: 1, bias: true, ln: true, graph: true, applies: true},
		{rows: 5, tokens: 1, bias: true},
		{rows: 40, tokens: 2, bias: true},
		{opts: Options{NoKVRows: true}, rows: 160, tokens: 1, bias: true},
	} {
		name := fmt.Sprintf("opts=%q/rows=%d/tokens=%d/bias=%v/ln=%v/graph=%v", c.opts.String(), c.rows, c.tokens, c.bias, c.ln, c.graph)
		t.Run(name, func(t *testing.T) {
			g := open(t, c.opts)
			w := g.Upload(tensor.F16, tensor.Quantize(tensor.F16, wv), n, k)
			var bias *tensor.Tensor
			if c.bias {
				bias = g.FromF32(bv, n)
			}
			in := rnd(c.rows*c.tokens*k, 1)
			x := g.FromF32(in, c.rows, c.tokens, k)
			old := rnd(c.rows*T*n, 1)
			cache := g.Upload(tensor.F16, tensor.Quantize(tensor.F16, old), c.rows, T, n)
			before := g.ToF32(cache)
			if c.ln { // x from a layer norm, which leaves an f16 shadow of it for the GEMM
				x = g.Alloc(tensor.F32, c.rows, c.tokens, k)
				g.LayerNorm(x, g.FromF32(in, c.rows, c.tokens, k), g.FromF32(gv, k), g.FromF32(make([]float32, k), k), 1e-5)
			}
			var did bool
			graphed(g, c.graph, func() { did = g.LinearRows(cache, at, x, w, bias) })
			got := g.ToF32(cache)
			xr := roundHalf(t, g.ToF32(x))
			if did != c.applies {
				t.Fatalf("LinearRows reported %v, want %v", did, c.applies)
			}
			if !did {
				for i := range got {
					if got[i] != before[i] {
						t.Fatalf("reported false but element %d changed: %g -> %g", i, before[i], got[i])
					}
				}
				return
			}
			// the old path on the same device: Linear into f32, SetRows into a copy of the cache
			ref := g.Upload(tensor.F16, tensor.Quantize(tensor.F16, old), c.rows, T, n)
			tmp := g.Alloc(tensor.F32, c.rows, 1, n)
			g.Linear(tmp, x, w, bias)
			g.SetRows(ref, at, tmp)
			want := g.ToF32(ref)
			for r := range c.rows {
				for p := range T {
					for j := range n {
						i := (r*T+p)*n + j
						if p != at {
							if got[i] != before[i] {
								t.Fatalf("sequence %d, row %d (not %d), column %d: %g -> %g", r, p, at, j, before[i], got[i])
							}
							continue
						}
						var e float64
						for q := range k {
							e += float64(xr[r*k+q]) * float64(wr[j*k+q])
						}
						if c.bias {
							e += float64(bv[j])
						}
						tol := 2e-3*math.Abs(e) + 1e-3
						if d := math.Abs(float64(got[i]) - e); d > tol {
							t.Fatalf("sequence %d, column %d: %g, want %g (float64), off by %.3g > %.3g", r, j, got[i], e, d, tol)
						}
						if d := math.Abs(float64(got[i] - want[i])); d > tol {
							t.Fatalf("sequence %d, column %d: %g, the copied path's %g, off by %.3g > %.3g", r, j, got[i], want[i], d, tol)
						}
					}
				}
			}
		})
	}
}

// TestLinearQKV: a decoder step's three self-attention projections as one GEMM of the weights
// stacked [3n, k] and a split (Backend.LinearQKV): the queries in f32 within an f16 input's
// rounding of a float64 product and of Linear by the query rows' view, the keys and values in
// row at of their f16 caches within an f16 rounding, every other row untouched; from a layer
// norm's shadow, recorded for a graph, and the cases that must report false leaving the caches
// and the queries as they were.
func TestLinearQKV(t *testing.T) {
	rnd := uniform(rand.New(rand.NewPCG(12, 5)))
	const n, k, T, at = 256, 128, 12, 7
	wv, bv, gv := rnd(3*n*k, 0.1), rnd(3*n, 0.5), rnd(k, 1)
	for i := n; i < 2*n; i++ {
		bv[i] = 0 // the keys have no bias
	}
	wr := roundHalf(t, wv)
	for _, c := range []struct {
		opts    Options
		rows    int
		tokens  int
		ln      bool
		graph   bool
		applies bool
	}{
		{rows: 160, tokens: 1, applies: true},
		{rows: 40, tokens: 1, ln: true, graph: true, applies: true},
		{rows: 5, tokens: 1},
		{rows: 40, tokens: 2},
		{opts: Options{NoQKV: true}, rows: 40, tokens: 1},
		{opts: Options{NoKVRows: true}, rows: 40, tokens: 1},
	} {
		name := fmt.Sprintf("opts=%q/rows=%d/tokens=%d/ln=%v/graph=%v", c.opts.String(), c.rows, c.tokens, c.ln, c.graph)
		t.Run(name, func(t *testing.T) {
			g := open(t, c.opts)
			if g.FusesQKV() == (c.opts.NoQKV || c.opts.NoKVRows) {
				t.Fatalf("FusesQKV %v with options %q", g.FusesQKV(), c.opts.String())
			}
			w := g.Upload(tensor.F16, tensor.Quantize(tensor.F16, wv), 3*n, k)
			bias := g.FromF32(bv, 3*n)
			in := rnd(c.rows*c.tokens*k, 1)
			x := g.FromF32(in, c.rows, c.tokens, k)
			if c.ln {
				x = g.Alloc(tensor.F32, c.rows, c.tokens, k)
				g.LayerNorm(x, g.FromF32(in, c.rows, c.tokens, k), g.FromF32(gv, k), g.FromF32(make([]float32, k), k), 1e-5)
			}
			oldK, oldV, oldQ := rnd(c.rows*T*n, 1), rnd(c.rows*T*n, 1), rnd(c.rows*c.tokens*n, 1)
			kc := g.Upload(tensor.F16, tensor.Quantize(tensor.F16, oldK), c.rows, T, n)
			vc := g.Upload(tensor.F16, tensor.Quantize(tensor.F16, oldV), c.rows, T, n)
			q := g.FromF32(oldQ, c.rows, c.tokens, n)
			beforeK, beforeV := g.ToF32(kc), g.ToF32(vc)
			var did bool
			graphed(g, c.graph, func() { did = g.LinearQKV(q, kc, vc, at, x, w, bias) })
			if did != c.applies {
				t.Fatalf("LinearQKV reported %v, want %v", did, c.applies)
			}
			gotK, gotV, gotQ := g.ToF32(kc), g.ToF32(vc), g.ToF32(q)
			if !did {
				for i := range gotK {
					if gotK[i] != beforeK[i] || gotV[i] != beforeV[i] {
						t.Fatalf("reported false but element %d of a cache changed", i)
					}
				}
				for i := range gotQ {
					if gotQ[i] != oldQ[i] {
						t.Fatalf("reported false but query %d changed: %g -> %g", i, oldQ[i], gotQ[i])
					}
				}
				return
			}
			xr := roundHalf(t, g.ToF32(x))
			ref := g.Alloc(tensor.F32, c.rows, 1, n)
			g.Linear(ref, x, w.Slice(0, n), g.FromF32(bv[:n], n))
			refQ := g.ToF32(ref)
			want := func(r, j int) float64 { // output j of the stacked product for sequence r
				e := float64(bv[j])
				for p := range k {
					e += float64(xr[r*k+p]) * float64(wr[j*k+p])
				}
				return e
			}
			for r := range c.rows {
				for j := range n {
					e := want(r, j)
					tol := 1e-4*math.Abs(e) + 1e-4
					if d := math.Abs(float64(gotQ[r*n+j]) - e); d > tol {
						t.Fatalf("query of sequence %d, column %d: %g, want %g (float64), off by %.3g > %.3g", r, j, gotQ[r*n+j], e, d, tol)
					}
					if d := math.Abs(float64(gotQ[r*n+j] - refQ[r*n+j])); d > tol {
						t.Fatalf("query of sequence %d, column %d: %g, Linear's %g, off by %.3g > %.3g", r, j, gotQ[r*n+j], refQ[r*n+j], d, tol)
					}
				}
				for part, caches := range [2][2][]float32{{gotK, beforeK}, {gotV, beforeV}} {
					got, before := caches[0], caches[1]
					for p := range T {
						for j := range n {
							i := (r*T+p)*n + j
							if p != at {
								if got[i] != before[i] {
									t.Fatalf("cache %d, sequence %d, row %d (not %d), column %d: %g -> %g", part, r, p, at, j, before[i], got[i])
								}
								continue
							}
							e := want(r, (part+1)*n+j)
							tol := 1e-3*math.Abs(e) + 1e-4 // one f16 rounding
							if d := math.Abs(float64(got[i]) - e); d > tol {
								t.Fatalf("cache %d, sequence %d, column %d: %g, want %g (float64), off by %.3g > %.3g", part, r, j, got[i], e, d, tol)
							}
						}
					}
				}
			}
		})
	}
}

// graphed runs f once, or with graph three times as a graph's recording: seen once, then
// captured, then replayed.
func graphed(g *Backend, graph bool, f func()) {
	if !graph {
		f()
		return
	}
	for range 3 {
		g.BeginGraph()
		f()
		g.EndGraph()
	}
}
