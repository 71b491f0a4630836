"""End to end, as a user meets trouble: a folder of hostile files, files vanishing, SIGKILL at
random moments of an analysis, and memory over thousands of images."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from badimages import BAD, ODD_BUT_VALID
from fakes import DROP_DAC, make_gallery, make_image

from rtsearch import analyze as analyze_module
from rtsearch import atomic, store
from rtsearch.analyze import Settings, analyze, checkpoint_dir
from rtsearch.errors import RtsearchError
from rtsearch.extractor import Extractor

ROOT = Path(__file__).resolve().parent.parent
SUMMARY = re.compile(r": (\d+) images \((\d+) analysed, (\d+) reused, (\d+) skipped\)")


def rtsearch(*args, prefix: list[str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    cmd = [*(prefix or []), sys.executable, "-m", "rtsearch", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300, **kwargs)


def _can_drop_dac(probe: Path) -> bool:
    if os.geteuid() != 0:
        return True  # an ordinary user cannot read mode 000 anyway
    if shutil.which("setpriv") is None:
        return False
    run = subprocess.run([*DROP_DAC, "cat", str(probe)], capture_output=True)
    return run.returncode != 0


def test_analyze_a_folder_of_hostile_files(tmp_path, tiny_model):
    mixed, clean = tmp_path / "mixed", tmp_path / "clean"
    make_gallery(mixed, 12)
    good = [maker(mixed) for maker in ODD_BUT_VALID.values()]
    bad = {case: maker(mixed) for case, maker in BAD.items()}
    (mixed / "folder.jpg").mkdir()  # a directory named like an image is walked, not read
    make_image(99).save(mixed / "folder.jpg" / "inside.png")
    os.symlink("..", mixed / "d0" / "loop")  # a directory loop
    prefix = DROP_DAC if os.geteuid() == 0 else None
    if not _can_drop_dac(bad["unreadable (mode 000)"]):
        pytest.skip("running as root without setpriv: cannot make a file unreadable")

    run = rtsearch(
        "analyze",
        mixed,
        "-o",
        tmp_path / "mixed.dat",
        "--model",
        tiny_model,
        "--dims",
        "16",
        "--quiet",
        prefix=prefix,
    )
    assert run.returncode == 0, run.stderr
    warnings = run.stderr.splitlines()
    assert all(w.startswith("warning: ") for w in warnings) and len(warnings) == len(BAD)
    for case, path in bad.items():
        name = path.name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        assert sum(name in w for w in warnings) == 1, (case, warnings)
    total, analysed, reused, skipped = map(int, SUMMARY.search(run.stdout).groups())
    usable = 12 + len(good) + 1
    assert (total, analysed, reused, skipped) == (usable, usable, 0, len(BAD))

    # The index holds exactly the usable files, with the vectors a clean folder gives.
    skip = {os.fsencode(p.name) for p in bad.values()} | {b"loop"}
    shutil.copytree(mixed, clean, ignore=lambda d, names: [n for n in names
                    if os.fsencode(n) in skip])  # fmt: skip
    assert (
        rtsearch(
            "analyze",
            clean,
            "-o",
            tmp_path / "clean.dat",
            "--model",
            tiny_model,
            "--dims",
            "16",
            "--quiet",
        ).returncode
        == 0
    )
    got, want = store.load(tmp_path / "mixed.dat"), store.load(tmp_path / "clean.dat")
    assert got.paths == want.paths and len(got.paths) == usable
    np.testing.assert_allclose(got.projected, want.projected, atol=1e-5)


def test_files_vanishing_after_the_scan_are_skipped(tmp_path, tiny_model, monkeypatch):
    files = make_gallery(tmp_path / "g", 30)
    doomed = files[3::7]
    real_scan = analyze_module.scan

    def scan_then_delete(base_dir, warn=None, exclude=None):
        found = real_scan(base_dir, warn, exclude)
        for path in doomed:
            path.unlink()
        return found

    monkeypatch.setattr(analyze_module, "scan", scan_then_delete)
    warnings: list[str] = []
    report = analyze(
        tmp_path / "g",
        tmp_path / "i.dat",
        Extractor(tiny_model),
        Settings(dims=8),
        warn=warnings.append,
    )
    # the first said by name, the others counted in one line (a folder of 200 renamed
    # during a pass of `update --watch` was 200 lines of "No such file or directory")
    first = sorted(doomed)[0]
    assert len(report.skipped) == len(doomed) == 4
    assert warnings == [
        f"{first}: gone since the folder was read (moved or deleted)",
        "3 more files gone since the folder was read (moved or deleted)",
    ]
    assert report.index is not None and report.index.count == 30 - len(doomed)
    assert not {p.name for p in doomed} & {Path(p).name for p in report.index.paths}


def _checkpoint_rows(out: Path) -> int:
    parts = sorted(checkpoint_dir(out).glob("part-*.dat"))
    return sum(store.load(p, allow_checkpoint=True).count for p in parts)


def _kill_loop(gallery: Path, out: Path, model: Path, delays) -> tuple[int, list[int]]:
    """Start analyses and SIGKILL them after each delay; returns kills and the checkpoint
    rows seen after each kill (they must never go down: nothing checkpointed is lost)."""
    args = [
        sys.executable,
        "-m",
        "rtsearch",
        "analyze",
        str(gallery),
        "-o",
        str(out),
        "--model",
        str(model),
        "--checkpoint-every",
        "8",
        "--batch",
        "4",
        "--quiet",
    ]
    kills, rows = 0, []
    for delay in delays:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(delay)
        proc.kill()
        proc.communicate()
        if proc.returncode == -9:
            kills += 1
        if out.exists():  # it finished (or died after the final rename): all is in the index
            rows.append(max(_checkpoint_rows(out), store.load(out).count))
            break
        rows.append(_checkpoint_rows(out))
    return kills, rows


def _resume_and_compare(gallery: Path, out: Path, model: Path, reference: Path) -> int:
    """Finish an interrupted analysis; it must reuse exactly what the checkpoints (or a
    finished index) hold, analyse only the rest, and equal the uninterrupted run."""
    before = store.load(out).count if out.exists() else _checkpoint_rows(out)
    run = rtsearch("analyze", gallery, "-o", out, "--model", model, "--quiet")
    assert run.returncode == 0, run.stderr
    total, analysed, reused, _ = map(int, SUMMARY.search(run.stdout).groups())
    assert (total, reused, analysed) == (120, before, 120 - before)
    got, want = store.load(out), store.load(reference)
    assert got.paths == want.paths
    np.testing.assert_allclose(got.projected, want.projected, atol=1e-5)
    assert not checkpoint_dir(out).exists()
    return before


def test_sigkill_at_random_moments_loses_and_redoes_nothing(tmp_path, tiny_model):
    # 960x720 PNGs (no reduced decode) so the analysis, not interpreter start-up, fills most
    # of each run and the random kills land all over it.
    gallery = tmp_path / "g"
    for i in range(120):
        (gallery / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        make_image(i, (960, 720)).save(gallery / f"d{i % 3}" / f"{i:04d}.png", compress_level=1)
    reference = tmp_path / "ref.dat"
    start = time.monotonic()
    run = rtsearch("analyze", gallery, "-o", reference, "--model", tiny_model,
                   "--checkpoint-every", "8", "--batch", "4", "--quiet")  # fmt: skip
    full = time.monotonic() - start
    assert run.returncode == 0, run.stderr
    rng = np.random.default_rng(int(time.time()))

    # Kill, resume and compare, from a fresh start each time: one kill per episode.
    resumed = []
    for episode, delay in enumerate(rng.uniform(0.3, full, size=4)):
        out = tmp_path / f"episode{episode}.dat"
        _kill_loop(gallery, out, tiny_model, [delay])
        resumed.append(_resume_and_compare(gallery, out, tiny_model, reference))

    # Kill the same analysis again and again: checkpoints only ever grow.
    out = tmp_path / "chain.dat"
    kills, rows = _kill_loop(gallery, out, tiny_model, rng.uniform(0.3, full, size=8))
    assert rows == sorted(rows), rows
    resumed.append(_resume_and_compare(gallery, out, tiny_model, reference))
    print(f"chain: kills={kills} rows after each={rows}; reused on resume: {resumed}")


def test_kill_right_after_a_checkpoint_redoes_nothing(tmp_path, tiny_model):
    """Deterministic companion of the random loop: stop exactly after the 5th checkpoint."""
    gallery = tmp_path / "g"
    make_gallery(gallery, 60)
    out = tmp_path / "i.dat"
    code = f"""
