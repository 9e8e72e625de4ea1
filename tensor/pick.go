package tensor

import (
	"math"
	"math/bits"
	"runtime"
	"sync"
)

// PickRow says which tokens of one row of logits may be picked (see RowPicker). Tokens whose
// bit is set in the row's bitmap, and tokens in Ranges, are forbidden. Then, with TSRule, if
// the log-sum-exp of the allowed logits from TSBegin on exceeds the largest allowed logit before
// TSBegin, every token before TSBegin is forbidden too (Whisper's timestamp rule: the softmax
// normalizer cancels in the comparison).
type PickRow struct {
	Mask    int        // index into the bitmaps (bit i%32 of word i/32 set: token i forbidden); -1 for none
	Ranges  [][2]int32 // forbidden [from, to)
	TSBegin int32      // the first timestamp token
	TSRule  bool
}

// Pick is the greedy choice in one row: Token, the largest allowed logit (the first on ties;
// -1 when nothing is allowed), LogProb its log-probability among the allowed tokens, and TS the
// largest allowed logit from TSBegin on (-1 when none is allowed).
type Pick struct {
	Token   int32
	LogProb float64
	TS      int32
}

// RowPicker is implemented by backends that pick greedy tokens where the logits are, so that
// only the picks cross to the host (a batched decoder step's logits are 26.5 MB at 128 rows).
// PickGreedy reads logits [len(rows), V] (F32) and writes out[i] for row i.
type RowPicker interface {
	PickGreedy(logits *Tensor, bitmaps [][]uint32, rows []PickRow, out []Pick)
	// CanPick reports whether PickGreedy is on (a backend may keep it off, e.g. until checked).
	CanPick() bool
}

// Cand is one of a row's best tokens (TopPicker): the token and its log-probability among the
// allowed tokens (-Inf for a forbidden token, listed only when fewer than k are allowed).
type Cand struct {
	Token   int32
	LogProb float64
}

// MaxTopK is the largest k a TopPicker takes (beam search 5 needs 6).
const MaxTopK = 8

// TopPicker is implemented by backends that rank each row's best tokens where the logits are, so
// that beam search reads back k candidates a row instead of its logits. PickTop masks as
// PickGreedy does, writes out[i] as PickGreedy would, and writes top[i*k : (i+1)*k], row i's k
// best tokens: the largest masked logits first, the lower index first on ties, forbidden tokens
// (masked to -Inf) after every allowed one; past the row's end (k > V), token -1 at -Inf.
// 1 <= k <= MaxTopK.
type TopPicker interface {
	PickTop(logits *Tensor, bitmaps [][]uint32, rows []PickRow, k int, out []Pick, top []Cand)
	// CanPickTop reports whether PickTop is on.
	CanPickTop() bool
}

// PickF32 is the reference PickGreedy of one row: it masks row in place (forbidden tokens become
// -Inf) and returns the pick, with the log-sum-exp in float64.
func PickF32(row []float32, bitmaps [][]uint32, r PickRow) Pick {
	p, _ := pickF32(row, bitmaps, r)
	return p
}

// PickTopF32 is the reference PickTop of one row: PickF32, then row's len(top) best tokens into
// top.
func PickTopF32(row []float32, bitmaps [][]uint32, r PickRow, top []Cand) Pick {
	p, lse := pickF32(row, bitmaps, r)
	for j := range top {
		top[j] = Cand{Token: -1, LogProb: math.Inf(-1)}
	}
	for j, i := range TopK(row, len(top)) {
		top[j] = Cand{Token: int32(i), LogProb: float64(row[i]) - lse}
	}
	return p
}

// TopK returns the indices of the k largest values of x, largest first, the lower index first on
// ties (-Inf values included, after every larger one).
func TopK(x []float32, k int) []int {
	k = min(k, len(x))
	top := make([]int, 0, k+1)
	for i, v := range x {
		if len(top) == k && v <= x[top[k-1]] {
			continue
		}
		pos := len(top)
		for pos > 0 && x[top[pos-1]] < v {
			pos--
		}
		top = append(top, 0)
		copy(top[pos+1:], top[pos:])
		top[pos] = i
		if len(top) > k {
			top = top[:k]
		}
	}
	return top
}

// pickF32 is PickF32, also returning the masked row's log-sum-exp.
func pickF32(row []float32, bitmaps [][]uint32, r PickRow) (Pick, float64) {
	inf := float32(math.Inf(-1))
	if r.Mask >= 0 {
		bm := bitmaps[r.Mask]
		for w, set := range bm {
			for set != 0 {
				i := w*32 + bits.TrailingZeros32(set)
				if i < len(row) {
					row[i] = inf
				}
				set &= set - 1
			}
		}
	}
	for _, g := range r.Ranges {
		for i := max(int(g[0]), 0); i < min(int(g[1]), len(row)); i++ {
			row[i] = inf
		}
	}
	begin := min(max(int(r.TSBegin), 0), len(row))
	if r.TSRule {
		maxText := inf
		for _, v := range row[:begin] {
			maxText = max(maxText, v)
		}
		if LogSumExp(row[begin:]) > float64(maxText) {
			for i := range row[:begin] {
				row[i] = inf
			}
		}
	}
	p := Pick{Token: -1, TS: -1}
	if i := Argmax(row[begin:]); i >= 0 {
		p.TS = int32(begin + i)
	}
	lse := LogSumExp(row)
	if i := Argmax(row); i >= 0 {
		p.Token = int32(i)
		p.LogProb = float64(row[i]) - lse
	}
	return p, lse
}

// PickRowsF32 is PickF32 for each row of logits [len(rows), V] (masked in place), rows on all
// cores: the host's PickGreedy.
func PickRowsF32(logits []float32, bitmaps [][]uint32, rows []PickRow, out []Pick) {
	EachRow(len(rows), func(i int) {
		V := len(logits) / len(rows)
		out[i] = PickF32(logits[i*V:(i+1)*V], bitmaps, rows[i])
	})
}

// EachRow runs f(i) for i in [0, n), rows spread over all cores (GOMAXPROCS goroutines at most),
// and returns when every call has.
func EachRow(n int, f func(i int)) {
	workers := min(n, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				f(i)
			}
		})
	}
	wg.Wait()
}

// PickTopRowsF32 is PickTopF32 for each row of logits [len(rows), V] (masked in place), k
// candidates a row into top, rows on all cores: the host's PickTop.
func PickTopRowsF32(logits []float32, bitmaps [][]uint32, rows []PickRow, k int, out []Pick, top []Cand) {
	EachRow(len(rows), func(i int) {
		V := len(logits) / len(rows)
		out[i] = PickTopF32(logits[i*V:(i+1)*V], bitmaps, rows[i], top[i*k:(i+1)*k])
	})
}

// Argmax is the index of the largest value (the first on ties), -1 if none is above -Inf.
func Argmax(x []float32) int {
	best, bi := float32(math.Inf(-1)), -1
	for i, v := range x {
		if v > best {
			best, bi = v, i
		}
	}
	return bi
}

// LogSumExp is log(sum(exp(x))) in float64 around the largest value; -Inf when all are -Inf.
func LogSumExp(x []float32) float64 {
	maxv := maxFast(x)
	if math.IsInf(float64(maxv), -1) {
		return math.Inf(-1)
	}
	return float64(maxv) + math.Log(sumExpNegFast(x, maxv))
}
