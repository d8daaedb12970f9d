"""Indexing primitives: getitem and its adjoint scatter, functional updates (x.at[idx]),
concatenate, and the gathers along an axis (take_along, put_along, and argsort and
argpartition, which find the positions a sort or a partition gathers).

Indices reach these primitives normalised by gpuad.numpy (slices, None, ints, integer arrays).
"""
import numpy as onp

from ..backends import xp
from ..compiler import index as ix
from ..core import Primitive, ShapeDtypeStruct, dtype, linear, result_dtype, same, shape
from .elementwise import ON_PRIMITIVES
from .shape import backwards, broadcast_index, broadcast_to, transpose, with_unit_axes_at


def _is_adv(i):
    return not isinstance(i, (slice, type(None)))


def _split_adv(idx):
    """True when advanced indices are separated, so NumPy moves their dims to the front."""
    pos = [k for k, i in enumerate(idx) if _is_adv(i)]
    return bool(pos) and pos[-1] - pos[0] + 1 != len(pos)


def _adv_ndim(idx):
    return len(onp.broadcast_shapes(*(shape(i) for i in idx if _is_adv(i))))


def _indexed_shape(xs, idx):
    """The shape of x[idx] for x of shape xs, computed without touching data."""
    probe = tuple(onp.zeros(shape(i), dtype=onp.intp) if _is_adv(i) else i for i in idx)
    return onp.broadcast_to(onp.empty((), bool), xs)[probe].shape


def _getitem_lead(t, idx):
    out = getitem(t, idx=(slice(None),) + idx)
    if _split_adv(idx):  # the lead axis landed after the advanced dims: bring it back first
        n = _adv_ndim(idx)
        out = transpose(out, perm=(n,) + tuple(range(n)) + tuple(range(n + 1, len(out.shape))))
    return out


def _scatter_lead(ct, xs, idx):
    """Adjoint of _getitem_lead: add a bundle of slices into zeros of (M, *xs)."""
    m = ct.shape[:1]  # before the lead axis moves
    if _split_adv(idx):
        n = _adv_ndim(idx)
        ct = transpose(ct, perm=tuple(range(1, n + 1)) + (0,) + tuple(range(n + 1, len(ct.shape))))
    return scatter(ct, shape=m + xs, idx=(slice(None),) + idx)


def add_at(out, idx, v):
    """out with v added at idx, in place; returns out."""
    if any(not isinstance(i, (slice, int, type(None))) for i in idx):
        xp().add.at(out, idx, v)  # repeated integer indices must add up
    else:
        out[idx] += v  # slices and ints never repeat: plain in-place add is far faster
    return out


# getitem and scatter (x[idx] added into zeros of a shape) are each other's adjoint.
getitem = linear("getitem", lambda x, idx: x[idx], _getitem_lead, _scatter_lead,
                 lambda x, idx: ShapeDtypeStruct(_indexed_shape(shape(x), idx), dtype(x)))
scatter = linear(
    "scatter", lambda v, shape, idx: add_at(xp().zeros(shape, dtype=v.dtype), idx, v),
    lambda t, shape, idx: _scatter_lead(t, shape, idx), lambda ct, vs, shape, idx: _getitem_lead(ct, idx),
    lambda v, shape, idx: ShapeDtypeStruct(shape, dtype(v)))


