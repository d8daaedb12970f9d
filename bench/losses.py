"""python -m bench.losses: programs where compiling could lose, compiled against eager, against the
unfused replay and against jax.jit, on the CPU.

    python -m bench.losses              # every case, 7 interleaved rounds
    python -m bench.losses --cases peaks3,mean_scaled --rounds 15
    python -m bench.losses --rounds 21 --statistic min   # on a shared machine

Each case is written once against an array namespace (gpuad.numpy or jax.numpy); the engines are
gpuad.jit (fused kernels, GPUAD_COMPILE=sync), gpuad.jit with fusion off (the unfused replay),
gpuad eager, and jax.jit (float64). Every result is checked against eager gpuad's. The rounds
interleave the engines (a block of about 20 ms of calls each, in turn: a microsecond call timed
right after another engine's would pay for that engine's threads and caches), so a busy machine
slows them alike, in an order shuffled each round (seeded), so that each engine follows each other
one about as often (in a fixed order, compiled always ran right after jax.jit, and a case without
a region measured 1.24x between two identical replays); the table gives the medians over rounds
of the time per call, and the ratios of compiled to each of the others (below 1: compiled is
faster).
"""
import argparse
import gc
import importlib
import os
import random
import statistics
import sys
import time

import numpy as onp

os.environ.setdefault("GPUAD_COMPILE", "sync")


def peaks(k):
    """jit(jacrev) of a sum of k Gaussian peaks over 2,000 points: J is 2000 x (2k + 2)."""
    def setup(np, m):
        x = np.asarray(onp.linspace(-5.0, 5.0, 2000))

        def f(p):
            y = p[-1] + 0.0 * x
            for j in range(k):
                y = y + p[j] * np.exp(-((x - p[k + j]) / p[-2]) ** 2)
            return y
        p = onp.concatenate([onp.linspace(1.0, 2.0, k), onp.linspace(-2.0, 2.0, k), [1.3, 0.1]])
        return m.jacrev(f), (p,)
    return setup


def mean_scaled(np, m):
    """mean(g * s[:, None, None], axis=0) on (256, 64, 128): no derivative, one pass."""
    rng = onp.random.default_rng(0)
    return (lambda g, s: np.mean(g * s[:, None, None], axis=0)), (rng.normal(size=(256, 64, 128)),
                                                                   rng.uniform(size=256))


def batch_chain(np, m):
    """An elementwise chain over a (4096, 64, 3) batch: one loop of 786,432 elements where its
    kernel merges the axes (gpuad/compiler/merge.py); no derivative."""
    rng = onp.random.default_rng(7)
    return (lambda x, y: np.sin(x) * y + np.exp(0.5 * x)), (rng.normal(size=(4096, 64, 3)),
                                                            rng.normal(size=(4096, 64, 3)))


def dp_sgd(np, m):
    """A DP-SGD step: per-example gradients of a logistic model, their norms, clipping, the mean."""
    rng = onp.random.default_rng(1)
    X, y = rng.normal(size=(256, 64)), (rng.uniform(size=256) > 0.5) * 1.0

    def loss(w, xi, yi):
        z = xi @ w
        return np.log(1.0 + np.exp(-z)) + (1.0 - yi) * z

    def step(w, X, y):
        g = m.vmap(m.grad(loss), in_axes=(None, 0, 0))(w, X, y)
        norms = np.sqrt(np.sum(g * g, axis=1))
        scale = np.minimum(1.0, 1.0 / norms)
        return w - 0.1 * np.mean(g * scale[:, None], axis=0)
    return step, (rng.normal(size=64) * 0.1, X, y)


def _spd(n):
    a = onp.random.default_rng(2).normal(size=(n, n))
    return a @ a.T / n + onp.eye(n)


def chol(np, m):
    return m.grad(lambda a: np.sum(np.linalg.cholesky(a))), (_spd(300),)


