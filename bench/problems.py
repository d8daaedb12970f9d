"""The benchmark problems, each written once against an array namespace `np`.

A case is one problem under one transform. Its `setup(np, s)` returns the function to
differentiate (constants already turned into `np` arrays, so every engine holds them on its
own device) and its arguments as host NumPy arrays; its `reference(args, s)` is the exact
answer in closed form, so every engine is checked against the same truth before it is timed
(bench/test_bench.py checks those closed forms against finite differences).
"""
from collections.abc import Callable
from dataclasses import dataclass

import numpy as onp

# Dimensions per size. quick: the whole run in under a minute on a 2-core CPU; cpu: the
# default; gpu: fills an H100 (dense Jacobians of hundreds of MB, long vectors). The memory
# problems' results: cpu 64 MB (third derivatives, n=200) and 200 MB (jacfwd, n=5000; the
# issue's n=20000 would be 3.2 GB, too much to risk on a small shared machine); gpu 216 MB and 3.2 GB.
SIZES = {
    "quick": {"coupled": 64, "mlp": (128, 64, 8), "logistic": (32, 64), "batch": 1_000,
              "rosenbrock": 10_000, "tall": (8, 128), "wide": (128, 8),
              "memory_jacfwd": 500, "memory_third": (30, 8)},
    "cpu": {"coupled": 512, "mlp": (512, 256, 16), "logistic": (256, 512), "batch": 100_000,
            "rosenbrock": 1_000_000, "tall": (32, 2048), "wide": (2048, 32),
            "memory_jacfwd": 5_000, "memory_third": (200, 8)},
    "gpu": {"coupled": 8192, "mlp": (8192, 4096, 64), "logistic": (4096, 8192), "batch": 2_000_000,
            "rosenbrock": 20_000_000, "tall": (256, 16384), "wide": (16384, 256),
            "memory_jacfwd": 20_000, "memory_third": (300, 8)},
}
F8 = 8  # bytes per float64


@dataclass(frozen=True)
class Case:
    name: str
    problem: str                   # the problem it belongs to
    transform: str                 # jacfwd | jacrev | jacobian | hessian | hvp | vmap_jacfwd
    setup: Callable                # (np, s) -> (f, host args)
    reference: Callable            # (host args, s) -> exact result (NumPy)
    shape: Callable                # s -> what is computed, for the table
    floor_bytes: Callable | None = None  # s -> bytes any method must move (memory-bound cases)


def _rng(seed):
    return onp.random.default_rng(seed)


def with_direction(setup):
    """The same problem with a random direction v appended to its arguments (for hvp)."""
    def hvp_setup(np, s):
        f, (x,) = setup(np, s)
        return f, (x, _rng(99).normal(size=x.shape))
    return hvp_setup


def hvp_of(hessian_reference):
    return lambda args, s: hessian_reference(args[:1], s) @ args[1]


# ---------------------------------------------------------------- 1. the README's examples

def readme_vector(np, s):
    def f(x):
        return np.array([x[0] ** 2 * x[1], np.sin(x[2])])
    return f, (onp.array([1.0, 2.0, onp.pi / 2]),)


def readme_vector_jac(args, s):
    x0, x1, x2 = args[0]
    return onp.array([[2 * x0 * x1, x0 ** 2, 0.0], [0.0, 0.0, onp.cos(x2)]])


def readme_scalar(np, s):
    def f(x):
        return x[0] ** 2 * x[1] + x[1] ** 3
    return f, (onp.array([1.0, 2.0]),)


def readme_scalar_hess(args, s):
    x0, x1 = args[0]
    return onp.array([[2 * x1, 2 * x0], [2 * x0, 6 * x1]])


# ---------------------------------------------------------------- 2. nearest-neighbour coupled map

def coupled(np, s, key="coupled"):
    """A PDE-residual shape: row i couples x[i-1], x[i], x[i+1]; the ends are fixed."""
    def f(x):
        inner = x[1:-1] ** 2 * np.sin(x[:-2]) - 2.0 * x[1:-1] + np.exp(-x[2:])
        return np.concatenate([x[:1], inner, x[-1:]])
    return f, (_rng(0).normal(size=s[key]),)


