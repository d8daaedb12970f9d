"""What one call of a compiled program costs on CuPy, by a model counted without a GPU: device
launches, and bytes moved to and from device memory.

The count follows the replay's plan (gpuad/compiler/replay.py): a fusion region is one kernel, an add in
place one, and each other step one CuPy call, which its primitive's `launches` says how many
kernels (or cuBLAS/cuSOLVER/CUB calls, memsets, copies) launches. Views launch nothing. Not counted: copies
CuPy makes to lay out a non-contiguous operand that the model cannot see (a reshape of a
transposed view), and one-time setup (compilation, the constants' transfer).

Bytes: each step reads its array inputs once and writes its outputs once (a region reads only
the arrays it cannot make from indices or literals; an add in place reads and writes its target,
an add at positions only the part it lands on; a GEMM's transposed operands cost a copy each;
a loop's body moves its bytes on every trip, as its launches count, unless the whole loop is one
kernel: then one launch, its operands read and its output written); views move nothing. Caches are not modelled, so
this is the traffic of a machine whose cache holds none of the step's data.
"""

from .ir import Var, nbytes, view
from .replay import plan
from .target import CUPY


def _held(eq):
    """The static part of a step that runs programs (a loop or conditional of gpuad/loops.py),
    whose per_call(cost) says what a call costs from cost(program): a scan its body's cost per
    trip, a while loop one trip (its trip count is not known before it runs), a cond its
    costliest branch. None for other steps."""
    spec = eq.params.get("spec")
    return spec if hasattr(spec, "per_call") else None


def count(program, fusion=True):
    """Launches of one call of the program on CuPy, by the model above (default: one per step)."""
    return sum(1 if step.kind != "eq" else _launches(step.node) for step in plan(program, fusion, CUPY))


def _one_kernel(eq):
    """Whether a loop step runs as one CUDA kernel (gpuad/compiler/loop_kernel.py)."""
    kernel = getattr(_held(eq), "kernel", None)
    return kernel is not None and kernel(CUPY) is not None


def _launches(eq):
    if _one_kernel(eq):
        return 1
    if _held(eq) is not None:
        return _held(eq).per_call(count)
    if view(eq):
        return 0
    n = eq.prim.launches
    return n(eq.ins, **eq.params) if callable(n) else n


def bytes_moved(program, fusion=True):
    """Bytes one call of the program reads and writes in device memory, by the model above."""
    total = 0
    for step in plan(program, fusion, CUPY):
        if step.kind == "eq" and _launches(step.node) == 0:
            continue  # a view
        if step.kind == "add_at_into":  # the added values, and the part of the target they land on
            total += 3 * nbytes(step.ins[1])
            continue
        arrays = {a if isinstance(a, Var) else id(a.val): a for a in step.ins
                  if isinstance(a, Var) or hasattr(a.val, "nbytes")}.values()
        read, written = sum(map(nbytes, arrays)), sum(map(nbytes, step.outs))  # add_into: its target both
        if step.kind == "eq" and step.node.prim.copied is not None:  # each copy reads and writes its operand
            copied = step.node.prim.copied(step.node.ins, **step.node.params)
            read += 2 * sum(nbytes(a) for a, copy in zip(step.ins, copied) if copy)
        if step.kind == "eq" and _held(step.node) is not None and not _one_kernel(step.node):
            # its operands once, its bodies per trip (a loop run as one kernel: its operands and output)
            read += _held(step.node).per_call(bytes_moved)
        total += read + written
    return total

