package cuda

import (
	"fmt"
	"runtime"
	"strings"
	"unsafe"
)

// Kernels is a bare CUDA context running kernels compiled from source with NVRTC, outside the
// Backend: the metal package's tests run its kernels (the same source, with a CUDA prelude)
// through it on an NVIDIA GPU. Calls are synchronous, each on the calling goroutine's OS thread
// (the context is made current for the call).
type Kernels struct {
	l      *libs
	ctx    uintptr
	dev    int32
	module uintptr
	fns    map[string]uintptr
	// Device names the GPU.
	Device string
}

// OpenKernels compiles src for device 0 (or loads it from the kernel cache) and looks up the
// entry points names. Without a driver or device it returns an error wrapping ErrNoDevice.
func OpenKernels(src string, names []string) (*Kernels, error) {
	l, err := loadLibs()
	if err != nil {
		return nil, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	d := &l.drv
	var n int32
	if err := l.check("cuDeviceGetCount", d.cuDeviceGetCount(&n)); err != nil || n == 0 {
		return nil, fmt.Errorf("%w: %v", ErrNoDevice, err)
	}
	k := &Kernels{l: l, fns: map[string]uintptr{}}
	if err := l.check("cuDeviceGet", d.cuDeviceGet(&k.dev, 0)); err != nil {
		return nil, err
	}
	name := make([]byte, 256)
	d.cuDeviceGetName(&name[0], int32(len(name)), k.dev)
	k.Device = strings.TrimRight(string(name), "\x00")
	var major, minor int32
	d.cuDeviceGetAttribute(&major, attrComputeCapabilityMajor, k.dev)
	d.cuDeviceGetAttribute(&minor, attrComputeCapabilityMinor, k.dev)
	if err := l.check("cuDevicePrimaryCtxRetain", d.cuDevicePrimaryCtxRetain(&k.ctx, k.dev)); err != nil {
		return nil, err
	}
	if err := l.check("cuCtxSetCurrent", d.cuCtxSetCurrent(k.ctx)); err != nil {
		k.Close()
		return nil, err
	}
	bin, err := l.nvrtc.cubinFor(src, int(major*10+minor), l.driver)
	if err != nil {
		k.Close()
		return nil, err
	}
	err = l.check("cuModuleLoadData", d.cuModuleLoadData(&k.module, unsafe.Pointer(&bin[0])))
	runtime.KeepAlive(bin)
	if err != nil {
		k.Close()
		return nil, err
	}
	for _, nm := range names {
		var f uintptr
		if err := l.check("cuModuleGetFunction "+nm, d.cuModuleGetFunction(&f, k.module, nm)); err != nil || f == 0 {
			k.Close()
			return nil, fmt.Errorf("kernel %s: %v", nm, err)
		}
		k.fns[nm] = f
	}
	return k, nil
}

// current makes the context current on this OS thread; the caller holds the thread.
func (k *Kernels) current() error {
	return k.l.check("cuCtxSetCurrent", k.l.drv.cuCtxSetCurrent(k.ctx))
}

// Alloc returns n bytes of device memory (zeroed).
func (k *Kernels) Alloc(n int) (uint64, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := k.current(); err != nil {
		return 0, err
	}
	var p uint64
	if err := k.l.check("cuMemAlloc", k.l.drv.cuMemAlloc(&p, uint64(max(n, 1)))); err != nil {
		return 0, err
	}
	if err := k.l.check("cuMemsetD8", k.l.drv.cuMemsetD8Async(p, 0, uint64(max(n, 1)), 0)); err != nil {
		return 0, err
	}
	return p, k.l.check("cuStreamSynchronize", k.l.drv.cuStreamSynchronize(0))
}

// Free releases memory from Alloc.
func (k *Kernels) Free(p uint64) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if k.current() == nil {
		k.l.drv.cuMemFree(p)
	}
}

// Write copies b to device address dst.
func (k *Kernels) Write(dst uint64, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := k.current(); err != nil {
		return err
	}
	if err := k.l.check("cuMemcpyHtoD", k.l.drv.cuMemcpyHtoDAsync(dst, unsafe.Pointer(&b[0]), uint64(len(b)), 0)); err != nil {
		return err
	}
	return k.l.check("cuStreamSynchronize", k.l.drv.cuStreamSynchronize(0))
}

// Read copies len(b) bytes from device address src into b.
func (k *Kernels) Read(b []byte, src uint64) error {
	if len(b) == 0 {
		return nil
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := k.current(); err != nil {
		return err
	}
	if err := k.l.check("cuMemcpyDtoH", k.l.drv.cuMemcpyDtoHAsync(unsafe.Pointer(&b[0]), src, uint64(len(b)), 0)); err != nil {
		return err
	}
	return k.l.check("cuStreamSynchronize", k.l.drv.cuStreamSynchronize(0))
}

// Launch runs entry point name over grid x block threads with shmem bytes of dynamic shared
// memory; params point at each argument's value (cuLaunchKernel's kernelParams). It waits for
// the kernel and returns its error.
func (k *Kernels) Launch(name string, grid, block [3]int, shmem int, params []unsafe.Pointer) error {
	f, ok := k.fns[name]
	if !ok {
		return fmt.Errorf("no kernel %s", name)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := k.current(); err != nil {
		return err
	}
	var pp unsafe.Pointer
	if len(params) > 0 {
		pp = unsafe.Pointer(&params[0])
	}
	err := k.l.check("cuLaunchKernel "+name, k.l.drv.cuLaunchKernel(f, uint32(grid[0]), uint32(grid[1]), uint32(grid[2]),
		uint32(block[0]), uint32(block[1]), uint32(block[2]), uint32(shmem), 0, pp, 0))
	runtime.KeepAlive(params)
	if err != nil {
		return err
	}
	return k.l.check("cuStreamSynchronize "+name, k.l.drv.cuStreamSynchronize(0))
}

// Close unloads the kernels and releases the context.
func (k *Kernels) Close() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if k.module != 0 && k.current() == nil {
		k.l.drv.cuModuleUnload(k.module)
		k.module = 0
	}
	if k.ctx != 0 {
		k.l.drv.cuDevicePrimaryCtxRelease(k.dev)
		k.ctx = 0
	}
}
