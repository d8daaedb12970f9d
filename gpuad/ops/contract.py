"""Two-operand tensor contraction (an einsum without repeated or lone letters) as one matmul.

`spec` is (sa, sb, so): the letters of a, b and the output. Each letter appears in at least
two of the three. Letters in all three are batch axes, letters in a and b only are contracted,
the rest are free. The operands are transposed to (batch, free, contracted) and multiplied by
one (batched) GEMM: on CuPy that is one cuBLAS call for all directions of a bundle.
"""
from math import prod

import numpy as onp

from ..backends import xp
from ..core import Primitive, ShapeDtypeStruct, result_dtype, shape
from .elementwise import add


def contract_arrays(np_, a, b, spec):
    """The contraction of arrays of the module np_ (numpy or cupy)."""
    return _apply(np_, a, b, plan(spec, a.shape, b.shape))


def plan(spec, shape_a, shape_b):
    """How to contract arguments of these shapes: (a's transpose or None, its matrix shape, the same
    for b, the product's shape, its transpose to the output's order or None)."""
    sa, sb, so = spec
    batch = [c for c in so if c in sa and c in sb]
    summed = [c for c in sa if c in sb and c not in so]
    free_a = [c for c in sa if c not in sb]
    free_b = [c for c in sb if c not in sa]
    dims = dict(zip(sa, shape_a))
    dims.update(zip(sb, shape_b))

    def size(letters):
        return prod(dims[c] for c in letters)
    lead = [size(batch)] if batch else []  # no batch axes: a plain matrix product
    order = batch + free_a + free_b
    return (_permutation(sa, batch + free_a + summed), lead + [size(free_a), size(summed)],
            _permutation(sb, batch + summed + free_b), lead + [size(summed), size(free_b)],
            [dims[c] for c in order], _permutation(order, list(so)))


def _permutation(letters, order):
    """The axes of `letters` in `order`, or None where that is the order they are in."""
    perm = [list(letters).index(c) for c in order]
    return None if perm == sorted(perm) else perm


def _apply(np_, a, b, planned):
    perm_a, matrix_a, perm_b, matrix_b, product, perm_out = planned
    a = (a if perm_a is None else np_.transpose(a, perm_a)).reshape(matrix_a)
    b = (b if perm_b is None else np_.transpose(b, perm_b)).reshape(matrix_b)
    out = np_.matmul(a, b).reshape(product)
    return out if perm_out is None else np_.transpose(out, perm_out)


def _lowered(xp, shapes, spec):
    """The contraction for arguments of these shapes (a compiled step): its letters worked out once."""
    planned = plan(spec, *shapes)

    def contract_step(a, b):
        return _apply(xp, a, b, planned)
    return contract_step


def _fresh(spec):
    """A letter no operand of spec uses: the axis of a bundle's directions."""
    used = set("".join(spec))
    return next(c for c in "ZYXWVUTSRQPONMLKJIHGFEDCBA" if c not in used)


def _contract_jvp(primals, tangents, spec):
    a, b = primals
    ta, tb = tangents
    sa, sb, so = spec
    k = _fresh(spec)
    t = None
    if ta is not None:
        t = contract(ta, b, spec=(k + sa, sb, k + so))
    if tb is not None:
        tb_term = contract(a, tb, spec=(sa, k + sb, k + so))
        t = tb_term if t is None else add(t, tb_term)
    return contract(a, b, spec=spec), t


def _contract_vjp(ct, args, out, needed, spec):
    a, b = args
    sa, sb, so = spec
    k = _fresh(spec)
    return [contract(ct, b, spec=(k + so, sb, k + sa)) if needed[0] else None,
            contract(ct, a, spec=(k + so, sa, k + sb)) if needed[1] else None]


def _contract_batch(args, batched, spec):
    sa, sb, so = spec
    k = _fresh(spec)
    return contract(*args, spec=(k + sa if batched[0] else sa, k + sb if batched[1] else sb, k + so)), True


def _contract_abstract(a, b, spec):
    sa, sb, so = spec
    dims = dict(zip(sa, shape(a)))
    dims.update(zip(sb, shape(b)))
    return ShapeDtypeStruct([dims[c] for c in so], result_dtype(a, b))


