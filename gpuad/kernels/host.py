"""The fusion regions' kernels compiled for the CPU with the system's C++ compiler, run on NumPy.

One shared library per program (all its regions; a large source compiled in parts side by side,
one per core), built with OpenMP, cached on disk by the hash of its source ($GPUAD_CACHE_DIR,
else ~/.cache/gpuad): a program traced again in a later process loads it without compiling.
Where no compiler works, `library` returns None and says why once; the caller then replays
without fusion.
"""
import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy

from .region import host_sources

SPLIT_FROM = 100_000  # characters of source past which it is compiled in parts, one per core
MAX_PARTS = 8  # compiler processes at once (each may take a GiB on a large program)
_loaded = {}      # source hash -> ctypes.CDLL
_warned = []


def _array_struct_offsets():
    """Offsets of the data pointer and of the strides pointer in NumPy's array object (the
    PyArrayObject_fields of NumPy's C API: data, nd, dimensions, strides follow the object
    header), found on a probe and checked on a second array; None where they do not check out."""
    probe = numpy.empty((3, 5))[:, ::2]
    words = numpy.frombuffer(ctypes.string_at(id(probe), 96), dtype=numpy.uintp)
    hits = numpy.flatnonzero(words == probe.__array_interface__["data"][0])
    if not hits.size:
        return None
    data, strides = int(hits[0]) * 8, int(hits[0]) * 8 + 24
    check = numpy.empty((4, 6, 2), numpy.float32)[::-1, 1:, :1]
    raw = ctypes.string_at(id(check) + data, 32)
    pointers = numpy.frombuffer(raw, dtype=numpy.uintp)
    got = numpy.frombuffer(ctypes.string_at(int(pointers[3]), 24), dtype=numpy.int64)
    ok = int(pointers[0]) == check.__array_interface__["data"][0] and tuple(got) == check.strides
    return (data, strides) if ok else None


OFFSETS = _array_struct_offsets()


def cache_dir():
    return Path(os.environ.get("GPUAD_CACHE_DIR") or Path.home() / ".cache" / "gpuad") / "host"


