"""Sparsity rules: which elements of its arguments each output element of a primitive can depend on.

A primitive's `pattern` rule is called as `rule(args, out, **params)`, where an argument is a
`ShapeDtypeStruct` when its values are unknown (a variable of a traced program) or the constant
itself, and `out` is the output's ShapeDtypeStruct. It returns, per argument, its local pattern
as a pair `(rows, cols)` of flat element indices (output element, argument element), or a
`Through` (the same, factored through an intermediate space), or None where the output does not
depend on that argument. gpuad.sparse chains these local patterns
through a program. Rules are structural: the entries they give can be non-zero for some values
of the unknown arguments; a constant's zeros are used (a product with a constant mask is masked).

Most rules are `mixing`: output and argument axes are named by letters, and an output element
depends on the argument elements that agree with it on the letters they share (broadcasting
included: a size-1 axis matches every position). This module holds only NumPy index arithmetic
(no SciPy: gpuad imports without it).
"""
import math
from typing import NamedTuple

import numpy as onp

from .. import backends
from ..compiler import index as ix
from ..core import ShapeDtypeStruct, map_results

MAX_PAIRS = 1 << 28  # (output, input) pairs one rule may list: 4 GiB of int64 rows and columns
_AXES = "abcdefghijklmnopqrstuvwxyz"  # letters of ordinary axes; upper case ones are the rules' own


def unknown(a):
    """True for an argument whose values are not known while the pattern is found."""
    return isinstance(a, ShapeDtypeStruct)


def ids(shape):
    """Flat element numbers of an array of this shape, laid out in the shape (C order)."""
    return onp.arange(math.prod(shape)).reshape(shape)


def nonzero(a):
    """A constant's non-zero mask, or None for an unknown argument (any entry may be non-zero)."""
    return None if unknown(a) else onp.asarray(a) != 0


class Masked(ShapeDtypeStruct):
    """An unknown argument that is zero outside `mask` for every value of the inputs (its
    structural zeros: gpuad/compiler/structure.py)."""
    __slots__ = ("mask",)

    def __init__(self, shape, dtype, mask):
        super().__init__(shape, dtype)
        self.mask = mask


def may_be_nonzero(a):
    """Where an argument may be non-zero: a constant's non-zeros, an unknown one's mask where it
    is Masked, else None (anywhere). A factor's zeros cut the other factor's dependence."""
    return a.mask if isinstance(a, Masked) else nonzero(a)


class Through(NamedTuple):
    """A local pattern factored through an intermediate index space of `size` elements: the
    argument's elements reach it by `first` (rows in it, cols in the argument), the output's by
    `then` (rows in the output, cols in it). A dense mix (a matrix product, an inverse) is then
    out.size + arg.size pairs, not their product."""
    size: int
    first: tuple
    then: tuple


def mixing(out_shape, out_letters, arg_shape, arg_letters, masks=()):
    """The output elements paired with the argument elements that agree with them on the letters
    they share; masks are (boolean array, its letters) that must hold too. Without masks, and
    with letters of its own on each side, the pairs go through the shared letters (a Through).

    >>> mixing((2,), "a", (2, 3), "ab")  # a sum over b
    (array([0, 0, 0, 1, 1, 1]), array([0, 1, 2, 3, 4, 5]))
    """
    if not masks and set(out_letters) - set(arg_letters) and set(arg_letters) - set(out_letters):
        shared = "".join(c for c in out_letters if c in arg_letters)
        mid = tuple(max(out_shape[out_letters.index(c)], arg_shape[arg_letters.index(c)]) for c in shared)
        return Through(math.prod(mid), _pairs(mid, shared, arg_shape, arg_letters),
                       _pairs(out_shape, out_letters, mid, shared))
    return _pairs(out_shape, out_letters, arg_shape, arg_letters, masks)


