package cuda

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/verbatimhq/verbatim/tensor"
)

// smallOps are the decoder's few-row Linear kernels at the sizes of large-v3 and turbo (d =
// 1280): k_linear_small1/4/8 (a warp an output column, CUDA cores) and k_linear_mma (tensor
// cores, 8 columns a block).
type smallOps struct {
	be   *Backend
	rng  *rand.Rand
	x, w *tensor.Tensor // [8, k] f32, [n, k] f16 or bf16
	bias *tensor.Tensor // [n] f16
	res  *tensor.Tensor // [8, n] f32
}

func (s *smallOps) rnd(n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = (s.rng.Float32()*2 - 1) * scale
	}
	return v
}

// newSmallOps makes x of multiples of 1/64 in [-1, 1] (exact in f16 and bf16, so that rounding
// x to the weight's type changes nothing) and wdt weights.
func newSmallOps(be *Backend, wdt tensor.DType, n, k int) *smallOps {
	s := &smallOps{be: be, rng: rand.New(rand.NewPCG(uint64(n), uint64(k)))}
	x := make([]float32, 8*k)
	for i := range x {
		x[i] = float32(s.rng.IntN(129)-64) / 64
	}
	s.x = be.FromF32(x, 8, k)
	s.w = be.Upload(wdt, tensor.Quantize(wdt, s.rnd(n*k, 0.05)), n, k)
	s.bias = be.Upload(tensor.F16, tensor.Quantize(tensor.F16, s.rnd(n, 1)), n)
	s.res = be.FromF32(s.rnd(8*n, 1), 8, n)
	return s
}

// linear launches kernel kern ("small": k_linear_small1/4/8 as linear picks them by rows;
// "mma": k_linear_mma) for m rows into dst.
func (s *smallOps) linear(kern string, m int, dst *tensor.Tensor, gelu, resid bool) {
	s.linearW(kern, linearMMAWarps, m, dst, gelu, resid)
}

// linearW is linear with warps warps a block for k_linear_mma.
func (s *smallOps) linearW(kern string, warps, m int, dst *tensor.Tensor, gelu, resid bool) {
	n, k := s.w.Dim(0), s.w.Dim(1)
	g, rp := uint64(0), uint64(0)
	if gelu {
		g = 1
	}
	if resid {
		rp = ptr(s.res)
	}
	name, grid, block := "k_linear_mma", (n+7)/8, [3]uint32{uint32(32 * warps), 1, 1}
	if kern == "small" {
		name, block = smallKernel(m), block256
	}
	s.be.kernel(name, [3]uint32{uint32(grid), 1, 1}, block, 0,
		u64(ptr(dst)), dtc(dst.DType), u64(ptr(s.x)), u64(ptr(s.w)), dtc(s.w.DType), u64(ptr(s.bias)), dtc(s.bias.DType),
		u64(rp), g, i32(m), i32(n), i32(k))
}

// TestLinearMMAAgrees: k_linear_mma gives k_linear_small's outputs (x exact in the weight's
// type, so only the order of the f32 sums differs) with f16 and bf16 weights, a bias, GELU and a
// residual, for 1 to 8 rows, an output count that is not a multiple of 8, K from 64 to 5120 and
// 1, 4 or 8 warps a block.
func TestLinearMMAAgrees(t *testing.T) {
	be := open(t, Options{})
	for _, wdt := range []tensor.DType{tensor.F16, tensor.BF16} {
		for _, nk := range [][2]int{{1280, 1280}, {1283, 640}, {256, 5120}, {37, 64}} {
			s := newSmallOps(be, wdt, nk[0], nk[1])
			for _, m := range []int{1, 3, 5, 8} {
				for _, epi := range []int{0, 1, 2} {
					want := be.FromF32(make([]float32, 8*nk[0]), 8, nk[0])
					s.linear("small", m, want, epi == 1, epi == 2)
					ref := be.ToF32(want)
					for _, warps := range []int{1, 4, 8} {
						got := be.FromF32(make([]float32, 8*nk[0]), 8, nk[0])
						s.linearW("mma", warps, m, got, epi == 1, epi == 2)
						out := be.ToF32(got)
						for i := range out {
							if d := math.Abs(float64(out[i] - ref[i])); d > 2e-4+1e-5*math.Abs(float64(ref[i])) {
								t.Fatalf("%s, n %d k %d, %d rows, epilogue %d, %d warps: out[%d] = %g, want %g", wdt, nk[0], nk[1], m, epi, warps, i, out[i], ref[i])
							}
						}
					}
				}
			}
		}
	}
}

// replay times body (launches only) as the GPU runs it: run once as plain ops (so that what it
// makes on first use, a cuBLASLt plan or workspace, is not made while recording), recorded into
// a CUDA graph 32 times over, run twice (seen, then captured), then replayed; the time per
// launch.
func replay(b *testing.B, be *Backend, body func()) {
	body()
	rec := func() {
		be.BeginGraph()
		for range 32 {
			body()
		}
		be.EndGraph()
	}
	rec()
	rec()
	if err := be.Sync(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		rec()
	}
	if err := be.Sync(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N*32), "us/launch")
	if be.GraphStats().Launched == 0 {
		b.Fatal("no graph was replayed")
	}
}

