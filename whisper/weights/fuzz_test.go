package weights

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"runtime/metrics"
	"testing"

	"github.com/verbatimhq/verbatim/tensor"
)

// The fuzzers parse from memory (openReaderAt), never from files: an input costs a few
// microseconds, tens when it holds a whole model. Run them as any other, e.g.
//
//	go test -run '^$' -fuzz '^FuzzOpenGGML$' -fuzztime 60s -parallel 2 ./whisper/weights
//
// FuzzOpenGGML and FuzzOpenSafetensors cap the minimization of new inputs (see
// minimizeBudget) unless -fuzzminimizetime is given.

// minimizeBudget sets -fuzzminimizetime to budget unless the command line sets it. Go's
// minimizer tries removing every range of an input's bytes, work that grows with the square of
// its size: for an input that holds a whole model (4-6 KB even for fuzzCfg, most of it tensor
// names) it does not finish within the default 60 s, and while it runs that worker does not
// fuzz and the progress line counts none of its executions (measured: 0-90 inputs/s over 20 s
// with the default, 15,000-45,000 with 10000x). Ten thousand tries still cut the tail and try
// removing each byte of such an input. The coordinator reads the flag when f.Fuzz starts, so
// this must run before it.
func minimizeBudget(f *testing.F, budget string) {
	const name = "test.fuzzminimizetime"
	given := false
	flag.Visit(func(fl *flag.Flag) { given = given || fl.Name == name })
	if given {
		return
	}
	if err := flag.Set(name, budget); err != nil {
		f.Fatalf("set -%s: %v", name, err)
	}
}

// modelMinimizeBudget is the minimization budget of the model fuzzers.
const modelMinimizeBudget = "10000x"

// allocLimit bounds what Open may allocate for an input of n bytes: a small constant plus a
// multiple of the input (vocabulary slices, mel filters, the layout, tensors copied from a
// reader), never what a header claims.
func allocLimit(n int) uint64 { return 16<<20 + 64*uint64(n) }

// allocSample reads the bytes allocated so far by the process. Unlike runtime.ReadMemStats
// (about 50 µs, stopping the world) it costs well under a microsecond, so every input is
// checked. Small objects are counted a span at a time as their spans are handed out, which can
// only add to the count; large ones, which an unbounded allocation would be, are counted
// exactly.
var allocSample = []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}

func allocated() uint64 {
	metrics.Read(allocSample)
	return allocSample[0].Value.Uint64()
}

// openFuzzed parses data as a model with config as its config.json and checks the properties
// every input must have: no panic, bounded allocation, errors that are *Error, the same outcome
// whether the bytes are read through an io.ReaderAt or viewed in place (a file mapping), a
// header read that agrees with the full one, and consistent tensors when it opens.
func openFuzzed(t *testing.T, data, config []byte) {
	n := int64(len(data))
	before := allocated()
	f, err := openReaderAt("fuzz", bytes.NewReader(data), n, config)
	if got := allocated() - before; got > allocLimit(len(data)) {
		t.Fatalf("OpenReaderAt allocated %d bytes for %d bytes of input", got, len(data))
	}
	before = allocated()
	g, gerr := openReaderAt("fuzz", memory(data), n, config)
	if got := allocated() - before; got > allocLimit(len(data)) {
		t.Fatalf("OpenReaderAt in place allocated %d bytes for %d bytes of input", got, len(data))
	}
	h, herr := parse(newSource("fuzz", memory(data), n), func() ([]byte, error) { return config, nil }, true)
	for _, e := range []error{err, gerr, herr} {
		var we *Error
		if e != nil && !errors.As(e, &we) {
			t.Fatalf("error %v is a %T, not *Error", e, e)
		}
	}
	if (err == nil) != (gerr == nil) || err != nil && err.Error() != gerr.Error() {
		t.Fatalf("read through io.ReaderAt: %v; in place: %v", err, gerr)
	}
	if err != nil {
		return
	}
	defer f.Close()
	defer g.Close()
	if herr != nil {
		t.Fatalf("the model opens but its header does not: %v", herr)
	}
	if h.Config != f.Config || len(h.Vocab) != len(f.Vocab) || len(h.MelFilters) != len(f.MelFilters) {
		t.Fatalf("header %+v, model %+v", h.Config, f.Config)
	}
	if len(f.Names) != len(f.Tensors) || len(f.Tensors) != len(f.Config.Layout()) {
		t.Fatalf("%d names, %d tensors", len(f.Names), len(f.Tensors))
	}
	for _, name := range f.Names {
		tn, tg := f.Tensors[name], g.Tensors[name]
		if len(tn.Data) != nbytes(tn.DType, tn.Shape) {
			t.Fatalf("tensor %s: %d bytes", tn.Name, len(tn.Data))
		}
		if tg == nil || !bytes.Equal(tn.Data, tg.Data) {
			t.Fatalf("tensor %s differs between reading and viewing in place", name)
		}
		if _, err := tn.Float32(); err != nil {
			t.Fatal(err)
		}
	}
}

func FuzzOpenGGML(f *testing.F) {
	valid := ggmlBytes(f, fuzzCfg, fuzzModel(fuzzCfg, tensor.F16, GGML))
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	f.Add(ggmlBytes(f, fuzzCfg, nil))
	f.Add(ggmlBytes(f, fuzzCfg, fuzzModel(fuzzCfg, tensor.F32, GGML)[:3]))
	// Seeds stay small: the fuzzer minimizes every new input, which takes time quadratic in
	// its size.
	b, err := os.ReadFile(fixture(f, "ggml-header-tiny.en.bin"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b[:512])
	minimizeBudget(f, modelMinimizeBudget)
	f.Fuzz(func(t *testing.T, data []byte) {
		openFuzzed(t, data, nil)
	})
}

func FuzzOpenSafetensors(f *testing.F) {
	config, err := hfConfigJSON(fuzzCfg)
	if err != nil {
		f.Fatal(err)
	}
	valid := stBytes(f, fuzzModel(fuzzCfg, tensor.F16, Safetensors))
	f.Add(valid)
	f.Add(valid[:len(valid)-2])
	f.Add(stFile(`{"__metadata__":{"format":"pt"}}`, 0))
	f.Add(stFile(`{"model.decoder.layer_norm.bias":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 4))
	f.Add(stFile(`{"proj_out.weight":{"dtype":"BF16","shape":[2147483647,2147483647],"data_offsets":[0,1]}}`, 1))
	minimizeBudget(f, modelMinimizeBudget)
	f.Fuzz(func(t *testing.T, data []byte) {
		openFuzzed(t, data, config)
	})
}

// FuzzParseHFConfig: config.json comes from the internet with the weights. Any bytes either fail
// or give a configuration that validates.
func FuzzParseHFConfig(f *testing.F) {
	for _, cfg := range []Config{fuzzCfg, tinyCfg, mustArch(f, "micro"), mustArch(f, "large-v3")} {
		b, err := hfConfigJSON(cfg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"d_model":4,"encoder_ffn_dim":15}`))
	f.Add([]byte(`{"vocab_size":1e400}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parseHFConfig(data)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("config %+v is accepted but does not validate: %v", cfg, err)
		}
	})
}
