// Device helpers for the names gpuad/ops/expr.py maps to gpuad_*: NumPy's semantics where the
// CUDA math library has no exact counterpart. The generated kernels inline this file, so each
// source compiles on its own (NVRTC has no include path to search).

// Index helpers of the fused kernels (gpuad/compiler/index.py prints them), templates on the index
// type: long long, or int in a region kernel's 32-bit variant (gpuad/kernels/index32.py).
// An index into [0, hi]: where a fused kernel computes a value it may then not select (the piece of
// a concatenation or a scatter an element does not read), it reads in range.
template <typename I> __device__ __forceinline__ I gpuad_clamp(I i, I hi) {
    return i < 0 ? 0 : (i > hi ? hi : i);
}

// The same where the index is known in range (the host's fast body between lo and hi).
template <typename I> __device__ __forceinline__ I gpuad_unclamped(I i, I) {
    return i;
}

// Python's floor division and modulo by a positive n, for an i that may be negative.
template <typename I> __device__ __forceinline__ I gpuad_floordiv(I i, I n) {
    return i >= 0 ? i / n : -((n - 1 - i) / n);
}

template <typename I> __device__ __forceinline__ I gpuad_floormod(I i, I n) {
    const I r = i % n;
    return r < 0 ? r + n : r;
}

#ifdef __CUDACC__
// A warp's partial sums of one fused sum (gpuad/compiler/warps.py), added by shuffles: every lane
// gets the total. All 32 lanes call it together (they share one loop element).
template <typename T> __device__ __forceinline__ T gpuad_warp_sum(T x) {
    for (int d = 16; d; d >>= 1) x += __shfl_xor_sync(0xffffffffu, x, d);
    return x;
}
#endif

// Where element i of an elementwise op's output reads an argument broadcast to it without a copy
// (gpuad/kernels/plan.py): r = 0, an argument of the output's shape (at i); else its elements
// repeat every q output elements and its r elements cycle (r = 1: one element), the output
// having fewer than 2^32 elements (a 32-bit division, a third of a 64-bit one's instructions). q
// and r are the same for every thread: the branches cost no divergence, and the full and
// one-element cases no division.
__device__ __forceinline__ long long gpuad_broadcast(long long i, long long q, long long r) {
    return r == 0 ? i : (r == 1 ? 0 : (unsigned)i / (unsigned)q % (unsigned)r);
}

// Double sin, cos, tan, pow and erf carry long slow paths (argument reduction, special cases) that
// NVRTC inlines at every call: a chain of 400 sines took 10.8 s to compile, its jacfwd 30-39 s. On
// the GPU they are called instead (__noinline__: one copy per kernel); float and the host inline
// them (the host's loops vectorise through glibc's vector math).
#ifdef __CUDACC__
#define GPUAD_CALLED __device__ __noinline__
#else
#define GPUAD_CALLED inline
#endif
#define GPUAD_CALLED_DOUBLE(name, f)                                      \
    __device__ __forceinline__ float name(float x) { return f(x); }       \
    GPUAD_CALLED double name(double x) { return f(x); }
GPUAD_CALLED_DOUBLE(gpuad_sin, sin)
GPUAD_CALLED_DOUBLE(gpuad_cos, cos)
GPUAD_CALLED_DOUBLE(gpuad_tan, tan)
GPUAD_CALLED_DOUBLE(gpuad_erf, erf)
__device__ __forceinline__ float gpuad_pow(float a, float b) { return pow(a, b); }
GPUAD_CALLED double gpuad_pow(double a, double b) { return pow(a, b); }

// Powers by the literal exponents gpuad/ops/expr.py lowers without pow, each within 1 ulp of it:
// x * x is rounded once (pow's own result), x * x * x twice (at most 2 ulps, none over 1 in 6e7
// double arguments tried); 1 / x once; x ** 0.5 is sqrt(x), as NumPy's power computes it (-0 at -0, NaN
// at -inf); x ** -0.5 is sqrt(1 / x) (under 1 ulp: 1 / sqrt(x) lands 2 ulps off), +inf at +-0, +0
// at -inf, through x * 4^k where 1 / x would overflow (subnormal x).
template <typename T> __device__ __forceinline__ T gpuad_pow2(T x) { return x * x; }
template <typename T> __device__ __forceinline__ T gpuad_pow3(T x) { return x * x * x; }
// float's twice-rounded cube lands 2 ulps off in 1 of 4e4 arguments: in double it is rounded once more
__device__ __forceinline__ float gpuad_pow3(float x) { const double d = x; return float(d * d * d); }
template <typename T> __device__ __forceinline__ T gpuad_pow_1(T x) { return T(1) / x; }
template <typename T> __device__ __forceinline__ T gpuad_pow_half(T x) { return sqrt(x); }
template <typename T> __device__ __forceinline__ T gpuad_pow_minus_half(T x, T least, T scale) {
    const bool tiny = x < least;
    const T r = sqrt(T(1) / (tiny ? x * scale * scale : x)) + T(0);
    return x == T(0) ? T(1) / T(0) : (tiny ? r * scale : r);
}
__device__ __forceinline__ float gpuad_pow_minus_half(float x) { return gpuad_pow_minus_half(x, 1.17549435e-38f, 4096.0f); }
__device__ __forceinline__ double gpuad_pow_minus_half(double x) {
    return gpuad_pow_minus_half(x, 2.2250738585072014e-308, 134217728.0);
}

