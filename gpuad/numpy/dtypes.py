"""gpuad.numpy's scalar types: NumPy's, also usable as casts of traced values (as jnp.float32(x)).

Each stands for its NumPy type wherever a dtype is expected (dtype=gnp.float32, x.astype(...),
comparisons with a dtype), and called on a traced value it casts it: a float cast keeps the
derivative, an integer or boolean cast drops it, as JAX's do.
"""
import numpy as onp

from ..core import Tracer
from ..ops.elementwise import astype


class ScalarType:
    """A NumPy scalar type that also casts traced values."""
    __slots__ = ("type", "dtype")

    def __init__(self, scalar_type):
        self.type, self.dtype = scalar_type, onp.dtype(scalar_type)

    def __call__(self, x):
        """x cast to this type: traced values by the astype primitive, others by NumPy.

        >>> import gpuad
        >>> gpuad.grad(lambda x: float32(x) * 2)(float64(3.0).astype("float32"))
        array(2., dtype=float32)
        """
        if isinstance(x, Tracer):
            return x if x.dtype == self.dtype else astype(x, dtype=self.dtype)
        return self.type(x)

    def __eq__(self, other):
        return other is self.type or (isinstance(other, ScalarType) and other.type is self.type) or \
            (isinstance(other, onp.dtype) and other == self.dtype)

    def __hash__(self):
        return hash(self.type)

    def __repr__(self):
        return f"gpuad.numpy.{self.type.__name__}"


float16, float32, float64 = ScalarType(onp.float16), ScalarType(onp.float32), ScalarType(onp.float64)
int8, int16, int32, int64 = (ScalarType(t) for t in (onp.int8, onp.int16, onp.int32, onp.int64))
uint8, bool_ = ScalarType(onp.uint8), ScalarType(onp.bool_)
complex64, complex128 = ScalarType(onp.complex64), ScalarType(onp.complex128)
