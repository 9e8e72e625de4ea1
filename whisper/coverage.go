package whisper

import (
	"math"
	"slices"
	"sort"

	"github.com/verbatimhq/verbatim/whisper/mel"
)

// This file is the coverage ledger: after each window, the driver checks that every stretch of
// speech the window's audio went past is covered by a segment. Speech is what the speech regions
// say (VAD); without them, what the audio's energy says. A stretch left uncovered is retried
// (account), and what stays uncovered is reported as a Gap.

// Gap is a stretch of speech the transcript does not cover: every attempt at it returned no
// text there. Start and End are seconds of the input.
type Gap struct {
	Start, End float64
	// Reason is why its last attempt left it out: GapNoText, GapSilence or GapSkipped.
	Reason string
	// Speech says what found speech there: "vad" (the speech regions) or "energy" (the audio's
	// level, without speech regions).
	Speech string
	// Attempts is how many windows tried it.
	Attempts int
}

// The reasons of a Gap.
const (
	// GapNoText: the model ended the window's text at once (no text at all).
	GapNoText = "no_text"
	// GapSilence: the no-speech rule judged the window silence and skipped it.
	GapSilence = "judged_silence"
	// GapSkipped: the window's text left this speech out (it ended before it, or went on
	// past it), and the next window would have started after it.
	GapSkipped = "skipped"
)

const (
	// minUncovered is the least speech (seconds) an uncovered stretch must hold to be retried or
	// reported: the speech regions' edges and the segments' do not line up to the frame.
	minUncovered = 1.0
	// retryPreroll is how far before the uncovered speech a retry's window starts (seconds).
	retryPreroll = 0.2
	// shortWindow is the length of the shorter window of the second and third retries
	// (samples): a model that stops early on a full window often reads a short one.
	shortWindow = 10 * mel.SampleRate
	// progressMin is how much of a stretch (seconds) a retry must cover to count as progress:
	// what it still leaves out then starts a new cycle of retries, not the next retry of this one.
	progressMin = 3.0
)

// The retries of an uncovered stretch, in order: the window again without the previous text as
// prompt, re-anchored at the uncovered speech; then a shorter window; then the shorter window
// with the temperature fallback (when the options have one).
const (
	retryNoPrompt = 1 + iota
	retryShort
	retryTemperature
)

// retryState is the input's retry in progress: the uncovered speech it is for (seconds of the
// input), the stage of the next window (retryNoPrompt...; 0: none), and why the last attempt
// left it out. The first attempt's outcome is kept for when every retry does worse: where its
// stretch ended, its segments after the stretch and where its next window would have started.
type retryState struct {
	at     float64
	stage  int
	reason string
	end    float64
	held   []pending
	next   int
}

// verdict is what account decides for a window: its segment parts that end by cut are kept and
// the next window starts at v; held, when not nil, are an earlier attempt's parts to add after
// them (the retries did no better).
type verdict struct {
	cut  float64
	v    int
	held []pending
}

// gapReason is the reason a stretch a decoded window left out gets: the window was judged
// silence, or it had no segments at all, or its text skipped the stretch.
func gapReason(silent bool, segs int) string {
	switch {
	case silent:
		return GapSilence
	case segs == 0:
		return GapNoText
	}
	return GapSkipped
}

// windowLimit is the most samples of the input's next window: shorter during a retry.
func (in *input) windowLimit() int {
	if in.retry.stage >= retryShort {
		return shortWindow
	}
	return windowLen
}

// fallbackFrom is the index in the options' temperatures the next window starts at: past the
// first during the temperature retry.
func (in *input) fallbackFrom() int {
	if in.retry.stage >= retryTemperature {
		return 1
	}
	return 0
}

// lastStage is the last retry the options allow: the temperature retry needs a fallback.
func (in *input) lastStage() int {
	if len(in.opts.temperatures()) > 1 {
		return retryTemperature
	}
	return retryShort
}

