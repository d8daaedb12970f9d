"""Every primitive through the one finite-difference checker, driven by one table of op specs.

A spec's function takes the array namespace first: `fn(gnp, *xs)` is what gpuad
differentiates, `fn(numpy, *xs)` is the NumPy reference for its forward value (or `ref`
where NumPy spells it differently). Inputs are drawn from the spec's domain.
"""
import importlib
import pkgutil

import numpy as np
import pytest
import scipy.special
import test_linalg  # a module import: its CASES are read here, its tests are not collected twice
from helpers import (
    Spec,
    assert_close,
    check_dot_product,
    check_first_order,
    check_lists_like_arrays,
    check_second_order,
    on_backend,
    primitives_used,
    random_inputs,
    to_np,
)

import gpuad
import gpuad.numpy as gnp
import gpuad.scipy.special as gsp
from gpuad import ops
from gpuad.core import Primitive, Tracer
from gpuad.ops import elementwise, table

W, POS, UNIT = (-2.0, 2.0), (0.5, 3.0), (-0.8, 0.8)

# ---------------------------------------------------------------- elementwise rows
UNARY = {
    "negative": W, "abs": W, "sqrt": POS, "cbrt": (0.3, 2.0), "square": W, "reciprocal": POS,
    "exp": W, "exp2": W, "expm1": W, "log": POS, "log2": POS, "log10": POS, "log1p": (-0.5, 2.0),
    "sin": W, "cos": W, "tan": (-1.2, 1.2), "arcsin": UNIT, "arccos": UNIT, "arctan": W,
    "sinh": W, "cosh": W, "tanh": W, "arcsinh": W, "arccosh": (1.2, 3.0), "arctanh": UNIT,
}
BINARY = {
    "add": W, "subtract": W, "multiply": W, "divide": [W, POS], "power": [POS, W],
    "maximum": W, "minimum": W, "arctan2": [POS, W], "hypot": [POS, W],
    "remainder": [(0.1, 0.9), (1.0, 2.0)],  # a / b in (0, 1): away from the jumps
}
BROADCAST = [((2, 3), (2, 3)), ((2, 3), (3,)), ((3, 1), (1, 4)), ((), (2, 2)), ((2, 2), ())]


def _shape_id(shapes):
    return ",".join("x".join(map(str, s)) or "()" for s in shapes)


# The special-function rows: gpuad.scipy.special's, with scipy.special as the reference.
SPECIAL = {"erf": W, "erfc": W, "erfinv": UNIT, "erfcinv": (0.2, 1.8), "gammaln": POS, "digamma": POS,
           "i0": (-4.0, 4.0), "i1": (-4.0, 4.0), "i0e": (-12.0, 12.0), "i1e": (-12.0, 12.0),
           "j0": (-9.0, 9.0), "j1": (-9.0, 9.0), "y0": (0.2, 9.0), "y1": (0.2, 9.0), "gammasgn": (-2.9, 2.9)}

SPECS = [Spec(n, lambda m, x, n=n: getattr(m, n)(x), ((2, 3),), d) for n, d in UNARY.items()]
SPECS += [Spec(n, lambda m, x, n=n: getattr(gsp, n)(x), ((2, 3),), d, ref=getattr(scipy.special, n))
          for n, d in SPECIAL.items()]
SPECS += [Spec(f"{n}[{_shape_id(s)}]", lambda m, a, b, n=n: getattr(m, n)(a, b), s, d)
          for n, d in BINARY.items() for s in BROADCAST]

MASK = np.array([[True, False, True, True, False], [False, False, True, False, True],
                 [True, True, False, False, False], [False, True, True, True, True]])
C34 = np.arange(12.0).reshape(3, 4) / 7 - 0.5   # a NumPy constant operand


def c34(m, x):
    """C34 beside x: NumPy's array beside traced values (gpuad takes NumPy operands, as JAX does) and under
    numpy; beside the backend's own arrays its copy there (CuPy refuses NumPy operands)."""
    return C34 if m is np or isinstance(x, Tracer) else gnp.asarray(C34)


def np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def np_set(x, idx, v):
    y = x.copy()
    y[idx] = v
    return y


def np_add(x, idx, v):
    y = x.copy()
    np.add.at(y, idx, v)
    return y


def S(name, fn, *shapes, domain=W, ref=None, **kw):
    SPECS.append(Spec(name, fn, shapes, domain, ref, **kw))


