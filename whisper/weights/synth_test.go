package weights

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/verbatimhq/verbatim/tensor"
)

func TestSynthDeterministic(t *testing.T) {
	a := synth(t, SynthOptions{Config: smallCfg, Seed: 42, DType: tensor.F16})
	b := synth(t, SynthOptions{Config: smallCfg, Seed: 42, DType: tensor.F16, Lazy: true})
	c := synth(t, SynthOptions{Config: smallCfg, Seed: 43, DType: tensor.F16})
	for i := range a {
		if b[i].Data != nil {
			t.Fatalf("lazy tensor %s has data", b[i].Name)
		}
		lazy, err := b[i].Load()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a[i].Data, lazy) {
			t.Errorf("%s: lazy data differs", a[i].Name)
		}
		if a[i].Name != "encoder.positional_embedding" && bytes.Equal(a[i].Data, c[i].Data) {
			t.Errorf("%s: seeds 42 and 43 give the same data", a[i].Name)
		}
	}
}

// TestSynthIndependentOfCores: a tensor of many chunks is the same on one core as on several.
func TestSynthIndependentOfCores(t *testing.T) {
	s := Spec{Name: "decoder.token_embedding.weight", Shape: []int{5 * synthChunk / 64, 64}}
	many := synthValues(9, s)
	prev := runtime.GOMAXPROCS(1)
	one := synthValues(9, s)
	runtime.GOMAXPROCS(prev)
	for i := range many {
		if math.Float32bits(one[i]) != math.Float32bits(many[i]) {
			t.Fatalf("value %d: %v on one core, %v on %d", i, one[i], many[i], prev)
		}
	}
}

// TestSynthSameValuesInBothFormats: an f16 model written as ggml (mixed f32/f16 storage) and as
// safetensors (all f16) has bit-identical values, and so does an f32 one.
func TestSynthSameValuesInBothFormats(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16} {
		t.Run(dt.String(), func(t *testing.T) {
			dir := t.TempDir()
			gpath, spath := filepath.Join(dir, "m.bin"), filepath.Join(dir, "st")
			if err := WriteGGML(gpath, smallCfg, synth(t, SynthOptions{Config: smallCfg, Seed: 5, DType: dt, Format: GGML, Lazy: true}), testMel(smallCfg), testVocab(10)); err != nil {
				t.Fatal(err)
			}
			if err := WriteSafetensors(spath, smallCfg, synth(t, SynthOptions{Config: smallCfg, Seed: 5, DType: dt, Format: Safetensors, Lazy: true})); err != nil {
				t.Fatal(err)
			}
			g, err := Open(gpath)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			s, err := Open(spath)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			mixed := false
			for name, gt := range g.Tensors {
				st := s.Tensors[name]
				if st.DType != dt {
					t.Errorf("%s: safetensors stores %s", name, st.DType)
				}
				mixed = mixed || gt.DType != st.DType
				a, _ := gt.Float32()
				b, _ := st.Float32()
				for i := range a {
					if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
						t.Fatalf("%s[%d]: ggml %v, safetensors %v", name, i, a[i], b[i])
					}
				}
			}
			if dt == tensor.F16 && !mixed {
				t.Error("the ggml f16 file stores every tensor as f16; whisper.cpp wants f32 vectors")
			}
		})
	}
}

func TestSynthGGMLStorage(t *testing.T) {
	ts := synth(t, SynthOptions{Config: smallCfg, Seed: 1, DType: tensor.Q5_1})
	want := map[string]tensor.DType{
		"encoder.positional_embedding":     tensor.F32,
		"decoder.positional_embedding":     tensor.F32,
		"encoder.conv1.weight":             tensor.F16,
		"encoder.conv1.bias":               tensor.F32,
		"encoder.blocks.0.attn_ln.weight":  tensor.F32,
		"encoder.blocks.0.attn.key.weight": tensor.Q5_1,
		"decoder.token_embedding.weight":   tensor.Q5_1,
		"decoder.blocks.1.mlp.2.weight":    tensor.Q5_1,
		"decoder.ln.bias":                  tensor.F32,
	}
	for name, dt := range want {
		if got := find(ts, name).DType; got != dt {
			t.Errorf("%s stored as %s, want %s", name, got, dt)
		}
	}
	f32 := synth(t, SynthOptions{Config: smallCfg, Seed: 1, Format: GGML})
	if got := find(f32, "encoder.conv1.weight").DType; got != tensor.F32 {
		t.Errorf("f32 model conv stored as %s", got)
	}
}

