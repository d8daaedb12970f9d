"""The fused-kernel layer without a GPU: generated sources, launch plans, host runs, NVRTC.

The generated CUDA source of every kernel is also compiled as C++ for the CPU (a few macros
stand in for CUDA's qualifiers and a one-thread grid) and run on NumPy arrays, so the
arithmetic and indexing of every kernel are checked against the NumPy path here; the GPU
tests (test_gpu.py) repeat that through CuPy on a device.
"""
import fnmatch
from pathlib import Path

import numpy as np
import pytest
from host_kernels import run_on_host as _run_on_host

import gpuad.numpy as gnp
from gpuad import backends
from gpuad.compiler import codegen
from gpuad.kernels import __main__ as cli
from gpuad.kernels import plan as launch_plan
from gpuad.kernels.nvrtc import CompileError, compile_ptx, version
from gpuad.kernels.plan import BLOCK, FILL_BLOCKS, MAX_BLOCKS, broadcast, jvp_launch, launch_config, vjp_launch
from gpuad.kernels.source import C_TYPES, DTYPES, every_kernel, kernel_name, render, template_dir, variants
from gpuad.ops.elementwise import array_jvp, array_vjp, on_arrays
from gpuad.ops.table import DIFFERENTIABLE, HOLOMORPHIC, NONDIFF, ROWS, Row

ROOT = Path(__file__).resolve().parents[1]
KERNELS = every_kernel()
IDS = [kernel_name(*k) for k in KERNELS]
SHAPE, K = (3, 4), 3
# every other row is smooth on (0.2, 0.9); the orders of polygamma, jn and yn must be integers (both
# arguments draw from one domain: this is polygamma(1, 1), jn(2, 2); test_special_function_kernels_...
# covers the rest)
DOMAINS = {"arccosh": (1.2, 2.0), "polygamma": (1.0, 1.0), "jn": (2.0, 2.0), "yn": (2.0, 2.0)}
F32, F64 = DTYPES
# The generic rule of each mode on NumPy arrays: the reference every fused kernel must match.
GENERIC = {"jvp": lambda row, *params: array_jvp(row, *params, np),
           "vjp": lambda row, *params: array_vjp(row, *params, np)}


# ---------------------------------------------------------------- generated sources

def test_every_differentiable_row_has_one_kernel_per_variant_and_dtype():
    assert len(set(IDS)) == len(IDS) == sum((4 if r in HOLOMORPHIC else 2) * len(variants(r, m))
                                            for r in DIFFERENTIABLE for m in ("jvp", "vjp"))
    assert variants(ROWS["sin"], "jvp") == ["t"] and variants(ROWS["sin"], "vjp") == ["n"]
    assert variants(ROWS["power"], "jvp") == ["tt", "ta", "ts", "at", "st"]
    assert variants(ROWS["power"], "vjp") == ["nn", "na", "ns", "an", "sn"]
    assert kernel_name(ROWS["multiply"], "jvp", "ts", F32) == "gpuad_jvp_multiply_ts_f32"


@pytest.mark.parametrize("row", NONDIFF, ids=lambda r: r.name)
def test_rows_without_derivative_have_no_kernel(row):
    with pytest.raises(ValueError, match="no derivative"):
        render(row, "jvp", "t", F64)


def test_an_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="not a jvp variant"):
        render(ROWS["multiply"], "jvp", "aa", F64)


def test_rows_of_real_values_only_have_no_complex_kernel():
    with pytest.raises(ValueError, match="no kernel of complex128"):
        render(ROWS["hypot"], "jvp", "tt", np.complex128)
    a = np.ones(SHAPE, np.complex128)
    assert jvp_launch(ROWS["hypot"], [a, a], [np.ones((K,) + SHAPE, np.complex128), None], np) is None


