"""gpuad.custom_jvp and gpuad.custom_vjp: the user's rules are the ones every transform uses (a rule
deliberately off by a factor shows through jacfwd, jacrev, jvp and vjp), correct rules agree with
finite differences in both modes, the Hessian differentiates a JVP rule again, the rules compose
with vmap and gpuad.jit both ways, nondiff_argnums, pytrees, the implicit-function example, and
misuse gets clear errors."""
import functools

import numpy as np
import pytest
from helpers import assert_close, assert_tree_close, numerical_jacobian_tree, on_backend, to_np

import gpuad
import gpuad.numpy as gnp

X = np.array([0.3, -1.2, 2.0])


# ---------------------------------------------------------------- functions under test
@gpuad.custom_jvp
def twice_sin(x):
    """sin, with a rule that says its derivative is 2 cos: a consistent but different derivative."""
    return gnp.sin(x)


@twice_sin.defjvp
def _twice_sin_jvp(primals, tangents):
    x, = primals
    return twice_sin(x), 2.0 * gnp.cos(x) * tangents[0]


@gpuad.custom_vjp
def thrice_sin(x):
    return gnp.sin(x)


thrice_sin.defvjp(lambda x: (thrice_sin(x), gnp.cos(x)), lambda c, g: (3.0 * c * g,))


@gpuad.custom_jvp
def softplus_pair(x, y):
    """A pytree out ((value, value * y)) of two arguments, with a correct rule."""
    s = gnp.log1p(gnp.exp(x))
    return s, s * y


@softplus_pair.defjvp
def _softplus_pair_jvp(primals, tangents):
    (x, y), (dx, dy) = primals, tangents
    s = gnp.log1p(gnp.exp(x))
    ds = dx / (1.0 + gnp.exp(-x))
    return (s, s * y), (ds, ds * y + s * dy)


@gpuad.custom_vjp
def softplus_vjp(x, y):
    s = gnp.log1p(gnp.exp(x))
    return s, s * y


def _softplus_fwd(x, y):
    return softplus_vjp(x, y), (x, y)


def _softplus_bwd(res, g):
    (x, y), (gs, gsy) = res, g
    s, sig = gnp.log1p(gnp.exp(x)), 1.0 / (1.0 + gnp.exp(-x))
    return (gs + gsy * y) * sig, gsy * s


softplus_vjp.defvjp(_softplus_fwd, _softplus_bwd)
CORRECT = [softplus_pair, softplus_vjp]


def _first(f):
    return lambda x, y: f(x, y)[1]


# ---------------------------------------------------------------- the rules are the ones used
def test_custom_jvp_rule_is_what_every_transform_returns():
    x, = on_backend(X)
    expected = np.diag(2.0 * np.cos(X))
    assert_close(gpuad.jacfwd(twice_sin)(x), expected)
    assert_close(gpuad.jacrev(twice_sin)(x), expected)
    assert_close(gpuad.jvp(twice_sin, (x,), (gnp.ones(3),))[1], 2.0 * np.cos(X))
    assert_close(gpuad.vjp(twice_sin, x)[1](gnp.ones(3))[0], 2.0 * np.cos(X))


def test_custom_vjp_rule_is_what_every_transform_returns():
    x, = on_backend(X)
    expected = np.diag(3.0 * np.cos(X))
    assert_close(gpuad.jacrev(thrice_sin)(x), expected)
    assert_close(gpuad.jacfwd(thrice_sin)(x), expected)  # bwd's transpose
    assert_close(gpuad.grad(lambda v: gnp.sum(thrice_sin(v)))(x), 3.0 * np.cos(X))
    assert_close(gpuad.jvp(thrice_sin, (x,), (gnp.ones(3),))[1], 3.0 * np.cos(X))


def test_the_primal_is_the_function():
    x, = on_backend(X)
    assert_close(twice_sin(x), np.sin(X))
    assert_close(thrice_sin(x), np.sin(X))


