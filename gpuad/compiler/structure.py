"""One abstract interpretation of structure: for each value of a program, where it may be non-zero
(its support) and whether it is made from indices and constants alone.

Forward mode's seed is an `eye`; its slices, shifts, broadcasts and scalar multiples are index-made
(`Structure.made`): a fused region makes them from its indices, and while constants fold they are
held as their entries (`Entries`), never as a dense n x n array. A value's support follows from its
arguments' through the rules each primitive carries (core.Primitive: `entries` for a value made from
its indices, `coords` and `moves` for data movement, `zero_where` for arithmetic, `reduction` for a
sum, `support` for a rule of its own, a contraction's): the tangents of jacfwd stay zero off the
seed's diagonal through products, and that is what the sparsity patterns cut dependences by
(gpuad/sparse/detect.py) and what the passes collapse a contraction with a seed by (passes.collapse).
The transfer rules are `support` (an equation's support from its arguments') and `fold` (an
equation evaluated where arguments are held as entries).
"""
import math
from typing import NamedTuple

import numpy as onp

from ..ops.patterns import run
from ..ops.shape import broadcast_to
from .ir import Lit, Var

MOST = 1 << 24  # the most entries a value is held as; past this it is dense, as any value
_DENSE = 1 << 22  # the most elements of a value whose support a move without coordinates finds on masks


class Entries(NamedTuple):
    """A value as its entries: values at coords (an int64 array per axis); entries at one place add
    up."""
    coords: tuple
    values: onp.ndarray
    shape: tuple


class Support(NamedTuple):
    """Where a value may be non-zero: `at` its flat positions (sorted, unique) or None (anywhere);
    `exact` where it is non-zero there and only there (a constant's)."""
    at: onp.ndarray = None
    exact: bool = False


ANYWHERE = Support()
_NUMBERS = (bool, int, float, complex, onp.generic)


def of_constant(value):
    """The exact support of a constant array (a NumPy array), or ANYWHERE where it has no zero."""
    at = onp.flatnonzero(value)
    return ANYWHERE if at.size == onp.size(value) else Support(at, True)


def dense(e):
    """An Entries as a dense NumPy array."""
    out = onp.zeros(e.shape, e.values.dtype)
    if e.coords:
        onp.add.at(out, e.coords, e.values)
    else:
        out[...] = e.values.sum()
    return out


def mask(s, shape):
    """A support as a boolean array of this shape, or None (anywhere)."""
    if s.at is None:
        return None
    out = onp.zeros(math.prod(shape), bool)
    out[s.at] = True
    return out.reshape(shape)


class Structure:
    """The analysis of one program: `made` (the index-made Vars, computed in program order),
    `support(v)` and `entries(v)` (found where asked, each value once)."""

    def __init__(self, program=None):
        self.made_by, self.made, self._supports, self._entries = {}, set(), {}, {}
        for eq in program.equations if program is not None else ():
            self.add(eq)

    def add(self, eq):
        """Take in the next equation (in program order)."""
        if len(eq.outs) != 1:  # a factorisation's results: no rule, so non-zero anywhere and not index-made
            return
        self.made_by[eq.out] = eq
        if index_made(eq, self.made):
            self.made.add(eq.out)

    def support(self, a):
        """Where atom a may be non-zero (a constant: anywhere, its zeros are not looked for, but a
        number's: where(c, x, 0) and x != 0 hold a literal zero)."""
        if isinstance(a, Lit):
            return of_constant(a.val) if isinstance(a.val, _NUMBERS) else ANYWHERE
        return self._resolve(a, self._supports, self._support_of, ANYWHERE)

    def _support_of(self, eq, ins):
        return support(eq, [self.support(u) if isinstance(u, Lit) else s for u, s in zip(eq.ins, ins)])

    def entries(self, a):
        """The entries of an index-made atom (or of a constant held as entries), else None."""
        if isinstance(a, Lit):
            return a.val if isinstance(a.val, Entries) else None
        if a not in self.made:
            return None
        return self._resolve(a, self._entries, self._entries_of, None)

    def _entries_of(self, eq, ins):
        if eq.prim.entries is not None:
            return Entries(*eq.prim.entries(**eq.params))
        values = dict(zip(eq.ins, ins))
        if any(isinstance(a, Var) and values[a] is None for a in eq.ins) or \
                sum(isinstance(self._read(a, values), Entries) for a in eq.ins) != 1:  # a seed, and scalars
            return None
        value = fold(eq, lambda a: self._read(a, values), onp.asarray)
        return value if isinstance(value, Entries) else None

    @staticmethod
    def _read(a, values):
        return values[a] if isinstance(a, Var) else a.val

    def _resolve(self, a, memo, rule, otherwise):
        """rule's answer for the Var a, from its arguments' answers, each found once, without
        recursion (a program's chains are long); `otherwise` for constants and inputs."""
        if not isinstance(a, Var) or a not in self.made_by:
            return otherwise
        stack = [a]
        while stack:
            v = stack[-1]
            if v in memo:
                stack.pop()
                continue
            eq = self.made_by[v]
            missing = [u for u in eq.ins if isinstance(u, Var) and u in self.made_by and u not in memo]
            if missing:
                stack.extend(missing)
                continue
            memo[v] = rule(eq, [memo.get(u, otherwise) for u in eq.ins])
            stack.pop()
        return memo[a]


