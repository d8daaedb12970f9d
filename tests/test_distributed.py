"""gpuad.distributed on a distributed.LocalCluster (threads; processes for the fault test):
every result against gpuad's own jacfwd, jacrev, hessian, vmap and sparse on one machine."""
import os
import signal

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

import gpuad  # noqa: E402
import gpuad.distributed as gd  # noqa: E402
import gpuad.numpy as gnp  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.normal(size=40)


def coupled(x):
    """Row i couples x[i-1], x[i], x[i+1]; the ends are fixed (bench/problems.py's coupled map)."""
    inner = x[1:-1] ** 2 * gnp.sin(x[:-2]) - 2.0 * x[1:-1] + gnp.exp(-x[2:])
    return gnp.concatenate([x[:1], inner, x[-1:]])


def energy(x):
    return gnp.sum(x[1:] * x[:-1] ** 2) + gnp.sum(gnp.sin(x) * x[0])


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, memory_limit="1GB",
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as c:
        yield c


@pytest.mark.parametrize("transform, reference", [
    (gd.jacfwd, gpuad.jacfwd), (gd.jacrev, gpuad.jacrev), (gd.jacobian, gpuad.jacobian)])
def test_jacobians_by_blocks_of_directions(client, transform, reference):
    J = transform(coupled, chunk_size=16)(X)
    forward = transform is gd.jacfwd  # jacobian picks reverse for a square one, as gpuad.jacobian does
    assert J.chunks == (((40,), (16, 16, 8)) if forward else ((16, 16, 8), (40,)))  # one block per 16 directions
    np.testing.assert_allclose(J.compute(), reference(coupled)(X), rtol=1e-13, atol=1e-13)


def test_hessian_and_auto_blocks(client):
    H = gd.hessian(energy)(X)
    assert len(H.chunks[1]) >= 2  # "auto" gives every worker thread a block
    np.testing.assert_allclose(H.compute(), gpuad.hessian(energy)(X), rtol=1e-13, atol=1e-13)


def outputs_tree(a, p):
    return {"u": gnp.sin(p["w"]) * a[0, 0], "v": (p["w"][:2] * p["b"]).reshape(1, 2)}


def scalar(a, p):
    return gnp.sum(gnp.sin(p["w"]) * a[0, 0]) + gnp.sum(a ** 3) * p["b"]


@pytest.mark.parametrize("transform, reference, f", [(gd.jacfwd, gpuad.jacfwd, outputs_tree),
                                                     (gd.jacrev, gpuad.jacrev, outputs_tree),
                                                     (gd.hessian, gpuad.hessian, scalar)])
def test_pytrees_argnums_and_shapes(client, transform, reference, f):
    a, p = RNG.normal(size=(2, 2)), {"w": RNG.normal(size=3), "b": RNG.normal(size=())}
    got = transform(f, argnums=(0, 1), chunk_size=2)(a, p)
    want = reference(f, argnums=(0, 1))(a, p)
    assert gpuad.tree_flatten(got)[1] == gpuad.tree_flatten(want)[1]
    for g, w in zip(gpuad.tree_leaves(got), gpuad.tree_leaves(want)):
        np.testing.assert_allclose(g.compute(), w, rtol=1e-13, atol=1e-13)


def test_compiled_once_per_worker_and_shape(client):
    traces = []

    def counted(x):
        traces.append(1)  # Python runs only while tracing
        return coupled(x)

    jac = gd.jacfwd(counted, chunk_size=6)
    J = jac(X)  # 6 blocks of 6 directions and one of 4, swept as one of 6
    np.testing.assert_allclose(J.compute(), gpuad.jacfwd(coupled)(X), rtol=1e-13, atol=1e-13)
    # the client traces twice (eval_shape, the block's shapes); each worker compiles once (2 workers x 1 thread)
    assert J.chunks[1] == (6,) * 6 + (4,) and len(traces) <= 2 + 2
    before = len(traces)
    jac(X).compute()
    assert len(traces) - before == 1  # a later call: eval_shape alone, the block program is compiled everywhere


def test_to_zarr(client, tmp_path):
    zarr = pytest.importorskip("zarr")
    J = gd.jacrev(coupled, chunk_size=12)(X)
    J.to_zarr(str(tmp_path / "J.zarr"))
    np.testing.assert_allclose(zarr.open(str(tmp_path / "J.zarr"))[:], gpuad.jacrev(coupled)(X), rtol=1e-13,
                               atol=1e-13)


def test_local_scheduler_without_a_client():
    import dask
    with dask.config.set(scheduler="threads"):  # the distributed client of the other tests is not used
        J = gd.jacfwd(coupled, chunk_size=16)(X)
        np.testing.assert_allclose(J.compute(), gpuad.jacfwd(coupled)(X), rtol=1e-13, atol=1e-13)


def test_vmap_chunks(client):
    xs = RNG.normal(size=(50, 6))
    got = gd.vmap(gpuad.jacfwd(coupled))(da.from_array(xs, chunks=(16, 6)))
    assert got.chunks == ((16, 16, 16, 2), (6,), (6,))
    np.testing.assert_allclose(got.compute(), gpuad.vmap(gpuad.jacfwd(coupled))(xs), rtol=1e-13, atol=1e-13)


