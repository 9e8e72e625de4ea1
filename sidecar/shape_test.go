package sidecar

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func sec(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func TestShape(t *testing.T) {
	cases := []struct {
		name string
		tr   Transcript
		opts ShapeOptions
		want []Cue
	}{
		{
			// 4 characters need MinDuration (1 s); the cue then ends, and the 9 s of silence
			// after it stay a gap.
			name: "gap stays a gap",
			tr: Transcript{Segments: []Segment{
				{Start: 0, End: sec(0.4), Text: " Hi."},
				{Start: sec(10), End: sec(11.5), Text: " Welcome back."},
			}},
			want: []Cue{
				{Start: 0, End: sec(1), Text: "Hi."},
				{Start: sec(10), End: sec(11.5), Text: "Welcome back."},
			},
		},
		{
			// 40 characters at 17/s need 2.353 s; the speech lasts 1 s and the next speech
			// starts at 1.8 s, so the cue ends there.
			name: "reading speed extends into silence up to the next speech",
			tr: Transcript{Segments: []Segment{
				{Start: 0, End: sec(1), Text: "Three words spoken really quickly here."},
				{Start: sec(1.8), End: sec(2.5), Text: "Next."},
				{Start: sec(30), End: sec(30.2), Text: "Twenty-nine characters long."},
			}, Duration: sec(31)},
			want: []Cue{
				{Start: 0, End: sec(1.8), Text: "Three words spoken really quickly here."},
				{Start: sec(1.8), End: sec(2.8), Text: "Next."},
				// needs 1.647 s but the media ends at 31 s
				{Start: sec(30), End: sec(31), Text: "Twenty-nine characters long."},
			},
		},
		{
			// 94 characters over 10 s without word times: cut after the sentence, times
			// interpolated by characters: it ends after character 49 (2 s + 49/94 of 10 s)
			// and the next starts after the space. Lines are balanced.
			name: "split interpolates by characters",
			tr: Transcript{Segments: []Segment{{Start: sec(2), End: sec(12),
				Text: "The first sentence has exactly fifty characters!! The second one is just as long, fifty chars."}}},
			want: []Cue{
				{Start: sec(2), End: sec(7.213), Text: "The first sentence has\nexactly fifty characters!!"},
				{Start: sec(7.319), End: sec(12), Text: "The second one is just\nas long, fifty chars."},
			},
		},
		{
			name: "word times cut at words and split at silences",
			tr: Transcript{Segments: []Segment{{Start: 0, End: sec(6), Text: " One two three four",
				Words: []Word{
					{Text: " One", Start: sec(0.1), End: sec(0.5)},
					{Text: " two", Start: sec(0.6), End: sec(1)},
					{Text: " three", Start: sec(4), End: sec(4.6)}, // 3 s of silence before
					{Text: " four", Start: sec(4.7), End: sec(5.9)},
				}}}},
			want: []Cue{
				{Start: sec(0.1), End: sec(1.1), Text: "One two"},
				{Start: sec(4), End: sec(5.9), Text: "three four"},
			},
		},
		{
			name: "word times glue pieces without leading space",
			tr: Transcript{Segments: []Segment{{Start: 0, End: sec(2), Words: []Word{
				{Text: " Don", Start: 0, End: sec(0.3)},
				{Text: "'t", Start: sec(0.3), End: sec(0.5)},
				{Text: " go.", Start: sec(0.6), End: sec(1.5)},
			}}}},
			want: []Cue{{Start: 0, End: sec(1.5), Text: "Don't go."}},
		},
		{
			// A 54-character word is hard-broken after 42 runes with nothing inserted; "see"
			// alone would be too short to read, so the cue cuts inside the word.
			name: "long word hard-breaks",
			tr: Transcript{Segments: []Segment{{Start: 0, End: sec(5),
				Text: "see https://example.com/a/very/long/path/to/something/else ok"}}},
			want: []Cue{
				{Start: 0, End: sec(3.77), Text: "see\nhttps://example.com/a/very/long/path/to/so"},
				{Start: sec(3.77), End: sec(5), Text: "mething/else ok"},
			},
		},
		{
			name: "CJK wraps by characters",
			opts: ShapeOptions{MaxLineChars: 10},
			tr: Transcript{Language: "zh", Segments: []Segment{{Start: 0, End: sec(6),
				Text: "我们选择在这个十年登上月球，并做其他的事情，不是因为它们容易。"}}},
			want: []Cue{
				{Start: 0, End: sec(2.71), Text: "我们选择在这个\n十年登上月球，"},
				{Start: sec(2.71), End: sec(6), Text: "并做其他的事情，\n不是因为它们容易。"},
			},
		},
		{
			name: "CJK segments join without a space",
			tr: Transcript{Segments: []Segment{
				{Start: 0, End: sec(1), Text: "你好。"},
				{Start: sec(1), End: sec(2), Text: "再见。"},
			}},
			want: []Cue{{Start: 0, End: sec(2), Text: "你好。再见。"}},
		},
		{
			// Both segments have no length and the same time: the first is shown for its
			// needed time and the second pushed after it.
			name: "degenerate times push",
			tr: Transcript{Segments: []Segment{
				{Start: sec(5), End: sec(5), Text: strings.Repeat("word ", 12) + "end."},
				{Start: sec(5), End: sec(5), Text: strings.Repeat("more ", 12) + "end."},
			}},
			want: []Cue{ // 64 characters need 3.765 s
				{Start: sec(5), End: sec(8.765), Text: "word word word word word word\nword word word word word word end."},
				{Start: sec(8.765), End: sec(12.53), Text: "more more more more more more\nmore more more more more more end."},
			},
		},
		{
			name: "empty segments dropped",
			tr:   Transcript{Segments: []Segment{{Start: 0, End: sec(1), Text: "  \n "}}},
			want: []Cue{},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Shape(&c.tr, c.opts)
			if diff := cmp.Diff(c.want, got, cmpEmpty); diff != "" {
				t.Fatalf("Shape (-want +got):\n%s\ngot:\n%s", diff, dumpCues(got))
			}
			if err := Validate(got, c.opts); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func dumpCues(cues []Cue) string {
	var b strings.Builder
	for _, c := range cues {
		fmt.Fprintf(&b, "{Start: sec(%g), End: sec(%g), Text: %q},\n", c.Start.Seconds(), c.End.Seconds(), c.Text)
	}
	return b.String()
}

var cmpEmpty = cmp.Transformer("empty", func(c []Cue) []Cue {
	if len(c) == 0 {
		return nil
	}
	return c
})

// Long speech splits at the best boundary: a sentence end over a clause, a clause over a word.
func TestShapeCutsAtBoundaries(t *testing.T) {
	tr := &Transcript{Segments: []Segment{{Start: 0, End: sec(10), Text: "We went to the market early in the morning, " +
		"and the stalls were still empty. Then the traders came with fruit and bread and loud voices."}}}
	got := Shape(tr, ShapeOptions{})
	var texts []string
	for _, c := range got {
		texts = append(texts, c.Text)
	}
	want := []string{
		"We went to the market early in the\nmorning, and the stalls were still empty.",
		"Then the traders came with fruit\nand bread and loud voices.",
	}
	if diff := cmp.Diff(want, texts); diff != "" {
		t.Fatalf("cues (-want +got):\n%s", diff)
	}
}

// Shape's output always validates, renders and parses back, keeps every character of the
// text, honours reading speed where the speech allows, and leaves silences as gaps.
func TestShapeProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 7))
	for iter := range 600 {
		tr, opts := randomTranscript(rng)
		o := opts.withDefaults()
		sh := shape(tr, o)
		cues := Shape(tr, opts)
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("transcript %d (opts %+v): %s\ncues: %q", iter, opts, fmt.Sprintf(format, args...), cues)
		}
		if err := Validate(cues, opts); err != nil {
			fail("%v", err)
		}
		for _, render := range []struct {
			name  string
			write func([]Cue) ([]byte, error)
			parse func(*bytes.Reader) ([]Cue, error)
		}{
			{"srt", SRT, func(r *bytes.Reader) ([]Cue, error) { return ParseSRT(r) }},
			{"vtt", VTT, func(r *bytes.Reader) ([]Cue, error) { return ParseVTT(r) }},
		} {
			b, err := render.write(cues)
			if err != nil {
				fail("%s: %v", render.name, err)
			}
			back, err := render.parse(bytes.NewReader(b))
			if err != nil {
				fail("%s parse: %v", render.name, err)
			}
			if diff := cmp.Diff(cues, back, cmpEmpty); diff != "" {
				fail("%s round trip:\n%s", render.name, diff)
			}
		}
		var in, out strings.Builder
		for _, s := range tr.Segments {
			if len(s.Words) > 0 {
				for _, w := range s.Words {
					in.WriteString(w.Text)
				}
			} else {
				in.WriteString(s.Text)
			}
		}
		for _, c := range cues {
			out.WriteString(c.Text)
		}
		if a, b := dropSpace(in.String()), dropSpace(out.String()); a != b {
			fail("text changed:\n in %q\nout %q", a, b)
		}
		pushed := false
		for i, c := range sh {
			pushed = pushed || c.pushed
			need := o.needed(c.chars)
			if c.End > max(c.speechEnd, c.Start+need) {
				fail("cue %d ends at %v, after its speech (%v) and its needed time (%v)", i+1, c.End, c.speechEnd, need)
			}
			var limit time.Duration = -1
			if i+1 < len(sh) {
				limit = sh[i+1].speechStart
			} else if tr.Duration > c.speechEnd {
				limit = tr.Duration
			}
			if c.End-c.Start < need && c.End != limit && c.End-c.Start != o.MaxDuration {
				fail("cue %d lasts %v, less than its needed %v, though nothing stops it", i+1, c.End-c.Start, need)
			}
		}
		if pushed {
			continue
		}
		// A silence longer than SplitGap between two timed words is never inside a cue. (Only
		// where overlapping segments did not move the words' times.)
		var latest time.Duration
		for _, s := range tr.Segments {
			for k := range s.Words {
				w := s.Words[k]
				g1, g2 := latest, w.Start
				latest = max(latest, w.End)
				if k == 0 || g1 != s.Words[k-1].End || g2-g1 <= o.SplitGap || strings.TrimSpace(w.Text) == "" {
					continue
				}
				for i, c := range cues {
					if c.Start < g1 && c.End > g2 {
						fail("cue %d (%v-%v) spans the silence %v-%v", i+1, c.Start, c.End, g1, g2)
					}
				}
			}
			latest = max(latest, s.End)
		}
	}
}

func dropSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}

var vocabulary = []string{
	"the", "a", "and", "but", "so", "because", "people", "we", "said", "it", "was", "really",
	"interesting,", "however", "yes.", "no!", "why?", "well;", "then:", "—", "don't", "Übermaß",
	"naïve", "résumé", "42", "3.14", "(aside)", "“quoted.”", "—dash", "e.g.", "ok",
}

var cjkRunes = []rune("我们选择在这个十年登上月球并做其他的事情不是因为它们容易而是困难日本語のテキスト。、！？")

func randomWord(rng *rand.Rand) string {
	switch r := rng.IntN(40); {
	case r == 0: // longer than any line
		return strings.Repeat("x", 40+rng.IntN(100))
	case r < 4:
		var b strings.Builder
		for range 1 + rng.IntN(30) {
			b.WriteRune(cjkRunes[rng.IntN(len(cjkRunes))])
		}
		return b.String()
	default:
		return vocabulary[rng.IntN(len(vocabulary))]
	}
}

func randomTranscript(rng *rand.Rand) (*Transcript, ShapeOptions) {
	var opts ShapeOptions
	if rng.IntN(3) == 0 {
		opts = ShapeOptions{
			MaxLineChars: 8 + rng.IntN(60),
			MaxLines:     1 + rng.IntN(3),
			MinDuration:  time.Duration(rng.IntN(2000)) * time.Millisecond,
			MaxDuration:  time.Duration(1000+rng.IntN(9000)) * time.Millisecond,
			MaxCPS:       5 + rng.Float64()*20,
			SplitGap:     time.Duration(rng.IntN(3000)) * time.Millisecond,
		}
	}
	tr := &Transcript{Language: []string{"en", "de", "zh", ""}[rng.IntN(4)]}
	var at time.Duration
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	for range rng.IntN(25) {
		switch rng.IntN(6) {
		case 0:
			at += ms(rng.IntN(8000)) // a silence
		case 1:
			at -= ms(rng.IntN(500)) // overlapping segments happen
		}
		at = max(at, 0)
		n := rng.IntN(30)
		seg := Segment{Start: at}
		if rng.IntN(2) == 0 {
			// Word times, with silences between some words.
			t := at
			for k := range n {
				t += ms(rng.IntN(100))
				if rng.IntN(10) == 0 {
					t += ms(rng.IntN(4000))
				}
				w := Word{Text: randomWord(rng), Start: t}
				if k > 0 || rng.IntN(2) == 0 {
					w.Text = " " + w.Text
				}
				t += ms(rng.IntN(900))
				w.End = t
				seg.Words = append(seg.Words, w)
			}
			seg.End = t
		} else {
			var words []string
			for range n {
				words = append(words, randomWord(rng))
			}
			seg.Text = " " + strings.Join(words, " ")
			if rng.IntN(8) > 0 {
				seg.End = at + ms(rng.IntN(12000))
			} else {
				seg.End = at // zero length
			}
		}
		at = seg.End
		tr.Segments = append(tr.Segments, seg)
	}
	if rng.IntN(2) == 0 {
		tr.Duration = at + ms(rng.IntN(3000)-1000)
	}
	return tr, opts
}

