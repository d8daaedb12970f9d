"""gpuad.checkpoint (alias remat), its policies and checkpoint_name, as jax.checkpoint and
jax.ad_checkpoint: a function whose reverse-mode derivative stores its arguments, and the values a
policy names, and recomputes the rest of it when the backward sweep reaches it.

>>> import gpuad, gpuad.numpy as gnp
>>> from gpuad.ad_checkpoint import checkpoint_name
>>> policy = gpuad.checkpoint_policies.save_only_these_names("square")
>>> f = gpuad.checkpoint(lambda x: checkpoint_name(x * x, "square") * x, policy=policy)
>>> gpuad.grad(f)(gnp.asarray(2.0))
array(12.)
"""
import contextvars
import functools
import itertools
import types

from .compiler.ir import Equation, Program, Var
from .core import Primitive, ShapeDtypeStruct, same
from .lax import _array, _switch
from .loops import Cond, cond_p, trace_body, unpack
from .ops import patterns
from .ops.contract import contract
from .tree import tree_flatten, tree_map

__all__ = ["checkpoint", "remat", "checkpoint_name", "checkpoint_policies"]


def checkpoint(fun, *, prevent_cse=True, policy=None, static_argnums=(), static_argnames=()):
    """fun, whose reverse-mode derivative stores only its arguments and recomputes fun's inside
    when the backward sweep reaches it (jax.checkpoint, alias remat): memory for time. Its call is
    one primitive (a one-branch cond) whose VJP rule reruns fun under the sweep. `policy`, as
    JAX's (gpuad.checkpoint_policies), says which results inside fun are saved instead:
    policy(primitive, *argument avals, **params) -> bool, asked of each primitive application fun
    makes; the sweep reads those and recomputes the rest. static_argnums and static_argnames name
    the arguments that are not arrays (passed as they are, not differentiated); prevent_cse is
    accepted (the call is one equation that common-subexpression elimination never splits).

    >>> import gpuad, gpuad.numpy as gnp
    >>> gpuad.grad(gpuad.checkpoint(lambda x: gnp.sin(gnp.sin(x))))(gnp.asarray(0.0))
    array(1.)
    """
    if policy is not None and not callable(policy):
        raise ValueError(f"checkpoint: policy must be None or a function (primitive, *avals, **params) -> bool "
                         f"such as gpuad.checkpoint_policies.dots_saveable, got {policy!r}")
    nums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    names = {static_argnames} if isinstance(static_argnames, str) else set(static_argnames)

    @functools.wraps(fun)
    def rematted(*args, **kwargs):
        static = {i % len(args): args[i] for i in nums}
        fixed = {k: v for k, v in kwargs.items() if k in names}
        # the keyword arguments not static travel as one dict operand, after the positional ones
        dynamic = [a for i, a in enumerate(args) if i not in static] + [
            {k: v for k, v in kwargs.items() if k not in names}]

        def call(*dyn):
            it = iter(dyn[:-1])
            return fun(*[static[i] if i in static else next(it) for i in range(len(args))], **dyn[-1], **fixed)
        if policy is None:
            return _switch(0, [call], dynamic, "checkpoint")
        token = _naming.set(True)
        try:
            return _saving(call, dynamic, policy)
        finally:
            _naming.reset(token)
    return rematted


remat = checkpoint


def _saving(call, operands, policy):
    """call(*operands) as a one-branch cond that also outputs the results the policy saves; its
    VJP reads them (known_p) instead of recomputing them."""
    leaves, tree = tree_flatten(operands)
    leaves = [_array(x) for x in leaves]
    out_tree = []

    def flat(vals):
        o, t = tree_flatten(call(*tree.unflatten(vals)))
        out_tree[:] = [t]
        return [_array(x) for x in o]
    program, consts = trace_body(flat, [same(x) for x in leaves], "the checkpointed function")
    saved = [eq.out for eq in program.equations if _savable(eq) and
             policy(eq.prim, *[ShapeDtypeStruct(a.shape, a.dtype) for a in eq.ins], **eq.params)]
    ids = itertools.count(program.next_id())
    reads = {v: Var(next(ids), v) for v in saved}
    # a name saves the value it names: the equation that made it reads it too, and does not run again
    made = {o: eq for eq in program.equations for o in eq.outs}
    for eq in program.equations:
        named = eq.prim is name_p and eq.out in reads and isinstance(eq.ins[0], Var)
        source = made.get(eq.ins[0]) if named else None
        if source is not None and _savable(source) and source.out not in reads:
            reads[source.out] = reads[eq.out]
    recompute = Program(program.ins + [reads[v] for v in saved], [
        Equation(known_p, [reads[eq.out]] + eq.ins, eq.out, {"op": eq.prim, "params": tuple(eq.params.items())})
        if eq.outs[0] in reads else eq for eq in program.equations], program.outs)
    spec = Cond([Program(program.ins, program.equations, program.outs + saved)], "checkpoint",
                saved=(len(saved), [recompute]))
    outs = unpack(cond_p(0, *consts, *leaves, spec=spec), spec.out_avals)
    return out_tree[0].unflatten(outs[:len(program.outs)])


