"""Forward mode: dual numbers whose tangent is a bundle of K directions, shape (K, *S).

`jacfwd` seeds the bundle with all n basis vectors, so one run of the function gives
the whole Jacobian; `jvp` is the same with K = 1.
"""
from .core import Trace, Tracer, held_bytes, is_inexact, refuse_complex


class SweepTooLarge(BaseException):
    """A watched forward run made more tangent bytes than it was allowed (JVPTrace.watch).
    A BaseException, so that no `except Exception` in the user's function stops it."""


class JVPTracer(Tracer):
    __slots__ = ("primal", "tangent")

    def __init__(self, trace, primal, tangent):
        self._trace, self.primal, self.tangent = trace, primal, tangent

    def _inner(self):
        return self.primal

    def _payload(self):
        return self.tangent

    def _held_bytes(self):
        return held_bytes(self.primal) + held_bytes(self.tangent)


class JVPTrace(Trace):
    """watch: None, or the tangent bytes this run may still make before it stops with
    SweepTooLarge (chunk_size=None lets a run go unchecked while it stays small)."""
    __slots__ = ("watch",)

    def __init__(self, level):
        super().__init__(level)
        self.watch = None

    def process(self, prim, args, params):
        primals, tangents = self.split(args)
        if prim.nondiff:
            return prim(*primals, **params)
        if not prim.complex_ready:
            refuse_complex(prim, primals)
        out, tangent = prim.jvp(primals, tangents, **params)
        if prim.multiple_results:
            return tuple(map(self._dual, out, tangent or [None] * len(out)))
        return self._dual(out, tangent)

    def _dual(self, out, tangent):
        """out carrying tangent (None: a zero tangent, then out as it is)."""
        if tangent is None or not is_inexact(out):
            return out
        if self.watch is not None:
            self.watch -= held_bytes(tangent)
            if self.watch < 0:
                raise SweepTooLarge
        return JVPTracer(self, out, tangent)
