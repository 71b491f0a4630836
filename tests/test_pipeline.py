"""The headless pipeline as a user drives it: analyze, info, query, resume, re-analyse."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fakes import make_copy, make_gallery, make_image, make_photo_gallery, write_tiny_model

from rtsearch import store
from rtsearch.cli import main
from rtsearch.decode import load_rgb
from rtsearch.errors import RtsearchError
from rtsearch.projection import DEFAULT_KIND

ROOT = Path(__file__).resolve().parent.parent


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def gallery(tmp_path) -> Path:
    make_gallery(tmp_path / "gallery", 40)
    return tmp_path / "gallery"


def test_summaries_count_one_image_in_the_singular(capsys, tmp_path, tiny_model):
    from rtsearch.errors import count

    make_gallery(tmp_path / "one", 1)
    out = tmp_path / "one.dat"
    code, stdout, _ = cli(capsys, "analyze", tmp_path / "one", "-o", out, "--model", tiny_model)
    assert code == 0 and f"{out}: 1 image (1 analysed, 0 reused, 0 skipped)" in stdout
    assert (count(0, "image"), count(2, "label")) == ("0 images", "2 labels")


def test_default_dims_beyond_a_small_model_say_they_are_the_default(capsys, tmp_path):
    make_gallery(tmp_path / "g", 3)
    small = write_tiny_model(tmp_path / "t64.onnx", dims=64)
    out = tmp_path / "x.dat"
    code, _, err = cli(capsys, "analyze", tmp_path / "g", "-o", out, "--model", small)
    assert code == 1 and err == (
        "rtsearch: error: --dims 100 (the default): larger than the model's 64 features; "
        "pass --dims 64 or fewer\n"
    )


def test_help_shows_each_default_once(capsys):
    for command in ("analyze", "query", "view", "bench", "update", "eval", "demo"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "(default: None)" not in text and "(default: False)" not in text, command
        assert "None:" not in text, command  # a user does not type None
        for option in re.split(r" (?=-{1,2}[a-z])", text):  # one option and its help
            assert option.lower().count("default") <= 1 or "by default" in option, option


def test_analyze_info_query(capsys, tmp_path, gallery, tiny_model, monkeypatch):
    out = tmp_path / "index.dat"
    code, stdout, _ = cli(
        capsys, "analyze", gallery, "-o", out, "--model", tiny_model, "--dims", "16", "--quiet"
    )
    assert code == 0 and "40 images" in stdout
    code, stdout, _ = cli(capsys, "info", out, "--json")
    info = json.loads(stdout)
    assert info["count"] == 40 and info["dims"] == 16 and info["feature_dims"] == 128
    assert info["model"] == "tiny" and info["projection"] == DEFAULT_KIND
    assert info["search"] in ("brute", "kdtree") and info["bytes"] == out.stat().st_size
    assert info["search_int8_first_pass"] is False  # 40 rows: the plain scan
    assert info["model_file"] == str(tiny_model.resolve()) and info["seed"] == 0
    monkeypatch.setattr("rtsearch.search.PREFILTER_ROWS", (10, 100))
    monkeypatch.setattr("rtsearch.search.KDTREE_MAX_DIMS", 8)  # 16 dims: the scan
    assert json.loads(cli(capsys, "info", out, "--json")[1])["search_int8_first_pass"] is True
    from rtsearch.session import SearchSession

    live = SearchSession.open(out, model=str(tiny_model))
    once = SearchSession.open(out, model=str(tiny_model), prefilter=False)
    assert live.searcher._bounds is not None and once.searcher._bounds is None
    q = live.searcher.vectors[3]
    assert live.searcher.query(q, 5).indices.tolist() == once.searcher.query(q, 5).indices.tolist()
    monkeypatch.undo()  # (the test's own state folder too: one of its own again)
    # no viewer's state of other tests: a command given no index takes the index shown last
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    query = gallery / "d1" / "img00007.jpg"
    code, stdout, _ = cli(
        capsys, "query", query, "--index", out, "--model", tiny_model, "-k", "5", "--json"
    )
    hits = json.loads(stdout)
    assert code == 0 and len(hits) == 5
    assert hits[0]["path"] == "d1/img00007.jpg" and hits[0]["distance"] < 1e-4
    assert hits[0]["file"] == str(query.resolve())  # a path that opens from anywhere
    assert [h["distance"] for h in hits] == sorted(h["distance"] for h in hits)
    # the index first, as info, update and view take it: the same answer
    code, stdout, _ = cli(capsys, "query", out, query, "--model", tiny_model, "-k", "5", "--json")
    assert code == 0 and json.loads(stdout) == hits
    # the text: rank, distance, inliers, then the path, whose length varies, last (the
    # inliers came after it, out of line)
    code, stdout, _ = cli(capsys, "query", out, query, "--model", tiny_model, "-k", "5")
    lines = stdout.splitlines()
    assert code == 0 and [line.split()[-1] for line in lines] == [h["path"] for h in hits]
    assert len({line.index(" inliers") for line in lines}) == 1
    for args, said in (
        ((query, out), f"{out} looks like the index and {query} like the picture: "),
        ((out, query, "--index", gallery), f"two indexes given, {out} and --index {gallery}"),
        ((query,), f"no index given: rtsearch query INDEX {query}"),
        ((out,), f"no picture given to search for: rtsearch query {out} IMAGE"),
    ):
        code, _, stderr = cli(capsys, "query", *args, "--model", tiny_model)
        assert code == 1 and stderr.startswith(f"rtsearch: error: {said}"), stderr
    code, _, stderr = cli(
        capsys, "query", tmp_path / "nope.jpg", "--index", out, "--model", tiny_model
    )
    assert (
        code != 0
        and stderr.strip() == f"rtsearch: error: {tmp_path / 'nope.jpg'}: image file not found"
    )
    code, _, stderr = cli(capsys, "query", "/dev/null", "--index", out, "--model", tiny_model)
    assert code != 0 and stderr.strip() == "rtsearch: error: /dev/null: not a regular file"
    # a path given where a command goes (`rtsearch ~/Pictures` mistyped): it said
    # "invalid choice", listing the commands
    code, _, stderr = cli(capsys, tmp_path / "Pictres")
    assert code == 2 and stderr == (
        f"rtsearch: error: {tmp_path / 'Pictres'}: no such file or folder (rtsearch takes an "
        "index file, a folder of pictures, or a command: analyze, bench, demo, eval, info, "
        "models, query, update, view)\n"
    )
    # links said as analyze says them (both were "image file not found")
    (tmp_path / "broken.jpg").symlink_to(tmp_path / "gone.jpg")
    (tmp_path / "loop.jpg").symlink_to(tmp_path / "loop.jpg")
    for link, said in (("broken.jpg", "broken symlink"), ("loop.jpg", "cannot stat (Too many")):
        code, _, stderr = cli(
            capsys, "query", tmp_path / link, "--index", out, "--model", tiny_model
        )
        assert code == 1 and stderr.startswith(f"rtsearch: error: {tmp_path / link}: {said}")
    code, _, stderr = cli(
        capsys, "query", query, "--index", out, "--model", tiny_model, "--base-dir", query
    )
    assert code != 0 and stderr.strip() == f"rtsearch: error: --base-dir {query}: not a folder"


def test_commands_suggested_paste_and_names_print_on_one_line(capsys, tmp_path, tiny_model):
    """A folder with a space: the `rtsearch update ...` a note suggests is quoted (it split
    in two when pasted). A name with a newline or an escape code: summaries and `info`
    escape it as errors do (it split lines and coloured the terminal)."""
    import shlex

    gallery, out = tmp_path / "my pics", tmp_path / "my index.dat"
    make_gallery(gallery, 6)
    assert cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model, "--quiet")[0] == 0
    picture = tmp_path / "kept.png"
    shutil.move(gallery / "d0/img00000.png", picture)
    code, _, err = cli(capsys, "query", out, picture, "--model", tiny_model, "--no-verify")
    pasted = err.split("; ", 1)[1].removesuffix(" brings it up to date\n")
    assert code == 0 and shlex.split(pasted) == [
        "rtsearch",
        "update",
        str(out),
        str(gallery.resolve()),
    ]
    odd = tmp_path / "esc\x1b[31m" / "new\nline.dat"
    odd.parent.mkdir()
    code, stdout, _ = cli(capsys, "analyze", gallery, "-o", odd, "--model", tiny_model, "--quiet")
    assert code == 0 and stdout.count("\n") == 1 and "\x1b" not in stdout
    assert stdout.startswith(f"{tmp_path}/esc\\x1b[31m/new\\nline.dat: 5 images ")
    shutil.move(gallery, tmp_path / "pics\x1b[1m")
    code, stdout, _ = cli(capsys, "update", odd, tmp_path / "pics\x1b[1m", "--model", tiny_model)
    assert code == 0 and stdout.count("\n") == 1 and "\x1b" not in stdout, stdout
    code, stdout, _ = cli(capsys, "info", odd)
    assert code == 0 and "\x1b" not in stdout and f"{tmp_path}/pics\\x1b[1m\n" in stdout


def test_paths_are_relative_posix_and_base_dir_can_move(
    capsys, tmp_path, gallery, tiny_model, monkeypatch
):
    out = tmp_path / "index.dat"
    cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model, "--quiet")
    index = store.load(out)
    assert all(not p.startswith("/") and "\\" not in p for p in index.paths)
    assert index.paths == sorted(index.paths)
    moved = tmp_path / "moved"
    gallery.rename(moved)
    code, _, err = cli(
        capsys, "query", moved / "d0/img00003.jpg", "--index", out, "--model", tiny_model
    )
    assert code == 1 and err == (  # stored folder is gone: say what to do, both ways
        f"rtsearch: error: {out}: the images' folder {gallery.resolve()} is gone; pass "
        "--base-dir, or --no-verify to rank by vector alone\n"
    )
    # ...unless the images are not needed: --no-verify answers with the paths as indexed
    code, stdout, err = cli(
        capsys, "query", moved / "d0/img00003.jpg", "--index", out, "--model", tiny_model,
        "--no-verify", "--json",
    )  # fmt: skip
    assert code == 0 and json.loads(stdout)[0]["path"] == "d0/img00003.jpg"
    assert err == f"note: the images' folder {gallery.resolve()} is gone; paths as indexed\n"
    code, stdout, _ = cli(
        capsys,
        "query",
        moved / "d0/img00003.jpg",
        "--index",
        out,
        "--model",
        tiny_model,
        "--base-dir",
        moved,
        "--json",
    )
    assert code == 0 and json.loads(stdout)[0]["path"] == "d0/img00003.jpg"
    # a relative --base-dir: "file" is absolute all the same (it came relative)
    monkeypatch.chdir(moved.parent)
    code, stdout, _ = cli(capsys, "query", moved / "d0/img00003.jpg", "--index", out,
                          "--model", tiny_model, "--base-dir", moved.name, "--json")  # fmt: skip
    assert code == 0 and json.loads(stdout)[0]["file"] == str(moved / "d0/img00003.jpg")


def test_other_model_is_refused(capsys, tmp_path, gallery, tiny_model):
    out = tmp_path / "index.dat"
    cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model, "--quiet")
    other = write_tiny_model(tmp_path / "other.onnx", seed=7)
    code, stdout, err = cli(
        capsys, "query", gallery / "d0/img00000.png", "--index", out, "--model", other
    )
    assert code == 1 and stdout == ""
    assert err.count("\n") == 1 and str(out) in err and "model" in err
    code, _, err = cli(capsys, "analyze", gallery, "-o", out, "--model", other, "--quiet")
    assert (
        code == 1
        and err.startswith(  # nor extended with another model's features
            f"rtsearch: error: {out}: an index made with model tiny (fc, weights "
        )
        and "), not tiny (fc, weights " in err
        and "use the same --model to update it" in err
        and err.endswith("or pass --replace to analyse all of it anew with this one\n")
    )
    # --replace: all of it analysed anew with the other model (it was refused still)
    code, stdout, err = cli(capsys, "analyze", gallery, "-o", out, "--model", other, "--replace")
    from rtsearch.models import read_model_info

    made = store.load(out)
    assert code == 0 and made.model.identity == read_model_info(other).identity
    assert len(made.paths) == len(list(gallery.rglob("*.*")))
    assert err.startswith(f"warning: {out}: an index made with model tiny (fc, weights ")
    assert "; --replace: analysing all of it anew\n" in err


def test_a_model_file_outside_the_models_folders_is_found_again_without_model(
    capsys, tmp_path, gallery, monkeypatch
):
    """An index made with `--model ~/mine/custom.onnx` (not in the models' folders, not
    named for its model): `query`, `update` and `analyze` again without --model said "no
    model file for tiny"; and an int8 file of other calibration gave way to the default
    export of the same name. The index keeps where its file was and looks there first."""
    monkeypatch.setenv("RTSEARCH_MODELS", str(tmp_path / "models"))
    mine = write_tiny_model(tmp_path / "mine" / "custom.onnx")
    out = tmp_path / "index.dat"
    assert cli(capsys, "analyze", gallery, "-o", out, "--model", mine, "--quiet")[0] == 0
    assert store.load(out).model.file == str(mine.resolve())
    code, stdout, err = cli(capsys, "query", out, gallery / "d0/img00000.png", "-k", "1")
    assert (code, err) == (0, "") and stdout.split()[-1] == "d0/img00000.png"
    make_gallery(gallery / "more", 2, start=90)
    code, stdout, err = cli(capsys, "update", out, gallery)
    assert code == 0 and "(2 added," in stdout, err
    code, stdout, err = cli(capsys, "analyze", gallery, "-o", out, "--quiet")
    assert code == 0 and "42 reused" in stdout, err
    # a file of the same weights and kind under the model's name elsewhere: the one that
    # made the rows comes first
    decoy = write_tiny_model(tmp_path / "models" / "tiny.onnx")
    from rtsearch.session import SearchSession

    assert SearchSession.open(out).extractor.path == mine.resolve()
    mine.unlink()  # gone: looked for by name and weights, as before
    assert SearchSession.open(out).extractor.path == decoy


def test_query_says_when_the_nearest_files_are_gone(capsys, tmp_path, gallery, tiny_model):
    """A file deleted since the index was made: it cannot be verified, so it dropped out of
    the results (or came last, at distance 0) without a word about the stale index."""
    out = tmp_path / "index.dat"
    cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model, "--quiet")
    picture = tmp_path / "kept.png"
    shutil.copy(gallery / "d0/img00000.png", picture)
    (gallery / "d0/img00000.png").unlink()
    base = ["query", picture, "--index", out, "--model", tiny_model, "-k", "3"]
    for extra, nearest in (([], "40 nearest indexed images"), (["--no-verify"], "3 nearest")):
        code, stdout, err = cli(capsys, *base, *extra)
        assert code == 0 and len(stdout.splitlines()) == 3
        assert err == (
            f"note: 1 of the {nearest}{'' if extra == [] else ' indexed images'} is no longer "
            f"in {gallery.resolve()} (deleted or moved since the index was made); "
            f"rtsearch update {out} {gallery.resolve()} brings it up to date\n"
        )
    code, _, err = cli(capsys, "update", out, gallery, "--model", tiny_model, "--quiet")
    code, stdout, err = cli(capsys, *base)
    assert code == 0 and err == "" and "img00000" not in stdout


def test_query_trim_finds_a_picture_screenshot_on_its_page(
    capsys, tmp_path, gallery, tiny_model, monkeypatch
):
    """`query --trim`: a screenshot of an indexed picture with the page around it is
    searched as the picture, as the viewer searches live pictures; without it, the page
    counts and another picture comes first."""
    from PIL import Image

    out = tmp_path / "index.dat"
    cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model, "--quiet")
    pic = np.asarray(Image.open(gallery / "d1/img00010.png").convert("RGB"))
    h, w = pic.shape[:2]
    page = np.full((h + 50, 4 * w + 10, 3), 255, np.uint8)
    page[20 : 20 + h, 3 * w : 4 * w] = pic
    shot = tmp_path / "screenshot.png"
    Image.fromarray(page).save(shot)
    base = ["query", out, shot, "--model", tiny_model, "-k", "3", "--json"]
    plain = tmp_path / "plain.png"  # nothing to trim: said so
    shutil.copy(gallery / "d1/img00010.png", plain)
    code, _, err = cli(capsys, "query", out, plain, "--model", tiny_model, "--trim")
    assert code == 0 and err == f"note: {plain}: no plain borders to trim; searched whole\n"
    black = tmp_path / "black.png"  # one colour all over: said so (it said "no plain borders")
    Image.new("RGB", (640, 360)).save(black)
    code, _, err = cli(capsys, "query", out, black, "--model", tiny_model, "--trim")
    assert code == 0 and err == (
        f"note: {black}: plain all over (one colour): searched whole; its neighbours say little\n"
    )
    from rtsearch.session import SearchSession

    seen = []  # what verification looks at: the picture searched, not the page again
    real = SearchSession.query_image
    monkeypatch.setattr(
        SearchSession, "query_image",
        lambda self, image, k, **kw: seen.append((image.shape, kw.get("detail")))
        or real(self, image, k, **kw),
    )  # fmt: skip
    from rtsearch import verify as verify_mod

    margins = []  # the picture with a margin of its page, as verification looks at it
    with_margin = verify_mod.with_margin
    monkeypatch.setattr(
        verify_mod, "with_margin", lambda *a: margins.append(with_margin(*a)) or margins[-1]
    )
    for extra, first in ((["--trim"], True), ([], False)):
        for verify in ([], ["--no-verify"]):
            code, stdout, err = cli(capsys, *base, *extra, *verify)
            capsys_err = [err]
            assert code == 0
            nearest = json.loads(stdout)[0]["path"]
            assert (nearest == "d1/img00010.png") == first, (extra, verify, nearest)
            if extra:
                shape, detail = seen[-1]
                assert abs(shape[1] / shape[0] - w / h) < 0.05
                # verified alone and with a margin of the page round it (keypoints are
                # found away from a picture's edges), not the page again
                assert (detail is None) == bool(verify)  # (no keypoints not looked at)
                if not verify:
                    assert isinstance(detail, list) and len(detail) == 2
                    margined = margins[-1].shape
                    assert shape[0] < margined[0] <= shape[0] + 64
                    assert shape[1] < margined[1] <= shape[1] + 64 < page.shape[1]
                # it says what it searched (a trim that took nothing looked as if it had
                # not run)
                kept = f"{shape[1]}x{shape[0]} at "
                assert f"note: {shot}: searched its {kept}" in capsys_err[-1]


def test_query_verifies_past_dots_strips_and_a_fifo_in_a_files_place(capsys, tmp_path, tiny_model):
    """Verification (query's default) crashed with OpenCV's traceback when a candidate or
    the query was a 1 px spacer or a 3000x2 strip, and waited for ever on an indexed file
    replaced by a FIFO since. They verify against nothing now."""
    from PIL import Image

    folder = tmp_path / "album"
    files = make_gallery(folder, 6)
    Image.new("RGBA", (1, 1)).save(folder / "spacer.gif")
    Image.new("RGB", (3000, 2), (200, 30, 30)).save(folder / "strip.png")
    Image.new("RGB", (2, 1300), (30, 200, 30)).save(folder / "pole.png")
    out = tmp_path / "album.dat"
    code, _, _ = cli(capsys, "analyze", folder, "-o", out, "--model", tiny_model, "--quiet")
    assert code == 0 and len(store.load(out).paths) == 9
    victim = files[1]
    victim.unlink()
    os.mkfifo(victim)
    for query in (files[0], folder / "spacer.gif", folder / "strip.png"):
        done = subprocess.run(
            [sys.executable, "-m", "rtsearch", "query", str(query), "--index", str(out),
             "--model", str(tiny_model), "-k", "9", "--json"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        hits = json.loads(done.stdout)
        assert len(hits) == 9 and hits[0]["path"] == str(query.relative_to(folder))
        # the FIFO is not read: not verified (null), the others are
        unverified = [h["path"] for h in hits if h["inliers"] is None]
        assert unverified == [str(victim.relative_to(folder))]


def test_query_says_when_the_files_found_are_not_the_ones_indexed(
    capsys, tmp_path, gallery, tiny_model
):
    """--base-dir at a folder whose files share the indexed names but hold other pictures:
    the results mixed the indexed pictures' distances with the inliers of the files there,
    and nothing said so."""
    out = tmp_path / "index.dat"
    cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model, "--quiet")
    impostor = tmp_path / "impostor"
    for i, path in enumerate(sorted(p for p in gallery.rglob("*") if p.is_file())):
        other = impostor / path.relative_to(gallery)
        other.parent.mkdir(parents=True, exist_ok=True)
        make_image(1000 + i).save(other, quality=60)
    query = gallery / "d0/img00003.jpg"
    base = ["query", query, "--index", out, "--model", tiny_model, "-k", "3"]
    code, stdout, err = cli(capsys, *base, "--base-dir", impostor)
    assert code == 0 and len(stdout.splitlines()) == 3
    said = re.fullmatch(
        rf"note: (\d+) of the 40 nearest indexed images in {re.escape(str(impostor))} are not "
        rf"the file indexed \(another size\): changed since, or another folder; rtsearch "
        rf"update {re.escape(str(out))} {re.escape(str(impostor))} brings the index up to "
        r"date with it\n",
        err,
    )
    assert said and int(said[1]) >= 36, err  # (a file may match a size by chance)
    code, _, err = cli(capsys, *base)  # the folder indexed: nothing to say
    assert code == 0 and err == ""


def test_a_model_exported_again_from_other_weights_is_named(capsys, tmp_path, gallery, monkeypatch):
    """The index's model file was exported again, under its name, from other weights: the
    refusal named neither the index, nor the file found, nor the weights wanted, and
    `info` did not show them either."""
    models = tmp_path / "models"
    monkeypatch.setenv("RTSEARCH_MODELS", str(models))
    sha = {seed: json.dumps(f"{seed}" * 64) for seed in (1, 2)}  # real ones differ early
    model = write_tiny_model(models / "tiny.onnx", seed=1, props={"weights_sha256": sha[1]})
    out = tmp_path / "index.dat"
    cli(capsys, "analyze", gallery, "-o", out, "--model", "tiny", "--quiet")
    code, listing, _ = cli(capsys, "models", "--json")
    wanted = json.loads(listing)[0]["weights_sha256"][:12]
    code, summary, _ = cli(capsys, "info", out, "--json")
    assert code == 0 and json.loads(summary)["model_weights"] == wanted
    write_tiny_model(model, seed=2, props={"weights_sha256": sha[2]})  # same name, new weights
    code, stdout, err = cli(capsys, "query", gallery / "d0/img00000.png", "--index", out)
    assert code == 1 and stdout == "" and err.count("\n") == 1
    assert err.startswith(f"rtsearch: error: {out}: no model file for tiny (fc) with the ")
    assert f"index's weights {wanted} ({model} has weights {'2' * 12}: another export)" in err
    assert "pass --model FILE of those weights, or analyze the folder again into a new " in err
    kept = model.rename(tmp_path / "kept.onnx")  # moved away: where it was is said
    code, stdout, err = cli(capsys, "query", gallery / "d0/img00000.png", "--index", out)
    assert code == 1 and err.count("\n") == 1
    assert f"weights {wanted} (it was {model}, not there now); pass --model FILE" in err
    kept.rename(model)


@pytest.mark.parametrize(
    ("props", "problem"),
    [
        ({"dims": "5"}, "dims 5, but features has 128 values"),
        ({"dims": '"x"'}, "dims must be a positive whole number, got 'x'"),
        ({"input_name": '"nope"'}, "input_name 'nope' is not the graph's (input)"),
        ({"feature_output": '"nope"'}, "feature_output 'nope' is not among the graph's"),
        ({"input_size": "[100, 100]"}, "input_size [100, 100] does not fit the graph's input"),
        ({"input_size": "[0, 0]"}, "input_size must be [height, width], each 1-4096, got [0, 0]"),
        ({"input_size": '"224"'}, "input_size must be [height, width]"),
        ({"mean": "[1, 2]"}, "mean must be 3 numbers, got [1, 2]"),
        ({"std": "[0, 0, 0]"}, "std must be 3 numbers from 0.001 to 100000 (pixel units)"),
        ({"std": "[1e-30, 1e-30, 1e-30]"}, "std must be 3 numbers from 0.001 to 100000"),
        ({"mean": "[1e300, 0, 0]"}, "mean must be 3 numbers from -100000 to 100000"),
        ({"name": "null"}, "name must be a non-empty string, got None"),
        ({"resize": '"crop"'}, "resize must be one of squash, got 'crop'"),
        ({"int8_cosine": '"high"'}, "int8_cosine must be a number from -1 to 1"),
        ({"weights_sha256": "12345"}, "weights_sha256 must be a non-empty string"),
    ],
)  # fmt: skip
def test_bad_model_metadata_is_refused_when_the_model_opens(
    capsys, tmp_path, monkeypatch, props, problem
):
    make_gallery(tmp_path / "g", 3)
    bad = write_tiny_model(tmp_path / "models" / "bad.onnx", props=props)
    code, _, err = cli(capsys, "analyze", tmp_path / "g", "-o", tmp_path / "x.dat", "--model", bad)
    assert err.startswith(f"rtsearch: error: {bad}: bad model metadata: {problem}")
    assert code == 1 and err.count("\n") == 1 and not (tmp_path / "x.dat").exists()
    write_tiny_model(tmp_path / "models" / "good.onnx")
    monkeypatch.setenv("RTSEARCH_MODELS", str(tmp_path / "models"))
    code, out, _ = cli(capsys, "models")  # one bad file does not hide the others
    assert code == 0 and f"{bad}: bad model metadata: {problem}" in out and "good.onnx\n" in out


def test_a_model_giving_nan_features_does_not_touch_the_index(
    capsys, tmp_path, gallery, tiny_model
):
    out = tmp_path / "index.dat"
    cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model, "--quiet")
    before = out.read_bytes()
    nan = write_tiny_model(tmp_path / "nan.onnx", nan_weight=True)  # the same identity
    make_image(999).save(gallery / "new.png")  # something to analyse
    for args in (("analyze", gallery, "-o", out), ("update", out, gallery)):
        code, _, err = cli(capsys, *args, "--model", nan, "--quiet")
        assert code == 1
        assert err == f"rtsearch: error: {nan}: the model gives NaN or infinite features\n"
        assert out.read_bytes() == before
        assert not list(tmp_path.glob("index.dat.ckpt/*"))
    code, out_text, err = cli(capsys, "query", gallery / "new.png", "--index", out, "--model", nan)
    assert code == 1 and "NaN" in err and out_text == ""


def test_an_index_is_never_written_in_a_shape_loading_would_refuse(tmp_path, gallery, tiny_model):
    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor

    out = tmp_path / "index.dat"
    index = analyze(gallery, out, Extractor(tiny_model, threads=1), Settings(dims=8)).index
    before = out.read_bytes()
    bad_rows = dataclasses.replace(index, projected=index.projected[:-1])
    nan_rows = dataclasses.replace(index, projected=np.full_like(index.projected, np.nan))
    for bad, problem in ((bad_rows, "projected has shape (39, 8), expected (40, 8)"),
                         (nan_rows, "projected holds NaN or infinite values")):  # fmt: skip
        with pytest.raises(RtsearchError, match=re.escape(f"{out}: not written: {problem}")):
            store.save(bad, out)
        assert out.read_bytes() == before


def test_analyze_refuses_to_overwrite_an_index_of_another_folder(capsys, tmp_path, tiny_model):
    make_gallery(tmp_path / "a", 6)
    make_gallery(tmp_path / "b", 4, start=50)
    out = tmp_path / "pictures.dat"
    args = ("-o", out, "--model", tiny_model, "--dims", "8", "--quiet")
    assert cli(capsys, "analyze", tmp_path / "a", *args)[0] == 0
    before = out.read_bytes()
    code, _, err = cli(capsys, "analyze", tmp_path / "b", *args)
    assert code == 1 and err == (
        f"rtsearch: error: {out}: already an index of {(tmp_path / 'a').resolve()} (6 images), "
        f"none of them in {tmp_path / 'b'}; choose another -o, or pass --replace to overwrite "
        "it\n"
    )
    assert out.read_bytes() == before
    # nor when other projection settings would have it analysed afresh anyway
    for other in (("--dims", "6"), ("--projection", "random"), ("--no-l2",)):
        code, _, err = cli(capsys, "analyze", tmp_path / "b", *args, *other)
        assert code == 1 and "already an index of" in err and out.read_bytes() == before, other
    # the same folder moved, with other settings, is analysed afresh as before
    (tmp_path / "a").rename(tmp_path / "a2")
    code, _, err = cli(capsys, "analyze", tmp_path / "a2", *args[:-3], "--dims", "6", "--quiet")
    assert code == 0 and "its images are analysed again" in err
    code, stdout, _ = cli(capsys, "analyze", tmp_path / "b", *args, "--replace")
    assert code == 0 and "4 images (4 analysed, 0 reused" in stdout
    # a copy of its folder, every file time new (`cp -r`): said to hold none of them, and
    # refused; it is its folder, as `update` takes it. Files that share names, not sizes
    # (another camera's IMG_0001.JPG), are another folder's
    shutil.copytree(tmp_path / "b", tmp_path / "b-copy", copy_function=shutil.copyfile)
    code, stdout, err = cli(capsys, "analyze", tmp_path / "b-copy", *args)
    assert code == 0 and "4 images (4 analysed, 0 reused" in stdout, err
    other = tmp_path / "c"
    for path in (tmp_path / "b").rglob("*.*"):
        (other / path.relative_to(tmp_path / "b")).parent.mkdir(parents=True, exist_ok=True)
        make_image(77).save(other / path.relative_to(tmp_path / "b"), format="PNG")
    code, _, err = cli(capsys, "analyze", other, *args)
    assert code == 1 and err == (
        f"rtsearch: error: {out}: already an index of {(tmp_path / 'b-copy').resolve()} (4 "
        f"images), {other} holds 4 files of their names, none of the size indexed; choose "
        "another -o, or pass --replace to overwrite it\n"
    )


def test_reanalysis_adds_only_new_images(capsys, tmp_path, gallery, tiny_model):
    out = tmp_path / "index.dat"
    cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model, "--quiet")
    before = store.load(out)
    make_gallery(gallery, 5, start=100)
    (gallery / before.paths[0]).unlink()
    code, stdout, _ = cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model, "--quiet")
    assert code == 0 and "(5 analysed, 39 reused, 1 removed, 0 skipped)" in stdout
    after = store.load(out)
    assert after.count == 44 and before.paths[0] not in after.paths
    common = [p for p in before.paths if p in after.paths]
    rows_b = [before.paths.index(p) for p in common]
    rows_a = [after.paths.index(p) for p in common]
    np.testing.assert_allclose(before.projected[rows_b], after.projected[rows_a], atol=1e-5)


def test_keep_features_allows_reprojection(capsys, tmp_path, gallery, tiny_model):
    from rtsearch.session import SearchSession

    out = tmp_path / "index.dat"
    cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model, "--keep-features", "--quiet")
    session = SearchSession.open(out, model=str(tiny_model))
    smaller = session.reprojected(8)
    assert smaller.index.dims == 8 and smaller.index.count == 40
    cli(capsys, "analyze", gallery, "-o", tmp_path / "lean.dat", "--model", tiny_model, "--quiet")
    lean = SearchSession.open(tmp_path / "lean.dat", model=str(tiny_model))
    with pytest.raises(Exception, match="without features"):
        lean.reprojected(8)


def test_analysing_again_keeps_the_features_unless_told_and_says_they_go(
    capsys, tmp_path, gallery, tiny_model
):
    """Analysed again without --keep-features, an index that had its features dropped
    them (with a warning, once gone): they take a whole analysis to get back. They are
    kept now unless --no-keep-features says otherwise."""
    from rtsearch import store

    out = tmp_path / "index.dat"
    args = ["analyze", gallery, "-o", out, "--model", tiny_model, "--quiet"]
    cli(capsys, *args, "--keep-features")
    code, stdout, err = cli(capsys, *args)
    assert code == 0 and "40 reused" in stdout and err == ""
    assert store.load(out, features=True).features.shape == (40, 128)
    code, _, err = cli(capsys, *args, "--no-keep-features")
    assert code == 0 and f"{out}: it kept its full features and will not any more" in err
    assert store.load(out, features=True).features is None
    _, _, err = cli(capsys, *args)
    assert "kept its full features" not in err and not store.has_features(out)
    # and back: asking for them again analyses every image again (it reused all 40 and
    # kept no features, so the refit advice's own command did nothing)
    code, stdout, err = cli(capsys, *args[:-1], "--keep-features")
    assert code == 0 and "40 images (40 analysed" in stdout
    said = "stored without features (--keep-features asks for them); its images are analysed"
    assert f"{out}: {said} again" in err
    assert store.load(out, features=True).features.shape == (40, 128)


def test_pca_index(capsys, tmp_path, gallery, tiny_model):
    out = tmp_path / "pca.dat"
    code, _, _ = cli(
        capsys,
        "analyze",
        gallery,
        "-o",
        out,
        "--model",
        tiny_model,
        "--pca",
        "--whiten",
        "--dims",
        "12",
        "--quiet",
    )
    assert code == 0
    code, stdout, _ = cli(capsys, "info", out, "--json")
    assert json.loads(stdout)["projection"] == "pca-whiten"


@pytest.mark.parametrize(
    "bad", [["--dims", "1"], ["--dims", "129"], ["--projection", "random", "--dims", "129"]]
)
def test_bad_settings_are_one_line_errors(capsys, tmp_path, gallery, tiny_model, bad):
    args = ["analyze", gallery, "-o", tmp_path / "x.dat", "--model", tiny_model, "--quiet", *bad]
    if bad == ["--dims", "1"]:  # out of 2-1500: a usage error, as any option's (it exited 1)
        with pytest.raises(SystemExit) as exited:
            cli(capsys, *args)
        err = capsys.readouterr().err
        assert exited.value.code == 2 and err.endswith("--dims: must be 2-1500, got 1\n")
        with pytest.raises(SystemExit):  # more than 1500: what keeps them all is said
            cli(capsys, *args[:-1], "2000")
        assert capsys.readouterr().err.endswith(
            "--dims: must be 2-1500 (--projection none keeps every feature), got 2000\n"
        )
    else:
        code, _, err = cli(capsys, *args)
        assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "x.dat").exists()


def slow_analyze(
    args: list[str], seconds_per_batch: float, *, sigint_ignored: bool = False
) -> subprocess.Popen:
    """`rtsearch ARGS` in a child whose every batch also sleeps (the tiny model is too quick
    to interrupt mid-way); ``sigint_ignored`` as a script's background job (``cmd &``)."""
    slow = (
        "import sys, time; from rtsearch import extractor as e; run = e.Extractor.run; "
        f"e.Extractor.run = lambda self, b: (time.sleep({seconds_per_batch}), run(self, b))[1]; "
        "from rtsearch.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", slow, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        if sigint_ignored
        else None,
    )


def wait_for_parts(out: Path, count: int) -> Path:
    """Wait (at most a minute) until ``count`` checkpoint parts of ``out`` exist."""
    ckpt = Path(str(out) + ".ckpt")
    deadline = time.monotonic() + 60
    while len(list(ckpt.glob("part-*.dat"))) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return ckpt


def test_sigkill_mid_analysis_resumes_without_redoing(tmp_path):
    """Kill a real analyze process once checkpoints exist; the rerun finishes the job,
    redoes nothing checkpointed, and equals an uninterrupted run. Given without the options
    the run was started with, it resumes with them (it made a 100-d PCA of a run asked for
    a random projection, without a word)."""
    gallery = tmp_path / "g"
    make_gallery(gallery, 160)
    model = write_tiny_model(tmp_path / "slow.onnx")
    out = tmp_path / "killed.dat"
    settings = ["--model", str(model), "--dims", "6", "--projection", "random", "--seed", "3",
                "--keep-features", "--exclude", "img0001*"]  # fmt: skip
    args = ["analyze", str(gallery), "-o", str(out), *settings]
    args += ["--checkpoint-every", "16", "--batch", "4", "--quiet"]
    # The tiny model is too quick to kill mid-way: slow each batch down in the child only.
    proc = slow_analyze(args, seconds_per_batch=0.05)
    ckpt = wait_for_parts(out, 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    # `info` (or `query`, `view`) on it says where the work is and how to finish it
    info = subprocess.run([sys.executable, "-m", "rtsearch", "info", str(out)],
                          capture_output=True, text=True)  # fmt: skip
    assert info.returncode == 1 and info.stderr == (
        f"rtsearch: error: {out}: index file not found; {ckpt} holds an unfinished analysis: "
        "analyze its folder again with this -o to finish it\n"
    )
    saved = sum(store.load(p, allow_checkpoint=True).count for p in ckpt.glob("part-*.dat"))
    assert 32 <= saved < 150
    again = [sys.executable, "-m", "rtsearch", "analyze", str(gallery), "-o", str(out), "--quiet",
             "--model", str(model)]  # fmt: skip
    rerun = subprocess.run(again, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{150 - saved} analysed, {saved} reused" in rerun.stdout  # (10 left out)
    assert not ckpt.exists()
    fresh = tmp_path / "fresh.dat"
    cmd = [sys.executable, "-m", "rtsearch", *args]
    cmd[cmd.index(str(out))] = str(fresh)
    subprocess.run(cmd, check=True, capture_output=True)
    a, b = store.load(out, features=True), store.load(fresh)
    assert a.paths == b.paths and len(a.paths) == 150 and a.exclude == ("img0001*",)
    assert (a.projection.kind, a.dims, a.projection.seed) == ("random", 6, 3)
    assert a.features is not None
    np.testing.assert_allclose(a.projected, b.projected, atol=1e-5)


def test_a_rerun_killed_with_other_settings_resumes_with_them(tmp_path):
    """An index of 8 dims analysed again with --dims 4, killed: analyze again without
    options took the index's 8 dims, reused its rows and dropped the run's checkpoints
    without a word. The unfinished run is the later command: it goes on with its own."""
    gallery = tmp_path / "g"
    make_gallery(gallery, 120)
    model = write_tiny_model(tmp_path / "slow.onnx")
    out = tmp_path / "i.dat"
    base = ["analyze", str(gallery), "-o", str(out), "--model", str(model), "--quiet"]
    subprocess.run([sys.executable, "-m", "rtsearch", *base, "--dims", "8"], check=True)
    proc = slow_analyze([*base, "--dims", "4", "--projection", "random", "--checkpoint-every",
                         "16", "--batch", "4"], seconds_per_batch=0.05)  # fmt: skip
    ckpt = wait_for_parts(out, 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert store.load(out).dims == 8  # (the old index stays until the new one is written)
    saved = sum(store.load(p, allow_checkpoint=True).count for p in ckpt.glob("part-*.dat"))
    assert 32 <= saved < 120
    # `info` says it is there (it said nothing of it)
    info = [sys.executable, "-m", "rtsearch", "info", str(out)]
    said = subprocess.run([*info, "--json"], capture_output=True, text=True).stdout
    assert json.loads(said)["unfinished"] == str(ckpt)
    said = subprocess.run(info, capture_output=True, text=True).stdout
    assert f"  {ckpt} (an analysis into it stopped: analyze again to finish it)\n" in said
    rerun = subprocess.run([sys.executable, "-m", "rtsearch", *base], capture_output=True,
                           text=True)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    assert f"{120 - saved} analysed, {saved} reused" in rerun.stdout
    assert rerun.stderr.startswith(
        f"note: {ckpt}: an unfinished run's settings are taken (4 dims, random); give others "
        "to start again with them\n"
    )
    index = store.load(out)
    assert (index.dims, index.projection.kind) == (4, "random") and not ckpt.exists()
    said = subprocess.run([*info, "--json"], capture_output=True, text=True).stdout
    assert json.loads(said)["unfinished"] is None


def test_an_index_still_being_made_is_said_to_be(capsys, tmp_path):
    """During a first analysis, `info`, `query` and `update` on its -o told the user to
    analyze the folder again to finish it: that analysis was still running."""
    from rtsearch import atomic

    gallery = tmp_path / "g"
    make_gallery(gallery, 2)
    out = tmp_path / "new.dat"
    (out.parent / "new.dat.ckpt").mkdir()
    (out.parent / "new.dat.ckpt" / "part-000000.dat").write_bytes(b"")
    with writer_lock_held(out):
        for args in (["info"], ["query", str(gallery / "img0000.png"), "--index"], ["update"]):
            args = [*args, str(out)] if args[0] != "update" else ["update", str(out), str(gallery)]
            assert main(args) == 1
            assert capsys.readouterr().err == (
                f"rtsearch: error: {out}: index file not there yet; another rtsearch analyze or "
                "update is writing it; wait for it to end\n"
            )
    with atomic.writer_lock(out):  # this process's own (an update reading what it writes)
        assert not atomic.being_written(out)
    assert main(["info", str(out)]) == 1  # (the lock let go: what it left is said)
    assert "holds an unfinished analysis" in capsys.readouterr().err


def test_the_writer_lock_holds_for_a_user_who_may_only_read_its_file(tmp_path, monkeypatch):
    """Another user's lock file (theirs to write, ours to read) could not be opened to lock,
    and was taken for no writer: two users' analyses of a shared index ran together, the
    second taking the first's checkpoints. It is locked read-only; made under a group's
    umask (002), it is the group's to write too."""
    from rtsearch import atomic

    out = tmp_path / "shared.dat"
    with writer_lock_held(out, umask=0o002):
        lock = tmp_path / "shared.dat.lock"
        assert lock.stat().st_mode & 0o777 == 0o664
        real_open = os.open

        def theirs(path, flags, *args):  # (as root, a file's mode does not stop a write)
            if Path(path) == lock and flags & (os.O_RDWR | os.O_WRONLY):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, flags, *args)

        monkeypatch.setattr(os, "open", theirs)
        assert atomic.being_written(out)
        with pytest.raises(atomic.IndexBusy), atomic.writer_lock(out):
            pass
    assert not atomic.being_written(out)


@contextlib.contextmanager
def writer_lock_held(out: Path, umask: int = 0o022) -> Iterator[None]:
    """Another process holding ``out``'s writer lock, as a running analyze or update does,
    made under ``umask``."""
    hold = f"import os, sys, time; from rtsearch import atomic\nos.umask({umask})\n"
    hold += "with atomic.writer_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", hold, str(out)], stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    try:
        assert holder.stdout.readline() == "held\n"
        yield
    finally:
        holder.kill()
        holder.wait()


def test_checkpoints_that_cannot_be_removed_are_said(capsys, tmp_path, tiny_model, monkeypatch):
    """Another user's checkpoints in a shared folder (their files, ours to read) stayed
    behind a finished analysis without a word, and `info` then called the index unfinished."""
    import shutil

    from rtsearch import analyze

    gallery, out = tmp_path / "g", tmp_path / "g.dat"
    ckpt = tmp_path / "g.dat.ckpt"
    make_gallery(gallery, 12)
    real_rmtree = shutil.rmtree

    def rmtree(path, **kwargs) -> None:  # (as root, another's files are removed)
        if Path(path) != ckpt:
            real_rmtree(path, **kwargs)

    monkeypatch.setattr(analyze.shutil, "rmtree", rmtree)
    code = main(["analyze", str(gallery), "-o", str(out), "--model", str(tiny_model), "--quiet",
                 "--checkpoint-every", "4"])  # fmt: skip
    assert code == 0 and any(ckpt.glob("part-*.dat"))
    assert capsys.readouterr().err == (
        f"warning: {ckpt}: cannot remove its checkpoints (another user's, or a folder this "
        f"user may not write); {out} holds their rows, so the folder can be deleted\n"
    )
    monkeypatch.undo()
    shutil.rmtree(ckpt)


def test_a_damaged_checkpoint_part_is_passed_over_and_its_images_analysed_again(
    capsys, tmp_path, tiny_model, monkeypatch
):
    """One unreadable part (a disk's fault: parts are written atomically) stopped every
    resume with no way out but deleting the folder by hand, and all its work with it."""
    import dataclasses

    from rtsearch.checkpoints import CheckpointWriter

    gallery = tmp_path / "g"
    make_gallery(gallery, 12)
    whole = tmp_path / "whole.dat"
    cli(capsys, "analyze", gallery, "-o", whole, "--model", tiny_model, "--keep-features")
    index = store.load(whole, features=True)
    out = tmp_path / "resumed.dat"
    ckpt = Path(f"{out}.ckpt")
    for number, rows in ((0, slice(0, 4)), (1, slice(4, 8))):
        part = dataclasses.replace(
            index, paths=index.paths[rows], sizes=index.sizes[rows], mtimes=index.mtimes[rows],
            features=index.features[rows], projected=None, projection=None,
        )  # fmt: skip
        store.save(part, ckpt / f"part-{number:06d}.dat")
    damaged = ckpt / "part-000001.dat"
    damaged.write_bytes(damaged.read_bytes()[:5000])
    # a part written now goes after the last one there, not over one (it counted them)
    (ckpt / "part-000000.dat").rename(ckpt / "part-000002.dat")
    monkeypatch.chdir(tmp_path)  # the folder given relative, as typed
    writer = CheckpointWriter(ckpt, index.model, Path("g"), None)
    writer.add(index.paths[8:9], index.features[8:9], index.sizes[8:9], index.mtimes[8:9])
    writer.flush()
    # the folder stored absolute, as in an index (it was "g", resolved later against
    # whatever folder the next run started in)
    assert store.load(ckpt / "part-000003.dat", allow_checkpoint=True).base_dir == str(gallery)
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "part-000001.dat", "part-000002.dat", "part-000003.dat"
    ]  # fmt: skip
    code, stdout, err = cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model, "--quiet")
    assert code == 0 and "12 images (7 analysed, 5 reused, 0 skipped)" in stdout
    assert err.startswith(f"warning: {damaged}: not a readable index file (") and err.endswith(
        "; passed over: its images are analysed again\n"
    )
    assert err.count("\n") == 1 and not ckpt.exists()
    np.testing.assert_allclose(store.load(out).projected, index.projected, atol=1e-5)


