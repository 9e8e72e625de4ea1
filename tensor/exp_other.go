//go:build !amd64 || purego

package tensor

import "math"

// sumExpNegFast is sumExpNeg (the amd64 version has an AVX-512 kernel).
func sumExpNegFast(x []float32, m float32) float64 { return sumExpNeg(x, m) }

// maxFast is the largest value of x (-Inf when empty), NaN when x holds one: a loop of Go's max.
func maxFast(x []float32) float32 { return maxFrom(float32(math.Inf(-1)), x) }

// ExpScaled sets dst[i] = math.Exp((float64(x[i]) - m) / t) for each of x's values (len(dst) >=
// len(x)); the amd64 version has an AVX-512 kernel with the same bits.
func ExpScaled(dst []float64, x []float32, m, t float64) {
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = math.Exp((float64(v) - m) / t)
	}
}
