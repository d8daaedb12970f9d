"""Fused sums with few outputs split over a warp (CUDA region kernels, gpuad/compiler/codegen.py).

A region's kernel gives each loop element (an output) one thread, which runs a sum's loop alone:
4,096 outputs summing 20,000 terms each are 16 blocks, 12% of an H100's SMs, each thread walking
its terms serially. Where a region's loop is short and a sum's loop long, a warp owns each loop
element instead: its 32 lanes run the same body, each summing every 32nd term, then add their
partial sums by shuffles (gpuad_warp_sum in kernels/gpuad_math.cuh) and carry on with the total;
every lane writes the same outputs. Only sums at the body's top level are split: a sum inside a
branch or another sum's loop stays one lane's (its conditions or counter may differ by lane).
"""
import re

from .index import INDEX

LANES = 32  # a warp
MAX_LOOP = 2 ** 17  # loop elements (outputs) up to which a warp each still leaves the grid reasonable
MIN_TERMS = 4 * LANES  # a sum shorter than this is not worth the shuffles
_LOOP = re.compile(rf"^for \({INDEX} r(\d+) = 0; r\1 < (\d+); \+\+r\1\) \{{$")


def split(body, size):
    """(body, lanes): the CUDA loop body with its long top-level sums split over a warp's lanes
    and 32, where the region's loop of `size` elements is short enough; else (body, 1)."""
    lines = body.split("\n        ")
    loops = [k for k, line in enumerate(lines) if (m := _LOOP.match(line)) and int(m.group(2)) >= MIN_TERMS]
    if size > MAX_LOOP or not loops:
        return body, 1
    for k in reversed(loops):
        r = _LOOP.match(lines[k]).group(1)
        end = lines.index("}", k)  # the loop's own close: its body's lines are indented
        lines[k] = lines[k].replace(f"= 0; r{r}", f"= gpuad_lane; r{r}").replace(f"++r{r}", f"r{r} += {LANES}")
        lines.insert(end + 1, f"t{r} = gpuad_warp_sum(t{r});")
    return "\n        ".join(lines), LANES