# ---------------------------------------------------------------- x.at[idx].add(v), .set(v)
def _update(name, impl, base_ct):
    """A functional update: linear in (x, v) together."""
    def jvp(primals, tangents, idx):
        base, v = primals
        tb, tv = tangents
        k = (tb if tb is not None else tv).shape[0]
        if tb is None:
            tb = xp().zeros((k,) + shape(base), dtype=tv.dtype)
        if tv is None:
            tv = xp().zeros((k,) + shape(v), dtype=tb.dtype)
        return prim(base, v, idx=idx), _update_lead(tb, tv, idx)

    def _update_lead(b, v, idx):
        target = _indexed_shape(shape(b), (slice(None),) + idx)
        split = _split_adv(idx)
        n = _adv_ndim(idx) if split else 0
        lead_first = target[n:n + 1] + target[:n] + target[n + 1:]
        v = broadcast_to(ON_PRIMITIVES.to_rank(v, len(target) - 1), shape=lead_first)
        if split:  # NumPy wants the advanced dims first, then the lead axis
            v = transpose(v, perm=tuple(range(1, n + 1)) + (0,) + tuple(range(n + 1, len(target))))
        return prim(b, v, idx=(slice(None),) + idx)

    def vjp(ct, args, out, needed, idx):
        return [base_ct(ct, idx) if needed[0] else None,
                _getitem_lead(ct, idx) if needed[1] else None]

    def batch(args, batched, idx):
        b, v = args
        if not batched[0]:
            b = broadcast_to(b, shape=v.shape[:1] + shape(b))
        if not batched[1]:
            v = broadcast_to(v, shape=b.shape[:1] + shape(v))
        return _update_lead(b, v, idx), True

    prim = Primitive(name, impl, jvp, vjp, batch, abstract=lambda base, v, idx: same(base))
    prim.complex_ready = True  # linear in base and v
    return prim


def _set_impl(base, v, idx):
    out = base.copy()
    out[idx] = v
    return out


index_add = _update("index_add", lambda base, v, idx: add_at(base.copy(), idx, v), lambda ct, idx: ct)
index_set = _update(
    "index_set", _set_impl,
    lambda ct, idx: index_set(ct, xp().zeros((), dtype=ct.dtype), idx=(slice(None),) + idx))


# ---------------------------------------------------------------- concatenate
def _concat_vjp(ct, args, out, needed, axis):
    cuts, start = [], 0
    for a, need in zip(args, needed):
        stop = start + shape(a)[axis]
        cuts.append(getitem(ct, idx=(slice(None),) * (axis + 1) + (slice(start, stop),)) if need else None)
        start = stop
    return cuts


def _concat_jvp(primals, tangents, axis):
    like = next(t for t in tangents if t is not None)
    ts = [t if t is not None else xp().zeros(like.shape[:1] + shape(p), dtype=like.dtype)
          for p, t in zip(primals, tangents)]
    return concatenate(*primals, axis=axis), concatenate(*ts, axis=axis + 1)


def _concat_batch(args, batched, axis):
    b = next(a for a, f in zip(args, batched) if f).shape[0]
    xs = [a if f else broadcast_to(a, shape=(b,) + shape(a)) for a, f in zip(args, batched)]
    return concatenate(*xs, axis=axis + 1), True


def _concat_abstract(*xs, axis):
    s = list(shape(xs[0]))
    s[axis] = sum(shape(x)[axis] for x in xs)
    return ShapeDtypeStruct(s, result_dtype(*xs))


concatenate = Primitive(
    "concatenate", lambda *xs, axis: xp().concatenate(xs, axis=axis),
    _concat_jvp, _concat_vjp, _concat_batch, abstract=_concat_abstract)
concatenate.complex_ready = True


# ---------------------------------------------------------------- gathers along an axis
# take_along(x, idx) reads x at integer positions idx along one axis (numpy.take_along_axis);
# put_along(v, idx) adds v into zeros at those positions. Each is the other's adjoint. The
# indices are an argument, not a parameter, so under vmap they may be batched themselves.
def _put_along_impl(v, idx, shape, axis):
    np_ = xp()
    full = onp.broadcast_shapes(idx.shape, v.shape)
    # an axis of size 1 in `shape` was broadcast by the gather: everything along it adds into 0
    grids = np_.ix_(*[np_.arange(n) if m == n else np_.zeros(n, dtype=int) for n, m in zip(full, shape)])
    at = tuple(np_.broadcast_to(idx, full) if d == axis else g for d, g in enumerate(grids))
    out = np_.zeros(shape, dtype=v.dtype)
    np_.add.at(out, at, np_.broadcast_to(v, full))  # positions may repeat: they add up
    return out


