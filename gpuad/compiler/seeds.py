"""A Jacobian's seed held as its non-zeros while a program's constants are folded.

A seed is an `eye` and what reshapes, transposes, slices, broadcasts and scalar multiples make of
it. Folding its contraction with a constant (W @ seed: columns of W) through the dense seed costs
a product with the identity, n x n of it (the seed of an n = 10^4 jacfwd is 800 MB). From the
non-zeros it is a gather of the constant: time and memory of the result alone. A result that is
still mostly zeros (W gathered into the places of jacrev(hessian)'s 40,000-direction seed: 512 MB
dense, 2.5 MB of entries) stays held as its entries through the products, casts, moves, selects
and sums that fold after it (`fold`), and is made dense only where a kept equation or an output
reads it (`dense`).
"""
from typing import NamedTuple

import numpy as onp

from .ir import Equation, Var

_MOST = 1 << 24  # the most non-zeros a seed is held as; past this it is folded densely, as any value


class NonZeros(NamedTuple):
    """A constant as its entries: values at coords (an int64 array per axis); entries at one
    place add up."""
    coords: tuple
    values: onp.ndarray
    shape: tuple


def dense(nz):
    out = onp.zeros(nz.shape, nz.values.dtype)
    if nz.coords:
        onp.add.at(out, nz.coords, nz.values)
    else:
        out[...] = nz.values.sum()
    return out


def nonzeros(v, made, to_numpy):
    """The non-zeros of the constant Var v (made: Var -> Equation) where it is a seed, else None:
    an eye, then each equation on the way (with one Var, the seed, among its arguments) folded
    from the entries so far (`fold`)."""
    eq = made.get(v)
    if eq is None:
        return None
    if eq.prim.entries is not None:
        return NonZeros(*eq.prim.entries(**eq.params))
    inner = [a for a in eq.ins if isinstance(a, Var)]
    nz = nonzeros(inner[0], made, to_numpy) if len(inner) == 1 else None
    if nz is None:
        return None
    value = fold(Equation(eq.prim, [nz if isinstance(a, Var) else a.val for a in eq.ins], eq.out, eq.params), to_numpy)
    return value if isinstance(value, NonZeros) else None


def contract(nz, other, spec, seed_first, out_shape, out_dtype):
    """The contraction (spec, gpuad/ops/contract.py) of a seed's non-zeros with the dense NumPy
    array `other` (the seed the first operand where seed_first): a gather and an add at the seed's
    positions."""
    s, b, o = spec if seed_first else (spec[1], spec[0], spec[2])
    shared = [c for c in s if c in b]
    free_b = [c for c in b if c not in s]
    kept = [c for c in o if c in s]
    picked = onp.transpose(other, [b.index(c) for c in shared + free_b])[tuple(nz.coords[s.index(c)] for c in shared)]
    contrib = nz.values.reshape((-1,) + (1,) * len(free_b)) * picked
    at = tuple(nz.coords[s.index(c)] for c in kept)
    if kept and 4 * contrib.size <= onp.prod(out_shape):  # mostly zeros: held as its entries
        count = int(onp.prod(contrib.shape[1:]))
        grid = onp.unravel_index(onp.arange(count), contrib.shape[1:]) if free_b else ()  # () for a scalar each
        coords = dict(zip(kept + free_b,
                          [onp.repeat(c, count) for c in at] + [onp.tile(g, len(contrib)) for g in grid]))
        return NonZeros(tuple(coords[c] for c in o), contrib.reshape(-1).astype(out_dtype), tuple(out_shape))
    out = onp.zeros(out_shape, out_dtype)
    view = onp.transpose(out, [o.index(c) for c in kept + free_b])  # writes reach out
    if not kept:  # every axis of the seed summed
        view[...] = contrib.sum(axis=0)
    elif len(onp.unique(onp.ravel_multi_index(at, view.shape[:len(kept)]))) == len(contrib):
        view[at] = contrib  # one non-zero per place (a one-hot seed): no add.at, many times slower
    else:
        onp.add.at(view, at, contrib)
    return out


def fold(eq, to_numpy):
    """eq evaluated where some of its arguments are NonZeros: NonZeros, a dense NumPy array, or
    None where no rule applies (the caller makes them dense)."""
    prim, shape, args = eq.prim, tuple(eq.out.shape), eq.ins
    k = next(j for j, a in enumerate(args) if isinstance(a, NonZeros))
    nz = args[k]
    if k == 0 and prim.coords is not None:  # data movement: the entries moved
        moved = prim.coords(nz, shape, _MOST, **eq.params)
        return None if moved is None else NonZeros(moved[0], nz.values[moved[1]], shape)
    if prim.elementwise and (prim.zero_where == "any" or (prim.zero_where == "first" and k == 0)):
        return _at_entries(eq, k, to_numpy)
    if prim.zero_where == "selected" and k and _scalar(args[0]) and not isinstance(args[0], NonZeros):
        picked = args[1] if bool(args[0]) else args[2]
        return picked._replace(values=picked.values.astype(eq.out.dtype)) \
            if isinstance(picked, NonZeros) and picked.shape == shape else None
    if prim.reduction == "add":
        axes, keepdims = eq.params["axes"], eq.params["keepdims"]
        out = onp.zeros(shape, eq.out.dtype)
        zero = onp.zeros(len(nz.values), onp.int64)
        at = tuple(zero if d in axes else c for d, c in enumerate(nz.coords)) if keepdims else \
            tuple(c for d, c in enumerate(nz.coords) if d not in axes)
        if at:
            onp.add.at(out, at, nz.values)
        else:
            out[...] = nz.values.sum()
        return out
    return None


def _at_entries(eq, k, to_numpy):
    """An elementwise eq that is zero where its argument k (the NonZeros) is: evaluated at the
    entries alone, its other arguments (dense) read at their places."""
    nz, shape, others = eq.ins[k], tuple(eq.out.shape), eq.ins[:k] + eq.ins[k + 1:]
    if others and not (nz.shape == shape and nz.coords) or any(isinstance(a, NonZeros) for a in others):
        return None
    operands = [nz.values if j == k else
                onp.broadcast_to(to_numpy(a) if hasattr(a, "shape") else onp.asarray(a), shape)[nz.coords]
                for j, a in enumerate(eq.ins)]
    values = onp.asarray(eq.prim.impl_on(onp, **eq.params)(*operands))
    return NonZeros(nz.coords, values.astype(eq.out.dtype), shape)


def _scalar(a):
    return isinstance(a, (bool, int, float, complex)) or (hasattr(a, "shape") and a.shape == ())
