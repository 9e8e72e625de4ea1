package metal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"unsafe"

	"github.com/verbatimhq/verbatim/tensor"
)

// Backend is the Metal backend (tensor.Backend). Ops are encoded into one command buffer,
// committed every commitEvery dispatches (so an encoder pass or a decoder step is a few command
// buffers, not one per op) and when the host reads (ToF32, ReadF32, Sync). Tensors live in
// shared-storage buffers: the host writes uploads straight into them and reads results from them
// after the GPU is done. Not safe for concurrent use (tensor.Backend's rule).
type Backend struct {
	d       device
	lib     library
	decls   map[string]*kernelDecl
	pipes   map[string]pipeline
	cmd     commands   // open command buffer, nil when none
	pending []commands // committed, not yet waited for
	n       int        // dispatches in cmd
	live    int        // tensors not yet freed
	closed  bool
}

// commitEvery is how many dispatches one command buffer holds before it is committed: about one
// encoder layer or decoder step of large-v3.
const commitEvery = 64

// Open opens the system's Metal device (macOS only) and compiles the kernels.
func Open() (*Backend, error) {
	d, err := systemDevice()
	if err != nil {
		return nil, err
	}
	return newBackend(d)
}

// newBackend compiles the kernels on d and makes every pipeline up front, so a kernel that does
// not compile fails here and not in the middle of a transcription.
func newBackend(d device) (*Backend, error) {
	decls, err := parseKernels(kernelSource)
	if err != nil {
		d.close()
		return nil, fmt.Errorf("metal: kernels.metal: %w", err)
	}
	lib, err := d.newLibrary(kernelSource)
	if err != nil {
		d.close()
		return nil, fmt.Errorf("metal: compiling the kernels: %w", err)
	}
	be := &Backend{d: d, lib: lib, decls: decls, pipes: map[string]pipeline{}}
	for name := range decls {
		p, err := lib.pipeline(name)
		if err != nil {
			be.Close()
			return nil, fmt.Errorf("metal: %s: %w", name, err)
		}
		be.pipes[name] = p
	}
	return be, nil
}

func (be *Backend) Name() string   { return "metal" }
func (be *Backend) Device() string { return "metal: " + be.d.name() }

func (be *Backend) Capabilities() tensor.Capabilities {
	return tensor.Capabilities{
		WeightDTypes: []tensor.DType{tensor.F32, tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q5_0, tensor.Q5_1, tensor.Q4_0},
		Batched:      true,
		Async:        true,
	}
}

// HalfKV: keys and values may be F16 (k_linear writes them, k_attention reads them).
func (be *Backend) HalfKV() bool { return true }

var (
	_ tensor.Backend          = (*Backend)(nil)
	_ tensor.AttentionWeights = (*Backend)(nil)
	_ tensor.FusedLinear      = (*Backend)(nil)
	_ tensor.HalfKV           = (*Backend)(nil)
	_ tensor.F32Reader        = (*Backend)(nil)
	_ tensor.InPlaceUploader  = (*Backend)(nil)
)

func fail(format string, args ...any) {
	e := tensor.Errorf(format, args...)
	e.Msg = "metal: " + e.Msg
	panic(e)
}

func (be *Backend) check(err error, op string) {
	if err != nil {
		panic(&tensor.Error{Msg: "metal: " + op, Err: err})
	}
}

func (be *Backend) checkOpen() {
	if be.closed {
		panic(&tensor.Error{Msg: "metal: backend closed", Err: errClosed})
	}
}

var errClosed = errors.New("closed")

// ---- memory ------------------------------------------------------------------------------------

// mbuf is a tensor's storage: a Metal buffer and the byte offset of element 0 in it.
type mbuf struct {
	be    *Backend
	b     buffer
	base  int
	freed bool
	// borrowed: b wraps the caller's bytes (UploadInPlace), without a copy.
	borrowed bool
}

func (m *mbuf) Backend() tensor.Backend { return m.be }

func (be *Backend) buf(t *tensor.Tensor) *mbuf {
	m, ok := t.Buf.(*mbuf)
	if !ok || m.be != be {
		fail("tensor %v is not this backend's", t)
	}
	if m.freed {
		fail("tensor %v used after Free", t)
	}
	return m
}

