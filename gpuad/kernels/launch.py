"""Compile and launch the fused elementwise kernels with CuPy. Only the CuPy backend imports this.

Each kernel is a cupy.RawKernel created once per (row, mode, variant, dtype) and kept here;
CuPy compiles it with NVRTC at its first launch on a device and caches the binary on disk.
"""
import cupy
import numpy

from . import index32
from .plan import jvp_launch, launch_config, vjp_launch
from .source import every_kernel, kernel_name, render

_kernels = {}  # (row name, mode, variant, dtype name) -> cupy.RawKernel


def kernel(row, mode, variant, dtype):
    """The cupy.RawKernel of one kernel variant, created at first request."""
    key = (row.name, mode, variant, dtype.name)
    k = _kernels.get(key)
    if k is None:
        k = _kernels[key] = cupy.RawKernel(render(row, mode, variant, dtype),
                                           kernel_name(row, mode, variant, dtype))
    return k


def _run(call):
    if call is None:
        return None
    grid, block = call.grid
    kernel(call.row, call.mode, call.variant, call.dtype)(grid, block, tuple(call.args))
    return call.outputs


def jvp(row, primals, tangents):
    """(y, tangent bundle) of one elementwise op in one launch, or None where the kernels do not apply."""
    out = _run(jvp_launch(row, primals, tangents, cupy))
    return None if out is None else tuple(out)


def vjp(row, args, y, ct, needed):
    """One cotangent bundle per argument (None where not needed) in one launch, or None."""
    return _run(vjp_launch(row, args, y, ct, needed, cupy))


def warm():
    """Compile every kernel for the current device now, filling CuPy's kernel cache; returns the count."""
    kernels = every_kernel()
    for k in kernels:
        kernel(*k).compile()
    return len(kernels)


_regions = {}  # kernel name -> cupy.RawKernel


def _region_kernel(text, name):
    raw = _regions.get(name)
    if raw is None:
        raw = cupy.RawKernel(text, name)
        raw.compile()  # now, so that a kernel that cannot build fails while the replay is planned
        _regions[name] = raw
    return raw


def region_launcher(kernel):
    """A function (*arrays) -> outputs running one fusion region's kernel (gpuad/compiler/codegen.py):
    its 32-bit index variant where the arrays' offsets allow (index32.py), else the 64-bit one."""
    narrow = index32.applies(kernel)
    first = _region_kernel(*index32.first(kernel))
    (gx, _), block = launch_config(kernel.size * kernel.lanes)  # a warp per element where its sums split
    n = numpy.int64(kernel.size)
    outs = [(v.shape, v.dtype) for v in kernel.outs]

    def run(*arrays):
        arrays = [a if a.data.ptr % a.itemsize == 0 and all(s % a.itemsize == 0 for s in a.strides)
                  else cupy.ascontiguousarray(a) for a in arrays]  # a kernel reads whole, aligned items
        small = narrow and index32.farthest(arrays, kernel.axes) < index32.LIMIT
        index = numpy.int32 if small else numpy.int64
        args = []
        for a, along in zip(arrays, kernel.axes):
            args.append(a)
            args += [index(a.strides[d] // a.itemsize) for d in along]
        results = [cupy.empty(s, d) for s, d in outs]
        raw = first if small or not narrow else _region_kernel(kernel.text, kernel.name)
        raw((gx,), block, tuple(args + results + [index(n)]))
        return results
    return run
