package whisper

import (
	"bytes"
	"compress/zlib"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// A 40-token test vocabulary laid out as Whisper's: text 0-19, then the specials, then 10
// timestamps (0.00 .. 0.18 s).
const (
	tEOT    = 20
	tSOT    = 21
	tEN     = 22
	tDE     = 23
	tTransl = 24
	tTransc = 25
	tSOTLM  = 26
	tPrev   = 27
	tNoSp   = 28
	tNoTS   = 29
	tTS     = 30 // <|0.00|>
	tVocab  = 40
	tBlank  = 3
)

func testIDs() vocabIDs {
	return vocabIDs{
		nVocab: tVocab, eot: tEOT, sot: tSOT, translate: tTransl, transcribe: tTransc, sotLM: tSOTLM,
		sotPrev: tPrev, noSpeech: tNoSp, noTimestamps: tNoTS, tsBegin: tTS,
		blank: []int{tBlank}, langs: []int{tEN, tDE}, nonSpeech: []int{5, 6},
	}
}

// fakeStepper is a deterministic logit source for unit tests: the logits of a sequence are a
// function of its whole token history, so wrong cache bookkeeping (a missing or wrong Reorder)
// shows up as wrong logits. It is never used outside tests.
type fakeStepper struct {
	seqs    [][]int
	logits  func(seq []int) []float32
	steps   [][][]int32 // every Step call
	reorder [][]int
	fail    int // fail the Step call with this index (1-based); 0: never
}

func (f *fakeStepper) Step(tokens [][]int32, all bool) ([]float32, error) {
	if all {
		return nil, errors.New("fake: all positions not supported")
	}
	f.steps = append(f.steps, tokens)
	if f.fail == len(f.steps) {
		return nil, errors.New("fake: step failed")
	}
	if f.seqs == nil {
		f.seqs = make([][]int, len(tokens))
	}
	if len(tokens) != len(f.seqs) {
		return nil, errors.New("fake: batch size changed")
	}
	var out []float32
	for i, row := range tokens {
		for _, v := range row {
			f.seqs[i] = append(f.seqs[i], int(v))
		}
		out = append(out, f.logits(f.seqs[i])...)
	}
	return out, nil
}

func (f *fakeStepper) Reorder(src []int) error {
	f.reorder = append(f.reorder, append([]int(nil), src...))
	next := make([][]int, len(src))
	for i, s := range src {
		next[i] = append([]int(nil), f.seqs[s]...)
	}
	f.seqs = next
	return nil
}

// script returns a logit function that, after prefix, prefers want[k] at sampled position k
// (logit hi, everything else 0), and prefers EOT after the script.
func script(prefixLen int, want []int, hi float32) func([]int) []float32 {
	return func(seq []int) []float32 {
		l := make([]float32, tVocab)
		k := len(seq) - prefixLen
		switch {
		case k < 0:
		case k < len(want):
			l[want[k]] = hi
		default:
			l[tEOT] = hi
		}
		return l
	}
}

func textOfIDs(ids []int) string {
	b := make([]byte, 0, len(ids))
	for _, id := range ids {
		if id < tEOT {
			b = append(b, 'a'+byte(id))
		}
	}
	return string(b)
}

// testTask builds a task with the reference's rules; testCppTask with whisper.cpp's.
func testTask(t *testing.T, o Options, spec taskSpec) *decodeTask {
	t.Helper()
	return testTaskRules(t, o, &openaiRules, spec)
}

func testCppTask(t *testing.T, o Options, spec taskSpec) *decodeTask {
	t.Helper()
	return testTaskRules(t, o, &cppRules, spec)
}

func testTaskRules(t *testing.T, o Options, ru *rules, spec taskSpec) *decodeTask {
	t.Helper()
	if spec.sot == nil {
		spec.sot = []int{tSOT, tEN, tTransc}
	}
	task, err := newDecodeTask(testIDs(), 32, 1500, &o, ru, spec, newRNG(o.Seed), textOfIDs)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

func greedyOpts() Options {
	o := DefaultOptions()
	o.BeamSize, o.BestOf = 1, 1
	o.SuppressTokens = ""
	return o
}

func TestGreedyDecode(t *testing.T) {
	want := []int{tTS, 7, 8, tTS + 2}
	task := testTask(t, greedyOpts(), taskSpec{})
	f := &fakeStepper{logits: script(3, want, 5)}
	r, err := task.run(f)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.tokens, want) {
		t.Fatalf("tokens %v, want %v", r.tokens, want)
	}
	// First token: text masked (forced timestamp), 10 timestamps left, the wanted one at 5.
	wantLP := 5 - math.Log(math.Exp(5)+9)
	if math.Abs(r.logprobs[0]-wantLP) > 1e-6 {
		t.Errorf("logprob[0] = %v, want %v", r.logprobs[0], wantLP)
	}
	if got := r.sumLogProb / float64(len(r.tokens)+1); math.Abs(r.avgLogProb-got) > 1e-12 {
		t.Errorf("avg logprob %v, want sum/(n+1) = %v", r.avgLogProb, got)
	}
	if r.text != "hi" || r.temperature != 0 {
		t.Errorf("text %q temperature %v", r.text, r.temperature)
	}
	// Two prompt Steps (up to SOT for the no-speech probability, then the rest), then one per
	// sampled token except the last (EOT).
	if len(f.steps) != 2+len(want) {
		t.Errorf("%d Step calls, want %d", len(f.steps), 2+len(want))
	}
}

func TestNoSpeechAtSOTWithPrompt(t *testing.T) {
	logits := func(seq []int) []float32 {
		l := make([]float32, tVocab)
		switch seq[len(seq)-1] {
		case tSOT:
			l[tNoSp] = 3
		case tNoTS:
			l[tNoSp] = 9 // whisper.cpp reads it here
		}
		l[1] = 1
		return l
	}
	o := greedyOpts()
	o.NoTimestamps = true
	prompt := []int{1, 2, 4}
	cases := []struct {
		name      string
		rules     *rules
		firstStep int
		want      float64
	}{
		{"openai", &openaiRules, 5, math.Exp(3) / (math.Exp(3) + math.Exp(1) + tVocab - 2)},
		{"whisper.cpp", &cppRules, 8, math.Exp(9) / (math.Exp(9) + math.Exp(1) + tVocab - 2)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			task := testTaskRules(t, o, c.rules, taskSpec{prompt: prompt, remain: 3000})
			wantInit := []int{tPrev, 1, 2, 4, tSOT, tEN, tTransc, tNoTS}
			if !slices.Equal(task.initial, wantInit) {
				t.Fatalf("initial %v, want %v", task.initial, wantInit)
			}
			f := &fakeStepper{logits: logits}
			r, err := task.run(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(f.steps[0][0]) != c.firstStep {
				t.Errorf("first Step fed %d tokens, want %d", len(f.steps[0][0]), c.firstStep)
			}
			if math.Abs(r.noSpeechProb-c.want) > 1e-9 {
				t.Errorf("no-speech %v, want %v", r.noSpeechProb, c.want)
			}
		})
	}
}

func TestPromptTruncation(t *testing.T) {
	prompt := make([]int, 40)
	for i := range prompt {
		prompt[i] = i % 20
	}
	// n_text_ctx 32: the reference keeps the last 15, whisper.cpp the last 16.
	openai := testTask(t, greedyOpts(), taskSpec{prompt: prompt})
	if got := openai.sotIndex; got != 16 {
		t.Errorf("openai sot index %d, want 16", got)
	}
	if !slices.Equal(openai.initial[1:16], prompt[25:]) {
		t.Errorf("openai prompt %v", openai.initial)
	}
	cpp := testCppTask(t, greedyOpts(), taskSpec{prompt: prompt, remain: 3000})
	if got := cpp.sotIndex; got != 17 {
		t.Errorf("whisper.cpp sot index %d, want 17", got)
	}
}

func TestStepErrorIsReturned(t *testing.T) {
	task := testTask(t, greedyOpts(), taskSpec{})
	f := &fakeStepper{logits: script(3, []int{tTS, 7, 8}, 5), fail: 2}
	if _, err := task.run(f); err == nil {
		t.Fatal("no error from a failing Step")
	}
}

func TestSamplingDeterminism(t *testing.T) {
	// Logits are a hash of the history: many plausible continuations.
	logits := func(seq []int) []float32 {
		h := uint32(2166136261)
		for _, v := range seq {
			h = (h ^ uint32(v)) * 16777619
		}
		l := make([]float32, tVocab)
		for i := range l {
			h = h*1664525 + 1013904223
			l[i] = float32(h>>8) / float32(1<<24) * 3
		}
		return l
	}
	run := func(seed uint64) []int {
		o := greedyOpts()
		o.BestOf = 3
		o.Seed = seed
		o.NoTimestamps = true
		task := testTask(t, o, taskSpec{temperature: 0.8})
		if task.nGroup != 3 {
			t.Fatalf("nGroup %d, want best_of 3", task.nGroup)
		}
		r, err := task.run(&fakeStepper{logits: logits})
		if err != nil {
			t.Fatal(err)
		}
		return r.tokens
	}
	a, b := run(7), run(7)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different tokens:\n%v\n%v", a, b)
	}
	differs := false
	for seed := uint64(8); seed < 12 && !differs; seed++ {
		differs = !slices.Equal(a, run(seed))
	}
	if !differs {
		t.Error("four other seeds all gave the same tokens")
	}
}

