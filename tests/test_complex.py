"""Complex values under every transform, checked against central differences taken along the real
and the imaginary part of each input (docs/complex.md states the conventions, which are JAX's):

- jvp is the R-linear tangent map: for a tangent v of z, J_x Re(v) + J_y Im(v), with J_x and J_y
  the derivatives along Re z and Im z (for holomorphic f, J_y = i J_x and this is f'(z) v);
- vjp applies its transpose for the pairing Re(sum u w), never the adjoint: the cotangent of z
  is Re(u . J_x) - i Re(u . J_y), of a real input Re(u . J_x);
- so grad of a real f is df/dx - i df/dy (jax.grad(lambda z: abs(z) ** 2)(1 + 2j) == 2 - 4j);
- jacfwd / jacrev / hessian with holomorphic=True give f'(z) (J_x); without it, jacfwd refuses
  complex inputs and jacrev and grad complex outputs, as JAX does.
"""
import numpy as np
import pytest
from helpers import assert_close, check_complex, complex_partials, crandom, to_np

import gpuad
import gpuad.numpy as gnp
from gpuad.ops import table

TOL = 1e-7


def check_holomorphic(f, z, tol=TOL):
    """f is holomorphic at z (J_y = i J_x), and jacfwd/jacrev(holomorphic=True) give J_x."""
    Jx, Jy = complex_partials(f, (z,), 0)
    assert_close(Jy, 1j * Jx, 1e-6, 1e-6, "the differences say f is not holomorphic here")
    for jac in (gpuad.jacfwd, gpuad.jacrev, gpuad.jacobian):
        assert_close(jac(f, holomorphic=True)(z), Jx, tol, tol, jac.__name__)


# ---------------------------------------------------------------- the conventions, by hand
def test_grad_of_a_real_function_is_jax_s():
    assert to_np(gpuad.grad(lambda z: gnp.abs(z) ** 2)(np.complex128(1 + 2j))) == 2 - 4j


def test_the_vjp_is_the_transpose_not_the_adjoint():
    z = np.complex128(1 + 2j)
    (c,) = gpuad.vjp(gnp.sin, z)[1](np.complex128(1 + 0j))
    assert_close(c, np.cos(z), 1e-15, 1e-15)            # cos(z), not conj(cos(z))
    assert_close(gpuad.vjp(gnp.real, z)[1](np.float64(1.0))[0], 1 + 0j, 0, 0)
    assert_close(gpuad.vjp(gnp.imag, z)[1](np.float64(1.0))[0], -1j, 0, 0)
    assert_close(gpuad.vjp(gnp.conj, z)[1](np.complex128(1 + 2j))[0], 1 - 2j, 0, 0)
    # a real input's cotangent is the real part: Re((1 + 2j)(1 + 1j)) = -1
    assert_close(gpuad.vjp(lambda x: x * (1 + 2j), np.float64(1.0))[1](np.complex128(1 + 1j))[0], -1.0, 0, 0)


def test_abs_at_zero_has_derivative_zero():
    """As in JAX (|z| is not differentiable at 0; its derivative there is taken as 0, not NaN)."""
    assert to_np(gpuad.grad(gnp.abs)(np.complex128(0j))) == 0
    assert to_np(gpuad.jvp(gnp.abs, (np.complex128(0j),), (np.complex128(1 + 1j),))[1]) == 0


# ---------------------------------------------------------------- the holomorphic rows
HOLOMORPHIC = [r for r in table.DIFFERENTIABLE if r.name not in table.REAL_ONLY]


