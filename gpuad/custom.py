"""User-defined derivative rules: `custom_jvp` and `custom_vjp`, with JAX's API.

A call of a custom function binds one primitive, `custom_call`, whose parameter `spec` holds the
function, its rules and the call's static arguments. Its impl runs the function on arrays (a
custom_vjp function's fwd, whose residuals the spec keeps for the backward sweep); its
abstract value is the function's, traced (gpuad.jit records one equation and replays the function);
vmap binds it again with a spec whose function and rules are vmapped, so the rules still apply
under vmap. Forward mode applies the JVP rule to all K directions of a bundle at once (the rule
under vmap over the direction axis); reverse mode applies bwd to all M cotangents (under vmap).
The other mode is the transpose of the rule given, which is linear in its tangents (cotangents):
one backward sweep, seeded with the bundle, over the rule's tape recorded at zero. Rules are
written with gpuad.numpy, so enclosing transforms differentiate them again (the Hessian of a
custom_jvp function differentiates its JVP rule, as in JAX).

custom_call is a primitive of several results (multiple_results): one per leaf of the function's
output, each of its own shape and dtype.
"""
import functools
import inspect

import numpy as onp

from . import backends
from . import numpy as gnp
from .api import vmap
from .compiler.tracing import aval_of
from .core import Primitive, Tracer, dtype, is_inexact, new_trace, same, shape
from .jit import eval_shape
from .ops.elementwise import add
from .ops.patterns import Through
from .reverse import RevTrace
from .tree import tree_flatten, tree_map


class custom_jvp:
    """A function with a JVP rule of the user's own (jax.custom_jvp).

    The rule, set by `f.defjvp(rule)`, is called as rule(*nondiff_args, primals, tangents) with
    tuples of the differentiated arguments and their tangents, and returns (primal_out,
    tangent_out), linear in the tangents; primal_out is the output under forward mode, as in JAX
    (compute it by calling f, so that enclosing transforms use the rule there too). Reverse mode
    uses the rule's transpose; the Hessian differentiates the rule again.

    >>> import gpuad, gpuad.numpy as gnp
    >>> @gpuad.custom_jvp
    ... def log1pexp(x):
    ...     return gnp.log1p(gnp.exp(x))
    >>> @log1pexp.defjvp
    ... def log1pexp_jvp(primals, tangents):
    ...     x, = primals
    ...     return log1pexp(x), tangents[0] * (1.0 - 1.0 / (1.0 + gnp.exp(x)))
    >>> x = gnp.asarray(100.0, dtype="float32")  # differentiating log1p(exp(x)) gives inf / inf here
    >>> import numpy
    >>> with numpy.errstate(over="ignore"):  # the value itself overflows float32, as in JAX's example
    ...     gpuad.grad(log1pexp)(x)
    array(1., dtype=float32)
    """

    def __init__(self, fun, nondiff_argnums=()):
        _wrap(self, fun)
        self.fun, self.nondiff_argnums, self.jvp = fun, _int_tuple(nondiff_argnums), None

    def defjvp(self, jvp):
        """Set the JVP rule; returns it, so that it can be used as a decorator."""
        self.jvp = jvp
        return jvp

    def defjvps(self, *jvps):
        """Set the JVP rule from one function per argument, jvp_i(tangent_i, primal_out, *primals)
        -> its term of the tangent of the output (None: no dependence), as jax's defjvps; the
        terms are summed. Not with nondiff_argnums (use defjvp).

        >>> import gpuad, gpuad.numpy as gnp
        >>> f = gpuad.custom_jvp(lambda x, y: gnp.sin(x) * y)
        >>> f.defjvps(lambda g, ans, x, y: gnp.cos(x) * y * g, lambda g, ans, x, y: gnp.sin(x) * g)
        >>> print(gpuad.grad(f, argnums=(0, 1))(0.0, 2.0))
        (array(2.), array(0.))
        """
        if self.nondiff_argnums:
            raise TypeError(f"{self.__name__}: defjvps cannot be used with nondiff_argnums; use defjvp")

        def rule(primals, tangents):
            if len(jvps) != len(primals):
                raise TypeError(f"{self.__name__}: defjvps was given {len(jvps)} functions for a call with "
                                f"{len(primals)} arguments")
            out = self(*primals)
            terms = [jvp(t, out, *primals) for jvp, t in zip(jvps, tangents) if jvp is not None]
            if not terms:
                return out, tree_map(gnp.zeros_like, out)
            return out, tree_map(lambda *ts: functools.reduce(add, ts), *terms)
        self.defjvp(rule)

    def __call__(self, *args, **kwargs):
        return _JVPSpec(self, _positional(self, args, kwargs)).bind()


