"""Building, splitting and rearranging arrays, composed from gpuad.numpy's shape functions.

Every function here moves values with reshape, transpose, concatenate, slicing or a gather at
constant positions, so its derivative moves the tangents the same way. The integer-valued
helpers (`tril_indices`, `searchsorted`, ...) return backend integer arrays and carry no
derivative.
"""
from functools import reduce

import numpy as onp

from .. import backends
from ..axes import normalize_axes
from ..core import dtype, shape
from .creation import asarray, zeros_like
from .elementwise import less, less_equal, logical_not, logical_or, multiply, not_equal, subtract, where
from .indexing import take_index
from .reductions import argmax
from .reductions import sum as _sum
from .shapes import broadcast_to, concatenate, flip, moveaxis, ravel, reshape, split, stack, take, transpose, vstack
from .sorting import take_along_axis


def _ndim(x):
    return len(shape(x))


def _slab(x, axis, start, stop):
    """x[..., start:stop, ...] on one axis."""
    return take_index(x, (slice(None),) * axis + (slice(start, stop),))


def _filled(x, axis, width, value):
    """A block shaped like x but `width` long on axis, every element `value` (in x's dtype)."""
    s = list(shape(x))
    s[axis] = width
    return broadcast_to(asarray(value, dtype=dtype(x)), tuple(s))


def _as_pairs(width, ndim, what):
    """numpy's forms of a per-axis (before, after) pair: n, (n,), (before, after) or one pair per axis."""
    pairs = onp.asarray(width)
    try:
        pairs = onp.broadcast_to(pairs, (ndim, 2))
    except ValueError:
        raise ValueError(f"{what} {width!r} does not fit an array of {ndim} dimensions: give n, "
                         "(before, after) or one (before, after) pair per axis") from None
    return [tuple(p) for p in pairs.tolist()]


# ---------------------------------------------------------------- pad
def _pad_positions(mode, n, before, after):
    """For each padded position along an axis, the position of the input it copies."""
    i = onp.arange(-before, n + after)
    if mode == "edge":
        return onp.clip(i, 0, n - 1)
    if mode == "wrap":
        return i % n
    if mode == "symmetric":  # mirror including the edge value: 1 0 | 0 1 2 | 2 1
        j = i % (2 * n)
        return onp.where(j < n, j, 2 * n - 1 - j)
    if n == 1:  # reflect: mirror excluding the edge value; one value mirrors onto itself
        return onp.zeros_like(i)
    j = i % (2 * n - 2)
    return onp.where(j < n, j, 2 * n - 2 - j)


_PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")
_NUMPY_ONLY_PAD_MODES = ("linear_ramp", "maximum", "mean", "median", "minimum", "empty")


def pad(array, pad_width, mode="constant", constant_values=0):
    """numpy.pad with the modes constant, edge, reflect, symmetric and wrap.

    >>> import gpuad.numpy as gnp
    >>> gnp.pad(gnp.array([1.0, 2.0, 3.0]), (2, 1), mode="reflect")
    array([3., 2., 1., 2., 3., 2.])
    >>> gnp.pad(gnp.ones((1, 2)), 1, constant_values=5.0)
    array([[5., 5., 5., 5.],
           [5., 1., 1., 5.],
           [5., 5., 5., 5.]])
    """
    if mode in _NUMPY_ONLY_PAD_MODES:
        raise NotImplementedError(f"pad: mode {mode!r} is not supported; supported modes: {_PAD_MODES}")
    if mode not in _PAD_MODES:
        raise ValueError(f"pad: mode {mode!r} is not one of numpy's; supported modes: {_PAD_MODES}")
    array = asarray(array)
    n = _ndim(array)
    widths = _as_pairs(pad_width, n, "pad_width")
    if any(w < 0 or int(w) != w for pair in widths for w in pair):
        raise ValueError(f"pad_width must be non-negative integers, got {pad_width!r}")
    values = _as_pairs(constant_values, n, "constant_values") if mode == "constant" else None
    for axis, (before, after) in enumerate(widths):
        before, after = int(before), int(after)
        if before == after == 0:
            continue
        size = shape(array)[axis]
        if mode == "constant":
            array = _pad_constant(array, axis, before, after, values[axis])
        elif size == 0:
            raise ValueError(f"pad: mode {mode!r} cannot pad axis {axis}, which is empty")
        else:
            array = take(array, _pad_positions(mode, size, before, after), axis=axis)
    return array


