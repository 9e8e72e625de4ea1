package cuda

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/verbatimhq/verbatim/audio"
	"github.com/verbatimhq/verbatim/cpu"
	"github.com/verbatimhq/verbatim/internal/testkit"
	"github.com/verbatimhq/verbatim/pipeline"
	"github.com/verbatimhq/verbatim/sidecar"
	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper"
)

// TestSameAlgorithmAsCPU: the same files transcribed with the defaults (pipeline.DefaultOptions,
// as `transcribe --model mini` runs) on the CPU and on the GPU use the same algorithm, which the
// run records say, and give the same segments: the same text, and times within 0.1 s (the GPU
// rounds activations to f16). The files are the mini sample, and 70 s of it three times over
// with pauses (several windows, the seek), with VAD (the default) and without. The CPU runs with
// its activations in float32 (cpu.Options.F32Activations), as the GPU's are.
func TestSameAlgorithmAsCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("transcribes with mini on both backends")
	}
	// SAMEALGO_CUDA_OPTIONS (backend options, as --backend-options takes them) runs the GPU side
	// with other switches, to tell a kernel's difference from rounding's (pick=off: beam search
	// ranked on the host from the logits).
	opts, err := ParseOptions(os.Getenv("SAMEALGO_CUDA_OPTIONS"))
	if err != nil {
		t.Fatal(err)
	}
	g := open(t, opts) // skips without a device
	const model = "../mini/model/ggml-mini.bin"
	dir := t.TempDir()
	pcm, err := audio.LoadWAV("../testdata/mini-sample.wav")
	if err != nil {
		t.Fatal(err)
	}
	sample := filepath.Join(dir, "sample.wav")
	long := filepath.Join(dir, "long.wav")
	s := audio.Resample(pcm, 16000).Samples
	var l []float32
	for range 3 {
		l = append(append(l, s...), make([]float32, 16000*11)...)
	}
	testkit.WriteWAV(t, sample, s, 16000)
	testkit.WriteWAV(t, long, l, 16000)
	v := testkit.VAD(t)
	run := func(b tensor.Backend, noVAD bool, out string) []*sidecar.Document {
		m, err := whisper.Load(model, b)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		r, err := pipeline.NewRunner(m, model, v, "test")
		if err != nil {
			t.Fatal(err)
		}
		o := pipeline.DefaultOptions()
		o.Decode.Language = "en"
		o.NoVAD, o.OutDir, o.Formats = noVAD, out, []sidecar.Format{sidecar.FormatJSON}
		var docs []*sidecar.Document
		for _, res := range pipeline.Pool(t.Context(), []*pipeline.Runner{r}, []string{sample, long}, o, nil) {
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			docs = append(docs, testkit.ReadDocument(t, res.Outcome.Outputs[len(res.Outcome.Outputs)-1]))
		}
		return docs
	}
	// The CPU with its activations in float32: by default it rounds them to 8-bit blocks for a
	// quantized weight's products with up to 8 rows (mini's decoding, as whisper.cpp does),
	// which the GPU never does. Near a tie that alone turns a beam: mini's long file without VAD
	// gave other text in three of its windows (calls 16-18, every GPU run before them), the
	// same with f32 activations (and with several files at once, whose 10 rows a step took the
	// float32 GEMM).
	c, err := cpu.New(cpu.Options{F32Activations: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, noVAD := range []bool{false, true} {
		onCPU := run(c, noVAD, t.TempDir())
		onGPU := run(g, noVAD, t.TempDir())
		for i, want := range onCPU {
			name := []string{"sample", "long"}[i]
			if noVAD {
				name += " without VAD"
			}
			sameSegments(t, name, want, onGPU[i])
		}
	}
}

// sameSegments compares the GPU's document got with the CPU's want: both record the sequential
// windows and their backends, and give the same segments (the same text, times within 0.1 s).
// When the counts differ it logs both lists, so as to tell where the two first part: a window
// decided otherwise (no speech, a fallback) or text that differs.
func sameSegments(t *testing.T, name string, want, got *sidecar.Document) {
	t.Helper()
	wd, gd := want.Provenance.Settings["decode"], got.Provenance.Settings["decode"]
	if wm, gm := wd.(map[string]any)["windows"], gd.(map[string]any)["windows"]; wm != "sequential" || gm != wm {
		t.Errorf("%s: windows %v on the CPU, %v on the GPU; want sequential on both", name, wm, gm)
	}
	if want.Provenance.Backend.Name != "cpu" || got.Provenance.Backend.Name != "cuda" {
		t.Errorf("%s: backends recorded %q and %q", name, want.Provenance.Backend.Name, got.Provenance.Backend.Name)
	}
	if len(want.Segments) == 0 {
		t.Fatalf("%s: no segments on the CPU", name)
	}
	if len(got.Segments) != len(want.Segments) {
		for _, side := range []struct {
			name string
			doc  *sidecar.Document
		}{{"CPU", want}, {"GPU", got}} {
			for k, sg := range side.doc.Segments {
				t.Logf("%s %s segment %d: [%.2f, %.2f] T=%.1f logprob %.3f no-speech %.3f ratio %.2f %q", name, side.name, k,
					sg.Start, sg.End, sg.Temperature, sg.AvgLogProb, sg.NoSpeechProb, sg.CompressionRatio, sg.Text)
			}
		}
		t.Errorf("%s: %d segments on the GPU, %d on the CPU", name, len(got.Segments), len(want.Segments))
		return
	}
	same := true
	worst := 0.0
	for k, ws := range want.Segments {
		gs := got.Segments[k]
		if gs.Text != ws.Text {
			t.Errorf("%s: segment %d: %q on the GPU, %q on the CPU", name, k, gs.Text, ws.Text)
			same = false
		}
		worst = max(worst, math.Abs(gs.Start-ws.Start), math.Abs(gs.End-ws.End))
	}
	if worst > 0.1 {
		t.Errorf("%s: segment times differ by up to %.3f s", name, worst)
		same = false
	}
	if same {
		t.Logf("%s: %d segments, the same text, times within %.3f s", name, len(want.Segments), worst)
	}
}
