package summarize

import (
	"math"
	"slices"
	"sort"
	"time"
)

// Item is a sentence picked for the summary, an action item or a decision, with its time. A
// language model's item may have no time: Start is then negative.
type Item struct {
	Start time.Duration
	Text  string
}

// Result is what Extractive finds in a transcript.
type Result struct {
	Summary   []Item    // the key sentences, in transcript order
	Chapters  []Chapter // in order; the first starts at the first sentence
	Actions   []Item    // action items, in transcript order
	Decisions []Item    // decisions, in transcript order
}

// Options tune Extractive; the zero value decides everything from the transcript.
type Options struct {
	// MaxSummary is the number of summary sentences; 0 = by length, from 3 for a short memo to
	// 12 for two hours or more.
	MaxSummary int
	// MinChapter is the shortest chapter; 0 = 60 s, or a sixth of the recording when that is
	// shorter (a 90-second memo may have chapters of 15 s).
	MinChapter time.Duration
	// Chapters is the number of chapters wanted; 0 = as many as the topics found. Fewer come
	// back when the transcript is too short for them at MinChapter.
	Chapters int
}

// Summary selection settings (see the package comment).
const (
	maxAuto    = 12  // summary sentences at most when chosen by length
	minAuto    = 3   // and at least
	mmrLambda  = 0.7 // weight of a sentence's own score against its likeness to those chosen
	nearDup    = 0.7 // cosine above which a sentence repeats one already chosen
	shortWords = 6   // sentences shorter than this, or longer than longWords, score less
	longWords  = 30
)

// Extractive summarizes sentences: key sentences, chapters, action items and decisions. It is
// deterministic and runs in time about linear in the transcript's length.
func Extractive(sents []Sentence, opts Options) Result {
	var r Result
	if len(sents) == 0 {
		return r
	}
	m := newModel(sents)
	seg := newSegmenter(m, opts)
	bounds := seg.boundaries(opts.Chapters)
	for j, t := range titles(m, bounds) {
		r.Chapters = append(r.Chapters, Chapter{Start: sents[bounds[j]].Start, Title: t, First: bounds[j]})
	}
	for _, i := range summary(m, bounds, budget(opts.MaxSummary, seg.length, m.n)) {
		r.Summary = append(r.Summary, Item{Start: sents[i].Start, Text: sents[i].Text})
	}
	for _, s := range sents {
		action, decision := classify(s.Text)
		switch {
		case decision:
			r.Decisions = append(r.Decisions, Item{Start: s.Start, Text: s.Text})
		case action:
			r.Actions = append(r.Actions, Item{Start: s.Start, Text: s.Text})
		}
	}
	return r
}

// budget is the number of summary sentences: want when set, else 2 + 10·√(minutes/120),
// between minAuto and maxAuto; never more than n.
func budget(want int, seconds float64, n int) int {
	b := want
	if b <= 0 {
		b = int(math.Round(2 + 10*math.Sqrt(seconds/60/120)))
		b = min(max(b, minAuto), maxAuto)
		b = min(b, max(1, (n+2)/3)) // a digest: at most a third of the sentences
	}
	return min(b, n)
}

// summary picks up to b sentences: first the best of each chapter (of the longest chapters when
// there are more chapters than b), then by maximal marginal relevance, never one that repeats a
// chosen one. It returns their indices in order.
func summary(m *model, bounds []int, b int) []int {
	n := m.n
	if n <= 2 {
		out := make([]int, 0, n)
		for i := range min(b, n) {
			out = append(out, i)
		}
		return out
	}
	d := newDense(len(m.terms))
	doc := unitOf(m.sum(d, 0, n))
	score := make([]float64, n)
	type chapter struct{ a, c int }
	chs := make([]chapter, len(bounds))
	for j, a := range bounds {
		c := n
		if j+1 < len(bounds) {
			c = bounds[j+1]
		}
		chs[j] = chapter{a, c}
		centroid := unitOf(m.sum(d, a, c))
		for i := a; i < c; i++ {
			score[i] = (dot(m.vecs[i], centroid) + dot(m.vecs[i], doc)) / 2 * lengthFactor(m.words[i])
		}
	}
	top := 0.0
	for _, s := range score {
		top = max(top, s)
	}
	if top <= 0 {
		return nil
	}
	var chosen []int
	likeness := func(i int) float64 {
		l := 0.0
		for _, c := range chosen {
			l = max(l, dot(m.vecs[i], m.vecs[c]))
		}
		return l
	}
	taken := make([]bool, n)
	// Coverage: the best sentence of each chapter, the longest chapters first when b is short.
	order := make([]int, len(chs))
	for j := range order {
		order[j] = j
	}
	if len(chs) > b {
		sort.SliceStable(order, func(x, y int) bool {
			return chs[order[x]].c-chs[order[x]].a > chs[order[y]].c-chs[order[y]].a
		})
		order = order[:b]
	}
	for _, j := range order {
		best := -1
		for i := chs[j].a; i < chs[j].c; i++ {
			if score[i] > 0 && likeness(i) <= nearDup && (best < 0 || score[i] > score[best]) {
				best = i
			}
		}
		if best >= 0 {
			chosen = append(chosen, best)
			taken[best] = true
		}
	}
	// Then maximal marginal relevance.
	for len(chosen) < b {
		best, bestV := -1, math.Inf(-1)
		for i := range n {
			if taken[i] || score[i] <= 0 {
				continue
			}
			l := likeness(i)
			if l > nearDup {
				continue
			}
			if v := mmrLambda*score[i]/top - (1-mmrLambda)*l; v > bestV {
				best, bestV = i, v
			}
		}
		if best < 0 {
			break
		}
		chosen = append(chosen, best)
		taken[best] = true
	}
	slices.Sort(chosen)
	return chosen
}

// lengthFactor favours sentences of shortWords to longWords words.
func lengthFactor(words int) float64 {
	switch {
	case words < shortWords:
		f := float64(words) / shortWords
		return f * f
	case words > longWords:
		f := float64(longWords) / float64(words)
		return f * f
	}
	return 1
}

func unitOf(v vector) vector {
	if l := norm(v); l > 0 {
		for i := range v {
			v[i].w /= l
		}
	}
	return v
}
