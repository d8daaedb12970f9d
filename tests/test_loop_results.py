"""A loop's results keep each output leaf's own shape and dtype (loops are primitives of several
results, gpuad/loops.py): an int64 counter above 2^53 and a bool flag carried beside float values
stay exact through scan, while_loop, fori_loop and cond, eagerly, under gpuad.jit, vmap, jacfwd and
jacrev; the derivatives of the float leaves against central differences and the other mode; complex
and real leaves together; custom_call's leaves likewise."""
import numpy as np
import pytest
from helpers import assert_close, numerical_jacobian, on_backend, to_np

import gpuad
import gpuad.numpy as gnp
from gpuad import lax

BIG = 2 ** 53 + 1  # float64 holds no odd integer above 2^53: a counter cast to float loses its last bit


def _scan_carry(x):
    """A float state, an int64 counter above 2^53 and a bool flag, carried together."""
    def step(c, w):
        y, n, flag = c
        return (gnp.sin(y) * w + y, n + 2, gnp.logical_not(flag)), n
    return lax.scan(step, (x, gnp.asarray(np.int64(BIG)), gnp.asarray(True)), gnp.linspace(0.5, 1.0, 3))


def _while_carry(x):
    def body(c):
        y, n, flag = c
        return gnp.sin(y) * 0.9 + y, n + 2, gnp.logical_not(flag)
    return lax.while_loop(lambda c: c[1] < BIG + 6, body, (x, gnp.asarray(np.int64(BIG)), gnp.asarray(True)))


def _fori_carry(x):
    return lax.fori_loop(0, 3, lambda i, c: (gnp.sin(c[0]) * 0.9 + c[0], c[1] + 2 * i + 2, gnp.logical_not(c[2])),
                         (x, gnp.asarray(np.int64(BIG)), gnp.asarray(True)))


def _cond_carry(x):
    return lax.cond(gnp.sum(x) > 0.0, lambda y, n, f: (gnp.sin(y), n + 6, gnp.logical_not(f)),
                    lambda y, n, f: (gnp.cos(y), n - 6, f), x, gnp.asarray(np.int64(BIG)), gnp.asarray(True))


LOOPS = {"scan": _scan_carry, "while_loop": _while_carry, "fori_loop": _fori_carry, "cond": _cond_carry}
X = np.array([0.3, -0.2, 0.7])


def _leaves(out):
    return gpuad.tree.tree_flatten(out)[0]


def _float(f):
    """The float leaves of f's output, one vector (what the derivatives are taken of)."""
    return lambda x: gnp.concatenate([gnp.ravel(v) for v in _leaves(f(x)) if v.dtype.kind == "f"])


def _exact(out):
    """The int64 and bool leaves of a loop's output: their dtypes and exact values."""
    return [(v.dtype, to_np(v).tolist()) for v in _leaves(out) if v.dtype.kind in "ib"]


EXPECTED = {"scan": [(np.dtype("int64"), BIG + 6), (np.dtype("bool"), False),
                     (np.dtype("int64"), [BIG, BIG + 2, BIG + 4])],
            "while_loop": [(np.dtype("int64"), BIG + 6), (np.dtype("bool"), False)],
            "fori_loop": [(np.dtype("int64"), BIG + 12), (np.dtype("bool"), False)],
            "cond": [(np.dtype("int64"), BIG + 6), (np.dtype("bool"), False)]}


@pytest.mark.parametrize("name", LOOPS)
def test_int_and_bool_leaves_keep_their_dtype_and_exact_value(name):
    """Eagerly and under gpuad.jit (the loop kernel or the replayed body), the counter is exact."""
    f = LOOPS[name]
    x = on_backend(X)[0]
    assert _exact(f(x)) == EXPECTED[name]
    assert _exact(gpuad.jit(f)(x)) == EXPECTED[name]