@pytest.mark.parametrize("row,mode,variant,dtype", KERNELS, ids=IDS)
def test_source_holds_the_rows_own_expressions(row, mode, variant, dtype):
    text = render(row, mode, variant, dtype)
    assert f'extern "C" __global__ void {kernel_name(row, mode, variant, dtype)}(' in text
    assert f"typedef {C_TYPES[np.dtype(dtype).name]} T;" in text
    assert ("struct gpuad_complex" in text) == (np.dtype(dtype).kind == "c")
    assert "${" not in text and "#include" not in text  # slots filled, header inlined
    assert "gpuad_sign(T x)" in text
    assert (f"const T y = {row.primal.cuda()};" in text) == (mode == "jvp")
    for j, code in enumerate(variant):  # a partial is computed exactly for the arguments that need it
        assert (f"const T d{j} = {row.partials[j].cuda()};" in text) == (code in "tn")


def test_numpy_path_and_kernel_read_the_same_row():
    """A row that is in no table: its one partial reaches both the NumPy rule and the CUDA text."""
    row = Row("scaled_sin", "sin(x)", "3 * cos(x)")
    assert "const T d0 = (T(3) * gpuad_cos(x));" in render(row, "jvp", "t", F64)
    x, t = np.array([0.1, 0.7]), np.ones((1, 2))
    _, dy = array_jvp(row, [x], [t], np)
    np.testing.assert_allclose(dy[0], 3 * np.cos(x), rtol=1e-15)


def test_the_templates_read_are_the_checkouts():
    for f in (ROOT / "kernels").iterdir():
        assert (template_dir() / f.name).read_text() == f.read_text()


def test_pyproject_lists_every_package_and_ships_the_templates():
    tomllib = pytest.importorskip("tomllib")
    setuptools = pytest.importorskip("setuptools")
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = setuptools.find_packages(str(ROOT), include=["gpuad", "gpuad.*"])
    assert set(cfg["packages"]) == set(on_disk) | {"gpuad.kernels.cuda"}
    assert cfg["package-dir"]["gpuad.kernels.cuda"] == "kernels"
    globs = cfg["package-data"]["gpuad.kernels.cuda"]
    for f in (ROOT / "kernels").iterdir():
        assert any(fnmatch.fnmatch(f.name, g) for g in globs), f"{f.name} would not ship"


# ---------------------------------------------------------------- launch plans

def test_launch_config_covers_every_element_with_a_capped_grid():
    assert BLOCK % 32 == 0
    for n in (1, 255, 256, 257, 10**6):
        (grid, gy), (block,) = launch_config(n)
        assert block == BLOCK and grid * block >= n and (grid - 1) * block < n and gy == 1
    (grid, _), _ = launch_config(MAX_BLOCKS * BLOCK * 4)
    assert grid == MAX_BLOCKS  # the grid-stride loop covers the rest


def test_launch_config_splits_directions_only_when_elements_cannot_fill_the_gpu():
    (gx, gy), _ = launch_config(4094, k=4096)  # a 4096-input Jacobian of a small map
    assert gx * gy >= FILL_BLOCKS // 2 and 1 < gy <= 4096
    assert launch_config(10, k=3)[0] == (1, 3)  # never more y-blocks than directions
    (gx, gy), _ = launch_config(10**8, k=4096)  # a large n: the primal once per element
    assert gy == 1


@pytest.mark.parametrize("name,mode,variant", [("tanh", "jvp", "t"), ("divide", "jvp", "tt"),
                                               ("hypot", "vjp", "nn"), ("power", "vjp", "na")])
def test_kernels_split_over_direction_blocks_give_the_same_bundles(host_kernels, name, mode, variant):
    row, rng = ROWS[name], np.random.default_rng(3)
    params = call_arguments(row, mode, variant, F64, SHAPE, rng)
    plan = jvp_launch if mode == "jvp" else vjp_launch
    one = _run_on_host(host_kernels, plan(row, *params, np))
    split = _run_on_host(host_kernels, plan(row, *params, np), blocks_y=K - 1)
    for a, b in zip(one, split):
        np.testing.assert_array_equal(a, b)


def _multiply_jvp(a, b, ta):
    return jvp_launch(ROWS["multiply"], [a, b], [ta, None], np)