def index_made(eq, made):
    """Whether eq's value is made from indices and constants alone (its Var arguments in `made`):
    a seed, its moves and elementwise results with constants, no sums."""
    if eq.prim.entries is not None:
        return True
    return (eq.prim.elementwise or eq.prim.moves) and eq.prim.reduction is None and \
        all(a in made if isinstance(a, Var) else not a.traced for a in eq.ins)


# ---------------------------------------------------------------- supports
def support(eq, ins):
    """eq's support from its arguments' (a Support each), by its primitive's rules."""
    prim, shape = eq.prim, tuple(eq.out.shape)
    if prim.entries is not None:
        coords, values, _ = prim.entries(**eq.params)
        return _normal(_flat(tuple(c[values != 0] for c in coords), shape), shape)
    if all(s.at is None for s in ins):
        return ANYWHERE
    if prim.moves:
        moved = prim.coords(_as_entries(ins[0].at, eq.ins[0].shape), shape, MOST, **eq.params) \
            if prim.coords is not None and len(ins) == 1 else None
        return _normal(_flat(moved[0], shape), shape) if moved is not None else _densely(eq, ins)
    if prim.reduction == "add":
        axes, keep = eq.params["axes"], eq.params["keepdims"]
        coords = onp.unravel_index(ins[0].at, eq.ins[0].shape)
        kept = tuple(onp.zeros_like(c) if d in axes else c for d, c in enumerate(coords) if keep or d not in axes)
        return _normal(_flat(kept, shape), shape)
    if prim.support is not None:  # a rule of its own (a contraction's join of its operands' non-zeros)
        at = prim.support([s.at for s in ins], [tuple(onp.shape(a)) for a in eq.ins], shape, MOST, **eq.params)
        return ANYWHERE if at is None else _normal(at, shape)
    zero = prim.zero_where
    if zero not in _RULES or not prim.elementwise:
        return ANYWHERE
    return _RULES[zero]([_broadcast(s, a, shape) for s, a in zip(ins, eq.ins)])


def _all_of(ins):
    """a * b: zero where either factor is."""
    known = [s.at for s in ins if s.at is not None]
    at = known[0]
    for other in known[1:]:
        at = onp.intersect1d(at, other, assume_unique=True)
    return Support(at)


def _first(ins):
    """a / b, -a, astype(a): zero where a is."""
    return Support(ins[0].at)


def _any_of(ins):
    """a + b: zero where both are."""
    if any(s.at is None for s in ins):
        return ANYWHERE
    at = ins[0].at
    for other in ins[1:]:
        at = onp.union1d(at, other.at)
    return Support(at)


def _selected(ins):
    """where(c, a, b): b where c is False, so outside c's support (a comparison's too: x != 0 is
    False where x is structurally zero); a's support where c may hold, b's where it may not (b's
    wherever c is not known exactly)."""
    c, a, b = ins
    if b.at is None or (a.at is None and c.at is None):
        return ANYWHERE
    held = c.at if a.at is None else a.at if c.at is None else onp.intersect1d(a.at, c.at, assume_unique=True)
    return Support(onp.union1d(held, onp.setdiff1d(b.at, c.at, assume_unique=True) if c.exact else b.at))


