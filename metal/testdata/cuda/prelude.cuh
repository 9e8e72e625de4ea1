// prelude.cuh: kernels.metal's Metal words for NVRTC, so that the same kernel source runs on an
// NVIDIA GPU (metal/cuda_test.go: the conformance suite through the CUDA driver). Compiled with
// -default-device, so every plain function is a device function; the kernels become device
// functions called by generated __global__ entry points (g_<kernel>) that compute Metal's thread
// positions from CUDA's. Threadgroup memory is __shared__; SIMD-group functions are warp
// shuffles (threadgroups are multiples of 32 threads); half is an f16 through PTX conversions.
typedef unsigned int uint;
typedef unsigned char uchar;
typedef unsigned short ushort;
#define kernel
#define device
#define constant const
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif
#define exp(x) expf(x)
#define sqrt(x) sqrtf(x)
#define rsqrt(x) rsqrtf(x)
#define fabs(x) fabsf(x)
#define max(a, b) fmaxf(a, b)
namespace metal {
enum class mem_flags { mem_threadgroup, mem_device };
namespace precise {
__device__ __forceinline__ float tanh(float x) { return tanhf(x); }
}
}
#ifdef VERBATIM_HOST_CHECK
typedef _Float16 half;
#else
struct half {
	ushort b;
	__device__ half() {}
	__device__ half(float f) { asm("cvt.rn.f16.f32 %0, %1;" : "=h"(b) : "f"(f)); }
	__device__ operator float() const {
		float f;
		asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(b));
		return f;
	}
};
#endif
#ifdef VERBATIM_HOST_CHECK
template <class T, class U> inline T as_type(U u) {
	static_assert(sizeof(T) == sizeof(U), "as_type between types of different sizes");
	T t;
	memcpy(&t, &u, sizeof(T));
	return t;
}
#else
// The bit casts kernels.metal makes, one by one (no memcpy in device code without headers).
template <class T, class U> __device__ T as_type(U u);
template <> __device__ __forceinline__ float as_type<float, uint>(uint u) { return __uint_as_float(u); }
template <> __device__ __forceinline__ uint as_type<uint, float>(float f) { return __float_as_uint(f); }
template <> __device__ __forceinline__ char as_type<char, uchar>(uchar u) { return (char)u; }
template <> __device__ __forceinline__ half as_type<half, ushort>(ushort u) {
	half h;
	h.b = u;
	return h;
}
#endif
__device__ __forceinline__ void threadgroup_barrier(metal::mem_flags) { __syncthreads(); }
__device__ __forceinline__ float simd_sum(float v) {
	for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}
__device__ __forceinline__ float simd_max(float v) {
	for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}
