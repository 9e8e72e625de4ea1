package whisper

import (
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/verbatimhq/verbatim/whisper/mel"
)

const (
	// regionPad is added to both sides of each speech region (samples, 0.1 s), so that the
	// decoder hears the onsets and ends the VAD cuts close.
	regionPad = mel.SampleRate / 10
	// windowLen is the most audio of one window (samples).
	windowLen = mel.ChunkSamples
	// unbounded is the end of a region without a known end (a stream without speech regions).
	unbounded = math.MaxInt64 / 4
	// readChunk is how many samples are read from an AudioSource at a time.
	readChunk = 1 << 16
)

// clip trims a segment (input times) to the speech regions as given, without the padding that
// windows carry for context: a cue then starts when the speech it overlaps starts and ends when
// that speech ends. Words and token times are clamped into the trimmed span. A segment that
// touches no region is left as it is.
func (tl *timeline) clip(s *Segment) {
	lo, hi, found := 0.0, 0.0, false
	for _, r := range tl.speech {
		if r.End < s.Start || r.Start > s.End {
			continue
		}
		if !found {
			lo, hi, found = r.Start, r.End, true
			continue
		}
		lo, hi = min(lo, r.Start), max(hi, r.End)
	}
	if !found {
		return
	}
	s.Start, s.End = max(s.Start, lo), min(s.End, hi)
	if s.End < s.Start {
		s.End = s.Start
	}
	clamp := func(x float64) float64 { return min(max(x, s.Start), s.End) }
	for i := range s.Words {
		s.Words[i].Start, s.Words[i].End = clamp(s.Words[i].Start), clamp(s.Words[i].End)
	}
	for i := range s.Tokens {
		if s.Tokens[i].Start != 0 || s.Tokens[i].End != 0 {
			s.Tokens[i].Start, s.Tokens[i].End = clamp(s.Tokens[i].Start), clamp(s.Tokens[i].End)
		}
	}
}

// region is a stretch [src, end) of the input's samples that is transcribed, at position virt
// of the virtual timeline (the regions one after another).
type region struct{ src, end, virt int }

func (g region) len() int { return g.end - g.src }

// timeline is the padded, merged speech regions and the virtual timeline they make.
type timeline struct {
	regions []region
	speech  []Span // the regions as given, sorted and merged, for speechCover
}

// newTimeline prepares spans (seconds): each padded by regionPad and clipped to [0, total) when
// total >= 0, sorted and merged where they touch. Without spans (has false) the whole input is
// one region.
func newTimeline(spans []Span, has bool, total int) *timeline {
	tl := &timeline{}
	end := unbounded
	if total >= 0 {
		end = total
	}
	if !has {
		if end > 0 {
			tl.regions = []region{{0, end, 0}}
		}
		return tl
	}
	var rs []region
	for _, s := range spans {
		if !(s.End > s.Start) || math.IsNaN(s.Start) || math.IsInf(s.End, 0) || math.IsInf(s.Start, 0) {
			continue
		}
		a := int(math.Floor(s.Start*mel.SampleRate)) - regionPad
		b := int(math.Ceil(s.End*mel.SampleRate)) + regionPad
		a, b = max(a, 0), min(b, end)
		if b > a {
			rs = append(rs, region{src: a, end: b})
		}
		tl.speech = append(tl.speech, s)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].src < rs[j].src })
	for _, g := range rs {
		if n := len(tl.regions); n > 0 && g.src <= tl.regions[n-1].end {
			tl.regions[n-1].end = max(tl.regions[n-1].end, g.end)
			continue
		}
		tl.regions = append(tl.regions, g)
	}
	v := 0
	for i := range tl.regions {
		tl.regions[i].virt = v
		v += tl.regions[i].len()
	}
	tl.speech = mergeSpans(tl.speech)
	return tl
}

func (tl *timeline) bounded() bool {
	return len(tl.regions) > 0 && tl.regions[len(tl.regions)-1].end < unbounded
}

// vlen is the length of the virtual timeline (samples).
func (tl *timeline) vlen() int {
	if len(tl.regions) == 0 {
		return 0
	}
	g := tl.regions[len(tl.regions)-1]
	return g.virt + g.len()
}

// setEnd clips the regions to an input of total samples.
func (tl *timeline) setEnd(total int) {
	for len(tl.regions) > 0 && tl.regions[len(tl.regions)-1].src >= total {
		tl.regions = tl.regions[:len(tl.regions)-1]
	}
	if n := len(tl.regions); n > 0 {
		tl.regions[n-1].end = min(tl.regions[n-1].end, total)
	}
}

