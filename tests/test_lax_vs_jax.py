"""gpuad.lax against JAX itself (issue 25's held-out programs: ODE integrators, Newton and
fixed-point iterations, recurrences): each program is written once against an array namespace and
a lax module (gpuad.numpy with gpuad.lax, jax.numpy with jax.lax) and its values, jacfwd, jacrev,
hessian, vmap and jit are compared between the two in float64 (JAX with x64).

JAX refuses reverse mode through a while_loop; there its forward mode (jacfwd, jacfwd of jacfwd)
is the reference for gpuad's reverse mode."""
import functools

import numpy as np
import pytest
from helpers import assert_close, to_np

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402

import gpuad  # noqa: E402
import gpuad.numpy as gnp  # noqa: E402
from gpuad import lax  # noqa: E402

GPUAD, JAX = (gnp, lax), (jnp, jax.lax)
RTOL = ATOL = 1e-10


# ---------------------------------------------------------------- programs: f(np, lax, x) -> array
def _field(np, y, p):
    """A damped pendulum with a cubic coupling: dy/dt."""
    return np.stack([y[1], -p[0] * np.sin(y[0]) - p[1] * y[1] + 0.1 * y[0] ** 2 * y[1]])


def rk4(np, lax, x, steps=30, h=0.05):
    """Explicit RK4 of the pendulum from x[:2] with parameters x[2:]."""
    y0, p = x[:2], x[2:]

    def step(i, y):
        k1 = _field(np, y, p)
        k2 = _field(np, y + 0.5 * h * k1, p)
        k3 = _field(np, y + 0.5 * h * k2, p)
        k4 = _field(np, y + h * k3, p)
        return y + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return lax.fori_loop(0, steps, step, y0)


def implicit_euler(np, lax, x, steps=8, h=0.2):
    """Backward Euler of the stiff-ish pendulum: each step solves y = y_n + h f(y) by Newton's
    method in a while_loop (a 2x2 Jacobian written out, solved by Cramer's rule), nested in a
    fori_loop over the steps."""
    y0, p = x[:2], x[2:]

    def residual(y, yn):
        return y - yn - h * _field(np, y, p)

    def newton(yn):
        def body(s):
            y, k, _ = s
            r = residual(y, yn)
            # d(residual)/dy of the field above
            a = 1.0 - 0.0 * y[0]
            b = -h
            c = h * (p[0] * np.cos(y[0]) - 0.2 * y[0] * y[1])
            d = 1.0 + h * (p[1] - 0.1 * y[0] ** 2)
            det = a * d - b * c
            dy = np.stack([(d * r[0] - b * r[1]) / det, (a * r[1] - c * r[0]) / det])
            return y - dy, k + 1, np.max(np.abs(r))

        def going(s):
            return (s[1] < 30) & (s[2] > 1e-11)
        return lax.while_loop(going, body, (yn, 0, np.asarray(1.0)))[0]
    return lax.fori_loop(0, steps, lambda i, y: newton(y), y0)


def fixed_point(np, lax, x):
    """z = cos(a z) / 2 + b by iteration to a tolerance (a contraction), in a while_loop."""
    a, b = x[:3], x[3:]

    def body(s):
        z, _, k = s
        new = 0.5 * np.cos(a * z) + b
        return new, np.max(np.abs(new - z)), k + 1
    return lax.while_loop(lambda s: (s[1] > 1e-13) & (s[2] < 200), body, (b, np.asarray(1.0), 0))[0]


def _gru_weights(np, x, n):
    w = np.reshape(x[:3 * n * n], (3, n, n)) * 0.5
    return w, x[3 * n * n:3 * n * n + n]


def gru(np, lax, x, n=2, length=5, reverse=False, unroll=1):
    """A GRU cell over a sequence made from the inputs, by scan: the hidden state's sequence."""
    w, h0 = _gru_weights(np, x, n)
    xs = np.reshape(np.sin(np.arange(length * n) * 0.7), (length, n)) + x[-1]

    def cell(h, xt):
        z = 1.0 / (1.0 + np.exp(-(w[0] @ h + xt)))
        r = 1.0 / (1.0 + np.exp(-(w[1] @ h - xt)))
        c = np.tanh(w[2] @ (r * h) + xt)
        h = (1.0 - z) * h + z * c
        return h, h * xt
    h, ys = lax.scan(cell, h0, xs, reverse=reverse, unroll=unroll)
    return np.concatenate([h, np.ravel(ys)])


