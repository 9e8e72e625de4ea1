package whisper

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verbatimhq/verbatim/whisper/mel"
	"github.com/verbatimhq/verbatim/whisper/tokenizer"
)

// input is one transcription in progress on the driver: its options and rules, its language,
// its audio (the speech timeline and its reader), where its next window starts, the prompt
// history, and its result so far. The driver's batcher steps it one window (Sequential) or a few
// windows (Independent) at a time.
type input struct {
	m     *Model
	tok   *tokenizer.Tokenizer
	tx    texts
	opts  *Options
	rules *rules
	// noMassRule and noTimestamps are what the rules make of this model (rules.massRule,
	// rules.timestampsOff).
	noMassRule, noTimestamps bool

	dev *sync.Mutex // the device's lock where lanes share it (TranscribeQueue), else nil
	// forced, while the input's step settles in parallel with others (batcher.settle), gathers
	// word timing's forced passes into batches; nil: each runs alone under dev.
	forced *forcedQueue

	lang      string      // the current window's language
	sot       []int       // its SOT sequence
	detect    bool        // the language is detected (Language auto on a multilingual model)
	perWindow bool        // ... for every window on its own (several allowed languages)
	allowed   []langToken // the languages detection may choose
	hotwords  []int       // prompt prefix of every window
	guard     *guard      // nil: off
	res       *Result

	tl    *timeline
	rd    *virtualReader
	total int // source samples if known, else -1

	v          int   // virtual position of the next window
	started    bool  // a window has been decoded (only the first gets the initial prompt)
	detected   bool  // the language detection the options ask for is done
	history    []int // Sequential: the prompt history ...
	resetSince int   // ... and where the prompt starts in it
	// prevV is the segment before the next window for word timing: where its speech and it
	// ended, in virtual seconds (prevSpeech in the input's virtual time).
	prevV   prevSpeech
	windows int // windows decoded (for checkpoints)
	// retry is the coverage retry in progress (coverage.go).
	retry retryState
	// detectPer holds the language probabilities of the first detection window while detection
	// waits for the others (the window left it unsure: detectFrom)
	detectPer []map[string]float64
	// ahead is what the batch's parallel reads (batcher.readAhead) read for the input's next
	// step before gather takes it; nil when nothing is read ahead.
	ahead *ahead
}

// ahead is an input's next step read ahead of gather: its detection windows (detect), or the
// window at v under length limit (none at the end of the input), or the error reading them.
type ahead struct {
	detect   bool
	v, limit int
	ws       []*window
	total    int // detect: the windows detection looks at in all (detectWindows)
	err      error
}

// readAhead reads what the input's next step reads first (detectWindows, or a Sequential
// input's next window) and keeps it for that read, which then costs nothing. Independent
// inputs read nothing ahead.
func (in *input) readAhead() {
	in.ahead = nil
	a := &ahead{detect: !in.detected, v: in.v, limit: in.windowLimit()}
	switch {
	case a.detect:
		a.ws, a.total, a.err = in.detectWindows()
	case in.opts.Windows == Sequential:
		w, err := in.readWindow(in.v)
		if w != nil {
			a.ws = []*window{w}
		}
		a.err = err
	default:
		return
	}
	in.ahead = a
}

// takeAhead returns, and forgets, what readAhead read when it is the read asked for: the
// detection windows (detect), or the window at v under the current length limit. Nil otherwise,
// and what was read ahead is dropped (the reader still holds its samples).
func (in *input) takeAhead(detect bool, v int) *ahead {
	a := in.ahead
	in.ahead = nil
	if a == nil || a.detect != detect || !detect && (a.v != v || a.limit != in.windowLimit()) {
		return nil
	}
	aheadTaken.Add(1)
	return a
}

// aheadTaken counts the reads that readAhead had made (tests).
var aheadTaken atomic.Int64

