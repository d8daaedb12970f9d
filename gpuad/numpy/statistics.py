"""Statistics, NaN-aware reductions, order statistics, convolution, polynomials, interpolation
and integration, composed from gpuad.numpy's reductions, sort, gathers and products.

Order statistics (median, quantile, percentile) sort, then take the elements their position
selects: the derivative flows to those elements only, as the value does.
"""
import numpy as onp

from ..axes import normalize_axes
from ..core import shape
from .building import _filled, _slab, diff, pad, searchsorted
from .creation import asarray, zeros_like
from .elementwise import clip, equal, isnan, logical_not, negative, sqrt, where
from .products import matmul
from .reductions import max as _max
from .reductions import mean
from .reductions import min as _min
from .reductions import sum as _sum
from .shapes import broadcast_to, concatenate, diagonal, flip, moveaxis, ravel, reshape, squeeze, take, transpose
from .sorting import sort


def _ndim(x):
    return len(shape(x))


# ---------------------------------------------------------------- NaN-aware reductions
def nansum(a, axis=None, keepdims=False):
    """numpy.nansum: the sum with NaNs counted as zero (and no derivative through them)."""
    return _sum(where(isnan(a), 0.0, a), axis=axis, keepdims=keepdims)


def _count_numbers(a, axis, keepdims):
    return _sum(logical_not(isnan(a)), axis=axis, keepdims=keepdims)


def nanmean(a, axis=None, keepdims=False):
    """numpy.nanmean: the mean of the non-NaN elements (NaN for an all-NaN slice).

    >>> import gpuad.numpy as gnp
    >>> gnp.nanmean(gnp.array([[1.0, gnp.nan], [2.0, 4.0]]), axis=1)
    array([1., 3.])
    """
    count = _count_numbers(a, axis, keepdims)
    with onp.errstate(invalid="ignore"):  # 0 / 0 for an all-NaN slice: NaN, as numpy's (which warns)
        return nansum(a, axis, keepdims) / count


def nanmax(a, axis=None, keepdims=False):
    """numpy.nanmax: the maximum of the non-NaN elements (NaN for an all-NaN slice)."""
    m = _max(where(isnan(a), -onp.inf, a), axis=axis, keepdims=keepdims)
    return where(equal(_count_numbers(a, axis, keepdims), 0), onp.nan, m)


def nanmin(a, axis=None, keepdims=False):
    """numpy.nanmin: the minimum of the non-NaN elements (NaN for an all-NaN slice)."""
    return negative(nanmax(negative(a), axis=axis, keepdims=keepdims))


def ptp(a, axis=None, keepdims=False):
    """numpy.ptp: maximum minus minimum."""
    return _max(a, axis=axis, keepdims=keepdims) - _min(a, axis=axis, keepdims=keepdims)


def average(a, axis=None, weights=None, returned=False, keepdims=False):
    """numpy.average: the (weighted) mean; with returned=True also the sum of the weights.

    1-d weights along a single axis are allowed, as numpy's.

    >>> import gpuad.numpy as gnp
    >>> float(gnp.average(gnp.array([1.0, 2.0, 4.0]), weights=gnp.array([1.0, 1.0, 2.0])))
    2.75
    """
    a = asarray(a)
    if weights is None:
        avg = mean(a, axis=axis, keepdims=keepdims)
        total = onp.asarray(onp.prod(shape(a)) / onp.prod(shape(avg)), dtype=float)
    else:
        if shape(weights) != shape(a):
            weights = _weights_along(weights, a, axis)
        total = _sum(weights, axis=axis, keepdims=keepdims)
        avg = _sum(a * weights, axis=axis, keepdims=keepdims) / total
    return (avg, broadcast_to(total, shape(avg))) if returned else avg


def _weights_along(w, a, axis):
    if axis is None or not isinstance(axis, int):
        raise TypeError("average: weights whose shape differs from a's need one integer axis")
    if _ndim(w) != 1 or shape(w)[0] != shape(a)[axis]:
        raise ValueError(f"average: weights of shape {shape(w)} do not fit axis {axis} of shape {shape(a)}")
    s = [1] * _ndim(a)
    s[axis] = shape(w)[0]
    return reshape(w, tuple(s))


