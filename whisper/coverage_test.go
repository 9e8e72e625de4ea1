package whisper

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/verbatimhq/verbatim/whisper/mel"
)

func TestUncovered(t *testing.T) {
	speech := []Span{{0, 2}, {2.5, 5}, {6, 8}, {9, 9.5}}
	cases := []struct {
		name    string
		covered []Span
		want    []Span
	}{
		{"all covered", []Span{{0, 9.5}}, nil},
		{"none covered: one stretch over the pauses", nil, []Span{{0, 9.5}}},
		{"a covered part between splits it", []Span{{2.6, 4.9}}, []Span{{0, 2.6}, {4.9, 9.5}}},
		{"under a second left is not a stretch", []Span{{0, 1.5}, {2.5, 8}, {9.2, 9.5}}, nil},
		{"stretches of a second or more", []Span{{0, 2}, {2.5, 4.5}, {7, 8}}, []Span{{4.5, 7}}},
		{"pieces without covered time between join", []Span{{0, 2}, {2.5, 4.6}}, []Span{{4.6, 9.5}}},
	}
	for _, c := range cases {
		got := uncovered(speech, c.covered)
		same := len(got) == len(c.want)
		for i := range got {
			same = same && math.Abs(got[i].Start-c.want[i].Start) < 1e-9 && math.Abs(got[i].End-c.want[i].End) < 1e-9
		}
		if !same {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSubtractMerge(t *testing.T) {
	cs := mergeSpans([]Span{{3, 4}, {1, 2}, {1.5, 2.5}, {5, 5}})
	if want := []Span{{1, 2.5}, {3, 4}}; !slices.Equal(cs, want) {
		t.Fatalf("merge: %v, want %v", cs, want)
	}
	if got, want := subtract(Span{0, 5}, cs), []Span{{0, 1}, {2.5, 3}, {4, 5}}; !slices.Equal(got, want) {
		t.Errorf("subtract: %v, want %v", got, want)
	}
	if got := subtract(Span{1.2, 2}, cs); len(got) != 0 {
		t.Errorf("subtract inside: %v", got)
	}
}

// TestEnergySpans: a tone burst in silence and in steady noise is found; steady noise alone, or
// silence, is not sound.
func TestEnergySpans(t *testing.T) {
	const rate = 16000
	mk := func(noise float64, bursts ...[2]float64) []float32 {
		x := make([]float32, 10*rate)
		r := newRNG(1)
		for i := range x {
			x[i] = float32(noise * (r.Float64()*2 - 1))
		}
		for _, b := range bursts {
			for i := int(b[0] * rate); i < int(b[1]*rate); i++ {
				x[i] += float32(0.3 * math.Sin(2*math.Pi*220*float64(i)/rate))
			}
		}
		return x
	}
	near := func(got [][2]int, want [][2]float64) bool {
		if len(got) != len(want) {
			return false
		}
		for i := range got {
			if math.Abs(float64(got[i][0])/rate-want[i][0]) > 0.05 || math.Abs(float64(got[i][1])/rate-want[i][1]) > 0.05 {
				return false
			}
		}
		return true
	}
	bursts := [][2]float64{{1, 3}, {3.2, 4}, {6, 8.5}} // the first two join across 0.2 s
	want := [][2]float64{{1, 4}, {6, 8.5}}
	for _, noise := range []float64{0, 0.003, 0.03} {
		if got := energySpans(mk(noise, bursts...)); !near(got, want) {
			t.Errorf("noise %v: %v, want about %v", noise, got, want)
		}
		if got := energySpans(mk(noise)); len(got) != 0 {
			t.Errorf("noise %v alone: %v, want none", noise, got)
		}
	}
	if got := energySpans(mk(0, [2]float64{5, 5.2})); len(got) != 0 {
		t.Errorf("a 0.2 s click: %v, want none", got)
	}
}

// BenchmarkEnergySpans is the coverage check's level of one 30 s window.
func BenchmarkEnergySpans(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 30*mel.SampleRate)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * 0.1)
	}
	for b.Loop() {
		energySpans(x)
	}
}
