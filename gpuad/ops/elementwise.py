"""Elementwise primitives: one per row of the rule table (ops/table.py), plus `where` and `astype`.

A row's primitive evaluates the row's primal expression, and applies the table's generic
rules: on traced values over gpuad's own primitives (so rules nest to any order), on raw
arrays through the backend's fused kernel where it has one, else over its array module.
"""
import math

import numpy as onp

from .. import backends
from ..core import (
    SCALARS,
    Primitive,
    ShapeDtypeStruct,
    Tracer,
    bind,
    dtype,
    linear,
    real_dtype,
    result_dtype,
    shape,
    staging,
)
from .expr import Expr
from .shape import broadcast_to, reshape, transpose, with_unit_axes_at
from .table import REAL_ONLY, ROWS, SPECIAL_NAMES, RuleNamespace, cotangents_in, fit_output, tangent_out

_arrays = {}  # array module -> its RuleNamespace


def on_arrays(xp):
    """The rule namespace over a backend's array module (raw arrays: the fast path)."""
    ns = _arrays.get(xp)
    if ns is None:
        functions = dict(vars(xp), **backends.scipy_functions(xp, "special", SPECIAL_NAMES))  # imported at first use
        ns = _arrays[xp] = RuleNamespace(functions, xp.multiply, xp.add, xp.negative, xp.reshape,
                                         xp.broadcast_to)
    return ns


def array_jvp(row, primals, tangents, xp):
    """(y, tangent bundle) of a row on raw arrays by the generic rule: the reference the fused
    kernels are checked against."""
    ns = on_arrays(xp)
    y = xp.asarray(ns.fn(row)(*primals))  # 0-d results stay arrays
    return y, tangent_out(row, primals, tangents, y, ns)


def array_vjp(row, args, y, ct, needed, xp):
    return cotangents_in(row, args, y, ct, needed, on_arrays(xp))


def _traced(values):
    for v in values:
        if isinstance(v, Tracer):
            return True
    return False


def _row_primitive(row):
    def impl(*args):
        return on_arrays(backends.xp()).fn(row)(*args)

    def jvp(primals, tangents):
        if _traced(primals) or _traced(tangents):
            y = bind(prim, *primals)
            return y, tangent_out(row, primals, tangents, y, ON_PRIMITIVES)
        be = backends.current()
        fused = be.fused_jvp(row, primals, tangents)
        return fused if fused is not None else array_jvp(row, primals, tangents, be.xp)

    def vjp(ct, args, y, needed):
        if _traced(args) or isinstance(ct, Tracer) or isinstance(y, Tracer):
            return cotangents_in(row, args, y, ct, needed, ON_PRIMITIVES)
        be = backends.current()
        fused = be.fused_vjp(row, args, y, ct, needed)
        return fused if fused is not None else array_vjp(row, args, y, ct, needed, be.xp)

    def batch(args, batched):
        if _batch_last(args, batched):
            return _batch_innermost(prim, args, batched), True
        return broadcast_batch(prim, args, batched)

    def abstract(*args):
        return ShapeDtypeStruct(onp.broadcast_shapes(*map(shape, args)), _row_dtype(row, args))

    prim = Primitive(row.name, impl, jvp, vjp, batch, nondiff=row.nondiff, abstract=abstract)
    prim.impl_for = lambda xp: on_arrays(xp).fn(row)
    if isinstance(getattr(onp, row.name, None), onp.ufunc):  # the row is NumPy's ufunc (CuPy's too)
        prim.impl_into = lambda xp: getattr(xp, row.name)
    prim.complex_ready = row.nondiff or row.name not in REAL_ONLY
    return prim


_row_dtypes = {}  # (row name, argument dtypes or Python scalar types) -> output dtype


def _row_dtype(row, args):
    """The row's output dtype, found once per input dtypes by evaluating it on 0-d NumPy values
    (Python scalars stay Python scalars: weak, as in NumPy's promotion)."""
    kinds = tuple(type(a) if isinstance(a, SCALARS) else dtype(a) for a in args)
    out = _row_dtypes.get((row.name, kinds))
    if out is None:
        probe = [k(0) if isinstance(k, type) else onp.zeros((), k) for k in kinds]
        with onp.errstate(all="ignore"):
            out = _row_dtypes[row.name, kinds] = onp.asarray(on_arrays(onp).fn(row)(*probe)).dtype
    return out


def broadcast_batch(prim, args, batched):
    """The vmap rule of a broadcasting primitive: batched arguments lead with the batch axis, so
    they get unit axes after it to line up with the others, and broadcasting does the rest."""
    ndim = max(len(shape(a)) - b for a, b in zip(args, batched))
    return prim(*[ON_PRIMITIVES.to_rank(a, ndim) if b else a for a, b in zip(args, batched)]), True


# A batch of many small examples (per-sample Jacobians: B x 3 x 3) laid out batch-first leaves
# NumPy's inner loops a few elements long. On NumPy arrays the elementwise ops of such a batch
# run with the batch axis innermost instead; the result is a transposed view, and NumPy keeps
# that layout for what is computed from it. The same holds for a compiled program replayed on
# NumPy (its values' transposes are views too); under the other transforms each transpose would
# be one more dispatch, so they keep batch-first. CuPy has no inner loops: it keeps batch-first.
SMALL_EXAMPLE, LARGE_BATCH = 16, 256


