"""Loop-invariant code hoisted out of loop bodies (gpuad/loops.py, `hoisted`): a loop whose body
rebuilds the Jacobian of a function of its constants (a jacfwd inside the body, whose seed is
staged there), timed with the pass and with it switched off, interleaved in one process.

    python -m bench.loop_invariant [--n 64] [--steps 200] [--repeats 7]
"""
import argparse
import statistics
import time

import numpy as onp

import gpuad
import gpuad.numpy as gnp
from gpuad import lax, loops


def integrate(x0, c, steps):
    """x <- x + 0.01 J(c) tanh(x), J the Jacobian of c -> sin(c) * c + c[::-1] ** 2."""
    def step(i, x):
        jac = gpuad.jacfwd(lambda c: gnp.sin(c) * c + c[::-1] ** 2)(c)
        return x + 0.01 * (jac @ gnp.tanh(x))
    return lax.fori_loop(0, steps, step, x0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    rng = onp.random.default_rng(0)
    x0, c = gnp.asarray(rng.standard_normal(args.n)), gnp.asarray(rng.standard_normal(args.n))
    real = loops.hoisted
    modes = {"hoisted": real, "not hoisted": lambda body, consts: (body, consts)}
    cases = {"jit(f)": lambda: gpuad.jit(lambda x0, c: integrate(x0, c, args.steps)),
             "jit(jacrev(f, c))": lambda: gpuad.jit(gpuad.jacrev(lambda x0, c: integrate(x0, c, args.steps),
                                                                 argnums=1))}
    fns = {}
    for mode, pass_ in modes.items():
        loops.hoisted = pass_
        for case, make in cases.items():
            fns[case, mode] = make()
            fns[case, mode](x0, c)  # trace and build (the pass runs while tracing)
    loops.hoisted = real
    for case in cases:
        onp.testing.assert_allclose(fns[case, "hoisted"](x0, c), fns[case, "not hoisted"](x0, c), rtol=1e-10)
    times = {key: [] for key in fns}
    for _ in range(args.repeats):
        for key, f in fns.items():
            t = time.perf_counter()
            f(x0, c)
            times[key].append(time.perf_counter() - t)
    print(f"n = {args.n}, {args.steps} steps, median of {args.repeats} calls, interleaved")
    for case in cases:
        on, off = (statistics.median(times[case, m]) for m in modes)
        print(f"{case:20s} hoisted {on * 1e3:9.2f} ms   not hoisted {off * 1e3:9.2f} ms   ({off / on:.1f}x)")


if __name__ == "__main__":
    main()
