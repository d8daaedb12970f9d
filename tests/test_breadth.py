"""The functions composed from gpuad.numpy's own (building.py, mathematical.py, statistics.py,
gpuad.scipy.special), through the one finite-difference checker, driven by a table of specs.

As in test_primitives.py, a spec's function takes the namespace first: `fn(gnp, *xs)` is what
gpuad differentiates, `fn(numpy, *xs)` is the reference (or `ref`, e.g. scipy.special).
"""
import warnings

import numpy as np
import pytest
import scipy.special
import scipy.stats
from helpers import (
    Spec,
    assert_close,
    assert_tree_close,
    check_first_order,
    check_lists_like_arrays,
    check_second_order,
    on_backend,
    random_inputs,
    sampled,
    to_np,
)

import gpuad
import gpuad.numpy as gnp
import gpuad.scipy.special as gsp
import gpuad.scipy.stats as gst
from gpuad import backends
from gpuad.core import Tracer

W, POS, UNIT = (-2.0, 2.0), (0.5, 3.0), (0.05, 0.95)
SPECS = []


def S(name, fn, *shapes, **kw):
    SPECS.append(Spec(name, fn, shapes, **kw))


def cat(m, parts):
    """Pieces of a split joined back, each scaled differently so that a mix-up shows."""
    return m.concatenate([p * (k + 1) for k, p in enumerate(parts)], axis=-1)


MASK = np.array([[True, False, True], [False, True, True]])
ZEROS = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])   # multiplies some entries to exactly 0

# ---------------------------------------------------------------- building.py: pad
S("pad_int", lambda m, x: m.pad(x, 1), (3, 4))
S("pad_constant_pairs", lambda m, x: m.pad(x, ((1, 0), (2, 1)), constant_values=((1.5, -1.0), (0.5, 2.0))), (3, 4))
S("pad_edge", lambda m, x: m.pad(x, (2, 1), mode="edge"), (3, 4))
S("pad_reflect_wide", lambda m, x: m.pad(x, ((2, 5), (1, 1)), mode="reflect"), (3, 4))
S("pad_reflect_one", lambda m, x: m.pad(x, 2, mode="reflect"), (1,))
S("pad_symmetric", lambda m, x: m.pad(x, ((4, 1),), mode="symmetric"), (3,))
S("pad_wrap_wide", lambda m, x: m.pad(x, [(0, 0), (3, 7)], mode="wrap"), (2, 3))
# ---------------------------------------------------------------- joining and splitting
S("append_flat", lambda m, a, b: m.append(a, b), (2, 3), (4,))
S("append_axis", lambda m, a, b: m.append(a, b, axis=0), (2, 3), (1, 3))
S("column_stack", lambda m, a, b: m.column_stack([a, b]), (3,), (3, 2))
S("row_stack", lambda m, a, b: m.row_stack([a, b]), (3,), (2, 3), ref=lambda a, b: np.vstack([a, b]))
S("dstack", lambda m, a, b: m.dstack([a, b]), (2, 3), (2, 3))
S("r_", lambda m, x, y: m.r_[x, 0.5, 1:3, y, 0:1:3j], (3,), (2,))
S("r_directive_rows", lambda m, x, y: m.r_["0,2,1", x, y], (3,), (2, 3))
S("r_directive_axis", lambda m, x, y: m.r_["1", x, y * 2.0], (2, 2), (2, 1))
S("c_", lambda m, x, y: m.c_[x, y, m.sin(x)], (3,), (3, 2))
S("c_directive_3d", lambda m, x: m.c_["0,3,-1", x, x ** 2], (2,))
S("broadcast_arrays", lambda m, a, b, c: m.stack(m.broadcast_arrays(a, b, c)), (2, 1), (3,), ())
S("dstack_vectors", lambda m, a, b: m.dstack([a, b]), (3,), (3,))
S("atleast_2d", lambda m, a, b: m.atleast_2d(a) * m.atleast_2d(b), (), (3,))
S("atleast_3d", lambda m, a, b, c: m.atleast_3d(a) + m.atleast_3d(b, c)[0] * m.atleast_3d(b, c)[1], (), (3,), (2, 3))
S("atleast_3d_matrix", lambda m, x: m.atleast_3d(x), (2, 3))
S("array_split_uneven", lambda m, x: cat(m, m.array_split(x, 3, axis=-1)), (2, 7))
S("array_split_indices", lambda m, x: cat(m, m.array_split(x, [1, 4])), (6,))
S("hsplit", lambda m, x: cat(m, m.hsplit(x, 2)), (3, 4))
S("hsplit_vector", lambda m, x: cat(m, m.hsplit(x, [2])), (5,))
S("vsplit", lambda m, x: cat(m, m.vsplit(x, 2)), (4, 3))
S("dsplit", lambda m, x: cat(m, m.dsplit(x, [1])), (2, 3, 3))
# ---------------------------------------------------------------- differences
S("diff", lambda m, x: m.diff(x), (3, 5))
S("diff_n2_axis0", lambda m, x: m.diff(x, n=2, axis=0), (4, 3))
S("diff_prepend_append", lambda m, x, a: m.diff(x, axis=1, prepend=0.5, append=a), (3, 4), (3, 1))
S("gradient_1d", lambda m, x: m.gradient(x), (6,))
S("gradient_2d_spacings", lambda m, x: m.stack(m.gradient(x, 0.5, 2.0)), (4, 5))
S("gradient_axis", lambda m, x: m.gradient(x, 0.25, axis=-1), (3, 4))
S("gradient_axes_order", lambda m, x: m.stack(m.gradient(x, axis=(1, 0))), (3, 3))
# ---------------------------------------------------------------- products, rotations
S("cross", lambda m, a, b: m.cross(a, b), (3,), (3,))
S("cross_broadcast", lambda m, a, b: m.cross(a, b), (4, 3), (3,))
S("cross_axes", lambda m, a, b: m.cross(a, b, axisa=0, axisb=-1, axisc=0), (3, 2), (2, 3))
S("cross_axis", lambda m, a, b: m.cross(a, b, axis=0), (3, 2), (3, 2))
S("kron", lambda m, a, b: m.kron(a, b), (2, 3), (2, 2))
S("kron_ranks", lambda m, a, b: m.kron(a, b), (3,), (2, 2))
for k in (1, 2, 3, -1):
    S(f"rot90_k{k}", lambda m, x, k=k: m.rot90(x, k, axes=(1, 2)), (2, 3, 4))
S("rot90_default", lambda m, x: m.rot90(x), (2, 3))
S("fliplr", lambda m, x: m.fliplr(x), (2, 3))
S("flipud", lambda m, x: m.flipud(x), (2, 3))
S("rollaxis", lambda m, x: m.rollaxis(x, 2), (2, 3, 4))
S("rollaxis_start", lambda m, x: m.rollaxis(x, 0, 3), (2, 3, 4))
S("rollaxis_negative", lambda m, x: m.rollaxis(x, -1, -2), (2, 3, 4))
S("meshgrid_xy", lambda m, a, b: m.stack(m.meshgrid(a, b)), (3,), (2,))
S("meshgrid_ij_three", lambda m, a, b, c: m.stack(m.meshgrid(a, b, c, indexing="ij")), (3,), (2,), (2,))
S("meshgrid_sparse", lambda m, a, b, c: sum(p * (k + 1) for k, p in enumerate(m.meshgrid(a, b, c, sparse=True))),
  (3,), (2,), (2,))
S("select", lambda m, x: m.select([x < -0.5, x < 0.5], [x ** 2, m.sin(x)], default=x * 3), (3, 4))
S("ix_", lambda m, x: x[m.ix_([0, 2], [1, 3, 0])], (3, 4))
S("piecewise", lambda m, x: m.piecewise(x, [x < -0.5, x > 0.5], [lambda v: v ** 2, m.sin, 0.25]), (3, 4))
S("piecewise_each_inside_its_domain", lambda m, x: m.piecewise(  # sqrt and log see their own side only
    x, [x < 0, x >= 0], [lambda v, a, b: a * m.sqrt(-v) + b, lambda v, a, b: m.log(v) * a], 1.5, b=0.25), (3, 4))
