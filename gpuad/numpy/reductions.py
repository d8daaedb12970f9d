"""Reductions with numpy's axis/keepdims. Only sum, max and cumsum are primitives; the
rest are composed from them (mean from sum, var from mean, std from var, prod from multiply)."""
import numpy as onp

from ..axes import normalize_axes
from ..core import operand, shape
from ..ops.elementwise import PRIMS, squared_modulus, where
from ..ops.indexing import getitem
from ..ops.reductions import argmax as _argmax
from ..ops.reductions import cumsum as _cumsum
from ..ops.reductions import reduce_max
from ..ops.shape import reduce_sum, reshape
from .shapes import concatenate, transpose


def sum(x, axis=None, keepdims=False):
    """Sum over axes, as numpy.sum.

    >>> import gpuad.numpy as gnp
    >>> gnp.sum(gnp.ones((2, 3)), axis=1)
    array([3., 3.])
    """
    return reduce_sum(x, axes=normalize_axes(axis, len(shape(x))), keepdims=keepdims)


def _count(x, axes):
    s = shape(x)
    return int(onp.prod([s[a] for a in axes]))


def mean(x, axis=None, keepdims=False):
    axes = normalize_axes(axis, len(shape(x)))
    return reduce_sum(x, axes=axes, keepdims=keepdims) / _count(x, axes)


def var(x, axis=None, ddof=0, keepdims=False):
    x, axes = operand(x), normalize_axes(axis, len(shape(x)))
    d = x - reduce_sum(x, axes=axes, keepdims=True) / _count(x, axes)
    return reduce_sum(squared_modulus(d), axes=axes, keepdims=keepdims) / (_count(x, axes) - ddof)  # real, as numpy's


def std(x, axis=None, ddof=0, keepdims=False):
    """The standard deviation; its derivative is 0 where it is 0 (constant data, one element)."""
    return root(var(x, axis=axis, ddof=ddof, keepdims=keepdims), 2)


def root(s, p):
    """s ** (1/p), with derivative 0 rather than nan where s == 0 (a norm at 0, a std of one value).

    Both branches of the outer `where` are finite: the root only ever sees s > 0 (or 1),
    so no inf * 0 reaches the tangent, at any order."""
    pos = PRIMS["greater"](s, 0.0)
    safe = where(pos, s, 1.0)
    r = PRIMS["sqrt"](safe) if p == 2 else PRIMS["power"](safe, 1.0 / p)
    return where(pos, r, 0.0)


def max(x, axis=None, keepdims=False):
    """Maximum over axes; its derivative is split evenly between tied maxima."""
    return reduce_max(x, axes=normalize_axes(axis, len(shape(x))), keepdims=keepdims)


def min(x, axis=None, keepdims=False):
    neg = PRIMS["negative"]  # not unary minus: x may be a list
    return neg(reduce_max(neg(x), axes=normalize_axes(axis, len(shape(x))), keepdims=keepdims))


amax, amin = max, min


def prod(x, axis=None, keepdims=False):
    """Product over axes by a tree of pairwise multiplies: exact derivatives, zeros included."""
    s = shape(x)
    axes = normalize_axes(axis, len(s))
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
    return _cumsum(x, axis=normalize_axes(axis, len(shape(x)))[0])


def argmax(x, axis=None):
    """Index of the first maximum (numpy.argmax); an integer array, so it carries no derivative."""
    if axis is None:
        x, axis = reshape(x, shape=(int(onp.prod(shape(x))),)), 0
    return _argmax(x, axis=normalize_axes(axis, len(shape(x)))[0])


def argmin(x, axis=None):
    """Index of the first minimum (numpy.argmin)."""
    return argmax(-x, axis=axis)
