"""NVRTC builds a program's kernels together (gpuad/kernels/nvrtc.py), without a GPU: the same
kernels as one NVRTC program per kernel, a failing kernel costing no other its CUBIN, each
program's CUBIN kept in the kernel cache and found there again; and the CuPy backend's launchers
(gpuad/kernels/launch.py) made from them up to the first device call."""
import os

import numpy as np
import pytest

import gpuad
import gpuad.numpy as gnp
from gpuad.kernels import index32, nvrtc, programs
from gpuad.kernels.cubin import measure, sections


@pytest.fixture(scope="module")
def loaded():
    try:
        return nvrtc.version()
    except Exception as e:
        pytest.skip(f"NVRTC cannot be loaded: {e}")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUAD_CACHE_DIR", str(tmp_path))
    return tmp_path / "cuda"


def _chain(x):
    for _ in range(6):
        x = gnp.sin(x) * 0.9 + gnp.cos(x[::-1])
    return x


def _program_kernels():
    """The region kernels of a program with regions of several shapes (a jacfwd and its primal)."""
    f = gpuad.jacfwd(lambda x: gnp.concatenate([_chain(x), gnp.tanh(x[:3]) * 2.0]))
    kernels = programs.region_kernels(f, np.linspace(-1, 1, 8), target="cuda")
    assert len({k.name for k in kernels}) >= 2
    return kernels


def _kernels_in(cubin):
    return sorted(name.removeprefix(".text.") for name in sections(cubin) if name.startswith(".text.gpuad_"))


def test_a_programs_kernels_compile_together_as_they_compile_alone(loaded, cache_dir):
    """One NVRTC program holds every kernel of the compiled program (each distinct one once), and
    each kernel in it is the machine code it is alone: same instructions, same registers."""
    sources = [index32.first(k) for k in _program_kernels()]
    built = nvrtc.build(sources)
    names = sorted({name for _, name in sources})
    assert sorted(built) == names
    cubins = set(built.values())
    assert len(cubins) == 1  # a short program: one part
    together = (cache_dir / next(iter(cubins)).name).read_bytes()
    assert _kernels_in(together) == names
    for text, name in dict((n, (t, n)) for t, n in sources).values():
        alone = nvrtc.compile_ptx(text, name, nvrtc.ARCH)
        assert _kernels_in(alone) == [name]
        assert measure(together, name) == measure(alone, name)


def test_a_long_program_is_compiled_in_parts(loaded, cache_dir, monkeypatch):
    """Past SPLIT_FROM characters of kernels, parts of about equal length (at most THREADS), each
    kernel in exactly one."""
    sources = [index32.first(k) for k in _program_kernels()]
    monkeypatch.setattr(nvrtc, "SPLIT_FROM", 1)
    monkeypatch.setattr(nvrtc, "THREADS", 2)
    built = nvrtc.build(sources)
    parts = sorted(set(built.values()))
    assert len(parts) == 2
    held = [_kernels_in(p.read_bytes()) for p in parts]
    assert sorted(sum(held, [])) == sorted(built)
    assert all(name in held[parts.index(path)] for name, path in built.items())


def _broken(text, name):
    """The kernel with an error NVRTC reports in its body (its prelude unchanged)."""
    at = text.index(f'extern "C" __global__ void {name}(')
    kernel = text[at:].replace(f"{name}(", f"{name}_broken(", 1).replace("{\n", "{ undeclared_name = 1;\n", 1)
    return text[:at] + kernel, name + "_broken"


def _break(kernel):
    """A region's Kernel broken in both index widths (its 32-bit source renders from _text)."""
    name = kernel.name
    kernel.text, kernel.name = _broken(kernel.text, name)
    kernel._text = _broken(kernel._text, name)[0]


