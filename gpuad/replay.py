"""Replay: a program compiled into one Python function over backend arrays.

Each step calls its primitive's impl directly (no bind, no dispatch), with its parameters bound
once. A value is dropped after its last use, so the allocator reuses its memory within the call,
and where the program adds into a value nothing reads afterwards, the step adds in place:
`a + b` writes into a's buffer, and `a + scatter(v, idx)` (a slice's adjoint accumulated)
becomes `a[idx] += v` with no zeros-sized temporary.
"""
import numpy as onp

from . import backends
from .ops.indexing import add_at
from .program import Var

# Primitives whose result may share memory with an argument: never written in place.
_VIEWS = frozenset({"reshape", "transpose", "broadcast_to", "getitem"})


class Step:
    __slots__ = ("fn", "ins", "out")

    def __init__(self, fn, ins, out):
        self.fn, self.ins, self.out = fn, ins, out


class Replay:
    """`run(*inputs)` -> the program's outputs (a list), for backend arrays of the traced signature."""

    def __init__(self, program):
        self.steps = _in_place(program, _steps(program, backends.xp()))
        self.source, self.run = _generate(program, self.steps)


def _steps(program, xp):
    steps = []
    for eq in program.equations:
        f = eq.prim.impl_on(xp, **eq.params)
        steps.append(Step(_as_array(f) if not eq.out.shape else f, list(eq.ins), eq.out))
    return steps


def _as_array(f):
    """NumPy returns scalars for 0-d results; the steps and the caller want arrays."""
    def g(*args):
        out = f(*args)
        return onp.asarray(out) if isinstance(out, onp.generic) else out
    return g


def _in_place(program, steps):
    """Rewrite adds whose first (or second) operand is an owned, otherwise dead value of the
    output's shape and dtype: into that operand's buffer, and through a scatter made for the
    add alone, as an add at the scatter's positions."""
    producer = {eq.out: eq for eq in program.equations}
    uses = _use_counts(program)
    owned = {eq.out for eq in program.equations if eq.prim.name not in _VIEWS}
    keep = {o for o in program.outs if isinstance(o, Var)}
    xp = backends.xp()
    out, skip = [], set()
    for eq, step in zip(program.equations, steps):
        if eq.prim.name == "add":
            step = _accumulate(eq, step, producer, uses, owned, keep, skip, xp)
        out.append(step)
    return [s for s in out if s.out not in skip]


def _accumulate(eq, step, producer, uses, owned, keep, skip, xp):
    for k in (0, 1):
        target, other = eq.ins[k], eq.ins[1 - k]
        if not (isinstance(target, Var) and target in owned and target not in keep and uses[target] == 1
                and target.shape == eq.out.shape and target.dtype == eq.out.dtype):
            continue
        src = producer.get(other) if isinstance(other, Var) else None
        if src is not None and src.prim.name == "scatter" and uses[other] == 1 and other not in keep \
                and src.params["shape"] == eq.out.shape and src.ins[0].dtype == eq.out.dtype:
            skip.add(other)
            return Step(_add_at_into(src.params["idx"]), [target, src.ins[0]], eq.out)
        return Step(_add_into(xp), [target, other], eq.out)
    return step


def _add_into(xp):
    def add_into(a, b):
        return xp.add(a, b, out=a)
    return add_into


def _add_at_into(idx):
    def add_at_into(a, v):
        return add_at(a, idx, v)
    return add_at_into


def _use_counts(program):
    uses = {}
    for eq in program.equations:
        for a in eq.ins:
            if isinstance(a, Var):
                uses[a] = uses.get(a, 0) + 1
    for o in program.outs:
        if isinstance(o, Var):
            uses[o] = uses.get(o, 0) + 1
    return uses


def _generate(program, steps):
    """Python source for the steps, compiled: (source, function)."""
    names = {v: f"x{k}" for k, v in enumerate(program.ins)}
    env = {}

    def ref(a):
        if isinstance(a, Var):
            return names[a]
        env[f"c{len(env)}"] = a
        return f"c{len(env) - 1}"

    last = {}
    for i, step in enumerate(steps):
        for a in step.ins:
            if isinstance(a, Var):
                last[a] = i
    keep = {o for o in program.outs if isinstance(o, Var)} | set(program.ins)
    lines = [f"def replay({', '.join(names[v] for v in program.ins)}):"]
    for i, step in enumerate(steps):
        env[f"f{i}"] = step.fn
        args = ", ".join(ref(a) for a in step.ins)
        names[step.out] = f"v{i}"
        lines.append(f"    v{i} = f{i}({args})")
        dead = [names[a] for a in dict.fromkeys(a for a in step.ins if isinstance(a, Var))
                if last[a] == i and a not in keep]
        if dead:
            lines.append(f"    del {', '.join(dead)}")
    lines.append(f"    return [{', '.join(ref(o) for o in program.outs)}]")
    source = "\n".join(lines)
    exec(compile(source, "<gpuad.jit replay>", "exec"), env)
    return source, env["replay"]
