"""When a program's kernels are built: before its first call returns, or in the background.

GPUAD_COMPILE=async (the default): a compiled function's first calls run its unfused replay while
its kernels build on a pool of threads (the C++ compiler in processes of its own, NVRTC in the
threads), and the calls after switch to the kernels once they are ready. GPUAD_COMPILE=sync: the
first call waits for them (the benchmarks, and tests that check the kernels themselves).
`gpuad.jit(f).lower(*args).compile()` builds them ahead of time whatever the setting.
"""
import os
import queue
import threading
from concurrent.futures import Future

_MODES = ("async", "sync")
_work = queue.SimpleQueue()  # (future, fn, args) for the build threads
_threads = []
_lock = threading.Lock()


def waits():
    """Whether a first call waits for its kernels (GPUAD_COMPILE=sync)."""
    mode = os.environ.get("GPUAD_COMPILE", "async")
    if mode not in _MODES:
        raise ValueError(f"GPUAD_COMPILE={mode!r}: choose async (kernels build while the first calls run "
                         "unfused) or sync (the first call waits for them)")
    return mode == "sync"


def submit(fn, *args):
    """Run fn(*args) on the build threads: a concurrent.futures.Future. The threads are daemons: a
    process that ends while a build runs does not wait for it (a library enters the cache whole or
    not at all, gpuad/kernels/cache.py; its workspace goes with the next build)."""
    with _lock:
        if not _threads:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            _threads.extend(_started(_serve, max(2, cores), "gpuad-build"))
    future = Future()
    _work.put((future, fn, args))
    return future


def _serve():
    while True:
        future, fn, args = _work.get()
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn(*args))
            except BaseException as e:  # the caller's future reports it
                future.set_exception(e)


def _started(target, count, name):
    threads = [threading.Thread(target=target, name=name, daemon=True) for _ in range(count)]
    for t in threads:
        t.start()
    return threads


THREADS = max(1, min(8, os.cpu_count() or 1))  # builds of one program at once


def balanced(items, parts, size=len):
    """items in `parts` groups (fewer where there are fewer items) of about equal total size, to be
    compiled side by side: the largest first, each to the smallest group so far (the same items in
    the same order give the same groups: a cache keyed by a group's source finds it again)."""
    groups = [[] for _ in range(max(1, min(parts, len(items))))]
    totals = [0] * len(groups)
    for item in sorted(items, key=size, reverse=True):
        k = totals.index(min(totals))
        groups[k].append(item)
        totals[k] += size(item)
    return groups


def each(build, items, catch=Exception):
    """[build(item), or the `catch` exception it raised] for each item, several at once (NVRTC and
    the C++ compiler do not hold the GIL), on daemon threads as `submit`'s."""
    results, todo, uncaught = [None] * len(items), queue.SimpleQueue(), []
    for k in range(len(items)):
        todo.put(k)

    def attempt():
        while True:
            try:
                k = todo.get_nowait()
            except queue.Empty:
                return
            try:
                results[k] = build(items[k])
            except catch as e:
                results[k] = e
            except BaseException as e:  # raised in the caller's thread, as an executor's map would
                uncaught.append(e)
    if len(items) <= 1:
        attempt()
    else:
        for t in _started(attempt, min(len(items), THREADS), "gpuad-build-part"):
            t.join()
    if uncaught:
        raise uncaught[0]
    return results
