"""Sparsity patterns, found by propagating index sets through the function's traced program.

The function is traced abstractly (gpuad.compiler.tracing.trace_program: shapes and dtypes, no data), so
the pattern holds for every value of the inputs: it is the union of the patterns of all the
branches a value could take, and Python control flow on input values cannot occur (tracing
refuses it, as gpuad.jit does). Each value's pattern is a boolean CSR matrix (its elements x the
n input elements); a primitive's `pattern` rule (gpuad/ops/patterns.py) gives its local pattern
per argument, and the output's is the union of local @ argument pattern. No derivative is
computed and nothing is random. The other arguments' arrays are traced abstractly too, so the
pattern holds for all their values; their non-array leaves (Python numbers, strings) are static.
A constant the function closes over is known, and its zeros count (W @ x with a constant W has
W's pattern); so do a value's zeros for every input (its support, gpuad/compiler/structure.py:
forward mode's seed off its diagonal, and products with it). Patterns are structural: x - x still depends on x.
"""
import functools
import math
import operator

import numpy as onp
import scipy.sparse as sp

from .. import backends
from ..api import _argnums, _as_input, grad
from ..compiler import structure
from ..compiler.ir import Var, dying
from ..compiler.tracing import trace_program
from ..core import ShapeDtypeStruct, Tracer, dtype, results, shape
from ..ops.patterns import Masked, Through, run, unknown
from ..tree import tree_flatten


def jacobian_sparsity(fun, argnums=0):
    """The structural pattern of fun's Jacobian: a boolean scipy.sparse.csr_array of shape
    (output size, input size), inputs and outputs raveled in C order (pytree leaves one after
    the other, as jacfwd(f)(x).reshape(m, n) for one array each). An entry is True where the
    derivative can be non-zero for some input values. Cached per input signature.

    >>> import gpuad, gpuad.numpy as gnp
    >>> p = gpuad.sparse.jacobian_sparsity(lambda x: x[1:] - x[:-1])(gnp.zeros(4))
    >>> p.toarray().astype(int)
    array([[1, 1, 0, 0],
           [0, 1, 1, 0],
           [0, 0, 1, 1]])
    """
    return _cached(fun, argnums, "jacobian_sparsity", jacobian_pattern)


def hessian_sparsity(fun, argnums=0):
    """The symmetric structural pattern of a scalar function's Hessian (the Jacobian pattern of
    its gradient, traced), as a boolean scipy.sparse.csr_array (n, n).

    >>> import gpuad, gpuad.numpy as gnp
    >>> p = gpuad.sparse.hessian_sparsity(lambda x: gnp.sum(x[1:] * x[:-1]) + x[0] ** 3)(gnp.zeros(3))
    >>> p.toarray().astype(int)
    array([[1, 1, 0],
           [1, 0, 1],
           [0, 1, 0]])
    """
    return _cached(fun, argnums, "hessian_sparsity", hessian_pattern)


def _cached(fun, argnums, name, find):
    """fun's pattern as a function of its arguments, found once per signature."""
    cache = {}

    @functools.wraps(fun)
    def pattern(*args):
        sig = Signature(name, args, argnums)
        if sig.key not in cache:
            cache[sig.key] = find(fun, argnums, name, sig)
        return cache[sig.key]
    return pattern


def hessian_pattern(fun, argnums, name, sig):
    p = jacobian_pattern(grad(fun, argnums), argnums, name, sig)
    # H is symmetric: where an entry can be non-zero, so can its mirror (the traced reverse rules
    # may show one of the two only)
    h = (p + p.T).tocsr()
    h.sort_indices()
    return h