def _pad_constant(x, axis, before, after, values):
    parts = [_filled(x, axis, before, values[0])] if before else []
    parts += [x] + ([_filled(x, axis, after, values[1])] if after else [])
    return concatenate(parts, axis=axis)


# ---------------------------------------------------------------- joining
def append(arr, values, axis=None):
    """numpy.append: arr and values joined (both flattened when axis is None)."""
    if axis is None:
        return concatenate([ravel(arr), ravel(values)])
    return concatenate([arr, values], axis=axis)


def _atleast(x, ndim):
    """x with numpy's atleast_2d/3d shape: a vector becomes a row (1, n), or (1, n, 1) in 3-d."""
    s = shape(x)
    if len(s) >= ndim:
        return x
    if ndim == 2:
        return reshape(x, (1,) * (2 - len(s)) + s)
    return reshape(x, {0: (1, 1, 1), 1: (1,) + s + (1,), 2: s + (1,)}[len(s)])


def atleast_2d(*arys):
    """numpy.atleast_2d: one array, or a tuple of them for several arguments."""
    out = tuple(_atleast(a, 2) for a in arys)
    return out[0] if len(out) == 1 else out


def atleast_3d(*arys):
    """numpy.atleast_3d: a vector of n becomes (1, n, 1), a matrix (m, n) becomes (m, n, 1)."""
    out = tuple(_atleast(a, 3) for a in arys)
    return out[0] if len(out) == 1 else out


def column_stack(tup):
    """numpy.column_stack: vectors become columns, then everything joins along axis 1.

    >>> import gpuad.numpy as gnp
    >>> gnp.column_stack([gnp.array([1.0, 2.0]), gnp.array([3.0, 4.0])])
    array([[1., 3.],
           [2., 4.]])
    """
    return concatenate([reshape(a, (-1, 1)) if _ndim(a) < 2 else a for a in tup], axis=1)


row_stack = vstack


def dstack(tup):
    """numpy.dstack: join along the third axis, after atleast_3d."""
    return concatenate([_atleast(a, 3) for a in tup], axis=2)


# ---------------------------------------------------------------- splitting
def array_split(ary, indices_or_sections, axis=0):
    """numpy.array_split: like split, but N sections need not divide the axis evenly
    (the first n % N sections get one element more).

    >>> import gpuad.numpy as gnp
    >>> [p.shape for p in gnp.array_split(gnp.ones(5), 3)]
    [(2,), (2,), (1,)]
    """
    if not isinstance(indices_or_sections, (int, onp.integer)):
        return split(ary, indices_or_sections, axis)
    if indices_or_sections <= 0:
        raise ValueError("array_split: the number of sections must be larger than 0")
    each, extra = divmod(shape(ary)[axis], int(indices_or_sections))
    sizes = [each + 1] * extra + [each] * (indices_or_sections - extra)
    return split(ary, list(onp.cumsum(sizes)[:-1]), axis)


def _need_ndim(name, x, ndim):
    if _ndim(x) < ndim:
        raise ValueError(f"{name} needs an array of at least {ndim} dimensions, got {_ndim(x)}")


def hsplit(ary, indices_or_sections):
    """numpy.hsplit: split along axis 1 (axis 0 for a vector)."""
    _need_ndim("hsplit", ary, 1)
    return split(ary, indices_or_sections, axis=1 if _ndim(ary) > 1 else 0)


def vsplit(ary, indices_or_sections):
    """numpy.vsplit: split along axis 0 of an array of 2 or more dimensions."""
    _need_ndim("vsplit", ary, 2)
    return split(ary, indices_or_sections, axis=0)


def dsplit(ary, indices_or_sections):
    """numpy.dsplit: split along axis 2 of an array of 3 or more dimensions."""
    _need_ndim("dsplit", ary, 3)
    return split(ary, indices_or_sections, axis=2)


# ---------------------------------------------------------------- differences
def _edge(value, x, axis):
    """prepend/append values for diff: a scalar fills one slab of x along axis."""
    return _filled(x, axis, 1, value) if _ndim(value) == 0 else value


