package summarize

import (
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/verbatimhq/verbatim/sidecar"
)

func sec(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func texts(ss []Sentence) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Text
	}
	return out
}

func TestSentencesPunctuation(t *testing.T) {
	cases := []struct {
		text string
		want []string
	}{
		{"Hello there. How are you? Great!", []string{"Hello there.", "How are you?", "Great!"}},
		{"It costs 3.5 dollars. Then we left.", []string{"It costs 3.5 dollars.", "Then we left."}},
		{"Version 2.0 shipped in 2023. It was late.", []string{"Version 2.0 shipped in 2023.", "It was late."}},
		{"Mr. Smith met Dr. Jones. They talked.", []string{"Mr. Smith met Dr. Jones.", "They talked."}},
		{"Bring tools, e.g. a hammer. Or not.", []string{"Bring tools, e.g. a hammer.", "Or not."}},
		{"Bring tools, i.e. hammers and saws.", []string{"Bring tools, i.e. hammers and saws."}},
		{"We moved to the U.S. last year. It was fun.", []string{"We moved to the U.S. last year.", "It was fun."}},
		{"I live in the U.S. It is big.", []string{"I live in the U.S.", "It is big."}},
		{"The meeting is at 5 p.m. We will be there.", []string{"The meeting is at 5 p.m.", "We will be there."}},
		{"Apples, pears, etc. are fruit. Nice.", []string{"Apples, pears, etc. are fruit.", "Nice."}},
		{`He said "stop." Then he left.`, []string{`He said "stop."`, "Then he left."}},
		{"(It was fine.) Really?", []string{"(It was fine.)", "Really?"}},
		{"Wait... what happened? Nothing...", []string{"Wait... what happened?", "Nothing..."}},
		{"John F. Kennedy was president.", []string{"John F. Kennedy was president."}},
		{"Is it? Yes! No.", []string{"Is it?", "Yes!", "No."}},
		{"  lots   of   space .  ", []string{"lots of space ."}},
		{"", nil},
	}
	for _, c := range cases {
		got := texts(Sentences([]sidecar.Segment{{Start: 0, End: sec(10), Text: c.text}}))
		if !slices.Equal(got, c.want) {
			t.Errorf("%q:\n got %q\nwant %q", c.text, got, c.want)
		}
	}
}

func TestSentencesAcrossSegments(t *testing.T) {
	segs := []sidecar.Segment{
		{Start: 0, End: sec(2), Text: " We went to the"},
		{Start: sec(2), End: sec(4), Text: " store. Then we"},
		{Start: sec(4.5), End: sec(5), Text: " left."},
	}
	got := Sentences(segs)
	want := []string{"We went to the store.", "Then we left."}
	if !slices.Equal(texts(got), want) {
		t.Fatalf("got %q, want %q", texts(got), want)
	}
	// "store." is the first 6 of the 14 characters of " store. Then we" (leading space
	// dropped: "store. Then we" has 14), so it ends at 2 s + 2 s·6/14.
	if got[0].Start != 0 || got[0].End != sec(2)+sec(2)*6/14 {
		t.Errorf("first sentence %v–%v", got[0].Start, got[0].End)
	}
	if got[1].Start != sec(2)+sec(2)*7/14 || got[1].End != sec(5) {
		t.Errorf("second sentence %v–%v", got[1].Start, got[1].End)
	}
}

