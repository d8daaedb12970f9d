"""Fusion: group a program's elementwise equations into regions, each to run as one kernel.

A region is a set of elementwise equations (rows of the rule table, `where`, `astype`) that all
produce values of one shape, its iteration space. Its inputs may be smaller (they broadcast) and
strided (they are read in place); the values it produces for the rest of the program are its
outputs. Regions are grown greedily over the program in order: an equation joins the region of
one of its inputs' producers when the shapes match and joining cannot make a cycle (a region
must be able to run as one step, after everything it reads). The rest of the program (GEMMs,
reductions, scatters, views) stays as it is, and the steps are put back in a valid order.
"""
from .ops.table import ROWS
from .program import Var

_C_DTYPES = ("float32", "float64", "bool")


class Region:
    """Equations fused into one kernel: `ins` (Vars and constants read), `outs` (Vars written).
    Its shape is the iteration space: the members' shape without leading unit axes (a value of
    shape (1, n) and one of shape (n,) are the same n elements in the same order)."""

    def __init__(self, shape):
        self.shape, self.equations, self.ins, self.outs = iteration_shape(shape), [], [], []
        self.literals = {}    # id(constant array) -> its one value, for constants filled with one value
        self.identities = {}  # id(constant array) -> (value, k): value * eye(rows, cols, k) reshaped

    def __repr__(self):
        return f"Region({list(self.shape)}: {' '.join(eq.prim.name for eq in self.equations)})"


def iteration_shape(shape):
    """shape without its leading unit axes."""
    k = 0
    while k < len(shape) and shape[k] == 1:
        k += 1
    return tuple(shape[k:])


def fusible(eq):
    """Whether an equation can be one line of a region's kernel."""
    name = eq.prim.name
    if name == "reshape":  # adding or dropping leading unit axes relabels the same elements
        if iteration_shape(eq.ins[0].shape) != iteration_shape(eq.out.shape):
            return False
    elif name not in ROWS and name not in ("where", "astype"):
        return False
    if eq.out.dtype.name not in ("float32", "float64"):
        return False
    if name in ROWS and not _renders(ROWS[name]):
        return False
    return all(isinstance(a, (bool, int, float)) or a.dtype.name in _C_DTYPES for a in eq.ins)


def _renders(row):
    try:
        row.primal.cuda()
        return True
    except ValueError:  # a function the kernels have no spelling for
        return False


def fuse(program, min_size=2):
    """The program's steps in a valid order: Equations, and Regions of at least `min_size`
    computing equations (smaller groups, and relabelling reshapes alone, stay plain equations)."""
    g = _Grouping()
    for eq in program.equations:
        g.add(eq)
    _merge(program, g.region_of)
    grown = {id(r): r for r in g.region_of.values()}.values()
    regions = [r for r in grown if sum(eq.prim.name != "reshape" for eq in r.equations) >= min_size]
    kept = {id(r) for r in regions}
    region_of = {v: r for v, r in g.region_of.items() if id(r) in kept}
    _connect(program, regions, region_of)
    return _schedule(program, regions, region_of)


class _Grouping:
    """Greedy growth of regions with a cycle check. A value's `direct` set holds the regions it
    needs done first (its own region, or those its plain producer's inputs need); `edges` holds,
    per region, the regions its members need. Joining region R is refused when R can be reached
    back from what the new member reads from outside R."""

    def __init__(self):
        self.regions, self.region_of, self.direct, self.edges = [], {}, {}, {}
        self.scattered = set()  # values made by a scatter: an add of one accumulates in place instead

    def add(self, eq):
        outside = [a for a in eq.ins if isinstance(a, Var)]
        if eq.prim.name == "scatter":
            self.scattered.add(eq.out)
        fits = fusible(eq) and not (eq.prim.name == "add" and any(a in self.scattered for a in outside))
        target = self._join(eq, outside) if fits else None
        if target is None and fits:
            target = Region(eq.out.shape)
            self.regions.append(target)
            self.edges[id(target)] = set()
        if target is None:
            self.direct[eq.out] = set().union(*(self._needs(a) for a in outside))
            return
        target.equations.append(eq)
        self.region_of[eq.out] = target
        self.direct[eq.out] = {id(target)}
        self.edges[id(target)].update(*(self._needs(a) for a in outside if self.region_of.get(a) is not target))

    def _needs(self, a):
        return self.direct.get(a, set())

    def _join(self, eq, outside):
        for a in outside:
            r = self.region_of.get(a)
            if r is not None and r.shape == iteration_shape(eq.out.shape) and not any(
                    _reaches(self.edges, self._needs(b), id(r)) for b in outside if self.region_of.get(b) is not r):
                return r
        return None


def _reaches(successors, start, goal):
    """Whether goal is reached from the nodes in start along {node: successor nodes}."""
    stack, seen = list(start), set()
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            stack.extend(successors.get(node, ()))
    return False


