// Package metal is the Apple GPU backend: Metal through purego's Objective-C runtime (no cgo),
// kernels in Metal Shading Language compiled at run time (kernels.metal), buffers in shared
// storage (unified memory), the model's weights wrapped where the file lies in memory instead of
// copied.
//
// Every Metal call goes through the small interface below (device, buffer, library, pipeline,
// commands). objc_darwin.go implements it with the real framework; record.go implements it for
// tests on any OS: it runs nothing, but checks every dispatch against the kernel's declaration in
// kernels.metal (which buffer indices it binds, how many bytes each must hold, the grid it must
// cover), so that a whole encoder pass and decoder step of large-v3 are checked here, where no
// Mac is. Nothing in this package has run on Apple hardware yet.
package metal

import "unsafe"

// device is the part of Metal the backend uses (MTLDevice, with its command queue).
type device interface {
	// name describes the GPU ("Apple M2 Pro").
	name() string
	// newBuffer returns a zeroed buffer of n bytes in shared storage.
	newBuffer(n int) (buffer, error)
	// wrapBuffer returns a buffer over n bytes at p without copying them (p page-aligned, n a
	// multiple of the page size); the caller keeps them alive and unchanged until it is released.
	wrapBuffer(p unsafe.Pointer, n int) (buffer, error)
	// newLibrary compiles Metal Shading Language source.
	newLibrary(src string) (library, error)
	// newCommands starts a command buffer with one compute encoder.
	newCommands() (commands, error)
	// maxThreadgroupMemory is the most threadgroup memory one dispatch may use, in bytes.
	maxThreadgroupMemory() int
	close()
}

// buffer is an MTLBuffer in shared storage.
type buffer interface {
	size() int
	// contents is the buffer's memory as the CPU sees it (nil where nothing is mapped: the
	// recording device's buffers).
	contents() []byte
	release()
}

// library is a compiled MTLLibrary.
type library interface {
	// pipeline makes the compute pipeline of the kernel function fn.
	pipeline(fn string) (pipeline, error)
	release()
}

// pipeline is an MTLComputePipelineState.
type pipeline interface {
	fn() string
	// maxThreads is the most threads a threadgroup of this pipeline may have.
	maxThreads() int
	release()
}

// commands is an MTLCommandBuffer with its MTLComputeCommandEncoder: dispatches are encoded in
// order and run in order (the encoder's dispatch type is serial), after commit.
type commands interface {
	use(p pipeline)
	// setBuffer binds b from byte offset off at index i ([[buffer(i)]]).
	setBuffer(b buffer, off, i int)
	// setBytes binds a copy of p at index i (at most 4 KB).
	setBytes(p []byte, i int)
	// setThreadgroupMemory reserves n bytes of threadgroup memory at index i.
	setThreadgroupMemory(n, i int)
	// dispatch runs groups threadgroups of threads threads each.
	dispatch(groups, threads [3]int)
	// commit ends encoding and submits the command buffer.
	commit()
	// wait blocks until the committed work is done and returns its error.
	wait() error
	release()
}
