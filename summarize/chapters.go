package summarize

import (
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Chapter is a titled part of the transcript.
type Chapter struct {
	Start   time.Duration
	Title   string
	First   int    // index of its first sentence
	Summary string // a sentence on what it covers (a language model's; "" from Extractive)
}

// Topic segmentation settings (see the package comment).
const (
	maxWindow    = 12   // sentences on each side of a gap, at most
	minWindow    = 2    // and at least
	pauseBoost   = 2.0  // seconds: a pause this long between sentences strengthens a boundary
	maxCohesion  = 0.6  // a boundary whose chapters are more alike than this is dropped
	sepMargin    = 1.0  // and one whose separation is below sqrt(ln n) + sepMargin
	defaultMinCh = 60.0 // seconds: the default shortest chapter, scaled down for short recordings
	rounds       = 4    // rounds of merging, unmixing, splitting and refining at most
	splitTries   = 5    // places judged in full when looking for a topic change in a chapter
)

// segmenter holds what topic segmentation computes over a model.
type segmenter struct {
	m      *model
	pos    []float64 // each sentence's start in seconds from the first (made up if untimed)
	timed  bool      // whether the sentences have times (else pauses are unknown)
	length float64   // seconds from the first sentence's start to the last one's end
	minCh  float64   // shortest chapter in seconds
	k      int       // window in sentences
	minSep float64   // least separation of a boundary's chapters
	d      *dense
	slots  [3]*dense // scratch for groups' dense sums
}

func newSegmenter(m *model, opts Options) *segmenter {
	s := &segmenter{m: m, d: newDense(len(m.terms)), timed: true}
	n := m.n
	s.pos = m.starts
	s.length = m.ends[n-1]
	if s.length <= 0 || (n > 1 && s.pos[n-1] <= 0) { // no usable times: five seconds a sentence
		s.timed = false
		s.pos = make([]float64, n)
		for i := range s.pos {
			s.pos[i] = 5 * float64(i)
		}
		s.length = 5 * float64(n)
	}
	s.minCh = opts.MinChapter.Seconds()
	if s.minCh <= 0 {
		s.minCh = min(defaultMinCh, s.length/6)
	}
	steps := make([]float64, 0, n)
	for i := 1; i < n; i++ {
		if d := s.pos[i] - s.pos[i-1]; d > 0 {
			steps = append(steps, d)
		}
	}
	step := 5.0
	if len(steps) > 0 {
		slices.Sort(steps)
		step = steps[len(steps)/2]
	}
	s.k = min(max(int(math.Round(s.minCh/step)), minWindow), maxWindow)
	// Splitting one topic at n places, the largest t statistic is about sqrt(2 ln n); the
	// smaller of two such is above x with probability about exp(-x²), so below sqrt(ln n).
	s.minSep = math.Sqrt(math.Log(float64(max(n, 2)))) + sepMargin
	return s
}

// boundaries returns the first sentence of each chapter, starting with 0: want chapters when
// want > 0 (fewer if the transcript is too short for them), else as many as the topics found.
// The window curve, the refinement rounds and the tests of merge, unmix and split decide how
// many chapters there are and roughly where; then optimal places the starts where the
// chapters are the most coherent in total, and polish settles each to the sentence.
func (s *segmenter) boundaries(want int) []int {
	n := s.m.n
	if n <= 2 || want == 1 {
		return []int{0}
	}
	score, valley := s.scores()
	// Candidates: valleys of the similarity curve and gaps at long pauses (any gap when a
	// number of chapters is asked for), strongest first, each at least minCh from the others
	// and from the ends.
	var cands []int
	for g := 1; g < n; g++ {
		if valley[g] || s.pause(g) >= pauseBoost || want > 0 {
			cands = append(cands, g)
		}
	}
	sort.SliceStable(cands, func(a, b int) bool {
		if score[cands[a]] != score[cands[b]] {
			return score[cands[a]] > score[cands[b]]
		}
		return valley[cands[a]] && !valley[cands[b]]
	})
	limit := max(1, int(min(s.length/s.minCh, float64(n))))
	if want > 0 {
		limit = min(limit, want)
	}
	chosen := []int{0}
	for _, g := range cands {
		if len(chosen) >= limit {
			break
		}
		if s.fits(chosen, g) {
			chosen = append(chosen, g)
		}
	}
	slices.Sort(chosen)
	chosen = s.refine(chosen, s.k)
	if want > 0 {
		return s.polish(s.optimal(s.refine(chosen, 0)))
	}
	slices.Sort(cands)
	for range rounds {
		next := s.refine(s.unmix(s.merge(chosen)), 0)
		next = s.refine(s.split(next, cands), 0)
		if slices.Equal(next, chosen) {
			break
		}
		chosen = next
	}
	return s.polish(s.optimal(chosen))
}

// split adds to each chapter a boundary where it hides a clear topic change: of the candidates
// at least minCh from its ends, the splitTries that would leave the least cohesive halves are
// judged in full, and the best separated is added if merge would keep it.
func (s *segmenter) split(b []int, cands []int) []int {
	n := s.m.n
	var out []int
	for j, a := range b {
		out = append(out, a)
		c := n
		if j+1 < len(b) {
			c = b[j+1]
		}
		end := s.length
		if c < n {
			end = s.pos[c]
		}
		var inside []int
		for _, g := range cands {
			if g > a && g < c && s.pos[g]-s.pos[a] >= s.minCh && end-s.pos[g] >= s.minCh {
				inside = append(inside, g)
			}
		}
		best, bestT := -1, 0.0
		for _, g := range s.leastCohesive(a, c, inside) {
			if t, ch := s.judge(a, g, c); s.clear(t, ch) && t > bestT {
				best, bestT = g, t
			}
		}
		if best >= 0 {
			out = append(out, best)
		}
	}
	return out
}

// leastCohesive returns the splitTries places of gs (increasing, inside (a, c)) where
// splitting [a, c) leaves the least cohesive halves, the least first. One pass moves the
// sentences from the right half to the left, keeping the sums' dot products up to date.
func (s *segmenter) leastCohesive(a, c int, gs []int) []int {
	left, right := s.group(a, a, 0), s.group(a, c, 1)
	la, rb := s.slots[0], s.slots[1]
	aa, bb, ab := 0.0, right.dot(right), 0.0
	na, nb := 0, right.n
	type place struct {
		g   int
		coh float64
	}
	var ps []place
	k := 0
	for i := a; i < c && k < len(gs); i++ {
		if i == gs[k] {
			ps = append(ps, place{i, cohesion(ab, aa, bb, na, nb)})
			k++
		}
		v := s.m.vecs[i]
		if len(v) == 0 {
			continue
		}
		va, vb, vv := 0.0, 0.0, 0.0
		for _, e := range v {
			va += left.w[e.id] * e.w
			vb += right.w[e.id] * e.w
			vv += e.w * e.w
		}
		ab += vb - va - vv // (A+v)·(B−v)
		aa += 2*va + vv
		bb += vv - 2*vb
		la.add(v)
		for _, e := range v {
			rb.w[e.id] -= e.w
		}
		na++
		nb--
	}
	sort.SliceStable(ps, func(x, y int) bool { return ps[x].coh < ps[y].coh })
	out := make([]int, 0, splitTries)
	for _, p := range ps[:min(len(ps), splitTries)] {
		out = append(out, p.g)
	}
	return out
}

// pause is the silence before sentence g (0 when untimed).
func (s *segmenter) pause(g int) float64 {
	if !s.timed {
		return 0
	}
	return s.m.starts[g] - s.m.ends[g-1]
}

// fits reports whether a chapter may start at g given the chosen starts: at least minCh from
// each of them and from the end.
func (s *segmenter) fits(chosen []int, g int) bool {
	if s.length-s.pos[g] < s.minCh {
		return false
	}
	for _, b := range chosen {
		if math.Abs(s.pos[g]-s.pos[b]) < s.minCh {
			return false
		}
	}
	return true
}

// scores computes, for each gap g (before sentence g), the boundary score and whether g is a
// valley. The similarity at g is the cosine of the summed vectors of the k sentences before
// and the k after, smoothed over three gaps; the score is the depth of the curve at g below
// the highest points within k gaps on either side, raised by up to one standard deviation of
// the valleys' depths at a pause of pauseBoost or longer.
func (s *segmenter) scores() (score []float64, valley []bool) {
	n, k := s.m.n, s.k
	sim := make([]float64, n)
	for g := 1; g < n; g++ {
		left := s.m.sum(s.d, max(0, g-k), g)
		right := s.m.sum(s.d, g, min(n, g+k))
		sim[g] = cosine(left, right)
	}
	sm := make([]float64, n)
	for g := 1; g < n; g++ {
		a, b := max(1, g-1), min(n-1, g+1)
		t := 0.0
		for j := a; j <= b; j++ {
			t += sim[j]
		}
		sm[g] = t / float64(b-a+1)
	}
	score = make([]float64, n)
	valley = make([]bool, n)
	var depths []float64
	for g := 1; g < n; g++ {
		lp, rp := sm[g], sm[g]
		for j := max(1, g-k); j < g; j++ {
			lp = max(lp, sm[j])
		}
		for j := g + 1; j <= min(n-1, g+k); j++ {
			rp = max(rp, sm[j])
		}
		score[g] = lp + rp - 2*sm[g]
		valley[g] = (g == 1 || sm[g] <= sm[g-1]) && (g == n-1 || sm[g] <= sm[g+1]) && score[g] > 0
		if valley[g] {
			depths = append(depths, score[g])
		}
	}
	_, sd := meanStd(depths)
	for g := 1; g < n; g++ {
		if p := s.pause(g); p >= pauseBoost {
			score[g] += sd * min(1, p/(2*pauseBoost))
		}
	}
	return score, valley
}

func meanStd(xs []float64) (mean, sd float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	for _, x := range xs {
		sd += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(sd / float64(len(xs)))
}

// group is a run of sentences [a, b): the sum of their vectors, dense, in one of the
// segmenter's scratch slots (valid until the slot is used again), and how many of them have
// content words.
type group struct {
	a, b, n int
	w       []float64
	used    []int // the ids where w is not 0
}

// group sums sentences [a, b) into scratch slot k (0 to 2).
func (s *segmenter) group(a, b, k int) group {
	d := s.slots[k]
	if d == nil {
		d = newDense(len(s.m.terms))
		s.slots[k] = d
	}
	d.reset()
	n := 0
	for i := a; i < b; i++ {
		d.add(s.m.vecs[i])
		if len(s.m.vecs[i]) > 0 {
			n++
		}
	}
	return group{a: a, b: b, n: n, w: d.w, used: d.used}
}

// dot is the dot product of the groups' sums.
func (g group) dot(h group) float64 {
	t := 0.0
	for _, id := range g.used {
		t += g.w[id] * h.w[id]
	}
	return t
}

// fit is the mean similarity of sentence i to the sentences of g, i itself left out.
func (s *segmenter) fit(i int, g group) float64 {
	v := s.m.vecs[i]
	d := 0.0
	for _, e := range v {
		d += g.w[e.id] * e.w
	}
	cnt := g.n
	if i >= g.a && i < g.b && len(v) > 0 {
		d--
		cnt--
	}
	if cnt <= 0 {
		return 0
	}
	return d / float64(cnt)
}

// refine moves each boundary, within span sentences of where it is (0 = anywhere between its
// neighbours), to where the sentences on either side best fit their own chapter: the split
// maximizing the sum over the sentences between of (fit to the chapter before − fit to the
// chapter after) for those before the split. Ties go to a place after a pause of a second or
// more, then to the nearest place. Chapters stay at least minCh long.
func (s *segmenter) refine(b []int, span int) []int {
	return s.moveEach(b, span, func(at, lo int, ps []float64) int {
		best, bestP := lo, ps[0]
		for i, p := range ps[1:] {
			g := lo + 1 + i
			better := p > bestP+1e-12
			if !better && math.Abs(p-bestP) <= 1e-12 {
				pg, pb := s.pause(g) >= pauseBoost/2, s.pause(best) >= pauseBoost/2
				better = pg && !pb || pg == pb && abs(g-at) < abs(best-at)
			}
			if better {
				best, bestP = g, p
			}
		}
		return best
	})
}

// moveEach moves each boundary of b (up to three rounds, until none moves) to the place pick
// chooses in its moveRange with span: pick gets the boundary's place, the range's first place
// and ps, where ps[g-lo] sums over the sentences from lo to g their fit to the chapter before
// less their fit to the chapter after (so the largest is where both sides fit best).
func (s *segmenter) moveEach(b []int, span int, pick func(at, lo int, ps []float64) int) []int {
	n := s.m.n
	b = slices.Clone(b)
	for range 3 {
		moved := false
		for j := 1; j < len(b); j++ {
			prev, next := b[j-1], n
			if j+1 < len(b) {
				next = b[j+1]
			}
			lo, hi := s.moveRange(prev, b[j], next, span)
			if lo >= hi {
				continue
			}
			ga, gb := s.group(prev, b[j], 0), s.group(b[j], next, 1)
			ps := make([]float64, hi-lo+1)
			p := 0.0
			for g := lo; g <= hi; g++ {
				if g > lo {
					p += s.fit(g-1, ga) - s.fit(g-1, gb)
				}
				ps[g-lo] = p
			}
			if g := pick(b[j], lo, ps); g != b[j] {
				b[j] = g
				moved = true
			}
		}
		if !moved {
			break
		}
	}
	return b
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// clear reports whether two chapters with separation sep and cohesion coh (judge) are clearly
// different topics: cohesion at most maxCohesion, and separation at least minSep, or less when
// the chapters share few words: down to half of it for chapters with nothing in common. A short
// recording has few sentences with words in common, which keeps the t statistic low even where
// the vocabulary changes completely (a 90-second memo read by a weak model, say).
func (s *segmenter) clear(sep, coh float64) bool {
	return coh <= maxCohesion && sep >= s.minSep*(0.5+0.5*min(1, coh/maxCohesion))
}

// merge drops the boundaries whose chapters are not clearly different topics (clear), the least
// separated first.
func (s *segmenter) merge(b []int) []int {
	b = slices.Clone(b)
	n := s.m.n
	sep := make([]float64, len(b))
	weak := make([]bool, len(b))
	eval := func(j int) {
		next := n
		if j+1 < len(b) {
			next = b[j+1]
		}
		var coh float64
		sep[j], coh = s.judge(b[j-1], b[j], next)
		weak[j] = !s.clear(sep[j], coh)
	}
	for j := 1; j < len(b); j++ {
		eval(j)
	}
	for {
		worst := -1
		for j := 1; j < len(b); j++ {
			if weak[j] && (worst < 0 || sep[j] < sep[worst]) {
				worst = j
			}
		}
		if worst < 0 {
			return b
		}
		b = slices.Delete(b, worst, worst+1)
		sep = slices.Delete(sep, worst, worst+1)
		weak = slices.Delete(weak, worst, worst+1)
		if worst-1 >= 1 {
			eval(worst - 1)
		}
		if worst < len(b) {
			eval(worst)
		}
	}
}

// judge tells how clearly chapters [a, g) and [g, c) are different topics, by two figures.
//
// Separation: for each chapter, over its sentences that share words with either, the
// difference between a sentence's fit to its own chapter and its fit to the other, as a t
// statistic (the mean over its standard error); separation is the smaller of the two. About
// 0 when they are one topic; large when the sentences of both fit their own side. Taking the
// smaller keeps a run of sentences that resemble nothing in particular from passing for a topic
// of its own (the other chapter's sentences fit it poorly, but so do its own).
//
// Cohesion: see cohesion.
func (s *segmenter) judge(a, g, c int) (separation, coh float64) {
	ga, gb := s.group(a, g, 0), s.group(g, c, 1)
	if ga.n < 2 || gb.n < 2 {
		return 0, math.Inf(1) // a sentence or two is no topic of its own
	}
	side := func(own, other group) float64 {
		var ds []float64
		for i := own.a; i < own.b; i++ {
			fo, ft := s.fit(i, own), s.fit(i, other)
			if fo == 0 && ft == 0 {
				continue // shares no word with either: no evidence
			}
			ds = append(ds, fo-ft)
		}
		if len(ds) < 2 {
			return 0
		}
		mean, sd := meanStd(ds)
		if sd == 0 {
			if mean > 0 {
				return math.Inf(1)
			}
			return 0
		}
		return mean / (sd / math.Sqrt(float64(len(ds))))
	}
	return min(side(ga, gb), side(gb, ga)), cohesion(ga.dot(gb), ga.dot(ga), gb.dot(gb), ga.n, gb.n)
}

// cohesion compares two chapters, given the dot products of their summed (unit) sentence
// vectors and their numbers of sentences with content words: the mean similarity of a
// sentence of one to a sentence of the other, over the mean similarity of two sentences of the
// same chapter (pooled over both, so that a short chapter's noisy figure weighs little).
// About 1 when both are one topic, near 0 when they share nothing.
func cohesion(ab, aa, bb float64, na, nb int) float64 {
	if na < 2 || nb < 2 {
		return math.Inf(1)
	}
	cross := ab / float64(na*nb)
	within := (aa - float64(na) + bb - float64(nb)) / float64(na*(na-1)+nb*(nb-1))
	switch {
	case cross <= 0:
		return 0
	case within <= 0:
		return math.Inf(1)
	}
	return cross / within
}

// unmix replaces a chapter that is better told as the end of the chapter before it and the
// start of the one after (two boundaries around one topic change) by one boundary: when its
// sentences fit their own chapter less, in sum, than they fit those neighbours on either side
// of the best split between them.
func (s *segmenter) unmix(b []int) []int {
	b = slices.Clone(b)
	n := s.m.n
	for changed := true; changed; {
		changed = false
		for j := 1; j+1 < len(b); j++ {
			prev, c0, c1, next := b[j-1], b[j], b[j+1], n
			if j+2 < len(b) {
				next = b[j+2]
			}
			ga, gb, gc := s.group(prev, c0, 0), s.group(c1, next, 1), s.group(c0, c1, 2)
			own, other, p := 0.0, 0.0, 0.0
			for i := c0; i < c1; i++ {
				own += s.fit(i, gc)
				other += s.fit(i, gb)
			}
			end := s.length
			if next < n {
				end = s.pos[next]
			}
			best, bestP := -1, math.Inf(-1)
			for g := c0; g <= c1; g++ {
				if g > c0 {
					p += s.fit(g-1, ga) - s.fit(g-1, gb)
				}
				if s.pos[g]-s.pos[prev] >= s.minCh && end-s.pos[g] >= s.minCh && p > bestP {
					best, bestP = g, p
				}
			}
			if best < 0 || other+bestP < own {
				continue
			}
			b = slices.Delete(b, j, j+1)
			b[j] = best
			changed = true
			break
		}
	}
	return b
}

// titles names each chapter [b[j], b[j+1]) by its most distinctive words: those frequent in it
// and rare elsewhere (count in the chapter × idf × the share of the term's sentences that are
// in the chapter), in their most common surface form. Titles are distinct.
func titles(m *model, b []int) []string {
	out := make([]string, len(b))
	used := map[string]bool{}
	for j := range b {
		a, c := b[j], m.n
		if j+1 < len(b) {
			c = b[j+1]
		}
		cands := distinctive(m, a, c)
		want := 3
		if c-a < 3 {
			want = 2
		}
		title := ""
		if len(cands) > 0 {
			pick := cands[:min(want, len(cands))]
			title = joinTitle(pick)
			// Distinct: swap the last word for the next candidates until the title is new.
			for alt := len(pick); used[strings.ToLower(title)] && alt < len(cands); alt++ {
				p := append(slices.Clone(pick[:len(pick)-1]), cands[alt])
				title = joinTitle(p)
			}
		} else {
			title = fallbackTitle(m, a, c)
		}
		if title == "" {
			title = "Part " + strconv.Itoa(j+1)
		}
		base := title
		for i := 2; used[strings.ToLower(title)]; i++ {
			title = base + " (" + strconv.Itoa(i) + ")"
		}
		used[strings.ToLower(title)] = true
		out[j] = title
	}
	return out
}

// distinctive lists the surface forms of chapter [a, c)'s title words, best first.
func distinctive(m *model, a, c int) []string {
	count := map[int]int{}
	forms := map[int]map[string]int{}
	var order []int // term ids in order of appearance in the chapter
	for i := a; i < c; i++ {
		seen := map[int]bool{}
		for _, t := range m.toks[i] {
			id := t.id
			if forms[id] == nil {
				forms[id] = map[string]int{}
				order = append(order, id)
			}
			forms[id][t.surface]++
			if !seen[id] {
				seen[id] = true
				count[id]++
			}
		}
	}
	minCount := 1
	if c-a >= 4 {
		for _, id := range order {
			if count[id] >= 2 {
				minCount = 2
				break
			}
		}
	}
	type scored struct {
		id    int
		score float64
	}
	var ss []scored
	for _, id := range order {
		if count[id] < minCount {
			continue
		}
		cnt := float64(count[id])
		idf := m.idf[id]
		if m.df[id] == m.n { // in every sentence: still a fair title for a one-sentence chapter
			idf = 0.01
		}
		ss = append(ss, scored{id, cnt * idf * cnt / float64(m.df[id])})
	}
	sort.SliceStable(ss, func(i, j int) bool { return ss[i].score > ss[j].score })
	out := make([]string, 0, len(ss))
	seen := map[string]bool{}
	for _, x := range ss {
		f := bestForm(forms[x.id])
		if !seen[strings.ToLower(f)] {
			seen[strings.ToLower(f)] = true
			out = append(out, f)
		}
	}
	return out
}

// bestForm is the most frequent form; ties go to the lowercase one, then the first in order.
func bestForm(forms map[string]int) string {
	keys := make([]string, 0, len(forms))
	for f := range forms {
		keys = append(keys, f)
	}
	sort.Strings(keys) // capitals sort first; prefer lowercase on ties below
	best := ""
	for _, f := range keys {
		switch {
		case best == "", forms[f] > forms[best]:
			best = f
		case forms[f] == forms[best] && f == strings.ToLower(f) && best != strings.ToLower(best):
			best = f
		}
	}
	return best
}

// joinTitle writes "Word", "Word and word" or "Word, word and word".
func joinTitle(ws []string) string {
	var t string
	switch len(ws) {
	case 0:
		return ""
	case 1:
		t = ws[0]
	default:
		t = strings.Join(ws[:len(ws)-1], ", ") + " and " + ws[len(ws)-1]
	}
	r, n := utf8.DecodeRuneInString(t)
	return string(unicode.ToUpper(r)) + t[n:]
}

// fallbackTitle is the start of the chapter's first sentence with words, for a chapter
// without content words: at most six words.
func fallbackTitle(m *model, a, c int) string {
	for i := a; i < c; i++ {
		ws := strings.Fields(m.texts[i])
		if len(ws) == 0 {
			continue
		}
		t := strings.Join(ws[:min(6, len(ws))], " ")
		t = strings.TrimRightFunc(t, func(r rune) bool { return unicode.IsPunct(r) })
		if len(ws) > 6 {
			t += "…"
		}
		return t
	}
	return ""
}

// moveRange is where the chapter start cur, between the starts prev and next (next = n: the
// end), may move: within span sentences of cur (span <= 0: anywhere between), leaving both
// chapters at least minCh long where cur did.
func (s *segmenter) moveRange(prev, cur, next, span int) (lo, hi int) {
	lo, hi = prev+1, next-1
	if span > 0 {
		lo, hi = max(lo, cur-span), min(hi, cur+span)
	}
	end := s.length
	if next < s.m.n {
		end = s.pos[next]
	}
	for lo < cur && s.pos[lo]-s.pos[prev] < s.minCh {
		lo++
	}
	for hi > cur && end-s.pos[hi] < s.minCh {
		hi--
	}
	return lo, hi
}
