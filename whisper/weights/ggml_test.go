package weights

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/verbatimhq/verbatim/tensor"
)

func TestReadHeaderFixtures(t *testing.T) {
	cases := []struct {
		file   string
		arch   string
		cfg    Config
		tokens map[int]string
	}{
		{"ggml-header-tiny.bin", "tiny", mustArch(t, "tiny"), map[int]string{0: "!", 1: `"`, 50256: ""}},
		{"ggml-header-tiny.en.bin", "tiny.en", mustArch(t, "tiny.en"), map[int]string{0: "!", 50256: "<|endoftext|>"}},
		{"ggml-header-large-v2.bin", "large-v2", mustArch(t, "large-v2"), map[int]string{0: "!", 50255: "\xe5\x9c\xba"}},
	}
	mel80, shape := npyFloat32(t, fixture(t, "mel_filters.npz"), "mel_80")
	if !cmp.Equal(shape, []int{80, 201}) {
		t.Fatalf("mel_80 shape %v", shape)
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			path := fixture(t, c.file)
			h, err := readHeader(path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.cfg, h.Config); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			if h.Arch != c.arch || h.Format != GGML || h.FType != 1 || h.QuantVersion != 0 {
				t.Errorf("arch %q format %v ftype %d/%d, want %q ggml 1/0", h.Arch, h.Format, h.FType, h.QuantVersion, c.arch)
			}
			if len(h.Vocab) != 50257 {
				t.Errorf("%d tokens, want 50257", len(h.Vocab))
			}
			for id, want := range c.tokens {
				if got := string(h.Vocab[id]); got != want {
					t.Errorf("token %d = %q, want %q", id, got, want)
				}
			}
			// The header's filterbank is the reference mel_80, up to its f32 storage.
			if len(h.MelFilters) != len(mel80) {
				t.Fatalf("%d mel filter values, want %d", len(h.MelFilters), len(mel80))
			}
			var maxDiff float64
			for i, v := range h.MelFilters {
				maxDiff = max(maxDiff, float64(abs(v-mel80[i])))
			}
			if maxDiff > 1e-6 {
				t.Errorf("mel filters differ from mel_80 by %g", maxDiff)
			}

			_, err = Open(path)
			if !errors.Is(err, ErrNoTensors) || !strings.Contains(err.Error(), "no tensors (header only") || !strings.Contains(err.Error(), path) {
				t.Errorf("Open = %v, want a no-tensors error naming the file", err)
			}
		})
	}
}

func abs(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}

