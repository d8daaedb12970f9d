"""Fusion: group a program's equations into regions, each to run as one kernel.

A region computes its outputs (its roots, the values something outside reads), which share one
iteration space: their shape without leading unit axes. A thread owning element i of that space
pulls every value it needs at the index that element reads, through the members' index maps.
Members are elementwise equations (rows of the rule table, `where`, `astype`), data movement
with a static index map (reshape, transpose, broadcast_to, getitem and scatter with ints and
slices, concatenate), gathers (getitem at integer arrays, take_along: the element's index into
the gathered value is loaded from the index array, a constant or a value computed before the
region; scatters at constant arrays where no two positions meet, through the positions inverted;
on the CPU only along short axes) and sums that each output element can make in its own
thread, so the slices, shifts, pads, concatenations and gathers of a Jacobian cost no pass of
their own, and a value read only inside its region is never stored. Values made from indices and
constants alone (an identity seed, `eye`, its slices and scalar multiples) belong to no region of
their own: every region that reads one makes it, and it is stored only where a step outside the
regions reads it.

Regions are built from the program's end: an equation joins the region of its readers when they
all lie in one region (the readers' regions are merged first when they share an iteration space),
unless that region would evaluate it many more times than it has elements (a computed value
broadcast into a much bigger space: computing it once and reading it is cheaper). Regions of one
iteration space that read a common value are then merged: one kernel reads it once. Built this way, a
region can run as one step after everything it reads: a path leaving a region starts at a root,
which comes after every member. Only merging two regions can make a cycle (a path from one to the
other through a third step), and it is checked there. The rest of the program (GEMMs, reductions,
scatters at index arrays that add up where positions repeat or that are computed: no pull) stays
as it is, and the steps are put back in a valid order.
"""
import heapq
from math import inf, prod

import numpy as onp

from .. import backends
from ..ops.elementwise import add
from ..ops.indexing import scatter
from . import seconds
from .ir import Lit, Var, view
from .structure import index_made
from .target import CUPY, target_of

_C_DTYPES = frozenset(map(onp.dtype, ("float32", "float64", "bool", "complex64", "complex128")))  # not names: slow
_INDEX_DTYPES = frozenset(map(onp.dtype, ("int32", "int64")))  # the gathers' positions a kernel loads
_INTEGER_DTYPES = _C_DTYPES | _INDEX_DTYPES  # where a Target computes with integers (Target.integers)
# The most members a region has: a compiler's time grows faster than a function's length (one
# region of 2,600 members took g++ 30 s, the same members in regions of 128 or less 1.4 s), and a
# longer region saves little more than the passes over memory between its pieces.
MEMBERS = 256
_SEARCHED = 1024  # the most steps a merge searches for a path between the two regions
_SUMMED = 16  # a sum over at most this many elements is unrolled: fused whatever its size
UNROLLED = 16  # elements of the trailing axes one loop element of a kernel computes together
ROWS_FROM = 8  # a loop axis this long or longer is not unrolled, and the host loops by rows along it
_SCALAR_CHAIN = 8  # the most equations making a scalar from the inputs that each region reading it redoes


class Region:
    """Equations fused into one kernel: `ins` (the atoms read: Vars, and Lits of constant operands, of a
    getitem's index arrays and of a scatter's inverted positions), `outs` (Vars written)."""

    def __init__(self, shape):
        self.shape, self.equations, self.ins, self.outs = iteration_shape(shape), [], [], []
        self.literals = {}  # id(constant array) -> its one value, for constants filled with one value
        self.inverses = {}  # a scatter's out Var -> a Lit of its positions inverted (_inverse), for scatters at arrays
        self.contiguous = set()  # ins known C-contiguous: other regions' outputs (fresh buffers)

    def __repr__(self):
        return f"Region({list(self.shape)}: {' '.join(eq.prim.name for eq in self.equations)})"


def iteration_shape(shape):
    """shape without its leading unit axes."""
    k = 0
    while k < len(shape) and shape[k] == 1:
        k += 1
    return tuple(shape[k:])


def _readable(a, dtypes=_C_DTYPES):
    """Whether a kernel can read an input: a Python number, or an array of one of `dtypes` with elements."""
    a = a.val if isinstance(a, Lit) else a
    if isinstance(a, (bool, int, float, complex)):
        return True
    if not prod(a.shape):
        return False
    return a.dtype in dtypes or a.dtype.newbyteorder("=") in dtypes  # byte-swapped: copied before a launch


