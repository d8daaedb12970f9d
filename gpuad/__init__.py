"""gpuad: full Jacobians, Hessians, JVPs and VJPs in one vectorised sweep, on GPU (CuPy) or CPU (NumPy).

    import gpuad, gpuad.numpy as gnp
    J = gpuad.jacfwd(lambda x: gnp.array([x[0] ** 2 * x[1], gnp.sin(x[2])]))(gnp.array([1.0, 2.0, 0.5]))
"""
from . import ad_checkpoint, lax, numpy, scipy  # noqa: F401  (gpuad.numpy installs the array methods of traced values)
from .ad_checkpoint import checkpoint, checkpoint_name, checkpoint_policies, remat  # noqa: F401
from .api import (  # noqa: F401
    block_until_ready,
    grad,
    hessian,
    hvp,
    jacfwd,
    jacobian,
    jacrev,
    jvp,
    linearize,
    value_and_grad,
    vjp,
    vmap,
)
from .backends import backend, set_backend  # noqa: F401
from .core import ShapeDtypeStruct  # noqa: F401
from .custom import custom_jvp, custom_vjp  # noqa: F401
from .jit import eval_shape, jit  # noqa: F401
from .tree import tree_flatten, tree_leaves, tree_map, tree_unflatten  # noqa: F401

__version__ = "0.1.0"


def __getattr__(name):
    # gpuad.sparse needs SciPy and gpuad.distributed Dask, optional extras: they are imported on
    # first use, so that gpuad itself imports without them (and the error names the extra)
    if name in ("sparse", "distributed"):
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'gpuad' has no attribute {name!r}")
