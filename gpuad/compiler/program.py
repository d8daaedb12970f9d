"""Programs: a function traced once, abstractly, into a straight list of equations.

`trace_program` runs a function on abstract values (shape and dtype, no data) under a
`ProgramTrace`: every primitive applied to them becomes an `Equation` of typed variables,
integer index arithmetic and non-differentiable ops included. Operations on constants alone
are evaluated while tracing (constant folding comes free from `bind`); primitives without
arguments (the `eye` of Jacobian seeds) are staged as equations, and `fold_constants` decides
after tracing which of the values made from them to evaluate. A program is then optimised by
small passes (`fold_constants`, `simplify`, `diagonal_contractions`, `common_subexpressions`,
`dead_code`), and either
evaluated with `bind` on any values (so every transform of a compiled function runs over its
program, with no second copy of any rule) or compiled by `replay.Replay` into one Python
function over backend arrays, with no per-primitive dispatch.
"""
import itertools
import math
from typing import Any

import numpy as onp

from .. import backends
from ..core import SCALARS, ShapeDtypeStruct, Trace, Tracer, bind, new_trace
from ..core import dtype as _dtype
from ..ops import MOVES
from ..ops.elementwise import multiply
from ..ops.shape import broadcast_to, reshape, transpose
from ..ops.table import ROWS
from . import seeds


class Var:
    """A typed variable of a program."""
    __slots__ = ("id", "shape", "dtype")

    def __init__(self, id_: int, aval: Any) -> None:
        self.id: int = id_
        self.shape: tuple[int, ...] = aval.shape
        self.dtype: onp.dtype = aval.dtype

    def __repr__(self) -> str:
        return f"v{self.id}"


class Equation:
    """out = prim(*ins, **params); an input is a Var or a constant (array or Python scalar)."""
    __slots__ = ("prim", "ins", "out", "params")

    def __init__(self, prim: Any, ins: list[Any], out: Var, params: dict[str, Any]) -> None:
        self.prim, self.ins, self.out, self.params = prim, ins, out, params


class Program:
    """Equations over variables: inputs in `ins`, outputs in `outs` (Vars or constants)."""
    sweeps = False  # set on a traced program whose function ran Jacobian sweeps (chunk_size can split them)

    def __init__(self, ins: list[Var], equations: list[Equation], outs: list[Any]) -> None:
        self.ins, self.equations, self.outs = ins, equations, outs

    @property
    def cacheable(self) -> bool:
        """False when a constant is a value of an enclosing transform (a closure over a tracer):
        such a program is valid for the call that traced it only."""
        return not any(isinstance(a, Tracer) for eq in self.equations for a in eq.ins) and \
            not any(isinstance(o, Tracer) for o in self.outs)

    def evaluate(self, values: list[Any]) -> list[Any]:
        """The outputs for input values of any kind (arrays, or tracers of outer transforms), by
        binding each equation's primitive: transforms of a compiled function run over it here."""
        env = dict(zip(self.ins, values))
        for eq in self.equations:
            env[eq.out] = bind(eq.prim, *[env[a] if isinstance(a, Var) else a for a in eq.ins], **eq.params)
        return [env[o] if isinstance(o, Var) else o for o in self.outs]

    def text(self) -> str:
        """The program, one equation a line, readable like a jaxpr."""
        lines = [f"{{ lambda {', '.join(_typed(v) for v in self.ins)} ."]
        for eq in self.equations:
            params = ", ".join(f"{k}={_short(v)}" for k, v in eq.params.items())
            args = " ".join(_atom(a) for a in eq.ins)
            lines.append(f"    {_typed(eq.out)} = {eq.prim.name}{'[' + params + ']' if params else ''} {args}")
        lines.append(f"  in ({', '.join(_atom(o) for o in self.outs)}) }}")
        return "\n".join(lines)


def _typed(v):
    return f"{v}:{v.dtype.name}{list(v.shape)}"


def _atom(a):
    if isinstance(a, Var):
        return repr(a)
    if hasattr(a, "shape") and a.shape:
        return f"const:{a.dtype.name}{list(a.shape)}"
    return repr(a.item() if hasattr(a, "item") else a)


