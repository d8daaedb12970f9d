"""The optimiser (gpuad/compiler/passes.py) and the IR's verifier (Program.check): generated
programs holding seeds, contractions, moves and loops stay valid after every pass and compute
what the unoptimised program computes; check() finds each kind of fault; and each pass does what
it says on the programs that motivated it."""
import numpy as np
import pytest
from helpers import assert_close
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gpuad
import gpuad.numpy as gnp
import gpuad.scipy.linalg as gsl
from gpuad.compiler.ir import Equation, Lit, Program, Var
from gpuad.compiler.passes import PIPELINE, common_subexpressions, dead_code
from gpuad.compiler.tracing import traced
from gpuad.core import ShapeDtypeStruct
from gpuad.ops import linalg as linalg_ops
from gpuad.ops.elementwise import PRIMS

X = np.array([0.3, -1.2, 0.7, 2.0])


# ---------------------------------------------------------------- generated programs
N = 6
_W = np.random.default_rng(0).normal(size=(N, N)) * 0.5
# Steps from a value v (N,) and the input x (N,) to a new value (N,); a program chains a few.
STEPS = {
    "sin": lambda v, x: gnp.sin(v),
    "constant @ v": lambda v, x: _W @ v,
    "reshape, transpose, ravel": lambda v, x: gnp.reshape(gnp.reshape(v, (2, 3)).T, (N,)),
    "rotate by slices": lambda v, x: gnp.concatenate([v[1:], v[:1]]),
    "neutral constants": lambda v, x: (v * 1.0 + (-0.0)) / 1.0 - 0.0,
    "same-shape moves and casts": lambda v, x: gnp.broadcast_to(gnp.reshape(v, (N,)), (N,)).astype(v.dtype),
    "constant conditions": lambda v, x: gnp.where(True, v, x) + gnp.where(np.zeros(N, bool), x, 0.5),
    "computed condition": lambda v, x: gnp.where(v > 0, v, x),
    "conditions on a tangent's zeros": lambda v, x: (lambda j: gnp.where(j != 0, gnp.cos(v)[:, None] * x, 0.0) @ x
                                                     + gnp.where(j < 0, x, 0.0) @ v + gnp.where(j == 0, 0.0, j) @ x)(
        gpuad.jacfwd(gnp.sin)(v)),
    "diagonal contraction": lambda v, x: (v * gnp.eye(N)) @ gnp.cos(x),
    "a scaled seed summed": lambda v, x: gnp.sum(v * gnp.eye(N), axis=0),
    "a seed's slice @ constant": lambda v, x: v * (gnp.eye(N)[:, ::-1] @ _W)[1],
    "outer product summed": lambda v, x: gnp.sum(gnp.einsum("i,j->ij", v, x), axis=1),
    "weighted rows summed": lambda v, x: gnp.sum(gnp.reshape(gnp.tile(v, N), (N, N)) * x[:, None], axis=0),
    "a product summed to a scalar": lambda v, x: v * gnp.sum(v * gnp.cos(x)),
    "repeated work": lambda v, x: gnp.tanh(v) + gnp.tanh(v),
    "jacfwd inside": lambda v, x: gpuad.jacfwd(lambda u: gnp.tanh(_W @ u) * x)(v) @ v,
    "jacrev inside": lambda v, x: gnp.sum(gpuad.jacrev(lambda u: gnp.sin(u) * u)(v), axis=0),
    "hessian inside": lambda v, x: gpuad.hessian(lambda u: gnp.sum(gnp.sin(u) ** 2))(v) @ x,
    "a scan": lambda v, x: gpuad.lax.scan(lambda c, xi: (c * 0.5 + xi, c * xi), 0.0, v)[1],
    "dead work": lambda v, x: (gnp.exp(x), v)[1],
    # factorisations: equations of several results (sign-free functions of their factors)
    "eigh, both factors": lambda v, x: (lambda w, q: (q * q) @ w)(*gnp.linalg.eigh(gnp.outer(v, x) + _W)),
    "eigh twice, values alone": lambda v, x: (lambda m: gnp.linalg.eigvalsh(m) + gnp.linalg.eigh(m)[0] * x)(_sym(v)),
    "svd, every factor": lambda v, x: (lambda u, s, vh: gnp.concatenate([s, s]) * ((u * s) @ vh).ravel()[:N])(
        *gnp.linalg.svd(gnp.reshape(gnp.concatenate([v, x]), (4, 3)), full_matrices=False)),
    "qr, one factor unused": lambda v, x: gnp.diagonal(gnp.linalg.qr(_W + gnp.outer(v, x)).R) ** 2,
    "lu_factor and lu_solve": lambda v, x: gsl.lu_solve(gsl.lu_factor(_W + gnp.diag(v)), x),
    "grad through eigh": lambda v, x: gpuad.grad(lambda u: gnp.sum(gnp.linalg.eigvalsh(_sym(u)) * x))(v),
    "jacfwd through svd": lambda v, x: gnp.sum(gpuad.jacfwd(lambda u: gnp.linalg.svd(
        gnp.reshape(gnp.concatenate([u, x]), (4, 3)), compute_uv=False))(v), axis=0) * x[:2].sum(),
}


