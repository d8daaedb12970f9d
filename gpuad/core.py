"""Values, levels and primitive dispatch.

Every transform (forward, reverse, vmap) is a *trace* with a level: its depth in
the stack of active transforms. A traced value (a `Tracer`) belongs to one trace.
`bind` applies a primitive: it hands the call to the highest-level trace among the
arguments, whose rule applies the primitive again to the values one level down,
until plain backend arrays are reached and the primitive's `impl` runs. Levels keep
nested derivatives apart (no perturbation confusion).
"""
import contextlib
import contextvars
import functools
import math

import numpy as onp

from . import backends
from .counterparts import advice

# Primitive evaluations on backend arrays since import; tests read it to show that a
# Jacobian's cost in primitive applications does not grow with the number of directions.
stats = {"evals": 0}

# The active traces, innermost last: per thread and per context (asyncio tasks), so that a trace
# in one thread never takes another's values.
_stack = contextvars.ContextVar("gpuad_traces", default=())


def trace_stack():
    """The traces active in this thread (and context), innermost last."""
    return _stack.get()


class ShapeDtypeStruct:
    """A shape and a dtype standing for an array without its data (as jax.ShapeDtypeStruct):
    what abstract rules compute, what gpuad.eval_shape returns, what gpuad.jit(f).lower takes.

    >>> ShapeDtypeStruct((2, 3), "float32")
    ShapeDtypeStruct(shape=(2, 3), dtype=float32)
    """
    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape, self.dtype = tuple(int(d) for d in shape), onp.dtype(dtype)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return math.prod(self.shape)

    def __eq__(self, other):
        return isinstance(other, ShapeDtypeStruct) and (self.shape, self.dtype) == (other.shape, other.dtype)

    def __hash__(self):
        return hash((self.shape, self.dtype))

    def __repr__(self):
        return f"ShapeDtypeStruct(shape={self.shape}, dtype={self.dtype.name})"


SCALARS = (bool, int, float, complex)  # Python numbers: weak scalars wherever arrays are expected


def result_dtype(*args):
    """NumPy's promotion of the arguments' dtypes; Python scalars are weak (float32 * 2.0 is float32)."""
    return onp.result_type(*(a if isinstance(a, SCALARS) else dtype(a) for a in args))


def real_dtype(d):
    """The real dtype of d's precision: float64 for complex128, d itself for a real dtype."""
    d = onp.dtype(d)
    return onp.finfo(d).dtype if d.kind == "c" else d


def same(x):
    """The abstract value of an argument: its shape and dtype (the rule of shape-preserving ops)."""
    return ShapeDtypeStruct(shape(x), dtype(x))


