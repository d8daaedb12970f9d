"""gpuad.scipy.linalg: scipy.linalg's names and semantics, differentiable in every mode.

Everything here is composed from gpuad.numpy (solve, cholesky, matmul) and the triangular solve
primitive, so derivatives of any order, vmap and gpuad.jit come from those primitives' rules.
"""

import numpy as onp

from .. import backends
from .. import numpy as gnp
from ..numpy.linalg import _known
from ..ops import linalg as L
from ..ops.elementwise import conj_if_complex

__all__ = ["solve_triangular", "cho_factor", "cho_solve", "lu_factor", "lu_solve", "expm", "block_diag"]

_TRANS = {0: False, "N": False, 1: True, "T": True, 2: True, "C": True}  # transposed? (C: conjugated too)
_CONJUGATED = (2, "C")


def solve_triangular(a, b, trans=0, lower=False, unit_diagonal=False, overwrite_b=False, check_finite=True):
    """x with a @ x = b (trans 0 or 'N'), a.T @ x = b (1, 'T') or a.conj().T @ x = b (2, 'C'), reading only the lower
    (lower=True) or upper triangle of a, with ones on the diagonal if unit_diagonal: the other
    entries of a get no derivative, as they play no part. b is (n,) or (..., n, r); stack axes
    broadcast. One triangular solve (BLAS/cuBLAS trsm; on NumPy under n = 32 or without SciPy, an LU
    solve of the triangle), its derivatives triangular solves too.

    >>> import gpuad.numpy as gnp, gpuad.scipy.linalg as gsl
    >>> print(gsl.solve_triangular(gnp.array([[2.0, 9.0], [1.0, 4.0]]), gnp.array([2.0, 5.0]), lower=True))
    [1. 1.]
    """
    if trans not in _TRANS:
        raise ValueError(f"solve_triangular: trans must be 0, 1, 2, 'N', 'T' or 'C', got {trans!r}")
    a, b = _floats(gnp.asarray(a)), _floats(gnp.asarray(b))
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"solve_triangular: expected a square matrix, got shape {a.shape}")
    n, vector = a.shape[-1], b.ndim == 1
    if b.ndim == 0 or b.shape[-1 if vector else -2] != n:
        raise ValueError(f"solve_triangular: b of shape {b.shape} does not fit a of shape {a.shape}; "
                         f"b must be ({n},) or (..., {n}, r)")
    a = conj_if_complex(a) if trans in _CONJUGATED else a
    b = gnp.reshape(b, (n, 1)) if vector else b
    params = dict(lower=lower, transpose=_TRANS[trans], unit_diagonal=unit_diagonal)
    if a.ndim == 2:  # one matrix for every right-hand side: b's stack axes folded into its columns
        x = L.triangular_solve_lead(a, b, b.ndim - 2, **params)
    else:
        try:
            stack = onp.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except ValueError:
            raise ValueError(f"solve_triangular: the stack axes of a {a.shape} and b {b.shape} do not "
                             "broadcast") from None
        x = L.triangular_solve(gnp.broadcast_to(a, stack + a.shape[-2:]), gnp.broadcast_to(b, stack + b.shape[-2:]),
                               **params)
    return gnp.reshape(x, x.shape[:-1]) if vector else x


def _floats(x):
    return x if x.dtype.kind in "fc" else x.astype(gnp.float64)


def cho_factor(a, lower=False, overwrite_a=False, check_finite=True):
    """(c, lower): the Cholesky factor of a symmetric positive-definite a, lower or upper, for
    cho_solve. Unlike scipy's, the other triangle of c holds zeros, not leftover entries of a.

    >>> import gpuad.numpy as gnp, gpuad.scipy.linalg as gsl
    >>> c, low = gsl.cho_factor(gnp.array([[4.0, 2.0], [2.0, 5.0]]))
    >>> print(c, low)
    [[2. 1.]
     [0. 2.]] False
    """
    return gnp.linalg.cholesky(a, upper=not lower), lower


