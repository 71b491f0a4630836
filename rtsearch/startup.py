"""What a command puts right before it runs: file names read as the UTF-8 they are whatever
the locale says, and standard streams that are closed, full or gone kept from stopping the
work or mixing into the output."""

from __future__ import annotations

import errno
import os
import sys


def names_as_utf8() -> None:
    """Run again in Python's UTF-8 mode where the locale can decode no name but ASCII
    (``LC_ALL=C`` with ``PYTHONUTF8=0``, as cron and some services start programs): there,
    analyze and update took ``café.jpg`` for a name that is not UTF-8 and dropped its row,
    and query ended in a traceback. What is printed keeps the locale's encoding. A locale of
    another encoding (Latin-1) is left to decode names as that system's programs write them
    (in UTF-8 mode a Latin-1 ``café.jpg`` was refused, and its row dropped). Only for the
    program as started (``sys.orig_argv``), once, and not on Windows (names are Unicode)."""
    encoding = sys.getfilesystemencoding().lower().replace("-", "").replace("_", "")
    argv = getattr(sys, "orig_argv", None)
    if os.name != "posix" or encoding not in ("ascii", "ansix3.41968") or not argv:
        return
    if os.environ.get("PYTHONUTF8") == "1":  # `python -X utf8=0`: left as asked
        return
    env = dict(os.environ, PYTHONUTF8="1")
    stream = sys.stdout or sys.stderr
    if "PYTHONIOENCODING" not in env and stream is not None and stream.encoding:
        env["PYTHONIOENCODING"] = stream.encoding
    for out in (sys.stdout, sys.stderr):
        if out is not None:
            out.flush()
    try:
        os.execve(sys.executable, argv, env)
    except OSError:  # (no interpreter to run again: go on as we are)
        return


class Messages:
    """Standard error as the place for messages, and nothing more: a write that fails (closed
    with ``2>&-``, a full disk under ``2>>log``, a reader gone, a terminal hung up) stops the
    messages, never the work. Each had stopped an analysis without its save or checkpoint."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self.lost = stream is None

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                self._stream.write(text)
            except (OSError, ValueError):
                self.lost = True
        return len(text)

    def flush(self) -> None:
        if not self.lost:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self.lost = True

    def isatty(self) -> bool:
        try:
            return not self.lost and self._stream.isatty()
        except (OSError, ValueError):
            return False

    def __getattr__(self, name: str):
        if self._stream is None:
            raise AttributeError(name)
        return getattr(self._stream, name)


class ClosedOutput:
    """Standard output closed (``>&-``): every write fails as writing to a closed descriptor
    does, so the command says so and exits 1 (``info`` and ``analyze`` wrote nothing and
    exited 0; a query batch ended in a traceback)."""

    encoding = "utf-8"
    errors = "strict"

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "closed")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError(errno.EBADF, "closed")
