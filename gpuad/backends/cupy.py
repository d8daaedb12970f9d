"""The CuPy backend: the NumPy backend's code on CuPy arrays, plus the fused kernels.

Everything stays on the device during a sweep: nothing here copies to the host or waits for
the GPU except `to_numpy` and `block_until_ready`, which users call on results.
"""
import cupy

from ..kernels import launch
from .numpy import NumpyBackend


class CupyBackend(NumpyBackend):
    name = "cupy"
    xp = cupy
    batch_innermost = False  # GPU threads read batch-first arrays coalesced
    auto_sweep_bytes = None  # the device's memory is there for the sweeps: fill it
    auto_chunk_bytes = None  # a GPU's chunks are made large to amortise its launches

    def to_numpy(self, x):
        return cupy.asnumpy(x)

    def block_until_ready(self, tree):
        cupy.cuda.get_current_stream().synchronize()
        return tree

    def fused_jvp(self, row, primals, tangents):
        return launch.jvp(row, primals, tangents)

    def fused_vjp(self, row, args, y, ct, needed):
        return launch.vjp(row, args, y, ct, needed)

    def free_memory(self):
        """Bytes a sweep may still allocate: free device memory plus what CuPy's pool holds
        unused, within the pool's limit if the user set one."""
        pool = cupy.get_default_memory_pool()
        free = cupy.cuda.runtime.memGetInfo()[0] + pool.free_bytes()
        limit = pool.get_limit()
        return min(free, limit - pool.used_bytes()) if limit else free
