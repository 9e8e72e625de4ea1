#!/bin/bash
# Checks cuda/kernels.cu (or the file given) with clang on a machine without a CUDA toolkit, before
# a device call spends its time on a compile error: clang (Debian's clang-14: apt-get install
# clang) compiles it as CUDA, device side only, to PTX for sm_80, against the few declarations
# below that NVRTC provides built in. It checks the C++ (types, names, templates), not the inline
# PTX, which only ptxas assembles; sm_90-only features would need a newer clang. Exit status 0:
# it compiled. Usage: tools/cuda/clangcheck.sh [FILE]
set -euo pipefail
src=${1:+$(realpath "$1")}
cd "$(dirname "$0")/../.."
src=${src:-cuda/kernels.cu}
cc=$(command -v clang++-14 || command -v clang++ || true)
[[ -n "$cc" ]] || { echo "clangcheck: no clang++ (apt-get install clang)" >&2; exit 2; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/prelude.h" <<'H'
#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __host__ __attribute__((host))
#define __shared__ __attribute__((shared))
#define __constant__ __attribute__((constant))
#define __forceinline__ __inline__ __attribute__((always_inline))
#define __launch_bounds__(...) __attribute__((launch_bounds(__VA_ARGS__)))
#define __align__(n) __attribute__((aligned(n)))
#define CUDA_VERSION 12000
#include <__clang_cuda_builtin_vars.h>
struct __attribute__((aligned(16))) uint4 { unsigned x, y, z, w; };
struct __attribute__((aligned(16))) float4 { float x, y, z, w; };
struct __attribute__((aligned(8))) float2 { float x, y; };
struct __attribute__((aligned(8))) uint2 { unsigned x, y; };
struct __attribute__((aligned(16))) int4 { int x, y, z, w; };
struct __attribute__((aligned(8))) int2 { int x, y; };
__device__ inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return uint4{a, b, c, d}; }
__device__ inline float4 make_float4(float a, float b, float c, float d) { return float4{a, b, c, d}; }
__device__ inline void __syncwarp(unsigned m = 0xffffffffu) { __nvvm_bar_warp_sync(m); }
__device__ inline float __shfl_xor_sync(unsigned m, float v, int o) { return __nvvm_shfl_sync_bfly_f32(m, v, o, 0x1f); }
__device__ inline int __shfl_xor_sync(unsigned m, int v, int o) { return __nvvm_shfl_sync_bfly_i32(m, v, o, 0x1f); }
__device__ inline unsigned __shfl_xor_sync(unsigned m, unsigned v, int o) { return (unsigned)__nvvm_shfl_sync_bfly_i32(m, (int)v, o, 0x1f); }
__device__ inline float __shfl_sync(unsigned m, float v, int l) { return __nvvm_shfl_sync_idx_f32(m, v, l, 0x1f); }
__device__ inline int __shfl_sync(unsigned m, int v, int l) { return __nvvm_shfl_sync_idx_i32(m, v, l, 0x1f); }
__device__ inline unsigned __shfl_sync(unsigned m, unsigned v, int l) { return (unsigned)__nvvm_shfl_sync_idx_i32(m, (int)v, l, 0x1f); }
__device__ inline float __shfl_down_sync(unsigned m, float v, int o) { return __nvvm_shfl_sync_down_f32(m, v, o, 0x1f); }
__device__ inline int __shfl_down_sync(unsigned m, int v, int o) { return __nvvm_shfl_sync_down_i32(m, v, o, 0x1f); }
__device__ inline float __shfl_up_sync(unsigned m, float v, int o) { return __nvvm_shfl_sync_up_f32(m, v, o, 0); }
__device__ inline int __shfl_up_sync(unsigned m, int v, int o) { return __nvvm_shfl_sync_up_i32(m, v, o, 0); }
__device__ inline unsigned __ballot_sync(unsigned m, bool p) { return __nvvm_vote_ballot_sync(m, p); }
__device__ inline int __popc(unsigned x) { return __builtin_popcount(x); }
__device__ inline int __ffs(int x) { return __builtin_ffs(x); }
__device__ inline int __clz(int x) { return x ? __builtin_clz(x) : 32; }
__device__ inline float __uint_as_float(unsigned x) { return __builtin_bit_cast(float, x); }
__device__ inline unsigned __float_as_uint(float x) { return __builtin_bit_cast(unsigned, x); }
__device__ inline float __int_as_float(int x) { return __builtin_bit_cast(float, x); }
__device__ inline int __float_as_int(float x) { return __builtin_bit_cast(int, x); }
template <class T> __device__ inline T __ldg(const T* p) { return *p; }
__device__ int atomicAdd(int*, int);
__device__ unsigned atomicAdd(unsigned*, unsigned);
__device__ float atomicAdd(float*, float);
__device__ int atomicMax(int*, int);
__device__ unsigned atomicOr(unsigned*, unsigned);
__device__ int atomicCAS(int*, int, int);
__device__ void __threadfence();
__device__ long long clock64();
extern "C" {
__device__ float exp2f(float); __device__ float expf(float); __device__ float logf(float); __device__ float log2f(float);
__device__ float erff(float); __device__ float tanhf(float); __device__ float sqrtf(float); __device__ float rsqrtf(float);
__device__ float fabsf(float); __device__ float __expf(float); __device__ float __logf(float); __device__ float powf(float, float);
__device__ float floorf(float); __device__ float ceilf(float); __device__ float roundf(float); __device__ float rintf(float);
__device__ float log1pf(float); __device__ float expm1f(float); __device__ float fmaf(float, float, float);
__device__ float log10f(float); __device__ void sincospif(float, float*, float*);
__device__ int isnan(float); __device__ int isinf(float); __device__ int isfinite(float);
}
__device__ inline float fmaxf(float a, float b) { return __builtin_fmaxf(a, b); }
__device__ inline float fminf(float a, float b) { return __builtin_fminf(a, b); }
__device__ inline int min(int a, int b) { return a < b ? a : b; }
__device__ inline int max(int a, int b) { return a > b ? a : b; }
__device__ inline long long min(long long a, long long b) { return a < b ? a : b; }
__device__ inline long long max(long long a, long long b) { return a > b ? a : b; }
__device__ inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
__device__ inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
#define INFINITY __builtin_inff()
H
"$cc" -x cuda --cuda-device-only --cuda-gpu-arch=sm_80 -nocudainc -nocudalib -Xclang -target-feature \
	-Xclang +ptx72 -std=c++17 -O2 -S -include "$dir/prelude.h" -Wno-unknown-cuda-version \
	-Wno-pass-failed "$src" -o "$dir/out.ptx"
echo "clangcheck: $src compiled ($(grep -c '^.entry\|\.entry ' "$dir/out.ptx") entry points)"