def chol_solve(np, m):
    b = onp.random.default_rng(3).normal(size=(300, 4))

    def f(a):
        return np.sum(m.solve_triangular(np.linalg.cholesky(a), np.asarray(b), lower=True) ** 2)
    return m.grad(f), (_spd(300),)


def inverse(np, m):
    return m.grad(lambda a: np.sum(np.linalg.inv(a) ** 2)), (_spd(300),)


def newton(np, m):
    """A Newton step of Robertson's stiff 3-state system: jacfwd, then solve, in one program."""
    def rhs(y):
        return np.stack([-0.04 * y[0] + 1e4 * y[1] * y[2], 0.04 * y[0] - 1e4 * y[1] * y[2] - 3e7 * y[1] ** 2,
                         3e7 * y[1] ** 2])

    def step(y):
        def g(z):
            return z - y - 1e-3 * rhs(z)
        return y - np.linalg.solve(m.jacfwd(g)(y), g(y))
    return step, (onp.array([1.0, 1e-5, 0.0]),)


def eigh_loss(n):
    """The gradient of a function of both factors of eigh (sign-free in the eigenvectors)."""
    def case(np, m):
        rng = onp.random.default_rng(4)
        a, c = rng.normal(size=(n, n)), rng.normal(size=n)

        def f(a):
            w, v = np.linalg.eigh(a)
            return np.sum(w * np.asarray(c)) + np.sum(v ** 4)
        return m.grad(f), (a + a.T,)
    return case


def svd_loss(n):
    """The gradient of a function of every factor of the reduced SVD."""
    def case(np, m):
        rng = onp.random.default_rng(5)
        a, c = rng.normal(size=(n, n)), rng.normal(size=n)

        def f(a):
            u, s, vh = np.linalg.svd(a, full_matrices=False)
            return np.sum(s * np.asarray(c)) + np.sum(u ** 4) + np.sum(vh ** 4)
        return m.grad(f), (a,)
    return case


def values_loss(n, decomposition):
    """The gradient of a function of the eigenvalues (eigvalsh) or singular values alone: the
    other factors get no cotangent."""
    def case(np, m):
        rng = onp.random.default_rng(6)
        a, c = rng.normal(size=(n, n)), rng.normal(size=n)
        values = {"eigvalsh": np.linalg.eigvalsh, "svdvals": lambda a: np.linalg.svd(a, compute_uv=False)}

        def f(a):
            return np.sum(values[decomposition](a) * np.asarray(c))
        return m.grad(f), (a + a.T,)
    return case


CASES = {"peaks1": peaks(1), "peaks2": peaks(2), "peaks3": peaks(3), "mean_scaled": mean_scaled,
         "batch_chain": batch_chain,
         "dp_sgd": dp_sgd, "grad_cholesky": chol, "grad_cholesky_solve_triangular": chol_solve,
         "grad_inv": inverse, "newton_stiff": newton, "grad_eigh100": eigh_loss(100), "grad_eigh300": eigh_loss(300),
         "grad_svd100": svd_loss(100), "grad_svd300": svd_loss(300), "grad_eigvalsh300": values_loss(300, "eigvalsh"),
         "grad_svdvals300": values_loss(300, "svdvals")}


class _Gpuad:
    """gpuad as the cases take it; package: its import name (bench/versions.py imports another
    tree's gpuad under another name)."""
    def __init__(self, package="gpuad"):
        gpuad = importlib.import_module(package)
        self.np, self.gpuad = importlib.import_module(f"{package}.numpy"), gpuad
        self.jacrev, self.jacfwd, self.grad, self.vmap = gpuad.jacrev, gpuad.jacfwd, gpuad.grad, gpuad.vmap
        self.solve_triangular = importlib.import_module(f"{package}.scipy.linalg").solve_triangular


