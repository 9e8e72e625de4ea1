package whisper

import (
	"fmt"
	"math"
	"slices"
	"unsafe"

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
	// cols is the half of f that conv1 does not take (2n floats): the convolutions' columns
	// where the backend takes scratch for them (convScratch).
	cols *tensor.Tensor
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
		cols:  &tensor.Tensor{DType: tensor.F32, Shape: []int{2 * n}, Buf: f.Buf, Offset: f.Offset + 2*n},
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
//
// With an arena (a synchronous backend: the CPU) the windows go through the encoder one at a
// time, each into its place in the output, so the scratch is one window's whatever the batch: a
// batch of windows gains nothing there (every matrix product of one window is already 1,500
// rows tall), and language detection's three windows took three windows' scratch (mini: 41 MB
// of activations and 17 MB of attention panels instead of 14 and 6) that the arena then kept.
func (m *Model) encode(mel []float32, batch int, out bool) *Encoded {
	per := m.Config.NMels * 2 * m.Config.NAudioCtx
	return m.encodeFrom(batch, batch, out, func(ws []int) *tensor.Tensor { // consecutive: nothing given
		return m.melInput(mel[ws[0]*per:(ws[len(ws)-1]+1)*per], len(ws))
	}, nil)
}

// encodeChunk is how many windows of a long-form batch a GPU encodes at a time: the host
// computes the next chunk's log-mel while the device encodes this one (a batch's log-mel was
// 0.9 s of turbo's 7.3 s in bench --e2e --decode default on an H200's host, the device idle).
// A chunk of 8 windows is 12,000 rows for the encoder's matrix products.
const encodeChunk = 8

// encodeFrom is encode with the mel windows given by mels when the encoder takes them (ws, the
// windows' indices in the batch, ascending; a [len(ws), NMels, 3000] F32 tensor that encodeFrom
// frees: melInput's upload of host values, or log-mel made on the device), at most chunk windows
// at a time (one at a time with an arena). With out false and an arena the result has no Out:
// the final layer norm goes to the arena's scratch, read only by the cross-attention projections
// (decoding reads nothing else of the encoder; one window of base was 3 MB more of the CPU's
// peak, 7.7 MB for large-v3).
//
// pre, if not nil, may give a window's encoder output already computed (Out's [1, NAudioCtx,
// NAudioState] of an earlier encoding of the same audio: a detected input's first window,
// batcher.stash) where the result has an Out: that window is copied into Out instead of encoded
// (mels is not asked for it), the others are encoded in chunks as before, and the
// cross-attention projections then run over the whole batch.
func (m *Model) encodeFrom(batch, chunk int, out bool, mels func(ws []int) *tensor.Tensor, pre func(w int) *tensor.Tensor) *Encoded {
	b := m.b
	c := m.Config
	e := &m.enc
	out = out || m.ar == nil
	enc := m.newEncoded(batch, out)
	done := false
	defer func() {
		if !done {
			enc.Close() // a panicking op: release the output, let Encode recover
		}
	}()
	step := max(1, min(batch, chunk))
	if m.ar != nil {
		step = 1
	}
	rows := func(t *tensor.Tensor, w0, w1 int) *tensor.Tensor {
		if w1-w0 == batch {
			return t
		}
		return t.Slice(w0, w1)
	}
	cross := func(o *tensor.Tensor, w0, w1 int) { // every layer's K/V of windows [w0, w1) from o
		for i := range m.dec.blocks {
			w := &m.dec.blocks[i].cross
			b.Linear(rows(enc.crossK[i], w0, w1), o, w.k, nil)
			b.Linear(rows(enc.crossV[i], w0, w1), o, w.v, w.vb)
		}
	}
	flush := func() {
		if f, ok := b.(tensor.Flusher); ok {
			f.Flush() // the device runs this chunk's last ops while the host makes the next chunk's log-mel
		}
	}
	var todo []int // the windows to encode
	for w := range batch {
		if pre != nil && out {
			if p := pre(w); p != nil {
				b.Copy(enc.Out.Slice(w, w+1), p)
				continue
			}
		}
		todo = append(todo, w)
	}
	all := len(todo) == batch
	for i := 0; i < len(todo); i += step {
		g := todo[i:min(i+step, len(todo))]
		mel := mels(g)
		if want := []int{len(g), c.NMels, 2 * c.NAudioCtx}; mel.DType != tensor.F32 || !slices.Equal(mel.Shape, want) {
			b.Free(mel)
			panic(&tensor.Error{Msg: fmt.Sprintf("encode: mel windows %s%v, want F32%v", mel.DType, mel.Shape, want)})
		}
		v := m.encodeBlocks(mel, len(g))
		b.Free(mel)
		w0, w1 := g[0], g[len(g)-1]+1
		switch {
		case !out:
			b.LayerNorm(v.h, v.x, e.lnPost, e.lnPostb, lnEps) // the blocks are done with h
			cross(v.h, w0, w1)
		case w1-w0 == len(g): // consecutive windows
			o := rows(enc.Out, w0, w1)
			b.LayerNorm(o, v.x, e.lnPost, e.lnPostb, lnEps)
			if all {
				cross(o, w0, w1)
			}
		default:
			b.LayerNorm(v.h, v.x, e.lnPost, e.lnPostb, lnEps)
			for j, w := range g {
				b.Copy(enc.Out.Slice(w, w+1), v.h.Slice(j, j+1))
			}
		}
		flush()
	}
	if !all { // windows given: the projections over the batch, a chunk at a time
		for w0 := 0; w0 < batch; w0 += step {
			w1 := min(batch, w0+step)
			cross(rows(enc.Out, w0, w1), w0, w1)
		}
		flush()
	}
	if roundCrossKV != nil {
		roundCrossKV(m, enc)
	}
	done = true
	return enc
}

// encodeBlocks runs the convolutions and the encoder's blocks on batch mel windows; the result
// is in the views' residual stream x.
func (m *Model) encodeBlocks(in *tensor.Tensor, batch int) *encViews {
	b := m.b
	c := m.Config
	e := &m.enc
	v := m.encViews(batch)

	m.conv(v.conv1, in, e.conv1, e.conv1b, v.cols, 1, 1)
	b.GELU(v.conv1, v.conv1)
	m.conv(v.conv2, v.conv1, e.conv2, e.conv2b, v.cols, 2, 1)
	b.GELU(v.conv2, v.conv2)
	b.Transpose(v.x, v.conv2)
	b.Add(v.x, v.x, e.pos)

	scale := float32(1 / math.Sqrt(float64(c.NAudioState/c.NAudioHead)))
	// The blocks' normalized inputs and attention outputs are read only by the projections that
	// follow: where the backend can, they are kept in 16 bits alone (tensor.HalfOutputs), the
	// precision those projections' GEMMs read them at with F16 weights (not with BF16 ones,
	// whose GEMMs round their inputs to bf16).
	norm, attend := b.LayerNorm, b.Attention
	ho, half := b.(tensor.HalfOutputs)
	if half && len(e.blocks) > 0 && e.blocks[0].attn.q.DType == tensor.F16 {
		norm, attend = ho.LayerNormHalf, ho.AttentionHalf
	}
	for i := range e.blocks {
		w := &e.blocks[i]
		norm(v.h, v.x, w.attnLN, w.attnLNb, lnEps)
		b.Linear(v.q, v.h, w.attn.q, w.attn.qb)
		b.Linear(v.k, v.h, w.attn.k, nil)
		b.Linear(v.v, v.h, w.attn.v, w.attn.vb)
		attend(v.a, v.q, v.k, v.v, c.NAudioHead, c.NAudioCtx, scale, false)
		linearAdd(b, v.x, v.h, v.a, w.attn.o, w.attn.ob)
		discard(b, v.a) // the MLP writes over it
		mlp(b, norm, v.x, v.h, v.f, w)
	}
	discard(b, v.h) // the final layer norm, or the next chunk's convolution, writes over it
	return v
}

// discard tells a backend that t's values are no longer needed (tensor.Discarder).
func discard(b tensor.Backend, t *tensor.Tensor) {
	if d, ok := b.(tensor.Discarder); ok {
		d.Discard(t)
	}
}

// melInput returns the encoder's input tensor for batch mel windows. On a synchronous backend
// that keeps host memory in place (the CPU) it is mel itself, which stays unchanged until the
// encoding returns (the copy was 1.5 MB a window for 128 mel bins, garbage right after); else
// a copy.
func (m *Model) melInput(mel []float32, batch int) *tensor.Tensor {
	c := m.Config
	shape := []int{batch, c.NMels, 2 * c.NAudioCtx}
	if u, ok := m.b.(tensor.InPlaceUploader); ok && m.ar != nil && len(mel) > 0 {
		raw := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(mel))), 4*len(mel))
		t := u.UploadInPlace(tensor.F32, raw, shape...)
		if u.InPlace(t) {
			return t
		}
		m.b.Free(t) // converted from bytes whose order the host may not share
	}
	return m.b.FromF32(mel, shape...)
}

