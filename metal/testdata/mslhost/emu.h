// emu.h: runs kernels.metal's kernels on the host, for the metal package's tests (emu_test.go).
// kernels.metal is compiled as C++ with the Metal-specific words mapped here: address spaces
// erased, threadgroup variables made static (one threadgroup runs at a time), and every thread of
// a threadgroup a fiber (below). It checks the kernels' logic and arithmetic in C++'s terms (f32,
// _Float16 for half); what only Metal decides (its compiler, precision of exp and friends,
// scheduling) needs a Mac.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <setjmp.h>
#include <ucontext.h>
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

// Every GPU thread of a threadgroup is a fiber (ucontext) on one OS thread: a barrier, and each
// SIMD-group exchange, switches to the next fiber, and the scheduler resumes them round-robin, so
// all of a group's threads reach a barrier before any passes it, at the cost of a context switch
// instead of an OS thread's wake-up.
struct EmuFiber {
	ucontext_t ctx;
	jmp_buf jb;
	bool done, started;
	uint index;
};
static jmp_buf emu_sched;
static EmuFiber* emu_cur;
static std::vector<EmuFiber> emu_fibers;
static std::vector<std::vector<char>> emu_stacks;
static float emu_lanes[1024];

// Switches go through _setjmp/_longjmp (no signal mask saved: no system call); a fiber's first
// entry through swapcontext onto its own stack.
inline void emu_yield() {
	if (!_setjmp(emu_cur->jb)) _longjmp(emu_sched, 1);
}
inline void threadgroup_barrier(metal::mem_flags) { emu_yield(); }
// The SIMD-group functions are called by every thread of the group at once in kernels.metal (in
// its reductions), so a group-wide exchange stands in for each 32-lane one.
inline float simd_sum(float v) {
	uint i = emu_cur->index;
	emu_lanes[i] = v;
	emu_yield();
	float s = 0.0f;
	for (uint l = i & ~31u; l < (i & ~31u) + 32 && l < emu_fibers.size(); l++) s += emu_lanes[l];
	emu_yield();
	return s;
}
inline float simd_max(float v) {
	uint i = emu_cur->index;
	emu_lanes[i] = v;
	emu_yield();
	float s = -INFINITY;
	for (uint l = i & ~31u; l < (i & ~31u) + 32 && l < emu_fibers.size(); l++) s = emu_lanes[l] > s ? emu_lanes[l] : s;
	emu_yield();
	return s;
}

// A dispatch: the kernel's call with the buffers, threadgroup memory and the thread's positions.
struct EmuPos { uint3 gid, group, tid, threads; uint index; };
typedef void (*EmuFn)(uchar** bufs, float* tgmem, const EmuPos& p);

static EmuFn emu_fn;
static uchar** emu_bufs;
static float* emu_tgmem;
static EmuPos emu_pos[1024];

static void emu_trampoline() {
	EmuFiber* f = emu_cur;
	emu_fn(emu_bufs, emu_tgmem, emu_pos[f->index]);
	f->done = true;
	_longjmp(emu_sched, 1);
}

// emu_dispatch runs groups x threads of fn, threadgroups one after another.
static void emu_dispatch(EmuFn fn, uchar** bufs, uint tgBytes, const uint g[3], const uint t[3]) {
	uint n = t[0] * t[1] * t[2];
	std::vector<float> tgmem(tgBytes / 4 + 4);
	emu_fn = fn;
	emu_bufs = bufs;
	emu_tgmem = tgmem.data();
	emu_fibers.assign(n, EmuFiber{});
	while (emu_stacks.size() < n) emu_stacks.emplace_back(256 << 10);
	for (uint z = 0; z < g[2]; z++)
		for (uint y = 0; y < g[1]; y++)
			for (uint x = 0; x < g[0]; x++) {
				for (uint i = 0; i < n; i++) {
					EmuPos& p = emu_pos[i];
					p.tid = uint3{i % t[0], (i / t[0]) % t[1], i / (t[0] * t[1])};
					p.threads = uint3{t[0], t[1], t[2]};
					p.index = i;
					p.group = uint3{x, y, z};
					p.gid = uint3{x * t[0] + p.tid.x, y * t[1] + p.tid.y, z * t[2] + p.tid.z};
					EmuFiber& f = emu_fibers[i];
					f.done = false;
					f.started = false;
					f.index = i;
					getcontext(&f.ctx); // in place: a ucontext_t points into itself
					f.ctx.uc_stack.ss_sp = emu_stacks[i].data();
					f.ctx.uc_stack.ss_size = emu_stacks[i].size();
					f.ctx.uc_link = nullptr;
					makecontext(&f.ctx, emu_trampoline, 0);
				}
				for (uint live = n; live > 0;) {
					live = 0;
					for (uint i = 0; i < n; i++) {
						if (emu_fibers[i].done) continue;
						EmuFiber& f = emu_fibers[i];
						emu_cur = &f;
						if (!_setjmp(emu_sched)) {
							if (f.started) _longjmp(f.jb, 1);
							f.started = true;
							ucontext_t from;
							swapcontext(&from, &f.ctx); // never resumed: the fiber comes back by _longjmp
						}
						if (!f.done) live++;
					}
				}
			}
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
