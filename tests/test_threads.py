"""Threads: trace state is per thread (and per context), so several threads tracing programs,
compiling new jit functions and running eager transforms at once each get their own results,
equal to a single-threaded run's."""
import contextvars
import threading
import time

import numpy as np
from helpers import assert_close

import gpuad
import gpuad.numpy as gnp
from gpuad import core

X = np.array([0.3, -1.2, 0.7, 2.0])
C = np.array([1.0, 2.0, 3.0, 4.0])


def _f(x):
    return gnp.sin(x) * x[0] + gnp.exp(x[1:2]) * C


def _shapes():
    return gpuad.eval_shape(gpuad.jacfwd(_f), gpuad.ShapeDtypeStruct((4,), "float64"))


def _eye():
    return gnp.eye(3)


def _jacfwd():
    return gpuad.jacfwd(_f)(X)


def _jacrev():
    return gpuad.jacrev(_f)(X)


def _planned():
    """The program planned for CuPy (on any machine): its backend is this thread's alone."""
    return gpuad.jit(gpuad.jacfwd(_f)).lower(gpuad.ShapeDtypeStruct((4,), "float64"), backend="cupy").as_text()


def _compiled(k):
    """A new jit function at each call (a new trace and compilation), whose result depends on k."""
    return gpuad.jit(gpuad.jacrev(lambda x: gnp.sum(_f(x) * (k % 5 + 1))))(X)


WORK = {"eval_shape": _shapes, "eye": _eye, "jacfwd": _jacfwd, "jacrev": _jacrev, "lower": _planned,
        "backend": gpuad.backend}


def _check(name, got, want):
    if name in ("eval_shape", "lower", "backend"):
        assert got == want, (got, want)
    else:
        assert type(got) is type(want), f"{name} returned a {type(got).__name__}"
        assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_threads_tracing_compiling_and_running_eagerly_at_once():
    expected = {name: work() for name, work in WORK.items()}
    expected_compiled = {k: _compiled(k) for k in range(5)}
    errors, counts = [], {}
    names = ["eval_shape", "eval_shape", "eye", "jacfwd", "jacrev", "lower", "backend", "jit", "jit", "jit"]
    start = threading.Barrier(len(names))
    stop = time.monotonic() + 3.0

    def loop(name):
        start.wait()
        n = 0
        try:
            while time.monotonic() < stop:
                if name == "jit":
                    _check(name, _compiled(n), expected_compiled[n % 5])
                else:
                    _check(name, WORK[name](), expected[name])
                n += 1
        except BaseException as e:  # reported by the main thread
            errors.append((name, repr(e)))
        counts[name] = counts.get(name, 0) + n

    threads = [threading.Thread(target=loop, args=(name,)) for name in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:5]
    assert all(counts.get(name, 0) > 0 for name in set(names)), counts


def test_trace_stack_is_per_context():
    """A context copied inside a transform keeps its traces; a fresh one has none."""
    seen = []

    def inner(x):
        seen.append((len(core.trace_stack()), contextvars.Context().run(lambda: len(core.trace_stack()))))
        return gnp.sin(x)

    gpuad.jacfwd(inner)(X)
    assert seen == [(1, 0)]
    assert core.trace_stack() == ()


def test_a_new_signature_is_traced_and_compiled_once_whatever_the_threads():
    traced = []

    def f(x):
        traced.append(1)
        time.sleep(0.05)  # a long trace: the other threads arrive while it runs
        return gnp.sin(x) * 2.0

    compiled = gpuad.jit(f)
    start = threading.Barrier(6)
    results = [None] * 6

    def call(k):
        start.wait()
        results[k] = compiled(X)

    threads = [threading.Thread(target=call, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(traced) == 1
    for r in results:
        assert_close(r, np.sin(X) * 2.0, rtol=1e-15, atol=0)
