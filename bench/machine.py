"""What the numbers were measured on: CPU, GPU, library versions."""
import os
import platform
import re

import numpy


def _cpuinfo():
    info = {}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info


def cpu():
    """The CPU's model name with its family/model numbers (a VM may show only "AMD EPYC"), and core count."""
    info = _cpuinfo()
    name = info.get("model name") or platform.processor() or platform.machine()
    family = f" (family {info['cpu family']}, model {info['model']})" if "cpu family" in info else ""
    return f"{name}{family}, {os.cpu_count()} cores"


def tag(gpu_name=None):
    """A file-name-safe name of the machine: the GPU's, else the CPU model and core count."""
    text = gpu_name or f"{_cpuinfo().get('model name') or platform.machine()} {os.cpu_count()}core"
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def gpu():
    """(name, peak memory bandwidth in bytes/s or None) of CuPy's current device."""
    import cupy
    dev = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return name, _peak_bandwidth(cupy, dev.id)


def _peak_bandwidth(cupy, device_id):
    """2 transfers per clock (DDR/HBM) x bus width. CUDA 13 dropped the clock from the device
    properties, so ask the attribute (cudaDevAttrMemoryClockRate = 36, ...BusWidth = 37)."""
    try:
        khz = cupy.cuda.runtime.deviceGetAttribute(36, device_id)
        bits = cupy.cuda.runtime.deviceGetAttribute(37, device_id)
    except Exception:
        return None
    return 2 * khz * 1e3 * bits / 8 if khz and bits else None


def versions(engines):
    out = {"python": platform.python_version(), "numpy": numpy.__version__}
    out.update({e.name.split("-")[0]: e.version for e in engines.values()})  # jax-jit and jax: one jax
    return out


class OtherWork:
    """Share of the machine's CPU time that other processes used between start() and share():
    every time measured here is inflated while they run (a concurrent test suite, say)."""

    def start(self):
        self._t0 = self._sample()

    def share(self):
        try:
            busy0, own0, wall0 = self._t0
            busy1, own1, wall1 = self._sample()
        except (OSError, AttributeError, ValueError):
            return None
        capacity = (wall1 - wall0) * (os.cpu_count() or 1)
        return max(0.0, (busy1 - busy0) - (own1 - own0)) / capacity if capacity > 0 else None

    @staticmethod
    def _sample():
        """(CPU seconds all processes were busy, this process's CPU seconds, wall seconds)."""
        with open("/proc/stat") as fh:
            ticks = [int(v) for v in fh.readline().split()[1:]]
        hz = os.sysconf("SC_CLK_TCK")
        busy = (sum(ticks[:8]) - ticks[3] - ticks[4]) / hz  # all but idle and iowait; guest is in user
        t = os.times()
        return busy, t.user + t.system, t.elapsed


def load():
    """The 1-minute load average: other work on the machine makes every time here longer."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None
