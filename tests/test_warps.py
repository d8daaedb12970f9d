"""Fused sums with few outputs split over a warp's lanes (gpuad/compiler/warps.py): the CUDA
region kernel, built as C++ with a warp of 32 threads standing in for the GPU's, and the CPU's
own build of the region both give NumPy's sums; NVRTC compiles the kernel, in both index widths."""
import numpy as np
import pytest
from host_kernels import run_region_on_host

import gpuad
import gpuad.numpy as gnp
from gpuad.compiler import warps
from gpuad.kernels import index32, programs
from gpuad.kernels.nvrtc import CompileError, compile_ptx, version

_A = np.random.default_rng(1).uniform(-1, 1, (300, 4096)).T  # (4096, 300), read through its strides


def _sums(a):
    return gnp.exp(gnp.sin(a).sum(axis=1) * 0.1) + (a * a).sum(axis=1), (a[:, :40] * 3.0).sum(axis=1)


def _expected(a):
    return np.exp(np.sin(a).sum(axis=1) * 0.1) + (a * a).sum(axis=1), (a[:, :40] * 3.0).sum(axis=1)


def test_a_sum_with_few_outputs_runs_a_warp_per_output_and_gives_numpys_values(tmp_path):
    kernels = programs.region_kernels(_sums, _A, target="cuda")
    split = [k for k in kernels if k.lanes == warps.LANES]
    assert split and all("gpuad_warp_sum(" in k.text for k in split)
    for k in split:
        assert k.arrays[0].shape == _A.shape
        for text, name, index in ((k.text, k.name, np.int64), (*index32.first(k), np.int32)):
            got = run_region_on_host(tmp_path, text, name, k, [_A], index)
            assert len(got) == 2  # both sums, in order, from the one region
            for g, w in zip(got, _expected(_A)):
                np.testing.assert_allclose(g, w, rtol=1e-12)


def test_the_cpu_build_of_the_same_program_gives_numpys_values():
    if gpuad.backend() != "numpy":
        pytest.skip("the C++ compiler builds the fused kernels of the NumPy backend only")
    for g, w in zip(gpuad.jit(_sums)(gnp.asarray(_A)), _expected(_A)):
        np.testing.assert_allclose(np.asarray(g), w, rtol=1e-12)


def test_the_split_kernel_compiles_with_nvrtc():
    try:
        version()
    except Exception:
        pytest.skip("NVRTC cannot be loaded")
    for k in programs.region_kernels(_sums, _A, target="cuda"):
        for text, name in ((k.text, k.name), index32.first(k)):
            try:
                compile_ptx(text, name, "sm_90")
            except CompileError as e:
                pytest.fail(str(e)[:3000])


def test_many_outputs_or_short_sums_keep_a_thread_per_output():
    def rows(shape):
        return programs.region_kernels(lambda a: gnp.sin(a).sum(axis=1), gpuad.ShapeDtypeStruct(shape, "float64"),
                                       target="cuda")
    assert [k.lanes for k in rows((2 ** 18, 200)) + rows((4096, 100))] == [1, 1]
