"""`rtsearch update`: new images found, deleted dropped, changed re-analysed, the projection
kept; `follow()` picks up a folder change on its own."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from fakes import make_gallery, make_image

from rtsearch import atomic, bigstore, store
from rtsearch import update as upd
from rtsearch.analyze import Settings, analyze
from rtsearch.cli import main
from rtsearch.decode import load_rgb
from rtsearch.extractor import Extractor, fit_to_input
from rtsearch.session import SearchSession
from rtsearch.update import follow


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def indexed(tmp_path, tiny_model) -> tuple[Path, Path]:
    gallery = tmp_path / "gallery"
    make_gallery(gallery, 30)
    out = tmp_path / "index.dat"
    analyze(gallery, out, Extractor(tiny_model), Settings(dims=16, keep_features=True))
    return gallery, out


def interrupt(proc: subprocess.Popen, readers: list[threading.Thread]) -> None:
    """Ctrl-C to a watch run as a command, and its output read to the end."""
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    for reader in readers:
        reader.join(timeout=10)


def top_hit(out: Path, gallery: Path, tiny_model: Path, image: Path):
    session = SearchSession.open(out, base_dir=gallery, model=str(tiny_model))
    return session.query_file(image, 1)[0]


def test_update_adds_drops_and_reanalyses_keeping_the_projection(
    capsys, tmp_path, indexed, tiny_model
):
    gallery, out = indexed
    before = store.load(out, features=True)
    make_gallery(gallery, 5, start=100)  # new
    for rel in ("d0/img00003.jpg", "d1/img00004.jpg", "d2/img00008.jpg"):
        (gallery / rel).unlink()
    changed = gallery / "d1/img00001.jpg"
    make_image(555).save(changed, quality=92)
    os.utime(changed, (time.time() + 5, time.time() + 5))

    code, stdout, _ = cli(capsys, "update", out, gallery, "--model", tiny_model)
    assert code == 0
    assert "32 images (5 added, 1 changed, 3 removed, 0 skipped)" in stdout
    after = store.load(out, features=True)
    assert after.created == before.created  # when it was made (it took the update's time)
    on_disk = sorted(p.relative_to(gallery).as_posix() for p in gallery.rglob("img*"))
    assert after.paths == on_disk
    assert np.array_equal(after.projection.matrix, before.projection.matrix)
    assert np.array_equal(after.projection.mean, before.projection.mean)
    same = after.paths.index("d0/img00000.png"), before.paths.index("d0/img00000.png")
    assert np.array_equal(after.projected[same[0]], before.projected[same[1]])
    assert after.features is not None and after.features.shape == (32, 128)
    # New and changed images are found at rank 1 by their own content.
    for rel in ("d1/img00100.png", "d1/img00001.jpg"):
        hit = top_hit(out, gallery, tiny_model, gallery / rel)
        assert hit.path == rel and hit.distance < 1e-4


def test_an_update_says_how_far_it_has_got_with_the_new_files(tmp_path, indexed, tiny_model):
    """`update` (and so a --watch pass) said nothing while it analysed new files: a viewer
    that follows a folder showed no progress until the new index came."""
    from rtsearch.update import update

    gallery, out = indexed
    make_gallery(gallery, 7, start=100)
    (gallery / "d0" / "broken.jpg").write_bytes(b"not a picture")
    heard = []
    update(out, gallery, Extractor(tiny_model), batch=2, progress=heard.append)
    done = [p.done for p in heard]  # (after each batch of 2 analysed; the broken one counts)
    assert len(done) == 4 and done == sorted(done) and done[-1] == 8, done
    assert {p.total for p in heard} == {8}
    assert heard[-1].skipped == 1 and heard[-1].images_per_s > 0
    heard.clear()
    update(out, gallery, Extractor(tiny_model), batch=2, progress=heard.append)
    assert heard == []  # (nothing new: nothing said)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_update_in_a_terminal_draws_a_bar_and_in_a_log_only_the_summary(
    capsys, monkeypatch, indexed, tiny_model
):
    """`rtsearch update` said nothing until the summary, however many new files it took
    minutes to analyse; analyze shows its bar. In a log (no terminal) nothing more is said."""
    gallery, out = indexed
    make_gallery(gallery, 7, start=100)
    # a JPEG cut short, found bad once the bar is drawn (the last file, after 3 batches)
    (gallery / "d2" / "zz.jpg").write_bytes((gallery / "d1/img00001.jpg").read_bytes()[:200])
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    code = main(["update", str(out), str(gallery), "--model", str(tiny_model), "--batch", "2"])
    assert code == 0
    shown = terminal.getvalue()
    drawn, ended, rest = shown.split("\n")
    # the bar, cleared for the warning's own line, then drawn again and ended at 8/8
    bar, warning = drawn.split("\r\x1b[K", 1)
    assert bar.startswith("\r[#") and "/8 " in bar and bar.endswith("\x1b[K"), repr(shown)
    assert warning.startswith("warning: ") and "zz.jpg: cannot decode" in warning, repr(shown)
    assert ended.startswith("\r[####") and "] 8/8 " in ended and "skipped 1" in ended
    assert rest == "", repr(shown)
    assert "7 added" in capsys.readouterr().out
    (gallery / "d2" / "zz.jpg").unlink()
    make_gallery(gallery, 3, start=200)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log: no bar, as before
    assert main(["update", str(out), str(gallery), "--model", str(tiny_model)]) == 0
    assert "3 added" in capsys.readouterr().out and sys.stderr.getvalue() == ""


def test_a_watch_in_a_terminal_draws_each_passs_bar_on_its_own_line(tmp_path, indexed, tiny_model):
    import pty
    import subprocess

    gallery, out = indexed
    leader, follower = pty.openpty()
    cmd = [sys.executable, "-m", "rtsearch", "update", str(out), str(gallery), "--watch",
           "--interval", "0.2", "--batch", "1", "--model", str(tiny_model)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=follower, text=True)
    os.close(follower)
    seen = bytearray()

    def read() -> None:
        with contextlib.suppress(OSError):  # (the pty closes with the process)
            while chunk := os.read(leader, 4096):
                seen.extend(chunk)

    lines: list[str] = []
    readers = [threading.Thread(target=read, daemon=True),
               threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)]  # fmt: skip
    for reader in readers:
        reader.start()
    try:
        end = time.monotonic() + 60
        for i, added in enumerate((3, 2)):
            while not lines and time.monotonic() < end:  # "following DIR"
                time.sleep(0.05)
            time.sleep(1.0)
            make_gallery(gallery / f"new{i}", added, start=100 + 10 * i)
            while sum("added" in line for line in lines) <= i and time.monotonic() < end:
                time.sleep(0.05)
    finally:
        interrupt(proc, readers)
    os.close(leader)
    shown = seen.decode()
    assert sum("added" in line for line in lines) == 2, lines
    # each pass's bar ends at its own total and its line is ended before the summary
    ends = re.findall(r"\] (\d+)/(\d+) [^\r\n]*\r?\n", shown)
    assert [(d, t) for d, t in ends] == [("3", "3"), ("2", "2")], repr(shown)


def test_an_indexed_file_that_no_longer_decodes_is_dropped_as_analyze_drops_it(
    capsys, indexed, tiny_model
):
    """Its old vector would keep answering for a file that is now garbage. It is said
    apart from those deleted ("2 removed" did not tell them apart)."""
    gallery, out = indexed
    broken = gallery / "d1/img00001.jpg"
    broken.write_bytes(os.urandom(200))
    (gallery / "d2/img00002.jpg").unlink()
    code, stdout, err = cli(capsys, "update", out, gallery, "--model", tiny_model)
    assert (
        code == 0
        and ("28 images (0 added, 0 changed, 2 removed, 1 of them unreadable now, 1 skipped)")
        in stdout
    )
    assert f"{broken}: " in err
    assert "d1/img00001.jpg" not in store.load(out).paths


def test_watching_a_mistyped_folder_is_one_line_and_a_vanishing_one_is_polled(
    capsys, tmp_path, indexed, tiny_model
):
    from rtsearch.update import _watch

    _, out = indexed
    code, stdout, err = cli(
        capsys, "update", out, tmp_path / "picz", "--watch", "--model", tiny_model
    )
    assert (code, stdout) == (
        1,
        "",
    ) and err == f"rtsearch: error: {tmp_path / 'picz'}: folder not found\n"
    assert _watch(tmp_path / "picz") is None  # gone between the check and the watch: polled


def test_update_without_changes_rewrites_nothing(capsys, indexed, tiny_model):
    gallery, out = indexed
    stamp = out.stat().st_mtime_ns
    code, stdout, _ = cli(capsys, "update", out, gallery, "--model", tiny_model)
    assert code == 0 and "30 images (0 added, 0 changed, 0 removed" in stdout
    assert out.stat().st_mtime_ns == stamp


def test_quiet_update_says_nothing_without_a_change_broken_files_included(
    capsys, indexed, tiny_model
):
    """`update --quiet` (as cron runs it) warned about every broken file on every run."""
    gallery, out = indexed
    (gallery / "broken.jpg").write_bytes(b"not a picture")
    args = ["update", out, gallery, "--model", tiny_model]
    code, stdout, err = cli(capsys, *args)
    assert (
        code == 0
        and "broken.jpg: " in err
        and "(0 added, 0 changed, 0 removed, 1 skipped)" in stdout
    )
    assert cli(capsys, *args, "--quiet") == (0, "", "")
    make_gallery(gallery, 1, start=600)  # a change: said, with the broken file
    code, stdout, err = cli(capsys, *args, "--quiet")
    assert code == 0 and "31 images (1 added, 0 changed, 0 removed, 1 skipped)" in stdout
    assert err.count("\n") == 1 and "broken.jpg: " in err


def test_update_after_the_folder_moved_points_the_index_at_it(capsys, indexed, tiny_model):
    gallery, out = indexed
    before = store.load(out, features=True)
    moved = gallery.rename(gallery.parent / "moved")
    code, stdout, _ = cli(capsys, "update", out, moved, "--model", tiny_model)
    assert code == 0 and "30 images (0 added, 0 changed, 0 removed" in stdout
    assert f"its folder is now {moved.resolve()}" in stdout
    after = store.load(out, features=True)
    assert after.base_dir == str(moved.resolve()) and after.paths == before.paths
    assert np.array_equal(after.projected, before.projected)
    code, stdout, err = cli(capsys, "query", moved / "d0/img00000.png", "--index", out,
                            "--model", tiny_model, "-k", "1")  # fmt: skip
    assert code == 0 and "d0/img00000.png" in stdout, err
    stamp = out.stat().st_mtime_ns  # and once pointed there, nothing more is rewritten
    code, stdout, _ = cli(capsys, "update", out, moved, "--model", tiny_model)
    assert code == 0 and "now" not in stdout and out.stat().st_mtime_ns == stamp


def refused(capsys, out: Path, folder: Path, tiny_model, why: str) -> None:
    """`update OUT FOLDER` is refused as another folder, for ``why``, and OUT is untouched."""
    stamp = out.stat().st_mtime_ns
    code, _, err = cli(capsys, "update", out, folder, "--model", tiny_model)
    assert code == 1 and err == (
        f"rtsearch: error: {folder}: holds none of the 30 images in {out} ({why}); "
        "pass --replace to index it in their place\n"
    )
    assert out.stat().st_mtime_ns == stamp


def test_update_refuses_a_folder_holding_none_of_the_images(capsys, tmp_path, indexed, tiny_model):
    _, out = indexed
    other = tmp_path / "other"
    make_gallery(other, 4, start=500)
    refused(capsys, out, other, tiny_model, "another folder?")
    code, stdout, _ = cli(capsys, "update", out, other, "--model", tiny_model, "--replace")
    assert code == 0 and "4 images (4 added, 0 changed, 30 removed" in stdout


def test_update_removing_most_of_the_index_asks_for_replace(capsys, tmp_path, indexed, tiny_model):
    """A folder holding a few of the indexed images (a wrong folder, an old backup, a copy
    still in progress) removed the rest without a word: 2 of 250 kept, 248 removed."""
    import shutil

    gallery, out = indexed
    part = tmp_path / "part"
    files = sorted(p for p in gallery.rglob("*") if p.is_file())
    for f in files[:2]:
        (part / f.relative_to(gallery)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, part / f.relative_to(gallery))
    stamp = out.stat().st_mtime_ns
    code, _, err = cli(capsys, "update", out, part, "--model", tiny_model)
    assert code == 1 and err == (
        f"rtsearch: error: {part}: holds only 2 of the 30 images in {out}; updating would "
        "remove the other 28 (another folder, an old copy, or one still being copied?); pass "
        "--replace to remove them\n"
    )
    assert out.stat().st_mtime_ns == stamp
    # removing up to half is what deleting photos does: no question
    for f in files[:15]:
        f.unlink()
    code, stdout, _ = cli(capsys, "update", out, gallery, "--model", tiny_model)
    assert code == 0 and "15 images (0 added, 0 changed, 15 removed" in stdout
    code, stdout, _ = cli(capsys, "update", out, part, "--model", tiny_model, "--replace")
    assert code == 0 and "2 images (2 added, 0 changed, 15 removed" in stdout  # (of those left)


def test_follow_waits_when_a_pass_would_remove_most_of_the_index(indexed, tiny_model, tmp_path):
    """A sync tool emptying most of the folder for a while: the index is kept until the
    folder is whole again, not cut down and analysed again."""
    import shutil

    gallery, out = indexed
    files = sorted(p for p in gallery.rglob("*") if p.is_file())
    aside = tmp_path / "aside"
    with Following(out, gallery, tiny_model) as it:
        time.sleep(1.0)  # the first pass: nothing to do
        for f in files[:20]:
            (aside / f.relative_to(gallery)).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(f, aside / f.relative_to(gallery))
        it.wait_until(lambda: any("holds only 10 of the 30 images" in w for w in it.warned))
        assert not it.seen and store.load(out).count == 30
        shutil.copytree(aside, gallery, dirs_exist_ok=True)
        make_gallery(gallery, 1, start=400)
        it.wait_until(lambda: it.seen and it.seen[-1].index.count == 31)
    assert it.seen[-1].added == ["d1/img00400.png"] and not it.seen[-1].changed


def test_follow_says_a_problem_that_stays_after_another(indexed, tiny_model, tmp_path):
    """The folder deleted, then made again with one new picture: the watcher said the
    folder was gone, then nothing, while it refused every pass for the other reason."""
    import shutil

    gallery, out = indexed
    aside = tmp_path / "aside"
    with Following(out, gallery, tiny_model) as it:
        time.sleep(1.0)
        shutil.move(gallery, aside)
        it.wait_until(lambda: any("folder not found" in w for w in it.warned))
        make_gallery(gallery, 1, start=900)
        it.wait_until(lambda: any("holds only 0 of the 30 images" in w for w in it.warned))
        time.sleep(1.0)
    assert len(it.warned) == 2 and not it.seen and store.load(out).count == 30


def test_update_tells_another_folder_with_the_same_names_from_a_copy(
    capsys, tmp_path, indexed, tiny_model
):
    """Another camera's folder names its files IMG_0001.JPG too: same names, other sizes,
    so it is refused as another folder. A copy that did not keep the files' dates keeps
    their sizes, and updates (re-analysed, as dates tell changes)."""
    import shutil

    gallery, out = indexed
    names = sorted(p.relative_to(gallery) for p in gallery.rglob("*.*"))[:5]
    other = tmp_path / "camera2"
    for i, rel in enumerate(names):
        (other / rel).parent.mkdir(parents=True, exist_ok=True)
        make_image(700 + i).save(other / rel, quality=60)
    refused(
        capsys,
        out,
        other,
        tiny_model,
        "5 files share their names, not their sizes: another folder?",
    )
    copy = tmp_path / "copy"
    shutil.copytree(gallery, copy, copy_function=shutil.copyfile)  # new dates, same sizes
    code, stdout, err = cli(capsys, "update", out, copy, "--model", tiny_model)
    # (analysed again: the same pictures, their file times new)
    assert (
        code == 0
        and ("30 images (0 added, 0 changed, 30 the same but for their file times, 0 removed")
        in stdout
    ), err


def test_a_copied_folder_is_the_same_pictures_not_new_rows(capsys, tmp_path, tiny_model):
    """A copy of the folder (every file time new) with a subfolder renamed was "206
    changed, 34 added, 34 removed", and a refit was advised for the PCA (fitted on 0 of
    its rows, said the next analyze). Analysed again, the pictures whose vectors are their
    old ones are said to be the same, moved where their names changed, and are not rows
    the PCA was not fitted on; a picture really changed is still changed."""
    gallery = tmp_path / "g"
    files = make_gallery(gallery, 24)
    out = tmp_path / "pca.dat"
    analyze(gallery, out, Extractor(tiny_model), Settings(dims=8, projection="pca"))
    before = store.load(out)
    copy = tmp_path / "copy"
    shutil.copytree(gallery, copy, copy_function=shutil.copyfile)  # new dates, same sizes
    (copy / "d1").rename(copy / "renamed")
    changed = copy / files[0].relative_to(gallery)
    make_image(77).save(changed)  # (another picture under its name)
    code, stdout, err = cli(capsys, "update", out, copy, "--model", tiny_model)
    assert code == 0 and err == "", err
    assert "24 images (0 added, 1 changed, 8 moved, 15 the same but for their file times, " \
        "0 removed" in stdout, stdout  # fmt: skip
    assert "refit" not in stdout
    after = store.load(out)
    assert after.unfitted == before.unfitted + 1
    assert "renamed/img00001.jpg" in after.paths and "d1/img00001.jpg" not in after.paths


def test_a_folder_whose_file_times_changed_is_analysed_again_as_the_same_pictures(
    capsys, tmp_path, tiny_model
):
    """Half the files' times new (restored from a backup), analysed again into its index
    of no features: each counted as a row its PCA was not fitted on, and analyze warned
    "its PCA was fitted on 12 of its 24 images". They are the same pictures."""
    gallery = tmp_path / "g"
    files = make_gallery(gallery, 24)
    out = tmp_path / "pca.dat"
    args = ["analyze", gallery, "-o", out, "--model", tiny_model, "--dims", "8", "--pca"]
    assert cli(capsys, *args)[0] == 0
    later = time.time() + 100
    for f in files[::2]:
        os.utime(f, (later, later))
    make_image(77).save(files[0])  # (and one picture changed)
    code, _, err = cli(capsys, *args)
    assert code == 0 and "fitted on" not in err, err
    assert store.load(out).unfitted == 1


def test_pca_index_growing_past_a_fifth_advises_a_refit(capsys, tmp_path, tiny_model, monkeypatch):
    gallery = tmp_path / "g"
    make_gallery(gallery, 20)
    out = tmp_path / "pca.dat"
    analyze(gallery, out, Extractor(tiny_model), Settings(dims=8, projection="pca"))
    make_gallery(gallery, 3, start=50)
    _, stdout, _ = cli(capsys, "update", out, gallery, "--model", tiny_model)
    assert "refit" not in stdout  # 3 of 23 rows
    make_gallery(gallery, 6, start=60)
    _, stdout, _ = cli(capsys, "update", out, gallery, "--model", tiny_model)
    assert "29 images (6 added" in stdout and "refit is advisable" in stdout
    # its advice names this index, the model file that made it (without it the advice
    # analysed with the default model, and was refused), and for one without features what
    # the command does and the folder (it printed a literal DIR)
    assert (
        f"rtsearch analyze {gallery} -o {out} --model {tiny_model} --pca --keep-features "
        "(it analyses every image again and refits, keeping the features, so that the next "
        "refit needs no analysis)"
    ) in stdout
    advised = stdout[stdout.index("rtsearch analyze ") : stdout.index(" (it analyses every")]
    # analysed again as it was (no features: its rows and PCA are kept), it says so, where
    # it said nothing; the advice's command refits it
    stale = (
        f"warning: {out}: its PCA was fitted on 20 of its 29 images (the others were added "
        "since, and it stores no features to fit it again): analyze again with "
        "--keep-features to refit it (every image is analysed once more)\n"
    )
    code, stdout, err = cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model,
                            "--pca", "--dims", "8", "--quiet")  # fmt: skip
    assert code == 0 and "29 images (0 analysed, 29 reused" in stdout and err == stale
    with monkeypatch.context() as m:  # its folder read-only: up to date, and the same advice
        from rtsearch import atomic
        from rtsearch.errors import RtsearchError

        def read_only(dest, what="index"):
            raise RtsearchError(f"{dest}: cannot write {what} (folder not writable)")

        m.setattr(atomic, "check_writable", read_only)
        code, stdout, err = cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model,
                                "--pca", "--dims", "8", "--quiet")  # fmt: skip
        assert code == 0 and "29 images (0 analysed, 29 reused" in stdout and err == stale
    code, stdout, err = cli(capsys, *shlex.split(advised)[1:], "--quiet")  # as advised
    assert code == 0 and "29 analysed, 0 reused" in stdout and "PCA was fitted" not in err
    assert store.load(out).unfitted == 0


def test_refit_advice_counts_every_update_since_the_fit(capsys, tmp_path, tiny_model):
    """--watch adds a few rows at a time: no single update passes a fifth, their sum does."""
    gallery = tmp_path / "g"
    make_gallery(gallery, 20)
    out = tmp_path / "pca.dat"
    analyze(gallery, out, Extractor(tiny_model), Settings(dims=8, projection="pca"))
    advised = []
    for i in range(3):  # 2/22, 4/24, 6/26: only the last is past a fifth
        make_gallery(gallery / f"new{i}", 2, start=100 + 10 * i)
        _, stdout, _ = cli(capsys, "update", out, gallery, "--model", tiny_model)
        advised.append("refit is advisable" in stdout)
    assert advised == [False, False, True]
    assert store.load(out).unfitted == 6 and bigstore.load(out).unfitted == 6
    # rows added and removed again are not counted (the advice came at 647 of 3200 rows so
    # counted, where 500 were new); those that stay are, wherever they move
    shutil.rmtree(gallery / "new2")
    (gallery / "new0").rename(gallery / "moved0")
    _, stdout, _ = cli(capsys, "update", out, gallery, "--model", tiny_model)
    assert "2 moved" in stdout and "refit is advisable" not in stdout  # 4 of 24
    index = store.load(out)
    assert index.unfitted == 4 and bigstore.load(out).unfitted == 4
    assert sorted(
        p for p, new in zip(index.paths, index.unfitted_mask, strict=True) if new
    ) == sorted(p.relative_to(gallery).as_posix() for p in gallery.glob("[mn]*/*/*.*"))
    again = tmp_path / "again.dat"  # the refit the advice suggests for an index like this
    analyze(gallery, again, Extractor(tiny_model), Settings(dims=8, projection="pca"))
    assert store.load(again).unfitted == 0


def test_watch_gives_the_refit_advice_once_and_says_when_it_stops(tmp_path, tiny_model):
    import signal
    import subprocess
    import sys

    gallery = tmp_path / "g"
    make_gallery(gallery, 10)
    out = tmp_path / "pca.dat"
    analyze(gallery, out, Extractor(tiny_model), Settings(dims=8, projection="pca"))
    cmd = [sys.executable, "-m", "rtsearch", "update", str(out), str(gallery), "--watch",
           "--interval", "0.2", "--model", str(tiny_model)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()

    def wait_for(count: int) -> None:
        end = time.monotonic() + 60
        while sum("added" in line for line in lines) < count and time.monotonic() < end:
            time.sleep(0.05)

    end = time.monotonic() + 60
    while not lines and time.monotonic() < end:  # "following DIR": the first pass begins
        time.sleep(0.05)
    time.sleep(1.0)  # and finds nothing to do
    for i in range(3):  # 3/13 is past a fifth, and so are 6/16 and 9/19
        make_gallery(gallery / f"new{i}", 3, start=100 + 10 * i)
        wait_for(1 + i)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    reader.join(timeout=10)
    assert sum("refit is advisable" in line for line in lines) == 1, lines
    assert lines[-1] == f"stopped following {gallery}\n" and proc.returncode == 0


@pytest.mark.parametrize("features", [True, False])
def test_pictures_moved_within_the_folder_keep_their_rows(capsys, tmp_path, tiny_model, features):
    """Sorting pictures into subfolders (same name, size and time) moves their rows: none is
    analysed again, and the run is not refused as one removing most of the index (it was,
    and with --replace every moved picture was analysed again and a refit advised)."""
    import shutil

    from rtsearch import extractor as extractor_module

    gallery, out = tmp_path / "g", tmp_path / "g.dat"
    make_gallery(gallery, 30)
    analyze(gallery, out, Extractor(tiny_model), Settings(dims=16, keep_features=features))
    before = store.load(out)
    vector = dict(zip(before.paths, before.projected, strict=True))
    (gallery / "2024").mkdir()
    for sub in ("d0", "d1"):
        shutil.move(gallery / sub, gallery / "2024" / sub)
    twin = gallery / "2024" / "d0" / "img00003.jpg"  # a copy beside its original: analysed
    shutil.copy2(twin, gallery / "d2" / "img00003.jpg")
    runs = []
    real = extractor_module.Extractor.__call__

    def spy(self, images, **kw):
        runs.append(len(images))
        return real(self, images, **kw)

    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(extractor_module.Extractor, "__call__", spy)
    code, stdout, _ = cli(capsys, "update", out, gallery, "--model", tiny_model)
    assert code == 0 and "31 images (1 added, 0 changed, 20 moved, 0 removed, 0 skipped)" in stdout
    assert "refit" not in stdout and sum(runs) == 1  # the copy, nothing else
    after = store.load(out, features=features)
    assert (after.features is not None) == features
    for p, v in zip(after.paths, after.projected, strict=True):
        old = p.removeprefix("2024/")
        if p != "d2/img00003.jpg":
            np.testing.assert_array_equal(v, vector[old])
    # analyze again after another move: the rows are reused, not analysed (nor refused)
    shutil.move(gallery / "2024", gallery / "2025")
    runs.clear()
    code, stdout, _ = cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model,
                          "--quiet")  # fmt: skip
    monkeypatch.undo()
    assert code == 0 and "(0 analysed, 31 reused, 0 skipped)" in stdout and not runs
    assert sum(p.startswith("2025/") for p in store.load(out).paths) == 20
    # the folder moved too, and analysed again into settings the rows cannot be carried
    # into: the same folder still (it was "none of them in", another folder's index)
    moved = tmp_path / "moved"
    gallery.rename(moved)
    (moved / "all").mkdir()
    for entry in ("2025", "d2"):  # every picture in a folder of its own
        shutil.move(moved / entry, moved / "all" / entry)
    code, stdout, err = cli(capsys, "analyze", moved, "-o", out, "--model", tiny_model,
                            "--quiet", "--projection", "random")  # fmt: skip
    assert code == 0 and "31 images" in stdout, err
    assert features or "its images are analysed again" in err  # (stored features are refitted)


def test_an_update_copies_stored_features_from_the_file_without_holding_them_twice(
    capsys, indexed, tiny_model, monkeypatch
):
    """The old features were read whole, then stacked into the new index's: about 2.4
    times the features at the peak (1.19 GB against 0.75 GB for 60k x 2048 features, 496
    MB). They are checked in the probe's child and copied from the file a block at a time."""
    gallery, out = indexed
    before = store.load(out, features=True)
    make_gallery(gallery, 4, start=100)
    (gallery / "d1" / "img00004.jpg").unlink()
    loads = []
    real = store._load_here
    monkeypatch.setattr(store, "_load_here", lambda p, features, *a: (
        loads.append(features), real(p, features, *a))[1])  # fmt: skip
    monkeypatch.setattr(store, "FEATURE_BLOCK_BYTES", 7 * 128 * 4)  # blocks of 7 rows
    code, stdout, _ = cli(capsys, "update", out, gallery, "--model", tiny_model)
    assert code == 0 and "33 images (4 added, 0 changed, 1 removed" in stdout
    assert loads == [False]  # (the probe's child read them, in its own memory)
    monkeypatch.undo()
    after = store.load(out, features=True)
    old_rows = {p: f for p, f in zip(before.paths, before.features, strict=True)}
    for p, f in zip(after.paths, after.features, strict=True):
        if p in old_rows:
            np.testing.assert_array_equal(f, old_rows[p])
    ex = Extractor(tiny_model)
    picture = load_rgb(gallery / "d2" / "img00101.jpg", min_size=ex.info.input_size)
    new = ex([fit_to_input(picture, ex.info)])[0]  # as analysis decodes it
    np.testing.assert_allclose(after.features[after.paths.index("d2/img00101.jpg")], new, atol=1e-5)
    # a folder moved, nothing else: its features stay (a copy of the same rows)
    moved = gallery.rename(gallery.parent / "moved")
    code, stdout, _ = cli(capsys, "update", out, moved, "--model", tiny_model)
    assert code == 0 and "its folder is now" in stdout
    np.testing.assert_array_equal(store.load(out, features=True).features, after.features)


