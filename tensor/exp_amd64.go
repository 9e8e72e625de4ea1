//go:build amd64 && !purego

package tensor

import (
	"math"

	"golang.org/x/sys/cpu"
)

//go:noescape
func sumExpNegAVX512(x *float32, n int, m float32, c *[16]float64, tab *[32]float64) (sum float64, nan bool)

//go:noescape
func maxAVX512(x *float32, n int) (m float32, nan bool)

// maxFast is the largest value of x (-Inf when empty), NaN when x holds one, as a loop of Go's
// max gives; 16 at a time with AVX-512 where the processor has it.
func maxFast(x []float32) float32 {
	n := len(x) &^ 15
	m := float32(math.Inf(-1))
	if hasAVX512 && n > 0 {
		var nan bool
		if m, nan = maxAVX512(&x[0], n); nan {
			return float32(math.NaN())
		}
	} else {
		n = 0
	}
	return maxFrom(m, x[n:])
}

// expConsts are expNeg's constants as the assembly reads them, made by the same Go expressions.
var expConsts = [16]float64{32 / math.Ln2, 0.5, expLn2Hi, expLn2Lo, 1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 1, -708}

// hasAVX512 reports whether the processor (and the system) run AVX-512F.
var hasAVX512 = cpu.X86.HasAVX512F

// sumExpNegFast is sumExpNeg, 8 terms at a time with AVX-512 where the processor has it: the same
// terms (each as expNeg makes it), summed in 8 lanes and then reduced, so the sum may differ
// from sumExpNeg's in its last bits.
func sumExpNegFast(x []float32, m float32) float64 {
	n := len(x) &^ 7
	if !hasAVX512 || n == 0 {
		return sumExpNeg(x, m)
	}
	s, nan := sumExpNegAVX512(&x[0], n, m, &expConsts, &exp2Frac)
	if nan {
		return math.NaN()
	}
	return s + sumExpNeg(x[n:], m)
}
