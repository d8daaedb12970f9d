"""Index expressions: the integer arithmetic a data movement's index map is written in.

A move's index map (which element of its argument an output element is: gpuad/ops/shape.py,
gpuad/ops/indexing.py, gpuad/ops/creation.py) is one rule written with these expressions. The
fused kernels print it as C or CUDA (`c`, the index type a parameter: the 32-bit variant of a
kernel is the same expressions printed with int), and the coordinate users (the seed analysis,
the tests against each primitive's impl) evaluate it on NumPy integer arrays (`evaluate`).

An expression is a constant, a symbol (an index of known range, or an integer loaded at run time),
or +, *, floor division and modulo by a positive constant, a comparison, a conjunction, a choice
(`select`), a clamp into 0..hi. Each node carries bounds (lo, hi; None where unbounded), and
folds as it is built: x * 1, x + 0, constant arithmetic, constants gathered to the right of a
sum, (a * n + b) // n with 0 <= b < n, x % n where 0 <= x < n, comparisons the bounds decide...
so that one element read along two paths is one expression (nodes compare by structure) and
the kernels compute no index operation the shapes make needless.
"""
import math

import numpy as onp

# The placeholder codegen prints for the index type; Kernel.source puts long long or int there.
INDEX = "@index@"


class Ix:
    """An index expression node (build with the functions and operators of this module)."""
    __slots__ = ("op", "args", "lo", "hi", "_hash")

    def __init__(self, op, args, lo, hi):
        self.op, self.args, self.lo, self.hi = op, args, lo, hi
        self._hash = hash((op, args))

    def __hash__(self):
        return self._hash

    def __eq__(self, other):  # structure (comparisons of values are lt, eq, ... below)
        return self is other or (isinstance(other, Ix) and self._hash == other._hash and self.op == other.op
                                 and self.args == other.args)

    def __repr__(self):
        return c(self, "I")

    def __add__(self, other):
        return add(self, other)

    __radd__ = __add__

    def __sub__(self, other):
        return add(self, mul(other, -1))

    def __rsub__(self, other):
        return add(other, mul(self, -1))

    def __mul__(self, other):
        return mul(self, other)

    __rmul__ = __mul__

    def __floordiv__(self, n):
        return floordiv(self, n)

    def __mod__(self, n):
        return mod(self, n)

    @property
    def value(self):
        """The constant's value, or None where this is not a constant."""
        return self.args[0] if self.op == "const" else None


def const(v):
    v = bool(v) if isinstance(v, (bool, onp.bool_)) else int(v)
    return Ix("const", (v,), v, v)


TRUE, FALSE, ZERO = const(True), const(False), const(0)


def sym(name, lo=None, hi=None):
    """A symbol: an index known to lie in lo..hi (None: unbounded on that side)."""
    return Ix("sym", (name,), lo, hi)


def of(x):
    """x as an expression (an int is a constant)."""
    return x if isinstance(x, Ix) else const(x)


def _scaled(b, k):
    """The bound b times k (None: unbounded)."""
    return None if b is None else b * k


def _sum_bound(a, b):
    return None if a is None or b is None else a + b


def _split(x):
    """(base, constant) of x = base + constant (base None where x is a constant)."""
    if x.op == "const":
        return None, x.value
    if x.op == "add" and x.args[1].op == "const":
        return x.args[0], x.args[1].value
    return x, 0


def add(a, b):
    a, b = of(a), of(b)
    (ba, ca), (bb, cb) = _split(a), _split(b)
    base = ba if bb is None else bb if ba is None else Ix("add", (ba, bb), _sum_bound(ba.lo, bb.lo),
                                                           _sum_bound(ba.hi, bb.hi))
    k = ca + cb
    if base is None:
        return const(k)
    if k == 0:
        return base
    return Ix("add", (base, const(k)), _sum_bound(base.lo, k), _sum_bound(base.hi, k))


def mul(a, b):
    a, b = of(a), of(b)
    if a.op == "const":
        a, b = b, a
    if b.op != "const":
        bounds = [_times(a.lo, b.lo), _times(a.lo, b.hi), _times(a.hi, b.lo), _times(a.hi, b.hi)]
        known = None not in bounds
        return Ix("mul", (a, b), min(bounds) if known else None, max(bounds) if known else None)
    k = b.value
    if a.op == "const":
        return const(a.value * k)
    if k == 0:
        return ZERO
    if k == 1:
        return a
    if a.op == "add":  # constants distributed: (x + c) * k is x * k + c * k
        return add(mul(a.args[0], k), mul(a.args[1], k))
    if a.op == "mul" and a.args[1].op == "const":
        return mul(a.args[0], a.args[1].value * k)
    lo, hi = _scaled(a.lo, k), _scaled(a.hi, k)
    return Ix("mul", (a, b), *((lo, hi) if k > 0 else (hi, lo)))


