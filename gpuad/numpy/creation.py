"""Array creation. Constants carry no derivative; `array` of traced scalars stacks them. On the
NumPy backend the arrays made here have JAX's `x.at[idx]` updates (indexing.ndarray)."""
import numpy as onp

from .. import backends, core
from ..core import Tracer, holds_tracer, operand
from ..ops.creation import eye as _eye
from ..ops.elementwise import astype as _astype
from .indexing import ndarray, updatable
from .shapes import stack


def _has_tracer(obj):
    return isinstance(obj, Tracer) or holds_tracer(obj)


def array(obj, dtype=None):
    """Like numpy.array; a (nested) list holding traced values becomes a traced array.

    >>> array([1.0, 2.0]).shape
    (2,)
    """
    if _has_tracer(obj):
        out = obj if isinstance(obj, Tracer) else stack([array(o) for o in obj])
        return out if dtype is None else _astype(out, dtype=onp.dtype(dtype))
    return updatable(backends.current().asarray(obj, dtype=dtype))


core.stack_list = array  # a list holding traced values, given to any primitive, is this array


def asarray(obj, dtype=None):
    """Like numpy.asarray: traced values pass through (cast when dtype differs)."""
    if isinstance(obj, (Tracer, ndarray)):
        return obj if dtype is None or obj.dtype == onp.dtype(dtype) else obj.astype(onp.dtype(dtype))
    return array(obj, dtype=dtype)


def _like(a, dtype):
    return (tuple(a.shape) if hasattr(a, "shape") else ()), (dtype or getattr(a, "dtype", None) or float)


def zeros(shape, dtype=float):
    return updatable(backends.xp().zeros(shape, dtype=dtype))


def ones(shape, dtype=float):
    return updatable(backends.xp().ones(shape, dtype=dtype))


def full(shape, fill_value, dtype=None):
    return updatable(backends.xp().full(shape, fill_value, dtype=dtype))


def zeros_like(a, dtype=None):
    return zeros(*_like(a, dtype))


def ones_like(a, dtype=None):
    return ones(*_like(a, dtype))


def full_like(a, fill_value, dtype=None):
    s, d = _like(a, dtype)
    return full(s, fill_value, dtype=d)


def eye(N, M=None, k=0, dtype=float):
    """numpy.eye; under gpuad.jit an equation of the program, made from indices, not a constant."""
    return updatable(_eye(rows=int(N), cols=int(N if M is None else M), k=int(k), dtype=onp.dtype(dtype)))


def identity(n, dtype=float):
    return eye(n, dtype=dtype)


def arange(*args, **kwargs):
    return updatable(backends.xp().arange(*args, **kwargs))


def linspace(start, stop, num=50, endpoint=True, dtype=None):
    """numpy.linspace; traced endpoints (scalars or arrays, samples along a new first axis) carry
    their derivatives.

    >>> import gpuad
    >>> gpuad.jacfwd(lambda b: linspace(0.0, b, 3))(2.0)
    array([0. , 0.5, 1. ])
    """
    if not (isinstance(start, Tracer) or isinstance(stop, Tracer)):
        start, stop = operand(start), operand(stop)  # CuPy's linspace takes no NumPy arrays
        return updatable(backends.xp().linspace(start, stop, num, endpoint=endpoint, dtype=dtype))
    steps = max(num - 1, 1) if endpoint else max(num, 1)
    ndim = max(onp.ndim(start), onp.ndim(stop))
    t = backends.xp().arange(num, dtype=float).reshape((num,) + (1,) * ndim) / steps
    out = start + (stop - start) * t
    return out if dtype is None else _astype(out, dtype=onp.dtype(dtype))