@pytest.mark.parametrize("name", LOOPS)
def test_int_and_bool_leaves_stay_exact_under_vmap(name):
    f = LOOPS[name]
    xs = on_backend(np.stack([X, X + 0.1]))[0]
    for g in (gpuad.vmap(f), gpuad.jit(gpuad.vmap(f))):
        got = _exact(g(xs))
        assert got == [(d, [v, v]) for d, v in EXPECTED[name]], got


@pytest.mark.parametrize("name", LOOPS)
def test_float_leaves_beside_int_ones_differentiate_as_finite_differences(name):
    """jacfwd and jacrev of the float leaves, eagerly and under jit, against central differences
    and each other; the int and bool leaves of the primal stay exact inside the transforms."""
    f = _float(LOOPS[name])
    x = on_backend(X)[0]
    expected = numerical_jacobian(f, [X], 0)
    fwd, rev = gpuad.jacfwd(f)(x), gpuad.jacrev(f)(x)
    assert_close(fwd, expected, rtol=1e-6, atol=1e-8)
    assert_close(rev, fwd, rtol=1e-12, atol=1e-14)
    assert_close(gpuad.jit(gpuad.jacfwd(f))(x), fwd, rtol=1e-12, atol=1e-14)
    assert_close(gpuad.jit(gpuad.jacrev(f))(x), fwd, rtol=1e-12, atol=1e-14)

    def with_counter(x):  # the counter, computed by the loop the transform runs through
        out = _leaves(LOOPS[name](x))
        return gnp.sum(out[0]), [v for v in out if v.dtype.kind == "i"][0]
    (_, n), _ = gpuad.jvp(with_counter, (x,), (gnp.ones_like(x),))
    assert int(to_np(n)) == EXPECTED[name][0][1]
    (_, n), _ = gpuad.vjp(with_counter, x)
    assert int(to_np(n)) == EXPECTED[name][0][1]


def test_complex_and_real_leaves_keep_their_dtypes_and_derivatives():
    """A complex carry beside a real one and a real stacked output: each result of its own dtype
    (a real leaf was cast to complex and back), the real-valued function's Jacobian by both
    modes and central differences."""
    def f(x):
        def step(c, w):
            z, s = c
            z = z * gnp.exp(1j * w * x[0]) + x[1]
            return (z, s + gnp.abs(z) ** 2), gnp.real(z) * x[2]
        (z, s), ys = lax.scan(step, (gnp.asarray(1.0 + 0.5j), gnp.asarray(0.0)), gnp.linspace(0.1, 0.4, 4))
        assert (z.dtype.kind, s.dtype.kind, ys.dtype.kind) == ("c", "f", "f")
        return gnp.concatenate([gnp.stack([gnp.real(z), gnp.imag(z), s]), ys])
    x = on_backend(X)[0]
    expected = numerical_jacobian(f, [X], 0)
    assert_close(gpuad.jacfwd(f)(x), expected, rtol=1e-6, atol=1e-8)
    assert_close(gpuad.jacrev(f)(x), expected, rtol=1e-6, atol=1e-8)
    assert_close(gpuad.jit(gpuad.jacrev(f))(x), gpuad.jacfwd(f)(x), rtol=1e-12, atol=1e-14)


def test_a_loop_is_one_equation_of_several_typed_results():
    """Under gpuad.jit the scan is one equation with one result per leaf (no concatenation of them),
    and Program.check accepts it and the bodies it holds."""
    program = gpuad.jit(_scan_carry).lower(on_backend(X)[0]).program
    program.check()
    (eq,) = [eq for eq in program.equations if eq.prim is gpuad.loops.scan_p]
    assert [(v.dtype.name, v.shape) for v in eq.outs] == \
        [("float64", (3,)), ("int64", ()), ("bool", ()), ("int64", (3,))]
    assert not any(e.prim.name == "concatenate" for e in program.equations)


