"""gpuad's compiler: what `gpuad.jit` does to a traced program, from trace to kernel.

program   the IR (Var, Equation, Program), tracing to it, and the passes that optimise it
structure where each value may be non-zero, and which values are made from indices alone (a seed)
target    what a program is planned for (NumPy or CuPy): an argument of planning, not global state
fusion    elementwise regions and the moves they read through, planned in linear time
index     index expressions: the moves' index maps, folded, printed to C, evaluated on arrays
          (a foundation: gpuad/ops/ writes its rules with them)
codegen   a region rendered as a C++ (host) or CUDA kernel source
host      the host kernels built with the system's C++ compiler and loaded with ctypes
graphs    CUDA graph capture of a steady CuPy program
replay    the plan a compiled program runs: fused regions, plain steps, memory checks
cost      the launch and byte model behind `lower(...).launches` and `.bytes_moved`
seconds   the time model by which fusion keeps a region only where its kernel costs less

The AD layer (forward, reverse, batching, chunking, api) imports nothing from here:
tests/test_imports.py checks it, with the tiers of docs/contributing.md.
"""
