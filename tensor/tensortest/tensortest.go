// Package tensortest is the conformance and benchmark suite every backend runs: each op of
// [tensor.Ops] against a naive float64 reference implemented here, on seeded random inputs of
// several shapes (odd sizes, batches, views with offsets, transposes, causal masks with
// kvLen < Tk, every weight dtype), and per-op benchmarks that report GFLOP/s.
package tensortest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/verbatimhq/verbatim/tensor"
)

// Options sets the tolerances of [Run]. A value is accepted when
// |got - want| <= Abs + Rel*scale, where scale is |want| for elementwise ops and the sum of the
// absolute values of the products for reductions (matmuls, convolutions, attention).
type Options struct {
	Abs float64 // default 1e-5
	Rel float64 // default 2e-5
	// Q8Activations declares that Linear with a quantized weight (q8_0, q5_0, q5_1, q4_0) may
	// round the activations to ggml-style q8 blocks (32 values, int8, step max|x|/127) before the
	// dot products, as ggml does. Each activation then moves by up to half its block's step, so
	// the tolerance of those results grows by sum_k |w| * step/2 (times 1.001 for the rounding of
	// the step itself).
	Q8Activations bool
}

// RunAll runs the conformance suite with the default tolerances, which an f32 backend meets:
// absolute 1e-5 plus relative 2e-5 of the magnitude of each result's terms.
func RunAll(t *testing.T, b tensor.Backend) { Run(t, b, Options{}) }

// Run runs the conformance suite with the given tolerances.
func Run(t *testing.T, b tensor.Backend, opts Options) {
	if opts.Abs == 0 {
		opts.Abs = 1e-5
	}
	if opts.Rel == 0 {
		opts.Rel = 2e-5
	}
	s := &suite{b: b, o: opts}
	tests := []struct {
		name string
		f    func(*testing.T)
	}{
		{"Memory", s.memory},
		{"Upload", s.upload},
		{"Linear", s.linear},
		{"LinearWeightDTypes", s.linearDTypes},
		{"MatMul", s.matmul},
		{"Conv1D", s.conv1d},
		{"LayerNorm", s.layerNorm},
		{"Unary", s.unary},
		{"Broadcast", s.broadcast},
		{"Softmax", s.softmax},
		{"Attention", s.attention},
		{"AttentionProbs", s.attentionProbs},
		{"Gather", s.gather},
		{"Copy", s.copyOp},
		{"CopyRows", s.copyRows},
		{"SetRows", s.setRows},
		{"Transpose", s.transpose},
		{"Misuse", s.misuse},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.f)
	}
}

type suite struct {
	b tensor.Backend
	o Options
}

func rng(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)) }

func randn(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

func (s *suite) get(t *testing.T, x *tensor.Tensor) []float32 {
	t.Helper()
	return s.b.ToF32(x)
}

// check compares got with want elementwise; scale (nil: |want|) sets the relative tolerance.
// On failure it reports the worst element by its coordinates in shape.
func (s *suite) check(t *testing.T, what string, shape []int, got []float32, want, scale []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	worst, bad, worstExcess := -1, 0, 0.0
	for i, w := range want {
		sc := math.Abs(w)
		if scale != nil {
			sc = scale[i]
		}
		tol := s.o.Abs + s.o.Rel*sc
		g := float64(got[i])
		e := math.Abs(g - w)
		if math.IsNaN(g) != math.IsNaN(w) || e > tol {
			bad++
			if ex := e / tol; worst < 0 || ex > worstExcess || math.IsNaN(ex) {
				worst, worstExcess = i, ex
			}
		}
	}
	if bad > 0 {
		sc := math.Abs(want[worst])
		if scale != nil {
			sc = scale[worst]
		}
		t.Errorf("%s: %d of %d values off; worst at %v: got %g, want %g (tolerance %g)",
			what, bad, len(want), coords(shape, worst), got[worst], want[worst], s.o.Abs+s.o.Rel*sc)
	}
}

// exact requires bitwise-equal float32 values (NaNs equal NaNs).
func exact(t *testing.T, what string, shape []int, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] && !(got[i] != got[i] && want[i] != want[i]) {
			t.Fatalf("%s: at %v got %g, want %g", what, coords(shape, i), got[i], want[i])
		}
	}
}

func coords(shape []int, i int) []int {
	c := make([]int, len(shape))
	for d := len(shape) - 1; d >= 0; d-- {
		if shape[d] > 0 {
			c[d] = i % shape[d]
			i /= shape[d]
		}
	}
	return c
}

func f64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

// padded uploads x as rows [off, off+rows) of a bigger tensor filled with garbage, and returns
// the view, so ops are exercised on non-zero offsets.
func (s *suite) view(r *rand.Rand, x []float32, off int, shape ...int) *tensor.Tensor {
	if off == 0 {
		return s.b.FromF32(x, shape...)
	}
	inner := tensor.Numel(shape[1:])
	big := randn(r, (shape[0]+off+1)*inner)
	for i := range big {
		big[i] *= 1000
	}
	copy(big[off*inner:], x)
	full := append([]int{shape[0] + off + 1}, shape[1:]...)
	return s.b.FromF32(big, full...).Slice(off, off+shape[0])
}

