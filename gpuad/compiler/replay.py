"""Replay: a program compiled into one Python function over backend arrays.

`plan` turns a program into steps without touching a device: plain equations, fusion regions
(gpuad/compiler/fusion.py) and in-place accumulations. `Replay` gives each step its function: a
primitive's impl with its parameters bound once (no bind, no dispatch), a region's generated
kernel (CUDA on CuPy, the same source compiled for the CPU on NumPy), and generates one Python
function calling them in order. A value is dropped after its last use, so the allocator reuses its
memory within the call; where the program adds into a value nothing reads afterwards, the step
adds in place: `a + b` writes into a's buffer, and `a + scatter(v, idx)` (a slice's adjoint
accumulated) becomes `a[idx] += v` with no zeros-sized temporary.
"""
import os
import threading
import warnings

import numpy as onp

from .. import backends
from ..kernels import builds
from ..ops.elementwise import add
from ..ops.indexing import add_at, scatter
from ..ops.shape import reshape
from ..sizes import CHECK_FROM, size_text
from . import codegen, graphs
from .fusion import MEMBERS, Region, fuse
from .ir import Var, dying, nbytes, view
from .target import target_of


class Step:
    """outs = (what `kind` says)(*ins). kind: "eq" (node is the Equation), "region" (node is the
    Region), "add_into" (node is the add), "add_at_into" (node is the add; `idx` its positions),
    "graph" (node is the graphs.Run of steps captured as one CUDA graph)."""
    __slots__ = ("kind", "node", "ins", "outs", "idx", "fn")

    def __init__(self, kind, node, ins, outs, idx=None):
        self.kind, self.node, self.ins, self.outs, self.idx, self.fn = kind, node, ins, outs, idx, None

    @property
    def several(self):
        """Whether its function returns a sequence of its outputs (else the one output itself)."""
        return self.kind in ("region", "graph") or self.node.prim.multiple_results


def fusion_wanted():
    """GPUAD_FUSION=off turns the fused kernels off (the replay then runs each primitive)."""
    return os.environ.get("GPUAD_FUSION", "on") != "off"


def plan(program, fusion=True, target=None, apart=(), limit=MEMBERS):
    """The program's steps for `target` (a Target or a backend's name; default: the active
    backend's), in order, with adds done in
    place where nothing reads the target after; the equations making `apart` are not fused, and
    no region has more than `limit` members."""
    nodes = fuse(program, target, apart, limit) if fusion else program.equations
    steps = [Step("region" if isinstance(n, Region) else "eq", n, list(n.ins), list(n.outs)) for n in nodes]
    return _in_place(program, steps)


class Replay:
    """`run(*inputs)` -> the program's outputs (a list), for backend arrays of the traced signature.
    `regions` counts the fused kernels among the steps, `graphs` the runs of steps captured as CUDA
    graphs, `kept` the other steps writing into buffers kept between calls (_bind). `plan_for`
    (a Target or a backend's name) fuses as for another backend, its regions rendered for the
    active one (the tests run the regions planned for CuPy on the CPU)."""

    def __init__(self, program, fusion=None, plan_for=None, wait=True):
        """wait=False: where the kernels are not built yet, run unfused meanwhile and build them
        in the background (gpuad/kernels/builds.py); `ready` says when the kernels run."""
        fusion = fusion_wanted() if fusion is None else fusion
        be, here = backends.current(), target_of()
        self._plan_for, self._kernel = target_of(plan_for or here), here.kernel
        steps, kernels = planned(program, fusion, self._plan_for, self._kernel)
        self.ready = None
        if not kernels or wait or _built(kernels, be):
            self._use(program, *self._built_runners(program, steps, kernels, be), be)
            return
        self._use(program, plan(program, False), {}, be)
        self.ready = builds.submit(self._switch, program, steps, kernels, be)
        self.ready.add_done_callback(_said_if_failed)

    def _switch(self, program, steps, kernels, be):
        """Build the kernels, then run them from the next call on (the function is swapped last)."""
        steps, runners = self._built_runners(program, steps, kernels, be)
        if runners is not None:
            self._use(program, steps, runners, be)

    def _built_runners(self, program, steps, kernels, be):
        """(steps, their regions' functions; None where no kernel can be built here): a region whose
        kernel the compiler refuses runs unfused (planned again without it), the others keep theirs."""
        apart = set()
        while True:
            try:
                return steps, _region_runners(kernels, be, staying(program, steps))
            except _Refused as e:
                refused = {eq.out for s in steps if s.kind == "region" and id(s.node) in e.regions
                           for eq in s.node.equations}
                apart |= refused
                warnings.warn(f"gpuad.jit: {e}: their {len(refused)} equations run unfused, the other regions fused",
                              RuntimeWarning, stacklevel=4)
                steps, kernels = planned(program, True, self._plan_for, self._kernel, apart)

    def _use(self, program, steps, runners, be):
        """Make steps (with their regions' functions `runners`; None where the kernels could not
        be built: then unfused) the replay's on backend be."""
        if runners is None:
            steps, runners = plan(program, False), {}
        kept = _bind(program, steps, runners, be.xp, be.name == "numpy")
        regions = sum(s.kind == "region" for s in steps)
        peak = peak_bytes(program, steps)
        loops = any(s.kind == "eq" and s.node.prim.temporaries is not None for s in steps)
        if be.capture_graph is not None and graphs.wanted():
            steps = _captured(program, steps, be)
        self.graphs = sum(s.kind == "graph" for s in steps)
        peak += sum(s.node.held for s in steps if s.kind == "graph")
        self.source, run = _generate(program, steps)
        run = _one_at_a_time(_plain_inputs(run, be.xp)) if (regions or kept) and be.name == "numpy" else run
        run = graphs.in_turn(run, be) if self.graphs else run
        self.steps, self.regions, self.peak, self.kept = steps, regions, peak, kept
        self.run = run if peak < CHECK_FROM else _checked(run, peak, program.sweeps, loops)


