"""scan(): recursive, sorted, any-case extensions, loops and odd entries handled."""

from __future__ import annotations

import os
from pathlib import Path

from badimages import BAD, long_name
from fakes import make_image

from rtsearch import scan as scan_module
from rtsearch.scan import scan


def _touch_image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    make_image(0, (24, 24)).save(path, "PNG")


def test_recursive_sorted_any_case(tmp_path):
    for rel in ["b/z.JPG", "a.png", "b/a.Jpeg", "c/d/e.webp", "c/readme.txt", "x.gif", "y.BMP"]:
        _touch_image(tmp_path / rel) if not rel.endswith(".txt") else None
    (tmp_path / "c" / "readme.txt").write_text("no")
    result = scan(tmp_path)
    assert result.paths == ["a.png", "b/a.Jpeg", "b/z.JPG", "c/d/e.webp", "x.gif", "y.BMP"]
    assert result.skipped == []


def test_symlink_loops_terminate_and_each_directory_is_followed_once(tmp_path):
    _touch_image(tmp_path / "real" / "a.png")
    os.symlink("..", tmp_path / "real" / "up")  # loop back to the base
    os.symlink(tmp_path / "real", tmp_path / "alias")  # the same directory twice
    os.symlink("alias", tmp_path / "alias2")
    os.symlink("loop", tmp_path / "loop")  # a symlink to itself
    result = scan(tmp_path)
    assert len(result.paths) == 1 and result.paths[0].endswith("a.png")


def test_a_shortcut_to_a_folder_inside_never_takes_its_name(tmp_path):
    base = tmp_path / "base"
    _touch_image(base / "album" / "d2" / "a.png")
    _touch_image(base / "zz" / "b.png")
    os.symlink(base / "album" / "d2", base / "favourites")  # sorts between them
    os.symlink(base, base / "zz" / "everything")  # the whole base, from deep inside
    _touch_image(tmp_path / "elsewhere" / "c.png")
    os.symlink(tmp_path / "elsewhere", base / "album" / "linked")  # not in the base otherwise
    assert scan(base).paths == ["album/d2/a.png", "album/linked/c.png", "zz/b.png"]


def test_a_link_to_a_folder_holding_the_base_is_not_followed(tmp_path):
    """`up -> ..` or `home -> ~` inside the folder took in everything around it: a folder
    of one image gave an index of the whole workspace."""
    base = tmp_path / "photos" / "2026"
    _touch_image(base / "a.png")
    _touch_image(tmp_path / "photos" / "2025" / "b.png")
    _touch_image(tmp_path / "unrelated" / "c.png")
    os.symlink("..", base / "up")
    os.symlink(tmp_path, base / "home")
    os.symlink(tmp_path / "unrelated", base / "more")  # beside it: followed as before
    said: list[str] = []
    result = scan(base, said.append)
    assert result.paths == ["a.png", "more/c.png"] and result.skipped == []
    assert said == [
        f"{base / 'home'}: link to {tmp_path.resolve()}, a folder holding this one: not followed",
        f"{base / 'up'}: link to {(tmp_path / 'photos').resolve()}, a folder holding this one: "
        "not followed",
    ]


def test_unusable_entries_are_reported_once_each(tmp_path):
    warnings: list[str] = []
    _touch_image(tmp_path / "good.png")
    made = [BAD[c](tmp_path) for c in BAD if c in _SCANNER_CASES]
    (tmp_path / "folder.jpg").mkdir()  # a directory named like an image is walked
    _touch_image(tmp_path / "folder.jpg" / "inner.png")
    result = scan(tmp_path, warnings.append)
    assert result.paths == ["folder.jpg/inner.png", "good.png"]
    assert len(result.skipped) == len(warnings) == len(made) == len(_SCANNER_CASES)
    assert all("\n" not in w and ": " in w for w in warnings)
    reasons = " | ".join(warnings)
    for fragment in ("not UTF-8", "not a regular file", "broken symlink", "symbolic links"):
        assert fragment in reasons
    # named as the folder was given, like decoding's warnings
    assert any(w.startswith(f"{tmp_path / 'caf'}\\xe9-latin1.jpg: ") for w in warnings)


