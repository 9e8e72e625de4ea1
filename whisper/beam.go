package whisper

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"
)

// beamSearch is the reference's BeamSearchDecoder for one window. Each step, every live beam
// proposes its beamSize+1 most probable continuations; the proposals are ranked by cumulative log
// probability, those ending in EOT go to the finished pool (which holds at most
// round(beamSize*patience) sequences) and the best beamSize others become the new beams.
// Decoding stops when the pool is full or at the length limit; if fewer than beamSize sequences
// finished, the live beams are added, best first. The returned candidates are the pool, in
// insertion order (the ranking's tie order).
func (t *decodeTask) beamSearch(s stepper, logits []float32) ([]*candidate, error) {
	V := t.ids.nVocab
	B := t.beamSize
	maxCand := max(1, int(math.RoundToEven(float64(B)*t.patience)))
	beams := make([]*candidate, B)
	for j := range beams {
		beams[j] = &candidate{}
	}
	var finished []*candidate

	type proposal struct {
		key   string
		from  int
		tok   int
		lp    float64
		tid   int
		score float64
	}
	for i := 0; i < t.sampleLen; i++ {
		var props []*proposal
		index := map[string]int{}
		for j, b := range beams {
			row := logits[j*V : (j+1)*V]
			lse, tid := t.filter(row, b.tokens)
			prefix := seqKey(b.tokens)
			for _, tok := range topK(row, B+1) {
				lp := float64(row[tok]) - lse
				p := &proposal{key: prefix + seqKey([]int{tok}), from: j, tok: tok, lp: lp, tid: tid, score: b.sum + lp}
				if k, ok := index[p.key]; ok {
					props[k].from, props[k].score = j, p.score // a later equal prefix overwrites, in place
					continue
				}
				index[p.key] = len(props)
				props = append(props, p)
			}
		}
		sort.SliceStable(props, func(a, b int) bool { return props[a].score > props[b].score })

		var next []*candidate
		var src []int
		for _, p := range props {
			c := beams[p.from].clone()
			c.push(p.tok, p.lp, p.tid)
			c.sum = p.score
			if p.tok == t.ids.eot {
				if len(finished) < maxCand {
					c.done = true
					finished = append(finished, c)
				}
				continue
			}
			next = append(next, c)
			src = append(src, p.from)
			if len(next) == B {
				break
			}
		}
		if len(next) < B {
			return nil, fmt.Errorf("beam search step %d: %d live beams, want %d", i, len(next), B)
		}
		beams = next
		if len(finished) >= maxCand || len(t.initial)+i+1 > t.nTextCtx || i+1 == t.sampleLen {
			break
		}
		if err := s.Reorder(src); err != nil {
			return nil, fmt.Errorf("beam search step %d: %w", i, err)
		}
		toks := make([][]int32, B)
		for j, c := range beams {
			toks[j] = []int32{int32(c.tokens[len(c.tokens)-1])}
		}
		var err error
		if logits, err = s.Step(toks, false); err != nil {
			return nil, fmt.Errorf("beam search step %d: %w", i, err)
		}
	}
	if len(finished) < B {
		// Best first; among equal scores the later beam first (the reference's reversed argsort).
		order := make([]int, len(beams))
		for j := range order {
			order[j] = j
		}
		sort.SliceStable(order, func(a, b int) bool { return beams[order[a]].sum < beams[order[b]].sum })
		slices.Reverse(order)
		for _, j := range order {
			finished = append(finished, beams[j])
			if len(finished) >= B {
				break
			}
		}
	}
	return finished, nil
}

// topK returns the indices of the k largest values of x, largest first, lower index first on
// ties.
func topK(x []float32, k int) []int {
	k = min(k, len(x))
	top := make([]int, 0, k+1)
	for i, v := range x {
		if len(top) == k && v <= x[top[k-1]] {
			continue
		}
		pos := sort.Search(len(top), func(p int) bool { return x[top[p]] < v })
		top = slices.Insert(top, pos, i)
		if len(top) > k {
			top = top[:k]
		}
	}
	return top
}

// seqKey is a map key for a token sequence.
func seqKey(toks []int) string {
	b := make([]byte, 0, 4*len(toks))
	for _, v := range toks {
		b = binary.LittleEndian.AppendUint32(b, uint32(v))
	}
	return string(b)
}
