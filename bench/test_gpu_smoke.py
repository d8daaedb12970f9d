"""The GPU check's smoke script rehearsed on the CPU, as CI can run it: every check that needs no
GPU on the NumPy backend with CuPy's strictness, then NVRTC on every CUDA kernel the checks'
compiled functions would build on CuPy (bench/gpu_smoke.py --backend strict --nvrtc)."""
import subprocess
import sys
from pathlib import Path

import pytest

from . import gpu_smoke

SCRIPT = Path(gpu_smoke.__file__)


@pytest.mark.slow
def test_the_smoke_passes_on_the_cpu_with_strict_arrays_and_its_kernels_compile():
    try:
        from gpuad.kernels.nvrtc import version
        version()
        nvrtc = ["--nvrtc"]
    except Exception:  # CuPy or NVRTC not installed: the checks alone
        nvrtc = []
    done = subprocess.run([sys.executable, str(SCRIPT), "--backend", "strict", *nvrtc], capture_output=True,
                          text=True, timeout=600, cwd=SCRIPT.parent.parent)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and not [s for s in lines if s.startswith("FAIL")], done.stdout[-4000:] + done.stderr
    ran = [s.split()[1] for s in lines if s.startswith("PASS") and not s.startswith("PASS nvrtc")]
    assert ran == [f.__name__ for f, gpu_only, _ in gpu_smoke.CHECKS if not gpu_only]
    if nvrtc:  # every check with compiled functions, those needing a GPU too, has its kernels compiled
        compiled = {s.split()[2].rstrip(":") for s in lines if s.startswith("PASS nvrtc")}
        assert {"while_loop_kernel", "scan_loop_kernel", "no_host_sync_in_a_steady_call"} <= compiled


_CHILD = """import os, sys, time
open(sys.argv[1], "a").write("started\\n")
for name in sys.argv[sys.argv.index("--only") + 1:]:
    print("START", name, flush=True)
    if name.startswith("hang"):
        time.sleep(60)
    if name.startswith("die"):
        os._exit(3)
    print("PASS" if name.startswith("ok") else "FAIL", name, "(0.00 s)", flush=True)
"""


def test_a_failing_hung_or_dead_check_costs_no_other_its_line(tmp_path, capsys):
    """The supervisor starts a fresh child after a failure (a CUDA error spoils the context), kills
    one hung past the limit, and reports a check whose process died; the others run and pass."""
    child, starts = tmp_path / "child.py", tmp_path / "starts"
    child.write_text(_CHILD)
    names = ["ok1", "bad1", "ok2", "hang1", "ok3", "die1", "ok4"]
    assert gpu_smoke.supervised([str(starts)], names, 1.0, script=str(child)) == 3
    lines = capsys.readouterr().out.splitlines()
    assert [s.split()[0] + " " + s.split()[1].rstrip(":") for s in lines] == [
        "PASS ok1", "FAIL bad1", "PASS ok2", "FAIL hang1", "PASS ok3", "FAIL die1", "PASS ok4"]
    assert "no result after 1.0 s" in lines[3] and "died (exit status 3)" in lines[5]
    assert starts.read_text().count("started") == 4  # after bad1, after hang1 (killed), after die1