// byteOff is the byte offset of element off of a tensor of dtype dt from its buffer's base.
func byteOff(dt tensor.DType, off int) int {
	if dt.Quantized() {
		return dt.RowBytes(off)
	}
	return off * dt.BlockBytes()
}

func tensorBytes(t *tensor.Tensor) int { return t.DType.RowBytes(t.Len()) }

func (be *Backend) newTensor(dt tensor.DType, shape []int) *tensor.Tensor {
	be.checkOpen()
	for _, d := range shape {
		if d < 0 {
			fail("negative dimension in %v", shape)
		}
	}
	n := dt.RowBytes(tensor.Numel(shape))
	b, err := be.d.newBuffer(max(n, 16))
	be.check(err, fmt.Sprintf("allocating %d bytes", n))
	be.live++
	return &tensor.Tensor{DType: dt, Shape: append([]int(nil), shape...), Buf: &mbuf{be: be, b: b}}
}

func (be *Backend) Alloc(dt tensor.DType, shape ...int) *tensor.Tensor {
	return be.newTensor(dt, shape)
}

func (be *Backend) Upload(dt tensor.DType, raw []byte, shape ...int) *tensor.Tensor {
	if !be.Capabilities().Supports(dt) && dt != tensor.I32 {
		fail("Upload: dtype %s not supported", dt)
	}
	t := be.newTensor(dt, shape)
	if len(raw) != tensorBytes(t) {
		be.Free(t)
		fail("Upload: %d bytes for %s%v, want %d", len(raw), dt, shape, dt.RowBytes(tensor.Numel(shape)))
	}
	if c := be.buf(t).b.contents(); c != nil {
		copy(c, raw)
	}
	return t
}

// UploadInPlace is Upload without the copy (tensor.InPlaceUploader): the pages holding raw (a
// read-only file mapping, or the model embedded in the binary) are wrapped as a buffer
// (newBufferWithBytesNoCopy), so a model's weights take no second place in unified memory. Bytes
// not aligned for their element type are copied, as is anything the device will not wrap.
func (be *Backend) UploadInPlace(dt tensor.DType, raw []byte, shape ...int) *tensor.Tensor {
	be.checkOpen()
	if !be.Capabilities().Supports(dt) || len(raw) == 0 || len(raw) != dt.RowBytes(tensor.Numel(shape)) {
		return be.Upload(dt, raw, shape...)
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(raw)))
	if align := uintptr(max(dt.BlockBytes(), 1)); !dt.Quantized() && p%min(align, 4) != 0 {
		return be.Upload(dt, raw, shape...)
	}
	page := uintptr(os.Getpagesize())
	start := p &^ (page - 1)
	end := (p + uintptr(len(raw)) + page - 1) &^ (page - 1)
	b, err := be.d.wrapBuffer(unsafe.Add(unsafe.Pointer(unsafe.SliceData(raw)), -int(p-start)), int(end-start))
	if err != nil {
		return be.Upload(dt, raw, shape...)
	}
	be.live++
	return &tensor.Tensor{DType: dt, Shape: append([]int(nil), shape...), Buf: &mbuf{be: be, b: b, base: int(p - start), borrowed: true}}
}

// InPlace reports whether t wraps bytes given to UploadInPlace.
func (be *Backend) InPlace(t *tensor.Tensor) bool {
	m, ok := t.Buf.(*mbuf)
	return ok && m.be == be && m.borrowed
}

func (be *Backend) FromF32(data []float32, shape ...int) *tensor.Tensor {
	t := be.newTensor(tensor.F32, shape)
	if len(data) != t.Len() {
		be.Free(t)
		fail("FromF32: %d values for %v", len(data), shape)
	}
	if c := be.buf(t).b.contents(); c != nil && len(data) > 0 {
		copy(c, unsafe.Slice((*byte)(unsafe.Pointer(&data[0])), 4*len(data)))
	}
	return t
}

func (be *Backend) ToF32(t *tensor.Tensor) []float32 {
	out := make([]float32, t.Len())
	be.ReadF32(t, out)
	return out
}

