"""gpuad.numpy.linalg: numpy.linalg's names and semantics, differentiable in every mode.

solve, cholesky, log|det|, eigh, svd, pinv and qr are primitives (gpuad/ops/linalg.py); inv, det,
slogdet, norm (and vector_norm, matrix_norm), eigvalsh, svdvals, lstsq, matrix_power,
multi_dot, cond and matrix_rank are composed from them and from gpuad.numpy, so their
derivatives come for free. Integer input is computed in float64, as numpy.linalg does.
Complex matrices (docs/complex.md): solve, inv, det, slogdet, cholesky, eigh (Hermitian), eig,
qr, svd, pinv, lstsq and what is composed from them, and the norms of moduli; the other primitives
refuse them under a derivative transform.

Eigenvectors and singular vectors are differentiable where the eigenvalues (singular values)
are distinct, as in JAX; at repeated ones their derivative is not defined, and the rules take
the ill-defined part as 0, so the derivatives of the values themselves stay finite there.
"""
import numbers
import operator
from collections import namedtuple

import numpy as onp

from ..axes import distinct_axes
from ..core import Tracer, real_dtype, shape, staging
from ..ops import linalg as L
from ..ops.elementwise import PRIMS as EW
from ..ops.elementwise import astype, conj, real, squared_modulus, where
from . import reductions as R
from .creation import asarray, eye
from .elementwise import abs as _abs
from .products import matmul
from .shapes import broadcast_to, concatenate, expand_dims, moveaxis, reshape, squeeze, swapaxes


def _known(x):
    """The backend array beneath a value's transforms, or None while gpuad.jit traces it (no data)."""
    if staging(x) is not None:
        return None
    while isinstance(x, Tracer):
        x = x._inner()
    return x


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
    if a.dtype.kind == "c":  # the sign is a phase, exp(i arg det), and moves with a
        ld = L.logdet(a)
        return SlogdetResult(EW["exp"](ld - real(ld)), real(ld))
    return SlogdetResult(*L.slogdet(a))


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
    a = _float(a)
    if a.dtype.kind == "c":
        _square(a, "det")
        return EW["exp"](L.logdet(a))
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
    low = L.cholesky(_symmetric(a))
    return swapaxes(low, -1, -2) if upper else low


def _symmetric(a):
    """(a + a^H) / 2: the symmetric (Hermitian) matrix a function of a symmetric matrix sees, so
    that its derivative is that of a function of the whole matrix, not of one triangle."""
    return EW["multiply"](0.5, EW["add"](a, L.adjoint(a)))


# ---------------------------------------------------------------- eigh, svd, qr
EighResult = namedtuple("EighResult", ["eigenvalues", "eigenvectors"])
SVDResult = namedtuple("SVDResult", ["U", "S", "Vh"])
QRResult = namedtuple("QRResult", ["Q", "R"])


def _matrix(a, name):
    a = _float(a)
    if len(shape(a)) < 2:
        raise ValueError(f"{name}: expected a matrix or a stack of them, shape (..., m, n); got shape {shape(a)}")
    return a


def eigh(a, UPLO="L"):
    """(eigenvalues ascending, eigenvectors as columns) of a symmetric matrix or stack, as a named
    tuple like numpy's. The input is symmetrised, (a + a.T) / 2, as in cholesky (UPLO is accepted
    for numpy's signature: for a symmetric a both triangles agree). With S = V^T dA V:
    dw = diag(S) and dV = V (F o S), F_ij = 1 / (w_j - w_i).

    >>> import gpuad, gpuad.numpy as gnp
    >>> w, v = gnp.linalg.eigh(gnp.array([[2.0, 1.0], [1.0, 2.0]]))
    >>> print(w)
    [1. 3.]
    >>> print(gpuad.grad(lambda a: gnp.linalg.eigh(a).eigenvalues[1])(gnp.array([[1.0, 0.0], [0.0, 3.0]])))
    [[0. 0.]
     [0. 1.]]
    """
    if UPLO not in ("L", "U"):
        raise ValueError(f"eigh: UPLO must be 'L' or 'U', got {UPLO!r}")
    a = _float(a)
    _square(a, "eigh")
    return EighResult(*L.eigh(_symmetric(a)))


def eigvalsh(a, UPLO="L"):
    """The eigenvalues, ascending, of a symmetric matrix or stack (numpy.linalg.eigvalsh); d w_i =
    v_i^T dA v_i.

    >>> import gpuad.numpy as gnp
    >>> print(gnp.linalg.eigvalsh(gnp.array([[2.0, 0.0], [0.0, -1.0]])))
    [-1.  2.]
    """
    return eigh(a, UPLO).eigenvalues


