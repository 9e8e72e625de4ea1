package whisper

import (
	"math"
	"strings"
	"unicode"
)

// Removal is text the guard took out of a transcript (Options.Guard), for the JSON sidecar.
type Removal struct {
	Start, End float64 // seconds of the input: the span of the segment it was in
	Text       string
	Reason     string // ReasonLoop, ReasonRepeat or ReasonHallucination
}

// Why the guard removed text.
const (
	// ReasonLoop: the repeats of a phrase repeated many times in a row within a segment (the
	// first occurrence is kept).
	ReasonLoop = "repetition_loop"
	// ReasonRepeat: a segment whose text is the text of the segment before it, again (a window
	// repeating its predecessor, or the model looping over whole segments).
	ReasonRepeat = "repeated_text"
	// ReasonHallucination: a well-known phrase Whisper invents on silence and music ("Thank you.",
	// "Subtitles by the Amara.org community"), in a segment of low confidence, high no-speech
	// probability or mostly outside the speech regions.
	ReasonHallucination = "silence_hallucination"
)

const (
	// maxLoopPeriod is the longest repeated unit (tokens) the loop detector looks for.
	maxLoopPeriod = 32
	// minSpeechCover is the least fraction of a segment inside speech regions for a known
	// hallucination phrase to count as speech on that ground alone.
	minSpeechCover = 0.5
)

// minLoopRepeats is how many consecutive occurrences of a unit of p tokens make a loop: short
// units must repeat more often ("no, no, no" and laughter are speech), 4 times for 3+ tokens.
func minLoopRepeats(p int) int { return max(4, (10+p-1)/p) }

// guard filters each window's segments. It keeps state across windows (the last kept text) and
// is used by one transcription at a time. A nil guard keeps everything.
type guard struct {
	noSpeech, logProb float64
	decode            func([]int) string
	out               *[]Removal

	last    string // normalized text of the last kept segment
	lastRun int    // kept or removed segments in a row with that text

	at func(start, end float64) (float64, float64) // the current window's time map, or nil
}

func newGuard(o *Options, decode func([]int) string, out *[]Removal) *guard {
	return &guard{noSpeech: o.NoSpeechThreshold, logProb: o.LogProbThreshold, decode: decode, out: out}
}

// window filters the segments of one window, in order, and reports whether text repeated
// (a loop or a repeated segment), after which the caller stops conditioning on previous text.
// speech, if not nil, returns the fraction of [start, end] (segment times) inside speech; at, if
// not nil, maps segment times to the input's for the removal report.
func (g *guard) window(segs []pending, speech func(start, end float64) float64, at func(start, end float64) (float64, float64)) ([]pending, bool) {
	if g == nil {
		return segs, false
	}
	g.at = at
	repeated := false
	out := segs[:0]
	for _, p := range segs {
		seg := &p.seg
		if removed, ok := g.collapse(&p); ok {
			repeated = true
			g.remove(seg, removed, ReasonLoop)
			if strings.TrimSpace(seg.Text) == "" {
				continue
			}
		}
		norm := normalizeText(seg.Text)
		if isHallucination(norm) && g.suspicious(seg, speech) {
			g.remove(seg, seg.Text, ReasonHallucination)
			continue
		}
		if norm != "" && norm == g.last {
			g.lastRun++
			if len(strings.Fields(norm)) >= 3 || g.lastRun >= 3 {
				g.remove(seg, seg.Text, ReasonRepeat)
				repeated = true
				continue
			}
		} else {
			g.last, g.lastRun = norm, 1
		}
		out = append(out, p)
	}
	return out, repeated
}

func (g *guard) remove(seg *Segment, text, reason string) {
	start, end := seg.Start, seg.End
	if g.at != nil {
		start, end = g.at(start, end)
	}
	*g.out = append(*g.out, Removal{Start: start, End: end, Text: text, Reason: reason})
}

// collapse removes repetition loops from p's tokens, rebuilding its text, and returns the text
// removed.
func (g *guard) collapse(p *pending) (string, bool) {
	ids := make([]int, len(p.seg.Tokens))
	for i, t := range p.seg.Tokens {
		ids[i] = t.ID
	}
	keep, found := loopMask(ids)
	if !found {
		return "", false
	}
	var kept, gone []int
	var toks []Token
	for i, k := range keep {
		if k {
			kept = append(kept, ids[i])
			toks = append(toks, p.seg.Tokens[i])
		} else {
			gone = append(gone, ids[i])
		}
	}
	p.seg.Tokens = toks
	p.seg.Text = g.decode(kept)
	p.all = kept
	return g.decode(gone), true
}

