"""python -m bench.spectral: jit(jacfwd) of an FFT-based spectral residual, gpuad against jax.jit.

The residual of a periodic Cahn-Hilliard-like step, r(u) = u - dt * irfft(-k^2 rfft(u^3)): its
Jacobian needs two transforms of the whole bundle of n directions (the transforms act on
3 u^2 times the seed, so no compiler can fold them into a constant). Both engines run in this
process, interleaved round by round, in float64; the table gives the median of each engine's
calls and their ratio.

    python -m bench.spectral --n 4096 --rounds 5

The markdown table goes to stdout.
"""
import argparse
import gc
import statistics
import time

import numpy as onp


def residual(np, n, dt=1e-3):
    k2 = (2 * onp.pi * onp.fft.rfftfreq(n, d=1.0 / n)) ** 2

    def r(u):
        return u - dt * np.fft.irfft(-k2 * np.fft.rfft(u ** 3), n=n)
    return r


def engines(n):
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)

    import gpuad
    import gpuad.numpy as gnp
    return {"gpuad jit": (gpuad.jit(gpuad.jacfwd(residual(gnp, n))), lambda x: x),
            "JAX jit": (jax.jit(jax.jacfwd(residual(jnp, n))), jax.block_until_ready)}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.spectral", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=5, help="calls per engine, interleaved")
    args = ap.parse_args(argv)
    u = onp.random.default_rng(0).normal(size=args.n)
    runs = engines(args.n)
    results = {name: onp.asarray(block(f(u))) for name, (f, block) in runs.items()}  # compile, check
    ref = results["JAX jit"]
    for name, J in results.items():
        assert onp.allclose(J, ref, rtol=1e-12, atol=1e-12), f"{name} differs from JAX"
    times = {name: [] for name in runs}
    gc.disable()
    for _ in range(args.rounds):
        for name, (f, block) in runs.items():
            t0 = time.perf_counter()
            block(f(u))
            times[name].append(time.perf_counter() - t0)
    gc.enable()
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"| jit(jacfwd) of the spectral residual, n={args.n} | median s | vs JAX jit |")
    print("|---|---|---|")
    for name, m in med.items():
        print(f"| {name} | {m:.3f} | {m / med['JAX jit']:.2f}x |")


if __name__ == "__main__":
    main()