EigResult = namedtuple("EigResult", ["eigenvalues", "eigenvectors"])


def eig(a):
    """(eigenvalues, eigenvectors as unit columns) of a square matrix or stack, real or complex, as
    numpy's named tuple. Both are complex always, as JAX's (numpy's are real where every eigenvalue
    of a real matrix is, which only the values can tell). With S = V^-1 dA V: dw = diag(S),
    dV = V (F o S), F_ij = 1/(w_j - w_i), less Re of its part along V, which keeps the columns at
    unit norm (each column's phase is free: differentiate functions that do not see it, such as w
    or V diag(f(w)) V^-1); defined where the eigenvalues are distinct (repeated ones get 0 there).

    >>> import gpuad, gpuad.numpy as gnp
    >>> print(gnp.linalg.eigvals(gnp.array([[0.0, -2.0], [2.0, 0.0]])))
    [0.+2.j 0.-2.j]
    >>> print(gpuad.jacfwd(lambda a: gnp.linalg.eig(a).eigenvalues.real)(gnp.array([[2.0, 1.0], [0.0, 3.0]]))[0])
    [[ 1.  0.]
     [-1.  0.]]
    """
    a = _float(a)
    _square(a, "eig")
    return EigResult(*L.eig(a))


def eigvals(a):
    """The eigenvalues of a square matrix or stack, complex (numpy.linalg.eigvals, as JAX's)."""
    return eig(a).eigenvalues


def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """The singular value decomposition a = U @ diag(S) @ Vh of a matrix or stack, as numpy's
    (U, S, Vh) named tuple, or S alone with compute_uv=False. For a non-square a, full_matrices=True
    adds an orthonormal basis of the complement to U (tall a) or Vh (wide a): NumPy's columns, and,
    as any basis of that space would do, a derivative that keeps the basis orthonormal and
    orthogonal to the other columns (the basis is not unique, so its derivative is one choice; its
    projector's is exact). `hermitian` changes nothing here.

    >>> import gpuad, gpuad.numpy as gnp
    >>> print(gnp.linalg.svd(gnp.array([[3.0, 0.0], [0.0, -4.0]]), compute_uv=False))
    [4. 3.]
    >>> print(gpuad.grad(lambda a: gnp.linalg.svd(a, compute_uv=False)[0])(gnp.array([[3.0, 0.0], [0.0, -4.0]])))
    [[ 0.  0.]
     [ 0. -1.]]
    """
    a = _matrix(a, "svd")
    m, n = shape(a)[-2:]
    if not (compute_uv and full_matrices and m != n):
        u, s, v = L.svd(a)
        return SVDResult(u, s, L.adjoint(v)) if compute_uv else s
    u, s, v, c = L.svd(a, complement=True)  # one factorisation: LAPACK's full one
    if m > n:
        u = concatenate([u, _complete(u, c)], axis=-1)
    else:
        v = concatenate([v, _complete(v, c)], axis=-1)
    return SVDResult(u, s, L.adjoint(v))


def _complete(basis, c):
    """An orthonormal basis of the complement of basis's (orthonormal) columns, made from c, a
    basis of it at the value (no derivative): P c L^-H with P = I - basis basis^H and L L^H =
    (P c)^H P c. It equals c at the value and is an orthonormal basis of the complement nearby,
    so its derivatives of every order are those of one."""
    pc = c - matmul(basis, matmul(L.adjoint(basis), c))
    low = cholesky(matmul(L.adjoint(pc), pc))
    return L.adjoint(solve(low, L.adjoint(pc)))


def qr(a, mode="reduced"):
    """The QR decomposition a = Q @ R of a matrix or stack (numpy.linalg.qr): mode 'reduced'
    gives the named tuple (Q, R), 'r' gives R; 'complete' equals 'reduced' for m <= n. A wide
    matrix [X Y] (m < n) is factorised as X = Q R1 and R = [R1, Q^H Y], as JAX does: the same
    factors as LAPACK's, and a derivative that needs only the square X's.

    >>> import gpuad.numpy as gnp
    >>> q, r = gnp.linalg.qr(gnp.array([[3.0, 1.0], [4.0, 2.0]]))
    >>> print(abs(r).round(12))
    [[5.  2.2]
     [0.  0.4]]
    """
    a = _matrix(a, "qr")
    m, n = shape(a)[-2:]
    if mode not in ("reduced", "r", "complete") or (mode == "complete" and m > n):
        raise NotImplementedError(f"qr: mode {mode!r} is not supported for a matrix of shape {(m, n)}; use "
                                  "'reduced' or 'r' ('complete' where m <= n)")
    if m < n:
        q, r = qr(a[..., :m])
        r = concatenate([r, matmul(conj(swapaxes(q, -1, -2)), a[..., m:])], axis=-1)
        return r if mode == "r" else QRResult(q, r)
    q, r = L.qr(a)
    return r if mode == "r" else QRResult(q, r)


