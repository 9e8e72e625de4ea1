package whisper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper/mel"
)

// Span is a stretch of the input in seconds, [Start, End).
type Span struct{ Start, End float64 }

// AudioSource yields 16 kHz mono samples in order, as io.Reader does bytes.
type AudioSource interface {
	// Read fills p with the next samples and returns how many it wrote. At the end of the input
	// it returns io.EOF, possibly with n > 0. Read is called from one goroutine, never
	// concurrently; any other error ends the transcription with that error wrapped.
	Read(p []float32) (n int, err error)
}

// SampleSource returns an AudioSource reading samples in memory.
func SampleSource(samples []float32) AudioSource { return &sliceSource{s: samples} }

type sliceSource struct {
	s   []float32
	pos int
}

// Len is the number of samples.
func (s *sliceSource) Len() int { return len(s.s) }

func (s *sliceSource) Read(p []float32) (int, error) {
	n := copy(p, s.s[s.pos:])
	s.pos += n
	if s.pos == len(s.s) {
		return n, io.EOF
	}
	return n, nil
}

const (
	// regionPad is added to both sides of each speech region (samples, 0.1 s), so that the
	// decoder hears the onsets and ends the VAD cuts close.
	regionPad = mel.SampleRate / 10
	// windowLen is the most audio of one window (samples).
	windowLen = mel.ChunkSamples
	// unbounded is the end of a region without a known end (a stream without speech regions).
	unbounded = math.MaxInt64 / 4
	// readChunk is how many samples are read from an AudioSource at a time.
	readChunk = 1 << 16
)

// TranscribeStream transcribes 16 kHz mono audio read from src, holding at most a few windows of
// audio at a time, so memory does not grow with the input's length. With opts.SpeechRegions it
// transcribes those regions (see Options.SpeechRegions); without them it runs the seek loop over
// consecutive windows read from src, with the log-mel features computed per window (the
// normalization's maximum is the window's, not the whole input's as in [Transcribe]).
// Language detection reads ahead up to three windows. Progress's total is src's length if src
// has a method Len() int (samples), else the end of the last speech region, else 0. ctx is
// checked between windows. [TranscribeMany] transcribes several inputs with their windows
// batched together.
func TranscribeStream(ctx context.Context, m *Model, src AudioSource, opts Options) (res *Result, err error) {
	defer tensor.Catch(&err)
	if m == nil {
		return nil, errNoModel
	}
	return transcribeLong(ctx, m, src, sourceLen(src), &opts)
}

// sourceLen is src's length in samples if it tells it (a method Len() int), else -1.
func sourceLen(src AudioSource) int {
	if l, ok := src.(interface{ Len() int }); ok {
		return l.Len()
	}
	return -1
}

// transcribeLong is the windowed path for one input: speech regions merged into windows (or
// consecutive windows of the whole input), batched where the options allow. total is src's
// length in samples if known, else -1.
func transcribeLong(ctx context.Context, m *Model, src AudioSource, total int, opts *Options) (*Result, error) {
	lf, err := newLongform(ctx, m, src, total, opts)
	if err != nil {
		return nil, err
	}
	var res *Result
	b := &batcher{ctx: ctx, m: m, size: lf.bs}
	b.add(lf, func(r *Result, e error) { res, err = r, e })
	b.run()
	return res, err
}

// longform is one input of the windowed path: its runner, speech timeline and reader, and where
// its next window starts. A batcher drives it one step (a window, or up to bs windows) at a time,
// the step's windows encoded and decoded together with other inputs' windows.
type longform struct {
	r     *runner
	tl    *timeline
	rd    *virtualReader
	total int // source samples if known, else -1
	// bs is the most windows of one step. 1: one window at a time with the reference's seek,
	// conditioned on previous text; more: consecutive windows decoded whole and independently.
	bs int

	v          int   // virtual position of the next window
	started    bool  // a step has been read (only the first window gets the initial prompt)
	detected   bool  // the language detection the options ask for is done
	history    []int // one window at a time: the prompt history ...
	resetSince int   // ... and where the prompt starts in it
}

// newLongform sets up the windowed path for one input.
func newLongform(ctx context.Context, m *Model, src AudioSource, total int, opts *Options) (*longform, error) {
	r, err := prepareRunner(ctx, m, opts)
	if err != nil {
		return nil, err
	}
	tl := newTimeline(opts.SpeechRegions, opts.SpeechRegions != nil, total)
	lf := &longform{r: r, tl: tl, rd: newVirtualReader(src, tl), total: total, bs: opts.batchSize(m.Backend())}
	if s, ok := src.(*sliceSource); ok && s.pos == 0 {
		lf.rd.all = s.s
	}
	lf.detected = !r.detect
	if lf.bs <= 1 {
		lf.bs = 1
		lf.history = r.initialPrompt()
	}
	return lf, nil
}

// lfWindow is one window: virtual span [v0, v1), its audio and its map to the source.
type lfWindow struct {
	v0, v1  int
	samples []float32
	tm      timeMap
}

// frames is the number of mel frames of the window's audio.
func (w *lfWindow) frames() int { return len(w.samples) / mel.HopLength }

// batchSize is Options.BatchSize, or when 0, 8 on a backend whose ops batch efficiently and 1
// on the CPU (where one window at a time costs the same per window and keeps conditioning on
// previous text).
func (o *Options) batchSize(b tensor.Backend) int {
	switch {
	case o.BatchSize > 0:
		return o.BatchSize
	case b != nil && b.Capabilities().Batched && b.Name() != "cpu":
		return 8
	}
	return 1
}

// window reads the window starting at virtual position v (nil at the end of the input).
func (lf *longform) window(v int) (*lfWindow, error) {
	if v >= lf.tl.vlen() {
		return nil, nil
	}
	v1 := lf.tl.windowEnd(v, windowLen)
	s, err := lf.rd.read(v, v1)
	if err != nil {
		return nil, fmt.Errorf("transcribe: %w", err)
	}
	if len(s) == 0 {
		return nil, nil
	}
	v1 = v + len(s)
	return &lfWindow{v0: v, v1: v1, samples: s, tm: lf.tl.pieces(v, v1)}, nil
}