// account checks a decoded window's coverage. w is the window, segs its segments, each one's
// parts in the input's time, next the virtual position where the next window would start, why
// the reason a stretch it leaves out gets (GapSilence, ...), prompted whether its decoding had a
// prompt, and retry whether it may be retried (Sequential windows; Independent ones are
// reported, not retried). The check is off without Options.Coverage and under whisper.cpp's
// rules (parity).
//
// Speech counts as covered by a segment only (not by what the guard removed: that speech is
// not in the transcript). With nothing uncovered, all the segments are kept and the next window
// starts at next. Else the first uncovered stretch starts a retry cycle: the segments before it
// are kept and the next window starts at it, up to three times (the stages). A retry that
// covers progressMin seconds of the stretch starts a new cycle at what it still leaves out.
// When a cycle's retries are spent, what the last one left out is reported as a gap. If the
// first attempt had read on after its stretch, the rest of the stretch is the gap and that
// reading is restored (the retries did no better); else the input goes on after the gap.
func (in *input) account(w *window, segs [][]pending, next int, why string, prompted, retry bool) verdict {
	all := verdict{cut: math.Inf(1), v: next}
	if !in.opts.Coverage || !in.rules.coverage {
		return all
	}
	lo := w.tm.seconds(0, false)
	hi := w.tm.seconds(next-w.v0, true)
	speech, source := in.speechIn(w, next, lo, hi)
	var mine, covered []Span
	for _, parts := range segs {
		for _, p := range parts {
			mine = append(mine, Span{p.seg.Start, p.seg.End})
		}
	}
	covered = append(covered, mine...)
	for i := len(in.res.Segments) - 1; i >= 0 && in.res.Segments[i].End > lo; i-- {
		s := in.res.Segments[i]
		covered = append(covered, Span{s.Start, s.End})
	}
	gaps := uncovered(speech, covered)
	if !retry {
		for _, u := range gaps {
			in.addGap(Gap{Start: u.Start, End: u.End, Reason: why, Speech: source, Attempts: 1})
		}
		return all
	}
	r := in.retry
	if len(gaps) == 0 {
		in.retry = retryState{}
		return all
	}
	u := gaps[0]
	// A new cycle: none in progress, this stretch lies past the cycle's, or this attempt covered
	// enough of the cycle's stretch.
	if r.stage == 0 || u.Start >= r.end || overlap(mine, r.at, u.Start) >= progressMin {
		r = retryState{at: u.Start, end: u.End, next: next}
		for _, parts := range segs {
			for _, p := range parts {
				if p.seg.Start >= u.End-0.02 {
					r.held = append(r.held, p)
				}
			}
		}
	}
	r.stage++
	virt := in.tl.virtualAt(int(math.Round(u.Start * mel.SampleRate)))
	start := max(w.v0, virt-int(retryPreroll*mel.SampleRate))
	if r.stage == retryNoPrompt && !prompted && start == w.v0 {
		r.stage = retryShort // the same window without a prompt is what was just decoded
	}
	if r.stage <= in.lastStage() {
		r.reason = why
		in.retry = r
		in.res.Retries++
		return verdict{cut: u.Start, v: start}
	}
	// The cycle's retries are spent. If the first attempt read on after the stretch, the rest
	// of the stretch is a gap and its reading after it is kept; else this attempt's stretch is a
	// gap and the input goes on after it (a new cycle for what follows).
	in.retry = retryState{}
	if len(r.held) > 0 {
		in.addGap(Gap{Start: u.Start, End: max(u.End, r.end), Reason: why, Speech: source, Attempts: r.stage})
		return verdict{cut: u.Start, v: max(r.next, w.v0+1), held: r.held}
	}
	in.addGap(Gap{Start: u.Start, End: u.End, Reason: why, Speech: source, Attempts: r.stage})
	end := in.tl.virtualAt(int(math.Round(u.End * mel.SampleRate)))
	return verdict{cut: u.Start, v: max(end, w.v0+1)}
}

// overlap is how much of [a, b) the spans cover (they may overlap each other; they are merged).
func overlap(spans []Span, a, b float64) float64 {
	var n float64
	for _, s := range mergeSpans(spans) {
		n += max(0, min(b, s.End)-max(a, s.Start))
	}
	return n
}

// addGap adds a gap to the result, joined to the one before when no segment lies between them
// and their reasons are the same.
func (in *input) addGap(g Gap) {
	if n := len(in.res.Gaps); n > 0 {
		p := &in.res.Gaps[n-1]
		between := false
		for i := len(in.res.Segments) - 1; i >= 0 && in.res.Segments[i].End > p.End; i-- {
			between = between || in.res.Segments[i].Start < g.Start
		}
		if p.Reason == g.Reason && p.Speech == g.Speech && !between {
			p.End, p.Attempts = max(p.End, g.End), p.Attempts+g.Attempts
			return
		}
	}
	in.res.Gaps = append(in.res.Gaps, g)
}

// speechIn is the speech in [lo, hi) (seconds of the input), the window's audio up to virtual
// position next: the speech regions' when there are some, else the energy's. It also says
// which.
func (in *input) speechIn(w *window, next int, lo, hi float64) ([]Span, string) {
	if in.opts.SpeechRegions != nil {
		var out []Span
		for _, s := range in.tl.speech {
			if a, b := max(s.Start, lo), min(s.End, hi); b > a {
				out = append(out, Span{a, b})
			}
		}
		return out, "vad"
	}
	n := min(len(w.samples), max(0, next-w.v0))
	var out []Span
	for _, s := range energySpans(w.samples[:n]) {
		out = append(out, Span{w.tm.seconds(s[0], false), w.tm.seconds(s[1], true)})
	}
	return out, "energy"
}

