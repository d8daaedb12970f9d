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
    "floor": "floor", "ceil": "ceil", "round": "rint", "power": "gpuad_pow", "arctan2": "atan2",
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

    def cuda(self, rename=None):
        """CUDA C source of this expression; `rename` maps variable names to C expressions."""
        return _cuda(self.tree, rename or {})


def _constant(node):
    """The number a constant expression stands for (``1``, ``-1``), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _constant(node.operand)
        return None if inner is None else -inner
    return None


def _cuda(node, rename):
    if isinstance(node, ast.Constant):
        return f"T({node.value!r})"
    if isinstance(node, ast.Name):
        return rename.get(node.id, node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return f"(-{_cuda(node.operand, rename)})"
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return f"({_cuda(node.left, rename)} {_BINOPS[type(node.op)]} {_cuda(node.right, rename)})"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        return f"gpuad_pow({_cuda(node.left, rename)}, {_cuda(node.right, rename)})"
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        op = _COMPARE[type(node.ops[0])]
        return f"({_cuda(node.left, rename)} {op} {_cuda(node.comparators[0], rename)})"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "where":
        c, a, b = (_cuda(n, rename) for n in node.args)
        return f"({c} ? {a} : {b})"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _INFIX:
        a, b = (_cuda(n, rename) for n in node.args)
        return f"({a} {_INFIX[node.func.id]} {b})"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "logical_not":
        return f"(!{_cuda(node.args[0], rename)})"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _LOGICAL:
        a, b = (_cuda(n, rename) for n in node.args)
        return f"(!{a} {_LOGICAL[node.func.id]} !{b})" if node.func.id == "logical_xor" else \
            f"(!!{a} {_LOGICAL[node.func.id]} !!{b})"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CUDA_NAMES:
        args = ", ".join(_cuda(a, rename) for a in node.args)
        return f"{CUDA_NAMES[node.func.id]}({args})"
    raise ValueError(f"cannot translate {ast.unparse(node)!r} to CUDA")
