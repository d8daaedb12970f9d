"""A compiled while_loop (and a fori_loop with a traced bound, which is one) as one kernel
(gpuad/compiler/loop_kernel.py, loops.While.stepped): its condition's integer and comparison
operations inside the kernel, each example's own condition under vmap, the results and derivatives
against the eager loop, finite differences and the implicit-function theorem, and the CUDA
sources by NVRTC and run on the host."""
import shutil

import numpy as np
import pytest
from helpers import assert_close, numerical_jacobian, on_backend, to_np
from test_loop_kernel import _seen_by, cuda_on_the_host, nvrtc  # noqa: F401  (a fixture)

import gpuad
import gpuad.numpy as gnp
from gpuad import backends, lax
from gpuad.compiler import cost
from gpuad.compiler.ir import Program, Var
from gpuad.compiler.target import CUPY, NUMPY, target_of
from gpuad.kernels.programs import newton_cubic

P = np.stack([np.linspace(0.5, 3.0, 40), np.linspace(2.0, 0.2, 40)], axis=1)  # 40 cubics' coefficients


# The real root of x^3 + p0 x - p1 = 0 by Newton's method, and its trip count: the carries a
# float and an int, the condition comparing both
newton = newton_cubic(gnp, lax.while_loop)


def root(p):
    return newton(p)[0]


def implicit(p):
    """d root / d p by the implicit-function theorem: -g_p / g_x for g = x^3 + p0 x - p1."""
    x = to_np(root(on_backend(p)[0]))
    return np.array([-x, 1.0]) / (3.0 * x ** 2 + p[0])


def _whiles(jitted, *args):
    return [eq.params["spec"] for eq in jitted.lower(*args).program.equations if eq.prim.name == "while_loop"]


def _ran(jitted, *args):
    """The schedule of the one while loop kernel of jitted's program, which ran (the tests build
    synchronously); None where the loop ran from Python."""
    (spec,) = _whiles(jitted, *args)
    kernel = spec.kernel(target_of())
    return kernel.schedule if kernel is not None and kernel.runner is not None and kernel.runner.call else None


def test_a_newton_solve_is_one_kernel_and_matches_the_implicit_function_theorem():
    p = on_backend(P[7])[0]
    for jac in (gpuad.jacfwd, gpuad.jacrev):
        f = gpuad.jit(jac(root))
        got = f(p)
        assert_close(got, implicit(P[7]), rtol=1e-8, atol=1e-10)
        assert_close(got, numerical_jacobian(root, [P[7]], 0), rtol=1e-6, atol=1e-8)
    f = gpuad.jit(newton)
    x, k = f(p)
    assert _ran(f, p) == "whole"
    want = newton(p)
    assert_close(x, want[0], rtol=1e-14, atol=1e-15)
    assert int(k) == int(want[1]) and 3 <= int(k) < 60  # the counter, an int carry, counted in the kernel
    (eq,) = [eq for eq in f.lower(p).program.equations if eq.prim.name == "while_loop"]
    alone = Program([a for a in eq.ins if isinstance(a, Var)], [eq], list(eq.outs))
    assert cost.count(alone) == 1  # the whole loop: one launch on CuPy (the replay per trip: the body's each trip)


def test_under_vmap_each_example_runs_its_own_trips_in_one_kernel():
    """Each example stops where its own condition fails (its trip count as the eager loop's),
    the others run on; derivatives per example by both modes."""
    ps = on_backend(P)[0]
    f = gpuad.jit(gpuad.vmap(newton))
    x, k = f(ps)
    assert _ran(f, ps) == "element"
    want_x, want_k = gpuad.vmap(newton)(ps)
    assert_close(x, want_x, rtol=1e-14, atol=1e-15)  # pow: vector math within ulps
    np.testing.assert_array_equal(to_np(k), to_np(want_k))
    assert len(set(to_np(k).tolist())) > 1  # the examples took different numbers of trips
    ifts = np.stack([implicit(p) for p in P])
    for jac in (gpuad.jacfwd, gpuad.jacrev):
        g = gpuad.jit(gpuad.vmap(jac(root)))
        assert_close(g(ps), ifts, rtol=1e-8, atol=1e-10)
        assert _ran(g, ps) == "element"
    few = ps[:5]  # jacfwd of the batched loop: tangents (K, B) beside its (B,) carries
    h = gpuad.jit(gpuad.jacfwd(gpuad.vmap(root)))
    block = to_np(h(few))
    assert _ran(h, few) == "element"
    for b in range(5):
        assert_close(block[b, b], ifts[b], rtol=1e-8, atol=1e-10)
    assert_close(block, numerical_jacobian(gpuad.vmap(root), [P[:5]], 0), rtol=1e-6, atol=1e-8)


def _wobble(i, y):
    return y * 0.9 + gnp.sin(y) * i  # reads the loop index as a float