def coupled_jac(args, s):
    x = args[0]
    n = x.size
    i = onp.arange(1, n - 1)
    J = onp.zeros((n, n))
    J[0, 0] = J[-1, -1] = 1.0
    J[i, i - 1] = x[i] ** 2 * onp.cos(x[i - 1])
    J[i, i] = 2 * x[i] * onp.sin(x[i - 1]) - 2.0
    J[i, i + 1] = -onp.exp(-x[i + 1])
    return J


# ---------------------------------------------------------------- 3. two-layer tanh MLP, m << n

def _mlp_weights(s):
    n, h, m = s["mlp"]
    r = _rng(1)
    return r.normal(size=(h, n)) / onp.sqrt(n), r.normal(size=(m, h)) / onp.sqrt(h), r.normal(size=n)


def mlp(np, s):
    W1, W2, x = _mlp_weights(s)
    W1, W2 = np.asarray(W1), np.asarray(W2)

    def f(x):
        return np.tanh(W2 @ np.tanh(W1 @ x))
    return f, (x,)


def mlp_jac(args, s):
    W1, W2, _ = _mlp_weights(s)
    h = onp.tanh(W1 @ args[0])
    y = onp.tanh(W2 @ h)
    return (1 - y ** 2)[:, None] * W2 @ ((1 - h ** 2)[:, None] * W1)


# ---------------------------------------------------------------- 4. logistic regression + L2

def _design(s):
    n, rows = s["logistic"]
    r = _rng(2)
    return r.normal(size=(rows, n)) / onp.sqrt(n), r.normal(size=n)


def logistic(np, s):
    A, w = _design(s)
    A = np.asarray(A)

    def f(w):
        return np.sum(np.log1p(np.exp(A @ w))) + 0.5 * np.sum(w * w)
    return f, (w,)


def logistic_hess(args, s):
    A, _ = _design(s)
    p = 1 / (1 + onp.exp(-A @ args[0]))
    return A.T @ ((p * (1 - p))[:, None] * A) + onp.eye(A.shape[1])


# ---------------------------------------------------------------- 5. per-sample 3x3 Jacobians

def batched(np, s):
    def g(x):
        return np.array([x[0] * x[1], x[1] * np.exp(x[2]), np.sin(x[0]) + x[2] ** 2])
    return g, (_rng(3).normal(size=(s["batch"], 3)),)


def batched_jac(args, s):
    x0, x1, x2 = args[0].T
    zero = onp.zeros_like(x0)
    e = onp.exp(x2)
    rows = [[x1, x0, zero], [zero, e, x1 * e], [onp.cos(x0), zero, 2 * x2]]
    return onp.stack([onp.stack(r, axis=-1) for r in rows], axis=-2)


# ---------------------------------------------------------------- 6. extended Rosenbrock at large n

def rosenbrock(np, s):
    def f(x):
        return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    return f, (_rng(4).normal(size=s["rosenbrock"]),)


def rosenbrock_hvp(args, s):
    """H is tridiagonal: H v computed from its three diagonals without forming H."""
    x, v = args
    diag = onp.zeros_like(x)
    diag[:-1] += 1200 * x[:-1] ** 2 - 400 * x[1:] + 2
    diag[1:] += 200
    off = -400 * x[:-1]  # H[i, i+1] = H[i+1, i]
    hv = diag * v
    hv[:-1] += off * v[1:]
    hv[1:] += off * v[:-1]
    return hv


# ---------------------------------------------------------------- 7. tall and wide Jacobians

def _layer(key):
    """x -> sin(B @ tanh(x)) with B of shape (m, n): tall when m > n, wide when m < n."""
    def setup(np, s):
        n, m = s[key]
        B, x = _layer_data(n, m)
        B = np.asarray(B)

        def f(x):
            return np.sin(B @ np.tanh(x))
        return f, (x,)
    return setup


def _layer_data(n, m):
    r = _rng(5)
    return r.normal(size=(m, n)) / onp.sqrt(n), r.normal(size=n)


