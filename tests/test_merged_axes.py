"""Region kernels loop over their iteration space with the neighbouring axes every value treats
alike merged (gpuad/compiler/merge.py): the compiled values equal eager and the unfused replay
for every input layout (contiguous, transposed, sliced, reversed, broadcast views, unit axes);
the merged body reads every layout its stride checks accept, in both index widths, and those
checks accept exactly the layouts NumPy reshapes without a copy; the merged kernels compute
fewer digits; their CUDA sources compile with NVRTC."""
import ctypes
import re

import numpy as np
import pytest
from helpers import assert_close, to_np

import gpuad
import gpuad.numpy as gnp
from gpuad.compiler import codegen, host
from gpuad.compiler import merge as merging
from gpuad.compiler.fusion import Region, fuse
from gpuad.compiler.ir import Lit
from gpuad.compiler.replay import Replay

_SHAPE = (40, 16, 3)


def _chain(x, y):
    return gnp.sin(x) * y + gnp.exp(0.5 * x)


def _broadcast(x, b):  # b broadcast along some axes: the pairs it reads at both digits or neither merge
    return gnp.tanh(x) * b - x


def _unit(x, y):  # a unit axis inside the iteration space
    return gnp.cos(x) * y + x


def _transposed(x, y):  # a transpose inside the region: the pair it swaps reads apart
    return gnp.sin(x) + gnp.transpose(y, (0, 2, 1))


def _summed(x, y):  # a sum over the last axis: the leading pair merges in its reads
    return gnp.sum(gnp.sin(x) * y, axis=-1) + x[..., 0]


# (function, shapes of its arguments, the merged iteration space of its region)
_CASES = {
    "chain": (_chain, [_SHAPE, _SHAPE], (1920,)),
    "broadcast": (_broadcast, [_SHAPE, (40, 16, 1)], (640, 3)),
    # the trailing pair merges in every read, but a loop of 40 x 48 elements takes more digits
    # per element than one of 40 x 16 unrolling 3
    "broadcast row": (_broadcast, [_SHAPE, (16, 3)], _SHAPE),
    "unit axis": (_unit, [(40, 1, 16), (40, 1, 16)], (640,)),
    # an input read along the leading axis alone: the axes either side of the unit one stay apart
    "unit axis, broadcast": (_broadcast, [(40, 1, 16), (40, 1, 1)], (40, 1, 16)),
    "transposed": (_transposed, [(40, 16, 3), (40, 3, 16)], (40, 16, 3)),
    "summed": (_summed, [_SHAPE, _SHAPE], (640,)),
}


def _views(shape, rng, xp=np):
    """Arrays of `shape` in several layouts: C-contiguous, transposed, sliced along each axis,
    reversed, broadcast (each a view `xp` made, not a copy)."""
    def base(s):
        return xp.asarray(rng.uniform(-1, 1, s))
    out = {"contiguous": base(shape), "transposed": base(shape[::-1]).T,
           "reversed": base(shape)[(slice(None, None, -1),) * len(shape)],
           "every second": base((shape[0], 2 * shape[1]) + shape[2:])[:, ::2]}
    out["leading slice"] = base((shape[0], shape[1] + 5) + shape[2:])[:, :shape[1]]
    out["broadcast"] = xp.broadcast_to(base((1,) + shape[1:]), shape)
    if len(shape) == 3:
        out["last slice"] = base(shape[:2] + (shape[2] + 2,))[..., 1:-1]
    return out


def _region(fun, *args):
    program = gpuad.jit(fun).lower(*args).program
    regions = [n for n in fuse(program, "numpy") if isinstance(n, Region)]
    assert len(regions) == 1, regions
    return program, regions[0]


@pytest.mark.parametrize("case", list(_CASES))
def test_merged_kernels_equal_eager_and_unfused_for_every_layout(case):
    fun, shapes, merged = _CASES[case]
    rng = np.random.default_rng(0)
    program, region = _region(fun, *[np.ones(s) for s in shapes])
    assert codegen.render(region, "cuda").shape == merged
    compiled = gpuad.jit(fun)
    for name, x in _views(shapes[0], rng).items():
        args = [gnp.asarray(x)] + [gnp.asarray(rng.uniform(-1, 1, s)) for s in shapes[1:]]
        eager = fun(*args)
        assert_close(compiled(*args), eager, rtol=1e-14, atol=1e-14, what=name)
        unfused = Replay(program, fusion=False).run(*args)[0]
        assert_close(Replay(program, fusion=True).run(*args)[0], unfused, rtol=1e-14, atol=1e-14, what=name)


class _Source:
    """A function's C++ text to build for the host (host.library reads name and text)."""

    def __init__(self, name, text):
        self.name, self.text = name, text


def _merged_strided(region, index):
    """The merged kernel of a region that reads runtime strides (the CUDA kernel's body, built for
    the host) with indices of C type `index`: (function, the Variant)."""
    variant = codegen._Variant(region, "host", codegen.merged_groups(region, "host")[0], None)
    kernel = codegen.Kernel(variant.name, variant.fill(variant.name), variant.arrays, variant.axes, region.outs,
                            variant.shape, variant.size, 0)
    text, name = (kernel.text, kernel.name) if index == "long long" else kernel.source(index)
    return getattr(host.library([_Source(name, text)]), name), variant


