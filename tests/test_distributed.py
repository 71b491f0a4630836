"""Distributed analysis on a real Ray cluster (head + one worker node on loopback) gives the
same index as a single-process run, and resumes without redoing finished work."""

from __future__ import annotations

import contextlib
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
from fakes import live_processes, make_gallery

from rtsearch import atomic, store
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
    # this interpreter's own first: a venv's tests not activated started another Ray's
    # cluster from PATH (2.60 for a 2.9 client: "Could not read 'temp_dir' from GCS")
    own = Path(sys.executable).parent / "ray"
    ray_bin = str(own) if own.is_file() else shutil.which("ray") or str(own)
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

    # --exclude on the cluster as here: a folder left out, then taken in again and said
    ray_run = ("--model", tiny_model, "--dims", 16, "--quiet", "--ray", cluster)
    done = run_cli("analyze", gallery, "-o", out, "--exclude", "d1", *ray_run)
    assert done.returncode == 0, done.stderr
    assert "40 images (0 analysed, 40 reused, 20 removed, 1 skipped, 1 folder left out)" in (
        done.stdout
    )
    assert store.load(out).exclude == ("d1",)
    done = run_cli("analyze", gallery, "-o", out, "--no-exclude", *ray_run)
    assert done.returncode == 0, done.stderr
    assert f"warning: {out}: 20 images its --exclude 'd1' left out are taken in again, as " \
        "--no-exclude asks" in done.stderr  # fmt: skip


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


def test_a_port_where_something_else_listens_is_refused_in_seconds(tmp_path, tiny_model):
    """A web server (or Ray's dashboard) at the address: Ray retried it for over 6 minutes."""
    import http.server

    make_gallery(tmp_path / "g", 3)
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        done = run_cli(
            "analyze", tmp_path / "g", "-o", tmp_path / "x.dat", "--model", tiny_model,
            "--quiet", "--ray", f"127.0.0.1:{server.server_address[1]}",
        )  # fmt: skip
    finally:
        server.shutdown()
    assert done.returncode == 1
    assert done.stderr.startswith("rtsearch: error: Ray cluster 127.0.0.1:") and (
        done.stderr.count("\n") == 1
    )
    assert "something listens there, but not Ray" in done.stderr
    assert not (tmp_path / "x.dat").exists()


@pytest.mark.parametrize(
    ("given", "env", "says"),
    [
        (":123", None, "Ray cluster :123: no host before the port"),
        (
            "127.0.0.1:99999",
            None,
            "Ray cluster 127.0.0.1:99999: the port must be a number from 1 to 65535",
        ),
        ("127.0.0.1", None, "Ray cluster 127.0.0.1: no port; Ray takes HOST:PORT (*"),
        ("http://127.0.0.1:80", None, "Ray cluster http://127.0.0.1:80: not an address Ray *"),
        (
            "",
            "127.0.0.1:{port}",
            "Ray cluster RAY_ADDRESS=127.0.0.1:{port}, reached at *: cannot connect "
            "(Connection refused)",
        ),
    ],
)
def test_addresses_ray_cannot_use_are_one_line(tmp_path, tiny_model, given, env, says):
    """Ray printed a traceback for ":123", "Connection refused" for port 99999, took a URL
    for a host name and a missing port for its own format error (with the token hint); an
    address from RAY_ADDRESS was called "(local)" with a hint about Ray's record."""
    import fnmatch

    make_gallery(tmp_path / "g", 3)
    port = free_port()
    cmd = [sys.executable, "-m", "rtsearch", "analyze", str(tmp_path / "g")]
    cmd += ["-o", str(tmp_path / "x.dat"), "--model", str(tiny_model), "--quiet", "--ray"]
    cmd += [given] if given else []
    environ = ray_env()
    environ.pop("RAY_ADDRESS", None)
    if env:
        environ["RAY_ADDRESS"] = env.format(port=port)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=environ)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert fnmatch.fnmatchcase(done.stderr.strip(), "rtsearch: error: " + says.format(port=port))


def test_a_refused_address_hints_at_token_authentication_where_a_token_is_kept(
    tmp_path, monkeypatch
):
    """Ray (2.60) sends its token only for a cluster it finds itself; a cluster started
    with token authentication refuses an explicit address after 20 s of retries."""
    from rtsearch.distributed import _auth_hint

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    assert _auth_hint() == ""
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("x" * 64)
    assert _auth_hint().endswith("try RAY_AUTH_MODE=token")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # the user chose: no hint
    assert _auth_hint() == ""


def test_a_stopped_cluster_still_on_record_is_one_line(tmp_path, tiny_model):
    """`--ray` with no address: the cluster last started on this machine is gone (killed,
    the machine restarted) but Ray's record of it stays, and Ray retried it for minutes.
    ("auto" goes the same way unless another cluster runs here: Ray then takes that one.)"""
    make_gallery(tmp_path / "g", 3)
    record = tmp_path / "raytmp" / "ray" / "ray_current_cluster"
    record.parent.mkdir(parents=True)
    record.write_text(f"127.0.0.1:{free_port()}")  # nothing listens there
    cmd = [sys.executable, "-m", "rtsearch", "analyze", str(tmp_path / "g")]
    cmd += ["-o", str(tmp_path / "x.dat"), "--model", str(tiny_model), "--quiet", "--ray"]
    env = {**ray_env(), "RAY_TMPDIR": str(tmp_path / "raytmp")}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1
    line = done.stderr.strip()
    assert line.startswith("rtsearch: error: Ray cluster (local), reached at ")
    assert line.endswith(
        "cannot connect (Connection refused; `ray stop --force` forgets a stopped one)"
    )
    assert done.stderr.count("\n") == 1


