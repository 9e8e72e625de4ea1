package whisper

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/verbatimhq/verbatim/tensor"
)

// beams is the reference's BeamSearchDecoder for one window. Each step, every live beam
// proposes its beamSize+1 most probable continuations; the proposals are ranked by cumulative log
// probability, those ending in EOT go to the finished pool (which holds at most
// round(beamSize*patience) sequences) and the best beamSize others become the new beams.
// Decoding stops when the pool is full or at the length limit; if fewer than beamSize sequences
// finished, the live beams are added, best first. The candidates are the pool, in insertion
// order (the ranking's tie order).
type beams struct {
	t        *decodeTask
	live     []*candidate
	finished []*candidate
	maxCand  int

	// advance's buffers, reused every step (its results are read before the next)
	same  []int
	props []proposal
	taken []bool
	kept  []int // each live beam's length before the step
	toks  []int32
	src   []int
	tops  [][]tensor.Cand
	tids  []int
	spare []*candidate // the list the last step's beams were in, the next step's new list
	// free are beams the search dropped (neither continued nor finished): their lists are
	// reused for the next step's copies (prefixInto), so a step allocates nothing once the
	// lists are long enough.
	free []*candidate
}

func newBeams(t *decodeTask) *beams {
	b := &beams{t: t, live: make([]*candidate, t.beamSize), maxCand: max(1, int(math.RoundToEven(float64(t.beamSize)*t.patience)))}
	for j := range b.live {
		b.live[j] = &candidate{}
	}
	return b
}

type proposal struct {
	same  int // the first live beam with the same tokens as the proposer (see advance)
	from  int
	tok   int
	lp    float64
	tid   int
	score float64
}

func (b *beams) next(i int, logits []float32) ([]int32, []int, bool, error) {
	t := b.t
	V := t.ids.nVocab
	B := t.beamSize
	tops := make([][]tensor.Cand, B)
	tids := make([]int, B)
	for j, c := range b.live {
		row := logits[j*V : (j+1)*V]
		lse, tid := t.filter(row, c.tokens)
		for _, tok := range tensor.TopK(row, B+1) {
			tops[j] = append(tops[j], tensor.Cand{Token: int32(tok), LogProb: float64(row[tok]) - lse})
		}
		tids[j] = tid
	}
	return b.advance(i, tops, tids)
}

// pickedTop is next from the candidates ranked where the logits are (tensor.TopPicker): each
// live beam's k >= beamSize+1 best tokens in top, its most probable timestamp in picks.
func (b *beams) pickedTop(i int, picks []tensor.Pick, top []tensor.Cand, k int) ([]int32, []int, bool, error) {
	B := b.t.beamSize
	b.tops, b.tids = slices.Grow(b.tops[:0], B)[:B], slices.Grow(b.tids[:0], B)[:B]
	for j := range B {
		b.tops[j] = top[j*k : j*k+B+1]
		b.tids[j] = int(picks[j].TS)
	}
	return b.advance(i, b.tops, b.tids)
}

// rows are the sequences of the task's rows.
func (b *beams) rows() []*candidate { return b.live }

// advance is one step of the search, given each live beam's beamSize+1 best continuations
// (best first) and whisper.cpp's most probable timestamp.
func (b *beams) advance(i int, tops [][]tensor.Cand, tids []int) ([]int32, []int, bool, error) {
	t := b.t
	B := t.beamSize
	// Proposals are told apart by their token sequences, as the reference's do: live beams with
	// the same tokens (all of them at the first step) propose the same sequences, and a later
	// one's proposal takes the place of the earlier equal one.
	same := slices.Grow(b.same[:0], len(b.live))[:len(b.live)]
	b.same = same
	for j, c := range b.live {
		same[j] = j
		for k := range j {
			if same[k] == k && slices.Equal(b.live[k].tokens, c.tokens) {
				same[j] = k
				break
			}
		}
	}
	props := b.props[:0]
	for j, c := range b.live {
		for _, cd := range tops[j] {
			tok, lp := int(cd.Token), cd.LogProb
			dup := slices.IndexFunc(props, func(p proposal) bool { return p.same == same[j] && p.tok == tok })
			if dup >= 0 {
				props[dup].from, props[dup].score = j, c.sum+lp // a later equal sequence overwrites, in place
				continue
			}
			props = append(props, proposal{same: same[j], from: j, tok: tok, lp: lp, tid: tids[j], score: c.sum + lp})
		}
	}
	b.props = props
	slices.SortStableFunc(props, func(x, y proposal) int { // best first, as sort.SliceStable with score > did
		switch {
		case x.score > y.score:
			return -1
		case y.score > x.score:
			return 1
		}
		return 0
	})

	// A beam's first continuation extends it in place; the others copy it as it was (kept).
	// Nothing else holds a live beam's lists: each candidate owns its own.
	b.taken = slices.Grow(b.taken[:0], len(b.live))[:len(b.live)]
	b.kept = slices.Grow(b.kept[:0], len(b.live))[:len(b.live)]
	for j, c := range b.live {
		b.taken[j], b.kept[j] = false, len(c.tokens)
	}
	next := b.spare[:0]
	src := b.src[:0]
	for _, p := range props {
		var c *candidate
		if from := b.live[p.from]; !b.taken[p.from] {
			b.taken[p.from] = true
			c = from
		} else {
			c = from.prefixInto(b.reuse(), b.kept[p.from])
		}
		c.push(p.tok, p.lp, p.tid)
		c.sum = p.score
		if p.tok == t.ids.eot {
			if len(b.finished) < b.maxCand {
				c.done = true
				b.finished = append(b.finished, c)
			}
			continue
		}
		next = append(next, c)
		src = append(src, p.from)
		if len(next) == B {
			break
		}
	}
	b.src = src
	if len(next) < B {
		return nil, nil, false, fmt.Errorf("beam search step %d: %d live beams, want %d", i, len(next), B)
	}
	for j, c := range b.live {
		if !b.taken[j] {
			b.free = append(b.free, c) // dropped: nothing holds it now
		}
	}
	b.live, b.spare = next, b.live
	toks := slices.Grow(b.toks[:0], B)[:B]
	b.toks = toks
	for j, c := range next {
		toks[j] = int32(c.tokens[len(c.tokens)-1])
	}
	return toks, src, len(b.finished) >= b.maxCand, nil
}

// reuse returns a dropped beam to copy into, or a new one.
func (b *beams) reuse() *candidate {
	if n := len(b.free); n > 0 {
		c := b.free[n-1]
		b.free = b.free[:n-1]
		return c
	}
	return &candidate{}
}

// candidates is the finished pool, completed with the best live beams when fewer than beamSize
// sequences finished (best first; among equal scores the later beam first, the reference's
// reversed argsort).
func (b *beams) candidates() []*candidate {
	out := slices.Clone(b.finished)
	if len(out) < b.t.beamSize {
		order := make([]int, len(b.live))
		for j := range order {
			order[j] = j
		}
		sort.SliceStable(order, func(x, y int) bool { return b.live[order[x]].sum < b.live[order[y]].sum })
		slices.Reverse(order)
		for _, j := range order {
			out = append(out, b.live[j])
			if len(out) >= b.t.beamSize {
				break
			}
		}
	}
	return out
}
