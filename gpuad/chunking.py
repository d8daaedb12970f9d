"""Chunks of directions: how many one sweep carries, and the memory estimate that decides it.

A sweep with k directions holds a bundle (k, *S) for values of the function. Its peak is
estimated from the shapes of a recording's values, before the sweep allocates anything:

    peak(k) = held + n * result + k * per_direction     (no n * result when k = n: one sweep)

`result` is one direction's share of the Jacobian, which chunks fill one array per leaf;
`held` what a backward sweep holds for any k: the carries stored by the loops on the tape
(gpuad.lax: a scan's steps x its carry).
Per direction, the estimate follows the sweep through the tape: the seeds and the bundles
swept out (inputs and outputs) are held throughout, any other value's bundle from the
equation that makes it to the last one that uses it (a forward sweep drops it there; a
backward sweep meets the same span in reverse), and the equation at hand makes TEMPORARIES
bundles of its largest value on the way (mul's JVP, t * b + a * s, holds three). Measured
with tracemalloc on NumPy, the real peak stays below the estimate (docs/memory.md); a
forward run (jacfwd) holds a value longer where Python keeps a reference to it.

chunk_size="auto" keeps a chunk's working set (k * per_direction) within CHUNK_SHARE of the
Jacobian, or CHUNK_FLOOR where that is more, so that the peak stays near the Jacobian itself:
one sweep of n directions can hold several times it (every intermediate's bundle). The
Jacobian and the chunk fit in AUTO_SHARE of the available memory, the chunk within the
backend's auto_chunk_bytes and auto_sweep_bytes, where it has them. In a program traced by
gpuad.jit "auto" first traces one sweep and asks the replay's plan of it (replay.peak_bytes):
where that fits in AUTO_SHARE of the available memory it is the sweep (fused, it holds little
beside the Jacobian); else chunks by the available memory and auto_sweep_bytes alone (see
_fit), and the traced sweep is dead code. chunk_size=None raises
MemoryError when the estimate of its one sweep exceeds the available memory. The estimate needs
a recording, and is remembered per input signature, with the size "auto" chose: before a later
sweep whose estimate is at least CHECK_FROM, "auto" reads the available memory again and, where
it has dropped below the estimate, fits the size again. None reads the available memory only for
estimates from CHECK_FROM up; in a function traced by gpuad.jit it checks nothing while tracing:
the compiled program checks its own planned buffers before each call (replay.peak_bytes).
jacfwd runs the function without a recording: with None its run is watched, and past
CHECK_FROM bytes of tangents it stops, records the function for the estimate, and starts again
if it fits; small runs never record.

Values under an enclosing transform count what they carry for it (core.held_bytes): inside
jacfwd with K directions a value holds its primal and K tangents.
"""
import numbers
import warnings

import numpy as onp

from . import backends
from .core import Tracer, dtype, held_bytes, results, shape, staging
from .forward import SweepTooLarge
from .ops.indexing import concatenate
from .reverse import last_uses
from .sizes import CHECK_FROM, size_text

TEMPORARIES = 3
AUTO_SHARE = 0.75  # of the available memory: others allocate too, and the estimate is not exact
CHUNK_SHARE = 0.25  # of the Jacobian: "auto" chunks peak near it where one sweep holds several times it
# however small the Jacobian, a chunk may hold this: on a GPU a 64 MiB bundle streams through in
# tens of microseconds, a few launches' time (NumPy's auto_chunk_bytes is far less: the CPU's cache)
CHUNK_FLOOR = 2**30


class Footprint:
    """Bytes per direction of a sweep: its share of the Jacobian, and the estimate of what the
    sweep holds for it (see the module's docstring); and `held`, the bytes it holds whatever
    the number of directions: the carries a backward sweep reads of the loops on the tape."""
    __slots__ = ("result", "estimate", "held")

    def __init__(self, result, estimate, held=0):
        self.result, self.estimate, self.held = result, estimate, held

    @classmethod
    def of(cls, inputs, tape, outputs, by_rows):
        """From a recording: its input values, tape (equations) and output values; by_rows: a
        backward sweep, whose result is the inputs' bundles (a forward one's, the outputs')."""
        ins, outs = sum(map(held_bytes, inputs)), sum(map(held_bytes, outputs))
        held = sum(map(_stored, tape)) if by_rows else 0
        return cls(ins if by_rows else outs, ins + outs + _live_peak(tape), held)

    def peak(self, k, n):
        """Bytes a sweep of k of the n directions holds at its peak, the Jacobian apart when chunked."""
        return self.held + (n * self.result if k < n else 0) + k * self.estimate


