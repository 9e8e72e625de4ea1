// Package cuda is the NVIDIA backend: the CUDA driver API, cuBLAS and NVRTC loaded at run time
// with purego (no cgo), so the binary runs on machines without CUDA and falls back cleanly.
//
// Storage: activations are F32. Weights keep the dtype they are uploaded in when it is F32, F16
// or BF16 (F32 models stay exact; F16 models run tensor-core GEMMs with f32 accumulation); ggml
// quantized weights are dequantized on upload to F32, which keeps Upload exact at twice the
// memory of f16. Linear with an F16/BF16 weight rounds its input activations to the weight's
// type (relative error about 2^-11 per product); Options.Precise computes in f32 instead.
// Attention with head size 64 and at least 16 query rows runs a fused tensor-core kernel with f16
// Q/K/V and P and f32 softmax (F16 K/V tiles loaded with cp.async); decoding with head size 64
// runs a split-K f32 kernel over slices of the keys plus a combine; other shapes and Precise run
// an exact f32 kernel, one block per query row and head.
//
// Threading: every CUDA call runs on one goroutine locked to its OS thread, which holds the
// device's primary context current. Ops are validated on the caller's goroutine, recorded as
// closures, and sent to that worker in batches; they run in order on one stream, so a Step or an
// Encode costs a handful of goroutine hand-offs, not one per op. ToF32 and Sync wait.
package cuda

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"
	"strings"
	"sync"
	"unsafe"

	"github.com/verbatimhq/verbatim/tensor"
)

// Backend is the CUDA implementation of tensor.Backend. Like every backend it is not safe for
// concurrent use; its GPU work runs on its own OS-locked goroutine.
type Backend struct {
	l    *libs
	opts Options

	name   string
	sm     int
	sms    int
	memGiB float64

	// Owned by the worker goroutine.
	ctx    uintptr
	stream uintptr
	blas   uintptr
	blasWS uint64  // cuBLAS workspace (cublasSetWorkspace), 0 when cuBLAS keeps its own
	lt     uintptr // cuBLASLt handle, 0 without cuBLASLt
	module uintptr
	fn     map[string]kfn
	args   [24]uint64
	params [24]unsafe.Pointer
	err    error // first asynchronous error

	// Caller side.
	pending []func() error
	work    chan []func() error
	done    chan error
	wg      sync.WaitGroup
	closed  bool

	// Device memory: ledger of every allocation we own (cached or live), free lists by size.
	ledger map[uint64]int
	free   map[int][]uint64
	live   int

	prof *profiler

	// cuBLASLt: plans by shape (nil: no algorithm, use cuBLAS), its workspace, converted bias
	// copies, and the packed tensors (see packed.go).
	useLt      bool
	ltPlans    map[ltKey]*ltPlan
	ltWS       uint64
	biasCopies map[biasKey]uint64
	padCopies  map[uint64]padCopy // weights' zero-padded copies by address (Options.NoPadN)
	padOut     map[uint64]padOut  // outputs held in their GEMM's padded block (padout.go)
	padHold    bool               // a pick reads a padded output where it is (pickSource)
	packed     map[uint64]int
	pkHold     bool

	gemvRows  int  // Options.SmallRows resolved
	splitAttn bool // !Options.AttnRows
	flashF16  bool // k_attn_flash_w for F16 K/V (!Options.FlashConvert), else k_attn_flash

	// sh is the f16 copy of the last activation written by a layer norm, an attention or a
	// GELU epilogue, which the Linear calls that read that activation next use as their GEMM
	// input instead of converting it again. Any op other than a Linear that hits it invalidates
	// it (enqueue, unless keepShadow), and so do Free and new tensors.
	sh         shadow
	keepShadow bool

	// pinned is page-locked host memory (cuMemAllocHost) that large reads (the logits of a
	// batched decoder step) are staged through: a device-to-host copy into pageable memory runs
	// at a fraction of the bus's speed.
	pinned    unsafe.Pointer
	pinnedCap int
	// stages are the pinned buffers uploads go through, in turn (stagedCopy; worker side).
	stages    [nStages]stage
	nextStage int

	// CUDA graphs (graph.go): the open recording and its pinned inputs (caller side), the
	// instantiated graphs by hash (worker side) and the counts.
	graphs   bool
	g        graphRec
	gPin     unsafe.Pointer
	gPinBusy bool
	gExec    map[uint64]uintptr
	gSeen    map[uint64]struct{} // hashes seen once, not captured (worker)
	gStats   GraphStats          // worker side: Launched, Captured, Failed
	gPlain   int                 // caller side: GraphStats.Plain
	gTimer   *profiler           // Options.GraphTimes: the steps' GPU time by kind
	profSeen int                 // batched steps recorded so far (Options.ProfileStep)

	pick bool // !Options.NoPick

	widened int // packed tensors widened back to f32 (widenPacked; tests)
}

// shadow is an f16 copy of the n elements at src (valid while valid is set) in buf (cap bytes).
type shadow struct {
	src   uint64
	n     int
	valid bool
	buf   uint64
	cap   int
}

