"""Fusion regions: the pass groups what it should, the fused replay equals the unfused one (odd
sizes, float32, broadcasting from size-1 axes, strided and sliced inputs), every region kernel the
op specs produce compiles with NVRTC for the GPU, and without a C++ compiler the replay falls back
with one warning. (tests/test_jit.py and test_properties.py run every compiled function fused.)"""
import re
import warnings

import numpy as np
import pytest
import test_primitives as tp  # module import: its table is read here, its tests not collected twice
from helpers import assert_close, assert_tree_close, on_backend, sampled, to_np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gpuad
import gpuad.numpy as gnp
from gpuad.compiler import codegen, host
from gpuad.compiler.cost import count
from gpuad.compiler.fusion import Region, fuse
from gpuad.compiler.ir import Lit
from gpuad.compiler.replay import Replay
from gpuad.kernels import programs
from gpuad.kernels.nvrtc import compile_cuda

TRACEABLE = [s for s in tp.SPECS if s.batchable]


def _rosen(x):
    return gnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def _program(fun, *args):
    return gpuad.jit(fun).lower(*args).program


def _both(program, *args):
    return Replay(program, fusion=False).run(*args), Replay(program, fusion=True).run(*args)


# ---------------------------------------------------------------- the pass
def test_rosenbrock_hvp_fuses_into_a_few_regions_and_fewer_launches():
    x = gnp.asarray(np.linspace(-1, 1, 101))
    program = _program(lambda x, v: gpuad.hvp(_rosen, (x,), (v,)), x, x)
    regions = [n for n in fuse(program) if isinstance(n, Region)]
    assert sum(len(r.equations) for r in regions) >= 20  # of the program's 34 equations
    assert count(program) <= count(program, fusion=False) // 3


def test_regions_respect_dependencies_through_other_steps():
    """b needs a reduction of a; c needs both: a, b and c cannot all be one region."""
    def f(x):
        a = gnp.sin(x) * 2.0
        b = a / gnp.sum(a) + 1.0
        return gnp.exp(b) * a
    x = gnp.asarray(np.linspace(0.1, 1.0, 7))
    fused, plain = _both(_program(f, x), x)[::-1]
    assert_close(fused[0], plain[0], rtol=1e-14)
    assert_close(fused[0], f(x), rtol=1e-14)


def test_jacobian_seeds_are_made_from_indices_not_read_from_memory():
    def f(x):
        return gnp.sin(x[1:]) * x[:-1] + gnp.exp(x[2:].sum() * 0.1)
    x = gnp.asarray(np.linspace(-1, 1, 100))  # seeds of 10^4 elements: not folded into constants
    for transform in (gpuad.jacfwd, gpuad.jacrev):
        program = _program(transform(f), x)
        regions = [n for n in fuse(program) if isinstance(n, Region)]
        assert any(eq.prim.name == "eye" for r in regions for eq in r.equations)
        held = [a.val.size for eq in program.equations for a in eq.ins if isinstance(a, Lit) and hasattr(a.val, "size")]
        assert max(held, default=0) <= x.size, "the program holds a seed (n x n) folded into a constant"
        plain, fused = _both(program, x)
        assert_close(fused[0], plain[0], rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, 33, 1000])
def test_odd_sizes_and_dtypes(n, dtype):
    x = gnp.asarray(np.linspace(-1, 1, n).astype(dtype) + 0.25)
    g = gpuad.jit(gpuad.grad(lambda x: gnp.sum(gnp.tanh(x) * x ** 3 + gnp.exp(-x * x))))
    plain, fused = _both(g.lower(x).program, x)
    assert fused[0].dtype == dtype
    assert_close(fused[0], plain[0], rtol=1e-5 if dtype == np.float32 else 1e-13)


def test_broadcast_strided_and_transposed_inputs_are_read_in_place():
    rng = np.random.default_rng(0)
    big = rng.uniform(-1, 1, (6, 10))

    def f(a, row, col):
        return gnp.sin(a[::2, 1::3]) * row + gnp.cos(col) * a[::2, 1::3] ** 2

    a, row, col = gnp.asarray(big), gnp.asarray(rng.uniform(size=(1, 3))), gnp.asarray(rng.uniform(size=(3, 1)))
    program = _program(f, a, row, col)
    plain, fused = _both(program, a, row, col)
    assert_close(fused[0], plain[0], rtol=1e-14)
    at = gnp.asarray(big.T.copy()).T  # a transposed (non-contiguous) view as the input itself
    assert_close(Replay(program, fusion=True).run(at, row, col)[0], plain[0], rtol=1e-14)


