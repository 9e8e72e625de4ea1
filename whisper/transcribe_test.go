package whisper

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/verbatimhq/verbatim/audio"
	"github.com/verbatimhq/verbatim/cpu"
	"github.com/verbatimhq/verbatim/whisper/tokenizer"
)

const fixturesDir = "testdata"

// testTexts is texts with the test vocabulary, for segmenting tests.
func testTexts() *texts {
	return &texts{ids: testIDs(), tokenText: func(id int) string { return textOfIDs([]int{id}) }, textOf: textOfIDs}
}

type wantSeg struct {
	start, end float64
	text       string
}

func segsOf(p []pending) []wantSeg {
	var out []wantSeg
	for _, s := range p {
		out = append(out, wantSeg{s.seg.Start, s.seg.End, s.seg.Text})
	}
	return out
}

func TestSplitOpenAI(t *testing.T) {
	ts := func(k int) int { return tTS + k }
	cases := []struct {
		name        string
		toks        []int
		seek, size  int
		want        []wantSeg
		wantAdvance int
	}{
		{"pairs, ends on a pair", []int{ts(0), 7, ts(2), ts(2), 8, ts(3), ts(3)}, 0, 3000,
			[]wantSeg{{0, 0.04, "h"}, {0.04, 0.06, "i"}}, 6},
		{"single timestamp ending", []int{ts(0), 7, ts(2), ts(2), 8, ts(5)}, 0, 3000,
			[]wantSeg{{0, 0.04, "h"}, {0.04, 0.10, "i"}}, 3000},
		{"trailing text after the last pair is dropped", []int{ts(1), 7, ts(2), ts(2), 8}, 3000, 3000,
			[]wantSeg{{30.02, 30.04, "h"}}, 4},
		{"no pair: one segment to the last timestamp", []int{ts(1), 7, 8}, 3000, 1200,
			[]wantSeg{{30, 30.02, "hi"}}, 1200},
		{"text only: the whole window", []int{7, 8}, 0, 1100, []wantSeg{{0, 11, "hi"}}, 1100},
		{"empty segment cleared", []int{ts(1), ts(1), 7, ts(4), ts(4)}, 0, 3000,
			[]wantSeg{{0.02, 0.08, "h"}}, 8},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dr := &decodeResult{tokens: c.toks, logprobs: make([]float64, len(c.toks)), tids: make([]int, len(c.toks))}
			segs, adv := testTexts().splitOpenAI(dr, c.seek, c.size)
			got := segsOf(segs)
			if !slices.EqualFunc(got, c.want, func(a, b wantSeg) bool {
				return math.Abs(a.start-b.start) < 1e-9 && math.Abs(a.end-b.end) < 1e-9 && a.text == b.text
			}) || adv != c.wantAdvance {
				t.Errorf("segments %v advance %d\nwant     %v advance %d", got, adv, c.want, c.wantAdvance)
			}
		})
	}
}

