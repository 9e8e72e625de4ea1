package mel

import (
	"math"
	"math/cmplx"
)

// fftPlan is a mixed-radix Stockham FFT of a fixed complex length with precomputed twiddles.
// A plan is immutable after creation and safe for concurrent use; scratch space is the caller's.
type fftPlan struct {
	n      int
	stages []fftStage
}

type fftStage struct {
	radix int
	ns    int          // size of the sub-transforms already combined before this stage
	tw    []complex128 // tw[k*radix+r] = exp(-2πi·r·k/(ns·radix)), k < ns
}

// newFFTPlan factors n into radices 4, 2, 5, 3 and any remaining primes.
func newFFTPlan(n int) *fftPlan {
	p := &fftPlan{n: n}
	var radices []int
	m := n
	for _, r := range []int{4, 2, 5, 3} {
		for m%r == 0 {
			radices = append(radices, r)
			m /= r
		}
	}
	for f := 7; m > 1; f += 2 {
		for m%f == 0 {
			radices = append(radices, f)
			m /= f
		}
	}
	ns := 1
	for _, r := range radices {
		st := fftStage{radix: r, ns: ns, tw: make([]complex128, ns*r)}
		for k := range ns {
			for j := range r {
				st.tw[k*r+j] = cmplx.Rect(1, -2*math.Pi*float64(j*k)/float64(ns*r))
			}
		}
		p.stages = append(p.stages, st)
		ns *= r
	}
	return p
}

// transform computes the forward DFT of x (len n) using y (len n) as scratch and returns the
// slice (x or y) holding the result. Radices 2, 4 and 5 (all of the 200-point transform of a
// 400-sample frame) have butterflies of their own; the others go through smallDFT.
func (p *fftPlan) transform(x, y []complex128) []complex128 {
	n := p.n
	var v [16]complex128
	for _, st := range p.stages {
		r, ns := st.radix, st.ns
		stride := n / r
		// Input j = g*ns + k (k < ns) reads x[j + q*stride]; its outputs go to
		// y[g*ns*r + k + q*ns].
		for g := range stride / ns {
			for k := range ns {
				j, out := g*ns+k, g*ns*r+k
				tw := st.tw[k*r : k*r+r]
				switch r {
				case 2:
					a, b := x[j], x[j+stride]*tw[1]
					y[out], y[out+ns] = a+b, a-b
				case 4:
					a, b, c, d := x[j], x[j+stride]*tw[1], x[j+2*stride]*tw[2], x[j+3*stride]*tw[3]
					s0, s1 := a+c, a-c
					s2, s3 := b+d, b-d
					s3 = complex(imag(s3), -real(s3)) // -i·(b-d)
					y[out], y[out+ns], y[out+2*ns], y[out+3*ns] = s0+s2, s1+s3, s0-s2, s1-s3
				case 5:
					a0 := x[j]
					a1, a2 := x[j+stride]*tw[1], x[j+2*stride]*tw[2]
					a3, a4 := x[j+3*stride]*tw[3], x[j+4*stride]*tw[4]
					b0, b1, b2, b3, b4 := dft5(a0, a1, a2, a3, a4)
					y[out], y[out+ns], y[out+2*ns], y[out+3*ns], y[out+4*ns] = b0, b1, b2, b3, b4
				default:
					var vals []complex128
					if r <= len(v) {
						vals = v[:r]
					} else {
						vals = make([]complex128, r)
					}
					for q := range r {
						vals[q] = x[j+q*stride] * tw[q]
					}
					smallDFT(vals)
					for q := range r {
						y[out+q*ns] = vals[q]
					}
				}
			}
		}
		x, y = y, x
	}
	return x
}

// dft5 is the 5-point DFT.
func dft5(a0, a1, a2, a3, a4 complex128) (b0, b1, b2, b3, b4 complex128) {
	const (
		c1 = 0.30901699437494745 // cos(2π/5)
		c2 = -0.8090169943749473 // cos(4π/5)
		s1 = 0.9510565162951535  // sin(2π/5)
		s2 = 0.5877852522924732  // sin(4π/5)
	)
	t1, t2 := a1+a4, a2+a3
	t3, t4 := a1-a4, a2-a3
	m1 := a0 + complex(c1*real(t1)+c2*real(t2), c1*imag(t1)+c2*imag(t2))
	m2 := a0 + complex(c2*real(t1)+c1*real(t2), c2*imag(t1)+c1*imag(t2))
	// -i·(s1·t3 + s2·t4) and -i·(s2·t3 - s1·t4)
	e1 := complex(s1*imag(t3)+s2*imag(t4), -(s1*real(t3) + s2*real(t4)))
	e2 := complex(s2*imag(t3)-s1*imag(t4), -(s2*real(t3) - s1*real(t4)))
	return a0 + t1 + t2, m1 + e1, m2 + e2, m2 - e2, m1 - e1
}

// smallDFT computes an in-place DFT of a short vector (the butterfly of one stage).
func smallDFT(v []complex128) {
	switch len(v) {
	case 1:
	case 2:
		v[0], v[1] = v[0]+v[1], v[0]-v[1]
	case 4:
		a, b, c, d := v[0], v[1], v[2], v[3]
		s0, s1 := a+c, a-c
		s2, s3 := b+d, b-d
		s3 = complex(imag(s3), -real(s3)) // -i·(b-d)
		v[0], v[1], v[2], v[3] = s0+s2, s1+s3, s0-s2, s1-s3
	case 5:
		v[0], v[1], v[2], v[3], v[4] = dft5(v[0], v[1], v[2], v[3], v[4])
	default:
		n := len(v)
		var buf [16]complex128
		tmp := buf[:0]
		if n > len(buf) {
			tmp = make([]complex128, 0, n)
		}
		for k := range n {
			var s complex128
			for j := range n {
				s += v[j] * cmplx.Rect(1, -2*math.Pi*float64((j*k)%n)/float64(n))
			}
			tmp = append(tmp, s)
		}
		copy(v, tmp)
	}
}

// realFFT computes the power spectrum |X[k]|² (k = 0..n/2) of a real frame of even length n
// through one complex FFT of length n/2.
type realFFT struct {
	n    int
	half *fftPlan
	w    []complex128 // w[k] = exp(-2πi·k/n), k <= n/2
}

func newRealFFT(n int) *realFFT {
	f := &realFFT{n: n, half: newFFTPlan(n / 2), w: make([]complex128, n/2+1)}
	for k := range f.w {
		f.w[k] = cmplx.Rect(1, -2*math.Pi*float64(k)/float64(n))
	}
	return f
}

// power writes |X[k]|² for k = 0..n/2 into out; x and y are scratch of length n/2.
func (f *realFFT) power(frame []float64, out []float64, x, y []complex128) {
	m := f.n / 2
	for i := range m {
		x[i] = complex(frame[2*i], frame[2*i+1])
	}
	z := f.half.transform(x, y)
	for k := 0; k <= m; k++ {
		ik, ic := k, m-k
		if k == m {
			ik = 0
		} else if k == 0 {
			ic = 0
		}
		zk := z[ik]
		zc := cmplx.Conj(z[ic])
		even := (zk + zc) * 0.5
		odd := (zk - zc) * complex(0, -0.5)
		xk := even + f.w[k]*odd
		out[k] = real(xk)*real(xk) + imag(xk)*imag(xk)
	}
}
