"""The GPU check's first evidence: one PASS/FAIL/SKIP line per check, with its time, in a minute or so.

    python bench/gpu_smoke.py [--backend cupy|numpy|strict] [--nvrtc] [--only NAME ...]

Each check runs on its own, most important first, and compares with NumPy: a closed form, plain
NumPy's central differences, or the NumPy backend's answer. The checks run in a child process, a
fresh one after a check that fails (a CUDA error can spoil the device's context for every later
check) or in place of one that hangs past --check-limit seconds or dies, so every check gets its
line. Compiled functions build their kernels before their first call returns
(GPUAD_COMPILE=sync), so what is checked is the fused kernel, not the unfused steps that run while
it builds. On the NumPy backend the checks that need a GPU say SKIP; without a GPU the CuPy
backend says FAIL. The exit status counts the failures.

The CPU rehearsal of the device run (no GPU needed):

    python bench/gpu_smoke.py --backend strict --nvrtc

--backend strict runs every check that needs no GPU on the NumPy backend with CuPy's strictness
(tests/strict_arrays.py: a NumPy array beside a backend array raises, as CuPy does). --nvrtc then
has NVRTC compile, for sm_90, every CUDA kernel the check's compiled functions would build on
CuPy (each fused region in both index widths, each loop kernel; those of the checks that need a
GPU too), so that no source error waits for the device run. (The per-op kernels of the eager
checks are among those `python -m gpuad.kernels --check` compiles.) Strict arrays stand in for
the no-host-sync check too: within their no_host_reads() a backend value read by the host raises.
"""
import argparse
import contextlib
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's gpuad, not an installed one
import gpuad
import gpuad.numpy as gnp
import gpuad.scipy.linalg as gsl
from gpuad import backends, lax
from gpuad.compiler.replay import plan
from gpuad.compiler.target import target_of
from gpuad.kernels.programs import newton_cubic

CHECKS = []


def check(gpu_only=False, programs=None):
    """Register a check; `programs`: for --nvrtc, a function giving the (jitted function, NumPy
    arguments) a check that needs a GPU compiles (the others' are recorded as they run)."""
    def register(f):
        CHECKS.append((f, gpu_only, programs))
        return f
    return register


def to_np(x):
    return np.asarray(backends.current().to_numpy(x))


def close(got, want, what, rtol=1e-10, atol=None):
    got = to_np(got)
    atol = rtol if atol is None else atol
    if got.shape != np.shape(want) or not np.allclose(got, want, rtol=rtol, atol=atol):
        bad = np.abs(got - want).max() if got.shape == np.shape(want) else "shape"
        raise AssertionError(f"{what}: got {got.ravel()[:4]}..., want {np.ravel(want)[:4]}... (largest error {bad})")


def differences(f, x, h=1e-6):
    """d f / d x by plain NumPy's central differences (f a function of NumPy arrays): the reference
    no gpuad code computes."""
    x = np.asarray(x, dtype=np.float64)
    cols = [(np.asarray(f(x + h * e)) - np.asarray(f(x - h * e))) / (2 * h) for e in np.eye(x.size)]
    return np.stack(cols, -1).reshape(np.shape(f(x)) + x.shape)


def on_numpy_backend(fun, *args):
    """fun(*args) on the NumPy backend, as a NumPy array: the reference for the CuPy backend."""
    before = gpuad.backend()
    gpuad.set_backend("numpy")
    try:
        return to_np(fun(*[gnp.asarray(a) if isinstance(a, np.ndarray) else a for a in args]))
    finally:
        gpuad.set_backend(before)


def loops_ran(jitted, *args):
    """The schedule ("whole" or "element") of each loop of jitted's program that ran as one kernel,
    None for one that ran from Python (gpuad/compiler/loop_kernel.py)."""
    specs = [eq.params["spec"] for eq in jitted.lower(*args).program.equations
             if hasattr(eq.params.get("spec"), "kernel")]
    kernels = [s.kernel(target_of()) for s in specs]
    return [k.schedule if k is not None and k.runner is not None and k.runner.call else None for k in kernels]


def ran_as(jitted, args, schedules, what):
    got = loops_ran(jitted, *args)
    if got != schedules:
        raise AssertionError(f"{what}: its loops ran as {got}, not as kernels of schedules {schedules}")


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


# ---------------------------------------------------------------- loops as one kernel
P = np.stack([np.linspace(0.5, 3.0, 256), np.linspace(2.0, 0.2, 256)], axis=1)  # 256 cubics' coefficients
newton = newton_cubic(gnp, lax.while_loop)  # (root of x^3 + p0 x - p1 by Newton, its trips): float and int carries


def _root(p):
    return newton(p)[0]


def _cubic_root(p):
    """The real root of x^3 + p0 x - p1 (p0 > 0: the only one), by Cardano's formula."""
    r, q = p[..., 1] / 2, p[..., 0] / 3
    s = np.sqrt(r ** 2 + q ** 3)
    return np.cbrt(r + s) + np.cbrt(r - s)


