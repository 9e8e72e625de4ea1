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
// slice (x or y) holding the result.
func (p *fftPlan) transform(x, y []complex128) []complex128 {
	n := p.n
	var v [16]complex128
	for _, st := range p.stages {
		r, ns := st.radix, st.ns
		stride := n / r
		for j := range stride {
			k := j % ns
			tw := st.tw[k*r : k*r+r]
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
			out := (j/ns)*ns*r + k
			for q := range r {
				y[out+q*ns] = vals[q]
			}
		}
		x, y = y, x
	}
	return x
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
		const (
			c1 = 0.30901699437494745 // cos(2π/5)
			c2 = -0.8090169943749473 // cos(4π/5)
			s1 = 0.9510565162951535  // sin(2π/5)
			s2 = 0.5877852522924732  // sin(4π/5)
		)
		a0, a1, a2, a3, a4 := v[0], v[1], v[2], v[3], v[4]
		t1, t2 := a1+a4, a2+a3
		t3, t4 := a1-a4, a2-a3
		b1 := a0 + complex(c1, 0)*t1 + complex(c2, 0)*t2
		b2 := a0 + complex(c2, 0)*t1 + complex(c1, 0)*t2
		// -i·(s1·t3 + s2·t4) and -i·(s2·t3 - s1·t4)
		e1 := complex(s1, 0)*t3 + complex(s2, 0)*t4
		e2 := complex(s2, 0)*t3 - complex(s1, 0)*t4
		e1 = complex(imag(e1), -real(e1))
		e2 = complex(imag(e2), -real(e2))
		v[0] = a0 + t1 + t2
		v[1], v[4] = b1+e1, b1-e1
		v[2], v[3] = b2+e2, b2-e2
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
		zk := z[k%m]
		zc := cmplx.Conj(z[(m-k)%m])
		even := (zk + zc) * 0.5
		odd := (zk - zc) * complex(0, -0.5)
		xk := even + f.w[k]*odd
		out[k] = real(xk)*real(xk) + imag(xk)*imag(xk)
	}
}
