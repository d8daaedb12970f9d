"""Complex carries through gpuad.lax under every derivative: JAX's convention (docs/complex.md),
checked against central differences along the real and imaginary parts (helpers.check_complex),
closed forms and the unrolled Python loop; tests/test_lax_vs_jax.py compares them with JAX."""
import numpy as np
import pytest
from helpers import assert_close, check_complex, crandom, on_backend

import gpuad
import gpuad.numpy as gnp
from gpuad import lax


def _cell(w, c, x):
    """A complex recurrence with a real running sum beside it: a mixed carry."""
    h, s = c
    h = gnp.sin(w @ h) * 0.8 + x * 1j
    return (h, s + gnp.sum(gnp.abs(h) ** 2)), gnp.conj(h[0]) * h[1]


def _scanned(checkpoint=None, reverse=False):
    def f(w, h0, xs):
        (h, s), ys = lax.scan(lambda c, x: _cell(w, c, x), (h0, gnp.asarray(0.0)), xs, reverse=reverse,
                              checkpoint=checkpoint)
        return gnp.concatenate([h, gnp.stack([s]), ys])
    return f


def _unrolled(w, h0, xs):
    c, ys = (h0, gnp.asarray(0.0)), []
    for k in range(xs.shape[0]):
        c, y = _cell(w, c, xs[k])
        ys.append(y)
    return gnp.concatenate([c[0], gnp.stack([c[1]]), gnp.stack(ys)])


W, H0, XS = crandom((2, 2), 0) * 0.6, crandom(2, 1), np.linspace(-0.5, 0.5, 5)


@pytest.mark.parametrize("checkpoint,reverse", [(None, False), (None, True), (2, False), ("auto", True)])
def test_scan_of_a_mixed_real_and_complex_carry(checkpoint, reverse):
    f = _scanned(checkpoint, reverse)
    check_complex(f, (W, H0, XS))
    if not reverse:
        assert_close(f(*on_backend(W, H0, XS)), _unrolled(*on_backend(W, H0, XS)), rtol=1e-14)


def test_fori_and_while_loops_of_complex_carries():
    def rotate(z, theta):  # z e^{i theta n} by steps, with a holomorphic damping
        return lax.fori_loop(0, 6, lambda i, z: z * gnp.exp(1j * theta) - 0.05 * z ** 2, z, checkpoint=3)
    check_complex(rotate, (crandom(3, 2), np.array([0.3, -0.4, 0.9])))

    def sqrt(c):  # Newton's method for z^2 = c from 1, to convergence
        def step(s):
            z, k = s
            return 0.5 * (z + c / z), k + 1
        return lax.while_loop(lambda s: (gnp.max(gnp.abs(s[0] ** 2 - c)) > 1e-15) & (s[1] < 50), step,
                              (gnp.ones_like(c), 0))[0]
    c = crandom(3, 3) + 1.0
    expected = np.diag(0.5 / np.sqrt(c))  # the principal root's derivative: the implicit-function result
    for jacobian in (gpuad.jacfwd, gpuad.jacrev):
        assert_close(jacobian(sqrt, holomorphic=True)(gnp.asarray(c)), expected, rtol=1e-12, atol=1e-12)
    check_complex(sqrt, (c,))


def test_cond_and_switch_of_complex_operands():
    def f(z, t):
        return lax.switch(gnp.asarray(1), [lambda z: z, lambda z: gnp.sin(z) * t, lambda z: gnp.conj(z)], z) + \
            lax.cond(t[0] > 0, lambda z: gnp.exp(z) * t, lambda z: z * 1j, z)
    check_complex(f, (crandom(3, 4), np.array([0.5, -0.2, 1.1])))


def test_second_order_vmap_and_jit_of_complex_loops():
    w, h0, xs = on_backend(W, H0, XS)

    def loss(f):
        return lambda h0: gnp.sum(gnp.abs(f(w, h0, xs)) ** 2)
    looped, unrolled = loss(_scanned()), loss(_unrolled)
    v = gnp.asarray(crandom(2, 5))
    expected = gpuad.jvp(gpuad.grad(unrolled), (h0,), (v,))[1]
    for f in (looped, loss(_scanned(2))):
        assert_close(gpuad.jvp(gpuad.grad(f), (h0,), (v,))[1], expected, rtol=1e-12)  # forward over reverse
        assert_close(gpuad.vjp(gpuad.grad(f), h0)[1](v)[0], gpuad.vjp(gpuad.grad(unrolled), h0)[1](v)[0],
                     rtol=1e-12)                                                         # reverse over reverse
    stack = gnp.stack([h0, h0 * 0.5j])
    assert_close(gpuad.vmap(gpuad.grad(looped))(stack), gpuad.vmap(gpuad.grad(unrolled))(stack), rtol=1e-13)
    assert_close(gpuad.jit(gpuad.grad(looped))(h0), gpuad.grad(unrolled)(h0), rtol=1e-13)
