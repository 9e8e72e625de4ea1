package whisper

import "github.com/verbatimhq/verbatim/tensor"

// windowBytes estimates the device memory one window of a batch takes, decoded as rows
// sequences: the encoder's output (and a copy of it), the window's cross-attention K/V, and per
// sequence the self-attention caches (with the spare), the decoder's workspace for a prompt of
// half the context, and a row of logits. The encoder's workspace is not a window's: it holds a
// chunk of windows at a time (encoderBytes).
func (m *Model) windowBytes(rows int) int64 {
	c := m.Config
	audio := int64(c.NAudioCtx) * int64(c.NAudioState)
	// the output and a copy kept for a detected input's first window (batcher.stash)
	enc := 4 * 2 * audio
	enc += 2 * int64(c.NTextLayer) * int64(c.NAudioCtx) * int64(c.NTextState) * int64(m.crossDType().RowBytes(1))
	text := int64(c.NTextCtx) * int64(c.NTextState)
	seq := int64(2*c.NTextLayer+1) * text * int64(m.cacheDType().RowBytes(1))
	seq += 4 * 10 * (text / 2) // decoder workspace: 6 activations and the MLP's 4
	seq += 4 * int64(c.NVocab) // logits
	return enc + int64(rows)*seq
}

// encoderBytes estimates the encoder's workspace for chunk windows encoded at a time (the
// driver's ManyOptions.EncodeChunk): activations x, h and f (4x), and Conv1D's columns. Counted
// once a batch, not a window: before 2026-12-07 evening fitBatch counted it for every window
// of the batch (large-v3: 69 of the 761 MB it counted a window).
func (m *Model) encoderBytes(chunk int) int64 {
	c := m.Config
	audio := int64(c.NAudioCtx) * int64(c.NAudioState)
	return int64(chunk) * 4 * (6 + 3) * audio
}

// fitBatch returns the most windows, at most want, of rows sequences each that fit 80% of the
// backend's free memory (tensor.MemoryReporter) beside the encoder's workspace for chunk windows,
// after the model gives back its pooled encoder output and caches, and the free bytes; want
// (and 0) when the backend does not report its memory.
func (m *Model) fitBatch(want, rows, chunk int) (fit int, free int64) {
	fit = want
	r, ok := m.b.(tensor.MemoryReporter)
	if !ok || m.closed {
		return fit, 0
	}
	var err error
	defer tensor.Catch(&err) // a failure here leaves the batch as asked
	m.releasePools()
	f, _, err := r.DeviceMemory()
	if err != nil || f <= 0 {
		return fit, 0
	}
	n := (f*8/10 - m.encoderBytes(min(chunk, want))) / m.windowBytes(rows)
	return int(max(1, min(int64(want), n))), f
}

// releasePools frees the encoder output and the caches the model keeps for the next batch.
func (m *Model) releasePools() {
	if p := m.encPool; p != nil {
		m.encPool = nil
		p.free()
	}
	if p := m.pool; p != nil {
		m.pool = nil
		p.free(m.b)
	}
}
