"""Sparse Jacobians and Hessians by compressed sweeps: one direction per color.

Forward mode seeds the input bundle with one direction per column color (the sum of the basis
vectors of that color) and runs the function once: K = colors, not n. Reverse mode sweeps the
recorded tape back once with one cotangent per row color. Entries come back from the compressed
product by direct lookup (column coloring: J[i, j] = (J S)[i, color[j]]). Pattern and colorings
are found once per input signature and cached.

Under gpuad.jit the sweep and the lookup are traced into the compiled program and the result is
a TracedCSR: the values traced, the structure (the pattern) known, a pytree node, so the compiled
function returns the backend's CSR matrix. Other transforms cannot take a CSR matrix as a value
(vmap would need a batch of them, jacfwd a sparse tensor of order 3): they raise a TypeError that
says what to do instead.

Besides jacobian and hessian, gpuad.distributed uses the parts that run elsewhere: the Plans (per
input signature, a pattern's coloring and its sweep; jacobian_plan and hessian_plan make them),
JACOBIAN_MODES, seed_rows (a block of compressed seed rows), and forward_product and
reverse_product (the products of a function's Jacobian with a block of seed rows).
"""
import functools
import math
import warnings

import numpy as onp
import scipy.sparse as sp

from .. import backends
from .. import numpy as gnp
from ..api import Call, grad
from ..core import Tracer, dtype, shape, staging
from ..fpwarnings import at_user_line
from ..tree import register_pytree_node
from .coloring import as_pattern, distance2, star, symmetric
from .detect import Signature, hessian_pattern, jacobian_pattern

JACOBIAN_MODES = ("auto", "forward", "reverse", "bidirectional")
NEARLY_DENSE = 0.5  # share of the dense sweep's directions above which compression is worth a warning


def jacobian(fun, argnums=0, mode="auto", sparsity=None):
    """The Jacobian of fun as a CSR matrix (output size, input size), inputs and outputs raveled
    as in jacobian_sparsity. mode: "forward" (K = column colors), "reverse" (M = row colors),
    "auto" (fewer colors; forward on a tie) or "bidirectional" (the densest rows by reverse mode,
    the rest by forward mode: an arrow-shaped Jacobian in 3 directions where one-sided colorings
    need n). sparsity: a known pattern, skipping detection.

    >>> import gpuad, gpuad.numpy as gnp
    >>> J = gpuad.sparse.jacobian(lambda x: x[1:] * x[:-1])(gnp.array([1.0, 2.0, 3.0]))
    >>> J.toarray()
    array([[2., 1., 0.],
           [0., 3., 2.]])
    """
    if mode not in JACOBIAN_MODES:
        raise ValueError(f"sparse.jacobian: mode must be one of {', '.join(map(repr, JACOBIAN_MODES))}, got {mode!r}")
    plans = Plans("sparse.jacobian", fun, argnums, sparsity, jacobian_pattern, functools.partial(jacobian_plan, mode))

    @functools.wraps(fun)
    @at_user_line
    def jac(*args):
        plan = plans.get(args)
        return plan(Call("sparse.jacobian", fun, args, {}, argnums, False))
    return jac


def hessian(fun, argnums=0, sparsity=None):
    """The Hessian of a scalar function as a CSR matrix (n, n), by a star coloring of its pattern
    and one forward-over-reverse sweep with one direction per color.

    >>> import gpuad, gpuad.numpy as gnp
    >>> H = gpuad.sparse.hessian(lambda x: gnp.sum(x[1:] * x[:-1] ** 2))(gnp.array([1.0, 2.0, 3.0]))
    >>> H.toarray()
    array([[4., 2., 0.],
           [2., 6., 4.],
           [0., 4., 0.]])
    """
    plans = Plans("sparse.hessian", fun, argnums, sparsity, hessian_pattern, hessian_plan)

    @functools.wraps(fun)
    @at_user_line
    def hess(*args):
        plan = plans.get(args)
        return plan(Call("sparse.hessian", grad(fun, argnums), args, {}, argnums, False))
    return hess