def _said_if_failed(build):
    """A background build that raised leaves the program unfused: say so (nobody reads the future)."""
    error = build.exception()
    if error is not None:
        warnings.warn(f"gpuad.jit: building the fused kernels in the background failed ({error!r}); the program "
                      "runs unfused", RuntimeWarning, stacklevel=2)


def planned(program, fusion=True, target=None, kernel=None, apart=()):
    """(steps, {id(region): Kernel}): the plan for `target` (a Target or a backend's name; default:
    the active backend's) and its regions' kernels rendered for `kernel` ("host" or "cuda";
    default: the target's), the equations making `apart` unfused.
    A region whose kernel would be too long is split (the member limit halves); a lone equation
    too long runs unfused, with a warning."""
    target = target_of(target)
    kernel, apart, limit, alone_too_long = kernel or target.kernel, set(apart), MEMBERS, set()
    while True:
        steps = plan(program, fusion, target, apart, limit)
        try:
            kernels = _rendered([s.node for s in steps if s.kind == "region"], kernel)
            break
        except _TooLarge as e:
            limit, alone = _split_limit(e.regions, limit)
            alone_too_long |= {eq.out for r in alone for eq in r.equations}
            apart |= alone_too_long
    if alone_too_long:
        warnings.warn(f"gpuad.jit: a fused region's kernel would exceed {codegen.MAX_LINES} lines; "
                      f"its {len(alone_too_long)} equations run unfused", RuntimeWarning, stacklevel=3)
    return steps, kernels


class Within:
    """What a primitive's `temporaries` rule asks of the plan it is in: whether bodies are fused,
    the Target they are planned for (a Target or a backend's name), the peak of a body's run. By
    default as the replays of bodies run: fused unless GPUAD_FUSION=off, for the active backend."""

    def __init__(self, fusion=None, target=None):
        self.fusion, self.target = fusion_wanted() if fusion is None else fusion, target_of(target)

    def peak(self, program, fusion=None):
        """peak_bytes of one run of a body program, planned as its replay plans it (fused unless
        fusion is False)."""
        fusion = self.fusion if fusion is None else fusion
        return peak_bytes(program, plan(program, fusion, self.target), Within(fusion, self.target))


