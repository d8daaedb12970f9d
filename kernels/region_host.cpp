// One fusion region of a compiled program, compiled for the CPU (g++, OpenMP over the cores).
// The body is the same text the CUDA kernel of the region gets (kernels/region.cu): element i
// of the region's iteration space reads its inputs through their strides (0 along broadcast
// axes), computes the region's values in registers and writes the outputs the program needs.
//
// Slots (filled by gpuad/kernels/region.py): name, params, body.
extern "C" void ${name}(${params}, const long long n) {
#pragma omp parallel for if (n >= 262144)
    for (long long i = 0; i < n; ++i) {
        ${body}
    }
}
