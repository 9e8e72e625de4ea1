package mini

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verbatimhq/verbatim/internal/testkit"
	"github.com/verbatimhq/verbatim/sidecar"
)

// Long-form recordings (issue 17): held-out sentences read back to back by one held-out voice,
// 0.1-1.0 s apart, 3-5 minutes each, transcribed through the pipeline with the CLI's defaults
// (VAD, word timestamps, beam search, the fallback, the coverage check).
//
// What the engine guarantees whatever the model, and is held here: no stretch of speech longer
// than 2 s is left out of the transcript without a gap reported over it. What depends on the
// model is held to a floor under the shipped mini's measured level: its word error rate, how far
// that rate and the speech covered move over the re-dithered copies (a copy the model fails on
// in places has gaps the others do not), and its segment boundaries.
//
// VERBATIM_MINI_LONGFORM selects the run: unset, the first recording (CI); "all", the three
// recordings and each re-dithered by sox five times and at +-1 dB, against the floors; "bar",
// the same against issue 17's bar for a mini trained on long-form (WER at most 12%, within 2
// points and 2 s of covered speech over the copies, boundaries within 0.5 s), which the shipped
// mini does not reach.

// longBar is what a long-form run is held to.
type longBar struct {
	maxWER, maxSpread, maxCoverDiff, minWithin float64
}

var (
	// The shipped mini's floor, measured 2026-12-05 with the coverage check: WER 37.3%, 58.4%
	// and 22.0% on the three readings (the first, CI's, held to firstMaxWER); over the
	// re-dithered copies up to 26.5 points apart and covered speech up to 8.1 s apart (a copy
	// with a reported gap); boundaries within 0.5 s 126/130, 96/96, 124/124. Its WER on
	// continuous speech swings with the least change of the audio: one wrong window changes the
	// prompt of those after it. Measured again after the CPU backend kept the quantized weights
	// quantized (int8 activations, other rounding; same day): WER 36.9%, 31.7% and 16.1% on the
	// readings, the mean over them and their copies 30.3% (36.8% before), but one copy (reading1,
	// dither 4) at 72.9% against 31.7%: 41 points apart, hence the spread's floor of 45.
	longFloor = longBar{maxWER: 0.65, maxSpread: 0.45, maxCoverDiff: 12, minWithin: 0.90}
	// Issue 17's bar.
	longIssueBar = longBar{maxWER: 0.12, maxSpread: 0.02, maxCoverDiff: 2, minWithin: 1}
)

// firstMaxWER is the floor's WER for the first reading, the one CI runs (measured 37.3%).
const firstMaxWER = 0.45

// longRecording is one continuous reading: its file, its sentences and their spans.
type longRecording struct {
	path  string
	voice string
	truth []truth
}

// longForm makes recording k (0, 1, 2) in dir: 70, 65 and 85 held-out sentences (after the
// first 600) with voice k, and writes it as 24-bit PCM (so that sox can re-dither it to 16).
func longForm(t *testing.T, dir string, k int) longRecording {
	t.Helper()
	counts := []int{70, 65, 85}
	skip := 600
	for i := range k {
		skip += counts[i]
	}
	sents := heldout(t, skip, counts[k])
	voice := baseVoices[(3*k+1)%len(baseVoices)] + "+" + heldoutVariants[(3*k+2)%len(heldoutVariants)]
	r := rand.New(rand.NewPCG(17, uint64(k)))
	const rate = 16000
	out := make([]float32, rate/2)
	var tr []truth
	for i, s := range sents {
		if i > 0 {
			out = append(out, make([]float32, int((0.1+0.9*r.Float64())*rate))...)
		}
		x := trim(speak(t, voice, s))
		start := float64(len(out)) / rate
		out = append(out, x...)
		tr = append(tr, truth{start, float64(len(out)) / rate, s})
	}
	out = append(out, make([]float32, rate/2)...)
	p := filepath.Join(dir, fmt.Sprintf("reading%d.wav", k))
	testkit.WriteWAVBits(t, p, out, rate, 24)
	return longRecording{path: p, voice: voice, truth: tr}
}