def test_forward_mode_runs_the_function_once():
    runs = []

    @gpuad.custom_jvp
    def f(x):
        runs.append(1)
        return gnp.sin(x)
    f.defjvp(lambda p, t: (f(p[0]), gnp.cos(p[0]) * t[0]))  # primal_out from f: one run
    g = gpuad.custom_vjp(f.fun)
    g.defvjp(lambda x: (g(x), x), lambda x, ct: (gnp.cos(x) * ct,))
    x, = on_backend(X)
    for h in (f, g):
        runs.clear()
        assert_close(gpuad.jacfwd(h)(x), np.diag(np.cos(X)))
        assert len(runs) == 1


def test_reverse_mode_keeps_the_residuals_of_fwd():
    runs = []

    @gpuad.custom_vjp
    def f(x):
        runs.append("f")
        return gnp.sin(x)

    def fwd(x):
        runs.append("fwd")
        return f(x), gnp.cos(x)
    f.defvjp(fwd, lambda c, ct: (c * ct,))
    x, = on_backend(X)
    assert_close(gpuad.jacrev(f, chunk_size=1)(x), np.diag(np.cos(X)))  # three sweeps, one fwd
    assert runs == ["fwd", "f"]


def test_higher_orders_and_vmap_run_fwd_once_where_jax_does():
    """A tape that records the call on another transform's values runs fwd on them and keeps the
    residuals for its sweep. The Hessian's one extra fwd (and bwd) is fwd's own call of f under the
    forward level, which runs f's rule there, as it would in JAX."""
    runs = {"f": 0, "fwd": 0, "bwd": 0}

    @gpuad.custom_vjp
    def f(x):
        runs["f"] += 1
        return gnp.sin(x) * x

    def fwd(x):
        runs["fwd"] += 1
        return f(x), x

    def bwd(x, g):
        runs["bwd"] += 1
        return (g * (gnp.cos(x) * x + gnp.sin(x)),)
    f.defvjp(fwd, bwd)
    x, xs = gnp.asarray(X), gnp.asarray(np.stack([X, X[::-1]]))
    loss = lambda v: gnp.sum(f(v))  # noqa: E731
    second = np.diag(2 * np.cos(X) - X * np.sin(X))
    cases = [(lambda: gpuad.hessian(loss)(x), second, (1, 2, 2)),
             (lambda: gpuad.jacrev(gpuad.jacrev(loss))(x), second, (1, 1, 1)),
             (lambda: gpuad.vmap(gpuad.grad(loss))(xs), np.cos(to_np(xs)) * to_np(xs) + np.sin(to_np(xs)), (1, 1, 1)),
             (lambda: gpuad.grad(lambda v: gnp.sum(gpuad.vmap(f)(v)))(xs),
              np.cos(to_np(xs)) * to_np(xs) + np.sin(to_np(xs)), (1, 1, 1))]
    for run, expected, counts in cases:
        runs.update(f=0, fwd=0, bwd=0)
        assert_close(run(), expected)
        assert (runs["f"], runs["fwd"], runs["bwd"]) == counts


# ---------------------------------------------------------------- correct rules: both modes, FD
@pytest.mark.parametrize("f", CORRECT, ids=["custom_jvp", "custom_vjp"])
def test_jacfwd_equals_jacrev_equals_finite_differences(f):
    args = (X, np.array([0.5, 2.0, -1.0]))
    fd = numerical_jacobian_tree(f, args, argnums=(0, 1))
    for t in (gpuad.jacfwd, gpuad.jacrev):
        assert_tree_close(t(f, argnums=(0, 1))(*on_backend(*args)), fd, rtol=1e-6, atol=1e-8)


def test_hessian_differentiates_the_jvp_rule():
    x, = on_backend(X)
    h = gpuad.hessian(lambda v: gnp.sum(twice_sin(v)))(x)
    assert_close(h, np.diag(-2.0 * np.sin(X)))  # d/dx of the rule's 2 cos(x)


