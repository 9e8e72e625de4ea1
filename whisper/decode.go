package whisper

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Compat selects whose behaviour decoding and transcription follow where openai/whisper and
// whisper.cpp differ. The default is the reference, openai/whisper.
type Compat int

const (
	// CompatOpenAI follows openai/whisper's decoding.py and transcribe.py.
	CompatOpenAI Compat = iota
	// CompatWhisperCpp follows whisper.cpp's whisper_full (v1.7-1.9), for parity with it:
	//   - no forced timestamp at the first sampled position (max initial timestamp still applies);
	//     timestamps may repeat the previous one;
	//   - always suppressed: <|notimestamps|> and every language token besides the reference's
	//     specials; with NoTimestamps, every timestamp token is suppressed too;
	//   - at most n_text_ctx/2-4 sampled tokens per window (220), the prompt at most n_text_ctx/2
	//     tokens and dropped at temperature >= 0.5;
	//   - a window ends at EOT or when a timestamp reaches the end of the audio; decoding fails when
	//     a timestamp goes back or when the token limit is reached without a timestamp past 15 s;
	//     a completed decoding keeps its tokens up to the last timestamp, a failed one keeps all;
	//   - fallback on failure, on whisper.cpp's token entropy (last 32 tokens) below
	//     CompressionRatioThreshold, or on avg logprob below LogProbThreshold with no-speech below
	//     NoSpeechThreshold; avg logprob is the plain mean over the kept tokens;
	//   - the no-speech probability is read at the last prompt position, not at <|startoftranscript|>;
	//   - the mel window is cut from the padded input without zeroing the frames past the end;
	//   - segments start at the timestamp whisper.cpp predicts at their first token and a segment
	//     without a closing timestamp ends at the window's seek advance (30 s after a failure).
	//     Where whisper.cpp has no timestamp at all (NoTimestamps) the segment starts at the window
	//     start (whisper.cpp reports an undefined negative time there).
	//
	// Beam search and sampling use the reference's algorithms in both modes.
	CompatWhisperCpp
)

