package cuda

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/ebitengine/purego"
)

// ErrNoDevice is returned by Open when the CUDA driver or libraries are missing or no device is
// present. Callers fall back to another backend.
var ErrNoDevice = errors.New("no CUDA device")

// libs are the loaded libraries and their bound symbols, shared by every Backend of the process.
type libs struct {
	drv    driverAPI
	blas   cublasAPI
	lt     *cublasLtAPI // nil when libcublasLt or one of its symbols is missing
	graph  *graphAPI    // nil when the driver lacks stream capture or graph launch
	prof   *profilerAPI // nil when the driver lacks cuProfilerStart/Stop
	nvrtc  nvrtcAPI
	driver int // cuDriverGetVersion, e.g. 12080
	paths  []string
}

// loadLibs loads libcuda, cuBLAS and NVRTC once per process, on first use (never in init), so a
// machine without CUDA gets an error to fall back from.
var loadLibs = sync.OnceValues(func() (*libs, error) {
	l := &libs{}
	cu, p, err := openLib("libcuda", "libcuda.so.1", "libcuda.so")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoDevice, err)
	}
	l.paths = append(l.paths, p)
	if err := bind(cu, "libcuda", l.drv.symbols()); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoDevice, err)
	}
	if err := l.check("cuInit", l.drv.cuInit(0)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoDevice, err)
	}
	var v int32
	if err := l.check("cuDriverGetVersion", l.drv.cuDriverGetVersion(&v)); err != nil {
		return nil, err
	}
	l.driver = int(v)
	if g := (&graphAPI{}); bind(cu, "libcuda", g.symbols()) == nil {
		l.graph = g
	}
	if pr := (&profilerAPI{}); bind(cu, "libcuda", pr.symbols()) == nil {
		l.prof = pr
	}

	// cuBLASLt first, so that libcublas finds it loaded whatever its search path.
	if h, p, err := openLib("libcublasLt", "libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so.11", "libcublasLt.so"); err == nil {
		l.paths = append(l.paths, p)
		lt := &cublasLtAPI{}
		if bind(h, "libcublasLt", lt.symbols()) == nil {
			l.lt = lt
		}
	}
	blas, p, err := openLib("libcublas", "libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoDevice, err)
	}
	l.paths = append(l.paths, p)
	if err := bind(blas, "libcublas", l.blas.symbols()); err != nil {
		return nil, err
	}
	if bind(blas, "libcublas", []symbol{{"cublasSetWorkspace_v2", &l.blas.setWorkspace}}) != nil {
		l.blas.setWorkspace = nil
	}
	nv, err := loadNVRTC()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoDevice, err)
	}
	l.nvrtc = nv.api
	l.paths = append(l.paths, nv.path)
	return l, nil
})

// nvrtcLib is NVRTC alone: it needs no device, so kernels can be compiled (and tested) anywhere
// the library is installed.
type nvrtcLib struct {
	api  nvrtcAPI
	path string
}

var loadNVRTC = sync.OnceValues(func() (*nvrtcLib, error) {
	nv, p, err := openLib("libnvrtc", "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so")
	if err != nil {
		return nil, err
	}
	// NVRTC opens its builtins library by soname when compiling; load it from the same folder
	// first so that it is found when that folder is not on the loader's path.
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(p), "libnvrtc-builtins.so.*")); len(m) > 0 {
		for _, b := range m {
			if _, err := purego.Dlopen(b, purego.RTLD_NOW|purego.RTLD_GLOBAL); err == nil {
				break
			}
		}
	}
	l := &nvrtcLib{path: p}
	if err := bind(nv, "libnvrtc", l.api.symbols()); err != nil {
		return nil, err
	}
	return l, nil
})