func (s *suite) memory(t *testing.T) {
	b := s.b
	z := b.Alloc(tensor.F32, 3, 5)
	for i, v := range s.get(t, z) {
		if v != 0 {
			t.Fatalf("Alloc not zeroed at %d: %g", i, v)
		}
	}
	x := randn(rng(1), 15)
	f := b.FromF32(x, 3, 5)
	exact(t, "FromF32/ToF32", f.Shape, s.get(t, f), x)
	exact(t, "Slice", []int{1, 5}, s.get(t, f.Slice(1, 2)), x[5:10])
	exact(t, "Reshape+Slice", []int{2, 3}, s.get(t, f.Reshape(5, 3).Slice(3, 5)), x[9:15])
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	b.Free(f)
	b.Free(z)
	mustPanic(t, "second Free", func() { b.Free(z) })
}

func (s *suite) upload(t *testing.T) {
	r := rng(2)
	for _, dt := range s.b.Capabilities().WeightDTypes {
		t.Run(dt.String(), func(t *testing.T) {
			x := randn(r, 4*64)
			raw := tensor.Quantize(dt, x)
			want := make([]float32, len(x))
			if err := tensor.Dequantize(dt, raw, want); err != nil {
				t.Fatal(err)
			}
			u := s.b.Upload(dt, raw, 4, 64)
			if !tensor.SameShape(u.Shape, []int{4, 64}) {
				t.Fatalf("Upload shape %v", u.Shape)
			}
			exact(t, "Upload "+dt.String(), u.Shape, s.get(t, u), want)
		})
	}
}

// refLinear: y[r, n] = sum_k x[r, k] w[n, k] + bias[n], with the magnitude of the terms.
func refLinear(x, w, bias []float64, rows, k, n int) (y, scale []float64) {
	y, scale = make([]float64, rows*n), make([]float64, rows*n)
	for r := range rows {
		for j := range n {
			var sum, abs float64
			for p := range k {
				v := x[r*k+p] * w[j*k+p]
				sum += v
				abs += math.Abs(v)
			}
			if bias != nil {
				sum += bias[j]
				abs += math.Abs(bias[j])
			}
			y[r*n+j], scale[r*n+j] = sum, abs
		}
	}
	return y, scale
}

// addQ8Bound widens scale (which check multiplies by rel) so that each result's tolerance also
// covers rounding x to q8 blocks of 32: sum over p of |w[j, p]| * max|x block|/127/2.
func addQ8Bound(scale []float64, x, w []float32, rows, k, n int, rel float64) {
	for r := range rows {
		for j := range n {
			var bound float64
			for b := 0; b < k; b += 32 {
				var amax float64
				for _, v := range x[r*k+b : r*k+b+32] {
					amax = max(amax, math.Abs(float64(v)))
				}
				for p := b; p < b+32; p++ {
					bound += math.Abs(float64(w[j*k+p])) * amax / 127 / 2 * 1.001
				}
			}
			scale[r*n+j] += bound / rel
		}
	}
}

func (s *suite) linear(t *testing.T) {
	cases := []struct {
		xshape  []int
		n       int
		bias    bool
		xOffset int
	}{
		{[]int{1, 64}, 67, true, 0},
		{[]int{2, 384}, 100, false, 1},
		{[]int{3, 37}, 129, true, 0},
		{[]int{5, 384}, 51, true, 2},
		{[]int{6, 40}, 33, true, 0},
		{[]int{17, 33}, 65, false, 3},
		{[]int{130, 70}, 150, true, 0},
		{[]int{2, 13, 40}, 45, true, 0},
		{[]int{40, 300}, 70, true, 1},
	}
	r := rng(3)
	for _, c := range cases {
		k := c.xshape[len(c.xshape)-1]
		name := fmt.Sprintf("x=%v/n=%d/bias=%v/off=%d", c.xshape, c.n, c.bias, c.xOffset)
		t.Run(name, func(t *testing.T) {
			rows := tensor.Numel(c.xshape) / k
			x, w := randn(r, rows*k), randn(r, c.n*k)
			xt := s.view(r, x, c.xOffset, c.xshape...)
			wt := s.b.FromF32(w, c.n, k)
			var bt *tensor.Tensor
			var bias []float64
			if c.bias {
				bv := randn(r, c.n)
				bt, bias = s.b.FromF32(bv, c.n), f64(bv)
			}
			dshape := append(append([]int(nil), c.xshape[:len(c.xshape)-1]...), c.n)
			dst := s.b.Alloc(tensor.F32, dshape...)
			s.b.Linear(dst, xt, wt, bt)
			want, scale := refLinear(f64(x), f64(w), bias, rows, k, c.n)
			s.check(t, "Linear", dshape, s.get(t, dst), want, scale)
		})
	}
}

