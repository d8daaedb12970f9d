"""gpuad.sparse: detected patterns against dense Jacobians and known structures, colorings,
and compressed sweeps against dense jacfwd/jacrev/hessian."""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import test_primitives
from helpers import on_backend, to_np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_properties import (  # a module import: its op specs are read here, its tests are not collected twice
    program_function,
    programs,
)

import gpuad
import gpuad.numpy as gnp
import gpuad.scipy.linalg as gsl
from gpuad import backends, sparse
from gpuad.compiler.ir import Lit
from gpuad.core import Primitive, same
from gpuad.numpy.linalg import cholesky, solve
from gpuad.sparse import coloring

RNG = np.random.default_rng(0)
W = np.where(RNG.random((7, 9)) < 0.3, RNG.normal(size=(7, 9)), 0.0)  # a constant with structural zeros


def _host(x):
    return backends.current().to_numpy(x)


def values_of(matrix):
    """A result (scipy.sparse on NumPy, cupyx.scipy.sparse on CuPy) as a dense NumPy array."""
    return _host(matrix.toarray())


def band(n, lo, hi):
    """The pattern with diagonals -lo..hi."""
    return sum(np.eye(n, k=k, dtype=bool) for k in range(-lo, hi + 1)) > 0


def five_point(k):
    grid = np.arange(k * k).reshape(k, k)
    p = np.eye(k * k, dtype=bool)
    for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
        ok = (0 <= i + di) & (i + di < k) & (0 <= j + dj) & (j + dj < k)
        p[grid[ok], grid[(i + di)[ok], (j + dj)[ok]]] = True
    return p


def tridiagonal(x):
    inner = x[:-2] - 2 * x[1:-1] + x[2:] + gnp.sin(x[1:-1]) * x[1:-1]
    return gnp.concatenate([x[:1] ** 2 + x[1:2], inner, gnp.exp(x[-1:]) * x[-2:-1]])


def laplace_2d(x, k):
    u = gnp.pad(x.reshape(k, k), 1)
    lap = u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:] - 4 * u[1:-1, 1:-1]
    return (lap + x.reshape(k, k) ** 3).reshape(k * k)


def pentadiagonal(x):
    return x * x + gnp.pad(x[2:] * x[1:-1], (0, 2)) * 0.5 - gnp.pad(gnp.tanh(x[:-1]), (1, 0)) + gnp.pad(x[1:], (0, 1))


def blocks(x):
    b = x.reshape(4, 3)
    return (b * gnp.sum(b ** 2, axis=1, keepdims=True)).reshape(12)


def arrow(x):
    return gnp.concatenate([gnp.sum(x ** 2)[None], x[1:] * x[0] + x[1:] ** 2])


def per_sample(x):
    return gpuad.vmap(lambda v: gnp.array([v[0] * v[1], gnp.sin(v[1])]))(x.reshape(5, 2)).reshape(10)


def gathers(x):
    return gnp.take(x, np.array([3, 0, 0, 5])) * gnp.sum(x[::2]) + gnp.cumsum(x)[:4]


def matmul_pattern():
    """out[i, k] of A (2x3, x[:6]) @ B (3x2, x[6:]) depends on row i of A and column k of B."""
    p = np.zeros((4, 12), dtype=bool)
    for i in range(2):
        for k in range(2):
            p[2 * i + k, [3 * i + j for j in range(3)] + [6 + 2 * j + k for j in range(3)]] = True
    return p


