"""gpuad.jit: trace a function (with the transforms inside it) once per signature into a program,
optimise it, and replay it without Python dispatch; and eval_shape, which traces only.

A compiled function is cached per (argument tree, shapes and dtypes, static arguments,
backend). Called on arrays, it runs the program's replay; called on values of an enclosing
transform (jacfwd(jit(f)), vmap(jit(f)), grad(jit(f))), it evaluates the program with `bind`,
so the transform runs over the program.
"""
import functools
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any, overload

from . import backends
from .api import Fun, as_output
from .chunking import install_plan_check
from .compiler import cost, graphs, loop_kernel, replay
from .compiler.ir import Program
from .compiler.replay import Replay
from .compiler.target import CUPY, target_of
from .compiler.tracing import aval_of, program_so_far, trace_program
from .core import ShapeDtypeStruct, Tracer, dtype, shape
from .fpwarnings import at_user_line
from .kernels import builds
from .tree import TreeDef, tree_flatten


@overload
def jit(fun: Fun, *, static_argnums: int | Sequence[int] = (), static_argnames: str | Sequence[str] = ()) -> "Jitted":
    ...


@overload
def jit(fun: None = None, *, static_argnums: int | Sequence[int] = (),
        static_argnames: str | Sequence[str] = ()) -> Callable[[Fun], "Jitted"]:
    ...


def jit(fun: Fun | None = None, *, static_argnums: int | Sequence[int] = (),
        static_argnames: str | Sequence[str] = ()) -> "Jitted | Callable[[Fun], Jitted]":
    """Compile fun: trace it once per input signature into a program, optimise it, replay it.

    Usable as a decorator, with or without arguments. Inside fun, Python control flow cannot
    depend on the values of the (non-static) arguments: use gpuad.numpy.where, or mark the
    argument static (static_argnums, static_argnames: hashable values, part of the cache key).

    >>> import gpuad, gpuad.numpy as gnp
    >>> f = gpuad.jit(gpuad.jacfwd(lambda x: gnp.sin(x) * x[0]))
    >>> f(gnp.array([0.0, 1.0]))
    array([[0.        , 0.        ],
           [0.84147098, 0.        ]])
    """
    if fun is None:
        return functools.partial(jit, static_argnums=static_argnums, static_argnames=static_argnames)
    return Jitted(fun, static_argnums, static_argnames)


class Jitted:
    """A function compiled by gpuad.jit; call it like the function, or `lower` it."""

    def __init__(self, fun: Fun, static_argnums: int | Sequence[int], static_argnames: str | Sequence[str]) -> None:
        self.fun = fun
        self.static_argnums = _int_tuple(static_argnums, "static_argnums")
        self.static_argnames = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
        self._cache: dict[Hashable, _Entry] = {}
        # the common call, positional backend arrays only: (backend, avals) -> entry
        self._by_arrays: dict[Hashable, _Entry] = {}
        self._last: tuple[Any, tuple[Any, ...], _Entry] | None = None  # the last plain call's (backend, avals, entry)
        self._filling = threading.RLock()  # threads calling with a new signature trace it once (reentrant:
        # fun may call this function again while it is traced)
        functools.update_wrapper(self, fun, updated=())  # fun's __dict__ would overwrite these

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        be = backends.current()
        last = self._last
        if last is not None and not kwargs and last[0] is be and _matches(args, last[1], be.xp.ndarray):
            return last[2].out_tree.unflatten(last[2].replay().run(*args))  # a loop's calls: no key hashed
        plain = not kwargs and not self.static_argnums and all(isinstance(a, be.xp.ndarray) for a in args)
        if plain:  # skip flattening and key building: the signature is the arrays' shapes and dtypes
            avals = tuple((a.shape, a.dtype) for a in args)
            entry = self._by_arrays.get((be, avals))
            if entry is not None:
                self._last = (be, avals, entry)
                return entry.out_tree.unflatten(entry.replay().run(*args))
        sig = _Signature(self, args, kwargs)
        entry = self._entry(sig)
        if any(isinstance(x, Tracer) for x in sig.leaves):  # under an enclosing transform
            return entry.out_tree.unflatten(entry.program.evaluate(sig.leaves))
        if plain and entry.program.cacheable:
            self._by_arrays[be, tuple((a.shape, a.dtype) for a in args)] = entry
        return entry.out_tree.unflatten(entry.replay().run(*sig.leaves))

    def lower(self, *args: Any, backend: str | None = None, **kwargs: Any) -> "Lowered":
        """Trace for these arguments (arrays or ShapeDtypeStructs) without running anything.
        backend="cupy" plans for CuPy on any machine (no GPU, no data needed); the result is not
        cached for calls. Only the tracing runs under backends.planning (the layouts the transforms
        choose while they trace); the planning after it is given the target."""
        if backend is None or backend == backends.backend():
            return Lowered(self._entry(_Signature(self, args, kwargs)), backends.backend(), self)
        with backends.planning(backend):
            return Lowered(_Entry(self.fun, _Signature(self, args, kwargs)), backend)

    def _entry(self, sig: "_Signature") -> "_Entry":
        entry = self._cache.get(sig.key)
        if entry is None:
            with self._filling:
                entry = self._cache.get(sig.key)
                if entry is None:
                    entry = _Entry(self.fun, sig)
                    if entry.program.cacheable:
                        self._cache[sig.key] = entry
        return entry