def test_update_refuses_another_models_index(capsys, tmp_path, indexed):
    from fakes import write_tiny_model

    gallery, out = indexed
    other = write_tiny_model(tmp_path / "other.onnx", seed=7, name="other")
    code, _, err = cli(capsys, "update", out, gallery, "--model", other)
    assert code == 1 and err.startswith(f"rtsearch: error: {out}: made with model tiny")


@pytest.mark.parametrize("watcher", ["watchdog", "polling"])
def test_follow_yields_the_updated_index_when_the_folder_changes(
    monkeypatch, indexed, tiny_model, watcher
):
    if watcher == "watchdog":
        pytest.importorskip("watchdog")
    else:
        monkeypatch.setattr("rtsearch.update._watch", lambda base_dir: None)
    gallery, out = indexed
    stop = threading.Event()
    seen: list = []

    def consume() -> None:
        for report in follow(out, gallery, Extractor(tiny_model), stop=stop, interval=0.3):
            seen.append(report)

    thread = threading.Thread(target=consume)
    thread.start()
    try:
        time.sleep(1.0)  # the first pass finds nothing to do
        make_gallery(gallery, 2, start=200)
        deadline = time.monotonic() + 30
        while (not seen or seen[-1].index.count < 32) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert seen and seen[-1].index.count == 32
    assert sorted(p for r in seen for p in r.added) == ["d0/img00201.jpg", "d2/img00200.png"]
    assert store.load(out).count == 32


