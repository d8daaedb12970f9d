"""The CPU kernels' cache (gpuad/kernels/cache.py): private whatever the umask, never trusting a
folder or file another user could have written, checking each file's recorded hash before use
(a damaged library is rebuilt), and falling back instead of raising: a cache that cannot be used
gives one warning and a build in a private temporary folder; where nothing can be built, the
unfused replay answers. File system failures are simulated where a real one would be slow or
need another user; `ulimit -f` and killed builds run in real subprocesses."""
import errno
import io
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_close

import gpuad
import gpuad.numpy as gnp
from gpuad.compiler import host
from gpuad.compiler.replay import Replay
from gpuad.kernels import cache

pytestmark = pytest.mark.skipif(gpuad.backend() != "numpy" or host.compiler() is None or os.name != "posix",
                                reason="the CPU kernels' cache: NumPy backend, a C++ compiler, POSIX")
_X = np.linspace(-1, 1, 9)


def _f(x):
    return gnp.sin(x) * 2.0 + x * x


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """A process as if new: no kernels loaded, nothing warned (the thread pool stays: loading it
    again would start more threads); the cache in tmp_path/cache (made by gpuad)."""
    monkeypatch.setattr(host, "_loaded", {})
    monkeypatch.setattr(host, "_warned", [])
    monkeypatch.setattr(host, "_warned_cache", [])
    monkeypatch.setattr(cache, "_private", [])
    monkeypatch.setenv("GPUAD_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "host"


def _replay(f=_f, x=_X):
    """The replay of f's program (fused where the kernels build), checked against eager."""
    replay = Replay(gpuad.jit(f).lower(x).program)
    assert_close(replay.run(x)[0], f(gnp.asarray(x)), rtol=1e-14)
    return replay


def _files(folder):
    return sorted(p.name for p in Path(folder).rglob("*") if p.is_file()) if Path(folder).exists() else []


@contextmanager
def _one_warning(match):
    """A context checking that exactly one warning is given, a RuntimeWarning matching `match`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    assert [w.category for w in caught] == [RuntimeWarning], [str(w.message) for w in caught]
    assert re.search(match, str(caught[0].message)), str(caught[0].message)


# ---------------------------------------------------------------- private, owned, unwritable by others
def test_the_cache_is_private_whatever_the_umask(fresh):
    old = os.umask(0)
    try:
        assert _replay().regions == 1
    finally:
        os.umask(old)
    for path in [fresh.parent, fresh, *fresh.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert not mode & 0o077 if path.is_dir() else not mode & 0o022, f"{path}: {oct(mode)}"
    assert any(name.endswith(".so") for name in _files(fresh))
    assert all(name + ".sha256" in _files(fresh) for name in _files(fresh) if not name.endswith(".sha256"))


@pytest.mark.parametrize("why", ["writable by others", "another user's"])
def test_a_cache_another_user_could_have_written_is_not_used(fresh, monkeypatch, why):
    fresh.mkdir(parents=True)
    if why == "writable by others":
        os.chmod(fresh, 0o777)
        match = "can be written by other users"
    else:
        monkeypatch.setattr(os, "getuid", lambda: os.stat(fresh).st_uid + 1)
        match = "belongs to another user"
    with _one_warning(match):
        assert _replay().regions == 1  # built in the private folder instead
    assert _files(fresh) == []
    assert _files(cache.private()) and stat.S_IMODE(cache.private().stat().st_mode) == 0o700


def _marker_library(path, marker):
    """A library that, loaded, writes `marker`: what another user could plant."""
    src = path.with_suffix(".cpp")
    src.write_text(f'#include <cstdio>\n__attribute__((constructor)) static void planted() '
                   f'{{ std::fclose(std::fopen("{marker}", "w")); }}\n')
    subprocess.run([host.compiler(), "-shared", "-fPIC", "-o", str(path), str(src)], check=True)
    src.unlink()


def _built_by_another_process(fresh):
    """The cache filled by another process (one that loaded a library keeps it mapped: its file
    must not change under it)."""
    done = _python(_SCRIPT, dict(os.environ, GPUAD_CACHE_DIR=str(fresh.parent)))
    assert done.returncode == 0 and done.stdout.startswith("0"), done.stdout + done.stderr


@pytest.mark.slow
def test_a_library_or_prelude_replaced_behind_the_caches_back_is_rebuilt_not_run(fresh, tmp_path, monkeypatch):
    _built_by_another_process(fresh)
    monkeypatch.setattr(host, "_pool", [])  # the thread pool's library loaded from this cache too
    marker = tmp_path / "planted-ran"
    for library in fresh.glob("gpuad_*.so"):
        _marker_library(library, marker)
    for prelude in fresh.glob("pch_*/gpuad_prelude.h"):
        prelude.write_text(prelude.read_text() + f'\n#include <cstdio>\n__attribute__((constructor)) static void '
                                                 f'planted() {{ std::fclose(std::fopen("{marker}", "w")); }}\n')
    assert _replay().regions == 1
    _replay(lambda x: gnp.cos(x) - x)  # a new library, built with the prelude
    assert not marker.exists()
    assert all(cache.intact(p) for p in fresh.rglob("*") if p.is_file() and p.suffix != ".sha256")


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "overwritten"])
def test_a_damaged_library_is_detected_and_rebuilt(fresh, damage):
    _built_by_another_process(fresh)
    (library,) = fresh.glob("gpuad_[0-9a-f]*.so")  # the kernels (beside the thread pool)
    data = library.read_bytes()
    library.write_bytes(data[:len(data) // 3] if damage == "truncated" else
                        data[:4096] + b"\xff" * 64 + data[4096 + 64:])  # same size, code overwritten
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _replay().regions == 1
    assert library.read_bytes() == data and cache.intact(library)


# ---------------------------------------------------------------- failures fall back, with one warning
def _failing(monkeypatch, under, code, ops=("mkdir", "open", "replace")):
    """Make writes under `under` fail with errno `code` (a read-only or full file system)."""
    def fails(path):
        return Path(os.path.abspath(path)).is_relative_to(under)

    def refuse(path):
        raise OSError(code, os.strerror(code), str(path))
    real_mkdir, real_replace, real_open = os.mkdir, os.replace, io.open
    if "mkdir" in ops:
        monkeypatch.setattr(os, "mkdir", lambda p, *a, **k: refuse(p) if fails(p) else real_mkdir(p, *a, **k))
    if "replace" in ops:
        monkeypatch.setattr(os, "replace", lambda s, d, **k: refuse(d) if fails(d) else real_replace(s, d, **k))
    monkeypatch.setattr(io, "open", lambda p, mode="r", *a, **k: refuse(p) if isinstance(p, (str, Path)) and fails(p)
                        and set(mode) & set("wax+") else real_open(p, mode, *a, **k))


@pytest.mark.parametrize("case", ["read-only", "full disk", "regular file", "unwritable HOME"])
def test_a_cache_that_cannot_be_used_gives_one_warning_and_a_private_build(fresh, monkeypatch, case):
    if case == "read-only":
        fresh.mkdir(parents=True)
        _failing(monkeypatch, fresh, errno.EROFS)
    elif case == "full disk":
        _failing(monkeypatch, fresh, errno.ENOSPC, ops=("open",))
    elif case == "regular file":
        fresh.parent.write_text("not a folder")
    else:
        monkeypatch.delenv("GPUAD_CACHE_DIR")
        monkeypatch.setenv("HOME", "/proc/gpuad-no-such-home")
    with _one_warning("kernel cache cannot be used"):
        assert _replay().regions == 1
    assert any(name.endswith(".so") for name in _files(cache.private()))


def test_where_nothing_can_be_written_the_unfused_replay_answers_with_one_warning(fresh, monkeypatch):
    _failing(monkeypatch, "/", errno.ENOSPC, ops=("open",))
    with _one_warning("could not be built in the kernel cache .* nor in a private temporary folder"):
        assert _replay().regions == 0


def test_a_build_crosses_no_file_systems(fresh, monkeypatch):
    """os.replace across file systems fails with EXDEV (a tmpfs /tmp, the cache on disk): a
    library is built in its cache folder, so nothing moves across (simulated: any move from
    another folder fails)."""
    real_replace = os.replace

    def replace(src, dst, **kwargs):
        if not Path(src).resolve().is_relative_to(Path(dst).resolve().parent):
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        return real_replace(src, dst, **kwargs)
    monkeypatch.setattr(os, "replace", replace)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _replay().regions == 1
    assert any(name.endswith(".so") for name in _files(fresh))


def _fake_compiler(tmp_path, seconds):
    cxx = tmp_path / "slow-c++"
    cxx.write_text(f"#!/bin/sh\nsleep {seconds}\n")
    cxx.chmod(0o700)
    return str(cxx)


def test_a_compiler_that_hangs_is_stopped_at_the_time_limit(fresh, monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", _fake_compiler(tmp_path, 60))
    monkeypatch.setenv("GPUAD_COMPILE_TIMEOUT", "0.5")
    start = time.monotonic()
    with _one_warning("longer than GPUAD_COMPILE_TIMEOUT"):
        assert _replay().regions == 0
    assert time.monotonic() - start < 20
    assert not [name for name in _files(fresh) if name.endswith((".so", ".gch", ".o"))]  # nor a workspace
    assert not list(fresh.rglob("build-*"))


def test_after_a_build_past_the_time_limit_no_region_is_built_alone(fresh, monkeypatch, tmp_path):
    """A program of two regions whose build times out runs unfused at once, with the one warning:
    probing each region alone would give each a timeout of its own."""
    w = gnp.asarray(np.linspace(0.5, 1.5, 81).reshape(9, 9))

    def f(x):
        return gnp.cos(w @ (gnp.sin(x) * 2.0 + x) + 1.0) * x  # a region before the matmul and one after
    monkeypatch.setenv("CXX", _fake_compiler(tmp_path, 60))
    monkeypatch.setenv("GPUAD_COMPILE_TIMEOUT", "0.5")
    builds, build = [], host._build
    monkeypatch.setattr(host, "_build", lambda *args: builds.append(args) or build(*args))
    with _one_warning("longer than GPUAD_COMPILE_TIMEOUT"):
        assert _replay(f).regions == 0
    assert len(builds) == 1


def test_a_bad_time_limit_is_refused_clearly(monkeypatch):
    monkeypatch.setenv("GPUAD_COMPILE_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="GPUAD_COMPILE_TIMEOUT must be a number of seconds"):
        cache.compile_timeout()


def _python(code, env, preexec=None):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          cwd=Path(__file__).parents[1], preexec_fn=preexec, timeout=120)


_SCRIPT = """
    import warnings, numpy as np, gpuad, gpuad.numpy as gnp
    x = np.linspace(-1, 1, 9)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        y = gpuad.jit(lambda x: gnp.sin(x) * 2.0 + x * x)(x)
    assert np.allclose(y, np.sin(x) * 2 + x * x, rtol=1e-14), y
    print(len(w), *[str(m.message).splitlines()[0] for m in w])
"""


@pytest.mark.slow
def test_under_a_file_size_limit_the_call_answers_with_one_warning(tmp_path):
    """ulimit -f: the sources cannot be written (EFBIG; the compiler would be killed by SIGXFSZ)."""
    import resource
    env = dict(os.environ, GPUAD_CACHE_DIR=str(tmp_path / "cache"), TMPDIR=str(tmp_path))
    done = _python(_SCRIPT, env, lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("1 gpuad.jit:"), done.stdout


@pytest.mark.slow
def test_a_killed_build_leaves_nothing_in_the_cache(fresh, tmp_path):
    env = dict(os.environ, GPUAD_CACHE_DIR=str(fresh.parent), CXX=_fake_compiler(tmp_path, 5))
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_SCRIPT)], env=env, cwd=Path(__file__).parents[1],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not list(fresh.glob("build-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert list(fresh.glob("build-*")), "the build did not start"
    assert not list(fresh.rglob("*.so")) and not list(fresh.rglob("*.gch"))
    _replay()  # the next build clears what the killed one left
    assert not list(fresh.rglob("build-*")) and cache.intact(next(fresh.glob("gpuad_*.so")))


def test_tracing_for_the_cpu_builds_the_precompiled_prelude_before_any_kernel_is_asked_for(fresh, monkeypatch):
    """A cold cache's first build finds the header ready: gpuad.jit starts it as it traces."""
    monkeypatch.setattr(host, "_headers", {})
    monkeypatch.setattr(host, "_asked", set())
    gpuad.jit(_f).lower(_X)  # traced and planned: nothing compiled yet
    assert len(host._headers) == 1
    folder = next(iter(host._headers.values())).result()
    assert folder is not None and (folder / "gpuad_prelude.h.gch").exists()
    assert not [name for name in _files(fresh) if name.endswith(".so")]
    _replay()  # the library's build uses that header: no second one made
    assert len([p for p in Path(fresh).glob("pch_*")]) == 1
