// One fusion region of a compiled program, compiled for the CPU (g++, OpenMP over the cores).
// The body is the same text the CUDA kernel of the region gets (kernels/region.cu): element i
// of the region's iteration space reads its inputs through their strides (0 along broadcast
// axes), computes the region's values in registers and writes the outputs the program needs.
// The loop over a range of elements is its own function, vectorised (`omp simd`, glibc's vector
// math where built with it, an AVX2 clone beside the baseline for the contiguous build): OpenMP's
// outlined parallel loops would lose both. Above 256k elements the range is split over the threads.
//
// Slots (filled by gpuad/kernels/region.py): name, params, args (the parameters' names), body,
// clones (GPUAD_CLONES or nothing).
static ${clones} void ${name}_range(${params}, const long long begin, const long long end) {
#pragma omp simd
    for (long long i = begin; i < end; ++i) {
        ${body}
    }
}

extern "C" void ${name}(${params}, const long long n) {
#ifdef _OPENMP
    if (n >= 262144) {
#pragma omp parallel
        {
            const long long parts = omp_get_num_threads(), k = omp_get_thread_num();
            ${name}_range(${args}, n * k / parts, n * (k + 1) / parts);
        }
        return;
    }
#endif
    ${name}_range(${args}, 0, n);
}
