package metal

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/verbatimhq/verbatim/cpu"
	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

// synthModel loads a random-weight model of arch on b, from weights.Synth in memory.
func synthModel(t *testing.T, arch string, dt tensor.DType, b tensor.Backend) *whisper.Model {
	t.Helper()
	cfg, err := weights.Arch(arch)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := weights.Synth(weights.SynthOptions{Config: cfg, Seed: 5, DType: dt, Format: weights.GGML})
	if err != nil {
		t.Fatal(err)
	}
	f := &weights.File{Path: "synth:" + arch, Format: weights.GGML, Config: cfg, Arch: cfg.Name(), Tensors: map[string]*weights.Tensor{}}
	for _, w := range ts {
		f.Tensors[w.Name] = w
		f.Names = append(f.Names, w.Name)
	}
	m, err := whisper.LoadFile(f, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestEmulatedModel: a whole model on the metal backend, its kernels run by the host emulation,
// against the CPU backend: the random-weight micro model (f32 and f16) encodes two windows and
// decodes a 4-token prompt and four greedy steps for three sequences (one reordered, as beam
// search does); every step's logits agree within 1e-3 of their scale and the greedy picks are the
// same.
func TestEmulatedModel(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every kernel on the host, thread by thread")
	}
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16} {
		t.Run(dt.String(), func(t *testing.T) {
			be, d := emuBackend(t)
			cb, err := cpu.New(cpu.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer cb.Close()
			models := []*whisper.Model{synthModel(t, "micro", dt, cb), synthModel(t, "micro", dt, be)}
			c := models[0].Config
			rng := rand.New(rand.NewPCG(1, 2))
			mel := make([]float32, 2*c.NMels*2*c.NAudioCtx)
			for i := range mel {
				mel[i] = rng.Float32()*2 - 1
			}
			var logits [2][][]float32
			for mi, m := range models {
				enc, err := m.Encode(mel, 2)
				if err != nil {
					t.Fatal(err)
				}
				s, err := m.NewSession(enc, []int{0, 1, 1})
				if err != nil {
					t.Fatal(err)
				}
				toks := [][]int32{{50258, 50259, 50360, 50364}, {50258, 50259, 50360, 50364}, {50258, 50260, 50360, 50364}}
				for step := range 5 {
					l, err := s.Step(toks, false)
					if err != nil {
						t.Fatal(err)
					}
					logits[mi] = append(logits[mi], l)
					if step == 2 {
						if err := s.Reorder([]int{0, 2, 2}); err != nil {
							t.Fatal(err)
						}
					}
					// The next tokens: the CPU's greedy picks, the same for both backends.
					ref := logits[0][step]
					V := len(ref) / 3
					for r := range 3 {
						toks[r] = []int32{int32(tensor.Argmax(ref[r*V : (r+1)*V]))}
					}
				}
				s.Close()
				enc.Close()
			}
			for step := range logits[0] {
				a, b := logits[0][step], logits[1][step]
				V := len(a) / 3
				scale, worst := 0.0, 0.0
				for i := range a {
					scale = max(scale, math.Abs(float64(a[i])))
					worst = max(worst, math.Abs(float64(a[i]-b[i])))
				}
				if worst > 1e-3*(1+scale) {
					t.Errorf("step %d: logits differ by %g (scale %g)", step, worst, scale)
				}
				for r := range 3 {
					if pa, pb := tensor.Argmax(a[r*V:(r+1)*V]), tensor.Argmax(b[r*V:(r+1)*V]); pa != pb {
						t.Errorf("step %d row %d: greedy pick %d on the CPU, %d on metal", step, r, pa, pb)
					}
				}
				t.Logf("step %d: largest difference %.2g of scale %.3g", step, worst, scale)
			}
			t.Log(d.report())
			if len(d.errs) > 0 {
				t.Errorf("dispatch errors: %v", d.errs)
			}
		})
	}
}
