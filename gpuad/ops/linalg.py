"""Linear-algebra primitives: `solve`, `triangular_solve`, `inv`, `slogdet`, `logdet`, `cholesky`,
`eigh`, `eig`, `svd`, `pinv`, `qr`, `lu`.

All act on the last two axes of a stack of matrices (..., n, n), so a leading bundle or
batch axis is just one more stack axis. Everything else (det, norm, ...) is
composed from these in gpuad/numpy/linalg.py. Rules are written with gpuad's own
primitives, so they nest to any order.

One factorisation serves a whole bundle: `solve_lead` folds the K directions of a bundle
into the right-hand-side columns (`triangular_solve_lead` likewise), and the determinant rules
reuse one inverse for all K directions through a single batched GEMM.
"""
import functools
import math

import numpy as onp

from .. import backends
from ..backends import xp
from ..backends.numpy import BLAS
from ..backends.scipy_functions import scipy_functions
from ..core import Primitive, ShapeDtypeStruct, dtype, real_dtype, result_dtype, same, shape
from .contract import contract
from .elementwise import (
    PRIMS,
    add,
    astype,
    conj,
    conj_if_complex,
    divide,
    imag,
    multiply,
    negative,
    real,
    subtract,
    where,
)
from .indexing import getitem
from .shape import broadcast_to, reduce_sum, reshape, transpose

_BATCH = "pqrstuvw"  # letters for the stack axes of '.' in _einsum specs


def _einsum(spec, x, y, nbatch):
    """A two-operand contraction written like einsum, with '.' standing for `nbatch` stack axes.

    _einsum("K.ij,.jk->K.ik", dA, x, 1) multiplies each direction of a bundle dA (K, B, n, n)
    by x (B, n, r) without broadcasting x to K copies.
    """
    ins, out = spec.replace(".", _BATCH[:nbatch]).split("->")
    sa, sb = ins.split(",")
    return contract(x, y, spec=(sa, sb, out))


def _swap_last(x):
    n = len(shape(x))
    return transpose(x, perm=tuple(range(n - 2)) + (n - 1, n - 2))


# ---------------------------------------------------------------- solve
def _move(x, perm):
    return x if perm == tuple(range(len(perm))) else transpose(x, perm=perm)


def _reshape(x, s):
    return x if shape(x) == tuple(s) else reshape(x, shape=tuple(s))


def solve_lead(a, b, lead, solver=None):
    """solve(a, b) where b carries `lead` extra leading axes: b (*L, ..., n, r), a (..., n, n).

    The L axes are folded into the right-hand-side columns, so a is factorised once for
    all of them (one LAPACK/cuSOLVER call), instead of being broadcast to L copies.
    `solver(a, b)` stands for solve where given (a triangular solve).
    """
    bs = shape(b)
    nb = len(bs)
    to_end = tuple(range(lead, nb)) + tuple(range(lead))
    cols = _move(b, to_end)
    folded = _reshape(cols, bs[lead:-1] + (bs[-1] * math.prod(bs[:lead]),))
    x = (solver or solve)(a, folded)
    x = _reshape(x, shape(cols))
    return _move(x, tuple(range(nb - lead, nb)) + tuple(range(nb - lead)))


def _solve_jvp(primals, tangents):
    a, b = primals
    ta, tb = tangents
    x = solve(a, b)
    rhs = tb
    if ta is not None:  # d(A x) = d(b)  =>  A dx = db - dA x
        dax = _einsum("K.ij,.jk->K.ik", ta, x, len(shape(a)) - 2)
        rhs = negative(dax) if tb is None else subtract(tb, dax)
    return x, solve_lead(a, rhs, 1)


def _solve_vjp(ct, args, x, needed):
    a, _ = args
    ct_b = solve_lead(_swap_last(a), ct, 1)
    ct_a = negative(_einsum("M.ij,.kj->M.ik", ct_b, x, len(shape(a)) - 2)) if needed[0] else None
    return [ct_a, ct_b if needed[1] else None]


def _solve_batch(args, batched):
    a, b = args
    if not batched[0]:  # one matrix for the whole batch: fold the batch into the columns
        return solve_lead(a, b, 1), True
    if not batched[1]:
        b = broadcast_to(b, shape=shape(a)[:1] + shape(b))
    return solve(a, b), True


# x with a @ x = b, for a (..., n, n) and b (..., n, r) with the same stack axes.
solve = Primitive(
    "solve", lambda a, b: xp().linalg.solve(a, b), _solve_jvp, _solve_vjp, _solve_batch,
    abstract=lambda a, b: ShapeDtypeStruct(shape(b), result_dtype(a, b)))
solve.complex_ready = True  # holomorphic in a and b; its VJP transposes, as JAX's, never conjugates


