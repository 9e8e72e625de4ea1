package weights

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"github.com/verbatimhq/verbatim/tensor"
)

// whisper.cpp's ggml file layout (little-endian):
//
//	u32 magic 0x67676d6c
//	i32 n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
//	    n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype
//	i32 n_mel, n_fft; f32 filters[n_mel*n_fft]
//	i32 n_tokens; n_tokens x (u32 len, bytes)
//	tensors to the end of the file: i32 n_dims, name_len, ggml_type; i32 ne[n_dims] (innermost
//	first); name; data (no padding)

// melBins is the number of frequency bins of Whisper's 400-point FFT.
const melBins = 201

// qntVersionFactor separates the quantization version from the ftype (GGML_QNT_VERSION_FACTOR).
const qntVersionFactor = 1000

// qntVersion is the quantization version whisper.cpp's quantizer writes (GGML_QNT_VERSION).
const qntVersion = 2

// ggml_type values of the tensor types this package reads.
const (
	ggmlF32  = 0
	ggmlF16  = 1
	ggmlQ4_0 = 2
	ggmlQ5_0 = 6
	ggmlQ5_1 = 7
	ggmlQ8_0 = 8
	ggmlBF16 = 30
)

var ggmlTypes = map[int32]tensor.DType{
	ggmlF32: tensor.F32, ggmlF16: tensor.F16, ggmlQ4_0: tensor.Q4_0, ggmlQ5_0: tensor.Q5_0,
	ggmlQ5_1: tensor.Q5_1, ggmlQ8_0: tensor.Q8_0, ggmlBF16: tensor.BF16,
}

// Names of ggml types that exist but are not supported, for error messages.
var ggmlOtherTypes = map[int32]string{
	3: "q4_1", 9: "q8_1", 10: "q2_k", 11: "q3_k", 12: "q4_k", 13: "q5_k", 14: "q6_k", 15: "q8_k",
	24: "i8", 25: "i16", 26: "i32", 27: "i64", 28: "f64",
}

// ggmlType is the ggml type code of dt. checkWrite rejects every dtype without one before
// anything is written, so a miss here is a bug (a plain panic, which tensor.Catch lets through).
func ggmlType(dt tensor.DType) int32 {
	for k, v := range ggmlTypes {
		if v == dt {
			return k
		}
	}
	panic(fmt.Sprintf("weights: no ggml type for %s", dt))
}

// ggml ftype values (GGML_FTYPE_*) by the dtype of a model's weight matrices.
var ggmlFTypes = map[tensor.DType]int{
	tensor.F32: 0, tensor.F16: 1, tensor.Q4_0: 2, tensor.Q8_0: 7, tensor.Q5_0: 8, tensor.Q5_1: 9, tensor.BF16: 24,
}

// isConvBias reports whether name is a conv bias, which ggml stores as [d, 1].
func isConvBias(name string) bool {
	return name == "encoder.conv1.bias" || name == "encoder.conv2.bias"
}

// cursor reads little-endian values from a mapped file, tracking the offset.
type cursor struct {
	b   []byte
	off int
}

func (c *cursor) left() int { return len(c.b) - c.off }

func (c *cursor) i32() int32 {
	v := int32(binary.LittleEndian.Uint32(c.b[c.off:]))
	c.off += 4
	return v
}