def test_a_model_copy_left_by_a_killed_worker_is_removed_by_the_next(tmp_path):
    """Each worker loads a private copy of the model; one killed while loading left it."""
    from rtsearch.atomic import _HOST
    from rtsearch.distributed import private_copy

    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = tmp_path / f"rtsearch-model-{_HOST}-{gone.pid}-k2j4.onnx"
    running = tmp_path / f"rtsearch-model-{_HOST}-{os.getpid()}-x9q1.onnx"  # a live worker's
    unrelated = tmp_path / "rtsearch-model-notes.onnx"
    for path in (stale, running, unrelated):
        path.write_bytes(b"old")
    copy = private_copy(b"model bytes", ".onnx", tmp_path)
    assert copy.read_bytes() == b"model bytes" and copy.name.startswith(
        f"rtsearch-model-{_HOST}-{os.getpid()}-"
    )
    assert not stale.exists() and running.exists() and unrelated.exists()


@pytest.mark.parametrize("when", ["at work", "starting"])
def test_ctrl_c_twice_on_a_local_cluster_stops_it_and_keeps_the_work(tmp_path, default_model, when):
    """A terminal's Ctrl-C reaches the whole process group, twice: the second one broke
    Ray's shutdown at exit (a traceback, at times a crash), left its agents running, and
    Ray's workers printed errors after our one line. One while Ray was starting left its
    agents running too."""
    import tempfile

    make_gallery(tmp_path / "g", 800, subdirs=1)
    ray_tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths
    env = {**ray_env(), "RAY_TMPDIR": ray_tmp}
    env.pop("RAY_ADDRESS", None)
    out = tmp_path / "x.dat"
    cmd = [sys.executable, "-m", "rtsearch", "analyze", str(tmp_path / "g"), "-o", str(out)]
    cmd += ["--model", str(default_model), "--ray"]
    child = subprocess.Popen(
        cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
        start_new_session=True, cwd=ROOT,
    )  # fmt: skip
    try:
        lines = []
        if when == "starting":
            time.sleep(3.0)  # in ray.init (4-8 s here); a faster machine: at work
        else:
            for line in child.stderr:  # the first progress line: the cluster is at work
                lines.append(line)
                if "/800" in line:
                    break
        os.killpg(child.pid, signal.SIGINT)
        time.sleep(0.5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGINT)
        rest = child.stderr.read()
        child.wait(timeout=120)
        err = "".join(lines) + rest
        assert child.returncode == 130, err
        assert err.rstrip().endswith("rtsearch: interrupted") and "Traceback" not in err, err
        deadline = time.monotonic() + 10
        while _session(child.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _session(child.pid), "Ray processes of the run are still there"
        assert not out.exists()
        if when == "at work":
            assert (tmp_path / "x.dat.ckpt").is_dir()
    finally:
        for pid in _session(child.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _session(sid: int) -> list[int]:
    """Live processes in session ``sid``."""
    return [pid for pid, fields in live_processes().items() if fields[3] == str(sid)]


def test_an_index_being_written_is_refused_before_the_cluster_is_asked(tmp_path, tiny_model):
    make_gallery(tmp_path / "g", 3)
    out = tmp_path / "x.dat"
    with atomic.writer_lock(out):  # a local analyze or update of the same index, running
        done = run_cli(
            "analyze", tmp_path / "g", "-o", out, "--model", tiny_model, "--quiet",
            "--ray", f"127.0.0.1:{free_port()}",
        )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == (
        f"rtsearch: error: {out}: another rtsearch analyze, update, demo or viewer watching it "
        "is writing it; wait for it to end\n"
    )


def test_ray_runs_keep_the_local_runs_checks_before_and_after_the_cluster(tmp_path, tiny_model):
    """`--ray` shares analyze's start and finish: a rerun finding most images gone is
    refused, and one with nothing to do leaves the index file alone (it removed 25 of 30
    images without a word, and rewrote an unchanged index). Neither asks the cluster."""
    gallery, out = tmp_path / "g", tmp_path / "x.dat"
    make_gallery(gallery, 30)
    local = run_cli("analyze", gallery, "-o", out, "--model", tiny_model, "--quiet")
    assert local.returncode == 0, local.stderr
    dead = ("--ray", f"127.0.0.1:{free_port()}")  # any cluster work would fail on it
    before = out.stat()
    again = run_cli("analyze", gallery, "-o", out, "--model", tiny_model, "--quiet", *dead)
    assert again.returncode == 0, again.stderr
    assert (out.stat().st_ino, out.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    for f in sorted(gallery.rglob("img*"))[5:]:
        f.unlink()
    gone = run_cli("analyze", gallery, "-o", out, "--model", tiny_model, "--quiet", *dead)
    assert gone.returncode == 1 and gone.stderr.startswith(
        f"rtsearch: error: {gallery}: holds only 5 of the 30 images in {out}; analysing it "
        "would remove the other 25"
    ), gone.stderr
    assert store.load(out).count == 30


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