def _lead(a):
    return with_unit_axes_at(a, (0,))


def _lead_all(args, batched):
    """Every argument with a leading axis: size 1 (broadcast by the gather) where unbatched."""
    return [a if f else _lead(a) for a, f in zip(args, batched)]


def _take_jvp(primals, tangents, axis):
    x, idx = primals
    return take_along(x, idx, axis=axis), take_along(tangents[0], _lead(idx), axis=axis + 1)


def _take_vjp(ct, args, out, needed, axis):
    x, idx = args
    return [put_along(ct, _lead(idx), shape=shape(ct)[:1] + shape(x), axis=axis + 1), None]


def _take_abstract(x, idx, axis):
    """numpy.take_along_axis: idx's length along `axis`, the other axes broadcast."""
    xs = list(shape(x))
    xs[axis] = 1
    out = list(onp.broadcast_shapes(tuple(xs), shape(idx)))
    out[axis] = shape(idx)[axis]
    return ShapeDtypeStruct(out, dtype(x))


take_along = Primitive(
    "take_along", lambda x, idx, axis: xp().take_along_axis(x, idx, axis=axis), _take_jvp, _take_vjp,
    lambda args, batched, axis: (take_along(*_lead_all(args, batched), axis=axis + 1), True),
    abstract=_take_abstract)


def _put_jvp(primals, tangents, shape, axis):
    v, idx = primals
    t = tangents[0]
    return (put_along(v, idx, shape=shape, axis=axis),
            put_along(t, _lead(idx), shape=t.shape[:1] + shape, axis=axis + 1))


def _put_batch(args, batched, shape, axis):
    size = next(a.shape[0] for a, f in zip(args, batched) if f)
    return put_along(*_lead_all(args, batched), shape=(size,) + shape, axis=axis + 1), True


put_along = Primitive(
    "put_along", _put_along_impl, _put_jvp,
    lambda ct, args, out, needed, shape, axis: [take_along(ct, _lead(args[1]), axis=axis + 1), None],
    _put_batch, abstract=lambda v, idx, shape, axis: ShapeDtypeStruct(shape, dtype(v)))
take_along.complex_ready = put_along.complex_ready = True  # linear in their values


argsort = Primitive(
    "argsort", lambda x, axis: xp().argsort(x, axis=axis),
    batch=lambda args, batched, axis: (argsort(args[0], axis=axis + 1), True), nondiff=True,
    abstract=lambda x, axis: ShapeDtypeStruct(shape(x), onp.intp))
argpartition = Primitive(  # kth: a tuple of non-negative positions along axis
    "argpartition", lambda x, kth, axis: xp().argpartition(x, kth, axis=axis),
    batch=lambda args, batched, kth, axis: (argpartition(args[0], kth=kth, axis=axis + 1), True), nondiff=True,
    abstract=lambda x, kth, axis: ShapeDtypeStruct(shape(x), onp.intp))


# ---------------------------------------------------------------- sparsity patterns
from . import patterns  # noqa: E402  (here with the rules it serves)

# Indices are constants under tracing (gpuad.numpy normalises them), except the positions of
# take_along and put_along, which may be computed (a sort's argsort): then any position on the
# line along the axis may be read or written.
for _prim in (getitem, concatenate, index_set):
    _prim.pattern = patterns.moves(_prim)
scatter.pattern = patterns.spreads(lambda out_ids, args, shape, idx: patterns.run(getitem, [out_ids], {"idx": idx}))
_take_known = patterns.moves(take_along, data=(0,))
_put_known = patterns.spreads(
    lambda out_ids, args, shape, axis: patterns.run(take_along, [out_ids, args[1]], {"axis": axis}))


