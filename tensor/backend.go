package tensor

// Capabilities says what a backend can do, so callers can choose before they call.
type Capabilities struct {
	// WeightDTypes are the dtypes Upload accepts for weights (converted on upload where the backend
	// computes in another type).
	WeightDTypes []DType
	// Batched reports that ops are efficient on a leading batch dimension (many windows at once).
	Batched bool
	// Async reports that ops are queued and run later; ToF32 and Sync wait for them.
	Async bool
}

// Supports reports whether d is among c.WeightDTypes.
func (c Capabilities) Supports(d DType) bool {
	for _, w := range c.WeightDTypes {
		if w == d {
			return true
		}
	}
	return false
}

// Backend owns device memory and runs ops. A backend is not safe for concurrent use: calls for
// one backend never overlap. They may come from several goroutines in turn (the transcription
// driver's lanes take the backend under a lock); a backend that needs one OS thread keeps its
// own (CUDA's worker) or locks the caller's for the length of a call (Metal's autorelease pools).
type Backend interface {
	// Name is the short backend name: "cpu", "cuda", "metal".
	Name() string
	// Device describes the hardware in words, e.g. "cpu: AMD EPYC 9B14 (2 threads, avx512)".
	Device() string
	Capabilities() Capabilities

	// Alloc returns a zeroed tensor.
	Alloc(dt DType, shape ...int) *Tensor
	// Upload copies raw little-endian bytes in ggml layout (f32, f16, bf16, or ggml quant blocks
	// along the last dimension) into a new tensor. The backend may store it in another dtype
	// (e.g. dequantize to f32); the returned tensor's DType says which.
	Upload(dt DType, raw []byte, shape ...int) *Tensor
	// FromF32 copies host values into a new F32 tensor.
	FromF32(data []float32, shape ...int) *Tensor
	// ToF32 waits for pending work and returns the tensor's values converted to float32.
	ToF32(t *Tensor) []float32
	// Free releases a tensor made by Alloc, Upload or FromF32 (not a view). Freeing twice panics.
	Free(t *Tensor)
	// Sync waits for all queued work.
	Sync() error
	// Close releases everything the backend owns. It is idempotent.
	Close() error

	Ops
}

// Ops is the op set. Every op writes dst, which must not alias an input unless the op says so.
// Unless stated otherwise, all tensors are F32 activations.
type Ops interface {
	// Linear: dst[r, n] = sum_k x[r, k] * w[n, k] + bias[n], over all rows r of x (any rank, last
	// dim K). w is a weight [N, K] of any supported weight dtype; bias may be nil.
	Linear(dst, x, w, bias *Tensor)

	// MatMul: dst[b] = alpha * op(a[b]) x op(b[b]) over a leading batch dimension, op(m) = m or
	// m^T by transA/transB. a, b are rank 2 ([M, K]) or 3 ([B, M, K]); a rank-2 b is shared by
	// every batch entry.
	MatMul(dst, a, b *Tensor, transA, transB bool, alpha float32)

	// Conv1D: x [B, Cin, T] (or [Cin, T]), w [Cout, Cin, K] weight, bias [Cout] or nil,
	// dst [B, Cout, Tout] with Tout = (T + 2*pad - K)/stride + 1. Zero padding.
	Conv1D(dst, x, w, bias *Tensor, stride, pad int)

	// LayerNorm over the last dimension: (x - mean) / sqrt(var + eps) * gamma + beta.
	// dst may alias x.
	LayerNorm(dst, x, gamma, beta *Tensor, eps float32)

	// GELU, exact (erf) form. dst may alias x.
	GELU(dst, x *Tensor)
	// Sigmoid, Tanh, ReLU: elementwise. dst may alias x.
	Sigmoid(dst, x *Tensor)
	Tanh(dst, x *Tensor)
	ReLU(dst, x *Tensor)
	// Sqrt: elementwise square root (NaN for negative inputs, -0 for -0). dst may alias x.
	// Used by the VAD for the STFT magnitude.
	Sqrt(dst, x *Tensor)

	// Add, Mul: dst = a (op) b, where b's shape equals a trailing part of a's shape and is
	// broadcast over the rest. dst may alias a.
	Add(dst, a, b *Tensor)
	Mul(dst, a, b *Tensor)
	// Scale: dst = x * s. dst may alias x.
	Scale(dst, x *Tensor, s float32)

	// Softmax over the last dimension. dst may alias x.
	Softmax(dst, x *Tensor)

	// Attention, multi-head: q [B, Tq, H*D], k and v [B, Tk, H*D] (heads interleaved in the last
	// dimension as Whisper stores them), dst [B, Tq, H*D]. Only the first kvLen rows of k and v
	// are used (kvLen <= Tk; the rest of a KV cache is ignored). scores = scale * q k^T; with
	// causal, query i (0-based) sees keys j <= i + kvLen - Tq. Softmax in f32.
	Attention(dst, q, k, v *Tensor, heads, kvLen int, scale float32, causal bool)

	// Gather: dst[i, :] = table[ids[i], :] where table is [N, C] (any weight dtype or F32) and
	// dst is [len(ids), C]. Used for embeddings and for reordering a batch (beam search).
	Gather(dst, table *Tensor, ids []int32)

	// Copy: dst = src elementwise (same number of elements), converting dtype if they differ.
	Copy(dst, src *Tensor)

	// SetRows writes src [B, n, C] into dst [B, T, C] at rows [at, at+n) of the middle dimension
	// (KV-cache update). Rank-2 tensors are treated as B = 1.
	SetRows(dst *Tensor, at int, src *Tensor)

	// Transpose swaps the last two dimensions: src [..., M, N] -> dst [..., N, M].
	Transpose(dst, src *Tensor)
}

