"""The optimiser: small passes over a Program (ir.py), each a walk of `rewrite`, the one driver.

`optimised` runs them in order: `fold_constants` (evaluate what constants alone make, keeping
Jacobian seeds as equations), `simplify` (drop equations returning an input unchanged),
`collapse` (contractions and sums with a seed-like operand, from its values at its non-zeros),
`broadcast_products` (contractions that sum over nothing, as broadcast products),
`summed_products` (sums of broadcast products as contractions), `common_subexpressions`,
`dead_code`. What a pass needs to know of a primitive is an attribute set beside the primitive
(gpuad/ops/): `unchanged`, `elementwise`, `moves`; the few primitives a pass rewrites are keys of
its rules, by object. What a value's structure is (its zeros, whether it is made from indices) the
passes ask structure.py.
"""
import collections
import itertools
import math
import string

import numpy as onp

from .. import backends
from ..core import SCALARS, ShapeDtypeStruct, Tracer
from ..ops.contract import contract
from ..ops.elementwise import SMALL_CONSTANT, multiply
from ..ops.indexing import getitem, scatter
from ..ops.shape import broadcast_to, reduce_sum, reshape, transpose
from .ir import Equation, Lit, Program, Var, abstract, dying, nbytes
from .structure import MOST, Entries, Structure, dense, fold, index_made


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
    place ([eq] keeps it) or Renamed(*values), one per output. eq arrives with its inputs renamed
    by the answers before it. forget: a rename is forgotten once the equation reading its variable
    last has been visited (a folded constant is held no longer than its readers need it). `out`
    maps each output's final value (default: as it is)."""
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
    made, seeds, budget = {}, Structure(), None  # seeds: the kept equations of index-made values

    def visit(eq):
        nonlocal budget
        if eq.prim.multiple_results or not all(a in made if isinstance(a, Var) else not a.traced for a in eq.ins):
            return [_dense_ins(eq)]  # (a factorisation of constants is evaluated while tracing)
        seed = _fold_or_keep(eq, seeds.made)
        if seed is None:
            folded = _sparse_fold(eq, made, seeds)
            if folded is not None:
                return Renamed(Lit(folded))
            eq = _dense_ins(eq)
            needed = _ancestors(eq, made)
            budget = _fold_budget() if budget is None else budget
            if 2 * max(map(nbytes, needed), default=0) <= budget:  # a value and a copy at once
                return Renamed(Lit(_evaluate(eq, needed, made)))
        eq = _dense_ins(eq)
        if seed:
            seeds.add(eq)
        made[eq.out] = eq
        return [eq]
    return rewrite(program, visit, _dense, forget=True)


_FOLDED_BYTES = 1 << 30  # the most bytes a folding may hold on the way (or a quarter of the memory)


def _fold_or_keep(eq, seeded):
    """How to treat an equation of constants alone: None to fold it; True when it keeps a seed's
    structure (index-made, structure.py, from seeds and scalars: a seed, its slices, multiples);
    False to keep it unfolded. Index arithmetic with constant arrays folds where the result is no
    larger than those arrays (or small); other work (a contraction, a sum) where it is no larger
    than what it reads."""
    arrays = [math.prod(a.shape) for a in eq.ins if isinstance(a, Lit) and not isinstance(a.val, SCALARS)]
    if index_made(eq, seeded) and max(arrays, default=1) == 1:
        return True
    keeps = eq.prim.elementwise or eq.prim.moves or not eq.ins  # index arithmetic: a seed's structure survives
    read = [] if keeps else [math.prod(a.shape) for a in eq.ins if isinstance(a, Var)]
    return None if math.prod(eq.out.shape) <= max([SMALL_CONSTANT] + arrays + read) else False