def rnn_unrolled_reverse(np, lax, x):
    return gru(np, lax, x, reverse=True, unroll=2)


def switching(np, lax, x):
    """A piecewise map by scan: a cond on the state's sign and a switch on the step's index
    pick each step's update."""
    def step(c, t):
        y, s = c
        y = lax.cond(y[0] > 0, lambda y: y * np.cos(y) - 0.3, lambda y: y + 0.5 * np.sin(y) ** 2 + 0.2, y)
        y = lax.switch(t % 3, [lambda v: v * 0.9, lambda v: np.sin(v) + v[::-1] * 0.1, lambda v: v - 0.05 * v ** 3],
                       operand=y)  # JAX's older keyword
        return (y, s + np.sum(y * y)), y[0] * s
    (y, s), ys = lax.scan(step, (x, np.asarray(0.0) * x[0]), np.arange(7))
    return np.concatenate([y, np.stack([s]), ys])


def pytree_carry(np, lax, x):
    """A scan whose carry is a dict holding a tuple, with two stacked outputs (a tuple of a
    vector and a dict)."""
    def step(c, xt):
        u, (v, w) = c["u"], c["vw"]
        u2 = u * np.cos(v) + xt[0]
        v2 = v + 0.1 * np.sum(u2 * w)
        w2 = np.tanh(w - xt[1] * v2)
        return {"u": u2, "vw": (v2, w2)}, (u2 * v2, {"w": w2[0] * xt[1]})
    xs = np.stack([x[:4], x[4:8] * 0.5], axis=1)
    c, (ys, zs) = lax.scan(step, {"u": x[:2], "vw": (x[2], x[3:5])}, xs)
    return np.concatenate([c["u"], np.stack([c["vw"][0]]), c["vw"][1], np.ravel(ys), zs["w"]])


def nested(np, lax, x):
    """Loops inside loops: a scan whose body runs a fori_loop (sub-stepping) and a batched map."""
    def outer(c, t):
        inner = lax.fori_loop(0, 3, lambda i, v: v + 0.1 * np.sin(v * t + i), c, unroll=True)
        m = lax.map(lambda v: np.exp(-v * v) * t, inner, batch_size=2)  # a batch of 2 and 1 left over
        return inner + 0.05 * m, np.sum(m)
    c, ys = lax.scan(outer, x, np.linspace(0.5, 1.5, 4))
    return np.concatenate([c, ys])


# name: (program, input size, whether it holds a while_loop: JAX's reverse mode refuses it)
PROGRAMS = {
    "rk4": (rk4, 4, False),
    "implicit_euler": (implicit_euler, 4, True),
    "fixed_point": (fixed_point, 6, True),
    "gru": (gru, 15, False),
    "gru_reverse_unroll": (rnn_unrolled_reverse, 15, False),
    "switching": (switching, 3, False),
    "pytree_carry": (pytree_carry, 8, False),
    "nested": (nested, 3, False),
}


def _inputs(name):
    n = PROGRAMS[name][1]
    x = np.random.default_rng(len(name)).uniform(-0.8, 0.8, n)
    if name in ("implicit_euler", "rk4"):
        x[2:] = [1.3, 0.4]
    if name == "fixed_point":
        x[:3] = np.abs(x[:3]) + 0.2
    return x


def _both(name):
    prog = PROGRAMS[name][0]
    return functools.partial(prog, *GPUAD), functools.partial(prog, *JAX)


def _close(ours, theirs, what):
    assert_close(to_np(ours), np.asarray(theirs), rtol=RTOL, atol=ATOL, what=what)


# The README's command runs every program's values and one program's derivatives (JAX's eager
# dispatch and compiles take most of the time); -m slow runs the others.
FAST = ("fixed_point",)
names = pytest.mark.parametrize("name", list(PROGRAMS))
derived = pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in FAST else pytest.mark.slow)
                                           for n in PROGRAMS])


def _reverse(name):
    """JAX's reverse mode, or its forward mode where the program holds a while_loop."""
    return jax.jacfwd if PROGRAMS[name][2] else jax.jacrev


@names
def test_values(name):
    f, g = _both(name)
    x = _inputs(name)
    _close(f(gnp.asarray(x)), g(jnp.asarray(x)), name)


