"""Source of a fusion region's kernel (gpuad/compiler/fusion.py), for CUDA and for the CPU.

A pure function of the region: the body is rendered from the rule table's expressions through
`Expr.cuda`, the same parse trees the NumPy path evaluates, so a fused kernel holds no second copy
of any math, and the members' index maps (slices, shifts, transposes, scatters, concatenations:
each move's own rule, core.Primitive.index) become index expressions (gpuad/compiler/index.py),
printed with the index type a placeholder: `Kernel.source` spells the 64-bit kernel or its 32-bit
variant (a gather's index is loaded from its index array). Shapes are baked
into the source; input strides and the element count are arguments, so one kernel serves every
layout of its inputs (views are read in place).
"""
import functools
import hashlib
import math
import string
import sys

import numpy

from ..kernels.builds import balanced
from ..kernels.source import C_TYPES as _ELEMENT_TYPES
from ..kernels.source import _read
from ..ops.creation import eye
from ..ops.shape import broadcast_index, reduce_sum
from . import coalesce, registers, warps
from . import index as ix
from . import merge as merging
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
    the region inputs passed as pointers (Vars, or constant arrays), each with the axes it passes
    a stride argument for (its axes longer than 1; of a run of axes read as one, the last).
    `dense` is the loop body for C-contiguous inputs (over `i`, one thread an element, reading
    in<j> and writing out<k>), `reads` the (input position, index expressions) of each load in
    it, `inner` how many trailing axes one element of the loop unrolls: a whole loop rendered as
    one kernel (gpuad/compiler/loop_kernel.py) calls the body and checks from the reads which
    elements each element reads. `shape` is the iteration space the loop runs over, its
    neighbouring axes merged (merge.py) where every value treats them alike; `checks` the stride
    conditions (input position, p, q, n: s_p == s_q * n) its inputs of a layout the plan does not
    know must meet for it, else `unmerged()` renders the kernel that reads every layout (None
    where there is nothing to check)."""

    def __init__(self, name, text, arrays, axes, outs, shape, size, extent, lanes=1, dense="", reads=(), inner=0,
                 checks=(), unmerged=None):
        self.name, self.arrays, self.axes, self.outs, self.shape = name, arrays, axes, outs, shape
        self._text, self.text = text, _indexed(text)  # the 64-bit kernel
        self.size = size  # elements of the loop (each computes the unrolled inner axes' elements)
        self.extent = extent  # elements of its largest value (the bound of its flat indices)
        self.lanes = lanes  # threads per loop element (a warp where its sums are split: warps.py)
        self.dense, self.reads, self.inner = dense, list(reads), inner  # what a loop kernel reads (loop_kernel.py)
        self.checks, self.unmerged = list(checks), unmerged

    def source(self, index):
        """(text, name) of the kernel with indices of C type `index` other than long long (int:
        the 32-bit variant, named with _i32: kernels/index32.py)."""
        name = f"{self.name}_i32"
        return _indexed(self._text, index).replace(f" {self.name}(", f" {name}(", 1), name


def render(region, target, merge=True):
    """The Kernel of a region for target "cuda" or "host", over its iteration space with the
    neighbouring axes every value treats alike merged (merge.py; merge=False: as it is). On the
    host the strided build keeps the axes apart (it serves every layout) and the dense `_c` build,
    for C-contiguous inputs, loops over the merged shape; a CUDA kernel loops over the merged
    shape where its inputs' strides allow (Kernel.checks), else its `unmerged` variant runs."""
    groups, one = merged_groups(region, target, merge)
    apart = [(k,) for k in range(len(region.shape))]
    main = _Variant(region, target, groups, one)
    arrays, name = main.arrays, main.name
    if target == "host":  # the strided build keeps the axes apart; the dense one merges them
        strided = main if groups == apart else _Variant(region, target, apart, one)
        name = strided.name if groups == apart else f"gpuad_region_{_digest(strided.signature + main.signature)}"
        text = strided.fill(name) + main.fill(f"{name}_c", dense=True)
        text += _objects_entry(name, arrays, strided.axes, region.outs, strided.size, main.size)
        main.axes, main.checks = strided.axes, []
    else:
        text = main.fill(name)
    unmerged = None if not main.checks else lambda: render(region, target, merge=False)
    extent = max(math.prod(v.shape) for v in [*arrays, *(eq.out for eq in region.equations)])
    return Kernel(name, text, arrays, main.axes, list(region.outs), main.shape, main.size, extent, main.lanes,
                  main.dense, main.loads, main.inner, main.checks, unmerged)


