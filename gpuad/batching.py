"""vmap: a batch tracer holds its value with the batch axis moved to the front.

Keeping the batch axis leading means every primitive's batching rule is its `lead`
form, the same one the derivative bundles use.
"""
from .core import Trace, Tracer, map_results, shape


class BatchTracer(Tracer):
    __slots__ = ("value",)

    def __init__(self, trace, value):
        self._trace, self.value = trace, value

    @property
    def shape(self):
        return shape(self.value)[1:]

    def _inner(self):
        return self.value

    def _payload(self):
        return True  # batched: the value leads with the batch axis

    def __bool__(self):
        raise TypeError(
            "the truth value of a batched value is ambiguous under vmap: each example in the batch "
            "may take a different branch. Use gpuad.numpy.where(cond, a, b) instead of Python if/while.")

    def __array__(self, *a, **k):
        raise TypeError(
            "a batched value cannot become a NumPy array. Inside vmap, index and compute with "
            "gpuad.numpy (gnp.take(W, i), gnp.asarray(W)[i] on CuPy) rather than NumPy arrays.")

    __index__ = __array__

    def __repr__(self):
        return f"BatchTracer(batch of {shape(self.value)[0]}, shape {self.shape})"


class BatchTrace(Trace):
    __slots__ = ()

    def process(self, prim, args, params):
        values, marks = self.split(args)
        out, out_batched = prim.batch(values, [m is not None for m in marks], **params)
        return map_results(prim, lambda o, b: BatchTracer(self, o) if b else o, out, out_batched)
