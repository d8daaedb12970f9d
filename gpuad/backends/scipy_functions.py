"""SciPy's functions (special, linalg) for the arrays of a backend's module, imported at first use."""
import functools
import importlib

# Where an array module's SciPy functions (erf, gammaln, lu_factor, ...) live: NumPy has none.
_SCIPY = {"numpy": "scipy", "cupy": "cupyx.scipy"}


def scipy_functions(xp, submodule, names):
    """{name: function} for arrays of the module xp, from scipy.<submodule> (NumPy) or
    cupyx.scipy.<submodule> (CuPy), imported at the first call of one of them (importing SciPy
    takes about a second: a program without special functions does not wait for it). Where that
    module is missing, each function raises an ImportError that names it when called: gpuad works
    without SciPy until such a function is used. A name the module lacks (cupyx has no jn) raises
    a NotImplementedError that says so when called."""
    module_name = f"{_SCIPY[xp.__name__]}.{submodule}"

    @functools.cache
    def resolved():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            return None
        functions = {name: getattr(module, name, None) for name in names}
        for name in {"polygamma", "yn", "jn"} & set(functions):
            if functions[name] is not None:
                functions[name] = _weak_scalars(xp, functions[name])
        if functions.get("jn") is not None:  # scipy's jn is jv, of real order: gpuad's truncates it, as yn
            functions["jn"] = _whole_order(xp, functions["jn"])
        return functions

    def lazy(name):
        def function(*args, **kwargs):
            functions = resolved()
            if functions is None:
                raise ImportError(f"gpuad's {', '.join(sorted(names))} evaluate with {module_name} on the "
                                  f"{xp.__name__} backend; it is not installed (pip install scipy)")
            if functions[name] is None:
                raise NotImplementedError(f"{module_name} has no {name}: gpuad evaluates it on the NumPy backend "
                                          f"(and in gpuad.jit's kernels) only")
            return functions[name](*args, **kwargs)
        function.__name__ = name
        return function
    return {name: lazy(name) for name in names}


def _weak_scalars(xp, f):
    """f(a, b) with a Python number taking the other argument's dtype, as in NumPy's ufuncs:
    scipy's polygamma calls asarray on its arguments, so polygamma(1, float32 array) would be
    float64 (and the rules of float32 values would promote). yn has no float32 loop at all: its
    value is cast back to the arguments' type."""
    def weak(a, b):
        if isinstance(a, (int, float)) and hasattr(b, "dtype"):
            a = xp.asarray(a, dtype=b.dtype)
        elif isinstance(b, (int, float)) and hasattr(a, "dtype"):
            b = xp.asarray(b, dtype=a.dtype)
        y = f(a, b)
        dtype = xp.result_type(a, b)
        return y.astype(dtype, copy=False) if dtype.kind == "f" and y.dtype != dtype else y
    return weak


def _whole_order(xp, f):
    """f(n, x) at n truncated to a whole number, as the C library's jn and scipy's yn take it."""
    return lambda n, x: f(xp.trunc(n) if hasattr(n, "dtype") else float(int(n)), x)
