"""gpuad.numpy.fft: numpy.fft's names and semantics, differentiable in every mode.

Every transform is the one linear primitive of gpuad/ops/fft.py (fftn, ifftn, rfftn or irfftn
over the given axes: the 1-D and 2-D names are those with one or two axes); hfft and ihfft are
irfft and rfft of the conjugate, as in NumPy. Derivatives follow JAX's conventions
(docs/complex.md): the JVP is the transform of the tangent, the VJP the transpose.

>>> import gpuad, gpuad.numpy as gnp
>>> gnp.fft.rfft(gnp.array([1.0, 2.0, 3.0, 4.0]))
array([10.+0.j, -2.+2.j, -2.+0.j])
"""
import operator

import numpy as onp

from ..core import dtype, shape
from ..ops.fft import NORMS, OPPOSITE
from ..ops.fft import fft as _transform
from .creation import asarray
from .elementwise import is_complex
from .mathematical import conjugate
from .shapes import roll


def _norm(norm):
    if norm is None:
        return "backward"
    if norm not in NORMS:
        raise ValueError(f'Invalid norm value {norm!r}; should be "backward", "ortho" or "forward".')
    return norm


def _sizes_and_axes(a, s, axes, name, half_input):
    """numpy's resolution of s and axes (numpy.fft._cook_nd_args): axes non-negative, s the output's
    sizes along them (for irfft the last is the real length, 2 (m - 1) by default)."""
    nd = len(shape(a))
    if axes is None:
        axes = range(nd - len(s), nd) if s is not None else range(nd)
    axes = [operator.index(ax) for ax in axes]
    for ax in axes:
        if not -nd <= ax < nd:
            raise ValueError(f"gpuad.numpy.fft.{name}: axis {ax} is out of bounds for an array of dimension {nd}")
    axes = tuple(ax % nd for ax in axes)
    if s is None:
        s = [shape(a)[ax] for ax in axes]
        if half_input and axes:
            s[-1] = 2 * (s[-1] - 1)
    elif len(s) != len(axes):
        raise ValueError("Shape and axes have different lengths.")
    s = tuple(shape(a)[ax] if n == -1 else operator.index(n) for n, ax in zip(s, axes))
    for n in s:
        if n < 1:
            raise ValueError(f"Invalid number of FFT data points ({n}) specified.")
    return s, axes


def _fftn(kind, a, s, axes, norm, name):
    a = asarray(a)
    if kind == "rfft" and is_complex(a):
        raise TypeError(f"gpuad.numpy.fft.{name} takes real input, got {dtype(a)}; use fft for complex values")
    s, axes = _sizes_and_axes(a, s, axes, name, kind == "irfft")
    if not axes:
        return a  # numpy returns its input unchanged
    if len(set(axes)) < len(axes):
        return _axis_by_axis(kind, a, s, axes, _norm(norm))
    return _transform(a, kind=kind, s=s, axes=axes, norm=_norm(norm))


def _axis_by_axis(kind, a, s, axes, norm):
    """A transform over repeated axes, as numpy's: one axis at a time, the last given first (an
    rfft's real axis first, an irfft's last), an axis given twice transformed twice."""
    full = {"rfft": "fft", "irfft": "ifft"}.get(kind, kind)
    steps = [(full, n, ax) for n, ax in zip(s[:-1], axes[:-1])]
    if kind == "irfft":
        steps.append((kind, s[-1], axes[-1]))
    else:
        steps = [(kind, s[-1], axes[-1])] + steps[::-1]
    for k, n, ax in steps:
        a = _transform(a, kind=k, s=(n,), axes=(ax,), norm=norm)
    return a


def _one(n):
    return None if n is None else (n,)


# ---------------------------------------------------------------- one axis
def fft(a, n=None, axis=-1, norm=None):
    """numpy.fft.fft: the discrete Fourier transform along one axis."""
    return _fftn("fft", a, _one(n), (axis,), norm, "fft")


def ifft(a, n=None, axis=-1, norm=None):
    """numpy.fft.ifft: the inverse transform along one axis."""
    return _fftn("ifft", a, _one(n), (axis,), norm, "ifft")


