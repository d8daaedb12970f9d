"""Which fused kernel an elementwise JVP/VJP call can use, and its argument list.

Pure array bookkeeping over an array module `xp` (CuPy in production, NumPy in the tests that
run the kernels' C source on the host), so every decision here is testable without a GPU.
A call takes the fused path when all arrays share one dtype the row has kernels of (float32,
float64; complex64, complex128 for the holomorphic rows) and every
derivative-bearing argument has the output's full shape; otherwise the plan is None and the
backend runs the generic rule of the elementwise table. Its indices are 32-bit where every one
fits (the bundle has fewer than index32.LIMIT elements, the bound the region kernels use), else
64-bit: a 64-bit index costs the GPU several 32-bit instructions per operation.
"""
import math

import numpy

from .index32 import LIMIT
from .source import MODES, dtypes

BLOCK = 256          # threads per block: a multiple of the warp size, good occupancy on sm_70+
MAX_BLOCKS = 65535   # the kernels loop with a grid stride, so a capped grid still covers any n
FILL_BLOCKS = 2048   # blocks that keep an H100 (132 SMs x 8 resident blocks of 256) busy twice over


class Launch:
    """One fused-kernel call: the kernel (row, mode, variant, dtype, index: "int64" or "int32"),
    the element count n, the arguments in the order of the kernel's parameters, and the arrays it
    fills (None for an unneeded cotangent)."""
    __slots__ = ("row", "mode", "variant", "dtype", "index", "n", "k", "args", "outputs")

    def __init__(self, row, mode, variant, dtype, index, n, k, args, outputs):
        self.row, self.mode, self.variant, self.dtype, self.index = row, mode, variant, dtype, index
        self.n, self.k, self.args, self.outputs = n, k, args, outputs

    @property
    def kernel(self):
        """(row, mode, variant, dtype, index): source.render's and source.kernel_name's arguments."""
        return self.row, self.mode, self.variant, self.dtype, self.index

    @property
    def grid(self):
        return launch_config(self.n, self.k)


def launch_config(n, k=1):
    """(grid, block) for n elements and k directions: one thread per element (x, up to MAX_BLOCKS
    blocks), and as many blocks along y, each taking every gy-th direction, as it takes to reach
    FILL_BLOCKS. A large n gets one block along y: its primal is computed once per element.

    >>> launch_config(1000)
    ((4, 1), (256,))
    >>> launch_config(1000, k=4096)
    ((4, 512), (256,))
    """
    gx = max(1, min(-(-n // BLOCK), MAX_BLOCKS))
    gy = max(1, min(k, FILL_BLOCKS // gx, MAX_BLOCKS))
    return (gx, gy), (BLOCK,)


def jvp_launch(row, primals, tangents, xp):
    """The forward kernel call computing y and its K-direction tangent bundle, or None."""
    dtype = _dtype(row, list(primals) + [t for t in tangents if t is not None], xp)
    if dtype is None:
        return None
    ys = numpy.broadcast_shapes(*(numpy.shape(p) for p in primals))
    k = next(numpy.shape(t)[0] for t in tangents if t is not None)
    n = math.prod(ys)
    full = all(numpy.shape(p) == ys and numpy.shape(t) == (k,) + ys
               for p, t in zip(primals, tangents) if t is not None)
    if not full or n == 0 or k == 0:
        return None
    variant, args, index = "", [], _index(n * k)
    for p, t in zip(primals, tangents):
        if t is None:
            code, more = _plain(p, ys, dtype, index, xp)
        else:
            code, more = "t", [xp.ascontiguousarray(p), xp.ascontiguousarray(t)]
        variant += code
        args += more
    y, dy = xp.empty(ys, dtype), xp.empty((k,) + ys, dtype)
    i = numpy.dtype(index).type
    return Launch(row, "jvp", variant, dtype, index, n, k, args + [y, dy, i(n), i(k)], [y, dy])


def vjp_launch(row, args, y, ct, needed, xp):
    """The reverse kernel call applying the partials to an M-direction cotangent bundle, or None."""
    dtype = _dtype(row, list(args) + [y, ct], xp)
    if dtype is None:
        return None
    ys = numpy.shape(y)
    m, n = numpy.shape(ct)[0], math.prod(ys)
    if numpy.shape(ct) != (m,) + ys or n == 0 or m == 0:
        return None
    variant, params, index = "", [], _index(n * m)
    for a, need in zip(args, needed):
        code, more = _plain(a, ys, dtype, index, xp)
        if need and code == "s":
            return None
        variant += MODES["vjp"][1] if need else code
        params += more
    outputs = [xp.empty((m,) + ys, dtype) if need else None for need in needed]
    params += [xp.ascontiguousarray(y), xp.ascontiguousarray(ct)] + [c for c in outputs if c is not None]
    i = numpy.dtype(index).type
    return Launch(row, "vjp", variant, dtype, index, n, m, params + [i(n), i(m)], outputs)


def _index(elements):
    """The kernel's index type for a bundle of this many elements (each index below it)."""
    return "int32" if elements < LIMIT else "int64"


def _dtype(row, values, xp):
    """The one kernel dtype of these values, or None. Python scalars are weak (NumPy 2 rules:
    float32_array * 2.0 stays float32), so they adopt the arrays' dtype; a complex one only a
    complex dtype's."""
    kinds = {v.dtype for v in values if hasattr(v, "dtype")}
    if len(kinds) != 1:
        return None
    dtype = kinds.pop()
    if dtype.kind != "c" and any(isinstance(v, complex) for v in values):
        return None
    return dtype if dtype in dtypes(row) and any(isinstance(v, xp.ndarray) for v in values) else None


def _plain(p, ys, dtype, index, xp):
    """(code, kernel arguments) of an argument without a derivative in this call: a scalar by
    value, or an array read in place where it is broadcast to the output (`broadcast`)."""
    if not isinstance(p, xp.ndarray):
        return "s", [dtype.type(p)]
    q, r = broadcast(numpy.shape(p), ys)
    if r is None:  # broadcast along axes apart: a copy at the output's shape
        p, q, r = xp.broadcast_to(p, ys), 1, 0
    i = numpy.dtype(index).type
    return "a", [p if r == 1 else xp.ascontiguousarray(p), i(q), i(r)]


def broadcast(shape, ys):
    """(q, r) by which an array of `shape`, C-contiguous, is read at element i of an output of
    shape ys it broadcasts to (gpuad_broadcast in kernels/gpuad_math.cuh): (1, 0) where it has the
    output's shape, (1, 1) for one element, else element i // q % r where its axes longer than 1
    are one run of ys's axes (a bias over the leading axes, a column over the trailing ones) and the
    output has fewer than 2^32 elements (the kernel divides in 32 bits); (1, None) where not (the
    caller copies it).

    >>> broadcast((4,), (3, 4)), broadcast((3, 1), (3, 4)), broadcast((3, 1, 5), (3, 4, 5))
    ((1, 4), (4, 3), (1, None))
    """
    shape = (1,) * (len(ys) - len(shape)) + tuple(shape)
    if shape == tuple(ys):
        return 1, 0
    along = [k for k, d in enumerate(shape) if d != 1]
    if not along:
        return 1, 1
    a, b = along[0], along[-1] + 1
    if any(shape[k] != ys[k] for k in range(a, b)) or math.prod(ys) >= 2 ** 32:
        return 1, None
    return math.prod(ys[b:]), math.prod(ys[a:b])