S("piecewise_one_condition", lambda m, x: m.piecewise(x, x > 0, [m.exp, lambda v: 1 + v]), (5,))
S("piecewise_last_wins", lambda m, x: m.piecewise(x, [x < 1.0, x > -1.0], [m.cos, lambda v: 3 * v]), (2, 3))
S("piecewise_stacked_conditions", lambda m, x: m.piecewise(x, m.stack([x < 0, x > 0.5]), [m.sin, 2.0, m.cos]), (6,))
S("piecewise_scalar", lambda m, x: m.piecewise(x, [x < 0.3], [m.cos, m.sin]), ())
S("piecewise_empty_piece", lambda m, x: m.piecewise(x, [x < 0, x > 0], [lambda v: m.log(-v), m.log]), (3,),
  xs=([0.5, 1.2, 2.0],))  # log(-v) has no element: nothing of it reaches the derivatives
S("piecewise_traced_value", lambda m, x, a: m.piecewise(x, [x < 0], [lambda v: v * a[0], a[1]]), (4,), (2,))


def by_piece(m, y, kth):
    """y's pieces between the kth positions (last axis) each sorted: partition promises which
    elements each piece holds and the elements at kth, not the order within a piece (NumPy's is
    its own, CuPy's argpartition sorts)."""
    parts, start = [], 0
    for k in sorted(kth):
        parts += [m.sort(y[..., start:k], axis=-1), y[..., k:k + 1]]
        start = k + 1
    return m.concatenate(parts + [m.sort(y[..., start:], axis=-1)], axis=-1)


S("partition", lambda m, x: by_piece(m, m.partition(x, 2), [2]), (3, 6))
S("partition_kths_axis0", lambda m, x: by_piece(m, m.partition(x, (-1, 1), axis=0).T, [1, 4]).T, (5, 3))
S("partition_flat", lambda m, x: by_piece(m, m.partition(x, 5, axis=None), [5]), (2, 4))
# ---------------------------------------------------------------- mathematical.py
S("deg2rad", lambda m, x: m.deg2rad(x) + m.radians(x * 2), (2, 3), domain=(-360.0, 360.0))
S("rad2deg", lambda m, x: m.rad2deg(x) + m.degrees(x * 2), (2, 3))
S("sinc", lambda m, x: m.sinc(x), (2, 3))
S("sinc_near_zero", lambda m, x: m.sinc(x), (4,), xs=([0.0, 2e-4, -3e-4, 4e-3],))
S("logaddexp2", lambda m, a, b: m.logaddexp2(a, b), (2, 3), (3,))
S("logaddexp2_far", lambda m, a, b: m.logaddexp2(a, b), (3,), (3,), domain=[(-1100.0, -1000.0), (1000.0, 1100.0)])
S("fmax", lambda m, a, b: m.fmax(a, b), (2, 3), (3,))
S("fmin", lambda m, a, b: m.fmin(a, b), (2, 3), (2, 3))
S("fmax_nan", lambda m, a, b: m.fmax(m.where(MASK, a, np.nan), m.where(MASK[::-1], b, np.nan)), (2, 3), (2, 3),
  second=False)
S("fmin_nan", lambda m, a, b: m.fmin(m.where(MASK, a, np.nan), b), (2, 3), (3,), second=False)
SPECIALS = np.array([0.0, np.inf, -np.inf, np.nan, 0.0, 0.0])
S("nan_to_num", lambda m, x: m.nan_to_num(x + m.asarray(SPECIALS)), (6,))
S("nan_to_num_values", lambda m, x: m.nan_to_num(x + m.asarray(SPECIALS), nan=-1.0, posinf=5.0, neginf=-7.0), (6,))
S("heaviside", lambda m, a, b: m.heaviside(a * m.asarray(ZEROS), b), (2, 3), (3,))
S("copysign", lambda m, a, b: m.copysign(a, b), (2, 3), (3,), second=False)  # |a|: a kink at 0
S("real_imag_conj", lambda m, x: m.real(x) * 2 + m.imag(x) + m.conj(x) * m.conjugate(x), (2, 3))
S("angle", lambda m, x: m.angle(x) * x + m.angle(x, deg=True), (2, 3))

# ---------------------------------------------------------------- statistics.py
NANS = np.where(MASK, 0.0, np.nan)   # every row and column keeps a number
S("nansum", lambda m, x: m.nansum(x + m.asarray(NANS)) + m.nansum(x + m.asarray(NANS), axis=0, keepdims=True), (2, 3))
S("nanmean", lambda m, x: m.nanmean(x + m.asarray(NANS), axis=1), (2, 3))
S("nanmax", lambda m, x: m.nanmax(x + m.asarray(NANS), axis=0) + m.nanmax(x + m.asarray(NANS)), (2, 3), second=False)
S("nanmin", lambda m, x: m.nanmin(x + m.asarray(NANS), axis=-1, keepdims=True), (2, 3), second=False)
S("ptp", lambda m, x: m.ptp(x, axis=1), (3, 4), second=False)
S("average", lambda m, x: m.average(x, axis=0), (3, 4))
S("average_weights", lambda m, x, w: m.average(x, weights=w), (3, 4), (3, 4), domain=[W, POS])
S("average_weights_along_axis", lambda m, x, w: m.stack(m.average(x, axis=1, weights=w, returned=True)),
  (3, 4), (4,), domain=[W, POS])
S("average_returned_keepdims", lambda m, x: m.concatenate(m.average(x, axis=1, returned=True, keepdims=True)),
  (3, 4))
S("median_odd", lambda m, x: m.median(x), (5,), second=False)
S("median_even_axis", lambda m, x: m.median(x, axis=0), (4, 3), second=False)
S("quantile_many", lambda m, x: m.quantile(x, [0.0, 0.3, 0.75, 1.0], axis=1), (3, 5), second=False)
S("quantile_axes_keepdims", lambda m, x: m.quantile(x, np.array([[0.2], [0.9]]), axis=(0, 2), keepdims=True),
  (2, 3, 4), second=False)
S("percentile", lambda m, x: m.percentile(x, 37.0, axis=-1), (3, 4), second=False)
S("cumprod", lambda m, x: m.cumprod(x, axis=1), (3, 6))
S("cumprod_flat", lambda m, x: m.cumprod(x), (2, 3))
S("cumprod_zeros", lambda m, x: m.cumprod(x), (7,), xs=([2.0, 0.0, -1.5, 0.0, 3.0, 0.5, 1.2],))
S("cov", lambda m, x: m.cov(x), (3, 5))
S("cov_columns_y", lambda m, x, y: m.cov(x, y, rowvar=False), (5, 2), (5,))
S("cov_bias_ddof", lambda m, x: m.cov(x, bias=True) + m.cov(x, ddof=2), (2, 5))
S("cov_vector", lambda m, x: m.cov(x), (5,))
S("corrcoef", lambda m, x: m.corrcoef(x), (3, 5))
S("corrcoef_pair", lambda m, x, y: m.corrcoef(x, y), (5,), (5,))
for mode in ("full", "same", "valid"):
    S(f"convolve_{mode}", lambda m, a, v, mode=mode: m.convolve(a, v, mode), (5,), (3,))
    S(f"convolve_{mode}_longer_v", lambda m, a, v, mode=mode: m.convolve(a, v, mode), (2,), (5,))
    S(f"correlate_{mode}", lambda m, a, v, mode=mode: m.correlate(a, v, mode), (5,), (4,))
