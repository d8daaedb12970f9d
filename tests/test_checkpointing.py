"""Reverse mode through loops holding a few carries (gpuad/revolve.py): the binomial schedule
against a brute-force optimum, checkpointed scans, fori_loops and traced while loops against
jacfwd, finite differences and the implicit-function theorem, under jit, vmap, hessian and
chunk_size, and their peak memory (tracemalloc; a subprocess under `ulimit -v` where a test
probes the available memory)."""
import functools
import os
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest
from helpers import assert_close, numerical_jacobian, on_backend, to_np

import gpuad
import gpuad.numpy as gnp
from gpuad import backends, lax, loops, revolve


# ---------------------------------------------------------------- the schedule
@functools.lru_cache(maxsize=None)
def _fewest_steps(n, s):
    """The fewest forward steps reversing n steps holding s carries takes, by trying every split."""
    if n == 1:
        return 0
    if s == 1:
        return n * (n - 1) // 2
    return min(m + _fewest_steps(n - m, s - 1) + _fewest_steps(m, s) for m in range(1, n))


class _Carry:
    """A carry that knows its step and how many carries are alive."""
    alive = 0

    def __init__(self, step):
        self.step = step
        _Carry.alive += 1

    def __del__(self):
        _Carry.alive -= 1


def _run_schedule(n, s):
    """The schedule on carries that count themselves: (steps advanced, most carries alive when a
    step is swept back, the steps swept back in order)."""
    log = {"advanced": 0, "alive": 0, "back": []}

    def advance(c, p, q):
        assert c.step == p
        log["advanced"] += q - p
        return _Carry(q)

    def back(i, c):
        assert c.step == i
        log["back"].append(i)
        log["alive"] = max(log["alive"], _Carry.alive)
    revolve.reverse(n, s, advance, back, _Carry(0))
    return log


@pytest.mark.parametrize("s", [1, 2, 3, 5, 8])
def test_the_schedule_reverses_every_step_with_the_fewest_forward_steps(s):
    for n in range(1, 60):
        log = _run_schedule(n, s)
        assert log["back"] == list(range(n - 1, -1, -1))
        assert log["advanced"] == revolve.forward_steps(n, s) == _fewest_steps(n, s), (n, s)


@pytest.mark.parametrize("n, s", [(100, 4), (1000, 10), (57, 57), (300, 300), (30, 1)])
def test_the_schedule_holds_its_slots_and_one_working_carry(n, s):
    assert _run_schedule(n, s)["alive"] <= s + 1


# ---------------------------------------------------------------- checkpointed loops equal the plain ones
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("checkpoint", [1, 2, 5, "auto"])
def test_checkpointed_scan_equals_the_plain_one(reverse, checkpoint):
    rng = np.random.default_rng(3)
    args = on_backend(rng.normal(size=3), rng.normal(size=(23, 3)), rng.normal(size=(3, 3)) * 0.5)

    def run(checkpoint):
        def f(h0, xs, w):
            h, ys = lax.scan(lambda h, x: (gnp.tanh(w @ h + x), gnp.sum(h)), h0, xs, reverse=reverse,
                             checkpoint=checkpoint)
            return gnp.concatenate([h, ys])
        return f
    for argnum in range(3):
        assert_close(gpuad.jacrev(run(checkpoint), argnums=argnum)(*args),
                     gpuad.jacfwd(run(None), argnums=argnum)(*args), rtol=1e-10, atol=1e-12)
    assert_close(run(checkpoint)(*args), run(None)(*args), rtol=1e-14)


def _pendulum(steps, checkpoint):
    def step(i, y, p, h=0.01):
        f = lambda y: gnp.stack([y[1], -p[0] * gnp.sin(y[0]) - p[1] * y[1]])  # noqa: E731
        k1 = f(y)
        k2 = f(y + 0.5 * h * k1)
        k3 = f(y + 0.5 * h * k2)
        k4 = f(y + h * k3)
        return y + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return lambda z: lax.fori_loop(0, steps, lambda i, y: step(i, y, z[2:]), z[:2], checkpoint=checkpoint)


