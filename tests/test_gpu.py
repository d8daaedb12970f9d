"""The CuPy backend on a real GPU: every fused kernel against the NumPy path, and no host round
trip while a Jacobian is computed. Skipped without a usable GPU (tests/conftest.py).
"""
import warnings

import numpy as np
import pytest
from helpers import assert_close
from test_kernels import GENERIC, IDS, KERNELS, PLAIN_SHAPES, assert_kernel_close, call_arguments

import gpuad
import gpuad.numpy as gnp

cupy = pytest.importorskip("cupy")
pytestmark = pytest.mark.gpu


def _on_device(params):
    """A call's NumPy arrays as CuPy arrays, inside argument lists too."""
    def move(v):
        return cupy.asarray(v) if isinstance(v, np.ndarray) else v
    return [[move(v) for v in p] if isinstance(p, list) else move(p) for p in params]


def _f(x, w):
    """R^n -> R^m through a matmul, fused elementwise ops with arrays and scalars, and reductions."""
    h = gnp.tanh(w @ x) * 2.0 + gnp.sin(x[:3]).sum()
    return h / (1.0 + gnp.exp(-h)) + gnp.maximum(h, 0.1) ** 2


def _g(x, w):
    return gnp.sum(_f(x, w) ** 2)


def _forbidden(name):
    def raise_(*args, **kwargs):
        raise AssertionError(f"host round trip inside a sweep: {name}")
    return raise_


def test_no_host_round_trip_while_jacobians_are_computed_eager_or_compiled(cupy_backend, monkeypatch):
    rng = np.random.default_rng(3)
    x_np, w_np = rng.uniform(-1, 1, 6), rng.uniform(-1, 1, (5, 6))
    x, w = cupy.asarray(x_np), cupy.asarray(w_np)
    transforms = {"jacfwd": gpuad.jacfwd(_f), "jacrev": gpuad.jacrev(_f), "hessian": gpuad.hessian(_g)}
    # compiled: traced and planned once here (tracing may look at constants); the replays must not wait
    transforms.update({f"jit_{k}": gpuad.jit(t) for k, t in list(transforms.items())})
    for name in [k for k in transforms if k.startswith("jit_")]:
        transforms[name](x, w)
    with monkeypatch.context() as m:
        for name in ("get", "__array__", "__float__", "__int__", "__bool__", "item", "tolist"):
            m.setattr(cupy.ndarray, name, _forbidden(f"cupy.ndarray.{name}"))
        m.setattr(cupy, "asnumpy", _forbidden("cupy.asnumpy"))
        m.setattr(cupy.cuda.Stream, "synchronize", _forbidden("Stream.synchronize"))
        m.setattr(cupy.cuda.runtime, "deviceSynchronize", _forbidden("deviceSynchronize"))
        on_gpu = {name: t(x, w) for name, t in transforms.items()}
    assert all(isinstance(v, cupy.ndarray) for v in on_gpu.values())
    gpuad.set_backend("numpy")
    for name in transforms:
        eager = transforms[name.removeprefix("jit_")]
        assert_close(cupy.asnumpy(on_gpu[name]), eager(x_np, w_np), rtol=1e-12, atol=1e-12, what=name)


def test_numpy_inputs_give_cupy_results_and_block_until_ready_returns_them(cupy_backend):
    x = np.linspace(0.1, 1.0, 6)
    w = np.ones((5, 6))
    jac = gpuad.block_until_ready(gpuad.jacrev(_f)(x, w))
    assert isinstance(jac, cupy.ndarray) and jac.shape == (5, 6)


