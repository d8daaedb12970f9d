"""Shared test helpers: the one finite-difference checker, and small conversions.

The checker is three functions, one per property, so a failure names what broke:
`check_first_order`, `check_second_order` and `check_dot_product` take a function of
arrays (returning one array) and float64 NumPy inputs; they compare gpuad's forward and
reverse derivatives with central differences computed here, independently of gpuad's
derivative machinery (only the plain forward evaluation of f is used).
"""
import zlib
from typing import Callable, NamedTuple

import numpy as np
import pytest

import gpuad
import gpuad.numpy as gnp
from gpuad import backends, core
from gpuad.reverse import RevTrace

EPS = 1e-5          # central-difference step, float64
RTOL = 1e-6
ATOL = 1e-6


def sampled(values, every, ids=None):
    """values as pytest params, all but every `every`-th marked slow. For a family whose members each
    compile a program (with a cold kernel cache each pays the C++ compiler): the README's test command
    runs a spread of it, `-m slow` (and CI) the rest."""
    ids = ids or [None] * len(values)
    return [pytest.param(v, id=i, marks=() if k % every == 0 else pytest.mark.slow)
            for k, (v, i) in enumerate(zip(values, ids))]


def to_np(x):
    """A backend array (or Python scalar) as a NumPy array."""
    return np.asarray(backends.current().to_numpy(x))


def tree_np(tree):
    return gpuad.tree_map(to_np, tree)


def on_backend(*xs):
    """NumPy inputs as arrays of the active backend."""
    return tuple(gnp.asarray(x) for x in xs)


def assert_close(actual, expected, rtol=RTOL, atol=ATOL, what=""):
    actual, expected = to_np(actual), to_np(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale, err_msg=what)


def assert_tree_close(actual, expected, rtol=RTOL, atol=ATOL, what=""):
    la, ta = gpuad.tree_flatten(actual)
    le, te = gpuad.tree_flatten(expected)
    assert ta == te, f"{what}: tree {ta} != {te}"
    for k, (a, e) in enumerate(zip(la, le)):
        assert_close(a, e, rtol, atol, f"{what} leaf {k}")


def random_inputs(shapes, domain, seed=0):
    """float64 inputs drawn uniformly from domain: one (lo, hi) for all, or a list, one per shape."""
    rng = np.random.default_rng(seed)
    domains = domain if isinstance(domain, list) else [domain] * len(shapes)
    return tuple(rng.uniform(lo, hi, size=s) for s, (lo, hi) in zip(shapes, domains))


class Spec(NamedTuple):
    """One function's test case (the op-spec tables of test_primitives and test_breadth): fn(np_,
    *xs) written against a NumPy-like module, inputs of these shapes drawn from domain (or fixed
    xs), compared with ref(*xs) or fn(numpy, *xs)."""
    name: str
    fn: Callable
    shapes: tuple
    domain: object = (-2.0, 2.0)
    ref: Callable = None      # the reference, when fn(numpy, ...) is not it
    xs: tuple = None          # fixed inputs instead of random ones from domain
    tol: float = 1e-5
    eps: float = 1e-5         # the finite-difference step
    second: bool = True       # checked at second order too (smooth where checked)
    batchable: bool = True    # False when output shapes depend on values (no vmap)

    def inputs(self):
        if self.xs is not None:
            return tuple(np.asarray(x, dtype=float) for x in self.xs)
        return random_inputs(self.shapes, self.domain, seed=zlib.crc32(self.name.encode()))

    def f(self, *xs):
        return self.fn(gnp, *xs)

    def expected(self, *xs):
        return self.ref(*xs) if self.ref else self.fn(np, *xs)


def numerical_jacobian(f, xs, argnum, eps=EPS):
    """d f(*xs) / d xs[argnum] by central differences; shape out.shape + in.shape (NumPy)."""
    x = np.asarray(xs[argnum], dtype=np.float64)
    cols = []
    for k in range(x.size):
        d = np.zeros(x.size)
        d[k] = eps
        d = d.reshape(x.shape)
        plus = list(xs)
        minus = list(xs)
        plus[argnum], minus[argnum] = x + d, x - d
        fp = tree_np(f(*on_backend(*plus)))
        fm = tree_np(f(*on_backend(*minus)))
        cols.append(gpuad.tree_map(lambda a, b: (a - b) / (2 * eps), fp, fm))
    out = tree_np(f(*on_backend(*xs)))
    return gpuad.tree_map(lambda o, *cs: np.stack(cs, axis=-1).reshape(o.shape + x.shape)
                          if cs else np.zeros(o.shape + x.shape), out, *cols)