// mels returns the windows' log-mel features, one [NMels, 3000] block each.
func (lf *longform) mels(ws []*lfWindow) []float32 {
	nm := lf.r.m.Config.NMels
	out := make([]float32, 0, len(ws)*nm*mel.ChunkFrames)
	for _, w := range ws {
		f := newFeatures(w.samples, nm)
		out = append(out, f.window(0, min(mel.ChunkFrames, f.content))...)
	}
	return out
}

// detectWindows reads the windows language detection looks at: up to three, spread over the
// speech when the input is in memory, else the first ones. None when there is no audio (then
// nothing is detected).
func (lf *longform) detectWindows() ([]*lfWindow, error) {
	var starts []int
	if lf.rd.all != nil {
		starts = spreadStarts(lf.tl.vlen(), windowLen, maxDetectWindows)
	} else {
		for v := 0; len(starts) < maxDetectWindows && v < lf.tl.vlen(); v = lf.tl.windowEnd(v, windowLen) {
			starts = append(starts, v)
		}
	}
	var ws []*lfWindow
	for _, v := range starts {
		w, err := lf.window(v)
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
// input. Batched, the following step starts after them; one at a time, the decoding says where.
func (lf *longform) next(room int) ([]*lfWindow, error) {
	if err := lf.r.ctx.Err(); err != nil {
		return nil, fmt.Errorf("transcribe: %w", err)
	}
	var ws []*lfWindow
	v := lf.v
	for len(ws) < min(room, lf.bs) {
		w, err := lf.window(v)
		if err != nil {
			return nil, err
		}
		if w == nil {
			break
		}
		ws = append(ws, w)
		v = w.v1
	}
	if len(ws) > 0 {
		lf.rd.drop(ws[0].v0)
		if lf.bs > 1 {
			lf.v = v
		}
	}
	return ws, nil
}

// finish reads the rest of the input and returns the result.
func (lf *longform) finish() (*Result, error) {
	n, err := lf.rd.drain()
	if err != nil {
		return nil, fmt.Errorf("transcribe: %w", err)
	}
	lf.r.res.Duration = float64(n) / mel.SampleRate
	return lf.r.res, nil
}

// step is one input's windows in a batch: where they sit in the batch's encoder output, how each
// is decoded (language, SOT sequence, prompt) and what came out.
type step struct {
	lf     *longform
	ws     []*lfWindow
	at     int  // the encoder output's window of ws[0]; ws[i] is at+i
	detect bool // the windows are for language detection only

	langs   []string
	sots    [][]int
	prompts [][]int
	drs     []*decodeResult
	err     error
}

// wrap names the step's windows in err.
func (st *step) wrap(err error) error {
	switch {
	case st.detect:
		return fmt.Errorf("transcribe: %w", err) // err says "detect language"
	case st.lf.bs == 1:
		return fmt.Errorf("transcribe: window at %.2fs: %w", st.ws[0].tm.seconds(0, false), err)
	}
	return fmt.Errorf("transcribe: windows at %.2fs: %w", st.ws[0].tm.seconds(0, false), err)
}

// windows lists the step's windows of the encoder output.
func (st *step) windows() []int {
	out := make([]int, len(st.ws))
	for i := range out {
		out[i] = st.at + i
	}
	return out
}

// detectIn detects the language over the step's windows (detectWindows) of enc, averaging their
// probabilities over the allowed languages, and sets it as the result's language (the reference's
// detection over the first windows, [runner.detectOverall]).
func (lf *longform) detectIn(enc *Encoded, st *step) error {
	if err := lf.r.detectOverWindows(enc, st.windows()); err != nil {
		return err
	}
	lf.detected = true
	return nil
}

// plan sets the language, SOT sequence and prompt of each of the step's windows (encoded in
// enc): one at a time, the current language (or the window's own, detected) and the prompt
// history; batched, each window's language and the initial prompt for the input's first window.
func (lf *longform) plan(enc *Encoded, st *step) error {
	r, o := lf.r, lf.r.opts
	n := len(st.ws)
	st.langs, st.sots, st.prompts, st.drs = make([]string, n), make([][]int, n), make([][]int, n), make([]*decodeResult, n)
	if lf.bs == 1 {
		if r.perWindow {
			if err := r.detectWindow(enc, st.at); err != nil {
				return err
			}
		}
		st.langs[0], st.sots[0] = r.lang, r.sot
		st.prompts[0] = r.withHotwords(lf.history[lf.resetSince:])
		return nil
	}
	for i := range st.langs {
		st.langs[i] = r.lang
	}
	if r.perWindow {
		per, err := r.languageProbsAt(enc, st.windows())
		if err != nil {
			return err
		}
		for i, p := range per {
			st.langs[i] = bestLanguage(p, r.allowed)
		}
	}
	for i := range st.ws {
		sot, err := r.tok.SOTSequence(st.langs[i], o.Task)
		if err != nil {
			return err
		}
		var prompt []int
		if !lf.started && i == 0 {
			prompt = r.initialPrompt()
		}
		st.sots[i], st.prompts[i] = sot, r.withHotwords(prompt)
	}
	return nil
}

// greedyFirst reports whether the first pass over a window is greedy at temperature 0, so it
// can run in a batch with other windows (greedyBatch).
func (o *Options) greedyFirst() bool { return o.temperatures()[0] == 0 && o.BeamSize <= 1 }

// settle decodes the step's windows that have no first pass yet (see decodeGreedy), falls back
// per window, and adds the segments. The windows go in groups of the same SOT sequence and
// prompt, each group's first passes before its fallbacks, so that sampling draws from the
// input's generator in the same order however the windows were batched.
func (lf *longform) settle(enc *Encoded, st *step) error {
	r, o := lf.r, lf.r.opts
	var groups [][]int
	index := map[string]int{}
	for i := range st.ws {
		key := seqKey(st.sots[i]) + "|" + seqKey(st.prompts[i])
		k, ok := index[key]
		if !ok {
			k = len(groups)
			index[key] = k
			groups = append(groups, nil)
		}
		groups[k] = append(groups[k], i)
	}
	temps := o.temperatures()
	var err error
	for _, g := range groups {
		for _, i := range g {
			if st.drs[i] == nil {
				if st.drs[i], err = r.decodeAt(enc, st.at+i, st.ws[i].frames(), st.sots[i], st.prompts[i], temps[0]); err != nil {
					return err
				}
			}
		}
		for _, i := range g {
			for _, t := range temps[1:] {
				if !o.needsFallback(st.drs[i]) {
					break
				}
				if st.drs[i], err = r.decodeAt(enc, st.at+i, st.ws[i].frames(), st.sots[i], st.prompts[i], t); err != nil {
					return err
				}
			}
		}
	}
	lf.started = true
	if lf.bs == 1 {
		return lf.addWindow(enc, st)
	}
	return lf.addBatch(enc, st)
}

// addWindow adds the segments of a window decoded on its own and moves to the next window with
// the reference's seek: a window whose last segment ends before the window does is followed by
// one starting there. The prompt history resets after a temperature above 0.5 or repeated text.
func (lf *longform) addWindow(enc *Encoded, st *step) error {
	r, o := lf.r, lf.r.opts
	w, dr := st.ws[0], st.drs[0]
	size := w.frames()
	if dr.noSpeechProb > o.NoSpeechThreshold && !(dr.avgLogProb > o.LogProbThreshold) {
		lf.v = w.v1
		lf.progress(w)
		return nil
	}
	segs, advance := r.splitOpenAI(dr, 0, size)
	segs, repeated := lf.guard(segs, w.tm)
	segs, advance, err := lf.wordTimes(enc, st.at, dr, segs, size, advance)
	if err != nil {
		return err
	}
	for _, s := range lf.toSource(segs, w.tm) {
		r.add(s.seg)
		lf.history = append(lf.history, s.all...)
	}
	if advance <= 0 || advance >= size {
		lf.v = w.v1
	} else {
		lf.v = w.v0 + advance*mel.HopLength
	}
	if !o.ConditionOnPreviousText || dr.temperature > 0.5 || repeated {
		lf.resetSince = len(lf.history)
	}
	lf.progress(w)
	return nil
}

// addBatch adds the segments of a step's windows decoded whole, in order.
func (lf *longform) addBatch(enc *Encoded, st *step) error {
	r, o := lf.r, lf.r.opts
	for i, w := range st.ws {
		dr := st.drs[i]
		if dr.noSpeechProb > o.NoSpeechThreshold && !(dr.avgLogProb > o.LogProbThreshold) {
			lf.progress(w)
			continue
		}
		if st.langs[i] != r.lang {
			if err := r.setLanguage(st.langs[i]); err != nil {
				return err
			}
		}
		size := w.frames()
		segs, _ := lf.guard(r.splitWhole(dr, size), w.tm)
		segs, _, err := lf.wordTimes(enc, st.at+i, dr, segs, size, size)
		if err != nil {
			return err
		}
		for _, s := range lf.toSource(segs, w.tm) {
			r.add(s.seg)
		}
		lf.progress(w)
	}
	return nil
}

// guard runs the guard on a window's segments (window times): speech cover and the removal
// report in the input's time.
func (lf *longform) guard(segs []pending, tm timeMap) ([]pending, bool) {
	at := func(start, end float64) (float64, float64) {
		L := tm.length()
		x0 := max(0, min(L, int(math.Round(start*mel.SampleRate))))
		x1 := max(x0, min(L, int(math.Round(end*mel.SampleRate))))
		return tm.seconds(x0, false), tm.seconds(x1, x1 > x0)
	}
	speech := func(start, end float64) float64 { return lf.tl.speechCover(at(start, end)) }
	return lf.r.guard.window(segs, speech, at)
}

// wordTimes times the words of a window's segments (Options.WordTimestamps) in the window's own
// time, before they are mapped to the input: see addWordTimes. The segments before this window
// end at or before its start in its own time, so they are hidden from the word placement
// (which keeps words after the previous segment's end, in input time).
func (lf *longform) wordTimes(enc *Encoded, w int, dr *decodeResult, segs []pending, size, advance int) ([]pending, int, error) {
	r := lf.r
	if !r.opts.WordTimestamps || len(segs) == 0 {
		return segs, advance, nil
	}
	saved := r.res.Segments
	r.res.Segments = nil
	defer func() { r.res.Segments = saved }()
	return r.addWordTimes(enc, w, dr, segs, 0, size, advance)
}

// decodeAt runs one decoding task on window w of enc, whose audio is frames mel frames long.
func (r *runner) decodeAt(enc *Encoded, w, frames int, sot, prompt []int, temp float64) (*decodeResult, error) {
	cfg := r.m.Config
	spec := taskSpec{sot: sot, prompt: prompt, temperature: temp, audioFrames: frames, noMassRule: r.noMassRule}
	text := func(ids []int) string { return strings.TrimSpace(r.textOf(ids)) }
	task, err := newDecodeTask(r.ids, cfg.NTextCtx, cfg.NAudioCtx, r.opts, spec, r.rng, text)
	if err != nil {
		return nil, err
	}
	windows := make([]int, task.nGroup)
	for i := range windows {
		windows[i] = w
	}
	s, err := r.m.NewSession(enc, windows)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	defer s.Close()
	return task.run(s)
}

// greedyTask is the greedy decoding task at temperature 0 of a window of frames mel frames of
// audio with sot and prompt.
func (r *runner) greedyTask(frames int, sot, prompt []int) (*decodeTask, error) {
	cfg := r.m.Config
	o := *r.opts
	o.BeamSize, o.BestOf = 1, 1
	spec := taskSpec{sot: sot, prompt: prompt, audioFrames: frames, noMassRule: r.noMassRule}
	text := func(ids []int) string { return strings.TrimSpace(r.textOf(ids)) }
	return newDecodeTask(r.ids, cfg.NTextCtx, cfg.NAudioCtx, &o, spec, r.rng, text)
}

// greedyWindows decodes full windows of enc greedily at temperature 0 as one batch, one
// sequence per window, all with the same SOT sequence and prompt.
func (r *runner) greedyWindows(enc *Encoded, windows []int, sot, prompt []int) ([]*decodeResult, error) {
	task, err := r.greedyTask(0, sot, prompt)
	if err != nil {
		return nil, err
	}
	s, err := r.m.NewSession(enc, windows)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	defer s.Close()
	tasks := make([]*decodeTask, len(windows))
	for i := range tasks {
		tasks[i] = task
	}
	return greedyBatch(s, tasks)
}

// rowKeeper is a stepper that can drop sequences from its batch (*Session).
type rowKeeper interface {
	// keepRows keeps the sequences at rows (increasing), in that order, and drops the others.
	keepRows(rows []int) error
}

// greedyBatch decodes the sequences of s greedily at temperature 0, sequence i as tasks[i] (its
// prompt, SOT sequence and logit filters; nGroup is ignored): the same tokens as each task's run
// on its sequence alone. The tasks may belong to different inputs, but their initial tokens must
// be equally long with the no-speech position at the same index, and their length limits equal
// (one model, the reference's rules). A sequence that ends leaves the batch when s can drop rows
// (a quarter of the batch at a time).
func greedyBatch(s stepper, tasks []*decodeTask) ([]*decodeResult, error) {
	n := len(tasks)
	if n == 0 {
		return nil, nil
	}
	t := tasks[0]
	for _, u := range tasks[1:] {
		if len(u.initial) != len(t.initial) || u.noSpeechIndex != t.noSpeechIndex || u.sampleLen != t.sampleLen || u.nTextCtx != t.nTextCtx {
			return nil, errors.New("decode: greedy batch of tasks with different prompt lengths")
		}
	}
	V := t.ids.nVocab
	k := t.noSpeechIndex
	rowsOf := func(from, to int) [][]int32 {
		out := make([][]int32, n)
		for i, u := range tasks {
			row := make([]int32, to-from)
			for j, id := range u.initial[from:to] {
				row[j] = int32(id)
			}
			out[i] = row
		}
		return out
	}
	first := len(t.initial)
	if k < len(t.initial)-1 {
		first = k + 1
	}
	logits, err := s.Step(rowsOf(0, first), false)
	if err != nil {
		return nil, fmt.Errorf("decode prompt: %w", err)
	}
	if len(logits) != n*V {
		return nil, fmt.Errorf("decode prompt: %d logits, want %d", len(logits), n*V)
	}
	noSpeech := make([]float64, n)
	for i := range noSpeech {
		noSpeech[i] = tokenProb(logits[i*V:(i+1)*V], t.ids.noSpeech)
	}
	if first < len(t.initial) {
		if logits, err = s.Step(rowsOf(first, len(t.initial)), false); err != nil {
			return nil, fmt.Errorf("decode prompt: %w", err)
		}
	}
	cands := make([]*candidate, n)
	rows := make([]int, n) // the sequence at each row of s
	for i := range cands {
		cands[i], rows[i] = &candidate{}, i
	}
	keeper, canKeep := s.(rowKeeper)
	// After the first token, the picks can be made where the logits are (pickStepper): the
	// filters' masks go to the device as data and only the picks come back.
	ps, canPick := s.(pickStepper)
	for _, u := range tasks {
		canPick = canPick && u.temperature == 0
	}
	var pm pickMasks
	var prows []tensor.PickRow
	var picks []tensor.Pick
	usePicks := false // picks, not logits, hold this step's choices
	eot := []int32{int32(t.ids.eot)}
	for i := 0; i < t.sampleLen; i++ {
		next := make([][]int32, len(rows))
		done := 0
		for j, q := range rows {
			c := cands[q]
			if c.done {
				next[j] = eot
				done++
				continue
			}
			var tok, tid int
			var lp float64
			if usePicks {
				p := picks[j]
				tok, tid, lp = int(p.Token), int(p.TS), p.LogProb
				if tok < 0 { // nothing allowed: as below
					tok, lp = t.ids.eot, math.NaN()
				}
			} else {
				row := logits[j*V : (j+1)*V]
				var lse float64
				lse, tid = tasks[q].filter(row, c.tokens)
				tok = argmax(row)
				if tok < 0 {
					tok = t.ids.eot
				}
				lp = float64(row[tok]) - lse
			}
			c.push(tok, lp, tid)
			c.sum += lp
			if tok == t.ids.eot {
				c.done = true
				done++
			}
			next[j] = []int32{int32(tok)}
		}
		if done == len(rows) || len(t.initial)+i+1 > t.nTextCtx || i+1 == t.sampleLen {
			break
		}
		if canKeep && done > 0 && done >= len(rows)/4 {
			var keep, live []int
			var liveNext [][]int32
			for j, q := range rows {
				if !cands[q].done {
					keep, live, liveNext = append(keep, j), append(live, q), append(liveNext, next[j])
				}
			}
			if err := keeper.keepRows(keep); err != nil {
				return nil, fmt.Errorf("decode step %d: %w", i, err)
			}
			rows, next = live, liveNext
		}
		if canPick {
			prows, picks = prows[:0], slices.Grow(picks[:0], len(rows))[:len(rows)]
			for _, q := range rows {
				if cands[q].done {
					prows = append(prows, tensor.PickRow{Mask: -1, TSBegin: int32(t.ids.tsBegin)})
				} else {
					prows = append(prows, pm.row(tasks[q], cands[q].tokens))
				}
			}
			if err := ps.StepPick(next, pm.bitmaps, prows, picks); err != nil {
				return nil, fmt.Errorf("decode step %d: %w", i, err)
			}
			usePicks = true
			continue
		}
		if logits, err = s.Step(next, false); err != nil {
			return nil, fmt.Errorf("decode step %d: %w", i, err)
		}
	}
	out := make([]*decodeResult, n)
	for q, c := range cands {
		u := tasks[q]
		res := u.finish([]*candidate{c})
		res.noSpeechProb = noSpeech[q]
		res.text = u.text(res.tokens)
		res.compressionRatio = compressionRatio(res.text)
		out[q] = res
	}
	return out, nil
}

var _ rowKeeper = (*Session)(nil)

// keepRows shrinks the session to the sequences at rows (increasing), moving their caches into
// caches of the smaller batch.
func (s *Session) keepRows(rows []int) (err error) {
	defer tensor.Catch(&err)
	if err := s.usable(); err != nil {
		return err
	}
	if len(rows) == 0 {
		return errors.New("keep rows: no sequences")
	}
	for i, j := range rows {
		if j < 0 || j >= s.batch || (i > 0 && j <= rows[i-1]) {
			return fmt.Errorf("keep rows: bad rows %v of %d", rows, s.batch)
		}
	}
	if len(rows) == s.batch {
		return nil
	}
	m, b := s.m, s.m.b
	c := m.Config
	kv := newKVCaches(b, len(rows), c.NTextLayer, c.NTextCtx, c.NTextState)
	if s.n > 0 {
		ctx, d := c.NTextCtx, c.NTextState
		view := func(t *tensor.Tensor, i int) *tensor.Tensor {
			return &tensor.Tensor{DType: t.DType, Shape: []int{s.n, d}, Buf: t.Buf, Offset: t.Offset + i*ctx*d}
		}
		for l := range s.kv.k {
			for i, j := range rows {
				b.Copy(view(kv.k[l], i), view(s.kv.k[l], j))
				b.Copy(view(kv.v[l], i), view(s.kv.v[l], j))
			}
		}
	}
	s.kv.free(b)
	s.kv = kv
	w := make([]int, len(rows))
	for i, j := range rows {
		w[i] = s.window[j]
	}
	s.window, s.batch = w, len(rows)
	s.setRuns()
	return nil
}

// splitWhole cuts a window's tokens into segments as splitOpenAI does, and keeps the text after
// the last timestamp pair too (a window decoded whole is not sought into again), ending at the
// last timestamp after it or at the window's end.
func (r *runner) splitWhole(dr *decodeResult, size int) []pending {
	segs, advance := r.splitOpenAI(dr, 0, size)
	if advance >= size {
		return segs
	}
	toks := dr.tokens
	begin := r.ids.tsBegin
	last := 0
	for i := 0; i+1 < len(toks); i++ {
		if toks[i] >= begin && toks[i+1] >= begin {
			last = i + 1
		}
	}
	start := float64(advance) / framesPerSecond
	end := float64(size) / framesPerSecond
	if i := lastIndexFunc(toks[last:], func(t int) bool { return t >= begin }); i > 0 {
		end = min(end, max(start, float64(toks[last+i]-begin)*timePrecision))
	}
	if p, ok := r.segment(dr, last, len(toks), start, end); ok {
		segs = append(segs, p)
	}
	return segs
}

// withHotwords returns the prompt for a window: the hotwords, then as much of the end of
// history as fits the prompt's room (half the text context), so the hotwords are never cut.
func (r *runner) withHotwords(history []int) []int {
	if len(r.hotwords) == 0 {
		return history
	}
	room := r.m.Config.NTextCtx/2 - 1
	hw := r.hotwords[max(0, len(r.hotwords)-room):]
	keep := max(0, room-len(hw))
	return append(slices.Clone(hw), history[max(0, len(history)-keep):]...)
}

func (lf *longform) progress(w *lfWindow) {
	if lf.r.opts.Progress == nil {
		return
	}
	done := w.tm.seconds(len(w.samples), true)
	total := 0.0
	switch {
	case lf.total >= 0:
		total = float64(lf.total) / mel.SampleRate
	case lf.tl.bounded():
		total = float64(lf.tl.regions[len(lf.tl.regions)-1].end) / mel.SampleRate
	}
	sec := func(s float64) time.Duration { return time.Duration(math.Round(s * float64(time.Second))) }
	lf.r.opts.Progress(sec(done), sec(max(total, done)))
}

// toSource maps window segments to the input's timeline; a segment over several pieces is
// split between them (see timeMap.split).
func (lf *longform) toSource(segs []pending, tm timeMap) []pending {
	var out []pending
	for _, p := range segs {
		for _, q := range tm.split(p, lf.r.textOf) {
			lf.tl.clip(&q.seg)
			out = append(out, q)
		}
	}
	return out
}

// clip trims a segment (input times) to the speech regions as given, without the padding that
// windows carry for context: a cue then starts when the speech it overlaps starts and ends when
// that speech ends. Words and token times are clamped into the trimmed span. A segment that
// touches no region is left as it is.
func (tl *timeline) clip(s *Segment) {
	lo, hi, found := 0.0, 0.0, false
	for _, r := range tl.speech {
		if r.End < s.Start || r.Start > s.End {
			continue
		}
		if !found {
			lo, hi, found = r.Start, r.End, true
			continue
		}
		lo, hi = min(lo, r.Start), max(hi, r.End)
	}
	if !found {
		return
	}
	s.Start, s.End = max(s.Start, lo), min(s.End, hi)
	if s.End < s.Start {
		s.End = s.Start
	}
	clamp := func(x float64) float64 { return min(max(x, s.Start), s.End) }
	for i := range s.Words {
		s.Words[i].Start, s.Words[i].End = clamp(s.Words[i].Start), clamp(s.Words[i].End)
	}
	for i := range s.Tokens {
		if s.Tokens[i].Start != 0 || s.Tokens[i].End != 0 {
			s.Tokens[i].Start, s.Tokens[i].End = clamp(s.Tokens[i].Start), clamp(s.Tokens[i].End)
		}
	}
}

// region is a stretch [src, end) of the input's samples that is transcribed, at position virt
// of the virtual timeline (the regions one after another).
type region struct{ src, end, virt int }

func (g region) len() int { return g.end - g.src }

// timeline is the padded, merged speech regions and the virtual timeline they make.
type timeline struct {
	regions []region
	speech  []Span // the regions as given, sorted and merged, for speechCover
}

// newTimeline prepares spans (seconds): each padded by regionPad and clipped to [0, total) when
// total >= 0, sorted and merged where they touch. Without spans (has false) the whole input is
// one region.
func newTimeline(spans []Span, has bool, total int) *timeline {
	tl := &timeline{}
	end := unbounded
	if total >= 0 {
		end = total
	}
	if !has {
		if end > 0 {
			tl.regions = []region{{0, end, 0}}
		}
		return tl
	}
	var rs []region
	for _, s := range spans {
		if !(s.End > s.Start) || math.IsNaN(s.Start) || math.IsInf(s.End, 0) || math.IsInf(s.Start, 0) {
			continue
		}
		a := int(math.Floor(s.Start*mel.SampleRate)) - regionPad
		b := int(math.Ceil(s.End*mel.SampleRate)) + regionPad
		a, b = max(a, 0), min(b, end)
		if b > a {
			rs = append(rs, region{src: a, end: b})
		}
		tl.speech = append(tl.speech, s)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].src < rs[j].src })
	for _, g := range rs {
		if n := len(tl.regions); n > 0 && g.src <= tl.regions[n-1].end {
			tl.regions[n-1].end = max(tl.regions[n-1].end, g.end)
			continue
		}
		tl.regions = append(tl.regions, g)
	}
	v := 0
	for i := range tl.regions {
		tl.regions[i].virt = v
		v += tl.regions[i].len()
	}
	sort.Slice(tl.speech, func(i, j int) bool { return tl.speech[i].Start < tl.speech[j].Start })
	var merged []Span
	for _, s := range tl.speech {
		if n := len(merged); n > 0 && s.Start <= merged[n-1].End {
			merged[n-1].End = max(merged[n-1].End, s.End)
			continue
		}
		merged = append(merged, s)
	}
	tl.speech = merged
	return tl
}