def _sparse_fold(eq, made, seeds):
    """eq folded from the entries of a seed (`seeds`, a Structure of the index-made values kept) or
    of a constant held as its entries (structure.Entries): a contraction of a seed with a constant
    is a gather of the constant (the collapse, `_collapsed_constant`), never the dense seed;
    products, moves, selects and sums of entries stay entries (or a small dense result). None
    where that does not apply (the other operand still unevaluated, a seed made otherwise than by
    moves and scalars, an operation with no rule for entries)."""
    be = backends.current()
    if eq.prim is contract:
        for j in (0, 1):
            a, other = eq.ins[j], eq.ins[1 - j]
            e = seeds.entries(a)
            if e is not None and isinstance(other, Lit) and not _entries(other):
                return _on_backend(_collapsed_constant(e, be.to_numpy(other.val), eq.params["spec"], j == 0,
                                                       eq.out.shape, eq.out.dtype))
        return None
    if not any(map(_entries, eq.ins)):
        return None
    values = {}  # constants still unevaluated (a seed's scalars) are evaluated where small
    for a in eq.ins:
        if isinstance(a, Var):
            if math.prod(a.shape) > SMALL_CONSTANT:
                return None
            values[a] = _evaluate(made[a], _ancestors(made[a], made), made)
    return _on_backend(fold(eq, lambda a: values[a] if isinstance(a, Var) else a.val, be.to_numpy))


def _on_backend(value):
    return value if value is None or isinstance(value, Entries) else backends.current().asarray(value)


def _entries(a):
    """Whether an atom is a constant held as its entries (structure.Entries) while constants fold."""
    return isinstance(a, Lit) and isinstance(a.val, Entries)


def _dense(a):
    return Lit(backends.current().asarray(dense(a.val))) if _entries(a) else a


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


def collapse(program):
    """Contractions and sums with an operand of known support (structure.py: a seed, a scaled seed,
    a tangent bundle zero off a seed's diagonal) whose non-zeros meet each element of the result
    once. Such an operand is where(i == r, x, 0) along its kept letters i and summed letters r, and a
    sum over r of it, times B[..r..], is x[i] * B[..i..]: a broadcast product (which fuses) instead
    of a GEMM (jacrev's cotangents through W @ x meet d * eye), and a sum of it along r is x[i], n
    values instead of n^2 (jacfwd's tangent of a sum). x, the operand's values at its non-zeros, is
    read where they lie along an atom's own axes (d of d * eye), where a move took them from, or
    computed there through the elementwise equations making the operand (`_values_at`). On constants the same rule folds
    (`_collapsed_constant`, from fold_constants). The analysis follows the program as rewritten:
    a collapsed contraction's support is its product's."""
    analysis, ids, read = Structure(), itertools.count(program.next_id()), {}  # read: _values_at's answers

    def visit(eq):
        steps = next((s for j in range(len(eq.ins)) for s in [_collapsed(eq, j, analysis, ids, read)] if s is not None),
                     [eq]) if eq.prim is contract or eq.prim is reduce_sum else [eq]
        for step in steps:
            analysis.add(step)
        return steps
    return rewrite(program, visit)


def _letters(eq, j):
    """(a's letters, the other operand and its letters, the output's) of a contraction with its
    operand j first, or of a sum (no other operand)."""
    if eq.prim is contract:
        sa, sb, so = eq.params["spec"] if j == 0 else (eq.params["spec"][1], eq.params["spec"][0], eq.params["spec"][2])
        return sa, eq.ins[1 - j], sb, so
    sa = string.ascii_letters[:len(eq.ins[0].shape)]
    return sa, None, "", "".join(c for k, c in enumerate(sa) if k not in eq.params["axes"])


