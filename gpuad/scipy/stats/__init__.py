"""gpuad.scipy.stats: scipy.stats' distributions as modules of functions, as jax.scipy.stats.

    from gpuad.scipy.stats import norm, multivariate_normal
    loss = -gnp.sum(norm.logpdf(y, loc=mu, scale=sigma))

Each function takes scipy's arguments (loc, scale and the shape parameters, broadcast against
x) and is composed from gpuad.numpy and gpuad.scipy.special, so it is differentiable in x and
in every parameter, at every order, under vmap and gpuad.jit.
"""
from . import beta, chi2, dirichlet, gamma, multivariate_normal, norm, poisson, t
from ._support import missing_name

__all__ = ["norm", "t", "gamma", "beta", "chi2", "dirichlet", "multivariate_normal", "poisson"]
__getattr__ = missing_name("gpuad.scipy.stats", __all__, "scipy.stats")
