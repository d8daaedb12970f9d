"""Reductions with numpy's axis/keepdims. Only sum, max and cumsum are primitives; the
rest are composed from them (mean from sum, var from mean, std from var, prod from multiply)."""
import numpy as onp

from ..core import shape
from ..ops.elementwise import PRIMS
from ..ops.structural import argmax as _argmax, cumsum as _cumsum, getitem, reduce_max, reduce_sum, reshape


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in axes:
        if not -ndim <= a < (ndim or 1):  # the builtin max is shadowed below
            raise ValueError(f"axis {a} is out of bounds for an array of dimension {ndim}")
        out.append(a % ndim if ndim else 0)
    return tuple(sorted(set(out)))


def sum(x, axis=None, keepdims=False):  # noqa: A001
    """Sum over axes, as numpy.sum.

    >>> import gpuad.numpy as gnp
    >>> gnp.sum(gnp.ones((2, 3)), axis=1)
    array([3., 3.])
    """
    return reduce_sum(x, axes=_axes(axis, len(shape(x))), keepdims=keepdims)


def _count(x, axes):
    s = shape(x)
    return int(onp.prod([s[a] for a in axes]))


def mean(x, axis=None, keepdims=False):
    axes = _axes(axis, len(shape(x)))
    return reduce_sum(x, axes=axes, keepdims=keepdims) / _count(x, axes)


def var(x, axis=None, ddof=0, keepdims=False):
    axes = _axes(axis, len(shape(x)))
    d = x - reduce_sum(x, axes=axes, keepdims=True) / _count(x, axes)
    return reduce_sum(d * d, axes=axes, keepdims=keepdims) / (_count(x, axes) - ddof)


def std(x, axis=None, ddof=0, keepdims=False):
    return PRIMS["sqrt"](var(x, axis=axis, ddof=ddof, keepdims=keepdims))


def max(x, axis=None, keepdims=False):  # noqa: A001
    """Maximum over axes; its derivative is split evenly between tied maxima."""
    return reduce_max(x, axes=_axes(axis, len(shape(x))), keepdims=keepdims)


def min(x, axis=None, keepdims=False):  # noqa: A001
    neg = PRIMS["negative"]  # not unary minus: x may be a list
    return neg(reduce_max(neg(x), axes=_axes(axis, len(shape(x))), keepdims=keepdims))


amax, amin = max, min


def prod(x, axis=None, keepdims=False):
    """Product over axes by a tree of pairwise multiplies: exact derivatives, zeros included."""
    from .shapes import concatenate, transpose
    s = shape(x)
    axes = _axes(axis, len(s))
    rest = [a for a in range(len(s)) if a not in axes]
    x = reshape(transpose(x, rest + list(axes)), shape=tuple(s[a] for a in rest) + (_count(x, axes),))
    keep = (slice(None),) * len(rest)
    while shape(x)[-1] > 1:
        n = shape(x)[-1]
        h = n // 2
        pairs = getitem(x, idx=keep + (slice(0, h),)) * getitem(x, idx=keep + (slice(h, 2 * h),))
        x = concatenate([pairs, getitem(x, idx=keep + (slice(n - 1, n),))], axis=-1) if n % 2 else pairs
    out = reshape(x, shape=shape(x)[:-1])
    if keepdims:
        out = reshape(out, shape=tuple(1 if a in axes else d for a, d in enumerate(s)))
    return out


def cumsum(x, axis=None):
    if axis is None:
        x, axis = reshape(x, shape=(int(onp.prod(shape(x))),)), 0
    return _cumsum(x, axis=_axes(axis, len(shape(x)))[0])


def argmax(x, axis=None):
    """Index of the first maximum (numpy.argmax); an integer array, so it carries no derivative."""
    if axis is None:
        x, axis = reshape(x, shape=(int(onp.prod(shape(x))),)), 0
    return _argmax(x, axis=_axes(axis, len(shape(x)))[0])


def argmin(x, axis=None):
    """Index of the first minimum (numpy.argmin)."""
    return argmax(-x, axis=axis)
