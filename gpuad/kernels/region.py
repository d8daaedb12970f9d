"""Source of a fusion region's kernel (gpuad/fusion.py), for CUDA and for the CPU.

A pure function of the region: the body is rendered from the rule table's expressions through
`Expr.cuda`, the same parse trees the NumPy path evaluates, so a fused kernel holds no second copy
of any math. Shapes are baked into the source; input strides and the element count are arguments,
so one kernel serves every layout of its inputs (transposed and sliced views are read in place).
"""
import hashlib
import math
import string

import numpy

from ..ops.table import ROWS
from ..program import Var
from .source import _read

C_TYPES = {"float32": "float", "float64": "double", "bool": "bool"}


class Kernel:
    """A region's kernel: its name, the text of its function, and how to call it. `arrays` are
    the region inputs passed as pointers (Vars, or constant arrays), each with the axes of the
    iteration space along which it is not broadcast (one stride argument per such axis)."""

    def __init__(self, name, text, arrays, axes, outs, shape):
        self.name, self.text, self.arrays, self.axes, self.outs, self.shape = name, text, arrays, axes, outs, shape

    @property
    def size(self):
        return math.prod(self.shape)


def render(region, target):
    """The Kernel of a region for target "cuda" or "host"."""
    shape = region.shape
    arrays = list(region.ins)
    axes = [_unbroadcast_axes(a.shape, shape) for a in arrays]
    params = []
    for j, (a, along) in enumerate(zip(arrays, axes)):
        params.append(f"const {C_TYPES[numpy.dtype(a.dtype).name]}* __restrict__ in{j}")
        params += [f"const long long s{j}_{d}" for d in along]
    params += [f"{C_TYPES[v.dtype.name]}* __restrict__ out{k}" for k, v in enumerate(region.outs)]
    strided = [" + ".join(f"d{d} * s{j}_{d}" for d in along) or "0" for j, along in enumerate(axes)]
    body = _body(region, strided)
    digest = hashlib.sha1(f"{target}\n{', '.join(params)}\n{body}".encode()).hexdigest()[:16]
    name = f"gpuad_region_{digest}"
    template = _read("region.cu" if target == "cuda" else "region_host.cpp")  # host: prelude once per library
    text = string.Template(template).substitute(name=name, params=", ".join(params), body=body)
    if target == "host":  # a second build for C-contiguous inputs: unit strides the compiler can vectorise
        dense = [p for p in params if not p.startswith("const long long")]
        body = _body(region, [_contiguous_offset(a.shape, shape) for a in arrays])
        text += string.Template(template).substitute(name=f"{name}_c", params=", ".join(dense), body=body)
        text += _objects_entry(name, arrays, axes, region.outs, shape)
    return Kernel(name, text, arrays, axes, list(region.outs), shape)


def _body(region, offsets):
    """The loop body: the element's indices, its inputs read at `offsets`, the equations, the outputs."""
    shape = region.shape
    names = {}
    for key, value in region.literals.items():
        names[("c", key)] = _literal(value)
    for key, (c, value, k) in region.identities.items():
        names[("c", key)] = _identity_expression(c.shape, shape, value, k)
    lines = [f"const long long d{d} = i / {math.prod(shape[d + 1:])}LL % {shape[d]}LL;" for d in range(len(shape))]
    for j, (a, offset) in enumerate(zip(region.ins, offsets)):
        lines.append(f"const {C_TYPES[numpy.dtype(a.dtype).name]} a{j} = in{j}[{offset}];")
        names[_key(a)] = f"a{j}"
    for eq in region.equations:
        ctype = C_TYPES[eq.out.dtype.name]
        lines.append(f"{ctype} v{eq.out.id};")
        lines.append(f"{{ typedef {ctype} T; v{eq.out.id} = {_expression(eq, names)}; }}")
        names[_key(eq.out)] = f"v{eq.out.id}"
    lines += [f"out{k}[i] = v{v.id};" for k, v in enumerate(region.outs)]
    return "\n        ".join(lines)


def _contiguous_strides(in_shape):
    return [math.prod(in_shape[m + 1:]) for m in range(len(in_shape))]


def _contiguous_offset(in_shape, shape):
    """An input's offset when it is C-contiguous: the element's index itself where it spans the
    whole iteration space, else its indices times the input's own C strides."""
    if math.prod(in_shape) == math.prod(shape):
        return "i"
    lead = len(shape) - len(in_shape)
    strides = _contiguous_strides(in_shape)
    return " + ".join(f"d{d} * {strides[d - lead]}LL" for d in _unbroadcast_axes(in_shape, shape)) or "0"


