"""gpuad.scipy.special: scipy.special's names and semantics, differentiable in every mode.

erf, erfc, erfinv, erfcinv, gammaln, digamma, polygamma, the modified Bessel functions i0,
i1, i0e and i1e and the Bessel functions j0, j1, y0, y1, jn and yn are rows of the elementwise table
(gpuad/ops/table.py: fused CUDA kernels, every derivative order, vmap); the rest is composed
from them and from gpuad.numpy, numerically stable. On the NumPy backend the rows evaluate with
scipy.special (an ImportError names it where SciPy is not installed), on CuPy with
cupyx.scipy.special.
"""
import numpy as onp

from .. import numpy as gnp
from ..core import operand
from ..ops.elementwise import PRIMS

__all__ = ["expit", "logit", "log_softmax", "softmax", "logsumexp", "xlogy", "xlog1py", "entr",
           "erf", "erfc", "erfinv", "erfcinv", "gammaln", "digamma", "psi", "polygamma", "gamma", "betaln", "beta",
           "ndtr", "log_ndtr", "ndtri", "gammainc", "gammaincc", "betainc", "i0", "i1", "i0e", "i1e",
           "j0", "j1", "y0", "y1", "jn", "yn", "iv", "ive", "gammasgn", "rgamma", "multigammaln"]

erf, erfc, erfinv, erfcinv, gammaln, digamma = (PRIMS[n] for n in ("erf", "erfc", "erfinv", "erfcinv", "gammaln",
                                                                    "digamma"))
i0, i1, i0e, i1e = (PRIMS[n] for n in ("i0", "i1", "i0e", "i1e"))  # I0' = I1, I1' = I0 - I1 / x (1/2 at 0)
j0, j1, y0, y1 = (PRIMS[n] for n in ("j0", "j1", "y0", "y1"))  # J0' = -J1, J1' = J0 - J1 / x, Y likewise
psi = digamma
_SQRT2 = 1.4142135623730951


def polygamma(n, x):
    """scipy.special.polygamma: the n-th derivative of digamma, for integer n >= 0 (NaN for other
    orders). Differentiable in x at every order (its derivative is polygamma(n + 1, x)); the
    order n carries no derivative.

    >>> import gpuad, gpuad.scipy.special as gsp
    >>> print(gsp.polygamma(1, 1.0).round(12), gpuad.grad(lambda x: gsp.polygamma(1, x))(1.0).round(12))
    1.644934066848 -2.404113806319
    """
    return PRIMS["polygamma"](n, x)


def jn(n, x):
    """The Bessel function of the first kind of integer order n (a fractional n is truncated, as
    yn's; scipy's jn, an alias of jv, takes real orders, which gpuad does not have). Differentiable
    in x at every order, (J(n-1) - J(n+1)) / 2; the order carries no derivative. On the CuPy
    backend (cupyx has no jn) it evaluates in gpuad.jit's kernels only.

    >>> import gpuad, gpuad.scipy.special as gsp
    >>> print(gsp.jn(2, 3.0).round(12), gpuad.grad(lambda x: gsp.jn(2, x))(3.0).round(12))
    0.486091260586 0.014998118135
    """
    return PRIMS["jn"](n, x)


def yn(n, x):
    """scipy.special.yn: the Bessel function of the second kind of integer order n (a fractional
    n is truncated, as scipy does). Differentiable in x at every order, (Y(n-1) - Y(n+1)) / 2; the
    order carries no derivative.

    >>> import gpuad, gpuad.scipy.special as gsp
    >>> print(gsp.yn(2, 3.0).round(12), gpuad.grad(lambda x: gsp.yn(2, x))(3.0).round(12))
    -0.160400393485 0.431608020448
    """
    return PRIMS["yn"](n, x)


