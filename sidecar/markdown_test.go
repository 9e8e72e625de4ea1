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
		"## Summary\n\n_No summary was generated._\n",
		"## Chapters\n\n_No chapters were generated._\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("note lacks %q:\n%s", want, got)
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
