package whisper

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLoopMask(t *testing.T) {
	rep := func(unit []int, n int) []int {
		var out []int
		for range n {
			out = append(out, unit...)
		}
		return out
	}
	cat := func(parts ...[]int) []int { return slices.Concat(parts...) }
	cases := []struct {
		name  string
		ids   []int
		want  []int // kept
		found bool
	}{
		{"no repetition", []int{1, 2, 3, 4, 5, 6}, []int{1, 2, 3, 4, 5, 6}, false},
		{"one token, 9 times: speech", rep([]int{7}, 9), rep([]int{7}, 9), false},
		{"one token, 10 times", rep([]int{7}, 10), []int{7}, true},
		{"two tokens, 4 times: speech", rep([]int{7, 8}, 4), rep([]int{7, 8}, 4), false},
		{"two tokens, 5 times", rep([]int{7, 8}, 5), []int{7, 8}, true},
		{"a phrase 3 times: speech", rep([]int{1, 2, 3, 4}, 3), rep([]int{1, 2, 3, 4}, 3), false},
		{"a phrase 4 times within text", cat([]int{9, 9, 5}, rep([]int{1, 2, 3, 4}, 4), []int{1, 2, 6}),
			[]int{9, 9, 5, 1, 2, 3, 4, 6}, true},
		{"two loops", cat(rep([]int{5}, 12), []int{6}, rep([]int{1, 2, 3}, 6)), []int{5, 6, 1, 2, 3}, true},
		{"the longest period wins", rep([]int{1, 1, 2}, 8), []int{1, 1, 2}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			keep, found := loopMask(c.ids)
			var got []int
			for i, k := range keep {
				if k {
					got = append(got, c.ids[i])
				}
			}
			if found != c.found || !slices.Equal(got, c.want) {
				t.Errorf("kept %v found %v, want %v %v", got, found, c.want, c.found)
			}
		})
	}
}

func TestIsHallucination(t *testing.T) {
	for _, s := range []string{"Thank you.", " you", "Thanks for watching!", "Subtitles by the Amara.org community",
		"Please subscribe", "Untertitel im Auftrag des ZDF, 2021", "ご視聴ありがとうございました", "字幕由Amara.org社区提供"} {
		if !isHallucination(normalizeText(s)) {
			t.Errorf("%q not recognized", s)
		}
	}
	for _, s := range []string{"Thank you for the flowers.", "Are you there?", "", "youth", "subtitles"} {
		if isHallucination(normalizeText(s)) {
			t.Errorf("%q taken for a hallucination", s)
		}
	}
}

// guardSeg is a segment of test-vocabulary tokens (each with probability p).
func guardSeg(start, end float64, toks []int, p float64) pending {
	seg := Segment{Start: start, End: end, Text: textOfIDs(toks), AvgLogProb: -0.2}
	for _, id := range toks {
		seg.Tokens = append(seg.Tokens, Token{ID: id, Text: textOfIDs([]int{id}), P: p})
	}
	return pending{seg: seg, all: toks}
}