class custom_vjp:
    """A function with a VJP rule of the user's own (jax.custom_vjp).

    `f.defvjp(fwd, bwd)`: fwd(*args) returns (output, residuals); bwd(*nondiff_args, residuals,
    cotangent) returns a tuple with one cotangent per differentiated argument (None for zero),
    linear in the cotangent. Forward mode runs fwd and transposes bwd. Where a tape records the call
    (eagerly, on arrays or on another transform's values: higher orders, vmap) f runs as fwd, and
    the call keeps the residuals for the backward sweep, so fwd runs once; the enclosing
    transforms differentiate fwd and bwd, as in JAX. So f and fwd must agree. A compiled program
    runs f.

    >>> import gpuad, gpuad.numpy as gnp
    >>> @gpuad.custom_vjp
    ... def clip_gradient(x):
    ...     return x
    >>> clip_gradient.defvjp(lambda x: (x, None), lambda res, g: (gnp.clip(g, -1.0, 1.0),))
    >>> gpuad.grad(lambda x: 3.0 * clip_gradient(x))(gnp.asarray(2.0))
    array(1.)
    """

    def __init__(self, fun, nondiff_argnums=()):
        _wrap(self, fun)
        self.fun, self.nondiff_argnums = fun, _int_tuple(nondiff_argnums)
        self.fwd = self.bwd = None
        self.in_fwd = 0  # fwd runs now: its own call of the function must run the function

    def defvjp(self, fwd, bwd):
        """Set the forward function (output and residuals) and the backward rule."""
        self.fwd, self.bwd = fwd, bwd

    def __call__(self, *args, **kwargs):
        return _VJPSpec(self, _positional(self, args, kwargs)).bind()


def _wrap(custom, fun):
    functools.update_wrapper(custom, fun)
    if not hasattr(custom, "__name__"):  # a gpuad primitive, a functools.partial: errors still name it
        custom.__name__ = repr(fun)
    try:
        custom.signature = inspect.signature(fun)
    except (TypeError, ValueError):  # a builtin without one: positional arguments only
        custom.signature = None


def _positional(custom, args, kwargs):
    """The call's arguments as positions, defaults filled in, by the function's signature (as JAX
    resolves them): the rules and nondiff_argnums see positional arguments only."""
    sig = custom.signature
    if sig is None:
        if kwargs:
            raise TypeError(f"{custom.__name__}: keyword arguments need a function with a signature")
        return args
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError as e:
        raise TypeError(f"{custom.__name__}: {e}") from None
    bound.apply_defaults()
    if bound.kwargs:
        raise TypeError(f"{custom.__name__}: keyword-only arguments ({', '.join(bound.kwargs)}) cannot be "
                        "passed to a custom_jvp or custom_vjp function, as in JAX: make them positional")
    return bound.args


def _int_tuple(nums):
    nums = (nums,) if isinstance(nums, int) else tuple(nums)
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in nums):
        raise TypeError(f"nondiff_argnums must be an int or a tuple of ints, got {nums!r}")
    return nums


# ---------------------------------------------------------------- the primitive
def _jvp(primals, tangents, spec):
    if all(t is None for t in tangents):
        return custom_call(*primals, spec=spec), None
    k = next(shape(t)[0] for t in tangents if t is not None)
    bundles = [_zeros((k,) + shape(p), dtype(p)) if t is None else t for p, t in zip(primals, tangents)]
    return spec.jvp(primals, bundles)


def _vjp(ct, args, out, needed, spec):
    m = next(shape(c)[0] for c in ct if c is not None)
    return spec.cotangents(args, out, tuple(_zeros((m,) + shape(o), dtype(o)) if c is None else c
                                            for c, o in zip(ct, out)))