func parseGGML(path string, b []byte, headerOnly bool) (*File, error) {
	c := &cursor{b: b, off: 4}
	const hparamBytes = 11 * 4
	if c.left() < hparamBytes {
		return nil, newError(path, ErrTruncated, "truncated: hparams need %d bytes at offset 4, file has %d", hparamBytes, len(b))
	}
	var h [11]int
	for i := range h {
		h[i] = int(c.i32())
	}
	cfg := Config{
		NVocab: h[0], NAudioCtx: h[1], NAudioState: h[2], NAudioHead: h[3], NAudioLayer: h[4],
		NTextCtx: h[5], NTextState: h[6], NTextHead: h[7], NTextLayer: h[8], NMels: h[9],
	}
	if err := cfg.Validate(); err != nil {
		return nil, newError(path, ErrInvalid, "hparams: %v", err)
	}
	ftype := h[10]
	if ftype < 0 {
		return nil, newError(path, ErrInvalid, "hparams: ftype = %d", ftype)
	}
	f := &File{
		Path: path, Format: GGML, Config: cfg, Arch: cfg.Name(),
		FType: ftype % qntVersionFactor, QuantVersion: ftype / qntVersionFactor,
	}

	// Mel filters.
	if c.left() < 8 {
		return nil, newError(path, ErrTruncated, "truncated: mel filter header at offset %d, file has %d bytes", c.off, len(b))
	}
	nMel, nFFT := int(c.i32()), int(c.i32())
	if nMel != cfg.NMels || nFFT != melBins {
		return nil, newError(path, ErrInvalid, "mel filters [%d %d], want [%d %d]", nMel, nFFT, cfg.NMels, melBins)
	}
	if need := nMel * nFFT * 4; c.left() < need {
		return nil, newError(path, ErrTruncated, "truncated: mel filters need %d bytes at offset %d, file has %d", need, c.off, len(b))
	}
	f.MelFilters = make([]float32, nMel*nFFT)
	for i := range f.MelFilters {
		f.MelFilters[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[c.off+4*i:]))
	}
	c.off += nMel * nFFT * 4

	// Vocabulary: the text tokens (whisper.cpp adds the special tokens up to n_vocab itself).
	if c.left() < 4 {
		return nil, newError(path, ErrTruncated, "truncated: vocabulary size at offset %d, file has %d bytes", c.off, len(b))
	}
	nTok := int(c.i32())
	if nTok < 0 || nTok > cfg.NVocab {
		return nil, newError(path, ErrInvalid, "vocabulary of %d tokens, want 0..%d (n_vocab)", nTok, cfg.NVocab)
	}
	if c.left() < 4*nTok {
		return nil, newError(path, ErrTruncated, "truncated: vocabulary of %d tokens needs at least %d bytes at offset %d, file has %d", nTok, 4*nTok, c.off, len(b))
	}
	start, total := c.off, 0
	for i := range nTok {
		if c.left() < 4 {
			return nil, newError(path, ErrTruncated, "truncated: token %d at offset %d, file has %d bytes", i, c.off, len(b))
		}
		n := int(binary.LittleEndian.Uint32(b[c.off:]))
		c.off += 4
		if n > c.left() {
			return nil, newError(path, ErrTruncated, "truncated: token %d needs %d bytes at offset %d, file has %d", i, n, c.off, len(b))
		}
		c.off += n
		total += n
	}
	// Copy the token bytes out of the mapping so the vocabulary outlives Close.
	buf := make([]byte, 0, total)
	f.Vocab = make([][]byte, nTok)
	for i, off := 0, start; i < nTok; i++ {
		n := int(binary.LittleEndian.Uint32(b[off:]))
		buf = append(buf, b[off+4:off+4+n]...)
		f.Vocab[i] = buf[len(buf)-n : len(buf) : len(buf)]
		off += 4 + n
	}
	if headerOnly {
		return f, nil
	}

	// Tensors.
	v := newValidator(path, f)
	for c.left() > 0 {
		t, err := readGGMLTensor(path, c, v)
		if err != nil {
			return nil, err
		}
		v.add(t)
	}
	if len(f.Tensors) == 0 {
		return nil, newError(path, ErrNoTensors, "no tensors (header only, %d bytes)", len(b))
	}
	if err := v.finish(); err != nil {
		return nil, err
	}
	return f, nil
}

const (
	maxNameLen = 256
	maxDims    = 4
)

func readGGMLTensor(path string, c *cursor, v *validator) (*Tensor, error) {
	at := c.off
	if c.left() < 12 {
		return nil, newError(path, ErrTruncated, "truncated: tensor header at offset %d, file has %d bytes", at, len(c.b))
	}
	nDims, nameLen, ttype := int(c.i32()), int(c.i32()), c.i32()
	if nDims < 1 || nDims > maxDims {
		return nil, newError(path, ErrInvalid, "tensor at offset %d: %d dimensions, want 1..%d", at, nDims, maxDims)
	}
	if nameLen < 1 || nameLen > maxNameLen {
		return nil, newError(path, ErrInvalid, "tensor at offset %d: name of %d bytes, want 1..%d", at, nameLen, maxNameLen)
	}
	if c.left() < 4*nDims+nameLen {
		return nil, newError(path, ErrTruncated, "truncated: tensor header at offset %d needs %d bytes, file has %d", at, 12+4*nDims+nameLen, len(c.b))
	}
	ne := make([]int, nDims)
	for i := range ne {
		ne[i] = int(c.i32())
	}
	name := string(c.b[c.off : c.off+nameLen])
	c.off += nameLen
	if strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f || r == 0xfffd }) {
		return nil, newError(path, ErrInvalid, "tensor at offset %d: name %q is not printable", at, name)
	}
	dt, ok := ggmlTypes[ttype]
	if !ok {
		if s, known := ggmlOtherTypes[ttype]; known {
			return nil, tensorError(path, name, ErrInvalid, "ggml type %d (%s) is not supported", ttype, s)
		}
		return nil, tensorError(path, name, ErrInvalid, "unknown ggml type %d", ttype)
	}
	// PyTorch order is outermost first: reverse ggml's ne.
	shape := make([]int, nDims)
	for i, n := range ne {
		if n < 1 {
			return nil, tensorError(path, name, ErrInvalid, "dimension %d of ne %v", n, ne)
		}
		shape[nDims-1-i] = n
	}
	if isConvBias(name) && len(shape) == 2 && shape[1] == 1 {
		shape = shape[:1]
	}
	t := &Tensor{Name: name, DType: dt, Shape: shape}
	if err := v.check(t); err != nil {
		return nil, err
	}
	n := nbytes(dt, shape)
	if c.left() < n {
		return nil, newError(path, ErrTruncated, "truncated: tensor %q needs %d bytes at offset %d, file has %d", name, n, c.off, len(c.b)).withTensor(name)
	}
	t.Data = c.b[c.off : c.off+n : c.off+n]
	c.off += n
	return t, nil
}

