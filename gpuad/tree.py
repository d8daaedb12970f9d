"""Pytrees: tuples, lists, dicts and None are containers, and the types given to
register_pytree_node; everything else is a leaf.

Dicts flatten in sorted-key order, as in JAX, so two dicts with the same keys line up.
"""
_NODES = {}  # type -> (flatten: node -> (children, hashable meta), unflatten: (meta, children) -> node)


def register_pytree_node(cls, flatten, unflatten):
    """Make instances of cls containers, as jax.tree_util.register_pytree_node: flatten(node)
    gives (children, meta), meta hashable and static (part of the tree structure), and
    unflatten(meta, children) rebuilds a node (or what the children make of it)."""
    _NODES[cls] = flatten, unflatten


class TreeDef:
    """The structure of a pytree with its leaves taken out."""
    __slots__ = ("kind", "meta", "children")

    def __init__(self, kind, meta, children):
        self.kind, self.meta, self.children = kind, meta, children

    def __eq__(self, other):
        return (isinstance(other, TreeDef) and self.kind == other.kind
                and self.meta == other.meta and self.children == other.children)

    def __hash__(self):
        return hash((self.kind, self.meta, self.children))

    def __repr__(self):
        if self.kind is None:
            return "*"
        if self.kind is type(None):
            return "None"
        inner = ", ".join(map(repr, self.children))
        if self.kind is dict:
            inner = ", ".join(f"{k!r}: {c!r}" for k, c in zip(self.meta, self.children))
            return "{" + inner + "}"
        return f"{self.kind.__name__}({inner})"

    @property
    def num_leaves(self):
        if self.kind is None:
            return 1
        return sum(c.num_leaves for c in self.children)

    def unflatten(self, leaves):
        return self._build(iter(leaves))

    def _build(self, it):
        if self.kind is None:
            return next(it)
        if self.kind is type(None):
            return None
        kids = [c._build(it) for c in self.children]
        if self.kind in _NODES:
            return _NODES[self.kind][1](self.meta, kids)
        if self.kind is dict:
            return dict(zip(self.meta, kids))
        if self.kind is list:
            return kids
        if self.kind is tuple:
            return tuple(kids)
        return self.kind(*kids)  # namedtuple


LEAF = TreeDef(None, None, ())


def tree_flatten(tree):
    """Return (leaves, treedef)."""
    leaves = []
    return leaves, _flatten(tree, leaves)


def _flatten(tree, leaves):
    if tree is None:
        return TreeDef(type(None), None, ())
    if isinstance(tree, dict):
        keys = sorted(tree)
        return TreeDef(dict, tuple(keys), tuple(_flatten(tree[k], leaves) for k in keys))
    if isinstance(tree, (tuple, list)):
        return TreeDef(type(tree), None, tuple(_flatten(c, leaves) for c in tree))
    if type(tree) in _NODES:
        children, meta = _NODES[type(tree)][0](tree)
        return TreeDef(type(tree), meta, tuple(_flatten(c, leaves) for c in children))
    leaves.append(tree)
    return LEAF


def tree_unflatten(treedef, leaves):
    return treedef.unflatten(leaves)


def tree_leaves(tree):
    return tree_flatten(tree)[0]


def tree_map(f, tree, *rest):
    """Apply f leafwise to `tree` and to trees of the same structure in `rest`."""
    leaves, td = tree_flatten(tree)
    others = []
    for r in rest:
        rl, rtd = tree_flatten(r)
        if rtd != td:
            raise ValueError(f"tree structures differ: {td} and {rtd}")
        others.append(rl)
    return td.unflatten([f(*xs) for xs in zip(leaves, *others)])