// ReadF32 waits for the queued work and converts t's values into dst.
func (be *Backend) ReadF32(t *tensor.Tensor, dst []float32) {
	m := be.buf(t)
	if len(dst) != t.Len() {
		fail("ReadF32: %d values for %v", len(dst), t)
	}
	be.check(be.commit(true), "waiting for the GPU")
	c := m.b.contents()
	if c == nil { // the recording device computes nothing
		clear(dst)
		return
	}
	off := m.base + byteOff(t.DType, t.Offset)
	raw := c[off : off+tensorBytes(t)]
	if t.DType == tensor.I32 { // Gather's ids; every other dtype is tensor.Dequantize's
		for i := range dst {
			dst[i] = float32(int32(binary.LittleEndian.Uint32(raw[4*i:])))
		}
		return
	}
	if err := tensor.Dequantize(t.DType, raw, dst); err != nil {
		fail("ReadF32: %v", err)
	}
}

func (be *Backend) Free(t *tensor.Tensor) {
	m := be.buf(t)
	if t.Offset != 0 {
		fail("Free of a view %v", t)
	}
	m.freed = true
	// A command buffer retains the buffers it uses until it completes: releasing ours now is
	// safe with work still queued.
	m.b.release()
	be.live--
}

// Live is the number of tensors allocated and not freed (tests check for leaks).
func (be *Backend) Live() int { return be.live }

func (be *Backend) Sync() error {
	if be.closed {
		return nil
	}
	return be.commit(true)
}

// Flush commits the open command buffer without waiting for it (tensor.Flusher), so that the GPU
// runs the dispatches encoded since the last commit while the caller does host work.
func (be *Backend) Flush() {
	if be.closed {
		return
	}
	be.check(be.commit(false), "commit")
}

func (be *Backend) Close() error {
	if be.closed {
		return nil
	}
	err := be.commit(true)
	for _, p := range be.pipes {
		p.release()
	}
	if be.lib != nil {
		be.lib.release()
	}
	be.d.close()
	be.closed = true
	return err
}

// ---- dispatch ----------------------------------------------------------------------------------

// arg is one buffer binding of a dispatch.
type arg struct {
	b   buffer
	off int
}

func (be *Backend) arg(t *tensor.Tensor) arg {
	m := be.buf(t)
	return arg{b: m.b, off: m.base + byteOff(t.DType, t.Offset)}
}

// commit submits the open command buffer and, with wait, waits for everything submitted; the
// first error of a command buffer is returned.
func (be *Backend) commit(wait bool) error {
	if be.cmd != nil {
		be.cmd.commit()
		be.pending = append(be.pending, be.cmd)
		be.cmd, be.n = nil, 0
	}
	if !wait {
		return nil
	}
	var first error
	for _, c := range be.pending {
		if err := c.wait(); err != nil && first == nil {
			first = err
		}
		c.release()
	}
	be.pending = be.pending[:0]
	return first
}

// dispatch encodes kernel fn over groups x threads with args at [[buffer(0)]] onwards and params
// (a struct of 4-byte fields, kernels.metal's P_ struct) after them; tgMem bytes of threadgroup
// memory at [[threadgroup(0)]] when the kernel takes it.
func (be *Backend) dispatch(fn string, args []arg, params any, groups, threads [3]int, tgMem int) {
	be.checkOpen()
	p, ok := be.pipes[fn]
	if !ok {
		fail("no kernel %s", fn)
	}
	for _, g := range groups {
		if g == 0 {
			return // nothing to do
		}
	}
	if be.cmd == nil {
		c, err := be.d.newCommands()
		be.check(err, "new command buffer")
		be.cmd = c
	}
	c := be.cmd
	c.use(p)
	for i, a := range args {
		c.setBuffer(a.b, a.off, i)
	}
	var pb bytes.Buffer
	if err := binary.Write(&pb, binary.LittleEndian, params); err != nil {
		fail("%s parameters: %v", fn, err)
	}
	c.setBytes(pb.Bytes(), len(args))
	if tgMem > 0 {
		c.setThreadgroupMemory((tgMem+15)&^15, 0)
	}
	c.dispatch(groups, threads)
	be.n++
	if be.n >= commitEvery {
		be.check(be.commit(false), "commit")
	}
}

// grid1 is a one-thread-an-element grid of n elements.
func grid1(n int) (groups, threads [3]int) {
	return [3]int{(n + 255) / 256, 1, 1}, [3]int{256, 1, 1}
}

