package whisper

import (
	"encoding/binary"
	"math"

	"github.com/verbatimhq/verbatim/tensor"
)

// kvCaches are a session's self-attention caches: per decoder layer K and V of shape
// [batch, NTextCtx, NTextState] (of the model's cacheDType), plus one spare tensor of that shape
// for reordering.
type kvCaches struct {
	batch int
	k, v  []*tensor.Tensor
	spare *tensor.Tensor
	ar    *arena // the arena the caches are views of, nil for caches of their own
	// whole are the tensors allocated, once shrink has made k, v and spare views of their
	// first entries (nil before, and for caches in an arena).
	whole []*tensor.Tensor
}

func (m *Model) newKVCaches(batch int) *kvCaches {
	c, b, dt := m.Config, m.b, m.cacheDType()
	kv := &kvCaches{batch: batch}
	for range c.NTextLayer {
		kv.k = append(kv.k, allocExplicit(b, dt, batch, c.NTextCtx, c.NTextState))
		kv.v = append(kv.v, allocExplicit(b, dt, batch, c.NTextCtx, c.NTextState))
	}
	kv.spare = allocExplicit(b, dt, batch, c.NTextCtx, c.NTextState)
	return kv
}

func (kv *kvCaches) free(b tensor.Backend) {
	if a := kv.ar; a != nil { // views: give the arena back
		if a.kv == kv {
			a.kv = nil
		}
		kv.k, kv.v, kv.spare = nil, nil, nil
		return
	}
	kv.keepWhole()
	for _, t := range kv.whole {
		b.Free(t)
	}
	kv.k, kv.v, kv.spare, kv.whole = nil, nil, nil, nil
}

// keepWhole records the tensors allocated, before k, v and spare become views (shrink).
func (kv *kvCaches) keepWhole() {
	if kv.whole == nil {
		kv.whole = append(append(append([]*tensor.Tensor(nil), kv.k...), kv.v...), kv.spare)
	}
}

// shrink keeps the first n entries of every cache: k, v and spare become views of them, and the
// memory stays allocated until the caches are freed.
func (kv *kvCaches) shrink(n int) {
	if kv.ar == nil {
		kv.keepWhole()
	}
	for i := range kv.k {
		kv.k[i], kv.v[i] = kv.k[i].Slice(0, n), kv.v[i].Slice(0, n)
	}
	kv.spare = kv.spare.Slice(0, n)
	kv.batch = n
}

// reorder makes entry i of every cache a copy of entry src[i], for i < len(src) and the first n
// positions (the rest is never read). Only the entries that change are copied, in place: their
// sources go to the spare tensor first (as many caches at a time as it holds), then back into
// the caches. The caches keep their addresses, so a decoder step recorded as a CUDA graph
// replays after a reorder. Copying only the used positions matters: whole caches of large-v3
// with 5 beams are 730 MB.
func (kv *kvCaches) reorder(b tensor.Backend, src []int32, n int) {
	var to, from, slots []int32
	for i, j := range src {
		if int(j) != i {
			to, from, slots = append(to, int32(i)), append(from, j), append(slots, int32(len(slots)))
		}
	}
	if len(to) == 0 {
		return
	}
	sp := kv.spare
	per := len(to) * n * sp.Dim(2) // one cache's changed entries
	fit := max(1, sp.Len()/per)    // caches whose entries the spare holds at once
	caches := append(append([]*tensor.Tensor(nil), kv.k...), kv.v...)
	for len(caches) > 0 {
		part := caches[:min(fit, len(caches))]
		caches = caches[len(part):]
		tmp := make([]*tensor.Tensor, len(part))
		for p := range part {
			tmp[p] = &tensor.Tensor{DType: sp.DType, Shape: []int{len(to), n, sp.Dim(2)}, Buf: sp.Buf, Offset: sp.Offset + p*per}
		}
		tensor.CopyRows(b, tmp, part, slots, from, n)
		tensor.CopyRows(b, part, tmp, to, slots, n)
	}
}

// takeCaches returns empty KV caches for a batch, reusing the last closed session's if they fit,
// else in the arena where it is free.
func (m *Model) takeCaches(batch int) *kvCaches {
	if p := m.pool; p != nil {
		m.pool = nil
		if p.batch == batch {
			return p
		}
		p.free(m.b)
	}
	if kv := m.arenaCaches(batch); kv != nil {
		return kv
	}
	return m.newKVCaches(batch)
}

