package weights

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/verbatimhq/verbatim/tensor"
)

// fuzzCfg is the smallest configuration there is, so that a whole valid model (all 50 tensors)
// is a seed of a few kilobytes: most of it is tensor names.
var fuzzCfg = Config{
	NVocab: 2, NAudioCtx: 1, NAudioState: 1, NAudioHead: 1, NAudioLayer: 1,
	NTextCtx: 1, NTextState: 1, NTextHead: 1, NTextLayer: 1, NMels: 1,
}

// fuzzModel returns cfg's tensors stored as a dt model in format (whisper.cpp's dtypes for
// ggml), with small nonzero data.
func fuzzModel(cfg Config, dt tensor.DType, format Format) []*Tensor {
	var ts []*Tensor
	for _, s := range cfg.Layout() {
		t := &Tensor{Name: s.Name, Shape: s.Shape, DType: storedDType(s, dt, format)}
		t.Data = make([]byte, nbytes(t.DType, t.Shape))
		for i := range t.Data {
			t.Data[i] = byte(i%5) << 4
		}
		ts = append(ts, t)
	}
	return ts
}

// stBytes encodes a safetensors file in memory.
func stBytes(t testing.TB, tensors []*Tensor) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := &writer{w: &buf}
	if err := encodeSafetensors(w, tensors); err != nil {
		t.Fatal(err)
	}
	if w.err != nil {
		t.Fatal(w.err)
	}
	return buf.Bytes()
}

// TestOpenReaderAt opens the fuzzers' valid seeds from memory: in place from a reader that
// exposes its bytes, and copied from one that does not.
func TestOpenReaderAt(t *testing.T) {
	config, err := hfConfigJSON(fuzzCfg)
	if err != nil {
		t.Fatal(err)
	}
	models := map[Format][]byte{
		GGML:        ggmlBytes(t, fuzzCfg, fuzzModel(fuzzCfg, tensor.F16, GGML)),
		Safetensors: stBytes(t, fuzzModel(fuzzCfg, tensor.F16, Safetensors)),
	}
	for format, b := range models {
		t.Run(format.String(), func(t *testing.T) {
			if len(b) > 8<<10 {
				t.Errorf("seed of %d bytes, want at most 8 KiB", len(b))
			}
			data := bytes.Clone(b)
			in, err := openReaderAt("mem", memory(data), int64(len(data)), config)
			if err != nil {
				t.Fatal(err)
			}
			copied, err := openReaderAt("mem", bytes.NewReader(data), int64(len(data)), config)
			if err != nil {
				t.Fatal(err)
			}
			if in.Format != format || in.Path != "mem" || in.Config != fuzzCfg || len(in.Tensors) != len(fuzzCfg.Layout()) {
				t.Fatalf("format %v path %q config %+v, %d tensors", in.Format, in.Path, in.Config, len(in.Tensors))
			}
			// In place, the tensors alias the bytes; copied, they do not.
			name := "decoder.token_embedding.weight"
			want := bytes.Clone(in.Tensors[name].Data)
			clear(data)
			if bytes.Equal(in.Tensors[name].Data, want) {
				t.Error("tensor viewed in place did not change with the bytes under it")
			}
			if !bytes.Equal(copied.Tensors[name].Data, want) {
				t.Error("copied tensor changed with the reader's bytes")
			}
			for _, f := range []*File{in, copied} {
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
				if f.Tensors[name].Data != nil {
					t.Error("Close left the tensors' data")
				}
			}
		})
	}
}

// TestOpenReaderAtErrors: a safetensors model needs its config.json, and a reader that fails or
// holds less than it says gives an *Error.
func TestOpenReaderAtErrors(t *testing.T) {
	st := stBytes(t, fuzzModel(fuzzCfg, tensor.F16, Safetensors))
	gg := ggmlBytes(t, fuzzCfg, fuzzModel(fuzzCfg, tensor.F16, GGML))
	boom := errors.New("boom")
	cases := []struct {
		name     string
		r        io.ReaderAt
		size     int64
		sentinel error
		msg      string
	}{
		{"no config", bytes.NewReader(st), int64(len(st)), ErrInvalid, "config.json: missing"},
		{"empty", bytes.NewReader(nil), 0, ErrNotModel, "empty file"},
		{"negative size", bytes.NewReader(gg), -1, ErrInvalid, "size -1"},
		{"shorter than said", bytes.NewReader(gg[:100]), int64(len(gg)), ErrTruncated, "truncated: read"},
		{"read error", failAt{bytes.NewReader(gg), 1000, boom}, int64(len(gg)), boom, "read at offset"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := openReaderAt("mem", c.r, c.size, nil)
			if err == nil {
				f.Close()
				t.Fatal("no error")
			}
			var we *Error
			if !errors.As(err, &we) || !errors.Is(err, c.sentinel) || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error %q (%T), want an *Error wrapping %v saying %q", err, err, c.sentinel, c.msg)
			}
		})
	}
}

// failAt is a reader that fails at and after an offset.
type failAt struct {
	r   io.ReaderAt
	off int64
	err error
}

func (f failAt) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.off {
		return 0, f.err
	}
	return f.r.ReadAt(p, off)
}
