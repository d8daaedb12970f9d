"""Indexing: numpy's basic, integer and boolean-mask indexing, and JAX's functional `x.at[...]`.

Indices are normalised once here (Ellipsis expanded, masks turned into integer arrays,
index arrays moved to the backend), so the primitives see only slices, None, ints and
integer arrays.
"""
import numpy as onp

from .. import backends
from ..batching import BatchTracer
from ..core import Tracer, shape
from ..ops.structural import getitem, index_add, index_set


def normalize_index(key, ndim):
    key = key if isinstance(key, tuple) else (key,)
    be = backends.current()
    out = []
    for k in key:
        if isinstance(k, Tracer):
            if isinstance(k, BatchTracer):
                raise TypeError("indexing with a batched index array under vmap is not supported; "
                                "index with a constant array, or use gpuad.numpy.where.")
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
    """x[key] for any value x."""
    return getitem(x, idx=normalize_index(key, len(shape(x))))


class _At:
    """`x.at[idx].set(v)`, `.add(v)`, `.multiply(v)`, `.get()`: functional updates, as in JAX."""
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
        return self.set(self.get() * v)

    def get(self):
        return getitem(self.x, idx=self.idx)


def at(x):
    """`at(x)[idx].set(v)` works for plain arrays too (traced values also have `x.at`)."""
    return _At(x)
