"""gpuad.numpy.linalg: values against numpy.linalg, derivatives against central finite
differences (first and second order), against each other (jacfwd == jacrev), against closed
forms, under vmap, with many directions at once, and on stacks of matrices."""
import sys

import numpy as np
import pytest
import scipy.linalg
from helpers import to_np

import gpuad
import gpuad.numpy as gnp
import gpuad.scipy.linalg as gsl
from gpuad import backends, core
from gpuad.ops import linalg as linalg_ops

la = gnp.linalg
RTOL, ATOL = 1e-6, 1e-8


# ---------------------------------------------------------------- inputs and the checker
def _rng(seed=0):
    return np.random.default_rng(seed)


def well(*shape, seed=0):
    """Well-conditioned square matrices: Q + n I with Q standard normal."""
    n = shape[-1]
    return _rng(seed).standard_normal(shape) + n * np.eye(n)


def spd(*shape, seed=0):
    """Symmetric positive-definite matrices: M M^T + n I."""
    m = _rng(seed).standard_normal(shape)
    return m @ np.swapaxes(m, -1, -2) + shape[-1] * np.eye(shape[-1])


def normal(*shape, seed=1):
    return _rng(seed).standard_normal(shape)


def sym(*shape, seed=0):
    """Symmetric matrices with well-separated eigenvalues: M + M^T plus a spread diagonal."""
    m = _rng(seed).standard_normal(shape)
    return m + np.swapaxes(m, -1, -2) + np.diag(np.arange(shape[-1]) * 3.0)


def real_eig(*shape, seed=0):
    """Non-symmetric matrices with real, well-separated eigenvalues: V diag(w) V^-1."""
    v = _rng(seed).standard_normal(shape) + 2 * np.eye(shape[-1])
    w = np.arange(shape[-1]) * 1.5 - 1.0 + _rng(seed + 1).uniform(0, 0.5, shape[:-1])
    return v @ (w[..., :, None] * np.linalg.inv(v))


def complement_projector(u2):
    """u2 u2^T: the same for every orthonormal basis u2 of a space."""
    return u2 @ u2.T


def fd_jacobian(f, x, eps=1e-6):
    """Central differences: shape f(x).shape + x.shape."""
    x = np.asarray(x, dtype=float)
    y = to_np(f(x))
    jac = np.empty(y.shape + x.shape)
    for idx in np.ndindex(*x.shape):
        e = np.zeros_like(x)
        e[idx] = eps
        jac[(Ellipsis,) + idx] = (to_np(f(x + e)) - to_np(f(x - e))) / (2 * eps)
    return jac


