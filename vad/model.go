// Package vad is voice activity detection with Silero VAD (v6.2, 16 kHz) run on a
// [tensor.Backend]: a speech probability for every 512-sample frame (32 ms), and speech segments
// from those probabilities with the rules of Silero's get_speech_timestamps as whisper.cpp applies
// them.
//
// The weights are the ggml file whisper.cpp uses; a copy is embedded in the package ([Default]),
// and [Open] loads another. The network per frame: reflection padding, an STFT done as a strided
// convolution with the stored basis, its magnitude, four convolutions with ReLU, one LSTM cell
// whose state carries over from frame to frame, and a 1x1 convolution with a sigmoid.
//
// A Model and its Streams use the model's backend, which is not safe for concurrent use: call
// them from one goroutine (the backend's).
package vad

import (
	_ "embed"
	"fmt"
	"os"

	"github.com/verbatimhq/verbatim/tensor"
)

// SampleRate is the rate of the audio the model takes.
const SampleRate = 16000

// maxBatch is the number of frames run through the convolutions at once (about 2 s of audio); it
// bounds a stream's memory.
const maxBatch = 64

//go:embed model/silero-v6.2.0-ggml.bin
var embedded []byte

// EmbeddedSHA256 is the checksum of the embedded weights (whisper.cpp's
// models/for-tests-silero-v6.2.0-ggml.bin).
const EmbeddedSHA256 = "2aa269b785eeb53a82983a20501ddf7c1d9c48e33ab63a41391ac6c9f7fb6987"

// Framing says what the network sees around each 512-sample frame.
type Framing int

const (
	// FramingWhisperCPP reflects 64 samples of the frame itself on both sides, as whisper.cpp
	// does (it reads the context size from the file and does not use it). The default: the
	// project's goldens come from whisper.cpp.
	FramingWhisperCPP Framing = iota
	// FramingSilero puts the last 64 samples of the previous frame (zeros before the first) in
	// front and reflects 64 samples on the right only, as the Silero reference does.
	FramingSilero
)

// Model is a loaded Silero VAD network on a backend. Close frees its weights.
type Model struct {
	Header
	// Framing is used by streams made after it is set; the zero value is whisper.cpp's.
	Framing Framing

	b        tensor.Backend
	basis    [2]*tensor.Tensor // real and imaginary STFT kernels [bins, nfft]
	encW     []*tensor.Tensor  // [out, in, k]
	encB     []*tensor.Tensor  // [out]
	wih, whh *tensor.Tensor    // [4H, in], [4H, H]
	bih, bhh *tensor.Tensor    // [4H]
	outW     *tensor.Tensor    // [1, H]
	outB     *tensor.Tensor    // [1]
	nfft     int
	hop      int
	steps    []int // time steps after the STFT and after each encoder layer
	closed   bool
}

// Open loads a Silero VAD ggml file onto b. Errors name the file and, where one is at fault, the
// tensor; they wrap ErrNotModel, ErrTruncated or ErrInvalid (as a *FormatError), or the
// os error of reading the file.
func Open(path string, b tensor.Backend) (*Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("vad %s: %w", path, err)
	}
	return OpenBytes(path, data, b)
}

// Default loads the embedded Silero VAD v6.2.0 weights onto b.
func Default(b tensor.Backend) (*Model, error) {
	return OpenBytes("embedded silero-v6.2.0-ggml.bin", embedded, b)
}

