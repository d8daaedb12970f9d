"""Abstract tracing: a function run once on shapes and dtypes into a Program (ir.py).

`trace_program` runs a function on abstract values (shape and dtype, no data) under a
`ProgramTrace`: every primitive applied to them becomes an `Equation` of typed variables,
integer index arithmetic and non-differentiable ops included. Operations on constants alone
are evaluated while tracing (constant folding comes free from `bind`); primitives without
arguments (the `eye` of Jacobian seeds) are staged as equations, and the passes (passes.py)
decide after tracing which of the values made from them to evaluate. The traced program is
optimised, then either evaluated with `bind` on any values (so every transform of a compiled
function runs over its program, with no second copy of any rule) or compiled by
`replay.Replay` into one Python function over backend arrays, with no per-primitive dispatch.
"""
import itertools

from .. import backends
from ..core import ShapeDtypeStruct, Trace, Tracer, map_results, new_trace
from .ir import Equation, Lit, Program, Var, nbytes
from .passes import optimised


class ProgramTracer(Tracer):
    """A value while a program is traced: a variable with a shape and a dtype, no data."""
    __slots__ = ("var", "origin")

    def __init__(self, trace, var, origin):
        self._trace, self.var, self.origin = trace, var, origin

    @property
    def shape(self):
        return self.var.shape

    @property
    def dtype(self):
        return self.var.dtype

    def _inner(self):
        raise TypeError(
            f"the value of {self.origin} (shape {self.shape}, {self.dtype}) is not known while "
            f"{self._trace.who} traces the function: Python control flow (if, while, bool(), float(), int(), "
            "indexing with it) cannot depend on it, nor can a NumPy array store it (y[i] = x: make y with "
            f"gpuad.numpy and write y = y.at[i].set(x)). Use gpuad.numpy.where (or gnp.take for positions), "
            f"{self._trace.remedy}.")

    def _not_an_array(self):
        return (f"the value of {self.origin} (shape {self.shape}, {self.dtype}) cannot be converted to a NumPy "
                f"array: {self._trace.who} traces the function without data")

    def _payload(self):
        return self.var

    def _held_bytes(self):
        return nbytes(self.var)

    __float__ = __int__ = __complex__ = __index__ = lambda self, *a, **k: self._inner()

    def __repr__(self):
        return f"Traced<{self.dtype.name}{list(self.shape)}>({self.var})"


class ProgramTrace(Trace):
    """who traces (for messages: "gpuad.jit") and the remedy a message offers for control flow on a
    traced value; sweeps: whether a Jacobian sweep ran under it (gpuad.chunking sets it)."""
    __slots__ = ("equations", "_ids", "_copies", "who", "remedy", "sweeps")
    stages = True

    def __init__(self, level):
        super().__init__(level)
        self.who, self.remedy = JIT
        self.sweeps = False
        self.equations = []
        self._ids = itertools.count()
        self._copies = {}  # id of an array read as a constant -> (that array, its copy)

    def constant(self, a):
        """a as a constant of the program: an array is copied once per trace, so the program sees
        it as it was when traced, everywhere, as JAX does (a captured W changed in place after the
        trace changes nothing); in a tuple (an index), each array. Scalars and values of other
        traces stay as they are."""
        if isinstance(a, tuple):
            return tuple(self.constant(b) for b in a)
        if isinstance(a, Tracer) or not backends.current().is_array(a):
            return a
        kept = self._copies.get(id(a))
        if kept is None:
            kept = self._copies[id(a)] = (a, a.copy())  # the original held: its id stays its own
        return kept[1]

    def atom(self, a):
        """a as an operand of an equation: its Var where it is this trace's, else a Lit."""
        return a.var if isinstance(a, ProgramTracer) and a._trace is self else Lit(self.constant(a))

    def new_input(self, aval, origin):
        return ProgramTracer(self, self._var(aval), origin)

    def process(self, prim, args, params):
        if prim.abstract is None:
            raise NotImplementedError(f"primitive {prim.name} has no abstract rule: gpuad.jit cannot trace it")
        out = map_results(prim, self._var, prim.abstract(*args, **params))
        ins = [self.atom(a) for a in args]
        params = {k: self.constant(v) for k, v in params.items()}
        self.equations.append(Equation(prim, ins, out, params))
        origin = f"{prim.name}(...)"
        return map_results(prim, lambda v: ProgramTracer(self, v, origin), out)

    def _var(self, aval):
        return Var(next(self._ids), aval)


JIT = ("gpuad.jit", "or mark the argument static with static_argnums / static_argnames")


def trace_program(fun, avals, names, who=JIT):
    """Trace fun(*leaves) over abstract inputs (ShapeDtypeStructs; `names` says what each is, for
    error messages). fun returns a flat list of outputs. Returns the optimised Program. who:
    (the name of what traces, the remedy its messages offer for control flow on a traced value)."""
    program = traced(fun, avals, names, who)
    optimal = optimised(program)
    optimal.sweeps = program.sweeps
    return optimal


def traced(fun, avals, names, who=JIT):
    """trace_program's Program before the passes (tests/test_passes.py runs them one by one)."""
    with new_trace(ProgramTrace) as trace:
        trace.who, trace.remedy = who
        inputs = [trace.new_input(a, n) for a, n in zip(avals, names)]
        outs = fun(inputs)
        outs = [trace.atom(o) for o in outs]
    program = Program([t.var for t in inputs], trace.equations, outs)
    program.sweeps = trace.sweeps
    return program


def program_so_far(values):
    """The optimised program making these values of a program being traced (beneath any transforms
    over it), from what has been traced so far (its inputs: the variables it reads and does not make)."""
    values = [_beneath(v) for v in values]
    trace = values[0]._trace
    made = {v for eq in trace.equations for v in eq.outs}
    ins = list(dict.fromkeys(a for eq in trace.equations for a in eq.ins if isinstance(a, Var) and a not in made))
    return optimised(Program(ins, list(trace.equations), [v.var for v in values]))


def _beneath(x):
    """The program's value beneath the transforms over x, a value of a program being traced."""
    while not isinstance(x, ProgramTracer):
        x = x._inner()
    return x


def aval_of(x):
    """A ShapeDtypeStruct for an array, a traced value or a ShapeDtypeStruct."""
    return x if isinstance(x, ShapeDtypeStruct) else ShapeDtypeStruct(x.shape, x.dtype)
