// A fusion region of two or more loop axes compiled for the CPU (the one-axis loop is
// kernels/region_host.cpp): a loop over the rows (the leading axes) around a vectorised loop
// along the last axis. Element i = r * cols + j; the body reads the row's digits from r and the
// last one from j, so no division by a row length that is no power of 2 stops the vectorisation,
// and where the body clamps only the last index (shifted reads near a row's ends), the columns
// between lo and hi run it without the clamps (fast_body): contiguous loads instead of gathers.
//
// Slots (filled by gpuad/kernels/region.py): name, params, args, body, fast_body, lo, hi, cols.
static GPUAD_CLONES void ${name}_safe(${params}, const long long r, const long long begin, const long long end) {
#pragma omp simd
    for (long long j = begin; j < end; ++j) {
        const long long i = r * ${cols}LL + j;
        ${body}
    }
}

static GPUAD_CLONES void ${name}_fast(${params}, const long long r, const long long begin, const long long end) {
#pragma omp simd
    for (long long j = begin; j < end; ++j) {
        const long long i = r * ${cols}LL + j;
        ${fast_body}
    }
}

static void ${name}_range(${params}, const long long begin, const long long end) {
    for (long long r = begin; r < end; ++r) {
        if (${lo}LL >= ${hi}LL) {
            ${name}_safe(${args}, r, 0, ${cols}LL);
            continue;
        }
        ${name}_safe(${args}, r, 0, ${lo}LL);
        ${name}_fast(${args}, r, ${lo}LL, ${hi}LL);
        ${name}_safe(${args}, r, ${hi}LL, ${cols}LL);
    }
}

extern "C" void ${name}(${params}, const long long n) {
    gpuad_split(n / ${cols}LL, n, [&](const long long begin, const long long end) {
        ${name}_range(${args}, begin, end);
    });
}
