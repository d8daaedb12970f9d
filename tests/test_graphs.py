"""CUDA graphs of compiled programs (gpuad/compiler/graphs.py): which runs of steps are captured, and the
replay around a graph (inputs copied in, what leaves the call copied out, the capture at the
second call), checked on the CPU against a stand-in for CuPy's capture with its semantics: a
capture runs nothing, and a launch rewrites the buffers the capture made. tests/test_gpu.py runs
the real capture on a GPU.
"""
import warnings

import numpy as np
import pytest
from helpers import assert_close
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_properties import program_function, programs

import gpuad
import gpuad.numpy as gnp
from gpuad import backends
from gpuad.backends.numpy import NumpyBackend
from gpuad.compiler import graphs
from gpuad.compiler.replay import Replay, peak_bytes, plan


class _Stream:
    def __init__(self, ptr):
        self.ptr, self.waits = ptr, 0

    def synchronize(self):
        self.waits += 1


class GraphsOnNumpy(NumpyBackend):
    """The NumPy backend with CuPy's capture imitated: the captured run executes on buffers of NaN
    (a real capture executes nothing, so whatever a capture leaves is garbage), and each launch
    runs it again on the captured inputs, writing into the captured outputs."""

    def __init__(self, refuse=False):
        super().__init__()
        self.refuse, self.captures, self.launches, self.stream = refuse, 0, 0, _Stream(1)

    def current_stream(self):
        return self.stream

    def capture_graph(self, run, arrays):
        if self.refuse:
            raise RuntimeError("calling cuBLAS API during stream capture is currently unsupported")
        self.captures += 1
        static_in = [np.full(a.shape, np.nan, a.dtype) for a in arrays]
        static_out = run(*static_in)

        def launch():
            self.launches += 1
            for out, new in zip(static_out, run(*static_in)):
                out[...] = new
        return launch, static_in, static_out


def _stencil(x):
    """Twelve layers of a stencil: a region per layer and per adjoint, a long run of kernels."""
    for _ in range(12):
        x = gnp.tanh(x[1:] * 1.01 + x[:-1]) + gnp.concatenate([x[:1], x[1:-1] * 0.5, x[-1:]])[:-1]
    return x


def _inputs(k, n=40):
    return gnp.asarray(np.linspace(-1, 1, n) * (0.5 + 0.25 * k))


@pytest.fixture
def fake(monkeypatch):
    be = GraphsOnNumpy()
    monkeypatch.setattr(backends, "_current", be)
    return be


def test_a_long_run_of_kernels_over_little_data_is_captured_for_cupy():
    """The stencil's Jacobian: 18 region kernels, one graph (one input copied in, one output out);
    the benchmark's problems launch 1-6 kernels between contractions: nothing to gain, no graph."""
    x = _inputs(0)
    lowered = gpuad.jit(gpuad.jacrev(_stencil)).lower(x, backend="cupy")
    assert lowered.launches >= 12 and lowered.graphs == 1
    assert gpuad.jit(gpuad.jacfwd(lambda x: gnp.sin(x) * gnp.cos(x[::-1]))).lower(x, backend="cupy").graphs == 0


@pytest.mark.slow
@pytest.mark.parametrize("transform", [gpuad.jacrev, gpuad.hessian])
def test_a_graph_is_captured_at_the_second_call_and_launched_after(fake, transform):
    f = _stencil if transform is gpuad.jacrev else (lambda x: gnp.sum(_stencil(x) ** 2))
    program = gpuad.jit(transform(f)).lower(_inputs(0)).program
    replay = Replay(program, plan_for="cupy")
    assert replay.graphs == 1
    got = [replay.run(_inputs(k))[0] for k in range(4)]
    assert (fake.captures, fake.launches) == (1, 3)
    for k in range(4):  # each result its own: a later launch did not write into an earlier result
        assert_close(got[k], transform(f)(_inputs(k)), rtol=1e-12, what=f"call {k}")