func (s *suite) linearDTypes(t *testing.T) {
	r := rng(4)
	for _, dt := range s.b.Capabilities().WeightDTypes {
		// Every row count of the matrix-vector path (1..8, decoding and beams), GEMM sizes beyond it,
		// and a k that leaves a tail after the SIMD blocks (k must be a multiple of the block size).
		for _, c := range []struct{ rows, k int }{
			{1, 96}, {2, 96}, {3, 96}, {4, 96}, {5, 96}, {6, 96}, {7, 96}, {8, 96}, {9, 96}, {33, 96}, {130, 96},
			{1, 100}, {3, 100}, {8, 100}, {40, 100}, {6, 37},
			{1, 608}, {5, 608}, {100, 608},
		} {
			rows, k := c.rows, c.k
			if k%dt.BlockSize() != 0 {
				continue
			}
			t.Run(fmt.Sprintf("%s/rows=%d/k=%d", dt, rows, k), func(t *testing.T) {
				const n = 70
				w := randn(r, n*k)
				raw := tensor.Quantize(dt, w)
				deq := make([]float32, len(w))
				if err := tensor.Dequantize(dt, raw, deq); err != nil {
					t.Fatal(err)
				}
				wt := s.b.Upload(dt, raw, n, k)
				x, bv := randn(r, rows*k), randn(r, n)
				dst := s.b.Alloc(tensor.F32, rows, n)
				s.b.Linear(dst, s.b.FromF32(x, rows, k), wt, s.b.FromF32(bv, n))
				want, scale := refLinear(f64(x), f64(deq), f64(bv), rows, k, n)
				if s.o.Q8Activations && dt.BlockSize() == 32 {
					addQ8Bound(scale, x, deq, rows, k, n, s.o.Rel)
				}
				s.check(t, "Linear "+dt.String(), dst.Shape, s.get(t, dst), want, scale)
			})
		}
	}
}

func (s *suite) matmul(t *testing.T) {
	cases := []struct {
		batch, m, k, n int
		sharedB        bool
		alpha          float32
	}{
		{0, 13, 29, 35, false, 1},
		{0, 1, 64, 40, false, 0.5},
		{0, 4, 50, 9, false, 1},
		{0, 70, 300, 45, false, -2},
		{3, 7, 11, 13, false, 1},
		{2, 20, 16, 33, true, 0.125},
		{2, 3, 32, 5, false, 1},
	}
	r := rng(5)
	for _, c := range cases {
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				name := fmt.Sprintf("b=%d/m=%d/k=%d/n=%d/shared=%v/tA=%v/tB=%v", c.batch, c.m, c.k, c.n, c.sharedB, ta, tb)
				t.Run(name, func(t *testing.T) {
					bn := max(c.batch, 1)
					a, bb := randn(r, bn*c.m*c.k), randn(r, bn*c.k*c.n)
					if c.sharedB {
						bb = bb[:c.k*c.n]
					}
					ashape := []int{c.m, c.k}
					if ta {
						ashape = []int{c.k, c.m}
					}
					bshape := []int{c.k, c.n}
					if tb {
						bshape = []int{c.n, c.k}
					}
					dshape := []int{c.m, c.n}
					if c.batch > 0 {
						ashape = append([]int{c.batch}, ashape...)
						dshape = append([]int{c.batch}, dshape...)
						if !c.sharedB {
							bshape = append([]int{c.batch}, bshape...)
						}
					}
					at, bt := s.view(r, a, 1, ashape...), s.b.FromF32(bb, bshape...)
					dst := s.b.Alloc(tensor.F32, dshape...)
					s.b.MatMul(dst, at, bt, ta, tb, c.alpha)
					want, scale := make([]float64, bn*c.m*c.n), make([]float64, bn*c.m*c.n)
					for bi := range bn {
						boff := bi * c.k * c.n
						if c.sharedB {
							boff = 0
						}
						for i := range c.m {
							for j := range c.n {
								var sum, abs float64
								for p := range c.k {
									av := a[bi*c.m*c.k+i*c.k+p]
									if ta {
										av = a[bi*c.m*c.k+p*c.m+i]
									}
									bv := bb[boff+p*c.n+j]
									if tb {
										bv = bb[boff+j*c.k+p]
									}
									v := float64(c.alpha) * float64(av) * float64(bv)
									sum += v
									abs += math.Abs(v)
								}
								want[(bi*c.m+i)*c.n+j], scale[(bi*c.m+i)*c.n+j] = sum, abs
							}
						}
					}
					s.check(t, "MatMul", dshape, s.get(t, dst), want, scale)
				})
			}
		}
	}
}

