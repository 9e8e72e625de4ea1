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
