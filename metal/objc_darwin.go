//go:build darwin

// The device interface of api.go implemented with the real Metal framework, called through
// purego's Objective-C runtime (no cgo). Nothing here has run on Apple hardware yet: every
// selector name, argument type and ownership rule below was written from Apple's documentation,
// and a first run on a Mac (objc_darwin_test.go) is its first test.
//
// # Calling convention
//
// Every method call is objc_msgSend(receiver, selector, args...). Most calls go through
// purego/objc's ID.Send, which passes Go integers, pointers, bools and strings (copied into a
// NUL-terminated C string for the duration of the call) as C arguments and returns x0 as an ID.
// The few calls whose C signature is not "returns an object or an integer" go through functions
// registered once on objc_msgSend's address with the exact C signature (see msg below): a pointer
// result (contents), a C string result (UTF8String), a BOOL result, and the MTLSize structs of a
// dispatch.
//
// # Ownership (the Objective-C rules, applied by hand)
//
//   - An object returned by a method whose name starts with new, alloc, copy or mutableCopy, or by
//     a C function with Create or Copy in its name (MTLCreateSystemDefaultDevice, MTLCopyAllDevices)
//     is owned by us (+1) and must get exactly one release.
//   - Every other returned object (device name, command buffer, encoder, NSError out-parameters,
//     NSString constructors) is autoreleased: it lives until the innermost autorelease pool is
//     popped. We either copy what we need out of it before the pool ends (strings, errors) or
//     retain it (command buffer, encoder) and release it ourselves later.
//   - Autorelease pools belong to an OS thread. withPool locks the goroutine to its thread for
//     the pool's whole life, so a pool is always pushed and popped on the same thread, even when the
//     caller has not locked it.
//
// Each Go wrapper below says which objects it owns; release()/close() gives each back once (the
// ID is zeroed afterwards, so a second release does nothing).
package metal

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"structs"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
	"github.com/ebitengine/purego/objc"
)

// Framework paths. On macOS 11 and later the files are not on disk (they live in the dyld shared
// cache) but dlopen of these paths still works.
const (
	metalPath        = "/System/Library/Frameworks/Metal.framework/Metal"
	foundationPath   = "/System/Library/Frameworks/Foundation.framework/Foundation"
	coreGraphicsPath = "/System/Library/Frameworks/CoreGraphics.framework/CoreGraphics"
	objcPath         = "/usr/lib/libobjc.A.dylib"
)

// Metal constants (values from Metal's headers).
const (
	// MTLResourceStorageModeShared | MTLResourceCPUCacheModeDefaultCache: CPU and GPU share the
	// memory (unified memory on Apple silicon); no copies, no synchronize calls.
	resourceStorageModeShared = 0
	// MTLMathModeSafe (MTLCompileOptions.mathMode, macOS 15 and later).
	mathModeSafe = 0
	// MTLCommandBufferStatus values.
	commandBufferStatusCompleted = 4
	commandBufferStatusError     = 5
)

// mtlSize is MTLSize: three NSUInteger (64-bit on every Mac that runs Metal), 24 bytes. Being
// larger than 16 bytes and not a floating-point aggregate, the arm64 C ABI (and Apple's variant
// of it) passes it by reference: the caller copies it to memory and passes the address in the
// next integer register. purego does exactly that for struct arguments larger than 16 bytes on
// arm64 (placeStack in its struct_arm64.go); on amd64 (Intel Macs) it passes the struct on the
// stack, the System V rule for a struct larger than 16 bytes.
type mtlSize struct {
	_                    structs.HostLayout
	width, height, depth uint
}