@pytest.mark.slow
def test_jacrev_through_1000_checkpointed_steps_equals_jacfwd():
    z = gnp.asarray([0.7, -0.3, 1.3, 0.2])
    expected = gpuad.jacfwd(_pendulum(1000, None))(z)
    for checkpoint in (10, 3):
        assert_close(gpuad.jacrev(_pendulum(1000, checkpoint))(z), expected, rtol=1e-10, atol=1e-12)


def test_checkpointed_loops_under_jit_vmap_and_hessian():
    rng = np.random.default_rng(5)
    h0, xs = on_backend(rng.normal(size=3), rng.normal(size=(17, 3)))
    w = gnp.asarray(rng.normal(size=(3, 3)) * 0.5)

    def loss(checkpoint):
        def f(w):
            h, ys = lax.scan(lambda h, x: (gnp.tanh(w @ h + x), gnp.sum(h * h)), h0, xs, checkpoint=checkpoint)
            return gnp.sum(h ** 2) + gnp.sum(ys * ys)
        return f
    plain, cp = loss(None), loss(3)
    hessian = gpuad.hessian(plain)(w)
    assert_close(gpuad.hessian(cp)(w), hessian, rtol=1e-12)  # forward over the checkpointed sweep
    assert_close(gpuad.jacrev(gpuad.grad(cp))(w), hessian, rtol=1e-12)  # reverse over it
    assert_close(gpuad.jit(gpuad.hessian(cp))(w), hessian, rtol=1e-12)
    assert_close(gpuad.jit(gpuad.grad(cp))(w), gpuad.grad(plain)(w), rtol=1e-13)
    program = gpuad.jit(gpuad.grad(cp)).lower(w).program
    sweep = next(eq.params["spec"] for eq in program.equations if eq.prim is loops.revolve_p)
    from gpuad.compiler import cost  # launches: the schedule's forward steps and the 17 backward ones
    assert cost.count(program) > sweep.per_call(cost.count) == \
        revolve.forward_steps(17, 3) * cost.count(sweep.fwd) + 17 * cost.count(sweep.bwd) > 0
    ws = gnp.stack([w, 0.5 * w, -w])
    expected = gpuad.vmap(gpuad.grad(plain))(ws)
    assert_close(gpuad.vmap(gpuad.grad(cp))(ws), expected, rtol=1e-13)
    assert_close(gpuad.jit(gpuad.vmap(gpuad.grad(cp)))(ws), expected, rtol=1e-13)
    assert_close(gpuad.grad(cp)(w), numerical_jacobian(cp, [to_np(w)], 0), rtol=1e-6, atol=1e-8)


def test_checkpoint_must_be_a_count_or_auto():
    for bad in (0, -2, "sqrt", 2.5, True):
        with pytest.raises(ValueError, match="checkpoint must be"):
            lax.scan(lambda c, x: (c + x, None), 0.0, gnp.ones(3), checkpoint=bad)
    with pytest.raises(ValueError, match="checkpoint must be"):
        lax.fori_loop(0, 3, lambda i, c: c, 0.0, checkpoint="all")


# ---------------------------------------------------------------- memory
def _loss(steps, checkpoint, w):
    return lambda x: gnp.sum(lax.scan(lambda c, _: (gnp.sin(c) * w, None), x, None, length=steps,
                                      checkpoint=checkpoint)[0])


def test_checkpointing_holds_a_tenth_of_the_carries():
    """1,000 steps of a 160 kB carry: storing every carry takes 160 MB, 50 carries a tenth of that
    at the peak whatever else the sweep holds; "auto" told 24 MB are available stores as many as
    fit in a quarter of them."""
    w = gnp.asarray(np.linspace(0.5, 1.5, 20000))
    peaks, grads = {}, {}
    for checkpoint in (None, 50):
        tracemalloc.start()
        grads[checkpoint] = to_np(gpuad.grad(_loss(1000, checkpoint, w))(w))
        peaks[checkpoint] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    np.testing.assert_allclose(grads[50], grads[None], rtol=1e-12)
    assert peaks[None] > 1000 * 160000, peaks
    assert peaks[50] < 0.1 * peaks[None], peaks


