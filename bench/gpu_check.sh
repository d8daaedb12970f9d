#!/usr/bin/env bash
# The GPU check of the CuPy backend: one prepared run on a lent device, under 5 minutes on an
# H100 (each step has its own time limit; they add up to 270 s, which leaves 150 s of a 7-minute
# device call for the shared peers harness, whose table the README's GPU table comes from). The script carries on after a failing step so that
# one run shows everything; its exit status counts failed steps.
#
#     bash bench/gpu_check.sh 2>&1 | tee gpu-check.txt
cd "$(dirname "$0")/.." || exit 1
export PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}
failed=0

step() {  # step SECONDS TITLE COMMAND...
    local limit=$1 title=$2 start=$SECONDS rc
    shift 2
    echo
    echo "=== $title"
    # pytest skips the tests not started 15 s before the limit, so it ends by itself and lists its failures
    GPUAD_TEST_DEADLINE=$(( $(date +%s) + limit - 15 )) timeout -k 5 "$limit" "$@"
    rc=$?
    echo "=== $title: exit $rc after $((SECONDS - start)) s (limit $limit s)"
    [ "$rc" -eq 0 ] || failed=$((failed + 1))
}

step 10 "GPUs" nvidia-smi -L
# Compile every kernel first, so the tests load them from CuPy's cache instead of timing out.
step 50 "NVRTC check and CuPy kernel cache" "$PYTHON" -m gpuad.kernels --check --warm
# No -x: one run should list every failure; --tb=line keeps that list short. Compiled functions run
# unfused here: each new program's fused kernels would be compiled by NVRTC, which the suite's
# thousand programs cannot afford in this budget; the next step runs the fused kernels.
# The files in order of what the GPU run must show first (CuPy compiles each new elementwise kernel at
# its first use, so the whole suite may not fit): every eager kernel against NumPy (compiled by the
# step above), the transforms, the compiled path, memory, sparse. Two GPU tests have a step below.
step 100 "test suite on CuPy (compiled functions unfused)" env GPUAD_BACKEND=cupy GPUAD_FUSION=off \
    "$PYTHON" -m pytest -q -p no:cacheprovider --maxfail=100 --tb=line -rf --durations=10 \
    -k "not no_host_round_trip and not cuda_graph" tests/test_gpu.py tests/test_transforms.py tests/test_jit.py \
    tests/test_gpu_memory.py tests/test_memory.py tests/test_graphs.py tests/test_sparse.py tests/test_linalg.py \
    tests/test_complex.py tests/test_fft.py \
    tests/test_custom.py tests/test_errors.py tests/test_seeds.py tests/test_breadth.py tests/test_primitives.py \
    tests/test_numpy_dispatch.py tests/test_properties.py tests/test_docs.py tests/test_kernel_backend.py \
    tests/test_kernels.py
step 30 "fused region kernels on CuPy" env GPUAD_BACKEND=cupy "$PYTHON" -m pytest tests/test_fusion.py \
    -q -p no:cacheprovider --tb=line -rf -k "not every_spec and not random"
# The CUDA graph test compiles its 60 region kernels with NVRTC first (the suite above ran unfused,
# where runs of CuPy ufuncs are captured as graphs too).
step 40 "no host round trip (eager and compiled), and the compiled replay's CUDA graphs" \
    env GPUAD_BACKEND=cupy "$PYTHON" -m pytest tests/test_gpu.py -q -p no:cacheprovider --tb=short \
    -k "no_host_round_trip or cuda_graph"
# gpuad (eager and compiled) against JAX-jit and torch.func; per-case progress goes to stderr, so a
# cut run still tells. The test suite above runs tests/test_jit.py on CuPy: the compiled path.
step 40 "benchmarks" "$PYTHON" -m bench --size gpu --backend cupy --engines gpuad,gpuad-jit,jax-jit,torch \
    --budget 0.4
echo
echo "=== gpu_check: $failed step(s) failed"
exit "$failed"
