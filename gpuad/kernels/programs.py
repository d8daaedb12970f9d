"""The fused region kernels a compiled program makes, built without running it: the program
traced for a backend (gpuad.jit's lowering), planned into regions, each region rendered for its
target ("cuda" for CuPy, "host" for the CPU) by the replay's own code, and the kernels of its
loops run as one (gpuad/compiler/loop_kernel.py). `python -m gpuad.kernels --check` compiles those
of the benchmark problems, of `programs()` and of `loops()` with NVRTC, so CI sees every kernel a
first GPU run would build.
"""
import numpy

TARGETS = {"cuda": "cupy", "host": "numpy"}  # a target's kernels are planned as for this backend


def region_kernels(fun, *args, target="cuda"):
    """The Kernels of every fused region of jit(fun) at args (arrays or ShapeDtypeStructs)."""
    from ..compiler.replay import planned
    from ..jit import jit
    backend = TARGETS[target]
    program = jit(fun).lower(*args, backend=backend).program
    return list(planned(program, True, backend)[1].values())


def loop_kernels(fun, *args, target="cuda"):
    """The kernels of jit(fun)'s loops at args that run as one kernel each."""
    from ..compiler.loop_kernel import kernels_of
    from ..compiler.target import target_of
    from ..jit import jit
    backend = TARGETS[target]
    return kernels_of(jit(fun).lower(*args, backend=backend).program, target_of(backend))


def _mixed(x, y):
    """Every binary row whose CUDA spelling is overloaded or a template, at float32 x and float64 y."""
    import gpuad.numpy as gnp
    from gpuad.scipy import special
    parts = [x ** y, gnp.arctan2(x, y), gnp.hypot(x, y), gnp.maximum(x, y), gnp.minimum(x, y),
             gnp.remainder(x, y), special.polygamma(1, x + y)]
    return sum(gnp.sin(p) for p in parts)


def _float32(x):
    import gpuad.numpy as gnp
    return gnp.tanh(x) * gnp.exp(-x * x) + gnp.maximum(x, 0.5) ** 2.5 + gnp.remainder(x, 0.3)


def _powers(x):
    """Powers by every literal exponent the kernels lower without pow (gpuad/ops/expr.py)."""
    return x ** 3 - x ** 2 + x ** -1 + x ** 0.5 + x ** -0.5 + x ** 0 + x ** 1


def programs():
    """(name, function, args) of programs whose regions --check compiles: float32 ones and mixed
    float32/float64 ones, their values and their derivatives, literal powers."""
    import gpuad
    x32 = numpy.linspace(0.1, 2.0, 64, dtype=numpy.float32)
    y64 = numpy.linspace(0.5, 1.5, 64)
    jac = gpuad.jacfwd(_mixed)
    return [
        ("float32", _float32, (x32,)),
        ("float32 jacfwd", gpuad.jacfwd(_float32), (x32,)),
        ("float32 hessian", gpuad.hessian(lambda x: _float32(x).sum()), (x32[:16],)),
        ("mixed, a Python float argument", _mixed, (x32, 2.5)),
        ("mixed arrays", _mixed, (x32, y64)),
        ("mixed jacfwd", jac, (x32, y64)),
        ("mixed jacrev", gpuad.jacrev(_mixed, argnums=(0, 1)), (x32, y64)),
        ("literal powers jacfwd", gpuad.jacfwd(_powers), (y64[:16],)),
        ("literal powers float32 jacfwd", gpuad.jacfwd(_powers), (x32[:16],)),
    ]


def newton_cubic(np, while_loop):
    """p -> (the real root of x^3 + p0 x - p1 by Newton's method from x = p1, its trip count, at
    most 60) in a while_loop of a float and an int carry, with np's functions (gpuad's or JAX's)."""
    def solve(p):
        def cond(s):
            x, k = s
            return (np.abs(x ** 3 + p[0] * x - p[1]) > 1e-13) & (k < 60)

        def body(s):
            x, k = s
            return x - (x ** 3 + p[0] * x - p[1]) / (3.0 * x ** 2 + p[0]), k + 1
        return while_loop(cond, body, (p[1], 0))
    return solve


def _newton(p):
    import gpuad.numpy as gnp
    from gpuad import lax
    return newton_cubic(gnp, lax.while_loop)(p)[0]


def _wobble(x, n):
    """A fori_loop with a traced trip count, its body reading the index."""
    import gpuad.numpy as gnp
    from gpuad import lax
    return lax.fori_loop(0, n, lambda i, y: y * 0.9 + gnp.sin(y) * i, x)


def loops():
    """(name, function, args) of programs whose loops run as one kernel each, in both schedules:
    while loops (a condition of comparisons and an int counter), a fori_loop of a traced bound,
    a scan."""
    import gpuad
    import gpuad.numpy as gnp
    from gpuad import lax
    ps = numpy.stack([numpy.linspace(0.5, 3.0, 256), numpy.linspace(2.0, 0.2, 256)], axis=1)
    x = numpy.linspace(0.0, 1.0, 256)
    return [
        ("while_loop jacfwd", gpuad.jacfwd(_newton), (ps[3],)),
        ("while_loop vmap jacfwd", gpuad.vmap(gpuad.jacfwd(_newton)), (ps,)),
        ("fori_loop traced bound", _wobble, (x[:4], 7)),
        ("fori_loop traced bound vmap", gpuad.vmap(_wobble), (x, numpy.arange(256) % 9)),
        ("scan vmap", gpuad.vmap(lambda x: lax.fori_loop(0, 9, lambda i, y: gnp.cos(y) * i + x, x)), (x[:, None],)),
    ]