// Options control decoding and transcription. Start from [DefaultOptions]: the zero value is not
// a useful configuration. A NaN threshold disables that check.
type Options struct {
	// Language is the spoken language code ("en", "de", ...); "" or "auto" detects it from up to
	// three windows spread over the input (English-only models always use "en").
	Language string
	// Task is "transcribe" or "translate" (to English).
	Task string
	// Temperatures is the fallback schedule: decoding retries at the next temperature when a
	// window fails the thresholds. The reference CLI uses 0, 0.2, ..., 1.0.
	Temperatures []float64
	// NoFallback decodes at Temperatures[0] only.
	NoFallback bool
	// BeamSize > 1 uses beam search at temperature 0; otherwise greedy.
	BeamSize int
	// BestOf is the number of sampled candidates at temperature > 0.
	BestOf int
	// Patience is the beam search patience factor; 0 means 1 (the reference default).
	Patience float64
	// LengthPenalty is the ranking's alpha: score = sum logprob / ((5+len)/6)^alpha; 0 ranks by
	// sum logprob / len (the reference's default, simple length normalization).
	LengthPenalty float64
	// NoTimestamps decodes text only (<|notimestamps|>), one segment per window.
	NoTimestamps bool
	// WordTimestamps times every word (Segment.Words) and text token (Token.Start, End) from the
	// cross-attention of the model's alignment heads, as the reference's word_timestamps, at the
	// cost of one more decoder pass per window. In CompatOpenAI mode segments are re-timed to
	// their words and the seek loop resumes after the last word, as in the reference. The
	// reference has it off by default; DefaultOptions turns it on because subtitle shaping cuts
	// cues at word boundaries.
	WordTimestamps bool
	// Prompt is an initial prompt (text) for the first window.
	Prompt string
	// ConditionOnPreviousText feeds each window's output as the next window's prompt.
	ConditionOnPreviousText bool
	// CompressionRatioThreshold: a window whose text compresses (zlib) better than this is
	// treated as a repetition loop and retried.
	CompressionRatioThreshold float64
	// LogProbThreshold: a window whose average token log probability is below this is retried.
	LogProbThreshold float64
	// NoSpeechThreshold: a window with <|nospeech|> probability above this and an average log
	// probability below LogProbThreshold is silence (skipped).
	NoSpeechThreshold float64
	// SuppressBlank forbids a blank or EOT as the first sampled token.
	SuppressBlank bool
	// SuppressTokens is a comma-separated list of token ids never sampled; "-1" stands for the
	// reference's non-speech symbol set. The special tokens are always suppressed.
	SuppressTokens string
	// MaxInitialTimestamp limits the first timestamp of a window (seconds); 0: no limit.
	MaxInitialTimestamp float64
	// KeepTimestampsInAudio forbids timestamps after the end of a window's audio (the input's
	// last window, or a VAD window, is shorter than 30 s; the rest is padding). The reference
	// lets a model end a segment in the padding, and its seek then drops the window's remaining
	// speech: mini, on a 10 s clip, ended a segment at 13.06 s after its first word and lost the
	// other 26. Not applied in CompatWhisperCpp mode.
	KeepTimestampsInAudio bool
	// Seed seeds sampling at temperature > 0; the same seed gives the same result.
	Seed uint64
	// Compat selects openai/whisper's (default) or whisper.cpp's behaviour where they differ.
	Compat Compat
	// Progress, if set, is called after each window with the audio done and the total.
	Progress func(done, total time.Duration)

	// SpeechRegions are the input's speech regions (seconds, from a VAD). When set, only they are
	// transcribed: they are padded, merged greedily into windows of at most 30 s (a longer region
	// is split), and the segments' times are mapped back to the input's timeline; no segment lies
	// in a gap between regions. Without them, the whole input goes through the seek loop. The
	// windows are decoded with the reference's rules whatever Compat says.
	SpeechRegions []Span
	// Languages restricts language detection to these codes ("de", "en", ...). With more than one,
	// and Language auto, each window's language is detected on its own (Segment.Language).
	Languages []string
	// Hotwords is text given to every window as the start of its prompt (names, terms), unlike
	// Prompt, which only the first window sees.
	Hotwords string
	// BatchSize is how many windows the windowed path (SpeechRegions, TranscribeStream) encodes
	// together, and decodes together where decoding is greedy at temperature 0. 0 picks 8 on a
	// backend whose Capabilities are Batched other than the CPU, else 1. With more than 1, windows
	// are decoded whole and not conditioned on each other's text.
	BatchSize int
	// Guard removes repetition loops, text repeated across windows and known silence
	// hallucinations, listing each removal in Result.Removed. It does not apply in
	// CompatWhisperCpp mode (parity).
	Guard bool
}

// DefaultOptions returns the reference CLI's defaults: language detection, transcribe, beam 5,
// best of 5, temperature fallback 0, 0.2, ..., 1.0, thresholds 2.4 / -1.0 / 0.6, suppress blank
// and the non-speech set, max initial timestamp 1 s, conditioned on previous text; and, unlike
// the reference, word timestamps on, timestamps kept within the audio and the guard on.
func DefaultOptions() Options {
	return Options{
		Task:                      "transcribe",
		Temperatures:              []float64{0, 0.2, 0.4, 0.6, 0.8, 1.0},
		BeamSize:                  5,
		BestOf:                    5,
		ConditionOnPreviousText:   true,
		CompressionRatioThreshold: 2.4,
		LogProbThreshold:          -1.0,
		NoSpeechThreshold:         0.6,
		SuppressBlank:             true,
		SuppressTokens:            "-1",
		MaxInitialTimestamp:       1.0,
		KeepTimestampsInAudio:     true,
		WordTimestamps:            true,
		Guard:                     true,
	}
}

// temperatures is the schedule actually used.
func (o *Options) temperatures() []float64 {
	if len(o.Temperatures) == 0 {
		return []float64{0}
	}
	if o.NoFallback {
		return o.Temperatures[:1]
	}
	return o.Temperatures
}

// stepper is the decoder state the decoding loops drive: a batch of sequences advancing together.
// *Session satisfies it; unit tests use a deterministic fake.
type stepper interface {
	// Step appends tokens[i] to sequence i and returns the logits of the last new position,
	// [len(tokens), NVocab] flattened (all == false is the only form used here).
	Step(tokens [][]int32, all bool) ([]float32, error)
	// Reorder makes sequence i continue from sequence src[i].
	Reorder(src []int) error
}