func (tl *timeline) bounded() bool {
	return len(tl.regions) > 0 && tl.regions[len(tl.regions)-1].end < unbounded
}

// vlen is the length of the virtual timeline (samples).
func (tl *timeline) vlen() int {
	if len(tl.regions) == 0 {
		return 0
	}
	g := tl.regions[len(tl.regions)-1]
	return g.virt + g.len()
}

// setEnd clips the regions to an input of total samples.
func (tl *timeline) setEnd(total int) {
	for len(tl.regions) > 0 && tl.regions[len(tl.regions)-1].src >= total {
		tl.regions = tl.regions[:len(tl.regions)-1]
	}
	if n := len(tl.regions); n > 0 {
		tl.regions[n-1].end = min(tl.regions[n-1].end, total)
	}
}

// find returns the index of the region holding virtual position v (the last one for v >= vlen).
func (tl *timeline) find(v int) int {
	return max(0, sort.Search(len(tl.regions), func(i int) bool { return tl.regions[i].virt > v })-1)
}

// windowEnd is the end of the window that starts at virtual position v: the rest of v's region
// and the following whole regions while they fit in maxLen samples; a rest longer than maxLen is
// cut into equal parts of at most maxLen and the window is the first.
func (tl *timeline) windowEnd(v, maxLen int) int {
	k := tl.find(v)
	g := tl.regions[k]
	rest := g.virt + g.len() - v
	if rest > maxLen {
		if g.end >= unbounded {
			return v + maxLen
		}
		parts := (rest + maxLen - 1) / maxLen
		return v + (rest+parts-1)/parts
	}
	v1 := v + rest
	for k+1 < len(tl.regions) && v1+tl.regions[k+1].len()-v <= maxLen {
		k++
		v1 += tl.regions[k].len()
	}
	return v1
}

