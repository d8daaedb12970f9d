"""The CuPy backend: the NumPy backend's code on CuPy arrays, plus the fused kernels.

Everything stays on the device during a sweep: nothing here copies to the host or waits for
the GPU except `to_numpy` and `block_until_ready`, which users call on results (and a compiled
call holding CUDA graphs, made on another stream than the call before it: gpuad/compiler/graphs.py).
"""
import contextlib

import cupy

from ..kernels import launch
from .numpy import DL_CUDA, DL_CUDA_MANAGED, NumpyBackend
from .scipy_functions import scipy_functions


class CupyBackend(NumpyBackend):
    name = "cupy"
    xp = cupy
    batch_innermost = False  # GPU threads read batch-first arrays coalesced
    auto_sweep_bytes = None  # the device's memory is there for the sweeps: fill it
    auto_chunk_bytes = None  # a GPU's chunks are made large to amortise its launches
    reused_bytes = None  # CuPy's memory pool reuses blocks of any size
    # cupy.from_dlpack refuses host memory ("CPU arrays cannot be directly imported")
    dlpack_devices = frozenset({DL_CUDA, DL_CUDA_MANAGED})

    def to_numpy(self, x):
        return cupy.asnumpy(x)

    def block_until_ready(self, tree):
        cupy.cuda.get_current_stream().synchronize()
        return tree

    def fused_jvp(self, row, primals, tangents):
        return launch.jvp(row, primals, tangents)

    def fused_vjp(self, row, args, y, ct, needed):
        return launch.vjp(row, args, y, ct, needed)

    def lu_factor(self, a):
        """(lu, piv) of each matrix of a stack, in one batched call and no read back: CuPy's own
        batched path (cuBLAS getrfBatched; cuSOLVER's getrf matrix by matrix where the matrices
        are large and few), on the transposed stack, as cuBLAS works in column-major order.
        cupyx's lu_factor takes one matrix at a time and reads each one's dev_info back."""
        from cupy.linalg._decomposition import _lu_factor
        lu_t, piv, _ = _lu_factor(a.swapaxes(-1, -2), a.dtype)  # dev_info: not read (NaNs propagate)
        return lu_t.swapaxes(-1, -2), piv - 1

    def solve_triangular(self, a, b, lower, transpose, unit_diagonal):
        """The whole stack in one call of cupyx's solve_triangular (cuBLAS trsm, trsmBatched for a
        stack), without its finiteness check (a reduction read back: a host synchronisation)."""
        solve = scipy_functions(self.xp, "linalg", ("solve_triangular",))["solve_triangular"]
        return solve(a, b, trans=int(transpose), lower=lower, unit_diagonal=unit_diagonal, check_finite=False)

    def current_stream(self):
        return cupy.cuda.get_current_stream()

    def capture_graph(self, run, arrays):
        """run(*arrays) captured as a CUDA graph on buffers like arrays: (launch, the buffers it
        reads, the arrays it writes). Everything the run allocates comes from a memory pool of
        the graph's own, which nothing else allocates from: its addresses stay the graph's as
        long as the graph lives (launch holds the pool). The launch goes on the current stream."""
        pool, stream = cupy.cuda.MemoryPool(), cupy.cuda.Stream(non_blocking=True)
        with cupy.cuda.using_allocator(pool.malloc), stream:
            static_in = [cupy.empty(a.shape, a.dtype) for a in arrays]
            stream.begin_capture()
            try:
                static_out = run(*static_in)
            except Exception:
                with contextlib.suppress(cupy.cuda.runtime.CUDARuntimeError):  # a failure invalidates the
                    stream.end_capture()  # capture; ending it frees the stream, and the first error is the one to tell
                raise
            graph = stream.end_capture()

        def launch():
            graph.launch()
        launch.pool = pool
        return launch, static_in, static_out

    def free_memory(self):
        """Bytes a sweep may still allocate: free device memory plus what CuPy's pool holds
        unused, within the pool's limit if the user set one."""
        pool = cupy.get_default_memory_pool()
        free = cupy.cuda.runtime.memGetInfo()[0] + pool.free_bytes()
        limit = pool.get_limit()
        return min(free, limit - pool.used_bytes()) if limit else free