var _ stepper = (*Session)(nil)

// cppWindow is where a window sits in the input, for whisper.cpp's end-of-audio rule (frames).
type cppWindow struct{ seek, seekEnd int }

// decodeTask is one decoding of one 30 s window at one temperature (the reference's DecodingTask).
type decodeTask struct {
	ids           vocabIDs
	initial       []int // prompt + SOT sequence
	sotIndex      int
	noSpeechIndex int // position whose logits give the no-speech probability
	filters       []logitFilter
	sampleLen     int
	nTextCtx      int
	temperature   float64
	nGroup        int // sequences decoded together (beam size or best-of)
	beamSize      int // > 1: beam search
	patience      float64
	lengthPenalty float64
	noTimestamps  bool
	entropyThold  float64 // whisper.cpp mode only
	text          func([]int) string
	rng           *rand.Rand
	cpp           *cppWindow // non-nil: whisper.cpp mode
}

// taskSpec is what varies between the tasks of one transcription.
type taskSpec struct {
	sot         []int // SOT sequence (without <|notimestamps|>)
	prompt      []int
	temperature float64
	cpp         *cppWindow
	// audioFrames is the number of mel frames of the window's audio, for
	// Options.KeepTimestampsInAudio; 0 or a full window: no limit.
	audioFrames int
	// noMassRule drops the timestamp mass rule (timestampMassRule); not in whisper.cpp mode.
	noMassRule bool
}

func newDecodeTask(v vocabIDs, nTextCtx, nAudioCtx int, opts *Options, spec taskSpec, rng *rand.Rand, text func([]int) string) (*decodeTask, error) {
	t := &decodeTask{
		ids: v, nTextCtx: nTextCtx, temperature: spec.temperature, noTimestamps: opts.NoTimestamps,
		patience: opts.Patience, lengthPenalty: opts.LengthPenalty, text: text, rng: rng, cpp: spec.cpp,
		entropyThold: opts.CompressionRatioThreshold,
	}
	cpp := spec.cpp != nil
	sot := append([]int(nil), spec.sot...)
	if opts.NoTimestamps {
		sot = append(sot, v.noTimestamps)
	}
	if len(spec.prompt) > 0 {
		keep := nTextCtx/2 - 1
		if cpp {
			keep = nTextCtx / 2
		}
		p := spec.prompt[max(0, len(spec.prompt)-keep):]
		t.initial = append(append([]int{v.sotPrev}, p...), sot...)
		t.sotIndex = 1 + len(p)
	} else {
		t.initial = sot
	}
	t.noSpeechIndex = t.sotIndex
	t.sampleLen = nTextCtx / 2
	if cpp {
		t.noSpeechIndex = len(t.initial) - 1
		t.sampleLen = nTextCtx/2 - 4
	}
	if len(t.initial) >= nTextCtx {
		return nil, fmt.Errorf("decode: %d prompt tokens do not fit a %d-token context", len(t.initial), nTextCtx)
	}
	t.nGroup = 1
	switch {
	case spec.temperature == 0 && opts.BeamSize > 1:
		t.beamSize, t.nGroup = opts.BeamSize, opts.BeamSize
	case spec.temperature > 0 && opts.BestOf > 1:
		t.nGroup = opts.BestOf
	}
	if t.patience == 0 {
		t.patience = 1
	}
	if t.patience < 0 {
		return nil, fmt.Errorf("decode: patience %v is negative", opts.Patience)
	}

	if opts.SuppressBlank {
		t.filters = append(t.filters, suppressBlank{ids: append(append([]int(nil), v.blank...), v.eot)})
	}
	sup, err := suppressList(v, opts.SuppressTokens, cpp)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	t.filters = append(t.filters, suppressTokens{ids: sup})
	switch {
	case !opts.NoTimestamps:
		maxInit := -1
		if opts.MaxInitialTimestamp > 0 {
			precision := 30.0 / float64(nAudioCtx)
			maxInit = int(math.RoundToEven(opts.MaxInitialTimestamp / precision))
		}
		if opts.KeepTimestampsInAudio && !cpp && spec.audioFrames > 0 && spec.audioFrames < 2*nAudioCtx {
			// Timestamps are 2 frames (20 ms) apart: the first one at or after the audio's end is
			// the last allowed, and one more for rounding.
			last := (spec.audioFrames+1)/2 + 1
			t.filters = append(t.filters, suppressRange{from: v.tsBegin + last + 1, to: v.nVocab})
		}
		t.filters = append(t.filters, &timestampRules{eot: v.eot, noTimestamps: v.noTimestamps, begin: v.tsBegin, maxInitial: maxInit, cpp: cpp, noMassRule: spec.noMassRule && !cpp})
	case cpp:
		t.filters = append(t.filters, suppressRange{from: v.tsBegin, to: v.nVocab})
	}
	return t, nil
}

