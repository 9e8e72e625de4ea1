package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestQuantizeRun8: the largest magnitude becomes ±127, every value comes back within half a
// step (the scale / 2), halves round away from zero, and a run of zeros has scale 0 and zero
// codes (dst's stale codes cleared).
func TestQuantizeRun8(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	codes := make([]int8, 64)
	src := make([]float32, 64)
	for range 200 {
		mag := float32(math.Ldexp(1, rng.IntN(40)-20))
		for i := range src {
			src[i] = (rng.Float32()*2 - 1) * mag
		}
		s := QuantizeRun8(codes, src)
		var mx float32
		top := 0
		for i, x := range src {
			if a := float32(math.Abs(float64(x))); a > mx {
				mx, top = a, i
			}
		}
		if s != mx/127 {
			t.Fatalf("scale %g, want %g", s, mx/127)
		}
		if c := codes[top]; c != 127 && c != -127 {
			t.Fatalf("the largest magnitude %g: code %d, want ±127", src[top], c)
		}
		for i, x := range src {
			if d := math.Abs(float64(float32(codes[i])*s - x)); d > float64(s)/2*1.0001 {
				t.Fatalf("value %d: %g -> code %d x %g, off by %g (more than half a step)", i, x, codes[i], s, d)
			}
		}
	}
	if s := QuantizeRun8(codes[:2], []float32{127, -0.5}); s != 1 || codes[0] != 127 || codes[1] != -1 {
		t.Errorf("{127, -0.5}: scale %g, codes %v, want 1 and [127 -1] (halves away from zero)", s, codes[:2])
	}
	if s := QuantizeRun8(codes, make([]float32, 64)); s != 0 || codes[0] != 0 || codes[63] != 0 {
		t.Errorf("zeros: scale %g, codes %d ... %d, want 0 and zeros", s, codes[0], codes[63])
	}
}