@pytest.mark.parametrize("row", HOLOMORPHIC, ids=lambda r: r.name)
def test_holomorphic_rows(row):
    """Each row's partials are the complex derivatives of NumPy's principal branches (arccosh's
    where Re z < 0 too: JAX's 1 / sqrt(z^2 - 1) has the wrong sign there)."""
    ours, numpys = getattr(gnp, row.name), getattr(np, row.name)
    fs = [(ours, numpys)]
    if len(row.args) == 2:  # each argument complex in turn, the other a complex constant
        w = crandom((4,), 7)
        fs = [(lambda z: ours(z, w), lambda z: numpys(z, w)), (lambda z: ours(w, z), lambda z: numpys(w, z))]
    z = crandom((4,), 3)
    for f, ref in fs:
        assert_close(f(z), ref(z), 1e-14, 1e-14, "value")
        check_holomorphic(f, z)
        check_complex(f, (z,))


# gpuad.numpy composes abs, maximum and minimum of complex values from other primitives
@pytest.mark.parametrize("name", sorted(table.REAL_ONLY - {"abs", "maximum", "minimum"} - table.SPECIAL_NAMES))
def test_real_only_rows_refuse_complex_values_under_derivatives(name):
    row = table.ROWS[name]
    z = crandom((3,), 1)
    args = (z,) if len(row.args) == 1 else (z, z)
    with pytest.raises(TypeError, match=f"differentiates {name} of real values only, and got complex128"):
        gpuad.jvp(lambda z: getattr(gnp, name)(*((z,) * len(args))), (z,), (z,))


# ---------------------------------------------------------------- linear algebra
A = crandom((3, 3), 2) + 3 * np.eye(3)
LINALG = {
    "solve": lambda a: gnp.linalg.solve(a, gnp.linalg.inv(a.T) @ gnp.arange(1.0, 4.0)),
    "inv": lambda a: gnp.linalg.inv(a * a),
    "det": lambda a: gnp.linalg.det(a) * a,
    "logdet": lambda a: gnp.log(gnp.linalg.det(a[:2, :2] + 1)),
}


@pytest.mark.parametrize("name", sorted(LINALG))
def test_holomorphic_linear_algebra(name):
    check_holomorphic(LINALG[name], A)
    check_complex(LINALG[name], (A,))


def test_slogdet_of_complex_matrices():
    """The sign is the phase det / |det|, which moves with the matrix (not constant as for real ones)."""
    sign, logabs = gnp.linalg.slogdet(A)
    want = np.linalg.slogdet(A)
    assert_close(sign, want[0], 1e-14, 1e-14)
    assert_close(logabs, want[1], 1e-14, 1e-14)
    check_complex(lambda a: gnp.linalg.slogdet(a)[0], (A,))
    check_complex(lambda a: gnp.linalg.slogdet(a)[1], (A,))
    check_complex(lambda a, b: gnp.linalg.solve(a, b), (A.real, crandom((3, 2), 4)))  # a real matrix


@pytest.mark.parametrize("ord,axis", [(None, None), (1, 0), (np.inf, 1), (0.5, None), ("fro", (0, 1)), (1, (1, 0))])
def test_norms_of_complex_values_are_norms_of_their_moduli(ord, axis):
    z = A[:, :2] if axis is not None or ord is None else A[:, 0]
    assert_close(gnp.linalg.norm(z, ord, axis), np.linalg.norm(z, ord, axis), 1e-14, 1e-14)
    check_complex(lambda z: gnp.linalg.norm(z, ord, axis), (z,))


def test_cholesky_of_hermitian_matrices():
    """A function of the Hermitian part (a + a^H) / 2, as jax.numpy.linalg.cholesky's: not holomorphic."""
    h = A @ A.conj().T + np.eye(3)
    assert_close(gnp.linalg.cholesky(h), np.linalg.cholesky(h), 1e-14, 1e-14)
    check_complex(gnp.linalg.cholesky, (h,))
    check_complex(lambda a: gnp.linalg.cholesky(a @ a.conj().T + 2 * gnp.eye(3), upper=True), (A,))
    check_complex(gpuad.grad(lambda a: gnp.sum(gnp.abs(gnp.linalg.cholesky(a)) ** 2)), (h,), tol=1e-6)


