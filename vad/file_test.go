package vad

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/verbatimhq/verbatim/tensor"
)

// fixture is the real Silero VAD v6.2.0 file: the one the package embeds (model/README.md).
const fixture = "model/silero-v6.2.0-ggml.bin"

// fileTensor is one tensor as written, for building test files.
type fileTensor struct {
	name  string
	ttype int
	ne    []int
	data  []byte
}

// testFile is a Silero VAD ggml file taken apart so tests can change one thing and write it
// back with encode.
type testFile struct {
	typ     string
	ints    []int // version, window, context, n_layers, layers..., lstm and final sizes
	tensors []fileTensor
}

func le32(b []byte, v int) []byte { return binary.LittleEndian.AppendUint32(b, uint32(int32(v))) }

func (f *testFile) encode() []byte {
	b := le32(nil, ggmlMagic)
	b = le32(b, len(f.typ))
	b = append(b, f.typ...)
	for _, v := range f.ints {
		b = le32(b, v)
	}
	for _, t := range f.tensors {
		b = le32(b, len(t.ne))
		b = le32(b, len(t.name))
		b = le32(b, t.ttype)
		for _, d := range t.ne {
			b = le32(b, d)
		}
		b = append(b, t.name...)
		b = append(b, t.data...)
	}
	return b
}

// decodeTestFile takes the real file apart (independently of parse, with the layout read from
// the bytes).
func decodeTestFile(t testing.TB, b []byte) *testFile {
	t.Helper()
	off := 4
	i32 := func() int { v := int(int32(binary.LittleEndian.Uint32(b[off:]))); off += 4; return v }
	f := &testFile{}
	n := i32()
	f.typ = string(b[off : off+n])
	off += n
	for range 6 {
		f.ints = append(f.ints, i32())
	}
	for range 3*f.ints[5] + 4 {
		f.ints = append(f.ints, i32())
	}
	for off < len(b) {
		nd, nl, tt := i32(), i32(), i32()
		ft := fileTensor{ttype: tt}
		size := 1
		for range nd {
			ft.ne = append(ft.ne, i32())
			size *= ft.ne[len(ft.ne)-1]
		}
		ft.name = string(b[off : off+nl])
		off += nl
		size *= map[int]int{0: 4, 1: 2}[tt]
		ft.data = b[off : off+size]
		off += size
		f.tensors = append(f.tensors, ft)
	}
	return f
}

