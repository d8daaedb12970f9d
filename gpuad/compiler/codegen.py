"""Source of a fusion region's kernel (gpuad/compiler/fusion.py), for CUDA and for the CPU.

A pure function of the region: the body is rendered from the rule table's expressions through
`Expr.cuda`, the same parse trees the NumPy path evaluates, so a fused kernel holds no second copy
of any math, and the members' index maps (slices, shifts, transposes, scatters, concatenations)
become index arithmetic (a gather's index is loaded from its index array). Shapes are baked
into the source; input strides and the element count are arguments, so one kernel serves every
layout of its inputs (views are read in place).
"""
import hashlib
import math
import re
import string
import sys

import numpy

from ..kernels.builds import balanced
from ..kernels.source import C_TYPES as _ELEMENT_TYPES
from ..kernels.source import _read
from ..ops.creation import eye
from ..ops.indexing import basic, concatenate, getitem, scatter, take_along
from ..ops.shape import broadcast_to, reduce_sum, reshape, transpose
from . import coalesce, registers, warps
from .fusion import ROWS_FROM as _ROWS_FROM
from .fusion import UNROLLED as _UNROLLED
from .fusion import unrolled_axes
from .ir import Lit, Var

C_TYPES = dict(_ELEMENT_TYPES, bool="bool", int32="int", int64="long long")  # complex: kernels/gpuad_complex.cuh
_C_TYPES = {numpy.dtype(name): c for name, c in C_TYPES.items()}


def ctype(dtype):
    """The C type of a dtype (looked up by the dtype: its name is slow to make; a byte-swapped
    array is copied to native order before a kernel reads it)."""
    dtype = numpy.dtype(dtype)
    c = _C_TYPES.get(dtype)
    return c if c is not None else _C_TYPES[dtype.newbyteorder("=")]


# trailing axes are unrolled (fusion.unrolled_axes) while their equations, unrolled, are at most this many
_UNROLLED_LINES = 4096
MAX_LINES = 20000  # a body longer than this (values read at too many index paths) is not built
_SELECTED_MEMBERS = 24  # cases of a choice made of up to this many members are all computed, then one selected


class TooLarge(ValueError):
    """A region whose kernel would be too long to compile in reasonable time and memory."""


class Kernel:
    """A region's kernel: its name, the text of its function, and how to call it. `arrays` are
    the region inputs passed as pointers (Vars, or constant arrays), each with its axes longer
    than 1 (one stride argument per such axis). `dense` is the loop body for C-contiguous inputs
    (over `i`, one thread an element, reading in<j> and writing out<k>), `reads` the (input
    position, index tuple) of each load in it, `inner` how many trailing axes one element of the
    loop unrolls: a whole loop rendered as one kernel (gpuad/compiler/loop_kernel.py) calls the
    body and checks from the reads which elements each element reads."""

    def __init__(self, name, text, arrays, axes, outs, shape, size, extent, lanes=1, dense="", reads=(), inner=0):
        self.name, self.text, self.arrays, self.axes, self.outs, self.shape = name, text, arrays, axes, outs, shape
        self.size = size  # elements of the loop (each computes the unrolled inner axes' elements)
        self.extent = extent  # elements of its largest value (the bound of its flat indices)
        self.lanes = lanes  # threads per loop element (a warp where its sums are split: warps.py)
        self.dense, self.reads, self.inner = dense, list(reads), inner  # what a loop kernel reads (loop_kernel.py)