def _short(p):
    if isinstance(p, onp.dtype):
        return p.name
    if isinstance(p, tuple):
        return "(" + ", ".join(_short(x) for x in p) + ")"
    if hasattr(p, "shape"):
        return f"array{list(p.shape)}"
    if isinstance(p, slice):
        text = ":".join("" if x is None else str(x) for x in (p.start, p.stop))
        return text + (f":{p.step}" if p.step is not None else "")
    return repr(p)


# ---------------------------------------------------------------- abstract tracing
class ProgramTracer(Tracer):
    """A value while a program is traced: a variable with a shape and a dtype, no data."""
    __slots__ = ("var", "origin")
    replayed = True

    def __init__(self, trace, var, origin):
        self._trace, self.var, self.origin = trace, var, origin

    @property
    def shape(self):
        return self.var.shape

    @property
    def dtype(self):
        return self.var.dtype

    def _inner(self):
        raise TypeError(
            f"the value of {self.origin} (shape {self.shape}, {self.dtype}) is not known while "
            f"{self._trace.who} traces the function: Python control flow (if, while, bool(), float(), int(), "
            "indexing with it) cannot depend on it, nor can a NumPy array store it (y[i] = x: make y with "
            f"gpuad.numpy and write y = y.at[i].set(x)). Use gpuad.numpy.where (or gnp.take for positions), "
            f"{self._trace.remedy}.")

    def _not_an_array(self):
        return (f"the value of {self.origin} (shape {self.shape}, {self.dtype}) cannot be converted to a NumPy "
                f"array: {self._trace.who} traces the function without data")

    def _payload(self):
        return self.var

    def _held_bytes(self):
        return self.var.dtype.itemsize * math.prod(self.shape)

    __float__ = __int__ = __complex__ = __index__ = lambda self, *a, **k: self._inner()

    def __repr__(self):
        return f"Traced<{self.dtype.name}{list(self.shape)}>({self.var})"


class ProgramTrace(Trace):
    """who traces (for messages: "gpuad.jit") and the remedy a message offers for control flow on a
    traced value; sweeps: whether a Jacobian sweep ran under it (gpuad.chunking sets it)."""
    __slots__ = ("equations", "_ids", "_copies", "who", "remedy", "sweeps")
    stages = True

    def __init__(self, level):
        super().__init__(level)
        self.who, self.remedy = JIT
        self.sweeps = False
        self.equations = []
        self._ids = itertools.count()
        self._copies = {}  # id of an array read as a constant -> (that array, its copy)

    def constant(self, a):
        """a as a constant of the program: an array is copied once per trace, so the program sees
        it as it was when traced, everywhere, as JAX does (a captured W changed in place after the
        trace changes nothing); in a tuple (an index), each array. Scalars and values of other
        traces stay as they are."""
        if isinstance(a, tuple):
            return tuple(self.constant(b) for b in a)
        if isinstance(a, Tracer) or not backends.current().is_array(a):
            return a
        kept = self._copies.get(id(a))
        if kept is None:
            kept = self._copies[id(a)] = (a, a.copy())  # the original held: its id stays its own
        return kept[1]

    def new_input(self, aval, origin):
        return ProgramTracer(self, Var(next(self._ids), aval), origin)

    def process(self, prim, args, params):
        if prim.abstract is None:
            raise NotImplementedError(f"primitive {prim.name} has no abstract rule: gpuad.jit cannot trace it")
        aval = prim.abstract(*args, **params)
        out = Var(next(self._ids), aval)
        ins = [a.var if isinstance(a, ProgramTracer) and a._trace is self else self.constant(a) for a in args]
        params = {k: self.constant(v) for k, v in params.items()}
        self.equations.append(Equation(prim, ins, out, params))
        return ProgramTracer(self, out, f"{prim.name}(...)")


JIT = ("gpuad.jit", "or mark the argument static with static_argnums / static_argnames")


