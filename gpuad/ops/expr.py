"""The small expression language of the elementwise table.

A rule such as ``1 + y*y`` is parsed once with Python's `ast` and turned into
(a) a Python function over any namespace of array functions (NumPy, CuPy, or
gpuad's own differentiable ops, so rules nest to any order), and (b) a CUDA C
expression for the generated kernels. Both come from the same parse tree, so the
kernels and the reference evaluation cannot drift apart.
"""
import ast

# Function names in the table, mapped to their CUDA spelling. Names starting with
# gpuad_ are defined in kernels/gpuad_math.cuh (their complex forms, and the parts real, imag and
# conj, in kernels/gpuad_complex.cuh).
CUDA_NAMES = {
    "sin": "gpuad_sin", "cos": "gpuad_cos", "tan": "gpuad_tan", "arcsin": "asin", "arccos": "acos", "arctan": "atan",
    "sinh": "sinh", "cosh": "cosh", "tanh": "tanh", "arcsinh": "asinh", "arccosh": "acosh",
    "arctanh": "atanh", "exp": "exp", "exp2": "exp2", "expm1": "expm1", "log": "log", "log2": "log2",
    "log10": "log10", "log1p": "log1p", "sqrt": "sqrt", "cbrt": "cbrt", "abs": "fabs",
    "floor": "floor", "ceil": "ceil", "round": "rint", "arctan2": "atan2",
    "hypot": "hypot", "sign": "gpuad_sign", "maximum": "gpuad_maximum", "minimum": "gpuad_minimum",
    "remainder": "gpuad_remainder", "erf": "gpuad_erf", "erfc": "erfc", "gammaln": "lgamma",
    "erfinv": "gpuad_erfinv", "erfcinv": "gpuad_erfcinv", "digamma": "gpuad_digamma", "polygamma": "gpuad_polygamma",
    "i0": "gpuad_i0", "i1": "gpuad_i1", "i0e": "gpuad_i0e", "i1e": "gpuad_i1e",
    "j0": "gpuad_j0", "j1": "gpuad_j1", "y0": "gpuad_y0", "y1": "gpuad_y1", "jn": "gpuad_jn", "yn": "gpuad_yn",
    "real": "gpuad_real", "imag": "gpuad_imag", "conj": "gpuad_conj",
}
RULE_FILE = "<rule "  # how a rule's compiled code names its file (<rule 1 + y*y>): warnings from it are told apart
_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_COMPARE = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
# The table's comparisons, spelled as C's operators (a bool of any operands)
_INFIX = {"equal": "==", "not_equal": "!=", "less": "<", "less_equal": "<=", "greater": ">", "greater_equal": ">="}
# and its logical operations on the operands' truth values: & and | of bools, not && and || (whose
# short circuit is a branch: a loop holding one does not vectorise)
_LOGICAL = {"logical_and": "&", "logical_or": "|", "logical_xor": "!="}


class Expr:
    """One parsed rule expression over named variables."""
    __slots__ = ("text", "tree", "const")

    def __init__(self, text):
        self.text = text
        self.tree = ast.parse(text, mode="eval").body
        self.const = _constant(self.tree)

    def function(self, args, namespace):
        """A Python function of `args` evaluating this expression with `namespace`'s functions."""
        src = f"lambda {', '.join(args)}: {self.text}"
        return eval(compile(src, f"{RULE_FILE}{self.text}>", "eval"), dict(namespace))

    def cuda(self, rename=None, numbers=None):
        """CUDA C source of this expression; `rename` maps variable names to C expressions,
        `numbers` those known to be a literal number to it (a power then lowers by it)."""
        return _cuda(self.tree, rename or {}, numbers or {})


def _constant(node, numbers=None):
    """The number a constant expression stands for (``1``, ``-1``, a variable `numbers` gives), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.Name):
        return (numbers or {}).get(node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _constant(node.operand, numbers)
        return None if inner is None else -inner
    return None


# Powers by a literal exponent, as XLA lowers them: multiplies, sqrt and a division instead of pow
# (kernels/gpuad_math.cuh), each within 1 ulp of NumPy's power, its zeros, infinities and NaNs too.
# Not -2 or 4 and up: their extra rounding lands 2 ulps from pow in about 1% of arguments.
_POWERS = {2: "gpuad_pow2", 3: "gpuad_pow3", -1: "gpuad_pow_1", 0.5: "gpuad_pow_half", -0.5: "gpuad_pow_minus_half"}


def _power(base, exponent, rename, numbers):
    """a ** b in C: by `_POWERS` where b is a literal listed there, else gpuad_pow."""
    b = _constant(exponent, numbers)
    a = _cuda(base, rename, numbers)
    if b == 0:  # pow(a, 0) is 1 for every a, NaN too
        return "T(1)"
    if b == 1:
        return a
    if b in _POWERS:
        return f"{_POWERS[b]}({a})"
    return f"gpuad_pow({a}, {_cuda(exponent, rename, numbers)})"


def _cuda(node, rename, numbers):
    if isinstance(node, ast.Constant):
        return f"T({node.value!r})"
    if isinstance(node, ast.Name):
        return rename.get(node.id, node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return f"(-{_cuda(node.operand, rename, numbers)})"
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return f"({_cuda(node.left, rename, numbers)} {_BINOPS[type(node.op)]} {_cuda(node.right, rename, numbers)})"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        return _power(node.left, node.right, rename, numbers)
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        op = _COMPARE[type(node.ops[0])]
        return f"({_cuda(node.left, rename, numbers)} {op} {_cuda(node.comparators[0], rename, numbers)})"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "power":
        return _power(*node.args, rename, numbers)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "where":
        c, a, b = (_cuda(n, rename, numbers) for n in node.args)
        return f"({c} ? {a} : {b})"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _INFIX:
        a, b = (_cuda(n, rename, numbers) for n in node.args)
        return f"({a} {_INFIX[node.func.id]} {b})"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "logical_not":
        return f"(!{_cuda(node.args[0], rename, numbers)})"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _LOGICAL:
        a, b = (_cuda(n, rename, numbers) for n in node.args)
        return f"(!{a} {_LOGICAL[node.func.id]} !{b})" if node.func.id == "logical_xor" else \
            f"(!!{a} {_LOGICAL[node.func.id]} !!{b})"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CUDA_NAMES:
        args = ", ".join(_cuda(a, rename, numbers) for a in node.args)
        return f"{CUDA_NAMES[node.func.id]}({args})"
    raise ValueError(f"cannot translate {ast.unparse(node)!r} to CUDA")
