package whisper

import "github.com/verbatimhq/verbatim/tensor"

// workspace is a set of F32 scratch buffers on a backend, grown on demand and reused, with sets
// of views over them cached by a key (batch size, tokens per step), so that a steady decode loop
// allocates neither device memory nor Go garbage.
type workspace struct {
	b     tensor.Backend
	buf   []*tensor.Tensor
	cache map[[2]int]any
}

func newWorkspace(b tensor.Backend) *workspace {
	return &workspace{b: b, cache: map[[2]int]any{}}
}

// reserve makes buffer i hold at least sizes[i] elements. Growing a buffer drops every cached
// view set, since their views point at the freed buffer.
func (w *workspace) reserve(sizes ...int) {
	for len(w.buf) < len(sizes) {
		w.buf = append(w.buf, nil)
	}
	for i, n := range sizes {
		if w.buf[i] != nil && w.buf[i].Len() >= n {
			continue
		}
		if w.buf[i] != nil {
			w.b.Free(w.buf[i])
		}
		w.buf[i] = allocExplicit(w.b, tensor.F32, n)
		clear(w.cache)
	}
}

// allocExplicit is Alloc for a tensor its caller frees with Free: outside the Go heap where the
// backend can (tensor.ExplicitAlloc).
func allocExplicit(b tensor.Backend, dt tensor.DType, shape ...int) *tensor.Tensor {
	if e, ok := b.(tensor.ExplicitAlloc); ok {
		return e.AllocExplicit(dt, shape...)
	}
	return b.Alloc(dt, shape...)
}

// view returns a tensor of the given shape over the start of buffer i.
func (w *workspace) view(i int, shape ...int) *tensor.Tensor {
	t := w.buf[i]
	if tensor.Numel(shape) > t.Len() {
		panic(tensor.Errorf("workspace buffer %d: view %v larger than %d", i, shape, t.Len()))
	}
	return &tensor.Tensor{DType: t.DType, Shape: append([]int(nil), shape...), Buf: t.Buf, Offset: t.Offset}
}

// viewF16 returns an F16 tensor of the given shape over the start of buffer i (an F32 buffer
// holds twice as many f16 values).
func (w *workspace) viewF16(i int, shape ...int) *tensor.Tensor {
	t := w.buf[i]
	if tensor.Numel(shape) > 2*t.Len() {
		panic(tensor.Errorf("workspace buffer %d: f16 view %v larger than %d f32", i, shape, t.Len()))
	}
	return &tensor.Tensor{DType: tensor.F16, Shape: append([]int(nil), shape...), Buf: t.Buf, Offset: 2 * t.Offset}
}

func (w *workspace) free() {
	if w == nil {
		return
	}
	for i, t := range w.buf {
		if t != nil {
			w.b.Free(t)
			w.buf[i] = nil
		}
	}
	clear(w.cache)
}