def diff(a, n=1, axis=-1, prepend=None, append=None):
    """numpy.diff: the n-th forward difference along axis.

    >>> import gpuad.numpy as gnp
    >>> gnp.diff(gnp.array([1.0, 4.0, 9.0, 16.0]), n=2)
    array([2., 2.])
    """
    if n < 0:
        raise ValueError(f"diff: order n must be non-negative, got {n}")
    a = asarray(a)
    axis = normalize_axes(axis, _ndim(a))[0]
    if prepend is not None or append is not None:
        a = concatenate(([_edge(prepend, a, axis)] if prepend is not None else []) + [a]
                        + ([_edge(append, a, axis)] if append is not None else []), axis=axis)
    for _ in range(n):
        a = subtract(_slab(a, axis, 1, None), _slab(a, axis, None, -1))
    return a


def gradient(f, *varargs, axis=None, edge_order=1):
    """numpy.gradient with uniform spacing: central differences inside, one-sided at the edges.

    varargs is empty (spacing 1), one scalar spacing, or one scalar per axis.

    >>> import gpuad.numpy as gnp
    >>> gnp.gradient(gnp.array([1.0, 2.0, 4.0, 7.0]))
    array([1. , 1.5, 2.5, 3. ])
    """
    if edge_order != 1:
        raise NotImplementedError("gradient: only edge_order=1 is supported")
    n = _ndim(f)
    axes = range(n) if axis is None else [axis] if isinstance(axis, int) else axis
    axes = [normalize_axes(a, n)[0] for a in axes]  # in the order given, as numpy's
    spacing = list(varargs) or [1.0]
    if len(spacing) == 1:
        spacing *= len(axes)
    if len(spacing) != len(axes) or any(_ndim(h) != 0 for h in spacing):
        raise NotImplementedError("gradient: give no spacing, one scalar spacing, or one scalar per axis; "
                                  "coordinate arrays are not supported")
    out = tuple(_gradient_axis(f, ax, h) for ax, h in zip(axes, spacing))
    return out[0] if len(out) == 1 else out


def _gradient_axis(f, axis, h):
    if shape(f)[axis] < 2:
        raise ValueError("gradient: each differentiated axis needs at least 2 (edge_order + 1) samples")
    first = (_slab(f, axis, 1, 2) - _slab(f, axis, 0, 1)) / h
    inner = (_slab(f, axis, 2, None) - _slab(f, axis, None, -2)) / (2.0 * h)
    last = (_slab(f, axis, -1, None) - _slab(f, axis, -2, -1)) / h
    return concatenate([first, inner, last], axis=axis)


# ---------------------------------------------------------------- products and rotations
def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """numpy.cross of 3-vectors along the given axes (vectors broadcast like numpy's).

    >>> import gpuad.numpy as gnp
    >>> gnp.cross(gnp.array([1.0, 0.0, 0.0]), gnp.array([0.0, 1.0, 0.0]))
    array([0., 0., 1.])
    """
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = moveaxis(a, axisa, -1), moveaxis(b, axisb, -1)
    if shape(a)[-1] != 3 or shape(b)[-1] != 3:
        raise ValueError(f"cross: only vectors of 3 components are supported (got {shape(a)[-1]} and "
                         f"{shape(b)[-1]}); numpy's 2-component form is deprecated")
    a0, a1, a2 = (take_index(a, (Ellipsis, i)) for i in range(3))
    b0, b1, b2 = (take_index(b, (Ellipsis, i)) for i in range(3))
    c = stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)
    return moveaxis(c, -1, axisc)


def kron(a, b):
    """numpy.kron: blocks a[i, j] * b, by one broadcast product and a reshape.

    >>> import gpuad.numpy as gnp
    >>> gnp.kron(gnp.array([1.0, 10.0]), gnp.array([1.0, 2.0]))
    array([ 1.,  2., 10., 20.])
    """
    n = max(_ndim(a), _ndim(b))
    sa, sb = (1,) * (n - _ndim(a)) + shape(a), (1,) * (n - _ndim(b)) + shape(b)
    # interleave the axes: a's on even positions, b's on odd ones, then merge each pair
    pa = reshape(a, tuple(d for k in sa for d in (k, 1)))
    pb = reshape(b, tuple(d for k in sb for d in (1, k)))
    return reshape(multiply(pa, pb), tuple(i * j for i, j in zip(sa, sb)))


def rot90(m, k=1, axes=(0, 1)):
    """numpy.rot90: rotate by 90 degrees k times, from the first axis towards the second."""
    _need_ndim("rot90", m, 2)
    n = _ndim(m)
    a0, a1 = (normalize_axes(a, n)[0] for a in axes)
    if len(axes) != 2 or a0 == a1:
        raise ValueError(f"rot90: axes must be two different axes, got {axes}")
    k %= 4
    if k == 0:
        return m
    if k == 2:
        return flip(m, (a0, a1))
    perm = list(range(n))
    perm[a0], perm[a1] = a1, a0
    return transpose(flip(m, a1), perm) if k == 1 else flip(transpose(m, perm), a1)


