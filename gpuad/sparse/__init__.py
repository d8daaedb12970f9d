"""gpuad.sparse: sparse Jacobians and Hessians. The pattern is found by tracing the function,
colored, and the derivative computed in one sweep with one direction per color; results are
CSR matrices (scipy.sparse.csr_array on NumPy, cupyx.scipy.sparse.csr_matrix on CuPy).

>>> import gpuad, gpuad.numpy as gnp
>>> f = lambda x: x[1:] * x[:-1]                       # a bidiagonal Jacobian: 2 column colors
>>> J = gpuad.sparse.jacobian(f)(gnp.ones(1000))       # so one forward sweep of 2 directions
>>> J.shape, J.nnz
((999, 1000), 1998)

Needs SciPy (pip install gpuad[sparse]).
"""
try:
    import scipy.sparse  # noqa: F401
except ImportError as e:  # gpuad itself runs without SciPy; this namespace does not
    raise ImportError("gpuad.sparse needs SciPy: pip install gpuad[sparse] (or scipy)") from e

from .coloring import color  # noqa: F401
from .compressed import hessian, jacobian  # noqa: F401
from .detect import hessian_sparsity, jacobian_sparsity  # noqa: F401
