package mel

import (
	"fmt"
	"math"
	"sync"
)

// Slaney mel scale constants (librosa, htk=False).
const (
	slaneyHzPerMel = 200.0 / 3
	slaneyLogHz    = 1000.0
	slaneyLogMel   = slaneyLogHz / slaneyHzPerMel
)

var slaneyLogStep = math.Log(6.4) / 27

func hzToMel(f float64) float64 {
	if f >= slaneyLogHz {
		return slaneyLogMel + math.Log(f/slaneyLogHz)/slaneyLogStep
	}
	return f / slaneyHzPerMel
}

func melToHz(m float64) float64 {
	if m >= slaneyLogMel {
		return slaneyLogHz * math.Exp(slaneyLogStep*(m-slaneyLogMel))
	}
	return m * slaneyHzPerMel
}

// bank is a cached filterbank: the dense float32 matrix and, per filter, its nonzero span.
type bank struct {
	dense  []float32
	w      []float64 // float64 copy of dense
	lo, hi []int     // filter i is nonzero only for bins lo[i] <= k < hi[i]
}

var banks sync.Map // nMels -> *bank

// getBank returns the cached bank for nMels, computing it on first use.
func getBank(nMels int) *bank {
	if b, ok := banks.Load(nMels); ok {
		return b.(*bank)
	}
	b, _ := banks.LoadOrStore(nMels, newBank(nMels))
	return b.(*bank)
}

func newBank(nMels int) *bank {
	if nMels <= 0 {
		panic(fmt.Sprintf("mel: invalid number of mel bins %d", nMels))
	}
	const nBins = NFFT/2 + 1
	// Centre frequencies: nMels+2 points evenly spaced on the mel scale from 0 Hz to Nyquist,
	// computed as numpy.linspace does.
	lo, hi := hzToMel(0), hzToMel(SampleRate/2)
	pts := make([]float64, nMels+2)
	step := (hi - lo) / float64(nMels+1)
	for i := range pts {
		pts[i] = melToHz(lo + float64(i)*step)
	}
	pts[nMels+1] = melToHz(hi)

	b := &bank{
		dense: make([]float32, nMels*nBins),
		w:     make([]float64, nMels*nBins),
		lo:    make([]int, nMels),
		hi:    make([]int, nMels),
	}
	for i := range nMels {
		left, centre, right := pts[i], pts[i+1], pts[i+2]
		norm := 2 / (right - left)
		b.lo[i], b.hi[i] = nBins, 0
		for k := range nBins {
			f := float64(k) * SampleRate / NFFT
			up := (f - left) / (centre - left)
			down := (right - f) / (right - centre)
			v := math.Max(0, math.Min(up, down)) * norm
			if v == 0 {
				continue
			}
			b.w[i*nBins+k] = v
			b.dense[i*nBins+k] = float32(v)
			b.lo[i] = min(b.lo[i], k)
			b.hi[i] = max(b.hi[i], k+1)
		}
		if b.lo[i] > b.hi[i] {
			b.lo[i] = b.hi[i]
		}
	}
	return b
}

// Filters returns the Slaney-style mel filterbank [nMels, NFFT/2+1] (nMels 80 or 128), equal to
// openai/whisper's assets/mel_filters.npz.
//
// It matches librosa.filters.mel(sr=16000, n_fft=400, n_mels=nMels, htk=False, norm="slaney"),
// computed in float64. The result is a fresh copy of a per-nMels cache; it panics if nMels <= 0.
func Filters(nMels int) []float32 {
	b := getBank(nMels)
	return append([]float32(nil), b.dense...)
}