func TestGuardWindow(t *testing.T) {
	o := DefaultOptions()
	var removed []Removal
	// The test vocabulary's text tokens are the letters 'a'..'t': "so" (18, 14) is a known
	// hallucination phrase in it.
	so := []int{18, 14}
	phrase := guardSeg(5, 6, []int{1, 2}, 0.9)
	phrase.seg.Text = " One, two three."
	g := newGuard(&o, textOfIDs, &removed)
	speechAll := func(float64, float64) float64 { return 1 }
	speechNone := func(float64, float64) float64 { return 0 }

	// Window 1: a confident "so" in speech is kept; a loop is collapsed.
	loop := slices.Concat([]int{1, 2}, slices.Repeat([]int{3, 4}, 8))
	w1 := []pending{guardSeg(0, 1, so, 0.9), guardSeg(1, 5, loop, 0.9), phrase}
	kept, repeated := g.window(w1, speechAll, nil)
	if len(kept) != 3 || kept[0].seg.Text != "so" || kept[1].seg.Text != "bcde" || !repeated {
		t.Fatalf("window 1: kept %+v repeated %v", kept, repeated)
	}
	if !slices.Equal(kept[1].all, []int{1, 2, 3, 4}) || len(kept[1].seg.Tokens) != 4 {
		t.Errorf("collapsed segment: history %v tokens %v", kept[1].all, kept[1].seg.Tokens)
	}
	// Window 2: the same "so" outside speech, or improbable, or with high no-speech probability
	// is removed; the previous segment's text again (three words) is removed as repeated.
	lowNS := guardSeg(5, 6, so, 0.9)
	lowNS.seg.NoSpeechProb = 0.5
	again := guardSeg(8, 9, []int{1, 2}, 0.9)
	again.seg.Text = " one two, three!"
	w2 := []pending{guardSeg(6, 7, so, 0.9), guardSeg(7, 8, so, 0.1), lowNS, again, guardSeg(9, 10, []int{5, 6}, 0.9)}
	kept, repeated = g.window(w2, speechNone, nil)
	if len(kept) != 1 || kept[0].seg.Text != "fg" || !repeated {
		t.Fatalf("window 2: kept %+v repeated %v", kept, repeated)
	}
	want := []Removal{
		{Start: 1, End: 5, Text: strings.Repeat("de", 7), Reason: ReasonLoop},
		{Start: 6, End: 7, Text: "so", Reason: ReasonHallucination},
		{Start: 7, End: 8, Text: "so", Reason: ReasonHallucination},
		{Start: 5, End: 6, Text: "so", Reason: ReasonHallucination},
		{Start: 8, End: 9, Text: " one two, three!", Reason: ReasonRepeat},
	}
	if d := cmp.Diff(want, removed); d != "" {
		t.Errorf("removed (-want +got):\n%s", d)
	}
	// Short texts repeat in speech ("no." "no."); the third time in a row they go.
	removed = nil
	g = newGuard(&o, textOfIDs, &removed)
	var texts []string
	for i := range 4 {
		k, _ := g.window([]pending{guardSeg(float64(i), float64(i+1), []int{13, 14}, 0.9)}, speechAll, nil)
		for _, p := range k {
			texts = append(texts, p.seg.Text)
		}
	}
	if !slices.Equal(texts, []string{"no", "no"}) || len(removed) != 2 {
		t.Errorf("short repeats kept %v, removed %+v", texts, removed)
	}
	// A nil guard keeps everything.
	var off *guard
	if k, rep := off.window(w1, nil, nil); len(k) != 3 || rep {
		t.Errorf("nil guard: %v %v", k, rep)
	}
	// The report is JSON-ready.
	b, err := json.Marshal(want[0])
	if err != nil || !strings.Contains(string(b), `"Reason":"repetition_loop"`) {
		t.Errorf("json %s %v", b, err)
	}
}

// TestGuardForcedLoop decodes with a logit source that favours one token sequence forever (a
// repetition loop up to the length limit) and checks that the guard removes the loop and reports
// it, on the seek loop's segment path.
func TestGuardForcedLoop(t *testing.T) {
	o := greedyOpts()
	o.SuppressBlank = false
	task := testTask(t, o, taskSpec{})
	// <|0.00|> then "h i j" forever (the test context allows 13 sampled tokens).
	script := func(seq []int) []float32 {
		l := make([]float32, tVocab)
		k := len(seq) - 3
		switch {
		case k < 0:
		case k == 0:
			l[tTS] = 9
		default:
			l[7+(k-1)%3] = 9
		}
		return l
	}
	dr, err := task.run(&fakeStepper{logits: script})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dr.text, "hijhijhijhij") {
		t.Fatalf("the fake did not loop: %q", dr.text)
	}
	var removed []Removal
	g := newGuard(&o, textOfIDs, &removed)
	segs, _ := testTexts().splitOpenAI(dr, 0, 3000)
	kept, repeated := g.window(segs, nil, nil)
	if len(kept) != 1 || kept[0].seg.Text != "hij" || !repeated {
		t.Errorf("kept %+v repeated %v", kept, repeated)
	}
	if len(removed) != 1 || removed[0].Reason != ReasonLoop || !strings.HasPrefix(removed[0].Text, "hijhij") {
		t.Errorf("removed %+v", removed)
	}
}
