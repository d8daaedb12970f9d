"""gpuad.lax: structured control flow with JAX's signatures (fori_loop, scan, while_loop, cond,
switch, map) and stop_gradient.

A loop stays a loop under every transform: its body is traced once into a program and the loop is
one primitive (gpuad/loops.py), so jacfwd carries all K tangent directions through one loop, jacrev
runs one backward loop with all M cotangents, and gpuad.jit records one equation holding the body.
Carries are pytrees whose leaves keep their shapes and dtypes from one iteration to the next.

>>> import gpuad, gpuad.numpy as gnp
>>> gpuad.lax.fori_loop(0, 3, lambda i, x: x * 2.0, gnp.asarray(1.0))
array(8.)
>>> gpuad.grad(lambda x: gpuad.lax.fori_loop(0, 3, lambda i, y: y * x, x))(gnp.asarray(2.0))
array(32.)
"""
import itertools

import numpy as onp

from . import backends, revolve
from . import numpy as gnp
from .api import vmap
from .compiler.ir import Program, Var
from .core import Primitive, ShapeDtypeStruct, Tracer, same, shape
from .loops import Cond, Scan, While, bind_scan, bind_while, cond_p, trace_body, unpack
from .ops import patterns
from .tree import tree_flatten, tree_map

__all__ = ["fori_loop", "scan", "while_loop", "cond", "switch", "map", "stop_gradient"]


def scan(f, init, xs=None, length=None, reverse=False, unroll=1, checkpoint=None):
    """Loop f(carry, x) -> (carry, y) over the leading axis of xs; returns (final carry, stacked ys),
    as jax.lax.scan. `reverse` scans from the end (ys still line up with xs); `unroll` is accepted
    for JAX's signature (a compiled loop replays its body's program, so unrolling gains nothing).
    Reverse mode stores the carry entering every step; `checkpoint` (an extension) stores fewer: an
    int s holds s carries (the first included) and recomputes the others from them by the binomial
    schedule (the fewest recomputations s carries allow: with 50, 1,000 steps run about twice
    more); "auto" stores every carry where they fit in a quarter of the available memory, else as
    many as fit (docs/loops.md).

    >>> import gpuad, gpuad.numpy as gnp
    >>> gpuad.lax.scan(lambda c, x: (c + x, c * x), 0.0, gnp.arange(1.0, 4.0))
    (array(6.), array([0., 2., 9.]))
    """
    _check_unroll(unroll, "scan")
    return _scan(f, init, xs, _length(xs, length), reverse, "scan", revolve.check(checkpoint, "scan"))


def _check_unroll(unroll, name):
    if not (isinstance(unroll, bool) or (isinstance(unroll, int) and unroll >= 1)):
        raise TypeError(f"{name}: unroll must be a positive int or a bool, got {unroll!r}")


def _length(xs, length):
    lengths = {shape(x)[0] if shape(x) else None for x in tree_flatten(xs)[0]}
    if None in lengths:
        raise ValueError("scan: every leaf of xs needs a leading axis to scan over; a leaf is a scalar")
    if length is not None:
        lengths.add(int(length))
    if len(lengths) != 1:
        raise ValueError(f"scan: the leaves of xs have leading axes of sizes {sorted(lengths)} (length included); "
                         "they must agree" if lengths else "scan: give length when xs is None")
    return lengths.pop()


def _scan(f, init, xs, n, reverse, name, checkpoint=None):
    x_leaves, x_tree = tree_flatten(xs)
    x_leaves = [_array(x) for x in x_leaves]
    carry, x_avals = _Carry(name, init), [ShapeDtypeStruct(shape(x)[1:], x.dtype) for x in x_leaves]
    y_tree = []

    def flat(vals):
        out = f(carry.tree.unflatten(vals[:carry.n]), x_tree.unflatten(vals[carry.n:]))
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError(f"{name}: the body must return a pair (carry, y), got {type(out).__name__}")
        ys, tree = tree_flatten(out[1])
        y_tree[:] = [tree]
        return carry.check(out[0], "the body's output carry") + [_array(y) for y in ys]
    body, consts = trace_body(flat, carry.avals + x_avals, f"the {name} body")
    spec = Scan(body, len(consts), carry.n, n, bool(reverse), name, checkpoint)
    leaves = unpack(bind_scan(spec, consts + carry.leaves + x_leaves), spec.out_avals)
    return carry.tree.unflatten(leaves[:carry.n]), y_tree[0].unflatten(leaves[carry.n:])