@pytest.mark.parametrize("f", CORRECT, ids=["custom_jvp", "custom_vjp"])
def test_hessian_of_a_correct_rule_matches_finite_differences(f):
    y = gnp.asarray(np.array([0.5, 2.0, -1.0]))

    def g(v):
        return gnp.sum(f(v, y)[1] ** 2)
    fd = numerical_jacobian_tree(gpuad.grad(g), (X,))
    assert_close(gpuad.hessian(g)(*on_backend(X)), fd, rtol=1e-6, atol=1e-7)


def test_pytree_arguments_and_cotangents():
    @gpuad.custom_vjp
    def weighted(p):
        return p["w"] * gnp.sin(p["x"])

    weighted.defvjp(lambda p: (weighted(p), p),
                    lambda p, g: ({"w": g * gnp.sin(p["x"]), "x": g * p["w"] * gnp.cos(p["x"])},))
    p = {"w": gnp.asarray(1.5 + X), "x": gnp.asarray(X)}
    fd = numerical_jacobian_tree(weighted, ({"w": 1.5 + X, "x": X},))
    assert_tree_close(gpuad.jacrev(weighted)(p), fd, rtol=1e-6, atol=1e-8)
    assert_tree_close(gpuad.jacfwd(weighted)(p), fd, rtol=1e-6, atol=1e-8)


def test_sparsity_sees_a_custom_function_as_dense():
    pytest.importorskip("scipy")
    f = gpuad.custom_jvp(lambda x: x * 2.0)  # diagonal inside, but opaque to the pattern
    assert gpuad.sparse.jacobian_sparsity(f)(*on_backend(X)).toarray().all()


# ---------------------------------------------------------------- vmap
@pytest.mark.parametrize("f", CORRECT + [twice_sin, thrice_sin], ids=["jvp", "vjp", "twice", "thrice"])
def test_vmap_and_its_derivatives_match_row_by_row(f):
    xs, y = on_backend(np.stack([X, X + 0.5]), np.array([0.5, 2.0, -1.0]))
    g = (lambda x, y: f(x, y)[1]) if f in CORRECT else (lambda x, y: f(x) * y)
    batched = gpuad.vmap(g, in_axes=(0, None))
    assert_close(batched(xs, y), np.stack([gpuad.tree_map(np.asarray, g(r, y)) for r in xs]))
    for t in (gpuad.jacfwd, gpuad.jacrev):
        per_row = gpuad.vmap(t(g, argnums=(0, 1)), in_axes=(0, None))(xs, y)
        whole = t(batched, argnums=(0, 1))(xs, y)  # y unbatched: its cotangents sum over the batch
        for k in range(2):
            assert_close(whole[0][k, :, k, :], per_row[0][k])
            assert_close(whole[1][k], per_row[1][k])


# ---------------------------------------------------------------- gpuad.jit
@pytest.mark.parametrize("f", [twice_sin, thrice_sin], ids=["custom_jvp", "custom_vjp"])
def test_jit_composes_both_ways(f):
    x, = on_backend(X)
    for t in (gpuad.jacfwd, gpuad.jacrev):
        eager = t(f)(x)
        assert_close(gpuad.jit(t(f))(x), eager, rtol=1e-12, atol=1e-12)
        assert_close(t(gpuad.jit(f))(x), eager, rtol=1e-12, atol=1e-12)
    assert_close(gpuad.jit(f)(x), np.sin(X))
    assert "custom_call" in gpuad.jit(f).lower(x).as_text()


