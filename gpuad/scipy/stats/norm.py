"""scipy.stats.norm: the normal distribution, loc the mean and scale the standard deviation.

>>> import gpuad, gpuad.numpy as gnp
>>> from gpuad.scipy.stats import norm
>>> print(norm.logpdf(1.0, loc=0.5, scale=2.0).round(12))
-1.643335713765
>>> print(gpuad.grad(norm.logpdf, argnums=2)(1.0, 0.5, 2.0).round(12))  # (z^2 - 1) / scale
-0.46875
"""
import math

from ... import numpy as gnp
from .. import special
from ._support import missing_name, standardize

__all__ = ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf", "ppf"]
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def logpdf(x, loc=0.0, scale=1.0):
    z, log_scale = standardize(x, loc, scale)
    return -0.5 * z * z - log_scale - _LOG_SQRT_2PI


def pdf(x, loc=0.0, scale=1.0):
    return gnp.exp(logpdf(x, loc, scale))


def cdf(x, loc=0.0, scale=1.0):
    return special.ndtr(standardize(x, loc, scale)[0])


def logcdf(x, loc=0.0, scale=1.0):
    return special.log_ndtr(standardize(x, loc, scale)[0])


def sf(x, loc=0.0, scale=1.0):
    return special.ndtr(gnp.negative(standardize(x, loc, scale)[0]))


def logsf(x, loc=0.0, scale=1.0):
    return special.log_ndtr(gnp.negative(standardize(x, loc, scale)[0]))


def ppf(q, loc=0.0, scale=1.0):
    """The quantile function, the inverse of cdf: loc + scale * ndtri(q)."""
    return loc + gnp.asarray(scale) * special.ndtri(q)


__getattr__ = missing_name("gpuad.scipy.stats.norm", __all__, "scipy.stats.norm")