def _solve_lowered(xp_, shapes):
    """solve as a compiled step. On NumPy, a single system (not a stack) of two operands of one
    LAPACK dtype calls SciPy's public LAPACK wrapper (gesv) at once: numpy.linalg.solve's own checks,
    dtype dispatch and error state cost more than the solve of a small system (a Newton step's 3 x 3:
    5.6 us against 0.7 us). A singular matrix still raises LinAlgError; stacks, other dtypes, and
    installs without SciPy take NumPy's path."""
    if xp_ is not onp or len(shapes[0]) != 2 or len(shapes[1]) != 2:
        return xp_.linalg.solve
    gesv = scipy_functions(onp, "linalg.lapack", tuple(f"{p}gesv" for p in BLAS.values()))

    def solve_step(a, b):
        if a.dtype not in BLAS or b.dtype != a.dtype or not b.size:
            return onp.linalg.solve(a, b)
        try:
            _, _, x, info = gesv[f"{BLAS[a.dtype]}gesv"](a, b)
        except ImportError:  # SciPy is an optional extra
            return onp.linalg.solve(a, b)
        if info > 0:
            raise onp.linalg.LinAlgError("Singular matrix")
        return onp.ascontiguousarray(x)  # gesv's is in Fortran order (a column: both)
    return solve_step


solve.lower = _solve_lowered


# ---------------------------------------------------------------- triangular solve
def _triangle(x, lower, unit_diagonal):
    """x times the 0/1 mask of the entries a triangular solve reads: the lower (or upper) triangle,
    without the diagonal if unit_diagonal (those ones are implied, not read)."""
    n = shape(x)[-1]
    ones = xp().ones((n, n), dtype=dtype(x))
    k = -1 if unit_diagonal else 0
    return multiply(xp().tril(ones, k) if lower else xp().triu(ones, -k), x)


def _triangular_solve_jvp(primals, tangents, lower, transpose, unit_diagonal):
    # T x = b with T = op(triangle(a)): T dx = db - dT x, dT = op(triangle(da)).
    a, b = primals
    ta, tb = tangents
    params = dict(lower=lower, transpose=transpose, unit_diagonal=unit_diagonal)
    x = triangular_solve(a, b, **params)
    rhs = tb
    if ta is not None:
        spec = "K.ji,.jk->K.ik" if transpose else "K.ij,.jk->K.ik"
        dtx = _einsum(spec, _triangle(ta, lower, unit_diagonal), x, len(shape(a)) - 2)
        rhs = negative(dtx) if tb is None else subtract(tb, dtx)
    return x, triangular_solve_lead(a, rhs, 1, **params)


def _triangular_solve_vjp(ct, args, x, needed, lower, transpose, unit_diagonal):
    # ct_b = T^-T ct (the other transpose flag); ct_T = -ct_b x^T, read back through op and the mask.
    a, _ = args
    ct_b = triangular_solve_lead(a, ct, 1, lower=lower, transpose=not transpose, unit_diagonal=unit_diagonal)
    ct_a = None
    if needed[0]:
        spec = "M.jk,.ik->M.ij" if transpose else "M.ik,.jk->M.ij"
        ct_a = negative(_triangle(_einsum(spec, ct_b, x, len(shape(a)) - 2), lower, unit_diagonal))
    return [ct_a, ct_b if needed[1] else None]


def _triangular_solve_batch(args, batched, **params):
    a, b = args
    if not batched[0]:  # one matrix for the whole batch: fold the batch into the columns
        return triangular_solve_lead(a, b, 1, **params), True
    if not batched[1]:
        b = broadcast_to(b, shape=shape(a)[:1] + shape(b))
    return triangular_solve(a, b, **params), True


# x with T @ x = b, T the lower (lower=True) or upper triangle of a (ones on its diagonal if
# unit_diagonal), transposed if transpose; a (..., n, n) and b (..., n, r) with the same stack axes.
# One backend call (BLAS/cuBLAS trsm: O(n^2 r)); the other triangle of a is not read, and gets no
# derivative. Holomorphic, as solve (conj(a) for scipy's trans='C' is the caller's).
triangular_solve = Primitive(
    "triangular_solve",
    lambda a, b, lower, transpose, unit_diagonal: backends.current().solve_triangular(
        a, b, lower=lower, transpose=transpose, unit_diagonal=unit_diagonal),
    _triangular_solve_jvp, _triangular_solve_vjp, _triangular_solve_batch,
    abstract=lambda a, b, **params: ShapeDtypeStruct(shape(b), result_dtype(a, b)))
triangular_solve.complex_ready = True


def triangular_solve_lead(a, b, lead, **params):
    """triangular_solve(a, b, **params) where b carries `lead` extra leading axes, folded into the
    right-hand-side columns as in solve_lead: one trsm for all of them."""
    return solve_lead(a, b, lead, functools.partial(triangular_solve, **params))


# ---------------------------------------------------------------- inverse
def _inv_jvp(primals, tangents):
    # d(A^-1) = -X dA X with X = A^-1: two GEMMs per direction, from the output.
    a, = primals
    x = inv(a)
    nb = len(shape(a)) - 2
    return x, negative(_einsum(".ij,K.jk->K.ik", x, _einsum("K.ij,.jk->K.ik", tangents[0], x, nb), nb))


def _inv_vjp(ct, args, x, needed):
    # The transpose: ct_A = -X^T ct X^T, two GEMMs where solve(A, I)'s VJP factorised A^T again
    # (JAX's reuses the forward LU); holomorphic, so no conjugate.
    nb = len(shape(x)) - 2
    return [negative(_einsum("M.ij,.kj->M.ik", _einsum(".ji,M.jk->M.ik", x, ct, nb), x, nb))]


# The inverse of each matrix of a stack (..., n, n): LAPACK gesv against I (numpy.linalg.inv).
inv = Primitive("inv", lambda a: xp().linalg.inv(a), _inv_jvp, _inv_vjp,
                lambda args, batched: (inv(args[0]), True), abstract=same)
