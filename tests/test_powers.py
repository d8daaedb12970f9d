"""Powers by a literal exponent in the fused kernels: multiplies, sqrt and a division instead of pow
(gpuad/ops/expr.py's lowering, kernels/gpuad_math.cuh's helpers), in region and loop kernels, on
the host and for CUDA; values against NumPy's power, derivatives against central differences."""
import numpy as np
import pytest
from helpers import assert_close, numerical_jacobian, to_np

import gpuad
import gpuad.numpy as gnp
from gpuad.kernels import programs
from gpuad.kernels.source import template_dir

EXPONENTS = [0, 1, 2, 3, -1, 0.5, -0.5]
SPECIAL = [-np.inf, -3.5, -1.0, -0.0, 0.0, 1e-310, 5e-324, 2.5, 1e200, 1e-200, np.inf, np.nan, 7.0]
HEADERS = [(template_dir() / name).read_text() for name in ("gpuad_math.cuh", "gpuad_complex.cuh")]


def _host_only():
    if gpuad.backend() != "numpy":
        pytest.skip("the C++ compiler builds the fused kernels of the NumPy backend only")


def _calls_pow(kernel):
    """Whether a kernel's own text (the CUDA kernels include the headers defining gpuad_pow) calls pow."""
    text = kernel.text
    for header in HEADERS:
        text = text.replace(header, "")
    return "gpuad_pow(" in text


def _ulps(a, b):
    """How many representable numbers lie between a and b, elementwise (0 where both are NaN)."""
    a, b = np.asarray(a), np.asarray(b)
    bits = {4: np.int32, 8: np.int64}[a.itemsize]
    ia, ib = a.view(bits).astype(np.int64), b.view(bits).astype(np.int64)
    low = np.iinfo(bits).min
    ia, ib = np.where(ia < 0, low - ia, ia), np.where(ib < 0, low - ib, ib)  # monotonic in the value
    return np.where(np.isnan(a) & np.isnan(b), 0, np.abs(ia - ib))


def _scaled_power(n):
    return lambda x: (x ** n) * 2.0  # a region of two equations: the power fuses (x ** 1 is x)


@pytest.mark.parametrize("n", EXPONENTS)
def test_a_literal_exponent_is_lowered_without_pow_in_host_and_cuda_kernels(n):
    x = np.linspace(0.5, 2.0, 64)
    for target in ("host", "cuda"):
        kernels = programs.region_kernels(lambda x: _scaled_power(n)(x) + x, x, target=target)
        assert kernels, target
        assert not any(_calls_pow(k) for k in kernels), (target, [k.text for k in kernels])


def test_other_exponents_still_call_pow():
    x = np.linspace(0.5, 2.0, 64)
    for n in (-2, 4, 1.5, 0.25):
        assert any(_calls_pow(k) for k in programs.region_kernels(_scaled_power(n), x, target="host"))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", EXPONENTS)
def test_lowered_powers_equal_numpys_at_zeros_infinities_nans_and_negatives(n, dtype):
    _host_only()
    with np.errstate(all="ignore"):
        x = np.array(SPECIAL).astype(dtype)
        got, expected = to_np(gpuad.jit(_scaled_power(n))(gnp.asarray(x))), _scaled_power(n)(x)
    assert got.dtype == expected.dtype
    assert _ulps(got, expected).max() <= 1, (x, got, expected)
    finite_or_nan = ~np.isfinite(expected) | (expected == 0)  # exactly NumPy's, sign included
    assert np.array_equal(got[finite_or_nan], expected[finite_or_nan], equal_nan=True)
    assert np.array_equal(np.signbit(got), np.signbit(expected))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", EXPONENTS)
def test_lowered_powers_are_within_one_ulp_of_numpys_over_many_magnitudes(n, dtype):
    _host_only()
    rng = np.random.default_rng(7)
    top = np.log(np.finfo(dtype).max) / 4
    x = np.concatenate([rng.uniform(-4, 4, 20000), np.exp(rng.uniform(-top, top, 20000))]).astype(dtype)
    with np.errstate(all="ignore"):
        got, expected = to_np(gpuad.jit(_scaled_power(n))(gnp.asarray(x))), _scaled_power(n)(x)
    assert _ulps(got, expected).max() <= 1


def _powers(x):
    return x ** 3 - 2.0 * x ** 2 + x ** -1 + x ** 0.5 + 3.0 * x ** -0.5


def test_jacfwd_and_jacrev_of_literal_powers_compiled_equal_central_differences():
    x = np.linspace(0.3, 2.0, 7)
    expected = numerical_jacobian(_powers, [x], 0)
    for jac in (gpuad.jacfwd, gpuad.jacrev):
        assert_close(gpuad.jit(jac(_powers))(gnp.asarray(x)), expected, what=jac.__name__)


def test_the_hessian_of_literal_powers_compiled_equals_differences_of_the_gradient():
    x = np.linspace(0.3, 2.0, 5)

    def total(x):
        return gnp.sum(_powers(x))
    gradient = gpuad.jit(gpuad.grad(total))
    expected = numerical_jacobian(gradient, [x], 0)
    assert_close(gpuad.jit(gpuad.hessian(total))(gnp.asarray(x)), expected, rtol=1e-5, atol=1e-5)


def test_a_while_loops_powers_in_its_kernel_are_multiplies_on_host_and_cuda():
    """Newton on x^3 + p0 x - p1 (x ** 3 and its derivative's x ** 2) as one loop kernel."""
    name, f, args = programs.loops()[1]
    for target in ("host", "cuda"):
        kernels = programs.loop_kernels(f, *args, target=target)
        assert kernels and not any(_calls_pow(k) for k in kernels), target
        assert all("gpuad_pow3(" in k.text for k in kernels), target