def test_jit_of_hessian_and_vmap():
    x, = on_backend(X)
    g = gpuad.hessian(lambda v: gnp.sum(twice_sin(v) * softplus_vjp(v, v)[1]))
    assert_close(gpuad.jit(g)(x), g(x), rtol=1e-12, atol=1e-12)
    b = gpuad.vmap(gpuad.jacfwd(thrice_sin))
    xs = gnp.asarray(np.stack([X, -X]))
    assert_close(gpuad.jit(b)(xs), b(xs), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- nondiff_argnums
def test_nondiff_argnums():
    @functools.partial(gpuad.custom_jvp, nondiff_argnums=(0,))
    def power(n, x):
        return x ** n

    @power.defjvp
    def _power_jvp(n, primals, tangents):
        x, = primals
        return power(n, x), n * x ** (n - 1) * tangents[0]

    scale = gpuad.custom_vjp(lambda x, k: x * k, nondiff_argnums=(1,))
    scale.defvjp(lambda x, k: (scale(x, k), None), lambda k, res, g: (k * g,))
    x, = on_backend(X)
    assert_close(gpuad.jacrev(power, argnums=1)(3, x), np.diag(3 * X ** 2))
    assert_close(gpuad.hessian(lambda v: gnp.sum(power(3, v)))(x), np.diag(6 * X))
    assert_close(gpuad.jacfwd(scale)(x, 2.5), 2.5 * np.eye(3))
    assert_close(gpuad.jit(gpuad.jacrev(scale), static_argnums=1)(x, 2.5), 2.5 * np.eye(3))


# ---------------------------------------------------------------- keyword arguments, defjvps
@gpuad.custom_jvp
def scaled_sin(x, scale=2.0):
    return scale * gnp.sin(x)


@scaled_sin.defjvp
def _scaled_sin_jvp(primals, tangents):
    (x, scale), (dx, dscale) = primals, tangents  # the default arrives as a position, as in JAX
    return scaled_sin(x, scale), scale * gnp.cos(x) * dx + gnp.sin(x) * dscale


scaled_sin_vjp = gpuad.custom_vjp(scaled_sin.fun)
scaled_sin_vjp.defvjp(lambda x, scale=2.0: (scaled_sin_vjp(x, scale), (x, scale)),
                      lambda res, g: (res[1] * gnp.cos(res[0]) * g, gnp.sum(gnp.sin(res[0]) * g)))


@pytest.mark.parametrize("f", [scaled_sin, scaled_sin_vjp], ids=["custom_jvp", "custom_vjp"])
def test_keyword_arguments_and_defaults_become_positions(f):
    x, = on_backend(X)
    for call, scale in [(lambda v: f(v), 2.0), (lambda v: f(v, scale=3.0), 3.0), (lambda v: f(x=v, scale=0.5), 0.5)]:
        for transform in (gpuad.jacfwd, gpuad.jacrev):
            assert_close(transform(call)(x), np.diag(scale * np.cos(X)))
    assert_close(gpuad.grad(lambda s: gnp.sum(f(x, scale=s)))(1.5), np.sum(np.sin(X)))
    assert_close(gpuad.hessian(lambda v: gnp.sum(f(v, scale=3.0)))(x), np.diag(-3.0 * np.sin(X)))
    with pytest.raises(TypeError, match="unexpected keyword argument 'shift'"):
        f(x, shift=1.0)


def test_keyword_only_arguments_are_refused_as_in_jax():
    f = gpuad.custom_jvp(lambda x, *, k: x * k)
    with pytest.raises(TypeError, match=r"keyword-only arguments \(k\).*make them positional"):
        f(1.0, k=2.0)


def test_defjvps_sums_one_rule_per_argument():
    f = gpuad.custom_jvp(lambda x, y: gnp.sin(x) * y)
    f.defjvps(lambda g, ans, x, y: 3.0 * gnp.cos(x) * y * g, lambda g, ans, x, y: gnp.sin(x) * g)
    x, y = on_backend(X, X[::-1])
    jx, jy = gpuad.jacrev(f, argnums=(0, 1))(x, y)
    assert_close(jx, np.diag(3.0 * np.cos(X) * X[::-1]))  # the rule's factor 3 shows: it is used
    assert_close(jy, np.diag(np.sin(X)))
    assert_tree_close(gpuad.jacfwd(f, argnums=(0, 1))(x, y), (jx, jy))
    g = gpuad.custom_jvp(lambda x, y: gnp.sin(x) * y)
    g.defjvps(None, lambda t, ans, x, y: gnp.sin(x) * t)  # None: no dependence on x
    assert_close(gpuad.jacfwd(g)(x, y), np.zeros((3, 3)))
    assert_close(gpuad.hessian(lambda v: gnp.sum(g(x, v) ** 2))(y), np.diag(2.0 * np.sin(X) ** 2))
    with pytest.raises(TypeError, match="defjvps was given 1 functions for a call with 2 arguments"):
        h = gpuad.custom_jvp(lambda x, y: x * y)
        h.defjvps(lambda t, ans, x, y: t * y)
        gpuad.jacfwd(h)(x, y)
    with pytest.raises(TypeError, match="nondiff_argnums; use defjvp"):
        gpuad.custom_jvp(lambda n, x: x ** n, nondiff_argnums=(0,)).defjvps(None, None)


# ---------------------------------------------------------------- the implicit-function example
N = 4
W = 0.4 * np.random.default_rng(0).standard_normal((N, N)) / np.sqrt(N)
B = np.random.default_rng(1).standard_normal(N)


def _iterate(w, b):
    x = gnp.zeros_like(b)
    for _ in range(80):  # a contraction: 80 steps reach float64 precision
        x = gnp.tanh(w @ x + b)
    return x


fixed_point_vjp = gpuad.custom_vjp(_iterate)
fixed_point_jvp = gpuad.custom_jvp(_iterate)


def _fp_fwd(w, b):
    x = fixed_point_vjp(w, b)
    return x, (w, x)


def _fp_bwd(res, g):
    # x = tanh(w x + b): (I - D w) dx = D (dw x + db), D = diag(1 - x^2); transposed
    w, x = res
    d = 1.0 - x ** 2
    u = d * gnp.linalg.solve((gnp.eye(N) - d[:, None] * w).T, g)
    return gnp.outer(u, x), u


@fixed_point_jvp.defjvp
def _fp_jvp(primals, tangents):
    (w, b), (dw, db) = primals, tangents
    x = fixed_point_jvp(w, b)
    d = 1.0 - x ** 2
    return x, gnp.linalg.solve(gnp.eye(N) - d[:, None] * w, d * (dw @ x + db))


fixed_point_vjp.defvjp(_fp_fwd, _fp_bwd)


@pytest.mark.parametrize("f", [fixed_point_vjp, fixed_point_jvp], ids=["custom_vjp", "custom_jvp"])
def test_implicit_function_matches_finite_differences(f):
    fd = numerical_jacobian_tree(_iterate, (W, B), argnums=(0, 1))
    w, b = on_backend(W, B)
    for t in (gpuad.jacfwd, gpuad.jacrev):
        assert_tree_close(t(f, argnums=(0, 1))(w, b), fd, rtol=1e-6, atol=1e-8)
    assert_close(gpuad.jit(gpuad.jacrev(f, argnums=1))(w, b), fd[1], rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------- errors
def test_missing_rules_are_named():
    bare = gpuad.custom_jvp(gnp.sin)
    bare_vjp = gpuad.custom_vjp(gnp.sin)
    x, = on_backend(X)
    assert_close(bare(x), np.sin(X))  # calling needs no rule
    with pytest.raises(TypeError, match="defjvp"):
        gpuad.jacfwd(bare)(x)
    with pytest.raises(TypeError, match="defvjp"):
        gpuad.jacrev(bare_vjp)(x)


def test_wrong_tangent_shape_from_the_rule():
    f = gpuad.custom_jvp(gnp.sin)
    f.defjvp(lambda p, t: (gnp.sin(p[0]), gnp.sum(t[0])))
    with pytest.raises(ValueError, match=r"tangent_out has shape \(\)"):
        gpuad.jacfwd(f)(*on_backend(X))


def test_bwd_with_the_wrong_number_of_cotangents():
    f = gpuad.custom_vjp(lambda x, y: x * y)
    f.defvjp(lambda x, y: (x * y, (x, y)), lambda res, g: (g * res[1],))
    with pytest.raises(ValueError, match="tuple of 2 cotangents"):
        gpuad.jacrev(f)(*on_backend(X, X))


def test_traced_nondiff_argument_is_refused():
    f = gpuad.custom_jvp(lambda x, y: x * y, nondiff_argnums=(1,))
    with pytest.raises(TypeError, match="nondiff_argnums"):
        gpuad.jacfwd(lambda v: f(v, v))(*on_backend(X))