_SCANNER_CASES = {"FIFO named .jpg", "symlink loop to itself", "dangling symlink",
                  "non-UTF-8 file name"}  # fmt: skip


def test_255_byte_names_are_indexed(tmp_path):
    path = long_name(tmp_path)
    assert scan(tmp_path).paths == [path.name]


def test_file_vanishing_between_listing_and_stat(tmp_path, monkeypatch):
    for i in range(6):
        _touch_image(tmp_path / f"f{i}.png")
    real_scandir = os.scandir

    def scandir_then_delete(directory):
        entries = list(real_scandir(directory))
        for victim in ("f1.png", "f4.png"):
            (Path(directory) / victim).unlink(missing_ok=True)
        return iter(entries)

    monkeypatch.setattr(scan_module.os, "scandir", scandir_then_delete)
    warnings: list[str] = []
    result = scan(tmp_path, warnings.append)
    assert result.paths == ["f0.png", "f2.png", "f3.png", "f5.png"]
    assert warnings == []  # gone before we saw it: nothing to index, nothing to report


def test_directory_vanishing_is_reported(tmp_path, monkeypatch):
    _touch_image(tmp_path / "keep" / "a.png")
    _touch_image(tmp_path / "gone" / "b.png")
    real_scandir = os.scandir

    def scandir(directory):
        if Path(directory).name == "gone":
            raise FileNotFoundError(2, "No such file or directory", str(directory))
        return real_scandir(directory)

    monkeypatch.setattr(scan_module.os, "scandir", scandir)
    warnings: list[str] = []
    result = scan(tmp_path, warnings.append)
    assert result.paths == ["keep/a.png"]
    assert warnings == [f"{tmp_path / 'gone'}: cannot list directory (No such file or directory)"]


def test_tiff_and_the_other_jpeg_names_are_indexed_and_decoded(tmp_path):
    """.tif/.tiff, .jfif and .jpe were passed over without a word ("no usable images found
    (0 skipped)" for a folder of them), though `query` took a TIFF."""
    import numpy as np
    from PIL import Image

    from rtsearch.decode import load_rgb

    picture = make_image(3, (40, 30))
    picture.save(tmp_path / "a.TIFF")
    picture.save(tmp_path / "b.tif", compression="tiff_lzw")
    picture.save(tmp_path / "c.jfif", "JPEG", quality=95)
    picture.save(tmp_path / "d.JPE", "JPEG", quality=95)
    deep = np.full((30, 40), 40000, np.uint16)  # 16-bit grey, as scanners write
    Image.fromarray(deep).save(tmp_path / "e.tiff")
    pages = [make_image(5, (40, 30)), make_image(6, (40, 30))]
    pages[0].save(tmp_path / "f.tiff", save_all=True, append_images=pages[1:])
    assert scan(tmp_path).paths == ["a.TIFF", "b.tif", "c.jfif", "d.JPE", "e.tiff", "f.tiff"]
    rgb = np.asarray(picture.convert("RGB"))
    assert np.array_equal(load_rgb(tmp_path / "a.TIFF"), rgb)
    assert np.array_equal(load_rgb(tmp_path / "b.tif"), rgb)
    for jpeg in ("c.jfif", "d.JPE"):  # within a level of Pillow's own decoding
        want = np.asarray(Image.open(tmp_path / jpeg).convert("RGB"), dtype=int)
        assert np.abs(load_rgb(tmp_path / jpeg).astype(int) - want).max() <= 1
    assert load_rgb(tmp_path / "e.tiff")[0, 0].tolist() == [156, 156, 156]  # 40000/65535
    assert np.array_equal(load_rgb(tmp_path / "f.tiff"), np.asarray(pages[0].convert("RGB")))


