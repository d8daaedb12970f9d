"""The import graph of gpuad: imports make no circle, they run down the tiers of
docs/contributing.md but for the ones listed here (a new one fails the test until it is listed),
and the AD layer and the compiler keep apart as issue 23 asks.

A module's imports are read with ast, module-level ones apart from those inside functions (which
run on first use, so they can close a circle without breaking the import, but still tie a tier
to the ones above it). `from .x import y` counts as an import of the module x.y where that is a
module, else of x; the implicit import of a module's parent packages is not counted."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "gpuad"

# The tiers of docs/contributing.md, bottom first: a module imports from its own tier and those
# below it. "" is gpuad itself (its __init__); a name ending in ".*" stands for a package's modules.
TIERS = [
    ("foundations", ["tree", "axes", "ops.expr", "backends", "backends.numpy", "backends.scipy_functions",
                     "sparse.coloring", "kernels", "kernels.nvrtc", "kernels.cubin", "kernels.index32",
                     "kernels.cache", "kernels.builds", "counterparts", "fpwarnings", "sizes",
                     "compiler.index"]),
    ("primitives", ["core", "ops", "ops.*", "kernels.source", "kernels.plan", "kernels.launch", "backends.cupy"]),
    ("transforms", ["forward", "reverse", "batching", "chunking", "revolve"]),
    ("compiler", ["compiler", "compiler.*"]),
    ("user API", ["api", "numpy", "numpy.*", "scipy", "scipy.*"]),
    ("on top", ["jit", "custom", "sparse", "sparse.detect", "sparse.zeros", "sparse.compressed", "lax", "loops",
                "branches", "ad_checkpoint",
                "distributed", "kernels.programs", "kernels.__main__", ""]),
]

# Imports that reach up a tier: (importer, imported) -> "module" or "function" (where it stands).
UPWARD = {
    ("backends", "backends.cupy"): "function",  # loaded when chosen, so NumPy-only installs never import CuPy
}

# Issue 23's split: the AD layer knows nothing of the compiler, and the compiler imports nothing of
# the AD layer but these (each a later step of the issue).
AD = {"forward", "reverse", "batching", "chunking", "api"}
COMPILER_USES_AD = set()


def _modules():
    names = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


MODULES = _modules()
COMPILER = {m for m in MODULES if m == "compiler" or m.startswith("compiler.")}


def _targets(module, node, package):
    """The gpuad modules (names relative to gpuad) one import statement of module imports."""
    if isinstance(node, ast.Import):
        return [a.name.removeprefix("gpuad").lstrip(".") for a in node.names if a.name.split(".")[0] == "gpuad"]
    if node.level:
        here = module.split(".") if module else []
        base = here[:len(here) + package - node.level]
    elif (node.module or "").split(".")[0] == "gpuad":
        base = []
    else:
        return []
    name = node.module.removeprefix("gpuad").lstrip(".") if node.module else ""
    prefix = ".".join(base + ([name] if name else []))
    return [f"{prefix}.{a.name}".lstrip(".") if f"{prefix}.{a.name}".lstrip(".") in MODULES else prefix
            for a in node.names]


def _imports():
    """{module: (module-level imports, imports inside functions only)}"""
    graph = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        package = path.name == "__init__.py"
        inside = {n for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                  for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
        every = {n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))}
        top = {t for n in every - inside for t in _targets(module, n, package)} - {module}
        late = {t for n in inside for t in _targets(module, n, package)} - {module} - top
        graph[module] = top, late
    return graph


GRAPH = _imports()


def _tier(module):
    for depth, (_, members) in enumerate(TIERS):
        if module in members or any(m.endswith(".*") and module.startswith(m[:-1]) for m in members):
            return depth
    return None


def _circle(edges):
    """One import circle in {module: imported modules}, as a list of modules, or None."""
    done, path = set(), []

    def visit(module):
        if module in path:
            return path[path.index(module):] + [module]
        if module in done:
            return None
        path.append(module)
        found = next(filter(None, map(visit, sorted(edges.get(module, ())))), None)
        path.pop()
        done.add(module)
        return found

    return next(filter(None, map(visit, sorted(edges))), None)


def test_the_reader_finds_known_imports():
    top, late = GRAPH["compiler.replay"]
    assert {"sizes", "compiler.fusion", "compiler.ir", "compiler.codegen", "backends"} <= top
    assert "compiler.host" in late and "compiler.host" not in top
    assert "ops.table" in GRAPH["kernels.source"][0] and GRAPH["tree"] == (set(), set())


def test_the_circle_finder_finds_a_circle():
    assert _circle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _circle({"a": {"b"}, "b": {"c"}, "d": {"a", "c"}}) is None


def test_no_circle_among_module_level_imports():
    assert _circle({m: top for m, (top, _) in GRAPH.items()}) is None


def test_no_circle_with_the_imports_inside_functions():
    """chunking and replay imported each other (chunking inside a function) before chunking's plan
    check became a hook that jit installs."""
    assert _circle({m: top | late for m, (top, late) in GRAPH.items()}) is None


def test_every_module_has_one_tier():
    unplaced = sorted(m for m in MODULES if _tier(m) is None)
    assert not unplaced, f"put these modules in TIERS (and in docs/contributing.md's table): {unplaced}"
    named = [m for _, members in TIERS for m in members]
    assert len(named) == len(set(named))


def test_imports_run_down_the_tiers_but_the_listed_ones():
    upward = {}
    for module, (top, late) in GRAPH.items():
        for where, targets in (("module", top), ("function", late)):
            for target in targets:
                if _tier(target) > _tier(module):
                    upward[module, target] = where
    assert upward == UPWARD


def test_the_ad_layer_imports_no_compiler_module():
    """chunking imported program and replay (inside a function) before its plan check became a
    hook that jit installs."""
    found = {(m, t) for m in AD for t in set().union(*GRAPH[m]) if t in COMPILER}
    assert not found


def test_the_compiler_imports_of_the_ad_layer_only_the_listed():
    found = {(m, t) for m in COMPILER for t in set().union(*GRAPH[m]) if t in AD}
    assert found == COMPILER_USES_AD
