package weights

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/verbatimhq/verbatim/tensor"
)

// Run the fuzzers with a short minimization budget, e.g.
//
//	go test -run XXX -fuzz FuzzOpenGGML -fuzztime 30s -fuzzminimizetime 1000x ./whisper/weights
//
// With the default 60 s per new input, progress reports stall while the fuzzer minimizes.

// allocLimit bounds what Open may allocate for an input of n bytes: a small constant plus a
// multiple of the input (vocabulary slices, mel filters, the layout), never what a header claims.
func allocLimit(n int) uint64 { return 16<<20 + 64*uint64(n) }

// openFuzzed opens path and checks the properties every input must have: no panic, bounded
// allocation, and consistent tensors when it opens.
func openFuzzed(t *testing.T, path string, n int) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f, err := Open(path)
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > allocLimit(n) {
		t.Fatalf("Open allocated %d bytes for a %d-byte file", got, n)
	}
	if err != nil {
		if _, ok := err.(*Error); !ok {
			t.Fatalf("error %v is a %T, not *Error", err, err)
		}
		return
	}
	defer f.Close()
	if len(f.Names) != len(f.Tensors) || len(f.Tensors) != len(f.Config.Layout()) {
		t.Fatalf("%d names, %d tensors", len(f.Names), len(f.Tensors))
	}
	for _, tn := range f.Tensors {
		if len(tn.Data) != nbytes(tn.DType, tn.Shape) {
			t.Fatalf("tensor %s: %d bytes", tn.Name, len(tn.Data))
		}
		if _, err := tn.Float32(); err != nil {
			t.Fatal(err)
		}
	}
}

func FuzzOpenGGML(f *testing.F) {
	valid := ggmlBytes(f, tinyCfg, synth(f, SynthOptions{Config: tinyCfg, Seed: 1}))
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	f.Add(ggmlBytes(f, tinyCfg, nil))
	// Seeds stay small: the fuzzer minimizes every new input, one file write per try.
	b, err := os.ReadFile(fixture(f, "ggml-header-tiny.en.bin"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b[:512])
	path := filepath.Join(f.TempDir(), "model.bin")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		openFuzzed(t, path, len(data))
	})
}

func FuzzOpenSafetensors(f *testing.F) {
	dir := f.TempDir()
	if err := WriteSafetensors(dir, tinyCfg, synth(f, SynthOptions{Config: tinyCfg, Seed: 1, DType: tensor.F16})); err != nil {
		f.Fatal(err)
	}
	valid, err := os.ReadFile(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-2])
	f.Add(stFile(`{"__metadata__":{"format":"pt"}}`, 0))
	f.Add(stFile(`{"model.decoder.layer_norm.bias":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, 16))
	f.Add(stFile(`{"proj_out.weight":{"dtype":"BF16","shape":[2147483647,2147483647],"data_offsets":[0,1]}}`, 1))
	path := filepath.Join(dir, "model.safetensors")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		openFuzzed(t, path, len(data))
	})
}
