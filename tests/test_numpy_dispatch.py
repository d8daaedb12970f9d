"""Functions written against plain NumPy (`import numpy as np`) under gpuad's transforms: NumPy's
functions and ufuncs called on traced values dispatch to gpuad.numpy's (NEP 18 and NEP 13), so
the result equals the same function written with gpuad.numpy."""
import numpy as np
import pytest
import scipy.special
from helpers import assert_close, on_backend, random_inputs, sampled

import gpuad
import gpuad.numpy as gnp
import gpuad.scipy.special as gsp

W = np.arange(12.0).reshape(3, 4) / 10 - 0.4
SP = {np: scipy.special, gnp: gsp}


# Each takes the namespace first: fn(np, x) is the unmodified NumPy function, fn(gnp, x) the reference.
FUNCTIONS = {
    "sum_dot": (lambda m, x: m.sum(m.sin(m.dot(W, x)) * x[:3]), (4,)),
    "concatenate_stack": (lambda m, x: m.concatenate([x, m.exp(x), m.stack([x, x])[1] ** 2]), (3,)),
    "matmul_operator_mean": (lambda m, x: m.mean(W @ x, axis=0) + m.max(x), (4, 2)),
    "einsum_where": (lambda m, x: m.einsum("ij,j->i", W, m.where(x > 0, x, -x ** 3)), (4,)),
    "linalg_solve_det": (lambda m, a: m.linalg.solve(a, m.ones(3)) * m.linalg.det(a), (3, 3)),
    "linalg_norm_eigvalsh": (lambda m, a: m.linalg.norm(a) + m.linalg.eigvalsh(a + a.T), (3, 3)),
    "reshape_transpose_cumsum": (lambda m, x: m.cumsum(m.transpose(m.reshape(x, (2, 3))), axis=1), (6,)),
    "scipy_special": (lambda m, x: SP[m].erf(x) * SP[m].gammaln(x + 2.0) + SP[m].expit(x), (4,)),
    "i0_partition_piecewise": (lambda m, x: m.partition(m.i0(x), 2) * m.piecewise(x, [x < 0], [m.sin, m.cos]), (5,)),
}
IDS = sorted(FUNCTIONS)


def _point(name):
    shape = FUNCTIONS[name][1]
    x = random_inputs([shape], (-1.0, 1.0), seed=len(name))[0]
    return x + 3 * np.eye(3) if shape == (3, 3) else x


@pytest.mark.parametrize("name", IDS)
@pytest.mark.parametrize("transform", [gpuad.jacfwd, gpuad.jacrev, gpuad.hessian], ids=lambda t: t.__name__)
def test_numpy_function_transforms_like_the_gpuad_numpy_one(name, transform):
    fn, _ = FUNCTIONS[name]
    x, = on_backend(_point(name))
    assert_close(transform(lambda v: fn(np, v))(x), transform(lambda v: fn(gnp, v))(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sampled(IDS, 4))
def test_numpy_function_under_vmap_and_jit(name):
    fn, _ = FUNCTIONS[name]
    xs, = on_backend(np.stack([_point(name), _point(name) * 0.5]))
    expected = gpuad.vmap(lambda v: fn(gnp, v))(xs)
    assert_close(gpuad.vmap(lambda v: fn(np, v))(xs), expected, rtol=1e-12, atol=1e-12)
    assert_close(gpuad.jit(gpuad.jacfwd(lambda v: fn(np, v)))(xs[0]), gpuad.jacfwd(lambda v: fn(gnp, v))(xs[0]),
                 rtol=1e-12, atol=1e-12)


def test_shape_functions_read_traced_values():
    def f(x):
        assert np.shape(x) == (2, 3) and np.ndim(x) == 2 and np.size(x) == 6
        return np.sum(x)
    assert_close(gpuad.grad(f)(gnp.ones((2, 3))), np.ones((2, 3)))


def test_numpy_function_without_counterpart_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match=r"numpy\.linalg\.tensorsolve has no gpuad counterpart.*gpuad\.numpy"):
        gpuad.grad(lambda x: np.linalg.tensorsolve(np.eye(4), x).sum())(gnp.ones(4))
    with pytest.raises(TypeError, match=r"numpy\.nanargmax has no gpuad counterpart"):
        gpuad.jacfwd(lambda x: np.nanargmax(x) * x)(gnp.ones(4))
    with pytest.raises(TypeError, match="numpy.add.reduce cannot take traced values"):
        gpuad.grad(lambda x: np.add.reduce(x))(gnp.ones(4))
