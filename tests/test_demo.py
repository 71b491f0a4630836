"""`rtsearch demo` and the gallery it fetches: built once, reused, handed to the viewer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import h5py
import numpy as np
import pytest
from fakes import make_gallery, write_tiny_model
from PIL import Image

from rtsearch import gallery, store
from rtsearch.cli import main
from rtsearch.errors import RtsearchError


@pytest.fixture
def fake_gallery(tmp_path) -> Path:
    make_gallery(tmp_path / "gallery", 12)
    return tmp_path / "gallery"


def demo(*extra: str) -> int:
    return main(["demo", *extra])


def test_demo_builds_once_then_reuses(fake_gallery, tiny_model, tmp_path, capsys):
    index = tmp_path / "demo.dat"
    args = ["--gallery", str(fake_gallery), "--model", str(tiny_model), "--index", str(index)]
    assert demo(*args, "--no-view") == 0
    built = store.load(index, features=True)
    assert built.count == 12 and built.features is not None  # the viewer can change dims
    assert "demo index" in capsys.readouterr().out
    stamp = index.stat().st_mtime_ns
    assert demo(*args, "--no-view") == 0
    assert "(up to date; " in capsys.readouterr().out and index.stat().st_mtime_ns == stamp
    # the gallery changed: the index follows it, analysing only what is new (it was reused
    # as it was: new pictures missing, a deleted one still listed)
    make_gallery(fake_gallery, 3, start=50)
    gone = sorted(fake_gallery.rglob("img*"))[0]
    gone.unlink()
    assert demo(*args, "--no-view") == 0
    assert "(14 images, tiny, " in capsys.readouterr().out
    assert store.load(index).count == 14 and gone.relative_to(fake_gallery).as_posix() not in (
        store.load(index).paths
    )
    other = write_tiny_model(tmp_path / "other.onnx", seed=7, name="other")
    assert demo(*args, "--no-view", "--model", str(other)) == 1  # (the last --model counts)
    assert capsys.readouterr().err.startswith(
        f"rtsearch: error: {index}: an index made with model tiny "
    )
    stamp = index.stat().st_mtime_ns
    assert demo(*args, "--no-view", "--rebuild") == 0
    assert index.stat().st_mtime_ns != stamp


def test_a_users_index_given_keeps_the_settings_it_was_made_with(
    fake_gallery, tiny_model, tmp_path, capsys
):
    """--index naming the user's own index of the gallery (8 dims, random, no features):
    brought up to date as it was made; it was analysed again to the demo's settings (100
    dims with features), every image, without --rebuild."""
    index = tmp_path / "mine.dat"
    assert main(["analyze", str(fake_gallery), "-o", str(index), "--model", str(tiny_model),
                 "--dims", "8", "--projection", "random", "--quiet"]) == 0  # fmt: skip
    capsys.readouterr()
    stamp = index.stat().st_mtime_ns
    args = ["--gallery", str(fake_gallery), "--model", str(tiny_model), "--index", str(index)]
    assert demo(*args, "--no-view") == 0
    assert "(up to date; " in capsys.readouterr().out and index.stat().st_mtime_ns == stamp
    make_gallery(fake_gallery, 2, start=60)
    assert demo(*args, "--no-view") == 0
    assert "2 analysed, 12 reused" in capsys.readouterr().out
    made = store.made_with(index)
    assert (made["dims"], made["projection"], made["features"]) == (8, "random", False)
    # most of the gallery gone: refused with the demo's own way on (it said --replace,
    # which demo does not take)
    for picture in sorted(fake_gallery.rglob("img*"))[3:]:
        picture.unlink()
    assert demo(*args, "--no-view") == 1
    err = capsys.readouterr().err
    assert err.rstrip().endswith("pass --rebuild to remove them") and "--replace" not in err


def test_an_interrupted_rebuild_says_how_to_go_on(
    fake_gallery, tiny_model, tmp_path, capsys, monkeypatch
):
    """--rebuild dropped the checkpoints a rerun of it found: the interrupted one said "the
    same command again goes on from there", which started it all anew; then "the same
    command without --rebuild", which found the old index up to date and dropped them."""
    from rtsearch.extractor import Extractor

    make_gallery(fake_gallery, 60, start=100)  # batches of 16 on one thread: 5 of them
    index = tmp_path / "demo.dat"
    args = ["--gallery", str(fake_gallery), "--model", str(tiny_model), "--index", str(index)]
    assert demo(*args, "--no-view", "--threads", "1") == 0
    capsys.readouterr()
    calls, real = [], Extractor.__call__

    def stopped_after_two(self, images, **kw):
        calls.append(len(images))
        if len(calls) > 2:
            raise KeyboardInterrupt
        return real(self, images, **kw)

    monkeypatch.setattr(Extractor, "__call__", stopped_after_two)
    assert demo(*args, "--no-view", "--rebuild", "--threads", "1") == 130
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("rtsearch: interrupted; ") and err.endswith(
        "analysed: the same command goes on from there (without --rebuild, the index stays "
        "as it was)"
    ), err
    assert store.load(index).count == 72  # the old index, as it was
    calls.clear()
    monkeypatch.setattr(Extractor, "__call__", real)
    assert demo(*args, "--no-view", "--rebuild", "--threads", "1") == 0
    out = capsys.readouterr().out
    assert "(72 images, tiny, 100 dims, 40 analysed, 32 reused, built in " in out, out
    assert not store.checkpoint_dir(index).exists() and store.load(index).count == 72
    monkeypatch.setattr(Extractor, "__call__", stopped_after_two)
    # a first build interrupted, then run again: it says what it took from the checkpoints
    # (it said "built in 0.4 s", as if it had analysed them all)
    calls.clear()
    first = ["--gallery", str(fake_gallery), "--model", str(tiny_model), "--no-view"]
    first += ["--index", str(tmp_path / "first.dat"), "--threads", "1"]
    assert demo(*first) == 130
    capsys.readouterr()
    monkeypatch.undo()
    assert demo(*first) == 0
    assert (
        "(72 images, tiny, 100 dims, 40 analysed, 32 reused, built in " in capsys.readouterr().out
    )


