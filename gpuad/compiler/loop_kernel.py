"""A whole loop as one kernel: a scan or a while loop whose body runs as fusion regions alone is
rendered as one C++ function (CPU) or one CUDA kernel that loops over the trips itself, the carries
and the body's values in local buffers, a scan's trip count an argument, a while loop's condition
computed in the kernel (its integer counters and comparisons too: the body is planned for the
Target with `integers`). A call is one ctypes call or one launch.

The body's steps are its fusion regions (gpuad/compiler/fusion.py, `regions_only`), each rendered
by gpuad/compiler/codegen.py as for a region of its own; a trip calls them in order, writes the
scanned outputs of the trip into place and copies the new carries over the old. Two schedules:
- per element: where every value the body makes and carries has one axis of the batch's length
  B (the first carry's leading axis) and each element of every region reads only its own batch
  element along it (the loads the rendered bodies make say so: codegen.Kernel.reads), the batch
  elements' loops are independent. On the CPU the batch is cut into chunks whose values fit in
  the cache, each chunk (on the thread pool) running all its trips before the next; on CUDA each
  thread runs one batch element's trips. A vmap of a per-sample ODE, an elementwise fixed point.
- whole: otherwise, where the body's values are small (a few-state ODE with its tangent bundle):
  one C loop on the CPU; on CUDA one block, its threads sharing each region's elements and
  synchronised between steps, the values in shared memory.
A while loop's step is its condition and its body traced together (gpuad/loops.py, While.stepped:
the carries, then the condition): each trip computes both, stops where the condition is false
(per element: where it is false for every element of the range; a vmapped while loop's body holds
each element whose own condition is false, so the others run on) and else takes the new carries.
Other bodies return None from `plan` (an equation no kernel renders: a GEMM, a long reduction,
a nested loop, complex values; a large coupled state), and the caller replays the body
from Python on each trip (gpuad/loops.py).
"""
import ctypes
import dataclasses
import hashlib
import math
import string
import threading

import numpy

from .. import backends
from ..kernels import builds
from ..kernels.source import _read
from . import codegen, fusion
from . import index as ix
from .ir import Lit, Var

# The most a whole-schedule loop keeps: on the CPU elements for one thread's loop (larger ones
# are split over the thread pool per region by the replay), on CUDA bytes of one block's shared memory.
_WHOLE = {"host": 1 << 18, "cuda": 40 << 10}
_CHUNK_BYTES = 64 << 10  # the values of the batch elements a CPU thread runs together: within L2
_BLOCK = 128  # threads of a launch's blocks
_LOCAL_BYTES = 4 << 10  # a CPU whole loop's values this small are local arrays, not scratch
_KEPT_BYTES = 64 << 20  # a CPU loop's scratch this small is kept from call to call (no page faults)
_ALIGN = 64


class LoopKernel:
    """One rendered loop: `name`, `text` (the kernel source), how many `operands` it takes, the
    `constants` its regions read (arrays, passed after the operands), `scratch` (bytes of the
    buffers of its values, passed last but one; CUDA's whole schedule keeps them in shared memory),
    `schedule` ("element" or "whole"), `batch` (B; 1 for a whole loop), `grid` and `block` of
    its one CUDA launch."""

    def __init__(self, name, text, operands, constants, scratch, schedule, batch, grid, block):
        self.name, self.text, self.operands, self.constants = name, text, operands, constants
        self.scratch, self.schedule, self.batch, self.grid, self.block = scratch, schedule, batch, grid, block
        self.runner = None  # its Runner, made at the first replay that runs it
        self.extent = math.inf  # no 32-bit variant (kernels/index32.py): its launcher builds this source


