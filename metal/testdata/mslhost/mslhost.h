// mslhost.h: just enough of Metal Shading Language for a host C++ compiler to compile
// kernels.metal (g++ -std=c++17 -fsyntax-only -include mslhost.h -I. -x c++ kernels.metal), so
// that CI catches C++-level mistakes in the kernels without a Mac. It checks syntax and types
// only: address spaces are erased, attributes ignored, SIMD-group functions are the identity.
// Metal's own compiler on a Mac is the real check.
#include <cmath>
#include <cstdint>
#include <cstring>
typedef uint32_t uint;
typedef unsigned char uchar;
typedef unsigned short ushort;
typedef _Float16 half;
struct uint3 { uint x, y, z; };
#define kernel
#define device
#define constant const
#define threadgroup
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
inline void threadgroup_barrier(metal::mem_flags) {}
inline float simd_sum(float v) { return v; }
inline float simd_max(float v) { return v; }
inline float rsqrt(float x) { return 1.0f / std::sqrt(x); }
inline float max(float a, float b) { return a > b ? a : b; }
inline float exp(float x) { return std::exp(x); }
inline float sqrt(float x) { return std::sqrt(x); }
inline float fabs(float x) { return std::fabs(x); }