def test_a_kernel_nvrtc_refuses_costs_no_other_kernel(loaded, cache_dir):
    sources = [index32.first(k) for k in _program_kernels()]
    at = sources[0][0].index('extern "C"')
    broken = _broken(*sources[0])
    assert broken[0][:at] == sources[0][0][:at]  # the same prelude: the same NVRTC program
    built = nvrtc.build([broken] + sources)
    assert isinstance(built[broken[1]], nvrtc.CompileError) and "undeclared_name" in str(built[broken[1]])
    for _, name in sources:
        assert name in _kernels_in(built[name].read_bytes())
    # compile_cuda (lower(...).compile(), --check) reports it against its kernel alone
    kernels = _program_kernels()
    _break(kernels[0])
    errors = [e for _, e in nvrtc.compile_cuda(kernels)]
    assert isinstance(errors[0], nvrtc.CompileError)
    assert all(e is None for k, e in zip(kernels[1:], errors[1:]) if k.name != kernels[0].name)


def test_the_second_build_finds_the_cubins_in_the_cache(loaded, cache_dir, monkeypatch):
    sources = [index32.first(k) for k in _program_kernels()]
    first = nvrtc.build(sources)
    path = next(iter(first.values()))
    assert path.parent == cache_dir and oct(os.stat(cache_dir).st_mode & 0o777) == "0o700"
    compiled = []
    real = nvrtc.compile_ptx
    monkeypatch.setattr(nvrtc, "compile_ptx", lambda *a: compiled.append(a[1]) or real(*a))
    assert nvrtc.build(sources) == first and compiled == []
    assert nvrtc.build(sources, arch="sm_80") != first and len(compiled) == 1  # the architecture is in the key
    path.write_bytes(path.read_bytes()[:100])  # damaged: compiled again, not loaded
    assert nvrtc.build(sources) == first and len(compiled) == 2
    assert measure(path.read_bytes(), sources[0][1])[0] > 0


def test_lowering_for_cupy_compiles_into_the_cache(loaded, cache_dir):
    x = np.linspace(-1, 1, 8)
    gpuad.jit(gpuad.jacfwd(_chain)).lower(x, backend="cupy").compile()
    assert len(list(cache_dir.glob("gpuad_*.cubin"))) == 1


def test_the_architecture_for_a_gpu_is_the_newest_nvrtc_supports_up_to_it(loaded):
    from cupy_backends.cuda.libs import nvrtc as lib
    supported = lib.getSupportedArchs()
    assert nvrtc.arch_for(90) == "sm_90" and 90 in supported
    assert nvrtc.arch_for(10_000) == f"sm_{max(supported)}"


class _Module:
    """cupy.RawModule standing in for the device: which CUBIN each function came from."""
    loaded = []

    def __init__(self, path):
        self.path = path
        _Module.loaded.append(path)

    def get_function(self, name):
        assert name in _kernels_in(open(self.path, "rb").read())
        return (self.path, name)


def test_cupy_launchers_build_a_programs_regions_together(loaded, cache_dir, monkeypatch):
    """launch.region_launchers: one module for the program's regions, each kernel loaded once per
    process; where NVRTC refuses one, it comes back as its error and the others as launchers (each
    then compiled alone: a module each)."""
    launch = pytest.importorskip("gpuad.kernels.launch")
    monkeypatch.setattr(launch, "_arch", lambda: nvrtc.ARCH)
    monkeypatch.setattr(launch.cupy, "RawModule", lambda path: _Module(path))
    _Module.loaded = []
    kernels = _program_kernels()
    for broken in (False, True):
        monkeypatch.setattr(launch, "_built", {})
        if broken:
            _break(kernels[0])
        _Module.loaded = []
        made = launch.region_launchers(kernels)
        good = {index32.first(k)[1] for k in kernels[broken:]}
        assert isinstance(made[0], nvrtc.CompileError) == broken
        assert all(callable(m) for k, m in zip(kernels, made) if index32.first(k)[1] in good)
        assert len(_Module.loaded) == (len(good) if broken else 1)
        launch.region_launchers(kernels)
        assert len(_Module.loaded) == (len(good) if broken else 1)  # built in this process: no build, no load


