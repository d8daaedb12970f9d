"""scipy.stats.gamma: the gamma distribution with shape a, shifted by loc, scaled by scale.

>>> from gpuad.scipy.stats import gamma
>>> print(gamma.logpdf(2.0, 3.0).round(12), gamma.cdf(2.0, 3.0).round(12))
-1.30685281944 0.323323583817
"""
import numpy as onp

from ... import numpy as gnp
from .. import special
from ._support import floats, missing_name, standardize

__all__ = ["logpdf", "pdf", "cdf"]


def logpdf(x, a, loc=0.0, scale=1.0):
    """(a - 1) log z - z - gammaln(a) - log scale on z >= 0, -inf below."""
    z, log_scale = standardize(x, loc, scale)
    z, a = floats(z, a)
    inside = gnp.greater_equal(z, 0)
    z = gnp.where(inside, z, 1.0)
    out = special.xlogy(a - 1.0, z) - z - special.gammaln(a) - log_scale
    return gnp.where(inside, out, -onp.inf)


def pdf(x, a, loc=0.0, scale=1.0):
    return gnp.exp(logpdf(x, a, loc, scale))


def cdf(x, a, loc=0.0, scale=1.0):
    """The regularised incomplete gamma function P(a, z), 0 below the support."""
    z = standardize(x, loc, scale)[0]
    return special.gammainc(a, gnp.maximum(z, 0.0))


__getattr__ = missing_name("gpuad.scipy.stats.gamma", __all__, "scipy.stats.gamma")