def fusible(eq, target=CUPY):
    """Whether an equation can be part of a region's kernel planned for `target` (compiler/target.py)."""
    prim = eq.prim
    if len(eq.outs) > 1:  # an equation of several results is a step of its own
        return False
    dtypes = _INTEGER_DTYPES if target.integers else _C_DTYPES
    if eq.out.dtype not in dtypes or not prod(eq.out.shape):
        return False
    if _complex(eq) and (prim.nondiff or not prim.complex_ready):  # kernels/gpuad_complex.cuh spells the rest
        return False
    positions = _positions_of(eq)
    if not all(_readable(a, dtypes) for a in eq.ins if not any(a is p for p, _ in positions)):
        return False
    if max((n for _, n in positions), default=0) > target.gathered:
        return False
    if not all(_positions(p, n) for p, n in positions):
        return False
    if prim.scatters and positions and _landings(eq) is None:  # a pull only where no two elements meet
        return False
    if prim.moves or positions:
        return True
    if eq.out.dtype.kind == "b" and not target.integers:  # (kind: dtype.name builds a string each time)
        return False
    if prim.entries is not None:  # its elements come from the indices
        return True
    if prim.reduction == "add":  # each output element sums its own elements: enough of them to run in parallel
        n = prod(eq.ins[0].shape[a] for a in eq.params["axes"])
        return n <= _SUMMED or (prod(eq.out.shape) >= target.parallel and
                                (target.across_rows or _along_rows(eq.ins[0].shape, eq.params["axes"])))
    return prim.expression is not None


def _complex(eq):
    """Whether an equation reads or makes complex values."""
    return eq.out.dtype.kind == "c" or any(isinstance(a, complex) or getattr(a, "dtype", None) is not None and
                                           a.dtype.kind == "c" for a in eq.ins)


def _along_rows(shape, axes):
    """Whether the summed axes are the input's last ones (past unit axes): each sum reads a row."""
    summed = {a % len(shape) for a in axes}
    return all(k in summed or shape[k] == 1 for k in range(min(summed), len(shape)))


def _positions_of(eq):
    """(index array, length of its axis) for the positions a gather reads at or a scatter writes at,
    each array an atom (a Lit where the rule gives a parameter's array)."""
    found = eq.prim.positions(eq.ins, **eq.params) if eq.prim.positions is not None else []
    return [(p if isinstance(p, (Var, Lit)) else Lit(p), n) for p, n in found]


def _landings(eq):
    """Where a scatter at index arrays puts each element of their broadcast block: its flat
    position over the axes the arrays index; None where two land on one (they add up)."""
    arrays = [(backends.current().to_numpy(i.val), n) for i, n in _positions_of(eq)]
    block = onp.broadcast_shapes(*(a.shape for a, _ in arrays))
    flat = onp.ravel_multi_index([onp.broadcast_to(a % n, block) for a, n in arrays], [n for _, n in arrays])
    return flat.ravel() if onp.bincount(flat.ravel()).max() <= 1 else None


def _inverse(eq):
    """A scatter's positions inverted, as a backend array over the axes its arrays index: the
    flat position in their block of the element landing there, or -1."""
    dims = [n for _, n in _positions_of(eq)]
    landings = _landings(eq)
    inverse = onp.full(prod(dims), -1, onp.int64)
    inverse[landings] = onp.arange(landings.size)
    return backends.xp().asarray(inverse.reshape(dims))


def _positions(p, n):
    """Whether p can be a gather's positions along an axis of n: an integer array (a constant's
    entries in NumPy's range -n..n-1, else NumPy's step says it is out of bounds)."""
    if p.dtype not in _INDEX_DTYPES or not prod(p.shape):
        return False
    return isinstance(p, Var) or bool(((p.val >= -n) & (p.val < n)).all())


