"""The analysis of structure (gpuad/compiler/structure.py) and the collapse it drives
(passes.collapse): every value of generated programs is zero outside its support and an index-made
value equals its entries, at random inputs; contractions with a seed however it is moved collapse to
products equal to eager; sparsity patterns keep the zeros of forward mode's seeds."""
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import assert_close
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_passes import STEPS, _chain

import gpuad
import gpuad.numpy as gnp
from gpuad import sparse
from gpuad.compiler import passes, structure
from gpuad.compiler.ir import Var
from gpuad.compiler.passes import collapse, fold_constants, simplify
from gpuad.compiler.tracing import traced
from gpuad.core import ShapeDtypeStruct, results
from gpuad.ops.contract import contract, contract_arrays


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
_FOLDED = {  # a seed moved or broadcast, met by a constant: folded from its entries, no GEMM left with it
    "vmap of jacfwd (a seed broadcast over the batch)":
        (lambda x: gpuad.vmap(gpuad.jacfwd(lambda v: gnp.tanh(_W @ v)))(x), (5, 4)),
    "jacfwd of a reversed input": (lambda x: gpuad.jacfwd(lambda v: gnp.tanh(_W @ v[::-1]))(x), (4,)),
}
_COLLAPSED = {  # a contraction or sum with a seed moved, broadcast or scaled, met by a computed value
    "jacrev through a linear layer": (lambda x: gpuad.jacrev(lambda v: gnp.tanh(_W @ gnp.sin(v)))(x), (4,)),
    "a sum of a scaled seed, float32": (lambda x: gnp.sum(gnp.eye(6, dtype=np.float32) * gnp.cos(x), axis=1), (6,)),
    "a shifted seed": (lambda x: gnp.eye(3, 6, k=2) @ (_W[:6] @ gnp.sin(x)), (4,)),
    "vmap of jacfwd of a quadratic form (a scaled seed broadcast, met by a computed matrix)":
        (lambda x: gpuad.vmap(gpuad.jacfwd(lambda v: gnp.sin(v) @ gnp.outer(v, gnp.cos(v))))(x), (5, 4)),
    "jacfwd of a reversed value met by a computed matrix (a scaled seed, reversed)":
        (lambda x: gpuad.jacfwd(lambda v: gnp.sin(v)[::-1] @ gnp.outer(v, gnp.cos(v)))(x), (4,)),
    "a strided slice of a seed (zeros in every other row)":
        (lambda x: (gnp.eye(6)[:, ::2] * gnp.sin(x)[::2]) @ (_W[:3, :3] * x[0]), (6,)),
    "a shifted seed meeting part of the result":
        (lambda x: gnp.eye(3, 6, k=2).T @ (gnp.cos(x[:3])[:, None] * _W[:3]), (6,)),
    "a where on a tangent's non-zeros": (lambda x: gnp.where(
        gpuad.jacfwd(gnp.sin)(x) != 0, gnp.sin(x)[:, None] * gnp.cos(x), 0.0) @ gnp.tanh(x), (5,)),
}


def _contractions(f, x):
    program = gpuad.jit(f).lower(x).program
    program.check()
    return program, [eq for eq in program.equations if eq.prim is contract]


@pytest.mark.parametrize("case", list(_FOLDED))
def test_a_moved_or_broadcast_seed_met_by_a_constant_folds(case):
    f, shape = _FOLDED[case]
    x = gnp.asarray(_RNG.normal(size=shape))
    program, contractions = _contractions(f, x)
    analysis = structure.Structure(program)
    assert not [eq for eq in contractions if any(analysis.support(a).at is not None for a in eq.ins)], program.text()
    assert_close(gpuad.jit(f)(x), f(x), rtol=1e-13)


@pytest.mark.parametrize("case", list(_COLLAPSED))
def test_contractions_with_a_moved_or_broadcast_seed_collapse(case, monkeypatch):
    """Each case has fewer contractions than the pipeline without `collapse` leaves, and equals eager."""
    f, shape = _COLLAPSED[case]
    x = gnp.asarray(_RNG.normal(size=shape).astype(np.float32 if "float32" in case else np.float64))
    program, contractions = _contractions(f, x)
    assert_close(gpuad.jit(f)(x), f(x), rtol=1e-6 if "float32" in case else 1e-13)
    monkeypatch.setattr(passes, "PIPELINE", tuple(p for p in passes.PIPELINE if p is not collapse))
    _, before = _contractions(f, x)
    assert len(contractions) < len(before), program.text()


@pytest.mark.parametrize("k, keepdims", [(2, False), (-1, False), (0, True), (2, True), (-1, True)])
def test_a_sum_of_a_seed_collapses_to_x_placed_into_zeros(k, keepdims):
    """eye(4, 6, k) times x summed over its rows: the columns its diagonal misses are zeros, the
    others x where the diagonal meets them: x placed into zeros, no sum left. Keeping the summed
    axis (as jacfwd of x - max(x, keepdims=True) sums), the collapse writes the kept unit axis,
    whether the diagonal meets every column (k=0) or misses some."""
    def f(x):
        return gnp.sum(gnp.eye(4, 4 if k == 0 else 6, k=k) * x[:, None], axis=0, keepdims=keepdims)
    program = traced(lambda xs: [f(xs[0])], [ShapeDtypeStruct((4,), np.float64)], ["x"])
    after = collapse(program)
    after.check()
    assert not [eq for eq in after.equations if eq.prim.reduction is not None], after.text()
    x = np.linspace(1.0, 2.0, 4)
    assert_close(after.evaluate([x])[0], np.asarray(f(gnp.asarray(x))), rtol=0)


