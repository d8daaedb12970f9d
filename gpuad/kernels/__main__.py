"""python -m gpuad.kernels --check [--warm]

--check  compile every generated kernel source, float32 and float64, 64- and 32-bit indices, with
         NVRTC to PTX (no GPU needed, in programs of many kernels as the CuPy backend builds them),
         and every fused region kernel of the benchmark problems at --size gpu and of a set of
         float32 and mixed-dtype programs and the loop kernels of loops (gpuad/kernels/programs.py:
         while_loop, fori_loop, scan), for sm_90; print how many
         compiled and exit 1 if any failed.
--warm   compile every per-op kernel for this machine's GPU, filling gpuad's kernel cache ahead
         of the first Jacobian; skipped with a message where no GPU is usable.
"""
import argparse
import sys
import tempfile

from . import programs
from .nvrtc import ARCH, CompileError, build, compile_cuda, version
from .source import INDEX_TYPES, every_kernel, kernel_name, render


def check():
    """Compile every kernel source, both index variants, with NVRTC; True when all compiled."""
    try:
        major, minor = version()
    except Exception as e:
        print(f"--check: NVRTC cannot be loaded ({e}); pip install cupy-cuda13x nvidia-cuda-nvrtc")
        return False
    sources, failed = [], {}
    for k in every_kernel():
        for index in INDEX_TYPES:
            name = kernel_name(*k, index)
            try:
                sources.append((render(*k, index), name))
            except ValueError as e:  # a rule Expr.cuda cannot translate
                failed[name] = e
    total = len(sources) + len(failed)
    with tempfile.TemporaryDirectory(prefix="gpuad-check-") as where:  # compiled, not found in the cache
        built = build(sources, None, where)  # to PTX: half the time of SASS for sm_90, for 1,216 sources
        failed.update((name, e) for name, e in built.items() if isinstance(e, CompileError))
        for name, e in failed.items():
            print(f"FAILED {name}: {e}", file=sys.stderr)
        print(f"--check: NVRTC {major}.{minor} compiled {total - len(failed)} of {total} kernel sources to PTX")
        return check_programs(where) and not failed


def _benchmark_programs():
    """(name, function, args) of the benchmark problems at --size gpu, as gpuad-jit runs them."""
    try:
        from bench import engines, problems
    except ImportError:  # an installed gpuad without the repository's bench/
        print("--check: bench/ not found: the benchmark problems' regions are not compiled")
        return []
    import gpuad.numpy as gnp
    transforms = engines._gpuad("cpu").transforms
    out = []
    for case in problems.CASES:
        f, args = case.setup(gnp, problems.SIZES["gpu"])
        out.append((case.name, transforms[case.transform](f), args))
    return out


def check_programs(where):
    """Compile every fused region kernel of the programs for sm_90, into folder `where`; True when
    all compiled."""
    regions = failed = 0
    for name, fun, args in _benchmark_programs() + programs.programs() + programs.loops():
        try:
            built = compile_cuda(programs.region_kernels(fun, *args, target="cuda") +
                                 programs.loop_kernels(fun, *args, target="cuda"), ARCH, where)
        except Exception as e:  # planning or rendering failed: no kernel to compile
            failed += 1
            print(f"FAILED {name}: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        regions += len(built)
        for kernel, error in built:
            if error is not None:
                failed += 1
                print(f"FAILED {name} {kernel.name}: {error}", file=sys.stderr)
    print(f"--check: compiled {regions - failed} of {regions} region and loop kernels of the benchmark problems, "
          f"float32/mixed programs and loops for {ARCH}")
    return failed == 0


def warm():
    """Compile every kernel on this GPU through CuPy (its on-disk cache keeps them)."""
    from ..backends import cupy_usable
    if not cupy_usable():
        print("--warm: skipped, no usable GPU")
        return
    from .launch import warm as compile_all
    print(f"--warm: compiled {compile_all()} kernels for this GPU into the kernel cache")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m gpuad.kernels", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compile every kernel source with NVRTC")
    parser.add_argument("--warm", action="store_true", help="fill the kernel cache on this GPU")
    args = parser.parse_args(argv)
    if not (args.check or args.warm):
        parser.error("give --check, --warm or both")
    ok = check() if args.check else True
    if args.warm:
        warm()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