def test_follow_sees_pictures_added_in_a_folder_linked_from_outside(
    indexed, tiny_model, tmp_path, monkeypatch
):
    """A folder outside the base that a link in it leads to is indexed, but its changes
    reached no watch (watchdog's does not follow links): pictures added there waited, for
    good, for a change in the base; so did a link made or removed."""
    pytest.importorskip("watchdog")
    gallery, out = indexed
    outside = tmp_path / "elsewhere"
    make_gallery(outside, 2, start=300, subdirs=1)
    (gallery / "linked").symlink_to(outside)
    stop = threading.Event()
    seen: list = []
    monkeypatch.chdir(tmp_path)  # the folder given relative (a link's removal went unseen)

    def consume() -> None:
        base = Path(gallery.name)
        for report in follow(out, base, Extractor(tiny_model), stop=stop, interval=0.3):
            seen.append(report)

    thread = threading.Thread(target=consume)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not seen and time.monotonic() < deadline:
            time.sleep(0.1)
        assert seen and seen[-1].index.count == 32  # the first pass takes in the link's two
        make_gallery(outside, 1, start=310, subdirs=1)
        deadline = time.monotonic() + 30
        while seen[-1].index.count < 33 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert seen[-1].index.count == 33 and seen[-1].added == ["linked/d0/img00310.png"]
        # a link made, or removed, is a change of its own (it waited for another change)
        other = tmp_path / "other"
        make_gallery(other, 2, start=320, subdirs=1)
        (gallery / "more").symlink_to(other)
        deadline = time.monotonic() + 30
        while seen[-1].index.count < 35 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert seen[-1].index.count == 35
        (gallery / "more").unlink()
        deadline = time.monotonic() + 30
        while seen[-1].index.count > 33 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert seen[-1].index.count == 33 and len(seen[-1].removed) == 2


