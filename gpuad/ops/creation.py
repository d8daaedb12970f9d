"""Arrays made from their indices alone: `eye`, the basis seeds of jacfwd and jacrev.

A primitive without arguments is staged into the program being traced (core.bind), so that
gpuad.jit does not fold a seed, and every slice and product of it, into dense constants the
program holds for its life (an n x n identity and its copies: several times the Jacobian). In
the program a seed is an equation: a fused region makes its elements from the indices, an
unfused replay makes it when it is needed and drops it after its last use.
"""
from ..backends import xp
from ..core import Primitive, ShapeDtypeStruct

eye = Primitive("eye", lambda rows, cols, k, dtype: xp().eye(rows, cols, k, dtype=dtype), nondiff=True,
                abstract=lambda rows, cols, k, dtype: ShapeDtypeStruct((rows, cols), dtype))
eye.pattern = lambda args, out, **params: []  # no argument: depends on nothing