// longScore is what a transcript of a long recording scored.
type longScore struct {
	wer        float64
	covered    float64 // seconds of the sentences inside segments
	speech     float64 // seconds of the sentences
	unreported []truth // stretches over 2 s of a sentence neither in a segment nor in a gap
	gaps       int
	judged     int // segment boundaries near a pause (not cut inside a sentence) ...
	within     int // ... of which within 0.5 s of a sentence's start or end
	inside     int // segment boundaries cut inside a sentence
}

func scoreLong(rec longRecording, d *sidecar.Document) longScore {
	var sc longScore
	var ref, hyp strings.Builder
	for _, s := range rec.truth {
		ref.WriteString(s.text + " ")
	}
	var segs, gaps []Span
	for _, s := range d.Segments {
		hyp.WriteString(s.Text + " ")
		segs = append(segs, Span{s.Start, s.End})
	}
	for _, g := range d.Gaps {
		gaps = append(gaps, Span{g.Start, g.End})
	}
	sc.wer = werOf([]string{ref.String()}, []string{hyp.String()})
	sc.gaps = len(d.Gaps)
	for _, s := range rec.truth {
		sc.speech += s.end - s.start
		sc.covered += coveredBy(segs, s.start, s.end)
		for _, left := range leftOut(Span{s.start, s.end}, append(segs, gaps...)) {
			if left.End-left.Start > 2 {
				sc.unreported = append(sc.unreported, truth{left.Start, left.End, s.text})
			}
		}
	}
	// Boundaries: a segment's start (end) inside a sentence, over 0.5 s from its edges, is a
	// cut inside the sentence; any other is judged by its distance to the nearest sentence
	// start (end).
	for _, s := range d.Segments {
		for _, b := range []struct {
			at    float64
			start bool
		}{{s.Start, true}, {s.End, false}} {
			best, in := math.Inf(1), false
			for _, w := range rec.truth {
				edge := w.end
				if b.start {
					edge = w.start
				}
				best = min(best, math.Abs(b.at-edge))
				in = in || (b.at > w.start+0.5 && b.at < w.end-0.5)
			}
			switch {
			case in:
				sc.inside++
			case best <= 0.5:
				sc.judged++
				sc.within++
			default:
				sc.judged++
			}
		}
	}
	return sc
}

type Span struct{ Start, End float64 }

func coveredBy(spans []Span, a, b float64) float64 {
	var n float64
	for _, l := range leftOut(Span{a, b}, spans) {
		n += l.End - l.Start
	}
	return (b - a) - n
}

// leftOut returns the parts of s that no span covers.
func leftOut(s Span, spans []Span) []Span {
	out := []Span{s}
	for _, c := range spans {
		var next []Span
		for _, p := range out {
			if c.End <= p.Start || c.Start >= p.End {
				next = append(next, p)
				continue
			}
			if c.Start > p.Start {
				next = append(next, Span{p.Start, c.Start})
			}
			if c.End < p.End {
				next = append(next, Span{c.End, p.End})
			}
		}
		out = next
	}
	return out
}

func (sc longScore) String() string {
	return fmt.Sprintf("WER %.2f%%, %.1f of %.1f s of speech in segments, %d gaps, %d unreported stretches over 2 s, boundaries within 0.5 s: %d/%d (%d cut inside a sentence)",
		100*sc.wer, sc.covered, sc.speech, sc.gaps, len(sc.unreported), sc.within, sc.judged, sc.inside)
}