class _Signature:
    """A call's arguments split into the static ones and the leaves of the rest, with its cache key."""

    def __init__(self, jitted: Jitted, args: Sequence[Any], kwargs: dict[str, Any]) -> None:
        n = len(args)
        for i in jitted.static_argnums:
            if not -n <= i < n:
                raise ValueError(f"jit: static_argnums {i} is out of range for a call with {n} positional "
                                 "arguments")
        nums = {i % n for i in jitted.static_argnums}
        static: list[tuple[int | str, Any]] = [(i, args[i]) for i in sorted(nums)]
        static += [(k, kwargs[k]) for k in sorted(kwargs) if k in jitted.static_argnames]
        for where, value in static:
            try:
                hash(value)
            except TypeError:
                raise TypeError(f"jit: static argument {where!r} has unhashable type {type(value).__name__}; "
                                "static values are part of the cache key: pass a hashable value (a tuple, "
                                "not a list), or leave the argument dynamic") from None
        dyn = (tuple(a for i, a in enumerate(args) if i not in nums),
               {k: v for k, v in kwargs.items() if k not in jitted.static_argnames})
        leaves, self.tree = tree_flatten(dyn)
        self.leaves = [_leaf(x, k) for k, x in enumerate(leaves)]
        self.static, self.nargs = static, n
        self.key = (self.tree, tuple((shape(x), dtype(x)) for x in self.leaves), tuple(static),
                    backends.backend())

    def rebuild(self, leaves: list[Any]) -> tuple[list[Any], dict[str, Any]]:
        """(args, kwargs) of the function with these leaves in place of the dynamic values."""
        dyn_args, kwargs = self.tree.unflatten(leaves)
        it = iter(dyn_args)
        statics = dict(self.static)
        args = [statics[i] if i in statics else next(it) for i in range(self.nargs)]
        kwargs.update((k, v) for k, v in self.static if isinstance(k, str))
        return args, kwargs


def _matches(args: Sequence[Any], avals: tuple[Any, ...], array: Any) -> bool:
    """Whether args are arrays of the type `array` with these (shape, dtype) pairs, in order."""
    if len(args) != len(avals):
        return False
    for a, (s, d) in zip(args, avals):
        if not isinstance(a, array) or a.shape != s or a.dtype != d:
            return False
    return True


def _leaf(x: Any, k: int) -> Any:
    if isinstance(x, (Tracer, ShapeDtypeStruct)):
        return x
    if isinstance(x, bool) or not (isinstance(x, (int, float, complex)) or hasattr(x, "shape")):
        raise TypeError(f"jit: argument leaf {k} is a {type(x).__name__}, not an array; pass arrays (or "
                        "pytrees of them), or mark the argument static with static_argnums/static_argnames")
    return backends.current().asarray(backends.current().coerce(x))


class _Entry:
    """One cache entry: the optimised program for one signature, and its replay once needed."""

    @at_user_line  # constants folded while tracing
    def __init__(self, fun: Fun, sig: _Signature) -> None:
        self._replay: Replay | None = None
        self._building = threading.Lock()
        out_trees = []  # the output tree, known once fun has run

        def flat(inputs: list[Any]) -> list[Any]:
            args, kwargs = sig.rebuild(inputs)
            outs, out_tree = tree_flatten(fun(*args, **kwargs))
            out_trees.append(out_tree)
            return [as_output(o, "jit") for o in outs]

        if backends.current().name == "numpy" and replay.fusion_wanted():
            from .compiler import host
            host.prepare()  # the C++ compiler's precompiled prelude builds while this traces
        avals = [aval_of(x) for x in sig.leaves]
        self.program: Program = trace_program(flat, avals, [f"jit argument leaf {k}" for k in range(len(avals))])
        self.out_tree: TreeDef = out_trees[-1]

    def replay(self, wait: bool | None = None) -> Replay:
        """The program's replay, made at first need (once, whichever thread asks first); its
        kernels build in the background unless wait (default: GPUAD_COMPILE=sync)."""
        if self._replay is None:
            with self._building:
                if self._replay is None:
                    self._replay = Replay(self.program, wait=builds.waits() if wait is None else wait)
        return self._replay


