"""When a program's kernels are built: before its first call returns, or in the background.

GPUAD_COMPILE=async (the default): a compiled function's first calls run its unfused replay while
its kernels build on a pool of threads (the C++ compiler in processes of its own, NVRTC in the
threads), and the calls after switch to the kernels once they are ready. GPUAD_COMPILE=sync: the
first call waits for them (the benchmarks, and tests that check the kernels themselves).
`gpuad.jit(f).lower(*args).compile()` builds them ahead of time whatever the setting.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

_MODES = ("async", "sync")
_pool = []
_lock = threading.Lock()


def waits():
    """Whether a first call waits for its kernels (GPUAD_COMPILE=sync)."""
    mode = os.environ.get("GPUAD_COMPILE", "async")
    if mode not in _MODES:
        raise ValueError(f"GPUAD_COMPILE={mode!r}: choose async (kernels build while the first calls run "
                         "unfused) or sync (the first call waits for them)")
    return mode == "sync"


def submit(fn, *args):
    """Run fn(*args) on the build threads: a concurrent.futures.Future."""
    with _lock:
        if not _pool:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            _pool.append(ThreadPoolExecutor(max_workers=max(2, cores), thread_name_prefix="gpuad-build"))
    return _pool[0].submit(fn, *args)


THREADS = max(1, min(8, os.cpu_count() or 1))  # builds of one program at once


def each(build, items, catch=Exception):
    """[build(item), or the `catch` exception it raised] for each item, several at once (NVRTC and
    the C++ compiler do not hold the GIL)."""
    def attempt(item):
        try:
            return build(item)
        except catch as e:
            return e
    if len(items) <= 1:
        return [attempt(item) for item in items]
    with ThreadPoolExecutor(min(len(items), THREADS)) as pool:
        return list(pool.map(attempt, items))