def _sym(v):
    return gnp.outer(v, v) + _W + _W.T


def _chain(steps):
    def f(xs):
        v = xs[0]
        for s in steps:
            v = STEPS[s](v, xs[0])
        return [v, v[0] * xs[0]]
    return f


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.sampled_from(sorted(STEPS)), min_size=1, max_size=4), seed=st.integers(0, 2**32 - 1))
def test_every_pass_keeps_a_generated_program_valid_and_equal_to_the_unoptimised(steps, seed):
    f = _chain(steps)
    program = traced(f, [ShapeDtypeStruct((N,), np.float64)], ["x"])
    program.check()
    x = np.random.default_rng(seed).normal(size=N)
    want = program.evaluate([x])
    for eager, traced_value in zip(f([x]), want):
        assert_close(traced_value, eager, rtol=1e-12, atol=1e-12)
    for run in PIPELINE:
        program = run(program)
        program.check()
        for got, expected in zip(program.evaluate([x]), want):  # a pass may reorder a sum: a few ulps
            assert_close(got, expected, rtol=1e-10, atol=1e-12, what=f"{run.__name__} of {steps}")


# ---------------------------------------------------------------- the verifier
_AVAL = ShapeDtypeStruct((3,), np.float64)
_SIN, _COS = PRIMS["sin"], PRIMS["cos"]
_EIGH = linalg_ops.eigh


def _vars(k, aval=_AVAL):
    return [Var(i, aval) for i in range(k)]


def _faulty():
    x, a, b = _vars(3)
    wide, single = Var(7, ShapeDtypeStruct((4,), np.float64)), Var(8, ShapeDtypeStruct((3,), np.float32))
    return {
        "reads .* before any input or equation defines it": Program([x], [Equation(_SIN, [a], b, {})], [b]),
        "v1 is assigned a second time": Program([x], [Equation(_SIN, [x], a, {}), Equation(_COS, [x], a, {})], [a]),
        "v0 is assigned a second time": Program([x], [Equation(_SIN, [x], x, {})], [x]),
        r"its output is v7:float64\[4\], but sin of these operands makes float64\[3\]":
            Program([x], [Equation(_SIN, [x], wide, {})], [wide]),
        r"its output is v8:float32\[3\], but sin of these operands makes float64\[3\]":
            Program([x], [Equation(_SIN, [x], single, {})], [single]),
        "output v2 is defined by no input or equation": Program([x], [Equation(_SIN, [x], a, {})], [b]),
        **_faulty_factorisations(),
    }


def _faulty_factorisations():
    """Faults of equations of several results (eigh: (w, V))."""
    square = ShapeDtypeStruct((3, 3), np.float64)
    m, w, v, v2 = Var(10, square), Var(11, _AVAL), Var(12, square), Var(14, square)
    v32 = Var(13, ShapeDtypeStruct((3, 3), np.float32))
    return {
        r"it has 1 output\(s\), but eigh makes 2": Program([m], [Equation(_EIGH, [m], (w,), {})], [w]),
        r"its output is v13:float32\[3, 3\], but eigh of these operands makes float64\[3, 3\]":
            Program([m], [Equation(_EIGH, [m], (w, v32), {})], [v32]),
        "v11 is assigned a second time":
            Program([m], [Equation(_EIGH, [m], (w, v), {}), Equation(_EIGH, [m], (w, v2), {})], [v2]),
        "output v12 is defined by no input or equation": Program([m], [Equation(_EIGH, [m], (w, v2), {})], [v]),
    }


