"""python -m bench.chunks: peak memory and time of chunked Jacobians on the host, each
measurement in a fresh process under an address-space limit (a run past it raises MemoryError
instead of waking the OOM killer on a shared machine).

    python -m bench.chunks jacfwd --sizes 5000 10000 --chunks auto 250 1000
    python -m bench.chunks third --sizes 200 --chunks auto --limit-gib 6

jacfwd: the coupled map of the benchmarks (an n x n Jacobian), eager and under gpuad.jit.
third: jacrev(hessian(f)) of a sum of 8 quartic ridges (n x n x n), the same chunk_size at both
levels; third-outer: the chunk_size of the outer jacrev alone. Peaks are the process's
resident high-water mark (VmHWM, reset before each call) less its size before the function was
built, as a multiple of the result: held constants, kept buffers and the result itself count.
Times: the first call (sizing, tracing, compilation), then the median and the least of --reps
calls; with --rounds, the least of each over the rounds. The markdown table goes to stdout.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as onp

from . import problems

RIDGES = 8


def _rss(field):
    """A /proc/self/status memory field (VmRSS, VmHWM) in bytes."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def _reset_peak():
    with open("/proc/self/clear_refs", "w") as f:  # "5" resets VmHWM to the current RSS (Linux 4.0+)
        f.write("5")


def _transform(kind, chunk, compiled, n):
    import gpuad
    import gpuad.numpy as gnp
    if kind == "jacfwd":
        f, (x,) = problems.coupled(gnp, {"coupled": n})
        fn = gpuad.jacfwd(f, chunk_size=chunk)
    else:
        f, (x,) = problems.quartic(gnp, {"memory_third": (n, RIDGES)})
        fn = gpuad.jacrev(gpuad.hessian(f, chunk_size=chunk if kind == "third" else None), chunk_size=chunk)
    return (gpuad.jit(fn) if compiled else fn), x


def one(kind, n, chunk, compiled, reps):
    """Measure in this process: a dict of figures (bytes, seconds)."""
    import gpuad
    gpuad.backends.current()  # imported and started before the baseline: not the call's memory
    chunk = chunk if chunk == "auto" else None if chunk == "none" else int(chunk)
    base = _rss("VmRSS")
    _reset_peak()
    fn, x = _transform(kind, chunk, compiled, n)
    t0 = time.perf_counter()
    out = fn(x)
    first = time.perf_counter() - t0
    result = out.nbytes
    row = {"result": result, "first_s": first, "first_peak": _rss("VmHWM") - base}
    del out
    times, peaks = [], []
    for _ in range(reps):
        _reset_peak()
        t0 = time.perf_counter()
        out = fn(x)
        times.append(time.perf_counter() - t0)
        del out
        peaks.append(_rss("VmHWM") - base)
    row.update(median_s=statistics.median(times), min_s=min(times), peak=max(peaks))
    return row


def measure(kind, n, chunk, compiled, reps, limit):
    """One measurement in a fresh process limited to `limit` bytes of address space."""
    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", GPUAD_BACKEND="numpy")
    args = [sys.executable, "-m", "bench.chunks", "--one", kind, str(n), str(chunk), str(int(compiled)), str(reps)]
    done = subprocess.run(args, env=env, preexec_fn=cap, capture_output=True, text=True)
    if done.returncode:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        return {"error": tail[0][:120]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _row(kind, n, chunk, compiled, r):
    head = f"| {kind} | {n} | {'jit' if compiled else 'eager'} | {chunk} |"
    if "error" in r:
        return head + f" {r['error']} | | | | | |"
    gib = r["result"] / 2**30
    return head + (f" {gib:.3g} GiB | {r['first_s']:.3g} s | {r['median_s']:.3g} s | {r['min_s']:.3g} s | "
                   f"{r['first_peak'] / r['result']:.2f}x | {r['peak'] / r['result']:.2f}x |")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.chunks", description=__doc__.splitlines()[0])
    p.add_argument("--one", nargs=5, help=argparse.SUPPRESS)
    p.add_argument("kind", nargs="?", choices=("jacfwd", "third", "third-outer"), default="jacfwd")
    p.add_argument("--sizes", type=int, nargs="+", default=[5000])
    p.add_argument("--chunks", nargs="+", default=["auto"], help='"auto", "none" or ints')
    p.add_argument("--modes", nargs="+", choices=("eager", "jit"), default=["eager", "jit"])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--rounds", type=int, default=1, help="times each run is repeated: the least times "
                   "and the largest peaks are kept")
    p.add_argument("--limit-gib", type=float, default=8.0, help="address-space limit of each run")
    a = p.parse_args(argv)
    if a.one:
        kind, n, chunk, compiled, reps = a.one
        print(json.dumps(one(kind, int(n), chunk, compiled == "1", int(reps))))
        return
    runs = [(n, mode == "jit", chunk) for n in a.sizes for mode in a.modes for chunk in a.chunks]
    best = {}
    for _ in range(a.rounds):  # the runs take turns: a shared machine's load falls on each alike
        for n, compiled, chunk in runs:
            r = measure(a.kind, n, chunk, compiled, a.reps, int(a.limit_gib * 2**30))
            kept = best.setdefault((n, compiled, chunk), r)
            if "error" not in r and "error" not in kept:
                kept.update({k: min(kept[k], r[k]) for k in ("first_s", "median_s", "min_s")},
                            first_peak=max(kept["first_peak"], r["first_peak"]), peak=max(kept["peak"], r["peak"]))
    print("| problem | n | mode | chunk_size | result | first call | later calls: median | least | "
          "peak, first call | peak, later calls |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (n, compiled, chunk), r in best.items():
        print(_row(a.kind, n, chunk, compiled, r))

if __name__ == "__main__":
    onp.seterr(all="ignore")
    main()
