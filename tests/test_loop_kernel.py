"""A whole compiled loop as one kernel (gpuad/compiler/loop_kernel.py): its results against the
eager (Python) loop and the other AD mode, both schedules (per element, whole), the edge cases
of scan and fori_loop, the bodies that keep the per-trip replay, and the CUDA sources by NVRTC."""
import ctypes
import shutil
import subprocess
import threading

import numpy as np
import pytest
from helpers import assert_close, on_backend
from test_lax import _rk4_step as _rk4  # an RK4 step of a damped pendulum

import gpuad
import gpuad.numpy as gnp
from gpuad import backends, lax
from gpuad.compiler import host, loop_kernel
from gpuad.compiler.target import CUPY, NUMPY, target_of


def integrate(z, steps=200):
    """y(steps * h) of the ODE from z = (y0, p): a 2-state loop carrying K tangents under jacfwd."""
    return lax.fori_loop(0, steps, lambda i, y: _rk4(y, z[2:]), z[:2])


Z = np.array([0.7, -0.3, 1.3, 0.2])


def _scans(jitted, *args):
    """The specs of the scans of a jitted function's program, in order."""
    return [eq.params["spec"] for eq in jitted.lower(*args).program.equations if eq.prim.name == "scan"]


def _one_kernel(spec):
    """The loop's kernel where the replay ran the whole loop as one (the tests build synchronously)."""
    kernel = spec.kernel(target_of())
    return kernel if kernel is not None and kernel.runner is not None and kernel.runner.call is not None else None