def _index_add_pattern(args, out, idx):
    base, v = args
    return [patterns.elementwise([base], out)[0] if patterns.unknown(base) else None,
            scatter.pattern([v], out, shape=out.shape, idx=idx)[0] if patterns.unknown(v) else None]


def _take_pattern(args, out, axis):
    x, idx = args
    if patterns.unknown(idx):
        return [patterns.along(x.shape, out.shape, axis), None]
    return _take_known(args, out, axis=axis)


def _put_pattern(args, out, shape, axis):
    v, idx = args
    if patterns.unknown(idx):
        return [patterns.along(v.shape, out.shape, axis), None]
    return _put_known(args, out, shape=shape, axis=axis)


index_add.pattern = _index_add_pattern
take_along.pattern = _take_pattern
put_along.pattern = _put_pattern
argsort.pattern = argpartition.pattern = patterns.none


# ---------------------------------------------------------------- compiler rules (gpuad/compiler/)
def basic(i):
    """An index item the kernels map statically: an int, a slice, or None (a new unit axis)."""
    return i is None or isinstance(i, slice) or (isinstance(i, (int, onp.integer)) and not isinstance(i, bool))


def _contiguous(args, idx):
    """Whether a getitem at ints, slices and new axes of a C-contiguous array is one: ints first,
    then at most one slice of step 1 short of its axis, then whole axes (a run of the buffer)."""
    dims, cut = iter(shape(args[0])), False
    for item in idx:
        if item is None:
            continue
        n = next(dims)
        if not isinstance(item, slice):
            if cut:
                return False
            continue
        start, stop, step = item.indices(n)
        length = len(range(start, stop, step))
        if (length > 1 and step != 1) or (cut and length < n):
            return False
        cut = cut or length < n
    return True


def _arrays(items, axes):
    """(index array, length of the axis it indexes) for the items of an index that are arrays."""
    return [(i, n) for i, n in zip([i for i in items if i is not None], axes) if not basic(i)]


def _result_axes(items):
    """How x[items] lays out its result (NumPy's rules): for each item that takes an axis of x
    (not None), the result axis a slice maps to, or where the index arrays' broadcast axes (the
    block) stand for an int or an array among arrays (None for a lone int: no axis); the block's
    rank; and the result axis after those the items make. The block stands where the first of
    the ints and arrays is when they are adjacent, else first."""
    arrays = [i for i in items if not basic(i)]
    block = len(onp.broadcast_shapes(*(a.shape for a in arrays))) if arrays else 0
    advanced = [k for k, i in enumerate(items) if i is not None and not isinstance(i, slice)]
    adjacent = not arrays or advanced[-1] - advanced[0] + 1 == len(advanced)
    at, o, axes = (None, 0, []) if adjacent else (0, block, [])
    for item in items:
        if item is None:  # a new unit axis of the result
            o += 1
        elif isinstance(item, slice):
            axes.append(o)
            o += 1
        elif arrays:
            if at is None:
                at, o = o, o + block
            axes.append(at)
        else:
            axes.append(None)
    return axes, block, o


def _getitem_index(out, shapes, read, idx):
    """x[idx] reads x at start + step * its index along a slice, at an int, and at an index
    array's entry (negative ones wrapped) along the axis the array indexes."""
    axes, block, rest = _result_axes(idx)
    mapped = []
    for item, n, o in zip([i for i in idx if i is not None], shapes[0], axes):
        if isinstance(item, slice):
            start, _, step = item.indices(n)
            mapped.append(start + step * out[o])
        elif basic(item):
            mapped.append(ix.const(int(item) % n))
        else:
            mapped.append(ix.wrapped(read(item, out[o:o + block]), n))
    return [(ix.TRUE, 0, tuple(mapped) + tuple(out[rest:]))]


def _slice_inverse(e, start, step, length):
    """(condition, position in the slice) of index e of an axis, for the slice start::step of
    `length` elements."""
    t = e - start if step > 0 else start - e
    q = t // abs(step)
    return ix.both(ix.ge(t, 0), ix.eq(t % abs(step), 0), ix.lt(q, length)), q