func (s *suite) conv1d(t *testing.T) {
	cases := []struct {
		batch, cin, t, cout, k, stride, pad int
		bias                                bool
	}{
		{2, 5, 23, 7, 3, 1, 1, true},
		{0, 8, 30, 16, 3, 2, 1, true},
		{1, 3, 17, 40, 1, 1, 0, false},
		{1, 13, 50, 35, 3, 2, 1, true},
		{0, 4, 9, 6, 5, 3, 2, false},
	}
	r := rng(6)
	wdts := []tensor.DType{tensor.F32}
	if s.b.Capabilities().Supports(tensor.F16) {
		wdts = append(wdts, tensor.F16) // Whisper's conv kernels are stored in f16
	}
	for _, c := range cases {
		for _, wdt := range wdts {
			name := fmt.Sprintf("b=%d/cin=%d/t=%d/cout=%d/k=%d/stride=%d/pad=%d/w=%s", c.batch, c.cin, c.t, c.cout, c.k, c.stride, c.pad, wdt)
			t.Run(name, func(t *testing.T) {
				bn := max(c.batch, 1)
				x, w := randn(r, bn*c.cin*c.t), randn(r, c.cout*c.cin*c.k)
				raw := tensor.Quantize(wdt, w)
				if err := tensor.Dequantize(wdt, raw, w); err != nil {
					t.Fatal(err)
				}
				tout := (c.t+2*c.pad-c.k)/c.stride + 1
				xshape, dshape := []int{c.cin, c.t}, []int{c.cout, tout}
				if c.batch > 0 {
					xshape = append([]int{c.batch}, xshape...)
					dshape = append([]int{c.batch}, dshape...)
				}
				var bt *tensor.Tensor
				var bv []float32
				if c.bias {
					bv = randn(r, c.cout)
					bt = s.b.FromF32(bv, c.cout)
				}
				dst := s.b.Alloc(tensor.F32, dshape...)
				s.b.Conv1D(dst, s.b.FromF32(x, xshape...), s.b.Upload(wdt, raw, c.cout, c.cin, c.k), bt, c.stride, c.pad)
				want, scale := make([]float64, bn*c.cout*tout), make([]float64, bn*c.cout*tout)
				for bi := range bn {
					for o := range c.cout {
						for to := range tout {
							var sum, abs float64
							if bv != nil {
								sum, abs = float64(bv[o]), math.Abs(float64(bv[o]))
							}
							for ci := range c.cin {
								for j := range c.k {
									ti := to*c.stride + j - c.pad
									if ti < 0 || ti >= c.t {
										continue
									}
									v := float64(w[(o*c.cin+ci)*c.k+j]) * float64(x[(bi*c.cin+ci)*c.t+ti])
									sum += v
									abs += math.Abs(v)
								}
							}
							i := (bi*c.cout+o)*tout + to
							want[i], scale[i] = sum, abs
						}
					}
				}
				s.check(t, "Conv1D", dshape, s.get(t, dst), want, scale)
			})
		}
	}
}

func (s *suite) layerNorm(t *testing.T) {
	r := rng(7)
	for _, c := range []struct {
		rows, c int
		alias   bool
	}{{7, 45, false}, {3, 384, true}, {1, 1, false}} {
		t.Run(fmt.Sprintf("rows=%d/c=%d/alias=%v", c.rows, c.c, c.alias), func(t *testing.T) {
			x, g, bb := randn(r, c.rows*c.c), randn(r, c.c), randn(r, c.c)
			for i := range x {
				x[i] = x[i]*3 + 5 // a mean far from zero
			}
			xt := s.view(r, x, 1, c.rows, c.c)
			dst := xt
			if !c.alias {
				dst = s.b.Alloc(tensor.F32, c.rows, c.c)
			}
			const eps = 1e-5
			s.b.LayerNorm(dst, xt, s.b.FromF32(g, c.c), s.b.FromF32(bb, c.c), eps)
			want, scale := make([]float64, len(x)), make([]float64, len(x))
			for i := range c.rows {
				row := f64(x[i*c.c : (i+1)*c.c])
				var mean, v float64
				for _, e := range row {
					mean += e
				}
				mean /= float64(c.c)
				for _, e := range row {
					v += (e - mean) * (e - mean)
				}
				v /= float64(c.c)
				for j, e := range row {
					n := (e - mean) / math.Sqrt(v+eps)
					want[i*c.c+j] = n*float64(g[j]) + float64(bb[j])
					scale[i*c.c+j] = 10 * (math.Abs(n*float64(g[j])) + math.Abs(float64(bb[j])))
				}
			}
			s.check(t, "LayerNorm", dst.Shape, s.get(t, dst), want, scale)
		})
	}
}