def test_the_same_folder_written_otherwise_is_no_move(indexed, tiny_model, tmp_path):
    """On a FAT or exFAT disk `update INDEX ex/PICS` for ex/pics (the same folder, another
    letter case) said "its folder is now .../PICS" and stored that name: here the same
    folder is reached under another name by a bind mount."""
    gallery, out = indexed
    same = tmp_path / "Gallery"
    same.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "--bind", str(gallery), str(same)]).returncode:
        pytest.skip("cannot bind-mount here (needs root and mount rights)")
    try:
        make_gallery(gallery, 1, start=100)
        report = upd.update(out, same, Extractor(tiny_model))
        assert report.added == ["d1/img00100.png"] and report.moved_from is None
        assert "its folder is now" not in report.summary(out)
        assert store.load(out).base_dir == str(gallery.resolve())
    finally:
        subprocess.run(["umount", str(same)])


def test_follow_waits_for_another_writer_instead_of_stopping(indexed, tiny_model):
    gallery, out = indexed
    stop, seen, warned = threading.Event(), [], []
    make_gallery(gallery, 2, start=300)

    def consume() -> None:
        for report in follow(
            out, gallery, Extractor(tiny_model), stop=stop, interval=0.2, warn=warned.append
        ):
            seen.append(report)

    thread = threading.Thread(target=consume)
    with atomic.writer_lock(out):  # an analyze or update run by hand meanwhile
        thread.start()
        deadline = time.monotonic() + 10
        while not warned and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # five more tries while it runs: said once, not every 0.2 s
        assert not seen and thread.is_alive()
    try:
        deadline = time.monotonic() + 30
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert "is writing it; wait for it to end; trying again every 0.2 s" in warned[0]
    assert sum("is writing it" in w for w in warned) == 1, warned
    assert seen and seen[0].index.count == 32


class Following:
    """``follow`` on a thread, as `update --watch` and the viewer run it: the reports it
    yields and the warnings it gives, until the block ends."""

    def __init__(self, out: Path, gallery: Path, model: Path) -> None:
        self.stop, self.seen, self.warned = threading.Event(), [], []
        self.thread = threading.Thread(target=self._consume, args=(out, gallery, model))

    def _consume(self, out: Path, gallery: Path, model: Path) -> None:
        for report in follow(
            out, gallery, Extractor(model), stop=self.stop, interval=0.2, warn=self.warned.append
        ):
            self.seen.append(report)

    def wait_until(self, check) -> None:
        deadline = time.monotonic() + 30
        while not check() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert check(), (self.warned, [r.index.count for r in self.seen])

    def __enter__(self) -> Following:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


