"""What a compiled program computes and what fusion refuses: work and passes over memory it
would add. A seed's diagonal matrix summed along an axis is its diagonal (n values, not n^2); a
vector scattered into columns that a CPU kernel cannot tell apart at render time is computed once,
not in every column; a region that saves no pass over memory runs as its members. Each against
the plan known to be better, and the values against eager, the other AD mode and differences."""
import numpy as np
import pytest
from helpers import assert_close

import gpuad
import gpuad.numpy as gnp
from gpuad.compiler.fusion import Region, fuse
from gpuad.compiler.replay import Replay


def _program(fun, *args):
    return gpuad.jit(fun).lower(*args).program


def _square_matrices(program, n):
    return [eq.prim.name for eq in program.equations if eq.out.shape == (n, n)]


def _steps(k, n):
    """A sum of k smooth steps (tanh) over n points, as a function of its 2k + 2 parameters: each
    a scalar broadcast over the points."""
    x = gnp.asarray(np.linspace(-3.0, 3.0, n))

    def f(p):
        return p[-1] + sum(p[j] * gnp.tanh(p[-2] * (x - p[k + j])) for j in range(k))
    p = np.concatenate([np.linspace(0.5, 1.5, k), np.linspace(-1.0, 1.0, k), [2.0, 0.3]])
    return f, p


def _differences(f, p, h=1e-6):
    return np.stack([(np.asarray(f(p + h * e)) - np.asarray(f(p - h * e))) / (2 * h) for e in np.eye(len(p))], -1)


@pytest.mark.parametrize("k", [1, 3])
def test_jacrev_of_scalars_broadcast_over_points_holds_no_n_by_n_matrix(k):
    """jacrev's cotangent of each scalar parameter is its seed (eye(n)) times vectors, summed over
    the points: the sums are the diagonals, and no n x n value is left in the program."""
    n = 300
    f, p = _steps(k, n)
    program = _program(gpuad.jacrev(f), p)
    assert _square_matrices(program, n) == []
    got = gpuad.jit(gpuad.jacrev(f))(p)
    assert_close(got, gpuad.jacrev(f)(p), rtol=1e-12)
    assert_close(got, gpuad.jacfwd(f)(p), rtol=1e-12)
    assert_close(got, _differences(f, p), rtol=1e-6, atol=1e-7)


def test_functions_that_keep_zeros_keep_a_matrix_diagonal():
    """-D / 2 + (2 d) * D, of a diagonal matrix D, is diagonal (its primitives are zero where D is:
    their zero_where): its sum is its diagonal. exp(D) is not (exp(0) = 1), and stays a matrix."""
    n = 50
    d = np.linspace(0.1, 2.0, n)

    def kept(d):
        e = gnp.eye(n)
        return gnp.sum(-(d[:, None] * e) / 2.0 + (2.0 * d) * e, axis=0)

    def full(d):
        return gnp.sum(gnp.exp(d[:, None] * gnp.eye(n)), axis=1)
    assert _square_matrices(_program(kept, d), n) == []
    assert _square_matrices(_program(full, d), n) != []
    assert_close(gpuad.jit(kept)(d), 1.5 * d, rtol=1e-14)
    assert_close(gpuad.jit(full)(d), np.exp(d) + (n - 1), rtol=1e-14)
    assert_close(gpuad.jit(gpuad.jacrev(kept))(d), gpuad.jacfwd(kept)(d), rtol=1e-12)


def _regions(program, backend):
    return [r for r in fuse(program, backend) if isinstance(r, Region)]


def test_a_vector_scattered_into_columns_is_computed_once_on_the_cpu():
    """The steps' Jacobian (n x 8) is made by scattering n-vectors into its columns. A CPU kernel
    along the 8 columns computes a value in each of them before selecting one, so the vectors'
    tanh stay out of the n x 8 region there (a region of their own computes each once); a GPU's
    threads branch, and the n x 8 region makes them where they land."""
    f, p = _steps(3, 200)
    program = _program(gpuad.jacrev(f), p)
    wide = {b: [r for r in _regions(program, b) if r.shape == (200, 8)] for b in ("numpy", "cupy")}
    assert len(wide["numpy"]) == 1 and len(wide["cupy"]) == 1
    assert "tanh" not in [eq.prim.name for eq in wide["numpy"][0].equations]
    assert "tanh" in [eq.prim.name for eq in wide["cupy"][0].equations]
    unfused, fused = Replay(program, fusion=False).run(p), Replay(program, fusion=True).run(p)
    assert_close(fused[0], unfused[0], rtol=1e-14)


