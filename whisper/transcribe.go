package whisper

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper/mel"
	"github.com/verbatimhq/verbatim/whisper/tokenizer"
)

// Result is a transcription.
type Result struct {
	Language      string             // the language used (given or detected)
	LanguageProbs map[string]float64 // language probabilities when it was detected, else nil
	Duration      float64            // seconds of input audio
	Segments      []Segment
	// Removed lists what the guard took out (Options.Guard), in the order it was removed.
	Removed []Removal
}

// Text is the text of all segments joined.
func (r *Result) Text() string {
	var b strings.Builder
	for _, s := range r.Segments {
		b.WriteString(s.Text)
	}
	return b.String()
}

// Segment is a stretch of transcribed text with its time span and decoding statistics (those of
// the window it came from).
type Segment struct {
	ID               int
	Start, End       float64 // seconds from the start of the input
	Text             string
	Tokens           []Token // text tokens (timestamps and specials are not listed)
	AvgLogProb       float64
	NoSpeechProb     float64
	CompressionRatio float64
	Temperature      float64
	Language         string // the language the segment was decoded as
	Words            []Word // word timing (Options.WordTimestamps), else nil
}

// Token is one text token of a segment.
type Token struct {
	ID   int
	Text string  // the token's bytes (may be part of a UTF-8 sequence)
	P    float64 // probability under the filtered distribution it was decoded from
	// Start and End are the token's time span in seconds when known (word timing), else 0.
	Start, End float64
}

const (
	framesPerSecond = mel.SampleRate / mel.HopLength // 100
	inputStride     = 2                              // mel frames per audio context position
	timePrecision   = float64(inputStride) / framesPerSecond
)

// features is the log-mel spectrogram of the whole input padded with 30 s of silence, as the
// reference computes it before its seek loop.
type features struct {
	data    []float32 // [nMels, frames]
	nMels   int
	frames  int
	content int // frames of real audio
}

func newFeatures(samples []float32, nMels int) *features {
	padded := make([]float32, len(samples)+mel.ChunkSamples)
	copy(padded, samples)
	data, frames := mel.Compute(padded, nMels)
	return &features{data: data, nMels: nMels, frames: frames, content: max(0, frames-mel.ChunkFrames)}
}

// window returns the [nMels, 3000] window starting at frame seek, with the first size frames
// from the features and the rest zero (the reference's pad_or_trim of a short last window).
func (f *features) window(seek, size int) []float32 {
	out := make([]float32, f.nMels*mel.ChunkFrames)
	n := max(0, min(size, mel.ChunkFrames, f.frames-seek))
	for b := range f.nMels {
		copy(out[b*mel.ChunkFrames:b*mel.ChunkFrames+n], f.data[b*f.frames+seek:b*f.frames+seek+n])
	}
	return out
}

// Transcribe transcribes 16 kHz mono samples with m: the reference's transcribe loop over 30 s
// windows (seek advanced by the decoded timestamps), with temperature fallback, silence skipping
// and conditioning on previous text. With opts.SpeechRegions (non-nil; empty means no speech)
// it transcribes only those regions instead, as [TranscribeStream]. ctx is checked between
// windows.
func Transcribe(ctx context.Context, m *Model, samples []float32, opts Options) (res *Result, err error) {
	defer tensor.Catch(&err)
	if m == nil {
		return nil, errNoModel
	}
	if opts.SpeechRegions != nil {
		return transcribeLong(ctx, m, SampleSource(samples), len(samples), &opts)
	}
	r, err := newRunner(ctx, m, samples, &opts)
	if err != nil {
		return nil, err
	}
	if opts.Compat == CompatWhisperCpp {
		err = r.loopCpp()
	} else {
		err = r.loopOpenAI()
	}
	if err != nil {
		return nil, err
	}
	return r.res, nil
}

// runner holds one transcription's state.
type runner struct {
	ctx       context.Context // the run loop's context, owned here for its duration
	m         *Model
	tok       *tokenizer.Tokenizer
	tokenText func(id int) string    // a token's bytes
	textOf    func(ids []int) string // decoded text of text tokens
	ids       vocabIDs
	opts      *Options
	feats     *features
	nSample   int
	sot       []int
	rng       *rand.Rand
	res       *Result

	lang      string      // the current window's language
	detect    bool        // the language is detected (Language auto on a multilingual model)
	perWindow bool        // ... for every window on its own (several allowed languages)
	allowed   []langToken // the languages detection may choose
	hotwords  []int       // prompt prefix of every window
	guard     *guard      // nil: off

	noMassRule bool // the model decodes without the timestamp mass rule (timestampMassRule)
}

