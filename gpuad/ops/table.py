"""The elementwise rule table: every elementwise primitive is one row, and the generic rules.

A row gives the primal expression and one partial derivative per argument, written
in the expression language of `expr.py` (unary rows name their argument x, binary
rows a and b; y is the output). From a row come the NumPy/CuPy evaluation, the JVP
and VJP rules on tangent/cotangent bundles (`tangent_out`, `cotangents_in` below, over
any `RuleNamespace`), their differentiable versions used when transforms nest, the vmap
rule, and the CUDA source of the fused kernels.

This module is a leaf: the primitives (ops/elementwise.py), the backends and the kernel
generator all read it, and it imports nothing of gpuad but the expression language.
"""
import numpy

from ..axes import lead_to_rank
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
ELEMENTARY = [
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
    # not 1 / sqrt(x * x - 1): that is the derivative of the principal arccosh for real x > 1 only, and
    # has the wrong sign where Re x < 0 off the real axis (jax.grad(holomorphic=True) there too)
    Row("arccosh", "arccosh(x)", "1 / (sqrt(x - 1) * sqrt(x + 1))"),
    Row("arctanh", "arctanh(x)", "1 / (1 - x * x)"),
    Row("add", "a + b", "1", "1"),
    Row("subtract", "a - b", "1", "-1"),
    Row("multiply", "a * b", "b", "a"),
    Row("divide", "a / b", "1 / b", "-y / b"),
    # d/da: 0 where b == 0 (a ** 0 is constant, also at a == 0), through a base that keeps the
    # unused branch finite, so no inf * 0 reaches a derivative at any order; d/db of 0 ** b: 0
    Row("power", "power(a, b)", "where(b == 0, 0, b * power(where(b == 0, 1, a), b - 1))",
        "log(where(a == 0, 1, a)) * y"),
    Row("maximum", "maximum(a, b)", "0.5 + 0.5 * sign(a - b)", "0.5 - 0.5 * sign(a - b)"),
    Row("minimum", "minimum(a, b)", "0.5 - 0.5 * sign(a - b)", "0.5 + 0.5 * sign(a - b)"),
    Row("arctan2", "arctan2(a, b)", "b / (a * a + b * b)", "-a / (a * a + b * b)"),
    # 0 at the origin (as |z| of complex z, composed from it, in JAX), not 0 / 0
    Row("hypot", "hypot(a, b)", "a / where(y == 0, 1, y)", "b / where(y == 0, 1, y)"),
    Row("remainder", "remainder(a, b)", "1", "-floor(a / b)"),
]

# ---------------------------------------------------------------- special functions
# gpuad.scipy.special exports these (gpuad.numpy only i0, the one NumPy has too). Arrays
# evaluate them with scipy.special or cupyx.scipy.special, kernels with kernels/gpuad_math.cuh.
# Each partial is again a row, so every order is exact: gammaln -> digamma -> polygamma(1, .)
# -> polygamma(2, .) ... The order n of polygamma is an integer: it carries no derivative.
# I1'(x) = I0(x) - I1(x) / x is 1/2 at 0, where the quotient is 0 / 0 and its derivatives cancel
# ever more digits (an n-th one loses about 1/x^(n+1)): below |x| = 0.1 it is its Taylor polynomial
# instead, sum (2k+1) (x/2)^2k / (2 k! (k+1)!) to k = 4 (exact to double there; derivatives of I1
# of every order up to 10 exact at 0). I1e's is the same times exp(-|x|), less sign(x) I1e(x).
_I1_SLOPE_AT_0 = ("(0.5 + x * x * (0.1875 + x * x * (0.013020833333333334 + x * x * (0.0003797743055555556"
                  " + x * x * 6.103515625e-06))))")
# J1'(x) = J0(x) - J1(x) / x likewise, its Taylor polynomial (the same terms, alternating) below |x| = 0.1.
_J1_SLOPE_AT_0 = ("(0.5 - x * x * (0.1875 - x * x * (0.013020833333333334 - x * x * (0.0003797743055555556"
                  " - x * x * 6.103515625e-06))))")
