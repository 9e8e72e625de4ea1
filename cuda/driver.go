package cuda

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"github.com/ebitengine/purego"
)

// CUDA driver API, loaded from libcuda.so.1 at run time.
// Reference: https://docs.nvidia.com/cuda/cuda-driver-api/index.html
// Error handling: https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__ERROR.html
// Memory: https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MEM.html
// Modules and launches: https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MODULE.html,
// https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__EXEC.html
type driverAPI struct {
	cuInit                    func(flags uint32) int32
	cuDriverGetVersion        func(v *int32) int32
	cuDeviceGetCount          func(n *int32) int32
	cuDeviceGet               func(dev *int32, ordinal int32) int32
	cuDeviceGetName           func(name *byte, n int32, dev int32) int32
	cuDeviceGetAttribute      func(v *int32, attr int32, dev int32) int32
	cuDeviceTotalMem          func(bytes *uint64, dev int32) int32
	cuDevicePrimaryCtxRetain  func(ctx *uintptr, dev int32) int32
	cuDevicePrimaryCtxRelease func(dev int32) int32
	cuCtxSetCurrent           func(ctx uintptr) int32
	cuStreamCreate            func(s *uintptr, flags uint32) int32
	cuStreamDestroy           func(s uintptr) int32
	cuStreamSynchronize       func(s uintptr) int32
	cuEventCreate             func(e *uintptr, flags uint32) int32
	cuEventRecord             func(e, s uintptr) int32
	cuEventSynchronize        func(e uintptr) int32
	cuEventElapsedTime        func(ms *float32, start, end uintptr) int32
	cuEventDestroy            func(e uintptr) int32
	cuMemAlloc                func(p *uint64, bytes uint64) int32
	cuMemFree                 func(p uint64) int32
	cuMemGetInfo              func(free, total *uint64) int32
	cuMemAllocHost            func(p *unsafe.Pointer, bytes uint64) int32
	cuMemFreeHost             func(p unsafe.Pointer) int32
	cuMemcpyHtoDAsync         func(dst uint64, src unsafe.Pointer, bytes uint64, s uintptr) int32
	cuMemcpyDtoHAsync         func(dst unsafe.Pointer, src uint64, bytes uint64, s uintptr) int32
	cuMemcpyDtoDAsync         func(dst, src uint64, bytes uint64, s uintptr) int32
	cuMemsetD8Async           func(dst uint64, v uint8, n uint64, s uintptr) int32
	cuModuleLoadData          func(m *uintptr, image unsafe.Pointer) int32
	cuModuleUnload            func(m uintptr) int32
	cuModuleGetFunction       func(f *uintptr, m uintptr, name string) int32
	cuFuncSetAttribute        func(f uintptr, attr int32, v int32) int32
	cuFuncGetAttribute        func(v *int32, attr int32, f uintptr) int32
	cuLaunchKernel            func(f uintptr, gx, gy, gz, bx, by, bz, shmem uint32, s uintptr, params unsafe.Pointer, extra uintptr) int32
	cuGetErrorName            func(code int32, s **byte) int32
}

func (d *driverAPI) symbols() []symbol {
	return []symbol{
		{"cuInit", &d.cuInit},
		{"cuDriverGetVersion", &d.cuDriverGetVersion},
		{"cuDeviceGetCount", &d.cuDeviceGetCount},
		{"cuDeviceGet", &d.cuDeviceGet},
		{"cuDeviceGetName", &d.cuDeviceGetName},
		{"cuDeviceGetAttribute", &d.cuDeviceGetAttribute},
		{"cuDeviceTotalMem_v2", &d.cuDeviceTotalMem},
		{"cuDevicePrimaryCtxRetain", &d.cuDevicePrimaryCtxRetain},
		{"cuDevicePrimaryCtxRelease_v2", &d.cuDevicePrimaryCtxRelease},
		{"cuCtxSetCurrent", &d.cuCtxSetCurrent},
		{"cuStreamCreate", &d.cuStreamCreate},
		{"cuStreamDestroy_v2", &d.cuStreamDestroy},
		{"cuStreamSynchronize", &d.cuStreamSynchronize},
		{"cuEventCreate", &d.cuEventCreate},
		{"cuEventRecord", &d.cuEventRecord},
		{"cuEventSynchronize", &d.cuEventSynchronize},
		{"cuEventElapsedTime", &d.cuEventElapsedTime},
		{"cuEventDestroy_v2", &d.cuEventDestroy},
		{"cuMemAlloc_v2", &d.cuMemAlloc},
		{"cuMemFree_v2", &d.cuMemFree},
		{"cuMemGetInfo_v2", &d.cuMemGetInfo},
		{"cuMemAllocHost_v2", &d.cuMemAllocHost},
		{"cuMemFreeHost", &d.cuMemFreeHost},
		{"cuMemcpyHtoDAsync_v2", &d.cuMemcpyHtoDAsync},
		{"cuMemcpyDtoHAsync_v2", &d.cuMemcpyDtoHAsync},
		{"cuMemcpyDtoDAsync_v2", &d.cuMemcpyDtoDAsync},
		{"cuMemsetD8Async", &d.cuMemsetD8Async},
		{"cuModuleLoadData", &d.cuModuleLoadData},
		{"cuModuleUnload", &d.cuModuleUnload},
		{"cuModuleGetFunction", &d.cuModuleGetFunction},
		{"cuFuncSetAttribute", &d.cuFuncSetAttribute},
		{"cuFuncGetAttribute", &d.cuFuncGetAttribute},
		{"cuLaunchKernel", &d.cuLaunchKernel},
		{"cuGetErrorName", &d.cuGetErrorName},
	}
}

