"""Ctrl-C, SIGTERM and SIGHUP: a command stops cleanly on the first (``catch_interrupts``), at
once on a second; ``held()`` keeps the first from landing inside a write that must finish
(a save: the interrupt came out as "Exception ignored" inside h5py's cleanup, and the run
went on to exit 0), and delivers it after."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a service manager): stopped as cleanly as Ctrl-C."""


class HungUp(Terminated):
    """SIGHUP (the terminal closed, an ssh connection dropped): stopped as SIGTERM stops a
    command (it died at once, its work since the last checkpoint lost)."""


_holding = 0  # depth of held() on the main thread
_pending: int | None = None  # a signal that came while held


def _stop(signum: int) -> KeyboardInterrupt:
    if signum == _SIGHUP:
        return HungUp()
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _interrupted(signum, frame) -> None:
    """The first Ctrl-C (or SIGTERM) stops cleanly: running batches finish, checkpoints stay,
    temporary files are removed. A second one during that leaves at once: raising again
    would abandon threads still inside onnxruntime, and an interpreter that exits under them
    aborts ("terminate called without an active exception"). Writes are atomic, so nothing
    written is damaged. A hangup is no second one: a terminal closed sends it twice (the
    kernel, then the shell to its jobs), and the run then died with its last rows lost."""
    global _pending
    for sig in _DEFAULTS:
        if signal.getsignal(sig) is _interrupted:  # (one left ignored stays so)
            again = signal.SIG_IGN if sig == _SIGHUP else _interrupted_again
            signal.signal(sig, again)
    if _holding:
        _pending = signum  # raised when the write is done (held)
        return
    raise _stop(signum)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """A first Ctrl-C or SIGTERM meanwhile is raised after the block, not inside it (a
    second still leaves at once). Only on the main thread, where Python runs handlers: in
    another thread (the viewer's saves) it does nothing."""
    global _holding, _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _holding += 1
    try:
        yield
    finally:
        _holding -= 1
        signum, _pending = (_pending, None) if not _holding else (None, _pending)
        if signum is not None:
            raise _stop(signum)


def _interrupted_again(signum, frame) -> None:
    sys.stderr.write("rtsearch: interrupted again, stopping at once\n")
    sys.stderr.flush()
    os._exit(130)


_DEFAULTS = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
_SIGHUP = getattr(signal, "SIGHUP", None)  # (not on Windows)
if _SIGHUP is not None:
    _DEFAULTS[_SIGHUP] = signal.SIG_DFL


def catch_interrupts() -> Callable[[], None]:
    """Install the handlers for this command; returns what puts the previous ones back.

    Each signal is taken only while it has its default handler, each on its own: a command
    started in the background by a script (``cmd &``) has SIGINT ignored, and a ``kill``
    (SIGTERM) must still stop it cleanly (it died at once, leaving no checkpoint and its
    lock file)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in _DEFAULTS}
    taken = [sig for sig, handler in previous.items() if handler is _DEFAULTS[sig]]
    for sig in taken:
        signal.signal(sig, _interrupted)

    def restore() -> None:
        for sig in taken:
            signal.signal(sig, previous[sig])

    return restore


def ending(exc: BaseException) -> tuple[str, int] | None:
    """What a command prints and exits with when ``exc`` is, or came from, a Ctrl-C (130),
    SIGTERM (143) or SIGHUP (129): "interrupted", "terminated" or "hung up", then what the
    run kept if it said so (``KeyboardInterrupt("...")``: an analysis's checkpoints).
    Libraries may turn one that came while they were imported into their own error
    (onnxruntime raises ImportError "initialization failed"); the cause is followed. None
    when it is not one."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, KeyboardInterrupt):
            word, code = (
                ("hung up", 129) if isinstance(cause, HungUp)
                else ("terminated", 143) if isinstance(cause, Terminated)
                else ("interrupted", 130)
            )  # fmt: skip
            kept = cause.args[0] if cause.args and isinstance(cause.args[0], str) else ""
            return (f"{word}; {kept}" if kept else word), code
        cause = cause.__cause__ or cause.__context__
    return None
