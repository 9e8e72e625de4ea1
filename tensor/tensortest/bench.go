package tensortest

import (
	"fmt"
	"math"
	"testing"

	"github.com/verbatimhq/verbatim/tensor"
)

// RunBenchmarks runs the per-op benchmarks on be with Whisper's shapes (tiny: d=384, 6 heads,
// T=1500 encoder frames, vocabulary 51866), reporting GFLOP/s where an op does arithmetic, and
// an encoder layer and a whole tiny encoder as they are built from the ops.
func RunBenchmarks(b *testing.B, be tensor.Backend) {
	r := rng(100)
	rnd := func(shape ...int) *tensor.Tensor {
		x := randn(r, tensor.Numel(shape))
		for i := range x {
			x[i] *= 0.1
		}
		return be.FromF32(x, shape...)
	}
	run := func(b *testing.B, flops float64, f func()) {
		f() // warm up buffers
		if err := be.Sync(); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			f()
			if err := be.Sync(); err != nil {
				b.Fatal(err)
			}
		}
		if flops > 0 {
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		}
	}
	for _, c := range [][3]int{
		{1500, 384, 384}, {1500, 384, 1536}, {1500, 1536, 384}, {1500, 384, 1152},
		{1, 384, 384}, {1, 384, 1536}, {1, 1536, 384}, {5, 384, 384},
		{1, 384, 51866}, {5, 384, 51866},
	} {
		rows, k, n := c[0], c[1], c[2]
		b.Run(fmt.Sprintf("Linear/rows=%d/k=%d/n=%d", rows, k, n), func(b *testing.B) {
			x, w, bias, dst := rnd(rows, k), rnd(n, k), rnd(n), be.Alloc(tensor.F32, rows, n)
			run(b, 2*float64(rows*k*n), func() { be.Linear(dst, x, w, bias) })
		})
	}
	b.Run("MatMul/m=1500/k=64/n=1500/transB", func(b *testing.B) {
		a, bb, dst := rnd(1500, 64), rnd(1500, 64), be.Alloc(tensor.F32, 1500, 1500)
		run(b, 2*1500*64*1500, func() { be.MatMul(dst, a, bb, false, true, 0.125) })
	})
	for _, c := range []struct{ cin, t, cout, stride int }{{80, 3000, 384, 1}, {384, 3000, 384, 2}} {
		b.Run(fmt.Sprintf("Conv1D/cin=%d/t=%d/cout=%d/k=3/stride=%d", c.cin, c.t, c.cout, c.stride), func(b *testing.B) {
			tout := (c.t+2-3)/c.stride + 1
			x, w, bias, dst := rnd(1, c.cin, c.t), rnd(c.cout, c.cin, 3), rnd(c.cout), be.Alloc(tensor.F32, 1, c.cout, tout)
			run(b, 2*float64(c.cout*c.cin*3*tout), func() { be.Conv1D(dst, x, w, bias, c.stride, 1) })
		})
	}
	for _, c := range []struct {
		tq, tk int
		causal bool
	}{{1500, 1500, false}, {1, 1500, false}, {5, 1500, false}, {1, 448, true}, {5, 224, true}} {
		b.Run(fmt.Sprintf("Attention/Tq=%d/Tk=%d/d=384/h=6/causal=%v", c.tq, c.tk, c.causal), func(b *testing.B) {
			q, k, v, dst := rnd(1, c.tq, 384), rnd(1, c.tk, 384), rnd(1, c.tk, 384), be.Alloc(tensor.F32, 1, c.tq, 384)
			run(b, 4*float64(c.tq*c.tk*384), func() { be.Attention(dst, q, k, v, 6, c.tk, 0.125, c.causal) })
		})
	}
	b.Run("GELU/n=1500x1536", func(b *testing.B) {
		x := rnd(1500, 1536)
		dst := be.Alloc(tensor.F32, 1500, 1536)
		run(b, 0, func() { be.GELU(dst, x) })
	})
	b.Run("LayerNorm/rows=1500/c=384", func(b *testing.B) {
		x, g, bb, dst := rnd(1500, 384), rnd(384), rnd(384), be.Alloc(tensor.F32, 1500, 384)
		run(b, 0, func() { be.LayerNorm(dst, x, g, bb, 1e-5) })
	})
	b.Run("Softmax/rows=1500/c=1500", func(b *testing.B) {
		x, dst := rnd(1500, 1500), be.Alloc(tensor.F32, 1500, 1500)
		run(b, 0, func() { be.Softmax(dst, x) })
	})
	b.Run("Add/n=1500x384", func(b *testing.B) {
		x, y, dst := rnd(1500, 384), rnd(1500, 384), be.Alloc(tensor.F32, 1500, 384)
		run(b, 0, func() { be.Add(dst, x, y) })
	})
	b.Run("Transpose/384x1500", func(b *testing.B) {
		x, dst := rnd(384, 1500), be.Alloc(tensor.F32, 1500, 384)
		run(b, 0, func() { be.Transpose(dst, x) })
	})
	enc := newTinyEncoder(be, rnd)
	b.Run("EncoderLayer/T=1500/d=384/h=6", func(b *testing.B) {
		x0 := rnd(1, enc.t, enc.d)
		run(b, enc.layerFlops(), func() {
			be.Copy(enc.x, x0) // the layer updates x in place; start from the same input
			enc.layer(0)
		})
	})
	b.Run("Encoder/tiny", func(b *testing.B) {
		run(b, enc.flops(), enc.run)
	})
}

