package whisper

import (
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper/mel"
)

// synthAudio returns seconds of near-silence (noise at 1e-4) with speech-like audio in regions:
// jfk.wav looped, a tone, or noise, by region index.
func synthAudio(seconds float64, regions []Span, speech []float32) []float32 {
	S := float64(mel.SampleRate)
	out := make([]float32, int(seconds*S))
	rng := rand.New(rand.NewPCG(11, 12))
	for i := range out {
		out[i] = float32(rng.NormFloat64() * 1e-4)
	}
	for k, r := range regions {
		for i := int(r.Start * S); i < min(len(out), int(r.End*S)); i++ {
			switch k % 3 {
			case 0:
				out[i] = speech[i%len(speech)]
			case 1:
				out[i] = float32(0.3 * math.Sin(2*math.Pi*440*float64(i)/S))
			default:
				out[i] = float32(rng.NormFloat64() * 0.1)
			}
		}
	}
	return out
}

// checkInRegions fails if a segment leaves the padded regions or the segments are out of order.
func checkInRegions(t *testing.T, res *Result, regions []Span) {
	t.Helper()
	pad := float64(regionPad) / mel.SampleRate
	prev := 0.0
	for i, s := range res.Segments {
		in := false
		for _, r := range regions {
			if s.Start >= r.Start-pad-1e-9 && s.End <= r.End+pad+1e-9 {
				in = true
			}
		}
		if !in || s.End < s.Start || s.Start < prev-1e-9 || s.ID != i {
			t.Errorf("segment %d [%.3f, %.3f] (after %.3f): outside the speech regions or out of order", i, s.Start, s.End, prev)
		}
		prev = s.Start
	}
}

var microRegions = []Span{{5, 9}, {9.35, 12}, {40, 47}, {60, 61.5}, {70, 103}}

// TestLongformMicro transcribes a 110 s input with five speech regions (one longer than a
// window, two 0.35 s apart) with the random-weight model, with Sequential windows (with word
// timing) and Independent ones (batched by 3): segments stay inside the regions, per-window
// fallback happens (random weights loop at T=0), the guard leaves no loop behind and reports
// what it removed.
func TestLongformMicro(t *testing.T) {
	m, speech := loadMicroForTranscribe(t)
	samples := synthAudio(110, microRegions, speech)
	for _, mode := range []WindowMode{Sequential, Independent} {
		o := DefaultOptions()
		o.Language = "en"
		o.BeamSize, o.BestOf = 1, 1
		o.Temperatures = []float64{0, 1.0}
		o.Seed = 2 // a seed whose samples at T=1 end segments early, so the seek comes back
		o.SpeechRegions = microRegions
		o.Windows = mode
		o.WordTimestamps = mode == Sequential
		bs := 3
		if mode == Sequential {
			bs = 1
			// The random model's words end early: the seek goes back into each window many
			// times; fewer regions keep the test fast.
			o.SpeechRegions = microRegions[:4]
		}
		var calls int
		var last, total time.Duration
		o.Progress = func(d, tot time.Duration) { calls, last, total = calls+1, d, tot }
		res, err := transcribe(t.Context(), m, SampleSource(samples), o, bs)
		if err != nil {
			t.Fatal(err)
		}
		if res.Duration != 110 || len(res.Segments) == 0 || total != 110*time.Second || last > total || calls < 2 {
			t.Fatalf("%s: duration %v, %d segments, progress %d calls to %v of %v", mode, res.Duration, len(res.Segments), calls, last, total)
		}
		checkInRegions(t, res, o.SpeechRegions)
		fellBack := false
		for _, s := range res.Segments {
			fellBack = fellBack || s.Temperature == 1.0
			if o.WordTimestamps != (len(s.Words) > 0) {
				t.Errorf("%s: segment %d has %d words", mode, s.ID, len(s.Words))
			}
			if _, loop := loopMask(tokenIDs(s.Tokens)); loop || s.Language != "en" {
				t.Errorf("%s: segment %d %q (%s) still loops", mode, s.ID, s.Text, s.Language)
			}
		}
		if !fellBack {
			t.Errorf("%s: no window fell back to T=1", mode)
		}
		for _, r := range res.Removed {
			if r.Reason == "" || r.Text == "" || r.End < r.Start {
				t.Errorf("%s: removal %+v", mode, r)
			}
		}
		t.Logf("%s: %d segments, %d removals", mode, len(res.Segments), len(res.Removed))
	}
}