def test_rebuild_keeps_the_index_until_the_new_one_replaces_it(
    fake_gallery, tiny_model, tmp_path, capsys
):
    """--rebuild deleted the --index file first: a mistyped --model (or a Ctrl-C) left the
    user with no index at all; --index naming a folder was a traceback."""
    index = tmp_path / "mine.dat"
    args = ["--gallery", str(fake_gallery), "--index", str(index), "--no-view"]
    assert demo(*args, "--model", str(tiny_model)) == 0
    before = index.read_bytes()
    assert demo(*args, "--model", "typo", "--rebuild") == 1
    assert "model 'typo' not found" in capsys.readouterr().err and index.read_bytes() == before
    assert demo(*args, "--model", str(tiny_model), "--rebuild") == 0
    out = capsys.readouterr().out
    assert "12 images" in out and index.read_bytes() != before  # analysed again, all of it
    folder = tmp_path / "d.dat"
    folder.mkdir()
    for extra in ([], ["--rebuild"]):
        assert demo("--gallery", str(fake_gallery), "--index", str(folder), "--no-view",
                    "--model", str(tiny_model), *extra) == 1  # fmt: skip
        err = capsys.readouterr().err
        assert err == f"rtsearch: error: {folder}: is a folder; choose another --index\n"


def test_an_index_given_that_does_not_fit_is_refused_and_the_demos_own_is_rebuilt(
    fake_gallery, tiny_model, tmp_path, capsys, monkeypatch
):
    """--index naming a damaged file said 'rebuilding' and then refused with analyze's -o
    advice; one of another folder was used, its rows looked for in this gallery."""
    base = ["--gallery", str(fake_gallery), "--model", str(tiny_model), "--no-view"]
    garbage = tmp_path / "garbage.dat"
    garbage.write_text("garbage")
    photo = tmp_path / "photo.jpg"  # a user's file named by mistake: never overwritten
    shutil.copy(sorted(fake_gallery.rglob("*.jpg"))[0], photo)
    kept = photo.read_bytes()
    for given, rebuild in ((garbage, []), (photo, []), (photo, ["--rebuild"])):
        assert demo(*base, "--index", str(given), *rebuild) == 1
        assert capsys.readouterr().err == (
            f"rtsearch: error: {given}: not an index file; choose another --index\n"
        )
    assert photo.read_bytes() == kept  # --rebuild wrote an index over it
    assert demo(*base, "--index", "/dev/null", "--rebuild") == 1
    assert capsys.readouterr().err == (
        "rtsearch: error: /dev/null: not a regular file; choose another --index\n"
    )
    damaged = tmp_path / "damaged.dat"  # an index of ours, cut short
    make_gallery(tmp_path / "small", 3, start=70)
    assert demo("--gallery", str(tmp_path / "small"), "--model", str(tiny_model), "--no-view",
                "--index", str(damaged)) == 0  # fmt: skip
    damaged.write_bytes(damaged.read_bytes()[:3000])
    assert demo(*base, "--index", str(damaged)) == 1
    assert capsys.readouterr().err.endswith(
        f"; delete it, choose another --index, or pass --rebuild to analyze {fake_gallery} "
        "into it\n"
    )
    assert demo(*base, "--index", str(damaged), "--rebuild") == 0  # (it was refused even so)
    assert "--rebuild: analysing all of it anew" in capsys.readouterr().err
    assert store.load(damaged).count == 12
    other_h5 = tmp_path / "other.h5"  # another program's HDF5 file: never written over
    h5py.File(other_h5, "w").create_dataset("x", data=[1]).file.close()
    assert demo(*base, "--index", str(other_h5), "--rebuild") == 1
    assert capsys.readouterr().err.endswith("; delete it, or choose another --index\n")
    other = tmp_path / "other"
    make_gallery(other, 4, start=40)
    other_index = tmp_path / "other.dat"
    assert demo(*base, "--index", str(other_index)) == 0  # of the gallery
    capsys.readouterr()
    assert demo("--gallery", str(other), "--model", str(tiny_model), "--no-view",
                "--index", str(other_index)) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith(f"rtsearch: error: {other_index}: an index of {fake_gallery.resolve()}")
    assert err.endswith(f"pass --rebuild to analyze {other} into it\n")
    # the demo's own file (no --index), damaged, is rebuilt
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    from rtsearch.demo import default_index_path
    from rtsearch.models import read_model_info

    own = default_index_path(fake_gallery, read_model_info(tiny_model))
    own.parent.mkdir(parents=True)
    own.write_text("garbage")
    assert demo(*base) == 0
    assert "rebuilding" in capsys.readouterr().err and store.load(own).count == 12


