#!/usr/bin/env bash
# The GPU check of the CuPy backend: one prepared run on a lent device, evidence first, in under 5
# minutes on an H100 (the steps' limits add up to 295 s; without a GPU every step fails). Each step's output also goes to its own
# file under $OUT (default bench/results/gpu-check), written as it happens, so a run cut short keeps
# what finished. The script carries on after a failing step; its exit status counts failed steps.
# What CI checks already (NVRTC of every per-op and region kernel: python -m gpuad.kernels --check)
# is not repeated here, nor what the CPU rehearsal checks (bench/gpu_smoke.py --backend strict
# --nvrtc: the smoke's checks on strict arrays, NVRTC on every kernel they compile).
#
#     bash bench/gpu_check.sh 2>&1 | tee $OUT/gpu-check.txt      (../shared/gpu/README.md)
cd "$(dirname "$0")/.." || exit 1
export PYTHONUNBUFFERED=1 GPUAD_REQUIRE_GPU=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PYTHON=${PYTHON:-python3}
OUT=${OUT:-bench/results/gpu-check}
mkdir -p "$OUT"
failed=0

step() {  # step SECONDS FILE TITLE COMMAND...
    local limit=$1 file=$2 title=$3 start=$SECONDS rc
    shift 3
    echo
    echo "=== $title (limit $limit s, output also in $OUT/$file)"
    # pytest skips the tests not started 10 s before the limit, so it ends by itself and lists its failures
    GPUAD_TEST_DEADLINE=$(( $(date +%s) + limit - 10 )) timeout -k 5 "$limit" "$@" 2>&1 | tee "$OUT/$file"
    rc=${PIPESTATUS[0]}
    echo "=== $title: exit $rc after $((SECONDS - start)) s"
    [ "$rc" -eq 0 ] || failed=$((failed + 1))
}

step 15 versions.txt "versions" "$PYTHON" -c '
import subprocess, sys
try:
    print(subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout.strip() or "nvidia-smi: no output")
except OSError as e:
    print("nvidia-smi:", e)
print("python", sys.version.split()[0])
for name in ("numpy", "scipy", "cupy", "jax", "torch"):
    try:
        print(name, __import__(name).__version__)
    except Exception as e:
        print(name, "not importable:", e)
try:
    import cupy
    from cupy_backends.cuda.libs import nvrtc
    print("NVRTC", nvrtc.getVersion(), "CUDA runtime", cupy.cuda.runtime.runtimeGetVersion(),
          "devices", cupy.cuda.runtime.getDeviceCount())
except Exception as e:
    print("CuPy device query failed:", e)
'
# each check in a process of its own after a failure (a CUDA error spoils the context) or one past 30 s
step 90 smoke.txt "smoke: one PASS/FAIL line per check" "$PYTHON" bench/gpu_smoke.py --backend cupy --check-limit 30
# gpuad (compiled and eager) against JAX-jit and torch.func; the JSON is rewritten as each case finishes.
step 70 bench.txt "benchmarks at --size gpu" "$PYTHON" -m bench --size gpu --backend cupy \
    --engines gpuad-jit,jax-jit,torch,gpuad --budget 0.3 --json "$OUT/bench-gpu.json"
step 45 test-gpu.txt "GPU tests (the per-op kernels last)" env GPUAD_BACKEND=cupy GPUAD_TEST_TIMEOUT=30 "$PYTHON" -m pytest -v \
    -p no:cacheprovider --tb=short -rf tests/test_gpu_memory.py tests/test_gpu.py
step 30 test-fusion.txt "loop kernels and fused region kernels on CuPy (no long chains)" env GPUAD_BACKEND=cupy \
    GPUAD_TEST_TIMEOUT=20 "$PYTHON" -m pytest -v -p no:cacheprovider --tb=short -rf -m "not slow" \
    tests/test_while_kernel.py tests/test_loop_kernel.py tests/test_fusion.py \
    -k "not every_spec and not random and not long_chains"
# The suite on CuPy, each outcome printed as it happens; compiled functions unfused (each new program's
# kernels would be compiled by NVRTC, which a thousand programs cannot afford here: the step above
# runs fused kernels). A test past 20 s fails and the run goes on.
step 45 test-suite.txt "test suite on CuPy (compiled functions unfused)" env GPUAD_BACKEND=cupy GPUAD_FUSION=off \
    GPUAD_TEST_TIMEOUT=20 "$PYTHON" -m pytest -v -p no:cacheprovider --maxfail=200 --tb=line -rf -m "not slow" \
    tests/test_transforms.py tests/test_jit.py tests/test_memory.py tests/test_graphs.py tests/test_sparse.py \
    tests/test_linalg.py tests/test_complex.py tests/test_fft.py tests/test_lax.py tests/test_custom.py tests/test_errors.py tests/test_seeds.py tests/test_breadth.py \
    tests/test_primitives.py tests/test_numpy_dispatch.py tests/test_properties.py tests/test_kernels.py \
    tests/test_kernel_backend.py tests/test_docs.py
echo
echo "=== gpu_check: $failed step(s) failed"
exit "$failed"