def test_eigh_of_hermitian_matrices():
    """Eigenvectors are defined up to a phase each, so only functions that do not see the phases are
    checked: the eigenvalues (real), and a matrix function V f(w) V^H."""
    h = A @ A.conj().T + np.eye(3)
    w, v = gnp.linalg.eigh(h)
    assert to_np(w).dtype == np.float64
    assert_close(w, np.linalg.eigvalsh(h), 1e-13, 1e-13)
    assert_close((v * w) @ v.conj().T, h, 1e-13, 1e-13)
    check_complex(gnp.linalg.eigvalsh, (h,), tol=1e-6)
    check_complex(lambda a: (lambda w, v: (v * gnp.sin(w)) @ v.conj().T)(*gnp.linalg.eigh(a)), (h,), tol=1e-6)


ROTATING = np.array([[0.5, -2.0, 0.3], [1.5, 0.2, -0.4], [0.1, 0.7, 1.0]])  # real, eigenvalues 1.0.., 0.35 +- 1.7i


@pytest.mark.parametrize("a", [A, ROTATING], ids=["complex", "real_with_complex_eigenvalues"])
def test_eig_of_general_matrices(a):
    """Each eigenvector's phase is free, so only what does not see it is checked: the eigenvalues
    (holomorphic in a complex matrix), the moduli |V| (the columns have unit norm) and the matrix
    function V diag(exp(w)) V^-1."""
    w, v = gnp.linalg.eig(a)
    ref = np.linalg.eigvals(a)
    assert to_np(w).dtype == np.complex128
    assert_close(np.sort_complex(to_np(w)), np.sort_complex(ref), 1e-13, 1e-13)
    assert_close((v * w) @ gnp.linalg.inv(v), a, 1e-13, 1e-13)
    check_complex(gnp.linalg.eigvals, (a,), tol=1e-6)
    check_complex(lambda a: gnp.abs(gnp.linalg.eig(a).eigenvectors), (a,), tol=1e-6)
    check_complex(lambda a: (lambda w, v: (v * gnp.exp(w)) @ gnp.linalg.inv(v))(*gnp.linalg.eig(a)), (a,), tol=1e-6)
    if a.dtype.kind == "c":
        check_holomorphic(gnp.linalg.eigvals, a, tol=1e-6)
    moduli = gpuad.jacrev(lambda a: gnp.abs(gnp.linalg.eig(a).eigenvectors))
    assert_close(gpuad.jit(moduli)(a), moduli(a), 1e-12, 1e-12, "jit")


@pytest.mark.parametrize("shape", [(3, 3), (4, 2), (2, 4), (2, 3, 2)], ids=["square", "tall", "wide", "stack"])
def test_qr_of_complex_matrices(shape):
    """R's diagonal is real (LAPACK's, and JAX's rule keeps it so), which leaves Q and R unique
    nearby: both are checked, as is Q^H Q = I along a tangent (its derivative is skew-Hermitian)."""
    a = crandom(shape, 21)
    q, r = gnp.linalg.qr(a)
    want = np.linalg.qr(a)
    assert_close(q, want.Q, 1e-13, 1e-13)
    assert_close(r, want.R, 1e-13, 1e-13)
    check_complex(lambda a: gnp.linalg.qr(a).Q, (a,), tol=1e-6)
    check_complex(lambda a: gnp.linalg.qr(a).R, (a,), tol=1e-6)
    check_complex(lambda a: gnp.abs(gnp.linalg.qr(a).R) ** 2, (a.real,), tol=1e-6)  # a real matrix

    def qh_q(a):
        q = gnp.linalg.qr(a).Q
        return gnp.swapaxes(q.conj(), -1, -2) @ q

    assert_close(gpuad.jvp(qh_q, (a,), (crandom(shape, 22),))[1], np.zeros(qh_q(a).shape), 1e-12, 1e-12)


