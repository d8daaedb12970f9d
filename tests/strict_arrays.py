"""The NumPy backend with CuPy's strictness, so that CI finds where a NumPy array meets a backend
array (CuPy raises TypeError there: `cupy_array + numpy_array`, `cupy.concatenate([c, n])`).

The backend's arrays are `StrictArray`s (an ndarray subclass) made by a strict array module:
numpy's functions, which refuse plain ndarray arguments (NumPy scalars and Python numbers pass,
as in CuPy) and return StrictArrays (0-d ones for scalars); `asarray`/`array`/`from_dlpack` take anything, the copy to
the device. A ufunc or NumPy function that meets a StrictArray and a plain ndarray raises.

    python -m pytest --strict-arrays tests/test_x.py    # a suite on it (tests/conftest.py)

Within `no_host_reads()` a backend array's value read by the host (int(), float(), bool(),
.item(), .tolist(), the backend's to_numpy) raises HostRead, where CuPy waits for the GPU (and
raises DeviceSynchronized within cupyx.allow_synchronize(False)).
"""
import contextlib
import types

import numpy as np

from gpuad import backends
from gpuad.backends import numpy as numpy_backend
from gpuad.compiler import host

_CONVERSIONS = {"asarray", "array", "asanyarray", "ascontiguousarray", "from_dlpack"}


class HostRead(RuntimeError):
    """A backend array's value read by the host within no_host_reads()."""


_refusing = []  # non-empty within no_host_reads()


@contextlib.contextmanager
def no_host_reads():
    """Refuse host reads of backend arrays' values (see the module's docstring) while it lasts."""
    _refusing.append(True)
    try:
        yield
    finally:
        _refusing.pop()


def _read(what):
    if _refusing:
        raise HostRead(f"strict arrays: {what} reads a backend array's value on the host (on CuPy: a wait for "
                       "the GPU)")


def _reading(name):
    method = getattr(np.ndarray, name)

    def read(self, *args, **kwargs):
        _read(f"{name}")
        return method(self, *args, **kwargs)
    read.__name__ = name
    return read


class StrictArray(np.ndarray):
    """A backend array: arithmetic and NumPy functions refuse plain NumPy arrays beside it."""

    __int__, __float__, __complex__, __bool__, __index__ = map(_reading, ("__int__", "__float__", "__complex__",
                                                                          "__bool__", "__index__"))
    item, tolist = _reading("item"), _reading("tolist")

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        _refuse_plain(f"{ufunc.__name__}.{method}", inputs + (out or ()))
        if out is not None:
            kwargs["out"] = tuple(_plain(o) for o in out)
        return _strict(getattr(ufunc, method)(*_plain(inputs), **kwargs))

    def __getitem__(self, index):  # CuPy copies NumPy indices to the device
        return _strict(super().__getitem__(_plain(index)))

    def __setitem__(self, index, value):  # CuPy copies a 0-d value into an element on the device: no host read
        super().__setitem__(_plain(index), _plain(value))

    def __array_function__(self, func, types, args, kwargs):
        _refuse_plain(func.__name__, (args, kwargs))
        return _strict(func(*_plain(args), **_plain(kwargs)))


def _leaves(x):
    if isinstance(x, (list, tuple)):
        for v in x:
            yield from _leaves(v)
    elif isinstance(x, dict):
        yield from _leaves(list(x.values()))
    else:
        yield x


def _refuse_plain(name, args):
    for v in _leaves(args):
        if type(v) is np.ndarray:
            raise TypeError(f"strict arrays: {name} got a plain numpy.ndarray {v.shape} {v.dtype} beside backend "
                            f"arrays (CuPy raises here: convert it with the backend's asarray)")


def _plain(x):
    """x with StrictArrays viewed as ndarrays, inside lists, tuples and dicts."""
    if isinstance(x, _Index):
        return _plain(x.index)
    if isinstance(x, StrictArray):
        return x.view(np.ndarray)
    if isinstance(x, (list, tuple)):
        return type(x)(_plain(v) for v in x) if not hasattr(x, "_fields") else type(x)(*map(_plain, x))
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    return x


def _strict(x):
    """Results as StrictArrays; NumPy scalars as 0-d ones (CuPy returns 0-d arrays)."""
    if type(x) is np.ndarray or isinstance(x, np.generic):
        return np.asarray(x).view(StrictArray)
    if isinstance(x, tuple):
        return type(x)(_strict(v) for v in x) if not hasattr(x, "_fields") else type(x)(*map(_strict, x))
    if isinstance(x, list):
        return [_strict(v) for v in x]
    return x


def strict_function(f, name, converts=False):
    """f refusing plain ndarray arguments (unless it converts them) and returning StrictArrays."""
    def call(*args, **kwargs):
        if not converts:
            _refuse_plain(name, (args, kwargs))
        return _strict(f(*_plain(args), **_plain(kwargs)))
    call.__name__ = call.__qualname__ = name
    return call


class _StrictUfunc:
    """A ufunc of the strict module: its call and methods (reduce, at, outer) are strict."""
    def __init__(self, ufunc):
        self._ufunc, self.__name__ = ufunc, ufunc.__name__
        self._call = strict_function(ufunc, ufunc.__name__)

    def __call__(self, *args, **kwargs):
        return self._call(*args, **kwargs)

    def __getattr__(self, name):
        attr = getattr(self._ufunc, name)
        if name == "at":  # ufunc.at(a, indices, b): CuPy copies NumPy indices, as in indexing
            return lambda a, indices, *b: strict_function(attr, f"{self.__name__}.at")(a, _Index(indices), *b)
        return strict_function(attr, f"{self.__name__}.{name}") if callable(attr) else attr


class _Index:
    """Indices that may be NumPy arrays, unwrapped after the check."""
    def __init__(self, index):
        self.index = index


def strict_module(module, name):
    """A copy of a NumPy module whose functions are strict; ndarray is StrictArray."""
    strict = types.ModuleType(name)
    for key in dir(module):
        attr = getattr(module, key)
        if isinstance(attr, np.ufunc):
            attr = _StrictUfunc(attr)
        elif isinstance(attr, types.ModuleType) and key in ("linalg", "fft", "random"):
            attr = strict_module(attr, f"{name}.{key}")
        elif callable(attr) and not isinstance(attr, type):
            attr = strict_function(attr, key, converts=key in _CONVERSIONS)
        setattr(strict, key, attr)
    strict.ndarray = StrictArray
    return strict


xp = strict_module(np, "numpy")  # named numpy: scipy_functions finds SciPy's for it


class StrictBackend(numpy_backend.NumpyBackend):
    xp = xp

    def to_numpy(self, x):
        if isinstance(x, StrictArray):
            _read("to_numpy")
        return super().to_numpy(x)


def install(monkeypatch):
    """Every NumPy backend made from now on (set_backend, planning) is strict, and SciPy's
    functions for it too, and the results of the host's region kernels (which stand for CuPy's,
    whose results are device arrays); the active backend becomes one."""
    monkeypatch.setattr(numpy_backend, "NumpyBackend", StrictBackend)
    launcher = host.launcher
    monkeypatch.setattr(host, "launcher", lambda *args: strict_function(launcher(*args), "region kernel"))
    scipy_functions = backends.scipy_functions

    def strict_scipy(module, submodule, names):
        found = scipy_functions(np if module is xp else module, submodule, names)
        if module is not xp:
            return found
        return {k: f if isinstance(f, np.ufunc) else strict_function(f, k) for k, f in found.items()}
    monkeypatch.setattr(backends, "scipy_functions", strict_scipy)
    backends.set_backend("numpy")

