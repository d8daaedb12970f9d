"""python -m bench.sparse: sparse Jacobians and Hessians of stencils with gpuad.sparse, the pattern
detection and coloring timed apart from the compressed sweep, against dense gpuad and dense
jit-compiled JAX where the dense matrix fits in memory.

    python -m bench.sparse                 # n = 1000, 4000, 10^4, 10^5
    python -m bench.sparse --sizes 1000000
    python -m bench.sparse --colorings --sizes 10000,100000   # gpuad.sparse.color on more patterns

The markdown table goes to stdout. Detection and coloring run once per input signature (their
first-call times); the sweep is the median of repeated calls, decompression into CSR included,
eager (gpuad.sparse.jacobian(f)) and compiled (gpuad.jit of it). Dense gpuad runs up to n = 4096,
dense JAX up to 10^4 (its n x n bundles: 800 MB each, under 2 GB at the peak); the sparse result
is checked against each dense one, and "JAX / sparse" is dense JAX's time over the eager sweep's.
"""
import argparse
import math
import sys

import numpy as onp
import scipy.sparse as sp

from . import timing

DENSE_MAX = 4_096  # dense gpuad Jacobians up to this n: a bundle of n x n float64 is 128 MB
JAX_DENSE_MAX = 10_000  # dense JAX up to this n: peak resident memory under 2 GB at 10^4


def stencil_1d(np):
    """A 1-D reaction-diffusion residual: tridiagonal Jacobian."""
    def f(x):
        inner = x[:-2] - 2 * x[1:-1] + x[2:] + np.sin(x[1:-1]) * x[1:-1]
        return np.concatenate([x[:1] ** 2 + x[1:2], inner, np.exp(x[-1:]) * x[-2:-1]])
    return f


def laplace_2d(np):
    """A 2-D five-point Laplacian plus a cubic term on a k x k grid, zero boundary."""
    def f(x):
        k = math.isqrt(x.shape[0])
        u = np.pad(x.reshape(k, k), 1)
        lap = u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:] - 4 * u[1:-1, 1:-1]
        return (lap + x.reshape(k, k) ** 3).reshape(k * k)
    return f


def rosenbrock(np):
    """The chained Rosenbrock function: tridiagonal Hessian."""
    def f(x):
        return np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    return f


# name -> (function of a namespace, derivative, coloring mode, size rounding)
FAMILIES = {
    "stencil_1d": (stencil_1d, "jacobian", "column", lambda n: n),
    "laplace_2d": (laplace_2d, "jacobian", "column", lambda n: math.isqrt(n) ** 2),
    "rosenbrock": (rosenbrock, "hessian", "star", lambda n: n),
}


def _csr(rows, cols, n):
    p = sp.csr_array((onp.ones(rows.size, dtype=bool), (rows, cols)), shape=(n, n))
    p.sum_duplicates()
    return p


def grid(n, offsets, wrap=False):
    """The pattern of a stencil with the given (di, dj) on a k x k grid (k = isqrt(n)), natural
    order; wrap: periodic both ways."""
    k = math.isqrt(n)
    i, j = onp.divmod(onp.arange(k * k), k)
    ok = [wrap | (0 <= i + di) & (i + di < k) & (0 <= j + dj) & (j + dj < k) for di, dj in offsets]
    return _csr(onp.concatenate([onp.flatnonzero(o) for o in ok]),
                onp.concatenate([((i + di) % k * k + (j + dj) % k)[o] for (di, dj), o in zip(offsets, ok)]), k * k)


def random_pattern(n, per_row=3):
    rows = onp.repeat(onp.arange(n), per_row)
    return _csr(rows, onp.random.default_rng(0).integers(0, n, rows.size), n)


def arrow(n):
    line = onp.arange(n)
    return _csr(onp.r_[line, line * 0, line], onp.r_[line, line, line * 0], n)


def permuted(p):
    order = onp.random.default_rng(1).permutation(p.shape[0])
    return sp.csr_array(p[order][:, order])


