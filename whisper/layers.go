package whisper

import (
	"strconv"

	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

// attnWeights is one multi-head attention: q, v and out have biases, k has none. qkv and qkvb
// are set for a decoder's self-attention on a backend that runs its three projections as one
// (tensor.QKVRows): q, k and v are then views of qkv.
type attnWeights struct {
	q, qb, k, v, vb, o, ob *tensor.Tensor
	qkv, qkvb              *tensor.Tensor
}

// blockWeights is one pre-LN residual block; cross is set in decoder blocks only.
type blockWeights struct {
	attnLN, attnLNb   *tensor.Tensor
	attn              attnWeights
	crossLN, crossLNb *tensor.Tensor
	cross             attnWeights
	mlpLN, mlpLNb     *tensor.Tensor
	fc1, fc1b         *tensor.Tensor
	fc2, fc2b         *tensor.Tensor
}

type encoderWeights struct {
	conv1, conv1b   *tensor.Tensor // [d, NMels, 3], [d]
	conv2, conv2b   *tensor.Tensor // [d, d, 3], [d]
	pos             *tensor.Tensor // [NAudioCtx, d], F32
	blocks          []blockWeights
	lnPost, lnPostb *tensor.Tensor
}

type decoderWeights struct {
	tokEmb  *tensor.Tensor   // [NVocab, d]
	pos     *tensor.Tensor   // [NTextCtx, d], F32
	posRow  []*tensor.Tensor // pos row views [1, d], one per position
	blocks  []blockWeights
	ln, lnb *tensor.Tensor
}

// loader uploads a weights.File's tensors by canonical name, checking shapes. A missing or
// misshapen tensor, or one whose data cannot be read, panics with a *tensor.Error naming it,
// which upload recovers and returns.
type loader struct {
	m       *Model
	f       *weights.File
	inPlace tensor.InPlaceUploader // non-nil: weights may stay in f's bytes (see Load)
}

// own records t as the model's, freed with it.
func (l *loader) own(t *tensor.Tensor) *tensor.Tensor {
	l.m.owned = append(l.m.owned, t)
	return t
}

// weight uploads a matrix or conv kernel as stored (the backend may convert it).
func (l *loader) weight(name string, shape ...int) *tensor.Tensor {
	t, data := l.raw(name, shape)
	var up *tensor.Tensor
	if l.inPlace != nil && t.Data != nil {
		up = l.inPlace.UploadInPlace(t.DType, data, shape...)
		l.placed(up, data)
	} else {
		up = l.m.b.Upload(t.DType, data, shape...)
	}
	return l.own(up)
}

// raw looks up a matrix and returns its stored bytes, checked against its shape.
func (l *loader) raw(name string, shape []int) (*weights.Tensor, []byte) {
	t := l.lookup(name, shape, true)
	data := t.Data
	if data == nil && t.Load != nil { // a lazily synthesized tensor
		var err error
		if data, err = t.Load(); err != nil {
			panic(&tensor.Error{Msg: name, Err: err})
		}
	}
	if want := t.DType.RowBytes(tensor.Numel(shape)); len(data) != want {
		panic(tensor.Errorf("%s: %d bytes, want %d for %s%v", name, len(data), want, t.DType, shape))
	}
	return t, data
}

// vector uploads a bias, a layer-norm parameter or a positional embedding as F32 (converted on
// the host), whatever its stored dtype, because the ops take them as activations. Their shapes
// are checked by element count only (ggml stores conv biases as [d, 1]).
func (l *loader) vector(name string, shape ...int) *tensor.Tensor {
	return l.own(l.m.b.FromF32(l.floats(name, shape), shape...))
}

// floats is a vector's values as F32.
func (l *loader) floats(name string, shape []int) []float32 {
	f, err := l.lookup(name, shape, false).Float32()
	if err != nil {
		panic(&tensor.Error{Msg: name, Err: err})
	}
	return f
}

// table is vector for a positional embedding: stored as F32 (as ggml and safetensors files have
// them), it stays where it lies in the file on a backend that keeps weights there (Load), instead
// of a copy beside the file's pages (base: 4 MB, large-v3: 8.4 MB).
func (l *loader) table(name string, shape ...int) *tensor.Tensor {
	t := l.lookup(name, shape, false)
	if l.inPlace == nil || t.Data == nil || t.DType != tensor.F32 || len(t.Data) != 4*tensor.Numel(shape) {
		return l.vector(name, shape...)
	}
	up := l.inPlace.UploadInPlace(t.DType, t.Data, shape...)
	l.placed(up, t.Data)
	return l.own(up)
}

// placed records what UploadInPlace made of a tensor's bytes in the file's mapping: the model
// holds the file while a weight refers to them; a weight copied instead (values misaligned for
// their type: the CPU copies them, see cpu.Backend.UploadInPlace) leaves the file's pages that
// the copying read in the resident set beside the copy, which a backend that can drop them from
// it (mappedReleaser) then does.
func (l *loader) placed(up *tensor.Tensor, data []byte) {
	if l.inPlace.InPlace(up) {
		l.m.file = l.f
	} else if r, ok := l.m.b.(mappedReleaser); ok {
		r.ReleaseMapped(data)
	}
}

// mappedReleaser is a backend that can drop the pages of bytes in a read-only shared file
// mapping from the process's resident memory (the CPU's: cpu.Backend.ReleaseMapped). Load's
// tensors are such bytes (weights.Open maps the file) when they are uploaded in place.
type mappedReleaser interface {
	ReleaseMapped(raw []byte)
}

func (l *loader) lookup(name string, shape []int, exact bool) *weights.Tensor {
	t, ok := l.f.Tensors[name]
	if !ok {
		panic(tensor.Errorf("%s: missing", name))
	}
	if exact && !tensor.SameShape(t.Shape, shape) || tensor.Numel(t.Shape) != tensor.Numel(shape) {
		panic(tensor.Errorf("%s: shape %v, want %v", name, t.Shape, shape))
	}
	return t
}

func (l *loader) attn(p string, d, dIn int) attnWeights {
	return attnWeights{
		q: l.weight(p+".query.weight", d, d), qb: l.vector(p+".query.bias", d),
		k: l.weight(p+".key.weight", d, dIn),
		v: l.weight(p+".value.weight", d, dIn), vb: l.vector(p+".value.bias", d),
		o: l.weight(p+".out.weight", d, d), ob: l.vector(p+".out.bias", d),
	}
}

// attnQKV is attn for a decoder's self-attention where the backend runs its q, k and v
// projections as one (tensor.QKVRows): the three weights, stored alike, uploaded as one tensor
// [3d, d] of which q, k and v are views (the same bytes on the device as three uploads), and
// their biases once more as one vector [3d], k's zeros between (qb and vb stay apart, so that no
// bias is a view of another: backends key converted copies by address). Weights stored in
// different types load as attn's.
func (l *loader) attnQKV(p string, d int) attnWeights {
	names := [3]string{p + ".query.weight", p + ".key.weight", p + ".value.weight"}
	var dt tensor.DType
	var data []byte
	for i, name := range names {
		t, b := l.raw(name, []int{d, d})
		if i == 0 {
			dt = t.DType
			data = make([]byte, 0, 3*len(b))
		} else if t.DType != dt {
			return l.attn(p, d, d)
		}
		data = append(data, b...)
	}
	w := l.own(l.m.b.Upload(dt, data, 3*d, d))
	qf, vf := l.floats(p+".query.bias", []int{d}), l.floats(p+".value.bias", []int{d})
	bias := make([]float32, 3*d)
	copy(bias, qf)
	copy(bias[2*d:], vf)
	return attnWeights{
		q: w.Slice(0, d), qb: l.own(l.m.b.FromF32(qf, d)),
		k: w.Slice(d, 2*d),
		v: w.Slice(2*d, 3*d), vb: l.own(l.m.b.FromF32(vf, d)),
		o: l.weight(p+".out.weight", d, d), ob: l.vector(p+".out.bias", d),
		qkv: w, qkvb: l.own(l.m.b.FromF32(bias, 3*d)),
	}
}

func (l *loader) block(p string, d, dCross int, cross bool) blockWeights {
	var self attnWeights
	if f, ok := l.m.b.(tensor.QKVRows); ok && cross && f.FusesQKV() {
		self = l.attnQKV(p+".attn", d)
	} else {
		self = l.attn(p+".attn", d, d)
	}
	w := blockWeights{
		attnLN: l.vector(p+".attn_ln.weight", d), attnLNb: l.vector(p+".attn_ln.bias", d),
		attn:  self,
		mlpLN: l.vector(p+".mlp_ln.weight", d), mlpLNb: l.vector(p+".mlp_ln.bias", d),
		fc1: l.weight(p+".mlp.0.weight", 4*d, d), fc1b: l.vector(p+".mlp.0.bias", 4*d),
		fc2: l.weight(p+".mlp.2.weight", d, 4*d), fc2b: l.vector(p+".mlp.2.bias", d),
	}
	if cross {
		w.crossLN, w.crossLNb = l.vector(p+".cross_attn_ln.weight", d), l.vector(p+".cross_attn_ln.bias", d)
		w.cross = l.attn(p+".cross_attn", d, dCross)
	}
	return w
}

// upload uploads every tensor of f under its canonical OpenAI name; with inPlace, through
// tensor.InPlaceUploader where the backend has it (f's tensors' Data must then stay valid for
// as long as the model refers to them: m.file).
func (m *Model) upload(f *weights.File, inPlace bool) (err error) {
	defer tensor.Catch(&err)
	c := m.Config
	l := &loader{m: m, f: f}
	if u, ok := m.b.(tensor.InPlaceUploader); ok && inPlace {
		l.inPlace = u
	}
	da, dt := c.NAudioState, c.NTextState

	e := &m.enc
	e.conv1, e.conv1b = l.weight("encoder.conv1.weight", da, c.NMels, 3), l.vector("encoder.conv1.bias", da)
	e.conv2, e.conv2b = l.weight("encoder.conv2.weight", da, da, 3), l.vector("encoder.conv2.bias", da)
	e.pos = l.table("encoder.positional_embedding", c.NAudioCtx, da)
	for i := range c.NAudioLayer {
		e.blocks = append(e.blocks, l.block("encoder.blocks."+strconv.Itoa(i), da, 0, false))
	}
	e.lnPost, e.lnPostb = l.vector("encoder.ln_post.weight", da), l.vector("encoder.ln_post.bias", da)

	d := &m.dec
	d.tokEmb = l.weight("decoder.token_embedding.weight", c.NVocab, dt)
	d.pos = l.table("decoder.positional_embedding", c.NTextCtx, dt)
	d.posRow = make([]*tensor.Tensor, c.NTextCtx)
	for i := range d.posRow {
		d.posRow[i] = d.pos.Slice(i, i+1)
	}
	for i := range c.NTextLayer {
		d.blocks = append(d.blocks, l.block("decoder.blocks."+strconv.Itoa(i), dt, da, true))
	}
	d.ln, d.lnb = l.vector("decoder.ln.weight", dt), l.vector("decoder.ln.bias", dt)
	return nil
}