def render(region, target):
    """The Kernel of a region for target "cuda" or "host"."""
    shape, arrays = region.shape, list(region.ins)
    axes = [[k for k, d in enumerate(a.shape) if d != 1] for a in arrays]
    params = []
    for j, (a, along) in enumerate(zip(arrays, axes)):
        params.append(f"const {ctype(a.dtype)}* __restrict__ in{j}")
        params += [f"const long long s{j}_{k}" for k in along]
    params += [f"{ctype(v.dtype)}* __restrict__ out{k}" for k, v in enumerate(region.outs)]

    def strided(j, idx):
        return " + ".join(f"{idx[k]} * s{j}_{k}" for k in axes[j]) or "0"
    cols = _row_length(region) if target == "host" else None
    loads = []  # the body is pulled once, its loads marked, then spelled for each layout

    def marked(j, idx):
        loads.append((j, idx))
        return f"@{len(loads) - 1}@"
    inner = inner_axes(region)
    if target == "cuda" and inner:  # fewer axes unrolled where the copies' values would not fit in registers
        one = registers.words(_pulled(region, lambda j, idx: "0", cols, 0))  # one element's values
        while inner and math.prod(shape[len(shape) - inner:]) * one > registers.BUDGET:
            inner -= 1
    pulled = _pulled(region, marked, cols, inner)
    size = math.prod(shape[:len(shape) - inner])

    def spelled(offset):
        return re.sub(r"@(\d+)@", lambda m: offset(*loads[int(m.group(1))]), pulled)
    body, lanes = spelled(strided), 1
    if target == "cuda":  # threads walk the loop as the largest operand lies in memory; long sums by warps
        outer = shape[:len(shape) - inner]
        body = coalesce.reordered(body, outer, coalesce.fastest(loads, arrays, outer, math.prod(shape)))
        body, lanes = warps.split(body, size)
    signature = f"{target}\n{shape}\n{[tuple(a.shape) for a in arrays]}\n{', '.join(params)}\n{body}"
    digest = hashlib.sha1(signature.encode()).hexdigest()[:16]  # one name, one text
    name = f"gpuad_region_{digest}"
    # host: the prelude comes once per library; a loop of rows where the last loop axis is long
    template = _read("region.cu" if target == "cuda" else "region_host.cpp" if cols is None else "region_host_rows.cpp")
    text = _fill(template, region, name, params, body, inner, cols, lanes)

    def contiguous(j, idx):
        return _contiguous_offset(arrays[j].shape, idx, shape)
    dense_body = spelled(contiguous)  # C-contiguous inputs: unit strides the compiler can vectorise
    if target == "host":  # a second build for them
        dense = [p for p in params if not p.startswith("const long long s")]
        text += _fill(template, region, f"{name}_c", dense, dense_body, inner, cols)
        text += _objects_entry(name, arrays, axes, region.outs, size)
    extent = max(math.prod(v.shape) for v in [*arrays, *(eq.out for eq in region.equations)])
    return Kernel(name, text, arrays, axes, list(region.outs), shape, size, extent, lanes,
                  dense_body if cols is None else "", loads, inner)


def _fill(template, region, name, params, body, inner, cols=None, lanes=1):
    loop = len(region.shape) - inner
    fast, lo, hi = _interior(body, f"d{loop - 1}", cols or math.prod(region.shape[:loop])) if cols or loop == 1 \
        else ("", 0, 0)
    return string.Template(template).substitute(name=name, params=", ".join(params), body=body, args=_names(params),
                                                fast_body=fast, lo=lo, hi=hi, cols=cols, lanes=lanes)


_CLAMP = "gpuad_clamp("
_TOP_INDEX = re.compile(r"-?\d+LL|d\d+")  # indices valid for every element: constants, the element's digits


def _row_length(region):
    """The last loop axis's length where the host loop runs by rows (several loop axes, the last
    long enough to vectorise along), else None."""
    loop = region.shape[:len(region.shape) - inner_axes(region)]
    return loop[-1] if len(loop) >= 2 and loop[-1] >= _ROWS_FROM else None


def _interior(body, digit, length):
    """(the body without its clamps, lo, hi): where every clamped index is `digit` + c (the
    index along the loop's only or last axis, of `length` elements), the elements with
    lo <= digit < hi read in range unclamped; ("", 0, 0) where that does not apply (no clamps,
    or a clamp of another form)."""
    if _CLAMP not in body:
        return "", 0, 0
    lo, hi, pieces, k = 0, length, [], 0
    while (p := body.find(_CLAMP, k)) >= 0:
        q, depth = p + len(_CLAMP), 1
        while depth:
            depth += {"(": 1, ")": -1}.get(body[q], 0)
            q += 1
        x, _, top = body[p + len(_CLAMP):q - 1].rpartition(", ")
        m = re.fullmatch(rf"{digit}|\({digit} \+ (-?\d+)LL\)", x)
        if m is None:
            return "", 0, 0
        c = int(m.group(1) or 0)
        lo, hi = max(lo, -c), min(hi, int(top[:-2]) - c + 1)
        pieces.append(body[k:p] + f"({x})")
        k = q
    return "".join(pieces) + body[k:], lo, max(lo, hi)


