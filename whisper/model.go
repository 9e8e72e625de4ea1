// Package whisper is the Whisper model: weights on a tensor backend, the encoder, the decoder with
// its KV caches, decoding (greedy, beam search, sampling, timestamp rules, language detection) and
// transcription of 16 kHz audio.
package whisper

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper/mel"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

// ErrContextFull is returned by [Session.Step] when the new tokens would not fit in the decoder's
// NTextCtx positions.
var ErrContextFull = errors.New("whisper: decoder text context full")

// ErrClosed is returned when a closed model, encoder output or session is used.
var ErrClosed = errors.New("whisper: use after close")

// Model is a loaded Whisper model on one backend. It is not safe for concurrent use.
type Model struct {
	Config weights.Config
	Arch   string
	Path   string   // the model file
	Vocab  [][]byte // ggml vocabulary if the file had one
	// MelFilters is the [NMels, 201] filterbank from a ggml header; nil for safetensors.
	MelFilters []float32
	b          tensor.Backend

	enc    encoderWeights
	dec    decoderWeights
	owned  []*tensor.Tensor // every uploaded weight, freed by Close
	file   *weights.File    // the model file whose mapping weights refer to (Load), closed by Close
	closed bool

	encWS   *workspace     // encoder scratch, grown to the largest batch seen
	decWS   *workspace     // decoder scratch, shared by all sessions (one Step runs at a time)
	pool    *kvCaches      // the caches of the last closed session, reused by the next of equal size
	encPool *Encoded       // the tensors of the last closed encoder output, reused likewise
	ar      *arena         // encoder scratch and caches in turn (synchronous backends), or nil
	clock   *phaseClock    // when set (TimePhases), where the long-form driver's time goes
	bank    *tensor.Tensor // the log-mel filterbank on the device (melBank), or nil
}

// melBank returns whisper/mel's filterbank [NMels, 201] as a tensor of the backend (for
// tensor.LogMeler), made once and freed by Close.
func (m *Model) melBank() *tensor.Tensor {
	if m.bank == nil {
		m.bank = m.b.FromF32(mel.Filters(m.Config.NMels), m.Config.NMels, mel.NFFT/2+1)
		m.owned = append(m.owned, m.bank)
	}
	return m.bank
}

// Load opens a model file (ggml .bin, or model.safetensors / its folder) and uploads its weights.
// On a backend that keeps weights in host memory (tensor.InPlaceUploader: the CPU), the weights
// it can use as the file stores them stay in the file's read-only mapping, which the model then
// holds until Close, instead of being copied: the model's resident memory is about the file's
// size. Elsewhere the file is closed once its weights are uploaded.
func Load(path string, b tensor.Backend) (*Model, error) {
	f, err := weights.Open(path)
	if err != nil {
		return nil, err // weights' errors name the file
	}
	m, err := loadFile(f, b, true)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	if m.file == nil { // no weight refers to the mapping
		f.Close()
	}
	return m, nil
}

// LoadFile uploads the weights of an open model file (for example one made by weights.Synth)
// to b. The model keeps no reference to f, which the caller may close afterwards.
func LoadFile(f *weights.File, b tensor.Backend) (*Model, error) {
	return loadFile(f, b, false)
}

// loadFile is LoadFile; with inPlace, weights go to the backend with UploadInPlace where it has
// it, and m.file is set to f when any of them refers to f's bytes (the model then owns f).
func loadFile(f *weights.File, b tensor.Backend, inPlace bool) (m *Model, err error) {
	m = &Model{Config: f.Config, Arch: f.Arch, Path: f.Path, b: b}
	defer func() {
		if err != nil {
			m.Close()
			m = nil
		}
	}()
	defer tensor.Catch(&err)
	if err := m.checkConfig(); err != nil {
		return nil, err
	}
	if f.MelFilters != nil {
		m.MelFilters = append([]float32(nil), f.MelFilters...)
	}
	// The vocabulary is shared with f: weights keeps it in memory of its own, apart from the
	// file's bytes, so it outlives f's Close (a copy was 2 MB of small allocations beside the
	// same 2 MB that a model holding f keeps).
	m.Vocab = f.Vocab
	if err := m.upload(f, inPlace); err != nil {
		return nil, err
	}
	m.encWS = newWorkspace(b)
	m.decWS = newWorkspace(b)
	m.ar = newArena(b)
	return m, nil
}

