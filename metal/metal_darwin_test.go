//go:build darwin

package metal

import (
	"math/rand/v2"
	"testing"

	"github.com/verbatimhq/verbatim/cpu"
	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/tensor/tensortest"
	"github.com/verbatimhq/verbatim/whisper"
)

// openSystem opens the metal backend on this Mac's GPU, or skips.
func openSystem(t *testing.T) *Backend {
	t.Helper()
	be, err := Open()
	if err != nil {
		t.Skipf("no Metal device: %v", err)
	}
	t.Cleanup(func() { be.Close() })
	return be
}

// TestMetalConformance: the conformance suite through Metal itself (kernels.metal compiled by
// Metal's compiler, run on the GPU). Written before any Mac ran it: the first run on Apple
// hardware is its first test (see the README).
func TestMetalConformance(t *testing.T) {
	tensortest.Run(t, openSystem(t), tensortest.Options{Abs: 1e-4, Rel: 1e-4})
}

// TestMetalModel is TestEmulatedModel through Metal itself: the micro model from a ggml file
// (weights wrapped in place) against the CPU backend, logits within 1e-3 of their scale.
func TestMetalModel(t *testing.T) {
	be := openSystem(t)
	cb, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	path := synthFile(t, "micro", tensor.F16)
	models := []*whisper.Model{load(t, path, cb), load(t, path, be)}
	c := models[0].Config
	rng := rand.New(rand.NewPCG(1, 2))
	mel := make([]float32, c.NMels*2*c.NAudioCtx)
	for i := range mel {
		mel[i] = rng.Float32()*2 - 1
	}
	var logits [2][]float32
	for i, m := range models {
		enc, err := m.Encode(mel, 1)
		if err != nil {
			t.Fatal(err)
		}
		s, err := m.NewSession(enc, []int{0})
		if err != nil {
			t.Fatal(err)
		}
		if logits[i], err = s.Step([][]int32{{50258, 50259, 50360, 50364}}, false); err != nil {
			t.Fatal(err)
		}
		s.Close()
		enc.Close()
	}
	scale, worst := float32(0), float32(0)
	for i, a := range logits[0] {
		scale = max(scale, abs32(a))
		worst = max(worst, abs32(a-logits[1][i]))
	}
	if worst > 1e-3*(1+scale) {
		t.Errorf("logits differ by %g (scale %g)", worst, scale)
	}
	t.Logf("largest difference %.2g of scale %.3g", worst, scale)
}

func abs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}
