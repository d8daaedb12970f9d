"""Loops and conditionals as primitives holding traced bodies: `scan`, `while_loop`, `cond`.

A body is traced once, abstractly, into a Program (`trace_body`); the values it closes over that
belong to other transforms become extra inputs of the body (its constants), so the transforms see
them as operands of the loop. Each rule of a loop makes a new body by running the old one under a
transform while tracing it, and binds the loop again:
- forward mode carries the tangent bundles (K directions) of the carries, the constants and the
  scanned slices through one loop;
- reverse mode runs the loop once more storing the carry of every iteration (`rev_forward`), then
  one backward loop whose body is the body's VJP for all M cotangents at once (the body is
  recomputed from its stored carry, no tape of its primitives is kept); checkpointing, the same
  backward steps run on carries recomputed from the few held (gpuad/revolve.py); a while loop
  counts its trips and is then differentiated as a scan of that many steps, checkpointed where
  the count is traced (known only when the loop runs) or its carries do not fit;
- vmap makes a batched body; a while loop whose condition differs along the batch runs until every
  example is done, each example's carry held once its condition is false; a cond whose index is
  batched runs every branch and selects.
Every rule binds loops and gpuad.numpy ops, so the rules nest to any order; every loop is bound
through `bind_scan`/`bind_while`, which move its body's loop-invariant work out first (`hoisted`).
Each loop is a primitive of several results (multiple_results): one per output leaf (the carries,
then a scan's stacked outputs), each of its own shape and dtype; a rule returns a tangent (None:
zero) per result and takes a cotangent (None: zero) per result.
"""
import functools
import operator

import numpy as onp

from . import backends, revolve
from . import numpy as gnp
from .api import vmap
from .compiler import loop_kernel
from .compiler.ir import Equation, Lit, Program, Var, nbytes
from .compiler.passes import dead_code, optimised
from .compiler.replay import Replay, fusion_wanted
from .compiler.target import target_of
from .compiler.tracing import ProgramTrace
from .core import Primitive, ShapeDtypeStruct, Tracer, dtype, new_trace, same, shape
from .forward import JVPTrace, JVPTracer
from .reverse import RevTrace, RevTracer


# ---------------------------------------------------------------- bodies
def trace_body(fun, avals, what):
    """Trace fun(list of values) -> list of outputs over avals into a Program whose inputs are the
    values fun closes over that belong to other traces (returned as `consts`), then the avals'.
    Returns (program, consts)."""
    with new_trace(ProgramTrace) as trace:
        inputs = [trace.new_input(a, f"{what}'s input {k} (bodies and branches are traced, as by gpuad.jit)")
                  for k, a in enumerate(avals)]
        outs = [o if isinstance(o, Tracer) else backends.current().asarray(o) for o in fun(inputs)]
    hoisted, consts = {}, []

    def hoist(a):
        """An atom of the body, a value of another trace (a Lit holding a tracer) made an input."""
        if not (isinstance(a, Lit) and a.traced):
            return a
        if id(a.val) not in hoisted:
            hoisted[id(a.val)] = trace.new_input(same(a.val), "a closed-over value").var
            consts.append(a.val)
        return hoisted[id(a.val)]
    equations = [Equation(eq.prim, [hoist(a) for a in eq.ins], eq.outs, eq.params) for eq in trace.equations]
    outs = [hoist(trace.atom(o)) for o in outs]
    return optimised(Program(list(hoisted.values()) + [t.var for t in inputs], equations, outs)), consts


def avals_of(program):
    return [ShapeDtypeStruct(v.shape, v.dtype) for v in program.outs]


def in_avals(program):
    return [ShapeDtypeStruct(v.shape, v.dtype) for v in program.ins]


def inexact(aval):
    return aval.dtype.kind in "fc"


# ---------------------------------------------------------------- loop-invariant code
def hoisted(body, consts):
    """The body's loop-invariant equations bound here, once, on its constants (the first
    len(consts) inputs): eagerly they run once, in a traced program they join it (its passes see
    them), under a transform they are differentiated or batched once. Returns (body, consts): the
    body reading their results as constants, and only the constants it still needs.

    Work on closed-over values alone never enters a body (bind hands it to the values' own
    trace); what is left is work of constants with seeds staged in the body (the `eye` of a
    jacfwd inside it: the Jacobian of a function of constants, made again each trip). Seeds and
    what moves and scales them alone stay where they are used (made from indices, never held);
    they are copied out where hoisted work reads them. An equation whose result is larger than
    what it reads (a broadcast) stays too: the body makes it where it is used."""
    n = len(consts)
    const, seeded, pre, rest = set(body.ins[:n]), set(), [], []
    for eq in body.equations:
        read = {a for a in eq.ins if isinstance(a, Var)}
        if not read <= const | seeded:
            rest.append(eq)
        elif not read & const:
            seeded.update(eq.outs)
            pre.append(eq)
            rest.append(eq)
        elif sum(map(nbytes, eq.outs)) <= sum(map(nbytes, read)):
            const.update(eq.outs)
            pre.append(eq)
        else:
            rest.append(eq)
    if len(rest) == len(body.equations):
        return body, consts
    used = {a for eq in rest for a in eq.ins if isinstance(a, Var)} | {o for o in body.outs if isinstance(o, Var)}
    kept = [v for v in body.ins[:n] if v in used]
    made = [v for eq in pre for v in eq.outs if v in used and v in const]
    values = [c for v, c in zip(body.ins, consts) if v in used] + \
        dead_code(Program(body.ins[:n], pre, made)).evaluate(consts)
    return dead_code(Program(kept + made + body.ins[n:], rest, body.outs)), values


# ---------------------------------------------------------------- constants handed once (passes.shared_operands)
def _once(consts, programs):
    """(the constants each handed once, the programs reading each at its first place) where one is
    handed more than once, else None; each program's first len(consts) inputs are the constants."""
    first, where = {}, []
    for k, a in enumerate(consts):
        where.append(first.setdefault(a if isinstance(a, Var) else id(a.val), k))
    if len(first) == len(consts):
        return None
    kept = sorted(first.values())
    merged = []
    for p in programs:
        to = {p.ins[k]: p.ins[w] for k, w in enumerate(where) if w != k}

        def read(a, to=to):
            return to.get(a, a) if isinstance(a, Var) else a
        merged.append(Program([p.ins[k] for k in kept] + p.ins[len(consts):],
                              [Equation(e.prim, [read(a) for a in e.ins], e.outs, e.params) for e in p.equations],
                              [read(o) for o in p.outs]))
    return [consts[k] for k in kept], merged