// NumPy: sign(0) and sign(-0) are +0, sign(nan) is nan.
template <typename T> __device__ __forceinline__ T gpuad_sign(T x) {
    return x > T(0) ? T(1) : (x < T(0) ? T(-1) : (x == T(0) ? T(0) : x));
}

// NumPy's maximum and minimum propagate a NaN from either side; CUDA's fmax/fmin would drop it.
template <typename T> __device__ __forceinline__ T gpuad_maximum(T a, T b) {
    return (a > b || a != a) ? a : b;
}

template <typename T> __device__ __forceinline__ T gpuad_minimum(T a, T b) {
    return (a < b || a != a) ? a : b;
}

// NumPy's remainder takes the sign of the divisor (Python's %), a zero too; CUDA's fmod takes the dividend's.
template <typename T> __device__ __forceinline__ T gpuad_remainder(T a, T b) {
    const T r = fmod(a, b);
    return r == T(0) ? copysign(T(0), b) : ((r < T(0)) != (b < T(0)) ? r + b : r);
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

// scipy.special's i0, i1, i0e and i1e are Cephes' (Moshier): Chebyshev series in x/2 - 2 for
// |x| <= 8, and in 32/x - 2 over sqrt(x) above, of the scaled functions exp(-|x|) I_n(x); the same
// coefficients here, so the kernels give scipy's values, also at 0, inf (I0, I1: NaN, as scipy's)
// and NaN. Highest order first, as Cephes' chbevl reads them.
__device__ const double gpuad_i0_a[30] = {
    -4.41534164647933937950E-18, 3.33079451882223809783E-17, -2.43127984654795469359E-16, 1.71539128555513303061E-15,
    -1.16853328779934516808E-14, 7.67618549860493561688E-14, -4.85644678311192946090E-13, 2.95505266312963983461E-12,
    -1.72682629144155570723E-11, 9.67580903537323691224E-11, -5.18979560163526290666E-10, 2.65982372468238665035E-9,
    -1.30002500998624804212E-8, 6.04699502254191894932E-8, -2.67079385394061173391E-7, 1.11738753912010371815E-6,
    -4.41673835845875056359E-6, 1.64484480707288970893E-5, -5.75419501008210370398E-5, 1.88502885095841655729E-4,
    -5.76375574538582365885E-4, 1.63947561694133579842E-3, -4.32430999505057594430E-3, 1.05464603945949983183E-2,
    -2.37374148058994688156E-2, 4.93052842396707084878E-2, -9.49010970480476444210E-2, 1.71620901522208775349E-1,
    -3.04682672343198398683E-1, 6.76795274409476084995E-1
};
__device__ const double gpuad_i0_b[25] = {
    -7.23318048787475395456E-18, -4.83050448594418207126E-18, 4.46562142029675999901E-17, 3.46122286769746109310E-17,
    -2.82762398051658348494E-16, -3.42548561967721913462E-16, 1.77256013305652638360E-15, 3.81168066935262242075E-15,
    -9.55484669882830764870E-15, -4.15056934728722208663E-14, 1.54008621752140982691E-14, 3.85277838274214270114E-13,
    7.18012445138366623367E-13, -1.79417853150680611778E-12, -1.32158118404477131188E-11, -3.14991652796324136454E-11,
    1.18891471078464383424E-11, 4.94060238822496958910E-10, 3.39623202570838634515E-9, 2.26666899049817806459E-8,
    2.04891858946906374183E-7, 2.89137052083475648297E-6, 6.88975834691682398426E-5, 3.36911647825569408990E-3,
    8.04490411014108831608E-1
};
__device__ const double gpuad_i1_a[29] = {
    2.77791411276104639959E-18, -2.11142121435816608115E-17, 1.55363195773620046921E-16, -1.10559694773538630805E-15,
    7.60068429473540693410E-15, -5.04218550472791168711E-14, 3.22379336594557470981E-13, -1.98397439776494371520E-12,
    1.17361862988909016308E-11, -6.66348972350202774223E-11, 3.62559028155211703701E-10, -1.88724975172282928790E-9,
    9.38153738649577178388E-9, -4.44505912879632808065E-8, 2.00329475355213526229E-7, -8.56872026469545474066E-7,
    3.47025130813767847674E-6, -1.32731636560394358279E-5, 4.78156510755005422638E-5, -1.61760815825896745588E-4,
    5.12285956168575772895E-4, -1.51357245063125314899E-3, 4.15642294431288815669E-3, -1.05640848946261981558E-2,
    2.47264490306265168283E-2, -5.29459812080949914269E-2, 1.02643658689847095384E-1, -1.76416518357834055153E-1,
    2.52587186443633654823E-1
};
__device__ const double gpuad_i1_b[25] = {
    7.51729631084210481353E-18, 4.41434832307170791151E-18, -4.65030536848935832153E-17, -3.20952592199342395980E-17,
    2.96262899764595013876E-16, 3.30820231092092828324E-16, -1.88035477551078244854E-15, -3.81440307243700780478E-15,
    1.04202769841288027642E-14, 4.27244001671195135429E-14, -2.10154184277266431302E-14, -4.08355111109219731823E-13,
    -7.19855177624590851209E-13, 2.03562854414708950722E-12, 1.41258074366137813316E-11, 3.25260358301548823856E-11,
    -1.89749581235054123450E-11, -5.58974346219658380687E-10, -3.83538038596423702205E-9, -2.63146884688951950684E-8,
    -2.51223623787020892529E-7, -3.88256480887769039346E-6, -1.10588938762623716291E-4, -9.76109749136146840777E-3,
    7.78576235018280120474E-1
};

// Cephes' chbevl: sum' c_i T_i(x / 2) by Clenshaw's recurrence.
template <typename T> __device__ __forceinline__ T gpuad_chbevl(T x, const double* c, int n) {
    T b0 = T(c[0]), b1 = T(0), b2 = T(0);
    for (int i = 1; i < n; ++i) {
        b2 = b1;
        b1 = b0;
        b0 = x * b1 - b2 + T(c[i]);
    }
    return T(0.5) * (b0 - b2);
}

template <typename T> __device__ __forceinline__ T gpuad_i0e(T x) {
    const T z = fabs(x);
    return z <= T(8) ? gpuad_chbevl(z / T(2) - T(2), gpuad_i0_a, 30)
                     : gpuad_chbevl(T(32) / z - T(2), gpuad_i0_b, 25) / sqrt(z);
}

// Odd: the series of |x|, signed like x.
template <typename T> __device__ __forceinline__ T gpuad_i1e(T x) {
    const T z = fabs(x);
    const T r = z <= T(8) ? gpuad_chbevl(z / T(2) - T(2), gpuad_i1_a, 29) * z
                          : gpuad_chbevl(T(32) / z - T(2), gpuad_i1_b, 25) / sqrt(z);
    return x < T(0) ? -r : r;
}

// exp(|x|) overflows to inf from |x| = 710 on, so I0 and I1 do too, and are NaN at +-inf.
template <typename T> __device__ __forceinline__ T gpuad_i0(T x) {
    return exp(fabs(x)) * gpuad_i0e(x);
}

template <typename T> __device__ __forceinline__ T gpuad_i1(T x) {
    return exp(fabs(x)) * gpuad_i1e(x);
}

// scipy.special's j0, j1, y0, y1, jn and yn: the C library's (CUDA's on the device, glibc's on the
// host), in double, and NaN at +-inf (x - x), as scipy's are. jn and yn truncate a fractional order,
// as scipy's yn does; a negative one is J(-n) = (-1)^n J(n) (Y likewise), which CUDA leaves NaN.
template <typename T> __device__ __forceinline__ T gpuad_j0(T x) { return isinf(x) ? x - x : T(j0(double(x))); }
template <typename T> __device__ __forceinline__ T gpuad_j1(T x) { return isinf(x) ? x - x : T(j1(double(x))); }
template <typename T> __device__ __forceinline__ T gpuad_y0(T x) { return isinf(x) ? x - x : T(y0(double(x))); }
template <typename T> __device__ __forceinline__ T gpuad_y1(T x) { return isinf(x) ? x - x : T(y1(double(x))); }

template <typename T, typename F> __device__ __forceinline__ T gpuad_whole_order(T n, T x, F f) {
    if (n != n || isinf(x)) {
        return n + (x - x);
    }
    const int k = int(n);
    const double y = f(k < 0 ? -k : k, double(x));
    return T(k < 0 && (k & 1) ? -y : y);
}

template <typename T> __device__ __forceinline__ T gpuad_jn(T n, T x) {
    return gpuad_whole_order(n, x, [](int k, double z) { return jn(k, z); });
}

template <typename T> __device__ __forceinline__ T gpuad_yn(T n, T x) {
    return gpuad_whole_order(n, x, [](int k, double z) { return yn(k, z); });
}
