package tensor

// FusedLinear is an optional interface: a backend that runs the epilogue of a Linear (the
// residual add of a pre-LN block, or the GELU of an MLP) inside the same launch or pass as the
// matrix product, instead of one more pass over the output. Callers find it by type assertion
// and fall back to the unfused ops when it is missing.
type FusedLinear interface {
	// LinearAdd: dst += x w^T + bias (bias may be nil). Unfused equivalent:
	// Linear(tmp, x, w, bias); Add(dst, dst, tmp). dst must not alias x.
	LinearAdd(dst, x, w, bias *Tensor)
	// LinearGELU: dst = GELU(x w^T + bias) (bias may be nil). Unfused equivalent:
	// Linear(dst, x, w, bias); GELU(dst, dst). dst must not alias x.
	LinearGELU(dst, x, w, bias *Tensor)
}

// Discarder is an optional interface: a backend told that a tensor's values are no longer
// needed. The CUDA backend keeps LinearGELU's result as f16 (packed) for the Linear that reads
// it and widens it back to f32 before anything else touches that memory, since the caller may
// read it as F32: in the encoder the next layer's projections, written over the MLP's scratch,
// widened every layer's dead 8 x 1,500 x 5,120 values (some 0.25 ms a layer on an H100). After
// Discard(t) t's values are undefined until written again. Unfused equivalent: nothing.
type Discarder interface {
	Discard(t *Tensor)
}

// HalfOutputs is an optional interface: LayerNorm and Attention for a result that only Linear
// reads, as the 16-bit input of its GEMM (the encoder's normalized inputs and attention outputs).
// The backend may keep such a result in 16 bits alone: the CUDA backend (unless its halfout=off
// switch is given) writes it packed (see Discarder), which spares the F32 write and, since a GEMM with
// F16 weights reads the 16-bit values anyway, changes nothing Linear computes; anything else that
// reads the result gets it widened back to F32, with 16-bit precision. Unfused equivalent:
// LayerNorm, Attention.
type HalfOutputs interface {
	LayerNormHalf(dst, x, gamma, beta *Tensor, eps float32)
	AttentionHalf(dst, q, k, v *Tensor, heads, kvLen int, scale float32, causal bool)
}

// HalfKV is an optional interface: a backend that can keep attention keys and values in F16,
// which halves their memory and the bytes an attention call reads (the decoder's
// cross-attention cache of a 30 s window is 490 MB in F32 for large-v3). With it, Linear accepts
// an F16 dst, and Attention and AttentionProbs accept F16 k and v (rounded once when written).
// Unfused equivalent: F32 tensors everywhere.
type HalfKV interface {
	// HalfKV reports whether F16 keys and values are supported (false on a backend configured for
	// exact f32 arithmetic).
	HalfKV() bool
}

// HalfCaches is an optional interface: a backend that keeps all of a decoder's attention caches
// in F16 for models whose weights are not F32 (16-bit or quantized) — the self-attention K/V
// caches as well as the cross-attention K/V — to halve the memory they take, which on the CPU is
// most of a transcription's besides the weights. With it, everything HalfKV allows is accepted,
// and SetRows takes an F16 dst (F32 src rounded once) and Copy F32 to F16. The arithmetic stays
// F32. Unfused equivalent: F32 caches.
type HalfCaches interface {
	// HalfCaches reports whether F16 caches are wanted and supported.
	HalfCaches() bool
}

// MemoryReporter is an optional interface: a backend with memory of its own (a GPU's) that says
// how much of it is free, so that batches can be sized to fit instead of failing to allocate.
type MemoryReporter interface {
	// DeviceMemory returns the free and total bytes of the device's memory, counting what the
	// backend keeps cached for reuse as free.
	DeviceMemory() (free, total int64, err error)
}

// Flusher is an optional interface: an asynchronous backend that queues ops and hands them to the
// device in groups (the CUDA backend's worker, Metal's command buffers) rather than one by one.
// Flush hands over what is queued without waiting for it, so that the device runs it while the
// caller does host work (the next chunk's log-mel): until then the last ops of a group wait for
// the next op, read or Sync, and the device for them.
type Flusher interface {
	Flush()
}

// LogMeler is an optional interface: a backend that computes Whisper's log-mel windows itself
// (a GPU's: the host's log-mel of a 30 s window is some 30 ms of a core, the device's well under
// one), so that the host uploads samples instead.
type LogMeler interface {
	// LogMel writes into dst ([len(lens), nMels, frames] F32) the log-mel windows of whisper/mel's
	// HeadInto: window i is samples[i*stride:][:lens[i]] followed by pad zero samples, its first
	// sizes[i] frames (the rest 0), normalized over the frames its samples reach; filters is the
	// [nMels, 201] F32 filterbank. The samples are read before it returns.
	LogMel(dst *Tensor, samples []float32, stride int, lens, sizes []int, pad int, filters *Tensor)
}

// ExplicitAlloc is an optional interface: a backend whose tensors are in the host's memory (the
// CPU's) and can be placed outside the Go heap, for the buffers a caller keeps and frees itself
// (encoder and decoder scratch, attention caches). The collector neither frees such a tensor nor
// counts it in its pacing, so the heap does not grow by GOGC percent of it before each collection,
// and Free gives its memory back to the system at once. A tensor never freed keeps its memory
// until the backend closes.
type ExplicitAlloc interface {
	// AllocExplicit is Alloc for a tensor that the caller frees with Free.
	AllocExplicit(dt DType, shape ...int) *Tensor
}
