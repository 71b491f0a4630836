"""The .dat loader refuses every damaged or hostile index with one line; saves are atomic."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtsearch import atomic, store
from rtsearch.cli import main
from rtsearch.errors import RtsearchError
from rtsearch.projection import Projection
from rtsearch.store import Index, ModelRef

ROOT = Path(__file__).resolve().parent.parent
MODEL = ModelRef("tiny", "tiny/fc/" + "0" * 64, "fc", 8)


def small_index(n: int = 6, d: int = 3, seed: int = 0) -> Index:
    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((MODEL.feature_dims, d)).astype(np.float32)
    projection = Projection("random", matrix, np.zeros(MODEL.feature_dims, np.float32), True)
    return Index(
        paths=[f"d/img{i}.jpg" for i in range(n)],
        model=MODEL,
        sizes=np.arange(n, dtype=np.int64) + 100,
        mtimes=np.full(n, 1.7e9),
        projected=rng.standard_normal((n, d)).astype(np.float32),
        projection=projection,
        base_dir="/nowhere",
    )


@pytest.fixture
def valid(tmp_path) -> Path:
    store.save(small_index(), tmp_path / "valid.dat")
    return tmp_path / "valid.dat"


def _edit(path: Path, change: Callable[[h5py.File], None]) -> Path:
    """``change`` made to the file as a program would make it: its checksums made anew
    (each check behind them is what refuses it, not theirs)."""
    with h5py.File(path, "r+") as f:
        change(f)
        _reseal(f)
    return path


def _reseal(f: h5py.File) -> None:
    def seal(name: str, ds) -> None:
        if isinstance(ds, h5py.Dataset) and store.CRC in ds.attrs:
            data = [str(p) for p in ds.asstr()[()]] if name == "paths" else ds[()]
            ds.attrs[store.CRC] = store._paths_crc(data) if name == "paths" else zlib.crc32(data)

    f.visititems(seal)
    if store.ATTRS_CRC in f.attrs:
        f.attrs[store.ATTRS_CRC] = store._attrs_crc(f)


def _replace(name: str, data) -> Callable[[h5py.File], None]:
    def change(f: h5py.File) -> None:
        del f[name]
        f.create_dataset(name, data=data)

    return change


def _set_paths(paths: list[str]) -> Callable[[h5py.File], None]:
    def change(f: h5py.File) -> None:
        del f["paths"]
        f.create_dataset("paths", data=np.array(paths, dtype=object), dtype=store._STR)

    return change


def _projected_with(value: float) -> Callable[[h5py.File], None]:
    def change(f: h5py.File) -> None:
        f["projected"][2, 1] = value

    return change


def _external_storage(f: h5py.File) -> None:
    secret = Path(f.filename).parent / "outside-secret.bin"
    secret.write_bytes(np.arange(18, dtype=np.float32).tobytes())
    del f["projected"]
    f.create_dataset("projected", shape=(6, 3), dtype=np.float32, external=[(str(secret), 0, 72)])


def _external_link(f: h5py.File) -> None:
    other = Path(f.filename).parent / "other.h5"
    with h5py.File(other, "w") as o:
        o["projected"] = np.zeros((6, 3), np.float32)
    del f["projected"]
    f["projected"] = h5py.ExternalLink(str(other), "projected")


def _sparse_huge(f: h5py.File) -> None:
    del f["sizes"]
    f.create_dataset("sizes", shape=(2_000_000_000,), dtype=np.int64, chunks=(1024,))


# name -> (how to damage a valid index, a word the one-line refusal must contain)
DAMAGE: dict[str, tuple[Callable[[Path], object], str]] = {
    "truncated": (
        lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
        "index file (truncated: ",
    ),
    "random bytes": (
        lambda p: p.write_bytes(np.random.default_rng(1).bytes(4096)),
        "not a readable index file (not an HDF5 file)",
    ),
    "another HDF5 schema": (
        lambda p: h5py.File(p, "w").create_dataset("images", data=np.zeros(3)).file.close(),
        "another HDF5 schema",
    ),
    "wrong version": (lambda p: _edit(p, lambda f: f.attrs.modify("version", 99)), "version 99"),
    "projected dims mismatch": (
        lambda p: _edit(p, _replace("projected", np.zeros((6, 4), np.float32))),
        "projected has shape",
    ),
    "feature dims mismatch": (
        lambda p: _edit(p, lambda f: f.attrs.modify("feature_dims", 9)),
        "shape",
    ),
    "row count mismatch": (
        lambda p: _edit(p, _replace("sizes", np.zeros(5, np.int64))),
        "sizes has shape",
    ),
    "absolute path": (lambda p: _edit(p, _set_paths(["/etc/passwd"] + ["a.jpg"] * 5)), "escapes"),
    "dot-dot path": (lambda p: _edit(p, _set_paths(["ok.jpg", "../../x.jpg"] * 3)), "escapes"),
    "NaN vector": (lambda p: _edit(p, _projected_with(np.nan)), "NaN"),
    "inf vector": (lambda p: _edit(p, _projected_with(np.inf)), "infinite"),
    "empty index": (lambda p: store.save(small_index(n=0), p), "empty index"),
    "missing dataset": (lambda p: _edit(p, lambda f: f.__delitem__("mtimes")), "mtimes"),
    "text where numbers belong": (
        lambda p: _edit(p, _replace("sizes", np.array(["a"] * 6, dtype=object))),
        "sizes",
    ),
    "data in an external file": (lambda p: _edit(p, _external_storage), "another file"),
    "external link": (lambda p: _edit(p, _external_link), "ExternalLink"),
    "sparse 2e9-row dataset": (lambda p: _edit(p, _sparse_huge), "far fewer bytes"),
    "checkpoint, not an index": (
        lambda p: store.save(
            Index(
                paths=["a.jpg"],
                model=MODEL,
                sizes=np.ones(1, np.int64),
                mtimes=np.ones(1),
                features=np.ones((1, 8), np.float32),
            ),
            p,
        ),
        "checkpoint",
    ),
    "a directory": (lambda p: (p.unlink(), p.mkdir()), "is a folder, not an index file"),
    "an unknown projection": (  # (it loaded, and `info` showed "projection bogus")
        lambda p: _edit(p, lambda f: f.attrs.modify("projection", "bogus")),
        "malformed index (projection 'bogus')",
    ),
    "an empty file": (lambda p: p.write_bytes(b""), "empty file (0 bytes), not an index"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_index_is_refused_with_one_line(valid, case, capsys):
    damage, word = DAMAGE[case]
    damage(valid)
    with pytest.raises(RtsearchError) as err:
        store.load(valid)
    message = str(err.value)
    assert message.startswith(f"{valid}: ") and "\n" not in message and word in message
    for argv in (["info", valid], ["query", valid, "--index", valid, "--model", "none.onnx"]):
        code = main([str(a) for a in argv])
        _, stderr = capsys.readouterr()
        assert code != 0
        assert stderr.count("\n") == 1 and stderr.startswith("rtsearch: error: ")
        assert word in stderr


def test_refusals_from_a_real_process_have_no_traceback(tmp_path):
    """One subprocess per damage kind family: the CLI as a user runs it."""
    for case in ("random bytes", "dot-dot path", "NaN vector", "empty index", "external link"):
        path = tmp_path / f"{case.replace(' ', '-')}.dat"
        store.save(small_index(), path)
        DAMAGE[case][0](path)
        run = subprocess.run(
            [sys.executable, "-m", "rtsearch", "info", str(path), "--json"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        assert run.returncode == 1 and run.stdout == ""
        assert run.stderr.startswith("rtsearch: error: ") and run.stderr.count("\n") == 1
        assert "Traceback" not in run.stderr


def test_info_json_counts(valid, capsys):
    assert main(["info", str(valid), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 6


def test_round_trip_keeps_everything(tmp_path):
    index = small_index(n=50, d=5, seed=3)
    store.save(index, tmp_path / "x.dat")
    back = store.load(tmp_path / "x.dat")
    assert back.paths == index.paths and back.model == index.model
    np.testing.assert_array_equal(back.projected, index.projected)
    np.testing.assert_array_equal(back.projection.matrix, index.projection.matrix)
    np.testing.assert_array_equal(back.sizes, index.sizes)


def test_unknown_kind_is_refused(tmp_path, monkeypatch):
    """Found by the fuzzer: one flipped byte in the kind attribute ("indeX") loaded as an
    index without its projection, which failed later, far from the file. The viewer's
    memory-mapping loader reads the same header checks."""
    import h5py

    from rtsearch import bigstore

    path = tmp_path / "x.dat"
    store.save(small_index(n=4, d=2), path)
    with h5py.File(path, "r+") as f:
        f.attrs["kind"] = "indeX"
        _reseal(f)  # (a program's doing: a flip on disk is refused by its checksum)
    monkeypatch.setattr(bigstore, "MAP_MIN_BYTES", 0)
    for load in (store.load, bigstore.load):
        with pytest.raises(RtsearchError, match=r"x\.dat: malformed index \(kind 'indeX'\)"):
            load(path)


# ---------------------------------------------------------------- fuzzing the loader


@pytest.fixture(scope="module")
def valid_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("fuzz") / "seed.dat"
    store.save(small_index(n=4, d=2), path)
    return path.read_bytes()


FUZZ_COUNT = {"examples": 0, "refused": 0, "loaded": 0}


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    flips=st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.one_of(st.none(), st.integers(0, 2**31)),
)
def test_fuzzed_index_only_raises_rtsearch_error(tmp_path, monkeypatch, valid_bytes, flips, cut):
    monkeypatch.setattr(store, "PROBE_TIMEOUT_S", 2.0)  # some mutations hang libhdf5
    data = bytearray(valid_bytes)
    for offset, value in flips:
        data[offset % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    path = tmp_path / "fuzzed.dat"
    path.write_bytes(bytes(data))
    FUZZ_COUNT["examples"] += 1
    try:
        index = store.load(path)
    except RtsearchError as exc:
        FUZZ_COUNT["refused"] += 1
        assert "\n" not in str(exc) and str(exc).startswith(str(path))
        return
    FUZZ_COUNT["loaded"] += 1  # the mutation hit padding or data: it must still be sane
    assert index.count == len(index.paths) > 0
    assert all(not p.startswith("/") and ".." not in p.split("/") for p in index.paths)
    assert np.isfinite(index.projected).all()


def hanging_index(folder: Path) -> Path:
    """Found by fuzzing: these four bytes make HDF5 1.14 loop forever reading attributes."""
    path = folder / "hang.dat"
    store.save(small_index(n=4, d=2), path)
    data = bytearray(path.read_bytes())
    for offset, value in ((2368, 0xE8), (3087, 0xE8), (8651, 0x6A), (10141, 0xF3)):
        data[offset] = value
    path.write_bytes(bytes(data))
    return path


def test_file_that_hangs_libhdf5_is_refused_in_bounded_time(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "PROBE_TIMEOUT_S", 2.0)
    path = hanging_index(tmp_path)
    start = time.monotonic()
    with pytest.raises(RtsearchError, match=r"hang\.dat: "):
        store.load(path)
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("threads", [1, 2])
def test_the_mapping_loader_refuses_a_file_that_hangs_libhdf5(tmp_path, threads):
    """The viewer's and query's loader (bigstore, for indexes big enough to map) opened the
    file with h5py in its own process to see what it could map, before any probe: a damaged
    big index hung the viewer for good. It runs here in a process of its own (one thread:
    the probe forks; two: it starts a new interpreter), so that a hang fails the test."""
    path = hanging_index(tmp_path)
    code = (
        "import sys, threading, time\n"
        "from rtsearch import bigstore, store\n"
        "bigstore.MAP_MIN_BYTES = 0  # map even this small file\n"
        "store.PROBE_TIMEOUT_S = 2.0\n"
        f"for _ in range({threads} - 1):\n"
        "    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
        "try:\n"
        "    bigstore.load(sys.argv[1])\n"
        "except Exception as exc:\n"
        "    print(exc)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=40
    )
    assert run.stdout.strip() == f"{path}: corrupt index (reading it did not finish in 2 s)"


def test_the_mapping_probe_leaves_the_scan_of_the_vectors_to_the_loader(tmp_path, monkeypatch):
    """The probe's child does what the HDF5 library does for the mapping loader, not its
    finiteness scan of the mapped vectors: read twice, a 4 GB index on a slow disk passed
    the probe's deadline. The loader still scans, and refuses NaN."""
    from rtsearch import bigstore

    monkeypatch.setattr(bigstore, "MAP_MIN_BYTES", 0)
    path = tmp_path / "nan.dat"
    store.save(small_index(n=4, d=2), path)
    with h5py.File(path, "r+") as f:
        f["projected"][1, 0] = np.nan
    bigstore.probe_read(path, False)
    store.probe(path, mapped=True, fork=True)
    with pytest.raises(RtsearchError, match=r"nan\.dat: projected holds NaN or infinite values"):
        bigstore.load(path)