def _scan_once(eq):
    spec = eq.params["spec"]
    once = _once(eq.ins[:spec.n_consts], [spec.body])
    if once is None:
        return None
    consts, (body,) = once
    new = Scan(body, len(consts), spec.n_carry, spec.length, spec.reverse, spec.name, spec.checkpoint)
    return Equation(eq.prim, consts + eq.ins[spec.n_consts:], eq.outs, dict(eq.params, spec=new))


def _while_once(eq):
    """The condition's and the body's constants each handed once, and the values both read
    (vmap's loops: the condition's constants are the body's too) noted in `shared`, so that one
    trip computes what both compute of them once (While.stepped)."""
    spec = eq.params["spec"]
    cc, bc, carry = spec.split(eq.ins)
    cond, body = _once(cc, [spec.cond]), _once(bc, [spec.body])
    (cc, (c,)), (bc, (b,)) = cond or (cc, [spec.cond]), body or (bc, [spec.body])
    at = {a if isinstance(a, Var) else id(a.val): j for j, a in enumerate(bc)}
    shared = tuple((k, at[key]) for k, a in enumerate(cc) if (key := a if isinstance(a, Var) else id(a.val)) in at)
    if cond is None and body is None and shared == spec.shared:
        return None
    new = While(c, b, len(cc), len(bc), spec.name, spec.each, shared)
    return Equation(eq.prim, cc + bc + carry, eq.outs, dict(eq.params, spec=new))


def _revolve_once(eq):
    spec = eq.params["spec"]
    once = _once(eq.ins[:spec.n_consts], [spec.fwd, spec.bwd])
    if once is None:
        return None
    consts, (fwd, bwd) = once
    new = Revolve(fwd, bwd, len(consts), spec.n_carry, spec.n_back, spec.length, spec.reverse, spec.slots, spec.name)
    return Equation(eq.prim, consts + eq.ins[spec.n_consts:], eq.outs, dict(eq.params, spec=new))


def bind_scan(spec, operands):
    """scan_p bound on operands with the body's loop-invariant work hoisted out."""
    consts, carry, xs = spec.split(operands)
    body, consts = hoisted(spec.body, consts)
    if body is not spec.body:
        spec = Scan(body, len(consts), spec.n_carry, spec.length, spec.reverse, spec.name, spec.checkpoint)
    return scan_p(*consts, *carry, *xs, spec=spec)


def bind_while(spec, operands):
    """while_p bound on operands with the condition's and the body's loop-invariant work hoisted out."""
    cc, bc, carry = spec.split(operands)
    cond, cc = hoisted(spec.cond, cc)
    body, bc = hoisted(spec.body, bc)
    if cond is not spec.cond or body is not spec.body:
        spec = While(cond, body, len(cc), len(bc), spec.name, spec.each)
    return while_p(*cc, *bc, *carry, spec=spec)


# ---------------------------------------------------------------- a loop's results
def _places(avals):
    """An array of each aval, allocated, for a loop to write its results into in place."""
    xp = backends.current().xp
    return [xp.empty(a.shape, dtype=a.dtype) for a in avals]


def _own(results, operands):
    """The results, a copy of any that is an operand (a loop of no trips returns its carries):
    a compiled program adds into a loop's result in place, which must not write into an operand."""
    return tuple(r.copy() if any(r is a for a in operands) else r for r in results)


def _abstract(*args, spec):
    return tuple(spec.out_avals)


def _directions(cts):
    """The length of the leading (direction) axis of the bundles given (a None: a zero one)."""
    return next(shape(c)[0] for c in cts if c is not None)


def _or_zeros(cts, avals, m):
    """Cotangent (or tangent) bundles of M directions, zeros where a result's is None."""
    return [zeros((m,), a) if c is None else c for c, a in zip(cts, avals)]


def zeros(lead, aval):
    return gnp.zeros(lead + aval.shape, dtype=aval.dtype)


# ---------------------------------------------------------------- running a body under a transform
def jvp_of(program, primals, tangents):
    """program's outputs and their tangent bundles (None: zero) at primals with tangents (None: zero)."""
    with new_trace(JVPTrace) as t:
        outs = program.evaluate([p if d is None else JVPTracer(t, p, d) for p, d in zip(primals, tangents)])
    return [t.lower(o) for o in outs], [o.tangent if isinstance(o, JVPTracer) and o._trace is t else None
                                         for o in outs]


def vjp_of(program, primals, wanted, cts, m):
    """The program's outputs and the cotangent bundles (M directions) of the primals where `wanted`,
    for the output cotangent bundles cts (None: zero): the program recorded on a tape and swept
    back once."""
    with new_trace(RevTrace) as t:
        ins = [t.new_input(p) if w else p for p, w in zip(primals, wanted)]
        outs = program.evaluate(ins)
    seeds = {}
    for o, g in zip(outs, cts):
        if g is not None and isinstance(o, RevTracer) and o._trace is t:
            seeds[o.id] = g if o.id not in seeds else seeds[o.id] + g
    grads = t.sweep_backward(seeds)
    return [t.lower(o) for o in outs], [
        (_like(grads[x.id], bundle(same(p), m)) if grads.get(x.id) is not None else zeros((m,), same(p))) if w
        else None for x, p, w in zip(ins, primals, wanted)]


