"""How many device launches a compiled program makes per call on CuPy: a model, counted without a GPU.

The count follows the replay's plan (gpuad/replay.py): a fusion region is one kernel, an add in
place one, and each other step one CuPy call, which the table says how many kernels (or
cuBLAS/cuSOLVER/CUB calls, memsets, copies) launches. Views launch nothing. Not counted: copies
CuPy makes to lay out a non-contiguous operand that the model cannot see (a reshape of a
transposed view), and one-time setup (compilation, the constants' transfer).
"""
from math import prod

from ..replay import plan

# primitive name -> launches per call; a callable takes the equation
_LAUNCHES = {
    "reshape": 0, "transpose": 0, "broadcast_to": 0,
    "getitem": lambda eq: 0 if all(isinstance(i, (int, slice, type(None))) for i in eq.params["idx"]) else 1,
    "scatter": 2,         # zeros, then the add at the positions
    "index_add": 2, "index_set": 2,  # copy, then the update
    "put_along": 3,       # zeros, the index grids, the scatter-add
    "argsort": 3,         # CUB radix sort passes
    "solve": 4, "logabsdet": 4, "det_sign": 4,  # LU factorisation, solve or reductions, copies
    "cholesky": 2,
    "eigh": 4, "svd": 4, "qr": 4,  # cuSOLVER's factorisation, its workspace and info, the packing copy
    "lu": lambda eq: 3 * prod(eq.ins[0].shape[:-2]) + 1,  # cupyx's lu_factor, one matrix at a time
    "contract": lambda eq: 1 + sum(_copies(eq)),
}


def count(program, fusion=True):
    """Launches of one call of the program on CuPy, by the model above (default: one per step)."""
    total = 0
    for step in plan(program, fusion):
        if step.kind != "eq":
            total += 1
            continue
        n = _LAUNCHES.get(step.node.prim.name, 1)
        total += n(step.node) if callable(n) else n
    return total


def _copies(eq):
    """Operands of a contraction that must be transposed to (batch, free, summed) order in memory
    before the GEMM (gpuad/ops/contract.py): each is one copy."""
    sa, sb, so = eq.params["spec"]
    batch = [c for c in so if c in sa and c in sb]
    summed = [c for c in sa if c in sb and c not in so]
    order_a = batch + [c for c in sa if c not in sb] + summed
    order_b = batch + summed + [c for c in sb if c not in sa]
    return [list(letters) != order for letters, order in ((sa, order_a), (sb, order_b))]
