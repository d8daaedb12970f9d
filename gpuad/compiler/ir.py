"""The compiler's IR: typed variables, equations over them, programs, and their printing.

A `Program` is a straight list of `Equation`s, `outs = prim(*ins, **params)` (one output, or
several for a primitive with `multiple_results`); an input of an
equation (and an output of the program) is an atom: a `Var`, made by an earlier equation or an
input of the program, or a `Lit`, a constant held in the equation. Programs are made
by abstract tracing (tracing.py), rewritten by the passes (passes.py) and planned, fused and
replayed by the rest of the package. `Program.check()` verifies one.
"""
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as onp

from ..core import ShapeDtypeStruct, Tracer, bind, dtype, results, shape


class Var:
    """A typed variable of a program."""
    __slots__ = ("id", "shape", "dtype")

    def __init__(self, id_: int, aval: Any) -> None:
        self.id: int = id_
        self.shape: tuple[int, ...] = aval.shape
        self.dtype: onp.dtype = aval.dtype

    def __repr__(self) -> str:
        return f"v{self.id}"

    def read(self, env: dict[Any, Any]) -> Any:
        """Its value in env (Var -> value)."""
        return env[self]


class Lit:
    """A constant operand held in an equation (or a constant output of a program): an array, a
    Python number, or a value of an enclosing transform (`traced`: then the program is valid for
    the call that traced it only). Hashed by identity, as a Var is."""
    __slots__ = ("val", "_dtype")

    def __init__(self, val: Any) -> None:
        self.val = val
        self._dtype: onp.dtype | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return shape(self.val)

    @property
    def dtype(self) -> onp.dtype:
        if self._dtype is None:  # once: a Python number's asks the backend's result_type, which every pass reads
            self._dtype = dtype(self.val)
        return self._dtype

    @property
    def traced(self) -> bool:
        return isinstance(self.val, Tracer)

    def read(self, env: dict[Any, Any]) -> Any:
        """Its value, wherever it is read."""
        return self.val

    def __repr__(self) -> str:
        return _atom(self)


Atom = Var | Lit


class _Several:
    """`out` of an equation of several results: there is no one output, so any use of it (an
    attribute, a hash, a comparison, a truth value) raises, saying to read `outs`. A plain
    attribute holding this object costs nothing where `out` is read (a property raising costs
    compile time: the passes and fusion read `out` very often)."""
    __slots__ = ()
    _SAY = "an equation of several results has no one `out`: read its `outs` (a tuple of Vars)"

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"{self._SAY} (`.{name}` was asked)")

    def _refuse(self, *args: Any) -> Any:
        raise TypeError(self._SAY)

    __hash__ = __eq__ = __ne__ = __bool__ = __iter__ = __len__ = _refuse

    def __repr__(self) -> str:
        return "<several results: read outs>"


SEVERAL = _Several()


class Equation:
    """outs = prim(*ins, **params); each input an atom (a Var or a Lit). `out`: its one output
    Var, or a tuple of them (several for a primitive with multiple_results); `outs` is that tuple,
    and `out` stays the one output, a plain attribute, as the passes and fusion read it often; on
    an equation of several it is SEVERAL, which raises wherever it is used."""
    __slots__ = ("prim", "ins", "outs", "out", "params")

    def __init__(self, prim: Any, ins: list[Atom], out: Var | tuple[Var, ...], params: dict[str, Any]) -> None:
        self.prim, self.ins, self.params = prim, ins, params
        self.outs: tuple[Var, ...] = out if isinstance(out, tuple) else (out,)
        self.out: Var = self.outs[0] if len(self.outs) == 1 else SEVERAL  # type: ignore[assignment]


class Program:
    """Equations over variables: inputs in `ins`, outputs in `outs` (atoms)."""
    sweeps = False  # set on a traced program whose function ran Jacobian sweeps (chunk_size can split them)

    def __init__(self, ins: list[Var], equations: list[Equation], outs: list[Atom]) -> None:
        self.ins, self.equations, self.outs = ins, equations, outs

    @property
    def cacheable(self) -> bool:
        """False when a constant is a value of an enclosing transform (a closure over a tracer):
        such a program is valid for the call that traced it only."""
        atoms = [a for eq in self.equations for a in eq.ins] + self.outs
        return not any(isinstance(a, Lit) and a.traced for a in atoms)

    def evaluate(self, values: Sequence[Any]) -> list[Any]:
        """The outputs for input values of any kind (arrays, or tracers of outer transforms), by
        binding each equation's primitive: transforms of a compiled function run over it here."""
        env: dict[Any, Any] = dict(zip(self.ins, values))
        for eq in self.equations:
            out = bind(eq.prim, *[a.read(env) for a in eq.ins], **eq.params)
            env.update(zip(eq.outs, results(eq.prim, out)))
        return [o.read(env) for o in self.outs]

    def text(self) -> str:
        """The program, one equation a line, readable like a jaxpr."""
        lines = [f"{{ lambda {', '.join(_typed(v) for v in self.ins)} ."]
        lines += [f"    {_line(eq)}" for eq in self.equations]
        lines.append(f"  in ({', '.join(_atom(o) for o in self.outs)}) }}")
        return "\n".join(lines)

    def check(self) -> None:
        """Verify the program, or raise ValueError naming the first fault: each variable assigned
        once (an input, or one equation's output), every operand and output defined before it is
        read, each equation's outputs (as many as its primitive makes) of the shapes and dtypes its
        primitive's abstract rule gives, and the programs a parameter holds (a loop's bodies, a
        cond's branches: its `bodies`) verified likewise. The tests run it after every pass."""
        defined: set[Var] = set()

        def define(v: Var, where: str) -> None:
            if v in defined:
                raise ValueError(f"{where}: {v} is assigned a second time")
            defined.add(v)
        for v in self.ins:
            define(v, "the program's inputs")
        for k, eq in enumerate(self.equations):
            where = f"equation {k} ({_line(eq)})"
            unknown = [a for a in eq.ins if isinstance(a, Var) and a not in defined]
            if unknown:
                raise ValueError(f"{where}: reads {unknown[0]} before any input or equation defines it")
            for v in eq.outs:
                define(v, where)
            _check_aval(eq, where)
            for body in (b for p in eq.params.values() for b in getattr(p, "bodies", ())):
                try:
                    body.check()
                except ValueError as e:
                    raise ValueError(f"{where}, in a body it holds: {e}") from None
        unknown = [o for o in self.outs if isinstance(o, Var) and o not in defined]
        if unknown:
            raise ValueError(f"the program's output {unknown[0]} is defined by no input or equation")

    def out_vars(self) -> set[Var]:
        """The outputs that are variables (the others are constants)."""
        return {o for o in self.outs if isinstance(o, Var)}

    def next_id(self) -> int:
        """An id above every variable's: where a pass numbers the variables it adds."""
        return max([v.id for v in self.ins] + [v.id for eq in self.equations for v in eq.outs], default=-1) + 1


