// Package weights reads and writes Whisper model files: whisper.cpp's ggml .bin and Hugging Face
// model.safetensors + config.json. Files are memory-mapped; every tensor's name, shape and dtype is
// validated against the architecture, and errors name the file and the tensor. Tensors are
// presented under OpenAI's canonical names with PyTorch shapes (outermost first).
//
// The parsers read through an io.ReaderAt and never touch the file system: Open and ReadHeader
// hand them the file's mapping, OpenReaderAt any reader (bytes in memory, for the fuzz tests).
package weights

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/verbatimhq/verbatim/tensor"
)

// Format is a model file format.
type Format int

const (
	GGML Format = iota + 1
	Safetensors
)

func (f Format) String() string {
	switch f {
	case GGML:
		return "ggml"
	case Safetensors:
		return "safetensors"
	}
	return fmt.Sprintf("format(%d)", int(f))
}

// Config is a Whisper architecture (whisper.cpp's hparams).
type Config struct {
	NVocab      int
	NAudioCtx   int // 1500
	NAudioState int // d_model of the encoder
	NAudioHead  int
	NAudioLayer int
	NTextCtx    int // 448
	NTextState  int
	NTextHead   int
	NTextLayer  int
	NMels       int // 80 or 128
}

// Tensor is one stored tensor: canonical name, dtype as stored, PyTorch shape, and its raw bytes
// (little-endian, ggml block layout for quantized types), pointing into the mapped file (or, for
// OpenReaderAt, into the reader's bytes or a copy of them).
type Tensor struct {
	Name  string
	DType tensor.DType
	Shape []int
	Data  []byte
	// Load, if set, produces the data on demand where Data is nil (lazily synthesized tensors).
	// The writers call it once per tensor and drop the result after writing it.
	Load func() ([]byte, error)
}

