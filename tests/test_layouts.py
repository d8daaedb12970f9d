"""Fused CPU kernels read every array layout NumPy makes: other byte orders, structured-array fields,
odd strides, misaligned data. What the kernels' entries cannot read in place they refuse before
reading it (tests below call an entry directly), and the launcher copies it first."""
import ctypes
import functools

import numpy as np
import pytest
from helpers import assert_close
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import as_strided

import gpuad
import gpuad.numpy as gnp
from gpuad.compiler import codegen, host
from gpuad.compiler.fusion import Region, fuse
from gpuad.compiler.replay import Replay

_INDEX = np.array([4, 0, 2, 2, 5, 1], dtype=">i8")  # a big-endian constant index array (read as positions)
_WEIGHTS = np.linspace(0.5, 2.0, 6).astype(">f8")  # a big-endian captured constant


def _fused(fun, *args):
    """fun compiled, after checking its program runs fused kernels on the CPU."""
    compiled = gpuad.jit(fun)
    assert Replay(compiled.lower(*args).program).regions >= 1
    return compiled


def _layout(values, dtype, byte_strides, offset):
    """values laid out as dtype at these strides (bytes, any sign, not necessarily whole items)
    starting `offset` bytes into an aligned buffer of its own."""
    dtype, shape = np.dtype(dtype), values.shape
    low = sum(min(0, s * (n - 1)) for s, n in zip(byte_strides, shape))
    high = sum(max(0, s * (n - 1)) for s, n in zip(byte_strides, shape)) + dtype.itemsize
    buffer = np.zeros(offset + high - low + 8, np.uint8)
    out = np.ndarray(shape, dtype, buffer, offset - low, byte_strides)
    out[...] = values
    return out


def _odd(x):
    return gnp.sin(x) * 2.0 + x * x


_X = np.linspace(-1, 1, 6)
_CASES = {
    "big-endian input": (_odd, _X.astype(">f8")),
    "big-endian constant": (lambda x: gnp.sin(x) * _WEIGHTS + 1.0, _X),
    "big-endian constant index array": (lambda x: gnp.exp(x[_INDEX]) * x, _X),
    "structured field (stride 12)": (_odd, _layout(_X, "<f8", (12,), 0)),
    "as_strided, stride of 1.5 items": (_odd, as_strided(np.arange(40.0), (6,), (12,))),
    "misaligned": (_odd, _layout(_X, "f8", (8,), 4)),
    "float32, big-endian and misaligned": (_odd, _layout(_X, ">f4", (6,), 1)),
}


@pytest.mark.parametrize("case", list(_CASES))
def test_fused_kernels_read_every_layout_as_eager_does(case):
    fun, x = _CASES[case]
    assert_close(_fused(fun, x)(x), fun(gnp.asarray(x)), rtol=1e-6 if x.dtype.itemsize == 4 else 1e-14)


def test_compiled_gradient_of_a_big_endian_input():
    x = _X.astype(">f8")
    g = gpuad.grad(lambda x: gnp.sum(_odd(x)))
    assert_close(_fused(g, x)(x), 2 * np.cos(_X) + 2 * _X, rtol=1e-14)


def _entry(fun, *args):
    """The `_objects` entry of the first fused kernel of fun's program, and its Kernel."""
    program = gpuad.jit(fun).lower(*args).program
    kernel = codegen.render(next(n for n in fuse(program, "numpy") if isinstance(n, Region)), "host")
    entry = getattr(host.library([kernel]), f"{kernel.name}_objects")
    entry.restype, entry.argtypes = ctypes.c_int, [ctypes.py_object] * (len(kernel.arrays) + len(kernel.outs))
    return entry, kernel


@pytest.mark.parametrize("bad", ["list", "subclass", "dtype", "byte order", "misaligned", "output"])
def test_the_entry_refuses_what_it_cannot_read_before_reading_it(bad):
    entry, kernel = _entry(_odd, _X)
    x, out = _X.copy(), np.full(6, -7.0)
    args = {"list": [list(_X), out], "subclass": [np.ma.masked_array(_X), out], "dtype": [_X.astype("f4"), out],
            "byte order": [_X.astype(">f8"), out], "misaligned": [_layout(_X, "f8", (8,), 4), out],
            "output": [x, out.astype(">f8")]}[bad]
    assert entry(*args) == (2 if bad == "output" else 1)
    assert (args[1] == np.full(6, -7.0)).all(), "the entry wrote before it refused"
    assert entry(x, out) == 0
    assert_close(out, _odd(_X), rtol=1e-14)


def _two(x, y):
    return gnp.sin(x) * y[::-1] + gnp.exp(y * 0.5) * x[:, :1]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dtype=st.sampled_from(["f4", "f8"]), orders=st.tuples(*[st.sampled_from("<>")] * 2),
       steps=st.tuples(*[st.sampled_from([1, -1, 2, -3])] * 3), pads=st.tuples(*[st.sampled_from([0, 1, 4])] * 3),
       offsets=st.tuples(*[st.integers(0, 7)] * 2))
def test_random_layouts_compiled_equal_eager(dtype, orders, steps, pads, offsets):
    """x (3, 5) and y (5,): each in a random byte order, at strides of whole items (any sign)
    plus a few bytes, starting at any byte of an aligned buffer."""
    size = np.dtype(dtype).itemsize
    xv = np.linspace(-1, 1, 15).reshape(3, 5)
    yv = np.linspace(0.5, 2, 5)
    column = steps[1] * (size + pads[1])
    x_strides = (steps[0] * (5 * abs(column) + pads[0]), column)  # rows apart: no element shares bytes
    x = _layout(xv, orders[0] + dtype, x_strides, offsets[0])
    y = _layout(yv, orders[1] + dtype, (steps[2] * (size + pads[2]),), offsets[1])
    tol = 1e-6 if dtype == "f4" else 1e-14
    eager = _two(gnp.asarray(xv.astype(dtype)), gnp.asarray(yv.astype(dtype)))
    assert_close(_compiled(x.dtype, y.dtype)(x, y), eager, rtol=tol)


@functools.cache
def _compiled(x_dtype, y_dtype):
    """_two compiled (one trace per signature), checked once to run fused kernels."""
    return _fused(_two, np.ones((3, 5), x_dtype), np.ones(5, y_dtype))