def fori_loop(lower, upper, body_fun, init_val, *, unroll=None, checkpoint=None):
    """body_fun(i, val) -> val for i from lower to upper - 1, as jax.lax.fori_loop: a scan when the
    bounds are concrete (reverse mode differentiates it; `unroll` and `checkpoint` as scan's), else
    a while_loop.

    >>> import gpuad
    >>> gpuad.lax.fori_loop(0, 4, lambda i, s: s + i, 0)
    array(6)
    """
    if unroll is not None:
        _check_unroll(unroll, "fori_loop")
    if isinstance(lower, Tracer) or isinstance(upper, Tracer):
        def step(state):
            i, hi, val = state
            return i + 1, hi, body_fun(i, val)
        return while_loop(lambda state: state[0] < state[1], step, (_array(lower), _array(upper), init_val))[2]
    lo, hi = _concrete_int(lower, "lower"), _concrete_int(upper, "upper")
    steps = backends.current().asarray(onp.arange(lo, max(lo, hi), dtype=onp.result_type(lo, hi)))
    return _scan(lambda val, i: (body_fun(i, val), None), init_val, steps, len(steps), False, "fori_loop",
                 revolve.check(checkpoint, "fori_loop"))[0]


def while_loop(cond_fun, body_fun, init_val):
    """Repeat val = body_fun(val) while cond_fun(val), as jax.lax.while_loop. Reverse mode works too
    (JAX refuses it): the loop runs once counting its trips, then it is differentiated as a scan of
    that many steps with checkpoint="auto". Where the loop is traced rather than run (under
    gpuad.jit, inside another loop's body differentiated in reverse mode) the backward sweep counts
    the trips when the program runs and follows the same schedule (docs/loops.md).

    >>> import gpuad
    >>> gpuad.lax.while_loop(lambda x: x < 10.0, lambda x: x * 3.0, 1.0)
    array(27.)
    """
    carry = _Carry("while_loop", init_val)

    def test(vals):
        out = cond_fun(carry.tree.unflatten(vals))
        if shape(out) != () or same(_array(out)).dtype != onp.bool_:
            raise TypeError(f"while_loop: cond_fun must return a boolean scalar, got {same(_array(out))}")
        return [out]
    cond, c_consts = trace_body(test, carry.avals, "the while_loop condition")
    body, b_consts = trace_body(lambda vals: carry.check(body_fun(carry.tree.unflatten(vals)), "body_fun's output"),
                                carry.avals, "the while_loop body")
    spec = While(cond, body, len(c_consts), len(b_consts))
    return carry.tree.unflatten(unpack(bind_while(spec, c_consts + b_consts + carry.leaves), spec.out_avals))


_NO_OPERAND = object()  # cond's and switch's operand= not given (None is an operand)


def switch(index, branches, *operands, operand=_NO_OPERAND):
    """branches[index](*operands), index clamped to the branches, as jax.lax.switch. Eagerly only the
    branch taken runs; under vmap with a batched index every branch runs and each example selects.

    >>> import gpuad, gpuad.numpy as gnp
    >>> gpuad.lax.switch(1, [gnp.sin, gnp.cos], gnp.asarray(0.0))
    array(1.)
    """
    operands = _operands(operands, operand, "switch")
    branches = list(branches)
    if not branches or not all(callable(b) for b in branches):
        raise TypeError("switch: branches must be a non-empty sequence of functions")
    index = gnp.asarray(index)
    if shape(index) != () or index.dtype.kind not in "biu":
        raise TypeError(f"switch: the index must be an integer scalar, got {same(index)}")
    return _switch(index.astype("int64"), branches, operands, "cond")


def _switch(index, branches, operands, name):
    leaves, tree = tree_flatten(operands)
    leaves = [_array(x) for x in leaves]
    avals = [same(x) for x in leaves]
    traced, out = [], []
    for k, br in enumerate(branches):
        def flat(vals, br=br):
            o, t = tree_flatten(br(*tree.unflatten(vals)))
            out.append((t, [same(_array(x)) for x in o]))
            return [_array(x) for x in o]
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
    return out[0][0].unflatten(unpack(cond_p(index, *consts, *leaves, spec=spec), spec.out_avals))


def _taking(program, avals, lo, hi):
    """program, whose inputs are constants standing for avals[lo:hi] then the operands, taking all
    of avals ahead of the operands: the others are inputs it does not read."""
    ids = itertools.count(program.next_id())
    consts = [program.ins[k - lo] if lo <= k < hi else Var(next(ids), a) for k, a in enumerate(avals)]
    return Program(consts + program.ins[hi - lo:], program.equations, program.outs)


def cond(pred, true_fun, false_fun, *operands, operand=_NO_OPERAND):
    """true_fun(*operands) if pred else false_fun(*operands), as jax.lax.cond.

    >>> import gpuad, gpuad.numpy as gnp
    >>> gpuad.lax.cond(gnp.asarray(2.0) > 1.0, lambda x: x + 1.0, lambda x: x - 1.0, gnp.asarray(2.0))
    array(3.)
    """
    pred = gnp.asarray(pred)
    if shape(pred) != ():
        raise TypeError(f"cond: the predicate must be a scalar, got shape {shape(pred)}")
    return switch(gnp.where(pred, 1, 0), [false_fun, true_fun], *_operands(operands, operand, "cond"))


