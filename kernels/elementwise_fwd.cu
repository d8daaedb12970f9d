// Forward mode of one elementwise op on a bundle of K tangent directions, in one launch.
// Thread i reads its arguments and computes the primal and the partials once, then writes the
// tangents dy[k, i] = sum_j d_j * dx_j[k, i] of its share of the K directions: blocks along y
// split the directions (k = blockIdx.y, + gridDim.y, ...), so a small n with many directions
// still fills the GPU; with one block along y (large n) the primal is computed once per element.
// Bundles are (K, n) row-major, so for every k the threads of a warp touch consecutive addresses.
//
// Slots (filled by gpuad/kernels/source.py from one row of the elementwise table):
//   T        element type             name      kernel name (gpuad_jvp_<op>_<variant>_<f32|f64>[_i32])
//   I        index type (long long; int where every index fits in 31 bits)
//   params   the arguments' pointers, strides and by-value scalars
//   loads    reads the array arguments into locals named as in the table (x, or a and b)
//   primal   the row's primal expression   partials  d_j for each argument with a tangent
//   tangent  sum_j d_j * t_j[at]
#include "gpuad_math.cuh"

typedef ${T} T;
typedef ${I} I;  // the indices: int where every one fits in 31 bits (gpuad/kernels/plan.py)

extern "C" __global__ void ${name}(${params},
                                   T* __restrict__ p_y, T* __restrict__ t_y,
                                   const I n, const I K) {
    const I stride = (I)gridDim.x * blockDim.x;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        ${loads}
        const T y = ${primal};
        if (blockIdx.y == 0) p_y[i] = y;
        ${partials}
        for (I k = blockIdx.y; k < K; k += gridDim.y) {
            const I at = k * n + i;
            t_y[at] = ${tangent};
        }
    }
}
