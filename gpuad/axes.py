"""Axis bookkeeping shared by the primitives and gpuad.numpy: pure functions of shapes and ints."""


def normalize_axes(axis, ndim):
    """numpy's axis argument (None, an int or a sequence, negatives allowed) as sorted axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in axes:
        if not -ndim <= a < (ndim or 1):
            raise ValueError(f"axis {a} is out of bounds for an array of dimension {ndim}")
        out.append(a % ndim if ndim else 0)
    return tuple(sorted(set(out)))


def distinct_axes(axes, ndim, what):
    """A sequence of axes (negatives allowed) as non-negative ones, in their order; a ValueError
    naming `what` for an axis out of bounds or repeated."""
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"{what}: axis {a} is out of bounds for an array of dimension {ndim}")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{what}: duplicate axes {tuple(axes)!r}")
    return tuple(out)


def with_unit_axes(shape, positions):
    """`shape` with size-1 axes inserted so that they stand at `positions` of the result.

    >>> with_unit_axes((4, 5), (0, 2))
    (1, 4, 1, 5)
    """
    out = list(shape)
    for p in sorted(positions):
        out.insert(p, 1)
    return tuple(out)


def lead_to_rank(shape, ndim):
    """The shape (K, 1, ..., 1, *S) that lines a bundle (K, *S) up with values of `ndim` dims."""
    return with_unit_axes(shape, range(1, ndim + 2 - len(shape)))
