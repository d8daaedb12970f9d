"""Binomial checkpointing: reverse mode through a loop of n steps holding s carries, not n.

The backward sweep of a loop reads the carry entering each step, last step first. Storing them all
takes n carries; Griewank's binomial schedule (revolve) holds s of them and recomputes the others
from the nearest one held, with the fewest forward steps any schedule with s carries can take:
t n - C(s + t, t - 1) for the t with C(s + t - 1, t - 1) < n <= C(s + t, t) (each step is run at
most t times more; Griewank & Walther, ACM TOMS 26(1), 2000). With s = 50, 1,000 steps take
t = 2: about two more forward runs.

`revolve_p` is the loop that runs it: a forward recurrence c[i+1] = fwd(c[i], x[i]) and a
backward one (b[i], y[i]) = bwd(b[i+1], c[i], x[i], z[i]) from b[n], returning b[0] and the
stacked y. That is what a scan's VJP computes (b: the cotangents of the carries and the
accumulated ones of the constants; y: those of the scanned slices), and what a while loop's is
with its trip count as an operand known only when the loop runs. Its rules make new fwd and bwd
bodies and bind it again (JVP: both carry tangents; vmap: both batched), so the schedule holds
under hessian and vmap; its own VJP (reverse over reverse) is that of the scans it stands for,
every carry stored.
"""
import functools
import math

from . import backends
from . import numpy as gnp
from .compiler.program import Program
from .core import Primitive, ShapeDtypeStruct, held_bytes, shape
from .loops import (
    Scan,
    _batched_avals,
    _present,
    _vmapped,
    bind_scan,
    compiled,
    in_avals,
    inexact,
    jvp_body,
    pack,
    packed_aval,
    packed_places,
    retrace,
    unpack,
    vjp_of,
    zeros,
)

SHARE = 0.25  # of the available memory: what "auto" lets a loop's stored carries take


# ---------------------------------------------------------------- the schedule
def _reps(n, s):
    """The fewest repetitions t with C(s + t, t) >= n: n steps reversed holding s carries run
    each step at most t times more."""
    t = 0
    while _beta(s, t) < n:
        t += 1
    return t


def forward_steps(n, s):
    """Forward steps the binomial schedule runs to reverse n steps holding s carries (the first
    carry one of them); s = 1 recomputes each carry from the first.

    >>> forward_steps(1000, 50), forward_steps(1000, 1000), forward_steps(4, 1)
    (1948, 999, 6)
    """
    if n <= 1:
        return 0
    if s == 1:
        return n * (n - 1) // 2
    t = _reps(n, s)
    return t * n - _beta(s + 1, t - 1)


def _beta(s, t):
    """C(s + t, t): the most steps s carries reverse running each at most t times more."""
    return math.comb(s + t, t) if t >= 0 else 0


@functools.lru_cache(maxsize=65536)
def split(n, s):
    """Steps to run ahead before storing a carry when n steps are reversed holding s carries: the
    m whose m + forward_steps(n - m, s - 1) + forward_steps(m, s) is least. Holding a carry per
    step (s >= n), the next step. Where the steps left need t repetitions with s - 1 carries and
    the m run ahead t - 1 with s, moving m changes nothing (the slopes, t and 1 + t - 1, cancel):
    the least such m; else the least m where the cost, convex in m, stops falling."""
    if s >= n:
        return 1

    def cost(m):
        return m + forward_steps(n - m, s - 1) + forward_steps(m, s)
    t = _reps(n, s)
    m = max(_beta(s, t - 2) + 1, n - _beta(s - 1, t), 1)
    if m < n and cost(m) == forward_steps(n, s):
        return m
    lo, hi = 1, n - 1
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if cost(mid + 1) >= cost(mid) else (mid + 1, hi)
    return lo