def _gamma_sign(x):
    """The sign of Gamma(x): 1 for x > 0; for x < 0, -1 between -1 and 0, 1 between -2 and -1, ..."""
    odd = gnp.equal(gnp.remainder(gnp.floor(x), 2.0), 1.0)
    return gnp.where(gnp.logical_or(gnp.greater(x, 0), gnp.logical_not(odd)), 1.0, -1.0).astype(x.dtype)


def gammasgn(x):
    """scipy.special.gammasgn, the sign of Gamma(x) (piecewise constant: its derivative is 0).

    >>> import gpuad.scipy.special as gsp, gpuad.numpy as gnp
    >>> print(gsp.gammasgn(gnp.array([2.5, -0.5, -1.5])))
    [ 1. -1.  1.]
    """
    return _gamma_sign(gnp.asarray(x))


def rgamma(x):
    """scipy.special.rgamma, 1 / Gamma(x) = sign * exp(-gammaln(x)): 0 at the poles 0, -1, -2, ...
    (gammaln is inf there). Its derivative is -digamma(x) / Gamma(x).

    >>> import gpuad, gpuad.scipy.special as gsp
    >>> print(gsp.rgamma(4.0).round(12), gpuad.grad(gsp.rgamma)(1.0).round(12))  # 1/6, Euler's constant
    0.166666666667 0.577215664902
    """
    x = gnp.asarray(x)
    return _gamma_sign(x) * gnp.exp(gnp.negative(gammaln(x)))


def multigammaln(a, d):
    """scipy.special.multigammaln, the log of the multivariate gamma function of dimension d (an
    integer >= 1): d (d - 1) / 4 log(pi) + sum over j < d of gammaln(a - j / 2).

    >>> import gpuad.scipy.special as gsp
    >>> print(gsp.multigammaln(3.0, 2).round(12))  # log(pi^(1/2) Gamma(3) Gamma(5/2))
    1.550194993958
    """
    if int(d) != d or d < 1:
        raise ValueError(f"multigammaln: the dimension d must be an integer >= 1, got {d!r}")
    a, d = gnp.asarray(a), int(d)
    terms = gammaln(a[..., None] - 0.5 * gnp.arange(d, dtype=a.dtype if a.dtype.kind == "f" else None))
    return gnp.sum(terms, axis=-1) + 0.25 * d * (d - 1) * onp.log(onp.pi)


def gamma(x):
    """scipy.special.gamma, as sign * exp(gammaln(x)): its derivative is gamma(x) digamma(x).

    >>> import gpuad, gpuad.scipy.special as gsp, gpuad.numpy as gnp
    >>> print(gsp.gamma(gnp.array([5.0, -0.5])).round(10))
    [24.        -3.5449077]
    >>> print(gpuad.grad(gsp.gamma)(1.0).round(12))  # -Euler's constant
    -0.577215664902
    """
    x = gnp.asarray(x)
    return _gamma_sign(x) * gnp.exp(gammaln(x))


def betaln(a, b):
    """scipy.special.betaln, log|B(a, b)| = gammaln(a) + gammaln(b) - gammaln(a + b).

    >>> import gpuad.scipy.special as gsp
    >>> print(gsp.betaln(2.0, 3.0).round(12))  # log(1 / 12)
    -2.484906649788
    """
    a, b = gnp.asarray(a), gnp.asarray(b)
    return gammaln(a) + gammaln(b) - gammaln(a + b)


def beta(a, b):
    """scipy.special.beta, B(a, b) = Gamma(a) Gamma(b) / Gamma(a + b), through betaln and the signs.

    >>> import gpuad.scipy.special as gsp
    >>> print(gsp.beta(2.0, 3.0).round(12))
    0.083333333333
    """
    a, b = gnp.asarray(a), gnp.asarray(b)
    return _gamma_sign(a) * _gamma_sign(b) * _gamma_sign(a + b) * gnp.exp(betaln(a, b))


