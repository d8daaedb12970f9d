"""Primitives, grouped by kind: the rule table and its elementwise primitives, shapes, indexing,
reductions, the contraction, linear algebra."""