def peak_bytes(program, steps, within=None):
    """The most bytes of buffers a call holds at once, by the plan: each step's new outputs (views
    and in-place adds share their argument's buffer; a reshape of a transposed or broadcast view,
    or of a slice that is not one run of its buffer, is counted as a copy) alive until the last
    name for them is dropped, program outputs to the end, region buffers kept between calls throughout; the
    inputs and constants exist already. What a step holds while it runs is counted at that step
    where its primitive says (`temporaries`: a loop's checkpointed carries and its kernel's
    scratch, asked with `within`, default Within()); other
    temporaries inside a step (a GEMM's workspace) are not."""
    buffer, size = {}, {}  # Var -> its buffer's id; buffer id -> bytes
    strided = set()  # views that may not be contiguous: reshaping one may copy it
    for s in steps:
        shares = s.kind in ("add_into", "add_at_into") or (s.kind == "eq" and view(s.node))
        if shares and s.kind == "eq":
            if s.node.prim is reshape:
                shares = s.ins[0] not in strided
            elif s.ins[0] in strided or not _contiguous(s.node):
                strided.update(s.outs)
        for v in s.outs:
            buffer[v] = buffer.get(s.ins[0], id(v)) if shares else id(v)  # a Lit's is a new buffer
            size.setdefault(buffer[v], nbytes(v))
    names = {}  # buffer id -> live names
    for v in [v for s in steps for v in s.outs]:
        names[buffer[v]] = names.get(buffer[v], 0) + 1
    live, peak, held = 0, 0, set()
    ends = program.out_vars() | set(program.ins)
    read = {a for s in steps for a in s.ins if isinstance(a, Var)}
    for s, gone in zip(steps, dying(steps, ends)):
        for v in s.outs:
            if buffer[v] not in held:
                held.add(buffer[v])
                live += size[buffer[v]]
        peak = max(peak, live + _temporaries(s, within))
        for v in set(gone) | {v for v in s.outs if v not in read and v not in ends}:
            names[buffer[v]] -= 1
            if not names[buffer[v]]:
                live -= size[buffer[v]]
    return peak


def _contiguous(eq):
    """Whether a view's result is C-contiguous where its argument is (its primitive's rule)."""
    return eq.prim.contiguous is not None and eq.prim.contiguous(eq.ins, **eq.params)


def _temporaries(step, within):
    """Bytes a step holds while it runs beside its operands and outputs, by its primitive's rule."""
    rule = step.node.prim.temporaries if step.kind == "eq" else None
    if rule is None:
        return 0
    return rule(step.ins, within or Within(), **step.node.params)


def _checked(run, peak, sweeps, loops):
    """run, refused with a MemoryError before it allocates when its buffers exceed the memory available.
    sweeps: whether the program holds Jacobian sweeps, which chunk_size can split; loops: whether
    it holds loops, whose stored carries checkpoint= cuts."""
    hints = ['pass chunk_size="auto" (or an int) to the Jacobian transforms inside jit to sweep fewer directions '
             "at a time"] if sweeps else []
    hints += ['pass checkpoint= to lax.scan or lax.fori_loop (an int: fewer carries held for reverse mode, or '
              '"auto") or run fewer examples through a loop at a time'] if loops else []
    hint = "; or ".join(hints) or "compute it in smaller parts (its arguments, or a loop over blocks)"

    def checked(*args):
        available = backends.current().free_memory()
        if available is not None and peak > available:
            raise MemoryError(f"gpuad.jit: a call needs about {size_text(peak)} of buffers (planned from the "
                              f"compiled program), but {size_text(available)} of memory is available; {hint}")
        return run(*args)
    return checked


def _plain_inputs(run, xp):
    """run, given its inputs of an ndarray subclass (gpuad.numpy's) as the backend's arrays
    (xp.asarray: plain ndarrays, viewed), once a call: the CPU kernels' type check refuses a
    subclass, and each kernel reading one would try, then view it, again."""
    def plain(*args):
        return run(*[xp.asarray(a) if type(a) is not onp.ndarray and isinstance(a, onp.ndarray) else a
                     for a in args])
    return plain


def _one_at_a_time(run):
    """The CPU regions keep buffers from call to call: calls from several threads take turns."""
    lock = threading.Lock()

    def locked(*args):
        with lock:
            return run(*args)
    return locked


def _bind(program, steps, runners, xp, keep=False):
    """Give every step its function (a region's from runners: {id(region): function}); with keep,
    the steps whose primitive writes into a given buffer and whose value never leaves a call write
    into one kept from call to call, as the CPU regions do (a large fresh buffer is page-faulted in
    again at every call, which under memory pressure can cost more than the step's work: the
    FFTs of a Jacobian's bundle, bench/spectral.py). Returns how many steps keep one."""
    private, kept = staying(program, steps) if keep else (), 0
    for s in steps:
        if s.kind == "region":
            s.fn = runners[id(s.node)]
        elif s.kind == "add_into":
            s.fn = _add_into(xp)
        elif s.kind == "add_at_into":
            s.fn = _add_at_into(s.idx)
        elif not s.several and s.outs[0] in private and s.outs[0].shape and s.node.prim.impl_into is not None \
                and s.node.prim.impl_into(xp) is not None:
            s.fn = _into(s.node.prim.impl_into(xp), s.node, xp)
            kept += 1
        else:
            f = s.node.prim.impl_on(xp, [onp.shape(a) for a in s.ins], **s.node.params)
            s.fn = _as_array(f) if not s.several and not s.outs[0].shape else f
    return kept