# ---------------------------------------------------------------- composed from svd
def pinv(a, rcond=None, hermitian=False, *, rtol=None):
    """The Moore-Penrose pseudo-inverse V diag(1/s) U^T of a matrix or stack, dropping singular
    values at or below rcond (or rtol, numpy 2's name; default 1e-15, numpy's) times the largest.
    Differentiable where the rank does not change. `hermitian` changes nothing here (the SVD serves).

    >>> import gpuad.numpy as gnp
    >>> print(gnp.linalg.pinv(gnp.array([[2.0, 0.0], [0.0, 0.0]])))
    [[0.5 0. ]
     [0.  0. ]]
    """
    if rcond is not None and rtol is not None:
        raise ValueError("pinv: rtol and rcond can't be both set")
    tol = (1e-15 if rcond is None and rtol is None else rcond if rcond is not None else rtol)
    return L.pinv(_matrix(a, "pinv"), tol=_tolerance(tol, "pinv"))


def _tolerance(tol, name):
    if not isinstance(tol, numbers.Real):
        raise TypeError(f"{name}: the cut-off (rcond, rtol) must be a real number, got {type(tol).__name__}")
    return float(tol)


def matrix_rank(A, tol=None, hermitian=False, *, rtol=None):
    """The number of singular values above tol (default: the largest times max(m, n) times the
    dtype's eps, as numpy), per matrix of a stack; an integer, without derivative. `hermitian`
    changes nothing here.

    >>> import gpuad.numpy as gnp
    >>> print(gnp.linalg.matrix_rank(gnp.array([[1.0, 2.0], [2.0, 4.0]])))
    1
    """
    A = _float(A)
    if len(shape(A)) < 2:
        return astype(R.sum(EW["not_equal"](A, 0.0)) > 0, dtype=onp.dtype(onp.int64))
    s = svd(A, compute_uv=False)
    if tol is None:
        relative = onp.finfo(A.dtype).eps * max(shape(A)[-2:]) if rtol is None else rtol
        tol = EW["multiply"](relative, R.max(s, axis=-1, keepdims=True))
    return R.sum(astype(EW["greater"](s, tol), dtype=onp.dtype(onp.int64)), axis=-1)


def lstsq(a, b, rcond=None):
    """The least-squares solution of a @ x = b, as numpy.linalg.lstsq: (x, residuals, rank, s).
    x = pinv(a) @ b, with singular values at or below rcond times the largest dropped (default:
    max(m, n) times eps, numpy's); residuals are the squared 2-norms of b - a @ x per column when
    rank == n < m, else empty. Where the rank is not one known number (under gpuad.jit, which
    traces without values, and under vmap) rank is an integer array and residuals always have a
    column's length, 0 where NumPy's would be empty, as jax.numpy.linalg.lstsq gives them.

    >>> import gpuad.numpy as gnp
    >>> x, res, rank, s = gnp.linalg.lstsq(gnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), gnp.array([1.0, 1.0, 3.0]))
    >>> print(x.round(6), res.round(6), rank)
    [1.333333 1.333333] [0.333333] 2
    """
    a, b = _float(a), _float(b)
    if len(shape(a)) != 2 or len(shape(b)) not in (1, 2) or shape(b)[0] != shape(a)[0]:
        raise ValueError(f"lstsq: a must be (m, n) and b (m,) or (m, k); got {shape(a)} and {shape(b)}")
    m, n = shape(a)
    tol = _tolerance(onp.finfo(a.dtype).eps * max(m, n) if rcond is None else rcond, "lstsq")
    s = svd(a, compute_uv=False)
    keep = EW["greater"](s, EW["multiply"](tol, R.max(s, axis=-1, keepdims=True)))
    x = matmul(L.pinv(a, tol=tol), b)
    rank = R.sum(astype(keep, dtype=onp.dtype(onp.int64)))
    residuals = R.sum(squared_modulus(EW["subtract"](b, matmul(a, x))), axis=0, keepdims=len(shape(b)) == 1)
    known = _known(rank)
    if known is None or shape(known) != ():  # JAX's form: the residuals, zeroed where NumPy's are empty
        full = EW["logical_and"](EW["equal"](rank, n), m > n)
        return x, where(full, residuals, 0.0), rank, s
    rank = int(known)
    if not (rank == n and m > n):
        residuals = asarray(onp.zeros((0,), dtype=real_dtype(a.dtype)))  # real, as numpy's
    return x, residuals, rank, s


