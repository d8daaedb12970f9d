"""Colorings of sparsity patterns: which directions may share one sweep.

A column coloring gives columns that share a row different colors (a distance-2 coloring of the
columns' bipartite graph), so one forward direction per color recovers every entry directly: J[i, j]
is entry (i, color[j]) of J @ seeds. A row coloring is the column coloring of the transpose
(reverse mode). A star coloring of a symmetric pattern (every path on four vertices has three
colors) needs fewer colors for Hessians: each entry is recovered from its row or, by symmetry,
its column (arrow-shaped Hessians: 2 colors where a column coloring needs n).

Stencils in their natural order have banded patterns, and those are colored with array
operations only: the cyclic coloring j mod K (Curtis, Powell and Reid 1974) for the smallest
valid K, each try one pass over the entries (tridiagonal: 3; a five-point stencil on a k x k
grid: 5 to 7 for most k), and for columns also the greedy coloring in the natural order, run in
lockstep: the columns j mod (the widest row's span) share no row, so each such class is one
vectorised step (a 2-D grid: 2k + 1 steps; at most 8 colors on five-point stencils). Other
patterns (no small K, rows spanning more than BANDED_STEPS columns) take the sequential greedy,
largest first, one Python step per vertex. (Tried and left out: a parallel greedy in rounds,
Jones and Plassmann, needs ~75 rounds of passes over all entries on a random pattern at 10^6, 3x
slower than the sequential loop, and over a thousand rounds for star colorings at 10^5, whose
rounds must keep vertices three edges apart; a lockstep star greedy on banded patterns is 4x
faster than the sequential one on a 13-point pattern at 10^6 but takes 19 colors, not 16-17.)
"""
import numpy as onp
import scipy.sparse as sp

MODES = ("column", "row", "star")
WORD = 64  # colors per mask word; also the largest cyclic K tried for columns
BANDED_STEPS = 4096  # the widest row span colored in lockstep: 2-D grids up to 2047 x 2047
STAR_CYCLES = 8  # the largest cyclic K tried for star colorings: a check counts n x K pairs (0.2 s at 10^6)
SEQUENTIAL_MAX = 50_000  # vertices up to which the sequential greedy (< 0.1 s) is tried beside a cyclic coloring