@pytest.mark.parametrize("shape", [(4, 2), (2, 3, 2), (2, 4)], ids=["tall", "stack", "wide"])
def test_pinv_and_lstsq_of_complex_matrices(shape):
    """pinv = V S^-1 U^H is unique (no phase), so it is checked entry by entry; lstsq's solution
    and residuals (real, sums of |r|^2) too, with a real b against a complex matrix."""
    a = crandom(shape, 51)
    assert_close(gnp.linalg.pinv(a), np.linalg.pinv(a), 1e-13, 1e-13)
    check_complex(gnp.linalg.pinv, (a,), tol=1e-6)
    if len(shape) == 2:
        b = crandom(shape[:1], 52)
        x, res, rank, s = gnp.linalg.lstsq(a, b)
        want = np.linalg.lstsq(a, b)
        for got, ref in zip((x, res, s), (want[0], want[1], want[3])):
            assert_close(got, ref, 1e-13, 1e-13)
            assert to_np(got).dtype == ref.dtype
        assert rank == want[2]
        check_complex(lambda a, b: gnp.linalg.lstsq(a, b)[0], (a, b.real), tol=1e-6)
        if shape[0] > shape[1]:
            check_complex(lambda a, b: gnp.linalg.lstsq(a, b)[1], (a, b), tol=1e-6)


@pytest.mark.parametrize("ord", [2, -2, "nuc"])
def test_norms_of_the_singular_values(ord):
    z = crandom((3, 2), 41)
    assert_close(gnp.linalg.norm(z, ord), np.linalg.norm(z, ord), 1e-14, 1e-14)
    check_complex(lambda z: gnp.linalg.norm(z, ord), (z,), tol=1e-6)
    check_complex(lambda a: gnp.linalg.cond(a, ord), (A,), tol=1e-6)
    rank_one = np.outer(z[:, 0], z[:, 1].conj())
    assert int(gnp.linalg.matrix_rank(rank_one)) == np.linalg.matrix_rank(rank_one) == 1


@pytest.mark.parametrize("shape", [(3, 3), (4, 2), (2, 4), (2, 2, 3)], ids=["square", "tall", "wide", "stack"])
def test_svd_of_complex_matrices(shape):
    """Each pair of singular vectors shares a free phase, so what is checked does not see it: the
    singular values, |U|, |V|, U diag(sin s) V^H and, with full_matrices=True, the projector on the
    complement that the extra columns span."""
    a = crandom(shape, 31)
    u, s, vh = gnp.linalg.svd(a, full_matrices=False)
    assert to_np(s).dtype == np.float64
    assert_close(s, np.linalg.svd(a, compute_uv=False), 1e-13, 1e-13)
    assert_close((u * s[..., None, :]) @ vh, a, 1e-13, 1e-13)
    check_complex(lambda a: gnp.linalg.svd(a, compute_uv=False), (a,), tol=1e-6)
    check_complex(lambda a: gnp.abs(gnp.linalg.svd(a, full_matrices=False).U), (a,), tol=1e-6)
    check_complex(lambda a: gnp.abs(gnp.linalg.svd(a, full_matrices=False).Vh), (a,), tol=1e-6)
    check_complex(lambda a: (lambda u, s, vh: (u * gnp.sin(s)[..., None, :]) @ vh)(
        *gnp.linalg.svd(a, full_matrices=False)), (a,), tol=1e-6)
    u_full, _, vh_full = gnp.linalg.svd(a)
    assert_close(gnp.swapaxes(u_full.conj(), -1, -2) @ u_full, np.broadcast_to(np.eye(shape[-2]), u_full.shape),
                 1e-13, 1e-13)
    k = min(shape[-2:])
    if shape[-2] > shape[-1]:
        check_complex(lambda a: (lambda c: c @ gnp.swapaxes(c.conj(), -1, -2))(gnp.linalg.svd(a).U[..., k:]), (a,),
                      tol=1e-6)
    if shape[-1] > shape[-2]:
        check_complex(lambda a: (lambda c: gnp.swapaxes(c.conj(), -1, -2) @ c)(gnp.linalg.svd(a).Vh[..., k:, :]),
                      (a,), tol=1e-6)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_and_minimum_order_complex_values_lexicographically(name):
    """NumPy's values (real parts first, then imaginary; a NaN argument wins) and JAX's derivative:
    the chosen argument's, half each at a tie."""
    f, ref = getattr(gnp, name), getattr(np, name)
    a = np.array([1 + 2j, 1 + 1j, 2 - 5j, 1 + 1j, np.nan, 3])
    b = np.array([1 + 1j, 1 + 3j, 1 + 9j, 1 + 1j, 1j, np.nan * 1j])
    assert_close(f(a, b), ref(a, b), 0, 0)
    assert_close(gpuad.jit(ref)(a, b), ref(a, b), 0, 0)  # NumPy's ufunc on traced values runs gpuad's
    z, w = crandom((4,), 61), crandom((4,), 62)
    check_complex(f, (z, w))
    check_complex(f, (z, w.real))
    tangent = gpuad.jvp(f, (a[3:4], b[3:4]), (np.array([2j]), np.array([4 + 0j])))[1]
    assert_close(tangent, np.array([2 + 1j]), 0, 0)


