"""Where a NumPy array meets a backend array, CuPy raises; the NumPy backend with strict arrays
(tests/strict_arrays.py) raises there too, so CI finds those places without a GPU."""
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import assert_close, to_np
from strict_arrays import StrictArray

import gpuad
import gpuad.numpy as gnp
import gpuad.scipy.linalg as gsl
import gpuad.scipy.special as gsp
from gpuad import backends


def test_strict_arrays_refuse_numpy_arrays_beside_them_and_take_numpy_scalars(strict_arrays):
    x = backends.current().asarray(np.arange(3.0))
    assert type(x) is StrictArray and type(x + np.float64(1.0)) is StrictArray
    for mixed in (lambda: x + np.ones(3), lambda: np.ones(3) @ x, lambda: backends.xp().concatenate([x, np.ones(1)]),
                  lambda: backends.xp().sin(np.ones(3))):
        with pytest.raises(TypeError, match="plain numpy.ndarray"):
            mixed()


# each was a NumPy array meeting a backend array inside gpuad (an untraced call: raw arrays)
CALLS = {
    "gammainc (_window_sum)": (lambda a, x: gsp.gammainc(a, x), (np.array([0.5, 3.0]), np.array([0.2, 4.0]))),
    "betainc": (lambda a, b, x: gsp.betainc(a, b, x), (np.array([2.0]), np.array([3.0]), np.array([0.4]))),
    "solve_triangular unit diagonal": (lambda a, b: gsl.solve_triangular(a, b, lower=True, unit_diagonal=True),
                                       (np.array([[5.0, 0.0], [2.0, 7.0]]), np.array([1.0, 3.0]))),
    "lu_solve": (lambda a, b: gsl.lu_solve(gsl.lu_factor(a), b), (np.array([[4.0, 1.0], [2.0, 3.0]]),
                                                                  np.array([1.0, 2.0]))),
    "quantile": (lambda x: gnp.quantile(x, [0.25, 0.5]), (np.array([4.0, 1.0, 3.0, 2.0]),)),
}
# NumPy arrays given to gpuad.numpy functions that apply operators to them themselves
NUMPY_ARGUMENTS = {
    "var": (gnp.var, (np.array([1.0, 2.0, 4.0]),)),
    "logaddexp": (gnp.logaddexp, (np.array([1.0, 2.0]), np.array([0.5, 3.0]))),
    "xlogy": (gsp.xlogy, (np.array([0.0, 2.0]), np.array([0.0, 3.0]))),
    "linspace": (lambda a, b: gnp.linspace(a, b, 3), (np.array([0.0, 1.0]), np.array([1.0, 3.0]))),
}


@pytest.mark.parametrize("name", list(CALLS) + list(NUMPY_ARGUMENTS))
def test_no_numpy_array_meets_a_backend_array(strict_arrays, name):
    f, args = {**CALLS, **NUMPY_ARGUMENTS}[name]
    expected = to_np(f(*args))  # a first run, on the backend's arrays or the NumPy ones as given
    on_backend = args if name in NUMPY_ARGUMENTS else [gnp.asarray(a) for a in args]
    assert_close(f(*on_backend), expected)
    traced = [gnp.asarray(a) for a in args]
    assert_close(gpuad.jit(f)(*traced), expected)


# Suites that run clean on strict arrays
STRICT_SUITES = ["tests/test_transforms.py", "tests/test_linalg.py", "tests/test_custom.py", "tests/test_seeds.py",
                 "tests/test_breadth.py", "tests/test_primitives.py", "tests/test_jit.py", "tests/test_sparse.py",
                 "tests/test_lax.py", "tests/test_loop_kernel.py", "tests/test_complex.py", "tests/test_fft.py",
                 "tests/test_checkpointing.py"]


@pytest.mark.slow
def test_suites_run_on_strict_arrays():
    env = dict(os.environ, GPUAD_BACKEND="numpy")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--strict-arrays",
                          "-m", "not slow", *STRICT_SUITES], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stdout[-4000:]


def _cells(x, policy):
    cell = gpuad.checkpoint(lambda h: gnp.sin(gpuad.checkpoint_name(gnp.tanh(h), "a")) * h, policy=policy)
    return gnp.sum(cell(cell(x)) ** 2)


# Compiled calls whose steady state reads no backend value on the host (CuPy would wait for the GPU)
STEADY = {
    "jit(jacrev)": (gpuad.jit(gpuad.jacrev(lambda x: gnp.tanh(x) * gnp.sum(x))), (np.linspace(0.1, 1.0, 5),)),
    "jit(grad(checkpoint))": (gpuad.jit(gpuad.grad(lambda x: _cells(x, None))), (np.linspace(0.1, 1.0, 5),)),
    "jit(grad(checkpoint, a policy))": (
        gpuad.jit(gpuad.grad(lambda x: _cells(x, gpuad.checkpoint_policies.save_only_these_names("a")))),
        (np.linspace(0.1, 1.0, 5),)),
    "eager grad(checkpoint)": (gpuad.grad(lambda x: _cells(x, None)), (np.linspace(0.1, 1.0, 5),)),
    "eager grad(fori_loop), Python bounds": (
        gpuad.grad(lambda x: gnp.sum(gpuad.lax.fori_loop(0, 5, lambda i, y: gnp.sin(y) * i, x))),
        (np.linspace(0.1, 1.0, 5),)),
}


@pytest.mark.parametrize("name", list(STEADY))
def test_a_steady_call_reads_no_backend_value_on_the_host(strict_arrays, name):
    """The strict arrays' no_host_reads, standing for cupyx.allow_synchronize(False): after the
    first calls (tracing, planning, building), a call reads no value back."""
    from strict_arrays import HostRead, no_host_reads
    f, args = STEADY[name]
    args = [gnp.asarray(a) for a in args]
    expected = to_np(f(*args))
    f(*args)
    with no_host_reads():
        got = f(*args)
    assert_close(got, expected, rtol=1e-14)
    with no_host_reads(), pytest.raises(HostRead):  # the guard itself
        float(gnp.sum(args[0]))