def cho_solve(c_and_lower, b, overwrite_b=False, check_finite=True):
    """x with a @ x = b, from cho_factor(a) = (c, lower): two triangular solves.

    >>> import gpuad.numpy as gnp, gpuad.scipy.linalg as gsl
    >>> a = gnp.array([[4.0, 2.0], [2.0, 5.0]])
    >>> print(gsl.cho_solve(gsl.cho_factor(a), gnp.array([6.0, 7.0])))
    [1. 1.]
    """
    c, lower = c_and_lower
    low = c if lower else gnp.swapaxes(gnp.asarray(c), -1, -2)
    return solve_triangular(low, solve_triangular(low, b, lower=True), lower=True, trans=1)


def lu_factor(a, overwrite_a=False, check_finite=True):
    """(lu, piv): the LU factorisation with partial pivoting of a square matrix or stack, as
    scipy.linalg.lu_factor (computed by it on NumPy, by CuPy's batched LU on CuPy): L (unit lower, below
    the diagonal) and U share lu; row i was swapped with row piv[i]. lu is differentiable
    (dL = L tril(X, -1), dU = triu(X) U with X = L^-1 P dA U^-1; holomorphic in a complex a);
    piv carries no derivative.

    >>> import gpuad.numpy as gnp, gpuad.scipy.linalg as gsl
    >>> lu, piv = gsl.lu_factor(gnp.array([[1.0, 2.0], [3.0, 4.0]]))
    >>> print(lu.round(6), piv)
    [[3.       4.      ]
     [0.333333 0.666667]] [1 1]
    """
    a = gnp.asarray(a)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"lu_factor: expected a square matrix or a stack of them, got shape {a.shape}")
    if a.dtype.kind not in "fc":
        a = a.astype(gnp.float64)
    return L.lu(a)


def lu_solve(lu_and_piv, b, trans=0, overwrite_b=False, check_finite=True):
    """x with a @ x = b (trans 0), a.T @ x = b (1) or a.conj().T @ x = b (2), from lu_factor(a) =
    (lu, piv): a permutation and two triangular solves, differentiable in lu and b (holomorphic
    in both but for trans 2: the LU factors of conj(a) are conj(lu), with the same pivots).

    >>> import gpuad.numpy as gnp, gpuad.scipy.linalg as gsl
    >>> a = gnp.array([[1.0, 2.0], [3.0, 4.0]])
    >>> print(gsl.lu_solve(gsl.lu_factor(a), gnp.array([5.0, 11.0])))
    [1. 2.]
    """
    if trans not in _TRANS:
        raise ValueError(f"lu_solve: trans must be 0, 1, 2, 'N', 'T' or 'C', got {trans!r}")
    lu, piv = lu_and_piv
    lu = gnp.asarray(lu)
    lu = conj_if_complex(lu) if trans in _CONJUGATED else lu
    p = L.lu_permutation(gnp.asarray(piv)).astype(lu.dtype)  # p @ a = l @ u
    if _TRANS[trans]:  # a^T = u^T l^T p: x = p^T l^-T u^-T b
        y = solve_triangular(lu, solve_triangular(lu, b, trans=1), lower=True, unit_diagonal=True, trans=1)
        return gnp.swapaxes(p, -1, -2) @ y
    y = solve_triangular(lu, p @ gnp.asarray(b), lower=True, unit_diagonal=True)
    return solve_triangular(lu, y)


# Higham's [13/13] Pade approximant of exp ("The scaling and squaring method for the matrix
# exponential revisited", SIAM J. Matrix Anal. Appl. 26(4), 2005): its coefficients, and the
# 1-norm up to which it is accurate to double precision without scaling.
_PADE13 = (64764752532480000.0, 32382376266240000.0, 7771770303897600.0, 1187353796428800.0,
           129060195264000.0, 10559470521600.0, 670442572800.0, 33522128640.0, 1323241920.0,
           40840800.0, 960960.0, 16380.0, 182.0, 1.0)
_THETA13 = 5.371920351148152


_MAX_SQUARINGS = 40  # under gpuad.jit: enough for 1-norms up to theta_13 * 2^40, about 6e12


