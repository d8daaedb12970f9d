// Prelude of the CPU build of the fusion regions (kernels/region_host.cpp): CUDA's qualifiers as
// plain C++, and the same device helpers the GPU kernels use.
#include <cmath>
using namespace std;
#define __device__
#define __forceinline__ inline
#include "gpuad_math.cuh"
#include "gpuad_complex.cuh"

#ifdef GPUAD_SIMD_MATH
// glibc's vector math library (libmvec, linked by gpuad/kernels/host.py where it exists): its
// functions declared SIMD-callable, so that a region's loop computes 2 (SSE2) or 4 (AVX2) elements
// per call, within 4 ulp of the scalar functions; each kernel is built for AVX2 and for the
// baseline, chosen when the library loads (or, where gpuad/kernels/host.py finds AVX2 on this
// machine, for AVX2 alone: half the compilation).
// Declared const too (no errno is read): GCC's if-conversion refuses a loop calling a function
// with side effects, so a loop selecting (where, a while loop's frozen elements) around a vector
// call would not vectorise.
#define GPUAD_SIMD1(f) double f(double) __attribute__((simd("notinbranch"), const)); \
    float f##f(float) __attribute__((simd("notinbranch"), const));
#define GPUAD_SIMD2(f) double f(double, double) __attribute__((simd("notinbranch"), const)); \
    float f##f(float, float) __attribute__((simd("notinbranch"), const));
extern "C" {
GPUAD_SIMD1(sin) GPUAD_SIMD1(cos) GPUAD_SIMD1(exp) GPUAD_SIMD1(log) GPUAD_SIMD2(pow)
#if defined(__GLIBC_PREREQ) && __GLIBC_PREREQ(2, 35)
// glibc 2.35's additions: the hyperbolic and inverse functions of activations and integrators
// (bench/vector_math.py measures each against NumPy)
GPUAD_SIMD1(tanh) GPUAD_SIMD1(sinh) GPUAD_SIMD1(cosh) GPUAD_SIMD1(asinh) GPUAD_SIMD1(acosh) GPUAD_SIMD1(atanh)
GPUAD_SIMD1(asin) GPUAD_SIMD1(acos) GPUAD_SIMD1(atan) GPUAD_SIMD1(exp2) GPUAD_SIMD1(expm1) GPUAD_SIMD1(log2)
GPUAD_SIMD1(log10) GPUAD_SIMD1(log1p) GPUAD_SIMD1(cbrt) GPUAD_SIMD1(erfc)
GPUAD_SIMD2(atan2) GPUAD_SIMD2(hypot)
#endif
}
#undef GPUAD_SIMD1
#undef GPUAD_SIMD2
#ifdef GPUAD_ONE_ISA  // built for this machine's AVX2 alone (-mavx2): one build of each loop
#define GPUAD_CLONES
#else
#define GPUAD_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#else
#define GPUAD_CLONES
#endif

// Set when the library loads (gpuad_init, called by gpuad/kernels/host.py): numpy.ndarray's type
// object (the kernels' entries read only objects of exactly that type), and the run function of
// the process's thread pool (kernels/host_pool.cpp; null: no threads).
inline const void* gpuad_ndarray = nullptr;
typedef void (*gpuad_range_fn)(void* context, long long begin, long long end);
inline void (*gpuad_pool)(gpuad_range_fn range, void* context, long long units) = nullptr;

// Whether the object at o is an ndarray whose items are of type number `num` or `alias` (int64 has
// two), in this machine's byte order and aligned (NPY_ARRAY_ALIGNED: its data pointer and strides
// are multiples of the item, these types' alignment), read through NumPy's struct field offsets.
static inline bool gpuad_readable(const char* o, const int num, const int alias) {
    if (*(const void* const*)(o + GPUAD_TYPE) != gpuad_ndarray || !(*(const int*)(o + GPUAD_FLAGS) & 0x100))
        return false;
    const char* descr = *(const char* const*)(o + GPUAD_DESCR);
    const int type_num = *(const int*)(descr + GPUAD_TYPE_NUM);
    return (type_num == num || type_num == alias) && descr[GPUAD_BYTEORDER] != GPUAD_SWAPPED;
}

// Run range(begin, end) over `units` (a region's elements, or its rows), split over the pool's
// threads where the region has 256k elements or more (n), else in the caller's thread.
template <class Range> static void gpuad_split(const long long units, const long long n, Range range) {
    if (n >= 262144 && gpuad_pool != nullptr) {
        gpuad_pool([](void* r, long long begin, long long end) { (*static_cast<Range*>(r))(begin, end); },
                   &range, units);
        return;
    }
    range(0, units);
}
