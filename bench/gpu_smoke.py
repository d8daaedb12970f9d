"""The GPU check's first evidence: one PASS/FAIL/SKIP line per check, with its time, under a minute.

    python bench/gpu_smoke.py [--backend cupy|numpy]

Each check runs on its own (one failing does not stop the others) and compares with NumPy closed
forms. On the NumPy backend the checks that need a GPU say SKIP; without a GPU the CuPy backend
says FAIL. The exit status counts the failures.
"""
import argparse
import sys
import time
import traceback
import warnings

import numpy as np

import gpuad
import gpuad.numpy as gnp
from gpuad import backends
from gpuad.compiler.replay import plan

CHECKS = []


def check(gpu_only=False):
    def register(f):
        CHECKS.append((f, gpu_only))
        return f
    return register


def to_np(x):
    return np.asarray(backends.current().to_numpy(x))


def close(got, want, what, rtol=1e-10):
    got = to_np(got)
    if got.shape != np.shape(want) or not np.allclose(got, want, rtol=rtol, atol=rtol):
        raise AssertionError(f"{what}: got {got.ravel()[:4]}..., want {np.ravel(want)[:4]}...")


def _f(x, w):  # R^n -> R^m, with its Jacobian in closed form below
    return gnp.tanh(w @ x) * 2.0 + gnp.sin(x[:3]).sum()


def _f_jac(x, w):
    return 2.0 * (1.0 - np.tanh(w @ x) ** 2)[:, None] * w + np.r_[np.cos(x[:3]), np.zeros(x.size - 3)]


def _g(x):  # R^n -> R, Hessian diag(-sin x) + 2 * ones
    return gnp.sum(gnp.sin(x)) + gnp.sum(x) ** 2


X, W = np.linspace(0.1, 1.0, 6), np.linspace(-1, 1, 30).reshape(5, 6)


@check()
def numpy_input():
    x = gnp.asarray(X)
    if not backends.current().is_array(x):
        raise AssertionError(f"gnp.asarray(numpy array) is a {type(x).__name__}, not a backend array")
    close(gpuad.jacfwd(_f)(X, W), _f_jac(X, W), "jacfwd at NumPy inputs")


@check()
def eager_transforms():
    x, w = gnp.asarray(X), gnp.asarray(W)
    close(gpuad.jacfwd(_f)(x, w), _f_jac(X, W), "jacfwd")
    close(gpuad.jacrev(_f)(x, w), _f_jac(X, W), "jacrev")
    close(gpuad.hessian(_g)(x), np.diag(-np.sin(X)) + 2.0, "hessian")
    col = np.array([[2.0], [-1.0]])  # a column broadcast along the rows: the kernels read it in place
    f = lambda x: gnp.sin(gnp.reshape(x, (2, 3)) * gnp.asarray(col)).ravel()  # noqa: E731
    close(gpuad.jacfwd(f)(x), np.diag((np.cos(X.reshape(2, 3) * col) * col).ravel()), "jacfwd, a broadcast column")


@check()
def jit_fused_kernels():
    x, w = gnp.asarray(X), gnp.asarray(W)
    for name, t in (("jacfwd", gpuad.jacfwd(_f)), ("jacrev", gpuad.jacrev(_f))):
        regions = sum(s.kind == "region" for s in plan(gpuad.jit(t).lower(x, w).program))
        if not regions:
            raise AssertionError(f"jit({name}) planned no fused kernel")
        start = time.perf_counter()
        first = gpuad.block_until_ready(gpuad.jit(t)(x, w))
        print(f"    {name}: first call (trace, plan, compile {regions} fused kernels) "
              f"{time.perf_counter() - start:.2f} s", flush=True)
        close(first, _f_jac(X, W), f"jit({name})")


@check()
def jit_warp_sums_and_index_widths():
    """Row sums of few outputs run a warp per output (gpuad/compiler/warps.py) with 32-bit
    indices (gpuad/kernels/index32.py); a strided (transposed) input is read in place."""
    a = np.random.default_rng(0).uniform(-1, 1, (300, 4096)).T
    f = gpuad.jit(lambda a: gnp.exp(gnp.sin(a).sum(axis=1) * 0.1) + (a * a).sum(axis=1))
    close(f(gnp.asarray(a.T).T), np.exp(np.sin(a).sum(axis=1) * 0.1) + (a * a).sum(axis=1), "jit row sums")


def _stencil(x):
    return gnp.tanh(x[2:] - 2.0 * x[1:-1] + x[:-2]) + 0.1 * gnp.sin(x[1:-1])


def _stencil_jac(x):
    n = x.size
    d = 1.0 - np.tanh(x[2:] - 2 * x[1:-1] + x[:-2]) ** 2
    j = np.zeros((n - 2, n))
    i = np.arange(n - 2)
    j[i, i], j[i, i + 1], j[i, i + 2] = d, -2 * d + 0.1 * np.cos(x[1:-1]), d
    return j


def _layers(x):
    """Twelve layers of a stencil: a region per layer and per adjoint, a run of kernels worth a graph."""
    for _ in range(12):
        x = gnp.tanh(x[1:] * 1.01 + x[:-1]) + gnp.concatenate([x[:1], x[1:-1] * 0.5, x[-1:]])[:-1]
    return x