def _collapsed(eq, j, analysis, ids, read):
    """The equations computing eq (a contraction or a sum) from operand j's values at its
    non-zeros (see collapse), or None where they do not meet each element of the result at most
    once, or its values cannot be read so. Where they miss some elements (a strided or partial
    slice of a seed), the elements they meet must be a slice along each kept axis: the product is
    computed there and scattered into zeros (a move that fuses)."""
    a = eq.ins[j]
    at = analysis.support(a).at
    sa, b, sb, so = _letters(eq, j)
    summed = [c for c in sa if c not in so]
    if at is None or not summed or not len(at):
        return None
    kept = [c for c in sa if c in so]
    dims = dict(zip(sa, a.shape))
    coords = onp.unravel_index(at, a.shape)
    met, local = _met(coords, sa, kept, dims, len(at))
    if met is None:
        return None
    inner = {c: len(range(dims[c])[met[c]]) for c in kept}
    grid = onp.ravel_multi_index([local[c] for c in kept], [inner[c] for c in kept]) if kept else \
        onp.zeros(len(at), onp.int64)
    size = math.prod(inner.values())
    if len(grid) != size or onp.bincount(grid, minlength=size).max() != 1:  # one non-zero per element met
        return None
    order = onp.argsort(grid)  # in the order of the kept elements
    coords, local = tuple(c[order] for c in coords), {c: p[order] for c, p in local.items()}
    rename, cut = {}, [slice(None)] * len(sb)  # B's summed letter -> the kept letter it follows, by a slice
    for c in (c for c in summed if c in sb):
        rename[c], cut[sb.index(c)] = next(
            ((p, s) for p in kept for s in [_as_slice(local[p], coords[sa.index(c)], inner[p], dims[c])]
             if s is not None), (None, None))
        if rename[c] is None:
            return None
    for c in (c for c in kept if c in sb):  # a batch letter: B's elements along the slice met
        cut[sb.index(c)] = met[c]
    letters = "".join(rename.get(c, c) for c in sb)
    if len(set(letters)) < len(letters):
        return None
    steps = []
    if any(s != slice(None) for s in cut):
        b = _applied(steps, getitem, ids, [b], {"idx": tuple(cut)})
    trial = collections.ChainMap({}, read)  # the values read here are kept only where eq collapses
    x = _values_at(a, coords, analysis, steps, ids, trial)
    if x is None or onp.result_type(*(v.dtype for v in (x, b) if v is not None)) != eq.out.dtype:
        return None
    read.update(trial.maps[0])
    if x.shape:
        x = _staged(steps, reshape, ids, x, shape=tuple(inner[c] for c in kept)) if len(kept) != 1 else x
    plain = tuple(dims[c] for c in so) if b is None else tuple(eq.out.shape)  # a sum's result without keepdims
    target = eq.out if plain == tuple(eq.out.shape) else Var(next(ids), ShapeDtypeStruct(plain, eq.out.dtype))
    shape = tuple(inner.get(c, n) for c, n in zip(so, plain))  # the elements met
    out = target if shape == plain else Var(next(ids), ShapeDtypeStruct(shape, eq.out.dtype))
    if b is None:  # a sum: x itself
        steps.append(Equation(reshape if x.shape else broadcast_to, [x], out, {"shape": shape}))
    else:
        laid = [_laid(steps, v, letters_v, so, shape, ids) for v, letters_v in ((x, "".join(kept)), (b, letters))]
        if _unchanged(Equation(multiply, laid, out, {})) is laid[1] and laid[1].dtype == eq.out.dtype:  # x is ones
            steps.append(Equation(reshape if laid[1].shape == shape else broadcast_to, [laid[1]], out,
                                  {"shape": shape}))
        else:
            steps.append(Equation(multiply, laid, out, {}))
    if out is not target:  # zeros where no non-zero meets the element
        steps.append(Equation(scatter, [out], target, {"shape": plain,
                                                       "idx": tuple(met.get(c, slice(None)) for c in so)}))
    if target is not eq.out:  # a sum's kept unit axes
        steps.append(Equation(reshape, [target], eq.out, {"shape": eq.out.shape}))
    return steps


def _met(coords, sa, kept, dims, count):
    """({kept letter: the slice of its axis the non-zeros meet}, {kept letter: each non-zero's
    place along that slice}), or (None, None) where they meet no slice."""
    if count == math.prod(dims[c] for c in kept):  # as many as the elements: every one, if each once
        return dict.fromkeys(kept, slice(None)), {c: coords[sa.index(c)] for c in kept}
    met, local = {}, {}
    for c in kept:
        values, local[c] = onp.unique(coords[sa.index(c)], return_inverse=True)
        met[c] = _as_slice(onp.arange(len(values)), values, len(values), dims[c])
        if met[c] is None:
            return None, None
    return met, local