def _call(fn, variant, arrays, index):
    c_index = ctypes.c_longlong if index == "long long" else ctypes.c_int
    args = []
    for a, axes in zip(arrays, variant.axes):
        args.append(ctypes.c_void_p(a.ctypes.data))
        args += [c_index(a.strides[k] // a.itemsize) for k in axes]
    out = np.empty(variant.region.outs[0].shape)
    fn(*args, ctypes.c_void_p(out.ctypes.data), ctypes.c_longlong(variant.size))
    return out


@pytest.mark.parametrize("index", ["long long", "int"])
@pytest.mark.parametrize("case", ["chain", "broadcast", "unit axis", "summed"])
def test_the_merged_body_reads_the_layouts_its_checks_accept(case, index):
    """Each layout: where the kernel's stride checks hold, the merged body (one stride per run of
    axes read as one) gives eager's values, in both index widths; the checks hold exactly where
    NumPy views the input in the merged shape without a copy."""
    fun, shapes, merged = _CASES[case]
    rng = np.random.default_rng(1)
    _, region = _region(fun, *[np.ones(s) for s in shapes])
    fn, variant = _merged_strided(region, index)
    assert variant.shape == merged and variant.checks
    accepted = 0
    for name, x in _views(shapes[0], rng).items():
        others = [rng.uniform(-1, 1, s) for s in shapes[1:]]
        arrays = [x] + others
        holds = True
        for j, p, q, n in variant.checks:  # each as NumPy sees it: axes p..q of input j viewed as one
            one = merging.holds(arrays[j].strides, [(p, q, n)])
            assert one == _views_as_one(arrays[j], p, q), (name, j, p, q)
            holds = holds and one
        if holds:
            accepted += 1
            assert_close(_call(fn, variant, arrays, index), to_np(fun(*map(gnp.asarray, arrays))), rtol=1e-14,
                         atol=1e-14, what=name)
    assert accepted >= 2  # contiguous and reversed at least


def _views_as_one(a, p, q):
    """Whether NumPy reshapes a with its axes p..q as one without a copy."""
    view = a.view()
    try:
        view.shape = a.shape[:p] + (-1,) + a.shape[q + 1:]
    except AttributeError:
        return False
    return True


def _digit_operations(text):
    """Divisions and modulos on the index lines of a kernel: its digits and its loads' offsets."""
    lines = [line for line in text.split("\n") if re.search(r"const (long long|int) d\d+ =|\bin\d+\[", line)]
    return sum(len(re.findall(r" [/%] ", line)) for line in lines)


@pytest.mark.parametrize("case", list(_CASES))
def test_merged_kernels_compute_fewer_digits(case):
    fun, shapes, merged = _CASES[case]
    _, region = _region(fun, *[np.ones(s) for s in shapes])
    for target in ("cuda", "host"):
        kernel, apart = codegen.render(region, target), codegen.render(region, target, merge=False)
        if merged == region.shape:
            assert kernel.text == apart.text
            continue
        assert kernel.shape == merged
        if target == "host":  # its strided build keeps the axes apart; the dense one loops over fewer axes
            assert _digit_operations(kernel.text) <= _digit_operations(apart.text)
            assert len(kernel.shape) - kernel.inner < len(apart.shape) - apart.inner
            continue
        assert _digit_operations(kernel.text) < _digit_operations(apart.text)
        assert kernel.unmerged().text == apart.text  # what a call its checks refuse runs


@pytest.mark.parametrize("case", list(_CASES))
def test_merged_cuda_sources_compile_with_nvrtc(case):
    """Both index widths of the merged kernel, and the unmerged variant."""
    nvrtc = pytest.importorskip("gpuad.kernels.nvrtc")
    try:
        nvrtc.version()
    except Exception as e:  # CI installs NVRTC; elsewhere it may not load
        pytest.skip(f"NVRTC does not load: {e}")
    fun, shapes, _ = _CASES[case]
    kernel = codegen.render(_region(fun, *[np.ones(s) for s in shapes])[1], "cuda")
    variants = [(kernel.text, kernel.name), kernel.source("int")]
    if kernel.unmerged is not None:
        apart = kernel.unmerged()
        variants += [(apart.text, apart.name), apart.source("int")]
    for text, name in variants:
        nvrtc.compile_ptx(text, name)


def test_values_made_by_a_region_are_read_merged_without_checks():
    """A region reading another region's output (a fresh C-contiguous buffer) checks no stride of
    it; the program's own input is checked."""
    x = np.ones(_SHAPE)

    def f(x):
        y = gnp.sin(x) * 2.0
        return gnp.exp(y) + gnp.sum(y, axis=(0, 1, 2)), y
    program = gpuad.jit(f).lower(x).program
    regions = [n for n in fuse(program, "cupy") if isinstance(n, Region)]
    kernels = [codegen.render(r, "cuda") for r in regions]
    made = [(k, r) for k, r in zip(kernels, regions) if any(a in r.contiguous for a in r.ins)]
    assert made
    for k, r in made:
        assert k.shape == (1920,)
        assert not [c for c in k.checks if r.ins[c[0]] in r.contiguous]


@pytest.mark.parametrize("order", ["C", "F"])
def test_a_constant_is_read_merged_only_where_its_strides_allow(order):
    """A captured constant's strides are known when the kernel renders: read with one stride in a
    C-contiguous layout, with a stride per axis in another (the plan lays constants out in C
    order: the F one is put in place here), and checked at no call."""
    rng = np.random.default_rng(2)
    c = rng.uniform(size=_SHAPE)

    def f(x):
        return gnp.sin(x) * c
    x = rng.uniform(size=_SHAPE)
    _, region = _region(f, x)
    j = next(j for j, a in enumerate(region.ins) if isinstance(a, Lit))
    region.ins[j].val = np.asarray(region.ins[j].val, order=order)
    kernel = codegen.render(region, "cuda")
    assert kernel.shape == (1920,) and not [ch for ch in kernel.checks if ch[0] == j]
    assert kernel.axes[j] == ([2] if order == "C" else [0, 1, 2])
    fn, variant = _merged_strided(region, "long long")
    arrays = [x if k != j else region.ins[j].val for k in range(2)]
    assert_close(_call(fn, variant, arrays, "long long"), np.sin(x) * c, rtol=1e-14)


@pytest.mark.gpu
@pytest.mark.parametrize("case", ["chain", "broadcast", "unit axis", "summed"])
def test_on_a_gpu_each_layout_runs_the_merged_kernel_or_the_unmerged_one(case, cupy_backend):
    """CuPy views of every layout: the merged kernel where its checks hold, else the unmerged
    variant (built then), each giving the unfused replay's values."""
    cupy = pytest.importorskip("cupy")
    fun, shapes, _ = _CASES[case]
    rng = np.random.default_rng(3)
    others = [cupy.asarray(rng.uniform(-1, 1, s)) for s in shapes[1:]]
    program = gpuad.jit(fun).lower(cupy.ones(shapes[0]), *others).program
    replay = Replay(program, fusion=True)
    assert replay.regions >= 1
    unfused = Replay(program, fusion=False)
    for name, x in _views(shapes[0], rng, cupy).items():
        assert_close(replay.run(x, *others)[0], unfused.run(x, *others)[0], rtol=1e-13, atol=1e-13, what=name)


class _DeviceArray:
    """A NumPy array as the CUDA launcher sees a CuPy one (data.ptr, strides, itemsize, shape)."""

    def __init__(self, a):
        self.a, self.shape, self.strides, self.itemsize = a, a.shape, a.strides, a.itemsize
        self.data = type("Pointer", (), {"ptr": a.ctypes.data})()


class _Raw:
    """A compiled kernel standing in for cupy.RawKernel: records the stride arguments of its launches."""

    def __init__(self, name):
        self.name, self.calls = name, []

    def __call__(self, grid, block, args):
        self.calls.append([int(a) for a in args if not isinstance(a, (_DeviceArray, np.ndarray))])


def test_the_cuda_launcher_runs_the_merged_kernel_where_the_strides_allow_else_the_unmerged_one(monkeypatch):
    """The launcher (kernels/launch.py) checks the strides of the inputs of unknown layout: a
    C-contiguous or reversed input gets the merged kernel and one stride per run of axes; a
    transposed one the unmerged kernel (built at that call) and a stride per axis. CuPy stood in
    (no GPU here): the arguments each kernel is launched with."""
    launch = pytest.importorskip("gpuad.kernels.launch")
    _, region = _region(_chain, np.ones(_SHAPE), np.ones(_SHAPE))
    kernel = codegen.render(region, "cuda")
    built = {}

    def compiled(text, name):
        return built.setdefault(name, _Raw(name))
    monkeypatch.setattr(launch, "compiled", compiled)
    monkeypatch.setattr(launch.cupy, "empty", np.empty)
    run = launch._launcher(kernel, compiled(*launch.index32.first(kernel)))
    rng = np.random.default_rng(4)
    y = _DeviceArray(rng.uniform(size=_SHAPE))
    views = _views(_SHAPE, rng)
    for name in ("contiguous", "reversed"):
        run(_DeviceArray(views[name]), y)
    merged = built[launch.index32.first(kernel)[1]]
    assert merged.calls == [[1, 1, 1920], [-1, 1, 1920]]  # each input's last stride, and the elements
    assert len(built) == 1
    run(_DeviceArray(views["transposed"]), y)
    (name, apart), = [(n, k) for n, k in built.items() if k is not merged]
    assert apart.calls == [[1, 40, 640, 48, 3, 1, 640]]  # three strides each, the unmerged loop's elements
    assert name == launch.index32.first(kernel.unmerged())[1]
