package tokenizer

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"strconv"
)

// vocab is a byte-level BPE vocabulary: a token's rank is its id and its merge priority.
type vocab struct {
	data []byte   // every token's bytes, in rank order
	off  []uint32 // token i is data[off[i]:off[i+1]]
	// slots index the tokens by their bytes: open addressing, linear probing, a power of two
	// at least twice the tokens; each holds rank+1, 0 when empty. One buffer, two offsets a token
	// and this table are about 1 MB for the multilingual vocabulary, against 5.7 MB of Go heap as
	// a map of strings and a slice of slices (51,865 small allocations).
	slots []uint32
}

// n is the number of tokens.
func (v *vocab) n() int { return len(v.off) - 1 }

// token returns the bytes of token i (a view: not to be written, nor appended to).
func (v *vocab) token(i int) []byte { return v.data[v.off[i]:v.off[i+1]:v.off[i+1]] }

// hashBytes is FNV-1a over s.
func hashBytes(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := range len(s) {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// lookup returns the lowest rank of the token whose bytes are s.
func (v *vocab) lookup(s string) (int, bool) {
	mask := uint64(len(v.slots) - 1)
	for i := hashBytes(s) & mask; ; i = (i + 1) & mask {
		r := v.slots[i]
		if r == 0 {
			return 0, false
		}
		if string(v.token(int(r-1))) == s {
			return int(r - 1), true
		}
	}
}

// parseRanks reads a .tiktoken file: one "base64-token rank" per line, ranks 0..n-1.
func parseRanks(r io.Reader) (*vocab, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var toks [][]byte
	var rks []int
	for line := 1; sc.Scan(); line++ {
		f := bytes.Fields(sc.Bytes())
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("ranks line %d: want 2 fields, got %d", line, len(f))
		}
		// "=" (the multilingual file's empty token) is padding only: decode unpadded.
		tok, err := base64.RawStdEncoding.DecodeString(string(bytes.TrimRight(f[0], "=")))
		if err != nil {
			return nil, fmt.Errorf("ranks line %d: token: %w", line, err)
		}
		rank, err := strconv.Atoi(string(f[1]))
		if err != nil {
			return nil, fmt.Errorf("ranks line %d: rank: %w", line, err)
		}
		toks = append(toks, tok)
		rks = append(rks, rank)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read ranks: %w", err)
	}
	byRank := make([][]byte, len(toks))
	for i, rank := range rks {
		if rank < 0 || rank >= len(toks) || byRank[rank] != nil {
			return nil, fmt.Errorf("ranks: rank %d of %d tokens is out of range or repeated", rank, len(toks))
		}
		byRank[rank] = toks[i]
	}
	return newVocab(byRank)
}

// newVocab indexes tokens by bytes. Every single byte must be a token; a repeated token keeps
// its lowest id.
func newVocab(byRank [][]byte) (*vocab, error) {
	size := 0
	for _, b := range byRank {
		size += len(b)
	}
	if len(byRank) >= math.MaxInt32 || size > math.MaxUint32 {
		return nil, fmt.Errorf("vocabulary of %d tokens (%d bytes) is too large", len(byRank), size)
	}
	v := &vocab{data: make([]byte, 0, size), off: make([]uint32, 1, len(byRank)+1)}
	for _, b := range byRank {
		v.data = append(v.data, b...)
		v.off = append(v.off, uint32(len(v.data)))
	}
	n := 1
	for n < 2*len(byRank) {
		n *= 2
	}
	v.slots = make([]uint32, n)
	mask := uint64(n - 1)
	for r := range len(byRank) {
		s := string(v.token(r))
		if _, ok := v.lookup(s); ok {
			continue
		}
		i := hashBytes(s) & mask
		for v.slots[i] != 0 {
			i = (i + 1) & mask
		}
		v.slots[i] = uint32(r + 1)
	}
	for c := range 256 {
		if _, ok := v.lookup(string([]byte{byte(c)})); !ok {
			return nil, fmt.Errorf("vocabulary has no token for byte %#02x", c)
		}
	}
	return v, nil
}

const noRank = math.MaxInt

func (v *vocab) rank(s string) int {
	if r, ok := v.lookup(s); ok {
		return r
	}
	return noRank
}

// smallPiece is the longest piece merged by the simple quadratic scan; longer pieces use a
// heap, O(n log n). Both merge the leftmost lowest-ranked pair first, as tiktoken does.
const smallPiece = 64

// encodePiece appends the tokens of one pre-tokenized piece.
func (v *vocab) encodePiece(piece string, out []int) []int {
	if r, ok := v.lookup(piece); ok {
		return append(out, r)
	}
	if len(piece) <= smallPiece {
		return v.mergeSmall(piece, out)
	}
	return v.mergeHeap(piece, out)
}

// mergeSmall is tiktoken's scan: bounds[k] starts part k; ranks[k] is the rank of parts k and
// k+1 joined.
func (v *vocab) mergeSmall(piece string, out []int) []int {
	var boundsBuf, ranksBuf [smallPiece + 1]int
	n := len(piece)
	bounds := boundsBuf[:n+1]
	ranks := ranksBuf[:n]
	for k := range bounds {
		bounds[k] = k
	}
	pair := func(k int) int {
		if k+2 < len(bounds) {
			return v.rank(piece[bounds[k]:bounds[k+2]])
		}
		return noRank
	}
	for k := range ranks {
		ranks[k] = pair(k)
	}
	for len(ranks) > 1 {
		best, bk := noRank, -1
		for k, r := range ranks[:len(ranks)-1] {
			if r < best {
				best, bk = r, k
			}
		}
		if bk < 0 {
			break
		}
		// Join parts bk and bk+1.
		bounds = append(bounds[:bk+1], bounds[bk+2:]...)
		ranks = append(ranks[:bk+1], ranks[bk+2:]...)
		ranks[bk] = pair(bk)
		if bk > 0 {
			ranks[bk-1] = pair(bk - 1)
		}
	}
	for k := 0; k+1 < len(bounds); k++ {
		out = append(out, v.rank(piece[bounds[k]:bounds[k+1]]))
	}
	return out
}

// mergeHeap merges like mergeSmall with parts in a linked list and candidate pairs in a
// min-heap ordered by (rank, start); entries made stale by a merge are skipped.
func (v *vocab) mergeHeap(piece string, out []int) []int {
	n := len(piece)
	start := make([]int32, n+1) // start[k]: start byte of part k; start[n] = n
	next := make([]int32, n+1)
	prev := make([]int32, n+1)
	ver := make([]int32, n+1)
	for k := range n + 1 {
		start[k], next[k], prev[k] = int32(k), int32(k+1), int32(k-1)
	}
	end := func(k int32) int32 { return start[next[k]] }
	h := make(pairHeap, 0, n)
	entry := func(k int32) (pairEntry, bool) {
		if k < 0 || int(next[k]) >= n {
			return pairEntry{}, false
		}
		r := next[k]
		rk := v.rank(piece[start[k]:end(r)])
		return pairEntry{rank: rk, left: k, right: r, verL: ver[k], verR: ver[r]}, rk != noRank
	}
	push := func(k int32) {
		if e, ok := entry(k); ok {
			heap.Push(&h, e)
		}
	}
	for k := range int32(n - 1) {
		if e, ok := entry(k); ok {
			h = append(h, e)
		}
	}
	heap.Init(&h)
	for h.Len() > 0 {
		e := heap.Pop(&h).(pairEntry)
		l, r := e.left, e.right
		if next[l] != r || ver[l] != e.verL || ver[r] != e.verR {
			continue // stale
		}
		// Join r into l.
		nr := next[r]
		next[l] = nr
		prev[nr] = l
		ver[l]++
		ver[r] = -1
		push(prev[l])
		push(l)
	}
	for k := int32(0); int(k) < n; k = next[k] {
		out = append(out, v.rank(piece[start[k]:end(k)]))
	}
	return out
}

type pairEntry struct {
	rank        int
	left, right int32
	verL, verR  int32
}

type pairHeap []pairEntry

func (h pairHeap) Len() int { return len(h) }
func (h pairHeap) Less(i, j int) bool {
	if h[i].rank != h[j].rank {
		return h[i].rank < h[j].rank
	}
	return h[i].left < h[j].left
}
func (h pairHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pairHeap) Push(x any)   { *h = append(*h, x.(pairEntry)) }
func (h *pairHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
