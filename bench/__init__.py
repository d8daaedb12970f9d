"""gpuad's benchmarks: the problems, their closed-form checks, the peers, the timing and the report.

Run `python -m bench --help`; `pytest bench/` runs the same problems for gpuad alone as a
pytest-benchmark suite that asserts correctness.
"""
