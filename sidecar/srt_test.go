package sidecar

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestSRTRoundTrip(t *testing.T) {
	cues := []Cue{
		{Start: 0, End: ms(1500), Text: "And so my fellow Americans,"},
		{Start: ms(1500), End: ms(3_723_456), Text: "ask not what your country\ncan do for you"},
	}
	b, err := SRT(cues)
	if err != nil {
		t.Fatal(err)
	}
	want := "1\n00:00:00,000 --> 00:00:01,500\nAnd so my fellow Americans,\n\n" +
		"2\n00:00:01,500 --> 01:02:03,456\nask not what your country\ncan do for you\n\n"
	if diff := cmp.Diff(want, string(b)); diff != "" {
		t.Fatalf("SRT (-want +got):\n%s", diff)
	}
	got, err := ParseSRT(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(cues, got); diff != "" {
		t.Fatalf("ParseSRT (-want +got):\n%s", diff)
	}
}

func TestSRTRejects(t *testing.T) {
	cases := []struct {
		name string
		cues []Cue
	}{
		{"empty text", []Cue{{Start: 0, End: ms(10), Text: "  "}}},
		{"end before start", []Cue{{Start: ms(20), End: ms(10), Text: "x"}}},
		{"overlap", []Cue{{Start: 0, End: ms(20), Text: "x"}, {Start: ms(10), End: ms(30), Text: "y"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := SRT(c.cues); err == nil {
				t.Fatal("want error")
			}
		})
	}
}

func TestParseSRTStrict(t *testing.T) {
	cases := []struct{ name, in string }{
		{"index skips", "1\n00:00:00,000 --> 00:00:01,000\na\n\n3\n00:00:02,000 --> 00:00:03,000\nb\n"},
		{"bad arrow", "1\n00:00:00,000 -> 00:00:01,000\na\n"},
		{"dot millis", "1\n00:00:00.000 --> 00:00:01,000\na\n"},
		{"minutes 60", "1\n00:60:00,000 --> 01:00:01,000\na\n"},
		{"overlap", "1\n00:00:00,000 --> 00:00:02,000\na\n\n2\n00:00:01,000 --> 00:00:03,000\nb\n"},
		{"no text", "1\n00:00:00,000 --> 00:00:01,000\n\n"},
		{"zero length", "1\n00:00:01,000 --> 00:00:01,000\na\n"},
		{"no times", "1\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseSRT(strings.NewReader(c.in))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func FuzzParseSRT(f *testing.F) {
	f.Add("1\n00:00:00,000 --> 00:00:01,500\nhello\n\n")
	f.Add("1\r\n00:00:00,000 --> 00:00:01,500\r\nhello\r\nworld\r\n\r\n2\r\n00:00:02,000 --> 00:00:03,000\r\nx\r\n")
	f.Add("\uFEFF1\n99:59:59,999 --> 99:59:59,999\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		cues, err := ParseSRT(strings.NewReader(in))
		if err != nil {
			return
		}
		// Whatever parses must render and parse back to the same cues (texts are trimmed).
		for i := range cues {
			if strings.TrimSpace(cues[i].Text) != cues[i].Text || strings.Contains(cues[i].Text, "\n\n") {
				return
			}
		}
		b, err := SRT(cues)
		if err != nil {
			t.Fatalf("parsed cues do not render: %v", err)
		}
		again, err := ParseSRT(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("rendered cues do not parse: %v", err)
		}
		if diff := cmp.Diff(cues, again); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}