def _merge(program, region_of):
    """Join regions of one shape that an equation reads together (greedy growth puts an add of two
    fresh products in one of their regions only), where neither reaches the other through a third
    step: regions run as whole steps, so such a path would be a cycle."""
    order = {id(eq): k for k, eq in enumerate(program.equations)}
    for eq in program.equations:
        r = region_of.get(eq.out)
        for a in eq.ins:
            q = region_of.get(a) if isinstance(a, Var) else None
            if r is None or q is None or q is r or q.shape != r.shape:
                continue
            successors = _step_graph(program, region_of)
            if not _reaches_through_another(successors, id(q), id(r)) and \
                    not _reaches_through_another(successors, id(r), id(q)):
                r.equations = sorted(r.equations + q.equations, key=lambda e: order[id(e)])
                for e in q.equations:
                    region_of[e.out] = r


def _step_graph(program, region_of):
    """{step: steps reading it}, a step being a region (its id) or a plain equation (its id)."""
    step = {}
    for eq in program.equations:
        r = region_of.get(eq.out)
        step[eq.out] = id(r) if r is not None else id(eq)
    successors = {}
    for eq in program.equations:
        for a in eq.ins:
            if isinstance(a, Var) and a in step and step[a] != step[eq.out]:
                successors.setdefault(step[a], set()).add(step[eq.out])
    return successors


def _reaches_through_another(successors, src, dst):
    return _reaches(successors, [s for s in successors.get(src, ()) if s != dst], dst)


def _connect(program, regions, region_of):
    """Each region's inputs (read from outside, in first-use order) and outputs (read outside)."""
    used_outside = {o for o in program.outs if isinstance(o, Var)}
    for eq in program.equations:
        mine = region_of.get(eq.out)
        for a in eq.ins:
            if isinstance(a, Var) and region_of.get(a) is not None and region_of.get(a) is not mine:
                used_outside.add(a)
    for r in regions:
        inside = {eq.out for eq in r.equations}
        seen = set()
        for eq in r.equations:
            for a in eq.ins:
                if isinstance(a, (bool, int, float)) or (isinstance(a, Var) and a in inside):
                    continue
                if not isinstance(a, Var) and _uniform(a):  # broadcast scalars: a literal
                    r.literals[id(a)] = a.ravel()[0].item()
                    continue
                if not isinstance(a, Var) and _identity(a) is not None:  # seeds: made from indices
                    r.identities[id(a)] = (a, *_identity(a))
                    continue
                key = a if isinstance(a, Var) else id(a)
                if key not in seen:
                    seen.add(key)
                    r.ins.append(a)
        r.outs = [eq.out for eq in r.equations if eq.out in used_outside]


def _uniform(c):
    """Whether a constant array holds one value throughout."""
    flat = c.ravel()
    return bool(flat.size) and bool((flat == flat[0]).all())


def _identity(c):
    """(value, k) when the constant, its first axis as rows and the rest flattened as columns, is
    value * eye(rows, cols, k): the basis seeds of jacfwd/jacrev and their shifts; else None."""
    if c.ndim < 2 or c.dtype.kind != "f":
        return None
    m = c.reshape(c.shape[0], -1)
    rows, cols = m.nonzero()
    if rows.size == 0:
        return None
    k, value = int(cols[0] - rows[0]), m[rows[0], cols[0]].item()
    diagonal = max(0, min(m.shape[0], m.shape[1] - k) - max(0, -k))  # elements on the k-th diagonal
    same = bool(((cols - rows) == k).all()) and bool((m[rows, cols] == value).all())
    return (value, k) if rows.size == diagonal and same else None


def _schedule(program, regions, region_of):
    """Topological order of the plain equations and the regions (Kahn), stable in program order."""
    nodes = []  # Equation or Region, first appearance in program order
    seen = set()
    for eq in program.equations:
        r = region_of.get(eq.out)
        node = r if r is not None else eq
        if id(node) not in seen:
            seen.add(id(node))
            nodes.append(node)
    made_by = {}
    for node in nodes:
        for v in _outs(node):
            made_by[v] = node
    order, produced = [], set(program.ins)
    pending = list(nodes)
    while pending:
        for k, node in enumerate(pending):
            if all(v in produced for v in _reads(node) if made_by.get(v) is not node):
                order.append(node)
                produced.update(_outs(node))
                del pending[k]
                break
        else:
            raise RuntimeError("fusion made a cycle: please report this program")
    return order


def _reads(node):
    eqs = node.equations if isinstance(node, Region) else [node]
    return [a for eq in eqs for a in eq.ins if isinstance(a, Var)]


def _outs(node):
    return [eq.out for eq in node.equations] if isinstance(node, Region) else [node.out]