@pytest.mark.parametrize("fault", list(_faulty()))
def test_check_names_each_fault(fault):
    with pytest.raises(ValueError, match=fault):
        _faulty()[fault].check()


def test_check_accepts_a_valid_hand_built_program_with_constants():
    x, a, b = _vars(3)
    Program([x], [Equation(_SIN, [x], a, {}), Equation(PRIMS["add"], [a, Lit(2.0)], b, {})], [b, Lit(1.5)]).check()


def test_an_equation_of_several_results_is_read_through_outs():
    m, w, v = Var(0, ShapeDtypeStruct((3, 3), np.float64)), Var(1, _AVAL), Var(2, ShapeDtypeStruct((3, 3), np.float64))
    eq = Equation(_EIGH, [m], (w, v), {})
    program = Program([m], [eq], [v, w])
    program.check()
    assert eq.outs == (w, v) and program.next_id() == 3
    assert "v1:float64[3], v2:float64[3, 3] = eigh v0" in program.text()
    a = np.diag([3.0, 1.0, 2.0])
    for got, want in zip(program.evaluate([a]), reversed(np.linalg.eigh(a))):
        np.testing.assert_allclose(got, want)


@pytest.mark.parametrize("use", [lambda out: out.shape, lambda out: {out: 1}, lambda out: out == out,
                                 lambda out: bool(out), lambda out: [v for v in out]],
                         ids=["attribute", "hash", "equality", "truth", "iteration"])
def test_the_one_out_of_an_equation_of_several_results_fails_loudly(use):
    m, w, v = Var(0, ShapeDtypeStruct((3, 3), np.float64)), Var(1, _AVAL), Var(2, ShapeDtypeStruct((3, 3), np.float64))
    with pytest.raises((AttributeError, TypeError), match="read its `outs`"):
        use(Equation(_EIGH, [m], (w, v), {}).out)


def test_check_verifies_a_loop_body_it_holds():
    program = traced(_chain(["a scan"]), [ShapeDtypeStruct((N,), np.float64)], ["x"])
    program.check()
    specs = [p for eq in program.equations for p in eq.params.values() if hasattr(p, "bodies")]
    assert specs, program.text()
    body = specs[0].bodies[0]
    body.outs[0] = Var(999, ShapeDtypeStruct(body.outs[0].shape, body.outs[0].dtype))
    with pytest.raises(ValueError, match="in a body it holds: the program's output v999 is defined by no"):
        program.check()


# ---------------------------------------------------------------- each pass on the programs behind it
def test_dead_code_and_common_subexpressions():
    def f(x):
        unused = gnp.exp(x) * 3.0  # noqa: F841 - traced, then dropped
        return gnp.sin(x) + gnp.sin(x)

    text = gpuad.jit(f).lower(gnp.asarray(X)).as_text()
    assert text.count(" sin ") == 1 and "exp" not in text


def test_hessian_does_not_compute_the_function_value():
    lowered = gpuad.jit(gpuad.hessian(lambda x: gnp.sum(gnp.exp(x) * x))).lower(gnp.asarray(X))
    sums = [line for line in lowered.as_text().splitlines() if "reduce_sum" in line and "[]" in line.split("=")[0]]
    assert not sums, "a 0-d sum (the function value) survived dead-code elimination"


def test_passes_on_a_hand_built_program():
    from gpuad.core import ShapeDtypeStruct
    from gpuad.ops.elementwise import PRIMS
    aval = ShapeDtypeStruct((3,), np.float64)
    x, a, b, c, d = (Var(i, aval) for i in range(5))
    eqs = [Equation(PRIMS["sin"], [x], a, {}), Equation(PRIMS["sin"], [x], b, {}),
           Equation(PRIMS["add"], [a, b], c, {}), Equation(PRIMS["exp"], [x], d, {})]
    out = dead_code(common_subexpressions(Program([x], eqs, [c])))
    assert [e.prim.name for e in out.equations] == ["sin", "add"]
    assert out.equations[1].ins == [a, a]