def test_a_non_number_and_a_folder_for_an_output_file_are_named(capsys, tmp_path):
    """`-k abc` said "invalid positive_int value", and `-o out/new/` wrote a file named
    out/new (Path drops the slash)."""
    make_gallery(tmp_path / "g", 2)
    for args, message in (
        (["query", "x.jpg", "--index", "y.dat", "-k", "abc"],
         "argument -k: not a whole number: 'abc'"),
        (["analyze", tmp_path / "g", "-o", f"{tmp_path}/new/"],
         f"argument -o/--output: {tmp_path}/new/ names a folder; give the file's name, e.g. "
         f"{tmp_path}/new/index.dat"),
        (["update", "a.dat", "g", "--watch", "--interval", "soon"],
         "argument --interval: not a number: 'soon'"),
        (["analyze", tmp_path / "g", "-o", "x.dat", "--threads", "two"],
         "argument --threads: not a whole number: 'two'"),
    ):  # fmt: skip
        with pytest.raises(SystemExit) as exit_:
            main([str(a) for a in args])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.endswith(f"error: {message}\n"), err
    assert not (tmp_path / "new").exists()


def test_another_folders_unfinished_checkpoints_are_not_dropped_without_replace(
    capsys, tmp_path, tiny_model
):
    """A second folder analysed to the -o of an unfinished run (a mistyped -o) deleted that
    run's checkpoints without a word; a finished index was already kept so."""
    from rtsearch.checkpoints import CheckpointWriter

    first, second = tmp_path / "first", tmp_path / "second"
    make_gallery(first, 6)
    make_gallery(second, 4, start=100)
    whole = tmp_path / "whole.dat"
    cli(capsys, "analyze", first, "-o", whole, "--model", tiny_model, "--keep-features", "--quiet")
    index = store.load(whole, features=True)
    out = tmp_path / "out.dat"
    ckpt = Path(f"{out}.ckpt")
    writer = CheckpointWriter(ckpt, index.model, first.resolve(), None)
    writer.add(index.paths[:4], index.features[:4], index.sizes[:4], index.mtimes[:4])
    writer.flush()  # the first folder's run, stopped after 4 images
    base = ["analyze", second, "-o", out, "--model", tiny_model, "--quiet"]
    code, _, err = cli(capsys, *base)
    assert code == 1 and err == (
        f"rtsearch: error: {ckpt}: holds an unfinished analysis of {first.resolve()} (4 "
        f"images), none of them in {second}; analyze {first.resolve()} again to finish it, "
        "choose another -o, or pass --replace to drop it\n"
    )
    assert len(list(ckpt.glob("part-*.dat"))) == 1 and not out.exists()
    # that folder moved: its run goes on where it is now
    moved = tmp_path / "moved"
    first.rename(moved)
    code, stdout, _ = cli(capsys, "analyze", moved, "-o", out, "--model", tiny_model, "--quiet")
    assert code == 0 and "6 images (2 analysed, 4 reused, 0 skipped)" in stdout
    writer.add(index.paths[:2], index.features[:2], index.sizes[:2], index.mtimes[:2])
    writer.base_dir = moved.resolve()
    writer.flush()
    other = tmp_path / "other.dat"
    ckpt = Path(f"{other}.ckpt")
    ckpt.mkdir()
    next(Path(f"{out}.ckpt").glob("part-*.dat")).rename(ckpt / "part-000000.dat")
    code, stdout, _ = cli(capsys, "analyze", second, "-o", other, "--model", tiny_model,
                          "--quiet", "--replace")  # fmt: skip
    assert code == 0 and "4 images (4 analysed, 0 reused, 0 skipped)" in stdout
    assert not ckpt.exists()


