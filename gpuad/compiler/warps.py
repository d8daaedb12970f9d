"""Fused sums with few outputs split over a warp (CUDA region kernels, gpuad/compiler/codegen.py).

A region's kernel gives each loop element (an output) one thread, which runs a sum's loop alone:
4,096 outputs summing 20,000 terms each are 16 blocks, 12% of an H100's SMs, each thread walking
its terms serially. Where a region's loop is short and a sum's loop long, a warp owns each loop
element instead: its 32 lanes run the same body, each summing every 32nd term, then add their
partial sums by shuffles (gpuad_warp_sum in kernels/gpuad_math.cuh) and carry on with the total;
every lane writes the same outputs. Only sums at the body's top level are split: a sum inside a
branch or another sum's loop stays one lane's (its conditions or counter may differ by lane).
codegen's _Body asks `split` of each sum it builds, and prints a split one's loop with `head` and
`total` over the lanes its layout has (`lanes`: 1 in the host's and the loop kernels' bodies).
"""
from .index import INDEX

LANES = 32  # a warp
MAX_LOOP = 2 ** 17  # loop elements (outputs) up to which a warp each still leaves the grid reasonable
MIN_TERMS = 4 * LANES  # a sum shorter than this is not worth the shuffles


def split(terms, top):
    """Whether a sum of `terms` terms is split over a warp's lanes (`top`: at the body's top level)."""
    return top and terms >= MIN_TERMS


def lanes(size):
    """The threads per loop element of a CUDA region kernel of `size` loop elements that has a
    split sum: a warp, where the loop is short enough."""
    return LANES if size <= MAX_LOOP else 1


def head(r, n, lanes=1):
    """The head of a sum's loop over r < n (C source): the terms of this lane, of `lanes`."""
    if lanes == 1:
        return f"for ({INDEX} {r} = 0; {r} < {n}; ++{r}) {{"
    return f"for ({INDEX} {r} = gpuad_lane; {r} < {n}; {r} += {lanes}) {{"


def total(t, lanes):
    """The line after a split sum's loop making t, a lane's partial sum, the whole (None with one lane)."""
    return f"{t} = gpuad_warp_sum({t});" if lanes > 1 else None
