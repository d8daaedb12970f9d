"""gpuad.distributed: Jacobians, Hessians and batches spread over a Dask cluster.

The directions of a Jacobian are independent: column blocks in forward mode, row blocks in
reverse mode, colors of a sparse one. Here each block is one Dask task that runs, on a worker,
the compiled (gpuad.jit) product of the Jacobian with that block of seed rows: the sweep
gpuad.sparse runs with its compressed seed (sparse/compressed.py), here seeded with rows of the
identity or of the compressed seed. The function (cloudpickled) and the inputs go into the graph
once, each one key that the workers share; each worker compiles the block program once per
signature. Results are dask arrays: `.compute()` gathers one,
`.to_zarr(...)` writes one larger than any worker's memory. `vmap` runs jit(vmap(fun)) on each
chunk of dask arrays chunked along the mapped axis.

    >>> import numpy as np, gpuad.numpy as gnp, gpuad.distributed as gd
    >>> J = gd.jacfwd(lambda x: gnp.sin(x) * x[0], chunk_size=2)(np.array([0.0, 1.0, 2.0]))
    >>> J.chunks, J.compute().shape
    (((3,), (2, 1)), (3, 3))

Needs dask and distributed (pip install gpuad[dask]); docs/distributed.md.
"""
import functools
import math
import operator
import threading
import types
import uuid

import numpy as onp

try:
    import cloudpickle
    import dask
    import dask.array as da
    import distributed
except ImportError as e:  # gpuad itself runs without Dask; this module does not
    raise ImportError("gpuad.distributed needs dask and distributed: pip install gpuad[dask]") from e

from . import api, backends
from .api import Call, grad
from .core import ShapeDtypeStruct, dtype, shape
from .jit import eval_shape, jit
from .sizes import size_text
from .tree import tree_flatten

# A block's planned buffers may take this share of a worker thread's memory limit: the rest holds
# finished blocks until they are written or gathered, and Dask spills from 60% and pauses at 80%.
BLOCK_SHARE = 0.25


# ---------------------------------------------------------------- what the workers run
_PROGRAMS = {}  # in each worker process: (transform, program, thread) -> its compiled program, across calls
_KEPT = 64  # programs kept; the oldest go first
_KEEPING = threading.Lock()


class _Shipped:
    """A function sent to the workers once per call, cloudpickled. Each worker compiles its
    program once per transform (`transform`: made once per gpuad.distributed transform, so that
    later calls find their programs compiled), signature and thread: a CPU replay keeps its buffers
    between calls, so threads sharing one program would take turns."""

    def __init__(self, transform):
        self.transform, self.id = transform, uuid.uuid4().hex

    def __getstate__(self):
        return dict(self.__dict__, fun=cloudpickle.dumps(self.fun))

    def __setstate__(self, state):
        self.__dict__.update(state, fun=cloudpickle.loads(state["fun"]))

    def __dask_tokenize__(self):
        return self.id

    def compiled(self):
        key = (self.transform, self.kind(), threading.get_ident())
        with _KEEPING:  # the worker's threads share the dict
            if key not in _PROGRAMS:
                if len(_PROGRAMS) >= _KEPT:
                    del _PROGRAMS[next(iter(_PROGRAMS))]
                _PROGRAMS[key] = jit(self.program)  # traced and compiled at its first call, outside the lock
            return _PROGRAMS[key]


class _Products(_Shipped):
    """Products of fun's Jacobian with blocks of seed rows (forward: J S, reverse: S^T J, each as
    (directions, elements)), the directions given by their colors (arange: the basis)."""

    def __init__(self, transform, name, fun, argnums, by_rows, colors, outputs, seed_dtype):
        super().__init__(transform)
        self.name, self.fun, self.argnums, self.by_rows = name, fun, argnums, by_rows
        self.colors, self.outputs, self.seed_dtype = colors, outputs, seed_dtype

    def kind(self):
        return self.by_rows, self.outputs

    def program(self, args, seed):
        from .sparse.compressed import forward_product, reverse_product
        product = reverse_product if self.by_rows else forward_product
        return product(Call(self.name, self.fun, args, {}, self.argnums, False), lambda dt: seed, self.outputs)

    def seed(self, lo, hi, rows):
        """Seed rows lo..hi, each the sum of the basis vectors of its color, then zero rows to `rows`."""
        from .sparse.compressed import seed_rows
        inside = (self.colors >= lo) & (self.colors < hi)
        return seed_rows(onp.where(inside, self.colors - lo, -1), self.seed_dtype, rows)

    def block(self, args, lo, hi, rows):
        """The products of directions lo..hi, swept as a block of `rows` (every block's size: the last,
        smaller one runs the program the others compiled, not one of its own)."""
        return self.compiled()(args, self.seed(lo, hi, rows))[:hi - lo]


