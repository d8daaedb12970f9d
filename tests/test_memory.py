"""The memory of Jacobian sweeps (gpuad/chunking.py): chunk_size="auto" sized before the first
sweep from the estimate and the available memory (faked here through the backend's
free_memory), the size remembered per input signature, chunk_size=None refusing before it
starts a sweep that cannot fit, chunks written into one result array, and a real run under an
address-space limit that one sweep would exceed.
"""
import os
import pathlib
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest
from helpers import assert_close, assert_tree_close, on_backend

import gpuad
import gpuad.numpy as gnp
from gpuad import api, backends, chunking

N = 10
BY_ROWS = {"jacfwd": False, "jacrev": True}


def _f(x):
    return gnp.sin(x) * gnp.sum(x ** 2) + x[::-1]


def _x(n=N):
    return on_backend(np.linspace(0.1, 1.0, n))


class _Log(list):
    def __init__(self):
        super().__init__()
        self.of = {"forward": [], "rows": [], "columns": []}

    def clear(self):
        super().clear()
        for v in self.of.values():
            v.clear()


@pytest.fixture
def sweeps(monkeypatch):
    """The number of directions of every sweep: forward runs, and sweeps of a recorded tape
    (also by kind in seen.of["forward" | "rows" | "columns"])."""
    seen = _Log()

    def spy(cls, name, directions):
        real = getattr(cls, name)

        def counted(self, *args):
            seen.append(directions(*args))
            seen.of[name].append(seen[-1])
            return real(self, *args)
        monkeypatch.setattr(cls, name, counted)
    spy(api.Call, "forward", lambda bundles, watch=None: bundles[0].shape[0])
    spy(api.Recording, "rows", lambda lo, hi: hi - lo)
    spy(api.Recording, "columns", lambda lo, hi: hi - lo)
    return seen


@pytest.fixture
def memory(monkeypatch):
    """memory(b) makes the backend report b bytes available; memory.asked counts its answers since."""
    def fake(b):
        fake.asked = 0

        def free_memory():
            fake.asked += 1
            return b
        monkeypatch.setattr(backends.current(), "free_memory", free_memory)
    return fake


def _room_for(name, k, n=N):
    """Available bytes in which "auto" fits exactly k of n directions (by the upper estimate)."""
    fp = api.Call(name, _f, _x(n), {}, 0, False).record().footprint(by_rows=BY_ROWS[name])
    return int((n * fp.result + k * fp.estimate) / chunking.AUTO_SHARE) + 1


