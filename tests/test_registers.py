"""The unrolling of a CUDA region kernel's trailing axes bounded by a register estimate
(gpuad/compiler/registers.py): a per-sample Jacobian's region unrolled 16 times took 255
registers and spilled; bounded, it unrolls less on the GPU (the CPU's build keeps its unrolling),
fits its registers, and its CUDA source, built as C++, still computes the Jacobians."""
import numpy as np
import pytest
from host_kernels import run_region_on_host

import gpuad
import gpuad.numpy as gnp
from gpuad.compiler import registers
from gpuad.compiler.ir import Var
from gpuad.kernels import programs
from gpuad.kernels.cubin import measure
from gpuad.kernels.nvrtc import compile_ptx, version


def _f(x):
    y = x
    for _ in range(4):
        y = gnp.sin(y * 1.1 + gnp.roll(y, 1)) * gnp.cos(y)
    return y


_X = np.linspace(0.1, 1.0, 64 * 4).reshape(64, 4)
_JAC = gpuad.vmap(gpuad.jacfwd(_f))


def _largest(kernels):
    return max(kernels, key=lambda k: len(k.shape))


def test_the_gpu_unrolls_less_than_the_cpu_where_registers_would_not_hold_the_copies():
    cuda = _largest(programs.region_kernels(_JAC, _X, target="cuda"))
    host = _largest(programs.region_kernels(_JAC, _X, target="host"))
    assert cuda.shape == host.shape == (64, 4, 4)
    assert host.size == 64 and cuda.size > 64


def test_the_bounded_kernels_compute_the_jacobians(tmp_path):
    values, kernels = {}, programs.region_kernels(_JAC, _X, target="cuda")
    for k in kernels:  # in program order; the program's input is x
        arrays = [values.get(a, _X) if isinstance(a, Var) else np.asarray(a.val) for a in k.arrays]
        values.update(zip(k.outs, run_region_on_host(tmp_path, k.text, k.name, k, arrays)))
    got = values[_largest(kernels).outs[0]]  # the tangents direction-first: the program's transpose follows
    np.testing.assert_allclose(got.swapaxes(1, 2), np.asarray(_JAC(gnp.asarray(_X))), rtol=1e-13)


def test_bounded_the_kernel_fits_its_registers(monkeypatch):
    try:
        version()
    except Exception:
        pytest.skip("NVRTC cannot be loaded")

    def regs():
        k = _largest(programs.region_kernels(_JAC, _X, target="cuda"))
        return measure(compile_ptx(k.text, k.name, "sm_90"), k.name)[1]
    bounded = regs()
    monkeypatch.setattr(registers, "BUDGET", 10 ** 9)
    assert bounded < 128 <= regs()
