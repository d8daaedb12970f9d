"""Operators and array methods of traced values, so they behave like arrays, and NumPy's own
functions and ufuncs called on them (NEP 13 and NEP 18), which run as gpuad's."""
import numpy as onp

from ..core import Primitive, Tracer
from ..counterparts import NAMESPACES, advice, counterpart, library_caller
from ..ops.elementwise import astype
from . import elementwise as E
from . import mathematical as M
from . import products as P
from . import reductions as R
from . import shapes, sorting
from .indexing import _At, take_index


def _swap(f):
    return lambda self, other: f(other, self)


def _pow(x, p):
    if isinstance(p, (int, float)) and p == 2:
        return E.square(x)
    return E.power(x, p)


_UFUNCS = dict(vars(E))
_UFUNCS.update(absolute=E.abs, matmul=P.matmul, conjugate=M.conjugate)


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    """NumPy ufuncs on traced values (np.sin(x), W @ x with W a NumPy array) run as gpuad ops, and
    so do scipy.special's (scipy.special.erf(x) runs gpuad.scipy.special.erf)."""
    f = None
    if method == "__call__" and not kwargs:
        f = _UFUNCS.get(ufunc.__name__) or counterpart("gpuad.scipy.special", ufunc.__name__)
    if f is None:
        if library_caller() is not None:  # scipy.special.zeta calls the ufunc _zeta: name zeta
            raise TypeError(f"a traced value cannot be computed with NumPy's ufuncs. {advice('computes with a ufunc')}")
        raise TypeError(f"numpy.{ufunc.__name__}{'.' + method if method != '__call__' else ''} cannot "
                        "take traced values; use the gpuad.numpy function instead")
    return f(*inputs)


# NumPy functions that only read shape attributes: NumPy's own code serves traced values too.
_METADATA = {"shape", "ndim", "size"}


def _array_function(self, func, types, args, kwargs):
    """NEP 18: NumPy's functions on traced values (np.sum(x), np.dot(W, x), np.concatenate,
    np.linalg.solve(a, x)) run as the gpuad.numpy functions of the same name."""
    module = func.__module__
    if module == "numpy" and func.__name__ in _METADATA:
        return func._implementation(*args, **kwargs)
    f = counterpart(NAMESPACES[module], func.__name__) if module in NAMESPACES else None
    if f is None:
        raise TypeError(f"{module}.{func.__name__} has no gpuad counterpart yet, so it cannot take traced "
                        "values; compose it from gpuad.numpy functions (import gpuad.numpy as gnp)")
    return f(*args, **kwargs)


def _setitem(self, key, value):
    raise TypeError("traced values are immutable: instead of x[idx] = v, write x = x.at[idx].set(v) "
                    "(or .add(v)), as in JAX")


def _values(self, *args, **kwargs):
    raise TypeError("x.tolist() and x.item() need the values of a traced value, which would drop its "
                    "derivative (and under gpuad.jit there are none while it traces): keep it an array and "
                    "compute with gpuad.numpy; list(x) gives its traced elements")


def _astype(self, dtype):
    dtype = onp.dtype(dtype)
    return self if self.dtype == dtype else astype(self, dtype=dtype)


def _reshape(self, *shape, order="C"):
    return shapes.reshape(self, shape[0] if len(shape) == 1 else shape, order=order)


def _transpose(self, *axes):
    return shapes.transpose(self, axes[0] if len(axes) == 1 else (axes or None))


METHODS = {
    "__add__": E.add, "__radd__": _swap(E.add), "__sub__": E.subtract, "__rsub__": _swap(E.subtract),
    "__mul__": E.multiply, "__rmul__": _swap(E.multiply), "__truediv__": E.divide,
    "__rtruediv__": _swap(E.divide), "__pow__": _pow, "__rpow__": _swap(E.power),
    "__mod__": E.remainder, "__rmod__": _swap(E.remainder),
    "__floordiv__": E.floor_divide, "__rfloordiv__": _swap(E.floor_divide),
    "__matmul__": P.matmul, "__rmatmul__": _swap(P.matmul),
    "__neg__": E.negative, "__pos__": E.positive, "__abs__": E.abs,
    "__lt__": E.less, "__le__": E.less_equal, "__gt__": E.greater, "__ge__": E.greater_equal,
    "__eq__": E.equal, "__ne__": E.not_equal,
    "__and__": E.logical_and, "__or__": E.logical_or, "__invert__": E.logical_not,
    "__array_ufunc__": _array_ufunc, "__array_function__": _array_function,
    "__getitem__": take_index, "__setitem__": _setitem, "__hash__": object.__hash__,
    "tolist": _values, "item": _values, "at": property(_At), "T": property(lambda self: shapes.transpose(self)),
    "astype": _astype, "reshape": _reshape, "transpose": _transpose, "ravel": shapes.ravel,
    "flatten": shapes.ravel, "squeeze": shapes.squeeze, "swapaxes": shapes.swapaxes, "repeat": shapes.repeat,
    "sum": R.sum, "mean": R.mean, "prod": R.prod, "max": R.max, "min": R.min, "var": R.var,
    "std": R.std, "cumsum": R.cumsum, "argmax": R.argmax, "argmin": R.argmin,
    "argsort": sorting.argsort, "argpartition": sorting.argpartition, "dot": P.dot, "clip": E.clip,
    "diagonal": shapes.diagonal, "trace": P.trace,
    "real": property(M.real), "imag": property(M.imag), "conj": M.conjugate, "conjugate": M.conjugate,
}


def _method(f):
    """Primitives are callable objects, not functions, so they need wrapping to bind `self`."""
    if isinstance(f, Primitive):
        return lambda self, *args: f(self, *args)
    return f


def install():
    for name, f in METHODS.items():
        setattr(Tracer, name, _method(f))
