"""The generated CUDA kernels compiled as C++ and run on the CPU, on NumPy arrays.

A few macros stand in for CUDA's qualifiers and a grid of one thread per block; the y-blocks
that split the directions are run one after another. test_kernels.py checks each kernel
against the NumPy path with this; test_kernel_backend.py runs whole transforms through it.
"""
import ctypes
import shutil
import subprocess
import threading

import numpy as np
import pytest

from gpuad.backends.numpy import NumpyBackend
from gpuad.kernels.plan import jvp_launch, vjp_launch
from gpuad.kernels.source import INDEX_TYPES, _read, every_kernel, kernel_name, render

_HOST_SHIM = r"""
#include <cmath>
using namespace std;
#define __global__
#define __device__
#define __forceinline__ inline
struct gpuad_dim3 { unsigned x, y, z; };
static const gpuad_dim3 threadIdx = {0, 0, 0}, blockDim = {1, 1, 1};
static gpuad_dim3 blockIdx = {0, 0, 0}, gridDim = {1, 1, 1};
extern "C" void gpuad_host_grid_y(unsigned blocks, unsigned block) { gridDim.y = blocks; blockIdx.y = block; }
"""
# Once here, outside the kernels' namespaces (its include guard drops their copies): in a namespace
# of its own its exp(complex) would hide the real exp it is computed with.
_HOST_SHIM += _read("gpuad_complex.cuh")


def build(directory):
    """Every generated kernel, in both index variants, built into one shared library (one namespace
    per source)."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is needed to run the kernels' source on the CPU")
    sources = [render(*k, index) for k in every_kernel() for index in INDEX_TYPES]
    code = _HOST_SHIM + "".join(f"namespace k{i} {{\n{text}\n}}\n" for i, text in enumerate(sources))
    (directory / "kernels.cpp").write_text(code)
    subprocess.run(["g++", "-O1", "-shared", "-fPIC", "-o", str(directory / "kernels.so"),
                    str(directory / "kernels.cpp")], check=True, capture_output=True)
    return ctypes.CDLL(str(directory / "kernels.so"))


class _Complex64(ctypes.Structure):
    _fields_ = [("re", ctypes.c_float), ("im", ctypes.c_float)]


class _Complex128(ctypes.Structure):
    _fields_ = [("re", ctypes.c_double), ("im", ctypes.c_double)]


def _c_arg(a):
    if isinstance(a, np.ndarray):
        return ctypes.c_void_p(a.ctypes.data)
    if isinstance(a, np.complexfloating):
        return {np.complex64: _Complex64, np.complex128: _Complex128}[type(a)](a.real, a.imag)
    return {np.float32: ctypes.c_float, np.float64: ctypes.c_double, np.int64: ctypes.c_longlong,
            np.int32: ctypes.c_int}[type(a)](a)


def run_on_host(lib, call, blocks_y=1):
    """Run a kernel as one thread per block, once for each of blocks_y blocks along y."""
    kernel = getattr(lib, kernel_name(*call.kernel))
    for block in range(blocks_y):
        lib.gpuad_host_grid_y(blocks_y, block)
        kernel(*map(_c_arg, call.args))
    lib.gpuad_host_grid_y(1, 0)
    return call.outputs


class HostKernelBackend(NumpyBackend):
    """The NumPy backend with the CuPy backend's fused hooks: the same launch plans, the same
    kernels (run on the CPU), the same fallback to the generic rule where no kernel applies."""

    def __init__(self, lib):
        super().__init__()
        self.lib, self.launches = lib, 0

    def _launch(self, call):
        self.launches += 1
        return run_on_host(self.lib, call, blocks_y=call.grid[0][1])

    def fused_jvp(self, row, primals, tangents):
        call = jvp_launch(row, primals, tangents, np)
        return None if call is None else tuple(self._launch(call))

    def fused_vjp(self, row, args, y, ct, needed):
        call = vjp_launch(row, args, y, ct, needed, np)
        return None if call is None else self._launch(call)


# One warp of 32 lanes, each a thread of its own (running the whole grid-stride loop, as one
# block of 32 threads does), adding partial sums as the shuffles do, in a tree of the same order.
_WARP_SHIM = r"""
#include <barrier>
#include <cmath>
using namespace std;
#define __global__
#define __device__
#define __forceinline__ inline
struct gpuad_dim3 { unsigned x, y, z; };
static thread_local gpuad_dim3 threadIdx = {0, 0, 0};
static const gpuad_dim3 blockDim = {32, 1, 1}, blockIdx = {0, 0, 0}, gridDim = {1, 1, 1};
extern "C" void gpuad_host_lane(unsigned lane) { threadIdx.x = lane; }
static std::barrier<> gpuad_warp(32);
template <typename T> T gpuad_warp_sum(T x) {
    static T lanes[32];
    for (int d = 16; d; d >>= 1) {
        lanes[threadIdx.x] = x;
        gpuad_warp.arrive_and_wait();
        x += lanes[threadIdx.x ^ d];
        gpuad_warp.arrive_and_wait();
    }
    return x;
}
"""


def run_region_on_host(directory, text, name, kernel, arrays, index=np.int64):
    """A fusion region's CUDA kernel (`text` defining `name`: kernel's 64-bit source or its 32-bit
    variant) built by g++ and run on NumPy arrays as one thread, or as one warp of 32 threads
    where its sums are split over the lanes (kernel.lanes); its outputs."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is needed to run the kernels' source on the CPU")
    source, lib = directory / f"{name}.cpp", directory / f"{name}.so"
    source.write_text((_HOST_SHIM if kernel.lanes == 1 else _WARP_SHIM) + text)
    subprocess.run(["g++", "-O1", "-std=c++20", "-pthread", "-shared", "-fPIC", "-o", str(lib), str(source)],
                   check=True, capture_output=True)
    c_index = ctypes.c_int if index == np.int32 else ctypes.c_longlong
    args = []
    for a, along in zip(arrays, kernel.axes):
        args.append(ctypes.c_void_p(a.ctypes.data))
        args += [c_index(a.strides[d] // a.itemsize) for d in along]
    outs = [np.empty(v.shape, v.dtype) for v in kernel.outs]
    loaded = ctypes.CDLL(str(lib))
    args += [ctypes.c_void_p(o.ctypes.data) for o in outs] + [c_index(kernel.size)]
    if kernel.lanes == 1:
        getattr(loaded, name)(*args)
        return outs

    def lane(k):  # ctypes lets go of the GIL during the call: the lanes run together
        loaded.gpuad_host_lane(k)
        getattr(loaded, name)(*args)
    lanes = [threading.Thread(target=lane, args=(k,)) for k in range(kernel.lanes)]
    for t in lanes:
        t.start()
    for t in lanes:
        t.join()
    return outs
