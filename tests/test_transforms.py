"""The transforms against each other, against finite differences and against closed forms:
Jacobian modes, pytrees and argnums, Hessians, hvp, chunking, linearize, vjp, vmap, nesting,
Python control flow, dtypes, NumPy operands, and the one-sweep property."""
from typing import Callable, NamedTuple

import numpy as np
import pytest
from helpers import assert_close, assert_tree_close, count_evals, numerical_jacobian_tree, to_np

import gpuad
import gpuad.numpy as gnp

RNG = np.random.default_rng(0)


def r(*shape, lo=-1.0, hi=1.0):
    return RNG.uniform(lo, hi, size=shape)


def backend_tree(tree):
    return gpuad.tree_map(gnp.asarray, tree)


class Case(NamedTuple):
    name: str
    fn: Callable
    args: tuple            # NumPy arrays or pytrees of them
    argnums: object = 0

    def call(self, transform, **kw):
        return transform(self.fn, argnums=self.argnums, **kw)(*backend_tree(self.args))


# ---------------------------------------------------------------- Jacobians: every mode agrees with differences
CASES = [
    Case("R3_to_R2", lambda x: gnp.array([x[0] ** 2 * x[1], gnp.sin(x[2])]), (r(3),)),
    Case("scalar_to_scalar", lambda x: gnp.sin(x) * x, (np.asarray(0.7),)),
    Case("scalar_to_vector", lambda x: gnp.stack([x, x ** 2, gnp.exp(x)]), (np.asarray(0.3),)),
    Case("vector_to_scalar", lambda x: gnp.sum(gnp.tanh(x) ** 2), (r(5),)),
    Case("matrix_to_matrix", lambda X: X @ X.T + gnp.sin(X[:, :3]), (r(3, 4),)),
    Case("matrix_to_vector", lambda X: gnp.sum(X ** 2, axis=1) * X[:, 0], (r(3, 4),)),
    Case("vector_to_matrix", lambda x: gnp.outer(x, gnp.sin(x)), (r(3),)),
    Case("tensor3_to_matrix", lambda T: gnp.einsum("ijk,jk->ik", T, gnp.cos(T[0])), (r(2, 3, 2),)),
    Case("argnums_tuple", lambda x, W: gnp.tanh(W @ x), (r(3), r(2, 3)), (0, 1)),
    Case("argnums_second", lambda x, W: gnp.tanh(W @ x), (r(3), r(2, 3)), 1),
    Case("argnums_negative", lambda x, W: gnp.tanh(W @ x), (r(3), r(2, 3)), -1),
    Case("argnums_reversed", lambda x, W: gnp.tanh(W @ x), (r(3), r(2, 3)), (1, 0)),
    Case("dict_in_tuple_out", lambda p, x: (gnp.tanh(x @ p["w"] + p["b"]), gnp.sum(p["w"] ** 2)),
         ({"w": r(3, 2), "b": r(2)}, r(4, 3))),
    Case("dict_and_array_args", lambda p, x: gnp.tanh(x @ p["w"] + p["b"]),
         ({"w": r(3, 2), "b": r(2)}, r(4, 3)), (0, 1)),
    Case("list_in_dict_out", lambda xs: {"prod": xs[0] * xs[1], "total": gnp.sum(xs[0]) + xs[1]},
         ([r(2), r(2)],)),
    Case("none_in_input_tree", lambda t: t[0] * 2 + gnp.sum(t[2]), ((r(3), None, r(2)),)),
    Case("none_in_output_tree", lambda x: (x * 2, None, gnp.sum(x ** 3)), (r(3),)),
    Case("constant_output", lambda x: gnp.ones((2,)) * 3.0, (r(3),)),
    Case("partly_constant_outputs", lambda x, y: [x * y, y], (r(3), r(3))),
]
cases = pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])


@cases
@pytest.mark.parametrize("transform", [
    gpuad.jacfwd, gpuad.jacrev, gpuad.jacobian,
    lambda f, **kw: gpuad.jacobian(f, mode="forward", **kw),
    lambda f, **kw: gpuad.jacobian(f, mode="reverse", **kw)],
    ids=["jacfwd", "jacrev", "jacobian_auto", "jacobian_forward", "jacobian_reverse"])
def test_jacobian_matches_differences(case, transform):
    expected = numerical_jacobian_tree(case.fn, case.args, case.argnums)
    assert_tree_close(case.call(transform), expected, what=case.name)


@cases
@pytest.mark.parametrize("chunk_size", [1, 2, 5, 1000])
def test_chunk_size_gives_the_same_jacobian(case, chunk_size):
    for transform in (gpuad.jacfwd, gpuad.jacrev, gpuad.jacobian):
        assert_tree_close(case.call(transform, chunk_size=chunk_size), case.call(transform),
                          rtol=1e-12, atol=1e-12)