func (e *Error) withTensor(name string) *Error {
	e.Tensor = name
	return e
}

// WriteGGML writes a whisper.cpp ggml model file atomically (a temp file in the same folder,
// synced and renamed). tensors must be exactly cfg's tensors (in any order, written in the order
// given), each in a dtype whisper.cpp accepts for it; whisper.cpp itself also expects f32 for
// 1-D tensors, conv biases and positional embeddings (see Synth with Format GGML). melFilters is
// [NMels, 201] (mel.Filters) and vocab the text tokens' bytes (at most NVocab of them). The
// header's ftype is that of the weight matrices: 0 (f32), 1 (f16), or a quantized type with
// quantization version 2.
func WriteGGML(path string, cfg Config, tensors []*Tensor, melFilters []float32, vocab [][]byte) error {
	if err := checkWrite(cfg, tensors, GGML); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if want := cfg.NMels * melBins; len(melFilters) != want {
		return fmt.Errorf("write %s: %d mel filter values, want %d x %d", path, len(melFilters), cfg.NMels, melBins)
	}
	if len(vocab) > cfg.NVocab {
		return fmt.Errorf("write %s: vocabulary of %d tokens, more than n_vocab %d", path, len(vocab), cfg.NVocab)
	}
	return writeAtomic(path, func(w *writer) error { return encodeGGML(w, cfg, tensors, melFilters, vocab) })
}

// ggmlFType is the header ftype for a tensor set: that of the weight matrices.
func ggmlFType(tensors []*Tensor) int {
	ftype := 0
	for _, t := range tensors {
		if t.DType.Quantized() {
			ftype = ggmlFTypes[t.DType] + qntVersion*qntVersionFactor
			break
		}
		if t.DType != tensor.F32 && len(t.Shape) >= 2 && ftype == 0 {
			ftype = ggmlFTypes[t.DType]
		}
	}
	return ftype
}

// encodeGGML writes a ggml file without validating its contents (WriteGGML does).
func encodeGGML(w *writer, cfg Config, tensors []*Tensor, melFilters []float32, vocab [][]byte) error {
	ftype := ggmlFType(tensors)
	w.u32(ggmlMagic)
	for _, v := range []int{cfg.NVocab, cfg.NAudioCtx, cfg.NAudioState, cfg.NAudioHead, cfg.NAudioLayer,
		cfg.NTextCtx, cfg.NTextState, cfg.NTextHead, cfg.NTextLayer, cfg.NMels, ftype} {
		w.u32(uint32(v))
	}
	w.u32(uint32(cfg.NMels))
	w.u32(melBins)
	for _, v := range melFilters {
		w.u32(math.Float32bits(v))
	}
	w.u32(uint32(len(vocab)))
	for _, tok := range vocab {
		w.u32(uint32(len(tok)))
		w.bytes(tok)
	}
	for _, t := range tensors {
		data, err := t.bytes()
		if err != nil {
			return err
		}
		if want := nbytes(t.DType, t.Shape); len(data) != want {
			return fmt.Errorf("tensor %q: %d bytes of data, want %d", t.Name, len(data), want)
		}
		shape := t.Shape
		if isConvBias(t.Name) {
			shape = []int{shape[0], 1}
		}
		w.u32(uint32(len(shape)))
		w.u32(uint32(len(t.Name)))
		w.u32(uint32(ggmlType(t.DType)))
		for i := len(shape) - 1; i >= 0; i-- {
			w.u32(uint32(shape[i]))
		}
		w.bytes([]byte(t.Name))
		w.bytes(data)
	}
	return nil
}
