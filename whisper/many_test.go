package whisper

import (
	"context"
	"errors"
	"fmt"

	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/verbatimhq/verbatim/cpu"
	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper/mel"
)

// exactView is what of a result must not depend on how its windows were batched: the tokens,
// texts, times, temperatures and languages. The probabilities are compared apart (sameResult).
type exactView struct {
	Language string
	Duration float64
	Segments []exactSegment
	Removed  []Removal
}

type exactSegment struct {
	ID                 int
	Start, End         float64
	Text, Language     string
	Temperature        float64
	Tokens             []int
	TokenStart, TokEnd []float64
	Words              []Word
}

func exactOf(r *Result) exactView {
	v := exactView{Language: r.Language, Duration: r.Duration, Removed: r.Removed}
	for _, s := range r.Segments {
		e := exactSegment{ID: s.ID, Start: s.Start, End: s.End, Text: s.Text, Language: s.Language, Temperature: s.Temperature}
		for _, t := range s.Tokens {
			e.Tokens = append(e.Tokens, t.ID)
			e.TokenStart, e.TokEnd = append(e.TokenStart, t.Start), append(e.TokEnd, t.End)
		}
		for _, w := range s.Words {
			w.P = 0 // a probability: compared with the others
			e.Words = append(e.Words, w)
		}
		v.Segments = append(v.Segments, e)
	}
	return v
}

// sameResult fails unless got has want's tokens, texts and times exactly, and its probabilities
// within 1e-5. The CPU backend's decoder rounds a sequence's logits differently depending on how
// many sequences share the batch (cpu.gemm runs few rows as dot products, more as packed tiles),
// so a window decoded in a batch with other inputs' windows gets the same tokens as alone but
// probabilities that may differ in the last bits.
func sameResult(t *testing.T, name string, want, got *Result) {
	t.Helper()
	if d := cmp.Diff(exactOf(want), exactOf(got)); d != "" {
		t.Errorf("%s: batched with other inputs (-alone +batched):\n%s", name, d)
		return
	}
	near := func(what string, a, b float64) {
		if !(math.Abs(a-b) <= 1e-5) && !(math.IsInf(a, -1) && math.IsInf(b, -1)) {
			t.Errorf("%s: %s %v alone, %v batched", name, what, a, b)
		}
	}
	for i, s := range want.Segments {
		g := got.Segments[i]
		near("avg logprob", s.AvgLogProb, g.AvgLogProb)
		near("no-speech probability", s.NoSpeechProb, g.NoSpeechProb)
		near("compression ratio", s.CompressionRatio, g.CompressionRatio)
		for j := range s.Tokens {
			near("token probability", s.Tokens[j].P, g.Tokens[j].P)
		}
		for j := range s.Words {
			near("word probability", s.Words[j].P, g.Words[j].P)
		}
	}
	if len(want.LanguageProbs) != len(got.LanguageProbs) {
		t.Errorf("%s: language probabilities %v alone, %v batched", name, want.LanguageProbs, got.LanguageProbs)
	}
	for k, p := range want.LanguageProbs {
		near("probability of "+k, p, got.LanguageProbs[k])
	}
}

// manyInput is one input of the TranscribeMany tests: its audio and options.
type manyInput struct {
	name    string
	samples []float32
	opts    Options
}

// source streams the input in random-sized chunks (no Len method, as a decoder process).
func (in manyInput) source(seed uint64) AudioSource {
	return &chunkSource{s: in.samples, rng: rand.New(rand.NewPCG(seed, seed))}
}

// quickOptions decodes English greedily, without fallback or word timing: the cheapest decoding
// of random weights, for tests of what happens around it.
func quickOptions() Options {
	o := DefaultOptions()
	o.Language = "en"
	o.BeamSize, o.BestOf = 1, 1
	o.NoFallback = true
	o.WordTimestamps = false
	// The micro model's random weights leave most speech uncovered: the coverage check would
	// retry nearly every window. Its tests turn it on (TestResumeMatches, coverage_test.go).
	o.Coverage = false
	return o
}

// quickTokens caps a window's sampling (Options.MaxWindowTokens) in the tests of how the queue
// opens, batches, detects and isolates its inputs, where the text does not matter: the random
// weights otherwise sample the model's limit of 224 tokens in every window, most of those tests'
// time under the race detector.
const quickTokens = 24