class Plans:
    """What a sparse transform of fun runs, per input signature: the pattern (found by `find`, or
    given), its coloring, and the sweep to run (made by `plan`; a function of the api.Call that
    runs it). get(args) returns the sweep for these arguments."""

    def __init__(self, name, fun, argnums, sparsity, find, plan):
        self.name, self.fun, self.argnums, self.find, self.plan = name, fun, argnums, find, plan
        self.given = None if sparsity is None else as_pattern(sparsity, name)
        self.cache = {}

    def get(self, args):
        sig = Signature(self.name, args, self.argnums)
        plan = self.cache.get(sig.key)
        if plan is None:
            pattern = self.given if self.given is not None else self.find(self.fun, self.argnums, self.name, sig)
            if pattern.shape[1] != sig.n:
                raise ValueError(f"{self.name}: the sparsity pattern has {pattern.shape[1]} columns but the "
                                 f"differentiated arguments have {sig.n} elements")
            plan = self.cache[sig.key] = self.plan(self.name, pattern)
        return plan


def jacobian_plan(mode, name, pattern):
    """The sweep of a Jacobian with this pattern in this mode (one of JACOBIAN_MODES)."""
    if mode == "bidirectional":
        return _bidirectional_plan(name, pattern)
    m, n = pattern.shape
    cols = distance2(pattern) if mode != "reverse" else None
    rows = distance2(pattern.T.tocsr()) if mode != "forward" else None
    forward = rows is None or cols is not None and _count(cols) <= _count(rows)
    colors = cols if forward else rows
    _warn_if_dense(name, _count(colors), "column" if forward else "row", m, n, pattern.nnz)
    r, c = _entries(pattern)
    # J[i, j] is (J S)[i, color[j]] forward, (S^T J)[color[i], j] in reverse
    if forward:
        return _Sweep(name, pattern, forward=(colors, (colors[c], r)))
    return _Sweep(name, pattern, reverse=(colors, (colors[r], c)))


def _bidirectional_plan(name, pattern):
    """The r longest rows by reverse mode (r directions, or fewer where they share no column), the
    others by forward mode, whose column coloring is bounded below by the longest row left: r
    minimises r + that bound."""
    m, n = pattern.shape
    lengths = onp.diff(pattern.indptr)
    order = onp.argsort(-lengths, kind="stable")
    r = int(onp.argmin(onp.arange(m + 1) + onp.append(lengths[order], 0)))
    dense = onp.zeros(m, dtype=bool)
    dense[order[:r]] = True
    cols = distance2(sp.diags_array(~dense, dtype=bool) @ pattern)  # the other rows' columns
    rows = onp.where(dense, distance2((sp.diags_array(dense, dtype=bool) @ pattern).T.tocsr()), -1)  # -1: none
    forward, reverse = r < m, r > 0  # a sweep with nothing to find is left out
    _warn_if_dense(name, _count(cols) * forward + _count(rows), "bidirectional", m, n, pattern.nnz)
    i, j = _entries(pattern)
    return _Sweep(name, pattern, forward=(cols, (cols[j], i)) if forward else None,
                  reverse=(rows, (onp.maximum(rows[i], 0), j)) if reverse else None,
                  from_reverse=dense[i] if forward and reverse else None)


def hessian_plan(name, pattern):
    """The sweep of a Hessian with this (symmetrised) pattern, by a star coloring."""
    colors = star(symmetric(pattern, name))
    _warn_if_dense(name, _count(colors), "star", *pattern.shape, pattern.nnz)
    r, c = _entries(pattern)
    # From B = H S: H[i, j] is B[i, color[j]] when no other entry of row i has j's color, else
    # B[j, color[i]] (its mirror; a star coloring guarantees one of the two)
    _, where, count = onp.unique(r * _count(colors) + colors[c], return_inverse=True, return_counts=True)
    direct = count[where] == 1
    return _Sweep(name, pattern, forward=(colors, (onp.where(direct, colors[c], colors[r]), onp.where(direct, r, c))))


