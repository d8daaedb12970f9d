"""The fusion regions' kernels compiled for the CPU with the system's C++ compiler, run on NumPy.

One shared library per program (all its regions; a large source compiled in parts side by side,
one per core; large regions split over the process's thread pool, kernels/host_pool.cpp), cached
on disk by the hash of its source ($GPUAD_CACHE_DIR, else ~/.cache/gpuad; gpuad/kernels/cache.py:
private, each file checked against its recorded hash): a program traced again in a later process
loads it without compiling. Where no compiler works (or it takes longer than
$GPUAD_COMPILE_TIMEOUT), `library` returns None and says why once; the caller then replays
without fusion.
"""
import contextlib
import ctypes
import functools
import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
import weakref
from pathlib import Path

import numpy

from ..backends.numpy import _address_space_room
from ..kernels import builds, cache
from ..kernels.source import _read
from .codegen import host_sources

SPLIT_FROM = 100_000  # characters of source past which it is compiled in parts, one per core
MAX_PARTS = 8  # compiler processes at once (each may take a GiB on a large program)
_loaded = {}      # source hash -> ctypes.CDLL
_timed_out = set()  # source hashes whose build ran past $GPUAD_COMPILE_TIMEOUT
_warned = []
_warned_cache = []


def _array_struct_offsets():
    """Offsets in NumPy's array object (PyArrayObject_fields of NumPy's C API: type, data, nd,
    dimensions, strides, base, descr, flags) and in its dtype object (PyArray_Descr: byteorder,
    type_num) that the kernels' entries read, found on a probe and checked on a second array;
    None where they do not check out."""
    probe = numpy.empty((3, 5))[:, ::2]
    words = numpy.frombuffer(ctypes.string_at(id(probe), 96), dtype=numpy.uintp)
    hits = numpy.flatnonzero(words == probe.__array_interface__["data"][0])
    kinds = numpy.flatnonzero(words == id(numpy.ndarray))
    if not hits.size or not kinds.size:
        return None
    data = int(hits[0]) * 8
    offsets = {"TYPE": int(kinds[0]) * 8, "DATA": data, "STRIDES": data + 24, "DESCR": data + 40,
               "FLAGS": data + 48, "BYTEORDER": 26, "TYPE_NUM": 28}
    return offsets if _offsets_check_out(offsets) else None


def _offsets_check_out(at):
    """Whether the offsets read a second array's fields and its swapped dtype's as Python sees them."""
    check = numpy.empty((4, 6, 2), ">f4")[::-1, 1:, :1]

    def word(address, offset, kind=numpy.uintp):
        return int(numpy.frombuffer(ctypes.string_at(address + offset, 8), dtype=kind)[0])
    descr = word(id(check), at["DESCR"])
    strides = numpy.frombuffer(ctypes.string_at(word(id(check), at["STRIDES"]), 24), dtype=numpy.int64)
    raw_descr = ctypes.string_at(descr, at["TYPE_NUM"] + 4)
    return (word(id(check), at["DATA"]) == check.__array_interface__["data"][0] and tuple(strides) == check.strides
            and descr == id(check.dtype) and word(id(check), at["FLAGS"], numpy.int32) == check.flags.num
            and raw_descr[at["BYTEORDER"]:at["BYTEORDER"] + 1] == b">"
            and int.from_bytes(raw_descr[at["TYPE_NUM"]:], sys.byteorder) == check.dtype.num)


OFFSETS = _array_struct_offsets()