var _ tensor.Backend = (*Backend)(nil)
var _ tensor.AttentionWeights = (*Backend)(nil)
var _ tensor.FusedLinear = (*Backend)(nil)
var _ tensor.HalfKV = (*Backend)(nil)
var _ tensor.Discarder = (*Backend)(nil)

// shadowBuf returns the shadow buffer, grown to hold n f16 values.
func (be *Backend) shadowBuf(n int) uint64 {
	if be.sh.cap < 2*n {
		if be.sh.buf != 0 {
			be.release(be.sh.buf) // queued readers run first (one stream)
		}
		be.sh.cap = sizeClass(2 * n)
		be.sh.buf = be.malloc(be.sh.cap)
	}
	return be.sh.buf
}

// setShadow records that the shadow buffer now holds an f16 copy of t (call after enqueuing the
// op that writes it).
func (be *Backend) setShadow(t *tensor.Tensor) {
	be.sh.src, be.sh.n, be.sh.valid = ptr(t), t.Len(), true
}

// shadowHit reports whether the shadow holds x for a GEMM with a weight of dtype wdt.
func (be *Backend) shadowHit(x *tensor.Tensor, wdt tensor.DType) bool {
	return be.sh.valid && wdt == tensor.F16 && be.sh.src == ptr(x) && be.sh.n == x.Len()
}

// wrote invalidates the shadow if t overlaps its source.
func (be *Backend) wrote(t *tensor.Tensor) {
	if !be.sh.valid {
		return
	}
	p, e := ptr(t), ptr(t)+uint64(t.Len()*elemSize(t.DType))
	if p < be.sh.src+uint64(4*be.sh.n) && be.sh.src < e {
		be.sh.valid = false
	}
}

// buffer is the device storage of one tensor.
type buffer struct {
	be    *Backend
	ptr   uint64
	n     int // elements
	dt    tensor.DType
	freed bool
}

func (b *buffer) Backend() tensor.Backend { return b.be }

// Devices returns the number of CUDA devices (Options.Device is 0 to Devices()-1). Without a
// driver or device it returns 0 and an error wrapping ErrNoDevice.
func Devices() (int, error) {
	l, err := loadLibs()
	if err != nil {
		return 0, err
	}
	var n int32
	if err := l.check("cuDeviceGetCount", l.drv.cuDeviceGetCount(&n)); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNoDevice, err)
	}
	if n <= 0 {
		return 0, fmt.Errorf("%w: the driver reports no device", ErrNoDevice)
	}
	return int(n), nil
}

// Open loads the CUDA libraries (once per process), starts the device's worker goroutine, creates
// its stream and cuBLAS handle and loads the kernels (compiled by NVRTC, or from the disk cache).
// Without a driver or device it returns an error wrapping ErrNoDevice. The switches in opts are
// used as they are; ParseOptions makes them from a command line's spec.
func Open(opts Options) (*Backend, error) {
	l, err := loadLibs()
	if err != nil {
		return nil, err
	}
	var n int32
	if err := l.check("cuDeviceGetCount", l.drv.cuDeviceGetCount(&n)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoDevice, err)
	}
	if opts.Device < 0 || opts.Device >= int(n) {
		return nil, fmt.Errorf("%w: device %d of %d", ErrNoDevice, opts.Device, n)
	}
	be := &Backend{
		l: l, opts: opts,
		fn:     map[string]kfn{},
		work:   make(chan []func() error, 16),
		done:   make(chan error),
		ledger: map[uint64]int{},
		free:   map[int][]uint64{},

		ltPlans:    map[ltKey]*ltPlan{},
		biasCopies: map[biasKey]uint64{},
		padCopies:  map[uint64]padCopy{},
		padOut:     map[uint64]padOut{},
		packed:     map[uint64]int{},
	}
	for i := range be.params {
		be.params[i] = unsafe.Pointer(&be.args[i])
	}
	started := make(chan error)
	be.wg.Add(1)
	go be.loop(started)
	if err := <-started; err != nil {
		be.wg.Wait()
		return nil, err
	}
	if opts.Profile {
		be.prof = &profiler{be: be, total: map[string]float64{}, count: map[string]int{}}
	}
	if opts.GraphTimes {
		be.gTimer = &profiler{be: be, total: map[string]float64{}, count: map[string]int{}}
	}
	be.gemvRows = opts.SmallRows
	if be.gemvRows == 0 {
		be.gemvRows = 8
	}
	be.splitAttn = !opts.AttnRows
	be.flashF16 = !opts.FlashConvert
	be.useLt = be.lt != 0 && !opts.NoLt && !opts.Precise
	be.graphs = l.graph != nil && !opts.NoGraphs && !opts.Profile
	be.gExec = map[uint64]uintptr{}
	be.gSeen = map[uint64]struct{}{}
	be.pick = !opts.NoPick
	return be, nil
}