def test_auto_holds_what_fits(monkeypatch):
    w = gnp.asarray(np.linspace(0.5, 1.5, 20000))
    assert revolve.slots("auto", 1000, 160000) is None  # 160 MB fit on this machine: every carry stored
    monkeypatch.setattr(backends.current(), "free_memory", lambda: 24 * 10 ** 6)
    assert revolve.slots("auto", 1000, 160000) == 37  # a quarter of 24 MB
    tracemalloc.start()
    g = to_np(gpuad.grad(_loss(500, "auto", w))(w))  # 80 MB for every carry
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    monkeypatch.undo()
    np.testing.assert_allclose(g, to_np(gpuad.grad(_loss(500, None, w))(w)), rtol=1e-12)
    assert peak < 12 * 10 ** 6, peak


def test_chunk_size_counts_the_slots(monkeypatch):
    """The memory check of a sweep counts the carries the loops on the tape hold: all of them
    without checkpointing (refused here, naming checkpoint=), the slots with it (it fits)."""
    w = gnp.asarray(np.linspace(0.5, 1.5, 20000))
    f = lambda checkpoint: lambda x: lax.scan(  # noqa: E731
        lambda c, _: (gnp.sin(c) * w, None), x, None, length=500, checkpoint=checkpoint)[0][:2]
    monkeypatch.setattr(backends.current(), "free_memory", lambda: 50 * 10 ** 6)  # every carry: 80 MB
    with pytest.raises(MemoryError, match="checkpoint="):
        gpuad.jacrev(f(None))(w)
    expected = gpuad.jacrev(f(None), chunk_size=1)(w)
    assert_close(gpuad.jacrev(f(20))(w), expected, rtol=1e-12)
    assert_close(gpuad.jacrev(f(20), chunk_size=1)(w), expected, rtol=1e-12)  # a sweep per row, one recording


@pytest.mark.slow
def test_jacrev_through_a_hundred_thousand_steps_fits(tmp_path):
    """Under an address space capped below what 10^5 carries take, "auto" holds what fits."""
    script = textwrap.dedent("""
        import numpy as np, gpuad, gpuad.numpy as gnp
        from gpuad import lax
        steps = 10 ** 5
        w = np.linspace(0.9999, 1.0, 2000)  # 16 kB a carry: 10^5 of them take 1.6 GB, over the cap
        f = lambda x: gnp.sum(lax.scan(lambda c, _: (gnp.sin(c) * gnp.asarray(w), None), x, None,
                                       length=steps, checkpoint="auto")[0])
        g = np.asarray(gpuad.jit(gpuad.grad(f))(gnp.asarray(w)))
        every = lambda x: gnp.sum(lax.scan(lambda c, _: (gnp.sin(c) * gnp.asarray(w), None), x, None,
                                           length=steps)[0])
        try:  # storing every carry is refused before it runs (the compiled program's plan)
            gpuad.jit(gpuad.grad(every))(gnp.asarray(w))
            raise AssertionError("10^5 carries fitted: the cap is too high to show anything")
        except MemoryError:
            pass
    """)
    run_capped(script, tmp_path)


# the derivative by hand of the scans of sin(c) * w: d c_(k+1) / d c_k = cos(c_k) w, forward along the steps
_BY_HAND = """
c, d = w.copy(), np.ones_like(w)
for _ in range(steps):
    d *= np.cos(c) * w
    c = np.sin(c) * w
assert np.allclose(g, d, rtol=1e-10, atol=1e-300), abs(g - d).max()
print("ok")
"""


def run_capped(script, tmp_path, cap_kb=1_500_000):
    """Run a script (defining w, steps and g, the gradient of sum(scan of sin(c) * w) from w) in a
    subprocess whose address space is capped at cap_kb, then check g against the derivative by hand."""
    path = tmp_path / "capped.py"
    path.write_text(script + _BY_HAND)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run(["bash", "-c", f"ulimit -v {cap_kb} && {sys.executable} {path}"], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]


