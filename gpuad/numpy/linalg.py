"""gpuad.numpy.linalg: numpy.linalg's names and semantics, differentiable in every mode.

solve, cholesky and log|det| are primitives (gpuad/ops/linalg.py); inv, det, slogdet and
norm are composed from them and from gpuad.numpy, so their derivatives come for free.
Integer input is computed in float64, as numpy.linalg does.
"""
import numbers
from collections import namedtuple

import numpy as onp

from ..core import shape
from ..ops import linalg as L
from ..ops.elementwise import PRIMS as EW
from ..ops.elementwise import astype, where
from . import reductions as R
from .creation import asarray
from .shapes import broadcast_to, reshape, squeeze, swapaxes


def _float(x):
    x = asarray(x)
    return x if x.dtype.kind in "fc" else astype(x, dtype=onp.dtype(onp.float64))


def _square(a, name):
    """n for a stack of n x n matrices (..., n, n); a ValueError for anything else."""
    s = shape(a)
    if len(s) < 2 or s[-1] != s[-2]:
        raise ValueError(f"{name}: expected a square matrix or a stack of them, shape (..., n, n); "
                         f"got shape {s}")
    return s[-1]


# ---------------------------------------------------------------- solve, inv
def solve(a, b):
    """x with a @ x = b (numpy.linalg.solve): a (..., n, n); b (n,) or (..., n, r); stack axes broadcast.

    >>> import gpuad.numpy as gnp
    >>> gnp.linalg.solve(gnp.array([[2.0, 0.0], [0.0, 4.0]]), gnp.array([2.0, 2.0]))
    array([1. , 0.5])
    """
    a, b = _float(a), _float(b)
    n = _square(a, "solve")
    vector = len(shape(b)) == 1
    if len(shape(b)) == 0 or shape(b)[-1 if vector else -2] != n:
        raise ValueError(f"solve: b of shape {shape(b)} does not fit a of shape {shape(a)}; "
                         f"b must be ({n},) or (..., {n}, r)")
    x = _solve_stacks(a, reshape(b, (n, 1)) if vector else b)
    return reshape(x, shape(x)[:-1]) if vector else x


def _solve_stacks(a, b):
    try:
        batch = onp.broadcast_shapes(shape(a)[:-2], shape(b)[:-2])
    except ValueError:
        raise ValueError(f"solve: the stack axes of a {shape(a)} and b {shape(b)} do not broadcast") from None
    if len(shape(a)) == 2:
        # One matrix for every right-hand side: fold b's stack axes into its columns and
        # factorise a once, instead of broadcasting a to a stack of copies.
        return L.solve_lead(a, b, len(shape(b)) - 2)
    return L.solve(broadcast_to(a, batch + shape(a)[-2:]), broadcast_to(b, batch + shape(b)[-2:]))


def inv(a):
    """The inverse of a matrix, or of each matrix of a stack (..., n, n).

    >>> import gpuad.numpy as gnp
    >>> gnp.linalg.inv(gnp.array([[2.0, 0.0], [0.0, 4.0]]))
    array([[0.5 , 0.  ],
           [0.  , 0.25]])
    """
    a = _float(a)
    _square(a, "inv")
    return L.inv(a)


# ---------------------------------------------------------------- determinants
SlogdetResult = namedtuple("SlogdetResult", ["sign", "logabsdet"])


def slogdet(a):
    """(sign, logabsdet): sign and log|det a| of a matrix or a stack of them, as a named tuple
    like numpy's. The sign carries no derivative; d log|det A| = trace(A^-1 dA).

    >>> import gpuad.numpy as gnp
    >>> sign, logabs = gnp.linalg.slogdet(gnp.array([[-2.0, 0.0], [0.0, 1.0]]))
    >>> print(sign, logabs.round(4))
    -1.0 0.6931
    """
    a = _float(a)
    _square(a, "slogdet")
    return SlogdetResult(L.det_sign(a), L.logabsdet(a))


def det(a):
    """The determinant, as sign * exp(log|det|): d det A = det A * trace(A^-1 dA). At a
    singular matrix the value is 0 but the derivative is not defined here (A^-1 is needed).

    >>> import gpuad, gpuad.numpy as gnp
    >>> a = gnp.array([[2.0, 1.0], [1.0, 3.0]])
    >>> print(gnp.linalg.det(a).round(12))
    5.0
    >>> print(gpuad.grad(gnp.linalg.det)(a).round(12))
    [[ 3. -1.]
     [-1.  2.]]
    """
    sign, logabs = slogdet(a)
    return EW["multiply"](sign, EW["exp"](logabs))


