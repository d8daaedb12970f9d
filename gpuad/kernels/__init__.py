"""The fused elementwise kernels: CUDA templates in kernels/, filled from the elementwise table.

    source.py   generation: (row, mode, variant, dtype) -> CUDA source text (pure, no GPU)
    plan.py     which kernel a JVP/VJP call can use, and its arguments (pure, any array module)
    launch.py   compile once per kernel and dtype, and launch, with CuPy
    nvrtc.py    compile a source with NVRTC alone, no GPU needed
    __main__    python -m gpuad.kernels --check [--warm]

Only launch.py imports CuPy, and only the CuPy backend imports launch.py.
"""