def rfft(a, n=None, axis=-1, norm=None):
    """numpy.fft.rfft: the transform of real input, bins 0 to n // 2."""
    return _fftn("rfft", a, _one(n), (axis,), norm, "rfft")


def irfft(a, n=None, axis=-1, norm=None):
    """numpy.fft.irfft: the real signal of length n (2 (m - 1) by default) of a half spectrum."""
    return _fftn("irfft", a, _one(n), (axis,), norm, "irfft")


def hfft(a, n=None, axis=-1, norm=None):
    """numpy.fft.hfft: the real transform of a Hermitian-symmetric signal given by its first half."""
    return _fftn("irfft", conjugate(a), _one(n), (axis,), OPPOSITE[_norm(norm)], "hfft")


def ihfft(a, n=None, axis=-1, norm=None):
    """numpy.fft.ihfft: the inverse of hfft (the half spectrum of a real signal, conjugated)."""
    return conjugate(_fftn("rfft", a, _one(n), (axis,), OPPOSITE[_norm(norm)], "ihfft"))


# ---------------------------------------------------------------- several axes
def fftn(a, s=None, axes=None, norm=None):
    """numpy.fft.fftn: the transform over axes (all by default; the last len(s) when s is given)."""
    return _fftn("fft", a, s, axes, norm, "fftn")


def ifftn(a, s=None, axes=None, norm=None):
    return _fftn("ifft", a, s, axes, norm, "ifftn")


def rfftn(a, s=None, axes=None, norm=None):
    return _fftn("rfft", a, s, axes, norm, "rfftn")


def irfftn(a, s=None, axes=None, norm=None):
    return _fftn("irfft", a, s, axes, norm, "irfftn")


def fft2(a, s=None, axes=(-2, -1), norm=None):
    return _fftn("fft", a, s, axes, norm, "fft2")


def ifft2(a, s=None, axes=(-2, -1), norm=None):
    return _fftn("ifft", a, s, axes, norm, "ifft2")


def rfft2(a, s=None, axes=(-2, -1), norm=None):
    return _fftn("rfft", a, s, axes, norm, "rfft2")


def irfft2(a, s=None, axes=(-2, -1), norm=None):
    return _fftn("irfft", a, s, axes, norm, "irfft2")


# ---------------------------------------------------------------- frequencies and shifts
def _frequencies(k, n, d):
    return asarray(k) * (1.0 / (n * d))  # numpy's rounding; a traced d keeps its derivative


def fftfreq(n, d=1.0):
    """numpy.fft.fftfreq: the sample frequencies of fft's bins, for a spacing d.

    >>> import gpuad.numpy as gnp
    >>> gnp.fft.fftfreq(4, d=0.5)
    array([ 0. ,  0.5, -1. , -0.5])
    """
    n = operator.index(n)
    return _frequencies(onp.concatenate([onp.arange((n - 1) // 2 + 1), onp.arange(-(n // 2), 0)]), n, d)


def rfftfreq(n, d=1.0):
    """numpy.fft.rfftfreq: the sample frequencies of rfft's bins, for a spacing d."""
    n = operator.index(n)
    return _frequencies(onp.arange(n // 2 + 1), n, d)


def _shifted(x, axes, sign):
    x = asarray(x)
    nd = len(shape(x))
    axes = range(nd) if axes is None else (axes,) if isinstance(axes, int) else axes
    for ax in axes:
        x = roll(x, sign * (shape(x)[ax] // 2), ax)
    return x


def fftshift(x, axes=None):
    """numpy.fft.fftshift: the zero frequency moved to the middle of each of axes (all by default)."""
    return _shifted(x, axes, 1)


def ifftshift(x, axes=None):
    """numpy.fft.ifftshift: the inverse of fftshift."""
    return _shifted(x, axes, -1)


__all__ = ["fft", "ifft", "rfft", "irfft", "hfft", "ihfft", "fftn", "ifftn", "rfftn", "irfftn", "fft2", "ifft2",
           "rfft2", "irfft2", "fftfreq", "rfftfreq", "fftshift", "ifftshift"]
