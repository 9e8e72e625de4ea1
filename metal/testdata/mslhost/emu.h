// emu.h: runs kernels.metal's kernels on the host, for the metal package's tests (emu_test.go).
// kernels.metal is compiled as C++ with the Metal-specific words mapped here: address spaces
// erased, threadgroup variables made static (one threadgroup runs at a time), and every thread of
// a threadgroup a std::thread, with threadgroup_barrier and the SIMD-group functions (groups of 32
// lanes) made of std::barrier. It checks the kernels' logic and arithmetic in C++'s terms (f32,
// _Float16 for half); what only Metal decides (its compiler, precision of exp and friends,
// scheduling) needs a Mac.
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>
typedef uint32_t uint;
typedef unsigned char uchar;
typedef unsigned short ushort;
typedef _Float16 half;
struct uint3 { uint x, y, z; };
#define kernel
#define device
#define constant const
namespace metal {
enum class mem_flags { mem_threadgroup, mem_device };
namespace precise {
inline float tanh(float x) { return ::tanhf(x); }
}
}
template <class T, class U> inline T as_type(U u) {
	static_assert(sizeof(T) == sizeof(U), "as_type between types of different sizes");
	T t;
	std::memcpy(&t, &u, sizeof t);
	return t;
}
inline float rsqrt(float x) { return 1.0f / std::sqrt(x); }
inline float max(float a, float b) { return a > b ? a : b; }
inline float exp(float x) { return std::exp(x); }
inline float sqrt(float x) { return std::sqrt(x); }
inline float fabs(float x) { return std::fabs(x); }

struct EmuThread {
	std::barrier<>* group; // the threadgroup's barrier
	std::barrier<>* simd;  // the SIMD-group's barrier
	float* lanes;          // the SIMD-group's exchange slots (32)
	uint lane, width;
};
static thread_local EmuThread emu;

inline void threadgroup_barrier(metal::mem_flags) { emu.group->arrive_and_wait(); }
inline float simd_sum(float v) {
	emu.lanes[emu.lane] = v;
	emu.simd->arrive_and_wait();
	float s = 0.0f;
	for (uint i = 0; i < emu.width; i++) s += emu.lanes[i];
	emu.simd->arrive_and_wait();
	return s;
}
inline float simd_max(float v) {
	emu.lanes[emu.lane] = v;
	emu.simd->arrive_and_wait();
	float s = -INFINITY;
	for (uint i = 0; i < emu.width; i++) s = emu.lanes[i] > s ? emu.lanes[i] : s;
	emu.simd->arrive_and_wait();
	return s;
}

// A dispatch: the kernel's call with the buffers, threadgroup memory and the thread's positions.
struct EmuPos { uint3 gid, group, tid, threads; uint index; };
typedef void (*EmuFn)(uchar** bufs, float* tgmem, const EmuPos& p);

// emu_dispatch runs groups x threads of fn, threadgroups one after another.
static void emu_dispatch(EmuFn fn, uchar** bufs, uint tgBytes, const uint g[3], const uint t[3]) {
	uint n = t[0] * t[1] * t[2];
	std::vector<float> tgmem(tgBytes / 4 + 4);
	std::barrier<> group(n);
	uint nsimd = (n + 31) / 32;
	std::vector<std::barrier<>*> simds;
	for (uint s = 0; s < nsimd; s++) simds.push_back(new std::barrier<>(s + 1 < nsimd ? 32 : n - 32 * s));
	std::vector<float> lanes(32 * nsimd);
	std::vector<std::thread> ts;
	for (uint i = 0; i < n; i++) {
		ts.emplace_back([&, i] {
			emu = EmuThread{&group, simds[i / 32], &lanes[32 * (i / 32)], i % 32, i / 32 + 1 < nsimd ? 32 : n - 32 * (i / 32)};
			EmuPos p;
			p.tid = uint3{i % t[0], (i / t[0]) % t[1], i / (t[0] * t[1])};
			p.threads = uint3{t[0], t[1], t[2]};
			p.index = i;
			for (uint z = 0; z < g[2]; z++)
				for (uint y = 0; y < g[1]; y++)
					for (uint x = 0; x < g[0]; x++) {
						p.group = uint3{x, y, z};
						p.gid = uint3{x * t[0] + p.tid.x, y * t[1] + p.tid.y, z * t[2] + p.tid.z};
						fn(bufs, tgmem.data(), p);
						group.arrive_and_wait(); // the group's static memory is free again
					}
		});
	}
	for (auto& th : ts) th.join();
	for (auto* s : simds) delete s;
}

// emu_main serves dispatches on stdin: u32 kernel, groups[3], threads[3], threadgroup bytes,
// buffer count, then per buffer u32 length and its bytes; it answers with every buffer's bytes.
static int emu_main(const EmuFn* fns, uint nfns) {
	for (;;) {
		uint h[9];
		if (fread(h, 4, 9, stdin) != 9) return 0;
		if (h[0] >= nfns) return 2;
		std::vector<std::vector<uint64_t>> store(h[8]);
		std::vector<uint> lens(h[8]);
		std::vector<uchar*> bufs(h[8]);
		for (uint i = 0; i < h[8]; i++) {
			if (fread(&lens[i], 4, 1, stdin) != 1) return 3;
			store[i].assign(lens[i] / 8 + 2, 0);
			bufs[i] = (uchar*)store[i].data();
			if (lens[i] && fread(bufs[i], 1, lens[i], stdin) != lens[i]) return 3;
		}
		emu_dispatch(fns[h[0]], bufs.data(), h[7], h + 1, h + 4);
		for (uint i = 0; i < h[8]; i++) fwrite(bufs[i], 1, lens[i], stdout);
		fflush(stdout);
	}
}