def test_hidden_entries_and_links_to_images_indexed_by_name_are_passed_over(tmp_path):
    """`.thumbnails/` caches and macOS's `._` files were indexed (duplicates, or a warning
    each), and a link to an image in the folder gave a second row of the same picture,
    found at distance 0 beside it."""
    for rel in ("a.png", "sub/b.png", ".thumbnails/a.png", ".hidden.png", "sub/._b.png"):
        _touch_image(tmp_path / rel)
    (tmp_path / "again.png").symlink_to(tmp_path / "sub" / "b.png")
    (tmp_path / "rel.png").symlink_to("a.png")  # relative, to a file beside it
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    _touch_image(outside / "o.png")
    (tmp_path / "o.png").symlink_to(outside / "o.png")  # its only way in: indexed
    (tmp_path / "shortcut").symlink_to(tmp_path / "sub")  # walked under sub's name, once
    assert scan(tmp_path).paths == ["a.png", "o.png", "sub/b.png"]
    # the base itself may be hidden (the demo's gallery lives under ~/.local)
    assert scan(tmp_path / ".thumbnails").paths == ["a.png"]


def test_a_folder_past_the_paths_limit_is_said_not_passed_over(tmp_path):
    """A picture under a path longer than 4096 bytes was left out without a word (its
    folder could not be stat()ed, and folders were not said); it is named, as a file that
    cannot be is."""
    make_image(0).save(tmp_path / "near.jpg")
    here = os.getcwd()
    try:
        os.chdir(tmp_path)
        depth = 0
        while len(os.fsencode(os.getcwd())) < 4200:  # built a step at a time (relative)
            name = "deep" + "x" * 240 + f"{depth:02d}"
            os.mkdir(name)
            os.chdir(name)
            depth += 1
        make_image(1).save("far.jpg")
    finally:
        os.chdir(here)
    said: list[str] = []
    found = scan(tmp_path, warn=said.append)
    assert found.paths == ["near.jpg"]
    assert len(said) == 1 and said[0].endswith(": cannot stat (File name too long)"), said
    assert len(found.unread) == 1


def test_folders_of_copies_are_passed_over(tmp_path):
    """A Synology share's 10 photos gave 78 rows: each photo's thumbnails under @eaDir, the
    recycle bin, snapshots, QNAP's caches; a Photos library's previews, Windows' recycle bin
    and an Android app's cache (.nomedia) likewise. A photo's nearest results were its own
    thumbnails, the other photos pushed past them."""
    photos = ["2023/IMG_0001.JPG", "2023/IMG_0002.JPG", "P.photoslibrary/originals/A/x.jpeg",
              "Old.photoslibrary/Masters/2019/y.jpg", "DCIM/z.jpg", "Album/@eaDir.jpg"]  # fmt: skip
    clutter = [
        "2023/@eaDir/IMG_0001.JPG/SYNOPHOTO_THUMB_XL.jpg", "#recycle/2023/IMG_0003.JPG",
        "#snapshot/GMT+00_2024.01.01/2023/IMG_0001.JPG", "@Recycle/a.jpg", "@__thumb/b.jpg",
        "$RECYCLE.BIN/S-1-5-21/$RA1B2C3.JPG", "System Volume Information/c.jpg",
        "P.photoslibrary/resources/derivatives/A/x_1_105_c.jpeg",
        "Old.photoslibrary/Thumbnails/y.jpg", "Android/data/app/cache/d.jpg",
        "@EADIR/e.jpg",
    ]  # fmt: skip
    for rel in photos + clutter:
        _touch_image(tmp_path / rel)
    (tmp_path / "Android/data/app/cache/.nomedia").write_bytes(b"")
    assert scan(tmp_path).paths == sorted(photos)
    (tmp_path / ".nomedia").write_bytes(b"")  # the folder given itself: still indexed
    assert scan(tmp_path).paths == sorted(photos)


