"""Adjacent iteration axes a region's kernel loops over as one (gpuad/compiler/codegen.py).

A kernel over an iteration space (a, b, c) takes each element's digits from its flat index (a
division and a modulo per axis) and multiplies each by a stride of every input it reads. Where
every value of the region treats two neighbouring axes alike, one digit serves both: an
elementwise chain over a (4096, 64, 3) batch is one loop of 786,432 elements reading each input
at i times one stride. CuPy's elementwise kernels merge axes the same way (`_reduce_dims`), from
the strides alone at every launch; a region knows more and less: its moves say statically how
each input is read (a transpose or a slice along a pair reads it apart; a broadcast input reads
neither axis of a pair, and merges), its inputs' strides are known at run time only.

`groups` decides from a render of the body at symbolic digits (its loads, and the digits named
outside them): a pair merges where no code but the loads names its digits and every load reads
its input either at neither digit or at both, on neighbouring axes of the same lengths. The body
is then rendered over the merged shape (the original digits are the merged digit's unravelled
parts, `digits`), and `terms` spells a load's offset with one stride for each run of input axes
read at a merged digit. That offset is right where the input's strides along the run satisfy
s_k == s_k+1 * n_k+1: always for a C-contiguous array, checked for the others (`checks`).
"""
import math
import re

from . import index as ix


def groups(shape, text, loads, arrays, inner_of):
    """The axes of `shape` in merged groups (tuples of neighbours, covering all in order), from a
    body rendered at digits d0, d1, ... (`text`, its first len(shape) lines declaring them, loads
    marked) and its loads [(input position, index)]; inner_of(shape): how many trailing axes of an
    iteration space its kernel unrolls. Of the merges every value allows, those joining the loop
    to the unrolled axes only where that leaves fewer digit operations per element (a broadcast
    row's axes merged into a loop of three times the elements would cost more)."""
    inner = inner_of(shape)
    if not worth_trying(shape, inner_of):
        return _joined(len(shape), ())
    rest = "\n".join(text.split("\n")[len(shape):])
    named = {k for k in range(len(shape)) if re.search(rf"\bd{k}\b", rest)}
    read = [(arrays[j].shape, idx, [ix.symbols(x) for x in idx]) for j, idx in loads]
    pairs = set()
    for k, m in _neighbours(shape):  # axes longer than 1 with only unit axes between: those join as they do
        if k in _pairs(shape, inner) and not named & {k, m} and \
                all(_alike(in_shape, idx, names, shape, k, m) for in_shape, idx, names in read):
            pairs.update(range(k, m))
    real = [k for k, n in enumerate(shape) if n != 1]
    pairs.update(range(real[-1] if real else 0, len(shape) - 1))  # trailing unit axes join the axis before
    return min(_tried(shape, inner, pairs), key=lambda g: _digit_operations(merged_shape(shape, g), inner_of))


def worth_trying(shape, inner_of):
    """Whether merging the pairs of axes that may merge would leave fewer digit operations per
    element, were every value to allow it (else the body need not be read)."""
    apart = _digit_operations(shape, inner_of)
    return any(_digit_operations(merged_shape(shape, g), inner_of) < apart
               for g in _tried(shape, inner_of(shape), _pairs(shape, inner_of(shape))))


def _pairs(shape, inner):
    """The pairs of neighbouring axes (k, k + 1) that may merge: not both unrolled."""
    return set(range(min(len(shape) - 1, len(shape) - inner)))


def _tried(shape, inner, pairs):
    """The groupings compared: the pairs merged, those not joining the loop to the unrolled axes, none."""
    return [_joined(len(shape), pairs), _joined(len(shape), pairs - {len(shape) - inner - 1}), _joined(len(shape), ())]


def _joined(n, pairs):
    """Axes 0..n-1 in groups, k and k+1 together for each k in pairs."""
    out = [[0]]
    for k in range(n - 1):
        if k in pairs:
            out[-1].append(k + 1)
        else:
            out.append([k + 1])
    return [tuple(g) for g in out]


def _digit_operations(shape, inner_of):
    """Divisions and modulos per element taking a loop element's digits from its flat index."""
    loop = [n for n in shape[:len(shape) - inner_of(shape)] if n != 1]
    return 2 * max(len(loop) - 1, 0) / math.prod(shape[len(shape) - inner_of(shape):])


def _neighbours(shape):
    """(k, m): axes longer than 1, m the next such after k."""
    real = [k for k, n in enumerate(shape) if n != 1]
    return list(zip(real, real[1:]))


def _alike(in_shape, idx, names, shape, k, m):
    """Whether a load at idx (over an input of in_shape; names: the digits of each index) reads
    axes k and m of the iteration space alike: at neither, or at d_k and d_m themselves along
    neighbouring axes of the input (past unit axes) as long as theirs."""
    at = [[p for p, n in enumerate(names) if f"d{d}" in n] for d in (k, m)]
    if not at[0] and not at[1]:
        return True
    if len(at[0]) != 1 or len(at[1]) != 1:
        return False
    p, q = at[0][0], at[1][0]
    return p < q and all(in_shape[m] == 1 for m in range(p + 1, q)) and \
        (idx[p], idx[q]) == (ix.sym(f"d{k}"), ix.sym(f"d{m}")) and (in_shape[p], in_shape[q]) == (shape[k], shape[m])


def merged_shape(shape, groups):
    return tuple(math.prod(shape[k] for k in g) for g in groups)


def digits(shape, groups, merged):
    """The index over `shape` of the element at `merged` (one expression per group: a digit of
    the merged loop, or a constant of its unrolled axes)."""
    return tuple(x for g, m in zip(groups, merged)
                 for x in (ix.unravel(m, [shape[k] for k in g]) if len(g) > 1 else (m,)))


def runs(shape, groups, loop):
    """[(merged digit, its parts along the group's axes longer than 1, their lengths)] for the
    merged loop axes (the first `loop` groups) of two or more such axes."""
    out = []
    for a, g in enumerate(groups[:loop]):
        dims = [shape[k] for k in g if shape[k] != 1]
        if len(dims) > 1:
            digit = ix.sym(f"d{a}", 0, math.prod(dims) - 1)
            out.append((digit, tuple(x for x in ix.unravel(digit, dims)), dims))
    return out


def terms(idx, in_shape, merged_runs, allowed):
    """(terms, runs used): a load's offset as [(index, the input axis whose stride it takes)], in
    axis order, the input's axes longer than 1 read at a merged digit's parts taken together
    where allowed(axes) says their strides may be (one term, the digit at the last one's stride)."""
    along = [p for p, n in enumerate(in_shape) if n != 1]
    out, used, k = [], [], 0
    while k < len(along):
        for digit, parts, dims in merged_runs:
            axes = along[k:k + len(parts)]
            if tuple(idx[p] for p in axes) == parts and [in_shape[p] for p in axes] == dims and allowed(axes):
                out.append((digit, axes[-1]))
                used.append(tuple(axes))
                k += len(axes)
                break
        else:
            out.append((idx[along[k]], along[k]))
            k += 1
    return out, used


def checks(axes, in_shape):
    """[(p, q, n)]: the stride conditions s_p == s_q * n that a run of input axes read as one needs."""
    return [(p, q, in_shape[q]) for p, q in zip(axes, axes[1:])]


def holds(strides, conditions):
    """Whether strides (of one array) satisfy conditions [(p, q, n)]."""
    return all(strides[p] == strides[q] * n for p, q, n in conditions)