func readFixture(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseFixture(t *testing.T) {
	b := readFixture(t)
	f, err := parse("silero.bin", b)
	if err != nil {
		t.Fatal(err)
	}
	want := Header{
		Type: "silero-16k", Version: [3]int{6, 2, 0}, Window: 512, Context: 64,
		Layers:    []Layer{{129, 128, 3}, {128, 64, 3}, {64, 64, 3}, {64, 128, 3}},
		LSTMInput: 128, LSTMHidden: 128, FinalIn: 128, FinalOut: 1,
	}
	if d := cmp.Diff(want, f.Header); d != "" {
		t.Errorf("header (-want +got):\n%s", d)
	}
	if len(f.tensors) != 15 {
		t.Errorf("%d tensors, want 15", len(f.tensors))
	}
	basis := f.tensors[nameBasis]
	if basis.dtype != tensor.F16 || len(basis.data) != 258*256*2 {
		t.Errorf("basis: %s, %d bytes", basis.dtype, len(basis.data))
	}
	// The test encoder must reproduce the file byte for byte, or the error cases below would
	// test something else than a file with one fault.
	if !bytes.Equal(decodeTestFile(t, b).encode(), b) {
		t.Fatal("decode/encode does not round-trip the fixture")
	}
}

// TestEmbeddedModel: the embedded weights are whisper.cpp's file, by checksum, and the file the
// other tests read.
func TestEmbeddedModel(t *testing.T) {
	sum := sha256.Sum256(embedded)
	if got := hex.EncodeToString(sum[:]); got != EmbeddedSHA256 {
		t.Errorf("embedded model: sha256 %s, want %s", got, EmbeddedSHA256)
	}
	if !bytes.Equal(embedded, readFixture(t)) {
		t.Errorf("the embedded model differs from %s", fixture)
	}
}

// errorCases are files with one fault each, built from the fixture.
func errorCases(t testing.TB) []struct {
	name    string
	data    []byte
	err     error
	tensor  string // the tensor the error must name, if any
	contain string
} {
	b := readFixture(t)
	mod := func(edit func(f *testFile)) []byte {
		f := decodeTestFile(t, b)
		f.tensors = slices.Clone(f.tensors)
		edit(f)
		return f.encode()
	}
	find := func(f *testFile, name string) int {
		for i, tt := range f.tensors {
			if tt.name == name {
				return i
			}
		}
		t.Fatalf("no tensor %s", name)
		return -1
	}
	enc1 := "_model.encoder.1.reparam_conv.weight"
	return []struct {
		name    string
		data    []byte
		err     error
		tensor  string
		contain string
	}{
		{"empty", nil, ErrNotModel, "", "too short"},
		{"bad magic", append([]byte("GGUF"), b[4:]...), ErrNotModel, "", "bad magic"},
		{"whisper type", mod(func(f *testFile) { f.typ = "whisper" }), ErrNotModel, "", `"whisper"`},
		{"huge type length", append(le32(nil, ggmlMagic), 0xff, 0xff, 0xff, 0x7f), ErrNotModel, "", "model type of"},
		{"cut in type", b[:12], ErrTruncated, "", "model type"},
		{"cut in version", b[:20], ErrTruncated, "", "version"},
		{"cut in hparams", b[:60], ErrTruncated, "", "hyperparameters"},
		{"header only", b[:106], ErrInvalid, "", "no tensors"},
		{"cut in tensor header", b[:106+6], ErrTruncated, "", "tensor header"},
		{"cut in tensor data", b[:1000], ErrTruncated, "_model.encoder.0.reparam_conv.weight", "bytes of data"},
		{"cut in last tensor", b[:len(b)-1], ErrTruncated, nameBasis, "bytes of data"},
		{"window 256", mod(func(f *testFile) { f.ints[3] = 256 }), ErrInvalid, "", "window 256"},
		{"3 layers", mod(func(f *testFile) { f.ints[5] = 3 }), ErrInvalid, "", ""},
		{"1000 layers", mod(func(f *testFile) { f.ints[5] = 1000 }), ErrInvalid, "", "1000 encoder layers"},
		{"kernel 5", mod(func(f *testFile) { f.ints[6+2] = 5 }), ErrInvalid, "", "kernel 5"},
		{"channels do not chain", mod(func(f *testFile) { f.ints[6+3] = 100 }), ErrInvalid, "", "layer 1 takes 100"},
		{"lstm input", mod(func(f *testFile) { f.ints[6+12] = 64 }), ErrInvalid, "", "lstm input 64"},
		{"final out 2", mod(func(f *testFile) { f.ints[6+15] = 2 }), ErrInvalid, "", "final conv"},
		{"unknown tensor", mod(func(f *testFile) { f.tensors[0].name = "_model.extra" }), ErrInvalid, `"_model.extra"`, "unknown tensor"},
		{"repeated tensor", mod(func(f *testFile) { f.tensors = append(f.tensors, f.tensors[1]) }), ErrInvalid, "_model.encoder.0.reparam_conv.bias", "repeated"},
		{"missing tensor", mod(func(f *testFile) { f.tensors = slices.Delete(f.tensors, 2, 3) }), ErrInvalid, enc1, "missing"},
		{"wrong shape", mod(func(f *testFile) {
			i := find(f, enc1)
			f.tensors[i].ne = []int{3, 64, 128}
		}), ErrInvalid, enc1, "shape [3 64 128], want [3 128 64]"},
		{"f32 where f16", mod(func(f *testFile) {
			i := find(f, enc1)
			f.tensors[i].ttype = 0
		}), ErrInvalid, enc1, "type f32, want f16"},
		{"quantized", mod(func(f *testFile) {
			i := find(f, nameWIH)
			f.tensors[i].ttype = 8
		}), ErrInvalid, nameWIH, "ggml type 8"},
		{"5 dims", mod(func(f *testFile) { f.tensors[0].ne = []int{3, 129, 128, 1, 1} }), ErrInvalid, "", "5 dimensions"},
		{"negative dims", mod(func(f *testFile) { f.tensors[0].ne = []int{-3, -129, 128} }), ErrInvalid, "_model.encoder.0.reparam_conv.weight", "shape"},
		{"long name", mod(func(f *testFile) { f.tensors[0].name = strings.Repeat("x", 300) }), ErrInvalid, "", "name of 300 bytes"},
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range errorCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse("bad.bin", tc.data)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("error %q does not wrap %q", err, tc.err)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %q is not a *FormatError", err)
			}
			if fe.File != "bad.bin" || !strings.HasPrefix(err.Error(), "vad bad.bin: ") {
				t.Errorf("error %q does not name the file first", err)
			}
			if fe.Tensor != tc.tensor {
				t.Errorf("error %q names tensor %q, want %q", err, fe.Tensor, tc.tensor)
			}
			if !strings.Contains(err.Error(), tc.contain) {
				t.Errorf("error %q does not say %q", err, tc.contain)
			}
		})
	}
}