def test_an_index_holding_copies_an_older_scan_took_in_updates_without_asking(
    tmp_path, tiny_model, monkeypatch, capsys
):
    """An index made before folders of copies were passed over (a share's 12 photos as 72
    rows): `update` and `analyze` refused, "holds only 12 of the 72 images ... another
    folder?", where dropping those rows is the point; --replace was the way through."""
    from rtsearch.cli import main

    share = tmp_path / "share"
    (share / "photo").mkdir(parents=True)
    for i in range(12):
        make_image(i).save(share / "photo" / f"IMG_{i:04d}.JPG")
        for size in ("XL", "B", "M", "S", "SM"):
            thumb = share / "photo/@eaDir" / f"IMG_{i:04d}.JPG" / f"SYNOPHOTO_THUMB_{size}.jpg"
            thumb.parent.mkdir(parents=True, exist_ok=True)
            make_image(i).resize((64, 48)).save(thumb)
    model = ["--model", str(tiny_model)]
    for command in ("update", "analyze"):
        index = tmp_path / f"{command}.dat"
        with monkeypatch.context() as older:
            older.setattr(scan_module, "CLUTTER_DIRS", frozenset())
            assert main(["analyze", str(share), "-o", str(index), *model, "--quiet"]) == 0
        assert "72 images" in capsys.readouterr().out
        given = [str(index), str(share)] if command == "update" else [str(share), "-o", str(index)]
        assert main([command, *given, *model]) == 0, capsys.readouterr().err
        out = capsys.readouterr().out
        assert f"{index}: 12 images" in out, out
    assert scan_module.under_copies("photo/@eaDir/IMG_0001.JPG/SYNOPHOTO_THUMB_XL.jpg")
    assert scan_module.under_copies("L.photoslibrary/resources/derivatives/x.jpeg")
    assert not scan_module.under_copies("L.photoslibrary/originals/x.jpeg")
    assert not scan_module.under_copies("L.photoslibrary/x.jpeg")
    assert not scan_module.under_copies("photo/@eaDir.jpg")


def test_raw_camera_files_are_said_not_passed_over_in_silence(tmp_path, tiny_model, capsys):
    """A camera folder's RAW twins were passed over without a word, and a folder of RAW
    files only said `no usable images found (0 skipped)`, as of an empty one."""
    from rtsearch.cli import main

    shots = tmp_path / "DCIM"
    shots.mkdir()
    for i in range(3):
        make_image(i).save(shots / f"IMG_{i:04d}.JPG")
        for ext in (".CR2", ".nef"):
            (shots / f"IMG_{i:04d}{ext}").write_bytes(b"II*\x00" + bytes(100))
    model = ["--model", str(tiny_model), "--quiet"]
    assert main(["analyze", str(shots), "-o", str(tmp_path / "a.dat"), *model]) == 0
    assert capsys.readouterr().err == (
        f"warning: {shots}: 6 RAW camera files (.CR2, .NEF, .ARW, .DNG ...) passed over: "
        "rtsearch does not read RAW files\n"
    )
    for jpeg in shots.glob("*.JPG"):
        jpeg.unlink()
    assert main(["analyze", str(shots), "-o", str(tmp_path / "b.dat"), *model]) == 1
    assert capsys.readouterr().err == (
        f"rtsearch: error: {shots}: no usable images found: it holds 6 RAW camera files "
        "(.CR2, .NEF, .ARW, .DNG ...), which rtsearch does not read; export them as JPEGs to "
        "index them\n"
    )


def test_a_folder_of_bad_files_only_says_why_in_its_error(tmp_path, tiny_model, capsys):
    """`no usable images found (4 skipped)` named none of them: the viewer, whose
    analysis says no line per file, showed only that."""
    from rtsearch.cli import main

    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("a.jpg", "b.png", "c.gif", "d.webp"):
        (bad / name).write_bytes(b"" if name == "b.png" else b"junk")
    args = ["analyze", str(bad), "-o", str(tmp_path / "x.dat"), "--model", str(tiny_model)]
    assert main([*args, "--quiet"]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"rtsearch: error: {bad}: no usable images found (4 skipped: {bad}/a.jpg: not an image "
        f"file (unknown format); {bad}/b.png: empty file; {bad}/c.gif: not an image file "
        "(unknown format); and 1 more)"
    )


