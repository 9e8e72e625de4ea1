package cuda

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/verbatimhq/verbatim/cpu"
	"github.com/verbatimhq/verbatim/tensor"
)

// TestLinearLt checks the cuBLASLt path (bias in the epilogue, residual as beta = 1, LinearGELU
// kept packed as f16 in dst's buffer) against the CPU backend with the unfused ops, for the MLP
// pattern (fc1 GELU then fc2 reading its packed output) and for every way a packed tensor is
// left: read back (ToF32), read by another op (Add), overwritten by the next LinearGELU, read by
// a Linear on the cuBLAS path (a BF16 weight, held to the bf16 error bound) and freed. F16 weights and biases as in a
// 16-bit model; tolerance abs 2e-3 + rel 5e-3. Runs with cuBLASLt on and off (Options.NoLt).
func TestLinearLt(t *testing.T) {
	rnd := uniform(rand.New(rand.NewPCG(11, 3)))
	const d, f = 256, 1024
	w1, w2 := tensor.Quantize(tensor.F16, rnd(f*d, 0.1)), tensor.Quantize(tensor.F16, rnd(d*f, 0.05))
	w2bf := tensor.Quantize(tensor.BF16, rnd(d*f, 0.05))
	b1, b2 := tensor.Quantize(tensor.F16, rnd(f, 1)), tensor.Quantize(tensor.F16, rnd(d, 1))
	// The CPU backend takes F32 biases only: it gets the same values widened.
	widen := func(raw []byte) []float32 {
		v := make([]float32, len(raw)/2)
		for i := range v {
			v[i] = tensor.F16ToF32(uint16(raw[2*i]) | uint16(raw[2*i+1])<<8)
		}
		return v
	}
	c, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, opts := range []Options{{}, {NoLt: true}} {
		for _, rows := range []int{12, 64, 300} {
			t.Run(fmt.Sprintf("%s/rows=%d", cmp.Or(opts.String(), "defaults"), rows), func(t *testing.T) {
				g := open(t, opts)
				xv, rv := rnd(rows*d, 1), rnd(rows*d, 1)
				var bound []float32 // sum |h| |w| of output 4, from the oracle
				run := func(b tensor.Backend) (out [][]float32) {
					x := b.FromF32(xv, rows, d)
					r := b.FromF32(rv, rows, d)
					fc1, fc2 := b.Upload(tensor.F16, w1, f, d), b.Upload(tensor.F16, w2, d, f)
					fc2bf := b.Upload(tensor.BF16, w2bf, d, f)
					bias1, bias2 := b.Upload(tensor.F16, b1, f), b.Upload(tensor.F16, b2, d)
					if b == tensor.Backend(c) {
						bias1, bias2 = b.FromF32(widen(b1), f), b.FromF32(widen(b2), d)
					}
					h := b.Alloc(tensor.F32, rows, f)
					q := b.Alloc(tensor.F32, rows, d)
					gelu := func(dst *tensor.Tensor) {
						if fl, ok := b.(tensor.FusedLinear); ok && b != tensor.Backend(c) {
							fl.LinearGELU(dst, x, fc1, bias1)
							return
						}
						b.Linear(dst, x, fc1, bias1)
						b.GELU(dst, dst)
					}
					addTo := func(dst, a, w, bias *tensor.Tensor) {
						if b != tensor.Backend(c) {
							b.(tensor.FusedLinear).LinearAdd(dst, a, w, bias)
							return
						}
						tmp := b.Alloc(tensor.F32, rows, d)
						b.Linear(tmp, a, w, bias)
						b.Add(dst, dst, tmp)
					}
					// The MLP: fc2 reads fc1's packed output.
					gelu(h)
					addTo(r, h, fc2, bias2)
					out = append(out, b.ToF32(r))
					// Linear with a bias into F32.
					b.Linear(h, x, fc1, bias1)
					out = append(out, b.ToF32(h))
					// Overwritten by the next LinearGELU, then read by another op.
					gelu(h)
					gelu(h)
					h2 := b.Alloc(tensor.F32, rows, f)
					b.Add(h2, h, h)
					out = append(out, b.ToF32(h2))
					// Read back directly.
					gelu(h)
					out = append(out, b.ToF32(h))
					// Read by a Linear with a BF16 weight (widened first), then by fc2.
					gelu(h)
					if b == tensor.Backend(c) {
						// The GPU rounds the activations to bf16 (8 bits) for this GEMM, after
						// fc1's f16 output: its error bound is relative to sum |h| |w| per
						// output, which the oracle computes from the absolute values.
						hv := b.ToF32(h)
						for i := range hv {
							hv[i] = float32(math.Abs(float64(hv[i])))
						}
						wv := make([]float32, d*f)
						for i := range wv {
							wv[i] = float32(math.Abs(float64(tensor.BF16ToF32(uint16(w2bf[2*i]) | uint16(w2bf[2*i+1])<<8))))
						}
						ab := b.Alloc(tensor.F32, rows, d)
						b.Linear(ab, b.FromF32(hv, rows, f), b.FromF32(wv, d, f), nil)
						bound = b.ToF32(ab)
					}
					b.Linear(q, h, fc2bf, bias2)
					out = append(out, b.ToF32(q))
					addTo(r, h, fc2, nil)
					out = append(out, b.ToF32(r))
					gelu(h)
					b.Free(h)
					return out
				}
				want, got := run(c), run(g)
				for i := range want {
					for j := range want[i] {
						e := math.Abs(float64(got[i][j] - want[i][j]))
						tol := 2e-3 + 5e-3*math.Abs(float64(want[i][j]))
						if i == 4 { // the bf16 GEMM: two roundings of 2^-9 per product
							tol = 1e-4 + math.Ldexp(float64(bound[j]), -7)
						}
						if !(e <= tol) {
							t.Fatalf("output %d, element %d: %g, cpu %g", i, j, got[i][j], want[i][j])
						}
					}
				}
			})
		}
	}
}