def fliplr(m):
    """numpy.fliplr: reverse axis 1."""
    _need_ndim("fliplr", m, 2)
    return flip(m, 1)


def flipud(m):
    """numpy.flipud: reverse axis 0."""
    _need_ndim("flipud", m, 1)
    return flip(m, 0)


def rollaxis(a, axis, start=0):
    """numpy.rollaxis: move axis until it lies before position start."""
    n = _ndim(a)
    if not -n <= axis < n or not -n <= start <= n:
        raise ValueError(f"rollaxis: axis {axis} or start {start} is out of bounds for {n} dimensions")
    axis, start = axis % n, start + n if start < 0 else start
    if axis < start:
        start -= 1
    return a if axis == start else moveaxis(a, axis, start)


# ---------------------------------------------------------------- grids and index helpers
def meshgrid(*xi, indexing="xy", sparse=False):
    """numpy.meshgrid (indexing 'xy' or 'ij'); a tuple of arrays.

    >>> import gpuad.numpy as gnp
    >>> X, Y = gnp.meshgrid(gnp.array([1.0, 2.0, 3.0]), gnp.array([4.0, 5.0]))
    >>> X.shape, Y.shape
    ((2, 3), (2, 3))
    """
    if indexing not in ("xy", "ij"):
        raise ValueError(f"meshgrid: indexing must be 'xy' or 'ij', got {indexing!r}")
    xi = [ravel(x) for x in xi]
    n = len(xi)
    axis_of = list(range(n))
    if indexing == "xy" and n > 1:  # the first two axes swap: x varies along the columns
        axis_of[:2] = [1, 0]
    full = [1] * n
    for x, a in zip(xi, axis_of):
        full[a] = shape(x)[0]
    out = []
    for x, a in zip(xi, axis_of):
        s = [1] * n
        s[a] = full[a]
        x = reshape(x, tuple(s))
        out.append(x if sparse else broadcast_to(x, tuple(full)))
    return tuple(out)


def _int_arrays(arrays):
    be = backends.current()
    return tuple(be.asarray(a) for a in arrays)


def tril_indices(n, k=0, m=None):
    """numpy.tril_indices: (rows, cols) of the lower triangle, as backend integer arrays."""
    return _int_arrays(onp.tril_indices(n, k, m))


def triu_indices(n, k=0, m=None):
    """numpy.triu_indices: (rows, cols) of the upper triangle, as backend integer arrays."""
    return _int_arrays(onp.triu_indices(n, k, m))


def diag_indices(n, ndim=2):
    """numpy.diag_indices: ndim copies of arange(n), as backend integer arrays."""
    return _int_arrays(onp.diag_indices(n, ndim))


def ix_(*args):
    """numpy.ix_: open-mesh index arrays (integer or boolean sequences), as backend arrays."""
    be = backends.current()
    return tuple(be.xp.ix_(*[be.asarray(a) for a in args]))


# ---------------------------------------------------------------- choosing and searching
def select(condlist, choicelist, default=0):
    """numpy.select: per element, the choice of the first condition that holds, else default.

    >>> import gpuad.numpy as gnp
    >>> x = gnp.array([-2.0, 0.5, 3.0])
    >>> gnp.select([x < 0, x < 1], [-x, x * 10], default=x ** 2)
    array([2., 5., 9.])
    """
    condlist, choicelist = list(condlist), list(choicelist)
    if not condlist:
        raise ValueError("select: the list of conditions is empty")
    if len(condlist) != len(choicelist):
        raise ValueError(f"select: {len(condlist)} conditions for {len(choicelist)} choices; "
                         "the lists must have the same length")
    for c in condlist:
        if dtype(c) != onp.bool_:
            raise TypeError(f"select: conditions must be boolean arrays, got dtype {dtype(c)}")
    out = default
    for cond, choice in reversed(list(zip(condlist, choicelist))):  # the first true condition wins
        out = where(cond, choice, out)
    return out


