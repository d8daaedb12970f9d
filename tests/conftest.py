"""Shared pytest setup: GPU tests skip cleanly where CuPy sees no usable GPU.

Tests marked `gpu` need one. With GPUAD_BACKEND=cupy the whole suite runs on CuPy, so without
a GPU the session ends at once, successfully, with a message, instead of failing at the first
backend call. GPUAD_TEST_DEADLINE (seconds since the epoch) skips the tests not started by then,
so that a run with a time limit (bench/gpu_check.sh) ends by itself and still lists its failures.
"""
import os
import time

import pytest

# A compiled function's first call waits for its kernels, so that every test of a compiled function
# runs them (tests/test_compile.py checks the default, kernels built in the background).
os.environ.setdefault("GPUAD_COMPILE", "sync")

import gpuad
from gpuad import backends


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs CuPy and a usable NVIDIA GPU; skipped otherwise")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    # Before collection: test modules may build arrays at import, which needs the backend.
    if os.environ.get("GPUAD_BACKEND") == "cupy" and not backends.cupy_usable():
        pytest.exit("GPUAD_BACKEND=cupy, but CuPy sees no usable GPU: no test run", returncode=0)


def pytest_collection_modifyitems(config, items):
    marked = [item for item in items if "gpu" in item.keywords]
    if marked and not backends.cupy_usable():
        skip = pytest.mark.skip(reason="no usable GPU: CuPy cannot see a device")
        for item in marked:
            item.add_marker(skip)


_DEADLINE = float(os.environ.get("GPUAD_TEST_DEADLINE", "inf"))


def pytest_runtest_setup(item):
    if time.time() > _DEADLINE:
        pytest.skip("GPUAD_TEST_DEADLINE passed before this test started")


@pytest.fixture
def cupy_backend():
    """The CuPy backend for one test (mark the test `gpu`), then the backend that was active."""
    before = backends.backend()
    gpuad.set_backend("cupy")
    yield backends.current()
    gpuad.set_backend(before)


@pytest.fixture(scope="session")
def host_kernels(tmp_path_factory):
    """Every generated kernel compiled for the CPU (g++), once per test session."""
    from host_kernels import build
    return build(tmp_path_factory.mktemp("host_kernels"))
