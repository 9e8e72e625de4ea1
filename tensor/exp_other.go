//go:build !amd64 || purego

package tensor

// sumExpNegFast is sumExpNeg (the amd64 version has an AVX-512 kernel).
func sumExpNegFast(x []float32, m float32) float64 { return sumExpNeg(x, m) }
