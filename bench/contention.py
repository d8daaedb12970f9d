"""python -m bench.contention: the compiled benchmark problems on a CPU shared with a busy process.

A fused region of 256k elements or more is split over the kernels' threads. With another process
busy on one of the cores, a thread there runs a fraction of the time; a split that gives each
thread a fixed share waits for the slowest. This times each compiled problem (the cpu sizes) with
one busy competitor (a process spinning on one core) running, alternating in one process between
all the cores' threads and one thread (gpuad.compiler.host.set_threads), and prints the ratio of the medians:
the target is at most 2 (never more than twice as slow as one thread).

    python -m bench.contention --reps 30 [--problems coupled_jacfwd,...] [--idle]

The markdown table goes to stdout.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

from . import problems

_SPIN = "while True: pass"


def _case_runner(case, sizes):
    import gpuad
    import gpuad.numpy as gnp
    f, args = case.setup(gnp, sizes)
    transform = {"jacfwd": gpuad.jacfwd, "jacrev": gpuad.jacrev, "hessian": gpuad.hessian,
                 "jacobian": lambda f: gpuad.jacobian(f, mode="auto"),
                 "hvp": lambda f: lambda x, v: gpuad.hvp(f, (x,), (v,)),
                 "vmap_jacfwd": lambda f: gpuad.vmap(gpuad.jacfwd(f))}.get(case.transform)
    if transform is None:
        return None
    compiled = gpuad.jit(transform(f))
    args = [gnp.asarray(a) for a in args]
    compiled(*args)  # compile and warm
    return lambda: compiled(*args)


def _time(run):
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--problems", default="")
    parser.add_argument("--size", default="cpu", choices=list(problems.SIZES))
    parser.add_argument("--idle", action="store_true", help="no competing process")
    args = parser.parse_args(argv)
    from gpuad.compiler import host
    cores = len(os.sched_getaffinity(0))
    cases = [c for c in problems.select(args.problems) if not c.transform.startswith("auto")]
    competitor = None if args.idle else subprocess.Popen([sys.executable, "-c", _SPIN])
    try:
        print(f"| problem | {cores} threads, median ms | 1 thread, median ms | ratio |")
        print("| --- | ---: | ---: | ---: |")
        for case in cases:
            run = _case_runner(case, problems.SIZES[args.size])
            if run is None:
                continue
            times = {cores: [], 1: []}
            for _ in range(args.reps):
                for k in times:  # interleaved: the machine's load drifts
                    host.set_threads(k)
                    times[k].append(_time(run))
            many, one = statistics.median(times[cores]), statistics.median(times[1])
            print(f"| {case.name} | {many * 1e3:.3f} | {one * 1e3:.3f} | {many / one:.2f} |", flush=True)
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()


if __name__ == "__main__":
    main()
