"""Distributed analysis on a real Ray cluster (head + one worker node on loopback) gives the
same index as a single-process run, and resumes without redoing finished work."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fakes import make_gallery

from rtsearch import store
from rtsearch.analyze import Settings, analyze
from rtsearch.distributed import Shard, plan_shards
from rtsearch.extractor import Extractor

ray = pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """`ray start --head` plus a second node, 1 CPU each; `ray stop` afterwards."""
    ray_bin = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    temp = tmp_path_factory.mktemp("ray")
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = ray_env()
    common = ["--num-cpus=1", "--disable-usage-stats"]
    head = [ray_bin, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1"]
    head += ["--include-dashboard=false", f"--temp-dir={temp}", *common]
    worker = [ray_bin, "start", f"--address={address}", "--node-ip-address=127.0.0.1", *common]
    try:
        for cmd in (head, worker):
            subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=120)
        yield address
    finally:
        subprocess.run([ray_bin, "stop", "--force"], env=env, capture_output=True, timeout=120)


def ray_env() -> dict[str, str]:
    # A loopback-only test cluster: no token auth, whatever ~/.ray/auth_token a local
    # `ray.init()` may have left behind (newer Ray then enables it on some nodes only).
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


def run_cli(*args, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "rtsearch", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ray_env(), cwd=cwd)


def test_shards_cover_the_work_once_and_are_named_by_content():
    todo = [f"img{i:03d}.jpg" for i in range(61)]
    shards = plan_shards(todo, workers=2)
    assert [p for s in shards for p in s.paths] == todo
    assert len(shards) == 8 and max(len(s.paths) for s in shards) == 8
    assert shards[0].name == Shard(tuple(todo[:8])).name != shards[1].name


def test_ray_cluster_matches_single_process_and_resumes(cluster, tmp_path, tiny_model):
    gallery = tmp_path / "gallery"
    make_gallery(gallery, 60)
    (gallery / "broken.jpg").write_bytes(b"not an image")
    single = tmp_path / "single.dat"
    analyze(gallery, single, Extractor(tiny_model), Settings(dims=16), warn=lambda m: None)

    # A single-process run interrupted after its first checkpoint leaves finished work
    # behind; the Ray run must take it over instead of analysing those images again.
    out = tmp_path / "ray.dat"
    stop = threading.Event()
    analyze(
        gallery,
        out,
        Extractor(tiny_model),
        Settings(dims=16, checkpoint_every=16, batch=8),
        progress=lambda p: stop.set() if p.done >= 16 else None,
        cancel=stop,
    )
    parts = list(Path(str(out) + ".ckpt").glob("part-*.dat"))
    reused = sum(store.load(p, allow_checkpoint=True).count for p in parts)
    assert parts and 16 <= reused < 60

    done = run_cli(
        "analyze", gallery, "-o", out, "--model", tiny_model, "--dims", 16, "--quiet",
        "--ray", cluster,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"60 images ({60 - reused} analysed, {reused} reused, 1 skipped)" in done.stdout
    assert "broken.jpg" in done.stderr and not Path(str(out) + ".ckpt").exists()

    a, b = store.load(single), store.load(out)
    assert a.paths == b.paths and len(a.paths) == 60
    assert np.abs(a.projected - b.projected).max() < 1e-5
    assert np.array_equal(a.sizes, b.sizes) and np.array_equal(a.mtimes, b.mtimes)


def test_unreachable_cluster_is_one_line(tmp_path, tiny_model):
    make_gallery(tmp_path / "g", 3)
    port = free_port()  # nothing listens there
    done = run_cli(
        "analyze", tmp_path / "g", "-o", tmp_path / "x.dat", "--model", tiny_model, "--quiet",
        "--ray", f"127.0.0.1:{port}",
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("rtsearch: error: Ray cluster 127.0.0.1:") and (
        done.stderr.count("\n") == 1
    )


def test_an_index_being_written_is_refused_before_the_cluster_is_asked(tmp_path, tiny_model):
    make_gallery(tmp_path / "g", 3)
    out = tmp_path / "x.dat"
    with store.writer_lock(out):  # a local analyze or update of the same index, running
        done = run_cli(
            "analyze", tmp_path / "g", "-o", out, "--model", tiny_model, "--quiet",
            "--ray", f"127.0.0.1:{free_port()}",
        )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == (
        f"rtsearch: error: {out}: another rtsearch analyze or update is writing it; "
        "wait for it to end\n"
    )


def test_a_killed_worker_is_replaced_and_its_shard_retried(cluster, tmp_path, tiny_model):
    gallery = tmp_path / "gallery"
    make_gallery(gallery, 400)
    out = tmp_path / "ray.dat"
    cmd = [sys.executable, "-m", "rtsearch", "analyze", str(gallery), "-o", str(out)]
    cmd += ["--model", str(tiny_model), "--quiet", "--batch", "4", "--ray", cluster]
    run = subprocess.Popen(cmd, env=ray_env(), cwd=ROOT, stdout=subprocess.PIPE, text=True)
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and run.poll() is None and time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-f", "ray::ShardWorker"], capture_output=True, text=True)
        pids = [int(p) for p in found.stdout.split()]
        if pids and (Path(str(out) + ".ckpt")).exists():  # mid-run: some shards finished
            os.kill(pids[0], signal.SIGKILL)
            killed = pids[0]
        time.sleep(0.05)
    stdout, _ = run.communicate(timeout=300)
    assert killed is not None, "the run ended before a worker could be killed"
    assert run.returncode == 0 and "400 images (400 analysed" in stdout
    single = tmp_path / "single.dat"
    analyze(gallery, single, Extractor(tiny_model), Settings())
    a, b = store.load(single), store.load(out)
    assert a.paths == b.paths and np.abs(a.projected - b.projected).max() < 1e-5


def test_a_relative_folder_is_found_by_workers_started_elsewhere(cluster, tmp_path, tiny_model):
    """The cluster's workers run in its folder, not ours: a relative DIR skipped every
    image ("No such file or directory") on any cluster started from another folder."""
    make_gallery(tmp_path / "gallery", 12)
    done = run_cli(
        "analyze", "gallery", "-o", "rel.dat", "--model", tiny_model, "--dims", 8, "--quiet",
        "--ray", cluster, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "12 images (12 analysed, 0 reused, 0 skipped)" in done.stdout
    assert store.load(tmp_path / "rel.dat").count == 12
