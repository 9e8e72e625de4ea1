package whisper

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"github.com/verbatimhq/verbatim/tensor"
)

// pickStepper steps and picks greedily where the logits are (Session.StepPick).
type pickStepper interface {
	StepPick(tokens [][]int32, masks stepMasks, picks []tensor.Pick) error
}

// topStepper steps and ranks each row's k best tokens where the logits are (Session.StepTop).
type topStepper interface {
	StepTop(tokens [][]int32, masks stepMasks, k int, picks []tensor.Pick, top []tensor.Cand) error
}

// stepMasks gives a step's picks their masks: the bitmaps and one tensor.PickRow a sequence.
// StepPick and StepTop call it once the decoder's step is queued, so that on an asynchronous
// backend (a GPU) the host makes the masks (the timestamp rules and suppressions of every beam)
// while the device runs the step, rather than before it while the device waits.
type stepMasks func() (bitmaps [][]uint32, rows []tensor.PickRow)

// fixedMasks is a stepMasks of masks made beforehand.
func fixedMasks(bitmaps [][]uint32, rows []tensor.PickRow) stepMasks {
	return func() ([][]uint32, []tensor.PickRow) { return bitmaps, rows }
}

// tokenProber steps and returns each sequence's log-probability of one token at the last new
// position, without the rest of the logits when they can stay where they are
// (Session.StepLogProbs).
type tokenProber interface {
	StepLogProbs(tokens [][]int32, ids []int) ([]float64, error)
}

var (
	_ pickStepper = (*Session)(nil)
	_ topStepper  = (*Session)(nil)
	_ tokenProber = (*Session)(nil)
)

// StepLogProbs is Step that returns, for each sequence i, the log-probability of token ids[i]
// under the softmax of the last new position's logits instead of the logits. Where the backend
// picks where the logits are (tensor.RowPicker), the normalizer comes from an unmasked greedy
// pick there (its token's log-probability and logit) and two logits a sequence are read back;
// otherwise the logits are read and the log-sum-exps computed on the host, rows on all cores.
func (s *Session) StepLogProbs(tokens [][]int32, ids []int) (lp []float64, err error) {
	defer tensor.Catch(&err)
	defer held(s.dev)()
	if len(ids) != len(tokens) {
		return nil, fmt.Errorf("step: %d tokens asked for %d sequences", len(ids), len(tokens))
	}
	V := s.m.Config.NVocab
	for _, id := range ids {
		if id < 0 || id >= V {
			return nil, fmt.Errorf("step: token %d outside the vocabulary of %d", id, V)
		}
	}
	t0 := time.Now()
	out, err := s.step(tokens, false)
	if err != nil {
		return nil, err
	}
	defer s.times.add(t0, time.Now(), s.batch)
	return logProbsOf(s.m.b, out, ids, V, &s.logits), nil
}

// logProbsOf returns, for each row i of logits ([len(ids), V], F32) with ids[i] >= 0, the
// log-probability of token ids[i] among the tokens below limit (0 for the other rows). Where
// the backend picks where the logits are (tensor.RowPicker), the normalizer comes from a greedy
// pick over those tokens there (its token's log-probability and logit), and two logits a row
// cross to the host; otherwise the logits are read back into *host and each row's log-sum-exp
// computed there, rows in parallel (a vocabulary row's takes half a millisecond on one core).
func logProbsOf(b tensor.Backend, logits *tensor.Tensor, ids []int, limit int, host *[]float32) []float64 {
	n := len(ids)
	V := logits.Len() / n
	lp := make([]float64, n)
	if p, ok := b.(tensor.RowPicker); ok && p.CanPick() {
		rows := make([]tensor.PickRow, n)
		for i := range rows {
			rows[i] = tensor.PickRow{Mask: -1, TSBegin: int32(V)}
			if limit < V {
				rows[i].Ranges = [][2]int32{{int32(limit), int32(V)}}
			}
		}
		picks := make([]tensor.Pick, n)
		p.PickGreedy(logits, nil, rows, picks)
		var at []int32
		for i, pk := range picks {
			if ids[i] >= 0 {
				at = append(at, int32(i*V+ids[i]), int32(i*V+int(max(pk.Token, 0))))
			}
		}
		if len(at) == 0 {
			return lp
		}
		vals := b.Alloc(tensor.F32, len(at), 1)
		defer b.Free(vals)
		b.Gather(vals, logits.Reshape(n*V, 1), at)
		v := b.ToF32(vals)
		j := 0
		for i, pk := range picks {
			if ids[i] >= 0 {
				lp[i] = pk.LogProb + float64(v[j]) - float64(v[j+1])
				j += 2
			}
		}
		return lp
	}
	all := readInto(b, logits, host)
	var wg sync.WaitGroup
	for i, id := range ids {
		if id >= 0 {
			wg.Go(func() {
				row := all[i*V : (i+1)*V]
				lp[i] = float64(row[id]) - logSumExp32(row[:limit])
			})
		}
	}
	wg.Wait()
	return lp
}

// StepTop is StepPick that also ranks each row's k best allowed tokens into top[i*k:(i+1)*k]
// (tensor.TopPicker: on the device when the backend ranks there, else on the host from the
// logits read back, rows on all cores), for beam search.
func (s *Session) StepTop(tokens [][]int32, masks stepMasks, k int, picks []tensor.Pick, top []tensor.Cand) (err error) {
	defer tensor.Catch(&err)
	defer held(s.dev)()
	if len(picks) != len(tokens) || len(top) != k*len(tokens) {
		return fmt.Errorf("step: %d picks and %d candidates for %d sequences of %d", len(picks), len(top), len(tokens), k)
	}
	if k < 1 || k > tensor.MaxTopK {
		return fmt.Errorf("step: %d candidates a row, want 1 to %d", k, tensor.MaxTopK)
	}
	return s.stepPicked(tokens, masks, func(out *tensor.Tensor, bitmaps [][]uint32, rows []tensor.PickRow) bool {
		p, ok := s.m.b.(tensor.TopPicker)
		if ok && p.CanPickTop() {
			p.PickTop(out, bitmaps, rows, k, picks, top)
		}
		return ok && p.CanPickTop()
	}, func(logits []float32, bitmaps [][]uint32, rows []tensor.PickRow) {
		tensor.PickTopRowsF32(logits, bitmaps, rows, k, picks, top)
	})
}

// pickMasks turns a task's filter masks for one sequence into a tensor.PickRow; the filters' id
// lists become bitmaps, one per distinct set of lists, made once and kept for the batch.
type pickMasks struct {
	bitmaps [][]uint32
	byKey   map[string]int
	m       rowMask
	key     []byte // scratch for bitmap's key
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
	p.key = p.key[:0]
	for _, l := range lists {
		p.key = binary.LittleEndian.AppendUint64(p.key, uint64(uintptr(unsafe.Pointer(unsafe.SliceData(l)))))
		p.key = binary.LittleEndian.AppendUint64(p.key, uint64(len(l)))
	}
	if i, ok := p.byKey[string(p.key)]; ok { // no allocation for the lookup
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
	p.byKey[string(p.key)] = len(p.bitmaps)
	p.bitmaps = append(p.bitmaps, bm)
	return len(p.bitmaps) - 1
}