func (s *suite) unary(t *testing.T) {
	r := rng(8)
	x := randn(r, 3*1000)
	for i := range x {
		x[i] *= 4
	}
	special := []float32{0, -0.0, 1e-8, -1e-8, 0.02, -0.02, 1, -1, 5, -5, 9.5, -9.5, 20, -20, 88, -88, 100, -100}
	copy(x, special)
	ops := []struct {
		name string
		op   func(dst, x *tensor.Tensor)
		ref  func(float64) float64
	}{
		{"GELU", s.b.GELU, func(v float64) float64 { return 0.5 * v * (1 + math.Erf(v/math.Sqrt2)) }},
		{"Sigmoid", s.b.Sigmoid, func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }},
		{"Tanh", s.b.Tanh, math.Tanh},
		{"ReLU", s.b.ReLU, func(v float64) float64 { return max(v, 0) }},
		{"Sqrt", s.b.Sqrt, math.Sqrt}, // negative inputs must give NaN
		{"Scale", func(d, x *tensor.Tensor) { s.b.Scale(d, x, -0.37) }, func(v float64) float64 { return v * float64(float32(-0.37)) }},
	}
	for _, op := range ops {
		for _, alias := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/alias=%v", op.name, alias), func(t *testing.T) {
				xt := s.view(r, x, 2, 3, 1000)
				dst := xt
				if !alias {
					dst = s.b.Alloc(tensor.F32, 3, 1000)
				}
				op.op(dst, xt)
				want := make([]float64, len(x))
				for i, v := range x {
					want[i] = op.ref(float64(v))
				}
				s.check(t, op.name, dst.Shape, s.get(t, dst), want, nil)
			})
		}
	}
}

func (s *suite) broadcast(t *testing.T) {
	r := rng(9)
	ashape := []int{3, 5, 7}
	for _, bshape := range [][]int{{7}, {5, 7}, {3, 5, 7}, {1, 7}} {
		for _, alias := range []bool{false, true} {
			for _, op := range []string{"Add", "Mul"} {
				t.Run(fmt.Sprintf("%s/b=%v/alias=%v", op, bshape, alias), func(t *testing.T) {
					if bshape[0] == 1 && len(bshape) == 2 {
						bshape = []int{7} // rank-1 stands for a trailing part
					}
					a, bb := randn(r, 105), randn(r, tensor.Numel(bshape))
					at, bt := s.view(r, a, 1, ashape...), s.b.FromF32(bb, bshape...)
					dst := at
					if !alias {
						dst = s.b.Alloc(tensor.F32, ashape...)
					}
					if op == "Add" {
						s.b.Add(dst, at, bt)
					} else {
						s.b.Mul(dst, at, bt)
					}
					want := make([]float64, len(a))
					for i, v := range a {
						w := float64(bb[i%len(bb)])
						if op == "Add" {
							want[i] = float64(v) + w
						} else {
							want[i] = float64(v) * w
						}
					}
					s.check(t, op, ashape, s.get(t, dst), want, nil)
				})
			}
		}
	}
	// A long trailing dimension, like adding a bias to [T, 1536].
	a, bb := randn(r, 4*1536), randn(r, 1536)
	dst := s.b.Alloc(tensor.F32, 4, 1536)
	s.b.Add(dst, s.b.FromF32(a, 4, 1536), s.b.FromF32(bb, 1536))
	want := make([]float64, len(a))
	for i := range a {
		want[i] = float64(a[i]) + float64(bb[i%1536])
	}
	s.check(t, "Add long", dst.Shape, s.get(t, dst), want, nil)
}

func refSoftmax(x []float64) []float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, v)
	}
	y := make([]float64, len(x))
	var sum float64
	for i, v := range x {
		y[i] = math.Exp(v - m)
		sum += y[i]
	}
	for i := range y {
		y[i] /= sum
	}
	return y
}

func (s *suite) softmax(t *testing.T) {
	r := rng(10)
	for _, c := range []struct {
		rows, c int
		alias   bool
	}{{5, 1, false}, {4, 17, true}, {3, 1500, false}, {2, 51866, true}} {
		t.Run(fmt.Sprintf("rows=%d/c=%d/alias=%v", c.rows, c.c, c.alias), func(t *testing.T) {
			x := randn(r, c.rows*c.c)
			for i := range x {
				x[i] *= 8
			}
			x[0] = 60
			x[len(x)-1] = -1e30
			xt := s.view(r, x, 1, c.rows, c.c)
			dst := xt
			if !c.alias {
				dst = s.b.Alloc(tensor.F32, c.rows, c.c)
			}
			s.b.Softmax(dst, xt)
			var want []float64
			for i := range c.rows {
				want = append(want, refSoftmax(f64(x[i*c.c:(i+1)*c.c]))...)
			}
			s.check(t, "Softmax", dst.Shape, s.get(t, dst), want, nil)
		})
	}
}

type attnCase struct {
	b, tq, tk, kvLen, heads, d int
	causal                     bool
}

// refAttentionProbs returns probs [B, H, Tq, kvLen] in float64.
func refAttentionProbs(c attnCase, q, k []float32, scale float32) []float64 {
	hd := c.heads * c.d
	p := make([]float64, c.b*c.heads*c.tq*c.kvLen)
	for bi := range c.b {
		for h := range c.heads {
			for i := range c.tq {
				n := c.kvLen
				if c.causal {
					n = min(c.kvLen, i+c.kvLen-c.tq+1)
				}
				sc := make([]float64, n)
				for j := range n {
					var dot float64
					for e := range c.d {
						dot += float64(q[(bi*c.tq+i)*hd+h*c.d+e]) * float64(k[(bi*c.tk+j)*hd+h*c.d+e])
					}
					sc[j] = float64(scale) * dot
				}
				copy(p[((bi*c.heads+h)*c.tq+i)*c.kvLen:], refSoftmax(sc))
			}
		}
	}
	return p
}

