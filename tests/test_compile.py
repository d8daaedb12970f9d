"""When kernels are built: ahead of time (jit(f).lower(*args).compile()), or in the background
while a new program's first calls run unfused (GPUAD_COMPILE=async, the default), switching to the
kernels once they are ready; GPUAD_COMPILE=sync waits (the rest of the suite runs so)."""
import threading

import numpy as np
import pytest
from helpers import assert_close

import gpuad
import gpuad.numpy as gnp
from gpuad import backends
from gpuad.compiler import codegen, host, replay


def _f(x):
    return gpuad.jacfwd(lambda y: gnp.sin(y) * gnp.exp(y[::-1]) + y ** 2)(x)


@pytest.fixture
def numpy_only():
    if gpuad.backend() != "numpy":
        pytest.skip("the C++ compiler builds the fused kernels of the NumPy backend")


def test_compile_builds_every_kernel_ahead_of_the_first_call(monkeypatch, tmp_path, numpy_only):
    monkeypatch.setenv("GPUAD_CACHE_DIR", str(tmp_path))  # nothing cached: the compiler runs now
    x = np.linspace(0.1, 1.0, 5)
    f = gpuad.jit(_f)
    compiled = f.lower(x).compile()
    assert compiled.kernels and host.cached(compiled.kernels)
    text = compiled.as_text()
    assert all(f'extern "C" int {k.name}_objects(' in text for k in compiled.kernels)
    calls = []
    monkeypatch.setattr(host, "_build", lambda *a: calls.append(a))  # a call builds nothing more
    assert_close(compiled(x), _f(x), rtol=1e-14)
    assert_close(f(x), _f(x), rtol=1e-14)
    assert not calls


def test_compile_for_cuda_without_a_gpu_runs_nvrtc():
    from gpuad.kernels import nvrtc
    try:
        nvrtc.version()
    except Exception:
        pytest.skip("NVRTC does not load here")
    x = gpuad.ShapeDtypeStruct((5,), "float32")
    compiled = gpuad.jit(_f).lower(x, backend="cupy").compile()
    assert compiled.kernels and all(f"__global__ void {k.name}(" in compiled.as_text() for k in compiled.kernels)
    if gpuad.backend() != "cupy":
        with pytest.raises(ValueError, match="compiled for the cupy backend"):
            compiled(np.ones(5, np.float32))


def test_compiling_for_cuda_leaves_the_active_backend_alone(monkeypatch, numpy_only):
    """lower(backend="cupy").compile() in a NumPy session plans and renders for CUDA from its target:
    while it renders, this thread and another see the active NumPy backend, not one planning for CuPy."""
    from gpuad.kernels import nvrtc
    try:
        nvrtc.version()
    except Exception:
        pytest.skip("NVRTC does not load here")
    active, seen, render = backends.current(), {}, codegen.render

    def watched(region, kernel):
        if not seen:
            other = threading.Thread(target=lambda: seen.setdefault("other", backends.current()))
            other.start()
            other.join()
            seen["here"] = backends.current()
        return render(region, kernel)
    monkeypatch.setattr(codegen, "render", watched)
    compiled = gpuad.jit(_f).lower(gpuad.ShapeDtypeStruct((5,), "float32"), backend="cupy").compile()
    assert seen["here"] is active and seen["other"] is active
    assert compiled.kernels and all(f"__global__ void {k.name}(" in compiled.as_text() for k in compiled.kernels)
    assert backends.current() is active


def test_planning_for_an_unknown_target_is_refused():
    program = gpuad.jit(_f).lower(np.ones(3)).program
    with pytest.raises(ValueError, match="unknown backend 'cuda' to plan for: choose one of numpy, cupy"):
        replay.plan(program, target="cuda")


def test_a_first_call_runs_unfused_while_its_kernels_build(monkeypatch, tmp_path, numpy_only):
    """The build is held until the first calls are done: they run the unfused replay, correctly;
    once the kernels are built, calls run them, from several threads at once too."""
    monkeypatch.setenv("GPUAD_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GPUAD_COMPILE", "async")
    release, library = threading.Event(), host.library

    def held(kernels):
        release.wait(60)
        return library(kernels)
    monkeypatch.setattr(host, "library", held)
    x = np.linspace(0.1, 1.0, 7)
    f = gpuad.jit(_f)
    for _ in range(2):
        assert_close(f(x), _f(x), rtol=1e-14)
    replay = next(iter(f._cache.values())).replay()  # the one program traced
    assert replay.regions == 0 and not replay.ready.done()
    release.set()
    replay.ready.result(60)
    assert replay.regions > 0
    results = [None] * 4

    def call(k):
        results[k] = f(x * (k + 1))
    threads = [threading.Thread(target=call, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, r in enumerate(results):
        assert_close(r, _f(x * (k + 1)), rtol=1e-14)


def test_an_unknown_compile_mode_is_refused(monkeypatch):
    monkeypatch.setenv("GPUAD_COMPILE", "later")
    with pytest.raises(ValueError, match="GPUAD_COMPILE='later'"):
        gpuad.jit(_f)(np.ones(3))


def test_a_background_build_that_fails_says_so(monkeypatch, tmp_path, numpy_only):
    """An error in the background build (not a refused region, which runs unfused alone) leaves the
    program unfused with a warning, instead of vanishing in a future nobody reads."""
    monkeypatch.setenv("GPUAD_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GPUAD_COMPILE", "async")

    def broken(kernels):
        raise ValueError("GPUAD_COMPILE_TIMEOUT='soon' is not a number of seconds")
    monkeypatch.setattr(host, "library", broken)
    x = np.linspace(0.1, 1.0, 11)  # a shape no other test builds: its library is not loaded already
    f = gpuad.jit(_f)
    with pytest.warns(RuntimeWarning, match="in the background failed .*not a number of seconds"):
        assert_close(f(x), _f(x), rtol=1e-14)
        replay = next(iter(f._cache.values())).replay()
        said = threading.Event()
        replay.ready.add_done_callback(lambda build: said.set())  # runs after the replay's own callback
        with pytest.raises(ValueError):
            replay.ready.result(60)
        assert said.wait(60)
    assert replay.regions == 0
    assert_close(f(x), _f(x), rtol=1e-14)
