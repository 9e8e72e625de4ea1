package weights

import (
	"fmt"
	"strings"

	"github.com/verbatimhq/verbatim/tensor"
)

// validator checks tensors one by one against a configuration's layout as a file is parsed.
type validator struct {
	path   string
	layout []Spec
	want   map[string][]int
	f      *File
}

func newValidator(path string, f *File) *validator {
	layout := f.Config.Layout()
	want := make(map[string][]int, len(layout))
	for _, s := range layout {
		want[s.Name] = s.Shape
	}
	f.Tensors = make(map[string]*Tensor, len(layout))
	return &validator{path: path, layout: layout, want: want, f: f}
}

// check validates a tensor's name, shape and dtype before its data is located.
func (v *validator) check(t *Tensor) error {
	want, ok := v.want[t.Name]
	if !ok {
		return tensorError(v.path, t.Name, ErrInvalid, "unknown tensor (not part of a %s model)", v.f.Arch)
	}
	if _, dup := v.f.Tensors[t.Name]; dup {
		return tensorError(v.path, t.Name, ErrInvalid, "duplicate")
	}
	if !tensor.SameShape(t.Shape, want) {
		return tensorError(v.path, t.Name, ErrInvalid, "shape %v, want %v", t.Shape, want)
	}
	if err := allowedDType(t.Name, t.Shape, t.DType); err != nil {
		return tensorError(v.path, t.Name, ErrInvalid, "%v", err)
	}
	return nil
}

// add records a checked tensor with its data.
func (v *validator) add(t *Tensor) {
	v.f.Tensors[t.Name] = t
	v.f.Names = append(v.f.Names, t.Name)
}

// finish reports the first missing tensor in layout order.
func (v *validator) finish() error {
	for _, s := range v.layout {
		if _, ok := v.f.Tensors[s.Name]; !ok {
			return tensorError(v.path, s.Name, ErrInvalid, "missing (the file has %d of the %d tensors of a %s model)",
				len(v.f.Tensors), len(v.layout), v.f.Arch)
		}
	}
	return nil
}

// allowedDType reports whether a tensor may be stored as dt: f32, f16 and bf16 always; ggml
// block quantizations only for 2-D weight matrices whose rows are a multiple of the block size
// (never for positional embeddings, which whisper.cpp keeps in f32).
func allowedDType(name string, shape []int, dt tensor.DType) error {
	switch dt {
	case tensor.F32, tensor.F16, tensor.BF16:
		return nil
	case tensor.Q8_0, tensor.Q5_0, tensor.Q5_1, tensor.Q4_0:
		if len(shape) != 2 || !strings.HasSuffix(name, ".weight") {
			return fmt.Errorf("dtype %s is only allowed for 2-D weight matrices, not shape %v", dt, shape)
		}
		if shape[1]%dt.BlockSize() != 0 {
			return fmt.Errorf("dtype %s needs rows that are a multiple of %d, got %d", dt, dt.BlockSize(), shape[1])
		}
		return nil
	}
	return fmt.Errorf("dtype %s is not allowed for weights", dt)
}

// nbytes is the size of a tensor's data; shape and dtype must have passed check.
func nbytes(dt tensor.DType, shape []int) int {
	if len(shape) == 0 {
		return dt.RowBytes(1)
	}
	return dt.RowBytes(shape[len(shape)-1]) * tensor.Numel(shape[:len(shape)-1])
}
