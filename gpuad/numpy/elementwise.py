"""Elementwise functions of gpuad.numpy: the table's primitives, and a few composed from them."""
import numpy as _onp

from ..core import dtype as _dtype
from ..core import operand
from ..ops.elementwise import PRIMS
from ..ops.elementwise import imag as _imag
from ..ops.elementwise import real as _real
from ..ops.elementwise import where as _where
from ..ops.table import SPECIAL_NAMES

_NUMPY_ROWS = sorted(set(PRIMS) - SPECIAL_NAMES)  # erf, gammaln, ...: gpuad.scipy.special's
globals().update({name: PRIMS[name] for name in _NUMPY_ROWS})

true_divide = PRIMS["divide"]
fabs = PRIMS["abs"]
around = PRIMS["round"]
pow = PRIMS["power"]
mod = PRIMS["remainder"]
i0 = PRIMS["i0"]  # numpy.i0 is scipy.special.i0: the same row


def is_complex(x):
    """Whether x (an array, a traced value, a Python number or a nested list) holds complex values."""
    known = hasattr(x, "dtype") or isinstance(x, (int, float, complex))
    return (_dtype(x) if known else _onp.asarray(x).dtype).kind == "c"


def abs(x):
    """|x| (numpy.abs). Of complex x it is hypot(real x, imag x): its derivative is JAX's,
    Re(conj(x) dx) / |x|, and 0 at 0.

    >>> import gpuad.numpy as gnp
    >>> gnp.abs(gnp.array([-3.0, 3 + 4j]))
    array([3., 5.])
    """
    if is_complex(x):
        return PRIMS["hypot"](_real(x), _imag(x))
    return PRIMS["abs"](x)


absolute = abs


def _ordered(prim, before, after):
    """numpy.maximum or numpy.minimum: the table's row for real values."""
    def pick(a, b):
        if not (is_complex(a) or is_complex(b)):
            return prim(a, b)
        nan_a, nan_b = PRIMS["isnan"](a), PRIMS["isnan"](b)
        either = PRIMS["logical_or"](nan_a, nan_b)
        sa, sb = _where(either, 0.0, a), _where(either, 0.0, b)  # compared without NaN's warnings
        tie = PRIMS["multiply"](0.5, PRIMS["add"](a, b))
        chosen = _where(before(sa, sb), a, _where(after(sa, sb), b, tie))
        return _where(nan_a, a, _where(nan_b, b, chosen))
    pick.__name__ = prim.name
    pick.__doc__ = (f"numpy.{prim.name}. Of complex values NumPy's and JAX's lexicographic order (real "
                    "parts, then imaginary), as a choice between a and b: the derivative is the chosen "
                    "argument's, half each at a tie (as JAX's); a NaN argument is the result, as NumPy's.")
    return pick


maximum = _ordered(PRIMS["maximum"], PRIMS["greater"], PRIMS["less"])
minimum = _ordered(PRIMS["minimum"], PRIMS["less"], PRIMS["greater"])


def where(condition, x, y):
    """Choose x where condition holds, else y (numpy.where with three arguments).

    >>> import gpuad.numpy as gnp
    >>> gnp.where(gnp.arange(3) > 0, 1.0, -1.0)
    array([-1.,  1.,  1.])
    """
    return _where(condition, x, y)


def positive(x):
    return x


def clip(a, a_min=None, a_max=None):
    """Limit values to [a_min, a_max]; the derivative is 1 inside, 0 outside, 1/2 on an edge.
    Complex values are refused, as by JAX (they have no order to clip by)."""
    if any(v is not None and is_complex(v) for v in (a, a_min, a_max)):
        raise TypeError("gpuad.numpy.clip: complex values have no order to clip by (JAX refuses them too); clip "
                        "their real and imaginary parts, or their modulus, instead")
    if a_min is not None:
        a = PRIMS["maximum"](a, a_min)
    if a_max is not None:
        a = PRIMS["minimum"](a, a_max)
    return a


def logaddexp(a, b):
    """log(exp(a) + exp(b)) without overflow."""
    a, b = operand(a), operand(b)
    m = PRIMS["maximum"](a, b)
    return m + PRIMS["log"](PRIMS["exp"](a - m) + PRIMS["exp"](b - m))


def sigmoid(x):
    """1 / (1 + exp(-x)), written with tanh so it neither overflows nor loses precision."""
    return 0.5 * PRIMS["tanh"](0.5 * x) + 0.5


__all__ = _NUMPY_ROWS + ["true_divide", "fabs", "absolute", "around", "pow", "mod", "i0", "where", "positive",
                           "clip", "logaddexp", "sigmoid"]