def cholesky(a, upper=False):
    """The Cholesky factor L (lower, a = L @ L.T) of a symmetric positive-definite matrix or stack.

    The input is symmetrised first, (a + a.T) / 2, as jax.numpy.linalg.cholesky does: the
    value is unchanged for a symmetric a, and the derivative is that of a function of the
    whole matrix rather than of whichever triangle the backend's LAPACK happens to read.

    >>> import gpuad.numpy as gnp
    >>> gnp.linalg.cholesky(gnp.array([[4.0, 2.0], [2.0, 5.0]]))
    array([[2., 0.],
           [1., 2.]])
    """
    a = _float(a)
    _square(a, "cholesky")
    low = L.cholesky(EW["multiply"](0.5, EW["add"](a, swapaxes(a, -1, -2))))
    return swapaxes(low, -1, -2) if upper else low


# ---------------------------------------------------------------- norms
_MATRIX_ORDS = (None, "fro", 1, -1, onp.inf, -onp.inf)


def norm(x, ord=None, axis=None, keepdims=False):
    """Vector or matrix norm, as numpy.linalg.norm.

    Vectors (axis an int, or x 1-D): ord None or 2, 1, inf, -inf, 0 (count of non-zeros) and
    any other number p. Matrices (axis a pair, or x 2-D with ord given): None/'fro', 1, -1,
    inf, -inf. axis=None with ord=None is the 2-norm of all entries, for any ndim. Roots
    (the 2-norm, Frobenius, p-norms) have derivative 0 at x = 0, a subgradient, not nan.

    >>> import gpuad.numpy as gnp
    >>> gnp.linalg.norm(gnp.array([3.0, 4.0]))
    array(5.)
    """
    x = _float(x)
    nd = len(shape(x))
    if axis is None and ord is None:
        return _root(R.sum(EW["square"](x), keepdims=keepdims), 2)
    if axis is None:
        if nd not in (1, 2):
            raise ValueError(f"norm: with ord={ord!r} and axis=None, x must be 1-D or 2-D; got {nd}-D. "
                             "Pass axis to choose the vector or matrix axes.")
        axis = tuple(range(nd))
    axes = _norm_axes(axis, nd)
    if len(axes) == 1:
        return _vector_norm(x, ord, axes[0], keepdims)
    return _matrix_norm(x, ord, axes, keepdims)


def _norm_axes(axis, nd):
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    if len(axes) not in (1, 2):
        raise ValueError(f"norm: axis must be an int or a pair of ints, got {axis!r}")
    for a in axes:
        if not -nd <= a < nd:
            raise ValueError(f"norm: axis {a} is out of bounds for an array of dimension {nd}")
    axes = tuple(a % nd for a in axes)
    if len(set(axes)) != len(axes):
        raise ValueError(f"norm: duplicate axes {axis!r}")
    return axes


def _root(s, p):
    """s ** (1/p), with derivative 0 rather than nan where s == 0 (at x = 0 for a norm).

    Both branches of the outer `where` are finite: the root only ever sees s > 0 (or 1),
    so no inf * 0 reaches the tangent, at any order."""
    pos = EW["greater"](s, 0.0)
    safe = where(pos, s, 1.0)
    r = EW["sqrt"](safe) if p == 2 else EW["power"](safe, 1.0 / p)
    return where(pos, r, 0.0)


def _vector_norm(x, ord, axis, keepdims):
    if ord is None or ord == 2:
        return _root(R.sum(EW["square"](x), axis, keepdims), 2)
    if not isinstance(ord, numbers.Real):
        raise ValueError(f"norm: invalid order {ord!r} for a vector norm; use a number, inf or -inf")
    mag = EW["abs"](x)
    if ord == onp.inf:
        return R.max(mag, axis, keepdims)
    if ord == -onp.inf:
        return R.min(mag, axis, keepdims)
    if ord == 0:
        return R.sum(astype(EW["not_equal"](x, 0.0), dtype=x.dtype), axis, keepdims)
    if ord == 1:
        return R.sum(mag, axis, keepdims)
    return _root(R.sum(EW["power"](mag, float(ord)), axis, keepdims), ord)


def _matrix_norm(x, ord, axes, keepdims):
    if ord not in _MATRIX_ORDS:
        raise ValueError(f"norm: matrix norm ord={ord!r} is not supported; use None, 'fro', 1, -1, inf "
                         "or -inf (2, -2 and 'nuc' need singular values)")
    if ord in (None, "fro"):
        return _root(R.sum(EW["square"](x), axes, keepdims), 2)
    row, col = axes
    # ord 1: the largest absolute column sum (summed over rows); ord inf: the largest row sum.
    summed, picked = (row, col) if abs(ord) == 1 else (col, row)
    pick = R.max if ord > 0 else R.min
    y = pick(R.sum(EW["abs"](x), summed, keepdims=True), picked, keepdims=True)
    return y if keepdims else squeeze(y, axes)