class Signature:
    """One call's arguments: the differentiated leaves (`leaves`, backend arrays), and per other
    argument its leaves (`rest`): ShapeDtypeStructs for arrays (traced abstractly), the values
    themselves for the others (static); and the cache key."""

    def __init__(self, name, args, argnums):
        self.name = name
        self.nums, _ = _argnums(argnums, len(args), name)
        self.trees, self.leaves, self.rest = [], [], []
        for i, a in enumerate(args):
            leaves, tree = tree_flatten(a)
            self.trees.append(tree)
            if i in self.nums:
                self.leaves += [_as_input(x, name, f"leaf {k} of argument {i}") for k, x in enumerate(leaves)]
            self.rest.append([] if i in self.nums else [_abstract_or_static(x) for x in leaves])
        self.sizes = [math.prod(shape(x)) for x in self.leaves]
        self.n = sum(self.sizes)
        avals = tuple(ShapeDtypeStruct(shape(x), dtype(x)) for x in self.leaves)
        static = tuple(_static_key(x, name) for r in self.rest for x in r)
        self.key = (tuple(self.trees), self.nums, avals, static, backends.backend())

    def abstract_rest(self):
        return [x for r in self.rest for x in r if isinstance(x, ShapeDtypeStruct)]

    def rebuild(self, leaves, rest):
        """The arguments with these differentiated leaves and these values for the other arrays."""
        dyn, others = iter(leaves), iter(rest)
        args = []
        for i, tree in enumerate(self.trees):
            if i in self.nums:
                picked = [next(dyn) for _ in range(tree.num_leaves)]
            else:
                picked = [next(others) if isinstance(x, ShapeDtypeStruct) else x for x in self.rest[i]]
            args.append(tree.unflatten(picked))
        return args


def _abstract_or_static(x):
    if isinstance(x, Tracer) or hasattr(x, "shape") and hasattr(x, "dtype"):
        return ShapeDtypeStruct(shape(x), dtype(x))
    return x


def _static_key(x, name):
    try:
        hash(x)
    except TypeError:
        raise TypeError(f"{name}: argument leaf {x!r} is neither an array nor hashable; pass arrays, "
                        "numbers or hashable values") from None
    return x


def jacobian_pattern(fun, argnums, name, sig):
    """Trace fun at this signature and propagate the input patterns to its outputs."""
    program = _trace(fun, sig)
    eye = sp.eye_array(sig.n, dtype=bool, format="csr")
    offsets = onp.cumsum([0] + sig.sizes)
    inputs = [eye[lo:hi] for lo, hi in zip(offsets[:-1], offsets[1:])]
    outs = propagate(program, inputs + [None] * (len(program.ins) - len(inputs)), sig.n)
    p = sp.vstack(outs, format="csr") if outs else sp.csr_array((0, sig.n), dtype=bool)
    p.sort_indices()  # canonical: products leave the columns of a row in any order
    return p


def _trace(fun, sig):
    abstract_rest = sig.abstract_rest()

    def flat(inputs):
        args = sig.rebuild(inputs[:len(sig.leaves)], inputs[len(sig.leaves):])
        return tree_flatten(fun(*args))[0]

    avals = [ShapeDtypeStruct(shape(x), dtype(x)) for x in sig.leaves] + abstract_rest
    names = [f"{sig.name} input leaf {k}" for k in range(len(sig.leaves))] + \
        [f"{sig.name} argument leaf {k} (not differentiated)" for k in range(len(abstract_rest))]
    program = trace_program(flat, avals, names, (
        f"gpuad.{sig.name} (finding the sparsity pattern, for all values at once)",
        "pass what chooses the branch as an argument that is not an array (an int, a string: such arguments "
        "are fixed per call), or give the pattern with sparsity="))
    if not program.cacheable:
        raise TypeError(f"{sig.name}: the function closes over values of an enclosing transform; "
                        "find the pattern outside it")
    return program


_KNOWN = 1 << 22  # the most elements of a value computed from constants alone, to count its zeros


def propagate(program, inputs, n):
    """The pattern of each program output, from the patterns of its inputs (None: no dependence).
    Values made from constants alone (forward mode's identity seed, its slices and products with
    constants) are computed where small, so that their zeros count as a constant's do."""
    env = dict(zip(program.ins, inputs))
    known, supports = {}, {}  # Var -> its value (made from constants alone); Var -> where it may be non-zero
    for eq, gone in zip(program.equations, dying(program.equations, program.out_vars())):
        _propagate_one(eq, env, known, supports)
        for a in gone:  # what no later equation reads is dropped: the patterns of large programs add up
            for d in (env, known, supports):
                d.pop(a, None)
    return [_or_empty(env.get(o), math.prod(o.shape), n) for o in program.outs]