def merged_groups(region, target, merge=True):
    """(the region's axes in the groups its kernel merges (merge.groups; each apart where merge is
    False), the registers one element's values take in a CUDA kernel that unrolls (None where
    not needed)), from the body pulled at symbolic digits."""
    shape, inner = region.shape, inner_axes(region.shape, len(region.equations))
    inner_of = functools.partial(inner_axes, members=len(region.equations))
    merge = merge and len(shape) > 1 and merging.worth_trying(shape, inner_of)
    if not merge and not (target == "cuda" and inner):
        return [(k,) for k in range(len(shape))], None
    pulled = _pulled(region, None, 0)
    one = registers.words(pulled.printed(_Layout(lambda j, idx: "0")))
    if not merge:
        return [(k,) for k in range(len(shape))], one
    probe = []  # the loads as printed, marked, so that merge.groups sees which digits the rest names
    text = pulled.printed(_Layout(lambda j, idx: probe.append((j, idx)) or f"@{len(probe) - 1}@"))
    return merging.groups(shape, text, probe, region.ins, inner_of), one


def _digest(signature):
    return hashlib.sha1(signature.encode()).hexdigest()[:16]


class _Variant:
    """A region's kernel over its iteration space with its axes in `groups` (merge.py), the
    unrolled inner axes and the host's rows loop decided over the merged shape: its parameters
    (`axes`: the input axes each input passes a stride for), its body for strided inputs and for
    C-contiguous ones (`dense`), the stride conditions the strided body needs (`checks`: (input
    position, p, q, n) for s_p == s_q * n, for inputs whose layout the plan does not know)."""

    def __init__(self, region, target, groups, one):
        self.region, self.arrays = region, list(region.ins)
        shape = self.shape = merging.merged_shape(region.shape, groups)
        inner = inner_axes(shape, len(region.equations))
        if target == "cuda" and inner:  # fewer axes unrolled where the copies' values would not fit in registers
            while inner and math.prod(shape[len(shape) - inner:]) * one > registers.BUDGET:
                inner -= 1
        self.inner, self.cols = inner, _row_length(shape, inner) if target == "host" else None
        pulled = _pulled(region, self.cols, inner, groups)  # pulled once, printed for each layout of the inputs
        loads = self.loads = pulled.loads
        loop = len(shape) - inner
        self.size = math.prod(shape[:loop])
        runs = merging.runs(region.shape, groups, loop)
        strided = {(j, idx): merging.terms(idx, self.arrays[j].shape, runs, self._allowed(j)) for j, idx in loads}
        dense = {(j, idx): merging.terms(idx, self.arrays[j].shape, runs, lambda axes: True)[0] for j, idx in loads}
        self.axes, self.checks = self._strides(strided.items())
        self.params = []
        for j, (a, along) in enumerate(zip(self.arrays, self.axes)):
            self.params.append(f"const {ctype(a.dtype)}* __restrict__ in{j}")
            self.params += [f"const {ix.INDEX} s{j}_{k}" for k in along]
        self.params += [f"{ctype(v.dtype)}* __restrict__ out{k}" for k, v in enumerate(region.outs)]

        def offset(j, idx):
            return _c(_strided_offset(j, strided[j, idx][0]))
        walk, lanes = None, 1
        if target == "cuda":  # threads walk the loop as the largest operand lies in memory; long sums by warps
            outer = shape[:loop]
            walk = coalesce.walk(outer, coalesce.fastest(loads, self.arrays, outer, math.prod(shape)))
            lanes = warps.lanes(self.size) if pulled.split else 1
        self.body, self.lanes = pulled.printed(_Layout(offset, walk, lanes)), lanes
        # C-contiguous inputs: unit strides the compiler can vectorise
        self.dense_body = pulled.printed(_Layout(
            lambda j, idx: _c(_contiguous_offset(self.arrays[j].shape, dense[j, idx], shape, inner))))
        self.signature = f"{target}\n{region.shape}\n{shape}\n{[tuple(a.shape) for a in self.arrays]}\n" \
                         f"{', '.join(self.params)}\n{self.body}"
        self.name = f"gpuad_region_{_digest(self.signature)}"  # one name, one text
        # host: the prelude comes once per library; a loop of rows where the last loop axis is long
        self.template = _read("region.cu" if target == "cuda" else
                              "region_host.cpp" if self.cols is None else "region_host_rows.cpp")
        self.interior = _interior(pulled.clamps, f"d{loop - 1}", self.cols or self.size) \
            if self.cols or loop == 1 else None
        self.dense = _indexed(self.dense_body) if self.cols is None else ""  # what a loop kernel runs

    def _allowed(self, j):
        """Whether input j may be read along a run of axes as one: a value the program made in a
        region (C-contiguous), a constant whose strides allow it, anything else at run time (checks)."""
        a = self.arrays[j]
        if isinstance(a, Var):
            return lambda axes: True
        return lambda axes: merging.holds(a.val.strides, merging.checks(axes, a.shape))

    def _strides(self, strided):
        """(the axes each input passes a stride for, the stride conditions on inputs of unknown
        layout), from each load's ((j, idx), (terms, runs))."""
        used, conditions = [set() for _ in self.arrays], []
        for (j, _), (terms, runs) in strided:
            used[j].update(p for _, p in terms)
            if isinstance(self.arrays[j], Var) and self.arrays[j] not in self.region.contiguous:
                conditions += [(j, *c) for axes in runs for c in merging.checks(axes, self.arrays[j].shape)]
        axes = [[k for k, d in enumerate(a.shape) if d != 1 and (k in used[j] or not used[j])]
                for j, a in enumerate(self.arrays)]
        return axes, list(dict.fromkeys(conditions))

    def fill(self, name, dense=False):
        """The text of this variant's function `name`: strided, or for C-contiguous inputs (dense)."""
        if not dense:
            return _fill(self.template, name, self.params, self.body, self.interior, self.cols, self.lanes)
        params = [p for p in self.params if not p.startswith(f"const {ix.INDEX} s")]
        return _fill(self.template, name, params, self.dense_body, self.interior, self.cols)