def _array_constants(lowered):
    return [a.val for eq in lowered.program.equations for a in eq.ins
            if isinstance(a, Lit) and getattr(a.val, "ndim", 0)]


def test_seeds_are_equations_and_what_combines_or_sums_them_folds():
    """The n x n seed and its slices stay equations (made from indices where used); W @ seed (as
    big as W) and a seed summed (a vector) are folded into constants once."""
    n = 100
    W = np.random.default_rng(0).normal(size=(30, n))

    def f(x):
        w = W[:, :x.size - 1]
        return gnp.sin(x[1:]) * x[:-1] + w @ x[1:] @ w + gnp.sum(x[2:])
    x = gnp.asarray(np.linspace(-1, 1, n))
    lowered = gpuad.jit(gpuad.jacfwd(f)).lower(x)
    assert " eye[" in lowered.as_text()
    sizes = sorted(a.size for a in _array_constants(lowered))
    assert sizes and max(sizes) <= W.size, sizes  # W's own (folded W @ seed slices), never n x n
    assert_close(gpuad.jit(gpuad.jacfwd(f))(x), gpuad.jacfwd(f)(x), rtol=1e-13)
    sums = [eq for eq in lowered.program.equations if eq.prim.name == "reduce_sum"]
    assert not any(eq.ins[0].shape == (n, n - 2) for eq in sums), "the seed's sum (a constant) was not folded"


@pytest.mark.parametrize("transform", [gpuad.jacfwd, gpuad.jacrev, gpuad.hessian])
def test_contractions_with_a_scaled_seed_become_broadcast_products(transform):
    """jacrev through W @ tanh(...) contracts W with d * eye; jacfwd contracts eye-seeded bundles
    with W: no GEMM with a seed is left, and the derivatives are those of the eager transforms."""
    rng = np.random.default_rng(1)
    W1, W2 = rng.normal(size=(20, 12)), rng.normal(size=(6, 20))

    def mlp(x):
        return gnp.tanh(W2 @ gnp.tanh(W1 @ x)) * 2.0

    def f(x):
        return mlp(x) if transform is not gpuad.hessian else gnp.sum(mlp(x) ** 2)
    x = gnp.asarray(rng.normal(size=12))
    lowered = gpuad.jit(transform(f)).lower(x)
    made = {eq.out: eq for eq in lowered.program.equations}
    seeded = [eq for eq in lowered.program.equations if eq.prim.name == "contract" and any(
        isinstance(a, Var) and a in made and "eye" in (made[a].prim.name, *(
            made[b].prim.name for b in made[a].ins if isinstance(b, Var) and b in made)) for a in eq.ins)]
    assert not seeded, lowered.as_text()
    assert_close(gpuad.jit(transform(f))(x), transform(f)(x), rtol=1e-13)
    x32 = x.astype(np.float32)  # float64 weights promote: the products keep the contractions' dtypes
    compiled, eager = gpuad.jit(transform(f))(x32), transform(f)(x32)
    assert compiled.dtype == eager.dtype
    assert_close(compiled, eager, rtol=1e-6)


def test_jacfwd_of_a_sum_reads_the_diagonal_not_the_seed():
    """The tangent of sum(g(x)) is the sum of g'(x) * eye: that is g'(x), no n x n sum."""
    def f(x):
        return gnp.sin(x) * gnp.sum(x ** 2) + gnp.sum(gnp.exp(x), axis=0, keepdims=True)
    x = gnp.asarray(np.linspace(-1, 1, 300))
    program = gpuad.jit(gpuad.jacfwd(f)).lower(x).program
    sums = [eq for eq in program.equations if eq.prim.name == "reduce_sum"]
    assert sums and all(eq.ins[0].shape == (300,) for eq in sums), program.text()
    assert_close(gpuad.jit(gpuad.jacfwd(f))(x), gpuad.jacrev(f)(x), rtol=1e-13)