S("gammaln_negative", lambda m, x: gsp.gammaln(x), (2, 3), domain=(-0.9, -0.1), ref=scipy.special.gammaln)
S("digamma_negative", lambda m, x: gsp.digamma(x), (2, 3), domain=(-1.9, -1.1), ref=scipy.special.digamma)
S("polygamma_1", lambda m, x: gsp.polygamma(1, x), (2, 3), domain=POS, ref=lambda x: scipy.special.polygamma(1, x))
S("polygamma_3", lambda m, x: gsp.polygamma(3, x), (2, 3), domain=(1.0, 3.0),
  ref=lambda x: scipy.special.polygamma(3, x))
S("i1_near_zero", lambda m, x: gsp.i1(x), (2, 3), domain=(-0.15, 0.15), ref=scipy.special.i1)  # both sides of 0.1
S("i1e_near_zero", lambda m, x: gsp.i1e(x), (2, 3), domain=(0.0, 0.15), ref=scipy.special.i1e)  # i1e: a kink at 0
S("j1_near_zero", lambda m, x: gsp.j1(x), (2, 3), domain=(-0.15, 0.15), ref=scipy.special.j1)  # both sides of 0.1
S("jn_2", lambda m, x: gsp.jn(2, x), (2, 3), domain=(-9.0, 9.0), ref=lambda x: scipy.special.jn(2, x))
S("jn_negative_fraction", lambda m, x: gsp.jn(-3.6, x), (2, 3), domain=(-9.0, 9.0),  # truncated to -3
  ref=lambda x: scipy.special.jn(-3, x))
S("yn_2", lambda m, x: gsp.yn(2, x), (2, 3), domain=(0.5, 9.0), ref=lambda x: scipy.special.yn(2, x))
S("yn_negative", lambda m, x: gsp.yn(-3, x), (2, 3), domain=(0.5, 9.0), ref=lambda x: scipy.special.yn(-3, x))
# iv and ive as series: differentiable in the order v as well as in x (checked against differences)
S("iv", lambda m, v, x: gsp.iv(v, x), (2, 3), (2, 3), domain=[(-0.9, 6.0), (0.2, 9.0)], ref=scipy.special.iv)
S("ive", lambda m, v, x: gsp.ive(v, x), (3,), (3,), domain=[(0.0, 40.0), (0.5, 60.0)], ref=scipy.special.ive)
S("ive_large_x", lambda m, x: gsp.ive(2.5, x), (3,), domain=(300.0, 800.0), ref=lambda x: scipy.special.ive(2.5, x))
S("iv_whole_orders_negative_x", lambda m, x: gsp.iv(gnp.asarray([[-3.0, 0.0, 1.0], [2.0, -1.0, 5.0]]), x), (2, 3),
  domain=(-4.0, -0.3), ref=lambda x: scipy.special.iv(np.array([[-3.0, 0.0, 1.0], [2.0, -1.0, 5.0]]), x))
S("rgamma", lambda m, x: gsp.rgamma(x), (2, 3), domain=(0.2, 4.0), ref=scipy.special.rgamma)
S("rgamma_negative", lambda m, x: gsp.rgamma(x), (2, 3), domain=(-1.9, -1.1), ref=scipy.special.rgamma)
S("multigammaln", lambda m, x: gsp.multigammaln(x, 3), (2, 3), domain=(1.5, 4.0),
  ref=lambda x: scipy.special.multigammaln(x, 3))
S("i0_numpy", lambda m, x: m.i0(x), (2, 3), domain=(-4.0, 4.0))  # numpy.i0: the same row as scipy's