FIVE = [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)]
# name -> pattern of n (a grid: the nearest square); made symmetric, with its diagonal, for star colorings
PATTERNS = {
    "tridiagonal": lambda n: _csr(onp.r_[0:n, 1:n, 0:n - 1], onp.r_[0:n, 0:n - 1, 1:n], n),
    "five-point": lambda n: grid(n, FIVE),
    "13-point": lambda n: grid(n, [(a, b) for a in range(-2, 3) for b in range(-2, 3) if abs(a) + abs(b) <= 2]),
    "9-point box": lambda n: grid(n, [(a, b) for a in range(-1, 2) for b in range(-1, 2)]),
    "random, 3 a row": random_pattern,
    "arrow": arrow,
    "block-diagonal, 8 x 8": lambda n: sp.csr_array(sp.block_diag([onp.ones((8, 8), dtype=bool)] * (n // 8))),
    "five-point, permuted": lambda n: permuted(grid(n, FIVE)),
    "five-point, periodic": lambda n: grid(n, FIVE, wrap=True),
}


def coloring_rows(sizes, color):
    """Colors and first-call times of color(pattern, mode), column and star, per pattern and n."""
    rows = []
    for name, make in PATTERNS.items():
        for n in sizes:
            p = make(n)
            s = sp.csr_array((p + p.T + sp.eye_array(p.shape[0], dtype=bool)) != 0)
            row = {"pattern": name, "n": p.shape[0]}
            for mode, q in (("column", p), ("star", s)):
                colors, row[mode] = timing.first_call(lambda q=q, mode=mode: color(q, mode), lambda r: r)
                row[mode + " colors"] = int(colors.max()) + 1
            rows.append(row)
            print(f"{name} n={n} done", file=sys.stderr, flush=True)
    return rows


def run_case(name, n, jax):
    import gpuad
    import gpuad.numpy as gnp
    make, kind, mode, rounded = FAMILIES[name]
    n = rounded(n)
    f = make(gnp)
    x = gnp.asarray(onp.random.default_rng(0).normal(size=n) * 0.5)
    find = gpuad.sparse.jacobian_sparsity if kind == "jacobian" else gpuad.sparse.hessian_sparsity
    pattern, detect = timing.first_call(lambda: find(f)(x), lambda r: r)
    colors, color = timing.first_call(lambda: gpuad.sparse.color(pattern, mode), lambda r: r)
    sparse_fn = getattr(gpuad.sparse, kind)(f)
    compiled = gpuad.jit(sparse_fn)
    result, _ = timing.first_call(lambda: sparse_fn(x), lambda r: r)
    same = compiled(x)
    assert (same.indices == result.indices).all() and onp.allclose(same.data, result.data, rtol=1e-12), \
        f"{name}: compiled sparse != sparse"
    row = {"problem": name, "n": n, "nnz": pattern.nnz, "colors": int(colors.max()) + 1,
           "detect": detect, "color": color, "sweep": _steady(lambda: sparse_fn(x)).median_s,
           "sweep jit": _steady(lambda: compiled(x)).median_s}
    if n <= DENSE_MAX:
        dense_fn = gpuad.jacfwd(f) if kind == "jacobian" else gpuad.hessian(f)
        _check(name, dense_fn(x), result, "dense gpuad")
        row["dense gpuad"] = _steady(lambda: dense_fn(x)).median_s
    if jax is not None and n <= JAX_DENSE_MAX:
        jf = jax.jit((jax.jacfwd if kind == "jacobian" else jax.hessian)(make(jax.numpy)))
        xj = jax.numpy.asarray(onp.asarray(x))
        _check(name, jf(xj), result, "dense JAX")
        row["dense JAX jit"] = _steady(lambda: jf(xj).block_until_ready()).median_s
        row["JAX / sparse"] = row["dense JAX jit"] / row["sweep"]
    return row


def _check(name, dense, result, what):
    assert onp.allclose(onp.asarray(dense), result.toarray(), rtol=1e-10, atol=1e-10), f"{name}: sparse != {what}"


def _steady(call):
    return timing.steady(call, lambda r: r, budget_s=1.0, min_reps=3, max_reps=50)


def _ms(s):
    return "n/a" if s is None else f"{s * 1e3:.3g} ms"


COLUMNS = ("problem", "n", "nnz", "colors", "detect", "color", "sweep", "sweep jit", "dense gpuad",
           "dense JAX jit", "JAX / sparse")


COLORING_COLUMNS = ("pattern", "n", "column colors", "column", "star colors", "star")


def table(rows, columns=COLUMNS):
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for r in rows:
        cells = [_ratio(r.get(c)) if c == "JAX / sparse" else _ms(r[c]) if isinstance(r.get(c), float)
                 else str(r[c]) if c in r else "n/a" for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ratio(r):
    return "n/a" if r is None else f"{r:,.0f}x"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.sparse", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,4000,10000,100000", help="comma-separated n")
    ap.add_argument("--problems", default=",".join(FAMILIES), help=f"of {', '.join(FAMILIES)}")
    ap.add_argument("--colorings", action="store_true", help="time gpuad.sparse.color on PATTERNS instead")
    args = ap.parse_args(argv)
    if args.colorings:
        import gpuad.sparse
        print(table(coloring_rows(list(map(int, args.sizes.split(","))), gpuad.sparse.color), COLORING_COLUMNS))
        return
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
    except ImportError:
        jax = None
    rows = []
    for name in args.problems.split(","):
        for n in map(int, args.sizes.split(",")):
            rows.append(run_case(name, n, jax))
            print(f"{name} n={rows[-1]['n']} done", file=sys.stderr, flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