@pytest.mark.slow
def test_collapse_in_every_arrangement():
    """d * eye on either side, summed along either axis, d as a vector, row or column, the other
    operand's axes in any order, and eye alone: each equals the contraction it replaces."""
    from gpuad.ops.contract import contract
    from gpuad.ops.creation import eye
    from gpuad.ops.elementwise import multiply
    rng = np.random.default_rng(2)
    n, dims = 5, {"p": 5, "q": 5, "k": 3}
    cases = [(("pq", "qk", "pk"), (n,)), (("pq", "qk", "kp"), (1, n)), (("qp", "qk", "pk"), (n, 1)),
             (("pq", "kq", "kp"), (n,)), (("pq", "qk", "pk"), None)]
    for spec, dshape in cases:
        for side in (0, 1):
            d = rng.normal(size=dshape) if dshape else None
            b = rng.normal(size=[dims[c] for c in spec[1]])
            spec_ = spec if side == 0 else (spec[1], spec[0], spec[2])
            full = np.eye(n) * (d if d is not None else 1.0)
            want = np.einsum(f"{spec_[0]},{spec_[1]}->{spec_[2]}", *((full, b) if side == 0 else (b, full)))

            def g(b, d=d, side=side, spec_=spec_):
                e = eye(rows=n, cols=n, k=0, dtype=np.dtype(float))
                a = e if d is None else multiply(gnp.asarray(d) + b.ravel()[0] * 0.0, e)  # d: a traced value
                return contract(*((a, b) if side == 0 else (b, a)), spec=spec_)
            program = gpuad.jit(g).lower(b).program
            assert not any(eq.prim.name == "contract" for eq in program.equations), (spec_, program.text())
            assert_close(gpuad.jit(g)(b), want, rtol=1e-14)


def test_a_seed_met_by_a_constant_matrix_folds_at_any_depth():
    """jacrev(hessian(f)) of ridges a_r . x: the outer seed (n^2 x n^2) meets the constant ridges
    in a contraction, which folds into a small constant (the seed would not fit at n = 200)."""
    rng = np.random.default_rng(3)
    A = rng.normal(size=(4, 12))

    def f(x):
        return gnp.sum((A @ x) ** 4)
    x = gnp.asarray(rng.normal(size=12))
    third = gpuad.jit(gpuad.jacrev(gpuad.hessian(f)))
    assert " eye[" not in third.lower(x).as_text()
    assert_close(third(x), np.einsum("r,ri,rj,rk->ijk", 24 * (A @ np.asarray(x)), A, A, A), rtol=1e-12)


_RNG = np.random.default_rng(11)
_B = gnp.asarray(_RNG.normal(size=(6, 4)))  # the backend's: the eager reference meets it with backend arrays
_SEED_CHAINS = {  # a seed made by eye and moves, then contracted with a constant (folded from its non-zeros)
    "W @ eye": lambda x: _B.T @ gnp.eye(6) * x[0],
    "eye slice @ B": lambda x: gnp.eye(6)[:, 1:5] @ _B[1:5] * x[1],
    "shifted rectangle, transposed": lambda x: gnp.eye(4, 6, k=2).T.T @ _B * x[0],
    "reshaped, contracted on a trailing axis": lambda x: gnp.reshape(gnp.eye(12, 6, k=-3), (3, 4, 6)) @ _B * x[2],
    "broadcast batch": lambda x: gnp.einsum("bij,bjk->bik", gnp.broadcast_to(gnp.eye(6)[None], (3, 6, 6)),
                                            gnp.stack([_B] * 3)) * x[0],
    "scaled, negated, cast": lambda x: (-(gnp.eye(6) * 2.5) / 4.0).astype(np.float32) @ _B.astype(np.float32) * x[0],
    "an int row and a new axis": lambda x: gnp.eye(6)[2, None, :] @ _B * x[1],
    "strided slice, reversed": lambda x: gnp.eye(6)[::-2] @ _B * x[0],
    "a seed's entries summed": lambda x: gnp.einsum("ij,ij->", gnp.eye(6), _B @ _B.T) * x[0],
    "several non-zeros in one row": lambda x: gnp.broadcast_to(gnp.eye(6)[:, :1], (6, 4)) @ _B[:4] * x[0],
}