func TestSplitCpp(t *testing.T) {
	ts := func(k int) int { return tTS + k }
	cases := []struct {
		name      string
		toks      []int
		tids      []int
		seekDelta int
		seek      int
		want      []wantSeg
	}{
		{"segments close at timestamps", []int{ts(1), 7, ts(3), ts(3), 8, ts(6)}, []int{ts(1), ts(2), ts(3), ts(3), ts(5), ts(6)}, 12, 0,
			[]wantSeg{{0.02, 0.06, "h"}, {0.06, 0.12, "i"}}},
		{"first text token carries the start", []int{7, 8, ts(4)}, []int{ts(5), ts(2), ts(4)}, 8, 100,
			[]wantSeg{{1.10, 1.08, "hi"}}},
		{"trailing text ends at the seek advance", []int{7, 8}, []int{ts(5), ts(1)}, 3000, 0,
			[]wantSeg{{0.10, 30, "hi"}}},
		{"no timestamps anywhere: window start", []int{7, 8}, []int{-1, -1}, 3000, 500,
			[]wantSeg{{5, 35, "hi"}}},
		{"<|0.00|> does not close a segment", []int{ts(0), 7, ts(0), 8, ts(2)}, []int{ts(0), ts(1), ts(0), ts(1), ts(2)}, 4, 0,
			[]wantSeg{{0, 0.04, "hi"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dr := &decodeResult{tokens: c.toks, logprobs: make([]float64, len(c.toks)), tids: c.tids, seekDelta: c.seekDelta}
			got := segsOf(testTexts().splitCpp(dr, c.seek))
			if !slices.EqualFunc(got, c.want, func(a, b wantSeg) bool {
				return math.Abs(a.start-b.start) < 1e-9 && math.Abs(a.end-b.end) < 1e-9 && a.text == b.text
			}) {
				t.Errorf("segments %v\nwant     %v", got, c.want)
			}
		})
	}
}

func TestDetectLanguageFake(t *testing.T) {
	f := &fakeStepper{logits: func(seq []int) []float32 {
		l := make([]float32, tVocab)
		l[tEN], l[tDE] = 1, 2
		l[5] = 50 // not a language: ignored
		return l
	}}
	langs := []langToken{{"en", tEN}, {"de", tDE}}
	per, err := detectLanguages(f, tSOT, tVocab, langs)
	if err != nil {
		t.Fatal(err)
	}
	probs := per[0]
	lang := bestLanguage(probs, langs)
	wantDE := math.Exp(2) / (math.Exp(1) + math.Exp(2))
	if lang != "de" || math.Abs(probs["de"]-wantDE) > 1e-12 || math.Abs(probs["en"]+probs["de"]-1) > 1e-12 {
		t.Errorf("lang %q probs %v", lang, probs)
	}
	if !slices.Equal(f.steps[0][0], []int32{tSOT}) {
		t.Errorf("fed %v, want <|startoftranscript|> alone", f.steps[0])
	}
	if _, err := detectLanguages(f, tSOT, tVocab, nil); err == nil {
		t.Error("no error without language tokens")
	}
}

func loadMicroForTranscribe(t testing.TB) (*Model, []float32) {
	t.Helper()
	dir := filepath.Join(fixturesDir, "oracle-micro")
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err != nil {
		t.Fatalf("oracle-micro fixture missing: %v", err)
	}
	be, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Load(dir, be)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	pcm, err := audio.LoadWAV("../testdata/jfk.wav")
	if err != nil {
		t.Fatal(err)
	}
	if pcm.Rate != 16000 {
		t.Fatalf("jfk.wav at %d Hz", pcm.Rate)
	}
	return m, pcm.Samples
}

// TestTranscribeMicro runs the reference (openai) path end to end on the random-weight model:
// language detection, beam search at T=0, the compression-ratio fallback to seeded sampling
// (random weights loop, so T=0 always fails the threshold), segments and progress.
func TestTranscribeMicro(t *testing.T) {
	m, samples := loadMicroForTranscribe(t)
	o := DefaultOptions()
	o.BeamSize, o.BestOf = 2, 2
	o.Temperatures = []float64{0, 1.0}
	o.Seed = 3
	// Enough tokens for the random weights' T=0 output to fail the compression ratio (checked
	// below: every segment at T=1), a third of the model's limit of 224 (the decoding is most of
	// the test's time under the race detector).
	o.MaxWindowTokens = fallbackTokens
	var last, total time.Duration
	o.Progress = func(done, all time.Duration) { last, total = done, all }
	res, err := transcribe(t.Context(), m, SampleSource(samples), o)
	if err != nil {
		t.Fatal(err)
	}
	if total != 11*time.Second || last != total {
		t.Errorf("progress ended at %v of %v, want 11s of 11s", last, total)
	}
	if res.Duration != 11 {
		t.Errorf("duration %v, want 11", res.Duration)
	}
	var sum, best float64
	for code, p := range res.LanguageProbs {
		sum += p
		if p > best {
			best = p
			if code != res.Language && p > res.LanguageProbs[res.Language] {
				t.Errorf("language %q but %q is more probable", res.Language, code)
			}
		}
	}
	if len(res.LanguageProbs) != 100 || math.Abs(sum-1) > 1e-9 {
		t.Errorf("%d language probabilities summing to %v", len(res.LanguageProbs), sum)
	}
	if len(res.Segments) == 0 {
		t.Fatal("no segments")
	}
	tok, err := tokenizer.New(m.Config.NVocab)
	if err != nil {
		t.Fatal(err)
	}
	eot := tok.EOT
	prevEnd := 0.0
	for i, s := range res.Segments {
		if s.ID != i || s.Start < prevEnd-1e-9 || s.End < s.Start || s.End > 30+res.Duration {
			t.Errorf("segment %d: id %d %v..%v after %v", i, s.ID, s.Start, s.End, prevEnd)
		}
		prevEnd = s.End
		// Random weights loop at T=0: the window falls back to the last temperature.
		if s.Temperature != 1.0 {
			t.Errorf("segment %d decoded at T=%v, want the fallback to 1.0", i, s.Temperature)
		}
		if len(s.Tokens) == 0 || s.Text == "" {
			t.Errorf("segment %d has no text", i)
		}
		for _, tk := range s.Tokens {
			if tk.ID >= eot || !(tk.P > 0 && tk.P <= 1) {
				t.Errorf("segment %d: token %+v", i, tk)
				break
			}
		}
	}
	if testing.Short() {
		return
	}
	// The same seed gives the same transcript on the real path.
	o.Progress = nil
	again, err := transcribe(t.Context(), m, SampleSource(samples), o)
	if err != nil {
		t.Fatal(err)
	}
	if again.Text() != res.Text() || len(again.Segments) != len(res.Segments) {
		t.Errorf("same seed, different transcript:\n%.100q\n%.100q", res.Text(), again.Text())
	}
}

func TestTranscribeErrors(t *testing.T) {
	m, samples := loadMicroForTranscribe(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	o := DefaultOptions()
	o.Language = "en"
	if _, err := transcribe(ctx, m, SampleSource(samples), o); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: err = %v", err)
	}
	bad := []struct {
		name string
		edit func(*Options)
	}{
		{"task", func(o *Options) { o.Task = "summarize" }},
		{"language", func(o *Options) { o.Language = "xx" }},
		{"suppress tokens", func(o *Options) { o.SuppressTokens = "a,b" }},
		{"compat", func(o *Options) { o.Compat = 7 }},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			o := DefaultOptions()
			o.Language = "en"
			c.edit(&o)
			if _, err := transcribe(t.Context(), m, SampleSource(samples[:16000]), o); err == nil {
				t.Error("no error")
			}
		})
	}
	if err := TranscribeQueue(t.Context(), nil, func() (Job, bool) { return Job{}, false }, ManyOptions{}); err == nil {
		t.Error("nil model: no error")
	}
}
