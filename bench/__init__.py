"""gpuad's benchmarks: the problems, their closed-form checks, the peers, the timing and the report.

Run `python -m bench --help`; `pytest bench/` runs the same problems for gpuad alone as a
pytest-benchmark suite that asserts correctness.
"""
import os

os.environ.setdefault("GPUAD_COMPILE", "sync")  # a first call measured waits for its kernels, as it did