def _batch(args, batched, spec):
    outs = custom_call(*args, spec=_Batched(spec, batched))
    return outs, [True] * len(outs)


def _abstract(*args, spec):
    return tuple(eval_shape(lambda *xs: spec.call(xs), *map(aval_of, args)))


def _pattern(args, outs, spec):
    # the function is opaque to gpuad.sparse: every output element may depend on every input element
    return [[Through(1, (onp.zeros(a.size, int), onp.arange(a.size)), (onp.arange(o.size), onp.zeros(o.size, int)))
             for a in args] for o in outs]


custom_call = Primitive("custom_call", lambda *xs, spec: spec.call(xs, keep=True), _jvp, _vjp, _batch,
                        abstract=_abstract)
custom_call.multiple_results = True
# a compiled program replays the function alone: its derivative rules were traced with it, and
# kept residuals would only hold the last call's arrays alive
custom_call.impl_for = lambda xp: lambda *xs, spec: spec.call(xs)
custom_call.pattern = _pattern
custom_call.rev_forward = lambda values, spec: spec.recorded(values)
custom_call.complex_ready = True  # its rules are the user's, traced with gpuad's own primitives


# ---------------------------------------------------------------- one call of a custom function
class _Spec:
    """One call: the custom function, the call's arguments (the nondiff ones static), the leaves
    and tree of the differentiated ones, and, once the function has run, its output's tree and
    leaves' shapes and dtypes (to check a rule's values against them)."""

    def __init__(self, custom, args):
        n = len(args)
        for i in custom.nondiff_argnums:
            if not -n <= i < n:
                raise ValueError(f"{custom.__name__}: nondiff_argnums {i} is out of range for a call with "
                                 f"{n} arguments")
        self.custom, self.args, self.nums = custom, args, {i % n for i in custom.nondiff_argnums}
        if any(isinstance(x, Tracer) for x in tree_flatten(self.nondiff())[0]):
            raise TypeError(f"{custom.__name__}: a nondiff_argnums argument is a traced value (an array "
                            "under a transform); pass arrays as ordinary arguments")
        leaves, self.in_tree = tree_flatten(tuple(a for i, a in enumerate(args) if i not in self.nums))
        self.leaves = [x if isinstance(x, Tracer) else backends.current().asarray(x) for x in leaves]
        self.out_tree = self.out_avals = None

    def __repr__(self):  # how a program's text names the call
        return self.custom.__name__

    def bind(self):
        outs = custom_call(*self.leaves, spec=self)  # runs the function: out_tree is known after it
        return self.out_tree.unflatten(list(outs))

    def nondiff(self):
        return [self.args[i] for i in sorted(self.nums)]

    def recorded(self, values):
        """The call's output where a tape records it, on the values one level down."""
        return custom_call(*values, spec=self)

    def diff_args(self, leaves):
        return self.in_tree.unflatten(leaves)

    def full_args(self, leaves):
        it = iter(self.diff_args(leaves))
        return [self.args[i] if i in self.nums else next(it) for i in range(len(self.args))]

    def call(self, leaves, keep=False):
        """The function's output leaves, a tuple (keep: see _VJPSpec)."""
        return self.record(self.custom.fun(*self.full_args(list(leaves))), "the function's output")

    def record(self, tree, what):
        """An output of the function (or of the rule that stands for it), as a tuple of its leaves;
        its structure is recorded the first time and checked afterwards."""
        if self.out_tree is not None:
            return self.like_output(tree, what)
        outs, self.out_tree = tree_flatten(tree)
        outs = tuple(o if isinstance(o, Tracer) else backends.current().asarray(o) for o in outs)
        self.out_avals = [same(o) for o in outs]
        return outs

    def like_output(self, tree, what):
        """The leaves of a value shaped like the output (a rule's tangent of it, say), checked against it."""
        leaves, td = tree_flatten(tree)
        if td != self.out_tree:
            raise ValueError(f"{self.custom.__name__}: {what} has structure {td}, but the function's output "
                             f"has {self.out_tree}")
        return tuple(_checked(x, a, self.custom.__name__, what) for x, a in zip(leaves, self.out_avals))