# name, function, input size, known pattern (None: only checked against dense Jacobians)
CASES = [
    ("tridiagonal", tridiagonal, 8, band(8, 1, 1)),
    ("stencil_1d", lambda x: x[:-2] - 2 * x[1:-1] + x[2:] ** 2, 9, band(9, 0, 2)[:7]),
    ("laplace_2d", lambda x: laplace_2d(x, 4), 16, five_point(4)),
    ("pentadiagonal", pentadiagonal, 10, band(10, 1, 2)),
    ("blocks", blocks, 12, np.kron(np.eye(4, dtype=bool), np.ones((3, 3), dtype=bool))),
    ("arrow", arrow, 6, (np.eye(6) + np.eye(6)[:1] + np.eye(6)[:, :1]) > 0),
    ("per_sample", per_sample, 10, np.kron(np.eye(5, dtype=bool), np.array([[1, 1], [0, 1]], dtype=bool))),
    ("constant_matmul", lambda x: gnp.asarray(W) @ gnp.tanh(x), 9, W != 0),
    ("where_const", lambda x: gnp.where(np.arange(6) % 2 == 0, x ** 2, x[::-1]), 6,
     (np.eye(6) * (np.arange(6) % 2 == 0)[:, None] + np.eye(6)[::-1] * (np.arange(6) % 2 == 1)[:, None]) > 0),
    # a condition computed from a value's structural zeros: J != 0 is False off J's diagonal
    ("where_tangent", lambda x: gnp.where(gpuad.jacfwd(gnp.sin)(x) != 0, gnp.outer(x, gnp.cos(x)), 0.0).ravel(), 4,
     np.eye(4, dtype=bool).repeat(4, axis=0) & (np.arange(16) % 5 == 0)[:, None]),
    ("gathers", gathers, 7, None),
    ("sort", lambda x: gnp.sort(x.reshape(2, 4), axis=1).reshape(8) * x, 8, None),
    ("max_reduce", lambda x: gnp.max(x.reshape(3, 3), axis=0) * x[:3], 9, None),
    ("solve", lambda x: solve(gnp.eye(3) * 4 + x[:9].reshape(3, 3), x[9:]), 12, None),
    ("cholesky", lambda x: cholesky(x.reshape(3, 3) @ x.reshape(3, 3).T + gnp.eye(3)).reshape(9), 9,
     np.repeat(np.tri(3, dtype=bool).reshape(9, 1), 9, axis=1)),
    ("matmul", lambda x: (x[:6].reshape(2, 3) @ x[6:].reshape(3, 2)).reshape(4), 12, matmul_pattern()),
    # an inverse is dense in its matrix (documented: no symbolic factorisation), even of a diagonal
    ("inverse", lambda x: gnp.linalg.inv(gnp.eye(3) * 4 + gnp.diag(x[:3])).reshape(9) * x[3], 4,
     np.ones((9, 4), dtype=bool)),
    ("matrix_2d_out", lambda x: gnp.outer(x[:3], x[3:]) + x[:3, None], 5, None),
    # every factor of each matrix of a stack depends on that matrix alone (28 values per matrix)
    ("factorisations_stack", lambda x: _factors(x.reshape(2, 2, 2)), 8,
     np.kron(np.eye(2, dtype=bool), np.ones((28, 4), dtype=bool))),
]


def _factors(a):
    """Every factor of eigh, svd, qr and lu_factor of a stack, a row of them per matrix."""
    parts = [*gnp.linalg.eigh(a), *gnp.linalg.svd(a), *gnp.linalg.qr(a), gsl.lu_factor(a + 3 * gnp.eye(2))[0]]
    return gnp.concatenate([p.reshape(2, -1) for p in parts], axis=1).ravel()


def _dense(fun, x):
    return _host(gpuad.jacfwd(fun)(x)).reshape(-1, x.size)


@pytest.mark.parametrize("name, fun, n, known", CASES, ids=[c[0] for c in CASES])
def test_pattern_holds_the_dense_jacobian_and_matches_the_known_structure(name, fun, n, known):
    p = sparse.jacobian_sparsity(fun)(gnp.zeros(n))
    assert isinstance(p, sp.csr_array) and p.dtype == bool
    for _ in range(3):
        x = gnp.asarray(RNG.normal(size=n))
        dense = _dense(fun, x)
        assert p.shape == dense.shape
        assert not np.any((dense != 0) & ~p.toarray()), "a non-zero of the Jacobian outside the pattern"
    if known is not None:
        np.testing.assert_array_equal(p.toarray(), known)