def _squarings(a):
    """The number s of squarings that bring the 1-norm of a / 2^s under theta_13, per matrix (one
    for a whole stack, one per example under vmap), and how many squarings the loop runs: the
    largest s, read from the value beneath any transforms (on CuPy one wait for the GPU), or
    _MAX_SQUARINGS while gpuad.jit traces, whose values are abstract. s carries no derivative."""
    norm1 = gnp.max(gnp.sum(gnp.abs(a), axis=-2), axis=-1)
    if a.ndim > 2:
        norm1 = gnp.max(norm1)
    with onp.errstate(divide="ignore"):  # log2(0) = -inf: no squaring for the zero matrix
        s = gnp.clip(gnp.ceil(gnp.log2(norm1 / _THETA13)), 0, _MAX_SQUARINGS)
    value = _known(s)
    return s, _MAX_SQUARINGS if value is None else int(backends.current().to_numpy(value).max())


def expm(A):
    """The matrix exponential of a square matrix or stack, by scaling and squaring with Higham's
    [13/13] Pade approximant, composed from matmul and solve: its derivatives of any order are
    those of the approximant, accurate to the same precision. The number of squarings depends on
    the norm of A; under gpuad.jit, which traces without values, the program holds 40 squarings,
    each kept where it is needed (1-norms up to about 6e12).

    >>> import gpuad, gpuad.numpy as gnp, gpuad.scipy.linalg as gsl
    >>> print(gsl.expm(gnp.array([[0.0, 1.0], [0.0, 0.0]])))
    [[1. 1.]
     [0. 1.]]
    >>> print(gpuad.grad(lambda t: gsl.expm(t * gnp.eye(2))[0, 0])(1.0).round(12))
    2.718281828459
    """
    a = gnp.asarray(A)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"expm: expected a square matrix or a stack of them, got shape {a.shape}")
    if a.dtype.kind not in "fc":
        a = a.astype(gnp.float64)
    s, loops = _squarings(a)
    s = s.astype(a.dtype)
    a = a * gnp.power(0.5, s)[..., None, None]
    b = _PADE13
    eye = gnp.broadcast_to(gnp.eye(a.shape[-1], dtype=a.dtype), a.shape)
    a2 = a @ a
    a4 = a2 @ a2
    a6 = a4 @ a2
    u = a @ (a6 @ (b[13] * a6 + b[11] * a4 + b[9] * a2) + b[7] * a6 + b[5] * a4 + b[3] * a2 + b[1] * eye)
    v = a6 @ (b[12] * a6 + b[10] * a4 + b[8] * a2) + b[6] * a6 + b[4] * a4 + b[2] * a2 + b[0] * eye
    r = gnp.linalg.solve(v - u, v + u)
    for k in range(loops):
        r = gnp.where(gnp.less(k, s)[..., None, None], r @ r, r)
    return r


def block_diag(*arrs):
    """The block-diagonal matrix of the given arrays (scipy.linalg.block_diag): 0-D and 1-D
    inputs are 1 x 1 and 1 x n blocks.

    >>> import gpuad.numpy as gnp, gpuad.scipy.linalg as gsl
    >>> print(gsl.block_diag(gnp.array([[1.0, 2.0]]), 3.0))
    [[1. 2. 0.]
     [0. 0. 3.]]
    """
    if not arrs:
        return gnp.zeros((1, 0))
    blocks = [gnp.atleast_2d(gnp.asarray(x)) for x in arrs]
    for k, x in enumerate(blocks):
        if x.ndim > 2:
            raise ValueError(f"block_diag: argument {k} has {x.ndim} dimensions; at most 2 are allowed")
    total = sum(x.shape[1] for x in blocks)
    rows, left = [], 0
    for x in blocks:
        rows.append(gnp.pad(x, ((0, 0), (left, total - left - x.shape[1]))))
        left += x.shape[1]
    return gnp.concatenate(rows, axis=0)


def __getattr__(name):
    """A clear error for scipy.linalg names that gpuad.scipy.linalg does not have."""
    raise AttributeError(f"gpuad.scipy.linalg has no {name!r} yet: it has {', '.join(__all__)}")