def close(a, b, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(to_np(a), to_np(b), rtol=rtol, atol=atol)


A3, B32, BVEC = well(3, 3), normal(3, 2), normal(3)
ASTACK, BSTACK = well(2, 3, 3, seed=2), normal(2, 3, 2, seed=3)

# name: (function of one array, the point to differentiate at)
CASES = {
    "solve_wrt_a": (lambda a: la.solve(a, B32), A3),
    "solve_wrt_b": (lambda b: la.solve(A3, b), B32),
    "solve_vector_b": (lambda a: la.solve(a, BVEC), A3),
    "solve_stack": (lambda a: la.solve(a, BSTACK), ASTACK),
    "solve_one_a_many_b": (lambda a: la.solve(a, BSTACK), A3),
    "solve_many_b_one_a": (lambda b: la.solve(A3, b), BSTACK),
    "solve_broadcast_a": (lambda a: la.solve(a, BSTACK), well(1, 3, 3, seed=4)),
    "inv": (la.inv, A3),
    "inv_stack": (la.inv, ASTACK),
    "det": (la.det, A3),
    "det_stack": (la.det, ASTACK),
    "logabsdet": (lambda a: la.slogdet(a)[1], A3),
    "logabsdet_negative_det": (lambda a: la.slogdet(a)[1], well(3, 3) @ np.diag([1.0, 1.0, -1.0])),
    "cholesky": (la.cholesky, spd(3, 3)),
    "cholesky_stack": (la.cholesky, spd(2, 3, 3, seed=5)),
    "cholesky_upper": (lambda a: la.cholesky(a, upper=True), spd(3, 3)),
    "norm_2": (la.norm, normal(4)),
    "norm_all_entries": (la.norm, normal(2, 3)),
    "norm_1": (lambda x: la.norm(x, 1), normal(4)),
    "norm_inf": (lambda x: la.norm(x, np.inf), normal(4)),
    "norm_minus_inf": (lambda x: la.norm(x, -np.inf), normal(4)),
    "norm_3": (lambda x: la.norm(x, 3), normal(4)),
    "norm_axis_keepdims": (lambda x: la.norm(x, axis=1, keepdims=True), normal(2, 3)),
    "norm_fro": (lambda x: la.norm(x, "fro"), normal(3, 3)),
    "norm_matrix_1": (lambda x: la.norm(x, 1), normal(3, 3)),
    "norm_matrix_inf": (lambda x: la.norm(x, np.inf), normal(3, 3)),
    "norm_matrix_axes": (lambda x: la.norm(x, -1, axis=(2, 0)), normal(3, 2, 3)),
    "norm_matrix_2": (lambda x: la.norm(x, 2), normal(3, 2)),
    "vector_norm_axes": (lambda x: la.vector_norm(x, axis=(0, 2), ord=3), normal(2, 2, 3)),
    "matrix_norm_nuc": (lambda x: la.matrix_norm(x, ord="nuc"), normal(2, 3, 2)),
    "svdvals": (la.svdvals, normal(2, 4)),
    "norm_matrix_minus_2": (lambda x: la.norm(x, -2), normal(3, 3)),
    "norm_nuc_axes_keepdims": (lambda x: la.norm(x, "nuc", axis=(0, 2), keepdims=True), normal(2, 2, 3)),
    "eigh_values": (lambda a: la.eigh(a).eigenvalues, sym(3, 3)),
    "eigh_vectors": (lambda a: la.eigh(a).eigenvectors, sym(3, 3)),
    "eigh_stack": (lambda a: la.eigh(a)[1], sym(2, 3, 3, seed=3)),
    "eigvalsh": (la.eigvalsh, sym(4, 4, seed=4)),
    # eig is complex always (as JAX's); of these matrices with real eigenvalues the real parts say all
    "eig_values": (lambda a: la.eig(a).eigenvalues.real, real_eig(3, 3)),
    "eig_vectors": (lambda a: la.eig(a).eigenvectors.real, real_eig(3, 3, seed=2)),
    "eig_stack": (lambda a: (la.eig(a)[1] * la.eigvals(a)[..., None, :]).real, real_eig(2, 3, 3, seed=5)),
    "svd_values": (lambda a: la.svd(a, compute_uv=False), normal(3, 3)),
    "svd_u_tall": (lambda a: la.svd(a, full_matrices=False).U, normal(4, 2)),
    "svd_vh_tall": (lambda a: la.svd(a, full_matrices=False).Vh, normal(4, 2)),
    "svd_u_wide": (lambda a: la.svd(a, full_matrices=False)[0], normal(2, 4)),
    "svd_vh_wide": (lambda a: la.svd(a, full_matrices=False)[2], normal(2, 4)),
    "svd_stack": (lambda a: la.svd(a)[0], normal(2, 3, 3, seed=5)),
    # full_matrices=True, non-square: one extra column is unique up to sign, so FD sees its derivative;
    # with more, the basis is not unique and the projector on the complement is what is determined
    "svd_full_u_one_extra": (lambda a: la.svd(a)[0], normal(3, 2, seed=14)),
    "svd_full_vh_one_extra_stack": (lambda a: la.svd(a).Vh, normal(2, 2, 3, seed=15)),
    "svd_full_u_projector": (lambda a: complement_projector(la.svd(a)[0][..., 2:]), normal(5, 2, seed=16)),
    "svd_full_vh_projector": (lambda a: complement_projector(la.svd(a).Vh[1:].T), normal(1, 4, seed=17)),
    "svd_full_vh_projector_wide": (lambda a: complement_projector(la.svd(a).Vh[2:].T), normal(2, 5, seed=27)),
    "svd_full_every_factor_tall": (lambda a: (lambda u, s, vh: (u[:, :3] * s) @ vh + (u[:, 3:] @ u[:, 3:].T)[:, :3])(
        *la.svd(a)), normal(6, 3, seed=28)),
    "qr_q": (lambda a: la.qr(a).Q, well(3, 3)),
    "qr_r": (lambda a: la.qr(a).R, well(3, 3)),
    "qr_tall_q": (lambda a: la.qr(a)[0], normal(4, 2)),
    "qr_tall_r_stack": (lambda a: la.qr(a, mode="r"), normal(2, 4, 3, seed=6)),
    "qr_wide_q": (lambda a: la.qr(a).Q, normal(2, 4, seed=12)),
    "qr_wide_r_stack": (lambda a: la.qr(a, mode="r"), normal(2, 3, 5, seed=13)),
    "pinv_tall": (la.pinv, normal(4, 2)),
    "pinv_wide_stack": (la.pinv, normal(2, 2, 3, seed=7)),
    "lstsq": (lambda a: la.lstsq(a, normal(4, 2, seed=8))[0], normal(4, 3)),
    # full rank, every singular value 1 (repeated): pinv is smooth there, the SVD's rules are not defined
    "pinv_identity": (la.pinv, np.eye(3)),
    "pinv_orthonormal_columns": (la.pinv, np.linalg.qr(normal(4, 2, seed=21))[0]),
    "pinv_orthogonal_wide_stack": (la.pinv, np.swapaxes(np.linalg.qr(normal(2, 4, 3, seed=22))[0], -1, -2)),
    "lstsq_identity": (lambda a: la.lstsq(a, normal(3, 2, seed=8))[0], np.eye(3)),
    "lstsq_residuals": (lambda b: la.lstsq(normal(4, 2), b)[1], normal(4)),
    "matrix_power_5": (lambda a: la.matrix_power(a, 5), well(3, 3) / 3),
    "matrix_power_minus_2": (lambda a: la.matrix_power(a, -2), well(2, 3, 3)),
    "multi_dot": (lambda a: la.multi_dot([normal(3), a, a.T, normal(3, 2)]), normal(3, 2)),
    "cond": (la.cond, well(3, 3)),
    "cond_minus_2": (lambda a: la.cond(a, -2), normal(3, 2)),
    "cond_fro": (lambda a: la.cond(a, "fro"), well(2, 3, 3)),
    "solve_triangular_lower": (lambda a: gsl.solve_triangular(a, B32, lower=True), A3),
    "solve_triangular_trans_unit": (lambda a: gsl.solve_triangular(a, BVEC, trans="T", unit_diagonal=True), A3),
    "solve_triangular_wrt_b": (lambda b: gsl.solve_triangular(A3, b), BSTACK),
    "solve_triangular_upper_trans": (lambda a: gsl.solve_triangular(a, B32, trans=1), A3),
    "solve_triangular_lower_trans_unit": (
        lambda a: gsl.solve_triangular(a, B32, trans="T", lower=True, unit_diagonal=True), A3),
    "solve_triangular_upper_unit_both": (
        lambda b: gsl.solve_triangular(b[0], b[1], unit_diagonal=True), np.stack([A3, normal(3, 3, seed=4)])),
    "solve_triangular_stack_a": (lambda a: gsl.solve_triangular(a, BSTACK, lower=True), ASTACK),
    "solve_triangular_stack_both": (lambda b: gsl.solve_triangular(ASTACK, b, trans=1, lower=True), BSTACK),
    "cho_solve": (lambda a: gsl.cho_solve(gsl.cho_factor(a), B32), spd(3, 3)),
    "cho_solve_lower_wrt_b": (lambda b: gsl.cho_solve(gsl.cho_factor(spd(3, 3), lower=True), b), BVEC),
    "lu_factor": (lambda a: gsl.lu_factor(a)[0], normal(3, 3)),
    "lu_factor_stack": (lambda a: gsl.lu_factor(a)[0], normal(2, 3, 3, seed=11)),
    "lu_solve": (lambda a: gsl.lu_solve(gsl.lu_factor(a), B32), well(3, 3)),
    "lu_solve_trans_wrt_b": (lambda b: gsl.lu_solve(gsl.lu_factor(normal(3, 3)), b, trans=1), BVEC),
    "expm": (gsl.expm, normal(3, 3) / 2),
    "expm_squared": (gsl.expm, normal(3, 3, seed=9) * 2),
    "expm_stack": (gsl.expm, normal(2, 2, 2, seed=10)),
    "block_diag": (lambda a: gsl.block_diag(a, 2 * a[0], 3.0), normal(2, 3)),
    # every factor of one factorisation at once: cotangents reach all of its results together
    "eigh_both": (lambda a: _eigh_both(*la.eigh(a)), sym(3, 3, seed=6)),
    "eig_both": (lambda a: _eig_both(*la.eig(a)), real_eig(3, 3, seed=7)),
    "svd_all_tall": (lambda a: _svd_all(*la.svd(a, full_matrices=False)), normal(4, 3, seed=18)),
    "svd_all_wide_stack": (lambda a: _svd_all(*la.svd(a, full_matrices=False)), normal(2, 2, 3, seed=19)),
    "qr_both": (lambda a: _qr_both(*la.qr(a)), normal(4, 3, seed=20)),
    "lu_factor_both": (lambda a: _lu_both(*gsl.lu_factor(a)), normal(3, 3, seed=21)),
}


def _eigh_both(w, v):
    """V diag(sin w) V^T with the squared eigenvectors scaled by w: reads both factors (sign-free)."""
    return (v * gnp.sin(w)[..., None, :]) @ gnp.swapaxes(v, -1, -2) + v * v * w[..., None, :]


def _eig_both(w, v):
    return ((v * gnp.exp(w)[..., None, :]) @ la.inv(v)).real + (v * v * w[..., None, :]).real


def _svd_all(u, s, vh):
    return (u * gnp.tanh(s)[..., None, :]) @ vh + gnp.sum(u ** 4 * s[..., None, :]) + gnp.sum(vh ** 4)


def _qr_both(q, r):
    return q @ (r * r) + q * gnp.sum(r)


def _lu_both(lu, piv):
    """lu_solve reads lu and the pivots; lu's square adds a term through lu alone."""
    return gsl.lu_solve((lu, piv), B32) + (lu * lu)[:, :2]
NAMES = sorted(CASES)


# ---------------------------------------------------------------- values
def test_values_match_numpy():
    close(la.solve(A3, B32), np.linalg.solve(A3, B32), atol=1e-12)
    close(la.solve(A3, BVEC), np.linalg.solve(A3, BVEC), atol=1e-12)
    close(la.solve(ASTACK, BSTACK), np.linalg.solve(ASTACK, BSTACK), atol=1e-12)
    close(la.solve(A3, BSTACK), np.linalg.solve(A3, BSTACK), atol=1e-12)
    close(la.solve(ASTACK, BVEC), np.linalg.solve(ASTACK, BVEC), atol=1e-12)
    close(la.inv(ASTACK), np.linalg.inv(ASTACK), atol=1e-12)
    close(la.det(ASTACK), np.linalg.det(ASTACK), rtol=1e-12)
    res = la.slogdet(CASES["logabsdet_negative_det"][1])
    ref = np.linalg.slogdet(CASES["logabsdet_negative_det"][1])
    assert to_np(res.sign) == ref.sign == -1
    close(res.logabsdet, ref.logabsdet, rtol=1e-12)
    sign, logabs = la.slogdet(ASTACK)
    close(sign, np.linalg.slogdet(ASTACK).sign, atol=0)
    close(logabs, np.linalg.slogdet(ASTACK).logabsdet, rtol=1e-12)
    s = spd(2, 3, 3)
    close(la.cholesky(s), np.linalg.cholesky(s), atol=1e-12)
    close(la.cholesky(s, upper=True), np.swapaxes(np.linalg.cholesky(s), -1, -2), atol=1e-12)


@pytest.mark.parametrize("ord_", [None, 2, 1, np.inf, -np.inf, 0, 3, 0.5, -2, np.int64(3)])
def test_vector_norm_values(ord_):
    x = normal(2, 5)
    close(la.norm(x[0], ord_), np.linalg.norm(x[0], ord_), rtol=1e-12)
    close(la.norm(x, ord_, axis=1, keepdims=True), np.linalg.norm(x, ord_, axis=1, keepdims=True), rtol=1e-12)


@pytest.mark.parametrize("ord_", [None, "fro", 1, -1, np.inf, -np.inf, 2, -2, "nuc"])
def test_matrix_norm_values(ord_):
    x = normal(3, 2, 4)
    close(la.norm(x[0], ord_), np.linalg.norm(x[0], ord_), rtol=1e-12)
    for axes, keep in [((1, 2), False), ((2, 0), True)]:
        close(la.norm(x, ord_, axis=axes, keepdims=keep), np.linalg.norm(x, ord_, axis=axes, keepdims=keep),
              rtol=1e-12)


def test_norm_of_all_entries_keepdims():
    x = normal(2, 3, 4)
    close(la.norm(x, keepdims=True), np.linalg.norm(x, keepdims=True), rtol=1e-12)


def test_integer_input_is_computed_in_float64():
    a = np.array([[2, 1], [1, 3]])
    assert la.det(a).dtype == np.float64
    close(la.det(a), 5.0)
    close(la.solve(a, np.array([1, 2])), np.linalg.solve(a, [1, 2]))


def test_float32_stays_float32():
    a, b = A3.astype(np.float32), B32.astype(np.float32)
    assert la.solve(a, b).dtype == np.float32
    assert gpuad.jacfwd(la.solve)(a, b).dtype == np.float32
    assert gpuad.jacrev(la.det)(a).dtype == np.float32
    assert gpuad.grad(la.norm)(BVEC.astype(np.float32)).dtype == np.float32


# ---------------------------------------------------------------- first and second order
@pytest.mark.parametrize("name", NAMES)
def test_first_order_against_finite_differences(name):
    f, x = CASES[name]
    ref = fd_jacobian(f, x)
    close(gpuad.jacfwd(f)(x), ref)
    close(gpuad.jacrev(f)(x), ref)


@pytest.mark.parametrize("name", NAMES)
def test_forward_equals_reverse(name):
    f, x = CASES[name]
    close(gpuad.jacfwd(f)(x), gpuad.jacrev(f)(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_second_order_against_finite_differences(name):
    f, x = CASES[name]
    hess = gpuad.hessian(f)(x)
    close(hess, fd_jacobian(gpuad.jacrev(f), x, eps=1e-5), rtol=1e-5, atol=1e-7)
    close(hess, gpuad.jacrev(gpuad.jacrev(f))(x), rtol=1e-10, atol=1e-11)
    close(hess, gpuad.jacfwd(gpuad.jacfwd(f))(x), rtol=1e-10, atol=1e-11)


def test_pinv_at_the_identity_is_the_inverse_derivative():
    """pinv = inv near I (full rank), so d pinv(A)[0, 1] / dA[0, 1] = -1 there (-(A^-1 E01 A^-1))."""
    for jac in (gpuad.jacfwd(la.pinv), gpuad.jacrev(la.pinv), gpuad.jit(gpuad.jacfwd(la.pinv))):
        close(jac(np.eye(3)), gpuad.jacfwd(la.inv)(np.eye(3)), atol=1e-14)
        assert abs(to_np(jac(np.eye(3)))[0, 1, 0, 1] + 1) < 1e-14


def test_pinv_derivative_along_a_path_of_constant_rank():
    """A(t) = B(t) C(t)^T of rank 2 in 4 x 4 with repeated singular values at t = 0 (B, C with
    orthonormal columns): the derivative of pinv along it equals the central difference."""
    b0, c0 = np.linalg.qr(normal(4, 2, seed=23))[0], np.linalg.qr(normal(4, 2, seed=24))[0]
    db, dc = normal(4, 2, seed=25), normal(4, 2, seed=26)

    def path(t):
        return (b0 + t * db) @ (c0 + t * dc).T
    da = db @ c0.T + b0 @ dc.T
    h = 1e-6
    want = (np.linalg.pinv(path(h), rcond=1e-10) - np.linalg.pinv(path(-h), rcond=1e-10)) / (2 * h)
    _, got = gpuad.jvp(lambda a: la.pinv(a, rcond=1e-10), (path(0.0),), (da,))
    close(got, want, rtol=1e-6, atol=1e-8)
    _, pullback = gpuad.vjp(lambda a: la.pinv(a, rcond=1e-10), path(0.0))
    u = normal(4, 4, seed=27)
    close(np.sum(to_np(pullback(gnp.asarray(u))[0]) * da), np.sum(u * want), rtol=1e-6)


@pytest.mark.parametrize("name", ["solve_wrt_a", "solve_stack", "inv", "det", "cholesky", "norm_3", "eig_vectors"])
def test_dot_product_forward_reverse(name):
    """<u, J v> from one jvp equals <J^T u, v> from one vjp."""
    f, x = CASES[name]
    v = normal(*np.shape(x), seed=7)
    y, jv = gpuad.jvp(f, (x,), (v,))
    u = normal(*np.shape(y), seed=8)
    _, pullback = gpuad.vjp(f, x)
    close(np.sum(u * to_np(jv)), np.sum(to_np(pullback(gnp.asarray(u))[0]) * v), rtol=1e-12)


def test_third_order_det():
    f = la.det
    close(gpuad.jacfwd(gpuad.hessian(f))(A3), fd_jacobian(gpuad.hessian(f), A3, eps=1e-5), rtol=1e-5, atol=1e-7)


def test_solve_both_arguments_at_once():
    ja_f, jb_f = gpuad.jacfwd(la.solve, argnums=(0, 1))(A3, B32)
    ja_r, jb_r = gpuad.jacrev(la.solve, argnums=(0, 1))(A3, B32)
    close(ja_f, fd_jacobian(lambda a: la.solve(a, B32), A3))
    close(jb_f, fd_jacobian(lambda b: la.solve(A3, b), B32))
    close(ja_f, ja_r, rtol=1e-12)
    close(jb_f, jb_r, rtol=1e-12)


# ---------------------------------------------------------------- closed forms
def test_det_gradient_is_det_times_inverse_transpose():
    expected = np.linalg.det(A3) * np.linalg.inv(A3).T
    close(gpuad.grad(la.det)(A3), expected, rtol=1e-12)
    close(gpuad.jacfwd(la.det)(A3), expected, rtol=1e-12)


def test_logdet_gradient_is_inverse_transpose():
    a = spd(4, 4)
    expected = np.linalg.inv(a).T
    close(gpuad.grad(lambda m: la.slogdet(m)[1])(a), expected, rtol=1e-12)
    # The Hessian of log det is -A^-T (x) A^-T: d2/dA_ij dA_kl = -(A^-1)_jk (A^-1)_li.
    ainv = np.linalg.inv(a)
    close(gpuad.hessian(lambda m: la.slogdet(m)[1])(a), -np.einsum("jk,li->ijkl", ainv, ainv), rtol=1e-10)


def test_inverse_jacobian_closed_form():
    ainv = np.linalg.inv(A3)
    # d(A^-1)_ij / dA_kl = -(A^-1)_ik (A^-1)_lj
    close(gpuad.jacrev(la.inv)(A3), -np.einsum("ik,lj->ijkl", ainv, ainv), rtol=1e-10)


def test_solve_jacobian_wrt_b_is_inverse():
    close(gpuad.jacfwd(lambda b: la.solve(A3, b))(BVEC), np.linalg.inv(A3), rtol=1e-12)


def test_cholesky_tangent_satisfies_product_rule():
    """For symmetric dA: dL is lower triangular and dL L^T + L dL^T = dA."""
    a = spd(4, 4)
    d = normal(4, 4, seed=9)
    d = d + d.T
    low, dlow = gpuad.jvp(la.cholesky, (a,), (d,))
    low, dlow = to_np(low), to_np(dlow)
    close(np.triu(dlow, 1), 0.0, atol=1e-13)
    close(dlow @ low.T + low @ dlow.T, d, atol=1e-12)


def test_norm_derivative_at_zero_is_zero_not_nan():
    z = np.zeros(3)
    for f in (la.norm, lambda x: la.norm(x, 3), lambda x: la.norm(x.reshape(1, 3), "fro")):
        close(gpuad.grad(f)(z), 0.0, atol=0)
        close(gpuad.jacfwd(f)(z), 0.0, atol=0)
        assert np.all(np.isfinite(to_np(gpuad.hessian(f)(z))))
    close(gpuad.grad(la.norm)(np.array([3.0, 4.0])), [0.6, 0.8], rtol=1e-12)


# ---------------------------------------------------------------- many directions, stacks, vmap
@pytest.mark.parametrize("fun", [la.inv, la.det, la.cholesky])
def test_jacobian_cost_does_not_grow_with_directions(fun):
    """jacfwd of an n x n input carries n^2 directions in one sweep: the number of primitive
    evaluations (one factorisation per solve, not one per direction) does not depend on n."""
    counts = {}
    for n in (2, 5):
        for mode in (gpuad.jacfwd, gpuad.jacrev):
            before = core.stats["evals"]
            mode(fun)(spd(n, n))
            counts[n, mode] = core.stats["evals"] - before
    assert counts[2, gpuad.jacfwd] == counts[5, gpuad.jacfwd]
    assert counts[2, gpuad.jacrev] == counts[5, gpuad.jacrev]


def test_stack_jacobian_is_block_diagonal():
    """Matrices of a stack do not interact: the Jacobian of det over a stack is diagonal in
    the stack index, each block the single-matrix gradient."""
    jac = gpuad.jacfwd(la.det)(ASTACK)
    for i in range(2):
        close(jac[i, i], gpuad.grad(la.det)(ASTACK[i]), rtol=1e-12)
        close(jac[i, 1 - i], 0.0, atol=0)


def test_vmap_solve_matches_stacked_solves():
    a_s, b_s = well(4, 3, 3, seed=10), normal(4, 3, seed=11)
    expected = np.stack([np.linalg.solve(a, b) for a, b in zip(a_s, b_s)])
    close(gpuad.vmap(la.solve)(a_s, b_s), expected, atol=1e-12)
    close(gpuad.vmap(la.solve, in_axes=(None, 0))(A3, b_s), np.linalg.solve(A3, b_s.T).T, atol=1e-12)
    close(gpuad.vmap(la.solve, in_axes=(0, None))(a_s, BVEC),
          np.stack([np.linalg.solve(a, BVEC) for a in a_s]), atol=1e-12)


@pytest.mark.parametrize("fun", [la.inv, la.det, la.cholesky, lambda a: la.slogdet(a)[0], la.norm])
def test_vmap_matches_loop(fun):
    a_s = spd(3, 4, 4, seed=12)
    close(gpuad.vmap(fun)(a_s), np.stack([to_np(fun(a)) for a in a_s]), atol=1e-12)


def test_vmap_of_jacobians_and_jacobian_of_vmap():
    a_s = well(3, 3, 3, seed=13)
    per_matrix = np.stack([to_np(gpuad.grad(la.det)(a)) for a in a_s])
    close(gpuad.vmap(gpuad.grad(la.det))(a_s), per_matrix, rtol=1e-12)
    close(gpuad.vmap(gpuad.jacfwd(la.det))(a_s), per_matrix, rtol=1e-12)
    solve_each = gpuad.vmap(lambda b: la.solve(A3, b))
    jac = gpuad.jacrev(solve_each)(BSTACK)
    close(jac, fd_jacobian(solve_each, BSTACK))
    close(gpuad.hessian(lambda b: gnp.sum(solve_each(b) ** 2))(BSTACK),
          fd_jacobian(gpuad.grad(lambda b: gnp.sum(solve_each(b) ** 2)), BSTACK, eps=1e-5), rtol=1e-5)


# ---------------------------------------------------------------- eigh, svd, qr and what is composed from them
def test_decompositions_match_numpy():
    a = sym(2, 4, 4)
    w, v = la.eigh(a)
    close(w, np.linalg.eigh(a).eigenvalues, atol=1e-12)
    close(np.abs(to_np(v)), np.abs(np.linalg.eigh(a).eigenvectors), atol=1e-12)  # up to sign
    close(la.eigvalsh(a), np.linalg.eigvalsh(a), atol=1e-12)
    for x in (normal(4, 2), normal(2, 4), normal(3, 3, 3)):
        u, s, vh = la.svd(x, full_matrices=False)
        close(s, np.linalg.svd(x, compute_uv=False), atol=1e-12)
        close(to_np(u) * to_np(s)[..., None, :] @ to_np(vh), x, atol=1e-12)
        close(la.pinv(x), np.linalg.pinv(x), atol=1e-12)
        close(la.matrix_rank(x), np.linalg.matrix_rank(x), atol=0)
    for x in (normal(4, 2), well(2, 3, 3), normal(2, 3, 5)):
        q, r = la.qr(x)
        close(np.abs(to_np(r)), np.abs(np.linalg.qr(x).R), atol=1e-12)
        close(to_np(q) @ to_np(r), x, atol=1e-12)
    close(la.matrix_rank(np.outer([1.0, 2.0, 3.0], [1.0, -1.0])), 1, atol=0)


@pytest.mark.parametrize("a", [normal(5, 2, seed=18), normal(2, 3, 5, seed=19)], ids=["tall", "wide_stack"])
def test_full_svd_matches_numpy_and_stays_orthonormal_to_second_order(a):
    ref = np.linalg.svd(a)
    for got, want in zip(la.svd(a), ref):
        close(got, want, atol=1e-12)
    for factor, full in ((lambda b: la.svd(b)[0], ref[0]), (lambda b: la.svd(b).Vh, ref[2])):
        gram = lambda b, f=factor: gnp.matmul(gnp.swapaxes(f(b), -1, -2), f(b))  # noqa: E731  (I near a)
        k, lead = full.shape[-1], a.shape[:-2]
        close(gpuad.jacfwd(gram)(a), np.zeros(lead + (k, k) + a.shape), atol=1e-12)
        close(gpuad.hessian(gram)(a), np.zeros(lead + (k, k) + a.shape * 2), atol=1e-10)


def test_composed_functions_match_numpy():
    a, b = normal(5, 3), normal(5, 2)
    for got, want in zip(la.lstsq(a, b), np.linalg.lstsq(a, b)):
        close(got, want, atol=1e-12)
    x, res, rank, s = la.lstsq(np.outer([1.0, 2.0, 3.0], [1.0, 1.0]), np.ones(3))
    ref = np.linalg.lstsq(np.outer([1.0, 2.0, 3.0], [1.0, 1.0]), np.ones(3))
    close(x, ref[0], atol=1e-12)
    assert to_np(res).shape == (0,) and rank == ref[2] == 1
    m = well(3, 3) / 3
    for n in (0, 1, 2, 5, -1, -3):
        close(la.matrix_power(m, n), np.linalg.matrix_power(m, n), rtol=1e-10, atol=1e-12)
    arrays = [normal(3), normal(3, 4), normal(4, 2), normal(2)]
    close(la.multi_dot(arrays), np.linalg.multi_dot(arrays), atol=1e-12)
    for p in (None, 2, -2, "fro", "nuc", 1, -1, np.inf, -np.inf):
        close(la.cond(well(2, 3, 3), p), np.linalg.cond(well(2, 3, 3), p), rtol=1e-10)


@pytest.mark.parametrize("ord_", [2, 1, np.inf, 0.5])
@pytest.mark.parametrize("axis", [None, 1, (0, 2), (-1, 0)])
def test_vector_norm_matches_numpy(ord_, axis):
    x = normal(2, 3, 4)
    for keep in (False, True):
        close(la.vector_norm(x, axis=axis, keepdims=keep, ord=ord_),
              np.linalg.vector_norm(x, axis=axis, keepdims=keep, ord=ord_), rtol=1e-12)


@pytest.mark.parametrize("ord_", ["fro", "nuc", 2, -2, 1, np.inf])
def test_matrix_norm_and_svdvals_match_numpy(ord_):
    x = normal(2, 3, 4)
    for keep in (False, True):
        close(la.matrix_norm(x, keepdims=keep, ord=ord_), np.linalg.matrix_norm(x, keepdims=keep, ord=ord_),
              rtol=1e-12)
    close(la.svdvals(x), np.linalg.svdvals(x), rtol=1e-12)


def test_eigenvalue_derivatives_are_finite_at_repeated_eigenvalues():
    """d w_i = v_i^T dA v_i; the eigenvectors' derivative is not defined there, the values' sum is."""
    g = gpuad.grad(lambda a: gnp.sum(la.eigvalsh(a)))(np.eye(3))
    close(g, np.eye(3), atol=1e-12)
    assert np.all(np.isfinite(to_np(gpuad.jacrev(la.eigvalsh)(np.eye(3)))))
    assert np.all(np.isfinite(to_np(gpuad.jacrev(lambda a: la.svd(a, compute_uv=False))(np.eye(3)))))


def test_eigenvector_jacobian_matches_the_closed_form():
    """dv_k = sum_{j != k} v_j (v_j^T dA v_k) / (w_k - w_j)."""
    a = sym(3, 3)
    w, v = np.linalg.eigh(a)
    expected = np.zeros((3, 3, 3, 3))
    for k in range(3):
        for j in range(3):
            if j != k:
                expected[:, k] += np.einsum("i,p,q->ipq", v[:, j], v[:, j], v[:, k]) / (w[k] - w[j])
    expected = 0.5 * (expected + np.swapaxes(expected, 2, 3))  # the input is symmetrised
    close(gpuad.jacfwd(lambda m: la.eigh(m).eigenvectors)(a), expected, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["eigh_vectors", "svd_u_tall", "svd_vh_wide", "qr_q", "pinv_tall", "cond",
                                  "matrix_power_minus_2", "lu_factor", "lu_solve", "cho_solve", "expm_squared",
                                  "expm_stack", "eig_vectors", "qr_wide_r_stack",
                                  "svd_full_vh_one_extra_stack", "solve_triangular_lower_trans_unit",
                                  "solve_triangular_stack_a", "solve_triangular_upper_unit_both"])
def test_decompositions_under_vmap_and_jit(name):
    f, x = CASES[name]
    xs = np.stack([x, x + 0.01 * normal(*np.shape(x), seed=20)])
    close(gpuad.vmap(f)(xs), np.stack([to_np(f(v)) for v in xs]), atol=1e-12)
    close(gpuad.vmap(gpuad.jacrev(f))(xs), np.stack([to_np(gpuad.jacfwd(f)(v)) for v in xs]), atol=1e-10)
    close(gpuad.jit(gpuad.jacfwd(f))(x), gpuad.jacfwd(f)(x), atol=1e-12)
    close(gpuad.jit(gpuad.hessian(f))(x), gpuad.hessian(f)(x), atol=1e-10)


# ---------------------------------------------------------------- factorisations of several results
_SEVERAL = {"eigh_both": ("eigh", 2), "eig_both": ("eig", 2), "svd_all_tall": ("svd", 3), "qr_both": ("qr", 2),
            "lu_factor_both": ("lu", 2), "det": ("slogdet", 2)}


@pytest.mark.parametrize("name", list(_SEVERAL))
def test_linearize_sweeps_the_factors_of_one_tape_equation_forward(name):
    """linearize records each factorisation once, an equation of several outputs on the tape, and
    sweeps it forward: the tangent jvp gives."""
    f, x = CASES[name]
    t = normal(*np.shape(x), seed=31)
    y, f_jvp = gpuad.linearize(f, x)
    want_y, want_t = gpuad.jvp(f, (gnp.asarray(x),), (gnp.asarray(t),))
    close(y, want_y, rtol=1e-12, atol=1e-12)
    close(f_jvp(gnp.asarray(t)), want_t, rtol=1e-10, atol=1e-12)


def test_a_loop_body_holding_a_factorisation():
    """A scan whose body factorises: the body's program holds an equation of several results,
    differentiated in both modes, compiled, and checked against finite differences."""
    def f(a):
        def body(c, x):
            w, v = la.eigh(c + x)
            return (v * gnp.sin(w)) @ gnp.swapaxes(v, -1, -2), gnp.sum(w * w)
        c, ys = gpuad.lax.scan(body, a, gnp.stack([a, 2 * a]))
        return gnp.sum(c) + gnp.sum(ys)
    a = sym(3, 3, seed=8)
    grad = gpuad.grad(f)(a)
    close(grad, fd_jacobian(f, a))
    close(gpuad.jacfwd(f)(a), grad, rtol=1e-10, atol=1e-12)
    close(gpuad.jit(gpuad.grad(f))(a), grad, rtol=1e-10, atol=1e-12)


def test_the_cost_model_counts_every_factor_of_one_call():
    """A factorisation is one CuPy step of its own (cuSOLVER's call, its workspace and info) that
    reads the matrix once and writes each factor once: eigh's w and V, svd's U, s and V."""
    a, w = sym(8, 8), 8 * 8  # w: the bytes of one vector of 8 values
    lowered = gpuad.jit(lambda m: la.eigh(m)).lower(a)
    assert lowered.launches == 1 + 3  # the symmetrising region (a + a^T) / 2, then eigh
    assert lowered.bytes_moved == 2 * a.nbytes + (a.nbytes + w + a.nbytes)
    svd = gpuad.jit(lambda m: linalg_ops.svd(m)).lower(a)
    assert svd.launches == 3 and svd.bytes_moved == a.nbytes + (a.nbytes + w + a.nbytes)


def test_det_factorises_once(monkeypatch):
    """det = sign * exp(log|det|) takes both results of one slogdet: one LU factorisation, eager and
    in its gradient."""
    calls, linalg = [], backends.xp().linalg  # the backend's (a strict-array run wraps numpy's)
    slogdet = linalg.slogdet

    def counted(a):
        calls.append(a.shape)
        return slogdet(a)
    monkeypatch.setattr(linalg, "slogdet", counted)
    close(la.det(A3), np.linalg.det(A3), rtol=1e-12)
    assert len(calls) == 1
    close(gpuad.grad(la.det)(A3), np.linalg.det(A3) * np.linalg.inv(A3).T, rtol=1e-12)
    assert len(calls) == 2


@pytest.mark.parametrize("a", [normal(5, 3, seed=29), normal(2, 2, 4, seed=30)], ids=["tall", "wide_stack"])
def test_a_full_svd_factorises_once(a, monkeypatch):
    """full_matrices=True of a non-square matrix: the reduced factors and the columns it adds come
    from one LAPACK factorisation (NumPy's own: the same columns), eager and in its derivative."""
    calls, linalg, ref = [], backends.xp().linalg, np.linalg.svd(a)
    svd = linalg.svd

    def counted(b, **params):
        calls.append(params)
        return svd(b, **params)
    monkeypatch.setattr(linalg, "svd", counted)
    for got, want in zip(la.svd(a), ref):
        close(got, want, atol=1e-12)
    assert len(calls) == 1 and calls[0]["full_matrices"]
    gpuad.jacfwd(lambda b: la.svd(b).U)(a)
    assert len(calls) == 2


@pytest.mark.parametrize("name", list(_SEVERAL))
@pytest.mark.parametrize("transform", [gpuad.jacfwd, gpuad.jacrev])
def test_a_factorisation_is_one_equation_of_several_results(name, transform):
    """Under jit, each factorisation is one equation making every factor (no packed array sliced
    apart), in the derivative's program too, and the program verifies."""
    f, x = CASES[name]
    prim, n = _SEVERAL[name]
    program = gpuad.jit(transform(f)).lower(x).program
    program.check()
    made = [eq for eq in program.equations if eq.prim is getattr(linalg_ops, prim)]
    assert len(made) == 1 and len(made[0].outs) == n, program.text()
    close(gpuad.jit(transform(f))(x), transform(f)(x), rtol=1e-12, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(_SEVERAL))
def test_factorisations_of_several_results_under_vmap_jit_and_hessian(name):
    f, x = CASES[name]
    xs = np.stack([x, x + 0.01 * normal(*np.shape(x), seed=30)])
    close(gpuad.vmap(f)(xs), np.stack([to_np(f(v)) for v in xs]), atol=1e-12)
    close(gpuad.jit(gpuad.vmap(gpuad.jacrev(f)))(xs), np.stack([to_np(gpuad.jacfwd(f)(v)) for v in xs]), atol=1e-10)
    scalar = lambda a: gnp.sum(gnp.sin(f(a)))  # noqa: E731
    hess = gpuad.jit(gpuad.hessian(scalar))(x)
    close(hess, gpuad.jacrev(gpuad.jacrev(scalar))(x), rtol=1e-9, atol=1e-10)
    close(hess, fd_jacobian(gpuad.grad(scalar), x, eps=1e-5), rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- triangular solves
def test_triangular_rules_solve_triangles_and_no_general_system(monkeypatch):
    """solve_triangular and cholesky's derivatives in each mode call the backend's triangular solve
    (BLAS trsm), never a general LU solve (O(n^3)): numpy.linalg.solve is not called at all."""
    def refused(*args, **kwargs):
        raise AssertionError("a general solve where a triangular one serves")
    calls = []
    triangular = type(backends.current()).solve_triangular

    def counted(self, a, b, **params):
        calls.append(params)
        return triangular(self, a, b, **params)
    monkeypatch.setattr(np.linalg, "solve", refused)
    monkeypatch.setattr(type(backends.current()), "solve_triangular", counted)
    s = spd(32, 32)  # at or above the order where the NumPy backend calls trsm (_TRSM_MIN_N)
    chol_sum = lambda a: gnp.sum(la.cholesky(a) ** 2)  # noqa: E731
    chol_solve = lambda a: gsl.solve_triangular(la.cholesky(a), normal(32), lower=True)  # noqa: E731
    for derivative in (gpuad.grad(chol_sum), gpuad.jacfwd(chol_sum), gpuad.jacrev(chol_solve),
                       gpuad.jacfwd(chol_solve), gpuad.jit(gpuad.grad(chol_sum))):
        derivative(s)
    assert calls and {p["lower"] for p in calls} == {True} and {p["transpose"] for p in calls} == {False, True}


def test_inverse_derivatives_reuse_the_inverse(monkeypatch):
    """inv's rules are GEMMs with the inverse it computed (-X dA X, -X^T ct X^T): no second
    factorisation (numpy.linalg.solve is not called), the closed form's values."""
    def refused(*args, **kwargs):
        raise AssertionError("a factorisation where the inverse serves")
    monkeypatch.setattr(np.linalg, "solve", refused)
    a, w = well(4, 4, seed=3), normal(4, 4, seed=4)
    x, wb = np.linalg.inv(a), gnp.asarray(w)
    close(gpuad.grad(lambda m: gnp.sum(wb * la.inv(m)))(a), -x.T @ w @ x.T, rtol=1e-12)
    close(gpuad.jvp(la.inv, (gnp.asarray(a),), (wb,))[1], -x @ w @ x, rtol=1e-12)
    close(gpuad.jit(gpuad.grad(lambda m: gnp.sum(wb * la.inv(m))))(a), -x.T @ w @ x.T, rtol=1e-12)


def test_triangular_solve_without_scipy_falls_back_to_a_general_solve(monkeypatch):
    """SciPy is an optional extra: without it the NumPy backend solves the triangle by LU, the same values
    (n = 32: with SciPy, trsm computes `want`)."""
    from gpuad.backends import numpy as numpy_backend

    def missing(xp, submodule, names):
        def raising(*args, **kwargs):
            raise ImportError("no scipy")
        return {name: raising for name in names}
    a, b = well(2, 32, 32, seed=5), normal(2, 32, 3, seed=6)
    want = {(lower, trans, unit): gsl.solve_triangular(a, b, lower=lower, trans=trans, unit_diagonal=unit)
            for lower in (False, True) for trans in (0, 1) for unit in (False, True)}
    monkeypatch.setattr(numpy_backend, "scipy_functions", missing)
    for (lower, trans, unit), x in want.items():
        close(gsl.solve_triangular(a, b, lower=lower, trans=trans, unit_diagonal=unit), x, atol=1e-12)
        close(x[0], scipy.linalg.solve_triangular(a[0], b[0], lower=lower, trans=trans, unit_diagonal=unit),
              atol=1e-12)


@pytest.mark.parametrize("kw", [{}, {"lower": True}, {"trans": 1}, {"trans": "T", "lower": True, "unit_diagonal": True},
                                {"unit_diagonal": True}])
def test_trsm_path_derivatives_match_the_other_mode_and_differences(kw):
    """At n = 32 the NumPy backend calls trsm (smaller orders take the batched LU): a gradient in a and b
    against a JVP and central differences along one direction."""
    a, b, w = well(32, 32, seed=9), normal(32, 2, seed=10), gnp.asarray(normal(32, 2, seed=11))
    da, db = normal(32, 32, seed=12), normal(32, 2, seed=13)
    f = lambda a, b: gnp.sum(w * gsl.solve_triangular(a, b, **kw))  # noqa: E731
    ga, gb = (to_np(g) for g in gpuad.grad(f, argnums=(0, 1))(a, b))
    along = np.sum(ga * da) + np.sum(gb * db)
    close(along, to_np(gpuad.jvp(f, (gnp.asarray(a), gnp.asarray(b)), (gnp.asarray(da), gnp.asarray(db)))[1]),
          rtol=1e-10)
    close(along, (to_np(f(a + 1e-6 * da, b + 1e-6 * db)) - to_np(f(a - 1e-6 * da, b - 1e-6 * db))) / 2e-6, rtol=1e-6)


def test_cholesky_gradient_of_a_large_matrix_matches_the_other_mode():
    """The triangular-solve rules at a size where the triangles' structure matters (n = 40)."""
    s = spd(40, 40, seed=7)
    w = gnp.asarray(normal(40, 40, seed=8))
    f = lambda a: gnp.sum(w * la.cholesky(a))  # noqa: E731
    g = to_np(gpuad.grad(f)(s))
    e = np.zeros((40, 40))
    e[3, 5] = e[5, 3] = 1.0
    close(np.sum(g * e), to_np(gpuad.jvp(f, (s,), (e,))[1]), rtol=1e-10)
    close(np.sum(g * e), (to_np(f(s + 1e-6 * e)) - to_np(f(s - 1e-6 * e))) / 2e-6, rtol=1e-6)


# ---------------------------------------------------------------- gpuad.scipy.linalg
def test_scipy_linalg_matches_scipy():
    a, b = well(4, 4), normal(4, 2)
    for kw in ({}, {"lower": True}, {"trans": 1}, {"trans": "C", "lower": True, "unit_diagonal": True}):
        close(gsl.solve_triangular(a, b, **kw), scipy.linalg.solve_triangular(a, b, **kw), atol=1e-12)
    s = spd(4, 4)
    for lower in (False, True):
        c, low = gsl.cho_factor(s, lower=lower)
        ref = scipy.linalg.cho_factor(s, lower=lower)[0]
        close(c, np.tril(ref) if lower else np.triu(ref), atol=1e-12)
        close(gsl.cho_solve((c, low), b), scipy.linalg.cho_solve(scipy.linalg.cho_factor(s, lower=lower), b),
              atol=1e-12)
    for x in (normal(4, 4), normal(2, 3, 3)):
        lu, piv = gsl.lu_factor(x)
        ref = scipy.linalg.lu_factor(x)
        close(lu, ref[0], atol=1e-12)
        np.testing.assert_array_equal(to_np(piv), ref[1])
    for trans in (0, 1, 2):
        close(gsl.lu_solve(gsl.lu_factor(a), b, trans=trans),
              scipy.linalg.lu_solve(scipy.linalg.lu_factor(a), b, trans=trans), atol=1e-12)
    for m in (normal(3, 3) / 10, normal(3, 3), normal(3, 3) * 6, normal(2, 3, 3)):
        close(gsl.expm(m), scipy.linalg.expm(m), rtol=1e-11, atol=1e-12)
    close(gsl.expm(np.zeros((2, 2), dtype=int)), np.eye(2), atol=0)
    blocks = (np.ones((2, 2)), 3.0, [1.0, 2.0], np.zeros((0, 2)))
    close(gsl.block_diag(*blocks), scipy.linalg.block_diag(*blocks), atol=0)
    assert to_np(gsl.block_diag()).shape == scipy.linalg.block_diag().shape


@pytest.mark.slow
@pytest.mark.parametrize("a", [normal(5, 3), np.outer([1.0, 2.0, 3.0, 4.0], [1.0, 1.0]), normal(2, 3)],
                         ids=["tall", "rank_deficient", "wide"])
def test_lstsq_under_jit_and_vmap_has_jax_residuals(a):
    """Rank unknown while tracing, or batched: rank an integer array, residuals of a column's length,
    0 where NumPy's are empty; x, rank and s as NumPy's, and derivatives as eager ones."""
    b = normal(a.shape[0], 2, seed=3)
    x, res, rank, s = np.linalg.lstsq(a, b)
    jax_res = res if res.size else np.zeros(2)
    for got in (gpuad.jit(la.lstsq)(a, b), [v[0] for v in gpuad.vmap(la.lstsq)(a[None], b[None])]):
        close(got[0], x, atol=1e-12)
        close(got[1], jax_res, atol=1e-10)
        assert int(to_np(got[2])) == rank
        close(got[3], s, atol=1e-12)
    f = lambda a: la.lstsq(a, b)[1]  # noqa: E731  (compiled: the rank of the traced a is not known)
    close(gpuad.jit(gpuad.jacrev(f))(a), gpuad.jacfwd(f)(a) if res.size else np.zeros((2,) + a.shape), atol=1e-10)


@pytest.mark.slow
def test_expm_under_vmap_and_jit():
    """Each example, and each compiled call, squares as often as its own norm needs."""
    ms = normal(3, 2, 2) * np.array([0.1, 1.0, 8.0])[:, None, None]
    close(gpuad.vmap(gsl.expm)(ms), scipy.linalg.expm(ms), rtol=1e-11, atol=1e-12)
    close(gpuad.vmap(gpuad.jacfwd(gsl.expm))(ms), np.stack([to_np(gpuad.jacrev(gsl.expm)(m)) for m in ms]),
          rtol=1e-9, atol=1e-10)
    compiled = gpuad.jit(gsl.expm)
    for m in (*ms, normal(3, 3) * 30, np.zeros((2, 2))):  # 0 to 7 squarings, one program per shape
        close(compiled(m), scipy.linalg.expm(m), rtol=1e-11, atol=1e-12)
    close(compiled(ms), scipy.linalg.expm(ms), rtol=1e-11, atol=1e-12)
    close(gpuad.jit(gpuad.jacrev(gsl.expm))(ms[2]), gpuad.jacfwd(gsl.expm)(ms[2]), rtol=1e-10, atol=1e-10)


def test_scipy_linalg_errors():
    with pytest.raises(ValueError, match="trans"):
        gsl.solve_triangular(A3, BVEC, trans=3)
    with pytest.raises(ValueError, match="square"):
        gsl.solve_triangular(np.ones((3, 2)), BVEC)
    with pytest.raises(ValueError, match=r"b of shape \(4,\) does not fit a of shape \(3, 3\)"):
        gsl.solve_triangular(A3, normal(4))
    with pytest.raises(ValueError, match="stack axes"):
        gsl.solve_triangular(ASTACK, normal(3, 3, 2))
    with pytest.raises(ValueError, match="square"):
        gsl.expm(np.ones(3))
    with pytest.raises(ValueError, match="at most 2"):
        gsl.block_diag(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="square"):
        gsl.lu_factor(np.ones((2, 3)))
    with pytest.raises(ValueError, match="trans"):
        gsl.lu_solve(gsl.lu_factor(A3), BVEC, trans="X")
    with pytest.raises(AttributeError, match="gpuad.scipy.linalg has no 'schur'"):
        gsl.schur  # noqa: B018


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("fun", [la.inv, la.det, la.cholesky, lambda a: la.slogdet(a), lambda a: la.solve(a, BVEC)])
def test_non_square_matrix_is_a_value_error(fun):
    with pytest.raises(ValueError, match="square"):
        fun(np.ones((3, 2)))
    with pytest.raises(ValueError, match="square"):
        fun(np.ones(3))


def test_solve_shape_errors():
    with pytest.raises(ValueError, match="does not fit"):
        la.solve(A3, np.ones(4))
    with pytest.raises(ValueError, match="does not fit"):
        la.solve(A3, np.ones((4, 2)))
    with pytest.raises(ValueError, match="does not fit"):
        la.solve(A3, 1.0)
    with pytest.raises(ValueError, match="do not broadcast"):
        la.solve(well(2, 3, 3), np.ones((3, 3, 1)))


def test_decomposition_errors():
    with pytest.raises(NotImplementedError, match="mode 'raw'"):
        la.qr(normal(3, 2), mode="raw")
    with pytest.raises(ValueError, match="square"):
        la.eigh(normal(3, 2))
    with pytest.raises(ValueError, match="UPLO"):
        la.eigh(A3, UPLO="X")
    with pytest.raises(ValueError, match="matrix"):
        la.svd(np.ones(3))
    with pytest.raises(TypeError, match="integer"):
        la.matrix_power(A3, 1.5)
    with pytest.raises(ValueError, match="at least two"):
        la.multi_dot([A3])
    with pytest.raises(ValueError, match="2-D"):
        la.multi_dot([A3, np.ones((3, 3, 3)), A3])
    with pytest.raises(ValueError, match="lstsq"):
        la.lstsq(A3, np.ones(4))
    with pytest.raises(ValueError, match="both"):
        la.pinv(A3, rcond=1e-3, rtol=1e-3)
    with pytest.raises(ValueError, match="square"):
        la.eig(normal(3, 2))


def test_eig_matches_numpy_and_missing_linalg_names_say_so():
    for a in (real_eig(4, 4, seed=3), real_eig(2, 3, 3, seed=6)):
        w, v = la.eig(a)
        ref = np.linalg.eig(a)
        close(w, ref.eigenvalues, rtol=1e-12)
        close(v, ref.eigenvectors, atol=1e-12)
        close(la.eigvals(a), ref.eigenvalues, rtol=1e-12)
    rotation = np.array([[0.0, -1.0], [1.0, 0.0]])  # eigenvalues +-i
    for run in (la.eigvals, gpuad.jit(la.eigvals)):
        close(run(rotation), np.linalg.eigvals(rotation), atol=1e-15)
    with pytest.raises(AttributeError, match="gpuad.numpy.linalg has no 'tensorsolve' yet.*numpy.linalg.tensorsolve"):
        la.tensorsolve  # noqa: B018


def test_norm_errors():
    with pytest.raises(ValueError, match="not supported"):
        la.norm(np.ones((2, 2)), "nucular")
    with pytest.raises(ValueError, match="not supported"):
        la.norm(np.ones((2, 2)), 3)
    with pytest.raises(ValueError, match="vector norm"):
        la.norm(np.ones(3), "fro")
    with pytest.raises(ValueError, match="1-D or 2-D"):
        la.norm(np.ones((2, 2, 2)), 1)
    with pytest.raises(ValueError, match="out of bounds"):
        la.norm(np.ones(3), axis=1)
    with pytest.raises(ValueError, match="int or a pair"):
        la.norm(np.ones((2, 2, 2)), axis=(0, 1, 2))
    with pytest.raises(ValueError, match="duplicate"):
        la.norm(np.ones((2, 2)), axis=(1, -1))


@pytest.mark.parametrize("dtype", [np.float64, np.complex128, np.float32, np.complex64])
def test_a_compiled_solve_calls_lapack_at_once_and_still_raises_on_a_singular_matrix(dtype, monkeypatch):
    """A compiled solve of one system skips numpy.linalg.solve's per-call checks (its cost on a small
    system: bench/losses.py newton_stiff) for SciPy's gesv, and gives NumPy's values in C order; a
    stack takes NumPy's path; a singular matrix raises LinAlgError either way."""
    if backends.xp() is not np:
        pytest.skip("the NumPy backend's lowering, with numpy itself as its array module")
    rng = np.random.default_rng(4)
    a = (rng.normal(size=(2, 4, 4)) + 4 * np.eye(4)).astype(dtype)
    b = rng.normal(size=(2, 4, 3)).astype(dtype)
    f = gpuad.jit(lambda a, b: gnp.linalg.solve(a, b) * 2.0)
    numpys = np.linalg.solve
    calls = []
    monkeypatch.setattr(np.linalg, "solve", lambda *args: calls.append(1) or numpys(*args))
    for a_, b_, by_numpy in ((a[0], b[0], False), (a, b, True)):
        want = numpys(a_, b_) * 2.0
        calls.clear()
        got = f(a_, b_)
        assert got.dtype == want.dtype and got.flags.c_contiguous
        np.testing.assert_allclose(to_np(got), want, rtol=1e-4 if dtype in (np.float32, np.complex64) else 1e-13)
        assert bool(calls) == by_numpy
        singular = a_.copy()
        singular[..., 3, :] = singular[..., 0, :]  # two equal rows
        with pytest.raises(np.linalg.LinAlgError, match="Singular"):
            f(singular, b_)


def test_a_compiled_solve_without_scipy_takes_numpys_path(monkeypatch):
    if backends.xp() is not np:
        pytest.skip("the NumPy backend's lowering, with numpy itself as its array module")
    monkeypatch.setitem(sys.modules, "scipy.linalg.lapack", None)  # importing it raises ImportError
    a, b = normal(3, 3, seed=1) + 3 * np.eye(3), normal(3, 2, seed=2)
    np.testing.assert_allclose(to_np(gpuad.jit(gnp.linalg.solve)(a, b)), np.linalg.solve(a, b), rtol=1e-13)


def test_a_compiled_program_moves_by_the_arrays_methods(monkeypatch):
    """The views a compiled solve reads (its matrix transposed, its vector as a column) are steps
    calling the arrays' own methods, not NumPy's function wrappers, and equal eager's values."""
    if backends.backend() != "numpy":
        pytest.skip("the NumPy backend's steps")
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(5, 5)) + 5 * np.eye(5), rng.normal(size=5)
    f = gpuad.jit(lambda a, b: b - gnp.linalg.solve(a.T, b))
    f(a, b)  # traced and planned with NumPy's functions in place
    wrapped = []
    for name in ("reshape", "transpose"):
        numpys = getattr(np, name)
        monkeypatch.setattr(np, name, lambda *args, numpys=numpys, **kw: wrapped.append(1) or numpys(*args, **kw))
    np.testing.assert_allclose(to_np(f(a, b)), b - np.linalg.solve(a.T, b), rtol=1e-13)
    assert not wrapped


@pytest.mark.parametrize("order,dtype", [("C", np.float64), ("F", np.float64), ("C", np.complex128)])
def test_triangular_solves_from_the_order_where_trsm_serves_match_scipy(order, dtype):
    """From n = _TRSM_MIN_N the NumPy backend calls BLAS trsm on the C-ordered arrays read as
    Fortran-ordered transposes: every flag, a stack, right-hand sides in either order, complex
    values (transposed, never conjugated), values as SciPy's; a zero on the diagonal raises as
    SciPy's solve_triangular does."""
    a = np.stack([np.tril(normal(40, 40, seed=9)), np.triu(normal(40, 40, seed=10))]) + 6 * np.eye(40)
    b = np.asarray(normal(2, 40, 3, seed=11), order=order)
    if dtype == np.complex128:
        a, b = a + 1j * normal(2, 40, 40, seed=12), b - 2j * normal(2, 40, 3, seed=13)
    for lower in (True, False):
        for trans in (0, 1):
            for unit in (False, True):
                kw = dict(lower=lower, trans=trans, unit_diagonal=unit)
                x = to_np(gsl.solve_triangular(gnp.asarray(a), gnp.asarray(b), **kw))
                for k in range(2):
                    close(x[k], scipy.linalg.solve_triangular(a[k], b[k], **kw), rtol=1e-9, atol=1e-12)
    singular = a[0].copy()
    singular[7, 7] = 0.0
    with pytest.raises(np.linalg.LinAlgError, match="singular"):
        gsl.solve_triangular(gnp.asarray(singular), gnp.asarray(b[0]), lower=True)