@pytest.mark.parametrize("mode", ["auto", "forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("name, fun, n, known", CASES, ids=[c[0] for c in CASES])
def test_sparse_jacobian_equals_dense(name, fun, n, known, mode):
    x = gnp.asarray(RNG.normal(size=n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        J = sparse.jacobian(fun, mode=mode)(x)
    np.testing.assert_allclose(values_of(J), _dense(fun, x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(values_of(J), _host(gpuad.jacrev(fun)(x)).reshape(-1, n), rtol=1e-12, atol=1e-12)


HESSIANS = [
    ("rosenbrock", lambda x: gnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2), 8, band(8, 1, 1)),
    ("chain", lambda x: gnp.sum(x[1:] * x[:-1] ** 2) + gnp.sum(gnp.cos(x)), 7, band(7, 1, 1)),
    ("arrow", lambda x: x[0] * gnp.sum(x[1:] ** 2) + gnp.sum(gnp.exp(x)), 9,
     (np.eye(9) + np.eye(9)[:1] + np.eye(9)[:, :1]) > 0),
    ("grid", lambda x: gnp.sum(laplace_2d(x, 3) ** 2), 9, None),
    ("blocks", lambda x: gnp.sum(gnp.log(1 + gnp.sum(x.reshape(3, 3) ** 2, axis=1))), 9,
     np.kron(np.eye(3, dtype=bool), np.ones((3, 3), dtype=bool))),
    ("where_computed", lambda x: gnp.sum(gnp.where(x > 0, x ** 2, x * x[0])), 6,
     (np.eye(6) + np.eye(6)[:1] + np.eye(6)[:, :1]) > 0),
]


@pytest.mark.parametrize("name, fun, n, known", HESSIANS, ids=[h[0] for h in HESSIANS])
def test_sparse_hessian_equals_dense(name, fun, n, known):
    p = sparse.hessian_sparsity(fun)(gnp.zeros(n))
    assert (p != p.T).nnz == 0
    if known is not None:
        np.testing.assert_array_equal(p.toarray(), known)
    x = gnp.asarray(RNG.normal(size=n) * 0.5)
    dense = _host(gpuad.hessian(fun)(x))
    assert not np.any((dense != 0) & ~p.toarray())
    np.testing.assert_allclose(values_of(sparse.hessian(fun)(x)), dense, rtol=1e-10, atol=1e-10)


def test_arrow_hessian_takes_two_star_colors():
    p = sparse.hessian_sparsity(HESSIANS[2][1])(gnp.zeros(50))
    assert sparse.color(p, "star").max() + 1 == 2
    assert sparse.color(p, "column").max() + 1 == 50


def test_tridiagonal_takes_three_colors_and_banded_the_band_width():
    for n in (5, 50, 1000):
        assert sparse.color(band(n, 1, 1)).max() + 1 == 3
        assert sparse.color(band(n, 1, 1), "row").max() + 1 == 3
    assert sparse.color(band(200, 2, 3)).max() + 1 == 6
    assert sparse.color(sparse.jacobian_sparsity(tridiagonal)(gnp.zeros(100))).max() + 1 == 3


@pytest.mark.parametrize("k", [3, 5, 10, 17, 32])
def test_five_point_stencil_takes_at_most_eight_colors(k):
    p = sparse.jacobian_sparsity(lambda x: laplace_2d(x, k))(gnp.zeros(k * k))
    colors = sparse.color(p)
    assert colors.max() + 1 <= 8
    _assert_column_coloring(p, colors)


def _assert_column_coloring(p, colors):
    p = sp.csr_array(p)
    rows = np.repeat(np.arange(p.shape[0]), np.diff(p.indptr))
    pairs = np.unique(np.stack([rows, colors[p.indices]]), axis=1)
    assert pairs.shape[1] == p.nnz, "two columns of one color share a row"


def _assert_star_coloring(s, colors):
    """Neighbours differ, and every entry is recoverable: its column's color is alone in its row,
    or its row's color alone in its column."""
    s = sp.csr_array(s)
    rows = np.repeat(np.arange(s.shape[0]), np.diff(s.indptr))
    cols = s.indices
    off = rows != cols
    assert not np.any(colors[rows[off]] == colors[cols[off]]), "neighbours share a color"
    keys, counts = np.unique(rows * (colors.max() + 1) + colors[cols], return_counts=True)
    alone = lambda r, c: counts[np.searchsorted(keys, r * (colors.max() + 1) + colors[c])] == 1  # noqa: E731
    assert np.all(alone(rows, cols) | alone(cols, rows)), "an entry that no product holds alone"


@pytest.mark.parametrize("seed", range(5))
def test_colorings_of_random_patterns_are_valid(seed):
    rng = np.random.default_rng(seed)
    p = sp.random_array((40, 30), density=0.08, rng=rng, format="csr") != 0
    _assert_column_coloring(p, sparse.color(p))
    _assert_column_coloring(p.T, sparse.color(p, "row"))
    a = sp.random_array((30, 30), density=0.1, rng=rng) != 0
    s = sp.csr_array((a + a.T + sp.eye_array(30, dtype=bool)) != 0)  # a random graph, with the diagonal
    _assert_star_coloring(s, sparse.color(s, "star"))


def sparse_five_point(k):
    line = sp.diags_array([np.ones(k - 1), np.ones(k), np.ones(k - 1)], offsets=[-1, 0, 1], dtype=bool)
    return sp.csr_array((sp.kron(line, sp.eye_array(k)) + sp.kron(sp.eye_array(k), line)) != 0)


# large grids, past the sequential greedy's range: k = 250 takes j mod 6, k = 420 no j mod K below
# 9 (the lockstep greedy takes fewer), 61 and 120 likewise on small grids
@pytest.mark.parametrize("k", [61, 120, *(pytest.param(k, marks=pytest.mark.slow) for k in (250, 420))])
def test_five_point_stencils_of_any_size_take_at_most_eight_colors(k):
    p = sparse_five_point(k)
    colors = sparse.color(p)
    assert colors.max() + 1 <= 8
    _assert_column_coloring(p, colors)
    _assert_star_coloring(p, sparse.color(p, "star"))


def test_stored_zeros_and_unsorted_columns_are_no_entries():
    rows, cols = np.nonzero(band(30, 1, 1))
    data = np.r_[np.ones(rows.size, dtype=bool), False]  # a stored zero at (29, 26)
    coo = sp.csr_array((data, (np.r_[rows, 29], np.r_[cols, 26])), shape=(30, 30))
    last = slice(coo.indptr[29], None)  # row 29, its columns in reverse
    stored = sp.csr_array((np.r_[coo.data[:last.start], coo.data[last][::-1]],
                           np.r_[coo.indices[:last.start], coo.indices[last][::-1]], coo.indptr), shape=(30, 30))
    assert stored.nnz == rows.size + 1 and not stored.has_sorted_indices
    colors = sparse.color(stored)
    assert colors.max() + 1 == 3  # counted as an entry, it would take a fourth color
    _assert_column_coloring(band(30, 1, 1), colors)


@st.composite
def random_patterns(draw, symmetric=False):
    """Random patterns, some with a dense row (and, symmetric, column): a hub."""
    m = draw(st.integers(1, 40))
    n = m if symmetric else draw(st.integers(1, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    p = rng.random((m, n)) < draw(st.floats(0, 0.4))
    p[rng.integers(m)] |= draw(st.booleans())
    return sp.csr_array(p | p.T | np.eye(n, dtype=bool)) if symmetric else p


def _greedy_in_order(p, order):
    """Reference: the sequential greedy column coloring in the given order, on the dense P^T P."""
    conflicts = (p.T.astype(int) @ p.astype(int)) > 0
    colors = np.full(p.shape[1], -1)
    for j in order:
        colors[j] = min(set(range(p.shape[1] + 1)) - set(colors[conflicts[j]]))
    return colors


@settings(max_examples=150, deadline=None)
@given(random_patterns())
def test_column_colorings_in_rounds_are_the_greedy_in_their_order(p):
    q = coloring.as_pattern(p, "test")
    colors = coloring._frontier_columns(q)
    _assert_column_coloring(q, colors)
    order = np.argsort(coloring._ranks(q.T @ np.diff(q.indptr), coloring._previous_in_rows(q)))
    np.testing.assert_array_equal(colors, _greedy_in_order(p, order))


@settings(max_examples=150, deadline=None)
@given(random_patterns(symmetric=True))
def test_star_colorings_in_rounds_are_valid(s):
    _assert_star_coloring(s, coloring._frontier_star(coloring.as_pattern(s, "test")))


def test_colorings_in_rounds_past_one_mask_word():
    a = np.random.default_rng(3).random((150, 150)) < 0.5
    p = coloring.as_pattern(a, "test")
    colors = coloring._frontier_columns(p)
    assert colors.max() >= 64
    np.testing.assert_array_equal(colors, _greedy_in_order(a, np.argsort(coloring._ranks(p.T @ np.diff(p.indptr),
                                                                                coloring._previous_in_rows(p)))))
    s = coloring.as_pattern(a | a.T | np.eye(150, dtype=bool), "test")
    star = coloring._frontier_star(s)
    assert star.max() >= 64
    _assert_star_coloring(s, star)


def test_greedy_ties_go_in_index_order_unless_that_chains_the_rounds():
    assert coloring._depth(np.arange(-1, 99)) == 99  # a chain of 100
    assert coloring._depth(np.array([-1, 0, 0, 1, 1, 2, 2])) == 2  # a binary tree
    n = 60_000  # past the sequential greedy's range
    line = np.arange(n)
    ring = coloring.as_pattern(sp.csr_array((np.ones(3 * n, dtype=bool), (np.repeat(line, 3),
                                             (line[:, None] + [-1, 0, 1]).ravel() % n)), shape=(n, n)), "test")
    assert coloring._depth(coloring._previous_in_rows(ring)) > coloring.ROUNDS  # in index order, n rounds
    for mode, assert_valid in (("column", _assert_column_coloring), ("star", _assert_star_coloring)):
        colors = sparse.color(ring, mode)
        assert_valid(ring, colors)
        assert colors.max() + 1 <= 4


def periodic_five_point(k):
    line = sp.csr_array(sp.diags_array([np.ones(k - 1), np.ones(k), np.ones(k - 1), [1], [1]],
                                       offsets=[-1, 0, 1, k - 1, 1 - k], dtype=bool))
    return coloring.as_pattern(sp.kron(line, sp.eye_array(k)) + sp.kron(sp.eye_array(k), line), "test")


@pytest.mark.slow
def test_periodic_stencils_take_the_greedy_in_rounds_in_index_order():
    p = periodic_five_point(316)  # not banded, past the sequential greedy's range
    colors, star = sparse.color(p), sparse.color(p, "star")
    _assert_column_coloring(p, colors)
    _assert_star_coloring(p, star)
    assert colors.max() + 1 <= 11 and star.max() + 1 == 5


def sym_random(n, per_row, seed):
    rng = np.random.default_rng(seed)
    a = sp.csr_array((np.ones(n * per_row, dtype=bool), (np.repeat(np.arange(n), per_row),
                                                         rng.integers(0, n, n * per_row))), shape=(n, n))
    return coloring.as_pattern(a + a.T + sp.eye_array(n, dtype=bool), "test")


@pytest.mark.parametrize("n", [2_000, 60_000])
def test_star_colorings_in_rounds_with_many_clashes_are_valid(n):
    s = sym_random(n, 3, n)  # about a third of each round's vertices clash
    colors = sparse.color(s, "star")
    _assert_star_coloring(s, colors)
    assert colors.max() + 1 <= 17


def thirteen_point(k):
    """The Hessian pattern of a sum of squared five-point residuals: |di| + |dj| <= 2."""
    five = sparse_five_point(k)
    return coloring.as_pattern(five @ five, "test")


@pytest.mark.parametrize("k, most", [(40, 16), (100, 20), pytest.param(250, 16, marks=pytest.mark.slow)])
def test_thirteen_point_star_colorings(k, most):
    p = thirteen_point(k)
    colors = sparse.color(p, "star")  # k = 250: j mod 16, past the sequential greedy's range
    _assert_star_coloring(p, colors)
    assert colors.max() + 1 <= most
    in_rounds = coloring._frontier_star(p)
    _assert_star_coloring(p, in_rounds)
    assert in_rounds.max() + 1 <= 20


def test_random_column_colorings_in_rounds_take_no_more_colors_than_the_sequential_greedy():
    rng = np.random.default_rng(1)
    n = 60_000
    p = coloring.as_pattern(sp.csr_array((np.ones(3 * n, dtype=bool), (np.repeat(np.arange(n), 3),
                                                                       rng.integers(0, n, 3 * n))), shape=(n, n)), "t")
    colors = sparse.color(p)
    _assert_column_coloring(p, colors)
    assert colors.max() <= coloring._sequential_columns(p).max()


@pytest.mark.parametrize("n", [40, 100_000])
def test_banded_star_colorings_are_valid(n):
    tridiagonal = sp.csr_array(sp.diags_array([np.ones(n - 1), np.ones(n), np.ones(n - 1)], offsets=[-1, 0, 1]) != 0)
    colors = sparse.color(tridiagonal, "star")
    assert colors.max() + 1 == 3
    _assert_star_coloring(tridiagonal, colors)
    pentadiagonal = sp.csr_array(sp.diags_array([np.ones(n - abs(d)) for d in range(-2, 3)], offsets=range(-2, 3)) != 0)
    _assert_star_coloring(pentadiagonal, sparse.color(pentadiagonal, "star"))


@pytest.mark.parametrize("dt", ["float32", "float64"])
def test_dtypes_carry_through(dt):
    x = gnp.asarray(RNG.normal(size=12), dtype=dt)
    J = sparse.jacobian(tridiagonal)(x)
    assert J.dtype == np.dtype(dt)
    tol = 1e-5 if dt == "float32" else 1e-12
    np.testing.assert_allclose(values_of(J), _dense(tridiagonal, x), rtol=tol, atol=tol)
    H = sparse.hessian(HESSIANS[0][1])(x)
    assert H.dtype == np.dtype(dt)
    np.testing.assert_allclose(values_of(H), _host(gpuad.hessian(HESSIANS[0][1])(x)), rtol=tol * 10, atol=tol * 100)


def test_an_arrow_jacobian_is_right_and_warns_of_the_cost():
    x = gnp.asarray(RNG.normal(size=40))
    with pytest.warns(RuntimeWarning, match="needs 40 directions.*bidirectional"):
        J = sparse.jacobian(arrow)(x)
    np.testing.assert_allclose(values_of(J), _dense(arrow, x))


def test_bidirectional_mode_takes_an_arrow_in_three_directions(monkeypatch):
    from gpuad.sparse import compressed
    seen = []
    real = compressed.seed_rows
    monkeypatch.setattr(compressed, "seed_rows", lambda colors, dt: seen.append(compressed._count(colors)) or
                        real(colors, dt))
    x = gnp.asarray(RNG.normal(size=40))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no density warning: 3 directions of 40
        jac = sparse.jacobian(arrow, mode="bidirectional")
        J = jac(x)
        jac(x * 2)  # seeds are made once per plan and dtype
    np.testing.assert_allclose(values_of(J), _dense(arrow, x))
    assert sorted(seen) == [1, 2]  # the dense row backward, the rest forward in 2 colors


def test_pytrees_stack_their_leaves():
    def f(x, y):
        return {"a": x[1:] * y, "b": gnp.sum(x) + y[0]}
    x, y = gnp.asarray(RNG.normal(size=4)), gnp.asarray(RNG.normal(size=3))
    J = sparse.jacobian(f, argnums=(0, 1))(x, y)
    jx, jy = gpuad.jacfwd(f, argnums=(0, 1))(x, y)["a"], gpuad.jacfwd(f, argnums=(0, 1))(x, y)["b"]
    dense = np.block([[_host(jx[0]), _host(jx[1])], [_host(jy[0])[None], _host(jy[1])[None]]])
    np.testing.assert_allclose(values_of(J), dense)
    assert J.nnz == sparse.jacobian_sparsity(f, argnums=(0, 1))(x, y).nnz == 3 * 2 + 4 + 1


def test_hessians_of_several_arguments_are_one_symmetric_matrix():
    def f(x, y):
        return gnp.sum(x[1:] * x[:-1] ** 2) + gnp.sum(y ** 3 * x[:2])
    x, y = gnp.asarray(RNG.normal(size=4)), gnp.asarray(RNG.normal(size=2))
    blocks = gpuad.hessian(f, argnums=(0, 1))(x, y)
    dense = np.block([[_host(blocks[i][j]) for j in range(2)] for i in range(2)])
    np.testing.assert_allclose(values_of(sparse.hessian(f, argnums=(0, 1))(x, y)), dense, rtol=1e-12)
    assert sparse.hessian_sparsity(f, argnums=(0, 1))(x, y).nnz == np.count_nonzero(dense)


def test_other_arguments_are_traced_so_the_pattern_holds_for_all_their_values():
    f = lambda x, w, k: x * w + x[::-1] * k  # noqa: E731
    p = sparse.jacobian_sparsity(f)(gnp.zeros(4), gnp.zeros(4), 2.0)
    np.testing.assert_array_equal(p.toarray(), (np.eye(4) + np.eye(4)[::-1]) > 0)
    x, w = gnp.asarray(RNG.normal(size=4)), gnp.asarray(RNG.normal(size=4))
    np.testing.assert_allclose(values_of(sparse.jacobian(f)(x, w, 3.0)), _dense(lambda v: f(v, w, 3.0), x))


def test_compiled_functions_are_traced_through():
    f = gpuad.jit(laplace_2d, static_argnums=1)
    x = gnp.asarray(RNG.normal(size=25))
    np.testing.assert_array_equal(sparse.jacobian_sparsity(f)(x, 5).toarray(), five_point(5))
    np.testing.assert_allclose(values_of(sparse.jacobian(f)(x, 5)), _dense(lambda v: laplace_2d(v, 5), x))


@pytest.mark.parametrize("mode", ["forward", "reverse", "bidirectional"])
def test_compiling_a_sparse_jacobian_gives_the_same_csr_matrix(mode):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        compiled = gpuad.jit(sparse.jacobian(arrow, mode=mode))
        for _ in range(2):  # the second call replays the compiled sweep
            x = gnp.asarray(RNG.normal(size=12))
            J = compiled(x)
            eager = sparse.jacobian(arrow, mode=mode)(x)
            assert type(J) is type(eager)
            np.testing.assert_array_equal(_host(J.indices), _host(eager.indices))
            np.testing.assert_array_equal(_host(J.indptr), _host(eager.indptr))
            np.testing.assert_allclose(_host(J.data), _host(eager.data), rtol=1e-13)
            np.testing.assert_allclose(values_of(J), _dense(arrow, x), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(values_of(sparse.jacobian(gpuad.jit(arrow), mode=mode)(x)), values_of(J),
                                       rtol=1e-13)


@pytest.mark.parametrize("mode", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("name, fun", [("difference", lambda x: x[1:] - x[:-1]), ("cumsum", gnp.cumsum),
                                       ("scaled", lambda x: 2 * x)])
def test_compiling_the_sparse_jacobian_of_a_linear_function(name, fun, mode):
    """A linear function's Jacobian is a constant of the compiled program: still a CSR matrix."""
    x = gnp.asarray(RNG.normal(size=6))
    J = gpuad.jit(sparse.jacobian(fun, mode=mode))(x)
    assert type(J) is type(sparse.jacobian(fun)(x))
    np.testing.assert_allclose(values_of(J), _dense(fun, x), rtol=1e-14)
    np.testing.assert_allclose(values_of(J), _host(gpuad.jacrev(fun)(x)), rtol=1e-14)


@pytest.mark.parametrize("name, fun, n", [("laplace_2d", lambda x: laplace_2d(x, 70), 4900),
                                          ("tridiagonal", tridiagonal, 5000)])  # seeds past the small constants
def test_a_compiled_sparse_jacobian_planned_for_cupy_makes_its_seed_from_the_colors(name, fun, n):
    """Traced for CuPy, the compressed seed is eye(K, K + 1) at the colors (a region makes it from
    an n-vector), not a K x n constant; its regions, run on the host, give the eager values, and
    their CUDA source compiles."""
    from gpuad.compiler import codegen
    from gpuad.compiler.fusion import Region, fuse
    from gpuad.compiler.replay import Replay
    from gpuad.kernels import nvrtc
    if gpuad.backend() != "numpy":
        pytest.skip("plans for CuPy while the NumPy backend runs the kernels on the host")
    x = gnp.asarray(RNG.normal(size=n))
    lowered = gpuad.jit(sparse.jacobian(fun)).lower(x, backend="cupy")
    k = int(sparse.color(sparse.jacobian_sparsity(fun)(x)).max()) + 1
    consts = [a.val for eq in lowered.program.equations for a in eq.ins
              if isinstance(a, Lit) and hasattr(a.val, "shape")]
    assert not any(a.size >= k * n for a in consts), [a.shape for a in consts]
    data = Replay(lowered.program, plan_for="cupy").run(x)[0]
    np.testing.assert_allclose(to_np(data), to_np(sparse.jacobian(fun)(x).data), rtol=1e-13)
    try:
        nvrtc.version()
    except Exception:
        return  # no NVRTC here: the host run above still checked the regions
    for node in fuse(lowered.program, "cupy"):
        if isinstance(node, Region):
            kernel = codegen.render(node, "cuda")
            nvrtc.compile_ptx(kernel.text, kernel.name)


def test_compiling_a_sparse_hessian_and_returning_it_in_a_pytree():
    f = HESSIANS[1][1]
    x = gnp.asarray(RNG.normal(size=7))
    out = gpuad.jit(lambda v: {"H": sparse.hessian(f)(v), "g": gpuad.grad(f)(v)})(x)
    np.testing.assert_allclose(values_of(out["H"]), _host(gpuad.hessian(f)(x)), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_host(out["g"]), _host(gpuad.grad(f)(x)), rtol=1e-12)


def test_a_sparse_result_is_no_value_for_other_transforms():
    jac = sparse.jacobian(tridiagonal)
    x = gnp.asarray(RNG.normal(size=6))
    with pytest.raises(TypeError, match="block-diagonal"):
        gpuad.vmap(jac)(gnp.stack([x, x]))
    with pytest.raises(TypeError, match="order 3"):
        gpuad.jacfwd(jac)(x)
    with pytest.raises(TypeError, match="only be returned"):
        gpuad.jit(lambda v: jac(v).toarray())(x)


def test_a_given_sparsity_skips_detection_and_is_checked():
    x = gnp.asarray(RNG.normal(size=6))
    J = sparse.jacobian(tridiagonal, sparsity=band(6, 1, 1))(x)
    np.testing.assert_allclose(values_of(J), _dense(tridiagonal, x))
    with pytest.raises(ValueError, match="columns"):
        sparse.jacobian(tridiagonal, sparsity=band(5, 1, 1))(x)
    with pytest.raises(ValueError, match="rows"):
        sparse.jacobian(tridiagonal, sparsity=band(7, 1, 1)[:, :6])(x)
    with pytest.raises(ValueError, match="symmetric"):
        sparse.hessian(HESSIANS[0][1], sparsity=band(6, 0, 1))(x)
    H = sparse.hessian(HESSIANS[0][1], sparsity=band(6, 1, 1))(x)
    np.testing.assert_allclose(values_of(H), _host(gpuad.hessian(HESSIANS[0][1])(x)))


def test_patterns_are_found_once_per_signature(monkeypatch):
    from gpuad.sparse import compressed
    calls = []
    real = compressed.distance2
    monkeypatch.setattr(compressed, "distance2", lambda p: calls.append(1) or real(p))
    jac = sparse.jacobian(tridiagonal, mode="forward")
    for _ in range(3):
        jac(gnp.asarray(RNG.normal(size=6)))
    first = jac(gnp.asarray(RNG.normal(size=7)))
    assert len(calls) == 2
    first.indices[:] = 0  # a result owns its structure: the next one is untouched
    np.testing.assert_array_equal(_host(jac(gnp.zeros(7)).indices), sp.csr_array(band(7, 1, 1)).indices)


def test_clear_errors():
    with pytest.raises(ValueError, match="mode"):
        sparse.jacobian(tridiagonal, mode="sideways")
    with pytest.raises(ValueError, match="mode"):
        sparse.color(band(4, 1, 1), "diagonal")
    with pytest.raises(TypeError, match="pattern"):
        sparse.color([[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="symmetric"):
        sparse.color(band(4, 0, 1), "star")
    with pytest.raises(TypeError, match="floating-point"):
        sparse.jacobian_sparsity(tridiagonal)(np.arange(4))
    with pytest.raises(TypeError, match="control flow"):
        sparse.jacobian_sparsity(lambda x: x if x[0] > 0 else -x)(gnp.zeros(3))
    with pytest.raises(TypeError, match="scalar"):
        sparse.hessian(tridiagonal)(gnp.zeros(4))
    with pytest.raises(TypeError, match="hashable"):
        sparse.jacobian_sparsity(lambda x, s: x * len(s))(gnp.zeros(3), {1, 2})


def test_a_pattern_too_dense_to_list_is_refused_before_it_is_allocated():
    with pytest.raises(MemoryError, match="sparsity="):
        sparse.jacobian_sparsity(gnp.cumsum)(gnp.zeros(100_000))  # 5e9 entries, lower triangular


def test_a_primitive_without_a_rule_is_named():
    mystery = Primitive("mystery", lambda x: x, abstract=same)
    with pytest.raises(NotImplementedError, match="mystery"):
        sparse.jacobian_sparsity(lambda x: mystery(x * 2))(gnp.zeros(3))


def test_every_primitive_has_a_rule():
    from gpuad.ops import contract, elementwise, fft, indexing, linalg, reductions, shape
    prims = [p for m in (contract, elementwise, fft, indexing, linalg, reductions, shape)
             for p in vars(m).values() if isinstance(p, Primitive)]
    prims += list(elementwise.PRIMS.values())
    assert [p.name for p in prims if p.pattern is None] == []


# Every op spec of tests/test_primitives.py (one or more per primitive), but those whose output
# shape depends on values (they cannot be traced): the pattern holds the dense Jacobian, and the
# Hessian pattern of a scalar function of it (which traces the reverse rules: scatters, puts) the
# dense Hessian.
TRACEABLE = [s for s in test_primitives.SPECS if s.batchable]


def _dense_blocks(spec, xs):
    """The dense Jacobian of every output leaf in every input, as one (m, n) matrix."""
    nums = tuple(range(len(xs)))
    jac = gpuad.tree_leaves(gpuad.jacfwd(spec.f, argnums=nums)(*xs))
    sizes = [np.size(o) for o in gpuad.tree_leaves(spec.f(*on_backend(*xs)))]
    it = iter(jac)
    return np.vstack([np.hstack([_host(next(it)).reshape(m, np.size(x)) for x in xs]) for m in sizes])


@pytest.mark.parametrize("spec", TRACEABLE, ids=[s.name for s in TRACEABLE])
def test_every_primitive_spec_pattern_holds_its_jacobian(spec):
    xs = spec.inputs()
    p = sparse.jacobian_sparsity(spec.f, argnums=tuple(range(len(xs))))(*xs).toarray()
    dense = _dense_blocks(spec, xs)
    assert p.shape == dense.shape
    assert not np.any((dense != 0) & ~p)


ONE_INPUT = [s for s in TRACEABLE if len(s.shapes) == 1]


@pytest.mark.parametrize("spec", ONE_INPUT, ids=[s.name for s in ONE_INPUT])
def test_every_primitive_spec_hessian_pattern_holds_its_hessian(spec):
    x, = spec.inputs()

    def g(v):
        return gnp.sum(gpuad.tree_leaves(spec.f(v))[0] ** 2)
    p = sparse.hessian_sparsity(g)(x).toarray()
    dense = _host(gpuad.hessian(g)(x)).reshape(p.shape)
    assert not np.any((dense != 0) & ~p)


@pytest.mark.parametrize("spec", ONE_INPUT, ids=[s.name for s in ONE_INPUT])
def test_every_primitive_spec_forward_jacobian_pattern_holds_its_derivative(spec):
    """jacfwd carries an identity seed, zero off its diagonal: structural zeros through every
    primitive's forward rule (gpuad/compiler/structure.py) must keep each entry that can be non-zero."""
    x, = spec.inputs()

    def jac(v):
        return gpuad.jacfwd(lambda u: gpuad.tree_leaves(spec.f(u))[0])(v)
    p = sparse.jacobian_sparsity(jac)(x).toarray()
    dense = _host(gpuad.jacfwd(jac)(x)).reshape(p.shape)
    assert not np.any((dense != 0) & ~p)


@pytest.mark.parametrize("name, fun, n, known", HESSIANS, ids=[h[0] for h in HESSIANS])
def test_the_pattern_of_a_forward_gradient_is_the_hessians(name, fun, n, known):
    """Forward mode's seed is zero off its diagonal, and products with it stay zero there: the
    Jacobian pattern of jacfwd(f) is exact, as through grad, not dense."""
    hess = sparse.hessian_sparsity(fun)(gnp.zeros(n)).toarray()
    np.testing.assert_array_equal(sparse.jacobian_sparsity(gpuad.jacfwd(fun))(gnp.zeros(n)).toarray(), hess)
    assert hess.sum() < n * n


# Random programs of tests/test_properties.py (elementwise rows, broadcasting, reductions,
# cumsum, flips, rolls...): sparse results equal dense ones, and patterns hold them.
@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_random_programs_sparse_equals_dense(program):
    steps, xs = program
    f = program_function(steps)
    nums = tuple(range(len(xs)))
    args = [gnp.asarray(x) for x in xs]
    blocks = gpuad.jacfwd(f, argnums=nums)(*args)
    m = np.size(_host(f(*args)))
    dense = np.hstack([_host(b).reshape(m, np.size(x)) for b, x in zip(blocks, xs)])
    for mode in ("auto", "bidirectional"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            J = sparse.jacobian(f, argnums=nums, mode=mode)(*args)
        np.testing.assert_allclose(values_of(J), dense, rtol=1e-10, atol=1e-12)
    assert not np.any((dense != 0) & ~sparse.jacobian_sparsity(f, argnums=nums)(*args).toarray())

    def g(*a):
        return gnp.sum(f(*a) ** 2)
    hb = gpuad.hessian(g, argnums=nums)(*args)
    h = np.block([[_host(hb[i][j]).reshape(np.size(xs[i]), np.size(xs[j])) for j in nums] for i in nums])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        np.testing.assert_allclose(values_of(sparse.hessian(g, argnums=nums)(*args)), h, rtol=1e-9, atol=1e-10)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_random_programs_forward_jacobian_patterns_hold_their_derivatives(program):
    """The structural zeros of forward mode's seed through random programs: the pattern of jacfwd(f)
    in its first input holds every non-zero of that Jacobian's own Jacobian."""
    steps, xs = program
    f = program_function(steps)
    args = [gnp.asarray(x) for x in xs]

    def jac(x0):
        return gpuad.jacfwd(lambda u: f(u, *args[1:]))(x0)
    p = sparse.jacobian_sparsity(jac)(args[0]).toarray()
    dense = _host(gpuad.jacfwd(jac)(args[0])).reshape(p.shape)
    assert not np.any((dense != 0) & ~p)