// uniform returns a function of rng that makes n values uniform in [-s, s).
func uniform(rng *rand.Rand) func(n int, s float32) []float32 {
	return func(n int, s float32) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = (rng.Float32()*2 - 1) * s
		}
		return x
	}
}

// TestDiscardPacked: the encoder's MLP pattern, where the next layer's projections write into the
// MLP's scratch (their buffers are quarters of it). Without Discard the packed fc1 output is
// widened back to f32 before that write; after Discard it is not, and the results are the same.
func TestDiscardPacked(t *testing.T) {
	rnd := uniform(rand.New(rand.NewPCG(5, 8)))
	const rows, d = 300, 256
	xv, rv := rnd(rows*d, 1), rnd(rows*d, 1)
	w1, w2, wq := tensor.Quantize(tensor.F16, rnd(4*d*d, 0.1)), tensor.Quantize(tensor.F16, rnd(4*d*d, 0.05)), tensor.Quantize(tensor.F16, rnd(d*d, 0.1))
	run := func(discard bool) (out [][]float32, widened int) {
		g := open(t, Options{})
		x, r := g.FromF32(xv, rows, d), g.FromF32(rv, rows, d)
		fc1, fc2, wqt := g.Upload(tensor.F16, w1, 4*d, d), g.Upload(tensor.F16, w2, d, 4*d), g.Upload(tensor.F16, wq, d, d)
		f := g.Alloc(tensor.F32, rows, 4*d)
		q := &tensor.Tensor{DType: tensor.F32, Shape: []int{rows, d}, Buf: f.Buf, Offset: f.Offset} // quarter 0
		for range 2 {
			g.LinearGELU(f, x, fc1, nil)
			g.LinearAdd(r, f, fc2, nil)
			if discard {
				g.Discard(f)
			}
			g.Linear(q, r, wqt, nil)
			out = append(out, g.ToF32(r), g.ToF32(q))
		}
		return out, g.widened
	}
	want, nw := run(false)
	got, dw := run(true)
	if nw == 0 || dw != 0 {
		t.Fatalf("packed tensors widened: %d without Discard (want some), %d with it (want 0)", nw, dw)
	}
	for i := range want {
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				t.Fatalf("output %d, element %d: %g with Discard, %g without", i, j, got[i][j], want[i][j])
			}
		}
	}
}
