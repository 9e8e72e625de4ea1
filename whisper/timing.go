package whisper

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/verbatimhq/verbatim/tensor"
)

// Word timing follows openai/whisper (timing.py): after a window is decoded, the decoder runs
// once more over the SOT sequence, <|notimestamps|>, the window's text tokens and EOT (a forced
// pass); the cross-attention probabilities of the alignment heads over the window's audio frames
// are normalized per head, median filtered, averaged, and aligned to the tokens by dynamic time
// warping; token boundaries become times and tokens are grouped into words.

// Word is one word of a segment with its time span in seconds from the start of the input.
type Word struct {
	Text       string  // as in the transcript, with its leading space and merged punctuation
	Start, End float64 // seconds, rounded to 10 ms
	P          float64 // mean probability of its tokens in the forced pass
}

const (
	// prependPunctuations and appendPunctuations are the reference's defaults: such a word is
	// merged into the word that follows or precedes it.
	prependPunctuations = "\"'“¿([{-"
	appendPunctuations  = "\"'.。,，!！?？:：”)]}、"
	// sentenceEndMarks end sentences; words next to them are kept short (see clampSentenceEnds).
	sentenceEndMarks = ".。!！?？"
	medianWidth      = 7                               // median filter width over audio frames
	framesPerToken   = 2                               // mel frames per audio context position
	positionSeconds  = float64(framesPerToken) / 100.0 // 20 ms per audio context position
)

// wordTiming is one word of a window's alignment: its text, the indices of its tokens among the
// window's text tokens, its span in seconds from the window start and its mean token
// probability. Punctuation merged into a neighbour leaves an entry with empty text.
type wordTiming struct {
	text       string
	toks       []int
	start, end float64
	p          float64
}

// forcedCaches returns self-attention caches for batch sequences without disturbing the model's
// pool: a view of the first sequences of the pooled caches when they are enough (the forced pass
// runs between two decodings, which reuse them), else new ones that go to the pool afterwards.
func (m *Model) forcedCaches(batch int) (kv *kvCaches, release func()) {
	if p := m.pool; p != nil && p.batch >= batch {
		kv = &kvCaches{batch: batch}
		for i := range p.k {
			kv.k = append(kv.k, p.k[i].Slice(0, batch))
			kv.v = append(kv.v, p.v[i].Slice(0, batch))
		}
		return kv, func() {}
	}
	kv = m.takeCaches(batch)
	return kv, func() { m.putCaches(kv) }
}

// forcedIDs checks a forced pass's tokens against the vocabulary and returns them as ids.
func (m *Model) forcedIDs(tokens []int) ([]int32, error) {
	ids := make([]int32, len(tokens))
	for i, t := range tokens {
		if t < 0 || t >= m.Config.NVocab {
			return nil, fmt.Errorf("forced pass: token %d outside the vocabulary of %d", t, m.Config.NVocab)
		}
		ids[i] = int32(t)
	}
	return ids, nil
}

// alignProbs computes, layer by layer, the alignment heads' cross-attention probabilities of a
// forced sequence (forcedPass's hook): either from one AttentionProbs call (all heads of the
// layer, on a backend implementing [tensor.AttentionWeights]) with the heads needed copied out,
// or, head by head, from Transpose, MatMul and Softmax (see probsMode). Its scratch tensors are
// made on first use and grown when a sequence needs more.
type alignProbs struct {
	m               *Model
	heads           []alignHead
	byLayer         [][]int // per decoder layer, the indexes in heads of its heads
	mode            probsMode
	aw              tensor.AttentionWeights
	all, qT, kT, kw *tensor.Tensor
}

func (m *Model) newAlignProbs(heads []alignHead, mode probsMode) (*alignProbs, error) {
	c := m.Config
	if len(heads) == 0 {
		return nil, errors.New("forced pass: no alignment heads")
	}
	a := &alignProbs{m: m, heads: heads, byLayer: make([][]int, c.NTextLayer), mode: mode}
	for j, h := range heads {
		if h.layer < 0 || h.layer >= c.NTextLayer || h.head < 0 || h.head >= c.NTextHead {
			return nil, fmt.Errorf("forced pass: head %d of layer %d outside a %dx%d decoder", h.head, h.layer, c.NTextLayer, c.NTextHead)
		}
		a.byLayer[h.layer] = append(a.byLayer[h.layer], j)
	}
	a.aw, _ = m.b.(tensor.AttentionWeights)
	return a, nil
}

