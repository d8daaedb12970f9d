"""The CuPy backend up to its first device allocation, without a GPU: CI checks what reaches
CuPy's entry points (cupy.asarray, cupy.from_dlpack) for each kind of input. A GPU run checks
the rest (tests/test_gpu.py)."""
import numpy as np
import pytest

cupy = pytest.importorskip("cupy")
from gpuad.backends.cupy import CupyBackend  # noqa: E402 (needs cupy)


class _Producer:
    """Another library's array, as DLPack sees it: memory on one device."""
    def __init__(self, array, device_type):
        self._array, self._device = array, device_type

    def __dlpack__(self, **kwargs):
        return self._array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return (self._device, 0)


@pytest.fixture
def entry_points(monkeypatch):
    """cupy.asarray and cupy.from_dlpack replaced by recorders: [(name, argument)]. from_dlpack
    keeps CuPy's refusal of host memory, asarray returns its argument instead of allocating."""
    calls, real_from_dlpack = [], cupy.from_dlpack

    def from_dlpack(x, *args, **kwargs):
        calls.append(("from_dlpack", x))
        if x.__dlpack_device__()[0] == 1:
            return real_from_dlpack(x)  # raises TypeError, as on a GPU machine
        return x

    def asarray(x, dtype=None, **kwargs):
        calls.append(("asarray", x))
        return x
    monkeypatch.setattr(cupy, "from_dlpack", from_dlpack)
    monkeypatch.setattr(cupy, "asarray", asarray)
    return calls


@pytest.mark.parametrize("make", [lambda a: a, lambda a: _Producer(a, 1), lambda a: _Producer(a, 3)],
                         ids=["numpy", "cpu-dlpack", "cuda-host-dlpack"])
def test_host_arrays_reach_the_device_through_numpy_with_one_copy(entry_points, make):
    host = np.arange(6.0).reshape(2, 3)
    CupyBackend().asarray(make(host))
    assert [name for name, _ in entry_points] == ["asarray"]
    copied = entry_points[0][1]
    assert type(copied) is np.ndarray and np.shares_memory(copied, host)  # no copy on the host


@pytest.mark.parametrize("device_type", [2, 13], ids=["cuda", "cuda-managed"])
def test_device_arrays_are_taken_by_dlpack(entry_points, device_type):
    device_array = _Producer(np.arange(3.0), device_type)
    CupyBackend().asarray(device_array)
    assert [name for name, _ in entry_points] == ["from_dlpack", "asarray"]
    assert entry_points[0][1] is device_array


def test_numpy_arrays_are_coerced_numpy_scalars_pass(entry_points):
    be = CupyBackend()
    assert be.coerce(np.float32(2.0)) == 2.0 and entry_points == []  # CuPy takes NumPy scalars as scalars
    be.coerce(np.ones(2))
    assert [name for name, _ in entry_points] == ["asarray"]


def test_memory_no_backend_reads_is_refused_with_a_clear_error(entry_points):
    with pytest.raises(TypeError, match="DLPack device 10.*cannot be read by the cupy backend"):
        CupyBackend().asarray(_Producer(np.ones(2), 10))  # ROCm


# ---------------------------------------------------------------- no host synchronisation in a steady call
def test_a_csr_result_is_made_without_cupys_checks(monkeypatch):
    """CuPy's csr_matrix((data, indices, indptr)) reads indptr's ends back (a host synchronisation per
    call); the parts gpuad makes are consistent, and go to _from_parts, which checks nothing on the device."""
    import cupyx.scipy.sparse

    from gpuad import backends
    from gpuad.sparse import compressed
    made = []

    class Csr:
        def __init__(self, *args, **kwargs):
            raise AssertionError("the checking constructor")

        @classmethod
        def _from_parts(cls, data, indices, indptr, shape):
            made.append((data, indices, indptr, shape))
    monkeypatch.setattr(cupyx.scipy.sparse, "csr_matrix", Csr)
    monkeypatch.setattr(backends, "backend", lambda: "cupy")
    indices, indptr = np.array([0, 1, 1], np.int32), np.array([0, 2, 3], np.int32)
    compressed._csr(np.ones(3), indices, indptr, (2, 2))
    (data, got_indices, got_indptr, shape), = made
    assert shape == (2, 2) and got_indices.dtype == got_indptr.dtype and got_indices is not indices


def test_lu_factor_checks_no_finiteness(monkeypatch):
    """cupyx's lu_factor(check_finite=True) reads isfinite(a).all() back, per matrix."""
    import gpuad.scipy.linalg as gsl
    from gpuad.backends import numpy as numpy_backend
    kwargs_seen, scipy_functions = [], numpy_backend.scipy_functions

    def recording(xp, submodule, names):
        found = scipy_functions(xp, submodule, names)
        if "lu_factor" not in found:
            return found

        def lu_factor(a, **kwargs):
            kwargs_seen.append(kwargs)
            return found["lu_factor"](a, **kwargs)
        return {"lu_factor": lu_factor}
    monkeypatch.setattr(numpy_backend, "scipy_functions", recording)
    gsl.lu_factor(np.stack([np.eye(3) * 2.0, np.eye(3) + 0.5]))
    assert kwargs_seen == [{"check_finite": False}] * 2


