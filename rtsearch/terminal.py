"""The one line a command redraws on a terminal (a progress bar): fitted to the terminal's
width as it is now, and cleared in a way the terminal understands."""

from __future__ import annotations

import os
import sys
from typing import TextIO


def width() -> int:
    """Columns of the terminal standard error is on (80 when it cannot be told)."""
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns or 80
    except (AttributeError, OSError, ValueError):
        return 80


def redraw(line: str, parts: tuple[str, ...] = ()) -> str:
    """What draws ``line`` over the one drawn before: ``line`` if it fits on one line of
    the terminal, else as many of ``parts`` (its figures, each whole: "ETA 00:00:12") as
    fit, else ``line`` cut to fit (a line longer than the terminal wraps, and each redraw
    left the wrapped part behind); then the rest of the old one blanked."""
    room = width() - 1  # (the last column would move the cursor to the next line)
    fitted = line if len(line) <= room else _fit(parts or (line,), max(room, 1))
    if os.environ.get("TERM") == "dumb":
        return "\r" + fitted.ljust(room)
    return "\r" + fitted + "\x1b[K"


def _fit(parts: tuple[str, ...], room: int) -> str:
    """The first of ``parts`` that fit in ``room`` together, or the first one cut (a figure
    cut short reads as another: "ETA 00:0")."""
    fitted = parts[0][:room]
    for part in parts[1:]:
        if len(fitted) + 1 + len(part) > room:
            break
        fitted += " " + part
    return fitted


def clear() -> str:
    """What takes the cursor to the start of the line and blanks it: an ANSI erase where
    the terminal knows one, spaces on a dumb terminal (TERM=dumb shows escape codes)."""
    if os.environ.get("TERM") == "dumb":
        return "\r" + " " * (width() - 1) + "\r"
    return "\r\x1b[K"


def in_foreground(stream: TextIO | None = None) -> bool:
    """Whether the terminal ``stream`` (stderr) writes to is this process's to draw on: a
    job stopped with Ctrl-Z and sent on with ``bg`` is not, and its redrawn line wiped the
    prompt and what the user typed after it. True where it cannot be told (not a terminal,
    Windows)."""
    try:
        fd = (stream or sys.stderr).fileno()
        return os.tcgetpgrp(fd) == os.getpgrp()
    except (AttributeError, OSError, ValueError):
        return True
