"""The on-disk kernel cache: the CPU kernels' libraries (gpuad/compiler/host.py, folder "host") and
the CUDA kernels' CUBINs (gpuad/kernels/nvrtc.py, folder "cuda"): where it is, whether it can be
trusted, and how a file enters it.

A library is code this process will run, so the cache is private: its folders are made 0700 and
used only while they belong to this user and no one else can write to them (else the builds go to
a private temporary folder, with one warning). Each file has its content's SHA-256 beside it
(`<name>.sha256`), checked before the file is used: a truncated or overwritten library is rebuilt.
Files are built in a workspace inside the folder they go to (one file system: os.replace cannot
fail with EXDEV) and enter by os.replace, so a reader sees a whole file or none; workspaces left
by killed processes are removed by the next build.
"""
import atexit
import hashlib
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path

_WORKSPACE = "build-"  # a build's folder: build-<pid>-<random>
_private = []


class Unsafe(OSError):
    """A cache folder or file that this process must not use."""


def root(kind="host"):
    """The configured folder of one kind of kernel file ("host": the CPU libraries, "cuda": the
    CUBINs): $GPUAD_CACHE_DIR/<kind>, else ~/.cache/gpuad/<kind>."""
    return Path(os.environ.get("GPUAD_CACHE_DIR") or Path.home() / ".cache" / "gpuad") / kind


def folder(kind="host"):
    """The configured cache folder of `kind`, made 0700 where missing; Unsafe (an OSError) where it
    is not a folder of this user's that only they can write, another OSError where it cannot be made."""
    path = root(kind)
    for level in (path.parent, path):
        if not level.exists():
            level.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(level, 0o700)  # whatever the umask
        check(level, folder=True)
    return path


def private():
    """A folder of this process's own (0700, in the system's temporary folder), removed at exit."""
    if not _private:
        _private.append(Path(tempfile.mkdtemp(prefix="gpuad-kernels-")))
        atexit.register(shutil.rmtree, _private[0], True)
    return _private[0]


def check(path, folder=False):
    """Unsafe where path is not a folder (or a regular file) of this user's that no one else can write."""
    info = os.stat(path)
    kind = stat.S_ISDIR(info.st_mode) if folder else stat.S_ISREG(info.st_mode)
    if not kind:
        raise Unsafe(f"{path} is not a {'folder' if folder else 'regular file'}")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise Unsafe(f"{path} belongs to another user (uid {info.st_uid})")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise Unsafe(f"{path} can be written by other users (mode {stat.filemode(info.st_mode)})")


def intact(path):
    """Whether path is there with the content its hash file records (False where either is missing
    or they differ: a damaged file, to be built again); Unsafe where either is another's."""
    record = _record(path)
    if not (path.exists() and record.exists()):
        return False
    check(path)
    check(record)
    return record.read_text().strip() == _digest(path)


def install(built, path):
    """Move the file `built` (in a workspace of path's folder) to path, its hash recorded first."""
    os.chmod(built, 0o700)
    record = built.with_name(built.name + ".sha256")
    record.write_text(_digest(built) + "\n")
    os.chmod(record, 0o600)
    os.replace(record, _record(path))
    os.replace(built, path)


@contextmanager
def workspace(where):
    """A fresh folder inside `where` for one build, removed after it (and, first, those of
    processes that no longer run)."""
    for old in where.glob(f"{_WORKSPACE}*"):
        if not _running(old.name.split("-")[1]):
            shutil.rmtree(old, ignore_errors=True)
    space = Path(tempfile.mkdtemp(prefix=f"{_WORKSPACE}{os.getpid()}-", dir=where))
    try:
        yield space
    finally:
        shutil.rmtree(space, ignore_errors=True)


def compile_timeout():
    """Seconds a compilation may take ($GPUAD_COMPILE_TIMEOUT, default 600): past it the build is
    stopped and the program runs unfused."""
    value = os.environ.get("GPUAD_COMPILE_TIMEOUT", "600")
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"GPUAD_COMPILE_TIMEOUT must be a number of seconds, not {value!r}") from None
    if not seconds > 0:
        raise ValueError(f"GPUAD_COMPILE_TIMEOUT must be positive, not {value!r}")
    return seconds


def _record(path):
    return path.with_name(path.name + ".sha256")


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _running(pid):
    """Whether a process of this id runs (a workspace's builder); True where it cannot be told."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except OSError:
        return True
    return True