def test_follow_says_a_file_being_written_once_and_a_deleted_index_as_such(indexed, tiny_model):
    """A download written in chunks was warned about on every pass (its "N bytes not
    processed" grew); a deleted index was 'waiting for the folder to change'."""
    import io

    gallery, out = indexed
    buffer = io.BytesIO()
    make_image(700).save(buffer, format="JPEG", quality=90)
    whole = buffer.getvalue()
    coming = gallery / "download.jpg"
    with Following(out, gallery, tiny_model) as it:
        time.sleep(1.0)  # the first pass: nothing to do
        for share in (0.3, 0.5, 0.7, 0.9):
            coming.write_bytes(whole[: int(len(whole) * share)])
            time.sleep(0.8)  # a pass or more on each size
        coming.write_bytes(whole)
        it.wait_until(lambda: it.seen and it.seen[-1].index.count == 31)
        out.unlink()
        make_gallery(gallery, 1, start=800)  # the next pass comes with a change
        it.wait_until(lambda: any("index file not found" in w for w in it.warned))
    warned = it.warned
    said = [w for w in warned if "download.jpg" in w]
    assert len(said) == 1 and "truncated" in said[0], warned
    gone = [w for w in warned if "index file not found" in w]
    assert gone == [f"{out}: index file not found; waiting for it to be made again"]


def test_an_update_that_would_leave_no_image_says_what_stays(capsys, indexed, tiny_model):
    gallery, out = indexed
    for image in gallery.rglob("*.*"):
        image.unlink()
    code, stdout, err = cli(capsys, "update", out, gallery, "--model", tiny_model)
    assert code == 1 and stdout == ""
    assert err == (
        f"rtsearch: error: {gallery}: no images left to index; {out} still lists its 30 "
        "images: delete it, or add images to the folder\n"
    )
    assert store.load(out).count == 30


@pytest.mark.parametrize("watcher", ["watchdog", "polling"])
def test_follow_outlives_an_emptied_or_deleted_folder_and_says_things_once(
    monkeypatch, indexed, tiny_model, tmp_path, watcher
):
    import shutil

    if watcher == "watchdog":
        pytest.importorskip("watchdog")
    else:
        monkeypatch.setattr("rtsearch.update._watch", lambda base_dir: None)
    gallery, out = indexed
    (gallery / "notes.jpg").write_text("not a picture")
    with Following(out, gallery, tiny_model) as it:
        time.sleep(1.0)  # the first pass: nothing to do
        aside = tmp_path / "aside"
        shutil.move(gallery, aside)  # a sync tool or a move takes the folder away
        it.wait_until(lambda: any("waiting for the folder to change" in w for w in it.warned))
        time.sleep(1.0)
        shutil.move(aside, gallery)
        make_gallery(gallery, 1, start=400)
        it.wait_until(lambda: it.seen and it.seen[-1].index.count == 31)
        (gallery / "more").mkdir()
        make_gallery(gallery / "more", 1, start=500)
        it.wait_until(lambda: it.seen[-1].index.count == 32)
    warned = it.warned
    # not again on every pass; a pass that races the move may name it once more in other
    # words (a fresh-clone CI run counted 2, without keeping them: now they show)
    about = [w for w in warned if "notes.jpg" in w]
    assert about and len(about) == len(set(about)) <= 2, warned
    assert sum("not an image file" in w for w in about) == 1, warned
    assert sum("waiting for the folder" in w for w in warned) == 1, warned


def test_a_folder_that_cannot_be_read_keeps_its_rows(capsys, indexed, tiny_model, monkeypatch):
    """A folder unreadable for a while (permissions, a network share's outage) is not a
    folder deleted: update and analyze keep what the index holds under it."""
    import rtsearch.scan

    gallery, out = indexed
    before = store.load(out)
    under_d1 = [p for p in before.paths if p.startswith("d1/")]
    real_scandir = os.scandir

    def scandir(path="."):  # the os module's, for every caller (shutil passes descriptors)
        if isinstance(path, (str, os.PathLike)) and Path(path) == gallery / "d1":
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(rtsearch.scan.os, "scandir", scandir)
    make_gallery(gallery / "d0", 1, start=300)  # and something new elsewhere
    code, stdout, err = cli(capsys, "update", out, gallery, "--model", tiny_model)
    assert code == 0 and "(1 added, 0 changed, 0 removed, 1 skipped)" in stdout, stdout
    assert f"{len(under_d1)} indexed images in folders that could not be read are kept" in err
    assert set(under_d1) <= set(store.load(out).paths)
    code, stdout, err = cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model,
                            "--dims", "16", "--keep-features", "--quiet")  # fmt: skip
    assert code == 0 and f"{before.count + 1} images" in stdout and "kept as they were" in err
    assert set(under_d1) <= set(store.load(out).paths)
    monkeypatch.setattr(rtsearch.scan.os, "scandir", real_scandir)
    code, stdout, _ = cli(capsys, "update", out, gallery, "--model", tiny_model)
    assert code == 0 and "(0 added, 0 changed, 0 removed, 0 skipped)" in stdout


def test_a_linked_folder_whose_drive_is_gone_keeps_its_rows(capsys, tmp_path, tiny_model):
    """A link in the folder to a drive or share that is not mounted now: `update` removed
    every picture under it (said only as "4 removed"), and analysed them all again once the
    drive was back; `analyze` again dropped them without a word."""
    gallery, drive = tmp_path / "photos", tmp_path / "drive"
    make_gallery(gallery / "home", 6, subdirs=1)
    make_gallery(drive / "album", 4, start=50, subdirs=1)
    (gallery / "external drive").symlink_to(drive, target_is_directory=True)
    out = tmp_path / "i.dat"
    analyze(gallery, out, Extractor(tiny_model), Settings(dims=4))
    assert store.load(out).count == 10
    drive.rename(tmp_path / "drive.unmounted")
    code, stdout, err = cli(capsys, "update", out, gallery, "--model", tiny_model)
    assert code == 0 and "(0 added, 0 changed, 0 removed, 1 skipped)" in stdout, stdout
    assert f"{gallery / 'external drive'}: link to {drive}, not there now" in err
    assert "4 indexed images in folders that could not be read are kept as they were" in err
    code, stdout, err = cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model,
                            "--quiet")  # fmt: skip
    assert code == 0 and "10 images (0 analysed, 10 reused" in stdout and "kept as" in err
    (tmp_path / "drive.unmounted").rename(drive)
    code, stdout, _ = cli(capsys, "update", out, gallery, "--model", tiny_model)
    assert code == 0 and "(0 added, 0 changed, 0 removed, 0 skipped)" in stdout
    assert store.load(out).count == 10


def test_update_leaves_the_checkpoints_of_another_run(capsys, tmp_path, indexed, tiny_model):
    """A no-op `update` deleted the unfinished checkpoints of an analysis of another folder
    to the same index, and those of an unfinished re-analysis of its own folder (the refit
    its advice suggests): their work was gone, 0 reused on the rerun."""
    from rtsearch.checkpoints import CheckpointWriter, checkpoint_dir

    gallery, out = indexed
    other = tmp_path / "other"
    make_gallery(other, 4, start=500)
    index = store.load(out, features=True)
    ckpt = checkpoint_dir(out)
    for folder, paths in ((other, ["x/1.jpg", "x/2.jpg"]), (gallery, index.paths[:5])):
        writer = CheckpointWriter(ckpt, index.model, folder, None)
        rows = index.features[: len(paths)]
        writer.add(paths, list(rows), index.sizes[: len(paths)], index.mtimes[: len(paths)])
        writer.flush()
    parts = sorted(p.name for p in ckpt.iterdir())
    code, stdout, _ = cli(capsys, "update", out, gallery, "--model", tiny_model)
    assert code == 0 and "(0 added, 0 changed, 0 removed" in stdout
    assert sorted(p.name for p in ckpt.iterdir()) == parts
    # a change the re-analysis part does not cover: the update's own part comes and goes
    make_gallery(gallery / "new", 2, start=700)
    code, stdout, _ = cli(capsys, "update", out, gallery, "--model", tiny_model)
    assert code == 0 and "(2 added" in stdout
    assert sorted(p.name for p in ckpt.iterdir()) == parts


def test_moves_and_their_checkpoints(capsys, tmp_path, indexed, tiny_model):
    """An interrupted update's part holding a path that is now a move of an indexed file,
    or of a file deleted since, is this update's to drop (it stayed for good, and `analyze`
    never found the folder as it was). Times within a millisecond match, as the unchanged
    check matches them (a copy to a file system of coarser times rounded across .0005 and
    was analysed again)."""
    import os
    import shutil

    from rtsearch.checkpoints import CheckpointWriter, checkpoint_dir

    gallery, out = indexed
    index = store.load(out, features=True)
    moved = "d0/img00003.jpg"
    row = index.paths.index(moved)
    (gallery / "sub").mkdir()
    ckpt = checkpoint_dir(out)
    writer = CheckpointWriter(ckpt, index.model, gallery, None)  # the interrupted update's
    writer.add(["sub/img00003.jpg"], [index.features[row]], index.sizes[row : row + 1],
               index.mtimes[row : row + 1])  # fmt: skip
    writer.flush()
    # and one of a file deleted since: no run can use it (it stayed for good)
    writer.add(["gone/img00999.jpg"], [index.features[row]], index.sizes[:1], index.mtimes[:1])
    writer.flush()
    shutil.move(gallery / moved, gallery / "sub" / "img00003.jpg")
    target = gallery / "sub" / "img00003.jpg"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 400_000))  # 0.4 ms later
    code, stdout, _ = cli(capsys, "update", out, gallery, "--model", tiny_model)
    assert code == 0 and "(0 added, 0 changed, 1 moved, 0 removed" in stdout, stdout
    assert not ckpt.exists()


