// Package cpu is the reference compute backend: pure Go with SIMD assembly for the hot loops
// (AVX-512 or AVX2+FMA on amd64, chosen at run time) and a pure-Go fallback everywhere else.
// Activations are float32. F16 weights stay binary16 (half the bytes a decoding step reads) and
// are widened in registers by the matrix-vector kernels (F16C on amd64) or while GEMM packs them;
// BF16 weights are stored as F16 when that is exact. Matrices in the ggml quant formats q8_0, q5_0,
// q5_1 and q4_0 stay in their blocks (see quant.go): Linear multiplies them with activations
// quantized to int8 while decoding and dequantizes them while GEMM packs them, and Gather
// dequantizes the rows it reads; quantized tensors of other ranks (Conv1D's) become float32 on
// Upload.
package cpu

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/verbatimhq/verbatim/tensor"
)

// Options configures a Backend.
type Options struct {
	// Threads is the number of goroutines ops may use; 0 means runtime.NumCPU().
	Threads int
	// F32Activations runs a quantized weight's products with up to 8 rows (decoding) in float32,
	// the weight dequantized as the GEMM path does for more rows, instead of with the activations
	// rounded to 8-bit blocks as whisper.cpp does (gemvQ). Slower; closer to the GPU backends,
	// which never round activations to 8 bits: for tests that compare backends.
	F32Activations bool
}

// Backend is the CPU implementation of tensor.Backend. Like every backend it is not safe for
// concurrent use.
type Backend struct {
	pool *pool
	f32q bool // Options.F32Activations
	// scratch reused across ops: GEMM's and Attention's packed operands, grouped Conv1D's columns
	shared    [3][]float32
	sharedMem [3][]byte // their mappings (sharedBuf), nil where they are in the Go heap
	qx        []int8    // activation rows quantized for gemvQ
	qd        []float32 // their block scales and scaled sums
	ql        []int32   // and lane offsets (laneOffsets)
	// mapped are the weight copies and explicit tensors outside the Go heap not freed yet
	// (offHeapMem), unmapped by Close at the latest.
	mapped      map[*offHeap]struct{}
	mappedBytes atomic.Int64 // the sum of their sizes
	closed      bool
}

var (
	_ tensor.Backend       = (*Backend)(nil)
	_ tensor.ExplicitAlloc = (*Backend)(nil)
)

// New returns a CPU backend with its worker goroutines started.
func New(opts Options) (*Backend, error) {
	n := opts.Threads
	if n < 0 {
		return nil, fmt.Errorf("cpu: %d threads", n)
	}
	if n == 0 {
		n = runtime.NumCPU()
	}
	return &Backend{pool: newPool(n), f32q: opts.F32Activations}, nil
}

// buffer is the storage of one tensor: float32 for F32, int32 for I32, binary16 bits for F16,
// ggml blocks for the quant formats.
type buffer struct {
	be    *Backend
	f32   []float32
	i32   []int32
	f16   []uint16
	q     []byte
	freed bool
	// borrowed: the storage is the caller's bytes (UploadInPlace), not an allocation of ours.
	borrowed bool
	// off is the memory outside the Go heap that holds the values (offHeapMem), nil if none.
	off *offHeap
}

// offHeap is memory mapped for a weight outside the Go heap, unmapped by Free.
type offHeap struct{ mem []byte }

func (o *offHeap) release() {
	if o.mem != nil {
		unmapAnon(o.mem)
		o.mem = nil
	}
}

// offHeapMinBytes is the smallest weight copy or explicit tensor mapped outside the Go heap.
const offHeapMinBytes = 64 << 10

