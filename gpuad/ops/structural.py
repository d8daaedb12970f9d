"""Shape, indexing, gather and reduction primitives, and `where`, `astype`, the contraction.

Most are linear. For a linear primitive of one array, JVP, vmap and VJP all follow from
two functions: `lead`, the same op on an array with one extra leading axis (a bundle of
directions or a batch), and `adjoint`, its transpose on a cotangent bundle.
"""
import numpy as onp

from .. import backends
from ..core import Primitive, shape
from .elementwise import PRIMS as EW, TRACED

_shape = shape  # for rules whose `shape` parameter hides it


def _xp():
    return backends.current().xp


def linear_unary(name, impl, lead, adjoint):
    prim = Primitive(name, impl)
    prim.jvp = lambda primals, tangents, **kw: (prim(primals[0], **kw), lead(tangents[0], **kw))
    prim.batch = lambda args, batched, **kw: (lead(args[0], **kw), True)
    prim.vjp = lambda ct, args, out, needed, **kw: [adjoint(ct, shape(args[0]), **kw)]
    return prim


# ---------------------------------------------------------------- reshape, transpose, broadcast
reshape = linear_unary(
    "reshape", lambda x, shape: _xp().reshape(x, shape),
    lambda t, shape: reshape(t, shape=t.shape[:1] + shape),
    lambda ct, xs, shape: reshape(ct, shape=ct.shape[:1] + xs))


def _shift(perm):
    return (0,) + tuple(p + 1 for p in perm)


transpose = linear_unary(
    "transpose", lambda x, perm: _xp().transpose(x, perm),
    lambda t, perm: transpose(t, perm=_shift(perm)),
    lambda ct, xs, perm: transpose(ct, perm=_shift(tuple(onp.argsort(perm)))))


def _broadcast_lead(t, shape):
    ts = t.shape
    t = reshape(t, shape=ts[:1] + (1,) * (len(shape) + 1 - len(ts)) + ts[1:])
    return broadcast_to(t, shape=ts[:1] + shape)


broadcast_to = linear_unary(
    "broadcast_to", lambda x, shape: _xp().broadcast_to(x, shape),
    _broadcast_lead, lambda ct, xs, shape: unbroadcast(ct, xs))


def unbroadcast(ct, target):
    """Sum a cotangent bundle (M, *S) down to (M, *target) where S broadcast from target.
    The reverse sweep calls this once per input: rules never undo broadcasting themselves."""
    s = shape(ct)[1:]
    lead = len(s) - len(target)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(target) if d == 1 and s[lead + i] != 1)
    if axes:
        ct = reduce_sum(ct, axes=tuple(a + 1 for a in axes), keepdims=False)
    if shape(ct)[1:] != tuple(target):
        ct = reshape(ct, shape=shape(ct)[:1] + tuple(target))
    return ct


# ---------------------------------------------------------------- sums
def _sum_transpose(ct, xs, axes, keepdims):
    cs = ct.shape
    if not keepdims:
        kept = list(cs)
        for a in sorted(axes):
            kept.insert(a + 1, 1)
        ct = reshape(ct, shape=tuple(kept))
    return broadcast_to(ct, shape=cs[:1] + xs)


reduce_sum = linear_unary(
    "reduce_sum", lambda x, axes, keepdims: _xp().sum(x, axis=axes, keepdims=keepdims),
    lambda t, axes, keepdims: reduce_sum(t, axes=tuple(a + 1 for a in axes), keepdims=keepdims),
    _sum_transpose)


def _flip(x, axis):
    return getitem(x, idx=(slice(None),) * axis + (slice(None, None, -1),))


cumsum = linear_unary(
    "cumsum", lambda x, axis: _xp().cumsum(x, axis=axis),
    lambda t, axis: cumsum(t, axis=axis + 1),
    lambda ct, xs, axis: _flip(cumsum(_flip(ct, axis + 1), axis=axis + 1), axis + 1))


# ---------------------------------------------------------------- indexing
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


# getitem and scatter (x[idx] added into zeros of a shape) are each other's adjoint.
getitem = linear_unary(
    "getitem", lambda x, idx: x[idx], _getitem_lead, _scatter_lead)
scatter = linear_unary(
    "scatter", lambda v, shape, idx: backends.current().scatter(v, shape, idx),
    lambda t, shape, idx: _scatter_lead(t, shape, idx),
    lambda ct, vs, shape, idx: _getitem_lead(ct, idx))


def _index_update(name, impl, base_ct):
    """x.at[idx].add(v) and .set(v): linear in (x, v) together."""
    def jvp(primals, tangents, idx):
        base, v = primals
        tb, tv = tangents
        k = (tb if tb is not None else tv).shape[0]
        if tb is None:
            tb = _xp().zeros((k,) + shape(base), dtype=tv.dtype)
        if tv is None:
            tv = _xp().zeros((k,) + shape(v), dtype=tb.dtype)
        return prim(base, v, idx=idx), _update_lead(tb, tv, idx)

    def _update_lead(b, v, idx):
        target = _indexed_shape(shape(b), (slice(None),) + idx)
        split = _split_adv(idx)
        n = _adv_ndim(idx) if split else 0
        lead_first = target[n:n + 1] + target[:n] + target[n + 1:]
        v = broadcast_to(TRACED.pad(v, len(target) - 1), shape=lead_first)
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

    prim = Primitive(name, impl, jvp, vjp, batch)
    return prim