def _operands(operands, operand, name):
    """The branches' operands: JAX's older single `operand=` keyword is one operand."""
    if operand is _NO_OPERAND:
        return operands
    if operands:
        raise TypeError(f"{name}: give the operands either positionally or as operand=, not both")
    return (operand,)


def map(f, xs, *, batch_size=None):
    """f applied to each slice of xs along its leading axis, stacked, as jax.lax.map (a scan). With
    batch_size, as JAX's: a scan over batches of that many slices, each batch under vmap, and the
    slices left over (fewer than a batch) under one more vmap.

    >>> import gpuad, gpuad.numpy as gnp
    >>> gpuad.lax.map(lambda x: x * x, gnp.arange(3.0))
    array([0., 1., 4.])
    """
    if batch_size is None:
        return scan(lambda c, x: (c, f(x)), None, xs)[1]
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise TypeError(f"map: batch_size must be a positive int or None, got {batch_size!r}")
    n = _length(xs, None)
    full = n - n % batch_size
    parts = []
    if full:
        batches = tree_map(lambda x: gnp.reshape(x[:full], (full // batch_size, batch_size) + shape(x)[1:]), xs)
        ys = scan(lambda c, x: (c, vmap(f)(x)), None, batches)[1]
        parts.append(tree_map(lambda y: gnp.reshape(y, (full,) + shape(y)[2:]), ys))
    if full < n:
        parts.append(vmap(f)(tree_map(lambda x: x[full:], xs)))
    return parts[0] if len(parts) == 1 else tree_map(lambda a, b: gnp.concatenate([a, b]), *parts)


# ---------------------------------------------------------------- stop_gradient
stop_gradient_p = Primitive("stop_gradient", lambda x: x, batch=lambda args, batched: (args[0], True), nondiff=True,
                            abstract=same)
stop_gradient_p.pattern = patterns.none
stop_gradient_p.view = lambda: True  # its result is its argument: a compiled program adds into neither


def stop_gradient(x):
    """x with no derivative (its leaves treated as constants), as jax.lax.stop_gradient.

    >>> import gpuad
    >>> gpuad.grad(lambda x: x * stop_gradient(x))(3.0)
    array(3.)
    """
    return tree_map(lambda leaf: stop_gradient_p(leaf), x)


# ---------------------------------------------------------------- helpers
class _Carry:
    """A loop's carry: its leaves, tree and leaves' shapes and dtypes, to check a body's output against."""

    def __init__(self, name, init):
        leaves, self.tree = tree_flatten(init)
        self.name, self.leaves = name, [_array(x) for x in leaves]
        self.avals, self.n = [same(x) for x in self.leaves], len(self.leaves)

    def check(self, out, what):
        leaves, tree = tree_flatten(out)
        if tree != self.tree:
            raise TypeError(f"{self.name}: {what} has structure {tree}, but the carry has {self.tree}; a loop's "
                            "carry keeps its structure")
        leaves = [_array(x) for x in leaves]
        names = _leaf_names(self.tree)
        for name, x, a in zip(names, leaves, self.avals):
            if same(x) != a:
                raise TypeError(f"{self.name}: {what} changes carry leaf {name} from {_text(a)} to {_text(same(x))}; "
                                "a loop's carry keeps its shapes and dtypes (cast with .astype, or give the initial "
                                "value the dtype and shape the body makes)")
        return leaves


def _leaf_names(tree):
    """Each leaf's path in the tree, as 'carry[0]["a"]'."""
    if tree.kind is None:
        return ["carry"]
    if tree.kind is type(None):
        return []
    keys = tree.meta if tree.kind is dict else range(len(tree.children))
    return [name.replace("carry", f"carry[{k!r}]", 1) for k, c in zip(keys, tree.children) for name in _leaf_names(c)]


def _text(aval):
    return f"{aval.dtype.name}{list(aval.shape)}"


def _array(x):
    return x if isinstance(x, Tracer) else backends.current().asarray(backends.current().coerce(x))


def _concrete_int(x, what):
    # a Python or NumPy integer as it is: through the backend it went to the GPU and back (a wait)
    value = onp.asarray(x if isinstance(x, (int, onp.integer)) else backends.current().to_numpy(_array(x)))
    if value.shape or value.dtype.kind not in "iu":
        raise TypeError(f"fori_loop: {what} must be an integer scalar, got {x!r}")
    return value[()]  # a NumPy integer: its dtype is the loop index's