// manyInputs are inputs of different lengths and settings: a short one (with fallback per
// window), one of three windows of the seek loop, one with speech regions (word timing), one
// without speech, one in another language with a prompt and one with its language detected.
// Fallback and word timing are on only where they are checked: random weights fail every check,
// and each fallback is a whole decoding more.
// Each window samples at most fallbackTokens tokens: enough for the short input's T=0 output
// to fail the compression ratio and fall back, a quarter of the model's limit.
func manyInputs(speech []float32) []manyInput {
	o := quickOptions()
	o.MaxWindowTokens = fallbackTokens
	short := o
	short.NoFallback = false
	short.Temperatures = []float64{0, 1.0}
	short.Seed = 7
	withRegions := o
	withRegions.SpeechRegions = microRegions[:3]
	withRegions.WordTimestamps = true
	noSpeech := o
	noSpeech.SpeechRegions = []Span{}
	german := o
	german.Language, german.Prompt = "de", "Guten Tag."
	detect := o
	detect.Language = ""
	detect.SpeechRegions = []Span{{1, 9}, {20, 24}}
	return []manyInput{
		{"short", speech[:3*mel.SampleRate], short},
		{"three windows", synthAudio(75, []Span{{0, 75}}, speech), o},
		{"regions", synthAudio(60, microRegions[:3], speech), withRegions},
		{"no speech", speech, noSpeech},
		{"german", speech[2*mel.SampleRate:], german},
		{"detected", synthAudio(30, []Span{{1, 9}, {20, 24}}, speech), detect},
	}
}

// TestQueueMatchesAlone: every input's result from the queue, its windows batched with the
// others' (batch 4), is its result alone at batch 1, with Sequential windows (the default,
// conditioned on previous text) and Independent ones.
func TestQueueMatchesAlone(t *testing.T) {
	m, speech := loadMicroForTranscribe(t)
	inputs := manyInputs(speech)
	for _, mode := range []WindowMode{Sequential, Independent} {
		if mode == Independent {
			inputs = slices.DeleteFunc(inputs, func(in manyInput) bool { return in.name == "german" || in.name == "short" })
		}
		alone, jobs := aloneAndJobs(t, m, inputs, mode)
		var batches, mixed, most int
		observeBatch = func(_ int, steps []*step) func() {
			batches++
			n := 0
			for _, st := range steps {
				n += len(st.ws)
			}
			most = max(most, n)
			if len(steps) > 1 {
				mixed++
			}
			return nil
		}
		ahead := aheadTaken.Load()
		got := transcribeMany(t.Context(), m, jobs, ManyOptions{BatchSize: 4})
		observeBatch = nil
		if ahead = aheadTaken.Load() - ahead; ahead == 0 && mode == Sequential {
			t.Errorf("%s: no read taken from the batch's parallel reads (readAhead)", mode)
		}
		for i, in := range inputs {
			if got[i].Err != nil {
				t.Fatalf("%s: %s: %v", mode, in.name, got[i].Err)
			}
			sameResult(t, in.name, alone[i], got[i].Result)
			if in.name == "short" && (len(alone[i].Segments) == 0 || alone[i].Segments[0].Temperature == 0) {
				t.Errorf("%s: short: no fallback", mode)
			}
		}
		if mixed == 0 || most > 4+maxDetectWindows-1 {
			t.Errorf("%s: %d batches, %d with several inputs, at most %d windows", mode, batches, mixed, most)
		}
		t.Logf("%s windows: %d batches, %d of several inputs", mode, batches, mixed)
	}
}

// aloneAndJobs transcribes each input alone on m at batch 1 with mode's windows, and returns
// those results and a job for each input (the same options, its audio in other chunks).
func aloneAndJobs(t *testing.T, m *Model, inputs []manyInput, mode WindowMode) (alone []*Result, jobs []Job) {
	t.Helper()
	for i, in := range inputs {
		o := in.opts
		o.Windows = mode
		res, err := transcribe(t.Context(), m, in.source(uint64(i)), o, 1)
		if err != nil {
			t.Fatalf("%s alone: %v", in.name, err)
		}
		alone = append(alone, res)
		jobs = append(jobs, Job{Name: in.name, Options: o, Source: in.source(uint64(i + 100))})
	}
	return alone, jobs
}

