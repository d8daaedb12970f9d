"""Whole transforms through the fused kernels, on the CPU.

The CuPy backend sends every elementwise JVP/VJP it can to a fused kernel and the rest to the
generic rule. HostKernelBackend makes the same decisions with the same launch plans and runs
the same generated kernels, compiled for the CPU, so every op spec's derivatives (first and
second order, forward and reverse, under vmap) are checked through the kernel path here,
without a GPU.
"""
import pytest
import test_primitives as tp  # a module import: its tests are called here, not collected twice
from host_kernels import HostKernelBackend

from gpuad import backends


@pytest.fixture
def kernel_backend(host_kernels, monkeypatch):
    backend = HostKernelBackend(host_kernels)
    monkeypatch.setattr(backends, "_current", backend)
    return backend


@pytest.mark.parametrize("spec", tp.SPECS, ids=lambda s: s.name)
def test_spec_derivatives_through_the_kernels(kernel_backend, spec):
    tp.test_first_order(spec)
    tp.test_second_order(spec)
    if spec.batchable:
        tp.test_vmap_and_vmap_of_jvp_match_a_loop(spec, "batched")


def test_the_kernels_do_the_elementwise_work(kernel_backend):
    """Guards the test above: most elementwise calls of a typical sweep do launch a kernel."""
    spec = next(s for s in tp.SPECS if s.name == "tanh")
    tp.test_first_order(spec)
    assert kernel_backend.launches >= 4  # jvp and vjp, jacfwd and jacrev at least