def test_a_small_coupled_loop_is_one_sequential_kernel():
    z = on_backend(Z)[0]
    f = gpuad.jit(gpuad.jacfwd(integrate))
    out = f(z)
    (spec,) = _scans(f, z)
    assert _one_kernel(spec).schedule == "whole"
    assert_close(out, gpuad.jacfwd(integrate)(z), rtol=1e-12, atol=1e-12)
    assert_close(out, gpuad.jacrev(integrate)(z), rtol=1e-12, atol=1e-12)
    assert_close(gpuad.jit(integrate)(z), integrate(z), rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_reverse_mode_compiled_runs_both_loops_as_kernels():
    """jit(jacrev): the loop storing the carries and the backward loop, each one kernel."""
    z = on_backend(Z)[0]
    f = gpuad.jit(gpuad.jacrev(integrate))
    out = f(z)
    assert all(_one_kernel(spec) is not None for spec in _scans(f, z))
    assert_close(out, gpuad.jacfwd(integrate)(z), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("batch", [37, pytest.param(1500, marks=pytest.mark.slow)])  # 1500: chunks on threads
def test_vmap_of_a_per_sample_loop_runs_each_example_on_its_own(batch):
    zs = on_backend(np.random.default_rng(batch).uniform(0.1, 1.0, (batch, 4)))[0]
    g = gpuad.vmap(gpuad.jacfwd(lambda z: integrate(z, 60)))
    f = gpuad.jit(g)
    out = f(zs)
    (spec,) = _scans(f, zs)
    kernel = _one_kernel(spec)
    assert kernel.schedule == "element" and kernel.batch == batch
    assert_close(out, g(zs), rtol=1e-12, atol=1e-12)
    assert_close(out, gpuad.vmap(gpuad.jacrev(lambda z: integrate(z, 60)))(zs), rtol=1e-12, atol=1e-12)


def test_a_batch_the_size_of_another_axis_runs_the_whole_loop_as_one():
    """Four examples of four tangents: which axis is the batch's is not known, so one sequential loop."""
    zs = on_backend(np.random.default_rng(4).uniform(0.1, 1.0, (4, 4)))[0]
    g = gpuad.vmap(gpuad.jacfwd(lambda z: integrate(z, 30)))
    f = gpuad.jit(g)
    out = f(zs)
    assert _one_kernel(_scans(f, zs)[0]).schedule == "whole"
    assert_close(out, g(zs), rtol=1e-12, atol=1e-12)


def test_an_elementwise_fixed_point_runs_per_element_and_a_stencil_as_one_loop():
    x = on_backend(np.linspace(0.1, 2.0, 300))[0]

    def fixed(x):
        return lax.fori_loop(0, 40, lambda i, y: gnp.cos(y) * 0.5 + x, x)

    def stencil(x):
        return lax.fori_loop(0, 40, lambda i, y: y + 0.1 * gnp.concatenate([y[1:] - y[:-1], y[:1] * 0.0]), x)
    for fun, schedule in ((fixed, "element"), (stencil, "whole")):
        f = gpuad.jit(fun)
        out = f(x)
        assert _one_kernel(_scans(f, x)[0]).schedule == schedule
        assert_close(out, fun(x), rtol=1e-12, atol=1e-12)
        assert_close(gpuad.jit(gpuad.jacfwd(fun))(x), gpuad.jacrev(fun)(x), rtol=1e-12, atol=1e-12)
    # grad: the loop storing the carries and the backward loop, whose cotangent leads with a unit axis
    g = gpuad.jit(gpuad.grad(lambda x: gnp.sum(fixed(x) ** 2)))
    assert_close(g(x), gpuad.grad(lambda x: gnp.sum(fixed(x) ** 2))(x), rtol=1e-12, atol=1e-12)
    assert [_one_kernel(spec).schedule for spec in _scans(g, x)] == ["element", "element"]


def _decay(c, x):
    c = c * 0.9 + gnp.sin(x * c)
    return c, c * x


def test_scan_reversed_with_stacked_outputs_and_unrolled():
    c0, xs = on_backend(np.array([0.3, -0.2, 0.5]), np.linspace(-1.0, 1.0, 24).reshape(8, 3))

    def fun(c0, xs):
        return lax.scan(_decay, c0, xs, reverse=True, unroll=3)
    f = gpuad.jit(fun)
    out = f(c0, xs)
    assert _one_kernel(_scans(f, c0, xs)[0]) is not None
    for got, want in zip(out, fun(c0, xs)):
        assert_close(got, want, rtol=1e-12, atol=1e-12)
    for k in (0, 1):
        jf = gpuad.jit(gpuad.jacfwd(lambda c, x, k=k: fun(c, x)[k], argnums=(0, 1)))(c0, xs)
        jr = gpuad.jacrev(lambda c, x, k=k: fun(c, x)[k], argnums=(0, 1))(c0, xs)
        for a, b in zip(jf, jr):
            assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_zero_trips_and_a_traced_trip_count():
    z, xs = on_backend(Z, np.zeros((0, 4)))
    none = gpuad.jit(lambda z: lax.fori_loop(0, 0, lambda i, y: _rk4(y, z[2:]), z[:2]))
    assert_close(none(z), z[:2], rtol=0, atol=0)
    empty = gpuad.jit(lambda z, xs: lax.scan(lambda c, x: (c * x, c + x), z, xs))
    carry, ys = empty(z, xs)
    assert_close(carry, z, rtol=0, atol=0)
    assert ys.shape == (0, 4)
    traced = gpuad.jit(lambda z, n: lax.fori_loop(0, n, lambda i, y: _rk4(y, z[2:]), z[:2]))
    assert_close(traced(z, 50), integrate(z, 50), rtol=1e-12, atol=1e-12)


def test_carries_of_several_dtypes_and_float32():
    a0, b0, xs = on_backend(np.float32([0.5, -0.25]), np.array([1.0, 2.0]), np.linspace(0.0, 1.0, 10))

    def mixed(a, b, xs):
        def body(carry, x):
            a, b = carry
            a = a * np.float32(0.75) + gnp.sin(a)
            return (a, b * 0.5 + a.astype("float64") * x), None
        return lax.scan(body, (a, b), xs)[0]
    f = gpuad.jit(mixed)
    got, want = f(a0, b0, xs), mixed(a0, b0, xs)
    assert _one_kernel(_scans(f, a0, b0, xs)[0]) is not None
    assert got[0].dtype == np.float32 and got[1].dtype == np.float64
    assert_close(got[0], want[0], rtol=1e-6, atol=1e-6)  # float32 sines: libm's and NumPy's may differ by an ulp
    assert_close(got[1], want[1], rtol=1e-6, atol=1e-6)
    z32 = on_backend(Z.astype(np.float32))[0]
    f32 = gpuad.jit(gpuad.jacfwd(integrate))
    out = f32(z32)
    assert out.dtype == np.float32 and _one_kernel(_scans(f32, z32)[0]) is not None
    assert_close(out, gpuad.jacfwd(integrate)(z32), rtol=1e-4, atol=1e-5)


def test_bodies_no_kernel_renders_keep_the_per_trip_replay():
    w, h0, xs = on_backend(np.eye(3) * 0.5 + 0.1, np.array([0.1, 0.2, 0.3]), np.ones((5, 3)))

    def gemm(h0, xs):  # a matrix product in the body
        return lax.scan(lambda h, x: (gnp.tanh(w @ h + x), None), h0, xs)[0]

    def nested(h0, xs):  # a loop in the body
        return lax.scan(lambda h, x: (lax.fori_loop(0, 3, lambda i, g: gnp.sin(g) + x, h), None), h0, xs)[0]
    for fun in (gemm, nested):
        f = gpuad.jit(fun)
        assert_close(f(h0, xs), fun(h0, xs), rtol=1e-14, atol=1e-14)
        assert _scans(f, h0, xs)[0].kernel(target_of()) is None
    # the nested loop's own body renders: the inner loop runs as one kernel on each outer trip
    inner = _scans(gpuad.jit(nested), h0, xs)[0].body
    assert any(eq.params["spec"].kernel(target_of()) is not None for eq in inner.equations if eq.prim.name == "scan")


def test_launches_of_a_loop_run_as_one_kernel_do_not_grow_with_its_trips():
    z = on_backend(Z)[0]
    counts = [gpuad.jit(gpuad.jacfwd(lambda z, n=n: integrate(z, n))).lower(z).launches for n in (10, 1000)]
    assert counts[0] == counts[1]
    moved = [gpuad.jit(gpuad.jacfwd(lambda z, n=n: integrate(z, n))).lower(z).bytes_moved for n in (10, 1000)]
    assert moved[1] - moved[0] == 990 * 8  # only the loop's index operand grows


def test_a_first_call_runs_the_loop_unfused_while_its_kernel_builds(monkeypatch, tmp_path):
    if backends.backend() != "numpy":
        pytest.skip("the C++ compiler builds the CPU's loop kernels")
    monkeypatch.setenv("GPUAD_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GPUAD_COMPILE", "async")
    release, library = threading.Event(), host.library

    def held(kernels):  # the loop's kernel only (the program around it may be loaded already)
        if any(k.name.startswith("gpuad_loop_") for k in kernels):
            release.wait(60)
        return library(kernels)
    monkeypatch.setattr(host, "library", held)
    z = on_backend(Z)[0]

    def fun(z):  # a body of its own: no other test has built its kernel in this process
        return lax.fori_loop(0, 77, lambda i, y: _rk4(y, z[2:], h=0.0123), z[:2])
    f = gpuad.jit(fun)
    assert_close(f(z), fun(z), rtol=1e-12, atol=1e-12)
    kernel = _scans(f, z)[0].kernel(NUMPY)
    assert kernel.runner.call is None  # still building: the loop ran from Python
    release.set()
    kernel.runner.ready.result()
    assert kernel.runner.call is not None
    assert_close(f(z), fun(z), rtol=1e-12, atol=1e-12)
    # a loop too long to run from Python meanwhile waits for its kernel
    monkeypatch.setattr(loop_kernel, "_WAIT_FROM", 77 * 10)

    def longer(z):
        return lax.fori_loop(0, 77, lambda i, y: _rk4(y, z[2:], h=0.0321), z[:2])
    g = gpuad.jit(longer)
    assert_close(g(z), longer(z), rtol=1e-12, atol=1e-12)
    assert _scans(g, z)[0].kernel(NUMPY).runner.call is not None


@pytest.fixture(scope="module")
def nvrtc():
    from gpuad.kernels import nvrtc
    try:
        nvrtc.version()
    except Exception:
        pytest.skip("NVRTC does not load here")
    return nvrtc


def test_compile_builds_the_loop_kernels_ahead_of_time(monkeypatch, tmp_path):
    if backends.backend() != "numpy":
        pytest.skip("the C++ compiler builds the CPU's loop kernels")
    monkeypatch.setenv("GPUAD_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GPUAD_COMPILE", "async")
    z = on_backend(Z)[0]

    def fun(z):
        return lax.fori_loop(0, 12, lambda i, y: _rk4(y, z[2:], h=0.0456), z[:2])
    compiled = gpuad.jit(fun).lower(z).compile()
    (kernel,) = [k for k in compiled.kernels if k.name.startswith("gpuad_loop_")]
    assert kernel.runner.call is not None and kernel.name in compiled.as_text()
    assert_close(compiled(z), fun(z), rtol=1e-12, atol=1e-12)


def test_every_loop_kernel_compiles_for_cuda(nvrtc):
    z, zs = on_backend(Z, np.random.default_rng(0).uniform(0.1, 1.0, (300, 4)))
    c0, xs = on_backend(np.array([0.3, -0.2, 0.5]), np.linspace(-1.0, 1.0, 24).reshape(8, 3))
    x = on_backend(np.linspace(0.1, 2.0, 300))[0]
    cases = [(gpuad.jit(gpuad.jacfwd(integrate)), (z,), "whole"),
             (gpuad.jit(gpuad.vmap(gpuad.jacfwd(integrate))), (zs,), "element"),
             (gpuad.jit(lambda x: lax.fori_loop(0, 9, lambda i, y: gnp.cos(y) + x, x)), (x,), "element"),
             (gpuad.jit(lambda c, xs: lax.scan(_decay, c, xs, reverse=True)), (c0, xs), "whole")]
    for f, args, schedule in cases:
        for spec in _scans(f, *args):
            kernel = spec.kernel(CUPY)
            assert kernel.schedule == schedule
            nvrtc.compile_ptx(kernel.text, kernel.name, nvrtc.ARCH)
    # lower(..., backend="cupy").compile() builds them by NVRTC too, without a GPU
    compiled = gpuad.jit(gpuad.jacfwd(integrate)).lower(z, backend="cupy").compile()
    assert any(k.name.startswith("gpuad_loop_") for k in compiled.kernels)


# CUDA's qualifiers for the host, a grid of one-thread blocks run one after another (as in
# tests/host_kernels.py) and one thread for a whole loop's block: its block-stride loops then run
# every element in order and its synchronisations have nothing to wait for.
_CUDA_ON_THE_HOST = r"""
#include <cmath>
using namespace std;
#define __global__
#define __device__
#define __forceinline__ inline
#define __noinline__
#define __shared__ static
#define __syncthreads()
#define __syncthreads_or(p) (p)
struct gpuad_dim3 { unsigned x, y, z; };
static const gpuad_dim3 threadIdx = {0, 0, 0}, blockDim = {1, 1, 1};
static gpuad_dim3 blockIdx = {0, 0, 0};
extern "C" void gpuad_block(unsigned b) { blockIdx.x = b; }
"""


def _seen_by(kernel, f, args):
    """(operands, trips, results) of the CPU loop kernel's call in f(*args)."""
    f(*args)  # built
    run, seen = kernel.runner.call, []

    def call(operands, trips):
        seen.append((list(operands), trips, run(operands, trips)))
        return seen[-1][2]
    kernel.runner.call = call
    try:
        f(*args)
    finally:
        kernel.runner.call = run
    return seen[0]


def cuda_on_the_host(runs, tmp_path):
    """[(result, the CPU kernel's)] of each result of each CUDA loop kernel of runs (kernel, the
    CPU kernel's operands, trips and results) compiled as C++ and run one thread a block."""
    source = _CUDA_ON_THE_HOST + "".join(f"namespace k{j} {{\n{k.text}\n}}\n" for j, (k, *_) in enumerate(runs))
    (tmp_path / "loops.cpp").write_text(source)
    subprocess.run(["g++", "-O1", "-shared", "-fPIC", "-o", str(tmp_path / "loops.so"), str(tmp_path / "loops.cpp")],
                   check=True, capture_output=True)
    lib = ctypes.CDLL(str(tmp_path / "loops.so"))
    outs = []
    for kernel, operands, trips, expected in runs:
        arrays = [np.ascontiguousarray(a) for a in operands] + [np.ascontiguousarray(c) for c in kernel.constants]
        arrays += [np.zeros(kernel.scratch, np.uint8)] if kernel.schedule == "element" else []
        results = [np.zeros_like(e) for e in expected]
        fn = getattr(lib, kernel.name)
        fn.argtypes = [ctypes.c_void_p] * (len(arrays) + len(results)) + [ctypes.c_longlong]
        for b in range(kernel.grid):
            for thread in range(kernel.block if kernel.schedule == "element" else 1):
                lib.gpuad_block(b * kernel.block + thread)  # blockIdx.x of a one-thread block
                fn(*[a.ctypes.data for a in arrays + results], trips)
        outs += zip(results, expected)
    return outs


def test_the_cuda_loop_kernels_run_on_the_host_as_the_cpu_ones_do(tmp_path):
    """Each CUDA loop kernel's source compiled as C++ (one thread a block) and run on the operands the
    CPU's loop kernel got: the same results, for both schedules."""
    if backends.backend() != "numpy" or shutil.which("g++") is None:
        pytest.skip("runs the CUDA sources with g++ beside the NumPy backend's kernels")
    zs = np.random.default_rng(1).uniform(0.1, 1.0, (37, 4))
    c0, xs = np.array([0.3, -0.2, 0.5]), np.linspace(-1.0, 1.0, 24).reshape(8, 3)
    cases = [(gpuad.jit(gpuad.jacfwd(integrate)), (Z,)),
             (gpuad.jit(gpuad.vmap(gpuad.jacfwd(lambda z: integrate(z, 30)))), (zs,)),
             (gpuad.jit(lambda c, xs: lax.scan(_decay, c, xs, reverse=True)), (c0, xs))]
    runs = []  # (CUDA kernel, the operands and the output of the CPU's)
    for f, args in cases:
        (spec,) = _scans(f, *args)
        runs.append((spec.kernel(CUPY), *_seen_by(spec.kernel(NUMPY), f, args)))
    for out, expected in cuda_on_the_host(runs, tmp_path):
        assert_close(out, expected, rtol=1e-13, atol=1e-13)


def test_a_value_closed_over_by_several_stages_reaches_the_loop_once():
    """The four RK4 stages each slice the parameters from z: one value after common subexpressions,
    handed to the loop once (passes.shared_operands), the results unchanged."""
    zs = on_backend(np.random.default_rng(2).uniform(0.1, 1.0, (30, 4)))[0]
    for fun, z in ((gpuad.vmap(gpuad.jacfwd(integrate)), zs), (gpuad.jacrev(integrate), zs[0])):
        f = gpuad.jit(fun)
        scans = [eq for eq in f.lower(z).program.equations if eq.prim.name == "scan"]
        assert scans
        for eq in scans:
            consts = [a if hasattr(a, "id") else id(a.val) for a in eq.ins[:eq.params["spec"].n_consts]]
            assert len(set(consts)) == len(consts), eq.ins
        assert_close(f(z), fun(z), rtol=1e-12, atol=1e-12)