SECOND_ORDER = {
    "svd": lambda a: gnp.sum(gnp.linalg.svd(a, compute_uv=False) ** 3),
    "qr": lambda a: gnp.sum(gnp.abs(gnp.linalg.qr(a).R) ** 2 * gnp.arange(3.0)),
    "eigvals": lambda a: gnp.sum(gnp.abs(gnp.linalg.eigvals(a)) ** 2),
    "pinv": lambda a: gnp.sum(gnp.abs(gnp.linalg.pinv(a[:, :2])) ** 2),
}


@pytest.mark.parametrize("name", sorted(SECOND_ORDER))
def test_factorisation_rules_nest(name):
    """The rules are written with gpuad's primitives: grad of a real function of a complex matrix,
    differentiated again (jvp and vjp) against differences of grad; and vmap over a stack."""
    a = crandom((3, 3), 5) + 2 * np.eye(3)
    check_complex(gpuad.grad(SECOND_ORDER[name]), (a,), tol=1e-5)
    stack = np.stack([a, a.T])
    assert_close(gpuad.vmap(SECOND_ORDER[name])(stack), np.stack([SECOND_ORDER[name](x) for x in stack]),
                 1e-14, 1e-14)


# ---------------------------------------------------------------- functions of complex values
W = crandom((3, 3), 11)
HOLO = {
    "chain": lambda z: gnp.exp(z) * gnp.sin(z[::-1]) / (1 + z ** 2),
    "branches": lambda z: gnp.log(z + 3) ** 1.5 + gnp.sqrt(gnp.tanh(z) + 2j) @ gnp.asarray(W),
    "products": lambda z: gnp.einsum("ij,j,i->i", W, z, z) + gnp.dot(z, W) * gnp.prod(z),
    "reductions": lambda z: gnp.cumsum(z) * gnp.mean(z ** 2) + gnp.sum(gnp.outer(z, z), axis=0),
    "moves": lambda z: gnp.concatenate([z[1:], z[:1] * 2j]) * gnp.stack([z, -z])[1][::-1]
    + gnp.reshape(gnp.transpose(gnp.reshape(gnp.tile(z, 3), (3, 3))), (9,))[:3],
    "at_and_where": lambda z: gnp.where(gnp.arange(3) > 0, z * z, 1j) + gnp.at(z)[[0, 0]].add(z[1:] ** 3),
}
NONHOLO = {
    "parts": lambda z: gnp.abs(z) ** 2 * gnp.conj(z) + gnp.real(z) * 1j * gnp.angle(z) - z.imag * z.conj(),
    "modulus": lambda z: gnp.exp(1j * gnp.abs(z)) * gnp.sign(z.real) + gnp.var(z) * z,
}
REAL_VALUED = {
    "energy": lambda z: gnp.sum(gnp.abs(gnp.exp(1j * z) - gnp.asarray(W) @ z) ** 2),
    "phase": lambda z: gnp.real(gnp.sum(gnp.conj(z) * (gnp.asarray(W) @ z))) + gnp.std(z) * gnp.angle(z[0] ** 2),
}