def test_a_huge_index_gets_the_time_to_be_read(tmp_path, monkeypatch):
    """The probe's deadline grows with the file: a 4 GB index on a slow disk is not taken
    for one that hangs the HDF5 library."""
    path = tmp_path / "x.dat"
    store.save(small_index(), path)
    small = store.probe_timeout(path)
    assert store.PROBE_TIMEOUT_S <= small < store.PROBE_TIMEOUT_S + 1
    with open(path, "r+b") as f:
        f.truncate(4_000_000_000)  # sparse: no disk used
    assert store.probe_timeout(path) >= store.PROBE_TIMEOUT_S + 4e9 / 200e6


@pytest.mark.parametrize("failure", ["segfault", "hang"])
@pytest.mark.parametrize("fork", [True, False])
def test_probe_turns_a_crash_or_hang_of_the_reader_into_one_line(valid, monkeypatch, failure, fork):
    """The child reader dies or never returns (as libhdf5 does on some damaged files): the
    caller still gets one line and stays alive; in a forked child and in a new interpreter."""
    monkeypatch.setattr(store, "PROBE_TIMEOUT_S", 2.0)
    if fork:
        real = store._load_here
        parent = os.getpid()

        def reader(*args):
            if os.getpid() != parent:  # only in the forked child
                if failure == "segfault":
                    os.kill(os.getpid(), signal.SIGSEGV)
                time.sleep(60)
            return real(*args)

        monkeypatch.setattr(store, "_load_here", reader)
    else:  # the new interpreter runs whatever python -c is given
        act = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
        act = act if failure == "segfault" else "import time; time.sleep(60)"
        real_run = subprocess.run
        monkeypatch.setattr(
            store.subprocess, "run", lambda args, **kw: real_run([*args[:2], act], **kw)
        )
    expected = "SIGSEGV" if failure == "segfault" else "did not finish in 2 s"
    with pytest.raises(RtsearchError, match=expected):
        store.probe(valid, fork=fork)
    assert store.load(valid, isolate=False).count == 6


