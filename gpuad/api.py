"""The transforms users call, with JAX's signatures, pytree handling and output shapes.

Every Jacobian is one sweep: `jacfwd` seeds a forward run with all n basis tangents at
once, `jacrev` sweeps the recorded tape back once with all m basis cotangents. The only
loop over directions is `chunk_size`, which bounds memory by sweeping k directions at a time.
"""
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeAlias

from . import backends
from .batching import BatchTrace, BatchTracer
from .chunking import Chunks, Footprint
from .core import Tracer, dtype, held_bytes, is_inexact, new_trace, shape
from .forward import JVPTrace, JVPTracer
from .fpwarnings import at_user_line
from .numpy.shapes import moveaxis
from .ops.creation import eye
from .ops.elementwise import astype
from .ops.indexing import getitem
from .ops.shape import broadcast_to, reshape, transpose
from .reverse import RevTrace
from .tree import TreeDef, tree_flatten, tree_map

Fun: TypeAlias = Callable[..., Any]
"""A function of arrays (or pytrees of arrays) to arrays (or pytrees of arrays)."""
ArgNums: TypeAlias = int | Sequence[int]
"""Which positional arguments are differentiated: one index, or a sequence of them."""
ChunkSize: TypeAlias = int | Literal["auto"] | None
"""At most this many directions a sweep; "auto" sizes them from the available memory."""