// convScratch is a backend whose Conv1D can put its columns in scratch memory the caller gives
// (the CPU's; see cpu.Backend.Conv1DScratch).
type convScratch interface {
	Conv1DScratch(dst, x, w, bias, scratch *tensor.Tensor, stride, pad int)
}

// conv is Conv1D, with scratch for the columns where the backend takes it.
func (m *Model) conv(dst, x, w, bias, scratch *tensor.Tensor, stride, pad int) {
	if cs, ok := m.b.(convScratch); ok {
		cs.Conv1DScratch(dst, x, w, bias, scratch, stride, pad)
		return
	}
	m.b.Conv1D(dst, x, w, bias, stride, pad)
}

// newEncoded returns an encoder output for batch windows, with the tensors of the last closed
// one if it had the same batch size (large-v3's cross-attention K/V are 500 MB a window).
func (m *Model) newEncoded(batch int, out bool) *Encoded {
	if p := m.encPool; p != nil {
		m.encPool = nil
		if p.windows == batch && (p.Out != nil) == out {
			return &Encoded{m: m, Out: p.Out, crossK: p.crossK, crossV: p.crossV, windows: batch}
		}
		p.free()
	}
	c := m.Config
	b := m.b
	enc := &Encoded{m: m, windows: batch}
	if out {
		enc.Out = allocExplicit(b, tensor.F32, batch, c.NAudioCtx, c.NAudioState)
	}
	kvt := m.crossDType()
	for range m.dec.blocks {
		enc.crossK = append(enc.crossK, allocExplicit(b, kvt, batch, c.NAudioCtx, c.NTextState))
		enc.crossV = append(enc.crossV, allocExplicit(b, kvt, batch, c.NAudioCtx, c.NTextState))
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
// as scratch: x += fc2(gelu(fc1(norm(x)))), norm the backend's LayerNorm or LayerNormHalf.
func mlp(b tensor.Backend, norm func(dst, x, gamma, beta *tensor.Tensor, eps float32), x, h, f *tensor.Tensor, w *blockWeights) {
	norm(h, x, w.mlpLN, w.mlpLNb, lnEps)
	if fl, ok := b.(tensor.FusedLinear); ok {
		fl.LinearGELU(f, h, w.fc1, w.fc1b)
	} else {
		b.Linear(f, h, w.fc1, w.fc1b)
		b.GELU(f, f)
	}
	linearAdd(b, x, h, f, w.fc2, w.fc2b)
	discard(b, f) // scratch: the next layer writes over it
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