def test_excluded_names_and_paths_are_left_out_and_their_folders_not_walked(tmp_path, monkeypatch):
    """--exclude's patterns: a name at any depth, a path from the base (``*`` within one
    name, ``**`` any folders), a trailing slash for folders only, case ignored; an excluded
    folder is not even listed; the patterns that matched nothing are known."""
    from rtsearch.exclusions import Exclusions

    files = [
        "a.jpg", "keep/b.jpg", "Backup/c.jpg", "x/backup/d.jpg", "x/e.PNG", "2019/raw/f.jpg",
        "y/2019/raw/g.jpg", "phone/me/cache/h.jpg", "phone/me/i.jpg", "deep/1/thumbs/j.jpg",
        "k/thumbs.jpg", "thumbs.jpg",  # files: not caught by the folders-only pattern
    ]  # fmt: skip
    for rel in files:
        _touch_image(tmp_path / rel)
    listed = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda d: listed.append(Path(d)) or real_scandir(d))
    warned = []
    patterns = ["BACKUP", "*.png", "2019/raw", "phone/*/cache", "**/thumbs/", "nothing", "*.PNG",
                "/keep/*.png"]  # fmt: skip
    exclusions = Exclusions.of(patterns)
    result = scan(tmp_path, warned.append, exclusions)
    kept = ["a.jpg", "k/thumbs.jpg", "keep/b.jpg", "phone/me/i.jpg", "thumbs.jpg"]
    assert result.paths == [*kept, "y/2019/raw/g.jpg"]
    assert warned == [] and result.skipped == [] and result.unread == []
    assert (result.excluded_folders, result.excluded) == (5, 1)
    # every pattern matching an entry counts as used ('*.PNG' after '*.png' was "unused")
    assert exclusions.unused() == ["nothing", "/keep/*.png"]
    walked = {p.relative_to(tmp_path).as_posix() for p in listed}
    assert not walked & {"Backup", "x/backup", "2019/raw", "phone/me/cache", "deep/1/thumbs"}
    # rows of an index made before: by their own names or their folders'
    rows = ("Backup/c.jpg", "x/E.png", "a.jpg", "deep/thumbs/z.jpg", "thumbs.jpg")
    assert [exclusions.hides(p) for p in rows] == [True, True, False, True, False]


def test_exclude_patterns_typed_as_paths_are_made_relative_or_refused_in_one_line(
    tmp_path, monkeypatch
):
    """A place given as a path (absolute, or from the current folder as a shell completes
    it) is that one place, not its name at any depth; a name with a leading / or ./ is the
    folder's top level only; a bare name stays a name wherever the command runs."""
    import pytest

    from rtsearch.errors import RtsearchError
    from rtsearch.exclusions import Exclusions, normalise

    base = tmp_path / "photos"
    (base / "Backup" / "old").mkdir(parents=True)
    (tmp_path / "old").mkdir()
    monkeypatch.chdir(tmp_path)
    assert normalise(str(base / "Backup"), base) == "/Backup"  # absolute, inside
    assert normalise("photos/Backup/old/", base) == "Backup/old/"  # as a shell completes it
    assert normalise("photos/Backup", base) == "/Backup"
    # ... and with a wildcard, or another case, which name no place to find
    assert normalise("photos/Backup/*/", base) == "Backup/*/"
    assert normalise("photos/backup", base) == "/backup"
    assert normalise("./Backup", base) == normalise("/Backup", base) == "/Backup"
    assert normalise("old", base) == "old"  # a name, though ./old is here
    assert normalise("2019/./Summer Trip", base) == "2019/Summer Trip"
    assert normalise("*.png", base) == "*.png"
    top = Exclusions.of(["/Backup"])
    assert [top.hides(p) for p in ("Backup/a.jpg", "x/Backup/a.jpg")] == [True, False]
    refused = [
        ("", "empty pattern"), ("a//b", "empty name"), ("../x", "'..'"),
        (str(tmp_path), "not inside"), (str(base), "folder analysed itself"),
    ]  # fmt: skip
    for pattern, why in refused:
        with pytest.raises(RtsearchError, match=why) as err:
            normalise(pattern, base)
        assert "\n" not in str(err.value) and str(err.value).startswith(f"--exclude '{pattern}'")