class _Batches(_Shipped):
    """fun vectorised over chunks (jit(vmap(fun)) with these in_axes), its output leaves as a tuple."""

    def __init__(self, transform, fun, in_axes):
        super().__init__(transform)
        self.fun, self.in_axes = fun, in_axes

    def kind(self):
        return self.in_axes

    def program(self, *args):
        return tuple(tree_flatten(api.vmap(self.fun, in_axes=self.in_axes)(*args))[0])

    def block(self, fixed, chunks):
        it, fx = iter(chunks), iter(fixed)
        return self.compiled()(*(next(fx) if a is None else next(it) for a in self.in_axes))


def _chunk(batches, fixed, *args):
    """One chunk's task: its `fixed` first arguments are those not mapped, the rest its chunks."""
    return batches.block(args[:fixed], args[fixed:])


# ---------------------------------------------------------------- the client side
def _client(client):
    """The client given, else the one Dask would compute with (the default client), else None
    (a local scheduler: threads, processes, or dask.config's). Its workers import gpuad now (_Preload)."""
    if client is None:
        owner = getattr(dask.base.get_scheduler(), "__self__", None)  # a client's scheduler is its bound get
        client = owner if isinstance(owner, distributed.Client) else None
    if client is not None and not client.asynchronous:  # an asynchronous client's caller awaits what it calls
        client.register_plugin(_Preload())
    return client


class _Preload(distributed.WorkerPlugin):
    """Unpickled on every worker, this imports gpuad.distributed there: all workers at once, before
    any task. Else the first to unpickle the shipped function imports gpuad while it computes
    that key, and each peer imports it only when the fetched copy arrives, one after another, each
    import holding the worker's event loop (and the transfers it serves). Registered on every
    call: idempotent, the scheduler keeps the first and sends no other."""
    name, idempotent = "gpuad-preload", True


def _ship(values):
    """Values every task may read, sent once: literals of the graph, each one key that a worker
    computes and its peers fetch. Not scattered: a scattered value whose last copy is on a worker
    that dies is lost (the Active Memory Manager drops extra copies), where the scheduler makes a
    lost literal again."""
    return [dask.delayed(v, name=f"gpuad-{dask.base.tokenize(v)}") for v in values]


def _workers(client):
    """(the least memory one worker thread may use, worker threads in all); without a client,
    the machine's available memory over its cores."""
    if client is not None:
        workers = list(client.scheduler_info(n_workers=-1)["workers"].values())
        limits = [w["memory_limit"] / w["nthreads"] for w in workers if w.get("memory_limit")]
        threads = sum(w["nthreads"] for w in workers) or 1
        if limits:
            return min(limits), threads
    else:
        threads = dask.system.CPU_COUNT
    free = backends.current().free_memory()
    return (float("inf") if free is None else free / threads), threads


def _check_chunk_size(chunk_size, name):
    if not (chunk_size == "auto" or isinstance(chunk_size, int) and not isinstance(chunk_size, bool)
            and chunk_size >= 1):
        raise ValueError(f'{name}: chunk_size must be a positive int or "auto", got {chunk_size!r}')


