package whisper

import (
	"math"
	"testing"
)

// e4m3Values are every finite FP8 E4M3 value: sign, 4 exponent bits (bias 7), 3 mantissa bits;
// exponent 15 with mantissa 7 is NaN.
func e4m3Values() []float64 {
	var out []float64
	for code := range 256 {
		s, e, f := code>>7, (code>>3)&15, code&7
		if e == 15 && f == 7 {
			continue
		}
		v := math.Ldexp(float64(f)/8, -6) // subnormal
		if e > 0 {
			v = math.Ldexp(1+float64(f)/8, e-7)
		}
		if s == 1 {
			v = -v
		}
		out = append(out, v)
	}
	return out
}

func TestRoundE4M3(t *testing.T) {
	vals := e4m3Values()
	for _, v := range vals {
		if got := roundE4M3(v); got != v {
			t.Fatalf("roundE4M3(%g) = %g: an E4M3 value is not kept", v, got)
		}
	}
	// Any other value goes to a nearest E4M3 value (saturating at 448).
	for _, y := range []float64{1.0625, 1.07, 17, 300, 447, 500, -0.003, 0.0009, 2e-3, 1e-9, -1e6} {
		got := roundE4M3(y)
		best := math.Inf(1)
		for _, v := range vals {
			best = math.Min(best, math.Abs(v-math.Max(-448, math.Min(448, y))))
		}
		if d := math.Abs(got - math.Max(-448, math.Min(448, y))); d != best {
			t.Errorf("roundE4M3(%g) = %g, %g away; the nearest E4M3 value is %g away", y, got, d, best)
		}
	}
}

func TestRoundKV8(t *testing.T) {
	v := []float32{0.5, -1, 0.25, 0.126, 0, 0, 0, 0, 3, 2.99, -0.01, 1}
	want := append([]float32(nil), v...)
	roundKV8(v, 4, "int8")
	for g := 0; g < len(v); g += 4 {
		var mx float32
		for _, x := range want[g : g+4] {
			mx = max(mx, float32(math.Abs(float64(x))))
		}
		s := mx / 127
		for j := g; j < g+4; j++ {
			if d := math.Abs(float64(v[j] - want[j])); d > float64(s)/2*1.0001 {
				t.Errorf("int8: %g -> %g, more than half a step (%g) off", want[j], v[j], s)
			}
			if k := float64(v[j] / max(s, 1e-30)); s > 0 && math.Abs(k-math.Round(k)) > 1e-3 {
				t.Errorf("int8: %g -> %g, not a whole number of steps of %g", want[j], v[j], s)
			}
		}
	}
	if v[4] != 0 || v[7] != 0 {
		t.Errorf("int8: a group of zeros became %v", v[4:8])
	}
	if v[1] != -1 || v[8] != 3 {
		t.Errorf("int8: a group's largest value moved: %g, %g", v[1], v[8])
	}
	e := append([]float32(nil), want...)
	roundKV8(e, 4, "e4m3")
	for j := range e {
		if d := math.Abs(float64(e[j] - want[j])); d > math.Abs(float64(want[j]))/16*1.0001+1e-6 {
			t.Errorf("e4m3: %g -> %g, more than half of a 3-bit mantissa's step off", want[j], e[j])
		}
	}
}