def _layer_jac(key):
    def reference(args, s):
        B, _ = _layer_data(*s[key])
        t = onp.tanh(args[0])
        return onp.cos(B @ t)[:, None] * B * (1 - t ** 2)
    return reference


def _jac_shape(key):
    return lambda s: f"J {s[key][1]}x{s[key][0]}"


# ---------------------------------------------------------------- 8. memory: chunk_size="auto"

def _quartic_data(s):
    n, p = s["memory_third"]
    r = _rng(6)
    return r.normal(size=(p, n)) / onp.sqrt(n), r.normal(size=n)


def quartic(np, s):
    """A sum of p ridge functions (a_i . x)^4 / 4: every third derivative is nonzero."""
    A, x = _quartic_data(s)
    A = np.asarray(A)

    def f(x):
        return 0.25 * np.sum((A @ x) ** 4)
    return f, (x,)


def quartic_third(args, s):
    A, _ = _quartic_data(s)
    return onp.einsum("i,ij,ik,il->jkl", 6 * (A @ args[0]), A, A, A, optimize=True)


# ---------------------------------------------------------------- the cases

def _cases():
    readme = "1 README examples"
    cases = [
        Case("readme_jacfwd", readme, "jacfwd", readme_vector, readme_vector_jac, lambda s: "J 2x3"),
        Case("readme_jacrev", readme, "jacrev", readme_vector, readme_vector_jac, lambda s: "J 2x3"),
        Case("readme_hessian", readme, "hessian", readme_scalar, readme_scalar_hess, lambda s: "H 2x2"),
        Case("readme_hvp", readme, "hvp", with_direction(readme_scalar), hvp_of(readme_scalar_hess),
             lambda s: "Hv, n=2"),
        Case("coupled_jacfwd", "2 coupled map", "jacfwd", coupled, coupled_jac,
             lambda s: f"J {s['coupled']}x{s['coupled']}",
             lambda s: F8 * (s["coupled"] ** 2 + s["coupled"])),
        Case("mlp_jacrev", "3 tanh MLP", "jacrev", mlp, mlp_jac,
             lambda s: "J {2}x{0} (hidden {1})".format(*s["mlp"])),
        Case("logistic_hessian", "4 logistic loss", "hessian", logistic, logistic_hess,
             lambda s: "H {0}x{0} ({1} rows)".format(*s["logistic"])),
        Case("batched_vmap_jacfwd", "5 batched 3x3", "vmap_jacfwd", batched, batched_jac,
             lambda s: f"{s['batch']} x J 3x3", lambda s: F8 * 12 * s["batch"]),
        Case("rosenbrock_hvp", "6 Rosenbrock", "hvp", with_direction(rosenbrock), rosenbrock_hvp,
             lambda s: f"Hv, n={s['rosenbrock']}", lambda s: F8 * 3 * s["rosenbrock"]),
    ]
    memory = "8 memory"
    cases += [
        Case("memory_jacfwd", memory, "auto_jacfwd", lambda np, s: coupled(np, s, "memory_jacfwd"),
             coupled_jac, lambda s: f"J {s['memory_jacfwd']}x{s['memory_jacfwd']}"),
        Case("memory_jacrev_hessian", memory, "auto_jacrev_hessian", quartic, quartic_third,
             lambda s: "T {0}x{0}x{0} ({1} ridges)".format(*s["memory_third"])),
    ]
    for key in ("tall", "wide"):
        for transform in ("jacfwd", "jacrev", "jacobian"):
            cases.append(Case(f"{key}_{transform}", f"7 {key} Jacobian", transform, _layer(key),
                              _layer_jac(key), _jac_shape(key)))
    return cases


CASES = _cases()


def select(spec):
    """The cases named in a comma-separated spec; a name also selects its family ("tall" -> tall_*)."""
    if not spec:
        return list(CASES)
    names = [t.strip() for t in spec.split(",") if t.strip()]
    unknown = [t for t in names if not any(c.name == t or c.name.startswith(t + "_") for c in CASES)]
    if unknown:
        raise ValueError(f"unknown problem(s) {', '.join(unknown)}; choose from {', '.join(c.name for c in CASES)}")
    return [c for c in CASES if any(c.name == t or c.name.startswith(t + "_") for t in names)]