# ---------------------------------------------------------------- scan
class Scan:
    """A scan's static part: its body (inputs: constants, carries, one slice of each scanned array;
    outputs: carries, then one slice of each stacked output), the counts, length and direction,
    and what reverse mode stores (`checkpoint`: None every carry, an int or "auto" that many,
    gpuad/revolve.py). `kept` holds the stored carries of the last run a tape recorded
    (rev_forward), for its sweep."""

    def __init__(self, body, n_consts, n_carry, length, reverse, name="scan", checkpoint=None):
        self.body, self.n_consts, self.n_carry = body, n_consts, n_carry
        self.length, self.reverse, self.name, self.checkpoint = length, reverse, name, checkpoint
        carries = in_avals(body)[n_consts:n_consts + n_carry]
        ys = avals_of(body)[n_carry:]
        self.out_avals = carries + [ShapeDtypeStruct((length,) + a.shape, a.dtype) for a in ys]
        self.kept = None
        self._stored = self._runner = None
        self.bodies = [body]  # the programs it holds (Program.check verifies them)
        self._kernels = {}

    def __repr__(self):
        return f"{self.name}(length={self.length}{', reverse' if self.reverse else ''})"

    def kernel(self, target):
        """The whole loop rendered as one kernel for a Target (gpuad/compiler/target.py), or None where its
        body cannot run as one (gpuad/compiler/loop_kernel.py)."""
        if target not in self._kernels:
            self._kernels[target] = loop_kernel.plan(self.body, self.n_consts, self.n_carry, self.reverse,
                                                     self.out_avals, target)
        return self._kernels[target]

    def per_call(self, cost):
        """What one run costs, by cost(program) of a run of the body: its length's worth."""
        return self.length * cost(self.body)

    def stored_bytes(self, args):
        """Bytes reverse mode stores for this scan bound on args: the carry entering every step, or
        the carries the checkpoint schedule holds (with what they hold for enclosing transforms)."""
        carry = revolve.carry_bytes(self.split(args)[1])
        return (self.slots(args) or self.length) * carry

    def temporaries(self, args, within):
        """Bytes a compiled run holds beside its operands and output (replay.peak_bytes): the loop
        kernel's scratch, or the body's buffers where the body is replayed per trip (also while the
        kernel builds: the larger of the two)."""
        return _kept_while_running(self, within, [self.body])

    def slots(self, args):
        """The carries reverse mode holds where it checkpoints; None where it stores every one."""
        return revolve.slots(self.checkpoint, self.length, revolve.carry_bytes(self.split(args)[1]))

    def split(self, args):
        nc, nk = self.n_consts, self.n_carry
        return list(args[:nc]), list(args[nc:nc + nk]), list(args[nc + nk:])

    def run(self, args, step):
        """The loop on arrays, step(list) -> list running the body once: its results, the last
        carries and the stacked outputs, each step's outputs written into their places in those
        (no list of them, no copy to stack them)."""
        consts, carry, xs = self.split(args)
        ys = _places(self.out_avals[self.n_carry:])
        for i in range(self.length - 1, -1, -1) if self.reverse else range(self.length):
            made = step(consts + carry + [x[i, ...] for x in xs])
            carry = list(made[:self.n_carry])
            for place, y in zip(ys, made[self.n_carry:]):
                place[i] = y
        return _own(carry, args) + tuple(ys)

    def stored(self):
        """This scan with the carry entering each iteration as extra stacked outputs (what the
        backward loop reads)."""
        if self._stored is None:
            b = self.body
            carries = b.ins[self.n_consts:self.n_consts + self.n_carry]
            self._stored = Scan(Program(b.ins, b.equations, b.outs + carries), self.n_consts, self.n_carry,
                                self.length, self.reverse, self.name)
        return self._stored

    def compiled(self):
        """The body's compiled replay (gpuad.jit replays a loop with it)."""
        if self._runner is None:
            self._runner = compiled(self.body)
        return self._runner


def _carried(avals):
    """Bytes of values given as avals (the operands of a compiled step)."""
    return sum(map(nbytes, avals))


def _kept_while_running(spec, within, bodies):
    """What a loop holds while it runs: its kernel's scratch, or the larger of its bodies' buffers
    where they are replayed per trip (while the kernel builds: unfused; the larger of the two).
    The carry a trip reads is the loop's result in the making: the output the replay counts."""
    def replayed(fusion=None):
        return max(within.peak(b, fusion=fusion) for b in bodies)
    kernel = spec.kernel(within.target) if within.fusion else None
    return replayed() if kernel is None else max(kernel.scratch, replayed(fusion=False))


def _held(args, within, spec):
    return spec.temporaries(args, within)


def _scan_impl(*args, spec):
    return spec.run(list(args), spec.body.evaluate)


def _scan_lower(xp, shapes, spec):
    """The scan's step in a compiled program: the whole loop as one kernel where its body renders
    as one (the body replayed unfused per trip while that kernel builds), else the body's
    compiled replay per trip."""
    kernel = spec.kernel(target_of()) if fusion_wanted() else None
    if kernel is None:
        step = spec.compiled()
        return lambda *args: spec.run(list(args), step)
    one = loop_kernel.runner(kernel, spec.out_avals, spec.length * len(spec.body.equations))
    step = None

    def run(*args):
        nonlocal step
        out = one(args, spec.length)
        if out is None:
            step = step or _unfused(spec.body)
            return spec.run(list(args), step)
        return out
    return run


def _unfused(program):
    run = Replay(program, fusion=False).run
    return lambda vals: run(*vals)


def compiled(program):
    """A body's compiled replay (fused kernels, no dispatch), called on a list of values. The
    kernels read contiguous arrays: a slice of a scanned tangent bundle, a transposed carry, is copied."""
    run = Replay(program).run

    def step(vals):
        return run(*[v if v.flags.c_contiguous else v.copy() for v in vals])
    return step


def retrace(fun, avals, what):
    """A body made by a rule: trace_body of a function closing over no other trace's values."""
    program, consts = trace_body(fun, avals, what)
    assert not consts, "a rule's body closes over a traced value"
    return program


def bundle(aval, lead):
    return ShapeDtypeStruct((lead,) + aval.shape, aval.dtype)


def _like(x, aval):
    return x if dtype(x) == aval.dtype else x.astype(aval.dtype)


def jvp_body(program, sizes, masks, k, forced, what):
    """The JVP of a body whose inputs come in groups of `sizes` (constants, carries, slices): a
    body taking each group's primals then the tangent bundles (K directions) where `masks` says,
    returning its first len(forced) outputs, their tangents where `forced` says (zeros where the
    body makes none), then its other outputs and their tangents where they are not zero. Returns
    (body, mask of the outputs that have a tangent)."""
    ins, out_avals = in_avals(program), avals_of(program)
    avals, pos = [], 0
    for n in sizes:
        avals += ins[pos:pos + n] + [bundle(a, k) for a, m in zip(ins[pos:pos + n], masks[pos:pos + n]) if m]
        pos += n
    nz, nf = [], len(forced)

    def f(vals):
        it, primals, tangents, pos = iter(vals), [], [], 0
        for n in sizes:
            primals += [next(it) for _ in range(n)]
            tangents += [next(it) if m else None for m in masks[pos:pos + n]]
            pos += n
        outs, touts = jvp_of(program, primals, tangents)
        touts = [None if t is None else _like(t, a) for t, a in zip(touts, out_avals)]
        nz[:] = [t is not None for t in touts]
        return outs[:nf] + [zeros((k,), a) if t is None else t for t, a, m in zip(touts, out_avals, forced) if m] + \
            outs[nf:] + [t for t in touts[nf:] if t is not None]
    return retrace(f, avals, what), nz


def _carry_mask(traced, start, nk):
    """The carries whose tangents are not zero (the fixed point of the body from `start`), and the
    JVP body traced with them: (mask, (body, mask of its outputs' tangents))."""
    mask = list(start)
    while True:
        made = traced(mask)
        grown = [a or b for a, b in zip(mask, made[1][:nk])]
        if grown == mask:
            return mask, made
        mask = grown


def _present(xs):
    return [x for x in xs if x is not None]


def _filled(ts, mask, avals, k):
    """Tangent bundles where mask says (zeros where the tangent is None)."""
    return [zeros((k,), a) if t is None else _like(t, bundle(a, k)) for t, a, m in zip(ts, avals, mask) if m]


