"""python -m bench: time gpuad against JAX, torch.func and autograd, side by side in one process.

    python -m bench --quick                        # under a minute on a 2-core CPU
    python -m bench --json cpu.json --plot cpu.png # default CPU sizes
    python -m bench --size gpu --backend cupy      # sizes that fill an H100

The markdown report goes to stdout, progress to stderr. The exit status is 1 when any result
was wrong or gpuad failed on a problem.
"""
import argparse
import datetime
import os
import pathlib
import sys

from . import engines, machine, problems, report, runner, timing


def parse(argv):
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="problems: " + ", ".join(c.name for c in problems.CASES)
                                 + "\n(a family name such as 'tall' or 'readme' selects all its cases)")
    ap.add_argument("--size", choices=sorted(problems.SIZES),
                    help="problem sizes (default: gpu on the CuPy backend, else cpu)")
    ap.add_argument("--quick", action="store_const", const="quick", dest="size", help="same as --size quick")
    ap.add_argument("--problems", default="", help="comma-separated problems (default: all)")
    ap.add_argument("--engines", default=",".join(engines.NAMES),
                    help=f"comma-separated engines (default: {','.join(engines.NAMES)})")
    ap.add_argument("--backend", choices=("auto", "numpy", "cupy"), help="gpuad's backend (default: GPUAD_BACKEND, "
                    "else auto); every peer runs on the same device")
    ap.add_argument("--budget", type=float, help="seconds of timed calls per problem and engine "
                    f"(default: {', '.join(f'{k} {v[0]:g}' for k, v in timing.BUDGETS.items())})")
    ap.add_argument("--glibc-malloc", action="store_true",
                    help="leave glibc's malloc thresholds as they are (big temporaries go back to the OS and are "
                    "page-faulted in again on later calls; times then depend on what ran before)")
    ap.add_argument("--save", action="store_true",
                    help="also write the report to bench/results/<cpu|gpu>-<date>-<machine>.md")
    ap.add_argument("--json", metavar="PATH", help="write every figure as JSON (rewritten as each case finishes)")
    ap.add_argument("--plot", metavar="PATH", help="draw a PNG bar chart (needs matplotlib)")
    return ap.parse_args(argv)


def engine_names(spec):
    """The engines asked for, without repeats, gpuad first (the others' ratios are to it)."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    for n in names:
        if n not in engines.NAMES:
            raise ValueError(f"unknown engine {n!r}; choose from {', '.join(engines.NAMES)}")
    return sorted(dict.fromkeys(names), key=lambda n: n != "gpuad")


def load_engines(names, device):
    """({name: Engine}, {name: why unavailable})."""
    loaded, unavailable = {}, {}
    for name in names:
        try:
            loaded[name] = engines.load(name, device)
        except engines.Unavailable as e:
            unavailable[name] = str(e)
            print(f"{name}: {e}", file=sys.stderr)
    return loaded, unavailable


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    a = parse(argv)
    if a.glibc_malloc:  # before gpuad's NumPy backend starts: it would keep freed memory
        os.environ["GPUAD_MALLOC"] = "default"
    import gpuad
    from gpuad.backends.numpy import keep_freed_memory
    try:
        if a.backend:
            gpuad.set_backend(a.backend)
        cases = problems.select(a.problems)
        names = engine_names(a.engines)
    except ValueError as e:
        sys.exit(f"python -m bench: {e}")
    kept = not a.glibc_malloc and keep_freed_memory()  # before the peers allocate: one policy for all
    device = engines.gpuad_device()
    a.size = a.size or device
    loaded, unavailable = load_engines(names, device)
    budget = timing.BUDGETS[a.size] if a.budget is None else (a.budget,) + timing.BUDGETS[a.size][1:]
    meta = _meta(a, argv, device, loaded, unavailable, names)  # before the run: the load is others' work
    meta["allocator"] = "glibc keeps freed memory (mallopt)" if kept else "glibc defaults"
    other = machine.OtherWork()
    other.start()
    save = (lambda results: report.write_json(a.json, results, meta)) if a.json else None  # case by case
    results = runner.run(cases, loaded, unavailable, a.size, budget, settle_s=0.3 if device == "cpu" else 0.0,
                         on_result=save)
    meta["other_work"] = other.share()
    _warn_if_busy(meta)
    text = report.markdown(results, meta, cases)
    print(text, end="")
    if a.save:
        print(f"report saved to {_save(text, meta)}", file=sys.stderr)
    if a.json:
        report.write_json(a.json, results, meta)
    if a.plot:
        print(report.plot(a.plot, results, meta, cases), file=sys.stderr)
    failed = [r for r in results if r.status == "wrong" or (r.status == "error" and r.engine.startswith("gpuad"))]
    for r in failed:
        print(f"FAILED: {r.case} on {r.engine}: {r.status}: {r.detail}", file=sys.stderr)
    return 1 if failed else 0


def _warn_if_busy(meta):
    """Other work on the machine inflates every time, threaded BLAS's most: say so. What other
    processes took during the run is the measure; the (lagging) load average stands in without /proc."""
    cores = os.cpu_count() or 1
    load, other = meta["load"] or 0.0, meta["other_work"]
    if (other is not None and other > 0.1) or (other is None and load > 0.5 * cores):
        print(f"warning: the machine was busy (load average {load:.2f} on {cores} cores before the run; "
              f"other processes took {other or 0:.0%} of the CPU during it): "
              "rerun on a quiet machine for figures to publish", file=sys.stderr)


def _save(text, meta):
    results = pathlib.Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    path = results / f"{meta['device']}-{meta['date'][:10]}-{machine.tag(meta.get('gpu'))}.md"
    path.write_text(text)
    return path


def _meta(a, argv, device, loaded, unavailable, names):
    import gpuad
    meta = {
        "size": a.size, "dims": problems.SIZES[a.size], "backend": gpuad.backend(), "device": device,
        "cpu": machine.cpu(), "load": machine.load(), "versions": machine.versions(loaded),
        "unavailable": unavailable, "engines": names,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python -m bench", *argv]),
    }
    if device == "gpu":
        import cupy
        meta["gpu"], meta["gpu_peak_bandwidth"] = machine.gpu()
        meta["versions"]["cupy"] = cupy.__version__
    return meta


if __name__ == "__main__":
    sys.exit(main())
