package summarize

import (
	"math"
	"slices"
)

// polishSpan is how far, in sentences, a start placed by optimal may still move to where the
// sentences on either side best fit their own chapter (see refine).
const polishSpan = 3

// optimal moves the chapter starts b (b[0] = 0) to where, with as many chapters and in the
// same order, the chapters are the most coherent in total. Coherence is measured over whole
// chapters: a chapter's is |S|²/L, with S the sum of its sentences' unit vectors and L the
// number of its sentences with content words; so the total is largest where the sentences lie
// closest to their own chapter's centroid. Each start stays between the midpoints to the
// starts on either side (a start moves; none is dropped or added), and chapters stay at least
// minCh long. The best placement is found exactly, by dynamic programming over the starts in
// order: for each possible place of a start, the best total of the chapters before it.
//
// Every place x of start j is paired with every place y of start j+1 in one pass that adds
// the sentences from x one by one, |S + v|² = |S|² + 2 v·S + 1, so the cost is about the
// number of sentences times the length of a chapter times the words of a sentence.
func (s *segmenter) optimal(b []int) []int {
	n, K := s.m.n, len(b)
	if K < 2 {
		return b
	}
	// places[j]: where start j may go (places[K] is the end).
	places := make([][]int, K+1)
	places[0] = []int{0}
	places[K] = []int{n}
	for j := 1; j < K; j++ {
		hi := n - 1
		if j+1 < K {
			hi = (b[j] + b[j+1]) / 2
		}
		for g := (b[j-1]+b[j])/2 + 1; g <= hi; g++ {
			if s.pos[g] >= s.minCh && s.length-s.pos[g] >= s.minCh {
				places[j] = append(places[j], g)
			}
		}
		if len(places[j]) == 0 {
			return b
		}
	}
	at := func(g int) float64 {
		if g == n {
			return s.length
		}
		return s.pos[g]
	}
	d := s.slots[2]
	if d == nil {
		d = newDense(len(s.m.terms))
		s.slots[2] = d
	}
	// best[j][y]: the best total of the j chapters before places[j][y]; from[j][y]: the
	// place of start j-1 that gives it.
	best := make([][]float64, K+1)
	from := make([][]int, K+1)
	best[0] = []float64{0}
	for j := range K {
		xs, ys := places[j], places[j+1]
		best[j+1] = make([]float64, len(ys))
		from[j+1] = make([]int, len(ys))
		for y := range ys {
			best[j+1][y] = math.Inf(-1)
		}
		for xi, x := range xs {
			if math.IsInf(best[j][xi], -1) {
				continue
			}
			d.reset()
			ss, cnt := 0.0, 0
			yi := 0
			for yi < len(ys) && ys[yi] <= x {
				yi++
			}
			for i := x; i < n && yi < len(ys); i++ {
				if v := s.m.vecs[i]; len(v) > 0 {
					vs := 0.0
					for _, e := range v {
						vs += d.w[e.id] * e.w
					}
					ss += 2*vs + 1
					cnt++
					d.add(v)
				}
				if ys[yi] != i+1 {
					continue
				}
				if at(ys[yi])-at(x) >= s.minCh {
					q := 0.0
					if cnt > 0 {
						q = ss / float64(cnt)
					}
					// Strictly better only: ties keep the earliest place, for determinism.
					if t := best[j][xi] + q; t > best[j+1][yi] {
						best[j+1][yi], from[j+1][yi] = t, xi
					}
				}
				yi++
			}
		}
	}
	if math.IsInf(best[K][0], -1) {
		return b
	}
	out := make([]int, K)
	for j, y := K, 0; j > 0; j-- {
		y = from[j][y]
		out[j-1] = places[j-1][y]
	}
	return out
}

// polish moves each start by at most polishSpan sentences to where the sentences on either
// side best fit their own chapter, as refine does. Where several places fit equally well (the
// sentences between them share no words with either chapter, so the words cannot tell), it
// takes the one after a pause of a second or more, else the middle one: the true change may
// be at any of them, and the middle is the nearest to all.
func (s *segmenter) polish(b []int) []int {
	return s.moveEach(b, polishSpan, func(at, lo int, ps []float64) int {
		top := slices.Max(ps)
		var ties, paused []int
		for i, p := range ps {
			if g := lo + i; p >= top-1e-12 {
				ties = append(ties, g)
				if s.pause(g) >= pauseBoost/2 {
					paused = append(paused, g)
				}
			}
		}
		if len(paused) > 0 {
			ties = paused
		}
		g := ties[(len(ties)-1)/2]
		if h := ties[len(ties)/2]; abs(h-at) < abs(g-at) {
			g = h // of two middles, the one nearer to where the start was
		}
		return g
	})
}