@pytest.mark.parametrize("chain", list(_SEED_CHAINS))
def test_a_seed_contracted_with_a_constant_folds_from_its_non_zeros(chain, monkeypatch):
    """The contraction of an eye moved, sliced, broadcast or scaled with a constant is folded from
    the seed's entries (passes._collapsed_constant: a gather, never the dense seed), equal to the
    eager result."""
    from gpuad.compiler import passes
    calls = []
    collapsed = passes._collapsed_constant
    monkeypatch.setattr(passes, "_collapsed_constant", lambda *a: calls.append(1) or collapsed(*a))
    f = _SEED_CHAINS[chain]
    x = gnp.asarray(np.array([0.5, -1.5, 2.0]))
    assert_close(gpuad.jit(f)(x), f(x), rtol=1e-6 if "cast" in chain else 1e-14)
    assert calls, "the contraction was not folded from the seed's non-zeros"
    assert_close(gpuad.jit(gpuad.jacfwd(f))(x), gpuad.jacfwd(f)(x), rtol=1e-6 if "cast" in chain else 1e-14)


@pytest.mark.parametrize("f", [lambda x: x[:3] @ _C3, lambda x: _C3 @ x[::4],
                               lambda x: gnp.einsum("i,i->", x[2:5], _C3),
                               lambda x: gnp.reshape(x, (4, 3))[1] @ _C3 * x[5]],
                         ids=["slice @ c", "c @ strided", "einsum", "row of a reshape @ c, times x"])
def test_a_seed_contracted_to_a_scalar_with_fewer_non_zeros_than_directions(f):
    """Each direction of the seed meets the constant in a contraction to a scalar, and most
    directions are zero there (12 directions, 3 non-zeros): jit(jacfwd) equals eager and jacrev."""
    x = gnp.asarray(np.linspace(0.5, 1.7, 12))
    want = gpuad.jacrev(f)(x)
    assert_close(gpuad.jit(gpuad.jacfwd(f))(x), want, rtol=1e-14)
    assert_close(gpuad.jacfwd(f)(x), want, rtol=1e-14)
    assert_close(gpuad.jit(gpuad.hessian(f))(x), gpuad.hessian(f)(x), rtol=1e-14)


def test_jacfwd_of_a_slice_times_a_constant_is_the_constant_at_its_places():
    assert_close(gpuad.jit(gpuad.jacfwd(lambda x: x[:3] @ _C3))(gnp.ones(12)), np.r_[_C3, np.zeros(9)], rtol=0)


_C3 = np.array([1.0, 2.0, 3.0])
_W3 = gnp.asarray(np.linspace(-1, 1, 60).reshape(20, 3))
_SPARSE_STEPS = {  # what folds after a seed's contraction that is mostly zeros, held as its entries
    "times a broadcast constant, divided": lambda c: c * _W3 / 2.0,
    "negated, cast": lambda c: (-c).astype(np.float32),
    "reshaped, transposed": lambda c: gnp.transpose(gnp.reshape(c, (400, 60))),
    "a constant select": lambda c: gnp.where(True, c, 0.0),
    "summed": lambda c: gnp.sum(c, axis=1),
    "summed, kept dims": lambda c: gnp.sum(c, axis=(0, 2), keepdims=True),
    "sliced, broadcast": lambda c: gnp.broadcast_to(c[::3, None, 2:], (134, 2, 18, 3)),
}


