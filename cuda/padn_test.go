package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/verbatimhq/verbatim/tensor"
)

// TestPadN: Linear with an f16 weight of n outputs, n not a multiple of 8, through the padded
// copy (the default) and without (Options.NoPadN), against a float64 product of the same f16-rounded inputs:
// within the GEMM's f32 accumulation either way, at rows the small-row kernels take (not
// padded), at rows of cuBLASLt and recorded for a graph; and the copy dropped with the weight.
func TestPadN(t *testing.T) {
	rnd := uniform(rand.New(rand.NewPCG(5, 8)))
	const n, k = 1001, 256
	wv, xv := rnd(n*k, 0.1), rnd(200*k, 1)
	wr, xr := roundHalf(t, wv), roundHalf(t, xv)
	for _, opts := range []Options{{}, {NoPadN: true}} {
		for _, rows := range []int{5, 40, 200} {
			for _, graph := range []bool{false, true} {
				t.Run(fmt.Sprintf("opts=%q/rows=%d/graph=%v", opts.String(), rows, graph), func(t *testing.T) {
					g := open(t, opts)
					w := g.Upload(tensor.F16, tensor.Quantize(tensor.F16, wv), n, k)
					x := g.FromF32(xv[:rows*k], rows, k)
					dst := g.Alloc(tensor.F32, rows, n)
					run := func() { g.Linear(dst, x, w, nil) }
					if graph { // seen once, then captured, then replayed
						for range 3 {
							g.BeginGraph()
							run()
							g.EndGraph()
						}
					} else {
						run()
					}
					// The picks read the rows where the GEMM left them (padout.go), then ReadF32
					// copies them into dst.
					prow := make([]tensor.PickRow, rows)
					for i := range prow {
						prow[i] = tensor.PickRow{Mask: -1, TSBegin: n - 100, TSRule: i%2 == 0}
					}
					const topK = 6
					picks, top, greedy := make([]tensor.Pick, rows), make([]tensor.Cand, rows*topK), make([]tensor.Pick, rows)
					g.PickTop(dst, nil, prow, topK, picks, top)
					g.PickGreedy(dst, nil, prow, greedy)
					if lazy, want := len(g.padOut) > 0, !opts.NoPadN && rows > g.gemvRows; lazy != want {
						t.Errorf("held in the padded block after the picks: %v, want %v", lazy, want)
					}
					got := g.ToF32(dst)
					if len(g.padOut) != 0 {
						t.Errorf("%d padded outputs left after ReadF32", len(g.padOut))
					}
					wantPicks, wantTop, wantGreedy := make([]tensor.Pick, rows), make([]tensor.Cand, rows*topK), make([]tensor.Pick, rows)
					// the host's picks mask their rows in place: each on a copy
					tensor.PickTopRowsF32(slices.Clone(got), nil, prow, topK, wantPicks, wantTop)
					tensor.PickRowsF32(slices.Clone(got), nil, prow, wantGreedy)
					for i := range rows {
						if picks[i].Token != wantPicks[i].Token || greedy[i].Token != wantGreedy[i].Token || greedy[i].TS != wantGreedy[i].TS {
							t.Fatalf("row %d: picks %+v and %+v, want %+v and %+v", i, picks[i], greedy[i], wantPicks[i], wantGreedy[i])
						}
						for j := range topK {
							h, w := top[i*topK+j], wantTop[i*topK+j]
							if h.Token != w.Token || math.Abs(h.LogProb-w.LogProb) > 1e-4 {
								t.Fatalf("row %d candidate %d: %+v, want %+v", i, j, h, w)
							}
						}
					}
					for r := range rows {
						for c := range n {
							var s, a float64
							for i := range k {
								p := float64(xr[r*k+i]) * float64(wr[c*k+i])
								s += p
								a += math.Abs(p)
							}
							if d := math.Abs(float64(got[r*n+c]) - s); d > 1e-5*a+1e-6 {
								t.Fatalf("row %d column %d: %g, want %g", r, c, got[r*n+c], s)
							}
						}
					}
					padded := len(g.padCopies) > 0
					if want := !opts.NoPadN && rows > g.gemvRows; padded != want {
						t.Errorf("padded copies: %d, want one: %v", len(g.padCopies), want)
					}
					g.Free(w)
					if len(g.padCopies) != 0 {
						t.Errorf("%d padded copies left after the weight was freed", len(g.padCopies))
					}
				})
			}
		}
	}
}

// roundHalf returns v rounded to f16 and widened back: the values a GEMM on f16 operands reads.
func roundHalf(t testing.TB, v []float32) []float32 {
	t.Helper()
	out := make([]float32, len(v))
	if err := tensor.Dequantize(tensor.F16, tensor.Quantize(tensor.F16, v), out); err != nil {
		t.Fatal(err)
	}
	return out
}