// Driver constants (cuda.h).
const (
	cuErrorOutOfMemory = 2
	cuErrorNoDevice    = 100

	attrComputeCapabilityMajor = 75
	attrComputeCapabilityMinor = 76
	attrMultiprocessorCount    = 16

	funcAttrLocalSizeBytes       = 3
	funcAttrNumRegs              = 4
	funcAttrMaxDynamicSharedSize = 8

	streamNonBlocking  = 1
	eventDefault       = 0
	eventDisableTiming = 2 // CU_EVENT_DISABLE_TIMING
)

// Error is a status code of the CUDA driver, cuBLAS or NVRTC, converted at the boundary.
type Error struct {
	Code int    // the CUresult, cublasStatus_t or nvrtcResult value
	Name string // its symbolic name, e.g. "CUDA_ERROR_OUT_OF_MEMORY"
}

func (e *Error) Error() string { return fmt.Sprintf("cuda: %s (%d)", e.Name, e.Code) }

// check converts a CUresult into nil or a *Error naming the call.
func (l *libs) check(call string, code int32) error {
	if code == 0 {
		return nil
	}
	name := fmt.Sprintf("CUresult(%d)", code)
	var p *byte
	if l.drv.cuGetErrorName(code, &p) == 0 && p != nil {
		name = goString(p)
	}
	return fmt.Errorf("%s: %w", call, &Error{Code: int(code), Name: name})
}

// goString copies a NUL-terminated C string.
func goString(p *byte) string {
	var b strings.Builder
	for q := unsafe.Pointer(p); *(*byte)(q) != 0; q = unsafe.Add(q, 1) {
		b.WriteByte(*(*byte)(q))
	}
	return b.String()
}

// symbol binds one exported C function to a Go function variable.
type symbol struct {
	name string
	fn   any // pointer to a func variable
}

func bind(lib uintptr, libName string, syms []symbol) error {
	for _, s := range syms {
		p, err := purego.Dlsym(lib, s.name)
		if err != nil || p == 0 {
			return fmt.Errorf("%s: symbol %s not found", libName, s.name)
		}
		purego.RegisterFunc(s.fn, p)
	}
	return nil
}

// libDirs are the folders searched for the CUDA toolkit libraries, after the loader's own path.
func libDirs() []string {
	var dirs []string
	for _, env := range []string{"CUDA_PATH", "CUDA_HOME"} {
		if v := os.Getenv(env); v != "" {
			dirs = append(dirs, filepath.Join(v, "lib64"), filepath.Join(v, "lib"))
		}
	}
	return append(dirs, "/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib",
		"/usr/local/cuda/targets/sbsa-linux/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64")
}

// openLib loads the first library that opens among the given sonames (bare, so the loader's path
// is searched) and the versioned files matching base in libDirs.
func openLib(base string, sonames ...string) (uintptr, string, error) {
	cands := append([]string(nil), sonames...)
	for _, d := range libDirs() {
		for _, so := range sonames {
			cands = append(cands, filepath.Join(d, so))
		}
		m, _ := filepath.Glob(filepath.Join(d, base+".so.*"))
		cands = append(cands, m...)
	}
	var firstErr error
	for _, c := range cands {
		if strings.Contains(c, "/") {
			if _, err := os.Stat(c); err != nil {
				continue
			}
		}
		h, err := purego.Dlopen(c, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err == nil {
			return h, c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("not found in the loader path or %s", strings.Join(libDirs(), ", "))
	}
	return 0, "", fmt.Errorf("load %s: %w", base, firstErr)
}
