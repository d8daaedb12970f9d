"""pytest setup for the whole repository: where pytest-benchmark is not installed (or is turned
off with -p no:benchmark), its options are accepted as no-ops and its `benchmark` fixture just
calls the function, so `pytest tests bench` runs everywhere and the benchmarks' results are
still asserted; nothing is timed."""
import pytest

OPTIONS = ("--benchmark-disable", "--benchmark-enable", "--benchmark-only")


def pytest_addoption(parser, pluginmanager):
    if not pluginmanager.has_plugin("benchmark"):
        group = parser.getgroup("benchmark", "pytest-benchmark is not installed: these do nothing")
        for option in OPTIONS:
            group.addoption(option, action="store_true")


def pytest_configure(config):
    if not config.pluginmanager.has_plugin("benchmark"):
        config.pluginmanager.register(_Untimed(), "benchmark-untimed")


class _Once:
    def __call__(self, fn, *args, **kwargs):
        return fn(*args, **kwargs)

    def pedantic(self, fn, args=(), kwargs=None, **_):
        return fn(*args, **(kwargs or {}))


class _Untimed:
    @pytest.fixture
    def benchmark(self):
        return _Once()