def test_jacobian_leaf_shapes_are_tree_products():
    """JAX's structure: the output tree on the outside, the input tree inside each leaf."""
    def f(p):
        return {"u": p["a"] * p["b"][0], "v": gnp.sum(p["a"])}
    p = {"a": gnp.asarray(r(2, 3)), "b": gnp.asarray(r(4))}
    for transform in (gpuad.jacfwd, gpuad.jacrev, gpuad.jacobian):
        J = transform(f)(p)
        assert set(J) == {"u", "v"} and set(J["u"]) == {"a", "b"}
        assert J["u"]["a"].shape == (2, 3, 2, 3)
        assert J["u"]["b"].shape == (2, 3, 4)
        assert J["v"]["a"].shape == (2, 3)
        assert J["v"]["b"].shape == (4,)
    H = gpuad.hessian(lambda p: gnp.sum(p["a"] ** 2) * p["b"][1])(p)
    assert H["a"]["a"].shape == (2, 3, 2, 3) and H["a"]["b"].shape == (2, 3, 4) and H["b"]["b"].shape == (4, 4)


def test_jacobian_auto_mode_handles_tall_and_wide():
    W = gnp.asarray(r(6, 2))
    for f, x in [(lambda x: gnp.tanh(W @ x), r(2)), (lambda x: gnp.tanh(x @ W), r(6))]:
        J = gpuad.jacobian(f)(gnp.asarray(x))
        assert_close(J, gpuad.jacfwd(f)(gnp.asarray(x)), rtol=1e-12, atol=1e-12)
        assert_close(J, numerical_jacobian_tree(f, (x,)))


# ---------------------------------------------------------------- has_aux
def test_has_aux_everywhere():
    def f(x):
        return gnp.sum(gnp.sin(x) * x), {"twice": 2 * x, "label": "ok"}
    x = gnp.asarray(r(3))
    expected_grad = to_np(gnp.sin(x) + x * gnp.cos(x))
    for transform in (gpuad.jacfwd, gpuad.jacrev, gpuad.jacobian, gpuad.grad):
        g, aux = transform(f, has_aux=True)(x)
        assert_close(g, expected_grad, what=transform.__name__)
        assert aux["label"] == "ok" and gpuad.backends.current().is_array(aux["twice"])  # plain arrays, not traced
        assert_close(aux["twice"], 2 * to_np(x))
    (value, aux), g = gpuad.value_and_grad(f, has_aux=True)(x)
    assert_close(value, np.sum(np.sin(to_np(x)) * to_np(x)))
    assert_close(g, expected_grad)
    H, aux = gpuad.hessian(f, has_aux=True)(x)
    assert_close(H, numerical_jacobian_tree(gpuad.grad(lambda x: f(x)[0]), (to_np(x),)))
    y, t, aux = gpuad.jvp(f, (x,), (gnp.ones(3),), has_aux=True)
    assert_close(t, np.sum(expected_grad))
    assert aux["label"] == "ok"
    y, pullback, aux = gpuad.vjp(f, x, has_aux=True)
    assert_close(pullback(gnp.asarray(1.0))[0], expected_grad)
    assert_close(aux["twice"], 2 * to_np(x))


# ---------------------------------------------------------------- Hessians and hvp
SCALAR_CASES = [
    Case("seed_scalar", lambda x: x[0] ** 2 * x[1] + x[1] ** 3, (np.array([1.0, 2.0]),)),
    Case("rosenbrock", lambda x: gnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2), (r(4),)),
    Case("matrix_input", lambda X: gnp.sum((X @ X.T) * gnp.sin(X[:, :2])), (r(2, 3),)),
    Case("softmax_loss", lambda w, x: gnp.logaddexp(x @ w, 0.0).sum() + gnp.max(x @ w), (r(3), r(4, 3)),
         (0, 1)),
    Case("dict_input", lambda p: gnp.sum(gnp.tanh(p["w"] @ p["b"])) * p["b"][0], ({"w": r(2, 3), "b": r(3)},)),
]
scalar_cases = pytest.mark.parametrize("case", SCALAR_CASES, ids=[c.name for c in SCALAR_CASES])


def _compose(outer, inner):
    return lambda f, argnums=0: outer(inner(f, argnums=argnums), argnums=argnums)


@scalar_cases
def test_hessian_agrees_across_modes_and_with_differences(case):
    expected = numerical_jacobian_tree(gpuad.grad(case.fn, argnums=case.argnums), case.args, case.argnums)
    H = case.call(gpuad.hessian)
    assert_tree_close(H, expected, rtol=1e-5, atol=1e-5)
    for outer in (gpuad.jacfwd, gpuad.jacrev):
        for inner in (gpuad.jacfwd, gpuad.jacrev):
            assert_tree_close(case.call(_compose(outer, inner)), H, rtol=1e-10, atol=1e-10)
    assert_tree_close(case.call(gpuad.hessian, chunk_size=2), H, rtol=1e-12, atol=1e-12)


def test_hessian_of_vector_function_has_shape_out_in_in():
    def f(X):
        return gnp.sin(X).sum(axis=0) * X[0]
    X = r(2, 3)
    H = gpuad.hessian(f)(gnp.asarray(X))
    assert H.shape == (3, 2, 3, 2, 3)
    assert_close(H, numerical_jacobian_tree(gpuad.jacrev(f), (X,)), rtol=1e-5, atol=1e-5)