var attnCases = []attnCase{
	{1, 20, 20, 20, 2, 8, false},
	{2, 70, 90, 77, 3, 16, true},
	{1, 1, 50, 33, 4, 64, true},
	{3, 5, 40, 40, 2, 64, true},
	{2, 4, 40, 12, 6, 64, false},
	{1, 100, 100, 100, 6, 64, true},
	{1, 130, 300, 300, 2, 64, false},
	{1, 61, 64, 64, 1, 20, true},
}

func (s *suite) attention(t *testing.T) {
	r := rng(11)
	for _, c := range attnCases {
		name := fmt.Sprintf("b=%d/tq=%d/tk=%d/kv=%d/h=%d/d=%d/causal=%v", c.b, c.tq, c.tk, c.kvLen, c.heads, c.d, c.causal)
		t.Run(name, func(t *testing.T) {
			hd := c.heads * c.d
			q, k, v := randn(r, c.b*c.tq*hd), randn(r, c.b*c.tk*hd), randn(r, c.b*c.tk*hd)
			scale := float32(1 / math.Sqrt(float64(c.d)))
			qt := s.view(r, q, 1, c.b, c.tq, hd)
			kt, vt := s.b.FromF32(k, c.b, c.tk, hd), s.view(r, v, 2, c.b, c.tk, hd)
			dst := s.b.Alloc(tensor.F32, c.b, c.tq, hd)
			s.b.Attention(dst, qt, kt, vt, c.heads, c.kvLen, scale, c.causal)
			p := refAttentionProbs(c, q, k, scale)
			want, mag := make([]float64, c.b*c.tq*hd), make([]float64, c.b*c.tq*hd)
			for bi := range c.b {
				for h := range c.heads {
					for i := range c.tq {
						pr := p[((bi*c.heads+h)*c.tq+i)*c.kvLen:][:c.kvLen]
						for e := range c.d {
							var sum, abs float64
							for j, pj := range pr {
								x := pj * float64(v[(bi*c.tk+j)*hd+h*c.d+e])
								sum += x
								abs += math.Abs(x)
							}
							o := (bi*c.tq+i)*hd + h*c.d + e
							want[o], mag[o] = sum, 4*abs
						}
					}
				}
			}
			s.check(t, "Attention", dst.Shape, s.get(t, dst), want, mag)
		})
	}
}

func (s *suite) attentionProbs(t *testing.T) {
	aw, ok := s.b.(tensor.AttentionWeights)
	if !ok {
		t.Skip("backend has no AttentionProbs")
	}
	r := rng(12)
	for _, c := range attnCases[:5] {
		t.Run(fmt.Sprintf("tq=%d/kv=%d/causal=%v", c.tq, c.kvLen, c.causal), func(t *testing.T) {
			hd := c.heads * c.d
			q, k := randn(r, c.b*c.tq*hd), randn(r, c.b*c.tk*hd)
			pt := s.b.Alloc(tensor.F32, c.b, c.heads, c.tq, c.kvLen)
			aw.AttentionProbs(pt, s.b.FromF32(q, c.b, c.tq, hd), s.b.FromF32(k, c.b, c.tk, hd), c.heads, c.kvLen, 0.3, c.causal)
			s.check(t, "AttentionProbs", pt.Shape, s.get(t, pt), refAttentionProbs(c, q, k, 0.3), nil)
		})
	}
}

func (s *suite) gather(t *testing.T) {
	r := rng(13)
	ids := []int32{3, 0, 9, 3, 7}
	for _, dt := range s.b.Capabilities().WeightDTypes {
		t.Run(dt.String(), func(t *testing.T) {
			const n, c = 10, 64
			w := randn(r, n*c)
			raw := tensor.Quantize(dt, w)
			deq := make([]float32, len(w))
			if err := tensor.Dequantize(dt, raw, deq); err != nil {
				t.Fatal(err)
			}
			dst := s.b.Alloc(tensor.F32, len(ids), c)
			s.b.Gather(dst, s.b.Upload(dt, raw, n, c), ids)
			var want []float32
			for _, id := range ids {
				want = append(want, deq[int(id)*c:(int(id)+1)*c]...)
			}
			exact(t, "Gather", dst.Shape, s.get(t, dst), want)
		})
	}
}