def test_plan_reads_broadcast_arguments_in_place():
    """One element, a bias over the leading axes, a column over the trailing ones: read where they
    are (gpuad_broadcast's q and r), not copied to the output's shape."""
    a, ta = np.ones(SHAPE), np.ones((K,) + SHAPE)
    for b, qr in ((np.array(2.0), [1, 1]), (np.arange(4.0), [1, 4]), (np.arange(3.0)[:, None], [4, 3]),
                  (np.ones(SHAPE), [1, 0])):
        call = _multiply_jvp(a, b, ta)
        assert call.variant == "ta" and call.args[2] is b and call.args[3:5] == qr
    assert call.n == 12 and [o.shape for o in call.outputs] == [SHAPE, (K,) + SHAPE]


def test_plan_takes_32_bit_indices_where_every_index_of_the_bundle_fits(monkeypatch):
    """Indices below index32.LIMIT (the region kernels' bound) in int, the kernel's 32-bit variant."""
    a, b, ta = np.ones(SHAPE), np.ones(SHAPE[-1:]), np.ones((K,) + SHAPE)
    for limit, index in [(K * a.size + 1, np.int32), (K * a.size, np.int64)]:  # the last index is K * n - 1
        monkeypatch.setattr(launch_plan, "LIMIT", limit)
        for call in (_multiply_jvp(a, b, ta), vjp_launch(ROWS["multiply"], [a, b], a, ta, [True, False], np)):
            assert call.index == np.dtype(index).name
            assert kernel_name(*call.kernel).endswith("_i32") == (index == np.int32)
            assert all(type(v) is index for v in call.args if isinstance(v, np.integer))  # q, r, n, K


@pytest.mark.parametrize("name,mode,variant", [("tanh", "jvp", "t"), ("multiply", "jvp", "ta"),
                                               ("hypot", "vjp", "na"), ("power", "vjp", "ns")])
def test_both_index_variants_compute_the_same_bundles(host_kernels, monkeypatch, name, mode, variant):
    row, rng = ROWS[name], np.random.default_rng(5)
    params = call_arguments(row, mode, variant, F64, (3, 1), rng)
    launch = jvp_launch if mode == "jvp" else vjp_launch
    narrow = launch(row, *params, np)
    monkeypatch.setattr(launch_plan, "LIMIT", 0)
    wide = launch(row, *params, np)
    assert (narrow.index, wide.index) == ("int32", "int64")
    for a, b in zip(_run_on_host(host_kernels, narrow, blocks_y=2), _run_on_host(host_kernels, wide, blocks_y=2)):
        if a is not None:
            np.testing.assert_array_equal(a, b)


def test_plan_copies_an_argument_broadcast_along_axes_apart():
    shape, b = (3, 4, 5), np.arange(15.0).reshape(3, 1, 5)
    call = jvp_launch(ROWS["multiply"], [np.ones(shape), b], [np.ones((K,) + shape), None], np)
    assert call.args[2].shape == shape and call.args[2].flags.c_contiguous and call.args[3:5] == [1, 0]
    np.testing.assert_array_equal(call.args[2], np.broadcast_to(b, shape))
    assert broadcast((4,), (2 ** 30, 4)) == (1, None)  # the kernel's 32-bit division would not reach


def test_plan_passes_python_scalars_by_value_in_the_arrays_dtype():
    a = np.ones(SHAPE, np.float32)
    call = _multiply_jvp(a, 2, np.ones((K,) + SHAPE, np.float32))
    assert call.variant == "ts" and type(call.args[2]) is np.float32 and call.dtype == F32


@pytest.mark.parametrize("case", [
    "mixed dtypes", "integer arrays", "float16", "complex scalar", "broadcast tangent", "empty", "no directions"])
