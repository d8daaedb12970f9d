"""python -m bench.autograd_suite: HIPS autograd's own test suite, run with gpuad in autograd's place.

Takes a checkout of github.com/HIPS/autograd (--checkout; its code is not part of gpuad), writes a
small `autograd` package into a temporary folder that maps autograd's API onto gpuad's (grad,
value_and_grad, jacobian, elementwise_grad, holomorphic_grad, deriv, make_vjp, make_jvp, hessian;
autograd.numpy is gpuad.numpy, its random module NumPy's; autograd.test_util's check_grads checks
gpuad's jvp and vjp against central differences as autograd's does, with JAX's pairing of a
cotangent and a tangent, Re(sum(u * v)), since gpuad's VJP is the transpose), copies the test files
that test what a user calls (not autograd's internals: its tracer, vspaces, boxes, containers,
primitive definitions) and runs pytest on them. Prints the count of passed and failed tests per
file and the failures' first lines.

    python -m bench.autograd_suite --checkout /path/to/autograd [--files test_fft.py ...]
"""
import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# The files testing autograd's machinery rather than the functions users differentiate.
INTERNAL = {"test_core.py", "test_vspaces.py", "test_tests.py", "test_logic.py", "test_misc.py", "test_builtins.py",
            "test_dict.py", "test_list.py", "test_tuple.py", "test_wrappers.py", "test_performance.py",
            "_test_complexity.py", "profiling.py"}

_INIT = '''
import gpuad as _gpuad
import gpuad.numpy as _gnp


def grad(fun, argnum=0):
    return _gpuad.grad(fun, argnums=argnum)


def value_and_grad(fun, argnum=0):
    return _gpuad.value_and_grad(fun, argnums=argnum)


def holomorphic_grad(fun, argnum=0):
    return _gpuad.grad(fun, argnums=argnum, holomorphic=True)


def jacobian(fun, argnum=0):
    return _gpuad.jacrev(fun, argnums=argnum)


def hessian(fun, argnum=0):
    return _gpuad.hessian(fun, argnums=argnum)


def elementwise_grad(fun, argnum=0):
    def g(*args):
        y, pull = _gpuad.vjp(lambda x: fun(*args[:argnum], x, *args[argnum + 1:]), args[argnum])
        return pull(_gnp.ones_like(y))[0]
    return g


def deriv(fun, argnum=0):
    def d(*args):
        x = args[argnum]
        return _gpuad.jvp(lambda x: fun(*args[:argnum], x, *args[argnum + 1:]), (x,), (_gnp.ones_like(x),))[1]
    return d


def make_vjp(fun, argnum=0):
    def m(*args):
        y, pull = _gpuad.vjp(lambda x: fun(*args[:argnum], x, *args[argnum + 1:]), args[argnum])
        return (lambda u: pull(u)[0]), y
    return m


def make_jvp(fun, argnum=0):
    def m(*args):
        return lambda v: _gpuad.jvp(lambda x: fun(*args[:argnum], x, *args[argnum + 1:]), (args[argnum],), (v,))
    return m


tuple, list, dict, isinstance = tuple, list, dict, isinstance
'''

_NUMPY = '''
import numpy.random as random  # noqa: F401
from gpuad.numpy import *  # noqa: F401,F403
from gpuad.numpy import fft, linalg  # noqa: F401
import gpuad.numpy as _g


def __getattr__(name):
    return getattr(_g, name)
'''

