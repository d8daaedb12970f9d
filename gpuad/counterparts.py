"""The gpuad function standing for a NumPy or SciPy function, for dispatch and for messages: a
traced value handed to scipy.special.logsumexp reaches gpuad as np.asarray(x) or as a ufunc call,
and the message should name gpuad.scipy.special.logsumexp, not NumPy's internals."""
import importlib
import sys

# NumPy's and SciPy's modules and the gpuad namespaces that hold their functions under the same names.
NAMESPACES = {"numpy": "gpuad.numpy", "numpy.linalg": "gpuad.numpy.linalg", "numpy.fft": "gpuad.numpy.fft",
              "scipy.special": "gpuad.scipy.special",
              "scipy.linalg": "gpuad.scipy.linalg", "scipy.stats": "gpuad.scipy.stats"}
LIBRARIES = ("numpy", "scipy", "cupy", "cupyx")  # the array libraries a call can pass through


def counterpart(namespace, name):
    """namespace.name where it exists (imported on first use: gpuad.numpy is being built when
    gpuad's modules load, and gpuad.scipy imports gpuad.numpy), else None."""
    module = importlib.import_module(namespace)
    return getattr(module, name, None) if name in getattr(module, "__all__", dir(module)) else None


def library_caller():
    """(the public name of the NumPy or SciPy function the user called that led here, e.g.
    "scipy.special.logsumexp", the name of its gpuad counterpart or None), or None when the
    user's code called gpuad directly."""
    calls, frame = [], sys._getframe(1)
    while frame is not None and package(frame) == "gpuad":
        frame = frame.f_back
    while frame is not None and package(frame) in LIBRARIES:
        calls.append(frame)
        frame = frame.f_back
    for frame in reversed(calls):  # the outermost first: the function the user called
        module = ".".join(p for p in (frame.f_globals.get("__name__") or "").split(".") if not p.startswith("_"))
        name = frame.f_code.co_name
        if getattr(sys.modules.get(module), name, None) is not None and not name.startswith("_"):
            ours = NAMESPACES.get(module)
            return f"{module}.{name}", f"{ours}.{name}" if ours and counterpart(ours, name) is not None else None
    return None


def advice(what):
    """A sentence for a message about `what` a traced value cannot do: the gpuad function to call
    instead of the NumPy or SciPy one that asked, or the general rule."""
    caller = library_caller()
    if caller is None:
        return "Use gpuad.numpy functions instead of numpy ones inside transformed functions."
    public, ours = caller
    if ours is not None:
        return f"{public} {what}: call {ours} instead (the same function, differentiable)."
    return (f"{public} {what}, and gpuad has no counterpart of it yet: compose it from gpuad.numpy "
            "(and gpuad.scipy) functions.")


def package(frame):
    """The top-level package of the module a frame runs in."""
    return (frame.f_globals.get("__name__") or "").split(".")[0]
