"""The test harness's own switches (tests/conftest.py), run on a small test file of their own."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent


def _pytest(tmp_path, source, **env):
    (tmp_path / "test_probe.py").write_text(source)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(TESTS.parent)]), **env)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(tmp_path / "test_probe.py")],
                          capture_output=True, text=True, env=env, cwd=tmp_path)


@pytest.mark.slow  # a pytest process of its own
def test_a_test_past_gpuad_test_timeout_fails_and_the_next_runs(tmp_path):
    run = _pytest(tmp_path, "import time\ndef test_slow():\n    time.sleep(5)\ndef test_next():\n    pass\n",
                  GPUAD_TEST_TIMEOUT="0.5")
    assert run.returncode == 1 and "the test ran past 0.5 s" in run.stdout and "1 failed, 1 passed" in run.stdout


@pytest.mark.slow
def test_a_cupy_run_without_a_gpu_fails_where_a_gpu_is_promised(tmp_path):
    from gpuad import backends
    if backends.cupy_usable():
        pytest.skip("the run would go ahead on the GPU")
    source = "def test_any():\n    pass\n"
    assert _pytest(tmp_path, source, GPUAD_BACKEND="cupy").returncode == 0
    run = _pytest(tmp_path, source, GPUAD_BACKEND="cupy", GPUAD_REQUIRE_GPU="1")
    assert run.returncode == 1 and "no test run" in run.stdout + run.stderr
