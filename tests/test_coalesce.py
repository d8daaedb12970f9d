"""The order in which a CUDA region kernel's threads walk the loop (gpuad/compiler/coalesce.py):
in the tall and wide Jacobians' regions, which read a matrix transposed, neighbouring threads
read neighbouring addresses of the largest operand (they were a row, 2 KB, apart), each output
element is still written once, and the kernel computes what the C-order walk computes."""
import re

import numpy as np
import pytest
from host_kernels import run_region_on_host

import gpuad
import gpuad.numpy as gnp
from gpuad.compiler import coalesce
from gpuad.compiler.ir import Var
from gpuad.kernels import index32, programs

_RNG = np.random.default_rng(5)
_B = {"tall": _RNG.normal(size=(300, 24)), "wide": _RNG.normal(size=(24, 300))}


def _kernels(key, transform):
    b = _B[key]
    return programs.region_kernels(getattr(gpuad, transform)(lambda x: gnp.sin(b @ gnp.tanh(x))),
                                   np.linspace(-1, 1, b.shape[1]), target="cuda")


def _index_map(kernel):
    """(digits, output position) of each loop element i, evaluated from the kernel's own lines."""
    lines = dict(re.findall(r"const long long (d\d+|at) = ([^;]+);", kernel.text))
    def value(expr, env):
        return eval(re.sub(r"(\d+)LL", r"\1", expr).replace("/", "//"), {}, env)
    digits, at = [], []
    for i in range(kernel.size):
        env = {"i": i}
        env.update({d: value(e, env) for d, e in lines.items() if d != "at"})
        digits.append([env[f"d{k}"] for k in range(len(kernel.shape))])
        at.append(value(lines.get("at", "i"), env))
    return np.array(digits), np.array(at)


@pytest.mark.parametrize("key", ["tall", "wide"])
@pytest.mark.parametrize("transform", ["jacfwd", "jacrev"])
def test_neighbouring_threads_read_neighbouring_addresses_of_the_largest_operand(key, transform):
    for k in _kernels(key, transform):
        if len(k.shape) != 2 or 1 in k.shape:
            continue
        digits, at = _index_map(k)
        assert sorted(at) == list(range(k.size))  # every output element once
        np.testing.assert_array_equal(digits, np.array(np.unravel_index(at, k.shape)).T)
        j = max(range(len(k.arrays)), key=lambda j: np.prod(k.arrays[j].shape))
        reads = re.search(rf"in{j}\[([^\]]+)\]", k.text).group(1)  # its offset over the digits
        strides = {f"s{j}_{a}": s for a, s in enumerate(np.array(k.arrays[j].val.strides) // 8)} \
            if not isinstance(k.arrays[j], Var) else \
            {f"s{j}_{a}": int(np.prod(k.arrays[j].shape[a + 1:])) for a in range(len(k.arrays[j].shape))}
        address = [eval(reads, {}, dict(strides, **{f"d{m}": int(v) for m, v in enumerate(row)})) for row in digits]
        steps = np.diff(address)
        assert np.mean(steps == 1) > 0.9, f"neighbouring threads read {np.median(steps) * 8:.0f} bytes apart"


@pytest.mark.parametrize("key", ["tall", "wide"])
def test_the_reordered_walk_computes_what_the_c_order_walk_does(key, tmp_path, monkeypatch):
    kernels = {k.name: k for k in _kernels(key, "jacfwd")}
    monkeypatch.setattr(coalesce, "fastest", lambda loads, arrays, outer, size: len(outer) - 1)
    plain = _kernels(key, "jacfwd")
    assert set(kernels) != {k.name for k in plain}  # some region's walk was reordered
    for walked, c_order in zip(kernels.values(), plain):
        arrays = [np.asarray(a.val) if not isinstance(a, Var) else _RNG.normal(size=a.shape) for a in walked.arrays]
        got = run_region_on_host(tmp_path, walked.text, walked.name, walked, arrays)
        want = run_region_on_host(tmp_path, c_order.text, c_order.name, c_order, arrays)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


def test_a_walk_of_a_region_unrolling_inner_axes_writes_each_element_where_it_belongs(tmp_path):
    """A region unrolling its trailing axis (3 elements) that reads a transposed operand as large
    as its output walks the operand's last axis fastest; each loop element's unrolled outputs are
    written at the element's C-order position (they were written at i, the thread's)."""
    x = _RNG.normal(size=(3, 50, 60))
    [k] = programs.region_kernels(lambda x: gnp.sin(gnp.transpose(x)) * 2.0, x, target="cuda")
    assert k.inner == 1 and "const long long at = " in k.text  # walked other than in C order
    for text, name, index in ((k.text, k.name, np.int64), (*index32.first(k), np.int32)):
        [got] = run_region_on_host(tmp_path, text, name, k, [x], index)
        np.testing.assert_allclose(got, np.sin(x.T) * 2.0, rtol=1e-15)
