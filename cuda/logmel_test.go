package cuda

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper/mel"
)

// TestLogMel: the device's log-mel windows (LogMel) are whisper/mel's HeadInto (float64 on the
// host) within f32 rounding, for full windows, short ones (frames written fewer than 3,000, the
// rest 0), a window of silence's frames written to the end (the rules' padding with the mel of
// silence), a few samples only (reflection at both ends), and 80 and 128 mel bins.
func TestLogMel(t *testing.T) {
	be := open(t, Options{})
	rng := rand.New(rand.NewPCG(8, 9))
	const stride = mel.ChunkSamples
	type win struct {
		n, size int // samples, frames written (-1: n/160)
	}
	wins := []win{{stride, -1}, {200_000, -1}, {4_800, -1}, {4_800, mel.ChunkFrames}, {16, -1}, {16, mel.ChunkFrames}, {479_990, -1}}
	for _, nMels := range []int{80, 128} {
		samples := make([]float32, len(wins)*stride)
		lens, sizes := make([]int, len(wins)), make([]int, len(wins))
		for i, w := range wins {
			amp := math.Pow(10, -3*rng.Float64()) // a window of its own loudness
			for j := range w.n {
				samples[i*stride+j] = float32(amp * (rng.NormFloat64()*0.3 + math.Sin(float64(j)*0.05*float64(i+1))))
			}
			lens[i], sizes[i] = w.n, w.size
			if w.size < 0 {
				sizes[i] = min(mel.ChunkFrames, w.n/mel.HopLength)
			}
		}
		filt := be.FromF32(mel.Filters(nMels), nMels, 201)
		dst := be.Alloc(tensor.F32, len(wins), nMels, mel.ChunkFrames)
		be.LogMel(dst, samples, stride, lens, sizes, mel.ChunkSamples, filt)
		got := be.ToF32(dst)
		be.Free(dst)
		be.Free(filt)
		per := nMels * mel.ChunkFrames
		for i, w := range wins {
			want := make([]float32, per)
			mel.HeadInto(want, mel.ChunkFrames, samples[i*stride:i*stride+w.n], mel.ChunkSamples, nMels, sizes[i])
			for b := range nMels { // HeadInto leaves the frames past sizes[i]: zero, as the driver's melInto does
				clear(want[b*mel.ChunkFrames+sizes[i] : (b+1)*mel.ChunkFrames])
			}
			worst, at := 0.0, 0
			for j, v := range want {
				if d := math.Abs(float64(got[i*per+j] - v)); d > worst || math.IsNaN(d) {
					worst, at = d, j
				}
			}
			if !(worst <= 2e-4) {
				t.Errorf("%d mel bins, window %d (%d samples, %d frames): largest difference %.3g at mel %d frame %d: %v, host %v",
					nMels, i, w.n, sizes[i], worst, at/mel.ChunkFrames, at%mel.ChunkFrames, got[i*per+at], want[at])
			}
			t.Logf("%d mel bins, window %d (%d samples, %d frames): largest difference %.3g", nMels, i, w.n, sizes[i], worst)
		}
	}
}