def _strided_offset(j, terms):
    """Input j's offset: each term's index times the stride of its axis (a parameter)."""
    offset = ix.ZERO
    for i, k in terms:
        offset = offset + i * ix.sym(f"s{j}_{k}")
    return offset


_CLAMP = "@clamp@"  # where the body clamps an index: gpuad_clamp, or gpuad_unclamped in the host's fast body


def _c(x):
    """An index expression as the kernels print it: the index type and the clamp put in later."""
    return ix.c(x, ix.INDEX, _CLAMP)


def _indexed(text, index="long long"):
    """A kernel's text with its index type and its clamps spelled."""
    return text.replace(ix.INDEX, index).replace(_CLAMP, "gpuad_clamp")


def _fill(template, name, params, body, interior, cols=None, lanes=1):
    fast, lo, hi = ("", 0, 0) if interior is None else (body.replace(_CLAMP, "gpuad_unclamped"), *interior)
    return string.Template(template).substitute(name=name, params=", ".join(params), body=body, args=_names(params),
                                                fast_body=fast, lo=lo, hi=hi, cols=cols, lanes=lanes)


def _row_length(shape, inner):
    """The last loop axis's length where the host loop runs by rows (several loop axes, the last
    long enough to vectorise along), else None."""
    loop = shape[:len(shape) - inner]
    return loop[-1] if len(loop) >= 2 and loop[-1] >= _ROWS_FROM else None


def _interior(clamps, digit, length):
    """(lo, hi): where every index the body clamps is `digit` + c (the index along the loop's only
    or last axis, of `length` elements), the elements with lo <= digit < hi read in range
    unclamped; None where that does not apply (no clamps, or a clamp of another form)."""
    if not clamps:
        return None
    lo, hi = 0, length
    for x in clamps:
        e, top = x.args[0], x.args[1].value
        base, c = (e.args[0], e.args[1].value) if e.op == "add" and e.args[1].op == "const" else (e, 0)
        if base != ix.sym(digit):
            return None
        lo, hi = max(lo, -c), min(hi, top - c + 1)
    return lo, max(lo, hi)


