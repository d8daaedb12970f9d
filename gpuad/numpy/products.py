"""Products: matmul, dot, inner, outer, tensordot, einsum and trace, all lowered to the
two-operand `contract` primitive (one GEMM, batched over bundle directions)."""
import string

import numpy as onp

from ..core import shape
from ..ops.structural import contract, reduce_sum
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
    """numpy.einsum without '...': contracts pairwise, left to right, with one GEMM each.

    >>> import gpuad.numpy as gnp
    >>> gnp.einsum("ij,j->i", gnp.eye(2), gnp.ones(2))
    array([1., 1.])
    """
    if "." in subscripts:
        raise ValueError("einsum: '...' is not supported; write out the axes")
    ins, out = subscripts.replace(" ", "").split("->") if "->" in subscripts else (subscripts, None)
    specs = ins.split(",")
    if len(specs) != len(operands):
        raise ValueError(f"einsum: {len(specs)} subscripts for {len(operands)} operands")
    if out is None:
        counts = {c: ins.count(c) for c in set(ins) if c != ","}
        out = "".join(sorted(c for c, n in counts.items() if n == 1))
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