func TestValidate(t *testing.T) {
	ok := Cue{Start: 0, End: sec(2), Text: "fine"}
	cases := []struct {
		name string
		cues []Cue
		want string // in the error; "" = valid
	}{
		{"valid", []Cue{ok, {Start: sec(2), End: sec(2.5), Text: "short but followed"}, {Start: sec(2.5), End: sec(2.6), Text: "last"}}, ""},
		{"sub-millisecond", []Cue{{Start: 1, End: sec(2), Text: "x"}}, "whole milliseconds"},
		{"negative", []Cue{{Start: -sec(1), End: sec(2), Text: "x"}}, "before 0"},
		{"end before start", []Cue{{Start: sec(2), End: sec(1), Text: "x"}}, "not after its start"},
		{"too long", []Cue{{Start: 0, End: sec(7.001), Text: "x"}}, "longer than 7s"},
		{"too short", []Cue{{Start: 0, End: sec(0.5), Text: "x"}, {Start: sec(0.6), End: sec(2), Text: "y"}}, "shorter than 1s"},
		{"overlap", []Cue{ok, {Start: sec(1.5), End: sec(3), Text: "y"}}, "before cue 1 ends"},
		{"three lines", []Cue{{Start: 0, End: sec(2), Text: "a\nb\nc"}}, "3 lines"},
		{"empty line", []Cue{{Start: 0, End: sec(2), Text: "a\n"}}, "line 2 is empty"},
		{"padded line", []Cue{{Start: 0, End: sec(2), Text: " a"}}, "surrounding spaces"},
		{"43 characters", []Cue{{Start: 0, End: sec(2), Text: strings.Repeat("é", 43)}}, "43 characters"},
		{"arrow", []Cue{{Start: 0, End: sec(2), Text: "a --> b"}}, "-->"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Validate(c.cues, ShapeOptions{})
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid mentioning %q", err, c.want)
			}
		})
	}
	if n := utf8.RuneCountInString(strings.Repeat("é", 42)); n != 42 {
		t.Fatal(n)
	}
}
