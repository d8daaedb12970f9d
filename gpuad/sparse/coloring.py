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
grid: 5 to 7 for most k; star colorings of a 13-point one: 14 to 19), and for columns also the
greedy coloring in the natural order, run in lockstep: the columns j mod (the widest row's span)
share no row, so each such class is one vectorised step (a 2-D grid: 2k + 1 steps; at most 8
colors on five-point stencils). Other patterns take the greedy largest first: on small ones (up
to SEQUENTIAL_MAX vertices) the sequential greedy, one Python step per vertex; on large ones the
same greedy in rounds over a frontier (Jones and Plassmann with the greedy order as
priorities), each round coloring at once every vertex whose earlier neighbours are all colored,
all rounds together one pass over the entries. For columns that is the sequential greedy's
coloring in its order (rows longer than FRONTIER_ROW, which take a round per column, keep the
sequential greedy); for star colorings a round's vertices can close two-colored paths between
them, and all but the earliest of each such group wait for the next round. Ties in the order go
by index, as in the sequential greedy, whose natural order colors stencils best: a 2-D grid
takes about i + j rounds; where the chain of earlier neighbours is longer than ROUNDS (a 1-D
chain or ring: a round per vertex), by j mod 64, then j. On large patterns the rounds run
several times faster than the sequential greedy, with as many colors or about as many (the
times: bench/results/sparse-cpu-2026-11-26-frontier.md). (Tried and left out: rounds passing
over all entries, as plain Jones and Plassmann does, ~75 of them on a random pattern at 10^6,
slower than the sequential loop, and over a thousand for star colorings at 10^5, whose rounds
kept vertices three edges apart; a lockstep star greedy on banded patterns, 19 colors on a
13-point pattern; ties by j mod 64 throughout: 19-20 star colors on the 13-point pattern, 8 on a
periodic five-point one, 24 column colors on the 13-point one, where index order takes 17, 5 and
19; ties in a pseudo-random order, 1-2 colors more still.)
"""
import numpy as onp
import scipy.sparse as sp

MODES = ("column", "row", "star")
WORD = 64  # colors per mask word; also the largest cyclic K tried for columns
BANDED_STEPS = 4096  # the widest row span colored in lockstep: 2-D grids up to 2047 x 2047
STAR_CYCLES = 32  # the largest cyclic K tried for star colorings (a full check counts n x K pairs)
QUICK_CYCLES = 8  # a cyclic star coloring taken without the greedy beside it, on large patterns
WINDOW = 1 << 14  # vertices of the subgraph on which a cyclic star coloring is tried first
SEQUENTIAL_MAX = 50_000  # vertices up to which the greedy is the sequential one (still quick), not the one in rounds
SEQUENTIAL_PATHS = 10**7  # paths on three vertices up to which the sequential star greedy (still quick) is tried
ROUNDS = 8192  # the longest chain of earlier neighbours that ties in index order may make rounds of
FRONTIER_ROW = 256  # the longest row colored in rounds (each moves a row on by one column; masks widen)


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
    least), else largest first (`_sequential_columns` on small patterns or long rows, else
    `_frontier_columns`)."""
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
    if span <= min(BANDED_STEPS, n // 8):
        greedy = _lockstep(p, span)
    else:  # rounds move each row on by a column at most: long rows take the sequential greedy
        greedy = _sequential_columns(p) if n <= SEQUENTIAL_MAX or longest > FRONTIER_ROW else _frontier_columns(p)
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
    entry, owner = _ranges(csc.indptr, order)  # owner: position in order
    rows = csc.indices[entry]
    col_edges = onp.searchsorted(order % k, onp.arange(k + 1))  # class c: order[col_edges[c]:col_edges[c + 1]]
    ent_edges = onp.searchsorted(owner, col_edges)
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


def _frontier_columns(p):
    """The greedy coloring, largest first (`_ranks`), in rounds (Jones and Plassmann) over a
    frontier: a row's columns conflict pairwise, so they are colored in priority order, and a
    column is ready when it heads each of its rows' uncolored columns. Each round colors every
    ready column at once (they share no row) with the lowest color its rows leave, and moves its
    rows' heads on: one pass over each entry in all, the same colors as the sequential greedy in
    that order. Each row's colors so far are a bit mask, so P^T P is never formed."""
    m, n = p.shape
    rank = _ranks(p.T @ onp.diff(p.indptr), _previous_in_rows(p))  # weight: a bound on the column's degree
    q = sp.csr_array((onp.ones(p.nnz, dtype=bool), rank[p.indices], p.indptr), shape=(m, n))
    q.sort_indices()  # each row's columns in priority order
    rows, cols = _row_of_entries(q), q.indices
    first = onp.r_[True, rows[1:] != rows[:-1]] if rows.size else onp.zeros(0, dtype=bool)
    last = onp.r_[first[1:], True] if rows.size else first
    waits = onp.bincount(cols[~first], minlength=n)  # rows in which a column is not yet the head
    by_column = sp.csr_array((onp.arange(q.nnz), cols, q.indptr), shape=(m, n)).tocsc()  # entries per column
    colors = onp.zeros(n, dtype=onp.intp)
    taken = onp.zeros((m, 1), dtype=onp.uint64)
    ready = onp.flatnonzero(waits == 0)
    while ready.size:
        where, owner = _ranges(by_column.indptr, ready)
        entries = by_column.data[where]
        colors[ready] = _lowest_free(_or_by(owner, taken[rows[entries]], ready.size))
        taken = _add_colors(taken, rows[entries], colors[ready][owner])
        ready = _released(waits, cols[entries[~last[entries]] + 1])
    return colors[rank]


# ---------------------------------------------------------------- star coloring
def star(p):
    """Star coloring: a distance-1 coloring in which no path on four vertices takes two colors, so
    each entry is alone in its row's or its column's color. j mod K for the smallest valid K up to
    twice the typical degree plus one, or 3 (a larger K rarely beats the greedy): on large
    patterns at once if K <= QUICK_CYCLES; otherwise the greedy where it takes fewer colors, the
    sequential one where it is cheap (small, no high degrees), else the one in rounds."""
    n = p.shape[0]
    v, w = _row_of_entries(p), p.indices
    off = v != w  # the graph's edges: the diagonal is no edge
    v, w = v[off], w[off]
    typical = int(onp.median(onp.bincount(v, minlength=n))) if n else 0
    k = _star_cycle(v, w, n, min(max(2 * typical + 1, 3), STAR_CYCLES))
    if k is not None and k <= QUICK_CYCLES and n > SEQUENTIAL_MAX:
        return onp.arange(n) % k
    cheap = n <= SEQUENTIAL_MAX and (onp.bincount(v, minlength=n) ** 2).sum() <= SEQUENTIAL_PATHS
    greedy = _sequential_star(p) if cheap else _frontier_star(p)
    return greedy if k is None or greedy.max() < k else onp.arange(n) % k


def _star_cycle(v, w, n, top):
    """The smallest k up to top for which j mod k is a star coloring of the graph with edges (v,
    w) (v sorted), or None. Each k is first tried on the graph induced by the WINDOW vertices in
    the middle (a star coloring is one on every induced subgraph), where most refusals come, at
    no pass over all the entries."""
    a = max(n // 2 - WINDOW // 2, 0)
    b = min(a + WINDOW, n)
    lo, hi = onp.searchsorted(v, [a, b])
    inside = (w[lo:hi] >= a) & (w[lo:hi] < b)
    sv, sw = v[lo:hi][inside] - a, w[lo:hi][inside] - a
    return next((k for k in range(1 if v.size == 0 else 2, top + 1)
                 if _is_star(sv, sw, onp.arange(a, b) % k, k) and _is_star(v, w, onp.arange(n) % k, k)), None)


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
    g = _graph(p)
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


def _frontier_star(p):
    """The greedy star coloring in rounds over a frontier: the vertices whose neighbours earlier
    in the greedy order (`_ranks`, by degree) are all colored, so no two of a round are adjacent.
    Each takes the lowest color the rule of Gebremedhin, Manne and Pothen leaves it against the
    colored vertices (`_tentative`); two-colored paths through two of a round's vertices
    (`_clashes`) send all but the earliest of them to the next round. Per vertex, bit masks hold
    the colors among its colored neighbours (`one`), those there twice or more (`two`), and, for
    a colored vertex w, the colors of its neighbours x that are hubs: x has two or more
    neighbours of w's color (`hub`)."""
    n = p.shape[0]
    g = _graph(p)
    source = _row_of_entries(g)
    earlier = onp.full(n, -1, dtype=onp.intp)
    onp.maximum.at(earlier, source, onp.where(g.indices < source, g.indices, -1))  # the largest earlier neighbour
    rank = _ranks(onp.diff(g.indptr), earlier)
    later = rank[g.indices] > rank[source]  # the edge's far end comes later in the order
    waits = onp.bincount(source[~later], minlength=n)  # uncolored neighbours earlier in the order
    colors = onp.full(n, -1, dtype=onp.intp)
    masks = onp.zeros((3, n, 1), dtype=onp.uint64)  # one, two, hub
    ready = onp.flatnonzero(waits == 0)
    while ready.size:
        where, owner = _ranges(g.indptr, ready)
        near = g.indices[where]
        tentative = _tentative(masks, colors, ready, owner, near)
        masks = _widen3(masks, tentative)
        lost = _clashes(g, masks, colors, ready, rank, owner, near, tentative)
        kept = ~lost[owner]
        colors[ready[~lost]] = tentative[~lost]
        _commit(g, masks, colors, ready[owner[kept]], near[kept], tentative[owner[kept]])
        ready = onp.r_[ready[lost], _released(waits, near[kept & later[where]])]
    return colors


def _previous_in_rows(p):
    """Per column, the largest smaller column it shares a row with (-1 for none)."""
    rows = _row_of_entries(p)
    same = onp.r_[False, rows[1:] == rows[:-1]] if rows.size else rows.astype(bool)
    parent = onp.full(p.shape[1], -1, dtype=onp.intp)
    onp.maximum.at(parent, p.indices[same], p.indices[onp.flatnonzero(same) - 1])
    return parent


def _graph(p):
    """The pattern's graph: its entries off the diagonal."""
    rows, cols = p.nonzero()
    off = rows != cols
    return sp.csr_array((onp.ones(off.sum(), dtype=bool), (rows[off], cols[off])), shape=p.shape)


def _tentative(masks, colors, ready, owner, near):
    """Per ready vertex v, the lowest color that no colored neighbour w has, nor w's hub
    neighbours (v-w-x-y), nor, where v has two neighbours of w's color, any neighbour of w
    (u-v-w-x)."""
    one, two, hub = masks
    known = colors[near] >= 0
    o, w = owner[known], near[known]
    cw = colors[w]
    u_v_w_x = _has(two, ready[o], cw)[:, None]
    forbidden = _bits(cw, one.shape[1]) | hub[w] | onp.where(u_v_w_x, one[w], onp.uint64(0))
    return _lowest_free(_or_by(o, forbidden, ready.size))


def _clashes(g, masks, colors, ready, rank, owner, near, tentative):
    """Which ready vertices lose their tentative color to an earlier one of the round. A
    two-colored path with two of them (never adjacent) has them two apart, around a colored w,
    with one color (a-w-c plus a neighbour of a or c of w's color), or three apart, a-b-c-d, b
    and c colored and each becoming a hub. Both are found at the colored neighbours: pairs (w,
    color taken next to w); each group that clashes keeps its earliest vertex."""
    one, two, _ = masks
    known = colors[near] >= 0
    o, w = owner[known], near[known]
    k = int(max(tentative.max(initial=0), colors.max(initial=0))) + 1
    key = w.astype(onp.int64) * k + tentative[o]
    order = onp.argsort(key, kind="stable")
    key, o, w = key[order], o[order], w[order]
    starts = _starts(key)
    sizes = onp.diff(onp.r_[starts, key.size])
    leaf = onp.logical_or.reduceat(_has(two, ready[o], colors[w]), starts) if starts.size else starts.astype(bool)
    group = onp.flatnonzero((sizes > 1) & leaf)  # a-w-c
    hubs = _new_hubs(g, colors, one, two, key[starts], w[starts], tentative[o[starts]], k)  # pairs of groups
    groups = onp.r_[group, hubs.ravel()]
    conflict = onp.r_[onp.arange(group.size), onp.repeat(group.size + onp.arange(hubs.shape[0]), 2)]
    members, which = _ranges(onp.r_[starts, key.size], groups)
    pairs = onp.lexsort((rank[ready[o[members]]], conflict[which]))
    earliest = onp.zeros(pairs.size, dtype=bool)
    earliest[_starts(conflict[which][pairs])] = True
    lost = onp.zeros(ready.size, dtype=bool)
    lost[o[members[pairs[~earliest]]]] = True
    return lost


def _new_hubs(g, colors, one, two, keys, w, color, k):
    """Pairs of groups (w, color) and (c, w's color), c the one neighbour of w with that color
    so far: w and c both become hubs, their new neighbours the ends of a two-colored path."""
    gain = onp.flatnonzero(_has(one, w, color) & ~_has(two, w, color))
    where, owner = _ranges(g.indptr, w[gain])
    c = g.indices[where]
    match = colors[c] == color[gain][owner]
    b, c = gain[owner[match]], c[match]
    other = c.astype(onp.int64) * k + colors[w[b]]
    at = onp.minimum(onp.searchsorted(keys, other), keys.size - 1)
    found = keys[at] == other
    return onp.stack([b[found], at[found]], axis=1)


def _commit(g, masks, colors, v, x, c):
    """The masks after the vertices v took colors c (one entry per edge v-x)."""
    one, two, hub = masks
    k = int(colors.max()) + 1
    pair, times = onp.unique(x.astype(onp.int64) * k + c, return_counts=True)
    xu, cu = onp.divmod(pair, k)
    twice = _has(one, xu, cu) | (times > 1)
    gained = twice & ~_has(two, xu, cu) & (colors[xu] >= 0)
    _set(two, xu[twice], cu[twice])
    _set(one, xu, cu)
    old = colors[x] >= 0  # x is never new: no two new vertices are adjacent
    joins = old & _has(two, x, c)  # v joins the star of the hub x
    _set(hub, v[joins], colors[x[joins]])
    leaves = old & _has(two, v, onp.maximum(colors[x], 0))  # v is a hub of x's color
    _set(hub, x[leaves], c[leaves])
    where, owner = _ranges(g.indptr, xu[gained])  # x became a hub of color cu: its leaves see it
    w = g.indices[where]
    match = colors[w] == cu[gained][owner]
    _set(hub, w[match], colors[xu[gained][owner[match]]])


def _has(masks, rows, colors):
    """Whether each row's mask holds its color."""
    words = masks.reshape(-1)[rows * masks.shape[1] + colors // WORD]  # a 1-D gather: faster than 2-D
    return (words >> (colors % WORD).astype(onp.uint64)) & onp.uint64(1) == 1


def _set(masks, rows, colors):
    """Add each color to its row's mask (rows may repeat)."""
    onp.bitwise_or.at(masks, (rows, colors // WORD), onp.uint64(1) << (colors % WORD).astype(onp.uint64))


def _widen3(masks, colors):
    """The (one, two, hub) masks with words for every color up to the largest of colors."""
    need = int(colors.max(initial=0)) // WORD + 1
    return masks if need <= masks.shape[2] else onp.stack([_widen(m, colors) for m in masks])


# ---------------------------------------------------------------- shared array steps
def _ranks(weight, parent):
    """Each vertex's place in the greedy order: heaviest first, ties in index order (the sequential
    greedy's, which colors stencils best) where that keeps the rounds few, else by index mod WORD,
    then index. A vertex waits for its earlier neighbours, so in index order the rounds are at
    least the longest chain of `parent`s (each vertex's largest earlier neighbour, or -1): about
    i + j on a 2-D grid, but one per vertex on a 1-D chain; past ROUNDS, the classes of j mod
    WORD cut such chains."""
    index = onp.arange(weight.size)
    ties = index if _depth(parent) <= ROUNDS else index % WORD
    order = onp.lexsort((index, ties, -weight))
    rank = onp.empty_like(order)
    rank[order] = index
    return rank


def _depth(parent):
    """The most links on a chain of parents (parent[v] < v, or -1), by pointer jumping."""
    depth = (parent >= 0).astype(onp.int64)
    up = parent.copy()
    while (on := onp.flatnonzero(up >= 0)).size:
        depth[on] += depth[up[on]]
        up[on] = up[up[on]]
    return int(depth.max(initial=0))


def _ranges(ptr, keys):
    """The positions ptr[k]:ptr[k + 1] of each key, one after another, and the place in keys of
    each position's key."""
    counts = ptr[keys + 1] - ptr[keys]
    owner = onp.repeat(onp.arange(keys.size), counts)
    return onp.repeat(ptr[keys] - onp.cumsum(counts) + counts, counts) + onp.arange(counts.sum()), owner


def _released(waits, vertices):
    """Take one from the waits of each vertex listed (repeats count); those now at zero, sorted."""
    vertices, times = onp.unique(vertices, return_counts=True)
    waits[vertices] -= times
    return vertices[waits[vertices] == 0]


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
    """The lowest color not in each mask row (past the last word where every bit is taken)."""
    full = onp.cumprod(used == ~onp.uint64(0), axis=1, dtype=bool).sum(axis=1)  # leading full words
    bits = onp.where(full < used.shape[1], used[onp.arange(used.shape[0]), onp.minimum(full, used.shape[1] - 1)],
                     onp.uint64(0))
    lowest = ~bits & (bits + onp.uint64(1))  # the lowest clear bit, alone
    return full * WORD + onp.log2(lowest.astype(onp.float64)).astype(onp.intp)  # powers of 2: exact


def _widen(masks, colors):
    """masks with words for every color up to the largest of colors."""
    need = int(colors.max(initial=0)) // WORD + 1
    if need <= masks.shape[1]:
        return masks
    return onp.hstack([masks, onp.zeros((masks.shape[0], need - masks.shape[1]), dtype=onp.uint64)])


def _add_colors(taken, rows, colors):
    """taken with each row's new color (one per row) added."""
    taken = _widen(taken, colors)
    taken[rows] |= _bits(colors, taken.shape[1])
    return taken