def dying(nodes: Sequence[Any], keep: Iterable[Var] = ()) -> list[Sequence[Var]]:
    """Last-use liveness: for each node (an equation, or a replay step: anything with `ins`), the
    variables it reads for the last time, but for those in `keep` (outputs, inputs): what may be
    dropped once it ran. Computed once for a list of nodes, by whoever walks it (the folding pass,
    the sparsity propagation, the replay's peak and its source, a CUDA graph's function)."""
    last: dict[Var, int] = {}
    for k, node in enumerate(nodes):
        for a in node.ins:
            if isinstance(a, Var):
                last[a] = k
    kept = set(keep)
    dead: dict[int, list[Var]] = {}
    for a, k in last.items():
        if a not in kept:
            dead.setdefault(k, []).append(a)
    return [dead.get(k, ()) for k in range(len(nodes))]


def nbytes(a: Any) -> int:
    """Bytes of an atom's (or an aval's) value: its elements times its dtype's size."""
    return math.prod(a.shape) * a.dtype.itemsize


def view(eq: "Equation") -> bool:
    """Whether an equation's result may share its argument's memory (a reshape, a transpose, a
    broadcast, a getitem at ints and slices; not a gather, which copies)."""
    return eq.prim.view is not None and eq.prim.view(**eq.params)


def abstract(a: Atom) -> Any:
    """What a primitive's abstract rule takes for an atom: a Var's shape and dtype, a Lit's value."""
    return ShapeDtypeStruct(a.shape, a.dtype) if isinstance(a, Var) else a.val


def _check_aval(eq: Equation, where: str) -> None:
    """ValueError unless eq's outputs have the shapes and dtypes its primitive's abstract rule gives."""
    if eq.prim.abstract is None:
        raise ValueError(f"{where}: primitive {eq.prim.name} has no abstract rule to check its output by")
    avals = results(eq.prim, eq.prim.abstract(*map(abstract, eq.ins), **eq.params))
    if len(avals) != len(eq.outs):
        raise ValueError(f"{where}: it has {len(eq.outs)} output(s), but {eq.prim.name} makes {len(avals)}")
    for v, aval in zip(eq.outs, avals):
        if (tuple(aval.shape), onp.dtype(aval.dtype)) != (tuple(v.shape), v.dtype):
            raise ValueError(f"{where}: its output is {_typed(v)}, but {eq.prim.name} of these operands makes "
                             f"{onp.dtype(aval.dtype).name}{list(aval.shape)}")


def _line(eq: Equation) -> str:
    params = ", ".join(f"{k}={_short(v)}" for k, v in eq.params.items())
    args = " ".join(_atom(a) for a in eq.ins)
    return f"{', '.join(map(_typed, eq.outs))} = {eq.prim.name}{'[' + params + ']' if params else ''} {args}"


def _typed(v: Var) -> str:
    return f"{v}:{v.dtype.name}{list(v.shape)}"


def _atom(a: Atom) -> str:
    if isinstance(a, Var):
        return repr(a)
    a = a.val
    if hasattr(a, "shape") and a.shape:
        return f"const:{a.dtype.name}{list(a.shape)}"
    return repr(a.item() if hasattr(a, "item") else a)


def _short(p: Any) -> str:
    if isinstance(p, onp.dtype):
        return p.name
    if isinstance(p, tuple):
        return "(" + ", ".join(_short(x) for x in p) + ")"
    if hasattr(p, "shape"):
        return f"array{list(p.shape)}"
    if isinstance(p, slice):
        text = ":".join("" if x is None else str(x) for x in (p.start, p.stop))
        return text + (f":{p.step}" if p.step is not None else "")
    return repr(p)

