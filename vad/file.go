package vad

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/verbatimhq/verbatim/tensor"
)

// The Silero VAD ggml file as whisper.cpp's converter writes it (little-endian; not the Whisper
// ggml layout):
//
//	u32 magic 0x67676d6c ("lmgg" on disk)
//	i32 len; len bytes model type ("silero-16k")
//	i32 major, minor, patch (6, 2, 0)
//	i32 n_window (512), n_context (64)
//	i32 n_encoder_layers; n x (i32 in_channels, out_channels, kernel_size)
//	i32 lstm_input_size, lstm_hidden_size, final_conv_in, final_conv_out
//	tensors to the end of the file: i32 n_dims (0..4), name_len, ggml_type;
//	    i32 ne[n_dims] (innermost first); name; data (no padding)

const (
	ggmlMagic = 0x67676d6c
	modelType = "silero-16k"
	ggmlF32   = 0
	ggmlF16   = 1

	maxTypeLen  = 64
	maxNameLen  = 256
	maxDims     = 4
	maxChannels = 4096
	maxLayers   = 16
)

// Sentinel errors of [Open] and [OpenBytes], wrapped with the file name and the detail.
var (
	// ErrNotModel: the bytes are not a Silero VAD ggml file (bad magic or model type).
	ErrNotModel = errors.New("not a silero vad ggml file")
	// ErrTruncated: the file ends inside the header or a tensor.
	ErrTruncated = errors.New("truncated")
	// ErrInvalid: hyperparameters the model cannot run, or a tensor that is unknown, repeated,
	// missing, or of the wrong shape or type.
	ErrInvalid = errors.New("invalid vad model")
)

// FormatError is the error of a file that cannot be loaded: the file, the tensor when one is at
// fault, and the sentinel (ErrNotModel, ErrTruncated or ErrInvalid) it unwraps to.
type FormatError struct {
	File   string // the path or name given to Open/OpenBytes
	Tensor string // the tensor at fault, or ""
	Msg    string
	Err    error
}

func (e *FormatError) Error() string {
	if e.Tensor != "" {
		return fmt.Sprintf("vad %s: tensor %s: %s", e.File, e.Tensor, e.Msg)
	}
	return fmt.Sprintf("vad %s: %s", e.File, e.Msg)
}

func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(file, tensorName string, sentinel error, format string, args ...any) error {
	return &FormatError{File: file, Tensor: tensorName, Msg: fmt.Sprintf(format, args...), Err: sentinel}
}

// Layer is one encoder convolution of the header.
type Layer struct {
	In, Out, Kernel int
}

// Header is the model description at the start of the file.
type Header struct {
	Type       string // "silero-16k"
	Version    [3]int // major, minor, patch
	Window     int    // samples per frame (512)
	Context    int    // samples of the previous frame the model may see (64)
	Layers     []Layer
	LSTMInput  int
	LSTMHidden int
	FinalIn    int
	FinalOut   int
}

// rawTensor is one tensor of the file: its ggml dims (innermost first, as stored), dtype and
// bytes (a sub-slice of the file's bytes).
type rawTensor struct {
	ne    []int
	dtype tensor.DType
	data  []byte
}

type file struct {
	Header
	tensors map[string]rawTensor
}

// Tensor names in the file.
const (
	nameBasis    = "_model.stft.forward_basis_buffer"
	nameWIH      = "_model.decoder.rnn.weight_ih"
	nameWHH      = "_model.decoder.rnn.weight_hh"
	nameBIH      = "_model.decoder.rnn.bias_ih"
	nameBHH      = "_model.decoder.rnn.bias_hh"
	nameOutW     = "_model.decoder.decoder.2.weight"
	nameOutB     = "_model.decoder.decoder.2.bias"
	encoderNameF = "_model.encoder.%d.reparam_conv.%s"
)

// spec is the expected type and ggml dims (innermost first) of a tensor.
type spec struct {
	dtype tensor.DType
	ne    []int
}

// expected lists every tensor the header implies. Shapes are compared with trailing ones dropped,
// as ggml does (the file stores the output bias as a 0-dim tensor and the output weight as 1-dim).
func (h *Header) expected() map[string]spec {
	bins := h.Layers[0].In
	m := map[string]spec{
		nameBasis: {tensor.F16, []int{nfft(bins), 1, 2 * bins}},
		nameWIH:   {tensor.F32, []int{h.LSTMInput, 4 * h.LSTMHidden}},
		nameWHH:   {tensor.F32, []int{h.LSTMHidden, 4 * h.LSTMHidden}},
		nameBIH:   {tensor.F32, []int{4 * h.LSTMHidden}},
		nameBHH:   {tensor.F32, []int{4 * h.LSTMHidden}},
		nameOutW:  {tensor.F16, []int{h.FinalIn, h.FinalOut}},
		nameOutB:  {tensor.F32, []int{h.FinalOut}},
	}
	for i, l := range h.Layers {
		m[fmt.Sprintf(encoderNameF, i, "weight")] = spec{tensor.F16, []int{l.Kernel, l.In, l.Out}}
		m[fmt.Sprintf(encoderNameF, i, "bias")] = spec{tensor.F32, []int{l.Out}}
	}
	return m
}

