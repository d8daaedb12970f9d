"""Colorings of sparsity patterns: which directions may share one sweep.

A column coloring gives columns that share a row different colors (a distance-2 coloring of the
columns' bipartite graph), so one forward direction per color recovers every entry directly: J[i, j]
is entry (i, color[j]) of J @ seeds. A row coloring is the column coloring of the transpose
(reverse mode). A star coloring of a symmetric pattern (every path on four vertices has three
colors) needs fewer colors for Hessians: each entry is recovered from its row or, by symmetry,
its column (arrow-shaped Hessians: 2 colors where a column coloring needs n).

Greedy, in largest-first order (ties in index order, which is optimal on banded patterns:
tridiagonal 3 colors). The order is vectorised; the greedy pass is one Python step per column
over the column's rows, each row keeping the set of colors taken in it as an integer bit mask,
so the column intersection graph P^T P (dense for one dense row) is never formed.
"""
import numpy as onp
import scipy.sparse as sp

MODES = ("column", "row", "star")


def color(pattern, mode="column"):
    """Colors (an int array, from 0) of the columns, rows, or (star) the variables of a pattern.

    >>> import numpy as np
    >>> tridiagonal = np.eye(6) + np.eye(6, k=1) + np.eye(6, k=-1)
    >>> color(tridiagonal)
    array([1, 2, 0, 1, 2, 0])
    >>> arrow = np.eye(5) + np.eye(5)[:1] + np.eye(5)[:, :1]
    >>> color(arrow, "star")
    array([0, 1, 1, 1, 1])
    """
    if mode not in MODES:
        raise ValueError(f"color: mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    p = as_pattern(pattern, "color")
    if mode == "star":
        return star(symmetric(p, "color"))
    return distance2(p if mode == "column" else p.T.tocsr())


def as_pattern(pattern, name):
    """A boolean CSR array (sorted indices) from a SciPy sparse array or matrix, or a dense 2-D
    array; CuPy arrays and cupyx sparse matrices are read back to the host first."""
    if hasattr(pattern, "get") and not sp.issparse(pattern):  # CuPy: .get() is the host copy
        pattern = pattern.get()
    if not (sp.issparse(pattern) or isinstance(pattern, onp.ndarray) and pattern.ndim == 2):
        raise TypeError(f"{name}: a pattern is a 2-D array or a scipy.sparse array, got {type(pattern).__name__}")
    p = sp.csr_array(sp.csr_array(pattern) != 0)
    p.sort_indices()
    return p


def distance2(p):
    """Column colors: columns that share a row differ."""
    csc = p.tocsc()
    # Largest first, by the number of entries in the column's rows: a bound on its degree in the
    # column intersection graph that needs no P^T P.
    weight = csc.T @ onp.diff(p.indptr)
    order = onp.argsort(-weight, kind="stable")
    ptr, rows = csc.indptr.tolist(), csc.indices.tolist()
    taken = [0] * p.shape[0]  # per row: bit c set when a column of color c has an entry in it
    colors = [0] * p.shape[1]
    for j in order.tolist():
        mine = rows[ptr[j]:ptr[j + 1]]
        mask = 0
        for i in mine:
            mask |= taken[i]
        c = (~mask & (mask + 1)).bit_length() - 1  # the lowest color no row of the column has
        bit = 1 << c
        for i in mine:
            taken[i] |= bit
        colors[j] = c
    return onp.array(colors, dtype=onp.intp)


def symmetric(p, name):
    """p, after checking that it is symmetric (what a star coloring and its recovery need)."""
    if p.shape[0] != p.shape[1] or (p != p.T).nnz:
        raise ValueError(f"{name}: a star coloring needs a symmetric pattern, got one of shape {p.shape} that is not")
    return p


def star(p):
    """Star coloring (Gebremedhin, Manne and Pothen 2005): a distance-1 coloring in which no path
    on four vertices takes two colors. A path is checked when its last vertex is colored, as an
    endpoint (v-w-x-y) or inside (u-v-w-x); `seen[x][c]` counts x's neighbors of color c."""
    rows, cols = p.nonzero()
    off = rows != cols  # the graph's edges: the diagonal is no edge
    g = sp.csr_array((onp.ones(off.sum(), dtype=bool), (rows[off], cols[off])), shape=p.shape)
    order = onp.argsort(-onp.diff(g.indptr), kind="stable")
    ptr, nbr = g.indptr.tolist(), g.indices.tolist()
    n = p.shape[0]
    colors, seen = [-1] * n, [{} for _ in range(n)]
    for v in order.tolist():
        forbidden = set()
        for w in nbr[ptr[v]:ptr[v + 1]]:
            cw = colors[w]
            if cw < 0:
                continue
            forbidden.add(cw)
            inside = seen[v].get(cw, 0) >= 2  # another neighbor u of v has w's color: u-v-w-x
            for x in nbr[ptr[w]:ptr[w + 1]]:
                if x != v and colors[x] >= 0 and (inside or seen[x].get(cw, 0) >= 2):  # or v-w-x-y
                    forbidden.add(colors[x])
        c = 0
        while c in forbidden:
            c += 1
        colors[v] = c
        for w in nbr[ptr[v]:ptr[v + 1]]:
            seen[w][c] = seen[w].get(c, 0) + 1
    return onp.array(colors, dtype=onp.intp)