def _lead(args, batched):
    return next(shape(a)[0] for a, m in zip(args, batched) if m)


def _vmapped(program, vals, axes, b):
    """program's outputs under vmap over the values' axes (0 or None), each leading with the batch."""
    if all(a is None for a in axes):
        return [gnp.broadcast_to(o, (b,) + shape(o)) for o in program.evaluate(list(vals))]
    return list(vmap(lambda *a: program.evaluate(list(a)), in_axes=list(axes))(*vals))


def _batched_avals(avals, axes, b):
    return [bundle(a, b) if x == 0 else a for a, x in zip(avals, axes)]


def _kept(kept, args):
    return kept is not None and len(kept[0]) == len(args) and all(a is b for a, b in zip(kept[0], args))


# ---------------------------------------------------------------- scan's rules
def _scan_jvp(primals, tangents, spec):
    if all(t is None for t in tangents):
        return scan_p(*primals, spec=spec), None
    k = _directions(tangents)
    nc, nk = spec.n_consts, spec.n_carry
    consts, init, xs = spec.split(primals)
    tc, tk, tx = spec.split(tangents)
    ins = in_avals(spec.body)
    c_nz, x_nz = [t is not None for t in tc], [t is not None for t in tx]

    def traced(k_nz):
        return jvp_body(spec.body, (nc, nk, len(xs)), c_nz + k_nz + x_nz, k, k_nz, f"the JVP of {spec.name}'s body")
    k_nz, (body, nz) = _carry_mask(traced, [t is not None and inexact(a) for t, a in zip(tk, ins[nc:])], nk)
    y_nz = nz[nk:]
    new = Scan(body, nc + sum(c_nz), nk + sum(k_nz), spec.length, spec.reverse, spec.name, spec.checkpoint)
    operands = consts + _present(tc) + init + _filled(tk, k_nz, ins[nc:], k) + xs + \
        [gnp.moveaxis(t, 0, 1) for t in _present(tx)]
    leaves = bind_scan(new, operands)
    car, rest = leaves[:nk], leaves[nk:]
    tcar, rest = iter(rest[:sum(k_nz)]), rest[sum(k_nz):]
    ys, tys = rest[:len(y_nz)], iter(rest[len(y_nz):])
    touts = [next(tcar) if m else None for m in k_nz] + [gnp.moveaxis(next(tys), 0, 1) if m else None for m in y_nz]
    return car + ys, tuple(touts)


def _scan_rev_forward(values, spec):
    """The scan where a tape records it: run once storing the carry entering each iteration
    (checkpointing, storing none: the backward sweep recomputes the ones it holds)."""
    if spec.slots(values) is not None:
        spec.kept = None
        return scan_p(*values, spec=spec)
    leaves = scan_p(*values, spec=spec.stored())
    n = len(spec.out_avals)
    spec.kept = (list(values), leaves[n:])
    return leaves[:n]


def _scan_vjp(ct, args, out, needed, spec, count=None):
    """One backward scan over the stored carries: each iteration recomputes the body from its carry
    and sweeps the body's tape back with the M cotangents of its outputs. Checkpointing, or with
    a trip count known only when the loop runs (`count`, a while loop's), the same backward
    steps run on the carries the binomial schedule recomputes (revolve_p)."""
    kept, spec.kept = spec.kept, None  # a later sweep recomputes them: the spec holds no arrays after a sweep
    m = _directions(ct)
    nc, nk = spec.n_consts, spec.n_carry
    consts, init, xs = spec.split(args)
    ins, outs = in_avals(spec.body), avals_of(spec.body)
    c_w = [needed[i] and inexact(a) for i, a in enumerate(ins[:nc])]
    k_w = [inexact(a) for a in ins[nc:nc + nk]]
    x_w = [needed[nc + nk + j] and inexact(a) for j, a in enumerate(ins[nc + nk:])]
    y_w = [inexact(a) and c is not None for a, c in zip(outs[nk:], ct[nk:])]  # a stacked output's zero: no work
    cts = _or_zeros(ct[:nk], spec.out_avals, m) + list(ct[nk:])

    def f(vals):
        it = iter(vals)
        c = [next(it) for _ in range(nc)]
        ctk = [next(it) if w else None for w in k_w]
        acc = [next(it) for w in c_w if w]
        car = [next(it) for _ in range(nk)]
        x = [next(it) for _ in xs]
        cty = [next(it) if w else None for w in y_w]
        _, grads = vjp_of(spec.body, c + car + x, c_w + k_w + x_w, ctk + cty, m)
        return _present(grads[nc:nc + nk]) + [a + g for a, g in zip(acc, _present(grads[:nc]))] + \
            _present(grads[nc + nk:])
    avals = ins[:nc] + [bundle(a, m) for a, w in zip(ins[nc:nc + nk], k_w) if w] + \
        [bundle(a, m) for a, w in zip(ins[:nc], c_w) if w] + ins[nc:] + \
        [bundle(a, m) for a, w in zip(outs[nk:], y_w) if w]
    body = retrace(f, avals, f"the VJP of {spec.name}'s body")
    back = [c for c, w in zip(cts[:nk], k_w) if w] + [zeros((m,), a) for a, w in zip(ins, c_w) if w]
    zs = [gnp.moveaxis(c, 0, 1) for c, w in zip(cts[nk:], y_w) if w]
    slots = spec.slots(args) if count is None else revolve.slots("auto", None, revolve.carry_bytes(init))
    if slots is None:
        stored = list(kept[1] if _kept(kept, args) else scan_p(*args, spec=spec.stored())[len(spec.out_avals):])
        scan = Scan(body, nc, len(back), spec.length, not spec.reverse, spec.name + " backward")
        leaves = bind_scan(scan, consts + back + stored + xs + zs)
    else:
        b = spec.body
        steps = dead_code(Program(b.ins, b.equations, b.outs[:nk]))
        loop = Revolve(steps, body, nc, nk, len(back), spec.length, spec.reverse, slots, spec.name)
        leaves = revolve_p(*consts, *init, *xs, *back, *zs, *([] if count is None else [count]), spec=loop)
    ct_init, ct_consts = iter(leaves[:sum(k_w)]), iter(leaves[sum(k_w):sum(k_w) + sum(c_w)])
    ct_xs = iter(leaves[sum(k_w) + sum(c_w):])
    return [next(ct_consts) if w else None for w in c_w] + [next(ct_init) if w else None for w in k_w] + \
        [gnp.moveaxis(next(ct_xs), 0, 1) if w else None for w in x_w]