@pytest.mark.parametrize("step", list(_SPARSE_STEPS))
def test_a_folded_product_that_is_mostly_zeros_folds_on_as_its_entries(step, monkeypatch):
    """A seed's contraction with a constant that is mostly zeros (each of 400 seed rows meets one
    of 20 blocks) is held as its entries (gpuad/compiler/structure.py) through what folds after it, and
    made dense only where the program reads it: equal to eager, and no dense seed contraction on the way."""
    from gpuad.compiler import passes
    folds = []
    fold = passes.fold
    monkeypatch.setattr(passes, "fold", lambda *a: folds.append(1) or fold(*a))
    x = gnp.asarray(np.array([0.5, -1.5]))

    def f(x):
        c = gnp.reshape(gnp.eye(400), (400, 20, 20)) @ gnp.asarray(np.linspace(0.5, 2.0, 60).reshape(20, 3))
        return _SPARSE_STEPS[step](c) * x[0] + x[1]
    assert_close(gpuad.jit(f)(x), f(x), rtol=1e-6 if "cast" in step else 1e-14)
    assert folds, "the entries were not folded on"


def test_a_where_on_a_constant_condition_is_its_branch():
    x = gnp.asarray(np.linspace(-1, 1, 5))

    def f(x):
        return gnp.where(True, gnp.sin(x), x) + gnp.where(np.zeros(5, bool), x, gnp.cos(x)) + gnp.where(x > 0, x, 0.0)
    text = gpuad.jit(f).lower(x).as_text()
    assert text.count(" where ") == 1  # the computed condition's alone
    assert_close(gpuad.jit(f)(x), f(x), rtol=1e-15)


def test_adding_a_zero_makes_negative_zeros_positive_as_numpy_does():
    x = np.array([-0.0, 0.0, -1.0])
    for f in (lambda x: x + 0.0, lambda x: 0.0 + x, lambda x: x - (-0.0), lambda x: x + np.zeros(3)):
        assert np.signbit(gpuad.jit(f)(x)).tolist() == np.signbit(f(x)).tolist() == [False, False, True]
    for f in (lambda x: x + (-0.0), lambda x: x - 0.0, lambda x: x * 1.0):  # these do return x's zeros
        assert np.signbit(gpuad.jit(f)(x)).tolist() == [True, False, True]


def test_a_contraction_summing_nothing_is_a_broadcast_product():
    """vmap of a gradient makes an outer product per sample (a contraction over no letter): the
    program multiplies, broadcast, instead (fusible, no GEMM of inner dimension 1), same values."""
    rng = np.random.default_rng(5)
    X, w = gnp.asarray(rng.normal(size=(32, 6))), gnp.asarray(rng.normal(size=6))

    def per_sample(w, X):
        return gpuad.vmap(gpuad.grad(lambda w, x: gnp.log(1.0 + gnp.exp(-(x @ w)))), in_axes=(None, 0))(w, X)
    program = gpuad.jit(per_sample).lower(w, X).program
    assert not [eq for eq in program.equations if eq.prim.name == "contract" and
                set(eq.params["spec"][0]) | set(eq.params["spec"][1]) <= set(eq.params["spec"][2])]
    assert_close(gpuad.jit(per_sample)(w, X), per_sample(w, X), rtol=1e-14)
    z = np.asarray(X) @ np.asarray(w)
    assert_close(per_sample(w, X), -(1.0 / (1.0 + np.exp(z)))[:, None] * np.asarray(X), rtol=1e-12)



@pytest.mark.parametrize("f", [lambda a, b: gnp.sum(a @ b), lambda a, b: gnp.sum(gnp.sum(gnp.tanh(a) @ b, axis=0) ** 2),
                               lambda a, b: gnp.sum(gnp.linalg.cholesky(a @ a.T + 40.0 * gnp.eye(40)))],
                         ids=["sum of a product", "column sums of a product", "sum of a Cholesky factor"])
