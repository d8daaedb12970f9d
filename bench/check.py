"""Is a result right? At run time every engine is compared with the problem's closed form;
the closed forms themselves are compared with central finite differences (pytest bench/)."""
import numpy as onp

RTOL = 1e-8  # float64 AD agrees with a closed form to rounding; anything looser is a bug


def error(got, expected):
    """Largest deviation relative to the largest entry of the expected result (inf on a shape mismatch)."""
    got = onp.asarray(got)
    if got.shape != expected.shape:
        return onp.inf
    scale = max(float(onp.max(onp.abs(expected), initial=0.0)), 1e-300)
    return float(onp.max(onp.abs(got - expected), initial=0.0)) / scale


def describe_failure(got, expected):
    got = onp.asarray(got)
    if got.shape != expected.shape:
        return f"shape {got.shape}, expected {expected.shape}"
    return f"relative error {error(got, expected):.2e} > {RTOL:g}"


# ---------------------------------------------------------------- finite differences

def _unit(n, i, h):
    e = onp.zeros(n)
    e[i] = h
    return e


def fd_jacobian(f, x, h=1e-6):
    """Central differences, one input direction at a time; shaped out.shape + in.shape."""
    cols = [(f(x + _unit(x.size, i, h)) - f(x - _unit(x.size, i, h))) / (2 * h) for i in range(x.size)]
    return onp.stack(cols, axis=-1)


def _mixed(f, x, u, w, h):
    """Central estimate of the second derivative of f along u and w."""
    return (f(x + h * u + h * w) - f(x + h * u - h * w) - f(x - h * u + h * w) + f(x - h * u - h * w)) / (4 * h * h)


def fd_hvp(f, x, v, h=1e-4):
    return onp.array([_mixed(f, x, _unit(x.size, i, 1.0), v, h) for i in range(x.size)])


def fd_hessian(f, x, h=1e-4):
    return onp.stack([fd_hvp(f, x, _unit(x.size, j, 1.0), h) for j in range(x.size)], axis=-1)


def finite_differences(transform, f, args):
    """The result of transform(f)(*args) by finite differences, for f written against NumPy."""
    if transform in ("jacfwd", "jacrev", "jacobian", "auto_jacfwd"):
        return fd_jacobian(f, *args)
    if transform == "auto_jacrev_hessian":
        # Third derivatives of a quartic (the bench's is one): its second differences are off by a
        # constant, which the outer difference cancels, so unit steps are exact up to rounding.
        return fd_jacobian(lambda y: fd_hessian(f, y, h=1.0), *args, h=1.0)
    if transform == "hessian":
        return fd_hessian(f, *args)
    if transform == "hvp":
        return fd_hvp(f, *args)
    if transform == "vmap_jacfwd":
        return onp.stack([fd_jacobian(f, x) for x in args[0]])
    raise ValueError(f"no finite-difference rule for {transform!r}")