class Lowered:
    """A traced and optimised program, before it runs (gpuad.jit(f).lower(*args))."""

    def __init__(self, entry: _Entry, backend: str, jitted: "Jitted | None" = None) -> None:
        self.program, self.out_tree, self.backend = entry.program, entry.out_tree, backend
        self.target = target_of(backend)  # what compile() and the cost model plan for
        self._entry, self._jitted = entry, jitted  # the function lowered for calls here, when it was

    def as_text(self) -> str:
        """The optimised program, one equation a line (inputs and outputs typed)."""
        return self.program.text()

    def compile(self) -> "Compiled":
        """Build every kernel of the program now, without running it (JAX's lower(...).compile()):
        the C++ compiler for the NumPy backend; for CuPy, CuPy's compiler on a GPU, NVRTC alone
        where none is active (lower(..., backend="cupy") on a CPU). Returns a Compiled."""
        return Compiled(self)

    @property
    def launches(self) -> int:
        """Device launches one call makes on CuPy (kernels, cuBLAS/cuSOLVER/CUB calls, memsets,
        copies; setup excluded), by the model of gpuad/compiler/cost.py."""
        return cost.count(self.program)

    @property
    def bytes_moved(self) -> int:
        """Bytes one call reads and writes in device memory, by the same model (no caches)."""
        return cost.bytes_moved(self.program)

    @property
    def graphs(self) -> int:
        """Runs of steps a CuPy replay captures as CUDA graphs (gpuad/compiler/graphs.py), by the plan for
        CuPy: each launches its kernels with one host call from the third call on."""
        steps = replay.plan(self.program, CUPY)
        return len(graphs.runs(self.program, steps, replay.staying(self.program, steps)))

    @property
    def peak_bytes(self) -> int:
        """The most bytes of buffers one call holds at once, by the replay's plan (replay.peak_bytes):
        what a call checks against the available memory before it runs."""
        return replay.peak_bytes(self.program, replay.plan(self.program, target=self.target),
                                 replay.Within(target=self.target))

    def out_info(self) -> Any:
        """ShapeDtypeStructs of the outputs, in the output tree."""
        return self.out_tree.unflatten([aval_of(o) for o in self.program.outs])


class Compiled:
    """A lowered program with its kernels built (gpuad.jit(f).lower(*args).compile()): `as_text()`
    shows their sources; where it was lowered for the active backend, calling it runs the program."""

    def __init__(self, lowered: Lowered) -> None:
        self.lowered, self.backend = lowered, lowered.backend
        target = lowered.target
        _, kernels = replay.planned(lowered.program, replay.fusion_wanted(), target)
        loops = loop_kernel.kernels_of(lowered.program, target) if replay.fusion_wanted() else []
        self.kernels = list(kernels.values()) + loops
        self._replay = None
        if lowered._jitted is not None:  # built for calls: the replay, waiting for its kernels and its loops'
            self._replay = lowered._entry.replay(wait=True)
            for ready in [self._replay.ready] + [k.runner.ready for k in loops if k.runner is not None]:
                if ready is not None:
                    ready.result()
        elif self.kernels:
            _built_elsewhere(self.kernels, target.kernel)

    def as_text(self) -> str:
        """The kernels' sources, as the compiler gets them."""
        if self.backend == "cupy":
            return "\n\n".join(k.text for k in self.kernels)
        from .compiler import host
        from .compiler.codegen import host_sources
        if host.OFFSETS is None:
            return "\n\n".join(k.text for k in self.kernels)
        head, bodies = host_sources(self.kernels, host.OFFSETS)
        return head + "".join(bodies)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The function's result, by the program's replay (its kernels built)."""
        jitted = self.lowered._jitted
        if self._replay is None or jitted is None:
            raise ValueError(f"this program was compiled for the {self.backend} backend, not the active "
                             f"{backends.backend()} one: lower it without backend= to call it here")
        return jitted(*args, **kwargs)


def _built_elsewhere(kernels: list[Any], target: str) -> None:
    """Build kernels for a backend other than the active one: NVRTC for CUDA (no GPU needed), the
    C++ compiler for the host; raises what the compiler says."""
    if target == "cuda":
        from .kernels.nvrtc import compile_cuda
        errors = [e for _, e in compile_cuda(kernels) if e is not None]
        if errors:
            raise errors[0]
        return
    from .compiler import host
    if host.library(kernels) is None:
        raise RuntimeError("gpuad.jit: the C++ compiler could not build the fused kernels (see the warning)")


def eval_shape(fun: Fun, *args: Any, **kwargs: Any) -> Any:
    """Shapes and dtypes of fun's outputs (a tree of ShapeDtypeStructs), computed without data;
    args may be arrays or ShapeDtypeStructs.

    >>> import gpuad, gpuad.numpy as gnp
    >>> gpuad.eval_shape(gpuad.jacfwd(gnp.sin), gpuad.ShapeDtypeStruct((3,), "float32"))
    ShapeDtypeStruct(shape=(3, 3), dtype=float32)
    """
    return jit(fun).lower(*args, **kwargs).out_info()


def _int_tuple(nums: int | Sequence[int], what: str) -> tuple[int, ...]:
    nums = (nums,) if isinstance(nums, int) else tuple(nums)
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in nums):
        raise TypeError(f"jit: {what} must be an int or a tuple of ints, got {nums!r}")
    return nums


# chunking's compiled chunk_size="auto" asks the replay's plan of the sweep traced so far: a hook, so
# that the AD layer imports no compiler
def _planned_peak(values: Sequence[Any]) -> int:
    program = program_so_far(values)
    return int(replay.peak_bytes(program, replay.plan(program, replay.fusion_wanted())))


install_plan_check(_planned_peak)
