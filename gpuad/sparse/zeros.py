"""Structural zeros: where a value may be non-zero for some value of the inputs, from where its
arguments may be. Forward mode's seed is zero off its diagonal, and its product with anything stays
zero there, so the dependence of those entries is dropped: jacfwd of a scalar function then has
the Hessian's pattern instead of a dense one. A mask is a boolean array of the value's shape
(broadcastable to it), or None: non-zero anywhere.
"""
import numpy as onp

from ..ops.patterns import run


def may_be_nonzero(eq, masks):
    """The mask of eq's value from its arguments' masks (None where no rule below applies)."""
    rule = _moved if eq.prim.moves else _sum if eq.prim.reduction == "add" else _RULES.get(eq.prim.zero_where)
    mask = None if rule is None else rule(eq, masks)
    return None if mask is None or mask.all() else onp.broadcast_to(mask, eq.out.shape)


def _full(mask, shape):
    return onp.ones(shape, dtype=bool) if mask is None else mask


def _product(eq, masks):
    """a * b (and a contraction): zero where either factor is, whatever the other."""
    if all(m is None for m in masks):
        return None
    a, b = (_full(m, onp.shape(x)) for m, x in zip(masks, eq.ins))
    if eq.prim.elementwise:
        return a & b
    return run(eq.prim, [a.astype(onp.float64), b.astype(onp.float64)], eq.params) > 0  # a contraction


def _first(eq, masks):
    """a / b, -a, astype(a): zero where a is."""
    return masks[0]


def _either(eq, masks):
    """a + b, a - b: zero where both are."""
    return None if any(m is None for m in masks) else masks[0] | masks[1]


def _select(eq, masks):
    """where(c, a, b): a's mask where c may hold, b's where it cannot (either where c is unknown)."""
    c, a, b = masks
    if a is None and b is None:
        return None
    a, b = _full(a, eq.out.shape), _full(b, eq.out.shape)
    return a | b if c is None else onp.where(c, a, b)


def _sum(eq, masks):
    m, = masks
    return None if m is None else m.any(axis=tuple(eq.params["axes"]), keepdims=eq.params["keepdims"])


def _moved(eq, masks):
    """Data moved (reshaped, sliced, gathered, scattered into zeros, joined): its mask moved alike."""
    if all(m is None for m in masks):
        return None
    return run(eq.prim, [_full(m, onp.shape(x)) for m, x in zip(masks, eq.ins)], eq.params).astype(bool)


# by the primitive's zero_where: where its value is zero for zeros in its arguments
_RULES = {"any": _product, "first": _first, "all": _either, "selected": _select}