func TestOpenMissingFile(t *testing.T) {
	_, err := Open("testdata/no-such.bin", nil)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "testdata/no-such.bin") {
		t.Errorf("got %v, want a not-exist error naming the file", err)
	}
}

// tinyFile is the smallest file parse accepts: the real network's layout with one channel
// (two frequency bins) everywhere, so that a whole valid model is a fuzz seed of about 1 KB
// rather than the 885 KB fixture.
func tinyFile() *testFile {
	f := &testFile{typ: modelType, ints: []int{6, 2, 0, 512, 64, 4, 2, 1, 3, 1, 1, 3, 1, 1, 3, 1, 1, 3, 1, 1, 1, 1}}
	h := Header{Layers: []Layer{{2, 1, 3}, {1, 1, 3}, {1, 1, 3}, {1, 1, 3}}, LSTMInput: 1, LSTMHidden: 1, FinalIn: 1, FinalOut: 1}
	want := h.expected()
	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		s := want[name]
		data := make([]byte, tensor.Numel(s.ne)*s.dtype.BlockBytes())
		for i := range data {
			data[i] = byte(i%7) << 3
		}
		f.tensors = append(f.tensors, fileTensor{name: name, ttype: ggmlType(s.dtype), ne: s.ne, data: data})
	}
	return f
}

// TestTinyFileParses: FuzzOpen's main seed is a valid file, so that the fuzzer starts from one.
func TestTinyFileParses(t *testing.T) {
	if _, err := parse("tiny.bin", tinyFile().encode()); err != nil {
		t.Fatal(err)
	}
}

// FuzzOpen: no panic on any bytes, errors are *FormatError, and a file that parses has every
// tensor with the size its header implies. The seeds are a tiny valid file, cuts of it, and one
// fault each of the kinds errorCases makes from the real file.
func FuzzOpen(f *testing.F) {
	tiny := tinyFile()
	valid := tiny.encode()
	f.Add(valid)
	for _, n := range []int{0, 12, 20, 60, 104, 110, 300, len(valid) - 1} {
		f.Add(valid[:n])
	}
	edits := []func(*testFile){
		func(f *testFile) { f.typ = "whisper" },
		func(f *testFile) { f.ints[3] = 256 },
		func(f *testFile) { f.ints[5] = 3 },
		func(f *testFile) { f.ints[6+2] = 5 },
		func(f *testFile) { f.ints[6+12] = 2 },
		func(f *testFile) { f.tensors[0].name = "_model.extra" },
		func(f *testFile) { f.tensors = append(f.tensors, f.tensors[1]) },
		func(f *testFile) { f.tensors = slices.Delete(f.tensors, 2, 3) },
		func(f *testFile) { f.tensors[0].ne = []int{-3, 2, 1} },
		func(f *testFile) { f.tensors[0].ttype = 8 },
		func(f *testFile) { f.tensors[0].ne = []int{3, 2, 1, 1, 1} },
	}
	for _, edit := range edits {
		g := *tiny
		g.ints = slices.Clone(tiny.ints)
		g.tensors = slices.Clone(tiny.tensors)
		edit(&g)
		f.Add(g.encode())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pf, err := parse("fuzz.bin", data)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %q is not a *FormatError", err)
			}
			return
		}
		for name, s := range pf.Header.expected() {
			r, ok := pf.tensors[name]
			if !ok || len(r.data) != tensor.Numel(s.ne)*s.dtype.BlockBytes() {
				t.Fatalf("tensor %s: present %v, %d bytes", name, ok, len(r.data))
			}
		}
	})
}
