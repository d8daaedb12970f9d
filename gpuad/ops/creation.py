"""Arrays made from their indices alone: `eye`, the basis seeds of jacfwd and jacrev.

A primitive without arguments is staged into the program being traced (core.bind), so that
gpuad.jit does not fold a seed, and every slice and product of it, into dense constants the
program holds for its life (an n x n identity and its copies: several times the Jacobian). In
the program a seed is an equation: a fused region makes its elements from the indices, an
unfused replay makes it when it is needed and drops it after its last use.
"""
import numpy as onp

from ..backends import xp
from ..core import Primitive, ShapeDtypeStruct

eye = Primitive("eye", lambda rows, cols, k, dtype: xp().eye(rows, cols, k, dtype=dtype), nondiff=True,
                abstract=lambda rows, cols, k, dtype: ShapeDtypeStruct((rows, cols), dtype))
eye.pattern = lambda args, out, **params: []  # no argument: depends on nothing


def _eye_entries(rows, cols, k, dtype):
    """The ones of eye(rows, cols, k): (coordinates, values, shape)."""
    lo = max(0, -k)
    at = onp.arange(lo, max(lo, min(rows, cols - k)))
    return (at, at + k), onp.ones(len(at), dtype), (rows, cols)


eye.entries = _eye_entries
eye.recompute = "free"  # index arithmetic alone
