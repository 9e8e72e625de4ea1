// Kernels of the cuda backend, compiled at run time by NVRTC (no headers: f16 conversions and
// tensor-core MMA are inline PTX). Activations are f32; dtype codes: 0 f32, 1 f16, 2 bf16.

typedef unsigned short u16;
typedef unsigned int u32;

__device__ __forceinline__ float h2f(u16 h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ u16 f2h(float f) { u16 h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
__device__ __forceinline__ float bf2f(u16 h) { return __uint_as_float(((u32)h) << 16); }
__device__ __forceinline__ u16 f2bf(float f) {
	u32 u = __float_as_uint(f);
	if ((u & 0x7fffffffu) > 0x7f800000u) return (u16)((u >> 16) | 0x40); // NaN stays NaN
	return (u16)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
__device__ __forceinline__ float ld(const void* p, int dt, long long i) {
	if (dt == 0) return ((const float*)p)[i];
	if (dt == 1) return h2f(((const u16*)p)[i]);
	return bf2f(((const u16*)p)[i]);
}
__device__ __forceinline__ void st(void* p, int dt, long long i, float v) {
	if (dt == 0) ((float*)p)[i] = v;
	else if (dt == 1) ((u16*)p)[i] = f2h(v);
	else ((u16*)p)[i] = f2bf(v);
}
// Two f32 to a pair of f16 (lo in the low half): one cvt.rn.f16x2.f32 on sm_80+ (a goes to the
// upper half, b to the lower), which halves the conversions of the flash kernels' P tiles.
__device__ __forceinline__ u32 pack2(float lo, float hi) {
#if __CUDA_ARCH__ >= 800
	u32 r;
	asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
	return r;
#else
	return (u32)f2h(lo) | ((u32)f2h(hi) << 16);
#endif
}
#define NEG_INF __int_as_float(0xff800000)
#define GRID_LOOP(i, n) for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)
__device__ __forceinline__ float warp_sum(float v) {
	for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}
__device__ __forceinline__ float warp_max(float v) {
	for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}

extern "C" __global__ void k_unary(float* dst, const float* x, long long n, int op, float s) {
	GRID_LOOP(i, n) {
		float v = x[i], r;
		switch (op) {
		case 0: r = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); break;
		case 1: r = 1.0f / (1.0f + expf(-v)); break;
		case 2: r = tanhf(v); break;
		case 3: r = v > 0.0f ? v : 0.0f; break;
		case 4: r = v * s; break;
		default: r = sqrtf(v); break;
		}
		dst[i] = r;
	}
}

// dst[i] = a[i] (op) b[i % nb]; op 0 add, 1 mul.
extern "C" __global__ void k_binary(float* dst, const float* a, const void* b, int bdt, long long n, unsigned nb, int op) {
	GRID_LOOP(i, n) {
		float w = ld(b, bdt, (unsigned)((unsigned long long)i % nb));
		dst[i] = op == 0 ? a[i] + w : a[i] * w;
	}
}

// dst[i] += bias[(i / T) % C]: a bias per channel of [B, C, T].
extern "C" __global__ void k_bias_mid(float* dst, const void* bias, int bdt, unsigned C, unsigned T, long long n) {
	GRID_LOOP(i, n) { dst[i] += ld(bias, bdt, (unsigned)(((unsigned long long)i / T) % C)); }
}

__device__ __forceinline__ float gelu_erf(float v) { return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); }

// Exact (erf) GELU in place on n f16 values (a packed LinearGELU output, 256-byte aligned):
// eight per thread with 16-byte loads, f32 arithmetic.
extern "C" __global__ void k_gelu_h(u16* x, long long n) {
	long long n8 = n / 8;
	GRID_LOOP(i, n8) {
		uint4 u = ((uint4*)x)[i];
		u32 w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
		for (int j = 0; j < 4; j++)
			w[j] = pack2(gelu_erf(h2f((u16)(w[j] & 0xffffu))), gelu_erf(h2f((u16)(w[j] >> 16))));
		((uint4*)x)[i] = make_uint4(w[0], w[1], w[2], w[3]);
	}
	GRID_LOOP(i, n - 8 * n8) { x[8 * n8 + i] = f2h(gelu_erf(h2f(x[8 * n8 + i]))); }
}

// GEMM epilogue, one pass: dst[i] = act(y[i] + bias[i % nb]) (+ resid[i]); with shadow, also an
// f16 copy of the result for the next GEMM's input. y and resid may alias dst.
extern "C" __global__ void k_epi(void* dst, int ddt, const void* y, int ydt, const void* bias, int bdt, unsigned nb, int gelu,
	const float* resid, u16* shadow, long long n) {
	GRID_LOOP(i, n) {
		float v = ld(y, ydt, i);
		if (bias) v += ld(bias, bdt, (unsigned)((unsigned long long)i % nb));
		if (gelu) v = gelu_erf(v);
		if (resid) v += resid[i];
		st(dst, ddt, i, v);
		if (shadow) shadow[i] = f2h(v);
	}
}

// Linear for a few rows (decoding): out[m, n] = act(x[m, :] . w[n, :] + bias[n]) (+ resid[m, n]),
// x f32, w f16 or bf16 (wdt 1 or 2), f32 accumulation. One warp per output column reads the
// weight row once with 16-byte loads for MR rows at a time; K % 8 == 0, x and w 16-byte aligned.
// Memory-bound like a GEMV: it needs no f16 copy of x, no bias or residual pass, and one launch.
// It takes one row (2 to 8 go to k_linear_mma, whose x loads do not grow with the rows), and the
// rows or widths k_linear_mma does not take.
template <int MR>
__device__ __forceinline__ void linear_small(void* out, int odt, const float* x, const u16* w, int wdt, const void* bias, int bdt,
	const float* resid, int gelu, int M, int N, int K) {
	int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
	int n = blockIdx.x * (blockDim.x >> 5) + warp;
	if (n >= N) return;
	const uint4* wr = (const uint4*)(w + (long long)n * K);
	int K8 = K >> 3;
	float bn = bias ? ld(bias, bdt, n) : 0.0f;
	for (int m0 = 0; m0 < M; m0 += MR) {
		float acc[MR];
#pragma unroll
		for (int i = 0; i < MR; i++) acc[i] = 0.0f;
#pragma unroll 4
		for (int c = lane; c < K8; c += 32) {
			uint4 wv = __ldg(wr + c);
			float wf[8];
			u32 ws[4] = {wv.x, wv.y, wv.z, wv.w};
#pragma unroll
			for (int j = 0; j < 4; j++) {
				if (wdt == 1) { wf[2 * j] = h2f((u16)(ws[j] & 0xffffu)); wf[2 * j + 1] = h2f((u16)(ws[j] >> 16)); }
				else { wf[2 * j] = __uint_as_float(ws[j] << 16); wf[2 * j + 1] = __uint_as_float(ws[j] & 0xffff0000u); }
			}
#pragma unroll
			for (int i = 0; i < MR; i++) {
				if (m0 + i < M) {
					const float4* xr = (const float4*)(x + (long long)(m0 + i) * K) + 2 * c;
					float4 a = __ldg(xr), b = __ldg(xr + 1);
					acc[i] += a.x * wf[0] + a.y * wf[1] + a.z * wf[2] + a.w * wf[3] + b.x * wf[4] + b.y * wf[5] + b.z * wf[6] + b.w * wf[7];
				}
			}
		}
#pragma unroll
		for (int i = 0; i < MR; i++) acc[i] = warp_sum(acc[i]);
		if (lane == 0) {
#pragma unroll
			for (int i = 0; i < MR; i++) {
				if (m0 + i < M) {
					long long o = (long long)(m0 + i) * N + n;
					float v = acc[i] + bn;
					if (gelu) v = gelu_erf(v);
					if (resid) v += resid[o];
					st(out, odt, o, v);
				}
			}
		}
	}
}
extern "C" __global__ void __launch_bounds__(256) k_linear_small1(void* out, int odt, const float* x, const u16* w, int wdt, const void* bias, int bdt,
	const float* resid, int gelu, int M, int N, int K) {
	linear_small<1>(out, odt, x, w, wdt, bias, bdt, resid, gelu, M, N, K);
}
extern "C" __global__ void __launch_bounds__(256) k_linear_small4(void* out, int odt, const float* x, const u16* w, int wdt, const void* bias, int bdt,
	const float* resid, int gelu, int M, int N, int K) {
	linear_small<4>(out, odt, x, w, wdt, bias, bdt, resid, gelu, M, N, K);
}
extern "C" __global__ void __launch_bounds__(256) k_linear_small8(void* out, int odt, const float* x, const u16* w, int wdt, const void* bias, int bdt,
	const float* resid, int gelu, int M, int N, int K) {
	linear_small<8>(out, odt, x, w, wdt, bias, bdt, resid, gelu, M, N, K);
}

extern "C" __global__ void k_cvt(void* dst, int ddt, const void* src, int sdt, long long n) {
	GRID_LOOP(i, n) { st(dst, ddt, i, ld(src, sdt, i)); }
}

// block_sum/block_max: every thread gets the result. sh must hold 32 floats.
__device__ float block_sum(float v, float* sh) {
	int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
	v = warp_sum(v);
	__syncthreads();
	if (lane == 0) sh[w] = v;
	__syncthreads();
	v = lane < nw ? sh[lane] : 0.0f;
	return warp_sum(v);
}
__device__ float block_max(float v, float* sh) {
	int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
	v = warp_max(v);
	__syncthreads();
	if (lane == 0) sh[w] = v;
	__syncthreads();
	v = lane < nw ? sh[lane] : NEG_INF;
	return warp_max(v);
}

// One block per row of C values. A row of at most LN_KEEP values a thread is read once, into
// registers (the sums and the output are then computed from them, in the same order as the
// general loop, so the results are the same); a longer one is read three times.
#define LN_KEEP 8
// k_layernorm: dst = the layer norm of x's rows; with shadow, also their f16 values there. A null
// dst writes the f16 values alone (LayerNormHalf: shadow is dst's own buffer, packed).
extern "C" __global__ void k_layernorm(float* dst, const float* x, const void* g, int gdt, const void* b, int bdt, int C, float eps, u16* shadow) {
	__shared__ float sh[32];
	const float* xr = x + (long long)blockIdx.x * C;
	float* dr = dst ? dst + (long long)blockIdx.x * C : 0;
	if (C <= LN_KEEP * (int)blockDim.x) {
		float xv[LN_KEEP];
		float s = 0.0f;
#pragma unroll
		for (int k = 0; k < LN_KEEP; k++) {
			int i = threadIdx.x + k * blockDim.x;
			xv[k] = i < C ? xr[i] : 0.0f;
			if (i < C) s += xv[k];
		}
		float mean = block_sum(s, sh) / C;
		float v = 0.0f;
#pragma unroll
		for (int k = 0; k < LN_KEEP; k++) {
			int i = threadIdx.x + k * blockDim.x;
			if (i < C) { float d = xv[k] - mean; v += d * d; }
		}
		float rstd = rsqrtf(block_sum(v, sh) / C + eps);
		u16* hr = shadow ? shadow + (long long)blockIdx.x * C : 0;
#pragma unroll
		for (int k = 0; k < LN_KEEP; k++) {
			int i = threadIdx.x + k * blockDim.x;
			if (i < C) {
				float y = (xv[k] - mean) * rstd * ld(g, gdt, i) + ld(b, bdt, i);
				if (dr) dr[i] = y;
				if (hr) hr[i] = f2h(y);
			}
		}
		return;
	}
	float s = 0.0f;
	for (int i = threadIdx.x; i < C; i += blockDim.x) s += xr[i];
	float mean = block_sum(s, sh) / C;
	float v = 0.0f;
	for (int i = threadIdx.x; i < C; i += blockDim.x) { float d = xr[i] - mean; v += d * d; }
	float rstd = rsqrtf(block_sum(v, sh) / C + eps);
	u16* hr = shadow ? shadow + (long long)blockIdx.x * C : 0;
	for (int i = threadIdx.x; i < C; i += blockDim.x) {
		float y = (xr[i] - mean) * rstd * ld(g, gdt, i) + ld(b, bdt, i);
		if (dr) dr[i] = y;
		if (hr) hr[i] = f2h(y);
	}
}

extern "C" __global__ void k_softmax(float* dst, const float* x, int C) {
	__shared__ float sh[32];
	const float* xr = x + (long long)blockIdx.x * C;
	float* dr = dst + (long long)blockIdx.x * C;
	float m = NEG_INF;
	for (int i = threadIdx.x; i < C; i += blockDim.x) m = fmaxf(m, xr[i]);
	m = block_max(m, sh);
	float s = 0.0f;
	for (int i = threadIdx.x; i < C; i += blockDim.x) s += expf(xr[i] - m);
	float inv = 1.0f / block_sum(s, sh);
	for (int i = threadIdx.x; i < C; i += blockDim.x) dr[i] = expf(xr[i] - m) * inv;
}

// [batch, M, N] -> [batch, N, M]; block (32, 8).
extern "C" __global__ void k_transpose(float* dst, const float* src, int M, int N) {
	__shared__ float tile[32][33];
	long long base = (long long)blockIdx.z * M * N;
	int x = blockIdx.x * 32 + threadIdx.x, y0 = blockIdx.y * 32;
	for (int j = threadIdx.y; j < 32; j += 8)
		if (x < N && y0 + j < M) tile[j][threadIdx.x] = src[base + (long long)(y0 + j) * N + x];
	__syncthreads();
	int ox = y0 + threadIdx.x, oy0 = blockIdx.x * 32;
	for (int j = threadIdx.y; j < 32; j += 8)
		if (ox < M && oy0 + j < N) dst[base + (long long)(oy0 + j) * M + ox] = tile[threadIdx.x][j];
}

// col[b][ci*K + j][to] = x[b][ci][to*stride + j - pad] (0 outside).
extern "C" __global__ void k_im2col(void* col, int cdt, const float* x, int Cin, int T, int K, int stride, int pad, int Tout, long long n) {
	GRID_LOOP(i, n) {
		int to = (int)(i % Tout);
		long long r = i / Tout;
		int j = (int)(r % K);
		r /= K;
		int ci = (int)(r % Cin);
		long long b = r / Cin;
		int ti = to * stride + j - pad;
		float v = (ti >= 0 && ti < T) ? x[(b * Cin + ci) * T + ti] : 0.0f;
		st(col, cdt, i, v);
	}
}

extern "C" __global__ void k_gather(float* dst, const void* table, int tdt, const int* ids, int C, long long n) {
	GRID_LOOP(i, n) {
		long long r = i / C;
		int c = (int)(i % C);
		dst[i] = ld(table, tdt, (long long)ids[r] * C + c);
	}
}

// dst [B, T, C] (f32 or f16, ddt) rows [at, at+rows) = src [B, rows, C].
extern "C" __global__ void k_setrows(void* dst, int ddt, const float* src, int rows, int C, int T, int at, long long n) {
	GRID_LOOP(i, n) {
		int c = (int)(i % C);
		long long r = i / C;
		int j = (int)(r % rows);
		long long b = r / rows;
		st(dst, ddt, (b * T + at + j) * C + c, src[i]);
	}
}

// k_qkv_rows splits a decoder step's fused projection src [rows, 3n] (f32: q, k, v; n a multiple
// of 4), four values a thread: q's into q [rows, n] (f32), k's and v's rounded to f16 into kc and
// vc, which point at the step's row of sequence 0 in their caches, ldc values from one
// sequence's row to the next.
extern "C" __global__ void k_qkv_rows(float* q, u16* kc, u16* vc, const float* src, int rows, int n, long long ldc) {
	int n4 = n >> 2;
	GRID_LOOP(i, (long long)rows * 3 * n4) {
		long long r = i / (3 * n4);
		int c = (int)(i - r * 3 * n4);
		float4 v = ((const float4*)src)[i];
		if (c < n4) {
			((float4*)(q + r * n))[c] = v;
			continue;
		}
		u16* d = c < 2 * n4 ? kc : vc;
		c -= c < 2 * n4 ? n4 : 2 * n4;
		uint2 h;
		h.x = (unsigned)f2h(v.x) | (unsigned)f2h(v.y) << 16;
		h.y = (unsigned)f2h(v.z) | (unsigned)f2h(v.w) << 16;
		*(uint2*)(d + r * ldc + 4 * c) = h;
	}
}

// For every pair p (blockIdx.z) and row r (blockIdx.y): units w-byte units from row rows[R + r]
// of src p to row rows[r] of dst p; ptrs holds dst 0, src 0, dst 1, src 1, ...; the strides are
// a batch row's bytes (tensor.CopyRows).
extern "C" __global__ void k_copy_rows(const unsigned long long* ptrs, const int* rows, int R, long long units, int w,
		long long dstStride, long long srcStride) {
	int r = blockIdx.y, p = blockIdx.z;
	char* d = (char*)ptrs[2 * p] + (long long)rows[r] * dstStride;
	const char* s = (const char*)ptrs[2 * p + 1] + (long long)rows[R + r] * srcStride;
	GRID_LOOP(i, units) {
		if (w == 16) ((uint4*)d)[i] = ((const uint4*)s)[i];
		else if (w == 4) ((unsigned*)d)[i] = ((const unsigned*)s)[i];
		else ((u16*)d)[i] = ((const u16*)s)[i];
	}
}

// k_unpad copies rows of n values, ld apart in src, to rows n apart in dst: a padded output
// copied out where something other than a pick reads it (padout.go).
extern "C" __global__ void k_unpad(float* dst, const float* src, int n, int ld, long long total) {
	GRID_LOOP(i, total) {
		long long r = i / n;
		dst[i] = src[r * ld + (i - r * n)];
	}
}

// ld4 loads 4 consecutive elements at index i of an f32 (dt 0) or f16 (dt 1) array: one float4,
// or one 8-byte load of 4 halves.
__device__ __forceinline__ float4 ld4(const void* p, int dt, long long i) {
	if (dt == 0) return *(const float4*)((const float*)p + i);
	uint2 u = *(const uint2*)((const u16*)p + i);
	return make_float4(h2f((u16)(u.x & 0xffffu)), h2f((u16)(u.x >> 16)), h2f((u16)(u.y & 0xffffu)), h2f((u16)(u.y >> 16)));
}

// Attention, one block of 256 threads per (query row, head, batch), exact f32: scores in shared
// memory after D floats of the query, one key per thread. With probs != 0 it writes the softmax
// probabilities [B, H, Tq, kvLen] instead of the output. vec: K and V rows are 16-byte aligned
// (float4 loads).
extern "C" __global__ void __launch_bounds__(256) k_attn_rows(float* out, const float* q, const void* k, const void* v,
	int Tq, int Tk, int H, int D, int kvLen, float scale, int causal, int probs, int vec, int kvdt) {
	extern __shared__ float smem[];
	__shared__ float red[32];
	float* qs = smem;
	float* sc = smem + D;
	int i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
	int HD = H * D;
	int n = kvLen;
	if (causal) n = min(kvLen, i + kvLen - Tq + 1);
	const float* qr = q + ((long long)b * Tq + i) * HD + h * D;
	for (int e = threadIdx.x; e < D; e += blockDim.x) qs[e] = qr[e] * scale;
	__syncthreads();
	long long kb = (long long)b * Tk * HD + h * D;
	for (int j = threadIdx.x; j < n; j += blockDim.x) {
		long long kr = kb + (long long)j * HD;
		float s = 0.0f;
		if (vec) {
			for (int e = 0; e < D; e += 4) {
				float4 kv = ld4(k, kvdt, kr + e);
				s += qs[e] * kv.x + qs[e + 1] * kv.y + qs[e + 2] * kv.z + qs[e + 3] * kv.w;
			}
		} else {
			for (int e = 0; e < D; e++) s += qs[e] * ld(k, kvdt, kr + e);
		}
		sc[j] = s;
	}
	__syncthreads();
	float m = NEG_INF;
	for (int j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, sc[j]);
	m = block_max(m, red);
	float sum = 0.0f;
	for (int j = threadIdx.x; j < n; j += blockDim.x) { float p = expf(sc[j] - m); sc[j] = p; sum += p; }
	sum = block_sum(sum, red);
	float inv = n > 0 ? 1.0f / sum : 0.0f;
	if (probs) {
		float* pr = out + (((long long)b * H + h) * Tq + i) * kvLen;
		for (int j = threadIdx.x; j < kvLen; j += blockDim.x) pr[j] = j < n ? sc[j] * inv : 0.0f;
		return;
	}
	// Output: groups of threads each cover all D columns (4 per thread with vec) and sum over the
	// keys j = g (mod G); the groups combine through shared memory (sc is free once read).
	long long vb = (long long)b * Tk * HD + h * D;
	int per = vec ? D / 4 : D;
	int G = blockDim.x / per;
	int g = threadIdx.x / per, e = (threadIdx.x % per) * (vec ? 4 : 1);
	float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
	if (g < G) {
		if (vec) {
			for (int j = g; j < n; j += G) {
				float p = sc[j];
				float4 x = ld4(v, kvdt, vb + (long long)j * HD + e);
				a0 += p * x.x; a1 += p * x.y; a2 += p * x.z; a3 += p * x.w;
			}
		} else {
			for (int j = g; j < n; j += G) a0 += sc[j] * ld(v, kvdt, vb + (long long)j * HD + e);
		}
	}
	__syncthreads();
	if (g < G) {
		sc[g * D + e] = a0;
		if (vec) { sc[g * D + e + 1] = a1; sc[g * D + e + 2] = a2; sc[g * D + e + 3] = a3; }
	}
	__syncthreads();
	for (int c = threadIdx.x; c < D; c += blockDim.x) {
		float s = 0.0f;
		for (int gg = 0; gg < G; gg++) s += sc[gg * D + c];
		out[((long long)b * Tq + i) * HD + h * D + c] = s * inv;
	}
}

// Flash attention for head size 64 on tensor cores (mma.sync m16n8k16, f16 inputs, f32
// accumulation and softmax). Grid (ceil(Tq/128), H, B), 256 threads: each warp owns 16 query rows.
// Q, K and V are read as f32 and rounded to f16 on the way into registers / shared memory.
#define FA_D 64
#define FA_BQ 128
#define FA_THREADS 256
#define FA_BK 64
#define FA_PAD 8
__device__ __forceinline__ void mma16816(float* c, const u32* a, u32 b0, u32 b1) {
	asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
		: "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
		: "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void mma16816_bf(float* c, const u32* a, u32 b0, u32 b1) {
	asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
		: "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
		: "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// Two f32 to a pair of bf16 (lo in the low half), round to nearest even.
__device__ __forceinline__ u32 pack2bf(float lo, float hi) {
	u32 r;
	asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
	return r;
}

// Linear for up to 8 rows on the tensor cores: out[m, n] = act(x[m, :] . w[n, :] + bias[n])
// (+ resid[m, n]), x f32 rounded to the weight's type (f16 or bf16, as the GEMM paths round it),
// f32 accumulation; K % 32 == 0, x and w 16-byte aligned. A block of 1 to LM_MAXW warps computes
// 8 output columns; its warps take the 32-wide slices of K in turn and add their sums in shared
// memory. For one mma m16n8k16 the x rows are A (rows 8-15 zero) and the 8 weight rows are B.
// Each lane reads 16 contiguous bytes of its weight row (g = lane / 4) and 32 of its x row a
// slice, at offset 8 (lane % 4): the slice's two k-steps take those 8 positions in the same order
// for A and B (positions 8t, 8t+1 as k = 2t, 2t+1 and 8t+2, 8t+3 as 2t+8, 2t+9 in the first;
// 8t+4 to 8t+7 likewise in the second), so every product of the dot is made once.
#define LM_MAXW 8
extern "C" __global__ void __launch_bounds__(32 * LM_MAXW) k_linear_mma(void* out, int odt, const float* x, const u16* w, int wdt,
	const void* bias, int bdt, const float* resid, int gelu, int M, int N, int K) {
	__shared__ float part[LM_MAXW][8][8];
	int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
	int g = lane >> 2, t = lane & 3;
	int n0 = blockIdx.x * 8;
	int n = n0 + g;
	const uint4* wr = (const uint4*)(w + (long long)min(n, N - 1) * K) + t;
	const float4* xr = (const float4*)(x + (long long)min(g, M - 1) * K) + 2 * t;
	bool wok = n < N, xok = g < M;
	float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
	int slices = K >> 5;
#pragma unroll 4
	for (int sl = warp; sl < slices; sl += nw) {
		uint4 wv = wok ? __ldg(wr + 4 * sl) : make_uint4(0, 0, 0, 0);
		float4 xa = make_float4(0.0f, 0.0f, 0.0f, 0.0f), xb = xa;
		if (xok) { xa = __ldg(xr + 8 * sl); xb = __ldg(xr + 8 * sl + 1); }
		u32 a0[4], a1[4];
		if (wdt == 1) {
			a0[0] = pack2(xa.x, xa.y); a0[2] = pack2(xa.z, xa.w);
			a1[0] = pack2(xb.x, xb.y); a1[2] = pack2(xb.z, xb.w);
		} else {
			a0[0] = pack2bf(xa.x, xa.y); a0[2] = pack2bf(xa.z, xa.w);
			a1[0] = pack2bf(xb.x, xb.y); a1[2] = pack2bf(xb.z, xb.w);
		}
		a0[1] = a0[3] = a1[1] = a1[3] = 0;
		if (wdt == 1) {
			mma16816(c, a0, wv.x, wv.y);
			mma16816(c, a1, wv.z, wv.w);
		} else {
			mma16816_bf(c, a0, wv.x, wv.y);
			mma16816_bf(c, a1, wv.z, wv.w);
		}
	}
	// c[0], c[1]: x row g, output columns n0 + 2t, n0 + 2t + 1 (c[2], c[3]: the zero rows)
	part[warp][g][2 * t] = c[0];
	part[warp][g][2 * t + 1] = c[1];
	__syncthreads();
	for (int e = threadIdx.x; e < 64; e += blockDim.x) {
		int m = e >> 3, j = e & 7;
		int nn = n0 + j;
		if (m < M && nn < N) {
			float v = 0.0f;
			for (int q = 0; q < nw; q++) v += part[q][m][j];
			if (bias) v += ld(bias, bdt, nn);
			if (gelu) v = gelu_erf(v);
			long long o = (long long)m * N + nn;
			if (resid) v += resid[o];
			st(out, odt, o, v);
		}
	}
}

// flash_q loads a warp's A fragments of Q (rows r0 and r1 = r0 + 8 of an m16 tile; zeros past
// Tq) for the four k-steps of head size 64, rounded to f16.
__device__ __forceinline__ void flash_q(u32 qa[4][4], const float* qb, int HD, int Tq, int r0, int r1, int t) {
#pragma unroll
	for (int kc = 0; kc < 4; kc++) {
		int c = kc * 16 + 2 * t;
		float x00 = 0, x01 = 0, x10 = 0, x11 = 0, x02 = 0, x03 = 0, x12 = 0, x13 = 0;
		if (r0 < Tq) { const float* p = qb + (long long)r0 * HD; x00 = p[c]; x01 = p[c + 1]; x02 = p[c + 8]; x03 = p[c + 9]; }
		if (r1 < Tq) { const float* p = qb + (long long)r1 * HD; x10 = p[c]; x11 = p[c + 1]; x12 = p[c + 8]; x13 = p[c + 9]; }
		qa[kc][0] = pack2(x00, x01);
		qa[kc][1] = pack2(x10, x11);
		qa[kc][2] = pack2(x02, x03);
		qa[kc][3] = pack2(x12, x13);
	}
}

extern "C" __global__ void __launch_bounds__(FA_THREADS) k_attn_flash(float* out, const float* q, const void* k, const void* v,
	int Tq, int Tk, int H, int kvLen, float scale, int causal, int vec, int kvdt, u16* shadow) {
	__shared__ u16 Ks[FA_BK][FA_D + FA_PAD];
	__shared__ u16 Vt[FA_D][FA_BK + FA_PAD];
	int h = blockIdx.y, b = blockIdx.z;
	int HD = H * FA_D;
	int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
	int g = lane >> 2, t = lane & 3;
	int q0 = blockIdx.x * FA_BQ;
	int r0 = q0 + warp * 16 + g, r1 = r0 + 8; // this thread's two query rows
	const float* qb = q + (long long)b * Tq * HD + h * FA_D;
	long long kb = (long long)b * Tk * HD + h * FA_D;
	long long vb = kb;

	u32 qa[4][4];
	flash_q(qa, qb, HD, Tq, r0, r1, t);
	const float sl2 = scale * 1.4426950408889634f; // scores in log2 units
	float o[8][4];
#pragma unroll
	for (int i = 0; i < 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
	float m0 = NEG_INF, m1 = NEG_INF, l0 = 0.0f, l1 = 0.0f;
	int lim0 = causal ? r0 + kvLen - Tq : kvLen - 1; // last key each row may see
	int lim1 = causal ? r1 + kvLen - Tq : kvLen - 1;
	if (lim0 > kvLen - 1) lim0 = kvLen - 1;
	if (lim1 > kvLen - 1) lim1 = kvLen - 1;
	int kend = kvLen;
	if (causal) {
		int last = min(q0 + FA_BQ - 1, Tq - 1) + kvLen - Tq + 1;
		kend = min(kvLen, max(last, 0));
	}
	for (int k0 = 0; k0 < kend; k0 += FA_BK) {
		__syncthreads();
		if (vec) {
			for (int idx = threadIdx.x; idx < FA_BK * FA_D / 4; idx += FA_THREADS) {
				int key = idx >> 4, d = (idx & 15) * 4;
				float4 kv = make_float4(0.0f, 0.0f, 0.0f, 0.0f), vv = kv;
				if (k0 + key < kvLen) {
					kv = ld4(k, kvdt, kb + (long long)(k0 + key) * HD + d);
					vv = ld4(v, kvdt, vb + (long long)(k0 + key) * HD + d);
				}
				*(u32*)&Ks[key][d] = pack2(kv.x, kv.y);
				*(u32*)&Ks[key][d + 2] = pack2(kv.z, kv.w);
				Vt[d][key] = f2h(vv.x);
				Vt[d + 1][key] = f2h(vv.y);
				Vt[d + 2][key] = f2h(vv.z);
				Vt[d + 3][key] = f2h(vv.w);
			}
		} else {
			for (int idx = threadIdx.x; idx < FA_BK * FA_D; idx += FA_THREADS) {
				int key = idx >> 6, d = idx & 63;
				float kv = 0.0f, vv = 0.0f;
				if (k0 + key < kvLen) {
					kv = ld(k, kvdt, kb + (long long)(k0 + key) * HD + d);
					vv = ld(v, kvdt, vb + (long long)(k0 + key) * HD + d);
				}
				Ks[key][d] = f2h(kv);
				Vt[d][key] = f2h(vv);
			}
		}
		__syncthreads();
		float s[8][4];
#pragma unroll
		for (int n = 0; n < 8; n++) {
			s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
			for (int kc = 0; kc < 4; kc++) {
				u32 b0 = *(const u32*)&Ks[n * 8 + g][kc * 16 + 2 * t];
				u32 b1 = *(const u32*)&Ks[n * 8 + g][kc * 16 + 8 + 2 * t];
				mma16816(s[n], qa[kc], b0, b1);
			}
		}
		float mx0 = NEG_INF, mx1 = NEG_INF;
#pragma unroll
		for (int n = 0; n < 8; n++) {
			int key = k0 + n * 8 + 2 * t;
			s[n][0] = key <= lim0 ? s[n][0] * sl2 : NEG_INF;
			s[n][1] = key + 1 <= lim0 ? s[n][1] * sl2 : NEG_INF;
			s[n][2] = key <= lim1 ? s[n][2] * sl2 : NEG_INF;
			s[n][3] = key + 1 <= lim1 ? s[n][3] * sl2 : NEG_INF;
			mx0 = fmaxf(mx0, fmaxf(s[n][0], s[n][1]));
			mx1 = fmaxf(mx1, fmaxf(s[n][2], s[n][3]));
		}
		mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
		mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
		mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
		mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
		float nm0 = fmaxf(m0, mx0), nm1 = fmaxf(m1, mx1);
		float base0 = nm0 == NEG_INF ? 0.0f : nm0, base1 = nm1 == NEG_INF ? 0.0f : nm1;
		float al0 = exp2f(m0 - base0), al1 = exp2f(m1 - base1);
		m0 = nm0;
		m1 = nm1;
		float ps0 = 0.0f, ps1 = 0.0f;
#pragma unroll
		for (int n = 0; n < 8; n++) {
			s[n][0] = exp2f(s[n][0] - base0);
			s[n][1] = exp2f(s[n][1] - base0);
			s[n][2] = exp2f(s[n][2] - base1);
			s[n][3] = exp2f(s[n][3] - base1);
			ps0 += s[n][0] + s[n][1];
			ps1 += s[n][2] + s[n][3];
		}
		l0 = l0 * al0 + ps0;
		l1 = l1 * al1 + ps1;
#pragma unroll
		for (int dn = 0; dn < 8; dn++) {
			o[dn][0] *= al0; o[dn][1] *= al0;
			o[dn][2] *= al1; o[dn][3] *= al1;
		}
#pragma unroll
		for (int kc = 0; kc < 4; kc++) {
			u32 pa[4];
			pa[0] = pack2(s[2 * kc][0], s[2 * kc][1]);
			pa[1] = pack2(s[2 * kc][2], s[2 * kc][3]);
			pa[2] = pack2(s[2 * kc + 1][0], s[2 * kc + 1][1]);
			pa[3] = pack2(s[2 * kc + 1][2], s[2 * kc + 1][3]);
#pragma unroll
			for (int dn = 0; dn < 8; dn++) {
				u32 b0 = *(const u32*)&Vt[dn * 8 + g][kc * 16 + 2 * t];
				u32 b1 = *(const u32*)&Vt[dn * 8 + g][kc * 16 + 8 + 2 * t];
				mma16816(o[dn], pa, b0, b1);
			}
		}
	}
	l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
	l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
	l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
	l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
	float i0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, i1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
	float* ob = out + (long long)b * Tq * HD + h * FA_D;
#pragma unroll
	for (int dn = 0; dn < 8; dn++) {
		int c = dn * 8 + 2 * t;
		if (r0 < Tq) { ob[(long long)r0 * HD + c] = o[dn][0] * i0; ob[(long long)r0 * HD + c + 1] = o[dn][1] * i0; }
		if (r1 < Tq) { ob[(long long)r1 * HD + c] = o[dn][2] * i1; ob[(long long)r1 * HD + c + 1] = o[dn][3] * i1; }
		if (shadow) {
			u16* sb = shadow + (long long)b * Tq * HD + h * FA_D;
			if (r0 < Tq) *(u32*)&sb[(long long)r0 * HD + c] = pack2(o[dn][0] * i0, o[dn][1] * i0);
			if (r1 < Tq) *(u32*)&sb[(long long)r1 * HD + c] = pack2(o[dn][2] * i1, o[dn][3] * i1);
		}
	}
}

// Split-K ("flash-decoding") attention for head size 64 and a few query rows (decoding). Grid
// (splits, Tq*H, B), 128 threads. Block s covers keys [s*chunk, s*chunk+chunk) of its (query row,
// head, batch): a group of LPK lanes per key reads the key's 64 values with 16-byte loads (8 f16
// or 4 f32 each) and reduces the dot product by shuffles; scores go to shared memory, then the
// block's max, sum and unnormalised P.V. With one split the block writes the output (and the
// f16 shadow); otherwise it writes [o(64), m, l] (m in log2 units) to part for k_attn_combine.
#define AS_D 64
#define AS_THREADS 128
#define AS_MAXCHUNK 256
template <int HALF>
__device__ __forceinline__ void kv_load(const void* p, long long i, float* x) {
	if (HALF) {
		uint4 u = __ldg((const uint4*)((const u16*)p + i));
		u32 w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
		for (int j = 0; j < 4; j++) { x[2 * j] = h2f((u16)(w[j] & 0xffffu)); x[2 * j + 1] = h2f((u16)(w[j] >> 16)); }
	} else {
		float4 a = __ldg((const float4*)((const float*)p + i));
		x[0] = a.x; x[1] = a.y; x[2] = a.z; x[3] = a.w;
	}
}
template <int HALF>
__device__ __forceinline__ void attn_split(float* out, float* part, const float* q, const void* k, const void* v,
	int Tq, int Tk, int H, int kvLen, float scale, int causal, int chunk, u16* shadow) {
	constexpr int EPL = HALF ? 8 : 4;            // elements per lane (16 bytes)
	constexpr int LPK = AS_D / EPL;              // lanes per key: 8 or 16
	constexpr int KPW = 32 / LPK;                // keys per warp per pass: 4 or 2
	constexpr int NW = AS_THREADS / 32;
	constexpr int KPB = KPW * NW;                // keys per block per pass
	__shared__ float sc[AS_MAXCHUNK];
	__shared__ float red[32];
	__shared__ float accs[NW][AS_D];
	int s = blockIdx.x, y = blockIdx.y, b = blockIdx.z;
	int i = y / H, h = y - (y / H) * H;
	int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
	int sub = lane % LPK, kg = lane / LPK;
	int HD = H * AS_D;
	int n = kvLen;
	if (causal) n = min(kvLen, i + kvLen - Tq + 1);
	int k0 = s * chunk;
	int cnt = max(min(n, k0 + chunk) - k0, 0);
	const float sl2 = scale * 1.4426950408889634f; // scores in log2 units
	const float* qr = q + ((long long)b * Tq + i) * HD + h * AS_D + sub * EPL;
	float qv[EPL];
#pragma unroll
	for (int e = 0; e < EPL; e++) qv[e] = qr[e] * sl2;
	long long base = (long long)b * Tk * HD + h * AS_D + sub * EPL + (long long)k0 * HD;
	// Scores: the loop bound is uniform over the warp (the shuffles need every lane).
#pragma unroll 4
	for (int j0 = warp * KPW; j0 < cnt; j0 += KPB) {
		int j = j0 + kg;
		float x[EPL];
		if (j < cnt) kv_load<HALF>(k, base + (long long)j * HD, x);
		else {
#pragma unroll
			for (int e = 0; e < EPL; e++) x[e] = 0.0f;
		}
		float d = 0.0f;
#pragma unroll
		for (int e = 0; e < EPL; e++) d += qv[e] * x[e];
#pragma unroll
		for (int o = LPK / 2; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
		if (sub == 0 && j < cnt) sc[j] = d;
	}
	__syncthreads();
	float m = NEG_INF;
	for (int j = threadIdx.x; j < cnt; j += AS_THREADS) m = fmaxf(m, sc[j]);
	m = block_max(m, red);
	float l = 0.0f;
	for (int j = threadIdx.x; j < cnt; j += AS_THREADS) { float p = exp2f(sc[j] - m); sc[j] = p; l += p; }
	l = block_sum(l, red); // its barriers also publish sc
	float a[EPL];
#pragma unroll
	for (int e = 0; e < EPL; e++) a[e] = 0.0f;
#pragma unroll 4
	for (int j0 = warp * KPW; j0 < cnt; j0 += KPB) {
		int j = j0 + kg;
		if (j < cnt) {
			float p = sc[j];
			float x[EPL];
			kv_load<HALF>(v, base + (long long)j * HD, x);
#pragma unroll
			for (int e = 0; e < EPL; e++) a[e] += p * x[e];
		}
	}
#pragma unroll
	for (int o = LPK; o < 32; o <<= 1) {
#pragma unroll
		for (int e = 0; e < EPL; e++) a[e] += __shfl_xor_sync(0xffffffffu, a[e], o);
	}
	if (kg == 0) {
#pragma unroll
		for (int e = 0; e < EPL; e++) accs[warp][sub * EPL + e] = a[e];
	}
	__syncthreads();
	if (threadIdx.x < AS_D) {
		int d = threadIdx.x;
		float o = 0.0f;
#pragma unroll
		for (int w = 0; w < NW; w++) o += accs[w][d];
		if (gridDim.x == 1) {
			long long row = ((long long)b * Tq + i) * HD + h * AS_D + d;
			float r = l > 0.0f ? o / l : 0.0f;
			out[row] = r;
			if (shadow) shadow[row] = f2h(r);
		} else {
			float* pp = part + (((long long)b * gridDim.y + y) * gridDim.x + s) * (AS_D + 2);
			pp[d] = o;
			if (d == 0) { pp[AS_D] = m; pp[AS_D + 1] = l; }
		}
	}
}
extern "C" __global__ void __launch_bounds__(AS_THREADS) k_attn_split_h(float* out, float* part, const float* q, const void* k, const void* v,
	int Tq, int Tk, int H, int kvLen, float scale, int causal, int chunk, u16* shadow) {
	attn_split<1>(out, part, q, k, v, Tq, Tk, H, kvLen, scale, causal, chunk, shadow);
}
extern "C" __global__ void __launch_bounds__(AS_THREADS) k_attn_split_f(float* out, float* part, const float* q, const void* k, const void* v,
	int Tq, int Tk, int H, int kvLen, float scale, int causal, int chunk, u16* shadow) {
	attn_split<0>(out, part, q, k, v, Tq, Tk, H, kvLen, scale, causal, chunk, shadow);
}

// Split-K decoding attention of a group of G query rows against the same keys and values (beam
// search's beams of one window in cross-attention, non-causal): as attn_split, but a block covers
// every row of its (slice of chunk keys, head, batch), so each key and value is read once for
// the G rows instead of once a row. Grid (splits, H, B), 128 threads; rows past Tq (G rounds Tq
// up) are computed on zero queries and not written. Writes the output (one split) or the same
// partial results as attn_split (rows y = i*H + h of Tq*H) for k_attn_combine. With widx, group
// b reads the keys and values of window widx[b] (tensor.WindowAttention), else of window b.
#define AG_U 4 // keys a lane loads at once in attn_split_group
// group_write: output column d of group row g (o unnormalised, m and l its max and sum): the
// output and its f16 shadow with one split, else the split's partial result for k_attn_combine.
__device__ __forceinline__ void group_write(float* out, float* part, float o, float m, float l, int b, int g, int h,
	int d, int s, int splits, int Tq, int H, u16* shadow) {
	if (splits == 1) {
		long long row = ((long long)b * Tq + g) * H * AS_D + h * AS_D + d;
		float r = l > 0.0f ? o / l : 0.0f;
		out[row] = r;
		if (shadow) shadow[row] = f2h(r);
	} else {
		float* pp = part + (((long long)b * Tq * H + g * H + h) * splits + s) * (AS_D + 2);
		pp[d] = o;
		if (d == 0) { pp[AS_D] = m; pp[AS_D + 1] = l; }
	}
}
template <int HALF, int G>
__device__ __forceinline__ void attn_split_group(float* out, float* part, const float* q, const void* k, const void* v,
	const int* widx, int Tq, int Tk, int H, int kvLen, float scale, int chunk, u16* shadow) {
	constexpr int EPL = HALF ? 8 : 4;
	constexpr int LPK = AS_D / EPL;
	constexpr int KPW = 32 / LPK;
	constexpr int NW = AS_THREADS / 32;
	constexpr int KPB = KPW * NW;
	__shared__ float sc[G][AS_MAXCHUNK];
	__shared__ float ms[G], ls[G];
	__shared__ float accs[NW][G][AS_D];
	int s = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
	int splits = gridDim.x;
	int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
	int sub = lane % LPK, kg = lane / LPK;
	int HD = H * AS_D;
	int k0 = s * chunk;
	int cnt = max(min(kvLen, k0 + chunk) - k0, 0);
	const float sl2 = scale * 1.4426950408889634f;
	float qv[G][EPL];
#pragma unroll
	for (int g = 0; g < G; g++) {
		const float* qr = q + ((long long)b * Tq + g) * HD + h * AS_D + sub * EPL;
#pragma unroll
		for (int e = 0; e < EPL; e++) qv[g][e] = g < Tq ? qr[e] * sl2 : 0.0f;
	}
	long long base = (long long)(widx ? widx[b] : b) * Tk * HD + h * AS_D + sub * EPL + (long long)k0 * HD;
	// Each pass loads AG_U keys a lane before using any (AG_U passes of KPB keys, in the same
	// order as one at a time, so the same sums): with one 16-byte load in flight a lane, the
	// kernel read 32 windows' keys and values at 1.8 TB/s on an H100, with four at 2.1 (ncu).
	for (int j0 = warp * KPW; j0 < cnt; j0 += KPB * AG_U) {
		float x[AG_U][EPL];
#pragma unroll
		for (int u = 0; u < AG_U; u++) {
			int j = j0 + u * KPB + kg;
			if (j < cnt) kv_load<HALF>(k, base + (long long)j * HD, x[u]);
			else {
#pragma unroll
				for (int e = 0; e < EPL; e++) x[u][e] = 0.0f;
			}
		}
#pragma unroll
		for (int u = 0; u < AG_U; u++) {
			int j = j0 + u * KPB + kg;
			float d[G];
#pragma unroll
			for (int g = 0; g < G; g++) {
				d[g] = 0.0f;
#pragma unroll
				for (int e = 0; e < EPL; e++) d[g] += qv[g][e] * x[u][e];
			}
#pragma unroll
			for (int o = LPK / 2; o > 0; o >>= 1) {
#pragma unroll
				for (int g = 0; g < G; g++) d[g] += __shfl_xor_sync(0xffffffffu, d[g], o);
			}
			if (j < cnt) {
#pragma unroll
				for (int g = 0; g < G; g++)
					if (sub == g % LPK) sc[g][j] = d[g];
			}
		}
	}
	__syncthreads();
	// Softmax of each row: warp w takes rows w, w+NW, ...
	for (int g = warp; g < G; g += NW) {
		float m = NEG_INF;
		for (int j = lane; j < cnt; j += 32) m = fmaxf(m, sc[g][j]);
		m = warp_max(m);
		float l = 0.0f;
		for (int j = lane; j < cnt; j += 32) { float p = exp2f(sc[g][j] - m); sc[g][j] = p; l += p; }
		l = warp_sum(l);
		if (lane == 0) { ms[g] = m; ls[g] = l; }
	}
	__syncthreads();
	float a[G][EPL];
#pragma unroll
	for (int g = 0; g < G; g++)
#pragma unroll
		for (int e = 0; e < EPL; e++) a[g][e] = 0.0f;
	for (int j0 = warp * KPW; j0 < cnt; j0 += KPB * AG_U) {
		float x[AG_U][EPL];
#pragma unroll
		for (int u = 0; u < AG_U; u++) {
			int j = j0 + u * KPB + kg;
			if (j < cnt) kv_load<HALF>(v, base + (long long)j * HD, x[u]);
		}
#pragma unroll
		for (int u = 0; u < AG_U; u++) {
			int j = j0 + u * KPB + kg;
			if (j < cnt) {
#pragma unroll
				for (int g = 0; g < G; g++) {
					float p = sc[g][j];
#pragma unroll
					for (int e = 0; e < EPL; e++) a[g][e] += p * x[u][e];
				}
			}
		}
	}
#pragma unroll
	for (int o = LPK; o < 32; o <<= 1) {
#pragma unroll
		for (int g = 0; g < G; g++)
#pragma unroll
			for (int e = 0; e < EPL; e++) a[g][e] += __shfl_xor_sync(0xffffffffu, a[g][e], o);
	}
	if (kg == 0) {
#pragma unroll
		for (int g = 0; g < G; g++)
#pragma unroll
			for (int e = 0; e < EPL; e++) accs[warp][g][sub * EPL + e] = a[g][e];
	}
	__syncthreads();
	for (int t = threadIdx.x; t < Tq * AS_D; t += AS_THREADS) {
		int g = t / AS_D, d = t - g * AS_D;
		float o = 0.0f;
#pragma unroll
		for (int w = 0; w < NW; w++) o += accs[w][g][d];
		group_write(out, part, o, ms[g], ls[g], b, g, h, d, s, splits, Tq, H, shadow);
	}
}
#define ATTN_GROUP(G) \
extern "C" __global__ void __launch_bounds__(AS_THREADS) k_attn_group##G##_h(float* out, float* part, const float* q, const void* k, \
	const void* v, const int* widx, int Tq, int Tk, int H, int kvLen, float scale, int chunk, u16* shadow) { \
	attn_split_group<1, G>(out, part, q, k, v, widx, Tq, Tk, H, kvLen, scale, chunk, shadow); \
}
ATTN_GROUP(2)
ATTN_GROUP(4)
ATTN_GROUP(5)
ATTN_GROUP(8)

// Combines the splits of k_attn_split: grid (Tq*H, B), 64 threads (one per output column).
extern "C" __global__ void k_attn_combine(float* out, const float* part, int splits, int Tq, int H, u16* shadow) {
	int y = blockIdx.x, b = blockIdx.y, d = threadIdx.x;
	const float* pp = part + ((long long)b * gridDim.x + y) * splits * (AS_D + 2);
	float M = NEG_INF;
	for (int s = 0; s < splits; s++) M = fmaxf(M, pp[s * (AS_D + 2) + AS_D]);
	float L = 0.0f, o = 0.0f;
	for (int s = 0; s < splits; s++) {
		const float* p = pp + s * (AS_D + 2);
		float ms = p[AS_D];
		if (ms == NEG_INF) continue; // an empty split (causal rows, or past kvLen)
		float w = exp2f(ms - M);
		L += p[AS_D + 1] * w;
		o += p[d] * w;
	}
	int i = y / H, h = y - (y / H) * H;
	long long row = ((long long)b * Tq + i) * H * AS_D + h * AS_D + d;
	float r = L > 0.0f ? o / L : 0.0f;
	out[row] = r;
	if (shadow) shadow[row] = f2h(r);
}

// Helpers of the f16 flash and decoding attention kernels: shared-memory addresses, cp.async.
__device__ __forceinline__ u32 smem_addr(const void* p) {
	u32 r;
	asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(r) : "l"(p));
	return r;
}
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int bytes) {
	asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(smem_addr(dst)), "l"(src), "r"(bytes) : "memory");
}
// 2^x with flush-to-zero (one MUFU op; exp2f adds a denormal fix-up around it).
__device__ __forceinline__ float ex2f(float x) { float r; asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x)); return r; }
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;"); }
__device__ __forceinline__ void cp_async_wait1() { asm volatile("cp.async.wait_group 1;" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait0() { asm volatile("cp.async.wait_group 0;" ::: "memory"); }
// ldmatrix.x4 of four 8x8 f16 matrices from shared memory (lanes 8m..8m+7 give matrix m's row
// addresses), as they are (ldsm4) or transposed (ldsm4t): an mma's B fragments.
__device__ __forceinline__ void ldsm4(u32& b0, u32& b1, u32& b2, u32& b3, const void* p) {
	asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
		: "=r"(b0), "=r"(b1), "=r"(b2), "=r"(b3) : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm4t(u32& b0, u32& b1, u32& b2, u32& b3, const void* p) {
	asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
		: "=r"(b0), "=r"(b1), "=r"(b2), "=r"(b3) : "r"(smem_addr(p)));
}

// Flash attention for head size 64 with f16 K and V (16-byte aligned rows): as k_attn_flash,
// but the K/V tiles are copied to shared memory with cp.async (16 bytes, no conversion),
// double-buffered so that the next tile loads while this one computes, and V stays row-major:
// its B fragments for P.V come from ldmatrix.trans. Each warp takes 32 query rows (two m16
// tiles; 4 warps a 128-row block), so each K or V fragment read from shared memory (ldmatrix)
// feeds two mma, one a tile: with 16 rows a warp (k_attn_flash_h until 640a644: the same
// products and sums, 0 apart in TestAttentionFlashF16) a call of turbo's encoder took 625 us
// against 541 (ncu, H100, 8 windows), at 128 registers against 255. BK keys a tile (64).
#define FW_THREADS 128
template <int BK>
__device__ __forceinline__ void attn_flash_w(float* out, const float* q, const u16* k, const u16* v,
	int Tq, int Tk, int H, int kvLen, float scale, int causal, u16* shadow) {
	__shared__ __align__(16) u16 Ks[2][BK][FA_D + FA_PAD];
	__shared__ __align__(16) u16 Vs[2][BK][FA_D + FA_PAD];
	int h = blockIdx.y, b = blockIdx.z;
	int HD = H * FA_D;
	int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
	int g = lane >> 2, t = lane & 3;
	int q0 = blockIdx.x * FA_BQ;
	// the thread's rows: rb + 8j for j = 0..3; tile mt holds j = 2mt (fragment halves 0, 1) and
	// j = 2mt + 1 (halves 2, 3)
	int rb = q0 + warp * 32 + g;
	const float* qb = q + (long long)b * Tq * HD + h * FA_D;
	const u16* kb = k + (long long)b * Tk * HD + h * FA_D;
	const u16* vb = v + (long long)b * Tk * HD + h * FA_D;

	int kend = kvLen;
	if (causal) {
		int last = min(q0 + FA_BQ - 1, Tq - 1) + kvLen - Tq + 1;
		kend = min(kvLen, max(last, 0));
	}
	int ntiles = (kend + BK - 1) / BK;
	auto load = [&](int tile, int buf) {
		int k0 = tile * BK;
		for (int c = threadIdx.x; c < BK * FA_D / 8; c += FW_THREADS) {
			int key = c >> 3, d = (c & 7) * 8;
			bool in = k0 + key < kvLen;
			long long off = in ? (long long)(k0 + key) * HD + d : 0;
			cp_async16(&Ks[buf][key][d], kb + off, in ? 16 : 0);
			cp_async16(&Vs[buf][key][d], vb + off, in ? 16 : 0);
		}
		cp_async_commit();
	};
	if (ntiles > 0) load(0, 0);

	u32 qa[2][4][4];
#pragma unroll
	for (int mt = 0; mt < 2; mt++) flash_q(qa[mt], qb, HD, Tq, rb + 16 * mt, rb + 16 * mt + 8, t);
	const float sl2 = scale * 1.4426950408889634f;
	float o[2][8][4];
#pragma unroll
	for (int mt = 0; mt < 2; mt++)
#pragma unroll
		for (int i = 0; i < 8; i++) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.0f;
	float m[4], l[4];
	int lim[4];
#pragma unroll
	for (int j = 0; j < 4; j++) {
		m[j] = NEG_INF;
		l[j] = 0.0f;
		lim[j] = causal ? rb + 8 * j + kvLen - Tq : kvLen - 1;
		if (lim[j] > kvLen - 1) lim[j] = kvLen - 1;
	}
	// ldmatrix.x4 (K, not transposed) row addresses: lanes 8m..8m+7 give keys lane & 7 of an
	// 8-key slice, dimensions 8m of a 32-dimension half: the b0, b1 of two k-steps
	int kkey = lane & 7, kcol = (lane >> 3) * 8;
	// ldmatrix.x4.trans (V) row addresses: lanes 8m..8m+7 give keys (m & 1) * 8 + (lane & 7) of
	// a 16-key slice, values (m >> 1) * 8 of a pair of 8-column blocks
	int lkey = ((lane >> 3) & 1) * 8 + (lane & 7), lcol = (lane >> 4) * 8;
	for (int tile = 0; tile < ntiles; tile++) {
		int buf = tile & 1;
		if (tile + 1 < ntiles) {
			load(tile + 1, buf ^ 1);
			cp_async_wait1();
		} else {
			cp_async_wait0();
		}
		__syncthreads();
		int k0 = tile * BK;
		float s[2][BK / 8][4];
#pragma unroll
		for (int n = 0; n < BK / 8; n++) {
#pragma unroll
			for (int mt = 0; mt < 2; mt++) s[mt][n][0] = s[mt][n][1] = s[mt][n][2] = s[mt][n][3] = 0.0f;
#pragma unroll
			for (int kh = 0; kh < 2; kh++) {
				u32 b0, b1, b2, b3;
				ldsm4(b0, b1, b2, b3, &Ks[buf][n * 8 + kkey][kh * 32 + kcol]);
#pragma unroll
				for (int mt = 0; mt < 2; mt++) {
					mma16816(s[mt][n], qa[mt][2 * kh], b0, b1);
					mma16816(s[mt][n], qa[mt][2 * kh + 1], b2, b3);
				}
			}
		}
		float al[4];
#pragma unroll
		for (int j = 0; j < 4; j++) {
			int mt = j >> 1, e = (j & 1) * 2;
			float mx = NEG_INF;
#pragma unroll
			for (int n = 0; n < BK / 8; n++) {
				int key = k0 + n * 8 + 2 * t;
				s[mt][n][e] = key <= lim[j] ? s[mt][n][e] * sl2 : NEG_INF;
				s[mt][n][e + 1] = key + 1 <= lim[j] ? s[mt][n][e + 1] * sl2 : NEG_INF;
				mx = fmaxf(mx, fmaxf(s[mt][n][e], s[mt][n][e + 1]));
			}
			mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
			mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
			float nm = fmaxf(m[j], mx);
			float base = nm == NEG_INF ? 0.0f : nm;
			al[j] = ex2f(m[j] - base);
			m[j] = nm;
			float ps = 0.0f;
#pragma unroll
			for (int n = 0; n < BK / 8; n++) {
				s[mt][n][e] = ex2f(s[mt][n][e] - base);
				s[mt][n][e + 1] = ex2f(s[mt][n][e + 1] - base);
				ps += s[mt][n][e] + s[mt][n][e + 1];
			}
			l[j] = l[j] * al[j] + ps;
		}
#pragma unroll
		for (int mt = 0; mt < 2; mt++)
#pragma unroll
			for (int dn = 0; dn < 8; dn++) {
				o[mt][dn][0] *= al[2 * mt]; o[mt][dn][1] *= al[2 * mt];
				o[mt][dn][2] *= al[2 * mt + 1]; o[mt][dn][3] *= al[2 * mt + 1];
			}
#pragma unroll
		for (int kc = 0; kc < BK / 16; kc++) {
			u32 pa[2][4];
#pragma unroll
			for (int mt = 0; mt < 2; mt++) {
				pa[mt][0] = pack2(s[mt][2 * kc][0], s[mt][2 * kc][1]);
				pa[mt][1] = pack2(s[mt][2 * kc][2], s[mt][2 * kc][3]);
				pa[mt][2] = pack2(s[mt][2 * kc + 1][0], s[mt][2 * kc + 1][1]);
				pa[mt][3] = pack2(s[mt][2 * kc + 1][2], s[mt][2 * kc + 1][3]);
			}
#pragma unroll
			for (int dn = 0; dn < 8; dn += 2) {
				u32 b0, b1, b2, b3;
				ldsm4t(b0, b1, b2, b3, &Vs[buf][kc * 16 + lkey][dn * 8 + lcol]);
#pragma unroll
				for (int mt = 0; mt < 2; mt++) {
					mma16816(o[mt][dn], pa[mt], b0, b1);
					mma16816(o[mt][dn + 1], pa[mt], b2, b3);
				}
			}
		}
		__syncthreads(); // the next iteration's load overwrites this buffer
	}
	// A null out writes the f16 values alone (AttentionHalf: shadow is out's own buffer, packed).
	float* ob = out ? out + (long long)b * Tq * HD + h * FA_D : 0;
	u16* sb = shadow ? shadow + (long long)b * Tq * HD + h * FA_D : 0;
#pragma unroll
	for (int j = 0; j < 4; j++) {
		float lj = l[j];
		lj += __shfl_xor_sync(0xffffffffu, lj, 1);
		lj += __shfl_xor_sync(0xffffffffu, lj, 2);
		float inv = lj > 0.0f ? 1.0f / lj : 0.0f;
		int r = rb + 8 * j, mt = j >> 1, e = (j & 1) * 2;
		if (r >= Tq) continue;
#pragma unroll
		for (int dn = 0; dn < 8; dn++) {
			int c = dn * 8 + 2 * t;
			float a0 = o[mt][dn][e] * inv, a1 = o[mt][dn][e + 1] * inv;
			if (ob) {
				ob[(long long)r * HD + c] = a0;
				ob[(long long)r * HD + c + 1] = a1;
			}
			if (sb) *(u32*)&sb[(long long)r * HD + c] = pack2(a0, a1);
		}
	}
}
extern "C" __global__ void __launch_bounds__(FW_THREADS) k_attn_flash_w(float* out, const float* q, const u16* k, const u16* v,
	int Tq, int Tk, int H, int kvLen, float scale, int causal, u16* shadow) {
	attn_flash_w<FA_BK>(out, q, k, v, Tq, Tk, H, kvLen, scale, causal, shadow);
}

// Split-K decoding attention of up to 8 query rows against the same keys and values (beam
// search's beams of one window in cross-attention) on the tensor cores: as attn_split_group (grid
// (splits, H, B), 128 threads, the same partial results for k_attn_combine), but each warp takes
// 64 of the block's chunk keys and computes their scores and its share of P.V with mma.sync
// m16n8k16, the rows as A (rows Tq..15 zero). The scores' B fragments come straight from global
// memory: lane (g, t) reads dimensions [16t, 16t+16) of key g of an 8-key tile (two 16-byte
// loads), whose pairs are the k-steps' b0/b1 in the order that q's A fragments take the same
// dimensions (as k_linear_mma pairs them). The values are copied to shared memory (cp.async) as
// the block starts and read with ldmatrix.trans, as in k_attn_flash_w. q and the probabilities
// are rounded to f16 for the products (f32 accumulation, softmax in f32), as in the flash
// kernel; the warps' maxima, sums and outputs are merged in shared memory.
#define GM_KEYS 64 // keys a warp
#define GM_VST 72  // the values' row stride in shared memory (f16): ldmatrix rows 144 bytes apart
extern "C" __global__ void __launch_bounds__(AS_THREADS) k_attn_gmma_h(float* out, float* part, const float* q, const u16* k,
	const u16* v, const int* widx, int Tq, int Tk, int H, int kvLen, float scale, int chunk, u16* shadow) {
	constexpr int NW = AS_THREADS / 32;
	__shared__ __align__(16) u16 Vs[NW][GM_KEYS][GM_VST];
	__shared__ float wm[NW][8], wl[NW][8];
	__shared__ float wo[NW][8][AS_D];
	int s = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
	int splits = gridDim.x;
	int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
	int g = lane >> 2, t = lane & 3;
	int HD = H * AS_D;
	int k0 = s * chunk + warp * GM_KEYS; // this warp's first key
	int cnt = max(min(min(kvLen, s * chunk + chunk) - k0, GM_KEYS), 0);
	long long base = (long long)(widx ? widx[b] : b) * Tk * HD + h * AS_D + (long long)k0 * HD;
	// The values: 64 keys x 128 bytes = 512 copies of 16 bytes a warp, zero past cnt.
	for (int c = lane; c < GM_KEYS * 8; c += 32) {
		int j = c >> 3, p = (c & 7) * 8;
		bool in = j < cnt;
		cp_async16(&Vs[warp][j][p], v + (in ? base + (long long)j * HD + p : 0), in ? 16 : 0);
	}
	cp_async_commit();
	const float sl2 = scale * 1.4426950408889634f;
	// q's A fragments: row g, dimensions 16t + 4kc + {0,1} (a0) and + {2,3} (a2); rows 8-15 zero.
	u32 qa[4][4];
	{
		float x[16];
		const float* qr = q + ((long long)b * Tq + g) * HD + h * AS_D + 16 * t;
#pragma unroll
		for (int e = 0; e < 16; e++) x[e] = g < Tq ? qr[e] : 0.0f;
#pragma unroll
		for (int kc = 0; kc < 4; kc++) {
			qa[kc][0] = pack2(x[4 * kc], x[4 * kc + 1]);
			qa[kc][1] = 0u;
			qa[kc][2] = pack2(x[4 * kc + 2], x[4 * kc + 3]);
			qa[kc][3] = 0u;
		}
	}
	// Scores of 8 tiles of 8 keys: lane (g, t) holds row g's keys 8n + 2t and 8n + 2t + 1.
	float sc[8][4];
#pragma unroll
	for (int h4 = 0; h4 < 2; h4++) {
		uint4 kb[4][2];
#pragma unroll
		for (int n = 0; n < 4; n++) {
			int j = (h4 * 4 + n) * 8 + g;
			if (j < cnt) {
				const uint4* kp = (const uint4*)(k + base + (long long)j * HD + 16 * t);
				kb[n][0] = __ldg(kp);
				kb[n][1] = __ldg(kp + 1);
			} else {
				kb[n][0] = make_uint4(0u, 0u, 0u, 0u);
				kb[n][1] = kb[n][0];
			}
		}
#pragma unroll
		for (int n = 0; n < 4; n++) {
			float* c = sc[h4 * 4 + n];
			c[0] = c[1] = c[2] = c[3] = 0.0f;
			u32 w[8] = {kb[n][0].x, kb[n][0].y, kb[n][0].z, kb[n][0].w, kb[n][1].x, kb[n][1].y, kb[n][1].z, kb[n][1].w};
#pragma unroll
			for (int kc = 0; kc < 4; kc++) mma16816(c, qa[kc], w[2 * kc], w[2 * kc + 1]);
		}
	}
	float m = NEG_INF;
#pragma unroll
	for (int n = 0; n < 8; n++) {
		int j = n * 8 + 2 * t;
		sc[n][0] = j < cnt ? sc[n][0] * sl2 : NEG_INF;
		sc[n][1] = j + 1 < cnt ? sc[n][1] * sl2 : NEG_INF;
		m = fmaxf(m, fmaxf(sc[n][0], sc[n][1]));
	}
	m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));
	m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
	float base2 = m == NEG_INF ? 0.0f : m;
	float l = 0.0f;
#pragma unroll
	for (int n = 0; n < 8; n++) {
		sc[n][0] = ex2f(sc[n][0] - base2);
		sc[n][1] = ex2f(sc[n][1] - base2);
		l += sc[n][0] + sc[n][1];
	}
	l += __shfl_xor_sync(0xffffffffu, l, 1);
	l += __shfl_xor_sync(0xffffffffu, l, 2);
	cp_async_wait0();
	__syncwarp();
	// P.V: A = the probabilities (row g; rows 8-15 zero), B = the values through ldmatrix.trans.
	float o[8][4];
#pragma unroll
	for (int i = 0; i < 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
	int lkey = ((lane >> 3) & 1) * 8 + (lane & 7), lcol = (lane >> 4) * 8;
#pragma unroll
	for (int kc = 0; kc < 4; kc++) {
		u32 pa[4];
		pa[0] = pack2(sc[2 * kc][0], sc[2 * kc][1]);
		pa[1] = 0u;
		pa[2] = pack2(sc[2 * kc + 1][0], sc[2 * kc + 1][1]);
		pa[3] = 0u;
#pragma unroll
		for (int dn = 0; dn < 8; dn += 2) {
			u32 b0, b1, b2, b3;
			ldsm4t(b0, b1, b2, b3, &Vs[warp][kc * 16 + lkey][dn * 8 + lcol]);
			mma16816(o[dn], pa, b0, b1);
			mma16816(o[dn + 1], pa, b2, b3);
		}
	}
	// Each warp's rows to shared memory (row g: columns 8dn + 2t, +1), then the block's merge.
	if (t == 0) { wm[warp][g] = m; wl[warp][g] = l; }
#pragma unroll
	for (int dn = 0; dn < 8; dn++) {
		wo[warp][g][dn * 8 + 2 * t] = o[dn][0];
		wo[warp][g][dn * 8 + 2 * t + 1] = o[dn][1];
	}
	__syncthreads();
	for (int i = threadIdx.x; i < Tq * AS_D; i += AS_THREADS) {
		int r = i / AS_D, d = i - r * AS_D;
		float M = NEG_INF;
#pragma unroll
		for (int w = 0; w < NW; w++) M = fmaxf(M, wm[w][r]);
		float L = 0.0f, O = 0.0f;
		if (M != NEG_INF) {
#pragma unroll
			for (int w = 0; w < NW; w++) {
				if (wm[w][r] == NEG_INF) continue;
				float f = ex2f(wm[w][r] - M);
				L += wl[w][r] * f;
				O += wo[w][r][d] * f;
			}
		}
		group_write(out, part, O, M, L, b, r, h, d, s, splits, Tq, H, shadow);
	}
}

// ---- greedy pick (tensor.RowPicker) ------------------------------------------------------------
// Every pick kernel reads row r of the logits at logits + r * ld (ld = V, or the padded GEMM
// output's width where the LM head wrote a padded output: padout.go).
// One block of PICK_T threads a row of V logits. info[row * PICK_STRIDE]: mask (bitmap index or
// -1), tsBegin, tsRule, nRanges, then nRanges [from, to) pairs. A token is allowed unless its
// bit is set in the row's bitmap or it is in a range; with tsRule, if the log-sum-exp of the
// allowed logits from tsBegin on beats the largest allowed logit before it, the tokens before
// tsBegin are forbidden too. Out per row: the argmax (first on ties, -1 if none), its
// log-probability among the allowed tokens, and the argmax from tsBegin on (-1 if none).
#define PICK_T 256
#define PICK_MAXR 8
#define PICK_STRIDE (4 + 2 * PICK_MAXR)

__device__ __forceinline__ void lse_merge(float& m, float& s, float m2, float s2) {
	if (m2 > m) { s = s * __expf(m - m2) + s2; m = m2; }
	else if (m2 > NEG_INF) { s += s2 * __expf(m2 - m); }
}

__device__ __forceinline__ void arg_merge(float& v, int& i, float v2, int i2) {
	if (i2 >= 0 && (i < 0 || v2 > v || (v2 == v && i2 < i))) { v = v2; i = i2; }
}

// block-wide reductions over the block's threads (a multiple of 32, at most 1024) through
// shared scratch of one slot a warp
__device__ void pick_reduce_lse(float& m, float& s, float* sm, float* ss) {
	for (int o = 16; o > 0; o >>= 1) {
		float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
		lse_merge(m, s, m2, s2);
	}
	int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
	__syncthreads();
	if (l == 0) { sm[w] = m; ss[w] = s; }
	__syncthreads();
	m = l < nw ? sm[l] : NEG_INF;
	s = l < nw ? ss[l] : 0.f;
	for (int o = 16; o > 0; o >>= 1) {
		float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
		lse_merge(m, s, m2, s2);
	}
}

__device__ void pick_reduce_arg(float& v, int& i, float* sv, int* si) {
	for (int o = 16; o > 0; o >>= 1) {
		float v2 = __shfl_xor_sync(0xffffffffu, v, o);
		int i2 = __shfl_xor_sync(0xffffffffu, i, o);
		arg_merge(v, i, v2, i2);
	}
	int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
	__syncthreads();
	if (l == 0) { sv[w] = v; si[w] = i; }
	__syncthreads();
	v = l < nw ? sv[l] : NEG_INF;
	i = l < nw ? si[l] : -1;
	for (int o = 16; o > 0; o >>= 1) {
		float v2 = __shfl_xor_sync(0xffffffffu, v, o);
		int i2 = __shfl_xor_sync(0xffffffffu, i, o);
		arg_merge(v, i, v2, i2);
	}
}

__device__ __forceinline__ bool pick_in_ranges(const int* in, int nr, int i) {
	for (int r = 0; r < nr; r++)
		if (i >= in[4 + 2 * r] && i < in[5 + 2 * r]) return true;
	return false;
}

__device__ __forceinline__ bool pick_allowed(const unsigned* bm, const int* in, int nr, int i) {
	return !(bm && ((bm[i >> 5] >> (i & 31)) & 1u)) && !pick_in_ranges(in, nr, i);
}

// pick_load loads a thread's next PICK_U logits of a row (i0, i0+step, ...; -Inf past V) and
// their bitmap words (0 without a bitmap) before any is used: with one load at a time in flight
// the candidates of 160 rows took 225 us on an H100, with four 179 us (ncu). The tokens are then
// taken in the same order as one at a time, so the same sums and picks.
#define PICK_U 4
__device__ __forceinline__ void pick_load(const float* x, int V, const unsigned* bm, int i0, int step, float* xv, unsigned* bw) {
#pragma unroll
	for (int u = 0; u < PICK_U; u++) {
		int i = i0 + u * step;
		xv[u] = i < V ? x[i] : NEG_INF;
		bw[u] = bm && i < V ? bm[i >> 5] : 0u;
	}
}

// pick_text_off is the picks' first pass: with the timestamp rule, whether the log-sum-exp of
// the allowed timestamps beats the largest allowed text logit (then no text token may be picked).
// rule is the same for the whole block, so its reductions are reached by every thread or none.
__device__ bool pick_text_off(const float* x, int V, const unsigned* bm, const int* in, int nr, int tb, int rule,
                              float* sm, float* ss, int* si) {
	if (!rule) return false;
	float mt = NEG_INF, m = NEG_INF, s = 0.f;
	const int step = blockDim.x;
	for (int i0 = threadIdx.x; i0 < V; i0 += step * PICK_U) {
		float xv[PICK_U]; unsigned bw[PICK_U];
		pick_load(x, V, bm, i0, step, xv, bw);
#pragma unroll
		for (int u = 0; u < PICK_U; u++) {
			int i = i0 + u * step;
			if (i >= V) break;
			if (((bw[u] >> (i & 31)) & 1u) || pick_in_ranges(in, nr, i)) continue;
			float v = xv[u];
			if (i < tb) mt = fmaxf(mt, v);
			else lse_merge(m, s, v, 1.f);
		}
	}
	int dummy = 0; // the max over the block: the arg reduction with a constant index
	pick_reduce_arg(mt, dummy, sm, si);
	pick_reduce_lse(m, s, sm, ss);
	float lts = s > 0.f ? m + __logf(s) : NEG_INF;
	return lts > mt;
}

extern "C" __global__ void k_pick(const float* logits, int V, int ld, const unsigned* bitmaps, int words,
                                  const int* info, int* out) {
	__shared__ float sm[PICK_T / 32], ss[PICK_T / 32];
	__shared__ int si[PICK_T / 32];
	const int row = blockIdx.x;
	const int* in = info + (long long)row * PICK_STRIDE;
	const int mk = in[0], tb = in[1], rule = in[2], nr = in[3];
	const float* x = logits + (long long)row * ld;
	const unsigned* bm = mk >= 0 ? bitmaps + (long long)mk * words : 0;
	const bool textOff = pick_text_off(x, V, bm, in, nr, tb, rule, sm, ss, si);
	// pass 2: argmax and log-sum-exp over what is allowed; argmax over the timestamps
	float bv = NEG_INF, tv = NEG_INF; int bi = -1, ti = -1;
	float m = NEG_INF, s = 0.f;
	for (int i = threadIdx.x; i < V; i += PICK_T) {
		if (!pick_allowed(bm, in, nr, i)) continue;
		if (textOff && i < tb) continue;
		float v = x[i];
		if (!(v > NEG_INF)) continue;
		lse_merge(m, s, v, 1.f);
		arg_merge(bv, bi, v, i);
		if (i >= tb) arg_merge(tv, ti, v, i);
	}
	pick_reduce_lse(m, s, sm, ss);
	pick_reduce_arg(bv, bi, sm, si);
	pick_reduce_arg(tv, ti, sm, si);
	if (threadIdx.x == 0) {
		out[row * 3] = bi;
		out[row * 3 + 1] = __float_as_int(bi >= 0 ? bv - (m + logf(s)) : 0.f);
		out[row * 3 + 2] = ti;
	}
}

// ---- beam search's candidates (tensor.TopPicker) -----------------------------------------------
// k_pick, and each row's k best tokens (k <= PICK_MAXK): the masked row's largest logits first,
// the lower index first on ties, forbidden tokens (masked to -Inf) after every allowed one. One
// block of PICK_TOP_T threads a row (a beam batch has few rows, and each thread's share of the
// row is read serially: 1024 threads, not k_pick's 256). Each thread keeps its own PICK_MAXK
// best of the tokens it reads (i = threadIdx.x mod PICK_TOP_T), sorted, in registers (unrolled
// compare-and-swap, no indexing at run time); then k rounds of a block-wide argmax over the
// threads' heads take the best k, the winner's owner shifting its list by one. Out per row,
// PICK_TOP_STRIDE ints: k_pick's three, then k (token, log-probability bits); past the row's end
// (k > V), token -1 at -Inf.
#define PICK_MAXK 8
#define PICK_TOP_STRIDE (3 + 2 * PICK_MAXK)
#define PICK_TOP_T 1024

// pick_top_insert puts (v, i) into a thread's sorted list of its best PICK_MAXK tokens (unrolled
// compare-and-swap, no indexing at run time). The thread's tokens come in increasing index, so
// an equal value goes after the earlier index; an empty slot (index -1) takes any token.
__device__ __forceinline__ void pick_top_insert(float (&kv)[PICK_MAXK], int (&ki)[PICK_MAXK], float v, int i) {
	if (ki[PICK_MAXK - 1] < 0 || v > kv[PICK_MAXK - 1]) {
		float cv = v; int ci = i;
#pragma unroll
		for (int j = 0; j < PICK_MAXK; j++) {
			if (ki[j] < 0 || cv > kv[j]) {
				float tv2 = kv[j]; int ti2 = ki[j];
				kv[j] = cv; ki[j] = ci; cv = tv2; ci = ti2;
			}
		}
	}
}

// pick_top_out writes a row's pick (bi, its logit bv, the best timestamp ti) and then its k best
// tokens: k rounds of a block-wide argmax over the threads' list heads, the winner's owner (the
// thread whose indices are its own mod PICK_TOP_T) shifting its list by one.
__device__ __forceinline__ void pick_top_out(float (&kv)[PICK_MAXK], int (&ki)[PICK_MAXK], int k, float lse,
	float bv, int bi, int ti, int* o, float* sm, int* si) {
	if (threadIdx.x == 0) {
		o[0] = bi;
		o[1] = __float_as_int(bi >= 0 ? bv - lse : 0.f);
		o[2] = ti;
	}
	for (int r = 0; r < k; r++) {
		float v = kv[0];
		int i = ki[0];
		pick_reduce_arg(v, i, sm, si);
		if (i >= 0 && i % PICK_TOP_T == (int)threadIdx.x) {
#pragma unroll
			for (int j = 0; j < PICK_MAXK - 1; j++) { kv[j] = kv[j + 1]; ki[j] = ki[j + 1]; }
			kv[PICK_MAXK - 1] = NEG_INF; ki[PICK_MAXK - 1] = -1;
		}
		if (threadIdx.x == 0) {
			o[3 + 2 * r] = i;
			o[4 + 2 * r] = __float_as_int(i >= 0 ? v - lse : NEG_INF);
		}
	}
}

extern "C" __global__ void __launch_bounds__(PICK_TOP_T) k_pick_top(const float* logits, int V, int ld, const unsigned* bitmaps, int words,
                                      const int* info, int k, int* out) {
	__shared__ float sm[32], ss[32];
	__shared__ int si[32];
	const int row = blockIdx.x;
	const int* in = info + (long long)row * PICK_STRIDE;
	const int mk = in[0], tb = in[1], rule = in[2], nr = in[3];
	const float* x = logits + (long long)row * ld;
	const unsigned* bm = mk >= 0 ? bitmaps + (long long)mk * words : 0;
	const bool textOff = pick_text_off(x, V, bm, in, nr, tb, rule, sm, ss, si);
	// pass 2: k_pick's argmax, log-sum-exp and best timestamp, and the thread's best PICK_MAXK
	float bv = NEG_INF, tv = NEG_INF; int bi = -1, ti = -1;
	float kv[PICK_MAXK]; int ki[PICK_MAXK];
#pragma unroll
	for (int j = 0; j < PICK_MAXK; j++) { kv[j] = NEG_INF; ki[j] = -1; }
	float m = NEG_INF, s = 0.f;
	for (int i0 = threadIdx.x; i0 < V; i0 += PICK_TOP_T * PICK_U) {
		float xv[PICK_U]; unsigned bw[PICK_U];
		pick_load(x, V, bm, i0, PICK_TOP_T, xv, bw);
#pragma unroll
		for (int u = 0; u < PICK_U; u++) {
			int i = i0 + u * PICK_TOP_T;
			if (i >= V) break;
			bool ok = !((bw[u] >> (i & 31)) & 1u) && !pick_in_ranges(in, nr, i) && !(textOff && i < tb);
			float v = ok ? xv[u] : NEG_INF;
			if (ok && v > NEG_INF) {
				lse_merge(m, s, v, 1.f);
				arg_merge(bv, bi, v, i);
				if (i >= tb) arg_merge(tv, ti, v, i);
			}
			pick_top_insert(kv, ki, v, i);
		}
	}
	pick_reduce_lse(m, s, sm, ss);
	pick_reduce_arg(bv, bi, sm, si);
	pick_reduce_arg(tv, ti, sm, si);
	const float lse = s > 0.f ? m + logf(s) : NEG_INF;
	pick_top_out(kv, ki, k, lse, bv, bi, ti, out + (long long)row * PICK_TOP_STRIDE, sm, si);
}

// k_pick_top1 is k_pick_top in one pass over the row instead of two (Options.PickOnePass, key
// pickpass=one), with a list of candidates a warp instead of a thread. The text tokens [0, tb)
// and the timestamps [tb, V) are read once: each warp keeps the text's best PICK_MAXK tokens
// (pick_wlist: the head is the text's argmax, the rule's largest allowed text logit and the
// reference of its lanes' sums of exponentials) and each thread its timestamp logits (at most
// PICK_TSU, the indices its own mod PICK_TOP_T) in registers, with their log-sum-exp and argmax.
// Once the rule is decided for the block, a warp whose text is forbidden restarts its list as
// the old kernel's threads would have built theirs (its first text tokens at -Inf), and the
// timestamps are offered to the lists. The lists are exact (the order is pick_before's, a
// total order), so the candidates are k_pick_top's tokens; the log-sum-exps are summed in
// another order. Needs V - tb <= PICK_TSU * PICK_TOP_T (the host checks).
//
// What a token costs: with a list a thread (before 3abd595), nearly every step some lane of a
// warp entered its list (a thread's n-th token with probability 8/n), and the warp with it;
// with the lists a warp but the ranges walked and the full comparison made for every token,
// ncu still counted 10,000 instructions a warp (call 35: 51.2M for 160 rows, about 190 a step
// of 32 tokens, 127 us), and with a token's mask from shared memory 7,900 (call 36: 40.7M,
// 103 us), most of it the lists' entries, some 80 a warp. Now a token is a shared load of the
// row's mask (pick_row_mask), a compare in a ballot and an exponential (ex2.approx.ftz), and
// it is offered to its warp's list only at or above the block's bound, the largest k-th
// candidate of any warp's list so far, so that few enter after the first steps: 97 us, 38.2M
// instructions (call 37). A warp's first step then took a quarter of them (32 entries, one at a
// time, into the empty list) and the k block-wide rounds that take the k best 13%: the first
// step is now a bitonic sort in the warp and the k best one warp's rounds (75 us, 28.5M
// instructions, call 38, an H100; ncu as in docs/performance.md).
#define PICK_TSU 4

// pick_before reports whether candidate (v, i) ranks before (v2, i2): the larger logit, the
// lower index on ties; index -1 (an empty slot) after everything.
__device__ __forceinline__ bool pick_before(float v, int i, float v2, int i2) {
	return i >= 0 && (i2 < 0 || v > v2 || (v == v2 && i < i2));
}

// pick_wlist is a warp's sorted list of its best PICK_MAXK candidates: lane j < PICK_MAXK holds
// item j (v, i); lv and li, in every lane, are the last item, the bound a candidate must beat.
struct pick_wlist {
	float v, lv;
	int i, li;
};

__device__ __forceinline__ void pick_wlist_reset(pick_wlist& w, float v, int i) {
	const int lane = threadIdx.x & 31;
	w.v = v; w.i = lane < PICK_MAXK ? i : -1;
	w.lv = __shfl_sync(0xffffffffu, w.v, PICK_MAXK - 1);
	w.li = __shfl_sync(0xffffffffu, w.i, PICK_MAXK - 1);
}

// pick_wlist_offer offers each lane's candidate (v, i) to the warp's list (every lane of the
// warp calls it): those that beat the bound enter one at a time, lowest lane first.
__device__ __forceinline__ void pick_wlist_offer(pick_wlist& w, float v, int i) {
	const int lane = threadIdx.x & 31;
	unsigned c = __ballot_sync(0xffffffffu, pick_before(v, i, w.lv, w.li));
	while (c) {
		const int from = __ffs(c) - 1;
		c &= c - 1;
		const float cv = __shfl_sync(0xffffffffu, v, from);
		const int ci = __shfl_sync(0xffffffffu, i, from);
		if (!pick_before(cv, ci, w.lv, w.li)) continue; // an earlier entry raised the bound
		const int pos = __popc(__ballot_sync(0xffffffffu, lane < PICK_MAXK && pick_before(w.v, w.i, cv, ci)));
		const float uv = __shfl_up_sync(0xffffffffu, w.v, 1);
		const int ui = __shfl_up_sync(0xffffffffu, w.i, 1);
		if (lane == pos) { w.v = cv; w.i = ci; }
		else if (lane > pos) { w.v = uv; w.i = ui; }
		w.lv = __shfl_sync(0xffffffffu, w.v, PICK_MAXK - 1);
		w.li = __shfl_sync(0xffffffffu, w.i, PICK_MAXK - 1);
	}
}

// pick_wlist_sort fills an empty list with the best PICK_MAXK of one candidate a lane (index -1:
// none): a bitonic sort of the warp's 32 in pick_before's order (15 rounds of exchanges), its
// first PICK_MAXK lanes kept. The lanes' sequential entries cost some 55 instructions each,
// and a warp's first step had 32 (call 37's SASS).
__device__ __forceinline__ void pick_wlist_sort(pick_wlist& w, float v, int i) {
	const int lane = threadIdx.x & 31;
	if (i < 0) v = NEG_INF; // the empty slots alike
#pragma unroll
	for (int size = 2; size <= 32; size <<= 1) {
#pragma unroll
		for (int stride = size >> 1; stride > 0; stride >>= 1) {
			const float ov = __shfl_xor_sync(0xffffffffu, v, stride);
			const int oi = __shfl_xor_sync(0xffffffffu, i, stride);
			// the lower lane of a pair keeps the earlier of the two in a block sorted first to
			// last (every block of the last round), the later in one sorted the other way
			const bool first = ((lane & stride) == 0) == ((lane & size) == 0 || size == 32);
			if (first ? pick_before(ov, oi, v, i) : pick_before(v, i, ov, oi)) { v = ov; i = oi; }
		}
	}
	pick_wlist_reset(w, v, i);
}

// pick_wlist_out is pick_top_out for warp lists: every warp writes its list into shared memory
// (lw, li: PICK_MAXK items a warp, 32 warps), then warp 0 takes k rounds of its lanes' argmax
// over the lists' heads (lane l reads warp l's), the winner's lane moving to its next item. One
// warp's shuffles instead of k block-wide reductions (13% of the kernel's instructions in call
// 37's SASS).
__device__ __forceinline__ void pick_wlist_out(pick_wlist& w, int k, float lse, float bv, int bi, int ti, int* o,
	float* lw, int* lwi) {
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
	if (lane < PICK_MAXK) {
		lw[warp * PICK_MAXK + lane] = w.v;
		lwi[warp * PICK_MAXK + lane] = w.i;
	}
	__syncthreads();
	if (warp != 0) return;
	if (lane == 0) {
		o[0] = bi;
		o[1] = __float_as_int(bi >= 0 ? bv - lse : 0.f);
		o[2] = ti;
	}
	int p = 0; // lane l's next item of warp l's list
	for (int r = 0; r < k; r++) {
		float v = NEG_INF;
		int i = -1;
		if (lane < nw && p < PICK_MAXK) { v = lw[lane * PICK_MAXK + p]; i = lwi[lane * PICK_MAXK + p]; }
		const int mine = i;
		for (int s = 16; s > 0; s >>= 1) {
			const float v2 = __shfl_xor_sync(0xffffffffu, v, s);
			const int i2 = __shfl_xor_sync(0xffffffffu, i, s);
			arg_merge(v, i, v2, i2);
		}
		if (i >= 0 && i == mine) p++;
		if (lane == 0) {
			o[3 + 2 * r] = i;
			o[4 + 2 * r] = __float_as_int(i >= 0 ? v - lse : NEG_INF);
		}
	}
}

// pick_ord maps a float to an int of the same order (atomicMax on floats); pick_unord inverts it.
__device__ __forceinline__ int pick_ord(float f) {
	const int b = __float_as_int(f);
	return b >= 0 ? b : b ^ 0x7fffffff;
}
__device__ __forceinline__ float pick_unord(int b) { return __int_as_float(b >= 0 ? b : b ^ 0x7fffffff); }

// pick_row_mask writes a row's forbidden tokens as one bitmap in shared memory (words words of
// 32 tokens): its bitmap's words (none without one) and its ranges, each a word's run of bits;
// the whole block waits. A token is then one shared load (the same word for a warp's 32 lanes)
// and a bit test.
__device__ void pick_row_mask(const unsigned* bm, const int* in, int nr, int words, unsigned* mask) {
	for (int w = threadIdx.x; w < words; w += blockDim.x) {
		unsigned m = bm ? bm[w] : 0u;
		const int w0 = w * 32;
		for (int r = 0; r < nr; r++) {
			const int lo = max(in[4 + 2 * r], w0) - w0, hi = min(in[5 + 2 * r], w0 + 32) - w0;
			if (lo < hi) m |= (hi - lo == 32 ? 0xffffffffu : ((1u << (hi - lo)) - 1u)) << lo;
		}
		mask[w] = m;
	}
	__syncthreads();
}

extern "C" __global__ void __launch_bounds__(PICK_TOP_T) k_pick_top1(const float* logits, int V, int ld, const unsigned* bitmaps, int words,
                                      const int* info, int k, int* out) {
	__shared__ float sm[32], ss[32];
	__shared__ int si[32];
	__shared__ float lw[PICK_TOP_T / 32 * PICK_MAXK];
	__shared__ int lwi[PICK_TOP_T / 32 * PICK_MAXK];
	extern __shared__ unsigned rowmask[]; // words words: the host gives 4 * words bytes
	const int row = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	const int* in = info + (long long)row * PICK_STRIDE;
	const int mk = in[0], tb = min(max(in[1], 0), V), rule = in[2], nr = min(in[3], PICK_MAXR);
	const float* x = logits + (long long)row * ld;
	// The block's bound (pick_ord of a value): a text logit at or below the row's k-th largest
	// allowed one, the largest k-th of a warp's list so far. A token below it is in no list's
	// place among the row's k best, so no warp offers it: after the first steps few tokens
	// enter any list. A warp reads it once an iteration; an old value is a lower bound too.
	__shared__ int bound;
	if (threadIdx.x == 0) bound = pick_ord(NEG_INF);
	pick_row_mask(mk >= 0 ? bitmaps + (long long)mk * words : 0, in, nr, words, rowmask);
	const unsigned bit = 1u << lane; // bit i & 31 of a mask word, for each i of the thread's
	pick_wlist w;
	pick_wlist_reset(w, NEG_INF, -1);
	// The text's sum of exponentials, each lane its own, from a reference r (rl = r in log2
	// units) at or above every token the lane has read: the larger of the list's head mh and
	// the bound, since a token above both enters the list. -Inf before any token is allowed.
	const float L2E = 1.4426950408889634f;
	float mh = NEG_INF, r = NEG_INF, rl = 0.f, sx = 0.f;
	// warp-wide loop bounds: every lane takes every step (the list's ballots), past tb as nothing
	for (int b0 = warp * 32; b0 < tb; b0 += PICK_TOP_T * PICK_U) {
		const int i0 = b0 + lane;
		float xv[PICK_U];
#pragma unroll
		for (int u = 0; u < PICK_U; u++) xv[u] = i0 + u * PICK_TOP_T < tb ? x[i0 + u * PICK_TOP_T] : NEG_INF;
		const float bf = pick_unord(*(volatile int*)&bound);
#pragma unroll
		for (int u = 0; u < PICK_U; u++) {
			const int i = i0 + u * PICK_TOP_T;
			const bool here = i < tb;
			const float v = here && !(rowmask[(b0 + u * PICK_TOP_T) >> 5] & bit) ? xv[u] : NEG_INF;
			// offered: not below the bound; a candidate: beats the list's last, or fills it
			// (every index of the step is past the list's)
			const bool offered = here && v >= bf;
			const bool firstStep = u == 0 && b0 == warp * 32; // the list is empty
			if (firstStep || __ballot_sync(0xffffffffu, offered && (w.li < 0 || v > w.lv))) {
				if (firstStep) pick_wlist_sort(w, v, offered ? i : -1);
				else pick_wlist_offer(w, v, offered ? i : -1);
				mh = __shfl_sync(0xffffffffu, w.v, 0);
				const float kv = __shfl_sync(0xffffffffu, w.v, k - 1);
				const int ki = __shfl_sync(0xffffffffu, w.i, k - 1);
				if (lane == 0 && ki >= 0 && kv > NEG_INF) atomicMax(&bound, pick_ord(kv));
			}
			const float ref = fmaxf(mh, bf);
			if (ref != r) { // the reference moves up: the lane's sum with it
				if (r > NEG_INF) sx *= ex2f(rl - ref * L2E);
				r = ref; rl = ref * L2E;
			}
			if (v > NEG_INF) sx += ex2f(fmaf(v, L2E, -rl));
		}
	}
	// the text's argmax, first on ties: the head of the warp's list
	float bv = NEG_INF;
	int bi = -1;
	{
		const int hi = __shfl_sync(0xffffffffu, w.i, 0);
		if (hi >= 0 && mh > NEG_INF) { bv = mh; bi = hi; } // the warp's best at or above the bound
	}
	// the thread's timestamps: i = t0 + u * PICK_TOP_T, the first index from tb that is its own
	const int t0 = tb + (((int)threadIdx.x - tb % PICK_TOP_T) + PICK_TOP_T) % PICK_TOP_T;
	float tsv[PICK_TSU];
	float mts = NEG_INF, sts = 0.f, tv = NEG_INF;
	int ti = -1;
#pragma unroll
	for (int u = 0; u < PICK_TSU; u++) {
		int i = t0 + u * PICK_TOP_T;
		float v = NEG_INF;
		if (i < V) {
			v = rowmask[i >> 5] & bit ? NEG_INF : x[i];
		}
		tsv[u] = v;
		if (v > NEG_INF) {
			lse_merge(mts, sts, v, 1.f);
			arg_merge(tv, ti, v, i);
		}
	}
	float mx = r; // the lanes' sums share the warp's reference
	pick_reduce_lse(mts, sts, sm, ss);
	pick_reduce_lse(mx, sx, sm, ss);
	pick_reduce_arg(bv, bi, sm, si);
	pick_reduce_arg(tv, ti, sm, si);
	const float mt = bv; // the largest allowed text logit
	const float lts = sts > 0.f ? mts + __logf(sts) : NEG_INF;
	const bool textOff = rule && lts > mt;
	float m = mts, s = sts;
	if (textOff) {
		bv = tv; bi = ti;
		const int i = warp * 32 + lane; // the warp's first text tokens, at -Inf
		pick_wlist_reset(w, NEG_INF, i < tb ? i : -1);
	} else {
		lse_merge(m, s, mx, sx);
		arg_merge(bv, bi, tv, ti);
	}
#pragma unroll
	for (int u = 0; u < PICK_TSU; u++) {
		const int i = t0 + u * PICK_TOP_T;
		pick_wlist_offer(w, tsv[u], i < V ? i : -1);
	}
	const float lse = s > 0.f ? m + logf(s) : NEG_INF;
	pick_wlist_out(w, k, lse, bv, bi, ti, out + (long long)row * PICK_TOP_STRIDE, lw, lwi);
}

// ---- beam search's candidates for few rows: each row split over S blocks ----------------------
// k_pick_top runs one block a row, so with few rows (beam search of one window: 5) most of the
// GPU idles while each block reads its 51,866 logits. The split form gives each row S blocks of
// PICK_T threads, each a contiguous chunk of the row: k_pick_top_p1 takes each chunk's share of
// the timestamp rule (the largest allowed text logit, the log-sum-exp of the allowed timestamps:
// P1S floats), k_pick_top_p2 merges those in chunk order, decides the rule as k_pick_top does and
// takes its chunk's log-sum-exp, argmax, best timestamp and k best tokens (P2S floats, the ints
// as their bits), and k_pick_top_p3 (a warp a row) merges the chunks in order into
// k_pick_top's output. The candidates are the same tokens (ties to the lower index, forbidden
// tokens after every allowed one, lowest index first); the sums are made in another order.
#define P1S 3
#define P2S (6 + 2 * PICK_MAXK)

extern "C" __global__ void __launch_bounds__(PICK_T) k_pick_top_p1(const float* logits, int V, int ld, const unsigned* bitmaps, int words,
	const int* info, int chunk, float* part1) {
	__shared__ float sm[PICK_T / 32], ss[PICK_T / 32];
	__shared__ int si[PICK_T / 32];
	const int row = blockIdx.y, c = blockIdx.x;
	const int* in = info + (long long)row * PICK_STRIDE;
	const int mk = in[0], tb = in[1], rule = in[2], nr = in[3];
	if (!rule) return;
	const float* x = logits + (long long)row * ld;
	const unsigned* bm = mk >= 0 ? bitmaps + (long long)mk * words : 0;
	const int c0 = c * chunk, c1 = min(V, c0 + chunk);
	float mt = NEG_INF, m = NEG_INF, s = 0.f;
	for (int i = c0 + threadIdx.x; i < c1; i += blockDim.x) {
		if (!pick_allowed(bm, in, nr, i)) continue;
		float v = x[i];
		if (i < tb) mt = fmaxf(mt, v);
		else lse_merge(m, s, v, 1.f);
	}
	int dummy = 0;
	pick_reduce_arg(mt, dummy, sm, si);
	pick_reduce_lse(m, s, sm, ss);
	if (threadIdx.x == 0) {
		float* p = part1 + ((long long)row * gridDim.x + c) * P1S;
		p[0] = mt; p[1] = m; p[2] = s;
	}
}

extern "C" __global__ void __launch_bounds__(PICK_T) k_pick_top_p2(const float* logits, int V, int ld, const unsigned* bitmaps, int words,
	const int* info, int chunk, const float* part1, int k, float* part2) {
	__shared__ float sm[PICK_T / 32], ss[PICK_T / 32];
	__shared__ int si[PICK_T / 32];
	const int row = blockIdx.y, c = blockIdx.x, S = gridDim.x;
	const int* in = info + (long long)row * PICK_STRIDE;
	const int mk = in[0], tb = in[1], rule = in[2], nr = in[3];
	const float* x = logits + (long long)row * ld;
	const unsigned* bm = mk >= 0 ? bitmaps + (long long)mk * words : 0;
	bool textOff = false;
	if (rule) {
		float mt = NEG_INF, m = NEG_INF, s = 0.f;
		for (int q = 0; q < S; q++) {
			const float* p = part1 + ((long long)row * S + q) * P1S;
			mt = fmaxf(mt, p[0]);
			lse_merge(m, s, p[1], p[2]);
		}
		float lts = s > 0.f ? m + __logf(s) : NEG_INF;
		textOff = lts > mt;
	}
	const int c0 = c * chunk, c1 = min(V, c0 + chunk);
	float bv = NEG_INF, tv = NEG_INF; int bi = -1, ti = -1;
	float kv[PICK_MAXK]; int ki[PICK_MAXK];
#pragma unroll
	for (int j = 0; j < PICK_MAXK; j++) { kv[j] = NEG_INF; ki[j] = -1; }
	float m = NEG_INF, s = 0.f;
	for (int i = c0 + threadIdx.x; i < c1; i += blockDim.x) {
		bool ok = pick_allowed(bm, in, nr, i) && !(textOff && i < tb);
		float v = ok ? x[i] : NEG_INF;
		if (ok && v > NEG_INF) {
			lse_merge(m, s, v, 1.f);
			arg_merge(bv, bi, v, i);
			if (i >= tb) arg_merge(tv, ti, v, i);
		}
		pick_top_insert(kv, ki, v, i);
	}
	pick_reduce_lse(m, s, sm, ss);
	pick_reduce_arg(bv, bi, sm, si);
	pick_reduce_arg(tv, ti, sm, si);
	float* p = part2 + ((long long)row * S + c) * P2S;
	if (threadIdx.x == 0) {
		p[0] = m; p[1] = s;
		p[2] = bv; p[3] = __int_as_float(bi);
		p[4] = tv; p[5] = __int_as_float(ti);
	}
	for (int r = 0; r < k; r++) {
		float v = kv[0];
		int i = ki[0];
		pick_reduce_arg(v, i, sm, si);
		if (i >= 0 && (i - c0) % (int)blockDim.x == (int)threadIdx.x) {
#pragma unroll
			for (int j = 0; j < PICK_MAXK - 1; j++) { kv[j] = kv[j + 1]; ki[j] = ki[j + 1]; }
			kv[PICK_MAXK - 1] = NEG_INF; ki[PICK_MAXK - 1] = -1;
		}
		if (threadIdx.x == 0) {
			p[6 + 2 * r] = v;
			p[7 + 2 * r] = __int_as_float(i);
		}
	}
}

extern "C" __global__ void k_pick_top_p3(const float* part2, int S, int k, int* out) {
	const int row = blockIdx.x, lane = threadIdx.x;
	const float* base = part2 + (long long)row * S * P2S;
	int* o = out + (long long)row * PICK_TOP_STRIDE;
	float lse = 0.f;
	if (lane == 0) {
		float m = NEG_INF, s = 0.f, bv = NEG_INF, tv = NEG_INF;
		int bi = -1, ti = -1;
		for (int q = 0; q < S; q++) {
			const float* p = base + q * P2S;
			lse_merge(m, s, p[0], p[1]);
			arg_merge(bv, bi, p[2], __float_as_int(p[3]));
			arg_merge(tv, ti, p[4], __float_as_int(p[5]));
		}
		lse = s > 0.f ? m + logf(s) : NEG_INF;
		o[0] = bi;
		o[1] = __float_as_int(bi >= 0 ? bv - lse : 0.f);
		o[2] = ti;
	}
	lse = __shfl_sync(0xffffffffu, lse, 0);
	// lane q < S holds the head (h) of chunk q's list, best first
	int h = 0;
	for (int r = 0; r < k; r++) {
		float v = NEG_INF; int i = -1;
		if (lane < S && h < k) { v = base[lane * P2S + 6 + 2 * h]; i = __float_as_int(base[lane * P2S + 7 + 2 * h]); }
		float wv = v; int wi = i;
		for (int d = 16; d > 0; d >>= 1) {
			float v2 = __shfl_xor_sync(0xffffffffu, wv, d);
			int i2 = __shfl_xor_sync(0xffffffffu, wi, d);
			arg_merge(wv, wi, v2, i2);
		}
		if (wi >= 0 && i == wi) h++;
		if (lane == 0) {
			o[3 + 2 * r] = wi;
			o[4 + 2 * r] = __float_as_int(wi >= 0 ? wv - lse : NEG_INF);
		}
	}
}

// Whisper's log-mel windows on the device (Backend.LogMel; whisper/mel's HeadInto is the host's):
// k_logmel computes LM_TF frames of one window a block, k_logmel_norm clamps and scales them.
// Window w's signal is its len samples (samples + w*stride) followed by zeros up to len + pad,
// reflect-padded at both ends; frame t is the periodic-Hann-windowed 400 samples centred on
// t*160, its power spectrum (201 bins) projected on the filterbank filt [nMels][201] and log10'd
// (floor 1e-10). params[4w..]: len, the frames written (size), the frames whose maximum counts
// (comp, at most tiles*LM_TF), and whether a frame of zeros counts too (its log10 is -10).
#define LM_TF 16
#define LM_NFFT 400
#define LM_HOP 160
#define LM_BINS 201
#define LM_SPAN ((LM_TF - 1) * LM_HOP + LM_NFFT)

__device__ __forceinline__ long long lm_reflect(long long i, long long n) {
	if (n == 1) return 0;
	long long period = 2 * (n - 1);
	i %= period;
	if (i < 0) i += period;
	if (i >= n) i = period - i;
	return i;
}

// grid (tiles, windows), block 256. raw [windows][nMels][tiles*LM_TF]; bmax [windows][tiles].
extern "C" __global__ void __launch_bounds__(256) k_logmel(float* raw, float* bmax, const float* samples, long long stride,
                                                           const int* params, int pad, const float* filt, int nMels, int tiles) {
	__shared__ float xs[LM_SPAN];
	__shared__ float cs[LM_NFFT], sn[LM_NFFT];
	__shared__ float pw[LM_TF][LM_BINS + 3];
	__shared__ float sh[32];
	const int w = blockIdx.y, tile = blockIdx.x, tid = threadIdx.x;
	const int len = params[4 * w], comp = params[4 * w + 2];
	const int t0 = tile * LM_TF;
	if (t0 >= comp) {
		if (tid == 0) bmax[(long long)w * tiles + tile] = NEG_INF;
		return;
	}
	const float* s = samples + (long long)w * stride;
	const long long n = (long long)len + pad, first = (long long)t0 * LM_HOP - LM_NFFT / 2;
	for (int i = tid; i < LM_SPAN; i += blockDim.x) {
		long long j = lm_reflect(first + i, n);
		xs[i] = j < len ? s[j] : 0.0f;
	}
	for (int m = tid; m < LM_NFFT; m += blockDim.x) {
		float sv, cv;
		sincospif((float)m / (LM_NFFT / 2), &sv, &cv); // angle 2 pi m / 400
		cs[m] = cv;
		sn[m] = sv;
	}
	__syncthreads();
	for (int p = tid; p < LM_TF * LM_BINS; p += blockDim.x) {
		const int f = p / LM_BINS, k = p % LM_BINS;
		const float* x = xs + f * LM_HOP;
		float re = 0.0f, im = 0.0f;
		int m = 0;
		for (int j = 0; j < LM_NFFT; j++) {
			float v = x[j] * (0.5f - 0.5f * cs[j]);
			re = fmaf(v, cs[m], re);
			im = fmaf(v, sn[m], im);
			m += k;
			if (m >= LM_NFFT) m -= LM_NFFT;
		}
		pw[f][k] = re * re + im * im;
	}
	__syncthreads();
	const int RF = tiles * LM_TF;
	float best = NEG_INF;
	for (int p = tid; p < LM_TF * nMels; p += blockDim.x) {
		const int mi = p / LM_TF, f = p % LM_TF;
		if (t0 + f >= comp) continue;
		const float* fr = filt + (long long)mi * LM_BINS;
		float acc = 0.0f;
		for (int k = 0; k < LM_BINS; k++) acc = fmaf(__ldg(fr + k), pw[f][k], acc);
		float v = log10f(fmaxf(acc, 1e-10f));
		raw[((long long)w * nMels + mi) * RF + t0 + f] = v;
		best = fmaxf(best, v);
	}
	best = block_max(best, sh);
	if (tid == 0) bmax[(long long)w * tiles + tile] = best;
}

// grid (windows, parts), block 256: dst [windows][nMels][frames] = (max(raw, max - 8) + 4) / 4
// for the frames written, 0 after them.
extern "C" __global__ void __launch_bounds__(256) k_logmel_norm(float* dst, const float* raw, const float* bmax, const int* params,
                                                                int nMels, int tiles, int frames) {
	__shared__ float sh[32];
	const int w = blockIdx.x;
	const int size = params[4 * w + 1], zero = params[4 * w + 3];
	float best = NEG_INF;
	for (int i = threadIdx.x; i < tiles; i += blockDim.x) best = fmaxf(best, bmax[(long long)w * tiles + i]);
	best = block_max(best, sh);
	if (zero) best = fmaxf(best, -10.0f);
	const float floor = best - 8.0f;
	const int RF = tiles * LM_TF;
	const long long total = (long long)nMels * frames;
	for (long long i = blockIdx.y * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.y * blockDim.x) {
		const int mi = (int)(i / frames), t = (int)(i % frames);
		float v = 0.0f;
		if (t < size) v = (fmaxf(raw[((long long)w * nMels + mi) * RF + t], floor) + 4.0f) * 0.25f;
		dst[(long long)w * total + i] = v;
	}
}