class Primitive:
    """One operation and its rules.

    impl(*arrays, **params)             evaluate on backend arrays
    abstract(*args, **params)           -> ShapeDtypeStruct of the output, from the arguments' shapes
                                           and dtypes alone (gpuad.jit traces with it)
    jvp(primals, tangents, **params)    -> (out, tangent bundle or None); tangents hold None for zero;
                                           a bundle carries K directions on a leading axis
    vjp(ct, args, out, needed, **params) -> one cotangent bundle (or None) per argument
    batch(args, batched, **params)      -> (out, out_batched); batched values lead with the batch axis
    Non-differentiable primitives (comparisons, floor, ...) set nondiff and need no jvp/vjp.
    multiple_results: the primitive has several outputs (a factorisation's factors, a loop's output
    leaves), as JAX's: impl and bind return a tuple of them, abstract a tuple of ShapeDtypeStructs,
    jvp (outs, tangents: None, or a tuple holding None for a zero one), vjp takes cts and out as
    tuples (a None in cts: a zero cotangent), batch (outs, [batched]), the sparsity rule `pattern`
    takes a tuple of the outputs' avals and returns one list per output.
    complex_ready: whether the jvp/vjp rules hold for complex values (JAX's conventions: the JVP is
    the R-linear tangent map, the VJP its transpose, never its adjoint); the derivative traces refuse
    complex arguments of a primitive without it (refuse_complex).

    What the compiler (gpuad/compiler/) asks a primitive, set where it is defined; unset, the
    compiler leaves the primitive as one step of its own:
    elementwise      computes each output element from the arguments' elements at its place
    expression(operands, dtype, numbers) -> its C/CUDA expression over its operands' (an elementwise
                     primitive the fused kernels can spell); numbers: each operand's value where it
                     is a literal number, else None (a power by a literal 2 multiplies)
    moves            each output element is one element of an argument, or zero (data movement)
    view(**params)   -> whether its result may share its argument's memory (None: never)
    contiguous(args, **params) -> whether that view of a C-contiguous argument is C-contiguous too
                     (then reshaping it copies nothing); unset: it may not be
    index(out, shapes, read, **params) -> [(condition, argument position, its index)]: a move's index
                     map in index expressions (gpuad/compiler/index.py): the output element at the
                     index tuple `out` is that argument's element at that index under the first case
                     whose condition holds, else zero; shapes: the arguments' shapes; read(a, at): the
                     integer at index `at` of the index array a (an argument's position, or an array
                     of the params), read(None, at): which element of a scatter's index arrays lands at
                     `at` (-1: none). Fused kernels print it; coordinate rules evaluate it on arrays
    positions(args, **params) -> [(index array, length of the axis it indexes)]: the positions a
                     gather reads at, or a scatter writes at (then `scatters` is set)
    reads_each_once  reads each element of its arguments once for the whole output (a sum, a
                     concatenation, a scatter): a fused reader evaluates an argument size(arg)/size(out)
                     times per output element
    recompute        "free" (index arithmetic and loads) or "cheap" (one arithmetic operation): how
                     freely a fused region may compute an element again where it is read
    reduction        the operation it folds the reduced elements with ("add" for a sum)
    zero_where       where its output is zero for zeros in its arguments: "first" (where its first
                     argument is: a / b, -a), "any" (a * b), "all" (a + b, a != b), "selected" (where(c, a, b))
    entries(**params) -> (coordinates, values, shape) of the non-zeros of an array made from its
                     indices alone (eye: the seeds of jacfwd and jacrev)
    coords(entries, out_shape, most, **params) -> (the coordinates in the output of an argument's
                     entries (.coords, .values, .shape), which entries they are: an index into
                     .values), or None where it does not apply or would make more than `most`: a
                     data movement's map of non-zeros (compiler/structure.py moves supports and
                     entries by it)
    support(ats, shapes, out_shape, most, **params) -> the sorted flat positions where its output may
                     be non-zero, from each argument's (ats: sorted flat positions, None where it may
                     be non-zero anywhere; shapes: the arguments' shapes), or None (anywhere, or more
                     than `most` to find): a rule of its own for compiler/structure.py (a contraction's)
    launches         the kernels (library calls, copies) one call launches on CuPy: an int, or a
                     function (args, **params) (the cost model, gpuad/compiler/cost.py)
    copied(args, **params) -> for each operand, whether the call copies it first (a GEMM's transposes)
    impl_into        xp -> impl taking `out=` (a buffer of the output's shape and dtype, written in
                     place), where the array module has one: a compiled program keeps such buffers
                     from call to call
    temporaries(args, within, **params) -> bytes one call holds while it runs beside its arguments and
                     its output (a loop's checkpointed carries, its kernel's scratch, its body's buffers):
                     args the arguments' avals; within (a replay.Within) says the peak of a body
                     program's run and the target; the replay's memory plan adds them at its step
    once(eq)         -> the equation (of this primitive, in a program) with the operands it is handed
                     several times (a loop's constants: one value closed over by several stages of its
                     body) handed once, or None where none is (the passes' shared_operands)
    unchanged(constants, **params) -> the position of the argument it returns unchanged (its shape and
                     dtype permitting), or None; constants holds each argument's constant value, None
                     where it is a variable of the program (the passes' simplify)
    """
    __slots__ = ("name", "impl", "jvp", "vjp", "batch", "nondiff", "abstract", "impl_for", "lower", "pattern",
                 "multiple_results",
                 "rev_forward", "complex_ready", "elementwise", "expression", "moves", "view", "positions",
                 "scatters", "reads_each_once", "recompute", "reduction", "zero_where", "entries", "coords",
                 "support", "launches", "copied", "unchanged", "impl_into", "temporaries", "contiguous", "once",
                 "index")

    def __init__(self, name, impl, jvp=None, vjp=None, batch=None, nondiff=False, abstract=None):
        self.name, self.impl, self.jvp, self.vjp, self.batch = name, impl, jvp, vjp, batch
        self.nondiff, self.abstract = nondiff, abstract
        self.multiple_results = False
        self.impl_for = None  # xp -> impl on that array module with no backend lookup, where there is one
        self.lower = None  # (xp, argument shapes, **params) -> a compiled step's function, planned once
        self.pattern = None   # the sparsity rule (gpuad.sparse), where the primitive has one
        self.rev_forward = None  # (values, **params) -> output, where a tape records it (custom_call)
        self.complex_ready = nondiff  # no rule, nothing to get wrong
        self.elementwise = self.moves = self.scatters = self.reads_each_once = False
        self.expression = self.view = self.positions = self.recompute = self.reduction = None
        self.zero_where = self.entries = self.coords = self.support = None
        self.copied = self.unchanged = self.impl_into = None
        self.temporaries = self.contiguous = self.once = self.index = None
        self.launches = 1

    def __call__(self, *args, **params):
        return bind(self, *args, **params)

    def impl_on(self, xp, shapes=None, **params):
        """impl with its parameters bound, for arrays of the module xp (a compiled program's step,
        whose arguments have these shapes where given)."""
        if self.lower is not None and shapes is not None:
            return self.lower(xp, shapes, **params)
        f = self.impl if self.impl_for is None else self.impl_for(xp)
        return functools.partial(f, **params) if params else f

    def __repr__(self):
        return f"<primitive {self.name}>"