def plan(body, n_consts, n_carry, reverse, outs, target, test=False):
    """The LoopKernel of a scan (its body Program, counts and direction; `outs`: the avals of its
    results) for a Target (compiler/target.py), or None where the body cannot run as one.
    `test`: the body is a while loop's step, its last output the condition."""
    regions = fusion.regions_only(body, dataclasses.replace(target, integers=True))
    if regions is None or not all(isinstance(o, Var) for o in body.outs):
        return None
    try:
        kernels = [codegen.render(r, "cuda", merge=False) for r in regions]  # the cuda body: one loop over `i`
    except codegen.TooLarge:
        return None
    carries = body.ins[n_consts:n_consts + n_carry]
    made = list(dict.fromkeys(v for r in regions for v in r.outs))
    if any(o is not c and o not in made for c, o in zip(carries, body.outs)):
        return None  # a carry that takes another input's value: not worth an order of copies
    local = list(dict.fromkeys(list(carries) + made))
    if not all(map(_typed, body.ins + local + list(outs))) or (test and body.outs[-1] not in local):
        return None
    axes = _batch_axes(body, carries, local, regions, kernels)
    wide = _bool_dtype(local)
    if axes is None and (sum(_held_bytes(v, wide) for v in local) if target.kernel == "cuda" else
                         sum(math.prod(v.shape) for v in local)) > _WHOLE[target.kernel]:
        return None
    return _Source(body, n_consts, n_carry, reverse, outs, target, regions, kernels, local, axes, test).kernel()


def kernels_of(program, target):
    """The loop kernels of a program's loops (its own equations) for a Target."""
    held = [eq.params.get("spec") for eq in program.equations]
    return [k for spec in held if hasattr(spec, "kernel") and (k := spec.kernel(target)) is not None]


def _bool_dtype(local):
    """The dtype a loop holds its bool values in: an integer as wide as its widest value (the
    loop's index type beside doubles), so a step's loop loads and stores them in vectors of as
    many lanes as its numbers (GCC 12 vectorises no loop loading a 1-byte bool beside doubles)."""
    width = min(8, max((v.dtype.itemsize for v in local), default=1))
    return numpy.dtype(numpy.bool_ if width == 1 else f"int{8 * width}")


def _held(v, wide):
    """The dtype a loop's buffer of value v holds."""
    return wide if v.dtype == numpy.bool_ else v.dtype


def _held_bytes(v, wide):
    return math.prod(v.shape) * _held(v, wide).itemsize


def _typed(v):
    """Whether a kernel can hold v (a C type of codegen's)."""
    try:
        codegen.ctype(v.dtype)
        return True
    except KeyError:
        return False


def _batch_axes(body, carries, local, regions, kernels):
    """Where the per-element schedule applies (see the module's docstring): (B, {value or
    region: the position of its batch axis}); else None. B is the first carry's first axis longer
    than 1 (a reverse sweep's bundle of one cotangent leads with a unit axis);
    each value the loop keeps and each region has one axis of that length, a region's among the
    axes its loop runs over (not unrolled), and each element of a region reads every array at
    its own batch element along that axis."""
    b = next((d for d in carries[0].shape if d > 1), None) if carries else None  # past a bundle's unit axis
    if b is None:
        return None

    def axis(shape, within=None):
        at = [k for k, d in enumerate(shape[:within]) if d == b]
        return at[0] if len(at) == 1 and shape.count(b) == 1 else None
    at = {v: axis(v.shape) for v in local + list(body.outs)}
    if None in at.values():
        return None
    for r, k in zip(regions, kernels):
        a = at[r] = axis(r.shape, len(r.shape) - k.inner)
        if a is None:
            return None
        for j, idx in k.reads:
            shape = k.arrays[j].shape
            if b in shape and (shape.count(b) > 1 or idx[shape.index(b)] != ix.sym(f"d{a}")):
                return None
    return b, at