# ---------------------------------------------------------------- operators, composed elementwise
S("rsub_scalar", lambda m, x: 3.0 - x, (2, 3))
S("rtruediv_scalar", lambda m, x: 1.5 / x, (2, 3), domain=POS)
S("rpow_scalar", lambda m, x: 2.0 ** x, (2, 3))
S("pow_int", lambda m, x: x ** 3, (2, 3))
S("pow_two", lambda m, x: x ** 2, (2, 3))
S("pow_half", lambda m, x: x ** 0.5, (2, 3), domain=POS)
S("mod_operators", lambda m, x: x % 1.5 + 2.0 % (x + 2.5) + (x // 0.7) * x, (2, 3), domain=(0.05, 0.65))
S("neg_abs_ops", lambda m, x: -abs(x) + (+x), (2, 3))
S("sigmoid", lambda m, x: m.sigmoid(x), (2, 3), ref=np_sigmoid)
S("logaddexp", lambda m, a, b: m.logaddexp(a, b), (2, 3), (3,))
S("logaddexp_far", lambda m, a, b: m.logaddexp(a, b), (4,), (4,), domain=[(-30, -20), (20, 30)])
S("clip", lambda m, x: m.clip(x, -0.5, 0.7), (3, 4))
S("clip_upper_only", lambda m, x: m.clip(x, None, 0.3), (3, 4))
S("clip_array_bounds", lambda m, x, lo, hi: m.clip(x, lo, hi), (3, 4), (4,), (3, 1),
  domain=[W, (-1.5, -0.5), (0.5, 1.5)])
S("where_const_mask", lambda m, a, b: m.where(MASK, a, b), (4, 5), (5,))
S("where_traced_cond", lambda m, a, b: m.where(a > b, a * b, b - a), (3, 4), (3, 4))
S("where_scalar_branch", lambda m, x: m.where(MASK, x, 0.0), (4, 5))
S("astype_roundtrip", lambda m, x: (x.astype(m.float32) * 3).astype(m.float64), (2, 3), tol=1e-4, eps=0.1)

# ---------------------------------------------------------------- reductions
S("sum", lambda m, x: m.sum(x), (2, 3, 4))
S("sum_axis", lambda m, x: m.sum(x, axis=1), (2, 3, 4))
S("sum_axes_keepdims", lambda m, x: m.sum(x, axis=(0, 2), keepdims=True), (2, 3, 4))
S("sum_negative_axis_method", lambda m, x: x.sum(axis=-1), (2, 3, 4))
S("mean", lambda m, x: m.mean(x), (3, 4))
S("mean_axis_keepdims", lambda m, x: m.mean(x, axis=0, keepdims=True), (3, 4))
S("prod", lambda m, x: m.prod(x), (2, 3), domain=(0.5, 1.5))
S("prod_axis_keepdims", lambda m, x: m.prod(x, axis=1, keepdims=True), (3, 5), domain=(0.5, 1.5))
S("prod_with_zero", lambda m, x: m.prod(x * m.asarray([1.0, 0.0, 1.0, 1.0])), (4,))
S("max", lambda m, x: m.max(x), (3, 4))
S("max_axis", lambda m, x: m.max(x, axis=0), (3, 4))
S("max_axis_keepdims_method", lambda m, x: x.max(axis=(1,), keepdims=True), (2, 3, 4))
S("min", lambda m, x: m.min(x), (3, 4))
S("min_axis_keepdims", lambda m, x: m.min(x, axis=-1, keepdims=True), (3, 4))
S("var", lambda m, x: m.var(x), (3, 4))
S("var_axis_ddof", lambda m, x: m.var(x, axis=1, ddof=1), (3, 4))
S("var_keepdims", lambda m, x: m.var(x, axis=0, keepdims=True), (3, 4))
S("std", lambda m, x: m.std(x), (3, 4))
S("std_axis", lambda m, x: m.std(x, axis=0), (3, 4))
S("cumsum", lambda m, x: m.cumsum(x), (3, 4))
S("cumsum_axis", lambda m, x: m.cumsum(x, axis=1), (3, 4))
S("cumsum_negative_axis", lambda m, x: m.cumsum(x, axis=-2), (2, 3, 4))

# ---------------------------------------------------------------- products
S("dot_vv", lambda m, a, b: m.dot(a, b), (3,), (3,))
S("dot_mv", lambda m, a, b: m.dot(a, b), (2, 3), (3,))
S("dot_vm", lambda m, a, b: m.dot(a, b), (3,), (3, 4))
S("dot_mm", lambda m, a, b: m.dot(a, b), (2, 3), (3, 4))
S("dot_nd", lambda m, a, b: m.dot(a, b), (2, 3, 4), (2, 4, 3))
S("dot_scalar", lambda m, a, b: m.dot(a, b), (), (2, 3))
S("matmul_mm", lambda m, a, b: m.matmul(a, b), (2, 3), (3, 4))
S("matmul_vm", lambda m, a, b: a @ b, (3,), (3, 4))
S("matmul_mv", lambda m, a, b: a @ b, (2, 3), (3,))
S("matmul_vv", lambda m, a, b: a @ b, (3,), (3,))
S("matmul_batched", lambda m, a, b: m.matmul(a, b), (2, 3, 4), (2, 4, 2))
S("matmul_broadcast_batch", lambda m, a, b: a @ b, (2, 1, 3, 2), (4, 2, 3))
S("matmul_2d_3d", lambda m, a, b: a @ b, (3, 4), (2, 4, 2))
S("matmul_numpy_const_left", lambda m, x: c34(m, x) @ x, (4, 2))
S("matmul_numpy_const_right", lambda m, x: x @ c34(m, x), (2, 3))
S("outer", lambda m, a, b: m.outer(a, b), (3,), (4,))
S("outer_2d", lambda m, a, b: m.outer(a, b), (2, 2), (3,))
S("inner_vv", lambda m, a, b: m.inner(a, b), (4,), (4,))
S("inner_mm", lambda m, a, b: m.inner(a, b), (2, 3), (4, 3))
S("tensordot_1", lambda m, a, b: m.tensordot(a, b, axes=1), (2, 3), (3, 4))
S("tensordot_2", lambda m, a, b: m.tensordot(a, b, axes=2), (2, 3, 4), (3, 4, 2))
S("tensordot_pairs", lambda m, a, b: m.tensordot(a, b, axes=([1, 0], [0, 2])), (2, 3, 4), (3, 5, 2))
S("einsum_matmul", lambda m, a, b: m.einsum("ij,jk->ik", a, b), (2, 3), (3, 4))
S("einsum_batched", lambda m, a, b: m.einsum("bij,bjk->bik", a, b), (2, 3, 4), (2, 4, 2))
S("einsum_diag", lambda m, x: m.einsum("ii->i", x), (3, 3))
S("einsum_total", lambda m, x: m.einsum("ij->", x), (3, 4))
S("einsum_transpose_implicit", lambda m, x: m.einsum("ji", x), (3, 4))
S("einsum_three", lambda m, a, b, c: m.einsum("ij,jk,kl->il", a, b, c), (2, 3), (3, 4), (4, 2))
S("einsum_vdot", lambda m, a, b: m.einsum("i,i->", a, b), (4,), (4,))
S("einsum_elementwise", lambda m, a, b: m.einsum("ij,ij->ij", a, b), (2, 3), (2, 3))
S("einsum_ellipsis_broadcast", lambda m, a, b: m.einsum("...ij,...jk", a, b), (2, 1, 2, 3), (4, 3, 2))
S("einsum_ellipsis_middle", lambda m, a, b: m.einsum("i...,i...->...", a, b), (3, 2, 4), (3, 4))
S("einsum_outer", lambda m, a, b: m.einsum("i,j->ij", a, b), (2,), (3,))
S("einsum_frobenius", lambda m, a, b: m.einsum("ij,ij->", a, b), (2, 3), (2, 3))
S("einsum_three_way_elementwise", lambda m, a, b, c: m.einsum("i,i,i->i", a, b, c), (3,), (3,), (3,))
S("einsum_batched_transposed", lambda m, a, b: m.einsum("bij,bkj->bik", a, b), (2, 3, 4), (2, 2, 4))
S("einsum_interleaved", lambda m, a, b: m.einsum(a, [0, 1], b, [1, 2], [0, 2]), (2, 3), (3, 4))
S("einsum_interleaved_ellipsis", lambda m, a, b: m.einsum(a, [Ellipsis, 0], b, [0], [Ellipsis]), (2, 3), (3,))
S("trace", lambda m, x: m.trace(x), (3, 3))
S("trace_offset", lambda m, x: m.trace(x, offset=1), (3, 4))
S("trace_axes_method", lambda m, x: x.trace(0, 1, 2), (2, 3, 3))

S("linspace_traced_endpoints", lambda m, a, b: m.linspace(a, b, 5), (), ())
S("linspace_array_endpoints", lambda m, a, b: m.linspace(a, b, 4, endpoint=False), (3,), (3,))

# ---------------------------------------------------------------- shapes
S("reshape", lambda m, x: m.reshape(x, (6, 4)), (2, 3, 4))
S("reshape_minus_one_method", lambda m, x: x.reshape(4, -1), (2, 3, 4))
S("ravel", lambda m, x: m.ravel(x), (2, 3))
S("transpose", lambda m, x: m.transpose(x), (2, 3, 4))
S("transpose_axes", lambda m, x: m.transpose(x, (1, 2, 0)), (2, 3, 4))
S("T", lambda m, x: x.T, (2, 3))
S("swapaxes", lambda m, x: m.swapaxes(x, 0, 2), (2, 3, 4))
S("moveaxis", lambda m, x: m.moveaxis(x, 0, -1), (2, 3, 4))
S("moveaxis_many", lambda m, x: m.moveaxis(x, (0, 1), (2, 0)), (2, 3, 4))
S("expand_dims", lambda m, x: m.expand_dims(x, 1), (2, 3))
S("expand_dims_axes", lambda m, x: m.expand_dims(x, (0, -1)), (2, 3))
S("squeeze", lambda m, x: m.squeeze(x), (2, 1, 3, 1))
S("squeeze_axis", lambda m, x: m.squeeze(x, axis=1), (2, 1, 3))
S("broadcast_to", lambda m, x: m.broadcast_to(x, (2, 3)), (3,))
S("broadcast_to_ones", lambda m, x: m.broadcast_to(x, (3, 2, 4)), (2, 1))
S("concatenate", lambda m, a, b: m.concatenate([a, b], axis=1), (2, 3), (2, 2))
S("concatenate_same", lambda m, x: m.concatenate([x, 2 * x, x]), (2, 3))
S("stack", lambda m, a, b: m.stack([a, b]), (2, 3), (2, 3))
S("stack_last", lambda m, a, b: m.stack([a, b], axis=-1), (2, 3), (2, 3))
S("hstack_1d", lambda m, a, b: m.hstack([a, b]), (2,), (3,))
S("hstack_2d", lambda m, a, b: m.hstack([a, b]), (2, 3), (2, 1))
S("vstack_1d", lambda m, a, b: m.vstack([a, b]), (3,), (3,))
S("vstack_2d", lambda m, a, b: m.vstack([a, b]), (2, 3), (1, 3))
S("split_sections", lambda m, x: m.split(x, 3)[1], (6, 2))
S("split_indices", lambda m, x: m.concatenate(m.split(x, [1, 3], axis=1)[::-1], axis=1), (2, 5))
S("tile", lambda m, x: m.tile(x, (2, 1)), (2, 3))
S("tile_int", lambda m, x: m.tile(x, 2), (3,))
S("tile_more_dims", lambda m, x: m.tile(x, (2, 1, 2)), (2, 3))
S("repeat", lambda m, x: m.repeat(x, 2), (2, 3))
S("repeat_axis_counts", lambda m, x: m.repeat(x, [1, 2, 0], axis=0), (3, 2))
S("repeat_method", lambda m, x: x.repeat(2, axis=1), (2, 3))
S("flip", lambda m, x: m.flip(x), (2, 3))
S("flip_axis", lambda m, x: m.flip(x, axis=1), (2, 3))
S("roll", lambda m, x: m.roll(x, 1), (2, 3))
S("roll_axis", lambda m, x: m.roll(x, -2, axis=1), (2, 5))
S("diag_of_matrix", lambda m, x: m.diag(x), (3, 3))
S("diag_of_matrix_k", lambda m, x: m.diag(x, 1), (3, 4))
S("diag_of_vector", lambda m, x: m.diag(x), (3,))
S("diag_of_vector_k", lambda m, x: m.diag(x, -1), (3,))
S("diagonal", lambda m, x: m.diagonal(x), (3, 4))
S("diagonal_offset", lambda m, x: m.diagonal(x, -1), (4, 3))
S("diagonal_axes", lambda m, x: m.diagonal(x, 0, 1, 2), (2, 3, 3))
S("triu", lambda m, x: m.triu(x), (3, 4))
S("triu_k", lambda m, x: m.triu(x, 1), (4, 3))
S("tril", lambda m, x: m.tril(x), (3, 3))
S("tril_k", lambda m, x: m.tril(x, -1), (3, 4))
S("take", lambda m, x: m.take(x, [0, 3, 3]), (2, 3))
S("take_axis", lambda m, x: m.take(x, [2, 0, -1], axis=1), (2, 4))

# ---------------------------------------------------------------- sorting, gathers along an axis
ALONG = np.array([[0, 3, 3, 1, 0], [2, 2, 2, 2, 1], [3, 0, 1, 2, 3]])  # repeats: the adjoint adds


def np_along_grad(x):
    """The gradient of sum(take_along_axis(x, ALONG, 1) ** 2): 2 x[ALONG] added back at ALONG."""
    g = np.zeros_like(x)
    rows = np.arange(3)[:, None]
    np.add.at(g, (rows, ALONG), 2 * x[rows, ALONG])
    return g


S("sort_last", lambda m, x: m.sort(x), (3, 4))
S("sort_first_axis", lambda m, x: m.sort(x, axis=0) ** 2, (3, 4))
S("sort_flat", lambda m, x: m.sort(x, axis=None)[::2], (3, 4))
S("take_along_repeated", lambda m, x: m.take_along_axis(x, ALONG, axis=1), (3, 4))
S("take_along_grad", lambda m, x: gpuad.grad(lambda v: gnp.sum(gnp.take_along_axis(v, ALONG, axis=1) ** 2))(
    m.asarray(x)), (3, 4), ref=np_along_grad)

# ---------------------------------------------------------------- indexing
S("index_basic", lambda m, x: x[1:3, ::2], (4, 5))
S("index_negative_steps", lambda m, x: x[::-1, 3:0:-2], (4, 5))
S("index_int", lambda m, x: x[2], (4, 5))
S("index_negative_int", lambda m, x: x[-1, 1:4], (4, 5))
S("index_ellipsis_newaxis", lambda m, x: x[..., None, 1], (2, 3, 4))
S("index_int_array", lambda m, x: x[np.array([0, 2, 2, -1])], (4, 5))
S("index_list", lambda m, x: x[[1, 0]], (4, 5))
S("index_2d_int_array", lambda m, x: x[np.array([[0, 1], [3, 3]])], (4, 5))
S("index_adjacent_arrays", lambda m, x: x[:, [0, 2], [1, 3]], (2, 3, 4))
S("index_separated_arrays", lambda m, x: x[[0, 2], :, [1, 3]], (3, 4, 5))
S("index_separated_int_and_array", lambda m, x: x[1, :, [0, 2, 3]], (3, 4, 5))
S("index_bool_mask", lambda m, x: x[MASK], (4, 5))
S("index_bool_rows", lambda m, x: x[np.array([True, False, True, True])], (4, 5))
S("index_empty", lambda m, x: x[[]] * 2 + 1, (4, 5))
S("index_bool_list", lambda m, x: x[:, [True, False, False, True, True]], (4, 5))
S("index_numpy_int", lambda m, x: x[np.int64(2), 1:-1], (4, 5))
S("index_empty_slice", lambda m, x: x[4:], (4, 5))
S("index_traced_mask", lambda m, x: x[x > 0.2], (4, 5), batchable=False)
S("iterate", lambda m, x: m.stack([r * (i + 1) for i, r in enumerate(x)]), (3, 2))

# ---------------------------------------------------------------- functional updates x.at[idx]
S("at_set_scalar", lambda m, x: gnp.at(x)[1].set(0.5), (4, 5), ref=lambda x: np_set(x, 1, 0.5))
S("at_set_rows", lambda m, x, v: gnp.at(x)[1:3].set(v), (4, 5), (2, 5),
  ref=lambda x, v: np_set(x, slice(1, 3), v))
S("at_set_broadcast", lambda m, x, v: gnp.at(x)[:, 2].set(v), (4, 5), (4,),
  ref=lambda x, v: np_set(x, (slice(None), 2), v))
S("at_set_mask", lambda m, x, v: gnp.at(x)[MASK].set(v), (4, 5), (int(MASK.sum()),),
  ref=lambda x, v: np_set(x, MASK, v))
S("at_set_separated", lambda m, x, v: gnp.at(x)[[0, 2], :, [1, 4]].set(v), (3, 4, 5), (2, 4),
  ref=lambda x, v: np_set(x, ([0, 2], slice(None), [1, 4]), v))
S("at_add_repeated", lambda m, x, v: gnp.at(x)[[0, 2, 0]].add(v), (4, 5), (3, 5),
  ref=lambda x, v: np_add(x, [0, 2, 0], v))
S("at_add_separated", lambda m, x, v: gnp.at(x)[[0, 1], :, [2, 3]].add(v), (3, 4, 5), (2, 4),
  ref=lambda x, v: np_add(x, ([0, 1], slice(None), [2, 3]), v))
S("at_add_negative_step", lambda m, x, v: gnp.at(x)[::-2].add(v), (4, 5), (5,),
  ref=lambda x, v: np_add(x, slice(None, None, -2), v))

# ---------------------------------------------------------------- through complex values
# Real inputs and outputs, complex values between: real, imag and conj (whose VJPs are JAX's
# transposes) and the holomorphic rows on complex values, checked by the same real differences;
# tests/test_complex.py checks complex inputs and outputs.
S("complex_parts", lambda m, a, b: m.real(m.conj(a + 1j * b) * m.exp(1j * a)) - m.imag((a - 1j * b) ** 2),
  (2, 3), (2, 3))
S("complex_abs_angle", lambda m, a, b: m.abs(m.sin(a + 1j * b)) * m.angle(m.sqrt(1j * a + b + 3)), (2, 3), (3,))
S("complex_det", lambda m, a, b: m.real(m.linalg.det(a + 1j * b + 3 * m.eye(3))
                                         * m.linalg.inv(a - 1j * b + 3 * m.eye(3)))
  + m.imag(m.linalg.slogdet(a * 1j + b + 3 * m.eye(3))[0]), (3, 3), (3, 3), domain=(-1.0, 1.0))
S("fft_kinds", lambda m, x: m.fft.irfft(m.fft.rfft(x, axis=0) ** 2, n=3, axis=0)
  + m.real(m.fft.ifft2(m.fft.fft(x) * 1j)), (3, 4))

assert len({s.name for s in SPECS}) == len(SPECS), "spec names must be unique"
ids = pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])


