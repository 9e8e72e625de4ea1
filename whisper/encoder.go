package whisper

import (
	"math"

	"github.com/verbatimhq/verbatim/tensor"
)

// encViews are the encoder's activations for one batch size, views over the model's encoder
// workspace.
type encViews struct {
	conv1 *tensor.Tensor // [B, d, 2T] (shares f's buffer)
	conv2 *tensor.Tensor // [B, d, T] (shares h's buffer)
	x     *tensor.Tensor // [B, T, d] residual stream
	h     *tensor.Tensor // [B, T, d] normalized input of a sublayer, then its output
	q     *tensor.Tensor
	k     *tensor.Tensor
	v     *tensor.Tensor
	a     *tensor.Tensor // attention output
	f     *tensor.Tensor // [B, T, 4d] MLP hidden
}

const (
	slotX = iota
	slotH
	slotQ
	slotK
	slotV
	slotA
	slotF
	slotLast  // decoder: the last position's activations
	slotLogit // decoder: logits
)

// The encoder workspace's buffers: the residual stream, the normalized input, and one of 4n
// floats that holds q, k, v and the attention output side by side during the attention sublayer
// and the MLP's hidden activations during the MLP sublayer, which never overlap in time (each
// sublayer reads only x and h from the other). That is 6n floats instead of 10n: for one window
// of large-v3, 31 MB less.
const (
	encSlotX = iota
	encSlotH
	encSlotF
)

func (m *Model) encViews(batch int) *encViews {
	c := m.Config
	t, d := c.NAudioCtx, c.NAudioState
	n := batch * t * d
	key := [2]int{batch, 0}
	var x, h, f *tensor.Tensor // flat buffers of n, n and 4n floats
	cache := m.encWS.cache
	if a := m.arenaForEncoder(6 * n); a != nil {
		cache = m.ar.views
		if v, ok := cache[key].(*encViews); ok {
			return v
		}
		part := func(off, len int) *tensor.Tensor {
			return &tensor.Tensor{DType: tensor.F32, Shape: []int{len}, Buf: a.Buf, Offset: a.Offset + off}
		}
		x, h, f = part(0, n), part(n, n), part(2*n, 4*n)
	} else {
		if v, ok := cache[key].(*encViews); ok {
			return v
		}
		w := m.encWS
		w.reserve(n, n, 4*n)
		x, h, f = w.buf[encSlotX], w.buf[encSlotH], w.buf[encSlotF]
	}
	view := func(b *tensor.Tensor, shape ...int) *tensor.Tensor {
		return &tensor.Tensor{DType: b.DType, Shape: shape, Buf: b.Buf, Offset: b.Offset}
	}
	// quarter i of the F buffer, as F32 (or F16 values at its start).
	quarter := func(i int, dt tensor.DType) *tensor.Tensor {
		off := f.Offset + i*n
		if dt == tensor.F16 {
			off *= 2
		}
		return &tensor.Tensor{DType: dt, Shape: []int{batch, t, d}, Buf: f.Buf, Offset: off}
	}
	v := &encViews{
		conv1: view(f, batch, d, 2*t),
		conv2: view(h, batch, d, t),
		x:     view(x, batch, t, d),
		h:     view(h, batch, t, d),
		q:     quarter(0, tensor.F32),
		k:     quarter(1, tensor.F32),
		v:     quarter(2, tensor.F32),
		a:     quarter(3, tensor.F32),
		f:     view(f, batch, t, 4*d),
	}
	// The self-attention keys and values in f16 where the cross-attention K/V are (a 16-bit
	// model on a backend that takes F16 K/V): the Linear writes them rounded once, and the
	// attention reads half the bytes.
	if m.halfKV() {
		v.k = quarter(1, tensor.F16)
		v.v = quarter(2, tensor.F16)
	}
	cache[key] = v
	return v
}

