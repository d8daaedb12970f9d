"""Sorting and gathers along an axis. The order is found on the values (no derivative); the
values are then moved with take_along, whose derivative moves the tangents the same way."""
from .. import backends
from ..axes import normalize_axes
from ..core import Tracer, shape
from ..ops.indexing import argsort as _argsort
from ..ops.indexing import take_along
from .shapes import ravel


def take_along_axis(arr, indices, axis):
    """numpy.take_along_axis: arr's values at integer positions `indices` along `axis`.

    >>> import gpuad.numpy as gnp
    >>> gnp.take_along_axis(gnp.array([[3.0, 1.0], [5.0, 4.0]]), gnp.array([[1], [0]]), axis=1)
    array([[1.],
           [5.]])
    """
    if axis is None:
        arr, indices, axis = ravel(arr), ravel(indices), 0
    if not isinstance(indices, Tracer):
        indices = backends.current().asarray(indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"take_along_axis: indices must be integers, got dtype {indices.dtype}")
    if len(shape(indices)) != len(shape(arr)):
        raise ValueError(f"take_along_axis: indices have {len(shape(indices))} dimensions but arr has "
                         f"{len(shape(arr))}; they must have the same number")
    return take_along(arr, indices, axis=normalize_axes(axis, len(shape(arr)))[0])


def argsort(x, axis=-1):
    """Indices that sort x along axis (numpy.argsort); integers, so no derivative."""
    if axis is None:
        x, axis = ravel(x), 0
    return _argsort(x, axis=normalize_axes(axis, len(shape(x)))[0])


def sort(x, axis=-1):
    """x sorted along axis; the derivative follows each value to its sorted place.

    >>> import gpuad, gpuad.numpy as gnp
    >>> gpuad.jacfwd(gnp.sort)(gnp.array([2.0, 1.0]))
    array([[0., 1.],
           [1., 0.]])
    """
    if axis is None:
        x, axis = ravel(x), 0
    return take_along_axis(x, argsort(x, axis), axis)