def test_a_value_read_after_the_graph_is_passed_on_as_it_is(fake):
    """Unfused elementwise steps are captured too; a contraction (cuBLAS, which CuPy cannot capture)
    ends the run and reads the graph's buffer as it is: no copy, as the value never leaves the call."""
    w = np.linspace(-1, 1, 40 * 7).reshape(7, 40)

    def f(x):
        for _ in range(6):
            x = gnp.sin(x) * 0.9 + 0.1
        return gnp.tanh(w @ x)
    program = gpuad.jit(f).lower(_inputs(0)).program
    replay = Replay(program, fusion=False)
    assert [s.node.escaping for s in replay.steps if s.kind == "graph"] == [[False]]
    got = [replay.run(_inputs(k))[0] for k in range(3)]
    assert (fake.captures, fake.launches) == (1, 2)
    for k in range(3):
        assert_close(got[k], f(_inputs(k)), rtol=1e-14, what=f"call {k}")


@pytest.mark.slow
def test_a_run_whose_capture_fails_warns_once_and_runs_step_by_step(monkeypatch):
    be = GraphsOnNumpy(refuse=True)
    monkeypatch.setattr(backends, "_current", be)
    program = gpuad.jit(gpuad.jacrev(_stencil)).lower(_inputs(0)).program
    replay = Replay(program, plan_for="cupy")
    replay.run(_inputs(0))
    with pytest.warns(RuntimeWarning, match="could not be captured as a CUDA graph .*cuBLAS.*step by step"):
        second = replay.run(_inputs(1))[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        third = replay.run(_inputs(2))[0]
    assert_close(second, gpuad.jacrev(_stencil)(_inputs(1)), rtol=1e-12)
    assert_close(third, gpuad.jacrev(_stencil)(_inputs(2)), rtol=1e-12)


@pytest.mark.slow
def test_a_call_on_another_stream_waits_for_the_last_calls_stream(fake):
    """The graph's buffers are shared by every call: a call on a new stream waits for the stream
    of the call before it (same stream: the stream keeps the order, no wait)."""
    program = gpuad.jit(gpuad.jacrev(_stencil)).lower(_inputs(0)).program
    replay = Replay(program, plan_for="cupy")
    first = fake.stream
    for k in range(3):
        replay.run(_inputs(k))
    assert first.waits == 0
    fake.stream = _Stream(2)
    assert_close(replay.run(_inputs(3))[0], gpuad.jacrev(_stencil)(_inputs(3)), rtol=1e-12)
    assert first.waits == 1 and fake.stream.waits == 0


def test_graphs_off_and_the_held_memory_in_the_peak(fake, monkeypatch):
    """GPUAD_GRAPHS=off runs every step from Python; a graph's buffers, held from call to call, are
    part of the memory a call is checked against."""
    program = gpuad.jit(gpuad.jacrev(_stencil)).lower(_inputs(0)).program
    replay = Replay(program, plan_for="cupy")
    steps = plan(program, target="cupy")
    held = [s.node.held for s in replay.steps if s.kind == "graph"]
    assert len(held) == 1 and replay.peak == peak_bytes(program, steps) + held[0] > peak_bytes(program, steps)
    monkeypatch.setenv("GPUAD_GRAPHS", "off")
    assert Replay(program, plan_for="cupy").graphs == 0
    assert graphs.wanted() is False


@pytest.mark.slow
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(programs(), st.sampled_from([gpuad.jacfwd, gpuad.jacrev]), st.booleans())
def test_random_programs_replay_with_graphs_as_they_run_eagerly(fake, program, transform, fused):
    """Random elementwise programs (tests/test_properties.py), their Jacobians compiled unfused (runs
    of CuPy ufuncs) or fused as for CuPy: three calls at different inputs through the stand-in's
    graphs equal the eager Jacobians, whatever runs were captured."""
    steps, xs = program
    f = program_function(steps)
    nums = tuple(range(len(xs)))
    jac = transform(f, argnums=nums)
    lowered = gpuad.jit(jac).lower(*[gnp.asarray(x) for x in xs])
    replay = Replay(lowered.program, fusion=fused, plan_for="cupy")
    for k in range(3):
        args = [gnp.asarray(x * (1.0 - 0.2 * k)) for x in xs]
        got = lowered.out_tree.unflatten(replay.run(*args))
        for a, b in zip(gpuad.tree_leaves(got), gpuad.tree_leaves(jac(*args))):
            assert_close(a, b, rtol=1e-12, atol=1e-12, what=f"call {k}: {steps}")
