"""gpuad.numpy.fft: values against numpy.fft, derivatives against central differences along the real
and imaginary parts of each input (JAX's conventions, docs/complex.md: the JVP is the transform of
the tangent; the VJP is the transpose, not the adjoint: see helpers.check_complex)."""
import numpy as np
import pytest
from helpers import (
    assert_close,
    check_complex,
    check_dot_product,
    check_first_order,
    check_second_order,
    complex_partials,
    crandom,
    on_backend,
    to_np,
)

import gpuad
import gpuad.numpy as gnp
from gpuad import backends

X = np.random.default_rng(0).standard_normal((4, 6))
Z = crandom((4, 6), 1)
X1 = np.random.default_rng(2).standard_normal(7)

# name, input, keyword arguments: the sizes cut, pad, odd and even lengths, each norm, axes
CASES = [
    ("fft", Z, {}), ("fft", Z, {"n": 4, "axis": 0, "norm": "ortho"}), ("fft", X, {"n": 9}),
    ("ifft", Z, {"n": 8, "norm": "forward"}), ("ifft", Z, {"axis": 0}),
    ("rfft", X, {}), ("rfft", X, {"n": 5, "axis": 0}), ("rfft", X1, {"n": 10, "norm": "ortho"}),
    ("irfft", Z, {}), ("irfft", Z, {"n": 7}), ("irfft", Z, {"n": 14, "norm": "forward"}),
    ("irfft", Z, {"n": 4, "axis": 0, "norm": "ortho"}),
    ("hfft", Z, {}), ("hfft", Z, {"n": 9, "norm": "ortho"}), ("ihfft", X, {}), ("ihfft", X1, {"norm": "forward"}),
    ("fft2", Z, {}), ("fft2", X, {"s": (3, 8)}), ("ifft2", Z, {"norm": "ortho"}),
    ("rfft2", X, {}), ("rfft2", X, {"s": (5, 5), "axes": (1, 0)}),
    ("irfft2", Z, {}), ("irfft2", Z, {"s": (3, 9), "norm": "forward"}),
    ("fftn", Z, {}), ("fftn", X, {"axes": (0,)}), ("ifftn", Z, {"s": (2, 7), "axes": (0, 1)}),
    ("rfftn", X, {"axes": (0,)}), ("irfftn", Z, {"s": (5, 6), "axes": (-2, -1)}),
]
IDS = [f"{n}-{'complex' if np.iscomplexobj(a) else 'real'}-{','.join(f'{k}={v}' for k, v in kw.items())}"
       for n, a, kw in CASES]
cases = pytest.mark.parametrize("name,a,kw", CASES, ids=IDS)


@cases
def test_values_match_numpy(name, a, kw):
    got, want = getattr(gnp.fft, name)(a, **kw), getattr(np.fft, name)(a, **kw)
    assert to_np(got).dtype == want.dtype
    assert_close(got, want, 1e-13, 1e-13)


@cases
def test_jvp_and_vjp_match_differences(name, a, kw):
    check_complex(lambda a: getattr(gnp.fft, name)(a, **kw), (a,), tol=1e-8)


@cases
def test_jacobians(name, a, kw):
    """jacfwd and jacrev where JAX defines them: c2c transforms are holomorphic (f'(z) = J_x); a real
    input's jacfwd is J_x; the real part of any transform has jacrev rows J_x - i J_y."""
    f = (lambda a: getattr(gnp.fft, name)(a, **kw))  # noqa: E731
    Jx, Jy = complex_partials(f, (a,), 0)
    out_complex = np.iscomplexobj(np.asarray(getattr(np.fft, name)(a, **kw)))
    if np.iscomplexobj(a) and out_complex and name not in ("hfft", "ihfft"):
        assert_close(Jy, 1j * Jx, 1e-7, 1e-7, "holomorphic")
        for jac in (gpuad.jacfwd, gpuad.jacrev):
            assert_close(jac(f, holomorphic=True)(a), Jx, 1e-8, 1e-8, jac.__name__)
    if not np.iscomplexobj(a):
        assert_close(gpuad.jacfwd(f)(a), Jx, 1e-8, 1e-8, "jacfwd")
    rows = gpuad.jacrev(lambda a: gnp.real(f(a)))(a)
    assert_close(rows, Jx.real - 1j * Jy.real if Jy is not None else Jx.real, 1e-8, 1e-8, "jacrev of the real part")