// putCaches keeps a closed session's caches for the next session, freeing those kept before.
func (m *Model) putCaches(kv *kvCaches) {
	if kv == nil {
		return
	}
	if m.pool != nil {
		m.pool.free(m.b)
	}
	m.pool = kv
}

// decViews are the decoder's activations for one (batch, tokens per step, logits kind) shape,
// views over the model's decoder workspace.
type decViews struct {
	x, h, q, k, v, a *tensor.Tensor // [B, n, d]
	x2d              *tensor.Tensor // x as [B*n, d] for gathers
	f                *tensor.Tensor // [B, n, 4d]
	last             *tensor.Tensor // [B, d]: the last position of each sequence (logitsLast)
	logits           *tensor.Tensor // [B, NVocab], [B, n, NVocab], or [forcedRows, NVocab]
	lastIDs          []int32        // rows of x2d holding the last positions
}

// logitsKind says which logits a decoder step computes.
type logitsKind int

const (
	logitsLast logitsKind = iota // each sequence's last position
	logitsAll                    // every position
	// logitsRows: none; the logits slot holds forcedRows rows, for a caller that computes the
	// logits of the final hidden states (h) a few rows at a time (forcedPass).
	logitsRows
)

func (m *Model) decViews(batch, n int, kind logitsKind) *decViews {
	w := m.decWS
	key := [2]int{batch, 3*n + int(kind)}
	if v, ok := w.cache[key].(*decViews); ok {
		return v
	}
	c := m.Config
	d, nv := c.NTextState, c.NVocab
	nr := (n + 7) &^ 7 // reserve room for a few more tokens per step to avoid regrowing
	s := batch * nr * d
	logits := batch * nv
	switch kind {
	case logitsAll:
		logits *= nr
	case logitsRows:
		logits = min(n, forcedRows) * nv
	}
	w.reserve(s, s, s, s, s, s, 4*s, batch*d, logits)
	v := &decViews{
		x:   w.view(slotX, batch, n, d),
		x2d: w.view(slotX, batch*n, d),
		h:   w.view(slotH, batch, n, d),
		q:   w.view(slotQ, batch, n, d),
		k:   w.view(slotK, batch, n, d),
		v:   w.view(slotV, batch, n, d),
		a:   w.view(slotA, batch, n, d),
		f:   w.view(slotF, batch, n, 4*d),
	}
	switch kind {
	case logitsAll:
		v.logits = w.view(slotLogit, batch, n, nv)
	case logitsRows:
		v.logits = w.view(slotLogit, min(n, forcedRows), nv)
	default:
		v.last = w.view(slotLast, batch, d)
		v.logits = w.view(slotLogit, batch, nv)
		for i := range batch {
			v.lastIDs = append(v.lastIDs, int32(i*n+n-1))
		}
	}
	w.cache[key] = v
	return v
}

// decode runs the decoder on s.ids (n new tokens per sequence at positions [s.n, s.n+n)) and
// returns the logits tensor (a workspace view, valid until the next decode). It appends the new
// keys and values to the session's caches but does not advance s.n.
func (m *Model) decode(s *Session, n int, all bool) *tensor.Tensor {
	kind := logitsLast
	if all {
		kind = logitsAll
	}
	v := m.decViews(s.batch, n, kind)
	m.decodeLayers(s, n, v, nil)
	return m.logits(v, n, kind)
}

// crossHook is called in every decoder layer with the layer's cross-attention queries
// ([B, n, NTextState], a workspace view valid during the call) before the cross-attention runs;
// word timing uses it to compute the attention probabilities of its heads.
type crossHook func(layer int, q *tensor.Tensor)