@scalar_cases
def test_hvp_equals_hessian_times_vector(case):
    args = backend_tree(case.args)
    nums = tuple(range(len(args)))
    leaves, tree = gpuad.tree_flatten(args)
    vs = [RNG.standard_normal(np.shape(a)) for a in leaves]
    got = gpuad.hvp(case.fn, args, tree.unflatten([gnp.asarray(v) for v in vs]))
    # H's leaves are the blocks d2f / d leaf_i d leaf_j, i-major: contract each with v_j
    blocks = [to_np(b) for b in gpuad.tree_leaves(gpuad.hessian(case.fn, argnums=nums)(*args))]
    n = len(leaves)
    expected = [sum(np.tensordot(blocks[i * n + j], vs[j], axes=vs[j].ndim) for j in range(n)) for i in range(n)]
    expected = tree.unflatten(expected)
    assert_tree_close(got, expected[0] if len(args) == 1 else expected, rtol=1e-10, atol=1e-10)


def test_hvp_both_ways_on_seed():
    def f(x):
        return x[0] ** 2 * x[1] + x[1] ** 3
    x, v = gnp.asarray([1.0, 2.0]), gnp.asarray([0.5, -0.5])
    H = np.array([[2 * 2.0, 2 * 1.0], [2 * 1.0, 6 * 2.0]])  # [[2 y, 2 x], [2 x, 6 y]]
    assert_close(gpuad.hvp(f, (x,), (v,)), H @ to_np(v))
    assert_close(gpuad.jvp(gpuad.grad(f), (x,), (v,))[1], H @ to_np(v))


# ---------------------------------------------------------------- value_and_grad, linearize, jvp, vjp
@scalar_cases
def test_value_and_grad(case):
    value, g = case.call(gpuad.value_and_grad)
    assert_close(value, case.fn(*backend_tree(case.args)))
    assert_tree_close(g, case.call(gpuad.grad), rtol=0, atol=0)
    assert_tree_close(g, numerical_jacobian_tree(case.fn, case.args, case.argnums))


@cases
def test_linearize_equals_jvp(case):
    args = backend_tree(case.args)
    y, f_jvp = gpuad.linearize(case.fn, *args)
    assert_tree_close(y, case.fn(*args), rtol=0, atol=0)
    for seed in range(2):
        rng = np.random.default_rng(seed)
        ts = gpuad.tree_map(lambda a, rng=rng: gnp.asarray(rng.standard_normal(np.shape(a))), args)
        y2, t2 = gpuad.jvp(case.fn, args, ts)
        assert_tree_close(f_jvp(*ts), t2, rtol=1e-12, atol=1e-12)
        assert_tree_close(y2, y, rtol=0, atol=0)


@cases
def test_vjp_pullback_returns_a_tuple_per_primal(case):
    args = backend_tree(case.args)
    y, pullback = gpuad.vjp(case.fn, *args)
    ct = gpuad.tree_map(lambda o: gnp.ones(np.shape(o)), y)
    got = pullback(ct)
    assert isinstance(got, tuple) and len(got) == len(args)
    for i, (g, a) in enumerate(zip(got, case.args)):
        assert gpuad.tree_flatten(g)[1] == gpuad.tree_flatten(a)[1]
        J = numerical_jacobian_tree(lambda *xs: sum(gnp.sum(o) for o in gpuad.tree_leaves(case.fn(*xs))),
                                    case.args, i)
        assert_tree_close(g, J)


def test_jvp_with_python_scalars_and_pytrees():
    y, t = gpuad.jvp(lambda a, b: a * b["c"], (2.0, {"c": gnp.asarray([1.0, 3.0])}),
                     (1.0, {"c": gnp.asarray([0.5, 0.0])}))
    assert_close(y, [2.0, 6.0])
    assert_close(t, [1.0 * 1.0 + 2.0 * 0.5, 3.0])


# ---------------------------------------------------------------- vmap
def _loop(f, args, in_axes, out_axis=0):
    """The batched result computed one example at a time (the specification of vmap)."""
    size = next(np.shape(a)[ax] for a, ax in zip(args, in_axes) if ax is not None)
    outs = [f(*[gnp.asarray(a if ax is None else np.take(a, k, axis=ax)) for a, ax in zip(args, in_axes)])
            for k in range(size)]
    return np.stack([to_np(o) for o in outs], axis=out_axis)


def _mlp(x, W, b):
    return gnp.tanh(W @ x + b).sum() * x[0] + gnp.max(x)