def numerical_jacobian_tree(f, args, argnums=0):
    """Central-difference Jacobian of f(*args) with JAX's structure: the output tree, each leaf
    holding the tree of the differentiated arguments (a tuple of them when argnums is a tuple),
    each block of shape out.shape + in.shape. args are NumPy arrays or pytrees of them."""
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    dyn = args[nums[0]] if isinstance(argnums, int) else tuple(args[i] for i in nums)
    leaves, in_tree = gpuad.tree_flatten(dyn)

    def g(*ls):
        new = [gpuad.tree_map(gnp.asarray, a) for a in args]  # the arguments held fixed too
        sub = in_tree.unflatten(list(ls))
        for i, v in zip(nums, (sub,) if isinstance(argnums, int) else sub):
            new[i] = gpuad.tree_map(gnp.asarray, v)
        return f(*new)

    blocks = [gpuad.tree_flatten(numerical_jacobian(g, leaves, k))[0] for k in range(len(leaves))]
    out_tree = gpuad.tree_flatten(g(*on_backend(*leaves)))[1]
    return out_tree.unflatten([in_tree.unflatten([b[o] for b in blocks]) for o in range(out_tree.num_leaves)])


def _argnums(xs):
    return tuple(range(len(xs)))


def check_first_order(f, xs, rtol=RTOL, atol=ATOL, eps=EPS, seed=1):
    """jvp, jacfwd, vjp and jacrev of f at xs against central differences."""
    rng = np.random.default_rng(seed)
    args = on_backend(*xs)
    nums = _argnums(xs)
    J = [numerical_jacobian(f, xs, i, eps) for i in nums]
    y = to_np(f(*args))

    fwd, rev = gpuad.jacfwd(f, argnums=nums)(*args), gpuad.jacrev(f, argnums=nums)(*args)
    for i in nums:
        assert_close(fwd[i], J[i], rtol, atol, f"jacfwd wrt arg {i}")
        assert_close(rev[i], J[i], rtol, atol, f"jacrev wrt arg {i}")

    vs = [rng.standard_normal(np.shape(x)) for x in xs]
    y_jvp, t = gpuad.jvp(f, args, on_backend(*vs))
    assert_close(y_jvp, y, what="jvp primal")
    expected_t = sum(np.tensordot(J[i], vs[i], axes=np.ndim(xs[i])) for i in nums)
    assert_close(t, expected_t, rtol, atol, "jvp tangent")

    u = rng.standard_normal(y.shape)
    y_vjp, pullback = gpuad.vjp(f, *args)
    assert_close(y_vjp, y, what="vjp primal")
    cts = pullback(gnp.asarray(u))
    assert isinstance(cts, tuple) and len(cts) == len(xs)
    for i in nums:
        expected = np.tensordot(u, J[i], axes=y.ndim)
        assert_close(cts[i], expected, rtol, atol, f"vjp cotangent of arg {i}")


def check_second_order(f, xs, rtol=1e-5, atol=1e-5, eps=EPS):
    """All four compositions of jacfwd/jacrev against differences of the (checked) reverse Jacobian.

    Block [i][j] of each has shape out.shape + xs[i].shape + xs[j].shape.
    """
    args = on_backend(*xs)
    nums = _argnums(xs)
    jac = gpuad.jacrev(f, argnums=nums)
    expected = [numerical_jacobian(jac, xs, j, eps) for j in nums]  # [j][i]
    for outer in (gpuad.jacfwd, gpuad.jacrev):
        for inner in (gpuad.jacfwd, gpuad.jacrev):
            H = outer(inner(f, argnums=nums), argnums=nums)(*args)
            name = f"{outer.__name__}({inner.__name__})"
            for i in nums:
                for j in nums:
                    assert_close(H[i][j], expected[j][i], rtol, atol, f"{name} block [{i}][{j}]")


def check_dot_product(f, xs, rtol=1e-10, atol=1e-10, seed=2):
    """<u, J v> by forward mode equals <J^T u, v> by reverse mode, for random u, v."""
    rng = np.random.default_rng(seed)
    args = on_backend(*xs)
    vs = [rng.standard_normal(np.shape(x)) for x in xs]
    y, t = gpuad.jvp(f, args, on_backend(*vs))
    u = rng.standard_normal(np.shape(to_np(y)))
    _, pullback = gpuad.vjp(f, *args)
    cts = pullback(gnp.asarray(u))
    lhs = float(np.sum(u * to_np(t)))
    rhs = float(sum(np.sum(to_np(c) * v) for c, v in zip(cts, vs)))
    np.testing.assert_allclose(lhs, rhs, rtol=rtol, atol=atol * max(1.0, abs(lhs)))