def _as_slice(p, r, n, length):
    """The slice of an axis of `length` that takes r along p, where r = start + step * p at every
    non-zero (p running over 0..n-1); slice(None) where that is the whole axis in order; else None."""
    start = int(r[onp.argmax(p == 0)])
    step = int(r[onp.argmax(p == 1)]) - start if n > 1 else 1
    if step == 0 or not onp.array_equal(r, start + step * p):
        return None
    if (start, step, n) == (0, 1, length):
        return slice(None)
    stop = start + step * n
    return slice(start, stop if stop >= 0 else None, step)


def _laid(steps, x, letters, order, shape, ids):
    """x (its axes lettered) transposed to the letters' order in `order`, with unit axes for the
    letters it lacks (a 0-d constant as it is)."""
    if not x.shape:
        return x
    ordered = sorted(letters, key=order.index)
    if list(letters) != ordered:
        x = _staged(steps, transpose, ids, x, perm=tuple(letters.index(c) for c in ordered))
    laid = tuple(shape[k] if c in letters else 1 for k, c in enumerate(order))
    return x if x.shape == laid else _staged(steps, reshape, ids, x, shape=laid)


def _values_at(a, coords, analysis, steps, ids, read):
    """The values of atom a at these coordinates (an array per axis of its shape, m entries) as an
    atom of shape (m,), or a 0-d constant where they are one value: a constant's picked now, an
    index-made value's from its entries, a scalar itself, a value read in place where the
    coordinates run over its own elements in order (d of d * eye) or a slice of its one axis, a
    moved one where it came from
    (by the move's coordinate rule), one made by an elementwise equation computed from its
    arguments' values there (equations appended to steps); None where a
    gather would be needed. `read` holds the answers so far (a seed's values read once)."""
    key = (a, tuple(c.tobytes() for c in coords))
    if key not in read:
        read[key] = _read_at(a, coords, analysis, steps, ids, read)
    return read[key]


def _read_at(a, coords, analysis, steps, ids, read):
    m = len(coords[0]) if coords else 1
    if isinstance(a, Lit):
        return a if isinstance(a.val, SCALARS) else \
            _constant(onp.broadcast_to(backends.current().to_numpy(a.val), a.shape)[coords])
    e = analysis.entries(a)
    if e is not None:
        return _constant(_entries_at(e, coords))
    if math.prod(a.shape) == 1:  # one value wherever it is read
        return a if not a.shape else _staged(steps, reshape, ids, a, shape=())
    own = [(c, n) for c, n in zip(coords, a.shape) if n > 1]
    flat = onp.ravel_multi_index([c for c, _ in own], [n for _, n in own]) if own else onp.zeros(m, onp.int64)
    if math.prod(a.shape) == m and onp.array_equal(flat, onp.arange(m)):
        return a if a.shape == (m,) else _staged(steps, reshape, ids, a, shape=(m,))
    cut = _as_slice(onp.arange(m), flat, m, math.prod(a.shape)) if len(own) == 1 and m > 1 else None
    if cut is not None:  # a slice of its one axis (x[1:] of a shifted seed's)
        flat_a = a if len(a.shape) == 1 else _staged(steps, reshape, ids, a, shape=(math.prod(a.shape),))
        return _staged(steps, getitem, ids, flat_a, idx=(cut,))
    eq = analysis.made_by.get(a)
    if eq is not None and eq.prim.coords is not None and len(eq.ins) == 1:  # moved: read where it came from
        at = _moved_from(eq, coords, analysis)
        return None if at is None else _values_at(eq.ins[0], at, analysis, steps, ids, read)
    if eq is None or not eq.prim.elementwise:
        return None
    ins = []
    for x in eq.ins:
        lead = len(a.shape) - len(x.shape)
        ins.append(_values_at(x, tuple(c if n > 1 else onp.zeros(m, onp.int64)
                                       for c, n in zip(coords[lead:], x.shape)), analysis, steps, ids, read))
        if ins[-1] is None:
            return None
    return _applied(steps, eq.prim, ids, ins, eq.params)