_TEST_UTIL = '''
from itertools import product

import numpy as onp

import gpuad

TOL = RTOL = EPS = 1e-6


def scalar_close(a, b):
    return abs(a - b) < TOL or abs(a - b) / abs(a + b) < RTOL


def _leaves(x):
    return [l for v in x for l in _leaves(v)] if isinstance(x, (tuple, list)) else [onp.asarray(x)]


def _rebuild(like, leaves):
    if isinstance(like, (tuple, list)):
        out, k = [], 0
        for v in like:
            n = len(_leaves(v))
            out.append(_rebuild(v, leaves[k:k + n]))
            k += n
        return type(like)(out)
    return leaves[0]


def _randn(x):
    def one(a):
        v = onp.asarray(onp.random.randn(*a.shape))
        if onp.iscomplexobj(a):
            v = v + 1j * onp.asarray(onp.random.randn(*a.shape))
        return v.astype(a.dtype) if a.dtype.kind in "fc" else v
    return _rebuild(x, [one(a) for a in _leaves(x)])


def _inner(a, b):  # Re(sum(conj(a) b)): the real inner product of C as R^2
    return sum(float(onp.real(onp.vdot(onp.asarray(p).ravel(), onp.asarray(q).ravel())))
               for p, q in zip(_leaves(a), _leaves(b)))


def _pairing(u, v):  # Re(sum(u v)): how a cotangent acts on a tangent (JAX's and gpuad's convention)
    return sum(float(onp.real(onp.sum(onp.asarray(p) * onp.asarray(q)))) for p, q in zip(_leaves(u), _leaves(v)))


def _step(x, v, h):
    return _rebuild(x, [a + h * b for a, b in zip(_leaves(x), _leaves(v))])


def _numeric_jvp(f, x, v):
    plus, minus = _leaves(f(_step(x, v, EPS / 2))), _leaves(f(_step(x, v, -EPS / 2)))
    return [(onp.asarray(p) - onp.asarray(m)) / EPS for p, m in zip(plus, minus)]


def _jvp(f, x, v):
    return gpuad.jvp(f, (x,), (v,))[1]


def _vjp(f, x, u):
    return gpuad.vjp(f, x)[1](u)[0]


def check_jvp(f, x):
    v = _randn(x)
    exact, numeric = _leaves(_jvp(f, x, v)), _numeric_jvp(f, x, v)
    w = _randn(numeric)
    assert scalar_close(_inner(w, exact), _inner(w, numeric)), f"jvp: {exact} against {numeric}"


def check_vjp(f, x):
    y = f(x)
    u, v = _randn(_rebuild(y, _leaves(y))), _randn(x)
    ct = _vjp(f, x, u)
    exact, numeric = _pairing(ct, v), _pairing(u, _numeric_jvp(f, x, v))
    assert scalar_close(exact, numeric), f"vjp: {exact} against {numeric}"


def _unary(f, argnum, args):
    """f as a function of args[argnum] (a tuple of them for a tuple argnum), and that input."""
    if isinstance(argnum, (tuple, list)):
        def g(xs):
            full = list(args)
            for k, x in zip(argnum, xs):
                full[k] = x
            return f(*full)
        return g, tuple(args[k] for k in argnum)
    return (lambda x: f(*args[:argnum], x, *args[argnum + 1:])), args[argnum]


def check_grads(f, argnum=0, modes=None, order=2):
    modes = ["fwd", "rev"] if modes is None else modes

    def checked(*args, **kwargs):
        g, x = _unary(lambda *a: f(*a, **kwargs), argnum, args)
        if "fwd" in modes:
            check_jvp(g, x)
            if order > 1:
                check_grads(lambda x, v: _jvp(g, x, v), (0, 1), modes, order - 1)(x, _randn(x))
        if "rev" in modes:
            check_vjp(g, x)
            if order > 1:
                y = g(x)
                check_grads(lambda x, u: _vjp(g, x, u), (0, 1), modes, order - 1)(x, _randn(_rebuild(y, _leaves(y))))
    return checked


def check_equivalent(x, y):
    v = _randn(x)
    assert scalar_close(_inner(x, v), _inner(y, v)), f"{x} against {y}"


def combo_check(fun, *args, **kwargs):
    def _combo_check(*cargs, **ckwargs):
        keyed = [[(k, x) for x in xs] for k, xs in ckwargs.items()]
        for _args in product(*cargs):
            for _kwargs in product(*keyed):
                check_grads(lambda *a, **kw: fun(*a, **kw), *args, **kwargs)(*_args, **dict(_kwargs))
    return _combo_check
'''


# autograd.scipy.<name> reads gpuad.scipy.<name>; a name gpuad lacks (scipy.signal, integrate,
# stats.dirichlet) is SciPy's own, so that only the tests differentiating it fail
_SCIPY = '''
import importlib

try:
    _module = importlib.import_module("gpuad.scipy.{name}")
except ImportError:
    _module = None


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return importlib.import_module(f"{{__name__}}.{{name}}")
    except ImportError:
        pass
    if _module is not None and hasattr(_module, name):
        return getattr(_module, name)
    scipy_object = importlib.import_module("scipy")
    for part in "{name}".split(".") + [name]:
        scipy_object = getattr(scipy_object, part)
    return scipy_object
'''
_SCIPY_MODULES = ["linalg", "special", "signal", "integrate", "misc", "stats"]
_STATS = ["norm", "multivariate_normal", "beta", "gamma", "poisson", "t", "dirichlet", "chi2"]


def shim(root):
    """Write the autograd package mapped onto gpuad into root."""
    pkg = root / "autograd"
    (pkg / "numpy").mkdir(parents=True)
    (pkg / "scipy" / "stats").mkdir(parents=True)
    (pkg / "__init__.py").write_text(_INIT)
    (pkg / "numpy" / "__init__.py").write_text(_NUMPY)
    (pkg / "numpy" / "random.py").write_text("from numpy.random import *  # noqa: F401,F403\n")
    (pkg / "test_util.py").write_text(_TEST_UTIL)
    (pkg / "scipy" / "__init__.py").write_text("from . import " + ", ".join(_SCIPY_MODULES) + "\n")
    for name in _SCIPY_MODULES[:-1]:
        (pkg / "scipy" / f"{name}.py").write_text(_SCIPY.format(name=name))
    (pkg / "scipy" / "stats" / "__init__.py").write_text(_SCIPY.format(name="stats"))
    for name in _STATS:
        (pkg / "scipy" / "stats" / f"{name}.py").write_text(_SCIPY.format(name=f"stats.{name}"))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.autograd_suite", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkout", required=True, type=Path, help="a clone of github.com/HIPS/autograd")
    ap.add_argument("--files", nargs="*", help="test files to run (default: all that are not internal)")
    args = ap.parse_args(argv)
    tests = args.checkout / "tests"
    names = args.files or sorted(p.name for p in tests.glob("test_*.py") if p.name not in INTERNAL)
    gpuad_root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shim(root)
        run = root / "tests"
        run.mkdir()
        for name in names + ["conftest.py", "numpy_utils.py"]:
            shutil.copy(tests / name, run / name)
        (root / "pytest.ini").write_text("[pytest]\n")
        command = [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", "--tb=line", "-W", "ignore"]
        out = subprocess.run([*command, *names], cwd=run, capture_output=True, text=True,
                             env={"PYTHONPATH": f"{root}:{gpuad_root}", "PATH": "/usr/bin:/bin",
                                  "OPENBLAS_NUM_THREADS": "1", "HOME": tmp})
    print(out.stdout[-20000:])
    return out.returncode


if __name__ == "__main__":
    sys.exit(main())