// nfft is the STFT length whose one-sided spectrum has bins bins.
func nfft(bins int) int { return 2 * (bins - 1) }

// Encoder strides and padding of Silero v5/v6 (not in the header).
var encoderStrides = []int{1, 2, 2, 1}

const encoderPad = 1

// validate checks that the hyperparameters describe the network this package runs.
func (h *Header) validate() error {
	if h.Window != 512 || h.Context != 64 {
		return fmt.Errorf("window %d and context %d samples, want 512 and 64", h.Window, h.Context)
	}
	if len(h.Layers) != len(encoderStrides) {
		return fmt.Errorf("%d encoder layers, want %d", len(h.Layers), len(encoderStrides))
	}
	for i, l := range h.Layers {
		if l.In < 1 || l.In > maxChannels || l.Out < 1 || l.Out > maxChannels {
			return fmt.Errorf("encoder layer %d: %d -> %d channels, want 1..%d", i, l.In, l.Out, maxChannels)
		}
		if l.Kernel != 2*encoderPad+1 {
			return fmt.Errorf("encoder layer %d: kernel %d, want %d", i, l.Kernel, 2*encoderPad+1)
		}
		if i > 0 && l.In != h.Layers[i-1].Out {
			return fmt.Errorf("encoder layer %d takes %d channels, layer %d gives %d", i, l.In, i-1, h.Layers[i-1].Out)
		}
	}
	if n := nfft(h.Layers[0].In); n < 2 || n > h.Window || n%2 != 0 {
		return fmt.Errorf("encoder layer 0 takes %d frequency bins: an STFT of %d points, want 2..%d", h.Layers[0].In, n, h.Window)
	}
	if last := h.Layers[len(h.Layers)-1].Out; h.LSTMInput != last {
		return fmt.Errorf("lstm input %d, encoder gives %d", h.LSTMInput, last)
	}
	if h.LSTMHidden < 1 || h.LSTMHidden > maxChannels {
		return fmt.Errorf("lstm hidden size %d, want 1..%d", h.LSTMHidden, maxChannels)
	}
	if h.FinalIn != h.LSTMHidden || h.FinalOut != 1 {
		return fmt.Errorf("final conv %d -> %d, want %d -> 1", h.FinalIn, h.FinalOut, h.LSTMHidden)
	}
	return nil
}

// cursor reads little-endian values, tracking the offset.
type cursor struct {
	b   []byte
	off int
}

func (c *cursor) left() int { return len(c.b) - c.off }

func (c *cursor) i32() int {
	v := int32(binary.LittleEndian.Uint32(c.b[c.off:]))
	c.off += 4
	return int(v)
}

// ints reads n i32 values, or reports false if fewer than 4n bytes are left.
func (c *cursor) ints(n int) ([]int, bool) {
	if c.left() < 4*n {
		return nil, false
	}
	v := make([]int, n)
	for i := range v {
		v[i] = c.i32()
	}
	return v, true
}