def _into(f, eq, xp):
    """f writing into a buffer of eq's output, the same at every call."""
    buffer, params = xp.empty(eq.out.shape, eq.out.dtype), eq.params
    return lambda *args: f(*args, out=buffer, **params)


def _split_limit(regions, limit):
    """(the member limit splitting these too long regions in halves at least, the regions too
    small to split)."""
    large = [r for r in regions if len(r.equations) > 2]
    if large:
        limit = min(limit, *(len(r.equations) // 2 for r in large))
    return limit, [r for r in regions if len(r.equations) <= 2]


class _TooLarge(Exception):
    """Regions whose kernels would be too long to build."""

    def __init__(self, regions):
        super().__init__(f"{len(regions)} regions too long")
        self.regions = regions


def _rendered(regions, kernel):
    """{id(region): Kernel} rendered for `kernel` ("host" or "cuda"); _TooLarge naming the regions that are too long."""
    kernels, large = {}, []
    for r in regions:
        try:
            kernels[id(r)] = codegen.render(r, kernel)
        except codegen.TooLarge:
            large.append(r)
    if large:
        raise _TooLarge(large)
    return kernels


def _built(kernels, be):
    """Whether these kernels load without a compiler run (the CPU's library, or NVRTC's CUBINs, on disk)."""
    if be.name == "cupy":
        from ..kernels.launch import ready
        return ready(list(kernels.values()))
    from . import host
    return be.name == "numpy" and host.cached(list(kernels.values()))


def _region_runners(kernels, be, private):
    """{id(region): function} on backend be for {id(region): Kernel}; None where no kernel can be
    built here (no compiler); _Refused naming the regions whose kernels the compiler refuses."""
    if not kernels:
        return {}
    if be.name == "cupy":  # CuPy's pool already reuses device memory; NVRTC builds them together
        from ..kernels.launch import region_launchers
        return _all_built(dict(zip(kernels, region_launchers(list(kernels.values())))))
    from . import host
    singles = {r: host.loaded([k]) for r, k in kernels.items()}  # left by a probe below, before a re-plan
    if not all(singles.values()):
        lib = host.library(list(kernels.values()))
        if lib is not None:
            return {r: host.launcher(lib, k, private) for r, k in kernels.items()}
        if len(kernels) == 1 or host.compiler() is None or host.timed_out(list(kernels.values())):
            return None  # a probe after a timeout would give each region a timeout of its own
        # Which of them fail, alone? (_Refused names them; where none does, their libraries serve)
        singles = _each_built(kernels, lambda k: host.library([k]) or _refused(k.name))
    return {r: host.launcher(singles[r], k, private) for r, k in kernels.items()}


def _each_built(kernels, build):
    """{id(region): build(kernel)} for {id(region): Kernel}, several at once; _Refused naming the
    regions whose kernels failed to build (any failure: that region runs unfused)."""
    return _all_built(dict(zip(kernels, builds.each(build, list(kernels.values())))))


def _all_built(built):
    """built ({id(region): its function, or the exception its build raised}); _Refused naming the
    regions whose kernels failed to build."""
    failed = [(r, b) for r, b in built.items() if isinstance(b, Exception)]
    if failed:
        raise _Refused({r for r, _ in failed}, failed[0][1])
    return built


class _Refused(Exception):
    """Regions (their ids) whose kernels the compiler refused, with the first error."""

    def __init__(self, regions, error):
        super().__init__(f"{len(regions)} fused region(s) failed to build ({error})")
        self.regions = regions


def _refused(name):
    raise RuntimeError(f"the C++ compiler refused {name}")


def staying(program, steps):
    """Values that never leave a call: not outputs of the program, and read only by steps that make
    fresh results (not views of them, not adds that write into them)."""
    readers = {}
    for s in steps:
        for a in s.ins:
            if isinstance(a, Var):
                readers.setdefault(a, []).append(s)
    out = program.out_vars()
    return {v for s in steps for v in s.outs
            if v not in out and all(r.kind in ("region", "graph") or (r.kind == "eq" and not view(r.node))
                                    for r in readers.get(v, ()))}


def _captured(program, steps, be):
    """steps with each run worth capturing (graphs.runs) made one "graph" step."""
    out, at = [], 0
    for run in graphs.runs(program, steps, staying(program, steps)):
        step = Step("graph", run, run.ins, run.outs)
        step.fn = graphs.Graphed(be, graphs.run_function(steps[run.start:run.stop], run.ins, run.outs),
                                 run.escaping)
        out += steps[at:run.start] + [step]
        at = run.stop
    return out + steps[at:]


def _as_array(f):
    """NumPy returns scalars for 0-d results; the steps and the caller want arrays."""
    def g(*args):
        out = f(*args)
        return onp.asarray(out) if isinstance(out, onp.generic) else out
    return g


def _in_place(program, steps):
    """Rewrite adds whose first (or second) operand is an owned, otherwise dead value of the
    output's shape and dtype: into that operand's buffer, and through a scatter made for the
    add alone, as an add at the scatter's positions."""
    producer = {v: s.node for s in steps if s.kind == "eq" for v in s.outs}
    uses = _use_counts(program, steps)
    owned = {v for s in steps if s.kind != "eq" or not view(s.node) for v in s.outs}
    keep = program.out_vars()
    out, skip = [], set()
    for step in steps:
        if step.kind == "eq" and step.node.prim is add:
            step = _accumulate(step, producer, uses, owned, keep, skip)
        out.append(step)
    return [s for s in out if not set(s.outs) & skip]


def _accumulate(step, producer, uses, owned, keep, skip):
    eq = step.node
    for k in (0, 1):
        target, other = eq.ins[k], eq.ins[1 - k]
        if not (isinstance(target, Var) and target in owned and target not in keep and uses[target] == 1
                and target.shape == eq.out.shape and target.dtype == eq.out.dtype):
            continue
        src = producer.get(other)
        if src is not None and src.prim is scatter and uses[other] == 1 and other not in keep \
                and src.params["shape"] == eq.out.shape and src.ins[0].dtype == eq.out.dtype:
            skip.add(other)
            return Step("add_at_into", eq, [target, src.ins[0]], [eq.out], src.params["idx"])
        return Step("add_into", eq, [target, other], [eq.out])
    return step


def _add_into(xp):
    def add_into(a, b):
        return xp.add(a, b, out=a)
    return add_into


def _add_at_into(idx):
    def add_at_into(a, v):
        return add_at(a, idx, v)
    return add_at_into


def _use_counts(program, steps):
    uses = {}
    for step in steps:
        for a in step.ins:
            if isinstance(a, Var):
                uses[a] = uses.get(a, 0) + 1
    for o in program.outs:
        if isinstance(o, Var):
            uses[o] = uses.get(o, 0) + 1
    return uses


def _borrowed(program, steps):
    """The values that may be the caller's memory: the inputs and the views of them (or of
    constants). A call returns copies of those, as eager NumPy would (x * 1.0 is a new array),
    never an array that writes through to the input."""
    lent = set(program.ins)
    for s in steps:
        if s.kind == "eq" and view(s.node) and (s.ins[0] in lent if isinstance(s.ins[0], Var) else True):
            lent.update(s.outs)
    return lent


def _generate(program, steps):
    """Python source for the steps, compiled: (source, function)."""
    names = {v: f"x{k}" for k, v in enumerate(program.ins)}
    env = {}

    def ref(a):
        if isinstance(a, Var):
            return names[a]
        env[f"c{len(env)}"] = a.val
        return f"c{len(env) - 1}"

    lines = [f"def replay({', '.join(names[v] for v in program.ins)}):"]
    for i, (step, gone) in enumerate(zip(steps, dying(steps, program.out_vars() | set(program.ins)))):
        env[f"f{i}"] = step.fn
        args = ", ".join(ref(a) for a in step.ins)
        for k, v in enumerate(step.outs):
            names[v] = f"v{i}_{k}"
        targets = ", ".join(names[v] for v in step.outs) + ("," if step.several else "")
        lines.append(f"    {targets} = f{i}({args})")
        if gone:
            lines.append(f"    del {', '.join(names[a] for a in gone)}")
    lent = _borrowed(program, steps)
    outs = [f"{ref(o)}.copy()" if (o in lent if isinstance(o, Var) else hasattr(o.val, "copy")) else ref(o)
            for o in program.outs]
    lines.append(f"    return [{', '.join(outs)}]")
    source = "\n".join(lines)
    exec(compile(source, "<gpuad.jit replay>", "exec"), env)
    return source, env["replay"]

