"""The benchmark problems as a pytest-benchmark suite for gpuad: each case is timed at the
quick sizes and its result asserted against the closed form. The closed forms themselves are
checked against finite differences, and the runner's handling of wrong results is tested.
Speed is only measured here, never asserted."""
import json
import sys

import numpy as onp
import pytest

from . import allocator, check, chunks, engines, problems, report, runner
from .__main__ import main

QUICK = problems.SIZES["quick"]
# Small enough for finite differences of every case in milliseconds.
TINY = {"coupled": 7, "mlp": (6, 5, 3), "logistic": (5, 9), "batch": 4, "rosenbrock": 8, "tall": (3, 9), "wide": (9, 3),
        "memory_jacfwd": 6, "memory_third": (4, 3)}
IDS = [c.name for c in problems.CASES]


@pytest.fixture(scope="module", params=["gpuad", "gpuad-jit"])
def gpuad_engine(request):
    return engines.load(request.param, engines.gpuad_device())


@pytest.mark.parametrize("case", problems.CASES, ids=IDS)
def test_gpuad(benchmark, gpuad_engine, case):
    call = runner.prepare(case, gpuad_engine, QUICK)
    out = benchmark.pedantic(lambda: gpuad_engine.block(call()), rounds=3, iterations=1, warmup_rounds=1)
    expected = runner.expected_result(case, QUICK)
    got = gpuad_engine.to_numpy(out)
    assert check.error(got, expected) <= check.RTOL, check.describe_failure(got, expected)


@pytest.mark.parametrize("case", problems.CASES, ids=IDS)
def test_closed_form_matches_finite_differences(case):
    f, args = case.setup(onp, TINY)
    fd = check.finite_differences(case.transform, f, args)
    assert check.error(case.reference(args, TINY), fd) < 1e-6


def test_wrong_result_is_reported_not_timed():
    case = next(c for c in problems.CASES if c.name == "readme_jacfwd")
    liar = engines.Engine("liar", "0", onp, {"jacfwd": lambda f: (lambda x: onp.zeros((2, 3)))},
                          lambda out: out, onp.asarray)
    res = runner.measure(case, liar, QUICK, runner.expected_result(case, QUICK), (0.01, 1, 1))
    assert res.status == "wrong" and res.median_s is None and "relative error" in res.detail


def test_unsupported_transform_is_na():
    case = next(c for c in problems.CASES if c.name == "batched_vmap_jacfwd")
    engine = engines.Engine("novmap", "0", onp, {"vmap_jacfwd": None}, lambda out: out, onp.asarray)
    assert runner.measure(case, engine, QUICK, None, (0.01, 1, 1)).status == "n/a"


def test_progress_estimates_the_time_left_from_what_each_case_took():
    now = [0.0]
    progress = runner.Progress(["a", "b", "c"], n_engines=2, clock=lambda: now[0])
    now[0] = 100.0
    assert progress.step("a") == "[1/6, 1:40 so far, about 8:20 left]"  # b, c, then a, b, c: 100 s each
    now[0] = 101.0
    assert progress.step("b") == "[2/6, 1:41 so far, about 1:43 left]"  # c, twice, as the median: 1 s
    now[0] = 103.0
    assert progress.step("c") == "[3/6, 1:43 so far, about 1:43 left]"  # a, b, c again: 100, 1 and 2 s
    now[0] = 200.0
    assert progress.step("a") == "[4/6, 3:20 so far, about 0:03 left]"
    now[0] = 205.0
    assert progress.step("b") == "[5/6, 3:25 so far, about 0:02 left]"


def test_command_line_writes_report_and_json(tmp_path, capsys, monkeypatch):
    path = tmp_path / "out.json"
    # --glibc-malloc: leave this test process's allocator alone (it sets GPUAD_MALLOC: undone after)
    monkeypatch.setenv("GPUAD_MALLOC", "default")
    written, write_json = [], report.write_json
    monkeypatch.setattr(report, "write_json", lambda p, results, meta: written.append(len(results)) or
                        write_json(p, results, meta))
    assert main(["--quick", "--problems", "readme_jacfwd,tall", "--engines", "gpuad", "--budget", "0.01",
                 "--glibc-malloc", "--json", str(path)]) == 0
    text = capsys.readouterr().out
    assert "| tall_jacobian | J 128x8 |" in text
    data = json.loads(path.read_text())
    assert {r["status"] for r in data["results"]} == {"ok"} and len(data["results"]) == 4
    assert written[:4] == [1, 2, 3, 4]  # each case as it finished (a run cut short keeps them)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/status and clear_refs")
@pytest.mark.parametrize("kind,n,size", [("jacfwd", 300, 300 * 300 * 8), ("third", 6, 6**3 * 8),
                                         ("third-outer", 6, 6**3 * 8)])
def test_chunk_measures_in_this_process(kind, n, size):
    r = chunks.one(kind, n, "auto", False, 2)
    assert r["result"] == size and 0 < r["min_s"] <= r["median_s"] and r["first_s"] > 0


def test_allocator_measures_every_case_in_this_process():
    rows = allocator.one(50, 2)
    assert set(rows) == {f"{c}, {m}" for c in allocator.CASES for m in ("eager", "jit")}
    assert all(t > 0 and faults >= 0 for t, faults in rows.values())
