"""Python functions traced into the branches of one conditional (cond_p, gpuad/loops.py): what
gpuad.lax.switch and cond bind, and gpuad.checkpoint (a one-branch cond); and `as_array`, a
value (a pytree leaf) as the operand of a loop or a branch."""
import itertools

import numpy as onp

from . import backends
from .compiler.ir import Program, Var
from .core import Tracer, same
from .loops import Cond, cond_p, trace_body
from .tree import tree_flatten


def as_array(x):
    """x as an array of the active backend; a traced value as it is."""
    return x if isinstance(x, Tracer) else backends.current().asarray(backends.current().coerce(x))


def switch_branches(index, branches, operands, name):
    """branches[index](*operands) as one cond_p named `name`: each branch traced, every branch
    taking every branch's constants; the branches must return the same structure, shapes and dtypes."""
    leaves, tree = tree_flatten(operands)
    leaves = [as_array(x) for x in leaves]
    avals = [same(x) for x in leaves]
    traced, out = [], []
    for k, br in enumerate(branches):
        def flat(vals, br=br):
            o, t = tree_flatten(br(*tree.unflatten(vals)))
            out.append((t, [same(as_array(x)) for x in o]))
            return [as_array(x) for x in o]
        traced.append(trace_body(flat, avals, f"branch {k}"))
        if out[k] != out[0]:
            raise TypeError(f"switch/cond: branch {k} returns {out[k][0]} with leaves {out[k][1]}, but branch 0 "
                            f"returns {out[0][0]} with leaves {out[0][1]}; every branch must return the same "
                            "structure, shapes and dtypes")
    consts = [c for _, cs in traced for c in cs]
    offsets = onp.cumsum([0] + [len(cs) for _, cs in traced])
    # every branch takes every branch's constants, then the operands
    programs = [_taking(p, [same(c) for c in consts], offsets[k], offsets[k + 1]) for k, (p, _) in enumerate(traced)]
    spec = Cond(programs, name)
    return out[0][0].unflatten(cond_p(index, *consts, *leaves, spec=spec))


def _taking(program, avals, lo, hi):
    """program, whose inputs are constants standing for avals[lo:hi] then the operands, taking all
    of avals ahead of the operands: the others are inputs it does not read."""
    ids = itertools.count(program.next_id())
    consts = [program.ins[k - lo] if lo <= k < hi else Var(next(ids), a) for k, a in enumerate(avals)]
    return Program(consts + program.ins[hi - lo:], program.equations, program.outs)