def ndtr(x):
    """scipy.special.ndtr, the standard normal CDF: erfc(-x / sqrt(2)) / 2, accurate in the left tail.

    >>> import gpuad.scipy.special as gsp, gpuad.numpy as gnp
    >>> print(gsp.ndtr(gnp.array([0.0, -10.0])))
    [5.00000000e-01 7.61985302e-24]
    """
    return 0.5 * erfc(gnp.negative(x) / _SQRT2)


# log(ndtr(x)) for x -> -inf: -x^2/2 - log(-x) - log(2 pi)/2 + log(1 - 1/x^2 + 3/x^4 - 15/x^6 ...).
# From x = -20 on, the terms left out are below 1e-15 of the result.
_TAIL = (1.0, -1.0, 3.0, -15.0, 105.0, -945.0, 10395.0)


def log_ndtr(x):
    """scipy.special.log_ndtr, log of the standard normal CDF, finite and accurate for any x: the
    asymptotic series below -20, log1p(-ndtr(-x)) above 6, log(ndtr(x)) between. Each branch
    sees inputs inside its range only, so the derivatives of the others stay finite.

    >>> import gpuad.scipy.special as gsp, gpuad.numpy as gnp
    >>> print(gsp.log_ndtr(gnp.array([-40.0, 0.0, 10.0])))
    [-8.04608442e+02 -6.93147181e-01 -7.61985302e-24]
    """
    x = gnp.asarray(x)
    left, right = gnp.less(x, -20.0), gnp.greater(x, 6.0)
    far = gnp.where(left, x, -20.0)
    r = 1.0 / (far * far)
    series = gnp.polyval(onp.array(_TAIL[::-1], dtype=r.dtype), r)
    tail = -0.5 * far * far - gnp.log(-far) - 0.9189385332046727 + gnp.log(series)
    upper = gnp.log1p(-ndtr(gnp.negative(gnp.where(right, x, 6.0))))
    middle = gnp.log(ndtr(gnp.where(gnp.logical_or(left, right), 0.0, x)))
    return gnp.where(left, tail, gnp.where(right, upper, middle))


def ndtri(p):
    """scipy.special.ndtri, the inverse of ndtr: -sqrt(2) erfcinv(2p), accurate for small p too.

    >>> import gpuad.scipy.special as gsp, gpuad.numpy as gnp
    >>> print(gsp.ndtri(gnp.array([0.975, 1e-20])).round(6))
    [ 1.959964 -9.26234 ]
    """
    return -_SQRT2 * erfcinv(2.0 * gnp.asarray(p))


# The incomplete gamma and beta functions are sums of positive terms, each a closed form in
# gammaln: the TERMS consecutive ones around the largest are summed at once (one new axis, no
# loop), so every derivative, in x and in the parameters, comes from gammaln's rules. The window
# holds the sum to double precision where the terms' spread (about sqrt(x) for gammainc, about
# sqrt(b) / |log x| for betainc) is under TERMS / 17: x up to about 900, b up to about 400.
TERMS = 512


