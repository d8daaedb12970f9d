"""The 32-bit index variant of a fusion region's CUDA kernel (gpuad/compiler/codegen.py).

A region's kernel computes its indices (element digits, strided offsets, a sum's counter) in
64-bit integers, which the GPU emulates with several 32-bit instructions each (a 64-bit
division by a constant is a multiply-high sequence of about 20). Where every index fits in 31
bits (the common case: arrays of fewer than 2^31 elements, read at offsets below 2^31 items),
the same kernel with `int` indices runs instead, chosen per call from the arrays' strides (the
launcher, kernels/launch.py): the same index expressions printed with int (codegen.Kernel.source).
Values stay in their own types (an int64 array's elements, a gather's positions loaded from one,
stay 64-bit).
"""
LIMIT = 2 ** 31 - 2 ** 25  # indices below this, with a grid's worth of threads (65535 x 256) to spare


def applies(kernel):
    """Whether the kernel's own extents (its values' element counts) leave its indices in 32 bits:
    then its launcher may choose the narrow kernel, depending on the inputs' strides."""
    return kernel.extent < LIMIT


def first(kernel):
    """(source, name) of the variant a launcher builds at once: the narrow one where it may apply
    (the other is built at the first call that needs it)."""
    return kernel.source("int") if applies(kernel) else (kernel.text, kernel.name)


def farthest(arrays, axes):
    """The largest offset, in items, any of these arrays is read at (each along `axes`, its
    strides in items): a kernel reads array j at sum(index * stride) over its axes."""
    return max((sum((a.shape[d] - 1) * abs(a.strides[d] // a.itemsize) for d in along)
                for a, along in zip(arrays, axes)), default=0)
