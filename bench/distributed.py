"""python -m bench.distributed: gpuad.distributed on a LocalCluster of worker processes, 1 against 2.

    python -m bench.distributed                        # the issue's sizes: n = 20,000, 10^7 examples
    python -m bench.distributed --n 8000 --examples 2000000 --workers 1,2

1. The coupled map's Jacobian (bench/problems.py; n = 20,000: 3.2 GB) by column blocks sized by
   chunk_size="auto" (within the workers' memory limit, --memory, 1.5 GB each, and the backend's
   reused_bytes), written to zarr; every block read back and checked against gpuad.jacfwd of the
   map restricted to that block's columns.
2. vmap(jacfwd) of the coupled map on 4 elements over --examples examples, chunked (the
   Jacobians summed on the workers, so that only the sum comes back); the first chunk checked
   against gpuad.vmap(gpuad.jacfwd).
3. A model of the scaling to 8 GPUs: per block, the bytes a worker moves (the planned program's
   device traffic for CuPy, the block it ships out, the inputs once) against its compute.

Each worker is one process with one thread, OpenMP and BLAS on one thread: on a machine with
fewer free cores than workers the scaling shown is the machine's, not gpuad's. Times include
each worker's first compile; the markdown goes to stdout. Beside each wall-clock time, the CPU
time of the second call: each worker process's, and the client's process (with LocalCluster's
scheduler and nannies in it), and from them the speed-up that CPU time allows on this machine's
cores (_allowed), which a shared machine's wall clock cannot show.
"""
import argparse
import logging
import os
import shutil
import tempfile
import time

import numpy as onp

from . import problems

EXAMPLE_SIZE = 4  # elements of the small map that vmap(jacfwd) runs on
# The model's machine: an H100's achievable HBM bandwidth, its PCIe link to the host, each
# node's storage writes (NVMe), a task's scheduling overhead. Assumptions, not measurements.
HBM, PCIE, STORAGE, TASK = 2.0e12, 25e9, 2e9, 2e-3


def _cluster(workers, memory):
    import distributed
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       memory_limit=memory, dashboard_address=":0", silence_logs=logging.CRITICAL)
    return cluster, distributed.Client(cluster)


def _cpu(client):
    """CPU seconds so far: (the client's process, with the scheduler and nannies of a LocalCluster;
    each worker process, its waited children (compilers) included)."""
    import psutil

    def used():
        t = psutil.Process().cpu_times()
        return t.user + t.system + t.children_user + t.children_system
    return used(), sorted(client.run(used).values())


def _spent(before, after):
    return after[0] - before[0], [b - a for a, b in zip(before[1], after[1])]


def _allowed(cpu, cores=None):
    """The least wall-clock time this CPU time needs: no worker faster than its own CPU time, and
    all of it, the client's included, spread over the machine's cores at best."""
    client, workers = cpu
    return max(max(workers), (client + sum(workers)) / (cores or os.cpu_count()))


def _peak_rss(client):
    """The largest peak resident memory of a worker process, in bytes: VmHWM, its own address
    space's high-water mark (getrusage's ru_maxrss carries the peak of the process that spawned it
    across exec: a worker started after the client had checked blocks reported the client's 1.3 GiB)."""
    def peak():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    return max(client.run(peak).values())


def jacobian_run(n, workers, memory, store):
    """(seconds for the Jacobian written to zarr: the first call, with each worker's compile, then a
    second; the second's CPU time (_cpu); its column blocks; the largest worker peak)."""
    import gpuad.distributed as gd
    import gpuad.numpy as gnp
    f, (x,) = problems.coupled(gnp, {"coupled": n})
    cluster, client = _cluster(workers, memory)
    with cluster, client:
        jac, seconds = gd.jacfwd(f), []
        for _ in range(2):
            before, start = _cpu(client), time.perf_counter()
            J = jac(x)
            J.to_zarr(store, overwrite=True)
            seconds.append(time.perf_counter() - start)
        return seconds, _spent(before, _cpu(client)), J.chunks[1], _peak_rss(client)