def fuse(program, target=None, apart=(), limit=MEMBERS):
    """The program's steps in a valid order: Equations, and Regions worth a kernel of their own
    (at least two members, one of which computes or scatters; lone equations and pure views stay
    as they are), planned for `target` (default: the active one); the equations making the
    values in `apart` stay as they are; no region grows past `limit` members."""
    target = target_of(target)
    readers = _readers(program)
    outs = program.out_vars()
    made_by = {v: eq for eq in program.equations for v in eq.outs}
    region_of, evaluations = {}, {}
    free = _index_made(program, target, apart)
    steps = _Steps(program, limit)
    for eq in reversed(program.equations):
        if len(eq.outs) == 1 and eq.out not in free and eq.out not in apart and fusible(eq, target) and \
                not _adds_a_scatter(eq, made_by, target):
            r = _joined(steps, eq, readers.get(eq.out, ()), region_of, outs, evaluations, target)
            if r is None and view(eq):  # a view read by several steps costs nothing as it is
                continue
            if r is None:
                r = Region(eq.out.shape)
                evaluations[eq.out] = prod(r.shape)
            if r.equations:
                steps.merge(steps.of(eq.out), steps.of(r.equations[0].out))
            r.equations.append(eq)
            region_of[eq.out] = r
    _merge_siblings(program, region_of, steps)
    order = {id(eq): k for k, eq in enumerate(program.equations)}
    regions = list({id(r): r for r in region_of.values()}.values())
    for r in regions:  # the index-made values a region reads become its members too
        made = _made_from([a for eq in r.equations for a in eq.ins if isinstance(a, Var)], free, made_by)
        r.equations = sorted(r.equations + [made_by[v] for v in made], key=lambda e: order[id(e)])
    read_outside = _read_outside(program, region_of)
    regions = [r for r in regions if _worth_a_kernel(r, read_outside, evaluations, target)]
    kept = {id(r) for r in regions}
    region_of = {v: r for v, r in region_of.items() if id(r) in kept}
    _connect(program, regions, region_of)
    unread = free - _read_outside_regions(program, region_of, free, made_by)
    return _schedule(program, regions, region_of, unread)


def regions_only(program, target):
    """The program's steps as regions alone (fuse's, and each other equation a region of its own),
    in a valid order; None where an equation cannot be part of a kernel. What a whole loop rendered
    as one kernel runs on each trip (gpuad/compiler/loop_kernel.py)."""
    steps = fuse(program, target)
    alone = [n for n in steps if not isinstance(n, Region)]
    if not all(fusible(eq, target) for eq in alone):
        return None
    region_of = {}
    for eq in alone:
        r = region_of[eq.out] = Region(eq.out.shape)
        r.equations.append(eq)
    for n in steps:
        if isinstance(n, Region):
            region_of.update((eq.out, n) for eq in n.equations)
    _connect(program, list(region_of[eq.out] for eq in alone), region_of)
    return [region_of[n.out] if not isinstance(n, Region) else n for n in steps]


def _index_made(program, target, apart=()):
    """Values each region reading one makes itself: those index-made (structure.py: made from the
    indices and constants alone, a seed, its slices and shifts, their scalar multiples) by fusible
    equations, and scalars made from the program's inputs by a few of them (a parameter picked
    from the input and scaled: a load and a multiply in a kernel, where a step of its own costs a
    call; read by regions of several iteration spaces, it would join none)."""
    made, free, chains, inputs = set(), set(), {}, set(program.ins)  # chains: scalar -> the equations making it
    for eq in program.equations:
        if eq.prim.reduction is not None or not fusible(eq, target) or eq.out in apart:
            continue
        read = [a for a in eq.ins if isinstance(a, Var)]
        if index_made(eq, made):
            made.add(eq.out)
            free.add(eq.out)
        elif not any(a.traced for a in eq.ins if isinstance(a, Lit)) and \
                prod(eq.out.shape) == 1 and all(a in free or a in inputs for a in read):
            chains[eq.out] = 1 + sum(chains.get(a, 0) for a in read)
            if chains[eq.out] <= _SCALAR_CHAIN:
                free.add(eq.out)
    return free


def _made_from(values, free, made_by):
    """The index-made values among `values`, with the index-made values they are made from."""
    out, stack = set(), [v for v in values if v in free]
    while stack:
        v = stack.pop()
        if v not in out:
            out.add(v)
            stack.extend(a for a in made_by[v].ins if isinstance(a, Var) and a in free)
    return out


def _read_outside_regions(program, region_of, free, made_by):
    """The index-made values a plain step or the caller reads: their equations stay as steps."""
    reads = list(program.out_vars())
    reads += [a for eq in program.equations if eq.outs[0] not in region_of and eq.outs[0] not in free
              for a in eq.ins if isinstance(a, Var)]
    return _made_from(reads, free, made_by)