// newInput checks opts and sets up one input: the tokenizer, the rules, the language (unless it
// is to be detected), hotwords, the guard, and the speech timeline over src (total: its length
// in samples if known, else -1).
func newInput(m *Model, src AudioSource, total int, opts *Options) (*input, error) {
	if err := opts.check(); err != nil {
		return nil, fmt.Errorf("transcribe: %w", err)
	}
	tok, err := tokenizer.New(m.Config.NVocab)
	if err != nil {
		return nil, fmt.Errorf("transcribe: %w", err)
	}
	ru := rulesFor(opts.Compat)
	in := &input{
		m: m, tok: tok, opts: opts, rules: ru,
		tx: texts{
			ids: idsOf(tok), textOf: tok.Decode,
			tokenText: func(id int) string { return string(tok.TokenBytes(id)) },
		},
		noMassRule: !ru.massRule(m.Arch, m.Config), noTimestamps: ru.timestampsOff(m.Config),
		res: &Result{}, total: total,
	}
	if err := in.chooseLanguage(); err != nil {
		return nil, fmt.Errorf("transcribe: %w", err)
	}
	if h := strings.TrimSpace(opts.Hotwords); h != "" {
		in.hotwords = tok.Encode(" " + h)
	}
	if opts.Guard && ru.guard {
		in.guard = newGuard(opts, tok.Decode, &in.res.Removed)
	}
	in.tl = newTimeline(opts.SpeechRegions, opts.SpeechRegions != nil, total)
	in.rd = newVirtualReader(src, in.tl)
	in.detected = !in.detect
	in.history = in.initialPrompt()
	if opts.Resume != nil {
		if err := in.resume(opts.Resume); err != nil {
			return nil, fmt.Errorf("transcribe: %w", err)
		}
	}
	return in, nil
}

// initialPrompt is the prompt text's tokens as the reference encodes it (" " + stripped text).
func (in *input) initialPrompt() []int {
	p := strings.TrimSpace(in.opts.Prompt)
	if p == "" {
		return nil
	}
	return in.tok.Encode(" " + p)
}

// window is one window: virtual span [v0, v1), its audio and its map to the source, and remain,
// the mel frames from its start to the end of the input's audio as whisper.cpp counts them
// (capped a little over a window; rules that need it only).
type window struct {
	v0, v1  int
	samples []float32
	tm      timeMap
	remain  int
}

// frames is the number of mel frames of the window's audio.
func (w *window) frames() int { return len(w.samples) / mel.HopLength }

// cppFrames is whisper.cpp's frame count of n samples of audio.
func cppFrames(n int) int {
	if n <= mel.NFFT/2 {
		return 0
	}
	return 1 + (n-mel.NFFT/2)/mel.HopLength
}

// lookahead is how far past a full window the reader looks to count remain (samples).
const lookahead = 2 * mel.SampleRate

// readWindow reads the window starting at virtual position v (nil at the end of the input).
func (in *input) readWindow(v int) (*window, error) {
	if a := in.takeAhead(false, v); a != nil {
		if a.err != nil || len(a.ws) == 0 {
			return nil, a.err
		}
		return a.ws[0], nil
	}
	if v >= in.tl.vlen() {
		return nil, nil
	}
	v1 := in.tl.windowEnd(v, in.windowLimit(), in.opts.Windows == Independent)
	s, err := in.rd.read(v, v1)
	if err != nil {
		return nil, fmt.Errorf("transcribe: %w", err)
	}
	if len(s) == 0 {
		return nil, nil
	}
	w := &window{v0: v, v1: v + len(s), samples: s, tm: in.tl.pieces(v, v+len(s))}
	if in.rules.tracked || in.rules.tailFrames > 0 || in.rules.minFrames >= 0 {
		n := len(s)
		if w.v1 < in.tl.vlen() {
			more, err := in.rd.extent(w.v1, v+windowLen+lookahead)
			if err != nil {
				return nil, fmt.Errorf("transcribe: %w", err)
			}
			n += more
		}
		w.remain = cppFrames(n)
		if w.remain <= in.rules.minFrames {
			return nil, nil // whisper.cpp stops with 100 ms left
		}
	}
	return w, nil
}

// mels returns the windows' log-mel features, one [NMels, 3000] block each: the window's frames,
// then zeros or, under rules that say so, the frames of silence.
func (in *input) mels(ws []*window) []float32 {
	ins := make([]*input, len(ws))
	for i := range ins {
		ins[i] = in
	}
	return melsOf(ins, ws, nil)
}

// melsOf is mels for windows of several inputs (window i of ins[i]), computed together: each is
// a few tens of milliseconds of CPU, spread over the cores (within a window too); the batcher
// asks for a chunk of a batch at a time (batcher.encode). They are written into buf where it is
// large enough (every value is written), else into a new slice.
func melsOf(ins []*input, ws []*window, buf []float32) []float32 {
	if len(ws) == 0 {
		return nil
	}
	per := ins[0].m.Config.NMels * mel.ChunkFrames
	out := buf[:0]
	if cap(out) < len(ws)*per {
		out = make([]float32, len(ws)*per)
	}
	out = out[:len(ws)*per]
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Go(func() { ins[i].melInto(out[i*per:(i+1)*per], w.samples) })
	}
	wg.Wait()
	return out
}