// Selectors, registered once when the package is initialised (sel_registerName; cheap, and
// libobjc is loaded by purego/objc's own init).
var (
	selAlloc         = objc.RegisterName("alloc")
	selInit          = objc.RegisterName("init")
	selRetain        = objc.RegisterName("retain")
	selRelease       = objc.RegisterName("release")
	selRespondsTo    = objc.RegisterName("respondsToSelector:")
	selUTF8String    = objc.RegisterName("UTF8String")
	selStringWithUTF = objc.RegisterName("stringWithUTF8String:")
	selLocalizedDesc = objc.RegisterName("localizedDescription")
	selCount         = objc.RegisterName("count")
	selObjectAtIndex = objc.RegisterName("objectAtIndex:")

	// MTLDevice
	selName                 = objc.RegisterName("name")
	selNewCommandQueue      = objc.RegisterName("newCommandQueue")
	selNewBufferWithLength  = objc.RegisterName("newBufferWithLength:options:")
	selNewBufferNoCopy      = objc.RegisterName("newBufferWithBytesNoCopy:length:options:deallocator:")
	selNewLibraryWithSource = objc.RegisterName("newLibraryWithSource:options:error:")
	selNewPipeline          = objc.RegisterName("newComputePipelineStateWithFunction:error:")
	selMaxTGMemory          = objc.RegisterName("maxThreadgroupMemoryLength")
	selMaxBufferLength      = objc.RegisterName("maxBufferLength")

	// MTLCompileOptions
	selSetMathMode        = objc.RegisterName("setMathMode:")
	selSetFastMathEnabled = objc.RegisterName("setFastMathEnabled:")

	// MTLBuffer
	selContents = objc.RegisterName("contents")
	selLength   = objc.RegisterName("length")

	// MTLLibrary, MTLComputePipelineState
	selNewFunctionWithName = objc.RegisterName("newFunctionWithName:")
	selMaxTotalThreads     = objc.RegisterName("maxTotalThreadsPerThreadgroup")

	// MTLCommandQueue, MTLCommandBuffer, MTLComputeCommandEncoder
	selCommandBuffer        = objc.RegisterName("commandBuffer")
	selComputeEncoder       = objc.RegisterName("computeCommandEncoder")
	selSetPipelineState     = objc.RegisterName("setComputePipelineState:")
	selSetBuffer            = objc.RegisterName("setBuffer:offset:atIndex:")
	selSetBytes             = objc.RegisterName("setBytes:length:atIndex:")
	selSetThreadgroupMemory = objc.RegisterName("setThreadgroupMemoryLength:atIndex:")
	selDispatchThreadgroups = objc.RegisterName("dispatchThreadgroups:threadsPerThreadgroup:")
	selEndEncoding          = objc.RegisterName("endEncoding")
	selCommit               = objc.RegisterName("commit")
	selWaitUntilCompleted   = objc.RegisterName("waitUntilCompleted")
	selStatus               = objc.RegisterName("status")
	selError                = objc.RegisterName("error")
)

// The C functions and typed objc_msgSend signatures, bound once by loadFramework.
var (
	loadOnce sync.Once
	loadErr  error

	// Metal's C entry points. Both return an object we own (+1).
	mtlCreateSystemDefaultDevice func() objc.ID
	mtlCopyAllDevices            func() objc.ID // NSArray<id<MTLDevice>>

	// libobjc's autorelease pool functions.
	autoreleasePoolPush func() uintptr
	autoreleasePoolPop  func(pool uintptr)

	// objc_msgSend with exact C signatures, for results that are not an object or an integer
	// and for the by-value MTLSize arguments.
	msgSendPointer  func(self objc.ID, sel objc.SEL) unsafe.Pointer // -(void *)contents
	msgSendCString  func(self objc.ID, sel objc.SEL) string         // -(const char *)UTF8String, copied
	msgSendBoolSel  func(self objc.ID, sel objc.SEL, arg objc.SEL) bool
	msgSendDispatch func(self objc.ID, sel objc.SEL, groups, threads mtlSize)
)