// candidate is one sequence being decoded: the sampled tokens (EOT included once sampled), the
// log probability of each under the filtered distribution, and whisper.cpp's most probable
// timestamp at each step (-1 where every timestamp was masked).
type candidate struct {
	tokens []int
	lps    []float64
	tids   []int
	sum    float64
	done   bool
}

func (c *candidate) clone() *candidate {
	return &candidate{
		tokens: append([]int(nil), c.tokens...), lps: append([]float64(nil), c.lps...),
		tids: append([]int(nil), c.tids...), sum: c.sum, done: c.done,
	}
}

func (c *candidate) push(tok int, lp float64, tid int) {
	c.tokens = append(c.tokens, tok)
	c.lps = append(c.lps, lp)
	c.tids = append(c.tids, tid)
}

// decodeResult is the outcome of one decodeTask (the reference's DecodingResult).
type decodeResult struct {
	tokens           []int     // sampled tokens, timestamps included, EOT excluded
	logprobs         []float64 // per token
	tids             []int     // per token (whisper.cpp's tid)
	text             string
	sumLogProb       float64
	avgLogProb       float64
	noSpeechProb     float64
	temperature      float64
	compressionRatio float64

	// whisper.cpp mode
	failed       bool
	resultLen    int   // tokens kept for the next prompt
	promptTokens []int // those tokens (EOT included when kept)
	seekDelta    int   // frames to advance
}

// run decodes the window behind s, which must hold t.nGroup empty sequences.
func (t *decodeTask) run(s stepper) (*decodeResult, error) {
	logits, noSpeech, err := t.prefill(s)
	if err != nil {
		return nil, err
	}
	var cands []*candidate
	if t.beamSize > 1 {
		cands, err = t.beamSearch(s, logits)
	} else {
		cands, err = t.sample(s, logits)
	}
	if err != nil {
		return nil, err
	}
	var r *decodeResult
	if t.cpp != nil {
		r = t.finishCpp(cands)
	} else {
		r = t.finish(cands)
	}
	r.noSpeechProb = noSpeech
	r.temperature = t.temperature
	r.text = t.text(r.tokens)
	r.compressionRatio = compressionRatio(r.text)
	return r, nil
}

func repeatRows(toks []int, n int) [][]int32 {
	row := make([]int32, len(toks))
	for i, v := range toks {
		row[i] = int32(v)
	}
	out := make([][]int32, n)
	for i := range out {
		out[i] = row
	}
	return out
}

// prefill feeds the initial tokens to every sequence and returns the logits after them and the
// no-speech probability.
func (t *decodeTask) prefill(s stepper) ([]float32, float64, error) {
	V := t.ids.nVocab
	k := t.noSpeechIndex
	first := t.initial
	if k < len(t.initial)-1 {
		first = t.initial[:k+1]
	}
	logits, err := s.Step(repeatRows(first, t.nGroup), false)
	if err != nil {
		return nil, 0, fmt.Errorf("decode prompt: %w", err)
	}
	if len(logits) != t.nGroup*V {
		return nil, 0, fmt.Errorf("decode prompt: %d logits, want %d", len(logits), t.nGroup*V)
	}
	noSpeech := tokenProb(logits[:V], t.ids.noSpeech)
	if len(first) < len(t.initial) {
		logits, err = s.Step(repeatRows(t.initial[k+1:], t.nGroup), false)
		if err != nil {
			return nil, 0, fmt.Errorf("decode prompt: %w", err)
		}
	}
	return logits, noSpeech, nil
}

