package summarize

import (
	"fmt"
	"strings"
	"testing"
)

// logMisses logs, with -v only, every true boundary (truth[1:], the first sentences of blocks)
// that has no chapter start within one sentence: the sentences from three before the earlier
// of it and the nearest chapter start to two after the later, each with the topic it was drawn
// from and what its words say: its mean similarity to the sentences of the true block before
// the boundary and to those of the true block after (itself left out; "·" where it shares no
// word with either). So a reader can judge whether the text marks the boundary, and whether
// the words do: where the sentences between the true and the chosen start share no words with
// their own block, or more with the other one, no method that compares words can place it.
func logMisses(t *testing.T, label string, sents []Sentence, chapters []Chapter, truth []int, blocks []block) {
	t.Helper()
	if !testing.Verbose() {
		return
	}
	var s *segmenter // built on the first miss only
	for k := 1; k < len(truth); k++ {
		b := truth[k]
		near := chapters[0].First
		for _, c := range chapters[1:] {
			if abs(c.First-b) < abs(near-b) {
				near = c.First
			}
		}
		if abs(near-b) <= 1 {
			continue
		}
		if s == nil {
			s = newSegmenter(newModel(sents), Options{})
		}
		next := len(sents)
		if k+1 < len(truth) {
			next = truth[k+1]
		}
		before, after := s.group(truth[k-1], b, 0), s.group(b, next, 1)
		var sb strings.Builder
		fmt.Fprintf(&sb, "%s: boundary at %d (%s → %s), nearest chapter start %d (%+d); fit to block before / after:\n",
			label, b, blocks[k-1].topic, blocks[k].topic, near, near-b)
		for i := max(0, min(b, near)-3); i <= min(len(sents)-1, max(b, near)+2); i++ {
			mark := "  "
			switch {
			case i == b && i == near:
				mark = "=>"
			case i == b:
				mark = "T>"
			case i == near:
				mark = "C>"
			}
			topic := blocks[k-1].topic
			if i >= b {
				topic = blocks[k].topic
			}
			fb, fa := s.fit(i, before), s.fit(i, after)
			ev := "      ·      "
			if fb != 0 || fa != 0 {
				ev = fmt.Sprintf("%.3f / %.3f", fb, fa)
			}
			fmt.Fprintf(&sb, "  %s %4d %-19s %s  %s\n", mark, i, strings.TrimPrefix(topic, "noun."), ev, sents[i].Text)
		}
		t.Log(sb.String())
	}
}