def piecewise(x, condlist, funclist, *args, **kw):
    """numpy.piecewise: funclist[i](x, *args, **kw) where condlist[i] holds (the last condition
    that holds wins, as in NumPy), one more function where none holds, 0 elsewhere; an entry may
    be a number instead of a function. Made of where, so derivatives flow through each piece.

    NumPy calls a function on its piece's elements; here it gets all of x, with the elements
    outside its piece replaced by one inside it (by 0 where the piece is empty), so it must be
    elementwise, and it sees no value outside its piece (no sqrt of the negative side, whose NaN
    would reach the derivatives).

    >>> import gpuad, gpuad.numpy as gnp
    >>> x = gnp.array([-2.0, 0.0, 4.0])
    >>> gnp.piecewise(x, [x < 0, x > 0], [lambda v: -v, gnp.sqrt, 0.5])
    array([2. , 0.5, 2. ])
    >>> gpuad.jacfwd(lambda v: gnp.piecewise(v, [v < 0, v > 0], [lambda v: -v, gnp.sqrt, 0.5]))(x).diagonal()
    array([-1.  ,  0.  ,  0.25])
    """
    x = asarray(x)
    conds = [_condition(c) for c in _conditions(condlist, x)]
    n = len(conds)
    if len(funclist) == n + 1:  # the last function where no condition holds
        conds.append(logical_not(reduce(logical_or, conds, False)))
    elif len(funclist) != n:
        raise ValueError(f"with {n} condition(s), either {n} or {n + 1} functions are expected")
    out = zeros_like(x)
    for cond, func in zip(conds, funclist):
        out = where(cond, _piece(func, x, cond, args, kw), out)
    return out if dtype(out) == dtype(x) else out.astype(dtype(x))  # NumPy's result has x's dtype


def _conditions(condlist, x):
    """NumPy's reading of condlist: a list of conditions, or a single one (a bool, an array of
    x's dimensions, or a list of bools for an x of one dimension or more)."""
    if not isinstance(condlist, (list, tuple)):  # an array: one condition, or a stack of them
        return [condlist] if _ndim(condlist) <= _ndim(x) else [condlist[i] for i in range(shape(condlist)[0])]
    if _ndim(x) > 0 and condlist and not isinstance(condlist[0], (list, tuple)) and _ndim(condlist[0]) == 0:
        return [condlist]  # a list of bools
    return list(condlist)


def _condition(c):
    c = asarray(c)
    return c if dtype(c) == onp.bool_ else not_equal(c, 0)  # NumPy casts conditions to bool


def _piece(func, x, cond, args, kw):
    if callable(func):
        return func(_inside(x, cond), *args, **kw)
    if _ndim(func) != 0:
        raise TypeError(f"piecewise: each entry of funclist must be a function or a scalar, got "
                        f"{type(func).__name__} of shape {shape(func)}")
    return func


def _inside(x, cond):
    """x where cond holds; elsewhere the first element of x where it holds (0 where it holds
    nowhere: then no derivative flows from the elements outside back into x)."""
    flat = ravel(broadcast_to(cond, shape(x)))
    first = reshape(argmax(flat), (1,))
    fill = where(take_along_axis(flat, first, 0), take_along_axis(ravel(x), first, 0), 0)
    return where(cond, x, reshape(fill, ()))


def searchsorted(a, v, side="left", sorter=None):
    """numpy.searchsorted: where v's values would go in the sorted vector a; integers, no derivative.

    Counts the entries of a below each value (O(len(a) * size(v)) comparisons), which also works
    under vmap with batched a or v.

    >>> import gpuad.numpy as gnp
    >>> gnp.searchsorted(gnp.array([1.0, 2.0, 3.0]), gnp.array([2.0, 0.5]), side="right")
    array([2, 0])
    """
    if side not in ("left", "right"):
        raise ValueError(f"searchsorted: side must be 'left' or 'right', got {side!r}")
    if _ndim(a) != 1:
        raise ValueError(f"searchsorted: a must be 1-d, got shape {shape(a)}")
    if sorter is not None:
        a = take(a, sorter)
    below = (less if side == "left" else less_equal)(a, reshape(v, shape(v) + (1,)))
    return _sum(below, axis=-1)


__all__ = ["pad", "append", "atleast_2d", "atleast_3d", "column_stack", "row_stack", "dstack", "array_split",
           "hsplit", "vsplit", "dsplit", "diff", "gradient", "cross", "kron", "rot90", "fliplr", "flipud",
           "rollaxis", "meshgrid", "tril_indices", "triu_indices", "diag_indices", "ix_", "select",
           "piecewise", "searchsorted"]