def _pairs(out_shape, out_letters, arg_shape, arg_letters, masks=()):
    """(rows, cols) of mixing over the grid of all the letters."""
    letters = "".join(dict.fromkeys(out_letters + arg_letters + "".join(m for _, m in masks)))
    placed = [_place(ids(out_shape), out_letters, letters), _place(ids(arg_shape), arg_letters, letters)]
    placed += [_place(m, ml, letters) for m, ml in masks]
    grid = onp.broadcast_shapes(*(p.shape for p in placed))
    affordable(math.prod(grid))
    rows, cols = (onp.broadcast_to(p, grid) for p in placed[:2])
    if not masks:
        return rows.ravel(), cols.ravel()
    keep = onp.broadcast_to(onp.logical_and.reduce([onp.broadcast_to(p, grid) for p in placed[2:]]), grid)
    return rows[keep], cols[keep]


def affordable(pairs):
    """Refuse a local pattern of this many (output, input) pairs before allocating anything for it:
    the machine may not survive trying."""
    if pairs > MAX_PAIRS:
        raise MemoryError(f"gpuad.sparse: a primitive's local pattern spans {pairs} (output, input) pairs, over "
                          f"the limit of {MAX_PAIRS}: too dense to find this way; pass sparsity=")


def _place(x, named, letters):
    """x (its axes named by `named`) with its axes in the order of `letters`, size 1 where it lacks one."""
    x = onp.asarray(x)
    order = sorted(range(len(named)), key=lambda k: letters.index(named[k]))
    moved = onp.transpose(x, order)
    return moved.reshape([x.shape[named.index(c)] if c in named else 1 for c in letters])


def right_aligned(ndim, out_ndim):
    """Letters of an argument of ndim axes broadcast against an output of out_ndim axes."""
    return _AXES[out_ndim - ndim:out_ndim]


# ---------------------------------------------------------------- rules
def none(args, out, **params):
    """No derivative: comparisons, floor, argsort... (their output never depends on an input)."""
    return [None] * len(args)


def elementwise(args, out, **params):
    """Each output element depends on the element each argument broadcasts to it."""
    return [_broadcast(a, out) if unknown(a) else None for a in args]


def _broadcast(a, out, mask=None):
    n = len(out.shape)
    masks = () if mask is None else ((mask, right_aligned(onp.ndim(mask), n)),)
    return mixing(out.shape, _AXES[:n], a.shape, right_aligned(len(a.shape), n), masks)


def cast(args, out, **params):
    """astype: elementwise to a floating dtype; to integers or booleans, no derivative."""
    return (elementwise if out.dtype.kind in "fc" else none)(args, out)


def product(args, out, **params):
    """a * b: where one factor is zero (a constant's zeros, or structural ones), it cuts the
    other's dependence."""
    a, b = args
    return [_broadcast(a, out, may_be_nonzero(b)) if unknown(a) else None,
            _broadcast(b, out, may_be_nonzero(a)) if unknown(b) else None]


def select(args, out, **params):
    """where(c, a, b): a where c holds, b elsewhere; a unknown c may pick either."""
    c, a, b = args
    keep = nonzero(c)
    return [None, _broadcast(a, out, keep) if unknown(a) else None,
            _broadcast(b, out, None if keep is None else ~keep) if unknown(b) else None]


def reduction(args, out, axes, keepdims, **params):
    """A reduction over `axes` (sum, max): an output element depends on its whole slice (a kept
    axis of size 1 broadcasts against the argument's)."""
    x, = args
    letters = _AXES[:len(x.shape)]
    kept = letters if keepdims else "".join(c for k, c in enumerate(letters) if k not in axes)
    return [mixing(out.shape, kept, x.shape, letters)]


def along(x_shape, out_shape, axis, mask=None):
    """Pairs of output and argument elements on the same line along `axis` (any position on it,
    or those the (out position, argument position) mask allows); the other axes broadcast."""
    n = len(out_shape)
    out_letters = _AXES[:n]
    x_letters = out_letters[:axis] + "Z" + out_letters[axis + 1:]
    masks = () if mask is None else ((mask, out_letters[axis] + "Z"),)
    return mixing(out_shape, out_letters, x_shape, x_letters, masks)


def prefix(args, out, axis, **params):
    """cumsum along axis: element i depends on elements 0..i of its line."""
    x, = args
    size = x.shape[axis]
    affordable(math.prod(out.shape) * size)  # before the size x size mask
    return [along(x.shape, out.shape, axis, onp.tri(size, dtype=bool))]