// loop is the device's worker: it locks its OS thread, sets up the context and then runs batches
// of recorded ops until the work channel is closed.
func (be *Backend) loop(started chan<- error) {
	defer be.wg.Done()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := be.setup(); err != nil {
		be.teardown()
		started <- err
		return
	}
	started <- nil
	for batch := range be.work {
		for _, f := range batch {
			if err := f(); err != nil && be.err == nil {
				be.err = err
			}
		}
	}
	be.teardown()
}

func (be *Backend) setup() error {
	l, d := be.l, &be.l.drv
	var dev int32
	if err := l.check("cuDeviceGet", d.cuDeviceGet(&dev, int32(be.opts.Device))); err != nil {
		return err
	}
	name := make([]byte, 256)
	if err := l.check("cuDeviceGetName", d.cuDeviceGetName(&name[0], int32(len(name)), dev)); err != nil {
		return err
	}
	be.name = strings.TrimRight(string(name), "\x00")
	var major, minor, sms int32
	d.cuDeviceGetAttribute(&major, attrComputeCapabilityMajor, dev)
	d.cuDeviceGetAttribute(&minor, attrComputeCapabilityMinor, dev)
	d.cuDeviceGetAttribute(&sms, attrMultiprocessorCount, dev)
	be.sm, be.sms = int(major*10+minor), int(sms)
	var total uint64
	d.cuDeviceTotalMem(&total, dev)
	be.memGiB = float64(total) / (1 << 30)
	if err := l.check("cuDevicePrimaryCtxRetain", d.cuDevicePrimaryCtxRetain(&be.ctx, dev)); err != nil {
		return err
	}
	if be.ctx == 0 {
		return errors.New("cuDevicePrimaryCtxRetain: zero context")
	}
	if err := l.check("cuCtxSetCurrent", d.cuCtxSetCurrent(be.ctx)); err != nil {
		return err
	}
	if err := l.check("cuStreamCreate", d.cuStreamCreate(&be.stream, streamNonBlocking)); err != nil {
		return err
	}
	if be.stream == 0 {
		return errors.New("cuStreamCreate: zero stream")
	}
	if err := cublasCheck("cublasCreate", l.blas.create(&be.blas)); err != nil {
		return err
	}
	if be.blas == 0 {
		return errors.New("cublasCreate: zero handle")
	}
	if err := cublasCheck("cublasSetStream", l.blas.setStream(be.blas, be.stream)); err != nil {
		return err
	}
	if l.blas.setWorkspace != nil {
		// Our own workspace (as large as cuBLAS's default on Hopper), so that GEMMs captured
		// into a graph allocate nothing. Without it cuBLAS keeps its own.
		var p uint64
		if d.cuMemAlloc(&p, blasWorkspace) == 0 && p != 0 {
			if l.blas.setWorkspace(be.blas, p, blasWorkspace) == 0 {
				be.blasWS = p
			} else {
				d.cuMemFree(p)
			}
		}
	}
	if l.lt != nil && l.lt.create(&be.lt) != 0 {
		be.lt = 0 // no cuBLASLt: Linear stays on cuBLAS
	}
	bin, err := l.nvrtc.cubinFor(kernelSource, be.sm, l.driver)
	if err != nil {
		return err
	}
	err = l.check("cuModuleLoadData", d.cuModuleLoadData(&be.module, unsafe.Pointer(&bin[0])))
	runtime.KeepAlive(bin)
	if err != nil {
		return err
	}
	if be.module == 0 {
		return errors.New("cuModuleLoadData: zero module")
	}
	for _, k := range kernelNames {
		var f uintptr
		if err := l.check("cuModuleGetFunction "+k, d.cuModuleGetFunction(&f, be.module, k)); err != nil {
			return err
		}
		if f == 0 {
			return fmt.Errorf("cuModuleGetFunction %s: zero handle", k)
		}
		n, ok := kernelParams[k]
		if !ok {
			n = -1 // no declaration found: every launch fails its check
		}
		be.fn[k] = kfn{f, n}
	}
	return nil
}

// funcAttr is attribute attr (funcAttr*) of kernel name, -1 where it cannot be read.
func (be *Backend) funcAttr(name string, attr int32) int {
	var v int32
	if be.l.drv.cuFuncGetAttribute(&v, attr, be.fn[name].f) != 0 {
		return -1
	}
	return int(v)
}

// kfn is a kernel's handle in the loaded module and its parameter count (kernelParams).
type kfn struct {
	f      uintptr
	params int
}

// teardown releases what setup made, in reverse order (worker thread).
func (be *Backend) teardown() {
	d := &be.l.drv
	if be.module != 0 {
		d.cuModuleUnload(be.module)
		be.module = 0
	}
	for k, p := range be.ltPlans {
		if p != nil {
			be.destroyLtPlan(p)
		}
		delete(be.ltPlans, k)
	}
	if be.lt != 0 {
		be.l.lt.destroy(be.lt)
		be.lt = 0
	}
	if be.blas != 0 {
		be.l.blas.destroy(be.blas)
		be.blas = 0
	}
	if be.blasWS != 0 {
		d.cuMemFree(be.blasWS)
		be.blasWS = 0
	}
	if be.stream != 0 {
		d.cuStreamDestroy(be.stream)
		be.stream = 0
	}
	if be.ctx != 0 {
		d.cuDevicePrimaryCtxRelease(int32(be.opts.Device))
		be.ctx = 0
	}
}

