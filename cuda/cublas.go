package cuda

import (
	"fmt"
	"unsafe"
)

// cuBLAS, loaded from libcublas.so.* (and its libcublasLt dependency) at run time.
// Reference: https://docs.nvidia.com/cuda/cublas/index.html
// cublasGemmEx: https://docs.nvidia.com/cuda/cublas/index.html#cublasgemmex
// cublasGemmStridedBatchedEx: https://docs.nvidia.com/cuda/cublas/index.html#cublasgemmstridedbatchedex
type cublasAPI struct {
	create    func(h *uintptr) int32
	destroy   func(h uintptr) int32
	setStream func(h uintptr, s uintptr) int32
	gemmSBEx  func(h uintptr, ta, tb int32, m, n, k int32, alpha unsafe.Pointer,
		a uint64, at int32, lda int32, sa int64,
		b uint64, bt int32, ldb int32, sb int64, beta unsafe.Pointer,
		c uint64, ct int32, ldc int32, sc int64, batch int32, compute int32, algo int32) int32
	// setWorkspace (cuBLAS 11.4+, nil when missing) gives the handle our own workspace, so that
	// cuBLAS allocates nothing while a stream is captured into a graph.
	setWorkspace func(h uintptr, p uint64, bytes uint64) int32
}

func (c *cublasAPI) symbols() []symbol {
	return []symbol{
		{"cublasCreate_v2", &c.create},
		{"cublasDestroy_v2", &c.destroy},
		{"cublasSetStream_v2", &c.setStream},
		{"cublasGemmStridedBatchedEx", &c.gemmSBEx},
	}
}

// cuBLAS and CUDA library constants (cublas_api.h, library_types.h).
// blasWorkspace is the cuBLAS workspace we give each handle (bytes).
const blasWorkspace = 32 << 20

const (
	cublasOpN = 0
	cublasOpT = 1

	cudaR32F  = 0
	cudaR16F  = 2
	cudaR16BF = 14

	cublasCompute32F  = 68
	cublasGemmDefault = -1
)

var cublasStatusNames = map[int32]string{
	1: "CUBLAS_STATUS_NOT_INITIALIZED", 3: "CUBLAS_STATUS_ALLOC_FAILED", 7: "CUBLAS_STATUS_INVALID_VALUE",
	8: "CUBLAS_STATUS_ARCH_MISMATCH", 11: "CUBLAS_STATUS_MAPPING_ERROR", 13: "CUBLAS_STATUS_EXECUTION_FAILED",
	14: "CUBLAS_STATUS_INTERNAL_ERROR", 15: "CUBLAS_STATUS_NOT_SUPPORTED", 16: "CUBLAS_STATUS_LICENSE_ERROR",
}

func cublasCheck(call string, code int32) error {
	if code == 0 {
		return nil
	}
	name, ok := cublasStatusNames[code]
	if !ok {
		name = fmt.Sprintf("cublasStatus(%d)", code)
	}
	return fmt.Errorf("%s: %w", call, &Error{Code: int(code), Name: name})
}
