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

//go:noescape
func expScaledAVX512(dst *float64, x *float32, n int, m, t float64, c *[16]float64)

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

// mathExpConsts are the constants of the Go runtime's amd64 math.Exp (src/math/exp_amd64.s) in
// expScaledAVX512's order: log2(e), ln2 in two parts, 1/16, the Taylor coefficients 1/8! down to
// 1/3!, then 1/2, 1 and 2, and the mark -1.
var mathExpConsts = [16]float64{
	1.4426950408889634073599246810018920,
	0.69314718055966295651160180568695068359375,
	0.28235290563031577122588448175013436025525412068e-12,
	0.0625,
	2.4801587301587301587e-5, 1.9841269841269841270e-4, 1.3888888888888888889e-3, 8.3333333333333333333e-3,
	4.1666666666666666667e-2, 1.6666666666666666667e-1,
	0.5, 1.0, 2.0, -1,
}

// expScaledFast tells whether ExpScaled runs its kernel: AVX-512F, and FMA, with which
// math.Exp takes the path the kernel repeats.
var expScaledFast = hasAVX512 && cpu.X86.HasAVX && cpu.X86.HasFMA

// ExpScaled sets dst[i] = math.Exp((float64(x[i]) - m) / t) for each of x's values (len(dst) >=
// len(x)): the same bits as that loop, 8 values at a time with AVX-512 where the processor has
// it (the Go runtime's own algorithm, lane by lane); values the kernel leaves (underflows,
// overflows, infinities and NaN) and the last len(x)%8 are math.Exp's calls.
func ExpScaled(dst []float64, x []float32, m, t float64) {
	dst = dst[:len(x)]
	n := len(x) &^ 7
	if !expScaledFast || n == 0 {
		n = 0
	} else {
		expScaledAVX512(&dst[0], &x[0], n, m, t, &mathExpConsts)
		for i, p := range dst[:n] {
			if p < 0 {
				dst[i] = math.Exp((float64(x[i]) - m) / t)
			}
		}
	}
	for i := n; i < len(x); i++ {
		dst[i] = math.Exp((float64(x[i]) - m) / t)
	}
}