// The parameter structs, field for field as kernels.metal's P_ structs.
type (
	pUnary struct {
		N  uint32
		Op int32
		S  float32
	}
	pBinary struct {
		N, M uint32
		Op   int32
	}
	pLayerNorm struct {
		Rows, Cols uint32
		Eps        float32
		Gdt, Bdt   int32
	}
	pSoftmax struct{ Rows, Cols uint32 }
	pLinear  struct {
		Rows, N, K                  uint32
		Wdt, HasBias, Bdt, Ddt, Epi int32
	}
	pMatMul struct {
		M, N, K          uint32
		TransA, TransB   int32
		StrideA, StrideB uint32
		Alpha            float32
	}
	pConv1D struct {
		B, Cin, T, Cout, K, Tout uint32
		Stride, Pad              int32
		Wdt, HasBias, Bdt        int32
	}
	pAttention struct {
		Tq, Tk, H, D, KvLen uint32
		Causal              int32
		Scale               float32
		Kdt, Vdt            int32
	}
	pGather struct {
		N, C, Rows uint32
		Dt         int32
	}
	pCopy struct {
		N        uint32
		Sdt, Ddt int32
	}
	pSetRows struct {
		B, N, T, C, At uint32
		Sdt, Ddt       int32
	}
	pTranspose struct {
		P, M, N uint32
		Dt      int32
	}
)