contract = Primitive(
    "contract", lambda a, b, spec: contract_arrays(xp(), a, b, spec),
    _contract_jvp, _contract_vjp, _contract_batch, abstract=_contract_abstract)
contract.lower = _lowered
contract.complex_ready = True  # bilinear: its rules are contractions again, without conjugates


# ---------------------------------------------------------------- sparsity patterns
from . import patterns  # noqa: E402  (here with the rules it serves)


def _contract_pattern(args, out, spec):
    """An output element depends on the elements its letters meet; an operand's zeros cut (a
    constant's, or structural ones: patterns.may_be_nonzero)."""
    (a, b), (sa, sb, so) = args, spec
    return [patterns.mixing(out.shape, so, a.shape, sa, _masks(b, sb)) if patterns.unknown(a) else None,
            patterns.mixing(out.shape, so, b.shape, sb, _masks(a, sa)) if patterns.unknown(b) else None]


def _masks(other, letters):
    mask = patterns.may_be_nonzero(other)
    return () if mask is None else ((mask, letters),)


contract.pattern = _contract_pattern


# ---------------------------------------------------------------- compiler rules (gpuad/compiler/)
def _copied(args, spec):
    """Which operands are transposed to (batch, free, summed) order in memory before the GEMM."""
    arranged = plan(spec, *(shape(a) for a in args))
    return [arranged[0] is not None, arranged[2] is not None]


contract.copied = _copied
contract.launches = lambda args, spec: 1 + sum(_copied(args, spec))



def _contract_support(ats, shapes, out_shape, most, spec):
    """Where the contraction may be non-zero, from where its operands may be (sorted flat positions,
    None: anywhere): at the output coordinates of each pair of operand non-zeros that agree on the
    letters both carry (a join of their coordinates, no masks, so a block-diagonal or banded seed of
    any size keeps its structure), an operand non-zero anywhere adding the whole range of its own
    letters. None where that is more than `most` pairs or positions."""
    known = [j for j in (0, 1) if ats[j] is not None]
    sa, sb, so = spec if known[0] == 0 else (spec[1], spec[0], spec[2])
    a, shape_a, shape_b = ats[known[0]], shapes[known[0]], shapes[1 - known[0]]
    dims = dict(zip(sb, shape_b)) | dict(zip(sa, shape_a))
    coords = dict(zip(sa, _unravelled(a, shape_a)))
    if len(known) == 1:  # b anywhere: a's output letters where a is non-zero, b's own letters everywhere
        kept, own = [c for c in so if c in sa], [c for c in so if c not in sa]
        rows = onp.unique(onp.stack([coords[c] for c in kept] + [onp.zeros(len(a), onp.int64)]), axis=1)[:-1]
        count = prod(dims[c] for c in own)
        if rows.shape[1] * count > most:
            return None
        coords = dict(zip(kept, onp.repeat(rows, count, axis=1)))
        coords.update(zip(own, onp.tile(onp.indices([dims[c] for c in own]).reshape(len(own), count), rows.shape[1])))
        total = rows.shape[1] * count
    else:
        b = ats[1 - known[0]]
        coords_b = dict(zip(sb, _unravelled(b, shape_b)))
        shared = [c for c in sa if c in sb]
        key_a = _positions([coords[c] for c in shared], [dims[c] for c in shared], len(a))
        key_b = _positions([coords_b[c] for c in shared], [dims[c] for c in shared], len(b))
        order = onp.argsort(key_b, kind="stable")
        lo, hi = onp.searchsorted(key_b[order], key_a, "left"), onp.searchsorted(key_b[order], key_a, "right")
        counts = hi - lo
        total = int(counts.sum())
        if total > most:
            return None
        first = onp.repeat(onp.arange(len(a)), counts)  # the pairs: a's entry and b's entry
        second = order[onp.arange(total) - onp.repeat(onp.cumsum(counts) - counts - lo, counts)]
        coords = {c: coords[c][first] if c in sa else coords_b[c][second] for c in so}
    return onp.unique(_positions([coords[c] for c in so], [dims[c] for c in so], total))


def _unravelled(at, shape):
    return onp.unravel_index(at, shape) if shape else ()


def _positions(coords, shape, n):
    """Flat positions of n coordinates (one array per axis) in an array of this shape."""
    return onp.ravel_multi_index(coords, shape) if shape else onp.zeros(n, onp.int64)


contract.support = _contract_support
