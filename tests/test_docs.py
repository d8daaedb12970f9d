"""The examples in docstrings run and print what they say (on the NumPy backend)."""
import doctest
import importlib
import pkgutil

import pytest

import gpuad
from gpuad import backends

# Modules that import CuPy at the top cannot load without it; their examples need a GPU anyway.
_CUPY_ONLY = {"gpuad.backends.cupy", "gpuad.kernels.launch"}
MODULES = sorted(m.name for m in pkgutil.walk_packages(gpuad.__path__, "gpuad.")
                 if m.name not in _CUPY_ONLY and not m.name.endswith("__main__"))
# Modules of an optional extra, and the package their examples need (`pip install -e ".[dask]"`).
_EXTRA = {"gpuad.distributed": "dask"}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if backends.backend() != "numpy":
        pytest.skip("the examples print NumPy arrays")
    if name in _EXTRA:
        pytest.importorskip(_EXTRA[name])
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_readme_example_prints_what_the_readme_shows(capsys):
    """The README's example block, run as is, prints the output block that follows it."""
    import re
    from pathlib import Path
    if backends.backend() != "numpy":
        pytest.skip("the README shows NumPy's printout")
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code, shown = re.search(r"```python\n(import gpuad.*?)```\s*```\n(.*?)```", text, re.S).groups()
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out == shown
