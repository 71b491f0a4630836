"""`rtsearch query` over several pictures and folders: one model and index for all, each
answered as it comes, a picture that cannot be searched a warning, not the end."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
from fakes import make_gallery, make_image

from rtsearch.cli import main
from rtsearch.verify import Verifier


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def indexed(tmp_path, tiny_model, capsys) -> tuple[Path, Path]:
    gallery, out = tmp_path / "gallery", tmp_path / "g.dat"
    make_gallery(gallery, 12)
    assert cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model, "--quiet")[0] == 0
    return gallery, out


def test_several_pictures_and_a_folder_are_answered_by_one_session(
    capsys, monkeypatch, tmp_path, tiny_model, indexed
):
    from rtsearch.session import SearchSession

    gallery, out = indexed
    opened = []
    real_open = SearchSession.open.__func__
    monkeypatch.setattr(
        SearchSession,
        "open",
        classmethod(lambda cls, *a, **kw: opened.append(a) or real_open(cls, *a, **kw)),
    )
    a, b = gallery / "d0/img00003.jpg", gallery / "d1/img00010.png"
    code, stdout, err = cli(capsys, "query", out, a, b, "--model", tiny_model, "-k", "3")
    assert code == 0 and err == "" and len(opened) == 1
    groups = [g.splitlines() for g in stdout.strip("\n").split("\n\n")]
    assert [g[0] for g in groups] == [str(a), str(b)]  # each picture names its results
    assert [g[1].split()[-1] for g in groups] == ["d0/img00003.jpg", "d1/img00010.png"]
    assert all(len(g) == 4 and float(g[1].split()[1]) < 1e-3 for g in groups), stdout
    # a folder: every picture analyze would find in it, subfolders too, hidden ones not
    (gallery / "d2" / ".hidden.jpg").write_bytes((gallery / "d2/img00002.jpg").read_bytes())
    code, stdout, err = cli(capsys, "query", out, gallery, "--model", tiny_model, "--jsonl",
                            "-k", "2", "--no-verify")  # fmt: skip
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert code == 0 and err == "" and len(opened) == 2 and len(lines) == 12
    for line in lines:
        assert set(line) == {"query", "results", "error", "searched"}
        assert line["error"] is None and line["searched"] is None and len(line["results"]) == 2
        assert gallery / line["results"][0]["path"] == Path(line["query"])  # itself first
        assert line["results"][0]["inliers"] is None  # --no-verify


def test_answers_name_each_picture_as_it_was_typed(capsys, tiny_model, indexed, monkeypatch):
    """`query` keys a picture by its name as typed: `./a.jpg` came back as `a.jpg`, so a
    script matching its answers to its own list (`./*.jpg`) found none; a folder's pictures
    under the folder as typed."""
    gallery, out = indexed
    monkeypatch.chdir(gallery)
    typed = ["./d0/img00003.jpg", "d1//img00010.png", "d2/./img00002.jpg"]
    code, stdout, _ = cli(capsys, "query", out, *typed, "--model", tiny_model, "--jsonl",
                          "--no-verify")  # fmt: skip
    assert code == 0 and [json.loads(line)["query"] for line in stdout.splitlines()] == typed
    code, stdout, _ = cli(capsys, "query", out, *typed[:2], "--model", tiny_model, "--no-verify")
    groups = [g.splitlines() for g in stdout.strip("\n").split("\n\n")]
    assert code == 0 and [g[0] for g in groups] == typed[:2]
    code, stdout, _ = cli(capsys, "query", "./d0/", "--index", out, "--model", tiny_model,
                          "--json", "--no-verify")  # fmt: skip
    named = [a["query"] for a in json.loads(stdout)]
    assert code == 0 and named and all(n.startswith("./d0/img") for n in named), named
    assert all(Path(n).resolve() == gallery / a["results"][0]["path"]
               for n, a in zip(named, json.loads(stdout), strict=True))  # fmt: skip


def test_a_picture_that_cannot_be_searched_is_a_warning_and_the_rest_answered(
    capsys, tmp_path, tiny_model, indexed
):
    gallery, out = indexed
    good = gallery / "d0/img00000.png"
    broken, gone = tmp_path / "broken.jpg", tmp_path / "gone.jpg"
    broken.write_bytes(b"not a picture")
    args = ["query", good, broken, gone, "--index", out, "--model", tiny_model, "-k", "2"]
    code, stdout, err = cli(capsys, *args)
    assert code == 1
    assert err.splitlines() == [
        f"warning: {broken}: not an image file (unknown format)",
        f"warning: {gone}: image file not found",
        "rtsearch: error: 2 of 3 pictures could not be searched (said above)",
    ]
    assert stdout.splitlines()[0] == str(good) and stdout.count("inliers") == 2  # only good's
    # --json: one object per picture, in the order given, the failed ones with their error
    code, stdout, _ = cli(capsys, *args, "--json")
    answers = json.loads(stdout)
    assert code == 1 and [a["query"] for a in answers] == [str(good), str(broken), str(gone)]
    assert answers[0]["error"] is None and answers[0]["results"][0]["path"] == "d0/img00000.png"
    assert answers[0]["results"][0]["file"] == str(good.resolve())
    assert answers[1] == {"query": str(broken), "results": [], "searched": None,
                          "error": f"{broken}: not an image file (unknown format)"}  # fmt: skip
    assert answers[2]["error"] == f"{gone}: image file not found"
    # one picture is answered as before: its problem is the error, its results a plain list
    code, stdout, err = cli(capsys, "query", out, broken, "--model", tiny_model)
    assert code == 1 and err == f"rtsearch: error: {broken}: not an image file (unknown format)\n"
    code, stdout, _ = cli(capsys, "query", out, good, "--model", tiny_model, "--json", "-k", "2")
    assert [r["path"] for r in json.loads(stdout)][:1] == ["d0/img00000.png"]
    # --jsonl gives one picture the shape of many
    code, stdout, _ = cli(capsys, "query", out, good, "--model", tiny_model, "--jsonl", "-k", "1")
    assert code == 0 and json.loads(stdout)["results"][0]["path"] == "d0/img00000.png"


def test_a_trimmed_batch_says_what_it_searched_with_each_answer(
    capsys, tmp_path, tiny_model, indexed
):
    from PIL import Image

    _, out = indexed
    page = Image.new("RGB", (400, 300), (255, 255, 255))
    page.paste(make_image(4).resize((200, 150)), (120, 90))
    shot = tmp_path / "shots" / "shot.png"
    shot.parent.mkdir()
    page.save(shot)
    plain = shot.parent / "plain.png"
    make_image(5).save(plain)
    code, stdout, err = cli(capsys, "query", out, shot.parent, "--model", tiny_model, "--trim",
                            "--jsonl", "-k", "1")  # fmt: skip
    by_name = {Path(a["query"]).name: a for a in map(json.loads, stdout.splitlines())}
    assert code == 0 and err == ""  # (one picture's note on stderr is in its answer here)
    assert by_name["shot.png"]["searched"] == {
        "x": 120, "y": 90, "width": 200, "height": 150, "of_width": 400, "of_height": 300,
        "plain": False, "also_whole": True,
    }  # fmt: skip
    assert by_name["plain.png"]["searched"]["width"] == make_image(5).width
    code, stdout, _ = cli(capsys, "query", out, shot, plain, "--model", tiny_model, "--trim")
    assert stdout.splitlines()[0] == (
        f"{shot}: searched its 200x150 at 120,90 of 400x300 (plain borders trimmed), and the "
        "whole too, each result at its nearer distance"
    )


def test_a_trimmed_picture_whose_margins_are_its_own_finds_its_file(capsys, tmp_path, tiny_model):
    """`query --trim` of a collection's logo on a white page (its margins its own) searched
    the logo alone and missed the page's file; the whole is searched too, the nearer kept."""
    from PIL import Image

    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor

    files = make_gallery(tmp_path / "pics", 12)
    page = Image.new("RGB", (640, 480), (255, 255, 255))
    page.paste(Image.open(files[2]).convert("RGB").resize((100, 75)), (300, 120))
    page.save(tmp_path / "pics" / "drawn.png")
    out = tmp_path / "pics.dat"
    analyze(tmp_path / "pics", out, Extractor(tiny_model, threads=1), Settings(dims=16))
    code, stdout, err = cli(capsys, "query", out, tmp_path / "pics" / "drawn.png", "--trim",
                            "--model", tiny_model, "-k", "2", "--json")  # fmt: skip
    found = [r["path"] for r in json.loads(stdout)]
    assert code == 0 and found[0] == "drawn.png", (found, err)
    # verified with a margin of its page round it (keypoints are found away from a
    # picture's edges: the part trimmed alone gave its own file 0 inliers)
    from rtsearch.verify import MIN_INLIERS

    assert json.loads(stdout)[0]["inliers"] >= MIN_INLIERS, stdout
    assert "searched its " in err and "the whole too" in err


