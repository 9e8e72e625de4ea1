package sidecar

import (
	"strings"
	"testing"
	"time"
)

func TestEscapeHref(t *testing.T) {
	cases := []struct{ in, want string }{
		{"talk.m4a", "talk.m4a"},
		{"my talk (final) #2.m4a", "my%20talk%20%28final%29%20%232.m4a"},
		{"../media/día 1.mp4", "../media/d%C3%ADa%201.mp4"},
		{"c:notes.wav", "./c:notes.wav"}, // not a URL scheme
		{"-x?.wav", "-x%3F.wav"},
		{"", ""},
	}
	for _, c := range cases {
		if got := escapeHref(c.in); got != c.want {
			t.Errorf("escapeHref(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestMarkdownTimestampsAndOptions(t *testing.T) {
	tr := &Transcript{
		Segments: []Segment{
			{Start: sec(83.9), End: sec(85), Text: "First."},
			{Start: sec(3725), End: sec(3726), Text: "After *an* hour."},
		},
		Provenance: Provenance{Input: Input{Name: "a b.m4a"}},
	}
	got := string(Markdown(tr, MarkdownOptions{Title: "Weekly call", MediaHref: "../in/a b.m4a"}))
	for _, want := range []string{
		"# Weekly call\n",
		"[00:01:23](../in/a%20b.m4a#t=83) First.\n",
		"[01:02:05](../in/a%20b.m4a#t=3725) After \\*an\\* hour.\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("note lacks %q:\n%s", want, got)
		}
	}
	// No summary stage ran (--summary off): its sections are left out, not shown empty.
	for _, absent := range []string{"## Summary", "## Chapters", "## Action items", "## Decisions", "generated"} {
		if strings.Contains(got, absent) {
			t.Errorf("note without a summary has %q:\n%s", absent, got)
		}
	}
	if strings.Contains(got, "Duration") || strings.Contains(got, "Date") {
		t.Errorf("unknown duration or date rendered:\n%s", got)
	}
	empty := string(Markdown(&Transcript{Duration: time.Minute}, MarkdownOptions{}))
	if !strings.Contains(empty, "# Transcript\n") || !strings.Contains(empty, "_No speech was recognized._") {
		t.Errorf("empty transcript note:\n%s", empty)
	}
}

// TestMarkdownGaps: each gap is a visible line at its place, between the paragraph before it and
// the one after; a gap ends a paragraph; a gap after the last text closes the note; the JSON
// keeps the gaps and the retries.
func TestMarkdownGaps(t *testing.T) {
	tr := &Transcript{
		Segments: []Segment{
			{Start: sec(1), End: sec(3), Text: "Before the gap."},
			{Start: sec(9), End: sec(11), Text: "After the gap."},
		},
		Gaps: []Gap{
			{Start: sec(3.5), End: sec(8.4), Reason: "no_text", Speech: "vad", Attempts: 4},
			{Start: sec(12), End: sec(20), Reason: "judged_silence", Speech: "energy", Attempts: 1},
		},
		Retries:    3,
		Provenance: Provenance{Input: Input{Name: "talk.m4a"}},
	}
	got := string(Markdown(tr, MarkdownOptions{}))
	want := "## Transcript\n\n" +
		"[00:00:01](talk.m4a#t=1) Before the gap.\n\n" +
		"> **Not transcribed:** [00:00:03](talk.m4a#t=3) to 00:00:08 (4.9 s): speech was detected here, but the model returned no text (tried 4 times).\n\n" +
		"[00:00:09](talk.m4a#t=9) After the gap.\n\n" +
		"> **Not transcribed:** [00:00:12](talk.m4a#t=12) to 00:00:20 (8.0 s): the audio is loud here, but the model judged it silence (tried once).\n"
	if !strings.HasSuffix(got, want) {
		t.Errorf("note:\n%s\nwant it to end with:\n%s", got, want)
	}
	if txt := string(TXT(tr)); txt != "Before the gap.\n\nAfter the gap.\n" {
		t.Errorf("text: %q: the gap should end the paragraph", txt)
	}
	doc := NewDocument(tr, "", nil)
	b, err := doc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`"gaps": [`, `"reason": "no_text"`, `"speech": "vad"`, `"attempts": 4`, `"retries": 3`} {
		if !strings.Contains(string(b), w) {
			t.Errorf("JSON lacks %s:\n%s", w, b)
		}
	}
	back, err := ReadDocument(b)
	if err != nil {
		t.Fatal(err)
	}
	if bt := back.Transcript(); len(bt.Gaps) != 2 || bt.Gaps[0] != tr.Gaps[0] || bt.Retries != 3 {
		t.Errorf("read back: gaps %+v, retries %d", bt.Gaps, bt.Retries)
	}
	none, _ := NewDocument(&Transcript{}, "", nil).Marshal()
	if strings.Contains(string(none), "gaps") || strings.Contains(string(none), "retries") {
		t.Errorf("a transcript without gaps writes them:\n%s", none)
	}
}
