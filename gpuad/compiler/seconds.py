"""The time model fusion decides by: what a region's kernel costs on a Target against its members
run one by one (NumPy's ufuncs and views on the CPU, CuPy's kernels on a GPU), in seconds, from
what each call costs, the bytes each moves and the arithmetic each does (a kernel's own, and the
work it redoes). A region is kept only where its kernel costs less, by a margin (fusion.fuse); the
constants are the Target's (compiler/target.py).

- A member run alone: a call (a view's costs less; on a GPU none, it launches nothing), then the
  longer of moving its bytes (an operand viewed by another member is read at its base's size: a
  broadcast reads its source) and its arithmetic (Target.library_op_s: NumPy's loops over strided
  columns run scalar code where a kernel's are vectorised), and on the CPU a loop of NumPy's per
  row of its output, the trailing axes along which each operand runs whole (a (256, 1) column times
  a (256, 64) matrix loops 256 times over 64 elements: rows, not elements, decide its time).
- A region's kernel: one call, then the longer of moving the arrays it reads from outside (once
  each) and the values it writes, and its arithmetic, counting each element as many times as it
  is evaluated (a value redone for each reader, fusion._evaluations; a scalar once: the loop
  reads it as one invariant value).
Caches are not modelled: every byte costs the same.
"""
from math import prod

from .ir import Lit, Var, nbytes, view

_OPERATIONS = {"free": 0, "cheap": 1, None: 8}  # arithmetic per element of a member, by its recompute rule
# The share of its members' time a region must save: where the model sees a tie (the same bytes, a
# call saved), a generated loop can lose to NumPy's (two products written by one kernel: 1.3x the
# two ufuncs on the 2-core Xeon, tests/test_fusion_cost.py's `apart`)
_MARGIN = 0.05


def worth_a_kernel(equations, outs, evaluations, target):
    """Whether a region of these equations (outs: the values read outside it; evaluations: how many
    elements of each member's value it evaluates) costs less as one kernel than its members alone,
    by more than the model's margin of error."""
    return kernel(equations, outs, evaluations, target) < (1 - _MARGIN) * alone(equations, target)


def kernel(equations, outs, evaluations, target):
    """Seconds of one call of the region's kernel."""
    inside = {eq.out for eq in equations}
    reads = {a if isinstance(a, Var) else id(a.val): a for eq in equations for a in eq.ins
             if (isinstance(a, Var) and a not in inside) or (isinstance(a, Lit) and hasattr(a.val, "nbytes"))}
    moved = sum(map(nbytes, reads.values())) + sum(map(nbytes, outs))
    work = sum(_OPERATIONS[eq.prim.recompute] * max(prod(eq.out.shape), evaluations.get(eq.out, 0))
               for eq in equations if prod(eq.out.shape) > 1)
    return target.kernel_s + max(moved * target.byte_s, work * target.op_s)


def alone(equations, target):
    """Seconds of the equations run one by one, each a library call."""
    made = {eq.out: eq for eq in equations}
    total = 0.0
    for eq in equations:
        if view(eq):
            total += target.view_s
            continue
        arrays = [a for a in eq.ins if isinstance(a, Var) or hasattr(a.val, "nbytes")]
        moved = sum(nbytes(_base(a, made)) for a in arrays) + nbytes(eq.out)
        work = _OPERATIONS[eq.prim.recompute] * prod(eq.out.shape)
        total += target.call_s + _rows(eq, arrays) * target.row_s + \
            max(moved * target.byte_s, work * target.library_op_s)
    return total


def _base(a, made):
    """The value a view (of views) among the members reads its elements from."""
    while isinstance(a, Var) and a in made and view(made[a]) and prod(a.shape) >= prod(made[a].ins[0].shape):
        a = made[a].ins[0]
    return a


def _rows(eq, arrays):
    """How many inner loops NumPy runs for an equation: its output's elements over the trailing
    axes along which every operand is whole or one value (one loop each for a sum's outputs)."""
    shape = eq.out.shape
    if eq.prim.reduction is not None:
        return max(1, prod(shape))
    shapes = [(1,) * (len(shape) - len(a.shape)) + tuple(a.shape) for a in arrays]
    k = len(shape)
    while k > 0 and all(s[k - 1:] == shape[k - 1:] or not any(d != 1 for d in s[k - 1:]) for s in shapes):
        k -= 1
    return max(1, prod(shape[:k]))
