// One fusion region of a compiled program: a chain of elementwise equations in one launch.
// Thread i owns element i of the region's iteration space (grid-stride loop): it reads its
// inputs through their strides (0 along broadcast axes, so sliced and broadcast inputs are read
// in place), computes every value of the region in registers, and writes the outputs the rest
// of the program reads. The same body is compiled for the CPU by kernels/region_host.cpp.
//
// Where a long sum has few outputs, a warp owns each element instead (lanes 32): its lanes split
// the sum's terms and add their partial sums (gpuad/compiler/warps.py); else lanes is 1.
//
// Slots (filled by gpuad/compiler/codegen.py): name, params, body, lanes.
#include "gpuad_math.cuh"

extern "C" __global__ void ${name}(${params}, const long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x / ${lanes};
    const int gpuad_lane = threadIdx.x % ${lanes};
    for (long long i = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / ${lanes}; i < n; i += stride) {
        ${body}
    }
}
