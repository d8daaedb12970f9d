"""Wall-clock timing: the first call apart (tracing, compilation, kernel builds), then the
median of steady-state calls, each one waited for until its result is computed.

As in timeit, Python's cyclic garbage collector is off while calls are timed: with JAX and
torch loaded a full collection takes a tenth of a second, and it would land in whichever
engine happened to trigger it."""
import gc
import statistics
import time
from dataclasses import dataclass

# How long to time each (case, engine), and the least and most calls to time.
BUDGETS = {"quick": (0.1, 3, 30), "cpu": (2.0, 5, 200), "gpu": (2.0, 5, 200)}


@dataclass
class Timing:
    median_s: float
    min_s: float
    reps: int


def first_call(call, block):
    """(result, seconds) of the first call; the result is kept for the correctness check."""
    t0 = time.perf_counter()
    out = block(call())
    return out, time.perf_counter() - t0


def steady(call, block, budget_s, min_reps, max_reps):
    """Median of repeated calls: at least min_reps, then more while the budget lasts."""
    times = []
    deadline = time.perf_counter() + budget_s
    gc.disable()
    try:
        while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() < deadline):
            t0 = time.perf_counter()
            block(call())
            times.append(time.perf_counter() - t0)
    finally:
        gc.enable()
    return Timing(statistics.median(times), min(times), len(times))