def test_analysing_again_keeps_the_index_settings_not_given(capsys, tmp_path, tiny_model):
    """Analysed again to pick up new pictures, an index made with --dims 2 (or --projection
    random, --no-l2, --seed) went back to the defaults and every image was analysed again."""
    make_gallery(tmp_path / "g", 6)
    out = tmp_path / "x.dat"
    base = ["analyze", tmp_path / "g", "-o", out, "--model", tiny_model, "--quiet"]
    made = ["--projection", "random", "--dims", "3", "--no-l2", "--seed", "5"]
    assert cli(capsys, *base, *made)[0] == 0
    make_gallery(tmp_path / "g", 2, start=50)
    code, stdout, err = cli(capsys, *base)
    assert code == 0 and "8 images (2 analysed, 6 reused, 0 skipped)" in stdout and err == ""
    p = store.load(out).projection
    assert (p.kind, p.out_dims, p.l2_normalize, p.seed) == ("random", 3, False, 5)
    # what is given still counts: other settings analyse again, as before
    code, stdout, _ = cli(capsys, *base, "--dims", "4")
    assert code == 0 and "8 analysed, 0 reused" in stdout
    p = store.load(out).projection
    assert (p.kind, p.out_dims, p.l2_normalize, p.seed) == ("random", 4, False, 5)
    code, _, _ = cli(capsys, *base, "--pca")
    assert code == 0 and store.load(out).projection.kind == "pca"
    assert store.load(out).dims == 4


