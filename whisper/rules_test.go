package whisper

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

// allowed lists the indices of logits that are not -Inf.
func allowed(l []float32) []int {
	var out []int
	for i, v := range l {
		if !math.IsInf(float64(v), -1) {
			out = append(out, i)
		}
	}
	return out
}

func rng(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func without(s []int, drop ...int) []int {
	return slices.DeleteFunc(slices.Clone(s), func(v int) bool { return slices.Contains(drop, v) })
}

func TestTimestampRules(t *testing.T) {
	// Flat logits unless set: text tokens strong enough that the timestamp-sum rule does not fire.
	flat := func() []float32 {
		l := make([]float32, tVocab)
		for i := range tEOT + 1 {
			l[i] = 3
		}
		return l
	}
	// Each timestamp below the text tokens, together above them.
	tsMass := func() []float32 {
		l := flat()
		for i := tTS; i < tVocab; i++ {
			l[i] = 2.5
		}
		return l
	}
	ts := func(k int) int { return tTS + k }
	allTS := rng(tTS, tVocab)
	specials := rng(tEOT+1, tTS)
	cases := []struct {
		name       string
		cpp        bool
		noMass     bool
		maxInitial int
		sampled    []int
		logits     func() []float32
		want       []int
	}{
		{"openai: first token is a timestamp", false, false, -1, nil, flat, allTS},
		{"openai: max initial timestamp", false, false, 3, nil, flat, rng(tTS, tTS+4)},
		{"whisper.cpp: first token free, max initial applies", true, false, 3, nil, flat,
			without(rng(0, tTS+4), tNoTS)},
		{"after a pair: text or EOT", false, false, -1, []int{ts(1), 7, ts(2), ts(2)}, flat, without(rng(0, tTS), tNoTS)},
		{"openai: after a lone timestamp: a later-or-equal timestamp or EOT", false, false, -1, []int{ts(1), 7, ts(4)}, flat,
			append([]int{tEOT}, rng(ts(4), tVocab)...)},
		{"openai: after text, strictly later timestamps", false, false, -1, []int{ts(1), 7, ts(4), ts(4), 8}, flat,
			append(without(rng(0, tTS), tNoTS), rng(ts(5), tVocab)...)},
		{"whisper.cpp: after text, equal timestamp allowed", true, false, -1, []int{ts(1), 7, ts(4), ts(4), 8}, flat,
			append(without(rng(0, tTS), tNoTS), rng(ts(4), tVocab)...)},
		{"whisper.cpp: <|0.00|> does not count as seen", true, false, -1, []int{ts(0), 7}, flat,
			append(without(rng(0, tTS), tNoTS), allTS...)},
		{"timestamp mass beats every text token", false, false, -1, []int{ts(0), 7}, tsMass, rng(ts(1), tVocab)},
		{"without the mass rule (mini): text stays possible", false, true, -1, []int{ts(0), 7}, tsMass,
			append(without(rng(0, tTS), tNoTS), rng(ts(1), tVocab)...)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &timestampRules{eot: tEOT, noTimestamps: tNoTS, begin: tTS, maxInitial: c.maxInitial, forceFirst: !c.cpp, repeat: c.cpp, noMassRule: c.noMass}
			l := c.logits()
			// The other filters of a task would remove the specials; do it here too.
			suppressTokens{ids: specials}.apply(l, c.sampled)
			r.apply(l, c.sampled)
			got := allowed(l)
			want := without(c.want, specials...)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("allowed %v\nwant    %v", got, want)
			}
		})
	}
}

func TestTimestampMassRule(t *testing.T) {
	mini, err := weights.Arch("mini")
	if err != nil {
		t.Fatal(err)
	}
	large, err := weights.Arch("large-v3")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		arch string
		cfg  weights.Config
		want bool
	}{
		{"mini", mini, false},
		{"large-v3", large, true},
		{"mini", large, true}, // a file that calls itself mini but is not
	} {
		if got := timestampMassRule(c.arch, c.cfg); got != c.want {
			t.Errorf("timestampMassRule(%s): %v, want %v", c.arch, got, c.want)
		}
	}
}