func TestLongForm(t *testing.T) {
	embedded(t)
	if testing.Short() {
		t.Skip("long-form test: transcribes minutes of speech on the CPU")
	}
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		t.Fatalf("%v (make test installs espeak-ng: scripts/deps.sh)", err)
	}
	mode := os.Getenv("VERBATIM_MINI_LONGFORM")
	if mode != "" && mode != "all" && mode != "bar" {
		t.Fatalf("VERBATIM_MINI_LONGFORM=%q: want all or bar", mode)
	}
	all, bar := mode != "", longFloor
	if mode == "bar" {
		bar = longIssueBar
	}
	n := 1
	if all {
		n = 3
	}
	path, err := Install(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := newRunner(t, path)
	dir := t.TempDir()
	defaults := runs[len(runs)-1]
	var recs []longRecording
	for k := range n {
		recs = append(recs, longForm(t, dir, k))
	}
	var inputs []string
	for _, rec := range recs {
		inputs = append(inputs, rec.path)
	}
	docs := transcribeAll(t, r, defaults, inputs)
	var scores []longScore
	for i, rec := range recs {
		sc := scoreLong(rec, docs[i])
		scores = append(scores, sc)
		dur := rec.truth[len(rec.truth)-1].end
		t.Logf("%s (%.0f s, %d sentences, %s): %v", filepath.Base(rec.path), dur, len(rec.truth), rec.voice, sc)
		for _, u := range sc.unreported {
			t.Errorf("%s: %.1f-%.1f s of %q neither transcribed nor reported as a gap", filepath.Base(rec.path), u.start, u.end, u.text)
		}
		maxWER := bar.maxWER
		if i == 0 && mode != "bar" {
			maxWER = firstMaxWER
		}
		if sc.wer > maxWER {
			t.Errorf("%s: WER %.2f%% > %.0f%%", filepath.Base(rec.path), 100*sc.wer, 100*maxWER)
		}
		if float64(sc.within) < bar.minWithin*float64(sc.judged) {
			t.Errorf("%s: %d of %d segment boundaries within 0.5 s, want %.0f%%", filepath.Base(rec.path), sc.within, sc.judged, 100*bar.minWithin)
		}
	}
	if !all {
		return
	}
	// Before: the same engine without the coverage check (what the issue measured).
	before := runOptions(defaults)
	before.Decode.Coverage = false
	for i, d := range transcribeWith(t, r, before, inputs) {
		t.Logf("%s without the coverage check: %v", filepath.Base(recs[i].path), scoreLong(recs[i], d))
	}
	// Robust, not lucky: the same readings re-dithered to 16 bits by sox, five times, and at +-1
	// dB.
	for i, rec := range recs {
		for _, v := range []struct{ name, gain string }{
			{"dither 1", "0"}, {"dither 2", "0"}, {"dither 3", "0"}, {"dither 4", "0"}, {"dither 5", "0"},
			{"+1 dB", "1"}, {"-1 dB", "-1"},
		} {
			p := filepath.Join(dir, fmt.Sprintf("v%d-%s.wav", i, strings.ReplaceAll(v.name, " ", "")))
			if out, err := exec.Command("sox", rec.path, "-b", "16", p, "gain", v.gain).CombinedOutput(); err != nil {
				t.Fatalf("sox: %v: %s", err, out)
			}
			d := transcribeAll(t, r, defaults, []string{p})[0]
			sc := scoreLong(rec, d)
			t.Logf("%s %s: %v", filepath.Base(rec.path), v.name, sc)
			if dw := math.Abs(sc.wer - scores[i].wer); dw > bar.maxSpread {
				t.Errorf("%s %s: WER %.2f%% against %.2f%%: more than %.0f points apart", filepath.Base(rec.path), v.name, 100*sc.wer, 100*scores[i].wer, 100*bar.maxSpread)
			}
			if dc := math.Abs(sc.covered - scores[i].covered); dc > bar.maxCoverDiff {
				t.Errorf("%s %s: %.1f s of speech covered against %.1f s: more than %.0f s apart", filepath.Base(rec.path), v.name, sc.covered, scores[i].covered, bar.maxCoverDiff)
			}
		}
	}
}