func (m *Model) checkConfig() error {
	c := m.Config
	switch {
	case c.NAudioState <= 0 || c.NAudioHead <= 0 || c.NAudioState%c.NAudioHead != 0:
		return fmt.Errorf("bad encoder width %d with %d heads", c.NAudioState, c.NAudioHead)
	case c.NTextState <= 0 || c.NTextHead <= 0 || c.NTextState%c.NTextHead != 0:
		return fmt.Errorf("bad decoder width %d with %d heads", c.NTextState, c.NTextHead)
	case c.NAudioCtx <= 0 || c.NTextCtx <= 0 || c.NMels <= 0 || c.NVocab <= 0:
		return fmt.Errorf("bad config %+v", c)
	case c.NAudioLayer <= 0 || c.NTextLayer <= 0:
		return fmt.Errorf("bad layer counts %d/%d", c.NAudioLayer, c.NTextLayer)
	}
	return nil
}

// Close frees the model's tensors. It is idempotent.
func (m *Model) Close() error {
	if m == nil || m.closed {
		return nil
	}
	m.closed = true
	var err error
	func() {
		defer tensor.Catch(&err)
		for _, t := range m.owned {
			m.b.Free(t)
		}
		m.owned = nil
		m.encWS.free()
		m.decWS.free()
		m.releasePools()
		m.ar.free(m.b)
	}()
	if m.file != nil { // after the weights that refer to its mapping are freed
		if cerr := m.file.Close(); err == nil {
			err = cerr
		}
		m.file = nil
	}
	return err
}

// Backend returns the backend the model runs on.
func (m *Model) Backend() tensor.Backend { return m.b }

// Encoded is the encoder output for a batch of 30 s windows, on the backend, with the
// cross-attention K/V of every decoder layer, computed once.
type Encoded struct {
	// Out is the encoder's output, [nWindows, NAudioCtx, NAudioState]: Model.Encode's. The
	// transcription driver's on the CPU has none (decoding reads only the K/V).
	Out *tensor.Tensor

	m       *Model
	crossK  []*tensor.Tensor // per decoder layer, [nWindows, NAudioCtx, NTextState]
	crossV  []*tensor.Tensor
	windows int
	closed  bool
}

// Windows is the number of encoded windows.
func (e *Encoded) Windows() int { return e.windows }

// Encode runs the encoder on nWindows log-mel windows: mel is nWindows x [NMels, 3000] row-major.
func (m *Model) Encode(mel []float32, nWindows int) (enc *Encoded, err error) {
	return m.encodeChecked(mel, nWindows, true)
}

// encodeChecked is Encode, with the encoder's output kept in Out or not (see encodeFrom).
func (m *Model) encodeChecked(mel []float32, nWindows int, out bool) (enc *Encoded, err error) {
	defer tensor.Catch(&err)
	if m.closed {
		return nil, ErrClosed
	}
	frames := 2 * m.Config.NAudioCtx
	if nWindows <= 0 || len(mel) != nWindows*m.Config.NMels*frames {
		return nil, fmt.Errorf("encode: %d mel values for %d windows of [%d, %d]", len(mel), nWindows, m.Config.NMels, frames)
	}
	return m.encode(mel, nWindows, out), nil
}

// Close frees the encoder output (the model keeps its memory for the next Encode of the same
// batch size). It is idempotent.
func (e *Encoded) Close() {
	if e == nil || e.closed {
		return
	}
	e.closed = true
	if e.m.closed {
		return
	}
	var err error
	defer tensor.Catch(&err)
	if p := e.m.encPool; p != nil {
		p.free()
	}
	e.m.encPool = &Encoded{m: e.m, Out: e.Out, crossK: e.crossK, crossV: e.crossV, windows: e.windows}
}

