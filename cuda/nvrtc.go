package cuda

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"unsafe"
)

// NVRTC, the run-time compiler, loaded from libnvrtc.so.* at run time.
// Reference: https://docs.nvidia.com/cuda/nvrtc/index.html
type nvrtcAPI struct {
	version     func(major, minor *int32) int32
	create      func(prog *uintptr, src string, name string, nHeaders int32, headers, names uintptr) int32
	compileProg func(prog uintptr, nOpts int32, opts unsafe.Pointer) int32
	logSize     func(prog uintptr, n *uint64) int32
	log         func(prog uintptr, buf unsafe.Pointer) int32
	cubinSize   func(prog uintptr, n *uint64) int32
	cubin       func(prog uintptr, buf unsafe.Pointer) int32
	destroy     func(prog *uintptr) int32
	errorString func(code int32) string
}

func (n *nvrtcAPI) symbols() []symbol {
	return []symbol{
		{"nvrtcVersion", &n.version},
		{"nvrtcCreateProgram", &n.create},
		{"nvrtcCompileProgram", &n.compileProg},
		{"nvrtcGetProgramLogSize", &n.logSize},
		{"nvrtcGetProgramLog", &n.log},
		{"nvrtcGetCUBINSize", &n.cubinSize},
		{"nvrtcGetCUBIN", &n.cubin},
		{"nvrtcDestroyProgram", &n.destroy},
		{"nvrtcGetErrorString", &n.errorString},
	}
}

func (n *nvrtcAPI) check(call string, code int32) error {
	if code == 0 {
		return nil
	}
	return fmt.Errorf("%s: %w", call, &Error{Code: int(code), Name: n.errorString(code)})
}

// cubinFor returns the compiled kernels for the device's SM, from the disk cache
// (os.UserCacheDir()/verbatim/cuda/<driver>-sm<NN>-<hash>.cubin) or compiled with NVRTC and stored
// there. A cache that cannot be written is not an error.
func (n *nvrtcAPI) cubinFor(src string, sm, driver int) ([]byte, error) {
	opts := []string{fmt.Sprintf("--gpu-architecture=sm_%d", sm), "--std=c++17", "-default-device"}
	h := sha256.New()
	h.Write([]byte(src))
	for _, o := range opts {
		h.Write([]byte{0})
		h.Write([]byte(o))
	}
	var major, minor int32
	n.version(&major, &minor)
	fmt.Fprintf(h, "nvrtc %d.%d", major, minor)
	key := fmt.Sprintf("%d-sm%d-%s.cubin", driver, sm, hex.EncodeToString(h.Sum(nil))[:16])
	var path string
	if dir, err := os.UserCacheDir(); err == nil {
		path = filepath.Join(dir, "verbatim", "cuda", key)
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return b, nil
		}
	}
	bin, err := n.compile(src, opts)
	if err != nil {
		return nil, err
	}
	if path != "" {
		writeCache(path, bin)
	}
	return bin, nil
}

func writeCache(path string, b []byte) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".verbatim.tmp.")
	if err != nil {
		return
	}
	_, err = f.Write(b)
	if err2 := f.Close(); err == nil {
		err = err2
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
}

func (n *nvrtcAPI) compile(src string, opts []string) ([]byte, error) {
	var prog uintptr
	if err := n.check("nvrtcCreateProgram", n.create(&prog, src, "verbatim.cu", 0, 0, 0)); err != nil {
		return nil, err
	}
	if prog == 0 {
		return nil, fmt.Errorf("nvrtcCreateProgram: zero program handle")
	}
	defer n.destroy(&prog)
	cs := make([][]byte, len(opts))
	ptrs := make([]*byte, len(opts))
	for i, o := range opts {
		cs[i] = append([]byte(o), 0)
		ptrs[i] = &cs[i][0]
	}
	code := n.compileProg(prog, int32(len(ptrs)), unsafe.Pointer(&ptrs[0]))
	runtime.KeepAlive(cs)
	runtime.KeepAlive(ptrs)
	if code != 0 {
		var size uint64
		n.logSize(prog, &size)
		msg := ""
		if size > 1 {
			buf := make([]byte, size)
			n.log(prog, unsafe.Pointer(&buf[0]))
			msg = string(buf[:size-1])
		}
		return nil, fmt.Errorf("compile kernels: %w\n%s", n.check("nvrtcCompileProgram", code), msg)
	}
	var size uint64
	if err := n.check("nvrtcGetCUBINSize", n.cubinSize(prog, &size)); err != nil {
		return nil, err
	}
	if size == 0 {
		return nil, fmt.Errorf("nvrtcGetCUBIN: empty image")
	}
	bin := make([]byte, size)
	if err := n.check("nvrtcGetCUBIN", n.cubin(prog, unsafe.Pointer(&bin[0]))); err != nil {
		return nil, err
	}
	return bin, nil
}
