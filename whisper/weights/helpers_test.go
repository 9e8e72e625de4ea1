package weights

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// fixtures are the real files the tests read, by name: the ggml headers in this package's
// testdata/, the others where the package that owns them keeps them (testdata/README.md).
var fixtures = map[string]string{
	"ggml-header-tiny.bin":     "testdata/ggml-header-tiny.bin",
	"ggml-header-tiny.en.bin":  "testdata/ggml-header-tiny.en.bin",
	"ggml-header-large-v2.bin": "testdata/ggml-header-large-v2.bin",
	"oracle-micro":             "../testdata/oracle-micro",
	"mel_filters.npz":          "../mel/testdata/mel_filters.npz",
	"multilingual.tiktoken":    "../tokenizer/assets/multilingual.tiktoken",
}

// fixture returns the path of a fixture. A missing one fails the test: fixtures are part of the
// repository.
func fixture(t testing.TB, name string) string {
	t.Helper()
	p, ok := fixtures[name]
	if !ok {
		t.Fatalf("no fixture %q", name)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	return p
}

// npyFloat32 reads a float32 array from an .npz archive: its values and shape.
func npyFloat32(t testing.TB, npz, name string) ([]float32, []int) {
	t.Helper()
	z, err := zip.OpenReader(npz)
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	rc, err := z.Open(name + ".npy")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x93NUMPY")) {
		t.Fatalf("%s: not an npy file", name)
	}
	var hlen, off int
	switch b[6] {
	case 1:
		hlen, off = int(binary.LittleEndian.Uint16(b[8:])), 10
	default:
		hlen, off = int(binary.LittleEndian.Uint32(b[8:])), 12
	}
	header := string(b[off : off+hlen])
	if !regexp.MustCompile(`'descr': '<f4'`).MatchString(header) || regexp.MustCompile(`'fortran_order': True`).MatchString(header) {
		t.Fatalf("%s: unsupported npy header %s", name, header)
	}
	var shape []int
	m := regexp.MustCompile(`'shape': \(([^)]*)\)`).FindStringSubmatch(header)
	for _, f := range regexp.MustCompile(`\d+`).FindAllString(m[1], -1) {
		n, _ := strconv.Atoi(f)
		shape = append(shape, n)
	}
	data := b[off+hlen:]
	v := make([]float32, len(data)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return v, shape
}

// tiktokenVocab reads a .tiktoken rank file: token bytes in rank order.
func tiktokenVocab(t testing.TB, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var vocab [][]byte
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Bytes()
		if len(line) == 0 {
			continue
		}
		tok, rank, _ := bytes.Cut(line, []byte(" "))
		// Python decodes leniently: the multilingual file spells the empty token 50256 as "=".
		b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(string(tok), "="))
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := strconv.Atoi(string(rank)); r != len(vocab) {
			t.Fatalf("%s: rank %d at line %d", path, r, len(vocab))
		}
		vocab = append(vocab, b)
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return vocab
}

// smallCfg is a custom configuration small enough to write in every test; its width allows
// every quantization.
var smallCfg = Config{
	NVocab: 100, NAudioCtx: 16, NAudioState: 32, NAudioHead: 2, NAudioLayer: 1,
	NTextCtx: 8, NTextState: 32, NTextHead: 2, NTextLayer: 2, NMels: 4,
}

// tinyCfg is the smallest useful configuration, for fuzz seeds.
var tinyCfg = Config{
	NVocab: 8, NAudioCtx: 4, NAudioState: 4, NAudioHead: 1, NAudioLayer: 1,
	NTextCtx: 4, NTextState: 4, NTextHead: 1, NTextLayer: 1, NMels: 2,
}

// testMel is a deterministic stand-in for a mel filterbank of cfg.
func testMel(cfg Config) []float32 {
	m := make([]float32, cfg.NMels*melBins)
	for i := range m {
		m[i] = float32(i%7) / 7
	}
	return m
}

func testVocab(n int) [][]byte {
	v := make([][]byte, n)
	for i := range v {
		v[i] = []byte(fmt.Sprintf("t%d", i))
	}
	return v
}

// synth makes a model or fails the test.
func synth(t testing.TB, opts SynthOptions) []*Tensor {
	t.Helper()
	ts, err := Synth(opts)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// ggmlBytes encodes a ggml file without validation (for crafting broken files).
func ggmlBytes(t testing.TB, cfg Config, tensors []*Tensor) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := &writer{w: &buf}
	if err := encodeGGML(w, cfg, tensors, testMel(cfg), testVocab(cfg.NVocab/2)); err != nil {
		t.Fatal(err)
	}
	if w.err != nil {
		t.Fatal(w.err)
	}
	return buf.Bytes()
}

// writeFile writes b to a new file in a temp folder and returns its path.
func writeFile(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// without returns tensors minus the named one.
func without(ts []*Tensor, name string) []*Tensor {
	var out []*Tensor
	for _, t := range ts {
		if t.Name != name {
			out = append(out, t)
		}
	}
	return out
}

// find returns the named tensor.
func find(ts []*Tensor, name string) *Tensor {
	for _, t := range ts {
		if t.Name == name {
			return t
		}
	}
	return nil
}
