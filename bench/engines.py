"""gpuad and its peers behind one interface, all in this process and on gpuad's device.

An engine gives the benchmark an array namespace for the problems, the transforms by name
(`None` where the engine has no such transform), a way to wait for its results and to read
them back as NumPy, and, where it can be measured, the peak memory of a call. A peer that
cannot be imported, or cannot run on gpuad's device, is reported with the reason instead.
"""
import importlib.metadata
import os
import types
from collections.abc import Callable
from dataclasses import dataclass

import numpy as onp

from . import memory

NAMES = ("gpuad", "gpuad-jit", "jax-jit", "jax", "torch", "autograd")
LABELS = {"gpuad": "gpuad", "gpuad-jit": "gpuad jit", "jax-jit": "JAX jit", "jax": "JAX op-by-op",
          "torch": "torch.func", "autograd": "autograd"}


class Unavailable(Exception):
    """The engine cannot run here; the message says why ("not installed", "no GPU", ...)."""


@dataclass
class Engine:
    name: str
    version: str
    np: object                      # namespace the problems are written against
    transforms: dict                # transform name -> (f -> callable), or None when unsupported
    block: Callable                 # wait until a result is computed
    to_numpy: Callable
    peak: Callable | None = None    # (call, block) -> (bytes, how it was measured)

    def asarray(self, x):
        return self.np.asarray(x)


def gpuad_device():
    """"gpu" or "cpu": where gpuad computes, and so where every peer must compute too."""
    import gpuad
    return "gpu" if gpuad.backend() == "cupy" else "cpu"


def load(name, device):
    """The engine called name, on device; raises Unavailable with the reason otherwise."""
    if name not in NAMES:
        raise ValueError(f"unknown engine {name!r}; choose from {', '.join(NAMES)}")
    loader = {"gpuad": _gpuad, "gpuad-jit": lambda d: _gpuad(d, jit=True),
              "jax-jit": lambda d: _jax(d, jit=True), "jax": lambda d: _jax(d, jit=False),
              "torch": _torch, "autograd": _autograd}[name]
    try:
        return loader(device)
    except ImportError as e:
        raise Unavailable("not installed") from e


def _jax_style(m, jacobian, wrap=lambda g: g):
    """The transforms from a module with JAX's names (jax, torch.func, gpuad)."""
    return {
        "jacfwd": lambda f: wrap(m.jacfwd(f)),
        "jacrev": lambda f: wrap(m.jacrev(f)),
        "jacobian": lambda f: wrap(jacobian(f)),
        "hessian": lambda f: wrap(m.hessian(f)),
        "hvp": lambda f: wrap(lambda x, v: m.jvp(m.grad(f), (x,), (v,))[1]),
        "vmap_jacfwd": lambda f: wrap(m.vmap(m.jacfwd(f))),
    }


def _gpuad(device, jit=False):
    import gpuad
    import gpuad.numpy as gnp
    wrap = gpuad.jit if jit else (lambda g: g)
    transforms = _jax_style(gpuad, lambda f: gpuad.jacobian(f, mode="auto"), wrap)
    transforms["hvp"] = lambda f: wrap(lambda x, v: gpuad.hvp(f, (x,), (v,)))
    # the memory problems: gpuad's chunk_size="auto" (the peers have no automatic chunking)
    transforms["auto_jacfwd"] = lambda f: wrap(gpuad.jacfwd(f, chunk_size="auto"))
    transforms["auto_jacrev_hessian"] = lambda f: wrap(
        gpuad.jacrev(gpuad.hessian(f, chunk_size="auto"), chunk_size="auto"))
    if device == "gpu":
        import cupy
        to_numpy, peak = cupy.asnumpy, memory.cupy_pool_peak
    else:
        to_numpy, peak = onp.asarray, memory.host_peak
    return Engine("gpuad-jit" if jit else "gpuad", gpuad.__version__, gnp, transforms, gpuad.block_until_ready,
                  to_numpy, peak)


def _jax(device, jit):
    # Both must be set before JAX starts: no grabbing of 75% of GPU memory at start-up, and
    # JAX pinned to gpuad's device (a CUDA build of JAX would otherwise take the GPU while
    # gpuad runs on the CPU).
    os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    os.environ["JAX_PLATFORMS"] = "cuda" if device == "gpu" else "cpu"
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    try:
        jax.devices()
    except RuntimeError as e:
        raise Unavailable(f"no JAX {device} backend") from e
    # jax.jacobian is JAX's own default for a Jacobian (reverse mode): the peer of mode="auto".
    transforms = _jax_style(jax, jax.jacobian, jax.jit if jit else (lambda g: g))
    return Engine("jax-jit" if jit else "jax", jax.__version__, jnp, transforms, jax.block_until_ready,
                  onp.asarray)


def _torch(device):
    import torch
    import torch.func
    if device == "gpu" and not torch.cuda.is_available():
        raise Unavailable("torch has no CUDA here")
    dev = "cuda" if device == "gpu" else "cpu"
    tnp = _torch_numpy(torch, dev)
    # torch.func has no mode-choosing jacobian; torch.autograd.functional.jacobian defaults to reverse.
    transforms = _jax_style(torch.func, torch.func.jacrev)
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)

    def block(out):
        sync()
        return out
    return Engine("torch", torch.__version__, tnp, transforms, block, lambda t: t.detach().cpu().numpy(),
                  memory.torch_cuda_peak if dev == "cuda" else None)


def _torch_numpy(torch, dev):
    """The few numpy names the problems use, on float64 torch tensors on dev."""
    ns = types.SimpleNamespace(sin=torch.sin, cos=torch.cos, exp=torch.exp, tanh=torch.tanh,
                               log1p=torch.log1p, sum=torch.sum)
    ns.asarray = lambda x: torch.as_tensor(x, dtype=torch.float64, device=dev)
    ns.array = lambda xs: torch.stack(list(xs))
    ns.concatenate = lambda xs: torch.cat(list(xs))
    return ns


def _autograd(device):
    import autograd
    import autograd.numpy as anp
    if device == "gpu":
        raise Unavailable("CPU only")
    # autograd has one Jacobian (reverse mode, a Python loop over outputs) and no vmap.
    transforms = {"jacfwd": autograd.jacobian, "jacrev": autograd.jacobian, "jacobian": autograd.jacobian,
                  "hessian": autograd.hessian, "hvp": autograd.hessian_vector_product, "vmap_jacfwd": None}
    return Engine("autograd", importlib.metadata.version("autograd"), anp, transforms, lambda out: out,
                  onp.asarray, memory.host_peak)