class _JVPSpec(_Spec):
    def rule(self, primals, tangents):
        """The rule for one direction: (primal_out, tangent_out), each a tuple of leaves."""
        rule = self.custom.jvp
        if rule is None:
            raise TypeError(f"custom_jvp function {self.custom.__name__} has no JVP rule: define one with "
                            f"{self.custom.__name__}.defjvp(rule) before differentiating it")
        pair = rule(*self.nondiff(), self.diff_args(list(primals)), self.diff_args(list(tangents)))
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise TypeError(f"{self.custom.__name__}: the JVP rule must return a pair (primal_out, tangent_out)")
        out = self.record(pair[0], "the JVP rule's primal_out")
        return out, self.like_output(pair[1], "the JVP rule's tangent_out")

    def jvp(self, primals, bundles):
        # primal_out does not depend on the direction: out_axes None keeps one copy of it
        return vmap(lambda *ts: self.rule(primals, ts), out_axes=(None, 0))(*bundles)

    def cotangents(self, primals, out, ct):
        return _transpose(lambda ts: list(self.rule(primals, ts)[1]), primals, list(ct))


class _VJPSpec(_Spec):
    kept = None  # (argument arrays, fwd's (output, residuals)) of the call's run on arrays

    def call(self, leaves, keep=False):
        """On arrays, with keep (an eager run, or the one a tape records), the output comes from fwd and
        its residuals are kept, so that a backward sweep reaching this call does not run fwd again."""
        if not keep or self.custom.fwd is None or self.custom.in_fwd or any(isinstance(x, Tracer) for x in leaves):
            return super().call(leaves)
        return self.record(self.fwd(leaves, keep=True)[0], "fwd's output")

    def recorded(self, values):
        """Where a tape records the call on values of other transforms (a Hessian's, vmap's), fwd runs
        on them and its residuals are kept for the sweep, as JAX differentiates fwd there: fwd runs
        once, not once for the output and again at the sweep. On arrays the impl keeps them."""
        if self.custom.fwd is None or self.custom.in_fwd or not any(isinstance(v, Tracer) for v in values):
            return super().recorded(values)
        return self.record(self.fwd(values, keep=True)[0], "fwd's output")

    def fwd(self, primals, keep=False):
        """fwd on the leaves: (output, residuals); the kept ones where the leaves are the same arrays."""
        if self.kept is not None and len(self.kept[0]) == len(primals) and all(
                a is b for a, b in zip(self.kept[0], primals)):
            return self.kept[1]
        if self.custom.fwd is None:
            raise TypeError(f"custom_vjp function {self.custom.__name__} has no VJP rule: define one with "
                            f"{self.custom.__name__}.defvjp(fwd, bwd) before differentiating it")
        self.custom.in_fwd += 1
        try:
            pair = self.custom.fwd(*self.full_args(list(primals)))
        finally:
            self.custom.in_fwd -= 1
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise TypeError(f"{self.custom.__name__}: fwd must return a pair (output, residuals)")
        if keep:
            self.kept = tuple(primals), pair
        return pair

    def cotangent(self, primals, res, ct):
        """bwd's cotangents of the differentiated leaves for one direction ct (one per output leaf)."""
        cts = self.custom.bwd(*self.nondiff(), res, self.out_tree.unflatten(list(ct)))
        args = self.diff_args(list(primals))
        if not isinstance(cts, (tuple, list)) or len(cts) != len(args):
            got = f"{len(cts)} values" if isinstance(cts, (tuple, list)) else f"a {type(cts).__name__}"
            raise ValueError(f"{self.custom.__name__}: bwd must return a tuple of {len(args)} cotangents (one "
                             f"per differentiated argument), got {got}")
        leaves = []
        for k, (arg, c) in enumerate(zip(args, cts)):
            xs, tree = tree_flatten(arg)
            cs, ctree = tree_flatten(c) if c is not None else ([None] * len(xs), tree)
            if ctree != tree:
                raise ValueError(f"{self.custom.__name__}: bwd's cotangent {k} has structure {ctree}, its "
                                 f"argument {tree}")
            leaves += [_zeros(shape(x), dtype(x)) if g is None else _checked(g, same(x), self.custom.__name__,
                                                                              f"bwd's cotangent {k}")
                       for x, g in zip(xs, cs)]
        return leaves

    def cotangents(self, primals, out, ct, res=None):
        res = self.fwd(primals)[1] if res is None else res
        return vmap(lambda c: self.cotangent(primals, res, c))(ct)

    def jvp(self, primals, bundles):
        out, res = self.fwd(primals)
        out = self.record(out, "fwd's output")
        return out, tuple(_transpose(lambda cs: self.cotangent(primals, res, cs), list(out), bundles))