def _set_impl(base, v, idx):
    out = base.copy()
    out[idx] = v
    return out


index_add = _index_update(
    "index_add", lambda base, v, idx: backends.current().index_add(base, idx, v),
    lambda ct, idx: ct)
index_set = _index_update(
    "index_set", _set_impl,
    lambda ct, idx: index_set(ct, _xp().zeros((), dtype=ct.dtype), idx=(slice(None),) + idx))


# ---------------------------------------------------------------- concatenate
def _concat_vjp(ct, args, out, needed, axis):
    cuts, start = [], 0
    for a, need in zip(args, needed):
        stop = start + shape(a)[axis]
        cuts.append(getitem(ct, idx=(slice(None),) * (axis + 1) + (slice(start, stop),)) if need else None)
        start = stop
    return cuts


def _concat_jvp(primals, tangents, axis):
    k = next(t for t in tangents if t is not None).shape[0]
    dt = next(t for t in tangents if t is not None).dtype
    ts = [t if t is not None else _xp().zeros((k,) + shape(p), dtype=dt)
          for p, t in zip(primals, tangents)]
    return concatenate(*primals, axis=axis), concatenate(*ts, axis=axis + 1)


def _concat_batch(args, batched, axis):
    b = next(a for a, f in zip(args, batched) if f).shape[0]
    xs = [a if f else broadcast_to(a, shape=(b,) + shape(a)) for a, f in zip(args, batched)]
    return concatenate(*xs, axis=axis + 1), True


concatenate = Primitive(
    "concatenate", lambda *xs, axis: _xp().concatenate(xs, axis=axis),
    _concat_jvp, _concat_vjp, _concat_batch)


# ---------------------------------------------------------------- where, astype
def _where_jvp(primals, tangents):
    c, a, b = primals
    _, ta, tb = tangents
    like = ta if ta is not None else tb
    ys = onp.broadcast_shapes(shape(c), shape(a), shape(b))
    ta = TRACED.pad(ta, len(ys)) if ta is not None else _xp().zeros((), dtype=like.dtype)
    tb = TRACED.pad(tb, len(ys)) if tb is not None else _xp().zeros((), dtype=like.dtype)
    t = where(c, ta, tb)
    if t.shape[1:] != ys:
        t = broadcast_to(t, shape=t.shape[:1] + ys)
    return where(c, a, b), t


def _where_vjp(ct, args, out, needed):
    c = args[0]
    zero = _xp().zeros((), dtype=ct.dtype)
    return [None, where(c, ct, zero) if needed[1] else None, where(c, zero, ct) if needed[2] else None]


def _where_batch(args, batched):
    ndim = max(len(shape(a)) - f for a, f in zip(args, batched))
    padded = [TRACED.pad(a, ndim) if f else a for a, f in zip(args, batched)]
    return where(*padded), True


where = Primitive("where", lambda c, a, b: _xp().where(c, a, b), _where_jvp, _where_vjp, _where_batch)


def _astype_jvp(primals, tangents, dtype):
    y = astype(primals[0], dtype=dtype)
    if onp.dtype(dtype).kind not in "fc":
        return y, None
    return y, astype(tangents[0], dtype=dtype)


astype = Primitive(
    "astype", lambda x, dtype: x.astype(dtype), _astype_jvp,
    lambda ct, args, out, needed, dtype: [astype(ct, dtype=args[0].dtype)],
    lambda args, batched, dtype: (astype(args[0], dtype=dtype), True))


# ---------------------------------------------------------------- contraction
def _fresh(spec):
    used = set("".join(spec))
    return next(c for c in "ZYXWVUTSRQPONMLKJIHGFEDCBA" if c not in used)


def _contract_jvp(primals, tangents, spec):
    a, b = primals
    ta, tb = tangents
    sa, sb, so = spec
    k = _fresh(spec)
    t = None
    if ta is not None:
        t = contract(ta, b, spec=(k + sa, sb, k + so))
    if tb is not None:
        tb_term = contract(a, tb, spec=(sa, k + sb, k + so))
        t = tb_term if t is None else EW["add"](t, tb_term)
    return contract(a, b, spec=spec), t


def _contract_vjp(ct, args, out, needed, spec):
    a, b = args
    sa, sb, so = spec
    k = _fresh(spec)
    return [contract(ct, b, spec=(k + so, sb, k + sa)) if needed[0] else None,
            contract(ct, a, spec=(k + so, sa, k + sb)) if needed[1] else None]


