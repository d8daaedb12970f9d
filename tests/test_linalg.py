"""gpuad.numpy.linalg: values against numpy.linalg, derivatives against central finite
differences (first and second order), against each other (jacfwd == jacrev), against closed
forms, under vmap, with many directions at once, and on stacks of matrices."""
import numpy as np
import pytest

import gpuad
import gpuad.numpy as gnp
from gpuad import backends, core

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


def to_np(x):
    """A result of the active backend (NumPy or CuPy) as a NumPy array."""
    return np.asarray(backends.current().to_numpy(x))


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
}
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


@pytest.mark.parametrize("ord_", [None, "fro", 1, -1, np.inf, -np.inf])
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


@pytest.mark.parametrize("name", ["solve_wrt_a", "solve_stack", "inv", "det", "cholesky", "norm_3"])
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


def test_norm_errors():
    with pytest.raises(ValueError, match="not supported"):
        la.norm(np.ones((2, 2)), "nuc")
    with pytest.raises(ValueError, match="not supported"):
        la.norm(np.ones((2, 2)), 2)
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