def test_the_rate_and_eta_are_the_extractions_own(tmp_path, tiny_model, monkeypatch):
    """The rate counted the scan and the reading of checkpoints: a resumed run's first line
    said `8/10148 1.1 img/s ETA 02:32:46` of a run that took 84 s."""
    import rtsearch.analyze as analyze_module
    from rtsearch.analyze import Settings
    from rtsearch.extractor import Extractor

    make_gallery(tmp_path / "g", 40)
    real_plan = analyze_module.plan

    def slow_plan(*args, **kwargs):  # the scan and the checkpoints of a big folder
        time.sleep(2.0)
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(analyze_module, "plan", slow_plan)
    seen = []
    analyze_module.analyze(tmp_path / "g", tmp_path / "x.dat", Extractor(tiny_model),
                           Settings(dims=4), progress=seen.append)  # fmt: skip
    assert seen[-1].done == seen[-1].total == 40
    assert seen[-1].images_per_s > 40 / 2.0, seen[-1]  # (it was 40 / 2.x s: under 20)


def test_the_progress_says_the_images_analysed_before_the_run(tmp_path, tiny_model):
    """A folder analysed again (here with 5 pictures added) counts only this run's work in
    done and total; ``before`` says the rest, for the viewer's bar (it showed 5 of 5 for a
    folder of 17) and its note, with the time left."""
    from rtsearch.analyze import Progress, Settings, analyze
    from rtsearch.extractor import Extractor
    from rtsearch.viewer.actions import progress_note

    make_gallery(tmp_path / "g", 12)
    out, extractor = tmp_path / "x.dat", Extractor(tiny_model)
    seen: list = []
    analyze(tmp_path / "g", out, extractor, Settings(dims=4), progress=seen.append)
    assert seen[-1].before == 0 and seen[-1].total == 12
    make_gallery(tmp_path / "g", 5, start=100)
    seen.clear()
    analyze(tmp_path / "g", out, extractor, Settings(dims=4), progress=seen.append)
    assert {(p.before, p.total) for p in seen} == {(12, 5)} and seen[-1].done == 5
    assert progress_note(seen[-1])[0] == 1.0
    assert progress_note(seen[-1])[1].startswith("17/17 images, ")
    assert progress_note(Progress(3, 10, 0, 0.0, 100)) == (103 / 110, "103/110 images")
    assert progress_note(Progress(3, 10, 0, 2.0, 100)) == (
        103 / 110,
        "103/110 images, 2/s, 4 s left",
    )
    assert progress_note(Progress(0, 9000, 0, 2.0))[1].endswith(", 1 h 15 min left")
    assert progress_note(Progress(0, 250, 0, 2.0))[1].endswith(", 2 min 05 s left")