// loadFramework opens Foundation, CoreGraphics and Metal and binds the C functions above.
func loadFramework() error {
	loadOnce.Do(func() {
		// Foundation: NSString, NSArray, NSError (Metal links it too; opened here explicitly so
		// that objc.GetClass("NSString") cannot come back nil).
		if _, err := purego.Dlopen(foundationPath, purego.RTLD_NOW|purego.RTLD_GLOBAL); err != nil {
			loadErr = fmt.Errorf("metal: open Foundation: %w", err)
			return
		}
		// CoreGraphics: Apple's documentation of MTLCreateSystemDefaultDevice says that on macOS a
		// program must link CoreGraphics to be given a default device, and that command-line tools
		// usually have to do so explicitly. Loading it is our way of linking it. Not fatal: the
		// MTLCopyAllDevices fallback in systemDevice does not need it.
		_, _ = purego.Dlopen(coreGraphicsPath, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		mtl, err := purego.Dlopen(metalPath, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			loadErr = fmt.Errorf("metal: open Metal framework: %w", err)
			return
		}
		libobjc, err := purego.Dlopen(objcPath, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			loadErr = fmt.Errorf("metal: open libobjc: %w", err)
			return
		}
		bind := func(fptr any, lib uintptr, name string) uintptr {
			if loadErr != nil {
				return 0
			}
			sym, err := purego.Dlsym(lib, name)
			if err != nil {
				loadErr = fmt.Errorf("metal: %s: %w", name, err)
				return 0
			}
			if fptr != nil {
				purego.RegisterFunc(fptr, sym)
			}
			return sym
		}
		bind(&mtlCreateSystemDefaultDevice, mtl, "MTLCreateSystemDefaultDevice")
		bind(&mtlCopyAllDevices, mtl, "MTLCopyAllDevices")
		bind(&autoreleasePoolPush, libobjc, "objc_autoreleasePoolPush")
		bind(&autoreleasePoolPop, libobjc, "objc_autoreleasePoolPop")
		// On arm64 objc_msgSend serves every signature (there is no _stret variant); on amd64
		// none of the typed calls below returns a struct, so objc_msgSend is right there too.
		if msgSend := bind(nil, libobjc, "objc_msgSend"); msgSend != 0 {
			purego.RegisterFunc(&msgSendPointer, msgSend)
			purego.RegisterFunc(&msgSendCString, msgSend)
			purego.RegisterFunc(&msgSendBoolSel, msgSend)
			purego.RegisterFunc(&msgSendDispatch, msgSend)
		}
	})
	return loadErr
}

// withPool runs f inside an autorelease pool, on one OS thread: every object autoreleased while f
// runs (and not retained by someone) is freed when it returns. The goroutine is locked to its
// thread for the pool's life, since a pool must be popped on the thread that pushed it
// (LockOSThread nests, so callers that already hold the lock keep it).
func withPool(f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pool := autoreleasePoolPush()
	defer autoreleasePoolPop(pool)
	f()
}

// goString copies an NSString into a Go string (call inside a pool: s is usually autoreleased).
func goString(s objc.ID) string {
	if s == 0 {
		return ""
	}
	return msgSendCString(s, selUTF8String)
}

// nsString returns an autoreleased NSString holding s (call inside a pool). purego copies s into a
// NUL-terminated buffer for the call; NSString copies it again, so nothing of Go's is kept.
func nsString(s string) objc.ID {
	return objc.ID(objc.GetClass("NSString")).Send(selStringWithUTF, s)
}

// nsErrorText is an NSError's localizedDescription (for a failed compile, the compiler's log).
func nsErrorText(e objc.ID) string {
	if e == 0 {
		return "unknown error (no NSError)"
	}
	return goString(e.Send(selLocalizedDesc))
}

func release(id objc.ID) {
	if id != 0 {
		id.Send(selRelease)
	}
}

// --- device ---

// mtlDevice owns (+1) the MTLDevice and its one MTLCommandQueue.
type mtlDevice struct {
	dev   objc.ID
	queue objc.ID
	// pageSize is the VM page size (16384 on Apple silicon, 4096 on Intel Macs), the alignment
	// newBufferWithBytesNoCopy requires.
	pageSize int
}

// systemDevice opens the system's default Metal device and makes its command queue.
func systemDevice() (device, error) {
	if err := loadFramework(); err != nil {
		return nil, err
	}
	d := &mtlDevice{pageSize: os.Getpagesize()}
	withPool(func() {
		d.dev = mtlCreateSystemDefaultDevice() // +1, ours
		if d.dev == 0 {
			// No default device (a command-line process where CoreGraphics did not register,
			// for instance): take the first of all devices instead.
			all := mtlCopyAllDevices() // +1 NSArray, ours
			if all != 0 {
				if all.Send(selCount) != 0 {
					d.dev = all.Send(selObjectAtIndex, uint(0)) // +0, owned by the array
					d.dev.Send(selRetain)                       // now +1, ours
				}
				release(all)
			}
		}
		if d.dev != 0 {
			d.queue = d.dev.Send(selNewCommandQueue) // +1, ours
		}
	})
	if d.dev == 0 {
		return nil, errors.New("metal: no Metal device")
	}
	if d.queue == 0 {
		d.close()
		return nil, errors.New("metal: newCommandQueue failed")
	}
	return d, nil
}

func (d *mtlDevice) name() string {
	var s string
	withPool(func() { s = goString(d.dev.Send(selName)) }) // name is +0 (autoreleased or owned by the device)
	return s
}

func (d *mtlDevice) maxThreadgroupMemory() int {
	return int(d.dev.Send(selMaxTGMemory)) // NSUInteger in x0
}

func (d *mtlDevice) newBuffer(n int) (buffer, error) {
	if n < 0 {
		return nil, fmt.Errorf("metal: buffer of %d bytes", n)
	}
	// Metal refuses zero-length buffers; a zero-byte buffer gets one byte of storage and reports
	// size 0.
	length := max(n, 1)
	var b objc.ID
	withPool(func() {
		b = d.dev.Send(selNewBufferWithLength, uint(length), uint(resourceStorageModeShared)) // +1, ours
	})
	if b == 0 {
		return nil, fmt.Errorf("metal: newBufferWithLength: %d bytes failed (device's maxBufferLength %d)",
			n, uint(d.dev.Send(selMaxBufferLength)))
	}
	buf := newMTLBuffer(b, n)
	// Shared buffers are not guaranteed to be zeroed: clear them through the CPU mapping.
	clear(buf.mem)
	return buf, nil
}

func (d *mtlDevice) wrapBuffer(p unsafe.Pointer, n int) (buffer, error) {
	ps := d.pageSize
	if p == nil || n <= 0 {
		return nil, fmt.Errorf("metal: wrapBuffer of %d bytes at %p", n, p)
	}
	if uintptr(p)%uintptr(ps) != 0 || n%ps != 0 {
		return nil, fmt.Errorf("metal: wrapBuffer needs a page-aligned pointer and a multiple of the page size (%d bytes); got %p, %d bytes",
			ps, p, n)
	}
	var b objc.ID
	withPool(func() {
		// deallocator nil: the memory stays the caller's (api.go: kept alive and unchanged until
		// the buffer is released); Metal only maps it. +1, ours.
		b = d.dev.Send(selNewBufferNoCopy, p, uint(n), uint(resourceStorageModeShared), uintptr(0))
	})
	if b == 0 {
		return nil, fmt.Errorf("metal: newBufferWithBytesNoCopy: %d bytes at %p failed (device's maxBufferLength %d)",
			n, p, uint(d.dev.Send(selMaxBufferLength)))
	}
	return newMTLBuffer(b, n), nil
}

func (d *mtlDevice) newLibrary(src string) (library, error) {
	var lib objc.ID
	var msg string
	withPool(func() {
		opts := objc.ID(objc.GetClass("MTLCompileOptions")).Send(selAlloc).Send(selInit) // +1, ours
		defer release(opts)
		// No fast math. Fast math lets the compiler assume there are no infinities or NaNs and
		// reassociate freely, and uses faster, less precise exp/log/division: our softmax relies
		// on -inf attention masks and on max-subtraction that fast math may break, and we want the
		// results to match the CPU and CUDA backends' within the same tolerances. mathMode (macOS
		// 15 and later) replaces fastMathEnabled; MTLMathModeSafe is the strict IEEE mode. Older
		// systems get fastMathEnabled = NO, which means the same.
		if msgSendBoolSel(opts, selRespondsTo, selSetMathMode) {
			opts.Send(selSetMathMode, int(mathModeSafe))
		} else {
			opts.Send(selSetFastMathEnabled, false)
		}
		// nserr: an autoreleased NSError, set on failure (or with mere warnings); lib: +1, ours.
		var nserr objc.ID
		lib = d.dev.Send(selNewLibraryWithSource, nsString(src), opts, unsafe.Pointer(&nserr))
		if lib == 0 {
			msg = nsErrorText(nserr)
		}
	})
	if lib == 0 {
		return nil, fmt.Errorf("metal: compiling kernels: %s", msg)
	}
	return &mtlLibrary{dev: d, lib: lib}, nil
}

func (d *mtlDevice) newCommands() (commands, error) {
	c := &mtlCommands{}
	withPool(func() {
		// Both come back autoreleased (+0): retain them so that they outlive this pool; release()
		// gives them back.
		c.cb = d.queue.Send(selCommandBuffer)
		if c.cb == 0 {
			return
		}
		c.cb.Send(selRetain)
		// computeCommandEncoder dispatches serially (MTLDispatchTypeSerial): each dispatch sees
		// the memory writes of the ones before it, as api.go's commands promise.
		c.enc = c.cb.Send(selComputeEncoder)
		if c.enc != 0 {
			c.enc.Send(selRetain)
		}
	})
	if c.cb == 0 || c.enc == 0 {
		c.release()
		return nil, errors.New("metal: cannot make a command buffer and compute encoder")
	}
	return c, nil
}

func (d *mtlDevice) close() {
	release(d.queue)
	release(d.dev)
	d.queue, d.dev = 0, 0
}

// --- buffer ---

// mtlBuffer owns (+1) an MTLBuffer in shared storage.
type mtlBuffer struct {
	buf objc.ID
	n   int
	mem []byte // the CPU mapping; stable for a shared buffer's life
}

func newMTLBuffer(b objc.ID, n int) *mtlBuffer {
	// [buf contents] is the CPU address of a shared buffer; [buf length] its length (at least n:
	// for a wrapped buffer exactly n, for a zero-byte one 1).
	p := msgSendPointer(b, selContents)
	length := int(b.Send(selLength))
	var mem []byte
	if p != nil { // never nil for shared storage; checked so that a surprise is not a crash here
		mem = unsafe.Slice((*byte)(p), min(n, length))
	}
	return &mtlBuffer{buf: b, n: n, mem: mem}
}

func (b *mtlBuffer) size() int        { return b.n }
func (b *mtlBuffer) contents() []byte { return b.mem }

func (b *mtlBuffer) release() {
	release(b.buf)
	b.buf, b.mem = 0, nil
}

// --- library and pipeline ---

// mtlLibrary owns (+1) an MTLLibrary.
type mtlLibrary struct {
	dev *mtlDevice
	lib objc.ID
}

func (l *mtlLibrary) pipeline(fn string) (pipeline, error) {
	var ps objc.ID
	var msg string
	withPool(func() {
		f := l.lib.Send(selNewFunctionWithName, nsString(fn)) // +1, ours (new...)
		if f == 0 {
			msg = "no kernel function " + fn + " in the library"
			return
		}
		// The pipeline keeps what it needs of the function: release ours when done.
		defer release(f)
		// nserr: an autoreleased NSError, set on failure; ps: +1, ours.
		var nserr objc.ID
		ps = l.dev.dev.Send(selNewPipeline, f, unsafe.Pointer(&nserr))
		if ps == 0 {
			msg = "pipeline for " + fn + ": " + nsErrorText(nserr)
		}
	})
	if ps == 0 {
		return nil, fmt.Errorf("metal: %s", msg)
	}
	return &mtlPipeline{ps: ps, name: fn, max: int(ps.Send(selMaxTotalThreads))}, nil
}

func (l *mtlLibrary) release() {
	release(l.lib)
	l.lib = 0
}

// mtlPipeline owns (+1) an MTLComputePipelineState.
type mtlPipeline struct {
	ps   objc.ID
	name string
	max  int // maxTotalThreadsPerThreadgroup, read once
}

func (p *mtlPipeline) fn() string      { return p.name }
func (p *mtlPipeline) maxThreads() int { return p.max }

func (p *mtlPipeline) release() {
	release(p.ps)
	p.ps = 0
}

// --- commands ---

// mtlCommands owns (retained +1) one MTLCommandBuffer and its MTLComputeCommandEncoder. The
// command buffer retains every buffer and pipeline bound through it until it completes (the
// default, retained-references kind of command buffer), so releasing ours early is safe for the
// GPU; a wrapped buffer's memory must still outlive the work (api.go).
type mtlCommands struct {
	cb, enc   objc.ID
	ended     bool // endEncoding sent
	committed bool
}

func (c *mtlCommands) use(p pipeline) {
	c.enc.Send(selSetPipelineState, p.(*mtlPipeline).ps)
}

func (c *mtlCommands) setBuffer(b buffer, off, i int) {
	c.enc.Send(selSetBuffer, b.(*mtlBuffer).buf, uint(off), uint(i))
}

func (c *mtlCommands) setBytes(p []byte, i int) {
	if len(p) == 0 {
		return
	}
	if len(p) > 4096 {
		// Apple's limit for setBytes; larger arguments belong in a buffer.
		panic(fmt.Sprintf("metal: setBytes of %d bytes at index %d (at most 4096)", len(p), i))
	}
	// Metal copies the bytes into the command buffer during the call; Go's memory is not kept.
	c.enc.Send(selSetBytes, unsafe.Pointer(&p[0]), uint(len(p)), uint(i))
	runtime.KeepAlive(p)
}

func (c *mtlCommands) setThreadgroupMemory(n, i int) {
	c.enc.Send(selSetThreadgroupMemory, uint(n), uint(i))
}

func (c *mtlCommands) dispatch(groups, threads [3]int) {
	for k := range 3 {
		if groups[k] < 0 || threads[k] < 1 {
			panic(fmt.Sprintf("metal: dispatch of %v groups of %v threads", groups, threads))
		}
		if groups[k] == 0 {
			return // an empty grid: nothing to run (Metal rejects zero-sized dispatches)
		}
	}
	g := mtlSize{width: uint(groups[0]), height: uint(groups[1]), depth: uint(groups[2])}
	t := mtlSize{width: uint(threads[0]), height: uint(threads[1]), depth: uint(threads[2])}
	msgSendDispatch(c.enc, selDispatchThreadgroups, g, t)
}

func (c *mtlCommands) endEncoding() {
	if !c.ended && c.enc != 0 {
		c.enc.Send(selEndEncoding)
		c.ended = true
	}
}

func (c *mtlCommands) commit() {
	if c.committed {
		return
	}
	c.endEncoding()
	c.cb.Send(selCommit)
	c.committed = true
}

func (c *mtlCommands) wait() error {
	if !c.committed {
		return errors.New("metal: wait on a command buffer that was not committed")
	}
	var err error
	withPool(func() {
		c.cb.Send(selWaitUntilCompleted)
		switch st := int(c.cb.Send(selStatus)); st {
		case commandBufferStatusCompleted:
		case commandBufferStatusError:
			err = fmt.Errorf("metal: command buffer failed: %s", nsErrorText(c.cb.Send(selError))) // error: +0
		default:
			err = fmt.Errorf("metal: command buffer ended in status %d", st)
		}
	})
	return err
}

func (c *mtlCommands) release() {
	// An encoder must be ended before it goes away, even when nothing was committed (Metal's
	// validation layer stops the process otherwise).
	c.endEncoding()
	release(c.enc)
	release(c.cb)
	c.enc, c.cb = 0, 0
}
