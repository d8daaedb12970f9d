"""python -m bench.versions: bench/losses.py's cases under this tree's gpuad and another tree's,
interleaved in one process, so that a busy machine slows both alike.

    python -m bench.versions --before /path/to/other/tree --cases grad_eigh300,grad_svd300 --rounds 9
    python -m bench.versions --before /path/to/other/tree --loops [--batch 100000] [--steps 1000]

The other tree's `gpuad` package is imported as `gpuad_before` (the package imports itself
relatively). Each round times every case's engines, eager and gpuad.jit, under both versions in
turn (blocks of about 20 ms of calls each, as bench/losses.py); both versions' results are checked
against each other first. The table gives the medians over rounds and the ratio after / before.
"""
import argparse
import functools
import importlib
import importlib.util
import os
import statistics
import sys
from pathlib import Path

from . import losses

BEFORE = "gpuad_before"


def import_tree(root):
    """root/gpuad imported as BEFORE."""
    init = Path(root) / "gpuad" / "__init__.py"
    if not init.exists():
        raise SystemExit(f"--before: {init} does not exist; give the root of a gpuad source tree")
    spec = importlib.util.spec_from_file_location(BEFORE, init, submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[BEFORE] = module
    spec.loader.exec_module(module)


def calls(name, package):
    """{engine: zero-argument call} of case `name` under the gpuad imported as `package`."""
    g = losses._Gpuad(package)
    f, args = losses.CASES[name](g.np, g)
    gargs = [g.np.asarray(a) for a in args]
    compiled = g.gpuad.jit(f)
    return {"eager": lambda: f(*gargs), "jit": lambda: compiled(*gargs)}


def measure(name, rounds):
    """{(version, engine): median seconds per call}."""
    runs = {(version, engine): call for version, package in (("before", BEFORE), ("after", "gpuad"))
            for engine, call in calls(name, package).items()}
    losses.checked(name, runs, ("after", "eager"))
    return losses.timed(runs, rounds)


def _called(f, xs):
    return f(*xs)


def _blocked(f, xs):
    return f(*xs).block_until_ready()


def loop_calls(batch, steps, rounds, statistic=statistics.median):
    """bench/loops.py's loops of a run-time trip count (--while) under both versions and jax.jit
    where it is installed: {(problem, engine): median seconds per call}."""
    from .loops import while_problems
    libraries = {"before": importlib.import_module(BEFORE), "after": importlib.import_module("gpuad")}
    try:
        libraries["jax.jit"] = losses._Jax().jax
    except ImportError:
        pass
    results = {}
    for problem, make, args in while_problems(batch, steps):
        runs = {}
        for engine, lib in libraries.items():
            if engine == "jax.jit" and "jacrev" in problem:
                continue  # JAX refuses reverse mode through while_loop
            f = lib.jit(make(lib, importlib.import_module(f"{lib.__name__}.lax")))
            xs = [importlib.import_module(f"{lib.__name__}.numpy").asarray(a) for a in args]
            runs[engine] = functools.partial(_blocked if engine == "jax.jit" else _called, f, xs)
        losses.checked(problem, runs, "after")
        results.update(((problem, engine), t) for engine, t in losses.timed(runs, rounds, statistic).items())
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.versions", description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, help="the root of the other gpuad source tree")
    ap.add_argument("--cases", default="grad_eigh100,grad_eigh300,grad_svd100,grad_svd300,grad_eigvalsh300,"
                                       "grad_svdvals300", help="comma-separated, from bench/losses.py's")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--loops", action="store_true", help="bench/loops.py --while's loops instead of the cases")
    ap.add_argument("--batch", type=int, default=100000, help="--loops: cubics of the vmapped Newton solves")
    ap.add_argument("--steps", type=int, default=1000, help="--loops: the traced bound of the RK4 loop")
    ap.add_argument("--statistic", choices=("median", "min"), default="median",
                    help="--loops: of the rounds' times per call (min: on a shared machine)")
    args = ap.parse_args(argv)
    import_tree(args.before)
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores, {args.rounds} rounds\n")
    if args.loops:
        r = loop_calls(args.batch, args.steps, args.rounds, getattr(statistics, args.statistic) if
                       args.statistic == "median" else min)
        print("| loop | before | after | after / before | jax.jit | after / jax.jit |\n" + "|" + " --- |" * 6)
        for problem in dict.fromkeys(p for p, _ in r):
            before, after, jax = r[problem, "before"], r[problem, "after"], r.get((problem, "jax.jit"))
            cells = [f"{before * 1e3:.4g} ms", f"{after * 1e3:.4g} ms", f"{after / before:.2f}"]
            cells += [f"{jax * 1e3:.4g} ms", f"{after / jax:.2f}"] if jax else ["", ""]
            print(f"| {problem} | " + " | ".join(cells) + " |", flush=True)
        return
    print("| case | eager before | eager after | after / before | jit before | jit after | after / before |")
    print("|" + " --- |" * 7)
    for name in args.cases.split(","):
        r = measure(name, args.rounds)
        cells = []
        for engine in ("eager", "jit"):
            before, after = r["before", engine], r["after", engine]
            cells += [f"{before * 1e3:.3g} ms", f"{after * 1e3:.3g} ms", f"{after / before:.2f}"]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
