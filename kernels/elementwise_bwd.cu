// Reverse mode of one elementwise op on a bundle of M cotangent directions, in one launch.
// Thread i reads its arguments and the saved output once, computes the partials once, then writes
// ct_j[m, i] = d_j * ct[m, i] for every needed argument j and its share of the M directions
// (blocks along y split them, as in elementwise_fwd.cu). The results keep the output's shape:
// the backward sweep sums broadcast arguments down (gpuad/reverse.py).
//
// Slots (filled by gpuad/kernels/source.py from one row of the elementwise table):
//   T        element type             name      kernel name (gpuad_vjp_<op>_<variant>_<f32|f64>[_i32])
//   I        index type (long long; int where every index fits in 31 bits)
//   params   the arguments' pointers, strides and by-value scalars
//   outputs  one cotangent pointer c_<arg> per needed argument
//   loads    reads the array arguments into locals named as in the table (x, or a and b)
//   partials d_j for each needed argument    writes    c_<arg>[at] = d_j * g
#include "gpuad_math.cuh"

typedef ${T} T;
typedef ${I} I;  // the indices: int where every one fits in 31 bits (gpuad/kernels/plan.py)

extern "C" __global__ void ${name}(${params},
                                   const T* __restrict__ p_y, const T* __restrict__ ct${outputs},
                                   const I n, const I M) {
    const I stride = (I)gridDim.x * blockDim.x;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        ${loads}
        const T y = p_y[i];
        ${partials}
        for (I m = blockIdx.y; m < M; m += gridDim.y) {
            const I at = m * n + i;
            const T g = ct[at];
            ${writes}
        }
    }
}
