package cuda

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/verbatimhq/verbatim/audio"
	"github.com/verbatimhq/verbatim/cpu"
	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/tensor/tensortest"
	"github.com/verbatimhq/verbatim/whisper"
	"github.com/verbatimhq/verbatim/whisper/mel"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

func open(t testing.TB, opts Options) *Backend {
	t.Helper()
	b, err := Open(opts)
	if err != nil {
		if errors.Is(err, ErrNoDevice) {
			t.Skipf("no CUDA device: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestConformancePrecise: with Options.Precise every op computes in f32 and meets the default
// (f32) tolerances of the suite: absolute 1e-5 plus relative 2e-5.
func TestConformancePrecise(t *testing.T) {
	b := open(t, Options{Precise: true})
	t.Log(b.Device())
	tensortest.RunAll(t, b)
}

// TestConformance: the default (fast) paths. Linear with 16-bit weights rounds activations to
// f16/bf16 and flash attention rounds Q, K, V and P to f16, so results are held to absolute 1e-4
// plus relative 3e-3 of the magnitude of the terms (bf16 has 8 bits of mantissa: 2^-9 = 2e-3).
func TestConformance(t *testing.T) {
	b := open(t, Options{})
	tensortest.Run(t, b, tensortest.Options{Abs: 1e-4, Rel: 3e-3})
}

// TestLedger: every tensor freed leaves no live tensor, the cache keeps blocks for reuse, and
// Close frees every block the backend owns.
func TestLedger(t *testing.T) {
	b, err := Open(Options{})
	if err != nil {
		if errors.Is(err, ErrNoDevice) {
			t.Skipf("no CUDA device: %v", err)
		}
		t.Fatal(err)
	}
	x := b.FromF32(make([]float32, 3*64), 3, 64)
	w := b.Upload(tensor.F16, tensor.Quantize(tensor.F16, make([]float32, 32*64)), 32, 64)
	y := b.Alloc(tensor.F32, 3, 32)
	b.Linear(y, x, w, nil) // uses a scratch block
	b.GELU(y, y)
	_ = b.ToF32(y)
	blocks, live := b.Ledger()
	if live != 3 || blocks < 3 {
		t.Fatalf("after 3 tensors: %d blocks, %d live tensors", blocks, live)
	}
	for _, u := range []*tensor.Tensor{x, w, y} {
		b.Free(u)
	}
	if _, live := b.Ledger(); live != 0 {
		t.Fatalf("%d live tensors after freeing all", live)
	}
	z := b.Alloc(tensor.F32, 3, 64) // reuses x's block
	if blocks2, _ := b.Ledger(); blocks2 != blocks {
		t.Errorf("the cache did not reuse a block: %d blocks, had %d", blocks2, blocks)
	}
	b.Free(z)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if blocks, live := b.Ledger(); blocks != 0 || live != 0 {
		t.Fatalf("after Close: %d blocks, %d live tensors", blocks, live)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func writeTiny(t *testing.T) string {
	t.Helper()
	cfg, err := weights.Arch("tiny")
	if err != nil {
		t.Fatal(err)
	}
	ts, err := weights.Synth(weights.SynthOptions{Config: cfg, Seed: 1, DType: tensor.F32, Format: weights.Safetensors, Lazy: true})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "model.safetensors")
	if err := weights.WriteSafetensors(p, cfg, ts); err != nil {
		t.Fatal(err)
	}
	return p
}

func maxAbsDiff(a, b []float32) (worst float64, at int) {
	for i := range a {
		if d := math.Abs(float64(a[i]) - float64(b[i])); d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	return worst, at
}

func argmax(x []float32) int32 {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return int32(best)
}

// TestWhisperParity runs the synthetic tiny f32 model on the CPU (the oracle) and on the GPU:
// encoder output and the logits of 100 greedy steps within tolerance, and identical greedy
// tokens. Precise mode must match to 1e-3 (as the CPU matches transformers); the default mode
// (f16 flash attention in the encoder) to 3e-2 in the encoder and 5e-2 in the logits.
func TestWhisperParity(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 150 MB model")
	}
	open(t, Options{}).Close() // skips without a device
	path := writeTiny(t)
	pcm, err := audio.LoadWAV("../testdata/jfk.wav")
	if err != nil {
		t.Fatal(err)
	}
	feats := window30(pcm.Samples, 80)
	prefix := []int32{50258, 50259, 50359, 50363}
	const steps = 100

	run := func(t *testing.T, be tensor.Backend) ([]float32, [][]float32, []int32) {
		return greedyRun(t, be, path, feats, prefix, steps)
	}
	cb, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	wantEnc, wantLogits, wantTokens := run(t, cb)

	for _, c := range []struct {
		name           string
		opts           Options
		encTol, logTol float64
	}{
		{"precise", Options{Precise: true}, 1e-3, 1e-3},
		{"fast", Options{}, 3e-2, 5e-2},
	} {
		t.Run(c.name, func(t *testing.T) {
			be := open(t, c.opts)
			enc, logits, tokens := run(t, be)
			d, at := maxAbsDiff(enc, wantEnc)
			t.Logf("encoder max abs diff %.3g at %d", d, at)
			if d > c.encTol || math.IsNaN(d) {
				t.Errorf("encoder: max abs diff %.3g at (%d, %d), tolerance %g", d, at/384, at%384, c.encTol)
			}
			var worst float64
			for i := range logits {
				d, at := maxAbsDiff(logits[i], wantLogits[i])
				worst = max(worst, d)
				if d > c.logTol || math.IsNaN(d) {
					t.Errorf("step %d: logits max abs diff %.3g at %d, tolerance %g", i, d, at, c.logTol)
					break
				}
			}
			t.Logf("logits max abs diff over %d steps %.3g", steps, worst)
			for i := range wantTokens {
				if tokens[i] != wantTokens[i] {
					t.Fatalf("token %d: %d, cpu %d (first %d agree)", i, tokens[i], wantTokens[i], i)
				}
			}
		})
	}
}

// TestFused checks the fused paths against the CPU backend's unfused ops: LinearAdd and
// LinearGELU (small-M kernel and cuBLAS with epilogue), Linear after LayerNorm and after GELU
// (the f16 copy of the activation reused as the GEMM input), Linear into F16, and Attention /
// AttentionProbs with F16 keys and values. Inputs are random; tolerance abs 2e-3 + rel 5e-3.
func TestFused(t *testing.T) {
	g := open(t, Options{})
	c, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rnd := uniform(rand.New(rand.NewPCG(7, 7)))
	round16 := func(x []float32) []float32 {
		y := make([]float32, len(x))
		for i, v := range x {
			y[i] = tensor.F16ToF32(tensor.F32ToF16(v))
		}
		return y
	}
	check := func(t *testing.T, what string, got, want []float32) {
		t.Helper()
		for i := range want {
			d := math.Abs(float64(got[i] - want[i]))
			if !(d <= 2e-3+5e-3*math.Abs(float64(want[i]))) {
				t.Fatalf("%s: element %d: %g, cpu %g", what, i, got[i], want[i])
			}
		}
	}
	const k, n = 256, 96
	wv := rnd(n*k, 0.1)
	wraw := tensor.Quantize(tensor.F16, wv)
	bv := rnd(n, 1)
	gam, bet := rnd(k, 1), rnd(k, 0.5)
	for _, rows := range []int{1, 3, 8, 12, 40} {
		t.Run(fmt.Sprintf("rows=%d", rows), func(t *testing.T) {
			xv, rv := rnd(rows*k, 1), rnd(rows*n, 1)
			run := func(b tensor.Backend, fused bool) (add, gelu, ln, half []float32) {
				x := b.FromF32(xv, rows, k)
				w := b.Upload(tensor.F16, wraw, n, k)
				bias := b.FromF32(bv, n)
				r := b.FromF32(rv, rows, n)
				y := b.Alloc(tensor.F32, rows, n)
				if fused {
					b.(tensor.FusedLinear).LinearAdd(r, x, w, bias)
					b.(tensor.FusedLinear).LinearGELU(y, x, w, bias)
				} else {
					tmp := b.Alloc(tensor.F32, rows, n)
					b.Linear(tmp, x, w, bias)
					b.Add(r, r, tmp)
					b.Linear(y, x, w, bias)
					b.GELU(y, y)
				}
				add, gelu = b.ToF32(r), b.ToF32(y)
				h := b.Alloc(tensor.F32, rows, k)
				b.LayerNorm(h, x, b.FromF32(gam, k), b.FromF32(bet, k), 1e-5)
				b.Linear(y, h, w, bias)
				b.Linear(r, h, w, nil) // a second reader of the same copy
				ln = append(b.ToF32(y), b.ToF32(r)...)
				if fused {
					yh := b.Alloc(tensor.F16, rows, n)
					b.Linear(yh, x, w, bias)
					half = b.ToF32(yh)
				} else {
					b.Linear(y, x, w, bias)
					half = round16(b.ToF32(y))
				}
				return
			}
			ga, gg, gl, gh := run(g, true)
			ca, cg, cl, ch := run(c, false)
			check(t, "LinearAdd", ga, ca)
			check(t, "LinearGELU", gg, cg)
			check(t, "LayerNorm+Linear", gl, cl)
			check(t, "Linear into F16", gh, ch)
		})
	}
	for _, tq := range []int{1, 4, 40} {
		t.Run(fmt.Sprintf("attention/f16kv/tq=%d", tq), func(t *testing.T) {
			const b, tk, h, d = 2, 300, 4, 64
			qv, kv, vv := rnd(b*tq*h*d, 1), round16(rnd(b*tk*h*d, 1)), round16(rnd(b*tk*h*d, 1))
			out := func(be tensor.Backend, dt tensor.DType) (o, p []float32) {
				q := be.FromF32(qv, b, tq, h*d)
				kt, vt := be.FromF32(kv, b, tk, h*d), be.FromF32(vv, b, tk, h*d)
				if dt == tensor.F16 {
					k16, v16 := be.Alloc(tensor.F16, b, tk, h*d), be.Alloc(tensor.F16, b, tk, h*d)
					be.Copy(k16, kt)
					be.Copy(v16, vt)
					kt, vt = k16, v16
				}
				dst := be.Alloc(tensor.F32, b, tq, h*d)
				be.Attention(dst, q, kt, vt, h, tk-7, 0.125, false)
				probs := be.Alloc(tensor.F32, b, h, tq, tk-7)
				be.(tensor.AttentionWeights).AttentionProbs(probs, q, kt, h, tk-7, 0.125, false)
				return be.ToF32(dst), be.ToF32(probs)
			}
			go_, gp := out(g, tensor.F16)
			co, cp := out(c, tensor.F32)
			check(t, "Attention", go_, co)
			check(t, "AttentionProbs", gp, cp)
		})
	}
}

// TestWhisperParityLarge is the f16 half of the parity acceptance: a synthetic large-v3 in f16
// (ggml, 3.1 GB, written to a temporary folder) on the CPU backend (f16 weights, f32
// activations: the oracle) and on the GPU (f16 GEMM inputs, flash attention, cuBLASLt, graphs):
// the encoder output and the logits of a forced 4-token prefix and 8 greedy steps, each within 3%
// of the largest reference magnitude, and the greedy tokens equal. Needs ~8 GB of host memory
// and a minute of CPU; skipped with -short or without a device.
func TestWhisperParityLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 3.1 GB model")
	}
	open(t, Options{}).Close() // skips without a device
	cfg, err := weights.Arch("large-v3")
	if err != nil {
		t.Fatal(err)
	}
	path, err := whisper.WriteSynth(filepath.Join(t.TempDir(), "large-v3-f16.bin"), whisper.SynthOptions{Config: cfg, DType: tensor.F16, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	pcm, err := audio.LoadWAV("../testdata/jfk.wav")
	if err != nil {
		t.Fatal(err)
	}
	feats := window30(pcm.Samples, cfg.NMels)
	prefix := []int32{50258, 50259, 50359, 50363}
	const steps = 8
	cb, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	wantEnc, wantLogits, wantTokens := greedyRun(t, cb, path, feats, prefix, steps)
	enc, logits, tokens := greedyRun(t, open(t, Options{}), path, feats, prefix, steps)
	rel := func(got, want []float32) (float64, int) {
		var ref float64
		for _, v := range want {
			ref = max(ref, math.Abs(float64(v)))
		}
		d, at := maxAbsDiff(got, want)
		return d / max(ref, 1e-30), at
	}
	r, at := rel(enc, wantEnc)
	t.Logf("encoder: max abs diff %.3g of the largest magnitude (at %d)", r, at)
	if r > 3e-2 || math.IsNaN(r) {
		t.Errorf("encoder differs by %.3g of the largest magnitude at %d", r, at)
	}
	for i := range logits {
		r, at := rel(logits[i], wantLogits[i])
		t.Logf("step %d: logits max abs diff %.3g of the largest magnitude (at %d)", i, r, at)
		if r > 3e-2 || math.IsNaN(r) {
			t.Errorf("step %d: logits differ by %.3g of the largest magnitude at %d", i, r, at)
		}
	}
	if !slices.Equal(tokens, wantTokens) {
		t.Errorf("greedy tokens %v, cpu %v", tokens, wantTokens)
	}
}

// greedyRun loads the model at path on be, encodes one window of feats and decodes greedily
// from prefix for steps steps: the encoder output, each step's logits and the chosen tokens.
func greedyRun(t *testing.T, be tensor.Backend, path string, feats []float32, prefix []int32, steps int) (enc []float32, logits [][]float32, tokens []int32) {
	t.Helper()
	m, err := whisper.Load(path, be)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	e, err := m.Encode(feats, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	enc = be.ToF32(e.Out)
	s, err := m.NewSession(e, []int{0})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	next := prefix
	for range steps {
		l, err := s.Step([][]int32{next}, false)
		if err != nil {
			t.Fatal(err)
		}
		logits = append(logits, slices.Clone(l)) // s reuses its buffer
		tok := argmax(l)
		tokens = append(tokens, tok)
		next = []int32{tok}
	}
	return enc, logits, tokens
}

// window30 is the [nMels, 3000] features of samples zero-padded (or cut) to 30 s, as
// transformers' feature extractor computes them.
func window30(samples []float32, nMels int) []float32 {
	buf := make([]float32, mel.ChunkSamples)
	copy(buf, samples)
	feats, _ := mel.Compute(buf, nMels)
	return feats
}

// TestStagedUploads: uploads go through a ring of pinned stages (stagedCopy) without waiting for
// the stream. Many uploads of every size class in a row, from one host buffer rewritten after
// each, each followed by an op that reads it while later uploads reuse the stages, read back
// exactly: no stage is rewritten before the device has copied it out, and an upload has its
// data when it returns.
func TestStagedUploads(t *testing.T) {
	b := open(t, Options{})
	sizes := []int{16, 255, 256, 4096, 1 << 18, 5 << 20 / 4, 16 << 20 / 4, stageMax/4 + 1}
	host := make([]float32, slices.Max(sizes))
	var ins, outs []*tensor.Tensor
	var want [][]float32
	for r := range 3 * nStages {
		n := sizes[r%len(sizes)]
		for i := range n {
			host[i] = float32(r*1000003+i) * 0.5
		}
		x := b.FromF32(host[:n], n)
		y := b.Alloc(tensor.F32, n)
		b.Add(y, x, x)
		clear(host)
		w := make([]float32, n)
		for i := range w {
			w[i] = float32(r*1000003+i) * 0.5
		}
		ins, outs, want = append(ins, x), append(outs, y), append(want, w)
	}
	for r := range ins {
		got, sum := b.ToF32(ins[r]), b.ToF32(outs[r])
		for i, v := range want[r] {
			if got[i] != v || sum[i] != v+v {
				t.Fatalf("upload %d (%d floats), element %d: %v and %v, want %v and %v", r, len(want[r]), i, got[i], sum[i], v, v+v)
			}
		}
	}
}