// Float32 returns the tensor's values as float32, dequantizing or widening as needed.
func (t *Tensor) Float32() ([]float32, error) {
	data, err := t.bytes()
	if err != nil {
		return nil, err
	}
	out := make([]float32, tensor.Numel(t.Shape))
	if err := tensor.Dequantize(t.DType, data, out); err != nil {
		return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	return out, nil
}

// bytes returns Data, or calls Load for a lazy tensor.
func (t *Tensor) bytes() ([]byte, error) {
	if t.Data != nil || t.Load == nil {
		return t.Data, nil
	}
	b, err := t.Load()
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	return b, nil
}

// File is an open model file. Its tensors stay valid until Close. A File is read-only and safe
// for concurrent use; Close must not race with readers.
type File struct {
	Path       string
	Format     Format
	Config     Config
	Arch       string             // "tiny", "large-v3-turbo", "micro", ... or "custom"
	Tensors    map[string]*Tensor // by canonical name
	MelFilters []float32          // [NMels, 201] from a ggml header; nil for safetensors
	Vocab      [][]byte           // token bytes by id from a ggml header; nil for safetensors

	// Names lists the canonical tensor names in the order the file stores them.
	Names []string
	// FType is a ggml file's ftype (0 f32, 1 f16, 2 q4_0, 7 q8_0, 8 q5_0, 9 q5_1, ...) with the
	// quantization version removed; QuantVersion is that version (ftype / 1000). Both are 0 for
	// safetensors.
	FType, QuantVersion int

	unmap func() error
}

// Close releases the file mapping and clears the tensors' Data, which must not be used
// afterwards. It is idempotent.
func (f *File) Close() error {
	if f == nil || f.unmap == nil {
		return nil
	}
	unmap := f.unmap
	f.unmap = nil
	for _, t := range f.Tensors {
		t.Data = nil
	}
	if err := unmap(); err != nil {
		return fmt.Errorf("model %s: unmap: %w", f.Path, err)
	}
	return nil
}

// Sentinel errors, found with errors.Is in the *Error that Open returns.
var (
	// ErrNotModel: the file is empty, is not a ggml or safetensors file, or is a folder without
	// model.safetensors.
	ErrNotModel = errors.New("not a model file")
	// ErrTruncated: the file ends before a header or a tensor's data does.
	ErrTruncated = errors.New("truncated")
	// ErrNoTensors: a ggml file with a complete header and no tensors.
	ErrNoTensors = errors.New("no tensors")
	// ErrInvalid: a malformed header, or a tensor that is unknown, missing, duplicated, of the
	// wrong shape or of a dtype not allowed for it.
	ErrInvalid = errors.New("invalid model")
)

// Error is a problem with a model file. Its message is one line: "model PATH: MSG".
type Error struct {
	Path   string
	Tensor string // the canonical (or, if unknown, stored) name of the tensor at fault, or ""
	Msg    string
	Err    error // one of the sentinels, or an I/O error
}

func (e *Error) Error() string { return "model " + e.Path + ": " + e.Msg }
func (e *Error) Unwrap() error { return e.Err }

func newError(path string, sentinel error, format string, args ...any) *Error {
	return &Error{Path: path, Err: sentinel, Msg: fmt.Sprintf(format, args...)}
}

func tensorError(path, name string, sentinel error, format string, args ...any) *Error {
	return &Error{Path: path, Tensor: name, Err: sentinel, Msg: fmt.Sprintf("tensor %q: ", name) + fmt.Sprintf(format, args...)}
}

const ggmlMagic = 0x67676d6c

// Open maps a model file and validates it: a ggml .bin, a .safetensors file (with config.json
// beside it), or a folder holding model.safetensors and config.json. The format is detected from
// the file's first bytes. Errors are *Error values wrapping ErrNotModel, ErrTruncated,
// ErrNoTensors, ErrInvalid or the I/O error.
func Open(path string) (*File, error) { return open(path, false) }

// open is the file layer of Open: it finds the file, maps it, and parses the
// mapping, with the config.json beside it for a safetensors file.
func open(path string, headerOnly bool) (*File, error) {
	file := path
	st, err := os.Stat(path)
	if err != nil {
		return nil, &Error{Path: path, Err: err, Msg: ioMsg(err)}
	}
	if st.IsDir() {
		file = filepath.Join(path, "model.safetensors")
		if st, err = os.Stat(file); err != nil {
			return nil, &Error{Path: path, Err: ErrNotModel, Msg: "folder without model.safetensors"}
		}
	}
	if !st.Mode().IsRegular() {
		return nil, newError(file, ErrNotModel, "not a regular file")
	}
	if st.Size() == 0 {
		return nil, newError(file, ErrNotModel, "empty file")
	}
	if st.Size() > math.MaxInt-1 {
		return nil, newError(file, ErrInvalid, "file too large (%d bytes)", st.Size())
	}
	fd, err := os.Open(file)
	if err != nil {
		return nil, &Error{Path: file, Err: err, Msg: ioMsg(err)}
	}
	b, unmap, err := mapFile(fd, int(st.Size()))
	fd.Close()
	if err != nil {
		return nil, &Error{Path: file, Err: err, Msg: "map: " + err.Error()}
	}
	config := func() ([]byte, error) { return readConfigFile(filepath.Join(filepath.Dir(file), "config.json")) }
	f, err := parse(newSource(file, memory(b), int64(len(b))), config, headerOnly)
	if err != nil || headerOnly {
		unmap()
		return f, err
	}
	f.unmap = unmap
	return f, nil
}

// parse validates the model in src, detecting its format from the first bytes. config returns
// the bytes of a safetensors model's config.json; it is called only for safetensors.
func parse(src *source, config func() ([]byte, error), headerOnly bool) (*File, error) {
	switch {
	case src.size < 0:
		return nil, newError(src.path, ErrInvalid, "size %d", src.size)
	case src.size == 0:
		return nil, newError(src.path, ErrNotModel, "empty file")
	case src.size > math.MaxInt-1:
		return nil, newError(src.path, ErrInvalid, "file too large (%d bytes)", src.size)
	}
	c := &cursor{src: src}
	head, err := c.next(int(min(src.size, 10)))
	if err != nil {
		return nil, err
	}
	switch sniff(head) {
	case GGML:
		return parseGGML(src, headerOnly)
	case Safetensors:
		return parseSafetensors(src, config, headerOnly)
	}
	return nil, notModel(src.path, head)
}

// sniff detects the format from the first bytes.
func sniff(b []byte) Format {
	if len(b) >= 4 && binary.LittleEndian.Uint32(b) == ggmlMagic {
		return GGML
	}
	if len(b) >= 10 && b[8] == '{' && binary.LittleEndian.Uint64(b) >= 2 {
		return Safetensors
	}
	return 0
}

func notModel(path string, b []byte) error {
	if len(b) >= 4 && string(b[:4]) == "GGUF" {
		return newError(path, ErrNotModel, "gguf files are not supported (want a whisper.cpp ggml .bin or safetensors)")
	}
	n := min(len(b), 4)
	return newError(path, ErrNotModel, "not a ggml or safetensors file (starts with % x)", b[:n])
}

// ioMsg is the message of an I/O error without the path (which Error adds).
func ioMsg(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