// TestLongformGuardMicro: at T=0 without fallback the random model's windows loop (its greedy
// output repeats one token); with the guard every loop is removed and reported, without it
// they stay.
func TestLongformGuardMicro(t *testing.T) {
	m, speech := loadMicroForTranscribe(t)
	samples := synthAudio(60, microRegions[:3], speech)
	o := DefaultOptions()
	o.Language = "en"
	o.BeamSize, o.BestOf = 1, 1
	o.NoFallback = true
	o.NoSpeechThreshold = math.NaN() // never skip a window as silence
	o.SpeechRegions = microRegions[:3]
	loops := func(res *Result) int {
		n := 0
		for _, s := range res.Segments {
			if _, loop := loopMask(tokenIDs(s.Tokens)); loop {
				n++
			}
		}
		return n
	}
	o.Guard = false
	raw, err := transcribe(t.Context(), m, SampleSource(samples), o)
	if err != nil {
		t.Fatal(err)
	}
	if loops(raw) == 0 || len(raw.Removed) != 0 {
		t.Fatalf("without the guard: %d looping segments, %d removals; want loops", loops(raw), len(raw.Removed))
	}
	o.Guard = true
	res, err := transcribe(t.Context(), m, SampleSource(samples), o)
	if err != nil {
		t.Fatal(err)
	}
	nLoop := 0
	for _, r := range res.Removed {
		if r.Reason == ReasonLoop {
			nLoop++
		}
	}
	if loops(res) != 0 || nLoop == 0 {
		t.Errorf("with the guard: %d looping segments, removals %+v", loops(res), res.Removed)
	}
	t.Logf("%d looping segments without the guard; removed: %d loops of %d removals, first %.60q", loops(raw), nLoop, len(res.Removed), res.Removed[0].Text)
}

// chunkSource is an AudioSource over samples in random-sized chunks, without a Len method.
type chunkSource struct {
	s   []float32
	rng *rand.Rand
}

func (c *chunkSource) Read(p []float32) (int, error) {
	n := copy(p[:min(len(p), 1+c.rng.IntN(20000))], c.s)
	c.s = c.s[n:]
	if len(c.s) == 0 {
		return n, io.EOF
	}
	return n, nil
}

// TestStreamMatchesMemory: an input streamed in random-sized chunks (no length known) gives the
// result of the same input in memory, with speech regions, without, and without speech.
func TestStreamMatchesMemory(t *testing.T) {
	m, speech := loadMicroForTranscribe(t)
	o := DefaultOptions()
	o.Language = "en"
	o.BeamSize, o.BestOf = 1, 1
	o.NoFallback = true // fallback per window: TestLongformMicro
	o.Coverage = false  // the micro model leaves most speech uncovered: TestResumeMatches
	cases := []struct {
		name    string
		samples []float32
		regions []Span
	}{
		{"regions", synthAudio(60, microRegions[:3], speech), microRegions[:3]},
		{"no regions", speech[:4*mel.SampleRate], nil},
		{"no regions, three windows", synthAudio(70, []Span{{0, 70}}, speech), nil},
		{"no speech", speech, []Span{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := o
			o.SpeechRegions = c.regions
			want, err := transcribe(t.Context(), m, SampleSource(c.samples), o)
			if err != nil {
				t.Fatal(err)
			}
			got, err := transcribe(t.Context(), m, &chunkSource{s: c.samples, rng: rand.New(rand.NewPCG(1, 1))}, o)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("stream (-memory +stream):\n%s", d)
			}
			if c.regions != nil && len(c.regions) == 0 && len(got.Segments) != 0 {
				t.Errorf("no speech: %d segments", len(got.Segments))
			}
		})
	}
}

