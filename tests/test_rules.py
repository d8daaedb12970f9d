"""Each primitive carries its own rules (issue 23): no module outside a primitive's definition
(gpuad/ops/, gpuad/core.py) recognises a primitive by its name. A ratchet while the compiler
moves its name tests onto the primitives: the branches on a primitive's name are counted per
module with ast, and a module may hold no more than BUDGET says; the numbers only go down.

Counted: a comparison (==, !=, in, not in) with a primitive's name on either side, a lookup keyed
by it (`TABLE[name]`, `TABLE.get(name)`), a string method of it (`name.startswith(...)`), a match
on it. A primitive's name is `prim.name` or `<x>.prim.name`, or a variable assigned from one, or a
parameter of a function of the same module that is called with one. Names in messages (f-strings,
joins) are not branches and are not counted."""
import ast
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_close

from gpuad.compiler import structure
from gpuad.ops.creation import eye
from gpuad.ops.indexing import getitem, scatter, take_along
from gpuad.ops.shape import broadcast_to, reshape, transpose

ROOT = Path(__file__).resolve().parent.parent / "gpuad"

# module (relative to gpuad/) -> the most name branches it may hold; lower a number when you remove
# some, never raise one (a new rule belongs on the primitive, in gpuad/ops/).
BUDGET = {}


def _is_prim_name(node, aliases):
    """Whether an expression is a primitive's name: prim.name, <x>.prim.name, or an alias of one."""
    if isinstance(node, ast.Name):
        return node.id in aliases
    if not (isinstance(node, ast.Attribute) and node.attr == "name"):
        return False
    owner = node.value
    return (isinstance(owner, ast.Name) and owner.id == "prim") or \
        (isinstance(owner, ast.Attribute) and owner.attr == "prim")


def _assigned(targets, value, aliases):
    """The names that an assignment binds to a primitive's name (tuple unpacking included)."""
    found = set()
    for target in targets:
        if isinstance(target, ast.Name) and _is_prim_name(value, aliases):
            found.add(target.id)
        elif isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
            for t, v in zip(target.elts, value.elts):
                found |= _assigned([t], v, aliases)
    return found


_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _own(scope):
    """The nodes of a function (or the module) outside the functions nested in it."""
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, _FUNCTIONS):
            stack.extend(ast.iter_child_nodes(node))


def _aliases(scope, received):
    """Names of a scope holding a primitive's name: parameters that receive one, names assigned one."""
    aliases, size = set(received), -1
    while size != len(aliases):  # an alias may be assigned from an alias
        size = len(aliases)
        for node in _own(scope):
            if isinstance(node, ast.Assign):
                aliases |= _assigned(node.targets, node.value, aliases)
    return aliases


def _received(scopes, functions):
    """{scope: parameters of it that some call in the module passes a primitive's name}."""
    received = {scope: set() for scope in scopes}
    changed = True
    while changed:
        changed = False
        for scope in scopes:
            aliases = _aliases(scope, received[scope])
            for call in (n for n in _own(scope) if isinstance(n, ast.Call)):
                callee = functions.get(call.func.id) if isinstance(call.func, ast.Name) else None
                if callee is None:
                    continue
                params = [a.arg for a in callee.args.posonlyargs + callee.args.args]
                passed = {params[k] for k, a in enumerate(call.args[:len(params)]) if _is_prim_name(a, aliases)}
                passed |= {k.arg for k in call.keywords if k.arg and _is_prim_name(k.value, aliases)}
                if passed - received[callee]:
                    received[callee] |= passed
                    changed = True
    return received


def _branches_in(node, aliases):
    """The name branches in one expression node (its own, not its children's)."""
    if isinstance(node, ast.Compare):
        return int(any(_is_prim_name(x, aliases) for x in [node.left, *node.comparators]))
    if isinstance(node, ast.Subscript):
        return int(_is_prim_name(node.slice, aliases))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):  # T.get(name), name.startswith(...)
        return int(_is_prim_name(node.func.value, aliases) or
                   (node.func.attr == "get" and bool(node.args) and _is_prim_name(node.args[0], aliases)))
    if isinstance(node, ast.Match):
        return int(_is_prim_name(node.subject, aliases))
    return 0


def count_branches(source):
    """How many times the code compares a primitive's name or looks a table up by it."""
    tree = ast.parse(source)
    scopes = [tree] + [n for n in ast.walk(tree) if isinstance(n, _FUNCTIONS)]
    functions = {f.name: f for f in scopes if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}
    received = _received(scopes, functions)
    total, stack = 0, [(tree, set())]
    while stack:  # a nested function sees the names of the functions around it
        scope, outer = stack.pop()
        aliases = _aliases(scope, received[scope] | outer)
        total += sum(_branches_in(n, aliases) for n in _own(scope))
        stack += [(n, aliases) for n in _own(scope) if isinstance(n, _FUNCTIONS)]
    return total


def _counts():
    counts = {}
    for path in sorted(ROOT.rglob("*.py")):
        module = path.relative_to(ROOT).as_posix()
        if module.startswith("ops/") or module == "core.py":
            continue
        n = count_branches(path.read_text())
        if n:
            counts[module] = n
    return counts


