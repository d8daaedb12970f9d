"""Products: matmul, dot, inner, outer, tensordot, einsum and trace, all lowered to the
two-operand `contract` primitive (one GEMM, batched over bundle directions)."""
import string

import numpy as onp

from ..core import shape
from ..ops.contract import contract
from ..ops.shape import reduce_sum
from .creation import asarray
from .elementwise import multiply
from .shapes import broadcast_to, diagonal, ravel, transpose

_LETTERS = string.ascii_lowercase


def matmul(a, b):
    """numpy.matmul, batch dimensions broadcast.

    >>> import gpuad.numpy as gnp
    >>> gnp.matmul(gnp.eye(2), gnp.ones(2))
    array([1., 1.])
    """
    na, nb = len(shape(a)), len(shape(b))
    if na == 0 or nb == 0:
        raise ValueError("matmul: operands must be at least 1-dimensional; use * for scalars")
    if shape(a)[-1] != shape(b)[-2 if nb > 1 else 0]:
        raise ValueError(f"matmul: shapes {shape(a)} and {shape(b)} do not line up")
    if na > 2 and nb > 2 and shape(a)[:-2] != shape(b)[:-2]:
        batch = onp.broadcast_shapes(shape(a)[:-2], shape(b)[:-2])
        a, b = broadcast_to(a, batch + shape(a)[-2:]), broadcast_to(b, batch + shape(b)[-2:])
        na = nb = len(batch) + 2
    lb = _LETTERS[:max(na, nb, 2) - 2]
    sa = lb[len(lb) - max(na - 2, 0):] + ("ik" if na > 1 else "k")
    sb = lb[len(lb) - max(nb - 2, 0):] + ("kj" if nb > 1 else "k")
    so = lb + ("i" if na > 1 else "") + ("j" if nb > 1 else "")
    return contract(a, b, spec=(sa, sb, so))


def dot(a, b):
    """numpy.dot: a product of scalars, vectors and matrices; for N-d, sums a's last axis
    against b's second-to-last."""
    na, nb = len(shape(a)), len(shape(b))
    if na == 0 or nb == 0:
        return multiply(a, b)
    if na <= 2 and nb <= 2:
        return matmul(a, b)
    return tensordot(a, b, axes=([na - 1], [nb - 2 if nb > 1 else 0]))


def inner(a, b):
    if len(shape(a)) == 0 or len(shape(b)) == 0:
        return multiply(a, b)
    return tensordot(a, b, axes=([-1], [-1]))


def outer(a, b):
    return contract(ravel(a), ravel(b), spec=("i", "j", "ij"))


def tensordot(a, b, axes=2):
    a, b = asarray(a), asarray(b)  # Python numbers and lists too, as numpy's
    na, nb = len(shape(a)), len(shape(b))
    if isinstance(axes, int):
        axes = (list(range(na - axes, na)), list(range(axes)))
    ax_a, ax_b = ([x] if isinstance(x, int) else list(x) for x in axes)
    ax_a, ax_b = [x % na for x in ax_a], [x % nb for x in ax_b]
    if [shape(a)[i] for i in ax_a] != [shape(b)[i] for i in ax_b]:
        raise ValueError(f"tensordot: summed axes of {shape(a)} and {shape(b)} differ in length")
    sa = list(_LETTERS[:na])
    sb = list(_LETTERS[na:na + nb])
    for i, j in zip(ax_a, ax_b):
        sb[j] = sa[i]
    so = [c for k, c in enumerate(sa) if k not in ax_a] + [c for k, c in enumerate(sb) if k not in ax_b]
    return contract(a, b, spec=("".join(sa), "".join(sb), "".join(so)))


def trace(x, offset=0, axis1=0, axis2=1):
    return reduce_sum(diagonal(x, offset, axis1, axis2), axes=(len(shape(x)) - 2,), keepdims=False)