// Unimplemented can be embedded in a backend under construction: every op panics with
// ErrNotImplemented. A finished backend overrides all of them.
type Unimplemented struct{}

func notImpl(op string) { panic(&Error{Msg: op, Err: ErrNotImplemented}) }

func (Unimplemented) Linear(dst, x, w, bias *Tensor)                   { notImpl("Linear") }
func (Unimplemented) MatMul(dst, a, b *Tensor, ta, tb bool, s float32) { notImpl("MatMul") }
func (Unimplemented) Conv1D(dst, x, w, b *Tensor, stride, pad int)     { notImpl("Conv1D") }
func (Unimplemented) LayerNorm(dst, x, g, b *Tensor, eps float32)      { notImpl("LayerNorm") }
func (Unimplemented) GELU(dst, x *Tensor)                              { notImpl("GELU") }
func (Unimplemented) Sigmoid(dst, x *Tensor)                           { notImpl("Sigmoid") }
func (Unimplemented) Tanh(dst, x *Tensor)                              { notImpl("Tanh") }
func (Unimplemented) ReLU(dst, x *Tensor)                              { notImpl("ReLU") }
func (Unimplemented) Sqrt(dst, x *Tensor)                              { notImpl("Sqrt") }
func (Unimplemented) Add(dst, a, b *Tensor)                            { notImpl("Add") }
func (Unimplemented) Mul(dst, a, b *Tensor)                            { notImpl("Mul") }
func (Unimplemented) Scale(dst, x *Tensor, s float32)                  { notImpl("Scale") }
func (Unimplemented) Softmax(dst, x *Tensor)                           { notImpl("Softmax") }
func (Unimplemented) Attention(dst, q, k, v *Tensor, h, n int, s float32, c bool) {
	notImpl("Attention")
}
func (Unimplemented) Gather(dst, table *Tensor, ids []int32)   { notImpl("Gather") }
func (Unimplemented) Copy(dst, src *Tensor)                    { notImpl("Copy") }
func (Unimplemented) SetRows(dst *Tensor, at int, src *Tensor) { notImpl("SetRows") }
func (Unimplemented) Transpose(dst, src *Tensor)               { notImpl("Transpose") }

var _ Ops = Unimplemented{}

// AttentionWeights is an optional interface: a backend that can return the attention
// probabilities (for word timing from cross-attention heads). Unfused equivalent: per head,
// MatMul(q_h, k_h^T) * scale, causal mask, Softmax.
type AttentionWeights interface {
	// AttentionProbs writes probs [B, H, Tq, kvLen] for the same inputs as Ops.Attention.
	AttentionProbs(probs, q, k *Tensor, heads, kvLen int, scale float32, causal bool)
}

// WindowAttention is an optional interface: cross-attention of a decoder batch whose sequences
// read windows anywhere in the encoder output. Group i of query rows attends to the keys and
// values of the window windows[i] names, so one call covers a batch whose windows are not
// consecutive (beam search's windows, some of them ended, or a batch beside language
// detection's windows), where Attention takes a call per stretch of consecutive windows.
type WindowAttention interface {
	// AttendsWindows reports whether AttentionWindows takes groups of g query rows against keys
	// and values such as k.
	AttendsWindows(g int, k *Tensor) bool
	// AttentionWindows writes dst [B, g, H*D] = Attention(q [B, g, H*D], k[w], v[w]), non-causal,
	// where w = windows[i] for group i: windows is an I32 tensor [B] on the backend, k and v are
	// [W, Tk, H*D].
	AttentionWindows(dst, q, k, v, windows *Tensor, heads, kvLen int, scale float32)
}

