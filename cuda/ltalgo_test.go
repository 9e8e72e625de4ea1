package cuda

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/verbatimhq/verbatim/tensor"
)

// cuBLASLt's algorithm configuration attributes (cublasLtMatmulAlgoConfigAttributes_t) that name
// an algorithm in BenchmarkLtAlgos, with their sizes in bytes.
var ltConfigNames = []struct {
	name string
	attr int32
	size uintptr
}{{"id", 0, 4}, {"tile", 1, 4}, {"split", 2, 4}, {"stages", 6, 4}, {"cluster", 8, 2}}

// BenchmarkLtAlgos: the decoder's Linears at a batched step's rows (160: 32 windows of beam
// search 5; 32: greedy's 32 windows) with each of cuBLASLt's first eight algorithms for the
// shape, replayed back to back from graphs (BenchmarkSmallOps' replay). A sub-benchmark's name
// gives the algorithm's place in the heuristic's order and its configuration (id, tile, split
// K, stages, cluster shape) and the heuristic's estimate of its waves. On an H200 (2026-12-07,
// docs/performance.md) the heuristic's first was the fastest of the eight in each of the five
// shapes where it was timed (the sixth's first failed to replay then), a choice by the most
// waves no faster end to end, and the waves told nothing of the speed: Linear runs the first
// (makeLtPlan). Shapes of large-v3 and turbo: 1280 x 1280
// with a bias (q, v, the attention outputs, cross-attention's q), fc1 (5120 x 1280, bias) and
// fc2 (1280 x 5120, bias and the residual); the LM head (51,866 x 1280, no bias, and padded to
// 51,872) at the same rows; the encoder's three at 12,000 rows (a chunk of 8 windows). At 24,000
// and 48,000 rows (call 32) some algorithms reported 1,000-2,500 TFLOP/s, more than the card's
// peak: the replay's timing does not hold there, so those rows are not timed.
func BenchmarkLtAlgos(b *testing.B) {
	be := open(b, Options{})
	rng := rand.New(rand.NewPCG(7, 160))
	rnd := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = rng.Float32()*2 - 1
		}
		return v
	}
	for _, sh := range []struct {
		n, k        int
		accum, bias bool
		rows        []int
	}{
		// the decoder's, a batched step of beam search 5 and of greedy decoding
		{1280, 1280, false, true, []int{160, 32}}, {5120, 1280, false, true, []int{160, 32}}, {1280, 5120, true, true, []int{160, 32}},
		// the LM head, and padded to a multiple of 8 (the default; Options.NoPadN)
		{51866, 1280, false, false, []int{160, 32}}, {51872, 1280, false, false, []int{160}},
		// the encoder's, a chunk of 8 windows
		{1280, 1280, false, true, []int{12000}}, {5120, 1280, false, true, []int{12000}}, {1280, 5120, true, true, []int{12000}},
	} {
		maxRows := slices.Max(sh.rows)
		w := be.Upload(tensor.F16, tensor.Quantize(tensor.F16, rnd(sh.n*sh.k)), sh.n, sh.k)
		x := be.Upload(tensor.F16, tensor.Quantize(tensor.F16, rnd(maxRows*sh.k)), maxRows, sh.k)
		bias := be.FromF32(rnd(sh.n), sh.n)
		dst := be.FromF32(make([]float32, maxRows*sh.n), maxRows, sh.n)
		bp := ptr(bias)
		if !sh.bias {
			bp = 0
		}
		for _, rows := range sh.rows {
			key := ltKey{rows: rows, n: sh.n, k: sh.k, wdt: cudaR16F, ddt: cudaR32F, bias: sh.bias, accum: sh.accum}
			var plan *ltPlan
			var algos [][ltHeuristicSize]byte
			err := be.do(func() error {
				var err error
				if plan, err = be.makeLtPlan(key); err != nil {
					return err
				}
				algos, err = be.ltHeuristics(plan, key, 8)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			for i := range algos {
				name := fmt.Sprintf("rows=%d/n=%d/k=%d/%d", rows, sh.n, sh.k, i)
				for _, c := range ltConfigNames {
					name += fmt.Sprintf("-%s%d", c.name, be.ltAlgoConfig(&algos[i], c.attr, c.size))
				}
				p := *plan // the same descriptor and layouts, another algorithm
				p.algo = algos[i]
				b.Run(name, func(b *testing.B) {
					replay(b, be, func() {
						be.ltMatmul(&p, ptr(dst), ptr(x), ptr(w), bp, rows, sh.n, sh.k, sh.accum)
					})
					b.ReportMetric(float64(ltWaves(algos[i])), "waves")
					us := b.Elapsed().Seconds() * 1e6 / float64(b.N*32)
					b.ReportMetric(float64(2*sh.n*sh.k)/us/1e3, "GB/s-weights")
					b.ReportMetric(float64(2*rows*sh.n*sh.k)/us/1e6, "TFLOP/s")
				})
			}
			if err := be.do(func() error { be.destroyLtPlan(plan); return nil }); err != nil {
				b.Fatal(err)
			}
		}
		for _, t := range []*tensor.Tensor{w, x, bias, dst} {
			be.Free(t)
		}
	}
}