// OpenBytes loads a model from the bytes of a Silero VAD ggml file; name is used in errors. The
// weights are copied to the backend; data may be reused afterwards.
func OpenBytes(name string, data []byte, b tensor.Backend) (m *Model, err error) {
	f, err := parse(name, data)
	if err != nil {
		return nil, err
	}
	m = &Model{Header: f.Header, b: b}
	defer func() {
		if err != nil {
			if _, ok := err.(*FormatError); !ok {
				err = fmt.Errorf("vad %s: load on %s: %w", name, b.Name(), err)
			}
			m.Close()
			m = nil
		}
	}()
	defer tensor.Catch(&err)
	caps := b.Capabilities()
	up := func(tn string, shape ...int) *tensor.Tensor {
		r := f.tensors[tn]
		return upload(b, caps, r.dtype, r.data, shape...)
	}
	bins := m.Layers[0].In
	m.nfft = nfft(bins)
	m.hop = m.nfft / 2
	basis := f.tensors[nameBasis]
	half := len(basis.data) / 2
	m.basis[0] = upload(b, caps, basis.dtype, basis.data[:half], bins, m.nfft)
	m.basis[1] = upload(b, caps, basis.dtype, basis.data[half:], bins, m.nfft)
	for i, l := range m.Layers {
		m.encW = append(m.encW, up(fmt.Sprintf(encoderNameF, i, "weight"), l.Out, l.In, l.Kernel))
		m.encB = append(m.encB, up(fmt.Sprintf(encoderNameF, i, "bias"), l.Out))
	}
	hd := m.LSTMHidden
	m.wih = up(nameWIH, 4*hd, m.LSTMInput)
	m.whh = up(nameWHH, 4*hd, hd)
	m.bih = up(nameBIH, 4*hd)
	m.bhh = up(nameBHH, 4*hd)
	m.outW = up(nameOutW, 1, hd)
	m.outB = up(nameOutB, 1)

	t := (m.Window+2*m.Context-m.nfft)/m.hop + 1
	m.steps = []int{t}
	for _, s := range encoderStrides {
		t = (t+2*encoderPad-3)/s + 1
		m.steps = append(m.steps, t)
	}
	if t != 1 {
		return nil, formatErr(name, "", ErrInvalid, "the encoder leaves %d time steps per frame, want 1", t)
	}
	return m, nil
}

// upload copies a weight to the backend, widening F16 to F32 on the host when the backend does
// not take F16 weights.
func upload(b tensor.Backend, caps tensor.Capabilities, dt tensor.DType, raw []byte, shape ...int) *tensor.Tensor {
	if dt == tensor.F32 || caps.Supports(dt) {
		return b.Upload(dt, raw, shape...)
	}
	v := make([]float32, len(raw)/dt.BlockBytes())
	if err := tensor.Dequantize(dt, raw, v); err != nil {
		panic(&tensor.Error{Msg: "vad: widen weight", Err: err})
	}
	return b.FromF32(v, shape...)
}

// Close frees the weights. It is idempotent; streams of a closed model must not be used.
func (m *Model) Close() error {
	if m == nil || m.closed {
		return nil
	}
	m.closed = true
	for _, t := range append([]*tensor.Tensor{m.basis[0], m.basis[1], m.wih, m.whh, m.bih, m.bhh, m.outW, m.outB},
		append(m.encW, m.encB...)...) {
		if t != nil {
			m.b.Free(t)
		}
	}
	return nil
}

// Version returns the model version from the file, e.g. "6.2.0".
func (m *Model) Version() string {
	return fmt.Sprintf("%d.%d.%d", m.Header.Version[0], m.Header.Version[1], m.Header.Version[2])
}

// Probs returns the speech probability of every 512-sample frame of samples (16 kHz mono), the
// last partial frame zero-padded, with the recurrent state starting from zero.
func (m *Model) Probs(samples []float32) ([]float32, error) {
	s := m.NewStream()
	defer s.Close()
	p, err := s.Push(samples)
	if err != nil {
		return nil, err
	}
	q, err := s.Flush()
	if err != nil {
		return nil, err
	}
	return append(p, q...), nil
}

// Segments runs the model over samples (16 kHz mono) and returns the speech segments by opts
// (see [Options]; the zero Options means the defaults).
func (m *Model) Segments(samples []float32, opts Options) ([]Segment, error) {
	p, err := m.Probs(samples)
	if err != nil {
		return nil, err
	}
	return SegmentsFromProbs(p, opts)
}

