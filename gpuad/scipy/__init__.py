"""gpuad.scipy: scipy's names and semantics on values gpuad can differentiate (as jax.scipy).

    import gpuad.scipy.special as gsp, gpuad.scipy.linalg as gsl
    from gpuad.scipy.stats import norm
    y = gsp.logsumexp(x, axis=-1) + gsl.expm(a)[0] + norm.logpdf(x[0], loc=mu)
"""
from . import linalg, special, stats  # noqa: F401