class _Batched:
    """The call vmap makes of a custom function: arguments where `batched` lead with a batch axis,
    the function and both rules of `base` vmapped over it (so the user's rules still apply)."""

    kept = None  # (argument values, fwd's residuals batched) where a tape recorded the call

    def __init__(self, base, batched):
        self.base, self.axes = base, tuple(0 if b else None for b in batched)

    def __repr__(self):
        return f"vmap({self.base!r}, in_axes={self.axes})"

    def call(self, leaves, keep=False):
        return vmap(lambda *xs: self.base.call(xs), in_axes=self.axes)(*leaves)

    def recorded(self, values):
        """As _VJPSpec.recorded: a tape records the call, so fwd runs (batched) and its residuals
        are kept for the sweep."""
        base = self.base
        if not isinstance(base, _VJPSpec) or base.custom.fwd is None or base.custom.in_fwd:
            return custom_call(*values, spec=self)
        out, res = vmap(lambda *xs: (lambda pair: (base.record(pair[0], "fwd's output"), pair[1]))(base.fwd(xs)),
                        in_axes=self.axes)(*values)
        self.kept = tuple(values), res
        return out

    def jvp(self, primals, bundles):
        # bundles are (K, B, ...) where batched: the direction axis stays first
        axes = (self.axes, tuple(1 if a == 0 else None for a in self.axes))
        return vmap(self.base.jvp, in_axes=axes, out_axes=(0, 1))(tuple(primals), tuple(bundles))

    def cotangents(self, primals, out, ct):
        kept = self.kept
        if kept is not None and len(kept[0]) == len(primals) and all(a is b for a, b in zip(kept[0], primals)):
            cts = vmap(lambda p, o, c, r: self.base.cotangents(p, o, c, r), in_axes=(self.axes, 0, 1, 0),
                       out_axes=1)(tuple(primals), out, ct, kept[1])
        else:
            cts = vmap(self.base.cotangents, in_axes=(self.axes, 0, 1), out_axes=1)(tuple(primals), out, ct)
        # an argument without the batch axis gets the sum of its cotangents over the batch
        return [c if a == 0 else gnp.sum(c, axis=1) for c, a in zip(cts, self.axes)]


# ---------------------------------------------------------------- helpers
def _transpose(linear, likes, seeds):
    """The transpose of a linear map applied to bundles: linear takes values shaped like `likes`
    and returns a list; seeds holds one bundle (M, ...) per output, or None. Returns one bundle
    per input, by one backward sweep over linear's tape, recorded at zero."""
    m = next(shape(s)[0] for s in seeds if s is not None)
    with new_trace(RevTrace) as trace:
        ins = [trace.new_input(_zeros(shape(x), dtype(x))) if is_inexact(x) else _zeros(shape(x), dtype(x))
               for x in likes]
        _, out_ids = trace.split(linear(ins))
    start = {}
    for i, s in zip(out_ids, seeds):
        if i is not None and s is not None:
            start[i] = s if i not in start else add(start[i], s)
    ct = trace.sweep_backward(start)
    return [ct.get(t.id) if isinstance(t, Tracer) and t.id in ct else _zeros((m,) + shape(x), dtype(x))
            for t, x in zip(ins, likes)]


def _checked(x, aval, name, what):
    if shape(x) != aval.shape:
        raise ValueError(f"{name}: {what} has shape {shape(x)}, but its primal has shape {aval.shape}")
    if dtype(x) != aval.dtype:
        raise TypeError(f"{name}: {what} has dtype {dtype(x)}, but its primal has dtype {aval.dtype}")
    return x


def _zeros(s, dt):
    return backends.xp().zeros(s, dtype=dt)
