"""The NumPy backend: the reference implementation, and the CPU product.

A backend holds array operations only: the array module, conversions, waiting and memory.
The fused hooks let a backend run an elementwise JVP/VJP as one kernel; this one has none,
so the rule table's generic rules run (gpuad/ops/elementwise.py). The CuPy backend subclasses
it, swapping the array module and filling the hooks.
"""
import numpy


class NumpyBackend:
    name = "numpy"
    xp = numpy
    batch_innermost = True  # vmap of many small examples: see ops/elementwise.py

    def __init__(self):
        self._array_types = (self.xp.ndarray, self.xp.generic)

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

    # ------------------------------------------------------------------ fused hooks
    def fused_jvp(self, row, primals, tangents):
        """(y, tangent bundle) of one elementwise op in one kernel, or None: no kernel applies."""
        return None

    def fused_vjp(self, row, args, y, ct, needed):
        """The cotangent bundles of one elementwise op in one kernel, or None."""
        return None