// find returns the index of the region holding virtual position v (the last one for v >= vlen).
func (tl *timeline) find(v int) int {
	return max(0, sort.Search(len(tl.regions), func(i int) bool { return tl.regions[i].virt > v })-1)
}

// windowEnd is the end of the window that starts at virtual position v: the rest of v's region
// and the following whole regions while they fit in maxLen samples. A rest longer than maxLen
// makes a window of maxLen, or, with split (windows cut up front, Independent), is cut into equal
// parts of at most maxLen and the window is the first.
func (tl *timeline) windowEnd(v, maxLen int, split bool) int {
	k := tl.find(v)
	g := tl.regions[k]
	rest := g.virt + g.len() - v
	if rest > maxLen {
		if g.end >= unbounded || !split {
			return v + maxLen
		}
		parts := (rest + maxLen - 1) / maxLen
		return v + (rest+parts-1)/parts
	}
	v1 := v + rest
	for k+1 < len(tl.regions) && v1+tl.regions[k+1].len()-v <= maxLen {
		k++
		v1 += tl.regions[k].len()
	}
	return v1
}

// pieces is the map of the virtual span [v0, v1) onto the input.
func (tl *timeline) pieces(v0, v1 int) timeMap {
	var tm timeMap
	for k := tl.find(v0); k < len(tl.regions) && tl.regions[k].virt < v1; k++ {
		g := tl.regions[k]
		a, b := max(v0, g.virt), min(v1, g.virt+g.len())
		if b <= a {
			continue
		}
		p := piece{at: a - v0, src: g.src + a - g.virt, n: b - a}
		if n := len(tm); n > 0 && tm[n-1].src+tm[n-1].n == p.src {
			tm[n-1].n += p.n // contiguous in the input
			continue
		}
		tm = append(tm, p)
	}
	return tm
}

// speechCover is the fraction of [start, end] (seconds) inside the given speech regions; for an
// empty span, 1 if it lies in one, else 0.
func (tl *timeline) speechCover(start, end float64) float64 {
	if end <= start {
		for _, s := range tl.speech {
			if start >= s.Start && start <= s.End {
				return 1
			}
		}
		return 0
	}
	var in float64
	for _, s := range tl.speech {
		in += max(0, min(end, s.End)-max(start, s.Start))
	}
	return in / (end - start)
}

// piece places input samples [src, src+n) at window samples [at, at+n).
type piece struct{ at, src, n int }

// timeMap is the piecewise map from a window's time to the input's: the window's audio is its
// pieces one after another, increasing in the input, with gaps between them in the input.
type timeMap []piece

// length is the window's length in samples.
func (tm timeMap) length() int {
	if len(tm) == 0 {
		return 0
	}
	return tm[len(tm)-1].at + tm[len(tm)-1].n
}

// source maps window sample x (clamped to [0, length]) to the input. Where x is the boundary of
// two pieces, end selects the end of the piece before (a segment's end) and !end the start of
// the piece after (a segment's start).
func (tm timeMap) source(x int, end bool) int {
	if len(tm) == 0 {
		return 0
	}
	x = max(0, min(x, tm.length()))
	var k int
	if end {
		k = min(len(tm)-1, sort.Search(len(tm), func(i int) bool { return tm[i].at+tm[i].n >= x }))
	} else {
		k = max(0, sort.Search(len(tm), func(i int) bool { return tm[i].at > x })-1)
	}
	p := tm[k]
	return p.src + max(0, min(x-p.at, p.n))
}

// seconds is source for a time in samples, in seconds.
func (tm timeMap) seconds(x int, end bool) float64 {
	return float64(tm.source(x, end)) / mel.SampleRate
}

