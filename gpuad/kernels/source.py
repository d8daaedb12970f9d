"""CUDA source of the fused elementwise kernels, generated from the elementwise table.

A pure function of (row, mode, variant, dtype): it fills the named slots of the templates in
kernels/ with the row's expressions rendered by `Expr.cuda`, the same parse trees the NumPy
path evaluates, so the kernels cannot hold a second copy of the math.

A variant says how each argument reaches the kernel, one letter per argument:
    jvp:  t  array with a tangent bundle (full output shape)
    vjp:  n  array whose cotangent is needed
    both: a  array without a derivative (full shape, or one element read with stride 0)
          s  scalar passed by value
"""
import functools
import itertools
import re
import string
from pathlib import Path

import numpy

from ..ops.table import DIFFERENTIABLE, HOLOMORPHIC

MODES = {"jvp": ("elementwise_fwd.cu", "t"), "vjp": ("elementwise_bwd.cu", "n")}
DTYPES = (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64))
COMPLEX_DTYPES = (numpy.dtype(numpy.complex64), numpy.dtype(numpy.complex128))  # the HOLOMORPHIC rows' too
C_TYPES = {"float32": "float", "float64": "double", "complex64": "gpuad_complex<float>",
           "complex128": "gpuad_complex<double>"}
_SUFFIX = {"float32": "f32", "float64": "f64", "complex64": "c64", "complex128": "c128"}
# Each kernel has a 64-bit and a 32-bit index variant (plan.py picks the 32-bit one where every index fits)
INDEX_TYPES = {"int64": ("long long", ""), "int32": ("int", "_i32")}
_HOLOMORPHIC = frozenset(r.name for r in HOLOMORPHIC)


def template_dir():
    """Where the CUDA templates live: gpuad/kernels/cuda/ in an installed wheel (pyproject.toml
    maps kernels/ there), the top-level kernels/ in a source checkout."""
    installed = Path(__file__).with_name("cuda")
    return installed if installed.is_dir() else Path(__file__).resolve().parents[2] / "kernels"


@functools.cache
def _read(name):
    """A template with its local #include "..." lines replaced by the files they name, so the
    source is self-contained (CuPy caches compiled kernels by source text: a header edit must
    change the key)."""
    text = (template_dir() / name).read_text()
    return re.sub(r'#include "([^"]+)"', lambda m: _read(m.group(1)), text)


def variants(row, mode):
    """Every variant of a row's kernel in `mode`: each argument is derivative-bearing (t or n),
    a plain array (a) or a scalar (s), and at least one bears a derivative."""
    marked = MODES[mode][1]
    return ["".join(v) for v in itertools.product(marked + "as", repeat=len(row.args)) if marked in v]


def kernel_name(row, mode, variant, dtype, index="int64"):
    """The kernel's name as a profiler shows it, e.g. gpuad_jvp_multiply_ts_f32 (its 32-bit index
    variant gpuad_jvp_multiply_ts_f32_i32)."""
    return f"gpuad_{mode}_{row.name}_{variant}_{_SUFFIX[numpy.dtype(dtype).name]}{INDEX_TYPES[index][1]}"


def render(row, mode, variant, dtype, index="int64"):
    """The complete CUDA source of one kernel, its indices of type `index` ("int64" or "int32"):
    no includes, ready for NVRTC.

    >>> from gpuad.ops.table import ROWS
    >>> "cos(x)" in render(ROWS["sin"], "jvp", "t", "float64")
    True
    """
    if row.nondiff:
        raise ValueError(f"{row.name} has no derivative, hence no fused kernel")
    if variant not in variants(row, mode):
        raise ValueError(f"{variant!r} is not a {mode} variant of {row.name}: {variants(row, mode)}")
    if numpy.dtype(dtype) not in dtypes(row):
        raise ValueError(f"{row.name} has no kernel of {numpy.dtype(dtype)} values")
    marked = MODES[mode][1]
    slots = dict(
        T=C_TYPES[numpy.dtype(dtype).name],
        I=INDEX_TYPES[index][0],
        name=kernel_name(row, mode, variant, dtype, index),
        params=", ".join(_param(code, v) for code, v in zip(variant, row.args)),
        loads=_lines(_load(code, v) for code, v in zip(variant, row.args)),
        partials=_lines(f"const T d{j} = {row.partials[j].cuda()};"
                        for j, code in enumerate(variant) if code == marked),
        primal=row.primal.cuda(),
        tangent=" + ".join(f"d{j} * t_{v}[at]" for j, (code, v) in enumerate(zip(variant, row.args))
                           if code == "t"),
        outputs="".join(f", T* __restrict__ c_{v}" for code, v in zip(variant, row.args) if code == "n"),
        writes=_lines((f"c_{v}[at] = d{j} * g;" for j, (code, v) in enumerate(zip(variant, row.args))
                       if code == "n"), indent=" " * 12),
    )
    return complex_header(dtype) + string.Template(_read(MODES[mode][0])).substitute(slots)


def dtypes(row):
    """The dtypes a row has kernels of: complex ones too where it is holomorphic."""
    return DTYPES + COMPLEX_DTYPES if row.name in _HOLOMORPHIC else DTYPES


def complex_header(*dtypes):
    """kernels/gpuad_complex.cuh where a kernel computes with complex values, else nothing (the
    kernels of real values keep their text, and their compile time)."""
    return _read("gpuad_complex.cuh") if any(numpy.dtype(d).kind == "c" for d in dtypes) else ""


def _param(code, v):
    if code == "s":
        return f"const T {v}"
    second = f"const T* __restrict__ t_{v}" if code == "t" else f"const I q_{v}, const I r_{v}"
    return f"const T* __restrict__ p_{v}, {second}"


def _load(code, v):
    """Read argument v for element i; a/n arguments may be broadcast (plan.py's (q, r))."""
    broadcast = f"const T {v} = p_{v}[gpuad_broadcast(i, q_{v}, r_{v})];"
    return {"t": f"const T {v} = p_{v}[i];", "a": broadcast, "n": broadcast, "s": None}[code]


def _lines(lines, indent=" " * 8):
    return ("\n" + indent).join(line for line in lines if line)


def every_kernel():
    """(row, mode, variant, dtype) for every fused kernel gpuad can launch."""
    return [(row, mode, variant, dtype) for row in DIFFERENTIABLE for mode in MODES
            for variant in variants(row, mode) for dtype in dtypes(row)]