def _readers(program):
    """{Var: equations reading it}."""
    out = {}
    for eq in program.equations:
        for a in {a for a in eq.ins if isinstance(a, Var)}:
            out.setdefault(a, []).append(eq)
    return out


def _adds_a_scatter(eq, made_by, target):
    """An add of a scatter at index arrays left out of regions: the replay adds it in place at its
    positions instead."""
    return eq.prim is add and any(
        a in made_by and made_by[a].prim is scatter and not fusible(made_by[a], target)
        for a in eq.ins)


def _joined(steps, eq, readers, region_of, outs, evaluations, target):
    """The region of eq's readers, which eq can join (merging the readers' regions), or None.
    Records how many times the region would evaluate eq's elements (`evaluations`)."""
    if eq.out in outs or not readers:
        return None
    # (a reader of several results is never in a region: its first result is in no map here)
    regions = list({id(r): r for r in (region_of.get(c.outs[0]) for c in readers)}.values())
    if any(r is None or r.shape != regions[0].shape for r in regions):
        return None
    decided = unrolled_axes(regions[0].shape) if target.unrolls else inf  # the trailing axes resolved at render time
    times = _evaluations(eq.out, readers, evaluations, decided)
    n = prod(eq.out.shape)
    # a view, a seed or a gather only loads or makes from indices: free to redo (a gather loads its
    # position too); a scalar is one value wherever it is read (once per element)
    if eq.prim.recompute != "free" and n > 1 and \
            times > target.repeats * n * (2 if eq.prim.recompute == "cheap" else 1):
        return None
    into = regions[0]
    if not steps.fits(*(r.equations for r in regions), [eq]):
        return None
    for other in regions[1:]:
        if not _merge(steps, region_of, into, other):
            return None
    evaluations[eq.out] = times
    return into


def _evaluations(v, readers, evaluations, decided):
    """How many times a region would evaluate v's elements: elementwise readers of one shape read
    it at the same index (once per element of theirs), every other reader at an index of its own.
    decided: how many trailing axes of the region's iteration space its kernel resolves at render
    time (inf: all, as a GPU's threads branch)."""
    at = {}
    for c in readers:
        key = ("same", c.out.shape) if c.prim.elementwise else id(c)
        at[key] = max(at.get(key, 0), evaluations[c.out] * _share(c, v, decided))
    return sum(at.values())


def _share(reader, v, decided):
    """The fraction of its evaluations in which reader evaluates v: a sum each element once; a
    scatter or concatenation each input only where it lands, where the kernel tells where without
    computing it (the axes it lands along partly are among the `decided` trailing ones), else
    everywhere (a CPU's vectorised loop computes a value in every lane, then selects)."""
    if reader.prim.reduction is not None or (reader.prim.reads_each_once and
                                             max(_partly(v.shape, reader.out.shape), default=0) <= decided):
        return prod(v.shape) / prod(reader.out.shape)
    return 1.0


def _partly(part, whole):
    """The axes (counted from the last, 1 the last) of a scatter's or concatenation's result (of
    shape whole) that its input (of shape part) covers only in part, matched from the last: an axis
    of whole that part lacks (an int index) or where part is shorter (a slice, a piece)."""
    partly, j = [], len(part) - 1
    for k in range(len(whole) - 1, -1, -1):
        if j >= 0 and (part[j] == whole[k] or len(part) == len(whole)):
            if part[j] != whole[k]:
                partly.append(len(whole) - k)
            j -= 1
        elif whole[k] > 1:
            partly.append(len(whole) - k)
    return partly


def unrolled_axes(shape, most=UNROLLED):
    """How many trailing axes of an iteration space one loop element of its kernel unrolls (their
    indices are known at render time): the longest suffix of at most `most` elements, unless its
    last axis of more than one element is ROWS_FROM long or longer (the loop then runs along it,
    reading and writing contiguous elements: docs/performance.md)."""
    k = 0
    while k < len(shape) and shape[len(shape) - k - 1] == 1:
        k += 1
    if k < len(shape) and shape[len(shape) - k - 1] >= ROWS_FROM:
        return k
    while k < len(shape) and prod(shape[len(shape) - k - 1:]) <= most:
        k += 1
    return k


def _merge(steps, region_of, target, other):
    """Move other's equations into target, unless a path through a third step joins them."""
    x, y = steps.of(target.equations[0].out), steps.of(other.equations[0].out)
    if not steps.fits(target.equations, other.equations) or not steps.merge(x, y):
        return False
    target.equations += other.equations
    for e in other.equations:
        region_of[e.out] = target
    return True