func (s *suite) copyOp(t *testing.T) {
	r := rng(14)
	x := randn(r, 24)
	src := s.view(r, x, 2, 4, 6)
	dst := s.b.Alloc(tensor.F32, 8, 6)
	s.b.Copy(dst.Slice(3, 7).Reshape(2, 12), src)
	got := s.get(t, dst)
	exact(t, "Copy", []int{4, 6}, got[18:42], x)
	for i, v := range append(got[:18:18], got[42:]...) {
		if v != 0 {
			t.Fatalf("Copy wrote outside its view at %d: %g", i, v)
		}
	}
	// An F16 view of an F32 buffer's second half, its offset counted in f16 values, as the
	// encoder's workspace keeps K and V in f16 beside f32 activations on a backend that takes
	// them (tensor.HalfKV): such views are checked in bytes. The values are integers, so f16
	// holds them exactly.
	if h, ok := s.b.(tensor.HalfKV); !ok || !h.HalfKV() {
		return
	}
	ints := make([]float32, 8)
	for i := range ints {
		ints[i] = float32(i - 3)
	}
	buf := s.b.Alloc(tensor.F32, 8)
	half := &tensor.Tensor{DType: tensor.F16, Shape: []int{8}, Buf: buf.Buf, Offset: buf.Offset*2 + 8}
	s.b.Copy(half, s.b.FromF32(ints, 8))
	exact(t, "Copy into an F16 view of an F32 buffer", half.Shape, s.get(t, half), ints)
	for i, v := range s.get(t, buf)[:4] {
		if v != 0 {
			t.Fatalf("Copy into an F16 view wrote the buffer's first half at %d: %g", i, v)
		}
	}
}

// copyRows: tensor.CopyRows (one op on a tensor.RowCopier, one Copy a row elsewhere) between
// two pairs of [B, T, C] tensors of different batch and length, in F32 and, where the backend
// takes F16 keys and values or caches, F16 (integer values, exact in f16), with C odd and C a multiple of 8 (the
// CUDA kernel's 2-, 4- and 16-byte units); rows not named keep their values.
func (s *suite) copyRows(t *testing.T) {
	r := rng(17)
	dts := []tensor.DType{tensor.F32}
	hk, ok1 := s.b.(tensor.HalfKV)
	hc, ok2 := s.b.(tensor.HalfCaches)
	if ok1 && hk.HalfKV() || ok2 && hc.HalfCaches() {
		dts = append(dts, tensor.F16)
	}
	for _, dt := range dts {
		for _, c := range []int{3, 8} {
			t.Run(fmt.Sprintf("%v/C=%d", dt, c), func(t *testing.T) {
				const db, dtt, sb, stt, n = 3, 5, 4, 6, 4
				dstRows, srcRows := []int32{2, 0}, []int32{1, 3}
				var dsts, srcs []*tensor.Tensor
				var base, from [][]float32
				make1 := func(shape ...int) (*tensor.Tensor, []float32) {
					v := make([]float32, tensor.Numel(shape))
					for i := range v {
						v[i] = float32(r.IntN(200) - 100)
					}
					x := s.b.Alloc(dt, shape...)
					s.b.Copy(x, s.b.FromF32(v, shape...))
					return x, v
				}
				for range 2 {
					d, dv := make1(db, dtt, c)
					x, sv := make1(sb, stt, c)
					dsts, srcs, base, from = append(dsts, d), append(srcs, x), append(base, dv), append(from, sv)
				}
				tensor.CopyRows(s.b, dsts, srcs, dstRows, srcRows, n)
				for p := range dsts {
					want := append([]float32(nil), base[p]...)
					for i, d := range dstRows {
						copy(want[int(d)*dtt*c:int(d)*dtt*c+n*c], from[p][int(srcRows[i])*stt*c:])
					}
					exact(t, fmt.Sprintf("CopyRows pair %d", p), dsts[p].Shape, s.get(t, dsts[p]), want)
				}
			})
		}
	}
}

func (s *suite) setRows(t *testing.T) {
	r := rng(15)
	for _, rank3 := range []bool{false, true} {
		t.Run(fmt.Sprintf("rank3=%v", rank3), func(t *testing.T) {
			const bn, tt, n, c, at = 2, 9, 3, 5, 4
			b := 1
			if rank3 {
				b = bn
			}
			base := randn(r, b*tt*c)
			src := randn(r, b*n*c)
			dshape, sshape := []int{tt, c}, []int{n, c}
			if rank3 {
				dshape, sshape = []int{b, tt, c}, []int{b, n, c}
			}
			dst := s.b.FromF32(base, dshape...)
			s.b.SetRows(dst, at, s.view(r, src, 1, sshape...))
			want := append([]float32(nil), base...)
			for bi := range b {
				copy(want[(bi*tt+at)*c:], src[bi*n*c:(bi+1)*n*c])
			}
			exact(t, "SetRows", dshape, s.get(t, dst), want)
		})
	}
	// An F16 dst (an attention cache on a backend that keeps them in F16): src rounded once.
	if h, ok := s.b.(tensor.HalfCaches); !ok || !h.HalfCaches() {
		return
	}
	const bn, tt, n, c, at = 2, 7, 3, 5, 2
	base := make([]float32, bn*tt*c)
	for i := range base {
		base[i] = float32(i%11 - 5)
	}
	src := randn(r, bn*n*c)
	dst := s.b.Alloc(tensor.F16, bn, tt, c)
	s.b.Copy(dst, s.b.FromF32(base, bn, tt, c))
	s.b.SetRows(dst, at, s.b.FromF32(src, bn, n, c))
	want := append([]float32(nil), base...)
	for bi := range bn {
		for i, v := range src[bi*n*c : (bi+1)*n*c] {
			want[(bi*tt+at)*c+i] = tensor.F16ToF32(tensor.F32ToF16(v))
		}
	}
	exact(t, "SetRows into F16", []int{bn, tt, c}, s.get(t, dst), want)
}

