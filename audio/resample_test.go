package audio

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

var commonRates = []int{8000, 11025, 22050, 24000, 32000, 44100, 48000, 96000}

func tone(rate int, f, amp float64, n int) *PCM {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(amp * math.Sin(2*math.Pi*f*float64(i)/float64(rate)))
	}
	return &PCM{Rate: rate, Samples: s}
}

// fit returns the amplitude of the least-squares sinusoid at f over s, and the RMS of the rest.
func fit(s []float32, rate int, f float64) (amp, residual float64) {
	var ss, cc, sc, ys, yc float64
	for i, y := range s {
		w := 2 * math.Pi * f * float64(i) / float64(rate)
		sn, cs := math.Sincos(w)
		ss += sn * sn
		cc += cs * cs
		sc += sn * cs
		ys += float64(y) * sn
		yc += float64(y) * cs
	}
	det := ss*cc - sc*sc
	a := (ys*cc - yc*sc) / det
	b := (yc*ss - ys*sc) / det
	var r float64
	for i, y := range s {
		w := 2 * math.Pi * f * float64(i) / float64(rate)
		sn, cs := math.Sincos(w)
		d := float64(y) - a*sn - b*cs
		r += d * d
	}
	return math.Hypot(a, b), math.Sqrt(r / float64(len(s)))
}

func db(x float64) float64 { return 20 * math.Log10(x) }

// middle drops a margin at both ends, where the filter sees the signal start and stop.
func middle(s []float32, margin int) []float32 { return s[margin : len(s)-margin] }

func TestResampleTones(t *testing.T) {
	type dir struct{ from, to int }
	var dirs []dir
	for _, r := range commonRates {
		dirs = append(dirs, dir{r, 16000}, dir{16000, r})
	}
	for _, d := range dirs {
		t.Run(fmt.Sprintf("%d-%d", d.from, d.to), func(t *testing.T) {
			lower := float64(min(d.from, d.to))
			n := d.from / 2 // 0.5 s
			margin := d.to / 20
			// Passband: flat within 0.1 dB, images and aliases 60 dB down.
			worstGain, worstSpur := 0.0, math.Inf(-1)
			for _, f := range []float64{50, 440, 1000, 3000, 5000, 7000, 0.45 * lower} {
				if f > 0.45*lower {
					continue
				}
				out := Resample(tone(d.from, f, 0.5, n), d.to)
				if want := (n*d.to + d.from - 1) / d.from; len(out.Samples) != want || out.Rate != d.to {
					t.Fatalf("%d samples at %d Hz, want %d at %d", len(out.Samples), out.Rate, want, d.to)
				}
				amp, rest := fit(middle(out.Samples, margin), d.to, f)
				gain, spur := db(amp/0.5), db(rest/(0.5/math.Sqrt2))
				worstGain, worstSpur = max(worstGain, math.Abs(gain)), max(worstSpur, spur)
				if math.Abs(gain) > 0.1 {
					t.Errorf("%g Hz: gain %.4f dB, want within 0.1 dB", f, gain)
				}
				if spur > -60 {
					t.Errorf("%g Hz: everything but the tone at %.1f dB, want below -60 dB", f, spur)
				}
			}
			// Stopband (downsampling): tones that would alias into the band must vanish.
			worstAlias := math.Inf(-1)
			for _, f := range []float64{0.55 * lower, 9000, 12000, 20000, 0.49 * float64(d.from)} {
				if d.from <= d.to || f < 0.55*lower || f >= 0.5*float64(d.from) {
					continue
				}
				out := Resample(tone(d.from, f, 0.5, n), d.to)
				var e float64
				for _, s := range middle(out.Samples, margin) {
					e += float64(s) * float64(s)
				}
				alias := db(math.Sqrt(e/float64(len(out.Samples)-2*margin)) / (0.5 / math.Sqrt2))
				worstAlias = max(worstAlias, alias)
				if alias > -60 {
					t.Errorf("%g Hz: alias at %.1f dB, want below -60 dB", f, alias)
				}
			}
			t.Logf("max |gain| %.5f dB, max spur %.1f dB, max alias %.1f dB", worstGain, worstSpur, worstAlias)
		})
	}
}

// TestResampleSweep compares a resampled chirp with the same chirp synthesized at the new rate.
func TestResampleSweep(t *testing.T) {
	chirp := func(rate, n int, f0, f1 float64) []float32 {
		s := make([]float32, n)
		dur := float64(n) / float64(rate)
		for i := range s {
			x := float64(i) / float64(rate)
			s[i] = float32(0.5 * math.Sin(2*math.Pi*(f0*x+(f1-f0)*x*x/(2*dur))))
		}
		return s
	}
	for _, c := range []struct{ from, to int }{{48000, 16000}, {44100, 16000}, {16000, 44100}, {22050, 16000}} {
		t.Run(fmt.Sprintf("%d-%d", c.from, c.to), func(t *testing.T) {
			const sec = 2
			in := &PCM{Rate: c.from, Samples: chirp(c.from, sec*c.from, 20, 7000)}
			out := Resample(in, c.to)
			want := chirp(c.to, sec*c.to, 20, 7000)
			var worst float64
			at := 0
			for i := c.to / 50; i < sec*c.to-c.to/50; i++ {
				if d := math.Abs(float64(out.Samples[i] - want[i])); d > worst {
					worst, at = d, i
				}
			}
			if db(worst/0.5) > -60 {
				t.Errorf("max error %.1f dB at %.4f s", db(worst/0.5), float64(at)/float64(c.to))
			}
			t.Logf("max error %.1f dB re full scale of the sweep", db(worst/0.5))
		})
	}
}

func TestResampleSameRate(t *testing.T) {
	p := tone(16000, 440, 0.5, 100)
	q := Resample(p, 16000)
	q.Samples[0] = 9
	if p.Samples[0] == 9 || len(q.Samples) != 100 {
		t.Error("same-rate Resample must return an independent copy")
	}
}

func TestResampleOddRatio(t *testing.T) {
	// 44100 -> 16001 has 16001 phases: the kernel interpolates between tabulated phases.
	out := Resample(tone(44100, 1000, 0.5, 44100/2), 16001)
	amp, rest := fit(middle(out.Samples, 800), 16001, 1000)
	if math.Abs(db(amp/0.5)) > 0.1 || db(rest/(0.5/math.Sqrt2)) > -60 {
		t.Errorf("gain %.4f dB, residual %.1f dB", db(amp/0.5), db(rest/(0.5/math.Sqrt2)))
	}
}

func BenchmarkResample(b *testing.B) {
	for _, from := range []int{48000, 44100} {
		b.Run(fmt.Sprintf("%d-16000", from), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			p := &PCM{Rate: from, Samples: make([]float32, 30*from)}
			for i := range p.Samples {
				p.Samples[i] = float32(rng.NormFloat64() * 0.1)
			}
			b.SetBytes(int64(4 * len(p.Samples)))
			for b.Loop() {
				Resample(p, 16000)
			}
			b.ReportMetric(30/(b.Elapsed().Seconds()/float64(b.N)), "x-realtime")
		})
	}
}