def test_a_region_that_saves_no_pass_over_memory_runs_as_its_members():
    """g * s[:, None, None] alone moves the bytes NumPy's multiply moves: no region on a GPU, and
    none on a CPU where NumPy's loops are long (tests/test_seconds.py); here (256 rows of 512) the
    rows decide: a region. With a value kept inside (+ 1 after it), or an input two members read, a
    region; on a GPU two computing members save a launch; on a CPU two independent ones save too
    little (compiler/seconds.py's margin)."""
    rng = np.random.default_rng(0)
    g, s, t = rng.normal(size=(256, 16, 32)), rng.uniform(size=256), rng.normal(size=(256, 16, 32))
    alone = _program(lambda g, s: g * s[:, None, None], g, s)
    inside = _program(lambda g, s: gnp.mean(g * s[:, None, None] + 1.0, axis=0), g, s)
    shared = _program(lambda g, t: (g * t, g - t), g, t)
    apart = _program(lambda g, t: (g * 2.0, t - 1.0), g, t)
    small = _program(lambda g, s: g * s[:, None, None], g[:, :2], s)
    assert len(_regions(alone, "numpy")) == 1 and _regions(alone, "cupy") == []
    assert len(_regions(inside, "numpy")) == 1
    assert len(_regions(shared, "numpy")) == 1
    assert _regions(apart, "numpy") == [] and len(_regions(apart, "cupy")) == 1
    assert len(_regions(small, "numpy")) == 1 and _regions(small, "cupy") == []
    for program, args in ((alone, (g, s)), (inside, (g, s)), (shared, (g, t)), (small, (g[:, :2], s))):
        for a, b in zip(*(Replay(program, fusion=f).run(*args) for f in (False, True))):
            assert_close(b, a, rtol=1e-14)


def test_a_kernel_reads_a_gpuad_numpy_array_in_place(monkeypatch):
    """gpuad.numpy's arrays are an ndarray subclass, which the kernels' type check refuses: a
    compiled call views its inputs as plain arrays once (no kernel refuses them, none copies them),
    a launcher given one views it (no copy), and the results are the kernels' on either."""
    from gpuad.compiler import host
    x = gnp.asarray(np.linspace(0.0, 1.0, 600).reshape(20, 30))
    assert type(x) is not np.ndarray
    seen = host._readable(x, x.dtype)
    assert type(seen) is np.ndarray and np.shares_memory(seen, x)

    def f(x):
        return gnp.sin(x) * x.T.sum(axis=0)[:, None] + 1.0
    jitted = gpuad.jit(f)
    got = jitted(x)
    refused, readable = [], host._readable
    monkeypatch.setattr(host, "_readable", lambda a, dtype: refused.append(a) or readable(a, dtype))
    assert_close(jitted(x), got, rtol=0)
    assert refused == [] and next(iter(jitted._cache.values())).replay().regions > 0
    assert_close(got, gpuad.jit(f)(np.asarray(x)), rtol=1e-15)
    assert_close(got, f(x), rtol=1e-14)


def test_scalars_picked_from_the_input_are_made_by_each_region_reading_them():
    """An implicit Euler step of a predator-prey system: its residual (2) and its Jacobian (2 x 2)
    read the same entries of y, scaled. Read by regions of two iteration spaces, they joined
    neither and ran as steps of their own (a call each); each region now makes them."""
    def residual(z, y):
        prey, predator = 1.5 * z[0], 0.8 * z[1]
        return z - y - 0.01 * gnp.stack([prey - prey * predator, predator * prey - 3.0 * predator])

    def step(y):
        return y - gnp.linalg.solve(gpuad.jacfwd(residual)(y, y), residual(y, y))
    y = np.array([1.2, 0.7])
    program = _program(step, y)
    plain = [n for n in fuse(program, "numpy") if not isinstance(n, Region)]
    assert [n.prim.name for n in plain if n.out.shape == ()] == []
    unfused, fused = Replay(program, fusion=False).run(y), Replay(program, fusion=True).run(y)
    assert_close(fused[0], unfused[0], rtol=1e-14)
    assert_close(gpuad.jit(step)(y), step(y), rtol=1e-12)