def test_arguments_name_the_index_and_the_pictures_in_either_order(
    capsys, tmp_path, tiny_model, indexed, monkeypatch
):
    # no viewer's state of other tests: a command given no index takes the index shown last
    monkeypatch.setattr(
        "rtsearch.viewer.memory.state_file", lambda: tmp_path / "state" / "viewer.json"
    )
    gallery, out = indexed
    a, b = gallery / "d0/img00003.jpg", gallery / "d1/img00004.jpg"
    _, before, _ = cli(capsys, "query", out, a, b, "--model", tiny_model, "--json")
    _, after, _ = cli(capsys, "query", a, b, "--index", out, "--model", tiny_model, "--json")
    assert json.loads(before) == json.loads(after) and len(json.loads(after)) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, said in (
        ((a, b), f"no index given: rtsearch query INDEX {a} {b}"),
        ((gallery, a), f"no index given: rtsearch query INDEX {gallery} {a}"),
        (
            (a, b, out),
            f"{out} looks like the index and {a} like the picture: rtsearch query {out} {a} {b}",
        ),
        ((out, empty), f"{empty}: no pictures in this folder"),
        (
            (out, a, b, "--index", tmp_path / "other.dat"),
            f"two indexes given, {out} and --index {tmp_path / 'other.dat'}: give one",
        ),
    ):
        code, stdout, err = cli(capsys, "query", *args, "--model", tiny_model)
        assert code == 1 and stdout == "" and err == f"rtsearch: error: {said}\n", err
    # an empty folder among pictures is one of the failed ones
    code, stdout, err = cli(capsys, "query", out, empty, a, "--model", tiny_model, "-k", "1")
    assert code == 1 and stdout.splitlines()[0] == str(a)
    assert err.splitlines()[0] == f"warning: {empty}: no pictures in this folder"
    # no index given, after the viewer showed one (`rtsearch demo`): that one, said so (a
    # newcomer had to find the demo index's hashed name); `info` likewise
    from rtsearch.viewer import memory

    memory.keep(index=out, base_dir=gallery)
    code, stdout, err = cli(capsys, "query", a, "--model", tiny_model, "--json")
    assert code == 0 and json.loads(stdout)[0]["path"] == "d0/img00003.jpg"
    assert err == f"note: index: {out} (the one the viewer showed last)\n"
    code, stdout, err = cli(capsys, "info")
    assert code == 0 and "count" in stdout and err.startswith(f"note: index: {out} (")
    out.unlink()  # gone since: as if none were shown
    code, _, err = cli(capsys, "info")
    assert code == 1 and err == (
        f"rtsearch: error: no index given: rtsearch info INDEX (the one the viewer showed "
        f"last, {out}, is gone)\n"
    )


