package audio

import (
	"fmt"
	"math"
	"runtime"
	"sync"
)

// Resampler design: a Kaiser-windowed sinc low-pass at half the lower of the two rates, with a
// transition band of ±5% of that rate around it (at 16 kHz: flat to 7.2 kHz, stopband from
// 8.8 kHz) and 90 dB of stopband attenuation.
const (
	resampleAtten      = 90.0 // dB
	resampleTransition = 0.05 // half-width of the transition band, as a fraction of the lower rate
	maxPhases          = 1024 // phases tabulated; ratios needing more interpolate between them
)

// Resample returns p converted to rate samples per second with a band-limited (windowed-sinc,
// Kaiser) interpolator: the band below 0.45×min(p.Rate, rate) is kept flat (within 0.001 dB),
// everything above 0.55×min(p.Rate, rate) is attenuated by at least 90 dB, and the output stays
// time-aligned with the input (zero delay; samples beyond the ends count as silence). The result
// has ceil(len(p.Samples)×rate/p.Rate) samples and never shares memory with p. It panics if
// either rate is not positive. Safe for concurrent use.
func Resample(p *PCM, rate int) *PCM {
	if rate <= 0 || p.Rate <= 0 {
		panic(fmt.Sprintf("audio: resample from %d Hz to %d Hz", p.Rate, rate))
	}
	if rate == p.Rate {
		return &PCM{Rate: rate, Samples: append([]float32(nil), p.Samples...)}
	}
	g := gcd(p.Rate, rate)
	up, down := int64(rate/g), int64(p.Rate/g)
	n := (int64(len(p.Samples))*up + down - 1) / down
	out := make([]float32, n)
	k := newKernel(p.Rate, rate, up)

	workers := int64(runtime.GOMAXPROCS(0))
	if n < 1<<16 {
		workers = 1
	}
	per := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*per, min(n, (w+1)*per)
		if lo >= hi {
			break
		}
		wg.Go(func() { k.run(p.Samples, out, lo, hi, up, down) })
	}
	wg.Wait()
	return &PCM{Rate: rate, Samples: out}
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// kernel is the tabulated interpolation filter: rows[ph] holds the 2·half taps for fractional
// position ph/phases, for ph = 0..phases (the last row is position 1, for interpolation).
type kernel struct {
	half   int
	phases int
	exact  bool // phases equals the up factor: every position is a row, no interpolation
	rows   [][]float64
}

func newKernel(from, to int, up int64) *kernel {
	lower := float64(min(from, to))
	cutoff := lower / float64(from) // 2·fc in cycles per input sample
	dw := 2 * math.Pi * 2 * resampleTransition * lower / float64(from)
	taps := (resampleAtten - 8) / (2.285 * dw)
	half := int(math.Ceil(taps/2)) + 1
	beta := 0.1102 * (resampleAtten - 8.7)

	k := &kernel{half: half, phases: maxPhases}
	if up <= maxPhases {
		k.phases, k.exact = int(up), true
	}
	k.rows = make([][]float64, k.phases+1)
	norm := 1 / besselI0(beta)
	for ph := range k.rows {
		frac := float64(ph) / float64(k.phases)
		row := make([]float64, 2*half)
		var sum float64
		for j := range row {
			x := frac + float64(half-1-j) // distance from the output instant to input sample j
			u := x / float64(half)
			if u <= -1 || u >= 1 {
				continue
			}
			row[j] = cutoff * sinc(cutoff*x) * besselI0(beta*math.Sqrt(1-u*u)) * norm
			sum += row[j]
		}
		for j := range row {
			row[j] /= sum // exact unity gain at DC for every phase
		}
		k.rows[ph] = row
	}
	return k
}

// run computes out[lo:hi]; output sample i sits at input position i·down/up.
func (k *kernel) run(in, out []float32, lo, hi, up, down int64) {
	taps := 2 * k.half
	mixed := make([]float64, taps)
	for i := lo; i < hi; i++ {
		pos := i * down
		base := pos / up
		rem := pos % up
		var row []float64
		if k.exact {
			row = k.rows[rem]
		} else {
			f := float64(rem) / float64(up) * float64(k.phases)
			r := int(f)
			w := f - float64(r)
			a, b := k.rows[r], k.rows[r+1]
			for j := range mixed {
				mixed[j] = a[j] + w*(b[j]-a[j])
			}
			row = mixed
		}
		start := int(base) - k.half + 1
		var s float64
		if start >= 0 && start+taps <= len(in) {
			for j, x := range in[start : start+taps] {
				s += float64(x) * row[j]
			}
		} else {
			for j := range taps {
				if t := start + j; t >= 0 && t < len(in) {
					s += float64(in[t]) * row[j]
				}
			}
		}
		out[i] = float32(s)
	}
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Sin(math.Pi*x) / (math.Pi * x)
}

// besselI0 is the modified Bessel function of the first kind, order 0 (power series).
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	q := x * x / 4
	for k := 1; k < 200; k++ {
		term *= q / float64(k*k)
		sum += term
		if term < sum*1e-17 {
			break
		}
	}
	return sum
}
