"""What NVRTC makes of each region kernel of benchmark cases for the H100 (sm_90), without a GPU:
machine instructions and registers per thread (gpuad/kernels/cubin.py), of its 64-bit and
32-bit index variants.

    python -m bench.sass memory_jacfwd tall_jacfwd ...   # each region of those cases at --size gpu,
                                                          # its 64-bit and 32-bit index variants
"""
import sys

from gpuad.kernels.cubin import measure


def main(names):
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
            print(f"{case.name} {k.name} shape {k.shape}: 64-bit indices {wide[0]} instructions, {wide[1]} registers"
                  + (f"; 32-bit {narrow[0]} instructions, {narrow[1]} registers" if narrow else "; no 32-bit variant"))


if __name__ == "__main__":
    main(sys.argv[1:])