def test_notes_about_the_folder_are_said_once_for_the_whole_batch(
    capsys, tmp_path, tiny_model, indexed
):
    gallery, out = indexed
    kept = tmp_path / "kept"
    shutil.copytree(gallery / "d0", kept)
    shutil.rmtree(gallery / "d0")  # the pictures deleted from the folder since the analysis
    code, stdout, err = cli(capsys, "query", out, kept, "--model", tiny_model, "--no-verify",
                            "-k", "3", "--json")  # fmt: skip
    notes = [line for line in err.splitlines() if line.startswith("note: ")]
    assert code == 0 and len(json.loads(stdout)) == 4 and len(notes) == 1, err
    assert notes[0].startswith("note: 4 of the ") and "no longer in" in notes[0]


def test_a_folder_given_that_lacks_some_pictures_says_where_they_are(
    capsys, tmp_path, tiny_model, indexed
):
    """--base-dir naming a copy of part of the collection: the note said the missing
    pictures were "deleted or moved since the index was made" and that `update` with the
    copy brings the index up to date (it would have moved it to the copy). The index's own
    folder holds them: that is said."""
    gallery, out = indexed
    copy = tmp_path / "copy"
    shutil.copytree(gallery, copy)
    shutil.rmtree(copy / "d0")
    query = next((gallery / "d0").iterdir())
    code, _, err = cli(capsys, "query", out, query, "--base-dir", copy, "--model", tiny_model,
                       "--no-verify", "-k", "3")  # fmt: skip
    notes = [line for line in err.splitlines() if line.startswith("note: ")]
    assert code == 0 and len(notes) == 1, err
    assert notes[0].endswith(f"not in {copy}: the index's own folder {gallery} holds them")
    assert "update" not in notes[0]


def test_an_interrupted_batch_keeps_what_it_answered_in_every_shape(
    capsys, monkeypatch, tiny_model, indexed
):
    from rtsearch.session import SearchSession

    gallery, out = indexed
    real = SearchSession.query_file
    calls = []

    def stopped_at_the_third(self, *a, **kw):
        calls.append(a[0])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, *a, **kw)

    monkeypatch.setattr(SearchSession, "query_file", stopped_at_the_third)
    for shape in ("--json", "--jsonl", None):
        calls.clear()
        args = ["query", out, gallery, "--model", tiny_model, "-k", "1", "--no-verify"]
        code, stdout, err = cli(capsys, *args, *([shape] if shape else []))
        assert code == 130 and err.splitlines()[-2:] == [
            "note: 2 of 12 pictures answered before the interruption",
            "rtsearch: interrupted",
        ], err
        if shape == "--json":  # (it printed nothing: the answers were lost)
            assert [a["query"] for a in json.loads(stdout)] == [str(p) for p in calls[:2]]
        elif shape == "--jsonl":
            assert len([json.loads(line) for line in stdout.splitlines()]) == 2
        else:
            assert stdout.count("\n\n") == 1  # two pictures' answers
    with pytest.raises(SystemExit) as stop:  # one shape or the other, not both in one stream
        main(["query", str(out), str(gallery), "--json", "--jsonl"])
    assert stop.value.code == 2 and "--jsonl: not allowed with argument --json" in (
        capsys.readouterr().err
    )