// Stream runs the model over audio given in pieces, keeping the recurrent state and the samples
// of an unfinished frame between calls. Its memory is bounded whatever the total length.
type Stream struct {
	m       *Model
	h, c    *tensor.Tensor // [1, H] recurrent state
	pending []float32      // samples of a frame not yet complete (< Window)
	context []float32      // the last Context samples of the previous frame (FramingSilero)
	framing Framing
	host    []float32 // padded frames for one batch
	frames  int

	work    []*tensor.Tensor // device buffers for maxBatch frames, allocated on first use
	windows []float32        // STFT windows of one batch

	re, im, mag, gin, hs, out *tensor.Tensor
	enc                       []*tensor.Tensor
	gates, tmp                *tensor.Tensor
}

// NewStream starts a stream with zero state.
func (m *Model) NewStream() *Stream {
	return &Stream{m: m, framing: m.Framing, context: make([]float32, m.Context)}
}

// Frames returns the number of frames the stream has produced probabilities for.
func (s *Stream) Frames() int { return s.frames }

// Push feeds samples (16 kHz mono) and returns the probabilities of the frames they complete, in
// order. Samples of an unfinished frame are kept for the next call.
func (s *Stream) Push(samples []float32) (probs []float32, err error) {
	defer tensor.Catch(&err)
	w := s.m.Window
	for len(samples) > 0 {
		// A pending partial frame first, joined by as many samples as fill whole frames (up to a
		// batch), so that the frame it completes runs in a batch with the next ones rather than
		// alone: a second a Push left a frame pending every other call, and a frame alone costs
		// the convolutions' set-up of a batch.
		if len(s.pending) > 0 {
			need := min(maxBatch*w, (len(s.pending)+len(samples))/w*w) - len(s.pending)
			if need <= 0 { // still less than a frame
				s.pending = append(s.pending, samples...)
				break
			}
			s.pending = append(s.pending, samples[:need]...)
			samples = samples[need:]
			probs = append(probs, s.run(s.pending, len(s.pending)/w)...)
			s.pending = s.pending[:0]
			continue
		}
		n := min(len(samples)/w, maxBatch)
		if n == 0 {
			s.pending = append(s.pending, samples...)
			break
		}
		probs = append(probs, s.run(samples[:n*w], n)...)
		samples = samples[n*w:]
	}
	return probs, nil
}

// Flush runs the unfinished frame, zero-padded, if there is one, and returns its probability
// (nothing when the samples so far fill whole frames). The stream goes on afterwards as if the
// padding had been pushed.
func (s *Stream) Flush() (probs []float32, err error) {
	if len(s.pending) == 0 {
		return nil, nil
	}
	defer tensor.Catch(&err)
	f := append(s.pending, make([]float32, s.m.Window-len(s.pending))...)
	s.pending = s.pending[:0]
	return s.run(f, 1), nil
}

// Reset zeroes the recurrent state and drops pending samples, as for a new recording.
func (s *Stream) Reset() {
	s.Close() // the next frame allocates zeroed state
	s.pending = s.pending[:0]
	clear(s.context)
	s.frames = 0
}

// Close frees the stream's device buffers. It is idempotent.
func (s *Stream) Close() error {
	for _, t := range s.work {
		s.m.b.Free(t)
	}
	s.work = nil
	return nil
}

func (s *Stream) alloc(shape ...int) *tensor.Tensor {
	t := s.m.b.Alloc(tensor.F32, shape...)
	s.work = append(s.work, t)
	return t
}

func (s *Stream) setup() {
	m := s.m
	if m.closed {
		panic(tensor.Errorf("vad: model is closed"))
	}
	hd, bins := m.LSTMHidden, m.Layers[0].In
	s.h = s.alloc(1, hd)
	s.c = s.alloc(1, hd)
	s.re = s.alloc(maxBatch*m.steps[0], bins)
	s.im = s.alloc(maxBatch*m.steps[0], bins)
	s.mag = s.alloc(maxBatch, bins, m.steps[0])
	s.enc = nil
	for i, l := range m.Layers {
		s.enc = append(s.enc, s.alloc(maxBatch, l.Out, m.steps[i+1]))
	}
	s.gin = s.alloc(maxBatch, 4*hd)
	s.hs = s.alloc(maxBatch, hd)
	s.out = s.alloc(maxBatch, 1)
	s.gates = s.alloc(1, 4*hd)
	s.tmp = s.alloc(1, hd)
}