def reverse(n, slots, advance, back, first):
    """Run the schedule: back(i, carry i) for i from n - 1 down to 0, the carries recomputed by
    advance(carry, p, q) (carry q from carry p) from `first` (carry 0), holding at most `slots`
    of them (the stack; slots >= 1)."""
    held, end = [(0, first)], n
    while end > 0:
        p, c = held[-1]
        free = slots - len(held) + 1  # for the steps p..end - 1, the one holding carry p included
        if end - p == 1:
            back(p, c)
            held.pop()
            end = p
        elif free == 1:
            back(end - 1, advance(c, p, end - 1))
            end -= 1
        else:
            m = split(end - p, free)
            held.append((p + m, advance(c, p, p + m)))


def slots(checkpoint, n, carry_bytes):
    """The carries reverse mode through n steps holds for `checkpoint` (None, an int >= 1 or
    "auto"), None where it stores them all: an int at least n, or "auto" where n carries fit in
    SHARE of the available memory (n None: a trip count known only when the loop runs)."""
    if checkpoint is None:
        return None
    if checkpoint == "auto":
        available = backends.current().free_memory()
        if available is None or not carry_bytes:
            return None if n is not None else 2 ** 62
        fit = max(1, int(SHARE * available // carry_bytes))
        return None if n is not None and fit >= n else fit
    return None if n is not None and checkpoint >= n else checkpoint


def check(checkpoint, what):
    if not (checkpoint is None or checkpoint == "auto" or
            isinstance(checkpoint, int) and not isinstance(checkpoint, bool) and checkpoint >= 1):
        raise ValueError(f'{what}: checkpoint must be None (store every carry), a positive int (the carries to '
                         f'store: binomial checkpointing) or "auto" (from the available memory), got {checkpoint!r}')
    return checkpoint


def carry_bytes(carries):
    return sum(map(held_bytes, carries))


# ---------------------------------------------------------------- the loop
class Revolve:
    """The static part of revolve_p: fwd (inputs: constants, carries, slices of xs; outputs: the
    carries) and bwd (inputs: the constants, backward carries, carries, slices of xs and of zs;
    outputs: the backward carries, then one slice of each stacked output), the step count
    (`length`; None: an int operand last), the direction and the carries held.
    Operands: constants, initial carries, xs, backward carries b[n], zs (then the count)."""

    def __init__(self, fwd, bwd, n_consts, n_carry, n_back, length, reverse, slots, name):
        self.fwd, self.bwd, self.n_consts, self.n_carry, self.n_back = fwd, bwd, n_consts, n_carry, n_back
        self.length, self.reverse, self.slots, self.name = length, reverse, slots, name
        self.n_xs = len(fwd.ins) - n_consts - n_carry
        self.out_avals = self.unscheduled().out_avals
        self._runners = None

    def __repr__(self):
        return f"{self.name}(length={self.length}, slots={self.slots}{', reverse' if self.reverse else ''})"

    def split(self, args):
        """(constants, carries, xs, backward carries, zs, count or None)."""
        args, count = (list(args), None) if self.length is not None else (list(args[:-1]), args[-1])
        a = self.n_consts
        b, c = a + self.n_carry, a + self.n_carry + self.n_xs
        return args[:a], args[a:b], args[b:c], args[c:c + self.n_back], args[c + self.n_back:], count

    def unscheduled(self):
        """The backward scan this loop stands for, reading every carry stored (its inputs: the
        constants, the backward carries, then the carries, the xs and the zs, stacked)."""
        return Scan(self.bwd, self.n_consts, self.n_back, self.length, not self.reverse, self.name + " backward")

    def per_call(self, cost):
        """What one run costs, by cost(program) of a run of a step: the schedule's forward steps
        and the backward ones (one of each where the count is known only when it runs)."""
        if self.length is None:
            return cost(self.fwd) + cost(self.bwd)
        return forward_steps(self.length, self.slots) * cost(self.fwd) + self.length * cost(self.bwd)

    def run(self, args, fwd, bwd):
        consts, first, xs, b, zs, count = self.split(args)
        n = self.length if count is None else int(backends.current().to_numpy(count))
        flat, places = packed_places(self.out_avals)

        def row(i):
            return n - 1 - i if self.reverse else i

        def advance(c, p, q):
            for i in range(p, q):
                c = list(fwd(consts + c + [x[row(i)] for x in xs]))
            return c

        def back(i, c):
            outs = bwd(consts + b + c + [x[row(i)] for x in xs] + [z[row(i)] for z in zs])
            b[:] = outs[:self.n_back]
            for place, y in zip(places[self.n_back:], outs[self.n_back:]):
                place[row(i)] = y
        reverse(n, max(1, min(self.slots, n)), advance, back, list(first))
        for place, c in zip(places, b):
            place[...] = c
        return flat

    def compiled(self):
        if self._runners is None:
            self._runners = compiled(self.fwd), compiled(self.bwd)
        return self._runners


def _runner(spec, compiled):
    """The loop on arrays: its steps evaluated, or their compiled replays (gpuad.jit)."""
    fwd, bwd = spec.compiled() if compiled else (spec.fwd.evaluate, spec.bwd.evaluate)
    return lambda *args: spec.run(args, fwd, bwd)


def _jvp(primals, tangents, spec):
    """Both recurrences carry their tangent bundles (every inexact carry's, zeros where it starts
    with none; the constants', slices' and zs' where they have one)."""
    if all(t is None for t in tangents):
        return revolve_p(*primals, spec=spec), None
    k = next(shape(t)[0] for t in tangents if t is not None)
    nc, nk, nx, nb = spec.n_consts, spec.n_carry, spec.n_xs, spec.n_back
    consts, first, xs, b, zs, count = spec.split(primals)
    tc, tk, tx, tb, tz, _ = spec.split(list(tangents))
    f_ins, b_ins = in_avals(spec.fwd), in_avals(spec.bwd)
    c_nz, x_nz, z_nz = [t is not None for t in tc], [t is not None for t in tx], [t is not None for t in tz]
    k_nz = [inexact(a) for a in f_ins[nc:nc + nk]]
    b_nz = [inexact(a) for a in b_ins[nc:nc + nb]]
    fwd, _ = jvp_body(spec.fwd, (nc, nk, nx), c_nz + k_nz + x_nz, k, k_nz, f"the JVP of {spec.name}'s steps")
    bwd, y_nz = jvp_body(spec.bwd, (nc, nb, nk, nx, len(zs)), c_nz + b_nz + k_nz + x_nz + z_nz, k, b_nz,
                         f"the JVP of {spec.name}'s backward steps")
    y_nz = y_nz[nb:]
    new = Revolve(fwd, bwd, nc + sum(c_nz), nk + sum(k_nz), nb + sum(b_nz), spec.length, spec.reverse, spec.slots,
                  spec.name)

    def moved(ts):
        return [gnp.moveaxis(t, 0, 1) for t in _present(ts)]
    operands = consts + _present(tc) + first + _filled(tk, k_nz, f_ins[nc:], k) + xs + moved(tx) + \
        b + _filled(tb, b_nz, b_ins[nc:], k) + zs + moved(tz) + ([] if count is None else [count])
    leaves = unpack(revolve_p(*operands, spec=new), new.out_avals)
    outs, tb_out = leaves[:nb], iter(leaves[nb:nb + sum(b_nz)])
    ys, ty = leaves[nb + sum(b_nz):nb + sum(b_nz) + len(y_nz)], iter(leaves[nb + sum(b_nz) + len(y_nz):])
    touts = [next(tb_out) if m else zeros((k,), a) for m, a in zip(b_nz, spec.out_avals)] + \
        [gnp.moveaxis(next(ty), 0, 1) if m else zeros((k,), a) for m, a in zip(y_nz, spec.out_avals[nb:])]
    return pack(outs + ys, spec.out_avals), pack(touts, spec.out_avals, lead=k)


def _filled(ts, mask, avals, k):
    return [zeros((k,), a) if t is None else t for t, a, m in zip(ts, avals, mask) if m]


def _batch(args, batched, spec):
    """Both recurrences batched: the carries (forward and backward) of every example, the
    constants, xs and zs batched where they are; a batched count runs to the largest (a while
    loop's steps hold an example's carry once its condition is false)."""
    b = next(shape(a)[0] for a, m in zip(args, batched) if m)
    nc, nb = spec.n_consts, spec.n_back
    consts, first, xs, back, zs, count = spec.split(args)
    mc, mk, mx, mb, mz, m_count = spec.split(batched)
    first = [x if m else gnp.broadcast_to(x, (b,) + shape(x)) for x, m in zip(first, mk)]
    back = [x if m else gnp.broadcast_to(x, (b,) + shape(x)) for x, m in zip(back, mb)]
    xs = [gnp.moveaxis(x, 0, 1) if m else x for x, m in zip(xs, mx)]
    zs = [gnp.moveaxis(z, 0, 1) if m else z for z, m in zip(zs, mz)]
    c_axes, x_axes, z_axes = ([0 if m else None for m in ms] for ms in (mc, mx, mz))
    f_axes = c_axes + [0] * spec.n_carry + x_axes
    b_axes = c_axes + [0] * nb + [0] * spec.n_carry + x_axes + z_axes

    def batched_body(program, axes, what):
        return retrace(lambda vals: _vmapped(program, vals, axes, b), _batched_avals(in_avals(program), axes, b),
                       f"{spec.name}'s {what} under vmap")
    new = Revolve(batched_body(spec.fwd, f_axes, "steps"), batched_body(spec.bwd, b_axes, "backward steps"), nc,
                  spec.n_carry, nb, spec.length, spec.reverse, spec.slots, spec.name)
    if count is not None and m_count:
        count = gnp.max(count)
    leaves = unpack(revolve_p(*consts, *first, *xs, *back, *zs, *([] if count is None else [count]), spec=new),
                    new.out_avals)
    return pack(leaves[:nb] + [gnp.moveaxis(y, 1, 0) for y in leaves[nb:]], spec.out_avals, lead=b), True


def _vjp(ct, args, out, needed, spec):
    """Reverse over reverse: the VJP of the scans this loop stands for (every carry stored)."""
    if spec.length is None:
        raise NotImplementedError(f"reverse mode through the backward sweep of a {spec.name} whose trip count is "
                                  "known only when it runs (under gpuad.jit, or in another loop's body) is not "
                                  "supported: take the outer derivative in forward mode (gpuad.hessian does)")
    m = shape(ct)[0]
    avals = [ShapeDtypeStruct(shape(a), a.dtype) for a in args]
    program = retrace(lambda vals: _unscheduled(spec, vals), avals, f"{spec.name}, every carry stored")
    wanted = [w and inexact(a) for w, a in zip(needed, avals)]
    _, grads = vjp_of(program, list(args), wanted, unpack(ct, spec.out_avals, lead=m), m)
    return grads


def _unscheduled(spec, vals):
    consts, first, xs, b, zs, _ = spec.split(vals)
    fwd = spec.fwd
    nc, nk = spec.n_consts, spec.n_carry
    forward = Scan(Program(fwd.ins, fwd.equations, fwd.outs + fwd.ins[nc:nc + nk]), nc, nk, spec.length,
                   spec.reverse, spec.name)
    stored = unpack(bind_scan(forward, consts + first + xs), forward.out_avals)[nk:]
    back = spec.unscheduled()
    return unpack(bind_scan(back, consts + b + stored + xs + zs), back.out_avals)


revolve_p = Primitive("revolve", lambda *args, spec: _runner(spec, False)(*args), _jvp, _vjp, _batch,
                      abstract=lambda *args, spec: packed_aval(spec.out_avals))
revolve_p.lower = lambda xp, shapes, spec: _runner(spec, True)


def bound(spec, operands):
    """revolve_p on operands, its output leaves unpacked."""
    return unpack(revolve_p(*operands, spec=spec), spec.out_avals)