def _objects_entry(name, arrays, axes, outs, shape):
    """A CPU entry `<name>_objects` taking the NumPy arrays themselves (PyObject pointers) and
    reading their data pointers and strides from NumPy's array struct (GPUAD_DATA and
    GPUAD_STRIDES, its field offsets, measured at import by gpuad/kernels/host.py): one cheap
    argument per array instead of a pointer and strides converted in Python. It runs the
    contiguous build when every input is C-contiguous along the axes it is read on."""
    params, pointers, strides, checks = [], [], [], []
    for j, (a, along) in enumerate(zip(arrays, axes)):
        ctype, size = C_TYPES[numpy.dtype(a.dtype).name], numpy.dtype(a.dtype).itemsize
        params.append(f"const char* o{j}")
        pointers.append(f"*(const {ctype}* const*)(o{j} + GPUAD_DATA)")
        lead = len(shape) - len(a.shape)
        dense = _contiguous_strides(a.shape)
        for d in along:
            stride = f"(*(const long long* const*)(o{j} + GPUAD_STRIDES))[{d - lead}] / {size}"
            strides.append((len(pointers) - 1, stride))
            checks.append(f"{stride} == {dense[d - lead]}LL")
    for k, v in enumerate(outs):
        params.append(f"const char* r{k}")
        pointers.append(f"*({C_TYPES[v.dtype.name]}* const*)(r{k} + GPUAD_DATA)")
    generic = []
    for p, text in enumerate(pointers):
        generic.append(text)
        generic += [stride for owner, stride in strides if owner == p]
    n = f"{math.prod(shape)}LL"
    call_dense = f"{name}_c({', '.join(pointers + [n])})"
    call_strided = f"{name}({', '.join(generic + [n])})"
    test = " && ".join(checks) or "true"
    return (f'extern "C" void {name}_objects({", ".join(params)}) {{\n'
            f"    if ({test}) {call_dense}; else {call_strided};\n}}\n")


def host_library(kernels, offsets):
    """One C++ source holding the CPU build of several regions; offsets: (data, strides) of
    NumPy's array struct."""
    data, strides = offsets
    return (f"#define GPUAD_DATA {data}\n#define GPUAD_STRIDES {strides}\n" + _read("host_prelude.h") + "\n"
            + "\n".join(k.text for k in kernels))


def _identity_expression(c_shape, shape, value, k):
    """value * eye(rows, cols, k)[row, col] at this element, from the indices: the constant's first
    axis is the row, its other axes flattened (C order) the column; size-1 axes broadcast."""
    lead = len(shape) - len(c_shape)
    row = f"d{lead}" if c_shape[0] != 1 else "0LL"
    terms, stride = [], 1
    for j in range(len(c_shape) - 1, 0, -1):
        if c_shape[j] != 1:
            terms.append(f"d{lead + j} * {stride}LL")
        stride *= c_shape[j]
    col = " + ".join(terms) or "0LL"
    return f"(({col}) - ({row}) == {k}LL ? {_literal(value)} : T(0.0))"


def _literal(value):
    """A number as C source; inf and NaN as the quotients gpuad_math.cuh writes them (C has no literal)."""
    v = float(value)
    return f"T({v!r})" if math.isfinite(v) else f"(T({math.copysign(1.0, v) if math.isinf(v) else 0.0}) / T(0))"


def _unbroadcast_axes(in_shape, shape):
    """Axes of the iteration space along which an input of in_shape varies (right-aligned)."""
    lead = len(shape) - len(in_shape)
    return [lead + k for k, d in enumerate(in_shape) if d != 1 and shape[lead + k] != 1]


def _key(a):
    return ("v", a.id) if isinstance(a, Var) else ("c", id(a))


def _operand(a, names):
    if isinstance(a, (bool, int, float)):
        return _literal(a)
    return names[_key(a)]


def _expression(eq, names):
    name = eq.prim.name
    ops = [_operand(a, names) for a in eq.ins]
    if name == "where":
        return f"({ops[0]} ? T({ops[1]}) : T({ops[2]}))"
    if name in ("astype", "reshape"):
        return f"T({ops[0]})"
    row = ROWS[name]
    return row.primal.cuda(dict(zip(row.args, ops)))
