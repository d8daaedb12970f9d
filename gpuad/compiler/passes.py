"""The optimiser: small passes over a Program (ir.py), each a walk of `rewrite`, the one driver.

`optimised` runs them in order: `fold_constants` (evaluate what constants alone make, keeping
Jacobian seeds as equations), `simplify` (drop equations returning an input unchanged),
`diagonal_contractions` and `broadcast_products` (contractions with a scaled identity, or that
sum over nothing, as broadcast products), `summed_products` (sums of broadcast products as
contractions), `common_subexpressions`, `dead_code`. What a pass
needs to know of a primitive is an attribute set beside the primitive (gpuad/ops/): `unchanged`,
`elementwise`, `moves`; the few primitives a pass rewrites are keys of its rules, by object.
"""
import itertools
import math
import string

import numpy as onp

from .. import backends
from ..core import SCALARS, Tracer
from ..ops.contract import contract
from ..ops.creation import eye
from ..ops.elementwise import SMALL_CONSTANT, multiply
from ..ops.shape import broadcast_to, reduce_sum, reshape, transpose
from . import seeds
from .ir import Equation, Lit, Program, Var, abstract, dying, nbytes


def optimised(program):
    """The program through every pass of PIPELINE, in order."""
    for run in PIPELINE:
        program = run(program)
    return program


class Renamed:
    """A pass's answer for an equation whose results are other values (one per output): the
    equation goes, and its readers read those values (Vars, or constants) instead."""
    __slots__ = ("values",)

    def __init__(self, *values):
        self.values = values


def rewrite(program, visit, out=None, forget=False):
    """The program with each equation replaced, in order, by visit(eq): the equations that take its
    place ([eq] keeps it) or Renamed(*values), one per output. eq arrives with its inputs renamed by the answers
    before it. forget: a rename is forgotten once the equation reading its variable last has been
    visited (a folded constant is held no longer than its readers need it). `out` maps each
    output's final value (default: as it is)."""
    rename, kept = {}, []
    gone = dying(program.equations, program.out_vars()) if forget else itertools.repeat(())
    for eq, dropped in zip(program.equations, gone):
        if rename and any(a in rename for a in eq.ins):
            eq = Equation(eq.prim, [rename.get(a, a) for a in eq.ins], eq.outs, eq.params)
        for a in dropped:
            rename.pop(a, None)
        result = visit(eq)
        if isinstance(result, Renamed):
            rename.update(zip(eq.outs, result.values))
        else:
            kept.extend(result)
    outs = [rename.get(o, o) for o in program.outs]
    return Program(program.ins, kept, outs if out is None else [out(o) for o in outs])


def dead_code(program):
    """Drop the equations no output depends on (a Hessian does not compute the function value)."""
    live = program.out_vars()
    kept = []
    for eq in reversed(program.equations):
        if not live.isdisjoint(eq.outs):
            kept.append(eq)
            live.update(a for a in eq.ins if isinstance(a, Var))
    return Program(program.ins, kept[::-1], program.outs)


def fold_constants(program):
    """Evaluate now the equations of constants alone (seeds made by `eye` count as constants) whose
    results are no larger than what they read (W @ seed is W transposed; a seed summed), or small.
    A seed and what is made from it by moves and scalar arithmetic alone (its slices, shifts,
    multiples) stay in the program, made where they are used (fused: from indices) rather than
    held for the program's life."""
    made, seeded, budget = {}, set(), None

    def visit(eq):
        nonlocal budget
        if eq.prim.multiple_results or not all(a in made if isinstance(a, Var) else not a.traced for a in eq.ins):
            return [_dense_ins(eq)]  # (a factorisation of constants is evaluated while tracing)
        seed = _from_seeds(eq, seeded)
        if seed is None:
            folded = _sparse_fold(eq, made, seeded)
            if folded is not None:
                return Renamed(Lit(folded))
            eq = _dense_ins(eq)
            needed = _ancestors(eq, made)
            budget = _fold_budget() if budget is None else budget
            if 2 * max(map(nbytes, needed), default=0) <= budget:  # a value and a copy at once
                return Renamed(Lit(_evaluate(eq, needed, made)))
        eq = _dense_ins(eq)
        if seed:
            seeded.add(eq.out)
        made[eq.out] = eq
        return [eq]
    return rewrite(program, visit, _dense, forget=True)


