"""The 32-bit index variant of the fusion regions' CUDA kernels (gpuad/kernels/index32.py): run
as C++ on the CPU (one thread walking the grid-stride loop), it gives the 64-bit kernel's results
bit for bit, on inputs read through strides; NVRTC compiles it; and it is chosen only where every
index fits."""
import re

import numpy as np
import pytest
from host_kernels import run_region_on_host

import gpuad
import gpuad.numpy as gnp
from gpuad.compiler.ir import Var
from gpuad.kernels import index32, programs
from gpuad.kernels.nvrtc import CompileError, compile_ptx, version

_W = np.linspace(0.5, 1.5, 40 * 24).reshape(40, 24)
_IDX = np.array([3, -1, 7, 0, 22, -5])


def _stencil(x):
    return x[1:-1] ** 2 * gnp.sin(x[:-2]) + gnp.exp(-x[2:])


PROGRAMS = {
    "a stencil's Jacobian (clamped reads, eye)": (gpuad.jacfwd(_stencil), np.linspace(0.1, 1.0, 40)),
    "a sum over a transposed reshape": (lambda a: (gnp.tanh(a.T.reshape(6, 4, 40)) * 2.0).sum(axis=(1, 2)), _W),
    "a gather and a concatenation": (lambda a: gnp.concatenate([gnp.cos(a[:, _IDX]), a[:, :3] * 3.0], axis=1), _W),
}


def _inputs(kernel, rng):
    """Random arrays for a region's inputs (its constants as they are), each read through a
    non-unit stride: every other element of a buffer twice as long along its first axis."""
    out = []
    for a in kernel.arrays:
        if not isinstance(a, Var):
            out.append(np.asarray(a.val))
            continue
        shape = (2 * a.shape[0],) + a.shape[1:] if a.shape else ()
        values = rng.integers(-3, 8, shape) if a.dtype.kind == "i" else rng.uniform(0.5, 1.5, shape)
        out.append(values.astype(a.dtype)[::2] if a.shape else values.astype(a.dtype))
    return out


@pytest.mark.parametrize("name", PROGRAMS)
def test_the_32_bit_variant_gives_the_64_bit_results(name, tmp_path):
    fun, x = PROGRAMS[name]
    kernels = programs.region_kernels(fun, x, target="cuda")
    assert kernels and all(index32.applies(k) for k in kernels)
    rng = np.random.default_rng(0)
    for k in kernels:
        arrays = _inputs(k, rng)
        assert index32.farthest(arrays, k.axes) < index32.LIMIT
        wide = run_region_on_host(tmp_path, k.text, k.name, k, arrays)
        narrow = run_region_on_host(tmp_path, *index32.first(k), k, arrays, np.int32)
        for a, b in zip(wide, narrow):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", PROGRAMS)
def test_the_32_bit_variant_holds_no_64_bit_index_and_compiles(name):
    fun, x = PROGRAMS[name]
    for k in programs.region_kernels(fun, x, target="cuda"):
        text, entry = index32.first(k)
        kernel = text[text.index(f'void {entry}('):]
        assert not re.search(r"\d+LL\b", kernel), "a 64-bit literal makes its expression 64-bit"
        assert not re.findall(r"long long(?!\*| T;| t\d)", kernel)  # only values' types and pointers
        try:
            version()
        except Exception:
            continue
        try:
            compile_ptx(text, entry, "sm_90")
        except CompileError as e:
            pytest.fail(str(e)[:3000])


def test_the_64_bit_kernel_serves_extents_or_offsets_past_31_bits():
    big = programs.region_kernels(lambda x: gnp.sin(x) * 2.0,
                                  gpuad.ShapeDtypeStruct((2 ** 31 + 8,), "float32"), target="cuda")
    assert [index32.applies(k) for k in big] == [False]
    assert index32.first(big[0]) == (big[0].text, big[0].name)
    small = programs.region_kernels(lambda x: gnp.sin(x) * 2.0, np.ones(9), target="cuda")[0]
    far = np.lib.stride_tricks.as_strided(np.zeros(1), shape=(9,), strides=(2 ** 28 * 8,))  # never read
    assert index32.farthest([far], small.axes) == 8 * 2 ** 28 >= index32.LIMIT
    assert index32.farthest([far[::-1]], small.axes) == 8 * 2 ** 28  # a negative stride reads as far
