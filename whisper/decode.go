package whisper

import (
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/verbatimhq/verbatim/tensor"
)

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

// decodeTask is one decoding of one 30 s window at one temperature (the reference's
// DecodingTask), under one set of rules.
type decodeTask struct {
	ids           vocabIDs
	rules         *rules
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
	entropyThold  float64 // whisper.cpp's rules (tracked) only
	// remain is the number of mel frames from the window's start to the end of its audio as
	// whisper.cpp counts them, for its end-of-audio rule (rules.tracked).
	remain int
	text   func([]int) string
	rng    *rand.Rand
}

// taskSpec is what varies between the tasks of one transcription.
type taskSpec struct {
	sot         []int // SOT sequence (without <|notimestamps|>)
	prompt      []int
	temperature float64
	// audioFrames is the number of mel frames of the window's audio, for
	// Options.KeepTimestampsInAudio; 0 or a full window: no limit.
	audioFrames int
	// remain: see decodeTask.remain.
	remain int
	// noMassRule drops the timestamp mass rule (rules.massRule).
	noMassRule bool
	// noTimestamps decodes without timestamps whatever the options say (rules.timestampsOff).
	noTimestamps bool
}

// newDecodeTask builds the task of one window at one temperature: its initial tokens, its logit
// filters and its search, as the rules say.
func newDecodeTask(v vocabIDs, nTextCtx, nAudioCtx int, opts *Options, ru *rules, spec taskSpec, rng *rand.Rand, text func([]int) string) (*decodeTask, error) {
	noTS := opts.NoTimestamps || spec.noTimestamps
	t := &decodeTask{
		ids: v, rules: ru, nTextCtx: nTextCtx, temperature: spec.temperature, noTimestamps: noTS,
		patience: opts.Patience, lengthPenalty: opts.LengthPenalty, text: text, rng: rng,
		entropyThold: opts.CompressionRatioThreshold, remain: spec.remain,
	}
	sot := append([]int(nil), spec.sot...)
	if noTS {
		sot = append(sot, v.noTimestamps)
	}
	if len(spec.prompt) > 0 {
		keep := nTextCtx/2 - ru.promptMargin
		p := spec.prompt[max(0, len(spec.prompt)-keep):]
		t.initial = append(append([]int{v.sotPrev}, p...), sot...)
		t.sotIndex = 1 + len(p)
	} else {
		t.initial = sot
	}
	t.noSpeechIndex = t.sotIndex
	if ru.noSpeechAtPromptEnd {
		t.noSpeechIndex = len(t.initial) - 1
	}
	t.sampleLen = nTextCtx/2 - ru.sampleMargin
	if opts.MaxWindowTokens > 0 {
		t.sampleLen = min(t.sampleLen, opts.MaxWindowTokens)
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
	sup, err := suppressList(v, opts.SuppressTokens, ru.suppressSpecials)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	t.filters = append(t.filters, suppressTokens{ids: sup})
	switch {
	case !noTS:
		maxInit := -1
		if opts.MaxInitialTimestamp > 0 {
			precision := 30.0 / float64(nAudioCtx)
			maxInit = int(math.RoundToEven(opts.MaxInitialTimestamp / precision))
		}
		if opts.KeepTimestampsInAudio && ru.keepTimestampsInAudio && spec.audioFrames > 0 && spec.audioFrames < 2*nAudioCtx {
			// Timestamps are 2 frames (20 ms) apart: the first one at or after the audio's end is
			// the last allowed, and one more for rounding.
			last := (spec.audioFrames+1)/2 + 1
			t.filters = append(t.filters, suppressRange{from: v.tsBegin + last + 1, to: v.nVocab})
		}
		t.filters = append(t.filters, &timestampRules{
			eot: v.eot, noTimestamps: v.noTimestamps, begin: v.tsBegin, maxInitial: maxInit,
			forceFirst: ru.forceFirstTimestamp, repeat: ru.repeatTimestamps, noMassRule: spec.noMassRule,
		})
	case ru.maskTimestampsWhenOff:
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

// prefixInto makes d a copy of c's first n tokens (and their log probabilities and timestamps),
// reusing d's lists where they have room (d is a candidate nothing else holds); sum and done
// are left for the caller to set.
func (c *candidate) prefixInto(d *candidate, n int) *candidate {
	*d = candidate{
		tokens: append(d.tokens[:0], c.tokens[:n]...),
		lps:    append(d.lps[:0], c.lps[:n]...),
		tids:   append(d.tids[:0], c.tids[:n]...),
	}
	return d
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

	// whisper.cpp's rules (tracked)
	failed       bool
	resultLen    int   // tokens kept for the next prompt
	promptTokens []int // those tokens (EOT included when kept)
	seekDelta    int   // frames to advance
}

// search is one task's decoding strategy over its sequences, driven by decodeTasks: greedy or
// sampling (every sequence on its own, sampler) or beam search (the sequences compete, beams).
type search interface {
	// next consumes the logits of the task's sequences (nGroup rows of NVocab, filtered in
	// place) at sampled position i and returns the next token of each, and, when sequences
	// continue from others' caches (beam search), the sequence each continues from (nil: itself).
	// done reports that the task needs no more steps.
	next(i int, logits []float32) (toks []int32, src []int, done bool, err error)
	// candidates are the sequences the task's result is chosen from.
	candidates() []*candidate
	// rows are the sequences of the task's rows of the batch, in order.
	rows() []*candidate
}

// picker is a search that can take its tokens from picks made where the logits are (greedy at
// temperature 0, one sequence).
type picker interface {
	// picked records the pick of sampled position i and reports whether the task is done.
	picked(i int, p tensor.Pick) bool
}

// topPicker is a search that can take its tokens from each row's best tokens ranked where the
// logits are (beam search at temperature 0): next, from picks and top (k a row) instead of
// the logits.
type topPicker interface {
	pickedTop(i int, picks []tensor.Pick, top []tensor.Cand, k int) (toks []int32, src []int, done bool, err error)
}

func (t *decodeTask) newSearch() search {
	if t.beamSize > 1 {
		return newBeams(t)
	}
	return newSampler(t)
}

// canPick reports whether the task's next tokens can be picked greedily where the logits are.
func (t *decodeTask) canPick() bool {
	return t.beamSize <= 1 && t.nGroup == 1 && t.temperature == 0
}

// canTop reports whether the task's next tokens can be chosen from each row's best tokens ranked
// where the logits are (beam search, at temperature 0 by construction).
func (t *decodeTask) canTop() bool {
	return t.beamSize > 1 && t.beamSize+1 <= tensor.MaxTopK
}

// rowKeeper is a stepper that can drop sequences from its batch (*Session).
type rowKeeper interface {
	// keepRows keeps the sequences at rows (increasing), in that order, and drops the others.
	keepRows(rows []int) error
}

// decodeTasks is the one decoding loop: it decodes every task on s, which holds their
// sequences one task after another (task i's nGroup sequences from the sum of the earlier
// tasks' nGroup), all empty. Greedy, sampling and beam search tasks share the prefill (the
// no-speech probability included) and the steps; each task's search chooses its tokens. The
// tasks may belong to different windows and inputs, but their initial tokens must be equally
// long with the no-speech position at the same index, and their length limits equal. A task
// that is done leaves the batch when s can drop rows (a quarter of the batch at a time); when
// every task left decodes greedily at temperature 0 and s can pick where the logits are
// (pickStepper), only the picks are read back; when every task left decodes greedily or by beam
// search and s ranks where the logits are (topStepper), only each row's best beamSize+1 tokens.
// Each task's result is what it gives decoded alone, up to the backend's rounding where a batch
// mixes windows. ctx is checked before every
// step, so that a cancelled run stops within a decoder step.
func decodeTasks(ctx context.Context, s stepper, tasks []*decodeTask) ([]*decodeResult, error) {
	if len(tasks) == 0 {
		return nil, nil
	}
	t0 := tasks[0]
	for _, u := range tasks[1:] {
		if len(u.initial) != len(t0.initial) || u.noSpeechIndex != t0.noSpeechIndex || u.sampleLen != t0.sampleLen || u.nTextCtx != t0.nTextCtx {
			return nil, errors.New("decode: tasks with different prompt lengths in one batch")
		}
	}
	V := t0.ids.nVocab
	// order lists the tasks whose sequences are in s, in row order.
	order := make([]int, len(tasks))
	rows := 0
	for i, t := range tasks {
		order[i] = i
		rows += t.nGroup
	}
	rowsOf := func(from, to int) [][]int32 {
		out := make([][]int32, 0, rows)
		for _, t := range tasks {
			row := make([]int32, to-from)
			for j, id := range t.initial[from:to] {
				row[j] = int32(id)
			}
			for range t.nGroup {
				out = append(out, row)
			}
		}
		return out
	}
	first := len(t0.initial)
	if k := t0.noSpeechIndex; k < first-1 {
		first = k + 1
	}
	searches := make([]search, len(tasks))
	for i, t := range tasks {
		searches[i] = t.newSearch()
	}
	done := make([]bool, len(tasks))
	keeper, canKeep := s.(rowKeeper)
	ps, canPick := s.(pickStepper)
	tps, canTop := s.(topStepper)
	var pm pickMasks
	var prows []tensor.PickRow
	var picks []tensor.Pick
	var top []tensor.Cand
	var logits []float32
	usePicks := false // picks (and top, k a row), not logits, hold this step's choices
	// masks makes the step's pick rows: every live beam's, from its tokens so far, while the
	// device runs the step (stepMasks).
	masks := func() ([][]uint32, []tensor.PickRow) {
		prows = prows[:0]
		for _, ti := range order {
			t := tasks[ti]
			if done[ti] {
				for range t.nGroup {
					prows = append(prows, tensor.PickRow{Mask: -1, TSBegin: int32(t.ids.tsBegin)})
				}
				continue
			}
			for _, c := range searches[ti].rows() {
				prows = append(prows, pm.row(t, c.tokens))
			}
		}
		return pm.bitmaps, prows
	}
	k := 1
	// advance runs the step that appends next to the sequences in order: where every task left
	// can take its tokens from picks made where the logits are, only those are read back
	// (usePicks); otherwise the logits.
	advance := func(next [][]int32) error {
		pick := canPick
		k = 1
		for _, ti := range order {
			switch t := tasks[ti]; {
			case done[ti] || t.canPick():
			case canTop && t.canTop():
				k = max(k, t.beamSize+1)
			default:
				pick = false
			}
		}
		if !pick {
			var err error
			usePicks = false
			logits, err = s.Step(next, false)
			return err
		}
		picks = slices.Grow(picks[:0], rows)[:rows]
		usePicks = true
		if k > 1 {
			top = slices.Grow(top[:0], rows*k)[:rows*k]
			return tps.StepTop(next, masks, k, picks, top)
		}
		return ps.StepPick(next, masks, picks)
	}
	// The prompt: the no-speech probability at its position (only that crosses to the host where
	// the stepper says it can: tokenProber), then the first sampled step's picks or logits at
	// its end.
	noSpeech := make([]float64, len(tasks))
	if tp, ok := s.(tokenProber); ok && first < len(t0.initial) {
		ids := make([]int, 0, rows)
		for _, t := range tasks {
			for range t.nGroup {
				ids = append(ids, t.ids.noSpeech)
			}
		}
		lp, err := tp.StepLogProbs(rowsOf(0, first), ids)
		if err != nil {
			return nil, fmt.Errorf("decode prompt: %w", err)
		}
		at := 0
		for i, t := range tasks {
			noSpeech[i] = math.Exp(lp[at])
			at += t.nGroup
		}
	} else {
		var err error
		if logits, err = s.Step(rowsOf(0, first), false); err != nil {
			return nil, fmt.Errorf("decode prompt: %w", err)
		}
		if len(logits) != rows*V {
			return nil, fmt.Errorf("decode prompt: %d logits, want %d", len(logits), rows*V)
		}
		at := 0
		for i, t := range tasks {
			noSpeech[i] = tokenProb(logits[at*V:(at+1)*V], t.ids.noSpeech)
			at += t.nGroup
		}
	}
	if first < len(t0.initial) {
		if err := advance(rowsOf(first, len(t0.initial))); err != nil {
			return nil, fmt.Errorf("decode prompt: %w", err)
		}
	}
	eot := int32(t0.ids.eot)
	var err error
	for i := 0; i < t0.sampleLen; i++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("decode step %d: %w", i, err)
		}
		next := make([][]int32, 0, rows)
		flat := make([]int32, 0, rows) // next's tokens, one a row, in one allocation
		var src []int                  // the sequence each row continues from, when a search reorders
		idle, live := 0, 0
		at := 0
		for _, ti := range order {
			t := tasks[ti]
			var toks []int32
			var from []int
			switch {
			case done[ti]:
				for range t.nGroup {
					toks = append(toks, eot)
				}
			case usePicks && t.beamSize > 1:
				var d bool
				toks, from, d, err = searches[ti].(topPicker).pickedTop(i, picks[at:at+t.nGroup], top[at*k:(at+t.nGroup)*k], k)
				if err != nil {
					return nil, fmt.Errorf("decode step %d: %w", i, err)
				}
				done[ti] = d
			case usePicks:
				toks = []int32{picks[at].Token}
				done[ti] = searches[ti].(picker).picked(i, picks[at])
				if toks[0] < 0 {
					toks[0] = eot
				}
			default:
				var d bool
				toks, from, d, err = searches[ti].next(i, logits[at*V:(at+t.nGroup)*V])
				if err != nil {
					return nil, fmt.Errorf("decode step %d: %w", i, err)
				}
				done[ti] = d
			}
			if from != nil && src == nil {
				src = make([]int, at, rows)
				for r := range at {
					src[r] = r
				}
			}
			for r := range t.nGroup {
				if src == nil {
					break
				}
				if from != nil {
					src = append(src, at+from[r])
				} else {
					src = append(src, at+r)
				}
			}
			for _, tok := range toks {
				flat = append(flat, tok)
				next = append(next, flat[len(flat)-1:len(flat):len(flat)])
			}
			if done[ti] {
				idle += t.nGroup
			} else {
				live++
			}
			at += t.nGroup
		}
		if live == 0 || len(t0.initial)+i+1 > t0.nTextCtx || i+1 == t0.sampleLen {
			break
		}
		if src != nil {
			if err := s.Reorder(src); err != nil {
				return nil, fmt.Errorf("decode step %d: %w", i, err)
			}
		}
		if canKeep && idle > 0 && idle >= rows/4 {
			var keep []int
			var keepNext [][]int32
			var keepOrder []int
			at := 0
			for _, ti := range order {
				n := tasks[ti].nGroup
				if !done[ti] {
					for r := at; r < at+n; r++ {
						keep, keepNext = append(keep, r), append(keepNext, next[r])
					}
					keepOrder = append(keepOrder, ti)
				}
				at += n
			}
			if err := keeper.keepRows(keep); err != nil {
				return nil, fmt.Errorf("decode step %d: %w", i, err)
			}
			order, next, rows = keepOrder, keepNext, len(keep)
		}
		if err := advance(next); err != nil {
			return nil, fmt.Errorf("decode step %d: %w", i, err)
		}
	}
	out := make([]*decodeResult, len(tasks))
	for i, t := range tasks {
		var r *decodeResult
		if t.rules.tracked {
			r = t.finishCpp(searches[i].candidates())
		} else {
			r = t.finish(searches[i].candidates())
		}
		r.noSpeechProb = noSpeech[i]
		r.temperature = t.temperature
		r.text = t.text(r.tokens)
		r.compressionRatio = compressionRatio(r.text)
		out[i] = r
	}
	return out, nil
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
	if t.rules.scaleFirst && t.temperature > 0 {
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

// sampler is greedy decoding (temperature 0) or sampling with best-of (the reference's
// GreedyDecoder): every sequence continues until EOT or the length limit; under whisper.cpp's
// rules its tracker may stop it earlier.
type sampler struct {
	t       *decodeTask
	cands   []*candidate
	tracks  []cppTracker
	scratch [][]float64 // a row's softmax weights when sampling, one per candidate
	temp    float64
}

func newSampler(t *decodeTask) *sampler {
	s := &sampler{t: t, cands: make([]*candidate, t.nGroup), tracks: make([]cppTracker, t.nGroup), temp: t.temperature}
	for j := range s.cands {
		s.cands[j] = &candidate{}
		s.tracks[j] = newCppTracker()
	}
	if t.rules.scaleFirst && s.temp > 0 {
		s.temp = 1 // the logits are divided already (filter)
	}
	return s
}

func (s *sampler) candidates() []*candidate { return s.cands }

func (s *sampler) rows() []*candidate { return s.cands }

func (s *sampler) next(i int, logits []float32) ([]int32, []int, bool, error) {
	t := s.t
	V := t.ids.nVocab
	n := len(s.cands)
	toks := make([]int32, n)
	lses, tids, toksOf := make([]float64, n), make([]int, n), make([]int, n)
	sums, drawn, ok := make([]float64, n), make([]float64, n), make([]bool, n)
	sampling := s.temp != 0
	if sampling {
		for len(s.scratch) < n {
			s.scratch = append(s.scratch, make([]float64, V))
		}
	}
	// The rows in parallel (the host's share of a step: each row's filters, log-sum-exp and
	// softmax weights over the whole vocabulary), every row's arithmetic its own as on one
	// goroutine; then the draws from the task's generator in row order, one for each row with an
	// allowed token, as before.
	tensor.EachRow(n, func(j int) {
		if s.cands[j].done {
			return
		}
		row := logits[j*V : (j+1)*V]
		lses[j], tids[j] = t.filter(row, s.cands[j].tokens)
		toksOf[j] = -1 // everything masked, until drawn
		if !sampling {
			toksOf[j] = argmax(row)
		} else {
			sums[j], ok[j] = sampleWeights(row, s.temp, s.scratch[j])
		}
	})
	if sampling {
		for j, c := range s.cands {
			if !c.done && ok[j] {
				drawn[j] = t.rng.Float64() * sums[j]
			}
		}
		tensor.EachRow(n, func(j int) {
			if !s.cands[j].done && ok[j] {
				toksOf[j] = drawIndex(s.scratch[j][:V], drawn[j])
			}
		})
	}
	for j, c := range s.cands {
		if c.done {
			toks[j] = int32(t.ids.eot)
			continue
		}
		tok := toksOf[j]
		if tok < 0 { // everything masked
			tok = t.ids.eot
		}
		s.push(j, i, tok, float64(logits[j*V+tok])-lses[j], tids[j])
		toks[j] = int32(tok)
	}
	return toks, nil, allDone(s.cands), nil
}

func (s *sampler) picked(i int, p tensor.Pick) bool {
	tok, lp := int(p.Token), p.LogProb
	if tok < 0 { // nothing allowed: as next does
		tok, lp = s.t.ids.eot, math.NaN()
	}
	s.push(0, i, tok, lp, int(p.TS))
	return allDone(s.cands)
}

// push appends token tok, sampled at position i with log probability lp, to sequence j.
func (s *sampler) push(j, i, tok int, lp float64, tid int) {
	c := s.cands[j]
	c.push(tok, lp, tid)
	c.sum += lp
	if tok == s.t.ids.eot {
		c.done = true
	}
	if s.t.rules.tracked && s.tracks[j].push(s.t, i, tok) {
		c.done = true
	}
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
	w := zlibWriters.Get().(*zlib.Writer)
	defer zlibWriters.Put(w)
	w.Reset(&b)
	_, _ = w.Write([]byte(text)) // writes to a bytes.Buffer do not fail
	_ = w.Close()
	return float64(len(text)) / float64(b.Len())
}

// zlibWriters are compressionRatio's writers, reset for each text: a new one allocates and clears
// some 600 KB of deflate state (0.04 s of the host's time in a turbo run of bench --e2e --decode
// default on a GPU).
var zlibWriters = sync.Pool{New: func() any { return zlib.NewWriter(nil) }}

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
	atEnd := k.seekDelta+deltaMin >= t.remain
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
