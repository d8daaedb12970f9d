"""Backend selection. The core reaches arrays only through the object `current()` returns.

GPUAD_BACKEND=auto|numpy|cupy chooses at first use; auto takes CuPy when a GPU is usable.
"""
import contextlib
import contextvars
import os

from .scipy_functions import scipy_functions  # noqa: F401  (backends.scipy_functions: the ops ask it)

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