def test_the_jacobian_of_a_shifted_softmax_numerator_replays_unfused():
    """jacfwd of exp(x - max(x, keepdims=True)): the max's tangent is such a sum; replayed
    equation by equation (no fusion region to hide a wrong scatter), it equals eager."""
    from gpuad.compiler.replay import Replay
    jac = gpuad.jacfwd(lambda x: gnp.exp(x - gnp.max(x, axis=-1, keepdims=True)))
    for shape in [(3,), (2, 3)]:
        x = gnp.asarray(_RNG.normal(size=shape))
        lowered = gpuad.jit(jac).lower(x)
        assert_close(Replay(lowered.program, fusion=False).run(x)[0], jac(x), rtol=1e-14)

def _tangent_conditions(xs):
    """Conditions on jacfwd(sin)(x), zero off its diagonal: != 0, > 0 and 0 < are False there
    (so the wheres are zero there), == 0 and >= 0 are True there (no cut)."""
    j, a = gpuad.jacfwd(gnp.sin)(xs[0]), gnp.outer(xs[0], gnp.cos(xs[0]))
    return [gnp.where(j != 0, a, 0.0), gnp.where(j > 0, a, 0.0), gnp.where(0.0 < j, a, 0.0),
            gnp.where(j == 0, a, 0.0), gnp.where(j >= 0, a, 0.0)]


def test_a_condition_computed_from_a_values_zeros_cuts_a_where():
    x = np.linspace(-1.0, 1.0, 5)  # cos > 0: j > 0 on the diagonal
    program = traced(_tangent_conditions, [ShapeDtypeStruct((5,), np.float64)], ["x"])
    assert _sound(program, [x]) >= 3
    analysis = structure.Structure(program)
    supports = [analysis.support(o).at for o in program.outs]
    diagonal = list(range(0, 25, 6))
    assert [None if s is None else list(s) for s in supports] == [diagonal, diagonal, diagonal, None, None]


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


_SPECS = [("ij", "jk", "ik"), ("bij", "bjk", "bik"), ("ij", "ij", ""), ("i", "j", "ij"), ("Zbi", "ij", "Zbj"),
          ("ij", "kj", "ki"), ("aib", "bc", "aic")]


@pytest.mark.parametrize("spec", _SPECS, ids="{0[0]},{0[1]}->{0[2]}".format)
def test_a_contractions_support_rule_is_where_its_operands_masks_contract_to_non_zeros(spec):
    """The rule joins the operands' non-zeros (an operand non-zero anywhere: None): exactly the
    non-zeros of the contraction of their masks, at random supports and sizes."""
    rng = np.random.default_rng(len(_SPECS[0]) + _SPECS.index(spec))
    for _ in range(40):
        dims = {c: int(rng.integers(1, 5)) for c in "".join(spec)}
        shapes = [tuple(dims[c] for c in letters) for letters in spec[:2]]
        masks = [rng.random(sh) < rng.random() for sh in shapes]
        ats = [None if rng.random() < 0.3 else np.flatnonzero(m) for m in masks]
        if ats[0] is None and ats[1] is None:
            continue
        ones = [m.astype(float) if at is not None else np.ones(m.shape) for m, at in zip(masks, ats)]
        got = contract.support(ats, shapes, tuple(dims[c] for c in spec[2]), 1 << 24, spec=spec)
        assert np.array_equal(got, np.flatnonzero(contract_arrays(np, *ones, spec))), (ats, got)


_LARGE = """
import numpy as np
import gpuad, gpuad.numpy as gnp
from gpuad.compiler import structure
from gpuad.compiler.tracing import traced
from gpuad.core import ShapeDtypeStruct
B = 4096
W = np.random.default_rng(0).normal(size=(2, 2))
g = gpuad.jacfwd(gpuad.vmap(lambda v: gnp.tanh(W @ gnp.sin(v)) * v))
program = traced(lambda xs: [g(xs[0])], [ShapeDtypeStruct((B, 2), np.float64)], ["x"])
at = structure.Structure(program).support(program.outs[0]).at
blocks = np.kron(np.eye(B, dtype=bool), np.ones((2, 2), bool)).reshape(B, 2, B, 2)
assert at is not None and np.array_equal(at, np.flatnonzero(blocks)), at
print("ok")
"""


def test_a_large_block_diagonal_seed_keeps_its_blocks_in_little_memory(tmp_path):
    """jacfwd of a vmapped map: a seed of (2 * 4096)^2 = 2^26 elements through contractions keeps
    its 2 x 2 blocks (the contraction's rule joins non-zeros; masks of it would be 0.5 GB each as
    floats), in a process whose address space is capped at 1.5 GB."""
    path = tmp_path / "large.py"
    path.write_text(_LARGE)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run(["bash", "-c", f"ulimit -v 1500000 && {sys.executable} {path}"], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]
