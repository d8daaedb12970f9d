"""The order in which a CUDA region kernel's threads walk its loop axes (gpuad/compiler/codegen.py).

Thread i takes the loop element whose digits are i's in C order: neighbouring threads write
neighbouring output elements. A region that reads a transposed operand (a tall or wide
Jacobian's matrix, read at [d1, d0]) then has neighbouring threads read it a row apart (2 KB for
256 doubles): each warp's load touches 32 memory sectors for 32 values. Where that input is at
least as large as the region's output, the threads walk the loop axes with the one indexing the
input's last axis fastest: its reads are coalesced and the writes go strided instead (a load
stalls the thread that waits for it; a store does not, and the cache merges a block's strided
stores into whole sectors). Inputs are taken as C-contiguous, as the arrays a program makes are.
codegen asks `fastest` of the loads of a region's pulled body, and prints the digits and the
outputs' position of the `walk` at the head of the kernel's body.
"""
import math

from . import index as ix
from .ir import Var


def fastest(loads, arrays, outer, out_size):
    """The loop axis the threads should walk fastest: the one indexing the last axis of the largest
    input read along a loop digit, where that input has at least out_size elements; else the last."""
    best, axis = out_size, len(outer) - 1
    for j, idx in loads:
        unit = _unit_axis(arrays[j])
        d = next((d for d in range(len(outer)) if idx[unit] == ix.sym(f"d{d}")), None) if unit is not None else None
        if d is not None and math.prod(arrays[j].shape) >= best and outer[d] > 1:
            best, axis = math.prod(arrays[j].shape), d
    return axis


def _unit_axis(a):
    """The axis along which a's neighbouring elements are neighbours in memory: a program's value's
    last axis longer than 1; a constant's of stride one item (None where it has none)."""
    along = [k for k, d in enumerate(a.shape) if d != 1]
    if not along:
        return None
    if isinstance(a, Var):
        return along[-1]
    return next((k for k in along if abs(a.val.strides[k]) == a.val.itemsize), None)


def walk(outer, axis):
    """(digits, at) where the threads walk the loop axes `outer` with `axis` fastest (the others
    in order before it): each loop digit as an expression of the loop element i, and the element's
    C-order position over the digits, where its outputs are written; None where axis is last."""
    if axis == len(outer) - 1:
        return None
    order = [d for d in range(len(outer)) if d != axis] + [axis]
    walked = dict(zip(order, ix.unravel(ix.sym("i", 0, math.prod(outer) - 1), [outer[d] for d in order])))
    at = ix.ravel([ix.sym(f"d{d}", 0, n - 1) for d, n in enumerate(outer)], outer)
    return tuple(walked[d] for d in range(len(outer))), at