_RULES = {"any": _all_of, "first": _first, "all": _any_of, "selected": _selected}  # by zero_where


def _densely(eq, ins):
    """The support of a move without a coordinate rule: the primitive run on the arguments' masks,
    where the value is small."""
    sizes = [math.prod(a.shape) for a in eq.ins]
    if math.prod(eq.out.shape) > _DENSE or max(sizes) > _DENSE:
        return ANYWHERE
    masks = [onp.ones(a.shape, bool) if s.at is None else mask(s, a.shape) for s, a in zip(ins, eq.ins)]
    out = run(eq.prim, masks, eq.params) != 0
    return _normal(onp.flatnonzero(out), tuple(eq.out.shape))


def _broadcast(s, a, shape):
    """An argument's support broadcast to the output's shape."""
    if s.at is None or tuple(onp.shape(a)) == shape:
        return s
    moved = broadcast_to.coords(_as_entries(s.at, onp.shape(a)), shape, MOST, shape=shape)
    return ANYWHERE if moved is None else Support(_flat(moved[0], shape), s.exact)


def _as_entries(at, shape):
    """Flat positions as Entries (the coords a move's rule moves; values unused)."""
    return Entries(onp.unravel_index(at, shape) if shape else (), onp.zeros(len(at), bool), tuple(shape))


def _flat(coords, shape):
    if not shape:
        return onp.zeros(min(1, len(coords[0]) if coords else 1), onp.int64)
    return onp.unique(onp.ravel_multi_index(coords, shape))


def _normal(at, shape):
    """A support, ANYWHERE where it covers the whole value."""
    return ANYWHERE if len(at) >= math.prod(shape) else Support(at)


# ---------------------------------------------------------------- entries
def fold(eq, value, to_numpy):
    """eq evaluated where some of its arguments are held as Entries (value(atom): its Entries, a
    NumPy array or a Python number): Entries, a dense NumPy array, or None where no rule applies
    (the caller makes them dense)."""
    prim, shape = eq.prim, tuple(eq.out.shape)
    args = [value(a) for a in eq.ins]
    k = next(j for j, a in enumerate(args) if isinstance(a, Entries))
    e = args[k]
    if k == 0 and prim.coords is not None:  # data movement: the entries moved
        moved = prim.coords(e, shape, MOST, **eq.params)
        return None if moved is None else Entries(moved[0], e.values[moved[1]], shape)
    if prim.elementwise and (prim.zero_where == "any" or (prim.zero_where == "first" and k == 0)):
        return _at_entries(eq, args, k, to_numpy)
    if prim.zero_where == "selected" and k and _scalar(args[0]) and not isinstance(args[0], Entries):
        picked = args[1] if bool(args[0]) else args[2]
        return picked._replace(values=picked.values.astype(eq.out.dtype)) \
            if isinstance(picked, Entries) and picked.shape == shape else None
    if prim.reduction == "add":
        axes, keepdims = eq.params["axes"], eq.params["keepdims"]
        out = onp.zeros(shape, eq.out.dtype)
        zero = onp.zeros(len(e.values), onp.int64)
        at = tuple(zero if d in axes else c for d, c in enumerate(e.coords)) if keepdims else \
            tuple(c for d, c in enumerate(e.coords) if d not in axes)
        if at:
            onp.add.at(out, at, e.values)
        else:
            out[...] = e.values.sum()
        return out
    return None


def _at_entries(eq, args, k, to_numpy):
    """An elementwise eq that is zero where its argument k (the Entries) is: evaluated at the
    entries alone, its other arguments (dense) read at their places."""
    e, shape, others = args[k], tuple(eq.out.shape), args[:k] + args[k + 1:]
    if others and not (e.shape == shape and e.coords) or any(isinstance(a, Entries) for a in others):
        return None
    operands = [e.values if j == k else
                onp.broadcast_to(to_numpy(a) if hasattr(a, "shape") else onp.asarray(a), shape)[e.coords]
                for j, a in enumerate(args)]
    values = onp.asarray(eq.prim.impl_on(onp, **eq.params)(*operands))
    return Entries(e.coords, values.astype(eq.out.dtype), shape)


def _scalar(a):
    return isinstance(a, (bool, int, float, complex)) or (hasattr(a, "shape") and a.shape == ())