def _root_jacobian(p):
    """d root / d p by the implicit-function theorem: (-x, 1) / (3 x^2 + p0)."""
    x = _cubic_root(p)
    return np.stack([-x, np.ones_like(x)], -1) / (3 * x ** 2 + p[..., 0])[..., None]


def _newton_trips(p):
    """Each cubic's Newton trips in plain NumPy (the loop's condition, as newton_cubic's)."""
    x, k = p[:, 1].copy(), np.zeros(len(p), np.int64)
    for _ in range(61):
        go = (np.abs(x ** 3 + p[:, 0] * x - p[:, 1]) > 1e-13) & (k < 60)
        x = np.where(go, x - (x ** 3 + p[:, 0] * x - p[:, 1]) / (3 * x ** 2 + p[:, 0]), x)
        k += go
    return k


@check()
def while_loop_kernel():
    """A Newton solve as one kernel: one block looping until __syncthreads_or finds no element
    going on (whole), and under vmap a thread per example stopping on its own condition
    (element); derivatives by the implicit-function theorem."""
    p, ps = gnp.asarray(P[7]), gnp.asarray(P)
    f = gpuad.jit(newton)
    x, _ = f(p)
    ran_as(f, (p,), ["whole"], "jit(while_loop)")
    close(x, _cubic_root(P[7]), "jit(while_loop)'s root", rtol=1e-12)
    g = gpuad.jit(gpuad.vmap(newton))
    xs, ks = g(ps)
    ran_as(g, (ps,), ["element"], "jit(vmap(while_loop))")
    close(xs, _cubic_root(P), "jit(vmap(while_loop))'s roots", rtol=1e-12)
    ks, want = to_np(ks), _newton_trips(P)
    # the last residual is far from the 1e-13 bound (quadratic convergence), but pow may round apart
    if len(set(ks.tolist())) < 2 or np.abs(ks - want).max() > 1:
        raise AssertionError(f"trips {ks[:8]}... against NumPy's Newton {want[:8]}...")
    for name, t in (("jacfwd", gpuad.jacfwd), ("jacrev", gpuad.jacrev)):
        close(gpuad.jit(t(_root))(p), _root_jacobian(P[7]), f"jit({name}(while_loop))", rtol=1e-8)
    h = gpuad.jit(gpuad.vmap(gpuad.jacfwd(_root)))
    close(h(ps), _root_jacobian(P), "jit(vmap(jacfwd(while_loop)))", rtol=1e-8)
    ran_as(h, (ps,), ["element"], "jit(vmap(jacfwd(while_loop)))")


def _wobble(i, y):
    return y * 0.9 + gnp.sin(y) * i  # reads the loop index as a float


def _wobbled(x, n):
    """fori_loop(0, n, _wobble, x) in plain NumPy, each element its own n."""
    x, n = np.array(x, dtype=np.float64), np.broadcast_to(n, np.shape(x))
    for i in range(int(n.max(initial=0))):
        x = np.where(i < n, x * 0.9 + np.sin(x) * i, x)
    return x


@check()
def fori_loop_run_time_bound():
    """fori_loop with a bound known when it runs: a while loop as one kernel, whole and (vmap
    with a bound per example: each example its own trips) per element; grad and jacfwd."""
    x, xs, ns = np.linspace(0.0, 1.0, 5), np.linspace(-1.0, 1.0, 300), np.arange(300) % 9
    f = gpuad.jit(lambda x, n: lax.fori_loop(0, n, _wobble, x))
    for n in (0, 1, 7):
        close(f(gnp.asarray(x), n), _wobbled(x, n), f"jit(fori_loop(0, {n}))", rtol=1e-13)
    ran_as(f, (gnp.asarray(x), 7), ["whole"], "jit(fori_loop(0, n))")
    per = gpuad.jit(gpuad.vmap(lambda x, n: lax.fori_loop(0, n, _wobble, x)))
    close(per(gnp.asarray(xs), gnp.asarray(ns)), _wobbled(xs, ns), "jit(vmap(fori_loop(0, n)))", rtol=1e-13)
    ran_as(per, (gnp.asarray(xs), gnp.asarray(ns)), ["element"], "jit(vmap(fori_loop(0, n)))")

    def total(x, n):
        return gnp.sum(lax.fori_loop(0, n, _wobble, x) ** 2)
    fd = differences(lambda x: np.sum(_wobbled(x, 6) ** 2), x)
    for name, t in (("grad", gpuad.grad), ("jacfwd", gpuad.jacfwd)):
        close(gpuad.jit(t(total))(gnp.asarray(x), 6), fd, f"jit({name}(fori_loop(0, n)))", rtol=1e-6, atol=1e-7)