# ---------------------------------------------------------------- one differentiation call
class Call:
    """One call of a derivative transform: the function (keyword arguments bound), its arguments,
    which of them are differentiated (argnums) with their leaves as backend arrays and their tree,
    and whether the function returns aux data. `name` is the transform's, for error messages.
    real: the sides ("input", "output") that JAX's transform of that name requires real unless
    holomorphic=True, which requires complex ones on both; None for jvp, vjp and linearize, which
    take either."""

    def __init__(self, name: str, fun: Fun, args: Sequence[Any], kwargs: dict[str, Any], argnums: ArgNums,
                 has_aux: bool, real: tuple[str, ...] | None = None, holomorphic: bool = False) -> None:
        self.name, self.args, self.kwargs, self.has_aux = name, tuple(args), kwargs, has_aux
        self.real, self.holomorphic = real, holomorphic
        self.fun = functools.partial(fun, **kwargs) if kwargs else fun  # undifferentiated, as in JAX
        self.nums, self.single = _argnums(argnums, len(args), name)
        dyn = args[self.nums[0]] if self.single else tuple(args[i] for i in self.nums)
        leaves, self.tree = tree_flatten(dyn)
        if not leaves:
            raise ValueError(f"{name}: the differentiated arguments hold no arrays")
        self.leaves = [_as_input(x, name, f"input {k} of the differentiated arguments") for k, x in enumerate(leaves)]
        self.check_dtypes(self.leaves, "input")
        self.sizes = [math.prod(shape(x)) for x in self.leaves]
        self.offsets = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        self.n = sum(self.sizes)

    def run(self, leaves: list[Any]) -> tuple[list[Any], TreeDef, Any]:
        """fun with the differentiated leaves replaced: ([output leaves], output tree, aux)."""
        args = list(self.args)
        sub = self.tree.unflatten(leaves)
        for i, v in zip(self.nums, (sub,) if self.single else sub):
            args[i] = v
        out = self.fun(*args)
        if self.has_aux:
            if not (isinstance(out, (tuple, list)) and len(out) == 2):
                raise TypeError(f"{self.name}: with has_aux=True the function must return a pair (output, aux)")
            out, aux = out
        else:
            aux = None
        outs, out_tree = tree_flatten(out)
        outs = [as_output(o, self.name) for o in outs]
        self.check_dtypes(outs, "output")
        return outs, out_tree, aux

    def check_dtypes(self, values: list[Any], side: str) -> None:
        """JAX's rules for complex inputs and outputs of jacfwd, jacrev, grad and hessian."""
        if self.real is None:
            return
        for v in values:
            d = dtype(v)
            if self.holomorphic and d.kind != "c":
                raise TypeError(f"{self.name} with holomorphic=True requires {side}s with complex dtype, "
                                f"but got {d}.")
            if d.kind == "c" and not self.holomorphic and side in self.real:
                direct = "jvp" if side == "input" else "vjp"
                raise TypeError(
                    f"{self.name} requires real-valued {side}s ({side} dtype that is a sub-dtype of np.floating), "
                    f"but got {d}. For holomorphic differentiation, pass holomorphic=True. For differentiation "
                    f"of non-holomorphic functions involving complex {side}s, use gpuad.{direct} directly.")

    def forward(self, bundles: list[Any], watch: int | None = None) -> tuple[list[Any], list[Any], TreeDef, Any]:
        """One forward run carrying a tangent bundle per input leaf (all with K directions); watch:
        the tangent bytes it may make before it stops (JVPTrace.watch)."""
        with new_trace(JVPTrace) as trace:
            trace.watch = watch
            outs, out_tree, aux = self.run([JVPTracer(trace, x, t) for x, t in zip(self.leaves, bundles)])
            primals, tangents = trace.split(outs)
        k = shape(bundles[0])[0]
        return primals, [_tangent_of(_or_zeros(t, k, p), p) for p, t in zip(primals, tangents)], out_tree, \
            _lower(aux, trace)

    def record(self) -> "Recording":
        """One run on a fresh tape, for sweeps back (rows) or forward (columns) afterwards."""
        with new_trace(RevTrace) as trace:
            inputs = [trace.new_input(x) for x in self.leaves]
            outs, out_tree, aux = self.run(inputs)
            values, ids = trace.split(outs)
        return Recording(self, trace, [t.id for t in inputs], values, ids, out_tree, _lower(aux, trace))

    def basis(self, lo: int, hi: int) -> list[Any]:
        """Input directions lo..hi of the n x n identity, one bundle per input leaf."""
        return [_basis_slice(x, off, lo, hi) for x, off in zip(self.leaves, self.offsets)]

    def columns(self, tangent: Any, out_value: Any) -> Any:
        """A tangent bundle (n, *So) of one output as its Jacobian blocks, one per input leaf,
        each shaped So + Sj."""
        so = shape(out_value)
        blocks = []
        for x, size, off in zip(self.leaves, self.sizes, self.offsets):
            b = tangent if size == shape(tangent)[0] else getitem(tangent, idx=(slice(off, off + size),))
            b = reshape(b, shape=shape(x) + so)
            nx = len(shape(x))
            perm = tuple(range(nx, nx + len(so))) + tuple(range(nx))
            blocks.append(transpose(b, perm=perm) if nx and so else b)
        return self.tree.unflatten(blocks)

    def result(self, jac: Any, aux: Any) -> Any:
        return (jac, aux) if self.has_aux else jac

    def signature(self) -> tuple[Any, ...]:
        """What a sweep's memory depends on: the arguments' tree, shapes and dtypes (and bytes held
        under enclosing transforms), and the integers and strings among them (sizes, modes)."""
        array = backends.current().xp.ndarray
        if not self.kwargs and all(isinstance(a, array) for a in self.args):  # the common call, made cheap
            return self.nums, tuple((a.shape, a.dtype) for a in self.args)
        leaves, tree = tree_flatten((self.args, self.kwargs, self.nums))
        return tree, tuple((shape(x), str(dtype(x)), held_bytes(x)) if hasattr(x, "shape")
                           else x if isinstance(x, (int, str)) else type(x).__name__ for x in leaves)