inv.complex_ready = True


# ---------------------------------------------------------------- determinant
def _matrix_unary(name, impl, jvp=None, vjp=None, nondiff=False, abstract=None):
    """A primitive of one stack of matrices: a batch axis is one more stack axis. Its abstract
    value is by default one number per matrix of the stack."""
    abstract = abstract or (lambda a: ShapeDtypeStruct(shape(a)[:-2], dtype(a)))
    prim = Primitive(name, impl, jvp, vjp, nondiff=nondiff, abstract=abstract)
    prim.batch = lambda args, batched: (prim(args[0]), True)
    return prim


def _factorisation(name, impl, jvp, vjp, abstract):
    """A primitive of one stack of matrices returning several factors; a batch axis is one more
    stack axis."""
    prim = Primitive(name, impl, jvp, vjp, abstract=abstract)
    prim.multiple_results = True

    def batch(args, batched, **params):
        outs = prim(args[0], **params)
        return outs, [True] * len(outs)
    prim.batch = batch
    return prim


def _trace_of_inverse_times(a, t):
    """trace(A^-1 dA) for each direction of the bundle t = <A^-T, dA>: one inverse, then one GEMM
    for all K directions, cheaper than solving against each direction's n columns."""
    return _einsum(".ji,K.ij->K.", inv(a), t, len(shape(a)) - 2)


def _logabsdet_vjp(ct, args, out, needed):
    a, = args
    return [_einsum("M.,.ji->M.ij", ct, inv(a), len(shape(a)) - 2)]


def _slogdet_impl(a):
    sign, logabs = xp().linalg.slogdet(a)
    return xp().asarray(sign), xp().asarray(logabs)  # arrays, 0-d for one matrix


def _slogdet_jvp(primals, tangents):
    # d log|det A| = trace(A^-1 dA); the sign is piecewise constant: no tangent.
    a, = primals
    return slogdet(a), (None, _trace_of_inverse_times(a, tangents[0]))


def _slogdet_vjp(cts, args, outs, needed):
    return [None if cts[1] is None else _logabsdet_vjp(cts[1], args, outs[1], needed)[0]]


def _slogdet_abstract(a):
    return (ShapeDtypeStruct(shape(a)[:-2], dtype(a)),) * 2


# (sign, log|det|) of real matrices (..., n, n), from one LU factorisation.
slogdet = _factorisation("slogdet", _slogdet_impl, _slogdet_jvp, _slogdet_vjp, _slogdet_abstract)


def _logdet_impl(a):
    sign, logabs = xp().linalg.slogdet(a)
    return logabs + 1j * xp().angle(sign)


# log det of complex matrices, log|det| + i arg(det): holomorphic (arg jumps by 2 pi, flat on each
# side), with log|det|'s rules: d log det A = trace(A^-1 dA), the VJP ct A^-T (a transpose).
# gpuad.numpy.linalg makes complex slogdet and det of it; the sign is not constant there.
logdet = _matrix_unary("logdet", _logdet_impl,
                       lambda primals, tangents: (logdet(primals[0]), _trace_of_inverse_times(primals[0], tangents[0])),
                       _logabsdet_vjp)
logdet.complex_ready = True


# ---------------------------------------------------------------- cholesky
def _phi(x):
    """The lower triangle with the diagonal halved; self-adjoint (a fixed elementwise mask)."""
    n = shape(x)[-1]
    np_ = xp()
    mask = np_.tril(np_.ones((n, n), dtype=x.dtype), -1) + 0.5 * np_.eye(n, dtype=x.dtype)
    return multiply(mask, x)


def _lower_solve(low, b, lead, transpose=False):
    """L^-1 b (L^-T b if transpose) for b with `lead` extra leading axes: one triangular solve."""
    return triangular_solve_lead(low, b, lead, lower=True, transpose=transpose, unit_diagonal=False)


def _cholesky_jvp(primals, tangents):
    a, = primals
    low = cholesky(a)
    # dA = dL L^H + L dL^H, so L^-1 dA L^-H = M + M^H with M = L^-1 dL lower triangular (its
    # diagonal real); Φ recovers M from that sum when dA is Hermitian (gpuad.numpy.linalg.cholesky
    # takes the Hermitian part of its input, so it is): dL = L Φ(L^-1 dA L^-H). (^H is ^T of reals.)
    # Two triangular solves, as JAX's: W = L^-1 dA, then L^-1 dA L^-H = (conj(L)^-1 W^T)^T.
    w = _lower_solve(low, tangents[0], 1)
    x = _swap_last(_lower_solve(conj_if_complex(low), _swap_last(w), 1))
    return low, _einsum(".ij,K.jk->K.ik", low, _phi(x), len(shape(a)) - 2)


def _cholesky_vjp(ct, args, low, needed):
    # The transpose of the JVP above: dA -> L Φ(L^-1 dA L^-H) is ct -> L^-T Φ(L^T ct) conj(L)^-1,
    # by two triangular solves (no inverse): Y = L^-T Φ(L^T ct), then Y conj(L)^-1 = (conj(L)^-T Y^T)^T.
    nb = len(shape(low)) - 2
    y = _lower_solve(low, _phi(_einsum(".ki,M.kj->M.ij", low, ct, nb)), 1, transpose=True)
    return [_swap_last(_lower_solve(conj_if_complex(low), _swap_last(y), 1, transpose=True))]