@ids
def test_forward_value_matches_numpy(spec):
    xs = spec.inputs()
    expected = spec.ref(*xs) if spec.ref else spec.fn(np, *xs)
    assert_close(spec.f(*on_backend(*xs)), np.asarray(expected), rtol=1e-12, atol=1e-12, what=spec.name)


@ids
def test_nested_lists_are_array_like(spec):
    """Where NumPy gives a list the same meaning as an array, gpuad.numpy does too."""
    check_lists_like_arrays(spec.f, spec.ref or (lambda *a: spec.fn(np, *a)), spec.inputs(), spec.name)


@ids
def test_first_order(spec):
    check_first_order(spec.f, spec.inputs(), rtol=spec.tol, atol=spec.tol, eps=spec.eps)


@ids
def test_dot_product(spec):
    check_dot_product(spec.f, spec.inputs(), rtol=spec.tol ** 2)  # exact up to rounding


@ids
def test_second_order(spec):
    check_second_order(spec.f, spec.inputs(), rtol=spec.tol, atol=spec.tol, eps=spec.eps)


BATCH = 3


@pytest.mark.parametrize("others", ["batched", "unbatched"])
@ids
def test_vmap_and_vmap_of_jvp_match_a_loop(spec, others):
    """The first argument is batched on its last axis, the others on axis 0 or not at all."""
    if not spec.batchable:
        pytest.skip("output shape depends on values")
    samples = [random_inputs(spec.shapes, spec.domain, seed=k) for k in range(BATCH)]
    tangents = [random_inputs(spec.shapes, (-1.0, 1.0), seed=k) for k in range(BATCH)]
    n = len(spec.shapes)
    in_axes = (-1,) + ((0,) if others == "batched" else (None,)) * (n - 1)

    def example(k, i, tree):
        return tree[k][i] if i == 0 or others == "batched" else tree[0][i]

    def batch(tree):
        return [np.stack([t[i] for t in tree], axis=-1 if i == 0 else 0) if ax is not None else tree[0][i]
                for i, ax in enumerate(in_axes)]

    def both(*args):
        n_ = len(args) // 2
        return gpuad.jvp(spec.f, args[:n_], args[n_:])

    ys, ts = gpuad.vmap(both, in_axes=in_axes * 2)(*on_backend(*batch(samples), *batch(tangents)))
    for k in range(BATCH):
        xs_k = [example(k, i, samples) for i in range(n)]
        ts_k = [example(k, i, tangents) for i in range(n)]
        assert_close(ys[k], spec.f(*on_backend(*xs_k)), rtol=1e-12, atol=1e-12, what=f"value {k}")
        assert_close(ts[k], gpuad.jvp(spec.f, on_backend(*xs_k), on_backend(*ts_k))[1],
                     rtol=1e-12, atol=1e-12, what=f"tangent {k}")


