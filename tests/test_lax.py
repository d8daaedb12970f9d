"""gpuad.lax: loops and conditionals against the unrolled Python loop, finite differences, the
other AD mode and closed forms, under every transform and gpuad.jit."""
import functools

import numpy as np
import pytest
from helpers import assert_close, assert_tree_close, numerical_jacobian, on_backend, to_np

import gpuad
import gpuad.numpy as gnp
from gpuad import backends, core, lax
from gpuad import branches as branching


# ---------------------------------------------------------------- problems
def _field(y, p):
    """A small nonlinear ODE (a damped pendulum with a parameter vector p)."""
    return gnp.stack([y[1], -p[0] * gnp.sin(y[0]) - p[1] * y[1] + 0.1 * y[0] * y[1]])


def _rk4_step(y, p, h=0.05):
    k1 = _field(y, p)
    k2 = _field(y + 0.5 * h * k1, p)
    k3 = _field(y + 0.5 * h * k2, p)
    k4 = _field(y + h * k3, p)
    return y + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def rk4_loop(y0, p, steps=20):
    return lax.fori_loop(0, steps, lambda i, y: _rk4_step(y, p), y0)


def rk4_python(y0, p, steps=20):
    y = y0
    for _ in range(steps):
        y = _rk4_step(y, p)
    return y


Y0, P = np.array([0.7, -0.3]), np.array([1.3, 0.2])


def _recurrence(h0, xs, w):
    """A scan with closed-over weights, per-step inputs and stacked outputs."""
    def cell(h, x):
        h = gnp.tanh(w @ h + x)
        return h, gnp.sum(h * h)
    return lax.scan(cell, h0, xs)


def _recurrence_python(h0, xs, w):
    h, ys = h0, []
    for k in range(xs.shape[0]):
        h = gnp.tanh(w @ h + xs[k])
        ys.append(gnp.sum(h * h))
    return h, gnp.stack(ys)


def _newton_cbrt(p):
    """y with y**3 + p*y - 1 = 0 by Newton's method to convergence, in a while_loop."""
    def step(s):
        y, _ = s
        g = y ** 3 + p * y - 1.0
        return y - g / (3.0 * y ** 2 + p), gnp.abs(g)
    return lax.while_loop(lambda s: gnp.max(s[1]) > 1e-14, step, (gnp.ones_like(p), gnp.ones_like(p)))[0]


# ---------------------------------------------------------------- eager semantics
def test_loops_equal_their_python_loops():
    y0, p = on_backend(Y0, P)
    assert_close(rk4_loop(y0, p), rk4_python(y0, p), rtol=1e-14, atol=1e-14)
    rng = np.random.default_rng(0)
    h0, xs, w = on_backend(rng.normal(size=3), rng.normal(size=(6, 3)), rng.normal(size=(3, 3)) * 0.5)
    for a, b in zip(_recurrence(h0, xs, w), _recurrence_python(h0, xs, w)):
        assert_close(a, b, rtol=1e-14, atol=1e-14)
    assert_close(lax.map(lambda x: gnp.sum(x * x), xs), gnp.sum(xs * xs, axis=1), rtol=1e-14)


def test_reverse_scan_aligns_ys_with_xs():
    c, ys = lax.scan(lambda c, x: (c * 10.0 + x, c), 0.0, gnp.asarray([1.0, 2.0, 3.0]), reverse=True)
    assert to_np(c) == 321.0
    np.testing.assert_array_equal(to_np(ys), [32.0, 3.0, 0.0])


def test_pytree_carries_and_int_leaves():
    out = lax.fori_loop(0, 5, lambda i, s: {"n": s["n"] + i, "x": (s["x"][0] * 2.0,)},
                        {"n": 0, "x": (gnp.asarray([1.0, 3.0]),)})
    assert to_np(out["n"]) == 10 and to_np(out["n"]).dtype.kind == "i"
    np.testing.assert_array_equal(to_np(out["x"][0]), [32.0, 96.0])
    assert to_np(lax.while_loop(lambda s: s[0] < 7, lambda s: (s[0] + 2, s[1] + 1.0), (0, 0.0))[1]) == 4.0
    assert to_np(lax.fori_loop(3, 3, lambda i, x: x + 1.0, 5.0)) == 5.0  # no trips


def test_jax_keywords_batch_size_unroll_and_operand():
    """JAX's keywords: map's batch_size (batches under vmap, the slices left over apart),
    fori_loop's unroll (accepted, as scan's), cond's and switch's older operand=."""
    xs = gnp.reshape(gnp.arange(14.0), (7, 2))
    f = lambda x: (gnp.sin(x) * x[0], gnp.sum(x))  # noqa: E731
    expected = lax.map(f, xs)
    for b in (1, 2, 3, 7, 9):
        assert_tree_close(lax.map(f, xs, batch_size=b), expected, rtol=1e-15)
    assert_close(gpuad.jacrev(lambda xs: lax.map(f, xs, batch_size=3)[0])(xs),
                 gpuad.jacrev(lambda xs: lax.map(f, xs)[0])(xs), rtol=1e-15)
    assert to_np(lax.fori_loop(0, 4, lambda i, x: x * 2.0, 1.0, unroll=2)) == 16.0
    for bad in (0, 1.5, True):
        with pytest.raises(TypeError, match="batch_size must be a positive int"):
            lax.map(f, xs, batch_size=bad)
    with pytest.raises(TypeError, match="unroll must be a positive int"):
        lax.fori_loop(0, 4, lambda i, x: x, 1.0, unroll=0)
    assert to_np(lax.cond(False, lambda x: x, lambda x: -x, operand=2.0)) == -2.0
    assert to_np(lax.switch(1, [lambda x: gnp.asarray(1.0), lambda x: gnp.asarray(2.0)], operand=None)) == 2.0
    with pytest.raises(TypeError, match="either positionally or as operand=, not both"):
        lax.cond(True, lambda x, y: x, lambda x, y: y, 1.0, operand=2.0)