// enqueue records an op for the worker; batches are sent when they reach 32 ops or when the
// caller waits. An op queued this way has no signature: it keeps an open graph recording from
// becoming a graph (see enqueueSig).
func (be *Backend) enqueue(name string, f func() error) {
	if be.g.on {
		be.g.ok = false
	}
	be.push(name, f)
}

// enqueueSig is enqueue for an op whose every driver argument is in sig (graph.go).
func (be *Backend) enqueueSig(name string, f func() error, sig ...uint64) {
	if be.g.on {
		be.sign(name, sig)
	}
	be.push(name, f)
}

func (be *Backend) push(name string, f func() error) {
	if !be.keepShadow {
		be.sh.valid = false
	}
	if be.prof != nil {
		f = be.prof.wrap(name, f)
	}
	if be.g.on {
		be.g.ops = append(be.g.ops, f)
		return
	}
	be.pending = append(be.pending, f)
	if len(be.pending) >= 32 {
		be.flush()
	}
}

func (be *Backend) flush() {
	if len(be.pending) == 0 {
		return
	}
	be.work <- be.pending
	be.pending = make([]func() error, 0, 64)
}

// Flush hands the queued ops to the worker without waiting for them (tensor.Flusher): push does so
// every 32 ops, so without it the last few ops of a pass (the encoder's cross-attention
// projections) would wait for the caller's next op while it does host work.
func (be *Backend) Flush() {
	be.checkOpen()
	be.flush()
}

// do runs f on the worker after everything queued before it and waits for its result.
func (be *Backend) do(f func() error) error {
	if be.g.on {
		be.abortGraph()
	}
	be.pending = append(be.pending, func() error {
		be.done <- f()
		return nil // reported to the caller, not recorded as an asynchronous error
	})
	be.flush()
	return <-be.done
}

func (be *Backend) checkOpen() {
	if be.closed {
		panic(tensor.Errorf("cuda: backend is closed"))
	}
}

// Name returns "cuda".
func (be *Backend) Name() string { return "cuda" }

// Device names the GPU, its SM version, memory and the driver version.
func (be *Backend) Device() string {
	return fmt.Sprintf("cuda: %s (sm_%d, %d SMs, %.1f GiB, driver %d.%d)", be.name, be.sm, be.sms, be.memGiB,
		be.l.driver/1000, be.l.driver%1000/10)
}

// Capabilities: f32, f16 and bf16 weights are kept as they are; quantized ggml weights are
// dequantized to f32 on upload.
func (be *Backend) Capabilities() tensor.Capabilities {
	return tensor.Capabilities{
		WeightDTypes: []tensor.DType{tensor.F32, tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q5_0, tensor.Q5_1, tensor.Q4_0},
		Batched:      true,
		Async:        true,
	}
}

func elemSize(dt tensor.DType) int {
	switch dt {
	case tensor.F32, tensor.I32:
		return 4
	case tensor.F16, tensor.BF16:
		return 2
	}
	panic(&tensor.Error{Msg: "cuda: dtype " + dt.String(), Err: tensor.ErrNotImplemented})
}

// sizeClass rounds an allocation up so that the cache can reuse blocks across nearby sizes.
func sizeClass(bytes int) int {
	switch {
	case bytes <= 0:
		return 256
	case bytes < 1<<20:
		return (bytes + 255) &^ 255
	default:
		return (bytes + (1<<20 - 1)) &^ (1<<20 - 1)
	}
}

// malloc returns a device block of at least bytes from the cache or cuMemAlloc (on the worker).
// Out of memory empties the cache and tries once more.
func (be *Backend) malloc(bytes int) uint64 {
	sz := sizeClass(bytes)
	if l := be.free[sz]; len(l) > 0 {
		p := l[len(l)-1]
		be.free[sz] = l[:len(l)-1]
		return p
	}
	var p uint64
	alloc := func() error {
		return be.l.check("cuMemAlloc", be.l.drv.cuMemAlloc(&p, uint64(sz)))
	}
	err := be.do(alloc)
	var ce *Error
	if errors.As(err, &ce) && ce.Code == cuErrorOutOfMemory {
		be.trim()
		err = be.do(alloc)
	}
	if err == nil && p == 0 {
		err = errors.New("cuMemAlloc: zero pointer")
	}
	if err != nil {
		panic(&tensor.Error{Msg: fmt.Sprintf("cuda: allocate %d bytes", sz), Err: err})
	}
	be.ledger[p] = sz
	return p
}

// release returns a block to the cache. Queued work that still uses it runs first (one stream).
func (be *Backend) release(p uint64) {
	sz := be.ledger[p]
	be.free[sz] = append(be.free[sz], p)
}