@pytest.mark.slow
@pytest.mark.parametrize("leading", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 37), (40, 33), (2, 3, 45), (5, 999)])
def test_regions_of_several_axes_loop_by_rows_on_the_cpu(shape, dtype, leading, nvrtc):
    """A host loop of two or more axes, the last at least 32 long, runs row by row (no division
    by the row length): shifted reads along the last axis (clamped near a row's ends, plain
    between), along a leading axis (clamped throughout), strided and broadcast inputs, odd
    lengths; equal to the unfused replay, and the same program compiles for CUDA."""
    rng = np.random.default_rng(1)
    big = rng.uniform(-1, 1, shape[:-1] + (2 * shape[-1],)).astype(dtype)
    row = rng.uniform(-1, 1, shape[-1]).astype(dtype)

    def f(a, row):
        x = a[..., ::2]  # strided along the last axis
        left = gnp.concatenate([x[..., :1], x[..., :-1]], axis=-1)
        right = gnp.concatenate([x[..., 1:], x[..., -1:]], axis=-1)
        up = gnp.concatenate([x[:1], x[:-1]], axis=0) if leading else x
        return gnp.sin(left - 2 * x + right) * row + gnp.exp(0.1 * up) * x
    a, row = gnp.asarray(big), gnp.asarray(row)
    g = gpuad.jit(gpuad.jacfwd(lambda a: gnp.sum(f(a, row) ** 2, axis=0)))
    program = _program(f, a, row)
    texts = [codegen.render(r, "host").text for r in fuse(program, "numpy") if isinstance(r, Region)]
    assert any("const long long i = r * " in t for t in texts)
    # shifts along the last axis alone: the columns in range run without clamps
    fast = [f for t in texts for f in re.findall(r"void \w+_fast\(.*?\n}\n", t, re.S) if "out0[" in f]
    assert (fast or leading) and not any("gpuad_clamp" in f for f in fast)
    plain, fused = _both(program, a, row)
    assert_close(fused[0], plain[0], rtol=1e-5 if dtype == np.float32 else 1e-13)
    assert_close(g(a), gpuad.jacfwd(lambda a: gnp.sum(f(a, row) ** 2, axis=0))(a),
                 rtol=1e-4 if dtype == np.float32 else 1e-11)
    _check_cupy_plan(program, [a, row], plain, nvrtc, rtol=1e-5 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("shape", [(300_001,), (301, 1003)])
def test_regions_of_256k_elements_or_more_split_over_the_threads(shape):
    """The host loop's elements (or rows) split over the threads from 262,144 elements."""
    x = gnp.asarray(np.linspace(-1, 1, int(np.prod(shape))).reshape(shape))

    def f(x):
        return gnp.exp(x) * gnp.tanh(gnp.flip(x, axis=-1)) + gnp.roll(x, 1, axis=-1)
    program = _program(f, x)
    plain, fused = _both(program, x)
    assert Replay(program, fusion=True).regions >= 1
    assert_close(fused[0], plain[0], rtol=1e-14)


@pytest.mark.parametrize("spec", sampled(TRACEABLE, 16, [s.name for s in TRACEABLE]))
def test_every_spec_fused_equals_unfused_and_compiles_for_cuda(spec, nvrtc):
    args, nums = on_backend(*spec.inputs()), tuple(range(len(spec.shapes)))
    program = _program(gpuad.hessian(lambda *a: gnp.sum(spec.f(*a)), argnums=nums), *args)
    plain, fused = _both(program, *args)
    assert_tree_close(fused, plain, rtol=1e-12, atol=1e-12)
    _check_cupy_plan(program, args, plain, nvrtc, rtol=1e-12)


def test_infinite_and_nan_constants_compile(nvrtc):
    """inf and NaN constants (scipy.stats' -inf outside a support) render as C quotients, not names."""
    x = gnp.asarray(np.linspace(-1.0, 1.0, 7))
    f = lambda x: gnp.where(x > 0, x * 2.0, -np.inf) + gnp.where(x < 0.5, 1.0, np.nan)  # noqa: E731
    program = _program(f, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain, fused = _both(program, x)
    np.testing.assert_array_equal(to_np(fused[0]), to_np(plain[0]))
    _check_cupy_plan(program, [x], plain, nvrtc, rtol=0)


def _check_cupy_plan(program, args, plain, nvrtc, rtol):
    """The regions CuPy would run (they recompute more than the CPU's): their CUDA source compiles
    with NVRTC, and the same bodies built for the host give the unfused results."""
    assert_tree_close(Replay(program, fusion=True, plan_for="cupy").run(*args), plain, rtol=rtol, atol=rtol)
    for node in fuse(program, "cupy"):
        if isinstance(node, Region) and nvrtc is not None:
            try:
                kernel = codegen.render(node, "cuda")
            except codegen.TooLarge:  # the replay runs such a region unfused (checked above)
                continue
            nvrtc.compile_ptx(kernel.text, kernel.name)


@pytest.fixture(scope="module")
def nvrtc():
    """gpuad.kernels.nvrtc where NVRTC loads (CI installs it), else None: the host checks still run."""
    from gpuad.kernels import nvrtc
    try:
        nvrtc.version()
    except Exception:
        return None
    return nvrtc


# ---------------------------------------------------------------- no compiler
def test_without_a_compiler_the_replay_runs_unfused_and_warns_once(monkeypatch, tmp_path):
    if gpuad.backend() != "numpy":
        pytest.skip("the C++ compiler builds the fused kernels of the NumPy backend only")
    monkeypatch.setenv("GPUAD_CACHE_DIR", str(tmp_path))  # nothing cached: a build is needed
    monkeypatch.setattr(host, "compiler", lambda: None)
    monkeypatch.setattr(host, "_warned", [])
    x = gnp.asarray(np.linspace(0.1, 1.0, 9) * 1.37)
    f = lambda x: gpuad.grad(lambda y: gnp.sum(gnp.sin(y) * y ** 2))(x)  # noqa: E731
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler found"):
        replay = Replay(_program(f, x), fusion=True)
    assert replay.regions == 0
    assert_close(replay.run(x)[0], f(x), rtol=1e-14)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Replay(_program(f, x * 2), fusion=True)  # once only


def test_threads_calling_one_compiled_function_get_their_own_results():
    """The CPU regions keep private buffers between calls; concurrent calls must not share them."""
    import threading
    g = gpuad.jit(lambda x: gnp.exp(x) * gnp.sum(gnp.sin(x) * gnp.cos(x) * x))  # a kept buffer feeds the sum
    xs = [gnp.asarray(np.linspace(-1, 1, 300_000) * k) for k in range(1, 5)]
    want = [g(x) for x in xs]
    got = [None] * len(xs)

    def work(k):
        for _ in range(3):
            got[k] = g(xs[k])
    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(got, want):
        assert_close(a, b, rtol=0)


def test_bytes_moved_counts_one_pass_for_a_fused_chain():
    from gpuad.compiler.cost import bytes_moved
    x = gnp.asarray(np.linspace(0, 1, 1000))
    program = _program(lambda x: gnp.sin(x) * 2.0 + 1.0, x)
    assert bytes_moved(program) == 2 * 8000            # read x, write the result: one region
    assert bytes_moved(program, fusion=False) == 3 * 2 * 8000  # three passes, each a read and a write
    assert gpuad.jit(lambda x: gnp.sin(x) * 2.0 + 1.0).lower(x).bytes_moved == 16000


# ---------------------------------------------------------------- random programs of data movement and gathers
def _grow(values, op, k):
    """One step of a random program: a new value from the list's values (all vectors)."""
    a, b = values[k % len(values)], values[-1]
    m = min(a.shape[0], b.shape[0])
    steps = {
        "sin": lambda: gnp.sin(a), "exp": lambda: gnp.exp(0.3 * a), "square": lambda: a * a,
        "mul": lambda: a[:m] * b[-m:], "add": lambda: a[::-1][:m] + 2.0 * b[:m],
        "shift": lambda: a[1:] - a[:-1] if a.shape[0] > 1 else a, "stride": lambda: a[::2],
        "concat": lambda: gnp.concatenate([a, b[:2], gnp.tanh(a[:1])]),
        "pad": lambda: gnp.pad(a, (1, 2)), "roll": lambda: gnp.roll(b, 1),
        "outer": lambda: (a[:, None] * b[None, :3]).T.reshape(-1),
        "gather": lambda: a[(np.arange(a.shape[0] + 2) * (k + 2) + k) % (2 * a.shape[0]) - a.shape[0]],
        "permute": lambda: a[np.roll(np.arange(a.shape[0])[::-1], k) - k % 2 * a.shape[0]],
    }
    return steps[op]()


_OPS = ["sin", "exp", "square", "mul", "add", "shift", "stride", "concat", "pad", "roll", "outer", "gather", "permute"]


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(2, 9), ops=st.lists(st.tuples(st.sampled_from(_OPS), st.integers(0, 5)), min_size=1,
                                         max_size=6), dtype=st.sampled_from([np.float64, np.float32]))
def test_random_slice_and_concatenation_programs_fused_equal_eager(n, ops, dtype, nvrtc):
    """Programs of slices, shifts, strides, pads, concatenations, rolls, transposes, gathers
    (positions repeated and negative) and permutations between elementwise ops, compiled (fused) and differentiated
    in both modes, against eager jacfwd; their regions as planned for CuPy compile with NVRTC."""
    def f(x):
        values = [x]
        for op, k in ops:
            values.append(_grow(values, op, k))
        return gnp.concatenate([values[-1], values[len(values) // 2][:3]])

    x = gnp.asarray((np.linspace(-0.8, 0.9, n) + 0.1).astype(dtype))
    compiled = gpuad.jit(lambda x: (f(x), gpuad.jacrev(f)(x)))
    y, J = compiled(x)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    assert_close(y, f(x), rtol=tol, atol=tol)
    assert_close(J, gpuad.jacfwd(f)(x), rtol=tol, atol=tol)
    program = compiled.lower(x).program
    plain, fused = _both(program, x)
    assert_tree_close(fused, plain, rtol=tol, atol=tol)
    _check_cupy_plan(program, [x], plain, nvrtc, rtol=tol)


@pytest.mark.slow
@pytest.mark.parametrize("shape, axis, keepdims", [((64, 5), 1, False), ((5, 64), 0, True), ((4100, 20), 1, True),
                                                   ((20, 4100), 0, False), ((3, 4, 1400), (0, 1), False)])
def test_sums_fuse_as_epilogues(shape, axis, keepdims, nvrtc):
    """A sum over a few elements (unrolled) or making many elements (a loop per element) joins the
    region that computes what it sums, in the values, the Jacobians and the cotangents' sums; on
    the CPU a long sum joins only where it reads rows (not a column sum, strided)."""
    rng = np.random.default_rng(1)
    x = gnp.asarray(rng.uniform(-1, 1, shape))

    def f(x):
        s = gnp.sum(gnp.sin(x) * x + 1.0, axis=axis, keepdims=keepdims)
        return gnp.exp(0.1 * s) * 2.0

    program = _program(f, x)
    column = shape == (20, 4100)  # 20 rows summed into 4100 columns: NumPy adds rows faster than a CPU kernel

    def fused_sum(backend):
        return any(e.prim.name == "reduce_sum" for r in fuse(program, backend) if isinstance(r, Region)
                   for e in r.equations)
    assert fused_sum("cupy") and fused_sum("numpy") != column
    plain, fused = _both(program, x)
    assert_close(fused[0], plain[0], rtol=1e-13)
    assert_close(fused[0], f(x), rtol=1e-13)
    _check_cupy_plan(program, [x], plain, nvrtc, rtol=1e-13)
    small = gnp.asarray(rng.uniform(-1, 1, shape)[..., :3])  # derivatives on a slice of it
    for transform in (gpuad.jacfwd, gpuad.jacrev):
        program = _program(transform(f), small)
        plain, fused = _both(program, small)
        assert_close(fused[0], plain[0], rtol=1e-13)


# ---------------------------------------------------------------- gathers at index arrays
_GATHERS = {  # x's shape, and an index of NumPy's advanced layouts (positions repeat, some negative)
    "vector": ((7,), (np.array([3, -1, 0, 3, 5, -7]),)),
    "2-d positions": ((9,), (np.array([[0, 8, 2], [2, -3, 4]]),)),
    "middle axis": ((4, 6, 5), (slice(None), np.array([[5, 0, -1], [2, 2, 3]]), slice(1, None))),
    "arrays apart": ((4, 6, 5), (np.array([3, 0, -4]), slice(None, None, 2), np.array([1, 1, 4]))),
    "int and array apart": ((4, 6, 5), (0, slice(None), np.array([4, -5]))),
    "int and array adjacent": ((4, 6, 5), (slice(None), 2, np.array([[4], [0]]))),
    "broadcast arrays": ((4, 6, 5), (np.array([[1], [3]]), np.array([0, 5, -2]))),
    "new axes": ((4, 6, 5), (None, slice(None), np.array([1, 2]), None)),
    "one position": ((4, 6, 5), (slice(None), np.array([-2, -2]))),
}


def _gathers(nodes):
    """The gathers (getitem at arrays, take_along) among equations."""
    return [e for e in nodes if e.prim.name == "take_along" or
            (e.prim.name == "getitem" and any(hasattr(i, "shape") for i in e.params["idx"]))]


def _check_gathers_fuse(f, args, nvrtc, tol):
    """f and its Jacobians (argument 0) compiled with the gathers in regions, against eager and
    unfused, on both plans (the CuPy plan's CUDA compiled by NVRTC)."""
    compiled = gpuad.jit(lambda *a: (f(*a), gpuad.jacfwd(f)(*a), gpuad.jacrev(f)(*a)))
    value, forward, reverse = compiled(*args)
    assert_close(value, f(*args), rtol=tol, atol=tol)
    J = gpuad.jacfwd(f)(*args)
    assert_close(forward, J, rtol=tol, atol=tol)
    assert_close(reverse, J, rtol=tol, atol=tol)
    program = compiled.lower(*args).program
    for backend in ("numpy", "cupy"):
        assert _gathers(e for r in fuse(program, backend) if isinstance(r, Region) for e in r.equations)
    plain, fused = _both(program, *args)
    assert_tree_close(fused, plain, rtol=tol, atol=tol)
    _check_cupy_plan(program, args, plain, nvrtc, rtol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", sampled(list(_GATHERS), 4))
def test_gathers_at_constant_index_arrays_fuse(case, dtype, nvrtc):
    shape, index = _GATHERS[case]
    x = gnp.asarray((np.linspace(-1, 1, int(np.prod(shape))).reshape(shape) + 0.3).astype(dtype))

    def f(x):
        y = gnp.sin(x) * x
        return gnp.exp(y[index]) * 2.0 + y[index] ** 2
    _check_gathers_fuse(f, [x], nvrtc, 2e-5 if dtype == np.float32 else 1e-12)


_POSITIONS = np.array([[2, -1, 0, 2], [4, 4, -5, 1], [0, 3, 3, -2]])
_AT_POSITIONS = {  # gathers along an axis: take_along at constants, a sort's computed positions, vmap's per-sample ones
    "take_along_axis": lambda x, i: gnp.take_along_axis(gnp.tanh(x), _POSITIONS[:, :2], axis=1) * x[:, 1:3],
    "take along a middle axis": lambda x, i: gnp.cos(gnp.take(x[:, None, :] * x[:, :, None], _POSITIONS, axis=1)),
    "sort": lambda x, i: gnp.sort(gnp.sin(x) * x, axis=1) * x + gnp.median(x * x, axis=0),
    "vmap, positions batched": lambda x, i: gpuad.vmap(lambda row, k: gnp.sin(row[k]) * row)(x, i),
    "vmap, positions an argument": lambda x, i: gpuad.vmap(lambda r: gnp.take_along_axis(gnp.exp(r), i, 0) * r[1])(x),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", sampled(list(_AT_POSITIONS), 4))
def test_gathers_at_computed_and_per_sample_positions_fuse(case, dtype, nvrtc):
    x = gnp.asarray((np.linspace(-1, 1, 15).reshape(3, 5) + 0.1).astype(dtype))
    i = gnp.asarray(np.array([4, -1, 2]))
    _check_gathers_fuse(_AT_POSITIONS[case], [x, i], nvrtc, 2e-5 if dtype == np.float32 else 1e-12)


def test_a_gather_costs_no_pass_of_its_own():
    """A gather along a middle axis feeding arithmetic: on CuPy one launch, reading x and its
    positions once; on the CPU, along an axis this long, NumPy's gather is its own step."""
    x = gnp.asarray(np.random.default_rng(2).uniform(size=(40, 300, 6)))
    mid = np.arange(300)[::-1] - 150
    lowered = gpuad.jit(lambda x: gnp.exp(x[:, mid, :] * 0.5) + x).lower(x)
    assert lowered.launches == 1
    assert lowered.bytes_moved == 2 * x.nbytes + mid.nbytes
    assert _gathers(n for n in fuse(lowered.program, "numpy") if not isinstance(n, Region))
    assert gpuad.jit(gpuad.vmap(gpuad.jacfwd(lambda r, k: gnp.sin(r[k]) * r))).lower(x[0], mid).launches == 2


@pytest.mark.slow
@pytest.mark.parametrize("repeated", [False, True])
def test_a_scatter_at_index_arrays_fuses_where_no_two_positions_meet(repeated, nvrtc):
    """A gather's adjoint scatters at its positions: a pull from the element landing there (found
    by the positions inverted) where no two land on one, else adds up in its own step."""
    positions = np.array([[2, -1], [0, 3]]) if not repeated else np.array([[2, -1], [0, 4]])  # -1 is 4
    x = gnp.asarray(np.linspace(0.2, 1.0, 30).reshape(5, 6))

    def f(x):
        return gnp.sum(gnp.sin(x[positions, 1:4]) * gnp.cos(x[:4, :3]).reshape(2, 2, 3)) + gnp.sum(x[1, 2] * x)
    program = _program(gpuad.grad(f), x)
    steps = [n.prim.name for n in fuse(program, "cupy") if not isinstance(n, Region)]
    assert ("scatter" in steps) == repeated
    plain, fused = _both(program, x)
    assert_close(fused[0], gpuad.jacfwd(f)(x), rtol=1e-12)
    assert_close(fused[0], plain[0], rtol=1e-14)
    _check_cupy_plan(program, [x], plain, nvrtc, rtol=1e-14)


def test_a_periodic_stencil_hvp_is_one_launch():
    """gnp.roll's gathers and their adjoints (rolls back, no two positions meeting): Rosenbrock-like
    periodic stencil's Hessian-vector product in one pass on CuPy."""
    def f(x):
        return gnp.sum((gnp.roll(x, 1) - 2 * x + gnp.roll(x, -1)) ** 2 * gnp.exp(0.1 * x))
    x = gnp.asarray(np.linspace(-1, 1, 50))
    lowered = gpuad.jit(lambda x, v: gpuad.hvp(f, (x,), (v,))).lower(x, x)
    assert lowered.launches == 1
    assert_close(gpuad.jit(lambda x, v: gpuad.hvp(f, (x,), (v,)))(x, x[::-1]), gpuad.hvp(f, (x,), (x[::-1],)),
                 rtol=1e-12)


@pytest.mark.slow
def test_long_chains_and_deep_stencils_compile_and_match():
    """A region of a thousand members is pulled without hitting Python's recursion limit, and a
    stencil applied layer over layer is cut into regions before its reads at shifted indices
    multiply (each layer reads the last at two shifts)."""
    def chain(x):
        for _ in range(400):
            x = gnp.sin(x) * 0.9 + 0.1
        return x

    def stencil(x):
        for _ in range(12):
            x = gnp.tanh(x[1:] * 1.01 + x[:-1]) + gnp.concatenate([x[:1], x[1:-1] * 0.5, x[-1:]])[:-1]
        return x

    x = gnp.asarray(np.linspace(-1, 1, 40))
    for f in (chain, stencil):
        program = _program(f, x)
        regions = [n for n in fuse(program) if isinstance(n, Region)]
        assert max(len(r.equations) for r in regions) >= 12
        assert_close(gpuad.jit(f)(x), f(x), rtol=1e-13)
    assert_close(gpuad.jit(gpuad.jacrev(stencil))(x), gpuad.jacfwd(stencil)(x), rtol=1e-12)


def test_a_region_too_long_to_compile_is_split(monkeypatch):
    """The kernel size is bounded directly too: past the bound a region is split into regions of
    fewer members (the regions' member limit halves until every body fits), not sent unfused."""
    x = gnp.asarray(np.linspace(-1, 1, 7))

    def f(x):
        small = gnp.sin(x[:4]) * 2.0  # regions of different shapes: two kernels (axes under 8 unrolled)
        big = gnp.exp(x) * gnp.cos(x) + gnp.tanh(x) * x + gnp.sqrt(x * x + 1.0)
        return small, big
    program = _program(f, x)
    whole = Replay(program, fusion=True)
    sizes = sorted(len(s.node.equations) for s in whole.steps if s.kind == "region")
    assert len(sizes) >= 2
    monkeypatch.setattr(codegen, "MAX_LINES", 40)  # the small region's body takes 15 lines, the other more
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing runs unfused
        replay = Replay(program, fusion=True)
    split = sorted(len(s.node.equations) for s in replay.steps if s.kind == "region")
    assert replay.regions > whole.regions and max(split) < sizes[-1]
    for got, want in zip(replay.run(x), Replay(program, fusion=False).run(x)):
        assert_close(got, want, rtol=1e-15)


def test_a_region_whose_kernel_fails_to_build_runs_unfused_and_the_others_stay_fused(monkeypatch):
    """A compiler that refuses one region's kernel (here: any with a cos) costs that region alone."""
    if gpuad.backend() != "numpy":
        pytest.skip("the C++ compiler builds the fused kernels of the NumPy backend only")
    x = gnp.asarray(np.linspace(-1, 1, 7))
    w = gnp.asarray(np.linspace(0.5, 1.5, 49).reshape(7, 7))

    def f(x):
        return gnp.cos(w @ (gnp.sin(x) * 2.0 + x) + 1.0) * x  # a region before the matmul and one after
    program = _program(f, x)
    assert Replay(program, fusion=True).regions == 2
    library = host.library
    monkeypatch.setattr(host, "library", lambda kernels: None if any("cos(" in k.text for k in kernels)
                        else library(kernels))
    with pytest.warns(RuntimeWarning, match="1 fused region.* failed to build .*refused .*: their 3 equations run "
                                            "unfused, the other regions fused"):
        replay = Replay(program, fusion=True)
    assert replay.regions == 1
    assert_close(replay.run(x)[0], f(x), rtol=1e-14)


def test_regions_that_build_alone_but_not_together_keep_their_own_libraries(monkeypatch):
    """Where the program's library fails but each region's builds alone (the probe for the one that
    fails), those libraries serve: no region runs unfused and nothing is built again."""
    if gpuad.backend() != "numpy":
        pytest.skip("the C++ compiler builds the fused kernels of the NumPy backend only")
    x = gnp.asarray(np.linspace(-1, 1, 7))
    w = gnp.asarray(np.linspace(0.5, 1.5, 49).reshape(7, 7))

    def f(x):
        return gnp.tan(w @ (gnp.sin(x) * 2.0 + x) + 1.0) * x
    program = _program(f, x)
    library, asked = host.library, []
    monkeypatch.setattr(host, "library", lambda kernels: asked.append(len(kernels)) or
                        (None if len(kernels) > 1 else library(kernels)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing runs unfused
        replay = Replay(program, fusion=True)
    assert replay.regions == 2 and sorted(asked) == [1, 1, 2]
    assert_close(replay.run(x)[0], f(x), rtol=1e-14)
    asked.clear()
    assert Replay(program, fusion=True).regions == 2 and asked == []  # the loaded libraries, once more


def _ode(steps):
    """A 2-state ODE stepped by a Python loop: a straight-line program that grows with the steps."""
    def f(y):
        for _ in range(steps):
            y = y + 0.01 * gnp.stack([y[1], -y[0] + 0.5 * (1 - y[0] ** 2) * y[1]])
        return y
    return f


def test_a_region_body_grows_linearly_with_its_members():
    """A Jacobian's tangents read at constant columns (the stacked state's entries) decide their
    concatenations at render time, and a block reuses what was computed before it: the kernel of
    one region of an ODE's steps grows as the steps (it grew as their square, past the bound)."""
    x = np.array([1.0, 0.5])
    lines = []
    for steps in (50, 100):
        program = _program(gpuad.jacfwd(_ode(steps)), x)
        big = max((n for n in fuse(program, "numpy", limit=10 ** 6) if isinstance(n, Region)),
                  key=lambda r: len(r.equations))
        lines.append(codegen.render(big, "host").text.count(";"))
    assert lines[1] < 2.2 * lines[0]


@pytest.mark.slow
def test_a_long_ode_stays_fused():
    """1,600 steps (37,000 equations): every elementwise equation lies in a region whose kernel
    can be rendered (no region runs unfused), and the fused replay matches the unfused one."""
    x = np.array([1.0, 0.5])
    program = _program(gpuad.jacfwd(_ode(1600)), x)
    nodes = fuse(program, "numpy")
    regions = [n for n in nodes if isinstance(n, Region)]
    for r in regions:
        codegen.render(r, "host")
    plain = [n for n in nodes if not isinstance(n, Region)]
    assert len(regions) > 1600 and all(n.prim.name in ("getitem", "transpose") for n in plain)
    assert_close(gpuad.jit(gpuad.jacfwd(_ode(100)))(x), gpuad.jacfwd(_ode(100))(x), rtol=1e-12)


def test_a_prelude_that_cannot_be_precompiled_is_compiled_as_text(monkeypatch, tmp_path):
    """The precompiled prelude is only a shortcut: where it cannot be built (here: its folder cannot
    be made), each source carries the prelude as text and the kernels still build and run."""
    if gpuad.backend() != "numpy":
        pytest.skip("the C++ compiler builds the fused kernels of the NumPy backend only")
    monkeypatch.setenv("GPUAD_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(host, "_loaded", {})
    made = []

    def refuse(self, *args, **kwargs):
        if self.name.startswith("pch_"):
            made.append(self.name)
            raise PermissionError("read-only")
        return mkdir(self, *args, **kwargs)
    mkdir = type(tmp_path).mkdir
    monkeypatch.setattr(type(tmp_path), "mkdir", refuse)
    x = gnp.asarray(np.linspace(-1, 1, 37))
    program = _program(lambda x: gnp.sin(x) * gnp.exp(x[::-1]) + 0.5, x)
    plain, fused = _both(program, x)
    assert made and Replay(program, fusion=True).regions == 1
    assert_close(fused[0], plain[0], rtol=1e-14)


def test_fused_remainder_and_sign_give_numpys_zero_signs():
    a = gnp.asarray(np.array([0.0, -0.0, 3.0, -3.0, 1.5, -1.5, 0.0, -0.0]))
    b = gnp.asarray(np.array([-1.0, 1.0, -3.0, 3.0, -1.5, 1.5, 2.0, -2.0]))

    def f(a, b):
        return gnp.remainder(a, b) * 1.0, gnp.sign(a) * 1.0, gnp.sign(-a * 0.0)
    program = _program(f, a, b)
    assert Replay(program).regions == 1
    for fused, eager in zip(Replay(program).run(a, b), f(a, b)):
        assert to_np(fused).tolist() == to_np(eager).tolist()
        assert np.signbit(to_np(fused)).tolist() == np.signbit(to_np(eager)).tolist()


PROGRAMS = programs.programs()


@pytest.mark.parametrize("name,fun,args", PROGRAMS, ids=[p[0] for p in PROGRAMS])
def test_float32_and_mixed_programs_compile_for_cuda(nvrtc, name, fun, args):
    """Operands of mixed types (float32 x, float64 y) compile: NVRTC refused pow(float, double),
    atan2, hypot and the templates gpuad_maximum, gpuad_remainder, gpuad_polygamma."""
    if nvrtc is None:
        pytest.skip("NVRTC cannot be loaded")
    kernels = programs.region_kernels(fun, *args, target="cuda")
    assert kernels
    failed = [f"{k.name}: {e}" for k, e in compile_cuda(kernels) if e is not None]
    assert not failed, failed[0][:2000]


@pytest.mark.parametrize("name,fun,args", PROGRAMS, ids=[p[0] for p in PROGRAMS])
def test_float32_and_mixed_programs_run_fused_on_the_host(name, fun, args):
    """The same programs built by the C++ compiler (g++ refused the templates at mixed types) and
    run fused, against the eager computation."""
    if gpuad.backend() != "numpy":
        pytest.skip("the C++ compiler builds the fused kernels of the NumPy backend only")
    args = [gnp.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no region left unfused
        got = gpuad.jit(fun)(*args)
    assert_tree_close(got, fun(*args), rtol=1e-5)
