// Package mel is Whisper's log-mel frontend: 16 kHz mono samples to log-mel features.
package mel

import (
	"math"
	"runtime"
	"slices"
	"sync"
)

// Reference framing constants.
const (
	SampleRate   = 16000
	NFFT         = 400
	HopLength    = 160
	ChunkSamples = 30 * SampleRate // one 30 s window
	ChunkFrames  = ChunkSamples / HopLength
)

// Compute returns log-mel features [nMels, frames] (row-major) with frames = len(samples)/HopLength,
// framed as the reference (centered STFT with reflect padding, Hann window, last frame dropped),
// normalized as the reference: log10(max(x, 1e-10)), clamped at (max over the whole input) - 8,
// then (x + 4) / 4.
//
// The STFT and mel projection run in float64, spread over GOMAXPROCS goroutines. Input shorter
// than one hop gives no frames. It panics if nMels <= 0.
func Compute(samples []float32, nMels int) (data []float32, frames int) {
	frames = len(samples) / HopLength
	data, best := logMelFrames(samples, nMels, frames)
	floor := best - 8
	for i, v := range data {
		data[i] = (max(v, floor) + 4) / 4
	}
	return data, frames
}

// logMelFrames returns the log10 mel energies [nMels, frames] of the first frames frames of
// samples, computed over GOMAXPROCS goroutines, and their maximum (-Inf for none).
func logMelFrames(samples []float32, nMels, frames int) ([]float32, float32) {
	data := make([]float32, nMels*frames)
	return data, logMelInto(data, frames, signal{samples, len(samples)}, nMels, 0, frames)
}

// signal is samples followed by zeros up to n samples in all: the reference's padded input,
// without the copy.
type signal struct {
	s []float32
	n int
}

// at is sample i of the signal, reflect-padded at both ends as the reference's STFT pads it.
func (g signal) at(i int) float64 {
	if i = reflect(i, g.n); i < len(g.s) {
		return float64(g.s[i])
	}
	return 0
}

// logMelInto writes the log10 mel energies of frames [t0, t1) of g into data (row i at
// data[i*stride:], frame t at column t-t0), computed over GOMAXPROCS goroutines, and returns
// their maximum (-Inf for none).
func logMelInto(data []float32, stride int, g signal, nMels, t0, t1 int) float32 {
	b := getBank(nMels)
	frames := t1 - t0
	if frames <= 0 {
		return float32(math.Inf(-1))
	}
	workers := min(runtime.GOMAXPROCS(0), (frames+63)/64)
	per := (frames + workers - 1) / workers
	maxes := make([]float32, workers)
	var wg sync.WaitGroup
	for w := range workers {
		a, z := t0+w*per, min(t1, t0+(w+1)*per)
		wg.Go(func() {
			maxes[w] = float32(math.Inf(-1))
			if a < z {
				maxes[w] = logMel(g, b, nMels, stride, t0, a, z, data)
			}
		})
	}
	wg.Wait()
	return slices.Max(maxes)
}

var (
	hann   = sync.OnceValue(periodicHann)
	rfft   = sync.OnceValue(func() *realFFT { return newRealFFT(NFFT) })
	padLen = NFFT / 2
)

// periodicHann is torch.hann_window(NFFT) (periodic=True).
func periodicHann() []float64 {
	w := make([]float64, NFFT)
	for i := range w {
		w[i] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/NFFT)
	}
	return w
}

// reflect maps an index of the reflect-padded signal onto samples of length n (numpy "reflect":
// the edge sample is not repeated), mirroring repeatedly for very short inputs.
func reflect(i, n int) int {
	if n == 1 {
		return 0
	}
	period := 2 * (n - 1)
	i %= period
	if i < 0 {
		i += period
	}
	if i >= n {
		i = period - i
	}
	return i
}

// logMel writes log10 mel energies of frames [t0, t1) of g into data (frame t at row offset
// t-base, rows stride apart) and returns their maximum.
func logMel(g signal, b *bank, nMels, stride, base, t0, t1 int, data []float32) float32 {
	win := hann()
	f := rfft()
	samples := g.s
	const nBins = NFFT/2 + 1
	frame := make([]float64, NFFT)
	power := make([]float64, nBins)
	x := make([]complex128, NFFT/2)
	y := make([]complex128, NFFT/2)
	best := float32(math.Inf(-1))
	for t := t0; t < t1; t++ {
		start := t*HopLength - padLen
		if start >= 0 && start+NFFT <= len(samples) {
			for j, s := range samples[start : start+NFFT] {
				frame[j] = float64(s) * win[j]
			}
		} else {
			for j := range NFFT {
				frame[j] = g.at(start+j) * win[j]
			}
		}
		f.power(frame, power, x, y)
		col := t - base
		for i := range nMels {
			row := b.w[i*nBins : (i+1)*nBins]
			var s float64
			for k := b.lo[i]; k < b.hi[i]; k++ {
				s += row[k] * power[k]
			}
			v := float32(math.Log10(max(s, 1e-10)))
			data[i*stride+col] = v
			best = max(best, v)
		}
	}
	return best
}

// Head is the first n frames of Compute(samples followed by pad zero samples), [nMels, n]
// row-major (n at most the frames there are), without computing the frames that only the zeros
// reach: each of those is log10(1e-10), never above a frame of the samples, so the maximum the
// normalization clamps from is that of the frames computed. A 30 s window padded with 30 s, as
// the reference pads it, is half the work.
func Head(samples []float32, pad, nMels, n int) []float32 {
	n = max(0, min(n, (len(samples)+pad)/HopLength))
	out := make([]float32, nMels*n)
	HeadInto(out, n, samples, pad, nMels, n)
	return out
}

// HeadInto is Head written into dst, row i (of n frames) at dst[i*stride:], with no copy of the
// samples and no other buffer of the window's size: the frames are computed in place. n must
// not exceed the frames there are.
func HeadInto(dst []float32, stride int, samples []float32, pad, nMels, n int) {
	g := signal{samples, len(samples) + pad}
	total := g.n / HopLength
	if n < 0 || n > total || stride < n || len(dst) < (nMels-1)*stride+n {
		panic("mel: HeadInto outside its buffer or the frames")
	}
	// Frame t reads samples [t*HopLength - padLen, t*HopLength + padLen): from live on, only zeros.
	live := min(total, (len(samples)+padLen+HopLength-1)/HopLength)
	best := logMelInto(dst, stride, g, nMels, 0, n)
	if live > n { // frames past n that the samples reach: their maximum only
		rest := make([]float32, nMels*(live-n))
		best = max(best, logMelInto(rest, live-n, g, nMels, n, live))
	}
	if max(n, live) < total {
		best = max(best, float32(math.Log10(1e-10))) // a frame of zeros
	}
	floor := best - 8
	for i := range nMels {
		row := dst[i*stride : i*stride+n]
		for t, v := range row {
			row[t] = (max(v, floor) + 4) / 4
		}
	}
}