def test_entries_of_a_folder_named_like_pictures_that_cannot_be_are_counted(
    capsys, tmp_path, tiny_model, indexed
):
    """A FIFO and a broken link named .jpg inside a folder were warned about by the scan
    but left out of the count, the JSON and the exit status."""
    import os

    gallery, out = indexed
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(gallery / "d0/img00000.png", mixed / "good.png")
    os.mkfifo(mixed / "fifo.jpg")
    (mixed / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (mixed / "up").symlink_to(tmp_path)  # a link to a folder holding it: not a picture
    code, stdout, err = cli(capsys, "query", out, mixed, "--model", tiny_model, "--json",
                            "--no-verify", "-k", "1")  # fmt: skip
    answers = {Path(a["query"]).name: a for a in json.loads(stdout)}
    # in the folder's order (those that cannot be searched came after the others)
    assert code == 1 and list(answers) == ["fifo.jpg", "gone.jpg", "good.png"]
    assert answers["fifo.jpg"]["error"].startswith(f"{mixed / 'fifo.jpg'}: ")
    assert answers["gone.jpg"]["error"] == f"{mixed / 'gone.jpg'}: broken symlink"
    assert f"warning: {mixed / 'up'}: link to " in err
    assert err.endswith("rtsearch: error: 2 of 3 pictures could not be searched (said above)\n")
    # nothing readable at all: each still said and counted, not "no pictures"
    (mixed / "good.png").unlink()
    code, stdout, err = cli(capsys, "query", out, mixed, "--model", tiny_model, "--jsonl")
    assert code == 1 and len(stdout.splitlines()) == 2 and "2 of 2 pictures" in err


def test_pictures_a_missing_codec_leaves_unread_are_said_once_and_counted(
    capsys, monkeypatch, tmp_path, tiny_model, indexed
):
    gallery, out = indexed
    phone = tmp_path / "phone"
    phone.mkdir()
    for i in range(5):  # what a HEIC starts with: its brands are all decode looks at first
        (phone / f"IMG_{i}.HEIC").write_bytes(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + bytes(99))
    shutil.copy(gallery / "d0/img00000.png", phone / "kept.png")
    monkeypatch.setattr("rtsearch.decode._heif_registered", lambda: False)
    code, stdout, err = cli(capsys, "query", out, phone, "--model", tiny_model, "--no-verify")
    assert code == 1 and stdout.splitlines()[0] == str(phone / "kept.png")
    assert err.splitlines() == [
        f"warning: {phone / 'IMG_0.HEIC'}: HEIC picture: reading it needs pillow-heif "
        "(pip install 'rtsearch[heic]')",
        "warning: 4 more HEIC pictures skipped: reading them needs pillow-heif "
        "(pip install 'rtsearch[heic]')",
        "rtsearch: error: 5 of 6 pictures could not be searched (said above)",
    ]


def test_candidates_that_cannot_be_read_to_verify_are_noted_and_unverified_ranks_marked(
    capsys, monkeypatch, tmp_path, tiny_model, indexed
):
    gallery, out = indexed
    damaged = gallery / "d0/img00003.jpg"
    query = tmp_path / "query.jpg"
    shutil.copy(damaged, query)
    damaged.write_bytes(bytes(damaged.stat().st_size))  # same size: not "changed"
    code, stdout, err = cli(capsys, "query", out, query, "--model", tiny_model, "-k", "3")
    # not verified: "-", as past the candidates (0 read as a verdict), null in --json
    assert code == 0 and stdout.splitlines()[0].split()[2:] == ["-", "inliers", "d0/img00003.jpg"]
    assert err == (
        'note: 1 nearest indexed image could not be read to verify it (inliers "-"; first: '
        f"{damaged}: not an image file (unknown format))\n"
    )
    damaged.unlink()  # gone since the index was made: the same
    code, stdout, _ = cli(capsys, "query", out, query, "--model", tiny_model, "-k", "3", "--json")
    first = json.loads(stdout)[0]
    assert (first["path"], first["inliers"]) == ("d0/img00003.jpg", None)
    # -k past the candidates verified: their inliers read "-", the paths stay in line
    monkeypatch.setattr("rtsearch.session.Verifier", lambda: Verifier(candidates=4))
    code, stdout, _ = cli(capsys, "query", out, query, "--model", tiny_model, "-k", "6")
    lines = stdout.splitlines()
    assert [line.split()[2] for line in lines[4:]] == ["-", "-"]
    assert len({line.index(" inliers") for line in lines}) == 1
    # an index among the pictures is said to be one
    code, _, err = cli(capsys, "query", out, query, out, "--model", tiny_model)
    assert code == 1 and f"warning: {out}: looks like an index file, not a picture" in err
    # a RAW camera file is said to be one, as analyze says it (not "unknown format")
    raw = tmp_path / "IMG_0001.CR2"
    raw.write_bytes(b"II*\0\x10\0\0\0CR" + bytes(200))
    code, _, err = cli(capsys, "query", out, raw, "--model", tiny_model)
    assert code == 1 and err == (
        f"rtsearch: error: {raw}: a RAW camera file: rtsearch does not read RAW files (search "
        "its JPEG, or one exported from it)\n"
    )
    # ... and in a folder of pictures given, counted (they were passed over without a word)
    shots = tmp_path / "shots"
    shots.mkdir()
    shutil.copy(query, shots / "a.jpg")
    shutil.copy(raw, shots / "b.CR2")
    code, _, err = cli(capsys, "query", out, shots, "--model", tiny_model, "--no-verify")
    raws = "1 RAW camera file (.CR2, .NEF, .ARW, .DNG ...) passed over: rtsearch does not read RAW"
    assert code == 0 and f"note: {shots}: {raws} files\n" in err, err
    (shots / "a.jpg").unlink()
    code, _, err = cli(capsys, "query", out, shots, "--model", tiny_model, "--no-verify")
    assert code == 1 and err == f"rtsearch: error: {shots}: holds only {raws} files\n"


def test_a_picture_piped_in_is_searched_and_named_as_the_input(tmp_path, tiny_model, indexed):
    import subprocess
    import sys

    gallery, out = indexed

    def piped(data: bytes, *args) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "rtsearch", "query", str(out), *map(str, args), "--model",
             str(tiny_model)],
            input=data, capture_output=True, timeout=120,
        )  # fmt: skip

    picture = (gallery / "d1/img00007.jpg").read_bytes()
    run = piped(picture, "-", "-k", "2", "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)[0]["path"] == "d1/img00007.jpg"
    run = piped(picture, "-", gallery / "d0/img00000.png", "--jsonl", "--no-verify", "-k", "1")
    answers = [json.loads(line) for line in run.stdout.splitlines()]
    assert [a["query"] for a in answers] == ["-", str(gallery / "d0/img00000.png")]
    assert answers[0]["results"][0]["path"] == "d1/img00007.jpg"
    run = piped(picture, "-", "--trim", "--no-verify", "-k", "1")  # its note names it too
    assert run.returncode == 0 and run.stderr.decode().startswith("note: standard input: ")
    for data, said in (
        (b"", "standard input: empty (nothing was piped in, or it was read before)"),
        (b"not a picture", "standard input: not an image file (unknown format)"),
    ):
        run = piped(data, "-")
        assert run.returncode == 1 and run.stderr.decode() == f"rtsearch: error: {said}\n"


def test_a_pipe_named_as_the_picture_is_read(tmp_path, tiny_model, indexed):
    """`rtsearch query INDEX <(curl -s URL)` and `... | rtsearch query INDEX /dev/stdin`
    were refused: `/dev/fd/63: not a regular file`. A pipe named on the command line is
    read as standard input is (one found in a folder given is still not waited on)."""
    import subprocess

    gallery, out = indexed
    picture = gallery / "d1/img00007.jpg"
    query = f"{sys.executable} -m rtsearch query {out} --model {tiny_model} -k 1"
    for line in (
        f"{query} <(cat {picture}) --json",
        f"cat {picture} | {query} /dev/stdin --json",
        f"{query} {gallery / 'd0/img00000.png'} <(cat {picture}) --jsonl --no-verify",
    ):
        run = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, (line, run.stderr)
        found = [json.loads(x) for x in run.stdout.splitlines()]
        nearest = found[0][0] if "--json " in line + " " else found[1]["results"][0]
        assert nearest["path"] == "d1/img00007.jpg" and nearest["distance"] < 1e-3, line
    assert found[1]["query"].startswith("/dev/fd/")  # named as given
    run = subprocess.run(["bash", "-c", f"{query} <(printf 'not a picture')"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 1
    assert re.fullmatch(r"rtsearch: error: /dev/fd/\d+: not an image file \(unknown format\)\n",
                        run.stderr), run.stderr  # fmt: skip


def test_results_of_a_base_dir_given_with_dots_name_their_files_plainly(
    capsys, monkeypatch, tmp_path, tiny_model, indexed
):
    """`--base-dir ../photos` gave files as `/.../work/../photos/d1/x.jpg`; through a
    link, where `..` leads elsewhere, the path stays as given."""
    gallery, out = indexed
    moved = tmp_path / "photos"
    gallery.rename(moved)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    picture = moved / "d1/img00007.jpg"
    code, stdout, _ = cli(capsys, "query", out, picture, "--base-dir", "../photos", "--json",
                          "--model", tiny_model, "-k", "1")  # fmt: skip
    assert code == 0 and json.loads(stdout)[0]["file"] == str(picture)
    elsewhere = tmp_path / "far" / "deep"
    elsewhere.mkdir(parents=True)
    (tmp_path / "far" / "photos").symlink_to(moved)
    (tmp_path / "work" / "link").symlink_to(elsewhere)  # link/.. is far/, not work/
    code, stdout, _ = cli(capsys, "query", out, picture, "--base-dir", "link/../photos",
                          "--json", "--model", tiny_model, "-k", "1")  # fmt: skip
    file = json.loads(stdout)[0]["file"]
    assert code == 0 and file == str(tmp_path / "work/link/../photos/d1/img00007.jpg")
    assert os.path.samefile(file, picture)


def test_the_exit_statuses_help_gives_are_those_query_ends_with(capsys, tmp_path, indexed):
    """Scripts had to guess them: `query --help` did not say."""
    gallery, out = indexed
    with pytest.raises(SystemExit):
        main(["query", "--help"])
    said = " ".join(capsys.readouterr().out.split())
    assert "exit status: 0 every picture searched; 1 an error" in said
    assert "2 an option or value the parser refused (usage: ...); 130 or 143 interrupted" in said
    good, bad = gallery / "d1/img00007.jpg", tmp_path / "bad.jpg"
    bad.write_bytes(b"not a picture")
    assert cli(capsys, "query", out, good, "--no-verify")[0] == 0
    assert cli(capsys, "query", out, good, bad, "--no-verify")[0] == 1
    assert cli(capsys, "query", out, bad)[0] == 1
    with pytest.raises(SystemExit) as refused:
        main(["query", str(out), str(good), "-k", "0"])
    assert refused.value.code == 2


def test_standard_input_closed_endless_or_without_a_temporary_folder(
    tmp_path, tiny_model, indexed, monkeypatch, capsys
):
    """`<&-` said "is a terminal"; `< /dev/zero` read until memory ran out (a MemoryError
    traceback under a limit); no usable or no roomy temporary folder: a traceback."""
    import errno
    import io
    import sys
    import tempfile

    from rtsearch import cli, queries

    gallery, out = indexed

    class Piped:
        def __init__(self, data: bytes) -> None:
            self.buffer = io.BytesIO(data)

        def isatty(self) -> bool:
            return False

    def asked(stdin) -> str:
        monkeypatch.setattr(sys, "stdin", stdin)
        code = cli.main(["query", str(out), "-", "--model", str(tiny_model), "--no-verify"])
        err = capsys.readouterr().err
        assert code == 1, err
        return err.removeprefix("rtsearch: error: ").rstrip("\n")

    closed = "standard input is closed: pipe a picture in (... | rtsearch query INDEX -)"
    assert asked(None) == closed
    monkeypatch.setattr(queries, "MAX_PIPED", 1000)
    assert asked(Piped(bytes(1001))) == "standard input: more than 1 KiB: not a picture"
    monkeypatch.undo()

    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "mkdtemp", no_room)
    picture = (gallery / "d1/img00007.jpg").read_bytes()
    assert asked(Piped(picture)) == (
        "standard input: cannot keep the picture in a temporary file (No space left on "
        "device); set TMPDIR to a folder with room"
    )


def test_a_video_given_to_query_is_pointed_to_the_viewer(
    tmp_path, tiny_model, indexed, capsys, monkeypatch
):
    """`rtsearch query INDEX clip.mp4` said "not an image file (unknown format)" of a file
    the viewer plays; so it did of a video piped in, or named like a picture."""
    import io
    import sys

    from fakes import write_video

    from rtsearch import cli

    _, out = indexed
    clip = write_video(tmp_path / "clip.avi", [1], frames_each=2)
    assert cli.main(["query", str(out), str(clip), "--model", str(tiny_model)]) == 1
    assert capsys.readouterr().err == (
        f"rtsearch: error: {clip}: a video: query takes pictures; the viewer plays it: "
        f"rtsearch view {out} --source video:{clip}\n"
    )

    class Piped:
        buffer = io.BytesIO(clip.read_bytes())

        def isatty(self) -> bool:
            return False

    monkeypatch.setattr(sys, "stdin", Piped())
    assert cli.main(["query", str(out), "-", "--model", str(tiny_model)]) == 1
    assert capsys.readouterr().err == (
        "rtsearch: error: standard input: an AVI video: query takes pictures; the viewer "
        f"plays a video file: rtsearch view {out} --source video:FILE\n"
    )
    named = clip.rename(tmp_path / "frame.jpg")
    assert cli.main(["query", str(out), str(named), "--model", str(tiny_model)]) == 1
    assert capsys.readouterr().err == (
        f"rtsearch: error: {named}: not an image file (an AVI video)\n"
    )


def test_pictures_may_come_after_the_options(tmp_path, tiny_model, indexed, capsys):
    """`query INDEX -k 1 a.jpg` said "unrecognized arguments: a.jpg" (argparse takes a
    command's positionals given together only); so did a name after `--`."""
    import shutil as sh

    from rtsearch import cli

    gallery, out = indexed
    picture = gallery / "d1/img00007.jpg"
    dashed = tmp_path / "-x.jpg"
    sh.copy(picture, dashed)
    model = ["--model", str(tiny_model), "--no-verify"]
    assert cli.main(["query", str(out), "-k", "1", *model, str(picture)]) == 0
    said = capsys.readouterr().out.split()
    assert said[0] == "1" and said[-1] == "d1/img00007.jpg" and len(said) == 3
    assert cli.main(["query", str(out), "-k", "1", *model, "--", str(dashed)]) == 0
    assert capsys.readouterr().out.split()[-1] == "d1/img00007.jpg"
    assert cli.main(["query", str(out), "-k", "1", *model, str(picture), str(picture)]) == 0
    assert capsys.readouterr().out.count("d1/img00007.jpg") == 4  # two names, two results
    with pytest.raises(SystemExit):
        cli.main(["query", str(out), "-k", "1", str(picture), "--bogus"])
    assert "rtsearch query: error: unrecognized arguments: --bogus" in capsys.readouterr().err


def test_a_file_of_the_index_comes_first_among_its_identical_copies(
    capsys, tmp_path, tiny_model, monkeypatch
):
    """Copies of one file (a Backup folder, a hard link) are each analysed, their vectors a
    rounding apart (~1e-7: other batches): a file of the index comes first among its copies
    however its path is written (``..``, a link to it), the others by place; as analysed it
    is searched as its row, and changed since (touched) it is run through the model."""
    import os

    from rtsearch.session import SearchSession

    gallery, out = tmp_path / "gallery", tmp_path / "g.dat"
    make_gallery(gallery, 9)
    original = gallery / "d1/img00004.jpg"
    copies = [gallery / "Backup/img00004.jpg", gallery / "a/img00004.jpg"]
    for copy in copies:
        copy.parent.mkdir()
        shutil.copy2(original, copy)
    os.link(original, gallery / "d2/linked.jpg")
    assert cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model, "--quiet",
               "--batch", "2")[0] == 0  # fmt: skip
    names = {"d1/img00004.jpg", "Backup/img00004.jpg", "a/img00004.jpg", "d2/linked.jpg"}
    monkeypatch.chdir(gallery / "d1")
    (tmp_path / "elsewhere").symlink_to(gallery / "Backup")
    given = [original, *copies, gallery / "d2/linked.jpg", Path("../Backup/img00004.jpg"),
             tmp_path / "elsewhere/img00004.jpg"]  # fmt: skip
    for picture in given:
        code, stdout, _ = cli(capsys, "query", out, picture, "--model", tiny_model, "-k", "5",
                              "--json")  # fmt: skip
        results = json.loads(stdout)
        own = os.path.relpath(os.path.realpath(picture), gallery.resolve()).replace(os.sep, "/")
        assert code == 0 and results[0]["path"] == own and results[0]["distance"] == 0.0
        assert [r["path"] for r in results[1:4]] == sorted(names - {own})
        assert results[4]["distance"] > 1e4 * results[3]["distance"]
    outside = tmp_path / "outside.jpg"  # not a file of the index: the copies by place
    shutil.copy2(original, outside)
    paths = [r["path"] for r in json.loads(cli(capsys, "query", out, outside, "--model",
                                               tiny_model, "-k", "4", "--json")[1])]  # fmt: skip
    assert paths == sorted(names)

    session = SearchSession.open(out, model=str(tiny_model))
    runs = []
    real = session.features_of
    session.features_of = lambda images: runs.append(1) or real(images)
    assert session.row_at(original) is not None and session.row_at(outside) is None
    assert session.query_file(original, 3)[0].path == "d1/img00004.jpg" and runs == []
    os.utime(copies[0], (1e9, 1e9))  # changed since analyze: run through the model ...
    results = session.query_file(copies[0], 4)
    assert runs == [1] and {r.path for r in results} == names
    assert results[0].path == "Backup/img00004.jpg"  # ... and still first among its copies


def test_a_file_of_a_linked_folder_comes_first_however_the_base_is_reached(
    capsys, tmp_path, tiny_model
):
    """The base reached through a link to it, and the file in a folder linked from outside
    the base, or that file by its real path: neither its absolute nor its real path lies
    under the base's, and an identical copy elsewhere in the index ranked before it."""
    gallery, out = tmp_path / "gallery", tmp_path / "g.dat"
    make_gallery(gallery, 6)
    (tmp_path / "outside").mkdir()
    shutil.copy2(gallery / "d1/img00004.jpg", tmp_path / "outside/z.jpg")
    (gallery / "linked").symlink_to(tmp_path / "outside")
    (tmp_path / "via").symlink_to(gallery)
    assert cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model, "--quiet")[0] == 0
    for picture, own in ((tmp_path / "via/linked/z.jpg", "linked/z.jpg"),
                         (tmp_path / "via/d1/img00004.jpg", "d1/img00004.jpg"),
                         (tmp_path / "outside/z.jpg", "linked/z.jpg")):  # fmt: skip
        code, stdout, _ = cli(capsys, "query", out, picture, "--model", tiny_model, "-k", "2",
                              "--json")  # fmt: skip
        assert code == 0 and json.loads(stdout)[0]["path"] == own, picture


