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
    if eq.prim.name == "eye":
        p = eq.params
        lo = max(0, -p["k"])
        rows = onp.arange(lo, max(lo, min(p["rows"], p["cols"] - p["k"])))
        return NonZeros((rows, rows + p["k"]), onp.ones(len(rows), p["dtype"]), (p["rows"], p["cols"]))
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
    name, shape, args = eq.prim.name, tuple(eq.out.shape), eq.ins
    k = next(j for j, a in enumerate(args) if isinstance(a, NonZeros))
    nz = args[k]
    if k == 0 and name in _RULES:
        return _RULES[name](nz, eq)
    if name in ("negative", "astype"):
        return NonZeros(nz.coords, (-nz.values if name == "negative" else nz.values).astype(eq.out.dtype), nz.shape)
    if name in ("multiply", "divide") and not (name == "divide" and k) and nz.shape == shape and nz.coords:
        other = args[1 - k]
        if isinstance(other, NonZeros):
            return None
        other = onp.broadcast_to(to_numpy(other) if hasattr(other, "shape") else onp.asarray(other), shape)
        values = nz.values * other[nz.coords] if name == "multiply" else nz.values / other[nz.coords]
        return NonZeros(nz.coords, values.astype(eq.out.dtype), shape)
    if name == "where" and k and _scalar(args[0]) and not isinstance(args[0], NonZeros):
        picked = args[1] if bool(args[0]) else args[2]
        return picked._replace(values=picked.values.astype(eq.out.dtype)) \
            if isinstance(picked, NonZeros) and picked.shape == shape else None
    if name == "reduce_sum":
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


def _scalar(a):
    return isinstance(a, (bool, int, float, complex)) or (hasattr(a, "shape") and a.shape == ())


def _reshaped(nz, eq):
    flat = onp.ravel_multi_index(nz.coords, nz.shape) if nz.shape else onp.zeros(len(nz.values), onp.int64)
    shape = tuple(eq.out.shape)
    return NonZeros(onp.unravel_index(flat, shape) if shape else (), nz.values, shape)


def _transposed(nz, eq):
    perm = eq.params["perm"]
    return NonZeros(tuple(nz.coords[k] for k in perm), nz.values, tuple(nz.shape[k] for k in perm))


def _broadcast(nz, eq):
    shape = tuple(eq.out.shape)
    lead = len(shape) - len(nz.shape)
    old = (1,) * lead + nz.shape
    grow = [k for k, (m, n) in enumerate(zip(old, shape)) if m == 1 and n != 1]
    count = len(nz.values) * int(onp.prod([shape[k] for k in grow]))
    if count > _MOST:
        return None
    coords = [onp.zeros(len(nz.values), onp.int64)] * lead + list(nz.coords)
    grid = onp.indices([len(nz.values)] + [shape[k] for k in grow]).reshape(len(grow) + 1, -1)
    coords = [c[grid[0]] for c in coords]
    for j, k in enumerate(grow):
        coords[k] = grid[j + 1]
    return NonZeros(tuple(coords), nz.values[grid[0]], shape)


def _sliced(nz, eq):
    """A getitem at ints, slices and new axes (anything else: None)."""
    items = list(eq.params["idx"])
    keep = onp.ones(len(nz.values), bool)
    coords, shape, axis = [], [], 0
    for item in items:
        if item is None:
            coords.append(onp.zeros(len(nz.values), onp.int64))
            shape.append(1)
            continue
        n, c = nz.shape[axis], nz.coords[axis]
        axis += 1
        if isinstance(item, slice):
            start, stop, step = item.indices(n)
            keep &= ((c - start) % step == 0) & ((c >= start) & (c < stop) if step > 0 else (c <= start) & (c > stop))
            coords.append((c - start) // step)
            shape.append(len(range(start, stop, step)))
        elif isinstance(item, (int, onp.integer)) and not isinstance(item, bool):
            keep &= c == item % n
        else:
            return None
    coords += list(nz.coords[axis:])
    shape += list(nz.shape[axis:])
    return NonZeros(tuple(c[keep] for c in coords), nz.values[keep], tuple(shape))


_RULES = {"reshape": _reshaped, "transpose": _transposed, "broadcast_to": _broadcast, "getitem": _sliced}