func newRunner(ctx context.Context, m *Model, samples []float32, opts *Options) (*runner, error) {
	r, err := prepareRunner(ctx, m, opts)
	if err != nil {
		return nil, err
	}
	r.nSample = len(samples)
	r.res.Duration = float64(len(samples)) / mel.SampleRate
	r.feats = newFeatures(samples, m.Config.NMels)
	if r.detect {
		if err := r.detectInFeatures(); err != nil {
			return nil, fmt.Errorf("transcribe: %w", err)
		}
	}
	return r, nil
}

// prepareRunner checks opts and sets up what every transcription path shares: the tokenizer,
// the language (unless it is to be detected), hotwords and the guard.
func prepareRunner(ctx context.Context, m *Model, opts *Options) (*runner, error) {
	switch opts.Task {
	case "":
		opts.Task = "transcribe"
	case "transcribe", "translate":
	default:
		return nil, fmt.Errorf("transcribe: unknown task %q", opts.Task)
	}
	if opts.Compat != CompatOpenAI && opts.Compat != CompatWhisperCpp {
		return nil, fmt.Errorf("transcribe: unknown compat mode %d", opts.Compat)
	}
	tok, err := tokenizer.New(m.Config.NVocab)
	if err != nil {
		return nil, fmt.Errorf("transcribe: %w", err)
	}
	r := &runner{
		ctx: ctx, m: m, tok: tok, ids: idsOf(tok), opts: opts, noMassRule: !timestampMassRule(m.Arch, m.Config),
		tokenText: func(id int) string { return string(tok.TokenBytes(id)) }, textOf: tok.Decode,
		rng: newRNG(opts.Seed),
		res: &Result{},
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("transcribe: %w", err)
	}
	if err := r.chooseLanguage(); err != nil {
		return nil, fmt.Errorf("transcribe: %w", err)
	}
	if h := strings.TrimSpace(opts.Hotwords); h != "" {
		r.hotwords = tok.Encode(" " + h)
	}
	if opts.Guard && opts.Compat == CompatOpenAI {
		r.guard = newGuard(opts, tok.Decode, &r.res.Removed)
	}
	return r, nil
}

// decode runs one decoding task on window 0 of enc.
func (r *runner) decode(enc *Encoded, prompt []int, temp float64, cpp *cppWindow, audioFrames int) (*decodeResult, error) {
	cfg := r.m.Config
	spec := taskSpec{sot: r.sot, prompt: prompt, temperature: temp, cpp: cpp, audioFrames: audioFrames, noMassRule: r.noMassRule}
	text := func(ids []int) string { return strings.TrimSpace(r.textOf(ids)) }
	task, err := newDecodeTask(r.ids, cfg.NTextCtx, cfg.NAudioCtx, r.opts, spec, r.rng, text)
	if err != nil {
		return nil, err
	}
	s, err := r.m.NewSession(enc, make([]int, task.nGroup))
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	defer s.Close()
	return task.run(s)
}

func (r *runner) progress(seek int) {
	if r.opts.Progress == nil {
		return
	}
	frame := 10 * time.Millisecond
	total := r.feats.content
	r.opts.Progress(time.Duration(min(seek, total))*frame, time.Duration(total)*frame)
}

// initialPrompt is the prompt text's tokens as the reference encodes it (" " + stripped text).
func (r *runner) initialPrompt() []int {
	p := strings.TrimSpace(r.opts.Prompt)
	if p == "" {
		return nil
	}
	return r.tok.Encode(" " + p)
}

// loopOpenAI is openai/whisper's transcribe().
func (r *runner) loopOpenAI() error {
	o := r.opts
	content := r.feats.content
	history := r.initialPrompt()
	resetSince := 0
	for seek := 0; seek < content; {
		if err := r.ctx.Err(); err != nil {
			return fmt.Errorf("transcribe: %w", err)
		}
		size := min(mel.ChunkFrames, content-seek)
		enc, err := r.m.Encode(r.feats.window(seek, size), 1)
		if err != nil {
			return fmt.Errorf("transcribe: window at %.2fs: %w", float64(seek)/framesPerSecond, err)
		}
		if r.perWindow {
			if err := r.detectWindow(enc, 0); err != nil {
				enc.Close()
				return fmt.Errorf("transcribe: window at %.2fs: %w", float64(seek)/framesPerSecond, err)
			}
		}
		dr, err := r.decodeWithFallback(enc, r.withHotwords(history[resetSince:]), size)
		if err != nil {
			enc.Close()
			return fmt.Errorf("transcribe: window at %.2fs: %w", float64(seek)/framesPerSecond, err)
		}
		skip := dr.noSpeechProb > o.NoSpeechThreshold && !(dr.avgLogProb > o.LogProbThreshold)
		if skip {
			enc.Close()
			seek += size
			r.progress(seek)
			continue
		}
		segs, advance := r.splitOpenAI(dr, seek, size)
		segs, repeated := r.guard.window(segs, nil, nil)
		segs, advance, err = r.addWordTimes(enc, 0, dr, segs, seek, size, advance)
		enc.Close()
		if err != nil {
			return fmt.Errorf("transcribe: window at %.2fs: %w", float64(seek)/framesPerSecond, err)
		}
		for _, s := range segs {
			r.add(s.seg)
			history = append(history, s.all...)
		}
		if advance <= 0 {
			advance = size // cannot happen under the timestamp rules; never loop in place
		}
		seek += advance
		if !o.ConditionOnPreviousText || dr.temperature > 0.5 || repeated {
			resetSince = len(history)
		}
		r.progress(seek)
	}
	return nil
}