@pytest.mark.parametrize("name", sorted(HOLO))
def test_holomorphic_functions(name):
    z = crandom((3,), 5)
    check_holomorphic(HOLO[name], z)
    check_complex(HOLO[name], (z,))


@pytest.mark.parametrize("name", sorted(NONHOLO))
def test_non_holomorphic_functions(name):
    check_complex(NONHOLO[name], (crandom((3,), 6),))


@pytest.mark.parametrize("name", sorted(REAL_VALUED))
def test_gradients_of_real_functions_of_complex_values(name):
    f, z = REAL_VALUED[name], crandom((3,), 9)
    Jx, Jy = complex_partials(f, (z,), 0)
    assert_close(gpuad.grad(f)(z), Jx - 1j * Jy, TOL, TOL, "grad")
    assert_close(gpuad.jacrev(lambda z: gnp.stack([f(z), f(2 * z)]))(z)[0], Jx - 1j * Jy, TOL, TOL, "jacrev")
    check_complex(f, (z,))
    check_complex(gpuad.grad(f), (z,), tol=1e-6)  # second order: the gradient's own R-linear map


def test_mixed_real_and_complex_inputs():
    def f(x, z):
        return gnp.exp(1j * x) * z[:2] + gnp.real(z[2] * x) ** 2
    x, z = np.array([0.3, -0.7]), crandom((3,), 12)
    check_complex(f, (x, z))
    Jx, _ = complex_partials(lambda x: f(x, gnp.asarray(z)), (x,), 0)
    assert_close(gpuad.jacfwd(f)(x, z), Jx, TOL, TOL, "jacfwd of a real input, complex output")


def test_hessian_of_det_holomorphic():
    Jx, _ = complex_partials(gpuad.jacrev(gnp.linalg.det, holomorphic=True), (A,), 0)
    assert_close(gpuad.hessian(gnp.linalg.det, holomorphic=True)(A), Jx, 1e-6, 1e-6)


def test_hessian_holomorphic():
    f = lambda z: gnp.sum(gnp.sin(z) * z[::-1] ** 3)  # noqa: E731
    z = crandom((3,), 13)
    g = gpuad.grad(f, holomorphic=True)
    Jx, _ = complex_partials(g, (z,), 0)
    H = gpuad.hessian(f, holomorphic=True)(z)
    assert_close(H, Jx, 1e-6, 1e-6, "hessian")
    assert_close(H, gpuad.jacrev(gpuad.jacrev(f, holomorphic=True), holomorphic=True)(z), 1e-12, 1e-12)


def test_vmap_of_jvp_and_of_jacfwd_match_a_loop():
    f = HOLO["branches"]
    zs, vs = crandom((4, 3), 14), crandom((4, 3), 15)
    ys, ts = gpuad.vmap(lambda z, v: gpuad.jvp(NONHOLO["parts"], (z,), (v,)))(zs, vs)
    Js = gpuad.vmap(gpuad.jacfwd(f, holomorphic=True))(zs)
    for k in range(4):
        y, t = gpuad.jvp(NONHOLO["parts"], (zs[k],), (vs[k],))
        assert_close(ys[k], y, 1e-14, 1e-14)
        assert_close(ts[k], t, 1e-14, 1e-14)
        assert_close(Js[k], gpuad.jacfwd(f, holomorphic=True)(zs[k]), 1e-14, 1e-14)