cholesky = _matrix_unary(
    "cholesky", lambda a: xp().linalg.cholesky(a), _cholesky_jvp, _cholesky_vjp, abstract=same)
cholesky.complex_ready = True  # of Hermitian matrices: R-linear rules, conjugates where L^H stands


# ---------------------------------------------------------------- factorisations
# Each factorisation is one primitive of several results (multiple_results): one LAPACK/cuSOLVER
# call makes every factor, and its rules see all of them at once. A cotangent of None is a factor
# the function does not use (a zero): the VJPs skip its terms.
def _eye(n, like):
    return xp().eye(n, dtype=dtype(like))


def _diagonal(x):
    """The diagonals of a stack (or bundle) of square matrices: (..., n, n) -> (..., n)."""
    return reduce_sum(multiply(_eye(shape(x)[-1], x), x), axes=(len(shape(x)) - 2,), keepdims=False)


def _row(v):
    """v (..., n) as rows (..., 1, n), to broadcast along the columns of matrices."""
    return reshape(v, shape=shape(v)[:-1] + (1, shape(v)[-1]))


def _diagonal_matrix(v):
    """diag(v) of each vector of a stack (or bundle) v (..., n): (..., n, n)."""
    return multiply(_eye(shape(v)[-1], v), _row(v))


def _real_part(x):
    """Re x: the tangent of a real factor (eigenvalues, singular values) of a complex matrix."""
    return real(x) if dtype(x).kind == "c" else x


def _reciprocal_or_zero(x):
    """1 / x, and 0 where x == 0: the gaps between equal eigenvalues (or singular values, or the
    diagonal's own), where the factor's derivative is not defined and is taken to be 0, so that
    derivatives of the values alone stay finite there."""
    zero = PRIMS["equal"](x, 0.0)
    return where(zero, 0.0, divide(1.0, where(zero, 1.0, x)))


def _gaps(values, square=False):
    """F[i, j] = 1 / (v_j - v_i) (or 1 / (v_j^2 - v_i^2)), 0 on the diagonal, from v (..., n)."""
    row = _row(values)
    col = _swap_last(row)
    diff = subtract(row, col)
    return _reciprocal_or_zero(multiply(add(row, col), diff) if square else diff)


def _imaginary_diagonal(x, scale=None):
    """I o (i Im x), times scale where given: the diagonal's imaginary parts, where the phase
    freedom of complex factorisations sits (QR's R has a real diagonal); None for real x (or
    None x: a zero). The map is its own transpose."""
    if x is None or dtype(x).kind != "c":
        return None
    d = multiply(_eye(shape(x)[-1], x), multiply(1j, imag(x)))
    return d if scale is None else multiply(d, scale)


def _plus(x, y):
    """x + y, where either may be None (a zero)."""
    return x if y is None else y if x is None else add(x, y)


def _minus(x, y):
    """x - y, where either may be None (a zero)."""
    return x if y is None else negative(y) if x is None else subtract(x, y)


# ---------------------------------------------------------------- eigh
def _eigh_impl(a):
    w, v = xp().linalg.eigh(a)
    return w, v


def _eigh_jvp(primals, tangents):
    # A = V diag(w) V^H: with S = V^H dA V, dw = diag(S) and dV = V (F o S), F_ij = 1/(w_j - w_i).
    # diag(S) is real for a Hermitian dA (gpuad.numpy.linalg.eigh symmetrises its input): its real
    # part, an R-linear map, is dw of the real eigenvalues of a complex matrix.
    a, = primals
    w, v = eigh(a)
    nb = len(shape(a)) - 2
    s = _einsum(".ji,K.jk->K.ik", conj_if_complex(v), _einsum("K.ij,.jk->K.ik", tangents[0], v, nb), nb)
    dv = _einsum(".ij,K.jk->K.ik", v, multiply(_gaps(w), s), nb)
    return (w, v), (_real_part(_diagonal(s)), dv)


def _eigh_vjp(cts, args, outs, needed):
    # The transpose of the JVP: ct_A = conj(V) (diag(ct_w) + F o (V^T ct_V)) V^T.
    ct_w, ct_v = cts
    w, v = outs
    nb = len(shape(v)) - 2
    inner = _plus(None if ct_w is None else _diagonal_matrix(ct_w),
                  None if ct_v is None else multiply(_gaps(w), _einsum(".ji,M.jk->M.ik", v, ct_v, nb)))
    return [_einsum("M.ij,.kj->M.ik", _einsum(".ij,M.jk->M.ik", conj_if_complex(v), inner, nb), v, nb)]


def _eigh_abstract(a):
    return (ShapeDtypeStruct(shape(a)[:-1], real_dtype(dtype(a))), same(a))


# (w, V): the eigenvalues (ascending, real) and eigenvectors of Hermitian matrices (..., n, n).
eigh = _factorisation("eigh", _eigh_impl, _eigh_jvp, _eigh_vjp, _eigh_abstract)
eigh.complex_ready = True  # of Hermitian matrices


# ---------------------------------------------------------------- eig
def _eig_impl(a):
    w, v = xp().linalg.eig(a)  # numpy returns real arrays when every eigenvalue is real
    complex_ = onp.result_type(a.dtype, onp.complex64)
    return w.astype(complex_, copy=False), v.astype(complex_, copy=False)


