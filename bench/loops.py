"""Loops compiled: jit(jacfwd) of an RK4 integration of a small ODE, written with gpuad.lax.fori_loop
and as a Python loop (unrolled into the program), beside jax.jit with jax.lax.fori_loop when JAX is
installed; first call (tracing and kernel builds, with a cold kernel cache) and steady calls,
interleaved in one process.

    python -m bench.loops [--steps 1000] [--unrolled 100] [--batch 100000]
    python -m bench.loops --first [--steps 1000]
    python -m bench.loops --reverse [--steps 1000] [--size 20000] [--slots 50]
    python -m bench.loops --while [--batch 100000] [--steps 1000]

--batch B adds jit(vmap(jacfwd)) of the --unrolled-step loop over B initial conditions. The first
calls of the main table wait for their kernels (GPUAD_COMPILE=sync). --first instead times the
first call as a user gets it: in a fresh process, with an empty kernel cache, gpuad's default
GPUAD_COMPILE=async (the loop runs from Python while its kernel builds) on the NumPy backend, then
jax.jit's first call in the same process; the libraries imported and JAX's CPU client started
before either clock starts.
--reverse times reverse mode instead: grad through a scan of --steps steps of a --size-element carry,
storing every carry and holding --slots of them (binomial checkpointing), eagerly and under jit,
with the peak of NumPy's allocations (tracemalloc); beside JAX's jax.jit(grad) of lax.scan storing
what its VJP needs, of lax.scan over a jax.checkpoint'ed step (every carry), and of the sqrt
scheme (an outer scan over jax.checkpoint'ed blocks of sqrt(steps) steps), its peak the compiled
program's temporaries (memory_analysis).
--while times loops whose trip count is known only when they run: a Newton solve of a cubic by
while_loop (jit(jacfwd), jit(jacrev), and jit(vmap) and jit(vmap(jacfwd)) over --batch cubics, each
its own trip count), and jit(jacfwd) of the RK4 integration by a fori_loop whose bound is an
argument (--steps at the call); gpuad's loop kernel, gpuad's per-trip replay (the loop kernel
switched off: what ran before), and jax.jit with lax.while_loop / lax.fori_loop, interleaved.
"""
import argparse
import functools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as onp

os.environ.setdefault("GPUAD_CACHE_DIR", tempfile.mkdtemp(prefix="gpuad-loops-bench-"))  # a cold cache

import gpuad
import gpuad.numpy as gnp
from gpuad.kernels.programs import newton_cubic


def integrator(np, fori_loop, steps, h=0.01):
    """z = (y0, p) -> y(steps * h) of a damped pendulum by RK4; fori_loop None: a Python loop."""
    def field(y, p):
        return np.stack([y[1], -p[0] * np.sin(y[0]) - p[1] * y[1]])

    def step(i, y, p):
        k1 = field(y, p)
        k2 = field(y + 0.5 * h * k1, p)
        k3 = field(y + 0.5 * h * k2, p)
        k4 = field(y + h * k3, p)
        return y + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)

    def run(z):
        y, p = z[:2], z[2:]
        if fori_loop is not None:
            return fori_loop(0, steps, lambda i, y: step(i, y, p), y)
        for i in range(steps):
            y = step(i, y, p)
        return y
    return run


def first_and_steady(call, block, reps):
    t0 = time.perf_counter()
    out = block(call())
    first = time.perf_counter() - t0
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        block(call())
        times.append(time.perf_counter() - t0)
    return out, first, statistics.median(times) if times else None


def first_calls_here(steps):
    """gpuad's and jax.jit's first call of jit(jacfwd) of the steps-step fori_loop, in this process
    (started with a cold cache by `cold_first_calls`); printed as JSON."""
    import jax
    jax.config.update("jax_enable_x64", True)
    z = onp.array([0.7, -0.3, 1.3, 0.2])
    jax.numpy.zeros(1).block_until_ready()  # JAX's CPU client starts here, outside its clock
    t0 = time.perf_counter()
    out = gpuad.jit(gpuad.jacfwd(integrator(gnp, gpuad.lax.fori_loop, steps)))(gnp.asarray(z))
    t1 = time.perf_counter()
    ref = jax.jit(jax.jacfwd(integrator(jax.numpy, jax.lax.fori_loop, steps)))(jax.numpy.asarray(z))
    ref.block_until_ready()
    t2 = time.perf_counter()
    assert onp.allclose(onp.asarray(out), onp.asarray(ref), rtol=1e-10, atol=1e-12)
    print(json.dumps({"gpuad": t1 - t0, "jax": t2 - t1}))