def _isa():
    """Flags building the kernels for this machine's AVX2 alone, where /proc/cpuinfo lists it
    (else both builds, AVX2 and the baseline, chosen at load: twice the compilation)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return ()
    return ("-mavx2", "-DGPUAD_ONE_ISA") if "avx2" in flags.split() else ()


ISA = _isa()
# No fused multiply-adds (results round as NumPy's do). Arithmetic may run where a kernel
# then does not select its result (no trapping math: the branch-free loops vectorise).
FLAGS = ["-O2", "-ffp-contract=off", "-fno-trapping-math", "-fPIC"]
# OpenMP's simd loops and glibc's vector math where the compiler and the C library have them (the
# first build tried). sin and cos as builtins would merge into one scalar sincos call, which does
# not vectorise.
SIMD = ["-fopenmp-simd", "-DGPUAD_SIMD_MATH", *ISA, "-fno-builtin-sin", "-fno-builtin-cos", "-fno-builtin-sinf",
        "-fno-builtin-cosf"]


def compiler():
    """The C++ compiler to use ($CXX, else g++ or c++ on the PATH), or None."""
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def library(kernels):
    """The loaded library holding these kernels, compiling it on first use; None without a compiler
    (or where NumPy's array struct could not be read)."""
    if OFFSETS is None:
        _warn_once("this NumPy's array layout is not the one the fused kernels read")
        return None
    key = _key(kernels)
    lib = _loaded.get(key)
    if lib is None:
        size = sum(len(k.text) for k in {k.name: k for k in kernels}.values())
        parts = min(_cores(), MAX_PARTS) if size > SPLIT_FROM else 1
        lib = _load(f"gpuad_{key}.so", lambda path: _build(*host_sources(kernels, OFFSETS, parts), path, key))
        if lib is None:
            return None
        lib.gpuad_init(ctypes.c_void_p(id(numpy.ndarray)), _thread_pool())
        _loaded[key] = lib
    return lib


def loaded(kernels):
    """The library of these kernels where this process has loaded it already, else None (no build)."""
    return _loaded.get(_key(kernels)) if OFFSETS is not None else None


def timed_out(kernels):
    """Whether building these kernels' library ran past $GPUAD_COMPILE_TIMEOUT in this process."""
    return OFFSETS is not None and _key(kernels) in _timed_out


def _load(name, build):
    """The library `name` from the kernel cache, built first where it is missing or damaged
    (build(path) -> whether it built); where the cache cannot be used, from a private temporary
    folder; None where it cannot be built. One warning either way."""
    try:
        return _load_from(cache.folder(), name, build)
    except OSError as e:
        unusable = e
    try:
        lib = _load_from(cache.private(), name, build)
    except OSError as e:
        _warn_once(f"the fused kernels could not be built in the kernel cache ({unusable}) nor in a private "
                   f"temporary folder ({e})")
        return None
    if lib is not None:
        _warn_cache(unusable)
    return lib


def _load_from(where, name, build):
    path = where / name
    if not cache.intact(path) and not build(path):
        return None
    return ctypes.CDLL(str(path))


_pool = []  # the thread pool's library, or None where it could not be built


def _thread_pool():
    """The address of the run function of the process's thread pool (kernels/host_pool.cpp, built
    and loaded once, sized by `threads()`), which every kernel library is given; None where it
    cannot be built: the kernels then run in the caller's thread."""
    if not _pool:
        cxx, source = compiler(), _read("host_pool.cpp")
        key = hashlib.sha1(f"{cxx}\n{source}".encode()).hexdigest()
        _pool.append(cxx and _load(f"gpuad_pool_{key}.so", lambda path: _build_pool(cxx, source, path)))
        if _pool[0]:
            _pool[0].gpuad_pool_threads(threads())
    return ctypes.cast(_pool[0].gpuad_pool_run, ctypes.c_void_p) if _pool[0] else None


def set_threads(count):
    """Use `count` threads for the kernels from now on (at most; 1: the caller's alone). For the
    benchmarks, which compare thread counts in one process."""
    if _thread_pool() is not None:
        _pool[0].gpuad_pool_threads(int(count))


def _build_pool(cxx, source, path):
    try:
        with cache.workspace(path.parent) as tmp:
            (tmp / "pool.cpp").write_text(source)
            errors = _run([[cxx, "-O2", "-fPIC", "-shared", "-pthread", "-o", str(tmp / "pool.so"),
                            str(tmp / "pool.cpp")]], time.monotonic() + cache.compile_timeout())
            if not errors:
                cache.install(tmp / "pool.so", path)
                return True
    except _TimedOut:
        errors = ["it took longer than GPUAD_COMPILE_TIMEOUT"]
    warnings.warn(f"gpuad.jit: {cxx} could not compile the kernels' thread pool ({errors[0][-2000:]}); the fused "
                  "kernels run in the caller's thread", RuntimeWarning, stacklevel=5)
    return False


def cached(kernels):
    """Whether the library of these kernels is loaded or on disk: `library` runs no compiler."""
    if OFFSETS is None:
        return True  # `library` says at once why it cannot build
    key = _key(kernels)
    return key in _loaded or (cache.root() / f"gpuad_{key}.so").exists()  # checked again when loaded


def _key(kernels):
    """The name of these kernels' library: a hash of the prelude, of each kernel's text (hashed once
    per kernel: `cached`, then `library`, ask) and of the ISA flags (AVX2 alone: a file of its own).
    Nothing is rendered: the source is put together only to be compiled."""
    texts = "".join(sorted({_text_hash(k) for k in kernels}))
    return hashlib.sha1((_prelude_hash() + texts + " ".join(ISA)).encode()).hexdigest()


_text_hashes = weakref.WeakKeyDictionary()  # Kernel -> the hash of its text


def _text_hash(kernel):
    h = _text_hashes.get(kernel)
    if h is None:
        h = _text_hashes[kernel] = hashlib.sha1(kernel.text.encode()).hexdigest()
    return h


@functools.cache
def _prelude_hash():
    return hashlib.sha1(_prelude().encode()).hexdigest()


@functools.cache
def _prelude():
    """The prelude every source of this process starts with."""
    return host_sources([], OFFSETS)[0]


def _cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def threads():
    """The threads a large region is split over: $OMP_NUM_THREADS (its first level: the usual
    setting), at most the cores this process may run on, and only as many as half the address
    space left (ulimit -v) holds stacks for."""
    wanted = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    count = min(int(wanted) if wanted.isdigit() and int(wanted) > 0 else _cores(), _cores())
    room = _address_space_room()
    if room is None:
        return count
    stack = resource.getrlimit(resource.RLIMIT_STACK)[0]  # a thread's stack, glibc's default
    stack = 32 << 20 if stack == resource.RLIM_INFINITY else stack
    return max(1, min(count, 1 + room // 2 // stack))


class _TimedOut(Exception):
    pass


def _build(head, bodies, path, key):
    """Compile the sources (head + each body) side by side, one compiler process each, and link
    them into path (in a workspace of path's folder, then moved there by cache.install). False,
    having warned, where the compiler fails or takes longer than $GPUAD_COMPILE_TIMEOUT (then
    `key` is recorded for `timed_out`); OSError where the folder cannot take the files."""
    cxx = compiler()
    if cxx is None:
        _warn_once("no C++ compiler found (set CXX, or install g++)")
        return False
    deadline = time.monotonic() + cache.compile_timeout()
    try:
        with cache.workspace(path.parent) as tmp:
            out = tmp / "regions.so"
            for flags, libs in ((SIMD, ["-lmvec"]), (["-fopenmp-simd"], []), ([], [])):
                base = [cxx, *FLAGS, *flags]
                pch = _precompiled_once(base, head, path.parent, deadline) if flags is SIMD else None
                srcs = [tmp / f"regions{k}.cpp" for k in range(len(bodies))]
                for src, body in zip(srcs, bodies):
                    src.write_text((f'#include "{_PRELUDE}"\n' if pch else head) + body)
                include = ["-I", str(pch)] if pch else []
                errors = _run([[*base, *include, "-c", "-o", f"{src}.o", str(src)] for src in srcs], deadline)
                if not errors:
                    errors = _run([[*base, "-shared", "-o", str(out), *(f"{src}.o" for src in srcs), *libs]], deadline)
                if not errors:
                    cache.install(out, path)  # a concurrent process sees the whole file or none
                    return True
    except _TimedOut:
        _timed_out.add(key)
        _warn_once(f"{cxx} took longer than GPUAD_COMPILE_TIMEOUT ({cache.compile_timeout():g} s) to compile the "
                   "fused kernels (set it higher for large programs)")
        return False
    _warn_once(f"{cxx} could not compile the fused kernels:\n{errors[0][-2000:]}")
    return False


def _run(commands, deadline):
    """Run the commands side by side; the error output of those that failed. _TimedOut, with
    every one stopped (its whole process group: the compiler's own children too), past deadline."""
    jobs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
            for c in commands]
    try:
        return [err for job in jobs for err in [job.communicate(timeout=max(0.0, deadline - time.monotonic()))[1]]
                if job.returncode]
    except subprocess.TimeoutExpired:
        for job in jobs:
            with contextlib.suppress(OSError):
                os.killpg(job.pid, signal.SIGKILL)
            job.communicate()
        raise _TimedOut from None


_PRELUDE = "gpuad_prelude.h"
_headers = {}  # (compiler command, prelude, folder) -> a Future of _precompiled's folder
_headers_lock = threading.Lock()
_asked = set()  # ($CXX, the cache's folder) prepare has been called for


def prepare():
    """Start building the prelude's precompiled header (the first build's flags, in the kernel
    cache) on the build threads: gpuad.jit calls it as it starts tracing for the CPU, so that a
    cold cache's first library build, after the tracing and planning, finds it made (else it is
    built then: 0.4 s of the 400-step ODE's first call). Nothing where there is no compiler or
    cache, or it is under way or made."""
    asked = (os.environ.get("CXX"), cache.root())  # once each (a trace's cost: no PATH search, no stat)
    if asked in _asked:
        return
    _asked.add(asked)
    cxx = compiler()
    if cxx is None or OFFSETS is None:
        return
    try:
        where = cache.folder()
    except OSError:
        return
    base, head = [cxx, *FLAGS, *SIMD], _prelude()
    key = (tuple(base), head, str(where))
    with _headers_lock:
        if key not in _headers:
            deadline = time.monotonic() + cache.compile_timeout()
            _headers[key] = builds.submit(_precompiled_quietly, base, head, where, deadline)


def _precompiled_quietly(base, head, where, deadline):
    try:
        return _precompiled(base, head, where, deadline)
    except _TimedOut:
        return None


def _precompiled_once(base, head, where, deadline):
    """_precompiled's folder, from the build `prepare` started where it did (waited for)."""
    with _headers_lock:
        started = _headers.get((tuple(base), head, str(where)))
    return _precompiled(base, head, where, deadline) if started is None else started.result()


def _precompiled(base, head, where, deadline):
    """A folder in `where` holding the prelude and its precompiled header for these compiler flags
    (built once per machine, in the cache): a program's sources then include it instead of parsing
    <cmath> again (a third of a small program's compile time). None where it cannot be built; a header
    the compiler finds unusable is parsed as text instead, so nothing depends on it."""
    folder = where / f"pch_{hashlib.sha1((' '.join(base) + head).encode()).hexdigest()[:16]}"
    header, gch = folder / _PRELUDE, folder / f"{_PRELUDE}.gch"
    try:
        if cache.intact(header) and cache.intact(gch):
            return folder
        folder.mkdir(mode=0o700, exist_ok=True)
        cache.check(folder, folder=True)
        with cache.workspace(where) as tmp:  # each file appears whole or not at all
            (tmp / _PRELUDE).write_text(head)
            cache.install(tmp / _PRELUDE, header)
            if _run([[*base, "-x", "c++-header", "-o", str(tmp / gch.name), str(header)]], deadline):
                return None
            cache.install(tmp / gch.name, gch)
    except OSError:  # a cache that cannot take it: the sources carry the prelude as text
        return None
    return folder


def _warn_once(why):
    if not _warned:
        _warned.append(why)
        warnings.warn(f"gpuad.jit: {why}; compiled functions run without fused kernels on the CPU",
                      RuntimeWarning, stacklevel=4)


def _warn_cache(error):
    if not _warned_cache:
        _warned_cache.append(error)
        warnings.warn(f"gpuad.jit: the kernel cache cannot be used ({error}); the fused kernels are built in a "
                      "private temporary folder for this process (set GPUAD_CACHE_DIR to a folder of your own)",
                      RuntimeWarning, stacklevel=5)


def launcher(lib, kernel, reuse=()):
    """A function (*arrays) -> outputs running one region's kernel on NumPy arrays. Outputs in
    `reuse` are written into buffers kept from call to call (values the caller never lets out):
    large fresh buffers would be page-faulted in again at every call. Inputs the kernel cannot
    read in place (another byte order, misaligned, strides not whole items, not an ndarray) are
    copied first."""
    fn = getattr(lib, f"{kernel.name}_objects")
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.py_object] * (len(kernel.arrays) + len(kernel.outs))
    outs = [(v.shape, v.dtype.newbyteorder("=")) for v in kernel.outs]
    kept = [numpy.empty(s, d) if v in reuse else None for (s, d), v in zip(outs, kernel.outs)]
    dtypes = [numpy.dtype(a.dtype).newbyteorder("=") for a in kernel.arrays]

    def run(*arrays):
        results = [k if k is not None else numpy.empty(s, d) for k, (s, d) in zip(kept, outs)]
        if fn(*arrays, *results):
            arrays = [_readable(a, d) for a, d in zip(arrays, dtypes)]
            refused = fn(*arrays, *results)
            if refused:
                raise TypeError(f"gpuad.jit: a fused kernel cannot read its argument {refused - 1} "
                                f"({type(arrays[refused - 1]).__name__})")
        return results
    return run


def _readable(a, dtype):
    """a, or an array a kernel can read: an ndarray of dtype, aligned. An array of a subclass
    (gpuad.numpy's, which the kernels' type check refuses) is viewed as a plain one, not copied;
    else numpy.array copies into a fresh, aligned, C-ordered buffer in this machine's byte order."""
    if isinstance(a, numpy.ndarray) and type(a) is not numpy.ndarray:
        a = a.view(numpy.ndarray)
    if type(a) is numpy.ndarray and a.dtype == dtype and a.flags.aligned:
        return a
    return numpy.array(a, dtype)