// free releases the tensors of e.
func (e *Encoded) free() {
	b := e.m.b
	if e.Out != nil {
		b.Free(e.Out)
	}
	for _, t := range append(e.crossK, e.crossV...) {
		b.Free(t)
	}
	e.Out, e.crossK, e.crossV = nil, nil, nil
}

// Session decodes a batch of token sequences against encoded windows, with self-attention KV
// caches. All sequences advance together (the same number of tokens per Step). The session
// reads enc's tensors: close it before closing enc.
type Session struct {
	m      *Model
	enc    *Encoded
	batch  int
	n      int   // tokens in the caches
	window []int // window of each sequence

	kv *kvCaches
	// runs split the batch for cross-attention, which reads enc's K/V in place (see crossRun).
	runs     []crossRun
	runViews *decViews // the decoder views the runs' q/a views were made from
	// wruns split it for a backend's tensor.WindowAttention (see windowRun); useWRuns: the
	// current views take them.
	wruns    []windowRun
	useWRuns bool

	ids    []int32    // scratch: flattened token ids
	logits []float32  // Step's result, reused from step to step when the backend reads into it
	times  *stepTimes // when set (benchmarks), where Step's time goes
	closed bool
	// dev, where lanes share the device (TranscribeQueue), is its lock: each call that uses
	// the device holds it (Step and its kinds, Reorder, keepRows, Close), not the caller's work
	// between calls.
	dev *sync.Mutex
}

// NewSession starts len(window) empty sequences; sequence i cross-attends to window[i] of enc.
func (m *Model) NewSession(enc *Encoded, window []int) (s *Session, err error) {
	defer tensor.Catch(&err)
	switch {
	case m.closed:
		return nil, ErrClosed
	case enc == nil || enc.closed:
		return nil, fmt.Errorf("new session: %w", ErrClosed)
	case enc.m != m:
		return nil, errors.New("new session: encoder output of another model")
	case len(window) == 0:
		return nil, errors.New("new session: no sequences")
	}
	for i, w := range window {
		if w < 0 || w >= enc.Windows() {
			return nil, fmt.Errorf("new session: sequence %d: window %d of %d", i, w, enc.Windows())
		}
	}
	s = &Session{m: m, enc: enc, batch: len(window), window: append([]int(nil), window...)}
	defer func() {
		if err != nil {
			s.Close()
			s = nil
		}
	}()
	defer tensor.Catch(&err)
	s.kv = m.takeCaches(s.batch)
	s.setRuns()
	return s, nil
}

// Step appends tokens[i] to sequence i (all of equal length n >= 1) and returns logits as a
// flat slice: [B, NVocab] for the last new position, or [B, n, NVocab] when all is true. The
// slice belongs to the session and is overwritten by the next Step: copy what must outlive it.
func (s *Session) Step(tokens [][]int32, all bool) (logits []float32, err error) {
	defer tensor.Catch(&err)
	defer held(s.dev)()
	t0 := time.Now()
	out, err := s.step(tokens, all)
	if err != nil {
		return nil, err
	}
	defer s.times.add(t0, time.Now(), s.batch)
	return s.read(out), nil
}

// StepPick is Step for one new token a sequence, followed by the greedy pick of each sequence's
// next token under its row of masks (tensor.PickRow, with the bitmaps; asked for once the step
// is queued): where the logits are when the backend picks (tensor.RowPicker), so only the picks
// are read back; otherwise on the host from the logits, with the same result (tensor.PickF32).
func (s *Session) StepPick(tokens [][]int32, masks stepMasks, picks []tensor.Pick) (err error) {
	defer tensor.Catch(&err)
	defer held(s.dev)()
	if len(picks) != len(tokens) {
		return fmt.Errorf("step: %d picks for %d sequences", len(picks), len(tokens))
	}
	return s.stepPicked(tokens, masks, func(out *tensor.Tensor, bitmaps [][]uint32, rows []tensor.PickRow) bool {
		p, ok := s.m.b.(tensor.RowPicker)
		if ok && p.CanPick() {
			p.PickGreedy(out, bitmaps, rows, picks)
		}
		return ok && p.CanPick()
	}, func(logits []float32, bitmaps [][]uint32, rows []tensor.PickRow) {
		tensor.PickRowsF32(logits, bitmaps, rows, picks)
	})
}