// tinyEncoder is Whisper tiny's encoder built from the ops with random weights: two
// convolutions with GELU, positional embedding, 4 pre-norm transformer layers, final norm.
type tinyEncoder struct {
	be                       tensor.Backend
	mel, c1, c2, pos, x, h   *tensor.Tensor
	conv1w, conv1b, conv2w   *tensor.Tensor
	conv2b, lnpw, lnpb, ct   *tensor.Tensor
	q, k, v, att, ff         *tensor.Tensor
	layers                   []encLayer
	t, d, heads, ffn, layerN int
}

type encLayer struct {
	ln1w, ln1b, qw, qb, kw, vw, vb, ow, ob, ln2w, ln2b, f1w, f1b, f2w, f2b *tensor.Tensor
}

func newTinyEncoder(be tensor.Backend, rnd func(shape ...int) *tensor.Tensor) *tinyEncoder {
	const t, d, ffn, mels = 1500, 384, 1536, 80
	e := &tinyEncoder{be: be, t: t, d: d, heads: 6, ffn: ffn, layerN: 4}
	e.mel = rnd(1, mels, 2*t)
	e.conv1w, e.conv1b = rnd(d, mels, 3), rnd(d)
	e.conv2w, e.conv2b = rnd(d, d, 3), rnd(d)
	e.c1 = be.Alloc(tensor.F32, 1, d, 2*t)
	e.c2 = be.Alloc(tensor.F32, 1, d, t)
	e.ct = be.Alloc(tensor.F32, 1, t, d)
	e.pos = rnd(t, d)
	e.lnpw, e.lnpb = rnd(d), rnd(d)
	e.x = be.Alloc(tensor.F32, 1, t, d)
	e.h = be.Alloc(tensor.F32, 1, t, d)
	e.q, e.k, e.v, e.att = be.Alloc(tensor.F32, 1, t, d), be.Alloc(tensor.F32, 1, t, d), be.Alloc(tensor.F32, 1, t, d), be.Alloc(tensor.F32, 1, t, d)
	e.ff = be.Alloc(tensor.F32, 1, t, ffn)
	for range e.layerN {
		e.layers = append(e.layers, encLayer{
			ln1w: rnd(d), ln1b: rnd(d), qw: rnd(d, d), qb: rnd(d), kw: rnd(d, d), vw: rnd(d, d), vb: rnd(d),
			ow: rnd(d, d), ob: rnd(d), ln2w: rnd(d), ln2b: rnd(d), f1w: rnd(ffn, d), f1b: rnd(ffn), f2w: rnd(d, ffn), f2b: rnd(d),
		})
	}
	return e
}

func (e *tinyEncoder) layerFlops() float64 {
	t, d := float64(e.t), float64(e.d)
	return 2*t*d*d*4 + 2*t*d*float64(e.ffn)*2 + 4*t*t*d
}

func (e *tinyEncoder) flops() float64 {
	t, d := float64(e.t), float64(e.d)
	return 2*d*80*3*2*t + 2*d*d*3*t + float64(e.layerN)*e.layerFlops()
}

func (e *tinyEncoder) layer(i int) {
	be, l := e.be, e.layers[i]
	be.LayerNorm(e.h, e.x, l.ln1w, l.ln1b, 1e-5)
	be.Linear(e.q, e.h, l.qw, l.qb)
	be.Linear(e.k, e.h, l.kw, nil)
	be.Linear(e.v, e.h, l.vw, l.vb)
	be.Attention(e.att, e.q, e.k, e.v, e.heads, e.t, float32(1/math.Sqrt(float64(e.d/e.heads))), false)
	be.Linear(e.h, e.att, l.ow, l.ob)
	be.Add(e.x, e.x, e.h)
	be.LayerNorm(e.h, e.x, l.ln2w, l.ln2b, 1e-5)
	be.Linear(e.ff, e.h, l.f1w, l.f1b)
	be.GELU(e.ff, e.ff)
	be.Linear(e.h, e.ff, l.f2w, l.f2b)
	be.Add(e.x, e.x, e.h)
}

func (e *tinyEncoder) run() {
	be := e.be
	be.Conv1D(e.c1, e.mel, e.conv1w, e.conv1b, 1, 1)
	be.GELU(e.c1, e.c1)
	be.Conv1D(e.c2, e.c1, e.conv2w, e.conv2b, 2, 1)
	be.GELU(e.c2, e.c2)
	be.Transpose(e.ct, e.c2)
	be.Add(e.x, e.ct, e.pos)
	for i := range e.layerN {
		e.layer(i)
	}
	be.LayerNorm(e.x, e.x, e.lnpw, e.lnpb, 1e-5)
}