// TestSynthDistribution checks the oracle-micro recipe on the micro architecture.
func TestSynthDistribution(t *testing.T) {
	cfg := mustArch(t, "micro")
	ts := synth(t, SynthOptions{Config: cfg, Seed: 1})
	cases := []struct {
		name      string
		mean, std float64
		tol       float64
	}{
		{"decoder.token_embedding.weight", 0, 1, 0.01},
		{"decoder.positional_embedding", 0, 1, 0.05},
		{"decoder.blocks.0.mlp.0.weight", 0, 1 / 8.0, 0.01},    // fan_in 64
		{"decoder.blocks.0.mlp.2.weight", 0, 1 / 16.0, 0.005},  // fan_in 256
		{"encoder.conv1.weight", 0, 1 / math.Sqrt(384), 0.004}, // fan_in 128 x 3
		{"encoder.blocks.1.mlp.0.bias", 0, 0.1, 0.02},
		{"decoder.ln.weight", 1, 0.1, 0.04},
	}
	for _, c := range cases {
		v, err := find(ts, c.name).Float32()
		if err != nil {
			t.Fatal(err)
		}
		var sum, sq float64
		for _, x := range v {
			sum += float64(x)
		}
		mean := sum / float64(len(v))
		for _, x := range v {
			sq += (float64(x) - mean) * (float64(x) - mean)
		}
		std := math.Sqrt(sq / float64(len(v)))
		if math.Abs(mean-c.mean) > c.tol*3 || math.Abs(std-c.std) > c.tol {
			t.Errorf("%s: mean %.4f std %.4f, want %.4f %.4f", c.name, mean, std, c.mean, c.std)
		}
	}

	// Encoder positions: whisper's sinusoids, as in the oracle (computed there by PyTorch in f32).
	o, err := Open(fixture(t, "oracle-micro"))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	want, _ := o.Tensors["encoder.positional_embedding"].Float32()
	got, _ := find(ts, "encoder.positional_embedding").Float32()
	var maxErr float64
	for i := range want {
		maxErr = max(maxErr, math.Abs(float64(got[i]-want[i])))
	}
	if maxErr > 3e-5 {
		t.Errorf("encoder positions differ from the oracle's by %g", maxErr)
	}
}

func TestSynthErrors(t *testing.T) {
	odd := smallCfg
	odd.NAudioState, odd.NTextState, odd.NAudioHead, odd.NTextHead = 3, 3, 1, 1
	cases := []struct {
		name string
		opts SynthOptions
		msg  string
	}{
		{"bad config", SynthOptions{Config: Config{}}, "synth: config"},
		{"odd width", SynthOptions{Config: odd}, "even width"},
		{"quantized safetensors", SynthOptions{Config: smallCfg, DType: tensor.Q8_0, Format: Safetensors}, "only in ggml"},
		{"i32", SynthOptions{Config: smallCfg, DType: tensor.I32}, "not a model weight type"},
	}
	for _, c := range cases {
		if _, err := Synth(c.opts); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: Synth = %v, want %q", c.name, err, c.msg)
		}
	}
}

func TestWriteErrors(t *testing.T) {
	ts := synth(t, SynthOptions{Config: smallCfg, Seed: 1})
	mel := testMel(smallCfg)
	failing := synth(t, SynthOptions{Config: smallCfg, Seed: 1, Lazy: true})
	failing[len(failing)-1].Load = func() ([]byte, error) { return nil, errors.New("disk on fire") }
	cases := []struct {
		name  string
		write func(path string) error
		msg   string
	}{
		{"missing tensor", func(p string) error { return WriteGGML(p, smallCfg, ts[1:], mel, nil) }, `tensor "encoder.positional_embedding": missing`},
		{"extra tensor", func(p string) error {
			return WriteGGML(p, smallCfg, append(ts[:len(ts):len(ts)], &Tensor{Name: "x", Shape: []int{1}, Data: make([]byte, 4)}), mel, nil)
		}, `tensor "x": unknown`},
		{"short data", func(p string) error {
			bad := append(without(ts, "decoder.ln.bias"), &Tensor{Name: "decoder.ln.bias", Shape: []int{32}, Data: make([]byte, 4)})
			return WriteGGML(p, smallCfg, bad, mel, nil)
		}, "4 bytes of data, want 128"},
		{"mel size", func(p string) error { return WriteGGML(p, smallCfg, ts, mel[1:], nil) }, "mel filter values"},
		{"vocab size", func(p string) error { return WriteGGML(p, smallCfg, ts, mel, testVocab(101)) }, "more than n_vocab"},
		{"quantized safetensors", func(p string) error {
			return WriteSafetensors(p+".safetensors", smallCfg, synth(t, SynthOptions{Config: smallCfg, DType: tensor.Q8_0}))
		}, "safetensors cannot store q8_0"},
		{"failing load", func(p string) error { return WriteGGML(p, smallCfg, failing, mel, nil) }, "disk on fire"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			err := c.write(filepath.Join(dir, "m.bin"))
			if err == nil || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("write = %v, want %q", err, c.msg)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("left %d files behind (%s)", len(entries), entries[0].Name())
			}
		})
	}
}

func BenchmarkSynth(b *testing.B) {
	cfg := mustArch(b, "micro")
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16, tensor.Q8_0} {
		b.Run("micro/"+dt.String(), func(b *testing.B) {
			params := cfg.ParamCount()
			for b.Loop() {
				if _, err := Synth(SynthOptions{Config: cfg, Seed: 1, DType: dt}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(params)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mparams/s")
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	path := filepath.Join(b.TempDir(), "micro.bin")
	cfg := mustArch(b, "micro")
	if err := WriteGGML(path, cfg, synth(b, SynthOptions{Config: cfg, Seed: 1, DType: tensor.F16, Format: GGML}), testMel(cfg), testVocab(50257)); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		f, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}