# ---------------------------------------------------------------- while loops
def test_a_traced_while_loop_is_swept_back_in_linear_time(monkeypatch):
    """Under gpuad.jit the trip count is known only when the loop runs: the sweep counts the
    steps the schedule advances, n - 1 holding every carry (not n (n - 1) / 2 recomputing each
    from the first), forward_steps(n, 3) told that 3 carries fit."""
    advanced = []
    reverse, slots = revolve.reverse, revolve.slots

    def counted(n, slots, advance, back, first):
        def counting(c, p, q):
            advanced.append(q - p)
            return advance(c, p, q)
        return reverse(n, slots, counting, back, first)
    monkeypatch.setattr(revolve, "reverse", counted)

    def f(x):  # 40 trips
        return lax.while_loop(lambda s: s[1] < 40, lambda s: (gnp.sin(s[0]) * 1.01, s[1] + 1), (x, 0))[0]
    x = gnp.asarray([0.3, 0.9])
    expected = gpuad.jacfwd(f)(x)
    assert_close(gpuad.jit(gpuad.jacrev(f))(x), expected, rtol=1e-12)
    assert sum(advanced) == 39  # every carry held: each computed once
    advanced.clear()
    monkeypatch.setattr(revolve, "slots", lambda checkpoint, n, size: 3 if n is None else slots(checkpoint, n, size))
    assert_close(gpuad.jit(gpuad.jacrev(f))(x), expected, rtol=1e-12)
    assert sum(advanced) == revolve.forward_steps(40, 3) < 40 * 39 // 2


# ---------------------------------------------------------------- gpuad.checkpoint's policies
def test_checkpoint_policies_save_what_they_name(monkeypatch):
    """The sweep reads the results a policy saves and recomputes the others: dots_saveable runs
    the block's two matrix products once (the recomputation skips them), nothing_saveable twice."""
    from gpuad.ops.contract import contract

    def block(x, w):
        return gnp.tanh(w @ gnp.sin(w @ x))

    def loss(policy):
        return lambda x, w: gnp.sum(gpuad.checkpoint(block, policy=policy)(x, w) ** 2)
    rng = np.random.default_rng(2)
    x, w = on_backend(rng.normal(size=4), rng.normal(size=(4, 4)) * 0.5)
    plain = lambda x, w: gnp.sum(block(x, w) ** 2)  # noqa: E731
    policies = gpuad.checkpoint_policies
    runs, impl = [], contract.impl
    monkeypatch.setattr(contract, "impl", lambda *a, **k: runs.append(1) or impl(*a, **k))
    counts = {}
    for name in ("nothing_saveable", "dots_saveable", "everything_saveable"):
        runs.clear()
        for argnum in (0, 1):
            assert_close(gpuad.grad(loss(getattr(policies, name)), argnums=argnum)(x, w),
                         gpuad.grad(plain, argnums=argnum)(x, w), rtol=1e-14)
        counts[name] = len(runs)
    assert counts["dots_saveable"] == counts["nothing_saveable"] - 4  # two products, two grads
    assert counts["everything_saveable"] == counts["dots_saveable"]
    monkeypatch.undo()
    dots = loss(policies.dots_saveable)
    assert_close(gpuad.hessian(dots)(x, w), gpuad.hessian(plain)(x, w), rtol=1e-12)
    assert_close(gpuad.jit(gpuad.grad(dots, argnums=1))(x, w), gpuad.grad(plain, argnums=1)(x, w), rtol=1e-13)
    xs = gnp.stack([x, -x])
    assert_close(gpuad.vmap(gpuad.grad(dots), in_axes=(0, None))(xs, w),
                 gpuad.vmap(gpuad.grad(plain), in_axes=(0, None))(xs, w), rtol=1e-13)