@check(gpu_only=True)
def cuda_graph_of_a_stencil():
    f = gpuad.jit(gpuad.jacrev(_layers))
    xs = [np.linspace(-1, 1, 40) * (0.5 + 0.25 * k) for k in range(3)]
    if f.lower(gnp.asarray(xs[0])).graphs < 1:
        raise AssertionError("no run of steps planned as a CUDA graph")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a capture that fails warns
        got = [to_np(f(gnp.asarray(x))) for x in xs]  # plain, captured, replayed
    gpuad.set_backend("numpy")
    try:
        for k, x in enumerate(xs):
            close(got[k], to_np(gpuad.jacrev(_layers)(x)), f"graphed jacrev, call {k}", rtol=1e-12)
    finally:
        gpuad.set_backend("cupy")


@check()
def batched_lu():
    """A stack of matrices LU-factorised in one batched call (the CuPy backend's lu_factor)."""
    import scipy.linalg

    import gpuad.scipy.linalg as gsl
    a = np.random.default_rng(2).normal(size=(5, 4, 4))
    lu, piv = gsl.lu_factor(gnp.asarray(a))
    for k in range(len(a)):
        want_lu, want_piv = scipy.linalg.lu_factor(a[k])
        close(lu[k], want_lu, f"lu_factor, matrix {k}")
        close(piv[k], want_piv, f"lu_factor's pivots, matrix {k}", rtol=0)


@check()
def csr_result():
    x = np.linspace(0.1, 1.0, 200)
    jac = gpuad.sparse.jacobian(_stencil)(gnp.asarray(x))
    close(jac.toarray(), _stencil_jac(x), "sparse.jacobian (CSR)")


@check(gpu_only=True)
def out_of_memory_retry():
    import cupy
    pool = cupy.get_default_memory_pool()
    pool.free_all_blocks()
    b = cupy.asarray(np.random.default_rng(0).uniform(-1, 1, (2**20, 16)) / 4)
    x = cupy.asarray(np.linspace(-1, 1, 16))

    def f(x):  # a 64-direction sweep holds bundles of 512 MiB; a half fits the limit below
        return gnp.sum(gnp.reshape(gnp.tanh(b @ x), (64, -1)), axis=1)
    expected = to_np(gpuad.jacrev(f)(x))
    pool.set_limit(size=pool.used_bytes() + 700 * 2**20)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = gpuad.jacrev(f, chunk_size=64)(x)
    finally:
        pool.set_limit(size=0)
    if not any("used chunks of" in str(w.message) for w in caught):
        raise AssertionError(f"no retry in chunks: warnings {[str(w.message) for w in caught]}")
    close(got, expected, "jacrev retried in chunks", rtol=1e-12)


@check(gpu_only=True)
def no_host_sync_in_a_steady_call():
    import cupy
    import cupyx
    x, w = cupy.asarray(X), cupy.asarray(W)
    xs, layers = cupy.linspace(0.1, 1.0, 200), cupy.linspace(-1, 1, 40)
    calls = {"eager jacfwd": (gpuad.jacfwd(_f), (x, w)), "jit jacrev": (gpuad.jit(gpuad.jacrev(_f)), (x, w)),
             "jit hessian": (gpuad.jit(gpuad.hessian(_g)), (x,)),
             "jit sparse.jacobian": (gpuad.jit(gpuad.sparse.jacobian(_stencil)), (xs,)),
             "jit jacrev, CUDA graphs": (gpuad.jit(gpuad.jacrev(_layers)), (layers,))}
    for f, args in calls.values():  # the first calls trace, plan, compile, capture graphs
        f(*args), f(*args)
    for name, (f, args) in calls.items():
        with cupyx.allow_synchronize(False):  # CuPy raises DeviceSynchronized at a host synchronisation
            try:
                f(*args)
            except Exception as e:
                raise AssertionError(f"{name}: {type(e).__name__}: {e}") from e


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="cupy", choices=("cupy", "numpy"))
    args = parser.parse_args(argv)
    failed = 0
    try:
        gpuad.set_backend(args.backend)
    except ValueError as e:
        print(f"FAIL backend {args.backend}: {e}", flush=True)
        return len(CHECKS)
    print(f"gpu_smoke on the {gpuad.backend()} backend", flush=True)
    for f, gpu_only in CHECKS:
        if gpu_only and gpuad.backend() != "cupy":
            print(f"SKIP {f.__name__}: needs the CuPy backend", flush=True)
            continue
        start = time.perf_counter()
        try:
            f()
            gpuad.block_until_ready(None)
            print(f"PASS {f.__name__} ({time.perf_counter() - start:.2f} s)", flush=True)
        except Exception as e:
            failed += 1
            print(f"FAIL {f.__name__} ({time.perf_counter() - start:.2f} s): {type(e).__name__}: {e}", flush=True)
            traceback.print_exc(limit=-3, file=sys.stdout)
    return failed


if __name__ == "__main__":
    sys.exit(main())