class _Sweep:
    """Compressed sweeps and their decompression, prepared once per signature (`name`: the
    transform's, for messages): for a forward and/or a reverse sweep, its colors and where each
    stored entry of the pattern sits in its compressed product (direction, element), kept as
    its position in the raveled product (one gather); with both, from_reverse says which one an
    entry takes. Seed matrices are made once per dtype."""

    def __init__(self, name, pattern, forward=None, reverse=None, from_reverse=None):
        xp = backends.xp()  # the index arrays go to the device once, on CuPy
        self.name, self.pattern = name, pattern
        m, n = pattern.shape
        self.parts = [(product, part[0], xp.asarray(part[1][0] * width + part[1][1]))
                      for product, part, width in ((forward_product, forward, m), (reverse_product, reverse, n))
                      if part is not None]
        self.from_reverse = None if from_reverse is None else xp.asarray(from_reverse)
        index = onp.promote_types(pattern.indices.dtype, pattern.indptr.dtype)  # one dtype, as CuPy's CSR wants
        self.structure = xp.asarray(pattern.indices, dtype=index), xp.asarray(pattern.indptr, dtype=index)
        self.seeds = {}

    def __call__(self, call):
        traced = any(staging(x) is not None for x in call.leaves)
        return self.assemble([product(call, functools.partial(self.seed, colors, traced=traced), self.pattern.shape[0])
                              for product, colors, _ in self.parts])

    def assemble(self, products):
        """The result from each part's compressed product (directions, elements), however computed
        (gpuad.distributed computes them by blocks of colors on a cluster)."""
        values = [gnp.take(gnp.reshape(p, (-1,)), at) for p, (_, _, at) in zip(products, self.parts)]
        return self.result(values[0] if len(values) == 1 else gnp.where(self.from_reverse, values[1], values[0]))

    def seed(self, colors, dt, traced=False):
        """The compressed seed matrix of these colors (one of the parts'), made once per dtype;
        traced by gpuad.jit for CuPy, an equation of the program instead: the columns of
        eye(K, K + 1) at the colors (K for the uncoloured), which a fused region makes from the
        colors where it reads them rather than reading a K x n constant (on a CPU the constant,
        read contiguously, is faster than a gather of the colors per element)."""
        traced = traced and backends.backend() == "cupy"
        key = id(colors), dt, traced
        if key not in self.seeds:
            self.seeds[key] = _columns(colors) if traced else seed_rows(colors, dt)
        if traced:
            k = _count(colors)
            return gnp.eye(k, k + 1, dtype=dt)[:, self.seeds[key]]
        return self.seeds[key]

    def result(self, data):
        """The CSR matrix with these values (its stored entries in order), or a TracedCSR under jit
        (also where the values are constants of the program: the Jacobian of a linear function)."""
        if isinstance(data, Tracer) and staging(data) is not data._trace:  # a value of a transform, not of jit
            raise TypeError(
                f"{self.name}: a sparse result is a CSR matrix, which gpuad.jit can return but no other "
                "transform can take as a value (vmap would make a batch of matrices, jacfwd/jacrev/grad a sparse "
                "tensor of order 3). For per-sample Jacobians take gpuad.sparse.jacobian of the batched function "
                "(its pattern is block-diagonal, its colors those of one sample); for second derivatives "
                "gpuad.sparse.hessian")
        if staging() is not None:
            return TracedCSR(data, self)
        return _csr(data, *self.structure, self.pattern.shape)


class TracedCSR:
    """A sparse result while gpuad.jit traces: `data`, the traced values of the stored entries of
    `sweep.pattern`, in CSR order. A pytree node whose structure is the sweep, so a compiled
    function that returns it returns the CSR matrix; it can do nothing else while tracing."""

    def __init__(self, data, sweep):
        self.data, self.sweep = data, sweep

    def __getattr__(self, name):
        if name.startswith("__"):  # protocol probes (copy, NumPy) get the usual answer
            raise AttributeError(name)
        raise TypeError(f"{self.sweep.name} inside gpuad.jit: the sparse result can only be returned from the "
                        f"compiled function (its .{name} is not available while tracing); use it after the call")


register_pytree_node(TracedCSR, lambda t: ((t.data,), t.sweep), lambda sweep, kids: sweep.result(kids[0]))