// scratch returns a view of shape over the start of *t, a flat buffer grown (reallocated) only
// when too small, so that a batch's sequences of different lengths and frames share it.
func (a *alignProbs) scratch(t **tensor.Tensor, shape ...int) *tensor.Tensor {
	n := tensor.Numel(shape)
	if *t != nil && (*t).Len() < n {
		a.m.b.Free(*t)
		*t = nil
	}
	if *t == nil {
		*t = allocExplicit(a.m.b, tensor.F32, n)
	}
	return (*t).Slice(0, n).Reshape(shape...)
}

func (a *alignProbs) free() {
	for _, t := range []*tensor.Tensor{a.all, a.qT, a.kT, a.kw} {
		if t != nil {
			a.m.b.Free(t)
		}
	}
	a.all, a.qT, a.kT, a.kw = nil, nil, nil, nil
}

// useFused reports whether layer's probabilities come from AttentionProbs: with probsAuto where
// the layer needs more than half of its heads.
func (a *alignProbs) useFused(layer int) bool {
	switch {
	case a.aw == nil || a.mode == probsMatMul:
		return false
	case a.mode == probsFused:
		return true
	}
	return 2*len(a.byLayer[layer]) > a.m.Config.NTextHead
}

// layer writes the probabilities of the alignment heads of layer into out ([len(heads), n,
// frames]) from the layer's cross-attention queries q ([1, n, d]) and the window's keys k ([1,
// NAudioCtx, d]): softmax(q k^T scale) over the first frames audio positions.
func (a *alignProbs) layer(layer int, q, k, out *tensor.Tensor, frames int) {
	js := a.byLayer[layer]
	if len(js) == 0 {
		return
	}
	b, c := a.m.b, a.m.Config
	d, nh, n := c.NTextState, c.NTextHead, q.Dim(1)
	hd := d / nh
	scale := float32(1 / math.Sqrt(float64(hd)))
	if a.useFused(layer) {
		if j0, ok := wholeLayer(a.heads, js, nh); ok {
			// The layer's heads in order are a slice of out already in AttentionProbs'
			// layout: no [nh, n, frames] buffer and no copies.
			a.aw.AttentionProbs(out.Slice(j0, j0+nh).Reshape(1, nh, n, frames), q, k, nh, frames, scale, false)
			return
		}
		all := a.scratch(&a.all, 1, nh, n, frames)
		a.aw.AttentionProbs(all, q, k, nh, frames, scale, false)
		perHead := all.Reshape(nh, n, frames)
		for _, j := range js {
			h := a.heads[j].head
			b.Copy(out.Slice(j, j+1), perHead.Slice(h, h+1))
		}
		return
	}
	qT, kT := a.scratch(&a.qT, d, n), a.scratch(&a.kT, d, frames)
	// Heads are interleaved in the last dimension: transposed, head h is rows
	// [h*hd, (h+1)*hd), a contiguous view.
	b.Transpose(qT, q.Reshape(n, d))
	kf := k.Reshape(c.NAudioCtx, d).Slice(0, frames)
	if kf.DType != tensor.F32 {
		// 16-bit cross K (tensor.HalfKV): widen the frames used, as Transpose takes F32.
		kw := a.scratch(&a.kw, frames, d)
		b.Copy(kw, kf)
		kf = kw
	}
	b.Transpose(kT, kf)
	qh, kh := qT.Reshape(nh, hd, n), kT.Reshape(nh, hd, frames)
	for _, j := range js {
		h := a.heads[j].head
		o := out.Slice(j, j+1)
		b.MatMul(o, qh.Slice(h, h+1), kh.Slice(h, h+1), true, false, scale)
		b.Softmax(o, o)
	}
}

