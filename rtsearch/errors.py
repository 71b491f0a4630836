"""The one exception type that reaches the user as a single line on stderr, and the
helpers its lines (and other messages) are written with."""

import shlex
import sys
from collections.abc import Callable
from pathlib import Path

Warn = Callable[[str], None]  # where a command's warnings go, one line each


class RtsearchError(Exception):
    """A problem with user input (a file, an argument): its message is the whole story."""


def require_folder(path: Path | str) -> Path:
    """``path`` as a Path if it is a folder; else the one-line reason: missing or not one."""
    path = Path(path)
    if not path.exists():
        raise RtsearchError(f"{path}: folder not found")
    if not path.is_dir():
        raise RtsearchError(f"{path}: not a folder")
    return path


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPES = {c: _NAMED.get(chr(c), f"\\x{c:02x}") for c in (*range(32), *range(127, 160))}


def printable(text: str) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\x1b``): a file name holding
    one must not split a message over two lines or send escape codes to the terminal."""
    return text.translate(_ESCAPES)


def command(*words: object) -> str:
    """A command to paste into a shell: each word quoted where it needs it (a folder with a
    space split in two), control characters escaped as ``printable`` does."""
    return printable(" ".join(shlex.quote(str(w)) for w in words))


def warn(message: str) -> None:
    """A warning on stderr from code that has no caller's ``warn`` to hand it to."""
    print(f"rtsearch: warning: {message}", file=sys.stderr, flush=True)


def count(n: int, noun: str) -> str:
    """``n`` and the noun, plural unless n is 1: "1 image", "0 images", "2 images"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def size_text(n: float) -> str:
    """Bytes as messages give them: "12.3 MiB", "40 KiB"."""
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
