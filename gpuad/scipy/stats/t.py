"""scipy.stats.t: Student's t distribution with df degrees of freedom, shifted by loc, scaled by scale.

>>> from gpuad.scipy.stats import t
>>> print(t.cdf(1.5, 4.0).round(12), t.logpdf(0.0, 1.0).round(12))  # df = 1: Cauchy, -log(pi)
0.896 -1.144729885849
"""
import numpy as onp

from ... import numpy as gnp
from .. import special
from ._support import floats, missing_name, standardize

__all__ = ["logpdf", "pdf", "cdf", "logcdf"]


def logpdf(x, df, loc=0.0, scale=1.0):
    z, log_scale = standardize(x, loc, scale)
    z, df = floats(z, df)
    half = 0.5 * (df + 1.0)
    return (special.gammaln(half) - special.gammaln(0.5 * df) - 0.5 * gnp.log(df * onp.pi)
            - half * gnp.log1p(z * z / df) - log_scale)


def pdf(x, df, loc=0.0, scale=1.0):
    return gnp.exp(logpdf(x, df, loc, scale))


def cdf(x, df, loc=0.0, scale=1.0):
    """1 - I_w(df/2, 1/2) / 2 for z >= 0 (the half for z < 0), w = df / (df + z^2)."""
    z, df = floats(standardize(x, loc, scale)[0], df)
    with onp.errstate(divide="ignore", invalid="ignore"):  # df <= 0: NaN, unwarned, as scipy's
        tail = 0.5 * special.betainc(0.5 * df, 0.5, df / (df + z * z))
    return gnp.where(gnp.less(z, 0), tail, 1.0 - tail)


def logcdf(x, df, loc=0.0, scale=1.0):
    """log(cdf): as cdf's precision (far in the left tail, below about 1e-300, -inf)."""
    with onp.errstate(divide="ignore"):
        return gnp.log(cdf(x, df, loc, scale))


__getattr__ = missing_name("gpuad.scipy.stats.t", __all__, "scipy.stats.t")
