"""python -m bench.compile: how long gpuad.jit takes to compile, as a program grows.

    python -m bench.compile                       # the ODE at 25, 100, 200, 400 and 1600 steps
    python -m bench.compile --steps 400 --rounds 3
    python -m bench.compile --steps 400 --rounds 5 --before /path/to/other/tree   # interleaved with another tree
    python -m bench.compile --first               # every benchmark problem's first call, against jax.jit

The program: a 2-state ODE (van der Pol) stepped by a Python loop, y = y + 0.01 * rhs(y), under
gpuad.jit(gpuad.jacfwd(...)): a straight-line program that grows with the steps (an unrolled
loop). Each size runs in a fresh process with an empty kernel cache of its own (a cold first
call: tracing, the passes, fusion, the kernels' sources and their compilation). Columns: the
program's equations, the fused regions and the equations left as steps of their own, the time
to trace and optimise (lower), to build the replay and run it once (fusion, sources, the compiler),
the first call in all (wall clock, the process's own CPU time and its compilers'), and the
median of later calls. GPUAD_COMPILE=sync: the first call waits for its kernels. The markdown
table goes to stdout.

--first: each problem of `python -m bench` (quick sizes), in a fresh process with an empty kernel
cache, its first call under gpuad.jit as a new user gets it (GPUAD_COMPILE=async: the kernels
build in the background meanwhile), under gpuad.jit waiting for its kernels (sync), and jax.jit's
first call in the same process.

--nvrtc: what the CuPy backend's kernels cost NVRTC (no GPU needed), for each benchmark problem at
--size gpu and the 400-sine chain (x = sin(x) * 0.9 + 0.1, 40 points) and its jacfwd: the time to
lower for CuPy (trace, optimise), the regions, the distinct kernels, the NVRTC programs they are
compiled in (gpuad/kernels/nvrtc.py), their source, the most registers a kernel takes on sm_90,
and NVRTC's wall time (its CPU time in brackets): one program per distinct kernel on the build
threads (before the batching, duplicates too), the programs of nvrtc.build (a cold cache), and the
second build (the cache's); and the kernels that loop over merged axes (gpuad/compiler/merge.py),
those of them whose inputs' strides are checked at a call, and NVRTC's time for their unmerged
variants built together (a call with strides the merged kernels cannot read builds them then).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

STEPS = (25, 100, 200, 400, 1600)


def ode(steps):
    import gpuad.numpy as gnp

    def rhs(y):
        return gnp.stack([y[1], -y[0] + 0.5 * (1 - y[0] ** 2) * y[1]])

    def f(y0):
        y = y0
        for _ in range(steps):
            y = y + 0.01 * rhs(y)
        return y
    return f


def one(steps):
    """Measure in this process (a fresh one, its cache empty): a dict of figures."""
    import numpy as onp

    import gpuad
    from gpuad.compiler import replay
    x = onp.array([1.0, 0.5])
    fn = gpuad.jit(gpuad.jacfwd(ode(steps)))
    t0, c0 = time.perf_counter(), os.times()
    lowered = fn.lower(x)  # traced and optimised, cached for the call
    t1 = time.perf_counter()
    fn(x)  # the first call: its replay (fusion, sources, compilation) is built, then run
    t2, c2 = time.perf_counter(), os.times()
    later = []
    for _ in range(20):
        t = time.perf_counter()
        fn(x)
        later.append(time.perf_counter() - t)
    planned = replay.plan(lowered.program)
    regions = sum(s.kind == "region" for s in planned)
    return {"steps": steps, "equations": len(lowered.program.equations), "regions": regions,
            "plain": len(planned) - regions, "lower_s": t1 - t0, "replay_s": t2 - t1, "first_s": t2 - t0,
            "cpu_s": (c2.user + c2.system) - (c0.user + c0.system),
            "compiler_s": (c2.children_user + c2.children_system) - (c0.children_user + c0.children_system),
            "later_ms": 1e3 * statistics.median(later)}


def first_calls(name):
    """The first call of one benchmark problem: gpuad.jit (async, then sync on a second function)
    and jax.jit, in this process; seconds."""
    from . import engines, problems, runner
    case = next(c for c in problems.CASES if c.name == name)
    s = problems.SIZES["quick"]
    out = {"problem": name}
    gpuad_jit = engines.load("gpuad-jit", "cpu")
    for mode in ("async", "sync"):
        os.environ["GPUAD_COMPILE"] = mode
        call = runner.prepare(case, gpuad_jit, s)
        t = time.perf_counter()
        gpuad_jit.block(call())
        out[f"gpuad_{mode}_s"] = time.perf_counter() - t
    try:
        jax_jit = engines.load("jax-jit", "cpu")
    except engines.Unavailable:
        return out
    call = runner.prepare(case, jax_jit, s)
    t = time.perf_counter()
    jax_jit.block(call())
    out["jax_s"] = time.perf_counter() - t
    return out


def chain(x):
    """The 400-sine chain of issue 20 (tests/test_fusion.py's long chain)."""
    import gpuad.numpy as gnp
    for _ in range(400):
        x = gnp.sin(x) * 0.9 + 0.1
    return x


def nvrtc_programs():
    """(name, function, args) of the programs --nvrtc measures."""
    import numpy as onp

    import gpuad
    from gpuad.kernels.__main__ import _benchmark_programs
    x = onp.linspace(-1, 1, 40)
    return _benchmark_programs() + [("chain400", chain, (x,)), ("chain400_jacfwd", gpuad.jacfwd(chain), (x,))]


def nvrtc_row(name, fun, args):
    """NVRTC's figures for one program's CUDA kernels (seconds, characters, registers)."""
    import gpuad
    from gpuad.compiler import replay
    from gpuad.kernels import builds, cubin, index32, nvrtc
    t = time.perf_counter()
    lowered = gpuad.jit(fun).lower(*args, backend="cupy")
    lower_s = time.perf_counter() - t
    steps, by_region = replay.planned(lowered.program, True, lowered.target)
    kernels = list(by_region.values())
    merged = sum(s.node.shape != by_region[id(s.node)].shape for s in steps if s.kind == "region")
    sources = [index32.first(k) for k in kernels]
    texts = {n: text for text, n in sources}
    t, c = time.perf_counter(), _cpu()
    builds.each(lambda n: nvrtc.compile_ptx(texts[n], n, nvrtc.ARCH), list(texts))
    apart_s, apart_cpu = time.perf_counter() - t, _cpu() - c
    with tempfile.TemporaryDirectory(prefix="gpuad-bench-nvrtc-") as where:
        t, c = time.perf_counter(), _cpu()
        built = nvrtc.build(sources, nvrtc.ARCH, where)
        together_s, together_cpu = time.perf_counter() - t, _cpu() - c
        t = time.perf_counter()
        nvrtc.build(sources, nvrtc.ARCH, where)
        cached_s = time.perf_counter() - t
        registers = max((cubin.measure(built[n].read_bytes(), n)[1] for _, n in sources), default=0)
        unmerged = [index32.first(k.unmerged()) for k in kernels if k.checks]
        t = time.perf_counter()
        if unmerged:
            nvrtc.build(unmerged, nvrtc.ARCH, where)
        unmerged_s = time.perf_counter() - t
    return {"program": name, "lower_s": lower_s, "regions": len(kernels), "kernels": len(texts),
            "programs": len(set(built.values())), "chars": sum(len(p) for p, _ in nvrtc.grouped(texts)),
            "registers": registers, "apart_s": apart_s, "apart_cpu": apart_cpu, "together_s": together_s,
            "together_cpu": together_cpu, "cached_s": cached_s, "merged": merged, "checked": len(unmerged),
            "unmerged_s": unmerged_s}


def _cpu():
    """This process's CPU seconds (NVRTC runs in its threads)."""
    t = os.times()
    return t.user + t.system


def nvrtc_table(rows):
    return _markdown(["program", "lower", "regions", "distinct kernels", "NVRTC programs", "source", "most registers",
                      "NVRTC, a program per kernel", "NVRTC, together", "from the cache", "kernels merged", "checked",
                      "NVRTC, their unmerged variants"],
                     [[r["program"], f"{r['lower_s']:.2f} s", r["regions"], r["kernels"], r["programs"],
                       f"{r['chars'] / 1e3:.0f} kB", r["registers"], f"{r['apart_s']:.2f} s ({r['apart_cpu']:.2f} s)",
                       f"{r['together_s']:.2f} s ({r['together_cpu']:.2f} s)", f"{r['cached_s'] * 1e3:.0f} ms",
                       r["merged"], r["checked"], f"{r['unmerged_s']:.2f} s"]
                      for r in rows])


def _markdown(header, rows):
    return "\n".join(["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
                     + ["| " + " | ".join(map(str, cells)) + " |" for cells in rows])


def fresh(*args, tree=None):
    """The figures of `--one *args` measured in a new process with an empty kernel cache, under
    this tree's gpuad or (tree: its root) another's."""
    with tempfile.TemporaryDirectory(prefix="gpuad-bench-compile-") as cache:
        env = dict(os.environ, GPUAD_CACHE_DIR=cache, GPUAD_COMPILE="sync", OPENBLAS_NUM_THREADS="1")
        out = subprocess.run([sys.executable, "-m", "bench.compile", "--one", *map(str, args)], env=env,
                             capture_output=True, text=True, check=True, cwd=tree)
        return json.loads(out.stdout.splitlines()[-1])


def first_table(rows):
    cells = []
    for r in rows:
        jax = r.get("jax_s")
        cells.append([r["problem"], f"{r['gpuad_async_s'] * 1e3:.0f} ms", f"{r['gpuad_sync_s'] * 1e3:.0f} ms",
                      f"{jax * 1e3:.0f} ms" if jax else "n/a", f"{r['gpuad_async_s'] / jax:.2f}" if jax else "n/a"])
    return _markdown(["problem", "gpuad.jit first call", "waiting for its kernels", "jax.jit first call",
                      "gpuad / jax"], cells)


def table(rows):
    return _markdown(["tree", "steps", "equations", "regions", "plain steps", "lower", "replay built", "first call",
                      "its CPU", "compilers' CPU", "later calls"],
                     [[r["tree"], r["steps"], r["equations"], r["regions"], r["plain"], f"{r['lower_s']:.2f} s",
                       f"{r['replay_s']:.2f} s", f"{r['first_s']:.2f} s", f"{r['cpu_s']:.2f} s",
                       f"{r['compiler_s']:.2f} s", f"{r['later_ms']:.2f} ms"] for r in rows])


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.compile", description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, nargs="+", default=STEPS)
    ap.add_argument("--rounds", type=int, default=1, help="fresh processes per size; the least first call is kept")
    ap.add_argument("--first", action="store_true", help="every benchmark problem's first call, against jax.jit")
    ap.add_argument("--nvrtc", action="store_true", help="NVRTC's time for the CuPy kernels of each program")
    ap.add_argument("--before", help="another gpuad tree's root: each size's processes alternate between the "
                                     "two trees, both rows kept")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.nvrtc:
        from gpuad.kernels.builds import THREADS
        from gpuad.kernels.nvrtc import ARCH, version
        rows = [nvrtc_row(*p) for p in nvrtc_programs()]
        print(f"NVRTC {'.'.join(map(str, version()))} for {ARCH}, {THREADS} build threads; load average "
              f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores after\n")
        print(nvrtc_table(rows))
        return
    if args.one is not None:
        print(json.dumps(one(int(args.one)) if args.one.isdigit() else first_calls(args.one)))
        return
    if args.first:
        from . import problems
        rows = [fresh(c.name) for c in problems.CASES if not c.name.startswith("memory")]
        print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores\n")
        print(first_table(rows))
        return
    rows = []
    trees = {"this tree": None} if args.before is None else {"before": args.before, "after": None}
    for steps in args.steps:
        runs = {name: [] for name in trees}
        for _ in range(args.rounds):  # interleaved: a busy machine slows both trees alike
            for name, tree in trees.items():
                runs[name].append(fresh(steps, tree=tree))
        for name in trees:
            rows.append(dict(min(runs[name], key=lambda r: r["first_s"]), tree=name))
            each = ", ".join(f"{r['first_s']:.2f} ({r['cpu_s']:.2f} + {r['compiler_s']:.2f})" for r in runs[name])
            print(f"{steps} steps, {name}: first calls (its CPU + compilers' CPU) {each} s", file=sys.stderr)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores\n")
    print(table(rows))


if __name__ == "__main__":
    main()