// decodeWithFallback is the reference's decode_with_fallback.
func (r *runner) decodeWithFallback(enc *Encoded, prompt []int, audioFrames int) (*decodeResult, error) {
	o := r.opts
	var dr *decodeResult
	for _, t := range o.temperatures() {
		var err error
		if dr, err = r.decode(enc, prompt, t, nil, audioFrames); err != nil {
			return nil, err
		}
		if !o.needsFallback(dr) {
			break
		}
	}
	return dr, nil
}

// needsFallback reports whether a window's decoding fails the thresholds and is retried at the
// next temperature: its text compresses too well (a loop) or its tokens are improbable, unless
// it is silence (no-speech probable and tokens improbable).
func (o *Options) needsFallback(dr *decodeResult) bool {
	fallback := dr.compressionRatio > o.CompressionRatioThreshold || dr.avgLogProb < o.LogProbThreshold
	if dr.noSpeechProb > o.NoSpeechThreshold && dr.avgLogProb < o.LogProbThreshold {
		fallback = false // silence
	}
	return fallback
}

// pending is a segment and all of its tokens (timestamps included) for the prompt history.
type pending struct {
	seg Segment
	all []int
}

func (r *runner) add(s Segment) {
	s.ID = len(r.res.Segments)
	if s.Language == "" {
		s.Language = r.lang
	}
	r.res.Segments = append(r.res.Segments, s)
}

// segment builds a segment from tokens [a, b) of dr. It reports false for a segment the
// reference clears (no text, or zero length).
func (r *runner) segment(dr *decodeResult, a, b int, start, end float64) (pending, bool) {
	seg := Segment{
		Start: start, End: end, AvgLogProb: dr.avgLogProb, NoSpeechProb: dr.noSpeechProb,
		CompressionRatio: dr.compressionRatio, Temperature: dr.temperature,
	}
	var text []int
	for i := a; i < b; i++ {
		id := dr.tokens[i]
		if id >= r.ids.eot {
			continue
		}
		text = append(text, id)
		seg.Tokens = append(seg.Tokens, Token{ID: id, Text: r.tokenText(id), P: math.Exp(dr.logprobs[i])})
	}
	seg.Text = r.textOf(text)
	if start == end || strings.TrimSpace(seg.Text) == "" {
		return pending{}, false
	}
	return pending{seg: seg, all: dr.tokens[a:b]}, true
}

// splitOpenAI cuts a window's tokens into segments at consecutive timestamps and returns them
// with the seek advance in frames, as the reference's transcribe loop.
func (r *runner) splitOpenAI(dr *decodeResult, seek, size int) ([]pending, int) {
	toks := dr.tokens
	begin := r.ids.tsBegin
	off := float64(seek) / framesPerSecond
	isTS := func(i int) bool { return toks[i] >= begin }
	n := len(toks)
	singleEnding := n >= 2 && !isTS(n-2) && isTS(n-1)
	var cuts []int
	for i := 0; i+1 < n; i++ {
		if isTS(i) && isTS(i+1) {
			cuts = append(cuts, i+1)
		}
	}
	var out []pending
	if len(cuts) > 0 {
		if singleEnding {
			cuts = append(cuts, n)
		}
		last := 0
		for _, cut := range cuts {
			start := off + float64(toks[last]-begin)*timePrecision
			end := off + float64(toks[cut-1]-begin)*timePrecision
			if p, ok := r.segment(dr, last, cut, start, end); ok {
				out = append(out, p)
			}
			last = cut
		}
		if singleEnding {
			return out, size
		}
		return out, (toks[last-1] - begin) * inputStride
	}
	dur := float64(size) / framesPerSecond
	if i := lastIndexFunc(toks, func(t int) bool { return t >= begin }); i >= 0 && toks[i] != begin {
		dur = float64(toks[i]-begin) * timePrecision
	}
	if p, ok := r.segment(dr, 0, n, off, off+dur); ok {
		out = append(out, p)
	}
	return out, size
}