// forcedPass runs the decoder over tokens (all positions at once) against window w of enc,
// passes the logits of each position i in turn to logit (nil: none are computed; row is valid
// during the call only), and returns the cross-attention probabilities of heads,
// [len(heads), len(tokens), frames]: softmax(q k^T / sqrt(head width)) over the first frames
// audio positions only (the window's real audio), as the reference computes them for timing.
//
// The logits are computed forcedRows positions at a time, so that no buffer of
// len(tokens) x NVocab floats is made (a full window's 448 positions of a multilingual model:
// 93 MB, twice over with the copy to the host).
//
// A layer's probabilities come either from one AttentionProbs call (all heads of the layer, on a
// backend implementing [tensor.AttentionWeights]) with the heads needed copied out, or, head by
// head, from Transpose, MatMul and Softmax; mode picks (probsAuto: AttentionProbs where a layer
// needs more than half of its heads).
//
// want, if not nil, asks for the log-probability of one token at each of a range of positions
// (tokenLogProbs); it is filled in before forcedPass returns.
func (m *Model) forcedPass(enc *Encoded, w int, tokens []int, frames int, heads []alignHead, mode probsMode, logit func(i int, row []float32), want *tokenLogProbs) (probs []float32, err error) {
	defer tensor.Catch(&err)
	c := m.Config
	n := len(tokens)
	if err := m.forcedCheck(enc, w, n, frames); err != nil {
		return nil, err
	}
	ap, err := m.newAlignProbs(heads, mode)
	if err != nil {
		return nil, err
	}
	defer ap.free()
	ids, err := m.forcedIDs(tokens)
	if err != nil {
		return nil, err
	}

	b := m.b
	s := &Session{m: m, enc: enc, batch: 1, window: []int{w}, ids: ids}
	kv, release := m.forcedCaches(1)
	defer release()
	s.kv = kv
	s.setRuns()
	defer s.freeWRuns() // the session is not closed: its caches are the model's (release)

	out := allocExplicit(b, tensor.F32, len(heads), n, frames)
	defer b.Free(out)
	hook := func(layer int, q *tensor.Tensor) {
		ap.layer(layer, q, enc.crossK[layer].Slice(w, w+1), out, frames)
	}
	d := c.NTextState
	v := m.decViews(1, n, logitsRows)
	m.decodeLayers(s, n, v, hook)
	m.logits(v, n, logitsRows)
	if logit != nil {
		m.forcedLogits(v.h.Reshape(n, d), v.logits, logit)
	}
	if want != nil {
		if err := m.forcedLogProbs(v.h.Reshape(n, d), v.logits, want); err != nil {
			return nil, err
		}
	}
	return b.ToF32(out), nil
}

// forcedCheck is forcedPass's check of its window (w of enc), its n tokens and its frames.
func (m *Model) forcedCheck(enc *Encoded, w, n, frames int) error {
	c := m.Config
	switch {
	case m.closed:
		return ErrClosed
	case enc == nil || enc.closed:
		return fmt.Errorf("forced pass: %w", ErrClosed)
	case enc.m != m:
		return errors.New("forced pass: encoder output of another model")
	case w < 0 || w >= enc.Windows():
		return fmt.Errorf("forced pass: window %d of %d", w, enc.Windows())
	case n == 0 || n > c.NTextCtx:
		return fmt.Errorf("forced pass: %d tokens for a %d-token context: %w", n, c.NTextCtx, ErrContextFull)
	case frames < 1 || frames > c.NAudioCtx:
		return fmt.Errorf("forced pass: %d audio frames of %d", frames, c.NAudioCtx)
	}
	return nil
}

// tokenLogProbs asks forcedPass for the log-probability of ids[i] at position from+i, among the
// tokens below limit (word timing's probability of each text token among the text tokens).
type tokenLogProbs struct {
	from, limit int
	ids         []int
	lp          []float64 // filled in: one per id
}

// check reports whether want's positions lie within a sequence of n and its tokens below its
// limit, itself within a vocabulary of nv.
func (want *tokenLogProbs) check(n, nv int) error {
	from, to := want.from, want.from+len(want.ids)
	switch {
	case from < 0 || to > n:
		return fmt.Errorf("forced pass: log-probabilities at positions [%d, %d) of %d", from, to, n)
	case want.limit < 1 || want.limit > nv:
		return fmt.Errorf("forced pass: log-probabilities among %d tokens of %d", want.limit, nv)
	}
	for _, id := range want.ids {
		if id < 0 || id >= want.limit {
			return fmt.Errorf("forced pass: log-probability of token %d among %d", id, want.limit)
		}
	}
	return nil
}