# ---------------------------------------------------------------- order statistics
def quantile(a, q, axis=None, keepdims=False, method="linear"):
    """numpy.quantile with its default 'linear' method: sort, then interpolate between the two
    elements around position q (n - 1). q is a constant (a number or an array of them).

    >>> import gpuad.numpy as gnp
    >>> gnp.quantile(gnp.array([4.0, 1.0, 3.0, 2.0]), [0.25, 0.5])
    array([1.75, 2.5 ])
    """
    if method != "linear":
        raise NotImplementedError(f"quantile: only method='linear' (numpy's default) is supported, got {method!r}")
    q = onp.asarray(q, dtype=float)
    if onp.any((q < 0) | (q > 1)):
        raise ValueError("quantiles must be in the range [0, 1]")
    s = shape(a)
    axes = normalize_axes(axis, len(s))
    rest = [d for d in range(len(s)) if d not in axes]
    n = int(onp.prod([s[d] for d in axes]))
    x = sort(reshape(transpose(a, rest + list(axes)), tuple(s[d] for d in rest) + (n,)), axis=-1)
    pos = q.ravel() * (n - 1)
    lo = onp.floor(pos).astype(int)
    hi = onp.minimum(lo + 1, n - 1)
    below, above = take(x, lo, axis=-1), take(x, hi, axis=-1)
    out = below + (above - below) * asarray(pos - lo)  # the backend's: x may be a raw CuPy array
    out = where(isnan(take(x, [n - 1], axis=-1)), onp.nan, out)  # sort puts NaNs last: any makes it NaN
    out = moveaxis(out, -1, 0)
    kept = tuple(1 if d in axes else s[d] for d in range(len(s))) if keepdims else tuple(s[d] for d in rest)
    return reshape(out, q.shape + kept)


def percentile(a, q, axis=None, keepdims=False, method="linear"):
    """numpy.percentile: quantile of q / 100."""
    q = onp.asarray(q, dtype=float)
    if onp.any((q < 0) | (q > 100)):
        raise ValueError("percentiles must be in the range [0, 100]")
    return quantile(a, q / 100, axis=axis, keepdims=keepdims, method=method)


def median(a, axis=None, keepdims=False):
    """numpy.median: the middle element, or the mean of the two middle ones.

    >>> import gpuad, gpuad.numpy as gnp
    >>> gpuad.grad(gnp.median)(gnp.array([3.0, 1.0, 4.0, 2.0]))
    array([0.5, 0. , 0. , 0.5])
    """
    return quantile(a, 0.5, axis=axis, keepdims=keepdims)


# ---------------------------------------------------------------- scans
def cumprod(a, axis=None):
    """numpy.cumprod, as a scan of multiplies (log2 n passes, Hillis-Steele): no division, so the
    derivative is exact with zeros among the factors too.

    >>> import gpuad, gpuad.numpy as gnp
    >>> gpuad.jacfwd(gnp.cumprod)(gnp.array([2.0, 0.0, 3.0]))
    array([[1., 0., 0.],
           [0., 2., 0.],
           [0., 6., 0.]])
    """
    a = asarray(a)
    if axis is None:
        a, axis = ravel(a), 0
    axis = normalize_axes(axis, _ndim(a))[0]
    n = shape(a)[axis]
    step = 1
    while step < n:  # after this pass, a[i] is the product of a[max(0, i - 2 step + 1)], ..., a[i]
        a = a * concatenate([_filled(a, axis, step, 1), _slab(a, axis, None, n - step)], axis=axis)
        step *= 2
    return a


# ---------------------------------------------------------------- covariance
def cov(m, y=None, rowvar=True, bias=False, ddof=None, fweights=None, aweights=None):
    """numpy.cov: the covariance of the variables in m's rows (columns with rowvar=False).

    >>> import gpuad.numpy as gnp
    >>> gnp.cov(gnp.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]]))
    array([[ 1., -1.],
           [-1.,  1.]])
    """
    if fweights is not None or aweights is not None:
        raise NotImplementedError("cov: fweights and aweights are not supported")
    x = _variables(m, rowvar)
    if y is not None:
        x = concatenate([x, _variables(y, rowvar)], axis=0)
    ddof = (0 if bias else 1) if ddof is None else ddof
    d = x - mean(x, axis=1, keepdims=True)
    return squeeze(matmul(d, transpose(d)) / (shape(x)[1] - ddof))


def _variables(m, rowvar):
    """One variable per row, as numpy.cov reads its inputs."""
    if _ndim(m) > 2:
        raise ValueError(f"cov: m has more than 2 dimensions (shape {shape(m)})")
    x = reshape(m, (1, -1)) if _ndim(m) < 2 else m
    return transpose(x) if not rowvar and shape(x)[0] != 1 else x


def corrcoef(x, y=None, rowvar=True):
    """numpy.corrcoef: the covariance divided by the outer product of the standard deviations."""
    c = cov(x, y, rowvar)
    if _ndim(c) == 0:  # a single variable: numpy's c / c
        return c / c
    sd = sqrt(diagonal(c))
    return clip(c / reshape(sd, (-1, 1)) / reshape(sd, (1, -1)), -1.0, 1.0)


