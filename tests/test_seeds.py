"""The examples of the text the project started from (shared/seeds/), written with gpuad and
gpuad.numpy where the text uses jax and jax.numpy, checked against closed forms."""
import numpy as np
import pytest
from helpers import assert_close

import gpuad
import gpuad.numpy as gnp


def func(x):
    """R^3 -> R^2: (x0^2 x1, sin x2)."""
    return gnp.array([x[0] ** 2 * x[1], gnp.sin(x[2])])


def func_jacobian(x):
    x0, x1, x2 = x
    return np.array([[2 * x0 * x1, x0 ** 2, 0.0], [0.0, 0.0, np.cos(x2)]])


def scalar_func(x):
    """R^2 -> R: f(x, y) = x^2 y + y^3."""
    return x[0] ** 2 * x[1] + x[1] ** 3


def scalar_hessian(x):
    x0, x1 = x
    return np.array([[2 * x1, 2 * x0], [2 * x0, 6 * x1]])


X_IN = [1.0, 2.0, np.pi / 2]
Y_IN = [1.0, 2.0]
V = [0.5, -0.5]


def test_function_values():
    x_in = gnp.array([1.0, 2.0, gnp.pi / 2])
    assert_close(func(x_in), [2.0, 1.0], rtol=1e-15, atol=1e-15)
    assert_close(scalar_func(gnp.array(Y_IN)), 10.0, rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("jac", [gpuad.jacfwd, gpuad.jacrev], ids=["jacfwd", "jacrev"])
def test_jacobian_of_R3_to_R2(jac):
    J = jac(func)(gnp.array(X_IN))
    assert J.shape == (2, 3)  # (output_dim, input_dim)
    assert_close(J, func_jacobian(X_IN), rtol=1e-15, atol=1e-15)
    assert_close(J, [[4.0, 1.0, 0.0], [0.0, 0.0, 0.0]], rtol=0, atol=1e-15)


def test_jacobian_columns_by_vmap_over_jvp():
    x_in = gnp.array(X_IN)
    n = x_in.shape[0]
    primals_out, jac_cols = gpuad.vmap(lambda tangent: gpuad.jvp(func, (x_in,), (tangent,)), in_axes=0)(gnp.eye(n))
    assert primals_out.shape == (3, 2) and jac_cols.shape == (3, 2)
    assert_close(primals_out, np.tile([2.0, 1.0], (3, 1)), rtol=1e-15, atol=1e-15)
    assert_close(jac_cols.T, func_jacobian(X_IN), rtol=1e-15, atol=1e-15)


def test_jacobian_rows_by_vmap_over_vjp():
    primals_out, vjp_fun = gpuad.vjp(func, gnp.array(X_IN))
    m = primals_out.shape[0]
    jac_rows = gpuad.vmap(vjp_fun, in_axes=0)(gnp.eye(m))
    assert isinstance(jac_rows, tuple) and len(jac_rows) == 1  # one entry per primal
    assert_close(jac_rows[0], func_jacobian(X_IN), rtol=1e-15, atol=1e-15)


def test_gradient_is_jacrev_of_scalar_function():
    x = gnp.array(Y_IN)
    expected = [2 * 1.0 * 2.0, 1.0 + 3 * 2.0 ** 2]  # (2 x y, x^2 + 3 y^2)
    assert_close(gpuad.grad(scalar_func)(x), expected, rtol=1e-15, atol=1e-15)
    assert_close(gpuad.jacrev(scalar_func)(x), expected, rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("hess", [
    gpuad.hessian,
    lambda f: gpuad.jacfwd(gpuad.grad(f)),
    lambda f: gpuad.jacrev(gpuad.grad(f)),
], ids=["hessian", "jacfwd_grad", "jacrev_grad"])
def test_hessian(hess):
    H = hess(scalar_func)(gnp.array(Y_IN))
    assert H.shape == (2, 2)
    assert_close(H, scalar_hessian(Y_IN), rtol=1e-15, atol=1e-15)
    assert_close(H, H.T, rtol=0, atol=0)


def test_hessian_vector_product_both_ways():
    x_in, v = gnp.array(Y_IN), gnp.array(V)
    expected = scalar_hessian(Y_IN) @ np.array(V)          # [1, -5]
    hvp_explicit = gpuad.hessian(scalar_func)(x_in) @ v
    grad_value, hvp_efficient = gpuad.jvp(gpuad.grad(scalar_func), (x_in,), (v,))
    assert_close(expected, [1.0, -5.0], rtol=0, atol=0)
    assert_close(hvp_explicit, expected, rtol=1e-15, atol=1e-15)
    assert_close(hvp_efficient, expected, rtol=1e-15, atol=1e-15)
    assert_close(grad_value, [4.0, 13.0], rtol=1e-15, atol=1e-15)
    assert_close(gpuad.hvp(scalar_func, (x_in,), (v,)), expected, rtol=1e-15, atol=1e-15)