// forcedLogProbs computes want's log-probabilities from the final hidden states h ([n, d]), the
// logits forcedRows positions at a time in buf ([rows, NVocab]) as forcedLogits does, each chunk's
// through logProbsOf (where the backend picks on the device, two logits a position cross to the
// host).
func (m *Model) forcedLogProbs(h, buf *tensor.Tensor, want *tokenLogProbs) error {
	n, rows, nv := h.Dim(0), buf.Dim(0), buf.Dim(1)
	from, to := want.from, want.from+len(want.ids)
	if err := want.check(n, nv); err != nil {
		return err
	}
	want.lp = make([]float64, len(want.ids))
	var host []float32
	ids := make([]int, rows)
	for r0 := from; r0 < to; r0 += rows {
		lo, end := min(r0, n-rows), min(to, r0+rows)
		m.b.Linear(buf, h.Slice(lo, lo+rows), m.dec.tokEmb, nil)
		for r := range ids {
			ids[r] = -1
			if p := lo + r; p >= r0 && p < end {
				ids[r] = want.ids[p-from]
			}
		}
		lp := logProbsOf(m.b, buf, ids, want.limit, &host)
		copy(want.lp[r0-from:end-from], lp[r0-lo:end-lo])
	}
	return nil
}

// forcedRows is the number of positions forcedPass computes logits for at a time. It is more
// than 8 so that every chunk of a pass longer than that takes the same kernels as one Linear over
// all its positions would (the CPU multiplies up to 8 rows by a quantized matrix with int8
// activations): the logits are bitwise those of a single call.
const forcedRows = 16

// forcedLogits computes the logits of the final hidden states h ([n, d]) in chunks of the rows
// of buf ([rows, NVocab]; rows = min(n, forcedRows)) and passes each position's row to logit in
// order. The last chunk ends at row n and may overlap the one before it, so that every chunk has
// the same number of rows.
func (m *Model) forcedLogits(h, buf *tensor.Tensor, logit func(i int, row []float32)) {
	b := m.b
	n, rows, nv := h.Dim(0), buf.Dim(0), buf.Dim(1)
	var host []float32
	for r0 := 0; r0 < n; r0 += rows {
		lo := min(r0, n-rows)
		b.Linear(buf, h.Slice(lo, lo+rows), m.dec.tokEmb, nil)
		vals := readInto(b, buf, &host)
		for i := r0; i < min(n, r0+rows); i++ {
			logit(i, vals[(i-lo)*nv:(i-lo+1)*nv])
		}
	}
}

// wholeLayer reports whether the alignment heads js (indexes into heads, of one layer) are all
// nh heads of the layer in order at consecutive indexes, and returns the first index.
func wholeLayer(heads []alignHead, js []int, nh int) (int, bool) {
	if len(js) != nh {
		return 0, false
	}
	for i, j := range js {
		if j != js[0]+i || heads[j].head != i {
			return 0, false
		}
	}
	return js[0], true
}

// probsMode says how forcedPass computes attention probabilities.
type probsMode int

const (
	probsAuto   probsMode = iota // AttentionProbs for layers that need most of their heads
	probsFused                   // AttentionProbs whenever the backend has it
	probsMatMul                  // Transpose, MatMul and Softmax, only the heads needed
)

