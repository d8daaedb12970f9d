"""What NVRTC makes of kernels for the H100 (sm_90), without a GPU: machine instructions and
registers per thread (gpuad/kernels/cubin.py), of their 64-bit and 32-bit index variants.

    python -m bench.sass memory_jacfwd tall_jacfwd ...   # each region of those cases at --size gpu
    python -m bench.sass --per-op multiply tanh ...      # the per-op kernels of those rows, float64
"""
import sys

from gpuad.kernels.cubin import measure


def _line(what, wide, narrow):
    return (f"{what}: 64-bit indices {wide[0]} instructions, {wide[1]} registers"
            + (f"; 32-bit {narrow[0]} instructions, {narrow[1]} registers" if narrow else "; no 32-bit variant"))


def regions(names):
    import gpuad.numpy as gnp
    from bench import engines, problems
    from gpuad.kernels import index32, programs
    from gpuad.kernels.nvrtc import ARCH, compile_ptx
    for case in problems.select(",".join(names)):
        f, args = case.setup(gnp, problems.SIZES["gpu"])
        fun = engines._gpuad("cpu").transforms[case.transform](f)
        for k in programs.region_kernels(fun, *args, target="cuda"):
            wide = measure(compile_ptx(k.text, k.name, ARCH), k.name)
            narrow = measure(compile_ptx(*index32.first(k), ARCH), index32.first(k)[1]) if index32.applies(k) \
                else None
            print(_line(f"{case.name} {k.name} shape {k.shape}", wide, narrow))


def per_op(rows):
    import numpy

    from gpuad.kernels.nvrtc import ARCH, compile_ptx
    from gpuad.kernels.source import MODES, kernel_name, render, variants
    from gpuad.ops.table import ROWS
    for row in (ROWS[name] for name in rows):
        for mode in MODES:
            for variant in variants(row, mode):
                k = (row, mode, variant, numpy.float64)
                made = [measure(compile_ptx(render(*k, index), kernel_name(*k, index), ARCH), kernel_name(*k, index))
                        for index in ("int64", "int32")]
                print(_line(kernel_name(*k), *made))


if __name__ == "__main__":
    per_op(sys.argv[2:]) if sys.argv[1:2] == ["--per-op"] else regions(sys.argv[1:])
