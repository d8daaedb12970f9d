"""gpuad.numpy: the numpy names and semantics, on values gpuad can differentiate.

    import gpuad.numpy as gnp
    y = gnp.sin(x) @ W          # works on plain arrays and on traced values alike
"""
import numpy as _onp

from ..core import result_dtype as result_type  # noqa: F401  (NumPy's promotion; Python numbers weak)
from ..core import shape as _shape
from . import fft, linalg  # noqa: F401
from .building import *  # noqa: F403  # noqa: F403
from .creation import (  # noqa: F401
    arange,
    array,
    asarray,
    eye,
    full,
    full_like,
    identity,
    linspace,
    ones,
    ones_like,
    zeros,
    zeros_like,
)
from .dtypes import (  # noqa: F401
    bool_,
    complex64,
    complex128,
    float16,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    uint8,
)
from .elementwise import *  # noqa: F403
from .index_tricks import c_, r_  # noqa: F401
from .indexing import at  # noqa: F401
from .mathematical import *  # noqa: F403
from .methods import install as _install
from .products import dot, einsum, inner, matmul, outer, tensordot, trace  # noqa: F401
from .reductions import all, amax, amin, any, argmax, argmin, cumsum, max, mean, min, prod, std, sum, var  # noqa: F401
from .shapes import (  # noqa: F401
    atleast_1d,
    broadcast_arrays,
    broadcast_to,
    concatenate,
    diag,
    diagonal,
    expand_dims,
    flip,
    hstack,
    moveaxis,
    ravel,
    repeat,
    reshape,
    roll,
    split,
    squeeze,
    stack,
    swapaxes,
    take,
    tile,
    transpose,
    tril,
    triu,
    vstack,
)
from .sorting import argpartition, argsort, partition, sort, take_along_axis  # noqa: F401
from .statistics import *  # noqa: F403

pi, e, inf, nan, newaxis = _onp.pi, _onp.e, _onp.inf, _onp.nan, None
# Data about dtypes and shapes, not values: NumPy's own, and the shape of traced values too
dtype, finfo, iinfo, issubdtype, promote_types, can_cast = (_onp.dtype, _onp.finfo, _onp.iinfo, _onp.issubdtype,
                                                             _onp.promote_types, _onp.can_cast)


def shape(a):
    """numpy.shape, of traced values and lists of them too."""
    return _shape(a)


def ndim(a):
    """numpy.ndim: the number of axes."""
    return len(_shape(a))


def size(a, axis=None):
    """numpy.size: the number of elements (along one axis where given)."""
    s = _shape(a)
    return int(_onp.prod(s)) if axis is None else s[axis]

_install()


def __getattr__(name):
    """A clear error for numpy names gpuad.numpy does not have (yet)."""
    if hasattr(_onp, name):
        raise AttributeError(f"gpuad.numpy has no {name!r} yet (numpy.{name} exists). Compose it from "
                             "gpuad.numpy functions, or compute it outside the transformed function.")
    raise AttributeError(f"module 'gpuad.numpy' has no attribute {name!r}")
