"""Reductions along axes beyond the sum (ops/shape.py): reduce_max, cumsum, argmax."""
import numpy as onp

from ..backends import xp
from ..core import Primitive, dtype, linear, same, shape
from .elementwise import PRIMS, astype, divide, multiply
from .indexing import getitem
from .shape import reduce_sum, reduced, spread, summed_dtype, with_unit_axes_at


# ---------------------------------------------------------------- max
def _max_weights(x, y, axes, keepdims):
    """Where x attains its max, split evenly between ties (as JAX does); zero elsewhere."""
    kept = y if keepdims else with_unit_axes_at(y, axes)
    hit = astype(PRIMS["equal"](x, kept), dtype=x.dtype)
    return divide(hit, reduce_sum(hit, axes=axes, keepdims=True))


def _max_jvp(primals, tangents, axes, keepdims):
    x, = primals
    y = reduce_max(x, axes=axes, keepdims=keepdims)
    w = _max_weights(x, y, axes, keepdims)
    return y, reduce_sum(multiply(w, tangents[0]), axes=tuple(a + 1 for a in axes), keepdims=keepdims)


def _max_vjp(ct, args, y, needed, axes, keepdims):
    x, = args
    return [multiply(_max_weights(x, y, axes, keepdims), spread(ct, shape(x), axes, keepdims))]


reduce_max = Primitive(
    "reduce_max", lambda x, axes, keepdims: xp().max(x, axis=axes, keepdims=keepdims),
    _max_jvp, _max_vjp,
    lambda args, batched, axes, keepdims: (
        reduce_max(args[0], axes=tuple(a + 1 for a in axes), keepdims=keepdims), True),
    abstract=lambda x, axes, keepdims: reduced(x, axes, keepdims, dtype(x)))


# ---------------------------------------------------------------- cumulative sum
def _flip(x, axis):
    return getitem(x, idx=(slice(None),) * axis + (slice(None, None, -1),))


cumsum = linear(
    "cumsum", lambda x, axis: xp().cumsum(x, axis=axis),
    lambda t, axis: cumsum(t, axis=axis + 1),
    lambda ct, xs, axis: _flip(cumsum(_flip(ct, axis + 1), axis=axis + 1), axis + 1),
    lambda x, axis: same(x) if dtype(x).kind in "fc" else reduced(x, (), False, summed_dtype(x)))


# ---------------------------------------------------------------- index of the max (no derivative)
argmax = Primitive(
    "argmax", lambda x, axis: xp().argmax(x, axis=axis),
    batch=lambda args, batched, axis: (argmax(args[0], axis=axis + 1), True), nondiff=True,
    abstract=lambda x, axis: reduced(x, (axis,), False, onp.dtype(onp.intp)))


# ---------------------------------------------------------------- sparsity patterns
from . import patterns  # noqa: E402  (here with the rules it serves)

reduce_max.pattern = patterns.reduction  # any element of the slice may be the max
cumsum.pattern = patterns.prefix
argmax.pattern = patterns.none