_FOLDED_BYTES = 1 << 30  # the most bytes a folding may hold on the way (or a quarter of the memory)


def _from_seeds(eq, seeded):
    """How to treat an equation of constants alone: None to fold it; True when it keeps a seed's
    structure (made from seeds and scalars: a seed, its slices, multiples); False to keep it
    unfolded. Index arithmetic with constant arrays folds where the result is no larger than those
    arrays (or small); other work (a contraction, a sum) where it is no larger than what it reads."""
    arrays = [math.prod(a.shape) for a in eq.ins if isinstance(a, Lit) and not isinstance(a.val, SCALARS)]
    keeps = eq.prim.elementwise or eq.prim.moves or not eq.ins  # index arithmetic: a seed's structure survives
    if keeps and max(arrays, default=1) == 1 and all(a in seeded for a in eq.ins if isinstance(a, Var)):
        return True
    read = [] if keeps else [math.prod(a.shape) for a in eq.ins if isinstance(a, Var)]
    return None if math.prod(eq.out.shape) <= max([SMALL_CONSTANT] + arrays + read) else False


def _sparse_fold(eq, made, seeded):
    """eq folded from the non-zeros of a seed or of a constant held as its entries (gpuad/compiler/seeds.py):
    a contraction of a seed with a constant is a gather of the constant, never the dense seed;
    products, moves, selects and sums of entries stay entries (or a small dense result). None
    where that does not apply (the other operand still unevaluated, a seed made otherwise than by
    moves and scalars, an operation with no rule for entries)."""
    be = backends.current()
    if eq.prim is contract:
        for j in (0, 1):
            a, other = eq.ins[j], eq.ins[1 - j]
            nz = a.val if _entries(a) else \
                seeds.nonzeros(a, made, be.to_numpy) if a in seeded else None
            if nz is not None and isinstance(other, Lit) and not _entries(other):
                return _on_backend(seeds.contract(nz, be.to_numpy(other.val), eq.params["spec"], j == 0,
                                                  eq.out.shape, eq.out.dtype))
        return None
    if not any(map(_entries, eq.ins)):
        return None
    ins = []  # constants still unevaluated (a seed's scalars) are evaluated where small
    for a in eq.ins:
        if isinstance(a, Var) and math.prod(a.shape) > SMALL_CONSTANT:
            return None
        ins.append(_evaluate(made[a], _ancestors(made[a], made), made) if isinstance(a, Var) else a.val)
    return _on_backend(seeds.fold(Equation(eq.prim, ins, eq.out, eq.params), be.to_numpy))


def _on_backend(value):
    return value if value is None or isinstance(value, seeds.NonZeros) else backends.current().asarray(value)


def _entries(a):
    """Whether an atom is a constant held as its entries (seeds.NonZeros) while constants fold."""
    return isinstance(a, Lit) and isinstance(a.val, seeds.NonZeros)


def _dense(a):
    return Lit(backends.current().asarray(seeds.dense(a.val))) if _entries(a) else a


def _dense_ins(eq):
    """eq with its constants held as entries made dense arrays."""
    if not any(map(_entries, eq.ins)):
        return eq
    return Equation(eq.prim, [_dense(a) for a in eq.ins], eq.outs, eq.params)


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


def _evaluate(eq, needed, made):
    """eq's value from its constants, by the primitives' impls (bind would stage an `eye` into an
    enclosing trace)."""
    values = {}
    for step in [made[v] for v in needed] + [eq]:
        args = [a.read(values) for a in step.ins]
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
    ids = itertools.count(program.next_id())
    diagonals = {}  # Var -> True (an identity) or its diagonal (an atom of shape () or (n,))

    def visit(eq):
        rule = _DIAGONAL.get(eq.prim)
        steps = (rule(eq, diagonals, ids) if rule else None) or [eq]
        d = _diagonal(eq, diagonals, steps, ids)  # its equations after eq's: read only what eq reads
        if d is not None:
            diagonals[eq.out] = d
        return steps
    return rewrite(program, visit)


