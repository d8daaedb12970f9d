// One fusion region of a compiled program, compiled for the CPU (g++, a thread pool over the cores).
// The body is the same text the CUDA kernel of the region gets (kernels/region.cu): element i
// of the region's iteration space reads its inputs through their strides (0 along broadcast
// axes), computes the region's values in registers and writes the outputs the program needs.
// The loop over a range of elements is its own function, vectorised (`omp simd`, glibc's vector
// math where built with it, an AVX2 clone beside the baseline). Above 256k elements the range is
// split over the pool's threads (gpuad_split).
// Where the body clamps indices into range (shifted reads near the ends), the elements between
// lo and hi run the body without the clamps (fast_body): plain loads instead of gathers.
//
// Slots (filled by gpuad/kernels/region.py): name, params, args (the parameters' names), body,
// fast_body (empty where there is none), lo, hi.
static GPUAD_CLONES void ${name}_safe(${params}, const long long begin, const long long end) {
#pragma omp simd
    for (long long i = begin; i < end; ++i) {
        ${body}
    }
}

static GPUAD_CLONES void ${name}_fast(${params}, const long long begin, const long long end) {
#pragma omp simd
    for (long long i = begin; i < end; ++i) {
        ${fast_body}
    }
}

static void ${name}_range(${params}, const long long begin, const long long end) {
    const long long lo = begin > ${lo}LL ? begin : ${lo}LL, hi = end < ${hi}LL ? end : ${hi}LL;
    if (lo >= hi) {
        ${name}_safe(${args}, begin, end);
        return;
    }
    ${name}_safe(${args}, begin, lo);
    ${name}_fast(${args}, lo, hi);
    ${name}_safe(${args}, hi, end);
}

extern "C" void ${name}(${params}, const long long n) {
    gpuad_split(n, n, [&](const long long begin, const long long end) {
        ${name}_range(${args}, begin, end);
    });
}