def cond(x, p=None):
    """The condition number of a matrix or stack (numpy.linalg.cond): s_max / s_min for p None
    or 2, s_min / s_max for -2, else norm(x, p) * norm(inv(x), p).

    >>> import gpuad.numpy as gnp
    >>> print(gnp.linalg.cond(gnp.array([[4.0, 0.0], [0.0, 0.5]])))
    8.0
    """
    x = _matrix(x, "cond")
    if p in (None, 2, -2):
        s = svd(x, compute_uv=False)
        big, small = R.max(s, axis=-1), R.min(s, axis=-1)
        return EW["divide"](small, big) if p == -2 else EW["divide"](big, small)
    return EW["multiply"](norm(x, p, axis=(-2, -1)), norm(inv(x), p, axis=(-2, -1)))


# ---------------------------------------------------------------- products
def matrix_power(a, n):
    """a raised to the integer power n (numpy.linalg.matrix_power), by repeated squaring; n < 0
    raises the inverse, n = 0 gives the identity.

    >>> import gpuad.numpy as gnp
    >>> print(gnp.linalg.matrix_power(gnp.array([[1.0, 1.0], [0.0, 1.0]]), 3))
    [[1. 3.]
     [0. 1.]]
    """
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"matrix_power: the exponent must be an integer, got {n!r}") from None
    a = asarray(a)
    size = _square(a, "matrix_power")
    if n == 0:
        return broadcast_to(eye(size, dtype=a.dtype), shape(a))
    if n < 0:
        a, n = inv(a), -n
    result = None
    while n:
        if n & 1:
            result = a if result is None else matmul(result, a)
        n >>= 1
        if n:
            a = matmul(a, a)
    return result


def multi_dot(arrays, *, out=None):
    """The product of two or more arrays, left to right (numpy.linalg.multi_dot): the first may
    be 1-D (a row vector) and the last 1-D (a column vector), the others 2-D.

    >>> import gpuad.numpy as gnp
    >>> print(gnp.linalg.multi_dot([gnp.ones(2), gnp.eye(2) * 2, gnp.ones(2)]))
    4.0
    """
    if out is not None:
        raise TypeError("multi_dot: out= is not supported (gpuad arrays are not written in place)")
    arrays = [asarray(x) for x in arrays]
    if len(arrays) < 2:
        raise ValueError("multi_dot: expecting at least two arrays")
    for k, x in enumerate(arrays):
        ends = k in (0, len(arrays) - 1)
        if len(shape(x)) != 2 and not (ends and len(shape(x)) == 1):
            raise ValueError(f"multi_dot: array {k} has {len(shape(x))} dimensions; the first and last "
                             "must be 1-D or 2-D, the others 2-D")
    result = arrays[0]
    for x in arrays[1:]:
        result = matmul(result, x)
    return result


# ---------------------------------------------------------------- norms
_MATRIX_ORDS = (None, "fro", 1, -1, 2, -2, "nuc", onp.inf, -onp.inf)


def norm(x, ord=None, axis=None, keepdims=False):
    """Vector or matrix norm, as numpy.linalg.norm.

    Vectors (axis an int, or x 1-D): ord None or 2, 1, inf, -inf, 0 (count of non-zeros) and
    any other number p. Matrices (axis a pair, or x 2-D with ord given): None/'fro', 1, -1,
    inf, -inf, and through the singular values 2 (the largest), -2 (the smallest), 'nuc' (their
    sum). axis=None with ord=None is the 2-norm of all entries, for any ndim. Roots
    (the 2-norm, Frobenius, p-norms) have derivative 0 at x = 0, a subgradient, not nan.

    >>> import gpuad.numpy as gnp
    >>> gnp.linalg.norm(gnp.array([3.0, 4.0]))
    array(5.)
    """
    x = _float(x)
    nd = len(shape(x))
    if axis is None and ord is None:
        return R.root(R.sum(squared_modulus(x), keepdims=keepdims), 2)
    if axis is None:
        if nd not in (1, 2):
            raise ValueError(f"norm: with ord={ord!r} and axis=None, x must be 1-D or 2-D; got {nd}-D. "
                             "Pass axis to choose the vector or matrix axes.")
        axis = tuple(range(nd))
    axes = _norm_axes(axis, nd)
    if len(axes) == 1:
        return _vector_norm(x, ord, axes[0], keepdims)
    return _matrix_norm(x, ord, axes, keepdims)