def _count(colors):
    """Directions a coloring takes (a color of -1 takes none)."""
    return int(colors.max()) + 1 if colors.size else 0


def _warn_if_dense(name, k, kind, m, n, nnz):
    dense = min(m, n)
    if k > max(16, NEARLY_DENSE * dense):
        hint = "" if kind in ("bidirectional", "star") else ' (arrow-shaped? mode="bidirectional" may need far fewer)'
        warnings.warn(f"{name}: the {kind} coloring of this {m}x{n} pattern ({nnz} non-zeros) needs {k} "
                      f"directions, against {dense} for a dense sweep: the sweep costs about {k} function "
                      f"evaluations; the pattern has dense rows and columns{hint}", RuntimeWarning, stacklevel=5)


# ---------------------------------------------------------------- sweeps
def seed_rows(colors, dt, rows=None):
    """The compressed seed matrix (K, n): row k sums the basis vectors of color k (a color of -1:
    in no row); `rows` rows where given (the rows past K zero)."""
    xp = backends.xp()
    s = xp.zeros((_count(colors) if rows is None else rows, colors.size), dtype=dt)
    seeded = onp.flatnonzero(colors >= 0)
    s[xp.asarray(colors[seeded]), xp.asarray(seeded)] = 1
    return s


def _columns(colors):
    """Each element's color, K (one past the last) where it has none."""
    return backends.xp().asarray(onp.where(colors >= 0, colors, _count(colors)))


def _split(matrix, like):
    """A bundle matrix (K, total) as one bundle (K, *S) per leaf of `like`."""
    out, off = [], 0
    for x in like:
        size = math.prod(shape(x))
        out.append(matrix[:, off:off + size].reshape((matrix.shape[0],) + shape(x)))
        off += size
    return out


def _joined(bundles, k):
    """Bundles (K, *S) side by side as one matrix (K, total); arrays or values traced by jit."""
    flat = [gnp.reshape(b, (k, -1)) for b in bundles]
    return flat[0] if len(flat) == 1 else gnp.concatenate(flat, axis=1)


def forward_product(call, seeds, m):
    """J S (as (K, m): direction k is J @ seed k), by one forward run with K directions; seeds(dtype)
    gives S^T (K, n)."""
    s = seeds(dtype(call.leaves[0]))
    _, tangents, _, _ = call.forward(_split(s, call.leaves))
    product = _joined(tangents, s.shape[0])
    _check_rows(call.name, m, product.shape[1])
    return product


def reverse_product(call, seeds, m):
    """S^T J (as (M, n): direction k is seed k @ J), by one recorded run and one backward sweep;
    seeds(dtype) gives S^T (M, m)."""
    rec = call.record()
    _check_rows(call.name, m, rec.m)
    s = seeds(dtype(rec.values[0]) if rec.values else dtype(call.leaves[0]))
    by_output = {}
    for oid, part in zip(rec.ids, _split(s, rec.values)):
        if oid is not None:
            by_output[oid] = part if oid not in by_output else by_output[oid] + part
    return _joined(rec.pull(by_output, s.shape[0]), s.shape[0])


def _entries(pattern):
    """Row and column of each stored entry, in CSR order."""
    return onp.repeat(onp.arange(pattern.shape[0]), onp.diff(pattern.indptr)), pattern.indices


def _check_rows(name, rows, m):
    if rows != m:
        raise ValueError(f"{name}: the sparsity pattern has {rows} rows but the function has {m} output elements")


def _csr(data, indices, indptr, shape):
    """A CSR matrix of the backend (copies of the structure: each result owns its arrays)."""
    if backends.backend() == "cupy":
        import cupyx.scipy.sparse
        csr = cupyx.scipy.sparse.csr_matrix
        # CuPy 14's constructor reads indptr's ends back to check them (a host synchronisation every
        # call); _from_parts takes the parts as they are: ours are consistent by construction
        made = getattr(csr, "_from_parts", None)
        if made is not None:
            return made(data, indices.copy(), indptr.copy(), shape)
        return csr((data, indices.copy(), indptr.copy()), shape=shape)
    return sp.csr_array((data, indices.copy(), indptr.copy()), shape=shape)