def check_blocks(n, store, blocks):
    """The largest difference of each zarr block from gpuad.jacfwd of f restricted to its columns."""
    import zarr

    import gpuad
    import gpuad.numpy as gnp
    f, (x,) = problems.coupled(gnp, {"coupled": n})
    stored, worst, lo = zarr.open(store, mode="r"), 0.0, 0
    for k in blocks:
        def restricted(xs, lo=lo, k=k):
            return f(gnp.concatenate([x[:lo], xs, x[lo + k:]]))
        worst = max(worst, float(onp.abs(stored[:, lo:lo + k] - gpuad.jacfwd(restricted)(x[lo:lo + k])).max()))
        lo += k
    return worst


def vmap_run(examples, chunk, workers, memory):
    """(seconds for the summed per-example Jacobians, first and second call; the second's CPU time;
    the largest difference of the first chunk)."""
    import dask.array as da
    import distributed

    import gpuad
    import gpuad.distributed as gd
    import gpuad.numpy as gnp
    f, _ = problems.coupled(gnp, {"coupled": EXAMPLE_SIZE})
    cluster, client = _cluster(workers, memory)
    with cluster, client:
        xs = da.random.default_rng(0).normal(size=(examples, EXAMPLE_SIZE), chunks=(chunk, EXAMPLE_SIZE)).persist()
        distributed.wait(xs)
        batched, seconds = gd.vmap(gpuad.jacfwd(f)), []
        for _ in range(2):
            before, start = _cpu(client), time.perf_counter()
            jacs = batched(xs)
            jacs.sum(axis=0).compute()
            seconds.append(time.perf_counter() - start)
        cpu = _spent(before, _cpu(client))
        first = xs.blocks[0].compute()
        error = float(onp.abs(jacs.blocks[0].compute() - gpuad.vmap(gpuad.jacfwd(f))(first)).max())
        return seconds, cpu, error