// trim frees every cached block.
func (be *Backend) trim() {
	var ps []uint64
	for sz, l := range be.free {
		ps = append(ps, l...)
		delete(be.free, sz)
	}
	if len(ps) == 0 {
		return
	}
	be.do(func() error {
		be.l.drv.cuStreamSynchronize(be.stream)
		for _, p := range ps {
			be.l.drv.cuMemFree(p)
		}
		return nil
	})
	for _, p := range ps {
		delete(be.ledger, p)
	}
}

// DeviceMemory returns the device's free and total memory (cuMemGetInfo), the blocks cached for
// reuse counted as free (tensor.MemoryReporter).
func (be *Backend) DeviceMemory() (free, total int64, err error) {
	be.checkOpen()
	var f, t uint64
	err = be.do(func() error { return be.l.check("cuMemGetInfo", be.l.drv.cuMemGetInfo(&f, &t)) })
	if err != nil {
		return 0, 0, err
	}
	cached := 0
	for sz, l := range be.free {
		cached += sz * len(l)
	}
	return int64(f) + int64(cached), int64(t), nil
}

var _ tensor.MemoryReporter = (*Backend)(nil)

// Ledger returns the number of device blocks the backend owns (live tensors, scratch and cache)
// and how many tensors are live. After Close both are zero.
func (be *Backend) Ledger() (blocks, liveTensors int) { return len(be.ledger), be.live }

func (be *Backend) newTensor(dt tensor.DType, shape []int) *tensor.Tensor {
	be.checkOpen()
	if len(shape) == 0 {
		panic(tensor.Errorf("cuda: empty shape"))
	}
	for _, d := range shape {
		if d < 0 {
			panic(tensor.Errorf("cuda: negative dimension in %v", shape))
		}
	}
	n := tensor.Numel(shape)
	be.sh.valid = false
	buf := &buffer{be: be, n: n, dt: dt, ptr: be.malloc(n * elemSize(dt))}
	be.live++
	return &tensor.Tensor{DType: dt, Shape: append([]int(nil), shape...), Buf: buf}
}

// Alloc returns a zeroed tensor of F32, F16, BF16 or I32.
func (be *Backend) Alloc(dt tensor.DType, shape ...int) *tensor.Tensor {
	if dt.Quantized() {
		panic(&tensor.Error{Msg: "cuda: alloc " + dt.String(), Err: tensor.ErrNotImplemented})
	}
	t := be.newTensor(dt, shape)
	p, n := ptr(t), uint64(t.Len()*elemSize(dt))
	be.enqueueSig("memset", func() error {
		return be.l.check("cuMemsetD8Async", be.l.drv.cuMemsetD8Async(p, 0, n, be.stream))
	}, p, n)
	return t
}

// upload copies host bytes to a new tensor and waits for the copy to be staged.
func (be *Backend) upload(dt tensor.DType, src unsafe.Pointer, shape []int) *tensor.Tensor {
	t := be.newTensor(dt, shape)
	p, n := ptr(t), uint64(t.Len()*elemSize(dt))
	if n == 0 {
		return t
	}
	err := be.do(func() error {
		if n >= stageMin && n <= stageMax {
			return be.stagedCopy(p, src, int(n))
		}
		return be.l.check("cuMemcpyHtoDAsync", be.l.drv.cuMemcpyHtoDAsync(p, src, n, be.stream))
	})
	if err != nil {
		panic(&tensor.Error{Msg: fmt.Sprintf("cuda: upload %s%v", dt, shape), Err: err})
	}
	return t
}

// Uploads of stageMin to stageMax bytes go through the pinned stages (stagedCopy).
const (
	stageMin = 1 << 10
	stageMax = 64 << 20
	nStages  = 4
)

// stage is a page-locked host buffer that an upload is copied into before the device copies it
// from there, and the event recorded after that device copy (worker side).
type stage struct {
	p   unsafe.Pointer
	cap int
	ev  uintptr
	set bool // ev has been recorded
}

// stagedCopy copies n bytes from src to device address dst through the next of the pinned stages
// (worker side): it waits until the device has read what that stage held before (an event, not
// the stream), copies src into it and queues the device's copy. An upload from pageable memory
// waits for the whole stream instead (the driver synchronizes before staging it itself), so the
// host could not queue the next encoder chunk's log-mel while the device still encoded the last:
// each chunk began with the device idle.
func (be *Backend) stagedCopy(dst uint64, src unsafe.Pointer, n int) error {
	st := &be.stages[be.nextStage]
	be.nextStage = (be.nextStage + 1) % nStages
	d := be.l.drv
	if st.set {
		if err := be.l.check("cuEventSynchronize", d.cuEventSynchronize(st.ev)); err != nil {
			return err
		}
		st.set = false
	}
	if st.ev == 0 {
		if err := be.l.check("cuEventCreate", d.cuEventCreate(&st.ev, eventDisableTiming)); err != nil {
			return err
		}
	}
	if st.cap < n {
		p, sz, err := be.reallocHost(st.p, n)
		st.p, st.cap = p, sz
		if err != nil {
			return err
		}
	}
	copy(unsafe.Slice((*byte)(st.p), n), unsafe.Slice((*byte)(src), n))
	if err := be.l.check("cuMemcpyHtoDAsync", d.cuMemcpyHtoDAsync(dst, st.p, uint64(n), be.stream)); err != nil {
		return err
	}
	if err := be.l.check("cuEventRecord", d.cuEventRecord(st.ev, be.stream)); err != nil {
		return err
	}
	st.set = true
	return nil
}