// pieces is the map of the virtual span [v0, v1) onto the input.
func (tl *timeline) pieces(v0, v1 int) timeMap {
	var tm timeMap
	for k := tl.find(v0); k < len(tl.regions) && tl.regions[k].virt < v1; k++ {
		g := tl.regions[k]
		a, b := max(v0, g.virt), min(v1, g.virt+g.len())
		if b <= a {
			continue
		}
		p := piece{at: a - v0, src: g.src + a - g.virt, n: b - a}
		if n := len(tm); n > 0 && tm[n-1].src+tm[n-1].n == p.src {
			tm[n-1].n += p.n // contiguous in the input
			continue
		}
		tm = append(tm, p)
	}
	return tm
}

// speechCover is the fraction of [start, end] (seconds) inside the given speech regions; for an
// empty span, 1 if it lies in one, else 0.
func (tl *timeline) speechCover(start, end float64) float64 {
	if end <= start {
		for _, s := range tl.speech {
			if start >= s.Start && start <= s.End {
				return 1
			}
		}
		return 0
	}
	var in float64
	for _, s := range tl.speech {
		in += max(0, min(end, s.End)-max(start, s.Start))
	}
	return in / (end - start)
}

// piece places input samples [src, src+n) at window samples [at, at+n).
type piece struct{ at, src, n int }

