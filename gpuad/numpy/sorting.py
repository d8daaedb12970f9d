"""Sorting and gathers along an axis. The order is found on the values (no derivative); the
values are then moved with take_along, whose derivative moves the tangents the same way."""
import numpy as onp

from .. import backends
from ..axes import normalize_axes
from ..core import Tracer, shape
from ..ops.indexing import argpartition as _argpartition
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


def _positions(kth, n):
    """kth (an integer or a sequence of them, negative ones from the end) as a tuple of
    positions in [0, n), with NumPy's errors."""
    k = onp.asarray(kth)
    if k.dtype.kind not in "iu" or k.ndim > 1:
        raise TypeError(f"partition: kth must be an integer or a sequence of integers, got {kth!r}")
    for i in k.ravel():
        if not -n <= i < n:
            raise ValueError(f"kth(={i}) out of bounds ({n})")
    return tuple(int(i) % n for i in k.ravel())


def argpartition(a, kth, axis=-1):
    """numpy.argpartition: indices that put the element of each position in kth where a sort
    would, the smaller ones before it and the larger after (in no given order: NumPy's on NumPy,
    a full sort's on CuPy); integers, so no derivative."""
    if axis is None:
        a, axis = ravel(a), 0
    axis = normalize_axes(axis, len(shape(a)))[0]
    return _argpartition(a, kth=_positions(kth, shape(a)[axis]), axis=axis)


def partition(a, kth, axis=-1):
    """numpy.partition: a gathered at argpartition's indices; the derivative follows each
    element to its place.

    >>> import gpuad, gpuad.numpy as gnp
    >>> x = gnp.array([3.0, 1.0, 2.0])
    >>> print(gnp.partition(x, 1)[1])
    2.0
    >>> gpuad.grad(lambda v: gnp.partition(v, 1)[1])(x)
    array([0., 0., 1.])
    """
    if axis is None:
        a, axis = ravel(a), 0
    return take_along_axis(a, argpartition(a, kth, axis), axis)