def trace_program(fun, avals, names, who=JIT):
    """Trace fun(*leaves) over abstract inputs (ShapeDtypeStructs; `names` says what each is, for
    error messages). fun returns a flat list of outputs. Returns the optimised Program. who:
    (the name of what traces, the remedy its messages offer for control flow on a traced value)."""
    with new_trace(ProgramTrace) as trace:
        trace.who, trace.remedy = who
        inputs = [trace.new_input(a, n) for a, n in zip(avals, names)]
        outs = fun(inputs)
        outs = [o.var if isinstance(o, ProgramTracer) and o._trace is trace else trace.constant(o) for o in outs]
    program = optimised(Program([t.var for t in inputs], trace.equations, outs))
    program.sweeps = trace.sweeps
    return program


def optimised(program):
    program = simplify(fold_constants(program))  # a seed's same-shape reshapes go before contractions are read
    return dead_code(common_subexpressions(simplify(broadcast_products(diagonal_contractions(program)))))


def program_so_far(values):
    """The optimised program making these values of a program being traced, from what has been
    traced so far (its inputs: the variables it reads and does not make)."""
    trace = values[0]._trace
    made = {eq.out for eq in trace.equations}
    ins = list(dict.fromkeys(a for eq in trace.equations for a in eq.ins if isinstance(a, Var) and a not in made))
    return optimised(Program(ins, list(trace.equations), [v.var for v in values]))


def aval_of(x):
    """A ShapeDtypeStruct for an array, a traced value or a ShapeDtypeStruct."""
    return x if isinstance(x, ShapeDtypeStruct) else ShapeDtypeStruct(x.shape, x.dtype)


# ---------------------------------------------------------------- passes
def dead_code(program):
    """Drop the equations no output depends on (a Hessian does not compute the function value)."""
    live = {o for o in program.outs if isinstance(o, Var)}
    kept = []
    for eq in reversed(program.equations):
        if eq.out in live:
            kept.append(eq)
            live.update(a for a in eq.ins if isinstance(a, Var))
    return Program(program.ins, kept[::-1], program.outs)


def fold_constants(program):
    """Evaluate now the equations of constants alone (seeds made by `eye` count as constants) whose
    results are no larger than what they read (W @ seed is W transposed; a seed summed), or small.
    A seed and what is made from it by moves and scalar arithmetic alone (its slices, shifts,
    multiples) stay in the program, made where they are used (fused: from indices) rather than
    held for the program's life."""
    made, seeded, rename, kept = {}, set(), {}, []
    last = {a: i for i, eq in enumerate(program.equations) for a in eq.ins if isinstance(a, Var)}
    outs = {o for o in program.outs if isinstance(o, Var)}
    budget = None
    for i, eq in enumerate(program.equations):
        ins = eq.ins
        eq = Equation(eq.prim, [rename.get(a, a) if isinstance(a, Var) else a for a in ins], eq.out, eq.params)
        for a in {a for a in ins if isinstance(a, Var) and last[a] == i and a not in outs} & rename.keys():
            del rename[a]  # a folded value is held no longer than its last reader needs it
        if all(a in made if isinstance(a, Var) else not isinstance(a, Tracer) for a in eq.ins):
            seed = _from_seeds(eq, seeded)
            if seed is None:
                folded = _sparse_fold(eq, made, seeded)
                if folded is not None:
                    rename[eq.out] = folded
                    continue
                eq = _dense_ins(eq)
                needed = _ancestors(eq, made)
                budget = _fold_budget() if budget is None else budget
                if 2 * max(map(_nbytes, needed), default=0) <= budget:  # a value and a copy at once
                    rename[eq.out] = _evaluate(eq, needed, made)
                    continue
            eq = _dense_ins(eq)
            if seed:
                seeded.add(eq.out)
            made[eq.out] = eq
        kept.append(_dense_ins(eq))
    outs = [_dense(rename.get(o, o)) if isinstance(o, Var) else o for o in program.outs]
    return Program(program.ins, kept, outs)


_FOLDED_BYTES = 1 << 30  # the most bytes a folding may hold on the way (or a quarter of the memory)
_KEEPS = MOVES | set(ROWS) | {"where", "astype"}  # a seed's structure survives these: index arithmetic