// timeMap is the piecewise map from a window's time to the input's: the window's audio is its
// pieces one after another, increasing in the input, with gaps between them in the input.
type timeMap []piece

// length is the window's length in samples.
func (tm timeMap) length() int {
	if len(tm) == 0 {
		return 0
	}
	return tm[len(tm)-1].at + tm[len(tm)-1].n
}

// source maps window sample x (clamped to [0, length]) to the input. Where x is the boundary of
// two pieces, end selects the end of the piece before (a segment's end) and !end the start of
// the piece after (a segment's start).
func (tm timeMap) source(x int, end bool) int {
	if len(tm) == 0 {
		return 0
	}
	x = max(0, min(x, tm.length()))
	var k int
	if end {
		k = min(len(tm)-1, sort.Search(len(tm), func(i int) bool { return tm[i].at+tm[i].n >= x }))
	} else {
		k = max(0, sort.Search(len(tm), func(i int) bool { return tm[i].at > x })-1)
	}
	p := tm[k]
	return p.src + max(0, min(x-p.at, p.n))
}

// seconds is source for a time in samples, in seconds.
func (tm timeMap) seconds(x int, end bool) float64 {
	return float64(tm.source(x, end)) / mel.SampleRate
}

// split maps a segment (window times) to the input, with its tokens' and words' times when
// known. A segment within one piece keeps its text; one over several pieces is split between
// them: each token goes to the piece holding its middle when tokens are timed (word timing),
// else the tokens are shared out in order in proportion to the time the segment spends in each
// piece (by their text's length); a part without text joins its neighbour. No part lies in a gap
// between pieces, and no word or token time of a part leaves its piece.
func (tm timeMap) split(p pending, textOf func([]int) string) []pending {
	L := tm.length()
	at := func(sec float64) int { return max(0, min(L, int(math.Round(sec*mel.SampleRate)))) }
	x0 := at(p.seg.Start)
	x1 := max(x0, at(p.seg.End))
	var over []int // pieces the segment overlaps
	for k, q := range tm {
		if q.at < x1 && q.at+q.n > x0 {
			over = append(over, k)
		}
	}
	if len(over) <= 1 {
		p.seg.Start, p.seg.End = tm.seconds(x0, false), tm.seconds(x1, x1 > x0)
		p.seg.Tokens = slices.Clone(p.seg.Tokens)
		p.seg.Words = slices.Clone(p.seg.Words)
		// The segment's piece (for an empty segment, the one it starts), so that a token at the
		// piece's end stays there, not at the next piece's start.
		k := max(0, sort.Search(len(tm), func(i int) bool { return tm[i].at > x0 })-1)
		if len(over) == 1 {
			k = over[0]
		}
		if len(tm) > 0 {
			tm.mapTimes(&p.seg, &tm[k])
		}
		return []pending{p}
	}
	// pieceAt is the index in over of the piece holding window time sec (the nearest one).
	pieceAt := func(sec float64) int {
		x := at(sec)
		for i, k := range over {
			if x < tm[k].at+tm[k].n {
				return i
			}
		}
		return len(over) - 1
	}
	timed := false
	for _, t := range p.seg.Tokens {
		timed = timed || t.End > 0
	}
	parts := make([][]Token, len(over))
	if timed {
		last := 0
		for _, t := range p.seg.Tokens {
			last = max(last, pieceAt((t.Start+t.End)/2))
			parts[last] = append(parts[last], t)
		}
	} else {
		// The share of the segment's time in each piece, cumulated.
		cum := make([]float64, len(over))
		var acc float64
		for i, k := range over {
			q := tm[k]
			acc += float64(min(x1, q.at+q.n) - max(x0, q.at))
			cum[i] = acc
		}
		var chars float64
		for _, t := range p.seg.Tokens {
			chars += float64(max(1, len(t.Text)))
		}
		var c float64
		for _, t := range p.seg.Tokens {
			w := float64(max(1, len(t.Text)))
			mid := (c + w/2) / chars * acc
			c += w
			i := min(sort.SearchFloat64s(cum, mid), len(over)-1)
			parts[i] = append(parts[i], t)
		}
	}
	// A part whose text is blank joins the part before it (the first joins the next).
	blank := func(ts []Token) bool { return strings.TrimSpace(textOf(tokenIDs(ts))) == "" }
	for i := 1; i < len(parts); i++ {
		if len(parts[i]) > 0 && blank(parts[i]) {
			parts[i-1], parts[i] = append(parts[i-1], parts[i]...), nil
		}
	}
	if blank(parts[0]) {
		for i := 1; i < len(parts); i++ {
			if len(parts[i]) > 0 {
				parts[i], parts[0] = append(parts[0], parts[i]...), nil
				break
			}
		}
	}
	// Words go to the piece holding their middle, or the nearest part before (after) it.
	words := make([][]Word, len(over))
	last := 0
	for _, w := range p.seg.Words {
		i := max(last, pieceAt((w.Start+w.End)/2))
		for i > 0 && len(parts[i]) == 0 {
			i--
		}
		for i < len(parts)-1 && len(parts[i]) == 0 {
			i++
		}
		last = i
		words[i] = append(words[i], w)
	}
	var out []pending
	for i, k := range over {
		if len(parts[i]) == 0 {
			continue
		}
		q := tm[k]
		seg := p.seg
		seg.Tokens, seg.Words = parts[i], words[i]
		seg.Text = textOf(tokenIDs(parts[i]))
		seg.Start = float64(q.src+max(x0, q.at)-q.at) / mel.SampleRate
		seg.End = float64(q.src+min(x1, q.at+q.n)-q.at) / mel.SampleRate
		tm.mapTimes(&seg, &q)
		np := pending{seg: seg}
		if len(out) == 0 {
			np.all = p.all // the prompt history keeps the whole segment once
		}
		out = append(out, np)
	}
	return out
}