class Recording:
    """A tape recorded once for a Call: its input ids, and the outputs' values and ids (None for
    an output that does not depend on the inputs)."""

    def __init__(self, call: Call, trace: RevTrace, in_ids: list[int], values: list[Any], ids: list[int | None],
                 out_tree: TreeDef, aux: Any) -> None:
        self.call, self.trace, self.in_ids = call, trace, in_ids
        self.values, self.ids, self.out_tree, self.aux = values, ids, out_tree, aux
        self.m = sum(math.prod(shape(v)) for v in values)

    def rows(self, lo: int, hi: int) -> list[Any]:
        """Cotangent bundles of the inputs for output directions lo..hi (one backward sweep)."""
        seeds: dict[int, Any] = {}
        off = 0
        for value, oid in zip(self.values, self.ids):
            size = math.prod(shape(value))
            if oid is not None and lo < off + size and off < hi:
                seed = _basis_slice(value, off, lo, hi)
                seeds[oid] = seed if oid not in seeds else seeds[oid] + seed
            off += size
        return self.pull(seeds, hi - lo)

    def pull(self, seeds: dict[int, Any], m: int) -> list[Any]:
        """The inputs' cotangent bundles (m directions) from {output id: seed bundle}."""
        ct = self.trace.sweep_backward(seeds) if seeds else {}
        return [_in_dtype_of(_or_zeros(ct.get(i), m, x), x) for i, x in zip(self.in_ids, self.call.leaves)]

    def columns(self, lo: int, hi: int) -> list[Any]:
        """Tangent bundles of the outputs for input directions lo..hi (one forward sweep)."""
        return self.push(dict(zip(self.in_ids, self.call.basis(lo, hi))), hi - lo)

    def push(self, tangents: dict[int, Any], k: int) -> list[Any]:
        """The outputs' tangent bundles (k directions) from {input id: tangent bundle}."""
        tan = self.trace.sweep_forward(tangents, {oid for oid in self.ids if oid is not None})
        return [_or_zeros(tan.get(oid) if oid is not None else None, k, v) for v, oid in zip(self.values, self.ids)]

    def footprint(self, by_rows: bool) -> Footprint:
        """The memory one direction of a sweep over this tape takes (chunking.Footprint)."""
        return Footprint.of(self.call.leaves, self.trace.tape, self.values, by_rows)

    def jacobian_by_rows(self, chunks: Chunks) -> Any:
        """The Jacobian from backward sweeps: output tree of input trees, blocks So + Sj."""
        rows = chunks.stacked(self.call, self.m, self.rows, lambda: self.footprint(by_rows=True))
        per_input = [self._split_rows(c) for c in rows]
        blocks = [self.call.tree.unflatten([b[o] for b in per_input]) for o in range(len(self.values))]
        return self.out_tree.unflatten(blocks)

    def jacobian_by_columns(self, chunks: Chunks) -> Any:
        tangents = chunks.stacked(self.call, self.call.n, self.columns, lambda: self.footprint(by_rows=False))
        return self.out_tree.unflatten([self.call.columns(t, v) for t, v in zip(tangents, self.values)])

    def _split_rows(self, c: Any) -> list[Any]:
        """An input's cotangent bundle (m, *Sj) as one block per output leaf, So + Sj."""
        out, off = [], 0
        for value in self.values:
            size = math.prod(shape(value))
            b = c if size == shape(c)[0] else getitem(c, idx=(slice(off, off + size),))
            out.append(reshape(b, shape=shape(value) + shape(c)[1:]))
            off += size
        return out


# ---------------------------------------------------------------- argument handling
def _argnums(argnums: ArgNums, nargs: int, name: str) -> tuple[tuple[int, ...], bool]:
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums) if isinstance(argnums, (tuple, list)) else ()
    if not nums or not all(isinstance(i, int) for i in nums):
        raise TypeError(f"{name}: argnums must be an int or a non-empty tuple of ints, got {argnums!r}")
    for i in nums:
        if not -nargs <= i < nargs:
            raise ValueError(f"{name}: argnums {i} is out of range for a function called with {nargs} "
                             "positional arguments")
    nums = tuple(i % nargs for i in nums)
    if len(set(nums)) != len(nums):  # one argument cannot be two independent inputs
        raise ValueError(f"{name}: argnums {argnums!r} names the same argument twice")
    return nums, single


