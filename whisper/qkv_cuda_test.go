package whisper

import (
	"math"
	"strings"
	"testing"

	"github.com/verbatimhq/verbatim/cuda"
)

// TestQKVCUDA: on the GPU a decoder's self-attention weights load as one tensor
// (attnWeights.qkv) and a batched step of one token a sequence runs its three projections as one
// GEMM and a split (k_qkv_rows); with qkv=three they load apart and run as three. A prompt, then
// five steps of 24 sequences (three windows of eight, past the small-row kernels) must give the
// same logits both ways within f16 rounding, and the fused run must have run the split. Skips
// without a CUDA device.
func TestQKVCUDA(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a model")
	}
	cfg, path := cudaTiny(t, 9)
	feats := randomMel(cfg, 3)
	const seqs = 24
	run := func(opts cuda.Options, fused bool) [][]float32 {
		m := loadCUDA(t, opts, path)
		if got := m.dec.blocks[0].attn.qkv != nil; got != fused {
			t.Fatalf("options %q: self-attention weights loaded as one: %v, want %v", opts.String(), got, fused)
		}
		enc, err := m.Encode(feats, 3)
		if err != nil {
			t.Fatal(err)
		}
		defer enc.Close()
		windows := make([]int, seqs)
		for i := range windows {
			windows[i] = i / 8
		}
		s, err := m.NewSession(enc, windows)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var out [][]float32
		toks := make([][]int32, seqs)
		for i := range toks {
			toks[i] = []int32{50258, 50259 + int32(i%5), 50359}
		}
		for step := range 6 {
			lg, err := s.Step(toks, false)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, lg)
			for i := range toks {
				toks[i] = []int32{int32((step*131 + i*17) % 50000)}
			}
		}
		if opts.Profile && fused && !strings.Contains(m.b.(*cuda.Backend).Profile(), "k_qkv_rows") {
			t.Errorf("the fused run did not split a fused product (k_qkv_rows not in its profile)")
		}
		return out
	}
	three := run(cuda.Options{NoQKV: true}, false)
	one := run(cuda.Options{}, true)
	prof := run(cuda.Options{Profile: true}, true)
	for step := range three {
		var worst, scale float64
		for i, w := range three[step] {
			scale = max(scale, math.Abs(float64(w)))
			worst = max(worst, math.Abs(float64(one[step][i]-w)), math.Abs(float64(prof[step][i]-w)))
		}
		if tol := 2e-3*scale + 2e-3; !(worst <= tol) {
			t.Errorf("step %d: logits differ by up to %.3g between one and three projections (largest |logit| %.3g, tolerance %.3g)", step, worst, scale, tol)
		}
		t.Logf("step %d: largest difference %.3g, largest |logit| %.3g", step, worst, scale)
	}
}
