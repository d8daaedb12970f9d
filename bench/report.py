"""The results as a markdown report, a JSON file and a PNG bar chart."""
import dataclasses
import json

from .engines import LABELS


def _ms(seconds):
    return f"{seconds:.3g} s" if seconds >= 1 else f"{seconds * 1e3:.3g} ms"


def _bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{n} B"
        n /= 1024


def _failed(res):
    return {"wrong": f"**WRONG** ({res.detail})", "error": f"**error** ({res.detail.split(':')[0]})",
            "n/a": "n/a", "unavailable": res.detail}[res.status]


def _time_cell(res, base):
    if res.status != "ok":
        return _failed(res)
    if base is None or base.status != "ok":
        return _ms(res.median_s)
    return f"{_ms(res.median_s)} ({res.median_s / base.median_s:.2g}x)"


def _by_case(results):
    table = {}
    for r in results:
        table.setdefault(r.case, {})[r.engine] = r
    return table


def _line(cells):
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(heads, rows):
    return ["", _line(heads), _line(["---"] * len(heads))] + [_line(r) for r in rows]


def markdown(results, meta, cases):
    """The report: a header naming the machine, steady-state times with ratios, first calls,
    on the GPU the effective bandwidth of the memory-bound problems, and any failures."""
    table = _by_case(results)
    lines = _header(meta) + _times(table, meta, cases) + _first_calls(table, meta, cases)
    if meta["device"] == "gpu":
        lines += _bandwidth(table, meta, cases)
    failures = [r for r in results if r.status in ("wrong", "error")]
    if failures:
        lines += ["", "## Failures", ""] + [f"- {r.case} / {r.engine}: {r.status}: {r.detail}" for r in failures]
    return "\n".join(lines) + "\n"


def _header(meta):
    v = meta["versions"]
    missing = "; ".join(f"{LABELS[n]}: {why}" for n, why in meta["unavailable"].items())
    return [f"# gpuad benchmarks: {meta['size']} sizes, {meta['backend']} backend",
            "",
            f"- Machine: {meta['cpu']}" + (f"; GPU: {meta['gpu']}" if meta.get("gpu") else "")
            + (f"; load average {meta['load']:.2f} before the run" if meta.get("load") is not None else "")
            + (f"; other processes used {meta['other_work']:.0%} of the machine's CPU time during the run"
               if meta.get("other_work") is not None else ""),
            "- Versions: " + ", ".join(f"{k} {x}" for k, x in v.items()) + (f"; {missing}" if missing else ""),
            f"- Date: {meta['date']}; command: `{meta['command']}`; host allocator: {meta.get('allocator', 'n/a')}",
            ("- Every result is checked against the problem's closed form before it is timed; "
             "times are the median wall clock over repeated calls, each waited for until computed."),
            ("- Peers compute the same object their own way: on the `*_jacobian` rows JAX runs `jax.jacobian` and "
             "torch `torch.func.jacrev` (reverse mode, their default); autograd has one Jacobian (reverse mode, "
             "a Python loop over outputs) for every Jacobian row, and no vmap.")]


def _times(table, meta, cases):
    engines = meta["engines"]
    peers = [e for e in engines if e != "gpuad"]
    gpuad = table[cases[0].name].get("gpuad") if cases else None
    heads = ["problem", "computes"]
    if gpuad is not None:
        how = next((table[c.name]["gpuad"].peak_how for c in cases if table[c.name]["gpuad"].peak_how), "n/a")
        heads += ["gpuad", f"gpuad peak memory ({how})"]
    rows = []
    for case in cases:
        row = table[case.name]
        base = row.get("gpuad")
        cells = [case.name, case.shape(meta["dims"])]
        if base is not None:
            mem = _bytes(base.peak_bytes) if base.peak_bytes is not None else "n/a"
            cells += [_time_cell(base, None), mem]
        rows.append(cells + [_time_cell(row[e], base) for e in peers])
    return ["", "## Median time per call (ratio: peer time / gpuad time; above 1, gpuad is faster)"] + \
        _table(heads + [LABELS[e] for e in peers], rows)


def _first_calls(table, meta, cases):
    ran = [e for e in meta["engines"] if e not in meta["unavailable"]]
    rows = [[c.name] + [_ms(table[c.name][e].warmup_s) if table[c.name][e].warmup_s is not None
                        else _failed(table[c.name][e]) for e in ran] for c in cases]
    return ["", "## First call (tracing, compilation, caches), excluded from the times above"] + \
        _table(["problem", *(LABELS[e] for e in ran)], rows)


def _bandwidth(table, meta, cases):
    peak = meta.get("gpu_peak_bandwidth")
    engines = [e for e in meta["engines"] if e not in meta["unavailable"]]
    rows = []
    for case in (c for c in cases if c.floor_bytes is not None):
        floor = case.floor_bytes(meta["dims"])
        cells = [case.name, _bytes(floor)]
        for e in engines:
            r = table[case.name][e]
            gbs = floor / r.median_s / 1e9 if r.status == "ok" else None
            cells.append("-" if gbs is None else f"{gbs:.3g} GB/s" + (f" ({gbs * 1e9 / peak:.0%})" if peak else ""))
        rows.append(cells)
    of_peak = f"; in brackets, the share of the {peak / 1e9:.0f} GB/s peak" if peak else ""
    title = ("## Effective bandwidth of the memory-bound problems (the bytes any method must move: "
             f"inputs read and result written once, over the median time{of_peak})")
    return ["", title] + _table(["problem", "memory floor", *(LABELS[e] for e in engines)], rows)


def write_json(path, results, meta):
    with open(path, "w") as fh:
        json.dump({"meta": meta, "results": [dataclasses.asdict(r) for r in results]}, fh, indent=1)


def plot(path, results, meta, cases):
    """A grouped bar chart of median times (log scale). Returns a line saying what happened."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return f"--plot: matplotlib is not installed (pip install matplotlib), so {path} was not written"
    table = _by_case(results)
    engines = [e for e in meta["engines"] if any(table[c.name][e].status == "ok" for c in cases)]
    width = 0.8 / max(len(engines), 1)
    fig, ax = plt.subplots(figsize=(max(8, 0.7 * len(cases)), 4.5))
    for k, e in enumerate(engines):
        xs = [i + k * width for i, c in enumerate(cases) if table[c.name][e].status == "ok"]
        ys = [table[c.name][e].median_s * 1e3 for c in cases if table[c.name][e].status == "ok"]
        ax.bar(xs, ys, width, label=LABELS[e])
    ax.set_yscale("log")
    ax.set_ylabel("median time per call (ms)")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(cases))])
    ax.set_xticklabels([c.name for c in cases], rotation=45, ha="right", fontsize=8)
    ax.set_title(f"gpuad benchmarks: {meta['size']} sizes, {meta['backend']} backend ({meta['device']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"chart written to {path}"
