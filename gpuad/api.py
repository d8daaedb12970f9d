"""The transforms users call, with JAX's signatures, pytree handling and output shapes.

Every Jacobian is one sweep: `jacfwd` seeds a forward run with all n basis tangents at
once, `jacrev` sweeps the recorded tape back once with all m basis cotangents. The only
loop over directions is `chunk_size`, which bounds memory by sweeping k directions at a time.
"""
import functools
import warnings

from . import backends
from .batching import BatchTrace, BatchTracer
from .core import Tracer, dtype, is_inexact, new_trace, shape
from .forward import JVPTrace, JVPTracer
from .numpy.shapes import moveaxis
from .ops import structural as S
from .reverse import RevTrace
from .tree import tree_flatten, tree_map

# ---------------------------------------------------------------- argument handling


def _argnums(argnums, nargs, name):
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


def _as_input(x, name, where):
    if isinstance(x, Tracer):
        v = x
    elif isinstance(x, (bool,)) or not (isinstance(x, (int, float, complex)) or hasattr(x, "shape")):
        raise TypeError(f"{name}: {where} must be an array or a Python float, got {type(x).__name__}")
    else:
        v = backends.current().coerce(x)
        if isinstance(v, (int, float, complex)):
            v = backends.current().asarray(v)
    if dtype(v).kind == "c":
        raise TypeError(f"{name}: {where} is complex ({dtype(v)}); gpuad differentiates real "
                        "floating-point inputs only. Split it into real and imaginary parts.")
    if not is_inexact(v):
        raise TypeError(
            f"{name}: {where} has dtype {dtype(v)}; derivatives are defined for floating-point inputs "
            f"only. Convert it first, e.g. gpuad.numpy.asarray(x, dtype=float).")
    return v


def _inputs(args, argnums, name):
    """The differentiated leaves of args, as backend arrays, with their tree."""
    nums, single = _argnums(argnums, len(args), name)
    dyn = args[nums[0]] if single else tuple(args[i] for i in nums)
    leaves, tree = tree_flatten(dyn)
    if not leaves:
        raise ValueError(f"{name}: the differentiated arguments hold no arrays")
    leaves = [_as_input(x, name, f"input {k} of the differentiated arguments") for k, x in enumerate(leaves)]
    return nums, single, leaves, tree


def _with_kwargs(fun, kwargs):
    """Keyword arguments pass through the derivative transforms undifferentiated, as in JAX."""
    return functools.partial(fun, **kwargs) if kwargs else fun


def _substitute(args, nums, single, values):
    args = list(args)
    for i, v in zip(nums, (values,) if single else values):
        args[i] = v
    return tuple(args)


def _output(x, name):
    if isinstance(x, Tracer) or backends.current().is_array(x):
        return x
    if isinstance(x, (int, float, complex)) and not isinstance(x, bool) or hasattr(x, "__array_interface__"):
        return backends.current().coerce(backends.current().asarray(x))
    raise TypeError(f"{name}: the function must return arrays (or pytrees of arrays), "
                    f"but it returned a {type(x).__name__}")


def _split_aux(out, has_aux, name):
    if not has_aux:
        return out, None
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise TypeError(f"{name}: with has_aux=True the function must return a pair (output, aux)")
    return out[0], out[1]


def _lower(tree, trace):
    """Strip one trace level off every value in tree (for aux data and primal outputs)."""
    return tree_map(lambda x: trace.unpack(x)[0] if isinstance(x, Tracer) else x, tree)


def _sizes(leaves):
    sizes = [int(_prod(shape(x))) for x in leaves]
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    return sizes, offsets, sum(sizes)


def _prod(s):
    return functools.reduce(lambda a, b: a * b, s, 1)


# Share of the free device memory chunk_size="auto" lets one sweep's bundles take: the estimate
# counts the bundle of every value on the tape, not the temporaries the rules make on the way.
_AUTO_SHARE = 0.5