def test_a_file_in_the_checkpoint_folders_place_is_refused_before_the_work(
    capsys, tmp_path, indexed, tiny_model
):
    """Another index written as `-o INDEX.ckpt` took the name of INDEX's checkpoint folder:
    every analyze and update of INDEX with something to do ended in a FileExistsError
    traceback when its first checkpoint was due, after the work."""
    gallery, out = indexed
    taken = Path(str(out) + ".ckpt")
    taken.write_bytes(b"someone's file")
    make_gallery(gallery / "new", 3, start=800)
    said = f"rtsearch: error: {taken}: a file where {out} keeps its checkpoints; move it away"
    for args in (("update", out, gallery), ("analyze", gallery, "-o", out, "--quiet")):
        code, _, err = cli(capsys, *args, "--model", tiny_model)
        assert code == 1 and err.startswith(said), err
    assert taken.read_bytes() == b"someone's file" and store.load(out).count == 30


def test_a_watch_stopped_during_a_pass_says_what_it_kept(tmp_path, tiny_model):
    """Ctrl-C while a watch's pass analysed new pictures said only "stopped following DIR":
    what the pass had done was kept as a checkpoint, unsaid (a plain update says it)."""
    import signal
    import subprocess
    import sys

    gallery = tmp_path / "g"
    make_gallery(gallery, 4)
    out = tmp_path / "w.dat"
    analyze(gallery, out, Extractor(tiny_model), Settings(dims=4))
    began = tmp_path / "began"  # made by the pass's first batch
    slow = (  # every batch of the child's model takes 0.3 s more: a pass to stop half-way
        "import sys, time; from rtsearch import extractor as e; run = e.Extractor.run; "
        f"e.Extractor.run = lambda self, b: (open({str(began)!r}, 'a').close(), "
        "time.sleep(0.3), run(self, b))[2]; "
        "from rtsearch.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    cmd = [sys.executable, "-c", slow, "update", str(out), str(gallery), "--watch",
           "--interval", "0.2", "--batch", "2", "--model", str(tiny_model)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("following ")
    make_gallery(gallery / "new", 40, start=100)  # 20 batches: 6 s
    deadline = time.monotonic() + 30
    while not began.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # a few batches in
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    parts = list(store.checkpoint_dir(out).glob("part-*.dat"))
    kept = sum(store.load(p, allow_checkpoint=True).count for p in parts)
    assert proc.returncode == 0 and 0 < kept < 40, (stdout, stderr)
    assert stdout == (
        f"stopped following {gallery}; {store.checkpoint_dir(out)} keeps the {kept} images "
        "this run analysed: the same command again goes on from there\n"
    )


def test_a_watch_stopped_by_sigterm_says_terminated(tmp_path, tiny_model):
    """Ctrl-C ends a watch (exit 0); a kill (SIGTERM) is not how it ends: 143, as analyze."""
    import signal
    import subprocess
    import sys

    gallery = tmp_path / "g"
    make_gallery(gallery, 4)
    out = tmp_path / "w.dat"
    analyze(gallery, out, Extractor(tiny_model), Settings(dims=4))
    cmd = [sys.executable, "-m", "rtsearch", "update", str(out), str(gallery), "--watch",
           "--interval", "0.2", "--model", str(tiny_model)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("following ")
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 143 and stdout == f"stopped following {gallery}\n"
    assert stderr == "rtsearch: terminated\n"


def test_rows_are_added_only_from_the_file_that_made_the_index(capsys, tmp_path, monkeypatch):
    """`update --model X-int8` on an index made with X's fp32 file added int8 rows without
    a word (a copy of a picture then came back at 0.096, not 0): the two files share their
    weights' identity, which was all an index recorded. It records the file's variant now;
    rows come from that file, and the other twin is refused where it would add rows."""
    from dataclasses import astuple

    from fakes import int8_twin

    from rtsearch import update

    twin = int8_twin(tmp_path / "models")
    monkeypatch.setenv("RTSEARCH_MODELS", str(tmp_path / "models"))
    fp32 = twin.with_name("tiny.onnx")
    gallery = tmp_path / "gallery"
    make_gallery(gallery, 8)
    out = tmp_path / "index.dat"
    analyze(gallery, out, Extractor(fp32), Settings(dims=8))
    code, info, _ = cli(capsys, "info", out, "--json")
    assert code == 0 and '"model_variant": "fp32"' in info
    make_gallery(gallery, 2, start=50)
    stamp = out.stat().st_mtime_ns
    code, _, err = cli(capsys, "update", out, gallery, "--model", "tiny-int8")
    assert code == 1 and err == (
        f"rtsearch: error: {out}: its rows were made with the fp32 file of tiny, not the "
        "int8 one; rows of the two differ (a copy of a picture no longer comes back at "
        "distance 0): leave out --model to update it with that file\n"
    )
    code, stdout, err = cli(capsys, "update", out, gallery, "--watch", "--model", "tiny-int8")
    assert code == 1 and "its rows were made with the fp32 file" in err and stdout == ""
    code, _, err = cli(capsys, "analyze", gallery, "-o", out, "--model", twin)
    assert code == 1 and f"{out}: an index made with the fp32 file of tiny, not the int8" in err
    from rtsearch.models import model_option  # (how suggested commands name a file)

    assert model_option(twin) == ["--model", "tiny-int8"]
    assert model_option(tmp_path / "models" / ".." / "models" / "tiny.onnx") == ["--model", "tiny"]
    elsewhere = tmp_path / "copy.onnx"
    elsewhere.write_bytes(twin.read_bytes())
    assert model_option(elsewhere) == ["--model", str(elsewhere)]
    assert out.stat().st_mtime_ns == stamp  # left as it was
    code, stdout, _ = cli(capsys, "update", out, gallery)  # finds the fp32 file
    assert code == 0 and "(2 added," in stdout and store.load(out).model.variant == "fp32"

    # an index made with the int8 file: `update` finds that file, and so does the watch
    int8_out = tmp_path / "int8.dat"
    code, stdout, _ = cli(capsys, "analyze", gallery, "-o", int8_out, "--model", "tiny-int8",
                          "--dims", "8", "--keep-features", "--quiet")  # fmt: skip
    assert code == 0 and ", tiny int8 on CPU, 8 dims" in stdout  # (it said "tiny")
    assert update.open_extractor(int8_out, None, 1).info.variant == "int8"
    # queries take the file that made the rows too (a picture indexed came back at 0.087
    # from its own row, with the fp32 file): the viewer's faster twin only when asked for
    for index, made_by in ((int8_out, "int8"), (out, "fp32")):
        assert SearchSession.open(index).extractor.info.variant == made_by
    assert SearchSession.open(out, prefer_int8=True).extractor.info.variant == "int8"
    assert SearchSession.open(int8_out, fp32=True).extractor.info.variant == "fp32"  # view --fp32
    make_gallery(gallery, 1, start=60)
    code, stdout, _ = cli(capsys, "update", int8_out, gallery)
    assert code == 0 and "(1 added," in stdout and store.load(int8_out).model.variant == "int8"
    # its checkpoints too: a resume with the fp32 file is refused, not mixed in
    part = store.load(int8_out, features=True)
    ckpt = store.checkpoint_dir(int8_out)
    ckpt.mkdir()
    store.save(
        store.Index(part.paths, part.model, part.sizes, part.mtimes, features=part.features),
        ckpt / "part-000000.dat",
    )
    int8_out.unlink()
    code, _, err = cli(capsys, "analyze", gallery, "-o", int8_out, "--model", fp32)
    assert code == 1 and err.startswith(
        f"rtsearch: error: {ckpt / 'part-000000.dat'}: checkpoint made with the int8 file of "
        "tiny, not the fp32 one"
    )
    assert err.endswith(" to start again (or pass --replace)\n")
    code, stdout, err = cli(capsys, "analyze", gallery, "-o", int8_out, "--model", fp32,
                            "--replace")  # fmt: skip
    assert code == 0 and store.load(int8_out).model.variant == "fp32"
    assert "not the fp32 one" in err and "; passed over: its images are analysed again" in err
    assert not ckpt.exists()
    # and an index made with the other file is analysed anew, not refused
    code, _, err = cli(capsys, "analyze", gallery, "-o", int8_out, "--model", "tiny-int8",
                       "--replace", "--quiet")  # fmt: skip
    assert code == 0 and store.load(int8_out).model.variant == "int8"
    assert err == (
        f"warning: {int8_out}: an index made with the fp32 file of tiny, not the int8 one; "
        "--replace: analysing all of it anew\n"
    )
    int8_out.unlink()

    # a file from before the variant was recorded: not checked, and not relabelled by the
    # rows added to it (one int8 row made 32 unknown ones "int8", and the fp32 file that
    # made them was refused from then on); analysed afresh, it says
    legacy = store.load(out)
    legacy.model = store.ModelRef(*astuple(legacy.model)[:4])
    store.save(legacy, out)
    assert store.load(out).model.variant == ""
    code, info, _ = cli(capsys, "info", out, "--json")
    assert '"model_variant": null' in info
    code, info, _ = cli(capsys, "info", out)
    assert re.search(r"\nmodel_variant +not recorded\n", info)
    make_gallery(gallery, 1, start=70)
    code, stdout, _ = cli(capsys, "update", out, gallery, "--model", "tiny-int8")
    assert code == 0 and "(2 added," in stdout and store.load(out).model.variant == ""
    make_gallery(gallery, 1, start=80)
    code, stdout, _ = cli(capsys, "analyze", gallery, "-o", out, "--model", twin, "--quiet")
    assert code == 0 and "(1 analysed," in stdout and store.load(out).model.variant == ""
    code, stdout, _ = cli(capsys, "analyze", gallery, "-o", out, "--model", twin, "--replace",
                          "--dims", "4", "--quiet")  # fmt: skip
    assert code == 0 and "0 reused" in stdout and store.load(out).model.variant == "int8"
    # nor by a resume over checkpoints from before (they were labelled the resuming file's)
    whole = tmp_path / "whole.dat"
    analyze(gallery, whole, Extractor(fp32), Settings(dims=4, keep_features=True))
    done = store.load(whole, features=True)
    resumed = tmp_path / "resumed.dat"
    store.checkpoint_dir(resumed).mkdir()
    unsaid = store.ModelRef(*astuple(done.model)[:4])
    part = store.Index(done.paths, unsaid, done.sizes, done.mtimes, features=done.features)
    store.save(part, store.checkpoint_dir(resumed) / "part-000000.dat")
    make_gallery(gallery, 1, start=90)
    code, stdout, _ = cli(capsys, "analyze", gallery, "-o", resumed, "--model", twin, "--quiet")
    assert code == 0 and f"(1 analysed, {done.count} reused" in stdout
    assert store.load(resumed).model.variant == ""


def test_an_earlier_versions_part_that_named_its_folder_relative_is_resumed(
    capsys, tmp_path, indexed, tiny_model, monkeypatch
):
    """Parts of an interrupted update stored the folder as given ("U") before they stored
    it absolute: resumed from another working folder, the part was taken for another
    folder's, all its rows analysed again and the part left for good."""
    from rtsearch.checkpoints import CheckpointWriter, checkpoint_dir

    gallery, out = indexed
    make_gallery(gallery / "new", 5, start=900)
    whole = tmp_path / "whole.dat"
    analyze(gallery, whole, Extractor(tiny_model), Settings(dims=8, keep_features=True))
    rows = store.load(whole, features=True)
    new = [i for i, p in enumerate(rows.paths) if p.startswith("new/")][:3]
    writer = CheckpointWriter(checkpoint_dir(out), rows.model, gallery, None)
    writer.add([rows.paths[i] for i in new], rows.features[new], rows.sizes[new], rows.mtimes[new])
    writer.flush()
    path = next(checkpoint_dir(out).glob("part-*.dat"))
    with h5py.File(path, "r+") as f:
        f.attrs["base_dir"] = gallery.name  # as the earlier version stored it
        del f.attrs[store.ATTRS_CRC]  # (it wrote no checksums)
    assert store.load(path, allow_checkpoint=True).base_dir == gallery.name
    # and one of another folder, stored as given too: left for that run, as any other's
    elsewhere = CheckpointWriter(checkpoint_dir(out), rows.model, tmp_path, None)
    elsewhere.add(["other/img.jpg"], rows.features[:1], rows.sizes[:1], rows.mtimes[:1])
    elsewhere.flush()
    theirs = next(p for p in checkpoint_dir(out).glob("part-*.dat") if p != path)
    with h5py.File(theirs, "r+") as f:
        f.attrs["base_dir"] = "other"
        del f.attrs[store.ATTRS_CRC]
    monkeypatch.chdir("/")
    extracted = []
    run = Extractor.__call__
    monkeypatch.setattr(
        Extractor, "__call__", lambda s, im, **kw: (extracted.extend(im), run(s, im, **kw))[1]
    )
    code, stdout, _ = cli(capsys, "update", out, gallery, "--model", tiny_model)
    assert code == 0 and "(5 added" in stdout, stdout
    assert not path.exists() and len(extracted) == 2
    assert [p.name for p in checkpoint_dir(out).iterdir()] == [theirs.name]


def test_excluded_folders_stay_out_through_update_and_reruns_until_no_exclude(
    capsys, tmp_path, indexed, tiny_model, monkeypatch
):
    """`analyze --exclude` leaves folders out of an index already made (20 of its 30 rows:
    asked for, so not refused as a wrong folder), says a pattern that matches nothing, keeps
    the patterns in the index for `update` and reruns, and takes all in with --no-exclude."""
    import json
    import shutil

    gallery, out = indexed
    code, stdout, err = cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model,
                            "--exclude", "D1", "--exclude", "d2/", "--exclude", "nothing",
                            "--quiet")  # fmt: skip
    assert code == 0 and "10 images (0 analysed, 10 reused, 20 removed, 0 skipped, 2 folders "\
        "left out)" in stdout  # fmt: skip
    assert err == (f"warning: {gallery}: --exclude 'nothing' leaves nothing out there the other "
                   "patterns do not\n")  # fmt: skip
    info = json.loads(cli(capsys, "info", out, "--json")[1])
    assert info["count"] == 10 and info["exclude"] == ["D1", "d2/", "nothing"]
    assert cli(capsys, "info", out)[1].splitlines()[-1].split() == [
        "exclude",
        "D1",
        "d2/",
        "nothing",
    ]

    shutil.copy2(gallery / "d0/img00003.jpg", gallery / "d0/new.jpg")
    shutil.copy2(gallery / "d0/img00003.jpg", gallery / "d1/new.jpg")
    code, stdout, _ = cli(capsys, "update", out, gallery, "--model", tiny_model)
    assert code == 0 and stdout.startswith(f"{out}: 11 images (1 added, 0 changed, 0 removed, "
                                           "0 skipped, 2 folders left out)")  # fmt: skip
    assert all(p.startswith("d0/") for p in store.load(out).paths)
    code, stdout, _ = cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model, "--quiet")
    assert code == 0 and "11 images (0 analysed, 11 reused, 0 skipped, 2 folders left" in stdout
    assert store.load(out).exclude == ("D1", "d2/", "nothing")

    code, stdout, err = cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model,
                            "--exclude", "d2", "--quiet")  # fmt: skip
    assert code == 0 and "22 images (11 analysed, 11 reused, 0 skipped, 1 folder left out" \
        in stdout  # fmt: skip
    assert err == (f"warning: {out}: 11 images its --exclude 'D1' left out are taken in again, "
                   "the patterns given replace them\n")  # fmt: skip
    code, stdout, err = cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model,
                            "--exclude", "D2/", "--quiet")  # fmt: skip
    assert code == 0 and err == "" and "22 images (0 analysed, 22 reused" in stdout  # (d2 = D2/)
    code, stdout, err = cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model,
                            "--no-exclude", "--quiet")  # fmt: skip
    assert code == 0 and "32 images (10 analysed, 22 reused" in stdout
    assert err == (f"warning: {out}: 10 images its --exclude 'D2/' left out are taken in again, "
                   "as --no-exclude asks\n")  # fmt: skip
    assert json.loads(cli(capsys, "info", out, "--json")[1])["exclude"] == []

    code, _, err = cli(capsys, "analyze", gallery, "-o", tmp_path / "none.dat", "--model",
                       tiny_model, "--exclude", "d?", "--quiet")  # fmt: skip
    assert (code, err) == (1, f"rtsearch: error: {gallery}: no usable images found (0 skipped, "
                              "3 folders left out by --exclude)\n")  # fmt: skip
    monkeypatch.chdir(tmp_path)  # an unquoted *.png, turned by the shell into a file here
    (tmp_path / "mine.png").write_bytes(b"")
    code, _, err = cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model,
                       "--exclude", "mine.png", "--quiet")  # fmt: skip
    assert code == 0 and err == (
        f"warning: {gallery}: --exclude 'mine.png' leaves nothing out there (the name of a file "
        "here: quote patterns, or the shell turns '*.png' into them)\n"
    )
    (tmp_path / "yours.png").write_bytes(b"")  # two: the second is no pattern
    with pytest.raises(SystemExit):
        main(["analyze", str(gallery), "-o", str(out), "--exclude", "mine.png", "yours.png"])
    assert capsys.readouterr().err.endswith(
        "rtsearch analyze: error: unrecognized arguments: yours.png (quote --exclude patterns: "
        "the shell turns an unquoted '*.png' into the names of the files here)\n"
    )  # (it was said under the top level's usage, without a word of quoting)
    with h5py.File(out, "r+") as f:
        f.attrs["exclude"] = "[3]"
        del f.attrs[store.ATTRS_CRC]  # (a program's doing, or a file written before it)
    code, _, err = cli(capsys, "info", out)
    assert (code, err) == (1, f"rtsearch: error: {out}: malformed index (its excluded patterns)\n")


