"""Whether the viewer has a display to open its window on, checked before GLFW is asked:
without one GLFW aborts the process with an assertion, and on a display where something
listens but no X server answers, opening it (GLFW, mss) waits for ever. The connection
that checks it is held, and asked what the desktop's scale is and whether the viewer's
window is maximised."""

from __future__ import annotations

import ctypes
import os
import socket
import sys
import threading
import time

from rtsearch.errors import RtsearchError
from rtsearch.viewer import layouts, windows
from rtsearch.x11 import libx11

XVFB_HINT = "run the viewer under xvfb-run -a -s '-screen 0 1440x900x24'"
REPLY_TIMEOUT_S = 5.0  # an X server answers a new connection in milliseconds, locally
_held: dict[str, int] = {}  # connections kept open, by display
_silent: set[str] = set()  # displays where a connection got no answer


def check_display(instead: str = XVFB_HINT) -> None:
    """Refuse, in one line, a display the viewer's window cannot open on; ``instead``: what
    to do on a machine without one."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        raise RtsearchError(
            f"no display to open the viewer on (DISPLAY is not set); on a headless machine "
            f"{instead}"
        )
    display = x_display()
    if display is not None and not answers(display):
        why = (
            f"something listens there, but no X server answered in {REPLY_TIMEOUT_S:.0f} s"
            if display in _silent
            else "no X server answers there"
        )
        raise RtsearchError(f"cannot open display {display!r} ({why}): check DISPLAY, or {instead}")


def x_display() -> str | None:
    """The X display the viewer's window would open on (Linux without Wayland), if any."""
    display = os.environ.get("DISPLAY")
    if sys.platform.startswith("linux") and display and not os.environ.get("WAYLAND_DISPLAY"):
        return display
    return None


def answers(display: str, *, hold: bool = True, patience_s: float = 5.0) -> bool:
    """Whether an X server accepts a connection on ``display`` (True when libX11 is not
    found to ask: GLFW then says it itself). With ``hold`` the connection is kept open, one
    per display: an X server resets when its last client leaves (Xvfb as tests and xvfb-run
    start it), and GLFW connecting meanwhile failed to make its window. The viewer holds one
    before it reads the screen size through a connection of its own (mss), whose closing
    made a lone Xvfb reset.

    A server turns clients away for a moment while it resets: after another client left
    (a script's earlier program, a test), 1 connection in 12 to 33 failed so here; a retry
    10-64 ms later worked; mss failed the same way. So a refusal is tried again while
    something still listens there (a killed server's socket file is not retried). A display
    whose listener does not answer within REPLY_TIMEOUT_S is not tried again."""
    x11 = libx11()
    if x11 is None:
        return True
    if hold and display in _held:
        return True
    if display in _silent:
        return False
    deadline = time.monotonic() + patience_s
    while not (conn := _open(x11, display)):
        if conn is None:
            _silent.add(display)
            return False
        if time.monotonic() >= deadline or not _x_listens(display):
            return False
        time.sleep(0.01)
    if hold:
        _held[display] = conn
    else:
        x11.XCloseDisplay(conn)
    return True


def x_resources(display: str | None) -> str | None:
    """The X server's resources (what ``xrdb -query`` lists: Xft.dpi, for the viewer's
    scale), read through the connection ``answers`` holds to ``display``; None where none
    is held (no X display, no libX11)."""
    held = _held_connection(display)
    if held is None:
        return None
    raw = held[0].XResourceManagerString(held[1])
    return ctypes.string_at(raw).decode("latin-1") if raw else ""


def maximized(display: str | None) -> bool | None:
    """Whether the viewer's window on ``display`` is maximised, asked through the
    connection ``answers`` holds; None where none is held (no X display, no libX11)."""
    held = _held_connection(display)
    return None if held is None else windows.maximized(*held)


def pointer_in_window(display: str | None, size: tuple[int, int]) -> tuple[int, int] | None:
    """Where the pointer is in the viewer's window (of client ``size``) on ``display``, in
    its pixels, asked through the connection ``answers`` holds; None where it is not in it,
    or none is held (no X display, no libX11)."""
    held = _held_connection(display)
    return None if held is None else windows.pointer(*held, size)


def keys_down(display: str | None, shifted: bool) -> set[str] | None:
    """The keys held down now on ``display``, named as its keyboard's layout has them
    (``plus``, ``question``: layouts.keysyms_down), asked through the connection
    ``answers`` holds; None where none is held (no X display, no libX11)."""
    held = _held_connection(display)
    return None if held is None else layouts.keysyms_down(*held, shifted)


def _held_connection(display: str | None) -> tuple[ctypes.CDLL, int] | None:
    """libX11 and the connection ``answers`` holds to ``display``, where it holds one."""
    x11, conn = libx11(), _held.get(display) if display is not None else None
    return None if x11 is None or conn is None else (x11, conn)


def _open(x11, display: str) -> int | None:
    """XOpenDisplay's connection, 0 when refused, or None when no answer came within
    REPLY_TIMEOUT_S: it waits for the server's reply with no time limit of its own, so it
    runs on a thread of its own (ctypes lets go of the interpreter lock meanwhile), left
    waiting in that case."""
    got: list[int] = []

    def connect() -> None:
        got.append(x11.XOpenDisplay(display.encode()) or 0)

    opener = threading.Thread(target=connect, name="x-open", daemon=True)
    opener.start()
    opener.join(REPLY_TIMEOUT_S)
    return got[0] if got else None


def release_display() -> None:
    """Close the connections ``check_display`` held (the viewer has closed)."""
    x11 = libx11()
    while x11 is not None and _held:
        conn = _held.popitem()[1]
        windows.forget(conn)
        x11.XCloseDisplay(conn)


def _x_listens(display: str) -> bool:
    """Whether something accepts connections where X clients look for ``display``'s
    server: its local socket (``:N``, ``unix:N``) or TCP port 6000+N (``host:N``)."""
    host, _, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not number.isdigit():
        return False
    if host in ("", "unix"):
        path = f"/tmp/.X11-unix/X{number}"
        # Linux's abstract name first, as libxcb tries it; then the socket file
        places = [(socket.AF_UNIX, "\0" + path)] if sys.platform == "linux" else []
        places.append((socket.AF_UNIX, path))
    else:
        places = [(socket.AF_INET, (host, 6000 + int(number)))]
    for family, address in places:
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                sock.connect(address)
            return True
        except OSError:
            continue
    return False