func (s *suite) transpose(t *testing.T) {
	r := rng(16)
	for _, shape := range [][]int{{1, 1}, {3, 5}, {33, 70}, {2, 45, 17}, {2, 3, 4, 5}} {
		t.Run(fmt.Sprint(shape), func(t *testing.T) {
			x := randn(r, tensor.Numel(shape))
			rk := len(shape)
			m, n := shape[rk-2], shape[rk-1]
			dshape := append(append([]int(nil), shape[:rk-2]...), n, m)
			dst := s.b.Alloc(tensor.F32, dshape...)
			s.b.Transpose(dst, s.view(r, x, 1, shape...))
			want := make([]float32, len(x))
			for bi := range len(x) / (m * n) {
				for i := range m {
					for j := range n {
						want[bi*m*n+j*m+i] = x[bi*m*n+i*n+j]
					}
				}
			}
			exact(t, "Transpose", dshape, s.get(t, dst), want)
		})
	}
}

// mustPanic runs f and requires a panic whose value is an error (an *tensor.Error by contract).
func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Errorf("%s: no panic", what)
			return
		}
		err, ok := r.(error)
		if !ok {
			t.Errorf("%s: panic with %T %v, want an error", what, r, r)
			return
		}
		var te *tensor.Error
		if !errors.As(err, &te) {
			t.Errorf("%s: panic with %v, want a *tensor.Error", what, err)
		}
		if strings.TrimSpace(err.Error()) == "" {
			t.Errorf("%s: empty message", what)
		}
	}()
	f()
}

func (s *suite) misuse(t *testing.T) {
	b := s.b
	x := b.Alloc(tensor.F32, 4, 8)
	w := b.Alloc(tensor.F32, 5, 9)
	cases := []struct {
		name string
		f    func()
	}{
		{"Linear K mismatch", func() { b.Linear(b.Alloc(tensor.F32, 4, 5), x, w, nil) }},
		{"Linear dst mismatch", func() { b.Linear(b.Alloc(tensor.F32, 4, 6), x, b.Alloc(tensor.F32, 5, 8), nil) }},
		{"Linear bias mismatch", func() {
			b.Linear(b.Alloc(tensor.F32, 4, 5), x, b.Alloc(tensor.F32, 5, 8), b.Alloc(tensor.F32, 4))
		}},
		{"MatMul inner mismatch", func() {
			b.MatMul(b.Alloc(tensor.F32, 4, 4), x, b.Alloc(tensor.F32, 7, 4), false, false, 1)
		}},
		{"MatMul batch mismatch", func() {
			b.MatMul(b.Alloc(tensor.F32, 2, 4, 4), b.Alloc(tensor.F32, 2, 4, 8), b.Alloc(tensor.F32, 3, 8, 4), false, false, 1)
		}},
		{"Add not trailing", func() { b.Add(x, x, b.Alloc(tensor.F32, 4)) }},
		{"Mul dst size", func() { b.Mul(b.Alloc(tensor.F32, 3, 8), x, b.Alloc(tensor.F32, 8)) }},
		{"Conv1D channels", func() {
			b.Conv1D(b.Alloc(tensor.F32, 1, 2, 8), b.Alloc(tensor.F32, 1, 3, 8), b.Alloc(tensor.F32, 2, 4, 3), nil, 1, 1)
		}},
		{"Attention heads", func() { b.Attention(x, x.Reshape(1, 4, 8), x.Reshape(1, 4, 8), x.Reshape(1, 4, 8), 3, 4, 1, false) }},
		{"Attention kvLen", func() { b.Attention(x, x.Reshape(1, 4, 8), x.Reshape(1, 4, 8), x.Reshape(1, 4, 8), 2, 5, 1, false) }},
		{"Gather id", func() { b.Gather(b.Alloc(tensor.F32, 1, 9), w, []int32{5}) }},
		{"SetRows past end", func() { b.SetRows(b.Alloc(tensor.F32, 3, 8), 2, b.Alloc(tensor.F32, 2, 8)) }},
		{"Transpose shape", func() { b.Transpose(b.Alloc(tensor.F32, 4, 8), x) }},
		{"Copy size", func() { b.Copy(b.Alloc(tensor.F32, 3), x) }},
		{"Softmax size", func() { b.Softmax(b.Alloc(tensor.F32, 4, 7), x) }},
		{"Upload size", func() { b.Upload(tensor.Q8_0, make([]byte, 33), 1, 32) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { mustPanic(t, c.name, c.f) })
	}
}