def test_a_folder_of_the_index_is_searched_without_what_the_index_leaves_out(
    capsys, tmp_path, tiny_model
):
    """`query INDEX FOLDER` takes a folder's pictures "as analyze finds them": in the
    index's own folder, without those its --exclude patterns leave out (said in a note);
    a folder of nothing else says so; such a file given by name is searched."""
    gallery, out = tmp_path / "gallery", tmp_path / "g.dat"
    make_gallery(gallery, 6)
    (gallery / "Backup").mkdir()
    for f in ("d0/img00003.jpg", "d1/img00004.jpg"):
        shutil.copy2(gallery / f, gallery / "Backup" / Path(f).name)
    assert cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model, "--quiet",
               "--exclude", "Backup")[0] == 0  # fmt: skip
    code, stdout, err = cli(capsys, "query", out, gallery, "--model", tiny_model, "--jsonl",
                            "-k", "1", "--no-verify")  # fmt: skip
    queried = [json.loads(line)["query"] for line in stdout.splitlines()]
    assert code == 0 and len(queried) == 6 and not any("Backup" in q for q in queried)
    assert err == (f"note: {gallery}: 2 pictures the index leaves out (--exclude 'Backup') not "
                   "searched\n")  # fmt: skip
    code, _, err = cli(capsys, "query", out, gallery / "Backup", "--model", tiny_model)
    assert (code, err) == (1, f"rtsearch: error: {gallery / 'Backup'}: holds only pictures the "
                              "index leaves out (--exclude 'Backup'); give them as files to "
                              "search them\n")  # fmt: skip
    elsewhere = tmp_path / "elsewhere"  # a folder outside the index's: all its pictures
    shutil.copytree(gallery / "Backup", elsewhere / "Backup")
    code, stdout, err = cli(capsys, "query", out, elsewhere, "--model", tiny_model, "--jsonl",
                            "-k", "1", "--no-verify")  # fmt: skip
    assert code == 0 and len(stdout.splitlines()) == 2 and err == ""
    code, stdout, _ = cli(capsys, "query", out, gallery / "Backup/img00003.jpg", "--model",
                          tiny_model, "-k", "1", "--no-verify")  # fmt: skip
    assert code == 0 and stdout.split()[-1] == "d0/img00003.jpg"


