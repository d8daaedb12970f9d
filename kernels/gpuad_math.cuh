// Device helpers for the names gpuad/ops/expr.py maps to gpuad_*: NumPy's semantics where the
// CUDA math library has no exact counterpart. The generated kernels inline this file, so each
// source compiles on its own (NVRTC has no include path to search).

// NumPy: sign(0) is 0 and sign(nan) is nan, so anything neither positive nor negative passes through.
template <typename T> __device__ __forceinline__ T gpuad_sign(T x) {
    return x > T(0) ? T(1) : (x < T(0) ? T(-1) : x);
}

// NumPy's maximum and minimum propagate a NaN from either side; CUDA's fmax/fmin would drop it.
template <typename T> __device__ __forceinline__ T gpuad_maximum(T a, T b) {
    return (a > b || a != a) ? a : b;
}

template <typename T> __device__ __forceinline__ T gpuad_minimum(T a, T b) {
    return (a < b || a != a) ? a : b;
}

// NumPy's remainder takes the sign of the divisor (Python's %); CUDA's fmod takes the dividend's.
template <typename T> __device__ __forceinline__ T gpuad_remainder(T a, T b) {
    const T r = fmod(a, b);
    return (r != T(0) && ((r < T(0)) != (b < T(0)))) ? r + b : r;
}