def test_a_run_of_kernels_replays_as_a_cuda_graph(cupy_backend):
    """A compiled stencil Jacobian (18 region kernels): plain at the first call, captured at the
    second, one graph launch after; every result its own and equal to the eager one on the CPU."""
    from test_graphs import _inputs, _stencil

    from gpuad.compiler.replay import Replay
    for transform in (gpuad.jacrev, gpuad.hessian):
        f = _stencil if transform is gpuad.jacrev else (lambda x: gnp.sum(_stencil(x) ** 2))
        program = gpuad.jit(transform(f)).lower(_inputs(0)).program
        replay = Replay(program)
        assert replay.graphs == 1, "the run was not planned as a graph"
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a capture that fails warns: fail here instead
            got = [replay.run(_inputs(k))[0] for k in range(4)]
        assert all(s.fn.captured is not None for s in replay.steps if s.kind == "graph")
        gpuad.set_backend("numpy")
        for k in range(4):
            assert_close(cupy.asnumpy(got[k]), transform(f)(_inputs(k)), rtol=1e-12,
                         what=f"{transform.__name__} call {k}")
        gpuad.set_backend("cupy")


def test_fused_cuda_kernels_read_odd_strides_and_keep_numpys_zero_signs(cupy_backend):
    """A view whose strides are not whole items (as_strided over a float64 buffer, 12 bytes
    apart) is copied before a kernel reads it; sign and remainder give NumPy's zeros."""
    from cupy.lib.stride_tricks import as_strided

    from gpuad.compiler.replay import Replay
    buffer = cupy.arange(40.0)
    odd = as_strided(buffer, (6,), (12,))
    f = lambda x: gnp.sin(x) * 2.0 + x * x  # noqa: E731
    replay = Replay(gpuad.jit(f).lower(odd).program)
    assert replay.regions == 1
    assert_close(cupy.asnumpy(replay.run(odd)[0]), f(cupy.asnumpy(odd)), rtol=1e-14)
    a = cupy.asarray([0.0, -0.0, 3.0, -3.0, 0.0])
    b = cupy.asarray([-1.0, 1.0, -3.0, 3.0, 2.0])
    g = lambda a, b: (gnp.remainder(a, b) * 1.0, gnp.sign(-a * 0.0) * 1.0)  # noqa: E731
    for got, want in zip(gpuad.jit(g)(a, b), g(cupy.asnumpy(a), cupy.asnumpy(b))):
        assert np.signbit(cupy.asnumpy(got)).tolist() == np.signbit(want).tolist()


def test_a_region_read_past_31_bit_offsets_runs_its_64_bit_kernel(cupy_backend):
    """The 32-bit index variant serves where offsets fit (gpuad/kernels/index32.py); a view read
    2^31 items apart takes the 64-bit kernel, built at that first call, and both give the values."""
    from gpuad.compiler.replay import Replay
    from gpuad.kernels import index32
    if cupy.cuda.runtime.memGetInfo()[0] < 12 << 30:
        pytest.skip("needs 9 GiB of free device memory")
    buffer = cupy.zeros(2 ** 31 + 1, cupy.float32)  # 8 GiB: its first and last items are read
    buffer[0], buffer[-1] = 0.5, 1.5
    far = buffer[::2 ** 31]
    near = cupy.asarray([0.5, 1.5], cupy.float32)
    f = lambda x: gnp.sin(x) * 2.0 + x * x  # noqa: E731
    replay = Replay(gpuad.jit(f).lower(near).program)
    assert replay.regions == 1 and index32.farthest([far], [[0]]) >= index32.LIMIT
    want = f(np.array([0.5, 1.5], np.float32))
    for x in (near, far, near):
        assert_close(cupy.asnumpy(replay.run(x)[0]), want, rtol=1e-6)
    del buffer, far


# Last: CuPy compiles each of these kernels at its first use, so a run with a deadline may cut them short.
@pytest.mark.parametrize("row,mode,variant,dtype", KERNELS, ids=IDS)
def test_fused_kernel_matches_the_numpy_path(cupy_backend, row, mode, variant, dtype):
    from gpuad.kernels import launch
    rng = np.random.default_rng(0)
    for plain_shape in PLAIN_SHAPES if "a" in variant else [None]:
        params = call_arguments(row, mode, variant, dtype, plain_shape, rng)
        fused = (launch.jvp if mode == "jvp" else launch.vjp)(row, *_on_device(params))
        assert fused is not None, "the call fell back to the generic rule"
        generic = GENERIC[mode](row, *params)
        for got, want in zip(fused, generic):
            assert (got is None) == (want is None)
            if got is not None:
                assert_kernel_close(cupy_backend.to_numpy(got), want, dtype)