@derived
def test_jacfwd_and_jacrev(name):
    f, g = _both(name)
    x = _inputs(name)
    _close(gpuad.jacfwd(f)(gnp.asarray(x)), jax.jacfwd(g)(jnp.asarray(x)), name)
    _close(gpuad.jacrev(f)(gnp.asarray(x)), _reverse(name)(g)(jnp.asarray(x)), name)


@derived
def test_hessian(name):
    f, g = _both(name)
    x = _inputs(name)
    u = np.random.default_rng(1).normal(size=np.shape(g(jnp.asarray(x))))
    reference = jax.jacfwd(_reverse(name)(lambda x: jnp.sum(jnp.asarray(u) * g(x))))(jnp.asarray(x))
    _close(gpuad.hessian(lambda x: gnp.sum(gnp.asarray(u) * f(x)))(gnp.asarray(x)), reference, name)


@derived
def test_vmap(name):
    f, g = _both(name)
    xs = np.stack([_inputs(name) * s for s in (1.0, 0.9, 1.1)])
    _close(gpuad.vmap(f)(gnp.asarray(xs)), jax.vmap(g)(jnp.asarray(xs)), name)
    _close(gpuad.vmap(gpuad.jacfwd(f))(gnp.asarray(xs)), jax.vmap(jax.jacfwd(g))(jnp.asarray(xs)), name)


@derived
def test_jit(name):
    f, g = _both(name)
    x = _inputs(name)
    _close(gpuad.jit(f)(gnp.asarray(x)), jax.jit(g)(jnp.asarray(x)), name)
    _close(gpuad.jit(gpuad.jacrev(f))(gnp.asarray(x)), jax.jit(_reverse(name)(g))(jnp.asarray(x)), name)


# ---------------------------------------------------------------- complex carries
def complex_recurrence(np, lax, w, z, checkpoint=None):
    """A scan of a complex state beside a real running sum, a fori_loop and a cond inside."""
    def step(c, x):
        h, s = c
        h = lax.cond(s < 2.0, lambda h: np.sin(w @ h) * 0.8 + x * 1j, lambda h: h * np.exp(1j * x) * 0.9, h)
        h = lax.fori_loop(0, 2, lambda i, h: h - 0.1 * h ** 2, h)
        return (h, s + np.sum(np.abs(h) ** 2)), np.conj(h[0]) * h[1]
    kw = {} if checkpoint is None else {"checkpoint": checkpoint}
    (h, s), ys = lax.scan(step, (z, np.asarray(0.0)), np.linspace(-0.5, 0.5, 6), **kw)
    return np.concatenate([h, np.stack([s]).astype(h.dtype), ys])


def complex_sqrt(np, lax, c):
    """Newton's method for z^2 = c in a while_loop: holomorphic in c."""
    def step(s):
        z, k = s
        return 0.5 * (z + c / z), k + 1
    return lax.while_loop(lambda s: (np.max(np.abs(s[0] ** 2 - c)) > 1e-15) & (s[1] < 50), step,
                          (np.ones_like(c), 0))[0]


def _complex(shape, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.2, 1.0, shape) * rng.choice([-1, 1], shape) + 1j * rng.uniform(0.2, 1.0, shape)


def _recurrences(checkpoint):
    w = _complex((2, 2), 0) * 0.6
    return (functools.partial(complex_recurrence, gnp, lax, gnp.asarray(w), checkpoint=checkpoint),
            functools.partial(complex_recurrence, jnp, jax.lax, jnp.asarray(w)))


def _loss(f, np):
    return lambda z: np.sum(np.abs(f(z)) ** 2)


@pytest.mark.parametrize("checkpoint", [None, pytest.param(2, marks=pytest.mark.slow)])
def test_complex_carries(checkpoint):
    ours, theirs = _recurrences(checkpoint)
    z, v, u = _complex(2, 1), _complex(2, 2), _complex(9, 3)
    _close(ours(gnp.asarray(z)), theirs(jnp.asarray(z)), "values")
    _close(gpuad.jvp(ours, (z,), (v,))[1], jax.jvp(theirs, (z,), (v,))[1], "jvp")
    _close(gpuad.vjp(ours, z)[1](u)[0], jax.vjp(theirs, z)[1](u)[0], "vjp")
    _close(gpuad.grad(_loss(ours, gnp))(z), jax.grad(_loss(theirs, jnp))(z), "grad")


