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