// offHeapMem returns zeroed memory of size bytes for a copy of a weight that Upload makes, or a
// tensor of AllocExplicit, and the buffer that owns it. Large ones are mapped outside the Go
// heap: a model's weights live as long as the model and the caches and scratch as long as their
// owner, the collector has nothing to do with them, but in the heap its pacing lets the heap grow
// by GOGC percent of them before each collection (the CLI's 10% of base f16's 88 MB of copied
// matrices: 9 MB of garbage let stay). The mapping is unmapped by Free, which a model's Close
// calls for every weight and buffer it holds, or else by the backend's Close: a tensor dropped
// without Free keeps its mapping until then (no cleanup unmaps it when unreachable: an op may
// still read the values after its last use of the tensor). Elsewhere, and for small ones, the
// memory is an ordinary allocation.
func (be *Backend) offHeapMem(size int) ([]byte, *buffer) {
	buf := &buffer{be: be}
	if size >= offHeapMinBytes {
		if mem := mapAnon(size); mem != nil {
			buf.off = &offHeap{mem: mem}
			if be.mapped == nil {
				be.mapped = map[*offHeap]struct{}{}
			}
			be.mapped[buf.off] = struct{}{}
			be.mappedBytes.Add(int64(size))
			return mem, buf
		}
	}
	return make([]byte, size), buf
}

// offHeapTensor is offHeapMem for an F32, I32 or F16 tensor of shape (zeroed).
func (be *Backend) offHeapTensor(dt tensor.DType, shape []int) *tensor.Tensor {
	n := tensor.Numel(shape)
	mem, buf := be.offHeapMem(n * dt.RowBytes(1))
	p := unsafe.Pointer(unsafe.SliceData(mem))
	switch dt {
	case tensor.F32:
		buf.f32 = unsafe.Slice((*float32)(p), n)
	case tensor.I32:
		buf.i32 = unsafe.Slice((*int32)(p), n)
	case tensor.F16:
		buf.f16 = unsafe.Slice((*uint16)(p), n)
	default:
		panic(tensor.Errorf("cpu: off-heap %s", dt))
	}
	return &tensor.Tensor{DType: dt, Shape: append([]int(nil), shape...), Buf: buf}
}

func (b *buffer) Backend() tensor.Backend { return b.be }

// Name returns "cpu".
func (be *Backend) Name() string { return "cpu" }

// Device names the processor, the thread count and the SIMD level.
func (be *Backend) Device() string {
	return fmt.Sprintf("cpu: %s (%d threads, %s)", cpuModel(), be.pool.n, simdLevel())
}

// Threads returns the number of goroutines ops use.
func (be *Backend) Threads() int { return be.pool.n }

// Capabilities: every weight dtype is accepted. F16 stays F16 (Linear, Conv1D and Gather read it
// directly), BF16 becomes F16 where exact and F32 otherwise, and quant formats stay quantized as
// matrices (Linear and Gather read them) and become F32 in other ranks (Conv1D's weights).
func (be *Backend) Capabilities() tensor.Capabilities {
	return tensor.Capabilities{
		WeightDTypes: []tensor.DType{tensor.F32, tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q5_0, tensor.Q5_1, tensor.Q4_0},
		Batched:      true,
	}
}

func (be *Backend) checkOpen() {
	if be.closed {
		panic(tensor.Errorf("cpu: backend is closed"))
	}
}

func checkShape(shape []int) {
	if len(shape) == 0 {
		panic(tensor.Errorf("empty shape"))
	}
	for _, d := range shape {
		if d < 0 {
			panic(tensor.Errorf("negative dimension in %v", shape))
		}
	}
}

// Alloc returns a zeroed F32, F16 or I32 tensor; other dtypes panic with ErrNotImplemented.
func (be *Backend) Alloc(dt tensor.DType, shape ...int) *tensor.Tensor {
	be.checkOpen()
	checkShape(shape)
	n := tensor.Numel(shape)
	buf := &buffer{be: be}
	switch dt {
	case tensor.F32:
		buf.f32 = make([]float32, n)
	case tensor.I32:
		buf.i32 = make([]int32, n)
	case tensor.F16:
		buf.f16 = make([]uint16, n)
	default:
		panic(&tensor.Error{Msg: "cpu: alloc " + dt.String(), Err: tensor.ErrNotImplemented})
	}
	return &tensor.Tensor{DType: dt, Shape: append([]int(nil), shape...), Buf: buf}
}

