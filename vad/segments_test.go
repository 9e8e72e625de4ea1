package vad

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// pattern makes probabilities from runs like "10. 20S": S = 0.9 (speech), m = 0.4 (between the
// default thresholds), . = 0.1 (silence); one frame is 32 ms.
func pattern(t *testing.T, s string) []float32 {
	t.Helper()
	var p []float32
	for _, run := range strings.Fields(s) {
		var n int
		var c byte
		if _, err := fmt.Sscanf(run, "%d%c", &n, &c); err != nil {
			t.Fatalf("pattern %q: %v", run, err)
		}
		v := map[byte]float32{'S': 0.9, 'm': 0.4, '.': 0.1}[c]
		for range n {
			p = append(p, v)
		}
	}
	return p
}

// seg builds a Segment from sample positions.
func seg(start, end int) Segment {
	return Segment{Start: float64(start) / SampleRate, End: float64(end) / SampleRate}
}

func TestSegmentsFromProbs(t *testing.T) {
	def := DefaultOptions()
	long := def
	long.MinSilenceDuration = 500 * time.Millisecond
	long.MaxSpeechDuration = 2 * time.Second
	hard := def
	hard.MaxSpeechDuration = time.Second
	noPad := def
	noPad.SpeechPad = 0
	cases := []struct {
		name  string
		probs string
		opts  Options
		want  []Segment
	}{
		{"empty", "", def, nil},
		{"silence", "100.", def, nil},
		// Speech frames 10..29 (5120..15360), padded by 480 samples.
		{"one burst", "10. 20S 20.", def, []Segment{seg(4640, 15840)}},
		{"zero options are the defaults", "10. 20S 20.", Options{}, []Segment{seg(4640, 15840)}},
		{"no pad", "10. 20S 20.", noPad, []Segment{seg(5120, 15360)}},
		{"too short", "10. 5S 20.", def, nil},
		// Frames between the thresholds do not end speech.
		{"hysteresis", "10. 10S 10m 10S 20.", def, []Segment{seg(4640, 20960)}},
		// A 160 ms gap ends the first segment, and the merge (< 200 ms) joins them again.
		{"merged gap", "10. 20S 5. 20S 20.", def, []Segment{seg(4640, 28640)}},
		{"two segments", "10. 20S 15. 20S 20.", def, []Segment{seg(4640, 15840), seg(22560, 33760)}},
		// Open at the end: closed at the end of the last frame, padding clipped there.
		{"speech to the end", "5. 20S", def, []Segment{seg(2080, 12800)}},
		{"speech from the start", "20S 10.", def, []Segment{seg(0, 10720)}},
		// Longer than 2 s: split at the 256 ms silence after frame 29.
		{"max speech split at silence", "30S 8. 38S 20.", long, []Segment{seg(0, 15840), seg(18976, 39392)}},
		// Longer than 1 s with no silence: cut at frame 29, restarted at 30, then merged back.
		{"max speech hard cut", "40S 10.", hard, []Segment{seg(0, 20960)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SegmentsFromProbs(pattern(t, tc.probs), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("segments (-want +got):\n%s", d)
			}
		})
	}
}

func TestSegmentsOptionsErrors(t *testing.T) {
	def := DefaultOptions()
	with := func(f func(*Options)) Options { o := def; f(&o); return o }
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"threshold 0", with(func(o *Options) { o.Threshold = 0 })},
		{"threshold 1", with(func(o *Options) { o.Threshold = 1 })},
		{"neg above threshold", with(func(o *Options) { o.NegThreshold = 0.7 })},
		{"negative pad", with(func(o *Options) { o.SpeechPad = -time.Millisecond })},
		{"negative min speech", with(func(o *Options) { o.MinSpeechDuration = -1 })},
		{"huge max speech", with(func(o *Options) { o.MaxSpeechDuration = 1000 * time.Hour })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := SegmentsFromProbs([]float32{0.9}, tc.opts); !errors.Is(err, ErrOptions) {
				t.Errorf("got %v, want ErrOptions", err)
			}
		})
	}
}
