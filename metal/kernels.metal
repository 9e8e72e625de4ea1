// Kernels of the metal backend, compiled at run time (newLibraryWithSource). Activations are f32;
// weights and caches are read through their dtype code, tensor.DType's values: 0 f32, 1 f16,
// 2 bf16, 3 q8_0, 4 q5_0, 5 q5_1, 6 q4_0 (ggml's blocks of 32 along a row). Every buffer is bound
// as bytes at the tensor's byte offset, so one kernel serves every dtype.
//
// Binding convention, checked by record.go against this file: each kernel's buffers are at
// [[buffer(0)]] onwards, and its parameters, one struct of 4-byte fields named P_<kernel>, are
// the last [[buffer(N)]], bound with setBytes. Grids are written next to each kernel (host:
// backend.go; checked: record.go's contracts).
//
// Nothing here has run on Apple hardware yet.

#include <metal_stdlib>
using namespace metal;

#define DT_F32 0
#define DT_F16 1
#define DT_BF16 2
#define DT_Q8_0 3
#define DT_Q5_0 4
#define DT_Q5_1 5
#define DT_Q4_0 6

// ---- dtype access ----------------------------------------------------------------------------

inline float ld_half(device const uchar* p) { return float(as_type<half>(ushort(ushort(p[0]) | (ushort(p[1]) << 8)))); }

inline uint ld_u32(device const uchar* p) {
	return uint(p[0]) | (uint(p[1]) << 8) | (uint(p[2]) << 16) | (uint(p[3]) << 24);
}

// wat is element k of row n of a matrix [N, K] of dtype dt stored row after row (a quantized
// row holds K/32 blocks). A flat tensor of any dtype is row 0 with K its length.
inline float wat(device const uchar* w, int dt, long n, long K, long k) {
	if (dt == DT_F32) return ((device const float*)w)[n * K + k];
	if (dt == DT_F16) return float(((device const half*)w)[n * K + k]);
	if (dt == DT_BF16) return as_type<float>(uint(((device const ushort*)w)[n * K + k]) << 16);
	long blk = n * (K >> 5) + (k >> 5);
	int j = int(k & 31);
	if (dt == DT_Q8_0) {
		device const uchar* q = w + blk * 34;
		return ld_half(q) * float(as_type<char>(q[2 + j]));
	}
	if (dt == DT_Q4_0) {
		device const uchar* q = w + blk * 18;
		int v = j < 16 ? int(q[2 + j] & 15) : int(q[2 + j - 16] >> 4);
		return ld_half(q) * float(v - 8);
	}
	if (dt == DT_Q5_0) {
		device const uchar* q = w + blk * 22;
		uint qh = ld_u32(q + 2);
		int v = j < 16 ? int(q[6 + j] & 15) : int(q[6 + j - 16] >> 4);
		v |= int((qh >> j) & 1u) << 4;
		return ld_half(q) * float(v - 16);
	}
	// DT_Q5_1
	device const uchar* q = w + blk * 24;
	uint qh = ld_u32(q + 4);
	int v = j < 16 ? int(q[8 + j] & 15) : int(q[8 + j - 16] >> 4);
	v |= int((qh >> j) & 1u) << 4;
	return ld_half(q) * float(v) + ld_half(q + 2);
}

