"""Chunks of directions: how many one sweep carries, and the memory estimate that decides it.

A sweep with k directions holds a bundle (k, *S) for values of the function. Its peak is
estimated from the shapes of a recording's values, before the sweep allocates anything:

    peak(k) = n * result + k * per_direction     (only k * per_direction when k = n: one sweep)

`result` is one direction's share of the Jacobian, which chunks fill one array per leaf.
Per direction, the estimate follows the sweep through the tape: the seeds and the bundles
swept out (inputs and outputs) are held throughout, any other value's bundle from the
equation that makes it to the last one that uses it (a forward sweep drops it there; a
backward sweep meets the same span in reverse), and the equation at hand makes TEMPORARIES
bundles of its largest value on the way (mul's JVP, t * b + a * s, holds three). Measured
with tracemalloc on NumPy, the real peak is 0.33-0.75x the estimate (README, "Memory"); a
forward run (jacfwd) holds a value longer where Python keeps a reference to it.

chunk_size="auto" fits the estimate in AUTO_SHARE of the available memory (and within the
backend's auto_sweep_bytes, where it has one); chunk_size=None raises MemoryError when the
estimate of its one sweep exceeds the available memory. The estimate needs a recording (jacfwd,
which runs the function without one, records it on its first call with an input signature) and
is remembered per signature; None reads the available memory only for estimates from
CHECK_FROM up, so that later calls pay a dictionary lookup.
Values under an enclosing transform count what they carry for it (held_bytes): inside jacfwd
with K directions a value holds its primal and K tangents.
"""
import math
import warnings

from . import backends
from .batching import BatchTracer
from .core import Tracer, dtype, shape
from .forward import JVPTracer
from .ops.indexing import concatenate
from .reverse import RevTracer, last_uses

TEMPORARIES = 3
AUTO_SHARE = 0.75  # of the available memory: others allocate too, and the estimate is not exact
CHECK_FROM = 64 * 2**20  # chunk_size=None checks sweeps whose estimate is at least this


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
    """Bytes per direction of a sweep: its share of the Jacobian, and the estimate of what the
    sweep holds for it (see the module's docstring)."""
    __slots__ = ("result", "estimate")

    def __init__(self, result, estimate):
        self.result, self.estimate = result, estimate

    @classmethod
    def of(cls, inputs, tape, outputs, by_rows):
        """From a recording: its input values, tape (equations) and output values; by_rows: a
        backward sweep, whose result is the inputs' bundles (a forward one's, the outputs')."""
        ins, outs = sum(map(held_bytes, inputs)), sum(map(held_bytes, outputs))
        return cls(ins if by_rows else outs, ins + outs + _live_peak(tape))

    def peak(self, k, n):
        """Bytes a sweep of k of the n directions holds at its peak, the Jacobian apart when chunked."""
        return (n * self.result if k < n else 0) + k * self.estimate


def _live_peak(tape):
    """The most bytes the bundles of the tape's values take at once, with the temporaries of the
    equation at hand, each value alive from its equation to its last use."""
    last = last_uses(tape)
    ending, live, peak = {}, 0, 0
    for k, eq in enumerate(tape):
        size = held_bytes(eq.value)
        largest = max([size] + [held_bytes(a) for a, i in zip(eq.args, eq.ids) if i is not None])
        live += size
        peak = max(peak, live + TEMPORARIES * largest)
        end = last.get(eq.out_id, k)
        ending[end] = ending.get(end, 0) + size
        live -= ending.pop(k, 0)
    return peak


class Chunks:
    """A transform's chunk_size (None, an int or "auto"); per input signature, the estimate and
    the size that fit, remembered so that later calls go straight to it."""

    def __init__(self, chunk_size):
        if not (chunk_size is None or chunk_size == "auto" or
                isinstance(chunk_size, int) and not isinstance(chunk_size, bool) and chunk_size >= 1):
            raise ValueError(f'chunk_size must be a positive int, "auto" or None, got {chunk_size!r}')
        self.chunk_size, self.fitted, self.footprints = chunk_size, {}, {}

    def stacked(self, call, n, sweep, footprint):
        """The bundles of all n directions, one per leaf, directions leading: sweep(lo, hi) returns
        the bundles of directions lo..hi; footprint() estimates the sweep (once per input signature,
        where needed). A sweep that runs out of memory is retried with half as many directions,
        down to one, and the smaller size is kept; one warning names it."""
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
        if isinstance(self.chunk_size, int) and not self.fitted:
            return self.chunk_size
        key = call.signature()
        if key in self.fitted:
            return self.fitted[key]
        if isinstance(self.chunk_size, int):
            return self.chunk_size
        fp = self.footprints[key] = self.footprints.get(key) or footprint()
        if self.chunk_size is None and fp.peak(n, n) < CHECK_FROM:
            return n  # too small to take a machine down: no need to read the available memory
        available = backends.current().free_memory()
        if available is None:  # nothing says how much there is: one sweep
            return n
        if self.chunk_size is None:
            _check(call.name, fp, n, n, available)
            return n
        self.fitted[key] = _fit(call.name, fp, n, available)
        return self.fitted[key]


def _fit(name, fp, n, available):
    """The most directions whose estimate fits in AUTO_SHARE of the available memory, the sweep
    itself within the backend's auto_sweep_bytes."""
    room = AUTO_SHARE * available
    if fp.peak(n, n) <= min(room, backends.current().auto_sweep_bytes or room):
        return n
    room -= n * fp.result
    k = int(min(room, backends.current().auto_sweep_bytes or room) // max(fp.estimate, 1))
    if k < 1:
        _check(name, fp, n, 1, available)  # raises when not even one direction fits
    return max(1, min(k, n - 1))


def _check(name, fp, n, k, available):
    need = fp.peak(k, n)
    if need <= available:
        return
    what = f"a sweep of {k} direction{'s' if k > 1 else ''}" + (f" (of {n})" if k < n else "")
    hint = ('pass chunk_size="auto" (or an int) to sweep fewer directions at a time'
            if k > 1 and fp.peak(1, n) <= available else
            "the Jacobian itself does not fit: differentiate fewer inputs or outputs at once")
    raise MemoryError(f"{name}: {what} needs about {_text(need)} (estimated from the shapes of the function's "
                      f"values), but {_text(available)} of memory is available; {hint}")


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
