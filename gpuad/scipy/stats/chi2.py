"""scipy.stats.chi2: the chi-squared distribution with df degrees of freedom, the gamma
distribution of shape df / 2 and scale 2.

>>> from gpuad.scipy.stats import chi2
>>> print(chi2.logpdf(3.0, 4.0).round(12), chi2.cdf(3.0, 4.0).round(12))
-1.787682072452 0.442174599629
"""
from . import gamma
from ._support import floats, missing_name

__all__ = ["logpdf", "pdf", "cdf"]


def logpdf(x, df, loc=0.0, scale=1.0):
    x, df, loc, scale = floats(x, df, loc, scale)
    return gamma.logpdf(x, 0.5 * df, loc, 2.0 * scale)


def pdf(x, df, loc=0.0, scale=1.0):
    x, df, loc, scale = floats(x, df, loc, scale)
    return gamma.pdf(x, 0.5 * df, loc, 2.0 * scale)


def cdf(x, df, loc=0.0, scale=1.0):
    x, df, loc, scale = floats(x, df, loc, scale)
    return gamma.cdf(x, 0.5 * df, loc, 2.0 * scale)


__getattr__ = missing_name("gpuad.scipy.stats.chi2", __all__, "scipy.stats.chi2")
