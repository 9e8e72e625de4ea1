package mel_test

import (
	"fmt"
	"math"

	"github.com/verbatimhq/verbatim/whisper/mel"
)

func ExampleCompute() {
	// One second of a 1 kHz tone, padded to Whisper's 30 s window.
	tone := make([]float32, mel.ChunkSamples)
	for i := range mel.SampleRate {
		tone[i] = float32(0.5 * math.Sin(2*math.Pi*1000*float64(i)/mel.SampleRate))
	}
	feats, frames := mel.Compute(tone, 80)
	// The loudest mel bin in frame 50 is the filter centred nearest 1 kHz (15 Slaney mels).
	best := 0
	for m := range 80 {
		if feats[m*frames+50] > feats[best*frames+50] {
			best = m
		}
	}
	fmt.Println(frames == mel.ChunkFrames, best)
	// Output: true 26
}

func ExampleFilters() {
	fb := mel.Filters(80)
	fmt.Println(len(fb), len(fb)/(mel.NFFT/2+1))
	// Output: 16080 80
}
