"""Compile and launch the fused elementwise kernels and the fusion regions' kernels with CuPy.
Only the CuPy backend imports this.

Every kernel is compiled by gpuad/kernels/nvrtc.py for this GPU's architecture (a program's
regions together, the CUBINs kept in gpuad's kernel cache) and loaded once per process as a
cupy.RawModule: what runs is what `python -m gpuad.kernels --check` compiles.
"""
import functools

import cupy
import numpy

from . import index32, nvrtc
from .plan import jvp_launch, launch_config, vjp_launch
from .source import INDEX_TYPES, every_kernel, kernel_name, render

_built = {}  # kernel name -> cupy.RawKernel, or the CompileError of its source


@functools.cache
def _arch():
    return nvrtc.arch_for(int(cupy.cuda.Device().compute_capability))


def built(sources):
    """[the cupy.RawKernel of each kernel (text, name), or the CompileError of its source]: those not
    built in this process yet compiled together (nvrtc.build)."""
    todo = [(text, name) for text, name in sources if name not in _built]
    modules = {}
    for name, got in (nvrtc.build(todo, _arch()).items() if todo else ()):
        if not isinstance(got, nvrtc.CompileError):
            if got not in modules:
                modules[got] = cupy.RawModule(path=str(got))
            got = modules[got].get_function(name)  # loads the module on this device now
        _built[name] = got
    return [_built[name] for _, name in sources]


_kernels = {}  # (row name, mode, variant, dtype, index) -> cupy.RawKernel: a launch renders nothing


def kernel(row, mode, variant, dtype, index="int64"):
    """The cupy.RawKernel of one kernel variant, built at first request."""
    key = (row.name, mode, variant, dtype, index)
    raw = _kernels.get(key)
    if raw is None:
        raw = _kernels[key] = compiled(render(row, mode, variant, dtype, index),
                                   kernel_name(row, mode, variant, dtype, index))
    return raw


def compiled(text, name):
    """The cupy.RawKernel of kernel `name` in CUDA source `text`, built at first request; raises
    the CompileError of its source."""
    raw, = built([(text, name)])
    if isinstance(raw, Exception):
        raise raw
    return raw


def _run(call):
    if call is None:
        return None
    grid, block = call.grid
    kernel(*call.kernel)(grid, block, tuple(call.args))
    return call.outputs


def jvp(row, primals, tangents):
    """(y, tangent bundle) of one elementwise op in one launch, or None where the kernels do not apply."""
    out = _run(jvp_launch(row, primals, tangents, cupy))
    return None if out is None else tuple(out)


def vjp(row, args, y, ct, needed):
    """One cotangent bundle per argument (None where not needed) in one launch, or None."""
    return _run(vjp_launch(row, args, y, ct, needed, cupy))


def warm():
    """Compile every kernel, each index variant, for the current device now, together, filling the
    kernel cache; returns the count."""
    sources = [(render(*k, index), kernel_name(*k, index)) for k in every_kernel() for index in INDEX_TYPES]
    failed = [e for e in built(sources) if isinstance(e, Exception)]
    if failed:
        raise failed[0]
    return len(sources)


def ready(kernels):
    """Whether these region kernels load without NVRTC: built in this process, or in the kernel cache."""
    todo = [s for s in map(index32.first, kernels) if s[1] not in _built]
    return not todo or nvrtc.cached(todo, _arch())


def region_launchers(kernels):
    """[a function (*arrays) -> outputs running each fusion region's kernel (gpuad/compiler/codegen.py),
    or the CompileError of its source]: the kernels built together, each launched in its 32-bit
    index variant where the arrays' offsets allow (index32.py), else the 64-bit one (built then)."""
    return [raw if isinstance(raw, Exception) else _launcher(k, raw)
            for k, raw in zip(kernels, built([index32.first(k) for k in kernels]))]


def _launcher(kernel, first):
    narrow = index32.applies(kernel)
    (gx, _), block = launch_config(kernel.size * kernel.lanes)  # a warp per element where its sums split
    n = numpy.int64(kernel.size)
    outs = [(v.shape, v.dtype) for v in kernel.outs]
    along = [[d for d, m in enumerate(a.shape) if m != 1] for a in kernel.arrays]  # read along (merged or not)
    unmerged = []  # the launcher of the kernel reading every layout, made at the first call that needs it

    def run(*arrays):
        arrays = [a if a.data.ptr % a.itemsize == 0 and all(s % a.itemsize == 0 for s in a.strides)
                  else cupy.ascontiguousarray(a) for a in arrays]  # a kernel reads whole, aligned items
        if kernel.checks and not all(arrays[j].strides[p] == arrays[j].strides[q] * m for j, p, q, m in kernel.checks):
            if not unmerged:  # strides that do not allow the merged axes (codegen.Kernel.checks)
                apart = kernel.unmerged()
                unmerged.append(_launcher(apart, compiled(*index32.first(apart))))
            return unmerged[0](*arrays)
        small = narrow and index32.farthest(arrays, along) < index32.LIMIT
        index = numpy.int32 if small else numpy.int64
        args = []
        for a, axes in zip(arrays, kernel.axes):
            args.append(a)
            args += [index(a.strides[d] // a.itemsize) for d in axes]
        results = [cupy.empty(s, d) for s, d in outs]
        raw = first if small or not narrow else compiled(kernel.text, kernel.name)
        raw((gx,), block, tuple(args + results + [index(n)]))
        return results
    return run