def test_cupy_per_op_kernels_are_built_once_in_each_index_width(loaded, cache_dir, monkeypatch):
    launch = pytest.importorskip("gpuad.kernels.launch")
    from gpuad.ops.table import ROWS
    monkeypatch.setattr(launch, "_arch", lambda: nvrtc.ARCH)
    monkeypatch.setattr(launch.cupy, "RawModule", lambda path: _Module(path))
    monkeypatch.setattr(launch, "_built", {})
    monkeypatch.setattr(launch, "_kernels", {})
    _Module.loaded = []
    made = [launch.kernel(ROWS["sin"], "jvp", "t", np.dtype(np.float64), index) for index in ("int64", "int32")]
    assert [name for _, name in made] == ["gpuad_jvp_sin_t_f64", "gpuad_jvp_sin_t_f64_i32"]
    assert launch.kernel(ROWS["sin"], "jvp", "t", np.dtype(np.float64), "int32") is made[1]
    assert len(_Module.loaded) == 2


def test_a_program_whose_cubins_are_cached_is_ready_without_nvrtc(loaded, cache_dir, monkeypatch):
    """launch.ready (the replay runs fused from its first call where it holds): built in this
    process, or every NVRTC program the build would compile found in the kernel cache."""
    launch = pytest.importorskip("gpuad.kernels.launch")
    monkeypatch.setattr(launch, "_arch", lambda: nvrtc.ARCH)
    monkeypatch.setattr(launch.cupy, "RawModule", lambda path: _Module(path))
    monkeypatch.setattr(launch, "_built", {})
    kernels = _program_kernels()
    assert not launch.ready(kernels)
    launch.region_launchers(kernels)
    assert launch.ready(kernels)
    monkeypatch.setattr(launch, "_built", {})  # a later process
    assert launch.ready(kernels)
    compiled = []
    monkeypatch.setattr(nvrtc, "compile_ptx", lambda *a: compiled.append(a))
    launch.region_launchers(kernels)
    assert compiled == []
    monkeypatch.setattr(launch, "_built", {})
    for cubin in cache_dir.glob("*.cubin"):
        cubin.unlink()
    assert not launch.ready(kernels)


def test_a_loop_kernel_whose_cubin_is_cached_runs_from_the_first_call(loaded, cache_dir, monkeypatch):
    """On CuPy a loop kernel found in the kernel cache is loaded before the first call returns,
    as a program's regions are (launch.ready), not built in the background while that call runs
    the loop from Python; one not found builds in the background."""
    import types

    from gpuad.compiler import loop_kernel
    from gpuad.core import ShapeDtypeStruct
    launch = pytest.importorskip("gpuad.kernels.launch")
    monkeypatch.setattr(launch, "_arch", lambda: nvrtc.ARCH)
    monkeypatch.setattr(launch.cupy, "RawModule", lambda path: _Module(path))
    monkeypatch.setattr(launch, "_built", {})
    monkeypatch.setenv("GPUAD_COMPILE", "async")
    name, fun, args = programs.loops()[2]  # a fori_loop of a traced bound, no constants (no device array)
    (kernel,) = programs.loop_kernels(fun, *args, target="cuda")
    monkeypatch.setattr(loop_kernel.backends, "current", lambda: types.SimpleNamespace(name="cupy"))
    out = ShapeDtypeStruct((4,), np.float64)
    building = loop_kernel.Runner(kernel, out)
    assert building.ready is not None  # not cached: built in the background
    building.ready.result()
    assert building.call is not None
    monkeypatch.setattr(launch, "_built", {})  # a later process, the CUBIN in the cache
    _Module.loaded = []
    compiled = []
    monkeypatch.setattr(nvrtc, "compile_ptx", lambda *a: compiled.append(a))
    cached = loop_kernel.Runner(kernel, out)
    assert cached.ready is None and cached.call is not None
    assert compiled == [] and len(_Module.loaded) == 1
