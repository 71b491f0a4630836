"""What the clipboard holds, as something to search for: a picture (copied from a browser,
an image editor, a screenshot tool) or the name of a picture file (copied in a file
manager, or a path copied as text, from a shell too); a video file's name is played.

A picture is read through Pillow on Windows and macOS, and on Linux through ``wl-paste``
(Wayland) or ``xclip`` (X11), whichever is installed, each given a few seconds: a program
that owns the clipboard and does not answer would otherwise hold the caller for ever. The
text is read with the same programs on Linux, and given by the caller on Windows and macOS
(the viewer reads it through its window toolkit there).
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote, urlparse

from PIL import Image

from rtsearch.decode import RGBImage, image_rgb, is_image_file, load_rgb
from rtsearch.errors import RtsearchError, first_line
from rtsearch.sources import is_video_file, video_problem

HELPER_TIMEOUT_S = 3.0
PASTED = "the clipboard's picture"
NOTHING = "the clipboard holds no picture and names no picture file: copy one first"
NO_HELPER = (
    "reading the clipboard needs xclip (X11) or wl-paste (Wayland): sudo apt install xclip, "
    "or wl-clipboard"
)


class Pasted(NamedTuple):
    """A picture to search for, from the clipboard."""

    image: RGBImage  # reduced as the caller's min_size allows
    where: str  # "clipboard", or the name of the file named there
    size: tuple[int, int]  # (width, height) the picture came with
    file: Path | None = None  # the file named there (searched as it is stored: not trimmed)


def clipboard_query(
    text: str | None = None, min_size: tuple[int, int] | None = None
) -> Pasted | Path:
    """The picture the clipboard holds, or the one in the file it names; or the video file
    it names, to be played. ``text``: the clipboard's text if the caller has it;
    ``min_size`` (h, w): what the picture may be reduced to, no less (a 108-megapixel paste
    took seconds at full size, holding the interpreter lock for hundreds of ms at a time).
    Raises RtsearchError saying why there is nothing to search."""
    text = text if text is not None else _text()
    got = file_named(text)
    if got is None:
        got = _picture(min_size)
    if got is None:
        raise RtsearchError(_named_not_there(text) or NOTHING)
    if not isinstance(got, Path):
        return got
    if is_video_file(got):
        # refused as V refuses it, the source on show kept (a text file named .avi
        # replaced a playing video with an empty page)
        problem = video_problem(got)
        if problem:
            raise RtsearchError(f"{got}: {problem} (named on the clipboard)")
        return got
    image = load_rgb(got, min_size=min_size)
    return Pasted(image, got.name, _stored_size(got, image), got)


def _stored_size(path: Path, image: RGBImage) -> tuple[int, int]:
    """The (width, height) ``path`` holds (its header), else ``image``'s."""
    try:
        with Image.open(path) as img:
            return img.size
    except Exception:  # a format only a codec registered elsewhere reads
        return image.shape[1], image.shape[0]


def text_from_toolkit() -> bool:
    """Whether the caller should read the clipboard's text through its window toolkit:
    on Windows and macOS only. On X11, GLFW's read aborted the process when the clipboard
    held no text (a picture, or nothing: a C++ exception no Python code can catch) and
    waited for ever on a program that holds the clipboard without answering: Linux reads
    through a helper program, with a time limit, or not at all."""
    return sys.platform in ("win32", "darwin")


def file_named(text: str | None) -> Path | None:
    """The existing file a clipboard's text names: a path (quoted or not, ``~`` for home)
    or a ``file://`` URI, of its lines the first that names a picture file, else the first
    that names a file (a file manager's copy of several: GNOME's starts with
    ``x-special/nautilus-clipboard`` and ``copy``); None for other text."""
    if not text or len(text) > 1 << 20:
        return None
    named = [p for p in map(_named, text.strip().splitlines()) if p is not None]
    playable = (p for test in (is_image_file, is_video_file) for p in named if test(p))
    return next(playable, named[0] if named else None)


def _named_not_there(text: str | None) -> str:
    """Where the clipboard's text is one path (as ``_named`` reads one) of no file there:
    what is there instead, said ("copy one first" said nothing of a path mistyped, or of a
    folder copied); else ""."""
    lines = [line for line in (text or "").strip().splitlines() if not line.startswith("#")]
    path = _path_in(lines[0]) if len(lines) == 1 else None
    if path is None:
        return ""
    with contextlib.suppress(OSError):
        if path.is_dir():
            return f"{path}: is a folder, not a picture file (named on the clipboard)"
        if path.exists():
            return ""  # (a FIFO, a device: "names no picture file")
    return f"{path}: no such file (named on the clipboard)"


def _path_in(line: str) -> Path | None:
    """The absolute path one line of copied text is written as (quoted, ``~`` for home, a
    ``file://`` URI), there or not; None where it is no path."""
    line = line.strip()
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "'\"":
        line = line[1:-1]
    if line.startswith("file://"):
        uri = urlparse(line)
        if uri.netloc not in ("", "localhost", socket.gethostname()):
            return None
        line = unquote(uri.path)
        if sys.platform == "win32" and line[:1] == "/" and line[2:3] == ":":
            line = line[1:]  # file:///C:/x.png
    if not line or len(line) > 4096 or "\0" in line or "\n" in line:
        return None
    path = Path(os.path.expanduser(line))
    return path if path.is_absolute() else None


