"""Memory bounds of a sweep: retry in halves on running out, and chunk_size="auto" on CuPy.

The retry logic is backend-agnostic (cupy.cuda.memory.OutOfMemoryError is a MemoryError), so
it is tested everywhere with a backend that runs out of memory above a number of directions;
the tests marked `gpu` run it against CuPy's real memory pool.
"""
import warnings

import numpy as np
import pytest
from helpers import assert_close, on_backend

import gpuad
import gpuad.numpy as gnp
from gpuad import backends

N = 10


def _f(x):
    return gnp.sin(x) * gnp.sum(x ** 2) + x[::-1]


def _expected():
    return gpuad.jacfwd(_f)(*on_backend(np.linspace(0.1, 1.0, N)))


def _limit_directions(monkeypatch, method, most):
    """Make the backend's fused elementwise hook `method` (which every elementwise JVP or VJP on
    arrays asks first) fail above `most` directions; returns the direction counts it saw."""
    be = backends.current()
    real, seen = getattr(be, method), []

    def limited(row, *args):
        # fused_jvp(row, primals, tangents), fused_vjp(row, args, y, ct, needed)
        k = next(t for t in args[1] if t is not None).shape[0] if method == "fused_jvp" else args[2].shape[0]
        seen.append(k)
        if k > most:
            raise MemoryError(f"simulated: {k} directions")
        return real(row, *args)
    monkeypatch.setattr(be, method, limited)
    return seen


@pytest.mark.parametrize("transform,method", [(gpuad.jacfwd, "fused_jvp"), (gpuad.jacrev, "fused_vjp")])
def test_out_of_memory_sweep_is_retried_in_halves_with_one_warning(monkeypatch, transform, method):
    expected = _expected()
    seen = _limit_directions(monkeypatch, method, most=3)
    with pytest.warns(RuntimeWarning, match="out of memory sweeping 10 directions at once; used chunks of 3") as w:
        jac = transform(_f)(*on_backend(np.linspace(0.1, 1.0, N)))
    assert len(w) == 1
    assert_close(jac, expected, rtol=1e-12, atol=1e-12)
    assert {10, 5} <= set(seen) and max(seen[seen.index(3):]) == 3  # once it fit, it stayed small


def test_out_of_memory_with_one_direction_is_raised(monkeypatch):
    _limit_directions(monkeypatch, "fused_jvp", most=0)
    with pytest.raises(MemoryError, match="simulated: 1 directions"):
        gpuad.jacfwd(_f)(*on_backend(np.linspace(0.1, 1.0, N)))


def test_the_size_that_fit_is_remembered(monkeypatch):
    seen = _limit_directions(monkeypatch, "fused_jvp", most=3)
    jac = gpuad.jacfwd(_f)
    with pytest.warns(RuntimeWarning, match="used chunks of 3"):
        jac(*on_backend(np.linspace(0.1, 1.0, N)))
    seen.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        jac(*on_backend(np.linspace(0.1, 1.0, N)))
    assert max(seen) == 3  # no sweep of more directions was tried again


@pytest.mark.parametrize("bad", [0, -1, 2.5, "big", True])
def test_chunk_size_must_be_a_positive_int_auto_or_none(bad):
    with pytest.raises(ValueError, match='positive int, "auto" or None'):
        gpuad.jacfwd(_f, chunk_size=bad)(*on_backend(np.linspace(0.1, 1.0, N)))


# ---------------------------------------------------------------- CuPy's memory pool

def _wide(b):
    """R^16 -> R^64 through 2^20 intermediates: a 64-direction sweep holds bundles of 512 MiB."""
    return lambda x: gnp.sum(gnp.reshape(gnp.tanh(b @ x), (64, -1)), axis=1)


@pytest.fixture
def pool_limit(cupy_backend):
    """Set CuPy's pool limit to what is in use now plus some bytes; lifted afterwards."""
    import cupy
    pool = cupy.get_default_memory_pool()
    pool.free_all_blocks()
    yield lambda extra: pool.set_limit(size=pool.used_bytes() + extra)
    pool.set_limit(size=0)


@pytest.mark.gpu
def test_cupy_out_of_memory_is_retried_in_halves(cupy_backend, pool_limit):
    import cupy
    rng = np.random.default_rng(0)
    b, x = cupy.asarray(rng.uniform(-1, 1, (2**20, 16)) / 4), cupy.asarray(rng.uniform(-1, 1, 16))
    expected = cupy.asnumpy(gpuad.jacrev(_wide(b))(x))
    pool_limit(700 * 2**20)  # one full sweep needs over 1 GiB, a half fits
    with pytest.warns(RuntimeWarning, match="used chunks of"):
        jac = gpuad.jacrev(_wide(b), chunk_size=64)(x)  # an int is not checked: the sweep runs out
    assert_close(cupy.asnumpy(jac), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.gpu
def test_cupy_one_sweep_past_the_pool_limit_is_refused(cupy_backend, pool_limit):
    import cupy
    rng = np.random.default_rng(0)
    b, x = cupy.asarray(rng.uniform(-1, 1, (2**20, 16)) / 4), cupy.asarray(rng.uniform(-1, 1, 16))
    pool_limit(700 * 2**20)
    with pytest.raises(MemoryError, match=r"a sweep of 64 directions needs about 2\.5 GiB .* pass chunk_size=\"auto\""):
        gpuad.jacrev(_wide(b))(x)


@pytest.mark.gpu
def test_cupy_auto_chunk_fits_the_pool_limit_up_front(cupy_backend, pool_limit):
    import cupy
    rng = np.random.default_rng(0)
    b, x = cupy.asarray(rng.uniform(-1, 1, (2**20, 16)) / 4), cupy.asarray(rng.uniform(-1, 1, 16))
    expected = cupy.asnumpy(gpuad.jacrev(_wide(b))(x))
    pool_limit(700 * 2**20)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no out-of-memory retry needed
        jac = gpuad.jacrev(_wide(b), chunk_size="auto")(x)
    assert_close(cupy.asnumpy(jac), expected, rtol=1e-12, atol=1e-12)
