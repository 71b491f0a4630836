"""What differs on Windows and macOS, played out here: the calls those systems lack or
answer differently are taken away or stood in for, and the code must take the other way."""

from __future__ import annotations

import errno
import math
import os
import subprocess
import sys
import threading
import types
from pathlib import Path

import pytest
from fakes import make_gallery, write_tiny_model

from rtsearch import atomic, decode, errors, moves, sources, store
from rtsearch.cli import main
from rtsearch.errors import RtsearchError


def test_images_are_opened_binary_where_text_is_the_default(tmp_path, monkeypatch):
    """Windows opens a file in text mode unless told O_BINARY: CR-LF pairs collapsed and
    reads ended at 0x1A, so every PNG (its signature holds both) was cut after 5 bytes."""
    make_gallery(tmp_path, 5)
    png = next(tmp_path.rglob("*.png"))
    flags_seen = []
    real_open = os.open

    def windows_open(path, flags, *args):
        flags_seen.append(flags)
        return real_open(path, flags & ~0x8000, *args)

    monkeypatch.setattr(os, "O_BINARY", 0x8000, raising=False)
    monkeypatch.setattr(decode.os, "open", windows_open)
    assert decode.load_rgb(png).shape[2] == 3
    assert flags_seen and all(f & 0x8000 for f in flags_seen)


def test_analyze_and_save_without_the_posix_only_calls(tmp_path, monkeypatch, capsys):
    """os.pathconf (Windows: never) and os.fchmod (Windows before Python 3.13) are missing
    there: every analyze ended in a traceback before the work, every save after it."""
    monkeypatch.delattr(os, "pathconf")
    monkeypatch.delattr(os, "fchmod")
    gallery, out = tmp_path / "g", tmp_path / "g.dat"
    make_gallery(gallery, 4)
    model = write_tiny_model(tmp_path / "tiny.onnx")
    assert main(["analyze", str(gallery), "-o", str(out), "--model", str(model), "--quiet"]) == 0
    assert store.load(out).count == 4
    assert out.stat().st_mode & 0o777 == 0o666 & ~atomic._UMASK
    with pytest.raises(RtsearchError, match="name too long"):  # 255 still the limit there
        atomic.check_room_for_siblings(tmp_path / ("x" * 250 + ".dat"))


def test_names_an_output_cannot_hold_are_escaped_not_a_traceback(tmp_path):
    """Windows writes a redirected output in its code page (cp1252): `analyze 写真 -o
    写真.dat > log` analysed it all, then ended in a UnicodeEncodeError traceback."""
    gallery = tmp_path / "写真"
    make_gallery(gallery, 3)
    model = write_tiny_model(tmp_path / "tiny.onnx")
    run = subprocess.run(
        [sys.executable, "-m", "rtsearch", "analyze", gallery, "-o", "写真.dat", "--model",
         model, "--quiet"],
        cwd=tmp_path, capture_output=True, env={**os.environ, "PYTHONIOENCODING": "cp1252"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr.decode("cp1252", "replace")
    assert run.stdout.decode("ascii").startswith("\\u5199\\u771f.dat: 3 images (3 analysed")


def test_a_probe_in_a_new_interpreter_keeps_the_reason_for_any_name(tmp_path, monkeypatch):
    """The probe's new interpreter (Windows has no fork) wrote its refusal to a cp1252 pipe:
    a name it could not hold turned the reason into "malformed index"."""
    bad = tmp_path / "索引.dat"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 4000)  # an HDF5 signature, nothing behind it
    monkeypatch.setenv("PYTHONIOENCODING", "cp1252")
    with pytest.raises(RtsearchError) as refused:
        store.probe(bad, fork=False)
    assert str(refused.value).startswith(f"{bad}: ") and "malformed index" not in str(refused.value)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="stands in for psutil with /proc")
def test_a_dead_writers_temp_file_is_removed_where_kill_cannot_ask(tmp_path, monkeypatch):
    """os.kill(pid, 0) is no question on Windows (0 is CTRL_C_EVENT; a dead pid is EINVAL,
    not ProcessLookupError): killed writers' temp files were never removed."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    dest = tmp_path / "z.dat"
    left = tmp_path / f"{atomic.temp_prefix(dest)}{atomic._HOST}-{dead}-abcdefgh.tmp"
    alive = tmp_path / f"{atomic.temp_prefix(dest)}{atomic._HOST}-{os.getpid()}-abcdefgh.tmp"
    left.write_bytes(b"x")
    alive.write_bytes(b"y")

    def windows_kill(pid, sig):
        raise OSError(errno.EINVAL, "The parameter is incorrect")

    import psutil

    monkeypatch.setattr(atomic, "WINDOWS", True)
    monkeypatch.setattr(atomic.os, "kill", windows_kill)
    # psutil asks Windows itself (OpenProcess); here it would ask os.kill, stood in for
    monkeypatch.setattr(psutil, "pid_exists", lambda pid: Path(f"/proc/{pid}").exists())
    atomic.owned_temp(tmp_path, atomic.temp_prefix(dest)).unlink()
    assert not left.exists() and alive.exists()


class FakeMsvcrt(types.ModuleType):
    """msvcrt.locking's byte-range locks, held per file (by inode) for the test."""

    LK_UNLCK, LK_NBLCK = 0, 2

    def __init__(self) -> None:
        super().__init__("msvcrt")
        self.held: dict[int, int] = {}  # inode -> the fd holding it
        self.calls: list[tuple[str, int]] = []

    def locking(self, fd: int, mode: int, nbytes: int) -> None:
        ino = os.fstat(fd).st_ino
        if mode == self.LK_UNLCK:
            self.held.pop(ino, None)
            self.calls.append(("unlock", fd))
            return
        if ino in self.held:
            raise PermissionError(errno.EACCES, "Permission denied")
        self.held[ino] = fd
        self.calls.append(("lock", fd))