// ast stores v as element i of a flat f32, f16 or bf16 tensor (bf16 rounded to nearest even).
inline void ast(device uchar* p, int dt, long i, float v) {
	if (dt == DT_F32) {
		((device float*)p)[i] = v;
	} else if (dt == DT_F16) {
		((device half*)p)[i] = half(v);
	} else {
		uint u = as_type<uint>(v);
		ushort h = (u & 0x7fffffffu) > 0x7f800000u ? ushort((u >> 16) | 0x40u) : ushort((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
		((device ushort*)p)[i] = h;
	}
}

// ---- reductions over a threadgroup of up to 1024 threads (simdgroups of 32) ------------------

inline float tg_sum(float v, threadgroup float* sh, uint t, uint n) {
	v = simd_sum(v);
	if ((t & 31u) == 0) sh[t >> 5] = v;
	threadgroup_barrier(mem_flags::mem_threadgroup);
	float s = 0.0f;
	for (uint i = 0; i < (n + 31u) / 32u; i++) s += sh[i];
	threadgroup_barrier(mem_flags::mem_threadgroup);
	return s;
}

inline float tg_max(float v, threadgroup float* sh, uint t, uint n) {
	v = simd_max(v);
	if ((t & 31u) == 0) sh[t >> 5] = v;
	threadgroup_barrier(mem_flags::mem_threadgroup);
	float s = -INFINITY;
	for (uint i = 0; i < (n + 31u) / 32u; i++) s = max(s, sh[i]);
	threadgroup_barrier(mem_flags::mem_threadgroup);
	return s;
}

// erf for the exact GELU (metal_stdlib has none): Abramowitz and Stegun 7.1.26 after a
// reduction; absolute error below 1.5e-7.
inline float erf_as(float x) {
	float s = x < 0.0f ? -1.0f : 1.0f;
	float a = fabs(x);
	float t = 1.0f / (1.0f + 0.3275911f * a);
	float y = 1.0f - (((((1.061405429f * t - 1.453152027f) * t) + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t * exp(-a * a);
	return s * y;
}

// ---- elementwise -----------------------------------------------------------------------------
// grid: ceil(n / 256) groups of 256 threads, one element a thread.

struct P_k_unary {
	uint n;
	int op; // 0 gelu, 1 sigmoid, 2 tanh, 3 relu, 4 scale by s, 5 sqrt
	float s;
};

kernel void k_unary(device const float* x [[buffer(0)]], device float* dst [[buffer(1)]],
                    constant P_k_unary& p [[buffer(2)]], uint i [[thread_position_in_grid]]) {
	if (i >= p.n) return;
	float v = x[i], r;
	switch (p.op) {
	case 0: r = 0.5f * v * (1.0f + erf_as(v * 0.70710678118654752f)); break;
	case 1: r = 1.0f / (1.0f + exp(-v)); break;
	case 2: r = precise::tanh(v); break;
	case 3: r = v > 0.0f ? v : 0.0f; break;
	case 4: r = v * p.s; break;
	default: r = sqrt(v); break;
	}
	dst[i] = r;
}

struct P_k_binary {
	uint n; // elements of a and dst
	uint m; // elements of b, broadcast over a's leading dimensions
	int op; // 0 add, 1 mul
};

kernel void k_binary(device const float* a [[buffer(0)]], device const float* b [[buffer(1)]],
                     device float* dst [[buffer(2)]], constant P_k_binary& p [[buffer(3)]],
                     uint i [[thread_position_in_grid]]) {
	if (i >= p.n) return;
	float y = b[i % p.m];
	dst[i] = p.op == 0 ? a[i] + y : a[i] * y;
}

// ---- rows ------------------------------------------------------------------------------------
// grid: one group of 256 threads a row.

struct P_k_layernorm {
	uint rows, cols;
	float eps;
	int gdt, bdt; // dtypes of gamma and beta
};

kernel void k_layernorm(device const float* x [[buffer(0)]], device const uchar* gamma [[buffer(1)]],
                        device const uchar* beta [[buffer(2)]], device float* dst [[buffer(3)]],
                        constant P_k_layernorm& p [[buffer(4)]], uint row [[threadgroup_position_in_grid]],
                        uint t [[thread_position_in_threadgroup]], uint nt [[threads_per_threadgroup]]) {
	threadgroup float sh[32];
	if (row >= p.rows) return;
	device const float* xr = x + (long)row * p.cols;
	device float* dr = dst + (long)row * p.cols;
	float s = 0.0f;
	for (uint c = t; c < p.cols; c += nt) s += xr[c];
	float mean = tg_sum(s, sh, t, nt) / float(p.cols);
	float q = 0.0f;
	for (uint c = t; c < p.cols; c += nt) {
		float d = xr[c] - mean;
		q += d * d;
	}
	float inv = rsqrt(tg_sum(q, sh, t, nt) / float(p.cols) + p.eps);
	for (uint c = t; c < p.cols; c += nt) {
		dr[c] = (xr[c] - mean) * inv * wat(gamma, p.gdt, 0, p.cols, c) + wat(beta, p.bdt, 0, p.cols, c);
	}
}

struct P_k_softmax {
	uint rows, cols;
};

kernel void k_softmax(device const float* x [[buffer(0)]], device float* dst [[buffer(1)]],
                      constant P_k_softmax& p [[buffer(2)]], uint row [[threadgroup_position_in_grid]],
                      uint t [[thread_position_in_threadgroup]], uint nt [[threads_per_threadgroup]]) {
	threadgroup float sh[32];
	if (row >= p.rows) return;
	device const float* xr = x + (long)row * p.cols;
	device float* dr = dst + (long)row * p.cols;
	float m = -INFINITY;
	for (uint c = t; c < p.cols; c += nt) m = max(m, xr[c]);
	m = tg_max(m, sh, t, nt);
	float s = 0.0f;
	for (uint c = t; c < p.cols; c += nt) s += exp(xr[c] - m);
	s = tg_sum(s, sh, t, nt);
	for (uint c = t; c < p.cols; c += nt) dr[c] = exp(xr[c] - m) / s;
}

// ---- matrix products -------------------------------------------------------------------------
// grid: (ceil(N / 16), ceil(rows / 16), batches) groups of 16 x 16 threads, one output a thread,
// K in tiles of 16 through threadgroup memory.

struct P_k_linear {
	uint rows, N, K;
	int wdt;     // weight dtype
	int hasBias; // 0: the bias binding is a placeholder
	int bdt;     // bias dtype
	int ddt;     // dst dtype: f32, or f16 for keys and values (tensor.HalfKV)
	int epi;     // 0: dst = x w^T + bias; 1: dst += x w^T + bias; 2: dst = GELU(x w^T + bias)
};

kernel void k_linear(device const float* x [[buffer(0)]], device const uchar* w [[buffer(1)]],
                     device const uchar* bias [[buffer(2)]], device uchar* dst [[buffer(3)]],
                     constant P_k_linear& p [[buffer(4)]], uint3 g [[threadgroup_position_in_grid]],
                     uint3 t [[thread_position_in_threadgroup]]) {
	threadgroup float xs[16][17];
	threadgroup float ws[16][17];
	uint r = g.y * 16 + t.y, n = g.x * 16 + t.x;
	uint wn = g.x * 16 + t.y; // the weight row this thread loads
	float acc = 0.0f;
	for (uint k0 = 0; k0 < p.K; k0 += 16) {
		uint k = k0 + t.x;
		xs[t.y][t.x] = (r < p.rows && k < p.K) ? x[(long)r * p.K + k] : 0.0f;
		ws[t.y][t.x] = (wn < p.N && k < p.K) ? wat(w, p.wdt, wn, p.K, k) : 0.0f;
		threadgroup_barrier(mem_flags::mem_threadgroup);
		for (uint kk = 0; kk < 16; kk++) acc += xs[t.y][kk] * ws[t.x][kk];
		threadgroup_barrier(mem_flags::mem_threadgroup);
	}
	if (r < p.rows && n < p.N) {
		if (p.hasBias != 0) acc += wat(bias, p.bdt, 0, p.N, n);
		long o = (long)r * p.N + n;
		if (p.epi == 1) acc += wat(dst, p.ddt, 0, 0, o);
		if (p.epi == 2) acc = 0.5f * acc * (1.0f + erf_as(acc * 0.70710678118654752f));
		ast(dst, p.ddt, o, acc);
	}
}

struct P_k_matmul {
	uint M, N, K;
	int transA, transB;
	uint strideA, strideB; // elements between batch entries (strideB 0: b shared)
	float alpha;
};

kernel void k_matmul(device const float* a [[buffer(0)]], device const float* b [[buffer(1)]],
                     device float* dst [[buffer(2)]], constant P_k_matmul& p [[buffer(3)]],
                     uint3 g [[threadgroup_position_in_grid]], uint3 t [[thread_position_in_threadgroup]]) {
	threadgroup float as_[16][17];
	threadgroup float bs[16][17];
	device const float* ab = a + (long)g.z * p.strideA;
	device const float* bb = b + (long)g.z * p.strideB;
	uint m = g.y * 16 + t.y, n = g.x * 16 + t.x;
	float acc = 0.0f;
	for (uint k0 = 0; k0 < p.K; k0 += 16) {
		uint ka = k0 + t.x; // a[m, ka]
		uint kb = k0 + t.y; // b[kb, n]
		as_[t.y][t.x] = (m < p.M && ka < p.K) ? (p.transA != 0 ? ab[(long)ka * p.M + m] : ab[(long)m * p.K + ka]) : 0.0f;
		bs[t.y][t.x] = (kb < p.K && n < p.N) ? (p.transB != 0 ? bb[(long)n * p.K + kb] : bb[(long)kb * p.N + n]) : 0.0f;
		threadgroup_barrier(mem_flags::mem_threadgroup);
		for (uint kk = 0; kk < 16; kk++) acc += as_[t.y][kk] * bs[kk][t.x];
		threadgroup_barrier(mem_flags::mem_threadgroup);
	}
	if (m < p.M && n < p.N) dst[(long)g.z * p.M * p.N + (long)m * p.N + n] = p.alpha * acc;
}

// ---- convolution -----------------------------------------------------------------------------
// grid: ceil(B * Cout * Tout / 256) groups of 256 threads, one output a thread.

struct P_k_conv1d {
	uint B, Cin, T, Cout, K, Tout;
	int stride, pad;
	int wdt, hasBias, bdt;
};

kernel void k_conv1d(device const float* x [[buffer(0)]], device const uchar* w [[buffer(1)]],
                     device const uchar* bias [[buffer(2)]], device float* dst [[buffer(3)]],
                     constant P_k_conv1d& p [[buffer(4)]], uint i [[thread_position_in_grid]]) {
	if (i >= p.B * p.Cout * p.Tout) return;
	uint to = i % p.Tout, co = (i / p.Tout) % p.Cout, b = i / (p.Tout * p.Cout);
	float acc = p.hasBias != 0 ? wat(bias, p.bdt, 0, p.Cout, co) : 0.0f;
	long row = (long)co; // w is [Cout, Cin * K]
	for (uint ci = 0; ci < p.Cin; ci++) {
		device const float* xr = x + ((long)b * p.Cin + ci) * p.T;
		for (uint k = 0; k < p.K; k++) {
			int ti = int(to) * p.stride - p.pad + int(k);
			if (ti < 0 || ti >= int(p.T)) continue;
			acc += xr[ti] * wat(w, p.wdt, row, (long)p.Cin * p.K, (long)ci * p.K + k);
		}
	}
	dst[i] = acc;
}

// ---- attention -------------------------------------------------------------------------------
// grid: (Tq, H, B) groups of 128 threads, one query row of one head a group; threadgroup memory
// [[threadgroup(0)]] holds its kvLen scores (4 * kvLen bytes, rounded up to 16).

struct P_k_attention {
	uint Tq, Tk, H, D, kvLen;
	int causal;
	float scale;
	int kdt, vdt; // dtypes of k and v (a cache may be f16)
};

// att_scores writes the query's scaled, masked scores into sc and turns them into
// probabilities (unnormalized exp) returning their sum.
inline float att_scores(device const float* q, device const uchar* k, constant P_k_attention& p, uint3 g, uint t,
                        uint nt, threadgroup float* sc, threadgroup float* sh) {
	uint i = g.x, h = g.y, b = g.z;
	uint HD = p.H * p.D;
	device const float* qr = q + ((long)b * p.Tq + i) * HD + (long)h * p.D;
	long lim = p.causal != 0 ? (long)i + p.kvLen - p.Tq : (long)p.kvLen - 1;
	float m = -INFINITY;
	for (uint j = t; j < p.kvLen; j += nt) {
		float s = -INFINITY;
		if ((long)j <= lim) {
			long kb = ((long)b * p.Tk + j) * HD + (long)h * p.D;
			float d = 0.0f;
			for (uint c = 0; c < p.D; c++) d += qr[c] * wat(k, p.kdt, 0, 0, kb + c);
			s = d * p.scale;
		}
		sc[j] = s;
		m = max(m, s);
	}
	m = tg_max(m, sh, t, nt);
	float sum = 0.0f;
	for (uint j = t; j < p.kvLen; j += nt) {
		float e = sc[j] == -INFINITY ? 0.0f : exp(sc[j] - m);
		sc[j] = e;
		sum += e;
	}
	sum = tg_sum(sum, sh, t, nt); // its barriers also publish sc
	return sum;
}

kernel void k_attention(device const float* q [[buffer(0)]], device const uchar* k [[buffer(1)]],
                        device const uchar* v [[buffer(2)]], device float* dst [[buffer(3)]],
                        constant P_k_attention& p [[buffer(4)]], threadgroup float* sc [[threadgroup(0)]],
                        uint3 g [[threadgroup_position_in_grid]], uint t [[thread_index_in_threadgroup]],
                        uint nt [[threads_per_threadgroup]]) {
	threadgroup float sh[32];
	float sum = att_scores(q, k, p, g, t, nt, sc, sh);
	uint i = g.x, h = g.y, b = g.z;
	uint HD = p.H * p.D;
	device float* dr = dst + ((long)b * p.Tq + i) * HD + (long)h * p.D;
	for (uint c = t; c < p.D; c += nt) {
		float o = 0.0f;
		for (uint j = 0; j < p.kvLen; j++) o += sc[j] * wat(v, p.vdt, 0, 0, ((long)b * p.Tk + j) * HD + (long)h * p.D + c);
		dr[c] = o / sum;
	}
}

// k_attention_probs writes the probabilities, probs [B, H, Tq, kvLen] (tensor.AttentionWeights).
kernel void k_attention_probs(device const float* q [[buffer(0)]], device const uchar* k [[buffer(1)]],
                              device float* probs [[buffer(2)]], constant P_k_attention& p [[buffer(3)]],
                              threadgroup float* sc [[threadgroup(0)]], uint3 g [[threadgroup_position_in_grid]],
                              uint t [[thread_index_in_threadgroup]], uint nt [[threads_per_threadgroup]]) {
	threadgroup float sh[32];
	float sum = att_scores(q, k, p, g, t, nt, sc, sh);
	uint i = g.x, h = g.y, b = g.z;
	device float* pr = probs + (((long)b * p.H + h) * p.Tq + i) * p.kvLen;
	for (uint j = t; j < p.kvLen; j += nt) pr[j] = sc[j] / sum;
}

// ---- data movement ---------------------------------------------------------------------------
// grid: ceil(n / 256) groups of 256 threads, one destination element a thread.

struct P_k_gather {
	uint n, C; // rows gathered, row length
	uint N;    // rows of the table
	int dt;    // table dtype
};

kernel void k_gather(device const uchar* table [[buffer(0)]], device const int* ids [[buffer(1)]],
                     device float* dst [[buffer(2)]], constant P_k_gather& p [[buffer(3)]],
                     uint i [[thread_position_in_grid]]) {
	if (i >= p.n * p.C) return;
	uint r = i / p.C, c = i % p.C;
	int id = ids[r];
	dst[i] = (id >= 0 && uint(id) < p.N) ? wat(table, p.dt, id, p.C, c) : 0.0f;
}

struct P_k_copy {
	uint n;
	int sdt, ddt;
};

kernel void k_copy(device const uchar* src [[buffer(0)]], device uchar* dst [[buffer(1)]],
                   constant P_k_copy& p [[buffer(2)]], uint i [[thread_position_in_grid]]) {
	if (i >= p.n) return;
	ast(dst, p.ddt, i, wat(src, p.sdt, 0, p.n, i));
}

struct P_k_setrows {
	uint B, n, T, C, at;
	int sdt, ddt;
};

kernel void k_setrows(device const uchar* src [[buffer(0)]], device uchar* dst [[buffer(1)]],
                      constant P_k_setrows& p [[buffer(2)]], uint i [[thread_position_in_grid]]) {
	if (i >= p.B * p.n * p.C) return;
	uint c = i % p.C, r = (i / p.C) % p.n, b = i / (p.C * p.n);
	ast(dst, p.ddt, ((long)b * p.T + p.at + r) * p.C + c, wat(src, p.sdt, 0, 0, i));
}

struct P_k_transpose {
	uint P, M, N; // src [P, M, N] -> dst [P, N, M]
	int dt;
};

kernel void k_transpose(device const uchar* src [[buffer(0)]], device uchar* dst [[buffer(1)]],
                        constant P_k_transpose& p [[buffer(2)]], uint i [[thread_position_in_grid]]) {
	if (i >= p.P * p.M * p.N) return;
	uint m = i % p.M, n = (i / p.M) % p.N, b = i / (p.M * p.N);
	ast(dst, p.dt, i, wat(src, p.dt, 0, 0, ((long)b * p.M + m) * p.N + n));
}
