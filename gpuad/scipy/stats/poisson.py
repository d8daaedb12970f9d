"""scipy.stats.poisson: the Poisson distribution with mean mu, shifted by loc.

>>> import gpuad
>>> from gpuad.scipy.stats import poisson
>>> print(poisson.logpmf(3, 2.0).round(12), gpuad.grad(poisson.logpmf, argnums=1)(3, 2.0))  # k / mu - 1
-1.712317927548 0.5
>>> print(poisson.cdf(3, 2.0).round(12), gpuad.grad(poisson.cdf, argnums=1)(3, 2.0).round(12))  # -pmf(3, mu)
0.857123460499 -0.180447044315
"""
import numpy as onp

from ... import numpy as gnp
from .. import special
from ._support import floats, missing_name

__all__ = ["logpmf", "pmf", "cdf"]


def logpmf(k, mu, loc=0):
    """k log mu - mu - gammaln(k + 1) at k - loc; -inf where that is not a count (negative or not
    whole). Differentiable in mu."""
    k, mu = floats(k, mu)
    k = k - loc
    count = gnp.logical_and(gnp.greater_equal(k, 0), gnp.equal(gnp.floor(k), k))
    k = gnp.where(count, k, 0.0)
    out = special.xlogy(k, mu) - mu - special.gammaln(k + 1.0)
    return gnp.where(count, out, -onp.inf)


def pmf(k, mu, loc=0):
    return gnp.exp(logpmf(k, mu, loc))


def cdf(k, mu, loc=0):
    """P(K <= k) = Q(floor(k - loc) + 1, mu), the regularised upper incomplete gamma function;
    0 below loc. Differentiable in mu."""
    k, mu = floats(k, mu)
    n = gnp.floor(k - loc)
    inside = gnp.greater_equal(n, 0)
    return gnp.where(inside, special.gammaincc(gnp.where(inside, n, 0.0) + 1.0, mu), 0.0)


__getattr__ = missing_name("gpuad.scipy.stats.poisson", __all__, "scipy.stats.poisson")