def _pulled(region, offset, cols, inner):
    """The body of the region's loop, reading inputs at `offset(j, index)` (by rows of `cols`
    elements where given: see _Body.text). Values are pulled recursively, a few frames per member
    along the longest chain: the recursion limit is raised for that while it runs."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 8 * len(region.equations) + 1000))
    try:
        return _Body(region, offset).text(cols, inner)
    finally:
        sys.setrecursionlimit(limit)


def _names(params):
    return ", ".join(p.split()[-1] for p in params)


class _Body:
    """The loop body of a region's kernel for element i: every value a root needs is pulled at
    the index tuple the root's element reads it at (one C expression per axis), through the
    members' index maps, and computed once per index tuple (`memo`). Values under a condition
    (a scatter's positions, a concatenation's pieces) are computed at clamped indices and
    selected where they are cheap, else inside their `if` block only; a sum's terms inside its
    loop. A value is declared in the outermost block where it is valid (`levels`: the lines of
    the blocks open, outermost first): one read at the element's own digits or constant indices,
    from values valid there, goes before the blocks, so every block reads it, computed once; what
    a block computes at its own indices is forgotten after it."""

    def __init__(self, region, offset):
        self.region, self.offset = region, offset
        self.made = {eq.out: eq for eq in region.equations}
        self.inputs = {_key(a): j for j, a in enumerate(region.ins)}
        self.levels, self.memo, self.temps, self.count = [[]], {}, 0, 0
        self.keys = [[]]  # the memo keys of each open level, forgotten when it closes
        self.deepest = 0  # the innermost level the value being computed needs
        self.nonnegative = {}  # id(constant positions) -> whether none is negative

    def text(self, cols, inner):
        """Element i of the loop owns the elements of the iteration space whose leading indices
        are i's digits over the outer axes; the inner axes are unrolled, their indices constants
        (conditions on them fold away, and what does not depend on them is computed once). By
        rows (cols: the last outer axis's length), the digits come from the row r and column j."""
        shape = self.region.shape
        outer, per = shape[:len(shape) - inner], math.prod(shape[len(shape) - inner:])
        digits = [_digit(outer, d) for d in range(len(outer))] if cols is None else \
            [_digit(outer[:-1], d, "r") for d in range(len(outer) - 1)] + ["j"]
        lines = self.levels[0]
        lines += [f"const long long d{d} = {digit};" for d, digit in enumerate(digits)]
        for j in range(per):
            index = tuple(f"d{d}" for d in range(len(outer))) + tuple(_digits(j, shape[len(outer):]))
            at = "i" if per == 1 else f"i * {per}LL + {j}LL"
            for k, v in enumerate(self.region.outs):
                value = self.value(v, ("0LL",) * (len(v.shape) - len(shape)) + index)  # a literal is in T
                lines.append(f"{{ typedef {ctype(v.dtype)} T; out{k}[{at}] = {value}; }}")
        return "\n        ".join(lines)

    def value(self, a, idx):
        """A C expression for a at the index tuple idx."""
        if isinstance(a, Lit) and isinstance(a.val, (bool, int, float, complex)):
            return _literal(a.val)
        key = _key(a)
        if key[1] in self.region.literals:
            value = self.region.literals[key[1]]
            return f"{value}LL" if a.dtype.kind == "i" else _literal(value)  # int: a gather's position
        idx = tuple("0LL" if d == 1 else i for d, i in zip(a.shape, idx))
        entry = self.memo.get((key, idx))
        if entry is None:
            outer = self.deepest
            self.deepest = 0 if all(map(_TOP_INDEX.fullmatch, idx)) else len(self.levels) - 1
            entry = self.memo[key, idx] = (self._compute(a, idx), self.deepest)
            self.keys[self.deepest].append((key, idx))
            self.deepest = outer
            if self.count > MAX_LINES:
                raise TooLarge(f"a fused region's kernel would exceed {MAX_LINES} lines")
        self.deepest = max(self.deepest, entry[1])
        return entry[0]

    def _emit(self, line, level=None):
        self.levels[-1 if level is None else level].append(line)
        self.count += 1

    def _open(self):
        """Open a block (a branch, a sum's loop): values computed inside it at its own indices
        stay in it."""
        self.levels.append([])
        self.keys.append([])

    def _close(self):
        """Close the innermost block, forgetting its values: its lines, indented."""
        for k in self.keys.pop():
            del self.memo[k]
        return ["    " + line for line in self.levels.pop()]

    def _compute(self, a, idx):
        if _key(a) in self.inputs:
            j = self.inputs[_key(a)]
            return self._temp(a.dtype, f"in{j}[{self.offset(j, idx)}]")
        eq = self.made[a]
        pull = _PULLS.get(eq.prim)
        if pull is not None:
            return pull(self, eq, idx)
        ops = [_typed_literal(b.val) if a.dtype.kind == "b" and _number(b) else self.value(b, _broadcast_index(b, idx))
               for b in eq.ins]  # a comparison's number in its own type, not the bool result's T
        return self._temp(a.dtype, eq.prim.expression(ops, a.dtype))

    def _take_along(self, eq, idx):
        x, positions, axis = eq.ins[0], eq.ins[1], eq.params["axis"]
        at = self._position(positions, idx, x.shape[axis])
        return self.value(x, idx[:axis] + (at,) + idx[axis + 1:])

    def _scatter(self, eq, idx):
        inverse = self.region.inverses.get(eq.out)
        case = _scatter_case(eq.out.shape, eq.params["idx"], idx, eq.ins[0], lambda at: self.value(inverse, at))
        return self._cases(eq.out.dtype, [case], "T(0.0)")

    def _position(self, p, idx, n):
        """The index along an axis of n that a gather's positions p give at idx (p broadcast
        against idx): negative positions wrapped unless a constant has none."""
        at = self.value(p, _broadcast_index(p, idx))
        if re.fullmatch(r"-?\d+LL", at):
            return f"{int(at[:-2]) % n}LL"
        if isinstance(p, Lit):
            if id(p.val) not in self.nonnegative:
                self.nonnegative[id(p.val)] = bool((p.val >= 0).all())
            if self.nonnegative[id(p.val)]:
                return at
        return f"gpuad_wrap({at}, {n}LL)"

    def _temp(self, dtype, expr):
        """A new variable holding expr, declared in the level of the value being computed."""
        name, c = f"t{self.temps}", ctype(dtype)
        self.temps += 1
        self._emit(f"{c} {name}; {{ typedef {c} T; {name} = {expr}; }}", self.deepest)
        return name

    def _declared(self, dtype):
        """A new variable, zero, declared in the innermost open block (a sum's or a choice's
        result, assigned inside blocks of its own)."""
        name, c = f"t{self.temps}", ctype(dtype)
        self.temps += 1
        self.deepest = len(self.levels) - 1
        self._emit(f"{c} {name} = {c}(0);")
        return name, c

    def _sum(self, dtype, x, axes, keepdims, idx):
        """The sum of x over axes at idx of the result: unrolled when short, else a loop whose
        body's values are forgotten after it."""
        axes = sorted(a % len(x.shape) for a in axes)
        dims = [x.shape[a] for a in axes]
        n = math.prod(dims)
        if n <= _UNROLLED:
            terms = [self.value(x, _summed_index(x, axes, keepdims, idx, _digits(j, dims))) for j in range(n)]
            return self._temp(dtype, " + ".join(terms))
        name, ctype = self._declared(dtype)
        r, deepest = f"r{name[1:]}", self.deepest
        self._open()
        term = self.value(x, _summed_index(x, axes, keepdims, idx, _digits_of(r, dims)))
        self._emit(f"{{ typedef {ctype} T; {name} += {term}; }}")
        body = self._close()
        self.levels[-1] += [f"for (long long {r} = 0; {r} < {n}LL; ++{r}) {{"] + body + ["}"]
        self.deepest = deepest
        return name

    def _cases(self, dtype, cases, otherwise):
        """A value chosen by conditions: [(condition, value, its index, that index clamped into
        range)], first match, else `otherwise` (None: the last case holds where the others do
        not). Cheap cases are all computed, at clamped indices, and one selected: no branch, so
        the loop vectorises; costly ones are computed in `if` blocks, only where they hold."""
        cases, otherwise = _decided(cases, otherwise)
        if not cases:
            return self._temp(dtype, otherwise)
        if otherwise is None and len(cases) == 1:
            return self.value(cases[0][1], cases[0][2])
        if self._few([v for _, v, _, _ in cases]):
            return self._select(dtype, cases, otherwise)
        return self._branches(dtype, cases, otherwise)

    def _few(self, values):
        """Whether the members these values are made of number at most _SELECTED_MEMBERS."""
        seen, stack = set(), list(values)
        while stack:
            a = stack.pop()
            if isinstance(a, Var) and a in self.made and a not in seen:
                seen.add(a)
                if len(seen) > _SELECTED_MEMBERS:
                    return False
                stack.extend(self.made[a].ins)
        return True

    def _select(self, dtype, cases, otherwise):
        values = [(cond, self.value(v, clamped)) for cond, v, _, clamped in cases]
        expr, chosen = (otherwise, values) if otherwise is not None else (f"T({values[-1][1]})", values[:-1])
        for cond, value in reversed(chosen):
            expr = f"({cond} ? T({value}) : {expr})"
        return self._temp(dtype, expr)

    def _branches(self, dtype, cases, otherwise):
        name, ctype = self._declared(dtype)
        deepest, chain = self.deepest, []
        for k, (cond, v, idx, _) in enumerate(cases):  # the blocks first: what they hoist goes before the chain
            last = otherwise is None and k == len(cases) - 1
            head = "else " if k else ""
            self._open()
            self._emit(f"{{ typedef {ctype} T; {name} = {self.value(v, idx)}; }}")
            chain += [f"{head}{{" if last and k else f"{head}if ({cond}) {{"] + self._close() + ["}"]
        self.levels[-1] += chain
        self.deepest = deepest
        return name


# How a kernel pulls a member that is not elementwise at the index tuple idx of its value, keyed by
# the primitive: its index map in C (an elementwise member is its primitive's expression)
_PULLS = {
    reshape: lambda body, eq, idx: body.value(eq.ins[0], _reshape_index(eq.ins[0].shape, eq.out.shape, idx)),
    broadcast_to: lambda body, eq, idx: body.value(eq.ins[0], _broadcast_index(eq.ins[0], idx)),
    transpose: lambda body, eq, idx: body.value(eq.ins[0], _transpose_index(eq.params["perm"], idx)),
    getitem: lambda body, eq, idx: body.value(eq.ins[0], _getitem_index(
        eq.ins[0].shape, eq.params["idx"], idx, lambda i, at, n: body._position(Lit(i), at, n))),
    take_along: _Body._take_along,
    scatter: _Body._scatter,
    concatenate: lambda body, eq, idx: body._cases(
        eq.out.dtype, _concatenate_cases(eq.ins, eq.params["axis"], idx), None),
    eye: lambda body, eq, idx: body._temp(
        eq.out.dtype, f"({idx[1]} - {idx[0]} == {eq.params['k']}LL ? T(1.0) : T(0.0))"),
    reduce_sum: lambda body, eq, idx: body._sum(eq.out.dtype, eq.ins[0], eq.params["axes"], eq.params["keepdims"], idx),
}


def _decided(cases, otherwise):
    """(cases, otherwise) with the cases whose condition is known false (at an unrolled index) dropped,
    and the first known true made the last case holding where the others do not."""
    kept = []
    for k, case in enumerate(cases):
        if case[0] == "true":
            return kept + [case], None
        if case[0] != "false" or (otherwise is None and k == len(cases) - 1):
            kept.append(case)
    return kept, otherwise


def inner_axes(region):
    """How many trailing axes of its iteration space one loop element of a region unrolls
    (fusion.unrolled_axes: a per-sample Jacobian's rows and columns), as long as the unrolled body
    stays small enough to compile quickly."""
    return unrolled_axes(region.shape, min(_UNROLLED, _UNROLLED_LINES // max(1, len(region.equations))))


def _digits(j, dims):
    """The constant indices of element j of an array of shape dims."""
    return [f"{j // math.prod(dims[m + 1:]) % d}LL" for m, d in enumerate(dims)]


def _summed_index(x, axes, keepdims, idx, digits):
    """The index of x in sum(x, axes) at idx of the sum, the summed axes at `digits`."""
    chosen = dict(zip(axes, digits))
    rest = iter(i for k, i in enumerate(idx) if not (keepdims and k in chosen))
    return tuple(chosen[k] if k in chosen else next(rest) for k in range(len(x.shape)))


def _digit(shape, d, i="i"):
    """Index d of element i of the iteration space (i < its size: the first needs no modulo)."""
    stride = math.prod(shape[d + 1:])
    index = i if stride == 1 else f"{i} / {stride}LL"
    return index if d == 0 else f"{index} % {shape[d]}LL"


def _broadcast_index(a, idx):
    """The index of a, right-aligned against idx (size-1 axes read at 0)."""
    lead = len(idx) - len(a.shape)
    return tuple("0LL" if d == 1 else idx[lead + k] for k, d in enumerate(a.shape))


def _reshape_index(in_shape, out_shape, idx):
    """The index of a reshape's input, group by group of axes whose sizes multiply to the same
    (what a reshape merges or splits: (6, 10000) -> (6, 100, 100) keeps the 6 and splits the
    10000): a group's position is a sum of products of its output indices, divided only where
    the group has several input axes; unit axes read 0."""
    ins = [k for k, d in enumerate(in_shape) if d != 1]
    outs = [k for k, d in enumerate(out_shape) if d != 1]
    mapped = ["0LL"] * len(in_shape)
    i = o = 0
    while i < len(ins):
        group_in, group_out = [ins[i]], [outs[o]]
        size_in, size_out = in_shape[ins[i]], out_shape[outs[o]]
        i, o = i + 1, o + 1
        while size_in != size_out:  # both shapes have the same size: the products meet
            if size_in < size_out:
                group_in.append(ins[i])
                size_in *= in_shape[ins[i]]
                i += 1
            else:
                group_out.append(outs[o])
                size_out *= out_shape[outs[o]]
                o += 1
        flat = " + ".join(idx[b] if b == group_out[-1] else
                          f"{idx[b]} * {math.prod(out_shape[c] for c in group_out[group_out.index(b) + 1:])}LL"
                          for b in group_out)
        flat = flat if len(group_out) == 1 else f"({flat})"
        for m, a in enumerate(group_in):
            stride = math.prod(in_shape[c] for c in group_in[m + 1:])
            e = flat if stride == 1 else f"{flat} / {stride}LL"
            mapped[a] = f"({e} % {in_shape[a]}LL)" if m else e if stride == 1 else f"({e})"
    return tuple(mapped)


def _transpose_index(perm, idx):
    mapped = [None] * len(perm)
    for k, p in enumerate(perm):
        mapped[p] = idx[k]
    return tuple(mapped)


def _affine(e, start, step):
    """The index start + step * e."""
    if step == 1:
        return _shifted(e, start)
    return _shifted(f"({step}LL * {e})", start)


def _shifted(e, by):
    """The index e + by, constants folded ((d0 + -1LL) + 1LL is d0), so that one element read
    along two paths is one value of the kernel."""
    base, c = e, 0
    m = re.fullmatch(r"\((.+) \+ (-?\d+)LL\)", e)
    if m and _balanced(m.group(1)):
        base, c = m.group(1), int(m.group(2))
    if re.fullmatch(r"-?\d+LL", base):
        return f"{int(base[:-2]) + c + by}LL"
    c += by
    return base if c == 0 else f"({base} + {c}LL)"


def _balanced(text):
    depth = 0
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def _result_axes(items):
    """How x[items] lays out its result (NumPy's rules): for each item that takes an axis of x
    (not None), the result axis a slice maps to, or where the index arrays' broadcast axes (the
    block) stand for an int or an array among arrays (None for a lone int: no axis); the block's
    rank; and the result axis after those the items make. The block stands where the first of
    the ints and arrays is when they are adjacent, else first."""
    arrays = [i for i in items if not basic(i)]
    block = len(numpy.broadcast_shapes(*(a.shape for a in arrays))) if arrays else 0
    advanced = [k for k, i in enumerate(items) if i is not None and not isinstance(i, slice)]
    adjacent = not arrays or advanced[-1] - advanced[0] + 1 == len(advanced)
    at, o, axes = (None, 0, []) if adjacent else (0, block, [])
    for item in items:
        if item is None:  # a new unit axis of the result
            o += 1
        elif isinstance(item, slice):
            axes.append(o)
            o += 1
        elif arrays:
            if at is None:
                at, o = o, o + block
            axes.append(at)
        else:
            axes.append(None)
    return axes, block, o


def _getitem_index(in_shape, items, idx, position):
    """The index of x in x[items] at idx of the result, items being ints, slices, None and integer
    arrays: an array's entry at idx (`position(array, idx over the block, axis length)`) is the
    index along its axis."""
    axes, block, rest = _result_axes(items)
    mapped = []
    for item, n, o in zip([i for i in items if i is not None], in_shape, axes):
        if isinstance(item, slice):
            start, _, step = item.indices(n)
            mapped.append(_affine(idx[o], start, step))
        elif basic(item):
            mapped.append(f"{int(item) % n}LL")
        else:
            mapped.append(position(item, idx[o:o + block], n))
    return tuple(mapped) + tuple(idx[rest:])


def _scatter_case(out_shape, items, idx, v, inverse):
    """(condition, v, index of v, that index clamped into v): where zeros(out_shape)[items] = v
    puts v's element at idx. Where items hold arrays (no two of their elements landing on one
    position), `inverse(idx over the axes they index)` says which element of their block lands
    there (-1: none)."""
    axes, block, rest = _result_axes(items)
    taken = [i for i in items if i is not None]
    mapped = ["0LL"] * (rest + len(out_shape) - len(taken))  # v's unit axes (None items) read at 0
    mapped[rest:] = idx[len(taken):]
    clamped, conds, along = list(mapped), [], []
    for item, n, o, e in zip(taken, out_shape, axes, idx):
        if isinstance(item, slice):
            start, stop, step = item.indices(n)
            c, mapped[o], clamped[o] = _slice_inverse(e, start, step, len(range(start, stop, step)), n)
            conds += c
        elif basic(item):
            conds.append(_compare(e, "==", int(item) % n))
        else:
            along.append(e)
    if along:
        dims = numpy.broadcast_shapes(*(i.shape for i in items if not basic(i)))
        b = inverse(tuple(along))
        conds.append(_compare(b, ">=", 0))
        o = next(o for o, i in zip(axes, taken) if not basic(i))
        mapped[o:o + block] = _digits_of(b, dims)
        clamped[o:o + block] = _digits_of(_clamp(b, math.prod(dims) - 1), dims)
    return _conjunction(conds), v, tuple(mapped), tuple(clamped)


def _digits_of(e, dims):
    """The indices over an array of shape dims of its flat position e."""
    return [f"({e} / {math.prod(dims[m + 1:])}LL % {d}LL)" for m, d in enumerate(dims)]


def _slice_inverse(e, start, step, length, n):
    """(conditions, position in the slice, that position clamped) of index e of an axis of n, for
    the slice start::step of `length` (not 0)."""
    if step == 1:
        conds = ([_compare(e, ">=", start)] if start else []) + ([_compare(e, "<", start + length)]
                                                                 if start + length < n else [])
        m = _shifted(e, -start)
    elif _constant(e) is not None:  # an unrolled index: where it lands is known
        t = _constant(e) - start
        inside = t % step == 0 and 0 <= t // step < length
        conds, m = ["true" if inside else "false"], f"{t // step if inside else 0}LL"
    else:
        t = f"({e} - {start}LL)"
        sign = ">=" if step > 0 else "<="
        bound = f"{t} {'<' if step > 0 else '>'} {step * length}LL"
        conds, m = [f"{t} {sign} 0", f"{t} % {step}LL == 0", bound], f"({t} / {step}LL)"
    return conds, m, (_clamp(m, length - 1) if conds else m)


_COMPARE = {"<": int.__lt__, ">=": int.__ge__, "==": int.__eq__}


def _constant(e):
    """The value of an index expression that is an integer literal, else None."""
    return int(e[:-2]) if re.fullmatch(r"-?\d+LL", e) else None


def _compare(e, op, bound):
    """The condition `e op bound`, "true" or "false" where e is a constant (an unrolled index)."""
    c = _constant(e)
    return f"{e} {op} {bound}LL" if c is None else "true" if _COMPARE[op](c, bound) else "false"


def _conjunction(conds):
    if "false" in conds:
        return "false"
    return " && ".join(c for c in conds if c != "true") or "true"


def _clamp(e, hi):
    """e clamped into 0..hi, folded where e is a constant or hi is 0."""
    c = _constant(e)
    if hi == 0 or c is not None:
        return f"{min(max(c or 0, 0), hi)}LL"
    return f"gpuad_clamp({e}, {hi}LL)"


def _concatenate_cases(pieces, axis, idx):
    cases, start = [], 0
    for v in pieces:
        n = v.shape[axis]
        if n:
            at = _shifted(idx[axis], -start)
            clamped = _clamp(at, n - 1)
            cases.append((_compare(idx[axis], "<", start + n), v, idx[:axis] + (at,) + idx[axis + 1:],
                          idx[:axis] + (clamped,) + idx[axis + 1:]))
        start += n
    return cases


def _contiguous_strides(in_shape):
    return [math.prod(in_shape[m + 1:]) for m in range(len(in_shape))]


def _contiguous_offset(in_shape, idx, shape):
    """An input's offset at idx when it is C-contiguous: the element's own index i where it is read
    at its element (same elements as the iteration space, at the thread's indices), else idx
    times the input's C strides."""
    along = [k for k, d in enumerate(in_shape) if d != 1]
    if [in_shape[k] for k in along] == list(shape) and [idx[k] for k in along] == [f"d{d}" for d in range(len(shape))]:
        return "i"
    strides = _contiguous_strides(in_shape)
    return " + ".join(f"{idx[k]} * {strides[k]}LL" for k in along) or "0"


def _objects_entry(name, arrays, axes, outs, count):
    """A CPU entry `<name>_objects` taking the NumPy arrays themselves (PyObject pointers) and
    reading their data pointers and strides from NumPy's array struct (GPUAD_DATA and the other
    field offsets, measured at import by gpuad/compiler/host.py): one cheap argument per array
    instead of a pointer and strides converted in Python. It first checks that each argument is
    an ndarray of the kernel's dtype in this machine's byte order, aligned (so its strides are
    whole items), and returns 1 + the position of the first that is not, having read nothing;
    else it runs the contiguous build when every input is C-contiguous along the axes it is read
    on, and returns 0."""
    params, pointers, strides, checks, readable = [], [], [], [], []
    for j, (a, along) in enumerate(zip(arrays, axes)):
        c, size = ctype(a.dtype), numpy.dtype(a.dtype).itemsize
        params.append(f"const char* o{j}")
        readable.append(readable_test(f"o{j}", a.dtype))
        pointers.append(f"*(const {c}* const*)(o{j} + GPUAD_DATA)")
        dense = _contiguous_strides(a.shape)
        for d in along:
            stride = f"(*(const long long* const*)(o{j} + GPUAD_STRIDES))[{d}] / {size}"
            strides.append((len(pointers) - 1, stride))
            checks.append(f"{stride} == {dense[d]}LL")
    for k, v in enumerate(outs):
        params.append(f"const char* r{k}")
        readable.append(readable_test(f"r{k}", v.dtype))
        pointers.append(f"*({ctype(v.dtype)}* const*)(r{k} + GPUAD_DATA)")
    generic = []
    for p, text in enumerate(pointers):
        generic.append(text)
        generic += [stride for owner, stride in strides if owner == p]
    n = f"{count}LL"
    call_dense = f"{name}_c({', '.join(pointers + [n])})"
    call_strided = f"{name}({', '.join(generic + [n])})"
    test = " && ".join(checks) or "true"
    refuse = "".join(f"    if (!{r}) return {k + 1};\n" for k, r in enumerate(readable))
    return (f'extern "C" int {name}_objects({", ".join(params)}) {{\n{refuse}'
            f"    if ({test}) {call_dense}; else {call_strided};\n    return 0;\n}}\n")


def readable_test(arg, dtype):
    """C test that the object `arg` is an array the kernel can read as `dtype` (gpuad_readable in
    kernels/host_prelude.h); int64's two type numbers (long, long long) are both accepted."""
    numbers = sorted({numpy.dtype(c).num for c in numpy.typecodes["All"]
                      if c not in "OSUVMmc" and numpy.dtype(c) == numpy.dtype(dtype).newbyteorder("=")})
    return f"gpuad_readable({arg}, {numbers[0]}, {numbers[-1]})"


def host_sources(kernels, offsets, parts=1):
    """(prelude, bodies): the C++ source of the CPU build of several regions, the prelude every
    file starts with and the regions in `parts` bodies of about equal length (compiled side by
    side); offsets: NumPy's struct field offsets (host.OFFSETS). Regions that render alike (one
    name) are defined once; the first body defines `gpuad_init`, which the loader calls with
    numpy.ndarray's address and the thread pool's run function."""
    groups = balanced(list({k.name: k.text for k in kernels}.values()), parts)
    groups[0].insert(0, 'extern "C" void gpuad_init(const void* ndarray, void* pool) '
                        '{ gpuad_ndarray = ndarray; gpuad_pool = (decltype(gpuad_pool))pool; }\n')
    swapped = "'>'" if sys.byteorder == "little" else "'<'"
    head = "".join(f"#define GPUAD_{field} {at}\n" for field, at in offsets.items())
    head += f"#define GPUAD_SWAPPED {swapped}\n" + _read("host_prelude.h") + "\n"
    return head, ["\n".join(g) for g in groups]


def _literal(value, c="T"):
    """A number as C source of type c; inf and NaN as the quotients gpuad_math.cuh writes them (C has
    no literal); a complex one from its parts."""
    if isinstance(value, complex):
        return f"T(gpuad_complex<double>({_literal(value.real, 'double')}, {_literal(value.imag, 'double')}))"
    v = float(value)
    return f"{c}({v!r})" if math.isfinite(v) else f"({c}({math.copysign(1.0, v) if math.isinf(v) else 0.0}) / {c}(0))"


def _number(a):
    return isinstance(a, Lit) and isinstance(a.val, (bool, int, float))


def _typed_literal(value):
    """A real Python number as C source of its own type (bool, long long, double)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value}LL" if isinstance(value, int) else _literal(value, "double")


def _key(a):
    return ("v", a.id) if isinstance(a, Var) else ("c", id(a.val))