func TestSuppressBlank(t *testing.T) {
	f := suppressBlank{ids: []int{tBlank, tEOT}}
	l := make([]float32, tVocab)
	f.apply(l, nil)
	if got := allowed(l); !slices.Equal(got, without(rng(0, tVocab), tBlank, tEOT)) {
		t.Errorf("first position: allowed %v", got)
	}
	l = make([]float32, tVocab)
	f.apply(l, []int{7})
	if got := allowed(l); len(got) != tVocab {
		t.Errorf("later position: %d allowed, want all", len(got))
	}
}

func TestSuppressList(t *testing.T) {
	base := []int{tSOT, tTransl, tTransc, tSOTLM, tPrev, tNoSp}
	cases := []struct {
		name    string
		user    string
		cpp     bool
		want    []int
		wantErr bool
	}{
		{"specials only", "", false, base, false},
		{"non-speech set", "-1", false, append([]int{5, 6}, base...), false},
		{"ids and -1", "1, -1,2", false, append([]int{1, 2, 5, 6}, base...), false},
		{"whisper.cpp adds notimestamps and languages", "", true, append([]int{tEN, tDE, tNoTS}, base...), false},
		{"not a number", "x", false, nil, true},
		{"negative", "-2", false, nil, true},
		{"out of range", "40", false, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := suppressList(testIDs(), c.user, c.cpp)
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v, want error %v", err, c.wantErr)
			}
			want := slices.Clone(c.want)
			slices.Sort(want)
			if !c.wantErr && !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

func TestFilterOrderInTask(t *testing.T) {
	// At the first position with default options: blank and EOT suppressed, non-speech and
	// specials suppressed, and (openai) text masked for the forced timestamp.
	o := DefaultOptions()
	o.NoTimestamps = true // no timestamp rules: text stays visible
	task := testTask(t, o, taskSpec{})
	l := make([]float32, tVocab)
	task.filter(l, nil)
	want := without(rng(0, tVocab), tBlank, tEOT, 5, 6, tSOT, tTransl, tTransc, tSOTLM, tPrev, tNoSp)
	if got := allowed(l); !slices.Equal(got, want) {
		t.Errorf("allowed %v\nwant    %v", got, want)
	}
	// whisper.cpp's no-timestamps mode masks every timestamp and the language tokens.
	o.Compat = CompatWhisperCpp
	task = testCppTask(t, o, taskSpec{remain: 3000})
	l = make([]float32, tVocab)
	task.filter(l, nil)
	want = without(rng(0, tTS), tBlank, tEOT, 5, 6, tSOT, tTransl, tTransc, tSOTLM, tPrev, tNoSp, tEN, tDE, tNoTS)
	if got := allowed(l); !slices.Equal(got, want) {
		t.Errorf("whisper.cpp: allowed %v\nwant    %v", got, want)
	}
}

// TestKeepTimestampsInAudio: a window with 9 of its 30 frames of audio (timestamps 2 frames
// apart) allows timestamps up to index 6 (5 ends the audio, one more for rounding); a full
// window, the option off and whisper.cpp mode allow all ten.
func TestKeepTimestampsInAudio(t *testing.T) {
	for _, c := range []struct {
		name   string
		frames int
		on     bool
		cpp    bool
		last   int // last allowed timestamp index
	}{
		{"short window", 9, true, false, 6},
		{"full window", 30, true, false, tVocab - tTS - 1},
		{"frames unknown", 0, true, false, tVocab - tTS - 1},
		{"option off", 9, false, false, tVocab - tTS - 1},
		{"whisper.cpp", 9, true, true, tVocab - tTS - 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := DefaultOptions()
			o.KeepTimestampsInAudio = c.on
			ru := &openaiRules
			if c.cpp {
				o.Compat, ru = CompatWhisperCpp, &cppRules
			}
			spec := taskSpec{sot: []int{tSOT, tEN, tTransc}, remain: 9, audioFrames: c.frames}
			task, err := newDecodeTask(testIDs(), 32, 15, &o, ru, spec, newRNG(1), textOfIDs)
			if err != nil {
				t.Fatal(err)
			}
			l := make([]float32, tVocab)
			task.filter(l, []int{tTS, 7}) // after a timestamp and text: a timestamp may close it
			var got []int
			for _, id := range allowed(l) {
				if id >= tTS {
					got = append(got, id-tTS)
				}
			}
			if len(got) == 0 || got[len(got)-1] != c.last {
				t.Errorf("allowed timestamp indices %v, want up to %d", got, c.last)
			}
		})
	}
}

// TestPickMatchesFilters: for every kind of task (openai and whisper.cpp timestamp rules, no
// timestamps, suppress blank at the first position) and random histories and logits, the
// filters' masks as data (pickMasks, the tensor.PickRow a device gets) picked by tensor.PickF32
// give the token, log-probability and best timestamp of filter + argmax, and tensor.PickTopF32
// the best tokens and log-probabilities of filter + top-k (beam search's proposals).
func TestPickMatchesFilters(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var tasks []*decodeTask
	for _, ts := range []bool{true, false} {
		for k, ru := range []*rules{&openaiRules, &cppRules, &openaiRules} {
			o := DefaultOptions()
			o.NoTimestamps, o.MaxInitialTimestamp = !ts, 0.1
			spec := taskSpec{sot: []int{tSOT, tEN, tTransc}, remain: 3000}
			if k == 2 {
				spec.audioFrames = 11 // KeepTimestampsInAudio's range too
			}
			task, err := newDecodeTask(testIDs(), 32, 15, &o, ru, spec, newRNG(1), textOfIDs)
			if err != nil {
				t.Fatal(err)
			}
			tasks = append(tasks, task)
		}
	}
	var pm pickMasks
	for trial := range 4000 {
		task := tasks[trial%len(tasks)]
		var sampled []int
		for range r.IntN(5) {
			if r.IntN(2) == 0 {
				sampled = append(sampled, r.IntN(tEOT))
			} else {
				sampled = append(sampled, tTS+r.IntN(tVocab-tTS))
			}
		}
		logits := make([]float32, tVocab)
		for i := range logits {
			logits[i] = float32(r.NormFloat64() * 3)
		}
		if r.IntN(3) == 0 {
			for i := tTS; i < tVocab; i++ {
				logits[i] += 3
			}
		}
		a := slices.Clone(logits)
		lse, tid := task.filter(a, sampled)
		tok := argmax(a)
		row := pm.row(task, sampled)
		p := tensor.PickF32(slices.Clone(logits), pm.bitmaps, row)
		if int(p.Token) != tok || int(p.TS) != tid {
			t.Fatalf("trial %d (%v, history %v): pick %d ts %d, filters %d ts %d", trial, row, sampled, p.Token, p.TS, tok, tid)
		}
		if tok >= 0 && p.LogProb != float64(a[tok])-lse {
			t.Fatalf("trial %d: log-probability %g, filters %g", trial, p.LogProb, float64(a[tok])-lse)
		}
		// The top 6 (beam search 5's proposals) as tensor.PickTopF32 ranks them.
		top := make([]tensor.Cand, 6)
		if q := tensor.PickTopF32(slices.Clone(logits), pm.bitmaps, row, top); q != p {
			t.Fatalf("trial %d: PickTopF32's pick %+v, PickF32's %+v", trial, q, p)
		}
		for j, i := range tensor.TopK(a, len(top)) {
			if want := (tensor.Cand{Token: int32(i), LogProb: float64(a[i]) - lse}); top[j] != want && !(math.IsNaN(want.LogProb) && top[j].Token == want.Token) {
				t.Fatalf("trial %d: candidate %d is %+v, filters %+v", trial, j, top[j], want)
			}
		}
	}
}