// parse reads and validates a Silero VAD ggml file held in b. name is used in errors only.
// The tensors' data alias b.
func parse(name string, b []byte) (*file, error) {
	c := &cursor{b: b}
	if c.left() < 8 {
		return nil, formatErr(name, "", ErrNotModel, "%d bytes, too short for a model file", len(b))
	}
	if m := binary.LittleEndian.Uint32(b); m != ggmlMagic {
		return nil, formatErr(name, "", ErrNotModel, "bad magic %#08x, want %#08x", m, ggmlMagic)
	}
	c.off = 4
	n := c.i32()
	if n < 1 || n > maxTypeLen {
		return nil, formatErr(name, "", ErrNotModel, "model type of %d bytes, want 1..%d", n, maxTypeLen)
	}
	if c.left() < n {
		return nil, formatErr(name, "", ErrTruncated, "truncated: model type needs %d bytes at offset %d, file has %d", n, c.off, len(b))
	}
	f := &file{tensors: map[string]rawTensor{}}
	h := &f.Header
	h.Type = string(b[c.off : c.off+n])
	c.off += n
	v, ok := c.ints(6)
	if !ok {
		return nil, formatErr(name, "", ErrTruncated, "truncated: version and window at offset %d, file has %d bytes", c.off, len(b))
	}
	h.Version = [3]int{v[0], v[1], v[2]}
	h.Window, h.Context = v[3], v[4]
	nl := v[5]
	if nl < 1 || nl > maxLayers {
		return nil, formatErr(name, "", ErrInvalid, "%d encoder layers, want 1..%d", nl, maxLayers)
	}
	v, ok = c.ints(3*nl + 4)
	if !ok {
		return nil, formatErr(name, "", ErrTruncated, "truncated: hyperparameters at offset %d, file has %d bytes", c.off, len(b))
	}
	for i := range nl {
		h.Layers = append(h.Layers, Layer{In: v[3*i], Out: v[3*i+1], Kernel: v[3*i+2]})
	}
	v = v[3*nl:]
	h.LSTMInput, h.LSTMHidden, h.FinalIn, h.FinalOut = v[0], v[1], v[2], v[3]
	if h.Type != modelType {
		return nil, formatErr(name, "", ErrNotModel, "model type %q, want %q", h.Type, modelType)
	}
	if err := h.validate(); err != nil {
		return nil, formatErr(name, "", ErrInvalid, "%v", err)
	}

	want := h.expected()
	for c.left() > 0 {
		at := c.off
		hdr, ok := c.ints(3)
		if !ok {
			return nil, formatErr(name, "", ErrTruncated, "truncated: tensor header at offset %d, file has %d bytes", at, len(b))
		}
		nd, nameLen, ttype := hdr[0], hdr[1], hdr[2]
		if nd < 0 || nd > maxDims {
			return nil, formatErr(name, "", ErrInvalid, "tensor at offset %d: %d dimensions, want 0..%d", at, nd, maxDims)
		}
		if nameLen < 1 || nameLen > maxNameLen {
			return nil, formatErr(name, "", ErrInvalid, "tensor at offset %d: name of %d bytes, want 1..%d", at, nameLen, maxNameLen)
		}
		ne, ok := c.ints(nd)
		if !ok || c.left() < nameLen {
			return nil, formatErr(name, "", ErrTruncated, "truncated: tensor header at offset %d, file has %d bytes", at, len(b))
		}
		tn := string(b[c.off : c.off+nameLen])
		c.off += nameLen
		s, known := want[tn]
		switch {
		case !known:
			return nil, formatErr(name, fmt.Sprintf("%q", tn), ErrInvalid, "unknown tensor at offset %d", at)
		case f.tensors[tn].data != nil:
			return nil, formatErr(name, tn, ErrInvalid, "repeated at offset %d", at)
		}
		var dt tensor.DType
		switch ttype {
		case ggmlF32:
			dt = tensor.F32
		case ggmlF16:
			dt = tensor.F16
		default:
			return nil, formatErr(name, tn, ErrInvalid, "ggml type %d, want %d (%s)", ttype, ggmlType(s.dtype), s.dtype)
		}
		if dt != s.dtype {
			return nil, formatErr(name, tn, ErrInvalid, "type %s, want %s", dt, s.dtype)
		}
		if !sameDims(ne, s.ne) {
			return nil, formatErr(name, tn, ErrInvalid, "shape %v, want %v (ggml order, innermost first)", ne, s.ne)
		}
		size := tensor.Numel(s.ne) * dt.BlockBytes()
		if c.left() < size {
			return nil, formatErr(name, tn, ErrTruncated, "truncated: %d bytes of data at offset %d, file has %d", size, c.off, len(b))
		}
		f.tensors[tn] = rawTensor{ne: s.ne, dtype: dt, data: b[c.off : c.off+size : c.off+size]}
		c.off += size
	}
	if len(f.tensors) == 0 {
		return nil, formatErr(name, "", ErrInvalid, "no tensors (header only, %d bytes)", len(b))
	}
	var missing []string
	for tn := range want {
		if _, ok := f.tensors[tn]; !ok {
			missing = append(missing, tn)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, formatErr(name, missing[0], ErrInvalid, "missing (%d of %d tensors missing: %s)",
			len(missing), len(want), strings.Join(missing, ", "))
	}
	return f, nil
}

func ggmlType(dt tensor.DType) int {
	if dt == tensor.F16 {
		return ggmlF16
	}
	return ggmlF32
}

// sameDims compares ggml dims with trailing ones ignored.
func sameDims(a, b []int) bool {
	trim := func(x []int) []int {
		for len(x) > 0 && x[len(x)-1] == 1 {
			x = x[:len(x)-1]
		}
		return x
	}
	return tensor.SameShape(trim(a), trim(b))
}