def _stored(eq):
    """Bytes an equation of the tape keeps for its backward sweep beside its arguments and value:
    a loop's stored carries (its static part's stored_bytes, gpuad/loops.py)."""
    spec = eq.params.get("spec")
    return spec.stored_bytes(eq.args) if hasattr(spec, "stored_bytes") else 0


def _live_peak(tape):
    """The most bytes the bundles of the tape's values take at once, with the temporaries of the
    equation at hand, each value alive from its equation to its last use."""
    last = last_uses(tape)
    ending, live, peak = {}, 0, 0
    for k, eq in enumerate(tape):
        size = sum(map(held_bytes, results(eq.prim, eq.value)))
        largest = max([size] + [held_bytes(a) for a, i in zip(eq.args, eq.ids) if i is not None])
        live += size
        peak = max(peak, live + TEMPORARIES * largest)
        end = max(last.get(i, k) for i in eq.out_ids)
        ending[end] = ending.get(end, 0) + size
        live -= ending.pop(k, 0)
    return peak


class Chunks:
    """A transform's chunk_size (None, an int or "auto"); per input signature, the estimate and
    the size that fit, remembered so that later calls go straight to it."""

    def __init__(self, chunk_size):
        integer = isinstance(chunk_size, numbers.Integral) and not isinstance(chunk_size, (bool, onp.bool_))
        if not (chunk_size is None or isinstance(chunk_size, str) and chunk_size == "auto" or
                integer and chunk_size >= 1):
            raise ValueError(f'chunk_size must be a positive int, "auto" or None, got {chunk_size!r}')
        chunk_size = int(chunk_size) if integer else chunk_size  # numpy.int64(2) too
        self.chunk_size, self.fitted, self.footprints = chunk_size, {}, {}

    def stacked(self, call, n, sweep, footprint, seeds=None):
        """The bundles of all n directions, one per leaf, directions leading: sweep(lo, hi) returns
        the bundles of directions lo..hi; footprint() estimates the sweep (once per input signature,
        where needed). seeds: for a sweep that can be watched, the bytes per direction of its seeds:
        sweep(lo, hi, budget) stops with SweepTooLarge past budget bytes of tangents, so that
        chunk_size=None can start it without the estimate, and make one only when it turns out
        large. A sweep that runs out of memory is retried with half as many directions, down to
        one, and the smaller size is kept; one warning names it."""
        program = staging()
        if program is not None:
            program.sweeps = True  # a compiled program too large for the memory can point to chunk_size
        if n == 0:
            return sweep(0, 0)
        size, budget = self._size(call, n, footprint, seeds)
        if budget is _PLAN:  # compiled "auto": one sweep where the program's plan of it fits
            part, key = sweep(0, n), call.signature()
            if _plan_fits(part):
                self.fitted[key] = n
                return part
            size, budget = self._auto(call, key, n, footprint), None  # the estimate's chunks
        stacks, lo, first = None, 0, size
        while lo < n:
            hi = min(lo + size, n)
            try:
                part = sweep(lo, hi) if budget is None else sweep(lo, hi, budget)
            except SweepTooLarge:  # not small after all: the estimate decides
                self._check(call, call.signature(), n, footprint)
                budget = None
                continue
            except MemoryError:  # cupy.cuda.memory.OutOfMemoryError is one
                if hi - lo == 1:
                    raise
                size = (hi - lo + 1) // 2
                continue
            stacks = stacks or [_Stack(n) for _ in part]
            for s, b in zip(stacks, part):
                s.put(lo, b)
            part = b = None  # copied into the result: not held through the next sweep
            lo = hi
        if size < first:
            self.fitted[call.signature()] = size
            warnings.warn(f"out of memory sweeping {min(first, n)} directions at once; used chunks of {size} "
                          f"(pass chunk_size={size} to start there)", RuntimeWarning, stacklevel=3)
        return [s.value() for s in stacks]

    def _size(self, call, n, footprint, seeds):
        """(directions a sweep, None or the budget of tangent bytes to watch the first one with)."""
        if isinstance(self.chunk_size, int) and not self.fitted:
            return self.chunk_size, None
        key = call.signature()
        if key in self.fitted:
            return self._remembered(call, key, n), None
        if isinstance(self.chunk_size, int):
            return self.chunk_size, None
        compiled = staging(call.leaves[0]) is not None
        if self.chunk_size is None:
            if compiled:  # gpuad.jit checks the compiled program's own plan instead
                return n, None
            if seeds is not None and key not in self.footprints and n * seeds < CHECK_FROM:
                return n, CHECK_FROM - n * seeds
            self._check(call, key, n, footprint)
            return n, None
        if compiled:
            return n, _PLAN
        return self._auto(call, key, n, footprint), None

    def _auto(self, call, key, n, footprint):
        """The size "auto" fits from the estimate and the available memory (all n where nothing
        says how much there is), remembered."""
        available = backends.current().free_memory()
        self.fitted[key] = n if available is None else _fit(call, self._footprint(key, footprint), n, available)
        return self.fitted[key]

    def _remembered(self, call, key, n):
        """The size that fitted before. "auto" checks it again where its estimate is large enough
        to matter: when the available memory has dropped below what it needs (others took some
        since), the size is fitted again to what is left, never larger than it was."""
        size, fp = self.fitted[key], self.footprints.get(key)
        if self.chunk_size != "auto" or fp is None or fp.peak(size, n) < CHECK_FROM:
            return size
        available = backends.current().free_memory()
        if available is not None and fp.peak(size, n) > AUTO_SHARE * available:
            self.fitted[key] = size = min(size, _fit(call, fp, n, available))
        return size

    def _footprint(self, key, footprint):
        if key not in self.footprints:
            self.footprints[key] = footprint()
        return self.footprints[key]

    def _check(self, call, key, n, footprint):
        """chunk_size=None: MemoryError when the estimate of the one sweep exceeds the available memory."""
        fp = self._footprint(key, footprint)
        if fp.peak(n, n) < CHECK_FROM:
            return  # too small to take a machine down: no need to read the available memory
        available = backends.current().free_memory()
        if available is not None:
            _check(call.name, fp, n, n, available)


