"""The background builds' threads and the kernel library's name: a process ending while a build
runs does not wait for it, and leaves no library in the cache that a later process would load
half-written; a program's C++ source is put together once, to be compiled (its library's name
comes from its kernels' texts, each hashed once)."""
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from helpers import assert_close

import gpuad
import gpuad.numpy as gnp
from gpuad.compiler import host
from gpuad.kernels import builds, cache

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _f(x):
    return gpuad.jacfwd(lambda y: gnp.tanh(y) * gnp.exp(y[::-1]) - y ** 3)(x)


@pytest.fixture
def numpy_only():
    if gpuad.backend() != "numpy":
        pytest.skip("the C++ compiler builds the fused kernels of the NumPy backend")


def _python(code, env=None, timeout=60):
    return subprocess.run([sys.executable, "-c", code], cwd=_ROOT, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def test_a_process_ending_while_a_build_runs_does_not_wait_for_it():
    """A build of two minutes (a sleep) on the build threads: the process still ends at once."""
    t = time.monotonic()
    done = _python("import time\nfrom gpuad.kernels import builds\nbuilds.submit(time.sleep, 120)\n"
                   "builds.each(time.sleep, [0.01, 0.01])\nprint('left')", timeout=90)
    assert done.returncode == 0 and done.stdout.strip() == "left", done.stderr
    assert time.monotonic() - t < 60


def test_each_returns_results_and_caught_errors_in_order_and_raises_the_others():
    def build(k):
        if k == 2:
            raise ValueError("refused")
        if k == 4:
            raise KeyboardInterrupt
        return k * k
    got = builds.each(build, [0, 1, 2, 3])
    assert got[:2] + got[3:] == [0, 1, 9] and isinstance(got[2], ValueError)
    with pytest.raises(KeyboardInterrupt):
        builds.each(build, [3, 4, 5])
    assert builds.submit(build, 3).result(30) == 9
    with pytest.raises(ValueError, match="refused"):
        builds.submit(build, 2).result(30)
    assert all(t.daemon for t in threading.enumerate() if t.name.startswith("gpuad-build"))


@pytest.mark.slow
def test_a_process_ending_during_a_real_build_leaves_no_half_written_library(tmp_path, numpy_only):
    """The process's first call starts the build, and the process ends at once: whatever is in
    the cache then checks out against its recorded hash, and a later build there runs the kernels."""
    code = ("import numpy as np, gpuad, gpuad.numpy as gnp\n"
            "f = lambda x: gpuad.jacfwd(lambda y: gnp.tanh(y) * gnp.exp(y[::-1]) - y ** 3)(x)\n"
            "print(gpuad.jit(f)(np.linspace(0.1, 1.0, 13)).shape)")
    done = _python(code, {"GPUAD_CACHE_DIR": str(tmp_path), "GPUAD_COMPILE": "async"})
    assert done.returncode == 0 and done.stdout.strip() == "(13, 13)", done.stderr
    for library in (tmp_path / "host").glob("gpuad_*.so"):
        assert cache.intact(library), library
    os.environ["GPUAD_CACHE_DIR"] = str(tmp_path)
    try:
        x = np.linspace(0.1, 1.0, 13)
        compiled = gpuad.jit(_f).lower(x).compile()
        assert compiled.kernels and host.cached(compiled.kernels)
        assert_close(compiled(x), _f(x), rtol=1e-14)
    finally:
        del os.environ["GPUAD_CACHE_DIR"]


def test_a_program_s_source_is_put_together_once(monkeypatch, tmp_path, numpy_only):
    """A first call in the background asks whether the library is cached, then loads (builds) it:
    the source is rendered for the build alone; a second program of the same kernels loads the
    library with no source rendered."""
    monkeypatch.setenv("GPUAD_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GPUAD_COMPILE", "async")
    renders, sources = [], host.host_sources

    def counted(kernels, *args):
        if kernels:
            renders.append(len(kernels))
        return sources(kernels, *args)
    monkeypatch.setattr(host, "host_sources", counted)
    x = np.linspace(0.1, 1.0, 17)  # a shape no other test builds
    for expected in (1, 1):
        f = gpuad.jit(_f)
        assert_close(f(x), _f(x), rtol=1e-14)
        replay = next(iter(f._cache.values())).replay()
        if replay.ready is not None:
            replay.ready.result(120)
        assert replay.regions > 0
        assert len(renders) == expected