def _moved_from(eq, coords, analysis):
    """The coordinates in a move's argument of the elements at these coordinates of its result,
    by the move's own coordinate rule applied to the argument's non-zeros; None where one of them
    is none of those."""
    x = eq.ins[0]
    at = analysis.support(x).at
    if at is None:
        return None
    moved = eq.prim.coords(Entries(onp.unravel_index(at, x.shape), onp.arange(len(at)), tuple(x.shape)),
                           tuple(eq.out.shape), MOST, **eq.params)
    if moved is None:
        return None
    flat = onp.ravel_multi_index(moved[0], eq.out.shape)
    order = onp.argsort(flat, kind="stable")
    want = onp.ravel_multi_index(coords, eq.out.shape)
    k = onp.minimum(onp.searchsorted(flat[order], want), len(flat) - 1)
    if not len(flat) or not (flat[order][k] == want).all():
        return None
    return onp.unravel_index(at[onp.arange(len(at))[moved[1]][order][k]], x.shape)


def _applied(steps, prim, ids, ins, params):
    """prim of these atoms: evaluated now where they are constants, the one it returns unchanged
    where it does (x * 1), else a new equation."""
    if all(isinstance(x, Lit) for x in ins):
        return Lit(_on_backend(prim.impl(*(x.val for x in ins), **params)))
    out = Var(next(ids), prim.abstract(*map(abstract, ins), **params))
    same = _unchanged(Equation(prim, ins, out, params))
    if same is not None and _aval(same) == (out.shape, out.dtype):
        return same
    steps.append(Equation(prim, ins, out, params))
    return out


def _constant(values):
    """Values picked from a constant, as a constant atom: 0-d where they are one value."""
    values = onp.asarray(values)
    if values.size and (values == values.flat[0]).all():
        values = values.reshape(-1)[:1].reshape(())
    return Lit(backends.current().asarray(values))


def _entries_at(e, coords):
    """An Entries' values at these coordinates (zero where it has none; entries at one place added)."""
    flat = onp.ravel_multi_index(e.coords, e.shape) if e.shape else onp.zeros(len(e.values), onp.int64)
    order = onp.argsort(flat, kind="stable")
    keys, summed = flat[order], e.values[order]
    if len(keys) > 1 and not (keys[1:] > keys[:-1]).all():  # entries at one place: added
        keys, inverse = onp.unique(keys, return_inverse=True)
        added = onp.zeros(len(keys), e.values.dtype)
        onp.add.at(added, inverse.reshape(-1), summed)
        summed = added
    want = onp.ravel_multi_index(coords, e.shape) if e.shape else onp.zeros(1, onp.int64)
    at = onp.minimum(onp.searchsorted(keys, want), len(keys) - 1)
    return onp.where(keys[at] == want, summed[at], 0).astype(e.values.dtype) if len(keys) else \
        onp.zeros(len(want), e.values.dtype)


def _collapsed_constant(e, other, spec, first, out_shape, out_dtype):
    """The collapse on constants: the contraction (spec) of Entries with the NumPy array `other`
    (the entries the first operand where `first`), a gather of `other` at the entries' summed
    coordinates and an add at their kept ones. Held as Entries where the result is mostly zeros."""
    s, b, o = spec if first else (spec[1], spec[0], spec[2])
    shared = [c for c in s if c in b]
    free_b = [c for c in b if c not in s]
    kept = [c for c in o if c in s]
    picked = onp.transpose(other, [b.index(c) for c in shared + free_b])[tuple(e.coords[s.index(c)] for c in shared)]
    contrib = e.values.reshape((-1,) + (1,) * len(free_b)) * picked
    at = tuple(e.coords[s.index(c)] for c in kept)
    if kept and 4 * contrib.size <= onp.prod(out_shape):  # mostly zeros: held as its entries
        count = int(onp.prod(contrib.shape[1:]))
        grid = onp.unravel_index(onp.arange(count), contrib.shape[1:]) if free_b else ()  # () for a scalar each
        coords = dict(zip(kept + free_b,
                          [onp.repeat(c, count) for c in at] + [onp.tile(g, len(contrib)) for g in grid]))
        return Entries(tuple(coords[c] for c in o), contrib.reshape(-1).astype(out_dtype), tuple(out_shape))
    out = onp.zeros(out_shape, out_dtype)
    view = onp.transpose(out, [o.index(c) for c in kept + free_b])  # writes reach out
    if not kept:  # every axis of the entries summed
        view[...] = contrib.sum(axis=0)
    elif len(onp.unique(onp.ravel_multi_index(at, view.shape[:len(kept)]))) == len(contrib):
        view[at] = contrib  # one entry per place (a one-hot seed): no add.at, many times slower
    else:
        onp.add.at(view, at, contrib)
    return out