def _scan_batch(args, batched, spec):
    b = _lead(args, batched)
    nk = spec.n_carry
    consts, init, xs = spec.split(args)
    mc, mk, mx = spec.split(batched)
    init = [x if m else gnp.broadcast_to(x, (b,) + shape(x)) for x, m in zip(init, mk)]
    xs = [gnp.moveaxis(x, 0, 1) if m else x for x, m in zip(xs, mx)]
    axes = [0 if m else None for m in mc] + [0] * nk + [0 if m else None for m in mx]
    body = retrace(lambda vals: _vmapped(spec.body, vals, axes, b),
                   _batched_avals(in_avals(spec.body), axes, b), f"{spec.name}'s body under vmap")
    new = Scan(body, spec.n_consts, nk, spec.length, spec.reverse, spec.name, spec.checkpoint)
    leaves = bind_scan(new, consts + init + xs)
    return leaves[:nk] + tuple(gnp.moveaxis(y, 1, 0) for y in leaves[nk:]), [True] * len(leaves)


scan_p = Primitive("scan", _scan_impl, _scan_jvp, _scan_vjp, _scan_batch, abstract=_abstract)
scan_p.multiple_results = True

scan_p.lower = _scan_lower
scan_p.temporaries = _held
scan_p.rev_forward = _scan_rev_forward


# ---------------------------------------------------------------- while_loop
class While:
    """A while loop's static part: its condition (inputs: its constants, the carries; output: a
    boolean scalar) and body (inputs: its constants, the carries; outputs: the carries).
    Operands: the condition's constants, the body's, the initial carries. `each` (vmap's loops):
    the condition gives one boolean per example (the carries' leading axis), the loop runs while
    any is true, and the body holds each example whose own is false, so each example's loop is
    independent of the others' (a loop kernel runs each element's trips on its own). `shared`:
    pairs (k, j) where the condition's constant k is the body's constant j (passes.shared_operands)."""

    def __init__(self, cond, body, n_cc, n_bc, name="while_loop", each=False, shared=()):
        self.cond, self.body, self.n_cc, self.n_bc, self.name = cond, body, n_cc, n_bc, name
        self.each, self.shared = each, shared
        self.out_avals = in_avals(body)[n_bc:]
        self.n_carry = len(self.out_avals)
        self.kept = None  # (operands, the scan of the counted trips) where a tape recorded the loop
        self._runners = None
        self.bodies = [cond, body]
        self._kernels = {}

    def going(self, test):
        """Whether the loop goes on, from its condition's output (an array or a traced value)."""
        if not self.each:
            return test
        return test.any() if not isinstance(test, Tracer) else gnp.max(gnp.where(test, 1, 0)) > 0

    def kernel(self, target):
        """The whole loop rendered as one kernel for a Target, or None where its step cannot run
        as one (gpuad/compiler/loop_kernel.py)."""
        if target not in self._kernels:
            self._kernels[target] = loop_kernel.plan(self.stepped(), self.n_cc + self.n_bc, self.n_carry, False,
                                                     self.out_avals, target, test=True)
        return self._kernels[target]

    def stepped(self):
        """One trip as one program (inputs: the condition's constants, the body's, the carries;
        outputs: the body's carries, then the condition on the carries it read): the passes see
        both, so what the condition and the body compute alike (of the constants they share) is
        computed once."""
        nc, nb = self.n_cc, self.n_bc

        def step(vals):
            cc, carry = list(vals[:nc]), vals[nc + nb:]
            for k, j in self.shared:
                cc[k] = vals[nc + j]
            return self.body.evaluate(vals[nc:]) + self.cond.evaluate(cc + carry)
        return retrace(step, in_avals(self.cond)[:nc] + in_avals(self.body), f"{self.name}'s trip")

    def __repr__(self):
        return self.name

    def per_call(self, cost):
        """What one trip costs (the trip count is not known before the loop runs)."""
        return cost(self.cond) + cost(self.body)

    def stored_bytes(self, args):
        """Bytes reverse mode stores: the carries of the trips a tape counted (none before)."""
        return self.kept[1].stored_bytes(args) if self.kept is not None else 0

    def temporaries(self, args, within):
        """Bytes a compiled run holds beside its operands and output (replay.peak_bytes): the loop
        kernel's scratch, or the larger of its condition's and body's buffers."""
        return _kept_while_running(self, within, [self.cond, self.body])

    def split(self, args):
        a, b = self.n_cc, self.n_cc + self.n_bc
        return list(args[:a]), list(args[a:b]), list(args[b:])

    def run(self, args, cond, body):
        cc, bc, carry = self.split(args)
        while bool(self.going(cond(cc + carry)[0])):
            carry = list(body(bc + carry))
        return _own(carry, args)

    def compiled(self):
        if self._runners is None:
            self._runners = compiled(self.cond), compiled(self.body)
        return self._runners

    def as_scan(self, n):
        """The loop as a scan of n steps, each step held where the condition is false (the same
        carries for any n at least the trip count): what reverse mode differentiates, storing
        every carry where they fit (checkpoint="auto"). n None: a count known only when it runs."""
        cc, nb = self.n_cc, self.n_bc

        def step(vals):
            carry = vals[cc + nb:]
            go = self.going(self.cond.evaluate(vals[:cc] + carry)[0])
            return [gnp.where(go, new, old) for new, old in zip(self.body.evaluate(vals[cc:]), carry)]
        body = retrace(step, in_avals(self.cond)[:cc] + in_avals(self.body), f"{self.name}'s body, counted")
        return Scan(body, cc + nb, self.n_carry, n, False, self.name, checkpoint="auto")


def _while_impl(*args, spec):
    return spec.run(args, spec.cond.evaluate, spec.body.evaluate)


def _while_lower(xp, shapes, spec):
    """The while loop's step in a compiled program: one kernel where its trip renders as one (the
    condition and the body replayed unfused while it builds), else their compiled replays."""
    kernel = spec.kernel(target_of()) if fusion_wanted() else None
    if kernel is None:
        cond, body = spec.compiled()
        return lambda *args: spec.run(args, cond, body)
    one = loop_kernel.runner(kernel, spec.out_avals, 0)
    unfused = None

    def run(*args):
        nonlocal unfused
        out = one(args, _TRIPS_GUESS)
        if out is None:
            unfused = unfused or (_unfused(spec.cond), _unfused(spec.body))
            return spec.run(args, *unfused)
        return out
    return run


_TRIPS_GUESS = 16  # a while loop kernel's trips, for its split over threads (not known before it runs)