def test_one_demo_index_per_model_file_whichever_way_it_is_named(
    fake_gallery, tmp_path, monkeypatch, capsys
):
    """The demo's own index was keyed by the --model text: the model by its name and by its
    path made two indexes (two analyses), and --model tiny-int8 found the fp32 file's
    index given with --index and added int8 rows to it."""
    from fakes import int8_twin

    twin = int8_twin(tmp_path / "models")
    monkeypatch.setenv("RTSEARCH_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    base = ["--gallery", str(fake_gallery), "--no-view"]
    assert demo(*base, "--model", "tiny") == 0
    assert "(12 images, tiny, " in capsys.readouterr().out
    assert demo(*base, "--model", str(twin.with_name("tiny.onnx"))) == 0
    assert "(up to date; " in capsys.readouterr().out
    assert demo(*base, "--model", "tiny-int8") == 0  # a file of its own: a new index
    assert "(12 images, tiny int8, " in capsys.readouterr().out  # (it said "tiny")
    indexes = sorted((tmp_path / "data" / "rtsearch" / "demo").glob("*.dat"))
    assert [store.load(i).model.variant for i in indexes] == ["fp32", "int8"]
    # the index an earlier version kept under the --model text is taken over, not analysed
    # again beside it
    import hashlib

    key = hashlib.sha256(f"{fake_gallery.resolve()}\0tiny".encode()).hexdigest()[:12]
    older = indexes[0].with_name(f"tiny-{key}.dat")
    indexes[0].rename(older)
    assert demo(*base, "--model", "tiny") == 0
    assert "(up to date; " in capsys.readouterr().out
    assert indexes[0].is_file() and not older.exists()
    given = tmp_path / "given.dat"
    assert demo(*base, "--model", "tiny", "--index", str(given)) == 0
    capsys.readouterr()
    assert demo(*base, "--model", "tiny-int8", "--index", str(given)) == 1
    assert capsys.readouterr().err == (
        f"rtsearch: error: {given}: an index made with the fp32 file of tiny, not the int8 "
        f"one; choose another --index, or pass --rebuild to analyze {fake_gallery} into it "
        "with that one\n"
    )


def test_demo_hands_the_index_to_the_viewer(fake_gallery, tiny_model, tmp_path, monkeypatch):
    seen = {}

    def run_viewer(
        session, *, screenshot=None, quit_after_frames=None, width=0, height=0, ui_scale=0,
        remember=True,
    ):  # fmt: skip
        seen.update(session=session, screenshot=screenshot, frames=quit_after_frames)
        seen.update(size=(width, height), remember=remember, ui_scale=ui_scale)
        return 0

    app = types.ModuleType("rtsearch.viewer.app")
    app.run_viewer = run_viewer
    monkeypatch.setitem(sys.modules, "rtsearch.viewer.app", app)
    monkeypatch.setattr("rtsearch.viewer.display.check_display", lambda *a: None)
    shot = tmp_path / "shot.png"
    index = tmp_path / "demo.dat"
    args = ["--gallery", str(fake_gallery), "--model", str(tiny_model), "--index", str(index)]
    assert demo(*args, "--screenshot", str(shot), "--quit-after-frames", "3") == 0
    # not given: as the viewer was left, else its defaults (run_viewer takes them)
    assert seen["screenshot"] == shot and seen["frames"] == 3 and seen["size"] == (None, None)
    assert demo(*args, "--no-view") == 0 and demo(*args, "--width", "1000", "--height", "700") == 0
    assert seen["size"] == (1000, 700)  # as the viewer's (the demo had no way to size it)
    assert seen["ui_scale"] is None  # the desktop's, or as given last time
    assert demo(*args, "--ui-scale", "2") == 0 and seen["ui_scale"] == 2.0
    assert seen["remember"] is True
    assert demo(*args, "--no-last") == 0 and seen["remember"] is False  # a scripted shot
    results = seen["session"].query_file(fake_gallery / "d1" / "img00001.jpg", 1)
    assert results[0].path == "d1/img00001.jpg"


def test_demo_without_a_display_says_so_before_the_work(fake_gallery, tiny_model, tmp_path):
    """On a headless machine the demo fetched and analysed its gallery for minutes, then
    said there was no display to show it on."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    index = tmp_path / "demo.dat"
    args = ["--gallery", str(fake_gallery), "--model", str(tiny_model), "--index", str(index)]
    done = subprocess.run(
        [sys.executable, "-m", "rtsearch", "demo", *args],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert done.returncode == 1 and done.stderr.startswith("rtsearch: error: no display")
    assert not index.exists() and done.stdout == ""
    done = subprocess.run(
        [sys.executable, "-m", "rtsearch", "demo", *args, "--no-view"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 0 and index.is_file()  # building alone needs no display


def test_demo_on_a_missing_folder_is_one_line(tmp_path, capsys):
    assert demo("--gallery", str(tmp_path / "nope"), "--no-view") == 1
    err = capsys.readouterr().err.strip()
    assert "nope" in err and "folder not found" in err and "\n" not in err


def test_gallery_fallback_is_fetched_once(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)  # not Debian
    root = tmp_path / "g"
    first = gallery.ensure_gallery(root, log=lambda m: None)
    assert first.source == "python-samples" and first.count > 0
    assert first.count == gallery.count_images(root)
    assert str(root) in first.describe()
    from rtsearch.decode import IMAGE_EXTENSIONS, load_rgb

    for path in (p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS):
        load_rgb(path)  # each one analysis reads (a multipage TIFF was said on every run)

    def refuse(dest):
        raise AssertionError("fetched again")

    monkeypatch.setattr(gallery, "copy_python_samples", refuse)
    assert gallery.ensure_gallery(root, log=lambda m: None) == first


def test_incomplete_gallery_is_fetched_again(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    root = tmp_path / "g"
    (root / "samples").mkdir(parents=True)  # an empty leftover: no marker, no files
    assert gallery.ensure_gallery(root, log=lambda m: None).count > 0
    assert (root / gallery.MARKER).is_file()


def test_failed_package_download_falls_back(tmp_path, monkeypatch):
    def no_network(package, tree, log):
        raise RtsearchError(f"{package}: apt-get download failed: no network")

    monkeypatch.setattr(gallery, "unpack_package", no_network)
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/" + name)
    messages: list[str] = []
    found = gallery.ensure_gallery(tmp_path / "g", log=messages.append)
    assert found.source == "python-samples"
    assert any("no network" in m for m in messages)


def test_the_gallery_download_is_said_and_a_disk_without_room_for_it_too(tmp_path, monkeypatch):
    """350 MB came down with only "downloading PACKAGE" said, and on a disk without room
    for them each package failed in turn ("No space left on device"), the fallback's note
    never saying why."""
    import collections

    sizes = {
        p: (100 * 2**20, 150 * 2**20) for p in (gallery.STAMPS_PACKAGE, *gallery.PHOTO_PACKAGES)
    }
    monkeypatch.setattr(gallery, "package_sizes", lambda packages: sizes)
    fetched: list[str] = []
    monkeypatch.setattr(
        gallery, "unpack_package", lambda package, tree, log: fetched.append(package)
    )
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/" + name)
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(2**40, 0, 2**40))
    said: list[str] = []
    gallery.fetch_debian(tmp_path, said.append)
    assert said[0] == (
        "gallery: fetching 3 Debian packages with apt-get: about 300.0 MiB to download, the "
        "pictures kept about 90.0 MiB"
    )
    assert len(fetched) == 3
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(2**40, 0, 300 * 2**20))
    said.clear()
    assert gallery.fetch_debian(tmp_path, said.append) == [] and len(fetched) == 3
    assert said == [
        f"gallery: the Debian packages need about 340.0 MiB free in {tmp_path.parent} while "
        "unpacked, and 300.0 MiB is"
    ]


@pytest.mark.slow
def test_real_debian_gallery(tmp_path):
    if not shutil.which("apt-get"):
        pytest.skip("not a Debian system")
    found = gallery.ensure_gallery(tmp_path / "g", log=lambda m: None)
    assert found.source == "debian" and gallery.STAMPS_PACKAGE in found.packages
    labels = [d for d in (found.root / "stamps").iterdir() if d.is_dir()]
    assert len(labels) >= 10 and found.count >= 500
    assert {"animals", "vehicles", "food"} <= {d.name for d in labels}


def test_a_folder_that_is_not_a_gallery_is_never_replaced(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    mine = tmp_path / "Pictures" / "holiday.jpg"
    mine.parent.mkdir()
    mine.write_bytes(b"precious")
    with pytest.raises(RtsearchError, match="not an rtsearch gallery"):
        gallery.ensure_gallery(mine.parent, log=lambda m: None)
    assert mine.read_bytes() == b"precious"


@pytest.mark.gui
def test_demo_opens_the_real_viewer_headless(fake_gallery, tiny_model, tmp_path):
    pyvirtualdisplay = pytest.importorskip("pyvirtualdisplay")
    pytest.importorskip("dearpygui")
    shot = tmp_path / "demo.png"
    args = ["--gallery", str(fake_gallery), "--model", str(tiny_model)]
    args += ["--index", str(tmp_path / "demo.dat"), "--screenshot", str(shot)]
    # Its own process: Dear PyGui allows one viewer per process.
    with pyvirtualdisplay.Display(size=(1440, 900), color_depth=24):
        done = subprocess.run(
            [sys.executable, "-m", "rtsearch", "demo", *args, "--quit-after-frames", "30"],
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert done.returncode == 0, done.stderr
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.std() > 10  # query and result tiles drawn, not a blank viewport


def _fetched(root: Path, n: int, source: str = "debian") -> gallery.Gallery:
    """A gallery as a fetch leaves it: its pictures, then its marker."""
    make_gallery(root / "stamps", n)
    found = gallery.Gallery(root, source, ("tuxpaint-stamps-default",), n)
    gallery._write_marker(root, found)
    return found


def _offline(monkeypatch) -> None:
    def no_network(package, tree, log):
        raise RtsearchError(f"{package}: apt-get download failed: no network")

    monkeypatch.setattr(gallery, "unpack_package", no_network)
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/" + name)


def test_a_refetch_offline_keeps_the_gallery_fetched_before(tmp_path, monkeypatch):
    """`demo --refetch` offline replaced the 881 fetched pictures with the 29 sample photos
    of the fallback (350 MB to download again), and then refused its own index."""
    root = tmp_path / "g"
    before = _fetched(root, 6)
    _offline(monkeypatch)
    said: list[str] = []
    assert gallery.ensure_gallery(root, refetch=True, log=said.append) == before
    assert gallery.count_images(root) == 6 and gallery.read_marker(root) == before
    assert said[-1] == "gallery: kept the gallery there, fetched from tuxpaint-stamps-default"
    # a first fetch offline gets the fallback, and says how to try again
    fallback = gallery.ensure_gallery(tmp_path / "new", log=said.append)
    assert fallback.source == "python-samples"
    assert "the Debian packages could not be fetched then: --refetch tries again" in (
        fallback.describe()
    )
    assert not list(tmp_path.glob(".gallery-*"))  # nothing left beside them


def test_a_fetch_cut_short_is_said_and_refetched_and_its_leftovers_removed(tmp_path, monkeypatch):
    """A swap cut short (the old gallery half removed, its marker first) was refused for
    good as "not an rtsearch gallery; choose another", --refetch too; a killed fetch's
    folder (120-330 MB) stayed beside it for good."""
    monkeypatch.setattr(shutil, "which", lambda name: None)
    root = tmp_path / "gallery"
    _fetched(root, 4)
    (root / gallery.MARKER).unlink()
    with pytest.raises(RtsearchError) as refused:
        gallery.ensure_gallery(root, log=lambda m: None)
    assert str(refused.value) == (
        f"{root}: an incomplete demo gallery (its GALLERY.json is missing or damaged); pass "
        "--refetch to fetch it again"
    )
    dead = tmp_path / ".gallery-oldname"  # an earlier version's, a day old
    (dead / "stamps").mkdir(parents=True)
    os.utime(dead, (0, 0))
    found = gallery.ensure_gallery(root, refetch=True, log=lambda m: None)
    assert found.source == "python-samples" and gallery.read_marker(root) == found
    assert not (root / "stamps").exists() and not list(tmp_path.glob(".gallery-*"))


def test_a_gallery_that_cannot_be_written_is_one_line(tmp_path, monkeypatch):
    """A data folder that is a file: FileExistsError's traceback."""
    monkeypatch.setattr(shutil, "which", lambda name: None)
    (tmp_path / "data").write_bytes(b"")
    with pytest.raises(RtsearchError, match=r"the demo gallery could not be made \(File exists\)"):
        gallery.ensure_gallery(tmp_path / "data" / "gallery", log=lambda m: None)


def test_a_stop_while_a_package_unpacks_stops_what_unpacks_it(tmp_path):
    """SIGTERM while dpkg-deb unpacked: its tar went on writing into the folder being
    removed (a traceback, and 210 MB left behind); its whole process group is killed."""
    import signal
    import threading

    pid_file = tmp_path / "pid"
    script = f"sleep 60 & echo $! > {pid_file}; wait"

    def stop() -> None:
        while not pid_file.exists() or not pid_file.read_text().strip():
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGUSR1)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGUSR1, interrupt)
    threading.Thread(target=stop, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            gallery._run(["sh", "-c", script], cwd=tmp_path, what="unpacking")
    finally:
        signal.signal(signal.SIGUSR1, old)
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _running(grandchild):
        time.sleep(0.02)
    assert not _running(grandchild)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_the_demos_own_index_follows_a_refetched_gallery(tmp_path, tiny_model, monkeypatch, capsys):
    """After a refetch (the fallback of an offline first run, then the real gallery) the
    demo's own index was refused: "holds only 0 of the 28 images ...: pass --rebuild". A
    gallery missing pictures since its fetch says what fixes it; --gallery with --refetch
    is refused (the folder given is never fetched)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    root = tmp_path / "g"
    _fetched(root, 5, source="python-samples")
    args = ["--gallery-dir", str(root), "--model", str(tiny_model), "--no-view"]
    assert demo(*args) == 0
    monkeypatch.setattr(shutil, "which", lambda name: None)

    def other_pictures(dest: Path) -> list[str]:
        make_gallery(dest / "scikit-image", 7, start=300)
        return ["scikit-image"]

    monkeypatch.setattr(gallery, "copy_python_samples", other_pictures)
    capsys.readouterr()
    assert demo(*args, "--refetch") == 0, capsys.readouterr().err
    assert "(7 images, tiny, " in capsys.readouterr().out
    next(root.rglob("*.png")).unlink()
    assert demo(*args) == 0
    assert (
        "gallery: holds 6 of the 7 images it was fetched with (deleted or damaged since): "
        "--refetch fetches it again" in capsys.readouterr().err
    )
    assert demo("--gallery", str(root), "--refetch", "--no-view") == 1
    assert capsys.readouterr().err == (
        f"rtsearch: error: --refetch fetches the demo gallery, and --gallery {root} is used "
        "as it is: give one\n"
    )


def test_a_second_fetch_of_one_gallery_at_once_is_refused(tmp_path, monkeypatch):
    """Two demos started at once each fetched the whole gallery, and the later swap
    removed the gallery the other had just put in place; on a fresh machine too, where
    the data folder the lock goes in is made by the fetch."""
    import threading

    from rtsearch import atomic

    monkeypatch.setattr(shutil, "which", lambda name: None)
    root = tmp_path / "fresh" / "data" / "g"
    copying, go_on = threading.Event(), threading.Event()
    copy = gallery.copy_python_samples

    def slow_copy(dest: Path) -> list[str]:
        copying.set()
        go_on.wait(30)
        return copy(dest)

    monkeypatch.setattr(gallery, "copy_python_samples", slow_copy)
    first: list = []
    fetch = threading.Thread(target=lambda: first.append(gallery.ensure_gallery(root, log=print)))
    fetch.start()
    try:
        assert copying.wait(30)
        with pytest.raises(atomic.IndexBusy) as busy:
            gallery.ensure_gallery(root, log=lambda m: None)
    finally:
        go_on.set()
        fetch.join(30)
    assert str(busy.value) == (
        f"{root}: another rtsearch analyze, update, demo or viewer watching it is writing it; "
        "wait for it to end"
    )
    assert first and gallery.ensure_gallery(root, log=lambda m: None) == first[0]


def test_plain_rtsearch_opens_the_demo_index_built_without_the_viewer(
    fake_gallery, tiny_model, tmp_path
):
    """`rtsearch demo --no-view`, then `rtsearch`: the viewer opened empty (the demo's help
    says plain `rtsearch` opens the demo index next). An index the user showed before
    stays the one it opens."""
    import functools

    from rtsearch.session import SearchSession
    from rtsearch.viewer import memory
    from rtsearch.viewer.cli import reopen

    index = tmp_path / "demo.dat"
    args = ["--gallery", str(fake_gallery), "--model", str(tiny_model), "--index", str(index)]
    assert demo(*args, "--no-view", "--no-last") == 0
    assert memory.recall().index is None  # (--no-last: nothing kept)
    assert demo(*args, "--no-view") == 0
    session, message, ask = reopen(
        functools.partial(SearchSession.open, model=str(tiny_model)), None
    )
    assert session is not None and ask is None and session.source == index
    assert message.startswith(f"index: {index} (12 images)")
    mine = tmp_path / "mine.dat"
    memory.keep_shown(mine, tmp_path, None)
    assert demo(*args, "--no-view") == 0
    assert memory.recall().index == mine


def test_a_fetch_stopped_between_packages_goes_on_from_there(tmp_path, monkeypatch):
    """A fetch stopped after its first package (160 MB) removed what it had: the next
    `rtsearch demo` downloaded all three (350 MB) again. Now it keeps the packages it took
    and fetches only the others; a killed fetch's half-unpacked package is not kept."""
    from rtsearch.atomic import _HOST

    roots = {
        gallery.STAMPS_PACKAGE: gallery.STAMPS_ROOT + "/animals",
        gallery.PHOTO_PACKAGES[0]: gallery.WALLPAPERS_ROOT + "/Kite/contents/images",
        gallery.PHOTO_PACKAGES[1]: gallery.OPENCV_ROOT,
    }
    names = {gallery.STAMPS_PACKAGE: "cat.png", gallery.PHOTO_PACKAGES[0]: "1920x1080.jpg"}
    unpacked: list[str] = []
    stop_at = gallery.PHOTO_PACKAGES[0]

    def unpack(package, tree, log):
        unpacked.append(package)
        make_gallery(tree / "partial", 2)  # as dpkg-deb leaves it when stopped
        if package == stop_at:
            raise KeyboardInterrupt
        (tree / roots[package]).mkdir(parents=True)
        Image.new("RGB", (32, 24), "red").save(tree / roots[package] / names.get(package, "a.jpg"))

    monkeypatch.setattr(gallery, "unpack_package", unpack)
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/" + name)
    sizes = {p: (100 * 2**20, 150 * 2**20) for p in roots}
    monkeypatch.setattr(gallery, "package_sizes", lambda packages: {p: sizes[p] for p in packages})
    root = tmp_path / "g"
    said: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        gallery.ensure_gallery(root, log=said.append)
    (left,) = tmp_path.glob(".gallery-*")
    assert said[-1] == (
        f"gallery: fetch stopped; the pictures of {gallery.STAMPS_PACKAGE} are kept in {left}, "
        "and the next `rtsearch demo` goes on from there"
    )
    assert not root.exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True).stdout.strip()  # fmt: skip
    left.rename(tmp_path / f".gallery-{_HOST}-{dead}-abcd")  # its process gone
    (tmp_path / f".gallery-{_HOST}-{dead}-abcd" / "tmpleft").mkdir()  # a kill's leftover
    unpacked.clear()
    said.clear()
    stop_at = None
    found = gallery.ensure_gallery(root, log=said.append)
    assert unpacked == list(gallery.PHOTO_PACKAGES)  # the stamps were not fetched again
    assert said[:2] == [
        f"gallery: going on with the fetch stopped before ({gallery.STAMPS_PACKAGE} fetched then)",
        "gallery: fetching 2 Debian packages with apt-get: about 200.0 MiB to download, the "
        "pictures kept about 90.0 MiB",
    ]
    assert found.packages == (gallery.STAMPS_PACKAGE, *gallery.PHOTO_PACKAGES)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.*")) == [
        gallery.MARKER,
        "photos/opencv/a.jpg",
        "photos/wallpapers/Kite.jpg",
        "stamps/animals/cat.png",
    ]
    assert found.count == 3 and not list(tmp_path.glob(".gallery-*"))
    # a stopped fetch of another gallery folder is not taken for this one's
    other = tmp_path / "other"
    stop_at = gallery.PHOTO_PACKAGES[0]
    with pytest.raises(KeyboardInterrupt):
        gallery.ensure_gallery(other, log=said.append)
    (left,) = tmp_path.glob(".gallery-*")
    left.rename(tmp_path / f".gallery-{_HOST}-{dead}-efgh")
    unpacked.clear()
    stop_at = None
    gallery.ensure_gallery(tmp_path / "third", log=said.append)
    assert unpacked == [gallery.STAMPS_PACKAGE, *gallery.PHOTO_PACKAGES]
    assert not list(tmp_path.glob(".gallery-*"))  # (and the other's removed, its owner gone)
