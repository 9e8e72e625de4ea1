package whisper

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/verbatimhq/verbatim/audio"
	"github.com/verbatimhq/verbatim/cpu"
	"github.com/verbatimhq/verbatim/cuda"
	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

// TestWordTimingCUDAHalfKV: with a 16-bit model on the GPU the encoder keeps the cross K/V in
// f16 (tensor.HalfKV). Word timing reads the alignment heads' cross-attention from them: both
// ways (AttentionProbs, and Transpose + MatMul + Softmax, which widens K first) must give the
// CPU's probabilities, and a whole transcription with word timestamps must work. Skips without
// a CUDA device.
func TestWordTimingCUDAHalfKV(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a model")
	}
	g, err := cuda.Open(cuda.Options{})
	if err != nil {
		if errors.Is(err, cuda.ErrNoDevice) {
			t.Skipf("no CUDA device: %v", err)
		}
		t.Fatal(err)
	}
	defer g.Close()
	if h, ok := tensor.Backend(g).(tensor.HalfKV); !ok || !h.HalfKV() {
		t.Skip("the backend keeps cross K/V in f32")
	}
	c, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg, err := weights.Arch("tiny")
	if err != nil {
		t.Fatal(err)
	}
	path, err := WriteSynth(filepath.Join(t.TempDir(), "tiny-f16.bin"), SynthOptions{Config: cfg, DType: tensor.F16, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	pcm, err := audio.LoadWAV("../testdata/jfk.wav")
	if err != nil {
		t.Fatal(err)
	}
	feats := hfWindow(pcm.Samples, cfg.NMels)
	const frames = 550
	toks := []int{50258, 50259, 50359, 50363, 1770, 13, 400, 2108, 11, 50257}
	heads := []alignHead{{2, 1}, {3, 0}, {3, 5}}

	probs := func(t *testing.T, b tensor.Backend, mode probsMode) []float32 {
		m, err := Load(path, b)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		enc, err := m.Encode(feats, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer enc.Close()
		p, err := m.forcedPass(enc, 0, toks, frames, heads, mode, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	want := probs(t, c, probsMatMul)
	for _, mode := range []probsMode{probsMatMul, probsFused} {
		got := probs(t, g, mode)
		var worst float64
		for i := range want {
			worst = max(worst, math.Abs(float64(got[i]-want[i])))
		}
		t.Logf("mode %d: max abs difference from the CPU %.3g", mode, worst)
		if worst > 2e-2 || math.IsNaN(worst) {
			t.Errorf("mode %d: probabilities differ from the CPU's by %.3g", mode, worst)
		}
	}

	m, err := Load(path, g)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	opts := DefaultOptions()
	opts.Language, opts.WordTimestamps, opts.BeamSize, opts.BestOf = "en", true, 1, 1
	res, err := transcribe(context.Background(), m, SampleSource(pcm.Samples), opts)
	if err != nil {
		t.Fatalf("transcribe with word timestamps on the GPU: %v", err)
	}
	t.Logf("%d segments", len(res.Segments))
}

// TestForcedLogProbsCUDA: word timing's token log-probabilities from a greedy pick over the text
// tokens on the GPU and two gathered logits a position are those computed on the host from the
// same GPU's logits read back (pick=off), over a pass of three overlapping chunks.
func TestForcedLogProbsCUDA(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a model")
	}
	cfg, path := cudaTiny(t, 5)
	feats := randomMel(cfg, 1)
	toks := []int{50258, 50259, 50359, 50363}
	for i := range 36 {
		toks = append(toks, (i*7919+11)%50257)
	}
	toks = append(toks, 50257)
	run := func(opts cuda.Options) []float64 {
		m := loadCUDA(t, opts, path)
		enc, err := m.Encode(feats, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer enc.Close()
		want := &tokenLogProbs{from: 3, limit: 50257, ids: toks[4 : len(toks)-1]}
		if _, err := m.forcedPass(enc, 0, toks, cfg.NAudioCtx, []alignHead{{0, 0}}, probsAuto, nil, want); err != nil {
			t.Fatal(err)
		}
		return want.lp
	}
	host, dev := run(cuda.Options{NoPick: true}), run(cuda.Options{})
	var worst float64
	for i := range host {
		worst = max(worst, math.Abs(dev[i]-host[i]))
	}
	t.Logf("%d log-probabilities, max abs difference %.3g (e.g. %.6f on the GPU, %.6f on the host)", len(host), worst, dev[0], host[0])
	if len(dev) != len(host) || worst > 1e-4 || math.IsNaN(worst) {
		t.Errorf("log-probabilities from GPU picks differ from the host's by %.3g", worst)
	}
}

// TestStepLogProbsCUDA: the prompt's no-speech log-probabilities from an unmasked pick on the GPU
// and two gathered logits a sequence are those computed on the host from the same GPU's logits
// (pick=off), for a batch of 7 sequences over 3 windows.
func TestStepLogProbsCUDA(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a model")
	}
	cfg, path := cudaTiny(t, 6)
	feats := randomMel(cfg, 3)
	run := func(opts cuda.Options) []float64 {
		m := loadCUDA(t, opts, path)
		enc, err := m.Encode(feats, 3)
		if err != nil {
			t.Fatal(err)
		}
		defer enc.Close()
		s, err := m.NewSession(enc, []int{0, 0, 1, 1, 1, 2, 2})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var toks [][]int32
		ids := []int{50362, 50362, 0, 50257, 50362, 13, 50362}
		for i := range 7 {
			toks = append(toks, []int32{50258, int32(50259 + i)})
		}
		lp, err := s.StepLogProbs(toks, ids)
		if err != nil {
			t.Fatal(err)
		}
		return lp
	}
	host, dev := run(cuda.Options{NoPick: true}), run(cuda.Options{})
	for i := range host {
		if d := math.Abs(dev[i] - host[i]); !(d <= 1e-4) {
			t.Errorf("sequence %d: log-probability %.6f on the GPU, %.6f on the host", i, dev[i], host[i])
		}
	}
	t.Logf("GPU %.5f, host %.5f", dev, host)
}

// cudaTiny writes a random-weight tiny f16 model (seed) and returns its config and path; without
// a CUDA device it skips first.
func cudaTiny(t *testing.T, seed uint64) (weights.Config, string) {
	t.Helper()
	// Skip before writing the model (8 s under -race) where there is no device.
	g, err := cuda.Open(cuda.Options{})
	if err != nil {
		if errors.Is(err, cuda.ErrNoDevice) {
			t.Skipf("no CUDA device: %v", err)
		}
		t.Fatal(err)
	}
	g.Close()
	cfg, err := weights.Arch("tiny")
	if err != nil {
		t.Fatal(err)
	}
	path, err := WriteSynth(filepath.Join(t.TempDir(), "tiny-f16.bin"), SynthOptions{Config: cfg, DType: tensor.F16, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, path
}

// loadCUDA opens a CUDA backend with opts (skipping without a device, or when it cannot pick on
// the GPU and opts do not turn picks off) and loads the model at path on it.
func loadCUDA(t *testing.T, opts cuda.Options, path string) *Model {
	t.Helper()
	g, err := cuda.Open(opts)
	if err != nil {
		if errors.Is(err, cuda.ErrNoDevice) {
			t.Skipf("no CUDA device: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	if !g.CanPick() && !opts.NoPick {
		t.Skip("the backend does not pick on the GPU")
	}
	m, err := Load(path, g)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestSessionWindowRunsCUDA: on the GPU a batch whose windows are out of order runs its
// cross-attention as window runs (the group kernels reading each group's window from a table);
// its logits are those of the kernel per row over stretches of consecutive windows
// (attngroup=off). Skips without a CUDA device.
func TestSessionWindowRunsCUDA(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a model")
	}
	cfg, path := cudaTiny(t, 7)
	feats := randomMel(cfg, 4)
	run := func(opts cuda.Options) []float32 {
		m := loadCUDA(t, opts, path)
		enc, err := m.Encode(feats, 4)
		if err != nil {
			t.Fatal(err)
		}
		defer enc.Close()
		return stepWindowRuns(t, m, enc, windowRunsCase)
	}
	each, runs := run(cuda.Options{AttnEach: true}), run(cuda.Options{})
	// The kernels sum in other orders, and the f16 copies of the activations the next Linear
	// reads can round the other way, which grows over the layers: the tolerance is a thousandth
	// of the row's largest logit (the first run gave 0.0116 at a logit of -1.14). A window read
	// from the wrong place differs by the logits' own size.
	V := cfg.NVocab
	worst := 0.0
	for r := range len(each) / V {
		big := 0.0
		for _, x := range each[r*V : (r+1)*V] {
			big = max(big, math.Abs(float64(x)))
		}
		for j := r * V; j < (r+1)*V; j++ {
			d := math.Abs(float64(runs[j] - each[j]))
			if !(d <= 1e-3*big+1e-3) {
				t.Fatalf("sequence %d logit %d: %v with window runs, %v per row (largest logit %.1f)", r, j-r*V, runs[j], each[j], big)
			}
			worst = max(worst, d/big)
		}
	}
	t.Logf("largest difference %.2g of the row's largest logit", worst)
}

// cudaTinyJFK returns a random-weight tiny model (of seed) on the GPU, and jfk.wav's samples
// (skipping without a CUDA device).
func cudaTinyJFK(t *testing.T, seed uint64) (*Model, []float32) {
	t.Helper()
	_, path := cudaTiny(t, seed)
	m := loadCUDA(t, cuda.Options{}, path)
	pcm, err := audio.LoadWAV("../testdata/jfk.wav")
	if err != nil {
		t.Fatal(err)
	}
	return m, pcm.Samples
}

// TestDetectionStashCUDA: on the GPU, inputs detected in batches of detection only decode their
// first window from the encoder output detection kept (batcher.stash), with the defaults (beam
// search 5, word timestamps) and the results of the same run encoding those windows again
// (noStash). Detection takes its three windows together (detectSure over 1), so that the six
// inputs wait for it in batches of detection only. Skips without a CUDA device.
func TestDetectionStashCUDA(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a model")
	}
	defer func(v float64) { detectSure = v }(detectSure)
	detectSure = 2
	m, speech := cudaTinyJFK(t, 9)
	samples := synthAudio(61, []Span{{0, 61}}, speech)
	o := DefaultOptions()
	o.Language, o.NoFallback, o.MaxWindowTokens = "", true, 40
	run := func(off bool) ([]manyResult, Timing) {
		noStash = off
		defer func() { noStash = false }()
		var jobs []Job
		for range 6 {
			jobs = append(jobs, Job{Source: &sliceSource{s: samples}, Options: o})
		}
		stop := m.TimePhases()
		rs := transcribeMany(t.Context(), m, jobs, ManyOptions{BatchSize: 7})
		return rs, stop()
	}
	rs, tm := run(false)
	again, tm0 := run(true)
	if tm.Reused == 0 || tm0.Reused != 0 || tm.Encoded+tm.Reused != tm0.Encoded {
		t.Errorf("windows encoded and reused: %d and %d with the stash, %d and %d without", tm.Encoded, tm.Reused, tm0.Encoded, tm0.Reused)
	}
	for i := range rs {
		if rs[i].Err != nil || again[i].Err != nil {
			t.Fatalf("input %d: %v, %v", i, rs[i].Err, again[i].Err)
		}
		sameResult(t, fmt.Sprintf("input %d", i), again[i].Result, rs[i].Result)
	}
	t.Logf("%d windows encoded, %d reused (%d encoded without the stash)", tm.Encoded, tm.Reused, tm0.Encoded)
}

// TestDeviceMelsCUDA: the driver's log-mel windows made on the device (deviceMels) are the
// host's (melsOf) within f32 rounding: full and short windows, under the reference's rules and
// whisper.cpp's (frames after the audio those of silence). Skips without a CUDA device.
func TestDeviceMelsCUDA(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a model")
	}
	m, speech := cudaTinyJFK(t, 3)
	long := synthAudio(30, []Span{{0, 30}}, speech)
	b := &batcher{m: m}
	for _, compat := range []Compat{CompatOpenAI, CompatWhisperCpp} {
		o := DefaultOptions()
		o.Compat = compat
		in, err := newInput(m, SampleSource(nil), 0, &o)
		if err != nil {
			t.Fatal(err)
		}
		ws := []*window{{samples: long}, {samples: speech}, {samples: speech[:1000]}}
		ins := []*input{in, in, in}
		x, _ := b.deviceMels(ins, ws)
		if x == nil {
			t.Fatal("no log-mel on the device")
		}
		got := m.b.ToF32(x)
		m.b.Free(x)
		want := melsOf(ins, ws, nil)
		worst := 0.0
		for i := range want {
			worst = max(worst, math.Abs(float64(got[i]-want[i])))
		}
		if len(got) != len(want) || !(worst <= 2e-4) {
			t.Errorf("compat %d: %d values, host %d, largest difference %.3g", compat, len(got), len(want), worst)
		}
		t.Logf("compat %d: largest difference %.3g", compat, worst)
	}
}

// TestForcedPassesCUDA is TestForcedPasses on the GPU (tiny, f16, random weights): the batched
// pass's products have more rows, for which cuBLAS may choose another algorithm, so the results
// are held to 2e-3 of each request's pass alone. Skips without a CUDA device.
func TestForcedPassesCUDA(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a model")
	}
	_, path := cudaTiny(t, 8)
	checkForcedPasses(t, loadCUDA(t, cuda.Options{}, path), 2e-3)
}