def _propagate_one(eq, env, known, supports):
    be = backends.current()
    pats = [env.get(a) for a in eq.ins]  # a Lit depends on nothing
    args = [known.get(a, _unknown(a, supports)) if isinstance(a, Var) else
            be.to_numpy(a.val) if be.is_array(a.val) else a.val for a in eq.ins]
    small = all(math.prod(v.shape) <= _KNOWN for v in eq.outs)
    if all(p is None for p in pats):
        if small and not any(map(unknown, args)):
            known.update(zip(eq.outs, results(eq.prim, run(eq.prim, args, eq.params))))
        return
    rule = eq.prim.pattern
    if rule is None:
        raise NotImplementedError(f"gpuad.sparse: primitive {eq.prim.name!r} has no sparsity rule, so the "
                                  "pattern of a function that uses it cannot be found; pass sparsity=")
    for v in eq.outs:  # a primitive of several results is asked for each one's pattern
        out = ShapeDtypeStruct(v.shape, v.dtype)
        env[v] = _union(out.size, [(loc, p) for loc, p, a in zip(rule(args, out, **eq.params), pats, args)
                                   if loc is not None and p is not None])
    if len(eq.outs) == 1 and small:
        s = structure.support(eq, [_support(a, v, supports) for a, v in zip(args, eq.ins)])
        if s.at is not None:
            supports[eq.out] = s  # (a comparison's too, which depends on nothing: where(x != 0, y, 0))
            if env[eq.out] is not None:  # no dependence where it is zero for every input
                env[eq.out] = env[eq.out].multiply(structure.mask(s, (math.prod(eq.out.shape), 1))).tocsr()


def _unknown(v, supports):
    """A Var's value while its pattern is found: its shape and dtype, and its structural zeros
    where it has some (a product or contraction with it has no dependence there)."""
    s = supports.get(v)
    return ShapeDtypeStruct(v.shape, v.dtype) if s is None else Masked(v.shape, v.dtype, structure.mask(s, v.shape))


def _support(arg, v, supports):
    """Where an argument may be non-zero: a constant's non-zeros, a computed value's support, or
    anywhere."""
    if not unknown(arg):
        return structure.of_constant(onp.asarray(arg))
    return supports.get(v, structure.ANYWHERE)


def _union(size, terms):
    """OR over the arguments of (local pattern) @ (argument pattern); None when nothing depends.
    A local that takes at most one element per output (elementwise, slices, gathers, reshapes)
    picks rows of the argument's pattern; the others are one product of the locals side by side
    with the patterns stacked. Boolean sums and products: an OR of ANDs, no cancellation."""
    if not terms:
        return None
    terms = [_through(loc, p) for loc, p in terms]
    picked = [_picked(loc, size, p) for loc, p in terms]
    mixed = [(loc, p) for (loc, p), rows in zip(terms, picked) if rows is None]
    parts = [rows for rows in picked if rows is not None]
    if mixed:
        local = sp.hstack([_matrix(loc, size, p.shape[0]) for loc, p in mixed], format="csr")
        parts.append(local @ sp.vstack([p for _, p in mixed], format="csr"))
    return functools.reduce(operator.add, parts)


def _picked(loc, size, p):
    """local @ p by picking p's rows, where each output takes one argument element at most (None
    where not): no product, and no copy for the identity."""
    r, c = (onp.asarray(x) for x in loc)
    if r.size > size or onp.bincount(r, minlength=size).max(initial=0) > 1:
        return None
    if r.size == size and onp.array_equal(r, onp.arange(size)):
        return p if size == p.shape[0] and onp.array_equal(c, r) else p[c]
    order = onp.argsort(r, kind="stable")
    rows = p[c[order]]
    lengths = onp.zeros(size, dtype=onp.int64)
    lengths[r[order]] = onp.diff(rows.indptr)
    return sp.csr_array((rows.data, rows.indices, onp.r_[0, onp.cumsum(lengths)]), shape=(size, p.shape[1]))


def _through(loc, p):
    """(the local pattern to the output, the pattern it applies to): a Through's first step done."""
    if isinstance(loc, Through):
        return loc.then, _matrix(loc.first, loc.size, p.shape[0]) @ p
    return loc, p


def _matrix(pairs, rows, cols):
    r, c = pairs
    return sp.csr_array((onp.ones(len(r), dtype=bool), (r, c)), shape=(rows, cols))


def _or_empty(p, size, n):
    return p if p is not None else sp.csr_array((size, n), dtype=bool)
