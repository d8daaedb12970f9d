"""The time model fusion keeps a region by (gpuad/compiler/seconds.py): which regions it keeps and
refuses on small programs, per target, from calls, bytes moved and work redone. Decisions, not
timings (bench/losses.py measures those)."""
import numpy as np

import gpuad
import gpuad.numpy as gnp
from gpuad.compiler import seconds
from gpuad.compiler.fusion import Region, fuse
from gpuad.compiler.target import CUPY, NUMPY


def _regions(fun, target, *args):
    program = gpuad.jit(fun).lower(*args).program
    return [[eq.prim.name for eq in n.equations] for n in fuse(program, target) if isinstance(n, Region)]


def test_a_view_and_one_small_computation_run_as_two_calls_on_the_cpu():
    """A reshape and a subtract of 3 elements (a Newton step's last two steps): the kernel's call
    costs more than a view and a ufunc."""
    y = np.ones(3)
    f = lambda x, y: y - x.reshape(3)  # noqa: E731
    assert _regions(f, NUMPY, np.ones((3, 1)), y) == []


def test_three_small_computations_are_one_kernel_on_the_cpu():
    f = lambda x: gnp.exp(x) * 2.0 + x  # noqa: E731
    assert _regions(f, NUMPY, np.ones(3)) == [["exp", "multiply", "add"]]


def test_a_broadcast_column_is_fused_where_numpy_loops_per_row():
    """A (256, 1) column times a (256, 64) matrix: NumPy runs 256 short loops, one kernel none."""
    f = lambda s, g: s[:, None] * g  # noqa: E731
    assert _regions(f, NUMPY, np.ones(256), np.ones((256, 64))) == [["getitem", "multiply"]]


def test_a_broadcast_along_long_rows_saves_too_little_for_a_kernel():
    """The same product with 16,384-element rows: NumPy's loops are long, the bytes the same."""
    f = lambda s, g: s[:, None] * g  # noqa: E731
    assert _regions(f, NUMPY, np.ones(4), np.ones((4, 1 << 14))) == []


def test_a_large_region_keeping_a_value_inside_saves_a_pass():
    f = lambda x: gnp.sin(x) * 2.0  # noqa: E731
    assert _regions(f, NUMPY, np.ones(1 << 20)) == [["sin", "multiply"]]


def test_on_a_gpu_a_view_is_free_and_each_computation_a_launch():
    """On CuPy a view launches nothing: a view and one computation gain nothing from a kernel,
    two computations save a launch whatever their size."""
    assert _regions(lambda x: x.T * 2.0, CUPY, np.ones((64, 32))) == []
    assert _regions(lambda x: x.T * 2.0 + 1.0, CUPY, np.ones((64, 32))) == [["transpose", "multiply", "add"]]


def test_work_a_region_redoes_counts_against_it():
    """The same two members, with the exp evaluated once per element, then 1,000 times per element
    (a value redone for each of many readers): the redone work outweighs the pass it saves."""
    program = gpuad.jit(lambda x: gnp.exp(x) * 2.0).lower(np.ones(4096)).program
    exp, times = program.equations
    out = [times.out]
    assert seconds.worth_a_kernel(program.equations, out, {exp.out: 4096, times.out: 4096}, NUMPY)
    assert not seconds.worth_a_kernel(program.equations, out, {exp.out: 4096 * 1000, times.out: 4096}, NUMPY)
    assert seconds.kernel(program.equations, out, {exp.out: 4096 * 1000}, NUMPY) > \
        seconds.kernel(program.equations, out, {exp.out: 4096}, NUMPY)


def test_transcendentals_of_strided_columns_are_one_kernel():
    """exp and cos of two columns of a (1000, 3) array (batched_vmap_jacfwd's): the same bytes as
    NumPy's two calls, but NumPy's loops over strided columns are scalar where a kernel's are
    vectorised: a region. Two cheap ones of the same bytes over many elements are not."""
    f = lambda x: (gnp.exp(x[:, 2]), gnp.cos(x[:, 0]))  # noqa: E731
    assert _regions(f, NUMPY, np.ones((1000, 3))) == [["getitem", "exp", "getitem", "cos"]]
    g = lambda x, y: (x * 2.0, y - 1.0)  # noqa: E731
    assert _regions(g, NUMPY, np.ones(1 << 17), np.ones(1 << 17)) == []