@pytest.mark.slow
@pytest.mark.parametrize("checkpoint", [None, 2])
def test_complex_carries_second_order_vmap_and_jit(checkpoint):
    ours, theirs = _recurrences(checkpoint)
    z, v = _complex(2, 1), _complex(2, 2)
    loss = _loss
    _close(gpuad.jvp(gpuad.grad(loss(ours, gnp)), (z,), (v,))[1],
           jax.jvp(jax.grad(loss(theirs, jnp)), (z,), (v,))[1], "jvp of grad")
    _close(gpuad.vjp(gpuad.grad(loss(ours, gnp)), z)[1](v)[0],
           jax.vjp(jax.grad(loss(theirs, jnp)), z)[1](v)[0], "vjp of grad")
    zs = np.stack([z, z * 0.7j])
    _close(gpuad.vmap(gpuad.grad(loss(ours, gnp)))(zs), jax.vmap(jax.grad(loss(theirs, jnp)))(zs), "vmap")
    _close(gpuad.jit(gpuad.grad(loss(ours, gnp)))(z), jax.grad(loss(theirs, jnp))(z), "jit")


def test_complex_while_loop():
    c = _complex(3, 4) + 1.0
    ours, theirs = functools.partial(complex_sqrt, gnp, lax), functools.partial(complex_sqrt, jnp, jax.lax)
    expected = jax.jacfwd(theirs, holomorphic=True)(c)
    for jacobian in (gpuad.jacfwd, gpuad.jacrev):  # JAX refuses reverse mode through a while_loop
        _close(jacobian(ours, holomorphic=True)(gnp.asarray(c)), expected, jacobian.__name__)
    v = _complex(3, 5)
    _close(gpuad.jvp(ours, (c,), (v,))[1], jax.jvp(theirs, (c,), (v,))[1], "jvp")


# ---------------------------------------------------------------- checkpoint policies
def remat_recurrence(np, lax, ad, x, policy):
    """A scan whose body is a checkpointed cell with named values, under a policy of JAX's."""
    w = np.reshape(x[:9], (3, 3)) * 0.5

    def cell(h, t):
        pre = ad.checkpoint_name(w @ h + t, "pre")
        h = np.tanh(pre) * ad.checkpoint_name(np.cos(w.T @ h), "gate")
        return h, np.sum(h * pre)
    body = ad.checkpoint(cell, policy=policy(ad.checkpoint_policies))
    h, ys = lax.scan(body, x[9:], np.linspace(-1.0, 1.0, 5))
    return np.concatenate([h, ys])


POLICIES = {
    "nothing": lambda p: p.nothing_saveable,
    "only pre": lambda p: p.save_only_these_names("pre"),
    "names but gate": lambda p: p.save_any_names_but_these("gate"),
    "anything but pre": lambda p: p.save_anything_except_these_names("pre"),
    "dots or gate": lambda p: p.save_from_both_policies(p.dots_saveable, p.save_only_these_names("gate")),
    "dots without batch axes": lambda p: p.dots_with_no_batch_dims_saveable,
}


@pytest.mark.slow  # JAX's compiles (tests/test_checkpointing.py checks the policies without JAX)
@pytest.mark.parametrize("policy", list(POLICIES))
def test_checkpoint_policies(policy):
    import types

    import jax.ad_checkpoint

    import gpuad.ad_checkpoint
    ours = types.SimpleNamespace(checkpoint=gpuad.checkpoint, checkpoint_name=gpuad.ad_checkpoint.checkpoint_name,
                                 checkpoint_policies=gpuad.checkpoint_policies)
    theirs = types.SimpleNamespace(checkpoint=jax.checkpoint, checkpoint_name=jax.ad_checkpoint.checkpoint_name,
                                   checkpoint_policies=jax.checkpoint_policies)
    f = functools.partial(remat_recurrence, gnp, lax, ours, policy=POLICIES[policy])
    g = functools.partial(remat_recurrence, jnp, jax.lax, theirs, policy=POLICIES[policy])
    x = np.random.default_rng(7).uniform(-0.8, 0.8, 12)
    _close(f(gnp.asarray(x)), g(jnp.asarray(x)), "values")
    _close(gpuad.jacrev(f)(gnp.asarray(x)), jax.jacrev(g)(jnp.asarray(x)), "jacrev")
    u = np.random.default_rng(8).normal(size=8)
    _close(gpuad.hessian(lambda x: gnp.sum(gnp.asarray(u) * f(x)))(gnp.asarray(x)),
           jax.hessian(lambda x: jnp.sum(jnp.asarray(u) * g(x)))(jnp.asarray(x)), "hessian")
