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

// parseGGML parses a whisper.cpp ggml file; headerOnly stops after the vocabulary.
func parseGGML(src *source, headerOnly bool) (*File, error) {
	path, size := src.path, src.size
	c := &cursor{src: src, off: 4}
	const hparamBytes = 11 * 4
	if c.left() < hparamBytes {
		return nil, newError(path, ErrTruncated, "truncated: hparams need %d bytes at offset 4, file has %d", hparamBytes, size)
	}
	var h [11]int
	if err := c.i32s(h[:]); err != nil {
		return nil, err
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
		return nil, newError(path, ErrTruncated, "truncated: mel filter header at offset %d, file has %d bytes", c.off, size)
	}
	var mel [2]int
	if err := c.i32s(mel[:]); err != nil {
		return nil, err
	}
	nMel, nFFT := mel[0], mel[1]
	if nMel != cfg.NMels || nFFT != melBins {
		return nil, newError(path, ErrInvalid, "mel filters [%d %d], want [%d %d]", nMel, nFFT, cfg.NMels, melBins)
	}
	if need := nMel * nFFT * 4; c.left() < int64(need) {
		return nil, newError(path, ErrTruncated, "truncated: mel filters need %d bytes at offset %d, file has %d", need, c.off, size)
	}
	b, err := c.next(nMel * nFFT * 4)
	if err != nil {
		return nil, err
	}
	f.MelFilters = make([]float32, nMel*nFFT)
	for i := range f.MelFilters {
		f.MelFilters[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}

	// Vocabulary: the text tokens (whisper.cpp adds the special tokens up to n_vocab itself).
	if c.left() < 4 {
		return nil, newError(path, ErrTruncated, "truncated: vocabulary size at offset %d, file has %d bytes", c.off, size)
	}
	n, err := c.u32()
	if err != nil {
		return nil, err
	}
	nTok := int(int32(n))
	if nTok < 0 || nTok > cfg.NVocab {
		return nil, newError(path, ErrInvalid, "vocabulary of %d tokens, want 0..%d (n_vocab)", nTok, cfg.NVocab)
	}
	if c.left() < 4*int64(nTok) {
		return nil, newError(path, ErrTruncated, "truncated: vocabulary of %d tokens needs at least %d bytes at offset %d, file has %d", nTok, 4*nTok, c.off, size)
	}
	// Copy the token bytes out of the source so the vocabulary outlives Close.
	var buf []byte
	ends := make([]int, nTok)
	for i := range nTok {
		if c.left() < 4 {
			return nil, newError(path, ErrTruncated, "truncated: token %d at offset %d, file has %d bytes", i, c.off, size)
		}
		n, err := c.u32()
		if err != nil {
			return nil, err
		}
		if int64(n) > c.left() {
			return nil, newError(path, ErrTruncated, "truncated: token %d needs %d bytes at offset %d, file has %d", i, n, c.off, size)
		}
		tok, err := c.next(int(n))
		if err != nil {
			return nil, err
		}
		buf = append(buf, tok...)
		ends[i] = len(buf)
	}
	f.Vocab = make([][]byte, nTok)
	for i, start := 0, 0; i < nTok; i++ {
		f.Vocab[i] = buf[start:ends[i]:ends[i]]
		start = ends[i]
	}
	if headerOnly {
		return f, nil
	}

	// Tensors: their headers first, their data once the whole file has been checked.
	v := newValidator(path, f)
	var offs []int64
	for c.left() > 0 {
		t, off, err := readGGMLTensor(c, v)
		if err != nil {
			return nil, err
		}
		v.add(t)
		offs = append(offs, off)
	}
	if len(f.Tensors) == 0 {
		return nil, newError(path, ErrNoTensors, "no tensors (header only, %d bytes)", size)
	}
	if err := v.finish(); err != nil {
		return nil, err
	}
	for i, name := range f.Names {
		t := f.Tensors[name]
		if t.Data, err = src.bytes(offs[i], nbytes(t.DType, t.Shape)); err != nil {
			return nil, err
		}
	}
	return f, nil
}

const (
	maxNameLen = 256
	maxDims    = 4
)

// readGGMLTensor reads one tensor's header and returns the tensor, without its data, and the
// offset of the data, which it skips.
func readGGMLTensor(c *cursor, v *validator) (*Tensor, int64, error) {
	path, size := c.src.path, c.src.size
	at := c.off
	if c.left() < 12 {
		return nil, 0, newError(path, ErrTruncated, "truncated: tensor header at offset %d, file has %d bytes", at, size)
	}
	var hdr [3]int
	if err := c.i32s(hdr[:]); err != nil {
		return nil, 0, err
	}
	nDims, nameLen, ttype := hdr[0], hdr[1], int32(hdr[2])
	if nDims < 1 || nDims > maxDims {
		return nil, 0, newError(path, ErrInvalid, "tensor at offset %d: %d dimensions, want 1..%d", at, nDims, maxDims)
	}
	if nameLen < 1 || nameLen > maxNameLen {
		return nil, 0, newError(path, ErrInvalid, "tensor at offset %d: name of %d bytes, want 1..%d", at, nameLen, maxNameLen)
	}
	if c.left() < int64(4*nDims+nameLen) {
		return nil, 0, newError(path, ErrTruncated, "truncated: tensor header at offset %d needs %d bytes, file has %d", at, 12+4*nDims+nameLen, size)
	}
	ne := make([]int, nDims)
	if err := c.i32s(ne); err != nil {
		return nil, 0, err
	}
	b, err := c.next(nameLen)
	if err != nil {
		return nil, 0, err
	}
	name := string(b)
	if strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f || r == 0xfffd }) {
		return nil, 0, newError(path, ErrInvalid, "tensor at offset %d: name %q is not printable", at, name)
	}
	dt, ok := ggmlTypes[ttype]
	if !ok {
		if s, known := ggmlOtherTypes[ttype]; known {
			return nil, 0, tensorError(path, name, ErrInvalid, "ggml type %d (%s) is not supported", ttype, s)
		}
		return nil, 0, tensorError(path, name, ErrInvalid, "unknown ggml type %d", ttype)
	}
	// PyTorch order is outermost first: reverse ggml's ne.
	shape := make([]int, nDims)
	for i, n := range ne {
		if n < 1 {
			return nil, 0, tensorError(path, name, ErrInvalid, "dimension %d of ne %v", n, ne)
		}
		shape[nDims-1-i] = n
	}
	if isConvBias(name) && len(shape) == 2 && shape[1] == 1 {
		shape = shape[:1]
	}
	t := &Tensor{Name: name, DType: dt, Shape: shape}
	if err := v.check(t); err != nil {
		return nil, 0, err
	}
	n := nbytes(dt, shape)
	if c.left() < int64(n) {
		return nil, 0, newError(path, ErrTruncated, "truncated: tensor %q needs %d bytes at offset %d, file has %d", name, n, c.off, size).withTensor(name)
	}
	off := c.off
	c.off += int64(n)
	return t, off, nil
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