def model(n, block, examples, chunk):
    """The 8-GPU model, from the bytes each worker moves: per block, the device traffic of its
    program (the CuPy plan), the block shipped over PCIe, a task's overhead; the blocks written to
    storage shared by the node's GPUs, or one node per GPU. Rows (p, Jacobian on one node, on p
    nodes, vmap(jacfwd)); vmap's chunks bring their inputs in and send a sum out."""
    import gpuad
    import gpuad.numpy as gnp
    from gpuad.core import ShapeDtypeStruct
    from gpuad.distributed import _Products
    f, (x,) = problems.coupled(gnp, {"coupled": n})
    products = _Products("model", "model", f, 0, False, onp.arange(n), n, onp.float64)
    moved = gpuad.jit(products.program).lower((x,), ShapeDtypeStruct((block, n), "float64"), backend="cupy").bytes_moved
    per_block = moved / HBM + 8 * block * n / PCIE + TASK
    small, _ = problems.coupled(gnp, {"coupled": EXAMPLE_SIZE})
    batch = gpuad.jit(gpuad.vmap(gpuad.jacfwd(small))).lower(ShapeDtypeStruct((chunk, EXAMPLE_SIZE), "float64"),
                                                             backend="cupy").bytes_moved
    per_chunk = batch / HBM + 8 * chunk * EXAMPLE_SIZE / PCIE + TASK
    blocks, chunks, written = -(-n // block), -(-examples // chunk), 8 * n * n
    rows = []
    for p in (1, 2, 4, 8):
        compute = 8 * n / PCIE + -(-blocks // p) * per_block
        rows.append((p, max(compute, written / STORAGE), max(compute, written / (p * STORAGE)),
                     -(-chunks // p) * per_chunk))
    return moved, per_block, per_chunk, rows


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.distributed", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20_000, help="the coupled map's size (default 20,000: J is 3.2 GB)")
    ap.add_argument("--examples", type=int, default=10**7, help="examples for vmap(jacfwd) (default 10^7)")
    ap.add_argument("--chunk", type=int, default=500_000, help="examples per chunk (default 500,000)")
    ap.add_argument("--workers", default="1,2", help="worker counts to compare (default 1,2)")
    ap.add_argument("--memory", default="1.5GB", help="each worker's memory limit (default 1.5GB)")
    args = ap.parse_args(argv)
    os.environ.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")  # one core a worker
    counts = [int(w) for w in args.workers.split(",")]
    where = tempfile.mkdtemp(prefix="gpuad-bench-distributed-")
    try:
        blocks = []

        def jacobian(w):
            store = os.path.join(where, f"J{w}.zarr")
            times, cpu, blocks[:], rss = jacobian_run(args.n, w, args.memory, store)
            worst = check_blocks(args.n, store, blocks)
            shutil.rmtree(store)
            return times, cpu, [f"{len(blocks)} of {max(blocks)}", f"{rss / 2**30:.2f} GiB", f"{worst:.1e}"]

        def vmapped(w):
            times, cpu, error = vmap_run(args.examples, args.chunk, w, args.memory)
            return times, cpu, [f"{args.examples / times[1]:.3g}", f"{error:.1e}"]

        _table(f"Jacobian of the coupled map, n = {args.n} ({8 * args.n**2 / 1e9:.2f} GB), to zarr, workers "
               f"limited to {args.memory}", ["column blocks", "largest worker peak RSS",
                                            "largest difference from jacfwd"], counts, jacobian)
        _table(f"vmap(jacfwd) of the coupled map on {EXAMPLE_SIZE} elements, {args.examples} examples in "
               f"chunks of {args.chunk}", ["examples/s (second)", "largest difference from "
                                           "gpuad.vmap(jacfwd), first chunk"], counts, vmapped)
        _print_model(args.n, max(blocks), args.examples, args.chunk)
    finally:
        shutil.rmtree(where, ignore_errors=True)


def _table(title, headers, counts, run):
    """A section: for each worker count, run(w) -> ((first, second) seconds, CPU times, its other
    columns), a row as it finishes, then the speed-up of the most workers against the fewest."""
    print(f"## {title}\n")
    headers = ["workers", "first call s", "second call s", "second call CPU s: workers, client", *headers]
    print("| " + " | ".join(headers) + " |\n" + "|---" * len(headers) + "|")
    times, cpus = {}, {}
    for w in counts:
        times[w], cpus[w], cells = run(w)
        print(f"| {w} | {times[w][0]:.1f} | {times[w][1]:.1f} | {_cpu_text(cpus[w])} | " + " | ".join(cells) + " |",
              flush=True)
    _speedup(times, cpus)
    print()


def _cpu_text(cpu):
    return f"{' + '.join(f'{w:.2f}' for w in cpu[1])}, {cpu[0]:.2f}"


def _speedup(times, cpus):
    if len(times) > 1:
        lo, hi = min(times), max(times)
        print(f"\n{hi} workers against {lo}: {times[lo][0] / times[hi][0]:.2f}x on the first call, "
              f"{times[lo][1] / times[hi][1]:.2f}x on the second; the second's CPU time allows "
              f"{_allowed(cpus[lo]) / _allowed(cpus[hi]):.2f}x on {os.cpu_count()} cores (its least wall-clock "
              f"times {_allowed(cpus[lo]):.1f} s and {_allowed(cpus[hi]):.1f} s)")


def _print_model(n, block, examples, chunk):
    moved, per_block, per_chunk, rows = model(n, block, examples, chunk)
    print(f"## Model: p GPUs, one worker each (HBM {HBM / 1e12:.1f} TB/s, PCIe {PCIE / 1e9:.0f} GB/s, "
          f"storage {STORAGE / 1e9:.0f} GB/s a node, {TASK * 1e3:.0f} ms a task: assumed, not measured)\n")
    print(f"A block of {block} directions moves {moved / 1e9:.2f} GB in device memory (the CuPy plan of its "
          f"program) and ships {8 * block * n / 1e9:.2f} GB to the host: {per_block * 1e3:.1f} ms; the whole "
          f"Jacobian takes {8 * n * n / STORAGE:.1f} s to write on one node. A vmap chunk: {per_chunk * 1e3:.1f} ms.\n")
    print("| GPUs | Jacobian, one node, s | speed-up | one node per GPU, s | speed-up | vmap(jacfwd) s | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for p, node, nodes, vm in rows:
        print(f"| {p} | {node:.2f} | {rows[0][1] / node:.2f}x | {nodes:.2f} | {rows[0][2] / nodes:.2f}x | "
              f"{vm:.3f} | {rows[0][3] / vm:.2f}x |")


if __name__ == "__main__":
    main()
