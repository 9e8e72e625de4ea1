package whisper

import (
	"cmp"
	"slices"
	"sync"

	"github.com/verbatimhq/verbatim/tensor"
)

// Word timing's forced passes, batched. A batch's steps settle in parallel (batcher.settle), and
// each window's word timing needs one forced pass: the decoder over the window's text, all
// positions at once. One at a time under the device's lock, a pass is a few hundred small
// launches and a dozen read-backs (large-v3: about 1.8 ms a window on an H100, 0.59 s of an
// 11.5 s bench; by its launches, mostly the host's time). forcedQueue gathers the passes of the
// goroutines settling at once and forcedPasses runs them as one decoder pass over a batch of
// sequences. The decoder workspace and caches fitBatch counts for a window's five sequences
// (half a context each) hold the batch's sequences of one window's text each.

// forcedReq is one window's forced pass: forcedPass's arguments (window w of the batch's encoder
// output, the tokens, the window's audio frames, the log-probabilities wanted, which it fills
// in) and its result.
type forcedReq struct {
	w      int
	tokens []int
	frames int
	want   *tokenLogProbs
	probs  []float32 // the alignment heads' probabilities, as forcedPass returns them
	err    error
	ran    bool // forcedQueue: the pass has run
}

// forcedLogitRows is the most positions whose logits forcedBatch computes at once: 53 MB of
// logits for a vocabulary of 51,866, each chunk two read-backs (logProbsOf), 13 chunks for 32
// windows of 100 tokens where each pass alone took 7 of 16 rows.
const forcedLogitRows = 256

// forcedPasses runs reqs' forced passes against enc with the alignment heads heads (probsAuto)
// as one decoder pass over a batch of their sequences: each sequence padded to the longest with
// its last token (the self-attention is causal, so a position never sees the padding after it),
// each reading its own window's keys and values, the heads' probabilities taken from each
// sequence's own positions and frames, and the log-probabilities wanted computed for all of the
// batch's positions together. A request forcedPass would refuse gets that error alone; one
// request left runs as forcedPass. The results are forcedPass's up to the rounding of the
// larger products (a GPU's GEMMs may choose another algorithm for more rows).
func (m *Model) forcedPasses(enc *Encoded, heads []alignHead, reqs []*forcedReq) {
	var ok []*forcedReq
	for _, r := range reqs {
		r.probs, r.err = nil, m.forcedCheck(enc, r.w, len(r.tokens), r.frames)
		if r.err == nil {
			if _, r.err = m.forcedIDs(r.tokens); r.err == nil && r.want != nil {
				r.err = r.want.check(len(r.tokens), m.Config.NVocab)
			}
		}
		if r.err == nil {
			ok = append(ok, r)
		}
	}
	switch len(ok) {
	case 0:
		return
	case 1:
		r := ok[0]
		r.probs, r.err = m.forcedPass(enc, r.w, r.tokens, r.frames, heads, probsAuto, nil, r.want)
		return
	}
	if err := m.forcedBatch(enc, heads, ok); err != nil {
		for _, r := range ok {
			r.probs, r.err = nil, err
		}
	}
}

// forcedBatch is forcedPasses' batched pass over checked requests (at least two).
func (m *Model) forcedBatch(enc *Encoded, heads []alignHead, reqs []*forcedReq) (err error) {
	defer tensor.Catch(&err)
	b, c := m.b, m.Config
	d := c.NTextState
	// By window, so that consecutive windows read their keys and values in one attention call.
	reqs = slices.Clone(reqs)
	slices.SortStableFunc(reqs, func(x, y *forcedReq) int { return cmp.Compare(x.w, y.w) })
	B, n := len(reqs), 0
	for _, r := range reqs {
		n = max(n, len(r.tokens))
	}
	ap, err := m.newAlignProbs(heads, probsAuto)
	if err != nil {
		return err
	}
	defer ap.free()
	ids := make([]int32, B*n)
	ws := make([]int, B)
	for i, r := range reqs {
		for j := range n {
			ids[i*n+j] = int32(r.tokens[min(j, len(r.tokens)-1)])
		}
		ws[i] = r.w
	}
	s := &Session{m: m, enc: enc, batch: B, window: ws, ids: ids}
	kv, release := m.forcedCaches(B)
	defer release()
	s.kv = kv
	s.setRuns()
	defer s.freeWRuns() // the session is not closed: its caches are the model's (release)

	outs := make([]*tensor.Tensor, B)
	defer func() {
		for _, o := range outs {
			if o != nil {
				b.Free(o)
			}
		}
	}()
	for i, r := range reqs {
		outs[i] = allocExplicit(b, tensor.F32, len(heads), len(r.tokens), r.frames)
	}
	hook := func(layer int, q *tensor.Tensor) {
		for i, r := range reqs {
			nr := len(r.tokens)
			qi := q.Slice(i, i+1).Reshape(n, d).Slice(0, nr).Reshape(1, nr, d)
			ap.layer(layer, qi, enc.crossK[layer].Slice(r.w, r.w+1), outs[i], r.frames)
		}
	}
	v := m.decViews(B, n, logitsRows)
	m.decodeLayers(s, n, v, hook)
	m.logits(v, n, logitsRows)
	if err := m.forcedBatchLogProbs(v.h.Reshape(B*n, d), n, reqs); err != nil {
		return err
	}
	for i, r := range reqs {
		r.probs = b.ToF32(outs[i])
	}
	return nil
}