def _window_sum(log_term, peak):
    """sum over integers n >= 0 of exp(log_term(n)), from the TERMS ones nearest n = peak (a
    positive, unimodal sequence, largest near peak). The window's start carries no derivative."""
    start = gnp.maximum(gnp.floor(peak) - TERMS // 2, 0.0)
    n = start[..., None] + gnp.arange(TERMS, dtype=start.dtype)  # the backend's: start may be a raw CuPy array
    return gnp.sum(gnp.exp(log_term(n)), axis=-1)


def _floats(*args):
    """The arguments as float arrays of one broadcast shape, in the arrays' float type (float64
    unless they are float32: Python numbers take the arrays' type, as in NumPy)."""
    dtypes = [a.dtype for a in args if hasattr(a, "dtype")]
    dtype = onp.result_type(*dtypes, onp.float32) if dtypes else onp.dtype(onp.float64)
    return gnp.broadcast_arrays(*[gnp.asarray(a, dtype=dtype) for a in args])


def gammainc(a, x):
    """scipy.special.gammainc, the regularised lower incomplete gamma function P(a, x), for
    a > 0, x >= 0 (NaN elsewhere): the sum of exp((a + n) log x - x - gammaln(a + n + 1)) over
    n >= 0. Differentiable in x and a at every order.

    >>> import gpuad, gpuad.scipy.special as gsp
    >>> print(gsp.gammainc(2.0, 1.0).round(12))  # 1 - 2 / e
    0.264241117657
    >>> print(gpuad.grad(gsp.gammainc, argnums=1)(2.0, 1.0).round(12))  # x e^-x / Gamma(2)
    0.367879441171
    """
    a, x = _floats(a, x)
    positive = gnp.greater(x, 0)
    z = gnp.where(positive, x, 1.0)[..., None]  # log(0) stays out of the terms and their derivatives
    a_ = a[..., None]
    p = _window_sum(lambda n: (a_ + n) * gnp.log(z) - z - gammaln(a_ + n + 1.0), z[..., 0] - a - 1.0)
    valid = gnp.logical_and(gnp.greater(a, 0), gnp.greater_equal(x, 0))
    return gnp.where(valid, gnp.where(positive, p, 0.0), onp.nan)


def gammaincc(a, x):
    """scipy.special.gammaincc, the regularised upper incomplete gamma function 1 - P(a, x) (its
    tail below about 1e-16 is 0 here, where scipy's keeps relative precision)."""
    return 1.0 - gammainc(a, x)


def _betainc_series(a, b, x):
    """I_x(a, b) for 0 < x <= 1/2: the sum of x^(a+n) (1-x)^b Gamma(a+b+n) / (Gamma(a+n+1) Gamma(b))."""
    a, b, x = a[..., None], b[..., None], x[..., None]
    log_x, log_rest = gnp.log(x), b * gnp.log1p(-x) - gammaln(b)
    peak = (x * (a + b) - a - 1.0) / (1.0 - x)  # where the ratio of consecutive terms falls to 1
    return _window_sum(lambda n: (a + n) * log_x + log_rest + gammaln(a + b + n) - gammaln(a + n + 1.0), peak[..., 0])


def betainc(a, b, x):
    """scipy.special.betainc, the regularised incomplete beta function I_x(a, b), for a, b > 0 and
    0 <= x <= 1 (NaN elsewhere). Above x = 1/2 it is 1 - I_(1-x)(b, a), so the series always
    runs at x <= 1/2. Differentiable in x, a and b at every order.

    >>> import gpuad, gpuad.scipy.special as gsp
    >>> print(gsp.betainc(2.0, 3.0, 0.4).round(12))
    0.5248
    >>> print(gpuad.grad(gsp.betainc, argnums=2)(2.0, 3.0, 0.4).round(12))  # x (1-x)^2 / B(2, 3)
    1.728
    """
    a, b, x = _floats(a, b, x)
    inside = gnp.logical_and(gnp.greater(x, 0), gnp.less(x, 1))
    z = gnp.where(inside, x, 0.25)
    flip = gnp.greater(z, 0.5)
    s = _betainc_series(gnp.where(flip, b, a), gnp.where(flip, a, b), gnp.where(flip, 1.0 - z, z))
    i = gnp.where(flip, 1.0 - s, s)
    valid = gnp.logical_and(gnp.logical_and(gnp.greater(a, 0), gnp.greater(b, 0)),
                            gnp.logical_and(gnp.greater_equal(x, 0), gnp.less_equal(x, 1)))
    edge = gnp.greater(x, 0).astype(x.dtype)  # 0 at x = 0, 1 at x = 1
    return gnp.where(valid, gnp.where(inside, i, edge), onp.nan)


def _iv_series(v, x, scaled):
    """I_v(x) (times exp(-|x|) where scaled) for real v > -1 or integer v, as the sum over k >= 0
    of (|x|/2)^(2k+|v|) / (k! Gamma(k+|v|+1)), positive terms, in the TERMS window around the
    largest (k near (sqrt(v^2 + x^2) - v) / 2): double precision for |x| up to about 900. Every
    derivative, in x and in v, comes from gammaln's rules."""
    v, x = _floats(v, x)
    whole = gnp.equal(gnp.floor(v), v)
    order = gnp.where(whole, gnp.abs(v), v)  # I_-n = I_n
    z = gnp.abs(x)
    positive = gnp.greater(z, 0)
    z_ = gnp.where(positive, z, 1.0)[..., None]  # log(0) stays out of the terms and their derivatives
    o_ = order[..., None]
    shift = z_ if scaled else 0.0
    peak = 0.5 * (gnp.sqrt(order * order + z_[..., 0] * z_[..., 0]) - order)
    series = _window_sum(lambda k: (2.0 * k + o_) * gnp.log(0.5 * z_) - shift - gammaln(k + 1.0)
                         - gammaln(k + o_ + 1.0), peak)
    at_zero = gnp.where(gnp.equal(order, 0), 1.0, gnp.where(gnp.greater(order, 0), 0.0, onp.inf)).astype(x.dtype)
    value = gnp.where(positive, series, at_zero)
    odd = gnp.logical_and(whole, gnp.equal(gnp.remainder(order, 2.0), 1.0))
    negative = gnp.less(x, 0)
    value = gnp.where(gnp.logical_and(negative, odd), gnp.negative(value), value)  # I_n(-x) = (-1)^n I_n(x)
    defined = gnp.logical_and(gnp.logical_or(whole, gnp.greater(v, -1.0)),
                              gnp.logical_or(whole, gnp.logical_not(negative)))
    return gnp.where(defined, value, onp.nan)


def iv(v, x):
    """scipy.special.iv, the modified Bessel function of the first kind of real order v, for
    v > -1 or integer v (NaN for other orders, and for x < 0 with a fractional v, where scipy's
    is complex or uses K_v). Differentiable in x and v at every order; |x| up to about 700
    (I_v overflows beyond), double precision to about 900 for ive.

    >>> import gpuad, gpuad.scipy.special as gsp
    >>> print(gsp.iv(2.5, 3.0).round(12), gpuad.grad(gsp.iv, argnums=1)(2.5, 3.0).round(12))
    1.515339446682 1.836700584491
    """
    return _iv_series(v, x, False)


def ive(v, x):
    """scipy.special.ive, exp(-|x|) iv(v, x), finite for large |x| (the exponent is taken inside
    each term of the series)."""
    return _iv_series(v, x, True)


def expit(x):
    """scipy.special.expit, 1 / (1 + exp(-x)), accurate in both tails: exp is only taken of -|x|.

    >>> import gpuad.scipy.special as gsp, gpuad.numpy as gnp
    >>> gsp.expit(gnp.array([-40.0, 0.0, 40.0]))
    array([4.24835426e-18, 5.00000000e-01, 1.00000000e+00])
    """
    x = gnp.asarray(x)
    positive = gnp.greater_equal(x, 0)
    e = gnp.exp(gnp.where(positive, -x, x))  # in (0, 1]; not abs(x), whose derivative at 0 is 0
    return gnp.where(positive, 1.0 / (1.0 + e), e / (1.0 + e))


def logit(p):
    """scipy.special.logit, log(p / (1 - p)), the inverse of expit."""
    with onp.errstate(divide="ignore", invalid="ignore"):  # -inf at 0, inf at 1, NaN outside: no warning
        return gnp.log(p) - gnp.log1p(gnp.negative(p))


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """scipy.special.logsumexp: log(sum(b * exp(a))) over axis, with the maximum taken out first
    so that nothing overflows. Its derivative is exact: the result does not depend on the shift.

    >>> import gpuad.scipy.special as gsp, gpuad.numpy as gnp
    >>> gsp.logsumexp(gnp.array([1000.0, 1000.0]))
    array(1000.69314718)
    >>> gsp.logsumexp(gnp.array([1.0, 2.0]), b=gnp.array([1.0, -1.0]), return_sign=True)
    (array(1.54132485), array(-1.))
    """
    m = gnp.max(a, axis=axis, keepdims=True)
    m = gnp.where(gnp.isfinite(m), m, 0.0)  # a slice of -inf (or with +inf) sums without inf - inf
    e = gnp.exp(a - m)
    s = gnp.sum(e if b is None else b * e, axis=axis, keepdims=True)
    if return_sign:
        sign = gnp.sign(s)
        s = gnp.abs(s)
    with onp.errstate(divide="ignore", invalid="ignore"):  # log(0) = -inf and log(< 0) = NaN, as scipy's
        out = gnp.log(s) + m
    if not keepdims:  # every reduced axis has size 1 now (all of them for axis=None)
        out = gnp.squeeze(out, axis=axis)
        sign = gnp.squeeze(sign, axis=axis) if return_sign else None
    return (out, sign) if return_sign else out


def log_softmax(x, axis=None):
    """scipy.special.log_softmax: x - logsumexp(x), computed without overflow."""
    return x - logsumexp(x, axis=axis, keepdims=True)


def softmax(x, axis=None):
    """scipy.special.softmax: exp(x) / sum(exp(x)) over axis, without overflow.

    >>> import gpuad.scipy.special as gsp, gpuad.numpy as gnp
    >>> gsp.softmax(gnp.array([1000.0, 1000.0]))
    array([0.5, 0.5])
    """
    return gnp.exp(log_softmax(x, axis=axis))


def _x_times_log(x, y, log, pole):
    """x * log(y), and 0 where x == 0 for any y but NaN, as scipy's. Where x == 0 and log(y) is
    not finite (y at or below the pole, or infinite), y is replaced by pole + 1 before the log, so
    the derivatives there are finite too; elsewhere x * log(y) is 0 at x == 0 by itself, and its
    derivative in x is log(y), as it should be."""
    x, y = operand(x), operand(y)
    outside = gnp.logical_or(gnp.less_equal(y, pole), gnp.isinf(y))
    masked = gnp.logical_and(gnp.equal(x, 0), outside)
    with onp.errstate(divide="ignore", invalid="ignore"):  # -inf at the pole, NaN below it: unwarned, as scipy
        return gnp.where(masked, 0.0, x * log(gnp.where(masked, pole + 1.0, y)))


def xlogy(x, y):
    """scipy.special.xlogy: x * log(y), 0 when x == 0 (also for y == 0).

    >>> import gpuad, gpuad.scipy.special as gsp, gpuad.numpy as gnp
    >>> gsp.xlogy(gnp.array([0.0, 2.0]), gnp.array([0.0, 1.0]))
    array([0., 0.])
    >>> gpuad.grad(lambda y: gsp.xlogy(0.0, y))(0.0)
    array(0.)
    """
    return _x_times_log(x, y, gnp.log, 0.0)


def xlog1py(x, y):
    """scipy.special.xlog1py: x * log1p(y), 0 when x == 0 (also for y == -1)."""
    return _x_times_log(x, y, gnp.log1p, -1.0)


def entr(x):
    """scipy.special.entr: -x log(x) for x > 0, 0 at 0, -inf for x < 0."""
    negative = gnp.less(x, 0)
    return gnp.where(negative, -onp.inf, xlogy(gnp.negative(x), gnp.where(negative, 1.0, x)))


def __getattr__(name):
    """A clear error for scipy.special names that gpuad.scipy.special does not have."""
    raise AttributeError(f"gpuad.scipy.special has no {name!r} yet: it has {', '.join(__all__)}")
