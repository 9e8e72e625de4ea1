package sidecar

import (
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ShapeOptions are the limits subtitle shaping works to. A zero field takes its default, so
// ShapeOptions{} is the default shaping.
type ShapeOptions struct {
	MaxLineChars int           // characters (runes) per line; default 42
	MaxLines     int           // lines per cue; default 2
	MinDuration  time.Duration // shortest cue the speech allows; default 1 s
	MaxDuration  time.Duration // longest cue; default 7 s
	MaxCPS       float64       // reading speed in characters (spaces included) per second; default 17
	// SplitGap is the longest silence that may lie inside one cue; a longer one always ends the
	// cue before it. Default 1 s.
	SplitGap time.Duration
}

// Defaults of ShapeOptions.
const (
	DefaultMaxLineChars = 42
	DefaultMaxLines     = 2
	DefaultMinDuration  = time.Second
	DefaultMaxDuration  = 7 * time.Second
	DefaultMaxCPS       = 17.0
	DefaultSplitGap     = time.Second
)

func (o ShapeOptions) withDefaults() ShapeOptions {
	if o.MaxLineChars <= 0 {
		o.MaxLineChars = DefaultMaxLineChars
	}
	if o.MaxLines <= 0 {
		o.MaxLines = DefaultMaxLines
	}
	if o.MinDuration <= 0 {
		o.MinDuration = DefaultMinDuration
	}
	if o.MaxDuration <= 0 {
		o.MaxDuration = DefaultMaxDuration
	}
	if o.MinDuration > o.MaxDuration {
		o.MinDuration = o.MaxDuration
	}
	if o.MaxCPS <= 0 || math.IsNaN(o.MaxCPS) || math.IsInf(o.MaxCPS, 0) {
		o.MaxCPS = DefaultMaxCPS
	}
	if o.SplitGap <= 0 {
		o.SplitGap = DefaultSplitGap
	}
	return o
}

// needed is how long a cue of n characters should stay up: MinDuration, or longer for reading
// speed, never more than MaxDuration.
func (o ShapeOptions) needed(n int) time.Duration {
	d := time.Duration(math.Ceil(float64(n) / o.MaxCPS * 1000))
	d *= time.Millisecond
	return min(max(d, o.MinDuration), o.MaxDuration)
}

// Shape cuts a transcript into subtitle cues that respect opts. It is a pure function; the
// rules, in order of precedence:
//
//   - Text: segment texts (or their words) are joined with single spaces, except between two CJK
//     characters. Lines hold at most MaxLineChars runes and cues at most MaxLines lines. A word
//     longer than a line is hard-broken every MaxLineChars runes, with nothing inserted. Text
//     without spaces (Chinese, Japanese) wraps between characters.
//   - Cuts: a silence longer than SplitGap always ends a cue. Otherwise a cue is filled as far as
//     the limits allow and cut at the best boundary: after a sentence (. ! ?), then after a clause
//     (, ; : — and before a conjunction), then between words, weighed against how full the cue
//     is and against leaving a cue too short to read.
//   - Lines: a cue that fits on one line stays on one; otherwise lines are balanced in length,
//     preferring breaks at clause boundaries.
//   - Times: without word times, a split segment's times are interpolated in proportion to
//     characters; with word times, cuts fall between words at their times. A cue starts when
//     its speech starts. It ends at max(speech end, start + needed), where needed is
//     max(MinDuration, characters/MaxCPS), capped at MaxDuration after the start, at the next
//     cue's speech and at the end of the media. So a cue outlasts its speech only as long as
//     reading needs, and a longer silence stays a gap. Cues never overlap.
//   - Degenerate times (speech of zero length with the next speech at the same instant) would
//     give an empty cue: it is shown for its needed time and the following speech is delayed
//     by as much, the one case where a cue may cover later speech.
func Shape(t *Transcript, opts ShapeOptions) []Cue {
	sh := shape(t, opts.withDefaults())
	cues := make([]Cue, len(sh))
	for i, s := range sh {
		cues[i] = s.Cue
	}
	return cues
}

// unit is the smallest piece of text shaping places: a word, a CJK character with its trailing
// punctuation, or a piece of a hard-broken long word.
type unit struct {
	text       string
	n          int // runes
	start, end time.Duration
	space      bool // separated from the previous unit by a space (when on the same line)
	after      int  // cost of cutting after this unit (see cut costs)
	conj       bool // a conjunction: cutting before it is a clause boundary
}

// Costs of cutting a cue or a line after a unit.
const (
	cutSentence = 0
	cutClause   = 1
	cutConj     = 2
	cutWord     = 4
	cutGlue     = 8 // inside a hard-broken word
)

// pauseCut is the shortest silence that makes a boundary a better place for a cut.
const pauseCut = 300 * time.Millisecond

// shaped is a cue with what shaping knew about it, for tests.
type shaped struct {
	Cue
	speechStart, speechEnd time.Duration
	chars                  int
	pushed                 bool
}

func shape(t *Transcript, o ShapeOptions) []shaped {
	us := units(t, o)
	if len(us) == 0 {
		return nil
	}
	// Times to whole milliseconds, monotonic: a unit starts no earlier than the previous ends.
	var prev time.Duration
	for i := range us {
		u := &us[i]
		u.start = max(u.start.Round(time.Millisecond), prev, 0)
		u.end = max(u.end.Round(time.Millisecond), u.start)
		prev = u.end
	}
	n := len(us)
	// hard[i] is the first k > i that a silence separates from k-1 (or n).
	hard := make([]int, n)
	hard[n-1] = n
	for k := n - 1; k > 0; k-- {
		if us[k].start-us[k-1].end > o.SplitGap {
			hard[k-1] = k
		} else {
			hard[k-1] = hard[k]
		}
	}
	// chars[k] is the text length of units [0, k) when set on one line.
	chars := make([]int, n+1)
	for k, u := range us {
		chars[k+1] = chars[k] + u.n
		if k > 0 && u.space {
			chars[k+1]++
		}
	}
	span := func(a, b int) int { // characters of units [a, b) on one line
		c := chars[b] - chars[a]
		if us[a].space && a > 0 {
			c--
		}
		return c
	}

	var out []shaped
	for i := 0; i < n; {
		j := pick(us, i, hard[i], o, span)
		c := span(i, j)
		s, e := us[i].start, us[j-1].end
		need := o.needed(c)
		limit := s + o.MaxDuration
		if j < n {
			limit = min(limit, us[j].start)
		} else if t.Duration > e {
			limit = min(limit, t.Duration)
		}
		end := min(max(e, s+need), limit)
		pushed := false
		if end <= s {
			// Nothing to show it in: show it for its needed time and push later speech back.
			end = s + need
			pushed = true
			for k := j; k < n && us[k].start < end; k++ {
				us[k].start = end
				us[k].end = max(us[k].end, end)
			}
		}
		out = append(out, shaped{
			Cue:         Cue{Start: s, End: end, Text: layout(us[i:j], o)},
			speechStart: s, speechEnd: e, chars: c, pushed: pushed,
		})
		i = j
	}
	return out
}

// pick chooses where the cue starting at unit i ends (exclusive), at most at hard.
func pick(us []unit, i, hard int, o ShapeOptions, span func(a, b int) int) int {
	capacity := float64(o.MaxLineChars * o.MaxLines)
	w := wrapper{max: o.MaxLineChars, maxLines: o.MaxLines}
	best, bestCost := i+1, math.Inf(1)
	for j := i + 1; j <= hard; j++ {
		if !w.add(us[j-1]) {
			break
		}
		if j > i+1 && us[j-1].end-us[i].start > o.MaxDuration {
			break
		}
		cost := 0.0
		if j < hard {
			cost = float64(us[j-1].after)
			if us[j].conj && cost > cutConj {
				cost = cutConj
			}
			if cost >= cutWord && span(j, hard) < 12 {
				cost += 2 // would leave a scrap of a phrase before the next silence
			}
			if us[j].start-us[j-1].end >= pauseCut {
				cost -= 1.5 // a pause is a natural place to cut
			}
		}
		fill := max(float64(span(i, j))/capacity, float64(us[j-1].end-us[i].start)/float64(o.MaxDuration))
		cost += 4 * (1 - min(fill, 1))
		if j < hard {
			if avail := us[j].start - us[i].start; avail < o.MinDuration {
				cost += 6 // too short to read: the next speech follows at once
			}
		}
		if cost <= bestCost {
			best, bestCost = j, cost
		}
	}
	return best
}

// wrapper fills lines greedily, which uses the fewest lines, so it decides whether units fit.
type wrapper struct {
	max, maxLines int
	lines, cur    int
}

func (w *wrapper) add(u unit) bool {
	switch {
	case w.lines == 0:
		w.lines, w.cur = 1, u.n
	case w.cur+sep(u)+u.n <= w.max:
		w.cur += sep(u) + u.n
	case w.lines < w.maxLines:
		w.lines++
		w.cur = u.n
	default:
		return false
	}
	return true
}

func sep(u unit) int {
	if u.space {
		return 1
	}
	return 0
}

// layout sets units into the fewest lines that hold them, balanced in length and preferring
// breaks at clause boundaries.
func layout(us []unit, o ShapeOptions) string {
	w := wrapper{max: o.MaxLineChars, maxLines: math.MaxInt}
	for _, u := range us {
		w.add(u)
	}
	lines := w.lines
	if lines <= 1 {
		return joinUnits(us)
	}
	n := len(us)
	// width(a, b): runes of units [a, b) on one line.
	pre := make([]int, n+1)
	for k, u := range us {
		pre[k+1] = pre[k] + u.n + sep(u)
	}
	width := func(a, b int) int { return pre[b] - pre[a] - sep(us[a]) }
	total := float64(width(0, n))
	target := total / float64(lines)
	// dp[l][b]: least cost of setting units [0, b) into l lines; from[l][b] the start of line l.
	inf := math.Inf(1)
	dp := make([][]float64, lines+1)
	from := make([][]int, lines+1)
	for l := range dp {
		dp[l] = make([]float64, n+1)
		from[l] = make([]int, n+1)
		for b := range dp[l] {
			dp[l][b] = inf
		}
	}
	dp[0][0] = 0
	for l := 1; l <= lines; l++ {
		for b := l; b <= n; b++ {
			for a := l - 1; a < b; a++ {
				if dp[l-1][a] == inf {
					continue
				}
				wd := width(a, b)
				if wd > o.MaxLineChars {
					continue
				}
				d := float64(wd) - target
				c := dp[l-1][a] + d*d
				if b < n {
					c += breakPenalty(us, b)
				}
				if c < dp[l][b] {
					dp[l][b], from[l][b] = c, a
				}
			}
		}
	}
	if dp[lines][n] == inf { // cannot happen: greedy found a setting in this many lines
		return joinUnits(us)
	}
	parts := make([]string, lines)
	b := n
	for l := lines; l >= 1; l-- {
		a := from[l][b]
		parts[l-1] = joinUnits(us[a:b])
		b = a
	}
	return strings.Join(parts, "\n")
}

// breakPenalty is the cost of breaking a line before unit b.
func breakPenalty(us []unit, b int) float64 {
	c := us[b-1].after
	if us[b].conj && c > cutConj {
		c = cutConj
	}
	switch c {
	case cutSentence, cutClause:
		return 0
	case cutConj:
		return 30
	case cutWord:
		return 80
	}
	return 400
}

func joinUnits(us []unit) string {
	var b strings.Builder
	for k, u := range us {
		if k > 0 && u.space {
			b.WriteByte(' ')
		}
		b.WriteString(u.text)
	}
	return b.String()
}

// units splits a transcript into units with times.
func units(t *Transcript, o ShapeOptions) []unit {
	var us []unit
	for _, seg := range t.Segments {
		first := len(us)
		if len(seg.Words) > 0 {
			us = wordUnits(us, seg.Words, o)
		} else {
			us = textUnits(us, seg, o)
		}
		if first < len(us) && first > 0 {
			// Segments join with a space, except CJK to CJK.
			us[first].space = !(endsCJK(us[first-1].text) && startsCJK(us[first].text))
		}
	}
	lang := strings.ToLower(t.Language)
	if i := strings.IndexAny(lang, "-_"); i >= 0 {
		lang = lang[:i]
	}
	conj := conjunctions[lang]
	if conj == nil {
		conj = conjunctions["en"]
	}
	for k := range us {
		u := &us[k]
		if u.after != cutGlue {
			u.after = cutAfter(u.text)
		}
		word := strings.ToLower(strings.TrimFunc(u.text, unicode.IsPunct))
		u.conj = u.space && conj[word]
	}
	return us
}

// textUnits splits a segment's text into units and spreads the segment's time over them in
// proportion to characters (spaces included).
func textUnits(us []unit, seg Segment, o ShapeOptions) []unit {
	first := len(us)
	for k, f := range strings.Fields(seg.Text) {
		us = appendPieces(us, f, k > 0, o)
	}
	if len(us) == first {
		return us
	}
	total := 0
	for k := first; k < len(us); k++ {
		total += us[k].n
		if k > first && us[k].space {
			total++
		}
	}
	d := max(seg.End-seg.Start, 0)
	at := func(c int) time.Duration {
		return seg.Start + time.Duration(float64(d)*float64(c)/float64(total))
	}
	c := 0
	for k := first; k < len(us); k++ {
		if k > first && us[k].space {
			c++
		}
		us[k].start = at(c)
		c += us[k].n
		us[k].end = at(c)
	}
	return us
}

// wordUnits makes units from timed words. A piece of a word (a CJK character, part of a long
// word) gets its share of the word's time by characters.
func wordUnits(us []unit, words []Word, o ShapeOptions) []unit {
	// Whisper marks word starts with a leading space; when the words follow that convention,
	// a word without one continues the previous word.
	leading := false
	for _, w := range words[1:] {
		if r, _ := utf8.DecodeRuneInString(w.Text); unicode.IsSpace(r) {
			leading = true
			break
		}
	}
	for k, w := range words {
		space := k > 0
		if leading && k > 0 {
			r, _ := utf8.DecodeRuneInString(w.Text)
			space = unicode.IsSpace(r)
		}
		first := len(us)
		for f, field := range strings.Fields(w.Text) {
			us = appendPieces(us, field, space || f > 0, o)
		}
		if len(us) == first {
			continue
		}
		if k > 0 && !leading && endsCJK(us[first-1].text) && startsCJK(us[first].text) {
			us[first].space = false
		}
		total := 0
		for p := first; p < len(us); p++ {
			total += us[p].n
		}
		d := max(w.End-w.Start, 0)
		c := 0
		for p := first; p < len(us); p++ {
			us[p].start = w.Start + time.Duration(float64(d)*float64(c)/float64(total))
			c += us[p].n
			us[p].end = w.Start + time.Duration(float64(d)*float64(c)/float64(total))
		}
	}
	return us
}

// appendPieces splits one whitespace-free field into units: CJK characters (each with the
// punctuation that follows it) stand alone, other runs stay whole, and anything longer than a
// line is hard-broken.
func appendPieces(us []unit, field string, space bool, o ShapeOptions) []unit {
	var pieces []string
	var cur strings.Builder
	curCJK, curOpen := false, true // curOpen: cur holds only opening punctuation
	flush := func() {
		if cur.Len() > 0 {
			pieces = append(pieces, cur.String())
			cur.Reset()
		}
		curCJK, curOpen = false, true
	}
	for _, r := range field {
		switch {
		case isCJK(r):
			if !curOpen {
				flush()
			}
			cur.WriteRune(r)
			curCJK, curOpen = true, false
		case curCJK && unicode.IsPunct(r) && !unicode.In(r, unicode.Ps, unicode.Pi):
			cur.WriteRune(r) // closing punctuation stays with its character
		case unicode.In(r, unicode.Ps, unicode.Pi) && curOpen:
			cur.WriteRune(r)
		default:
			if curCJK {
				flush()
			}
			cur.WriteRune(r)
			curOpen = curOpen && unicode.In(r, unicode.Ps, unicode.Pi)
		}
	}
	flush()
	for p, piece := range pieces {
		sp := space && p == 0
		runes := []rune(piece)
		for len(runes) > o.MaxLineChars {
			us = append(us, unit{text: string(runes[:o.MaxLineChars]), n: o.MaxLineChars, space: sp, after: cutGlue})
			runes = runes[o.MaxLineChars:]
			sp = false
		}
		us = append(us, unit{text: string(runes), n: len(runes), space: sp})
	}
	return us
}

func isCJK(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana) ||
		(r >= 0x3000 && r <= 0x303f) || // CJK symbols and punctuation
		(r >= 0xff00 && r <= 0xffef) // full-width forms
}