// sampleToken draws an index from softmax(logits / temperature) with rng, as one goroutine
// drawing row by row did (the reference of TestSamplerRowsInOrder). temperature must be
// > 0. Indexes at -Inf are never drawn. It returns -1 if every logit is -Inf (and draws nothing
// from rng then).
func sampleToken(rng *rand.Rand, logits []float32, temperature float64, scratch []float64) int {
	sum, ok := sampleWeights(logits, temperature, scratch)
	if !ok {
		return -1
	}
	return drawIndex(scratch[:len(logits)], rng.Float64()*sum)
}

// TestSamplerRowsInOrder: the sampler weighs its rows in parallel and draws from the task's
// generator in row order, so every step gives what one goroutine going row by row gives
// (filter, then sampleToken with the generator of the same seed), a row with nothing allowed
// drawing nothing.
func TestSamplerRowsInOrder(t *testing.T) {
	o := greedyOpts()
	o.BestOf, o.Seed, o.NoTimestamps = 5, 3, true
	task := testTask(t, o, taskSpec{temperature: 0.7})
	ref := testTask(t, o, taskSpec{temperature: 0.7}) // the same filters and generator stream
	s := newSampler(task)
	V := task.ids.nVocab
	h := uint32(1)
	for i := range 6 {
		logits := make([]float32, 5*V)
		for k := range logits {
			h = h*1664525 + 1013904223
			logits[k] = float32(h>>8) / float32(1<<24) * 4
		}
		if i == 2 { // row 3 with nothing allowed: it draws nothing
			for k := 3 * V; k < 4*V; k++ {
				logits[k] = negInf
			}
		}
		want := make([]int32, 5)
		scratch := make([]float64, V)
		for j, c := range s.cands {
			if c.done {
				want[j] = int32(task.ids.eot)
				continue
			}
			row := slices.Clone(logits[j*V : (j+1)*V])
			ref.filter(row, c.tokens)
			tok := sampleToken(ref.rng, row, s.temp, scratch)
			if tok < 0 {
				tok = task.ids.eot
			}
			want[j] = int32(tok)
		}
		got, _, _, err := s.next(i, logits)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("step %d: tokens %v, want %v (one goroutine, row by row)", i, got, want)
		}
	}
}