def _isa():
    """Flags building the kernels for this machine's AVX2 alone, where /proc/cpuinfo lists it
    (else both builds, AVX2 and the baseline, chosen at load: twice the compilation)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return ()
    return ("-mavx2", "-DGPUAD_ONE_ISA") if "avx2" in flags.split() else ()


ISA = _isa()


def compiler():
    """The C++ compiler to use ($CXX, else g++ or c++ on the PATH), or None."""
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def _passive_threads():
    """OpenMP threads that sleep instead of spinning between kernels: spinning threads fight the
    caller's other work (and each other on a busy machine) for the cores. The user's setting wins;
    it is read when the first library loads."""
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")


def library(kernels):
    """The loaded library holding these kernels, compiling it on first use; None without a compiler
    (or where NumPy's array struct could not be read)."""
    if OFFSETS is None:
        _warn_once("this NumPy's array layout is not the one the fused kernels read")
        return None
    head, (body,) = host_sources(kernels, OFFSETS)
    key = _key(head, body)
    lib = _loaded.get(key)
    if lib is None:
        path = cache_dir() / f"gpuad_{key}.so"
        parts = min(_cores(), MAX_PARTS) if len(body) > SPLIT_FROM else 1
        if not path.exists() and not _build(*host_sources(kernels, OFFSETS, parts), path):
            return None
        _passive_threads()
        lib = _loaded[key] = ctypes.CDLL(str(path))
    return lib


def cached(kernels):
    """Whether the library of these kernels is loaded or on disk: `library` runs no compiler."""
    if OFFSETS is None:
        return True  # `library` says at once why it cannot build
    key = _key(*host_sources(kernels, OFFSETS))
    return key in _loaded or (cache_dir() / f"gpuad_{key}.so").exists()


def _key(head, bodies):
    return hashlib.sha1((head + "".join(bodies) + " ".join(ISA)).encode()).hexdigest()  # AVX2 alone: its own file


def _cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _build(head, bodies, path):
    """Compile the sources (head + each body) side by side, one compiler process each, and link
    them into path."""
    cxx = compiler()
    if cxx is None:
        _warn_once("no C++ compiler found (set CXX, or install g++)")
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    # No fused multiply-adds (results round as NumPy's do). Arithmetic may run where a kernel
    # then does not select its result (no trapping math: the branch-free loops vectorise).
    # OpenMP and glibc's vector math where the compiler and the C library have them.
    # sin and cos as builtins would merge into one scalar sincos call, which does not vectorise.
    simd = ["-fopenmp", "-DGPUAD_SIMD_MATH", *ISA, "-fno-builtin-sin", "-fno-builtin-cos", "-fno-builtin-sinf",
            "-fno-builtin-cosf"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "regions.so"
        for flags, libs in ((simd, ["-lmvec"]), (["-fopenmp"], []), ([], [])):
            base = [cxx, "-O2", "-ffp-contract=off", "-fno-trapping-math", "-fPIC", *flags]
            pch = _precompiled(base, head) if flags is simd else None
            srcs = [Path(tmp) / f"regions{k}.cpp" for k in range(len(bodies))]
            for src, body in zip(srcs, bodies):
                src.write_text((f'#include "{_PRELUDE}"\n' if pch else head) + body)
            include = ["-I", str(pch)] if pch else []
            jobs = [subprocess.Popen([*base, *include, "-c", "-o", f"{src}.o", str(src)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True) for src in srcs]
            errors = [err for job in jobs for err in [job.communicate()[1]] if job.returncode]
            if not errors:
                done = subprocess.run([*base, "-shared", "-o", str(out), *(f"{src}.o" for src in srcs), *libs],
                                      capture_output=True, text=True)
                if done.returncode == 0:
                    os.replace(out, path)  # atomic: a concurrent process sees the whole file or none
                    return True
                errors = [done.stderr]
    _warn_once(f"{cxx} could not compile the fused kernels:\n{errors[0][-2000:]}")
    return False


_PRELUDE = "gpuad_prelude.h"


def _precompiled(base, head):
    """A folder holding the prelude and its precompiled header for these compiler flags (built
    once per machine, in the cache): a program's sources then include it instead of parsing
    <cmath> again (0.25 -> 0.17 s for a small program). None where it cannot be built; a header
    the compiler finds unusable is parsed as text instead, so nothing depends on it."""
    folder = cache_dir() / f"pch_{hashlib.sha1((' '.join(base) + head).encode()).hexdigest()[:16]}"
    if (folder / f"{_PRELUDE}.gch").exists():
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as tmp:  # each file appears whole or not at all
            (Path(tmp) / _PRELUDE).write_text(head)
            os.replace(Path(tmp) / _PRELUDE, folder / _PRELUDE)
            gch = Path(tmp) / f"{_PRELUDE}.gch"
            done = subprocess.run([*base, "-x", "c++-header", "-o", str(gch), str(folder / _PRELUDE)],
                                  capture_output=True, text=True)
            if done.returncode:
                return None
            os.replace(gch, folder / f"{_PRELUDE}.gch")
    except OSError:  # a cache that cannot take it: the sources carry the prelude as text
        return None
    return folder


def _warn_once(why):
    if not _warned:
        _warned.append(why)
        warnings.warn(f"gpuad.jit: {why}; compiled functions run without fused kernels on the CPU",
                      RuntimeWarning, stacklevel=4)


def launcher(lib, kernel, reuse=()):
    """A function (*arrays) -> outputs running one region's kernel on NumPy arrays. Outputs in
    `reuse` are written into buffers kept from call to call (values the caller never lets out):
    large fresh buffers would be page-faulted in again at every call."""
    fn = getattr(lib, f"{kernel.name}_objects")
    fn.restype = None
    fn.argtypes = [ctypes.py_object] * (len(kernel.arrays) + len(kernel.outs))
    outs = [(v.shape, v.dtype) for v in kernel.outs]
    kept = [numpy.empty(s, d) if v in reuse else None for (s, d), v in zip(outs, kernel.outs)]

    def run(*arrays):
        results = [k if k is not None else numpy.empty(s, d) for k, (s, d) in zip(kept, outs)]
        fn(*arrays, *results)
        return results
    return run
