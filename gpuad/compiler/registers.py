"""A register estimate for a CUDA region kernel that unrolls its trailing axes (codegen.render
bounds the unrolling by it).

A body is straight-line code over temporaries t0, t1, ...: one declared on a line lives to the
last line naming it, and the most 32-bit words live at once (two for a 64-bit value) estimate the
registers one loop element's values take. Unrolled, the compiler interleaves the copies for
parallelism, so their working sets add up (and more: the budget is set from NVRTC's register
counts for sm_90, bench/results/gpu-kernels-2026-12-07-nvrtc-sm90.md). Past 255 registers a
thread spills to local memory, and well before that an SM holds fewer threads to hide latency with.
"""
import re

BUDGET = 64  # 32-bit words the unrolled copies' values may take together
_DECLARED = re.compile(r"^\s*(float|double|bool|int|long long) (t\d+)\b")
_WORDS = {"float": 1, "int": 1, "bool": 1, "double": 2, "long long": 2}


def words(body):
    """The most 32-bit words of temporaries live at once in a rendered body, as written."""
    lines = body.split("\n")
    last, size, start = {}, {}, {}
    for k, line in enumerate(lines):
        m = _DECLARED.match(line)
        if m:
            size[m.group(2)], start[m.group(2)] = _WORDS[m.group(1)], k
        for name in re.findall(r"\bt\d+\b", line):
            last[name] = k
    change = [0] * (len(lines) + 1)
    for name, k in start.items():
        change[k] += size[name]
        change[last[name] + 1] -= size[name]
    live = most = 0
    for delta in change:
        live += delta
        most = max(most, live)
    return most
