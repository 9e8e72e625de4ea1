package whisper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper/mel"
)

// BenchOptions says what [Bench] times. Zero fields take the defaults in brackets.
type BenchOptions struct {
	EncodeBatch int // windows per Encode call [1]
	DecodeBatch int // sequences per decoder Step [1]
	DecodeSteps int // one-token steps timed per iteration, after a 4-token prefix [64]
	Warmup      int // untimed iterations first [1]; negative for none
	Iterations  int // timed iterations [3]
	Seed        uint64
}

// BenchResult is what [Bench] measured. Times are medians over the timed iterations.
type BenchResult struct {
	Backend, Device          string
	EncodeBatch, DecodeBatch int
	DecodeSteps, Iterations  int
	// EncoderMsPerWindow is the time of one Encode call divided by its number of windows.
	EncoderMsPerWindow float64
	// DecodeMsPerToken is the mean time of one Step that appends one token to each of the
	// DecodeBatch sequences (logits of the last position read back to the host).
	DecodeMsPerToken float64
	// Encode and Decode hold every timed iteration's value (ms/window, ms/token), in order.
	Encode, Decode []float64
}

// Bench times the encoder and the decoder of m separately on deterministic random input: a
// batch of random log-mel windows, then greedy one-token steps of a batch of sequences over them.
func Bench(ctx context.Context, m *Model, opts BenchOptions) (res *BenchResult, err error) {
	defer tensor.Catch(&err)
	o := opts
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.EncodeBatch, 1)
	def(&o.DecodeBatch, 1)
	def(&o.DecodeSteps, 64)
	def(&o.Iterations, 3)
	if o.Warmup < 0 {
		o.Warmup = 0
	} else if opts.Warmup == 0 {
		o.Warmup = 1
	}
	c := m.Config
	const prefix = 4
	if o.DecodeSteps > c.NTextCtx-prefix {
		o.DecodeSteps = c.NTextCtx - prefix
	}
	b := m.Backend()
	res = &BenchResult{
		Backend: b.Name(), Device: b.Device(),
		EncodeBatch: o.EncodeBatch, DecodeBatch: o.DecodeBatch,
		DecodeSteps: o.DecodeSteps, Iterations: o.Iterations,
	}

	rng := rand.New(rand.NewPCG(o.Seed, 0x5eed))
	mel := make([]float32, o.EncodeBatch*c.NMels*2*c.NAudioCtx)
	for i := range mel {
		mel[i] = rng.Float32()*2 - 1
	}
	var enc *Encoded
	defer func() { enc.Close() }()
	for it := range o.Warmup + o.Iterations {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		enc.Close()
		start := time.Now()
		enc, err = m.encodeChecked(mel, o.EncodeBatch, false) // as the driver encodes
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		if err := b.Sync(); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		if it >= o.Warmup {
			res.Encode = append(res.Encode, benchMs(time.Since(start))/float64(o.EncodeBatch))
		}
	}

	window := make([]int, o.DecodeBatch)
	for i := range window {
		window[i] = i % o.EncodeBatch
	}
	tokens := make([][]int32, o.DecodeBatch)
	for it := range o.Warmup + o.Iterations {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		d, err := benchDecode(m, enc, window, tokens, prefix, o.DecodeSteps, rng)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		if it >= o.Warmup {
			res.Decode = append(res.Decode, benchMs(d)/float64(o.DecodeSteps))
		}
	}
	res.EncoderMsPerWindow = benchMedian(res.Encode)
	res.DecodeMsPerToken = benchMedian(res.Decode)
	return res, nil
}

