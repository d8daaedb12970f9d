"""The analysis of structure (gpuad/compiler/structure.py) and the collapse it drives
(passes.collapse): every value of generated programs is zero outside its support and an index-made
value equals its entries, at random inputs; contractions with a seed however it is moved collapse to
products equal to eager; sparsity patterns keep the zeros of forward mode's seeds."""
import numpy as np
import pytest
from helpers import assert_close
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_passes import STEPS, _chain

import gpuad
import gpuad.numpy as gnp
from gpuad import sparse
from gpuad.compiler import structure
from gpuad.compiler.ir import Var
from gpuad.compiler.passes import collapse, fold_constants, simplify
from gpuad.compiler.tracing import traced
from gpuad.core import ShapeDtypeStruct, results
from gpuad.ops.contract import contract


def _values(program, inputs):
    """Every Var's value (NumPy), equation by equation."""
    env = dict(zip(program.ins, inputs))
    for eq in program.equations:
        out = eq.prim.impl(*(a.read(env) for a in eq.ins), **eq.params)
        env.update((v, np.asarray(x)) for v, x in zip(eq.outs, results(eq.prim, out)))
    return env


def _sound(program, inputs):
    """Each value is zero outside its support; an index-made one equals its entries."""
    analysis = structure.Structure(program)
    supported = 0
    for v, value in _values(program, inputs).items():
        if not isinstance(v, Var) or v in program.ins:
            continue
        s = analysis.support(v)
        if s.at is not None:
            supported += 1
            outside = np.ones(value.size, bool)
            outside[s.at] = False
            assert not np.any(value.reshape(-1)[outside]), v
        e = analysis.entries(v)
        if e is not None:
            assert_close(structure.dense(e), value, rtol=0)
    return supported


_TRANSFORMS = {"jacfwd": gpuad.jacfwd, "jacrev": gpuad.jacrev, "hessian of a sum": lambda f: gpuad.hessian(
    lambda x: gnp.sum(f(x) ** 2))}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.sampled_from(sorted(STEPS)), min_size=1, max_size=3),
       transform=st.sampled_from(sorted(_TRANSFORMS)), seed=st.integers(0, 2**32 - 1))
def test_every_value_of_a_generated_program_is_zero_outside_its_support(steps, transform, seed):
    chain = _chain(steps)
    program = traced(lambda xs: [_TRANSFORMS[transform](lambda x: chain([x])[0])(xs[0])],
                     [ShapeDtypeStruct((6,), np.float64)], ["x"])
    x = np.random.default_rng(seed).normal(size=6)
    _sound(program, [x])
    _sound(simplify(fold_constants(program)), [x])


def test_a_tangent_bundle_has_its_seeds_support():
    """jacfwd of an elementwise function: the seed and its products stay on the diagonal."""
    program = traced(lambda xs: [gpuad.jacfwd(lambda x: gnp.sin(x) * x)(xs[0])],
                     [ShapeDtypeStruct((5,), np.float64)], ["x"])
    assert _sound(program, [np.linspace(0.1, 1, 5)]) >= 2
    analysis = structure.Structure(program)
    out = analysis.support(program.outs[0])
    assert out.at is not None and sorted(out.at) == [0, 6, 12, 18, 24]


_RNG = np.random.default_rng(4)
_W = _RNG.normal(size=(7, 4))
_COLLAPSED = {  # a contraction or sum with a seed moved, broadcast or scaled, as jit meets them
    "vmap of jacfwd (a seed broadcast over the batch)":
        (lambda x: gpuad.vmap(gpuad.jacfwd(lambda v: gnp.tanh(_W @ v)))(x), (5, 4)),
    "jacfwd of a reversed input": (lambda x: gpuad.jacfwd(lambda v: gnp.tanh(_W @ v[::-1]))(x), (4,)),
    "a shifted seed": (lambda x: gnp.eye(3, 6, k=2) @ (_W[:6] @ gnp.sin(x)), (4,)),
    "jacrev through a linear layer": (lambda x: gpuad.jacrev(lambda v: gnp.tanh(_W @ gnp.sin(v)))(x), (4,)),
    "a sum of a scaled seed, float32": (lambda x: gnp.sum(gnp.eye(6, dtype=np.float32) * gnp.cos(x), axis=1), (6,)),
}


