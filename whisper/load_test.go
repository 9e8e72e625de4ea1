package whisper

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

// TestLoadInPlace: on the CPU, Load keeps the weights it can in the file's mapping (the model
// then holds the file until Close) and computes exactly what a model of copied weights
// (LoadFile) does.
func TestLoadInPlace(t *testing.T) {
	cfg, err := weights.Arch("micro")
	if err != nil {
		t.Fatal(err)
	}
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16, tensor.Q5_0} {
		t.Run(dt.String(), func(t *testing.T) {
			path, err := WriteSynth(filepath.Join(t.TempDir(), "m.bin"), SynthOptions{Config: cfg, DType: dt, Seed: 3})
			if err != nil {
				t.Fatal(err)
			}
			b := newCPU(t)
			mapped, err := Load(path, b)
			if err != nil {
				t.Fatal(err)
			}
			if mapped.file == nil {
				t.Fatal("no weight refers to the file's mapping")
			}
			f, err := weights.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			copied, err := LoadFile(f, b)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if copied.file != nil {
				t.Fatal("LoadFile kept a reference to the file")
			}
			mel := make([]float32, cfg.NMels*2*cfg.NAudioCtx)
			for i := range mel {
				mel[i] = float32(math.Sin(float64(i) * 0.01))
			}
			var outs [2][]float32
			for i, m := range []*Model{mapped, copied} {
				enc, err := m.Encode(mel, 1)
				if err != nil {
					t.Fatal(err)
				}
				s, err := m.NewSession(enc, []int{0})
				if err != nil {
					t.Fatal(err)
				}
				logits, err := s.Step([][]int32{{50258, 50259, 50360, 50364}}, true)
				if err != nil {
					t.Fatal(err)
				}
				outs[i] = append(b.ToF32(enc.Out), logits...)
				s.Close()
				enc.Close()
			}
			for i := range outs[0] {
				if math.Float32bits(outs[0][i]) != math.Float32bits(outs[1][i]) {
					t.Fatalf("value %d: %g mapped, %g copied", i, outs[0][i], outs[1][i])
				}
			}
			if err := mapped.Close(); err != nil || mapped.file != nil {
				t.Fatalf("Close: %v, file %v", err, mapped.file)
			}
			copied.Close()
		})
	}
}