def broadcast_products(program):
    """Contractions that sum over no letter (an outer product, batched: vmap of a gradient's
    cotangent times an input) as a broadcast multiply of the operands laid out in the output's
    axis order: elementwise, so it fuses with what makes and reads it, where a GEMM of inner
    dimension 1 would be a step of its own. A contraction with an operand broadcast along a summed
    letter sums the other operand along it first (`_summed_first`)."""
    ids, made = itertools.count(program.next_id()), {}

    def visit(eq):
        steps = [eq]
        if eq.prim is contract:
            steps = _summed_first(eq, made, ids)
            steps[-1:] = _as_product(steps[-1], ids)
        made.update((step.out, step) for step in steps if len(step.outs) == 1)
        return steps
    return rewrite(program, visit)


def _summed_first(eq, made, ids):
    """[eq] or, where an operand of the contraction is a broadcast along a letter it sums with the
    other (reverse mode's cotangent of a sum, ones, met by a matrix: L^T @ ones), the other summed
    along it first, then a contraction of what is left: sum_k a[k..] * b[..] is (sum_k a[k..]) * b,
    n^2 work where the GEMM does n^3."""
    specs = eq.params["spec"]
    for j in (0, 1):
        x, letters, other, others = eq.ins[j], specs[j], eq.ins[1 - j], specs[1 - j]
        src = made.get(x) if isinstance(x, Var) else None
        if src is None or src.prim is not broadcast_to or not isinstance(src.ins[0], Var) or \
                len(set(letters)) < len(letters) or len(set(others)) < len(others) or \
                not x.dtype == other.dtype == eq.out.dtype:
            continue
        base = (1,) * (len(x.shape) - len(src.ins[0].shape)) + tuple(src.ins[0].shape)
        summed = [c for k, c in enumerate(letters) if base[k] == 1 < x.shape[k] and c in others and c not in specs[2]]
        if not summed:
            continue
        steps, kept = [], [k for k, c in enumerate(letters) if c not in summed]
        total = _staged(steps, reduce_sum, ids, other, axes=tuple(others.index(c) for c in summed), keepdims=False)
        narrow = _staged(steps, reshape, ids, src.ins[0], shape=tuple(base[k] for k in kept))
        if narrow.shape != tuple(x.shape[k] for k in kept):
            narrow = _staged(steps, broadcast_to, ids, narrow, shape=tuple(x.shape[k] for k in kept))
        left = ("".join(letters[k] for k in kept), "".join(c for c in others if c not in summed))
        ins, spec = ([narrow, total], left) if j == 0 else ([total, narrow], left[::-1])
        return steps + [Equation(contract, ins, eq.out, {"spec": (*spec, specs[2])})]
    return [eq]


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
    read elsewhere too stays. (A product with a seed was collapsed before: `collapse`; the zeros of
    a tangent bundle are followed through a contraction as through a product: structure.py.)"""
    ids = itertools.count(program.next_id())
    made, uses = {}, {}
    for eq in program.equations:
        for v in eq.outs:
            made[v] = eq
        for a in eq.ins:
            uses[a] = uses.get(a, 0) + 1
    for o in program.out_vars():
        uses[o] = uses.get(o, 0) + 1

    def visit(eq):
        product = made.get(eq.ins[0]) if eq.prim is reduce_sum else None
        if product is None or product.prim is not multiply or uses[product.out] != 1:
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


def shared_operands(program):
    """An equation handed one value as several operands (a loop's constants, after
    common_subexpressions made them one) takes it once: its primitive's `once` rule."""
    def visit(eq):
        merged = eq.prim.once(eq) if eq.prim.once is not None else None
        return [eq] if merged is None else [merged]
    return rewrite(program, visit)


# the passes optimised runs, in order: a seed's same-shape reshapes go (simplify) before contractions are read
PIPELINE = (fold_constants, simplify, collapse, broadcast_products, summed_products, simplify,
            common_subexpressions, shared_operands, dead_code)
