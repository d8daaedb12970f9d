"""Reductions with numpy's axis/keepdims. Only sum, max and cumsum are primitives; the
rest are composed from them (mean from sum, var from mean, std from var, prod from multiply)."""
import numpy as onp

from ..axes import normalize_axes
from ..core import dtype, operand, real_dtype, shape
from ..ops.elementwise import PRIMS, astype, imag, real, squared_modulus, where
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
    """Maximum over axes; its derivative is split evenly between tied maxima. Of complex values
    the lexicographic maximum (real parts, then imaginary), as NumPy's and JAX's."""
    axes = normalize_axes(axis, len(shape(x)))
    if dtype(x).kind == "c":
        return _lexicographic_max(operand(x), axes, keepdims)
    return reduce_max(x, axes=axes, keepdims=keepdims)


def _lexicographic_max(x, axes, keepdims):
    """The elements with the largest real part and, among them, the largest imaginary part: their
    mean (they are equal), so the derivative is split evenly between ties, as JAX's."""
    re, im = real(x), imag(x)
    on_top = PRIMS["equal"](re, reduce_max(re, axes=axes, keepdims=True))
    top_im = reduce_max(where(on_top, im, -onp.inf), axes=axes, keepdims=True)
    chosen = PRIMS["logical_and"](on_top, PRIMS["equal"](im, top_im))
    ties = reduce_sum(astype(chosen, dtype=real_dtype(dtype(x))), axes=axes, keepdims=keepdims)
    return reduce_sum(where(chosen, x, 0.0), axes=axes, keepdims=keepdims) / ties


def min(x, axis=None, keepdims=False):
    neg = PRIMS["negative"]  # not unary minus: x may be a list
    return neg(max(neg(x), axis=axis, keepdims=keepdims))  # of complex values too: -z reverses the order


amax, amin = max, min


def any(x, axis=None, keepdims=False):
    """numpy.any: whether an element along the axes is non-zero (NaN is); booleans, no derivative."""
    return PRIMS["greater"](_nonzeros(PRIMS["not_equal"](x, 0), axis, keepdims), 0)


def all(x, axis=None, keepdims=False):
    """numpy.all: whether every element along the axes is non-zero."""
    return PRIMS["equal"](_nonzeros(PRIMS["equal"](x, 0), axis, keepdims), 0)


def _nonzeros(hits, axis, keepdims):
    """How many of the booleans hits are true along the axes."""
    axes = normalize_axes(axis, len(shape(hits)))
    return reduce_sum(astype(hits, dtype=onp.dtype(onp.int64)), axes=axes, keepdims=keepdims)


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