def _savable(eq):
    """Whether known_p may stand for eq: one floating result (a factorisation's several are
    recomputed), and known_p's rules are eq's, so eq takes complex values or sees none."""
    return len(eq.outs) == 1 and eq.out.dtype.kind in "fc" and (
        eq.prim.complex_ready or all(a.dtype.kind != "c" for a in eq.ins + [eq.out]))


def _known_jvp(primals, tangents, op, params):
    value, *args = primals
    _, t = op.jvp(args, tangents[1:], **dict(params))
    return value, t


def _known_batch(args, batched, op, params):
    return op.batch(args[1:], batched[1:], **dict(params))


# known_p(value, *args, op, params): op's result on args, already known (saved by a checkpoint's
# policy): nothing runs, and its rules are op's, reading the value where the VJP needs the result
known_p = Primitive("known", lambda value, *args, op, params: value, _known_jvp,
                    lambda ct, args, out, needed, op, params: [None] + list(
                        op.vjp(ct, args[1:], args[0], needed[1:], **dict(params))),
                    _known_batch, abstract=lambda value, *args, op, params: same(value))
known_p.view = lambda op, params: True  # its result is its first argument: a compiled program adds into neither
known_p.complex_ready = True  # it stands only for primitives that take complex values or see none (_savable)


# ---------------------------------------------------------------- checkpoint_name
_naming = contextvars.ContextVar("naming", default=False)  # while a checkpoint with a policy traces its function


def checkpoint_name(x, name):
    """x (a pytree) with its leaves named `name` for a checkpoint's policy (save_only_these_names
    and the others of gpuad.checkpoint_policies), as jax.ad_checkpoint.checkpoint_name. Outside the
    function of a checkpoint with a policy it is x itself: the name reaches no program.

    >>> import gpuad.numpy as gnp
    >>> checkpoint_name(gnp.asarray(2.0), "y")
    array(2.)
    """
    if not isinstance(name, str):
        raise TypeError(f"checkpoint_name: the name must be a str, got {name!r}")
    if not _naming.get():
        return x
    return tree_map(lambda leaf: name_p(_array(leaf), name=name), x)


# name_p(x, name): x, named for a checkpoint's policy
name_p = Primitive("name", lambda x, name: x, lambda primals, tangents, name: (name_p(primals[0], name=name),
                                                                              tangents[0]),
                   lambda ct, args, out, needed, name: [ct],
                   lambda args, batched, name: (name_p(args[0], name=name), batched[0]),
                   abstract=lambda x, name: same(x))
name_p.pattern = patterns.elementwise
name_p.view = lambda name: True  # its result is its argument: a compiled program adds into neither
name_p.complex_ready = True


# ---------------------------------------------------------------- policies
def _dots_saveable(prim, *avals, **params):
    return prim is contract


def _dots_with_no_batch_dims_saveable(prim, *avals, **params):
    """The products without batch axes (a letter of both operands and the output): matrix and
    vector products, not their batched (vmapped) forms."""
    if prim is not contract:
        return False
    sa, sb, so = params["spec"]
    return not any(c in sa and c in sb for c in so)


def _names(names, what):
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f"checkpoint_policies.{what}: names must be strs (those given to checkpoint_name), "
                        f"got {names!r}")
    return frozenset(names)


def save_only_these_names(*names):
    """Save the values checkpoint_name gave these names; recompute the rest."""
    names = _names(names, "save_only_these_names")
    return lambda prim, *avals, **params: prim is name_p and params["name"] in names


def save_any_names_but_these(*names):
    """Save every named value but these; recompute the rest."""
    names = _names(names, "save_any_names_but_these")
    return lambda prim, *avals, **params: prim is name_p and params["name"] not in names


def save_anything_except_these_names(*names):
    """Save every result but the values of these names (JAX's: what made a named value is saved)."""
    names = _names(names, "save_anything_except_these_names")
    return lambda prim, *avals, **params: not (prim is name_p and params["name"] in names)


def save_from_both_policies(policy_1, policy_2):
    """Save what either policy saves."""
    return lambda prim, *avals, **params: policy_1(prim, *avals, **params) or policy_2(prim, *avals, **params)


def _offloading(what):
    def refuse(*args, **kwargs):
        raise NotImplementedError(f"checkpoint_policies.{what}: offloading saved values to host memory is not "
                                  "supported (gpuad keeps them on the device that made them); use "
                                  "save_only_these_names or dots_with_no_batch_dims_saveable to save them there")
    return refuse


checkpoint_policies = types.SimpleNamespace(
    nothing_saveable=lambda prim, *avals, **params: False,
    everything_saveable=lambda prim, *avals, **params: True,
    dots_saveable=_dots_saveable, checkpoint_dots=_dots_saveable,
    dots_with_no_batch_dims_saveable=_dots_with_no_batch_dims_saveable,
    checkpoint_dots_with_no_batch_dims=_dots_with_no_batch_dims_saveable,
    save_only_these_names=save_only_these_names, save_any_names_but_these=save_any_names_but_these,
    save_anything_except_these_names=save_anything_except_these_names,
    save_from_both_policies=save_from_both_policies,
    save_and_offload_only_these_names=_offloading("save_and_offload_only_these_names"),
    offload_dot_with_no_batch_dims=_offloading("offload_dot_with_no_batch_dims"))


