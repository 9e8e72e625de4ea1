package sidecar

import (
	"strings"
	"time"
	"unicode/utf8"
)

// Paragraphs of TXT and Markdown: a new one starts after a silence of ParagraphGap, or after a
// sentence once a paragraph has paragraphChars characters, or in any case at twice that.
const (
	ParagraphGap   = 2 * time.Second
	paragraphChars = 600
)

type paragraph struct {
	start    time.Duration
	text     string
	chapters []int // indexes in Transcript.Chapters of the chapters this paragraph opens
}

// paragraphs groups the segments' texts (whitespace collapsed) into paragraphs; a gap (speech
// not transcribed) ends one. With chapters (the Markdown note), so does a chapter's start: the
// chapter opens the paragraph of the segment it starts in (or the first one after it). The
// plain text (TXT, the JSON's text) does not depend on the summary stage.
func paragraphs(t *Transcript, chapters bool) []paragraph {
	var ps []paragraph
	var b strings.Builder
	var start, prevEnd time.Duration
	n := 0
	next := 0 // the next chapter to open
	var opens []int
	flush := func() {
		if b.Len() > 0 {
			ps = append(ps, paragraph{start: start, text: b.String(), chapters: opens})
			b.Reset()
			n = 0
			opens = nil
		}
	}
	for _, s := range t.Segments {
		text := strings.Join(strings.Fields(s.Text), " ")
		if text == "" {
			continue
		}
		if chapters && next < len(t.Chapters) && t.Chapters[next].Start < max(s.End, s.Start+1) {
			flush()
			for next < len(t.Chapters) && t.Chapters[next].Start < max(s.End, s.Start+1) {
				opens = append(opens, next) // chapters that start before this segment ends
				next++
			}
		}
		if b.Len() > 0 {
			sentence := cutAfter(b.String()) == cutSentence
			if gapBetween(t.Gaps, prevEnd, s.Start) || s.Start-prevEnd >= ParagraphGap || (n >= paragraphChars && sentence) || n >= 2*paragraphChars {
				flush()
			}
		}
		if b.Len() == 0 {
			start = s.Start
		} else if !(endsCJK(b.String()) && startsCJK(text)) {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(text)
		n += utf8.RuneCountInString(text)
		prevEnd = max(prevEnd, s.End)
	}
	flush()
	return ps
}

// gapBetween reports whether one of gaps starts in [a, b].
func gapBetween(gaps []Gap, a, b time.Duration) bool {
	for _, g := range gaps {
		if g.Start >= a && g.Start <= b {
			return true
		}
	}
	return false
}

func joinParagraphs(ps []paragraph) string {
	texts := make([]string, len(ps))
	for i, p := range ps {
		texts[i] = p.text
	}
	return strings.Join(texts, "\n\n")
}

// TXT renders the transcript as plain text: one paragraph per line, paragraphs separated by a
// blank line, no times.
func TXT(t *Transcript) []byte {
	s := joinParagraphs(paragraphs(t, false))
	if s == "" {
		return nil
	}
	return []byte(s + "\n")
}