func b2i(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

func u32(n int) uint32 {
	if n < 0 || n > math.MaxUint32 {
		fail("size %d out of range", n)
	}
	return uint32(n)
}

// ---- ops ---------------------------------------------------------------------------------------

func (be *Backend) f32(op string, ts ...*tensor.Tensor) {
	for _, t := range ts {
		if t.DType != tensor.F32 {
			fail("%s: %v is not F32", op, t)
		}
	}
}

func (be *Backend) unary(op string, code int32, s float32, dst, x *tensor.Tensor) {
	be.f32(op, dst, x)
	if dst.Len() != x.Len() {
		fail("%s: dst %v, x %v", op, dst, x)
	}
	g, t := grid1(x.Len())
	be.dispatch("k_unary", []arg{be.arg(x), be.arg(dst)}, pUnary{N: u32(x.Len()), Op: code, S: s}, g, t, 0)
}

func (be *Backend) GELU(dst, x *tensor.Tensor)             { be.unary("GELU", 0, 0, dst, x) }
func (be *Backend) Sigmoid(dst, x *tensor.Tensor)          { be.unary("Sigmoid", 1, 0, dst, x) }
func (be *Backend) Tanh(dst, x *tensor.Tensor)             { be.unary("Tanh", 2, 0, dst, x) }
func (be *Backend) ReLU(dst, x *tensor.Tensor)             { be.unary("ReLU", 3, 0, dst, x) }
func (be *Backend) Scale(dst, x *tensor.Tensor, s float32) { be.unary("Scale", 4, s, dst, x) }
func (be *Backend) Sqrt(dst, x *tensor.Tensor)             { be.unary("Sqrt", 5, 0, dst, x) }

func (be *Backend) binary(op string, code int32, dst, a, b *tensor.Tensor) {
	be.f32(op, dst, a, b)
	if dst.Len() != a.Len() || b.Len() == 0 || a.Len()%b.Len() != 0 || b.Rank() > a.Rank() ||
		!tensor.SameShape(b.Shape, a.Shape[a.Rank()-b.Rank():]) {
		fail("%s: dst %v, a %v, b %v", op, dst, a, b)
	}
	g, t := grid1(a.Len())
	be.dispatch("k_binary", []arg{be.arg(a), be.arg(b), be.arg(dst)}, pBinary{N: u32(a.Len()), M: u32(b.Len()), Op: code}, g, t, 0)
}

func (be *Backend) Add(dst, a, b *tensor.Tensor) { be.binary("Add", 0, dst, a, b) }
func (be *Backend) Mul(dst, a, b *tensor.Tensor) { be.binary("Mul", 1, dst, a, b) }

func (be *Backend) LayerNorm(dst, x, gamma, beta *tensor.Tensor, eps float32) {
	be.f32("LayerNorm", dst, x)
	c := x.Dim(-1)
	if dst.Len() != x.Len() || gamma.Len() != c || beta.Len() != c {
		fail("LayerNorm: dst %v, x %v, gamma %v, beta %v", dst, x, gamma, beta)
	}
	be.dispatch("k_layernorm", []arg{be.arg(x), be.arg(gamma), be.arg(beta), be.arg(dst)},
		pLayerNorm{Rows: u32(x.Rows()), Cols: u32(c), Eps: eps, Gdt: int32(gamma.DType), Bdt: int32(beta.DType)},
		[3]int{x.Rows(), 1, 1}, [3]int{256, 1, 1}, 0)
}

func (be *Backend) Softmax(dst, x *tensor.Tensor) {
	be.f32("Softmax", dst, x)
	if dst.Len() != x.Len() {
		fail("Softmax: dst %v, x %v", dst, x)
	}
	be.dispatch("k_softmax", []arg{be.arg(x), be.arg(dst)}, pSoftmax{Rows: u32(x.Rows()), Cols: u32(x.Dim(-1))},
		[3]int{x.Rows(), 1, 1}, [3]int{256, 1, 1}, 0)
}

func (be *Backend) linear(op string, dst, x, w, bias *tensor.Tensor, epi int32) {
	be.f32(op, x)
	if w.Rank() != 2 {
		fail("%s: weight %v is not rank 2", op, w)
	}
	n, k := w.Shape[0], w.Shape[1]
	if x.Dim(-1) != k || dst.Dim(-1) != n || dst.Rows() != x.Rows() {
		fail("%s: x %v, w %v, dst %v", op, x, w, dst)
	}
	if dst.DType != tensor.F32 && (dst.DType != tensor.F16 || epi != 0) {
		fail("%s: dst %v must be F32 (or F16 for Linear)", op, dst)
	}
	p := pLinear{Rows: u32(x.Rows()), N: u32(n), K: u32(k), Wdt: int32(w.DType), Ddt: int32(dst.DType), Epi: epi}
	ba := be.arg(dst) // placeholder binding when there is no bias
	if bias != nil {
		if bias.Len() != n {
			fail("%s: bias %v for %d outputs", op, bias, n)
		}
		ba, p.HasBias, p.Bdt = be.arg(bias), 1, int32(bias.DType)
	}
	be.dispatch("k_linear", []arg{be.arg(x), be.arg(w), ba, be.arg(dst)}, p,
		[3]int{(n + 15) / 16, (x.Rows() + 15) / 16, 1}, [3]int{16, 16, 1}, 0)
}

func (be *Backend) Linear(dst, x, w, bias *tensor.Tensor) { be.linear("Linear", dst, x, w, bias, 0) }
func (be *Backend) LinearAdd(dst, x, w, bias *tensor.Tensor) {
	be.linear("LinearAdd", dst, x, w, bias, 1)
}
func (be *Backend) LinearGELU(dst, x, w, bias *tensor.Tensor) {
	be.linear("LinearGELU", dst, x, w, bias, 2)
}

func (be *Backend) MatMul(dst, a, b *tensor.Tensor, transA, transB bool, alpha float32) {
	be.f32("MatMul", dst, a, b)
	if a.Rank() < 2 || a.Rank() > 3 || b.Rank() < 2 || b.Rank() > 3 {
		fail("MatMul: a %v, b %v: want rank 2 or 3", a, b)
	}
	batch := 1
	if a.Rank() == 3 {
		batch = a.Shape[0]
	}
	if b.Rank() == 3 && (a.Rank() != 3 || b.Shape[0] != batch) {
		fail("MatMul: batch of a %v and b %v differ", a, b)
	}
	m, k := a.Dim(-2), a.Dim(-1)
	if transA {
		m, k = k, m
	}
	kb, n := b.Dim(-2), b.Dim(-1)
	if transB {
		kb, n = n, kb
	}
	if kb != k || dst.Rank() < 2 || dst.Dim(-2) != m || dst.Dim(-1) != n || dst.Len() != batch*m*n {
		fail("MatMul: a %v (trans %v), b %v (trans %v), dst %v", a, transA, b, transB, dst)
	}
	sb := 0
	if b.Rank() == 3 {
		sb = k * n
	}
	be.dispatch("k_matmul", []arg{be.arg(a), be.arg(b), be.arg(dst)},
		pMatMul{M: u32(m), N: u32(n), K: u32(k), TransA: b2i(transA), TransB: b2i(transB), StrideA: u32(m * k), StrideB: u32(sb), Alpha: alpha},
		[3]int{(n + 15) / 16, (m + 15) / 16, batch}, [3]int{16, 16, 1}, 0)
}

func (be *Backend) Conv1D(dst, x, w, bias *tensor.Tensor, stride, pad int) {
	be.f32("Conv1D", dst, x)
	if x.Rank() < 2 || x.Rank() > 3 || w.Rank() != 3 || stride < 1 || pad < 0 {
		fail("Conv1D: x %v, w %v, stride %d, pad %d", x, w, stride, pad)
	}
	batch := 1
	if x.Rank() == 3 {
		batch = x.Shape[0]
	}
	cin, t := x.Dim(-2), x.Dim(-1)
	cout, kw := w.Shape[0], w.Shape[2]
	tout := (t+2*pad-kw)/stride + 1
	if w.Shape[1] != cin || tout < 1 || dst.Len() != batch*cout*tout || dst.Dim(-1) != tout {
		fail("Conv1D: x %v, w %v, dst %v", x, w, dst)
	}
	p := pConv1D{B: u32(batch), Cin: u32(cin), T: u32(t), Cout: u32(cout), K: u32(kw), Tout: u32(tout),
		Stride: int32(stride), Pad: int32(pad), Wdt: int32(w.DType)}
	ba := be.arg(dst)
	if bias != nil {
		if bias.Len() != cout {
			fail("Conv1D: bias %v for %d channels", bias, cout)
		}
		ba, p.HasBias, p.Bdt = be.arg(bias), 1, int32(bias.DType)
	}
	g, th := grid1(batch * cout * tout)
	be.dispatch("k_conv1d", []arg{be.arg(x), be.arg(w), ba, be.arg(dst)}, p, g, th, 0)
}

// attnParams checks an attention call's shapes (tensor.Ops.Attention) and returns its
// parameters.
func (be *Backend) attnParams(op string, q, k, v *tensor.Tensor, heads, kvLen int, scale float32, causal bool) pAttention {
	be.f32(op, q)
	kv := func(t *tensor.Tensor) bool {
		return t != nil && t.DType != tensor.F32 && t.DType != tensor.F16 && t.DType != tensor.BF16
	}
	if q.Rank() != 3 || k.Rank() != 3 || kv(k) || kv(v) || heads < 1 || q.Dim(-1)%heads != 0 ||
		k.Shape[0] != q.Shape[0] || k.Dim(-1) != q.Dim(-1) || kvLen < 1 || kvLen > k.Shape[1] {
		fail("%s: q %v, k %v, heads %d, kvLen %d", op, q, k, heads, kvLen)
	}
	if v != nil && !tensor.SameShape(v.Shape, k.Shape) {
		fail("%s: k %v, v %v", op, k, v)
	}
	if causal && kvLen < q.Shape[1] {
		fail("%s: causal with %d queries over %d keys", op, q.Shape[1], kvLen)
	}
	p := pAttention{Tq: u32(q.Shape[1]), Tk: u32(k.Shape[1]), H: u32(heads), D: u32(q.Dim(-1) / heads), KvLen: u32(kvLen),
		Causal: b2i(causal), Scale: scale, Kdt: int32(k.DType), Vdt: int32(k.DType)}
	if v != nil {
		p.Vdt = int32(v.DType)
	}
	if 4*kvLen+16 > be.d.maxThreadgroupMemory() {
		fail("%s: %d keys do not fit threadgroup memory", op, kvLen)
	}
	return p
}

func (be *Backend) Attention(dst, q, k, v *tensor.Tensor, heads, kvLen int, scale float32, causal bool) {
	p := be.attnParams("Attention", q, k, v, heads, kvLen, scale, causal)
	be.f32("Attention", dst)
	if !tensor.SameShape(dst.Shape, q.Shape) {
		fail("Attention: dst %v, q %v", dst, q)
	}
	be.dispatch("k_attention", []arg{be.arg(q), be.arg(k), be.arg(v), be.arg(dst)}, p,
		[3]int{q.Shape[1], heads, q.Shape[0]}, [3]int{128, 1, 1}, 4*kvLen)
}

func (be *Backend) AttentionProbs(probs, q, k *tensor.Tensor, heads, kvLen int, scale float32, causal bool) {
	p := be.attnParams("AttentionProbs", q, k, nil, heads, kvLen, scale, causal)
	be.f32("AttentionProbs", probs)
	if probs.Len() != q.Shape[0]*heads*q.Shape[1]*kvLen {
		fail("AttentionProbs: probs %v for q %v, %d heads, %d keys", probs, q, heads, kvLen)
	}
	be.dispatch("k_attention_probs", []arg{be.arg(q), be.arg(k), be.arg(probs)}, p,
		[3]int{q.Shape[1], heads, q.Shape[0]}, [3]int{128, 1, 1}, 4*kvLen)
}

func (be *Backend) Gather(dst, table *tensor.Tensor, ids []int32) {
	be.f32("Gather", dst)
	if table.Rank() != 2 || dst.Len() != len(ids)*table.Shape[1] {
		fail("Gather: dst %v, table %v, %d ids", dst, table, len(ids))
	}
	for _, id := range ids {
		if id < 0 || int(id) >= table.Shape[0] {
			fail("Gather: id %d outside the table's %d rows", id, table.Shape[0])
		}
	}
	if len(ids) == 0 {
		return
	}
	idt := be.newTensor(tensor.I32, []int{len(ids)})
	if c := be.buf(idt).b.contents(); c != nil {
		copy(c, unsafe.Slice((*byte)(unsafe.Pointer(&ids[0])), 4*len(ids)))
	}
	g, t := grid1(dst.Len())
	be.dispatch("k_gather", []arg{be.arg(table), be.arg(idt), be.arg(dst)},
		pGather{N: u32(len(ids)), C: u32(table.Shape[1]), Rows: u32(table.Shape[0]), Dt: int32(table.DType)}, g, t, 0)
	be.Free(idt) // the command buffer keeps it until the gather ran
}

// plain reports whether dt is a dtype k_copy, k_setrows and k_transpose write.
func plain(dt tensor.DType) bool { return dt == tensor.F32 || dt == tensor.F16 || dt == tensor.BF16 }

func (be *Backend) Copy(dst, src *tensor.Tensor) {
	if dst.Len() != src.Len() || !plain(dst.DType) {
		fail("Copy: dst %v, src %v", dst, src)
	}
	g, t := grid1(src.Len())
	be.dispatch("k_copy", []arg{be.arg(src), be.arg(dst)}, pCopy{N: u32(src.Len()), Sdt: int32(src.DType), Ddt: int32(dst.DType)}, g, t, 0)
}

func (be *Backend) SetRows(dst *tensor.Tensor, at int, src *tensor.Tensor) {
	d3 := func(t *tensor.Tensor) (int, int, int) {
		if t.Rank() == 2 {
			return 1, t.Shape[0], t.Shape[1]
		}
		if t.Rank() != 3 {
			fail("SetRows: %v is not rank 2 or 3", t)
		}
		return t.Shape[0], t.Shape[1], t.Shape[2]
	}
	db, dt, dc := d3(dst)
	sb, sn, sc := d3(src)
	if db != sb || dc != sc || at < 0 || at+sn > dt || !plain(dst.DType) || !plain(src.DType) {
		fail("SetRows: dst %v, src %v at %d", dst, src, at)
	}
	g, t := grid1(src.Len())
	be.dispatch("k_setrows", []arg{be.arg(src), be.arg(dst)},
		pSetRows{B: u32(sb), N: u32(sn), T: u32(dt), C: u32(sc), At: u32(at), Sdt: int32(src.DType), Ddt: int32(dst.DType)}, g, t, 0)
}

func (be *Backend) Transpose(dst, src *tensor.Tensor) {
	if src.Rank() < 2 || dst.Len() != src.Len() || dst.DType != src.DType || !plain(src.DType) ||
		dst.Dim(-1) != src.Dim(-2) || dst.Dim(-2) != src.Dim(-1) {
		fail("Transpose: dst %v, src %v", dst, src)
	}
	m, n := src.Dim(-2), src.Dim(-1)
	g, t := grid1(src.Len())
	be.dispatch("k_transpose", []arg{be.arg(src), be.arg(dst)},
		pTranspose{P: u32(src.Len() / (m * n)), M: u32(m), N: u32(n), Dt: int32(src.DType)}, g, t, 0)
}