def linear(name, impl, lead, adjoint, abstract):
    """A primitive linear in its one argument. Its JVP and vmap rules are `lead`, the same op on
    an array with one extra leading axis (a bundle of directions, or a batch); its VJP is
    `adjoint(ct, arg_shape, **params)`, the transpose on a cotangent bundle."""
    prim = Primitive(name, impl, abstract=abstract)
    prim.complex_ready = True  # a C-linear map is its own tangent map, and its transpose needs no conjugate
    prim.jvp = lambda primals, tangents, **kw: (prim(primals[0], **kw), lead(tangents[0], **kw))
    prim.batch = lambda args, batched, **kw: (lead(args[0], **kw), True)
    prim.vjp = lambda ct, args, out, needed, **kw: [adjoint(ct, shape(args[0]), **kw)]
    return prim


def operand(x):
    """x as a primitive takes it: traced values and Python numbers as they are, a (nested) list
    holding traced values the traced array numpy.array would make of it, anything else (a list, a
    NumPy array on the CuPy backend) an array of the active backend. Code that applies operators
    to its arguments itself (x - mean) takes them through this first."""
    if isinstance(x, Tracer):
        return x
    if holds_tracer(x) and stack_list is not None:
        return stack_list(x)
    return backends.current().coerce(x)


stack_list = None  # list holding traced values -> one traced array: gpuad.numpy.creation installs its array


def holds_tracer(x):
    """Whether x is a (nested) list or tuple holding a traced value."""
    return isinstance(x, (list, tuple)) and any(isinstance(v, Tracer) or holds_tracer(v) for v in x)


def bind(prim, *args, **params):
    top = None
    vals = []
    for a in args:
        if isinstance(a, Tracer) and (top is None or a._trace.level > top.level):
            top = a._trace
        vals.append(operand(a))
    if top is None and not args:
        top = staging()  # made from its parameters alone: part of the program being traced, if any
    if top is None:
        stats["evals"] += 1
        out = prim.impl(*vals, **params)
        return map_results(prim, _array, out)
    return top.process(prim, vals, params)


def _array(out):
    """NumPy returns scalars for 0-d results; results stay arrays, as the transforms promise."""
    return onp.asarray(out) if isinstance(out, onp.generic) else out


def results(prim, out):
    """A primitive's output(s) as a tuple: one element where it has one result."""
    return out if prim.multiple_results else (out,)


def map_results(prim, f, out, *beside):
    """f applied to each of a primitive's outputs (and the matching element of each of `beside`,
    given as the outputs are), returned as the primitive returns them (a tuple where it has
    multiple_results, else one value)."""
    return tuple(map(f, out, *beside)) if prim.multiple_results else f(out, *beside)


def refuse_complex(prim, values):
    """A TypeError where a primitive whose derivative rules hold for real values only gets complex
    arguments under a derivative transform."""
    for v in values:
        if dtype(v).kind == "c":
            raise TypeError(f"gpuad differentiates {prim.name} of real values only, and got {dtype(v)}; "
                            "split the value into gpuad.numpy.real and imag parts first, or compute it outside "
                            "the transform (docs/complex.md lists what takes complex values)")


