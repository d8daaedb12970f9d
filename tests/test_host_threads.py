"""The threads the CPU kernels split large regions over (kernels/host_pool.cpp): never more than the
cores or than the address space left holds stacks for (a thread that cannot be created must not
end the process), and right when several Python threads run large regions at once. Their speed on
a shared machine is measured by bench/contention.py."""
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_close

import gpuad
import gpuad.numpy as gnp
from gpuad.compiler import host

pytestmark = pytest.mark.skipif(gpuad.backend() != "numpy" or host.compiler() is None,
                                reason="the CPU kernels: NumPy backend and a C++ compiler")


@pytest.mark.slow
def test_many_threads_asked_for_under_an_address_space_limit_do_not_end_the_process():
    """OMP_NUM_THREADS=64 with 300 MB of address space left: 64 stacks of 8 MB do not fit."""
    code = """
        import resource, numpy as np, gpuad, gpuad.numpy as gnp
        size = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (size + (300 << 20), resource.RLIM_INFINITY))
        resource.setrlimit(resource.RLIMIT_STACK, (8 << 20, resource.RLIM_INFINITY))
        x = np.linspace(0, 1, 600_000)
        y = gpuad.jit(lambda x: gnp.sin(x) * 2.0 + x * x)(x)
        assert np.allclose(y, np.sin(x) * 2 + x * x, rtol=1e-14)
        print("ok")
    """
    env = dict(os.environ, OMP_NUM_THREADS="64", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          cwd=Path(__file__).parents[1], timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr


def test_threads_are_capped_by_the_cores_and_the_room_for_stacks(monkeypatch):
    import resource
    stack = resource.getrlimit(resource.RLIMIT_STACK)[0]
    stack = 32 << 20 if stack == resource.RLIM_INFINITY else stack
    monkeypatch.setattr(host, "_cores", lambda: 64)
    monkeypatch.setattr(host, "_address_space_room", lambda: None)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert host.threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "256")
    assert host.threads() == 64
    for room in (0, stack, 20 * stack):
        monkeypatch.setattr(host, "_address_space_room", lambda room=room: room)
        count = host.threads()
        assert 1 <= count and (count - 1) * stack <= room / 2 and (count == 64 or count * stack > room / 2)


@pytest.mark.slow
def test_python_threads_running_large_regions_at_once_get_their_own_results():
    x = np.linspace(-1, 1, 300_000)
    functions = [gpuad.jit(lambda x: gnp.sin(x) * 2.0 + x * x), gpuad.jit(lambda x: gnp.exp(x * 0.5) - x)]
    for f in functions:
        f(x)  # built before the threads start
    failures = []

    def call(k):
        for j in range(20):
            f, scale = functions[(k + j) % 2], 1.0 + k
            try:
                got = f(x * scale)
                want = np.sin(x * scale) * 2 + (x * scale) ** 2 if (k + j) % 2 == 0 else \
                    np.exp(x * scale * 0.5) - x * scale
                assert_close(got, want, rtol=1e-13)
            except AssertionError as e:
                failures.append(e)
    threads = [threading.Thread(target=call, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def _large_region_in_a_child(queue):
    x = np.linspace(-1, 1, 300_000)
    error = float(np.max(np.abs(_COMPILED(x) - (np.sin(x) * 2 + x * x))))
    threads = int(Path("/proc/self/status").read_text().split("Threads:")[1].split()[0])
    queue.put((error, threads))  # the threads counted before the queue starts its own


_COMPILED = gpuad.jit(lambda x: gnp.sin(x) * 2.0 + x * x)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="counts threads in /proc")
def test_a_forked_child_runs_large_regions_with_a_pool_of_its_own():
    import multiprocessing
    _COMPILED(np.linspace(-1, 1, 300_000))  # the parent's pool started
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_large_region_in_a_child, args=(queue,))
    child.start()
    child.join(120)
    error, threads = queue.get(timeout=5)
    assert child.exitcode == 0 and error < 1e-12
    assert threads >= host.threads(), "the child split the region over fewer threads than it may use"
