"""What the distributions share: standardising x by loc and scale, and the missing-name error."""
import numpy as onp

from ... import numpy as gnp
from ..special import _floats as floats


def standardize(x, loc, scale):
    """(z, log scale) with z = (x - loc) / scale; NaN where scale <= 0, as scipy.stats gives."""
    x, loc, scale = floats(x, loc, scale)
    positive = gnp.greater(scale, 0)
    safe = gnp.where(positive, scale, 1.0)  # keeps the log and the division finite where unused
    z = (x - loc) / safe
    return gnp.where(positive, z, onp.nan), gnp.log(safe)


def missing_name(module, names, reference):
    """A module __getattr__ that says what the module has, for a name of scipy's it lacks."""
    def __getattr__(name):
        raise AttributeError(f"{module} has no {name!r} yet: it has {', '.join(names)}. Compose it from "
                             f"gpuad.numpy and gpuad.scipy.special, or compute it with {reference} outside "
                             "the transformed function.")
    return __getattr__
