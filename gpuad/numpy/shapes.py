"""Shape manipulation, all composed from reshape, transpose, broadcast_to, getitem,
concatenate and where."""
import numpy as onp

from .. import backends
from ..axes import normalize_axes
from ..core import Tracer, shape
from ..ops import indexing as index_prims
from ..ops import shape as shape_prims
from ..ops.elementwise import where
from .indexing import take_index


def _ndim(x):
    return len(shape(x))


def reshape(x, newshape, order="C"):
    """numpy.reshape (C order); one dimension may be -1."""
    if order != "C":
        raise ValueError("only order='C' is supported")
    newshape = (newshape,) if isinstance(newshape, int) else tuple(newshape)
    size = int(onp.prod(shape(x)))
    if -1 in newshape:
        known = int(onp.prod([d for d in newshape if d != -1]))
        newshape = tuple(size // known if d == -1 else d for d in newshape)
    if int(onp.prod(newshape)) != size:
        raise ValueError(f"cannot reshape array of shape {shape(x)} into shape {newshape}")
    return x if newshape == shape(x) else shape_prims.reshape(x, shape=newshape)


def ravel(x):
    return reshape(x, (-1,))


def transpose(x, axes=None):
    n = _ndim(x)
    perm = tuple(reversed(range(n))) if axes is None else tuple(a % n for a in axes)
    if sorted(perm) != list(range(n)):
        raise ValueError(f"axes {axes} are not a permutation of the {n} axes")
    return x if perm == tuple(range(n)) else shape_prims.transpose(x, perm=perm)


def swapaxes(x, axis1, axis2):
    perm = list(range(_ndim(x)))
    perm[axis1], perm[axis2] = perm[axis2], perm[axis1]
    return transpose(x, perm)


def moveaxis(x, source, destination):
    n = _ndim(x)
    src = [s % n for s in (source if isinstance(source, (tuple, list)) else [source])]
    dst = [d % n for d in (destination if isinstance(destination, (tuple, list)) else [destination])]
    order = [a for a in range(n) if a not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(x, order)


def expand_dims(x, axis):
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    n = _ndim(x) + len(axes)
    return shape_prims.with_unit_axes_at(x, [a % n for a in axes])  # same size: no checks needed


def squeeze(x, axis=None):
    s = shape(x)
    axes = [a for a, d in enumerate(s) if d == 1] if axis is None else normalize_axes(axis, len(s))
    if any(s[a] != 1 for a in axes):
        raise ValueError(f"cannot squeeze an axis whose size is not 1 (shape {s})")
    return shape_prims.reshape(x, shape=tuple(d for a, d in enumerate(s) if a not in axes))


def broadcast_to(x, shape_):
    shape_ = tuple(shape_)
    onp.broadcast_shapes(shape(x), shape_)  # raises a clear ValueError on a mismatch
    return x if shape(x) == shape_ else shape_prims.broadcast_to(x, shape=shape_)


def broadcast_arrays(*args):
    """numpy.broadcast_arrays: the arguments broadcast to one shape, as a list."""
    args = [a if isinstance(a, Tracer) else backends.current().asarray(a) for a in args]
    target = onp.broadcast_shapes(*(shape(a) for a in args))
    return [broadcast_to(a, target) for a in args]


def atleast_1d(x):
    return reshape(x, (1,)) if _ndim(x) == 0 else x


def concatenate(arrays, axis=0):
    arrays = list(arrays)
    if not arrays:
        raise ValueError("need at least one array to concatenate")
    n = _ndim(arrays[0])
    if n == 0:
        raise ValueError("zero-dimensional arrays cannot be concatenated")
    return index_prims.concatenate(*arrays, axis=axis % n)


def stack(arrays, axis=0):
    arrays = list(arrays)
    n = _ndim(arrays[0]) + 1
    return concatenate([expand_dims(a, axis % n) for a in arrays], axis=axis % n)


def hstack(arrays):
    arrays = [atleast_1d(a) for a in arrays]
    return concatenate(arrays, axis=0 if _ndim(arrays[0]) == 1 else 1)


def vstack(arrays):
    return concatenate([reshape(a, (1, -1)) if _ndim(a) < 2 else a for a in arrays], axis=0)


def split(x, indices_or_sections, axis=0):
    n = shape(x)[axis]
    if isinstance(indices_or_sections, int):
        if n % indices_or_sections:
            raise ValueError("array split does not result in an equal division")
        step = n // indices_or_sections
        bounds = list(range(0, n + 1, step))
    else:
        bounds = [0] + list(indices_or_sections) + [n]
    lead = (slice(None),) * (axis % _ndim(x))
    return [take_index(x, lead + (slice(a, b),)) for a, b in zip(bounds[:-1], bounds[1:])]


def flip(x, axis=None):
    axes = normalize_axes(axis, _ndim(x))
    return take_index(x, tuple(slice(None, None, -1) if a in axes else slice(None) for a in range(_ndim(x))))


def _along(x, index, axis):
    return take_index(x, (slice(None),) * axis + (backends.current().asarray(index),))


def take(x, indices, axis=None):
    """numpy.take; under vmap the indices may be batched (each example picks its own)."""
    if axis is None:
        x, axis = ravel(x), 0
    axis %= _ndim(x)
    if isinstance(indices, Tracer):
        picked = take_index(moveaxis(x, axis, 0), indices)  # indices.shape + the other axes
        k = _ndim(indices)
        return moveaxis(picked, tuple(range(k)), tuple(range(axis, axis + k)))
    return _along(x, indices, axis)


def roll(x, shift, axis=None):
    if axis is None:
        return reshape(roll(ravel(x), shift, 0), shape(x))
    axis %= _ndim(x)
    n = shape(x)[axis]
    return _along(x, (onp.arange(n) - shift) % n, axis)


def repeat(x, repeats, axis=None):
    if axis is None:
        x, axis = ravel(x), 0
    axis %= _ndim(x)
    return _along(x, onp.repeat(onp.arange(shape(x)[axis]), repeats), axis)


def tile(x, reps):
    reps = (reps,) if isinstance(reps, int) else tuple(reps)
    x = reshape(x, (1,) * (len(reps) - _ndim(x)) + shape(x))
    reps = (1,) * (_ndim(x) - len(reps)) + reps
    for axis, r in enumerate(reps):
        if r != 1:
            x = _along(x, onp.tile(onp.arange(shape(x)[axis]), r), axis)
    return x


def diagonal(x, offset=0, axis1=0, axis2=1):
    """The diagonal over two axes, moved to the end (numpy.diagonal)."""
    x = moveaxis(x, (axis1, axis2), (-2, -1))
    n, m = shape(x)[-2:]
    length = max(0, min(n + min(offset, 0), m - max(offset, 0)))
    i = onp.arange(length) - min(offset, 0)
    be = backends.current()
    return take_index(x, (Ellipsis, be.asarray(i), be.asarray(i + offset)))


def diag(v, k=0):
    """Diagonal of a matrix, or a square matrix with a vector on its k-th diagonal."""
    if _ndim(v) == 2:
        return diagonal(v, k)
    if _ndim(v) != 1:
        raise ValueError("diag takes a 1-d or 2-d array")
    n = shape(v)[0] + abs(k)
    i = onp.arange(shape(v)[0])
    be = backends.current()
    return index_prims.scatter(v, shape=(n, n), idx=(be.asarray(i + max(-k, 0)), be.asarray(i + max(k, 0))))


def _tri_mask(x, k, lower):
    n, m = shape(x)[-2:]
    mask = onp.tri(n, m, k, dtype=bool)
    return backends.current().asarray(mask if lower else ~onp.tri(n, m, k - 1, dtype=bool))


def triu(x, k=0):
    return where(_tri_mask(x, k, False), x, 0.0)


def tril(x, k=0):
    return where(_tri_mask(x, k, True), x, 0.0)
