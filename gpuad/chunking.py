"""Chunks of directions: how many one sweep carries, and the memory estimate that decides it.

A sweep with k directions holds a bundle (k, *S) for values of the function. Its peak is
estimated from the shapes of the values alone, before the sweep allocates anything:

    peak(k) = n * result + k * per_direction     (only k * per_direction when k = n: one sweep)

`result` is one direction's share of the Jacobian, which chunks fill one array per leaf; a
direction costs, from the values of a recording (inputs, tape, outputs):
- upper: every value's bundle at once, plus TEMPORARIES bundles of the largest value for what
  a rule makes on the way (mul's JVP, t * b + a * s, holds three). chunk_size="auto" fits
  this in AUTO_SHARE of the available memory.
- lower: the seeds and the bundles swept out (outputs forward, inputs backward), which every
  sweep holds at its end (jacfwd, which runs the function without recording it, knows only
  its seeds beforehand). chunk_size=None raises MemoryError when even this exceeds the
  available memory: a sweep that must fail is not started. Below CHECK_FROM nothing is
  checked, so that small calls do not pay for reading the available memory.
Values under an enclosing transform count what they carry for it (held_bytes): inside
jacfwd with K directions a value holds its primal and K tangents.
"""
import math
import warnings

from . import backends
from .batching import BatchTracer
from .core import Tracer, dtype, shape
from .forward import JVPTracer
from .ops.indexing import concatenate
from .reverse import RevTracer

TEMPORARIES = 3
AUTO_SHARE = 0.75  # of the available memory: others allocate too, and the estimate is not exact
CHECK_FROM = 64 * 2**20  # chunk_size=None checks sweeps whose lower estimate is at least this


def held_bytes(x):
    """Bytes x holds, with its payloads for the transforms it is under.

    >>> import numpy
    >>> held_bytes(numpy.zeros(3))
    24
    """
    if isinstance(x, JVPTracer):
        return held_bytes(x.primal) + held_bytes(x.tangent)
    if isinstance(x, (RevTracer, BatchTracer)):
        return held_bytes(x.value)
    return math.prod(shape(x)) * dtype(x).itemsize  # arrays, and values of a program being traced


class Footprint:
    """Bytes of one direction of a sweep: its share of the result, and the lower and upper
    estimates of what the sweep holds for it (see the module's docstring)."""
    __slots__ = ("result", "lower", "upper")

    def __init__(self, result, lower, upper=None):
        self.result, self.lower, self.upper = result, lower, upper

    @classmethod
    def of(cls, inputs, tape, outputs, by_rows):
        """From the values of a recording; by_rows: a backward sweep (its result is the inputs')."""
        ins, outs = sum(map(held_bytes, inputs)), sum(map(held_bytes, outputs))
        held = [held_bytes(v) for v in tape] + [ins, outs]
        return cls(ins if by_rows else outs, ins + outs, sum(held) + TEMPORARIES * max(held))

    def peak(self, k, n, per_direction):
        return (n * self.result if k < n else 0) + k * per_direction


