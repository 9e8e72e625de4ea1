package metal

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/verbatimhq/verbatim/cpu"
	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

// synthFile writes a random-weight ggml model of arch in dtype dt.
func synthFile(t *testing.T, arch string, dt tensor.DType) string {
	t.Helper()
	cfg, err := weights.Arch(arch)
	if err != nil {
		t.Fatal(err)
	}
	path, err := whisper.WriteSynth(filepath.Join(t.TempDir(), arch+".bin"), whisper.SynthOptions{Config: cfg, Seed: 5, DType: dt, Format: weights.GGML})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// load loads the model at path on b (whisper.Load: the file mapped, weights in place where b
// takes them).
func load(t *testing.T, path string, b tensor.Backend) *whisper.Model {
	t.Helper()
	m, err := whisper.Load(path, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestEmulatedModel: a whole model on the metal backend, its kernels run by the host emulation,
// against the CPU backend: the random-weight micro model (f32 and f16, a ggml file loaded as
// users load one: mapped, the weight matrices wrapped in place) encodes two windows and decodes
// a 4-token prompt and four greedy steps for three sequences (one reordered, as beam search
// does); every step's logits agree within 1e-3 of their scale and the greedy picks are the same.
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
			path := synthFile(t, "micro", dt)
			models := []*whisper.Model{load(t, path, cb), load(t, path, be)}
			if d.wrapped == 0 {
				t.Error("no weight was wrapped in place: the model's matrices were copied")
			}
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
			t.Logf("%d weight buffers wrapped in place; %s", d.wrapped, d.report())
			if len(d.errs) > 0 {
				t.Errorf("dispatch errors: %v", d.errs)
			}
		})
	}
}
