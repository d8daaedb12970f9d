"""Elementwise mathematical and logic functions composed from the table's primitives.

Where numpy's function has a special case (sinc at 0, NaN in fmax, x == 0 in copysign), both
branches of a `where` are computed on inputs made safe first, so a derivative never meets a
NaN or an infinity from the branch that is not taken.
"""
import numpy as onp

from ..core import dtype, is_inexact, shape
from ..ops.elementwise import conj as _conj
from ..ops.elementwise import imag as _imag
from ..ops.elementwise import real as _real
from .creation import asarray, zeros_like
from .elementwise import (
    abs,
    arctan2,
    equal,
    is_complex,
    isfinite,
    isnan,
    less,
    less_equal,
    logaddexp,
    logical_and,
    logical_not,
    logical_or,
    maximum,
    minimum,
    multiply,
    not_equal,
    sin,
    where,
)
from .reductions import sum as _sum

_LN2 = onp.log(2.0)


def deg2rad(x):
    """numpy.deg2rad: degrees to radians.

    >>> import gpuad.numpy as gnp
    >>> gnp.deg2rad(gnp.array([180.0]))
    array([3.14159265])
    """
    return multiply(x, onp.pi / 180.0)


def rad2deg(x):
    """numpy.rad2deg: radians to degrees."""
    return multiply(x, 180.0 / onp.pi)


radians, degrees = deg2rad, rad2deg


def sinc(x):
    """numpy.sinc: sin(pi x) / (pi x), 1 at 0, with exact derivatives of every order at 0.

    Near 0 the Taylor series replaces the quotient (it agrees to rounding there), so the
    derivatives there are the series' and never 0 / 0.

    >>> import gpuad, gpuad.numpy as gnp
    >>> gnp.sinc(gnp.array([0.0, 0.5]))
    array([1.        , 0.63661977])
    >>> round(float(gpuad.grad(gpuad.grad(gnp.sinc))(0.0)), 12)  # -pi^2 / 3
    -3.289868133696
    """
    t = multiply(x, onp.pi)
    small = less(abs(t), 1e-3)  # the series' next term, t^6 / 5040, is below 1e-19 here
    safe = where(small, 1.0, t)
    t2 = t * t
    return where(small, 1.0 - t2 / 6.0 + t2 * t2 / 120.0, sin(safe) / safe)


def logaddexp2(a, b):
    """numpy.logaddexp2: log2(2**a + 2**b) without overflow."""
    return logaddexp(multiply(a, _LN2), multiply(b, _LN2)) / _LN2


def _nan_replaced(a, b):
    """(a, b) with a NaN in either replaced by the other operand: fmax/fmin of the pair is then the
    number when one is NaN (NaN when both are), and no derivative passes through a NaN."""
    return where(isnan(a), b, a), where(isnan(b), a, b)


def fmax(a, b):
    """numpy.fmax: elementwise maximum that ignores a NaN operand.

    >>> import gpuad.numpy as gnp
    >>> gnp.fmax(gnp.array([1.0, gnp.nan, gnp.nan]), gnp.array([2.0, 3.0, gnp.nan]))
    array([ 2.,  3., nan])
    """
    return maximum(*_nan_replaced(a, b))


def fmin(a, b):
    """numpy.fmin: elementwise minimum that ignores a NaN operand."""
    return minimum(*_nan_replaced(a, b))


def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    """numpy.nan_to_num: NaN to `nan`, +-inf to `posinf`/`neginf` (default: the dtype's extremes)."""
    if not is_inexact(x):
        return x
    big = onp.finfo(dtype(x)).max
    posinf = big if posinf is None else posinf
    neginf = -big if neginf is None else neginf
    return where(isnan(x), nan, where(isfinite(x), x, where(less(x, 0), neginf, posinf)))


def heaviside(x1, x2):
    """numpy.heaviside: 0 for x1 < 0, x2 at 0, 1 for x1 > 0 (NaN stays NaN)."""
    step = where(less(x1, 0), 0.0, where(equal(x1, 0), x2, 1.0))
    return where(isnan(x1), onp.nan, step)


def _signbit(x):
    """numpy.signbit for non-NaN x: -0.0 counts as negative (arctan2(-0.0, -1) is -pi)."""
    return less(arctan2(x, -1.0), 0)