func TestCompressionRatio(t *testing.T) {
	cases := []struct {
		name     string
		text     string
		min, max float64
	}{
		{"empty", "", 0, 0},
		{"sentence", "And so my fellow Americans, ask not what your country can do for you.", 0.9, 1.5},
		{"loop", "urch urch urch urch urch urch urch urch urch urch urch urch urch urch urch urch urch urch urch urch", 4, 20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := compressionRatio(c.text)
			if got < c.min || got > c.max {
				t.Errorf("compression ratio %v, want in [%v, %v]", got, c.min, c.max)
			}
		})
	}
	if r := compressionRatio("urch urch urch urch urch urch urch urch urch urch"); r <= DefaultOptions().CompressionRatioThreshold {
		t.Errorf("a repetition loop (%v) does not trip the default threshold", r)
	}
	// The pooled writers, reset for each text, compress as a new writer does, whatever came before.
	for i := range 3 {
		for _, c := range cases[1:] {
			var b bytes.Buffer
			w := zlib.NewWriter(&b)
			_, _ = w.Write([]byte(c.text))
			_ = w.Close()
			if got, want := compressionRatio(c.text), float64(len(c.text))/float64(b.Len()); got != want {
				t.Errorf("round %d, %s: %v, a new writer %v", i, c.name, got, want)
			}
		}
	}
}

