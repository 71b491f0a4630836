"""decode.load_rgb on every odd and hostile file: plain RGB out, or one RtsearchError line."""

from __future__ import annotations

import resource
import threading

import numpy as np
import pytest
from badimages import BAD, ODD_BUT_VALID, bomb_png_bytes
from fakes import make_image, sample_photos
from PIL import Image

from rtsearch.decode import _plain_jpeg, _to_rgb, load_rgb, resize_to
from rtsearch.errors import RtsearchError
from rtsearch.thumbs import fit

# Symlink/FIFO/name cases are the scanner's job (test_scan.py); the decoder sees real files.
# the FIFO too: a scan skips it, but a file replaced by one after its analysis reached the
# decoder (query's verification, the viewer's thumbnails), whose read waited for ever
DECODER_BAD = ["zero-byte", "truncated JPEG", "truncated PNG", "text named .jpg", "FIFO named .jpg"]


@pytest.mark.parametrize("case", sorted(ODD_BUT_VALID))
def test_odd_but_valid_files_decode_to_rgb(tmp_path, case):
    image = load_rgb(ODD_BUT_VALID[case](tmp_path))
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.flags.c_contiguous and min(image.shape[:2]) >= 1


@pytest.mark.parametrize("case", DECODER_BAD)
def test_bad_files_raise_one_line_naming_the_file(tmp_path, case):
    path = BAD[case](tmp_path)
    with pytest.raises(RtsearchError) as err:
        load_rgb(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message


def test_decompression_bomb_refused_without_allocating(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png_bytes())
    assert path.stat().st_size < 100_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(RtsearchError, match="too large"):
        load_rgb(path)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 200_000  # decoding it would take 2.7 GB


def test_bomb_refused_from_many_threads_at_once(tmp_path):
    """The guard must not depend on per-thread warning state (decoding runs on a pool)."""
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png_bytes(20000, 20000))  # 400 MP: between Pillow's two limits
    outcomes: list[str] = []

    def worker() -> None:
        try:
            load_rgb(path)
            outcomes.append("decoded")
        except RtsearchError as exc:
            outcomes.append("too large" if "too large" in str(exc) else str(exc))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == ["too large"] * 8


def test_exif_orientation_is_applied(tmp_path):
    image = load_rgb(ODD_BUT_VALID["EXIF-rotated JPEG"](tmp_path))
    assert image.shape == (40, 20, 3)  # stored 40 wide x 20 high, shown rotated
    top, bottom = image[:15].reshape(-1, 3).mean(0), image[25:].reshape(-1, 3).mean(0)
    assert top[0] > 200 and top[2] < 60  # red on top
    assert bottom[2] > 200 and bottom[0] < 60  # blue below


def test_animated_gif_gives_first_frame(tmp_path):
    image = load_rgb(ODD_BUT_VALID["animated GIF"](tmp_path))
    assert tuple(image[16, 16]) == (250, 0, 0)


def test_palette_transparency_becomes_white(tmp_path):
    image = load_rgb(ODD_BUT_VALID["palette with transparency"](tmp_path))
    assert tuple(image[5, 5]) == (255, 255, 255)
    assert tuple(image[5, 35]) == (200, 30, 30)


