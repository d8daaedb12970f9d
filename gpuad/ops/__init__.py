"""Primitives: the elementwise table, structural ops, the contraction, linear algebra."""