def _pendulum(z, steps=60, h=0.05):
    """z = (angle, speed, p0, p1) -> the state after `steps` midpoint steps of a damped pendulum."""
    def step(i, y):
        def v(y):
            return gnp.stack([y[1], -z[2] * gnp.sin(y[0]) - z[3] * y[1]])
        return y + h * v(y + 0.5 * h * v(y))
    return lax.fori_loop(0, steps, step, z[:2])


def _pendulum_np(z, steps=60, h=0.05):
    z = np.asarray(z, dtype=np.float64)
    y = z[:2]
    for _ in range(steps):
        def v(y):
            return np.array([y[1], -z[2] * np.sin(y[0]) - z[3] * y[1]])
        y = y + h * v(y + 0.5 * h * v(y))
    return y


def _decay(c, x):
    c = c * 0.9 + gnp.sin(x * c)
    return c, c * x


def _decay_np(c, xs):
    """lax.scan(_decay, c, xs, reverse=True) in plain NumPy."""
    ys = np.zeros_like(xs)
    for t in reversed(range(len(xs))):
        c = c * 0.9 + np.sin(xs[t] * c)
        ys[t] = c * xs[t]
    return c, ys


@check()
def scan_loop_kernel():
    """A scan as one kernel: a small coupled ODE with its tangents (one block), vmap's examples
    (a thread each), a reversed scan with stacked outputs."""
    z = np.array([0.7, -0.3, 1.3, 0.2])
    zs = np.random.default_rng(1).uniform(0.1, 1.0, (300, 4))
    f = gpuad.jit(gpuad.jacfwd(_pendulum))
    close(f(gnp.asarray(z)), differences(_pendulum_np, z), "jit(jacfwd(scan))", rtol=1e-6, atol=1e-8)
    ran_as(f, (gnp.asarray(z),), ["whole"], "jit(jacfwd(scan))")
    g = gpuad.jit(gpuad.vmap(gpuad.jacfwd(_pendulum)))
    got = to_np(g(gnp.asarray(zs)))
    ran_as(g, (gnp.asarray(zs),), ["element"], "jit(vmap(jacfwd(scan)))")
    for b in (0, 123, 299):
        close(got[b], differences(_pendulum_np, zs[b]), f"jit(vmap(jacfwd(scan))), example {b}", rtol=1e-6, atol=1e-8)
    c0, xs = np.array([0.3, -0.2, 0.5]), np.linspace(-1.0, 1.0, 24).reshape(8, 3)
    s = gpuad.jit(lambda c, xs: lax.scan(_decay, c, xs, reverse=True))
    c, ys = s(gnp.asarray(c0), gnp.asarray(xs))
    want_c, want_ys = _decay_np(c0, xs)
    close(c, want_c, "jit(scan, reverse=True)'s carry", rtol=1e-13)
    close(ys, want_ys, "jit(scan, reverse=True)'s stacked outputs", rtol=1e-13)


# ---------------------------------------------------------------- kernels loaded from the disk cache
def _cached_program(x, n):
    """Fused regions (a Jacobian) and a loop kernel in one compiled program."""
    return gpuad.jacfwd(_f)(x, gnp.asarray(W)), lax.fori_loop(0, n, _wobble, x)


def _cache_child(stage):
    """One process of the cache check (run by cubin_cache_across_processes): "build" fills the
    kernel cache; "load" runs the program with NVRTC refusing to compile (on CuPy: every CUBIN
    loaded from the cache as a cupy.RawModule, the program fused from its first call)."""
    from gpuad.compiler import loop_kernel
    from gpuad.compiler.replay import planned
    from gpuad.kernels import index32, nvrtc
    f, x = gpuad.jit(_cached_program), gnp.asarray(X)
    cupy = gpuad.backend() == "cupy"
    if stage == "build":
        if cupy:
            f(x, 7)
        else:  # no GPU: NVRTC for sm_90
            f.lower(x, 7, backend="cupy").compile()
        return 0

    def refuse(text, name, arch=None):
        raise AssertionError(f"NVRTC compiled {name}: a second process did not find it in the kernel cache")
    nvrtc.compile_ptx = refuse
    lowered = f.lower(x, 7, backend="cupy")
    kernels = [index32.first(k) for k in planned(lowered.program, True, "cupy")[1].values()]
    kernels += [(k.text, k.name) for k in loop_kernel.kernels_of(lowered.program, target_of("cupy"))]
    if len(kernels) < 2 or not nvrtc.cached(kernels):
        raise AssertionError(f"{len(kernels)} kernels, not all in the kernel cache")
    if not cupy:
        lowered.compile()
        return 0
    from gpuad.kernels import launch
    modules, module = [], launch.cupy.RawModule
    launch.cupy.RawModule = lambda **kw: modules.append(kw) or module(**kw)
    os.environ["GPUAD_COMPILE"] = "async"  # cached kernels run from the first call all the same
    jac, y = f(x, 7)
    close(jac, _f_jac(X, W), "the cached program's Jacobian")
    close(y, _wobbled(X, 7), "the cached program's loop", rtol=1e-13)
    missing = [name for _, name in kernels if not callable(launch._built.get(name))]
    if missing:
        raise AssertionError(f"kernels not loaded at the first call: {missing}")
    programs = nvrtc.grouped({name: text for text, name in kernels})
    if len(modules) != len(programs):  # the kernels built together come in one module per NVRTC program
        raise AssertionError(f"{len(modules)} modules loaded for {len(programs)} NVRTC programs")
    return 0