def test_complex64_stays_complex64():
    z = crandom((3,), 16).astype(np.complex64)
    assert to_np(gpuad.jacfwd(HOLO["chain"], holomorphic=True)(z)).dtype == np.complex64
    assert to_np(gpuad.grad(REAL_VALUED["energy"])(z)).dtype == np.complex64
    # a Python complex is a weak scalar, as in NumPy: 1j * float32 values are complex64, also traced
    for x in (z, z.real):
        assert gpuad.jit(lambda x: 1j * x).lower(x).out_info().dtype == np.complex64 == (1j * x).dtype


def test_complex_scalar_types_cast_traced_values():
    x = np.array([1.0, 2.0])
    J = gpuad.jacfwd(lambda x: gnp.complex128(x) * 1j)(x)
    assert_close(J, 1j * np.eye(2), 0, 0)
    assert gnp.zeros(2, dtype=gnp.complex64).dtype == np.complex64


def test_a_complex_value_made_from_real_ones_has_complex_tangents():
    """where(c, x, 1j) of real x: the forward bundle is real inside, complex outside (as in JAX)."""
    J = gpuad.jacfwd(lambda x: gnp.where(x > 0, x, 1j))(np.array([1.0, -1.0]))
    assert to_np(J).dtype == np.complex128
    assert_close(J, np.diag([1.0, 0.0]).astype(complex), 0, 0)


# ---------------------------------------------------------------- numpy functions on complex values
def test_numpy_functions_of_complex_values():
    z = np.array([1 + 2j, -0.5 + 1e-18j, 3.0 + 0j])
    for name in ("real", "imag", "conj", "angle", "abs", "iscomplex", "isreal", "var", "std", "mean", "prod"):
        assert_close(getattr(gnp, name)(z), getattr(np, name)(z), 1e-15, 1e-15, name)
    assert gnp.iscomplexobj(z) and not gnp.iscomplexobj(z.real) and gnp.isrealobj(z.real)
    assert_close(gnp.real_if_close(z[1:]), np.real_if_close(z[1:]), 0, 0)
    assert to_np(gnp.real_if_close(z)).dtype == np.complex128
    assert_close(gnp.angle(z, deg=True), np.angle(z, deg=True), 1e-14, 1e-14)


def test_numpy_s_own_functions_dispatch_on_traced_complex_values():
    z = crandom((3,), 17)
    f = lambda z: np.real(np.abs(z) * np.conj(z)) + np.imag(z) * np.angle(z)  # noqa: E731
    g = lambda z: gnp.real(gnp.abs(z) * gnp.conj(z)) + gnp.imag(z) * gnp.angle(z)  # noqa: E731
    v = crandom((3,), 18)
    assert_close(gpuad.jvp(f, (z,), (v,))[1], gpuad.jvp(g, (z,), (v,))[1], 1e-15, 1e-15)


# ---------------------------------------------------------------- compiled
def test_jit_of_complex_functions_and_their_derivatives():
    z = gnp.asarray(crandom((3,), 19))
    f = REAL_VALUED["energy"]
    assert_close(gpuad.jit(f)(z), f(z), 1e-14, 1e-14)
    assert_close(gpuad.jit(gpuad.grad(f))(z), gpuad.grad(f)(z), 1e-14, 1e-14)
    assert_close(gpuad.grad(gpuad.jit(f))(z), gpuad.grad(f)(z), 1e-14, 1e-14)
    h = HOLO["chain"]
    assert_close(gpuad.jit(gpuad.jacfwd(h, holomorphic=True))(z), gpuad.jacfwd(h, holomorphic=True)(z), 1e-14, 1e-14)


