"""Run cases on engines: build, check against the closed form, then time and measure memory.

A wrong result is never timed: it is recorded as "wrong" with the size of the error, and
the run ends with a failure status.
"""
import gc
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as onp

from . import check, timing
from .problems import SIZES


@dataclass
class Result:
    case: str
    engine: str
    status: str                     # ok | wrong | error | n/a | unavailable
    detail: str = ""
    warmup_s: float | None = None
    median_s: float | None = None
    min_s: float | None = None
    reps: int | None = None
    rel_error: float | None = None
    peak_bytes: int | None = None
    peak_how: str | None = None


def prepare(case, engine, s):
    """The zero-argument call that computes case's result on engine (None if unsupported)."""
    make = engine.transforms.get(case.transform)
    if make is None:
        return None
    f, host_args = case.setup(engine.np, s)
    fn = make(f)
    args = [engine.asarray(a) for a in host_args]
    return lambda: fn(*args)


def expected_result(case, s):
    _, host_args = case.setup(onp, s)
    return case.reference(host_args, s)


def measure(case, engine, s, expected, budget):
    """One case on one engine, as a Result."""
    res = Result(case.name, engine.name, "ok")
    try:
        call = prepare(case, engine, s)
        if call is None:
            res.status, res.detail = "n/a", f"no {case.transform}"
            return res
        out, res.warmup_s = timing.first_call(call, engine.block)
        got = engine.to_numpy(out)
        del out
        res.rel_error = check.error(got, expected)
        if not res.rel_error <= check.RTOL:
            res.status, res.detail = "wrong", check.describe_failure(got, expected)
            return res
        t = timing.steady(call, engine.block, *budget)
        res.median_s, res.min_s, res.reps = t.median_s, t.min_s, t.reps
        if engine.peak is not None:
            res.peak_bytes, res.peak_how = engine.peak(call, engine.block)
    except Exception as e:
        res.status, res.detail = "error", f"{type(e).__name__}: {e}".splitlines()[0][:200]
    return res


def run(cases, engines, unavailable, size, budget=None, settle_s=0.0, on_result=None):
    """All results; engines is {name: Engine}, unavailable is {name: reason}. on_result(results so
    far) is called as each case finishes (a run cut short keeps what finished).

    Engine by engine, not case by case: each library keeps worker threads that spin for a
    while after its last call (OpenBLAS for ~0.1 s), and on a 2-core machine a peer timed in
    that window loses its cores to them. settle_s of idle time between engines lets them sleep.
    """
    s = SIZES[size]
    budget = budget or timing.BUDGETS[size]
    expected = {case.name: expected_result(case, s) for case in cases}
    results = [Result(case.name, name, "unavailable", reason) for name, reason in unavailable.items()
               for case in cases]
    progress = Progress([c.name for c in cases], len(engines))
    for engine in engines.values():
        gc.collect()  # the last engine's garbage goes now, not inside this one's timings
        time.sleep(settle_s)
        t0 = time.perf_counter()
        for i, case in enumerate(cases, 1):
            res = measure(case, engine, s, expected[case.name], budget)
            _progress(f"{progress.step(case.name)} [{engine.name} {i}/{len(cases)}] {case.name:<20} {_summary(res)}")
            results.append(res)
            if on_result is not None:
                on_result(results)
        _progress(f"[{engine.name}] done in {time.perf_counter() - t0:.1f} s")
    return results


class Progress:
    """The run's progress: (case, engine) pairs done, the time so far and an estimate of the time
    left. A case still to run on a later engine is expected to take what it took on the engines
    before (its first call, its timed calls and its memory measurement); a case not run yet, the
    median of what the pairs so far took (one slow problem does not stand for every other)."""

    def __init__(self, cases, n_engines, clock=time.perf_counter):
        self.cases, self.total, self.clock = cases, len(cases) * n_engines, clock
        self.took = {}  # case -> seconds on each engine done
        self.start = self.last = clock()

    def step(self, case):
        """Record that `case` finished on the current engine; the progress line."""
        now = self.clock()
        self.took.setdefault(case, []).append(now - self.last)
        self.last = now
        done = sum(map(len, self.took.values()))
        return f"[{done}/{self.total}, {_clock(now - self.start)} so far, about {_clock(self.left(done))} left]"

    def left(self, done):
        """Seconds the pairs after the first `done` will take, by what the pairs so far took."""
        typical = statistics.median_low([s for took in self.took.values() for s in took])
        upcoming = [self.cases[k % len(self.cases)] for k in range(done, self.total)]
        return sum(statistics.fmean(self.took[c]) if c in self.took else typical for c in upcoming)


def _clock(seconds):
    """m:ss"""
    m, s = divmod(round(seconds), 60)
    return f"{m}:{s:02d}"


def _summary(res):
    if res.status == "ok":
        return f"{res.median_s * 1e3:10.3f} ms  ({res.reps} calls; first call {res.warmup_s * 1e3:.3g} ms)"
    if res.status in ("wrong", "error"):
        return f"*** {res.status.upper()}: {res.detail}"
    return f"{res.status}: {res.detail}"


def _progress(line):
    print(line, file=sys.stderr, flush=True)
