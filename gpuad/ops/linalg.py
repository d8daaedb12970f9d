"""Linear-algebra primitives: `solve`, `logabsdet`, `det_sign` and `cholesky`.

All act on the last two axes of a stack of matrices (..., n, n), so a leading bundle or
batch axis is just one more stack axis. Everything else (inv, det, slogdet, norm) is
composed from these in gpuad/numpy/linalg.py. Rules are written with gpuad's own
primitives, so they nest to any order.

One factorisation serves a whole bundle: `solve_lead` folds the K directions of a bundle
into the right-hand-side columns, and the determinant and Cholesky rules reuse one
inverse for all K directions through a single batched GEMM.
"""
import math

from ..backends import xp
from ..core import Primitive, ShapeDtypeStruct, dtype, result_dtype, same, shape
from .contract import contract
from .elementwise import multiply, negative, subtract
from .shape import broadcast_to, reshape, transpose

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


def solve_lead(a, b, lead):
    """solve(a, b) where b carries `lead` extra leading axes: b (*L, ..., n, r), a (..., n, n).

    The L axes are folded into the right-hand-side columns, so a is factorised once for
    all of them (one LAPACK/cuSOLVER call), instead of being broadcast to L copies.
    """
    bs = shape(b)
    nb = len(bs)
    to_end = tuple(range(lead, nb)) + tuple(range(lead))
    cols = _move(b, to_end)
    folded = _reshape(cols, bs[lead:-1] + (bs[-1] * math.prod(bs[:lead]),))
    x = solve(a, folded)
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


def inv(a):
    """The inverse of each matrix of a stack, as solve(a, I)."""
    s = shape(a)
    eye = xp().eye(s[-1], dtype=a.dtype)
    return solve(a, broadcast_to(eye, shape=s) if len(s) > 2 else eye)


# ---------------------------------------------------------------- determinant
def _matrix_unary(name, impl, jvp=None, vjp=None, nondiff=False, abstract=None):
    """A primitive of one stack of matrices: a batch axis is one more stack axis. Its abstract
    value is by default one number per matrix of the stack."""
    abstract = abstract or (lambda a: ShapeDtypeStruct(shape(a)[:-2], dtype(a)))
    prim = Primitive(name, impl, jvp, vjp, nondiff=nondiff, abstract=abstract)
    prim.batch = lambda args, batched: (prim(args[0]), True)
    return prim


def _logabsdet_jvp(primals, tangents):
    a, = primals
    # d log|det A| = trace(A^-1 dA) = <A^-T, dA>: one inverse, then one GEMM for all K
    # directions, cheaper than solving against each direction's n columns.
    ainv = inv(a)
    return logabsdet(a), _einsum(".ji,K.ij->K.", ainv, tangents[0], len(shape(a)) - 2)


def _logabsdet_vjp(ct, args, out, needed):
    a, = args
    return [_einsum("M.,.ji->M.ij", ct, inv(a), len(shape(a)) - 2)]


logabsdet = _matrix_unary(
    "logabsdet", lambda a: xp().linalg.slogdet(a)[1], _logabsdet_jvp, _logabsdet_vjp)
# The sign of the determinant is piecewise constant: its derivative is zero.
det_sign = _matrix_unary("det_sign", lambda a: xp().linalg.slogdet(a)[0], nondiff=True)


# ---------------------------------------------------------------- cholesky
def _phi(x):
    """The lower triangle with the diagonal halved; self-adjoint (a fixed elementwise mask)."""
    n = shape(x)[-1]
    np_ = xp()
    mask = np_.tril(np_.ones((n, n), dtype=x.dtype), -1) + 0.5 * np_.eye(n, dtype=x.dtype)
    return multiply(mask, x)


def _cholesky_jvp(primals, tangents):
    a, = primals
    low = cholesky(a)
    linv = inv(low)
    nb = len(shape(a)) - 2
    # dA = dL L^T + L dL^T, so L^-1 dA L^-T = M + M^T with M = L^-1 dL lower triangular;
    # Φ recovers M from that sum when dA is symmetric (gpuad.numpy.linalg.cholesky
    # symmetrises its input, so it is): dL = L Φ(L^-1 dA L^-T).
    x = _einsum(".ij,K.jk->K.ik", linv, _einsum("K.ij,.kj->K.ik", tangents[0], linv, nb), nb)
    return low, _einsum(".ij,K.jk->K.ik", low, _phi(x), nb)


def _cholesky_vjp(ct, args, low, needed):
    # The adjoint of the JVP above: dA -> L Φ(L^-1 dA L^-T) is ct -> L^-T Φ(L^T ct) L^-1.
    nb = len(shape(low)) - 2
    linv = inv(low)
    p = _phi(_einsum(".ki,M.kj->M.ij", low, ct, nb))
    return [_einsum("M.ij,.jk->M.ik", _einsum(".ki,M.kj->M.ij", linv, p, nb), linv, nb)]


cholesky = _matrix_unary(
    "cholesky", lambda a: xp().linalg.cholesky(a), _cholesky_jvp, _cholesky_vjp, abstract=same)


# ---------------------------------------------------------------- sparsity patterns
from . import patterns  # noqa: E402  (here with the rules it serves)


# Dense in the matrix axes: an inverse mixes every entry of a matrix into every entry of the
# result (its exact structure would need a symbolic factorisation); stacks stay apart.
def _solve_pattern(args, out):
    a, b = args
    return [patterns.stacked(out, "XY", a, "ZW") if patterns.unknown(a) else None,
            patterns.stacked(out, "XY", b, "ZY") if patterns.unknown(b) else None]


solve.pattern = _solve_pattern
logabsdet.pattern = lambda args, out: [patterns.stacked(out, "", args[0], "XY")]
cholesky.pattern = lambda args, out: [patterns.stacked(out, "XY", args[0], "ZW", lower=True)]
det_sign.pattern = patterns.none