// alignJumps turns the alignment heads' cross-attention probabilities probs ([nHeads, rows,
// frames], every position of the forced sequence; modified) into the time, in seconds from the
// window start, at which each of the rows [first, rows-1) begins, as the reference's
// find_alignment: z-score each head over the rows, median filter along time, average the heads,
// and find the least-cost path through the negated matrix of the chosen rows by DTW. The first
// chosen row is <|notimestamps|> (predicting the first text token), and the last chosen row is
// the last text token (predicting EOT), so the result has one entry more than the text tokens:
// token i spans [jumps[i], jumps[i+1]).
func alignJumps(probs []float32, nHeads, rows, frames, first int) []float64 {
	nr := rows - 1 - first
	if nr <= 0 || frames <= 0 || len(probs) != nHeads*rows*frames {
		return nil
	}
	mean, inv := make([]float64, frames), make([]float64, frames)
	for h := range nHeads {
		x := probs[h*rows*frames : (h+1)*rows*frames]
		clear(mean)
		clear(inv)
		for r := range rows {
			for f, v := range x[r*frames : (r+1)*frames] {
				mean[f] += float64(v)
			}
		}
		for f := range mean {
			mean[f] /= float64(rows)
		}
		for r := range rows {
			for f, v := range x[r*frames : (r+1)*frames] {
				dv := float64(v) - mean[f]
				inv[f] += dv * dv
			}
		}
		for f, ss := range inv {
			inv[f] = 0 // a frame every row attends to equally carries no timing
			if ss > 0 {
				inv[f] = 1 / math.Sqrt(ss/float64(rows))
			}
		}
		for r := range rows {
			row := x[r*frames : (r+1)*frames]
			for f, v := range row {
				row[f] = float32((float64(v) - mean[f]) * inv[f])
			}
		}
		medianFilter(x, rows, frames, medianWidth)
	}
	cost := make([]float32, nr*frames)
	for r := range nr {
		row := cost[r*frames : (r+1)*frames]
		for h := range nHeads {
			src := probs[(h*rows+first+r)*frames:]
			for f := range row {
				row[f] += src[f]
			}
		}
		for f := range row {
			row[f] = -row[f] / float32(nHeads)
		}
	}
	pathRows, pathCols := dtw(cost, nr, frames)
	jumps := make([]float64, nr)
	seen := make([]bool, nr)
	for k, r := range pathRows {
		if !seen[r] {
			seen[r] = true
			jumps[r] = float64(pathCols[k]) * positionSeconds
		}
	}
	for r := 1; r < nr; r++ { // only with non-finite costs can the path skip a row
		if !seen[r] {
			jumps[r] = jumps[r-1]
		}
	}
	return jumps
}

// alignWords makes the words of an alignment from SplitWords' words and token groups of the
// text tokens followed by EOT (the EOT word is dropped), the token times jumps (see alignJumps)
// and the text tokens' probabilities.
func alignWords(words []string, groups [][]int, jumps, tokenP []float64) []wordTiming {
	if len(groups) <= 1 {
		return nil
	}
	out := make([]wordTiming, 0, len(groups)-1)
	at := 0
	for i := range len(groups) - 1 {
		end := at + len(groups[i])
		if end >= len(jumps) || end > len(tokenP) {
			break // cannot happen: the groups cover the text tokens
		}
		var p float64
		toks := make([]int, 0, end-at)
		for k := at; k < end; k++ {
			p += tokenP[k]
			toks = append(toks, k)
		}
		out = append(out, wordTiming{text: words[i], toks: toks, start: jumps[at], end: jumps[end], p: p / float64(end-at)})
		at = end
	}
	return out
}

// medianDuration is the reference's median word duration: the median of the nonzero durations,
// at most 0.7 s (0 when there are none).
func medianDuration(words []wordTiming) float64 {
	var d []float64
	for _, w := range words {
		if v := w.end - w.start; v != 0 {
			d = append(d, v)
		}
	}
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	med := d[len(d)/2]
	if len(d)%2 == 0 {
		med = (d[len(d)/2-1] + d[len(d)/2]) / 2
	}
	return min(0.7, med)
}

// clampSentenceEnds keeps words at sentence ends no longer than maxDur: a sentence-end mark
// ends at most maxDur after its start, and a word after one starts at most maxDur before its
// end (the reference's hack for long words at sentence boundaries). Marks are matched as the
// reference does, as substrings of sentenceEndMarks.
func clampSentenceEnds(words []wordTiming, maxDur float64) {
	for i := 1; i < len(words); i++ {
		w := &words[i]
		if w.end-w.start <= maxDur {
			continue
		}
		switch {
		case strings.Contains(sentenceEndMarks, w.text):
			w.end = w.start + maxDur
		case strings.Contains(sentenceEndMarks, words[i-1].text):
			w.start = w.end - maxDur
		}
	}
}

// mergePunctuations merges a word made of prepended punctuation (with a leading space) into the
// word after it, and a word made of appended punctuation into the word before it unless that
// one ends with a space; the merged word keeps its own times and the absorbed entry is left
// empty, as the reference's merge_punctuations.
func mergePunctuations(words []wordTiming, prepended, appended string) {
	for i, j := len(words)-2, len(words)-1; i >= 0; i-- {
		prev, next := &words[i], &words[j]
		if strings.HasPrefix(prev.text, " ") && strings.Contains(prepended, strings.TrimSpace(prev.text)) {
			next.text = prev.text + next.text
			next.toks = append(slices.Clone(prev.toks), next.toks...)
			prev.text, prev.toks = "", nil
		} else {
			j = i
		}
	}
	for i, j := 0, 1; j < len(words); j++ {
		prev, next := &words[i], &words[j]
		if !strings.HasSuffix(prev.text, " ") && strings.Contains(appended, next.text) {
			prev.text += next.text
			prev.toks = append(prev.toks, next.toks...)
			next.text, next.toks = "", nil
		} else {
			i = j
		}
	}
}