@pytest.mark.parametrize("case", list(_COLLAPSED))
def test_contractions_with_a_moved_or_broadcast_seed_collapse(case):
    f, shape = _COLLAPSED[case]
    x = gnp.asarray(_RNG.normal(size=shape).astype(np.float32 if "float32" in case else np.float64))
    program = gpuad.jit(f).lower(x).program
    program.check()
    analysis = structure.Structure(program)
    seeded = [eq for eq in program.equations if eq.prim is contract and
              any(analysis.support(a).at is not None for a in eq.ins)]
    assert not seeded, program.text()
    assert_close(gpuad.jit(f)(x), f(x), rtol=1e-6 if "float32" in case else 1e-13)


def test_collapse_leaves_a_seed_whose_non_zeros_miss_elements():
    """eye(4, 6, k=2) summed over its rows: columns 0 and 1 hold no non-zero, so the sum is no
    read of values at the non-zeros in order; the pass leaves it (and it stays right)."""
    def f(x):
        return gnp.sum(gnp.eye(4, 6, k=2) * x[:, None], axis=0)
    program = traced(lambda xs: [f(xs[0])], [ShapeDtypeStruct((4,), np.float64)], ["x"])
    after = collapse(program)
    after.check()
    x = np.linspace(1.0, 2.0, 4)
    assert_close(after.evaluate([x])[0], np.r_[0.0, 0.0, x], rtol=0)


def _block_jacobian(x):
    """Per example (rows of 2), the Jacobian of a map R^2 -> R^2, by vmap of jacfwd: its seed is
    broadcast over the batch (block-diagonal in the flattened input)."""
    return gpuad.vmap(gpuad.jacfwd(lambda v: gnp.stack([v[0] * gnp.sin(v[1]), v[1] ** 3])))(
        x.reshape(-1, 2)).reshape(-1)


def test_the_pattern_of_a_vmapped_jacobian_is_block_diagonal():
    n = 10
    p = sparse.jacobian_sparsity(_block_jacobian)(gnp.zeros(n)).toarray()
    assert p.shape == (2 * n, n)
    blocks = np.kron(np.eye(n // 2, dtype=bool), np.ones((4, 2), bool))
    dense = np.asarray(gpuad.jacfwd(_block_jacobian)(gnp.asarray(_RNG.normal(size=n)))) != 0
    assert not np.any(dense & ~p)  # the pattern holds the Jacobian
    assert not np.any(p & ~blocks)  # and no entry outside the blocks


def test_the_pattern_of_a_forward_jacobian_of_a_banded_map_is_banded():
    """jacfwd of a tridiagonal map, differentiated again: each entry J[i, j] depends on x[i-1..i+1]."""
    def jac(x):
        inner = x[:-2] - 2 * x[1:-1] + x[2:] + gnp.sin(x[1:-1]) * x[1:-1]
        return gpuad.jacfwd(lambda u: gnp.concatenate([u[:1] ** 2, inner * 0 + u[1:-1] ** 2 * u[:-2], u[-1:]]))(x)
    n = 8
    p = sparse.jacobian_sparsity(lambda x: jac(x).reshape(-1))(gnp.zeros(n)).toarray()
    dense = np.asarray(gpuad.jacfwd(lambda x: jac(x).reshape(-1))(gnp.asarray(_RNG.normal(size=n)))) != 0
    assert not np.any(dense & ~p)
    rows = np.arange(n * n) // n
    assert not np.any(p & (np.abs(rows[:, None] - np.arange(n)[None, :]) > 1))  # within the band of its row