@check()
def cubin_cache_across_processes():
    """NVRTC's CUBINs, built together by one process, loaded by a second one from the disk cache
    (cupy.RawModule) with NVRTC refusing to compile: the kernels' sources and cache keys are the
    same in both processes. Without a GPU the second process finds every CUBIN the first built."""
    with tempfile.TemporaryDirectory(prefix="gpuad-smoke-cache-") as cache:
        env = dict(os.environ, GPUAD_CACHE_DIR=cache, PYTHONPATH=os.pathsep.join(
            [str(Path(__file__).resolve().parent.parent)] + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
        backend = "cupy" if gpuad.backend() == "cupy" else "numpy"
        for stage in ("build", "load"):
            done = subprocess.run([sys.executable, __file__, "--backend", backend, "--cache-child", stage],
                                  env=env, capture_output=True, text=True, timeout=40)
            if done.returncode:
                raise AssertionError(f"the {stage} process failed: {(done.stdout + done.stderr)[-1500:]}")


# ---------------------------------------------------------------- linear algebra, checkpointing, complex
A0 = np.random.default_rng(3).normal(size=(3, 3)) + 3 * np.eye(3)


def _factors(np_, linalg, lu_factor, x):
    """Functions of each factor of eigh, svd, qr, lu_factor and slogdet of matrices made of x,
    invariant under the factors' sign choices (squares of the vectors), with np_ gpuad.numpy or
    NumPy (linalg, lu_factor: theirs)."""
    a = np_.reshape(x, (3, 3)) + A0
    s = a + a.T
    w, v = linalg.eigh(s)
    u, sv, _ = linalg.svd(a)
    q, r = linalg.qr(a)
    lu, _ = lu_factor(a)
    sign, logdet = linalg.slogdet(a)
    return np_.concatenate([w, np_.ravel(v ** 2), sv, np_.ravel(u ** 2), np_.ravel(q ** 2), np_.ravel(r ** 2),
                            np_.ravel(lu), np_.reshape(sign * logdet, (1,))])


@check()
def factorisations():
    """The factorisations of several results (eigh, svd, qr, lu_factor, slogdet; cupy.linalg and
    cuSOLVER on CuPy), eager and compiled, by jacfwd and jacrev."""
    import scipy.linalg
    x = np.linspace(-0.4, 0.4, 9)
    mine = lambda x: _factors(gnp, gnp.linalg, gsl.lu_factor, x)  # noqa: E731
    want = differences(lambda x: _factors(np, np.linalg, scipy.linalg.lu_factor, x), x)
    for name, t in (("jacfwd", gpuad.jacfwd(mine)), ("jacrev", gpuad.jacrev(mine))):
        close(t(gnp.asarray(x)), want, name, rtol=1e-6, atol=1e-7)
        close(gpuad.jit(t)(gnp.asarray(x)), want, f"jit({name})", rtol=1e-6, atol=1e-7)


def _cell(h, w, np_, name=lambda v, n: v):
    a = name(np_.tanh(w @ h), "a")
    return np_.sin(a) * h + a ** 2


def _cells(x, w, policy):
    cell = gpuad.checkpoint(lambda h, w: _cell(h, w, gnp, gpuad.checkpoint_name), policy=policy)
    for _ in range(3):
        x = cell(x, w)
    return gnp.sum(x ** 2)


@check()
def checkpoint_policies():
    """grad through gpuad.checkpoint under each kind of policy, eager and compiled."""
    x, w = np.linspace(-0.5, 0.5, 6), np.linspace(-1.0, 1.0, 36).reshape(6, 6) / 3

    def plain(x):
        for _ in range(3):
            x = _cell(x, w, np)
        return np.sum(x ** 2)
    want = differences(plain, x)
    cp = gpuad.checkpoint_policies
    for name, policy in (("none", None), ("dots_saveable", cp.dots_saveable),
                         ("save_only_these_names('a')", cp.save_only_these_names("a")),
                         ("nothing_saveable", cp.nothing_saveable)):
        g = gpuad.grad(lambda x, w, policy=policy: _cells(x, w, policy))
        close(g(gnp.asarray(x), gnp.asarray(w)), want, f"grad, policy {name}", rtol=1e-6, atol=1e-8)
        close(gpuad.jit(g)(gnp.asarray(x), gnp.asarray(w)), want, f"jit(grad), policy {name}", rtol=1e-6, atol=1e-8)


def _spectral(np_, x):
    """A real function of real x through complex values and FFTs (np_: gpuad.numpy or NumPy)."""
    z = x * np_.exp(1j * x)
    k = np_.fft.fft(z)
    filtered = np_.fft.ifft(k * np_.exp(-0.1 * np_.arange(x.shape[0])))
    return np_.concatenate([np_.real(filtered), np_.abs(np_.fft.rfft(x)) ** 2, np_.imag(z * np_.conj(k))])


@check()
def complex_and_fft():
    """Complex values in fused kernels and cuFFT (cupy.fft), eager and compiled, both modes."""
    x = np.linspace(0.1, 1.3, 8)
    want = differences(lambda x: _spectral(np, x), x)
    for name, t in (("jacfwd", gpuad.jacfwd), ("jacrev", gpuad.jacrev)):
        f = t(lambda x: _spectral(gnp, x))
        close(f(gnp.asarray(x)), want, name, rtol=1e-6, atol=1e-7)
        close(gpuad.jit(f)(gnp.asarray(x)), want, f"jit({name})", rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- region kernels
@check()
def jit_warp_sums_and_index_widths():
    """Row sums of few outputs run a warp per output (gpuad/compiler/warps.py) with 32-bit
    indices (gpuad/kernels/index32.py); a strided (transposed) input is read in place."""
    a = np.random.default_rng(0).uniform(-1, 1, (300, 4096)).T
    f = gpuad.jit(lambda a: gnp.exp(gnp.sin(a).sum(axis=1) * 0.1) + (a * a).sum(axis=1))
    close(f(gnp.asarray(a.T).T), np.exp(np.sin(a).sum(axis=1) * 0.1) + (a * a).sum(axis=1), "jit row sums")


def _masked(m, x):
    return gnp.where(m, gnp.sin(x), gnp.cos(x)) * 2.0 + x


@check()
def region_kernels_of_both_index_widths():
    """One region kernel launched in its 32-bit variant, then in its 64-bit one where a mask is
    a view whose elements lie 2^24 bytes apart in a 2 GiB buffer (offsets past 2^31 items)."""
    from gpuad.kernels import index32
    x = np.linspace(-1.0, 1.0, 130)
    step = 2 ** 24
    big = gnp.zeros((130 * step,), dtype=bool)  # zeros: untouched pages cost no memory on the CPU
    pattern = (np.arange(130) % 3 == 0)
    big[::step] = gnp.asarray(pattern)
    far = big[::step]
    f = gpuad.jit(_masked)
    want = np.where(pattern, np.sin(x), np.cos(x)) * 2.0 + x
    close(f(gnp.asarray(pattern), gnp.asarray(x)), want, "jit, a contiguous mask (32-bit indices)", rtol=1e-14)
    close(f(far, gnp.asarray(x)), want, "jit, a mask read 2^24 items apart (64-bit indices)", rtol=1e-14)
    if gpuad.backend() == "cupy":
        from gpuad.kernels import launch
        (kernel,) = launch_kernels(f, gnp.asarray(pattern), gnp.asarray(x))
        for name in (index32.first(kernel)[1], kernel.name):
            if not callable(launch._built.get(name)):
                raise AssertionError(f"the variant {name} was not launched")
        if index32.first(kernel)[1] == kernel.name:
            raise AssertionError("the region has no 32-bit variant")


def launch_kernels(jitted, *args):
    """The region kernels of jitted's program, planned for the active backend."""
    from gpuad.compiler.replay import planned
    return list(planned(jitted.lower(*args).program, True)[1].values())


@check()
def csr_results():
    x = np.linspace(0.1, 1.0, 200)
    close(gpuad.sparse.jacobian(_stencil)(gnp.asarray(x)).toarray(), _stencil_jac(x), "sparse.jacobian (CSR)")
    close(gpuad.jit(gpuad.sparse.jacobian(_stencil))(gnp.asarray(x)).toarray(), _stencil_jac(x),
          "jit(sparse.jacobian) (CSR)")
    h = gpuad.sparse.hessian(lambda x: gnp.sum(x[1:] * x[:-1] ** 2))
    want = np.diag(np.r_[2 * x[1:], 0.0]) + np.diag(2 * x[:-1], 1) + np.diag(2 * x[:-1], -1)
    close(h(gnp.asarray(x)).toarray(), want, "sparse.hessian (CSR)")
    close(gpuad.jit(h)(gnp.asarray(x)).toarray(), want, "jit(sparse.hessian) (CSR)")


def _stencil(x):
    return gnp.tanh(x[2:] - 2.0 * x[1:-1] + x[:-2]) + 0.1 * gnp.sin(x[1:-1])


def _stencil_jac(x):
    n = x.size
    d = 1.0 - np.tanh(x[2:] - 2 * x[1:-1] + x[:-2]) ** 2
    j = np.zeros((n - 2, n))
    i = np.arange(n - 2)
    j[i, i], j[i, i + 1], j[i, i + 2] = d, -2 * d + 0.1 * np.cos(x[1:-1]), d
    return j


@check()
def time_model_on_the_cupy_target():
    """Fusion keeps a region where the target's time model says it costs less (compiler/seconds.py):
    two independent steps saved a launch on a GPU, not on a CPU; a product moving the bytes NumPy's
    would is left alone on a GPU. The plan for the active backend runs, against closed forms."""
    from gpuad.compiler.fusion import Region, fuse
    rng = np.random.default_rng(0)
    g, s, t = rng.normal(size=(256, 16, 32)), rng.uniform(size=256), rng.normal(size=(256, 16, 32))
    cases = [("(g * 2, t - 1)", lambda g, t: (g * 2.0, t - 1.0), (g, t), {"numpy": 0, "cupy": 1},
              lambda: (g * 2.0, t - 1.0)),
             ("g * s[:, None, None]", lambda g, s: g * s[:, None, None], (g, s), {"numpy": 1, "cupy": 0},
              lambda: g * s[:, None, None])]
    for name, fun, args, regions, want in cases:
        for target in ("numpy", "cupy"):
            program = gpuad.jit(fun).lower(*args, backend=target).program
            got = sum(isinstance(r, Region) for r in fuse(program, target))
            if got != regions[target]:
                raise AssertionError(f"{name}: {got} regions planned for {target}, want {regions[target]}")
        f = gpuad.jit(fun)
        out = f(*map(gnp.asarray, args))
        for k, (o, w) in enumerate(zip(out if isinstance(out, tuple) else (out,),
                                       want() if isinstance(want(), tuple) else (want(),))):
            close(o, w, f"{name}, result {k}", rtol=1e-14)


@check()
def batched_lu():
    """A stack of matrices LU-factorised in one batched call (the CuPy backend's lu_factor)."""
    import scipy.linalg
    a = np.random.default_rng(2).normal(size=(5, 4, 4))
    lu, piv = gsl.lu_factor(gnp.asarray(a))
    for k in range(len(a)):
        want_lu, want_piv = scipy.linalg.lu_factor(a[k])
        close(lu[k], want_lu, f"lu_factor, matrix {k}")
        close(piv[k], want_piv, f"lu_factor's pivots, matrix {k}", rtol=0)


# ---------------------------------------------------------------- what only a GPU shows
def _layers(x):
    """Twelve layers of a stencil: a region per layer and per adjoint, a run of kernels worth a graph."""
    for _ in range(12):
        x = gnp.tanh(x[1:] * 1.01 + x[:-1]) + gnp.concatenate([x[:1], x[1:-1] * 0.5, x[-1:]])[:-1]
    return x


_GRAPHED = [np.linspace(-1, 1, 40) * (0.5 + 0.25 * k) for k in range(3)]


@check(gpu_only=True, programs=lambda: [(gpuad.jit(gpuad.jacrev(_layers)), (_GRAPHED[0],))])
def cuda_graph_of_a_stencil():
    f = gpuad.jit(gpuad.jacrev(_layers))
    if f.lower(gnp.asarray(_GRAPHED[0])).graphs < 1:
        raise AssertionError("no run of steps planned as a CUDA graph")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a capture that fails warns
        got = [to_np(f(gnp.asarray(x))) for x in _GRAPHED]  # plain, captured, replayed
    for k, x in enumerate(_GRAPHED):
        close(got[k], on_numpy_backend(gpuad.jacrev(_layers), x), f"graphed jacrev, call {k}", rtol=1e-12)


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


def _steady_calls(asarray):
    """{name: (function, arguments)} of the calls whose steady state must not wait for the GPU."""
    x, w, xs, layers = asarray(X), asarray(W), asarray(np.linspace(0.1, 1.0, 200)), asarray(np.linspace(-1, 1, 40))
    cp = gpuad.checkpoint_policies
    return {"eager jacfwd": (gpuad.jacfwd(_f), (x, w)), "jit jacrev": (gpuad.jit(gpuad.jacrev(_f)), (x, w)),
            "jit hessian": (gpuad.jit(gpuad.hessian(_g)), (x,)),
            "jit sparse.jacobian": (gpuad.jit(gpuad.sparse.jacobian(_stencil)), (xs,)),
            "jit jacrev, CUDA graphs": (gpuad.jit(gpuad.jacrev(_layers)), (layers,)),
            "jit while_loop kernel (whole)": (gpuad.jit(newton), (asarray(P[7]),)),
            "jit vmap while_loop kernel (element)": (gpuad.jit(gpuad.vmap(newton)), (asarray(P),)),
            "jit fori_loop(0, n) kernel": (gpuad.jit(lambda x, n: lax.fori_loop(0, n, _wobble, x)),
                                           (xs, asarray(np.int64(7)))),
            "jit jacfwd scan kernel": (gpuad.jit(gpuad.jacfwd(_pendulum)), (asarray(np.array([0.7, -0.3, 1.3, 0.2])),)),
            "jit grad checkpoint": (gpuad.jit(gpuad.grad(lambda x, w: _cells(x, w, cp.dots_saveable))),
                                    (x, asarray(np.eye(6) / 2))),
            "jit jacrev FFT": (gpuad.jit(gpuad.jacrev(lambda x: _spectral(gnp, x))), (x,))}


class Skip(Exception):
    """A check that does not apply on this backend."""


def _no_host_sync():
    """The guard under which a host synchronisation raises: CuPy's, or the strict arrays' own
    (--backend strict: a backend array's value read by the host)."""
    if gpuad.backend() == "cupy":
        import cupyx
        return cupyx.allow_synchronize(False)  # CuPy raises DeviceSynchronized
    if "strict_arrays" not in sys.modules:
        raise Skip("needs the CuPy backend or strict arrays (--backend strict)")
    return sys.modules["strict_arrays"].no_host_reads()  # raises HostRead


@check(programs=lambda: [c for c in _steady_calls(np.asarray).values() if hasattr(c[0], "lower")])
def no_host_sync_in_a_steady_call():
    _no_host_sync()  # Skip where there is no guard
    calls = _steady_calls(gnp.asarray)
    for f, args in calls.values():  # the first calls trace, plan, compile, capture graphs
        f(*args), f(*args)
    failed = []
    for name, (f, args) in calls.items():
        with _no_host_sync():
            try:
                f(*args)
            except Exception as e:
                failed.append(f"{name}: {type(e).__name__}: {e}")
    if failed:
        raise AssertionError("; ".join(failed))


# ---------------------------------------------------------------- NVRTC of what the checks compile (--nvrtc)
class Recorded:
    """The compiled functions a check calls with concrete arguments (--nvrtc), recorded as they run."""

    def __init__(self):
        self.calls = {}

    @contextlib.contextmanager
    def recording(self):
        from gpuad.core import Tracer
        jitted = type(gpuad.jit(abs))
        call = jitted.__call__

        def recorded(f, *args, **kwargs):
            leaves = list(args) + list(kwargs.values())
            if not any(isinstance(a, Tracer) for a in leaves):
                key = (id(f), tuple((np.shape(a), str(getattr(a, "dtype", type(a)))) for a in leaves))
                self.calls.setdefault(key, (f, args, kwargs))  # read when compiled: no host read in the check
            return call(f, *args, **kwargs)
        jitted.__call__ = recorded
        try:
            yield self
        finally:
            jitted.__call__ = call

    def add(self, programs):
        for f, args in programs:
            self.calls.setdefault((id(f), len(self.calls)), (f, list(args), {}))


def _plain(a):
    return np.asarray(to_np(a)) if backends.current().is_array(a) else a


def nvrtc_check(compiled, where):
    """NVRTC (sm_90) on the CUDA kernels of each recorded call planned for CuPy: every region in
    both index widths, every loop kernel. Returns (kernels compiled, [errors])."""
    from gpuad.compiler import loop_kernel
    from gpuad.compiler.replay import planned
    from gpuad.kernels import index32, nvrtc
    cupy = target_of("cupy")
    sources, errors = {}, []
    for f, args, kwargs in compiled.calls.values():
        try:
            program = f.lower(*map(_plain, args), backend="cupy", **{k: _plain(a) for k, a in kwargs.items()}).program
            for k in planned(program, True, cupy)[1].values():
                sources.update({name: text for text, name in {index32.first(k), (k.text, k.name)}})
            sources.update({k.name: k.text for k in loop_kernel.kernels_of(program, cupy)})
        except Exception as e:  # planning or rendering failed: nothing to compile
            errors.append(f"planning {getattr(f, '__name__', f)} for CuPy: {type(e).__name__}: {e}")
    built = nvrtc.build([(text, name) for name, text in sources.items()], nvrtc.ARCH, where)
    errors += [f"{name}: {str(e)[:1500]}" for name, e in built.items() if isinstance(e, nvrtc.CompileError)]
    return len(sources), errors


def _strict():
    """The NumPy backend with CuPy's strictness (tests/strict_arrays.py)."""
    import pytest
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from strict_arrays import install
    install(pytest.MonkeyPatch())


def run(f, gpu_only, programs, nvrtc_folder):
    """Run one check, print its line (and its NVRTC line under --nvrtc); returns its failures."""
    failed = 0
    compiled = Recorded()
    start = time.perf_counter()
    try:
        if gpu_only and gpuad.backend() != "cupy":
            raise Skip("needs the CuPy backend")
        with compiled.recording() if nvrtc_folder is not None else contextlib.nullcontext():
            f()
        gpuad.block_until_ready(None)
        print(f"PASS {f.__name__} ({time.perf_counter() - start:.2f} s)", flush=True)
    except Skip as e:
        print(f"SKIP {f.__name__}: {e}", flush=True)
        if programs is not None and nvrtc_folder is not None:
            compiled.add(programs())
    except Exception as e:
        failed += 1
        print(f"FAIL {f.__name__} ({time.perf_counter() - start:.2f} s): {type(e).__name__}: {e}", flush=True)
        traceback.print_exc(limit=-3, file=sys.stdout)
    if nvrtc_folder is not None and compiled.calls:
        start = time.perf_counter()
        count, errors = nvrtc_check(compiled, nvrtc_folder)
        word = "FAIL" if errors else "PASS"
        print(f"{word} nvrtc {f.__name__}: {count} CUDA kernels of {len(compiled.calls)} compiled functions "
              f"({time.perf_counter() - start:.2f} s){': ' + '; '.join(errors) if errors else ''}", flush=True)
        failed += bool(errors)
    return failed


def _read_into(stream, lines):
    for line in stream:
        lines.put(line)
    lines.put(None)


def supervised(argv, names, limit, script=__file__):
    """Run the checks `names` in a child process (`script` *argv --child --only *names), and in a
    fresh one after a check that fails (a CUDA error can leave the device's context unusable for
    every later check), hangs past `limit` seconds (a kernel that never ends: it is killed) or
    dies: every check gets its line. Returns the failures."""
    failed, todo = 0, list(names)
    while todo:
        child = subprocess.Popen([sys.executable, script, *argv, "--child", "--only", *todo], text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        lines = queue.Queue()
        threading.Thread(target=_read_into, args=(child.stdout, lines), daemon=True).start()
        current, since, dirty = None, time.monotonic(), False
        try:
            while True:
                try:
                    line = lines.get(timeout=max(0.1, since + limit - time.monotonic()))
                except queue.Empty:
                    if current is None:
                        print(f"FAIL gpu_smoke: no check started within {limit} s", flush=True)
                        return failed + len(todo)
                    line = f"FAIL {current}: no result after {limit} s: killed (a kernel that never ends?)\n"
                if line is None:  # the child ended: the check it was running died with it
                    if current in todo:
                        print(f"FAIL {current}: the process died (exit status {child.wait()})", flush=True)
                        failed += 1
                        todo.remove(current)
                    elif current is None:  # it ran no check: the backend did not start
                        return failed + len(todo)
                    break
                word, _, rest = line.partition(" ")
                name = rest.split(" ", 1)[0].rstrip(":\n")
                if word == "START":
                    if dirty:  # after a failure, the next check in a fresh process
                        break
                    current, since = name, time.monotonic()
                    continue
                print(line, end="", flush=True)
                failed += word == "FAIL"
                if word in ("PASS", "FAIL", "SKIP") and name == current:
                    todo.remove(current)
                    dirty = word == "FAIL"
                    if line.startswith(f"FAIL {current}: no result"):
                        break
        finally:  # the child and what it started (the cache check's processes)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    return failed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="cupy", choices=("cupy", "numpy", "strict"))
    parser.add_argument("--nvrtc", action="store_true", help="NVRTC on every CUDA kernel the checks compile")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these checks only")
    parser.add_argument("--check-limit", type=float, default=40.0, metavar="SECONDS",
                        help="a check running longer is killed and reported as failed (default 40)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cache-child", choices=("build", "load"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = [f.__name__ for f, _, _ in CHECKS if not args.only or f.__name__ in args.only]
    unknown = set(args.only or ()) - {f.__name__ for f, _, _ in CHECKS}
    if unknown:
        parser.error(f"no check named {', '.join(sorted(unknown))}")
    if not (args.child or args.cache_child):
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(len(names)))  # `timeout`: the child is killed too
        return supervised(["--backend", args.backend] + ["--nvrtc"] * args.nvrtc, names, args.check_limit)
    os.environ.setdefault("GPUAD_COMPILE", "sync")  # the first call runs the fused kernels it checks
    try:
        _strict() if args.backend == "strict" else gpuad.set_backend(args.backend)
    except ValueError as e:
        print(f"FAIL backend {args.backend}: {e}", flush=True)
        return len(CHECKS)
    if args.cache_child:
        return _cache_child(args.cache_child)
    print(f"gpu_smoke on the {gpuad.backend()} backend{' (strict arrays)' if args.backend == 'strict' else ''}, "
          f"gpuad from {Path(gpuad.__file__).parent}", flush=True)
    with tempfile.TemporaryDirectory(prefix="gpuad-smoke-nvrtc-") as folder:
        failed = 0
        for f, gpu_only, programs in CHECKS:
            if f.__name__ in names:
                print(f"START {f.__name__}", flush=True)
                failed += run(f, gpu_only, programs, folder if args.nvrtc else None)
        return failed


if __name__ == "__main__":
    sys.exit(main())