// freeStages frees the stages' buffers and events (worker side, nothing in flight).
func (be *Backend) freeStages() {
	for i := range be.stages {
		st := &be.stages[i]
		if st.p != nil {
			be.l.drv.cuMemFreeHost(st.p)
		}
		if st.ev != 0 {
			be.l.drv.cuEventDestroy(st.ev)
		}
		*st = stage{}
	}
}

// Upload copies raw ggml-layout bytes. F32, F16, BF16 and I32 are stored as they are; quantized
// blocks are dequantized to F32 on the host first.
func (be *Backend) Upload(dt tensor.DType, raw []byte, shape ...int) *tensor.Tensor {
	be.checkOpen()
	if len(shape) == 0 {
		panic(tensor.Errorf("cuda: upload with an empty shape"))
	}
	last := shape[len(shape)-1]
	if last%dt.BlockSize() != 0 {
		panic(tensor.Errorf("cuda: upload %s%v: last dimension not a multiple of the block size %d", dt, shape, dt.BlockSize()))
	}
	want := tensor.Numel(shape[:len(shape)-1]) * dt.RowBytes(last)
	if len(raw) != want {
		panic(tensor.Errorf("cuda: upload %s%v: %d bytes, want %d", dt, shape, len(raw), want))
	}
	if dt.Quantized() {
		f := make([]float32, tensor.Numel(shape))
		if err := tensor.Dequantize(dt, raw, f); err != nil {
			panic(&tensor.Error{Msg: fmt.Sprintf("cuda: upload %s%v", dt, shape), Err: err})
		}
		return be.FromF32(f, shape...)
	}
	if len(raw) == 0 {
		return be.newTensor(dt, shape)
	}
	t := be.upload(dt, unsafe.Pointer(&raw[0]), shape)
	runtime.KeepAlive(raw)
	return t
}

// FromF32 copies host values into a new F32 tensor (the copy is staged before it returns, so data
// may be reused at once).
func (be *Backend) FromF32(data []float32, shape ...int) *tensor.Tensor {
	be.checkOpen()
	if len(data) != tensor.Numel(shape) {
		panic(tensor.Errorf("cuda: FromF32: %d values for shape %v", len(data), shape))
	}
	if len(data) == 0 {
		return be.newTensor(tensor.F32, shape)
	}
	t := be.upload(tensor.F32, unsafe.Pointer(&data[0]), shape)
	runtime.KeepAlive(data)
	return t
}

// ToF32 waits for queued work and returns the tensor's values as float32. An earlier
// asynchronous error panics here with a *tensor.Error.
func (be *Backend) ToF32(t *tensor.Tensor) []float32 {
	out := make([]float32, t.Len())
	be.ReadF32(t, out)
	return out
}

// ReadF32 is ToF32 into the caller's buffer (tensor.F32Reader): reads of 1 MB or more go through
// the pinned staging buffer and are copied out by several goroutines.
func (be *Backend) ReadF32(t *tensor.Tensor, out []float32) {
	b := be.buf(t)
	n := t.Len()
	if len(out) != n {
		panic(tensor.Errorf("cuda: ReadF32: %d values for %v", len(out), t))
	}
	if n == 0 {
		return
	}
	es := elemSize(t.DType)
	var raw []byte
	dst := unsafe.Pointer(&out[0])
	if es == 2 {
		raw = make([]byte, 2*n)
		dst = unsafe.Pointer(&raw[0])
	}
	p := b.ptr + uint64(t.Offset*es)
	staged := false
	if nb := n * es; nb >= pinnedMin {
		if err := be.growPinned(nb); err == nil {
			staged, dst = true, be.pinned
		}
	}
	err := be.finish(func() error {
		return be.l.check("cuMemcpyDtoHAsync", be.l.drv.cuMemcpyDtoHAsync(dst, p, uint64(n*es), be.stream))
	})
	if err == nil && staged {
		host := unsafe.Slice((*byte)(be.pinned), n*es)
		if es == 2 {
			copy(raw, host)
		} else {
			copyParallel(unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), 4*n), host)
		}
	}
	runtime.KeepAlive(out)
	runtime.KeepAlive(raw)
	if err != nil {
		panic(&tensor.Error{Msg: "cuda: read " + t.String(), Err: err})
	}
	switch t.DType {
	case tensor.F16:
		for i := range out {
			out[i] = tensor.F16ToF32(uint16(raw[2*i]) | uint16(raw[2*i+1])<<8)
		}
	case tensor.BF16:
		for i := range out {
			out[i] = tensor.BF16ToF32(uint16(raw[2*i]) | uint16(raw[2*i+1])<<8)
		}
	case tensor.I32:
		for i, v := range out {
			out[i] = float32(int32(math.Float32bits(v)))
		}
	}
}

