package cpu

import (
	"math"
	"testing"
)

func TestErf32(t *testing.T) {
	var worst, at float64
	for i := -800000; i <= 800000; i++ {
		x := float64(i) * 1e-5
		if e := math.Abs(float64(erf32(float32(x))) - math.Erf(float64(float32(x)))); e > worst {
			worst, at = e, x
		}
	}
	if worst >= 1e-6 {
		t.Errorf("erf32: max abs error %g at %g, want < 1e-6", worst, at)
	}
	t.Logf("erf32 max abs error %.3g at %g", worst, at)
}

func TestExp32(t *testing.T) {
	var worst, at float64
	for i := -1040000; i <= 887000; i++ {
		x := float32(float64(i) * 1e-4)
		want := math.Exp(float64(x))
		got := float64(exp32(x))
		if want < 1e-37 {
			if math.Abs(got-want) > 1e-44 {
				t.Fatalf("exp32(%g) = %g, want %g", x, got, want)
			}
			continue
		}
		if e := math.Abs(got-want) / want; e > worst {
			worst, at = e, float64(x)
		}
	}
	if worst > 3e-7 {
		t.Errorf("exp32: max relative error %g at %g", worst, at)
	}
	for _, c := range []struct{ x, want float32 }{{0, 1}, {-200, 0}, {100, float32(math.Inf(1))}} {
		if got := exp32(c.x); got != c.want {
			t.Errorf("exp32(%g) = %g, want %g", c.x, got, c.want)
		}
	}
}

// TestVectorKernels checks each SIMD set's exp, max, GELU and weighted-sum kernels against
// float64 math on lengths that cover the unrolled and tail paths.
func TestVectorKernels(t *testing.T) {
	withSIMD(t, func(t *testing.T) {
		s := active
		n := 16 * 67
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(i-n/2) * 0.021
		}
		x[5] = 30
		// exp
		y := append([]float32(nil), x...)
		m := float32(2.5)
		sum := s.expSum(&y[0], n/s.expStep*s.expStep, m)
		var want float64
		for i, v := range x {
			e := math.Exp(float64(v - m))
			want += e
			if math.Abs(float64(y[i])-e) > 3e-7*e+1e-37 {
				t.Fatalf("expSum[%d] = %g, want %g", i, y[i], e)
			}
		}
		if math.Abs(float64(sum)-want) > 1e-5*want {
			t.Errorf("expSum sum %g, want %g", sum, want)
		}
		// max, with the maximum at several positions
		for _, p := range []int{0, 5, 17, n - 1} {
			z := append([]float32(nil), x...)
			z[p] = 1000
			if got := s.vmax(&z[0], n); got != 1000 {
				t.Errorf("vmax with the maximum at %d = %g", p, got)
			}
		}
		// GELU
		g := make([]float32, n)
		s.gelu(&g[0], &x[0], n)
		for i, v := range x {
			w := 0.5 * float64(v) * (1 + math.Erf(float64(v)/math.Sqrt2))
			if math.Abs(float64(g[i])-w) > 1e-6*max(1, math.Abs(float64(v))) {
				t.Fatalf("gelu(%g) = %g, want %g", v, g[i], w)
			}
		}
		// weighted sum of rows
		const d, rows, ldv = 80, 37, 100
		v := make([]float32, rows*ldv)
		for i := range v {
			v[i] = float32(i%13) - 6
		}
		out := make([]float32, d)
		wsum(out, x[:rows], v, ldv)
		for e := range d {
			var w float64
			for j := range rows {
				w += float64(x[j]) * float64(v[j*ldv+e])
			}
			if math.Abs(float64(out[e])-w) > 1e-4 {
				t.Fatalf("wsum[%d] = %g, want %g", e, out[e], w)
			}
		}
	})
}
