"""The discrete Fourier transforms: one linear primitive, `fft`, of four kinds over any axes.

kind "fft" and "ifft" run numpy.fft.fftn and ifftn (cupy.fft's on CuPy, whose cuFFT plans CuPy
caches per shape); "rfft" rfftn, a real array to its half spectrum; "irfft" irfftn, a half
spectrum to a real array. gpuad.numpy.fft resolves the parameters: `s` the transform's sizes
(the output's along `axes`, which are non-negative; numpy cuts or zero-pads the argument to
them), `norm` one of "backward", "ortho", "forward".

Each kind is linear, so its JVP and vmap rules are the transform of the bundle (one leading axis
more: one batched transform for all K directions), and its VJP the transpose (JAX's convention,
never the adjoint), written with the same primitive, so every order nests:
- fft, ifft: the DFT matrix is symmetric, so each is its own transpose (the same norm);
- rfft: the real part of fft of the cotangent zero-padded to the full length;
- irfft: conj(rfft(ct)) with the opposite norm, doubled at the bins that irfft reads twice (as
  X_k and conj(X_k): all but bin 0 and, for an even length, the last);
each then cut or zero-padded back to the argument's sizes (the transpose of numpy's resizing).
"""
import inspect
import string

import numpy as onp

from ..backends import xp
from ..core import ShapeDtypeStruct, dtype, linear, real_dtype, shape
from .elementwise import conj, multiply, real
from .indexing import getitem, scatter

NORMS = ("backward", "ortho", "forward")
OPPOSITE = {"backward": "forward", "ortho": "ortho", "forward": "backward"}  # the inverse's scale


def _impl(x, kind, s, axes, norm):
    return getattr(xp().fft, kind + "n")(x, s=s, axes=axes, norm=norm)


def _into(module):
    """The transform writing into out= (numpy.fft's since NumPy 2.0), else None."""
    if "out" not in inspect.signature(module.fft.fftn).parameters:
        return None
    return lambda x, kind, s, axes, norm, out: getattr(module.fft, kind + "n")(x, s=s, axes=axes, norm=norm, out=out)


def _lead(t, kind, s, axes, norm):
    return fft(t, kind=kind, s=s, axes=tuple(a + 1 for a in axes), norm=norm)


def resized(x, sizes, axes):
    """x cut or zero-padded at the end of each of axes to sizes (numpy.fft's resizing of its input)."""
    xs = shape(x)
    kept, target = [slice(None)] * len(xs), list(xs)
    for a, n in zip(axes, sizes):
        kept[a], target[a] = slice(0, min(n, xs[a])), n
    if any(n < xs[a] for a, n in zip(axes, sizes)):
        x = getitem(x, idx=tuple(kept))
    if any(n > xs[a] for a, n in zip(axes, sizes)):
        x = scatter(x, shape=tuple(target), idx=tuple(kept))
    return x


def _read_twice(n, axis, ndim, like):
    """Weights 1 or 2 of the bins of a half spectrum of a length-n signal along axis: 2 where irfft
    reads a bin as X_k and as conj(X_k)."""
    w = onp.full(n // 2 + 1, 2.0)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    at = [1] * ndim
    at[axis] = len(w)
    return xp().asarray(w.reshape(at), dtype=real_dtype(dtype(like)))


def _transpose(ct, xs, kind, s, axes, norm):
    lead = tuple(a + 1 for a in axes)
    if kind in ("fft", "ifft"):
        g = fft(ct, kind=kind, s=s, axes=lead, norm=norm)
    elif kind == "rfft":
        g = real(fft(resized(ct, s[-1:], lead[-1:]), kind="fft", s=s, axes=lead, norm=norm))
    else:
        g = conj(fft(ct, kind="rfft", s=s, axes=lead, norm=OPPOSITE[norm]))
        g = multiply(g, _read_twice(s[-1], lead[-1], len(shape(g)), g))
    return resized(g, [xs[a] for a in axes], lead)


def _abstract(x, kind, s, axes, norm):
    out = list(shape(x))
    for a, n in zip(axes, s):
        out[a] = n
    if kind == "rfft":
        out[axes[-1]] = s[-1] // 2 + 1
    spectrum = onp.result_type(dtype(x), onp.complex64)
    return ShapeDtypeStruct(out, real_dtype(spectrum) if kind == "irfft" else spectrum)


fft = linear("fft", _impl, _lead, _transpose, _abstract)
fft.impl_into = _into


# ---------------------------------------------------------------- sparsity pattern
from . import patterns  # noqa: E402  (here with the rules it serves)


def _pattern(args, out, kind, s, axes, norm):
    """Each output element depends on its whole slab of the argument over the transformed axes."""
    x, = args
    letters = string.ascii_lowercase[:len(out.shape)]
    mixed = "".join(string.ascii_uppercase[k] if k in axes else c for k, c in enumerate(letters))
    return [patterns.mixing(out.shape, letters, x.shape, mixed)]


fft.pattern = _pattern