def _merge_siblings(program, region_of, steps):
    """Merge regions of one iteration space that no path through another step joins: one kernel
    makes all their elements (those reading a common value read it once). Regions reading a
    common value are tried first, each with the last before it, then each region with the last
    before it of its iteration space: neighbours, whose merge searches a short span of the order."""
    pairs, last, previous = [], {}, {}  # pairs of members of two regions, each with the one before it
    for eq in program.equations:
        r = region_of.get(eq.outs[0])
        if r is None:
            continue
        for a in eq.ins:
            if isinstance(a, Var) and region_of.get(a) is not r:
                if (a, r.shape) in last:
                    pairs.append((last[a, r.shape], eq.out))
                last[a, r.shape] = eq.out
        previous[r.shape] = previous.get(r.shape, eq.out)
    neighbours = []
    for eq in program.equations:
        r = region_of.get(eq.outs[0])
        if r is not None:
            neighbours.append((previous[r.shape], eq.out))
            previous[r.shape] = eq.out
    pairs += neighbours
    refused = set()  # pairs refused since the last merge: only a merge changes the answer
    for u, v in pairs:
        target, other = region_of[u], region_of[v]
        if target is other or (id(target), id(other)) in refused:
            continue
        if _merge(steps, region_of, target, other):
            refused.clear()
        else:
            refused.add((id(target), id(other)))


def _worth_a_kernel(region, read_outside, evaluations, target):
    """Whether a region saves more than its kernel costs, by the time model of compiler/seconds.py
    (calls, bytes moved, work redone on the target); at least two members, one of them computing."""
    if len(region.equations) < 2 or all(view(eq) for eq in region.equations):
        return False
    outs = [eq.out for eq in region.equations if eq.out in read_outside]
    return seconds.worth_a_kernel(region.equations, outs, evaluations, target)


class _Steps:
    """The graph of the steps while regions form, kept up to date as they grow: each equation
    starts as a step of its own (a node: its position), a region is the union of its members'
    nodes (union-find, the smaller edge sets moved into the larger), and `order` is a topological
    order of the steps, repaired at each merge within the span of order between the two merged
    (Pearce and Kelly's dynamic topological sort), where the search for a path through a third
    step is confined too: merges of neighbours cost little however long the program."""

    def __init__(self, program, limit):
        self.limit = limit
        self.node = {v: k for k, eq in enumerate(program.equations) for v in eq.outs}
        n = len(program.equations)
        self.parent, self.order = list(range(n)), list(range(n))
        self.succ, self.pred = [set() for _ in range(n)], [set() for _ in range(n)]
        for k, eq in enumerate(program.equations):
            for a in eq.ins:
                if isinstance(a, Var) and a in self.node:
                    self.succ[self.node[a]].add(k)
                    self.pred[k].add(self.node[a])

    def fits(self, *members):
        """Whether a region of these members stays within the limit."""
        return sum(map(len, members)) <= self.limit

    def of(self, v):
        """The step making v (its node's root)."""
        k = self.node[v]
        while self.parent[k] != k:
            self.parent[k] = k = self.parent[self.parent[k]]
        return k

    def merge(self, x, y):
        """Unite steps x and y, unless a path through a third step joins them (False)."""
        if x == y:
            return True
        if self.order[x] > self.order[y]:
            x, y = y, x
        lo, hi = self.order[x], self.order[y]
        later = self._within(x, self.succ, lambda s: self.order[s] < hi, y)
        if later is None:
            return False
        if later:  # x's descendants ordered before y go after the merged step, y's ancestors before it
            earlier = self._within(y, self.pred, lambda s: self.order[s] > lo, x)
            if earlier is None:
                return False
            moved = sorted(earlier, key=self.order.__getitem__) + [None] + sorted(later, key=self.order.__getitem__)
            slots = sorted([lo, hi] + [self.order[s] for s in earlier | later])
            for s, slot in zip(moved, slots):
                if s is None:
                    hi = slot
                else:
                    self.order[s] = slot
        root = self._unite(x, y)
        self.order[root] = hi
        return True

    def _within(self, start, edges, inside, goal):
        """The steps reached from start's neighbours (goal excluded) through steps `inside`;
        None where goal is reached so, or where the search passes _SEARCHED steps (a merge
        refused for that costs some fusion, never a wrong program)."""
        seen, stack = set(), [s for s in edges[start] if s != goal]
        while stack:
            s = stack.pop()
            if s == goal or len(seen) > _SEARCHED:
                return None
            if s not in seen and inside(s):
                seen.add(s)
                stack.extend(edges[s])
        return seen

    def _unite(self, x, y):
        if len(self.succ[x]) + len(self.pred[x]) < len(self.succ[y]) + len(self.pred[y]):
            x, y = y, x
        for edges, back in ((self.succ, self.pred), (self.pred, self.succ)):
            for s in edges[y]:
                back[s].discard(y)
                if s != x:
                    back[s].add(x)
                    edges[x].add(s)
            edges[x].discard(y)
            edges[y] = set()
        self.parent[y] = x
        return x