def test_cond_and_switch_run_the_branch_taken():
    ran = []

    def branch(k):
        def f(x):
            ran.append(k)
            return x + float(k)
        return f
    x = gnp.asarray(1.0)
    assert to_np(lax.switch(2, [branch(0), branch(1), branch(2)], x)) == 3.0
    assert to_np(lax.switch(7, [branch(0), branch(1), branch(2)], x)) == 3.0  # clamped, as JAX
    assert to_np(lax.cond(x > 2.0, branch(10), branch(20), x)) == 21.0


def test_switch_traces_each_branch_once(monkeypatch):
    """Each branch is traced once into its program, whatever it closes over (a second trace of
    each program taking every branch's constants doubled the tracing)."""
    traced = []
    trace_body = branching.trace_body

    def counting(fun, avals, what):
        traced.append(what)
        return trace_body(fun, avals, what)
    monkeypatch.setattr(branching, "trace_body", counting)
    c = gnp.asarray([2.0, 3.0])
    x = gnp.asarray(1.0)
    branches = [lambda x: x * c[0], lambda x: x * c[1] + 1.0]
    assert to_np(lax.switch(1, branches, x)) == 4.0
    assert traced == ["branch 0", "branch 1"]
    g = gpuad.grad(lambda c_: lax.switch(0, [lambda x: x * c_[0], lambda x: x * c_[1] ** 2], x))
    assert_close(g(c), np.array([1.0, 0.0]))
    assert_close(gpuad.jit(lambda x, c_: lax.switch(1, [lambda x: x * c_[0], lambda x: x * c_[1]], x))(x, c), 3.0)


def test_a_body_that_changes_a_carry_names_the_leaf():
    with pytest.raises(TypeError, match=r"carry\['b'\].*float64\[2\] to float64\[3\]"):
        lax.fori_loop(0, 2, lambda i, s: {"a": s["a"], "b": gnp.concatenate([s["b"], s["a"]])},
                      {"a": gnp.ones(1), "b": gnp.ones(2)})
    with pytest.raises(TypeError, match=r"carry\[1\].*int64\[\] to float64\[\]"):
        lax.while_loop(lambda s: s[0] < 3, lambda s: (s[0] + 1, s[1] * 0.5), (0, 1))
    with pytest.raises(TypeError, match="structure"):
        lax.scan(lambda c, x: ((c, c), x), 0.0, gnp.ones(3))
    with pytest.raises(TypeError, match="branch 1"):
        lax.cond(True, lambda x: x, lambda x: x[:1], gnp.ones(2))
    with pytest.raises(ValueError, match="leading axes"):
        lax.scan(lambda c, x: (c, x), 0.0, (gnp.ones(3), gnp.ones(4)))
    with pytest.raises(TypeError, match="boolean scalar"):
        lax.while_loop(lambda x: x, lambda x: x, 1.0)
    with pytest.raises(TypeError, match="upper must be an integer"):
        lax.fori_loop(0, 2.5, lambda i, x: x, 1.0)
    with pytest.raises(TypeError, match="Python control flow"):
        lax.fori_loop(0, 3, lambda i, x: x + 1.0 if x > 0 else x, 1.0)


def test_stop_gradient():
    f = lambda x: x * lax.stop_gradient(x * x)  # noqa: E731
    assert to_np(gpuad.grad(f)(3.0)) == 9.0
    assert to_np(gpuad.jacfwd(f)(3.0)) == 9.0
    assert to_np(gpuad.hessian(f)(3.0)) == 0.0


def test_compiled_stop_gradient_leaves_its_argument_alone():
    """stop_gradient's result is its argument: the replay wrote x + y into the caller's x (an add
    in place into a result it took for its own) and returned x itself."""
    x, y = gnp.asarray([0.0, 1.0, 2.0]), gnp.ones(3)
    f = gpuad.jit(lambda x, y: lax.stop_gradient(x) + y)
    assert_close(f(x, y), [1.0, 2.0, 3.0])
    assert_close(f(x, y), [1.0, 2.0, 3.0])
    assert_close(x, [0.0, 1.0, 2.0])
    assert gpuad.jit(lax.stop_gradient)(x) is not x