def test_one_writer_per_index_where_there_is_no_flock(tmp_path, monkeypatch):
    """Windows has no fcntl: writer_lock locked nothing, and two analyses of one index both
    wrote it. A byte lock through msvcrt now, freed before its file is closed."""
    fake = FakeMsvcrt()
    monkeypatch.setitem(sys.modules, "fcntl", None)  # import fcntl: ImportError
    monkeypatch.setitem(sys.modules, "msvcrt", fake)
    monkeypatch.setattr(atomic, "WINDOWS", True)
    out = tmp_path / "x.dat"
    with atomic.writer_lock(out):
        assert Path(f"{out}.lock").exists() and len(fake.held) == 1
        with pytest.raises(atomic.IndexBusy, match="another rtsearch"), atomic.writer_lock(out):
            pass
    assert not fake.held and not Path(f"{out}.lock").exists()
    assert [c for c, _ in fake.calls] == ["lock", "unlock"]
    with atomic.writer_lock(out):  # free again
        pass


def test_suggested_commands_are_quoted_for_windows_shells(monkeypatch):
    """A POSIX shell's single quotes stay part of the argument in cmd.exe."""
    monkeypatch.setattr(errors, "WINDOWS", True)
    line = errors.command("rtsearch", "update", Path("C:\\Users\\me\\my photos.dat"), "D:\\Pics")
    assert line == 'rtsearch update "C:\\Users\\me\\my photos.dat" D:\\Pics'
    monkeypatch.setattr(errors, "WINDOWS", False)
    assert errors.command("rtsearch", "update", Path("my photos.dat")) == (
        "rtsearch update 'my photos.dat'"
    )


@pytest.mark.parametrize(
    "copied",
    [
        pytest.param(lambda t: math.ceil(t / 2) * 2.0, id="FAT, even seconds"),
        pytest.param(lambda t: round(t, 2), id="exFAT, hundredths"),
    ],
)
def test_a_collection_copied_onto_a_coarse_clock_is_not_analysed_again(tmp_path, copied):
    """FAT keeps times to 2 s, exFAT to 10 ms: a collection copied onto such a drive (or the
    index made there, the files copied off) counted as changed throughout."""
    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor

    gallery, out = tmp_path / "g", tmp_path / "g.dat"
    files = make_gallery(gallery, 6)
    for i, f in enumerate(files):
        os.utime(f, (1.7e9 + i * 7.123457, 1.7e9 + i * 7.123457))
    extractor = Extractor(write_tiny_model(tmp_path / "tiny.onnx"), streams=0)
    analyze(gallery, out, extractor, Settings())
    for f in files:  # the copy: its clock's own rounding of each time
        t = copied(f.stat().st_mtime)
        os.utime(f, (t, t))
    again = analyze(gallery, out, extractor, Settings())
    assert (again.analysed, again.reused) == (0, 6)
    f = files[0]
    f.write_bytes(f.read_bytes()[:-1] + b"\0")  # changed now (its time is now's)
    assert analyze(gallery, out, extractor, Settings()).analysed == 1
    # a fine clock still tells a millisecond
    assert not moves.same_stat(5, 1_700_000_000.1234567, 5, 1_700_000_000.1254567)


def test_macos_asks_for_the_camera_from_the_main_thread(monkeypatch):
    """OpenCV's AVFoundation capture asks the user only on the main thread: the camera's
    own thread found "no camera" for ever on a Mac that had not been asked yet."""
    opened: list[str] = []

    class Capture:
        def __init__(self, device):
            opened.append(threading.current_thread().name)

        def isOpened(self):
            return False

        def release(self):
            pass

    monkeypatch.setattr(sources.cv2, "VideoCapture", Capture)
    monkeypatch.setattr(sources, "_camera_asked", set())
    monkeypatch.setattr(sys, "platform", "darwin")
    cam = sources.WebcamSource(3)
    try:
        for _ in range(100):
            if "no camera found" in cam.message:
                break
            threading.Event().wait(0.02)
    finally:
        cam.close()
    assert opened[0] == threading.main_thread().name and "webcam" in opened[1:]
    assert cam.message == (
        "no camera found (device 3, or not allowed: System Settings > Privacy & Security > "
        "Camera); retrying"
    )
    again = sources.WebcamSource(3)  # asked once per device
    again.close()
    assert opened.count(threading.main_thread().name) == 1


def test_bench_and_ray_go_without_load_averages_process_groups_and_signal_masks(monkeypatch):
    """`bench` began with os.getloadavg and stopped its viewer with os.killpg; `--ray` held
    Ctrl-C off with signal.pthread_sigmask: none is on Windows, each was a traceback."""
    from rtsearch import distributed
    from rtsearch.perf import machine, ui

    monkeypatch.delattr(os, "getloadavg")
    monkeypatch.delattr(os, "killpg")
    monkeypatch.delattr(distributed.signal, "pthread_sigmask")
    assert machine.load_avg() is None
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    ui.stop_group(child, grace_s=5.0)
    assert child.returncode is not None
    with distributed._sigint_blocked():
        pass


def test_following_the_mouse_on_macos_says_where_it_works(monkeypatch):
    """It said "needs an X11 display (DISPLAY is not set)", which a Mac never has."""
    from rtsearch.pointer import Pointer

    monkeypatch.setattr(sys, "platform", "darwin")
    pointer = Pointer()
    assert not pointer.available and pointer.position() is None
    assert pointer.message == "following the mouse works on Linux (X11) and Windows only"
