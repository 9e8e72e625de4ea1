package whisper

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/verbatimhq/verbatim/cpu"
	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper/tokenizer"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

// oracleDir holds the oracle-micro fixtures: random-weight micro Whisper and outputs of Hugging
// Face transformers for it (see its README.md).
const oracleDir = "testdata/oracle-micro"

type oracleGolden struct {
	Prefix       []int32 `json:"prefix"`
	Forced       []int32 `json:"forced_tokens"`
	Continuation []int32 `json:"argmax_continuation"`
}

type oracle struct {
	golden     oracleGolden
	mel        []float32 // [128, 3000]
	encoder    []float32 // [1500, 64]
	prefixLog  []float32 // [4, NVocab]
	forcedLogs []float32 // [16, NVocab]
}

func readOracle(t testing.TB) *oracle {
	t.Helper()
	if _, err := os.Stat(oracleDir); err != nil {
		t.Fatalf("oracle fixtures missing: %v", err)
	}
	o := &oracle{}
	raw, err := os.ReadFile(filepath.Join(oracleDir, "jfk.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &o.golden); err != nil {
		t.Fatalf("jfk.golden.json: %v", err)
	}
	o.mel = readF32(t, filepath.Join(oracleDir, "jfk.mel.f32"))
	o.encoder = readF32(t, filepath.Join(oracleDir, "jfk.encoder.f32"))
	o.prefixLog = readF32(t, filepath.Join(oracleDir, "jfk.prefix_logits.f32"))
	o.forcedLogs = readF32(t, filepath.Join(oracleDir, "jfk.forced_logits.f32"))
	return o
}

func readF32(t testing.TB, path string) []float32 {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw)%4 != 0 {
		t.Fatalf("%s: %d bytes, not float32s", path, len(raw))
	}
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

func newCPU(t testing.TB) tensor.Backend {
	t.Helper()
	b, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// compareRows checks got against want, both rows of length n: max-abs error at most
// rel * max|want| and, if argmax is set, the same argmax in every row. It reports where the
// worst mismatch is, not a dump.
func compareRows(t testing.TB, what string, got, want []float32, n int, rel float64, argmax bool) {
	t.Helper()
	if err := diffRows(t, got, want, n, rel, argmax); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

// diffRows is compareRows's check; it logs the error it measured.
func diffRows(t testing.TB, got, want []float32, n int, rel float64, argmax bool) error {
	t.Helper()
	if len(got) != len(want) {
		return fmt.Errorf("%d values, want %d", len(got), len(want))
	}
	var maxRef, maxErr float64
	worst := 0
	for i := range want {
		maxRef = max(maxRef, math.Abs(float64(want[i])))
		e := math.Abs(float64(got[i]) - float64(want[i]))
		if e > maxErr || math.IsNaN(e) {
			maxErr, worst = e, i
			if math.IsNaN(e) {
				maxErr = math.Inf(1)
			}
		}
	}
	t.Logf("max-abs error %.3g = %.2g x max|ref| %.3g", maxErr, maxErr/maxRef, maxRef)
	if tol := rel * maxRef; maxErr > tol {
		return fmt.Errorf("max-abs error %.3g > %.3g (= %g x max|ref| %.3g) at row %d col %d: got %g, want %g",
			maxErr, tol, rel, maxRef, worst/n, worst%n, got[worst], want[worst])
	}
	if argmax {
		for r := 0; r < len(want)/n; r++ {
			g, w := benchArgmax(got[r*n:(r+1)*n]), benchArgmax(want[r*n:(r+1)*n])
			if g != w {
				return fmt.Errorf("row %d: argmax %d (%g), want %d (%g)", r, g, got[r*n+g], w, want[r*n+w])
			}
		}
	}
	return nil
}

// tol is the oracle's tolerance for an f32 engine: max-abs error <= 1e-3 x max|reference|.
const tol = 1e-3

func TestParity(t *testing.T) {
	o := readOracle(t)
	b := newCPU(t)
	models := []struct{ name, path string }{
		{"safetensors", oracleDir},
		{"ggml", ggmlTwin(t)},
	}
	for _, mc := range models {
		t.Run(mc.name, func(t *testing.T) {
			m, err := Load(mc.path, b)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if m.Arch != "micro" {
				t.Errorf("arch %q, want micro", m.Arch)
			}
			testParity(t, m, o)
		})
	}
}

func testParity(t *testing.T, m *Model, o *oracle) {
	nv := m.Config.NVocab
	enc, err := m.Encode(o.mel, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	t.Run("encoder", func(t *testing.T) {
		got := m.Backend().ToF32(enc.Out)
		compareRows(t, "encoder output", got, o.encoder, m.Config.NAudioState, tol, false)
	})

	newSession := func(t *testing.T) *Session {
		t.Helper()
		s, err := m.NewSession(enc, []int{0})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	step := func(t *testing.T, s *Session, toks []int32, all bool) []float32 {
		t.Helper()
		l, err := s.Step([][]int32{toks}, all)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Clone(l) // the session reuses its logits buffer on the next step
	}

	t.Run("prefix", func(t *testing.T) {
		got := step(t, newSession(t), o.golden.Prefix, true)
		compareRows(t, "prefix logits", got, o.prefixLog, nv, tol, true)
		last := step(t, newSession(t), o.golden.Prefix, false)
		compareRows(t, "prefix logits, last position only", last, o.prefixLog[3*nv:], nv, tol, true)
	})
	t.Run("forced/at-once", func(t *testing.T) {
		got := step(t, newSession(t), o.golden.Forced, true)
		compareRows(t, "forced logits", got, o.forcedLogs, nv, tol, true)
	})
	t.Run("forced/one-at-a-time", func(t *testing.T) {
		s := newSession(t)
		var got []float32
		for i, tok := range o.golden.Forced {
			got = append(got, step(t, s, []int32{tok}, false)...)
			if s.Len() != i+1 {
				t.Fatalf("Len %d after %d steps", s.Len(), i+1)
			}
		}
		compareRows(t, "forced logits through the KV cache", got, o.forcedLogs, nv, tol, true)
	})
	t.Run("forced/truncate", func(t *testing.T) {
		s := newSession(t)
		step(t, s, o.golden.Forced, false)
		if err := s.Truncate(4); err != nil {
			t.Fatal(err)
		}
		got := step(t, s, o.golden.Forced[4:], true)
		compareRows(t, "forced logits after Truncate(4)", got, o.forcedLogs[4*nv:], nv, tol, true)
	})
	t.Run("continuation", func(t *testing.T) {
		s := newSession(t)
		logits := step(t, s, o.golden.Prefix, false)
		var got []int32
		for range o.golden.Continuation {
			tok := int32(benchArgmax(logits))
			got = append(got, tok)
			logits = step(t, s, []int32{tok}, false)
		}
		for i := range got {
			if got[i] != o.golden.Continuation[i] {
				t.Fatalf("greedy continuation differs at step %d: got %v, want %v", i, got, o.golden.Continuation)
			}
		}
	})
}

// ggmlTwin writes the oracle's weights as a whisper.cpp ggml file (the ggml header's mel filters
// and vocabulary do not affect the forward pass: zeros and the vocabulary of the embedded ranks).
func ggmlTwin(t *testing.T) string {
	t.Helper()
	f, err := weights.Open(oracleDir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var tensors []*weights.Tensor
	for _, s := range f.Config.Layout() {
		tensors = append(tensors, f.Tensors[s.Name])
	}
	tok, err := tokenizer.New(f.Config.NVocab)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "micro.ggml.bin")
	filters := make([]float32, f.Config.NMels*201)
	if err := weights.WriteGGML(path, f.Config, tensors, filters, tok.Vocab()); err != nil {
		t.Fatal(err)
	}
	return path
}
