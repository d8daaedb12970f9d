"""Forward mode: dual numbers whose tangent is a bundle of K directions, shape (K, *S).

`jacfwd` seeds the bundle with all n basis vectors, so one run of the function gives
the whole Jacobian; `jvp` is the same with K = 1.
"""
from .core import Trace, Tracer, is_inexact


class JVPTracer(Tracer):
    __slots__ = ("primal", "tangent")

    def __init__(self, trace, primal, tangent):
        self._trace, self.primal, self.tangent = trace, primal, tangent

    def _inner(self):
        return self.primal

    def _payload(self):
        return self.tangent


class JVPTrace(Trace):
    __slots__ = ()

    def process(self, prim, args, params):
        primals, tangents = self.split(args)
        if prim.nondiff:
            return prim(*primals, **params)
        out, tangent = prim.jvp(primals, tangents, **params)
        if tangent is None or not is_inexact(out):
            return out
        return JVPTracer(self, out, tangent)