func mustArch(t testing.TB, name string) Config {
	t.Helper()
	c, err := Arch(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// oracleTwinSHA is the sha256 of hf2ggml.py's output for oracle-micro (its README).
const oracleTwinSHA = "dae974559e1185beed917da8cfb4aa5f09d50b6c75f4529a19fef2749c9da407"

// TestOracleGGMLTwin writes oracle-micro's ggml twin from the safetensors with WriteGGML and
// checks that it is byte-identical to the file hf2ggml.py writes and whisper.cpp ran.
func TestOracleGGMLTwin(t *testing.T) {
	st, err := Open(fixture(t, "oracle-micro"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mel128, _ := npyFloat32(t, fixture(t, "mel_filters.npz"), "mel_128")
	vocab := tiktokenVocab(t, fixture(t, "multilingual.tiktoken"))
	ts := make([]*Tensor, len(st.Names))
	for i, n := range st.Names {
		ts[i] = st.Tensors[n]
	}
	out := filepath.Join(t.TempDir(), "micro.ggml.bin")
	if err := WriteGGML(out, st.Config, ts, mel128, vocab); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != oracleTwinSHA {
		t.Errorf("sha256 %s, want %s (%d bytes)", got, oracleTwinSHA, len(b))
	}

	g, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.Arch != "micro" || g.FType != 0 || len(g.Vocab) != len(vocab) {
		t.Errorf("arch %q ftype %d vocab %d", g.Arch, g.FType, len(g.Vocab))
	}
	if !cmp.Equal(g.Names, st.Names) {
		t.Errorf("ggml order differs from the safetensors order")
	}
	for _, n := range st.Names {
		a, b := st.Tensors[n], g.Tensors[n]
		if !cmp.Equal(a.Shape, b.Shape) || a.DType != b.DType || !bytes.Equal(a.Data, b.Data) {
			t.Errorf("tensor %s: safetensors %s%v, ggml %s%v, equal data %v", n, a.DType, a.Shape, b.DType, b.Shape, bytes.Equal(a.Data, b.Data))
		}
	}
}

func TestGGMLRoundTrip(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16, tensor.Q8_0, tensor.Q5_0, tensor.Q5_1, tensor.Q4_0} {
		t.Run(dt.String(), func(t *testing.T) {
			ts := synth(t, SynthOptions{Config: smallCfg, Seed: 7, DType: dt, Format: GGML})
			path := filepath.Join(t.TempDir(), "m.bin")
			mel, vocab := testMel(smallCfg), testVocab(60)
			if err := WriteGGML(path, smallCfg, ts, mel, vocab); err != nil {
				t.Fatal(err)
			}
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Arch != "custom" || f.Config != smallCfg || len(f.Tensors) != len(ts) {
				t.Fatalf("arch %q config %+v, %d tensors", f.Arch, f.Config, len(f.Tensors))
			}
			wantFType := map[tensor.DType]int{tensor.F32: 0, tensor.F16: 1, tensor.Q4_0: 2, tensor.Q8_0: 7, tensor.Q5_0: 8, tensor.Q5_1: 9}[dt]
			wantQV := 0
			if dt.Quantized() {
				wantQV = 2
			}
			if f.FType != wantFType || f.QuantVersion != wantQV {
				t.Errorf("ftype %d version %d, want %d %d", f.FType, f.QuantVersion, wantFType, wantQV)
			}
			if diff := cmp.Diff(mel, f.MelFilters); diff != "" {
				t.Errorf("mel filters (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(vocab, f.Vocab); diff != "" {
				t.Errorf("vocab (-want +got):\n%s", diff)
			}
			for i, w := range ts {
				g := f.Tensors[w.Name]
				if f.Names[i] != w.Name || g.DType != w.DType || !cmp.Equal(g.Shape, w.Shape) || !bytes.Equal(g.Data, w.Data) {
					t.Errorf("tensor %s: got %s%v, want %s%v", w.Name, g.DType, g.Shape, w.DType, w.Shape)
				}
			}
			if got := f.Tensors["decoder.blocks.1.mlp.0.weight"].DType; got != dt {
				t.Errorf("mlp weight stored as %s, want %s", got, dt)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}

// TestQuantizedCloseToF32: q8_0 .. q4_0 files read back close to the f32 weights of the same
// seed, within each format's step size.
func TestQuantizedCloseToF32(t *testing.T) {
	ref := synth(t, SynthOptions{Config: smallCfg, Seed: 3})
	cases := []struct {
		dt  tensor.DType
		tol float64 // max-abs error relative to the tensor's max |x|
	}{
		{tensor.F16, 1e-3},
		{tensor.Q8_0, 1.0 / 127},
		{tensor.Q5_1, 1.0 / 16},
		{tensor.Q5_0, 1.0 / 16},
		{tensor.Q4_0, 1.0 / 8},
	}
	for _, c := range cases {
		t.Run(c.dt.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "q.bin")
			if err := WriteGGML(path, smallCfg, synth(t, SynthOptions{Config: smallCfg, Seed: 3, DType: c.dt, Format: GGML}), testMel(smallCfg), nil); err != nil {
				t.Fatal(err)
			}
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, r := range ref {
				want, _ := r.Float32()
				got, err := f.Tensors[r.Name].Float32()
				if err != nil {
					t.Fatal(err)
				}
				var maxAbs, maxErr float64
				for i := range want {
					maxAbs = max(maxAbs, float64(abs(want[i])))
					maxErr = max(maxErr, float64(abs(got[i]-want[i])))
				}
				if maxErr > c.tol*maxAbs || (c.dt.Quantized() && f.Tensors[r.Name].DType == c.dt && maxErr == 0) {
					t.Errorf("%s (%s): max error %g, max |x| %g, tolerance %g", r.Name, f.Tensors[r.Name].DType, maxErr, maxAbs, c.tol*maxAbs)
				}
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	ts := synth(t, SynthOptions{Config: smallCfg, Seed: 1})
	good := ggmlBytes(t, smallCfg, ts)
	base := mustArch(t, "base")
	tiny := synth(t, SynthOptions{Config: mustArch(t, "tiny"), Seed: 1, Lazy: true})

	setI32 := func(b []byte, off int, v uint32) []byte {
		b = bytes.Clone(b)
		b[off], b[off+1], b[off+2], b[off+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		return b
	}
	quantBias := append(without(ts, "decoder.ln.bias"), &Tensor{Name: "decoder.ln.bias", DType: tensor.Q8_0, Shape: []int{32}, Data: make([]byte, 34)})
	quantPos := append(without(ts, "decoder.positional_embedding"), &Tensor{Name: "decoder.positional_embedding", DType: tensor.Q8_0, Shape: []int{8, 32}, Data: make([]byte, 8*34)})
	extra := append(slices.Clone(ts), &Tensor{Name: "decoder.blocks.2.mlp.0.weight", DType: tensor.F32, Shape: []int{128, 32}, Data: make([]byte, 128*32*4)})
	dup := append(slices.Clone(ts), ts[3])
	// The file offset of the first tensor's ttype field, to plant an unsupported ggml type.
	hdr := len(ggmlBytes(t, smallCfg, nil))

	cases := []struct {
		name     string
		data     []byte // nil: path below is used as is
		path     string
		sentinel error
		msg      string // substring of the error after "model PATH: "
	}{
		{name: "missing file", path: "/nonexistent/model.bin", sentinel: fs.ErrNotExist, msg: "no such file"},
		{name: "empty file", data: []byte{}, sentinel: ErrNotModel, msg: "empty file"},
		{name: "bad magic", data: []byte("RIFF\x00\x00\x00\x00WAVEfmt "), sentinel: ErrNotModel, msg: "not a ggml or safetensors file"},
		{name: "gguf", data: []byte("GGUF\x03\x00\x00\x00\x00\x00\x00\x00"), sentinel: ErrNotModel, msg: "gguf files are not supported"},
		{name: "magic only", data: good[:4], sentinel: ErrTruncated, msg: "truncated: hparams"},
		{name: "header only", data: ggmlBytes(t, smallCfg, nil), sentinel: ErrNoTensors, msg: "no tensors (header only"},
		{name: "truncated data", data: good[:len(good)-1], sentinel: ErrTruncated,
			msg: `truncated: tensor "decoder.ln.bias" needs 128 bytes at offset ` + itoa(len(good)-128) + ", file has " + itoa(len(good)-1)},
		{name: "truncated tensor header", data: good[:hdr+6], sentinel: ErrTruncated, msg: "truncated: tensor header at offset " + itoa(hdr)},
		{name: "truncated vocabulary", data: good[:hdr-3], sentinel: ErrTruncated, msg: "truncated: token 49"},
		{name: "base header with tiny tensors", data: ggmlBytes(t, base, tiny[:3]), sentinel: ErrInvalid,
			msg: `tensor "encoder.positional_embedding": shape [1500 384], want [1500 512]`},
		{name: "wrong shape", data: ggmlBytes(t, smallCfg, append(without(ts, "decoder.blocks.1.mlp.0.weight"),
			&Tensor{Name: "decoder.blocks.1.mlp.0.weight", DType: tensor.F32, Shape: []int{96, 32}, Data: make([]byte, 96*32*4)})),
			sentinel: ErrInvalid, msg: `tensor "decoder.blocks.1.mlp.0.weight": shape [96 32], want [128 32]`},
		{name: "missing tensor", data: ggmlBytes(t, smallCfg, without(ts, "decoder.blocks.0.cross_attn.key.weight")), sentinel: ErrInvalid,
			msg: `tensor "decoder.blocks.0.cross_attn.key.weight": missing`},
		{name: "extra tensor", data: ggmlBytes(t, smallCfg, extra), sentinel: ErrInvalid, msg: `tensor "decoder.blocks.2.mlp.0.weight": unknown tensor`},
		{name: "duplicate tensor", data: ggmlBytes(t, smallCfg, dup), sentinel: ErrInvalid, msg: `tensor "` + ts[3].Name + `": duplicate`},
		{name: "quantized bias", data: ggmlBytes(t, smallCfg, quantBias), sentinel: ErrInvalid, msg: `tensor "decoder.ln.bias": dtype q8_0 is only allowed for 2-D weight matrices`},
		{name: "quantized positions", data: ggmlBytes(t, smallCfg, quantPos), sentinel: ErrInvalid, msg: `tensor "decoder.positional_embedding": dtype q8_0 is only allowed`},
		{name: "q4_1 tensor", data: setI32(good, hdr+8, 3), sentinel: ErrInvalid, msg: `tensor "encoder.positional_embedding": ggml type 3 (q4_1) is not supported`},
		{name: "unknown ggml type", data: setI32(good, hdr+8, 99), sentinel: ErrInvalid, msg: `unknown ggml type 99`},
		{name: "bad n_dims", data: setI32(good, hdr, 9), sentinel: ErrInvalid, msg: "9 dimensions, want 1..4"},
		{name: "huge name", data: setI32(good, hdr+4, 1<<30), sentinel: ErrInvalid, msg: "name of 1073741824 bytes"},
		{name: "zero heads", data: setI32(good, 16, 0), sentinel: ErrInvalid, msg: "hparams: n_audio_head = 0"},
		{name: "heads do not divide width", data: setI32(good, 16, 5), sentinel: ErrInvalid, msg: "not a multiple of n_audio_head 5"},
		{name: "huge vocabulary", data: setI32(good, 4, 1<<30), sentinel: ErrInvalid, msg: "n_vocab = 1073741824"},
		{name: "vocabulary over n_vocab", data: setI32(good, 4+44+8+smallCfg.NMels*melBins*4, 101), sentinel: ErrInvalid, msg: "vocabulary of 101 tokens, want 0..100"},
		{name: "mel filters of other size", data: setI32(good, 4+44, 80), sentinel: ErrInvalid, msg: "mel filters [80 201], want [4 201]"},
		{name: "not quantized but q8_0 ftype", data: setI32(good, 4+40, 2007), sentinel: nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := c.path
			if c.data != nil {
				path = writeFile(t, "model.bin", c.data)
			}
			f, err := Open(path)
			if c.sentinel == nil {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				f.Close()
				return
			}
			if err == nil {
				f.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, c.sentinel) {
				t.Errorf("error %q is not %v", err, c.sentinel)
			}
			prefix := "model " + path + ": "
			if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), c.msg) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q, want %q...%q on one line", err, prefix, c.msg)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