def vector_norm(x, /, *, axis=None, keepdims=False, ord=2):
    """The vector norm over axis (numpy.linalg.vector_norm): several axes, or all of them for
    axis=None, count as one flattened vector; ord as in norm's vector norms.

    >>> import gpuad.numpy as gnp
    >>> print(gnp.linalg.vector_norm(gnp.array([[3.0, 0.0], [0.0, 4.0]])))
    5.0
    """
    x = _float(x)
    nd = len(shape(x))
    axes = tuple(range(nd)) if axis is None else tuple(a % nd for a in (axis if isinstance(axis, tuple)
                                                                        else (axis,)))
    moved = moveaxis(x, axes, tuple(range(nd - len(axes), nd)))
    flat = reshape(moved, shape(moved)[:nd - len(axes)] + (-1,))
    y = _vector_norm(flat, ord, nd - len(axes), False)
    return expand_dims(y, tuple(sorted(axes))) if keepdims else y


def matrix_norm(x, /, *, keepdims=False, ord="fro"):
    """The matrix norm of the last two axes (numpy.linalg.matrix_norm); ord as in norm's matrix norms.

    >>> import gpuad.numpy as gnp
    >>> print(gnp.linalg.matrix_norm(gnp.array([[3.0, 0.0], [0.0, 4.0]]), ord=2))
    4.0
    """
    return norm(_matrix(x, "matrix_norm"), ord, axis=(-2, -1), keepdims=keepdims)


def svdvals(x, /):
    """The singular values, descending, of a matrix or stack (numpy.linalg.svdvals).

    >>> import gpuad.numpy as gnp
    >>> print(gnp.linalg.svdvals(gnp.array([[3.0, 0.0], [0.0, -4.0]])))
    [4. 3.]
    """
    return svd(x, compute_uv=False)


def _norm_axes(axis, nd):
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    if len(axes) not in (1, 2):
        raise ValueError(f"norm: axis must be an int or a pair of ints, got {axis!r}")
    return distinct_axes(axes, nd, "norm")


def _modulus(x):
    """|x| of complex x (a vector norm, and a matrix norm but those of the singular values, depends
    on it alone), x itself of real x."""
    return _abs(x) if x.dtype.kind == "c" else x


def _vector_norm(x, ord, axis, keepdims):
    if ord is None or ord == 2:
        return R.root(R.sum(squared_modulus(x), axis, keepdims), 2)
    x = _modulus(x)
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
    return R.root(R.sum(EW["power"](mag, float(ord)), axis, keepdims), ord)


def _matrix_norm(x, ord, axes, keepdims):
    if ord not in _MATRIX_ORDS:
        raise ValueError(f"norm: matrix norm ord={ord!r} is not supported; use None, 'fro', 1, -1, 2, -2, "
                         "'nuc', inf or -inf")
    if ord in (None, "fro"):
        return R.root(R.sum(squared_modulus(x), axes, keepdims), 2)
    if ord not in (2, -2, "nuc"):
        x = _modulus(x)
    if ord in (2, -2, "nuc"):
        s = svd(moveaxis(x, axes, (-2, -1)), compute_uv=False)
        y = {2: R.max, -2: R.min, "nuc": R.sum}[ord](s, axis=-1)
        return expand_dims(y, tuple(sorted(axes))) if keepdims else y
    row, col = axes
    # ord 1: the largest absolute column sum (summed over rows); ord inf: the largest row sum.
    summed, picked = (row, col) if abs(ord) == 1 else (col, row)
    pick = R.max if ord > 0 else R.min
    y = pick(R.sum(EW["abs"](x), summed, keepdims=True), picked, keepdims=True)
    return y if keepdims else squeeze(y, axes)


def __getattr__(name):
    """A clear error for numpy.linalg names that gpuad.numpy.linalg does not have (yet)."""
    if hasattr(onp.linalg, name):
        raise AttributeError(f"gpuad.numpy.linalg has no {name!r} yet (numpy.linalg.{name} exists). Compose it "
                             "from gpuad.numpy.linalg functions, or compute it outside the transformed function.")
    raise AttributeError(f"module 'gpuad.numpy.linalg' has no attribute {name!r}")
