package sidecar_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/verbatimhq/verbatim/internal/testkit"
	"github.com/verbatimhq/verbatim/sidecar"
)

// TestMarkdownResolves parses notes with a Markdown library: every link resolves (chapter links
// to the transcript's chapter headings, times to the media within its duration), each chapter
// has one heading in the transcript, and headings repeated or full of punctuation still get
// anchors of their own.
func TestMarkdownResolves(t *testing.T) {
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	var segs []sidecar.Segment
	for i := range 40 {
		segs = append(segs, sidecar.Segment{Start: sec(float64(i) * 10), End: sec(float64(i)*10 + 8), Text: fmt.Sprintf(" Sentence number %d.", i)})
	}
	cases := map[string]*sidecar.Transcript{
		"chapters": {
			Duration: sec(400), Segments: segs, Summary: "- One.\n- Two.",
			Chapters: []sidecar.Chapter{
				{Start: 0, Title: "Summary"}, // the same as a section's heading
				{Start: sec(95), Title: "Budget: Q3 [draft] & *plans*"},
				{Start: sec(100), Title: "Budget: Q3 [draft] & *plans*"}, // repeated, and in the same segment's paragraph as the one before
				{Start: sec(205), Title: ""},
				{Start: sec(300), Title: "Día de campo — naïve café"},
			},
			Actions:     []sidecar.Item{{Text: "Call [Bob] back.", Start: sec(120), HasStart: true}, {Text: "No time known."}},
			Decisions:   []sidecar.Item{{Text: "Ship it.", Start: sec(399), HasStart: true}},
			SummaryInfo: &sidecar.SummaryInfo{Method: "extractive"},
			Provenance:  sidecar.Provenance{Input: sidecar.Input{Name: "team call (1).m4a"}},
		},
		"none": {Duration: sec(400), Segments: segs, Provenance: sidecar.Provenance{Input: sidecar.Input{Name: "x.wav"}}},
	}
	for name, tr := range cases {
		t.Run(name, func(t *testing.T) {
			md := sidecar.Markdown(tr, sidecar.MarkdownOptions{})
			note := testkit.ParseMarkdown(md, tr.Provenance.Input.Name, tr.Duration.Seconds())
			for _, p := range note.Problems {
				t.Error(p)
			}
			var inTranscript []testkit.Heading
			seenTranscript := false
			for _, h := range note.Headings {
				if h.Level == 2 && h.Text == "Transcript" {
					seenTranscript = true
				} else if seenTranscript && h.Level == 3 {
					inTranscript = append(inTranscript, h)
				}
			}
			if len(inTranscript) != len(tr.Chapters) || len(note.Anchors) != len(tr.Chapters) {
				t.Fatalf("%d chapter headings in the transcript and %d anchors, want %d:\n%s", len(inTranscript), len(note.Anchors), len(tr.Chapters), md)
			}
			links := 0
			for _, l := range note.Links {
				if strings.HasPrefix(l, "#") {
					if l != "#"+note.Anchors[links] {
						t.Errorf("chapter %d links %s, its heading's anchor is %s", links+1, l, note.Anchors[links])
					}
					if want := strings.Join(strings.Fields(tr.Chapters[links].Title), " "); want != "" && inTranscript[links].Text != want {
						t.Errorf("chapter %d's heading reads %q, want %q", links+1, inTranscript[links].Text, want)
					}
					links++
				}
			}
			if links != len(tr.Chapters) {
				t.Errorf("%d chapter links, want %d", links, len(tr.Chapters))
			}
			if testing.Verbose() {
				t.Logf("%s", md)
			}
		})
	}
}