// tokenProb is softmax(logits)[id] (0 if id is out of range).
func tokenProb(logits []float32, id int) float64 {
	if id < 0 || id >= len(logits) {
		return 0
	}
	return math.Exp(float64(logits[id]) - logSumExp32(logits))
}

// filter applies the logit filters to one row, and returns the row's log normalizer (the log
// probability of token i is row[i] - lse) and whisper.cpp's most probable timestamp.
func (t *decodeTask) filter(row []float32, sampled []int) (lse float64, tid int) {
	if t.cpp != nil && t.temperature > 0 {
		// whisper.cpp divides by the temperature before filtering.
		inv := float32(1 / t.temperature)
		for i := range row {
			row[i] *= inv
		}
	}
	for _, f := range t.filters {
		f.apply(row, sampled)
	}
	tid = -1
	if i := argmax(row[t.ids.tsBegin:]); i >= 0 {
		tid = t.ids.tsBegin + i
	}
	return logSumExp32(row), tid
}

// sample is greedy decoding (temperature 0) or sampling with best-of (the reference's
// GreedyDecoder): every sequence continues until EOT or the length limit.
func (t *decodeTask) sample(s stepper, logits []float32) ([]*candidate, error) {
	V := t.ids.nVocab
	cands := make([]*candidate, t.nGroup)
	tracks := make([]cppTracker, t.nGroup)
	for j := range cands {
		cands[j] = &candidate{}
		tracks[j] = newCppTracker()
	}
	scratch := make([]float64, V)
	temp := t.temperature
	if t.cpp != nil && temp > 0 {
		temp = 1 // logits already divided
	}
	next := make([][]int32, t.nGroup)
	for i := 0; i < t.sampleLen; i++ {
		for j, c := range cands {
			if c.done {
				next[j] = []int32{int32(t.ids.eot)}
				continue
			}
			row := logits[j*V : (j+1)*V]
			lse, tid := t.filter(row, c.tokens)
			var tok int
			if temp == 0 {
				tok = argmax(row)
			} else {
				tok = sampleToken(t.rng, row, temp, scratch)
			}
			if tok < 0 { // everything masked
				tok = t.ids.eot
			}
			lp := float64(row[tok]) - lse
			c.push(tok, lp, tid)
			c.sum += lp
			if tok == t.ids.eot {
				c.done = true
			}
			if t.cpp != nil && tracks[j].push(t, i, tok) {
				c.done = true
			}
			next[j] = []int32{int32(tok)}
		}
		if allDone(cands) || len(t.initial)+i+1 > t.nTextCtx || i+1 == t.sampleLen {
			break
		}
		var err error
		if logits, err = s.Step(next, false); err != nil {
			return nil, fmt.Errorf("decode step %d: %w", i, err)
		}
	}
	return cands, nil
}

func allDone(cands []*candidate) bool {
	for _, c := range cands {
		if !c.done {
			return false
		}
	}
	return true
}

// lengthPenalty is the reference's MaximumLikelihoodRanker denominator.
func (t *decodeTask) penalty(n int) float64 {
	if t.lengthPenalty == 0 {
		return float64(n)
	}
	return math.Pow((5+float64(n))/6, t.lengthPenalty)
}

// finish ranks the candidates as the reference does (sum logprob / length penalty) and returns
// the best, cut at its first EOT.
func (t *decodeTask) finish(cands []*candidate) *decodeResult {
	best, bestScore := 0, math.Inf(-1)
	for j, c := range cands {
		n := textLen(c.tokens, t.ids.eot)
		score := c.sum / t.penalty(n)
		if j == 0 || score > bestScore {
			best, bestScore = j, score
		}
	}
	c := cands[best]
	n := textLen(c.tokens, t.ids.eot)
	return &decodeResult{
		tokens: c.tokens[:n], logprobs: c.lps[:n], tids: c.tids[:n],
		sumLogProb: c.sum, avgLogProb: c.sum / float64(n+1),
	}
}

// textLen is the number of tokens before the first EOT.
func textLen(toks []int, eot int) int {
	for i, v := range toks {
		if v == eot {
			return i
		}
	}
	return len(toks)
}

