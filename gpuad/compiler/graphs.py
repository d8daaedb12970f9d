"""CUDA graphs: a run of a compiled program's steps captured once and launched as one graph.

Fused, a program still launches one kernel per region from Python, each a few microseconds of
host work; where a run of steps launches many kernels over little data, that host work is the
call's time. Such a run is captured with CuPy's stream capture at the second call (the first
loads every kernel) and launched as one CUDA graph after that.

What can be captured: fused regions, adds in place, unfused elementwise primitives (CuPy
ufuncs) and views. CuPy refuses cuBLAS calls during a capture, and cuSOLVER, sorts and reductions
may synchronise or allocate workspaces, so contractions, linear algebra, sorts and sums end a run.

A graph reads and writes fixed addresses: the run's inputs are copied into buffers held with
the graph (constants are read where they are), its other values live in a memory pool of the
graph's own, and what leaves the call (a program output, or a view of one) is copied out; a
value read only by later steps of the same call is passed on as is. So a run is captured only
where the kernels saved outnumber the copies added, and where what the graph holds is small.
"""
import os
import threading
import warnings
from typing import NamedTuple

from ..core import held_bytes
from .ir import Var, dying, view

_HELD = 16 << 20  # the most bytes one graph may hold from call to call
_SAVED = 2  # a run is captured when it saves at least this many host-side launches


def wanted():
    """GPUAD_GRAPHS=off turns the capture off (each step launches from Python at every call)."""
    return os.environ.get("GPUAD_GRAPHS", "on") != "off"


class Run(NamedTuple):
    """steps[start:stop], worth capturing: the Vars it reads from outside, the Vars it makes that are
    read after it, which of those leave the call, and the bytes its graph may hold."""
    start: int
    stop: int
    ins: list
    outs: list
    escaping: list
    held: int


def capturable(step):
    """Whether a step's work is kernels CuPy can capture: nothing synchronises or calls cuBLAS."""
    if step.kind in ("region", "add_into"):
        return True
    return step.kind == "eq" and (view(step.node) or step.node.prim.elementwise)


def _launches(step):
    return 0 if step.kind == "eq" and view(step.node) else 1


def runs(program, steps, staying):
    """The Runs of steps worth capturing; `staying`: the values that never leave a call."""
    found, i = [], 0
    while i < len(steps):
        j = i
        while j < len(steps) and capturable(steps[j]):
            j += 1
        while i < j and not _launches(steps[i]):  # views at either end launch nothing: leave them out
            i += 1
        while j > i and not _launches(steps[j - 1]):
            j -= 1
        if i < j:
            found += _worth(program, steps, i, j, staying)
        i = max(j, i + 1)
    return found


def _worth(program, steps, i, j, staying):
    made = {v for s in steps[i:j] for v in s.outs}
    ins = list(dict.fromkeys(a for s in steps[i:j] for a in s.ins if isinstance(a, Var) and a not in made))
    read_after = [a for s in steps[j:] for a in s.ins] + list(program.outs)
    later = {a for a in read_after if isinstance(a, Var)}
    outs = [v for v in dict.fromkeys(v for s in steps[i:j] for v in s.outs) if v in later]
    escaping = [v not in staying for v in outs]
    saved = sum(map(_launches, steps[i:j])) - 1 - len(ins) - sum(escaping)
    held = sum(map(held_bytes, ins)) + sum(held_bytes(v) for s in steps[i:j] if _launches(s) for v in s.outs)
    return [Run(i, j, ins, outs, escaping, held)] if saved >= _SAVED and held <= _HELD else []


class Graphed:
    """A run of steps as one step: plain at the first call, captured at the second, launched after.

    `be.capture_graph(run, arrays)` captures `run` on arrays of the arrays' shapes and dtypes:
    (launch, static inputs, static outputs). A run that cannot be captured (CuPy raises) runs
    plainly from then on, with a warning."""

    def __init__(self, be, run, escaping):
        self.be, self.run, self.escaping = be, run, escaping
        self.calls, self.captured = 0, None

    def __call__(self, *arrays):
        if self.captured is None:
            self.calls += 1
            if self.calls != 2:  # the first call loads the kernels; a failed capture is not retried
                return self.run(*arrays)
            try:
                self.captured = self.be.capture_graph(self.run, arrays)
            except Exception as e:  # anything the capture refuses: the run stays plain
                warnings.warn(f"gpuad.jit: a run of steps could not be captured as a CUDA graph ({e}); "
                              "it runs step by step", RuntimeWarning, stacklevel=2)
                return self.run(*arrays)
        launch, static_in, static_out = self.captured
        for s, a in zip(static_in, arrays):
            s[...] = a
        launch()
        return [o.copy() if e else o for o, e in zip(static_out, self.escaping)]


def run_function(steps, ins, outs):
    """The steps as one function of the run's inputs, returning its outputs; each value is dropped
    after its last use, so the memory it held serves the values after it (within a capture too:
    the graph keeps the stream's order)."""
    gone = dying(steps, outs)

    def run(*arrays):
        env = dict(zip(ins, arrays))
        for s, dropped in zip(steps, gone):
            result = s.fn(*[a.read(env) for a in s.ins])
            env.update(zip(s.outs, result if s.several else [result]))
            for a in dropped:
                env.pop(a, None)
        return [env[v] for v in outs]
    return run


def in_turn(run, be):
    """run, for programs with graphs: their buffers are shared by every call, so calls from
    several threads take turns, and a call on another stream than the last waits for that one."""
    lock, last = threading.Lock(), []

    def turn(*args):
        with lock:
            stream = be.current_stream()
            if last and last[0].ptr != stream.ptr:
                last[0].synchronize()
            last[:] = [stream]
            return run(*args)
    return turn
