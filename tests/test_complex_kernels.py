"""Complex values in the fused kernels (kernels/gpuad_complex.cuh): fusion regions of complex
elementwise chains, built for the host and run against the unfused replay (NumPy's own complex
functions) to 1e-12, their derivatives under jit against eager ones, and the same regions compiled
for CUDA by NVRTC. (tests/test_kernels.py runs the per-op kernels of the complex rows.)"""
import warnings

import numpy as np
import pytest
from helpers import assert_close, crandom

import gpuad
import gpuad.numpy as gnp
from gpuad.compiler import codegen
from gpuad.compiler.fusion import Region, fuse
from gpuad.compiler.replay import Replay
from gpuad.ops import table

W = crandom((5,), 4)  # a complex constant the binary rows read on their other side


def _fused(f, *args):
    """(unfused, fused) results of f's program; the fused replay must run at least one region of
    complex values, built without a warning."""
    program = gpuad.jit(f).lower(*args).program
    regions = [r for r in fuse(program, "numpy") if isinstance(r, Region)]
    assert any(eq.out.dtype.kind == "c" for r in regions for eq in r.equations), regions
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fused = Replay(program, fusion=True)
    assert fused.regions >= 1
    return Replay(program, fusion=False).run(*args), fused.run(*args), program


def _close(actual, expected, rtol):
    """Equal to rtol of the largest magnitude (a part near 0 is as accurate as the value's size)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype
    assert_close(actual, expected, rtol, rtol * np.abs(expected).max())


@pytest.mark.parametrize("row", table.HOLOMORPHIC, ids=lambda r: r.name)
def test_each_holomorphic_row_fuses_and_computes_what_numpy_does(row):
    """Every row kernels spell for complex values, inside a chain (a real and a complex input,
    a complex literal), and at a point of each quadrant (off the branch cuts)."""
    op = getattr(gnp, row.name)
    z, x = gnp.asarray(crandom((5,), 1)), gnp.asarray(np.linspace(0.3, 0.9, 5))

    def f(z, x):
        u = z * (0.5 + 0.25j) + x  # mixed: a real operand of a complex result
        return op(u) if len(row.args) == 1 else op(u, W) + op(W, u)
    plain, fused, _ = _fused(f, z, x)
    _close(fused[0], plain[0], 1e-12)


@pytest.mark.parametrize("dtype,rtol", [(np.complex128, 1e-12), (np.complex64, 2e-5)])
def test_a_chain_with_the_parts_sums_and_moves_fuses(dtype, rtol):
    """real, imag, conj (read without a cast), abs and angle (of the parts), a sum, a slice and a
    concatenation, where and astype, in one region; complex64 stays complex64."""
    z = gnp.asarray(crandom((4, 6), 2).astype(dtype))

    def f(z):
        w = gnp.exp(1j * z) / (z + 2) + gnp.conj(z) * gnp.sqrt(z)
        shifted = gnp.concatenate([w[:, 1:], w[:, :1]], axis=1)
        m = gnp.abs(w) + gnp.angle(w) * gnp.real(shifted) - gnp.imag(z)
        return gnp.where(m > 0, w, shifted) * gnp.sum(w, axis=1, keepdims=True) + m.astype(dtype)
    plain, fused, _ = _fused(f, z)
    assert fused[0].dtype == dtype
    _close(fused[0], plain[0], rtol)


@pytest.mark.slow
def test_derivatives_of_complex_chains_under_jit_match_eager_ones():
    """jit(jacfwd(holomorphic)), jit(grad) of a real function of complex values, jit(vjp): fused,
    equal to the eager transforms (which run NumPy's functions one by one) to 1e-12."""
    z = gnp.asarray(crandom((6,), 3))

    def h(z):
        return gnp.tanh(z) * gnp.log(z) + gnp.arcsin(0.5 * z) ** 3 / gnp.cosh(z)

    def energy(z):
        return gnp.sum(gnp.abs(gnp.sin(z) * gnp.conj(z)) ** 2)
    jac = gpuad.jacfwd(h, holomorphic=True)
    _, fused, _ = _fused(jac, z)
    _close(fused[0], jac(z), 1e-12)
    _close(gpuad.jit(gpuad.grad(energy))(z), gpuad.grad(energy)(z), 1e-12)
    ct = gnp.asarray(crandom((6,), 5))
    vjp = lambda z: gpuad.vjp(h, z)[1](ct)[0]  # noqa: E731
    _close(gpuad.jit(vjp)(z), vjp(z), 1e-12)


def test_kernels_of_non_holomorphic_rows_stay_real():
    """A row without a complex spelling (hypot, maximum) is fused only on real values; its
    complex arguments are made outside its region."""
    z = gnp.asarray(crandom((5,), 6))
    program = gpuad.jit(lambda z: gnp.sign(gnp.exp(z)) + gnp.hypot(gnp.real(z), 1.0)).lower(z).program
    for r in fuse(program, "numpy"):
        if isinstance(r, Region):
            assert all(eq.prim.name != "sign" for eq in r.equations)


@pytest.fixture(scope="module")
def nvrtc():
    from gpuad.kernels import nvrtc
    try:
        nvrtc.version()
    except Exception as e:
        pytest.skip(f"NVRTC cannot be loaded: {e}")
    return nvrtc


def _cuda_kernels(fun, arg):
    program = gpuad.jit(fun).lower(arg).program
    return [codegen.render(r, "cuda") for r in fuse(program, "cupy") if isinstance(r, Region)]


def test_nvrtc_compiles_a_complex_region(nvrtc):
    """complex64 and complex128 arithmetic, a function, the parts and a complex literal."""
    z = gnp.asarray(crandom((3, 5), 7))
    kernels = [k for dtype in (np.complex64, np.complex128)
               for k in _cuda_kernels(lambda z: gnp.exp(z) * gnp.conj(z) / (z + 0.5j) + gnp.real(z), z.astype(dtype))]
    assert len(kernels) == 2 and all("gpuad_complex<" in k.text for k in kernels)
    assert [e for _, e in nvrtc.compile_cuda(kernels)] == [None, None]


@pytest.mark.slow
def test_nvrtc_compiles_every_complex_spelling(nvrtc):
    """Every row kernels spell for complex values, in one region planned for CuPy."""
    z = gnp.asarray(crandom((3, 5), 7))

    def f(z):
        total = z
        for row in table.HOLOMORPHIC:
            op = getattr(gnp, row.name)
            total = total + (op(z) if len(row.args) == 1 else op(z, W))
        return gnp.imag(total) * gnp.conj(total)
    kernels = _cuda_kernels(f, z)
    assert len(kernels) == 1 and [e for _, e in nvrtc.compile_cuda(kernels)] == [None]