def broadcast_products(program):
    """Contractions that sum over no letter (an outer product, batched: vmap of a gradient's
    cotangent times an input) as a broadcast multiply of the operands laid out in the output's
    axis order: elementwise, so it fuses with what makes and reads it, where a GEMM of inner
    dimension 1 would be a step of its own."""
    ids = itertools.count(program.next_id())
    return rewrite(program, lambda eq: _as_product(eq, ids) if eq.prim is contract else [eq])


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


def summed_products(program):
    """Sums of a broadcast product of two arrays that share every summed axis and no kept one
    (mean(g * s[:, None, None], axis=0); a weighted sum of rows) as a contraction: one GEMV or GEMM
    reads each operand once, where the product and its sum are two passes over a product-sized
    temporary (a sum along a leading axis does not fuse on a CPU: fusion._ACROSS_ROWS). A product
    read elsewhere too stays, and so does one with an operand made from a seed (values made from
    constants alone, and what is computed from them: a contraction would make a seed dense, and
    hide the zeros of a tangent bundle that fusion and sparsity patterns follow through products)."""
    ids = itertools.count(program.next_id())
    made, seeded, uses = {}, set(), {}
    for eq in program.equations:
        made.update(dict.fromkeys(eq.outs, eq))
        if all(isinstance(a, Lit) for a in eq.ins) or any(a in seeded for a in eq.ins if isinstance(a, Var)):
            seeded.update(eq.outs)
        for a in eq.ins:
            uses[a] = uses.get(a, 0) + 1
    for o in program.out_vars():
        uses[o] = uses.get(o, 0) + 1

    def visit(eq):
        product = made.get(eq.ins[0]) if eq.prim is reduce_sum and isinstance(eq.ins[0], Var) else None
        if product is None or product.prim is not multiply or uses[product.out] != 1 or \
                any(isinstance(a, Var) and a in seeded for a in product.ins):
            return [eq]
        return _as_contraction(eq, product, ids) or [eq]
    return rewrite(program, visit)


def _as_contraction(eq, product, ids):
    """The equations computing eq (a sum of `product`, a multiply) as a contraction, or None where
    it is none (see summed_products)."""
    shape, summed = product.out.shape, eq.params["axes"]
    if not all(_array(a) and a.dtype == eq.out.dtype for a in product.ins) or \
            product.out.dtype != eq.out.dtype or eq.out.dtype.kind not in "fc":
        return None
    letters = [[], []]  # each operand's axes of the product, by position
    for k, n in enumerate(shape):
        has = [n > 1 and len(a.shape) >= len(shape) - k and a.shape[k - len(shape)] == n for a in product.ins]
        if n > 1 and (has[0] and has[1]) != (k in summed):  # a kept axis in both (a batch), a lone summed one
            return None
        for j in (0, 1):
            if has[j]:
                letters[j].append(k)
    kept = [k for k in range(len(shape)) if shape[k] > 1 and k not in summed]
    if len(letters[0]) + len(letters[1]) == len(kept):  # nothing summed
        return None
    steps, laid = [], []
    for a, axes in zip(product.ins, letters):
        laid.append(a if a.shape == tuple(shape[k] for k in axes) else
                    _staged(steps, reshape, ids, a, shape=tuple(shape[k] for k in axes)))
    spec = tuple("".join(string.ascii_letters[k] for k in axes) for axes in letters + [kept])
    if tuple(shape[k] for k in kept) == eq.out.shape:
        return steps + [Equation(contract, laid, eq.out, {"spec": spec})]
    out = _staged(steps, contract, ids, *laid, spec=spec)
    return steps + [Equation(reshape, [out], eq.out, {"shape": eq.out.shape})]