def _as_input(x: Any, name: str, where: str) -> Any:
    if isinstance(x, Tracer):
        v = x
    elif isinstance(x, bool) or not (isinstance(x, (int, float, complex)) or hasattr(x, "shape")):
        raise TypeError(f"{name}: {where} must be an array or a Python float, got {type(x).__name__}")
    else:
        v = backends.current().coerce(x)
        if isinstance(v, (int, float, complex)):
            v = backends.current().asarray(v)
    if not is_inexact(v):
        raise TypeError(
            f"{name}: {where} has dtype {dtype(v)}; derivatives are defined for floating-point inputs "
            f"only. Convert it first, e.g. gpuad.numpy.asarray(x, dtype=float).")
    return v


def as_output(x: Any, name: str) -> Any:
    """An output of a transformed function as an array (or traced value); a clear TypeError for
    anything else. `name` is the transform's, for the message."""
    if isinstance(x, Tracer) or backends.current().is_array(x):
        return x
    if isinstance(x, (int, float, complex)) and not isinstance(x, bool) or hasattr(x, "__array_interface__"):
        return backends.current().asarray(x)
    raise TypeError(f"{name}: the function must return arrays (or pytrees of arrays), "
                    f"but it returned a {type(x).__name__}")


def _lower(tree: Any, trace: Any) -> Any:
    """Strip one trace level off every value in tree (aux data)."""
    return tree_map(trace.lower, tree)


def _bundle(t: Any, like: Any, name: str, what: str) -> Any:
    """A single tangent or cotangent as a bundle of one direction, after checking it fits."""
    if not isinstance(t, Tracer):
        t = backends.current().coerce(t)
        if isinstance(t, (int, float)):
            t = backends.current().asarray(t, dtype=dtype(like))
    if shape(t) != shape(like):
        raise ValueError(f"{name}: {what} has shape {shape(t)} but its primal has shape {shape(like)}")
    if dtype(t) != dtype(like):
        raise TypeError(f"{name}: {what} has dtype {dtype(t)} but its primal has dtype {dtype(like)}; "
                        f"cast it with .astype({dtype(like)})")
    return reshape(t, shape=(1,) + shape(t))


def _single(bundle: Any, like: Any) -> Any:
    """The one direction of a bundle (1, *S) as a value of shape S (zeros for None)."""
    return reshape(_or_zeros(bundle, 1, like), shape=shape(like))


def _basis_slice(x: Any, offset: int, lo: int, hi: int) -> Any:
    """Rows lo..hi of the n x n identity, restricted to one leaf's columns, as a (hi-lo, *S) bundle."""
    e = eye(rows=hi - lo, cols=math.prod(shape(x)), k=lo - offset, dtype=dtype(x))
    return reshape(e, shape=(hi - lo,) + shape(x))


def _in_dtype_of(bundle: Any, leaf: Any) -> Any:
    """A cotangent of a leaf in the leaf's dtype, as JAX gives it: a float32 input has a float32
    gradient even where float64 constants inside the function promoted its values. (Forward mode
    keeps the outputs' dtype, as JAX's jacfwd does.)"""
    return bundle if dtype(bundle) == dtype(leaf) else astype(bundle, dtype=dtype(leaf))


def _tangent_of(bundle: Any, primal: Any) -> Any:
    """A tangent bundle in its complex primal's dtype where it was real (a complex value made from
    real ones, as where(c, x, 1j) of a real x, has real tangents), as JAX gives it."""
    if dtype(primal).kind == "c" and dtype(bundle).kind != "c":
        return astype(bundle, dtype=dtype(primal))
    return bundle


def _or_zeros(bundle: Any, k: int, like: Any) -> Any:
    """A bundle, or k directions of zeros shaped like `like` where there is none (no dependence)."""
    if bundle is not None:
        return bundle
    return backends.xp().zeros((k,) + shape(like), dtype=dtype(like))