// loopCpp is whisper.cpp's whisper_full_with_state seek loop (see CompatWhisperCpp).
func (r *runner) loopCpp() error {
	o := r.opts
	const deltaMin = 10
	// whisper.cpp's frame count of the unpadded input.
	seekEnd := 0
	if r.nSample > mel.NFFT/2 {
		seekEnd = 1 + (r.nSample-mel.NFFT/2)/mel.HopLength
	}
	nTextCtx := r.m.Config.NTextCtx
	past := r.initialPrompt()
	temps := o.temperatures()
	for seek := 0; seek+deltaMin < seekEnd; {
		if err := r.ctx.Err(); err != nil {
			return fmt.Errorf("transcribe: %w", err)
		}
		enc, err := r.m.Encode(r.feats.window(seek, mel.ChunkFrames), 1)
		if err != nil {
			return fmt.Errorf("transcribe: window at %.2fs: %w", float64(seek)/framesPerSecond, err)
		}
		if seek > 0 && seek+500 >= seekEnd {
			past = nil // a short tail: the prompt tends to make it hallucinate
		}
		var dr *decodeResult
		var used []int
		for it, t := range temps {
			used = nil
			if len(past) > 0 && t < 0.5 {
				used = past[max(0, len(past)-nTextCtx/2):]
			}
			if dr, err = r.decode(enc, used, t, &cppWindow{seek: seek, seekEnd: seekEnd}, 0); err != nil {
				enc.Close()
				return fmt.Errorf("transcribe: window at %.2fs: %w", float64(seek)/framesPerSecond, err)
			}
			if it == len(temps)-1 {
				break
			}
			if !dr.failed && !(dr.avgLogProb < o.LogProbThreshold && dr.noSpeechProb < o.NoSpeechThreshold) {
				break
			}
		}
		avg := dr.avgLogProb
		if dr.failed {
			avg = math.Inf(-1)
		}
		noSpeech := dr.noSpeechProb > o.NoSpeechThreshold && avg < o.LogProbThreshold
		past = append([]int(nil), used...)
		var segs []Segment
		if !noSpeech {
			past = append(past, dr.promptTokens...)
			segs = r.splitCpp(dr, seek)
			err = r.addWordTimesCpp(enc, segs, seek, min(mel.ChunkFrames, seekEnd-seek))
		}
		enc.Close()
		if err != nil {
			return fmt.Errorf("transcribe: window at %.2fs: %w", float64(seek)/framesPerSecond, err)
		}
		for _, s := range segs {
			r.add(s)
		}
		if !o.ConditionOnPreviousText {
			past = nil
		}
		delta := dr.seekDelta
		if n := len(dr.tokens); n > 1 && dr.tokens[n-2] < r.ids.tsBegin && dr.tokens[n-1] > r.ids.tsBegin {
			delta = min(seekEnd-seek, mel.ChunkFrames) // single timestamp ending: skip the window
		}
		if delta <= 0 {
			delta = mel.ChunkFrames // never loop in place
		}
		seek += delta
		r.progress(seek)
	}
	return nil
}

// splitCpp cuts a window's tokens into segments as whisper.cpp does: a segment closes at each
// timestamp after <|0.00|> (runs of timestamps collapse), its times are the timestamps whisper.cpp
// predicts at those tokens, and trailing text ends at the seek advance.
func (r *runner) splitCpp(dr *decodeResult, seek int) []Segment {
	toks := dr.tokens
	if len(toks) == 0 {
		return nil
	}
	begin := r.ids.tsBegin
	at := func(tid int) float64 {
		if tid < 0 {
			return float64(seek) / framesPerSecond
		}
		return float64(seek+2*(tid-begin)) / framesPerSecond
	}
	var out []Segment
	t0 := at(dr.tids[0])
	i0 := 0
	hasText := false
	for i := 0; i < len(toks); i++ {
		if toks[i] < r.ids.eot {
			hasText = true
		}
		if toks[i] <= begin {
			continue
		}
		t1 := at(dr.tids[i])
		if hasText {
			out = append(out, r.cppSegment(dr, i0, i+1, t0, t1))
		}
		hasText = false
		for i < len(toks) && toks[i] > begin {
			i++
		}
		i--
		t0, i0 = t1, i+1
	}
	if hasText {
		out = append(out, r.cppSegment(dr, i0, len(toks), t0, float64(seek+dr.seekDelta)/framesPerSecond))
	}
	return out
}

func (r *runner) cppSegment(dr *decodeResult, a, b int, start, end float64) Segment {
	seg := Segment{
		Start: start, End: end, AvgLogProb: dr.avgLogProb, NoSpeechProb: dr.noSpeechProb,
		CompressionRatio: dr.compressionRatio, Temperature: dr.temperature,
	}
	var text []int
	for i := a; i < b; i++ {
		if id := dr.tokens[i]; id < r.ids.eot {
			text = append(text, id)
			seg.Tokens = append(seg.Tokens, Token{ID: id, Text: r.tokenText(id), P: math.Exp(dr.logprobs[i])})
		}
	}
	seg.Text = r.textOf(text)
	return seg
}
