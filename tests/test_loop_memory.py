"""What a compiled loop holds while it runs, in the replay's memory plan (replay.peak_bytes asks
each primitive's `temporaries`): the carries a checkpointed backward sweep holds and a loop
kernel's scratch against the bytes NumPy allocates (tracemalloc), and a call that would not fit
refused before it runs, saying what to pass (a subprocess under `ulimit -v` where the real
available memory is probed)."""
import textwrap
import tracemalloc

import numpy as np
import pytest
from test_checkpointing import run_capped
from test_loop_kernel import _scans, integrate

import gpuad
import gpuad.numpy as gnp
from gpuad import backends, lax
from gpuad.compiler import loop_kernel
from gpuad.compiler.target import NUMPY

pytestmark = pytest.mark.skipif(backends.backend() != "numpy", reason="tracemalloc sees host memory only")


def _allocated(f, *args):
    """The most bytes NumPy (and Python) allocate during one call."""
    tracemalloc.start()
    try:
        f(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _loss(w, checkpoint, steps=100):
    return lambda x: gnp.sum(lax.scan(lambda c, _: (gnp.sin(c) * w, None), x, None, length=steps,
                                      checkpoint=checkpoint)[0])


@pytest.mark.parametrize("slots", [None, 5, 40])
def test_the_plan_counts_the_carries_a_checkpointed_sweep_holds(slots):
    """jit(grad) of a 100-step scan holding `slots` carries of 400 kB (revolve_p), or storing
    every one (a scan's stacked output, read back through a slice and a reshape that copy
    nothing): the plan is the bytes the call allocates, within 10%; those are at least the carries."""
    w = gnp.asarray(np.linspace(0.5, 1.5, 50000))
    f = gpuad.jit(gpuad.grad(_loss(w, slots)))
    lowered = f.lower(w)
    lowered.compile()
    f(w)  # buffers a compiled step keeps from call to call are made by the first call
    allocated = _allocated(f, w)
    assert allocated > (slots or 100) * w.nbytes
    assert abs(lowered.peak_bytes - allocated) < 0.1 * allocated, (lowered.peak_bytes, allocated)


def test_the_plan_counts_a_trip_replayed_per_trip():
    """A fori_loop whose body holds a GEMM (no loop kernel renders it) replays the body each trip:
    the trip's carry and the body's buffers (the product, its tanh) are held beside the output."""
    a = gnp.asarray(np.random.default_rng(0).standard_normal((400, 400)) / 40)
    x = np.random.default_rng(1).standard_normal((400, 2000))
    f = gpuad.jit(lambda x: lax.fori_loop(0, 10, lambda i, c: gnp.tanh(a @ c), x))
    lowered = f.lower(x)
    lowered.compile()
    f(x)
    allocated = _allocated(f, x)
    assert allocated > 3 * x.nbytes
    assert abs(lowered.peak_bytes - allocated) < 0.1 * allocated, (lowered.peak_bytes, allocated)


def _per_sample(batch):
    zs = np.random.default_rng(0).uniform(0.1, 1.0, (batch, 4))
    return gpuad.jit(gpuad.vmap(gpuad.jacfwd(lambda z: integrate(z, 20)))), zs


@pytest.mark.slow
def test_the_plan_counts_a_loop_kernels_scratch():
    """A vmap of a per-sample RK4 over 10^5 examples runs as one loop kernel whose scratch (the
    body's values of every example, too large to keep between calls) is allocated by each call."""
    f, zs = _per_sample(10 ** 5)
    lowered = f.lower(zs)
    lowered.compile()
    (spec,) = _scans(f, zs)
    kernel = spec.kernel(NUMPY)
    assert kernel.schedule == "element" and kernel.scratch > loop_kernel._KEPT_BYTES
    allocated = _allocated(f, zs)
    assert allocated > kernel.scratch
    assert abs(lowered.peak_bytes - allocated) < 0.1 * allocated, (lowered.peak_bytes, allocated)


@pytest.mark.slow
def test_a_loop_kernel_that_would_not_fit_is_refused_before_it_runs(monkeypatch):
    f, zs = _per_sample(10 ** 5)
    planned = f.lower(zs).peak_bytes
    monkeypatch.setattr(backends.current(), "free_memory", lambda: planned - 10 ** 6)
    with pytest.raises(MemoryError, match=r"gpuad.jit: a call needs about .* pass chunk_size=.*"
                                          r"run fewer examples through a loop at a time"):
        f(zs)


def test_a_checkpointed_sweep_that_would_not_fit_is_refused_saying_checkpoint(monkeypatch):
    """45 carries of 1.6 MB (72 MB) told 60 MB are free: refused, naming checkpoint=; 5 carries run."""
    w = gnp.asarray(np.linspace(0.5, 1.5, 200000))
    monkeypatch.setattr(backends.current(), "free_memory", lambda: 60 * 10 ** 6)
    with pytest.raises(MemoryError, match="pass checkpoint= to lax.scan"):
        gpuad.jit(gpuad.grad(_loss(w, 45)))(w)
    expected = gpuad.grad(_loss(w, None))(w)
    np.testing.assert_allclose(gpuad.jit(gpuad.grad(_loss(w, 5)))(w), expected, rtol=1e-12)


@pytest.mark.slow
def test_checkpoint_slots_over_the_address_space_are_refused_before_they_are_allocated(tmp_path):
    """Under an address space capped at 1.5 GB, 190 slots of an 8 MB carry (1.5 GB) are refused by
    the plan, before the loop allocates them; 20 slots (160 MB) run, equal to the derivative by hand."""
    script = textwrap.dedent("""
        import numpy as np, gpuad, gpuad.numpy as gnp
        from gpuad import lax
        steps, w = 250, np.linspace(0.5, 1.0, 10 ** 6)
        loss = lambda slots: lambda x: gnp.sum(lax.scan(lambda c, _: (gnp.sin(c) * gnp.asarray(w), None), x,
                                                        None, length=steps, checkpoint=slots)[0])
        try:
            gpuad.jit(gpuad.grad(loss(190)))(gnp.asarray(w))
            raise AssertionError("190 slots fitted: the cap is too high to show anything")
        except MemoryError as e:
            assert "gpuad.jit: a call needs about" in str(e) and "checkpoint=" in str(e), e
        g = np.asarray(gpuad.jit(gpuad.grad(loss(20)))(gnp.asarray(w)))
    """)
    run_capped(script, tmp_path)