def _block_size(jitted, products, args, total, width, info, room, threads, name):
    """chunk_size="auto": the most directions whose block program (jitted: its planned buffers and
    its seed, `width` wide; info: its product's) fits in BLOCK_SHARE of a worker thread's memory,
    and whose seed and product stay below the backend's reused_bytes, where it has one: there a
    block reuses the memory the one before freed, where larger ones are faulted in afresh, kernel
    time that cost a block more than its sweep (docs/distributed.md). Then evened out (_even)
    over the worker threads."""
    itemsize = onp.dtype(products.seed_dtype).itemsize
    peak = [jitted.lower(args, ShapeDtypeStruct((k, width), products.seed_dtype)).peak_bytes + k * width * itemsize
            for k in (1, 2)]
    per, fixed = peak[1] - peak[0], 2 * peak[0] - peak[1]
    fits = int((BLOCK_SHARE * room - fixed) // max(per, 1))
    if fits < 1:
        raise MemoryError(f"{name}: a block of one direction needs about {size_text(peak[0])}, more than "
                          f"{BLOCK_SHARE} of a worker thread's memory limit ({size_text(room)}); give the workers "
                          "more memory (or fewer threads each)")
    cap, row = backends.current().reused_bytes, max(width * itemsize, info.shape[1] * info.dtype.itemsize, 1)
    return _even(total, fits if cap is None else max(1, min(fits, (cap - 1) // row)), threads)


def _even(total, most, threads):
    """The block size for `total` directions at most `most` a block that deals the blocks evenly
    to the threads: as many rounds of one block a thread as blocks of `most` need, the size then
    shrunk to fill them (all blocks one size, the last smaller, as zarr's chunks must be). 20,000
    directions at most 1,171 on 2 threads: 18 blocks of 1,112 (the last 1,096), not 17 of 1,171
    and one of 93, where one thread ran a full block more than the other."""
    rounds = -(-total // (most * threads))
    return -(-total // (rounds * threads))


def _product(products, call, total, chunk_size, client):
    """The products of the Jacobian with the seed rows, as a dask array (directions, elements)
    chunked by blocks of chunk_size directions (of `total`), one task each."""
    _check_chunk_size(chunk_size, call.name)
    width = products.outputs if products.by_rows else call.n
    seed = ShapeDtypeStruct((1, width), products.seed_dtype)
    jitted = products.compiled()  # as the workers: a later call of the transform finds it traced
    info = jitted.lower(call.args, seed).out_info()  # checks fun on the client, before any task
    cluster = _client(client)
    if chunk_size == "auto":
        chunk_size = _block_size(jitted, products, call.args, total, width, info, *_workers(cluster), call.name)
    sizes = (chunk_size,) * (total // chunk_size) + ((total % chunk_size,) if total % chunk_size else ())
    # blockwise, so that what follows a block (a transpose, a store to zarr, a reduction) joins its task
    return da.map_blocks(_block, *_ship((products, *call.args)), rows=chunk_size, chunks=(sizes, (info.shape[1],)),
                         dtype=info.dtype, meta=backends.xp().empty((0, 0), dtype=info.dtype))


def _block(products, *args, rows, block_info=None):
    (lo, hi), _ = block_info[None]["array-location"]
    return products.block(args, lo, hi, rows)


def _products(transform, call, argnums, by_rows, colors, m, outs=None):
    """The block products of the call's Jacobian seeded by these colors (outs: the function's
    output leaves, where the caller has them already)."""
    if by_rows and outs is None:
        outs = tree_flatten(eval_shape(call.fun, *call.args))[0]
    seed_dtype = outs[0].dtype if by_rows and outs else dtype(call.leaves[0])
    return _Products(transform, call.name, call.fun, argnums, by_rows, colors, m, seed_dtype)


def _jacobian(name, fun, argnums, has_aux, by_rows, chunk_size, client):
    if has_aux:
        raise ValueError(f"{name}: has_aux=True is not supported by gpuad.distributed; "
                         "compute the auxiliary data with fun itself")
    transform = uuid.uuid4().hex

    @functools.wraps(fun)
    def jacfun(*args):
        outs, out_tree = tree_flatten(eval_shape(fun, *args))
        m = sum(math.prod(o.shape) for o in outs)
        call = Call(name, fun, args, {}, argnums, False)
        rows = m <= call.n if by_rows is None else by_rows  # "auto": the fewer directions
        total = m if rows else call.n
        products = _products(transform, call, argnums, rows, onp.arange(total), m, outs)
        product = _product(products, call, total, chunk_size, client)
        return _as_tree(product if rows else product.T, call, outs, out_tree)
    return jacfun


def _as_tree(matrix, call, outs, out_tree):
    """The raveled Jacobian (outputs, inputs) as JAX lays it out: an output tree of input trees,
    blocks shaped So + Si (the matrix itself for one input and one output, both vectors)."""
    blocks, r = [], 0
    for o in outs:
        row, c = [], 0
        for x, size in zip(call.leaves, call.sizes):
            part = matrix[r:r + math.prod(o.shape), c:c + size]
            row.append(part if len(o.shape) == 1 and len(shape(x)) == 1 else part.reshape(o.shape + shape(x)))
            c += size
        blocks.append(call.tree.unflatten(row))
        r += math.prod(o.shape)
    return out_tree.unflatten(blocks)


def jacfwd(fun, argnums=0, has_aux=False, chunk_size="auto", client=None):
    """gpuad.jacfwd as a dask array: column blocks of chunk_size input directions, one task each
    (chunk_size="auto": sized from the workers' memory limits). client: the distributed Client
    (default: the current one; none: Dask's local scheduler)."""
    return _jacobian("distributed.jacfwd", fun, argnums, has_aux, False, chunk_size, client)


def jacrev(fun, argnums=0, has_aux=False, chunk_size="auto", client=None):
    """gpuad.jacrev as a dask array: row blocks of chunk_size output directions, one task each."""
    return _jacobian("distributed.jacrev", fun, argnums, has_aux, True, chunk_size, client)


def jacobian(fun, argnums=0, has_aux=False, mode="auto", chunk_size="auto", client=None):
    """gpuad.jacobian as a dask array: mode "forward", "reverse", or "auto" (fewer directions)."""
    modes = {"auto": None, "forward": False, "reverse": True}
    if mode not in modes:
        raise ValueError(f"distributed.jacobian: mode must be 'auto', 'forward' or 'reverse', got {mode!r}")
    return _jacobian("distributed.jacobian", fun, argnums, has_aux, modes[mode], chunk_size, client)


def hessian(fun, argnums=0, has_aux=False, chunk_size="auto", client=None):
    """gpuad.hessian as a dask array: forward over reverse, column blocks of chunk_size directions."""
    return _jacobian("distributed.hessian", grad(fun, argnums), argnums, has_aux, False, chunk_size, client)


# ---------------------------------------------------------------- sparse
def _sparse(name, fun, argnums, chunk_size, client, plans, swept):
    transform = uuid.uuid4().hex

    @functools.wraps(fun)
    def sparse(*args):
        from .sparse.compressed import reverse_product
        plan = plans.get(args)  # the pattern and its coloring, once per signature, on the client
        m = plan.pattern.shape[0]
        products = []
        for product, colors, _ in plan.parts:
            call = Call(name, swept, args, {}, argnums, False)
            part = _products(transform, call, argnums, product is reverse_product, colors, m)
            total = int(colors.max()) + 1 if colors.size else 0
            products.append(_product(part, call, total, chunk_size, client))
        cluster = _client(client)
        return plan.assemble(dask.compute(*products, **({"scheduler": cluster} if cluster else {})))
    return sparse


def _sparse_jacobian(fun, argnums=0, mode="auto", sparsity=None, chunk_size="auto", client=None):
    """gpuad.sparse.jacobian with its colors split over the workers in blocks of chunk_size, one
    task each; the CSR matrix assembled on the client from the compressed products."""
    from .sparse import compressed
    from .sparse.detect import jacobian_pattern
    if mode not in compressed.JACOBIAN_MODES:
        raise ValueError(f"distributed.sparse.jacobian: mode must be one of {compressed.JACOBIAN_MODES}, got {mode!r}")
    plans = compressed.Plans("distributed.sparse.jacobian", fun, argnums, sparsity, jacobian_pattern,
                             functools.partial(compressed.jacobian_plan, mode))
    return _sparse("distributed.sparse.jacobian", fun, argnums, chunk_size, client, plans, fun)


def _sparse_hessian(fun, argnums=0, sparsity=None, chunk_size="auto", client=None):
    """gpuad.sparse.hessian with its star colors split over the workers, as sparse.jacobian."""
    from .sparse import compressed
    from .sparse.detect import hessian_pattern
    plans = compressed.Plans("distributed.sparse.hessian", fun, argnums, sparsity, hessian_pattern,
                             compressed.hessian_plan)
    return _sparse("distributed.sparse.hessian", fun, argnums, chunk_size, client, plans, grad(fun, argnums))


sparse = types.SimpleNamespace(jacobian=_sparse_jacobian, hessian=_sparse_hessian)
sparse.__doc__ = "gpuad.sparse's jacobian and hessian, their colors split over a Dask cluster (needs SciPy)."


# ---------------------------------------------------------------- batches
def vmap(fun, in_axes=0, out_axes=0):
    """gpuad.vmap over dask arrays chunked along the mapped axis: each chunk is one task running
    jit(vmap(fun)) on a worker, compiled once per worker and chunk shape. Arguments with in_axes
    None are sent to the workers once; NumPy arrays mapped are taken as one chunk. Returns dask
    arrays (a tree of them), chunked as the mapped arguments, computed where dask computes them.

    >>> import dask.array as da, gpuad, gpuad.numpy as gnp, gpuad.distributed as gd
    >>> xs = da.ones((6, 3), chunks=(2, 3))
    >>> gd.vmap(gpuad.jacfwd(gnp.sin))(xs).chunks
    ((2, 2, 2), (3,), (3,))
    """
    transform = uuid.uuid4().hex

    @functools.wraps(fun)
    def batched(*args):
        _client(None)
        axes = tuple(in_axes) if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(args)
        if len(axes) != len(args):
            raise ValueError(f"distributed.vmap: in_axes has {len(axes)} entries but the function got {len(args)} "
                             "arguments")
        mapped = [_mapped(x, a, k) for k, (x, a) in enumerate(zip(args, axes)) if a is not None]
        if not mapped:
            raise ValueError("distributed.vmap: no argument is mapped; give at least one in_axes that is not None")
        chunks = mapped[0].chunks[0]
        if len({x.shape[0] for x in mapped}) > 1:
            raise ValueError(f"distributed.vmap: mapped axes must all have the same size, got "
                             f"{[x.shape[0] for x in mapped]}")
        mapped = [x.rechunk((chunks,) + tuple(-1 for _ in x.shape[1:])) for x in mapped]  # no-op where so already
        fixed = [x for x, a in zip(args, axes) if a is None]
        batches = _Batches(transform, fun, tuple(None if a is None else 0 for a in axes))
        like, it = [], iter(mapped)
        for a, x in zip(axes, args):
            like.append(x if a is None else ShapeDtypeStruct((chunks[0],) + next(it).shape[1:], x.dtype))
        outs, out_tree = tree_flatten(eval_shape(api.vmap(fun, in_axes=batches.in_axes), *like))
        shipped, *fixed = _ship((batches, *fixed))
        # blockwise, one task a chunk: its leaves a tuple, each leaf taken from it blockwise (one leaf: all
        # of it in one task, with what follows, as a reduction's first step); index "b" is the mapped axis
        pairs = [(x, ("b", *(f"in{j}.{d}" for d in range(1, x.ndim)))) for j, x in enumerate(mapped)]
        leaves = da.blockwise(_chunk, ("b",), shipped, None, len(fixed), None, *(p for f in fixed for p in (f, None)),
                              *(p for pair in pairs for p in pair), concatenate=True, dtype=object,
                              meta=onp.empty((0,), object))
        arrays = [da.blockwise(operator.getitem, ("b", *(f"out{d}" for d in range(1, len(o.shape)))), leaves, ("b",),
                               k, None, new_axes={f"out{d}": o.shape[d] for d in range(1, len(o.shape))},
                               dtype=o.dtype, meta=backends.xp().empty((0,) * len(o.shape), o.dtype))
                  for k, o in enumerate(outs)]
        oaxes = out_axes if isinstance(out_axes, (tuple, list)) else (out_axes,) * len(arrays)
        return out_tree.unflatten([da.moveaxis(v, 0, a) for v, a in zip(arrays, oaxes)])
    return batched


def _mapped(x, axis, k):
    """A mapped argument as a dask array with its mapped axis first."""
    if not hasattr(x, "shape"):
        raise TypeError(f"distributed.vmap: argument {k} is a {type(x).__name__}; mapped arguments must be arrays "
                        "(dask, NumPy or CuPy), and pytrees are not supported: pass their leaves as arguments")
    x = x if isinstance(x, da.Array) else da.from_array(x, chunks=-1)
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"distributed.vmap: in_axes {axis} is out of range for argument {k} of shape {x.shape}")
    return x if axis in (0, -x.ndim) else da.moveaxis(x, axis, 0)  # an identity moveaxis ran as a task a chunk