S("correlate_longer_v", lambda m, a, v: m.correlate(a, v), (3,), (5,))
S("convolve_scalar_kernel", lambda m, a, v: m.convolve(a, v, "same"), (4,), (1,))
S("polyval", lambda m, p, x: m.polyval(p, x), (4,), (2, 3))
S("polyval_constant_coefficients", lambda m, x: m.polyval([0.5, -1.0, 2.0], x), (3,))
XP = np.array([-2.0, -1.0, 0.2, 0.9, 2.0])
S("interp", lambda m, x, fp: m.interp(x, XP, fp), (8,), (5,), domain=[(-2.5, 2.5), W], second=False)
S("interp_left_right", lambda m, x: m.interp(x, XP, np.cos(XP), left=-3.0, right=4.0), (8,), domain=(-2.5, 2.5),
  second=False)
S("interp_one_point", lambda m, x, fp: m.interp(x, XP[:1], fp), (6,), (1,), domain=[(-2.5, 2.5), W])
S("trapezoid", lambda m, y: m.trapezoid(y, dx=0.3), (3, 5))
S("trapezoid_x", lambda m, y, x: m.trapezoid(y, x), (3, 5), (5,))
S("trapezoid_x_axis0", lambda m, y, x: m.trapezoid(y, x, axis=0), (4, 2), (4, 2))

# ---------------------------------------------------------------- gpuad.scipy.special, against scipy's
SP = {np: scipy.special, gnp: gsp}  # the special-function namespace that goes with each array namespace
S("expit", lambda m, x: SP[m].expit(x), (2, 3), domain=(-8.0, 8.0))
S("expit_tails", lambda m, x: SP[m].expit(x), (6,), xs=([-40.0, -700.0, -5.0, 0.0, 5.0, 40.0],))
S("logit", lambda m, x: SP[m].logit(x), (2, 3), domain=UNIT)
S("logsumexp", lambda m, x: SP[m].logsumexp(x), (3, 4))
S("logsumexp_axis_keepdims", lambda m, x: SP[m].logsumexp(x, axis=1, keepdims=True), (3, 4))
S("logsumexp_huge", lambda m, x: SP[m].logsumexp(x, axis=0), (3, 2), domain=(900.0, 1000.0))
S("logsumexp_b", lambda m, x, b: SP[m].logsumexp(x, axis=(0, 1), b=b), (2, 3), (3,), domain=[W, POS])
S("logsumexp_sign", lambda m, x, b: m.stack(SP[m].logsumexp(x, axis=-1, b=b, return_sign=True)), (2, 3), (2, 3))
S("log_softmax", lambda m, x: SP[m].log_softmax(x, axis=-1), (3, 4))
S("softmax", lambda m, x: SP[m].softmax(x, axis=0), (3, 4), domain=(-50.0, 50.0), tol=1e-4)
S("softmax_all", lambda m, x: SP[m].softmax(x), (2, 3))
S("xlogy", lambda m, x, y: SP[m].xlogy(x, y), (2, 3), (3,), domain=[W, POS])
S("xlogy_zero_x", lambda m, x, y: SP[m].xlogy(x * m.asarray(ZEROS), y), (2, 3), (2, 3), domain=[W, POS])
S("xlogy_zero_both", lambda m, x, y: SP[m].xlogy(x * m.asarray(ZEROS), y * m.asarray(ZEROS)), (2, 3), (2, 3),
  domain=[W, POS])
S("xlog1py", lambda m, x, y: SP[m].xlog1py(x, y), (2, 3), (2, 3), domain=[W, (-0.9, 2.0)])
S("xlog1py_zeros", lambda m, x, y: SP[m].xlog1py(x * m.asarray(ZEROS), y * m.asarray(ZEROS) - 1.0), (2, 3), (2, 3),
  domain=[W, POS])
S("entr", lambda m, x: SP[m].entr(x), (2, 3), domain=POS)
S("gamma", lambda m, x: SP[m].gamma(x), (2, 3), domain=(0.3, 4.0))
S("gamma_negative", lambda m, x: SP[m].gamma(x), (4,), xs=([-0.5, -1.3, -2.7, -3.2],))
S("betaln", lambda m, a, b: SP[m].betaln(a, b), (2, 3), (3,), domain=POS)
S("beta", lambda m, a, b: SP[m].beta(a, b), (2, 3), (2, 3), domain=POS)
S("beta_negative", lambda m, a, b: SP[m].beta(a, b), (3,), (3,), xs=([-0.5, -1.5, 2.5], [1.2, 0.7, -0.3]))
S("polygamma_orders", lambda m, x: SP[m].polygamma(np.arange(4.0), x), (4,), domain=POS)
S("psi", lambda m, x: SP[m].psi(x), (2, 3), domain=POS)
S("ndtr", lambda m, x: SP[m].ndtr(x), (2, 3), domain=(-4.0, 4.0))
S("ndtri", lambda m, p: SP[m].ndtri(p), (2, 3), domain=UNIT, tol=1e-4)
S("log_ndtr", lambda m, x: SP[m].log_ndtr(x), (2, 3), domain=(-4.0, 4.0))
S("log_ndtr_tails", lambda m, x: SP[m].log_ndtr(x), (6,), xs=([-40.0, -20.5, -19.5, 5.5, 6.5, 12.0],))
S("gammainc", lambda m, a, x: SP[m].gammainc(a, x) + SP[m].gammaincc(a, 2 * x), (2, 3), (2, 3),
  domain=[POS, (0.1, 8.0)])
S("gammainc_large", lambda m, a, x: SP[m].gammainc(a, x), (4,), (4,), xs=([0.5, 40.0, 300.0, 600.0],
                                                                           [80.0, 30.0, 320.0, 900.0]))
S("betainc", lambda m, a, b, x: SP[m].betainc(a, b, x), (2, 3), (3,), (2, 3), domain=[POS, POS, UNIT])
S("betainc_skewed", lambda m, a, b, x: SP[m].betainc(a, b, x), (4,), (4,), (4,),
  xs=([50.0, 0.5, 120.0, 3.0], [0.5, 50.0, 80.0, 200.0], [0.97, 0.03, 0.62, 0.01]))

# ---------------------------------------------------------------- JAX's x.at[idx] on the arrays gnp makes
COMPILED = len(SPECS)  # the specs from here on run compiled too (test_under_jit_equals_eager)


def at(x):
    """x.at, which traced values and the arrays gnp makes on NumPy have; gnp makes the CuPy backend's own
    arrays (and the strict ones that stand for them), without it: gnp.at(x) there."""
    return x.at if backends.xp() is np or isinstance(x, Tracer) else gnp.at(x)


def at_chain(v):
    """zeros, set, add, multiply, min, max and get, each on the result of the one before."""
    y = at(gnp.zeros((2, 4)))[0].set(v)
    y = at(y)[1, 1:].add(v[:3] * v[3])
    y = at(y)[0, ::2].multiply(v[1:3])
    y = at(y)[1, 0].min(v[0])
    y = at(y)[1, 3].max(v[2])
    return at(y)[:, 1:].get()


def at_chain_ref(v):
    y = np.zeros((2, 4))
    y[0] = v
    y[1, 1:] += v[:3] * v[3]
    y[0, ::2] *= v[1:3]
    y[1, 0] = min(y[1, 0], v[0])
    y[1, 3] = max(y[1, 3], v[2])
    return y[:, 1:]


def np_update(x, idx, v):
    x = np.array(x, dtype=float)
    x[idx] = v
    return x


S("at_zeros_chain", lambda m, v: at_chain(v), (4,), ref=at_chain_ref)
S("at_ones_like_arithmetic", lambda m, v: at(gnp.ones_like(v) * 2.0)[1:].set(v[:2] ** 2), (3,),
  ref=lambda v: np_update(np.full(3, 2.0), slice(1, None), v[:2] ** 2))
