"""`rtsearch bench --json --quick` end to end: every contract key, with sane types.

No timing assertions: the machine is shared; the figures are checked for shape and sense.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from fakes import live_processes

CONTRACT = {
    "model_b1_ips": float,
    "model_best_ips": float,
    "analyze_small_ratio": float,
    "analyze_large_ratio": float,
    "live_ratio": float,
    "latency_ms": float,
    "knn_145k_ms": float,
    "knn_1m_ms": float,
    "load_145k_s": float,
    "rss_145k_mb": float,
    "model": str,
    "provider": str,
}


@pytest.fixture(scope="module")
def quick_result(default_model) -> dict:
    cmd = [sys.executable, "-m", "rtsearch", "bench", "--json", "--quick"]
    # on a desktop that scales by 200% the viewer's figures are still for its 1x window
    env = {**os.environ, "GDK_SCALE": "2"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, "--json must print exactly one JSON object"
    return json.loads(lines[0])


def test_json_has_every_contract_key(quick_result) -> None:
    for key, kind in CONTRACT.items():
        assert key in quick_result, key
        value = quick_result[key]
        assert isinstance(value, kind) or (kind is float and isinstance(value, int)), key
        if kind is float:
            assert value > 0, key
    # ui_p99_ms is part of the contract; null only with a reason.
    assert "ui_p99_ms" in quick_result
    if quick_result["ui_p99_ms"] is None:
        assert quick_result["ui"]["note"]
    else:
        assert quick_result["ui_p99_ms"] >= quick_result["ui_p50_ms"] > 0
        assert quick_result["ui_rss_mb"] > 50  # the viewer's peak resident memory
        settings = quick_result["ui"]["settings"]
        assert (settings["ui_scale"], settings["window"]) == (1.0, [1280, 860])


def test_figures_are_consistent(quick_result) -> None:
    r = quick_result
    assert r["quick"] is True
    # the rows the size-named keys measured, said (--quick measures fewer)
    assert (r["knn_145k_rows"], r["knn_1m_rows"], r["load_145k_rows"]) == (14_500, 100_000, 14_500)
    assert r["model"] in r["models"]
    assert r["model_best_ips"] >= r["model_b1_ips"]
    for row in r["models"].values():
        rates = [*row["by_batch"].values(), *row.get("by_batch_streams", {}).values()]
        assert row["best_ips"] == max(rates)
        table = row["by_batch"] if row["best_streams"] == 1 else row["by_batch_streams"]
        assert table[str(row["best_batch"])] == row["best_ips"]
    for name, row in r["int8"].items():
        assert -1.0 <= row["cosine_min"] <= row["cosine_mean"] <= 1.0, name
    for size in ("small", "large"):
        assert r["analyze"][size]["images"] > 0 and r["analyze"][size]["skipped"] == 0
    video = r["live"]["video"]
    assert set(video["stages_ms"]) == {
        "grab",
        "trim",
        "preprocess",
        "inference",
        "projection",
        "knn",
        "thumbnails",
    }
    assert video["latency_p99_ms"] >= video["latency_p50_ms"] > 0
    knn = r["knn"]["small"]
    assert knn["auto_method"] in ("brute", "kdtree", "ann")
    assert r["knn_145k_ms"] == knn[f"{knn['auto_method']}_ms"]
    store = r["store"]
    assert store["with_features"]["file_mb"] > store["no_features"]["file_mb"]
    assert store["with_features"]["rss_mb"] > 0


def test_human_summary_names_every_stage(quick_result, capsys) -> None:
    from rtsearch.bench import print_summary

    print_summary(quick_result)
    text = capsys.readouterr().out
    for stage in ("1.", "2. analyze small", "2. analyze large", "3. live", "4. UI", "5. kNN"):
        assert stage in text
    assert text.count("6. .dat") == 2


@pytest.mark.parametrize("prefilter", [False, True])
@pytest.mark.parametrize("n", [1, 7, 300, 1000])
def test_brute_force_scan_is_exact(monkeypatch, n, prefilter) -> None:
    """The tuned scan (group-minimum threshold), with or without the int8 first pass,
    returns exactly the k nearest rows, across groups, in the rows after the last whole
    group, and with duplicate rows (ties); two threads querying at once get their own
    answers."""
    import numpy as np

    from rtsearch import search

    monkeypatch.setattr(search, "SCAN_CHUNK", 8)  # many groups on a small index
    monkeypatch.setattr(search, "PREFILTER_ROWS", (1, 10**9) if prefilter else (0, -1))
    rng = np.random.default_rng(n)
    vectors = rng.standard_normal((n, 12)).astype(np.float32)
    vectors[n // 2 :: 5] = vectors[0]  # exact duplicates of row 0, spread over blocks
    searcher = search.Searcher(vectors, "brute")
    assert (searcher._bounds is not None) == prefilter
    for q in (vectors[0], rng.standard_normal(12).astype(np.float32), np.zeros(12, np.float32)):
        dist = np.sqrt(((vectors.astype(np.float64) - q) ** 2).sum(1))
        for k in (1, 20, n + 3):
            hits = searcher.query(q, k)
            want = np.sort(dist)[: min(k, n)]
            # The rows found are the true nearest, in order but for distances within
            # search.TIE of each other (ranked by row) ...
            np.testing.assert_allclose(np.sort(dist[hits.indices]), want, atol=1e-4)
            tie = search.TIE * np.linalg.norm(q)
            assert np.all(np.diff(hits.distances) >= -tie * (1 + 1e-6))
            # ... and the reported distances are right.
            np.testing.assert_allclose(hits.distances, dist[hits.indices], atol=1e-6)
            assert len(set(hits.indices.tolist())) == len(hits.indices)
            if k == n + 3:
                assert sorted(hits.indices.tolist()) == list(range(n))
    queries = rng.standard_normal((200, 12)).astype(np.float32)
    alone = [searcher.query(q, 5).indices for q in queries]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda q: searcher.query(q, 5).indices, queries))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("method", ["brute", "prefiltered", "kdtree"])
def test_near_rows_are_ranked_by_their_true_distances_and_copies_by_row(monkeypatch, method):
    """Far from the origin the scan's |x|^2 - 2 x.q form loses small distances to float32
    cancellation (copies of one picture came out 0.0000 and 0.0005, in chance order): every
    method ranks the nearest by distances taken from the differences, exact copies at 0,
    ties by row unless one is asked to be first."""
    import numpy as np

    from rtsearch import search

    monkeypatch.setattr(search, "SCAN_CHUNK", 8)
    monkeypatch.setattr(
        search, "PREFILTER_ROWS", (1, 10**9) if method == "prefiltered" else (0, -1)
    )
    rng = np.random.default_rng(3)
    dims = 8 if method == "kdtree" else 24
    far = np.full(dims, 300.0, np.float32)
    vectors = far + rng.standard_normal((400, dims)).astype(np.float32)  # the others
    # a copy one float32 step off (two model runs' noise), two exact ones, then 0.05-0.2
    steps = np.array([3e-5, 0.0, 0.2, 0.1, 0.0, 0.05, 0.15], np.float32)
    near = np.arange(100, 100 + 7 * 40, 40)  # spread over the scan's groups
    vectors[near] = far
    vectors[near, 0] += steps
    searcher = search.Searcher(vectors, "kdtree" if method == "kdtree" else "brute")
    assert searcher.method == ("kdtree" if method == "kdtree" else "brute")
    assert (searcher._bounds is not None) == (method == "prefiltered")
    hits = searcher.query(far, 7)
    # the three copies at ~0 by row, then 0.05, 0.1, 0.15, 0.2
    assert hits.indices.tolist() == near[[0, 1, 4, 5, 3, 6, 2]].tolist()
    true = vectors[hits.indices, 0].astype(np.float64) - far[0]  # (300.05 is not a float32)
    np.testing.assert_allclose(hits.distances, true, rtol=1e-6, atol=0)
    assert searcher.query(far, 3, first=near[4]).indices.tolist() == near[[4, 0, 1]].tolist()
    assert searcher.query(far, 3, exclude=near[0]).indices.tolist() == near[[1, 4, 5]].tolist()


def test_the_int8_codes_take_a_range_whose_products_add_exactly_here() -> None:
    """On AVX2 without VNNI (an AMD EPYC), MatMulInteger's uint8 x int8 kernel saturated
    pairs of products at 16 bits: with codes up to 127 the bounds were wrong and the exact
    scan missed a row's own vector (distance 2.96, not 0). The range chosen for this
    machine adds its largest products exactly."""
    import numpy as np

    from rtsearch import prefilter

    top = prefilter.code_range()
    assert top in (prefilter.FULL, prefilter.REDUCED)
    d = 96
    codes = np.full((d, 4), top, np.int8)
    codes[:, 1] = -top
    codes[::2, 2] = -top
    query = np.full((1, d), 255, np.uint8)
    query[0, ::3] = 1
    (dots,) = prefilter._session(codes).run(None, {"query": query})
    exact = (query.astype(np.int64) - 128) @ codes.astype(np.int64)
    assert np.array_equal(dots.astype(np.int64), exact), (top, dots, exact)


@pytest.mark.parametrize("spread", ["isotropic", "pca-like"])
def test_int8_bounds_hold_and_prune(spread) -> None:
    """Every row's exact ranking distance lies within its int8 bounds (checked in float64),
    for zero rows, a zero query and PCA-like vectors whose first dimensions dwarf the rest;
    and on clustered data the bounds leave few rows to rank exactly."""
    import numpy as np

    from rtsearch.prefilter import Int8Bounds
    from rtsearch.search import _kth_bound

    rng = np.random.default_rng(7)
    n, d = 20_000, 100
    centres = rng.standard_normal((200, d))
    vectors = centres[rng.integers(0, 200, n)] + 0.3 * rng.standard_normal((n, d))
    if spread == "pca-like":
        vectors *= np.geomspace(30.0, 0.1, d)  # variance falling off like PCA components
    vectors = vectors.astype(np.float32)
    vectors[::997] = 0.0
    sq = np.einsum("ij,ij->i", vectors, vectors)
    bounds = Int8Bounds(vectors, sq)
    x64 = vectors.astype(np.float64)
    far = rng.standard_normal(d).astype(np.float32)
    queries = [vectors[5] + 0.01, far, np.zeros(d, np.float32)]
    kept = []
    for q in queries:
        lower, upper = bounds.bounds(q)
        exact = (x64**2).sum(1) - 2.0 * x64 @ q.astype(np.float64)
        assert (lower <= exact).all() and (exact <= upper).all()
        kept.append(int((lower <= _kth_bound(upper, 21)).sum()))
    assert kept[0] < n // 20  # a query among the data: a few percent at most


def test_stage_list_brings_what_a_stage_needs() -> None:
    import argparse

    from rtsearch.bench import stage_list

    assert stage_list("5") == (5,)
    assert stage_list("3") == (1, 2, 3)
    assert stage_list("6,4") == (1, 2, 4, 6)
    for bad in ("", "0", "7", "a,b"):
        with pytest.raises(argparse.ArgumentTypeError):
            stage_list(bad)


def test_chosen_stages_only(default_model, tmp_path) -> None:
    """`--stages 1,6`: the model and store figures, no other stage, and a summary without
    the skipped ones."""
    out = tmp_path / "b.json"
    cmd = [sys.executable, "-m", "rtsearch", "bench", "--quick", "--stages", "1,6", "--out"]
    done = subprocess.run([*cmd, str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    r = json.loads(out.read_text())
    assert r["stages"] == [1, 6] and r["model_b1_ips"] > 0 and r["load_145k_s"] > 0
    assert not {"analyze", "live", "ui", "knn"} & set(r)
    assert "1. model-only" in done.stdout and "6. .dat" in done.stdout
    assert "2. analyze" not in done.stdout and "5. kNN" not in done.stdout


def test_an_out_file_that_cannot_be_written_is_refused_before_measuring(
    tmp_path, monkeypatch, capsys
) -> None:
    import rtsearch.bench as bench
    from rtsearch.cli import main

    blocker = tmp_path / "afile.txt"
    blocker.write_text("a file, not a folder")
    out = blocker / "bench.json"
    measured: list[int] = []
    monkeypatch.setattr(bench, "measure", lambda *a, **k: measured.append(1))
    assert main(["bench", "--quick", "--stages", "1", "--out", str(out)]) == 1
    assert measured == []  # refused before any stage ran (it failed after them)
    assert capsys.readouterr().err == (
        f"rtsearch: error: {out}: cannot write results ({blocker} is a file, not a folder)\n"
    )


def test_stages_not_run_leave_their_contract_keys_null() -> None:
    """`--stages 5 --json` gave only the kNN keys: a tool reading the contract's keys got
    a KeyError instead of 'not measured'."""
    from rtsearch.bench import CONTRACT_KEYS

    cmd = [sys.executable, "-m", "rtsearch", "bench", "--json", "--quick", "--stages", "5"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(CONTRACT) | {"ui_p99_ms"} <= set(CONTRACT_KEYS)
    for key in CONTRACT_KEYS:
        assert key in result, key
    assert result["knn_145k_ms"] > 0 and result["model"] is None and result["ui_p99_ms"] is None


def test_a_broken_model_file_beside_the_others_fails_no_benchmark(tmp_path, tiny_model) -> None:
    """One empty .onnx in a model folder failed stage 1 for every --model; a --model file
    named like a listed one had its figures filed under the other's row."""
    import shutil

    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "broken.onnx").write_bytes(b"")
    shutil.copy(tiny_model, folder / "tiny.onnx")
    twin = tmp_path / "twin" / "tiny.onnx"
    twin.parent.mkdir()
    shutil.copy(tiny_model, twin)
    cmd = [sys.executable, "-m", "rtsearch", "bench", "--json", "--quick", "--stages", "1"]
    env = {**os.environ, "RTSEARCH_MODELS": str(folder)}
    done = subprocess.run(
        [*cmd, "--model", str(twin)], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["model"] == "tiny.onnx" and result["model_b1_ips"] > 0
    assert "broken.onnx: empty file" in done.stderr
    assert f"{folder / 'tiny.onnx'}: not measured (--model {twin} has the same file name)" in (
        done.stderr
    )


class SlowModel:
    """Stands in for an Extractor in the concurrent stage-1 loop: each run takes 20 ms."""

    streams = 2

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()
        self.running = self.most = self.calls = 0

    def run(self, x) -> None:
        import time

        with self.lock:
            self.running += 1
            self.calls += 1
            self.most = max(self.most, self.running)
        time.sleep(0.02)
        with self.lock:
            self.running -= 1


def test_a_ctrl_c_in_the_concurrent_model_loop_ends_its_runs_before_unwinding() -> None:
    """The runs of a stage-1 loop left going after a Ctrl-C held the model until the
    interpreter exited, and onnxruntime aborted freeing it there."""
    import threading
    import time

    from rtsearch.perf.model import concurrent_rate

    model = SlowModel()
    threading.Timer(0.3, _ctrl_c).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        concurrent_rate(model, None, budget_s=60.0)
    assert time.monotonic() - start < 10.0
    calls = model.calls
    time.sleep(0.2)
    assert model.most == 2, "the two runs went side by side"
    assert model.running == 0 and model.calls == calls, "no run goes on after the Ctrl-C"


def _ctrl_c() -> None:
    import signal

    os.kill(os.getpid(), signal.SIGINT)


def _alive(pid: int) -> bool:
    return pid in live_processes()


@pytest.mark.parametrize("how", ["timeout", "ctrl-c"])
def test_a_viewer_run_stopped_early_takes_its_whole_process_group(tmp_path, how) -> None:
    """`xvfb-run` killed alone (as subprocess.run does on a timeout or a Ctrl-C) left its
    Xvfb and the viewer running: the stand-in shell leaves a grandchild the same way."""
    import subprocess
    import threading
    import time

    from rtsearch.perf.ui import run_group

    pid_file = tmp_path / "pid"
    cmd = ["sh", "-c", f"sleep 120 & echo $! > {pid_file}; wait"]
    if how == "ctrl-c":
        threading.Timer(1.0, _ctrl_c).start()
    with pytest.raises(subprocess.TimeoutExpired if how == "timeout" else KeyboardInterrupt):
        run_group(cmd, timeout_s=1.0 if how == "timeout" else 60.0)
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 5.0
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_stage_4_past_its_time_leaves_no_viewer_or_xvfb(tmp_path, tiny_model) -> None:
    """End to end: bench_ui on a viewer that cannot finish in time reports why and leaves
    nothing of its run behind."""
    import time

    from fakes import make_gallery, write_video

    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor
    from rtsearch.perf.ui import bench_ui

    root = tmp_path / "pics"
    make_gallery(root, 8)
    index = tmp_path / "pics.dat"
    analyze(root, index, Extractor(tiny_model, threads=1), Settings(dims=8))
    video = tmp_path / "clip.avi"
    write_video(video, [1, 2], 5)
    env_display = os.environ.pop("DISPLAY", None)  # its own Xvfb, as on CI
    try:
        before = _processes("Xvfb")
        row = bench_ui(index, tiny_model, video, tmp_path, frames=10**7, timeout_s=15.0)
    finally:
        if env_display is not None:
            os.environ["DISPLAY"] = env_display
    assert row["p99_ms"] is None and "ran past 15 s" in row["note"]
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and (
        _processes(str(tmp_path)) or _processes("Xvfb") - before
    ):
        time.sleep(0.1)
    assert not _processes(str(tmp_path)), "the viewer is still running"
    assert not _processes("Xvfb") - before, "its Xvfb is still running"


def _processes(needle: str) -> set[int]:
    """Live processes whose command line holds ``needle``."""
    found = set()
    for pid in live_processes():
        if pid == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                line = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in line:
            found.add(pid)
    return found
