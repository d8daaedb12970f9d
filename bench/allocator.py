"""python -m bench.allocator: what glibc's policy for freed memory costs gpuad on the host.

Each policy runs in a fresh process (the policy is per process): the same Jacobians, eager and
under gpuad.jit, timed over repeated calls, with the page faults (minor faults, ru_minflt) one
call makes. NumPy's large temporaries come from malloc: with glibc's defaults a block past the
mmap threshold is mapped fresh and unmapped when freed, and the heap's free top is trimmed,
so each call faults its temporaries in again (the kernel zeroes every page).

    python -m bench.allocator --n 2000 --reps 20 --rounds 3

The markdown table goes to stdout.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from gpuad.backends.numpy import KEPT_BLOCK, KEPT_HEAP

from . import problems

# policy -> environment of the measuring process (gpuad leaves glibc alone where MALLOC_* are set)
POLICIES = {
    "glibc defaults": {"GPUAD_MALLOC": "default"},
    f"gpuad's mallopt ({KEPT_BLOCK >> 20} MiB, {KEPT_HEAP >> 20} MiB)": {},
    "MALLOC_* variables (32 MiB, 2 GiB)": {"MALLOC_MMAP_THRESHOLD_": str(32 << 20),
                                           "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1)},
    "MALLOC_* variables (32 MiB, 256 MiB)": {"MALLOC_MMAP_THRESHOLD_": str(32 << 20),
                                            "MALLOC_TRIM_THRESHOLD_": str(256 << 20)},
}
_OURS = ("GPUAD_MALLOC", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def _elementwise(gnp, n):
    def f(x):
        return gnp.sin(x) * x + gnp.exp(-x) * gnp.cos(x) ** 2
    return f, problems._rng(0).normal(size=n)


def _coupled(gnp, n):
    f, (x,) = problems.coupled(gnp, {"coupled": n})
    return f, x


CASES = {"elementwise jacfwd": _elementwise, "coupled jacfwd": _coupled}


def one(n, reps):
    """Measure every case in this process: {case: (seconds a call, minor faults a call)}."""
    import gpuad
    import gpuad.numpy as gnp
    rows = {}
    for name, make in CASES.items():
        f, x = make(gnp, n)
        for mode, fn in (("eager", gpuad.jacfwd(f)), ("jit", gpuad.jit(gpuad.jacfwd(f)))):
            fn(x), fn(x)  # warm: tracing, kernel builds, the allocator's adaptive threshold
            times, faults = [], []
            for _ in range(reps):
                before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                t0 = time.perf_counter()
                out = fn(x)
                times.append(time.perf_counter() - t0)
                faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
                del out
            rows[f"{name}, {mode}"] = (statistics.median(times), statistics.median(faults))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.allocator", description=__doc__.splitlines()[0])
    p.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args(argv)
    if a.one:
        print(json.dumps(one(int(a.one[0]), int(a.one[1]))))
        return
    results = {policy: {} for policy in POLICIES}
    for _ in range(a.rounds):  # policies take turns: a shared machine's load falls on each alike
        for policy, extra in POLICIES.items():
            env = {k: v for k, v in os.environ.items() if k not in _OURS}
            env.update(extra, OPENBLAS_NUM_THREADS="1", GPUAD_BACKEND="numpy")
            done = subprocess.run([sys.executable, "-m", "bench.allocator", "--one", str(a.n), str(a.reps)],
                                  env=env, capture_output=True, text=True, check=True)
            for case, row in json.loads(done.stdout.strip().splitlines()[-1]).items():
                results[policy][case] = min(results[policy].get(case, row), row)
    print(f"| case (n={a.n}; the least of {a.rounds} processes' medians of {a.reps} calls) | "
          + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for case in next(iter(results.values())):
        cells = [f"{r[case][0] * 1e3:.3g} ms, {r[case][1]:.0f} faults" for r in results.values()]
        print(f"| {case} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