def _times(a, b):
    return None if a is None or b is None else a * b


def _terms(x):
    """The terms of a sum (x itself where x is no sum)."""
    return _terms(x.args[0]) + _terms(x.args[1]) if x.op == "add" else [x]


def _multiple(t, n):
    """t / n where t is a term with a constant factor divisible by n, else None."""
    if t.op == "const":
        return const(t.value // n) if t.value % n == 0 else None
    if t.op == "mul" and t.args[1].op == "const" and t.args[1].value % n == 0:
        return mul(t.args[0], t.args[1].value // n)
    return None


def _parts(x, n):
    """(the terms of x that are multiples of n, divided by n; the rest, as one expression)."""
    whole, rest = [], ZERO
    for t in _terms(x):
        q = _multiple(t, n)
        if q is None:
            rest = add(rest, t)
        else:
            whole.append(q)
    return whole, rest


def _positive(n):
    n = int(n)
    if n <= 0:
        raise ValueError(f"index expressions divide by positive constants only, not {n}")
    return n


def floordiv(x, n):
    """x // n (floor division, as Python's) by a positive constant n."""
    x, n = of(x), _positive(n)
    if x.op == "const":
        return const(x.value // n)
    if n == 1:
        return x
    if x.lo is not None and x.hi is not None and x.lo // n == x.hi // n:
        return const(x.lo // n)
    whole, rest = _parts(x, n)
    if whole:  # (a * n + b) // n is a + b // n (and b // n is 0 where 0 <= b < n)
        out = floordiv(rest, n)
        for q in whole:
            out = add(out, q)
        return out
    if x.op == "floordiv":  # (y // a) // n is y // (a * n)
        return floordiv(x.args[0], x.args[1].value * n)
    return Ix("floordiv", (x, const(n)), None if x.lo is None else x.lo // n, None if x.hi is None else x.hi // n)


def mod(x, n):
    """x % n (Python's: in 0..n-1) by a positive constant n."""
    x, n = of(x), _positive(n)
    if x.op == "const":
        return const(x.value % n)
    if n == 1:
        return ZERO
    if x.lo is not None and x.hi is not None and 0 <= x.lo and x.hi < n:
        return x
    whole, rest = _parts(x, n)
    if whole:  # (a * n + b) % n is b % n
        return mod(rest, n)
    if x.op == "mod" and x.args[1].value % n == 0:
        return mod(x.args[0], n)
    return Ix("mod", (x, const(n)), 0, n - 1)


_FLIPPED = {"lt": "gt", "le": "ge", "eq": "eq", "ge": "le", "gt": "lt"}
_COMPARE = {"lt": int.__lt__, "le": int.__le__, "eq": int.__eq__, "ge": int.__ge__, "gt": int.__gt__}


def _decided(op, a, b):
    """True or False where the bounds of a and b decide `a op b`, else None."""
    lt = a.hi is not None and b.lo is not None and a.hi < b.lo
    gt = a.lo is not None and b.hi is not None and a.lo > b.hi
    le = a.hi is not None and b.lo is not None and a.hi <= b.lo
    ge = a.lo is not None and b.hi is not None and a.lo >= b.hi
    same = a.lo is not None and a.lo == a.hi == b.lo == b.hi
    known = {"lt": (lt, ge), "le": (le, gt), "ge": (ge, lt), "gt": (gt, le), "eq": (same, lt or gt)}[op]
    return True if known[0] else False if known[1] else None


def compare(op, a, b):
    """The condition `a op b` (op: lt, le, eq, ge, gt), folded where the bounds decide it."""
    a, b = of(a), of(b)
    if a.op == "add" and a.args[1].op == "const" and b.op == "const":  # x + c < k is x < k - c
        a, b = a.args[0], const(b.value - a.args[1].value)
    if a.op == "mul" and a.args[1].value == -1 and b.op == "const":  # -x < k is x > -k
        a, b, op = a.args[0], const(-b.value), _FLIPPED[op]
    if a.op == "const" and b.op == "const":
        return const(_COMPARE[op](a.value, b.value))
    decided = _decided(op, a, b)
    return const(decided) if decided is not None else Ix(op, (a, b), 0, 1)


def lt(a, b):
    return compare("lt", a, b)


def le(a, b):
    return compare("le", a, b)


def eq(a, b):
    return compare("eq", a, b)


def ge(a, b):
    return compare("ge", a, b)


def gt(a, b):
    return compare("gt", a, b)


def both(*conds):
    """The conjunction of conditions (True for none)."""
    kept = []
    for cond in map(of, conds):
        if cond == FALSE:
            return FALSE
        if cond != TRUE and cond not in kept:
            kept.append(cond)
    out = TRUE if not kept else kept[0]
    for cond in kept[1:]:
        out = Ix("and", (out, cond), 0, 1)
    return out


def select(cond, a, b):
    """a where cond holds, else b."""
    cond, a, b = of(cond), of(a), of(b)
    if cond.op == "const":
        return a if cond.value else b
    if a == b:
        return a
    lo = None if a.lo is None or b.lo is None else min(a.lo, b.lo)
    hi = None if a.hi is None or b.hi is None else max(a.hi, b.hi)
    return Ix("select", (cond, a, b), lo, hi)


def clamp(x, hi):
    """x clamped into 0..hi: the identity where x's bounds lie inside."""
    x = of(x)
    hi = int(hi)
    if x.lo is not None and x.hi is not None and 0 <= x.lo and x.hi <= hi:
        return x
    if x.op == "const" or hi == 0:
        return const(min(max(x.value or 0, 0), hi))
    return Ix("clamp", (x, const(hi)), 0, hi)


def wrapped(x, n):
    """A position along an axis of n: negative ones counted from the end, as NumPy reads them,
    then clamped into range (a kernel reads no element outside its arrays)."""
    x = of(x)
    return clamp(select(lt(x, 0), x + n, x), n - 1)


def unravel(flat, dims):
    """The indices over an array of shape dims of its flat position `flat`."""
    first = next((k for k, d in enumerate(dims) if d != 1), len(dims))  # its index needs no modulo
    return tuple(ZERO if d == 1 else floordiv(flat, math.prod(dims[k + 1:])) if k == first else
                 mod(floordiv(flat, math.prod(dims[k + 1:])), d) for k, d in enumerate(dims))


def ravel(idx, dims):
    """The flat position of index idx of an array of shape dims (C order)."""
    out = ZERO
    for k, i in enumerate(idx):
        out = add(out, mul(i, math.prod(dims[k + 1:])))
    return out


def symbols(x):
    """The names of the symbols x reads."""
    if x.op == "sym":
        return {x.args[0]}
    if x.op == "const":
        return set()
    return set().union(*map(symbols, x.args))


# ---------------------------------------------------------------- printing
_C_OPS = {"add": "+", "mul": "*", "floordiv": "/", "mod": "%", "lt": "<", "le": "<=", "eq": "==", "ge": ">=",
          "gt": ">", "and": "&&"}
_INT_MAX = 2 ** 31 - 1
_FLOOR = {"floordiv": "gpuad_floordiv", "mod": "gpuad_floormod"}  # C's / and % truncate: for a negative x


def c(x, index="long long", clamp_name="gpuad_clamp"):
    """x as a C/CUDA expression whose integers are of type `index` (long long, int, or a
    placeholder put in later); `clamp_name`: the function a clamp calls (the host's unclamped
    fast body names one that returns its index)."""
    op, args = x.op, x.args
    if op == "const":
        v = args[0]
        return ("true" if v else "false") if isinstance(v, bool) else str(v) if -_INT_MAX <= v <= _INT_MAX else \
            f"{v}LL"
    if op == "sym":
        return args[0]
    parts = [c(a, index, clamp_name) for a in args]
    if op == "select":
        return f"({parts[0]} ? {parts[1]} : {parts[2]})"
    if op == "clamp":
        return f"{clamp_name}<{index}>({parts[0]}, {parts[1]})"
    if op in ("floordiv", "mod") and (args[0].lo is None or args[0].lo < 0):
        return f"{_FLOOR[op]}<{index}>({parts[0]}, {parts[1]})"
    if op == "add" and args[1].op == "const" and args[1].value < 0:
        return f"({parts[0]} - {c(const(-args[1].value))})"
    if op == "add" and args[1].op == "mul" and args[1].args[1].value == -1:
        return f"({parts[0]} - {c(args[1].args[0], index, clamp_name)})"
    return f"({parts[0]} {_C_OPS[op]} {parts[1]})"


# ---------------------------------------------------------------- evaluation on arrays
_NUMPY = {"add": onp.add, "mul": onp.multiply, "floordiv": onp.floor_divide, "mod": onp.mod, "lt": onp.less,
          "le": onp.less_equal, "eq": onp.equal, "ge": onp.greater_equal, "gt": onp.greater, "and": onp.logical_and}


def evaluate(x, env):
    """x on NumPy integer arrays: env maps each symbol's name to its values (arrays broadcast)."""
    op, args = x.op, x.args
    if op == "const":
        return onp.asarray(args[0])
    if op == "sym":
        return onp.asarray(env[args[0]])
    values = [evaluate(a, env) for a in args]
    if op == "select":
        return onp.where(*values)
    if op == "clamp":
        return onp.clip(values[0], 0, values[1])
    return _NUMPY[op](*values)
