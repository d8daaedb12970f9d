// One fusion region of a compiled program: a chain of elementwise equations in one launch.
// Thread i owns element i of the region's iteration space (grid-stride loop): it reads its
// inputs through their strides (0 along broadcast axes, so sliced and broadcast inputs are read
// in place), computes every value of the region in registers, and writes the outputs the rest
// of the program reads. The same body is compiled for the CPU by kernels/region_host.cpp.
//
// Where a long sum has few outputs, a warp owns each element instead (lanes 32): its lanes split
// the sum's terms and add their partial sums (gpuad/compiler/warps.py); else lanes is 1.
//
// Slots (filled by gpuad/compiler/codegen.py): name, params, body, lanes; @index@ is the index type
// (long long, or int in the 32-bit variant: gpuad/kernels/index32.py).
#include "gpuad_math.cuh"
#include "gpuad_complex.cuh"

extern "C" __global__ void ${name}(${params}, const @index@ n) {
    const @index@ stride = (@index@)gridDim.x * blockDim.x / ${lanes};
    const int gpuad_lane = threadIdx.x % ${lanes};
    for (@index@ i = ((@index@)blockIdx.x * blockDim.x + threadIdx.x) / ${lanes}; i < n; i += stride) {
        ${body}
    }
}