# ---------------------------------------------------------------- convolution
def convolve(a, v, mode="full"):
    """numpy.convolve of two vectors (modes full, same, valid), as one gather and one product.

    >>> import gpuad.numpy as gnp
    >>> gnp.convolve(gnp.array([1.0, 2.0, 3.0]), gnp.array([0.0, 1.0, 0.5]))
    array([0. , 1. , 2.5, 4. , 1.5])
    """
    if mode not in ("full", "same", "valid"):
        raise ValueError(f"convolve: mode must be 'full', 'same' or 'valid', got {mode!r}")
    for name, x in (("a", a), ("v", v)):
        if _ndim(x) != 1 or shape(x)[0] == 0:
            raise ValueError(f"convolve: {name} must be a non-empty vector, got shape {shape(x)}")
    a, v = asarray(a), asarray(v)
    if shape(v)[0] > shape(a)[0]:  # as numpy's: the longer one slides under the shorter one
        a, v = v, a
    n, k = shape(a)[0], shape(v)[0]
    windows = take(pad(a, k - 1), onp.arange(n + k - 1)[:, None] + onp.arange(k))  # (n + k - 1, k)
    full = matmul(windows, flip(v))
    start, length = {"full": (0, n + k - 1), "same": ((k - 1) // 2, n), "valid": (k - 1, n - k + 1)}[mode]
    return full[start:start + length]


def correlate(a, v, mode="valid"):
    """numpy.correlate of two real vectors: convolve with v reversed (default mode 'valid')."""
    return convolve(a, flip(v) if _ndim(v) == 1 else v, mode)


# ---------------------------------------------------------------- polynomials, interpolation, integration
def polyval(p, x):
    """numpy.polyval: p[0] x^(n-1) + ... + p[n-1], by Horner's rule.

    >>> import gpuad.numpy as gnp
    >>> gnp.polyval([1.0, 0.0, -2.0], gnp.array([2.0, 3.0]))
    array([2., 7.])
    """
    x = asarray(x)
    y = zeros_like(x)
    for c in p:
        y = y * x + c
    return y


def interp(x, xp, fp, left=None, right=None, period=None):
    """numpy.interp: piecewise-linear interpolation of (xp, fp) at x, xp increasing.

    Differentiable in x and in fp (and xp); outside [xp[0], xp[-1]] the value is left/right
    (default fp's end values), constant in x.

    >>> import gpuad, gpuad.numpy as gnp
    >>> xp, fp = gnp.array([0.0, 1.0, 3.0]), gnp.array([0.0, 2.0, 3.0])
    >>> gnp.interp(gnp.array([0.5, 2.0, 5.0]), xp, fp)
    array([1. , 2.5, 3. ])
    >>> gpuad.grad(lambda x: gnp.interp(x, xp, fp))(2.0)
    array(0.5)
    """
    if period is not None:
        raise NotImplementedError("interp: period is not supported")
    if _ndim(xp) != 1 or shape(xp) != shape(fp):
        raise ValueError(f"interp: xp and fp must be vectors of one length, got shapes {shape(xp)} and {shape(fp)}")
    x, n = asarray(x), shape(xp)[0]
    if n == 0:
        raise ValueError("interp: xp and fp are empty")
    if n == 1:
        y = broadcast_to(fp[0], shape(x))
    else:
        i = clip(searchsorted(xp, x, side="right") - 1, 0, n - 2)  # the interval of each x
        x0, x1, f0, f1 = take(xp, i), take(xp, i + 1), take(fp, i), take(fp, i + 1)
        y = f0 + (x - x0) * ((f1 - f0) / (x1 - x0))
    y = where(x < xp[0], fp[0] if left is None else left, y)
    return where(x > xp[-1], fp[-1] if right is None else right, y)


def trapezoid(y, x=None, dx=1.0, axis=-1):
    """numpy.trapezoid: the trapezoidal rule along axis, with sample points x or spacing dx.

    >>> import gpuad.numpy as gnp
    >>> gnp.trapezoid(gnp.array([1.0, 2.0, 3.0]), dx=0.5)
    array(2.)
    """
    axis = normalize_axes(axis, _ndim(y))[0]
    if x is None:
        d = dx
    elif _ndim(x) == 1:
        s = [1] * _ndim(y)
        s[axis] = shape(x)[0] - 1
        d = reshape(diff(x), tuple(s))
    else:
        d = diff(x, axis=axis)
    mid = (_slab(y, axis, 1, None) + _slab(y, axis, None, -1)) * 0.5
    return _sum(d * mid, axis=axis)


__all__ = ["nansum", "nanmean", "nanmax", "nanmin", "ptp", "average", "quantile", "percentile", "median",
           "cumprod", "cov", "corrcoef", "convolve", "correlate", "polyval", "interp", "trapezoid"]