// decodeLayers runs the decoder's blocks on s.ids into v.x (the residual stream after the last
// block), with a cross-attention hook (nil for none).
func (m *Model) decodeLayers(s *Session, n int, v *decViews, hook crossHook) {
	b := m.b
	c := m.Config
	dw := &m.dec
	s.crossViews(v, n)

	b.Gather(v.x2d, dw.tokEmb, s.ids)
	if n == 1 {
		b.Add(v.x, v.x, dw.posRow[s.n])
	} else {
		b.Add(v.x, v.x, dw.pos.Slice(s.n, s.n+n))
	}

	kvLen := s.n + n
	scale := float32(1 / math.Sqrt(float64(c.NTextState/c.NTextHead)))
	cut, _ := b.(tensor.GraphCutter)
	for i := range dw.blocks {
		if cut != nil && i > 0 {
			cut.CutGraph() // the device may start on the layers recorded so far
		}
		w := &dw.blocks[i]
		b.LayerNorm(v.h, v.x, w.attnLN, w.attnLNb, lnEps)
		selfQKV(b, s.kv.k[i], s.kv.v[i], s.n, v, &w.attn)
		b.Attention(v.a, v.q, s.kv.k[i], s.kv.v[i], c.NTextHead, kvLen, scale, true)
		linearAdd(b, v.x, v.h, v.a, w.attn.o, w.attn.ob)

		b.LayerNorm(v.h, v.x, w.crossLN, w.crossLNb, lnEps)
		b.Linear(v.q, v.h, w.cross.q, w.cross.qb)
		if hook != nil {
			hook(i, v.q)
		}
		if wa := s.windowAttention(); wa != nil {
			for r := range s.wruns {
				run := &s.wruns[r]
				wa.AttentionWindows(run.a, run.q, s.enc.crossK[i], s.enc.crossV[i], run.windows, c.NTextHead, c.NAudioCtx, scale)
			}
		} else {
			for r := range s.runs {
				run := &s.runs[r]
				b.Attention(run.a, run.q, run.k[i], run.v[i], c.NTextHead, c.NAudioCtx, scale, false)
			}
		}
		linearAdd(b, v.x, v.h, v.a, w.cross.o, w.cross.ob)

		mlp(b, b.LayerNorm, v.x, v.h, v.f, w)
	}
}

// selfQKV projects the step's normalized states v.h into the queries v.q and into the keys and
// values at position at of the caches kc and vc: as one product where the weights were loaded as
// one (attnWeights.qkv) and the backend takes these tensors (tensor.QKVRows), else as three.
func selfQKV(b tensor.Backend, kc, vc *tensor.Tensor, at int, v *decViews, a *attnWeights) {
	if a.qkv != nil {
		if f, ok := b.(tensor.QKVRows); ok && f.LinearQKV(v.q, kc, vc, at, v.h, a.qkv, a.qkvb) {
			return
		}
	}
	b.Linear(v.q, v.h, a.q, a.qb)
	setRows(b, kc, at, v.k, v.h, a.k, nil)
	setRows(b, vc, at, v.v, v.h, a.v, a.vb)
}

// setRows writes the projection h . w^T + bias of the step's n tokens into the cache at its
// position at: in one op where the backend has one (tensor.RowsLinear), else by Linear into
// the scratch tmp and SetRows.
func setRows(b tensor.Backend, cache *tensor.Tensor, at int, tmp, h, w, bias *tensor.Tensor) {
	if rl, ok := b.(tensor.RowsLinear); ok && rl.LinearRows(cache, at, h, w, bias) {
		return
	}
	b.Linear(tmp, h, w, bias)
	b.SetRows(cache, at, tmp)
}

// logits runs the final layer norm on v.x and, unless kind is logitsRows, the vocabulary
// projection: the logits tensor (a workspace view). With logitsRows the normalized states are
// left in v.h for the caller's projection.
func (m *Model) logits(v *decViews, n int, kind logitsKind) *tensor.Tensor {
	b := m.b
	dw := &m.dec
	switch kind {
	case logitsAll:
		b.LayerNorm(v.h, v.x, dw.ln, dw.lnb, lnEps)
		b.Linear(v.logits, v.h, dw.tokEmb, nil)
		return v.logits
	case logitsRows:
		b.LayerNorm(v.h, v.x, dw.ln, dw.lnb, lnEps)
		return nil
	}
	last := v.x2d // [B, d] when n == 1
	if n > 1 {
		b.Gather(v.last, v.x2d, v.lastIDs)
		last = v.last
	}
	b.LayerNorm(v.last, last, dw.ln, dw.lnb, lnEps)
	b.Linear(v.logits, v.last, dw.tokEmb, nil)
	return v.logits
}

// crossRun is a range of sequences [start, end) whose cross-attention is one Attention call on
// views of the encoder output's K/V, so that no window's K/V is ever copied. The run covers the
// consecutive windows [w, w+nw), each read by group consecutive sequences: the queries
// [end-start, n, d] are viewed as [nw, group*n, d] against the windows' [nw, NAudioCtx, d] K/V
// (cross-attention has no mask, so each query row is independent). With beam search every
// window's beams are one group, so a step reads each window's K/V once for all its beams, and
// the windows of a batch are one call a layer, not one a window; greedy sequences of
// consecutive windows are groups of one.
type crossRun struct {
	start, end int
	group      int              // sequences per window
	k, v       []*tensor.Tensor // per decoder layer, views of the Encoded's K/V
	q, a       *tensor.Tensor   // views of the workspace's q and a for the current decViews
}

