"""scipy.stats.beta: the beta distribution with shapes a and b on [loc, loc + scale].

>>> from gpuad.scipy.stats import beta
>>> print(beta.logpdf(0.25, 2.0, 3.0).round(12), beta.cdf(0.25, 2.0, 3.0).round(12))
0.523248143765 0.26171875
"""
import numpy as onp

from ... import numpy as gnp
from .. import special
from ._support import floats, missing_name, standardize

__all__ = ["logpdf", "pdf", "cdf"]


def logpdf(x, a, b, loc=0.0, scale=1.0):
    """(a - 1) log z + (b - 1) log(1 - z) - betaln(a, b) - log scale on 0 <= z <= 1, -inf outside."""
    z, log_scale = standardize(x, loc, scale)
    z, a, b = floats(z, a, b)
    inside = gnp.logical_and(gnp.greater_equal(z, 0), gnp.less_equal(z, 1))
    z = gnp.where(inside, z, 0.5)
    out = special.xlogy(a - 1.0, z) + special.xlog1py(b - 1.0, gnp.negative(z)) - special.betaln(a, b) - log_scale
    return gnp.where(inside, out, -onp.inf)


def pdf(x, a, b, loc=0.0, scale=1.0):
    return gnp.exp(logpdf(x, a, b, loc, scale))


def cdf(x, a, b, loc=0.0, scale=1.0):
    """The regularised incomplete beta function I_z(a, b), 0 below the support and 1 above."""
    z = standardize(x, loc, scale)[0]
    return special.betainc(a, b, gnp.clip(z, 0.0, 1.0))


__getattr__ = missing_name("gpuad.scipy.stats.beta", __all__, "scipy.stats.beta")
