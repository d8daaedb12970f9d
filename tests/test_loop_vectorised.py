"""A CPU loop kernel's steps vectorise: GCC vectorised no step loop that loaded a 1-byte bool (a
while loop's condition) beside doubles, so a loop kernel holds its bools as integers as wide as
its numbers (gpuad/compiler/loop_kernel.py). Checked by the compiler's own report (-fopt-info-vec)."""
import re
import subprocess

import numpy as np
import pytest

import gpuad
from gpuad.compiler import host
from gpuad.compiler.codegen import host_sources
from gpuad.kernels import programs


def _unvectorised_steps(kernels, tmp_path):
    """The lines of the `#pragma omp simd` loops GCC reports no vectorisation for."""
    head, bodies = host_sources(kernels, host.OFFSETS)
    (tmp_path / "head.h").write_text(head)
    source = tmp_path / "body.cpp"
    source.write_text('#include "head.h"\n' + "".join(bodies))
    flags = [*host.FLAGS, *host.SIMD, "-fopt-info-vec-optimized"]  # the first build host.py tries
    done = subprocess.run([host.compiler(), *flags, "-c", "-o", str(tmp_path / "body.o"), str(source)],
                          capture_output=True, text=True, check=True)
    lines = source.read_text().splitlines()
    starts = [k + 1 for k, line in enumerate(lines) if line.strip() == "#pragma omp simd"]  # 1-based lines
    assert starts
    vectorised = [int(n) for n in re.findall(r"body\.cpp:(\d+):\d+: optimized: loop vectorized", done.stderr)]
    ends = [next((k + 1 for k in range(start, len(lines)) if lines[k].startswith(("static", "extern"))),
                 len(lines) + 1) for start in starts]  # the step's function: GCC names a line inside the loop
    return [start for start, end in zip(starts, ends) if not any(start < n < end for n in vectorised)]


@pytest.mark.parametrize("name", ["vmap jacfwd", "vmap"])
def test_every_step_of_a_vmapped_while_loops_kernel_vectorises(name, tmp_path):
    if host.compiler() is None or host.OFFSETS is None:
        pytest.skip("no C++ compiler")
    ps = np.stack([np.linspace(0.5, 3.0, 512), np.linspace(2.0, 0.2, 512)], axis=1)
    newton = programs._newton
    f = gpuad.vmap(gpuad.jacfwd(newton)) if name == "vmap jacfwd" else gpuad.vmap(newton)
    kernels = programs.loop_kernels(f, ps, target="host")
    assert [k.schedule for k in kernels] == ["element"]
    assert _unvectorised_steps(kernels, tmp_path) == []
    assert "bool*" not in kernels[0].text  # its condition held as long long beside the doubles


def test_a_float32_loops_steps_vectorise_too(tmp_path):
    if host.compiler() is None or host.OFFSETS is None:
        pytest.skip("no C++ compiler")
    ps = np.stack([np.linspace(0.5, 3.0, 512), np.linspace(2.0, 0.2, 512)], axis=1).astype(np.float32)
    kernels = programs.loop_kernels(gpuad.vmap(programs._newton), ps, target="host")
    assert _unvectorised_steps(kernels, tmp_path) == []
    assert "bool*" not in kernels[0].text
