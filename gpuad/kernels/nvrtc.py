"""Compile CUDA source with NVRTC alone, which needs no GPU and no driver: CI checks every kernel
here, and the CuPy backend builds its kernels here (gpuad/kernels/launch.py loads the CUBINs).

CuPy's own compile path asks the device for its architecture, so this calls the NVRTC bindings
CuPy ships (cupy_backends.cuda.libs.nvrtc, library from the nvidia-cuda-nvrtc wheel).

Each NVRTC program has a fixed cost before its first kernel (docs/gpu.md, python -m bench.compile
--nvrtc), so `build` compiles the kernels it is given together: one program per prelude they
share (the inlined headers before the kernel function), split into parts of about equal source
compiled side by side (NVRTC does not hold the GIL) where it is long. Each
program's CUBIN enters the kernel cache (gpuad/kernels/cache.py, folder "cuda") under the
SHA-256 of NVRTC's version, the architecture and the source; a program that NVRTC refuses is
compiled again kernel by kernel, so that one failing kernel costs no other its CUBIN.
"""
import hashlib
import threading
import warnings
from pathlib import Path

from . import cache
from .builds import THREADS, balanced, each
from .index32 import first


class CompileError(Exception):
    """A kernel source NVRTC rejected; the message holds NVRTC's log."""


def version():
    """NVRTC's (major, minor); raises when CuPy or the NVRTC library cannot be loaded."""
    from cupy_backends.cuda.libs import nvrtc
    return nvrtc.getVersion()


ARCH = "sm_90"  # the H100's: what --check compiles for, down to machine code
SPLIT_FROM = 60_000  # characters of kernel functions per part where a program is compiled in several


def arch_for(capability):
    """NVRTC's architecture for a GPU of compute capability `capability` (90 for an H100): the
    newest it supports up to that one."""
    from cupy_backends.cuda.libs import nvrtc
    supported = [a for a in nvrtc.getSupportedArchs() if a <= capability]
    return f"sm_{max(supported) if supported else capability}"


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


def build(sources, arch=ARCH, where=None):
    """{name: the CUBIN holding kernel `name` (a Path), or the CompileError of its source} for
    sources [(text, name)], compiled together (see above); arch None: PTX for NVRTC's default
    architecture instead. `where`: the folder the files go to; default the kernel cache."""
    where = _folder() if where is None else Path(where)
    texts = dict((name, text) for text, name in sources)
    programs = grouped(texts)
    def compiled(program):
        return _built(program[0], arch, where)
    out = {}
    for (_, names), got in zip(programs, each(compiled, programs, CompileError)):
        if isinstance(got, CompileError) and len(names) > 1:  # which of them fail, alone?
            got = dict(zip(names, each(compiled, [(texts[n], [n]) for n in names], CompileError)))
        out.update(got if isinstance(got, dict) else dict.fromkeys(names, got))
    return out


def grouped(texts):
    """[(source, kernel names)]: the NVRTC programs of kernels {name: text}, one per prelude they
    share, in parts of about SPLIT_FROM characters of kernel functions (at most THREADS)."""
    preludes, programs = {}, []
    for name, text in texts.items():
        at = text.find(f'extern "C" __global__ void {name}(')
        if at < 0:  # not a kernel of ours: a program of its own
            programs.append((text, [name]))
        else:
            preludes.setdefault(text[:at], []).append((name, text[at:]))
    for prelude, functions in preludes.items():
        parts = min(THREADS, -(-sum(len(f) for _, f in functions) // SPLIT_FROM))
        for group in balanced(functions, parts, size=lambda f: len(f[1])):
            programs.append((prelude + "\n".join(f for _, f in group), [n for n, _ in group]))
    return programs


def cached(sources, arch=ARCH):
    """Whether `build` would find every program of sources [(text, name)] in the kernel cache
    (its files are checked again when built)."""
    where = cache.root("cuda")
    return all((where / _file(source, arch)).exists() for source, _ in grouped(dict((n, t) for t, n in sources)))


def _file(source, arch):
    """The name of an NVRTC program's CUBIN: the hash of what it is made from."""
    made_of = "\n".join([str(version()), str(arch), source])
    return f"gpuad_{hashlib.sha256(made_of.encode()).hexdigest()[:32]}.cubin"


def _built(source, arch, where):
    """The CUBIN of one NVRTC program in folder `where`, compiled where it is not there intact."""
    path = where / _file(source, arch)
    if not cache.intact(path):
        cubin = compile_ptx(source, path.stem, arch)
        with cache.workspace(where) as tmp:
            (tmp / path.name).write_bytes(cubin)
            cache.install(tmp / path.name, path)
    return path


_warned = threading.Event()


def _folder():
    """The kernel cache's CUDA folder; where it cannot be used, a private one (one warning)."""
    try:
        return cache.folder("cuda")
    except OSError as e:
        if not _warned.is_set():
            _warned.set()
            warnings.warn(f"gpuad: the kernel cache cannot be used ({e}); the CUDA kernels are built in a private "
                          "temporary folder for this process (set GPUAD_CACHE_DIR to a folder of your own)",
                          RuntimeWarning, stacklevel=3)
        return cache.private()


def compile_cuda(kernels, arch=ARCH, where=None):
    """NVRTC on region kernels (the variant each launcher builds first: index32.first), together
    as `build` compiles them: [(kernel, error or None)]."""
    sources = [first(k) for k in kernels]
    built = build(sources, arch, where)
    return [(k, built[name] if isinstance(built[name], CompileError) else None)
            for k, (_, name) in zip(kernels, sources)]
