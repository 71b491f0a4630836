"""AVIF (Pillow's own) and HEIC/HEIF (pillow-heif, optional): found, decoded upright and
close to the picture, indexed and found again; without the codec each file is skipped with
one line saying what reads it, and a library of them is two lines, not one per file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from fakes import make_image
from PIL import Image

from rtsearch import decode, store
from rtsearch.cli import main
from rtsearch.decode import load_rgb
from rtsearch.errors import RtsearchError
from rtsearch.scan import scan

HEIC_LINE = "HEIC picture: reading it needs pillow-heif (pip install 'rtsearch[heic]')"
# the rotations and flips an EXIF orientation asks for, as Pillow's exif_transpose does them
TURNS = {
    2: [Image.Transpose.FLIP_LEFT_RIGHT],
    3: [Image.Transpose.ROTATE_180],
    6: [Image.Transpose.ROTATE_270],
    8: [Image.Transpose.ROTATE_90],
    5: [Image.Transpose.TRANSPOSE],
}


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def save_heic(image: Image.Image, path: Path, orientation: int = 1, **kw) -> Path:
    """Written by pillow-heif without registering its opener here: the reading is the code's.
    An orientation is stored as an iPhone stores it, in the container (irot/imir) and in the
    EXIF both."""
    heif = pytest.importorskip("pillow_heif")
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    heif.from_pillow(image).save(path, quality=92, exif=exif.tobytes(), **kw)
    return path


def save_avif(image: Image.Image, path: Path, orientation: int = 1) -> Path:
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    image.save(path, "AVIF", quality=92, exif=exif.tobytes())
    return path


def close_to(got: np.ndarray, want) -> bool:
    """Both codecs are lossy (and halve the colour's resolution): the same layout, a few
    levels off on average, and within 12 levels over every 8x8 block."""
    want = np.asarray(want, dtype=int)
    if got.shape != want.shape:
        return False
    diff = got.astype(int) - want
    h, w = (s - s % 8 for s in diff.shape[:2])
    blocks = diff[:h, :w].reshape(h // 8, 8, w // 8, 8, 3).mean(axis=(1, 3))
    return bool(np.abs(diff).mean() < 6 and np.abs(blocks).max() < 12)


@pytest.fixture
def no_pillow_heif(monkeypatch):
    """pillow-heif not installed: its import fails."""
    monkeypatch.setitem(sys.modules, "pillow_heif", None)
    decode._register_heif.cache_clear()
    yield
    decode._register_heif.cache_clear()


def test_avif_and_heic_names_are_found_in_any_case(tmp_path):
    for name in ("a.avif", "b.heic", "c.HEIC", "d.heif", "e.hif", "f.AVIF", "g.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert scan(tmp_path).paths == ["a.avif", "b.heic", "c.HEIC", "d.heif", "e.hif", "f.AVIF"]


def test_avif_and_heic_decode_close_to_the_picture(tmp_path):
    picture = make_image(7, (320, 240))
    want = np.asarray(picture)
    assert close_to(load_rgb(save_avif(picture, tmp_path / "p.avif")), want)
    assert close_to(load_rgb(save_heic(picture, tmp_path / "p.heic")), want)
    # a HEIC named .jpg (an export's misnomer) is read by its content
    assert close_to(load_rgb(save_heic(picture, tmp_path / "p.jpg")), want)


def test_a_heic_or_avif_cut_short_is_said_to_be_one(tmp_path):
    """Cut inside its header, Pillow could not tell what it was: "unknown format", for a
    file whose brands decode had just read."""
    picture = make_image(8, (320, 240))
    for name, save in (("p.heic", save_heic), ("p.avif", save_avif)):
        whole = save(picture, tmp_path / name).read_bytes()
        cut = tmp_path / f"cut-{name}"
        cut.write_bytes(whole[:40])
        kind = "HEIC" if name.endswith("heic") else "AVIF"
        with pytest.raises(RtsearchError) as err:
            load_rgb(cut)
        assert str(err.value) == (
            f"{cut}: cannot decode image (a {kind} picture its reader refuses: cut short or "
            "damaged)"
        )


@pytest.mark.parametrize("orientation", sorted(TURNS))
def test_pictures_come_upright_turned_once(tmp_path, orientation):
    """iPhone HEICs carry the turn in the container and in the EXIF: turned by one only."""
    picture = make_image(orientation, (96, 64))  # asymmetric: a gradient and shapes
    upright = picture
    for turn in TURNS[orientation]:
        upright = upright.transpose(turn)
    heic = save_heic(picture, tmp_path / "p.heic", orientation)
    heif = pytest.importorskip("pillow_heif")
    stored = Image.Exif()
    stored.load(heif.open_heif(heic).info["exif"])
    assert stored[0x0112] == orientation  # (the EXIF keeps it beside the container's)
    avif = save_avif(picture, tmp_path / "p.avif", orientation)
    for path in (heic, avif):
        got = load_rgb(path)
        assert close_to(got, upright), path
        # and not the picture turned twice, or not at all
        wrong = [picture.transpose(t) for t in Image.Transpose] + [picture]
        assert not any(close_to(got, w) for w in wrong if w.tobytes() != upright.tobytes())


def test_deep_and_transparent_heics_come_as_8_bit_rgb(tmp_path):
    heif = pytest.importorskip("pillow_heif")
    deep = np.asarray(make_image(11, (96, 64)), dtype=np.uint16) * 257  # 16-bit levels
    heif.from_bytes(mode="RGB;16", size=(96, 64), data=deep.tobytes()).save(
        tmp_path / "deep.heic", quality=92
    )
    assert heif.open_heif(tmp_path / "deep.heic", convert_hdr_to_8bit=False).info["bit_depth"] > 8
    got = load_rgb(tmp_path / "deep.heic")
    assert got.dtype == np.uint8 and close_to(got, deep // 257)
    rgba = np.zeros((64, 96, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :48, 3] = 255  # left half opaque red, right half transparent
    got = load_rgb(save_heic(Image.fromarray(rgba), tmp_path / "alpha.heic"))
    assert close_to(got[:, :40], np.full((64, 40, 3), (200, 0, 0)))
    assert close_to(got[:, 56:], np.full((64, 40, 3), 255))  # transparent: white


def test_a_mixed_folder_is_indexed_and_a_heic_finds_itself(capsys, tmp_path, tiny_model):
    gallery = tmp_path / "photos"
    gallery.mkdir()
    for i in range(4):
        make_image(i).save(gallery / f"j{i}.jpg", quality=92)
        save_avif(make_image(10 + i), gallery / f"a{i}.avif")
        save_heic(make_image(20 + i), gallery / f"h{i}.HEIC")
    save_heic(make_image(30), gallery / "canon.hif")
    out = tmp_path / "index.dat"
    code, stdout, stderr = cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model)
    assert code == 0 and "13 images (13 analysed, 0 reused, 0 skipped)" in stdout, stderr
    assert sorted(store.load(out).paths) == sorted(p.name for p in gallery.iterdir())
    for name in ("h1.HEIC", "canon.hif", "a1.avif"):
        code, stdout, _ = cli(
            capsys, "query", out, gallery / name, "--no-verify", "--model", tiny_model, "--json"
        )
        hits = json.loads(stdout)  # (at 0 but for the search's float rounding, ~3e-4)
        assert code == 0 and hits[0]["path"] == name and hits[0]["distance"] < 1e-3


def test_without_the_codec_each_file_is_one_line_and_a_library_two(
    capsys, tmp_path, tiny_model, no_pillow_heif, monkeypatch
):
    gallery = tmp_path / "photos"
    gallery.mkdir()
    for i in range(3):
        make_image(i).save(gallery / f"j{i}.jpg", quality=92)
    # a few bytes of HEIC's header are what tells it (pillow-heif cannot write one here)
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    for i in range(6):
        (gallery / f"IMG_{i:04d}.HEIC").write_bytes(heic)
    monkeypatch.setattr(decode, "_pillow_reads_avif", lambda: False)  # a Pillow before 11.3
    save_avif(make_image(9), gallery / "one.avif")
    out = tmp_path / "index.dat"
    code, stdout, stderr = cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model)
    assert code == 0 and "3 images (3 analysed, 0 reused, 7 skipped)" in stdout
    said = [line for line in stderr.splitlines() if line.startswith("warning: ")]
    assert said == [
        f"warning: {gallery / 'IMG_0000.HEIC'}: {HEIC_LINE}",
        f"warning: {gallery / 'one.avif'}: AVIF picture: this Pillow cannot read AVIF "
        "(Pillow 11.3 or later reads it)",
        "warning: 5 more HEIC pictures skipped: reading them needs pillow-heif "
        "(pip install 'rtsearch[heic]')",
    ]


def test_lines_of_a_missing_codec_collapse_wherever_they_come_from():
    """Ray's workers send their lines as text: the driver collapses them as analyze does."""
    from rtsearch.decode import AVIF, HEIC, MissingCodec
    from rtsearch.extraction import Collapsed

    lines: list[str] = []
    said = Collapsed(lines.append)
    for line in [*(f"d/{i}.heic" for i in range(3)), "d/x.jpg", "d/a.avif", "d/b.avif"]:
        codec = HEIC if line.endswith(".heic") else AVIF if line.endswith(".avif") else None
        said(str(MissingCodec(line, codec)) if codec else f"{line}: empty file")
    said.close()
    assert lines == [
        f"d/0.heic: {HEIC_LINE}",
        "d/x.jpg: empty file",
        "d/a.avif: AVIF picture: this Pillow cannot read AVIF (Pillow 11.3 or later reads it)",
        "2 more HEIC pictures skipped: reading them needs pillow-heif "
        "(pip install 'rtsearch[heic]')",
        "1 more AVIF picture skipped: this Pillow cannot read AVIF (Pillow 11.3 or later reads "
        "them)",
    ]


def test_an_update_without_the_codec_keeps_the_heic_rows(capsys, tmp_path, tiny_model):
    """Unchanged files are not read again: the rows made where pillow-heif was stay."""
    gallery = tmp_path / "photos"
    gallery.mkdir()
    for i in range(3):
        make_image(i).save(gallery / f"j{i}.jpg", quality=92)
        save_heic(make_image(20 + i), gallery / f"h{i}.heic")
    out = tmp_path / "index.dat"
    assert cli(capsys, "analyze", gallery, "-o", out, "--model", tiny_model)[0] == 0
    before = store.load(out)
    save_heic(make_image(40), gallery / "new.heic")
    make_image(41).save(gallery / "new.jpg", quality=92)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "pillow_heif", None)
        decode._register_heif.cache_clear()
        try:
            code, stdout, stderr = cli(capsys, "update", out, gallery, "--model", tiny_model)
        finally:
            decode._register_heif.cache_clear()
    assert code == 0 and "7 images (1 added, 0 changed, 0 removed, 1 skipped)" in stdout
    assert f"{gallery / 'new.heic'}: {HEIC_LINE}" in stderr
    after = store.load(out)
    for name in ("h0.heic", "h1.heic", "h2.heic"):
        row = before.projected[before.paths.index(name)]
        assert np.array_equal(after.projected[after.paths.index(name)], row)