// AllocExplicit is Alloc with the values outside the Go heap where they are large
// (tensor.ExplicitAlloc): mapped memory that Free unmaps, or Close. Not in a -race build
// (raceDetector), whose detector sees only the heap.
func (be *Backend) AllocExplicit(dt tensor.DType, shape ...int) *tensor.Tensor {
	if raceDetector {
		return be.Alloc(dt, shape...)
	}
	be.checkOpen()
	checkShape(shape)
	switch dt {
	case tensor.F32, tensor.I32, tensor.F16:
		return be.offHeapTensor(dt, shape)
	}
	return be.Alloc(dt, shape...)
}

// MappedBytes is the memory the backend holds outside the Go heap for tensors: weight copies
// and AllocExplicit's tensors not freed yet (not the ops' packed operands, sharedBuf). Unlike the
// backend's other methods it may be called from another goroutine while ops run (a test
// sampling the peak of a transcription's memory).
func (be *Backend) MappedBytes() int64 { return be.mappedBytes.Load() }

// Upload decodes raw ggml-layout bytes. F16 is kept as F16; BF16 becomes F16 when every value
// converts exactly (Whisper's weights do) and F32 otherwise; quant dtypes are kept as a copy of
// their blocks when the tensor is a matrix (rank 2: Linear weights, embeddings) and become F32
// otherwise.
func (be *Backend) Upload(dt tensor.DType, raw []byte, shape ...int) *tensor.Tensor {
	be.checkOpen()
	checkShape(shape)
	last := shape[len(shape)-1]
	if last%dt.BlockSize() != 0 {
		panic(tensor.Errorf("cpu: upload %s%v: last dimension not a multiple of the block size %d", dt, shape, dt.BlockSize()))
	}
	rows := tensor.Numel(shape[:len(shape)-1])
	rowBytes := dt.RowBytes(last)
	if len(raw) != rows*rowBytes {
		panic(tensor.Errorf("cpu: upload %s%v: %d bytes, want %d", dt, shape, len(raw), rows*rowBytes))
	}
	if dt == tensor.I32 {
		t := be.Alloc(tensor.I32, shape...)
		d := t.Buf.(*buffer).i32
		for i := range d {
			d[i] = int32(uint32(raw[4*i]) | uint32(raw[4*i+1])<<8 | uint32(raw[4*i+2])<<16 | uint32(raw[4*i+3])<<24)
		}
		return t
	}
	if dt == tensor.F16 || dt == tensor.BF16 {
		if t := be.upload16(dt, raw, shape); t != nil {
			return t
		}
	}
	if isQuant(dt) && len(shape) == 2 {
		mem, buf := be.offHeapMem(len(raw))
		copy(mem, raw)
		buf.q = mem[:len(raw):len(raw)]
		return &tensor.Tensor{DType: dt, Shape: append([]int(nil), shape...), Buf: buf}
	}
	t := be.offHeapTensor(tensor.F32, shape)
	out := t.Buf.(*buffer).f32
	// Dequantize in parallel over chunks of rows for big tensors.
	chunk := max(1, (1<<16)/max(1, last))
	nchunks := (rows + chunk - 1) / chunk
	errs := make([]error, nchunks)
	be.pool.run(nchunks, func(_, c int) {
		r0, r1 := c*chunk, min(rows, (c+1)*chunk)
		errs[c] = tensor.Dequantize(dt, raw[r0*rowBytes:r1*rowBytes], out[r0*last:r1*last])
	})
	for _, err := range errs {
		if err != nil {
			panic(&tensor.Error{Msg: fmt.Sprintf("cpu: upload %s%v", dt, shape), Err: err})
		}
	}
	return t
}

var _ tensor.InPlaceUploader = (*Backend)(nil)