// melInto writes the [NMels, 3000] log-mel window of samples (at most 30 s) into out: the
// reference's log-mel spectrogram of the samples padded with 30 s of zeros, its first frames,
// those past the samples zero unless the rules pad with the mel of silence.
func (in *input) melInto(out []float32, samples []float32) {
	nm := in.m.Config.NMels
	size := in.melFrames(len(samples))
	mel.HeadInto(out, mel.ChunkFrames, samples, mel.ChunkSamples, nm, size)
	for b := range nm {
		clear(out[b*mel.ChunkFrames+size : (b+1)*mel.ChunkFrames])
	}
}

// melFrames is how many of a window's 3,000 log-mel frames are the audio's, for a window of n
// samples: those the samples fill, or all of them under rules that pad with the mel of silence
// (the rest are zero).
func (in *input) melFrames(n int) int {
	if in.rules.melPadSilence {
		return mel.ChunkFrames
	}
	return min(mel.ChunkFrames, n/mel.HopLength)
}

// detectWindows reads the windows of the input's next detection step (detectPart) among those
// language detection looks at, the first three of the input's speech (or of the input, without
// speech regions), and tells how many detection looks at in all. None when there is no audio
// (then nothing is detected), or when the input ended before the step's windows.
func (in *input) detectWindows() (ws []*window, total int, err error) {
	if a := in.takeAhead(true, 0); a != nil {
		return a.ws, a.total, a.err
	}
	starts := in.detectStarts()
	n := len(starts)
	lo, hi := in.detectPart(n)
	ws, err = in.readDetect(starts[lo:hi])
	if err != nil {
		return nil, 0, err
	}
	if len(ws) < hi-lo { // the input ended sooner than its length said
		n = lo + len(ws)
	}
	return ws, n, nil
}

// detectStarts is where the detection windows start (virtual samples), as far as the input's
// length is known.
func (in *input) detectStarts() []int {
	var starts []int
	for v := 0; len(starts) < maxDetectWindows && v < in.tl.vlen(); v = in.tl.windowEnd(v, windowLen, in.opts.Windows == Independent) {
		starts = append(starts, v)
	}
	return starts
}

// readDetect reads the detection windows at starts (detectStarts' positions; fewer where the
// input ends before them). Reading only those a step decodes spares the copies of the windows a
// sure first window makes needless: in bench --e2e --decode default, 32 inputs' three windows
// each were most of the gather phase, while the device waited.
func (in *input) readDetect(starts []int) ([]*window, error) {
	if len(starts) > 0 {
		// Room for them all at once, not a copy of the buffer a window, and for what the input's
		// reads hold at most later (the window before the next, dropped after the read, and the
		// next with its lookahead), so that the buffer does not grow again.
		in.rd.reserve(min(in.tl.vlen(), max(starts[len(starts)-1]+windowLen, 2*windowLen)+lookahead))
	}
	var ws []*window
	for _, v := range starts {
		w, err := in.readWindow(v)
		if err != nil {
			return nil, err
		}
		if w != nil {
			ws = append(ws, w)
		}
	}
	return ws, nil
}

// next reads the windows of the input's next step, at most room of them; none at the end of the
// input. Independent windows: the following step starts after them; Sequential: one window, and
// its decoding says where the next starts.
func (in *input) next(room int) ([]*window, error) {
	n := 1
	if in.opts.Windows == Independent {
		n = max(1, room)
	}
	var ws []*window
	v := in.v
	for len(ws) < n {
		w, err := in.readWindow(v)
		if err != nil {
			return nil, err
		}
		if w == nil {
			break
		}
		ws = append(ws, w)
		v = w.v1
	}
	in.took(ws)
	return ws, nil
}

// took moves the input past the windows ws of its next step: the reader drops what comes before
// them, and Independent windows' next step starts after them.
func (in *input) took(ws []*window) {
	if len(ws) == 0 {
		return
	}
	in.rd.drop(ws[0].v0)
	if in.opts.Windows == Independent {
		in.v = ws[len(ws)-1].v1
	}
}

// finish reads the rest of the input and returns the result.
func (in *input) finish() (*Result, error) {
	n, err := in.rd.drain()
	if err != nil {
		return nil, fmt.Errorf("transcribe: %w", err)
	}
	in.res.Duration = float64(n) / mel.SampleRate
	in.res.Windows = in.windows
	return in.res, nil
}