def spectral_residual(u):
    """A periodic reaction-diffusion residual: u'' by the spectrum (rfft/irfft), plus u^3 - u."""
    n = u.shape[-1]
    k = 2 * np.pi * gnp.fft.rfftfreq(n, d=1.0 / n)
    return gnp.fft.irfft(-(k ** 2) * gnp.fft.rfft(u), n=n) + u ** 3 - u


def spectral_energy(u):
    """A real scalar through complex spectra: the shifted power spectrum, weighted."""
    s = gnp.fft.fftshift(gnp.fft.fft2(u * gnp.sin(u)))
    return gnp.sum(gnp.abs(s) ** 2 * gnp.fft.fftshift(gnp.fft.fftfreq(u.shape[0]))[:, None] ** 2)


def test_real_programs_through_spectra_first_and_second_order():
    u = np.random.default_rng(3).standard_normal(8)
    check_first_order(spectral_residual, (u,))
    check_dot_product(spectral_residual, (u,))
    check_second_order(lambda u: gnp.sum(spectral_residual(u) ** 2), (u,), rtol=1e-5, atol=1e-5)
    check_second_order(spectral_energy, (X[:3, :4],), rtol=1e-5, atol=1e-5)


def test_vmap_of_jvp_and_jacfwd_match_a_loop():
    us, vs = np.random.default_rng(4).standard_normal((2, 3, 8))
    ys, ts = gpuad.vmap(lambda u, v: gpuad.jvp(spectral_residual, (u,), (v,)))(us, vs)
    Js = gpuad.vmap(gpuad.jacfwd(spectral_residual))(us)
    Hs = gpuad.vmap(gpuad.jacfwd(lambda z: gnp.fft.ifft(z * z, norm="ortho"), holomorphic=True))(Z[:3])
    for k in range(3):
        y, t = gpuad.jvp(spectral_residual, (us[k],), (vs[k],))
        assert_close(ys[k], y, 1e-14, 1e-14)
        assert_close(ts[k], t, 1e-14, 1e-14)
        assert_close(Js[k], gpuad.jacfwd(spectral_residual)(us[k]), 1e-14, 1e-14)
        assert_close(Hs[k], gpuad.jacfwd(lambda z: gnp.fft.ifft(z * z, norm="ortho"), holomorphic=True)(Z[k]),
                     1e-14, 1e-14)


def test_a_traced_spacing_keeps_its_derivative():
    assert_close(gpuad.jacfwd(lambda d: gnp.fft.fftfreq(5, d))(0.5), -np.fft.fftfreq(5, 0.5) / 0.5, 1e-14, 1e-14)


def test_jit_runs_each_transform_as_one_step():
    def r(u):  # (of a linear residual, jit folds the Jacobian to a constant: no transform is left)
        k = 2 * np.pi * gnp.fft.rfftfreq(16, d=1.0 / 16)
        return gnp.fft.irfft(-(k ** 2) * gnp.fft.rfft(u ** 3), n=16) - u
    u = np.random.default_rng(5).standard_normal(16)
    jac = gpuad.jacfwd(r)
    text = gpuad.jit(jac).lower(u).as_text()
    # rfft and irfft, each one step over the whole bundle of 16 directions (the primal is dead)
    assert text.count("= fft[kind='rfft'") == 1 and text.count("= fft[kind='irfft'") == 1, text
    assert "complex128[16, 9] = fft" in text, text
    assert_close(gpuad.jit(jac)(u), jac(u), 1e-13, 1e-13)
    out = gpuad.eval_shape(lambda a: gnp.fft.rfft2(a, s=(3, 10)), gpuad.ShapeDtypeStruct((4, 6), np.float32))
    assert (out.shape, out.dtype) == ((3, 6), np.complex64)


def test_numpy_s_fft_functions_dispatch_on_traced_values():
    f = lambda u: np.real(np.fft.ifft(np.fft.fft(u) * 2j))  # noqa: E731
    g = lambda u: gnp.real(gnp.fft.ifft(gnp.fft.fft(u) * 2j))  # noqa: E731
    u = np.random.default_rng(6).standard_normal(5)
    assert_close(gpuad.jacrev(f)(u), gpuad.jacrev(g)(u), 0, 0)