import os, signal, sys
from rtsearch import checkpoints, cli
real_flush = checkpoints.CheckpointWriter.flush
def flush(self):
    real_flush(self)
    if len(list(self.folder.glob("part-*.dat"))) == 5:
        os.kill(os.getpid(), signal.SIGKILL)
checkpoints.CheckpointWriter.flush = flush
sys.exit(cli.main(["analyze", {str(gallery)!r}, "-o", {str(out)!r}, "--model",
                   {str(tiny_model)!r}, "--checkpoint-every", "8", "--batch", "4", "--quiet"]))
"""
    killed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True)
    assert killed.returncode == -9 and _checkpoint_rows(out) == 40
    run = rtsearch("analyze", gallery, "-o", out, "--model", tiny_model, "--quiet")
    assert SUMMARY.search(run.stdout).groups() == ("60", "20", "40", "0")


# ---------------------------------------------------------------- memory over long runs

RSS_RUNNER = """
import resource, sys
from rtsearch import cli
code = cli.main(sys.argv[1:])
print("peak_rss_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
sys.exit(code)
"""


def _tiny_pngs(folder: Path, n: int, size: int) -> None:
    """n distinct small PNGs, quickly: random blocks upscaled, no drawing."""
    rng = np.random.default_rng(n)
    for i in range(n):
        sub = folder / f"s{i // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        blocks = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        pixels = np.kron(blocks, np.ones((size // 8, size // 8, 1), np.uint8))
        from PIL import Image

        Image.fromarray(pixels).save(sub / f"{i:06d}.png", compress_level=1)


def _peak_rss_mib(folder: Path, out: Path, model: Path) -> tuple[float, str]:
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            RSS_RUNNER,
            "analyze",
            str(folder),
            "-o",
            str(out),
            "--model",
            str(model),
            "--quiet",
            "--checkpoint-every",
            "500",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1800,
    )
    assert run.returncode == 0, run.stderr
    kib = int(re.search(r"peak_rss_kib (\d+)", run.stdout).group(1))
    return kib / 1024, run.stdout


def _rss_growth(tmp_path: Path, model: Path, small: int, large: int, size: int) -> float:
    _tiny_pngs(tmp_path / "small", small, size)
    _tiny_pngs(tmp_path / "large", large, size)
    base, _ = _peak_rss_mib(tmp_path / "small", tmp_path / "s.dat", model)
    peak, stdout = _peak_rss_mib(tmp_path / "large", tmp_path / "l.dat", model)
    assert f"{large} images ({large} analysed" in stdout
    print(f"peak RSS {small} images {base:.0f} MiB, {large} images {peak:.0f} MiB")
    return peak - base


# Per image an analysis keeps one 128-d float32 feature row (0.5 KiB) plus its path and
# bookkeeping, and at the end the stacked features and projected rows: a few KiB in all.
# We allow 16 KiB per extra image; holding the decoded 128x128 images instead would add
# 48 KiB each, and holding the files' bytes about as much.
KIB_PER_IMAGE = 16


def test_memory_stays_bounded_over_2000_images(tmp_path, tiny_model):
    growth = _rss_growth(tmp_path, tiny_model, 250, 2000, 128)
    assert growth < 1750 * KIB_PER_IMAGE / 1024, f"RSS grew {growth:.0f} MiB"


@pytest.mark.slow
def test_memory_stays_bounded_over_20000_images(tmp_path, tiny_model):
    growth = _rss_growth(tmp_path, tiny_model, 1000, 20000, 64)
    assert growth < 19000 * KIB_PER_IMAGE / 1024, f"RSS grew {growth:.0f} MiB"


# ---------------------------------------------------------------- exit status and refusals


def test_nothing_usable_or_unwritable_output_exits_non_zero(tmp_path, tiny_model):
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    for case in ("zero-byte", "truncated JPEG", "text named .jpg"):
        BAD[case](only_bad)
    run = rtsearch("analyze", only_bad, "-o", tmp_path / "x.dat", "--model", tiny_model, "--quiet")
    errors = [line for line in run.stderr.splitlines() if not line.startswith("warning: ")]
    assert run.returncode == 1 and len(errors) == 1  # (and the first three, why: test_scan)
    assert errors[0].startswith(f"rtsearch: error: {only_bad}: no usable images found (3 skipped: ")
    assert not (tmp_path / "x.dat").exists()
    # the warnings say what is wrong in the user's terms, not Python's
    warnings = sorted(line for line in run.stderr.splitlines() if line.startswith("warning: "))
    assert f"warning: {only_bad / 'zero.jpg'}: empty file" in warnings, warnings
    assert f"warning: {only_bad / 'notes.jpg'}: not an image file (unknown format)" in warnings
    assert not any("BufferedReader" in w for w in warnings)

    make_gallery(tmp_path / "good", 5)
    (tmp_path / "a-file").write_text("not a folder")
    run = rtsearch("analyze", tmp_path / "good", "-o", tmp_path / "a-file" / "x.dat",
                   "--model", tiny_model, "--quiet")  # fmt: skip
    assert run.returncode == 1 and run.stderr == (
        f"rtsearch: error: {tmp_path / 'a-file' / 'x.dat'}: cannot write index "
        f"({tmp_path / 'a-file'} is a file, not a folder)\n"
    )
    # a folder that is not there, or not a folder, said as such
    for folder, reason in ((tmp_path / "nowhere", "folder not found"),
                           (tmp_path / "a-file", "not a folder")):  # fmt: skip
        run = rtsearch("analyze", folder, "-o", tmp_path / "y.dat", "--model", tiny_model)
        assert run.returncode == 1 and run.stderr == f"rtsearch: error: {folder}: {reason}\n"
    # a damaged index where analyze would write says how to get past it
    (tmp_path / "damaged.dat").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    run = rtsearch("analyze", tmp_path / "good", "-o", tmp_path / "damaged.dat",
                   "--model", tiny_model, "--quiet")  # fmt: skip
    assert run.returncode == 1 and run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith(f"rtsearch: error: {tmp_path / 'damaged.dat'}: ")
    assert run.stderr.endswith("delete it, or choose another -o\n")
    # and a folder of no pictures given to query (one of pictures: each answered)
    assert rtsearch("analyze", tmp_path / "good", "-o", tmp_path / "g.dat", "--model",
                    tiny_model, "--quiet").returncode == 0  # fmt: skip
    (tmp_path / "none").mkdir()
    run = rtsearch("query", tmp_path / "none", "--index", tmp_path / "g.dat",
                   "--model", tiny_model)  # fmt: skip
    assert run.returncode == 1
    assert run.stderr == f"rtsearch: error: {tmp_path / 'none'}: no pictures in this folder\n"
    # a folder given to info as the index; a photo given as -o is not advised deleted
    run = rtsearch("info", tmp_path / "good")
    assert run.stderr == f"rtsearch: error: {tmp_path / 'good'}: is a folder, not an index file\n"
    photo = sorted((tmp_path / "good").rglob("*.png"))[0]
    before = photo.read_bytes()
    run = rtsearch("analyze", tmp_path / "good", "-o", photo, "--model", tiny_model, "--quiet")
    assert run.stderr == f"rtsearch: error: {photo}: not an index file; choose another -o\n"
    assert photo.read_bytes() == before


def test_index_from_another_model_is_refused_by_query(tmp_path, tiny_model):
    from fakes import write_tiny_model

    make_gallery(tmp_path / "g", 6)
    assert rtsearch("analyze", tmp_path / "g", "-o", tmp_path / "i.dat", "--model",
                    tiny_model, "--dims", "4", "--quiet").returncode == 0  # fmt: skip
    other = write_tiny_model(tmp_path / "other.onnx", seed=1)
    run = rtsearch("query", tmp_path / "g" / "d0" / "img00000.png", "--index",
                   tmp_path / "i.dat", "--model", other)  # fmt: skip
    assert run.returncode == 1 and run.stderr.count("\n") == 1
    assert run.stderr.startswith(f"rtsearch: error: {tmp_path / 'i.dat'}: made with model tiny")


def test_kill_between_final_save_and_cleanup_then_rerun(tmp_path, tiny_model):
    """The index is renamed into place, then the process dies before deleting its
    checkpoints: the rerun must reuse everything (this once crashed with 'need at least one
    array to stack', found by the random kill loop)."""
    gallery = tmp_path / "g"
    make_gallery(gallery, 30)
    out = tmp_path / "i.dat"
    code = f"""
import os, signal, sys
from rtsearch import analyze, cli
analyze.shutil.rmtree = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
sys.exit(cli.main(["analyze", {str(gallery)!r}, "-o", {str(out)!r}, "--model",
                   {str(tiny_model)!r}, "--checkpoint-every", "8", "--quiet"]))
"""
    killed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True)
    assert killed.returncode == -9 and out.exists() and _checkpoint_rows(out) == 30
    run = rtsearch("analyze", gallery, "-o", out, "--model", tiny_model, "--quiet")
    assert run.returncode == 0, run.stderr
    assert SUMMARY.search(run.stdout).groups() == ("30", "0", "30", "0")
    assert not checkpoint_dir(out).exists()


def test_a_reader_that_stops_early_or_a_full_disk_gets_no_traceback(tmp_path, tiny_model):
    """`rtsearch info X | head -1`: the pipe closes before everything is written."""
    make_gallery(tmp_path / "g", 5)
    out = tmp_path / "g.dat"
    assert rtsearch("analyze", tmp_path / "g", "-o", out, "--model", tiny_model,
                    "--quiet").returncode == 0  # fmt: skip
    for args in (["info", out], ["info", out, "--json"], ["models"]):
        read, write = os.pipe()
        os.close(read)  # the reader is gone before the first line
        cmd = [sys.executable, "-m", "rtsearch", *map(str, args)]
        with os.fdopen(write, "wb") as pipe:
            run = subprocess.run(cmd, stdout=pipe, stderr=subprocess.PIPE, text=True, timeout=60)
        assert run.returncode == 141 and run.stderr == "", (args, run.stderr)
    # a full disk under `> results.json`: one line, not a traceback
    query = sorted((tmp_path / "g").rglob("*.jpg"))[0]
    for args in (["info", out], ["info", out, "--json"], ["models"], ["query", out, query]):
        cmd = [sys.executable, "-m", "rtsearch", *map(str, args), "--model", str(tiny_model)]
        if args[0] != "query":
            cmd = cmd[:-2]
        with open("/dev/full", "w") as full:
            run = subprocess.run(cmd, stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
        assert run.returncode == 1 and run.stderr == (
            "rtsearch: error: standard output: cannot write (No space left on device)\n"
        ), (args, run.stderr)


def test_out_of_range_seed_and_interval_are_usage_errors(tmp_path, tiny_model):
    make_gallery(tmp_path / "g", 3)
    for bad in ("-1", str(2**64)):
        run = rtsearch("analyze", tmp_path / "g", "-o", tmp_path / "s.dat", "--seed", bad)
        assert run.returncode == 2 and "--seed: must be from 0 to 2**63-1" in run.stderr
        assert "Traceback" not in run.stderr
    for bad in ("0", "-1", "nan", "inf"):
        run = rtsearch("update", tmp_path / "s.dat", tmp_path / "g", "--watch", "--interval", bad)
        assert run.returncode == 2 and "--interval: must be more than 0" in run.stderr, bad
        # one line, as every error is (the usage block before it was eight lines of noise)
        assert run.stderr.startswith("rtsearch update: error: ") and run.stderr.count("\n") == 1
    # arguments missing: the command's usage shows what is wanted
    run = rtsearch("analyze", tmp_path / "g")
    assert run.returncode == 2 and run.stderr.startswith("usage: rtsearch analyze [-h]")
    assert run.stderr.endswith("error: the following arguments are required: -o/--output\n")
    assert rtsearch("analyze", tmp_path / "g", "-o", tmp_path / "s.dat", "--model", tiny_model,
                    "--quiet").returncode == 0  # fmt: skip
    run = rtsearch("update", tmp_path / "s.dat", tmp_path / "g", "--interval", "5")
    assert (
        run.returncode == 1
        and run.stderr == "rtsearch: error: --interval applies to --watch only\n"
    )


def test_update_of_an_index_in_a_read_only_folder_refuses_before_the_work(tmp_path, tiny_model):
    gallery, ro = tmp_path / "g", tmp_path / "ro"
    make_gallery(gallery, 4)
    ro.mkdir()
    index = ro / "g.dat"
    assert rtsearch("analyze", gallery, "-o", index, "--model", tiny_model,
                    "--quiet").returncode == 0  # fmt: skip
    make_gallery(gallery / "new", 2, start=10)
    ro.chmod(0o555)
    try:
        prefix = DROP_DAC if os.geteuid() == 0 else None
        if subprocess.run([*(prefix or []), "touch", str(ro / "probe")]).returncode == 0:
            pytest.skip("cannot drop root's right to write anywhere")
        run = rtsearch("update", index, gallery, "--model", tiny_model, prefix=prefix)
    finally:
        ro.chmod(0o755)
    assert run.returncode == 1 and run.stderr == (
        f"rtsearch: error: {index}: cannot write index (folder not writable)\n"
    )
    assert not (ro / "g.dat.ckpt").exists()


def test_an_up_to_date_index_in_a_read_only_folder_is_said_so_not_refused(tmp_path, tiny_model):
    """`analyze` (and so `demo`) refused an index it would leave as it is, because its
    folder could not be written: a demo in a read-only data folder never opened."""
    gallery, ro = tmp_path / "g", tmp_path / "ro"
    make_gallery(gallery, 4)
    ro.mkdir()
    index, demo_index = ro / "g.dat", ro / "demo.dat"
    for cmd in (
        ("analyze", gallery, "-o", index),
        ("demo", "--gallery", gallery, "--index", demo_index, "--no-view"),
    ):
        assert rtsearch(*cmd, "--model", tiny_model).returncode == 0
    ro.chmod(0o555)
    try:
        prefix = DROP_DAC if os.geteuid() == 0 else None
        if subprocess.run([*(prefix or []), "touch", str(ro / "probe")]).returncode == 0:
            pytest.skip("cannot drop root's right to write anywhere")
        same = rtsearch("analyze", gallery, "-o", index, "--model", tiny_model, "--quiet",
                        prefix=prefix)  # fmt: skip
        demo = rtsearch("demo", "--gallery", gallery, "--index", demo_index, "--no-view",
                        "--model", tiny_model, prefix=prefix)  # fmt: skip
        make_gallery(gallery / "new", 1, start=10)
        more = rtsearch("analyze", gallery, "-o", index, "--model", tiny_model, prefix=prefix)
    finally:
        ro.chmod(0o755)
    assert same.returncode == 0, same.stderr
    assert "(0 analysed, 4 reused, 0 skipped)" in same.stdout
    assert demo.returncode == 0, demo.stderr
    assert f"demo index: {demo_index} (up to date" in demo.stdout
    assert more.returncode == 1 and more.stderr == (
        f"rtsearch: error: {index}: cannot write index (folder not writable)\n"
    )


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_folder_that_refuses_files_is_found_before_the_work(tmp_path, tiny_model):
    """/proc passes root's access() check and refuses every new file: the index and its
    checkpoint folder were found unwritable only after the images were analysed."""
    gallery = tmp_path / "g"
    make_gallery(gallery, 4)
    run = rtsearch("analyze", gallery, "-o", "/proc/x.dat", "--model", tiny_model, "--quiet")
    assert run.returncode == 1 and run.stderr.startswith(
        "rtsearch: error: /proc/x.dat: cannot write index ("
    )
    assert len(run.stderr.splitlines()) == 1 and run.stdout == "", run
    # a device or a FIFO given as -o: not "delete it", as for a file that is no index
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for dest in (Path("/dev/null"), fifo):
        run = rtsearch("analyze", gallery, "-o", dest, "--model", tiny_model, "--quiet")
        assert run.returncode == 1 and run.stderr == (
            f"rtsearch: error: {dest}: cannot write index (not a regular file)\n"
        )


def test_control_characters_in_file_names_are_escaped_in_every_line(tmp_path, tiny_model):
    folder = tmp_path / "g"
    make_gallery(folder, 4)
    (folder / "bad\nname.jpg").write_text("not a picture")
    (folder / "esc\x1b[31mred.jpg").write_text("not a picture")
    make_image(7).save(folder / "new\nline.png")
    out = tmp_path / "g.dat"
    run = rtsearch("analyze", folder, "-o", out, "--model", tiny_model, "--quiet")
    assert run.returncode == 0 and "\x1b" not in run.stderr
    lines = run.stderr.splitlines()
    assert f"warning: {folder}/bad\\nname.jpg: not an image file (unknown format)" in lines
    assert f"warning: {folder}/esc\\x1b[31mred.jpg: not an image file (unknown format)" in lines
    run = rtsearch("query", folder / "new\nline.png", "--index", out, "--model", tiny_model,
                   "-k", "5", "--no-verify")  # fmt: skip
    assert run.returncode == 0 and "new\\nline.png" in run.stdout
    assert len(run.stdout.splitlines()) == 5, run.stdout  # one line per result
    # invisible characters that reorder a name ("evil\u202egnp.jpg" showed as
    # "evilgpj.png"), and the summary's and a watch's lines, escaped too
    make_image(8).save(folder / "evil\u202egnp.jpg")
    odd = tmp_path / "odd\tname.dat"
    run = rtsearch("analyze", folder, "-o", odd, "--model", tiny_model, "--quiet")
    assert run.returncode == 0 and "\u202e" not in run.stdout + run.stderr
    assert run.stdout.startswith(f"{tmp_path}/odd\\tname.dat: 6 images"), run.stdout
    run = rtsearch("query", folder / "evil\u202egnp.jpg", "--index", odd, "--model", tiny_model,
                   "-k", "1", "--no-verify")  # fmt: skip
    assert run.stdout.rstrip().endswith("evil\\u202egnp.jpg"), run.stdout


def test_a_warning_without_a_caller_is_escaped_and_spelt_as_the_others(capsys):
    """errors.warn (the thin-PCA and int8-drift warnings, a broken model file passed over)
    printed "rtsearch: warning:" where every other warning says "warning:", and a name's
    newline or escape code raw."""
    from rtsearch import errors

    errors.warn("a\nname\x1b[31m.dat: its PCA was fitted on 6 images")
    assert (
        capsys.readouterr().err
        == "warning: a\\nname\\x1b[31m.dat: its PCA was fitted on 6 images\n"
    )


def test_a_second_writer_of_the_same_index_is_refused_while_the_first_runs(tmp_path, tiny_model):

    make_gallery(tmp_path / "g", 4)
    out = tmp_path / "g.dat"
    with atomic.writer_lock(out):  # what a running analyze or update holds
        assert (tmp_path / "g.dat.lock").exists()
        for args in (["analyze", tmp_path / "g", "-o", out], ["update", out, tmp_path / "g"]):
            run = rtsearch(*args, "--model", tiny_model)
            assert run.returncode == 1 and run.stderr == (
                f"rtsearch: error: {out}: another rtsearch analyze, update, demo or viewer "
                "watching it is writing it; wait for it to end\n"
            ), run.stderr
    assert not (tmp_path / "g.dat.lock").exists()
    run = rtsearch("analyze", tmp_path / "g", "-o", out, "--model", tiny_model, "--quiet")
    assert run.returncode == 0 and not (tmp_path / "g.dat.lock").exists()


def test_a_ctrl_c_during_a_save_comes_after_it(tmp_path, monkeypatch):
    """Ctrl-C or SIGTERM in the final save landed inside h5py's cleanup as "Exception
    ignored", and the run went on to exit 0 (6 times in 10). Held now: the save finishes,
    then the interruption is raised (a second one still leaves at once)."""
    import signal

    from rtsearch import interrupts

    index = store.load(store_fixture(tmp_path))
    restore = interrupts.catch_interrupts()
    real_write = store._write

    def write_then_signal(f, index):
        os.kill(os.getpid(), signal.SIGTERM)  # mid-write: delivered at once to this thread
        time.sleep(0.05)  # the handler has run by now (it would raise here, unheld)
        real_write(f, index)

    monkeypatch.setattr(store, "_write", write_then_signal)
    try:
        with pytest.raises(interrupts.Terminated):
            store.save(index, tmp_path / "saved.dat")
    finally:
        restore()
    assert store.load(tmp_path / "saved.dat").count == index.count  # whole, and kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g", "g.dat", "saved.dat"]


def store_fixture(tmp_path: Path) -> Path:
    make_gallery(tmp_path / "g", 3)
    out = tmp_path / "g.dat"
    from fakes import write_tiny_model

    model = write_tiny_model(tmp_path / "models" / "tiny.onnx")
    analyze(tmp_path / "g", out, Extractor(model), Settings(dims=4))
    shutil.rmtree(tmp_path / "models")
    return out


def test_an_output_folder_deleted_mid_run_stops_the_run(tmp_path, tiny_model):
    """It was made again without a word, its lock gone with it: a second run to the same
    -o started beside the first, both wrote the same part numbers."""
    from rtsearch.checkpoints import CheckpointWriter

    index = store.load(store_fixture(tmp_path), features=False)
    out = tmp_path / "od" / "x.dat"
    out.parent.mkdir()
    writer = CheckpointWriter(checkpoint_dir(out), index.model, tmp_path / "g", None)
    shutil.rmtree(out.parent)
    writer.add(index.paths, [np.zeros(index.model.feature_dims, np.float32)] * 3, index.sizes,
               index.mtimes)  # fmt: skip
    with pytest.raises(RtsearchError, match="the output folder went away during the analysis"):
        writer.flush()
    assert not out.parent.exists()


def test_checkpoints_of_a_symlinked_output_are_named_after_its_target(tmp_path):
    """`-o link.dat` wrote link.dat.ckpt while its lock and index followed the target:
    `info real.dat` did not see the unfinished analysis, and `analyze -o real.dat` redid it."""
    real = tmp_path / "real.dat"
    link = tmp_path / "link.dat"
    link.symlink_to(real)
    assert checkpoint_dir(link) == checkpoint_dir(real) == Path(f"{real}.ckpt")


def test_a_suggested_command_names_a_path_starting_with_a_dash_as_a_path():
    """`rtsearch update -idx.dat DIR`, pasted as suggested, was read as an option."""
    from rtsearch.errors import command

    assert command("rtsearch", "update", Path("-idx.dat"), Path("/x/-pics"), "--model") == (
        "rtsearch update ./-idx.dat /x/-pics --model"
    )
    assert command("rtsearch", "query", Path("a b.dat")) == "rtsearch query 'a b.dat'"


def test_pictures_in_a_folder_this_user_may_not_enter(tmp_path, tiny_model):
    """Indexed pictures in a subfolder the user may no longer enter: `query` stopped at
    'Permission denied' (its check for gone files raised), with no results; one given in
    such a folder among others stopped them all; and the viewer's worker thread died on
    its grey tile, leaving dark tiles and 0 queries/s for good."""
    gallery = tmp_path / "g"
    make_gallery(gallery, 4)
    make_gallery(gallery / "locked", 4, start=10)
    index = tmp_path / "g.dat"
    assert rtsearch("analyze", gallery, "-o", index, "--model", tiny_model,
                    "--quiet").returncode == 0  # fmt: skip
    mine = sorted(p for p in gallery.glob("*/*.*"))[0]
    inside = sorted((gallery / "locked").rglob("*.*"))[0]
    outside = tmp_path / f"copy{inside.suffix}"
    shutil.copy(inside, outside)
    (gallery / "locked").chmod(0)
    try:
        prefix = DROP_DAC if os.geteuid() == 0 else None
        if subprocess.run([*(prefix or []), "ls", str(gallery / "locked")]).returncode == 0:
            pytest.skip("cannot drop root's right to enter any folder")
        one = rtsearch("query", index, mine, "-k", "8", "--model", tiny_model, prefix=prefix)
        two = rtsearch("query", index, mine, inside, "-k", "8", "--jsonl", "--model",
                       tiny_model, prefix=prefix)  # fmt: skip
        # every result unreadable: the inliers column still there, "-" as the note says
        top = rtsearch("query", index, outside, "-k", "1", "--model", tiny_model, prefix=prefix)
    finally:
        (gallery / "locked").chmod(0o755)
    assert one.returncode == 0, one.stderr
    assert len(one.stdout.splitlines()) == 8 and " - inliers  locked/" in one.stdout
    assert one.stderr.startswith("note: 4 nearest indexed images could not be read to verify")
    assert "no longer in" not in one.stderr  # (not gone: unreadable)
    assert top.returncode == 0 and top.stdout == (
        f"  1      0.0000     - inliers  {inside.relative_to(gallery).as_posix()}\n"
    ), top.stdout
    assert two.returncode == 1
    answers = [json.loads(line) for line in two.stdout.splitlines()]
    assert len(answers[0]["results"]) == 8 and answers[0]["error"] is None
    assert answers[1]["error"] == f"{inside}: cannot stat (Permission denied)"
    # the viewer's worker: a grey tile said, not the thread's death
    script = (
        "import sys; from pathlib import Path; from rtsearch.session import Result; "
        "from rtsearch.viewer.worker import Worker; w = Worker(None, k=2); "
        "r = [Result(0, 'a', Path(sys.argv[1]), 0.0), Result(1, 'b', Path(sys.argv[2]), 0.1)]; "
        "t, m = w._thumbs(r); w._decoders.shutdown(); print(len(t)); print(m)"
    )
    (gallery / "locked").chmod(0)
    try:
        shown = subprocess.run([*(prefix or []), sys.executable, "-c", script, mine, inside],
                               capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
    finally:
        (gallery / "locked").chmod(0o755)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == f"2\ncannot show {inside}: permission denied\n"  # (there: no update)


def test_a_file_gone_between_its_stat_and_its_decoding_is_said_as_gone(tmp_path):
    """Gone after the stat of its turn, as the decoder opened it: said as gone, as one gone
    before the stat is (it was matched by the decoder's wording)."""
    from rtsearch.decode import FileGone, load_rgb
    from rtsearch.extraction import GONE, _problem

    with pytest.raises(FileGone) as gone:
        load_rgb(tmp_path / "d" / "x.jpg")
    assert _problem(tmp_path, "d/x.jpg", gone.value) == f"{tmp_path / 'd' / 'x.jpg'}: {GONE}"