func TestSentencesInterpolated(t *testing.T) {
	// "One. Two three." has 15 characters: "One." is [0, 4), "Two three." is [5, 15).
	got := Sentences([]sidecar.Segment{{Start: sec(10), End: sec(25), Text: "One. Two three."}})
	want := []Sentence{{sec(10), sec(14), "One."}, {sec(15), sec(25), "Two three."}}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestSentencesWordTimes(t *testing.T) {
	words := []sidecar.Word{
		{Text: " Hel", Start: sec(1), End: sec(1.2)},
		{Text: "lo", Start: sec(1.2), End: sec(1.5)},
		{Text: " there.", Start: sec(1.6), End: sec(2)},
		{Text: " How", Start: sec(2.8), End: sec(3)},
		{Text: " are", Start: sec(3), End: sec(3.2)},
		{Text: " you?", Start: sec(3.3), End: sec(3.9)},
	}
	// The segment's own times and text are not used when it has words.
	got := Sentences([]sidecar.Segment{{Start: 0, End: sec(9), Text: "ignored", Words: words}})
	want := []Sentence{{sec(1), sec(2), "Hello there."}, {sec(2.8), sec(3.9), "How are you?"}}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	// Words without leading spaces (not Whisper's convention) are separate words.
	plain := []sidecar.Word{{Text: "Good", Start: sec(1), End: sec(2)}, {Text: "morning.", Start: sec(2), End: sec(3)}}
	got = Sentences([]sidecar.Segment{{Words: plain}})
	if want := []Sentence{{sec(1), sec(3), "Good morning."}}; !slices.Equal(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	// Times that go backwards are made monotonic.
	back := []sidecar.Word{{Text: " Late.", Start: sec(5), End: sec(6)}, {Text: " Early.", Start: sec(2), End: sec(3)}}
	got = Sentences([]sidecar.Segment{{Words: back}})
	if want := []Sentence{{sec(5), sec(6), "Late."}, {sec(6), sec(6), "Early."}}; !slices.Equal(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestSentencesTwoInOneSegment(t *testing.T) {
	got := Sentences([]sidecar.Segment{{Start: sec(3), End: sec(9), Text: " First we plan. Then we build."}})
	if len(got) != 2 {
		t.Fatalf("got %+v", got)
	}
	if !(got[0].Start == sec(3) && got[0].Start < got[0].End && got[0].End < got[1].Start && got[1].Start < got[1].End && got[1].End == sec(9)) {
		t.Errorf("times not ordered: %+v", got)
	}
}

func TestSentencesPauses(t *testing.T) {
	segs := []sidecar.Segment{
		{Start: 0, End: sec(2), Text: " so we talked about the budget"},
		{Start: sec(2.1), End: sec(3), Text: " and then the schedule"},          // 0.1 s pause: same sentence
		{Start: sec(4), End: sec(6), Text: " the next thing is hiring for the"}, // 1 s pause: new sentence
		{Start: sec(7), End: sec(8), Text: " design team"},                      // after "the": same sentence
		{Start: sec(9), End: sec(10), Text: " okay, and,"},                      // new sentence
		{Start: sec(11), End: sec(12), Text: " that is all"},                    // after a comma: same
	}
	got := texts(Sentences(segs))
	want := []string{
		"so we talked about the budget and then the schedule",
		"the next thing is hiring for the design team",
		"okay, and, that is all",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestSentencesLongRun(t *testing.T) {
	// 100 words without punctuation in one segment: cut into sentences of at most MaxWords.
	ws := make([]string, 100)
	for i := range ws {
		ws[i] = "word"
	}
	got := Sentences([]sidecar.Segment{{Start: 0, End: sec(40), Text: strings.Join(ws, " ")}})
	n := 0
	for _, s := range got {
		k := len(strings.Fields(s.Text))
		if k > MaxWords || k == 0 {
			t.Errorf("sentence of %d words", k)
		}
		n += k
	}
	if n != 100 || len(got) < 3 {
		t.Errorf("%d sentences, %d words", len(got), n)
	}
	// Segments without pauses and punctuation: the cut goes to a segment end.
	var segs []sidecar.Segment
	for i := range 10 {
		segs = append(segs, sidecar.Segment{Start: sec(float64(3 * i)), End: sec(float64(3*i + 3)), Text: " one two three four five six seven"})
	}
	got = Sentences(segs)
	for _, s := range got[:len(got)-1] {
		if k := len(strings.Fields(s.Text)); k%7 != 0 || k > MaxWords {
			t.Errorf("sentence of %d words, want whole segments: %q", k, s.Text)
		}
	}
}

// expectedWords is what the words of segs are: for a segment whose words have text, their
// texts run together (Whisper's convention, when a word after the first starts with a space)
// or joined by spaces, split at white space; else its text split at white space.
func expectedWords(segs []sidecar.Segment) []string {
	var out []string
	for _, s := range segs {
		has := false
		for _, w := range s.Words {
			has = has || strings.TrimSpace(w.Text) != ""
		}
		if !has {
			out = append(out, strings.Fields(s.Text)...)
			continue
		}
		leading := false
		var texts []string
		for i, w := range s.Words {
			r, _ := utf8.DecodeRuneInString(w.Text)
			leading = leading || i > 0 && unicode.IsSpace(r)
			texts = append(texts, w.Text)
		}
		sep := " "
		if leading {
			sep = ""
		}
		out = append(out, strings.Fields(strings.Join(texts, sep))...)
	}
	return out
}

// FuzzSentences: arbitrary text in segments ("|" separates segments, "~" words within one;
// times from the other arguments, possibly out of order) never panics, gives sentences in
// time order, and loses or adds no word.
func FuzzSentences(f *testing.F) {
	f.Add("Hello there. How are you?|I'm fine~ thanks. Mr. Smith~ says hi", uint64(1), true)
	f.Add("so we talked|about the 3.5 budget e.g. costs|and the U.S. office", uint64(2), false)
	f.Add("a~b~ c.|...|?!|\"quoted.\" (yes.)", uint64(3), true)
	f.Add(strings.Repeat("word ", 90), uint64(4), false)
	f.Add("\xff\xfe. .. ...|  |~~ ~", uint64(5), true)
	f.Fuzz(func(t *testing.T, text string, seed uint64, words bool) {
		r := rng(seed)
		var segs []sidecar.Segment
		var at time.Duration
		for _, part := range strings.Split(text, "|") {
			start := at + time.Duration(r.next()%3000-1000)*time.Millisecond
			end := start + time.Duration(r.next()%6000)*time.Millisecond
			seg := sidecar.Segment{Start: start, End: end, Text: strings.ReplaceAll(part, "~", "")}
			if words {
				for _, w := range strings.Split(part, "~") {
					ws := start + time.Duration(r.next()%4000)*time.Millisecond
					seg.Words = append(seg.Words, sidecar.Word{Text: w, Start: ws, End: ws + time.Duration(r.next()%900)*time.Millisecond})
				}
			}
			segs = append(segs, seg)
			at = end
		}
		got := Sentences(segs)
		var all []string
		for i, s := range got {
			if s.End < s.Start || (i > 0 && s.Start < got[i-1].End) {
				t.Fatalf("sentence %d %v–%v after %v", i, s.Start, s.End, got[i-1].End)
			}
			fs := strings.Fields(s.Text)
			if len(fs) == 0 || strings.Join(fs, " ") != s.Text {
				t.Fatalf("sentence %d: %q", i, s.Text)
			}
			all = append(all, fs...)
		}
		if want := expectedWords(segs); !slices.Equal(all, want) {
			t.Fatalf("words\n got %q\nwant %q", all, want)
		}
		// And the summary of it does not panic either.
		checkResult(t, got, Extractive(got, Options{}))
	})
}