// encode runs the encoder on a batch of mel windows and the cross-attention K/V projections of
// every decoder layer. Shape errors panic; Encode recovers them.
func (m *Model) encode(mel []float32, batch int) *Encoded {
	b := m.b
	c := m.Config
	e := &m.enc
	v := m.encViews(batch)

	in := b.FromF32(mel, batch, c.NMels, 2*c.NAudioCtx)
	defer b.Free(in)
	b.Conv1D(v.conv1, in, e.conv1, e.conv1b, 1, 1)
	b.GELU(v.conv1, v.conv1)
	b.Conv1D(v.conv2, v.conv1, e.conv2, e.conv2b, 2, 1)
	b.GELU(v.conv2, v.conv2)
	b.Transpose(v.x, v.conv2)
	b.Add(v.x, v.x, e.pos)

	scale := float32(1 / math.Sqrt(float64(c.NAudioState/c.NAudioHead)))
	for i := range e.blocks {
		w := &e.blocks[i]
		b.LayerNorm(v.h, v.x, w.attnLN, w.attnLNb, lnEps)
		b.Linear(v.q, v.h, w.attn.q, w.attn.qb)
		b.Linear(v.k, v.h, w.attn.k, nil)
		b.Linear(v.v, v.h, w.attn.v, w.attn.vb)
		b.Attention(v.a, v.q, v.k, v.v, c.NAudioHead, c.NAudioCtx, scale, false)
		linearAdd(b, v.x, v.h, v.a, w.attn.o, w.attn.ob)
		mlp(b, v.x, v.h, v.f, w)
	}

	enc := m.newEncoded(batch)
	done := false
	defer func() {
		if !done {
			enc.Close() // a panicking op: release the output, let Encode recover
		}
	}()
	b.LayerNorm(enc.Out, v.x, e.lnPost, e.lnPostb, lnEps)
	for i := range m.dec.blocks {
		w := &m.dec.blocks[i].cross
		b.Linear(enc.crossK[i], enc.Out, w.k, nil)
		b.Linear(enc.crossV[i], enc.Out, w.v, w.vb)
	}
	done = true
	return enc
}

// newEncoded returns an encoder output for batch windows, with the tensors of the last closed
// one if it had the same batch size (large-v3's cross-attention K/V are 500 MB a window).
func (m *Model) newEncoded(batch int) *Encoded {
	if p := m.encPool; p != nil {
		m.encPool = nil
		if p.Windows() == batch {
			return &Encoded{m: m, Out: p.Out, crossK: p.crossK, crossV: p.crossV}
		}
		p.free()
	}
	c := m.Config
	b := m.b
	enc := &Encoded{m: m, Out: b.Alloc(tensor.F32, batch, c.NAudioCtx, c.NAudioState)}
	kvt := m.crossDType()
	for range m.dec.blocks {
		enc.crossK = append(enc.crossK, b.Alloc(kvt, batch, c.NAudioCtx, c.NTextState))
		enc.crossV = append(enc.crossV, b.Alloc(kvt, batch, c.NAudioCtx, c.NTextState))
	}
	return enc
}

// crossDType is the dtype of the cross-attention K/V: F16 where the backend supports it
// (tensor.HalfKV) and the model's weights are 16-bit anyway, which halves the bytes every decoder
// step reads, or where the backend keeps all attention caches in F16 (cacheDType); F32 otherwise
// (f32 models keep f32 arithmetic).
func (m *Model) crossDType() tensor.DType {
	if m.halfKV() {
		return tensor.F16
	}
	return m.cacheDType()
}

// halfKV reports whether the backend takes F16 keys and values (tensor.HalfKV) and the model's
// weights are 16-bit: then the encoder's self-attention keys and values are F16 too.
func (m *Model) halfKV() bool {
	if h, ok := m.b.(tensor.HalfKV); ok && h.HalfKV() && len(m.dec.blocks) > 0 {
		switch m.dec.blocks[0].cross.k.DType {
		case tensor.F16, tensor.BF16:
			return true
		}
	}
	return false
}

// cacheDType is the dtype of the decoder's self-attention caches: F16 on a backend that wants
// its caches halved (tensor.HalfCaches, the CPU, where they are most of a transcription's memory
// besides the weights) for a model whose weights are not F32, else F32. It is the cross-attention
// K/V's too on such a backend.
func (m *Model) cacheDType() tensor.DType {
	if h, ok := m.b.(tensor.HalfCaches); ok && h.HalfCaches() && len(m.dec.blocks) > 0 && m.dec.blocks[0].attn.k.DType != tensor.F32 {
		return tensor.F16
	}
	return tensor.F32
}

// lnEps is the layer-norm epsilon of every Whisper layer norm.
const lnEps = 1e-5

// mlp adds the block's MLP sublayer to the residual stream x, with h ([.., d]) and f ([.., 4d])
// as scratch: x += fc2(gelu(fc1(ln(x)))).
func mlp(b tensor.Backend, x, h, f *tensor.Tensor, w *blockWeights) {
	b.LayerNorm(h, x, w.mlpLN, w.mlpLNb, lnEps)
	if fl, ok := b.(tensor.FusedLinear); ok {
		fl.LinearGELU(f, h, w.fc1, w.fc1b)
	} else {
		b.Linear(f, h, w.fc1, w.fc1b)
		b.GELU(f, f)
	}
	linearAdd(b, x, h, f, w.fc2, w.fc2b)
}

// linearAdd adds a sublayer's output projection to the residual stream: x += a w^T + bias, fused
// where the backend can (tensor.FusedLinear), else through the scratch tmp.
func linearAdd(b tensor.Backend, x, tmp, a, w, bias *tensor.Tensor) {
	if fl, ok := b.(tensor.FusedLinear); ok {
		fl.LinearAdd(x, a, w, bias)
		return
	}
	b.Linear(tmp, a, w, bias)
	b.Add(x, x, tmp)
}