def test_a_rerun_says_the_rows_it_removed(capsys, tmp_path, tiny_model):
    """`analyze` again after pictures were deleted said `(0 analysed, 9 reused, 0 skipped)`:
    the 3 rows it dropped were not said (`update` says `3 removed`); moved ones are kept."""
    pictures = make_gallery(tmp_path / "g", 12, subdirs=1)
    out = tmp_path / "x.dat"
    base = ["analyze", tmp_path / "g", "-o", out, "--model", tiny_model, "--quiet"]
    code, stdout, _ = cli(capsys, *base)
    assert code == 0 and "(12 analysed, 0 reused, 0 skipped)" in stdout  # a first run: as it was
    for picture in pictures[:3]:
        picture.unlink()
    (tmp_path / "g" / "sorted").mkdir()
    for picture in pictures[3:5]:
        picture.rename(tmp_path / "g" / "sorted" / picture.name)
    code, stdout, _ = cli(capsys, *base)
    assert code == 0 and "9 images (0 analysed, 9 reused, 3 removed, 0 skipped)" in stdout


def test_contradictory_or_ignored_analyze_options_are_refused(capsys, tmp_path, tiny_model):
    make_gallery(tmp_path / "g", 4)
    out = tmp_path / "x.dat"
    base = ["analyze", tmp_path / "g", "-o", out, "--model", tiny_model, "--quiet"]
    for extra, message in (
        (["--projection", "none", "--dims", "50"], "--dims does not apply with --projection"),
        (["--pca", "--projection", "random"], "--pca contradicts --projection random"),
        (["--whiten", "--projection", "none"], "--whiten contradicts --projection none"),
    ):
        code, _, err = cli(capsys, *base, *extra)
        assert code == 1 and err == f"rtsearch: error: {message}" + err[len(message) + 17 :]
        assert err.count("\n") == 1 and not out.exists()
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in base] + ["--threads", "-3"])
    assert exit_.value.code == 2 and "must be 0-1024" in capsys.readouterr().err
    code, _, _ = cli(capsys, *base, "--projection", "none")  # all dims: fine without --dims
    assert code == 0 and store.load(out).dims == 128
    code, _, _ = cli(capsys, *base, "--whiten", "--projection", "pca-whiten", "--dims", "3")
    assert code == 0 and store.load(out).projection.kind == "pca-whiten"


def test_pca_asked_for_more_dimensions_than_its_images_span_is_said(capsys, tmp_path, tiny_model):
    """`--dims 50` (or whitening) fitted on 6 images passed without a word: 6 images span
    at most 5 dimensions, and the other 45 carry nothing (whitened, rows added later stand
    apart in them). The default 100 dims on a small folder is no mistake of the user's."""
    make_gallery(tmp_path / "g", 6)
    out = tmp_path / "x.dat"
    base = ["analyze", tmp_path / "g", "-o", out, "--model", tiny_model, "--quiet"]
    code, _, err = cli(capsys, *base, "--dims", "50")
    assert code == 0 and err == (
        f"warning: {out}: its PCA was fitted on 6 images, which span at most 5 of "
        "its 50 dimensions: the other 45 carry nothing (pass --dims 5, or analyze more "
        "images)\n"
    )
    code, _, err = cli(capsys, *base, "--whiten", "--replace")
    assert code == 0 and "fitted on 6 images, which span at most 5 of its 50 dim" in err
    for quiet in (["--dims", "5"], ["--pca", "--dims", "3"], ["--projection", "random"]):
        code, _, err = cli(capsys, *base, *quiet)
        assert code == 0 and "its PCA was fitted" not in err, quiet
    out.unlink()
    code, _, err = cli(capsys, *base)  # the default: 100 dims
    assert code == 0 and store.load(out).dims == 100 and "its PCA was fitted" not in err
    # two images span one dimension: no --dims fits (it advised --dims 2, which said it again)
    two = tmp_path / "two"
    make_gallery(two, 2)
    code, _, err = cli(capsys, "analyze", two, "-o", tmp_path / "two.dat", "--model",
                       tiny_model, "--quiet", "--dims", "2")  # fmt: skip
    assert code == 0 and err.endswith(
        "which span at most 1 of its 2 dimensions: the other 1 carries nothing (analyze more "
        "images)\n"
    )


def interruptible(tmp_path: Path, every: int | None, seconds_per_batch: float, **kwargs):
    """A slowed `analyze` of 120 images in a child: (process, its output, its arguments
    without --quiet, for the rerun)."""
    make_gallery(tmp_path / "g", 120)
    model = write_tiny_model(tmp_path / "slow.onnx")
    out = tmp_path / "stopped.dat"
    args = ["analyze", str(tmp_path / "g"), "-o", str(out), "--model", str(model)]
    args += ["--batch", "4"] + (["--checkpoint-every", str(every)] if every else [])
    return slow_analyze([*args, "--quiet"], seconds_per_batch, **kwargs), out, args


def checkpointed_rows(out: Path) -> int:
    parts = Path(str(out) + ".ckpt").glob("part-*.dat")
    return sum(store.load(p, allow_checkpoint=True).count for p in parts)


def rerun_reuses(args: list[str], rows: int) -> bool:
    rerun = subprocess.run([sys.executable, "-m", "rtsearch", *args], capture_output=True)
    return rerun.returncode == 0 and f"{rows} reused".encode() in rerun.stdout


def test_ctrl_c_twice_stops_at_once_and_the_rerun_resumes(tmp_path):
    """The first Ctrl-C waits for the running batch; a second one during that wait leaves at
    once with status 130 (not an abort from threads left inside onnxruntime), and the
    checkpoints written before are reused."""
    # each batch takes 0.4 s in the child, so the first Ctrl-C has something to wait for
    proc, out, args = interruptible(tmp_path, every=16, seconds_per_batch=0.4)
    wait_for_parts(out, 1)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"interrupted again, stopping at once" in err and b"terminate" not in err
    assert not out.exists()
    saved = checkpointed_rows(out)
    assert 16 <= saved < 120
    assert rerun_reuses(args, saved) and store.load(out).count == 120