S("at_arange_eye_full", lambda m, v: at(gnp.arange(3.0))[::2].add(v[0]) + at(gnp.eye(3))[0, 1].set(v[1])
  + at(gnp.full((3, 3), 0.5))[2].multiply(v), (3,),
  ref=lambda v: np_update(np.arange(3.0), slice(None, None, 2), v[0] + np.arange(3.0)[::2])
  + np_update(np.eye(3), (0, 1), v[1]) + np_update(np.full((3, 3), 0.5), 2, 0.5 * v))
S("at_asarray_linspace", lambda m, v: at(gnp.asarray(ZEROS))[1, [0, 2]].set(v[:2])
  * at(gnp.linspace(0.0, 1.0, 3))[1].get() + at(gnp.array([[1.0, 2.0, 3.0]]))[0, 1].max(v[2]), (3,),
  ref=lambda v: np_update(ZEROS, (1, [0, 2]), v[:2]) * 0.5 + np.array([[1.0, max(2.0, v[2]), 3.0]]))

# ---------------------------------------------------------------- gpuad.scipy.stats, against scipy.stats
ST = {np: scipy.stats, gnp: gst}
STATS = len(SPECS)  # the specs from here on are the stats ones
for fn in ("logpdf", "pdf", "cdf", "logcdf", "sf", "logsf"):
    S(f"norm_{fn}", lambda m, x, loc, scale, fn=fn: getattr(ST[m].norm, fn)(x, loc, scale), (2, 3), (3,), (3,),
      domain=[(-3.0, 3.0), W, POS])
S("norm_ppf", lambda m, q, loc, scale: ST[m].norm.ppf(q, loc, scale), (2, 3), (3,), (2, 3), domain=[UNIT, W, POS],
  tol=1e-4)
S("norm_defaults", lambda m, x: ST[m].norm.logpdf(x) + ST[m].norm.cdf(x), (4,))
for fn in ("logpdf", "pdf", "cdf"):
    S(f"t_{fn}", lambda m, x, df, loc, scale, fn=fn: getattr(ST[m].t, fn)(x, df, loc, scale), (2, 3), (3,), (), (),
      domain=[(-4.0, 4.0), (0.5, 30.0), W, POS])
    S(f"gamma_{fn}", lambda m, x, a, scale, fn=fn: getattr(ST[m].gamma, fn)(x, a, 0.2, scale), (2, 3), (3,), (),
      domain=[(0.5, 6.0), POS, (0.5, 2.0)])
    S(f"beta_{fn}", lambda m, x, a, b, scale, fn=fn: getattr(ST[m].beta, fn)(x, a, b, -0.1, scale), (2, 3), (3,), (),
      (), domain=[UNIT, POS, POS, (1.0, 1.5)])
S("t_cdf_large_df", lambda m, x, df: ST[m].t.cdf(x, df), (4,), (4,), domain=[(-3.0, 3.0), (80.0, 300.0)])
S("gamma_cdf_defaults", lambda m, x, a: ST[m].gamma.cdf(x, a), (5,), (5,), domain=[(0.1, 40.0), (0.3, 30.0)])
S("beta_logpdf_defaults", lambda m, x, a, b: ST[m].beta.logpdf(x, a, b), (5,), (), (), domain=[UNIT, POS, POS])
COUNTS = np.array([[0.0, 1.0, 4.0], [2.0, 7.0, 3.0]])


def like(constant, x):
    """A constant in x's float type, so that float32 inputs keep float32 results."""
    return np.asarray(constant, dtype=getattr(x, "dtype", float))


for fn in ("logpdf", "pdf", "cdf"):
    S(f"chi2_{fn}", lambda m, x, df, fn=fn: getattr(ST[m].chi2, fn)(x, df, 0.1, 1.5), (2, 3), (3,),
      domain=[(0.5, 6.0), (1.0, 5.0)])
for fn in ("logpdf", "pdf"):  # x normalised onto the simplex inside, so its differences stay on it
    S(f"dirichlet_{fn}", lambda m, x, alpha, fn=fn: getattr(ST[m].dirichlet, fn)(x / m.sum(x), alpha), (3,), (3,),
      domain=[(0.2, 1.0), (0.5, 4.0)])
S("dirichlet_logpdf_points", lambda m, x, alpha: ST[m].dirichlet.logpdf(x / m.sum(x, axis=0), alpha), (3, 2), (3,),
  domain=[(0.2, 1.0), (0.5, 4.0)])  # scipy's (k, n): n points, component first
S("poisson_logpmf", lambda m, mu: ST[m].poisson.logpmf(like(COUNTS, mu), mu), (3,), domain=POS)
S("poisson_pmf_loc", lambda m, mu: ST[m].poisson.pmf(like(COUNTS, mu), mu, loc=-1), (2, 3), domain=POS)
S("poisson_cdf", lambda m, mu: ST[m].poisson.cdf(like(COUNTS - 0.5, mu), mu, loc=0.2), (2, 3), domain=POS)
S("t_logcdf", lambda m, x, df, loc, scale: ST[m].t.logcdf(x, df, loc, scale), (2, 3), (3,), (), (),
  domain=[(-4.0, 4.0), (0.5, 30.0), W, POS])


def mvn(fn, cov):
    """multivariate_normal.fn of points x for mean mu and the covariance cov(m, c) made from c."""
    return lambda m, x, mu, c: getattr(ST[m].multivariate_normal, fn)(x, mu, cov(m, c))


SPD = lambda m, c: c @ c.T + m.eye(3, dtype=c.dtype)  # noqa: E731
S("mvn_logpdf", mvn("logpdf", SPD), (4, 3), (3,), (3, 3))
S("mvn_pdf_one_point", mvn("pdf", SPD), (3,), (3,), (3, 3), tol=1e-4)
S("mvn_logpdf_points_grid", mvn("logpdf", SPD), (2, 2, 3), (3,), (3, 3))
S("mvn_logpdf_diagonal", mvn("logpdf", lambda m, c: c), (4, 2), (2,), (2,), domain=[W, W, POS])
S("mvn_logpdf_scalar_cov", mvn("logpdf", lambda m, c: c), (4, 2), (2,), (), domain=[W, W, POS])
S("mvn_logpdf_one_dimension", mvn("logpdf", lambda m, c: c), (5,), (1,), (), domain=[W, W, POS])
S("mvn_entropy", lambda m, mu, c: ST[m].multivariate_normal.entropy(mu, SPD(m, c)), (3,), (3, 3))
S("mvn_entropy_diagonal", lambda m, c: ST[m].multivariate_normal.entropy(like(np.zeros(2), c), c), (2,), domain=POS)
S("mvn_logpdf_default_mean", lambda m, x: ST[m].multivariate_normal.logpdf(x, cov=like(np.eye(2) * 2.0, x)),
  (3, 2))

assert len({s.name for s in SPECS}) == len(SPECS), "spec names must be unique"
ids = pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
second_ids = pytest.mark.parametrize("spec", [s for s in SPECS if s.second], ids=[s.name for s in SPECS if s.second])


@ids
def test_forward_value_matches_the_reference(spec):
    xs = spec.inputs()
    assert_close(spec.f(*on_backend(*xs)), np.asarray(spec.expected(*xs)), rtol=1e-12, atol=1e-12, what=spec.name)


@ids
def test_nested_lists_are_array_like(spec):
    """Where the reference gives a list the meaning of an array, gpuad does too."""
    check_lists_like_arrays(spec.f, spec.expected, spec.inputs(), spec.name)


@ids
def test_first_order(spec):
    check_first_order(spec.f, spec.inputs(), rtol=spec.tol, atol=spec.tol)


@second_ids
def test_second_order(spec):
    check_second_order(spec.f, spec.inputs(), rtol=spec.tol, atol=spec.tol)


