"""The NumPy backend: the reference implementation, and the CPU product.

Everything array-specific the core needs lives in this class; the CuPy backend
subclasses it and swaps the array module and the elementwise fast paths.
"""
import numpy

from ..ops.elementwise import Ops, cotangents_in, tangent_out
from ..ops.contract import contract


class NumpyBackend:
    name = "numpy"
    xp = numpy
    batch_innermost = True  # vmap of many small examples: see ops/elementwise.py

    def __init__(self):
        xp = self.xp
        self.ops = Ops(dict(vars(xp)), xp.multiply, xp.add, xp.negative, xp.reshape, xp.broadcast_to)
        self._array_types = (xp.ndarray, xp.generic)

    # ------------------------------------------------------------------ conversion
    def coerce(self, x):
        """Pass Python scalars and this backend's arrays through; convert anything else."""
        if isinstance(x, (float, int, complex, bool)) or isinstance(x, self._array_types):
            return x
        return self.xp.asarray(x)

    def asarray(self, x, dtype=None):
        return self.xp.asarray(x, dtype=dtype)

    def to_numpy(self, x):
        return numpy.asarray(x)

    def is_array(self, x):
        return isinstance(x, self._array_types)

    def block_until_ready(self, tree):
        return tree

    def free_memory(self):
        """Bytes a sweep may still allocate on the device; None: host memory, no fixed bound."""
        return None

    # ------------------------------------------------------------------ kernels
    def ew_jvp(self, row, primals, tangents):
        """Primal and tangent bundle of one elementwise op on backend arrays."""
        y = self.xp.asarray(self.ops.fn(row)(*primals))  # 0-d results stay arrays
        return y, tangent_out(row, primals, tangents, y, self.ops)

    def ew_vjp(self, row, args, y, ct, needed):
        return cotangents_in(row, args, y, ct, needed, self.ops)

    def contract(self, a, b, spec):
        return contract(self.xp, a, b, spec)

    def index_add(self, base, idx, v):
        """A copy of base with v added at idx."""
        return self._add_at(base.copy(), idx, v)

    def scatter(self, v, shape, idx):
        """Zeros of `shape` with v added at idx."""
        return self._add_at(self.xp.zeros(shape, dtype=v.dtype), idx, v)

    def _add_at(self, out, idx, v):
        if any(isinstance(i, self._array_types) for i in idx):
            self.xp.add.at(out, idx, v)  # repeated integer indices must add up
        else:
            out[idx] += v  # slices and ints never repeat: plain in-place add is far faster
        return out
