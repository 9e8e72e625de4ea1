package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestExpNeg: expNeg within 4 ulps of math.Exp over [-708, 0], at the table's and the
// polynomial's edges, and at the special values.
func TestExpNeg(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	xs := []float64{0, -0.0, -1e-300, -math.Ln2 / 64, -math.Ln2 / 32, -math.Ln2, -1, -20, -100, -707.9}
	for range 200000 {
		xs = append(xs, -r.Float64()*708, -r.Float64()*r.Float64()*30, -r.Float64()*1e-6)
	}
	for _, x := range xs {
		got, want := expNeg(x), math.Exp(x)
		if d := math.Abs(got-want) / want; d > 4*0x1p-52 {
			t.Fatalf("expNeg(%v) = %v, math.Exp %v: relative error %.3g", x, got, want, d)
		}
	}
	for _, c := range []struct{ x, want float64 }{{-709, 0}, {math.Inf(-1), 0}} {
		if got := expNeg(c.x); got != c.want {
			t.Errorf("expNeg(%v) = %v, want %v", c.x, got, c.want)
		}
	}
	if got := expNeg(math.NaN()); !math.IsNaN(got) {
		t.Errorf("expNeg(NaN) = %v", got)
	}
}

func BenchmarkLogSumExp(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, 51866)
	for i := range x {
		x[i] = float32(r.NormFloat64() * 3)
	}
	var s float64
	for b.Loop() {
		s += LogSumExp(x)
	}
	_ = s
}

// TestSumExpNegFast: sumExpNegFast's terms are expNeg's, bit for bit (one term a call, the other
// lanes masked), its sums sumExpNeg's within rounding, and a NaN anywhere makes it NaN.
func TestSumExpNegFast(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	inf := float32(math.Inf(-1))
	for i := range 50000 {
		v := -float32(r.Float64() * 720)
		if i%3 == 0 {
			v = -float32(r.Float64() * 2)
		}
		x := []float32{inf, inf, inf, inf, inf, inf, inf, inf, inf}
		x[i%8] = v
		got, want := sumExpNegFast(x, 0), sumExpNeg(x, 0)
		if math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("term of %v (lane %d): %v, expNeg %v", v, i%8, got, want)
		}
	}
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 40, 51866} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64() * 5)
			switch i % 11 {
			case 3:
				x[i] = inf
			case 7:
				x[i] = -700 - float32(r.Float64()*20) // about -708 from the maximum
			}
		}
		m := inf
		for _, v := range x {
			m = max(m, v)
		}
		if n == 0 {
			m = 0
		}
		got, want := sumExpNegFast(x, m), sumExpNeg(x, m)
		if d := math.Abs(got - want); d > 1e-14*want {
			t.Fatalf("n=%d: sum %v, sumExpNeg %v", n, got, want)
		}
		if n > 0 {
			x[r.IntN(n)] = float32(math.NaN())
			if got := sumExpNegFast(x, m); !math.IsNaN(got) {
				t.Fatalf("n=%d with a NaN: %v", n, got)
			}
		}
	}
}

// TestMaxFast: maxFast is a loop of Go's max: the same value on rows of every length about the
// kernel's 16, -Inf when empty or all -Inf, NaN when a NaN is anywhere.
func TestMaxFast(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	inf := float32(math.Inf(-1))
	loop := func(x []float32) float32 {
		m := inf
		for _, v := range x {
			m = max(m, v)
		}
		return m
	}
	for _, n := range []int{0, 1, 15, 16, 17, 31, 32, 33, 100, 51866} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64() * 10)
		}
		if got, want := maxFast(x), loop(x); got != want {
			t.Fatalf("n=%d: %v, want %v", n, got, want)
		}
		for i := range x {
			x[i] = inf
		}
		if got := maxFast(x); got != inf {
			t.Fatalf("n=%d all -Inf: %v", n, got)
		}
		if n > 0 {
			x[r.IntN(n)] = float32(math.NaN())
			if got := maxFast(x); got == got {
				t.Fatalf("n=%d with a NaN: %v", n, got)
			}
			if got := LogSumExp(x); !math.IsNaN(got) {
				t.Fatalf("n=%d: LogSumExp with a NaN among -Inf: %v", n, got)
			}
		}
	}
}

// TestExpScaled: ExpScaled gives math.Exp's bits for every value: logits of a vocabulary row at
// sampling temperatures, -Inf, arguments that underflow to subnormals and to zero, that
// overflow, NaN, the edges of exp's range, and lengths that leave a tail.
func TestExpScaled(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 13))
	// around exp's edges with m = 0, t = 1: subnormal results, zero, the largest finite, +Inf
	edges := []float32{-707.5, -708.5, -708.9, -709, -709.5, -720, -744, -745.5, -750, 708.5, 709, 709.7, 709.8, 710, 0, -0.1}
	for _, n := range []int{0, 1, 7, 8, 9, 16, 64, 51866} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64() * 8)
			switch r.IntN(40) {
			case 0:
				x[i] = float32(math.Inf(-1))
			case 1:
				x[i] = -200 - float32(r.IntN(400)) // with t = 0.2 to 1: under -708
			case 2:
				x[i] = 150 + float32(r.IntN(700)) // over the maximum below: overflows at small t
			case 3:
				x[i] = float32(math.NaN())
			}
		}
		if n == 16 {
			copy(x, edges)
		}
		for _, c := range []struct{ m, t float64 }{{20, 0.2}, {20, 0.4}, {3.5, 1}, {0, 0.7}, {0, 1}, {-1e30, 1}} {
			got := make([]float64, n)
			ExpScaled(got, x, c.m, c.t)
			for i, v := range x {
				want := math.Exp((float64(v) - c.m) / c.t)
				if math.Float64bits(got[i]) != math.Float64bits(want) {
					t.Fatalf("n %d, m %g, t %g: exp((%g - m) / t) = %g (%#x), math.Exp %g (%#x)", n, c.m, c.t, v, got[i], math.Float64bits(got[i]), want, math.Float64bits(want))
				}
			}
		}
	}
}