def _named(line: str) -> Path | None:
    """The existing file one line of copied text names, if it names one."""
    line = line.strip()
    if line.startswith("#"):  # a uri-list's comment
        return None
    copied = line
    path = _path_in(line)
    found = _file(str(path)) if path is not None else None
    if found is None and sys.platform != "win32" and any(c in copied for c in "\\'\""):
        # a path copied from a shell: /home/me/My\ Pictures/a.jpg, ~/'a b'.png, 'it'\''s.jpg'
        with contextlib.suppress(ValueError):  # (quotes that do not pair)
            words = shlex.split(copied)
            found = _file(words[0]) if len(words) == 1 else None
    return found


def _file(text: str) -> Path | None:
    """The existing file ``text`` names as an absolute path (``~`` for home)."""
    path = Path(os.path.expanduser(text))
    try:
        return path if path.is_absolute() and path.is_file() else None
    except OSError:  # a name too long for the system
        return None


def _picture(min_size: tuple[int, int] | None) -> Pasted | Path | None:
    """The picture on the clipboard, the file copied in Explorer (Windows), or None when it
    holds something else."""
    if sys.platform in ("win32", "darwin"):
        from PIL import ImageGrab

        try:
            grabbed = ImageGrab.grabclipboard()
        except Exception as exc:  # the platform's own call failed
            raise RtsearchError(f"cannot read the clipboard ({first_line(exc)})") from None
        if isinstance(grabbed, list):  # Windows: files copied in Explorer
            return file_named("\n".join(map(str, grabbed)))
        if grabbed is None:
            return None
        size = grabbed.size  # (before the decode, which may reduce it)
        return Pasted(image_rgb(grabbed, PASTED, min_size), "clipboard", size)
    return _helper_picture(min_size)


def _helper_picture(min_size: tuple[int, int] | None) -> Pasted | None:
    """The clipboard's picture through wl-paste or xclip: in the first picture type the
    clipboard offers (PNG if it can), asked for PNG where it does not list them (an old
    xclip holding the clipboard answers any type with its data: not a picture then)."""
    helper = _helper()
    if helper is None:
        raise RtsearchError(NO_HELPER)
    listing = _helper_output(
        ["wl-paste", "--list-types"]
        if helper == "wl-paste"
        else ["xclip", "-selection", "clipboard", "-target", "TARGETS", "-o"]
    )
    offered = [] if listing is None else listing.decode("ascii", "replace").split()
    images = [t for t in offered if t.startswith("image/")]
    if offered and not images:
        return None  # text, files, anything but a picture
    kind = "image/png" if "image/png" in images or not images else images[0]
    data = _helper_output(
        ["wl-paste", "--type", kind]
        if helper == "wl-paste"
        else ["xclip", "-selection", "clipboard", "-target", kind, "-o"]
    )
    if not data:
        return None
    try:
        pasted = Image.open(io.BytesIO(data))
    except Exception:  # (UnidentifiedImageError: Pillow's own line names a file object)
        if not images:
            return None  # asked blindly: whatever it holds is not a picture
        raise RtsearchError(f"{PASTED}: {kind} that Pillow cannot read") from None
    size = pasted.size  # (before the decode, which may reduce it)
    return Pasted(image_rgb(pasted, PASTED, min_size), "clipboard", size)


def _text() -> str | None:
    """The clipboard's text through the helper programs (None without one)."""
    helper = None if sys.platform in ("win32", "darwin") else _helper()
    if helper is None:
        return None
    args = ["wl-paste", "--no-newline"] if helper == "wl-paste" else [
        "xclip", "-selection", "clipboard", "-o",
    ]  # fmt: skip
    data = _helper_output(args)
    return None if data is None else data.decode("utf-8", "surrogateescape")


def _helper() -> str | None:
    """The program that reads this desktop's clipboard: wl-paste under Wayland (xclip
    through XWayland otherwise), xclip under X11."""
    wayland = bool(os.environ.get("WAYLAND_DISPLAY"))
    order = ("wl-paste", "xclip") if wayland else ("xclip",)
    return next((name for name in order if shutil.which(name)), None)


def _helper_output(args: list[str]) -> bytes | None:
    """What ``args`` prints, or None when the clipboard holds nothing of that kind."""
    try:
        run = subprocess.run(
            args, capture_output=True, timeout=HELPER_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise RtsearchError(
            f"the program holding the clipboard did not answer {args[0]} in "
            f"{HELPER_TIMEOUT_S:.0f} s"
        ) from None
    except OSError as exc:
        raise RtsearchError(f"cannot run {args[0]} ({exc.strerror})") from None
    if run.returncode != 0 or not run.stdout:
        # nothing copied, or not in this form: both helpers say so on stderr, in words
        # that vary by version ("target image/png not available", "No selection")
        return None
    return run.stdout