def _batch_last(args, batched):
    if not backends.current().batch_innermost:
        return False
    if any(isinstance(a, Tracer) and staging(a) is not a._trace for a in args):  # a transform's value, not jit's
        return False
    ndim = max(len(shape(a)) - b for a, b in zip(args, batched))
    b = next(shape(a)[0] for a, f in zip(args, batched) if f)
    per_example = max(math.prod(shape(a)[f:]) for a, f in zip(args, batched))
    return ndim > 0 and b >= LARGE_BATCH and per_example <= SMALL_EXAMPLE


def _batch_innermost(prim, args, batched):
    moved = [_batch_to_last(a) if f else (with_unit_axes_at(a, (len(shape(a)),)) if len(shape(a)) else a)
             for a, f in zip(args, batched)]
    y = prim(*moved)
    n = len(shape(y))
    return transpose(y, perm=(n - 1,) + tuple(range(n - 1)))


def _batch_to_last(a):
    n = len(shape(a))
    return transpose(a, perm=tuple(range(1, n)) + (0,))


PRIMS = {name: _row_primitive(row) for name, row in ROWS.items()}
add, multiply, negative, subtract, divide = (PRIMS[n] for n in ("add", "multiply", "negative", "subtract",
                                                                 "divide"))


# ---------------------------------------------------------------- neutral constants (the compiler's simplify)
SMALL_CONSTANT = 1 << 12  # constants up to this size are looked at; larger ones are never neutral


def constant_equal(x, value):
    """Whether x is a constant (None: a variable) equal to value everywhere; to a float value, a
    float constant of the same sign (0.0 and -0.0 differ, and an integer zero is neither)."""
    if x is None or isinstance(x, Tracer):
        return False
    if not isinstance(x, SCALARS) and getattr(x, "size", SMALL_CONSTANT + 1) > SMALL_CONSTANT:
        return False
    if not isinstance(value, float):
        return bool(onp.all(x == value))
    # NumPy's functions dispatch to the constant's own library: a CuPy constant stays on its device
    # (numpy.asarray of it raises)
    negative = math.copysign(1.0, value) < 0
    return dtype(x).kind == "f" and bool(onp.all((x == value) & (onp.signbit(x) == negative)))


def _neutral(positions, value):
    """The `unchanged` rule of x * 1, 1 * x, x + 0, ...: the other argument where one at `positions`
    is the constant `value`."""
    return lambda constants, **params: next((1 - k for k in positions if constant_equal(constants[k], value)), None)


# A float zero is neutral with its own sign only: x + 0.0 and x - (-0.0) are +0.0 where x is -0.0.
for _name, (_positions, _value) in {"multiply": ((0, 1), 1), "add": ((0, 1), -0.0), "subtract": ((1,), 0.0),
                                    "divide": ((1,), 1), "power": ((1,), 1)}.items():
    PRIMS[_name].unchanged = _neutral(_positions, _value)


# ---------------------------------------------------------------- where
# Not a table row: its condition carries no derivative, and its rule selects a tangent where a
# row's multiplies one by a partial (where(c, 1, 0) * t would be two passes where one does).
def _where_jvp(primals, tangents):
    c, a, b = primals
    _, ta, tb = tangents
    zero = backends.xp().zeros((), dtype=(ta if ta is not None else tb).dtype)
    y = where(c, a, b)
    ys = shape(y)
    t = where(c, ON_PRIMITIVES.to_rank(ta, len(ys)) if ta is not None else zero,
              ON_PRIMITIVES.to_rank(tb, len(ys)) if tb is not None else zero)
    return y, fit_output(t, ys, ON_PRIMITIVES)


def _where_vjp(ct, args, out, needed):
    c = args[0]
    zero = backends.xp().zeros((), dtype=ct.dtype)
    return [None, where(c, ct, zero) if needed[1] else None, where(c, zero, ct) if needed[2] else None]


where = Primitive("where", lambda c, a, b: backends.xp().where(c, a, b), _where_jvp, _where_vjp,
                  lambda args, batched: broadcast_batch(where, args, batched),
                  abstract=lambda c, a, b: ShapeDtypeStruct(onp.broadcast_shapes(shape(c), shape(a), shape(b)),
                                                            result_dtype(a, b)))
where.complex_ready = True
# a condition that is a constant True or False picks its branch
where.unchanged = lambda constants: 1 if constant_equal(constants[0], True) else \
    2 if constant_equal(constants[0], False) else None


# ---------------------------------------------------------------- real, imag, conj
# R-linear maps of complex values. Each VJP is the transpose (JAX's convention, not the adjoint):
# real's takes c to c + 0j, imag's to -1j c, conj's is conj. Under vmap and on bundles they apply
# elementwise as they are.
def _parts_dtype(x):
    return ShapeDtypeStruct(shape(x), real_dtype(dtype(x)))