BATCH = 3


@ids
def test_vmap_matches_a_loop(spec):
    """Every argument batched on axis 0: values and jvp tangents equal those of a Python loop."""
    samples = [tuple(x + 0.01 * k for x in spec.inputs()) for k in range(BATCH)]
    tangents = [random_inputs(spec.shapes, (-1.0, 1.0), seed=k) for k in range(BATCH)]
    stacked = [np.stack(xs) for xs in zip(*samples)] + [np.stack(ts) for ts in zip(*tangents)]
    n = len(spec.shapes)
    ys, ts = gpuad.vmap(lambda *a: gpuad.jvp(spec.f, a[:n], a[n:]))(*on_backend(*stacked))
    for k in range(BATCH):
        y, t = gpuad.jvp(spec.f, on_backend(*samples[k]), on_backend(*tangents[k]))
        assert_close(ys[k], y, rtol=1e-12, atol=1e-12, what=f"value {k}")
        assert_close(ts[k], t, rtol=1e-12, atol=1e-12, what=f"tangent {k}")


# ---------------------------------------------------------------- integer results: values, no derivative
SORTED = np.array([-1.5, -0.2, 0.3, 0.3, 1.1])


@pytest.mark.parametrize("side", ["left", "right"])
def test_searchsorted_matches_numpy_under_vmap_and_carries_no_derivative(side):
    v = np.array([[-2.0, 0.3, 0.5], [1.1, 3.0, -0.2]])  # ties with SORTED too: side decides
    got = gnp.searchsorted(gnp.asarray(SORTED), gnp.asarray(v), side=side)
    np.testing.assert_array_equal(to_np(got), np.searchsorted(SORTED, v, side=side))
    assert to_np(got).dtype.kind == "i"
    per_row = gpuad.vmap(lambda r: gnp.searchsorted(gnp.asarray(SORTED), r, side=side))(gnp.asarray(v))
    np.testing.assert_array_equal(to_np(per_row), np.searchsorted(SORTED, v, side=side))
    order = np.array([4, 0, 2, 1, 3])
    shuffled = SORTED[np.argsort(order)]
    np.testing.assert_array_equal(to_np(gnp.searchsorted(gnp.asarray(shuffled), gnp.asarray(v), side, order)),
                                  np.searchsorted(shuffled, v, side, order))
    g = gpuad.grad(lambda w: gnp.sum(gnp.asarray(v[0]) * gnp.searchsorted(w, v[0], side=side)))(gnp.asarray(SORTED))
    assert_close(g, np.zeros(5))  # the counts are integers: nothing flows back to the sorted values
    g = gpuad.grad(lambda u: gnp.sum(u * gnp.searchsorted(gnp.asarray(SORTED), u, side=side)))(gnp.asarray(v[0]))
    assert_close(g, np.searchsorted(SORTED, v[0], side=side).astype(float))


@pytest.mark.parametrize("kth, axis", [(4, -1), ((0, -1, 5), 1), (2, 0), (7, None)])
def test_argpartition_is_numpys_under_vmap_and_jit_and_carries_no_derivative(kth, axis):
    """NumPy's own order on NumPy; on any backend the elements at kth are those a sort puts there."""
    x = np.random.default_rng(3).standard_normal((4, 9))
    got = to_np(gnp.argpartition(gnp.asarray(x), kth, axis=axis))
    assert got.dtype.kind == "i"
    flat = x.ravel() if axis is None else x
    a = -1 if axis is None else axis
    np.testing.assert_array_equal(np.take(np.take_along_axis(flat, got, a), kth, a), np.take(np.sort(flat, a), kth, a))
    same = np.testing.assert_array_equal if gpuad.backend() == "numpy" else lambda *_: None
    same(got, np.argpartition(x, kth, axis=axis))
    same(to_np(gnp.partition(gnp.asarray(x), kth, axis=axis)), np.partition(x, kth, axis=axis))
    same(to_np(gpuad.vmap(lambda r: gnp.argpartition(r, kth, axis=axis))(gnp.asarray(x[None]))), got[None])
    np.testing.assert_array_equal(to_np(gpuad.jit(lambda v: gnp.argpartition(v, kth, axis=axis))(x)), got)
    g = gpuad.grad(lambda v: gnp.sum(v * v.argpartition(3)))(gnp.asarray(x))  # the method of traced values
    assert_close(g, to_np(gnp.argpartition(gnp.asarray(x), 3)).astype(float))  # the integers carry nothing back


@pytest.mark.parametrize("name, args", [("tril_indices", (4,)), ("tril_indices", (3, 1, 4)),
                                        ("triu_indices", (4, -1)), ("triu_indices", (3, 0, 2)),
                                        ("diag_indices", (3,)), ("diag_indices", (2, 3))])
def test_index_helpers_match_numpy_and_select_without_derivative(name, args):
    got, expected = getattr(gnp, name)(*args), getattr(np, name)(*args)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(to_np(g), e)
    x = random_inputs([(4,) * len(expected)], W, seed=5)[0]
    grad = gpuad.grad(lambda v: gnp.sum(v[getattr(gnp, name)(*args)] ** 2))(gnp.asarray(x))
    ref = np.zeros_like(x)
    np.add.at(ref, expected, 2 * x[expected])
    assert_close(grad, ref)


def test_ix_matches_numpy_with_boolean_sequences():
    got = gnp.ix_([True, False, True], [2, 0])
    for g, e in zip(got, np.ix_([True, False, True], [2, 0])):
        np.testing.assert_array_equal(to_np(g), e)


# ---------------------------------------------------------------- comparisons and signs
A = np.array([1.0, np.inf, -np.inf, np.nan, 0.0, 1e-9, 100.0, np.inf])
B = np.array([1.0 + 1e-6, np.inf, np.inf, np.nan, 1e-8, 0.0, 100.001, 1e300])


@pytest.mark.parametrize("kw", [{}, {"equal_nan": True}, {"rtol": 0.0, "atol": 1e-7}, {"rtol": 1e-3}])
def test_isclose_allclose_array_equal_match_numpy(kw):
    np.testing.assert_array_equal(to_np(gnp.isclose(gnp.asarray(A), gnp.asarray(B), **kw)), np.isclose(A, B, **kw))
    for i in range(len(A)):
        assert gnp.allclose(gnp.asarray(A[i:]), gnp.asarray(B[i:]), **kw) is np.allclose(A[i:], B[i:], **kw)
    equal_nan = kw.get("equal_nan", False)
    for a, b in [(A, A), (A, B), (A[4:], A[4:] + 0.0), (A, A[:3]), (A[:4], A[:4, None])]:
        assert gnp.array_equal(gnp.asarray(a), gnp.asarray(b), equal_nan) is np.array_equal(a, b, equal_nan)


def test_allclose_of_traced_values_compares_values_without_derivative():
    seen = []

    def f(x):
        seen.append(gnp.allclose(x, 2.0 * x - 1.0))  # true at x = 1 only
        return gnp.sum(x * gnp.isclose(x, 1.0))

    g = gpuad.grad(f)(gnp.asarray([1.0, 1.0]))
    assert seen == [True]
    assert_close(g, np.ones(2))  # isclose is a constant mask: d/dx (x * 1) = 1
    assert gpuad.grad(f)(gnp.asarray([1.0, 3.0])) is not None and seen[-1] is False