def cold_first_calls(steps, rounds=3):
    """The first calls, each round in a fresh process with an empty kernel cache."""
    print(f"| round | gpuad jit(jacfwd), fori_loop, {steps} steps | jax.jit(jacfwd), lax.fori_loop | ratio |\n"
          "| --- | --- | --- | --- |")
    for r in range(rounds):
        env = dict(os.environ, GPUAD_CACHE_DIR=tempfile.mkdtemp(prefix="gpuad-loops-first-"), GPUAD_COMPILE="async",
                   GPUAD_BACKEND="numpy", OPENBLAS_NUM_THREADS="1")
        line = subprocess.run([sys.executable, "-m", "bench.loops", "--first-here", "--steps", str(steps)], env=env,
                              capture_output=True, text=True, check=True).stdout.splitlines()[-1]
        t = json.loads(line)
        print(f"| {r + 1} | {t['gpuad']:.3f} s | {t['jax']:.3f} s | {t['gpuad'] / t['jax']:.2f} |")


def reverse_mode(steps, size, slots, reps):
    """Rows (case, time of a call in ms, peak bytes) of grad through the scan, interleaved rounds."""
    rng = onp.random.default_rng(0)
    c0, w = rng.uniform(0.1, 1.0, size), rng.uniform(0.5, 1.5, size)

    def step(np, w):
        return lambda c, _: (c + 0.01 * np.tanh(w * c) * np.cos(c), None)

    def gpuad_loss(checkpoint):
        return lambda w: gnp.sum(gpuad.lax.scan(step(gnp, w), gnp.asarray(c0), None, length=steps,
                                                checkpoint=checkpoint)[0])
    cases = {}
    for checkpoint, what in ((None, "every carry"), (slots, f"{slots} carries")):
        cases[f"gpuad grad, {what}"] = (gpuad.grad(gpuad_loss(checkpoint)), gnp.asarray(w), lambda x: x, "traced")
        cases[f"gpuad jit(grad), {what}"] = (gpuad.jit(gpuad.grad(gpuad_loss(checkpoint))), gnp.asarray(w),
                                              lambda x: x, "traced")
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        jnp = jax.numpy

        def jax_loss(kind):
            def f(w):
                body = step(jnp, w)
                if kind == "sqrt":
                    k = math.isqrt(steps)
                    block = jax.checkpoint(lambda c, _: (jax.lax.scan(body, c, None, length=k)[0], None))
                    c = jax.lax.scan(block, jnp.asarray(c0), None, length=steps // k)[0]
                    return jnp.sum(jax.lax.scan(body, c, None, length=steps - k * (steps // k))[0])
                return jnp.sum(jax.lax.scan(jax.checkpoint(body) if kind == "remat" else body, jnp.asarray(c0),
                                            None, length=steps)[0])
            return jax.jit(jax.grad(f))
        for kind, what in (("all", "lax.scan"), ("remat", "lax.scan of jax.checkpoint(step)"),
                           ("sqrt", "sqrt(steps) blocks, each jax.checkpoint'ed")):
            f = jax_loss(kind)
            temp = f.lower(jnp.asarray(w)).compile().memory_analysis().temp_size_in_bytes
            cases[f"jax.jit(grad), {what}"] = (f, jnp.asarray(w), lambda x: x.block_until_ready(), temp)
    except ImportError:
        print("JAX is not installed: gpuad alone")
    grads, times, peaks = {}, {}, {}
    for name, (f, x, block, peak) in cases.items():  # first calls (compiles), then the peaks of a later call
        block(f(x))
        if peak == "traced":
            tracemalloc.start()
            grads[name] = onp.asarray(block(f(x)))
            peaks[name] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        else:
            grads[name], peaks[name] = onp.asarray(block(f(x))), peak
    for _ in range(reps):  # interleaved: each round times every case once
        for name, (f, x, block, _) in cases.items():
            t0 = time.perf_counter()
            block(f(x))
            times.setdefault(name, []).append(time.perf_counter() - t0)
    first = next(iter(grads.values()))
    for name, g in grads.items():
        if not onp.allclose(g, first, rtol=1e-10, atol=1e-12):
            raise SystemExit(f"{name} disagrees with {next(iter(grads))}")
    return [(name, statistics.median(times[name]) * 1e3, peaks[name]) for name in cases]


def agree(results, problem):
    """Exit where two cases of one problem (problem(case name)) disagree in their outputs."""
    by_problem = {}
    for name, (out, _, _) in results.items():
        by_problem.setdefault(problem(name), []).append((name, onp.asarray(out)))
    for outs in by_problem.values():
        for name, out in outs[1:]:
            if not onp.allclose(out, outs[0][1], rtol=1e-10, atol=1e-12):
                raise SystemExit(f"{name} disagrees with {outs[0][0]}")


def newton(np, while_loop):
    """p -> the real root of x^3 + p0 x - p1 by Newton's method (programs.newton_cubic)."""
    solve = newton_cubic(np, while_loop)
    return lambda p: solve(p)[0]


def while_problems(batch, steps):
    """(problem, make(library, its lax) -> the function to jit, args) of the loops of a run-time
    trip count (bench/versions.py --loops times them under two trees)."""
    rng = onp.random.default_rng(0)
    p = onp.array([1.3, 2.1])
    ps = onp.stack([rng.uniform(0.5, 3.0, batch), rng.uniform(0.2, 2.0, batch)], axis=1)
    z, n = onp.array([0.7, -0.3, 1.3, 0.2]), onp.int64(steps)

    def traced_bound(np, fori_loop):
        return lambda z, n: integrator(np, fori_loop, n)(z)
    return [
        ("jit(jacfwd), while_loop Newton", lambda g, lax: g.jacfwd(newton(g.numpy, lax.while_loop)), (p,)),
        ("jit(jacrev), while_loop Newton", lambda g, lax: g.jacrev(newton(g.numpy, lax.while_loop)), (p,)),
        (f"jit(vmap), while_loop Newton, {batch} cubics", lambda g, lax: g.vmap(newton(g.numpy, lax.while_loop)),
         (ps,)),
        (f"jit(vmap(jacfwd)), while_loop Newton, {batch} cubics",
         lambda g, lax: g.vmap(g.jacfwd(newton(g.numpy, lax.while_loop))), (ps,)),
        (f"jit(jacfwd), fori_loop of a traced bound, RK4, {steps} steps",
         lambda g, lax: g.jacfwd(traced_bound(g.numpy, lax.fori_loop)), (z, n)),
    ]


def while_loops(batch, steps, reps):
    """Rows (case, first call s, later calls' median ms) of the loops of a run-time trip count."""
    from gpuad.compiler import loop_kernel
    problems = while_problems(batch, steps)
    engines = [("gpuad, loop kernel", gpuad, gpuad.lax, gnp.asarray, lambda x: x, None)]
    plan = loop_kernel.plan
    engines.append(("gpuad, per-trip replay", gpuad, gpuad.lax, gnp.asarray, lambda x: x,
                    lambda *a, test=False, **k: None if test else plan(*a, test=test, **k)))
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        engines.append(("jax.jit", jax, jax.lax, jax.numpy.asarray, lambda x: x.block_until_ready(), None))
    except ImportError:
        print("JAX is not installed: gpuad alone")
    cases = []
    for problem, make, args in problems:
        for engine, lib, lax, asarray, block, planned in engines:
            if lib is not gpuad and "jacrev" in problem:
                continue  # JAX refuses reverse mode through while_loop
            cases.append((f"{engine}: {problem}", lib.jit(make(lib, lax)), [asarray(a) for a in args], block, planned))
    results = {}
    for name, f, args, block, planned in cases:  # first calls: each case's tracing and kernel builds
        loop_kernel.plan = planned or plan  # the replay plans its while loops' kernels at the first call
        try:
            results[name] = first_and_steady(functools.partial(f, *args), block, 0)
        finally:
            loop_kernel.plan = plan
    for _ in range(3):  # interleaved rounds, the best round's median kept
        for name, f, args, block, _ in cases:
            out, first, best = results[name]
            med = first_and_steady(functools.partial(f, *args), block, reps)[2]
            results[name] = out, first, med if best is None else min(med, best)
    agree(results, lambda name: name.split(": ", 1)[1])  # every engine's answer to a problem
    return [(name, first, med * 1e3) for name, (_, first, med) in results.items()]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reverse", action="store_true", help="reverse mode through a scan, checkpointed or not")
    parser.add_argument("--while", dest="while_", action="store_true", help="loops of a run-time trip count")
    parser.add_argument("--size", type=int, default=20000, help="--reverse: elements of the carry")
    parser.add_argument("--slots", type=int, default=50, help="--reverse: carries held by the checkpointed scan")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--unrolled", type=int, default=100, help="steps of the Python-loop version")
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=0, help="initial conditions of the vmap case (0: none)")
    parser.add_argument("--python-loop", type=int, default=1, help="0: leave out the Python-loop case")
    parser.add_argument("--first", action="store_true", help="first calls in fresh processes, against jax.jit")
    parser.add_argument("--first-here", action="store_true", help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.first_here:
        return first_calls_here(a.steps)
    if a.first:
        return cold_first_calls(a.steps)
    if a.while_:
        os.environ.setdefault("GPUAD_COMPILE", "sync")  # first calls wait for their kernels
        print("| case | first call | later calls (median) |\n| --- | --- | --- |")
        for name, first, ms in while_loops(a.batch or 100_000, a.steps, max(5, a.reps // 5)):
            print(f"| {name} | {first:.3f} s | {ms:.4f} ms |")
        return
    if a.reverse:
        print(f"grad through {a.steps} steps of a {a.size}-element carry ({a.size * 8 / 1e3:.0f} kB; every carry: "
              f"{a.steps * a.size * 8 / 1e6:.0f} MB)\n")
        print("| case | time (median) | peak memory |\n| --- | --- | --- |")
        for name, ms, peak in reverse_mode(a.steps, a.size, a.slots, max(3, a.reps // 10)):
            print(f"| {name} | {ms:.1f} ms | {peak / 1e6:.1f} MB |")
        return
    z = onp.array([0.7, -0.3, 1.3, 0.2])
    python_loop = [(f"gpuad jit(jacfwd), Python loop, {a.unrolled} steps",
                    gpuad.jit(gpuad.jacfwd(integrator(gnp, None, a.unrolled))), gnp.asarray(z), lambda x: x)]
    cases = [(f"gpuad jit(jacfwd), fori_loop, {a.steps} steps",
              gpuad.jit(gpuad.jacfwd(integrator(gnp, gpuad.lax.fori_loop, a.steps))), gnp.asarray(z), lambda x: x),
             *python_loop[:a.python_loop],
             (f"gpuad jit(jacfwd), fori_loop, {a.unrolled} steps",
              gpuad.jit(gpuad.jacfwd(integrator(gnp, gpuad.lax.fori_loop, a.unrolled))), gnp.asarray(z),
              lambda x: x)]
    zs = onp.random.default_rng(0).uniform(0.1, 1.0, size=(a.batch, 4))
    if a.batch:
        cases.append((f"gpuad jit(vmap(jacfwd)), fori_loop, {a.unrolled} steps, {a.batch} examples",
                      gpuad.jit(gpuad.vmap(gpuad.jacfwd(integrator(gnp, gpuad.lax.fori_loop, a.unrolled)))),
                      gnp.asarray(zs), lambda x: x))
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        for steps in (a.steps, a.unrolled):
            cases.append((f"jax.jit(jacfwd), lax.fori_loop, {steps} steps",
                          jax.jit(jax.jacfwd(integrator(jax.numpy, jax.lax.fori_loop, steps))), jax.numpy.asarray(z),
                          lambda x: x.block_until_ready()))
        if a.batch:
            cases.append((f"jax.jit(vmap(jacfwd)), lax.fori_loop, {a.unrolled} steps, {a.batch} examples",
                          jax.jit(jax.vmap(jax.jacfwd(integrator(jax.numpy, jax.lax.fori_loop, a.unrolled)))),
                          jax.numpy.asarray(zs), lambda x: x.block_until_ready()))
    except ImportError:
        print("JAX is not installed: gpuad alone")
    results = {}
    for name, f, x, block in cases:  # first calls: each case's own tracing and kernel builds
        results[name] = first_and_steady(functools.partial(f, x), block, 0)
    for _ in range(3):  # steady calls interleaved, three rounds, the best round's median kept
        for name, f, x, block in cases:
            out, first, best = results[name]
            med = first_and_steady(functools.partial(f, x), block, a.reps)[2]
            results[name] = out, first, med if best is None else min(med, best)
    print("| case | first call | later calls (median) |\n| --- | --- | --- |")
    for name, (_, first, med) in results.items():
        print(f"| {name} | {first:.3f} s | {med * 1e3:.4f} ms |")
    agree(results, lambda name: name.split("), ", 1)[1])  # the same loop computed by gpuad and JAX

if __name__ == "__main__":
    main()