def test_files_of_one_size_renamed_are_matched_each_to_its_own_old_vector():
    """Many removed files of one size (a camera's BMPs, a folder renamed) and as many new
    ones: each new file whose vector is a removed one's is that file moved, each removed
    file matched once (two files of the same picture are two moves), and a new file of that
    size whose vector is none of theirs is added, not moved."""
    rng = np.random.default_rng(5)
    model = store.ModelRef("tiny", "tiny/fc/" + "0" * 64, "fc", 8)
    vectors = rng.normal(size=(300, 8)).astype(np.float32)
    vectors[1] = vectors[0]  # two files of one picture
    gone = [f"old/{i:03d}.bmp" for i in range(300)]
    old = store.Index(gone, model, np.full(300, 1000, np.int64), np.zeros(300), vectors)
    order = rng.permutation([0, 1, *rng.permutation(range(2, 300))[:198]])  # 200 moved
    fresh = rng.normal(size=(50, 8)).astype(np.float32)  # and 50 new pictures of that size
    fresh[0] = vectors[order[0]] + 0.1  # (near one of them, not it)
    new = [f"new/{i:03d}.bmp" for i in range(250)]
    now = np.concatenate([vectors[order] * (1 + 1e-6), fresh])
    index = store.Index(new, model, np.full(250, 1000, np.int64), np.zeros(250), now)
    report = upd.UpdateReport(index, added=list(new), removed=list(gone))
    stats = {p: (1000, 0.0) for p in new}
    upd.same_pictures(report, old, {q: i for i, q in enumerate(gone)}, stats)
    assert report.relocated == sorted(new[:200])
    assert report.added == new[200:]
    assert sorted(report.removed) == sorted(set(gone) - {gone[i] for i in order})


