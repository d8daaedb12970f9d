// Complex values in the generated kernels (complex64 and complex128: NumPy's layout, the real part
// first), for CUDA and the host alike: NVRTC has no <complex> and CuPy's thrust headers need an
// include path, so the arithmetic and the functions the rule table spells for complex values
// (gpuad/ops/table.py: HOLOMORPHIC) are written here, with NumPy's formulas where NumPy has its own
// (division, integer powers, expm1, log1p, exp2, log2, log10) and Kahan's ("Branch cuts for
// complex elementary functions", 1987) for the inverse functions: the principal branches NumPy's C
// library takes. The per-op kernels of complex values and every fusion region include this file.
#ifndef GPUAD_COMPLEX_CUH
#define GPUAD_COMPLEX_CUH

// The functions are called on the GPU, not inlined (each holds several transcendentals with long
// slow paths: inlined at every call, a region of all of them took NVRTC minutes); inlined on the host.
#ifdef __CUDACC__
#define GPUAD_COMPLEX_CALLED __device__ __noinline__
#else
#define GPUAD_COMPLEX_CALLED inline
#endif

template <typename T> struct gpuad_complex {
    T re, im;
    gpuad_complex() = default;
    __device__ __forceinline__ gpuad_complex(T r, T i) : re(r), im(i) {}
    // a real value (a literal, a real operand of a complex result) is the complex r + 0i
    template <typename R> __device__ __forceinline__ gpuad_complex(R r) : re(T(r)), im(T(0)) {}
    template <typename R> __device__ __forceinline__ gpuad_complex(gpuad_complex<R> z) : re(T(z.re)), im(T(z.im)) {}
    // to a real type: the real part (NumPy's cast, without its warning)
    template <typename R> __device__ __forceinline__ explicit operator R() const { return R(re); }
    __device__ __forceinline__ gpuad_complex& operator+=(gpuad_complex b) {
        re += b.re;
        im += b.im;
        return *this;
    }
};

template <typename T> __device__ __forceinline__ gpuad_complex<T> operator+(gpuad_complex<T> a, gpuad_complex<T> b) {
    return gpuad_complex<T>(a.re + b.re, a.im + b.im);
}
template <typename T> __device__ __forceinline__ gpuad_complex<T> operator-(gpuad_complex<T> a, gpuad_complex<T> b) {
    return gpuad_complex<T>(a.re - b.re, a.im - b.im);
}
template <typename T> __device__ __forceinline__ gpuad_complex<T> operator-(gpuad_complex<T> a) {
    return gpuad_complex<T>(-a.re, -a.im);
}
template <typename T> __device__ __forceinline__ gpuad_complex<T> operator*(gpuad_complex<T> a, gpuad_complex<T> b) {
    return gpuad_complex<T>(a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re);
}
// NumPy's division (Smith's, scaled by the larger part of b; a zero b divides each part by |b|)
template <typename T> GPUAD_COMPLEX_CALLED gpuad_complex<T> operator/(gpuad_complex<T> a, gpuad_complex<T> b) {
    const T ar = fabs(b.re), ai = fabs(b.im);
    if (ar >= ai) {
        if (ar == T(0) && ai == T(0)) {
            return gpuad_complex<T>(a.re / ar, a.im / ai);
        }
        const T rat = b.im / b.re, scl = T(1) / (b.re + b.im * rat);
        return gpuad_complex<T>((a.re + a.im * rat) * scl, (a.im - a.re * rat) * scl);
    }
    const T rat = b.re / b.im, scl = T(1) / (b.im + b.re * rat);
    return gpuad_complex<T>((a.re * rat + a.im) * scl, (a.im * rat - a.re) * scl);
}
template <typename T> __device__ __forceinline__ bool operator==(gpuad_complex<T> a, gpuad_complex<T> b) {
    return a.re == b.re && a.im == b.im;
}
template <typename T> __device__ __forceinline__ bool operator!=(gpuad_complex<T> a, gpuad_complex<T> b) {
    return !(a == b);
}

// i z and -i z: the inverse functions and tan are their siblings turned a quarter
template <typename T> __device__ __forceinline__ gpuad_complex<T> gpuad_times_i(gpuad_complex<T> z) {
    return gpuad_complex<T>(-z.im, z.re);
}
template <typename T> __device__ __forceinline__ gpuad_complex<T> gpuad_over_i(gpuad_complex<T> z) {
    return gpuad_complex<T>(z.im, -z.re);
}

// ------------------------------------------------------------------ the parts (gpuad's real, imag, conj)
template <typename T> __device__ __forceinline__ T gpuad_real(T x) { return x; }
template <typename T> __device__ __forceinline__ T gpuad_imag(T) { return T(0); }
template <typename T> __device__ __forceinline__ T gpuad_conj(T x) { return x; }
template <typename T> __device__ __forceinline__ T gpuad_real(gpuad_complex<T> z) { return z.re; }
template <typename T> __device__ __forceinline__ T gpuad_imag(gpuad_complex<T> z) { return z.im; }
template <typename T> __device__ __forceinline__ gpuad_complex<T> gpuad_conj(gpuad_complex<T> z) {
    return gpuad_complex<T>(z.re, -z.im);
}