def test_plan_leaves_other_calls_to_the_generic_rule(case):
    f64 = np.ones(SHAPE)
    t = np.ones((K,) + SHAPE)
    a, b, ta = {
        "mixed dtypes": (f64, np.ones(SHAPE, np.float32), t),
        "integer arrays": (np.ones(SHAPE, int), np.ones(SHAPE, int), np.ones((K,) + SHAPE, int)),
        "float16": (np.ones(SHAPE, np.float16), 2.0, np.ones((K,) + SHAPE, np.float16)),
        "complex scalar": (f64, 1j, t),
        "broadcast tangent": (np.ones(4), f64, np.ones((K, 4))),
        "empty": (np.ones((0, 4)), 2.0, np.ones((K, 0, 4))),
        "no directions": (f64, 2.0, np.ones((0,) + SHAPE)),
    }[case]
    assert _multiply_jvp(a, b, ta) is None


def test_vjp_plan_refuses_a_needed_scalar_and_keeps_unneeded_slots_empty():
    row, y, ct = ROWS["multiply"], np.ones(SHAPE), np.ones((K,) + SHAPE)
    assert vjp_launch(row, [np.ones(SHAPE), 2.0], y, ct, [True, True], np) is None
    call = vjp_launch(row, [np.ones(SHAPE), 2.0], y, ct, [True, False], np)
    assert call.variant == "ns" and call.outputs[1] is None and call.outputs[0].shape == (K,) + SHAPE


# ---------------------------------------------------------------- the kernels, run on the CPU

def call_arguments(row, mode, variant, dtype, plain_shape, rng):
    """NumPy arguments of one elementwise call of this kernel variant: (primals, tangents) for a
    JVP, (args, y, ct, needed) for a VJP. Plain arrays ("a") take plain_shape, to be broadcast."""
    lo, hi = DOMAINS.get(row.name, (0.2, 0.9))
    cplx = np.dtype(dtype).kind == "c"

    def draw(low, high, shape):  # complex: imaginary parts in (0.1, 0.5), off the branch cuts
        x = rng.uniform(low, high, shape)
        return np.asarray(x + 1j * rng.uniform(0.1, 0.5, shape) if cplx else x)
    args = [draw(lo, hi, ()).item() if code == "s" else
            draw(lo, hi, plain_shape if code == "a" else SHAPE).astype(dtype) for code in variant]
    if mode == "jvp":
        return args, [draw(-1, 1, (K,) + SHAPE).astype(dtype) if c == "t" else None for c in variant]
    ct = draw(-1, 1, (K,) + SHAPE).astype(dtype)
    return args, on_arrays(np).fn(row)(*args), ct, [c == "n" for c in variant]


PLAIN_SHAPES = [(4,), (3, 1), ()]  # plain arrays broadcast to the output (read in place), or one element