// TestSessionKeepRows: after dropping a sequence, the others continue exactly as in sessions
// of their own.
func TestSessionKeepRows(t *testing.T) {
	m, speech := loadMicroForTranscribe(t)
	in := &input{m: m, rules: &openaiRules}
	ws := []*window{{samples: speech}, {samples: speech[16000:]}, {samples: speech[48000:]}}
	enc, err := m.Encode(in.mels(ws), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	prefix := []int32{50258, 50259, 50360}
	more := [][]int32{{400}, {401}, {402}}
	run := func(windows []int, rows [][]int32, keep []int) []float32 {
		s, err := m.NewSession(enc, windows)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		first := make([][]int32, len(windows))
		for i := range first {
			first[i] = prefix
		}
		if _, err := s.Step(first, false); err != nil {
			t.Fatal(err)
		}
		if keep != nil {
			if err := s.keepRows(keep); err != nil {
				t.Fatal(err)
			}
		}
		out, err := s.Step(rows, false)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	got := run([]int{0, 1, 2}, [][]int32{more[0], more[2]}, []int{0, 2})
	V := m.Config.NVocab
	for i, w := range []int{0, 2} {
		want := run([]int{w}, [][]int32{more[w]}, nil)
		for j := range want {
			if d := math.Abs(float64(got[i*V+j] - want[j])); d > 1e-3 {
				t.Fatalf("sequence %d logit %d: %v, alone %v", w, j, got[i*V+j], want[j])
			}
		}
	}
	s, err := m.NewSession(enc, []int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, bad := range [][]int{nil, {1, 0}, {2}, {-1}} {
		if err := s.keepRows(bad); err == nil {
			t.Errorf("keepRows(%v): no error", bad)
		}
	}
}

// TestLanguagesMicro: an allow-list restricts detection, over several windows (probabilities
// only over the allowed languages), and per window with several allowed languages.
func TestLanguagesMicro(t *testing.T) {
	m, speech := loadMicroForTranscribe(t)
	samples := synthAudio(110, microRegions, speech)
	o := DefaultOptions()
	o.BeamSize, o.BestOf = 1, 1
	o.NoFallback = true
	o.WordTimestamps = false
	o.Languages = []string{"de", "French"}
	o.SpeechRegions = microRegions
	o.NoSpeechThreshold = math.NaN()
	// Detection is what is checked, not the text: a few tokens a window (the random weights
	// otherwise sample the model's limit of 224 in every window, most of the test's time).
	o.MaxWindowTokens = 24
	res, err := transcribe(t.Context(), m, SampleSource(samples), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Language != "de" && res.Language != "fr" || len(res.LanguageProbs) != 2 || math.Abs(res.LanguageProbs["de"]+res.LanguageProbs["fr"]-1) > 1e-9 {
		t.Errorf("language %q probs %v", res.Language, res.LanguageProbs)
	}
	seen := map[string]bool{}
	for _, s := range res.Segments {
		if s.Language != "de" && s.Language != "fr" {
			t.Errorf("segment %d language %q", s.ID, s.Language)
		}
		seen[s.Language] = true
	}
	t.Logf("overall %s %v; segment languages %v (%d windows, %d segments)", res.Language, res.LanguageProbs, seen, res.Windows, len(res.Segments))

	// One allowed language: no detection.
	o.Languages = []string{"de"}
	o.SpeechRegions = nil
	res, err = transcribe(t.Context(), m, SampleSource(speech), o)
	if err != nil || res.Language != "de" || res.LanguageProbs != nil {
		t.Errorf("one allowed language: %v %q %v", err, res.Language, res.LanguageProbs)
	}
	o.Languages = []string{"xx"}
	if _, err := transcribe(t.Context(), m, SampleSource(speech), o); err == nil {
		t.Error("unknown allowed language: no error")
	}
}

// batchFake is a fakeStepper reporting its batch size (as *Session does).
type batchFake struct {
	fakeStepper
	n int
}

func (b *batchFake) Batch() int { return b.n }

func TestDetectLanguagesAverage(t *testing.T) {
	row := 0
	f := &batchFake{n: 3}
	f.logits = func([]int) []float32 {
		l := make([]float32, tVocab)
		if row%3 == 0 {
			l[tEN] = 3 // one window says English strongly, two say German mildly
		} else {
			l[tDE] = 1
		}
		row++
		return l
	}
	langs := []langToken{{"en", tEN}, {"de", tDE}}
	per, err := detectLanguages(f, tSOT, tVocab, langs)
	if err != nil {
		t.Fatal(err)
	}
	if len(per) != 3 || len(f.steps[0]) != 3 {
		t.Fatalf("%d results for %d rows", len(per), len(f.steps[0]))
	}
	pe, pd := math.Exp(3)/(math.Exp(3)+1), math.E/(math.E+1)
	if math.Abs(per[0]["en"]-pe) > 1e-12 || math.Abs(per[1]["de"]-pd) > 1e-12 {
		t.Errorf("per window %v", per)
	}
	avg := map[string]float64{}
	for _, p := range per {
		for k, v := range p {
			avg[k] += v / 3
		}
	}
	// en: (0.95 + 2*0.27)/3 = 0.50, de: 0.50 - the first window alone would have said en 0.95.
	if got := bestLanguage(avg, langs); got != "en" && got != "de" {
		t.Errorf("best %q", got)
	}
	if got := bestLanguage(map[string]float64{"en": 0.2, "de": 0.8}, langs); got != "de" {
		t.Errorf("best %q, want de", got)
	}
}

// toneStream is a long synthetic input generated while it is read: near-silence with a 3 s
// tone and noise every five minutes (the speech regions), so that it never exists in memory.
// Its noise is a table of Gaussian draws (toneNoise) read in a loop: a draw a sample was a
// fifth of TestLongformMemory's time under the race detector.
type toneStream struct {
	n, pos int
	noise  []float32
}

// toneNoise is toneStream's noise table, made once, before any heap is measured. Its length is
// a prime, so that its period never lines up with a window's.
var toneNoise = sync.OnceValue(func() []float32 {
	rng := rand.New(rand.NewPCG(1, 2))
	t := make([]float32, 1<<20+7)
	for i := range t {
		t[i] = float32(rng.NormFloat64())
	}
	return t
})

func (s *toneStream) Read(p []float32) (int, error) {
	k := min(len(p), s.n-s.pos)
	const S = mel.SampleRate
	L := len(s.noise)
	for i := range k {
		j := s.pos + i
		v := s.noise[j%L] * 1e-4
		if j%(300*S) < 3*S {
			v += float32(0.3*math.Sin(2*math.Pi*330*float64(j)/S)) + s.noise[(j+L/2)%L]*0.05
		}
		p[i] = v
	}
	s.pos += k
	if s.pos == s.n {
		return k, io.EOF
	}
	return k, nil
}

func toneRegions(seconds int) []Span {
	var out []Span
	for t := 0; t < seconds; t += 300 {
		out = append(out, Span{float64(t), float64(t + 3)})
	}
	return out
}

// streamPeakHeap transcribes a synthetic stream of the given length and returns the peak of the
// heap and the backend's memory outside it (sampled every millisecond) above what they were
// before it started. The collector runs at 10% heap
// growth meanwhile, so that the peak measures live memory rather than the collector's pacing.
// maxTokens caps each window's sampling (Options.MaxWindowTokens; 0: the model's limit).
func streamPeakHeap(tb testing.TB, m *Model, seconds, maxTokens int) (peak uint64, res *Result) {
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	o := DefaultOptions()
	o.Language = "en"
	o.BeamSize, o.BestOf = 1, 1
	o.NoFallback = true
	o.MaxWindowTokens = maxTokens
	o.SpeechRegions = toneRegions(seconds)
	src := &toneStream{n: seconds * mel.SampleRate, noise: toneNoise()}
	// The backend's memory outside the Go heap counts too (the CPU's caches and scratch).
	mapped := func() uint64 { return 0 }
	if mb, ok := m.Backend().(interface{ MappedBytes() int64 }); ok {
		mapped = func() uint64 { return uint64(mb.MappedBytes()) }
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc + mapped()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var st runtime.MemStats
		for {
			runtime.ReadMemStats(&st)
			peak = max(peak, st.HeapAlloc+mapped())
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	res, err := transcribe(tb.Context(), m, src, o)
	close(stop)
	wg.Wait()
	if err != nil {
		tb.Fatal(err)
	}
	if res.Duration != float64(seconds) {
		tb.Fatalf("duration %v, want %d", res.Duration, seconds)
	}
	return peak - min(peak, base), res
}

// TestLongformMemory: a 2-hour stream is transcribed in the memory a 12-minute one needs (the
// input alone would be 460 MB of samples, its mel 370 MB). What is measured is the input's path
// (reading, log-mel, windows, segments), not the decoding: each window samples at most
// memTokens tokens (the random model's windows otherwise run to the model's limit of 224, most of
// the test's time under the race detector, for the same heap).
func TestLongformMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("2-hour input")
	}
	const memTokens = 16
	m, _ := loadMicroForTranscribe(t)
	streamPeakHeap(t, m, 60, memTokens) // the model's workspaces are allocated on first use
	short, _ := streamPeakHeap(t, m, 12*60, memTokens)
	long, res := streamPeakHeap(t, m, 2*3600, memTokens)
	t.Logf("peak heap above baseline: 12 min %.1f MB, 2 h %.1f MB (%d segments)", float64(short)/1e6, float64(long)/1e6, len(res.Segments))
	if long > short+16<<20 || long > 128<<20 {
		t.Errorf("peak heap grows with duration: 12 min %d B, 2 h %d B", short, long)
	}
	checkInRegions(t, res, toneRegions(2*3600))
}

// BenchmarkTranscribeStream2h reports the peak heap of transcribing a 2-hour stream (micro
// model, 24 speech regions) and its real-time factor.
func BenchmarkTranscribeStream2h(b *testing.B) {
	m, _ := loadMicroForTranscribe(b)
	streamPeakHeap(b, m, 60, 0) // the model's workspaces are allocated on first use
	for b.Loop() {
		start := time.Now()
		peak, _ := streamPeakHeap(b, m, 2*3600, 0)
		b.ReportMetric(float64(peak)/1e6, "peak-MB")
		b.ReportMetric(2*3600/time.Since(start).Seconds(), "x-realtime")
	}
}

// TestResumeMatches: a transcription resumed from any of its checkpoints, its reader moved past
// the audio before it, gives the result of the transcription run through, with Sequential and
// Independent windows, with speech regions and without; a checkpoint of other options is
// refused.
func TestResumeMatches(t *testing.T) {
	m, speech := loadMicroForTranscribe(t)
	samples := synthAudio(75, []Span{{2, 20}, {24, 40}, {45, 73}}, speech)
	for _, c := range []struct {
		name    string
		mode    WindowMode
		regions []Span
		fault   func(start, end float64, retry int) bool
		secs    int // the first secs seconds of the input; 0: all
	}{
		{"sequential", Sequential, nil, nil, 0},
		{"sequential, regions", Sequential, []Span{{2, 20}, {24, 40}, {45, 73}}, nil, 0},
		{"independent, regions", Independent, []Span{{2, 20}, {24, 40}, {45, 73}}, nil, 0},
		// The coverage check on (the random weights leave speech uncovered anyway), with
		// checkpoints in the middle of retries and after gaps: windows from 10 s to 20 s read
		// at their second retry, those from 24 s to 30 s never. 42 s: retries are slow here.
		{"sequential, regions, retries and gaps", Sequential, []Span{{2, 20}, {24, 40}},
			func(start, _ float64, retry int) bool {
				return (start >= 10 && start < 20 && retry < retryShort) || (start >= 24 && start < 30)
			}, 42},
	} {
		t.Run(c.name, func(t *testing.T) {
			faultWindow = c.fault
			defer func() { faultWindow = nil }()
			samples := samples
			if c.secs > 0 {
				samples = samples[:c.secs*16000]
			}
			o := quickOptions()
			o.Coverage = c.fault != nil
			o.Windows, o.SpeechRegions, o.WordTimestamps = c.mode, c.regions, true
			o.NoFallback, o.Temperatures, o.Seed = false, []float64{0, 1}, 4
			o.MaxWindowTokens = fallbackTokens
			var cps []*Checkpoint
			o.Checkpoint = func(cp *Checkpoint) { cps = append(cps, cp) }
			want, err := transcribe(t.Context(), m, &chunkSource{s: samples, rng: rand.New(rand.NewPCG(3, 3))}, o, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(cps) < 2 {
				t.Fatalf("%d checkpoints", len(cps))
			}
			o.Checkpoint = nil
			picks := []int{0, (len(cps) - 1) / 2, len(cps) - 2}
			if c.fault != nil { // one checkpoint in the middle of a retry, one after the last gap
				picks = picks[2:]
				for i, cp := range cps {
					if cp.s.RetryStage > 0 {
						picks = []int{i, len(cps) - 2}
						break
					}
				}
			}
			for _, i := range slices.Compact(picks) {
				cp := cps[i]
				data, err := cp.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				var back Checkpoint
				if err := back.UnmarshalBinary(data); err != nil {
					t.Fatal(err)
				}
				r := o
				r.Resume = &back
				got, err := transcribe(t.Context(), m, &chunkSource{s: samples, rng: rand.New(rand.NewPCG(4, uint64(i)))}, r, 2)
				if err != nil {
					t.Fatalf("resume from checkpoint %d (%.2f s): %v", i, cp.Done(), err)
				}
				if d := cmp.Diff(want, got); d != "" {
					t.Errorf("resumed from checkpoint %d (%.2f s, %d segments) (-whole +resumed):\n%s", i, cp.Done(), cp.Segments(), d)
				}
			}
			other := o
			other.Prompt = "something else"
			other.Resume = cps[0]
			if _, err := transcribe(t.Context(), m, SampleSource(samples), other); !errors.Is(err, ErrCheckpoint) {
				t.Errorf("a checkpoint of other options: err %v, want ErrCheckpoint", err)
			}
			if c.fault != nil && (want.Retries == 0 || len(want.Gaps) == 0) {
				t.Errorf("%d retries, gaps %+v: want both", want.Retries, want.Gaps)
			}
			fellBack := 0
			for _, s := range want.Segments {
				if s.Temperature > 0 {
					fellBack++
				}
			}
			if fellBack == 0 { // fallbackTokens too few: no checkpoint after a fallback
				t.Errorf("no segment fell back to T=1")
			}
			t.Logf("%d checkpoints, %d segments (%d fell back to T=1), %d retries, %d gaps", len(cps), len(want.Segments), fellBack, want.Retries, len(want.Gaps))
		})
	}
}

// fallbackTokens caps a window's sampling in tests of the fallback's paths (TestResumeMatches,
// TestTranscribeMicro): enough for the random weights' T=0 output to fail the compression-ratio
// check (every window still falls back to T=1, as at the model's limit of 224), a quarter of the
// decoding, most of those tests' time under the race detector.
const fallbackTokens = 64

// windowRunsCase is a batch whose blocks of sequences read windows out of order, in blocks of 2,
// 3 and 4 sequences: cross-attention window runs (windowRun) of three sizes, none of them
// consecutive windows.
var windowRunsCase = []int{3, 3, 0, 0, 0, 2, 2, 2, 2, 1, 1}

// stepWindowRuns runs a prompt and one more token on a session of windows of enc and returns the
// second step's logits.
func stepWindowRuns(t *testing.T, m *Model, enc *Encoded, windows []int) []float32 {
	t.Helper()
	s, err := m.NewSession(enc, windows)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	first, next := make([][]int32, len(windows)), make([][]int32, len(windows))
	for i, w := range windows {
		first[i] = []int32{50258, 50259, 50360}
		next[i] = []int32{int32(400 + w)}
	}
	if _, err := s.Step(first, false); err != nil {
		t.Fatal(err)
	}
	out, err := s.Step(next, false)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Clone(out)
}

// windowBackend adds tensor.WindowAttention to a backend (the CPU's, which has none: its
// Attention per stretch of consecutive windows is all the window runs would save), one Attention
// call a group, so that the session's window runs run without a GPU.
type windowBackend struct{ tensor.Backend }

func (windowBackend) AttendsWindows(int, *tensor.Tensor) bool { return true }

func (b windowBackend) AttentionWindows(dst, q, k, v, windows *tensor.Tensor, heads, kvLen int, scale float32) {
	for i, x := range b.ToF32(windows) {
		w := int(x)
		b.Attention(dst.Slice(i, i+1), q.Slice(i, i+1), k.Slice(w, w+1), v.Slice(w, w+1), heads, kvLen, scale, false)
	}
}

// TestSessionWindowRuns: each sequence of a batch whose windows are out of order (window runs
// through tensor.WindowAttention, windowBackend's) gets the logits it gets alone on its window.
func TestSessionWindowRuns(t *testing.T) {
	ref, speech := loadMicroForTranscribe(t)
	m, err := Load(filepath.Join(fixturesDir, "oracle-micro"), windowBackend{ref.Backend()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	in := &input{m: m, rules: &openaiRules}
	ws := []*window{{samples: speech}, {samples: speech[16000:]}, {samples: speech[32000:]}, {samples: speech[48000:]}}
	enc, err := m.Encode(in.mels(ws), len(ws))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	got := stepWindowRuns(t, m, enc, windowRunsCase)
	V := m.Config.NVocab
	for i, w := range windowRunsCase {
		want := stepWindowRuns(t, m, enc, []int{w})
		for j := range want {
			if d := math.Abs(float64(got[i*V+j] - want[j])); d > 1e-3 {
				t.Fatalf("sequence %d (window %d) logit %d: %v, alone %v", i, w, j, got[i*V+j], want[j])
			}
		}
	}
}