// frame writes the padded input of one frame into dst (Window + 2*Context samples).
func (s *Stream) frame(dst, x []float32) {
	w, p := s.m.Window, s.m.Context
	switch s.framing {
	case FramingSilero:
		copy(dst, s.context)
		copy(dst[p:], x)
		in := dst[:p+w]
		for j := range p {
			dst[p+w+j] = in[p+w-2-j]
		}
		copy(s.context, x[w-p:])
	default:
		copy(dst[p:], x)
		for j := range p {
			dst[p-1-j] = x[j+1]
			dst[p+w+j] = x[w-2-j]
		}
	}
}

// run computes the probabilities of n whole frames in x (n <= maxBatch).
func (s *Stream) run(x []float32, n int) []float32 {
	if s.work == nil {
		s.setup()
	}
	m, b := s.m, s.m.b
	w, p := m.Window, m.Context
	fl := w + 2*p
	if cap(s.host) < maxBatch*fl {
		s.host = make([]float32, maxBatch*fl)
	}
	host := s.host[:n*fl]
	for i := range n {
		s.frame(host[i*fl:(i+1)*fl], x[i*w:(i+1)*w])
	}
	// The STFT as one matrix product: the windows of every frame (hop apart) times the real and
	// imaginary kernels, then the magnitude sqrt(re^2 + im^2), transposed to [n, bins, steps].
	steps, bins := m.steps[0], m.Layers[0].In
	if cap(s.windows) < maxBatch*steps*m.nfft {
		s.windows = make([]float32, maxBatch*steps*m.nfft)
	}
	win := s.windows[:n*steps*m.nfft]
	for i := range n {
		for k := range steps {
			o := (i*steps + k) * m.nfft
			copy(win[o:o+m.nfft], host[i*fl+k*m.hop:])
		}
	}
	in := b.FromF32(win, n*steps, m.nfft)
	defer b.Free(in)
	re, im := s.re.Slice(0, n*steps), s.im.Slice(0, n*steps)
	b.Linear(re, in, m.basis[0], nil)
	b.Linear(im, in, m.basis[1], nil)
	b.Mul(re, re, re)
	b.Mul(im, im, im)
	b.Add(re, re, im)
	b.Sqrt(re, re)
	mag := s.mag.Slice(0, n)
	b.Transpose(mag, re.Reshape(n, steps, bins))

	// Encoder.
	cur := mag
	for i := range m.Layers {
		e := s.enc[i].Slice(0, n)
		b.Conv1D(e, cur, m.encW[i], m.encB[i], encoderStrides[i], encoderPad)
		b.ReLU(e, e)
		cur = e
	}
	feat := cur.Reshape(n, m.LSTMInput) // one time step left

	// LSTM: the input projections of all frames at once, then the recurrence frame by frame.
	hd := m.LSTMHidden
	gin := s.gin.Slice(0, n)
	b.Linear(gin, feat, m.wih, m.bih)
	hs := s.hs.Slice(0, n)
	g4 := s.gates.Reshape(4, hd)
	ig, fg, gg, og := g4.Slice(0, 1), g4.Slice(1, 2), g4.Slice(2, 3), g4.Slice(3, 4)
	h := s.h
	for t := range n {
		b.Linear(s.gates, h, m.whh, m.bhh)
		b.Add(s.gates, s.gates, gin.Slice(t, t+1))
		b.Sigmoid(g4.Slice(0, 2), g4.Slice(0, 2)) // input and forget gates
		b.Tanh(gg, gg)
		b.Sigmoid(og, og)
		b.Mul(s.c, s.c, fg)
		b.Mul(s.tmp, ig, gg)
		b.Add(s.c, s.c, s.tmp)
		b.Tanh(s.tmp, s.c)
		h = hs.Slice(t, t+1)
		b.Mul(h, s.tmp, og)
	}
	b.Copy(s.h, h)

	// Decoder: ReLU, 1x1 convolution, sigmoid.
	out := s.out.Slice(0, n)
	b.ReLU(hs, hs)
	b.Linear(out, hs, m.outW, m.outB)
	b.Sigmoid(out, out)
	s.frames += n
	return b.ToF32(out)
}
