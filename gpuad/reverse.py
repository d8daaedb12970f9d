"""Reverse mode: a tape of equations recorded during one forward run, swept back once.

The sweep carries a cotangent bundle of M directions (shape (M, *S)) per value, so
`jacrev` gets all m rows of a Jacobian from one backward pass over the tape. The tape
is kept, so the same recording can be swept again (chunks) or forward (`linearize`).
"""
from .core import Trace, Tracer, dtype, is_inexact, refuse_complex, results, shape
from .ops.elementwise import add, real
from .ops.shape import unbroadcast


class RevTracer(Tracer):
    __slots__ = ("value", "id")

    def __init__(self, trace, value, id_):
        self._trace, self.value, self.id = trace, value, id_

    def _inner(self):
        return self.value

    def _payload(self):
        return self.id


class Equation:
    """One primitive application on the tape: its argument ids (None for constants), its outputs'
    ids (None for an output not recorded: an integer one), and the argument values and the output
    value (a tuple of them for a primitive with multiple_results) its rules need."""
    __slots__ = ("prim", "ids", "out_ids", "args", "value", "params")

    def __init__(self, prim, ids, out_ids, args, value, params):
        self.prim, self.ids, self.out_ids = prim, ids, out_ids
        self.args, self.value, self.params = args, value, params


class RevTrace(Trace):
    __slots__ = ("tape", "_next")

    def __init__(self, level):
        super().__init__(level)
        self.tape = []
        self._next = 0

    def new_input(self, value):
        """A fresh input variable of this tape."""
        self._next += 1
        return RevTracer(self, value, self._next)

    def process(self, prim, args, params):
        values, ids = self.split(args)
        if not prim.complex_ready:
            refuse_complex(prim, values)
        forward = prim.rev_forward  # a primitive that keeps something for its VJP computes its value itself
        out = prim(*values, **params) if forward is None else forward(values, **params)
        if prim.nondiff:
            return out
        outs = results(prim, out)
        tracers = [self.new_input(o) if is_inexact(o) else o for o in outs]
        out_ids = tuple(t.id if isinstance(t, RevTracer) else None for t in tracers)
        if any(i is not None for i in out_ids):
            self.tape.append(Equation(prim, ids, out_ids, values, out, params))
        return tuple(tracers) if prim.multiple_results else tracers[0]

    def sweep_backward(self, seeds):
        """Sweep the tape back from {id: cotangent bundle}; returns the bundles of all ids reached."""
        ct = dict(seeds)
        for eq in reversed(self.tape):
            g = [ct.pop(i, None) for i in eq.out_ids]
            if all(c is None for c in g):
                continue
            g = tuple(g) if eq.prim.multiple_results else g[0]
            needed = [i is not None for i in eq.ids]
            for i, a, c in zip(eq.ids, eq.args, eq.prim.vjp(g, eq.args, eq.value, needed, **eq.params)):
                if i is None or c is None:
                    continue
                c = fit_cotangent(c, a)
                ct[i] = c if i not in ct else add(ct[i], c)
        return ct

    def sweep_forward(self, tangents, keep):
        """Sweep the tape forward from {input id: tangent bundle}; returns the bundles of the ids in
        keep. Any other tangent is dropped after its last use, as in a forward run, so the sweep holds
        only the live ones."""
        tan, last = dict(tangents), last_uses(self.tape)
        for k, eq in enumerate(self.tape):
            ts = [tan.get(i) if i is not None else None for i in eq.ids]
            if any(t is not None for t in ts):
                _, t = eq.prim.jvp(eq.args, ts, **eq.params)
                for i, tk in zip(eq.out_ids, () if t is None else results(eq.prim, t)):
                    if i is not None and tk is not None:
                        tan[i] = tk
            for i in eq.ids:
                if last.get(i) == k and i not in keep:
                    tan.pop(i, None)
        return {i: tan.get(i) for i in keep}


def fit_cotangent(c, a):
    """A cotangent bundle as its argument's: broadcasting undone, and the real part of a complex
    one for a real argument (the transpose of R -> C, as in JAX). Rules never do either themselves."""
    if shape(c)[1:] != shape(a):
        c = unbroadcast(c, shape(a))
    if dtype(c).kind == "c" and dtype(a).kind != "c":
        c = real(c)
    return c


def last_uses(tape):
    """{id: index of the last equation on the tape that uses it as an argument}."""
    return {i: k for k, eq in enumerate(tape) for i in eq.ids if i is not None}