// windowRun is a range of sequences [start, end) whose cross-attention is one call of a
// backend's tensor.WindowAttention: consecutive blocks of group sequences, each block reading
// the window its entry of windows (an I32 tensor on the backend) names, wherever it lies in the
// encoder output. A batch whose windows are not consecutive (beam search's, after some windows
// ended; the first windows decoded beside language detection's) needs a call per stretch of
// consecutive windows otherwise, two kernels a layer and step each.
type windowRun struct {
	start, end int
	group      int
	windows    *tensor.Tensor // [(end-start)/group] I32
	q, a       *tensor.Tensor // views of the workspace's q and a for the current decViews
}

// windowAttention is the backend's tensor.WindowAttention when the session's window runs take
// it for the current views (crossViews decides), else nil.
func (s *Session) windowAttention() tensor.WindowAttention {
	if wa, ok := s.m.b.(tensor.WindowAttention); ok && s.useWRuns {
		return wa
	}
	return nil
}

// setRuns splits the session's sequences into cross-attention runs: maximal stretches of
// windows that are consecutive and each read by the same number of consecutive sequences; and,
// on a backend with tensor.WindowAttention, into window runs: maximal stretches of blocks of
// the same number of sequences, whatever their windows.
func (s *Session) setRuns() {
	s.runs = s.runs[:0]
	s.runViews = nil
	s.freeWRuns()
	if _, ok := s.m.b.(tensor.WindowAttention); ok {
		s.setWRuns()
	}
	for i := 0; i < s.batch; {
		j := s.blockEnd(i)
		g := j - i
		for j < s.batch && s.window[j] == s.window[j-1]+1 {
			e := s.blockEnd(j)
			if e-j != g {
				break
			}
			j = e
		}
		r := crossRun{start: i, end: j, group: g}
		w, nw := s.window[i], (j-i)/g
		for l := range s.enc.crossK {
			r.k = append(r.k, s.enc.crossK[l].Slice(w, w+nw))
			r.v = append(r.v, s.enc.crossV[l].Slice(w, w+nw))
		}
		s.runs = append(s.runs, r)
		i = j
	}
}

// blockEnd is the end of the stretch of sequences from i that read s.window[i].
func (s *Session) blockEnd(i int) int {
	j := i + 1
	for j < s.batch && s.window[j] == s.window[i] {
		j++
	}
	return j
}

// setWRuns makes the window runs (windowRun) and uploads their tables.
func (s *Session) setWRuns() {
	for i := 0; i < s.batch; {
		g := s.blockEnd(i) - i
		var ws []int32
		for i < s.batch {
			e := s.blockEnd(i)
			if e-i != g {
				break
			}
			ws = append(ws, int32(s.window[i]))
			i = e
		}
		raw := make([]byte, 4*len(ws))
		for k, w := range ws {
			binary.LittleEndian.PutUint32(raw[4*k:], uint32(w))
		}
		start := i - g*len(ws)
		s.wruns = append(s.wruns, windowRun{start: start, end: i, group: g, windows: s.m.b.Upload(tensor.I32, raw, len(ws))})
	}
}

// freeWRuns frees the window runs' tables.
func (s *Session) freeWRuns() {
	for _, r := range s.wruns {
		s.m.b.Free(r.windows)
	}
	s.wruns = s.wruns[:0]
	s.useWRuns = false
}

// crossViews makes the runs' query and output views for the decoder views v (n tokens per
// sequence), and chooses the window runs where the backend takes each run's group*n rows a
// window; it does nothing if they were made for v already.
func (s *Session) crossViews(v *decViews, n int) {
	if s.runViews == v {
		return
	}
	d := s.m.Config.NTextState
	for i := range s.runs {
		r := &s.runs[i]
		nw := (r.end - r.start) / r.group
		r.q = v.q.Slice(r.start, r.end).Reshape(nw, r.group*n, d)
		r.a = v.a.Slice(r.start, r.end).Reshape(nw, r.group*n, d)
	}
	s.useWRuns = false
	if wa, ok := s.m.b.(tensor.WindowAttention); ok && len(s.wruns) > 0 {
		s.useWRuns = true
		for i := range s.wruns {
			r := &s.wruns[i]
			nw := (r.end - r.start) / r.group
			r.q = v.q.Slice(r.start, r.end).Reshape(nw, r.group*n, d)
			r.a = v.a.Slice(r.start, r.end).Reshape(nw, r.group*n, d)
			if !wa.AttendsWindows(r.group*n, s.enc.crossK[0]) {
				s.useWRuns = false
			}
		}
	}
	s.runViews = v
}