def test_16_bit_keeps_its_range(tmp_path):
    image = load_rgb(ODD_BUT_VALID["16-bit grayscale PNG"](tmp_path))
    row = image[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255 and np.all(np.diff(row) >= 0)


def test_cmyk_colours_survive(tmp_path):
    expected = np.asarray(make_image(6).convert("CMYK").convert("RGB"), dtype=float)
    image = load_rgb(ODD_BUT_VALID["CMYK JPEG"](tmp_path)).astype(float)
    assert image.shape == expected.shape and np.abs(image - expected).mean() < 12


def test_one_pixel_and_panorama_fit_the_model_input(tmp_path):
    dot = load_rgb(ODD_BUT_VALID["1x1 px"](tmp_path))
    assert dot.shape == (1, 1, 3) and resize_to(dot, (32, 32)).shape == (32, 32, 3)
    pano = load_rgb(ODD_BUT_VALID["panorama 24000x40"](tmp_path), min_size=(32, 32))
    assert pano.shape[1] / pano.shape[0] > 100
    assert resize_to(pano, (32, 32)).shape == (32, 32, 3)
    assert fit(pano, (100, 100)).shape[1] == 100  # as a result's picture


@pytest.mark.parametrize("shape", [(240, 320), (448, 600), (1440, 2560)])
def test_resize_stays_close_to_the_area_filter(shape):
    """The fast paths (bilinear under 2x, bilinear + whole-factor area above) look like the
    plain area filter on a photograph: under 1.5 grey levels apart on average (nearest
    neighbour is ~7 apart, plain bilinear from 2560x1440 ~2.4)."""
    import cv2

    photo = sample_photos()[0].convert("RGB").resize((shape[1], shape[0]))
    image = np.asarray(photo)
    fast = resize_to(image, (224, 224)).astype(np.float32)
    area = cv2.resize(image, (224, 224), interpolation=cv2.INTER_AREA).astype(np.float32)
    assert fast.shape == (224, 224, 3)
    assert np.abs(fast - area).mean() < 1.5


def _pillow_rgb(path, min_size):
    with Image.open(path) as img:
        return _to_rgb(img, path, min_size)


def _opencv_rgb(path, min_size):
    with open(path, "rb") as f:
        return _plain_jpeg(f, path, min_size)


JPEG_VARIANTS = {
    "baseline 4:2:0": {},
    "4:4:4": {"subsampling": 0},
    "4:2:2": {"subsampling": 1},
    "progressive": {"progressive": True},
    "optimised, restart markers": {"optimize": True, "restart_marker_blocks": 4},
    "RGB, not YCbCr (Adobe marker)": {"keep_rgb": True},
}


@pytest.mark.parametrize(
    ("variant", "orientation"),
    [("baseline 4:2:0", o) for o in range(1, 9)]
    + [(v, 6) for v in sorted(JPEG_VARIANTS) if v != "baseline 4:2:0"],
)
def test_plain_jpegs_decode_as_pillow_does(tmp_path, variant, orientation):
    """The OpenCV path (no interpreter lock) gives Pillow's pixels exactly: every EXIF
    orientation, chroma layout and coding, at full, 1/2, 1/4 and 1/8 scale, odd sizes."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.jpg"
    photo = sample_photos()[orientation % 2].convert("RGB").resize((977, 647))
    photo.save(path, "JPEG", quality=88, exif=exif, **JPEG_VARIANTS[variant])
    for min_size, scale in ((None, 1), ((300, 300), 2), ((150, 100), 4), ((64, 64), 8)):
        fast = _opencv_rgb(path, min_size)
        assert fast is not None
        reference = _pillow_rgb(path, min_size)
        assert max(fast.shape) == -(-977 // scale) and fast.flags.c_contiguous
        assert np.array_equal(fast, reference), (variant, orientation, min_size)
        assert np.array_equal(load_rgb(path, min_size), reference)


def test_grey_jpeg_decodes_as_pillow_does(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "grey.jpg"
    grey = sample_photos()[0].convert("L").resize((643, 481))
    grey.save(path, "JPEG", quality=90, exif=exif)
    fast = _opencv_rgb(path, (224, 224))
    assert fast is not None and fast.shape == (322, 241, 3)
    assert np.array_equal(fast, _pillow_rgb(path, (224, 224)))


def test_trailing_bytes_after_the_image_change_nothing(tmp_path):
    path = tmp_path / "trailer.jpg"
    sample_photos()[1].convert("RGB").resize((643, 481)).save(path, "JPEG", quality=90)
    clean = load_rgb(path, (224, 224))
    path.write_bytes(path.read_bytes() + b"camera trailer " * 200)
    fast = _opencv_rgb(path, (224, 224))
    assert fast is not None and np.array_equal(fast, clean)


@pytest.mark.parametrize("case", ["CMYK JPEG", "wrong extension (PNG named .jpg)"])
def test_other_images_go_to_pillow(tmp_path, case):
    assert _opencv_rgb(ODD_BUT_VALID[case](tmp_path), (224, 224)) is None


def test_broken_jpegs_get_pillows_error(tmp_path):
    path = BAD["truncated JPEG"](tmp_path)
    assert _opencv_rgb(path, (224, 224)) is None
    with pytest.raises(RtsearchError, match="truncated"):
        load_rgb(path, (224, 224))


def test_damaged_jpeg_still_decodes(tmp_path):
    """Scan data overwritten mid-file: libjpeg recovers at the next restart or fills in grey,
    as Pillow did, so the picture is still indexed (and looks like the rest of it)."""
    path = tmp_path / "damaged.jpg"
    photo = sample_photos()[0].convert("RGB").resize((640, 480))
    photo.save(path, "JPEG", quality=90)
    data = bytearray(path.read_bytes())
    middle = len(data) * 3 // 4
    data[middle : middle + 64] = b"\x13" * 64
    path.write_bytes(bytes(data))
    image = load_rgb(path, (224, 224))
    assert image.shape == (240, 320, 3)
    clean = np.asarray(photo.resize((320, 240))).astype(float)
    assert np.abs(image[:80] - clean[:80]).mean() < 8  # the part before the damage
    assert np.abs(image[-40:] - clean[-40:]).mean() > 2 * np.abs(image[:80] - clean[:80]).mean()


def test_jpeg_bomb_refused_from_its_header(tmp_path):
    """A 60000 x 60000 frame header and no image data behind it: refused before decoding."""
    path = tmp_path / "bomb.jpg"
    sof = b"\xff\xc0\x00\x11\x08" + (60000).to_bytes(2, "big") * 2 + b"\x03" + b"\x01\x22\x00" * 3
    path.write_bytes(b"\xff\xd8" + sof + b"\xff\xd9")
    with pytest.raises(RtsearchError, match=r"bomb\.jpg: image too large \(60000x60000\)"):
        load_rgb(path, (224, 224))


def test_huge_jpeg_decodes_reduced(tmp_path):
    path = tmp_path / "big.jpg"
    make_image(11, (4000, 3000)).save(path, quality=90)
    image = load_rgb(path, min_size=(224, 224))
    assert min(image.shape[:2]) >= 224 and image.shape[1] <= 1000  # 1/4 or 1/8 scale


def test_missing_and_directory(tmp_path):
    with pytest.raises(RtsearchError, match=r"nope\.jpg: file not found$"):
        load_rgb(tmp_path / "nope.jpg")
    (tmp_path / "dir.jpg").mkdir()
    with pytest.raises(RtsearchError, match=r"dir\.jpg: is a directory$"):
        load_rgb(tmp_path / "dir.jpg")
    with pytest.raises(RtsearchError, match=r"pipe\.jpg: not a regular file$"):
        load_rgb(BAD["FIFO named .jpg"](tmp_path))
    (tmp_path / "zero.jpg").symlink_to("/dev/zero")
    with pytest.raises(RtsearchError, match=r"zero\.jpg: not a regular file$"):
        load_rgb(tmp_path / "zero.jpg")


def test_permission_denied_is_one_line(tmp_path, monkeypatch):
    """As root a mode-000 file is still readable, so the denial is injected here; the
    end-to-end test in test_reliability.py drops CAP_DAC_OVERRIDE to make it real."""
    path = tmp_path / "locked.jpg"
    make_image(1).save(path)

    def deny(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("rtsearch.decode._open_regular", deny)
    with pytest.raises(RtsearchError, match=r"locked.jpg: permission denied$"):
        load_rgb(path)


def test_float_pictures_with_nan_or_inf_decode_quietly_or_are_refused(tmp_path, recwarn):
    arr = np.linspace(0.0, 1.0, 64 * 48, dtype=np.float32).reshape(48, 64)
    arr[5, :] = np.nan
    arr[6, :3] = np.inf
    arr[7, :3] = -np.inf
    Image.fromarray(arr).save(tmp_path / "odd.png", format="TIFF")
    rgb = load_rgb(tmp_path / "odd.png")
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
    assert rgb[5].max() == 0 and rgb[6, :3].min() == 255 and rgb[7, :3].max() == 0
    assert rgb[-1, -1, 0] == 255 and not [w for w in recwarn if "invalid value" in str(w.message)]
    Image.fromarray(np.full((8, 8), np.nan, np.float32)).save(tmp_path / "nan.png", format="TIFF")
    with pytest.raises(RtsearchError, match=r"nan\.png: cannot decode image \(no finite pixel"):
        load_rgb(tmp_path / "nan.png")


def test_large_pngs_take_bounded_memory_however_many_threads_decode(tmp_path):
    """A 13000x13000 RGBA PNG of 3 MB passed the pixel limit and took 4.3 GB to decode
    (full-size copies for the white background, the composite, RGB, numpy), and analysis
    decodes one per core at once. Now large ones are reduced as soon as they are decoded,
    two at a time: 4 threads on a 6000x6000 RGBA PNG peaked at 3.3 GB, now under 1 GB."""
    import subprocess
    import sys

    rgba = np.zeros((6000, 6000, 4), np.uint8)
    rgba[..., 0], rgba[::2, :, 3] = 200, 255  # red lines on transparency
    path = tmp_path / "scan.png"
    Image.fromarray(rgba).save(path)
    del rgba
    code = (
        "import resource, sys\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "from rtsearch.decode import load_rgb\n"
        "with ThreadPoolExecutor(4) as pool:\n"
        f"    shapes = list(pool.map(lambda _: load_rgb({str(path)!r}, (224, 224)), range(4)))\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, shapes[0].shape)\n"
        "print(int(shapes[0][3, 5, 0]), int(shapes[0][3, 5, 1]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    (peak, *shape), (red, green) = (line.split(" ", 1) for line in out.stdout.splitlines())
    assert int(peak) < 1024, out.stdout
    assert shape == ["(231, 231, 3)"]  # 6000 // 26: never below the size asked for
    # every other line opaque red, the rest transparent (white): averaged premultiplied
    assert abs(int(red) - 227.5) <= 1 and abs(int(green) - 127.5) <= 1


def test_videos_are_told_by_their_first_bytes(tmp_path):
    """A video that no picture reader knows is named as one ("not an image file (unknown
    format)" said nothing of what it was), whatever its name; pictures and other files are
    not taken for videos."""
    import cv2

    from rtsearch.decode import video_kind

    made = {}
    for name, fourcc, kind in (
        ("a.avi", "MJPG", "an AVI"),
        ("a.mp4", "mp4v", "an MP4 or QuickTime"),
        ("a.mov", "mp4v", "an MP4 or QuickTime"),
        ("a.mkv", "MJPG", "a Matroska or WebM"),
        ("a.wmv", "WMV2", "a Windows Media"),
    ):
        writer = cv2.VideoWriter(str(tmp_path / name), cv2.VideoWriter_fourcc(*fourcc), 25,
                                 (64, 48))  # fmt: skip
        for i in range(3):
            writer.write(np.full((48, 64, 3), i * 60, np.uint8))
        writer.release()
        made[name] = kind
    for name, kind in made.items():
        assert video_kind((tmp_path / name).read_bytes()[:400]) == kind, name
    ts = b"".join(b"\x47" + bytes(187) for _ in range(3))
    assert video_kind(ts) == "an MPEG-TS"
    assert video_kind(b"\x00\x00\x01\xba" + bytes(20)) == "an MPEG"
    for other in (b"GIF89a" + bytes(400), b"\x00\x00\x00\x18ftypheic" + bytes(400),
                  b"\x00\x00\x00\x18ftypM4A " + bytes(400), b"not a picture"):  # fmt: skip
        assert video_kind(other) is None
    (tmp_path / "a.avi").rename(tmp_path / "clip.png")
    with pytest.raises(RtsearchError, match=r"clip.png: not an image file \(an AVI video\)$"):
        load_rgb(tmp_path / "clip.png")