// round2 rounds to 10 ms, as the reference rounds word times.
func round2(x float64) float64 { return math.Round(x*100) / 100 }

// placeWords gives the segments of a window (in order, their text tokens together being the
// aligned text) their words and token times: the reference's add_word_timestamps after the
// alignment, with offset the window start in seconds, lastSpeech the end of speech before the
// window (the last word's end, or the last segment's without words), and floor the end of the
// segment before the window. With retime, segments take their words' span as the reference
// does; without, segment times stay as they are.
//
// After the reference's adjustments (which can leave a word outside its segment or before the
// previous word in rare cases), every word is clamped into its segment and after the previous
// word, and with retime every segment starts at or after the previous one's end, so that times
// are monotonic and never overlap.
func placeWords(segs []*Segment, align []wordTiming, jumps []float64, offset, lastSpeech, floor float64, retime bool) {
	median := medianDuration(align)
	maxDur := 2 * median
	wi, base := 0, 0
	wordFloor := lastSpeech
	for _, seg := range segs {
		nt := len(seg.Tokens)
		var words []Word
		owner := map[int]int{} // text token index -> index in words
		for saved := 0; wi < len(align) && saved < nt; wi++ {
			a := align[wi]
			if a.text != "" {
				for _, k := range a.toks {
					owner[k] = len(words)
				}
				words = append(words, Word{Text: a.text, Start: round2(offset + a.start), End: round2(offset + a.end), P: a.p})
			}
			saved += len(a.toks)
		}
		if len(words) > 0 {
			first := &words[0]
			// A first word after a pause is kept short (the reference's hack for segment starts).
			if first.End-lastSpeech > 4*median && (first.End-first.Start > maxDur ||
				(len(words) > 1 && words[1].End-first.Start > 2*maxDur)) {
				if len(words) > 1 && words[1].End-words[1].Start > maxDur {
					boundary := max(words[1].End/2, words[1].End-maxDur)
					first.End, words[1].Start = boundary, boundary
				}
				first.Start = max(0, first.End-maxDur)
			}
			// Prefer the segment's start if the first word is too long, else start at the word.
			if seg.Start < first.End && seg.Start-0.5 > first.Start {
				first.Start = max(0, min(first.End-median, seg.Start))
			} else if retime {
				seg.Start = first.Start
			}
			last := &words[len(words)-1]
			if seg.End > last.Start && seg.End+0.5 < last.End {
				last.End = max(last.Start+median, seg.End)
			} else if retime {
				seg.End = last.End
			}
			lastSpeech = seg.End
		}
		if retime {
			seg.Start = max(seg.Start, floor)
			seg.End = max(seg.End, seg.Start)
			floor = seg.End
		}
		lo := max(seg.Start, wordFloor)
		for i := range words {
			w := &words[i]
			w.Start = min(max(w.Start, lo), seg.End)
			w.End = min(max(w.End, w.Start), seg.End)
			lo = w.End
		}
		// Token times: the DTW boundaries, inside the token's word (or segment) and in order.
		lo = seg.Start
		for i := range seg.Tokens {
			k := base + i
			start, end := round2(offset+jumps[k]), round2(offset+jumps[k+1])
			from, to := seg.Start, seg.End
			if wj, ok := owner[k]; ok {
				from, to = words[wj].Start, words[wj].End
			}
			t := &seg.Tokens[i]
			t.Start = min(max(start, from, lo), to)
			t.End = min(max(end, t.Start), to)
			lo = t.Start
		}
		seg.Words = words
		base += nt
		if len(words) > 0 {
			wordFloor = words[len(words)-1].End
		}
	}
}

// lastSpeechEnd is the reference's get_end over segs: the end of the last word, or of the last
// segment if none has words.
func lastSpeechEnd(segs []*Segment) (float64, bool) {
	for i := len(segs) - 1; i >= 0; i-- {
		if w := segs[i].Words; len(w) > 0 {
			return w[len(w)-1].End, true
		}
	}
	if len(segs) == 0 {
		return 0, false
	}
	return segs[len(segs)-1].End, true
}