// split maps a segment (window times) to the input, with its tokens' and words' times when
// known. A segment within one piece keeps its text; one over several pieces is split between
// them: each token goes to the piece holding its middle when tokens are timed (word timing),
// else the tokens are shared out in order in proportion to the time the segment spends in each
// piece (by their text's length); a part without text joins its neighbour. No part lies in a gap
// between pieces, and no word or token time of a part leaves its piece.
func (tm timeMap) split(p pending, textOf func([]int) string) []pending {
	L := tm.length()
	at := func(sec float64) int { return max(0, min(L, int(math.Round(sec*mel.SampleRate)))) }
	x0 := at(p.seg.Start)
	x1 := max(x0, at(p.seg.End))
	var over []int // pieces the segment overlaps
	for k, q := range tm {
		if q.at < x1 && q.at+q.n > x0 {
			over = append(over, k)
		}
	}
	if len(over) <= 1 {
		p.seg.Start, p.seg.End = tm.seconds(x0, false), tm.seconds(x1, x1 > x0)
		p.seg.Tokens = slices.Clone(p.seg.Tokens)
		p.seg.Words = slices.Clone(p.seg.Words)
		// The segment's piece (for an empty segment, the one it starts), so that a token at the
		// piece's end stays there, not at the next piece's start.
		k := max(0, sort.Search(len(tm), func(i int) bool { return tm[i].at > x0 })-1)
		if len(over) == 1 {
			k = over[0]
		}
		if len(tm) > 0 {
			tm.mapTimes(&p.seg, &tm[k])
		}
		return []pending{p}
	}
	// pieceAt is the index in over of the piece holding window time sec (the nearest one).
	pieceAt := func(sec float64) int {
		x := at(sec)
		for i, k := range over {
			if x < tm[k].at+tm[k].n {
				return i
			}
		}
		return len(over) - 1
	}
	timed := false
	for _, t := range p.seg.Tokens {
		timed = timed || t.End > 0
	}
	parts := make([][]Token, len(over))
	if timed {
		last := 0
		for _, t := range p.seg.Tokens {
			last = max(last, pieceAt((t.Start+t.End)/2))
			parts[last] = append(parts[last], t)
		}
	} else {
		// The share of the segment's time in each piece, cumulated.
		cum := make([]float64, len(over))
		var acc float64
		for i, k := range over {
			q := tm[k]
			acc += float64(min(x1, q.at+q.n) - max(x0, q.at))
			cum[i] = acc
		}
		var chars float64
		for _, t := range p.seg.Tokens {
			chars += float64(max(1, len(t.Text)))
		}
		var c float64
		for _, t := range p.seg.Tokens {
			w := float64(max(1, len(t.Text)))
			mid := (c + w/2) / chars * acc
			c += w
			i := min(sort.SearchFloat64s(cum, mid), len(over)-1)
			parts[i] = append(parts[i], t)
		}
	}
	// A part whose text is blank joins the part before it (the first joins the next).
	blank := func(ts []Token) bool { return strings.TrimSpace(textOf(tokenIDs(ts))) == "" }
	for i := 1; i < len(parts); i++ {
		if len(parts[i]) > 0 && blank(parts[i]) {
			parts[i-1], parts[i] = append(parts[i-1], parts[i]...), nil
		}
	}
	if blank(parts[0]) {
		for i := 1; i < len(parts); i++ {
			if len(parts[i]) > 0 {
				parts[i], parts[0] = append(parts[0], parts[i]...), nil
				break
			}
		}
	}
	// Words go to the piece holding their middle, or the nearest part before (after) it.
	words := make([][]Word, len(over))
	last := 0
	for _, w := range p.seg.Words {
		i := max(last, pieceAt((w.Start+w.End)/2))
		for i > 0 && len(parts[i]) == 0 {
			i--
		}
		for i < len(parts)-1 && len(parts[i]) == 0 {
			i++
		}
		last = i
		words[i] = append(words[i], w)
	}
	var out []pending
	for i, k := range over {
		if len(parts[i]) == 0 {
			continue
		}
		q := tm[k]
		seg := p.seg
		seg.Tokens, seg.Words = parts[i], words[i]
		seg.Text = textOf(tokenIDs(parts[i]))
		seg.Start = float64(q.src+max(x0, q.at)-q.at) / mel.SampleRate
		seg.End = float64(q.src+min(x1, q.at+q.n)-q.at) / mel.SampleRate
		tm.mapTimes(&seg, &q)
		np := pending{seg: seg}
		if len(out) == 0 {
			np.all = p.all // the prompt history keeps the whole segment once
		}
		out = append(out, np)
	}
	return out
}

// mapTimes maps the times of seg's tokens and words (window seconds) to the input, within piece
// q if not nil. Tokens stay untimed (0, 0) when none of the segment's has a time.
func (tm timeMap) mapTimes(seg *Segment, q *piece) {
	L := tm.length()
	conv := func(sec float64, end bool) float64 {
		x := max(0, min(L, int(math.Round(sec*mel.SampleRate))))
		s := tm.source(x, end)
		if q != nil {
			s = max(q.src, min(q.src+q.n, s))
		}
		return float64(s) / mel.SampleRate
	}
	timed := false
	for _, t := range seg.Tokens {
		timed = timed || t.Start != 0 || t.End != 0
	}
	for i := range seg.Tokens {
		if t := &seg.Tokens[i]; timed {
			t.Start, t.End = conv(t.Start, false), conv(t.End, true)
		}
	}
	for i := range seg.Words {
		w := &seg.Words[i]
		w.Start, w.End = conv(w.Start, false), conv(w.End, true)
	}
}

func tokenIDs(ts []Token) []int {
	out := make([]int, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}