def _while_jvp(primals, tangents, spec):
    cc, bc, init = spec.split(primals)
    _, tb, tk = spec.split(tangents)
    if all(t is None for t in tb + tk):
        return while_p(*primals, spec=spec), None
    k = _directions(tb + tk)
    nk, ins = spec.n_carry, in_avals(spec.body)
    b_nz = [t is not None for t in tb]

    def traced(k_nz):
        return jvp_body(spec.body, (spec.n_bc, nk), b_nz + k_nz, k, k_nz, f"the JVP of {spec.name}'s body")
    k_nz, (body, _) = _carry_mask(traced, [t is not None and inexact(a) for t, a in zip(tk, spec.out_avals)], nk)
    n_cc = spec.n_cc
    cond = retrace(lambda vals: spec.cond.evaluate(vals[:n_cc + nk]),
                   in_avals(spec.cond) + [bundle(a, k) for a, m in zip(spec.out_avals, k_nz) if m],
                   f"{spec.name}'s condition")
    new = While(cond, body, n_cc, spec.n_bc + sum(b_nz), spec.name, spec.each)
    leaves = bind_while(new, cc + bc + _present(tb) + init + _filled(tk, k_nz, ins[spec.n_bc:], k))
    tcar = iter(leaves[nk:])
    return leaves[:nk], tuple(next(tcar) if m else None for m in k_nz)


def _trip_count(args, spec):
    """How many times the loop runs (the most over a batch), read from the values below every
    transform: reverse mode stores that many carries. Where the loop is traced (under
    gpuad.jit, inside the body of a loop, a cond or a checkpoint), the count as a traced value."""
    n_cc, nk = spec.n_cc, spec.n_carry
    count = ShapeDtypeStruct((), "int64")
    body = retrace(lambda vals: spec.body.evaluate(vals[:-1]) + [vals[-1] + 1], in_avals(spec.body) + [count],
                   f"{spec.name}'s body, counted")
    cond = retrace(lambda vals: spec.cond.evaluate(vals[:n_cc + nk]), in_avals(spec.cond) + [count],
                   f"{spec.name}'s condition")
    counting = While(cond, body, n_cc, spec.n_bc, spec.name, spec.each)
    traced = n = while_p(*args, backends.current().asarray(onp.int64(0)), spec=counting)[-1]
    while isinstance(n, Tracer):
        try:
            n = n._inner()
        except TypeError:
            return traced
    return int(onp.max(backends.current().to_numpy(n)))


def _while_rev_forward(values, spec):
    n = _trip_count(values, spec)
    if isinstance(n, Tracer):  # traced: the backward sweep counts again and recomputes the carries it needs
        spec.kept = None
        return while_p(*values, spec=spec)
    scan = spec.as_scan(n)
    spec.kept = (list(values), scan)
    return _scan_rev_forward(values, scan)


def _while_vjp(ct, args, out, needed, spec):
    """The VJP of the scan of the counted trips. Where the count is known only when the program
    runs (under gpuad.jit, or in another loop's body), no array of that many carries can be
    laid out: the backward steps run on carries the binomial schedule recomputes, holding as many
    as "auto" fits (revolve_p with the count as an operand)."""
    kept, spec.kept = spec.kept, None
    if _kept(kept, args):
        return _scan_vjp(ct, args, out, needed, kept[1])
    n = _trip_count(args, spec)
    if isinstance(n, Tracer):
        return _scan_vjp(ct, args, out, needed, spec.as_scan(None), count=n)
    return _scan_vjp(ct, args, out, needed, spec.as_scan(n))


def _while_batch(args, batched, spec):
    b = _lead(args, batched)
    n_cc, n_bc, nk = spec.n_cc, spec.n_bc, spec.n_carry
    cc, bc, init = spec.split(args)
    mc, mb, mk = spec.split(batched)
    init = [x if m else gnp.broadcast_to(x, (b,) + shape(x)) for x, m in zip(init, mk)]
    c_axes = [0 if m else None for m in mc] + [0] * nk
    b_axes = [0 if m else None for m in mb] + [0] * nk

    def going(vals):  # each example's condition, on the condition's constants and the carries
        test = _vmapped(spec.cond, vals, c_axes, b)[0]
        return test if not spec.each else gnp.max(gnp.where(test, 1, 0), axis=tuple(range(1, len(shape(test))))) > 0

    def step(vals):
        carry = vals[n_cc + n_bc:]
        go = going(vals[:n_cc] + carry)
        new = _vmapped(spec.body, vals[n_cc:], b_axes, b)
        return [gnp.where(gnp.reshape(go, (b,) + (1,) * (len(shape(o)) - 1)), n, o) for n, o in zip(new, carry)]
    c_avals = _batched_avals(in_avals(spec.cond), c_axes, b)
    cond = retrace(lambda vals: [going(vals)], c_avals, f"{spec.name}'s condition under vmap")
    body = retrace(step, c_avals[:n_cc] + _batched_avals(in_avals(spec.body), b_axes, b),
                   f"{spec.name}'s body under vmap")
    new = While(cond, body, n_cc, n_cc + n_bc, spec.name, each=True)
    return bind_while(new, cc + cc + bc + init), [True] * nk


while_p = Primitive("while_loop", _while_impl, _while_jvp, _while_vjp, _while_batch, abstract=_abstract)
while_p.multiple_results = True

while_p.lower = _while_lower
while_p.temporaries = _held
while_p.rev_forward = _while_rev_forward


# ---------------------------------------------------------------- cond
class Cond:
    """A conditional's static part: its branches, each a body over the same operands (the index
    apart) with outputs of the same shapes and dtypes. `saved`: (r, programs) where its last r
    outputs are values the VJP reads instead of recomputing them (a checkpoint's policy): each
    branch's program over the operands and those values, making its other outputs."""

    def __init__(self, branches, name="cond", saved=(0, None)):
        self.branches, self.name, self.saved = branches, name, saved
        self.out_avals = avals_of(branches[0])
        self._runners = None
        self.bodies = branches

    def __repr__(self):
        return f"{self.name}({len(self.branches)} branches)"

    def per_call(self, cost):
        """What the costliest branch costs."""
        return max(cost(b) for b in self.branches)

    def temporaries(self, args, within):
        """The buffers of the branch that holds the most (replay.peak_bytes)."""
        return max(within.peak(b) for b in self.branches)

    def run(self, index, ops, branches):
        i = min(max(int(index), 0), len(branches) - 1)
        return tuple(branches[i](list(ops)))

    def compiled(self):
        if self._runners is None:
            self._runners = [compiled(b) for b in self.branches]
        return self._runners


def _cond_impl(index, *ops, spec):
    return spec.run(index, ops, [b.evaluate for b in spec.branches])


def _cond_lower(xp, shapes, spec):
    runners = spec.compiled()
    return lambda index, *ops: spec.run(index, ops, runners)


