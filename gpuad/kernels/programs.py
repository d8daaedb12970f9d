"""The fused region kernels a compiled program makes, built without running it: the program
traced for a backend (gpuad.jit's lowering), planned into regions, each region rendered for its
target ("cuda" for CuPy, "host" for the CPU) by the replay's own code. `python -m gpuad.kernels
--check` compiles those of the benchmark problems and of PROGRAMS with NVRTC, so CI sees every
kernel a first GPU run would build.
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


def programs():
    """(name, function, args) of programs whose regions --check compiles: float32 ones and mixed
    float32/float64 ones, their values and their derivatives."""
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
    ]