class _Unread:
    """A device array nobody may read back (a getrf's dev_info): any conversion raises."""
    def __getattr__(self, name):
        raise AssertionError(f"dev_info was read ({name}): a host synchronisation per call")


def test_a_stack_is_lu_factorised_in_one_batched_call(monkeypatch):
    """The CuPy backend's lu_factor hands the whole stack, transposed (cuBLAS is column-major), to
    CuPy's batched LU (getrfBatched) once, reads no dev_info back, and gives scipy's (lu, piv)."""
    import cupy.linalg._decomposition as decomposition
    from scipy.linalg import lu_factor
    calls = []

    def batched(a_t, dtype):  # CuPy's contract: column-major LU of each matrix, 1-based pivots
        calls.append((a_t.shape, dtype))
        factors = [lu_factor(m.T) for m in a_t.reshape((-1,) + a_t.shape[-2:])]
        lu_t = np.stack([f[0].T for f in factors]).reshape(a_t.shape)
        return lu_t, np.stack([f[1] + 1 for f in factors]).reshape(a_t.shape[:-1]), _Unread()
    monkeypatch.setattr(decomposition, "_lu_factor", batched)
    a = np.random.default_rng(0).normal(size=(2, 3, 4, 4))
    lu, piv = CupyBackend().lu_factor(a)
    assert calls == [((2, 3, 4, 4), a.dtype)]
    for k in np.ndindex(2, 3):
        want_lu, want_piv = lu_factor(a[k])
        np.testing.assert_allclose(lu[k], want_lu, rtol=1e-14)
        np.testing.assert_array_equal(piv[k], want_piv)


def test_a_stack_is_solved_triangular_in_one_call_without_checks(monkeypatch):
    """The CuPy backend hands the whole stack to cupyx's solve_triangular once (cuBLAS trsmBatched),
    with scipy's flags and check_finite=False (its check reads a reduction back: a host synchronisation)."""
    import scipy.linalg

    from gpuad.backends import cupy as cupy_backend
    calls = []

    def recording(xp, submodule, names):
        assert (xp, submodule, names) == (cupy, "linalg", ("solve_triangular",))

        def solve_triangular(a, b, **kwargs):  # cupyx's contract: batched (..., n, n), (..., n, r)
            calls.append((a.shape, b.shape, kwargs))
            return np.stack([scipy.linalg.solve_triangular(m, r, **kwargs) for m, r in zip(a, b)])
        return {"solve_triangular": solve_triangular}
    monkeypatch.setattr(cupy_backend, "scipy_functions", recording)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 4, 4)) + 4 * np.eye(4), rng.normal(size=(3, 4, 2))
    x = CupyBackend().solve_triangular(a, b, lower=True, transpose=True, unit_diagonal=False)
    assert calls == [((3, 4, 4), (3, 4, 2), {"trans": 1, "lower": True, "unit_diagonal": False,
                                             "check_finite": False})]
    for k in range(3):
        np.testing.assert_allclose(np.tril(a[k]).T @ x[k], b[k], rtol=1e-12, atol=1e-12)


class _DeviceArray:
    """A CuPy array as NumPy sees it: NumPy's functions dispatch to it (NEP 13 and 18), and
    numpy.asarray of it raises, as CuPy's implicit conversion does."""
    def __init__(self, values):
        self.a = np.asarray(values)
        self.shape, self.dtype, self.size = self.a.shape, self.a.dtype, self.a.size

    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _DeviceArray(getattr(ufunc, method)(*[_host(i) for i in inputs], **kwargs))

    def __array_function__(self, func, types, args, kwargs):
        return _DeviceArray(func(*[_host(a) for a in args], **kwargs))

    def __eq__(self, other):
        return np.equal(self, other)

    def __and__(self, other):
        return np.logical_and(self, other)

    def __bool__(self):
        return bool(self.a)


def _host(x):
    return x.a if isinstance(x, _DeviceArray) else x


def test_the_simplifier_reads_a_device_constant_on_its_device():
    """`x + c` with c a small CuPy constant: whether c is a zero of the right sign is decided on the
    device (numpy.asarray of a CuPy array raised there, so jit of it failed while tracing)."""
    from gpuad.ops.elementwise import constant_equal
    assert constant_equal(_DeviceArray([-0.0, -0.0]), -0.0) and not constant_equal(_DeviceArray([-0.0, 0.0]), -0.0)
    assert constant_equal(_DeviceArray([1.0, 1.0]), 1) and not constant_equal(_DeviceArray([0, 0]), 0.0)