# ---------------------------------------------------------------- the counter
@pytest.mark.parametrize("source, expected", [
    ('if eq.prim.name == "add": pass', 1),
    ('x = step.node.prim.name != "reshape"', 1),
    ('ok = eq.prim.name in ("where", "astype")', 1),
    ('ok = eq.prim.name not in _FREE', 1),
    ('ok = prim.name in MOVES', 1),
    ('def f(eq):\n    name = eq.prim.name\n    if name == "eye":\n        return ROWS[name]', 2),
    ('def f(eq):\n    name, p = eq.prim.name, eq.params\n    return name == "reshape"', 1),
    ('def f(eq):\n    return _RULES.get(eq.prim.name, None)', 1),
    ('ok = eq.prim.name.startswith("reduce")', 1),
    ('match eq.prim.name:\n    case "add":\n        pass', 1),
    ('def f(eq):\n    return g(eq.prim.name, 1)\ndef g(name, k):\n    return name in ("reshape",)', 1),
    ('def f(eq):\n    return g(1, kind=eq.prim.name)\ndef g(k, kind):\n    return TABLE[kind]', 1),
    ('def f(eq):\n    name = eq.prim.name\n    def g():\n        return 0\n    return name == "x"', 1),
    ('def f(eq):\n    name = eq.prim.name\n    return lambda: name == "x"', 1),
    # not branches: messages, a backend's or a dtype's name, a comparison of primitive objects
    ('raise TypeError(f"{eq.prim.name} has no rule")', 0),
    ('text = " ".join(eq.prim.name for eq in eqs)', 0),
    ('ok = be.name == "cupy" and eq.out.dtype.name == "bool"', 0),
    ('ok = eq.prim is reshape', 0),
    ('def f(name):\n    return name == "cupy"', 0),
])
def test_the_counter_finds_each_form_of_name_branch(source, expected):
    assert count_branches(source) == expected


# ---------------------------------------------------------------- the ratchet
def test_no_module_branches_on_primitive_names_beyond_its_budget():
    counts = _counts()
    over = {m: (n, BUDGET.get(m, 0)) for m, n in counts.items() if n > BUDGET.get(m, 0)}
    assert not over, ("these modules recognise primitives by their names (found, allowed): "
                      f"{over}; give the primitive a rule in gpuad/ops/ and ask it instead")


def test_the_budget_goes_down_as_branches_go():
    counts = _counts()
    slack = {m: (counts.get(m, 0), n) for m, n in BUDGET.items() if counts.get(m, 0) < n}
    assert not slack, f"lower these modules' numbers in BUDGET to what they hold (found, listed): {slack}"


# ---------------------------------------------------------------- the rules agree with the impl
def _entries(x):
    """x's non-zeros as the seed analysis holds them (a 0-d x: its one value, at no coordinates)."""
    if not x.shape:
        return structure.Entries((), x.reshape(1), ())
    at = np.nonzero(x)
    return structure.Entries(tuple(c.astype(np.int64) for c in at), x[at], x.shape)


MOVED = [  # (primitive, argument shape, params)
    (reshape, (2, 3, 4), {"shape": (6, 4)}),
    (reshape, (2, 3, 4), {"shape": (4, 1, 6)}),
    (reshape, (1,), {"shape": ()}),
    (reshape, (), {"shape": (1, 1)}),
    (transpose, (2, 3, 4), {"perm": (2, 0, 1)}),
    (broadcast_to, (3, 1), {"shape": (2, 3, 4)}),
    (broadcast_to, (), {"shape": (2, 2)}),
    (getitem, (5, 4), {"idx": (slice(None, None, -2), 1)}),
    (getitem, (5, 4), {"idx": (None, slice(1, 4), slice(None))}),
    (getitem, (5, 4, 3), {"idx": (-1, None, slice(3, 0, -1))}),
    (getitem, (5, 4), {"idx": (slice(2, 5),)}),
    (scatter, (3, 4), {"shape": (6, 4), "idx": (slice(None, None, 2), slice(None))}),
    (scatter, (2, 1, 3), {"shape": (5, 4), "idx": (slice(4, 0, -2), None, slice(1, 4))}),
    (scatter, (3,), {"shape": (5, 4), "idx": (1, slice(0, 3))}),
]


@pytest.mark.parametrize("prim, shape, params", MOVED)
def test_a_data_movements_coordinate_map_moves_entries_as_its_impl_moves_elements(prim, shape, params):
    """The analysis of structure (gpuad/compiler/structure.py) moves a seed's non-zeros by prim.coords; the
    impl moves every element: dense, the two agree."""
    rng = np.random.default_rng(0)
    x = np.asarray(rng.standard_normal(shape) * (rng.random(shape) < 0.5) if shape else 1.5)
    out = np.asarray(prim.impl(x, **params))
    moved = prim.coords(_entries(x), out.shape, 1 << 20, **params)
    assert_close(structure.dense(structure.Entries(moved[0], _entries(x).values[moved[1]], out.shape)), out, rtol=0)


def test_a_broadcast_past_the_most_entries_is_refused():
    x = np.eye(4)
    assert broadcast_to.coords(_entries(x), (100, 4, 4), 399, shape=(100, 4, 4)) is None
    assert broadcast_to.coords(_entries(x), (100, 4, 4), 400, shape=(100, 4, 4)) is not None


@pytest.mark.parametrize("k", [-2, 0, 3])
def test_eyes_entries_are_its_impls_ones(k):
    params = {"rows": 4, "cols": 6, "k": k, "dtype": np.dtype("float32")}
    made = structure.dense(structure.Entries(*eye.entries(**params)))
    assert made.dtype == np.float32
    assert_close(made, np.eye(4, 6, k), rtol=0)


@pytest.mark.parametrize("prim, args", [(getitem, {"idx": (slice(None), np.array([2, 0]))}),
                                        (take_along, {"axis": 1})])
def test_a_gathers_positions_are_its_index_arrays(prim, args):
    x, at = np.zeros((3, 4)), np.array([[2, 0]])
    found = prim.positions([x, at], **args) if prim is take_along else prim.positions([x], **args)
    assert [(p.tolist(), n) for p, n in found] == [([[2, 0]] if prim is take_along else [2, 0], 4)]