class Chunks:
    """A transform's chunk_size (None, an int or "auto"), and the size that fit, remembered per
    input signature so that later calls go straight to it."""

    def __init__(self, chunk_size):
        if not (chunk_size is None or chunk_size == "auto" or
                isinstance(chunk_size, int) and not isinstance(chunk_size, bool) and chunk_size >= 1):
            raise ValueError(f'chunk_size must be a positive int, "auto" or None, got {chunk_size!r}')
        self.chunk_size, self.fitted = chunk_size, {}

    def stacked(self, call, n, sweep, footprint):
        """The bundles of all n directions, one per leaf, directions leading: sweep(lo, hi) returns
        the bundles of directions lo..hi; footprint() estimates its memory (called only when needed).
        A sweep that runs out of memory is retried with half as many directions, down to one, and
        the smaller size is kept; one warning names it."""
        if n == 0:
            return sweep(0, 0)
        size = first = self._size(call, n, footprint)
        stacks, lo = None, 0
        while lo < n:
            hi = min(lo + size, n)
            try:
                part = sweep(lo, hi)
            except MemoryError:  # cupy.cuda.memory.OutOfMemoryError is one
                if hi - lo == 1:
                    raise
                size = (hi - lo + 1) // 2
                continue
            stacks = stacks or [_Stack(n) for _ in part]
            for s, b in zip(stacks, part):
                s.put(lo, b)
            lo = hi
        if size < first:
            self.fitted[call.signature()] = size
            warnings.warn(f"out of memory sweeping {min(first, n)} directions at once; used chunks of {size} "
                          f"(pass chunk_size={size} to start there)", RuntimeWarning, stacklevel=3)
        return [s.value() for s in stacks]

    def _size(self, call, n, footprint):
        if self.fitted:
            fitted = self.fitted.get(call.signature())
            if fitted:
                return fitted
        if isinstance(self.chunk_size, int):
            return self.chunk_size
        fp = footprint()
        if self.chunk_size is None and fp.peak(n, n, fp.lower) < CHECK_FROM:
            return n  # too small to take a machine down: spare every call the look at free memory
        available = backends.current().free_memory()
        if available is None:  # nothing says how much there is: one sweep
            return n
        if self.chunk_size is None:
            _check(call.name, fp, n, n, available)
            return n
        size = _fit(call.name, fp, n, available)
        self.fitted[call.signature()] = size
        return size


def _fit(name, fp, n, available):
    """The most directions whose upper estimate fits in AUTO_SHARE of the available memory."""
    if fp.peak(n, n, fp.upper) <= AUTO_SHARE * available:
        return n
    k = int((AUTO_SHARE * available - n * fp.result) // max(fp.upper, 1))
    if k < 1:
        _check(name, fp, n, 1, available)  # raises when even the lower estimate does not fit
    return max(1, min(k, n - 1))


def _check(name, fp, n, k, available):
    need = fp.peak(k, n, fp.lower)
    if need <= available:
        return
    what = f"a sweep of {k} direction{'s' if k > 1 else ''}" + (f" (of {n})" if k < n else "")
    hint = ('pass chunk_size="auto" (or an int) to sweep fewer directions at a time'
            if k > 1 and fp.peak(1, n, fp.lower) <= available else
            "the Jacobian itself does not fit: differentiate fewer inputs or outputs at once")
    raise MemoryError(f"{name}: {what} needs at least {_text(need)} (a lower estimate from the shapes of "
                      f"the function's values), but {_text(available)} of memory is available; {hint}")


def _text(b):
    """Bytes in the largest binary unit that keeps them at least 1: 1.5 GiB, 300 MiB."""
    unit = next((u for u in range(4, 0, -1) if b >= 1024**u), 0)
    return f"{b / 1024**unit:.3g} {('B', 'KiB', 'MiB', 'GiB', 'TiB')[unit]}"


class _Stack:
    """One leaf's bundles of all n directions, put chunk by chunk into one array allocated at the
    first chunk: the peak holds the result and one chunk, not the chunks and their concatenation.
    Values of an enclosing transform (tracers) cannot be written in place: they are concatenated."""

    def __init__(self, n):
        self.n, self.array, self.parts = n, None, []

    def put(self, lo, part):
        k = shape(part)[0]
        if k == self.n:  # one sweep: nothing to stack
            self.array = part
        elif isinstance(part, Tracer) or self.parts:
            if self.array is not None:
                self.parts, self.array = [self.array[:lo]], None
            self.parts.append(part)
        else:
            if self.array is None:
                self.array = backends.xp().empty((self.n,) + shape(part)[1:], dtype=dtype(part))
            self.array[lo:lo + k] = part

    def value(self):
        return concatenate(*self.parts, axis=0) if self.parts else self.array
