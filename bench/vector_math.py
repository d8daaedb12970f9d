"""The CPU's fused kernels against NumPy on the functions kernels/host_prelude.h declares vectorised
(glibc's libmvec): f(x) * 0.5 + x over 10^6 elements (one fused region), float64 and float32, each
function's fused call and NumPy's interleaved in one process; the ratio fused / NumPy per function.

Run it on two trees (a prelude before and after a change) in alternation, each in a fresh kernel
cache, and compare the ratios: each is taken within one process, so the machine's load cancels.

    GPUAD_CACHE_DIR=$(mktemp -d) OPENBLAS_NUM_THREADS=1 python -m bench.vector_math [--n 1000000]
"""
import argparse
import os
import statistics
import time

import numpy as onp

import gpuad
import gpuad.numpy as gnp
from gpuad.scipy import special

# name: (gpuad's function, NumPy's), over x in [0.05, 0.95]
FUNCTIONS = {
    "tanh": (gnp.tanh, onp.tanh), "sinh": (gnp.sinh, onp.sinh), "cosh": (gnp.cosh, onp.cosh),
    "arcsinh": (gnp.arcsinh, onp.arcsinh), "arccosh": (lambda x: gnp.arccosh(x + 1.0), lambda x: onp.arccosh(x + 1.0)),
    "arctanh": (gnp.arctanh, onp.arctanh), "arcsin": (gnp.arcsin, onp.arcsin), "arccos": (gnp.arccos, onp.arccos),
    "arctan": (gnp.arctan, onp.arctan), "exp2": (gnp.exp2, onp.exp2), "expm1": (gnp.expm1, onp.expm1),
    "log2": (gnp.log2, onp.log2), "log10": (gnp.log10, onp.log10), "log1p": (gnp.log1p, onp.log1p),
    "cbrt": (gnp.cbrt, onp.cbrt), "erfc": (special.erfc, None),
    "arctan2": (lambda x: gnp.arctan2(x, 1.0 - x), lambda x: onp.arctan2(x, 1.0 - x)),
    "hypot": (lambda x: gnp.hypot(x, 1.0 - x), lambda x: onp.hypot(x, 1.0 - x)),
    "sin (vectorised before)": (gnp.sin, onp.sin),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    os.environ.setdefault("GPUAD_COMPILE", "sync")
    print(f"gpuad from {os.path.dirname(gpuad.__file__)}; n = {args.n}; median of {args.repeats}, interleaved")
    print(f"{'function':26s} {'dtype':8s} {'fused ms':>9s} {'NumPy ms':>9s} {'ratio':>6s}")
    for dtype in ("float64", "float32"):
        x = onp.linspace(0.05, 0.95, args.n).astype(dtype)
        for name, (ours, theirs) in FUNCTIONS.items():
            fused = gpuad.jit(lambda x, f=ours: f(x) * 0.5 + x)
            if theirs is None:  # scipy's ufunc, where SciPy is installed
                import scipy.special
                theirs = scipy.special.erfc
            plain = lambda x, f=theirs: f(x) * 0.5 + x  # noqa: E731
            onp.testing.assert_allclose(fused(x), plain(x), rtol=1e-5 if dtype == "float32" else 1e-12,
                                       atol=1e-6 if dtype == "float32" else 1e-14)  # ulps, near zero crossings
            times = {"fused": [], "numpy": []}
            for _ in range(args.repeats):
                for key, f in (("fused", fused), ("numpy", plain)):
                    t = time.perf_counter()
                    f(x)
                    times[key].append(time.perf_counter() - t)
            a, b = statistics.median(times["fused"]), statistics.median(times["numpy"])
            print(f"{name:26s} {dtype:8s} {a * 1e3:9.2f} {b * 1e3:9.2f} {a / b:6.2f}")


if __name__ == "__main__":
    main()
