"""Shared pytest setup: GPU tests skip cleanly where CuPy sees no usable GPU.

Tests marked `gpu` need one. With GPUAD_BACKEND=cupy the whole suite runs on CuPy, so without
a GPU the session ends at once, successfully, with a message, instead of failing at the first
backend call. GPUAD_TEST_DEADLINE (seconds since the epoch) skips the tests not started by then,
so that a run with a time limit (bench/gpu_check.sh) ends by itself and still lists its failures;
GPUAD_TEST_TIMEOUT (seconds) fails a test that runs longer (checked when it next runs Python code).
--strict-arrays runs the tests on tests/strict_arrays.py's backend.
"""
import os
import signal
import time

import pytest

# A compiled function's first call waits for its kernels, so that every test of a compiled function
# runs them (tests/test_compile.py checks the default, kernels built in the background).
os.environ.setdefault("GPUAD_COMPILE", "sync")

import gpuad
from gpuad import backends


def pytest_addoption(parser):
    parser.addoption("--strict-arrays", action="store_true",
                     help="run on the NumPy backend with CuPy's refusal of NumPy arrays beside backend arrays "
                          "(tests/strict_arrays.py)")


def pytest_configure(config):
    if config.getoption("--strict-arrays"):
        from strict_arrays import install
        config._strict_arrays = pytest.MonkeyPatch()
        install(config._strict_arrays)
    config.addinivalue_line("markers", "gpu: needs CuPy and a usable NVIDIA GPU; skipped otherwise")
    config.addinivalue_line("markers", "slow: takes more than a few seconds (deselect with -m 'not slow')")
    # Before collection: test modules may build arrays at import, which needs the backend.
    if os.environ.get("GPUAD_BACKEND") == "cupy" and not backends.cupy_usable():
        pytest.exit("GPUAD_BACKEND=cupy, but CuPy sees no usable GPU: no test run",  # a failure where a GPU
                    returncode=int(bool(os.environ.get("GPUAD_REQUIRE_GPU"))))      # is promised (gpu_check.sh)


def pytest_collection_modifyitems(config, items):
    for item in items:  # building every kernel for the CPU takes the compiler tens of seconds
        if "host_kernels" in item.fixturenames:
            item.add_marker(pytest.mark.slow)
    marked = [item for item in items if "gpu" in item.keywords]
    if marked and not backends.cupy_usable():
        skip = pytest.mark.skip(reason="no usable GPU: CuPy cannot see a device")
        for item in marked:
            item.add_marker(skip)


_DEADLINE = float(os.environ.get("GPUAD_TEST_DEADLINE", "inf"))


def pytest_runtest_setup(item):
    if time.time() > _DEADLINE:
        pytest.skip("GPUAD_TEST_DEADLINE passed before this test started")


_TIMEOUT = float(os.environ.get("GPUAD_TEST_TIMEOUT", "0"))


def _expire(signum, frame):
    raise TimeoutError(f"GPUAD_TEST_TIMEOUT: the test ran past {_TIMEOUT:g} s")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    if not _TIMEOUT:
        yield
        return
    before = signal.signal(signal.SIGALRM, _expire)
    signal.setitimer(signal.ITIMER_REAL, _TIMEOUT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)


@pytest.fixture
def cupy_backend():
    """The CuPy backend for one test (mark the test `gpu`), then the backend that was active."""
    before = backends.backend()
    gpuad.set_backend("cupy")
    yield backends.current()
    gpuad.set_backend(before)


@pytest.fixture
def strict_arrays(monkeypatch):
    """The NumPy backend with strict arrays (tests/strict_arrays.py) for one test, then the backend
    that was active."""
    from strict_arrays import install
    before = backends.backend()
    install(monkeypatch)
    yield backends.current()
    monkeypatch.undo()
    gpuad.set_backend(before)


@pytest.fixture(scope="session")
def host_kernels(tmp_path_factory):
    """Every generated kernel compiled for the CPU (g++), once per test session."""
    from host_kernels import build
    return build(tmp_path_factory.mktemp("host_kernels"))
