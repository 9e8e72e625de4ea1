package cpu

import "math"

func simdLevel() string { return active.name }

// exp32 is a float32 exp with about 1 ulp of error (Cephes' expf polynomial after reducing by
// ln 2), the scalar twin of the vector kernels.
func exp32(x float32) float32 {
	switch {
	case x != x:
		return x
	case x > 88.72283:
		return float32(math.Inf(1))
	case x < -103.5:
		return 0
	}
	n := float32(math.RoundToEven(float64(x * 1.442695)))
	r := x - n*0.693359375
	r -= n * -2.12194440e-4
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	p = p*r*r + r + 1
	e := int32(n)
	if e < -125 {
		p *= 0x1p-25
		e += 25
	}
	if e > 127 {
		p *= 2
		e--
	}
	return p * math.Float32frombits(uint32(e+127)<<23)
}

// erf32 approximates erf with absolute error below 5e-7 (Abramowitz and Stegun 7.1.26 in
// float32).
func erf32(x float32) float32 {
	ax := x
	if ax < 0 {
		ax = -ax
	}
	if ax > 6 {
		ax = 6 // erf(6) = 1 - 2e-17
	}
	t := 1 / (1 + 0.3275911*ax)
	y := ((((1.061405429*t-1.453152027)*t+1.421413741)*t-0.284496736)*t + 0.254829592) * t
	e := 1 - y*exp32(-ax*ax)
	if x < 0 {
		return -e
	}
	return e
}

// gelu32 is 0.5 x (1 + erf(x / sqrt 2)).
func gelu32(x float32) float32 { return 0.5 * x * (1 + erf32(x*0.70710678118654752)) }
