"""NumPy's floating-point warnings (divide by zero, invalid value, overflow, underflow) raised while
a transform runs, pointed at the user's line.

NumPy attributes such a warning to the Python frame that called the ufunc: inside a transform that
is one of gpuad's rules (`<rule 0.5 / y>:1`, gpuad/ops/table.py), which tells the user nothing. A
transform's call routes them (NumPy's errstate "call", per thread and context) to `_warn`, which
warns at the first frame outside gpuad and the array libraries, naming the rule. Settings the user
made (ignore, raise, their own callback) are kept: only "warn" is routed.
"""
import functools
import sys
import warnings
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import numpy as onp

from .counterparts import LIBRARIES, package
from .ops.expr import RULE_FILE

P = ParamSpec("P")
R = TypeVar("R")


def at_user_line(fun: Callable[P, R]) -> Callable[P, R]:
    """fun, with the floating-point warnings raised inside it pointed at the user's code."""
    @functools.wraps(fun)
    def routed(*args: P.args, **kwargs: P.kwargs) -> R:
        now = onp.geterr()
        if "warn" not in now.values() or "call" in now.values():  # nothing to route, or a callback of theirs
            return fun(*args, **kwargs)
        with onp.errstate(call=_warn, **{k: "call" if v == "warn" else v for k, v in now.items()}):
            return fun(*args, **kwargs)
    return routed


def _warn(kind, flag):
    frame = sys._getframe(1)  # the frame that called the ufunc
    where = _describe(frame)
    level = 2
    while frame is not None and _inside(frame):
        frame, level = frame.f_back, level + 1
    warnings.warn(f"{kind} encountered in {where}", RuntimeWarning, stacklevel=level)


def _inside(frame):
    return frame.f_code.co_filename.startswith(RULE_FILE) or package(frame) in ("gpuad", *LIBRARIES)


def _describe(frame):
    name = frame.f_code.co_filename
    if name.startswith(RULE_FILE):
        return f"gpuad's rule {name[len(RULE_FILE):-1]!r} (a value or a derivative of an elementwise operation)"
    if package(frame) in ("gpuad", *LIBRARIES):
        return f"{frame.f_globals.get('__name__')}.{frame.f_code.co_name}"
    return "a NumPy operation"