def _eig_jvp(primals, tangents):
    # A = V diag(w) V^-1: with S = V^-1 dA V, dw = diag(S) and dV = V H, H = G - I o Re(V^H V G),
    # G = F o S, F_ij = 1/(w_j - w_i); the second term keeps the columns of V at unit norm (JAX's).
    a, = primals
    w, v = eig(a)
    nb = len(shape(a)) - 2
    s = _einsum(".ij,K.jk->K.ik", inv(v), _einsum("K.ij,.jk->K.ik", tangents[0], v, nb), nb)
    g = multiply(_gaps(w), s)
    vhv = _einsum(".ji,.jk->.ik", conj(v), v, nb)
    h = subtract(g, multiply(_eye(shape(v)[-1], g), real(_einsum(".ij,K.jk->K.ik", vhv, g, nb))))
    return (w, v), (_diagonal(s), _einsum(".ij,K.jk->K.ik", v, h, nb))


def _eig_vjp(cts, args, outs, needed):
    # The transpose of the JVP (Re and the mask I o are their own transposes):
    # ct_A = V^-T (diag(ct_w) + F o (ct_H - V^T conj(V) (I o Re(ct_H)))) V^T, ct_H = V^T ct_V.
    ct_w, ct_v = cts
    w, v = outs
    nb = len(shape(v)) - 2
    inner = None if ct_w is None else _diagonal_matrix(ct_w)
    if ct_v is not None:
        ct_h = _einsum(".ji,M.jk->M.ik", v, ct_v, nb)
        vhv_t = _einsum(".ji,.jk->.ik", v, conj(v), nb)
        ct_g = subtract(ct_h, _einsum(".ij,M.jk->M.ik", vhv_t, multiply(_eye(shape(v)[-1], ct_h), real(ct_h)), nb))
        inner = _plus(inner, multiply(_gaps(w), ct_g))
    return [_einsum("M.ij,.kj->M.ik", _einsum(".ji,M.jk->M.ik", inv(v), inner, nb), v, nb)]


def _eig_abstract(a):
    complex_ = onp.result_type(dtype(a), onp.complex64)
    return ShapeDtypeStruct(shape(a)[:-1], complex_), ShapeDtypeStruct(shape(a), complex_)


# (w, V): the eigenvalues (numpy's order) and unit eigenvectors of matrices (..., n, n), real or
# complex; both always complex (as JAX's: real matrices may have complex eigenvalues).
eig = _factorisation("eig", _eig_impl, _eig_jvp, _eig_vjp, _eig_abstract)
eig.complex_ready = True


# ---------------------------------------------------------------- svd
def adjoint(x):
    """x^H of a matrix or stack (x^T of reals)."""
    return conj_if_complex(_swap_last(x))


def _svd_impl(a, complement=False):
    m, n = a.shape[-2:]
    k = min(m, n)
    u, s, vh = xp().linalg.svd(a, full_matrices=complement)
    v = vh.swapaxes(-1, -2)
    v = v.conj() if v.dtype.kind == "c" else v
    if not complement:
        return u, s, v
    return u[..., :k], s, v[..., :k], u[..., k:] if m > n else v[..., k:]


def _without(basis, x, nb, lead="K"):
    """x minus its projection on the columns of the orthonormal basis: (I - B B^H) x."""
    return subtract(x, _einsum(f".ij,{lead}.jk->{lead}.ik", basis, _einsum(
        f".ji,{lead}.jk->{lead}.ik", conj_if_complex(basis), x, nb), nb))


def _hermitian_sum(x):
    return add(x, _swap_last(conj_if_complex(x)))


def _svd_jvp(primals, tangents, complement=False):
    # A = U S V^H, P = U^H dA V: ds = Re diag(P), dU = U (F o (P S + S P^H) + I o (i Im P) S^-1),
    # dV = V (F o (S P + P^H S)) with F_ij = 1/(s_j^2 - s_i^2) (JAX's: the phase freedom of each
    # column pair goes to U); a tall A adds (I - U U^H) dA V S^-1 to dU, a wide one
    # (I - V V^H) dA^H U S^-1 to dV (the directions the reduced factors do not span).
    a, = primals
    da = tangents[0]
    m, n = shape(a)[-2:]
    nb = len(shape(a)) - 2
    outs = svd(a, complement=complement)
    u, s, v = outs[:3]
    s_row = _row(s)
    f, s_col, s_inv = _gaps(s, square=True), _swap_last(s_row), _reciprocal_or_zero(s_row)
    p = _einsum(".ji,K.jk->K.ik", conj_if_complex(u), _einsum("K.ij,.jk->K.ik", da, v, nb), nb)
    inner_u = multiply(f, _hermitian_sum(multiply(p, s_row)))
    du = _einsum(".ij,K.jk->K.ik", u, _plus(inner_u, _imaginary_diagonal(p, s_inv)), nb)
    dv = _einsum(".ij,K.jk->K.ik", v, multiply(f, _hermitian_sum(multiply(s_col, p))), nb)
    if m > n:
        du = add(du, multiply(_without(u, _einsum("K.ij,.jk->K.ik", da, v, nb), nb), s_inv))
    if n > m:
        dah_u = _einsum("K.ji,.jk->K.ik", conj_if_complex(da), u, nb)
        dv = add(dv, multiply(_without(v, dah_u, nb), s_inv))
    return outs, (du, _real_part(_diagonal(p)), dv) + (None,) * complement  # the complement: none


