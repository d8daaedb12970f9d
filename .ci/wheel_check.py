"""Run by .ci/run with the Python of a fresh venv that has only the built wheel installed, from a
folder outside the checkout: the package imports from site-packages, ships no top-level `bench`,
carries its kernel templates and py.typed, and a compiled function builds and runs its fused
kernel (any warning, such as fusion turned off for want of a compiler or a template, fails)."""
import importlib.util
import os
import pathlib
import sys
import warnings

warnings.simplefilter("error")

import gpuad  # noqa: E402
import gpuad.numpy as gnp  # noqa: E402
from gpuad.kernels.source import template_dir  # noqa: E402

here = pathlib.Path(gpuad.__file__).resolve()
assert "site-packages" in here.parts, f"gpuad imported from {here}, not from the installed wheel"
assert importlib.util.find_spec("bench") is None, "the wheel installs a top-level `bench` package"
assert (template_dir() / "region.cu").is_file() and here.parent in template_dir().parents, template_dir()
assert (here.parent / "py.typed").is_file(), "the wheel does not mark the package as typed"


def f(x):
    return gnp.sin(x) * gnp.sum(x ** 2) + x[::-1]


x = gnp.linspace(0.0, 1.0, 64)
compiled = gpuad.jit(gpuad.jacfwd(f))
lowered = compiled.lower(x)
assert lowered.as_text()
lowered.compile()  # every kernel built now (a first call would run unfused while they build in the background)
err = abs(compiled(x) - gpuad.jacfwd(f)(x)).max()
assert err < 1e-12, err
built = list(pathlib.Path(os.environ["GPUAD_CACHE_DIR"]).rglob("*.so"))
assert built, "no fused kernel was built"
print(f"wheel check: gpuad {gpuad.__version__} from {here.parent}, {len(built)} kernel library built", file=sys.stderr)
