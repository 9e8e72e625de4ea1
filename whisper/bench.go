package whisper

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/verbatimhq/verbatim/tensor"
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
		enc, err = m.Encode(mel, o.EncodeBatch)
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