def test_vmap_is_blockwise(client):
    """One graph layer per step, whatever the number of chunks: Dask fuses a chunk's jit(vmap(f))
    with what follows it (a reduction's first step) into one task, and no chunk is made in one
    task to be sliced or concatenated in others."""
    xs = RNG.normal(size=(64, 3))
    layers = [len(gd.vmap(gpuad.jacfwd(coupled))(da.from_array(xs, chunks=(c, 3))).dask.layers) for c in (32, 4)]
    assert layers[0] == layers[1]


def test_vmap_axes_and_fixed_arguments(client):
    xs, w = RNG.normal(size=(6, 50)), RNG.normal(size=6)
    f = gd.vmap(lambda x, w: (gnp.sum(x * w), x * w), in_axes=(1, None), out_axes=(0, 1))
    s, p = f(da.from_array(xs, chunks=(6, 20)), w)
    np.testing.assert_allclose(s.compute(), w @ xs, rtol=1e-13)
    np.testing.assert_allclose(p.compute(), xs * w[:, None], rtol=1e-13)


def arrow(x):
    return gnp.concatenate([gnp.sum(x)[None], coupled(x)[1:] * x[0]])


@pytest.mark.parametrize("mode, f", [("forward", coupled), ("reverse", coupled), ("bidirectional", arrow)])
def test_sparse_jacobian_colors_over_workers(client, mode, f):
    got = gd.sparse.jacobian(f, mode=mode, chunk_size=1)(X)
    want = gpuad.sparse.jacobian(f, mode=mode)(X)
    assert (got.indptr == want.indptr).all() and (got.indices == want.indices).all()
    np.testing.assert_allclose(got.data, want.data, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(got.toarray(), gpuad.jacfwd(f)(X), rtol=1e-13, atol=1e-13)


def test_sparse_hessian(client):
    got = gd.sparse.hessian(energy, chunk_size=1)(X)
    np.testing.assert_allclose(got.toarray(), gpuad.hessian(energy)(X), rtol=1e-13, atol=1e-13)


def test_blocks_sized_from_the_workers_memory_limit():
    n, limit = 4000, 64 * 2**20
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, memory_limit=limit,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as c:
        J = gd.jacfwd(coupled, client=c)(np.ones(n))  # not computed: the block sizes are decided here
        with pytest.raises(MemoryError, match="worker thread's memory limit"):  # 16 MB each for seed and block
            gd.jacfwd(coupled, client=c)(np.ones(2 * 10**6))
    # the client's machine has gigabytes free, which would make one block of all n directions
    assert 1 < max(J.chunks[1]) < n
    assert max(J.chunks[1]) * n * 8 <= gd.BLOCK_SHARE * limit  # each block's own result alone fits


def test_auto_blocks_within_the_backends_reused_bytes_and_even_over_the_threads(client, monkeypatch):
    n = 1000
    monkeypatch.setattr(gpuad.backends.current(), "reused_bytes", 300 * 8 * n + 1)  # at most 300 directions
    J = gd.jacfwd(coupled)(np.linspace(0.1, 1.0, n))
    assert J.chunks[1] == (250,) * 4  # 2 worker threads, 2 blocks each; not 300, 300, 300 and 100
    x = RNG.normal(size=n)
    np.testing.assert_allclose(gd.jacfwd(coupled)(x).compute(), gpuad.jacfwd(coupled)(x), rtol=1e-13, atol=1e-13)


def test_bad_arguments(client):
    with pytest.raises(ValueError, match="chunk_size"):
        gd.jacfwd(coupled, chunk_size=0)(X)
    with pytest.raises(ValueError, match="has_aux"):
        gd.jacrev(coupled, has_aux=True)(X)
    with pytest.raises(ValueError, match="same size"):
        gd.vmap(lambda a, b: a * b)(da.ones((4, 2)), da.ones((5, 2)))
    with pytest.raises(TypeError, match="argument 0"):
        gd.vmap(gnp.sin)([1.0, 2.0])


@pytest.mark.slow
def test_a_killed_worker_has_its_blocks_rerun_and_the_result_is_exact():
    x = RNG.normal(size=200)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="1GB",
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as c:
        J = gd.jacfwd(coupled, chunk_size=5)(x)  # 40 blocks
        whole = J.compute()
        pids = c.run(os.getpid)
        blocks = c.compute(J.to_delayed().ravel().tolist())
        distributed.wait(blocks, return_when="FIRST_COMPLETED")  # under way (how far it gets, the machine decides)
        # a worker holding the function and inputs (keys that are strings; a block's is a tuple), and blocks
        held = c.run(lambda dask_worker: [isinstance(k, str) for k in dask_worker.data])
        victim = next(a for a, keys in held.items() if any(keys) and not all(keys))
        os.kill(pids[victim], signal.SIGKILL)
        again = np.concatenate(c.gather(blocks), axis=1)  # its blocks, and what they need, made again elsewhere
        assert pids[victim] not in c.run(os.getpid).values()  # it did die (its nanny starts a new one)
    np.testing.assert_array_equal(again, whole)
    np.testing.assert_allclose(whole, gpuad.jacfwd(coupled)(x), rtol=1e-13, atol=1e-13)