def color(pattern, mode="column"):
    """Colors (an int array, from 0) of the columns, rows, or (star) the variables of a pattern.

    >>> import numpy as np
    >>> tridiagonal = np.eye(6) + np.eye(6, k=1) + np.eye(6, k=-1)
    >>> color(tridiagonal)
    array([0, 1, 2, 0, 1, 2])
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
    if isinstance(pattern, sp.csr_array) and pattern.dtype == bool and pattern.has_sorted_indices \
            and pattern.data.all():
        return pattern  # already one (a detected pattern): no copy of its entries
    p = sp.csr_array(sp.csr_array(pattern) != 0)
    p.sort_indices()
    return p


def symmetric(p, name):
    """p, after checking that it is symmetric (what a star coloring and its recovery need)."""
    if p.shape[0] != p.shape[1] or (p != p.T).nnz:
        raise ValueError(f"{name}: a star coloring needs a symmetric pattern, got one of shape {p.shape} that is not")
    return p


# ---------------------------------------------------------------- column (distance-2) coloring
def distance2(p):
    """Column colors: columns that share a row differ. A band (no row spans more columns than
    the longest row has) takes j mod (that length), optimal, and so does one where j mod K is valid
    for K = the longest row (or, on large patterns, one more). Otherwise the fewer of j mod K for
    the smallest valid K up to twice the longest row, and the greedy: natural order in lockstep
    where rows span at most BANDED_STEPS columns (and an eighth of them: steps of 8 columns at
    least), else sequential, largest first."""
    m, n = p.shape
    length = onp.diff(p.indptr)
    longest = int(length.max(initial=0))  # a row's columns all differ: a lower bound
    some = onp.flatnonzero(length)
    span = _widest_span(p, some)
    if span <= longest:
        return onp.arange(n) % max(longest, 1)
    k = next((k for k in range(longest, min(2 * longest, WORD) + 1) if _distinct_in_rows(p, some, k)), None)
    if k == longest or k == longest + 1 and n > SEQUENTIAL_MAX:  # within a color of the bound
        return onp.arange(n) % k
    greedy = _lockstep(p, span) if span <= min(BANDED_STEPS, n // 8) else _sequential_columns(p)
    return greedy if k is None or greedy.max() < k else onp.arange(n) % k


def _widest_span(p, some):
    """The most columns any row spans, first to last (`some`: the non-empty rows; their columns
    may come in any order: products leave them so)."""
    if not some.size:
        return 0
    starts = p.indptr[some]
    return int((onp.maximum.reduceat(p.indices, starts) - onp.minimum.reduceat(p.indices, starts)).max()) + 1


def _distinct_in_rows(p, some, k):
    """Whether j mod k (k <= 64) differs on the columns of every row (`some`: the non-empty
    ones): the OR of their bits has as many bits as the row has entries."""
    seen = onp.bitwise_or.reduceat(onp.uint64(1) << (p.indices % k).astype(onp.uint64), p.indptr[some])
    return bool(onp.all(onp.bitwise_count(seen) == onp.diff(p.indptr)[some]))


def _lockstep(p, k):
    """The greedy coloring in the order of the classes of j mod k, then j (columns of a class share
    no row: k is at least every row's span), one vectorised step per class: each column takes the
    lowest color its rows leave. Each row's colors so far are a bit mask."""
    m, n = p.shape
    csc = p.tocsc()
    order = onp.arange(-(-n // k) * k).reshape(-1, k).T.ravel()
    order = order[order < n]  # columns by class, then index
    counts = onp.diff(csc.indptr)[order]
    entry = onp.repeat(csc.indptr[order] - onp.cumsum(counts) + counts, counts) + onp.arange(counts.sum())
    rows, owner = csc.indices[entry], onp.repeat(onp.arange(n), counts)  # owner: position in order
    col_edges = onp.searchsorted(order % k, onp.arange(k + 1))  # class c: order[col_edges[c]:col_edges[c + 1]]
    ent_edges = onp.r_[0, onp.cumsum(counts)][col_edges]
    colors = onp.zeros(n, dtype=onp.intp)
    taken = onp.zeros((m, 1), dtype=onp.uint64)
    for c in range(k):
        lo, hi = ent_edges[c], ent_edges[c + 1]
        used = _or_by(owner[lo:hi] - col_edges[c], taken[rows[lo:hi]], col_edges[c + 1] - col_edges[c])
        colors[order[col_edges[c]:col_edges[c + 1]]] = _lowest_free(used)
        taken = _add_colors(taken, rows[lo:hi], colors[order[owner[lo:hi]]])
    return colors


def _sequential_columns(p):
    """The sequential greedy, largest first (ties in index order). One Python step per column over
    its rows, each row keeping the colors taken in it as an integer bit mask, so the column
    intersection graph P^T P (dense for one dense row) is never formed."""
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


# ---------------------------------------------------------------- star coloring
def star(p):
    """Star coloring: a distance-1 coloring in which no path on four vertices takes two colors, so
    each entry is alone in its row's or its column's color. j mod K for the smallest valid K up to
    twice the typical degree plus one, or 3 (a larger K rarely beats the greedy), on large patterns; on small
    ones (or where no such K is valid) the sequential greedy where it takes fewer colors."""
    n = p.shape[0]
    v, w = _row_of_entries(p), p.indices
    off = v != w  # the graph's edges: the diagonal is no edge
    v, w = v[off], w[off]
    typical = int(onp.median(onp.bincount(v, minlength=n))) if n else 0
    k = next((k for k in range(1 if v.size == 0 else 2, min(max(2 * typical + 1, 3), STAR_CYCLES) + 1)
              if _is_star(v, w, onp.arange(n) % k, k)), None)
    if k is not None and n > SEQUENTIAL_MAX:
        return onp.arange(n) % k
    greedy = _sequential_star(p)
    return greedy if k is None or greedy.max() < k else onp.arange(n) % k


def _is_star(v, w, colors, k):
    """Whether colors is a star coloring of the graph with edges (v, w) (both directions listed):
    neighbours differ, and every edge's color is alone in one of its ends' neighbourhoods (else
    its two ends' other neighbours of those colors close a two-colored path)."""
    cv, cw = colors[v], colors[w]
    if onp.any(cv == cw):
        return False
    count = onp.bincount(v * k + cw, minlength=colors.size * k)  # neighbours of each color
    return bool(onp.all((count[v * k + cw] == 1) | (count[w * k + cv] == 1)))


def _sequential_star(p):
    """The sequential greedy star coloring (Gebremedhin, Manne and Pothen 2005), largest first. A
    path is checked when its last vertex is colored, as an endpoint (v-w-x-y) or inside (u-v-w-x);
    `seen[x][c]` counts x's neighbors of color c."""
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


# ---------------------------------------------------------------- shared array steps
def _row_of_entries(p):
    return onp.repeat(onp.arange(p.shape[0]), onp.diff(p.indptr))


def _starts(keys):
    """Where each run of equal keys begins (keys grouped)."""
    return onp.flatnonzero(onp.r_[True, keys[1:] != keys[:-1]]) if keys.size else keys


def _or_by(keys, masks, size):
    """Per key (grouped), the OR of its mask rows; zero for keys without any."""
    out = onp.zeros((size, masks.shape[1]), dtype=onp.uint64)
    starts = _starts(keys)
    if starts.size:
        out[keys[starts]] = onp.bitwise_or.reduceat(masks, starts, axis=0)
    return out


def _bits(colors, words):
    """One mask row per color, with its bit set."""
    masks = onp.zeros(colors.size * words, dtype=onp.uint64)
    masks[onp.arange(0, masks.size, words) + colors // WORD] = onp.uint64(1) << (colors % WORD).astype(onp.uint64)
    return masks.reshape(colors.size, words)


def _lowest_free(used):
    """The lowest color not in each mask row (a row's last word always has a free bit)."""
    word = onp.argmin(used == ~onp.uint64(0), axis=1)
    bits = used[onp.arange(used.shape[0]), word]
    lowest = ~bits & (bits + onp.uint64(1))  # the lowest clear bit, alone
    return word * WORD + onp.log2(lowest.astype(onp.float64)).astype(onp.intp)  # powers of 2: exact


def _widen(masks, colors):
    """masks with a spare zero word after the last word any color uses."""
    need = int(colors.max(initial=0)) // WORD + 2
    if need <= masks.shape[1]:
        return masks
    return onp.hstack([masks, onp.zeros((masks.shape[0], need - masks.shape[1]), dtype=onp.uint64)])


def _add_colors(taken, rows, colors):
    """taken with each row's new color (one per row) added."""
    taken = _widen(taken, colors)
    taken[rows] |= _bits(colors, taken.shape[1])
    return taken
