package weights

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/verbatimhq/verbatim/durable"
	"github.com/verbatimhq/verbatim/tensor"
)

// writer is a buffered writer with a sticky error.
type writer struct {
	w   io.Writer
	err error
	n   int64
}

func (w *writer) bytes(b []byte) {
	if w.err != nil {
		return
	}
	var n int
	n, w.err = w.w.Write(b)
	w.n += int64(n)
}

func (w *writer) u32(v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	w.bytes(b[:])
}

// writeAtomic writes path through a temp file in the same folder (package durable): on error
// the temp file is removed and path is untouched.
func writeAtomic(path string, fill func(w *writer) error) error {
	return durable.Write(path, 0o644, func(f io.Writer) error {
		bw := bufio.NewWriterSize(f, 1<<20)
		w := &writer{w: bw}
		if err := fill(w); err != nil {
			return err
		}
		if w.err == nil {
			w.err = bw.Flush()
		}
		return w.err
	})
}

// checkWrite validates a tensor set before writing: cfg valid, exactly its tensors, shapes as
// the layout says, dtypes allowed in the format, data of the right size where present.
func checkWrite(cfg Config, tensors []*Tensor, format Format) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	layout := cfg.Layout()
	want := make(map[string][]int, len(layout))
	for _, s := range layout {
		want[s.Name] = s.Shape
	}
	seen := make(map[string]bool, len(tensors))
	for _, t := range tensors {
		w, ok := want[t.Name]
		switch {
		case !ok:
			return fmt.Errorf("tensor %q: unknown tensor (not part of a %s model)", t.Name, cfg.Name())
		case seen[t.Name]:
			return fmt.Errorf("tensor %q: duplicate", t.Name)
		case !tensor.SameShape(t.Shape, w):
			return fmt.Errorf("tensor %q: shape %v, want %v", t.Name, t.Shape, w)
		}
		seen[t.Name] = true
		if err := allowedDType(t.Name, t.Shape, t.DType); err != nil {
			return fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		if format == Safetensors && t.DType.Quantized() {
			return fmt.Errorf("tensor %q: safetensors cannot store %s", t.Name, t.DType)
		}
		if t.Data == nil && t.Load == nil {
			return fmt.Errorf("tensor %q: no data", t.Name)
		}
		if n := nbytes(t.DType, t.Shape); t.Data != nil && len(t.Data) != n {
			return fmt.Errorf("tensor %q: %d bytes of data, want %d", t.Name, len(t.Data), n)
		}
	}
	for _, s := range layout {
		if !seen[s.Name] {
			return fmt.Errorf("tensor %q: missing", s.Name)
		}
	}
	return nil
}