def _from_seeds(eq, seeded):
    """How to treat an equation of constants alone: None to fold it; True when it keeps a seed's
    structure (made from seeds and scalars: a seed, its slices, multiples); False to keep it
    unfolded. Index arithmetic with constant arrays folds where the result is no larger than those
    arrays (or small); other work (a contraction, a sum) where it is no larger than what it reads."""
    arrays = [math.prod(a.shape) for a in eq.ins if not isinstance(a, (Var,) + SCALARS)]
    keeps = eq.prim.name in _KEEPS or not eq.ins
    if keeps and max(arrays, default=1) == 1 and all(a in seeded for a in eq.ins if isinstance(a, Var)):
        return True
    read = [] if keeps else [math.prod(a.shape) for a in eq.ins if isinstance(a, Var)]
    return None if math.prod(eq.out.shape) <= max([_SMALL] + arrays + read) else False


def _sparse_fold(eq, made, seeded):
    """eq folded from the non-zeros of a seed or of a constant held as its entries (gpuad/compiler/seeds.py):
    a contraction of a seed with a constant is a gather of the constant, never the dense seed;
    products, moves, selects and sums of entries stay entries (or a small dense result). None
    where that does not apply (the other operand still unevaluated, a seed made otherwise than by
    moves and scalars, an operation with no rule for entries)."""
    be = backends.current()
    if eq.prim.name == "contract":
        for j in (0, 1):
            a, other = eq.ins[j], eq.ins[1 - j]
            nz = a if isinstance(a, seeds.NonZeros) else \
                seeds.nonzeros(a, made, be.to_numpy) if isinstance(a, Var) and a in seeded else None
            if nz is not None and not isinstance(other, (Var, seeds.NonZeros)):
                return _on_backend(seeds.contract(nz, be.to_numpy(other), eq.params["spec"], j == 0, eq.out.shape,
                                                  eq.out.dtype))
        return None
    if not any(isinstance(a, seeds.NonZeros) for a in eq.ins):
        return None
    ins = []  # constants still unevaluated (a seed's scalars) are evaluated where small
    for a in eq.ins:
        if isinstance(a, Var) and math.prod(a.shape) > _SMALL:
            return None
        ins.append(_evaluate(made[a], _ancestors(made[a], made), made) if isinstance(a, Var) else a)
    return _on_backend(seeds.fold(Equation(eq.prim, ins, eq.out, eq.params), be.to_numpy))


def _on_backend(value):
    return value if value is None or isinstance(value, seeds.NonZeros) else backends.current().asarray(value)


def _dense(value):
    return backends.current().asarray(seeds.dense(value)) if isinstance(value, seeds.NonZeros) else value


def _dense_ins(eq):
    """eq with its constants held as entries made dense arrays."""
    if not any(isinstance(a, seeds.NonZeros) for a in eq.ins):
        return eq
    return Equation(eq.prim, [_dense(a) for a in eq.ins], eq.out, eq.params)