// mapTimes maps the times of seg's tokens and words (window seconds) to the input, within piece
// q if not nil. Tokens stay untimed (0, 0) when none of the segment's has a time.
func (tm timeMap) mapTimes(seg *Segment, q *piece) {
	L := tm.length()
	conv := func(sec float64, end bool) float64 {
		x := max(0, min(L, int(math.Round(sec*mel.SampleRate))))
		s := tm.source(x, end)
		if q != nil {
			s = max(q.src, min(q.src+q.n, s))
		}
		return float64(s) / mel.SampleRate
	}
	timed := false
	for _, t := range seg.Tokens {
		timed = timed || t.Start != 0 || t.End != 0
	}
	for i := range seg.Tokens {
		if t := &seg.Tokens[i]; timed {
			t.Start, t.End = conv(t.Start, false), conv(t.End, true)
		}
	}
	for i := range seg.Words {
		w := &seg.Words[i]
		w.Start, w.End = conv(w.Start, false), conv(w.End, true)
	}
}

func tokenIDs(ts []Token) []int {
	out := make([]int, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

// virtualReader reads the virtual timeline from an AudioSource: the samples of the regions, one
// region after another, the gaps read and dropped. It holds the samples from the last drop
// position to the furthest one read.
type virtualReader struct {
	src   AudioSource
	tl    *timeline
	all   []float32 // the whole input when it is in memory (random access), else nil
	ri    int       // the region of the next source sample
	pos   int       // source samples read
	base  int       // virtual position of buf[0]
	buf   []float32
	chunk []float32
	eof   bool
	idle  int // reads in a row that returned nothing
}

func newVirtualReader(src AudioSource, tl *timeline) *virtualReader {
	return &virtualReader{src: src, tl: tl}
}

// read returns a copy of the virtual samples [from, to), cut short at the end of the input.
// from must not be before the last drop position.
func (vr *virtualReader) read(from, to int) ([]float32, error) {
	if vr.all != nil {
		var out []float32
		for _, p := range vr.tl.pieces(from, to) {
			out = append(out, vr.all[p.src:min(p.src+p.n, len(vr.all))]...)
		}
		return out, nil
	}
	if from < vr.base {
		return nil, fmt.Errorf("read audio: position %d already dropped (at %d)", from, vr.base)
	}
	for !vr.eof && vr.base+len(vr.buf) < to {
		if err := vr.fill(); err != nil {
			return nil, err
		}
	}
	hi := min(to, vr.base+len(vr.buf))
	lo := min(from, hi)
	return slices.Clone(vr.buf[lo-vr.base : hi-vr.base]), nil
}

// fill reads one chunk of the source and keeps its samples that lie in regions.
func (vr *virtualReader) fill() error {
	if vr.chunk == nil {
		vr.chunk = make([]float32, readChunk)
	}
	n, err := vr.src.Read(vr.chunk)
	s, p := vr.chunk[:n], vr.pos
	rs := vr.tl.regions
	for len(s) > 0 && vr.ri < len(rs) {
		g := rs[vr.ri]
		switch {
		case p >= g.end:
			vr.ri++
		case p < g.src:
			k := min(len(s), g.src-p)
			s, p = s[k:], p+k
		default:
			k := min(len(s), g.end-p)
			vr.buf = append(vr.buf, s[:k]...)
			s, p = s[k:], p+k
		}
	}
	vr.pos += n
	switch {
	case errors.Is(err, io.EOF):
		vr.eof = true
		vr.tl.setEnd(vr.pos)
		return nil
	case err != nil:
		return fmt.Errorf("read audio: %w", err)
	case n == 0:
		if vr.idle++; vr.idle > 100 {
			return fmt.Errorf("read audio: %w", io.ErrNoProgress)
		}
	default:
		vr.idle = 0
	}
	return nil
}

// drop forgets the samples before virtual position pos.
func (vr *virtualReader) drop(pos int) {
	if vr.all != nil || pos <= vr.base {
		return
	}
	k := min(pos-vr.base, len(vr.buf))
	vr.buf = vr.buf[:copy(vr.buf, vr.buf[k:])]
	vr.base += k
}

// drain reads the source to its end and returns its length in samples.
func (vr *virtualReader) drain() (int, error) {
	if vr.all != nil {
		return len(vr.all), nil
	}
	vr.buf = nil
	for !vr.eof {
		vr.base += len(vr.buf)
		vr.buf = vr.buf[:0]
		if err := vr.fill(); err != nil {
			return 0, err
		}
	}
	return vr.pos, nil
}

// pickStepper steps and picks greedily where the logits are (Session.StepPick).
type pickStepper interface {
	StepPick(tokens [][]int32, bitmaps [][]uint32, rows []tensor.PickRow, picks []tensor.Pick) error
}

var _ pickStepper = (*Session)(nil)

// pickMasks turns a task's filter masks for one sequence into a tensor.PickRow; the filters' id
// lists become bitmaps, one per distinct set of lists, made once and kept for the batch.
type pickMasks struct {
	bitmaps [][]uint32
	byKey   map[string]int
	m       rowMask
}

func (p *pickMasks) row(t *decodeTask, sampled []int) tensor.PickRow {
	p.m.reset()
	for _, f := range t.filters {
		f.masks(sampled, &p.m)
	}
	r := tensor.PickRow{Mask: -1, TSBegin: int32(t.ids.tsBegin), TSRule: p.m.tsRule,
		Ranges: append([][2]int32(nil), p.m.ranges...)}
	if p.m.tsRule && p.m.tsBegin != t.ids.tsBegin {
		panic(fmt.Sprintf("whisper: timestamp rule from %d, timestamps from %d", p.m.tsBegin, t.ids.tsBegin))
	}
	if len(p.m.lists) > 0 {
		r.Mask = p.bitmap(p.m.lists, t.ids.nVocab)
	}
	return r
}

// bitmap returns the index of the bitmap of the ids in lists (the lists are the filters' own
// slices, so their addresses name them).
func (p *pickMasks) bitmap(lists [][]int, nVocab int) int {
	var key strings.Builder
	for _, l := range lists {
		fmt.Fprintf(&key, "%p/%d,", l, len(l))
	}
	if i, ok := p.byKey[key.String()]; ok {
		return i
	}
	bm := make([]uint32, (nVocab+31)/32)
	for _, l := range lists {
		for _, id := range l {
			if id >= 0 && id < nVocab {
				bm[id/32] |= 1 << (id % 32)
			}
		}
	}
	if p.byKey == nil {
		p.byKey = map[string]int{}
	}
	p.byKey[key.String()] = len(p.bitmaps)
	p.bitmaps = append(p.bitmaps, bm)
	return len(p.bitmaps) - 1
}
