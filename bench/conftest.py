"""Lets `pytest bench/` run where pytest-benchmark is not installed: the suite's `benchmark`
fixture then just calls the function (correctness is still asserted; nothing is timed)."""
import importlib.util

import pytest

if importlib.util.find_spec("pytest_benchmark") is None:
    class _Once:
        def __call__(self, fn, *args, **kwargs):
            return fn(*args, **kwargs)

        def pedantic(self, fn, args=(), kwargs=None, **_):
            return fn(*args, **(kwargs or {}))

    @pytest.fixture
    def benchmark():
        return _Once()