def test_a_collection_picture_pasted_on_a_page_is_verified_as_well_as_alone(
    capsys, tmp_path, tiny_model
):
    """A picture of the collection pasted pixel for pixel on a white page (a screenshot of
    it), `query --trim`: verified with a margin of the page only, shrunk so, it had a third
    to a half of the inliers the picture alone has (a user's trial: a third of such copies
    fell below MIN_INLIERS). Its own file is found with as many as the picture alone gives."""
    from fakes import make_photo_gallery
    from PIL import Image

    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor
    from rtsearch.verify import MIN_INLIERS

    files = make_photo_gallery(tmp_path / "photos", 8)  # (320x240: shrunk with a margin)
    out = tmp_path / "photos.dat"
    analyze(tmp_path / "photos", out, Extractor(tiny_model, threads=1), Settings(dims=8))
    pages = tmp_path / "pages"
    pages.mkdir()
    for i, f in enumerate(files):
        picture = Image.open(f).convert("RGB")
        page = Image.new("RGB", (picture.width + 60 + 7 * i, picture.height + 50), "white")
        page.paste(picture, (30 + 7 * i, 20))
        page.save(pages / f"{i}.png")
        picture.save(pages / f"{i}-alone.png")
    code, stdout, err = cli(capsys, "query", out, pages, "--model", tiny_model, "--trim",
                            "--jsonl", "-k", "1")  # fmt: skip
    assert code == 0, err
    answers = {Path(a["query"]).stem: a["results"][0] for a in map(json.loads, stdout.splitlines())}
    for i, f in enumerate(files):
        on_page, alone = answers[str(i)], answers[f"{i}-alone"]
        assert on_page["file"] == alone["file"] == str(f), (on_page, alone)
        # (its inliers were 84 of the 241 alone, 201 of 749: a third, or half)
        assert on_page["inliers"] >= 0.9 * alone["inliers"] >= MIN_INLIERS, (i, on_page, alone)


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="names are Unicode there")
def test_a_folder_of_pictures_whose_names_are_not_utf8_is_searched(
    capsys, tmp_path, tiny_model, indexed
):
    """A picture named in another encoding in a folder given to query was refused ("file
    name is not UTF-8", the run's status 1) where the same file given by name is searched:
    a query's name is stored nowhere."""
    gallery, out = indexed
    shots = tmp_path / "shots"
    shots.mkdir()
    picture = next(gallery.rglob("*.jpg"))
    shutil.copy(picture, os.fsencode(shots) + b"/caf\xe9.jpg")  # (Latin-1)
    code, stdout, err = cli(capsys, "query", out, shots, "--model", tiny_model, "--jsonl",
                            "-k", "1", "--no-verify")  # fmt: skip
    answer = json.loads(stdout)
    assert code == 0 and err == "", err
    assert answer["error"] is None and answer["results"][0]["file"] == str(picture)
    assert answer["query"] == os.fsdecode(os.fsencode(shots) + b"/caf\xe9.jpg")