# ---------------------------------------------------------------- forward mode
@at_user_line
def jvp(fun: Fun, primals: Sequence[Any], tangents: Sequence[Any], has_aux: bool = False) -> tuple[Any, ...]:
    """Forward-mode Jacobian-vector product: (fun(*primals), J @ tangents).

    >>> import gpuad, gpuad.numpy as gnp
    >>> gpuad.jvp(gnp.sin, (0.0,), (2.0,))
    (array(0.), array(2.))
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("jvp: primals and tangents must be tuples (one entry per argument of fun)")
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    call = Call("jvp", fun, primals, {}, tuple(range(len(primals))), has_aux)
    tleaves, ttree = tree_flatten(tuple(tangents))
    if ttree != call.tree:
        raise ValueError(f"jvp: tangents have structure {ttree} but primals have {call.tree}")
    bundles = [_bundle(t, x, "jvp", "tangent") for t, x in zip(tleaves, call.leaves)]
    po, to, out_tree, aux = call.forward(bundles)
    res = out_tree.unflatten(po), out_tree.unflatten([_single(t, p) for t, p in zip(to, po)])
    return res + (aux,) if has_aux else res


def jacfwd(fun: Fun, argnums: ArgNums = 0, has_aux: bool = False, holomorphic: bool = False,
           chunk_size: ChunkSize = None) -> Fun:
    """Jacobian by forward mode: one run of fun carrying all n input directions at once.

    As in JAX, complex inputs need holomorphic=True (then the Jacobian is the complex derivative;
    docs/complex.md); real inputs may give complex outputs.

    Leaf shapes are out.shape + in.shape. chunk_size=k runs fun once per k directions to bound memory;
    chunk_size="auto" picks k before the first run from the available memory and an estimate of what
    one direction takes (docs/memory.md), and remembers it per input signature; chunk_size=None
    (one run) raises MemoryError, before running, when that estimate exceeds the available memory.
    A sweep that runs out of memory is retried in halves, with a warning.

    >>> import gpuad, gpuad.numpy as gnp
    >>> gpuad.jacfwd(lambda x: gnp.array([x[0] * x[1], gnp.sin(x[1])]))(gnp.array([2.0, 0.0]))
    array([[0., 2.],
           [0., 1.]])
    """
    chunks = Chunks(chunk_size)

    @functools.wraps(fun)
    @at_user_line
    def jacfun(*args: Any, **kwargs: Any) -> Any:
        call = Call("jacfwd", fun, args, kwargs, argnums, has_aux, ("input",), holomorphic)
        last: dict[str, Any] = {}  # the primal outputs, their tree and aux: the same from every run, kept from the last

        def sweep(lo: int, hi: int, watch: int | None = None) -> list[Any]:
            last["po"], tangents, last["tree"], last["aux"] = call.forward(call.basis(lo, hi), watch)
            return tangents

        # a recorded run (once per input signature, where a sweep is not small) shows what a direction takes
        tangents = chunks.stacked(call, call.n, sweep, lambda: call.record().footprint(by_rows=False),
                                  seeds=sum(map(held_bytes, call.leaves)))
        outs = [call.columns(t, p) for t, p in zip(tangents, last["po"])]
        return call.result(last["tree"].unflatten(outs), last["aux"])
    return jacfun


# ---------------------------------------------------------------- reverse mode
def jacrev(fun: Fun, argnums: ArgNums = 0, has_aux: bool = False, holomorphic: bool = False,
           chunk_size: ChunkSize = None) -> Fun:
    """Jacobian by reverse mode: one recorded run, one backward sweep with all m output directions.
    As in JAX, complex outputs need holomorphic=True; complex inputs of real outputs give the rows
    of JAX's gradients (d/dx - i d/dy).

    >>> import gpuad, gpuad.numpy as gnp
    >>> gpuad.jacrev(lambda x: gnp.sum(x * x))(gnp.array([1.0, 2.0]))
    array([2., 4.])

    chunk_size is jacfwd's, for the m output directions.
    """
    chunks = Chunks(chunk_size)

    @functools.wraps(fun)
    @at_user_line
    def jacfun(*args: Any, **kwargs: Any) -> Any:
        rec = Call("jacrev", fun, args, kwargs, argnums, has_aux, ("output",), holomorphic).record()
        return rec.call.result(rec.jacobian_by_rows(chunks), rec.aux)
    return jacfun


def jacobian(fun: Fun, argnums: ArgNums = 0, has_aux: bool = False,
             mode: Literal["auto", "forward", "reverse"] = "auto", chunk_size: ChunkSize = None,
             holomorphic: bool = False) -> Fun:
    """Jacobian in the cheaper mode. mode="auto" records fun once on a tape, then sweeps it
    forward with the n input directions when n < m (tall Jacobians), else backward with the
    m output directions; "forward" and "reverse" are jacfwd and jacrev. With mode="auto",
    complex inputs or outputs need holomorphic=True (either sweep may run)."""
    if mode == "forward":
        return jacfwd(fun, argnums, has_aux, holomorphic, chunk_size)
    if mode == "reverse":
        return jacrev(fun, argnums, has_aux, holomorphic, chunk_size)
    if mode != "auto":
        raise ValueError(f"jacobian: mode must be 'auto', 'forward' or 'reverse', got {mode!r}")
    chunks = Chunks(chunk_size)

    @functools.wraps(fun)
    @at_user_line
    def jacfun(*args: Any, **kwargs: Any) -> Any:
        rec = Call("jacobian", fun, args, kwargs, argnums, has_aux, ("input", "output"), holomorphic).record()
        by = rec.jacobian_by_columns if rec.call.n < rec.m else rec.jacobian_by_rows
        return rec.call.result(by(chunks), rec.aux)
    return jacfun


@at_user_line
def vjp(fun: Fun, *primals: Any, has_aux: bool = False) -> tuple[Any, ...]:
    """Reverse-mode vector-Jacobian product. Returns (fun(*primals), pullback); pullback(ct)
    returns a tuple with one cotangent per primal.

    >>> import gpuad, gpuad.numpy as gnp
    >>> y, pullback = gpuad.vjp(gnp.sin, 0.0)
    >>> pullback(gnp.asarray(3.0))
    (array(3.),)
    """
    rec = Call("vjp", fun, primals, {}, tuple(range(len(primals))), has_aux).record()

    @at_user_line
    def pullback(ct: Any) -> Any:
        cleaves, ctree = tree_flatten(ct)
        if ctree != rec.out_tree:
            raise ValueError(f"vjp: the cotangent has structure {ctree} but the output has {rec.out_tree}")
        seeds: dict[int, Any] = {}
        for c, value, oid in zip(cleaves, rec.values, rec.ids):
            b = _bundle(c, value, "vjp", "cotangent")
            if oid is not None:
                seeds[oid] = b if oid not in seeds else seeds[oid] + b
        return rec.call.tree.unflatten([_single(c, x) for c, x in zip(rec.pull(seeds, 1), rec.call.leaves)])

    out = rec.out_tree.unflatten(rec.values)
    return (out, pullback, rec.aux) if has_aux else (out, pullback)


@at_user_line
def linearize(fun: Fun, *primals: Any) -> tuple[Any, Fun]:
    """(fun(*primals), f_jvp): f_jvp(*tangents) = J @ tangents, computed by a forward sweep of
    the tape recorded once here (fun is not run again)."""
    rec = Call("linearize", fun, primals, {}, tuple(range(len(primals))), False).record()

    @at_user_line
    def f_jvp(*tangents: Any) -> Any:
        tleaves, ttree = tree_flatten(tuple(tangents))
        if ttree != rec.call.tree:
            raise ValueError(f"linearize: tangents have structure {ttree} but primals have {rec.call.tree}")
        bundles = [_bundle(t, x, "linearize", "tangent") for t, x in zip(tleaves, rec.call.leaves)]
        outs = rec.push(dict(zip(rec.in_ids, bundles)), 1)
        return rec.out_tree.unflatten([_single(t, v) for t, v in zip(outs, rec.values)])

    return rec.out_tree.unflatten(rec.values), f_jvp


def value_and_grad(fun: Fun, argnums: ArgNums = 0, has_aux: bool = False, holomorphic: bool = False) -> Fun:
    """(fun(*args), gradient) for a scalar-valued fun, by one reverse sweep. Of complex inputs
    (real output) the gradient is JAX's, df/dx - i df/dy; holomorphic=True gives f'(z).

    >>> import gpuad, gpuad.numpy as gnp
    >>> gpuad.value_and_grad(lambda x: gnp.sum(x ** 2))(gnp.array([1.0, 3.0]))
    (array(10.), array([2., 6.]))
    """
    @functools.wraps(fun)
    @at_user_line
    def vg(*args: Any, **kwargs: Any) -> Any:
        rec = Call("grad", fun, args, kwargs, argnums, has_aux, ("output",), holomorphic).record()
        if len(rec.values) != 1 or shape(rec.values[0]) != ():
            shapes = [shape(v) for v in rec.values]
            raise TypeError(f"grad requires a function with one scalar output, but it returned shape(s) "
                            f"{shapes}. Use jacrev for vector outputs, or reduce the output (e.g. sum).")
        value = rec.values[0]
        if not is_inexact(value):
            raise TypeError(f"grad requires a floating-point output, got dtype {dtype(value)}")
        g = rec.call.tree.unflatten([_single(c, x) for c, x in zip(rec.rows(0, 1), rec.call.leaves)])
        return ((value, rec.aux), g) if has_aux else (value, g)
    return vg


def grad(fun: Fun, argnums: ArgNums = 0, has_aux: bool = False, holomorphic: bool = False) -> Fun:
    """Gradient of a scalar-valued function (reverse mode); value_and_grad's conventions.

    >>> import gpuad, gpuad.numpy as gnp
    >>> gpuad.grad(lambda x: x[0] ** 2 * x[1])(gnp.array([1.0, 2.0]))
    array([4., 1.])
    >>> gpuad.grad(lambda z: gnp.abs(z) ** 2)(gnp.asarray(1 + 2j))
    array(2.-4.j)
    """
    vg = value_and_grad(fun, argnums, has_aux, holomorphic)

    @functools.wraps(fun)
    def g(*args: Any, **kwargs: Any) -> Any:
        (_, aux), gr = vg(*args, **kwargs) if has_aux else ((None, None), vg(*args, **kwargs)[1])
        return (gr, aux) if has_aux else gr
    return g


def hessian(fun: Fun, argnums: ArgNums = 0, has_aux: bool = False, holomorphic: bool = False,
            chunk_size: ChunkSize = None) -> Fun:
    """Hessian as jacfwd(jacrev(fun)): leaf shapes out.shape + in.shape + in.shape (holomorphic:
    both levels', as in JAX).

    chunk_size applies at both levels: the outer jacfwd sweeps at most k of the n input directions
    at a time, and under each of its runs the inner jacrev at most k of fun's m output directions
    (there is one when fun is scalar), so the innermost bundles hold at most k * k directions. With
    "auto" each level sizes its chunks from the memory available when it runs, its values counted
    with the k tangents they carry for the level above. It bounds this transform's sweeps only: an
    enclosing transform, as in jacrev(hessian(f, chunk_size="auto")), needs its own chunk_size.

    >>> import gpuad, gpuad.numpy as gnp
    >>> gpuad.hessian(lambda x: x[0] ** 2 * x[1] + x[1] ** 3)(gnp.array([1.0, 2.0]))
    array([[ 4.,  2.],
           [ 2., 12.]])
    """
    return jacfwd(jacrev(fun, argnums, has_aux, holomorphic, chunk_size), argnums, has_aux, holomorphic, chunk_size)


def hvp(fun: Fun, primals: Sequence[Any], tangents: Sequence[Any]) -> Any:
    """Hessian-vector product H @ v by forward-over-reverse, without forming H. Returns a value
    with the primals' structure (a single array when there is one primal).

    >>> import gpuad, gpuad.numpy as gnp
    >>> gpuad.hvp(lambda x: x[0] ** 2 * x[1] + x[1] ** 3, (gnp.array([1.0, 2.0]),), (gnp.array([0.5, -0.5]),))
    array([ 1., -5.])
    """
    argnums: ArgNums = 0 if len(primals) == 1 else tuple(range(len(primals)))
    return jvp(grad(fun, argnums), tuple(primals), tuple(tangents))[1]


# ---------------------------------------------------------------- vmap

def _axes_for(spec: Any, tree: Any, what: str) -> list[int | None]:
    """Broadcast an in_axes/out_axes prefix (int, None, or a container of them) to tree's leaves."""
    if spec is None or isinstance(spec, int):
        return [spec] * len(tree_flatten(tree)[0])
    if isinstance(spec, (tuple, list)) and isinstance(tree, (tuple, list)) and len(spec) == len(tree):
        return [a for s, t in zip(spec, tree) for a in _axes_for(s, t, what)]
    if isinstance(spec, dict) and isinstance(tree, dict) and set(spec) == set(tree):
        return [a for k in sorted(tree) for a in _axes_for(spec[k], tree[k], what)]
    raise ValueError(f"vmap: {what} {spec!r} does not match the structure of the values it describes")


def vmap(fun: Fun, in_axes: Any = 0, out_axes: Any = 0) -> Fun:
    """Vectorise fun over an axis of its arguments: one run on the whole batch, no Python loop.

    >>> import gpuad, gpuad.numpy as gnp
    >>> gpuad.vmap(lambda v: gnp.sum(v * v))(gnp.ones((3, 2)))
    array([2., 2., 2.])
    """
    @functools.wraps(fun)
    @at_user_line
    def batched(*args: Any, **kwargs: Any) -> Any:
        spec = in_axes if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(args)
        if isinstance(in_axes, (tuple, list)) and len(in_axes) != len(args):
            raise ValueError(f"vmap: in_axes has {len(in_axes)} entries but the function got {len(args)} arguments")
        leaves, tree = tree_flatten((tuple(args), kwargs))
        # keyword arguments are mapped over their leading axis, as in JAX
        axes = _axes_for(tuple(spec), tuple(args), "in_axes") + _axes_for(0, kwargs, "in_axes")
        size = _batch_size(leaves, axes)
        with new_trace(BatchTrace) as trace:
            wrapped = [x if a is None else BatchTracer(trace, moveaxis(x, a, 0)) for x, a in zip(leaves, axes)]
            new_args, new_kwargs = tree.unflatten(wrapped)
            out = fun(*new_args, **new_kwargs)
            outs, out_tree = tree_flatten(out)
            outs = [as_output(o, "vmap") for o in outs]
        oaxes = _axes_for(out_axes, out, "out_axes")
        return out_tree.unflatten([_unbatch(o, a, trace, size) for o, a in zip(outs, oaxes)])
    return batched


def _batch_size(leaves: list[Any], axes: list[int | None]) -> int:
    sizes: dict[int, int] = {}
    for k, (x, a) in enumerate(zip(leaves, axes)):
        if a is None:
            continue
        nd = len(shape(x))
        if not -nd <= a < nd:
            raise ValueError(f"vmap: in_axes {a} is out of range for argument leaf {k} of shape {shape(x)}")
        sizes[k] = shape(x)[a]
    if not sizes:
        raise ValueError("vmap: no argument is mapped; give at least one in_axes that is not None")
    if len(set(sizes.values())) > 1:
        detail = ", ".join(f"leaf {k} has size {s}" for k, s in sizes.items())
        raise ValueError(f"vmap: mapped axes must all have the same size, but {detail}")
    return next(iter(sizes.values()))


def _unbatch(o: Any, axis: int | None, trace: BatchTrace, size: int) -> Any:
    batched = isinstance(o, BatchTracer) and o._trace is trace
    if axis is None:
        if batched:
            raise ValueError("vmap: out_axes is None for an output that varies along the batch")
        return o
    v = o.value if batched else broadcast_to(o, shape=(size,) + shape(o))
    nd = len(shape(v))
    if not -nd <= axis < nd:
        raise ValueError(f"vmap: out_axes {axis} is out of range for an output of {nd - 1} dimensions")
    return moveaxis(v, 0, axis)


def block_until_ready(tree: Any) -> Any:
    """Wait until every array in tree is computed (CuPy runs asynchronously); returns tree."""
    return backends.current().block_until_ready(tree)