def _sweeps(n, chunk_size, sweep, bytes_per_direction):
    """[sweep(lo, hi) for each chunk of the n directions]. chunk_size: None (one sweep), an int,
    or "auto" (as many directions as fit in free device memory, bytes_per_direction() each).
    A sweep that runs out of memory is retried with half as many directions, down to one, and
    the smaller chunk is kept for the rest; one warning names the chunk size that fit."""
    size = _chunk_size(n, chunk_size, bytes_per_direction)
    if n == 0:
        return [sweep(0, 0)]
    parts, lo, first = [], 0, size
    while lo < n:
        hi = min(lo + size, n)
        try:
            parts.append(sweep(lo, hi))
        except MemoryError:  # cupy.cuda.memory.OutOfMemoryError is one
            if hi - lo == 1:
                raise
            size = (hi - lo + 1) // 2
            continue
        lo = hi
    if size < first:
        warnings.warn(f"out of memory sweeping {min(first, n)} directions at once; used chunks of {size} "
                      f"(pass chunk_size={size} to start there)", RuntimeWarning, stacklevel=3)
    return parts


def _chunk_size(n, chunk_size, bytes_per_direction):
    if chunk_size is None:
        return max(n, 1)
    if chunk_size == "auto":
        free = backends.current().free_memory()  # None where no device bounds it (NumPy): one sweep
        if free is None:
            return max(n, 1)
        return max(1, min(n, int(free * _AUTO_SHARE) // max(bytes_per_direction(), 1)))
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f'chunk_size must be a positive int, "auto" or None, got {chunk_size!r}')
    return chunk_size


def _bundle_bytes(trace, leaves):
    """Bytes one direction adds to a sweep over this tape: a bundle slice per input and per value."""
    values = list(leaves) + [eq.value for eq in trace.tape]
    return sum(int(_prod(shape(v))) * dtype(v).itemsize for v in values)


def _basis_slice(x, offset, lo, hi):
    """Rows lo..hi of the n x n identity, restricted to one leaf's columns, as a (hi-lo, *S) bundle."""
    size = int(_prod(shape(x)))
    xp = backends.current().xp
    e = xp.eye(hi - lo, size, k=lo - offset, dtype=dtype(x))
    return e.reshape((hi - lo,) + shape(x))


def _zeros(k, like):
    return backends.current().xp.zeros((k,) + shape(like), dtype=dtype(like))


def _cat(parts):
    return parts[0] if len(parts) == 1 else S.concatenate(*parts, axis=0)


# ---------------------------------------------------------------- forward mode

def _forward(fun, args, nums, single, leaves, tree, bundles, has_aux, name):
    with new_trace(JVPTrace) as trace:
        tracers = tree.unflatten([JVPTracer(trace, x, t) for x, t in zip(leaves, bundles)])
        out, aux = _split_aux(fun(*_substitute(args, nums, single, tracers)), has_aux, name)
        outs, out_tree = tree_flatten(out)
        pairs = [trace.unpack(_output(o, name)) for o in outs]
    k = shape(bundles[0])[0]
    primals = [p for p, _ in pairs]
    tangents = [t if t is not None else _zeros(k, p) for p, t in pairs]
    return primals, tangents, out_tree, _lower(aux, trace)


def jvp(fun, primals, tangents, has_aux=False):
    """Forward-mode Jacobian-vector product: (fun(*primals), J @ tangents).

    >>> import gpuad, gpuad.numpy as gnp
    >>> gpuad.jvp(gnp.sin, (0.0,), (2.0,))
    (array(0.), array(2.))
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("jvp: primals and tangents must be tuples (one entry per argument of fun)")
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    nums = tuple(range(len(primals)))
    _, _, leaves, tree = _inputs(tuple(primals), nums, "jvp")
    tleaves, ttree = tree_flatten(tuple(tangents))
    if ttree != tree:
        raise ValueError(f"jvp: tangents have structure {ttree} but primals have {tree}")
    bundles = [_bundle(t, x, "jvp", "tangent") for t, x in zip(tleaves, leaves)]
    po, to, out_tree, aux = _forward(fun, primals, nums, False, leaves, tree, bundles, has_aux, "jvp")
    res = out_tree.unflatten(po), out_tree.unflatten([S.reshape(t, shape=shape(t)[1:]) for t in to])
    return res + (aux,) if has_aux else res


def _bundle(t, like, name, what):
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
    return S.reshape(t, shape=(1,) + shape(t))


def jacfwd(fun, argnums=0, has_aux=False, chunk_size=None):
    """Jacobian by forward mode: one run of fun carrying all n input directions at once.

    Leaf shapes are out.shape + in.shape. chunk_size=k runs fun once per k directions to bound memory;
    chunk_size="auto" picks k from free device memory (one sweep on NumPy). A sweep that runs out of
    memory is retried in halves, with a warning.

    >>> import gpuad, gpuad.numpy as gnp
    >>> gpuad.jacfwd(lambda x: gnp.array([x[0] * x[1], gnp.sin(x[1])]))(gnp.array([2.0, 0.0]))
    array([[0., 2.],
           [0., 1.]])
    """
    @functools.wraps(fun)
    def jacfun(*args, **kwargs):
        f = _with_kwargs(fun, kwargs)
        nums, single, leaves, tree = _inputs(args, argnums, "jacfwd")
        sizes, offsets, n = _sizes(leaves)

        def sweep(lo, hi):
            bundles = [_basis_slice(x, o, lo, hi) for x, o in zip(leaves, offsets)]
            return _forward(f, args, nums, single, leaves, tree, bundles, has_aux, "jacfwd")

        def bytes_per_direction():  # a recorded run shows the values each direction's tangents shadow
            return _bundle_bytes(_record(f, args, nums, single, leaves, tree, has_aux, "jacfwd")[0], leaves)

        runs = _sweeps(n, chunk_size, sweep, bytes_per_direction)
        po, _, out_tree, aux = runs[-1]
        tangents = [_cat(ts) for ts in zip(*(to for _, to, _, _ in runs))]
        jac = out_tree.unflatten([_columns(t, leaves, sizes, offsets, tree, p) for t, p in zip(tangents, po)])
        return (jac, aux) if has_aux else jac
    return jacfun


def _columns(t, leaves, sizes, offsets, tree, primal):
    """Split a tangent bundle (n, *So) into one block per input leaf, shaped So + Sj."""
    so = shape(primal)
    blocks = []
    for x, size, off in zip(leaves, sizes, offsets):
        b = t if size == shape(t)[0] else S.getitem(t, idx=(slice(off, off + size),))
        b = S.reshape(b, shape=shape(x) + so)
        nx = len(shape(x))
        perm = tuple(range(nx, nx + len(so))) + tuple(range(nx))
        blocks.append(S.transpose(b, perm=perm) if nx and so else b)
    return tree.unflatten(blocks)


# ---------------------------------------------------------------- reverse mode

def _record(fun, args, nums, single, leaves, tree, has_aux, name):
    """Run fun once on a fresh tape. Returns the trace, input ids, outputs and aux."""
    with new_trace(RevTrace) as trace:
        tracers = [trace.new(x) for x in leaves]
        out, aux = _split_aux(fun(*_substitute(args, nums, single, tree.unflatten(tracers))), has_aux, name)
        outs, out_tree = tree_flatten(out)
        pairs = [trace.unpack(_output(o, name)) for o in outs]
    return trace, [t.id for t in tracers], pairs, out_tree, _lower(aux, trace)


def _sweep_rows(trace, in_ids, leaves, pairs, lo, hi):
    """Cotangent bundles of the inputs for output directions lo..hi (one backward sweep)."""
    seeds = {}
    off = 0
    for value, oid in pairs:
        m = int(_prod(shape(value)))
        if oid is not None and lo < off + m and off < hi:
            seed = _basis_slice(value, off, lo, hi)
            seeds[oid] = seed if oid not in seeds else seeds[oid] + seed
        off += m
    ct = trace.backward(seeds) if seeds else {}
    return [ct.get(i) if ct.get(i) is not None else _zeros(hi - lo, x) for i, x in zip(in_ids, leaves)]


def _rows(c, pairs, tree):
    """Split an input's cotangent bundle (m, *Sj) into one block per output leaf, So + Sj."""
    out, off = [], 0
    for value, _ in pairs:
        m = int(_prod(shape(value)))
        b = c if m == shape(c)[0] else S.getitem(c, idx=(slice(off, off + m),))
        out.append(S.reshape(b, shape=shape(value) + shape(c)[1:]))
        off += m
    return out


def _assemble_rev(cts, pairs, out_tree, tree):
    per_input = [_rows(c, pairs, tree) for c in cts]
    return out_tree.unflatten([tree.unflatten([blocks[o] for blocks in per_input]) for o in range(len(pairs))])


def jacrev(fun, argnums=0, has_aux=False, chunk_size=None):
    """Jacobian by reverse mode: one recorded run, one backward sweep with all m output directions.

    >>> import gpuad, gpuad.numpy as gnp
    >>> gpuad.jacrev(lambda x: gnp.sum(x * x))(gnp.array([1.0, 2.0]))
    array([2., 4.])
    """
    @functools.wraps(fun)
    def jacfun(*args, **kwargs):
        nums, single, leaves, tree = _inputs(args, argnums, "jacrev")
        trace, in_ids, pairs, out_tree, aux = _record(_with_kwargs(fun, kwargs), args, nums, single, leaves, tree,
                                                      has_aux, "jacrev")
        m = sum(int(_prod(shape(v))) for v, _ in pairs)
        parts = _sweeps(m, chunk_size, lambda lo, hi: _sweep_rows(trace, in_ids, leaves, pairs, lo, hi),
                        functools.partial(_bundle_bytes, trace, leaves))
        jac = _assemble_rev([_cat(cs) for cs in zip(*parts)], pairs, out_tree, tree)
        return (jac, aux) if has_aux else jac
    return jacfun


def jacobian(fun, argnums=0, has_aux=False, mode="auto", chunk_size=None):
    """Jacobian in the cheaper mode. mode="auto" records fun once on a tape, then sweeps it
    forward with the n input directions when n < m (tall Jacobians), else backward with the
    m output directions; "forward" and "reverse" are jacfwd and jacrev."""
    if mode == "forward":
        return jacfwd(fun, argnums, has_aux, chunk_size)
    if mode == "reverse":
        return jacrev(fun, argnums, has_aux, chunk_size)
    if mode != "auto":
        raise ValueError(f"jacobian: mode must be 'auto', 'forward' or 'reverse', got {mode!r}")

    @functools.wraps(fun)
    def jacfun(*args, **kwargs):
        nums, single, leaves, tree = _inputs(args, argnums, "jacobian")
        trace, in_ids, pairs, out_tree, aux = _record(_with_kwargs(fun, kwargs), args, nums, single, leaves, tree,
                                                      has_aux, "jacobian")
        sizes, offsets, n = _sizes(leaves)
        m = sum(int(_prod(shape(v))) for v, _ in pairs)
        per_direction = functools.partial(_bundle_bytes, trace, leaves)
        if n < m:
            parts = _sweeps(n, chunk_size, lambda lo, hi: _tape_forward(trace, in_ids, leaves, offsets, pairs, lo, hi),
                            per_direction)
            tangents = [_cat(ts) for ts in zip(*parts)]
            jac = out_tree.unflatten([_columns(t, leaves, sizes, offsets, tree, v)
                                      for t, (v, _) in zip(tangents, pairs)])
        else:
            parts = _sweeps(m, chunk_size, lambda lo, hi: _sweep_rows(trace, in_ids, leaves, pairs, lo, hi),
                            per_direction)
            jac = _assemble_rev([_cat(cs) for cs in zip(*parts)], pairs, out_tree, tree)
        return (jac, aux) if has_aux else jac
    return jacfun


def _tape_forward(trace, in_ids, leaves, offsets, pairs, lo, hi):
    tan = trace.forward({i: _basis_slice(x, o, lo, hi) for i, x, o in zip(in_ids, leaves, offsets)})
    return [tan.get(oid) if oid is not None and tan.get(oid) is not None else _zeros(hi - lo, v)
            for v, oid in pairs]


def vjp(fun, *primals, has_aux=False):
    """Reverse-mode vector-Jacobian product. Returns (fun(*primals), pullback); pullback(ct)
    returns a tuple with one cotangent per primal.

    >>> import gpuad, gpuad.numpy as gnp
    >>> y, pullback = gpuad.vjp(gnp.sin, 0.0)
    >>> pullback(gnp.asarray(3.0))
    (array(3.),)
    """
    nums = tuple(range(len(primals)))
    _, _, leaves, tree = _inputs(primals, nums, "vjp")
    trace, in_ids, pairs, out_tree, aux = _record(fun, primals, nums, False, leaves, tree, has_aux, "vjp")

    def pullback(ct):
        cleaves, ctree = tree_flatten(ct)
        if ctree != out_tree:
            raise ValueError(f"vjp: the cotangent has structure {ctree} but the output has {out_tree}")
        seeds = {}
        for c, (value, oid) in zip(cleaves, pairs):
            b = _bundle(c, value, "vjp", "cotangent")
            if oid is not None:
                seeds[oid] = b if oid not in seeds else seeds[oid] + b
        got = trace.backward(seeds) if seeds else {}
        return tree.unflatten([S.reshape(got[i], shape=shape(x)) if got.get(i) is not None
                               else _zeros(1, x)[0] for i, x in zip(in_ids, leaves)])

    out = out_tree.unflatten([v for v, _ in pairs])
    return (out, pullback, aux) if has_aux else (out, pullback)


def linearize(fun, *primals):
    """(fun(*primals), f_jvp): f_jvp(*tangents) = J @ tangents, computed by a forward sweep of
    the tape recorded once here (fun is not run again)."""
    nums = tuple(range(len(primals)))
    _, _, leaves, tree = _inputs(primals, nums, "linearize")
    trace, in_ids, pairs, out_tree, _ = _record(fun, primals, nums, False, leaves, tree, False, "linearize")

    def f_jvp(*tangents):
        tleaves, ttree = tree_flatten(tuple(tangents))
        if ttree != tree:
            raise ValueError(f"linearize: tangents have structure {ttree} but primals have {tree}")
        tan = trace.forward({i: _bundle(t, x, "linearize", "tangent")
                             for i, t, x in zip(in_ids, tleaves, leaves)})
        return out_tree.unflatten([S.reshape(tan[oid], shape=shape(v)) if tan.get(oid) is not None
                                   else _zeros(1, v)[0] for v, oid in pairs])

    return out_tree.unflatten([v for v, _ in pairs]), f_jvp


def value_and_grad(fun, argnums=0, has_aux=False):
    """(fun(*args), gradient) for a scalar-valued fun, by one reverse sweep.

    >>> import gpuad, gpuad.numpy as gnp
    >>> gpuad.value_and_grad(lambda x: gnp.sum(x ** 2))(gnp.array([1.0, 3.0]))
    (array(10.), array([2., 6.]))
    """
    @functools.wraps(fun)
    def vg(*args, **kwargs):
        nums, single, leaves, tree = _inputs(args, argnums, "grad")
        trace, in_ids, pairs, out_tree, aux = _record(_with_kwargs(fun, kwargs), args, nums, single, leaves, tree,
                                                      has_aux, "grad")
        if len(pairs) != 1 or shape(pairs[0][0]) != ():
            shapes = [shape(v) for v, _ in pairs]
            raise TypeError(f"grad requires a function with one scalar output, but it returned shape(s) "
                            f"{shapes}. Use jacrev for vector outputs, or reduce the output (e.g. sum).")
        value, oid = pairs[0]
        if not is_inexact(value):
            raise TypeError(f"grad requires a floating-point output, got dtype {dtype(value)}")
        cts = _sweep_rows(trace, in_ids, leaves, pairs, 0, 1)
        g = tree.unflatten([S.reshape(c, shape=shape(x)) for c, x in zip(cts, leaves)])
        return ((value, aux), g) if has_aux else (value, g)
    return vg


def grad(fun, argnums=0, has_aux=False):
    """Gradient of a scalar-valued function (reverse mode).

    >>> import gpuad, gpuad.numpy as gnp
    >>> gpuad.grad(lambda x: x[0] ** 2 * x[1])(gnp.array([1.0, 2.0]))
    array([4., 1.])
    """
    vg = value_and_grad(fun, argnums, has_aux)

    @functools.wraps(fun)
    def g(*args, **kwargs):
        (value, aux), gr = vg(*args, **kwargs) if has_aux else ((None, None), vg(*args, **kwargs)[1])
        return (gr, aux) if has_aux else gr
    return g


def hessian(fun, argnums=0, has_aux=False, chunk_size=None):
    """Hessian as jacfwd(jacrev(fun)): leaf shapes out.shape + in.shape + in.shape.

    >>> import gpuad, gpuad.numpy as gnp
    >>> gpuad.hessian(lambda x: x[0] ** 2 * x[1] + x[1] ** 3)(gnp.array([1.0, 2.0]))
    array([[ 4.,  2.],
           [ 2., 12.]])
    """
    return jacfwd(jacrev(fun, argnums, has_aux), argnums, has_aux, chunk_size)


def hvp(fun, primals, tangents):
    """Hessian-vector product H @ v by forward-over-reverse, without forming H. Returns a value
    with the primals' structure (a single array when there is one primal).

    >>> import gpuad, gpuad.numpy as gnp
    >>> gpuad.hvp(lambda x: x[0] ** 2 * x[1] + x[1] ** 3, (gnp.array([1.0, 2.0]),), (gnp.array([0.5, -0.5]),))
    array([ 1., -5.])
    """
    argnums = 0 if len(primals) == 1 else tuple(range(len(primals)))
    return jvp(grad(fun, argnums), tuple(primals), tuple(tangents))[1]


# ---------------------------------------------------------------- vmap

def _axes_for(spec, tree, what):
    """Broadcast an in_axes/out_axes prefix (int, None, or a container of them) to tree's leaves."""
    if spec is None or isinstance(spec, int):
        return [spec] * len(tree_flatten(tree)[0])
    if isinstance(spec, (tuple, list)) and isinstance(tree, (tuple, list)) and len(spec) == len(tree):
        return [a for s, t in zip(spec, tree) for a in _axes_for(s, t, what)]
    if isinstance(spec, dict) and isinstance(tree, dict) and set(spec) == set(tree):
        return [a for k in sorted(tree) for a in _axes_for(spec[k], tree[k], what)]
    raise ValueError(f"vmap: {what} {spec!r} does not match the structure of the values it describes")


def vmap(fun, in_axes=0, out_axes=0):
    """Vectorise fun over an axis of its arguments: one run on the whole batch, no Python loop.

    >>> import gpuad, gpuad.numpy as gnp
    >>> gpuad.vmap(lambda v: gnp.sum(v * v))(gnp.ones((3, 2)))
    array([2., 2., 2.])
    """
    @functools.wraps(fun)
    def batched(*args, **kwargs):
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
            outs = [_output(o, "vmap") for o in outs]
        oaxes = _axes_for(out_axes, out, "out_axes")
        return out_tree.unflatten([_unbatch(o, a, trace, size) for o, a in zip(outs, oaxes)])
    return batched


def _batch_size(leaves, axes):
    sizes = {}
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


def _unbatch(o, axis, trace, size):
    batched = isinstance(o, BatchTracer) and o._trace is trace
    if axis is None:
        if batched:
            raise ValueError("vmap: out_axes is None for an output that varies along the batch")
        return o
    v = o.value if batched else S.broadcast_to(o, shape=(size,) + shape(o))
    nd = len(shape(v))
    if not -nd <= axis < nd:
        raise ValueError(f"vmap: out_axes {axis} is out of range for an output of {nd - 1} dimensions")
    return moveaxis(v, 0, axis)


def block_until_ready(tree):
    """Wait until every array in tree is computed (CuPy runs asynchronously); returns tree."""
    return backends.current().block_until_ready(tree)