def _array(a):
    """Whether an atom is an array (with a shape and dtype), not a Python scalar."""
    return not (isinstance(a, Lit) and isinstance(a.val, SCALARS))


def _summed(eq, diagonals, ids):
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


_DIAGONAL = {contract: _as_scaled, reduce_sum: _summed}  # the rewrites of diagonal_contractions


def _diagonal(eq, diagonals, steps, ids):
    """For eq making an identity, True; for eq making a diagonal n x n matrix from diagonal ones
    (`diagonals`), its diagonal (an atom of shape () or (n,)), computed by equations appended to
    steps; else None. By its primitive's zero_where, an elementwise result is diagonal where it is
    zero wherever a diagonal argument is ("any": a product with scalars or vectors; "first": a
    quotient or a negation of one) or wherever all are ("all": a sum of diagonals)."""
    if _is_identity(eq):
        return True
    if not eq.prim.elementwise:
        return None
    x, ins, zero = eq.out, eq.ins, eq.prim.zero_where
    if zero not in ("any", "first", "all") or len(x.shape) != 2 or x.shape[0] != x.shape[1]:
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
        return v if not v.shape else None
    if v.shape not in ((), (n,), (1, n), (n, 1), (1, 1)):
        return None
    return v if len(v.shape) <= 1 else _staged(steps, reshape, ids, v, shape=(n,) * (v.shape != (1, 1)))


def _is_identity(eq):
    return eq.prim is eye and eq.params["k"] == 0 and eq.params["rows"] == eq.params["cols"]


def _staged(steps, prim, ids, *xs, **params):
    out = Var(next(ids), prim.abstract(*map(abstract, xs), **params))
    steps.append(Equation(prim, list(xs), out, params))
    return out


def simplify(program):
    """Drop equations that return one of their inputs unchanged: reshapes, broadcasts and
    transposes to the same shape, casts to the same dtype, x * 1, x + (-0.0), x - 0.0, x / 1,
    x ** 1 (the ones and zeros are constants: seeds and the rules' unit cotangents leave many),
    and a `where` whose condition is a constant True or False. x + 0.0 stays: it makes -0.0
    +0.0, as NumPy does."""
    def visit(eq):
        same = _unchanged(eq)
        return Renamed(same) if same is not None and _aval(same) == (eq.out.shape, eq.out.dtype) else [eq]
    return rewrite(program, visit)


def _unchanged(eq):
    """The input an equation returns unchanged (by its primitive's `unchanged` rule), or None."""
    if eq.prim.unchanged is None:
        return None
    k = eq.prim.unchanged([a.val if isinstance(a, Lit) else None for a in eq.ins], **eq.params)
    return None if k is None else eq.ins[k]


def _aval(x):
    if isinstance(x, Lit) and isinstance(x.val, SCALARS):
        return None  # a Python scalar never stands for an array output
    return tuple(x.shape), x.dtype


def common_subexpressions(program):
    """Compute each (primitive, inputs, params) once; later copies read the first's output."""
    seen = {}

    def visit(eq):
        first = seen.setdefault((eq.prim, tuple(map(_key, eq.ins)), _key(eq.params)), eq.outs)
        return [eq] if first is eq.outs else Renamed(*first)
    return rewrite(program, visit)


def _key(x):
    """A hashable stand-in for an equation's input or parameter; arrays by identity."""
    if isinstance(x, Lit):
        return _key(x.val)
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


# the passes optimised runs, in order: a seed's same-shape reshapes go (simplify) before contractions are read
def shared_operands(program):
    """An equation handed one value as several operands (a loop's constants, after
    common_subexpressions made them one) takes it once: its primitive's `once` rule."""
    def visit(eq):
        merged = eq.prim.once(eq) if eq.prim.once is not None else None
        return [eq] if merged is None else [merged]
    return rewrite(program, visit)


PIPELINE = (fold_constants, simplify, diagonal_contractions, broadcast_products, summed_products, simplify,
            common_subexpressions, shared_operands, dead_code)
