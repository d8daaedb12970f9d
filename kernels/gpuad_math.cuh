// Device helpers for the names gpuad/ops/expr.py maps to gpuad_*: NumPy's semantics where the
// CUDA math library has no exact counterpart. The generated kernels inline this file, so each
// source compiles on its own (NVRTC has no include path to search).

// An index into [0, hi]: where a fused kernel computes a value it may then not select (the piece of
// a concatenation or a scatter an element does not read), it reads in range.
__device__ __forceinline__ long long gpuad_clamp(long long i, long long hi) {
    return i < 0 ? 0 : (i > hi ? hi : i);
}

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

// x >= 0 with erf(x) = y and erfc(x) = q, given both (q = 1 - y, exact): the shared core of
// erfinv and erfcinv. A start from Giles' single-precision approximation ("Approximating the
// erfinv function", GPU Computing Gems, 2011) or, far in the tail, from erfc's asymptotic form;
// then Newton's or Halley's steps, which bring it to the precision of T.
// Written here rather than with CUDA's erfinv so that the host build of the same kernels (the
// CPU's <cmath> has none) computes the same thing.
template <typename T> __device__ __forceinline__ T gpuad_inverse_erf(T y, T q) {
    T w = -log(q * (T(2) - q)), x;  // -log(1 - y^2)
    if (w < T(5)) {
        w = w - T(2.5);
        T p = T(2.81022636e-08);
        p = T(3.43273939e-07) + p * w;   p = T(-3.5233877e-06) + p * w;
        p = T(-4.39150654e-06) + p * w;  p = T(0.00021858087) + p * w;
        p = T(-0.00125372503) + p * w;   p = T(-0.00417768164) + p * w;
        p = T(0.246640727) + p * w;      p = T(1.50140941) + p * w;
        x = p * y;
    } else {  // q < 0.0034: erfc(x) ~ exp(-x^2) / (x sqrt(pi)), inverted to leading order
        const T l = -log(q);
        x = sqrt(l - T(0.5) * log(l) - T(0.5723649429247001));
    }
    // In the tail (y > 1/2) Newton's steps on log erfc(x) = log q, exact there and nearly
    // quadratic in x (erf(x) near 1 holds too few digits of the difference, and Halley's steps on
    // it crawl); else Halley's steps on erf(x) - y, whose f'' = -2 x f' makes the step f / (f' + x f).
    const T c = T(1.1283791670955126);  // 2 / sqrt(pi)
    for (int i = 0; i < 4; ++i) {
        const T slope = c * exp(-x * x);
        if (y > T(0.5)) {
            const T e = erfc(x);
            x = x + log(e / q) * e / slope;
        } else {
            const T f = erf(x) - y;
            x = x - f / (slope + x * f);
        }
    }
    return x;
}

// scipy.special.erfinv: +-inf at +-1, NaN outside [-1, 1].
template <typename T> __device__ __forceinline__ T gpuad_erfinv(T y) {
    if (!(fabs(y) < T(1))) {
        return fabs(y) == T(1) ? y / T(0) : (y - y) / T(0);
    }
    const T x = gpuad_inverse_erf(fabs(y), T(1) - fabs(y));
    return y < T(0) ? -x : x;
}

// scipy.special.erfcinv, accurate for q near 0 (where erfinv(1 - q) would lose q's digits):
// inf at 0, -inf at 2, NaN outside [0, 2]; erfcinv(q) = -erfcinv(2 - q), 2 - q exact for q >= 1.
template <typename T> __device__ __forceinline__ T gpuad_erfcinv(T q) {
    if (!(q > T(0) && q < T(2))) {
        return q == T(0) ? T(1) / T(0) : (q == T(2) ? T(-1) / T(0) : (q - q) / T(0));
    }
    return q <= T(1) ? gpuad_inverse_erf(T(1) - q, q) : -gpuad_inverse_erf(q - T(1), T(2) - q);
}

// scipy.special.digamma: the recurrence psi(x) = psi(x + 1) - 1/x up to x >= 10, then the
// asymptotic series in 1/x^2 (Bernoulli numbers B2..B14: below T's precision from there on);
// reflection psi(x) = psi(1 - x) - pi / tan(pi x) for x < 0. Poles: -inf at 0, NaN at the
// negative integers, as scipy's.
template <typename T> __device__ __forceinline__ T gpuad_digamma(T x) {
    if (x <= T(0) && x == floor(x)) {
        return x == T(0) ? T(-1) / T(0) : (x - x) / T(0);
    }
    T shift = T(0);
    if (x < T(0)) {
        shift = -T(3.141592653589793) / tan(T(3.141592653589793) * x);
        x = T(1) - x;
    }
    while (x < T(10)) {
        shift -= T(1) / x;
        x += T(1);
    }
    const T r = T(1) / (x * x);
    const T series = r * (T(1) / 12 - r * (T(1) / 120 - r * (T(1) / 252 - r * (T(1) / 240 - r * (
        T(1) / 132 - r * (T(691) / 32760 - r * (T(1) / 12)))))));
    return shift + log(x) - T(0.5) / x - series;
}

// scipy.special.polygamma(n, x) for integer n >= 0: psi^(n)(x) = (-1)^(n+1) n! sum_k 1/(x+k)^(n+1).
// The terms with x + k < 15 are summed, the rest is the asymptotic series
// (n-1)!/x^n + n!/(2 x^(n+1)) + sum_k B_2k (2k+n-1)!/((2k)! x^(2k+n)), here divided by (n-1)!.
// NaN for an order that is not a non-negative integer, and for x < -1e6 (the sum would be long).
template <typename T> __device__ __forceinline__ T gpuad_polygamma(T n, T x) {
    if (n == T(0)) {
        return gpuad_digamma(x);
    }
    if (n < T(0) || n != floor(n) || x < T(-1e6)) {
        return (n - n) / T(0);
    }
    T head = T(0);  // sum over the small x + k of 1/(x+k)^(n+1)
    for (; x < T(15); x += T(1)) {
        head += pow(x, -(n + T(1)));
    }
    const T b[9] = {T(1) / 6, T(-1) / 30, T(1) / 42, T(-1) / 30, T(5) / 66, T(-691) / 2730, T(7) / 6,
                    T(-3617) / 510, T(43867) / 798};
    const T inv = T(1) / x, inv2 = inv * inv;
    const T lead = pow(inv, n);
    T tail = lead * (T(1) + T(0.5) * n * inv);
    T f = lead * inv2 * n * (n + T(1)) / T(2);  // (2k+n-1)! / ((2k)! (n-1)!) / x^(2k+n) at k = 1
    for (int k = 1; k <= 9; ++k) {
        tail += b[k - 1] * f;
        f *= (T(2 * k) + n) * (T(2 * k + 1) + n) / T((2 * k + 1) * (2 * k + 2)) * inv2;
    }
    T factorial = T(1);  // (n-1)!
    for (T j = T(2); j < n; j += T(1)) {
        factorial *= j;
    }
    const T sign = fmod(n, T(2)) == T(1) ? T(1) : T(-1);
    return sign * factorial * (n * head + tail);
}
