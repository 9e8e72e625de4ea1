package tensor

import "math"

// exp2Frac[j] is 2^(j/32).
var exp2Frac = func() (t [32]float64) {
	for j := range t {
		t[j] = math.Exp2(float64(j) / 32)
	}
	return t
}()

// ln2/32 split in two: the high part has trailing zero bits, so that n*expLn2Hi is exact for
// every |n| < 2^20.
const (
	expLn2Hi = 0x1.62e42fefp-6
	expLn2Lo = 0x1.473de6af278edp-39
)

// expNeg is exp(x) for x <= 0 (NaN for NaN, 0 below -708), within a few units in the last
// place: 2^(n/32) from a table and an exponent, times a degree-6 polynomial of the rest, |r| <=
// ln2/64. It is 3-4x faster than math.Exp, which matters in LogSumExp: a vocabulary row is
// 51,866 of them, and the host ranks every beam's row every step on the CPU backend.
func expNeg(x float64) float64 {
	if !(x > -708) {
		if x != x {
			return x
		}
		return 0
	}
	n := int(x*(32/math.Ln2) - 0.5) // round(x*32/ln2), ties either way: |r| <= ln2/64 still
	fn := float64(n)
	r := (x - fn*expLn2Hi) - fn*expLn2Lo
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720))))))
	v := exp2Frac[n&31] * p
	return math.Float64frombits(math.Float64bits(v) + uint64(int64(n>>5))<<52)
}

// sumExpNeg is the sum of exp(v - m) over x, every v <= m, in order: expNeg written out in the
// loop (the compiler does not inline it).
func sumExpNeg(x []float32, m float32) float64 {
	var sum float64
	for _, v := range x {
		d := float64(v - m)
		if !(d > -708) {
			if d != d {
				return d
			}
			continue
		}
		n := int(d*(32/math.Ln2) - 0.5)
		fn := float64(n)
		r := (d - fn*expLn2Hi) - fn*expLn2Lo
		p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720))))))
		sum += math.Float64frombits(math.Float64bits(exp2Frac[n&31]*p) + uint64(int64(n>>5))<<52)
	}
	return sum
}

// maxFrom is the largest of m and x's values, NaN when one is (a loop of Go's max).
func maxFrom(m float32, x []float32) float32 {
	for _, v := range x {
		m = max(m, v)
	}
	return m
}