_STACK = object()  # staging()'s default: ask the stack of traces, not a value


def staging(x=_STACK):
    """gpuad.jit's "am I traced?", which every place that asks it asks here. staging(): the innermost
    active trace that stages primitives (the trace of a program gpuad.jit traces), or None.
    staging(x): the staging trace x is a value of, beneath any transforms over it, or None (x is a
    constant, or a value of other transforms alone)."""
    if x is _STACK:
        return next((t for t in reversed(_stack.get()) if t.stages), None)
    while isinstance(x, Tracer) and not x._trace.stages:
        x = x._inner()
    return x._trace if isinstance(x, Tracer) else None


class Trace:
    """Base of the transforms' traces; `level` orders them. A tracer of a trace carries a value
    one level down and the trace's own payload: a tangent bundle, a tape id, a batch mark."""
    __slots__ = ("level",)
    stages = False  # whether primitives without arguments are recorded here, not evaluated

    def __init__(self, level):
        self.level = level

    def process(self, prim, args, params):
        raise NotImplementedError

    def split(self, args):
        """([value one level down], [payload, or None where an argument is not this trace's])."""
        values, payloads = [], []
        for a in args:
            if isinstance(a, Tracer) and a._trace is self:
                values.append(a._inner())
                payloads.append(a._payload())
            else:
                values.append(a)
                payloads.append(None)
        return values, payloads

    def lower(self, x):
        """x with this trace's level stripped (the primal of a dual number, a tape entry's value)."""
        return x._inner() if isinstance(x, Tracer) and x._trace is self else x


@contextlib.contextmanager
def new_trace(cls):
    traces = _stack.get()
    trace = cls(len(traces) + 1)
    token = _stack.set(traces + (trace,))
    try:
        yield trace
    finally:
        _stack.reset(token)


class Tracer:
    """A value under a transform. Array methods and operators are installed by gpuad.numpy."""
    __slots__ = ("_trace",)
    __array_priority__ = 1000
    __array_ufunc__ = None  # make NumPy defer to our reflected operators (W @ x with W a NumPy array)

    @property
    def shape(self):
        return shape(self._inner())

    @property
    def dtype(self):
        return dtype(self._inner())

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        n = 1
        for d in self.shape:
            n *= d
        return n

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __array__(self, *a, **k):
        raise TypeError(f"{self._not_an_array()}. {advice('converts its arguments to NumPy arrays')}")

    def _not_an_array(self):
        return f"a traced value (shape {self.shape}) cannot be converted to a NumPy array: it carries derivatives"

    def __float__(self):
        raise TypeError(
            "float() (or int(), complex()) of a traced value would drop its derivative; keep it as an array "
            "(use gpuad.numpy functions), or compute the value outside the transform. A NumPy array calls "
            "float() to store a value (y[i] = x): make y with gpuad.numpy and write y = y.at[i].set(x).")

    __int__ = __complex__ = __index__ = __float__

    def __bool__(self):
        return bool(self._inner())

    def __repr__(self):
        return f"{type(self).__name__}({self._inner()!r})"

    def _inner(self):
        """The value one level down (the primal of a dual number, the value of a tape entry)."""
        raise NotImplementedError

    def _payload(self):
        """What this tracer's trace adds to the value below: a tangent bundle, a tape id, ..."""
        raise NotImplementedError

    def _held_bytes(self):
        return held_bytes(self._inner())  # a tape id or a batch mark holds no array


def shape(x):
    s = getattr(x, "shape", None)
    if s is None:  # Python scalars, and nested lists that bind() will turn into arrays
        if isinstance(x, (int, float, complex)):
            return ()
        return (len(x),) + shape(x[0]) if holds_tracer(x) else onp.shape(x)
    return tuple(s)


def dtype(x):
    d = getattr(x, "dtype", None)
    if d is None:
        if holds_tracer(x):
            return result_dtype(*x)
        return onp.asarray(x).dtype if isinstance(x, (list, tuple)) else backends.current().xp.result_type(x)
    return d


def is_inexact(x):
    return dtype(x).kind in "fc"


def held_bytes(x):
    """Bytes x holds, with what it carries for the transforms it is under (inside jacfwd with K
    directions a value holds its primal and K tangents).

    >>> held_bytes(onp.zeros(3))
    24
    """
    if isinstance(x, Tracer):
        return x._held_bytes()
    return math.prod(shape(x)) * dtype(x).itemsize