def _pulled(region, cols, inner, groups=None):
    """The _Body of the region's loop, pulled (by rows of `cols` elements where given, over the
    axes merged in `groups`: see _Body.pull). Values are pulled recursively, a few frames per
    member along the longest chain: the recursion limit is raised for that while it runs."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 8 * len(region.equations) + 1000))
    try:
        body = _Body(region)
        body.pull(cols, inner, groups)
        return body
    finally:
        sys.setrecursionlimit(limit)


def _names(params):
    return ", ".join(p.split()[-1] for p in params)


class _Layout:
    """How a pulled body is printed: `offset(j, idx)`, the C offset of input j at index idx;
    `walk`, where the threads walk the loop other than in C order, (digits, at): each loop digit
    as an expression of i, and the element's C-order position, where the outputs are written
    (coalesce.walk), else None; `lanes`, the threads over which each long top-level sum's terms
    are split (warps.py)."""
    __slots__ = ("offset", "walk", "lanes")

    def __init__(self, offset, walk=None, lanes=1):
        self.offset, self.walk, self.lanes = offset, walk, lanes


class _Line:
    """A line of a body whose text depends on the layout it is printed for: text(layout), or
    None for no line there."""
    __slots__ = ("text", "indent")

    def __init__(self, text, indent=""):
        self.text, self.indent = text, indent

    def indented(self):
        return _Line(self.text, "    " + self.indent)

    def printed(self, layout):
        text = self.text(layout)
        return None if text is None else self.indent + text


class _Body:
    """The loop body of a region's kernel for element i: every value a root needs is pulled at
    the index tuple the root's element reads it at (one C expression per axis), through the
    members' index maps, and computed once per index tuple (`memo`). Values under a condition
    (a scatter's positions, a concatenation's pieces) are computed at clamped indices and
    selected where they are cheap, else inside their `if` block only; a sum's terms inside its
    loop. A value is declared in the outermost block where it is valid (`levels`: the lines of
    the blocks open, outermost first): one read at the element's own digits or constant indices,
    from values valid there, goes before the blocks, so every block reads it, computed once; what
    a block computes at its own indices is forgotten after it. The body is pulled once, then
    printed for each layout (`printed`): what a layout decides (where the inputs are read, the
    order of the digits, the lanes of a sum) is held in _Lines until then."""

    def __init__(self, region):
        self.region = region
        self.made = {eq.out: eq for eq in region.equations}
        self.inputs = {_key(a): j for j, a in enumerate(region.ins)}
        self.levels, self.memo, self.temps, self.count = [[]], {}, 0, 0
        self.keys = [[]]  # the memo keys of each open level, forgotten when it closes
        self.deepest = 0  # the innermost level the value being computed needs
        self.bounds = {}  # id(constant positions) -> (least, greatest)
        self.clamps = set()  # the clamp nodes of the indices printed
        self.loads = []  # (input position, index) of each load, in order
        self.split = False  # whether a long sum is at the top level (warps.py)

    def pull(self, cols, inner, groups=None):
        """Element i of the loop owns the elements of the iteration space whose leading indices
        are i's digits over the outer axes; the inner axes are unrolled, their indices constants
        (conditions on them fold away, and what does not depend on them is computed once). By
        rows (cols: the last outer axis's length), the digits come from the row r and column j.
        The loop runs over the region's shape with its axes merged in `groups` (merge.py; default
        apart): a value is pulled at the merged digits' parts."""
        groups = groups or [(k,) for k in range(len(self.region.shape))]
        shape = merging.merged_shape(self.region.shape, groups)
        outer, per = shape[:len(shape) - inner], math.prod(shape[len(shape) - inner:])
        size = math.prod(outer)
        self.order = ix.unravel(ix.sym("i", 0, size - 1), outer) if cols is None else \
            ix.unravel(ix.sym("r", 0, size // cols - 1), outer[:-1]) + (ix.sym("j", 0, cols - 1),)  # C's
        self.digits = {ix.sym(f"d{d}") for d in range(len(outer))}
        for j in range(per):
            merged = tuple(ix.sym(f"d{d}", 0, n - 1) for d, n in enumerate(outer)) + \
                ix.unravel(ix.const(j), shape[len(outer):])
            index = merging.digits(self.region.shape, groups, merged)
            for k, v in enumerate(self.region.outs):
                value = self.value(v, (ix.ZERO,) * (len(v.shape) - len(index)) + index)  # a literal is in T
                self.levels[0].append(_written(k, v.dtype, value, per, j))

    def printed(self, layout):
        """The body's C source for a layout: the loop digits first, then the lines."""
        digits, at = layout.walk or (self.order, None)
        lines = [f"const {ix.INDEX} d{d} = {_c(digit)};" for d, digit in enumerate(digits)]
        if at is not None:
            lines.append(f"const {ix.INDEX} at = {_c(at)};")
        lines += [line if line.__class__ is str else line.printed(layout) for line in self.levels[0]]
        return "\n        ".join(lines if not self.split else [line for line in lines if line is not None])

    def value(self, a, idx):
        """A C expression for a at the index tuple idx."""
        if isinstance(a, Lit) and isinstance(a.val, (bool, int, float, complex)):
            return _literal(a.val)
        key = _key(a)
        if key[1] in self.region.literals:
            value = self.region.literals[key[1]]
            return f"{value}LL" if a.dtype.kind == "i" else _literal(value)  # int: a gather's position
        idx = tuple(ix.ZERO if d == 1 else i for d, i in zip(a.shape, idx))
        entry = self.memo.get((key, idx))
        if entry is None:
            outer = self.deepest
            self.deepest = 0 if all(i.op == "const" or i in self.digits for i in idx) else len(self.levels) - 1
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
        return ["    " + line if isinstance(line, str) else line.indented() for line in self.levels.pop()]

    def _compute(self, a, idx):
        if _key(a) in self.inputs:
            j = self.inputs[_key(a)]
            self._clamped(idx)
            self.loads.append((j, idx))
            return self._temp(a.dtype, load=(j, idx))
        eq = self.made[a]
        if eq.prim.index is not None:  # a move: its index map
            cases = eq.prim.index(idx, [b.shape for b in eq.ins], lambda p, at: self._read(eq, p, at), **eq.params)
            return self._cases(eq.out.dtype, [(cond, eq.ins[k], at) for cond, k, at in cases], "T(0.0)")
        pull = _PULLS.get(eq.prim)
        if pull is not None:
            return pull(self, eq, idx)
        ops = [_typed_literal(b.val) if a.dtype.kind == "b" and _number(b) else  # a comparison's number in its
               self.value(b, broadcast_index(b.shape, idx)) for b in eq.ins]   # own type, not the bool result's T
        return self._temp(a.dtype, eq.prim.expression(ops, a.dtype, [self._literal_number(b) for b in eq.ins]))

    def _literal_number(self, a):
        """The real number an operand printed as a literal holds (`value`), else None."""
        if _number(a):
            return a.val
        return self.region.literals.get(_key(a)[1]) if isinstance(a, Lit) else None

    def _read(self, eq, p, at):
        """The index expression of an integer an index rule reads (core.Primitive.index): the
        argument p of eq, a constant array, or (None) the element of a scatter's index arrays
        landing at `at` (the region's inverse of them), each broadcast against `at`."""
        lo = hi = None
        if p is None:
            p = self.region.inverses[eq.out]
            lo, hi = -1, math.prod(p.shape) - 1
        elif isinstance(p, int):
            p = eq.ins[p]
        else:
            p = Lit(p)
        if isinstance(p, Lit) and isinstance(p.val, (bool, int)):
            return ix.const(p.val)
        if _key(p)[1] in self.region.literals:
            return ix.const(self.region.literals[_key(p)[1]])
        if isinstance(p, Lit):  # constant positions: their bounds (no wrap where none is negative)
            if id(p.val) not in self.bounds:
                self.bounds[id(p.val)] = (int(p.val.min()), int(p.val.max())) if p.val.size else (0, 0)
            lo, hi = self.bounds[id(p.val)]
        return ix.sym(f"(({ix.INDEX}){self.value(p, broadcast_index(p.shape, at))})", lo, hi)

    def _clamped(self, idx):
        """Note the clamps of an index printed in the body."""
        stack = list(idx)
        while stack:
            x = stack.pop()
            if x.op == "clamp":
                self.clamps.add(x)
            if x.op not in ("const", "sym"):
                stack.extend(x.args)

    def _cond(self, x):
        self._clamped([x])
        return _c(x)

    def _temp(self, dtype, expr=None, load=None):
        """A new variable holding expr, or (load: (j, idx)) input j at idx, read where the layout
        the body is printed for has it; declared in the level of the value being computed."""
        name, c = f"t{self.temps}", ctype(dtype)
        self.temps += 1
        head = f"{c} {name}; {{ typedef {c} T; {name} = "
        if load is None:
            self._emit(f"{head}{expr}; }}", self.deepest)
        else:
            j, idx = load
            self._emit(_Line(lambda layout: f"{head}in{j}[{layout.offset(j, idx)}]; }}"), self.deepest)
        return name

    def _declared(self, dtype):
        """A new variable, zero, declared in the innermost open block (a sum's or a choice's
        result, assigned inside blocks of its own)."""
        name, c = f"t{self.temps}", ctype(dtype)
        self.temps += 1
        self.deepest = len(self.levels) - 1
        self._emit(f"{c} {name}{{}};")  # zero (a functional cast would not parse for long long)
        return name, c

    def _sum(self, dtype, x, axes, keepdims, idx):
        """The sum of x over axes at idx of the result: unrolled when short, else a loop whose
        body's values are forgotten after it."""
        axes = sorted(a % len(x.shape) for a in axes)
        dims = [x.shape[a] for a in axes]
        n = math.prod(dims)
        if n <= _UNROLLED:
            terms = [self.value(x, _summed_index(x, axes, keepdims, idx, ix.unravel(ix.const(j), dims)))
                     for j in range(n)]
            return self._temp(dtype, " + ".join(terms))
        name, ctype = self._declared(dtype)
        r, deepest = f"r{name[1:]}", self.deepest
        self._open()
        term = self.value(x, _summed_index(x, axes, keepdims, idx, ix.unravel(ix.sym(r, 0, n - 1), dims)))
        self._emit(f"{{ typedef {ctype} T; {name} += {term}; }}")
        body, bound = self._close(), _c(ix.const(n))
        if warps.split(n, len(self.levels) == 1):  # over the layout's lanes, their partial sums added after
            self.split = True
            self.levels[-1] += [_Line(lambda layout: warps.head(r, bound, layout.lanes)), *body, "}",
                                _Line(lambda layout: warps.total(name, layout.lanes))]
        else:
            self.levels[-1] += [warps.head(r, bound), *body, "}"]
        self.deepest = deepest
        return name

    def _cases(self, dtype, cases, otherwise):
        """A value chosen by conditions: [(condition, value, its index)], first match, else
        `otherwise` (None: the last case holds where the others do not). Cheap cases are all
        computed, at their indices clamped into range, and one selected: no branch, so the loop
        vectorises; costly ones are computed in `if` blocks, only where they hold."""
        cases, otherwise = _decided(cases, otherwise)
        if not cases:
            return self._temp(dtype, otherwise)
        if otherwise is None and len(cases) == 1:
            return self.value(cases[0][1], cases[0][2])
        if self._few([v for _, v, _ in cases]):
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
        values = [(self._cond(cond), self.value(v, tuple(ix.clamp(i, d - 1) for i, d in zip(idx, v.shape))))
                  for cond, v, idx in cases]
        expr, chosen = (otherwise, values) if otherwise is not None else (f"T({values[-1][1]})", values[:-1])
        for cond, value in reversed(chosen):
            expr = f"({cond} ? T({value}) : {expr})"
        return self._temp(dtype, expr)

    def _branches(self, dtype, cases, otherwise):
        name, ctype = self._declared(dtype)
        deepest, chain = self.deepest, []
        for k, (cond, v, idx) in enumerate(cases):  # the blocks first: what they hoist goes before the chain
            last = otherwise is None and k == len(cases) - 1
            head = "else " if k else ""
            self._open()
            self._emit(f"{{ typedef {ctype} T; {name} = {self.value(v, idx)}; }}")
            chain += [f"{head}{{" if last and k else f"{head}if ({self._cond(cond)}) {{"] + self._close() + ["}"]
        self.levels[-1] += chain
        self.deepest = deepest
        return name


# How a kernel pulls a member that is neither elementwise nor a move (whose index map is its own
# rule, core.Primitive.index) at the index tuple idx of its value, keyed by the primitive
_PULLS = {
    eye: lambda body, eq, idx: body._cases(
        eq.out.dtype, [(ix.eq(idx[1] - idx[0], eq.params["k"]), Lit(1.0), ())], "T(0.0)"),
    reduce_sum: lambda body, eq, idx: body._sum(eq.out.dtype, eq.ins[0], eq.params["axes"], eq.params["keepdims"], idx),
}


def _written(k, dtype, value, per, j):
    """The line writing value to output k at element j of the loop element's `per` unrolled ones,
    the loop element at its C-order position: i, or `at` where the threads walk it otherwise."""
    c, at = ctype(dtype), _c(ix.sym("i") * per + j)
    return _Line(lambda layout: f"{{ typedef {c} T; out{k}[{_c(ix.sym('at') * per + j) if layout.walk else at}] = "
                                f"{value}; }}")


def _decided(cases, otherwise):
    """(cases, otherwise) with the cases whose condition is known false (at an unrolled index) dropped,
    and the first known true made the last case holding where the others do not."""
    kept = []
    for k, case in enumerate(cases):
        if case[0] == ix.TRUE:
            return kept + [case], None
        if case[0] != ix.FALSE or (otherwise is None and k == len(cases) - 1):
            kept.append(case)
    return kept, otherwise


def inner_axes(shape, members):
    """How many trailing axes of an iteration space one loop element of a region of `members`
    equations unrolls (fusion.unrolled_axes: a per-sample Jacobian's rows and columns), as long as
    the unrolled body stays small enough to compile quickly."""
    return unrolled_axes(shape, min(_UNROLLED, _UNROLLED_LINES // max(1, members)))


def _summed_index(x, axes, keepdims, idx, digits):
    """The index of x in sum(x, axes) at idx of the sum, the summed axes at `digits`."""
    chosen = dict(zip(axes, digits))
    rest = iter(i for k, i in enumerate(idx) if not (keepdims and k in chosen))
    return tuple(chosen[k] if k in chosen else next(rest) for k in range(len(x.shape)))


def _contiguous_strides(in_shape):
    return [math.prod(in_shape[m + 1:]) for m in range(len(in_shape))]


def _contiguous_offset(in_shape, terms, shape, inner):
    """A C-contiguous input's offset (its terms: merge.terms) times its C strides: the element's
    own index i where it is read at its element (no unrolled axes, read at the loop's digits)."""
    strides = _contiguous_strides(in_shape)
    offset = ix.ZERO
    for i, k in terms:
        offset = offset + i * strides[k]
    if not inner and offset == ix.ravel([ix.sym(f"d{d}") for d in range(len(shape))], shape):
        return ix.sym("i")
    return offset


def _objects_entry(name, arrays, axes, outs, count, dense_count):
    """A CPU entry `<name>_objects` taking the NumPy arrays themselves (PyObject pointers) and
    reading their data pointers and strides from NumPy's array struct (GPUAD_DATA and the other
    field offsets, measured at import by gpuad/compiler/host.py): one cheap argument per array
    instead of a pointer and strides converted in Python. It first checks that each argument is
    an ndarray of the kernel's dtype in this machine's byte order, aligned (so its strides are
    whole items), and returns 1 + the position of the first that is not, having read nothing;
    else it runs the contiguous build (of `dense_count` loop elements: its axes may be merged) when
    every input is C-contiguous along the axes it is read on, and returns 0."""
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
    call_dense = f"{name}_c({', '.join(pointers + [f'{dense_count}LL'])})"
    call_strided = f"{name}({', '.join(generic + [f'{count}LL'])})"
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