// RowsLinear is an optional interface: a decoder step's new keys or values projected straight
// into their rows of a cache, as Linear into a scratch followed by SetRows would write them, in
// one op instead of two.
type RowsLinear interface {
	// LinearRows writes x[b, 0, :] . w^T + bias into dst[b, at, :] for x [B, 1, K] and dst
	// [B, T, N], rounded once to dst's dtype, and reports true; it reports false, having done
	// nothing, where the backend has no such path for these tensors (the caller then runs
	// Linear and SetRows).
	LinearRows(dst *Tensor, at int, x, w, bias *Tensor) bool
}

// QKVRows is an optional interface: a decoder step's self-attention projections as one
// product, its keys and values written into their rows of the caches (as RowsLinear writes
// them) and its queries into a tensor, instead of three products.
type QKVRows interface {
	// FusesQKV reports whether LinearQKV may run, so that a model loads a decoder's
	// self-attention weights as one tensor [3N, K] (q's rows, then k's, then v's; the three
	// weights are views of it) and their biases once more as one vector [3N] (k's zeros
	// between), which LinearQKV reads.
	FusesQKV() bool
	// LinearQKV writes, for x [B, 1, K], w [3N, K] and bias [3N] (or nil): q [B, 1, N] (F32) =
	// x . w[0:N]^T + bias[0:N], and x . w[N:2N]^T + bias[N:2N] and x . w[2N:3N]^T + bias[2N:3N]
	// into kc[b, at, :] and vc[b, at, :] (kc and vc [B, T, N]), each value rounded once to its
	// destination's dtype, and reports true; it reports false, having done nothing, where the
	// backend has no such path for these tensors (the caller then runs Linear and RowsLinear).
	LinearQKV(q, kc, vc *Tensor, at int, x, w, bias *Tensor) bool
}

// Grapher is implemented by backends that can record a sequence of ops and replay it as one
// unit (CUDA graphs): the ops between BeginGraph and EndGraph behave exactly as without them;
// a sequence that repeats with the same shapes and buffers (a decoder step at the same position
// of another batch) costs one launch instead of one per op.
type Grapher interface {
	BeginGraph()
	EndGraph()
}

// GraphCutter is implemented by Graphers that can hand the device a recording's ops so far
// while the caller records the rest: CutGraph marks a point where the open recording may be cut
// (the backend decides whether to cut there), each piece then a unit of its own. The ops behave
// exactly as without the cut; outside a recording it does nothing.
type GraphCutter interface {
	CutGraph()
}

// Tuned is implemented by backends with switches that change which kernels run or how they round
// (cuda's), so that a run can record them with its outputs. A backend without such switches does
// not implement it: the CPU backend's thread count changes how work is split, not the arithmetic
// of any result.
type Tuned interface {
	// Settings returns the switches that are not at their default, as key=value pairs sorted by
	// key and separated by commas (the form the backend's own option parser reads); "" when all
	// are defaults. It is fixed when the backend opens, so every call returns the same string,
	// and it is safe to call from any goroutine.
	Settings() string
}

// F32Reader is implemented by backends that read a tensor into the caller's buffer, so a loop
// that reads a large result every step (the decoder's logits) reuses one buffer instead of
// allocating, zeroing and collecting one per step.
type F32Reader interface {
	// ReadF32 waits for pending work and writes t's values, converted to float32, into dst,
	// which must hold exactly t.Len() values.
	ReadF32(t *Tensor, dst []float32)
}

// InPlaceUploader is implemented by backends whose weights can live in host memory as the model
// file holds them (the CPU's): UploadInPlace is Upload, except that the tensor may refer to raw
// instead of copying it. The caller keeps raw alive and unchanged until the tensor is freed (a
// read-only file mapping, or bytes embedded in the binary, which must not be written). A backend
// copies what it cannot use as it lies (a layout it converts, misaligned bytes), so the result is
// the same tensor as Upload's either way. InPlace reports whether t refers to bytes given to
// UploadInPlace.
type InPlaceUploader interface {
	UploadInPlace(dt DType, raw []byte, shape ...int) *Tensor
	InPlace(t *Tensor) bool
}
