"""The NumPy backend: the reference implementation, and the CPU product.

A backend holds array operations only: the array module, conversions, waiting and memory.
The fused hooks let a backend run an elementwise JVP/VJP as one kernel; this one has none,
so the rule table's generic rules run (gpuad/ops/elementwise.py). The CuPy backend subclasses
it, swapping the array module and filling the hooks.
"""
import ctypes
import os
import resource

import numpy

from .scipy_functions import scipy_functions

# The host allocator (glibc), tuned by keep_freed_memory at the end of this module
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
KEPT_BLOCK = 32 << 20   # glibc's most: larger blocks are always mapped afresh
KEPT_HEAP = 256 << 20  # free heap kept for the next call, not returned to the system (glibc's 2 GiB was no faster)

# DLPack device types (dlpack.h's DLDeviceType) that the memory of an array can be in
DL_CPU, DL_CUDA, DL_CUDA_HOST, DL_CUDA_MANAGED = 1, 2, 3, 13


# Below this order a batched LU of the triangle (NumPy's loop in C) beats scipy's trsm called per
# matrix, whose call costs about 25 us (bench/results/linalg-rules-cpu-2026-12-07-xeon-2core-shared.md).
_TRSM_MIN_N = 32
BLAS = {numpy.dtype(numpy.float32): "s", numpy.dtype(numpy.float64): "d", numpy.dtype(numpy.complex64): "c",
         numpy.dtype(numpy.complex128): "z"}  # the LAPACK and BLAS prefix of each dtype
_TRSM = scipy_functions(numpy, "linalg.blas", tuple(f"{p}trsm" for p in BLAS.values()))


class NumpyBackend:
    name = "numpy"
    xp = numpy
    batch_innermost = True  # vmap of many small examples: see ops/elementwise.py
    # chunk_size="auto" keeps a sweep's estimate under this (the host's memory is everyone's),
    auto_sweep_bytes = 2**31
    # and an eager chunk's near the CPU's cache (half a server's L3): there its bundles pass from
    # one operation to the next without a trip to memory; larger chunks ran slower
    # (docs/performance.md, "Measurements behind design choices").
    auto_chunk_bytes = 16 << 20
    # arrays below this reuse memory an array freed; larger ones are mapped afresh and faulted in
    # page by page (kernel time): gpuad.distributed keeps its blocks' arrays below it
    reused_bytes = KEPT_BLOCK
    capture_graph = None  # a compiled program's steps run one by one: no graphs on the CPU
    # the DLPack devices whose arrays xp.from_dlpack takes in place (numpy's dlpack.c)
    dlpack_devices = frozenset({DL_CPU, DL_CUDA_HOST, DL_CUDA_MANAGED})

    def __init__(self):
        self._array_types = (self.xp.ndarray, self.xp.generic)

    # ------------------------------------------------------------------ conversion
    def coerce(self, x):
        """Pass Python scalars and this backend's arrays through; convert anything else."""
        if isinstance(x, (float, int, complex, bool)) or isinstance(x, self._array_types):
            return x
        return self.asarray(x)

    def asarray(self, x, dtype=None):
        """An array of this backend. Arrays of other libraries that speak DLPack (NumPy, PyTorch,
        JAX, CuPy) are taken without a copy where their memory is one this backend reads in place
        (dlpack_devices); host memory goes through NumPy, with one copy to the device."""
        if hasattr(x, "__dlpack__") and not isinstance(x, self._array_types):
            x = self._from_dlpack(x)
        return self.xp.asarray(x, dtype=dtype)

    def _from_dlpack(self, x):
        device = x.__dlpack_device__()[0] if hasattr(x, "__dlpack_device__") else DL_CPU
        if device in self.dlpack_devices:
            return self.xp.from_dlpack(x)
        if device in (DL_CPU, DL_CUDA_HOST):
            return numpy.from_dlpack(x)  # self.xp.asarray copies it to the device
        raise TypeError(f"an array in DLPack device {device}'s memory cannot be read by the {self.name} "
                        f"backend: copy it to {'the host' if self.name == 'numpy' else 'a CUDA device'} "
                        f"first, or use the {'cupy' if self.name == 'numpy' else 'numpy'} backend")

    def to_numpy(self, x):
        return numpy.asarray(x)

    def is_array(self, x):
        return isinstance(x, self._array_types)

    def block_until_ready(self, tree):
        return tree

    def free_memory(self):
        """Bytes a sweep may still allocate in host memory: the least of what the kernel can give
        without swapping (MemAvailable), the room left under the cgroup's memory limit, and under
        the address-space limit (ulimit -v). None where none of them can be read (not Linux).

        >>> NumpyBackend().free_memory() > 0
        True
        """
        rooms = [r for r in (_mem_available(), _cgroup_room(), _address_space_room()) if r is not None]
        return max(0, min(rooms)) if rooms else None

    def lu_factor(self, a):
        """scipy.linalg.lu_factor of each matrix of a stack (..., n, n): (lu, piv), piv 0-based;
        NaNs propagate (no finiteness check)."""
        factor = scipy_functions(self.xp, "linalg", ("lu_factor",))["lu_factor"]
        n = a.shape[-1]
        lu, piv = self.xp.empty(a.shape, a.dtype), self.xp.empty(a.shape[:-1], self.xp.int32)
        for k, m in zip(numpy.ndindex(a.shape[:-2]), a.reshape((-1, n, n))):
            lu[k], piv[k] = factor(m, check_finite=False)
        return lu, piv

    def solve_triangular(self, a, b, lower, transpose, unit_diagonal):
        """x with T @ x = b, T the lower or upper triangle of a (unit diagonal if asked), transposed if
        transpose; a (..., n, n), b (..., n, r) with the same stack axes. BLAS trsm (SciPy's public
        wrapper, O(n^2 r)) matrix by matrix, solving into x in place; numpy.linalg.solve of the
        triangle (the same value, by LU: O(n^3), but one call for a stack) for n under _TRSM_MIN_N,
        or without SciPy. A zero on the diagonal raises LinAlgError, as LAPACK's trtrs would."""
        n, r = b.shape[-2:]
        if n < _TRSM_MIN_N or not b.size:
            return self._solve_triangle_by_lu(a, b, lower, transpose, unit_diagonal)
        kind = numpy.result_type(a.dtype, b.dtype)
        if kind not in BLAS:
            return self._solve_triangle_by_lu(a, b, lower, transpose, unit_diagonal)
        trsm = _TRSM[f"{BLAS[kind]}trsm"]
        a = a.astype(kind, copy=False)
        if not unit_diagonal and not self.xp.diagonal(a, axis1=-2, axis2=-1).all():
            raise numpy.linalg.LinAlgError("singular matrix: a zero on the triangle's diagonal")
        x = self.xp.array(b, dtype=kind, order="C")  # a fresh copy, which trsm overwrites
        try:
            for m, rhs in zip(a.reshape((-1, n, n)), x.reshape((-1, n, r))):
                # C-ordered m and rhs are Fortran-ordered m.T and rhs.T: op(T) x = rhs is x.T op(T).T = rhs.T,
                # a solve from the right against m.T's other triangle
                trsm(1.0, m.T, rhs.T, side=1, lower=int(not lower), trans_a=int(transpose),
                     diag=int(unit_diagonal), overwrite_b=1)
        except ImportError:  # SciPy is an optional extra
            return self._solve_triangle_by_lu(a, b, lower, transpose, unit_diagonal)
        return x

    def _solve_triangle_by_lu(self, a, b, lower, transpose, unit_diagonal):
        t = self.xp.tril(a) if lower else self.xp.triu(a)
        if unit_diagonal:
            eye = self.xp.eye(a.shape[-1], dtype=t.dtype)
            t = t - t * eye + eye
        x = self.xp.linalg.solve(t.swapaxes(-1, -2) if transpose else t, b)
        return x.astype(numpy.result_type(a.dtype, b.dtype), copy=False)

    # ------------------------------------------------------------------ fused hooks
    def fused_jvp(self, row, primals, tangents):
        """(y, tangent bundle) of one elementwise op in one kernel, or None: no kernel applies."""
        return None

    def fused_vjp(self, row, args, y, ct, needed):
        """The cotangent bundles of one elementwise op in one kernel, or None."""
        return None


