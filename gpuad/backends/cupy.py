"""The CuPy backend: the NumPy backend's code on CuPy arrays, plus the fused kernels.

Everything stays on the device during a sweep: nothing here copies to the host or waits for
the GPU except `to_numpy` and `block_until_ready`, which users call on results.
`index_add` needs no override: cupy.add.at is CuPy's atomic scatter-add (cupyx.scatter_add).
"""
import cupy

from ..kernels import launch
from .numpy import NumpyBackend


class CupyBackend(NumpyBackend):
    name = "cupy"
    xp = cupy
    batch_innermost = False  # GPU threads read batch-first arrays coalesced

    def to_numpy(self, x):
        return cupy.asnumpy(x)

    def block_until_ready(self, tree):
        cupy.cuda.get_current_stream().synchronize()
        return tree

    def ew_jvp(self, row, primals, tangents):
        """One fused launch for the primal and all K tangents when the kernels apply."""
        out = launch.jvp(row, primals, tangents)
        return out if out is not None else super().ew_jvp(row, primals, tangents)

    def ew_vjp(self, row, args, y, ct, needed):
        """One fused launch for the cotangents of every needed argument when the kernels apply."""
        out = launch.vjp(row, args, y, ct, needed)
        return out if out is not None else super().ew_vjp(row, args, y, ct, needed)

    def free_memory(self):
        """Bytes a sweep may still allocate: free device memory plus what CuPy's pool holds
        unused, within the pool's limit if the user set one."""
        pool = cupy.get_default_memory_pool()
        free = cupy.cuda.runtime.memGetInfo()[0] + pool.free_bytes()
        limit = pool.get_limit()
        return min(free, limit - pool.used_bytes()) if limit else free