def test_policies_that_name_values(monkeypatch):
    """save_only_these_names saves the products checkpoint_name named (the product that made a
    named value does not run again in the sweep), the others name what they save or not; every
    policy keeps every derivative; the offloading ones and bad names are refused."""
    from gpuad.ops.contract import contract
    policies = gpuad.checkpoint_policies

    def block(x, w):
        p = gpuad.checkpoint_name(w @ x, "p")
        return gnp.tanh(gpuad.checkpoint_name(w @ gnp.sin(p), "q"))

    def loss(policy):
        return lambda x, w: gnp.sum(gpuad.checkpoint(block, policy=policy)(x, w) ** 2)
    rng = np.random.default_rng(3)
    x, w = on_backend(rng.normal(size=4), rng.normal(size=(4, 4)) * 0.5)
    plain = lambda x, w: gnp.sum(block(x, w) ** 2)  # noqa: E731
    runs, impl = [], contract.impl
    monkeypatch.setattr(contract, "impl", lambda *a, **k: runs.append(1) or impl(*a, **k))
    counts = {}
    for name, policy in [("nothing", policies.nothing_saveable), ("p", policies.save_only_these_names("p")),
                         ("p and q", policies.save_only_these_names("p", "q")),
                         ("all names but q", policies.save_any_names_but_these("q")),
                         ("anything but p", policies.save_anything_except_these_names("p")),
                         ("both", policies.save_from_both_policies(policies.save_only_these_names("q"),
                                                                   policies.dots_saveable)),
                         ("no batch dims", policies.dots_with_no_batch_dims_saveable)]:
        runs.clear()
        assert_close(gpuad.grad(loss(policy), argnums=1)(x, w), gpuad.grad(plain, argnums=1)(x, w), rtol=1e-14)
        counts[name] = len(runs)
    assert counts["p"] == counts["all names but q"] == counts["nothing"] - 1
    assert counts["p and q"] == counts["both"] == counts["no batch dims"] == counts["nothing"] - 2
    # anything but p: q's product is saved and p's made again (it saves what made p, JAX's rule too)
    assert counts["anything but p"] == counts["nothing"] - 2
    monkeypatch.undo()
    named = loss(policies.save_only_these_names("p"))
    assert_close(gpuad.hessian(named)(x, w), gpuad.hessian(plain)(x, w), rtol=1e-12)
    assert_close(gpuad.jit(gpuad.grad(named, argnums=1))(x, w), gpuad.grad(plain, argnums=1)(x, w), rtol=1e-13)
    assert_close(gpuad.vmap(gpuad.grad(named), in_axes=(0, None))(gnp.stack([x, -x]), w),
                 gpuad.vmap(gpuad.grad(plain), in_axes=(0, None))(gnp.stack([x, -x]), w), rtol=1e-13)
    assert gpuad.checkpoint_name(x, "p") is x  # outside a checkpoint with a policy: x itself
    # a named argument and a named constant: no equation made them
    edge = gpuad.checkpoint(lambda x: x * gpuad.checkpoint_name(gnp.asarray(3.0), "p") +
                            gpuad.checkpoint_name(x, "p") ** 2, policy=policies.save_only_these_names("p"))
    for grad in (gpuad.grad(edge), gpuad.jit(gpuad.grad(edge))):
        assert_close(grad(gnp.asarray(2.0)), 7.0, rtol=1e-15)
    with pytest.raises(NotImplementedError, match="offloading saved values to host memory is not supported"):
        gpuad.checkpoint(block, policy=policies.save_and_offload_only_these_names(
            names_which_can_be_saved=(), names_which_can_be_offloaded=("p",), offload_src="device",
            offload_dst="pinned_host"))(x, w)
    with pytest.raises(TypeError, match="names must be strs"):
        policies.save_only_these_names(1)
    with pytest.raises(TypeError, match="the name must be a str"):
        gpuad.checkpoint_name(x, 3)


@pytest.mark.parametrize("policy", [None, gpuad.checkpoint_policies.dots_saveable])
def test_checkpoint_takes_keyword_arguments_and_static_names(policy):
    """Keyword arguments are differentiated as the positional ones are; static_argnames pass
    theirs as they are (a Python int a loop in fun counts with)."""
    def block(x, n, *, w, scale):
        for _ in range(n):
            x = gnp.tanh(w @ x) * scale
        return x
    ck = gpuad.checkpoint(block, policy=policy, static_argnums=1, static_argnames="scale")
    rng = np.random.default_rng(4)
    x, w = on_backend(rng.normal(size=3), rng.normal(size=(3, 3)))
    for argnum in (0, 1):
        assert_close(gpuad.jacrev(lambda x, w: ck(x, 3, w=w, scale=0.5), argnums=argnum)(x, w),
                     gpuad.jacfwd(lambda x, w: block(x, 3, w=w, scale=0.5), argnums=argnum)(x, w), rtol=1e-13)
