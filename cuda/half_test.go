package cuda

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/verbatimhq/verbatim/tensor"
)

// TestHalfOutputs: LayerNormHalf and AttentionHalf (tensor.HalfOutputs) against LayerNorm and
// Attention. The Linear that reads the result gets the same bits either way (the GEMM reads the
// f16 values: the shadow, or the packed result in place); anything else that reads it gets the
// f16 rounding of the F32 result, widened once (by the read-back, or with lt=off by the Linear);
// a second write over a packed result forgets it without widening; over the small-row kernels'
// rows, and with Options.Precise, the results are LayerNorm's and Attention's own F32 values, as
// with Options.NoHalfOut. With cuBLASLt and without (Options.NoLt: the packed input is widened
// and converted again, to the same f16 values).
func TestHalfOutputs(t *testing.T) {
	rnd := uniform(rand.New(rand.NewPCG(17, 4)))
	const d, h, hd, n = 256, 2, 128, 24
	for _, opts := range []Options{{}, {NoLt: true}, {Precise: true}, {NoHalfOut: true}} {
		for _, rows := range []int{4, 300} {
			t.Run(fmt.Sprintf("opts=%q/rows=%d", opts.String(), rows), func(t *testing.T) {
				g := open(t, opts)
				xv := rnd(rows*d, 2)
				gv, bv := rnd(d, 1), rnd(d, 0.5)
				wv := rnd(n*d, 0.1)
				x, gam, bet := g.FromF32(xv, rows, d), g.FromF32(gv, d), g.FromF32(bv, d)
				w := g.Upload(tensor.F16, tensor.Quantize(tensor.F16, wv), n, d)
				// The attention's inputs: one batch of rows query rows, 2 heads of 64, f16 K/V
				// (f32 with Options.Precise, which takes no f16 activations, as the encoder's).
				qv, kv, vv := rnd(rows*hd, 1), rnd(rows*hd, 1), rnd(rows*hd, 1)
				q := g.FromF32(qv, 1, rows, hd)
				kvt := tensor.F16
				if opts.Precise {
					kvt = tensor.F32
				}
				kIn, vIn := g.Alloc(kvt, 1, rows, hd), g.Alloc(kvt, 1, rows, hd)
				g.Copy(kIn, g.FromF32(kv, 1, rows, hd))
				g.Copy(vIn, g.FromF32(vv, 1, rows, hd))
				wa := g.Upload(tensor.F16, tensor.Quantize(tensor.F16, rnd(n*hd, 0.1)), n, hd)

				type op struct {
					name       string
					full, half func(dst *tensor.Tensor)
					dst        func() *tensor.Tensor
					w          *tensor.Tensor
				}
				ops := []op{
					{"LayerNorm",
						func(dst *tensor.Tensor) { g.LayerNorm(dst, x, gam, bet, 1e-5) },
						func(dst *tensor.Tensor) { g.LayerNormHalf(dst, x, gam, bet, 1e-5) },
						func() *tensor.Tensor { return g.Alloc(tensor.F32, rows, d) }, w},
					{"Attention",
						func(dst *tensor.Tensor) { g.Attention(dst, q, kIn, vIn, h, rows, 0.125, false) },
						func(dst *tensor.Tensor) { g.AttentionHalf(dst, q, kIn, vIn, h, rows, 0.125, false) },
						func() *tensor.Tensor { return g.Alloc(tensor.F32, 1, rows, hd) }, wa},
				}
				for _, o := range ops {
					ref := o.dst()
					o.full(ref)
					yRef := g.Alloc(tensor.F32, rows, n)
					g.Linear(yRef, ref.Reshape(rows, ref.Len()/rows), o.w, nil)
					want, wantY := g.ToF32(ref), g.ToF32(yRef)

					dst := o.dst()
					o.half(dst)
					o.half(dst) // written over whole: forgotten, not widened
					if g.widened != 0 {
						t.Fatalf("%s: %d packed tensors widened by a second write", o.name, g.widened)
					}
					y := g.Alloc(tensor.F32, rows, n)
					g.Linear(y, dst.Reshape(rows, dst.Len()/rows), o.w, nil)
					gotY := g.ToF32(y)
					for i := range wantY {
						if gotY[i] != wantY[i] {
							t.Fatalf("%s: the Linear after it, element %d: %g, after the F32 result %g", o.name, i, gotY[i], wantY[i])
						}
					}
					got := g.ToF32(dst)
					// Packed, the result is widened once: by the read-back, or before it by the
					// Linear where cuBLASLt does not read it in place (lt=off).
					packed := !opts.NoHalfOut && !opts.Precise && rows > 8 // the flash kernel takes 16 query rows or more, as here
					want1 := 0
					if packed {
						want1 = 1
					}
					if g.widened != want1 {
						t.Fatalf("%s: packed %v, widened %d times, want %d", o.name, packed, g.widened, want1)
					}
					for i := range want {
						w := want[i]
						if packed {
							w = tensor.F16ToF32(tensor.F32ToF16(w))
						}
						if got[i] != w {
							t.Fatalf("%s: element %d read back %g, want %g (F32 result %g)", o.name, i, got[i], w, want[i])
						}
					}
					g.widened = 0
					for _, u := range []*tensor.Tensor{ref, yRef, dst, y} {
						g.Free(u)
					}
				}
			})
		}
	}
}