// suspicious reports whether a segment's confidence is low enough for a known hallucination
// phrase to be taken for one: high no-speech probability (over half the threshold), an average
// log probability (window or segment) below the threshold, or mostly outside speech.
func (g *guard) suspicious(seg *Segment, speech func(start, end float64) float64) bool {
	if seg.NoSpeechProb > g.noSpeech/2 || seg.AvgLogProb < g.logProb {
		return true
	}
	if len(seg.Tokens) > 0 {
		var sum float64
		for _, t := range seg.Tokens {
			sum += math.Log(max(t.P, 1e-30))
		}
		if sum/float64(len(seg.Tokens)) < g.logProb {
			return true
		}
	}
	return speech != nil && speech(seg.Start, seg.End) < minSpeechCover
}

// loopMask marks the tokens to keep in ids: wherever a unit of p <= maxLoopPeriod tokens repeats
// at least minLoopRepeats(p) times in a row, its first occurrence stays and the repeats (with a
// trailing partial repeat) go. It reports whether it found a loop.
func loopMask(ids []int) ([]bool, bool) {
	n := len(ids)
	keep := make([]bool, n)
	for i := range keep {
		keep[i] = true
	}
	found := false
	for i := 0; i < n; {
		bestP, bestEnd := 0, 0
		for p := 1; p <= maxLoopPeriod && i+2*p <= n; p++ {
			c := 1
			for i+(c+1)*p <= n && sameRun(ids, i, i+c*p, p) {
				c++
			}
			if c < minLoopRepeats(p) {
				continue
			}
			end := i + c*p
			for end < n && ids[end] == ids[i+(end-i)%p] {
				end++ // a partial last repeat
			}
			if end > bestEnd {
				bestP, bestEnd = p, end
			}
		}
		if bestP == 0 {
			i++
			continue
		}
		for j := i + bestP; j < bestEnd; j++ {
			keep[j] = false
		}
		found = true
		i = bestEnd
	}
	return keep, found
}

func sameRun(ids []int, a, b, n int) bool {
	for k := range n {
		if ids[a+k] != ids[b+k] {
			return false
		}
	}
	return true
}

// normalizeText lowercases s and keeps its letters and digits, words separated by one space.
func normalizeText(s string) string {
	var b strings.Builder
	space := false
	for _, r := range strings.ToLower(s) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteRune(r)
		} else {
			space = true
		}
	}
	return b.String()
}

// hallucinationPhrases are segment texts Whisper is known to produce on silence, noise and
// music: credits and channel outros from its training subtitles, and fillers. Matched whole,
// after normalizeText.
var hallucinationPhrases = []string{
	"you", "thank you", "thank you very much", "thank you so much", "thanks", "thanks for watching",
	"thank you for watching", "thank you so much for watching", "thanks for watching and see you next time",
	"thank you for watching and see you next time", "please subscribe", "please like and subscribe",
	"like and subscribe", "subscribe to my channel", "don't forget to like and subscribe",
	"please subscribe to my channel", "see you next time", "see you in the next video", "bye", "bye bye",
	"goodbye", "oh", "uh", "um", "hmm", "so", "okay", "the end", "music", "applause", "silence",
	"danke", "vielen dank", "danke fürs zuschauen", "bis zum nächsten mal", "merci", "merci beaucoup",
	"merci d'avoir regardé", "gracias", "muchas gracias", "gracias por ver", "obrigado", "obrigada",
	"grazie", "grazie per la visione", "спасибо", "спасибо за внимание", "продолжение следует",
	"ご視聴ありがとうございました", "ありがとうございました", "시청해주셔서 감사합니다", "谢谢观看", "谢谢大家",
}

// hallucinationMarkers are pieces of subtitle credits: a segment containing one is a known
// hallucination whatever else it says.
var hallucinationMarkers = []string{
	"amara org", "subtitles by", "subtitled by", "captions by", "captioning by", "transcribed by",
	"translated by", "untertitel im auftrag", "untertitel von", "untertitelung", "sous titres",
	"subtítulos por", "subtítulos realizados", "субтитры", "dimatorzok", "字幕由", "明镜与点点",
}

var (
	hallucinationSet = func() map[string]bool {
		m := map[string]bool{}
		for _, p := range hallucinationPhrases {
			m[normalizeText(p)] = true
		}
		return m
	}()
	hallucinationNorm = func() []string {
		var out []string
		for _, p := range hallucinationMarkers {
			out = append(out, normalizeText(p))
		}
		return out
	}()
)

// isHallucination reports whether normalized text is a known silence hallucination.
func isHallucination(norm string) bool {
	if norm == "" {
		return false
	}
	if hallucinationSet[norm] {
		return true
	}
	padded := " " + norm + " "
	for _, m := range hallucinationNorm {
		if strings.Contains(padded, " "+m+" ") || (!strings.Contains(m, " ") && strings.Contains(norm, m) && !isLatin(m)) {
			return true
		}
	}
	return false
}

// isLatin reports whether s is written in ASCII letters (word-bounded matching applies); CJK
// markers match anywhere, having no spaces between words.
func isLatin(s string) bool {
	for _, r := range s {
		if r > unicode.MaxASCII {
			return false
		}
	}
	return true
}