def test_a_refusal_from_either_child_is_the_same_line(tmp_path, valid):
    bad = tmp_path / "bad.dat"
    bad.write_bytes(valid.read_bytes()[:5000])  # cut short
    said = set()
    for fork in (True, False):
        with pytest.raises(RtsearchError) as exc:
            store.probe(bad, fork=fork)
        said.add(str(exc.value))
    assert len(said) == 1 and said.pop().startswith(f"{bad}: ")
    store.probe(valid, fork=False)  # and a good file passes


def test_the_new_interpreter_reads_with_this_rtsearch_whatever_the_current_folder(
    tmp_path, valid, monkeypatch
):
    """`python -c` puts the current folder first: another checkout's rtsearch/ there was
    imported instead, and every load said 'malformed index'."""
    other = tmp_path / "checkout" / "rtsearch"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("")
    (other / "store.py").write_text("raise SystemExit(9)\n")
    monkeypatch.chdir(other.parent)
    store.probe(valid, fork=False)


def test_loading_while_another_thread_runs_blas_never_hangs_it(valid):
    """fork() stops OpenBLAS's thread pool, and a BLAS call running meanwhile in another
    thread waited forever: the viewer's re-projection (eigh) hung while --watch loaded the
    index. With other threads running, the probe starts a new interpreter instead."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 128))
    cov, calls, stop = a.T @ a, [0], threading.Event()

    def blas() -> None:
        while not stop.is_set():
            np.linalg.eigh(cov)
            calls[0] += 1

    thread = threading.Thread(target=blas, daemon=True)
    thread.start()
    try:
        for _ in range(5):
            assert store.load(valid).count == 6
        before, deadline = calls[0], time.monotonic() + 10
        while calls[0] == before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert calls[0] > before, "the BLAS thread stopped"
    finally:
        stop.set()
        thread.join(5)


# ---------------------------------------------------------------- atomic saves


def test_disk_full_during_save_keeps_previous_file(valid, monkeypatch):
    before = valid.read_bytes()
    real_create = h5py.Group.create_dataset

    def full_disk(self, name, *args, **kwargs):
        if name == "projected":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_create(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", full_disk)
    with pytest.raises(RtsearchError, match=r"valid\.dat: cannot write index \(No space left"):
        store.save(small_index(n=300, seed=9), valid)
    monkeypatch.undo()
    assert valid.read_bytes() == before and store.load(valid).count == 6
    assert [p.name for p in valid.parent.iterdir()] == ["valid.dat"]  # no temp file left


def test_a_read_only_mount_is_said_so_not_full(tmp_path, monkeypatch):
    """A read-only file system says 0 bytes free (sysfs, squashfs, an ISO image): a save
    there said "No space left on device" instead of why it cannot be written."""
    import tempfile

    real_temp = tempfile.NamedTemporaryFile

    def read_only(*args, dir=None, **kwargs):
        if Path(dir) == tmp_path / "ro":
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_temp(*args, dir=dir, **kwargs)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(0, 0, 0))
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", read_only)
    with pytest.raises(RtsearchError) as refused:
        store.save(small_index(), tmp_path / "ro" / "x.dat")
    assert str(refused.value) == f"{tmp_path}/ro/x.dat: cannot write index (Read-only file system)"
    with pytest.raises(store.NoRoom, match=r"\(No space left on device: it needs about "):
        store.save(small_index(), tmp_path / "x.dat")  # writable, and full


def _mount_tmpfs(where: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    where.mkdir()
    run = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)])
    return run.returncode == 0


def test_disk_really_full_on_a_small_tmpfs(tmp_path):
    """A 1 MiB tmpfs holds the small index but not a 6 MiB one: h5py's own ENOSPC."""
    mount = tmp_path / "small"
    if not _mount_tmpfs(mount, "1m"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount rights)")
    try:
        dest = mount / "index.dat"
        store.save(small_index(), dest)
        before = dest.read_bytes()
        big = small_index(n=200_000, d=8)
        with pytest.raises(RtsearchError) as err:
            store.save(big, dest)
        assert "No space left on device" in str(err.value) and "\n" not in str(err.value)
        assert dest.read_bytes() == before and store.load(dest).count == 6
        assert sorted(p.name for p in mount.iterdir()) == ["index.dat"]
    finally:
        subprocess.run(["umount", str(mount)])


