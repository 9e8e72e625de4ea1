package summarize

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/verbatimhq/verbatim/sidecar"
)

// Sentence is one sentence of the transcript with its time span.
type Sentence struct {
	Start, End time.Duration
	Text       string
}

// How Sentences cuts text that lacks sentence punctuation.
const (
	// PauseCut is the shortest pause after a segment that ends an unpunctuated sentence there.
	// Speech recognition often joins read sentences with commas, or with nothing, and a segment
	// that a pause this long follows is then where a sentence ended.
	PauseCut = 400 * time.Millisecond
	// clauseWords is the shortest sentence a pause after a comma (or semicolon, colon, dash)
	// ends: shorter, the comma is more likely a list's or a clause's.
	clauseWords = 6
	// MaxWords is the longest sentence, in words: a longer run is cut at its best place.
	MaxWords = 40
	// minCutWords is the shortest piece a cut at MaxWords leaves before it.
	minCutWords = 20
)

// word is one whitespace-free word of the transcript with its time span.
type word struct {
	text       string
	start, end time.Duration
	segEnd     bool // the last word of its segment
}

// Sentences splits the segments' text into sentences. A sentence ends at a word ending in
// ".", "?" or "!" (closing quotes and brackets after it allowed), except after a title such as
// "Mr." or "Dr.", after "e.g."/"i.e."/"vs.", after a single-letter initial, and after dotted
// abbreviations such as "U.S.", "a.m." or "etc." unless the next word is capitalized; a decimal
// such as 3.5 never ends one since only word ends are looked at. Sentences run across segments.
// Text without such punctuation (Whisper often gives none) is also cut at a segment end that a
// pause of at least PauseCut follows, unless the segment ends in a word that needs a
// continuation ("the", "and", "of" ...) or, before clauseWords words, in a comma or a dash, and
// any run of MaxWords words is cut at its
// longest pause, preferring segment ends and commas.
//
// Times come from the segments' Words when they have any text (a word without a leading space,
// where the words follow Whisper's convention of marking word starts with one, continues the
// previous word); otherwise the segment's time is spread over its text by characters. Times are
// made monotonic: a word starts no earlier than the previous one ends. Every word of the input
// is in exactly one sentence, in order; a sentence's words are joined by single spaces.
func Sentences(segs []sidecar.Segment) []Sentence {
	words := splitWords(segs)
	var out []Sentence
	emit := func(ws []word) {
		if len(ws) == 0 {
			return
		}
		texts := make([]string, len(ws))
		for i, w := range ws {
			texts[i] = w.text
		}
		out = append(out, Sentence{Start: ws[0].start, End: ws[len(ws)-1].end, Text: strings.Join(texts, " ")})
	}
	begin := 0
	for i := range words {
		var next *word
		if i+1 < len(words) {
			next = &words[i+1]
		}
		w := words[i]
		switch {
		case endsSentence(w.text, next):
			emit(words[begin : i+1])
			begin = i + 1
		case next != nil && w.segEnd && next.start-w.end >= PauseCut && !continues(w.text, i+1-begin):
			emit(words[begin : i+1])
			begin = i + 1
		case i+1-begin >= MaxWords && next != nil:
			c := bestCut(words, begin, i+1)
			emit(words[begin:c])
			begin = c
		}
	}
	emit(words[begin:])
	return out
}

// bestCut picks where to cut the run words[begin:end] (end < len(words)): the index of the
// first word after the cut, at least minCutWords into the run. It takes the longest pause,
// favouring segment ends and clause punctuation; ties go to the later place.
func bestCut(words []word, begin, end int) int {
	best, bestScore := end, -1.0
	for c := begin + minCutWords; c <= end; c++ {
		w := words[c-1]
		score := (words[c].start - w.end).Seconds()
		if w.segEnd {
			score += 1
		}
		if strings.ContainsAny(lastRune(w.text), ",;:") {
			score += 0.5
		}
		if score >= bestScore {
			best, bestScore = c, score
		}
	}
	return best
}

func lastRune(s string) string {
	_, n := utf8.DecodeLastRuneInString(s)
	return s[len(s)-n:]
}

// splitWords lists the words of the segments with their times.
func splitWords(segs []sidecar.Segment) []word {
	var ws []word
	for _, seg := range segs {
		first := len(ws)
		if hasWordText(seg.Words) {
			ws = timedWords(ws, seg.Words)
		} else {
			ws = interpolated(ws, seg)
		}
		if len(ws) > first {
			ws[len(ws)-1].segEnd = true
		}
	}
	var prev time.Duration
	for i := range ws {
		ws[i].start = max(ws[i].start, prev, 0)
		ws[i].end = max(ws[i].end, ws[i].start)
		prev = ws[i].end
	}
	return ws
}

func hasWordText(ws []sidecar.Word) bool {
	for _, w := range ws {
		if strings.TrimSpace(w.Text) != "" {
			return true
		}
	}
	return false
}

// leadingSpaces reports whether words follow Whisper's convention of a leading space at each
// word start (some word after the first has one).
func leadingSpaces(ws []sidecar.Word) bool {
	for _, w := range ws[1:] {
		if r, _ := utf8.DecodeRuneInString(w.Text); unicode.IsSpace(r) {
			return true
		}
	}
	return false
}

