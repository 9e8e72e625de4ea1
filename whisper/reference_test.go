package whisper

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/verbatimhq/verbatim/audio"
	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper/mel"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

// The goldens in testdata/reference/ were made by tools/reference/goldens.py with Hugging Face
// transformers (f32, eager attention, TF32 off) on an NVIDIA H200 for the model that
// `transcribe models synth --arch tiny --dtype f32 --seed 1 --format safetensors` writes; see
// testdata/reference/README.md for the exact command.
const refDir = "testdata/reference"

type refGolden struct {
	Producer     string  `json:"producer"`
	NSamples     int     `json:"n_samples"`
	MelShape     []int   `json:"mel_shape"`
	EncoderShape []int   `json:"encoder_shape"`
	Forced       []int32 `json:"forced_tokens"`
	LogitsShape  []int   `json:"logits_shape"`
	Greedy       struct {
		Tokens []int  `json:"tokens"`
		Text   string `json:"text"`
	} `json:"greedy_timestamps"`
}

// writeSynth writes the seed-1 f32 model of arch in format and returns its path. Each model is
// written once per test binary, into synthFiles.dir (TestMain removes it), and shared by the
// tests that read it: TestReferenceTiny and TestReferenceTinyGreedy load the same 150 MB tiny
// ggml file, seconds to make under the race detector.
func writeSynth(t testing.TB, arch string, format weights.Format) string {
	t.Helper()
	cfg, err := weights.Arch(arch)
	if err != nil {
		t.Fatal(err)
	}
	name := arch + ".bin"
	if format == weights.Safetensors {
		name = arch + "-safetensors"
	}
	synthFiles.Lock()
	defer synthFiles.Unlock()
	if p, ok := synthFiles.paths[name]; ok {
		return p
	}
	if synthFiles.dir == "" {
		if synthFiles.dir, err = os.MkdirTemp("", "whisper-test-"); err != nil {
			t.Fatal(err)
		}
	}
	p, err := WriteSynth(filepath.Join(synthFiles.dir, name), SynthOptions{Config: cfg, DType: tensor.F32, Seed: 1, Format: format})
	if err != nil {
		t.Fatal(err)
	}
	synthFiles.paths[name] = p
	return p
}

// synthFiles are writeSynth's models by file name, in dir.
var synthFiles = struct {
	sync.Mutex
	dir   string
	paths map[string]string
}{paths: map[string]string{}}

// TestReferenceTiny compares the engine (CPU, f32) with transformers on the synthetic tiny model,
// loaded from both file formats: log-mel features, encoder output and the decoder logits at every
// position of a forced sequence, for jfk.wav and a synthetic non-speech signal. The two formats
// must give bit-identical outputs.
func TestReferenceTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("writes two 150 MB models")
	}
	b := newCPU(t)
	var models [2]*Model
	for i, f := range []weights.Format{weights.Safetensors, weights.GGML} {
		m, err := Load(writeSynth(t, "tiny", f), b)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		models[i] = m
	}
	inputs := map[string]string{"jfk": "../testdata/jfk.wav", "synth": filepath.Join(refDir, "synth.wav")}
	for name, wav := range inputs {
		t.Run(name, func(t *testing.T) {
			var g refGolden
			raw, err := os.ReadFile(filepath.Join(refDir, "tiny", name+".golden.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &g); err != nil {
				t.Fatal(err)
			}
			pcm, err := audio.LoadWAV(wav)
			if err != nil {
				t.Fatal(err)
			}
			if len(pcm.Samples) != g.NSamples {
				t.Fatalf("%s: %d samples, the golden was made from %d", wav, len(pcm.Samples), g.NSamples)
			}
			base := filepath.Join(refDir, "tiny", name)

			features := hfWindow(pcm.Samples, 80)
			checkAbs(t, "mel", features, readF32(t, base+".mel.f32"), mel.ChunkFrames, 1e-4)

			var outs [2][]float32
			for i, m := range models {
				enc, err := m.Encode(features, 1)
				if err != nil {
					t.Fatal(err)
				}
				encOut := b.ToF32(enc.Out)
				s, err := m.NewSession(enc, []int{0})
				if err != nil {
					t.Fatal(err)
				}
				logits, err := s.Step([][]int32{g.Forced}, true)
				if err != nil {
					t.Fatal(err)
				}
				s.Close()
				enc.Close()
				if i == 0 {
					checkAbs(t, "encoder", encOut, readF32(t, base+".encoder.f32"), m.Config.NAudioState, 1e-3)
					checkAbs(t, "logits", logits, readF32(t, base+".logits.f32"), m.Config.NVocab, 1e-3)
					checkArgmax(t, logits, readF32(t, base+".logits.f32"), m.Config.NVocab)
				}
				outs[i] = append(encOut, logits...)
			}
			for j := range outs[0] {
				if math.Float32bits(outs[0][j]) != math.Float32bits(outs[1][j]) {
					t.Fatalf("safetensors and ggml differ at output %d: %g vs %g", j, outs[0][j], outs[1][j])
				}
			}
		})
	}
}