def copysign(x1, x2):
    """numpy.copysign: the magnitude of x1 with the sign of x2 (the sign bit, so -0.0 is negative)."""
    m = abs(x1)
    return where(_signbit(x2), -m, m)


def real(val):
    """numpy.real: the real part (the array itself for real values).

    >>> import gpuad.numpy as gnp
    >>> gnp.real(gnp.array([1 + 2j]))
    array([1.])
    """
    val = asarray(val)
    return _real(val) if is_complex(val) else val


def imag(val):
    """numpy.imag: the imaginary part (zeros for real values)."""
    val = asarray(val)
    return _imag(val) if is_complex(val) else zeros_like(val)


def conjugate(x):
    """numpy.conjugate: the complex conjugate (the array itself for real values)."""
    x = asarray(x)
    return _conj(x) if is_complex(x) else x


conj = conjugate


def angle(z, deg=False):
    """numpy.angle: arctan2(imag z, real z). Of real numbers: 0 for x >= +0.0, pi for x <= -0.0,
    NaN for NaN, with no derivative."""
    z = asarray(z)
    if is_complex(z):
        a = arctan2(_imag(z), _real(z))
    else:
        a = where(isnan(z), onp.nan, where(_signbit(z), onp.pi, 0.0))
    return a * (180.0 / onp.pi) if deg else a


def iscomplexobj(x):
    """numpy.iscomplexobj: whether x has a complex dtype (a Python bool)."""
    return is_complex(x)


def iscomplex(x):
    """numpy.iscomplex: where the imaginary part is not 0 (booleans; all False for real values)."""
    return not_equal(imag(x), 0)


def isreal(x):
    """numpy.isreal: where the imaginary part is 0."""
    return equal(imag(x), 0)


def isrealobj(x):
    """numpy.isrealobj: whether x has no complex dtype."""
    return not is_complex(x)


def real_if_close(a, tol=100):
    """numpy.real_if_close: the real part where every imaginary part is below tol (in machine
    epsilons of a's dtype when tol > 1), else a. The choice reads the values: under vmap it raises."""
    a = asarray(a)
    if not is_complex(a):
        return a
    if tol > 1:
        tol = tol * onp.finfo(dtype(a)).eps
    return _real(a) if bool(_all(less(abs(_imag(a)), tol))) else a


# ---------------------------------------------------------------- comparisons (no derivative)
def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """numpy.isclose: |a - b| <= atol + rtol |b| elementwise; infinities match only themselves.

    >>> import gpuad.numpy as gnp
    >>> gnp.isclose(gnp.array([1.0, gnp.inf, gnp.nan]), gnp.array([1.0 + 1e-9, gnp.inf, gnp.nan]))
    array([ True,  True, False])
    """
    finite = logical_and(isfinite(a), isfinite(b))
    # non-finite pairs: the difference may be NaN (inf - inf); only equality decides for them
    safe_a, safe_b = where(finite, a, 0.0), where(finite, b, 0.0)
    close = logical_and(finite, less_equal(abs(safe_a - safe_b), atol + rtol * abs(safe_b)))
    close = logical_or(close, equal(a, b))
    if equal_nan:
        close = logical_or(close, logical_and(isnan(a), isnan(b)))
    return close


def _all(mask):
    return equal(_sum(logical_not(mask)), 0)


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """numpy.allclose: a Python bool. Traced values are compared by value (under vmap, where
    each example may differ, use gpuad.numpy.isclose instead).

    >>> import gpuad.numpy as gnp
    >>> gnp.allclose(gnp.array([1.0, 2.0]), gnp.array([1.0, 2.0 + 1e-12]))
    True
    """
    return bool(_all(isclose(a, b, rtol, atol, equal_nan)))


def array_equal(a1, a2, equal_nan=False):
    """numpy.array_equal: True when the shapes match and every element is equal (a Python bool)."""
    if shape(a1) != shape(a2):
        return False
    same = equal(a1, a2)
    if equal_nan:
        same = logical_or(same, logical_and(isnan(a1), isnan(a2)))
    return bool(_all(same))


__all__ = ["deg2rad", "rad2deg", "radians", "degrees", "sinc", "logaddexp2", "fmax", "fmin", "nan_to_num",
           "heaviside", "copysign", "real", "imag", "conj", "conjugate", "angle", "iscomplex", "iscomplexobj", "isreal",
           "isrealobj", "real_if_close", "isclose", "allclose",
           "array_equal"]