SPECIAL = [
    Row("erf", "erf(x)", "1.1283791670955126 * exp(-x * x)"),      # 2 / sqrt(pi) exp(-x^2)
    Row("erfc", "erfc(x)", "-1.1283791670955126 * exp(-x * x)"),
    Row("erfinv", "erfinv(x)", "0.886226925452758 * exp(y * y)"),   # sqrt(pi) / 2 exp(y^2)
    Row("erfcinv", "erfcinv(x)", "-0.886226925452758 * exp(y * y)"),
    Row("gammaln", "gammaln(x)", "digamma(x)"),
    Row("digamma", "digamma(x)", "polygamma(1, x)"),
    Row("polygamma", "polygamma(a, b)", "0", "polygamma(a + 1, b)"),
    Row("i0", "i0(x)", "i1(x)"),
    Row("i1", "i1(x)", f"where(abs(x) < 0.1, {_I1_SLOPE_AT_0}, i0(x) - y / where(abs(x) < 0.1, 1, x))"),
    Row("i0e", "i0e(x)", "i1e(x) - sign(x) * y"),      # exp(-|x|) I0(x): a kink at 0, sign(0) = 0 there
    Row("i1e", "i1e(x)",
        f"where(abs(x) < 0.1, exp(-abs(x)) * {_I1_SLOPE_AT_0}, i0e(x) - y / where(abs(x) < 0.1, 1, x)) - sign(x) * y"),
    # Bessel functions of the first and second kind: J0' = -J1, J1' = J0 - J1 / x, Y likewise
    # (Y0 and Y1 are real for x > 0 only, -inf at 0); Jn' = (J(n-1) - J(n+1)) / 2, Y likewise, for
    # the integer order n (a fractional one is truncated, as scipy's yn does), which carries no derivative.
    Row("j0", "j0(x)", "-j1(x)"),
    Row("j1", "j1(x)", f"where(abs(x) < 0.1, {_J1_SLOPE_AT_0}, j0(x) - y / where(abs(x) < 0.1, 1, x))"),
    Row("y0", "y0(x)", "-y1(x)"),
    Row("y1", "y1(x)", "y0(x) - y / x"),
    Row("jn", "jn(a, b)", "0", "0.5 * (jn(a - 1, b) - jn(a + 1, b))"),
    Row("yn", "yn(a, b)", "0", "0.5 * (yn(a - 1, b) - yn(a + 1, b))"),
]
SPECIAL_NAMES = frozenset(r.name for r in SPECIAL)
DIFFERENTIABLE = ELEMENTARY + SPECIAL

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

# ---------------------------------------------------------------- complex values
# The other differentiable rows are holomorphic on complex values, and their partials are the
# complex derivatives: a JVP multiplies the tangent by them, a VJP the cotangent (JAX's transpose,
# not the adjoint). These are not (or NumPy defines them on real values only): under a derivative
# transform they refuse complex arguments. gpuad.numpy composes abs and angle of complex values
# from real and imag instead.
REAL_ONLY = frozenset({"abs", "cbrt", "maximum", "minimum", "arctan2", "hypot", "remainder"}) | SPECIAL_NAMES
HOLOMORPHIC = tuple(r for r in DIFFERENTIABLE if r.name not in REAL_ONLY)  # kernels/gpuad_complex.cuh spells them


class RuleNamespace:
    """The array functions a row's rules are evaluated with: a backend's array module (raw
    arrays, the fast path) or gpuad's own primitives (traced values, so rules nest)."""

    def __init__(self, functions, multiply, add, negative, reshape, broadcast_to):
        self.functions = functions
        self.multiply, self.add, self.negative = multiply, add, negative
        self.reshape, self.broadcast_to = reshape, broadcast_to
        self._compiled = {}

    def fn(self, row, i=None):
        """The compiled primal (i None) or i-th partial of a row over this namespace."""
        key = (row.name, i)
        f = self._compiled.get(key)
        if f is None:
            expr, args = (row.primal, row.args) if i is None else (row.partials[i], row.args + ("y",))
            f = self._compiled[key] = expr.function(args, self.functions)
        return f

    def to_rank(self, bundle, ndim):
        """A bundle (K, *S) reshaped to line up with values of `ndim` dims: (K, 1, ..., 1, *S)."""
        s = numpy.shape(bundle)
        target = lead_to_rank(s, ndim)
        return bundle if target == s else self.reshape(bundle, target)

    def term(self, row, i, args, y, bundle):
        """(d y / d arg i) * bundle, skipping the multiply for the constant partials 1 and -1."""
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
    make = y.dtype.type
    return [make(a) if isinstance(a, (int, float)) else a for a in args]


def fit_output(bundle, ys, ns):
    """A bundle broadcast to (K, *ys), the output's shape with the directions in front."""
    full = numpy.shape(bundle)[:1] + tuple(ys)
    return bundle if numpy.shape(bundle) == full else ns.broadcast_to(bundle, full)


def tangent_out(row, primals, tangents, y, ns):
    """dy = sum_i (df/dx_i) dx_i for a bundle of K directions; the partials are computed once."""
    ys = numpy.shape(y)
    dy = None
    for i, t in enumerate(tangents):
        if t is not None:
            term = ns.term(row, i, primals, y, ns.to_rank(t, len(ys)))
            dy = term if dy is None else ns.add(dy, term)
    return fit_output(dy, ys, ns)


def cotangents_in(row, args, y, ct, needed, ns):
    """ct_i = (df/dx_i) ct for each needed argument; the sweep undoes broadcasting."""
    return [ns.term(row, i, args, y, ct) if need else None for i, need in enumerate(needed)]