def _read_outside(program, region_of):
    """The values the program returns or a step outside their region reads."""
    used = program.out_vars()
    for eq in program.equations:
        mine = region_of.get(eq.outs[0])
        used.update(a for a in eq.ins if isinstance(a, Var) and region_of.get(a) is not None and
                    region_of.get(a) is not mine)
    return used


def _connect(program, regions, region_of):
    """Each region's inputs (read from outside, in first-use order) and outputs (read outside)."""
    used_outside = _read_outside(program, region_of)
    for r in regions:
        inside = {eq.out for eq in r.equations}
        seen = set()
        for eq in r.equations:
            if eq.prim.scatters and _positions_of(eq):
                r.inverses[eq.out] = Lit(_inverse(eq))
            for a in _operands(eq, r):
                if a in inside or (isinstance(a, Lit) and isinstance(a.val, (bool, int, float, complex))):
                    continue
                if isinstance(a, Lit) and _uniform(a.val):  # broadcast scalars: a literal
                    r.literals[id(a.val)] = a.val.ravel()[0].item()
                    continue
                key = a if isinstance(a, Var) else id(a.val)
                if key not in seen:
                    seen.add(key)
                    r.ins.append(a)
                    if isinstance(a, Var) and a in region_of:
                        r.contiguous.add(a)
        r.outs = [eq.out for eq in r.equations if eq.out in used_outside]
        assert all(iteration_shape(v.shape) == r.shape for v in r.outs), r


def _operands(eq, region):
    """What an equation's kernel code reads: its inputs, a gather's positions (a getitem's index
    arrays), and a scatter's inverted positions."""
    if eq.out in region.inverses:
        return list(eq.ins) + [region.inverses[eq.out]]
    return list(eq.ins) + [p for p, _ in _positions_of(eq) if not any(p is a for a in eq.ins)]


def _uniform(c):
    """Whether a constant array holds one value throughout."""
    flat = c.ravel()
    return bool(flat.size) and bool((flat == flat[0]).all())


def _schedule(program, regions, region_of, unread):
    """Topological order of the plain equations and the regions (Kahn), stable in program order;
    `unread`: index-made values only regions read (each makes its own)."""
    nodes = []  # Equation or Region, first appearance in program order
    seen = set()
    for eq in program.equations:
        if eq.outs[0] in unread:
            continue
        r = region_of.get(eq.outs[0])
        node = r if r is not None else eq
        if id(node) not in seen:
            seen.add(id(node))
            nodes.append(node)
    made_by = {v: k for k, node in enumerate(nodes) for v in node.outs}
    waiting = [0] * len(nodes)  # how many of each node's reads are not produced yet
    readers = {}
    for k, node in enumerate(nodes):
        for v in dict.fromkeys(_reads(node)):
            if v in made_by:
                waiting[k] += 1
                readers.setdefault(made_by[v], []).append(k)
    ready = [k for k, w in enumerate(waiting) if not w]
    heapq.heapify(ready)
    order = []
    while ready:  # the earliest ready node first: program order where it is valid
        k = heapq.heappop(ready)
        order.append(nodes[k])
        for j in readers.get(k, ()):
            waiting[j] -= 1
            if not waiting[j]:
                heapq.heappush(ready, j)
    if len(order) < len(nodes):
        raise RuntimeError("fusion made a cycle: please report this program")
    return order


def _reads(node):
    """The values a step reads that other steps make."""
    return [a for a in node.ins if isinstance(a, Var)]  # a region's ins are its reads from outside