def _svd_vjp(cts, args, outs, needed, complement=False):
    # The JVP's steps transposed (Y -> Y + Y^H to ct -> ct + ct^H, Re and I o i Im to themselves).
    ct_u, ct_s, ct_v = cts[:3]  # (the complement has no derivative)
    u, s, v = outs[:3]
    m, n = shape(u)[-2], shape(v)[-2]
    nb = len(shape(u)) - 2
    s_row = _row(s)
    f, s_col, s_inv = _gaps(s, square=True), _swap_last(s_row), _reciprocal_or_zero(s_row)
    ct_p = None if ct_s is None else _diagonal_matrix(ct_s)
    if ct_u is not None:
        ut_ct_u = _einsum(".ji,M.jk->M.ik", u, ct_u, nb)
        ct_p = _plus(_plus(ct_p, multiply(_hermitian_sum(multiply(f, ut_ct_u)), s_row)),
                     _imaginary_diagonal(ut_ct_u, s_inv))
    if ct_v is not None:
        ct_p = _plus(ct_p, multiply(s_col, _hermitian_sum(multiply(f, _einsum(".ji,M.jk->M.ik", v, ct_v, nb)))))
    ct_a = _einsum("M.ij,.kj->M.ik", _einsum(".ij,M.jk->M.ik", conj_if_complex(u), ct_p, nb), v, nb)
    if m > n and ct_u is not None:
        w = multiply(_without(conj_if_complex(u), ct_u, nb, "M"), s_inv)
        ct_a = add(ct_a, _einsum("M.ij,.kj->M.ik", w, v, nb))
    if n > m and ct_v is not None:
        w = multiply(_without(conj_if_complex(v), ct_v, nb, "M"), s_inv)
        ct_a = add(ct_a, conj_if_complex(_einsum(".ik,M.jk->M.ij", u, w, nb)))
    return [ct_a]


def _svd_abstract(a, complement=False):
    m, n = shape(a)[-2:]
    k, stack = min(m, n), shape(a)[:-2]
    return (ShapeDtypeStruct(stack + (m, k), dtype(a)), ShapeDtypeStruct(stack + (k,), real_dtype(dtype(a))),
            ShapeDtypeStruct(stack + (n, k), dtype(a))) + \
        (ShapeDtypeStruct(stack + (max(m, n), abs(m - n)), dtype(a)),) * complement


# (U, s, V): the reduced SVD A = U diag(s) V^H of matrices (..., m, n), k = min(m, n): U (..., m, k),
# s (..., k) real and descending, V (..., n, k). With complement=True, of the same factorisation
# (LAPACK's full_matrices=True), also the columns that adds to a non-square matrix's: U's last m - n
# for a tall one, V's last n - m for a wide one, as LAPACK picks them. Those are not unique, so they
# have no derivative here: gpuad.numpy.linalg.svd makes a differentiable basis of that complement
# from them.
svd = _factorisation("svd", _svd_impl, _svd_jvp, _svd_vjp, _svd_abstract)
svd.complex_ready = True


# ---------------------------------------------------------------- pinv
def _pinv_impl(a, tol):
    u, s, vh = xp().linalg.svd(a, full_matrices=False)
    keep = s > tol * s.max(axis=-1, keepdims=True)
    inverse = xp().where(keep, 1 / xp().where(keep, s, 1), 0)
    return xp().matmul(adjoint(vh), inverse[..., None] * adjoint(u))


def _pinv_grams(x, nb):
    """X X^H and X^H X."""
    xc = conj_if_complex(x)
    return _einsum(".ij,.kj->.ik", x, xc, nb), _einsum(".ji,.jk->.ik", xc, x, nb)


def _pinv_jvp(primals, tangents, tol):
    # Golub and Pereyra's derivative, exact wherever the rank does not change, repeated singular
    # values included (the SVD's rules are not defined there): with X = A+,
    # dX = -X dA X + X X^H dA^H (I - A X) + (I - X A) dA^H X^H X
    a, = primals
    da = tangents[0]
    nb = len(shape(a)) - 2
    x = pinv(a, tol=tol)
    left, right = _pinv_residuals(a, x, nb)
    xxh, xhx = _pinv_grams(x, nb)
    dah = conj_if_complex(da)
    out = negative(_einsum(".ij,K.jk->K.ik", x, _einsum("K.ij,.jk->K.ik", da, x, nb), nb))
    out = add(out, _einsum(".ij,K.jk->K.ik", xxh, _einsum("K.ji,.jk->K.ik", dah, left, nb), nb))
    return x, add(out, _einsum(".ij,K.jk->K.ik", right, _einsum("K.ji,.jk->K.ik", dah, xhx, nb), nb))


def _pinv_vjp(ct, args, x, needed, tol):
    # The transpose of the JVP: -X^T G X^T + conj((I - A X) G^T X X^H + X^H X G^T (I - X A))
    # (dA -> M conj(dA)^T N transposes to G -> conj(N G^T M)).
    a, = args
    nb = len(shape(a)) - 2
    left, right = _pinv_residuals(a, x, nb)
    xxh, xhx = _pinv_grams(x, nb)
    out = negative(_einsum("M.ij,.kj->M.ik", _einsum(".ji,M.jk->M.ik", x, ct, nb), x, nb))
    through_adjoint = add(_einsum(".ij,M.jk->M.ik", left, _einsum("M.ji,.jk->M.ik", ct, xxh, nb), nb),
                          _einsum(".ij,M.jk->M.ik", xhx, _einsum("M.ji,.jk->M.ik", ct, right, nb), nb))
    return [add(out, conj_if_complex(through_adjoint))]


