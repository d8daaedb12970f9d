"""gpuad.scipy: scipy's names and semantics on values gpuad can differentiate (as jax.scipy).

    import gpuad.scipy.special as gsp, gpuad.scipy.linalg as gsl
    y = gsp.logsumexp(x, axis=-1) + gsl.expm(a)[0]
"""
from . import linalg, special  # noqa: F401
