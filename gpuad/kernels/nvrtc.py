"""Compile CUDA source with NVRTC alone, which needs no GPU and no driver: CI checks every kernel.

CuPy's own compile path asks the device for its architecture, so this calls the NVRTC
bindings CuPy ships (cupy_backends.cuda.libs.nvrtc, library from the nvidia-cuda-nvrtc wheel).
"""
from .builds import each
from .index32 import first


class CompileError(Exception):
    """A kernel source NVRTC rejected; the message holds NVRTC's log."""


def version():
    """NVRTC's (major, minor); raises when CuPy or the NVRTC library cannot be loaded."""
    from cupy_backends.cuda.libs import nvrtc
    return nvrtc.getVersion()


ARCH = "sm_90"  # the H100's: what --check compiles for, down to machine code


def compile_ptx(text, name, arch=None):
    """PTX of one kernel source, for NVRTC's default architecture; with arch ("sm_90"), the
    machine code (CUBIN) for that GPU instead, which also runs register allocation.

    >>> compile_ptx('extern "C" __global__ void gpuad_nop() {}', "gpuad_nop")[:2]  # doctest: +SKIP
    b'//'
    """
    from cupy_backends.cuda.libs import nvrtc
    prog = nvrtc.createProgram(text, f"{name}.cu", (), ())
    try:
        nvrtc.compileProgram(prog, () if arch is None else (f"--gpu-architecture={arch}",))
        return nvrtc.getPTX(prog) if arch is None else nvrtc.getCUBIN(prog)
    except nvrtc.NVRTCError as e:
        raise CompileError(f"{name}: {e}\n{nvrtc.getProgramLog(prog)}") from None
    finally:
        nvrtc.destroyProgram(prog)


def compile_cuda(kernels, arch=ARCH):
    """NVRTC on each region kernel (the variant its launcher builds first: index32.first), several
    at once: [(kernel, error or None)]."""
    def one(k):
        compile_ptx(*first(k), arch)
    return [(k, e) for k, e in zip(kernels, each(one, kernels, CompileError))]
