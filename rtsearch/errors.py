"""The one exception type that reaches the user as a single line on stderr, and the
helpers its lines (and other messages) are written with."""

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

Warn = Callable[[str], None]  # where a command's warnings go, one line each

WINDOWS = os.name == "nt"


class RtsearchError(Exception):
    """A problem with user input (a file, an argument): its message is the whole story."""


class Problem(str):
    """A message telling of something gone wrong (a file that cannot be read, a camera
    lost, a task that failed), as against one that reports or guides: the viewer draws it
    in its problem colour. Text made from one (an f-string, a join) is a plain message
    again, unless wrapped anew."""

    __slots__ = ()


def joined(*parts: str) -> str:
    """``parts`` said as one message, "; " between those not empty: a Problem when one is."""
    text = "; ".join(p for p in parts if p)
    return Problem(text) if any(isinstance(p, Problem) for p in parts) else text


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


# invisible characters that reorder or hide text (a name "evil\u202egnp.jpg" showed as
# "evilgpj.png"), and the bytes of a name that is not UTF-8 (os.fsdecode's surrogates)
_HIDDEN = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\udc80-\udcff]")


def printable(text: str) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\x1b``): a file name holding
    one must not split a message over two lines or send escape codes to the terminal; nor
    may invisible ones reorder it (``\\u202e``), nor a name's stray bytes go out raw."""
    return _HIDDEN.sub(_escaped, text.translate(_ESCAPES))


def stray_bytes_escaped(text: str) -> str:
    """``text`` with only a name's bytes that are not UTF-8 (os.fsdecode's surrogates)
    escaped as ``printable`` escapes them, its lines kept: for text that goes where it
    must be UTF-8 (the viewer's)."""
    return _STRAY.sub(_escaped, text)


_STRAY = re.compile("[\ud800-\udfff]")


def _escaped(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def command(*words: object) -> str:
    """A command to paste into a shell: each word quoted where it needs it (a folder with a
    space split in two), control characters escaped as ``printable`` does; a path starting
    with "-" as ``./-x`` (``-idx.dat`` was read as an option). On Windows in double quotes,
    as cmd.exe and PowerShell both take them (a POSIX shell's single quotes stayed part of
    the argument in cmd.exe)."""
    texts = [_word(w) for w in words]
    line = subprocess.list2cmdline(texts) if WINDOWS else " ".join(map(shlex.quote, texts))
    return printable(line)


def _word(word: object) -> str:
    text = str(word)
    return f"./{text}" if isinstance(word, Path) and text.startswith("-") else text


def warn(message: str) -> None:
    """A warning on stderr from code that has no caller's ``warn`` to hand it to."""
    print(printable(f"warning: {message}"), file=sys.stderr, flush=True)


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


def system_error(exc: OSError | MemoryError) -> str:
    """An error of the system's that reached the command, as one line: the file and the
    reason (`priv/idx.dat: Permission denied`), what it was short of."""
    if isinstance(exc, MemoryError):
        said = f" ({first_line(exc)})" if str(exc) else ""
        return f"out of memory{said}; check this process's limit (ulimit -v)"
    reason = exc.strerror or first_line(exc)
    if exc.filename is None or not os.path.isabs(os.fsdecode(exc.filename)):
        try:
            os.getcwd()
        except OSError:
            return (
                f"the current folder is gone (deleted or moved: {reason}); cd into another, "
                "or give full paths"
            )
    if exc.filename is None:
        return reason
    named = os.fsdecode(exc.filename)
    if exc.filename2 is not None:
        named += f" -> {os.fsdecode(exc.filename2)}"
    return f"{named}: {reason}"
