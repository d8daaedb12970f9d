"""Property tests: random programs built from gpuad's primitives, checked against finite
differences (first and second order) and across modes.

A program is a short list of steps over a growing list of values (the inputs first). A step
applies an elementwise row of the table (its arguments squashed smoothly into the row's
domain, taken from the op-spec table) or a shape-preserving structural op to earlier values.
Rows with kinks (abs, maximum, minimum) are left out: differences across a kink are not
derivatives.
"""
import numpy as np
import pytest
from helpers import (
    assert_close,
    assert_tree_close,
    check_dot_product,
    check_first_order,
    check_second_order,
    on_backend,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_primitives import BINARY, UNARY

import gpuad
import gpuad.numpy as gnp

KINKED = {"abs", "maximum", "minimum"}


def _lift(fn):
    """Run an axis-wise op on a 0-d value as on a 1-d value of one element."""
    return lambda x: fn(x) if np.ndim(x) else fn(gnp.reshape(x, (1,)))[0]


STRUCTURAL = {name: _lift(fn) for name, fn in {
    "sum_last_keepdims": lambda x: gnp.sum(x, axis=-1, keepdims=True) * x,
    "cumsum_last": lambda x: gnp.cumsum(x, axis=-1),
    "flip": lambda x: gnp.flip(x),
    "roll": lambda x: gnp.roll(x, 1),
    "centre": lambda x: x - gnp.mean(x),
    "softmax_last": lambda x: gnp.exp(x - gnp.max(x, axis=-1, keepdims=True)),
    "transpose_twice": lambda x: gnp.transpose(gnp.transpose(x) * 1.5),
}.items()}
UNARY_OPS = sorted(set(UNARY) - KINKED) + sorted(STRUCTURAL)
BINARY_OPS = sorted(set(BINARY) - KINKED)
SHAPES = [(), (3,), (2, 3), (2, 1, 3)]
SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def squash(x, domain):
    """A smooth map from the reals into the open interval `domain`."""
    lo, hi = domain
    return lo + (hi - lo) * (0.5 + 0.5 * gnp.tanh(0.5 * x))


def apply(step, values):
    op, args = step
    xs = [values[i] for i in args]
    if op in STRUCTURAL:
        return STRUCTURAL[op](xs[0])
    domains = (UNARY if op in UNARY else BINARY)[op]
    domains = domains if isinstance(domains, list) else [domains] * len(xs)
    return getattr(gnp, op)(*[squash(x, d) for x, d in zip(xs, domains)])


@st.composite
def programs(draw):
    shape = draw(st.sampled_from(SHAPES))
    shapes = [shape]
    if draw(st.booleans()):  # a second input, broadcasting against the first
        shapes.append(draw(st.sampled_from([shape, shape[-1:], ()])))
    steps = []
    for k in range(draw(st.integers(1, 5))):
        n = len(shapes) + k
        if draw(st.booleans()):
            steps.append((draw(st.sampled_from(UNARY_OPS)), (draw(st.integers(0, n - 1)),)))
        else:
            steps.append((draw(st.sampled_from(BINARY_OPS)), (draw(st.integers(0, n - 1)),
                                                               draw(st.integers(0, n - 1)))))
    seed = draw(st.integers(0, 2 ** 16))
    rng = np.random.default_rng(seed)
    xs = tuple(rng.uniform(-2.0, 2.0, size=s) for s in shapes)
    return steps, xs


def program_function(steps):
    def f(*xs):
        values = list(xs)
        for step in steps:
            values.append(apply(step, values))
        return values[-1]
    return f


@SETTINGS
@given(programs())
def test_random_programs_first_order_and_modes_agree(program):
    steps, xs = program
    f = program_function(steps)
    check_first_order(f, xs, rtol=1e-5, atol=1e-5)
    check_dot_product(f, xs)
    nums = tuple(range(len(xs)))
    args = on_backend(*xs)
    fwd, rev = gpuad.jacfwd(f, argnums=nums)(*args), gpuad.jacrev(f, argnums=nums)(*args)
    for a, b in zip(fwd, rev):
        assert_close(a, b, rtol=1e-10, atol=1e-10, what=str(steps))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_random_programs_second_order(program):
    steps, xs = program
    check_second_order(program_function(steps), xs, rtol=1e-4, atol=1e-4)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_random_programs_vmap_matches_loop(program):
    steps, xs = program
    f = program_function(steps)
    batch = [np.stack([x, x * 0.5 - 0.3, -x]) for x in xs]
    got = gpuad.vmap(f)(*on_backend(*batch))
    for k in range(3):
        assert_close(got[k], f(*on_backend(*[b[k] for b in batch])), rtol=1e-12, atol=1e-12)
    grads = gpuad.vmap(gpuad.grad(lambda *a: gnp.sum(f(*a))))(*on_backend(*batch))
    for k in range(3):
        expected = gpuad.grad(lambda *a: gnp.sum(f(*a)))(*on_backend(*[b[k] for b in batch]))
        assert_close(grads[k], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.slow  # each example compiles its programs' kernels
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_random_programs_compiled_equal_eager(program):
    """gpuad.jit of the value, the Jacobians and the Hessian of a sum equals the eager result."""
    steps, xs = program
    f = program_function(steps)
    nums = tuple(range(len(xs)))
    args = on_backend(*xs)

    def total(*a):
        return gnp.sum(f(*a))

    for fun in (f, gpuad.jacfwd(f, argnums=nums), gpuad.jacrev(f, argnums=nums), gpuad.hessian(total, argnums=nums)):
        assert_tree_close(gpuad.jit(fun)(*args), fun(*args), rtol=1e-12, atol=1e-12, what=str(steps))