# ---------------------------------------------------------------- host memory (Linux)
_NO_LIMIT = 2**60  # cgroup v1 writes "no limit" as a number near 2**63
_CGROUP_FILES = (("memory.max", "memory.current"),                                 # v2
                 ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"))  # v1


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _mem_available():
    text = _read("/proc/meminfo")
    for line in (text or "").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def _cgroup_room():
    """Limit minus usage of this process's memory cgroup (v2, else v1), None without a limit."""
    for limit, usage in _CGROUP_FILES:
        lim = _read("/sys/fs/cgroup/" + limit)
        if lim is not None:
            lim = lim.strip()
            if lim == "max" or int(lim) >= _NO_LIMIT:
                return None
            use = _read("/sys/fs/cgroup/" + usage)
            return None if use is None else int(lim) - int(use)
    return None


def _address_space_room():
    """RLIMIT_AS minus this process's virtual size: past it, allocations fail (MemoryError)."""
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    statm = None if limit == resource.RLIM_INFINITY else _read("/proc/self/statm")
    return None if statm is None else limit - int(statm.split()[0]) * resource.getpagesize()


# ---------------------------------------------------------------- the host allocator (glibc)
_GLIBC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def keep_freed_memory():
    """Have glibc keep freed memory for reuse: serve blocks up to KEPT_BLOCK from the heap and
    keep up to KEPT_HEAP of free heap instead of trimming it. By default glibc maps big blocks
    afresh and returns them when freed, so every call page-faults its temporaries in again
    (the kernel zeroes each page), which slows eager Jacobians markedly (docs/memory.md,
    `python -m bench.allocator`; compiled ones keep their buffers already). Left alone under
    GPUAD_MALLOC=default or where the user tuned malloc (MALLOC_MMAP_THRESHOLD_,
    MALLOC_TRIM_THRESHOLD_, GLIBC_TUNABLES). True when set; False there and without glibc."""
    if os.environ.get("GPUAD_MALLOC") == "default" or any(v in os.environ for v in _GLIBC_VARIABLES):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, KEPT_BLOCK) and mallopt(M_TRIM_THRESHOLD, KEPT_HEAP))