def test_a_fori_loop_with_a_traced_bound_is_one_kernel():
    x = np.linspace(0.0, 1.0, 5)
    xb, ns = on_backend(x, np.arange(30) % 9)
    f = gpuad.jit(lambda x, n: lax.fori_loop(0, n, _wobble, x))
    for n in (0, 1, 7):
        want = x.copy()
        for i in range(n):
            want = want * 0.9 + np.sin(want) * i
        assert_close(f(xb, n), want, rtol=1e-13, atol=1e-13)
    assert _ran(f, xb, 7) == "whole"
    per = gpuad.jit(gpuad.vmap(lambda x, n: lax.fori_loop(0, n, _wobble, x)))  # each example its own bound
    xs = on_backend(np.linspace(-1.0, 1.0, 30))[0]
    got = per(xs, ns)
    assert _ran(per, xs, ns) == "element"
    assert_close(got, [to_np(lax.fori_loop(0, int(n), _wobble, x)) for x, n in zip(to_np(xs), to_np(ns))],
                 rtol=1e-13, atol=1e-13)

    def total(x, n=6):
        return gnp.sum(lax.fori_loop(0, n, _wobble, x) ** 2)
    fd = numerical_jacobian(total, [x], 0)
    for jac in (gpuad.grad, gpuad.jacfwd):
        assert_close(gpuad.jit(jac(total))(xb, 6), fd, rtol=1e-7, atol=1e-8)


def test_a_while_condition_compares_with_numbers_of_its_own_type():
    """x > 0.5 in a kernel whose result is a bool: the 0.5 is a double, not bool(0.5) (true)."""
    x = on_backend(np.linspace(0.6, 0.95, 8))[0]
    f = gpuad.jit(lambda x: lax.while_loop(lambda y: y[0] > 0.5, lambda y: y * 0.97, x))
    assert_close(f(x), lax.while_loop(lambda y: y[0] > 0.5, lambda y: y * 0.97, x), rtol=0, atol=0)
    assert _ran(f, x) == "whole"


def test_a_loop_on_a_global_condition_runs_all_elements_together():
    """A condition over every element (not vmap's per example) keeps the elements coupled."""
    x = on_backend(np.linspace(0.0, 1.0, 30))[0]

    def fixed_point(x):
        return lax.while_loop(lambda y: gnp.max(gnp.abs(gnp.cos(y) - y)) > 1e-12, gnp.cos, x)
    f = gpuad.jit(fixed_point)
    assert_close(f(x), fixed_point(x), rtol=0, atol=0)
    kernel = _whiles(f, x)[0].kernel(target_of())
    assert kernel is None or kernel.schedule == "whole"


def test_check_compiles_the_loop_kernels_of_both_schedules(nvrtc):  # noqa: F811
    """python -m gpuad.kernels --check compiles the loops' kernels (programs.loops) with NVRTC."""
    from gpuad.kernels import programs
    schedules = set()
    for name, fun, args in programs.loops():
        kernels = programs.loop_kernels(fun, *args, target="cuda")
        assert len(kernels) == 1, name
        schedules.add(kernels[0].schedule)
        failed = [e for _, e in nvrtc.compile_cuda(kernels) if e is not None]
        assert not failed, failed[0][:2000]
    assert schedules == {"whole", "element"}


def test_the_cuda_while_kernels_run_on_the_host_as_the_cpu_ones_do(tmp_path):
    """Each CUDA while kernel compiled as C++ (one thread a block) and run on the CPU kernel's
    operands: the same results, per element and whole."""
    if backends.backend() != "numpy" or shutil.which("g++") is None:
        pytest.skip("runs the CUDA sources with g++ beside the NumPy backend's kernels")
    cases = [(gpuad.jit(gpuad.jacfwd(newton)), (P[3],)), (gpuad.jit(gpuad.vmap(gpuad.jacfwd(newton))), (P,))]
    runs = []
    for f, args in cases:
        (spec,) = _whiles(f, *args)
        runs.append((spec.kernel(CUPY), *_seen_by(spec.kernel(NUMPY), f, args)))
    for out, expected in cuda_on_the_host(runs, tmp_path):
        assert_close(out, expected, rtol=1e-14, atol=1e-15)  # the CPU kernel vectorises pow: ulps apart


class _Counted:
    """A ctypes function counting its calls (restype and argtypes set on the real one)."""

    def __init__(self, fn):
        object.__setattr__(self, "fn", fn)
        object.__setattr__(self, "calls", 0)

    def __call__(self, *args):
        object.__setattr__(self, "calls", self.calls + 1)
        return self.fn(*args)

    def __setattr__(self, name, value):
        setattr(self.fn, name, value)


def test_an_operand_a_loop_kernel_refused_is_copied_before_its_next_calls(monkeypatch):
    """jit(jacfwd) of the Newton solve hands its kernel strided columns of the seed, which it
    cannot read in place: refused once, they are copied before each later call (one ctypes call,
    not one more per refused operand), with the same answers."""
    if gpuad.backend() != "numpy":
        pytest.skip("the CPU loop kernels")
    from gpuad.compiler import host
    counted = {}
    real = host.library

    def library(kernels):
        lib = real(kernels)

        class Counting:
            def __getattr__(self, name):
                return counted.setdefault(name, _Counted(getattr(lib, name)))
        return None if lib is None else Counting()
    monkeypatch.setattr(host, "library", library)
    monkeypatch.setenv("GPUAD_COMPILE", "sync")
    f = gpuad.jit(gpuad.jacfwd(root))
    p = P[3]
    first = to_np(f(gnp.asarray(p)))
    [fn] = [c for name, c in counted.items() if name.startswith("gpuad_loop_")]
    assert fn.calls > 1  # refused at least once
    before = fn.calls
    for _ in range(3):
        assert_close(f(gnp.asarray(p)), first, rtol=1e-15, atol=0)
    assert fn.calls - before == 3
    assert_close(first, implicit(p), rtol=1e-8, atol=1e-12)
