"""Indexing: numpy's basic, integer and boolean-mask indexing, and JAX's functional `x.at[...]`.

Indices are normalised once here (Ellipsis expanded, masks turned into integer arrays,
index arrays moved to the backend), so the primitives see only slices, None, ints and
integer arrays.
"""
import numpy as onp

from .. import backends
from ..batching import BatchTracer
from ..core import Tracer, shape, staging
from ..ops.elementwise import PRIMS
from ..ops.indexing import getitem, index_add, index_set, take_along
from ..ops.shape import reshape

_BASIC = (int, slice)


def normalize_index(key, ndim):
    key = key if isinstance(key, tuple) else (key,)
    if len(key) <= ndim and all(type(k) in _BASIC for k in key):
        return key  # ints and slices only (x[0], x[1:-1]): the common case needs no work
    be = backends.current()
    out = []
    for k in key:
        if isinstance(k, Tracer):
            if isinstance(k, BatchTracer):
                raise TypeError("under vmap, a batched index works alone (x[i]), not inside a tuple "
                                "of indices; use gpuad.numpy.take_along_axis, or gpuad.numpy.where.")
            k = k._inner()
            while isinstance(k, Tracer):
                k = k._inner()
        if isinstance(k, list) or be.is_array(k) or isinstance(k, onp.ndarray):
            arr = be.asarray(k)
            if arr.size == 0 and isinstance(k, list):  # x[[]] selects nothing, as in NumPy
                arr = arr.astype(onp.intp)
            if arr.dtype == bool:
                out.extend(arr.nonzero())
                continue
            if arr.dtype.kind not in "iu":
                raise TypeError(f"index arrays must be integer or boolean, got dtype {arr.dtype}")
            out.append(arr)
        else:
            out.append(k)
    # identity tests only: `==` on index arrays would compare elementwise
    used = sum(1 if (k is not None and k is not Ellipsis) else 0 for k in out)
    ellipses = [i for i, k in enumerate(out) if k is Ellipsis]
    if len(ellipses) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if used > ndim:
        raise IndexError(f"too many indices: array is {ndim}-dimensional, but {used} were indexed")
    if ellipses:
        i = ellipses[0]
        out[i:i + 1] = [slice(None)] * (ndim - used)
    return tuple(out)


def take_index(x, key):
    """x[key] for any value x; positions known only when the call runs (batched under vmap, or
    values of a program gpuad.jit traces) are gathered along the first axis."""
    if isinstance(key, BatchTracer) or staging(key) is not None:
        return _gather_leading(x, key)
    return getitem(x, idx=normalize_index(key, len(shape(x))))


def _gather_leading(x, idx):
    """x[idx] for integer positions idx known only when the call runs: a gather along x's first axis,
    result shape idx.shape + x.shape[1:], through take_along (which takes batched indices)."""
    if idx.dtype.kind not in "iu":
        raise TypeError("x[i] with positions i known only when the call runs (batched under vmap, or traced "
                        "by gpuad.jit) needs integer positions; a boolean mask would give a shape that depends "
                        "on values: use gpuad.numpy.where instead")
    si, sx = shape(idx), shape(x)
    if not sx:
        raise IndexError("too many indices: a 0-d array cannot be indexed")
    xs = reshape(x, shape=(1,) * len(si) + sx)
    ids = reshape(idx, shape=si + (1,) * len(sx))
    return reshape(take_along(xs, ids, axis=len(si)), shape=si + sx[1:])


class _At:
    """`x.at[idx].set(v)`, `.add(v)`, `.multiply(v)`, `.min(v)`, `.max(v)`, `.get()`: functional
    updates, as in JAX."""
    __slots__ = ("x",)

    def __init__(self, x):
        self.x = x

    def __getitem__(self, key):
        return _AtIndex(self.x, key)


class _AtIndex:
    __slots__ = ("x", "idx")

    def __init__(self, x, key):
        self.x, self.idx = x, normalize_index(key, len(shape(x)))

    def set(self, v):
        """A copy of x with x[idx] replaced by v."""
        return index_set(self.x, v, idx=self.idx)

    def add(self, v):
        """A copy of x with v added at idx (repeated indices add up)."""
        return index_add(self.x, v, idx=self.idx)

    def multiply(self, v):
        """x with x[idx] * v at idx (a repeated index takes one of its products, where JAX multiplies
        them all; likewise min and max)."""
        return self.set(self.get() * v)

    def min(self, v):
        return self.set(PRIMS["minimum"](self.get(), v))

    def max(self, v):
        return self.set(PRIMS["maximum"](self.get(), v))

    def get(self):
        return getitem(self.x, idx=self.idx)


def at(x):
    """`at(x)[idx].set(v)` works for any array (traced values and gpuad.numpy's arrays have `x.at`)."""
    return _At(x)


class ndarray(onp.ndarray):
    """The NumPy arrays gpuad.numpy makes: numpy.ndarray with JAX's `x.at[idx]` updates, so that
    `y = gnp.zeros(3); y = y.at[0].set(v)` runs as in JAX, eagerly and under every transform. In
    all else a NumPy array (NumPy's functions take it, results of its arithmetic keep `.at`); it
    prints as one."""
    at = property(_At)

    def __setitem__(self, key, value):
        if isinstance(value, Tracer):  # NumPy would say "setting an array element with a sequence"
            raise TypeError("a traced value cannot be written into an array (y[i] = v): it carries derivatives. "
                            "Write y = y.at[i].set(v) instead, as in JAX.")
        super().__setitem__(key, value)

    def __repr__(self):
        return repr(self.view(onp.ndarray))


def updatable(a):
    """A NumPy array of gpuad.numpy's as the ndarray above (a view, no copy); anything else as is."""
    return a.view(ndarray) if type(a) is onp.ndarray else a