func TestCppTracker(t *testing.T) {
	cases := []struct {
		name          string
		noTS          bool
		seek, seekEnd int
		toks          []int
		stopAt        int // index of the token that stops the decoder, -1: none
		failed        bool
		resultLen     int
		seekDelta     int
	}{
		{"eot after timestamps", false, 0, 3000, []int{tTS + 1, 7, tTS + 4, tEOT}, 3, false, 3, 8},
		{"eot without timestamp fails", false, 0, 5000, []int{7, 8, tEOT}, 2, true, 0, 3000},
		{"eot without timestamp at the end of audio", false, 0, 5, []int{7, tEOT}, 1, false, 2, 3000},
		{"timestamp reaches the end of audio", false, 0, 12, []int{tTS + 1, 7, tTS + 1}, 0, false, 1, 2},
		{"time goes back", false, 0, 5000, []int{tTS + 4, 7, tTS + 5, 8, tTS + 2}, 4, true, 3, 10},
		{"no timestamps: eot kept", true, 0, 3000, []int{7, 8, tEOT}, 2, false, 3, 3000},
		{"limit without timestamp", true, 0, 3000, []int{7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7}, 11, true, 0, 3000},
		{"limit with an early timestamp", false, 0, 5000, []int{tTS + 1, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7}, 11, true, 1, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := greedyOpts()
			o.NoTimestamps = c.noTS
			task := testCppTask(t, o, taskSpec{remain: c.seekEnd - c.seek})
			if task.sampleLen != 12 {
				t.Fatalf("sample len %d, want n_text_ctx/2-4 = 12", task.sampleLen)
			}
			k := newCppTracker()
			stop := -1
			for i, tok := range c.toks {
				if k.push(task, i, tok) {
					stop = i
					break
				}
			}
			if stop != c.stopAt || k.failed != c.failed || k.resultLen != c.resultLen || k.seekDelta != c.seekDelta {
				t.Errorf("stop %d failed %v resultLen %d seekDelta %d; want %d %v %d %d",
					stop, k.failed, k.resultLen, k.seekDelta, c.stopAt, c.failed, c.resultLen, c.seekDelta)
			}
		})
	}
}

func TestCppFinishTrimsToLastTimestamp(t *testing.T) {
	// whisper.cpp allows a timestamp to repeat the previous one.
	want := []int{tTS + 1, 7, 8, tTS + 3, tTS + 3, 9}
	task := testCppTask(t, greedyOpts(), taskSpec{remain: 3000})
	r, err := task.run(&fakeStepper{logits: script(3, want, 6)})
	if err != nil {
		t.Fatal(err)
	}
	if r.failed || !slices.Equal(r.tokens, want[:5]) || r.seekDelta != 6 || r.resultLen != 5 {
		t.Fatalf("failed %v tokens %v seekDelta %d resultLen %d", r.failed, r.tokens, r.seekDelta, r.resultLen)
	}
	var sum float64
	for _, v := range r.logprobs {
		sum += v
	}
	if math.Abs(r.avgLogProb-sum/5) > 1e-12 {
		t.Errorf("avg logprob %v, want mean over kept tokens %v", r.avgLogProb, sum/5)
	}
}

// TestMaxWindowTokens: the cap shortens a window's sampling; 0 leaves the model's limit, a
// negative cap is refused.
func TestMaxWindowTokens(t *testing.T) {
	o := DefaultOptions()
	full := testTask(t, o, taskSpec{sot: []int{tSOT, tEN, tTransc}})
	o.MaxWindowTokens = 3
	capped := testTask(t, o, taskSpec{sot: []int{tSOT, tEN, tTransc}})
	if capped.sampleLen != 3 || full.sampleLen <= 3 {
		t.Errorf("sample length %d with a cap of 3, %d without", capped.sampleLen, full.sampleLen)
	}
	o.MaxWindowTokens = 1000
	if big := testTask(t, o, taskSpec{sot: []int{tSOT, tEN, tTransc}}); big.sampleLen != full.sampleLen {
		t.Errorf("a cap over the limit: %d, want %d", big.sampleLen, full.sampleLen)
	}
	o.MaxWindowTokens = -1
	if err := o.check(); err == nil {
		t.Error("negative cap accepted")
	}
}
