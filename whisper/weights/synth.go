package weights

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"

	"github.com/verbatimhq/verbatim/tensor"
)

// SynthOptions says which random-weight model Synth makes.
type SynthOptions struct {
	Config Config
	Seed   uint64
	// DType is the model's weight type: F32 (the zero value), F16, BF16, or a ggml quantization
	// (Q8_0, Q5_0, Q5_1, Q4_0; ggml only). Values are drawn in f32 and rounded once to F16 (BF16
	// for BF16), so an F16 model has the same values in either format; quantized models are
	// quantized from those F16 values, as whisper.cpp's quantizer does from an f16 file.
	DType tensor.DType
	// Format picks the per-tensor storage types. Safetensors: every tensor in DType. GGML:
	// whisper.cpp's convention, f32 for 1-D tensors, conv biases and positional embeddings, F16
	// for conv kernels (F32 in an F32 model) and DType for the other matrices. The zero value
	// means Safetensors for float dtypes and GGML for quantized ones.
	Format Format
	// Lazy leaves each tensor's Data nil and sets Load to generate it on demand, so a writer
	// holds one tensor at a time (large-v3 in f16 is 3 GB).
	Lazy bool
}

// Synth returns random weights for opts.Config in layout order, with the distribution of the
// oracle-micro fixture: token embedding and decoder positions N(0, 1), matrices and conv kernels
// N(0, 1/fan_in), layer-norm gains 1 + N(0, 0.1²), biases and layer-norm shifts N(0, 0.1²), and
// encoder positions sinusoidal (whisper's sinusoids()). Each tensor's values depend only on the
// seed and its name: element chunks of 64 Ki values draw from PCG streams seeded by (Seed,
// FNV-1a(name) + chunk), so the result does not depend on the format or the number of cores.
func Synth(opts SynthOptions) ([]*Tensor, error) {
	if err := opts.Config.Validate(); err != nil {
		return nil, fmt.Errorf("synth: config: %w", err)
	}
	if d := opts.Config.NAudioState; d%2 != 0 || d < 4 {
		return nil, fmt.Errorf("synth: sinusoidal positions need an even width of at least 4, got %d", d)
	}
	format := opts.Format
	if format == 0 {
		format = Safetensors
		if opts.DType.Quantized() {
			format = GGML
		}
	}
	switch opts.DType {
	case tensor.F32, tensor.F16, tensor.BF16:
	case tensor.Q8_0, tensor.Q5_0, tensor.Q5_1, tensor.Q4_0:
		if format != GGML {
			return nil, fmt.Errorf("synth: %s models exist only in ggml format", opts.DType)
		}
	default:
		return nil, fmt.Errorf("synth: dtype %s is not a model weight type", opts.DType)
	}
	layout := opts.Config.Layout()
	out := make([]*Tensor, len(layout))
	for i, s := range layout {
		t := &Tensor{Name: s.Name, Shape: s.Shape, DType: storedDType(s, opts.DType, format)}
		gen := func() ([]byte, error) { return synthData(opts.Seed, s, opts.DType, t.DType), nil }
		if opts.Lazy {
			t.Load = gen
		} else {
			t.Data, _ = gen()
		}
		out[i] = t
	}
	return out, nil
}

// storedDType is the dtype a tensor of a dt model is stored in, by format.
func storedDType(s Spec, dt tensor.DType, format Format) tensor.DType {
	if format != GGML || dt == tensor.F32 {
		return dt
	}
	switch {
	case len(s.Shape) == 1 || isConvBias(s.Name) || strings.HasSuffix(s.Name, "positional_embedding"):
		return tensor.F32
	case len(s.Shape) == 3: // conv kernels
		if dt == tensor.BF16 {
			return tensor.BF16
		}
		return tensor.F16
	}
	return dt
}

// synthData draws a tensor's values, rounds them to the model dtype and encodes them as stored.
func synthData(seed uint64, s Spec, model, stored tensor.DType) []byte {
	v := synthValues(seed, s)
	switch {
	case model == tensor.BF16:
		for i, x := range v {
			v[i] = tensor.BF16ToF32(tensor.F32ToBF16(x))
		}
	case model != tensor.F32:
		for i, x := range v {
			v[i] = tensor.F16ToF32(tensor.F32ToF16(x))
		}
	}
	return tensor.Quantize(stored, v)
}

// synthChunk is the number of values drawn from one PCG stream.
const synthChunk = 1 << 16

// synthValues returns the f32 values of one tensor.
func synthValues(seed uint64, s Spec) []float32 {
	n := tensor.Numel(s.Shape)
	v := make([]float32, n)
	name := s.Name
	if name == "encoder.positional_embedding" {
		sinusoids(v, s.Shape[0], s.Shape[1])
		return v
	}
	mean, std := 0.0, 1.0
	switch {
	case name == "decoder.token_embedding.weight" || name == "decoder.positional_embedding":
	case strings.HasSuffix(name, ".bias"):
		std = 0.1
	case len(s.Shape) == 1: // layer-norm gain
		mean, std = 1, 0.1
	default: // matrices and conv kernels: fan_in is everything but the output dimension
		std = 1 / math.Sqrt(float64(tensor.Numel(s.Shape[1:])))
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	key := h.Sum64()
	chunks := (n + synthChunk - 1) / synthChunk
	fill := func(c int) {
		r := rand.New(rand.NewPCG(seed, key+uint64(c)))
		part := v[c*synthChunk : min(n, (c+1)*synthChunk)]
		for i := range part {
			part[i] = float32(mean + std*r.NormFloat64())
		}
	}
	workers := min(runtime.GOMAXPROCS(0), chunks)
	if workers <= 1 {
		for c := range chunks {
			fill(c)
		}
		return v
	}
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for c := range next {
				fill(c)
			}
		})
	}
	for c := range chunks {
		next <- c
	}
	close(next)
	wg.Wait()
	return v
}

// sinusoids writes whisper's sinusoidal position embedding [length, channels]: sin of
// position x timescale in the first half of each row, cos in the second, with timescales
// exp(-log(10000) i / (channels/2 - 1)). Products are rounded to f32 as PyTorch computes them.
func sinusoids(v []float32, length, channels int) {
	half := channels / 2
	inc := math.Log(10000) / float64(half-1)
	for i := range half {
		inv := float32(math.Exp(-inc * float64(i)))
		for t := range length {
			x := float64(float32(t) * inv)
			v[t*channels+i] = float32(math.Sin(x))
			v[t*channels+half+i] = float32(math.Cos(x))
		}
	}
}