// timedWords appends the words of one segment's timed words; a piece of a word gets its share
// of the word's time by characters. Following Whisper's convention (when the words have leading
// spaces), the words are the whitespace-separated pieces of the texts run together: a text that
// neither starts with a space nor follows one that ended with a space continues a word.
func timedWords(ws []word, sws []sidecar.Word) []word {
	leading := leadingSpaces(sws)
	first := len(ws)
	open := false // the text so far ends inside a word
	for _, sw := range sws {
		fields := strings.Fields(sw.Text)
		if sw.Text == "" {
			continue
		}
		r, _ := utf8.DecodeRuneInString(sw.Text)
		glue := leading && open && !unicode.IsSpace(r) && len(ws) > first
		last, _ := utf8.DecodeLastRuneInString(sw.Text)
		open = !unicode.IsSpace(last)
		if len(fields) == 0 {
			continue
		}
		total := 0
		for _, f := range fields {
			total += utf8.RuneCountInString(f)
		}
		d := max(sw.End-sw.Start, 0)
		c := 0
		for i, f := range fields {
			s := sw.Start + time.Duration(float64(d)*float64(c)/float64(total))
			c += utf8.RuneCountInString(f)
			e := sw.Start + time.Duration(float64(d)*float64(c)/float64(total))
			if i == 0 && glue {
				prev := &ws[len(ws)-1]
				prev.text += f
				prev.end = max(prev.end, e)
				continue
			}
			ws = append(ws, word{text: f, start: s, end: e})
		}
	}
	return ws
}

// interpolated appends the words of a segment without timed words, spreading the segment's
// time over its text by characters (the spaces between words included).
func interpolated(ws []word, seg sidecar.Segment) []word {
	fields := strings.Fields(seg.Text)
	if len(fields) == 0 {
		return ws
	}
	total := len(fields) - 1
	for _, f := range fields {
		total += utf8.RuneCountInString(f)
	}
	d := max(seg.End-seg.Start, 0)
	at := func(c int) time.Duration {
		return seg.Start + time.Duration(float64(d)*float64(c)/float64(total))
	}
	c := 0
	for i, f := range fields {
		if i > 0 {
			c++
		}
		s := at(c)
		c += utf8.RuneCountInString(f)
		ws = append(ws, word{text: f, start: s, end: at(c)})
	}
	return ws
}

// Abbreviations that end with a dot without ending a sentence.
var (
	// neverEnd never end a sentence: titles before a name and Latin abbreviations.
	neverEnd = setOf("mr", "mrs", "ms", "dr", "prof", "st", "mt", "lt", "sgt", "capt", "rev", "hon",
		"gov", "sen", "e.g", "i.e", "cf", "viz", "vs", "approx", "incl", "esp", "dept", "vol", "pp")
	// endIfCapital end a sentence only when the next word begins with a capital letter.
	endIfCapital = setOf("etc", "inc", "ltd", "co", "corp", "jr", "sr", "al", "jan", "feb", "mar",
		"apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec")
)

// closers may follow the sentence punctuation of a word.
const closers = "\"')]}’”»"

// endsSentence reports whether the word w ends a sentence, given the word after it (nil at the
// end of the text).
func endsSentence(w string, next *word) bool {
	core := strings.TrimRight(w, closers)
	if core == "" {
		return false
	}
	last, _ := utf8.DecodeLastRuneInString(core)
	switch last {
	case '?', '!', '？', '！', '。':
		return true
	case '.', '…':
	default:
		return false
	}
	capNext := next != nil && startsUpper(next.text)
	stem := strings.TrimRight(core, ".…")
	if stem == "" || len(core)-len(stem) > 1 || last == '…' { // an ellipsis
		return next == nil || capNext
	}
	lower := strings.ToLower(strings.TrimLeft(stem, "\"'([{‘“«"))
	switch {
	case neverEnd[lower]:
		return false
	case utf8.RuneCountInString(lower) == 1 && unicode.IsLetter([]rune(lower)[0]):
		return false // an initial
	case endIfCapital[lower] || dotted(lower):
		return next == nil || capNext
	}
	return true
}

// dotted reports whether s (its final dot removed) is an abbreviation like "u.s", "a.m",
// "ph.d": groups of one or two letters joined by dots.
func dotted(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return false
	}
	for _, p := range parts {
		n := utf8.RuneCountInString(p)
		if n < 1 || n > 2 {
			return false
		}
		for _, r := range p {
			if !unicode.IsLetter(r) {
				return false
			}
		}
	}
	return true
}

func startsUpper(s string) bool {
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return unicode.IsUpper(r) || unicode.IsDigit(r)
		}
	}
	return false
}

// continuation words leave a phrase open: a pause after one does not end a sentence.
var continuation = setOf("a", "an", "the", "and", "or", "but", "nor", "so", "of", "to", "in",
	"on", "at", "by", "for", "with", "from", "into", "onto", "about", "than", "that", "which",
	"who", "whose", "whom", "my", "your", "our", "their", "his", "her", "its", "this", "these",
	"those", "is", "are", "was", "were", "be", "been", "if", "because", "as", "like", "um", "uh",
	"very", "some", "any", "not", "i", "we", "you", "they", "he", "she", "it's", "i'm",
	"we're", "you're", "they're", "will", "would", "can", "could", "should", "must", "might")

// continues reports whether a sentence of n words so far stays open after its word w despite a
// pause.
func continues(w string, n int) bool {
	if strings.ContainsAny(lastRune(w), ",;:-–—") {
		return n < clauseWords
	}
	return continuation[strings.ToLower(strings.Trim(w, closers+"\"'([{‘“«"))]
}

func setOf(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}