// checkAbs asserts max-abs error <= tol (an absolute bound, as the engine issue states it) and
// reports the worst position as (row, col) of rows of length n.
func checkAbs(t *testing.T, what string, got, want []float32, n int, tol float64) {
	t.Helper()
	var maxRef float64
	for _, w := range want {
		maxRef = max(maxRef, math.Abs(float64(w)))
	}
	compareRows(t, what, got, want, n, tol/maxRef, false)
}

func checkArgmax(t *testing.T, got, want []float32, n int) {
	t.Helper()
	for r := 0; r < len(want)/n; r++ {
		g, w := benchArgmax(got[r*n:(r+1)*n]), benchArgmax(want[r*n:(r+1)*n])
		if g != w {
			t.Errorf("position %d: argmax %d, want %d", r, g, w)
		}
	}
}

// TestReferenceTinyGreedy decodes the first window greedily with timestamps (reference rules:
// language en, beam 1, no fallback) and compares the token sequence with transformers'
// generate(return_timestamps=True), which stopped after 220 new tokens.
func TestReferenceTinyGreedy(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 150 MB model")
	}
	b := newCPU(t)
	m, err := Load(writeSynth(t, "tiny", weights.GGML), b)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for name, wav := range map[string]string{"jfk": "../testdata/jfk.wav", "synth": filepath.Join(refDir, "synth.wav")} {
		t.Run(name, func(t *testing.T) {
			var g refGolden
			raw, err := os.ReadFile(filepath.Join(refDir, "tiny", name+".golden.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &g); err != nil {
				t.Fatal(err)
			}
			pcm, err := audio.LoadWAV(wav)
			if err != nil {
				t.Fatal(err)
			}
			opts := DefaultOptions()
			opts.Language, opts.BeamSize, opts.BestOf, opts.NoFallback = "en", 1, 1, true
			opts.Temperatures = []float64{0}
			in := testInput(t, m, opts)
			// transformers pads the audio to 30 s before its features (silence after the speech,
			// not openai's zero frames) and limits no timestamp: a full window of audio.
			w := &window{samples: append(slices.Clone(pcm.Samples), make([]float32, mel.ChunkSamples-len(pcm.Samples))...)}
			enc, err := m.Encode(in.mels([]*window{w}), 1)
			if err != nil {
				t.Fatal(err)
			}
			defer enc.Close()
			task, err := in.task(w, in.sot, nil, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			s, err := m.NewSession(enc, []int{0})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			res, err := task.run(s)
			if err != nil {
				t.Fatal(err)
			}
			want := g.Greedy.Tokens
			if len(res.tokens) < len(want) {
				t.Fatalf("decoded %d tokens, transformers %d", len(res.tokens), len(want))
			}
			for i := range want {
				if res.tokens[i] != want[i] {
					t.Fatalf("token %d: %d, transformers %d (first %d agree)", i, res.tokens[i], want[i], i)
				}
			}
			t.Logf("%d of %d tokens equal to transformers' (it stopped at 220 new tokens; we decoded %d)",
				len(want), len(want), len(res.tokens))
		})
	}
}
