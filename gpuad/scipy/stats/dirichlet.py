"""scipy.stats.dirichlet: the Dirichlet distribution with concentrations alpha (k,) on the
simplex, x (..., k) (scipy's (k,) or (k, n) points, component first, are taken as well).

>>> import gpuad.numpy as gnp
>>> from gpuad.scipy.stats import dirichlet
>>> print(dirichlet.logpdf(gnp.array([0.2, 0.3, 0.5]), gnp.array([2.0, 3.0, 4.0])).round(12))
2.022871190191
"""
from ... import numpy as gnp
from .. import special
from ._support import missing_name

__all__ = ["logpdf", "pdf"]


def logpdf(x, alpha):
    """sum((alpha - 1) log x) - sum(gammaln(alpha)) + gammaln(sum(alpha)), over the components:
    x's first axis where it has alpha's length there and more than one axis, as scipy reads it."""
    x, alpha = gnp.asarray(x), gnp.asarray(alpha)
    if alpha.ndim != 1:
        raise ValueError(f"dirichlet: alpha must be a vector of concentrations, got shape {alpha.shape}")
    k = alpha.shape[0]
    if x.ndim > 1 and x.shape[0] == k and x.shape[-1] != k:
        x = gnp.moveaxis(x, 0, -1)
    if x.shape[-1] != k:
        raise ValueError(f"dirichlet: x has {x.shape[-1]} components, alpha {k}")
    norm = gnp.sum(special.gammaln(alpha)) - special.gammaln(gnp.sum(alpha))
    return gnp.sum(special.xlogy(alpha - 1.0, x), axis=-1) - norm


def pdf(x, alpha):
    return gnp.exp(logpdf(x, alpha))


__getattr__ = missing_name("gpuad.scipy.stats.dirichlet", __all__, "scipy.stats.dirichlet")
