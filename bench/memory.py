"""Memory: the peak memory of one call, measured where the engine's arrays live. The functions
return (bytes, how it was measured); the table states the measure, because host and device
figures are not the same quantity.
"""
import gc
import tracemalloc


def host_peak(call, block):
    """Bytes newly allocated at the peak of one call, traced by tracemalloc (NumPy reports its
    buffers to it). Run apart from the timed calls: tracing slows Python down."""
    tracemalloc.start()
    try:
        block(call())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, "host, tracemalloc"


def cupy_pool_peak(call, block):
    """Growth of CuPy's memory pool over one call, started from an emptied pool. The pool keeps
    freed blocks, so its size afterwards bounds the peak of live device bytes from above."""
    import cupy
    pool = cupy.get_default_memory_pool()
    gc.collect()
    pool.free_all_blocks()
    before = pool.total_bytes()
    block(call())
    return pool.total_bytes() - before, "device, CuPy pool"


def torch_cuda_peak(call, block):
    import torch
    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    block(call())
    return torch.cuda.max_memory_allocated() - before, "device, torch allocator"