@pytest.mark.parametrize("name", LOOPS)
def test_derivative_programs_check(name):
    """The programs of the loops' derivatives under gpuad.jit (a while loop's reverse sweep a
    revolve_p of its traced trip count) pass Program.check, their bodies too."""
    f, x = _float(LOOPS[name]), on_backend(X)[0]
    for transform in (gpuad.jacfwd, gpuad.jacrev, gpuad.hessian):
        program = gpuad.jit(transform(lambda x: gnp.sum(f(x)))).lower(x).program
        program.check()
        assert any(eq.prim.multiple_results for eq in program.equations)


def test_custom_call_leaves_keep_their_dtypes():
    """A custom_vjp function returning a float and an int64 leaf: the int one exact, the float
    one's gradient the rule's."""
    @gpuad.custom_vjp
    def f(x):
        return gnp.sin(x), gnp.asarray(np.int64(BIG))

    f.defvjp(lambda x: (f(x), gnp.cos(x)), lambda res, ct: (ct[0] * res * 2.0,))
    x = on_backend(np.array(0.3))[0]
    y, n = f(x)
    assert n.dtype == np.int64 and int(to_np(n)) == BIG
    assert int(to_np(gpuad.jit(f)(x)[1])) == BIG
    assert_close(gpuad.grad(lambda x: f(x)[0])(x), 2.0 * np.cos(0.3))
    assert_close(gpuad.jacfwd(lambda x: f(x)[0])(x), 2.0 * np.cos(0.3))


def test_a_while_loop_of_no_trips_returns_no_operand(monkeypatch):
    """A while loop whose condition is false at once returns copies of its operands: a compiled
    program adds into a loop's result in place, which wrote into the caller's array (where the
    loop replays its body per trip: no loop kernel, whose results are its own)."""
    monkeypatch.setenv("GPUAD_FUSION", "off")
    x, w = on_backend(np.array([1.0, 2.0]), np.array([10.0, 20.0]))
    f = gpuad.jit(lambda x, w: lax.while_loop(lambda c: c[0] > 5.0, lambda c: c * 0.5, x) + w)
    assert_close(f(x, w), np.array([11.0, 22.0]))
    assert_close(x, np.array([1.0, 2.0]))


def test_a_loop_inside_a_checkpoint_that_saves_everything():
    """A checkpoint's policy saves results of one value (known_p stands for them); a loop's
    results are a tuple, recomputed: the gradient as without the checkpoint and as central differences."""
    def f(x):
        return gnp.sum(lax.fori_loop(0, 3, lambda i, y: gnp.sin(y) * x, x))
    g = gpuad.checkpoint(f, policy=gpuad.checkpoint_policies.everything_saveable)
    x = on_backend(X)[0]
    assert_close(gpuad.grad(g)(x), gpuad.grad(f)(x), rtol=1e-13, atol=1e-15)
    assert_close(gpuad.grad(g)(x), numerical_jacobian(f, [X], 0), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("which", [0, 1])
def test_a_result_without_a_cotangent(which):
    """Reverse mode where one result of a scan or a cond is unused (its cotangent None: no zeros
    swept back for it): the gradient as forward mode's and central differences."""
    def f(x):
        c, ys = lax.scan(lambda c, w: (gnp.sin(c) * w, gnp.cos(c) * w), x, gnp.linspace(0.5, 1.0, 4))
        a, b = lax.cond(gnp.sum(x) > 0.0, lambda y: (gnp.exp(y), y * y), lambda y: (y, y), c)
        return gnp.sum((c, ys)[which] ** 2) + gnp.sum((a, b)[which])
    x = on_backend(X)[0]
    grad = gpuad.grad(f)(x)
    assert_close(grad, numerical_jacobian(f, [X], 0), rtol=1e-6, atol=1e-8)
    assert_close(grad, gpuad.jacfwd(f)(x), rtol=1e-12, atol=1e-14)
    assert_close(gpuad.jit(gpuad.grad(f))(x), grad, rtol=1e-12, atol=1e-14)