def _cond_jvp(primals, tangents, spec):
    index, ops, tops = primals[0], list(primals[1:]), tangents[1:]
    if all(t is None for t in tops):
        return cond_p(*primals, spec=spec), None
    k = _directions(tops)
    nz = [t is not None for t in tops]
    forced = [inexact(a) for a in spec.out_avals]
    new = Cond([jvp_body(b, (len(ops),), nz, k, forced, f"the JVP of a {spec.name} branch")[0]
                for b in spec.branches], spec.name)
    leaves = cond_p(index, *ops, *_present(tops), spec=new)
    n = len(spec.out_avals)
    touts = iter(leaves[n:])
    return leaves[:n], tuple(next(touts) if f else None for f in forced)


def _cond_vjp(ct, args, out, needed, spec):
    """The branch taken swept back from its operands, recomputed (with the saved values read
    where spec.saved has them)."""
    index, ops = args[0], list(args[1:])
    m = _directions(ct)
    ins = in_avals(spec.branches[0])
    w = [n and inexact(a) for n, a in zip(needed[1:], ins)]
    r, branches = spec.saved
    n = len(spec.out_avals) - r
    saved = list(out[n:])
    y_w = [inexact(a) and c is not None for a, c in zip(spec.out_avals[:n], ct)]  # a zero cotangent: no work

    def vjp_branch(b):
        def f(vals):
            it = iter(vals[len(ops) + r:])
            _, grads = vjp_of(b, vals[:len(ops) + r], w + [False] * r, [next(it) if yw else None for yw in y_w], m)
            return _present(grads)
        return retrace(f, ins + spec.out_avals[n:] + [bundle(a, m) for a, yw in zip(spec.out_avals, y_w) if yw],
                       f"the VJP of a {spec.name} branch")
    if not any(w):
        return [None] * len(args)
    new = Cond([vjp_branch(b) for b in branches or spec.branches], spec.name)
    leaves = iter(cond_p(index, *ops, *saved, *[c for c, yw in zip(ct, y_w) if yw], spec=new))
    return [None] + [next(leaves) if x else None for x in w]


def _cond_batch(args, batched, spec):
    b = _lead(args, batched)
    index, ops = args[0], list(args[1:])
    axes = [0 if m else None for m in batched[1:]]
    if not batched[0]:
        new = Cond([retrace(lambda vals, br=br: _vmapped(br, vals, axes, b),
                            _batched_avals(in_avals(br), axes, b), f"a {spec.name} branch under vmap")
                    for br in spec.branches], spec.name)
        return cond_p(index, *ops, spec=new), [True] * len(spec.out_avals)
    # each example picks its own branch: run them all, select per example
    index = gnp.clip(index, 0, len(spec.branches) - 1)
    outs = [_vmapped(br, ops, axes, b) for br in spec.branches]
    picked = outs[0]
    for k, out in enumerate(outs[1:], 1):
        picked = [gnp.where(gnp.reshape(index == k, (b,) + (1,) * (len(shape(o)) - 1)), o, p)
                  for o, p in zip(out, picked)]
    return tuple(picked), [True] * len(picked)


cond_p = Primitive("cond", _cond_impl, _cond_jvp, _cond_vjp, _cond_batch, abstract=_abstract)
cond_p.multiple_results = True
cond_p.lower = _cond_lower
cond_p.temporaries = _held


# ---------------------------------------------------------------- the checkpointed backward sweep (revolve_p)
class Revolve:
    """A forward recurrence c[i+1] = fwd(c[i], x[i]) and a backward one (b[i], y[i]) =
    bwd(b[i+1], c[i], x[i], z[i]) from b[n], returning b[0] and the stacked y: what a scan's VJP
    computes (b: the cotangents of the carries and the accumulated ones of the constants; y: those
    of the scanned slices), and a while loop's with its trip count an operand known only when the
    loop runs; the carries c are recomputed by the binomial schedule (gpuad/revolve.py) from the
    `slots` held. Its rules make new fwd and bwd bodies and bind it again (JVP: both carry
    tangents; vmap: both batched); its own VJP (reverse over reverse) is that of the scans it
    stands for, every carry stored.
    fwd's inputs: constants, carries, slices of xs; outputs: the carries. bwd's inputs: the
    constants, backward carries, carries, slices of xs and of zs; outputs: the backward carries,
    then one slice of each stacked output. `length` None: the step count is an int operand last.
    Operands: constants, initial carries, xs, backward carries b[n], zs (then the count)."""

    def __init__(self, fwd, bwd, n_consts, n_carry, n_back, length, reverse, slots, name):
        self.fwd, self.bwd, self.n_consts, self.n_carry, self.n_back = fwd, bwd, n_consts, n_carry, n_back
        self.length, self.reverse, self.slots, self.name = length, reverse, slots, name
        self.n_xs = len(fwd.ins) - n_consts - n_carry
        self.out_avals = self.unscheduled().out_avals
        self._runners = None
        self.bodies = [fwd, bwd]  # the programs it holds (Program.check verifies them)

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
        return revolve.forward_steps(self.length, self.slots) * cost(self.fwd) + self.length * cost(self.bwd)

    def temporaries(self, args, within):
        """Bytes a compiled run holds beside its operands and output (replay.peak_bytes): the
        carries the schedule holds past the first (an operand), the one being advanced, and the
        larger of a step's buffers (the backward carries are its result in the making: the output
        the replay counts). Where the count is known only when it runs, the slots it fills are not
        known before: the first alone is counted."""
        first = self.split(args)[1]
        held = 1 if self.length is None else max(1, min(self.slots, self.length))
        return held * _carried(first) + max(within.peak(self.fwd), within.peak(self.bwd))

    def run(self, args, fwd, bwd):
        consts, first, xs, b, zs, count = self.split(args)
        n = self.length if count is None else int(backends.current().to_numpy(count))
        ys = _places(self.out_avals[self.n_back:])

        def row(i):
            return n - 1 - i if self.reverse else i

        def advance(c, p, q):
            for i in range(p, q):
                c = list(fwd(consts + c + [x[row(i)] for x in xs]))
            return c

        def back(i, c):
            made = bwd(consts + b + c + [x[row(i)] for x in xs] + [z[row(i)] for z in zs])
            b[:] = made[:self.n_back]
            for place, y in zip(ys, made[self.n_back:]):
                place[row(i)] = y
        revolve.reverse(n, max(1, min(self.slots, n)), advance, back, list(first))
        return _own(b, args) + tuple(ys)

    def compiled(self):
        if self._runners is None:
            self._runners = compiled(self.fwd), compiled(self.bwd)
        return self._runners


def _revolve_runner(spec, replayed):
    """The loop on arrays: its steps evaluated, or their compiled replays (gpuad.jit)."""
    fwd, bwd = spec.compiled() if replayed else (spec.fwd.evaluate, spec.bwd.evaluate)
    return lambda *args: spec.run(args, fwd, bwd)


