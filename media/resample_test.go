package media

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/verbatimhq/verbatim/audio"
)

// The block-wise resampler must give what one audio.Resample call over the whole signal gives,
// whatever sizes the input arrives in.
func TestChunkResamplerMatchesWhole(t *testing.T) {
	for _, from := range []int{8000, 11025, 16001, 22050, 44100, 48000, 96000} {
		t.Run(fmt.Sprint(from), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(from)))
			n := 17*from + 7 // two 8 s blocks and a ragged end
			in := make([]float32, n)
			for i := range in {
				in[i] = float32(0.5*math.Sin(float64(i)*0.01) + 0.2*rng.NormFloat64())
			}
			want := audio.Resample(&audio.PCM{Rate: from, Samples: in}, Rate).Samples

			c := newChunkResampler(from, Rate)
			var got []float32
			for rest := in; len(rest) > 0; {
				k := min(len(rest), 1+rng.IntN(20000))
				got = c.write(got, rest[:k])
				rest = rest[k:]
			}
			got = c.flush(got)
			got = c.flush(got) // idempotent
			if len(got) != len(want) {
				t.Fatalf("%d samples, want %d", len(got), len(want))
			}
			var worst float64
			for i := range got {
				worst = max(worst, math.Abs(float64(got[i]-want[i])))
			}
			if worst > 1e-6 {
				t.Errorf("max difference %.2g from the whole-signal resample", worst)
			}
			if held := len(c.buf); held > int(c.block+2*c.margin) {
				t.Errorf("holds %d input samples after the end", held)
			}
		})
	}
}

func TestChooseDownmix(t *testing.T) {
	const n = 16000
	sig := func(f, amp float64) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(amp * math.Sin(2*math.Pi*f*float64(i)/Rate))
		}
		return s
	}
	scale := func(s []float32, k float32) []float32 {
		out := make([]float32, len(s))
		for i, v := range s {
			out[i] = k * v
		}
		return out
	}
	tone := sig(440, 0.5)
	cases := []struct {
		name string
		l, r []float32
		want Downmix
	}{
		{"same in both", tone, tone, DownmixMix},
		{"different tones", tone, sig(660, 0.5), DownmixMix},
		{"right silent", tone, make([]float32, n), DownmixMix},
		{"left silent", make([]float32, n), tone, DownmixMix},
		{"inverted", tone, scale(tone, -1), DownmixLeft},
		{"inverted, right louder", scale(tone, -0.9), tone, DownmixRight},
		{"inverted, unequal", tone, scale(tone, -0.6), DownmixLeft},
		{"mostly inverted", tone, scale(tone, -0.3), DownmixMix}, // the mix keeps 12% of L's energy
		{"silence", make([]float32, n), make([]float32, n), DownmixMix},
		{"inverted hiss below -70 dBFS", scale(tone, 1e-4), scale(tone, -1e-4), DownmixMix},
		{"nothing", nil, nil, DownmixMix},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := chooseDownmix(c.l, c.r); got != c.want {
				t.Errorf("chooseDownmix = %v, want %v", got, c.want)
			}
		})
	}
}