// ------------------------------------------------------------------ exponentials and logarithms
template <typename T> GPUAD_COMPLEX_CALLED gpuad_complex<T> exp(gpuad_complex<T> z) {
    const T r = exp(z.re);
    return gpuad_complex<T>(r * cos(z.im), r * sin(z.im));
}
template <typename T> GPUAD_COMPLEX_CALLED gpuad_complex<T> log(gpuad_complex<T> z) {
    return gpuad_complex<T>(log(hypot(z.re, z.im)), atan2(z.im, z.re));
}
template <typename T> __device__ __forceinline__ gpuad_complex<T> gpuad_scaled(gpuad_complex<T> z, T c) {
    return gpuad_complex<T>(z.re * c, z.im * c);
}
template <typename T> GPUAD_COMPLEX_CALLED gpuad_complex<T> exp2(gpuad_complex<T> z) {
    return exp(gpuad_scaled(z, T(0.6931471805599453)));
}
template <typename T> GPUAD_COMPLEX_CALLED gpuad_complex<T> log2(gpuad_complex<T> z) {
    return gpuad_scaled(log(z), T(1.4426950408889634));
}
template <typename T> GPUAD_COMPLEX_CALLED gpuad_complex<T> log10(gpuad_complex<T> z) {
    return gpuad_scaled(log(z), T(0.4342944819032518));
}
// exp(z) - 1 without the cancellation near 0: expm1(x) cos y - 2 sin^2(y/2) + i exp(x) sin y
template <typename T> GPUAD_COMPLEX_CALLED gpuad_complex<T> expm1(gpuad_complex<T> z) {
    const T s = sin(z.im / T(2));
    return gpuad_complex<T>(expm1(z.re) * cos(z.im) - T(2) * s * s, exp(z.re) * sin(z.im));
}
template <typename T> GPUAD_COMPLEX_CALLED gpuad_complex<T> log1p(gpuad_complex<T> z) {
    return gpuad_complex<T>(log(hypot(z.re + T(1), z.im)), atan2(z.im, z.re + T(1)));
}
// the principal root, from the larger of |z| +- x (no cancellation): (t, y / 2t) or (|y| / 2t, +-t)
template <typename T> GPUAD_COMPLEX_CALLED gpuad_complex<T> sqrt(gpuad_complex<T> z) {
    if (z.re == T(0) && z.im == T(0)) {
        return gpuad_complex<T>(T(0), z.im);
    }
    const T t = sqrt((hypot(z.re, z.im) + fabs(z.re)) / T(2));
    if (z.re >= T(0)) {
        return gpuad_complex<T>(t, z.im / (T(2) * t));
    }
    return gpuad_complex<T>(fabs(z.im) / (T(2) * t), copysign(t, z.im));
}
// NumPy's power: 1 at b = 0, 0 at a = 0 for a real positive b; a small integer b by squarings;
// else exp(b log a)
template <typename T> GPUAD_COMPLEX_CALLED gpuad_complex<T> gpuad_pow(gpuad_complex<T> a, gpuad_complex<T> b) {
    if (b.re == T(0) && b.im == T(0)) {
        return gpuad_complex<T>(T(1), T(0));
    }
    if (a.re == T(0) && a.im == T(0)) {
        return b.re > T(0) && b.im == T(0) ? gpuad_complex<T>(T(0), T(0))
                                             : gpuad_complex<T>((b.re - b.re) / T(0), (b.re - b.re) / T(0));
    }
    if (b.im == T(0) && b.re == floor(b.re) && fabs(b.re) < T(100)) {
        long long n = (long long)fabs(b.re);
        gpuad_complex<T> r(T(1), T(0)), p = a;
        for (; n; n >>= 1) {
            if (n & 1) {
                r = r * p;
            }
            p = p * p;
        }
        return b.re < T(0) ? gpuad_complex<T>(T(1), T(0)) / r : r;
    }
    return exp(b * log(a));
}
// the half powers gpuad/ops/expr.py lowers by (gpuad_math.cuh's are real): NumPy's power here too
template <typename T> __device__ __forceinline__ gpuad_complex<T> gpuad_pow_half(gpuad_complex<T> z) {
    return gpuad_pow(z, gpuad_complex<T>(T(0.5)));
}
template <typename T> __device__ __forceinline__ gpuad_complex<T> gpuad_pow_minus_half(gpuad_complex<T> z) {
    return gpuad_pow(z, gpuad_complex<T>(T(-0.5)));
}