# ---------------------------------------------------------------- derivatives
def test_jacobians_of_an_integrator_match_the_unrolled_loop_and_finite_differences():
    y0, p = on_backend(Y0, P)
    for argnum in (0, 1):
        fwd = gpuad.jacfwd(rk4_loop, argnums=argnum)(y0, p)
        rev = gpuad.jacrev(rk4_loop, argnums=argnum)(y0, p)
        assert_close(fwd, rev, rtol=1e-10, atol=1e-10)
        assert_close(fwd, gpuad.jacfwd(rk4_python, argnums=argnum)(y0, p), rtol=1e-12, atol=1e-12)
        assert_close(fwd, numerical_jacobian(rk4_loop, [Y0, P], argnum), rtol=1e-6, atol=1e-8)


def test_scan_derivatives_for_carries_inputs_and_closed_over_weights():
    rng = np.random.default_rng(1)
    args = [rng.normal(size=3), rng.normal(size=(5, 3)), rng.normal(size=(3, 3)) * 0.5]
    for f in (lambda *a: _recurrence(*a)[0], lambda *a: _recurrence(*a)[1]):
        for argnum in range(3):
            fwd = gpuad.jacfwd(f, argnums=argnum)(*on_backend(*args))
            assert_close(fwd, gpuad.jacrev(f, argnums=argnum)(*on_backend(*args)), rtol=1e-10, atol=1e-10)
            assert_close(fwd, numerical_jacobian(f, args, argnum), rtol=1e-6, atol=1e-8)


def test_second_order_and_nesting():
    y0, p = on_backend(Y0, P)
    g = lambda p: gnp.sum(rk4_loop(y0, p) ** 2)  # noqa: E731
    h = gpuad.hessian(g)(p)
    assert_close(h, gpuad.jacrev(gpuad.jacrev(g))(p), rtol=1e-9, atol=1e-10)
    assert_close(h, gpuad.hessian(lambda p: gnp.sum(rk4_python(y0, p) ** 2))(p), rtol=1e-10, atol=1e-12)
    assert_close(gpuad.hvp(g, (p,), (gnp.asarray([1.0, -2.0]),)), to_np(h) @ np.array([1.0, -2.0]), rtol=1e-10)

    def nested(x):  # a scan whose body runs a fori_loop over a closed-over carry of the outer one
        return lax.scan(lambda c, s: (lax.fori_loop(0, 3, lambda i, y: gnp.sin(y) * s + c * 0.1, c), c), x,
                        gnp.asarray([0.5, 1.5]))[1]
    x = gnp.asarray([0.3, 0.9])
    assert_close(gpuad.jacfwd(nested)(x), gpuad.jacrev(nested)(x), rtol=1e-10, atol=1e-12)
    assert_close(gpuad.jacfwd(nested)(x), numerical_jacobian(nested, [to_np(x)], 0), rtol=1e-6, atol=1e-8)
    # no perturbation confusion: d/dx [x * d/dy fori(x + y)] = 1 for the loop that adds once
    inner = lambda x: gpuad.grad(lambda y: lax.fori_loop(0, 1, lambda i, c: c + y, x))(1.0)  # noqa: E731
    assert to_np(gpuad.grad(lambda x: x * inner(x))(2.0)) == 1.0


def test_newton_while_loop_matches_the_implicit_function_theorem():
    p = gnp.asarray([0.5, 1.0, 3.0])
    y = to_np(_newton_cbrt(p))
    np.testing.assert_allclose(y ** 3 + to_np(p) * y - 1.0, 0.0, atol=1e-13)
    implicit = np.diag(-y / (3.0 * y ** 2 + to_np(p)))  # dy/dp = -g_p / g_y
    assert_close(gpuad.jacfwd(_newton_cbrt)(p), implicit, rtol=1e-8, atol=1e-10)
    assert_close(gpuad.jacrev(_newton_cbrt)(p), implicit, rtol=1e-8, atol=1e-10)
    for jac in (gpuad.jacfwd, gpuad.jacrev):  # compiled, jacrev's trip count is known only when it runs
        assert_close(gpuad.jit(jac(_newton_cbrt))(p), implicit, rtol=1e-8, atol=1e-10)