class _Source:
    """The text of one loop kernel (see the module's docstring for the schedules). A value's
    buffer is laid out as the value (outer, B, inner) around its batch axis; a batch range
    b0..b1 of the per-element schedule runs its elements of each region and value; the whole
    schedule is a batch of one (outer 1, inner: every element)."""

    def __init__(self, body, n_consts, n_carry, reverse, outs, target, regions, kernels, local, axes, test):
        self.body, self.nk, self.reverse, self.outs = body, n_carry, reverse, outs
        self.test = body.outs[-1] if test else None  # a while loop's condition
        self.ys = body.outs[n_carry:len(body.outs) - bool(test)]  # a scan's stacked outputs' slices
        self.regions, self.kernels, self.local = regions, kernels, local
        self.wide = _bool_dtype(local)  # bools held as integers of this type (converted at the copies in and out)
        self.cuda, self.schedule = target.kernel == "cuda", "whole" if axes is None else "element"
        self.batch, self.axis = axes or (1, {})
        self.shared = self.cuda and self.schedule == "whole"  # one block's threads, shared memory
        self.constants = list({id(a): a for k in kernels for a in k.arrays if isinstance(a, Lit)}.values())
        self.carries = body.ins[n_consts:n_consts + n_carry]
        self.xs = body.ins[n_consts + n_carry:]
        self.names = {v: f"a{k}" for k, v in enumerate(body.ins)}
        self.names.update((v, f"v{k}") for k, v in enumerate(local))  # the carries' buffers too
        self.names.update((id(c), f"c{k}") for k, c in enumerate(self.constants))
        self.offsets, at = {}, 0
        for v in local:
            self.offsets[v] = at
            at += -(-_held_bytes(v, self.wide) // _ALIGN) * _ALIGN
        self.scratch = 0 if self.shared else at
        per = at // self.batch  # bytes of one batch element's values
        self.chunk = max(1, min(self.batch, _CHUNK_BYTES // max(per, 1))) if not self.cuda else 1

    def _name(self, a):
        return self.names[a if isinstance(a, Var) else id(a)]

    def _ctype(self, a):
        """The C type of a's elements in this kernel: a bool of its own buffers held wide."""
        return codegen.ctype(_held(a, self.wide) if a in self.offsets else a.dtype)

    def kernel(self):
        text = (_read("gpuad_math.cuh") + "\n" if self.cuda else "") + \
            "".join(self._step(j, k) for j, k in enumerate(self.kernels)) + self._entry()
        name = "gpuad_loop_" + hashlib.sha1(text.encode()).hexdigest()[:16]
        text = text.replace("@NAME@", name)
        grid = block = None
        if self.cuda and self.schedule == "element":
            grid, block = -(-self.batch // _BLOCK), _BLOCK
        elif self.cuda:  # one block, of as many warps as the widest step has elements (a small state: one)
            widest = max([k.size for k in self.kernels] + [math.prod(v.shape) for v in self.local])
            grid, block = 1, min(_BLOCK, -(-widest // 32) * 32)
        return LoopKernel(name, text, len(self.body.ins), self.constants, self.scratch, self.schedule, self.batch,
                          grid, block)

    def _step(self, j, kernel):
        """Region j as a function over a range of its loop's elements."""
        params = [f"const {self._ctype(a)}* __restrict__ in{m}" for m, a in enumerate(kernel.arrays)]
        params += [f"{self._ctype(v)}* __restrict__ out{m}" for m, v in enumerate(kernel.outs)]
        if not self.cuda:
            head, loop = "static inline void", "#pragma omp simd\n    for (long long i = begin; i < end; ++i)"
        elif not self.shared:
            head, loop = "static __device__ __forceinline__ void", "for (long long i = begin; i < end; ++i)"
        else:  # one block: its threads share the elements
            head, loop = "static __device__ __forceinline__ void", \
                "for (long long i = begin + threadIdx.x; i < end; i += blockDim.x)"
        return (f"{head} @NAME@_step{j}({', '.join(params)}, const long long begin, const long long end) {{\n"
                f"    {loop} {{\n        {kernel.dense}\n    }}\n}}\n\n")

    def _around(self, shape, axis):
        """(outer, inner): the elements before and after the batch axis of a shape (whole: 1, all)."""
        if self.schedule == "whole":
            return 1, math.prod(shape)
        return math.prod(shape[:axis]), math.prod(shape[axis + 1:])

    def _span(self, outer, inner, what):
        """what(begin, end) for each run of the batch range's elements of a layout (outer, inner)."""
        b = self.batch
        if self.schedule == "whole":  # constant bounds: the compiler unrolls a small state's loops
            return what("0LL", f"{outer * inner}LL")
        if outer == 1:
            return what(f"b0 * {inner}LL", f"b1 * {inner}LL")
        return (f"for (long long o = 0; o < {outer}LL; ++o) " +
                what(f"o * {b * inner}LL + b0 * {inner}LL", f"o * {b * inner}LL + b1 * {inner}LL"))

    def _each(self, v, statement):
        """statement (over `e`) for each element of value v in the batch range."""
        if self.shared:
            return f"for (long long e = threadIdx.x; e < {math.prod(v.shape)}LL; e += blockDim.x) {statement}"
        return self._span(*self._around(v.shape, self.axis.get(v)),
                          lambda lo, hi: f"for (long long e = {lo}; e < {hi}; ++e) {statement}")

    def _buffers(self):
        if self.shared or (self.schedule == "whole" and self.scratch <= _LOCAL_BYTES):
            # a small state in arrays of the function's own: held in registers where the loops unroll
            return [f"{'__shared__ ' if self.shared else ''}{self._ctype(v)} {self._name(v)}"
                    f"[{math.prod(v.shape)}];" for v in self.local]
        return [f"{self._ctype(v)}* const {self._name(v)} = ({self._ctype(v)}*)(scratch + "
                f"{self.offsets[v]}LL);" for v in self.local]

    def _trips(self):
        """A batch range's loop: its carries in, the trips, its carries out."""
        sync = ["__syncthreads();"] if self.shared else []
        lines = self._buffers()
        lines += [self._each(c, f"{self._name(c)}[e] = {self._name(c)}_in[e];") for c in self.carries] + sync
        step = f"    const long long t = {'trips - 1 - s' if self.reverse else 's'};"
        lines += ["for (;;) {"] if self.test is not None else ["for (long long s = 0; s < trips; ++s) {", step]
        lines += [f"    const {codegen.ctype(x.dtype)}* const {self._name(x)} = {self._name(x)}_all + "
                  f"t * {math.prod(x.shape)}LL;" for x in self.xs]
        for j, (r, k) in enumerate(zip(self.regions, self.kernels)):
            args = ", ".join([self._name(a) for a in k.arrays] + [self._name(v) for v in k.outs])
            loop = r.shape[:len(r.shape) - k.inner]
            outer, inner = (1, k.size) if self.schedule == "whole" else self._around(loop, self.axis[r])
            if self.shared:
                lines.append(f"    @NAME@_step{j}({args}, 0LL, {k.size}LL);")
            else:
                call = f"@NAME@_step{j}({args}, " + "{}, {});"
                lines.append("    " + self._span(outer, inner, call.format))
            lines += ["    " + s for s in sync]
        if self.test is not None:  # on while the condition holds for an element of the range (of the block)
            lines += ["    int go = 0;", "    " + self._each(self.test, f"go |= (int){self._name(self.test)}[e];"),
                      "    if (!__syncthreads_or(go)) break;" if self.shared else "    if (!go) break;"]
        for j, y in enumerate(self.ys, self.nk):  # the stacked outputs (results after the carries): slice t
            lines.append("    " + self._each(y, f"r{j}[t * {math.prod(y.shape)}LL + e] = {self._name(y)}[e];"))
        lines += ["    " + s for s in sync]  # every stacked output read before the carries change
        lines += ["    " + self._each(c, f"{self._name(c)}[e] = {self._name(o)}[e];")
                  for c, o in zip(self.carries, self.body.outs) if o is not c]
        lines += ["    " + s for s in sync] + ["}"]
        return lines + [self._each(c, f"r{j}[e] = {self._name(c)}[e];") for j, c in enumerate(self.carries)]

    def _operands(self):
        """(C type, name) of the kernel's array arguments: the loop's operands, its regions'
        constants, the scratch buffers (unless shared), its results."""
        ops = []
        for v in self.body.ins:
            suffix = "_in" if v in self.carries else "_all" if v in self.xs else ""
            ops.append((f"const {codegen.ctype(v.dtype)}", self._name(v) + suffix))
        ops += [(f"const {codegen.ctype(c.dtype)}", self._name(c)) for c in self.constants]
        ops += [] if self.shared else [("char", "scratch")]
        return ops + [(codegen.ctype(a.dtype), f"r{j}") for j, a in enumerate(self.outs)]

    def _entry(self):
        ops, body = self._operands(), "\n        ".join(self._trips())
        if self.cuda:
            params = ", ".join(f"{t}* __restrict__ {n}" for t, n in ops)
            first = ("const long long b0 = (long long)blockIdx.x * blockDim.x + threadIdx.x;\n    "
                     f"if (b0 >= {self.batch}LL) return;\n    const long long b1 = b0 + 1;"
                     if self.schedule == "element" else "const long long b0 = 0, b1 = 1;")
            return (f'extern "C" __global__ void @NAME@({params}, const long long trips) {{\n    {first}\n'
                    f"    {{\n        {body}\n    }}\n}}\n")
        # each operand an ndarray of its dtype, aligned and C-contiguous (NumPy's flag 0x1), else 1 + its position
        dtypes = [v.dtype for v in self.body.ins] + [c.dtype for c in self.constants] + [numpy.uint8] + \
            [a.dtype for a in self.outs]
        checks = "\n    ".join(f"if (!({codegen.readable_test(f'o{k}', d)} && (*(const int*)(o{k} + GPUAD_FLAGS) & 1)))"
                               " "
                               f"return {k + 1};" for k, d in enumerate(dtypes))
        return string.Template(_HOST_ENTRY).substitute(
            checks=checks, objects=", ".join(f"const char* o{k}" for k in range(len(ops))),
            pointers="\n    ".join(f"{t}* const {n} = *({t}* const*)(o{k} + GPUAD_DATA);"
                                   for k, (t, n) in enumerate(ops)),
            captured=", ".join(n for _, n in ops), chunks=-(-self.batch // self.chunk), chunk=self.chunk,
            batch=self.batch, work=sum(math.prod(v.shape) for v in self.local), body=body,
            params=", ".join(f"{t}* const {n}" for t, n in ops))


# A CPU loop: batch ranges of `chunk` elements on the thread pool (where the work is large)
_HOST_ENTRY = """static void @NAME@_range(${params}, const long long trips, const long long b0, const long long b1) {
        ${body}
}

extern "C" int @NAME@(${objects}, const long long trips) {
    ${checks}
    ${pointers}
    gpuad_split(${chunks}LL, trips * ${work}LL, [&](const long long begin, const long long end) {
        for (long long k = begin; k < end; ++k)
            @NAME@_range(${captured}, trips, k * ${chunk}LL,
                         k * ${chunk}LL + ${chunk}LL < ${batch}LL ? k * ${chunk}LL + ${chunk}LL : ${batch}LL);
    });
    return 0;
}
"""


def runner(kernel, outs, steps):
    """The Runner of a loop kernel (one per kernel: a replay planned again reuses its build) whose
    results have the avals outs; steps: the equations the loop runs per call when it runs from
    Python (trips times its body's)."""
    if kernel.runner is None:
        kernel.runner = Runner(kernel, outs, steps >= _WAIT_FROM)
    return kernel.runner


# A loop that would run this many equations from Python (a few microseconds each) waits for its
# kernel's build (about a second or two) rather than run them meanwhile.
_WAIT_FROM = 500_000


class Runner:
    """Calls of one loop kernel on the active backend: `(operands, trips)` -> the loop's results
    (a tuple), or None while the kernel is still being built (in the background, unless `wait`,
    GPUAD_COMPILE=sync or a build found in the kernel cache: then before the first call returns).
    A kernel that fails to build leaves every call None (the caller's loop runs instead)."""

    def __init__(self, kernel, outs, wait=False):
        self.kernel, self.outs, self.call, self.ready = kernel, outs, None, None
        be = backends.current()
        cuda = be.name == "cupy"
        build = self._cuda if cuda else self._host
        if wait or builds.waits() or (cuda_cached(kernel) if cuda else host_cached(kernel)):
            build(be)
        else:
            self.ready = builds.submit(build, be)

    def __call__(self, operands, trips):
        return None if self.call is None else self.call(operands, trips)

    def _host(self, be):
        from . import host
        lib = host.library([self.kernel])
        if lib is None:
            return
        fn = getattr(lib, self.kernel.name)
        fn.restype = ctypes.c_int
        constants = [_native(c.val) for c in self.kernel.constants]
        fn.argtypes = [ctypes.py_object] * (self.kernel.operands + len(constants) + 1 + len(self.outs)) + \
            [ctypes.c_longlong]
        n, lock, result = self.kernel.scratch, threading.Lock(), be.xp.asarray  # the backend's array
        kept = _aligned(n) if n <= _KEPT_BYTES else None
        # positions refused at an earlier call (a seed's strided column, a 0-d scalar's view): copied
        # before the call, where each refusal costs a call of its own
        copied = set()

        def call(operands, trips):
            outs = [numpy.empty(a.shape, a.dtype) for a in self.outs]
            operands = [_native(a) if k in copied else a for k, a in enumerate(operands)]
            with lock:
                scratch = kept if kept is not None else _aligned(n)
                while refused := fn(*operands, *constants, scratch, *outs, trips):  # copy what it cannot read
                    a = operands[refused - 1]
                    copy = _native(a)
                    copied.update(k for k, x in enumerate(operands) if x is a)
                    operands = [copy if x is a else x for x in operands]  # a loop reads a value several times
                    if copy is a:
                        raise TypeError(f"gpuad.jit: a loop kernel cannot read its argument {refused - 1} "
                                        f"({type(a).__name__})")
            return tuple(map(result, outs))
        self.call = call

    def _cuda(self, be):
        import cupy

        from ..kernels.launch import compiled
        raw = compiled(self.kernel.text, self.kernel.name)  # NVRTC now: a kernel that cannot build fails here
        k = self.kernel
        constants = [cupy.ascontiguousarray(cupy.asarray(c.val)) for c in k.constants]

        def call(operands, trips):  # scratch of its own each call (CuPy's pool): calls on several streams
            outs = tuple(cupy.empty(a.shape, a.dtype) for a in self.outs)
            scratch = [cupy.empty(k.scratch, numpy.uint8)] if k.schedule == "element" else []
            raw((k.grid,), (k.block,), tuple([cupy.ascontiguousarray(a) for a in operands] + constants + scratch +
                                             [*outs, numpy.int64(trips)]))
            return outs

        self.call = call


def _aligned(n):
    """A byte array of n bytes (at least one) starting on a 64-byte boundary."""
    raw = numpy.empty(n + _ALIGN, numpy.uint8)
    skip = -raw.ctypes.data % _ALIGN
    return raw[skip:skip + max(n, 1)]


def _native(a):
    """a as an ndarray the kernel reads in place: C-contiguous, aligned, in this machine's byte
    order (numpy.array copies into a fresh buffer where it is not)."""
    a = numpy.asarray(a)
    return numpy.array(a, dtype=a.dtype.newbyteorder("="), order="C", copy=None)


def host_cached(kernel):
    """Whether the CPU library of a loop kernel is loaded or on disk (no compiler run)."""
    from . import host
    return host.cached([kernel])


def cuda_cached(kernel):
    """Whether the CUBIN of a loop kernel is loaded or in the kernel cache (no NVRTC run), as a
    program's regions are asked (kernels/launch.py's ready)."""
    from ..kernels.launch import ready
    return ready([kernel])