def _differentiable_primitives():
    """Every differentiable primitive of every module in gpuad/ops (the table's rows included)."""
    names = {p.name for p in elementwise.PRIMS.values() if not p.nondiff}
    for info in pkgutil.iter_modules(ops.__path__):
        module = importlib.import_module(f"gpuad.ops.{info.name}")
        names |= {p.name for p in vars(module).values() if isinstance(p, Primitive) and not p.nondiff}
    return names


def test_every_differentiable_primitive_has_a_spec():
    """Adding a row to the rule table, or a primitive to any ops module, without a spec fails here."""
    used = set()
    for spec in SPECS:
        used |= primitives_used(spec.f, spec.inputs())
    for f, x in test_linalg.CASES.values():  # linalg's derivative checks have their own table
        used |= primitives_used(f, (x,))
    missing = _differentiable_primitives() - used
    assert not missing, f"primitives with no op spec: {sorted(missing)}"


# ---------------------------------------------------------------- non-differentiable rows
NONDIFF_ARGS = {1: ((2, 3),), 2: ((2, 3), (3,))}


def _weight(m, v):
    return m.where(v, 2.0, 1.0) if v.dtype == bool else v


@pytest.mark.parametrize("row", table.NONDIFF, ids=lambda r: r.name)
def test_nondifferentiable_rows_match_numpy_and_carry_no_derivative(row):
    xs = tuple(np.round(x, 1) for x in random_inputs(NONDIFF_ARGS[len(row.args)], W, seed=3))
    if row.name.startswith("logical"):
        xs = tuple(x > 0 for x in xs)
    op = getattr(gnp, row.name)
    expected = getattr(np, row.name)(*xs)
    got = to_np(op(*on_backend(*xs)))
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)
    if not row.name.startswith("logical"):  # used in a differentiable function, they add no derivative
        rest = on_backend(*xs[1:])
        g = gpuad.grad(lambda a: gnp.sum(_weight(gnp, op(a, *rest)) * a))(gnp.asarray(xs[0]))
        assert_close(g, _weight(np, expected))


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_argmax_argmin_match_numpy_batch_and_select_without_derivative(name, axis):
    x = random_inputs([(4, 5)], W, seed=7)[0]
    op = getattr(gnp, name)
    np.testing.assert_array_equal(to_np(op(gnp.asarray(x), axis=axis)), getattr(np, name)(x, axis=axis))
    per_row = to_np(gpuad.vmap(lambda r: op(r))(gnp.asarray(x)))
    np.testing.assert_array_equal(per_row, getattr(np, name)(x, axis=1))
    g = gpuad.grad(lambda v: 3.0 * v[op(v)])(gnp.asarray(x[0]))
    expected = np.zeros(5)
    expected[getattr(np, name)(x[0])] = 3.0
    assert_close(g, expected)


