package tensor

import "math"

// QuantizeRun8 writes src as int8 into dst (as long) and returns the scale: src's largest
// magnitude / 127, each value src / scale rounded (ties away from zero); all zero, a scale of 0.
// The host's twin of WindowAttention8.QuantizeKV8, for one head of one position.
func QuantizeRun8(dst []int8, src []float32) (scale float32) {
	var mx float32
	for _, x := range src {
		mx = max(mx, float32(math.Abs(float64(x))))
	}
	if mx == 0 {
		clear(dst[:len(src)])
		return 0
	}
	s := mx / 127
	for j, x := range src {
		dst[j] = int8(math.Round(float64(x / s)))
	}
	return s
}