@pytest.mark.parametrize("sigint_ignored", [False, True])
def test_sigterm_stops_like_ctrl_c_and_leaves_no_temporary_files(tmp_path, sigint_ignored):
    """Also when SIGINT is ignored, as for a script's background job (`cmd &`): SIGTERM
    then killed it at once, with no checkpoint of its last rows and its lock file left."""
    proc, out, args = interruptible(
        tmp_path, every=16, seconds_per_batch=0.4, sigint_ignored=sigint_ignored
    )
    wait_for_parts(out, 1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    saved = checkpointed_rows(out)
    assert (proc.returncode, err.decode()) == (143, f"rtsearch: terminated; {kept(out, saved)}\n")
    assert not out.exists() and not list(tmp_path.rglob("*.tmp"))
    assert not list(tmp_path.glob("*.lock"))
    assert rerun_reuses(args, saved)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on Windows")
def test_a_hangup_stops_like_sigterm_and_keeps_the_work(tmp_path):
    """The terminal closed or the ssh connection dropped: SIGHUP killed the run at once,
    its rows since the last checkpoint lost and its lock file left. A terminal closed sends
    it twice (the kernel, then the shell to its jobs): the second was taken for a second
    Ctrl-C, and the run left at once (130), its last rows lost and its lock file left."""
    proc, out, args = interruptible(tmp_path, every=16, seconds_per_batch=0.4)
    wait_for_parts(out, 1)
    proc.send_signal(signal.SIGHUP)
    time.sleep(0.05)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=60)
    saved = checkpointed_rows(out)
    assert (proc.returncode, err.decode()) == (129, f"rtsearch: hung up; {kept(out, saved)}\n")
    assert saved >= 16 and not list(tmp_path.glob("*.lock"))
    assert rerun_reuses(args, saved)


def kept(out: Path, rows: int) -> str:
    """What an interrupted analysis says it kept."""
    return (
        f"{out}.ckpt keeps the {rows} images this run analysed: "
        "the same command again goes on from there"
    )


@pytest.mark.skipif(
    not hasattr(os, "tcgetpgrp") or not shutil.which("bash"), reason="no job control"
)
def test_a_run_sent_to_the_background_does_not_draw_over_the_prompt(tmp_path, tiny_model):
    """Ctrl-Z then `bg`: the bar went on redrawing its line of the terminal, and wiped the
    prompt and what the user typed after it. A job in the background of a shell with job
    control draws none (in the foreground it does); its summary is still said."""
    import pty
    import shlex

    make_gallery(tmp_path / "g", 12)

    def terminal_shows(job: str) -> str:
        """What a terminal shows of a shell with job control running ``job``."""
        out = tmp_path / f"{len(job)}.dat"
        command = [sys.executable, "-m", "rtsearch", "analyze", str(tmp_path / "g"), "-o", str(out)]
        analyze = shlex.join([*command, "--model", str(tiny_model)])
        pid, fd = pty.fork()
        if pid == 0:  # the child: a session of its own, the pty its terminal
            os.execvp("bash", ["bash", "--norc", "-c", f"set -m; {job.format(analyze)}; echo done"])
        shown = b""
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # (EIO: the terminal's last writer has gone)
                break
            if not chunk:
                break
            shown += chunk
        os.waitpid(pid, 0)
        os.close(fd)
        return shown.decode(errors="replace")

    front = terminal_shows("{}")
    assert "img/s" in front and "12 images (12 analysed" in front, front
    back = terminal_shows("{} & wait $!")
    assert "12 images (12 analysed" in back and "done" in back, back
    assert "img/s" not in back and "\x1b[K" not in back, back


def test_an_interruption_is_said_on_a_line_of_its_own_not_after_the_bar(monkeypatch, capsys):
    """In a terminal, `rtsearch: interrupted; ...` (and an error ending a run) came right
    after the progress bar: `... ETA 00:01:17 skipped 7rtsearch: interrupted; ...`."""
    import io

    from rtsearch.analyze import Progress
    from rtsearch.cli import with_progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stop in (KeyboardInterrupt(), RtsearchError("the folder went away")):
        terminal = Terminal()
        monkeypatch.setattr(sys, "stderr", terminal)

        def job(progress, warn, stop=stop):
            progress(Progress(5, 10, 0, 2.0))
            raise stop

        with pytest.raises(type(stop)):
            with_progress(job)
        shown = terminal.getvalue()
        assert shown.startswith("\r[###############...............] 5/10 ") and shown.endswith(
            "\n"
        ), shown