def assert_kernel_close(actual, expected, dtype):
    # Values only: the NumPy path promotes a float32 tangent to float64 when a partial applies a
    # function to a Python scalar (log(a) for 2.0 ** x gives a NumPy float64); kernels keep float32.
    rtol = 2e-5 if dtype in (F32, np.complex64) else 1e-12
    np.testing.assert_allclose(actual, np.broadcast_to(expected, actual.shape), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("row,mode,variant,dtype", KERNELS, ids=IDS)
def test_kernel_computes_what_the_numpy_path_computes(host_kernels, row, mode, variant, dtype):
    rng = np.random.default_rng(0)
    for plain_shape in PLAIN_SHAPES if "a" in variant else [None]:
        params = call_arguments(row, mode, variant, dtype, plain_shape, rng)
        plan, generic = jvp_launch if mode == "jvp" else vjp_launch, GENERIC[mode]
        call = plan(row, *params, np)
        assert call.variant == variant
        for got, want in zip(_run_on_host(host_kernels, call), generic(row, *params)):
            assert (got is None) == (want is None)
            if got is not None:
                assert_kernel_close(got, want, dtype)


# The special functions' device helpers (kernels/gpuad_math.cuh) over their whole range: poles,
# negative arguments, tails, and polygamma at the orders a fourth derivative of gammaln reaches.
SPECIAL_POINTS = {
    "digamma": [-3.7, -1.5, -0.2, 1e-3, 0.4, 1.0, 2.5, 9.9, 10.1, 37.0, 1e4],
    "erfinv": [-1 + 1e-12, -0.999, -0.6, -1e-9, 0.0, 0.3, 0.9, 0.99999, 1 - 1e-15],
    "erfcinv": [1e-300, 1e-100, 1e-20, 1e-8, 0.003, 0.3, 0.5, 1.0, 1.2, 1.9, 1.9999],
    "gammaln": [-2.5, -0.5, 0.1, 1.0, 3.3, 171.5],
    "polygamma": [-2.5, -0.5, 0.2, 1.0, 4.2, 14.9, 15.1, 60.0],
}
# The Bessel functions across their two series (|x| = 8), overflowing (I0, I1 from 710), at +-0, inf, NaN.
BESSEL_POINTS = [-np.inf, -714.0, -30.0, -8.0, -7.99, -0.5, -0.0, 0.0, 1e-300, 0.05, 2.0, 8.0, 8.01, 100.0, 700.0,
                 714.0, 1e300, np.inf, np.nan]
SPECIAL_POINTS.update(dict.fromkeys(["i0", "i1", "i0e", "i1e"], BESSEL_POINTS))
# J and Y: both signs (Y NaN below 0), 0 (Y -inf), the C library's switch at |x| = 2 and large x.
SPECIAL_POINTS.update(dict.fromkeys(["j0", "j1", "y0", "y1", "jn", "yn"], [-30.0, -2.0, -0.5, 0.0, 1e-300, 0.05, 1.99,
                                                                     2.01, 8.0, 100.0, 1e5, np.inf, np.nan]))
# glibc's and CUDA's J and Y are not Cephes': near their zeros they agree to an absolute 1e-14 only.
ATOL = dict.fromkeys(["j0", "j1", "y0", "y1", "jn", "yn"], 1e-14)
# The orders of the binary rows, and their derivatives in x from scipy's values at the orders beside.
ORDERS = {"polygamma": ((0, 1, 2, 3, 4), lambda n, x: scipy_special_call("polygamma", n + 1, x)),
          "yn": ((-3, -2, -1, 0, 1, 2, 5), lambda n, x: 0.5 * (scipy_special_call("yn", n - 1, x)
                                                               - scipy_special_call("yn", n + 1, x))),
          "jn": ((-3, -2, -1, 0, 1, 2, 5), lambda n, x: 0.5 * (scipy_special_call("jn", n - 1, x)
                                                               - scipy_special_call("jn", n + 1, x)))}


def scipy_special_call(name, *args):
    return getattr(pytest.importorskip("scipy.special"), name)(*args)


@pytest.mark.parametrize("name", sorted(SPECIAL_POINTS))
def test_special_function_kernels_match_scipy_over_their_range(host_kernels, name):
    scipy_special = pytest.importorskip("scipy.special")
    x = np.array(SPECIAL_POINTS[name])
    orders, slope = ORDERS.get(name, ((None,), None))
    for n in orders:
        args = [x] if n is None else [np.full_like(x, n), x]
        with np.errstate(all="ignore"):
            expected = getattr(scipy_special, name)(*args)
        call = jvp_launch(ROWS[name], args, [None] * (len(args) - 1) + [np.ones((1,) + x.shape)], np)
        y, dy = _run_on_host(host_kernels, call)
        np.testing.assert_allclose(y, expected, rtol=1e-12, atol=ATOL.get(name, 0), err_msg=f"{name} order {n}")
        if slope is not None:
            with np.errstate(all="ignore"):
                np.testing.assert_allclose(dy[0], slope(n, x), rtol=1e-12, atol=ATOL.get(name, 0),
                                           err_msg=f"d {name} order {n}")
    assert np.isnan(_run_on_host(host_kernels, jvp_launch(ROWS["polygamma"], [np.array([0.5]), np.array([1.0])],
                                                          [None, np.ones((1, 1))], np))[0]).all()


def test_vjp_kernel_gives_broadcast_arguments_full_shaped_cotangents(host_kernels):
    """The sweep sums broadcast cotangents down; the kernel writes them at the output's shape."""
    row, rng = ROWS["divide"], np.random.default_rng(1)
    a, b = rng.uniform(0.5, 1, SHAPE), rng.uniform(0.5, 1, (4,))
    y, ct = a / b, rng.standard_normal((K,) + SHAPE)
    call = vjp_launch(row, [a, b], y, ct, [True, True], np)
    assert call.variant == "nn" and call.args[3] is b and call.args[4:6] == [1, 4]
    ca, cb = _run_on_host(host_kernels, call)
    np.testing.assert_allclose(cb, -y / b * ct, rtol=1e-13)
    np.testing.assert_allclose(ca, ct / b, rtol=1e-13)


# ---------------------------------------------------------------- NVRTC and the command line

@pytest.fixture(scope="module")
def nvrtc():
    try:
        return version()
    except Exception as e:
        pytest.skip(f"NVRTC cannot be loaded: {e}")


# One variant per row, mode and precision of complex values, and every variant of one binary row: the full set is CI's
# `python -m gpuad.kernels --check`.
SAMPLE = [k for k in KERNELS if k[2] == variants(k[0], k[1])[0] and k[3] in (F32, np.complex128)] + [
    k for k in KERNELS if k[0].name == "power" and k[3] != np.complex128]


@pytest.mark.parametrize("row,mode,variant,dtype", SAMPLE, ids=[kernel_name(*k) for k in SAMPLE])
def test_nvrtc_compiles_the_kernel(nvrtc, row, mode, variant, dtype):
    ptx = compile_ptx(render(row, mode, variant, dtype), kernel_name(row, mode, variant, dtype)).decode()
    assert f".entry {kernel_name(row, mode, variant, dtype)}(" in ptx


def test_nvrtc_reports_a_broken_source(nvrtc):
    with pytest.raises(CompileError, match="gpuad_broken"):
        compile_ptx('extern "C" __global__ void gpuad_broken() { undeclared_name = 1; }', "gpuad_broken")


def test_check_counts_compiled_sources_and_fails_on_a_broken_one(nvrtc, monkeypatch, capsys):
    two = [(ROWS["sin"], "jvp", "t", F32), (ROWS["multiply"], "vjp", "ns", F64)]
    monkeypatch.setattr(cli, "every_kernel", lambda: two)
    monkeypatch.setattr(cli, "_benchmark_programs", lambda: [])  # one program's regions, not all of them
    monkeypatch.setattr(cli.programs, "programs", lambda: [("f32", lambda x: gnp.sin(x) * x, (np.ones(4, F32),))])
    monkeypatch.setattr(cli.programs, "loops", lambda: [])
    assert cli.main(["--check"]) == 0
    out = capsys.readouterr().out
    assert "compiled 4 of 4 kernel sources" in out  # 2 index widths
    assert "compiled 1 of 1 region and loop kernels" in out
    monkeypatch.setattr(cli, "render", lambda *k: "broken" if k[0].name == "sin" else render(*k))
    assert cli.main(["--check"]) == 1
    out = capsys.readouterr()
    assert "compiled 2 of 4" in out.out
    assert "FAILED gpuad_jvp_sin_t_f32:" in out.err and "FAILED gpuad_jvp_sin_t_f32_i32:" in out.err
    monkeypatch.setattr(codegen, "render", lambda region, target: region_of_a_broken_kernel)
    assert cli.main(["--check"]) == 1
    out = capsys.readouterr()
    assert "compiled 0 of 1 region and loop kernels" in out.out and "FAILED f32 gpuad_broken" in out.err


class _Kernel:
    name, extent, text = "gpuad_broken", 1, 'extern "C" __global__ void gpuad_broken() { undeclared_name = 1; }'

    def source(self, index):  # its 32-bit variant (codegen.Kernel.source): the same broken text
        return self.text, self.name


region_of_a_broken_kernel = _Kernel()


def test_warm_skips_without_a_gpu(monkeypatch, capsys):
    monkeypatch.setattr(backends, "cupy_usable", lambda: False)
    assert cli.main(["--warm"]) == 0
    assert "skipped, no usable GPU" in capsys.readouterr().out


def test_the_command_needs_an_action():
    with pytest.raises(SystemExit) as exit_:
        cli.main([])
    assert exit_.value.code == 2
