"""Primitives, grouped by kind: the rule table and its elementwise primitives, shapes, indexing,
reductions, the contraction, linear algebra."""

# Data movement: each output element is one element of an argument (or zero), by an index map.
MOVES = frozenset({"reshape", "transpose", "broadcast_to", "getitem", "scatter", "concatenate"})