// forcedBatchLogProbs computes the log-probabilities the requests want from the final hidden
// states h ([len(reqs) * n, d], request i's position p at row i*n + p): the rows wanted
// gathered, their logits forcedLogitRows at a time, each chunk's through logProbsOf. Requests
// with different limits take a chunk each.
func (m *Model) forcedBatchLogProbs(h *tensor.Tensor, n int, reqs []*forcedReq) error {
	b, d, nv := m.b, m.Config.NTextState, m.Config.NVocab
	var rows []int32
	var tok []int
	var limits []int
	for i, r := range reqs {
		if r.want == nil {
			continue
		}
		r.want.lp = make([]float64, len(r.want.ids))
		for j, id := range r.want.ids {
			rows = append(rows, int32(i*n+r.want.from+j))
			tok = append(tok, id)
			limits = append(limits, r.want.limit)
		}
	}
	if len(rows) == 0 {
		return nil
	}
	hw := allocExplicit(b, tensor.F32, len(rows), d)
	defer b.Free(hw)
	b.Gather(hw, h, rows)
	buf := allocExplicit(b, tensor.F32, min(len(rows), forcedLogitRows), nv)
	defer b.Free(buf)
	var host []float32
	lp := make([]float64, 0, len(rows))
	for r0 := 0; r0 < len(rows); {
		end := min(len(rows), r0+forcedLogitRows)
		for e := r0 + 1; e < end; e++ {
			if limits[e] != limits[r0] {
				end = e
				break
			}
		}
		out := buf.Slice(0, end-r0)
		b.Linear(out, hw.Slice(r0, end), m.dec.tokEmb, nil)
		lp = append(lp, logProbsOf(b, out, tok[r0:end], limits[r0], &host)...)
		r0 = end
	}
	k := 0
	for _, r := range reqs {
		if r.want != nil {
			k += copy(r.want.lp, lp[k:k+len(r.want.lp)])
		}
	}
	return nil
}

// forcedQueue gathers the forced passes of the goroutines settling a batch's steps at once, so
// that they run as one batched pass (forcedPasses) rather than one window at a time: a request
// waits until every goroutine still settling has asked for a pass or finished, and the last of
// them runs all that are waiting, under the device's lock. Nothing else waits on the queue
// while holding the device, so a goroutine that takes the device between passes (language
// detection) only delays the batch.
type forcedQueue struct {
	m     *Model
	enc   *Encoded
	dev   *sync.Mutex // the device's lock where lanes share it, else nil
	heads []alignHead

	mu      sync.Mutex
	cond    sync.Cond
	running int // goroutines settling
	waiting []*forcedReq
}

// observeForced, if set (by tests), is told the size of each batch of forced passes a
// forcedQueue runs.
var observeForced func(passes int)

func newForcedQueue(m *Model, enc *Encoded, dev *sync.Mutex) *forcedQueue {
	q := &forcedQueue{m: m, enc: enc, dev: dev, heads: alignmentHeads(m.Arch, m.Config)}
	q.cond.L = &q.mu
	return q
}

// start counts a goroutine settling; done, called when it has finished, counts it out.
func (q *forcedQueue) start() {
	q.mu.Lock()
	q.running++
	q.mu.Unlock()
}

func (q *forcedQueue) done() {
	q.mu.Lock()
	q.running--
	q.flush()
	q.mu.Unlock()
}

// pass runs r's forced pass (against the queue's encoder output) in a batch and returns when it
// has run.
func (q *forcedQueue) pass(r *forcedReq) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.waiting = append(q.waiting, r)
	q.flush()
	for !r.ran {
		q.cond.Wait()
	}
}

// flush runs the waiting requests once every goroutine settling waits (q.mu held).
func (q *forcedQueue) flush() {
	if len(q.waiting) == 0 || len(q.waiting) < q.running {
		return
	}
	reqs := q.waiting
	q.waiting = nil
	if observeForced != nil {
		observeForced(len(reqs))
	}
	q.m.clock.forced(len(reqs))
	func() {
		defer held(q.dev)()
		q.m.forcedPasses(q.enc, q.heads, reqs)
	}()
	for _, r := range reqs {
		r.ran = true
	}
	q.cond.Broadcast()
}