def _pinv_residuals(a, x, nb):
    """I - A X and I - X A: the projectors on the complements of A's range and of X's."""
    m, n = shape(a)[-2:]
    return (subtract(_eye(m, a), _einsum(".ij,.jk->.ik", a, x, nb)),
            subtract(_eye(n, a), _einsum(".ij,.jk->.ik", x, a, nb)))


# The Moore-Penrose pseudo-inverse of matrices (..., m, n) -> (..., n, m), dropping the singular
# values at or below tol times the largest.
pinv = Primitive("pinv", _pinv_impl, _pinv_jvp, _pinv_vjp, lambda args, batched, tol: (pinv(args[0], tol=tol), True),
                 abstract=lambda a, tol: ShapeDtypeStruct(shape(a)[:-2] + shape(a)[:-3:-1], dtype(a)))
pinv.complex_ready = True


# ---------------------------------------------------------------- qr
def _qr_impl(a):
    return tuple(xp().linalg.qr(a))


def _strictly_lower(x):
    n = shape(x)[-1]
    return multiply(xp().tril(xp().ones((n, n), dtype=dtype(x)), -1), x)


def _qr_jvp(primals, tangents):
    # With X = dA R^-1 and C = Q^H X: dR = (C - W) R and dQ = Q (W - C) + X, where the
    # skew-Hermitian W = tril(C, -1) - tril(C, -1)^H + I o (i Im C) keeps Q^H Q = I and R upper
    # triangular with a real diagonal (JAX's).
    a, = primals
    q, r = qr(a)
    nb = len(shape(a)) - 2
    x = _swap_last(solve_lead(_swap_last(r), _swap_last(tangents[0]), 1))
    c = _einsum(".ji,K.jk->K.ik", conj_if_complex(q), x, nb)
    low = _strictly_lower(c)
    w = _plus(subtract(low, _swap_last(conj_if_complex(low))), _imaginary_diagonal(c))
    dq = add(_einsum(".ij,K.jk->K.ik", q, subtract(w, c), nb), x)
    dr = _einsum("K.ij,.jk->K.ik", subtract(c, w), r, nb)
    return (q, r), (dq, dr)


def _qr_vjp(cts, args, outs, needed):
    # The JVP's steps transposed in reverse order (X -> X^H transposes to ct -> ct^H).
    ct_q, ct_r = cts
    q, r = outs
    nb = len(shape(q)) - 2
    d = None if ct_r is None else _einsum("M.ij,.kj->M.ik", ct_r, r, nb)
    e = None if ct_q is None else _einsum(".ji,M.jk->M.ik", q, ct_q, nb)
    ct_w = _minus(e, d)
    ct_c = add(negative(ct_w), _strictly_lower(subtract(ct_w, _swap_last(conj_if_complex(ct_w)))))
    ct_c = _plus(ct_c, _imaginary_diagonal(ct_w))
    ct_x = _plus(ct_q, _einsum(".ij,M.jk->M.ik", conj_if_complex(q), ct_c, nb))
    return [_swap_last(solve_lead(r, _swap_last(ct_x), 1))]


def _qr_abstract(a):
    m, n = shape(a)[-2:]
    return ShapeDtypeStruct(shape(a)[:-2] + (m, n), dtype(a)), ShapeDtypeStruct(shape(a)[:-2] + (n, n), dtype(a))


# (Q, R): the reduced QR of matrices (..., m, n), m >= n (gpuad.numpy.linalg.qr splits wide ones).
qr = _factorisation("qr", _qr_impl, _qr_jvp, _qr_vjp, _qr_abstract)
qr.complex_ready = True


# ---------------------------------------------------------------- lu
def _lu_impl(a):
    """scipy.linalg.lu_factor's (lu, piv), piv 0-based int32. The backend factorises the stack
    (CuPy: in one batched call, NumPy: matrix by matrix). No check that a is finite (NaNs
    propagate, as in JAX): on CuPy it is a reduction read back, a host synchronisation."""
    lu_, piv = backends.current().lu_factor(a)
    return lu_, piv.astype(onp.int32, copy=False)


def _masks(n, like):
    """The strictly lower triangle and the upper one (diagonal included), as 0/1 matrices."""
    low = xp().tril(xp().ones((n, n), dtype=dtype(like)), -1)
    return low, 1 - low


def lu_permutation(piv):
    """The 0/1 matrix P with P @ A = the rows of A in the order lu_factor's pivots put them
    (row i swapped with row piv[i], for i = 0, 1, ...): the swaps run on a permutation vector with
    elementwise ops, so pivots computed under gpuad.jit work too. No derivative."""
    n = shape(piv)[-1]
    idx = xp().arange(n)
    perm = broadcast_to(idx, shape=shape(piv))
    stack = (slice(None),) * (len(shape(piv)) - 1)
    for i in range(n):
        p = getitem(piv, idx=stack + (slice(i, i + 1),))  # the pivot of step i
        at_p = PRIMS["equal"](idx, p)
        at_i = PRIMS["equal"](idx, i)
        row_i = reduce_sum(where(at_i, perm, 0), axes=(len(shape(perm)) - 1,), keepdims=True)
        row_p = reduce_sum(where(at_p, perm, 0), axes=(len(shape(perm)) - 1,), keepdims=True)
        perm = where(at_i, row_p, where(at_p, row_i, perm))
    return PRIMS["equal"](reshape(perm, shape=shape(perm) + (1,)), idx)


