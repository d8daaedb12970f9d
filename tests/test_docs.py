"""The examples in the docstrings, the README and the docs/ pages run and print what they say
(on the NumPy backend).

A page's ```python blocks run in order in one namespace, as a reader would paste them; a block
followed directly by a plain ``` block must print exactly that block."""
import doctest
import importlib
import importlib.util
import pkgutil
import re
from pathlib import Path

import pytest

import gpuad
from gpuad import backends

ROOT = Path(__file__).resolve().parents[1]
# Modules that import CuPy at the top cannot load without it; their examples need a GPU anyway.
_CUPY_ONLY = {"gpuad.backends.cupy", "gpuad.kernels.launch"}
MODULES = sorted(m.name for m in pkgutil.walk_packages(gpuad.__path__, "gpuad.")
                 if m.name not in _CUPY_ONLY and not m.name.endswith("__main__"))
# Modules and pages of an optional extra, and the package their examples need (`pip install -e ".[dask]"`).
_EXTRA = {"gpuad.distributed": "dask", "docs/distributed.md": "dask"}
PAGES = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))]
# A fenced block may be indented (inside a list item); its output block has the same indent.
_BLOCK = re.compile(r"^( *)```python\n(.*?)^\1```\n(?:\s*^\1```(?:text)?\n(.*?)^\1```$)?", re.S | re.M)


@pytest.fixture(autouse=True)
def _numpy_only():
    if backends.backend() != "numpy":
        pytest.skip("the examples print NumPy arrays")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if name in _EXTRA:
        pytest.importorskip(_EXTRA[name])
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def blocks(text):
    """[(code, the output it shows, or None)] of a markdown page."""
    def unindent(block, indent):
        return block and "".join(line[len(indent):] for line in block.splitlines(keepends=True))
    return [(unindent(m[2], m[1]), unindent(m[3], m[1])) for m in _BLOCK.finditer(text)]


def test_blocks_pair_code_with_the_output_that_follows_it():
    page = ("```python\nprint(1)\n```\n\n```\n1\n```\n\n```python\nx = 2\n```\n\ntext\n\n```\nnot output\n```\n"
            "- item\n\n    ```python\n    print(3)\n    ```\n\n    ```\n     3\n    ```\n")
    assert blocks(page) == [("print(1)\n", "1\n"), ("x = 2\n", None), ("print(3)\n", " 3\n")]


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_print_what_the_page_shows(page, capsys, tmp_path, monkeypatch):
    if page in _EXTRA:
        pytest.importorskip(_EXTRA[page])
    monkeypatch.chdir(tmp_path)  # what an example writes (docs/distributed.md's J.zarr) stays out of the checkout
    found = blocks((ROOT / page).read_text())
    namespace = {"__name__": page}
    for k, (code, shown) in enumerate(found):
        if code.startswith("import jax") and importlib.util.find_spec("jax") is None:
            continue  # a comparison with JAX (docs/loops.md): CI installs it, the test extra does not
        exec(compile(code, f"{page}, python block {k + 1}", "exec"), namespace)
        printed = capsys.readouterr().out
        if shown is not None:
            assert printed == shown, f"{page}, python block {k + 1}"


def test_the_readme_examples_are_found_with_their_output():
    """Guards the test above against a README whose blocks it no longer recognises."""
    found = blocks((ROOT / "README.md").read_text())
    assert len(found) >= 2 and all(shown for _, shown in found)


def _rows(text):
    """{problem: cells} of the markdown table rows in text, the first row of each problem."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            cells = line.strip("| ").split(" | ")
            rows.setdefault(cells[0], cells)
    return rows


def test_the_benchmark_tables_are_the_results_files():
    """The README's and the performance page's tables of the main benchmark copy the results file
    the README names, row by row (the README leaves out the memory column)."""
    results_file = re.search(r"bench/results/cpu-[\w.-]+\.md", (ROOT / "README.md").read_text())[0]
    results = _rows((ROOT / results_file).read_text())
    for page, drop in (("README.md", 3), ("docs/performance.md", None)):
        text = (ROOT / page).read_text()
        assert results_file in text
        shown = {k: v for k, v in _rows(text).items() if k in results and k != "problem"}
        assert len(shown) >= 10, page
        for problem, cells in shown.items():
            expected = [c for j, c in enumerate(results[problem]) if j != drop]
            assert cells == expected, f"{page}: {problem}"