// stepPicked runs a decoder step of one token a sequence, then its picks under the masks, made
// once the step is queued (and sent to the device: tensor.Flusher): device makes the picks
// where the logits are and reports whether it could; else host makes them from the logits read
// back. The step's time includes the masks and the picks (stepTimes).
func (s *Session) stepPicked(tokens [][]int32, masks stepMasks, device func(out *tensor.Tensor, bitmaps [][]uint32, rows []tensor.PickRow) bool,
	host func(logits []float32, bitmaps [][]uint32, rows []tensor.PickRow)) error {
	t0 := time.Now()
	out, err := s.step(tokens, false)
	if err != nil {
		return err
	}
	if f, ok := s.m.b.(tensor.Flusher); ok {
		f.Flush()
	}
	defer s.times.add(t0, time.Now(), s.batch)
	bitmaps, rows := masks()
	if len(rows) != len(tokens) {
		return fmt.Errorf("step: %d rows of masks for %d sequences", len(rows), len(tokens))
	}
	if !device(out, bitmaps, rows) {
		host(s.read(out), bitmaps, rows)
	}
	return nil
}

// step checks tokens and runs the decoder on them: the logits tensor.
func (s *Session) step(tokens [][]int32, all bool) (*tensor.Tensor, error) {
	if err := s.usable(); err != nil {
		return nil, fmt.Errorf("step: %w", err)
	}
	if len(tokens) != s.batch {
		return nil, fmt.Errorf("step: %d token sequences for a batch of %d", len(tokens), s.batch)
	}
	n := len(tokens[0])
	if n == 0 {
		return nil, errors.New("step: no tokens")
	}
	if s.n+n > s.m.Config.NTextCtx {
		return nil, fmt.Errorf("step: %d + %d tokens > %d: %w", s.n, n, s.m.Config.NTextCtx, ErrContextFull)
	}
	s.ids = s.ids[:0]
	for i, seq := range tokens {
		if len(seq) != n {
			return nil, fmt.Errorf("step: sequence %d has %d tokens, sequence 0 has %d", i, len(seq), n)
		}
		for _, t := range seq {
			if t < 0 || int(t) >= s.m.Config.NVocab {
				return nil, fmt.Errorf("step: sequence %d: token %d outside the vocabulary of %d", i, t, s.m.Config.NVocab)
			}
		}
		s.ids = append(s.ids, seq...)
	}
	out := s.decodeGraphed(n, all)
	s.n += n
	return out, nil
}

// read returns out's values in the session's reused buffer when the backend reads into one.
func (s *Session) read(out *tensor.Tensor) []float32 { return readInto(s.m.b, out, &s.logits) }

// readInto returns t's values, read into *buf (grown as needed, and kept for the next read) when
// the backend reads into a buffer (tensor.F32Reader).
func readInto(b tensor.Backend, t *tensor.Tensor, buf *[]float32) []float32 {
	r, ok := b.(tensor.F32Reader)
	if !ok {
		return b.ToF32(t)
	}
	if k := t.Len(); cap(*buf) < k {
		*buf = make([]float32, k)
	} else {
		*buf = (*buf)[:k]
	}
	r.ReadF32(t, *buf)
	return *buf
}

// stepTimes splits Step's time: recording the decoder's ops (host work; on an asynchronous
// backend the GPU runs them meanwhile), and reading the logits back (waiting for the GPU, the
// copy to the host).
type stepTimes struct {
	record, read time.Duration
	steps, rows  int // steps counted, and their sequences summed
}

// add counts a step of rows sequences recorded from t0 to t1 and read from t1 to now (nil: not
// timed).
func (st *stepTimes) add(t0, t1 time.Time, rows int) {
	if st != nil {
		st.record += t1.Sub(t0)
		st.read += time.Since(t1)
		st.steps++
		st.rows += rows
	}
}

