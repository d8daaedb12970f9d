"""Index expressions (gpuad/compiler/index.py): folding as they are built, printing to C with the
index type a parameter (checked against g++ on random expressions), evaluation on NumPy arrays,
and each move's index map (core.Primitive.index) against the primitive's impl on element ids."""
import random
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuad.compiler import index as ix
from gpuad.core import ShapeDtypeStruct
from gpuad.ops import patterns
from gpuad.ops.indexing import concatenate, getitem, scatter, take_along
from gpuad.ops.shape import broadcast_to, reshape, transpose

d0, d1, d2 = (ix.sym(f"d{k}", 0, n - 1) for k, n in enumerate((6, 100, 100)))


def test_identities_and_constants_fold():
    assert d0 * 1 is d0 and d0 + 0 is d0 and (d0 * 0).value == 0
    assert (ix.const(6) * 7 + 2).value == 44 and (ix.const(-7) // 2).value == -4 and (ix.const(-7) % 2).value == 1
    assert (d0 + 3) - 3 is d0 and ((d0 + 1) + (d1 - 1)) == d0 + d1
    assert (d0 * 3) * 4 == d0 * 12 and (d0 + 2) * 3 == d0 * 3 + 6
    assert ix.c((d0 + 1) + 2) == "(d0 + 3)" and ix.c(d0 - 4) == "(d0 - 4)" and ix.c(d0 - d1) == "(d0 - d1)"


def test_division_and_modulo_fold_where_the_bounds_decide():
    """(a * n + b) // n is a and (a * n + b) % n is b where 0 <= b < n: the reshape of a
    (6, 10000) value to (6, 100, 100) reads d1 * 100 + d2, no division."""
    flat = d1 * 100 + d2
    assert flat // 100 == d1 and flat % 100 == d2 and (d0 * 10000 + flat) // 10000 == d0
    assert d2 // 100 == ix.ZERO and d2 % 100 is d2 and (flat // 10) // 10 == d1
    assert (d1 * 100 + d2 + 100) // 100 == d1 + 1
    assert reshape.index((d0, d1, d2), [(6, 10000)], None, shape=(6, 100, 100)) == [(ix.TRUE, 0, (d0, flat))]
    e = ix.sym("e", 0, 9999)
    (_, _, back), = reshape.index((d0, e), [(6, 100, 100)], None, shape=(6, 10000))
    assert [ix.c(x) for x in back] == ["d0", "(e / 100)", "(e % 100)"]


def test_comparisons_selects_and_clamps_fold_by_bounds():
    assert ix.lt(d0, 6) == ix.TRUE and ix.ge(d0, 0) == ix.TRUE and ix.lt(d0, 0) == ix.FALSE
    assert ix.lt(d0 + 2, 5) == ix.lt(d0, 3)  # the constant moved across
    assert ix.select(ix.TRUE, d0, d1) is d0 and ix.select(ix.lt(d1, 3), d0, d0) is d0
    assert ix.clamp(d0, 5) is d0 and ix.clamp(d0 + 1, 5).op == "clamp" and ix.clamp(ix.const(9), 5).value == 5
    assert ix.both(ix.TRUE, ix.lt(d1, 3), ix.TRUE) == ix.lt(d1, 3) and ix.both(ix.lt(d1, 3), ix.FALSE) == ix.FALSE
    assert ix.wrapped(d0, 6) is d0  # no negative position: no wrap


def test_printing_takes_the_index_type_and_floors_negative_operands():
    t = ix.sym("t", -5, 5)
    assert ix.c(ix.clamp(d0 + 1, 5), "int") == "gpuad_clamp<int>((d0 + 1), 5)"
    assert ix.c(t // 3, "int") == "gpuad_floordiv<int>(t, 3)" and ix.c(d0 // 3) == "(d0 / 3)"
    assert ix.c(t % 3) == "gpuad_floormod<long long>(t, 3)"
    assert ix.c(d0 * 2 ** 40) == "(d0 * 1099511627776LL)"
    with pytest.raises(ValueError, match="positive constants"):
        d0 // 0


def _random_expression(rng, depth):
    """A random expression over the symbols a (in -20..20) and b (in 0..30)."""
    if depth == 0 or rng.random() < 0.2:
        return rng.choice([ix.sym("a", -20, 20), ix.sym("b", 0, 30), ix.const(rng.randint(-9, 9))])
    x, y = _random_expression(rng, depth - 1), _random_expression(rng, depth - 1)
    k = rng.choice(["add", "sub", "mul", "div", "mod", "select", "clamp", "min"])
    n = rng.randint(1, 7)
    return {"add": lambda: x + y, "sub": lambda: x - y, "mul": lambda: x * rng.randint(-3, 3), "div": lambda: x // n,
            "mod": lambda: x % n, "select": lambda: ix.select(ix.both(ix.lt(x, n), ix.ge(y, -n)), x, y),
            "clamp": lambda: ix.clamp(x, n), "min": lambda: ix.select(ix.le(x, y), x, y)}[k]()


@pytest.mark.parametrize("index", ["long long", "int"])
def test_printed_c_computes_what_numpy_evaluates(tmp_path, index):
    """Random expressions printed to C and run by g++ agree with their NumPy evaluation (floor
    division and modulo as Python's) at every point of the symbols' ranges."""
    if shutil.which("g++") is None:
        pytest.skip("no g++")
    rng = random.Random(0)
    exprs = [_random_expression(rng, 4) for _ in range(60)]
    a, b = np.meshgrid(np.arange(-20, 21), np.arange(0, 31), indexing="ij")
    env = {"a": a.ravel(), "b": b.ravel()}
    source = ('#include <cmath>\n#include <cstdio>\n#define __device__\n#define __forceinline__ inline\n'
              + open(ix.__file__.replace("gpuad/compiler/index.py", "kernels/gpuad_math.cuh")).read()
              + f"\nint main() {{ for ({index} a = -20; a <= 20; ++a) for ({index} b = 0; b <= 30; ++b) {{\n"
              + "".join(f'printf("%lld ", (long long)({ix.c(e, index)}));\n' for e in exprs) + 'printf("\\n"); } }\n')
    (tmp_path / "e.cpp").write_text(source)
    subprocess.run(["g++", "-O1", "-o", str(tmp_path / "e"), str(tmp_path / "e.cpp")], check=True)
    got = np.array([line.split() for line in subprocess.run([str(tmp_path / "e")], capture_output=True, text=True,
                                                            check=True).stdout.splitlines()], dtype=np.int64)
    for k, e in enumerate(exprs):
        np.testing.assert_array_equal(got[:, k], np.broadcast_to(ix.evaluate(e, env), got[:, k].shape), err_msg=ix.c(e))


# ---------------------------------------------------------------- index maps against the impls
def _against_impl(prim, args, data, **params):
    """The index map evaluated at every output element equals the impl run on element ids: each
    data argument k's elements numbered from an offset, the others (positions) as given."""
    probe, start, spans = list(args), 1, {}
    for k in data:
        size = int(np.prod(args[k].shape))
        probe[k], spans[k] = np.arange(start, start + size).reshape(args[k].shape), start
        start += size
    found = patterns.run(prim, probe, params)
    shapes = [ShapeDtypeStruct(a.shape, a.dtype) if k in data else a for k, a in enumerate(args)]
    which, flat = patterns.index_map(prim, shapes, found.shape, **params)
    expected = np.where(which < 0, 0, flat + np.array([spans.get(k, 0) for k in range(len(args))] + [0])[which])
    np.testing.assert_array_equal(expected, found)


shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)


@settings(max_examples=60, deadline=None)
@given(shapes, st.data())
def test_reshape_transpose_broadcast_maps(shape, data):
    x = np.zeros(shape)
    size = x.size
    dims = []
    while size > 1:
        d = data.draw(st.sampled_from([f for f in range(2, size + 1) if size % f == 0]))
        dims.append(d)
        size //= d
    out = tuple(data.draw(st.permutations(dims + [1] * data.draw(st.integers(0, 2)))))
    _against_impl(reshape, [x], [0], shape=out)
    _against_impl(transpose, [x], [0], perm=tuple(data.draw(st.permutations(range(len(shape))))))
    small = np.zeros(tuple(data.draw(st.sampled_from([1, d])) for d in shape))
    _against_impl(broadcast_to, [small], [0], shape=(2,) + shape)


def _item(data, n, k):
    kind = data.draw(st.sampled_from(["int", "slice", "array"]))
    if kind == "int":
        return data.draw(st.integers(-n, n - 1))
    if kind == "slice":
        bound = st.none() | st.integers(-n - 1, n + 1)
        return slice(data.draw(bound), data.draw(bound), data.draw(st.sampled_from([None, 1, 2, 3, -1, -2])))
    size = data.draw(st.sampled_from([1, k]))  # index arrays broadcast together
    return np.array(data.draw(st.lists(st.integers(-n, n - 1), min_size=size, max_size=size)))


@settings(max_examples=100, deadline=None)
@given(shapes, st.data())
def test_getitem_and_scatter_maps(shape, data):
    """x[idx] at ints, slices (negative steps too), new axes and index arrays; and scatter (its
    adjoint) at the basic items, each output element taken from v or zero."""
    idx, k = [], data.draw(st.integers(1, 3))
    for n in shape:
        idx += [None] * data.draw(st.integers(0, 1)) + [_item(data, n, k)]  # a new axis before it, or not
    idx = tuple(idx)
    x = np.zeros(shape)
    _against_impl(getitem, [x], [0], idx=idx)
    basic = tuple(i if not isinstance(i, np.ndarray) else slice(None) for i in idx)
    v = np.zeros(x[basic].shape)
    _against_impl(scatter, [v], [0], shape=shape, idx=basic)


@settings(max_examples=60, deadline=None)
@given(shapes, st.data())
def test_take_along_and_concatenate_maps(shape, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    n = shape[axis]
    idx_shape = tuple(data.draw(st.sampled_from([1, d])) if k != axis else data.draw(st.integers(1, 4))
                      for k, d in enumerate(shape))
    positions = np.array(data.draw(st.lists(st.integers(-n, n - 1), min_size=int(np.prod(idx_shape)),
                                            max_size=int(np.prod(idx_shape))))).reshape(idx_shape)
    _against_impl(take_along, [np.zeros(shape), positions], [0], axis=axis)
    pieces = [np.zeros(shape[:axis] + (data.draw(st.integers(0, 3)),) + shape[axis + 1:]) for _ in range(3)]
    _against_impl(concatenate, pieces, [0, 1, 2], axis=axis)
