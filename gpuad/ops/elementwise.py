"""The elementwise table: every elementwise primitive is one row.

A row gives the primal expression and one partial derivative per argument, written
in the expression language of `expr.py` (unary rows name their argument x, binary
rows a and b; y is the output). From a row come the NumPy/CuPy evaluation, the JVP
and VJP rules on tangent/cotangent bundles, their differentiable versions used when
transforms nest, the vmap rule, and the CUDA source of the fused kernels.
"""
import math

from .. import backends
from ..core import Primitive, Tracer, bind, dtype, shape
from .expr import Expr


class Row:
    __slots__ = ("name", "args", "primal", "partials")

    def __init__(self, name, primal, *partials, arity=None):
        self.name = name
        self.args = ("x",) if (arity or len(partials)) == 1 else ("a", "b")
        self.primal = Expr(primal)
        self.partials = tuple(Expr(p) for p in partials)

    @property
    def nondiff(self):
        return not self.partials


# ---------------------------------------------------------------- differentiable rows
# name          primal              partial derivatives (x, or a and b; y is the output)
DIFFERENTIABLE = [
    Row("negative", "-x", "-1"),
    Row("abs", "abs(x)", "sign(x)"),
    Row("sqrt", "sqrt(x)", "0.5 / y"),
    Row("cbrt", "cbrt(x)", "1 / (3 * y * y)"),
    Row("square", "x * x", "2 * x"),
    Row("reciprocal", "1 / x", "-y * y"),
    Row("exp", "exp(x)", "y"),
    Row("exp2", "exp2(x)", "0.6931471805599453 * y"),
    Row("expm1", "expm1(x)", "y + 1"),
    Row("log", "log(x)", "1 / x"),
    Row("log2", "log2(x)", "1.4426950408889634 / x"),
    Row("log10", "log10(x)", "0.4342944819032518 / x"),
    Row("log1p", "log1p(x)", "1 / (1 + x)"),
    Row("sin", "sin(x)", "cos(x)"),
    Row("cos", "cos(x)", "-sin(x)"),
    Row("tan", "tan(x)", "1 + y * y"),
    Row("arcsin", "arcsin(x)", "1 / sqrt(1 - x * x)"),
    Row("arccos", "arccos(x)", "-1 / sqrt(1 - x * x)"),
    Row("arctan", "arctan(x)", "1 / (1 + x * x)"),
    Row("sinh", "sinh(x)", "cosh(x)"),
    Row("cosh", "cosh(x)", "sinh(x)"),
    Row("tanh", "tanh(x)", "1 - y * y"),
    Row("arcsinh", "arcsinh(x)", "1 / sqrt(x * x + 1)"),
    Row("arccosh", "arccosh(x)", "1 / sqrt(x * x - 1)"),
    Row("arctanh", "arctanh(x)", "1 / (1 - x * x)"),
    Row("add", "a + b", "1", "1"),
    Row("subtract", "a - b", "1", "-1"),
    Row("multiply", "a * b", "b", "a"),
    Row("divide", "a / b", "1 / b", "-y / b"),
    Row("power", "power(a, b)", "b * power(a, b - 1)", "log(where(a == 0, 1, a)) * y"),  # 0 ** b: 0
    Row("maximum", "maximum(a, b)", "0.5 + 0.5 * sign(a - b)", "0.5 - 0.5 * sign(a - b)"),
    Row("minimum", "minimum(a, b)", "0.5 - 0.5 * sign(a - b)", "0.5 + 0.5 * sign(a - b)"),
    Row("arctan2", "arctan2(a, b)", "b / (a * a + b * b)", "-a / (a * a + b * b)"),
    Row("hypot", "hypot(a, b)", "a / y", "b / y"),
    Row("remainder", "remainder(a, b)", "1", "-floor(a / b)"),
]

# ---------------------------------------------------------------- non-differentiable rows
# Their derivative is zero (or undefined): under a transform they drop to the value below.
NONDIFF = [
    Row("sign", "sign(x)", arity=1), Row("floor", "floor(x)", arity=1),
    Row("ceil", "ceil(x)", arity=1), Row("round", "round(x)", arity=1),
    Row("isnan", "isnan(x)", arity=1), Row("isinf", "isinf(x)", arity=1),
    Row("isfinite", "isfinite(x)", arity=1), Row("logical_not", "logical_not(x)", arity=1),
    Row("equal", "equal(a, b)", arity=2), Row("not_equal", "not_equal(a, b)", arity=2),
    Row("less", "less(a, b)", arity=2), Row("less_equal", "less_equal(a, b)", arity=2),
    Row("greater", "greater(a, b)", arity=2), Row("greater_equal", "greater_equal(a, b)", arity=2),
    Row("logical_and", "logical_and(a, b)", arity=2), Row("logical_or", "logical_or(a, b)", arity=2),
    Row("logical_xor", "logical_xor(a, b)", arity=2), Row("floor_divide", "floor_divide(a, b)", arity=2),
]

ROWS = {r.name: r for r in DIFFERENTIABLE + NONDIFF}