// decodeGraphed runs the decoder for n new tokens inside a graph recording when the backend
// has them (tensor.Grapher): the same step of the next batch replays as one launch.
func (s *Session) decodeGraphed(n int, all bool) *tensor.Tensor {
	if g, ok := s.m.b.(tensor.Grapher); ok {
		g.BeginGraph()
		defer g.EndGraph()
	}
	return s.m.decode(s, n, all)
}

// Len is the number of tokens in the caches.
func (s *Session) Len() int { return s.n }

// Batch is the number of sequences.
func (s *Session) Batch() int { return s.batch }

// Reorder makes sequence i continue from the cache of sequence src[i] (beam search).
func (s *Session) Reorder(src []int) (err error) {
	defer tensor.Catch(&err)
	defer held(s.dev)()
	if err := s.usable(); err != nil {
		return fmt.Errorf("reorder: %w", err)
	}
	if len(src) != s.batch {
		return fmt.Errorf("reorder: %d sources for a batch of %d", len(src), s.batch)
	}
	identity := true
	for i, j := range src {
		if j < 0 || j >= s.batch {
			return fmt.Errorf("reorder: source %d of sequence %d outside the batch of %d", j, i, s.batch)
		}
		identity = identity && i == j
	}
	if identity {
		return nil
	}
	s.ids = s.ids[:0]
	for _, j := range src {
		s.ids = append(s.ids, int32(j))
	}
	if s.n > 0 {
		s.kv.reorder(s.m.b, s.ids, s.n)
	}
	changed := false
	for i, j := range src {
		if s.window[j] != s.window[i] {
			changed = true
		}
	}
	if changed {
		w := make([]int, s.batch)
		for i, j := range src {
			w[i] = s.window[j]
		}
		s.window = w
		s.setRuns()
	}
	return nil
}

// Truncate drops cached positions from n on (n <= Len), so decoding can restart from a prefix.
func (s *Session) Truncate(n int) error {
	if err := s.usable(); err != nil {
		return fmt.Errorf("truncate: %w", err)
	}
	if n < 0 || n > s.n {
		return fmt.Errorf("truncate to %d: session has %d tokens", n, s.n)
	}
	s.n = n
	return nil
}

// Close frees the session's caches. It is idempotent.
func (s *Session) Close() {
	if s == nil || s.closed {
		return
	}
	s.closed = true
	s.logits = nil
	if s.m.closed {
		return
	}
	var err error
	defer tensor.Catch(&err)
	defer held(s.dev)()
	s.freeWRuns()
	s.runs, s.runViews, s.wruns = nil, nil, nil
	s.m.putCaches(s.kv)
	s.kv = nil
}

func (s *Session) usable() error {
	switch {
	case s == nil || s.closed || s.m.closed:
		return ErrClosed
	case s.enc.closed:
		return fmt.Errorf("encoder output: %w", ErrClosed)
	}
	return nil
}

var _ rowKeeper = (*Session)(nil)

// keepRows shrinks the session to the sequences at rows (increasing): their caches move to the
// first entries, in place (no second set of caches, whose allocation would also briefly need
// both), and the session goes on with views of those.
func (s *Session) keepRows(rows []int) (err error) {
	defer tensor.Catch(&err)
	defer held(s.dev)()
	if err := s.usable(); err != nil {
		return err
	}
	if len(rows) == 0 {
		return errors.New("keep rows: no sequences")
	}
	for i, j := range rows {
		if j < 0 || j >= s.batch || (i > 0 && j <= rows[i-1]) {
			return fmt.Errorf("keep rows: bad rows %v of %d", rows, s.batch)
		}
	}
	if len(rows) == s.batch {
		return nil
	}
	if s.n > 0 {
		src := make([]int32, len(rows))
		for i, j := range rows {
			src[i] = int32(j)
		}
		s.kv.reorder(s.m.b, src, s.n)
	}
	s.kv.shrink(len(rows))
	w := make([]int, len(rows))
	for i, j := range rows {
		w[i] = s.window[j]
	}
	s.window, s.batch = w, len(rows)
	s.setRuns()
	return nil
}
