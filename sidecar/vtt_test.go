package sidecar

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestVTTRoundTrip(t *testing.T) {
	cues := []Cue{
		{Start: 0, End: ms(1500), Text: "And so my fellow Americans,"},
		{Start: ms(1500), End: ms(3_723_456), Text: "ask not what your country\ncan do for you"},
	}
	b, err := VTT(cues)
	if err != nil {
		t.Fatal(err)
	}
	want := "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nAnd so my fellow Americans,\n\n" +
		"00:00:01.500 --> 01:02:03.456\nask not what your country\ncan do for you\n\n"
	if diff := cmp.Diff(want, string(b)); diff != "" {
		t.Fatalf("VTT (-want +got):\n%s", diff)
	}
	got, err := ParseVTT(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(cues, got); diff != "" {
		t.Fatalf("ParseVTT (-want +got):\n%s", diff)
	}
}

func TestParseVTTAccepts(t *testing.T) {
	in := "\uFEFFWEBVTT - a title\r\nKind: captions\r\n\r\n" +
		"NOTE written by hand\nover two lines\n\n" +
		"STYLE\n::cue { color: red }\n\n" +
		"intro\n00:01.000 --> 00:02.500 align:start position:10%\n<v Ann>Hello\n\n\n" +
		"2\n100:00:00.000\t-->\t100:00:01.000\nLate\n"
	want := []Cue{
		{Start: time.Second, End: ms(2500), Text: "<v Ann>Hello"},
		{Start: 100 * time.Hour, End: 100*time.Hour + time.Second, Text: "Late"},
	}
	got, err := ParseVTT(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("ParseVTT (-want +got):\n%s", diff)
	}
}

func TestParseVTTStrict(t *testing.T) {
	cases := []struct{ name, in string }{
		{"no signature", "00:00.000 --> 00:01.000\na\n"},
		{"signature glued", "WEBVTTX\n\n00:00.000 --> 00:01.000\na\n"},
		{"empty", ""},
		{"comma millis", "WEBVTT\n\n00:00:00,000 --> 00:00:01,000\na\n"},
		{"one-digit hour", "WEBVTT\n\n0:00:00.000 --> 0:00:01.000\na\n"},
		{"seconds 60", "WEBVTT\n\n00:00:60.000 --> 00:01:01.000\na\n"},
		{"bad arrow", "WEBVTT\n\n00:00.000 -> 00:01.000\na\n"},
		{"id without timing", "WEBVTT\n\nid\n"},
		{"two ids", "WEBVTT\n\nid\nid2\n00:00.000 --> 00:01.000\na\n"},
		{"no text", "WEBVTT\n\n00:00.000 --> 00:01.000\n\n"},
		{"zero length", "WEBVTT\n\n00:01.000 --> 00:01.000\na\n"},
		{"overlap", "WEBVTT\n\n00:00.000 --> 00:02.000\na\n\n00:01.000 --> 00:03.000\nb\n"},
		{"arrow in text", "WEBVTT\n\n00:00.000 --> 00:01.000\na --> b\n"},
		{"style after cue", "WEBVTT\n\n00:00.000 --> 00:01.000\na\n\nSTYLE\n::cue {}\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseVTT(strings.NewReader(c.in))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestVTTRejects(t *testing.T) {
	cases := []struct {
		name string
		cues []Cue
	}{
		{"empty text", []Cue{{Start: 0, End: ms(10), Text: " "}}},
		{"blank line", []Cue{{Start: 0, End: ms(10), Text: "a\n\nb"}}},
		{"arrow", []Cue{{Start: 0, End: ms(10), Text: "a --> b"}}},
		{"end before start", []Cue{{Start: ms(20), End: ms(10), Text: "x"}}},
		{"overlap", []Cue{{Start: 0, End: ms(20), Text: "x"}, {Start: ms(10), End: ms(30), Text: "y"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := VTT(c.cues); err == nil {
				t.Fatal("want error")
			}
			if _, err := SRT(c.cues); err == nil {
				t.Fatal("SRT: want error")
			}
		})
	}
}

func FuzzParseVTT(f *testing.F) {
	f.Add("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nhello\n\n")
	f.Add("\uFEFFWEBVTT x\r\n\r\nNOTE n\r\n\r\nid\r\n00:01.000 --> 00:02.000 line:0\r\na\r\nb\r\n")
	f.Add("WEBVTT\n\nSTYLE\n::cue {}\n\n99:59:59.999 --> 100:00:00.000\nx\n")
	f.Add("WEBVTT\n\n00:00.000 --> 00:01.000\na --> b\n")
	f.Fuzz(func(t *testing.T, in string) {
		cues, err := ParseVTT(strings.NewReader(in))
		if err != nil {
			return
		}
		for i := range cues {
			if strings.TrimSpace(cues[i].Text) != cues[i].Text {
				return // the writer trims text
			}
		}
		// Whatever parses must render and parse back to the same cues.
		b, err := VTT(cues)
		if err != nil {
			t.Fatalf("parsed cues do not render: %v", err)
		}
		again, err := ParseVTT(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("rendered cues do not parse: %v\n%s", err, b)
		}
		if diff := cmp.Diff(cues, again); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}