def test_ctrl_c_keeps_the_rows_finished_since_the_last_checkpoint(tmp_path):
    """With the default checkpoints (every 2 minutes) a Ctrl-C after a few seconds used to
    lose everything; the finished rows are now written as a part before it stops."""
    proc, out, args = interruptible(tmp_path, every=None, seconds_per_batch=0.2)
    time.sleep(3.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    saved = checkpointed_rows(out)
    assert err.decode() == f"rtsearch: interrupted; {kept(out, saved)}\n"  # said, not guessed
    assert 4 <= saved < 120
    # interrupted again: what the folder keeps counts the first run's rows too (it said
    # "keeps the 12 images this run analysed" of a folder holding 40)
    parts = len(list(Path(f"{out}.ckpt").glob("part-*.dat")))
    again = slow_analyze([*args, "--quiet", "--checkpoint-every", "8"], 0.5)
    wait_for_parts(out, parts + 1)  # the resumed run is under way
    again.send_signal(signal.SIGINT)
    _, err = again.communicate(timeout=60)
    total = checkpointed_rows(out)
    assert again.returncode == 130 and err.decode() == (
        f"rtsearch: interrupted; {out}.ckpt keeps {total} images ({total - saved} of them "
        "analysed by this run): the same command again goes on from there\n"
    )
    assert saved < total < 120 and rerun_reuses(args, total)


def test_a_folder_moved_during_analysis_is_an_error_and_the_work_is_kept(tmp_path):
    proc, out, args = interruptible(tmp_path, every=8, seconds_per_batch=0.1)
    wait_for_parts(out, 1)
    gallery = tmp_path / "g"
    gallery.rename(tmp_path / "g2")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and err.decode().splitlines()[-1] == (
        f"rtsearch: error: {gallery}: the folder went away during the analysis; what was done "
        f"is kept in {out}.ckpt: analyze the folder again where it is now to go on"
    )
    assert not out.exists()
    args[1] = str(tmp_path / "g2")
    rerun = subprocess.run([sys.executable, "-m", "rtsearch", *args], capture_output=True)
    assert rerun.returncode == 0 and b"120 images" in rerun.stdout
    assert int(rerun.stdout.split(b" analysed, ")[1].split(b" reused")[0]) >= 8


def test_copies_of_real_images_find_their_original(capsys, tmp_path, default_model):
    """The real default model on 300 photo mosaics: transformed copies (crop to 70-80%,
    resize, JPEG 40, small rotation, brightness) find their original at rank 1."""
    from PIL import Image

    from rtsearch.session import SearchSession
    from rtsearch.verify import MIN_INLIERS

    gallery = tmp_path / "g"
    make_photo_gallery(gallery, 300)
    out = tmp_path / "real.dat"
    code, _, _ = cli(capsys, "analyze", gallery, "-o", out, "--quiet")
    assert code == 0
    session = SearchSession.open(out)
    rng = np.random.default_rng(1)
    originals = sorted(store.load(out).paths)
    picked = [originals[i] for i in rng.choice(len(originals), 40, replace=False)]
    first, verified_first, in_top20 = 0, 0, 0
    for i, rel in enumerate(picked):
        copy = tmp_path / f"copy{i}.jpg"
        make_copy(Image.open(gallery / rel).convert("RGB"), rng).save(copy, quality=40)
        plain = [r.path for r in session.query_file(copy, 20)]
        first += plain[0] == rel
        in_top20 += rel in plain
        verified = session.query_file(copy, 5, verify=True)
        verified_first += verified[0].path == rel and verified[0].inliers >= MIN_INLIERS
    # Measured: 37/40 verified at rank 1, 38/40 among the 20 nearest, 28/40 first by vector
    # alone. The mosaics share material (21 source photos); on 85 distinct real photos from
    # the demo gallery (881 images indexed) the vector alone puts 0.96 of such copies first.
    assert verified_first >= 36, f"only {verified_first}/40 copies verified at rank 1"
    assert in_top20 >= 36, f"only {in_top20}/40 originals among the 20 nearest"
    assert first >= 26, f"only {first}/40 copies nearest to their original by vector"

    # What a user runs: the CLI verifies by default and reports the inliers.
    code, out_json, _ = cli(capsys, "query", tmp_path / "copy0.jpg", "--index", out, "--json")
    hits = json.loads(out_json)
    assert code == 0 and hits[0]["path"] == picked[0] and hits[0]["inliers"] >= MIN_INLIERS
    code, out_json, _ = cli(
        capsys, "query", tmp_path / "copy0.jpg", "--index", out, "--json", "--no-verify"
    )
    assert code == 0 and all(h["inliers"] is None for h in json.loads(out_json))

    # A picture that is not in the collection verifies against nothing.
    stranger = tmp_path / "stranger.jpg"
    make_image(7, size=(320, 240)).save(stranger, quality=40)
    assert all(r.inliers < MIN_INLIERS for r in session.query_file(stranger, 20, verify=True))


def test_verification_moves_ahead_only_results_near_the_nearest_by_vector(monkeypatch):
    """A watermark every picture shares, or plain shapes, gave unrelated pictures 10-120
    inliers, and `query` put them ahead of the source, nearest by vector by far (the demo
    gallery's photos, cropped or rotated: 230 of 255 first verified, 235 by vector alone).
    Verified results move ahead only within GATE of the nearest distance (244 of 255)."""
    from rtsearch.session import Result
    from rtsearch.verify import EMPTY, GATE, Verifier

    verifier = Verifier()
    inliers = {"look-alike.jpg": 7, "source.jpg": 40, "watermarked.jpg": 60, "far.jpg": 3}
    monkeypatch.setattr(verifier, "keypoints_of_file", lambda file: file)
    monkeypatch.setattr(verifier, "inliers", lambda query, file: inliers[file.name])
    near = 0.30
    results = [
        Result(0, "look-alike.jpg", Path("look-alike.jpg"), near),
        Result(1, "source.jpg", Path("source.jpg"), near * GATE * 0.99),
        Result(2, "watermarked.jpg", Path("watermarked.jpg"), near * GATE * 1.01),
        Result(3, "far.jpg", Path("far.jpg"), 0.9),
    ]
    ranked = verifier.rerank(EMPTY, results)
    assert [(r.path, r.inliers) for r in ranked] == [
        ("source.jpg", 40),  # near by vector and its geometry agrees: moved first
        ("look-alike.jpg", 7),
        ("watermarked.jpg", 60),  # many inliers, but far: its order by vector kept
        ("far.jpg", 3),
    ]


@pytest.mark.parametrize("batch", [0, 3])
def test_parallel_streams_give_the_same_index_in_the_same_order(tmp_path, gallery, batch):
    """Analysis with one inference stream per core (the CLI's default) yields the features
    a single stream does, each with its own path, whatever the batch size."""
    from rtsearch.analyze import Settings, analyze
    from rtsearch.extraction import batch_for
    from rtsearch.extractor import Extractor

    model = write_tiny_model(tmp_path / "m.onnx")
    one, two = Extractor(model, threads=1), Extractor(model, threads=2, streams=0)
    assert (one.streams, two.streams) == (1, 2) and batch_for(two) < batch_for(one)
    settings = Settings(dims=16, keep_features=True, batch=batch)
    a = analyze(gallery, tmp_path / "a.dat", one, settings).index
    b = analyze(gallery, tmp_path / "b.dat", two, settings).index
    assert a is not None and b is not None and a.paths == b.paths and len(a.paths) > 8
    np.testing.assert_allclose(a.features, b.features, rtol=1e-5, atol=1e-6)
    # and the features belong to their own pictures: re-extract two of them alone
    for row in (0, len(a.paths) - 1):
        alone = one([load_rgb(gallery / a.paths[row], min_size=one.info.input_size)])[0]
        np.testing.assert_allclose(b.features[row], alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("in_streams", [True, False])
def test_either_way_of_decoding_gives_the_same_rows_skips_and_stop(
    tmp_path, gallery, monkeypatch, in_streams
):
    """On the CPU with single-threaded streams (a stream per core) each stream decodes its
    own batch; otherwise a pool decodes beside the streams. Either way: every row is its own
    picture's features, in path order; each unreadable file is skipped with one warning, in
    path order; a cancel stops early and keeps the batches that were running."""
    import threading

    from rtsearch import extraction
    from rtsearch.analyze import Settings, analyze
    from rtsearch.extraction import decodes_in_streams
    from rtsearch.extractor import Extractor

    model = write_tiny_model(tmp_path / "m.onnx")
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    ext = Extractor(model, threads=2, streams=0)
    assert decodes_in_streams(ext)  # a single-threaded stream per core
    assert not decodes_in_streams(Extractor(model, threads=2))  # one stream of 2 threads
    assert not decodes_in_streams(Extractor(model, threads=1))  # a core left for decoding
    monkeypatch.setattr(extraction, "decodes_in_streams", lambda e: in_streams)
    for name in ("d1/bad-a.jpg", "d2/bad-b.png"):
        (gallery / name).write_bytes(b"not an image")
    warnings: list[str] = []
    settings = Settings(dims=16, keep_features=True, batch=3)
    report = analyze(gallery, tmp_path / "a.dat", ext, settings, warn=warnings.append)
    index = report.index
    assert index is not None and index.count == 40 and len(report.skipped) == 2
    assert [w.split(": ")[0] for w in warnings] == [
        str(gallery / "d1/bad-a.jpg"),
        str(gallery / "d2/bad-b.png"),
    ]
    alone = Extractor(model, threads=1)
    for row in range(index.count):
        picture = load_rgb(gallery / index.paths[row], min_size=alone.info.input_size)
        np.testing.assert_allclose(index.features[row], alone([picture])[0], rtol=1e-4, atol=1e-5)

    stop = threading.Event()
    stopped = analyze(
        gallery,
        tmp_path / "b.dat",
        ext,
        settings,
        progress=lambda p: stop.set() if p.done >= 6 else None,
        cancel=stop,
    )
    assert stopped.cancelled and stopped.index is None
    kept = store.load(
        next(Path(str(tmp_path / "b.dat") + ".ckpt").glob("part-*.dat")), allow_checkpoint=True
    )
    assert 6 <= kept.count < 40


def test_a_batch_queued_when_a_cancel_comes_is_not_run(tmp_path, gallery):
    """Decoding in the streams queues one batch beyond them; after a cancel it still ran
    (the stop took twice as long), and, queued last, it left the run looking finished."""
    import threading

    from rtsearch.analyze import Report
    from rtsearch.extraction import _extract_in_streams
    from rtsearch.extractor import Extractor

    ext = Extractor(write_tiny_model(tmp_path / "m.onnx"), threads=2, streams=0)
    stop, run = threading.Event(), ext.run

    def first_run_cancels(batch):
        time.sleep(0.2)  # every batch is submitted (2 running, 1 queued) before the cancel
        stop.set()
        return run(batch)

    ext.run = first_run_cancels
    todo = sorted(str(p.relative_to(gallery)) for p in gallery.rglob("*.*"))[:12]
    report = Report()
    done = list(_extract_in_streams(gallery, todo, ext, 4, report, None, stop))
    assert report.cancelled and len(done) == 2 and ext.streams == 2


def test_negative_batch_is_refused(capsys, tmp_path, gallery, tiny_model):
    with pytest.raises(SystemExit):
        main(["analyze", str(gallery), "-o", str(tmp_path / "x.dat"), "--batch", "-1"])
    assert "must be >= 0" in capsys.readouterr().err


def test_io_binding_gives_the_plain_runs_features(tmp_path):
    """The IO-bound run (how CUDA runs) returns what session.run does, across batch-shape
    changes (the device buffer is remade) and from several threads (one binding each).
    Forced on the CPU here; tests/test_cuda.py runs it on a GPU."""
    from concurrent.futures import ThreadPoolExecutor

    from rtsearch.extractor import Extractor

    model = write_tiny_model(tmp_path / "m.onnx")
    ext = Extractor(model, providers=["CPUExecutionProvider"])
    assert not ext.bound  # the CPU runs plain unless told
    h, w = ext.info.input_size
    rng = np.random.default_rng(1)
    batches = [rng.standard_normal((n, 3, h, w)).astype(np.float32) for n in (1, 5, 5, 2, 1)]
    plain = [ext.run(b) for b in batches]
    ext.bound = True
    for b, want in zip(batches, plain, strict=True):
        np.testing.assert_array_equal(ext.run(b), want)
    with ThreadPoolExecutor(3) as pool:
        got = list(pool.map(ext.run, batches * 4))
    for i, g in enumerate(got):
        np.testing.assert_array_equal(g, plain[i % len(batches)])


def test_padded_batches_give_the_same_index(tmp_path, gallery):
    """On an accelerator analyze pads its short last batch to the batch size (one shape, one
    cuDNN search); the padding's rows never reach the index. Run here as if on CUDA."""
    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor

    model = write_tiny_model(tmp_path / "m.onnx")
    plain = Extractor(model, threads=1)
    padded = Extractor(model, threads=1)
    padded.provider = "CUDA"  # what analyze looks at to pad
    images = [load_rgb(p) for p in sorted(gallery.rglob("*.png"))[:3]]
    assert len(images) == 3 and padded(images, pad_to=8).shape == (3, plain.dims)
    np.testing.assert_allclose(padded(images, pad_to=8), plain(images), rtol=1e-5, atol=1e-6)
    settings = Settings(dims=16, keep_features=True, batch=7)
    a = analyze(gallery, tmp_path / "a.dat", plain, settings).index
    shapes: list[int] = []
    run = padded.run
    padded.run = lambda batch: (shapes.append(len(batch)), run(batch))[1]
    b = analyze(gallery, tmp_path / "b.dat", padded, settings).index
    assert set(shapes) == {7}  # the short last batch ran padded
    assert a is not None and b is not None and a.paths == b.paths and len(a.paths) % 7
    np.testing.assert_allclose(a.features, b.features, rtol=1e-5, atol=1e-6)


def test_feature_rows_leave_their_blocks_as_the_index_takes_them(monkeypatch):
    """Analysis keeps feature rows in large blocks; building the index moves them out in
    path order, and each block is freed once emptied: the features are never held twice."""
    import weakref

    from rtsearch import analyze as analysis

    monkeypatch.setattr(analysis, "BLOCK_ROWS", 4)
    done = analysis._Done()
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((3, 5)).astype(np.float32) for _ in range(4)]
    paths = [f"{i:02d}.jpg" for i in range(12)]
    for b, batch in enumerate(batches):
        done.add(paths[3 * b : 3 * b + 3], batch, [1] * 3, [0.0] * 3)
    blocks = {id(row.base): weakref.ref(row.base) for row in done.features.values()}
    assert len(blocks) == 3 and all(row.base is not None for row in done.features.values())
    del batches[1:]  # the rows were copied: the extraction batches may go
    features = done.take_features(paths)
    assert features.shape == (12, 5) and np.array_equal(features[:3], batches[0])
    assert not done.features and all(ref() is None for ref in blocks.values())


def test_a_base_dir_holding_none_of_the_images_is_refused(capsys, tmp_path, gallery, tiny_model):
    from rtsearch.session import SearchSession
    from rtsearch.viewer.actions import open_index
    from rtsearch.viewer.app import ViewerOptions

    out = tmp_path / "index.dat"
    cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model, "--quiet")
    empty = tmp_path / "empty"
    empty.mkdir()
    image = next(p for p in sorted(gallery.rglob("*")) if p.is_file())
    code, _, err = cli(capsys, "query", image, "--index", out, "--base-dir", empty)
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"rtsearch: error: {empty}: holds none of 20 images of {out} (")
    # (the command line's way out, not the viewer's "choose the folder"): the index's own
    # folder holds them; where it is gone, the folder they are in is wanted
    assert err.endswith(f"; the index's own folder {gallery} holds them: leave out --base-dir\n")
    moved = tmp_path / "moved"
    shutil.copytree(gallery, moved)
    other = tmp_path / "other.dat"
    cli(capsys, "analyze", moved, "-o", other, "--model", tiny_model, "--quiet")
    shutil.rmtree(moved)
    code, _, err = cli(capsys, "query", image, "--index", other, "--base-dir", empty)
    assert code == 1 and err.endswith("; give --base-dir the folder they are in now\n"), err
    # a --base-dir that is not there names the option (it said "nowhere: folder not found")
    code, _, err = cli(capsys, "query", image, "--index", out, "--base-dir", tmp_path / "nowhere")
    assert (
        code == 1
        and err == f"rtsearch: error: --base-dir {tmp_path / 'nowhere'}: folder not found\n"
    )
    session = SearchSession.open(out, model=str(tiny_model))
    for current in (None, session):  # the viewer's Load, with another model or the same one
        with pytest.raises(RtsearchError, match="holds none of 20 images"):
            open_index(out, empty, current, ViewerOptions())
    # a folder holding some of them is fine: images can be deleted after analysis
    kept = tmp_path / "kept"
    shutil.copytree(gallery, kept)
    for i, p in enumerate(p for p in sorted(kept.rglob("*")) if p.is_file()):
        if i % 4:
            p.unlink()
    assert open_index(out, kept, session, ViewerOptions()).base_dir == kept


def test_debug_shows_the_traceback_before_or_after_the_command(capsys, tmp_path):
    missing = tmp_path / "missing.jpg"
    args = ["query", str(missing), "--index", str(tmp_path / "x.dat")]
    assert cli(capsys, *args)[0] == 1  # one line, no traceback
    for argv in (["--debug", *args], [*args, "--debug"]):
        with pytest.raises(RtsearchError):
            main(argv)


def test_a_rerun_with_nothing_to_do_leaves_the_index_file_alone(capsys, tmp_path, tiny_model):
    """A rerun over an unchanged folder wrote the whole index again (36 s and 3.6 GB at
    300k rows with features), and the new file made the viewer rebuild the ANN structure
    beside it (37 s at 1M rows); `update` already left it alone."""
    gallery = tmp_path / "g"
    make_gallery(gallery, 12)
    out = tmp_path / "x.dat"
    cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model, "--dims", "8",
        "--keep-features", "--quiet")  # fmt: skip
    os.utime(out, (1e9, 1e9))  # what the file was, to see whether it is written again
    before = out.read_bytes()
    code, stdout, _ = cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model, "--quiet")
    assert code == 0 and "12 images (0 analysed, 12 reused, 0 skipped)" in stdout
    assert out.stat().st_mtime == 1e9 and out.read_bytes() == before
    # other settings, or a change, write it as before
    code, stdout, _ = cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model,
                          "--dims", "6", "--quiet")  # fmt: skip
    assert code == 0 and store.load(out).dims == 6 and out.stat().st_mtime != 1e9
    os.utime(out, (1e9, 1e9))
    make_gallery(gallery / "new", 1, start=90)
    code, stdout, _ = cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model, "--quiet")
    assert "13 images (1 analysed, 12 reused" in stdout and out.stat().st_mtime != 1e9


def test_a_rerun_that_would_remove_most_of_the_index_asks_for_replace(capsys, tmp_path, tiny_model):
    """`analyze DIR -o EXISTING` over a folder holding a few of its images (a half-mounted
    drive, a partial copy) dropped the rest without a word, where `update` refuses."""
    gallery = tmp_path / "g"
    make_gallery(gallery, 30)
    out = tmp_path / "x.dat"
    cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model, "--dims", "8", "--quiet")
    for path in sorted(p for p in gallery.rglob("*.*"))[5:]:
        path.unlink()
    code, _, err = cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model)
    assert code == 1 and err == (
        f"rtsearch: error: {gallery}: holds only 5 of the 30 images in {out}; analysing it "
        "would remove the other 25 (another folder, an old copy, or one still being "
        "copied?); pass --replace to remove them\n"
    )
    assert store.load(out).count == 30
    code, _, _ = cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model,
                          "--replace", "--quiet")  # fmt: skip
    assert code == 0 and store.load(out).count == 5


