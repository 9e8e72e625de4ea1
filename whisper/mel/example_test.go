package mel_test

import (
	"fmt"
	"math"

	"github.com/verbatimhq/verbatim/whisper/mel"
)

func ExampleWindow() {
	// One second of a 1 kHz tone, padded to Whisper's 30 s window.
	tone := make([]float32, mel.SampleRate)
	for i := range tone {
		tone[i] = float32(0.5 * math.Sin(2*math.Pi*1000*float64(i)/mel.SampleRate))
	}
	feats := mel.Window(tone, 80)
	// The loudest mel bin in frame 50 is the filter centred nearest 1 kHz (15 Slaney mels).
	best := 0
	for m := range 80 {
		if feats[m*mel.ChunkFrames+50] > feats[best*mel.ChunkFrames+50] {
			best = m
		}
	}
	fmt.Println(len(feats) == 80*mel.ChunkFrames, best)
	// Output: true 26
}

func ExampleFilters() {
	fb := mel.Filters(80)
	fmt.Println(len(fb), len(fb)/(mel.NFFT/2+1))
	// Output: 16080 80
}