// littleEndian: the host's byte order is the files' (ggml and safetensors are little-endian), so
// their F16 and F32 bytes can be read as uint16 and float32 where they lie.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// UploadInPlace is Upload without the copy where the bytes can be used as they lie
// (tensor.InPlaceUploader): a quantized matrix's blocks, and F16 or F32 values aligned for their
// type on a little-endian host. Everything else (BF16, a quantized tensor of another rank,
// misaligned values) is converted or copied as Upload does. raw must stay unchanged, and
// readable, until the tensor is freed.
//
// Misaligned values are copied rather than read where they lie: a ggml file stores each tensor
// right after its name, so about half of an f16 model's matrices start at an odd byte, and the
// vector loads of such rows straddle cache lines (beam search's matrix-vector products of 5 rows
// measured 5-8% slower on them here). See ReleaseMapped for the file pages such a copy leaves.
func (be *Backend) UploadInPlace(dt tensor.DType, raw []byte, shape ...int) *tensor.Tensor {
	be.checkOpen()
	checkShape(shape)
	n := tensor.Numel(shape)
	last := shape[len(shape)-1]
	if n == 0 || last%dt.BlockSize() != 0 || len(raw) != tensor.Numel(shape[:len(shape)-1])*dt.RowBytes(last) {
		return be.Upload(dt, raw, shape...) // its checks and errors
	}
	p := unsafe.Pointer(unsafe.SliceData(raw))
	buf := &buffer{be: be, borrowed: true}
	switch {
	case isQuant(dt) && len(shape) == 2:
		buf.q = raw[:len(raw):len(raw)]
	case dt == tensor.F16 && littleEndian && uintptr(p)%2 == 0:
		buf.f16 = unsafe.Slice((*uint16)(p), n)
	case dt == tensor.F32 && littleEndian && uintptr(p)%4 == 0:
		buf.f32 = unsafe.Slice((*float32)(p), n)
	default:
		return be.Upload(dt, raw, shape...)
	}
	return &tensor.Tensor{DType: dt, Shape: append([]int(nil), shape...), Buf: buf}
}

// InPlace reports whether t's storage is bytes given to UploadInPlace (tensor.InPlaceUploader).
func (be *Backend) InPlace(t *tensor.Tensor) bool {
	return be.buf(t).borrowed
}

// upload16 stores F16 bits as they are, and BF16 converted to F16 when that is exact for every
// value; it returns nil for BF16 that F16 cannot hold (out of range or too small).
func (be *Backend) upload16(dt tensor.DType, raw []byte, shape []int) *tensor.Tensor {
	t := be.offHeapTensor(tensor.F16, shape)
	out := t.Buf.(*buffer).f16
	const chunk = 1 << 16
	nchunks := (len(out) + chunk - 1) / chunk
	inexact := make([]bool, nchunks)
	be.pool.run(nchunks, func(_, c int) {
		for i := c * chunk; i < min(len(out), (c+1)*chunk); i++ {
			h := uint16(raw[2*i]) | uint16(raw[2*i+1])<<8
			if dt == tensor.BF16 {
				f := tensor.BF16ToF32(h)
				h = tensor.F32ToF16(f)
				if f16(h) != f && f == f {
					inexact[c] = true
					return
				}
			}
			out[i] = h
		}
	})
	for _, bad := range inexact {
		if bad {
			be.Free(t)
			return nil
		}
	}
	return t
}

// FromF32 copies host values into a new F32 tensor.
func (be *Backend) FromF32(data []float32, shape ...int) *tensor.Tensor {
	t := be.Alloc(tensor.F32, shape...)
	if len(data) != t.Len() {
		panic(tensor.Errorf("cpu: FromF32: %d values for shape %v", len(data), shape))
	}
	copy(t.Buf.(*buffer).f32, data)
	return t
}

// ToF32 returns a copy of the tensor's values as float32.
func (be *Backend) ToF32(t *tensor.Tensor) []float32 {
	out := make([]float32, t.Len())
	be.ReadF32(t, out)
	return out
}

// ReadF32 writes the tensor's values as float32 into out (tensor.F32Reader).
func (be *Backend) ReadF32(t *tensor.Tensor, out []float32) {
	if len(out) != t.Len() {
		panic(tensor.Errorf("cpu: ReadF32: %d values for %v", len(out), t))
	}
	switch t.DType {
	case tensor.I32:
		for i, v := range be.i32(t) {
			out[i] = float32(v)
		}
	case tensor.F16:
		cvtF16(out, be.f16(t))
	case tensor.Q8_0, tensor.Q5_0, tensor.Q5_1, tensor.Q4_0:
		dequant(t.DType, be.qbytes(t), out)
	default:
		copy(out, be.f32(t))
	}
}

