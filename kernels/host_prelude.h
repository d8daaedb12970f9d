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
extern "C" {
double sin(double) __attribute__((simd("notinbranch")));
double cos(double) __attribute__((simd("notinbranch")));
double exp(double) __attribute__((simd("notinbranch")));
double log(double) __attribute__((simd("notinbranch")));
double pow(double, double) __attribute__((simd("notinbranch")));
float sinf(float) __attribute__((simd("notinbranch")));
float cosf(float) __attribute__((simd("notinbranch")));
float expf(float) __attribute__((simd("notinbranch")));
float logf(float) __attribute__((simd("notinbranch")));
float powf(float, float) __attribute__((simd("notinbranch")));
}
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