def moves(prim, data=None):
    """The rule of a primitive that moves elements (out[k] is an element of an argument, or a
    constant): its own impl applied to element numbers gives the map. `data` are the positions
    of the arguments that carry values; the others (indices) must be constants."""
    def rule(args, out, **params):
        slots = range(len(args)) if data is None else data
        probe, spans, start = list(args), {}, 1  # 0 and below: no argument's element (a constant)
        for k in slots:
            a = args[k]
            size = math.prod(onp.shape(a))
            probe[k] = ids(a.shape) + start if unknown(a) else onp.zeros(onp.shape(a), dtype=onp.int64)
            spans[k] = (start, size) if unknown(a) else None
            start += size
        if any(unknown(args[k]) for k in range(len(args)) if k not in spans):
            raise NotImplementedError(f"sparsity of {prim.name} with unknown indices")
        found = run(prim, probe, params).ravel()
        return [_located(found, spans.get(k)) for k in range(len(args))]
    return rule


def index_map(prim, args, out_shape, **params):
    """A move's index map (its `index` rule) evaluated at every element of its output: (which, flat),
    arrays of out_shape holding the argument each output element reads (-1: none, a zero) and
    its flat element there. args: the arguments, shapes (ShapeDtypeStruct) where unknown, arrays
    where constant (the positions a gather reads at)."""
    grid = onp.indices(out_shape)
    env = {f"o{k}": grid[k] for k in range(len(out_shape))}
    out = tuple(ix.sym(f"o{k}", 0, n - 1) for k, n in enumerate(out_shape))

    def read(a, at):
        values = onp.asarray(args[a] if isinstance(a, int) else a)
        where = [onp.broadcast_to(ix.evaluate(e, env), out_shape) for e in at[len(at) - values.ndim:]]
        name = f"p{len(env)}"
        env[name] = values[tuple(onp.zeros_like(w) if d == 1 else w for w, d in zip(where, values.shape))]
        return ix.sym(name, int(values.min(initial=0)), int(values.max(initial=0)))
    shapes = [tuple(onp.shape(a)) for a in args]
    which, flat = onp.full(out_shape, -1), onp.zeros(out_shape, onp.int64)
    for cond, k, at in prim.index(out, shapes, read, **params):
        hold = onp.broadcast_to(ix.evaluate(cond, env), out_shape) & (which < 0)
        which[hold] = k
        flat[hold] = onp.broadcast_to(ix.evaluate(ix.ravel(at, shapes[k]), env), out_shape)[hold]
    return which, flat


def _located(found, span):
    if span is None:
        return None
    start, size = span
    rows = onp.flatnonzero((found >= start) & (found < start + size))
    return rows, found[rows] - start


def run(prim, arrays, params):
    """prim's impl on NumPy arrays (through the active backend), with a NumPy result (a tuple of
    them for a primitive of multiple results)."""
    be = backends.current()
    out = prim.impl(*[be.coerce(a) for a in arrays], **params)
    return map_results(prim, be.to_numpy, out)


def spreads(gather):
    """The rule of a primitive that adds its argument `v` into zeros (scatter): the transpose of
    the gather that reads v's places back. gather(out_ids, args, **params) -> the output element
    read at each element of (a broadcast of) v."""
    def rule(args, out, **params):
        v = args[0]
        read = gather(ids(out.shape), args, **params)
        full = onp.broadcast_shapes(read.shape, v.shape)
        cols = onp.broadcast_to(ids(v.shape), full).ravel()
        return [(onp.broadcast_to(read, full).ravel(), cols)] + [None] * (len(args) - 1)
    return rule


def stacked(out, out_letters, arg, arg_letters, lower=False):
    """Pairs for an op on stacks of matrices: the stack axes (leading) broadcast, the matrix axes
    are named by the given upper-case letters. lower: the output is lower triangular (cholesky)."""
    k = len(out.shape) - len(out_letters)
    stack = _AXES[:k]
    arg_stack = right_aligned(len(arg.shape) - len(arg_letters), k)
    masks = ((onp.tri(out.shape[-1], dtype=bool), out_letters),) if lower else ()
    return mixing(out.shape, stack + out_letters, arg.shape, arg_stack + arg_letters, masks)
