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


class JVPTrace(Trace):
    __slots__ = ()

    def __init__(self, level):
        self.level = level

    def process(self, prim, args, params):
        primals, tangents = [], []
        for a in args:
            if isinstance(a, JVPTracer) and a._trace is self:
                primals.append(a.primal)
                tangents.append(a.tangent)
            else:
                primals.append(a)
                tangents.append(None)
        if prim.nondiff:
            return prim(*primals, **params)
        out, tangent = prim.jvp(primals, tangents, **params)
        if tangent is None or not is_inexact(out):
            return out
        return JVPTracer(self, out, tangent)

    def unpack(self, x):
        """(primal, tangent bundle or None) of a value seen at this level."""
        if isinstance(x, JVPTracer) and x._trace is self:
            return x.primal, x.tangent
        return x, None