def _contract_batch(args, batched, spec):
    sa, sb, so = spec
    k = _fresh(spec)
    return contract(*args, spec=(k + sa if batched[0] else sa, k + sb if batched[1] else sb, k + so)), True


contract = Primitive(
    "contract", lambda a, b, spec: backends.current().contract(a, b, spec),
    _contract_jvp, _contract_vjp, _contract_batch)


# ---------------------------------------------------------------- max reduction
def _max_weights(x, y, axes):
    """Where x attains its max, split evenly between ties (as JAX does); zero elsewhere."""
    hit = astype(EW["equal"](x, _keep(y, shape(x), axes)), dtype=x.dtype)
    return EW["divide"](hit, reduce_sum(hit, axes=axes, keepdims=True))


def _keep(y, xs, axes):
    ys = list(shape(y))
    if len(ys) != len(xs):
        for a in sorted(axes):
            ys.insert(a, 1)
    return reshape(y, shape=tuple(ys))


def _max_jvp(primals, tangents, axes, keepdims):
    x, = primals
    y = reduce_max(x, axes=axes, keepdims=keepdims)
    w = _max_weights(x, y, axes)
    return y, reduce_sum(EW["multiply"](w, tangents[0]), axes=tuple(a + 1 for a in axes), keepdims=keepdims)


def _max_vjp(ct, args, y, needed, axes, keepdims):
    x, = args
    w = _max_weights(x, y, axes)
    return [EW["multiply"](w, _sum_transpose(ct, shape(x), axes, keepdims))]


reduce_max = Primitive(
    "reduce_max", lambda x, axes, keepdims: _xp().max(x, axis=axes, keepdims=keepdims),
    _max_jvp, _max_vjp,
    lambda args, batched, axes, keepdims: (
        reduce_max(args[0], axes=tuple(a + 1 for a in axes), keepdims=keepdims), True))



# ---------------------------------------------------------------- index of the max (no derivative)
argmax = Primitive(
    "argmax", lambda x, axis: _xp().argmax(x, axis=axis),
    batch=lambda args, batched, axis: (argmax(args[0], axis=axis + 1), True), nondiff=True)


# ---------------------------------------------------------------- gathers along an axis
# take_along(x, idx) reads x at integer positions idx along one axis (numpy.take_along_axis);
# put_along(v, idx) adds v into zeros at those positions. Each is the other's adjoint. The
# indices are an argument, not a parameter, so under vmap they may be batched themselves.
def _put_along_impl(v, idx, shape, axis):
    xp = _xp()
    full = onp.broadcast_shapes(idx.shape, v.shape)
    # an axis of size 1 in `shape` was broadcast by the gather: everything along it adds into 0
    grids = xp.ix_(*[xp.arange(n) if m == n else xp.zeros(n, dtype=int) for n, m in zip(full, shape)])
    where = tuple(xp.broadcast_to(idx, full) if d == axis else g for d, g in enumerate(grids))
    out = xp.zeros(shape, dtype=v.dtype)
    xp.add.at(out, where, xp.broadcast_to(v, full))  # positions may repeat: they add up
    return out


def _lead(a):
    return reshape(a, shape=(1,) + _shape(a))


def _lead_all(args, batched):
    """Every argument with a leading axis: size 1 (broadcast by the gather) where unbatched."""
    return [a if f else _lead(a) for a, f in zip(args, batched)]


def _take_jvp(primals, tangents, axis):
    x, idx = primals
    return take_along(x, idx, axis=axis), take_along(tangents[0], _lead(idx), axis=axis + 1)


def _take_vjp(ct, args, out, needed, axis):
    x, idx = args
    return [put_along(ct, _lead(idx), shape=_shape(ct)[:1] + _shape(x), axis=axis + 1), None]


take_along = Primitive(
    "take_along", lambda x, idx, axis: _xp().take_along_axis(x, idx, axis=axis), _take_jvp, _take_vjp,
    lambda args, batched, axis: (take_along(*_lead_all(args, batched), axis=axis + 1), True))


def _put_jvp(primals, tangents, shape, axis):
    v, idx = primals
    t = tangents[0]
    return (put_along(v, idx, shape=shape, axis=axis),
            put_along(t, _lead(idx), shape=_shape(t)[:1] + shape, axis=axis + 1))


def _put_batch(args, batched, shape, axis):
    size = next(_shape(a)[0] for a, f in zip(args, batched) if f)
    return put_along(*_lead_all(args, batched), shape=(size,) + shape, axis=axis + 1), True


put_along = Primitive(
    "put_along", _put_along_impl, _put_jvp,
    lambda ct, args, out, needed, shape, axis: [take_along(ct, _lead(args[1]), axis=axis + 1), None],
    _put_batch)


argsort = Primitive(
    "argsort", lambda x, axis: _xp().argsort(x, axis=axis),
    batch=lambda args, batched, axis: (argsort(args[0], axis=axis + 1), True), nondiff=True)