def einsum(subscripts, *operands):
    """numpy.einsum: contracts pairwise, left to right, with one GEMM each. The interleaved form
    einsum(a, [0, 1], b, [1, 2], [0, 2]) works too.

    >>> import gpuad.numpy as gnp
    >>> gnp.einsum("ij,j->i", gnp.eye(2), gnp.ones(2))
    array([1., 1.])
    >>> gnp.einsum("...ij,...j->...i", gnp.ones((5, 2, 3)), gnp.ones(3)).shape
    (5, 2)
    >>> gnp.einsum(gnp.eye(2), [0, 1], gnp.ones(2), [1], [0])
    array([1., 1.])
    """
    if not isinstance(subscripts, str):
        subscripts, operands = _interleaved(subscripts, operands)
    ins, out = subscripts.replace(" ", "").split("->") if "->" in subscripts else (subscripts, None)
    specs = ins.split(",")
    if len(specs) != len(operands):
        raise ValueError(f"einsum: {len(specs)} subscripts for {len(operands)} operands")
    specs, ellipsis, operands = _name_ellipsis(specs, operands)
    if out is None:
        letters = "".join(specs)
        out = ellipsis + "".join(sorted(c for c in set(letters) if letters.count(c) == 1 and c not in ellipsis))
    out = out.replace("...", ellipsis)
    ops = [_undiagonal(x, s) for x, s in zip(operands, specs)]
    for c in out:
        if not any(c in s for _, s in ops):
            raise ValueError(f"einsum: output letter {c!r} is not in any operand")
    while len(ops) > 1:
        (a, sa), (b, sb) = ops[0], ops[1]
        later = out + "".join(s for _, s in ops[2:])
        a, sa = _sum_lone(a, sa, sb + later)
        b, sb = _sum_lone(b, sb, sa + later)
        so = "".join(c for c in dict.fromkeys(sa + sb) if c in later)
        ops = [(contract(a, b, spec=(sa, sb, so)), so)] + ops[2:]
    x, s = _sum_lone(*ops[0], out)
    return transpose(x, [s.index(c) for c in out])


def _interleaved(first, rest):
    """The subscripts string and operands of einsum(op, sublist, op, sublist, ..., [out])."""
    args = (first,) + tuple(rest)
    pairs, out = (args, None) if len(args) % 2 == 0 else (args[:-1], args[-1])
    subscripts = ",".join(map(_sublist_letters, pairs[1::2]))
    return subscripts + ("" if out is None else "->" + _sublist_letters(out)), pairs[0::2]


def _sublist_letters(sublist):
    """An interleaved sublist ([0, 1], Ellipsis allowed) as subscript letters (a-z, then A-Z)."""
    text = []
    for s in sublist:
        if s is Ellipsis:
            text.append("...")
        elif isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 52:
            text.append((string.ascii_lowercase + string.ascii_uppercase)[s])
        else:
            raise ValueError(f"einsum: sublist entries must be ints in [0, 52) or Ellipsis, got {s!r}")
    return "".join(text)


def _name_ellipsis(specs, operands):
    """Give the axes under '...' letters of their own. As in NumPy they align to the right and
    broadcast, so operands with size-1 (or fewer) such axes are broadcast first."""
    if not any("..." in s for s in specs):
        return specs, "", operands
    counts = [len(shape(x)) - len(s.replace("...", "")) if "..." in s else 0 for x, s in zip(operands, specs)]
    free = [c for c in string.ascii_uppercase if c not in "".join(specs)]
    n = max(counts)
    named = "".join(free[:n])
    parts = [shape(x)[s.index("..."):s.index("...") + k] if "..." in s else ()
             for x, s, k in zip(operands, specs, counts)]
    common = onp.broadcast_shapes(*parts)
    out_ops = []
    for x, s, k, part in zip(operands, specs, counts, parts):
        if part != common[n - k:]:
            i = s.index("...")
            x = broadcast_to(x, shape(x)[:i] + common[n - k:] + shape(x)[i + k:])
        out_ops.append(x)
    return [s.replace("...", named[n - k:]) for s, k in zip(specs, counts)], named, out_ops


def _undiagonal(x, s):
    """Take the diagonal for each letter repeated within one operand ('ii' -> 'i')."""
    for c in dict.fromkeys(s):
        while s.count(c) > 1:
            i = s.index(c)
            j = s.index(c, i + 1)
            x = diagonal(x, 0, i, j)
            s = s[:i] + s[i + 1:j] + s[j + 1:] + c
    return x, s


def _sum_lone(x, s, keep):
    """Sum out letters of x that no other operand or the output needs."""
    lone = [i for i, c in enumerate(s) if c not in keep]
    if not lone:
        return x, s
    return reduce_sum(x, axes=tuple(lone), keepdims=False), "".join(c for c in s if c in keep)