// prompt is the prompt of a window's attempt at temperature temp: the hotwords, then as much
// of the end of history as fits the prompt's room (half the text context), so the hotwords are
// never cut; the history (the earlier windows' text, or the initial prompt) only where the rules
// give it at that temperature. used is the part of history in the prompt.
func (in *input) prompt(history []int, temp float64) (prompt, used []int) {
	if temp >= in.rules.promptBelow {
		history = nil
	}
	room := in.m.Config.NTextCtx/2 - in.rules.promptMargin
	hw := in.hotwords[max(0, len(in.hotwords)-room):]
	used = history[max(0, len(history)-max(0, room-len(hw))):]
	return append(slices.Clone(hw), used...), used
}

// task builds the decoding task of a window (frames of audio, remain as window.remain) at
// temperature temp, attempt k, with sot and prompt. Sampling draws from a generator of the
// input's seed, the window's position and the attempt, so that the result does not depend on
// how windows are batched.
func (in *input) task(w *window, sot, prompt []int, temp float64, k int) (*decodeTask, error) {
	c := in.m.Config
	spec := taskSpec{
		sot: sot, prompt: prompt, temperature: temp, audioFrames: w.frames(), remain: w.remain,
		noMassRule: in.noMassRule, noTimestamps: in.noTimestamps,
	}
	rng := newRNG(in.opts.Seed ^ windowSeed(w.v0, k))
	text := func(ids []int) string { return strings.TrimSpace(in.tx.textOf(ids)) }
	return newDecodeTask(in.tx.ids, c.NTextCtx, c.NAudioCtx, in.opts, in.rules, spec, rng, text)
}

// windowSeed mixes a window's position and an attempt number into a seed (a splitmix64 step).
func windowSeed(v0, attempt int) uint64 {
	x := uint64(v0)<<8 ^ uint64(attempt) + 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// add appends a segment to the result.
func (in *input) add(s Segment) {
	s.ID = len(in.res.Segments)
	if s.Language == "" {
		s.Language = in.lang
	}
	in.res.Segments = append(in.res.Segments, s)
}

// prevIn is the segment before window w for word timing, in w's own time.
func (in *input) prevIn(w *window) prevSpeech {
	at := float64(w.v0) / mel.SampleRate
	return prevSpeech{speech: in.prevV.speech - at, end: in.prevV.end - at}
}

// keepPrev records the last of a window's segments (window times) as the segment before the
// windows that follow.
func (in *input) keepPrev(w *window, segs []pending) {
	if len(segs) == 0 {
		return
	}
	ptrs := []*Segment{&segs[len(segs)-1].seg}
	speech, _ := lastSpeechEnd(ptrs)
	at := float64(w.v0) / mel.SampleRate
	in.prevV = prevSpeech{speech: at + speech, end: at + ptrs[0].End}
}

// guardWindow runs the guard on a window's segments (window times): speech cover and the
// removal report in the input's time.
func (in *input) guardWindow(segs []pending, tm timeMap) ([]pending, bool) {
	at := func(start, end float64) (float64, float64) {
		L := tm.length()
		x0 := max(0, min(L, int(math.Round(start*mel.SampleRate))))
		x1 := max(x0, min(L, int(math.Round(end*mel.SampleRate))))
		return tm.seconds(x0, false), tm.seconds(x1, x1 > x0)
	}
	speech := func(start, end float64) float64 { return in.tl.speechCover(at(start, end)) }
	return in.guard.window(segs, speech, at)
}

// toSource maps window segments to the input's timeline; a segment over several pieces is
// split between them (see timeMap.split).
func (in *input) toSource(segs []pending, tm timeMap) []pending {
	var out []pending
	for _, p := range segs {
		for _, q := range tm.split(p, in.tx.textOf) {
			in.tl.clip(&q.seg)
			out = append(out, q)
		}
	}
	return out
}

// progress reports the audio done up to the end of w.
func (in *input) progress(w *window) {
	if in.opts.Progress == nil {
		return
	}
	done := w.tm.seconds(len(w.samples), true)
	total := 0.0
	switch {
	case in.total >= 0:
		total = float64(in.total) / mel.SampleRate
	case in.tl.bounded():
		total = float64(in.tl.regions[len(in.tl.regions)-1].end) / mel.SampleRate
	}
	sec := func(s float64) time.Duration { return time.Duration(math.Round(s * float64(time.Second))) }
	in.opts.Progress(sec(done), sec(max(total, done)))
}

// newRNG returns the deterministic generator for a seed.
func newRNG(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
}