def test_a_contraction_with_a_broadcast_along_a_summed_letter_sums_the_other_first(f):
    """Reverse mode's cotangent of a sum is ones broadcast, met by a matrix (L^T @ ones): the other
    operand is summed first (n^2 work), so no contraction sums a letter along which an operand is
    a broadcast; results equal eager's and central differences."""
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(40, 40)), rng.normal(size=(40, 30))
    g = gpuad.grad(f, argnums=(0, 1))
    program = gpuad.jit(g).lower(a, b).program
    made = {eq.out: eq for eq in program.equations if len(eq.outs) == 1}
    summed_broadcasts = 0  # letters a contraction sums along which its operand is a broadcast
    for eq in program.equations:
        src = [made.get(x) for x in eq.ins] if eq.prim.name == "contract" else []
        for x, letters, s in zip(eq.ins, eq.params.get("spec", ()), src):
            if s is not None and s.prim.name == "broadcast_to":
                base = (1,) * (len(x.shape) - len(s.ins[0].shape)) + tuple(s.ins[0].shape)
                summed_broadcasts += sum(base[k] == 1 < x.shape[k] and c not in eq.params["spec"][2]
                                         for k, c in enumerate(letters))
    assert summed_broadcasts == 0
    for got, want in zip(gpuad.jit(g)(a, b), g(a, b)):
        assert_close(got, want, rtol=1e-12)
    e, h = np.zeros_like(b), 1e-6
    e[3, 4] = h
    fd = (float(np.sum(f(a, b + e))) - float(np.sum(f(a, b - e)))) / (2 * h)
    assert_close(gpuad.jit(g)(a, b)[1][3, 4], fd, rtol=1e-6)


@pytest.mark.parametrize("case", ["leading axis", "keepdims", "last axis", "to a scalar", "grad"])
def test_a_sum_of_a_broadcast_product_is_a_contraction(case):
    """mean(g * s[:, None, None], axis=0) and its kin: the product and its sum (two passes over a
    product-sized temporary) become one contraction reading each operand once, same values as
    eager, and a gradient through it agrees with the closed form."""
    rng = np.random.default_rng(7)
    g, s = gnp.asarray(rng.normal(size=(16, 5, 6))), gnp.asarray(rng.uniform(size=16))
    f = {"leading axis": lambda g, s: gnp.mean(g * s[:, None, None], axis=0),
         "keepdims": lambda g, s: gnp.sum(s[:, None, None] * g, axis=0, keepdims=True),
         "last axis": lambda g, s: gnp.sum(gnp.transpose(g, (1, 2, 0)) * s, axis=-1),
         "to a scalar": lambda g, s: gnp.sum(g[:, 0, 0] * s),
         "grad": lambda g, s: gpuad.grad(lambda s: gnp.sum(gnp.sum(g * s[:, None, None], axis=0) ** 2))(s)}[case]
    program = gpuad.jit(f).lower(g, s).program
    program.check()
    assert any(eq.prim.name == "contract" for eq in program.equations)
    assert not any(eq.prim.name == "multiply" and eq.out.shape == (16, 5, 6) for eq in program.equations)
    assert_close(gpuad.jit(f)(g, s), f(g, s), rtol=1e-13)
    if case == "leading axis":
        assert_close(f(g, s), np.einsum("ijk,i->jk", np.asarray(g), np.asarray(s)) / 16, rtol=1e-13)
    if case == "grad":  # d/ds sum(m^2), m = sum_i g_i s_i: 2 sum_jk m_jk g_ijk
        m = np.einsum("ijk,i->jk", np.asarray(g), np.asarray(s))
        assert_close(f(g, s), 2 * np.einsum("jk,ijk->i", m, np.asarray(g)), rtol=1e-12)


@pytest.mark.parametrize("case", ["kept axis in both", "read twice", "a seed", "a scalar"])
def test_a_summed_product_that_is_no_plain_contraction_stays(case):
    """A batch axis (per-row norms: a GEMM per row would lose to one pass), a product read elsewhere
    too, a seed operand (a contraction would make it dense) and a scalar factor stay a multiply."""
    rng = np.random.default_rng(8)
    g = gnp.asarray(rng.normal(size=(12, 7)))
    f = {"kept axis in both": lambda g: gnp.sum(g * g, axis=1),
         "read twice": lambda g: (lambda p: gnp.sum(p, axis=0) + p[0])(g * g[0]),
         "a seed": lambda g: gnp.sum(gnp.eye(7) * g[0], axis=0),
         "a scalar": lambda g: gnp.sum(g * 3.0, axis=0)}[case]
    program = gpuad.jit(f).lower(g).program
    assert not any(eq.prim.name == "contract" for eq in program.equations)
    assert_close(gpuad.jit(f)(g), f(g), rtol=1e-14)