def test_a_watch_of_another_folder_is_refused_as_update_refuses_it(capsys, tmp_path, tiny_model):
    """`update INDEX OTHER --watch` replaced every row of a small index with OTHER's (the
    same without --watch is refused); an index written over as another folder's while it
    was followed had its rows replaced too."""
    gallery, other, out = tmp_path / "g", tmp_path / "other", tmp_path / "g.dat"
    make_gallery(gallery, 5)
    make_gallery(other, 8, start=100)
    analyze(gallery, out, Extractor(tiny_model), Settings(dims=4))
    code, _, err = cli(capsys, "update", out, other, "--model", tiny_model)
    assert code == 1 and f"{other}: holds none of the 5 images in {out}" in err, err
    cmd = ["update", str(out), str(other), "--model", str(tiny_model), "--watch"]
    done = subprocess.run([sys.executable, "-m", "rtsearch", *cmd], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1 and done.stderr == err, done.stderr  # (it followed for ever)
    assert store.load(out).count == 5 and store.load(out).base_dir == str(gallery.resolve())
    # followed, then written over as another folder's index: the watch ends, saying why
    stop, seen, ended = threading.Event(), [], []

    def consume() -> None:
        try:
            for report in follow(out, gallery, Extractor(tiny_model), stop=stop, interval=0.2):
                seen.append(report)
        except upd.Rewritten as exc:
            ended.append(str(exc))

    thread = threading.Thread(target=consume)
    thread.start()
    try:
        time.sleep(1.0)  # the first pass: nothing to do
        analyze(other, out, Extractor(tiny_model), Settings(dims=4, replace=True))
        # nothing changes in the folder followed: it went on in silence until something did
        deadline = time.monotonic() + 30
        while thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert ended == [
        f"{out}: now an index of {other.resolve()} (written since by another command), not of "
        f"{gallery}: no longer followed"
    ]
    assert not seen and store.load(out).count == 8
    # --replace: followed from the first pass in the index's place
    code, _, _ = cli(capsys, "update", out, gallery, "--model", tiny_model, "--replace")
    assert code == 0 and store.load(out).base_dir == str(gallery.resolve())


def test_a_file_that_keeps_changing_does_not_hold_a_watch_back(indexed, tiny_model):
    """Every filesystem event restarted the quiet wait: a log appended to twice a second in
    the folder kept a new picture out of the index for as long as it was written."""
    pytest.importorskip("watchdog")
    gallery, out = indexed
    log = gallery / "d0" / "app.log"
    writing = threading.Event()
    writing.set()

    def write_log() -> None:
        end = time.monotonic() + 20
        while writing.is_set() and time.monotonic() < end:
            with log.open("a") as f:
                f.write("x" * 100 + "\n")
            (gallery / ".cache").mkdir(exist_ok=True)
            (gallery / ".cache" / "thumb.jpg").write_bytes(os.urandom(100))  # hidden
            time.sleep(0.1)

    writer = threading.Thread(target=write_log)
    with Following(out, gallery, tiny_model) as watch:
        time.sleep(1.0)  # the first pass: nothing to do
        writer.start()
        time.sleep(0.5)
        make_gallery(gallery / "new", 1, start=400)
        start = time.monotonic()
        watch.wait_until(lambda: watch.seen)
        took = time.monotonic() - start
        still_writing = writer.is_alive()
        writing.clear()
        writer.join(timeout=10)
    assert still_writing and took < 15, took
    assert [p for r in watch.seen for p in r.added] == ["new/d1/img00400.png"]


def test_the_events_a_watch_waits_on(tmp_path):
    from watchdog.events import (
        DirCreatedEvent,
        DirModifiedEvent,
        DirMovedEvent,
        FileCreatedEvent,
        FileModifiedEvent,
        FileMovedEvent,
    )

    events = upd._Events(None, tmp_path)
    b = str(tmp_path)
    said = {
        FileModifiedEvent(f"{b}/a/photo.JPG"): True,
        FileCreatedEvent(f"{b}/notes.txt"): False,
        FileModifiedEvent(f"{b}/.thumbs/x.jpg"): False,
        FileModifiedEvent(f"{b}/a/.x.png"): False,
        FileMovedEvent(f"{b}/a/dl.part", f"{b}/a/dl.webp"): True,  # a download finished
        FileMovedEvent(f"{b}/a/x.jpg", f"{b}/.trash/x.jpg"): True,  # gone from the index
        DirCreatedEvent(f"{b}/2025"): True,
        DirMovedEvent(f"{b}/2024", f"{b}/old/2024"): True,
        DirModifiedEvent(f"{b}/a"): False,
    }
    for event, matters in said.items():
        assert events._matters(event) is matters, event


def test_a_quiet_watch_says_unreadable_files_only_with_a_change(tmp_path, tiny_model):
    """`--watch --quiet` warned of every unreadable file at its first pass, which changed
    nothing (`--quiet` without --watch holds them back, as its help says)."""
    gallery, out = tmp_path / "g", tmp_path / "g.dat"
    make_gallery(gallery, 4)
    (gallery / "bad.jpg").write_bytes(b"not a picture")
    analyze(gallery, out, Extractor(tiny_model), Settings(dims=4), warn=lambda m: None)
    cmd = [sys.executable, "-m", "rtsearch", "update", str(out), "--watch", "--quiet",
           "--interval", "0.2", "--model", str(tiny_model)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    errors: list[str] = []
    readers = [
        threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True),
        threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        end = time.monotonic() + 60
        while not lines and time.monotonic() < end:  # "following DIR": the first pass begins
            time.sleep(0.05)
        time.sleep(2.0)  # ... and finds nothing to do
        before = list(errors)
        make_gallery(gallery / "new", 1, start=50)
        end = time.monotonic() + 60
        while not any("added" in line for line in lines) and time.monotonic() < end:
            time.sleep(0.05)
    finally:
        interrupt(proc, readers)
    assert before == [] and any("1 added" in line for line in lines), (before, lines)
    warned = [line for line in errors if line.startswith("warning:")]
    assert len(warned) == 1 and "bad.jpg" in warned[0], errors