def test_signed_zeros_follow_numpy():
    x = np.array([0.0, -0.0, 2.0, -3.0, np.nan, np.inf, -np.inf])
    np.testing.assert_array_equal(to_np(gnp.copysign(1.5, gnp.asarray(x[:4]))), np.copysign(1.5, x[:4]))
    np.testing.assert_array_equal(to_np(gnp.angle(gnp.asarray(x))), np.angle(x))
    np.testing.assert_array_equal(to_np(gnp.heaviside(gnp.asarray(x), 0.5)), np.heaviside(x, 0.5))
    np.testing.assert_array_equal(to_np(gnp.sinc(gnp.asarray(x[:4]))), np.sinc(x[:4]))
    both = np.array([np.nan, 1.0])
    np.testing.assert_array_equal(to_np(gnp.fmax(gnp.asarray(both), np.nan)), np.fmax(both, np.nan))
    np.testing.assert_array_equal(to_np(gnp.nan_to_num(gnp.asarray(x))), np.nan_to_num(x))


# ---------------------------------------------------------------- misuse
X23 = gnp.ones((2, 3))
ERRORS = {
    "pad_unknown_mode": (lambda: gnp.pad(X23, 1, mode="mirror"), ValueError, "mode 'mirror'.*supported modes"),
    "pad_numpy_mode_skipped": (lambda: gnp.pad(X23, 1, mode="median"), NotImplementedError,
                               "mode 'median' is not supported.*'reflect'"),
    "pad_width_shape": (lambda: gnp.pad(X23, ((1, 2, 3),)), ValueError, "pad_width.*does not fit.*2 dimensions"),
    "pad_width_negative": (lambda: gnp.pad(X23, -1), ValueError, "non-negative integers"),
    "pad_empty_axis": (lambda: gnp.pad(gnp.ones((0, 2)), 1, mode="edge"), ValueError, "cannot pad axis 0"),
    "array_split_zero": (lambda: gnp.array_split(X23, 0), ValueError, "larger than 0"),
    "vsplit_vector": (lambda: gnp.vsplit(gnp.ones(4), 2), ValueError, "vsplit needs.*at least 2 dimensions, got 1"),
    "dsplit_matrix": (lambda: gnp.dsplit(X23, 2), ValueError, "dsplit needs.*at least 3"),
    "diff_negative": (lambda: gnp.diff(X23, n=-1), ValueError, "non-negative"),
    "gradient_edge_order": (lambda: gnp.gradient(X23, edge_order=2), NotImplementedError, "edge_order=1"),
    "gradient_coordinates": (lambda: gnp.gradient(gnp.ones(3), gnp.arange(3.0)), NotImplementedError,
                             "coordinate arrays"),
    "gradient_short": (lambda: gnp.gradient(gnp.ones((1, 3))), ValueError, "at least 2"),
    "cross_two_vectors": (lambda: gnp.cross(gnp.ones(2), gnp.ones(2)), ValueError, "3 components"),
    "rot90_same_axes": (lambda: gnp.rot90(X23, axes=(1, 1)), ValueError, "two different axes"),
    "fliplr_vector": (lambda: gnp.fliplr(gnp.ones(3)), ValueError, "fliplr needs.*at least 2"),
    "rollaxis_bounds": (lambda: gnp.rollaxis(X23, 2), ValueError, "out of bounds"),
    "meshgrid_indexing": (lambda: gnp.meshgrid(gnp.ones(2), indexing="yx"), ValueError, "'xy' or 'ij'"),
    "select_lengths": (lambda: gnp.select([X23 > 0], [X23, X23]), ValueError, "1 conditions for 2 choices"),
    "select_empty": (lambda: gnp.select([], []), ValueError, "list of conditions is empty"),
    "select_not_boolean": (lambda: gnp.select([X23], [X23]), TypeError, "boolean.*float64"),
    "piecewise_funclist_length": (lambda: gnp.piecewise(X23, [X23 > 0], [1.0, 2.0, 3.0]), ValueError,
                                  r"with 1 condition\(s\), either 1 or 2 functions are expected"),
    "piecewise_array_entry": (lambda: gnp.piecewise(X23, [X23 > 0], [gnp.ones(3)]), TypeError,
                              "function or a scalar, got .* shape \\(3,\\)"),
    "partition_kth_bounds": (lambda: gnp.partition(X23, -4), ValueError, r"kth\(=-4\) out of bounds \(3\)"),
    "argpartition_kth_float": (lambda: gnp.argpartition(X23, 1.5), TypeError, "integer or a sequence of integers"),
    "searchsorted_side": (lambda: gnp.searchsorted(gnp.ones(3), 1.0, side="middle"), ValueError, "'left' or 'right'"),
    "searchsorted_matrix": (lambda: gnp.searchsorted(X23, 1.0), ValueError, "1-d"),
    "quantile_range": (lambda: gnp.quantile(X23, 1.5), ValueError, r"range \[0, 1\]"),
    "quantile_method": (lambda: gnp.quantile(X23, 0.5, method="nearest"), NotImplementedError, "method='linear'"),
    "percentile_range": (lambda: gnp.percentile(X23, -1), ValueError, r"range \[0, 100\]"),
    "average_weights_axis": (lambda: gnp.average(X23, weights=gnp.ones(3)), TypeError, "one integer axis"),
    "average_weights_length": (lambda: gnp.average(X23, axis=1, weights=gnp.ones(2)), ValueError, "do not fit axis 1"),
    "cov_weights": (lambda: gnp.cov(X23, fweights=[1, 2, 1]), NotImplementedError, "fweights"),
    "cov_3d": (lambda: gnp.cov(gnp.ones((2, 2, 2))), ValueError, "more than 2 dimensions"),
    "convolve_mode": (lambda: gnp.convolve(gnp.ones(3), gnp.ones(2), "circular"), ValueError, "'full', 'same'"),
    "convolve_matrix": (lambda: gnp.convolve(X23, gnp.ones(2)), ValueError, "a must be a non-empty vector"),
    "convolve_empty": (lambda: gnp.convolve(gnp.ones(3), gnp.ones(0)), ValueError, "v must be a non-empty"),
    "interp_period": (lambda: gnp.interp(0.5, [0.0, 1.0], [0.0, 1.0], period=1.0), NotImplementedError, "period"),
    "interp_lengths": (lambda: gnp.interp(0.5, [0.0, 1.0], [0.0, 1.0, 2.0]), ValueError, "one length"),
    "interp_empty": (lambda: gnp.interp(0.5, [], []), ValueError, "empty"),
    "r_matrix": (lambda: gnp.r_["r", X23], NotImplementedError, "numpy.matrix"),
    "r_directive": (lambda: gnp.r_["0,x", X23], ValueError, "'axis\\[,ndmin\\[,trans1d\\]\\]'"),
    "c_directive_length": (lambda: gnp.c_["0,1,2,3", X23], ValueError, "4 numbers; it takes 1 to 3"),
    "r_empty": (lambda: gnp.r_[()], ValueError, "at least one piece"),
    "allclose_under_vmap": (lambda: gpuad.vmap(lambda x: gnp.allclose(x, 1.0))(X23), TypeError, "gpuad.numpy.where"),
}


@pytest.mark.parametrize("case", list(ERRORS.values()), ids=list(ERRORS))
def test_misuse_raises_a_clear_error(case):
    fn, exc, match = case
    with pytest.raises(exc, match=match):
        fn()


# ---------------------------------------------------------------- statistics.py and scipy.special: special values
def test_nan_and_infinity_handling_follows_numpy_and_scipy():
    rows = np.array([[np.nan, np.nan], [1.0, np.nan], [3.0, 2.0]])
    for name in ("nanmax", "nanmin", "nanmean", "nansum"):
        with warnings.catch_warnings():  # numpy warns about the all-NaN row
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = getattr(np, name)(rows, axis=1)
        assert_close(getattr(gnp, name)(gnp.asarray(rows), axis=1), expected, what=name)
    assert_close(gnp.median(gnp.asarray(rows), axis=1), np.median(rows, axis=1))
    x = np.array([[-np.inf, -np.inf], [np.inf, 1.0], [-np.inf, 0.0]])
    same = lambda got, expected: np.testing.assert_allclose(to_np(got), expected, rtol=1e-12)  # noqa: E731
    same(gsp.logsumexp(gnp.asarray(x), axis=1), scipy.special.logsumexp(x, axis=1))
    e = np.array([-1.0, 0.0, 0.5, np.inf])
    same(gsp.entr(gnp.asarray(e)), scipy.special.entr(e))
    y = np.array([0.0, -1.0, np.inf, np.nan, -2.0])
    for name, shift in (("xlogy", 0.0), ("xlog1py", -1.0)):
        for x0 in (0.0, 2.0):
            got = getattr(gsp, name)(x0, gnp.asarray(y + shift))
            same(got, getattr(scipy.special, name)(x0, y + shift))