def _complex_of(ct):
    return astype(ct, dtype=onp.result_type(dtype(ct), onp.complex64))


real = linear("real", lambda x: backends.xp().real(x), lambda t: real(t), lambda ct, xs: _complex_of(ct),
              _parts_dtype)
imag = linear("imag", lambda x: backends.xp().imag(x), lambda t: imag(t),
              lambda ct, xs: multiply(_complex_of(ct), -1j), _parts_dtype)
conj = linear("conj", lambda x: backends.xp().conj(x), lambda t: conj(t), lambda ct, xs: conj(ct),
              lambda x: ShapeDtypeStruct(shape(x), dtype(x)))


def conj_if_complex(x):
    """conj(x) of complex values; real values as they are (no copy, no step)."""
    return conj(x) if dtype(x).kind == "c" else x


def squared_modulus(x):
    """|x|^2, real: re^2 + im^2 of complex values (not a modulus, rounded by its root, squared
    again), x * x of real ones."""
    if dtype(x).kind != "c":
        return multiply(x, x)
    re, im = real(x), imag(x)
    return add(multiply(re, re), multiply(im, im))


# ---------------------------------------------------------------- astype
def _cast(x, to):
    """x as dtype `to`; complex to real keeps the real part (NumPy's cast, without its warning)."""
    if dtype(x).kind == "c" and onp.dtype(to).kind != "c":
        x = real(x)
    return astype(x, dtype=to)


def _astype_jvp(primals, tangents, dtype):
    y = astype(primals[0], dtype=dtype)
    return y, (_cast(tangents[0], dtype) if onp.dtype(dtype).kind in "fc" else None)


astype = Primitive(
    "astype", lambda x, dtype: x.astype(dtype), _astype_jvp,
    lambda ct, args, out, needed, dtype: [_cast(ct, args[0].dtype)],
    lambda args, batched, dtype: (astype(args[0], dtype=dtype), True),
    abstract=lambda x, dtype: ShapeDtypeStruct(shape(x), dtype))
astype.complex_ready = True
astype.unchanged = lambda constants, dtype: 0  # where the dtype is the same


# The table's rules over gpuad's own primitives, used whenever a value is traced (nesting).
ON_PRIMITIVES = RuleNamespace(dict(PRIMS, where=where), multiply, add, negative,
                              lambda x, s: reshape(x, shape=tuple(s)),
                              lambda x, s: broadcast_to(x, shape=tuple(s)))


# ---------------------------------------------------------------- sparsity patterns
from . import patterns  # noqa: E402  (here with the rules it serves)

for _prim in PRIMS.values():
    _prim.pattern = patterns.none if _prim.nondiff else patterns.elementwise
multiply.pattern = patterns.product  # a constant factor's zeros cut the dependence
where.pattern = patterns.select
astype.pattern = patterns.cast
for _prim in (real, imag, conj):
    _prim.pattern = patterns.elementwise


# ---------------------------------------------------------------- compiler rules (gpuad/compiler/)
def _row_expression(row):
    """A row's C expression over its operands' expressions, or None where the kernels have no
    spelling for one of its functions."""
    try:
        row.primal.cuda()
    except ValueError:
        return None

    def expression(operands, out_dtype, numbers):
        if out_dtype.kind != "b":  # operands of mixed types (float, double) computed in the result's, as NumPy
            operands = [f"T({o})" for o in operands]  # does: pow(float, double) and the templates' T are ambiguous
        return row.primal.cuda(dict(zip(row.args, operands)), dict(zip(row.args, numbers)))
    return expression


for _row, _prim in zip(ROWS.values(), PRIMS.values()):
    _prim.elementwise, _prim.expression = True, _row_expression(_row)
where.elementwise = astype.elementwise = True


def _part_expression(prim):
    """real, imag, conj over their operand as it is (a cast to the result's T would drop parts):
    gpuad_real, ... (kernels/gpuad_complex.cuh)."""
    spelled = Expr(f"{prim.name}(x)")
    return lambda operands, out_dtype, numbers: spelled.cuda({"x": operands[0]})


for _prim in (real, imag, conj):
    _prim.elementwise, _prim.expression = True, _part_expression(_prim)
real.view = imag.view = lambda: True  # the parts of a complex array, or a real array itself
where.expression = lambda operands, out_dtype, numbers: f"({operands[0]} ? T({operands[1]}) : T({operands[2]}))"
astype.expression = lambda operands, out_dtype, numbers: f"T({operands[0]})"
for _prim in (add, subtract, multiply, negative, PRIMS["square"], where, astype):
    _prim.recompute = "cheap"
multiply.zero_where = "any"
add.zero_where = subtract.zero_where = "all"
divide.zero_where = negative.zero_where = astype.zero_where = "first"
where.zero_where = "selected"
# comparisons False where both operands are zero (0 != 0, 0 < 0, 0 > 0): zero where both are, as an add
# (compiler/structure.py: where(x != 0, y, 0) is zero where x is); ==, <=, >= hold there: no rule
for _name in ("not_equal", "less", "greater"):
    PRIMS[_name].zero_where = "all"
