"""What a program is planned for: a Target, passed to the planner (fusion, the replay's plan, the
rendering of regions, the cost model), never read from the active backend while planning. So
`gpuad.jit(f).lower(x, backend="cupy")` plans for CUDA in a NumPy session (and another thread's
calls keep theirs): only the tracing itself still runs under `backends.planning`, for the layout
decisions the transforms make while they trace (vmap's batch axis: ops/elementwise.py).

Besides the kernel language, each fact is one of fusion.py's cost rules, per machine.
"""
from dataclasses import dataclass
from math import inf

from .. import backends


@dataclass(frozen=True)
class Target:
    name: str  # the backend planned for: "numpy" or "cupy"
    kernel: str  # what its regions are rendered to: "host" (C++, gpuad/compiler/host.py) or "cuda"
    # a sum longer than fusion's unrolled ones is fused when it makes at least this many elements: a
    # GPU's threads, a CPU's vector lanes
    parallel: int
    # How many times per element of it a region may evaluate a computed value: on a GPU, arithmetic
    # is nearly free beside a pass over memory; on a CPU, a transcendental redone for each of K
    # directions costs more than a pass over cache-resident data (a value read at two shifts is fine).
    repeats: int
    # The longest axis a region gathers along. A GPU hides a gather's scattered reads behind other
    # threads; a CPU loop gathering along a long axis stalls on cache misses that NumPy's own gather
    # (a tight loop) overlaps, and its index arithmetic stops the loop's vectorisation (slower than
    # NumPy: docs/performance.md): there only picks along short axes (per-sample positions under
    # vmap) join a region.
    gathered: float
    # Whether a region may make a long sum along axes that are not its input's last (a column sum):
    # on a GPU neighbouring threads read neighbouring elements, coalesced; on a CPU each element's
    # loop strides through memory, where NumPy adds whole rows at a time (the mean over the first
    # axis of (256, 64, 128): 30 ms fused against 23 ms by NumPy).
    across_rows: bool
    # Whether a kernel resolves only the short trailing axes of its iteration space at render time
    # (a CPU's loop unrolls those, and computes every lane of its vectorised loop along the others)
    # rather than all of them (a GPU's threads branch on the rest).
    unrolls: bool
    # The time model fusion keeps a region by (compiler/seconds.py), in seconds: a region's kernel
    # call; a computing member's call run alone; a view's; one of NumPy's inner loops (per row of a
    # broadcast: a CuPy kernel's threads cover every element at once); a byte read or written; an
    # arithmetic operation on one element inside a kernel (vectorised on a CPU, glibc's vector
    # math) and in a library call. The CPU's are rounded from step timings on the 2-core Xeon
    # under load: a 3-element region's ctypes call, a ufunc's, a reshape's; a (256, 64) times
    # (256, 1) product against a flat one for a row; 300 x 300 adds for a byte (cache-resident);
    # NumPy's exp and cos of strided columns (batched_vmap_jacfwd: about 5 ns an element, as 8
    # operations) for the library's arithmetic. The GPU's are a launch, none for a view (it
    # launches nothing, its host time hidden behind the device's), an H100's bandwidth, and the
    # same arithmetic for CuPy's kernels as for a region's: unmeasured here.
    kernel_s: float
    call_s: float
    view_s: float
    row_s: float
    byte_s: float
    op_s: float
    library_op_s: float
    # Whether regions compute with integers and booleans (a loop's counter, its condition). Only a
    # whole loop rendered as one kernel plans its body so (compiler/loop_kernel.py: a trip run from
    # Python costs more than any step of it); elsewhere NumPy's few integer steps are not worth a
    # kernel's dtypes and casts.
    integers: bool = False


NUMPY = Target("numpy", "host", parallel=256, repeats=2, gathered=16, across_rows=False, unrolls=True,
               kernel_s=1.2e-6, call_s=0.6e-6, view_s=0.4e-6, row_s=30e-9, byte_s=5e-11, op_s=0.12e-9,
               library_op_s=0.6e-9)
CUPY = Target("cupy", "cuda", parallel=4096, repeats=4, gathered=inf, across_rows=True, unrolls=False,
              kernel_s=3e-6, call_s=3e-6, view_s=0.0, row_s=0.0, byte_s=3e-13, op_s=1e-13,
              library_op_s=1e-13)
_NAMED = {t.name: t for t in (NUMPY, CUPY)}


def target_of(of=None):
    """The Target of a backend name ("numpy" or "cupy"; a Target as it is); None: the active
    backend's, the one place planning asks the global backend (a program planned to run here)."""
    if isinstance(of, Target):
        return of
    if of is None:
        of = backends.backend()
    if of not in _NAMED:
        raise ValueError(f"unknown backend {of!r} to plan for: choose one of {', '.join(_NAMED)}")
    return _NAMED[of]
