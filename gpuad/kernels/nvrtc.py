"""Compile CUDA source with NVRTC alone, which needs no GPU and no driver: CI checks every kernel.

CuPy's own compile path asks the device for its architecture, so this calls the NVRTC
bindings CuPy ships (cupy_backends.cuda.libs.nvrtc, library from the nvidia-cuda-nvrtc wheel).
"""


class CompileError(Exception):
    """A kernel source NVRTC rejected; the message holds NVRTC's log."""


def version():
    """NVRTC's (major, minor); raises when CuPy or the NVRTC library cannot be loaded."""
    from cupy_backends.cuda.libs import nvrtc
    return nvrtc.getVersion()


def compile_ptx(text, name):
    """PTX of one kernel source, for NVRTC's default architecture.

    >>> compile_ptx('extern "C" __global__ void gpuad_nop() {}', "gpuad_nop")[:2]  # doctest: +SKIP
    b'//'
    """
    from cupy_backends.cuda.libs import nvrtc
    prog = nvrtc.createProgram(text, f"{name}.cu", (), ())
    try:
        nvrtc.compileProgram(prog, ())
        return nvrtc.getPTX(prog)
    except nvrtc.NVRTCError as e:
        raise CompileError(f"{name}: {e}\n{nvrtc.getProgramLog(prog)}") from None
    finally:
        nvrtc.destroyProgram(prog)