def test_cond_derivatives_follow_the_branch_taken():
    f = lambda x: lax.cond(gnp.sum(x) > 0, lambda y: gnp.sin(y) * y[0], lambda y: y ** 3, x)  # noqa: E731
    for x in (np.array([0.4, 0.5]), np.array([-0.4, 0.1])):
        fwd = gpuad.jacfwd(f)(gnp.asarray(x))
        assert_close(fwd, gpuad.jacrev(f)(gnp.asarray(x)), rtol=1e-12, atol=1e-14)
        assert_close(fwd, numerical_jacobian(f, [x], 0), rtol=1e-6, atol=1e-8)
        assert_close(gpuad.hessian(lambda x: gnp.sum(f(x)))(gnp.asarray(x)),
                     gpuad.jacrev(gpuad.jacrev(lambda x: gnp.sum(f(x))))(gnp.asarray(x)), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- vmap
def test_vmap_of_loops_equals_each_example():
    rng = np.random.default_rng(2)
    ys0, ps = rng.normal(size=(4, 2)), rng.uniform(0.5, 1.5, size=(4, 2))
    batched = gpuad.vmap(rk4_loop)(*on_backend(ys0, ps))
    for k in range(4):
        assert_close(batched[k], rk4_loop(*on_backend(ys0[k], ps[k])), rtol=1e-14)
    jac = gpuad.vmap(gpuad.jacrev(rk4_loop, argnums=1), in_axes=(0, None))(gnp.asarray(ys0), gnp.asarray(P))
    for k in range(4):
        assert_close(jac[k], gpuad.jacfwd(rk4_loop, argnums=1)(gnp.asarray(ys0[k]), gnp.asarray(P)), rtol=1e-10)


def test_vmap_of_a_while_loop_runs_until_every_example_is_done():
    ps = np.array([0.5, 1.0, 3.0, 10.0])
    per = lambda p: lax.while_loop(lambda s: s[0] < p, lambda s: (s[0] * 2.0, s[1] + 1), (gnp.asarray(0.1), 0))  # noqa
    out = gpuad.vmap(per)(gnp.asarray(ps))
    for k, p in enumerate(ps):
        expect = per(gnp.asarray(p))
        assert to_np(out[0][k]) == to_np(expect[0]) and to_np(out[1][k]) == to_np(expect[1])
    assert len(set(to_np(out[1]).tolist())) > 1  # the examples took different trip counts
    # and its derivatives, per example (the implicit function again)
    assert_close(gpuad.vmap(gpuad.grad(lambda p: _newton_cbrt(p[None])[0]))(gnp.asarray(ps)),
                 np.diag(to_np(gpuad.jacfwd(_newton_cbrt)(gnp.asarray(ps)))), rtol=1e-8)


def test_vmap_of_cond_selects_per_example():
    f = lambda x: lax.switch(gnp.where(x > 1.0, 2, gnp.where(x > 0.0, 1, 0)),  # noqa: E731
                             [lambda y: -y, lambda y: y * y, lambda y: gnp.sin(y)], x)
    xs = np.array([-1.0, 0.5, 2.0, 3.0])
    assert_close(gpuad.vmap(f)(gnp.asarray(xs)), [1.0, 0.25, np.sin(2.0), np.sin(3.0)], rtol=1e-14)
    assert_close(gpuad.vmap(gpuad.grad(f))(gnp.asarray(xs)), [-1.0, 1.0, np.cos(2.0), np.cos(3.0)], rtol=1e-14)
    g = lambda x, s: lax.cond(s, lambda y: y * 2.0, lambda y: y, x)  # noqa: E731 (an unbatched predicate)
    assert_close(gpuad.vmap(g, in_axes=(0, None))(gnp.asarray(xs), True), xs * 2.0)


# ---------------------------------------------------------------- gpuad.jit
def test_a_compiled_loop_is_one_equation_and_matches_eager():
    y0, p = on_backend(Y0, P)
    for steps in (20, 200):
        g = functools.partial(rk4_loop, steps=steps)
        f = gpuad.jit(gpuad.jacfwd(g, argnums=1))
        text = f.lower(y0, p).as_text()
        assert text.count("scan[") == 1 and len(text.splitlines()) < 20, text
        assert_close(f(y0, p), gpuad.jacfwd(g, argnums=1)(y0, p), rtol=1e-13)
    assert_close(gpuad.jit(gpuad.jacrev(rk4_loop, argnums=1))(y0, p), gpuad.jacfwd(rk4_loop, argnums=1)(y0, p),
                 rtol=1e-10)
    assert_close(gpuad.jit(gpuad.vmap(rk4_loop))(gnp.stack([y0, y0 * 2.0]), gnp.stack([p, p])),
                 gpuad.vmap(rk4_loop)(gnp.stack([y0, y0 * 2.0]), gnp.stack([p, p])), rtol=1e-14)
    # a jitted function differentiated outside jit runs its program's loop under the transform
    assert_close(gpuad.jacrev(gpuad.jit(rk4_loop), argnums=1)(y0, p), gpuad.jacfwd(rk4_loop, argnums=1)(y0, p),
                 rtol=1e-10)


def test_compiled_while_and_cond():
    p = gnp.asarray([0.5, 1.0, 3.0])
    assert_close(gpuad.jit(_newton_cbrt)(p), _newton_cbrt(p), rtol=1e-15)
    assert_close(gpuad.jit(gpuad.jacfwd(_newton_cbrt))(p), gpuad.jacfwd(_newton_cbrt)(p), rtol=1e-12)
    nested = lambda p: lax.fori_loop(0, 2, lambda i, y: _newton_cbrt(p + y), p)  # noqa: E731
    assert_close(gpuad.jacfwd(nested)(p), numerical_jacobian(nested, [to_np(p)], 0), rtol=1e-6, atol=1e-8)
    f = gpuad.jit(lambda x: lax.cond(x[0] > 0, lambda y: y * 2.0, lambda y: -y, x))
    assert_close(f(gnp.asarray([1.0, 2.0])), [2.0, 4.0])
    assert_close(f(gnp.asarray([-1.0, 2.0])), [1.0, -2.0])
    assert_close(gpuad.jit(lambda x: lax.fori_loop(0, x.shape[0], lambda i, c: c + x[i], 0.0))(gnp.arange(4.0)), 6.0)


# ---------------------------------------------------------------- loop-invariant code
def _jac(c):
    """A Jacobian of a function of c alone: inside a body, its seed (eye) is staged in the body."""
    return gpuad.jacfwd(lambda c: gnp.sin(c) * c)(c)


def _step(x, jac):
    return 0.5 * x + jac @ gnp.tanh(x)


def _invariant_scan(x0, c, steps):
    return lax.fori_loop(0, steps, lambda i, x: _step(x, _jac(c)), x0)


def _invariant_while(x0, c, trips):
    """The test and the body each read a Jacobian of c (the test scaled by its largest entry)."""
    def test(s):
        return s[0] * gnp.max(gnp.abs(_jac(c))) < trips * gnp.max(gnp.abs(_jac(c)))
    return lax.while_loop(test, lambda s: (s[0] + 1.0, _step(s[1], _jac(c))), (gnp.asarray(0.0), x0))[1]


def _unrolled(x0, c, steps):
    x = x0
    for _ in range(steps):
        x = _step(x, _jac(c))
    return x


def _scan_by_hand(x0, c, steps):
    jac = _jac(c)
    return lax.fori_loop(0, steps, lambda i, x: _step(x, jac), x0)


def _while_by_hand(x0, c, trips):
    jac = _jac(c)
    top = gnp.max(gnp.abs(jac))
    return lax.while_loop(lambda s: s[0] * top < trips * top, lambda s: (s[0] + 1.0, _step(s[1], jac)),
                          (gnp.asarray(0.0), x0))[1]


def test_the_hoisting_pass_moves_work_on_constants_out_of_a_body():
    from gpuad.loops import hoisted, trace_body
    c, x = on_backend(np.array([0.3, 0.8, -0.2]), np.array([1.0, -0.5, 2.0]))
    body, _ = trace_body(lambda v: [v[1] * gnp.sin(v[0]) + v[0][0] * v[0][:, None] * v[0][None, :]],
                         [core.same(c), core.same(x)], "a body")
    new, consts = hoisted(body, [c])
    # sin(c), c[0] * c[:, None] and c[None, :] (no larger than what they read) leave; the outer
    # product (9 elements from 3 + 3) stays
    assert [eq.prim.name for eq in new.equations] == ["multiply", "multiply", "add"], new.text()
    assert len(new.ins) == len(consts) + 1 and len(consts) == 3
    assert_close(new.evaluate(consts + [x])[0], body.evaluate([c, x])[0], rtol=1e-15)


def _loops_run(monkeypatch):
    """The names of the primitives in the bodies (and conditions) of the loops run from now on."""
    from gpuad.loops import scan_p, while_p
    names = set()
    for prim, programs in ((scan_p, lambda s: [s.body]), (while_p, lambda s: [s.cond, s.body])):
        def impl(*args, spec, programs=programs, run=prim.impl):
            names.update(eq.prim.name for p in programs(spec) for eq in p.equations)
            return run(*args, spec=spec)
        monkeypatch.setattr(prim, "impl", impl)
    return names


_TRANSFORMS = (("jacfwd", lambda f: gpuad.jacfwd(f, argnums=1), lambda x0, c: (x0, c)),
               ("jacrev", lambda f: gpuad.jacrev(f, argnums=1), lambda x0, c: (x0, c)),
               ("vmap", lambda f: gpuad.vmap(f, in_axes=(None, 0, None)), lambda x0, c: (x0, gnp.stack([c, -c]))),
               ("jacfwd of vmap", lambda f: gpuad.jacfwd(gpuad.vmap(f, in_axes=(None, 0, None)), argnums=1),
                lambda x0, c: (x0, gnp.stack([c, -c]))))


def test_loop_invariant_work_leaves_the_bodies_under_every_transform(monkeypatch):
    x0, c = on_backend(np.array([1.0, -0.5]), np.array([0.3, 0.8]))
    names = _loops_run(monkeypatch)
    for f in (_invariant_scan, _invariant_while):
        for how, transform, args in _TRANSFORMS:
            names.clear()
            transform(f)(*args(x0, c), 4)
            assert names and not names & {"eye", "sin", "cos"}, (f.__name__, how, names)


def test_each_trip_evaluates_what_the_loop_hoisted_by_hand_does():
    x0, c = on_backend(np.array([1.0, -0.5]), np.array([0.3, 0.8]))

    def per_trip(g, args):
        counts = []
        for n in (4, 9):
            before = core.stats["evals"]
            g(*args, n)
            counts.append(core.stats["evals"] - before)
        return counts[1] - counts[0]
    for f, by_hand in ((_invariant_scan, _scan_by_hand), (_invariant_while, _while_by_hand)):
        for how, transform, args in _TRANSFORMS:  # fewer where a hoisted value's structure collapses work
            assert per_trip(transform(f), args(x0, c)) <= per_trip(transform(by_hand), args(x0, c)), (f.__name__, how)


def test_hoisted_loops_match_the_unhoisted_loop_and_their_derivatives():
    x0, c = on_backend(np.array([1.0, -0.5]), np.array([0.3, 0.8]))
    steps = 6
    g = functools.partial(_unrolled, steps=steps)
    for f in (functools.partial(_invariant_scan, steps=steps), functools.partial(_invariant_while, trips=steps)):
        assert_close(f(x0, c), g(x0, c), rtol=1e-14)
        for argnums in (0, 1):
            fd = numerical_jacobian(g, [to_np(x0), to_np(c)], argnums)
            for jac in (gpuad.jacfwd, gpuad.jacrev):
                assert_close(jac(f, argnums=argnums)(x0, c), jac(g, argnums=argnums)(x0, c), rtol=1e-12)
                assert_close(jac(f, argnums=argnums)(x0, c), fd, rtol=1e-6, atol=1e-8)
            assert_close(gpuad.jit(gpuad.jacfwd(f, argnums=argnums))(x0, c), gpuad.jacfwd(g, argnums=argnums)(x0, c),
                         rtol=1e-12)
    f = functools.partial(_invariant_scan, steps=steps)
    assert_close(gpuad.jit(gpuad.jacrev(f, argnums=1))(x0, c), gpuad.jacrev(g, argnums=1)(x0, c), rtol=1e-12)
    assert_close(gpuad.hessian(lambda c: gnp.sum(f(x0, c) ** 2))(c),
                 gpuad.hessian(lambda c: gnp.sum(g(x0, c) ** 2))(c), rtol=1e-11)


def test_a_compiled_body_reads_the_hoisted_results_as_constants():
    x0, c = on_backend(np.array([1.0, -0.5]), np.array([0.3, 0.8]))
    program = gpuad.jit(lambda x0, c: _invariant_scan(x0, c, 5)).lower(x0, c).program
    loop = next(eq for eq in program.equations if eq.prim.name == "scan")
    names = sorted(eq.prim.name for eq in loop.params["spec"].body.equations)
    # the hoisted Jacobian is diagonal (structure.py): its product with tanh(x) collapses to a multiply
    assert names == ["add", "multiply", "multiply", "tanh"], loop.params["spec"].body.text()
    assert {"sin", "cos"} <= {eq.prim.name for eq in program.equations}  # the Jacobian's work, outside
    # nested loops: the inner body's work on the outer loop's constants leaves both loops
    nested = gpuad.jit(lambda x0, c: lax.fori_loop(0, 3, lambda i, y: _invariant_scan(y, c, 4), x0))
    outer = next(eq for eq in nested.lower(x0, c).program.equations if eq.prim.name == "scan")
    inner = next(eq for eq in outer.params["spec"].body.equations if eq.prim.name == "scan")
    assert [eq.prim.name for eq in outer.params["spec"].body.equations] == ["scan"]
    assert "eye" not in [eq.prim.name for eq in inner.params["spec"].body.equations]
    assert_close(nested(x0, c), _unrolled(x0, c, 12), rtol=1e-14)


def _trips_depend_on_c(x, c):
    """A while loop whose trip count depends on c and whose body reads x's carry and c."""
    def body(s):
        return s[0] * c + 0.3 * gnp.sin(s[0]), s[1] + gnp.sum(c)
    return lax.while_loop(lambda s: s[1] < 3.0, body, (x, gnp.asarray(0.0)))[0]


def test_reverse_mode_through_a_traced_while_loop():
    """Under gpuad.jit or inside another loop's body the trip count is known only when the
    program runs: the backward sweep recomputes the carries it does not hold (test_checkpointing)."""
    p = gnp.asarray([0.5, 1.0, 3.0])
    y = _newton_cbrt(p)
    implicit = gnp.diag(-y / (3.0 * y ** 2 + p))  # d/dp of y^3 + p y - 1 = 0
    assert_close(gpuad.jit(gpuad.jacrev(_newton_cbrt))(p), implicit, rtol=1e-8)
    nested = lambda p: lax.fori_loop(0, 2, lambda i, y: _newton_cbrt(p + y), p)  # noqa: E731
    assert_close(gpuad.jacrev(nested)(p), gpuad.jacfwd(nested)(p), rtol=1e-10)
    x, c = on_backend(np.array([0.4, -0.7]), np.array([0.8, 0.5]))  # 3 trips at sum(c) = 1.3
    for argnums in (0, 1, (0, 1)):
        expected = gpuad.jacfwd(_trips_depend_on_c, argnums=argnums)(x, c)
        assert_tree_close(gpuad.jit(gpuad.jacrev(_trips_depend_on_c, argnums=argnums))(x, c), expected, rtol=1e-12)
        assert_tree_close(gpuad.jacrev(_trips_depend_on_c, argnums=argnums)(x, c), expected, rtol=1e-12)
    assert_close(gpuad.jacrev(_trips_depend_on_c, argnums=1)(x, c),
                 numerical_jacobian(_trips_depend_on_c, [to_np(x), to_np(c)], 1), rtol=1e-6, atol=1e-8)
    # each example its own trip count (a batched count under vmap), and second order
    cs = gnp.stack([c, c * 2.0, c * 0.4])
    g = gpuad.grad(lambda x, c: gnp.sum(_trips_depend_on_c(x, c) ** 2), argnums=1)
    assert_close(gpuad.jit(gpuad.vmap(g, in_axes=(None, 0)))(x, cs), gpuad.vmap(g, in_axes=(None, 0))(x, cs),
                 rtol=1e-12)
    h = lambda c: gnp.sum(_trips_depend_on_c(x, c) ** 2)  # noqa: E731
    assert_close(gpuad.jit(gpuad.hessian(h))(c), gpuad.hessian(h)(c), rtol=1e-10)


# ---------------------------------------------------------------- checkpointing
def test_checkpoint_recomputes_and_keeps_every_derivative():
    def block(x, w):
        return gnp.tanh(w * gnp.sin(x)) * x
    f = lambda x, w: gnp.sum(gpuad.checkpoint(block)(x, w) ** 2)  # noqa: E731
    g = lambda x, w: gnp.sum(block(x, w) ** 2)  # noqa: E731
    x, w = gnp.asarray([0.3, -1.2, 2.0]), gnp.asarray(0.7)
    for argnum in (0, 1):
        assert_close(gpuad.grad(f, argnums=argnum)(x, w), gpuad.grad(g, argnums=argnum)(x, w), rtol=1e-14)
    assert_close(gpuad.hessian(f)(x, w), gpuad.hessian(g)(x, w), rtol=1e-12)
    assert_close(gpuad.vmap(gpuad.grad(f), in_axes=(0, None))(gnp.stack([x, -x]), w),
                 gpuad.vmap(gpuad.grad(g), in_axes=(0, None))(gnp.stack([x, -x]), w), rtol=1e-14)
    assert_close(gpuad.jit(gpuad.grad(f))(x, w), gpuad.grad(g)(x, w), rtol=1e-14)
    evals = []
    for h in (g, f):
        before = core.stats["evals"]
        gpuad.grad(h)(x, w)
        evals.append(core.stats["evals"] - before)
    assert evals[1] >= evals[0] + 4  # the sweep reran block's four primitives (sin, multiply, tanh, multiply)
    with pytest.raises(ValueError, match="policy"):
        gpuad.checkpoint(block, policy="dots_saveable")


def test_launches_count_each_trip_of_a_loop():
    """A body with a GEMM (no loop kernel: gpuad/compiler/loop_kernel.py) counts its launches per
    trip; tests/test_loop_kernel.py counts the loops that run as one kernel."""
    h0, w = on_backend(np.array([0.1, -0.2, 0.3]), np.eye(3) * 0.4)

    def f(n):
        return gpuad.jit(gpuad.jacfwd(lambda h: lax.fori_loop(0, n, lambda i, h: gnp.tanh(w @ h), h))).lower(h0)
    counts = [f(n).launches for n in (10, 20)]
    body = next(eq for eq in f(10).program.equations if eq.prim.name == "scan").params["spec"].body
    from gpuad.compiler import cost
    assert cost.count(body) > 0 and counts[1] - counts[0] == 10 * cost.count(body)
    # bytes too: ten more trips move the body's bytes ten more times (and ten more loop indices)
    moved = [f(n).bytes_moved for n in (10, 20)]
    assert cost.bytes_moved(body) > 0 and moved[1] - moved[0] == 10 * (cost.bytes_moved(body) + 8)


# ---------------------------------------------------------------- memory: chunk sizes count stored carries
_STEPS, _N = 400, 10


def _looped(x):
    return lax.fori_loop(0, _STEPS, lambda i, y: gnp.sin(y) * 0.5 + x, x)


def _looped_while(x):
    return lax.while_loop(lambda s: s[0] < _STEPS, lambda s: (s[0] + 1, gnp.sin(s[1]) * 0.5 + x), (0, x))[1]


def _fake_memory(monkeypatch, b):
    monkeypatch.setattr(backends.current(), "free_memory", lambda: b)


def test_chunk_estimates_count_the_carries_a_loop_stores(monkeypatch):
    from gpuad import api, chunking
    x = gnp.asarray(np.linspace(0.1, 1.0, _N))
    # reverse mode stores the carry entering each of the 400 steps (the while loop's: its count too)
    for f, carries in ((_looped, _STEPS * _N * 8), (_looped_while, _STEPS * (_N + 1) * 8)):
        record = api.Call("jacrev", f, (x,), {}, 0, False).record()
        rows, columns = record.footprint(by_rows=True), record.footprint(by_rows=False)
        assert rows.held == carries and columns.held == 0, (f.__name__, rows.held)
        assert rows.peak(1, _N) == carries + _N * rows.result + rows.estimate
    # where the carries leave no room for one sweep, chunk_size=None refuses; where they leave
    # room for the Jacobian and 3 directions, "auto" sweeps 3 at a time
    carries = _STEPS * _N * 8
    expected = gpuad.jacfwd(_looped)(x)
    monkeypatch.setattr(chunking, "CHECK_FROM", 0)
    _fake_memory(monkeypatch, carries)
    with pytest.raises(MemoryError, match="store fewer with gpuad.lax.scan"):
        gpuad.jacrev(_looped)(x)
    fp = api.Call("jacrev", _looped, (x,), {}, 0, False).record().footprint(by_rows=True)
    _fake_memory(monkeypatch, int((carries + _N * fp.result + 3 * fp.estimate) / chunking.AUTO_SHARE) + 1)
    sweeps = []
    real = api.Recording.rows
    monkeypatch.setattr(api.Recording, "rows", lambda self, lo, hi: sweeps.append(hi - lo) or real(self, lo, hi))
    assert_close(gpuad.jacrev(_looped, chunk_size="auto")(x), expected, rtol=1e-12)
    assert sweeps == [3, 3, 3, 1], sweeps


# ---------------------------------------------------------------- gpuad.sparse
def _shift_step(y):
    return y + 0.1 * gnp.sin(gnp.concatenate([y[1:], y[:1] * 0.0]) - y)


def _smooth(x, steps):
    return lax.fori_loop(0, steps, lambda i, y: _shift_step(y), x)


def _smooth_python(x, steps):
    for _ in range(steps):
        x = _shift_step(x)
    return x


def test_sparsity_patterns_through_loops():
    sparse = pytest.importorskip("scipy") and gpuad.sparse
    x = gnp.asarray(np.linspace(0.1, 1.0, 12))
    for steps in (1, 3):
        loop, unrolled = functools.partial(_smooth, steps=steps), functools.partial(_smooth_python, steps=steps)
        pattern = sparse.jacobian_sparsity(loop)(x).toarray()
        np.testing.assert_array_equal(pattern, sparse.jacobian_sparsity(unrolled)(x).toarray())
        assert pattern.sum() == sum(12 - k for k in range(steps + 1))  # an upper band of width steps
        assert_close(sparse.jacobian(loop)(x).toarray(), gpuad.jacfwd(unrolled)(x), rtol=1e-13)
        loss, loss_python = (lambda x, f=f: gnp.sum(f(x) ** 2) for f in (loop, unrolled))
        np.testing.assert_array_equal(sparse.hessian_sparsity(loss)(x).toarray(),
                                      sparse.hessian_sparsity(loss_python)(x).toarray())
        assert_close(sparse.hessian(loss)(x).toarray(), gpuad.hessian(loss_python)(x), rtol=1e-12, atol=1e-14)
    newton = sparse.jacobian_sparsity(_newton_cbrt)(gnp.asarray([0.5, 1.0, 3.0])).toarray()
    np.testing.assert_array_equal(newton, np.eye(3, dtype=bool))  # elementwise: a fixed point at the diagonal
    f = lambda x: lax.cond(x[0] > 0, lambda y: y * y[0], lambda y: y[::-1], x)  # noqa: E731
    np.testing.assert_array_equal(sparse.jacobian_sparsity(f)(gnp.ones(3)).toarray(),
                                  np.eye(3, dtype=bool) | np.eye(3, dtype=bool)[::-1] | (np.arange(3)[None] == 0))


@gpuad.custom_jvp
def _softplus(x):
    return gnp.log1p(gnp.exp(x))


@_softplus.defjvp
def _softplus_jvp(primals, tangents):
    return _softplus(primals[0]), tangents[0] / (1.0 + gnp.exp(-primals[0]))


@gpuad.custom_vjp
def _sine(x):
    return gnp.sin(x)


_sine.defvjp(lambda x: (gnp.sin(x), gnp.cos(x)), lambda cos, g: (g * cos,))


@pytest.mark.parametrize("rule", [_softplus, _sine])
def test_custom_rules_inside_bodies_and_every_way_to_sweep(rule):
    f = lambda x: lax.fori_loop(0, 3, lambda i, y: rule(y) * x, x)  # noqa: E731
    x = gnp.asarray([0.3, -0.2])
    fwd = gpuad.jacfwd(f)(x)
    assert_close(fwd, numerical_jacobian(f, [to_np(x)], 0), rtol=1e-6, atol=1e-8)
    for other in (gpuad.jacrev(f)(x), gpuad.jacrev(f, chunk_size=1)(x), gpuad.jacobian(f)(x),
                  gnp.stack([gpuad.linearize(f, x)[1](gnp.asarray(e)) for e in np.eye(2)], axis=1)):
        assert_close(other, fwd, rtol=1e-12, atol=1e-14)
    assert_close(gpuad.jit(gpuad.jacrev(f))(x), fwd, rtol=1e-12, atol=1e-14)
    assert_close(gpuad.vmap(gpuad.jacrev(f))(gnp.stack([x, x * 2.0]))[1], gpuad.jacfwd(f)(x * 2.0), rtol=1e-12)
    s = lambda x: gnp.sum(f(x))  # noqa: E731
    assert_close(gpuad.hessian(s)(x), gpuad.jacrev(gpuad.jacrev(s))(x), rtol=1e-10, atol=1e-12)


def test_traced_bounds_make_a_while_loop():
    power = lambda x, n: lax.fori_loop(0, n, lambda i, c: c * x, 1.0)  # noqa: E731
    x, n = gnp.asarray(2.0), gnp.asarray(5)
    assert to_np(gpuad.jit(power)(x, n)) == 32.0
    assert to_np(gpuad.jit(gpuad.jacfwd(power))(x, n)) == 80.0
    assert "while_loop[" in gpuad.jit(power).lower(x, n).as_text()
    assert to_np(gpuad.grad(power)(x, n)) == 80.0  # eagerly the trip count is known: reverse mode works