// prevSpeech is what word timing knows of the segment before a window, in the window's own
// time (seconds from its start, so usually at or below 0): where its speech ended (its last
// word's end, or its own end without words) and where it ended. A window with no segment
// before it has both at 0.
type prevSpeech struct{ speech, end float64 }

// timeWords aligns the text of a window's segments (window w of enc, whose audio has frames mel
// frames; segment times in the window's own time) and fills their words and token times (see
// placeWords), after the segment prev. It uses the input's current SOT sequence and language.
func (in *input) timeWords(enc *Encoded, w int, segs []*Segment, frames int, retime bool, prev prevSpeech) error {
	var text []int
	for _, s := range segs {
		for _, t := range s.Tokens {
			text = append(text, t.ID)
		}
	}
	if len(text) == 0 {
		return nil
	}
	eot := in.tx.ids.eot
	seq := append(append(append(slices.Clone(in.sot), in.tx.ids.noTimestamps), text...), eot)
	heads := alignmentHeads(in.m.Arch, in.m.Config)
	positions := max(1, min(frames/framesPerToken, in.m.Config.NAudioCtx))
	// Probability of each text token among the text tokens, at the position before it.
	first := len(in.sot)
	want := &tokenLogProbs{from: first, limit: eot, ids: text}
	t := in.m.clock.start()
	var probs []float32
	var err error
	if q := in.forced; q != nil && q.enc == enc {
		r := &forcedReq{w: w, tokens: seq, frames: positions, want: want}
		q.pass(r)
		probs, err = r.probs, r.err
	} else {
		release := held(in.dev)
		probs, err = in.m.forcedPass(enc, w, seq, positions, heads, probsAuto, nil, want)
		release()
		in.m.clock.forced(1)
	}
	in.m.clock.stop(phaseForced, t)
	if err != nil {
		return fmt.Errorf("word timing: %w", err)
	}
	tokenP := make([]float64, len(text))
	for i, lp := range want.lp {
		tokenP[i] = math.Exp(lp)
	}
	jumps := alignJumps(probs, len(heads), len(seq), positions, first)
	lang := in.lang
	if lang == "" {
		lang = in.res.Language
	}
	words, groups := in.tok.SplitWords(append(slices.Clone(text), eot), lang)
	align := alignWords(words, groups, jumps, tokenP)
	clampSentenceEnds(align, 2*medianDuration(align))
	mergePunctuations(align, prependPunctuations, appendPunctuations)
	placeWords(segs, align, jumps, 0, prev.speech, prev.end, retime)
	return nil
}

// wordTimes is the word-timestamp step for one window (Options.WordTimestamps; otherwise it
// returns its arguments): it fills the words and token times of segs (window times), after the
// segment prev. Under rules that re-time segments to their words (the reference's), segments
// take their words' span, those left without duration are dropped, and, unless the window's
// tokens end with a single timestamp, the seek advance moves to the end of the last word. Window
// w of enc must still hold the window's encoding; frames is the window's mel frames of audio.
func (in *input) wordTimes(enc *Encoded, w int, dr *decodeResult, segs []pending, frames, advance int, prev prevSpeech) ([]pending, int, error) {
	if !in.opts.WordTimestamps || len(segs) == 0 {
		return segs, advance, nil
	}
	retime := in.rules.retimeToWords
	ptrs := make([]*Segment, len(segs))
	for i := range segs {
		ptrs[i] = &segs[i].seg
	}
	t := in.m.clock.start()
	err := in.timeWords(enc, w, ptrs, frames, retime, prev)
	in.m.clock.stop(phaseWords, t)
	if err != nil {
		return nil, 0, err
	}
	if !retime {
		return segs, advance, nil
	}
	toks := dr.tokens
	n := len(toks)
	singleEnding := n >= 2 && toks[n-2] < in.tx.ids.tsBegin && toks[n-1] >= in.tx.ids.tsBegin
	if end, ok := lastSpeechEnd(ptrs); ok && !singleEnding && end > 0 {
		advance = int(math.RoundToEven(end * framesPerSecond))
	}
	kept := segs[:0]
	for _, p := range segs {
		if p.seg.Start != p.seg.End {
			kept = append(kept, p)
		}
	}
	return kept, advance, nil
}