// BenchmarkSmallOps: the few-row Linear kernels as the GPU runs them back to back (graph
// replays, no launch cost on the host), at large-v3's sizes (each Linear of a decoder layer and
// the LM head) with 1, 5 (beam search of one window) and 8 rows; k_linear_mma with 4 and 8 warps
// a block.
func BenchmarkSmallOps(b *testing.B) {
	be := open(b, Options{})
	for _, nk := range [][2]int{{1280, 1280}, {3840, 1280}, {5120, 1280}, {1280, 5120}, {51866, 1280}} {
		s := newSmallOps(be, tensor.F16, nk[0], nk[1])
		dst := be.FromF32(make([]float32, 8*nk[0]), 8, nk[0])
		for _, m := range []int{1, 5, 8} {
			b.Run(fmt.Sprintf("linear/n=%d/k=%d/m=%d/small", nk[0], nk[1], m), func(b *testing.B) {
				replay(b, be, func() { s.linear("small", m, dst, false, true) })
			})
			for _, warps := range []int{4, 8} {
				b.Run(fmt.Sprintf("linear/n=%d/k=%d/m=%d/mma-%d", nk[0], nk[1], m, warps), func(b *testing.B) {
					replay(b, be, func() { s.linearW("mma", warps, m, dst, false, true) })
				})
			}
		}
	}
}

// BenchmarkCrossAttention: the decoder's cross-attention at large-v3's and turbo's size (20 heads
// of 64, 1,500 keys) over 32 windows, with beam search's 5 rows a window and greedy's 1, for each
// kernel choice (attnmma), 32 launches back to back a round (each reads 246 MB, so the
// launches' cost on the host is hidden). GB/s counts the keys and values read once a launch.
func BenchmarkCrossAttention(b *testing.B) {
	const windows, heads, d, tk = 32, 20, 64, 1500
	for _, opts := range []Options{{}, {NoAttnMMA: true}} {
		be := open(b, opts)
		u := uniform(rand.New(rand.NewPCG(1, 2)))
		rnd := func(n int) []float32 { return u(n, 1) }
		kv := make([]*tensor.Tensor, 2)
		for i := range kv {
			kv[i] = be.Upload(tensor.F16, tensor.Quantize(tensor.F16, rnd(windows*tk*heads*d)), windows, tk, heads*d)
		}
		for _, rows := range []int{5, 1} {
			q := be.FromF32(rnd(windows*rows*heads*d), windows, rows, heads*d)
			dst := be.FromF32(make([]float32, windows*rows*heads*d), windows, rows, heads*d)
			b.Run(fmt.Sprintf("%s/rows=%d", cmp.Or(opts.String(), "defaults"), rows), func(b *testing.B) {
				us := launchTime(b, be, 32, func() { be.Attention(dst, q, kv[0], kv[1], heads, tk, 0.125, false) })
				b.ReportMetric(float64(2*windows*tk*heads*d*2)/us/1e3, "GB/s")
			})
			be.Free(q)
			be.Free(dst)
		}
		be.Free(kv[0])
		be.Free(kv[1])
		be.Close()
	}
}

// BenchmarkEncoderAttention: the encoder's flash attention at large-v3's and turbo's size (20
// heads of 64, 1,500 queries and keys) over 32 windows (the encoder's batch), f16 keys and
// values, with k_attn_flash_w and with flash=convert (k_attn_flash), and the registers and
// spilled bytes a thread that the loaded kernel reports. TFLOP/s counts QK^T and PV.
func BenchmarkEncoderAttention(b *testing.B) {
	const windows, heads, d, tk = 32, 20, 64, 1500
	for _, opts := range []Options{{}, {FlashConvert: true}} {
		be := open(b, opts)
		u := uniform(rand.New(rand.NewPCG(1, 2)))
		rnd := func(n int) []float32 { return u(n, 1) }
		n := windows * tk * heads * d
		k := be.Upload(tensor.F16, tensor.Quantize(tensor.F16, rnd(n)), windows, tk, heads*d)
		v := be.Upload(tensor.F16, tensor.Quantize(tensor.F16, rnd(n)), windows, tk, heads*d)
		q := be.FromF32(rnd(n), windows, tk, heads*d)
		dst := be.FromF32(make([]float32, n), windows, tk, heads*d)
		name := "k_attn_flash_w"
		if opts.FlashConvert {
			name = "k_attn_flash"
		}
		b.Run(name, func(b *testing.B) {
			us := launchTime(b, be, 8, func() { be.Attention(dst, q, k, v, heads, tk, 0.125, false) })
			b.ReportMetric(4*float64(windows*heads)*tk*tk*d/us/1e6, "TFLOP/s")
			b.ReportMetric(float64(be.funcAttr(name, funcAttrNumRegs)), "regs")
			b.ReportMetric(float64(be.funcAttr(name, funcAttrLocalSizeBytes)), "spill-bytes")
		})
		for _, t := range []*tensor.Tensor{k, v, q, dst} {
			be.Free(t)
		}
		be.Close()
	}
}

// launchTime times rounds of n launches back to back, each round ended by a Sync, after one
// round untimed; it reports and returns the microseconds a launch.
func launchTime(b *testing.B, be *Backend, n int, launch func()) float64 {
	round := func() {
		for range n {
			launch()
		}
		if err := be.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	round()
	b.ResetTimer()
	for range b.N {
		round()
	}
	us := b.Elapsed().Seconds() * 1e6 / float64(b.N*n)
	b.ReportMetric(us, "us/launch")
	return us
}
