"""gpuad.jit: compiled derivatives equal eager ones (every op spec, every transform case), jit composes
with the transforms both ways and with itself, abstract shapes and dtypes are exact, the cache
re-traces only on a new signature, and misuse gets clear errors (the passes' own tests: test_passes.py)."""
import subprocess
import sys

import numpy as np
import pytest
import test_primitives as tp  # module imports: their tables are read here, their tests not collected twice
import test_transforms as tt
from helpers import assert_close, assert_tree_close, on_backend, sampled, to_np

import gpuad
import gpuad.numpy as gnp
from gpuad.compiler import replay

TRACEABLE = [s for s in tp.SPECS if s.batchable]  # the rest have value-dependent shapes (masks)
specs = pytest.mark.parametrize("spec", TRACEABLE, ids=[s.name for s in TRACEABLE])
compiled_specs = pytest.mark.parametrize("spec", sampled(TRACEABLE, 16, [s.name for s in TRACEABLE]))


def _argnums(spec):
    return tuple(range(len(spec.shapes)))


# ---------------------------------------------------------------- compiled equals eager
@compiled_specs
@pytest.mark.parametrize("transform", [gpuad.jacfwd, gpuad.jacrev, gpuad.hessian],
                         ids=["jacfwd", "jacrev", "hessian"])
def test_jit_of_transform_equals_eager(spec, transform):
    args = on_backend(*spec.inputs())
    t = transform(spec.f, argnums=_argnums(spec))
    assert_tree_close(gpuad.jit(t)(*args), t(*args), rtol=1e-12, atol=1e-12)


@compiled_specs
def test_transforms_of_jit_equal_eager(spec):
    """jacfwd, jacrev and vmap run over the compiled function's program."""
    xs = spec.inputs()
    args, nums = on_backend(*xs), _argnums(spec)
    compiled = gpuad.jit(spec.f)
    assert_tree_close(gpuad.jacfwd(compiled, argnums=nums)(*args), gpuad.jacfwd(spec.f, argnums=nums)(*args),
                      rtol=1e-12, atol=1e-12)
    assert_tree_close(gpuad.jacrev(compiled, argnums=nums)(*args), gpuad.jacrev(spec.f, argnums=nums)(*args),
                      rtol=1e-12, atol=1e-12)
    batch = on_backend(*[np.stack([x, x * 0.5 + 0.1 * np.sign(x)]) for x in xs])
    if spec.domain == tp.W:  # the scaled copy stays inside the domain of the unrestricted specs
        assert_tree_close(gpuad.vmap(compiled)(*batch), gpuad.vmap(spec.f)(*batch), rtol=1e-12, atol=1e-12)


@specs
def test_eval_shape_is_exact_for_values_and_derivatives(spec):
    args, nums = on_backend(*spec.inputs()), _argnums(spec)
    for fun in (spec.f, gpuad.jacfwd(spec.f, argnums=nums), gpuad.jacrev(spec.f, argnums=nums)):
        got = gpuad.eval_shape(fun, *[gpuad.ShapeDtypeStruct(a.shape, a.dtype) for a in args])
        want = gpuad.tree_map(lambda y: gpuad.ShapeDtypeStruct(y.shape, y.dtype), fun(*args))
        assert got == want


@tt.cases
@pytest.mark.parametrize("transform", [gpuad.jacfwd, gpuad.jacrev, gpuad.jacobian, gpuad.hessian])
def test_jit_of_transform_cases_with_pytrees_and_argnums(case, transform):
    args = tt.backend_tree(case.args)
    t = transform(case.fn, argnums=case.argnums)
    assert_tree_close(gpuad.jit(t)(*args), t(*args), rtol=1e-12, atol=1e-12)


def _f(x):
    return gnp.sum(gnp.sin(x) * x[0]) + gnp.prod(x[1:] ** 2)


X = np.array([0.3, -1.2, 0.7, 2.0])


@pytest.mark.parametrize("name,build", [
    ("jit_jit", lambda: gpuad.jit(gpuad.jit(gpuad.grad(_f)))),
    ("grad_jit", lambda: gpuad.grad(gpuad.jit(_f))),
    ("hessian_jit", lambda: gpuad.hessian(gpuad.jit(_f))),
    ("jit_hessian_jit", lambda: gpuad.jit(gpuad.hessian(gpuad.jit(_f)))),
    ("jacfwd_jit_grad", lambda: gpuad.jacfwd(gpuad.jit(gpuad.grad(_f)))),
])
def test_jit_nests_with_transforms_and_itself(name, build):
    x = gnp.asarray(X)
    want = gpuad.hessian(_f)(x) if "hessian" in name or "jacfwd" in name else gpuad.grad(_f)(x)
    assert_close(build()(x), want, rtol=1e-12, atol=1e-12)


