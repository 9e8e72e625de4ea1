package whisper

import (
	"errors"
	"fmt"
	"io"
	"slices"
)

// Span is a stretch of the input in seconds, [Start, End).
type Span struct{ Start, End float64 }

// AudioSource yields 16 kHz mono samples in order, as io.Reader does bytes.
type AudioSource interface {
	// Read fills p with the next samples and returns how many it wrote. At the end of the input
	// it returns io.EOF, possibly with n > 0. Read is called from one goroutine, never
	// concurrently; any other error ends the transcription with that error wrapped.
	Read(p []float32) (n int, err error)
}

// virtualReader reads the virtual timeline from an AudioSource: the samples of the regions, one
// region after another, the gaps read and dropped. It holds the samples from the last drop
// position to the furthest one read: buf[off:]. A drop only moves off; the held samples move
// to the buffer's start when room is needed after them (room), which the batcher's reads ahead
// do on a goroutine an input, where moving them at every drop (about two windows an input) was
// the batcher's own goroutine's work while the device waited: 0.07 s of turbo's 4 s default
// decoding of 32 inputs in a CPU profile on an H200's host (2026-12-07).
type virtualReader struct {
	src   AudioSource
	tl    *timeline
	ri    int // the region of the next source sample
	pos   int // source samples read
	base  int // virtual position of buf[off]
	buf   []float32
	off   int // the dropped samples still at buf's start
	chunk []float32
	eof   bool
	idle  int // reads in a row that returned nothing
}

func newVirtualReader(src AudioSource, tl *timeline) *virtualReader {
	return &virtualReader{src: src, tl: tl}
}

// read returns a copy of the virtual samples [from, to), cut short at the end of the input.
// from must not be before the last drop position.
func (vr *virtualReader) read(from, to int) ([]float32, error) {
	lo, hi, err := vr.reach(from, to)
	if err != nil {
		return nil, err
	}
	return slices.Clone(vr.held()[lo:hi]), nil
}

// held is the samples held, from virtual position base.
func (vr *virtualReader) held() []float32 { return vr.buf[vr.off:] }

// room makes room for n samples after those held: it moves them to the buffer's start where
// that suffices, else grows the buffer.
func (vr *virtualReader) room(n int) {
	if len(vr.buf)+n <= cap(vr.buf) {
		return
	}
	if vr.off > 0 {
		vr.buf = vr.buf[:copy(vr.buf, vr.buf[vr.off:])]
		vr.off = 0
	}
	if len(vr.buf)+n > cap(vr.buf) {
		vr.buf = slices.Grow(vr.buf, n)
	}
}

// reserve grows the buffer, if need be, to hold the virtual samples up to to and a chunk more,
// so that reading them takes one allocation. Nothing at the end of the input.
func (vr *virtualReader) reserve(to int) {
	if need := to - vr.base + readChunk; !vr.eof && need > cap(vr.buf)-vr.off {
		vr.room(need - len(vr.held()))
	}
}

// extent is len(read(from, to)), without the copy.
func (vr *virtualReader) extent(from, to int) (int, error) {
	lo, hi, err := vr.reach(from, to)
	return hi - lo, err
}

// reach reads the source until the buffer holds the virtual samples [from, to) or the input
// ends, and returns where in buf those it holds lie. The buffer grows once, to hold [base, to)
// and a chunk, rather than by append's steps (each a copy of all it holds).
func (vr *virtualReader) reach(from, to int) (lo, hi int, err error) {
	if from < vr.base {
		return 0, 0, fmt.Errorf("read audio: position %d already dropped (at %d)", from, vr.base)
	}
	vr.reserve(to)
	for !vr.eof && vr.base+len(vr.held()) < to {
		if err := vr.fill(); err != nil {
			return 0, 0, err
		}
	}
	hi = min(to, vr.base+len(vr.held())) - vr.base
	return min(from-vr.base, hi), hi, nil
}

// fill reads one chunk of the source and keeps its samples that lie in regions.
func (vr *virtualReader) fill() error {
	if vr.chunk == nil {
		vr.chunk = make([]float32, readChunk)
	}
	n, err := vr.src.Read(vr.chunk)
	s, p := vr.chunk[:n], vr.pos
	rs := vr.tl.regions
	for len(s) > 0 && vr.ri < len(rs) {
		g := rs[vr.ri]
		switch {
		case p >= g.end:
			vr.ri++
		case p < g.src:
			k := min(len(s), g.src-p)
			s, p = s[k:], p+k
		default:
			k := min(len(s), g.end-p)
			vr.room(k)
			vr.buf = append(vr.buf, s[:k]...)
			s, p = s[k:], p+k
		}
	}
	vr.pos += n
	switch {
	case errors.Is(err, io.EOF):
		vr.eof = true
		vr.tl.setEnd(vr.pos)
		return nil
	case err != nil:
		return fmt.Errorf("read audio: %w", err)
	case n == 0:
		if vr.idle++; vr.idle > 100 {
			return fmt.Errorf("read audio: %w", io.ErrNoProgress)
		}
	default:
		vr.idle = 0
	}
	return nil
}

// seek moves the reader to virtual position v from its start: the samples before v are read and
// dropped. It reports io.ErrUnexpectedEOF when the input ends before v.
func (vr *virtualReader) seek(v int) error {
	for !vr.eof && vr.base+len(vr.held()) < v {
		if err := vr.fill(); err != nil {
			return err
		}
		vr.drop(min(v, vr.base+len(vr.held())))
	}
	if vr.base+len(vr.held()) < v {
		return fmt.Errorf("read audio: the input ends before the checkpoint: %w", io.ErrUnexpectedEOF)
	}
	vr.drop(v)
	return nil
}

// drop forgets the samples before virtual position pos.
func (vr *virtualReader) drop(pos int) {
	if pos <= vr.base {
		return
	}
	k := min(pos-vr.base, len(vr.held()))
	vr.off += k
	vr.base += k
	if vr.off == len(vr.buf) { // nothing held: the whole buffer is room again
		vr.buf, vr.off = vr.buf[:0], 0
	}
}

// drain reads the source to its end and returns its length in samples.
func (vr *virtualReader) drain() (int, error) {
	vr.buf, vr.off = nil, 0
	for !vr.eof {
		vr.base += len(vr.buf)
		vr.buf = vr.buf[:0]
		if err := vr.fill(); err != nil {
			return 0, err
		}
	}
	return vr.pos, nil
}