// pinnedMin is the size from which ToF32 stages reads through pinned host memory.
const pinnedMin = 1 << 20

// growPinned makes the pinned staging buffer hold at least n bytes.
func (be *Backend) growPinned(n int) error {
	if be.pinnedCap >= n {
		return nil
	}
	old := be.pinned
	var p unsafe.Pointer
	var sz int
	err := be.do(func() error {
		var err error
		p, sz, err = be.reallocHost(old, n) // no copy into old is pending: ToF32 waits for its own
		return err
	})
	be.pinned, be.pinnedCap = p, sz
	return err
}

// reallocHost frees old (page-locked, nil for none) and returns page-locked host memory of at
// least n bytes (its size class) and its size; nil and 0 with the error when the driver has none
// (worker side).
func (be *Backend) reallocHost(old unsafe.Pointer, n int) (unsafe.Pointer, int, error) {
	if old != nil {
		be.l.drv.cuMemFreeHost(old)
	}
	sz := sizeClass(n)
	var p unsafe.Pointer
	if err := be.l.check("cuMemAllocHost", be.l.drv.cuMemAllocHost(&p, uint64(sz))); err != nil {
		return nil, 0, err
	}
	if p == nil {
		return nil, 0, errors.New("cuMemAllocHost: nil pointer")
	}
	return p, sz, nil
}

// copyParallel copies src into dst (equal lengths) in a few chunks at once: one core's memmove
// does not reach the memory bandwidth that a 13 MB logits read needs.
func copyParallel(dst, src []byte) {
	const parts = 4
	chunk := (len(src) + parts - 1) / parts
	var wg sync.WaitGroup
	for i := 0; i < len(src); i += chunk {
		e := min(i+chunk, len(src))
		wg.Go(func() { copy(dst[i:e], src[i:e]) })
	}
	wg.Wait()
}

// Free returns a tensor's memory to the backend's cache. Freeing a view or freeing twice panics.
func (be *Backend) Free(t *tensor.Tensor) {
	if b, ok := t.Buf.(*buffer); ok && b.be == be && !b.freed {
		be.forgetPacked(b.ptr, b.ptr+uint64(b.n*elemSize(b.dt)))
		be.dropPadOut(b.ptr, b.ptr+uint64(b.n*elemSize(b.dt)))
		be.dropBiasCopies(b.ptr, b.ptr+uint64(b.n*elemSize(b.dt)))
		be.dropPadCopies(b.ptr, b.ptr+uint64(b.n*elemSize(b.dt)))
	}
	b := be.buf(t)
	if t.Offset != 0 || t.Len() != b.n {
		panic(tensor.Errorf("cuda: free of a view %v at offset %d", t.Shape, t.Offset))
	}
	b.freed = true
	be.sh.valid = false
	be.live--
	be.release(b.ptr)
}

// finish runs f (if not nil) on the worker after the queued work, then waits for the stream; it
// returns the first error of f, the wait, or an earlier asynchronous op. Nothing is in flight
// afterwards, so the pinned graph inputs are free again.
func (be *Backend) finish(f func() error) error {
	err := be.do(func() error {
		if f != nil {
			if err := f(); err != nil {
				return err
			}
		}
		if err := be.l.check("cuStreamSynchronize", be.l.drv.cuStreamSynchronize(be.stream)); err != nil {
			return err
		}
		return be.err
	})
	be.gPinBusy = false
	return err
}

// Sync waits for all queued work and returns the first asynchronous error.
func (be *Backend) Sync() error {
	be.checkOpen()
	err := be.finish(nil)
	if be.prof != nil {
		be.prof.collect()
	}
	if be.gTimer != nil {
		be.gTimer.collect()
	}
	return err
}

// Close waits for queued work, frees every block in the ledger, destroys the stream, cuBLAS handle
// and module, releases the context and stops the worker. It is idempotent.
func (be *Backend) Close() error {
	if be.closed {
		return nil
	}
	err := be.Sync()
	if be.prof != nil {
		be.prof.destroy()
	}
	if be.gTimer != nil {
		be.gTimer.destroy()
	}
	ps := make([]uint64, 0, len(be.ledger))
	for p := range be.ledger {
		ps = append(ps, p)
	}
	pinned, gPin := be.pinned, be.gPin
	be.do(func() error {
		be.dropGraphs() // they refer to the memory freed next
		be.freeStages()
		for _, p := range ps {
			be.l.drv.cuMemFree(p)
		}
		for _, p := range []unsafe.Pointer{pinned, gPin} {
			if p != nil {
				be.l.drv.cuMemFreeHost(p)
			}
		}
		return nil
	})
	be.pinned, be.pinnedCap, be.gPin = nil, 0, nil
	clear(be.ledger)
	clear(be.free)
	be.sh = shadow{}
	clear(be.packed)
	clear(be.biasCopies)
	clear(be.padCopies)
	clear(be.padOut)
	be.ltWS = 0
	be.live = 0
	be.closed = true
	close(be.work)
	be.wg.Wait()
	return err
}