def test_jit_hvp_and_vmap_of_jit():
    x, v = gnp.asarray(X), gnp.asarray(X[::-1].copy())
    hvp = gpuad.jit(lambda x, v: gpuad.hvp(_f, (x,), (v,)))
    assert_close(hvp(x, v), gpuad.hessian(_f)(x) @ v, rtol=1e-12, atol=1e-12)
    xs = gnp.asarray(np.stack([X, 2 * X, -X]))
    assert_close(gpuad.vmap(gpuad.jit(gpuad.grad(_f)))(xs), gpuad.vmap(gpuad.grad(_f))(xs), rtol=1e-12, atol=1e-12)


def test_pytrees_keywords_and_aux():
    def loss(p, x, scale=1.0):
        y = gnp.tanh(x @ p["w"] + p["b"])
        return gnp.sum(y ** 2) * scale, {"y": y}

    p = {"w": gnp.asarray(np.linspace(-1, 1, 6).reshape(3, 2)), "b": gnp.asarray(np.array([0.1, -0.2]))}
    x = gnp.asarray(np.linspace(0, 1, 12).reshape(4, 3))
    g = gpuad.grad(loss, has_aux=True)
    got, want = gpuad.jit(g)(p, x, scale=2.0), g(p, x, scale=2.0)
    assert_tree_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype):
    x = gnp.asarray(X.astype(dtype))
    h = gpuad.jit(gpuad.hessian(_f))(x)
    assert h.dtype == dtype
    assert_close(h, gpuad.hessian(_f)(x), rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_closure_over_an_enclosing_transforms_value():
    """The inner compiled function captures x, a value of the outer jacfwd: still right."""
    def f(x):
        return gpuad.jit(lambda y: gnp.sin(x * y))(x)
    x = gnp.asarray(X)
    assert_close(gpuad.jacfwd(f)(x), gpuad.jacfwd(lambda x: gnp.sin(x * x))(x), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- the cache
def test_traces_once_per_signature_and_captures_constants():
    traces = []
    W = np.linspace(-1, 1, 12).reshape(3, 4)  # a NumPy constant: part of the program

    @gpuad.jit
    def f(x):
        traces.append(1)
        return gnp.tanh(W @ x)

    for k in range(3):
        assert_close(f(gnp.asarray(X + k)), np.tanh(W @ (X + k)), rtol=1e-12)
    assert len(traces) == 1
    f(gnp.asarray(X.astype(np.float32)))
    f(gnp.asarray(np.ones(4)))
    assert len(traces) == 2  # a new dtype traces again, new values do not


def test_calls_alternating_signatures_and_transforms_each_run_their_own_program():
    """A call like the last one skips the key (jit's last-signature check): calls of another
    shape, dtype or number of arrays, and a transform's tracers after plain calls, still run the
    program of their own signature."""
    f = gpuad.jit(lambda *xs: sum(gnp.sin(x) * (k + 1) for k, x in enumerate(xs)))
    x, y, z = np.linspace(0.0, 1.0, 4), np.linspace(0.0, 1.0, 5), np.linspace(0.0, 1.0, 4).astype(np.float32)
    for _ in range(2):
        for args in ((x,), (x,), (y,), (z,), (x, x), (x,)):
            got = f(*map(gnp.asarray, args))
            assert got.shape == args[0].shape and got.dtype == args[0].dtype
            assert_close(got, sum(np.sin(a) * (k + 1) for k, a in enumerate(args)), rtol=1e-6)
        assert_close(gpuad.jacfwd(f)(gnp.asarray(x)), np.diag(np.cos(x)), rtol=1e-12, atol=1e-15)
        assert_close(gpuad.vmap(f)(gnp.asarray(np.stack([x, y[:4]]))), np.sin(np.stack([x, y[:4]])), rtol=1e-12)


_CAPTURED = {  # (function of x and the captured array c, c): each reads c in another way
    "product and a folded sum": (lambda x, c: x * c + gnp.sum(c), np.array([1.0, 2.0, 3.0])),
    "one repeated value": (lambda x, c: x * c, np.full(3, 2.0)),
    "an index": (lambda x, c: x[c] * 2.0, np.array([0, 2, 2])),
    "a contraction": (lambda x, c: gnp.tanh(c @ x), np.linspace(-1, 1, 9).reshape(3, 3)),
    "returned as it is": (lambda x, c: (gnp.sin(x), c), np.array([4.0, 5.0, 6.0])),
}


@pytest.mark.parametrize("case", list(_CAPTURED))
@pytest.mark.parametrize("transform", [None, gpuad.jacfwd, gpuad.jacrev], ids=["value", "jacfwd", "jacrev"])
def test_a_captured_array_is_a_constant_as_it_was_when_traced(case, transform):
    """As in JAX: changing a captured array in place after the trace changes no result, whether the
    program read it live, folded it, or used it as an index (it held a mix of old and new)."""
    f, c = _CAPTURED[case]
    c = c.copy()

    def bound(c):
        return (lambda x: f(x, c)) if transform is None else transform(lambda x: f(x, c)[0] if "returned" in case
                                                                      else f(x, c))
    g = bound(c)
    x = gnp.asarray(np.array([0.3, -1.2, 0.7]))
    # run eagerly on the backend's copy of c (CuPy's arrays refuse NumPy's beside them); g may return c itself
    want, want_jacobian = gpuad.tree_map(lambda v: v.copy(), bound(gnp.asarray(c))(x)), gpuad.jacfwd(g)(x)
    compiled = gpuad.jit(g)
    assert_tree_close(compiled(x), want, rtol=1e-14, atol=0)
    c[...] = c[::-1] + 1 if c.dtype.kind == "f" else c[::-1]
    assert_tree_close(compiled(x), want, rtol=1e-14, atol=0)
    assert_tree_close(gpuad.jacfwd(compiled)(x), want_jacobian, rtol=1e-14, atol=0)  # over the cached program


def test_static_arguments_allow_python_control_flow():
    traces = []

    def f(x, n, mode="sin"):
        traces.append((n, mode))
        for _ in range(n):
            x = gnp.sin(x) if mode == "sin" else gnp.cos(x)
        return x

    g = gpuad.jit(f, static_argnums=1, static_argnames="mode")
    x = gnp.asarray(X)
    assert_close(g(x, 3), np.sin(np.sin(np.sin(X))), rtol=1e-12)
    assert_close(g(x, 3, mode="cos"), np.cos(np.cos(np.cos(X))), rtol=1e-12)
    g(x, 3)
    assert traces == [(3, "sin"), (3, "cos")]


def test_peak_bytes_counts_a_reshape_of_a_transposed_view_as_a_copy():
    x = gnp.asarray(np.linspace(0, 1, 1000))  # 8000 bytes
    program = gpuad.jit(lambda x: gnp.reshape(gnp.reshape(x * 2.0, (10, 100)).T, (1000,)) + 1.0).lower(x).program
    unfused = replay.plan(program, fusion=False)
    assert replay.peak_bytes(program, unfused) == 2 * 8000  # x * 2 and its transposed copy (the add writes into it)


@pytest.mark.slow
def test_positions_traced_by_jit_gather():
    """Integer positions that are arguments of a compiled function (or computed in it) index and
    take as they do eagerly, and carry the gradient to the picked elements."""
    x = gnp.asarray(np.linspace(0, 1, 10))
    i = gnp.asarray(np.array([1, 3, 3, -2]))
    cases = [lambda x, i: gnp.take(x, i) * 2.0, lambda x, i: x[i],
             lambda x, i: gnp.take(gnp.reshape(x, (2, 5)), i % 5, axis=1),
             lambda x, i: gnp.take(x, gnp.argsort(-x)[:3]) + x[i][0]]
    for f in cases:
        assert_close(gpuad.jit(f)(x, i), f(x, i), rtol=0)
        g = gpuad.grad(lambda x, i, f=f: gnp.sum(f(x, i) ** 2))
        assert_close(gpuad.jit(g)(x, i), g(x, i), rtol=1e-15)
    with pytest.raises(TypeError, match="needs integer positions"):
        gpuad.jit(lambda x: x[x])(x)


def test_gnp_eye_is_an_equation_under_jit_and_an_array_outside():
    g = gpuad.jit(lambda x: gnp.eye(300, k=1) * x)
    x = gnp.asarray(np.linspace(0, 1, 300))
    assert " eye[rows=300, cols=300, k=1, dtype=float64]" in g.lower(x).as_text()
    assert_close(g(x), np.eye(300, k=1) * np.linspace(0, 1, 300), rtol=1e-15)
    shifted = gpuad.jit(lambda x: gnp.eye(300, k=1) @ x)  # x[1:] placed into zeros: no eye, no GEMM
    assert "eye" not in shifted.lower(x).as_text() and "contract" not in shifted.lower(x).as_text()
    assert_close(shifted(x), np.eye(300, k=1) @ np.linspace(0, 1, 300), rtol=1e-15)
    e = gnp.eye(3, 4, k=-1, dtype=np.float32)
    assert e.dtype == np.float32 and np.array_equal(np.asarray(e), np.eye(3, 4, k=-1))


def test_peak_bytes_counts_buffers_alive_at_once():
    x = gnp.asarray(np.linspace(0, 1, 1000))  # 8000 bytes
    views = gpuad.jit(lambda x: gnp.reshape(x * 2.0, (10, 100)).T[::2])
    assert views.lower(x).peak_bytes == 8000  # one buffer; its views share it
    chain = gpuad.jit(lambda x: gnp.exp(gnp.sum(x)) * gnp.sin(x))
    assert chain.lower(x).peak_bytes == 8000 + 8  # the output and the sum
    jac = gpuad.jit(gpuad.jacfwd(lambda x: gnp.sin(x) * x[::-1]))
    assert 8 * 1000 * 1000 <= jac.lower(x).peak_bytes <= 8 * 1000 * 1000 + 3 * 8000  # the Jacobian, vectors


# ---------------------------------------------------------------- errors
def test_python_control_flow_on_traced_values_is_a_clear_error():
    def branch(x):
        return x * 2 if gnp.sum(x) > 0 else -x
    with pytest.raises(TypeError, match=r"value of greater.*gpuad.numpy.where.*static_argnums"):
        gpuad.jit(branch)(gnp.asarray(X))
    with pytest.raises(TypeError, match="not known while gpuad.jit traces"):
        gpuad.jit(lambda x: gnp.ones(int(x[0])))(gnp.asarray(X))
    with pytest.raises(TypeError, match="a boolean mask would give a shape that depends on values.*where"):
        gpuad.jit(lambda x: x[x > 0])(gnp.asarray(X))
    with pytest.raises(TypeError, match="not known while gpuad.jit traces"):
        gpuad.jit(gpuad.jacfwd(lambda x: x if x[0] > 0 else -x))(gnp.asarray(X))


def test_bad_static_arguments_and_inputs_are_clear_errors():
    x = gnp.asarray(X)
    with pytest.raises(ValueError, match="static_argnums 3 is out of range"):
        gpuad.jit(lambda x, n: x * n, static_argnums=3)(x, 2)
    with pytest.raises(TypeError, match="unhashable type list"):
        gpuad.jit(lambda x, n: x * len(n), static_argnums=1)(x, [1, 2])
    with pytest.raises(TypeError, match="must be an int or a tuple of ints"):
        gpuad.jit(lambda x: x, static_argnums="0")
    with pytest.raises(TypeError, match="argument leaf 1 is a str"):
        gpuad.jit(lambda x, s: x)(x, "name")
    with pytest.raises(TypeError, match="must return arrays"):
        gpuad.jit(lambda x: "nope")(x)


# ---------------------------------------------------------------- lowering, launches, replay
def test_lower_takes_shapes_alone_and_plans_for_cupy_without_a_gpu():
    f = gpuad.jit(gpuad.jacfwd(lambda x: gnp.sin(x) * gnp.sum(x)))
    spec = gpuad.ShapeDtypeStruct((5,), np.float32)
    lowered = f.lower(spec)
    assert lowered.out_info() == gpuad.ShapeDtypeStruct((5, 5), np.float32)
    assert "v0:float32[5]" in lowered.as_text()
    planned = f.lower(spec, backend="cupy")
    assert planned.backend == "cupy" and planned.launches == lowered.launches > 0
    assert gpuad.backend() == "numpy"  # planning left the active backend as it was


def test_vmap_layout_follows_the_planned_backend():
    """NumPy runs a batch of small examples batch-innermost (transposes, free views); CuPy does not."""
    g = gpuad.jit(gpuad.vmap(gpuad.jacfwd(lambda x: gnp.sin(x) * x[0])))
    spec = gpuad.ShapeDtypeStruct((1000, 3), np.float64)
    on_numpy, on_cupy = (g.lower(spec, backend=b).as_text().count(" transpose") for b in ("numpy", "cupy"))
    assert on_numpy > on_cupy


def test_launch_model_counts_views_as_free_and_scatters_as_two():
    from gpuad.compiler.cost import count
    from gpuad.compiler.tracing import trace_program
    aval = gpuad.ShapeDtypeStruct((4, 3), np.float64)
    views = trace_program(lambda xs: [gnp.reshape(xs[0].T, (12,))[2:5]], [aval], ["x"])
    assert count(views) == 0
    adds = trace_program(lambda xs: [gnp.sin(xs[0]).at[1].add(1.0)], [aval], ["x"])
    assert count(adds) == 1 + 2


def test_replay_adds_in_place_into_dead_owned_values_only():
    from gpuad.compiler.replay import Replay

    def f(x):
        a = gnp.sin(x)
        return a + gnp.cos(x), x + 1.0  # a is dead after the add; x is an input: never written
    program = gpuad.jit(f).lower(gnp.asarray(X)).program
    x = gnp.asarray(X.copy())
    replay = Replay(program, fusion=False)  # fused, the add would be a line of a region's kernel
    y, z = replay.run(x)
    assert_close(y, np.sin(X) + np.cos(X), rtol=1e-15)
    assert_close(z, X + 1.0, rtol=1e-15)
    assert_close(x, X, rtol=0)  # the input is untouched
    names = [getattr(s.fn, "__name__", "") for s in replay.steps]
    assert names.count("add_into") == 1, names  # sin(x) + cos(x) in place; x + 1.0 not


def test_replay_accumulates_a_slice_adjoint_without_its_zeros():
    """The adjoint of x[1:] + x[:-1] adds two scatters: one becomes an add at the positions."""
    from gpuad.compiler.replay import Replay
    g = gpuad.jit(gpuad.grad(lambda x: gnp.sum(gnp.sin(x[1:]) * x[:-1])))
    replay = Replay(g.lower(gnp.asarray(X)).program, fusion=False)
    names = [getattr(s.fn, "__name__", "") for s in replay.steps]
    assert "add_at_into" in names, names
    assert_close(replay.run(gnp.asarray(X))[0], gpuad.grad(lambda x: gnp.sum(gnp.sin(x[1:]) * x[:-1]))(
        gnp.asarray(X)), rtol=1e-14)


# ---------------------------------------------------------------- results are new arrays, zeros keep NumPy's sign
_HELD = np.array([1.0, 2.0, 3.0])


@pytest.mark.parametrize("f", [lambda x: x * 1.0, lambda x: x + 0.0, lambda x: x, lambda x: x.reshape(3),
                               lambda x: x[::-1], lambda x: gnp.broadcast_to(x, (2, 3)), lambda x: _HELD,
                               lambda x: (x, x * 1.0)],
                         ids=["x * 1", "x + 0", "x", "reshape", "reversed", "broadcast", "captured", "pair"])
def test_compiled_results_never_share_the_inputs_memory(f):
    x = np.array([-0.0, 1.0, 2.0])
    outs = gpuad.jit(f)(x)
    for out in outs if isinstance(outs, tuple) else (outs,):
        assert not np.shares_memory(to_np(out), x) and not np.shares_memory(to_np(out), _HELD)
        out[...] = 7.0  # writable, and writing into it leaves the input alone
    assert x.tolist() == [-0.0, 1.0, 2.0] and _HELD.tolist() == [1.0, 2.0, 3.0]


def test_a_first_call_without_special_functions_does_not_import_scipy():
    """SciPy's special functions load at the first call of one (a second of import): a program
    without any does not wait for them."""
    code = ("import sys, numpy as np, gpuad, gpuad.numpy as gnp, gpuad.scipy.special as sp\n"
            "J = gpuad.jit(gpuad.jacfwd(lambda x: gnp.sin(x) * x))(np.ones(3))\n"
            "print(J.shape, 'scipy.special' in sys.modules)\n"
            "print(float(gpuad.jit(gpuad.grad(lambda x: gnp.sum(sp.gammaln(x))))(np.ones(2) * 3)[0]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "(3, 3) False"
    assert abs(float(out[1]) - (1.5 - 0.5772156649015329)) < 1e-12  # digamma(3)
