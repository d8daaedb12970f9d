// Prelude of the CPU build of the fusion regions (kernels/region_host.cpp): CUDA's qualifiers as
// plain C++, and the same device helpers the GPU kernels use.
#include <cmath>
using namespace std;
#define __device__
#define __forceinline__ inline
#include "gpuad_math.cuh"
