"""Hostile and odd image files, generated on the spot, for the reliability tests.

Each maker writes one file (or file-system object) into a folder and returns its path.
``ODD_BUT_VALID`` decode to a picture; ``BAD`` must be skipped with one warning each.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from fakes import make_image
from PIL import Image


def _jpeg_bytes(seed: int = 1, size: tuple[int, int] = (160, 120)) -> bytes:
    buf = io.BytesIO()
    make_image(seed, size).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _png_bytes(seed: int = 2, size: tuple[int, int] = (160, 120)) -> bytes:
    buf = io.BytesIO()
    make_image(seed, size).save(buf, "PNG")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def bomb_png_bytes(width: int = 30000, height: int = 30000) -> bytes:
    """A valid-looking PNG whose header claims width x height RGB pixels, with a tiny IDAT:
    a few hundred bytes on disk that would need 2.7 GB if anyone believed the header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = b"\x00" + b"\x00" * (3 * width)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(row, 9))
        + _chunk(b"IEND", b"")
    )


# ---------------------------------------------------------------- bad: must be skipped


def zero_byte(d: Path) -> Path:
    (p := d / "zero.jpg").write_bytes(b"")
    return p


def truncated_jpeg(d: Path) -> Path:
    data = _jpeg_bytes()
    (p := d / "truncated.jpg").write_bytes(data[: len(data) // 2])
    return p


def truncated_png(d: Path) -> Path:
    data = _png_bytes()
    (p := d / "truncated.png").write_bytes(data[: len(data) * 6 // 10])
    return p


def text_named_jpg(d: Path) -> Path:
    (p := d / "notes.jpg").write_text("this is not a picture\n" * 20)
    return p


def decompression_bomb(d: Path) -> Path:
    (p := d / "bomb.png").write_bytes(bomb_png_bytes())
    return p


def fifo_named_jpg(d: Path) -> Path:
    """Opening it would block forever: the scanner must not hand it to the decoder."""
    os.mkfifo(p := d / "pipe.jpg")
    return p


def self_symlink(d: Path) -> Path:
    os.symlink("loop.jpg", p := d / "loop.jpg")
    return p


def dangling_symlink(d: Path) -> Path:
    os.symlink("gone-away.jpg", p := d / "dangling.jpg")
    return p


def non_utf8_name(d: Path) -> Path:
    raw = os.path.join(os.fsencode(d), b"caf\xe9-latin1.jpg")
    with open(raw, "wb") as f:
        f.write(_jpeg_bytes(3))
    return Path(os.fsdecode(raw))


def unreadable(d: Path) -> Path:
    """Mode 000. Root reads it anyway unless CAP_DAC_OVERRIDE is dropped (see the tests)."""
    (p := d / "locked.jpg").write_bytes(_jpeg_bytes(4))
    p.chmod(0)
    return p


BAD: dict[str, Callable[[Path], Path]] = {
    "zero-byte": zero_byte,
    "truncated JPEG": truncated_jpeg,
    "truncated PNG": truncated_png,
    "text named .jpg": text_named_jpg,
    "decompression bomb 30000x30000": decompression_bomb,
    "FIFO named .jpg": fifo_named_jpg,
    "symlink loop to itself": self_symlink,
    "dangling symlink": dangling_symlink,
    "non-UTF-8 file name": non_utf8_name,
    "unreadable (mode 000)": unreadable,
}


# ---------------------------------------------------------------- odd but valid


def wrong_extension(d: Path) -> Path:
    """A PNG named .jpg: decoded by its content, not its name."""
    (p := d / "really-a-png.jpg").write_bytes(_png_bytes(5))
    return p


def cmyk_jpeg(d: Path) -> Path:
    make_image(6).convert("CMYK").save(p := d / "cmyk.jpg", "JPEG", quality=95)
    return p


def png_16bit(d: Path) -> Path:
    ramp = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (48, 1))
    Image.fromarray(ramp).save(p := d / "deep16.png")  # uint16 -> mode I;16
    return p


def palette_transparent(d: Path) -> Path:
    img = Image.new("P", (40, 30), 0)
    img.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    img.paste(1, (20, 0, 40, 30))  # right half: red; left half: index 0, transparent
    img.save(p := d / "palette-alpha.png", transparency=0)
    return p


def animated_gif(d: Path) -> Path:
    frames = [Image.new("RGB", (32, 32), c) for c in ((250, 0, 0), (0, 250, 0), (0, 0, 250))]
    frames[0].save(p := d / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    return p


def exif_rotated(d: Path) -> Path:
    """Stored 40 wide x 20 high, left half red, right half blue, EXIF orientation 6
    (display rotated 90 degrees clockwise): shown 20 wide x 40 high, red on top."""
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)
    arr[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(arr).save(p := d / "rotated.jpg", "JPEG", quality=95, exif=exif)
    return p


def one_pixel(d: Path) -> Path:
    Image.new("RGB", (1, 1), (10, 200, 30)).save(p := d / "dot.png")
    return p


def panorama(d: Path) -> Path:
    make_image(7, (24000, 40)).save(p := d / "panorama.jpg", "JPEG", quality=85)
    return p


def long_name(d: Path) -> Path:
    """255 bytes, the ext4 limit, with multi-byte characters."""
    stem = "é" * 125 + "x"  # 250 + 1 bytes
    (p := d / f"{stem}.jpg").write_bytes(_jpeg_bytes(8))
    assert len(p.name.encode()) == 255
    return p


def grayscale_with_alpha(d: Path) -> Path:
    make_image(9).convert("LA").save(p := d / "gray-alpha.png")
    return p


ODD_BUT_VALID: dict[str, Callable[[Path], Path]] = {
    "wrong extension (PNG named .jpg)": wrong_extension,
    "CMYK JPEG": cmyk_jpeg,
    "16-bit grayscale PNG": png_16bit,
    "palette with transparency": palette_transparent,
    "animated GIF": animated_gif,
    "EXIF-rotated JPEG": exif_rotated,
    "1x1 px": one_pixel,
    "panorama 24000x40": panorama,
    "255-byte file name": long_name,
    "grayscale + alpha": grayscale_with_alpha,
}