def test_xlogy_at_zero_has_finite_derivatives():
    """d/dy xlogy(0, y) = 0 also at y = 0; d/dx xlogy(x, y) at x = 0 is log(y)."""
    y = np.array([0.0, 0.5, 2.0])
    dy = gpuad.jacfwd(lambda v: gsp.xlogy(gnp.zeros(3), v))(gnp.asarray(y))
    assert_close(dy, np.zeros((3, 3)))
    dx = gpuad.grad(lambda u: gnp.sum(gsp.xlogy(u, gnp.asarray(y[1:]))))(gnp.zeros(2))
    assert_close(dx, np.log(y[1:]))


def test_missing_scipy_special_name_says_so():
    with pytest.raises(AttributeError, match="gpuad.scipy.special has no 'zeta'.*logsumexp"):
        gsp.zeta  # noqa: B018


def test_special_functions_without_scipy_raise_an_import_error_naming_it(monkeypatch):
    import importlib

    from gpuad import backends
    real = importlib.import_module
    monkeypatch.setattr(importlib, "import_module",
                        lambda name: (_ for _ in ()).throw(ImportError(name)) if "scipy" in name else real(name))
    erf = backends.scipy_functions(np, "special", ["erf"])["erf"]
    with pytest.raises(ImportError, match="scipy.special.*pip install scipy"):
        erf(np.ones(2))


def test_log_ndtr_is_finite_and_matches_scipy_far_in_the_tails():
    x = np.array([-1e3, -60.0, -20.0, 6.0, 40.0])
    assert_close(gsp.log_ndtr(gnp.asarray(x)), scipy.special.log_ndtr(x), rtol=1e-13)
    g = to_np(gpuad.vmap(gpuad.grad(gsp.log_ndtr))(gnp.asarray(x)))
    # d log ndtr / dx = pdf / cdf: -x for x -> -inf, pdf(x) for x -> +inf
    np.testing.assert_allclose(g, np.exp(-x * x / 2 - scipy.special.log_ndtr(x)) / np.sqrt(2 * np.pi), rtol=1e-9)


def test_ndtri_is_accurate_in_the_tails():
    p = np.array([1e-300, 1e-30, 1e-9, 0.5, 1 - 1e-9])
    x = scipy.special.ndtri(p)
    assert_close(gsp.ndtri(gnp.asarray(p)), x, rtol=1e-13)
    # d ndtri / dp = 1 / pdf(ndtri(p)) = sqrt(2 pi) exp(x^2 / 2)
    g = gpuad.vmap(gpuad.grad(gsp.ndtri))(gnp.asarray(p[1:]))
    np.testing.assert_allclose(to_np(g), np.sqrt(2 * np.pi) * np.exp(x[1:] ** 2 / 2), rtol=1e-12)


def _central(f, x, h):
    return (f(x + h) - f(x - h)) / (2 * h)


@pytest.mark.parametrize("name", ["i0", "i1", "i0e", "i1e"])
def test_bessel_derivatives_at_zero_are_finite_and_match_differences(name):
    """I1' = I0 - I1 / x is 1/2 at 0, not 0 / 0; I0e and I1e have a kink at 0, where their
    derivatives are the mean of the two sides, as abs's. Every mode agrees with central
    differences of scipy's values there, and each order of I1 up to the fifth with differences of
    the order below (the band near 0 where the partial is a polynomial, and across it)."""
    f, ref = getattr(gsp, name), getattr(scipy.special, name)
    x = gnp.asarray([0.0, -0.0, 0.05, -0.3])
    expected = _central(ref, to_np(x), 1e-7)  # at a kink off by h/2 times the jump of f''
    for jac in (gpuad.jacfwd, gpuad.jacrev):
        assert_close(gnp.diagonal(jac(f)(x)), expected, rtol=1e-7, atol=1e-7, what=name)
    assert np.isfinite(to_np(gpuad.hessian(lambda v: gnp.sum(f(v)))(x))).all()
    if name == "i1":
        order = f
        for _ in range(5):
            below, order = order, gpuad.grad(order)
            for x0 in (0.0, 0.08, 0.12):
                assert_close(order(x0), _central(below, x0, 1e-4), rtol=1e-6, atol=1e-6, what=f"{name} at {x0}")


def test_iv_at_zero_and_outside_its_orders():
    """I_v(0) is 1 for v = 0, 0 for v > 0, as scipy's; orders below -1 that are not whole, and
    fractional orders at x < 0 (complex, or through K_v, in scipy) are NaN, not a wrong number."""
    v = np.array([0.0, 1.0, 2.5, -2.0])
    np.testing.assert_array_equal(to_np(gsp.iv(gnp.asarray(v), 0.0)), scipy.special.iv(v, 0.0))
    assert np.isnan(to_np(gsp.iv(gnp.asarray([-1.5, 0.5]), gnp.asarray([2.0, -2.0])))).all()
    assert_close(gpuad.grad(gsp.iv, argnums=1)(0.0, 0.0), 0.0)  # I0'(0) = I1(0): finite at 0


def test_a_scipy_function_the_backend_lacks_says_so_when_called():
    """cupyx has no jn: the other special functions must still resolve, and jn say what is missing."""
    functions = backends.scipy_functions(np, "special", ["erf", "no_such_function"])
    assert_close(functions["erf"](np.array(0.5)), scipy.special.erf(0.5))
    with pytest.raises(NotImplementedError, match="scipy.special has no no_such_function"):
        functions["no_such_function"](np.array(0.5))


def test_float32_special_functions_stay_float32():
    x = np.linspace(0.5, 2.0, 4, dtype=np.float32)
    for f in (gsp.erf, gsp.gammaln, gsp.digamma, gsp.gamma, lambda v: gsp.polygamma(2, v), gsp.i0, gsp.i1, gsp.i0e,
              gsp.i1e, gnp.i0, gsp.j0, gsp.j1, gsp.y0, gsp.y1, lambda v: gsp.yn(2, v), gsp.rgamma,
              lambda v: gsp.iv(1.5, v), lambda v: gsp.ive(2.0, v)):
        assert to_np(f(gnp.asarray(x))).dtype == np.float32
        assert to_np(gpuad.hessian(lambda v, f=f: gnp.sum(f(v)))(gnp.asarray(x))).dtype == np.float32


def test_piecewise_and_partition_of_float32_stay_float32():
    x = np.linspace(1.0, -1.0, 5, dtype=np.float32)

    def f(m, v):  # the kth element: the one partition places the same on every backend
        return m.piecewise(v, [v < 0], [lambda u: u * 2.0, m.exp]) * m.partition(v ** 3, 1)[1]

    got = to_np(f(gnp, gnp.asarray(x)))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, f(np, x), rtol=1e-6)
    assert to_np(gpuad.grad(lambda v: gnp.sum(f(gnp, v)))(gnp.asarray(x))).dtype == np.float32


# ---------------------------------------------------------------- x.at and gpuad.scipy.stats: compiled, float32, misuse
STATS_SPECS = SPECS[STATS:]