def check_lists_like_arrays(f, reference, xs, what=""):
    """Where the reference gives nested lists the meaning of arrays, f does too; skips where the
    reference itself needs arrays."""
    import pytest
    expected = np.asarray(reference(*xs))
    lists = [x.tolist() for x in xs]
    try:
        from_lists = np.asarray(reference(*lists))
        same = from_lists.shape == expected.shape and np.allclose(from_lists, expected, equal_nan=True)
    except Exception:  # the reference refuses lists here (x.T, x.copy(), ...)
        same = False
    if not same:
        pytest.skip("the reference itself needs arrays here")
    assert_close(f(*lists), expected, rtol=1e-12, atol=1e-12, what=what)


def primitives_used(f, xs):
    """Names of the primitives f records on a reverse-mode tape at xs."""
    with core.new_trace(RevTrace) as trace:
        f(*[trace.new_input(x) for x in on_backend(*xs)])
    return {eq.prim.name for eq in trace.tape}


def count_evals(fn, *args):
    """(result, number of primitive evaluations on backend arrays during fn(*args))."""
    before = core.stats["evals"]
    out = fn(*args)
    return out, core.stats["evals"] - before


# ---------------------------------------------------------------- complex values (docs/complex.md)
# jvp is the R-linear tangent map J_x Re(v) + J_y Im(v) (J_x, J_y: the derivatives along the real
# and the imaginary part of an input); vjp its transpose for the pairing Re(sum u w), not the
# adjoint: the cotangent of a complex input is Re(u . J_x) - i Re(u . J_y), of a real one Re(u . J_x).
def crandom(shape, seed, lo=0.2, hi=1.2):
    """Complex values with real and imaginary parts of magnitude in [lo, hi] and random signs: off
    the principal branch cuts (the axes) of log, sqrt and the inverse trigonometric functions."""
    rng = np.random.default_rng(seed)

    def part():
        return rng.uniform(lo, hi, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return part() + 1j * part()


def complex_partials(f, zs, k, eps=1e-6):
    """(J_x, J_y): central differences of f(*zs) along the real and the imaginary part of zs[k],
    shaped out.shape + zs[k].shape; J_y is None for a real input."""
    z = np.asarray(zs[k])
    steps = (1.0, 1j) if np.iscomplexobj(z) else (1.0,)
    out = []
    for step in steps:
        cols = []
        for j in range(z.size):
            d = np.zeros(z.size, dtype=z.dtype)
            d[j] = step * eps
            plus, minus = list(zs), list(zs)
            plus[k], minus[k] = z + d.reshape(z.shape), z - d.reshape(z.shape)
            cols.append((to_np(f(*on_backend(*plus))) - to_np(f(*on_backend(*minus)))) / (2 * eps))
        y = to_np(f(*on_backend(*zs)))
        out.append(np.stack(cols, axis=-1).reshape(y.shape + z.shape))
    return out[0], (out[1] if len(out) > 1 else None)


def _contract_in(J, v):
    """J (out + in) applied to v (in)."""
    return np.tensordot(J, v, axes=v.ndim)


def _contract_out(u, J):
    """u (out) applied to J (out + in) from the left."""
    return np.tensordot(u, J, axes=u.ndim)


def random_like(x, seed):
    """Standard normal values shaped like x, complex where x is."""
    rng = np.random.default_rng(seed)
    x = np.asarray(x)
    v = rng.standard_normal(x.shape)
    return v + 1j * rng.standard_normal(x.shape) if np.iscomplexobj(x) else v


def check_complex(f, zs, tol=1e-7, seed=0):
    """jvp and vjp of f at zs (a tuple of arrays, complex or real) against the differences."""
    zs = tuple(np.asarray(z) for z in zs)
    J = [complex_partials(f, zs, k) for k in range(len(zs))]
    vs = tuple(random_like(z, seed + k) for k, z in enumerate(zs))
    y, t = gpuad.jvp(f, on_backend(*zs), on_backend(*vs))
    expected = sum(_contract_in(Jx, v.real) + (_contract_in(Jy, v.imag) if Jy is not None else 0)
                   for (Jx, Jy), v in zip(J, vs))
    assert_close(t, np.asarray(expected).astype(to_np(y).dtype), tol, tol, "jvp")
    u = random_like(to_np(y), seed + 10)
    cts = gpuad.vjp(f, *on_backend(*zs))[1](gnp.asarray(u))
    for k, ((Jx, Jy), c) in enumerate(zip(J, cts)):
        want = _contract_out(u, Jx).real
        if Jy is not None:
            want = want - 1j * _contract_out(u, Jy).real
        assert_close(c, want, tol, tol, f"vjp, input {k}")
        assert to_np(c).dtype == zs[k].dtype, "a cotangent has its input's dtype"
