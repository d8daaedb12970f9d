"""gpuad.scipy.special: scipy.special's names and semantics, differentiable in every mode.

erf, erfc, erfinv, erfcinv, gammaln, digamma and polygamma are rows of the elementwise table
(gpuad/ops/table.py: fused CUDA kernels, every derivative order, vmap); the rest is composed
from them and from gpuad.numpy, numerically stable. On the NumPy backend the rows evaluate with
scipy.special (an ImportError names it where SciPy is not installed), on CuPy with
cupyx.scipy.special.
"""
import numpy as onp

from .. import numpy as gnp
from ..ops.elementwise import PRIMS

__all__ = ["expit", "logit", "log_softmax", "softmax", "logsumexp", "xlogy", "xlog1py", "entr",
           "erf", "erfc", "erfinv", "erfcinv", "gammaln", "digamma", "psi", "polygamma", "gamma", "betaln", "beta",
           "ndtr", "log_ndtr", "ndtri"]

erf, erfc, erfinv, erfcinv, gammaln, digamma = (PRIMS[n] for n in ("erf", "erfc", "erfinv", "erfcinv", "gammaln",
                                                                    "digamma"))
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


def _gamma_sign(x):
    """The sign of Gamma(x): 1 for x > 0; for x < 0, -1 between -1 and 0, 1 between -2 and -1, ..."""
    odd = gnp.equal(gnp.remainder(gnp.floor(x), 2.0), 1.0)
    return gnp.where(gnp.logical_or(gnp.greater(x, 0), gnp.logical_not(odd)), 1.0, -1.0).astype(x.dtype)


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
    series = gnp.polyval(onp.array(_TAIL[::-1]), r)
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