class Ops:
    """The handful of array operations the generic bundle rules need, over one namespace:
    a backend module (raw arrays, the fast path) or gpuad's primitives (traced values)."""

    def __init__(self, namespace, multiply, add, negative, reshape, broadcast_to):
        self.namespace = namespace
        self.multiply, self.add, self.negative = multiply, add, negative
        self.reshape, self.broadcast_to = reshape, broadcast_to
        self._fns = {}

    def fn(self, row, i=None):
        """The compiled primal (i None) or i-th partial of a row over this namespace."""
        key = (row.name, i)
        f = self._fns.get(key)
        if f is None:
            expr, args = (row.primal, row.args) if i is None else (row.partials[i], row.args + ("y",))
            f = self._fns[key] = expr.function(args, self.namespace)
        return f

    def pad(self, bundle, ndim):
        """Give a bundle (K, *S) the rank of an output of `ndim` dims: (K, 1, ..., 1, *S)."""
        s = shape(bundle)
        missing = ndim + 1 - len(s)
        return bundle if missing == 0 else self.reshape(bundle, s[:1] + (1,) * missing + s[1:])

    def term(self, row, i, args, y, bundle):
        c = row.partials[i].const
        if c == 1:
            return bundle
        if c == -1:
            return self.negative(bundle)
        return self.multiply(self.fn(row, i)(*_typed(args, y), y), bundle)


def _typed(args, y):
    """Python scalars take the output's dtype, so a float32 rule stays float32 (as in 2.0 ** x)."""
    if not any(isinstance(a, (int, float)) for a in args):
        return args
    make = dtype(y).type
    return [make(a) if isinstance(a, (int, float)) else a for a in args]


def tangent_out(row, primals, tangents, y, ops):
    """dy = sum_i (df/dx_i) dx_i for a bundle of K directions; the partials are computed once."""
    ys = shape(y)
    dy = None
    for i, t in enumerate(tangents):
        if t is not None:
            term = ops.term(row, i, primals, y, ops.pad(t, len(ys)))
            dy = term if dy is None else ops.add(dy, term)
    if shape(dy)[1:] != ys:
        dy = ops.broadcast_to(dy, shape(dy)[:1] + ys)
    return dy


def cotangents_in(row, args, y, ct, needed, ops):
    """ct_i = (df/dx_i) ct for each needed argument; the sweep undoes broadcasting."""
    return [ops.term(row, i, args, y, ct) if need else None for i, need in enumerate(needed)]


def _traced(values):
    for v in values:
        if isinstance(v, Tracer):
            return True
    return False


def _make(row):
    be = backends.current

    def impl(*args):
        return be().ops.fn(row)(*args)

    def jvp(primals, tangents):
        if _traced(primals) or _traced(tangents):
            y = bind(prim, *primals)
            return y, tangent_out(row, primals, tangents, y, TRACED)
        return be().ew_jvp(row, primals, tangents)

    def vjp(ct, args, y, needed):
        if _traced(args) or isinstance(ct, Tracer) or isinstance(y, Tracer):
            return cotangents_in(row, args, y, ct, needed, TRACED)
        return be().ew_vjp(row, args, y, ct, needed)

    def batch(args, batched):
        ndim = max(len(shape(a)) - b for a, b in zip(args, batched))
        if _batch_last(args, batched, ndim):
            return _batch_innermost(prim, args, batched), True
        padded = [TRACED.pad(a, ndim) if b else a for a, b in zip(args, batched)]
        return bind(prim, *padded), True

    prim = Primitive(row.name, impl, jvp, vjp, batch, nondiff=row.nondiff)
    return prim


# A batch of many small examples (per-sample Jacobians: B x 3 x 3) laid out batch-first leaves
# NumPy's inner loops a few elements long. On raw NumPy arrays the elementwise ops of such a
# batch run with the batch axis innermost instead; the result is a transposed view, and NumPy
# keeps that layout for what is computed from it. CuPy has no inner loops: it keeps batch-first.
SMALL_EXAMPLE, LARGE_BATCH = 16, 256


def _batch_last(args, batched, ndim):
    be = backends.current()
    if not be.batch_innermost or _traced(args):
        return False
    b = next(shape(a)[0] for a, f in zip(args, batched) if f)
    per_example = max(math.prod(shape(a)[f:]) for a, f in zip(args, batched))
    return ndim > 0 and b >= LARGE_BATCH and per_example <= SMALL_EXAMPLE


def _batch_innermost(prim, args, batched):
    xp = backends.current().xp
    moved = [xp.moveaxis(a, 0, -1) if f else (a[..., None] if len(shape(a)) else a)
             for a, f in zip(args, batched)]
    return xp.moveaxis(bind(prim, *moved), -1, 0)


PRIMS = {name: _make(row) for name, row in ROWS.items()}


def _structural():
    from . import structural  # imported late: structural.py imports this module
    return structural


# The bundle rules over gpuad's own primitives, used whenever a value is traced (nesting).
TRACED = Ops(dict(PRIMS, where=lambda c, a, b: _structural().where(c, a, b)),
             PRIMS["multiply"], PRIMS["add"], PRIMS["negative"],
             lambda x, s: _structural().reshape(x, shape=tuple(s)),
             lambda x, s: _structural().broadcast_to(x, shape=tuple(s)))
