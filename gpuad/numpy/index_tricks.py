"""numpy.r_ and numpy.c_: arrays built by index expressions, `r_[x, 0.0, 1:4, y]`.

Each piece (traced or not) is joined with gpuad.numpy's concatenate, so the derivatives of the
traced pieces move into the result; slices are constant ranges (arange, or linspace for a
complex step such as 0:1:5j) and carry none.

>>> import gpuad, gpuad.numpy as gnp
>>> gnp.r_[gnp.array([1.0, 2.0]), 0.0, 4:6]
array([1., 2., 0., 4., 5.])
>>> gpuad.jacfwd(lambda x: gnp.r_[x, 0.0, 2 * x])(gnp.array([1.0]))
array([[1.],
       [0.],
       [2.]])
>>> gnp.c_[gnp.array([1.0, 2.0]), gnp.array([3.0, 4.0])]
array([[1., 3.],
       [2., 4.]])
"""
import numpy as onp

from ..core import Tracer, dtype, shape
from .creation import arange, asarray, linspace
from .shapes import concatenate, reshape, transpose


class _Concatenator:
    """`obj[...]`: numpy's AxisConcatenator for gpuad.numpy values. A leading string
    'axis[,ndmin[,trans1d]]' sets where the pieces join, the dimensions each is raised to, and
    where a raised piece's own axes go (numpy's trans1d)."""

    def __init__(self, name, axis, ndmin, trans1d):
        self.name, self.defaults = name, (axis, ndmin, trans1d)

    def __getitem__(self, key):
        items = list(key) if isinstance(key, tuple) else [key]
        axis, ndmin, trans1d = self.defaults
        if items and isinstance(items[0], str):
            axis, ndmin, trans1d = self._directive(items.pop(0), ndmin, trans1d)
        pieces = [_piece(item) for item in items]
        if not pieces:
            raise ValueError(f"{self.name}[...] needs at least one piece to join")
        kind = onp.result_type(*(p if _is_number(p) else dtype(p) for p in pieces))  # numbers are weak
        parts = [_raise(asarray(p, dtype=kind) if _is_number(p) else p, ndmin, trans1d) for p in pieces]
        return concatenate(parts, axis=axis)

    def _directive(self, text, ndmin, trans1d):
        if text in ("r", "c"):
            raise NotImplementedError(f"{self.name}['{text}', ...] makes a numpy.matrix, which gpuad.numpy does "
                                      f"not have; use {self.name}[...] with arrays")
        try:
            numbers = [int(t) for t in text.split(",")]
        except ValueError:
            raise ValueError(f"{self.name}: the directive {text!r} is not 'axis[,ndmin[,trans1d]]' "
                             "(integers)") from None
        if not 1 <= len(numbers) <= 3:
            raise ValueError(f"{self.name}: the directive {text!r} has {len(numbers)} numbers; it takes 1 to 3")
        return tuple(numbers) + (ndmin, trans1d)[len(numbers) - 1:]

    def __len__(self):
        return 0  # as numpy's: len(r_) is 0


def _is_number(p):
    return isinstance(p, (bool, int, float))


def _piece(item):
    """A slice as the range it stands for; a Python number as is (it takes the arrays' dtype);
    anything else as an array."""
    if isinstance(item, slice):
        start = 0 if item.start is None else item.start
        step = 1 if item.step is None else item.step
        if isinstance(step, complex):  # numpy's 0:1:5j, five points from 0 to 1
            return linspace(start, item.stop, int(abs(step)))
        return arange(start, item.stop, step)
    if _is_number(item) or isinstance(item, Tracer):
        return item
    return asarray(item)


def _raise(x, ndmin, trans1d):
    """x with at least ndmin dimensions (ones in front, as numpy.array(x, ndmin=...)), its own
    axes moved to start at trans1d (numpy's rule; -1 leaves them last)."""
    k = len(shape(x))
    if k >= ndmin:
        return x
    x = reshape(x, (1,) * (ndmin - k) + shape(x))
    if trans1d == -1:
        return x
    k2 = ndmin - k
    k1 = trans1d + k2 + 1 if trans1d < 0 else trans1d
    axes = list(range(ndmin))
    return transpose(x, axes[:k1] + axes[k2:] + axes[k1:k2])


r_ = _Concatenator("r_", 0, 1, -1)  # joins along the first axis
c_ = _Concatenator("c_", -1, 2, 0)  # joins along the last axis, vectors as columns

__all__ = ["r_", "c_"]