def _fit(call, fp, n, available):
    """The most directions whose working set fits within CHUNK_SHARE of the Jacobian (or
    CHUNK_FLOOR), the backend's auto_chunk_bytes and auto_sweep_bytes, the Jacobian and the
    chunk within AUTO_SHARE of the available memory less what any sweep holds. One sweep where that holds no more than
    chunks would. A program traced for gpuad.jit takes the available memory and auto_sweep_bytes
    alone: its replay fuses elementwise chains and drops each value after its last use, so the
    estimate overstates what a chunk holds, and it concatenates its chunks."""
    be = backends.current()
    jac, room = n * fp.result, AUTO_SHARE * available - fp.held
    chunk = be.auto_sweep_bytes or room
    if staging(call.leaves[0]) is None:
        chunk = min(chunk, max(CHUNK_SHARE * jac, CHUNK_FLOOR), be.auto_chunk_bytes or chunk)
    if fp.peak(n, n) - fp.held <= min(room, jac + chunk):
        return n
    k = int(min(room - jac, chunk) // max(fp.estimate, 1))
    if k < 1:
        _check(call.name, fp, n, 1, available)  # raises when not even one direction fits
    return max(1, min(k, n - 1))


_PLAN = "plan"  # _size's answer for a compiled "auto": sweep once, then ask the program's plan


def _plan_fits(part):
    """Whether the replay's planned buffers for the program making this sweep's bundles (traced
    for gpuad.jit, under any transforms) fit in AUTO_SHARE of the available memory: fused, a
    compiled sweep holds little beside its result, far less than the estimate says."""
    values = [v for v in part if staging(v) is not None]
    available = backends.current().free_memory()
    if not values or available is None:
        return True
    return _planned_bytes(values) <= AUTO_SHARE * available


def install_plan_check(planned_bytes):
    """The compiler's side of _plan_fits, installed by gpuad.jit when it is imported: planned_bytes(values)
    is the peak of the buffers the replay plans for the program that makes these values (of a
    program being traced, beneath any transforms). A hook, so that the AD layer imports no compiler."""
    global _planned_bytes
    _planned_bytes = planned_bytes


def _check(name, fp, n, k, available):
    need = fp.peak(k, n)
    if need <= available:
        return
    what = f"a sweep of {k} direction{'s' if k > 1 else ''}" + (f" (of {n})" if k < n else "")
    hint = ('pass chunk_size="auto" (or an int) to sweep fewer directions at a time'
            if k > 1 and fp.peak(1, n) <= available else
            f"the loops store {size_text(fp.held)} of carries for the backward sweep: store fewer with "
            "gpuad.lax.scan(..., checkpoint=...) or gpuad.checkpoint, or use forward mode"
            if fp.held and fp.peak(1, n) - fp.held <= available else
            "the Jacobian itself does not fit: differentiate fewer inputs or outputs at once")
    raise MemoryError(f"{name}: {what} needs about {size_text(need)} (estimated from the shapes of the function's "
                      f"values), but {size_text(available)} of memory is available; {hint}")


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
