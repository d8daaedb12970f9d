"""Shape primitives: reshape, transpose, broadcast_to, and reduce_sum, broadcasting's adjoint.

All are linear (core.linear): each is given by its `lead` form, the op on an array with one
extra leading axis, and its `adjoint` on a cotangent bundle. broadcast_to and reduce_sum are
each other's adjoint, so they live together, with `unbroadcast`, which the backward sweep
calls once per input so that rules never undo broadcasting themselves.
"""
import math
import operator

import numpy as onp

from ..axes import lead_to_rank, with_unit_axes
from ..backends import xp
from ..core import ShapeDtypeStruct, dtype, linear, shape


def _reshaped(x, shape):
    return ShapeDtypeStruct(shape, dtype(x))


reshape = linear(
    "reshape", lambda x, shape: xp().reshape(x, shape),
    lambda t, shape: reshape(t, shape=t.shape[:1] + shape),
    lambda ct, xs, shape: reshape(ct, shape=ct.shape[:1] + xs), _reshaped)


def with_unit_axes_at(x, positions):
    """x reshaped with size-1 axes standing at `positions` of the result."""
    return reshape(x, shape=with_unit_axes(shape(x), positions))


def _shift(perm):
    return (0,) + tuple(p + 1 for p in perm)


transpose = linear(
    "transpose", lambda x, perm: xp().transpose(x, perm),
    lambda t, perm: transpose(t, perm=_shift(perm)),
    lambda ct, xs, perm: transpose(ct, perm=_shift(tuple(onp.argsort(perm)))),
    lambda x, perm: ShapeDtypeStruct([shape(x)[p] for p in perm], dtype(x)))


def _broadcast_lead(t, shape):
    ts = t.shape
    return broadcast_to(reshape(t, shape=lead_to_rank(ts, len(shape))), shape=ts[:1] + shape)


broadcast_to = linear(
    "broadcast_to", lambda x, shape: xp().broadcast_to(x, shape),
    _broadcast_lead, lambda ct, xs, shape: unbroadcast(ct, xs), _reshaped)


def unbroadcast(ct, target):
    """Sum a cotangent bundle (M, *S) down to (M, *target) where S broadcast from target."""
    s = shape(ct)[1:]
    lead = len(s) - len(target)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(target) if d == 1 and s[lead + i] != 1)
    if axes:
        ct = reduce_sum(ct, axes=tuple(a + 1 for a in axes), keepdims=False)
    if shape(ct)[1:] != tuple(target):
        ct = reshape(ct, shape=shape(ct)[:1] + tuple(target))
    return ct


def spread(ct, xs, axes, keepdims):
    """The adjoint of a sum over `axes` of an array of shape xs: ct broadcast back over them."""
    if not keepdims:
        ct = with_unit_axes_at(ct, [a + 1 for a in axes])
    return broadcast_to(ct, shape=shape(ct)[:1] + xs)


def reduced(x, axes, keepdims, out_dtype):
    """The abstract value of a reduction of x over axes."""
    s = shape(x)
    kept = [1 if a in axes else d for a, d in enumerate(s)] if keepdims else [d for a, d in enumerate(s)
                                                                              if a not in axes]
    return ShapeDtypeStruct(kept, out_dtype)


def summed_dtype(x):
    """The dtype NumPy sums x in (booleans and small integers widen)."""
    return onp.sum(onp.zeros(1, dtype(x))).dtype


reduce_sum = linear(
    "reduce_sum", lambda x, axes, keepdims: xp().sum(x, axis=axes, keepdims=keepdims),
    lambda t, axes, keepdims: reduce_sum(t, axes=tuple(a + 1 for a in axes), keepdims=keepdims),
    spread, lambda x, axes, keepdims: reduced(x, axes, keepdims, summed_dtype(x)))


# ---------------------------------------------------------------- sparsity patterns
from . import patterns  # noqa: E402  (here with the rules it serves)

for _prim in (reshape, transpose, broadcast_to):
    _prim.pattern = patterns.moves(_prim)
reduce_sum.pattern = patterns.reduction


# ---------------------------------------------------------------- compiler rules (gpuad/compiler/)
from ..compiler import index as ix  # noqa: E402  (a foundation: index expressions)