@pytest.mark.parametrize("unbatched_shape", [(), (3,), (2, 3)])
def test_vmap_over_many_small_examples_matches_numpy(unbatched_shape):
    """Large batches of small examples take NumPy's batch-innermost layout (ops/elementwise.py)."""
    x = random_inputs([(300, 3)], POS, seed=11)[0]
    c = random_inputs([unbatched_shape], POS, seed=12)[0]
    f = lambda v, w: gnp.sin(v) * w + gnp.hypot(v, w) / (v + 1.0)  # noqa: E731
    got = gpuad.vmap(f, in_axes=(0, None))(gnp.asarray(x), gnp.asarray(c))
    ref = np.stack([np.sin(v) * c + np.hypot(v, c) / (v + 1.0) for v in x])
    assert_close(got, ref, rtol=1e-13, atol=1e-13)


def test_vmap_of_jacfwd_over_many_small_examples_matches_the_closed_form():
    x = random_inputs([(500, 3)], W, seed=13)[0]
    g = lambda v: gnp.stack([v[0] * v[1], v[1] * gnp.exp(v[2]), gnp.sin(v[0]) + v[2] ** 2])  # noqa: E731
    J = gpuad.vmap(gpuad.jacfwd(g))(gnp.asarray(x))
    a, b, c = x.T
    ref = np.zeros((500, 3, 3))
    ref[:, 0, 0], ref[:, 0, 1] = b, a
    ref[:, 1, 1], ref[:, 1, 2] = np.exp(c), b * np.exp(c)
    ref[:, 2, 0], ref[:, 2, 2] = np.cos(a), 2 * c
    assert_close(J, ref, rtol=1e-13, atol=1e-13)


def test_argsort_matches_numpy_also_under_vmap():
    x = random_inputs([(4, 5)], W, seed=9)[0]
    for axis in (None, 0, -1):
        np.testing.assert_array_equal(to_np(gnp.argsort(gnp.asarray(x), axis=axis)), np.argsort(x, axis=axis))
    np.testing.assert_array_equal(to_np(gpuad.vmap(gnp.argsort)(gnp.asarray(x))), np.argsort(x, axis=1))


def test_take_along_axis_with_batched_indices_under_vmap():
    x, idx = random_inputs([(4, 5)], W, seed=10)[0], ALONG[:, :4].T  # (4, 3) positions per row
    gather = gpuad.vmap(lambda r, i: gnp.take_along_axis(r, i, axis=0))
    assert_close(gather(gnp.asarray(x), gnp.asarray(idx)), np.take_along_axis(x, idx, axis=1))
    J = gpuad.jacrev(lambda v: gather(v, gnp.asarray(idx)))(gnp.asarray(x))
    assert_close(J, gpuad.jacfwd(lambda v: gather(v, gnp.asarray(idx)))(gnp.asarray(x)), rtol=1e-14, atol=1e-14)