// compressionRatio is len(text) / len(zlib(text)) in bytes, the reference's repetition measure.
// Go's deflate is not byte-identical to zlib's, so values can differ from Python's slightly.
func compressionRatio(text string) float64 {
	if text == "" {
		return 0
	}
	var b bytes.Buffer
	w := zlib.NewWriter(&b)
	_, _ = w.Write([]byte(text)) // writes to a bytes.Buffer do not fail
	_ = w.Close()
	return float64(len(text)) / float64(b.Len())
}

// cppTracker is whisper.cpp's per-decoder bookkeeping: whether a timestamp was seen, the seek
// advance it implies, how many tokens to keep, and whether the decoder completed or failed.
type cppTracker struct {
	hasTS             bool
	seekDelta         int
	resultLen         int
	failed, completed bool
}

func newCppTracker() cppTracker { return cppTracker{seekDelta: 3000} }

// push records token tok sampled at step i and reports whether the decoder has stopped.
func (k *cppTracker) push(t *decodeTask, i, tok int) bool {
	if k.failed || k.completed {
		return true
	}
	begin := t.ids.tsBegin
	if tok > begin {
		nd := 2 * (tok - begin)
		if k.hasTS && k.seekDelta > nd && k.resultLen < i {
			k.failed = true // time went back
			return true
		}
		k.seekDelta, k.resultLen, k.hasTS = nd, i+1, true
	}
	const deltaMin = 10 // 100 ms
	atEnd := t.cpp.seek+k.seekDelta+deltaMin >= t.cpp.seekEnd
	if tok == t.ids.eot || (k.hasTS && atEnd) {
		if k.resultLen == 0 && !t.noTimestamps {
			if !atEnd {
				k.failed = true
				return true
			}
			k.resultLen = i + 1
		}
		if t.noTimestamps {
			k.resultLen, k.seekDelta = i+1, 3000
		}
		k.completed = true
		return true
	}
	if i == t.sampleLen-1 && (k.resultLen == 0 || k.seekDelta < 1500) {
		k.failed = true // repetition loop
		return true
	}
	return false
}

// finishCpp selects and trims the result as whisper.cpp does: failed decoders are out of the
// ranking (the first decoder is used if all failed, untrimmed), the others keep their first
// resultLen tokens and are scored by sum logprob / length penalty over those.
func (t *decodeTask) finishCpp(cands []*candidate) *decodeResult {
	type scored struct {
		trk      cppTracker
		sum, avg float64
	}
	best, bestScore := 0, math.Inf(-1)
	infos := make([]scored, len(cands))
	for j, c := range cands {
		trk := newCppTracker()
		for i, tok := range c.tokens {
			if trk.push(t, i, tok) {
				break
			}
		}
		info := scored{trk: trk}
		if !trk.failed && trk.resultLen > 0 {
			for _, v := range c.lps[:trk.resultLen] {
				info.sum += v
			}
			info.avg = info.sum / float64(trk.resultLen)
			p := float64(trk.resultLen)
			if t.lengthPenalty > 0 {
				p = math.Pow((5+p)/6, t.lengthPenalty)
			}
			score := info.sum / p
			if trk.resultLen > 32 && tokenEntropy(c.tokens[:trk.resultLen], 32) < t.entropyThold {
				info.trk.failed = true
			} else if score > bestScore {
				best, bestScore = j, score
			}
		}
		infos[j] = info
	}
	c, info := cands[best], infos[best]
	n := len(c.tokens)
	if !info.trk.failed {
		n = min(n, info.trk.resultLen)
	}
	r := &decodeResult{failed: info.trk.failed, resultLen: info.trk.resultLen, seekDelta: info.trk.seekDelta}
	// Keep the tokens (EOT dropped) and their statistics.
	for i := range n {
		if c.tokens[i] == t.ids.eot {
			continue
		}
		r.tokens = append(r.tokens, c.tokens[i])
		r.logprobs = append(r.logprobs, c.lps[i])
		r.tids = append(r.tids, c.tids[i])
	}
	if info.trk.failed {
		for _, v := range c.lps {
			r.sumLogProb += v
		}
		r.avgLogProb = r.sumLogProb / float64(max(len(c.lps), 1))
	} else {
		r.sumLogProb, r.avgLogProb = info.sum, info.avg
	}
	r.promptTokens = append([]int(nil), c.tokens[:min(info.trk.resultLen, len(c.tokens))]...)
	return r
}

var errNoModel = errors.New("whisper: nil model")