def _scatter_index(out, shapes, read, shape, idx):
    """zeros(shape)[idx] = v puts v's element at the index of x[idx] that reads out (where the
    items hold arrays, no two of their elements landing on one position: read(None, at) says
    which element of their block lands at `at` over the axes they index, -1 none)."""
    axes, block, rest = _result_axes(idx)
    taken = [i for i in idx if i is not None]
    mapped = [ix.ZERO] * (rest + len(shape) - len(taken))  # v's unit axes (None items) read at 0
    mapped[rest:] = out[len(taken):]
    conds, along = [], []
    for item, n, o, e in zip(taken, shape, axes, out):
        if isinstance(item, slice):
            start, stop, step = item.indices(n)
            cond, mapped[o] = _slice_inverse(e, start, step, len(range(start, stop, step)))
            conds.append(cond)
        elif basic(item):
            conds.append(ix.eq(e, int(item) % n))
        else:
            along.append(e)
    if along:
        b = read(None, tuple(along))
        o = next(o for o, i in zip(axes, taken) if not basic(i))
        mapped[o:o + block] = ix.unravel(b, onp.broadcast_shapes(*(i.shape for i in taken if not basic(i))))
        conds.append(ix.ge(b, 0))
    return [(ix.both(*conds), 0, tuple(mapped))]


def _concatenate_index(out, shapes, read, axis):
    """A concatenation reads piece k where the index along `axis` falls in it."""
    cases, start = [], 0
    for k, s in enumerate(shapes):
        if s[axis]:
            cases.append((ix.lt(out[axis], start + s[axis]), k, out[:axis] + (out[axis] - start,) + out[axis + 1:]))
        start += s[axis]
    return cases


def _take_index(out, shapes, read, axis):
    """take_along reads x along `axis` at the position its index array holds there."""
    at = ix.wrapped(read(1, out), shapes[0][axis])
    return [(ix.TRUE, 0, tuple(at if k == axis else i for k, i in enumerate(broadcast_index(shapes[0], out))))]


def _sliced_coords(entries, out_shape, most, idx):
    """A getitem at ints, slices and new axes keeps the entries inside them (anything else: None):
    where the scatter back (its adjoint's index map) puts them."""
    if not all(map(basic, idx)):
        return None
    keep, at = backwards(entries, _scatter_index, [out_shape], shape=entries.shape, idx=idx)
    return tuple(a[keep] for a in at), keep


def _scattered_coords(entries, out_shape, most, shape, idx):
    """A scatter at ints, slices and new axes puts each entry where the getitem back reads it
    (anything else: None)."""
    if not all(map(basic, idx)):
        return None
    return backwards(entries, _getitem_index, [out_shape], idx=idx)[1], slice(None)


for _prim in (getitem, scatter, concatenate):
    _prim.moves = True
getitem.view = lambda idx: all(map(basic, idx))
getitem.contiguous = _contiguous
getitem.recompute = take_along.recompute = "free"
getitem.positions = lambda args, idx: _arrays(idx, shape(args[0]))
getitem.coords, scatter.coords = _sliced_coords, _scattered_coords
getitem.index, scatter.index, concatenate.index, take_along.index = \
    _getitem_index, _scatter_index, _concatenate_index, _take_index
take_along.positions = lambda args, axis: [(args[1], shape(args[0])[axis])]
scatter.positions = lambda args, idx, **params: _arrays(idx, params["shape"])
scatter.scatters = scatter.reads_each_once = concatenate.reads_each_once = True
scatter.launches = index_add.launches = index_set.launches = 2  # zeros or a copy, then the update at the positions
put_along.launches = 3  # zeros, the index grids, the scatter-add
argsort.launches = argpartition.launches = 3  # CUB radix sort passes (CuPy's argpartition sorts)