def broadcast_index(in_shape, out):
    """The index of an array of in_shape broadcast to the output index `out` (right-aligned,
    size-1 axes read at 0)."""
    if len(out) == len(in_shape) and 1 not in in_shape:  # the common case, as it is
        return tuple(out)
    lead = len(out) - len(in_shape)
    return tuple(ix.ZERO if d == 1 else out[lead + k] for k, d in enumerate(in_shape))


def _reshape_index(out, shapes, read, shape):
    """A reshape reads its argument at the same flat position (folded: a group of axes kept whole
    costs no division)."""
    return [(ix.TRUE, 0, ix.unravel(ix.ravel(out, shape), shapes[0]))]


def _transpose_index(out, shapes, read, perm):
    mapped = [None] * len(perm)
    for k, p in enumerate(perm):
        mapped[p] = out[k]
    return [(ix.TRUE, 0, tuple(mapped))]


reshape.index = _reshape_index
transpose.index = _transpose_index
broadcast_to.index = lambda out, shapes, read, shape: [(ix.TRUE, 0, broadcast_index(shapes[0], out))]


def backwards(entries, rule, shapes, **params):
    """(condition, coordinates): an index rule whose output is the space the entries lie in
    (the inverse of the move they go through: its adjoint's map) evaluated at their coordinates:
    which of them land, and where, each an array of one value per entry."""
    n = len(entries.values)
    place = tuple(ix.sym(f"c{k}", 0, d - 1) for k, d in enumerate(entries.shape))
    (cond, _, at), = rule(place, shapes, None, **params)
    env = {f"c{k}": c for k, c in enumerate(entries.coords)}
    return (onp.broadcast_to(ix.evaluate(cond, env), (n,)),
            tuple(onp.broadcast_to(ix.evaluate(a, env), (n,)) for a in at))


def _reshaped_coords(entries, out_shape, most, shape):
    """A reshape moves an entry through its flat position: the reshape back's map."""
    return backwards(entries, _reshape_index, [out_shape], shape=entries.shape)[1], slice(None)


def _broadcast_coords(entries, out_shape, most, shape):
    """A broadcast repeats each entry along the axes it grows (None past `most` entries)."""
    n = len(entries.values)
    lead = len(out_shape) - len(entries.shape)
    old = (1,) * lead + tuple(entries.shape)
    grow = [k for k, (m, d) in enumerate(zip(old, out_shape)) if m == 1 and d != 1]
    if n * math.prod(out_shape[k] for k in grow) > most:
        return None
    coords = [onp.zeros(n, onp.int64)] * lead + list(entries.coords)
    grid = onp.indices([n] + [out_shape[k] for k in grow]).reshape(len(grow) + 1, -1)
    coords = [c[grid[0]] for c in coords]
    for j, k in enumerate(grow):
        coords[k] = grid[j + 1]
    return tuple(coords), grid[0]


for _prim in (reshape, transpose, broadcast_to):
    _prim.moves, _prim.recompute = True, "free"
    _prim.view = lambda **params: True
reshape.reads_each_once = transpose.reads_each_once = True
reshape.coords = _reshaped_coords
transpose.coords = lambda entries, out_shape, most, perm: (
    backwards(entries, _transpose_index, [out_shape], perm=tuple(onp.argsort(perm)))[1], slice(None))
broadcast_to.coords = _broadcast_coords
reduce_sum.reduction, reduce_sum.reads_each_once = "add", True
reshape.unchanged = broadcast_to.unchanged = lambda constants, shape: 0  # where the shape is the same
transpose.unchanged = lambda constants, perm: 0 if perm == tuple(range(len(perm))) else None


def _as_method(name):
    """A compiled step of a move calling the array's own method: xp()'s dispatch and NumPy's
    function wrapper cost 2 of a small view's 2.5 us (bench/losses.py newton_stiff). A Python
    scalar (a constant operand) has no method: the module's function takes it."""
    def lower(xp_, shapes, **params):
        (arg,) = params.values()
        method, function = operator.methodcaller(name, arg), getattr(xp_, name)

        def move(x):
            try:
                return method(x)
            except AttributeError:
                return function(x, arg)
        return move
    return lower


reshape.lower, transpose.lower = _as_method("reshape"), _as_method("transpose")