def test_complex64_stays_complex64():
    z = Z.astype(np.complex64)
    assert to_np(gnp.fft.fft(z)).dtype == np.complex64
    assert to_np(gpuad.jacfwd(gnp.fft.fft, holomorphic=True)(z[0])).dtype == np.complex64
    assert to_np(gpuad.grad(lambda x: gnp.sum(gnp.abs(gnp.fft.rfft(x)) ** 2))(X1.astype(np.float32))).dtype \
        == np.float32


@pytest.mark.parametrize("call,error,match", [
    (lambda: gnp.fft.fft(Z, norm="unitary"), ValueError, "Invalid norm value 'unitary'"),
    (lambda: gnp.fft.rfft(Z), TypeError, "rfft takes real input, got complex128; use fft"),
    (lambda: gnp.fft.fft(Z, n=0), ValueError, r"Invalid number of FFT data points \(0\)"),
    (lambda: gnp.fft.fft(Z, axis=2), ValueError, "fft: axis 2 is out of bounds for an array of dimension 2"),
    (lambda: gnp.fft.fftn(Z, s=(3,), axes=(0, 1)), ValueError, "Shape and axes have different lengths"),
], ids=["norm", "rfft_complex", "n0", "axis", "s_axes"])
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("name,s,axes", [
    ("fftn", None, (0, 0)), ("ifftn", (3, 5), (-2, 0)), ("rfftn", None, (1, 0, 1)), ("irfftn", (4, 6), (1, 1)),
    ("fft2", (2, 5), (1, 1)), ("irfftn", None, (0, 1, 0)),
])
def test_repeated_axes_transform_again_as_numpy_s(name, s, axes):
    """An axis given twice is transformed twice (numpy.fft's _raw_fftnd), sizes in turn; derivatives
    against the differences."""
    x = Z if name != "rfftn" else Z.real
    f = lambda x: getattr(gnp.fft, name)(x, s=s, axes=axes)  # noqa: E731
    assert_close(f(x), getattr(np.fft, name)(x, s=s, axes=axes), 1e-13, 1e-13)
    check_complex(f, (x,))


def test_lists_are_arrays():
    assert_close(gnp.fft.fft([1.0, 2.0, 3.0]), np.fft.fft([1.0, 2.0, 3.0]), 1e-15, 1e-15)
    assert_close(gnp.fft.irfft(on_backend(Z)[0]), np.fft.irfft(Z), 1e-14, 1e-14)


def test_compiled_transforms_write_into_kept_buffers_and_return_fresh_results():
    """Under jit on the CPU, a transform or a lone elementwise step whose value never leaves the call
    writes into a buffer kept between calls (no fresh pages at every call); what a call returns,
    or a view of it returns (real), is its own and stays as it was after the next call."""
    if gpuad.backend() != "numpy" or backends.xp() is not np:
        pytest.skip("the kept buffers are the NumPy backend's (numpy.fft's out=; not the strict arrays')")
    import tracemalloc

    from gpuad.compiler.replay import Replay
    w = np.exp(1j * np.linspace(0, 3, 4096))

    def f(x):
        spectrum = gnp.fft.fft(x) * w  # fft: kept; the multiply: kept (a lone step)
        return gnp.real(gnp.fft.ifft(spectrum)), gnp.fft.rfft(x)  # ifft: read by a view, returned
    x1, x2 = (np.random.default_rng(k).normal(size=(8, 4096)) for k in (1, 2))
    assert Replay(gpuad.jit(f).lower(x1).program).kept == 2
    g = gpuad.jit(f)
    first = g(x1)
    second = g(x2)
    for got, x in ((first, x1), (second, x2)):
        assert_close(got[0], np.real(np.fft.ifft(np.fft.fft(x) * w)), 1e-13, 1e-13)
        assert_close(got[1], np.fft.rfft(x), 1e-13, 1e-13)
    tracemalloc.start()
    g(x1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    spectrum = x1.size * 16
    assert peak < 1.75 * spectrum  # the two results (a spectrum and a half), no temporaries