class _Jax:
    def __init__(self):
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        import jax
        import jax.numpy as jnp
        import jax.scipy.linalg as jsl
        jax.config.update("jax_enable_x64", True)
        self.np, self.jax = jnp, jax
        self.jacrev, self.jacfwd, self.grad, self.vmap = jax.jacrev, jax.jacfwd, jax.grad, jax.vmap
        self.solve_triangular = jsl.solve_triangular


def engines(name):
    """{engine: zero-argument call} for one case."""
    g = _Gpuad()
    f, args = CASES[name](g.np, g)
    gargs = [g.np.asarray(a) for a in args]
    fused, unfused = g.gpuad.jit(f), g.gpuad.jit(f)
    os.environ["GPUAD_FUSION"] = "off"
    unfused(*gargs)  # its replay planned now, without fusion
    del os.environ["GPUAD_FUSION"]
    calls = {"compiled": lambda: fused(*gargs), "unfused": lambda: unfused(*gargs), "eager": lambda: f(*gargs)}
    try:
        j = _Jax()
    except ImportError:
        return calls
    jf, jargs = CASES[name](j.np, j)
    jitted, jargs = j.jax.jit(jf), [j.np.asarray(a) for a in jargs]
    calls["jax.jit"] = lambda: jitted(*jargs).block_until_ready()
    return calls


def measure(name, rounds, statistic=statistics.median):
    calls = engines(name)
    checked(name, calls, "eager")
    return timed(calls, rounds, statistic)


def checked(name, calls, reference):
    """Each call made once (the first calls, compilation, apart) and its result checked against
    calls[reference]'s."""
    want = onp.asarray(calls[reference]())
    for engine, call in calls.items():
        got = onp.asarray(call())
        if not onp.allclose(got, want, rtol=1e-8, atol=1e-10 * onp.abs(want).max()):
            raise AssertionError(f"{name}: {engine} differs from {reference}")


def timed(calls, rounds, statistic=statistics.median):
    """{key: the statistic of the seconds per call}: rounds interleaving the calls, a block of about
    20 ms of calls each, in an order shuffled each round (each call after each other one)."""
    reps = {key: _reps(call) for key, call in calls.items()}
    times = {key: [] for key in calls}
    shuffled = random.Random(0)
    gc.disable()
    try:
        for _ in range(rounds):
            for key in shuffled.sample(list(calls), len(calls)):
                call = calls[key]
                t = time.perf_counter()
                for _ in range(reps[key]):
                    call()
                times[key].append((time.perf_counter() - t) / reps[key])
    finally:
        gc.enable()
    return {key: statistic(ts) for key, ts in times.items()}


def _reps(call, block_s=0.02):
    """Calls per timed block: enough to fill block_s (a call's own caches warm, as in a loop)."""
    t = time.perf_counter()
    call()
    return max(1, int(block_s / max(time.perf_counter() - t, 1e-7)))


def table(results):
    engines_ = ["compiled", "eager", "unfused", "jax.jit"]
    lines = ["| case | " + " | ".join(engines_) + " | compiled / eager | compiled / unfused | compiled / jax.jit |",
             "|" + " --- |" * 8]
    for name, r in results.items():
        cells = [f"{r[e] * 1e3:.3g} ms" if e in r else "n/a" for e in engines_]
        ratios = [f"{r['compiled'] / r[e]:.2f}" if e in r else "n/a" for e in engines_[1:]]
        lines.append(f"| {name} | " + " | ".join(cells + ratios) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.losses", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--statistic", choices=("median", "min"), default="median",
                    help="of the rounds' times per call (min: on a shared machine, what load added the least)")
    args = ap.parse_args(argv)
    results = {}
    for name in args.cases.split(","):
        results[name] = measure(name, args.rounds, statistics.median if args.statistic == "median" else min)
        print(f"{name}: " + ", ".join(f"{e} {t * 1e3:.3g} ms" for e, t in results[name].items()), file=sys.stderr)
    print(f"load average before the table: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; "
          f"{args.statistic} of {args.rounds} rounds\n")
    print(table(results))


if __name__ == "__main__":
    main()