def _revolve_jvp(primals, tangents, spec):
    """Both recurrences carry their tangent bundles (every inexact carry's, zeros where it starts
    with none; the constants', slices' and zs' where they have one)."""
    if all(t is None for t in tangents):
        return revolve_p(*primals, spec=spec), None
    k = _directions(tangents)
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
    leaves = revolve_p(*operands, spec=new)
    outs, tb_out = leaves[:nb], iter(leaves[nb:nb + sum(b_nz)])
    ys, ty = leaves[nb + sum(b_nz):nb + sum(b_nz) + len(y_nz)], iter(leaves[nb + sum(b_nz) + len(y_nz):])
    touts = [next(tb_out) if m else None for m in b_nz] + [gnp.moveaxis(next(ty), 0, 1) if m else None for m in y_nz]
    return outs + ys, tuple(touts)


def _revolve_batch(args, batched, spec):
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
    leaves = revolve_p(*consts, *first, *xs, *back, *zs, *([] if count is None else [count]), spec=new)
    return leaves[:nb] + tuple(gnp.moveaxis(y, 1, 0) for y in leaves[nb:]), [True] * len(leaves)


def _revolve_vjp(ct, args, out, needed, spec):
    """Reverse over reverse: the VJP of the scans this loop stands for (every carry stored)."""
    if spec.length is None:
        raise NotImplementedError(f"reverse mode through the backward sweep of a {spec.name} whose trip count is "
                                  "known only when it runs (under gpuad.jit, or in another loop's body) is not "
                                  "supported: take the outer derivative in forward mode (gpuad.hessian does)")
    avals = [ShapeDtypeStruct(shape(a), a.dtype) for a in args]
    program = retrace(lambda vals: _unscheduled(spec, vals), avals, f"{spec.name}, every carry stored")
    wanted = [w and inexact(a) for w, a in zip(needed, avals)]
    _, grads = vjp_of(program, list(args), wanted, list(ct), _directions(ct))
    return grads


def _unscheduled(spec, vals):
    consts, first, xs, b, zs, _ = spec.split(vals)
    fwd = spec.fwd
    nc, nk = spec.n_consts, spec.n_carry
    forward = Scan(Program(fwd.ins, fwd.equations, fwd.outs + fwd.ins[nc:nc + nk]), nc, nk, spec.length,
                   spec.reverse, spec.name)
    stored = list(bind_scan(forward, consts + first + xs)[nk:])
    return list(bind_scan(spec.unscheduled(), consts + b + stored + xs + zs))


revolve_p = Primitive("revolve", lambda *args, spec: _revolve_runner(spec, False)(*args), _revolve_jvp,
                      _revolve_vjp, _revolve_batch, abstract=_abstract)
revolve_p.multiple_results = True
revolve_p.lower = lambda xp, shapes, spec: _revolve_runner(spec, True)
revolve_p.temporaries = _held



# ---------------------------------------------------------------- sparsity patterns (gpuad.sparse)
def _columns(args):
    """Each operand's identity pattern among all the operands' elements, side by side (SciPy CSR)."""
    import scipy.sparse as sp
    sizes = [int(onp.prod(shape(a))) for a in args]
    offsets = onp.cumsum([0] + sizes)
    n = int(offsets[-1])
    eye = [sp.csr_array((onp.ones(s, bool), (onp.arange(s), offsets[k] + onp.arange(s))), shape=(s, n))
           for k, s in enumerate(sizes)]
    return eye, offsets, n


def _locals(patterns, offsets):
    """Each result's pattern split by operand: per result, (rows, cols) per operand, None where
    it is empty."""
    out = []
    for pattern in patterns:
        out.append([])
        for lo, hi in zip(offsets[:-1], offsets[1:]):
            part = pattern[:, lo:hi].tocoo()
            out[-1].append((part.row, part.col) if part.nnz else None)
    return out


def _same(p, q):
    return p.shape == q.shape and (p != q).nnz == 0


def _scan_pattern(args, out, spec):
    """A step's pattern propagated through the body: the carries' patterns step after step (until
    they stop changing, or length steps), a scanned slice as the union over its slices, each
    stacked output as the union over the steps."""
    import scipy.sparse as sp

    from .sparse.detect import propagate
    eye, offsets, n = _columns(args)
    nc, nk = spec.n_consts, spec.n_carry
    slices = []
    for k in range(nc + nk, len(args)):
        length, s = shape(args[k])[0], eye[k].shape[0] // max(shape(args[k])[0], 1)
        rows = onp.tile(onp.arange(s), length)
        slices.append(sp.csr_array((onp.ones(rows.size, bool), (rows, offsets[k] + onp.arange(rows.size))),
                                   shape=(s, n)))
    carry, ys = eye[nc:nc + nk], None
    for _ in range(spec.length):
        outs = propagate(spec.body, eye[:nc] + carry + slices, n)
        ys = outs[nk:] if ys is None else [a + b for a, b in zip(ys, outs[nk:])]
        stable = all(_same(a, b) for a, b in zip(carry, outs[:nk]))
        carry = outs[:nk]
        if stable:
            break
    if ys is None:  # no steps
        ys = [sp.csr_array((a.size // max(spec.length, 1), n), dtype=bool) for a in spec.out_avals[nk:]]
    stacked = [sp.vstack([y] * spec.length, format="csr") if spec.length else
               sp.csr_array((0, n), dtype=bool) for y in ys]
    return _locals(carry + stacked, offsets)


def _while_pattern(args, out, spec):
    """The carries' patterns through the body to a fixed point (the trip count is not known)."""
    from .sparse.detect import propagate
    eye, offsets, n = _columns(args)
    start = spec.n_cc + spec.n_bc
    carry = eye[start:]
    while True:
        grown = [a + b for a, b in zip(carry, propagate(spec.body, eye[spec.n_cc:start] + carry, n))]
        if all(_same(a, b) for a, b in zip(carry, grown)):
            return _locals(carry, offsets)
        carry = grown


def _cond_pattern(args, out, spec):
    """The union of the branches' patterns (the index does not enter them)."""
    from .sparse.detect import propagate
    eye, offsets, n = _columns(args)
    outs = [propagate(b, eye[1:], n) for b in spec.branches]
    return _locals([functools.reduce(operator.add, o) for o in zip(*outs)], offsets)


scan_p.pattern, while_p.pattern, cond_p.pattern = _scan_pattern, _while_pattern, _cond_pattern


# Complex values: each rule runs the bodies under the transform, so a loop's derivative follows
# JAX's convention wherever its bodies' primitives do, and those refuse what they cannot take.
scan_p.complex_ready = while_p.complex_ready = cond_p.complex_ready = revolve_p.complex_ready = True
scan_p.once, while_p.once, revolve_p.once = _scan_once, _while_once, _revolve_once
