"""Backend selection. The core reaches arrays only through the object `current()` returns.

GPUAD_BACKEND=auto|numpy|cupy chooses at first use; auto takes CuPy when a GPU is usable.
"""
import contextlib
import contextvars
import functools
import importlib
import os

_current = None
_planned = contextvars.ContextVar("gpuad_planning", default=None)  # planning()'s, in this thread and context
NAMES = ("auto", "numpy", "cupy")


def current():
    plan = _planned.get()
    if plan is not None:
        return plan
    if _current is None:
        set_backend(os.environ.get("GPUAD_BACKEND", "auto"))
    return _current


def xp():
    """The active backend's array module (numpy or cupy)."""
    return current().xp


# Where an array module's SciPy functions (erf, gammaln, lu_factor, ...) live: NumPy has none.
_SCIPY = {"numpy": "scipy", "cupy": "cupyx.scipy"}


def scipy_functions(xp, submodule, names):
    """{name: function} for arrays of the module xp, from scipy.<submodule> (NumPy) or
    cupyx.scipy.<submodule> (CuPy), imported at the first call of one of them (importing SciPy
    takes about a second: a program without special functions does not wait for it). Where that
    module is missing, each function raises an ImportError that names it when called: gpuad works
    without SciPy until such a function is used."""
    module_name = f"{_SCIPY[xp.__name__]}.{submodule}"

    @functools.cache
    def resolved():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            return None
        functions = {name: getattr(module, name) for name in names}
        if "polygamma" in functions:
            functions["polygamma"] = _weak_scalars(xp, functions["polygamma"])
        return functions

    def lazy(name):
        def function(*args, **kwargs):
            functions = resolved()
            if functions is None:
                raise ImportError(f"gpuad's {', '.join(sorted(names))} evaluate with {module_name} on the "
                                  f"{xp.__name__} backend; it is not installed (pip install scipy)")
            return functions[name](*args, **kwargs)
        function.__name__ = name
        return function
    return {name: lazy(name) for name in names}


def _weak_scalars(xp, f):
    """f(a, b) with a Python number taking the other argument's dtype, as in NumPy's ufuncs:
    scipy's polygamma calls asarray on its arguments, so polygamma(1, float32 array) would be
    float64 (and the rules of float32 values would promote)."""
    def weak(a, b):
        if isinstance(a, (int, float)) and hasattr(b, "dtype"):
            a = xp.asarray(a, dtype=b.dtype)
        elif isinstance(b, (int, float)) and hasattr(a, "dtype"):
            b = xp.asarray(b, dtype=a.dtype)
        return f(a, b)
    return weak


def cupy_usable():
    """True when CuPy imports and sees at least one GPU."""
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def set_backend(name):
    """Select the array backend: "numpy", "cupy" or "auto". Returns the backend's name."""
    global _current
    if name not in NAMES:
        raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(NAMES)}")
    if name == "auto":
        name = "cupy" if cupy_usable() else "numpy"
    if name == "cupy":
        if not cupy_usable():
            raise ValueError("the cupy backend needs CuPy and a usable NVIDIA GPU; "
                             "install gpuad[cuda12] or gpuad[cuda13], or use the numpy backend")
        from .cupy import CupyBackend
        _current = CupyBackend()
    else:
        from .numpy import NumpyBackend, keep_freed_memory
        keep_freed_memory()  # the host's temporaries are reused, not faulted in again each call
        _current = NumpyBackend()
    return name


def backend():
    """The name of the active backend ("numpy" or "cupy")."""
    return current().name


@contextlib.contextmanager
def planning(name):
    """Trace for backend `name` without its device: inside, the active backend computes with NumPy
    but makes the layout decisions of `name` (gpuad.jit(f).lower(..., backend="cupy") on a CPU).
    Other threads keep their backend."""
    if name not in ("numpy", "cupy"):
        raise ValueError(f"unknown backend {name!r} to plan for: choose numpy or cupy")
    from .numpy import NumpyBackend
    plan = NumpyBackend()
    plan.name, plan.batch_innermost = name, name == "numpy"
    token = _planned.set(plan)
    try:
        yield plan
    finally:
        _planned.reset(token)