// benchDecode runs one session: a random prefix, then steps greedy one-token steps; it returns
// the time spent in those steps.
func benchDecode(m *Model, enc *Encoded, window []int, tokens [][]int32, prefix, steps int, rng *rand.Rand) (time.Duration, error) {
	s, err := m.NewSession(enc, window)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	nv := m.Config.NVocab
	for i := range tokens {
		tokens[i] = tokens[i][:0]
		for range prefix {
			tokens[i] = append(tokens[i], int32(rng.IntN(nv)))
		}
	}
	logits, err := s.Step(tokens, false)
	if err != nil {
		return 0, err
	}
	var total time.Duration
	for range steps {
		for i := range tokens {
			row := logits[i*nv : (i+1)*nv]
			tokens[i] = append(tokens[i][:0], int32(benchArgmax(row)))
		}
		start := time.Now()
		logits, err = s.Step(tokens, false)
		total += time.Since(start)
		if err != nil {
			return 0, err
		}
	}
	return total, nil
}

func benchArgmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

func benchMs(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func benchMedian(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := slices.Clone(x)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// E2EOptions says what [BenchE2E] runs. Zero fields take the defaults in brackets.
type E2EOptions struct {
	Windows int // 30 s windows of random log-mel input [64]
	Tokens  int // greedy tokens decoded per window after a 4-token prompt [100]
	Batch   int // windows per Encode call, which are then decoded together in one session [16]
	Seed    uint64
	// Default runs the default decoding instead (BenchDefault).
	Default bool
	// Lanes, with Default, is the driver's ManyOptions.Lanes (0: its default).
	Lanes int
	// ForcedAlone, with Default, is the driver's ManyOptions.ForcedAlone.
	ForcedAlone bool
	// EncodeChunk, with Default, is the driver's ManyOptions.EncodeChunk.
	EncodeChunk int
}

// E2EResult is what [BenchE2E] measured: wall time for all windows, after untimed batches.
type E2EResult struct {
	Backend, Device        string
	Windows, Tokens, Batch int
	// WallSeconds is the time of the whole run; EncodeSeconds and DecodeSeconds split it.
	WallSeconds, EncodeSeconds, DecodeSeconds float64
	// RTF is the real-time factor: seconds of audio (30 per window) per second of wall time.
	RTF float64
	// TokensPerSecond counts the greedy tokens (Windows x Tokens) over the wall time.
	TokensPerSecond float64
	// DecodeSeconds split: recording the steps' ops (host), and the picks (waiting for the
	// device, then the picks made there, or the logits copied back and picked on the host).
	RecordSeconds, ReadSeconds float64
	// With Default: windows decoded (first passes and the coverage check's retries; the
	// sequential windows' starts follow the text, so Windows is the audio's length in windows),
	// segments, and words timed.
	Decoded, Segments, Words int
	// With Default: DecodedRTF is Decoded x 30 s over the wall time, the pace of decoding 30 s
	// windows the default way. Random weights end windows early (a timestamp, then the cap),
	// so sequential windows advance less than a real model's and RTF understates what speech
	// gets; DecodedRTF is the figure comparable with greedy's (which decodes each window once).
	DecodedRTF float64
	// With Default: the timed run's wall time by phase of the long-form driver, its decoder
	// sessions and steps (TimePhases).
	Timing
	// With Default: what the driver changed in the timed run's options, and why (ManyOptions.Notice:
	// a batch fitted to the device's memory).
	Notices []string
}

// withDefaults fills the zero fields of o with their defaults.
func (o E2EOptions) withDefaults() E2EOptions {
	if o.Windows <= 0 {
		o.Windows = 64
	}
	if o.Tokens <= 0 {
		o.Tokens = 100
	}
	if o.Batch <= 0 {
		o.Batch = 16
	}
	return o
}

// BenchDefault is BenchE2E with the default decoding, the figure a user gets: Windows x 30 s of
// random audio (noise) as Batch inputs transcribed together by the long-form driver, as the CLI
// does with Batch files, each window decoded with DefaultOptions (language detection, beam
// search 5, word timestamps, the guard and the coverage check, sequential windows conditioned on
// the previous text) except that no window samples more than Tokens tokens (random weights
// rarely end a window on their own) and the temperature fallback is off: its bookkeeping (the
// compression ratio and average log-probability of every window) is computed, but random
// weights fail its thresholds in every window, which real models do not. The driver's batch is
// Batch windows (of 5 beams each). The timed run's wall time is split by the driver's phases
// (Phases; EncodeSeconds and DecodeSeconds are 0): a Sync after each batch's encoding is the one
// thing the split adds to the run. No VAD (the pipeline's stage, not the engine's): the whole
// input is speech to the coverage check.
func BenchDefault(ctx context.Context, m *Model, opts E2EOptions) (res *E2EResult, err error) {
	defer tensor.Catch(&err)
	o := opts.withDefaults()
	o.Batch = min(o.Batch, o.Windows)
	b := m.Backend()
	res = &E2EResult{Backend: b.Name(), Device: b.Device(), Windows: o.Windows, Tokens: o.Tokens, Batch: o.Batch}
	dopts := DefaultOptions()
	dopts.NoFallback, dopts.MaxWindowTokens = true, o.Tokens
	// Batch inputs of Windows/Batch windows each (the first Windows%Batch one window longer).
	per := o.Windows / o.Batch
	lens := make([]int, o.Batch)
	for i := range lens {
		lens[i] = per * 30 * mel.SampleRate
		if i < o.Windows%o.Batch {
			lens[i] += 30 * mel.SampleRate
		}
	}
	// The inputs' audio: one table of noise, each input reading it in a loop from its own
	// offset. A read costs a copy, as reading decoded audio does (the CLI's ffmpeg decodes in
	// its own process); a random draw a sample took 1.0 s of the turbo run's 8.7 s on the H100
	// machine's host (16 cores), in the driver's goroutine.
	rng := rand.New(rand.NewPCG(o.Seed, 0x401e))
	noise := make([]float32, 1<<20+7)
	for i := range noise {
		noise[i] = rng.Float32()*0.5 - 0.25
	}
	run := func(lens []int) error {
		var errs []error
		i := 0
		next := func() (Job, bool) {
			if i == len(lens) {
				return Job{}, false
			}
			n, k := lens[i], i
			i++
			return Job{
				Name: fmt.Sprintf("input %d", k), Options: dopts,
				Source: &noiseSource{left: n, table: noise, at: k * 104729 % len(noise)},
				Done: func(r *Result, err error) {
					if err != nil {
						errs = append(errs, err)
						return
					}
					res.Segments += len(r.Segments)
					res.Decoded += r.Windows
					for _, s := range r.Segments {
						res.Words += len(s.Words)
					}
				},
			}, true
		}
		notice := func(msg string) { res.Notices = append(res.Notices, msg) }
		err := TranscribeQueue(ctx, m, next, ManyOptions{BatchSize: o.Batch, Lanes: o.Lanes, ForcedAlone: o.ForcedAlone, EncodeChunk: o.EncodeChunk, Notice: notice})
		return errors.Join(append(errs, err)...)
	}
	if err := run([]int{30 * mel.SampleRate}); err != nil { // warm-up
		return nil, fmt.Errorf("bench e2e: %w", err)
	}
	*res = E2EResult{Backend: res.Backend, Device: res.Device, Windows: o.Windows, Tokens: o.Tokens, Batch: o.Batch}
	stop := m.TimePhases()
	start := time.Now()
	err = run(lens)
	wall := time.Since(start).Seconds()
	res.Timing = stop()
	if err != nil {
		return nil, fmt.Errorf("bench e2e: %w", err)
	}
	res.WallSeconds = wall
	res.RTF = float64(o.Windows) * 30 / wall
	res.DecodedRTF = float64(res.Decoded) * 30 / wall
	return res, nil
}

// noiseSource is left samples of noise (uniform, -0.25 to 0.25): table read in a loop from at.
type noiseSource struct {
	left  int
	table []float32
	at    int
}

func (s *noiseSource) Len() int { return s.left }

func (s *noiseSource) Read(p []float32) (int, error) {
	n := 0
	for n < len(p) && s.left > 0 {
		k := copy(p[n:min(len(p), n+s.left)], s.table[s.at:])
		n, s.left, s.at = n+k, s.left-k, (s.at+k)%len(s.table)
	}
	if s.left == 0 {
		return n, io.EOF
	}
	return n, nil
}

// BenchE2E times the whole model on a long synthetic input: Windows random log-mel windows,
// encoded Batch at a time, each batch then decoded as one session of Batch sequences (one per
// window) for a 4-token prompt and Tokens greedy one-token steps, each picked under the
// timestamp rule as transcription's batched greedy pass does (Session.StepPick: on the device
// when the backend picks there, else from the logits read back).
func BenchE2E(ctx context.Context, m *Model, opts E2EOptions) (res *E2EResult, err error) {
	if opts.Default {
		return BenchDefault(ctx, m, opts)
	}
	defer tensor.Catch(&err)
	o := opts.withDefaults()
	c := m.Config
	const prompt = 4
	if o.Tokens > c.NTextCtx-prompt {
		o.Tokens = c.NTextCtx - prompt
	}
	b := m.Backend()
	res = &E2EResult{Backend: b.Name(), Device: b.Device(), Windows: o.Windows, Tokens: o.Tokens, Batch: o.Batch}
	rng := rand.New(rand.NewPCG(o.Seed, 0xe2e))
	per := c.NMels * 2 * c.NAudioCtx
	mel := make([]float32, o.Batch*per)
	for i := range mel {
		mel[i] = rng.Float32()*2 - 1
	}
	nv := c.NVocab
	times := &stepTimes{}
	group := func(n int) (enc, dec time.Duration, err error) {
		start := time.Now()
		e, err := m.encodeChecked(mel[:n*per], n, false)
		if err != nil {
			return 0, 0, err
		}
		defer e.Close()
		if err := b.Sync(); err != nil {
			return 0, 0, err
		}
		enc = time.Since(start)
		start = time.Now()
		window := make([]int, n)
		tokens := make([][]int32, n)
		for i := range window {
			window[i] = i
			for range prompt {
				tokens[i] = append(tokens[i], int32(rng.IntN(nv)))
			}
		}
		s, err := m.NewSession(e, window)
		if err != nil {
			return 0, 0, err
		}
		defer s.Close()
		s.times = times
		// The greedy pick with the timestamp rule, as transcription's batched greedy pass
		// (Session.StepPick: on the device when the backend picks there).
		rows := make([]tensor.PickRow, n)
		for i := range rows {
			rows[i] = tensor.PickRow{Mask: -1, TSBegin: int32(nv - 1501), TSRule: true}
		}
		picks := make([]tensor.Pick, n)
		masks := fixedMasks(nil, rows)
		for range o.Tokens {
			if err := s.StepPick(tokens, masks, picks); err != nil {
				return 0, 0, err
			}
			for i := range tokens {
				tokens[i] = append(tokens[i][:0], max(picks[i].Token, 0))
			}
		}
		return enc, time.Since(start), nil
	}
	// Two untimed batches: kernels compile and memory is allocated in the first; the steps'
	// CUDA graphs are captured in the second (a step's graph is captured the second time it
	// is seen), so the timed batches replay them, as a long run does.
	for range 2 {
		if _, _, err := group(min(o.Batch, o.Windows)); err != nil {
			return nil, fmt.Errorf("bench e2e: %w", err)
		}
	}
	*times = stepTimes{} // the timed run only
	start := time.Now()
	var encT, decT time.Duration
	for done := 0; done < o.Windows; done += o.Batch {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("bench e2e: %w", err)
		}
		e, d, err := group(min(o.Batch, o.Windows-done))
		if err != nil {
			return nil, fmt.Errorf("bench e2e: %w", err)
		}
		encT += e
		decT += d
	}
	wall := time.Since(start).Seconds()
	res.WallSeconds, res.EncodeSeconds, res.DecodeSeconds = wall, encT.Seconds(), decT.Seconds()
	res.RTF = float64(o.Windows) * 30 / wall
	res.TokensPerSecond = float64(o.Windows*o.Tokens) / wall
	res.RecordSeconds, res.ReadSeconds = times.record.Seconds(), times.read.Seconds()
	return res, nil
}
