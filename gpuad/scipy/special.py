"""gpuad.scipy.special: the special functions that compose from gpuad.numpy, numerically stable.

Functions that need primitives of their own (erf, gamma, digamma, ...) are not here yet.
"""
import numpy as onp

from .. import numpy as gnp

__all__ = ["expit", "logit", "log_softmax", "softmax", "logsumexp", "xlogy", "xlog1py", "entr"]


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
    raise AttributeError(f"gpuad.scipy.special has no {name!r}: it has {', '.join(__all__)}; functions "
                         "such as erf or gamma need primitives of their own and are not there yet")