// ------------------------------------------------------------------ trigonometric and hyperbolic
template <typename T> GPUAD_COMPLEX_CALLED gpuad_complex<T> gpuad_sin(gpuad_complex<T> z) {
    return gpuad_complex<T>(sin(z.re) * cosh(z.im), cos(z.re) * sinh(z.im));
}
template <typename T> GPUAD_COMPLEX_CALLED gpuad_complex<T> gpuad_cos(gpuad_complex<T> z) {
    return gpuad_complex<T>(cos(z.re) * cosh(z.im), -sin(z.re) * sinh(z.im));
}
template <typename T> GPUAD_COMPLEX_CALLED gpuad_complex<T> sinh(gpuad_complex<T> z) {
    return gpuad_complex<T>(sinh(z.re) * cos(z.im), cosh(z.re) * sin(z.im));
}
template <typename T> GPUAD_COMPLEX_CALLED gpuad_complex<T> cosh(gpuad_complex<T> z) {
    return gpuad_complex<T>(cosh(z.re) * cos(z.im), sinh(z.re) * sin(z.im));
}
// (sinh x cosh x + i sin y cos y) / (sinh^2 x + cos^2 y); past |x| = 20 the real part is +-1 to
// the last digit and the quotient would overflow
template <typename T> GPUAD_COMPLEX_CALLED gpuad_complex<T> tanh(gpuad_complex<T> z) {
    const T s = sin(z.im), c = cos(z.im);
    if (fabs(z.re) > T(20)) {
        return gpuad_complex<T>(copysign(T(1), z.re), T(4) * s * c * exp(T(-2) * fabs(z.re)));
    }
    const T sh = sinh(z.re), d = sh * sh + c * c;
    return gpuad_complex<T>(sh * cosh(z.re) / d, s * c / d);
}
template <typename T> GPUAD_COMPLEX_CALLED gpuad_complex<T> gpuad_tan(gpuad_complex<T> z) {
    return gpuad_over_i(tanh(gpuad_times_i(z)));
}
// Kahan's: with s = sqrt(1 - z), t = sqrt(1 + z), asin z = atan2(x, Re(s t)) + i asinh(Im(conj(s) t)),
// acos z = 2 atan2(Re s, Re t) + i asinh(Im(conj(t) s))
template <typename T> GPUAD_COMPLEX_CALLED gpuad_complex<T> asin(gpuad_complex<T> z) {
    const gpuad_complex<T> s = sqrt(gpuad_complex<T>(T(1) - z.re, -z.im)), t = sqrt(gpuad_complex<T>(T(1) + z.re, z.im));
    return gpuad_complex<T>(atan2(z.re, s.re * t.re - s.im * t.im), asinh(s.re * t.im - s.im * t.re));
}
template <typename T> GPUAD_COMPLEX_CALLED gpuad_complex<T> acos(gpuad_complex<T> z) {
    const gpuad_complex<T> s = sqrt(gpuad_complex<T>(T(1) - z.re, -z.im)), t = sqrt(gpuad_complex<T>(T(1) + z.re, z.im));
    return gpuad_complex<T>(T(2) * atan2(s.re, t.re), asinh(t.re * s.im - t.im * s.re));
}
// acosh z = asinh(Re(conj(s) t)) + 2i atan2(Im s, Re t), with s = sqrt(z - 1), t = sqrt(z + 1)
template <typename T> GPUAD_COMPLEX_CALLED gpuad_complex<T> acosh(gpuad_complex<T> z) {
    const gpuad_complex<T> s = sqrt(gpuad_complex<T>(z.re - T(1), z.im)), t = sqrt(gpuad_complex<T>(z.re + T(1), z.im));
    return gpuad_complex<T>(asinh(s.re * t.re + s.im * t.im), T(2) * atan2(s.im, t.re));
}
template <typename T> GPUAD_COMPLEX_CALLED gpuad_complex<T> asinh(gpuad_complex<T> z) {
    return gpuad_over_i(asin(gpuad_times_i(z)));
}
// atanh z = log((1 + z) / (1 - z)) / 2, Kahan's form: (log1p(4x / ((1 - x)^2 + y^2)) / 4,
// atan2(2y, (1 - x)(1 + x) - y^2) / 2)
template <typename T> GPUAD_COMPLEX_CALLED gpuad_complex<T> atanh(gpuad_complex<T> z) {
    const T x = z.re, y = z.im, d = (T(1) - x) * (T(1) - x) + y * y;
    return gpuad_complex<T>(log1p(T(4) * x / d) / T(4), atan2(T(2) * y, (T(1) - x) * (T(1) + x) - y * y) / T(2));
}
template <typename T> GPUAD_COMPLEX_CALLED gpuad_complex<T> atan(gpuad_complex<T> z) {
    return gpuad_over_i(atanh(gpuad_times_i(z)));
}
#endif
