"""scipy.stats.multivariate_normal: the normal distribution in d dimensions, through the Cholesky
factor of its covariance, so derivatives in x, mean and cov follow cholesky's and solve's rules.

>>> import gpuad, gpuad.numpy as gnp
>>> from gpuad.scipy.stats import multivariate_normal
>>> cov = gnp.array([[2.0, 0.5], [0.5, 1.0]])
>>> print(multivariate_normal.logpdf(gnp.array([0.3, -0.2]), gnp.zeros(2), cov).round(12))
-2.183399246091
"""
import math

from ... import numpy as gnp
from ._support import missing_name

__all__ = ["logpdf", "pdf", "entropy"]


def _covariance(cov, d):
    """scipy's forms of cov as a (d, d) matrix: a scalar (times the identity), a vector (the
    diagonal) or the matrix itself."""
    if cov.ndim == 0:
        return cov * gnp.eye(d, dtype=cov.dtype)
    if cov.ndim == 1 and cov.shape[0] == d:
        return gnp.diag(cov)
    if cov.shape != (d, d):
        raise ValueError(f"multivariate_normal: cov has shape {cov.shape}; for {d} dimensions it must be a "
                         f"scalar, a vector of {d} variances or a ({d}, {d}) matrix")
    return cov


def logpdf(x, mean=None, cov=1, allow_singular=False):
    """The log density at x (..., d), for mean (d,) and cov as scipy takes it; the result has
    x's leading shape. As scipy, a vector x with a 1-d mean is one point; with d = 1 (a scalar
    mean or none) it is a batch of points."""
    if allow_singular:
        raise NotImplementedError("multivariate_normal: allow_singular=True is not supported; cov must be "
                                  "positive definite (its Cholesky factor is used)")
    x, cov = gnp.asarray(x), gnp.asarray(cov)
    if mean is None:  # the dimension comes from cov, as scipy's does
        mean = gnp.zeros(cov.shape[0] if cov.ndim == 2 else 1, dtype=x.dtype)
    mean = gnp.atleast_1d(gnp.asarray(mean))
    if mean.ndim != 1:
        raise ValueError(f"multivariate_normal: mean must be a vector, got shape {mean.shape}")
    d = mean.shape[0]
    x = x[..., None] if d == 1 and (x.ndim == 0 or x.shape[-1] != 1) else x
    if x.shape[-1] != d:
        raise ValueError(f"multivariate_normal: x has {x.shape[-1]} components per point, mean {d}")
    factor = gnp.linalg.cholesky(_covariance(cov, d))
    # z = L^-1 (x - mean) for every point at once: one solve with the points as columns
    r = gnp.reshape(x - mean, (-1, d))
    z = gnp.linalg.solve(factor, gnp.transpose(r))
    maha = gnp.reshape(gnp.sum(z * z, axis=0), x.shape[:-1])
    log_det = 2.0 * gnp.sum(gnp.log(gnp.diagonal(factor)))
    return -0.5 * (maha + log_det + d * math.log(2 * math.pi))


def pdf(x, mean=None, cov=1, allow_singular=False):
    return gnp.exp(logpdf(x, mean, cov, allow_singular))


def entropy(mean=None, cov=1):
    """The differential entropy, d (1 + log(2 pi)) / 2 + log det(cov) / 2 (mean only sets d)."""
    cov = gnp.asarray(cov)
    d = gnp.atleast_1d(gnp.asarray(mean)).shape[0] if mean is not None else (cov.shape[0] if cov.ndim == 2 else 1)
    factor = gnp.linalg.cholesky(_covariance(cov, d))
    return 0.5 * d * (1.0 + math.log(2 * math.pi)) + gnp.sum(gnp.log(gnp.diagonal(factor)))


__getattr__ = missing_name("gpuad.scipy.stats.multivariate_normal", __all__, "scipy.stats.multivariate_normal")
