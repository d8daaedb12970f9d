"""Two-operand tensor contraction (an einsum without repeated or lone letters) as one matmul.

`spec` is (sa, sb, so): the letters of a, b and the output. Each letter appears in at least
two of the three. Letters in all three are batch axes, letters in a and b only are contracted,
the rest are free. The operands are transposed to (batch, free, contracted) and multiplied by
one (batched) GEMM: on CuPy that is one cuBLAS call for all directions of a bundle.
"""
from math import prod


def contract(xp, a, b, spec):
    sa, sb, so = spec
    batch = [c for c in so if c in sa and c in sb]
    summed = [c for c in sa if c in sb and c not in so]
    free_a = [c for c in sa if c not in sb]
    free_b = [c for c in sb if c not in sa]
    dims = dict(zip(sa, a.shape))
    dims.update(zip(sb, b.shape))
    size = lambda letters: prod(dims[c] for c in letters)  # noqa: E731
    A = _arrange(xp, a, sa, batch + free_a + summed, [size(batch), size(free_a), size(summed)])
    B = _arrange(xp, b, sb, batch + summed + free_b, [size(batch), size(summed), size(free_b)])
    if not batch:
        A, B = A[0], B[0]
    out = xp.matmul(A, B).reshape([dims[c] for c in batch + free_a + free_b])
    order = batch + free_a + free_b
    return xp.transpose(out, [order.index(c) for c in so])


def _arrange(xp, x, letters, order, shape3):
    x = xp.transpose(x, [letters.index(c) for c in order])
    return x.reshape(shape3)