func (be *Backend) buf(t *tensor.Tensor) *buffer {
	be.checkOpen()
	if t == nil || t.Buf == nil {
		panic(tensor.Errorf("cuda: nil tensor"))
	}
	b, ok := t.Buf.(*buffer)
	if !ok || b.be != be {
		panic(tensor.Errorf("cuda: tensor %v belongs to another backend", t))
	}
	if b.freed {
		panic(tensor.Errorf("cuda: tensor %v used after Free", t))
	}
	if !inside(t, b) {
		panic(tensor.Errorf("cuda: %v view %v at %d outside its %v buffer of %d", t.DType, t.Shape, t.Offset, b.dt, b.n))
	}
	if len(be.packed) > 0 && !be.pkHold {
		be.unpack(t)
	}
	if len(be.padOut) > 0 && !be.padHold {
		be.unpadOut(t)
	}
	return b
}

// inside reports whether view t lies within b. A view may reinterpret a buffer's bytes as
// another plain dtype (the encoder's F16 K/V in its F32 workspace, at an offset counted in
// f16 values), so the check is in bytes where the dtypes differ.
func inside(t *tensor.Tensor, b *buffer) bool {
	if t.Offset < 0 {
		return false
	}
	if t.DType == b.dt {
		return t.Offset+t.Len() <= b.n
	}
	return (t.Offset+t.Len())*elemSize(t.DType) <= b.n*elemSize(b.dt)
}

// ptr is the device address of a tensor's first element.
func ptr(t *tensor.Tensor) uint64 {
	b := t.Buf.(*buffer)
	return b.ptr + uint64(t.Offset*elemSize(t.DType))
}

// profiler accumulates the GPU time of ops by kind, measured with CUDA events around each op.
type profiler struct {
	be    *Backend
	pool  []uintptr // idle events (worker)
	marks []mark    // recorded, not yet read (worker)
	mu    sync.Mutex
	total map[string]float64 // ms
	count map[string]int
}

type mark struct {
	name       string
	start, end uintptr
}

func (p *profiler) event() uintptr {
	if n := len(p.pool); n > 0 {
		e := p.pool[n-1]
		p.pool = p.pool[:n-1]
		return e
	}
	var e uintptr
	p.be.l.drv.cuEventCreate(&e, eventDefault)
	return e
}

func (p *profiler) wrap(name string, f func() error) func() error {
	return p.wrapKind(func() (string, error) { return name, f() })
}

// wrapKind is wrap for a job that names its own kind when it has run.
func (p *profiler) wrapKind(f func() (string, error)) func() error {
	return func() error {
		s, e := p.event(), p.event()
		d := &p.be.l.drv
		d.cuEventRecord(s, p.be.stream)
		name, err := f()
		d.cuEventRecord(e, p.be.stream)
		p.marks = append(p.marks, mark{name, s, e})
		return err
	}
}

// collect reads the recorded events (after a stream sync) on the worker.
func (p *profiler) collect() {
	p.be.do(func() error {
		d := &p.be.l.drv
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, m := range p.marks {
			var ms float32
			if d.cuEventElapsedTime(&ms, m.start, m.end) == 0 {
				p.total[m.name] += float64(ms)
				p.count[m.name]++
			}
			p.pool = append(p.pool, m.start, m.end)
		}
		p.marks = p.marks[:0]
		return nil
	})
}

func (p *profiler) destroy() {
	p.be.do(func() error {
		for _, e := range p.pool {
			p.be.l.drv.cuEventDestroy(e)
		}
		p.pool = nil
		return nil
	})
}

// Profile returns the GPU time per op kind since the last Profile call (with Options.Profile),
// largest first, as text; Sync collects the times. Timing each op adds two events per op, so the
// totals are for finding where time goes, not for the headline numbers.
func (be *Backend) Profile() string {
	if be.prof == nil {
		return ""
	}
	be.Sync() // collects the recorded events
	p := be.prof
	p.mu.Lock()
	defer p.mu.Unlock()
	type row struct {
		name string
		ms   float64
		n    int
	}
	var rows []row
	var sum float64
	for k, v := range p.total {
		rows = append(rows, row{k, v, p.count[k]})
		sum += v
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].ms > rows[j].ms })
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-22s %10s %8s %7s\n", "op", "ms", "calls", "share")
	for _, r := range rows {
		fmt.Fprintf(&sb, "%-22s %10.2f %8d %6.1f%%\n", r.name, r.ms, r.n, 100*r.ms/max(sum, 1e-9))
	}
	clear(p.total)
	clear(p.count)
	return sb.String()
}