def _lu_factors(lu_, piv):
    """L (unit lower), U, P and the two triangles' masks, from lu_factor's (lu, piv)."""
    n = shape(lu_)[-1]
    p = astype(lu_permutation(piv), dtype=dtype(lu_))
    low, up = _masks(n, lu_)
    return add(multiply(low, lu_), _eye(n, lu_)), multiply(up, lu_), p, low, up


def _lu_jvp(primals, tangents):
    # P A = L U: with X = L^-1 P dA U^-1, dL = L tril(X, -1) and dU = triu(X) U; lu holds both.
    a, = primals
    lu_, piv = lu(a)
    low_l, up_u, p, low, up = _lu_factors(lu_, piv)
    nb = len(shape(a)) - 2
    y = solve_lead(low_l, _einsum(".ij,K.jk->K.ik", p, tangents[0], nb), 1)
    x = _swap_last(solve_lead(_swap_last(up_u), _swap_last(y), 1))
    d_lu = add(_einsum(".ij,K.jk->K.ik", low_l, multiply(low, x), nb),
               _einsum("K.ij,.jk->K.ik", multiply(up, x), up_u, nb))
    return (lu_, piv), (d_lu, None)  # the pivots: integers, no derivative


def _lu_vjp(cts, args, outs, needed):
    # The JVP's adjoint: ct_X = tril(L^T ct, -1) + triu(ct U^T), ct_A = P^T L^-T ct_X U^-T.
    ct_lu = cts[0]
    low_l, up_u, p, low, up = _lu_factors(*outs)
    nb = len(shape(p)) - 2
    ct_x = add(multiply(low, _einsum(".ji,M.jk->M.ik", low_l, ct_lu, nb)),
               multiply(up, _einsum("M.ij,.kj->M.ik", ct_lu, up_u, nb)))
    z = solve_lead(_swap_last(low_l), ct_x, 1)
    w = _swap_last(solve_lead(up_u, _swap_last(z), 1))
    return [_einsum(".ji,M.jk->M.ik", p, w, nb)]


# (lu, piv): scipy.linalg.lu_factor of square matrices (..., n, n); piv (..., n) int32, 0-based.
lu = _factorisation("lu", _lu_impl, _lu_jvp, _lu_vjp,
                    lambda a: (same(a), ShapeDtypeStruct(shape(a)[:-1], onp.int32)))
lu.complex_ready = True  # P A = L U is holomorphic in A: its rules transpose, never conjugate


# ---------------------------------------------------------------- sparsity patterns
from . import patterns  # noqa: E402  (here with the rules it serves)


# Dense in the matrix axes: an inverse mixes every entry of a matrix into every entry of the
# result (its exact structure would need a symbolic factorisation); stacks stay apart.
def _solve_pattern(args, out):
    a, b = args
    return [patterns.stacked(out, "XY", a, "ZW") if patterns.unknown(a) else None,
            patterns.stacked(out, "XY", b, "ZY") if patterns.unknown(b) else None]


solve.pattern = triangular_solve.pattern = _solve_pattern
inv.pattern = lambda args, out: [patterns.stacked(out, "XY", args[0], "ZW")]
logdet.pattern = lambda args, out: [patterns.stacked(out, "", args[0], "XY")]
cholesky.pattern = lambda args, out: [patterns.stacked(out, "XY", args[0], "ZW", lower=True)]


def _factor_pattern(args, out):
    """The pattern of a factor (asked for each one): every factor of a matrix depends on all of its
    entries (stacks stay apart), LU's integer pivots on none."""
    if out.dtype.kind not in "fc":
        return [None]
    return [patterns.stacked(out, "XY"[:len(out.shape) - len(shape(args[0])) + 2], args[0], "ZW")]


for _prim in (slogdet, eigh, eig, svd, qr, lu, pinv):  # (slogdet's sign too: a conservative pattern)
    _prim.pattern = _factor_pattern


# ---------------------------------------------------------------- launches on CuPy (gpuad/compiler/cost.py)
# LU factorisation, solve or reductions, copies
solve.launches = inv.launches = slogdet.launches = 4
cholesky.launches = 2
triangular_solve.launches = 3  # cupyx's copies of a and b to column-major order, one (batched) trsm
for _prim in (eigh, eig, svd, qr):  # cuSOLVER's factorisation, its workspace and info
    _prim.launches = 3


def _lu_launches(args):
    """CuPy's batched LU (backends/cupy.py): the transposed copy, the pointer array, one
    getrfBatched and the pivots made 0-based; cuSOLVER's getrf matrix by matrix (a workspace and
    a call each) where the matrices are large and few, as CuPy chooses."""
    batch, n = math.prod(shape(args[0])[:-2]), shape(args[0])[-1]
    return 4 if batch * 65536 >= n * n else 2 + 2 * batch


lu.launches = _lu_launches