// Free releases a tensor's storage. Freeing a view or freeing twice panics.
func (be *Backend) Free(t *tensor.Tensor) {
	b := be.buf(t)
	n := max(len(b.f32), len(b.i32), len(b.f16))
	if b.q != nil {
		n = len(b.q) / t.DType.RowBytes(qBlock) * qBlock
	}
	if t.Offset != 0 || t.Len() != n {
		panic(tensor.Errorf("cpu: free of a view %v at offset %d", t.Shape, t.Offset))
	}
	b.freed = true
	b.f32, b.i32, b.f16, b.q = nil, nil, nil, nil
	if b.off != nil {
		be.mappedBytes.Add(-int64(len(b.off.mem)))
		b.off.release()
		delete(be.mapped, b.off)
	}
}

// Sync returns at once: ops run synchronously.
func (be *Backend) Sync() error { return nil }

// Close stops the worker goroutines and unmaps the weight copies not freed. It is idempotent.
func (be *Backend) Close() error {
	if !be.closed {
		be.closed = true
		be.pool.close()
		for i, mem := range be.sharedMem {
			unmapAnon(mem)
			be.sharedMem[i], be.shared[i] = nil, nil
		}
		for o := range be.mapped {
			o.release()
		}
		be.mapped = nil
		be.mappedBytes.Store(0)
	}
	return nil
}

func (be *Backend) buf(t *tensor.Tensor) *buffer {
	be.checkOpen()
	if t == nil || t.Buf == nil {
		panic(tensor.Errorf("cpu: nil tensor"))
	}
	b, ok := t.Buf.(*buffer)
	if !ok || b.be != be {
		panic(tensor.Errorf("cpu: tensor %v belongs to another backend", t))
	}
	if b.freed {
		panic(tensor.Errorf("cpu: tensor %v used after Free", t))
	}
	return b
}

// f32 returns the elements of an F32 tensor (a view of its buffer).
func (be *Backend) f32(t *tensor.Tensor) []float32 {
	b := be.buf(t)
	if t.DType != tensor.F32 || b.f32 == nil && t.Len() > 0 {
		panic(tensor.Errorf("cpu: %v: want an f32 tensor", t))
	}
	return view(t, b.f32)
}

func (be *Backend) i32(t *tensor.Tensor) []int32 {
	b := be.buf(t)
	if t.DType != tensor.I32 {
		panic(tensor.Errorf("cpu: %v: want an i32 tensor", t))
	}
	return view(t, b.i32)
}

// f16 returns the binary16 elements of an F16 tensor (a view of its buffer). An F16 view of an
// F32 buffer (allocated, not borrowed: those may be read-only) reads its storage as twice as
// many binary16 values, offset in those: a caller's one allocation can hold both kinds in turn
// (whisper's arena of encoder scratch and f16 caches).
func (be *Backend) f16(t *tensor.Tensor) []uint16 {
	b := be.buf(t)
	if t.DType != tensor.F16 {
		panic(tensor.Errorf("cpu: %v: want an f16 tensor", t))
	}
	if b.f16 == nil && len(b.f32) > 0 && !b.borrowed {
		return view(t, unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(b.f32))), 2*len(b.f32)))
	}
	return view(t, b.f16)
}

// view is t's window [Offset, Offset+Len) of its buffer's storage.
func view[T any](t *tensor.Tensor, data []T) []T {
	n := t.Len()
	if t.Offset < 0 || t.Offset+n > len(data) {
		panic(tensor.Errorf("cpu: view %v at offset %d outside its buffer of %d", t.Shape, t.Offset, len(data)))
	}
	return data[t.Offset : t.Offset+n : t.Offset+n]
}

// weight returns a weight tensor of F32, F16 or a quant format as a matrix of rows of its last
// dimension (row stride rs, column stride cs as given).
func (be *Backend) weight(t *tensor.Tensor, rs, cs int) mat {
	if isQuant(t.DType) {
		k := t.Dim(-1)
		return mat{q: be.qbytes(t), qt: t.DType, qk: k, qrow: t.DType.RowBytes(k), rs: rs, cs: cs}
	}
	if t.DType == tensor.F16 {
		return mat{h: be.f16(t), rs: rs, cs: cs}
	}
	return mat{data: be.f32(t), rs: rs, cs: cs}
}