def _fold_budget():
    available = backends.current().free_memory()
    return _FOLDED_BYTES if available is None else min(_FOLDED_BYTES, available // 4)


def _ancestors(eq, made):
    """The unevaluated constant Vars eq needs, in program order."""
    needed, stack = set(), [a for a in eq.ins if isinstance(a, Var)]
    while stack:
        v = stack.pop()
        if v not in needed:
            needed.add(v)
            stack.extend(a for a in made[v].ins if isinstance(a, Var))
    return [v for v in made if v in needed]


def _nbytes(v):
    return math.prod(v.shape) * v.dtype.itemsize


def _evaluate(eq, needed, made):
    """eq's value from its constants, by the primitives' impls (bind would stage an `eye` into an
    enclosing trace)."""
    values = {}
    for step in [made[v] for v in needed] + [eq]:
        args = [values[a] if isinstance(a, Var) else a for a in step.ins]
        out = step.prim.impl(*args, **step.params)
        values[step.out] = onp.asarray(out) if isinstance(out, onp.generic) else out
    return values[eq.out]


def diagonal_contractions(program):
    """Contractions with a diagonal matrix, d * eye (the seed of a Jacobian meeting a linear
    layer: jacrev's cotangents through W @ x), as the scaled other operand: sum_q d[q] delta(p, q)
    B[..q..] is d[p] * B[..p..], a broadcast product (which fuses) instead of a GEMM; and a sum of
    a diagonal matrix along one axis (jacfwd's tangent of a sum of the inputs' function, jacrev's
    cotangent of a scalar broadcast over many points) as its diagonal, n values instead of n^2.
    A matrix is diagonal where it is an identity, or an elementwise result of diagonal ones that
    is zero where they are (`_diagonal`); its diagonal is computed from theirs (the zeros off it are
    a seed's structural zeros, as JAX's symbolic zeros)."""
    ids = itertools.count(max([eq.out.id for eq in program.equations] + [v.id for v in program.ins], default=0) + 1)
    diagonals = {}  # Var -> True (an identity) or its diagonal (a Var of shape () or (n,))
    out = []
    for eq in program.equations:
        scaled = _as_scaled(eq, diagonals, ids) if eq.prim.name == "contract" else \
            _summed(eq, diagonals) if eq.prim.name == "reduce_sum" else None
        out.extend(scaled or [eq])
        d = _diagonal(eq, diagonals, out, ids)  # its equations after eq: read only what eq reads
        if d is not None:
            diagonals[eq.out] = d
    return Program(program.ins, out, program.outs)


def broadcast_products(program):
    """Contractions that sum over no letter (an outer product, batched: vmap of a gradient's
    cotangent times an input) as a broadcast multiply of the operands laid out in the output's
    axis order: elementwise, so it fuses with what makes and reads it, where a GEMM of inner
    dimension 1 would be a step of its own."""
    ids = itertools.count(max([eq.out.id for eq in program.equations] + [v.id for v in program.ins], default=0) + 1)
    out = []
    for eq in program.equations:
        out.extend(_as_product(eq, ids) if eq.prim.name == "contract" else [eq])
    return Program(program.ins, out, program.outs)


def _as_product(eq, ids):
    """[eq] or the equations computing it as a broadcast multiply (see broadcast_products)."""
    sa, sb, so = eq.params["spec"]
    a, b = eq.ins
    if not set(sa) | set(sb) <= set(so) or len(set(sa)) < len(sa) or len(set(sb)) < len(sb) or \
            eq.out.dtype != onp.result_type(*(x.dtype for x in (a, b))):
        return [eq]
    steps, laid = [], []
    for x, letters in ((a, sa), (b, sb)):
        order = sorted(letters, key=so.index)
        if list(letters) != order:
            x = _staged(steps, transpose, ids, x, perm=tuple(letters.index(c) for c in order))
        shape = tuple(eq.out.shape[k] if c in letters else 1 for k, c in enumerate(so))
        laid.append(_staged(steps, reshape, ids, x, shape=shape))
    return steps + [Equation(multiply, laid, eq.out, {})]


def _summed(eq, diagonals):
    """A sum of a diagonal matrix along one of its axes as its diagonal, reshaped (or broadcast)."""
    d = diagonals.get(eq.ins[0]) if isinstance(eq.ins[0], Var) else None
    if d is None or d is True or len(eq.params["axes"]) != 1 or eq.out.dtype != d.dtype:
        return None
    return [Equation(reshape if d.shape else broadcast_to, [d], eq.out, {"shape": eq.out.shape})]


def _as_scaled(eq, diagonals, ids):
    """Equations computing eq (a contraction) as d * (the other operand, its axes in the output's
    order), where one operand is d * eye(n) with one of its axes summed and the other kept; else None."""
    for j in (0, 1):
        diagonal = diagonals.get(eq.ins[j]) if isinstance(eq.ins[j], Var) else None
        spec, other = eq.params["spec"], eq.ins[1 - j]
        if diagonal is None or len(spec[j]) != 2 or eq.out.dtype != (
                other.dtype if diagonal is True else onp.result_type(diagonal.dtype, other.dtype)):
            continue  # the product would promote otherwise than the contraction
        p, q = spec[j] if spec[j][1] in spec[1 - j] else spec[j][::-1]  # q: the summed letter
        if q in spec[2] or p in spec[1 - j] or p not in spec[2] or not set(spec[1 - j]) <= set(spec[2]) | {q}:
            continue
        letters = spec[1 - j].replace(q, p)
        steps = []
        if letters != spec[2]:
            other = _staged(steps, transpose, ids, other, perm=tuple(letters.index(c) for c in spec[2]))
        if diagonal is not True:
            n = eq.ins[j].shape[0]
            axis = tuple(n if c == p else 1 for c in spec[2])
            d = _staged(steps, reshape, ids, diagonal, shape=axis) if diagonal.shape else diagonal
            steps.append(Equation(multiply, [d, other], eq.out, {}))
        else:
            steps.append(Equation(reshape, [other], eq.out, {"shape": eq.out.shape}))
        return steps
    return None


def _diagonal(eq, diagonals, steps, ids):
    """For eq making an identity, True; for eq making a diagonal n x n matrix from diagonal ones
    (`diagonals`), its diagonal (a Var of shape () or (n,)), computed by equations appended to
    steps; else None. By its primitive's zero_where, an elementwise result is diagonal where it is
    zero wherever a diagonal argument is ("any": a product with scalars or vectors; "first": a
    quotient or a negation of one) or wherever all are ("all": a sum of diagonals)."""
    if _is_identity(eq):
        return True
    x, ins, zero = eq.out, eq.ins, eq.prim.zero_where
    if not eq.prim.elementwise or zero not in ("any", "first", "all") or len(x.shape) != 2 or x.shape[0] != x.shape[1]:
        return None
    ds = [diagonals.get(a) if isinstance(a, Var) else None for a in ins]
    diagonal = [d is not None for d in ds]
    if (zero == "any" and sum(diagonal) == 1) or (zero == "first" and diagonal[0]):
        for j, a in enumerate(ins):  # the other arguments: scalars or vectors, at their diagonal values
            ds[j] = ds[j] if diagonal[j] else _along_diagonal(a, x.shape[0], steps, ids)
            if ds[j] is None:
                return None
        if zero == "any" and True in ds and len(ds) == 2:  # an identity times v: v
            d = ds[1 - ds.index(True)]
            return d if isinstance(d, Var) and d.dtype == x.dtype else None
    elif not all(diagonal):
        return None
    if any(d is True for d in ds) or not any(isinstance(d, Var) for d in ds):
        return None
    d = _staged(steps, eq.prim, ids, *ds, **eq.params)
    return d if d.dtype == x.dtype else None


def _along_diagonal(v, n, steps, ids):
    """v (broadcast against an n x n matrix) as the values it takes along the diagonal: v itself
    where it is a scalar (a constant too) or a vector Var, reshaped where it is a row or a column;
    else None."""
    if not isinstance(v, Var):
        return v if onp.ndim(v) == 0 else None
    if v.shape not in ((), (n,), (1, n), (n, 1), (1, 1)):
        return None
    return v if len(v.shape) <= 1 else _staged(steps, reshape, ids, v, shape=(n,) * (v.shape != (1, 1)))


def _is_identity(eq):
    return eq.prim.name == "eye" and eq.params["k"] == 0 and eq.params["rows"] == eq.params["cols"]


def _staged(steps, prim, ids, *xs, **params):
    out = Var(next(ids), prim.abstract(*xs, **params))
    steps.append(Equation(prim, list(xs), out, params))
    return out


def simplify(program):
    """Drop equations that return one of their inputs unchanged: reshapes, broadcasts and
    transposes to the same shape, casts to the same dtype, x * 1, x + (-0.0), x - 0.0, x / 1,
    x ** 1 (the ones and zeros are constants: seeds and the rules' unit cotangents leave many),
    and a `where` whose condition is a constant True or False. x + 0.0 stays: it makes -0.0
    +0.0, as NumPy does."""
    rename, kept = {}, []
    for eq in program.equations:
        ins = [rename.get(a, a) if isinstance(a, Var) else a for a in eq.ins]
        same = _unchanged(eq.prim.name, ins, eq.params)
        if same is not None and _aval(same) == (eq.out.shape, eq.out.dtype):
            rename[eq.out] = same
            continue
        kept.append(Equation(eq.prim, ins, eq.out, eq.params))
    outs = [rename.get(o, o) if isinstance(o, Var) else o for o in program.outs]
    return Program(program.ins, kept, outs)


# name -> (which argument may be the neutral constant, the neutral value): x * 1, 1 * x, x + 0, ...
# A float zero is neutral with its own sign only: x + 0.0 and x - (-0.0) are +0.0 where x is -0.0.
_NEUTRAL = {"multiply": ((0, 1), 1), "add": ((0, 1), -0.0), "subtract": ((1,), 0.0), "divide": ((1,), 1),
            "power": ((1,), 1)}
_SMALL = 1 << 12  # constants up to this size are looked at; larger ones are never neutral seeds


def _unchanged(name, ins, params):
    """The input an equation returns unchanged, or None."""
    if name in ("reshape", "broadcast_to", "astype"):
        return ins[0]  # the caller checks that shape and dtype did not change
    if name == "transpose":
        return ins[0] if params["perm"] == tuple(range(len(params["perm"]))) else None
    if name == "where":  # a condition that is a constant True or False picks its branch
        for flag, branch in ((True, ins[1]), (False, ins[2])):
            if _is_constant(ins[0], flag):
                return branch
        return None
    if name in _NEUTRAL:
        positions, neutral = _NEUTRAL[name]
        for k in positions:
            if _is_constant(ins[k], neutral):
                return ins[1 - k]
    return None


def _is_constant(x, value):
    """Whether x is a constant equal to value everywhere; to a float value, a float constant of
    the same sign (0.0 and -0.0 differ, and an integer zero is neither)."""
    if isinstance(x, (Var, Tracer)):
        return False
    if not isinstance(x, SCALARS) and getattr(x, "size", _SMALL + 1) > _SMALL:
        return False
    if not isinstance(value, float):
        return bool(onp.all(x == value))
    # NumPy's functions dispatch to the constant's own library: a CuPy constant stays on its device
    # (numpy.asarray of it raises)
    negative = math.copysign(1.0, value) < 0
    return _dtype(x).kind == "f" and bool(onp.all((x == value) & (onp.signbit(x) == negative)))


def _aval(x):
    if isinstance(x, SCALARS):
        return None  # a Python scalar never stands for an array output
    return tuple(x.shape), x.dtype


def common_subexpressions(program):
    """Compute each (primitive, inputs, params) once; later copies read the first's output."""
    seen, rename, kept = {}, {}, []
    for eq in program.equations:
        ins = [rename.get(a, a) if isinstance(a, Var) else a for a in eq.ins]
        key = (eq.prim, tuple(map(_key, ins)), _key(eq.params))
        first = seen.get(key)
        if first is not None:
            rename[eq.out] = first
            continue
        seen[key] = eq.out
        kept.append(Equation(eq.prim, ins, eq.out, eq.params))
    outs = [rename.get(o, o) if isinstance(o, Var) else o for o in program.outs]
    return Program(program.ins, kept, outs)


def _key(x):
    """A hashable stand-in for an equation's input or parameter; arrays by identity."""
    if isinstance(x, (Var, Tracer)) or hasattr(x, "__array_interface__") or hasattr(x, "__cuda_array_interface__"):
        return ("id", id(x))
    if isinstance(x, dict):
        return tuple((k, _key(v)) for k, v in sorted(x.items()))
    if isinstance(x, (tuple, list)):
        return (type(x).__name__,) + tuple(_key(v) for v in x)
    if isinstance(x, slice):
        return ("slice", x.start, x.stop, x.step)
    if isinstance(x, float) and x != x:  # nan != nan: key NaNs by identity, never merge them
        return ("id", id(x))
    return (type(x).__name__, x)
