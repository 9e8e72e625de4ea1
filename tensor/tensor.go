// Package tensor is the contract between the Whisper and VAD models and the compute backends
// (cpu, cuda, metal): dtypes, the Tensor handle, the small op set the models need, and the
// capabilities a backend reports. Backends implement [Backend]; models call only these ops.
//
// Conventions:
//   - Tensors are row-major and contiguous; the last dimension varies fastest. Shapes are written
//     outermost first, as in PyTorch ([rows, cols]).
//   - Ops use destination passing: the caller allocates dst with the right shape and dtype.
//     Activations are F32; weights may be any [DType] the backend reports in Capabilities.
//   - Misuse (a shape or dtype mismatch), an op on a closed backend and a device failure inside
//     an op (a driver error, out of memory) panic with an [*Error], which wraps the cause where
//     there is one. Entry points of the model packages recover that type only, with [Catch], and
//     return it as an error; any other panic is a bug and crashes with its stack.
//   - Ops may run asynchronously on a device; [Backend.ToF32] and [Backend.Sync] wait.
package tensor

import (
	"errors"
	"fmt"
	"strings"
)

// DType is an element type. Quantized types are ggml's block formats (32 elements a block) and are
// used for weights only.
type DType uint8

const (
	F32 DType = iota
	F16
	BF16
	Q8_0
	Q5_0
	Q5_1
	Q4_0
	I32
)

var dtypeNames = [...]string{F32: "f32", F16: "f16", BF16: "bf16", Q8_0: "q8_0", Q5_0: "q5_0", Q5_1: "q5_1", Q4_0: "q4_0", I32: "i32"}

func (d DType) String() string {
	if int(d) < len(dtypeNames) {
		return dtypeNames[d]
	}
	return fmt.Sprintf("dtype(%d)", d)
}

// BlockSize is the number of elements in one storage block (1 for plain types, 32 for ggml quants).
func (d DType) BlockSize() int {
	switch d {
	case Q8_0, Q5_0, Q5_1, Q4_0:
		return 32
	}
	return 1
}

// BlockBytes is the size in bytes of one storage block.
func (d DType) BlockBytes() int {
	switch d {
	case F32, I32:
		return 4
	case F16, BF16:
		return 2
	case Q8_0:
		return 2 + 32 // f16 scale + 32 int8
	case Q5_0:
		return 2 + 4 + 16 // f16 scale + 32 high bits + 32 nibbles
	case Q5_1:
		return 2 + 2 + 4 + 16 // f16 scale, f16 min, high bits, nibbles
	case Q4_0:
		return 2 + 16 // f16 scale + 32 nibbles
	}
	panic(Errorf("unknown dtype %d", d))
}

// Quantized reports whether d is a ggml block-quantized type.
func (d DType) Quantized() bool { return d.BlockSize() > 1 }

// ParseDType returns the dtype named s ("f32", "f16", "q8_0", ...).
func ParseDType(s string) (DType, error) {
	for i, n := range dtypeNames {
		if n == strings.ToLower(s) {
			return DType(i), nil
		}
	}
	return 0, fmt.Errorf("unknown dtype %q", s)
}

// RowBytes is the number of bytes n elements of d take; n must be a multiple of d.BlockSize().
func (d DType) RowBytes(n int) int {
	bs := d.BlockSize()
	if n%bs != 0 {
		panic(Errorf("%d elements of %s: not a multiple of the block size %d", n, d, bs))
	}
	return n / bs * d.BlockBytes()
}

// Buffer is a backend's storage. Only the backend that made a buffer may read it.
type Buffer interface {
	// Backend returns the backend that owns the buffer.
	Backend() Backend
}

// Tensor is a view of a backend buffer: a dtype, a shape and an element offset into the buffer.
// Tensors are values; views share the buffer. The zero Tensor is invalid.
type Tensor struct {
	DType  DType
	Shape  []int
	Buf    Buffer
	Offset int // in elements from the start of Buf (a multiple of the block size)
}

// Len is the number of elements.
func (t *Tensor) Len() int { return Numel(t.Shape) }

// Rank is the number of dimensions.
func (t *Tensor) Rank() int { return len(t.Shape) }

// Dim returns dimension i; negative i counts from the end.
func (t *Tensor) Dim(i int) int {
	if i < 0 {
		i += len(t.Shape)
	}
	return t.Shape[i]
}

// Rows is the product of all dimensions but the last.
func (t *Tensor) Rows() int { return Numel(t.Shape[:len(t.Shape)-1]) }

// Reshape returns a view with the same elements and another shape. One dimension may be -1.
func (t *Tensor) Reshape(shape ...int) *Tensor {
	s := append([]int(nil), shape...)
	free, n := -1, 1
	for i, d := range s {
		if d == -1 {
			if free >= 0 {
				panic(Errorf("reshape %v to %v: two free dimensions", t.Shape, shape))
			}
			free = i
			continue
		}
		n *= d
	}
	if free >= 0 {
		if n == 0 || t.Len()%n != 0 {
			panic(Errorf("reshape %v to %v: size mismatch", t.Shape, shape))
		}
		s[free] = t.Len() / n
		n *= s[free]
	}
	if n != t.Len() {
		panic(Errorf("reshape %v to %v: %d elements, want %d", t.Shape, shape, t.Len(), n))
	}
	return &Tensor{DType: t.DType, Shape: s, Buf: t.Buf, Offset: t.Offset}
}

// Slice returns the view of rows [i, j) along the first dimension.
func (t *Tensor) Slice(i, j int) *Tensor {
	if i < 0 || j > t.Shape[0] || i > j {
		panic(Errorf("slice [%d:%d] of %v", i, j, t.Shape))
	}
	inner := Numel(t.Shape[1:])
	s := append([]int{j - i}, t.Shape[1:]...)
	return &Tensor{DType: t.DType, Shape: s, Buf: t.Buf, Offset: t.Offset + i*inner}
}

func (t *Tensor) String() string { return fmt.Sprintf("%s%v", t.DType, t.Shape) }

// Numel is the product of the dimensions.
func Numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// SameShape reports whether a and b have equal shapes.
func SameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ErrNotImplemented is returned (or panicked, wrapped in an *Error) by a backend for an op or
// dtype it does not support. Callers check [Backend.Capabilities] first.
var ErrNotImplemented = errors.New("not implemented by this backend")

// Error is the panic value of a misused op, of an op on a closed backend, and of a device failure
// inside an op. It is the only panic value [Catch] recovers.
type Error struct {
	Msg string
	Err error // optional cause, e.g. ErrNotImplemented or a backend's driver error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return "tensor: " + e.Msg + ": " + e.Err.Error()
	}
	return "tensor: " + e.Msg
}
func (e *Error) Unwrap() error { return e.Err }

// Errorf makes an *Error.
func Errorf(format string, args ...any) *Error { return &Error{Msg: fmt.Sprintf(format, args...)} }

// Catch recovers a panic whose value is an *Error, or an error that wraps one (errors.As), into
// *err. Use as `defer tensor.Catch(&err)` at exported entry points, so that a misused op or a
// device failure inside an op reaches the caller as an error.
//
// Any other panic (a nil dereference, an index out of range, a panic with a string or a plain
// error) is a programming error: Catch panics again with the same value. It does so inside the
// deferred call, before the panicking frames unwind, so the crash report still shows the stack of
// the original panic, below the line "[recovered, repanicked]".
func Catch(err *error) {
	r := recover()
	if r == nil {
		return
	}
	if e, ok := r.(error); ok {
		var te *Error
		if errors.As(e, &te) {
			*err = e
			return
		}
	}
	panic(r)
}
