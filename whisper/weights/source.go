package weights

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// memory is a model's bytes already in memory: a file mapping, or a file read whole where there
// is no mmap. It is an io.ReaderAt whose Bytes method lets the parsers view tensors in place.
type memory []byte

// ReadAt copies the bytes at off into p, as io.ReaderAt says.
func (m memory) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= int64(len(m)) {
		return 0, io.EOF
	}
	n := copy(p, m[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Bytes returns all of the bytes, for reading them in place.
func (m memory) Bytes() []byte { return m }

// inPlace is implemented by an io.ReaderAt that holds all of its bytes in memory.
type inPlace interface {
	Bytes() []byte
}

// source is a model's bytes as the parsers read them: through an io.ReaderAt, or in place where
// the reader holds them in memory (a file mapping), so that tensors need no copy. Nothing in it
// touches the file system.
type source struct {
	path string // for errors
	r    io.ReaderAt
	size int64
	mem  []byte // all size bytes when r holds them in memory; nil otherwise
}

func newSource(path string, r io.ReaderAt, size int64) *source {
	s := &source{path: path, r: r, size: size}
	if m, ok := r.(inPlace); ok {
		if b := m.Bytes(); int64(len(b)) == size {
			s.mem = b
		}
	}
	return s
}

// bytes returns the n bytes at off, which the caller has checked lie within the source: a view
// of the source's memory when it has one, a new slice read from the reader otherwise.
func (s *source) bytes(off int64, n int) ([]byte, error) {
	if s.mem != nil {
		return s.mem[off : off+int64(n) : off+int64(n)], nil
	}
	b := make([]byte, n)
	if err := s.readAt(b, off); err != nil {
		return nil, err
	}
	return b, nil
}

// readAt fills p from off. A short read is ErrTruncated (the reader holds less than its stated
// size); any other failure is the reader's error. Both come as an *Error.
func (s *source) readAt(p []byte, off int64) error {
	n, err := s.r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return newError(s.path, ErrTruncated, "truncated: read %d of %d bytes at offset %d of a %d-byte file", n, len(p), off, s.size)
	}
	return &Error{Path: s.path, Err: err, Msg: fmt.Sprintf("read at offset %d: %v", off, err)}
}

// cursor reads a model's header fields in order from a source, tracking the offset. The
// callers check left before each read, so a read fails only when the reader does.
type cursor struct {
	src     *source
	off     int64
	scratch [64]byte
}

func (c *cursor) left() int64 { return c.src.size - c.off }

// next returns the n bytes at the offset and moves past them. Where the source is not in
// memory, short reads share a scratch buffer: the result is valid until the next call.
func (c *cursor) next(n int) ([]byte, error) {
	var b []byte
	switch {
	case c.src.mem != nil:
		b = c.src.mem[c.off : c.off+int64(n)]
	case n <= len(c.scratch):
		b = c.scratch[:n]
		if err := c.src.readAt(b, c.off); err != nil {
			return nil, err
		}
	default:
		var err error
		if b, err = c.src.bytes(c.off, n); err != nil {
			return nil, err
		}
	}
	c.off += int64(n)
	return b, nil
}

// i32s reads len(v) little-endian int32 values into v.
func (c *cursor) i32s(v []int) error {
	b, err := c.next(4 * len(v))
	if err != nil {
		return err
	}
	for i := range v {
		v[i] = int(int32(binary.LittleEndian.Uint32(b[4*i:])))
	}
	return nil
}

// u32 reads one little-endian uint32.
func (c *cursor) u32() (uint32, error) {
	b, err := c.next(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}
