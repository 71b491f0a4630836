"""The font the viewer draws its text in: a monospace font of the system's with glyphs
beyond ASCII (accented Latin, Greek, Cyrillic), so that file names show as they are.
Dear PyGui's built-in font has ASCII only: 'café.jpg' was drawn 'caf?.jpg'. At 13 px
DejaVu Sans Mono measures as the built-in font does (7 x 13 px a character), so the
layout is unchanged (it measures its text in the font drawn, whichever it is).
``RTSEARCH_FONT`` names a font file to take instead; with none found, the
built-in font draws as before."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from rtsearch.errors import warn

SIZE = 13  # pixels: the built-in font's height
# what a font file starts with: TrueType, OpenType (CFF), a TrueType collection, old Mac
MAGIC = (b"\x00\x01\x00\x00", b"OTTO", b"ttcf", b"true")
KNOWN = {
    "linux": (
        "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",  # Debian, Ubuntu
        "/usr/share/fonts/TTF/DejaVuSansMono.ttf",  # Arch
        "/usr/share/fonts/dejavu-sans-mono-fonts/DejaVuSansMono.ttf",  # Fedora
        "/usr/share/fonts/truetype/noto/NotoSansMono-Regular.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf",
    ),
    "win32": ("C:/Windows/Fonts/consola.ttf", "C:/Windows/Fonts/cour.ttf"),
    "darwin": ("/System/Library/Fonts/Menlo.ttc", "/System/Library/Fonts/Monaco.ttf"),
}


def find_font() -> Path | None:
    """``RTSEARCH_FONT`` (one that is not a font file is said, and passed over), else the
    system's monospace font for accented Latin, Greek and Cyrillic (a known file, else
    fontconfig's choice); None: the built-in font."""
    given = os.environ.get("RTSEARCH_FONT")
    why = given and _not_a_font(Path(given))
    if given and why is None:
        return Path(given)
    # a known file first: DejaVu Sans Mono measures as the built-in font does (Noto Sans
    # Mono, fontconfig's choice on some systems, draws 6 px a character, not 7); fontconfig
    # (a process started) only where none is there
    candidates = itertools.chain(KNOWN.get(_system(), ()), _fontconfig())
    found = next((Path(c) for c in candidates if _not_a_font(Path(c)) is None), None)
    if why:
        instead = found or "Dear PyGui's built-in font (ASCII only)"
        warn(f"RTSEARCH_FONT={given}: {why}; the text is drawn in {instead}")
    return found


def _system() -> str:
    return "linux" if sys.platform.startswith(("linux", "freebsd")) else sys.platform


def _fontconfig() -> Iterator[str]:
    """fontconfig's monospace font for é, Ω and Ж, where fontconfig is installed (asked
    when the first is taken from this)."""
    if shutil.which("fc-match") is None:
        return
    try:
        done = subprocess.run(
            ["fc-match", "--format=%{file}", "monospace:charset=e9 3a9 416"],
            capture_output=True, text=True, timeout=5,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return
    if done.returncode == 0 and done.stdout.strip():
        yield done.stdout.strip()


def _not_a_font(path: Path) -> str | None:
    """Why Dear PyGui could not take ``path`` as a font (it fails, or crashes, at the first
    frame on a file that is not one), or None."""
    if not path.is_file():  # (a FIFO is not opened: that would wait)
        return "not there" if not path.exists() else "not a file"
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None if head in MAGIC else "not a TrueType or OpenType font file"