// testInput is an input of m with options o (no audio), for tests of its tasks.
func testInput(t *testing.T, m *Model, o Options) *input {
	t.Helper()
	in, err := newInput(m, SampleSource(nil), 0, &o)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// TestDecodeTasksMatchAlone: tasks of different languages, tasks and strategies (greedy, beam
// search, sampling with best-of), on different windows, decoded as one batch, give each task's
// tokens decoded alone; tasks with prompts of different lengths cannot share a batch.
func TestDecodeTasksMatchAlone(t *testing.T) {
	m, speech := loadMicroForTranscribe(t)
	cases := []struct {
		lang, task  string
		beam, best  int
		temperature float64
	}{
		{"en", "transcribe", 1, 1, 0}, {"de", "transcribe", 3, 1, 0}, {"fr", "translate", 1, 1, 0},
		{"en", "translate", 1, 2, 0.8}, {"en", "transcribe", 2, 1, 0},
	}
	audio := synthAudio(120, []Span{{0, 11}, {30, 40}, {60, 90}, {95, 96}}, speech)
	var ws []*window
	for _, a := range []float64{0, 30, 60, 95, 30} {
		s := audio[int(a*mel.SampleRate):int((a+min(30, 120-a))*mel.SampleRate)]
		ws = append(ws, &window{v0: int(a * mel.SampleRate), samples: s})
	}
	var tasks []*decodeTask
	var ins []*input
	for i, c := range cases {
		o := DefaultOptions()
		o.Language, o.Task = c.lang, c.task
		o.BeamSize, o.BestOf, o.Seed = c.beam, c.best, 9
		o.NoTimestamps = true // shorter outputs: the windows end at different steps
		in := testInput(t, m, o)
		task, err := in.task(ws[i], in.sot, nil, c.temperature, 0)
		if err != nil {
			t.Fatal(err)
		}
		tasks, ins = append(tasks, task), append(ins, in)
	}
	enc, err := m.Encode(ins[0].mels(ws), len(ws))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	// Each task's sequences read its own window (decodeBatch's layout).
	var windows []int
	for i, task := range tasks {
		for range task.nGroup {
			windows = append(windows, i)
		}
	}
	s, err := m.NewSession(enc, windows)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := decodeTasks(context.Background(), s, tasks)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		task, err := ins[i].task(ws[i], ins[i].sot, nil, c.temperature, 0) // a fresh generator
		if err != nil {
			t.Fatal(err)
		}
		own := make([]int, task.nGroup)
		for j := range own {
			own[j] = i
		}
		s, err := m.NewSession(enc, own)
		if err != nil {
			t.Fatal(err)
		}
		one, err := task.run(s)
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(one.tokens, batch[i].tokens); d != "" {
			t.Errorf("task %d (%+v): (-alone +batch)\n%s", i, c, d)
		}
		if math.Abs(one.avgLogProb-batch[i].avgLogProb) > 1e-4 || math.Abs(one.noSpeechProb-batch[i].noSpeechProb) > 1e-4 {
			t.Errorf("task %d: avg logprob %v / no-speech %v alone, %v / %v batched", i, one.avgLogProb, one.noSpeechProb, batch[i].avgLogProb, batch[i].noSpeechProb)
		}
	}
	short, err := ins[0].task(ws[0], ins[0].sot, []int{1, 2}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	s, err = m.NewSession(enc, []int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := decodeTasks(context.Background(), s, []*decodeTask{tasks[0], short}); err == nil {
		t.Error("tasks of different prompt lengths: no error")
	}
}

// cutSource reads n samples of s, then fails.
type cutSource struct {
	s []float32
	n int
}

func (c *cutSource) Read(p []float32) (int, error) {
	if c.n <= 0 {
		return 0, errors.New("disk on fire")
	}
	k := copy(p[:min(len(p), c.n)], c.s)
	c.s, c.n = c.s[k:], c.n-k
	return k, nil
}

// TestQueueIsolation: inputs that cannot be read (at the start or midway), cannot be
// opened, have no audio or bad options fail alone, each with its own error naming it; the
// others get their results as alone.
func TestQueueIsolation(t *testing.T) {
	m, speech := loadMicroForTranscribe(t)
	o := quickOptions()
	o.MaxWindowTokens = quickTokens
	long := synthAudio(70, []Span{{0, 70}}, speech)
	good := func(i int) Job {
		return Job{Name: "good" + string(rune('0'+i)), Options: o, Source: &chunkSource{s: speech[i*8000:], rng: rand.New(rand.NewPCG(1, uint64(i)))}}
	}
	bad := o
	bad.Task = "summarize"
	// A job cancelled on its own context after its first window: it ends, the others go on.
	jctx, jcancel := context.WithCancel(t.Context())
	defer jcancel()
	cancelled := o
	cancelled.Checkpoint = func(*Checkpoint) { jcancel() }
	var done []string
	var mu sync.Mutex
	jobs := []Job{
		good(0),
		{Name: "cut midway", Options: o, Source: &cutSource{s: long, n: 40 * mel.SampleRate}},
		good(1),
		{Name: "unreadable", Options: o, Source: failingSource{}},
		{Name: "cannot open", Options: o, Open: func(context.Context, *Options) (AudioSource, error) {
			return nil, errors.New("no such file")
		}},
		{Name: "no audio", Options: o},
		{Name: "bad options", Options: bad, Source: SampleSource(speech)},
		{Name: "cancelled", Options: cancelled, Source: SampleSource(long), Ctx: jctx},
		good(2),
	}
	for i := range jobs {
		name := jobs[i].Name
		jobs[i].Done = func(*Result, error) {
			mu.Lock()
			defer mu.Unlock()
			done = append(done, name)
		}
	}
	got := transcribeMany(t.Context(), m, jobs, ManyOptions{BatchSize: 3})
	wantErr := map[string]string{
		"cut midway":  "disk on fire",
		"unreadable":  "disk on fire",
		"cannot open": "no such file",
		"no audio":    "without audio",
		"bad options": "unknown task",
		"cancelled":   "context canceled",
	}
	for i, j := range jobs {
		want, isBad := wantErr[j.Name]
		switch {
		case isBad && (got[i].Err == nil || !strings.HasPrefix(got[i].Err.Error(), j.Name+": ") || !strings.Contains(got[i].Err.Error(), want)):
			t.Errorf("%s: err %v, want one naming it and saying %q", j.Name, got[i].Err, want)
		case isBad && got[i].Result != nil:
			t.Errorf("%s: a result with the error", j.Name)
		case !isBad && got[i].Err != nil:
			t.Errorf("%s: %v", j.Name, got[i].Err)
		case !isBad:
			k := int(j.Name[4] - '0')
			alone, err := transcribe(t.Context(), m, SampleSource(speech[k*8000:]), o)
			if err != nil {
				t.Fatal(err)
			}
			sameResult(t, j.Name, alone, got[i].Result)
		}
	}
	if len(done) != len(jobs) {
		t.Errorf("Done called for %v, want every job once", done)
	}
}

// TestQueueCancel: cancelling the context when the first input is done leaves its
// result intact; the inputs in progress and those not started fail with the context's error.
func TestQueueCancel(t *testing.T) {
	m, speech := loadMicroForTranscribe(t)
	o := quickOptions()
	o.MaxWindowTokens = quickTokens
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var jobs []Job
	for i := range 6 {
		jobs = append(jobs, Job{Options: o, Source: SampleSource(speech[:(2+i)*mel.SampleRate])})
	}
	jobs[0].Done = func(res *Result, err error) { cancel() }
	got := transcribeMany(ctx, m, jobs, ManyOptions{BatchSize: 2})
	if got[0].Err != nil || got[0].Result == nil || len(got[0].Result.Segments) == 0 {
		t.Fatalf("first input: %+v", got[0])
	}
	alone, err := transcribe(t.Context(), m, SampleSource(speech[:2*mel.SampleRate]), o)
	if err != nil {
		t.Fatal(err)
	}
	sameResult(t, "first", alone, got[0].Result)
	for i, r := range got[1:] {
		if !errors.Is(r.Err, context.Canceled) || r.Result != nil {
			t.Errorf("input %d: %+v, want context.Canceled", i+1, r)
		}
	}
}

// countingSource counts the sources open at once (from Open to Done).
type countingSource struct {
	AudioSource
}

// TestQueueOpensLazily: 12 inputs opened by Open (one in three with speech) are open at
// most a batch's worth at a time, each opened once and in order, and closed (Done) once.
func TestQueueOpensLazily(t *testing.T) {
	m, speech := loadMicroForTranscribe(t)
	jobs, oc := countedJobs(12, quickOptions(), func(i int, opts *Options) AudioSource {
		opts.SpeechRegions = []Span{}
		if i%3 == 0 {
			opts.SpeechRegions = []Span{{0.2, 1.5}}
		}
		return countingSource{&chunkSource{s: speech[i*1000 : i*1000+2*mel.SampleRate], rng: rand.New(rand.NewPCG(2, uint64(i)))}}
	})
	got := transcribeMany(t.Context(), m, jobs, ManyOptions{BatchSize: 4})
	for i, r := range got {
		if r.Err != nil {
			t.Fatalf("input %d: %v", i, r.Err)
		}
		if r.Result.Duration != 2 {
			t.Errorf("input %d: duration %v", i, r.Result.Duration)
		}
	}
	if oc.most > 4 || oc.open != 0 || len(oc.order) != 12 {
		t.Errorf("%d sources open at most, %d left open, %d opened", oc.most, oc.open, len(oc.order))
	}
	for i, k := range oc.order {
		if i != k {
			t.Fatalf("opened in order %v", oc.order)
		}
	}
}

// openCount is what countedJobs' jobs did: sources open now, the most open at once, and the
// jobs in the order they were opened.
type openCount struct {
	open, most int
	order      []int
}

// countedJobs are n jobs with options o whose Open gives source(i, opts) for job i, counted in
// the openCount (closed by Done).
func countedJobs(n int, o Options, source func(i int, opts *Options) AudioSource) ([]Job, *openCount) {
	oc := &openCount{}
	var jobs []Job
	for i := range n {
		jobs = append(jobs, Job{
			Options: o,
			Open: func(_ context.Context, opts *Options) (AudioSource, error) {
				oc.open++
				oc.most = max(oc.most, oc.open)
				oc.order = append(oc.order, i)
				return source(i, opts), nil
			},
			Done: func(*Result, error) { oc.open-- },
		})
	}
	return jobs, oc
}

// TestQueueDetectionWaits: inputs of three detection windows (61 s, language detected) in
// batches of 4 windows (a step of the first window, then one of the other two where it leaves
// detection unsure): an input whose detection does not fit a batch waits for the next one,
// where detection goes first, and no further input starts meanwhile (they used to start all at
// once, each waiting for room), so at most a batch's worth are open; every input is
// transcribed, in its detected language, and opened in order.
func TestQueueDetectionWaits(t *testing.T) {
	m, speech := loadMicroForTranscribe(t)
	o := quickOptions()
	o.Language = ""
	o.MaxWindowTokens = quickTokens
	jobs, oc := countedJobs(5, o, func(i int, _ *Options) AudioSource {
		return &chunkSource{s: synthAudio(61, []Span{{0, 61}}, speech), rng: rand.New(rand.NewPCG(3, uint64(i)))}
	})
	var batches [][2]int // detection windows, decoding windows
	var parts []int      // each detection step's windows
	observeBatch = func(_ int, steps []*step) func() {
		var b [2]int
		for _, st := range steps {
			if st.detect {
				b[0] += len(st.ws)
				parts = append(parts, len(st.ws))
			} else {
				b[1] += len(st.ws)
			}
		}
		batches = append(batches, b)
		return nil
	}
	defer func() { observeBatch = nil }()
	got := transcribeMany(t.Context(), m, jobs, ManyOptions{BatchSize: 4})
	for i, r := range got {
		if r.Err != nil {
			t.Fatalf("input %d: %v", i, r.Err)
		}
		if r.Result.Language == "" || len(r.Result.LanguageProbs) == 0 {
			t.Errorf("input %d: no language detected", i)
		}
	}
	if oc.most > 4 || oc.open != 0 || !slices.Equal(oc.order, []int{0, 1, 2, 3, 4}) {
		t.Errorf("%d sources open at most, %d left open, opened in order %v", oc.most, oc.open, oc.order)
	}
	for i, b := range batches {
		if b[0]+b[1] > 4 {
			t.Errorf("batch %d: %d detection windows and %d decoding windows", i, b[0], b[1])
		}
	}
	for _, n := range parts { // the first window alone, then (unsure) the other two together
		if n != 1 && n != 2 {
			t.Errorf("detection steps of %v windows; want 1 or 2 each", parts)
			break
		}
	}
	t.Logf("batches (detection, decoding windows): %v", batches)
}

// TestDetectionWindowsDecoded: an input whose language is detected decodes its first window
// (Sequential) or its detection windows (Independent) from detection's encoder output, in the
// batch of the detection, instead of encoding them again; the result is the same as with that
// language given.
func TestDetectionWindowsDecoded(t *testing.T) {
	m, speech := loadMicroForTranscribe(t)
	audio := synthAudio(61, []Span{{0, 61}}, speech)
	for _, mode := range []WindowMode{Sequential, Independent} {
		t.Run(windowNames[mode], func(t *testing.T) {
			run := func(lang string) (*Result, int) {
				encoded := 0
				observeBatch = func(_ int, steps []*step) func() {
					return func() { // after the batch: detection reads its windows after the first as it needs them
						for _, st := range steps {
							encoded += len(st.ws)
						}
					}
				}
				defer func() { observeBatch = nil }()
				o := quickOptions()
				o.Language, o.Windows = lang, mode
				o.MaxWindowTokens = quickTokens
				r := transcribeMany(t.Context(), m, []Job{{Source: &sliceSource{s: audio}, Options: o}}, ManyOptions{BatchSize: 4})[0]
				if r.Err != nil {
					t.Fatal(r.Err)
				}
				return r.Result, encoded
			}
			auto, encAuto := run("")
			given, encGiven := run(auto.Language)
			reused := 1
			if mode == Independent {
				reused = maxDetectWindows
			}
			if encAuto != maxDetectWindows+encGiven-reused {
				t.Errorf("%d windows encoded with detection, %d with the language given: want %d more", encAuto, encGiven, maxDetectWindows-reused)
			}
			if d := cmp.Diff(given.Segments, auto.Segments); d != "" || len(auto.Segments) == 0 {
				t.Errorf("detected %q: %d segments; against the language given (-given +detected):\n%s", auto.Language, len(auto.Segments), d)
			}
		})
	}
}

// encShapes is the CPU backend, recording the shape of every encoder output it allocates (the
// cross-attention K/V: [windows, NAudioCtx, NTextState]).
type encShapes struct {
	*cpu.Backend
	ctx, state int
	windows    []int
}

func (b *encShapes) note(shape []int) {
	if len(shape) == 3 && shape[1] == b.ctx && shape[2] == b.state {
		b.windows = append(b.windows, shape[0])
	}
}

func (b *encShapes) Alloc(dt tensor.DType, shape ...int) *tensor.Tensor {
	b.note(shape)
	return b.Backend.Alloc(dt, shape...)
}

func (b *encShapes) AllocExplicit(dt tensor.DType, shape ...int) *tensor.Tensor {
	b.note(shape)
	return b.Backend.AllocExplicit(dt, shape...)
}

// TestDetectionWindowsAlone: on the CPU a sequential input's detection windows are encoded one
// at a time (no encoder output of several windows is allocated, as it was with all three and
// then a copy of the first at the peak of mini's memory), the language probabilities are those
// of the windows encoded and detected together (a model on an asynchronous backend still does
// that), and when the model closes no memory is left outside the Go heap.
func TestDetectionWindowsAlone(t *testing.T) {
	_, speech := loadMicroForTranscribe(t)
	audio := synthAudio(61, []Span{{0, 61}}, speech)
	run := func(b tensor.Backend) *Result {
		m, err := Load(filepath.Join(fixturesDir, "oracle-micro"), b)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if sb, ok := b.(*encShapes); ok {
			sb.ctx, sb.state = m.Config.NAudioCtx, m.Config.NTextState
		}
		o := quickOptions()
		o.Language, o.Windows = "", Sequential
		o.MaxWindowTokens = quickTokens
		r := transcribeMany(t.Context(), m, []Job{{Source: &sliceSource{s: audio}, Options: o}}, ManyOptions{BatchSize: 4})[0]
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		return r.Result
	}
	be, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	alone := &encShapes{Backend: be}
	got := run(alone)
	if n := be.MappedBytes(); n != 0 {
		t.Errorf("%d bytes left outside the Go heap after the model closed", n)
	}
	if len(alone.windows) == 0 || slices.Max(alone.windows) != 1 {
		t.Errorf("encoder outputs allocated of %v windows, want 1 each", alone.windows)
	}
	together := run(asyncBackend{be})
	if got.Language != together.Language || len(got.LanguageProbs) != len(together.LanguageProbs) || len(got.LanguageProbs) == 0 {
		t.Fatalf("detected %q (%d probabilities), together %q (%d)", got.Language, len(got.LanguageProbs), together.Language, len(together.LanguageProbs))
	}
	for lang, p := range together.LanguageProbs {
		if d := math.Abs(got.LanguageProbs[lang] - p); d > 1e-5 {
			t.Errorf("%s: probability %g, together %g", lang, got.LanguageProbs[lang], p)
		}
	}
}

// memBackend is a backend that reports a fixed amount of free device memory.
type memBackend struct {
	tensor.Backend
	free int64
}

func (b memBackend) DeviceMemory() (free, total int64, err error) { return b.free, 2 * b.free, nil }

// TestQueueFitsMemory: on a backend that reports its free memory, a batch larger than it holds
// (two windows of beam search 5 in 80% of it) is reduced, the caller is told, and every batch and
// decoder batch stays within the reduced size; the inputs are transcribed as at batch 1.
func TestQueueFitsMemory(t *testing.T) {
	m, speech := loadMicroForTranscribe(t)
	per, enc := m.windowBytes(batchRows), m.encoderBytes(encodeChunk)
	mm, err := Load(filepath.Join(fixturesDir, "oracle-micro"), memBackend{Backend: m.Backend(), free: (per*25/10 + enc) * 10 / 8})
	if err != nil {
		t.Fatal(err)
	}
	defer mm.Close()
	if fit, _ := mm.fitBatch(8, batchRows, encodeChunk); fit != 2 {
		t.Fatalf("fitBatch(8): %d windows, want 2", fit)
	}
	o := quickOptions()
	o.MaxWindowTokens = quickTokens
	inputs := []manyInput{
		{"a", synthAudio(40, []Span{{0, 40}}, speech), o},
		{"b", speech, o},
		{"c", synthAudio(35, []Span{{0, 35}}, speech), o},
	}
	var notices []string
	var sizes []int
	observeBatch = func(_ int, steps []*step) func() {
		n := 0
		for _, st := range steps {
			n += len(st.ws)
		}
		sizes = append(sizes, n)
		return nil
	}
	defer func() { observeBatch = nil }()
	jobs := func(m *Model) []Job {
		var js []Job
		for i, in := range inputs {
			js = append(js, Job{Name: in.name, Options: in.opts, Source: in.source(uint64(i))})
		}
		return js
	}
	got := transcribeMany(t.Context(), mm, jobs(mm), ManyOptions{BatchSize: 8, Notice: func(s string) { notices = append(notices, s) }})
	observeBatch = nil
	want := transcribeMany(t.Context(), m, jobs(m), ManyOptions{BatchSize: 1})
	if len(notices) != 1 || !strings.Contains(notices[0], "batch of 8 windows reduced to 2") {
		t.Errorf("notices %q", notices)
	}
	for i, n := range sizes {
		if n > 2 {
			t.Errorf("batch %d: %d windows", i, n)
		}
	}
	for i := range inputs {
		if got[i].Err != nil || want[i].Err != nil {
			t.Fatalf("%s: %v / %v", inputs[i].name, got[i].Err, want[i].Err)
		}
		sameResult(t, inputs[i].name, want[i].Result, got[i].Result)
	}
}

// detectedJobs returns n jobs of 61 s of speech each, their language detected, quickly decoded.
func detectedJobs(speech []float32) func(n int) []Job {
	audio := synthAudio(61, []Span{{0, 61}}, speech)
	o := quickOptions()
	o.Language = "" // detected
	o.MaxWindowTokens = quickTokens
	return func(n int) []Job {
		var out []Job
		for range n {
			out = append(out, Job{Source: &sliceSource{s: audio}, Options: o})
		}
		return out
	}
}

// TestDetectionOnlyWhileWaiting: inputs started together whose detections do not all fit one
// batch (the micro model leaves each first window unsure, so three windows each, seven a batch)
// are detected first, in batches that decode nothing (no decoder session of two first windows),
// and each input's segments are those it gets alone. The first batch is the four inputs' first
// windows: the other two are read and encoded only after it (detectPart).
func TestDetectionOnlyWhileWaiting(t *testing.T) {
	m, speech := loadMicroForTranscribe(t)
	jobs := detectedJobs(speech)
	type seen struct{ detect, decode, sessions int }
	var batches []seen
	clock := &phaseClock{}
	m.clock = clock
	observeBatch = func(_ int, steps []*step) func() {
		var s seen
		for _, st := range steps {
			if st.detect {
				s.detect += len(st.ws)
			} else {
				s.decode += len(st.ws)
			}
		}
		s.sessions = clock.sessions // before this batch
		batches = append(batches, s)
		return nil
	}
	defer func() { observeBatch, m.clock = nil, nil }()
	rs := transcribeMany(t.Context(), m, jobs(4), ManyOptions{BatchSize: 7})
	observeBatch, m.clock = nil, nil
	last := -1 // the last batch with detection windows
	for i, s := range batches {
		if s.detect > 0 {
			last = i
		}
	}
	bad := len(batches) < 3 || batches[0] != (seen{detect: 4}) || last < 1 || batches[last].sessions != 0
	for _, s := range batches[:max(last, 0)] {
		bad = bad || s.decode != 0
	}
	if bad {
		t.Fatalf("batches (detection windows, decoding windows, sessions before): %+v; want the four first windows alone, then detection only until the last detection windows, no session before them", batches)
	}
	alone := transcribeMany(t.Context(), m, jobs(1), ManyOptions{BatchSize: 1})[0]
	if alone.Err != nil {
		t.Fatal(alone.Err)
	}
	for i, r := range rs {
		if r.Err != nil {
			t.Fatalf("input %d: %v", i, r.Err)
		}
		if len(r.Result.Segments) == 0 {
			t.Errorf("input %d: no segments", i)
		}
		sameResult(t, fmt.Sprintf("input %d", i), alone.Result, r.Result)
	}
	t.Logf("batches (detection windows, decoding windows, sessions before): %+v", batches)
}

// convCount is an asyncBackend that counts the windows its Conv1D calls take with stride 1 (the
// encoder's first convolution, once a window encoded).
type convCount struct {
	asyncBackend
	windows *int
}

func (b convCount) Conv1D(dst, x, w, bias *tensor.Tensor, stride, pad int) {
	if stride == 1 {
		*b.windows += x.Shape[0]
	}
	b.asyncBackend.Conv1D(dst, x, w, bias, stride, pad)
}

// TestDetectionStash: inputs detected in a batch of detection only, or whose first detection
// window left them unsure (detectSure), keep that window's encoder output, and the batch that
// decodes the window copies it instead of encoding it again: four inputs at batch 7 and one
// alone, each input's result the same, with detection's three windows together (detectSure over
// 1, as before it), with the micro model's first window unsure at the default 0.9 (the rest of
// detection a batch later, the language probabilities those of the three together), and with
// every first window sure (0: the other two never encoded).
func TestDetectionStash(t *testing.T) {
	be, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	encoded := 0
	m, err := Load(filepath.Join(fixturesDir, "oracle-micro"), convCount{asyncBackend{be}, &encoded})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_, speech := loadMicroForTranscribe(t)
	jobs := detectedJobs(speech)
	defer func(v float64) { detectSure = v }(detectSure)
	var together *Result
	for _, c := range []struct {
		name        string
		sure        float64
		detectSteps int // detection steps an input
		windows     int // windows encoded for detection an input
	}{{"together", 2, 1, 3}, {"unsure", detectSure, 2, 3}, {"sure", 0, 1, 1}} {
		t.Run(c.name, func(t *testing.T) {
			detectSure = c.sure
			encoded = 0
			detectOnly, steps := 0, 0
			observeBatch = func(_ int, sts []*step) func() {
				if !slices.ContainsFunc(sts, func(st *step) bool { return !st.detect }) {
					detectOnly++
				}
				for _, st := range sts {
					if st.detect {
						steps++
					}
				}
				return nil
			}
			rs := transcribeMany(t.Context(), m, jobs(4), ManyOptions{BatchSize: 7})
			observeBatch = nil
			many := encoded
			encoded = 0
			alone := transcribeMany(t.Context(), m, jobs(1), ManyOptions{BatchSize: 1})[0]
			if alone.Err != nil {
				t.Fatal(alone.Err)
			}
			decoded := 0
			for i, r := range rs {
				if r.Err != nil {
					t.Fatalf("input %d: %v", i, r.Err)
				}
				decoded += r.Result.Windows
				sameResult(t, fmt.Sprintf("input %d", i), alone.Result, r.Result)
			}
			// Each input: its detection windows and its decoded windows, the first of them not
			// encoded again (decoded in detection's batch, or from the stash).
			if steps != 4*c.detectSteps || many != 4*c.windows+decoded-4 {
				t.Errorf("%d detection steps, %d windows encoded for %d decoded; want %d, and %d", steps, many, decoded, 4*c.detectSteps, 4*c.windows+decoded-4)
			}
			if c.name == "together" && detectOnly != 1 {
				t.Errorf("%d batches of detection only, want 1 (the first two inputs')", detectOnly)
			}
			if encoded != c.windows+alone.Result.Windows-1 {
				t.Errorf("alone: %d windows encoded for %d decoded, want %d", encoded, alone.Result.Windows, c.windows+alone.Result.Windows-1)
			}
			switch c.name {
			case "together":
				together = alone.Result
			case "unsure":
				if together == nil || alone.Result.Language != together.Language || len(alone.Result.LanguageProbs) != len(together.LanguageProbs) {
					t.Fatalf("unsure: language %q, together %v", alone.Result.Language, together)
				}
				for lang, p := range together.LanguageProbs {
					if d := math.Abs(alone.Result.LanguageProbs[lang] - p); d > 1e-5 {
						t.Errorf("%s: probability %g, together %g", lang, alone.Result.LanguageProbs[lang], p)
					}
				}
			}
		})
	}
}

// syncConvCount is the CPU backend (synchronous: a model on it has an arena) counting the windows
// through the encoder's first convolution.
type syncConvCount struct {
	tensor.Backend
	windows *int
}

func (b syncConvCount) Conv1D(dst, x, w, bias *tensor.Tensor, stride, pad int) {
	if stride == 1 {
		*b.windows += x.Shape[0]
	}
	b.Backend.Conv1D(dst, x, w, bias, stride, pad)
}

// TestDetectionSureAlone: with an arena (the CPU) a sequential input's detection windows go
// through detectAlone one at a time, which stops after the first when that one is sure
// (detectSure): one window encoded for detection instead of three, the language and
// probabilities that window's, as on a model without an arena (which takes the first window in
// a step of its own).
func TestDetectionSureAlone(t *testing.T) {
	defer func(v float64) { detectSure = v }(detectSure)
	be, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	_, speech := loadMicroForTranscribe(t)
	jobs := detectedJobs(speech)
	encoded := 0
	run := func(b tensor.Backend, sure float64) (*Model, *Result, int) {
		m, err := Load(filepath.Join(fixturesDir, "oracle-micro"), b)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		detectSure, encoded = sure, 0
		r := transcribeMany(t.Context(), m, jobs(1), ManyOptions{BatchSize: 1})[0]
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		return m, r.Result, encoded
	}
	m, all, nAll := run(syncConvCount{be, &encoded}, 2)
	if m.ar == nil {
		t.Fatal("no arena on the CPU")
	}
	_, one, nOne := run(syncConvCount{be, &encoded}, 0)
	if nAll != 3+all.Windows-1 || nOne != 1+one.Windows-1 {
		t.Errorf("windows encoded: %d for %d decoded with three detection windows, %d for %d with one; want %d and %d",
			nAll, all.Windows, nOne, one.Windows, 3+all.Windows-1, 1+one.Windows-1)
	}
	_, async, _ := run(asyncBackend{be}, 0)
	if one.Language != async.Language || len(one.LanguageProbs) != len(async.LanguageProbs) {
		t.Fatalf("detected %q, without an arena %q", one.Language, async.Language)
	}
	for lang, p := range async.LanguageProbs {
		if d := math.Abs(one.LanguageProbs[lang] - p); d > 1e-5 {
			t.Errorf("%s: probability %g, without an arena %g", lang, one.LanguageProbs[lang], p)
		}
	}
}