def _chunks(k, n=N):
    return [k] * (n // k) + ([n % k] if n % k else [])


# ---------------------------------------------------------------- the available memory
def test_host_memory_is_the_least_of_meminfo_cgroup_and_address_space(monkeypatch):
    from gpuad.backends import numpy as host
    files = {"/proc/meminfo": "MemTotal:  9000000 kB\nMemAvailable:  8000000 kB\n",
             "/sys/fs/cgroup/memory.max": "6000000000\n", "/sys/fs/cgroup/memory.current": "1000000000\n"}
    limit = [host.resource.RLIM_INFINITY]
    monkeypatch.setattr(host, "_read", files.get)
    monkeypatch.setattr(host.resource, "getrlimit", lambda _: (limit[0], limit[0]))
    free = host.NumpyBackend().free_memory
    assert free() == 5 * 10**9                          # cgroup v2: limit minus usage
    files["/sys/fs/cgroup/memory.max"] = "max\n"
    assert free() == 8000000 * 1024                     # no limit: MemAvailable
    del files["/sys/fs/cgroup/memory.max"]
    files["/sys/fs/cgroup/memory/memory.limit_in_bytes"] = "3000000000\n"
    files["/sys/fs/cgroup/memory/memory.usage_in_bytes"] = "500000000\n"
    assert free() == 2500000000                         # cgroup v1
    files["/sys/fs/cgroup/memory/memory.limit_in_bytes"] = "9223372036854771712\n"
    limit[0], files["/proc/self/statm"] = 2 * 10**9, "100000 2000 300 0 0 0 0\n"
    assert free() == 2 * 10**9 - 100000 * host.resource.getpagesize()  # v1's "no limit"; ulimit -v
    files.clear()
    limit[0] = host.resource.RLIM_INFINITY
    assert free() is None                               # nothing to read: no bound


# ---------------------------------------------------------------- chunk_size="auto"
@pytest.mark.parametrize("name", list(BY_ROWS))
@pytest.mark.parametrize("k", [1, 3, 7, N])
def test_auto_fits_the_estimate_in_the_available_memory(name, k, sweeps, memory):
    transform = getattr(gpuad, name)
    expected = transform(_f)(*_x())
    memory(_room_for(name, k))
    sweeps.clear()
    jac = transform(_f, chunk_size="auto")(*_x())
    assert sweeps == _chunks(k)
    assert_close(jac, expected, rtol=1e-12, atol=1e-12)


def test_auto_remembers_the_size_per_input_signature(sweeps, memory, monkeypatch):
    records = []
    real = api.Call.record
    monkeypatch.setattr(api.Call, "record", lambda self: records.append(1) or real(self))
    jac = gpuad.jacfwd(_f, chunk_size="auto")
    memory(_room_for("jacfwd", 4))
    first = jac(*_x())
    records.clear()
    memory(10**15)  # plenty: one sweep, if it were asked
    sweeps.clear()
    again = jac(*_x())
    assert sweeps == _chunks(4) and memory.asked == 0 and not records  # straight to the size that fit
    assert_close(again, first, rtol=0, atol=0)
    sweeps.clear()
    jac(*_x(6))  # another signature is sized afresh
    assert sweeps == [6] and memory.asked == 1


@pytest.mark.parametrize("name", list(BY_ROWS))
def test_auto_keeps_a_chunk_within_a_share_of_the_jacobian(name, sweeps, memory, monkeypatch):
    """Plenty of memory: the chunks, not the memory, bound the sweep (the floor set aside)."""
    n = 400
    monkeypatch.setattr(chunking, "CHUNK_FLOOR", 0)
    fp = api.Call(name, _f, _x(n), {}, 0, False).record().footprint(by_rows=BY_ROWS[name])
    k = int(chunking.CHUNK_SHARE * n * fp.result // fp.estimate)
    assert 1 < k < n // 4
    memory(10**15)
    sweeps.clear()
    getattr(gpuad, name)(_f, chunk_size="auto")(*_x(n))
    assert sweeps == _chunks(k, n)


def test_auto_keeps_a_chunk_within_the_backends_chunk_bytes(sweeps, memory, monkeypatch):
    """On NumPy: chunks near the CPU's cache."""
    n = 400
    fp = api.Call("jacfwd", _f, _x(n), {}, 0, False).record().footprint(by_rows=False)
    monkeypatch.setattr(backends.current(), "auto_chunk_bytes", 37 * fp.estimate + 1)
    memory(10**15)
    sweeps.clear()
    gpuad.jacfwd(_f, chunk_size="auto")(*_x(n))
    assert sweeps == _chunks(37, n)


@pytest.mark.parametrize("fusion", ["on", "off"])
def test_auto_under_jit_sweeps_once_where_the_compiled_plan_fits(fusion, memory, monkeypatch):
    """A fused compiled sweep holds little beside its result: where the replay's plan for one
    sweep fits, "auto" sweeps once, though the estimate (of an unfused eager sweep) would chunk;
    unfused, the plan holds every bundle and does not fit, and the estimate's chunks are used."""
    monkeypatch.setenv("GPUAD_FUSION", fusion)
    memory(_room_for("jacfwd", 50, 400))
    text = gpuad.jit(gpuad.jacfwd(_f, chunk_size="auto")).lower(*_x(400)).as_text()
    assert ("concatenate" in text) == (fusion == "off")
    jac = gpuad.jit(gpuad.jacfwd(_f, chunk_size="auto"))(*_x(400))
    assert_close(jac, gpuad.jacfwd(_f)(*_x(400)), rtol=1e-14)


@pytest.mark.skipif(backends.backend() != "numpy", reason="tracemalloc sees host memory only")
def test_auto_peaks_near_the_jacobian_where_one_sweep_holds_several_times_it(monkeypatch):
    """The coupled map of the benchmarks: one forward sweep holds each intermediate's bundle."""
    def f(x):
        inner = x[1:-1] ** 2 * gnp.sin(x[:-2]) - 2.0 * x[1:-1] + gnp.exp(-x[2:])
        return gnp.concatenate([x[:1], inner, x[-1:]])
    monkeypatch.setattr(chunking, "CHUNK_FLOOR", 2**20)  # the floor as at a size 8x larger
    x = _x(1000)[0]
    peaks = []
    for chunk_size in (None, "auto"):
        tracemalloc.start()
        try:
            jac = gpuad.jacfwd(f, chunk_size=chunk_size)(x)
            peaks.append(tracemalloc.get_traced_memory()[1] / jac.nbytes)
        finally:
            tracemalloc.stop()
    assert peaks[0] > 3 and peaks[1] < 1.5, peaks


@pytest.mark.skipif(backends.backend() != "numpy", reason="fakes the host's /proc/meminfo")
def test_auto_fits_a_remembered_size_again_when_memavailable_drops(sweeps, monkeypatch):
    from gpuad.backends import numpy as host
    meminfo = {}
    monkeypatch.setattr(host, "_read", lambda path: meminfo.get(path))  # no cgroup, no statm
    monkeypatch.setattr(host.resource, "getrlimit", lambda _: (host.resource.RLIM_INFINITY,) * 2)
    monkeypatch.setattr(chunking, "CHECK_FROM", 0)  # the estimate of N directions is small

    def available(b):
        meminfo["/proc/meminfo"] = f"MemAvailable: {b // 1024 + 1} kB\n"
    expected = gpuad.jacfwd(_f)(*_x())
    jac = gpuad.jacfwd(_f, chunk_size="auto")
    # room for: 4 (fitted), 4 (still fits), 2 (fitted again), 3 (2 still fits: kept)
    for room, chunks in ((4, 4), (4, 4), (2, 2), (3, 2)):
        available(_room_for("jacfwd", room))
        sweeps.clear()
        assert_close(jac(*_x()), expected, rtol=0, atol=0)
        assert sweeps == _chunks(chunks)
    available(0)  # not even the Jacobian: refused before a sweep
    sweeps.clear()
    with pytest.raises(MemoryError, match="the Jacobian itself does not fit"):
        jac(*_x())
    assert sweeps == []


@pytest.mark.parametrize("name", list(BY_ROWS))
def test_auto_refuses_when_not_even_the_result_fits(name, sweeps, memory):
    memory(0)
    with pytest.raises(MemoryError, match="the Jacobian itself does not fit"):
        getattr(gpuad, name)(_f, chunk_size="auto")(*_x())
    assert sweeps == []


# ---------------------------------------------------------------- chunk_size=None
@pytest.mark.parametrize("name,hint", [
    ("jacfwd", 'pass chunk_size="auto"'), ("jacrev", 'pass chunk_size="auto"'),
    ("jacobian", 'pass chunk_size="auto"'), ("jacrev", "the Jacobian itself does not fit")])
def test_one_sweep_that_cannot_fit_is_refused_before_it_starts(name, hint, sweeps, memory):
    """4000 directions: the estimate is about 1 GiB, the Jacobian alone 122 MiB."""
    n = 4000
    fp = api.Call(name, _f, _x(n), {}, 0, False).record().footprint(by_rows=name != "jacfwd")
    need = fp.peak(n, n)
    available = need // 2 if "auto" in hint else 100 * 2**20
    assert fp.peak(1, n) <= available or "auto" not in hint
    memory(available)
    with pytest.raises(MemoryError, match=rf"{name}: a sweep of {n} directions needs about "
                       rf"{chunking.size_text(need)} .* but {chunking.size_text(available)} of memory is "
                       rf"available; {hint}"):
        getattr(gpuad, name)(_f)(*_x(n))
    assert sweeps == []


def _wide(b):
    """R^16 -> R^64 through 2^19 intermediates: small seeds and results, large bundles between."""
    return lambda x: gnp.sum(gnp.reshape(gnp.tanh(b @ x), (64, -1)), axis=1)


@pytest.mark.parametrize("name", ["jacfwd", "jacrev"])
def test_one_sweep_through_large_intermediates_is_refused(name, sweeps, memory, monkeypatch):
    records = []
    real = api.Call.record
    monkeypatch.setattr(api.Call, "record", lambda self: records.append(1) or real(self))
    rng = np.random.default_rng(0)
    jac = getattr(gpuad, name)(_wide(gnp.asarray(rng.uniform(-1, 1, (2**19, 16)))))
    x = gnp.asarray(rng.uniform(-1, 1, 16))
    memory(200 * 2**20)  # the estimate: 320 MiB (jacfwd, 16 directions), 1.25 GiB (jacrev, 64)
    for _ in range(2):
        with pytest.raises(MemoryError, match=f"{name}: a sweep of (16|64) directions needs about"):
            jac(x)
    if name == "jacrev":  # records anyway, and checks before it sweeps
        assert sweeps == [] and len(records) == 2
    else:  # starts watched: stops past 64 MiB of tangents, records once, and knows from then on
        assert sweeps == [16] and len(records) == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["jacfwd", "jacrev"])
def test_jit_checks_its_own_plan_not_the_estimate_of_a_sweep(name, memory):
    """Under gpuad.jit, chunk_size=None is checked against the compiled program's buffers (the
    Jacobian and little else once fused) instead of the estimate of an unfused sweep (8x more)."""
    n = 4000
    fp = api.Call(name, _f, _x(n), {}, 0, False).record().footprint(by_rows=BY_ROWS[name])
    jac = gpuad.jit(getattr(gpuad, name)(_f))
    planned = jac.lower(*_x(n)).peak_bytes
    assert 8 * n * n <= planned < 1.1 * 8 * n * n < fp.peak(n, n) / 4
    memory(fp.peak(n, n) // 2)
    with pytest.raises(MemoryError, match="a sweep of 4000 directions"):  # eager: the estimate
        getattr(gpuad, name)(_f)(*_x(n))
    assert_close(jac(*_x(n)), getattr(gpuad, name)(_f, chunk_size=500)(*_x(n)), rtol=1e-13)
    memory(planned - 1)
    with pytest.raises(MemoryError, match=rf"gpuad.jit: a call needs about {chunking.size_text(planned)} of "
                       r'buffers .* pass chunk_size="auto"'):
        jac(*_x(n))


def test_jit_without_a_sweep_does_not_suggest_chunk_size(memory):
    """A compiled function with no Jacobian inside (a plain outer product) has no chunk_size to pass."""
    x = gnp.asarray(np.linspace(0, 1, 3000))
    outer = gpuad.jit(lambda x: gnp.outer(x, x) + 1.0)
    planned = outer.lower(x).peak_bytes
    assert planned >= chunking.CHECK_FROM
    memory(planned - 1)
    with pytest.raises(MemoryError, match="compute it in smaller parts") as refused:
        outer(x)
    assert "chunk_size" not in str(refused.value)


def test_small_sweeps_do_not_ask_for_free_memory(memory):
    memory(0)
    gpuad.jacrev(_f)(*_x())  # far below chunking.CHECK_FROM: not checked, so nothing to refuse
    assert memory.asked == 0


# ---------------------------------------------------------------- the estimate
def _chain(x):
    for _ in range(100):
        x = gnp.sin(x)
    return gnp.concatenate([x, 2 * x])  # tall: jacobian sweeps its tape forward


def test_a_long_chain_is_estimated_by_what_is_alive_at_once():
    """The tape keeps 100 values; a sweep holds a few bundles at a time, and so does the estimate."""
    for by_rows in (False, True):
        fp = api.Call("jacobian", _chain, _x(), {}, 0, False).record().footprint(by_rows)
        assert fp.estimate <= 16 * 8 * N, fp.estimate  # the tape's values take over 100 * 8 * N


@pytest.mark.skipif(backends.backend() != "numpy", reason="tracemalloc sees host memory only")
def test_a_forward_sweep_of_a_tape_drops_tangents_after_their_last_use():
    x = _x(200)[0]
    tracemalloc.start()
    try:
        jac = gpuad.jacobian(_chain)(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    bundle = 200 * x.nbytes
    assert jac.nbytes == 2 * bundle and peak < 12 * bundle  # not the 100 tangents of the tape


# ---------------------------------------------------------------- nested transforms
def _g(x):  # R^5 -> R^4
    return gnp.stack([gnp.sum(gnp.sin(x) * x), x[0] * x[1] * x[2], gnp.prod(x), gnp.sum(x ** 3) * x[4]])


def test_hessian_chunks_both_of_its_levels(sweeps):
    x = _x(5)
    expected = gpuad.hessian(_g)(*x)
    sweeps.clear()
    H = gpuad.hessian(_g, chunk_size=2)(*x)
    assert sweeps.count(2) == 2 + 3 * 2 and sweeps.count(1) == 1  # jacfwd: 2, 2, 1; each run: rows 2, 2
    assert_close(H, expected, rtol=1e-12, atol=1e-12)


def test_jacrev_of_hessian_chunks_every_level_in_little_memory(sweeps, memory):
    x = _x(6)
    expected = gpuad.jacrev(gpuad.hessian(gnp.prod))(*x)
    memory(64 * 2**10)
    sweeps.clear()
    T = gpuad.jacrev(gpuad.hessian(gnp.prod, chunk_size="auto"), chunk_size="auto")(*x)
    outer = [k for k in sweeps.of["rows"] if k > 1]  # the inner jacrev of a scalar sweeps one row
    assert sum(outer) == 36 and len(outer) > 1
    assert_close(T, expected, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- one result array
def _tree_f(p):
    return {"u": gnp.sin(p["a"]) * p["b"][0], "v": (gnp.sum(p["a"] ** 2), p["b"] * p["a"][0, 0])}


@pytest.mark.parametrize("transform", [gpuad.jacfwd, gpuad.jacrev, gpuad.jacobian])
@pytest.mark.parametrize("chunk_size", [1, 2, 3, 4, 10, 11])
def test_chunks_of_pytrees_fill_the_same_jacobian(transform, chunk_size):
    rng = np.random.default_rng(0)
    p = {"a": gnp.asarray(rng.normal(size=(2, 3))), "b": gnp.asarray(rng.normal(size=4))}  # n = 10, m = 11
    assert_tree_close(transform(_tree_f, chunk_size=chunk_size)(p), transform(_tree_f)(p), rtol=0, atol=0)


@pytest.mark.skipif(backends.backend() != "numpy", reason="tracemalloc sees host memory only")
@pytest.mark.parametrize("transform", [gpuad.jacfwd, gpuad.jacrev])
def test_chunked_peak_is_the_result_and_one_chunk(transform):
    x = _x(1000)[0]
    tracemalloc.start()
    try:
        jac = transform(gnp.sin, chunk_size=50)(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * jac.nbytes  # the chunks and their concatenation would hold it twice


# ---------------------------------------------------------------- a real limit
UNDER_A_LIMIT = """
    import resource, warnings
    resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))
    import numpy as np
    import gpuad, gpuad.numpy as gnp
    gpuad.set_backend("numpy")
    n = 5000                     # the Jacobian takes 191 MiB; one sweep over 1 GiB
    x = np.linspace(0.1, 1.0, n)
    f = lambda x: gnp.sin(x) * gnp.sum(x ** 2) + x[::-1]
    v = np.cos(np.arange(n))     # J @ v in closed form, without an n x n array
    jv = np.cos(x) * np.sum(x ** 2) * v + 2 * np.sin(x) * (x @ v) + v[::-1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sized before the sweep: no retry, no warning
        J = gpuad.jacfwd(f, chunk_size="auto")(x)
    assert np.allclose(J @ v, jv, rtol=1e-12, atol=1e-9)
    del J
    try:
        gpuad.jacfwd(f)(x)
        raise SystemExit("one sweep of 5000 directions was not refused")
    except MemoryError as e:     # refused before it starts
        assert "a sweep of 5000 directions needs about" in str(e), e
    J = gpuad.jit(gpuad.jacfwd(f))(x)  # compiled, one sweep fits: fused, it holds little beside J
    assert np.allclose(J @ v, jv, rtol=1e-12, atol=1e-9)
    print("ok")
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's")
def test_auto_completes_where_one_sweep_would_run_out_of_address_space():
    root = pathlib.Path(gpuad.__file__).parents[1]
    env = dict(os.environ, PYTHONPATH=str(root), OPENBLAS_NUM_THREADS="1", GPUAD_BACKEND="numpy")
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(UNDER_A_LIMIT)], env=env, cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


# ---------------------------------------------------------------- the host allocator
def test_the_numpy_backend_keeps_freed_memory_unless_told_otherwise(monkeypatch):
    from gpuad.backends import numpy as host
    calls = []

    class Libc:
        def mallopt(self, param, value):
            calls.append((param, value))
            return 1
    monkeypatch.setattr(host.ctypes, "CDLL", lambda name: Libc())
    for v in ("GPUAD_MALLOC",) + host._GLIBC_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    assert host.keep_freed_memory()
    assert calls == [(host.M_MMAP_THRESHOLD, 32 << 20), (host.M_TRIM_THRESHOLD, 256 << 20)]
    for name, value in (("GPUAD_MALLOC", "default"), ("MALLOC_TRIM_THRESHOLD_", "0")):
        calls.clear()
        with monkeypatch.context() as m:
            m.setenv(name, value)
            assert not host.keep_freed_memory() and not calls  # the user's choice stands


TEMPORARIES_AGAIN = """
    import resource
    import numpy as np
    import gpuad
    gpuad.set_backend("numpy")

    def temporaries():
        a = [np.ones(2 << 20) for _ in range(8)]  # 8 x 16 MiB, freed together: the heap's top
        del a
    temporaries()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    temporaries()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_temporaries_of_a_later_call_are_not_faulted_in_again():
    root = pathlib.Path(gpuad.__file__).parents[1]
    faults = []
    for policy in ("gpuad", "default"):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
        env.update(PYTHONPATH=str(root), GPUAD_MALLOC=policy)
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(TEMPORARIES_AGAIN)], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        faults.append(int(done.stdout))
    assert faults[0] < 100 < 1000 < faults[1], faults  # 128 MiB is 32768 pages