def test_checkpoints_an_earlier_version_kept_beside_a_link_are_resumed(
    capsys, tmp_path, tiny_model
):
    """Before checkpoints went beside a link's target, `-o LINK` kept them as LINK.ckpt:
    after an upgrade `info LINK` said only "not found", and the rerun analysed their 80
    images again and left their folder for good."""
    from rtsearch.checkpoints import CheckpointWriter

    gallery = tmp_path / "g"
    make_gallery(gallery, 7)
    whole = tmp_path / "whole.dat"
    made = ["--model", tiny_model, "--keep-features", "--quiet"]
    cli(capsys, "analyze", gallery, "-o", whole, *made)
    index = store.load(whole, features=True)
    (tmp_path / "data").mkdir()
    link = tmp_path / "idx.dat"
    link.symlink_to(tmp_path / "data" / "idx.dat")
    legacy = Path(f"{link}.ckpt")
    writer = CheckpointWriter(legacy, index.model, gallery.resolve(), None)
    writer.add(index.paths[:4], index.features[:4], index.sizes[:4], index.mtimes[:4])
    writer.flush()  # the earlier version's run, stopped after 4 images
    assert store.checkpoint_dir(link) == legacy
    code, _, err = cli(capsys, "info", link)
    assert code == 1 and f"{legacy} holds an unfinished analysis" in err
    code, stdout, _ = cli(capsys, "analyze", gallery, "-o", link, "--model", tiny_model, "--quiet")
    assert code == 0 and "7 images (3 analysed, 4 reused, 0 skipped)" in stdout, stdout
    assert not legacy.exists() and (tmp_path / "data" / "idx.dat").is_file()
    assert store.checkpoint_dir(link) == Path(f"{tmp_path / 'data' / 'idx.dat'}.ckpt")


def test_the_viewers_options_alone_open_the_viewer(monkeypatch, capsys):
    """`rtsearch` is the viewer's default command: `rtsearch --fp32` and `rtsearch --source
    webcam X.dat` were refused ("unrecognized arguments", "invalid choice: 'webcam'")."""
    from rtsearch.viewer import cli as viewer_cli

    seen = []
    monkeypatch.setattr(viewer_cli, "run", lambda args: seen.append(args) or 0)
    for argv in (["--fp32"], ["--source", "webcam", "x.dat"], ["-k", "5"], ["x.dat", "--fp32"]):
        assert main(argv) == 0, argv
    assert main([]) == 0 and main(["--debug", "--fp32"]) == 0
    assert [a.fp32 for a in seen] == [True, False, False, True, False, True]
    assert main(["--base-dir", "demo", "x.dat"]) == 0  # a value named as a command
    assert seen[-1].base_dir == Path("demo") and seen[-1].index_file == Path("x.dat")
    capsys.readouterr()
    for helping in (["--debug", "--version"], ["--debug", "--help"]):
        with pytest.raises(SystemExit) as done:  # rtsearch's own, not the viewer's
            main(helping)
        assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("rtsearch ") and "usage: rtsearch [-h]" in out
    assert seen[1].source == "webcam" and seen[1].index_file == Path("x.dat")
    assert seen[2].k == 5 and seen[3].index_file == Path("x.dat")
    with pytest.raises(SystemExit):  # a misspelt command is still named as one
        main(["anlyze", "x"])
    assert "invalid choice: 'anlyze'" in capsys.readouterr().err


def test_analysed_again_without_model_an_index_keeps_its_model(
    capsys, tmp_path, tiny_model, monkeypatch
):
    """As its settings: `analyze DIR -o VGG_INDEX` exported the default model first (18 MB
    written), then refused the index as "made with model vgg16 ..., not efficientnet-lite0"."""
    from rtsearch import models

    monkeypatch.setenv("RTSEARCH_MODELS", str(tiny_model.parent))
    asked = []
    monkeypatch.setattr(
        models, "resolve_model", lambda name=None, **kw: (asked.append(name), tiny_model)[1]
    )
    gallery = tmp_path / "g"
    make_gallery(gallery, 5)
    out = tmp_path / "x.dat"
    base = ["analyze", gallery, "-o", out, "--quiet"]
    assert cli(capsys, *base, "--model", tiny_model, "--dims", "3")[0] == 0
    make_gallery(gallery, 2, start=40)
    code, stdout, err = cli(capsys, *base)
    assert code == 0 and "7 images (2 analysed, 5 reused, 0 skipped)" in stdout, err
    assert asked == [str(tiny_model), str(tiny_model)]  # the index's file, found by its name
    assert cli(capsys, "analyze", gallery, "-o", tmp_path / "new.dat", "--quiet")[0] == 0
    assert asked[-1] == "efficientnet-lite0"  # no index there: the default, as before
    other = tmp_path / "other"
    make_gallery(other, 3, start=90)
    # an index --replace throws away does not choose the model (its file may be gone)
    code, _, err = cli(capsys, "analyze", other, "-o", out, "--replace", "--quiet")
    assert code == 0 and asked[-1] == "efficientnet-lite0", err


def test_a_query_with_the_other_twin_of_the_index_says_so(capsys, tmp_path, monkeypatch):
    """An index made with the int8 file, queried when only its fp32 twin is there: the
    indexed picture came back at 0.017, not 0, with nothing said."""
    from fakes import int8_twin

    twin = int8_twin(tmp_path / "models")
    monkeypatch.setenv("RTSEARCH_MODELS", str(tmp_path / "models"))
    gallery = tmp_path / "g"
    make_gallery(gallery, 6)
    out = tmp_path / "x.dat"
    assert cli(capsys, "analyze", gallery, "-o", out, "--model", twin, "--quiet")[0] == 0
    image = next(p for p in sorted(gallery.rglob("*")) if p.is_file())
    code, _, err = cli(capsys, "query", out, image, "--no-verify")
    assert code == 0 and err == ""  # its own file there: nothing to say
    twin.unlink()
    code, _, err = cli(capsys, "query", out, image, "--no-verify")
    assert code == 0 and err == (
        f"note: {out}: its rows were made with the int8 file of tiny, and no int8 file of its "
        "weights was found; queried with its fp32 file (an indexed picture comes back near 0, "
        "not at 0)\n"
    )


def test_an_index_name_or_folder_it_cannot_keep_is_refused_before_the_work(
    capsys, tmp_path, tiny_model
):
    """A 255-byte index name left its checkpoint folder (NAME.ckpt) no room: a traceback,
    "File name too long". A folder whose name is not UTF-8: the whole analysis ran, then
    the save failed with a traceback, its checkpoints left behind."""
    gallery = tmp_path / "g"
    make_gallery(gallery, 3)
    name = tmp_path / ("ü" * 125 + "x.dat")  # 255 bytes
    code, _, err = cli(capsys, "analyze", gallery, "-o", name, "--model", tiny_model)
    assert code == 1 and err == (
        f"rtsearch: error: {name}: name too long (255 bytes): its checkpoint folder beside "
        "it, NAME.ckpt, would pass the file system's 255; choose a name of at most 250 bytes\n"
    )
    short = tmp_path / ("ü" * 122 + "x.dat")  # 249 bytes: room for NAME.ckpt
    assert cli(capsys, "analyze", gallery, "-o", short, "--model", tiny_model)[0] == 0
    latin = os.fsdecode(bytes(tmp_path) + b"/\xe9t\xe9")
    shutil.copytree(gallery, latin)
    out = tmp_path / "latin.dat"
    code, _, err = cli(capsys, "analyze", latin, "-o", out, "--model", tiny_model)
    assert code == 1 and err == (
        f"rtsearch: error: {tmp_path}/\\xe9t\\xe9: a folder name that is not UTF-8, which an "
        "index cannot store; rename it\n"
    )
    assert not out.exists() and not Path(f"{out}.ckpt").exists()


def test_an_interrupt_while_a_checkpoint_is_written_keeps_its_rows_once(tmp_path):
    """A SIGTERM during a due checkpoint's save was raised as the save ended, before its
    rows were counted: the interrupt's flush wrote them again (a part twice) and said it
    kept 16 images where 32 rows were on disk (a full run under load met it)."""
    from rtsearch import checkpoints, interrupts
    from rtsearch.checkpoints import CheckpointWriter

    model = store.ModelRef("tiny", "tiny/fc/" + "0" * 64, "fc", 8)
    features = np.random.default_rng(0).random((4, 8), np.float32)
    paths, sizes, mtimes = [f"p{i}.jpg" for i in range(4)], [100] * 4, [1.0] * 4
    ckpt = tmp_path / "i.dat.ckpt"
    writer = CheckpointWriter(ckpt, model, tmp_path, 4)
    real = store._write
    sent = []

    def signalled_meanwhile(*args, **kwargs):
        if not sent:  # the first part only (a second signal leaves at once)
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)  # handled here, inside the save's hold
        return real(*args, **kwargs)

    restore = interrupts.catch_interrupts()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(store, "_write", signalled_meanwhile)
            stopping = pytest.raises(interrupts.Terminated)
            with stopping as stopped, checkpoints.checkpoint_on_interrupt(writer):
                writer.add(paths, features, sizes, mtimes)
                time.sleep(5)  # (not reached: the signal stops it)
    finally:
        restore()
    parts = sorted(ckpt.glob("part-*.dat"))
    assert [store.load(p, allow_checkpoint=True).count for p in parts] == [4]
    assert writer.rows_written == 4
    assert str(stopped.value) == f"{ckpt} keeps the 4 images this run analysed: " + (
        "the same command again goes on from there"
    )


def test_help_says_every_default_and_what_each_argument_is(capsys):
    """A default of 0 (--seed 0) went unsaid, as if it were False; `info --help` gave no
    word on its one argument."""
    from rtsearch.cli import main

    for command, said in (("eval", "(default: 0)"), ("info", "the index file (.dat) to describe")):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert said in " ".join(capsys.readouterr().out.split()), command
    with pytest.raises(SystemExit):
        main(["analyze", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "(0: all cores)" in help_text and "(0: all cores) (default: 0)" not in help_text


@pytest.mark.parametrize("layout", ["beside", "inside"])
def test_an_index_moved_with_its_images_finds_them(capsys, tmp_path, tiny_model, layout):
    """A project folder renamed (or a drive mounted elsewhere) with the index beside its
    images, or inside their folder: every command said the folder was gone, while the
    images lay beside the index."""
    pack = tmp_path / "pack"
    images = pack / "imgs" if layout == "beside" else pack
    files = make_gallery(images, 6)
    index = pack / "idx.dat"
    model = ["--model", str(tiny_model)]
    assert cli(capsys, "analyze", images, "-o", index, "--dims", "4", "--quiet", *model)[0] == 0
    pack.rename(tmp_path / "pack2")
    moved_index = tmp_path / "pack2" / "idx.dat"
    now = tmp_path / "pack2" / ("imgs" if layout == "beside" else "")
    now = Path(os.path.normpath(now))
    picture = now / files[2].relative_to(images)
    code, out, err = cli(capsys, "query", moved_index, picture, "-k", "1", *model)
    assert code == 0 and out.split()[-1] == str(picture.relative_to(now)), (out, err)
    assert err == (
        f"note: the images' folder {images} is gone; searched in {now}, beside the index: "
        f"moved with it (rtsearch update {moved_index} {now} records it in the index)\n"
    )
    code, out, _ = cli(capsys, "info", moved_index, "--json")
    assert json.loads(out)["moved_with_index"] == str(now)
    code, out, err = cli(capsys, "update", moved_index, *model)
    assert code == 0, err
    assert err == f"note: the images' folder {images} is gone; they moved with the index to {now}\n"
    assert store.load(moved_index).base_dir == str(now)
    # a folder beside it of other pictures is not taken for them
    (tmp_path / "pack2").rename(tmp_path / "pack3")
    other = tmp_path / "elsewhere"
    (tmp_path / "pack3" / "idx.dat").rename(other.with_suffix(".dat"))
    make_gallery(other, 3, start=50)
    code, _, err = cli(capsys, "query", other.with_suffix(".dat"), picture, *model)
    assert code == 1 and "is gone; pass --base-dir" in err