# ---------------------------------------------------------------- LU
def test_lu_factor_and_lu_solve_of_complex_matrices():
    """lu is holomorphic in a (P A = L U), so are lu_solve's x for trans 0 and 1; trans 2 solves
    with a^H, as scipy's: values against scipy, derivatives against the differences."""
    sla = pytest.importorskip("scipy.linalg")
    import gpuad.scipy.linalg as gsl
    a = crandom((4, 4), 30) + 3 * np.eye(4)
    a[[0, 2]] = a[[2, 0]]  # pivots that swap rows
    b = crandom((4, 2), 31)
    lu, piv = gsl.lu_factor(a)
    want_lu, want_piv = sla.lu_factor(a)
    assert_close(lu, want_lu, 1e-14, 1e-14, "lu")
    assert (to_np(piv) == want_piv).all() and to_np(piv).tolist() != [0, 1, 2, 3]
    check_holomorphic(lambda a: gsl.lu_factor(a)[0], a)
    check_complex(lambda a: gsl.lu_factor(a)[0], (a,))
    for trans in (0, 1, 2):
        x = gsl.lu_solve((lu, piv), b, trans=trans)
        assert_close(x, sla.lu_solve((want_lu, want_piv), b, trans=trans), 1e-13, 1e-13, f"trans {trans}")
        check_complex(lambda a, b, trans=trans: gsl.lu_solve(gsl.lu_factor(a), b, trans=trans), (a, b))
    assert_close(gsl.solve_triangular(a, b, trans="C", lower=True), sla.solve_triangular(a, b, trans="C", lower=True),
                 1e-13, 1e-13, "solve_triangular")


def test_at_max_and_min_of_complex_values_and_clip_refused():
    """.at[].max/min order complex values as maximum and minimum do (lexicographically, JAX's
    values); clip refuses them with JAX's reason."""
    z = np.array([1 + 2j, 0.5 - 1j, -0.3 + 0.2j])
    v = np.array([3 + 0j, 0.4 + 5j])  # real parts decide, apart from any tie (where the choice jumps)
    for method in ("max", "min"):
        f = lambda z, v, method=method: getattr(gnp.at(z)[:2], method)(v)  # noqa: E731
        want = z.copy()
        want[:2] = np.maximum(z[:2], v) if method == "max" else np.minimum(z[:2], v)
        assert_close(f(z, v), want, 0, 0, method)
        check_complex(f, (z, v))
    with pytest.raises(TypeError, match="complex values have no order to clip by"):
        gnp.clip(gnp.asarray(z), 0.0, 1.0)
    with pytest.raises(TypeError, match="complex values have no order to clip by"):
        gnp.clip(gnp.asarray(z.real), 0.0, 1j)


def test_squared_moduli_are_sums_of_squared_parts():
    """var, the 2-norms and lstsq's residuals square the parts of complex values (as NumPy does),
    never a modulus rounded by its root: var equals NumPy's to the last bit."""
    for seed in range(40):
        z = crandom((7,), seed)
        assert to_np(gnp.var(gnp.asarray(z))) == np.var(z)
        assert_close(gnp.linalg.norm(gnp.asarray(z)), np.linalg.norm(z), 3e-16, 0)
        assert_close(gnp.linalg.norm(gnp.asarray(z.reshape(7, 1)), "fro"), np.linalg.norm(z), 3e-16, 0)


def test_max_and_min_reductions_of_complex_values():
    """Lexicographic, as NumPy's values; JAX's derivative: the chosen element's, split between ties."""
    z = np.array([[1 + 2j, 1 + 3j, 0.5 - 1j, 1 + 3j], [-2 + 0j, -1 - 5j, -1 + 4j, -3 + 9j]])
    for name in ("max", "min"):
        for axis in (None, 0, 1):
            f = lambda z, name=name, axis=axis: getattr(gnp, name)(z, axis=axis)  # noqa: E731
            assert_close(f(z), getattr(np, name)(z, axis=axis), 0, 0, f"{name} axis {axis}")
    v = np.array([[1, 2, 3, 4j], [0, 0, 0, 0]])
    assert_close(gpuad.jvp(lambda z: gnp.max(z[0]), (z,), (v,))[1], (2 + 4j) / 2, 0, 0)  # the tie shares
    w = crandom((3, 4), 40)  # no ties: each choice is differentiable
    for name in ("max", "min"):
        check_complex(lambda w, name=name: getattr(gnp, name)(w, axis=1), (w,))