@pytest.mark.parametrize("in_axes,shapes", [
    ((0, None, None), [(4, 3), (2, 3), (2,)]),
    ((1, None, 0), [(3, 4), (2, 3), (4, 2)]),
    ((-1, 0, None), [(3, 4), (4, 2, 3), (2,)]),
    ((None, 0, 0), [(3,), (4, 2, 3), (4, 2)]),
    ((-2, -3, -1), [(4, 3), (4, 2, 3), (2, 4)]),
])
def test_vmap_in_axes_match_a_loop(in_axes, shapes):
    args = [r(*s) for s in shapes]
    got = gpuad.vmap(_mlp, in_axes=in_axes)(*args)
    assert_close(got, _loop(_mlp, args, in_axes), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("out_axes", [0, 1, -1])
def test_vmap_out_axes(out_axes):
    x = r(5, 2, 3)
    got = gpuad.vmap(lambda m: m.T @ m, out_axes=out_axes)(x)
    assert_close(got, _loop(lambda m: m.T @ m, [x], [0], out_axis=out_axes), rtol=1e-12, atol=1e-12)


def test_vmap_pytree_in_and_out_axes():
    p = {"w": r(3, 2), "b": r(2)}
    xs = r(2, 5, 3)  # batch on axis 1

    def f(p, x):
        return {"y": gnp.tanh(x @ p["w"] + p["b"]), "n": gnp.sum(x ** 2)}
    out = gpuad.vmap(f, in_axes=({"w": None, "b": None}, 1), out_axes={"y": 1, "n": 0})(p, xs)
    for k in range(5):
        ref = f(backend_tree(p), gnp.asarray(xs[:, k]))
        assert_close(out["y"][:, k], ref["y"], rtol=1e-12, atol=1e-12)
        assert_close(out["n"][k], ref["n"], rtol=1e-12, atol=1e-12)


def test_vmap_unbatched_output_is_broadcast():
    out = gpuad.vmap(lambda x, c: (c * 2.0, x), in_axes=(0, None))(r(4, 2), gnp.asarray([1.0, 3.0]))
    assert_close(out[0], np.tile([2.0, 6.0], (4, 1)))


def test_nested_vmap_is_an_outer_product():
    a, b = r(3, 2), r(4, 2)
    got = gpuad.vmap(gpuad.vmap(lambda u, v: gnp.dot(u, v) * gnp.sin(u[0]), in_axes=(None, 0)),
                     in_axes=(0, None))(a, b)
    expected = (a @ b.T) * np.sin(a[:, :1])
    assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_vmap_of_jacfwd_and_jacrev_per_example():
    def f(x):
        return gnp.array([x[0] ** 2 * x[1], gnp.sin(x[2]) * x[0]])
    xs = r(5, 3)
    for jac in (gpuad.jacfwd, gpuad.jacrev, gpuad.hessian):
        got = gpuad.vmap(jac(f))(xs)
        assert_close(got, _loop(jac(f), [xs], [0]), rtol=1e-12, atol=1e-12)


XS, CS, X0 = r(4, 3), r(4, 3), r(3)


def _f(x):
    return gnp.sin(x) * gnp.sum(x ** 2)


def _scaled(c):
    return lambda x: gnp.sum(x * c * gnp.sin(x))


# (batched computation, the same computed one example at a time)
NESTED = {
    "vmap_closure_jacfwd": (lambda: gpuad.vmap(lambda c: gpuad.jacfwd(lambda x: x * c * gnp.sin(x))(X0))(CS),
                            lambda c, x: gpuad.jacfwd(lambda y: y * c * gnp.sin(y))(X0)),
    "vmap_closure_jacrev": (lambda: gpuad.vmap(lambda c: gpuad.jacrev(lambda x: x * c * gnp.sin(x))(X0))(CS),
                            lambda c, x: gpuad.jacrev(lambda y: y * c * gnp.sin(y))(X0)),
    "vmap_closure_hessian": (lambda: gpuad.vmap(lambda c: gpuad.hessian(_scaled(c))(X0))(CS),
                             lambda c, x: gpuad.hessian(_scaled(c))(X0)),
    "vmap_closure_linearize": (lambda: gpuad.vmap(lambda c: gpuad.linearize(_f, X0)[1](c))(CS),
                               lambda c, x: gpuad.jvp(_f, (X0,), (c,))[1]),
    "vmap_closure_vjp": (lambda: gpuad.vmap(lambda c: gpuad.vjp(_f, X0)[1](c)[0])(CS),
                         lambda c, x: gpuad.vjp(_f, X0)[1](c)[0]),
    "vmap_hvp": (lambda: gpuad.vmap(lambda x, v: gpuad.hvp(lambda y: gnp.sum(_f(y)), (x,), (v,)))(XS, CS),
                 lambda c, x: gpuad.hessian(lambda y: gnp.sum(_f(y)))(x) @ gnp.asarray(c)),
    "vmap_chunked_jacfwd": (lambda: gpuad.vmap(gpuad.jacfwd(_f, chunk_size=2))(XS),
                            lambda c, x: gpuad.jacfwd(_f)(x)),
    "vmap_chunked_jacrev": (lambda: gpuad.vmap(gpuad.jacrev(_f, chunk_size=2))(XS),
                            lambda c, x: gpuad.jacrev(_f)(x)),
    "vmap_in_axes_1_of_jacfwd": (lambda: gpuad.vmap(gpuad.jacfwd(_f), in_axes=1)(XS.T),
                                 lambda c, x: gpuad.jacfwd(_f)(x)),
    "jvp_of_vmap": (lambda: gpuad.jvp(gpuad.vmap(_f), (XS,), (CS,))[1], lambda c, x: gpuad.jvp(_f, (x,), (c,))[1]),
    "vjp_of_vmap": (lambda: gpuad.vjp(gpuad.vmap(_f), XS)[1](CS)[0], lambda c, x: gpuad.vjp(_f, x)[1](c)[0]),
    "vmap_vmap_grad": (lambda: gpuad.vmap(gpuad.vmap(gpuad.grad(lambda x: gnp.sum(_f(x)))))(XS[None]),
                       lambda c, x: gpuad.grad(lambda y: gnp.sum(_f(y)))(x)),
}


@pytest.mark.parametrize("name", list(NESTED))
def test_nested_transforms_match_a_loop(name):
    batched, one = NESTED[name]
    got = to_np(batched()).reshape((4,) + np.shape(to_np(one(CS[0], XS[0]))))
    expected = np.stack([to_np(one(c, x)) for c, x in zip(CS, XS)])
    assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_grad_and_hessian_through_vmap():
    def loss(w):
        return gnp.sum(gpuad.vmap(lambda x: gnp.tanh(x @ w))(XS))
    assert_close(gpuad.grad(loss)(X0), sum(to_np(gpuad.grad(lambda w, x=x: gnp.tanh(x @ w))(X0)) for x in XS))
    assert_close(gpuad.hessian(loss)(X0), numerical_jacobian_tree(gpuad.grad(loss), (X0,)), rtol=1e-5, atol=1e-5)


def test_fourth_order_closed_form():
    d4 = gpuad.jacfwd(gpuad.jacrev(gpuad.jacfwd(gpuad.grad(gnp.sin))))(0.3)
    assert_close(d4, np.sin(0.3), rtol=1e-12, atol=1e-12)


def test_jacfwd_of_vmap_is_block_diagonal():
    xs = r(3, 2)
    J = gpuad.jacfwd(gpuad.vmap(lambda x: gnp.sin(x) * gnp.sum(x)))(gnp.asarray(xs))
    assert J.shape == (3, 2, 3, 2)
    assert_close(J, numerical_jacobian_tree(gpuad.vmap(lambda x: gnp.sin(x) * gnp.sum(x)), (xs,)))
    assert_close(gpuad.jacrev(gpuad.vmap(lambda x: gnp.sin(x) * gnp.sum(x)))(gnp.asarray(xs)), J,
                 rtol=1e-12, atol=1e-12)


def test_vmap_over_jvp_and_vjp_gives_jacobian_columns_and_rows():
    def f(x):
        return gnp.tanh(x[:2] * x[1:])
    x = gnp.asarray(r(3))
    J = numerical_jacobian_tree(f, (to_np(x),))
    _, cols = gpuad.vmap(lambda t: gpuad.jvp(f, (x,), (t,)))(gnp.eye(3))
    assert_close(cols.T, J)
    _, pullback = gpuad.vjp(f, x)
    assert_close(gpuad.vmap(pullback)(gnp.eye(2))[0], J)


# ---------------------------------------------------------------- higher order and nesting
def test_third_order_jacrev_of_hessian():
    def f(x):
        return gnp.sum(gnp.sin(x) * x[0] ** 2) + x[1] ** 3 * x[2]
    x = r(3)
    T = gpuad.jacrev(gpuad.hessian(f))(gnp.asarray(x))
    assert T.shape == (3, 3, 3)
    assert_close(T, numerical_jacobian_tree(gpuad.hessian(f), (x,)), rtol=1e-5, atol=1e-5)
    assert_close(gpuad.jacfwd(gpuad.jacfwd(gpuad.jacfwd(f)))(gnp.asarray(x)), T, rtol=1e-10, atol=1e-10)


def test_third_order_closed_form():
    T = gpuad.jacfwd(gpuad.hessian(lambda x: gnp.exp(2 * x)))(gnp.asarray(0.3))
    assert_close(T, 8 * np.exp(0.6), rtol=1e-12, atol=1e-12)


def test_vjp_of_jvp():
    v = r(3)

    def directional(x):
        return gpuad.jvp(lambda y: gnp.sin(y) * gnp.sum(y ** 2), (x,), (gnp.asarray(v),))[1]
    x = r(3)
    u = r(3)
    _, pullback = gpuad.vjp(directional, gnp.asarray(x))
    expected = numerical_jacobian_tree(directional, (x,)).T @ u
    assert_close(pullback(gnp.asarray(u))[0], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("x", [0.0, 1.0, -2.5, 7.0])
def test_no_perturbation_confusion(x):
    """d/dx [x * d/dy (x + y)] = 1: the inner derivative must not see the outer x's perturbation."""
    def outer(x):
        return x * gpuad.grad(lambda y: x + y)(1.0)
    for d in (gpuad.grad, gpuad.jacfwd, gpuad.jacrev):
        assert_close(d(outer)(x), 1.0, rtol=0, atol=0)

    def outer_fwd(x):
        return x * gpuad.jvp(lambda y: x + y, (1.0,), (1.0,))[1]
    for d in (gpuad.grad, gpuad.jacfwd):
        assert_close(d(outer_fwd)(x), 1.0, rtol=0, atol=0)


def test_closure_over_outer_variable_second_order():
    """d/dx of grad_y(x * y^2) at y = x: 2 y + ... checked by closed form: g(x) = 2 x * x -> 4 x."""
    g = lambda x: gpuad.grad(lambda y: x * y ** 2)(x)  # noqa: E731
    assert_close(gpuad.grad(g)(1.5), 6.0, rtol=1e-12, atol=1e-12)
    assert_close(gpuad.jacfwd(g)(1.5), 6.0, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- Python control flow on values
def piecewise(x):
    if x > 0:
        return x ** 2
    return -x ** 3


def loop_until_small(x):
    y = x
    while y > 0.1:
        y = y * 0.5
    return y * gnp.sin(x)


@pytest.mark.parametrize("x,expected", [(1.5, 3.0), (-2.0, -12.0)])
def test_if_on_values_under_transforms(x, expected):
    for d in (gpuad.grad, gpuad.jacfwd, gpuad.jacrev, gpuad.jacobian):
        assert_close(d(piecewise)(x), expected, rtol=1e-12, atol=1e-12)
    assert_close(gpuad.jvp(piecewise, (x,), (2.0,))[1], 2 * expected, rtol=1e-12, atol=1e-12)
    assert_close(gpuad.vjp(piecewise, x)[1](gnp.asarray(1.0))[0], expected, rtol=1e-12, atol=1e-12)


def test_while_and_vector_branch_under_transforms():
    x = 0.9
    assert_close(gpuad.grad(loop_until_small)(x), numerical_jacobian_tree(loop_until_small, (np.asarray(x),)))

    def f(v):
        return v * v[0] if v[0] > v[1] else v * v[1]
    v = gnp.asarray([2.0, 1.0])
    assert_close(gpuad.jacfwd(f)(v), [[2 * 2.0, 0.0], [1.0, 2.0]])
    assert_close(gpuad.jacrev(f)(v), [[2 * 2.0, 0.0], [1.0, 2.0]])


def test_if_on_batched_value_raises_clear_error():
    with pytest.raises(TypeError, match="vmap.*where"):
        gpuad.vmap(piecewise)(gnp.asarray([1.0, -1.0]))


def test_if_on_unbatched_value_is_fine_under_vmap():
    f = gpuad.vmap(lambda x, c: x * 2 if c > 0 else x, in_axes=(0, None))
    assert_close(f(gnp.asarray([1.0, 2.0]), 1.0), [2.0, 4.0])


# ---------------------------------------------------------------- dtypes
def _f32_fn(x):
    return gnp.sin(x) * x ** 2 + 0.5 * gnp.sum(x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(dtype):
    x = gnp.asarray([0.3, -1.2, 2.0], dtype=dtype)
    results = [
        _f32_fn(x), gpuad.jacfwd(_f32_fn)(x), gpuad.jacrev(_f32_fn)(x), gpuad.jacobian(_f32_fn)(x),
        gpuad.grad(lambda x: gnp.sum(_f32_fn(x)))(x), gpuad.hessian(lambda x: gnp.sum(_f32_fn(x)))(x),
        gpuad.jvp(_f32_fn, (x,), (gnp.ones(3, dtype=dtype),))[1],
        gpuad.vjp(_f32_fn, x)[1](gnp.ones(3, dtype=dtype))[0],
        gpuad.linearize(_f32_fn, x)[1](gnp.ones(3, dtype=dtype)),
        gpuad.hvp(lambda x: gnp.sum(_f32_fn(x)), (x,), (gnp.ones(3, dtype=dtype),)),
        gpuad.vmap(gpuad.grad(lambda v: gnp.sum(_f32_fn(v))))(gnp.ones((2, 3), dtype=dtype)),
    ]
    for k, res in enumerate(results):
        assert to_np(res).dtype == dtype, f"result {k} has dtype {to_np(res).dtype}"
    J64 = gpuad.jacfwd(_f32_fn)(gnp.asarray(to_np(x), dtype=np.float64))
    assert_close(results[1], J64, rtol=1e-5, atol=1e-5)


def test_mixed_precision_follows_numpy_promotion():
    x32 = gnp.asarray([1.0, 2.0], dtype=np.float32)
    c64 = np.array([0.5, 0.25])
    J = gpuad.jacfwd(lambda x: x * c64)(x32)
    assert to_np(J).dtype == (np.asarray([1.0], np.float32) * c64).dtype
    assert_close(J, np.diag(c64))


def test_reverse_mode_derivatives_take_the_input_dtype():
    """As in JAX: float64 constants inside a function of float32 inputs promote its values, but
    the gradient, jacrev and vjp cotangents come back in the input's dtype (jacfwd follows the output's)."""
    x32 = gnp.asarray([1.0, 2.0], dtype=np.float32)
    c64 = np.array([0.5, 0.25])
    g = gpuad.grad(lambda x: gnp.sum(x ** 2 * c64))(x32)
    assert to_np(g).dtype == np.float32
    assert_close(g, 2 * np.array([1.0, 2.0]) * c64, rtol=1e-6)
    assert to_np(gpuad.jacrev(lambda x: x * c64)(x32)).dtype == np.float32
    assert to_np(gpuad.vjp(lambda x: x * c64, x32)[1](gnp.ones(2))[0]).dtype == np.float32
    assert to_np(gpuad.hessian(lambda x: gnp.sum(x ** 3 * c64))(x32)).dtype == np.float32
    assert to_np(gpuad.jit(gpuad.grad(lambda x: gnp.sum(x ** 2 * c64)))(x32)).dtype == np.float32


def test_numpy_scalar_types_cast_traced_values():
    """gnp.float32(x) casts a traced x (the derivative follows); gnp.int64(x) drops it, as in JAX;
    the same names still work as dtypes and on plain values."""
    x = gnp.asarray([1.5, -2.5])
    g = gpuad.grad(lambda x: gnp.sum(gnp.float32(x) ** 2))(x)
    assert to_np(g).dtype == np.float64 and np.allclose(to_np(g), [3.0, -5.0])
    assert_close(gpuad.jacfwd(lambda x: gnp.int64(x) * 1.0 + x)(x), np.eye(2))
    assert gnp.zeros(2, dtype=gnp.float32).dtype == gnp.float32 == np.float32
    assert type(gnp.float32(2.5)) is np.float32
    assert gpuad.jit(lambda x: gnp.float32(x))(x).dtype == np.float32


def test_astype_derivative_follows_the_cast():
    x = gnp.asarray([1.0, 2.0])
    J = gpuad.jacfwd(lambda x: x.astype(np.float32) * 2)(x)
    assert to_np(J).dtype == np.float32
    assert_close(J, 2 * np.eye(2))
    g = gpuad.grad(lambda x: gnp.sum(x.astype(np.float32) ** 2))(x)
    assert to_np(g).dtype == np.float64  # the cotangent is cast back to the input's dtype
    assert_close(g, [2.0, 4.0])


# ---------------------------------------------------------------- NumPy arrays and Python scalars as operands
W = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])


@pytest.mark.parametrize("f,expected", [
    (lambda x: W @ x, lambda x: W),
    (lambda x: x @ W.T, lambda x: W),
    (lambda x: W[0] * x + 2.0, lambda x: np.diag(W[0])),
    (lambda x: 2.0 * x - W[1], lambda x: 2 * np.eye(3)),
    (lambda x: W[0] / x, lambda x: np.diag(-W[0] / x ** 2)),
    (lambda x: 1.0 - x, lambda x: -np.eye(3)),
    (lambda x: np.float64(3.0) * x, lambda x: 3 * np.eye(3)),
    (lambda x: 2.0 ** x, lambda x: np.diag(np.log(2.0) * 2.0 ** x)),
    (lambda x: x ** 3, lambda x: np.diag(3 * x ** 2)),
    (lambda x: gnp.where(W[0] > x, x, W[1]), lambda x: np.diag((W[0] > x) * 1.0)),
], ids=["W@x", "x@W.T", "np*x+2", "2*x-np", "np/x", "1-x", "np_scalar*x", "2**x", "x**3", "np>x"])
def test_numpy_and_python_operands_on_either_side(f, expected):
    x = np.array([0.5, 1.5, -2.0])
    for jac in (gpuad.jacfwd, gpuad.jacrev):
        assert_close(jac(f)(gnp.asarray(x)), expected(x), rtol=1e-12, atol=1e-12)


def test_traced_values_behave_like_arrays():
    def f(x):
        assert (x.shape, x.ndim, x.size, len(x)) == ((3, 2), 2, 6, 3)
        assert x.dtype == np.float64 and x.T.shape == (2, 3)
        rows = [row for row in x]
        return rows[0] * rows[2] + x.at[1, 0].set(5.0)[1]
    def reference(x):  # the same function on plain arrays, which have no .at
        y = x.copy()
        y[1, 0] = 5.0
        return x[0] * x[2] + y[1]
    x = r(3, 2)
    assert_close(gpuad.jacrev(f)(gnp.asarray(x)), numerical_jacobian_tree(reference, (x,)))


# ---------------------------------------------------------------- one sweep
def _one_sweep_fn(x):
    h = gnp.tanh(gnp.cumsum(x) * x) + gnp.sin(x[::-1])
    return gnp.concatenate([h * gnp.sum(x ** 2), gnp.max(h, keepdims=True)])


@pytest.mark.parametrize("transform", [gpuad.jacfwd, gpuad.jacrev, gpuad.jacobian, gpuad.hessian,
                                       lambda f: gpuad.jacobian(f, mode="forward")],
                         ids=["jacfwd", "jacrev", "jacobian", "hessian", "jacobian_forward"])
def test_primitive_evaluations_do_not_grow_with_dimension(transform):
    f = (lambda x: gnp.sum(_one_sweep_fn(x) ** 2)) if transform is gpuad.hessian else _one_sweep_fn
    small, evals_small = count_evals(transform(f), gnp.asarray(r(4)))
    big, evals_big = count_evals(transform(f), gnp.asarray(r(64)))
    assert big.shape[-1] == 64 and evals_small > 0
    assert evals_big == evals_small, f"{evals_small} evaluations at n=4, {evals_big} at n=64"


def test_chunking_is_the_only_loop():
    f = _one_sweep_fn
    x = gnp.asarray(r(12))
    _, one = count_evals(gpuad.jacfwd(f), x)
    _, three = count_evals(gpuad.jacfwd(f, chunk_size=4), x)
    assert three > one  # each chunk is one more sweep


@pytest.mark.parametrize("transform", [gpuad.jacfwd, gpuad.jacrev, gpuad.jacobian, gpuad.hessian, gpuad.grad])
def test_keyword_arguments_pass_through_undifferentiated(transform):
    f = lambda x, scale=1.0: gnp.sum(gnp.sin(x)) * scale  # noqa: E731
    x = gnp.asarray(r(3))
    assert_close(transform(f)(x, scale=2.5), 2.5 * to_np(transform(f)(x)), rtol=1e-13, atol=1e-13)


def test_vmap_maps_keyword_arguments_over_their_leading_axis():
    a, b = r(4, 2), r(4, 2)
    got = gpuad.vmap(lambda x, y=None: x * gnp.sum(y))(gnp.asarray(a), y=gnp.asarray(b))
    assert_close(got, a * b.sum(axis=1, keepdims=True), rtol=1e-13, atol=1e-13)


def test_vmap_over_integer_positions_gathers_and_differentiates():
    """x[i] and gnp.take with a batched i: each example picks its own rows (repeats included)."""
    X, idx = r(6, 3), np.array([[4, 0], [0, 5], [2, 2]])
    rows = gpuad.vmap(lambda i: gnp.take(gnp.asarray(X), i, axis=0))(idx)
    assert_close(rows, X[idx], rtol=0, atol=0)
    cols = gpuad.vmap(lambda i: gnp.take(gnp.asarray(X), i, axis=1))(idx[:, 0] % 3)
    assert_close(cols, X[:, idx[:, 0] % 3].T, rtol=0, atol=0)
    f = lambda x: gpuad.vmap(lambda i: gnp.sin(gnp.take(x, i, axis=0)))(idx)  # noqa: E731
    expected = numerical_jacobian_tree(f, (X,))
    assert_close(gpuad.jacrev(f)(gnp.asarray(X)), expected, rtol=1e-7, atol=1e-8)
    assert_close(gpuad.jacfwd(f)(gnp.asarray(X)), expected, rtol=1e-7, atol=1e-8)
    g = lambda x: gpuad.vmap(lambda i: x[i] ** 2)(idx)  # noqa: E731  x is traced: x[i] itself gathers
    assert_close(gpuad.jacrev(g)(gnp.asarray(X)), gpuad.jacfwd(g)(gnp.asarray(X)), rtol=1e-14, atol=1e-14)


# ---------------------------------------------------------------- special points: finite, not nan
@pytest.mark.parametrize("f,x,expected", [
    (lambda x: x ** 0.0, 0.0, [0.0, 0.0, 0.0]),           # constant: every derivative 0, also at 0
    (lambda x: x ** 1.0, 0.0, [1.0, 0.0, 0.0]),
    (lambda x: x ** 2.0, 0.0, [0.0, 2.0, 0.0]),
    (lambda x: x ** 3.0, 0.0, [0.0, 0.0, 6.0]),
    (lambda x: gnp.std(gnp.stack([x])), 1.5, [0.0, 0.0, 0.0]),    # std of one element: 0
    (lambda x: gnp.var(gnp.stack([x])), 1.5, [0.0, 0.0, 0.0]),
])
def test_derivatives_at_special_points_are_finite(f, x, expected):
    """First to third derivatives where the function is smooth (or constant) but a naive rule
    divides by zero: x ** b at 0, the std of one element. Eager, both modes, and compiled."""
    x = gnp.asarray(x)
    d1, d2 = gpuad.grad(f), gpuad.grad(gpuad.grad(f))
    d3 = gpuad.grad(d2)
    for fun, want in zip((d1, d2, d3), expected):
        assert_close(fun(x), np.asarray(want))
        assert_close(gpuad.jit(fun)(x), np.asarray(want))
    assert_close(gpuad.jacfwd(gpuad.jacfwd(f))(x), np.asarray(expected[1]))


# ---------------------------------------------------------------- arrays of other libraries (DLPack)
class _DLPackOnly:
    """An array of some other library: DLPack, a shape and a dtype, nothing else gpuad knows."""

    def __init__(self, array):
        self._array = array

    def __dlpack__(self, **kwargs):
        return self._array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()

    @property
    def shape(self):
        return self._array.shape

    @property
    def dtype(self):
        return self._array.dtype


def test_dlpack_inputs_are_taken_without_a_copy_and_differentiated():
    base = to_np(gnp.asarray(np.linspace(0.1, 1.0, 4)))
    other = _DLPackOnly(base)
    if gpuad.backend() == "numpy":
        assert np.shares_memory(to_np(gnp.asarray(other)), base)
    assert_close(gpuad.jacfwd(gnp.sin)(other), np.diag(np.cos(base)))
    assert_close(gpuad.jit(gpuad.grad(lambda x: gnp.sum(x ** 2)))(other), 2 * base)


def test_torch_tensors_in_and_results_back_by_dlpack():
    torch = pytest.importorskip("torch")
    if gpuad.backend() != "numpy":
        pytest.skip("a CPU tensor on the CPU backend")
    t = torch.linspace(0.0, 1.0, 3, dtype=torch.float64)
    jac = gpuad.jacfwd(gnp.exp)(t)
    back = torch.from_dlpack(jac)
    assert torch.allclose(back, torch.diag(torch.exp(t)))
