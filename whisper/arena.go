package whisper

import "github.com/verbatimhq/verbatim/tensor"

// arena is one F32 buffer that, on a synchronous backend (the CPU's), holds the encoder's
// scratch while it encodes and a decoder's self-attention caches between encodings: a
// transcription encodes a window, then decodes it, so the two never need their memory at the
// same time, and sharing it keeps them from adding up in the peak resident memory (base with 5
// beams: 18 MB of encoder scratch and 30 MB of f16 caches). The caches of an open session stay
// where they are: an encoding then uses the model's own encoder workspace, as on asynchronous
// backends (whose queued work may still read memory that a later op would reuse), which have no
// arena.
type arena struct {
	t     *tensor.Tensor
	kv    *kvCaches      // the caches placed in t (open or pooled), nil if none
	views map[[2]int]any // encoder views over t, by batch size
}

func newArena(b tensor.Backend) *arena {
	if b.Capabilities().Async {
		return nil
	}
	return &arena{views: map[[2]int]any{}}
}

// reserve makes t hold at least n floats; the caller makes sure no caches are in it. Growing
// drops the encoder views over the old buffer.
func (a *arena) reserve(b tensor.Backend, n int) *tensor.Tensor {
	if a.t == nil || a.t.Len() < n {
		if a.t != nil {
			b.Free(a.t)
		}
		a.t = allocExplicit(b, tensor.F32, n)
		clear(a.views)
	}
	return a.t
}

func (a *arena) free(b tensor.Backend) {
	if a != nil && a.t != nil {
		b.Free(a.t)
		a.t = nil
		clear(a.views)
	}
}

// arenaForEncoder returns the arena with at least n floats for an encoding, taking the memory of
// the pooled caches if they are there; nil without an arena or while an open session's caches
// are in it.
func (m *Model) arenaForEncoder(n int) *tensor.Tensor {
	a := m.ar
	if a == nil {
		return nil
	}
	if a.kv != nil {
		if a.kv != m.pool {
			return nil
		}
		m.pool = nil
		a.kv.free(m.b)
	}
	return a.reserve(m.b, n)
}

// arenaCaches returns empty caches for batch sequences placed in the arena (their contents are
// whatever the encoder left: a session reads only the positions it wrote), or nil without an
// arena or when caches are in it already.
func (m *Model) arenaCaches(batch int) *kvCaches {
	a := m.ar
	if a == nil || a.kv != nil {
		return nil
	}
	c, dt := m.Config, m.cacheDType()
	per := batch * c.NTextCtx * c.NTextState
	count := 2*c.NTextLayer + 1
	floats := count * per
	if dt == tensor.F16 {
		floats = (floats + 1) / 2
	}
	t := a.reserve(m.b, floats)
	at := func(j int) *tensor.Tensor {
		off := t.Offset + j*per
		if dt == tensor.F16 {
			off = 2*t.Offset + j*per
		}
		return &tensor.Tensor{DType: dt, Shape: []int{batch, c.NTextCtx, c.NTextState}, Buf: t.Buf, Offset: off}
	}
	kv := &kvCaches{batch: batch, ar: a}
	for l := range c.NTextLayer {
		kv.k = append(kv.k, at(2*l))
		kv.v = append(kv.v, at(2*l+1))
	}
	kv.spare = at(2 * c.NTextLayer)
	a.kv = kv
	return kv
}
