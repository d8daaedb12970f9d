"""Binomial checkpointing: the schedule that reverses a loop of n steps holding s carries, not n.

The backward sweep of a loop reads the carry entering each step, last step first. Storing them all
takes n carries; Griewank's binomial schedule (revolve) holds s of them and recomputes the others
from the nearest one held, with the fewest forward steps any schedule with s carries can take:
t n - C(s + t, t - 1) for the t with C(s + t - 1, t - 1) < n <= C(s + t, t) (each step is run at
most t times more; Griewank & Walther, ACM TOMS 26(1), 2000). With s = 50, 1,000 steps take
t = 2: about two more forward runs. The loop that runs it under every transform is revolve_p
(gpuad/loops.py); here are the schedule and how many carries a loop holds.
"""
import functools
import math

from . import backends
from .core import held_bytes

SHARE = 0.25  # of the available memory: what "auto" lets a loop's stored carries take
UNBOUNDED = 2 ** 62  # slots where nothing bounds them and the step count is known only when the loop runs


# ---------------------------------------------------------------- the schedule
def _reps(n, s):
    """The fewest repetitions t with C(s + t, t) >= n: n steps reversed holding s carries run
    each step at most t times more."""
    t = 0
    while _beta(s, t) < n:
        t += 1
    return t


def forward_steps(n, s):
    """Forward steps the binomial schedule runs to reverse n steps holding s carries (the first
    carry one of them); s = 1 recomputes each carry from the first.

    >>> forward_steps(1000, 50), forward_steps(1000, 1000), forward_steps(4, 1)
    (1948, 999, 6)
    """
    if n <= 1:
        return 0
    if s == 1:
        return n * (n - 1) // 2
    t = _reps(n, s)
    return t * n - _beta(s + 1, t - 1)


def _beta(s, t):
    """C(s + t, t): the most steps s carries reverse running each at most t times more."""
    return math.comb(s + t, t) if t >= 0 else 0


@functools.lru_cache(maxsize=65536)
def split(n, s):
    """Steps to run ahead before storing a carry when n steps are reversed holding s carries: the
    m whose m + forward_steps(n - m, s - 1) + forward_steps(m, s) is least. Holding a carry per
    step (s >= n), the next step. Where the steps left need t repetitions with s - 1 carries and
    the m run ahead t - 1 with s, moving m changes nothing (the slopes, t and 1 + t - 1, cancel):
    the least such m; else the least m where the cost, convex in m, stops falling."""
    if s >= n:
        return 1

    def cost(m):
        return m + forward_steps(n - m, s - 1) + forward_steps(m, s)
    t = _reps(n, s)
    m = max(_beta(s, t - 2) + 1, n - _beta(s - 1, t), 1)
    if m < n and cost(m) == forward_steps(n, s):
        return m
    lo, hi = 1, n - 1
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if cost(mid + 1) >= cost(mid) else (mid + 1, hi)
    return lo


def reverse(n, slots, advance, back, first):
    """Run the schedule: back(i, carry i) for i from n - 1 down to 0, the carries recomputed by
    advance(carry, p, q) (carry q from carry p) from `first` (carry 0), holding at most `slots`
    of them (the stack; slots >= 1)."""
    held, end = [(0, first)], n
    while end > 0:
        p, c = held[-1]
        free = slots - len(held) + 1  # for the steps p..end - 1, the one holding carry p included
        if end - p == 1:
            back(p, c)
            held.pop()
            end = p
        elif free == 1:
            back(end - 1, advance(c, p, end - 1))
            end -= 1
        else:
            m = split(end - p, free)
            held.append((p + m, advance(c, p, p + m)))


def slots(checkpoint, n, carry_bytes):
    """The carries reverse mode through n steps holds for `checkpoint` (None, an int >= 1 or
    "auto"), None where it stores them all: an int at least n, or "auto" where n carries fit in
    SHARE of the available memory (n None: a trip count known only when the loop runs)."""
    if checkpoint is None:
        return None
    if checkpoint == "auto":
        available = backends.current().free_memory()
        if available is None or not carry_bytes:
            return None if n is not None else UNBOUNDED
        fit = max(1, int(SHARE * available // carry_bytes))
        return None if n is not None and fit >= n else fit
    return None if n is not None and checkpoint >= n else checkpoint


def check(checkpoint, what):
    if not (checkpoint is None or checkpoint == "auto" or
            isinstance(checkpoint, int) and not isinstance(checkpoint, bool) and checkpoint >= 1):
        raise ValueError(f'{what}: checkpoint must be None (store every carry), a positive int (the carries to '
                         f'store: binomial checkpointing) or "auto" (from the available memory), got {checkpoint!r}')
    return checkpoint


def carry_bytes(carries):
    return sum(map(held_bytes, carries))