func startsCJK(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return isCJK(r)
}

func endsCJK(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return isCJK(r)
}

// cutAfter classifies the boundary after a word by its final punctuation (closing quotes and
// brackets looked through).
func cutAfter(word string) int {
	s := strings.TrimRightFunc(word, func(r rune) bool {
		return unicode.In(r, unicode.Pe, unicode.Pf) || r == '"' || r == '\''
	})
	r, _ := utf8.DecodeLastRuneInString(s)
	switch r {
	case '.', '!', '?', '…', '。', '！', '？', '‼', '⁇':
		return cutSentence
	case ',', ';', ':', '—', '–', '、', '，', '；', '：':
		return cutClause
	}
	if s == "-" || s == "--" {
		return cutClause
	}
	return cutWord
}

// conjunctions that start a clause, by language; a cut before one is nearly as good as after a
// comma. Unlisted languages use English.
var conjunctions = map[string]map[string]bool{
	"en": set("and", "but", "or", "nor", "so", "yet", "because", "although", "though", "while",
		"whereas", "unless", "since", "which", "who", "whose", "where", "when", "if", "then"),
	"de": set("und", "aber", "oder", "denn", "sondern", "weil", "dass", "obwohl", "wenn", "als",
		"während", "damit", "ob"),
	"fr": set("et", "mais", "ou", "donc", "car", "ni", "parce", "quand", "lorsque", "puisque",
		"si", "qui", "que"),
	"es": set("y", "pero", "o", "porque", "aunque", "cuando", "si", "que", "pues", "mientras"),
	"it": set("e", "ma", "o", "perché", "però", "quando", "se", "che", "mentre", "anche"),
	"pt": set("e", "mas", "ou", "porque", "quando", "se", "que", "embora", "enquanto"),
	"nl": set("en", "maar", "of", "want", "omdat", "als", "dat", "terwijl", "hoewel"),
}

func set(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}