@pytest.mark.parametrize("spec", sampled(SPECS[COMPILED:], 16, [s.name for s in SPECS[COMPILED:]]))
def test_under_jit_equals_eager(spec):
    args, nums = on_backend(*spec.inputs()), tuple(range(len(spec.shapes)))
    assert_close(gpuad.jit(spec.f)(*args), spec.f(*args), rtol=1e-12, atol=1e-12, what="value")
    hess = gpuad.hessian(spec.f, argnums=nums)
    assert_tree_close(gpuad.jit(hess)(*args), hess(*args), rtol=1e-10, atol=1e-10, what="hessian")


def test_arrays_gnp_makes_are_numpy_arrays_with_at():
    import pickle
    if backends.xp() is not np:  # CuPy, or the strict arrays that stand for it
        pytest.skip("on CuPy gnp makes plain CuPy arrays: gnp.at(y)[i] is the spelling there")
    y = gnp.zeros(3)
    assert isinstance(y, np.ndarray) and repr(y) == repr(np.zeros(3)) and str(y) == str(np.zeros(3))
    assert type(np.asarray(y)) is np.ndarray  # NumPy's asarray hands back a plain array
    assert gnp.asarray(y) is y and gnp.asarray(y, dtype=np.float32).dtype == np.float32
    for z in (np.sin(y) + 1.0, y[1:], pickle.loads(pickle.dumps(y)), gnp.asarray([1.0, 2.0]).reshape(2, 1)):
        assert_close(z.at[0].set(7.0)[0], np.full(z.shape[1:], 7.0))
    y.at[0].set(1.0)
    assert_close(y, np.zeros(3))  # functional: y itself is unchanged
    y[1] = 2.0  # in place, as on any NumPy array
    assert_close(y, [0.0, 2.0, 0.0])
    compiled = gpuad.jit(lambda v: gnp.zeros(3).at[1].set(v))
    assert_close(compiled(gnp.asarray(2.0)), compiled(2.0))


def test_writing_a_traced_value_into_a_gnp_array_says_to_use_at():
    def f(x):
        y = gnp.zeros(3)
        y[0] = x[0]
        return y

    if backends.xp() is not np:  # CuPy, or the strict arrays that stand for it
        pytest.skip("CuPy's arrays are CuPy's own")
    with pytest.raises(TypeError, match=r"y = y.at\[i\].set\(v\) instead"):
        gpuad.jacfwd(f)(gnp.ones(2))


@pytest.mark.parametrize("spec", STATS_SPECS, ids=[s.name for s in STATS_SPECS])
def test_stats_of_float32_inputs_are_float32_and_match_scipy(spec):
    xs = tuple(x.astype(np.float32) for x in spec.inputs())
    got = to_np(spec.f(*on_backend(*xs)))
    assert got.dtype == np.float32
    expected = np.asarray(spec.expected(*[x.astype(np.float64) for x in xs]))
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-5 * max(1.0, np.max(np.abs(expected))))


@pytest.mark.parametrize("name", ["norm", "t", "gamma", "beta", "chi2", "dirichlet", "multivariate_normal", "poisson"])
def test_stats_missing_names_say_what_exists(name):
    with pytest.raises(AttributeError, match=f"gpuad.scipy.stats.{name} has no 'isf' yet: it has .*p[dm]f"):
        getattr(gst, name).isf  # noqa: B018
    with pytest.raises(AttributeError, match="gpuad.scipy.stats has no 'cauchy' yet: it has norm, t.*scipy.stats"):
        gst.cauchy  # noqa: B018


def test_stats_outside_the_support_and_bad_parameters_follow_scipy():
    x = np.array([-0.5, 0.0, 0.5, 1.0, 1.5])
    for got, expected in [(gst.norm.logpdf(gnp.asarray(x), 0.0, -1.0), scipy.stats.norm.logpdf(x, 0.0, -1.0)),
                          (gst.gamma.logpdf(gnp.asarray(x), 2.0), scipy.stats.gamma.logpdf(x, 2.0)),
                          (gst.gamma.cdf(gnp.asarray(x), 2.0), scipy.stats.gamma.cdf(x, 2.0)),
                          (gst.beta.logpdf(gnp.asarray(x), 2.0, 3.0), scipy.stats.beta.logpdf(x, 2.0, 3.0)),
                          (gst.beta.cdf(gnp.asarray(x), 2.0, 3.0), scipy.stats.beta.cdf(x, 2.0, 3.0)),
                          (gst.t.cdf(gnp.asarray(x), -1.0), scipy.stats.t.cdf(x, -1.0)),
                          (gst.poisson.logpmf(gnp.asarray(x), 2.0), scipy.stats.poisson.logpmf(x, 2.0))]:
        np.testing.assert_array_equal(np.isnan(to_np(got)), np.isnan(expected))
        np.testing.assert_allclose(to_np(got), expected, rtol=1e-12)
    g = gpuad.grad(lambda mu: gnp.sum(gst.poisson.logpmf(gnp.asarray(x), mu)))(2.0)
    assert_close(g, np.sum(np.where(x % 1 == 0, x / 2.0 - 1.0, 0.0)))  # the counts only; -inf elsewhere


def test_multivariate_normal_misuse_raises_clear_errors():
    with pytest.raises(ValueError, match="cov has shape \\(2, 3\\).*scalar, a vector of 2 variances"):
        gst.multivariate_normal.logpdf(gnp.ones(2), gnp.zeros(2), gnp.ones((2, 3)))
    with pytest.raises(ValueError, match="x has 3 components per point, mean 2"):
        gst.multivariate_normal.logpdf(gnp.ones(3), gnp.zeros(2))
    with pytest.raises(NotImplementedError, match="allow_singular"):
        gst.multivariate_normal.logpdf(gnp.ones(2), gnp.zeros(2), allow_singular=True)


# ---------------------------------------------------------------- from HIPS autograd's suite (bench/autograd_suite.py)
def test_lists_of_traced_values_are_arrays_everywhere():
    """A list or tuple holding traced values is the array numpy.array makes of it, in any function."""
    assert gpuad.grad(lambda x: gnp.mean([x, x + 2]))(0.0) == 1.0
    assert gpuad.grad(lambda x: gnp.std((x, x + 2)))(0.0) == 0.0
    assert gpuad.grad(lambda x: gnp.var([x, 3 * x]))(1.0) == 2.0  # var = (x - 3x)^2 / 4 = x^2
    assert gpuad.grad(lambda x: gnp.sum(gnp.append([x, 2 * x], 3.0)))(1.0) == 3.0
    assert gpuad.jit(lambda x: gnp.max([x, -x]))(np.float64(-2.0)) == 2.0


def test_any_all_dtype_and_tensordot_of_a_number():
    x = np.array([[0.0, 1.0], [2.0, np.nan]])
    for axis in (None, 0, 1):
        for name in ("any", "all"):
            got = getattr(gnp, name)(gnp.asarray(x), axis=axis, keepdims=axis == 1)
            np.testing.assert_array_equal(to_np(got), getattr(np, name)(x, axis=axis, keepdims=axis == 1))
    assert gpuad.jit(lambda x: gnp.where(gnp.all(x > 0), x, -x))(gnp.asarray([1.0, 2.0])).tolist() == [1.0, 2.0]
    assert gnp.dtype("float32") == np.float32
    assert gnp.result_type(np.float32(1.0), 2.0) == np.float32 and gnp.finfo(gnp.float64).eps == np.finfo(float).eps
    sizes = gpuad.grad(lambda x: gnp.sum(x) * gnp.ndim(x) * gnp.size(x) * gnp.size(x, 1) * gnp.shape(x)[0])
    assert_close(sizes(np.ones((2, 3))), np.full((2, 3), 2 * 6 * 3 * 2.0), 0, 0)
    assert_close(gpuad.jacfwd(lambda a: gnp.tensordot(a, 2.5, axes=0))(np.ones(3)), 2.5 * np.eye(3), 0, 0)
