"""gpuad.scipy: scipy's names and semantics on values gpuad can differentiate (as jax.scipy).

    import gpuad.scipy.special as gsp
    y = gsp.logsumexp(x, axis=-1)
"""
from . import special  # noqa: F401