def test_a_save_the_disk_cannot_hold_is_refused_before_hdf5_starts(tmp_path):
    """HDF5 failing mid-write left objects it could not close, and the interpreter crashed
    on them at exit (status 139, sometimes without the error line): a real analyze with
    full features onto a 64 KiB tmpfs now ends with one line and status 1."""
    mount = tmp_path / "tiny"
    if not _mount_tmpfs(mount, "64k"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount rights)")
    try:
        sys.path.insert(0, str(Path(__file__).parent))
        from fakes import make_gallery, write_tiny_model

        make_gallery(tmp_path / "g", 120)
        model = write_tiny_model(tmp_path / "tiny.onnx")
        out = mount / "x.dat"
        done = subprocess.run(
            [sys.executable, "-m", "rtsearch", "analyze", str(tmp_path / "g"), "-o", str(out),
             "--model", str(model), "--dims", "8", "--keep-features", "--quiet"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 1, done.stderr
        lines = done.stderr.splitlines()
        assert lines[-1].startswith(f"rtsearch: error: {out}: cannot write index (No space left")
        assert all(line.startswith(("rtsearch: ", "warning: ")) for line in lines), lines
        assert not [p for p in mount.rglob("*") if p.is_file()]
    finally:
        subprocess.run(["umount", str(mount)])


def test_a_checkpoint_that_cannot_be_written_is_said_once_and_the_run_goes_on(
    tmp_path, monkeypatch
):
    from fakes import make_gallery, write_tiny_model

    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor

    make_gallery(tmp_path / "g", 40)
    real = shutil.disk_usage

    def disk_usage(path):  # the checkpoint folder's disk is full
        usage = real(path)
        return usage._replace(free=100) if str(path).endswith(".ckpt") else usage

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    warnings: list[str] = []
    out = tmp_path / "x.dat"
    model = Extractor(write_tiny_model(tmp_path / "tiny.onnx"), threads=1)
    settings = Settings(dims=8, checkpoint_every=8, batch=4)
    report = analyze(tmp_path / "g", out, model, settings, warn=warnings.append)
    assert report.index.count == 40 and store.load(out).count == 40
    assert len(warnings) == 1 and "going on without checkpoints" in warnings[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g", "tiny.onnx", "x.dat"]


SAVER = """
import sys, time, numpy as np
sys.path.insert(0, {tests!r})
from test_store import small_index
from rtsearch import atomic, store
print("ready", flush=True)
while True:
    store.save(small_index(n=20000, d=16, seed=int(time.time() * 1000) % 1000), {dest!r})
"""


def test_sigkill_during_save_leaves_a_loadable_file(tmp_path):
    """Kill a process that saves in a loop at several moments: the .dat always loads."""
    dest = tmp_path / "index.dat"
    store.save(small_index(), dest)
    rng = np.random.default_rng(0)
    for delay in rng.uniform(0.05, 0.6, size=6):
        script = SAVER.format(tests=str(ROOT / "tests"), dest=str(dest))
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        proc.kill()
        proc.wait()
        index = store.load(dest)
        assert index.count in (6, 20000) and np.isfinite(index.projected).all()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "index.dat"]
    # A killed writer can leave its temp file; it never replaces or damages the index,
    # and the next save to the same index removes it.
    assert all(name.startswith(".index.dat.") and name.endswith(".tmp") for name in leftovers)
    store.save(small_index(), dest)
    assert [p.name for p in tmp_path.iterdir()] == ["index.dat"]


def test_a_save_removes_only_abandoned_temp_files(tmp_path):
    import os

    from rtsearch.atomic import _HOST, STALE_TEMP_S

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    names = {
        f".index.dat.{_HOST}-{dead}-abc.tmp": False,  # its writer is gone
        f".index.dat.{_HOST}-{os.getpid()}-abc.tmp": True,  # a live writer (this process)
        ".index.dat.otherhost-1-abc.tmp": True,  # another machine's, recent
        ".index.dat.otherhost-2-abc.tmp": False,  # another machine's, a day old
        ".index.dat.x1y2z3.tmp": False,  # the old naming, a day old
        ".other.dat.x1y2z3.tmp": True,  # another file's
    }
    for name in names:
        (tmp_path / name).write_bytes(b"partial")
    old = time.time() - STALE_TEMP_S - 60
    for name in (".index.dat.otherhost-2-abc.tmp", ".index.dat.x1y2z3.tmp"):
        os.utime(tmp_path / name, (old, old))
    store.save(small_index(), tmp_path / "index.dat")
    left = {p.name for p in tmp_path.iterdir()} - {"index.dat"}
    assert left == {name for name, kept in names.items() if kept}


def test_a_save_under_a_file_names_the_file(tmp_path, valid):
    """It said 'cannot write index (File exists)', from mkdir, as if it refused to overwrite."""
    dest = valid / "x.dat"
    with pytest.raises(RtsearchError) as exc:
        store.save(small_index(), dest)
    assert str(exc.value) == f"{dest}: cannot write index ({valid} is a file, not a folder)"


def test_long_destination_name_saves(tmp_path):
    dest = tmp_path / ("i" * 251 + ".dat")
    atomic.check_writable(dest)  # its probe file's name is cut short too
    store.save(small_index(), dest)
    assert store.load(dest).count == 6


def test_saved_index_gets_the_usual_file_mode(tmp_path):
    """The temp file behind an atomic save is 0600; the finished index follows the umask."""
    import os

    from rtsearch.atomic import atomic_path

    old = os.umask(0o022)
    os.umask(old)
    dest = tmp_path / "x.dat"
    with atomic_path(dest) as tmp:
        tmp.write_bytes(b"x")
    assert dest.stat().st_mode & 0o777 == 0o666 & ~old


def test_a_save_keeps_the_file_mode_and_writes_through_a_symlink(tmp_path):
    import os

    real = tmp_path / "real.dat"
    store.save(small_index(), real)
    real.chmod(0o600)  # private: the photos' names
    link = tmp_path / "current.dat"
    link.symlink_to(real)
    with atomic.writer_lock(real), pytest.raises(atomic.IndexBusy), atomic.writer_lock(link):
        pass  # one lock for both names
    store.save(small_index(n=9), link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert store.load(real).count == 9 and real.stat().st_mode & 0o777 == 0o600
    # a link into a folder that is not there: refused before the work (analyze ran it all,
    # then said "the output folder went away during the analysis")
    dangling = tmp_path / "dangling.dat"
    dangling.symlink_to(tmp_path / "nowhere" / "z.dat")
    with pytest.raises(RtsearchError) as info:
        atomic.check_writable(dangling)
    assert str(info.value) == (
        f"{dangling}: cannot write index (a link to {tmp_path / 'nowhere' / 'z.dat'}, in a "
        "folder that does not exist)"
    )


@pytest.mark.parametrize("mapped", [False, True])
def test_viewer_loader_reads_features_once_and_checks_them(tmp_path, monkeypatch, mapped):
    """bigstore.load(features=True), as re-projection in the viewer asks: the stored rows,
    without a second copy (they come back as float32 as stored), NaN refused in one line
    naming the file, None when the index kept none."""
    from dataclasses import replace

    from rtsearch import bigstore

    monkeypatch.setattr(bigstore, "MAP_MIN_BYTES", 0 if mapped else 1 << 40)
    rng = np.random.default_rng(5)
    base = small_index(n=40, d=3)
    feats = rng.standard_normal((40, MODEL.feature_dims)).astype(np.float32)
    store.save(replace(base, features=feats), with_features := tmp_path / "f.dat")
    store.save(base, without := tmp_path / "n.dat")
    loaded = bigstore.load(with_features, features=True)
    assert loaded.features.dtype == np.float32 and np.array_equal(loaded.features, feats)
    assert bigstore.load(without, features=True).features is None
    with h5py.File(with_features, "r+") as f:
        f["features"][7, 1] = np.inf
        _reseal(f)
    with pytest.raises(RtsearchError, match=r"f\.dat: features holds NaN or infinite values$"):
        bigstore.load(with_features, features=True)


def test_a_destination_that_is_a_pipe_or_a_device_is_refused_before_the_work(tmp_path):
    """A result is written beside its destination and renamed over it: `bench --out` turned
    a FIFO (and, as root, /dev/full) into a plain file, and `--out /dev/stdout` failed with
    a traceback after the whole run. Refused up front, through links, in one line."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link.json"
    link.symlink_to(fifo)
    for dest in (fifo, link):
        with pytest.raises(RtsearchError) as exc:
            atomic.check_writable(dest, "results")
        assert str(exc.value) == f"{dest}: cannot write results (not a regular file)"
    assert fifo.is_fifo()
    done = subprocess.run(
        [sys.executable, "-m", "rtsearch", "bench", "--quick", "--stages", "5", "--out", str(fifo)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and fifo.is_fifo()
    assert (
        done.stderr.strip() == f"rtsearch: error: {fifo}: cannot write results (not a regular file)"
    )


@pytest.mark.parametrize("rows", [1, 1023, 1025, 1500, 2049])
def test_the_room_a_save_needs_is_not_underestimated(tmp_path, rows):
    """Features are stored in whole chunks: 1500 rows in chunks of 1024 took room for 2048,
    the check allowed 7.6 MiB for a 10.6 MB part, and HDF5 then failed mid-write (tracebacks,
    then a segfault at exit, after the success line)."""
    index = small_index(n=rows, seed=rows)
    index.features = np.random.default_rng(rows).random((rows, MODEL.feature_dims), np.float32)
    dest = tmp_path / "x.dat"
    need, free = store.room_for(index, dest)
    store.save(index, dest)
    assert free is not None and dest.stat().st_size <= need
    chunk = store.feature_chunk_rows(rows)
    assert chunk <= 1024 and -(-rows // chunk) * chunk - rows < -(-rows // 1024)  # padding


def test_a_dead_writers_temp_file_is_removed_before_the_room_is_measured(tmp_path):
    """A killed save's hidden temp file held the room, and every later save was refused
    for lack of it: the file was removed only once a write began."""
    dest = tmp_path / "z.dat"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    left = tmp_path / f"{atomic.temp_prefix(dest)}{atomic._HOST}-{dead}-abcdefgh.tmp"
    left.write_bytes(b"x" * 4096)
    alive = tmp_path / f"{atomic.temp_prefix(dest)}{atomic._HOST}-{os.getpid()}-abcdefgh.tmp"
    alive.write_bytes(b"y")  # a writer still at work keeps its file
    store.room_for(small_index(), dest)
    assert not left.exists() and alive.exists()


def test_a_checkpoint_folder_that_takes_the_room_of_the_index_goes_first(tmp_path):
    """The checkpoint parts (full features) took the room the finished index needed: the
    save failed, the parts stayed, and every rerun reused them and failed the same way."""
    from fakes import make_gallery, write_tiny_model

    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor

    mount = tmp_path / "small"
    if not _mount_tmpfs(mount, "168k"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount rights)")
    try:
        make_gallery(tmp_path / "g", 120)
        model = Extractor(write_tiny_model(tmp_path / "tiny.onnx"), threads=1)
        settings = Settings(dims=8, checkpoint_every=40, batch=8, keep_features=True)
        warnings: list[str] = []
        out = mount / "x.dat"
        report = analyze(tmp_path / "g", out, model, settings, warn=warnings.append)
        assert store.load(out, features=True).count == report.index.count == 120
        assert warnings == [
            f"{out}.ckpt: its checkpoints take the room {out} needs; removed first (their rows "
            "are in the index)"
        ]
        assert sorted(p.name for p in mount.iterdir()) == ["x.dat"]
    finally:
        subprocess.run(["umount", str(mount)])


def test_an_index_the_user_may_not_read_is_said_in_the_systems_words(tmp_path, monkeypatch):
    """A file of mode 000 came out as HDF5's "[Errno 13] Unable to synchronously open file
    (unable to open file: name = ..., errno = 13, error message = ..., flags = 0, ...)".
    (As root the mode does not stop a read: HDF5's refusal is raised in its place.)"""
    path = tmp_path / "locked.dat"
    path.write_bytes(b"x")

    def refused(name, mode="r", **kw):
        raise PermissionError(
            13,
            f"Unable to synchronously open file (unable to open file: name = '{name}', "
            "errno = 13, error message = 'Permission denied', flags = 0, o_flags = 0)",
        )

    monkeypatch.setattr(store.h5py, "File", refused)
    with pytest.raises(RtsearchError) as info:
        store.load(path, isolate=False)
    assert str(info.value) == f"{path}: not a readable index file (Permission denied)"


def test_a_backslash_or_a_drive_like_start_is_a_name_here_and_escapes_on_windows(
    tmp_path, monkeypatch, capsys
):
    """`Photos\\2019.jpg` (a Windows copy) or `5:4 crop.jpg` in a folder were analysed
    without a word, and the index then refused for good ("refusing path ... that escapes
    the base directory"), by `update` too after the file was deleted. They are names here;
    where backslashes separate and "C:" is a drive, they are refused."""
    from fakes import make_image, write_tiny_model

    folder = tmp_path / "g"
    folder.mkdir()
    for i, name in enumerate(("Photos\\2019.jpg", "5:4 crop.jpg", "plain.jpg")):
        make_image(i).save(folder / name)
    out = tmp_path / "x.dat"
    model = write_tiny_model(tmp_path / "tiny.onnx")
    assert main(["analyze", str(folder), "-o", str(out), "--model", str(model), "--quiet"]) == 0
    assert sorted(store.load(out).paths) == ["5:4 crop.jpg", "Photos\\2019.jpg", "plain.jpg"]
    capsys.readouterr()
    code = main(["query", str(out), str(folder / "Photos\\2019.jpg"), "--model", str(model)])
    assert code == 0 and capsys.readouterr().out.splitlines()[0].endswith("Photos\\2019.jpg")
    (folder / "5:4 crop.jpg").unlink()
    assert main(["update", str(out), str(folder), "--model", str(model)]) == 0
    monkeypatch.setattr(store, "WINDOWS_PATHS", True)
    for paths in (["C:/x.jpg"] * 6, ["a\\..\\..\\x.jpg"] * 6):
        p = tmp_path / f"w{len(paths[0])}.dat"
        store.save(small_index(), p)
        _edit(p, _set_paths(paths))
        with pytest.raises(RtsearchError, match="escapes the base directory"):
            store.load(p)


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("mapped", [False, True])
def test_bytes_changed_on_disk_are_refused_by_the_checksums(tmp_path, monkeypatch, mapped):
    """One flipped bit in a vector, a path or an attribute: HDF5 keeps no checksum, and a
    damaged file loaded and ranked nonsense (a distance of 1e21), or slightly wrong
    distances, without a word."""
    from rtsearch import bigstore

    monkeypatch.setattr(bigstore, "MAP_MIN_BYTES", 0 if mapped else 1 << 40)
    path = tmp_path / "x.dat"
    store.save(small_index(n=40, d=5), path)
    with h5py.File(path, "r") as f:
        vectors = f["projected"].id.get_offset()
    raw = path.read_bytes()
    places = {
        "projected": vectors + 37,  # (a low bit of a vector's value: a slightly wrong one)
        "paths": raw.index(b"d/img17.jpg") + 6,
        "attributes": raw.index(b"/nowhere") + 3,
    }
    for what, at in places.items():
        shutil.copy(path, damaged := tmp_path / f"{what}.dat")
        _flip(damaged, at)
        with pytest.raises(store.Damaged) as err:
            bigstore.load(damaged)
        remedy = (
            "analyze its folder again into it with --replace"
            if what == "attributes"
            else f"rtsearch analyze /nowhere -o {damaged} --replace makes it anew"
        )
        name = "its attributes are" if what == "attributes" else f"its {what} data is"
        assert str(err.value) == (
            f"{damaged}: damaged index: {name} not as written (a disk or copy fault); {remedy}"
        )
    # a file written before the checksums loads as it did
    with h5py.File(path, "r+") as f:
        f.visititems(lambda _, ds: ds.attrs.__delitem__(store.CRC) if store.CRC in ds.attrs else 0)
        del f.attrs[store.ATTRS_CRC]
    assert bigstore.load(path).count == 40


def test_analyze_replaces_a_damaged_index_only_when_asked(tmp_path, tiny_model, capsys):
    from fakes import make_gallery

    make_gallery(tmp_path / "g", 6)
    out = tmp_path / "g.dat"
    args = ["analyze", str(tmp_path / "g"), "-o", str(out), "--model", str(tiny_model)]
    assert main([*args, "--dims", "4", "--quiet"]) == 0
    with h5py.File(out, "r") as f:
        _flip(out, f["projected"].id.get_offset() + 5)
    capsys.readouterr()
    assert main([*args, "--quiet"]) == 1  # (it reused the damaged rows: "6 reused")
    said = f"{out}: damaged index: its projected data is not as written (a disk or copy fault)"
    assert capsys.readouterr().err == (
        f"rtsearch: error: {said}; rtsearch analyze {tmp_path / 'g'} -o {out} --replace makes "
        "it anew\n"
    )
    assert main([*args, "--replace"]) == 0
    captured = capsys.readouterr()
    assert f"warning: {said}; --replace: analysing all of it anew\n" in captured.err
    assert "6 analysed, 0 reused" in captured.out and store.load(out).dims == 4
    # damaged past HDF5's reading (its own structure): refused, --replace said; replaced
    # with it (it was refused even so: "not written over: delete it")
    out.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    assert main([*args, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"rtsearch: error: {out}: not a readable index file (truncated: ")
    assert err.endswith(
        "; not written over: delete it, choose another -o, or pass --replace to analyse all of "
        "it anew\n"
    )
    assert main([*args, "--replace", "--quiet"]) == 0
    assert "; --replace: analysing all of it anew\n" in capsys.readouterr().err
    assert store.load(out).count == 6
    # another program's HDF5 file is never written over
    other = tmp_path / "other.h5"
    h5py.File(other, "w").create_dataset("x", data=[1, 2]).file.close()
    assert main([*args[:2], "-o", str(other), "--model", str(tiny_model), "--replace"]) == 1
    assert capsys.readouterr().err.endswith("not written over: delete it, or choose another -o\n")


def test_a_member_its_group_lists_but_cannot_find_is_said_so(valid, monkeypatch):
    """A damaged name in a group's list (fuzzed: "proZection") came back from h5py as None:
    refused as "/proZection is a NoneType"."""
    real_get = h5py.Group.get

    def get(group, name, *args, **kwargs):
        return (
            None
            if name == "projection" and kwargs.get("getlink")
            else real_get(group, name, *args, **kwargs)
        )

    monkeypatch.setattr(h5py.Group, "get", get)
    with pytest.raises(RtsearchError) as err:
        store.load(valid, isolate=False)
    assert str(err.value) == f"{valid}: malformed index (/projection cannot be read)"