// uncovered returns the stretches of speech that covered leaves out and that hold at least
// minUncovered seconds of it, in order: uncovered pieces of speech with no covered time between
// them make one stretch, from the first's start to the last's end.
func uncovered(speech, covered []Span) []Span {
	covered = mergeSpans(covered)
	var out []Span
	var cur Span
	var amount float64
	open := false
	flush := func() {
		if open && amount >= minUncovered {
			out = append(out, cur)
		}
		open = false
	}
	for _, s := range mergeSpans(speech) {
		for _, piece := range subtract(s, covered) {
			if open && coveredBetween(covered, cur.End, piece.Start) {
				flush()
			}
			if !open {
				cur, amount, open = piece, 0, true
			}
			cur.End = piece.End
			amount += piece.End - piece.Start
		}
	}
	flush()
	return out
}

// coveredBetween reports whether any covered time lies in (a, b).
func coveredBetween(covered []Span, a, b float64) bool {
	for _, c := range covered {
		if c.End > a && c.Start < b {
			return true
		}
	}
	return false
}

// subtract returns the parts of s outside the spans of cs (sorted and merged).
func subtract(s Span, cs []Span) []Span {
	var out []Span
	at := s.Start
	for _, c := range cs {
		if c.End <= at || c.Start >= s.End {
			continue
		}
		if c.Start > at {
			out = append(out, Span{at, c.Start})
		}
		at = max(at, c.End)
	}
	if at < s.End {
		out = append(out, Span{at, s.End})
	}
	return out
}

// mergeSpans sorts spans and merges those that overlap or touch.
func mergeSpans(spans []Span) []Span {
	out := slices.Clone(spans)
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	var merged []Span
	for _, s := range out {
		if !(s.End > s.Start) {
			continue
		}
		if n := len(merged); n > 0 && s.Start <= merged[n-1].End {
			merged[n-1].End = max(merged[n-1].End, s.End)
			continue
		}
		merged = append(merged, s)
	}
	return merged
}

// The energy rule for audio without speech regions.
const (
	energyFrame = mel.SampleRate / 50 // 20 ms
	// energyFloor: a frame below this level (dBFS) is quiet whatever the rest.
	energyFloor = -50.0
	// energyAbove: a loud frame is this far (dB) above the window's quietest tenth, so that a
	// steady noise or hum is not taken for speech.
	energyAbove = 12.0
	// energyJoin joins loud stretches closer than this (frames: 0.3 s); energyMin drops those
	// shorter (0.3 s).
	energyJoin = 15
	energyMin  = 15
)

// energySpans sums a frame's squares four at a time.
var _ = [1]int{}[energyFrame%4]

// energySpans returns the stretches of x (sample indices [start, end)) whose level says there
// is sound there: 20 ms frames above energyFloor and energyAbove dB over the quietest tenth of
// the frames, joined across pauses under 0.3 s, kept when they last 0.3 s or more.
func energySpans(x []float32) [][2]int {
	n := len(x) / energyFrame
	if n == 0 {
		return nil
	}
	db := make([]float64, n)
	for i := range db {
		// Four sums, so that the adds do not wait for each other (a window's frames were half of
		// the settle phase's host time on a GPU); energyFrame is a multiple of 4.
		f := x[i*energyFrame : (i+1)*energyFrame]
		var e0, e1, e2, e3 float64
		for j := 0; j+3 < len(f); j += 4 {
			a, b, c, d := float64(f[j]), float64(f[j+1]), float64(f[j+2]), float64(f[j+3])
			e0 += a * a
			e1 += b * b
			e2 += c * c
			e3 += d * d
		}
		db[i] = 10 * math.Log10((e0+e1+e2+e3)/energyFrame+1e-12)
	}
	sorted := slices.Clone(db)
	slices.Sort(sorted)
	th := max(energyFloor, sorted[n/10]+energyAbove)
	var out [][2]int
	start, last := -1, -1
	emit := func() {
		if start >= 0 && last-start+1 >= energyMin {
			out = append(out, [2]int{start * energyFrame, (last + 1) * energyFrame})
		}
	}
	for i, d := range db {
		if d <= th {
			continue
		}
		if start >= 0 && i-last > energyJoin {
			emit()
			start = -1
		}
		if start < 0 {
			start = i
		}
		last = i
	}
	emit()
	return out
}

// virtualAt is the virtual position of input sample src: within its region, or the start of the
// next region when src lies between regions (the end of the timeline after the last).
func (tl *timeline) virtualAt(src int) int {
	for _, g := range tl.regions {
		if src < g.src {
			return g.virt
		}
		if src < g.end {
			return g.virt + src - g.src
		}
	}
	return tl.vlen()
}
