"""Where the mouse pointer is on the whole screen, for "search under the mouse".

Dear PyGui only reports the mouse inside its own window, so the desktop's position comes
from the platform: X11 through libX11 (ctypes, no extra package) or Windows through user32.
Elsewhere (Wayland without XWayland, macOS) ``available`` is False and the reason is in
``message``. Positions are physical screen pixels, as mss captures them.

One ``Pointer`` per thread: an X11 display connection must not be shared between threads.
"""

from __future__ import annotations

import ctypes
import os
import sys

from rtsearch.x11 import libx11


class Pointer:
    def __init__(self) -> None:
        self.message = ""
        self._x11 = None
        self._display = None
        self._root = 0
        if sys.platform == "win32":
            return
        if sys.platform == "darwin":  # (it said "DISPLAY is not set")
            self.message = "following the mouse works on Linux (X11) and Windows only"
            return
        if not os.environ.get("DISPLAY"):
            self.message = "following the mouse needs an X11 display (DISPLAY is not set)"
            return
        x11 = libx11()
        if x11 is None:
            self.message = "following the mouse needs libX11, which is not installed"
            return
        display = x11.XOpenDisplay(None)
        if not display:
            self.message = f"cannot open X display {os.environ.get('DISPLAY')!r}"
            return
        self._x11, self._display = x11, display
        self._root = x11.XDefaultRootWindow(display)

    @property
    def available(self) -> bool:
        return sys.platform == "win32" or self._display is not None

    def position(self) -> tuple[int, int] | None:
        """The pointer's screen position, or None when it cannot be read."""
        if sys.platform == "win32":
            point = (ctypes.c_long * 2)()
            if ctypes.windll.user32.GetCursorPos(point):  # type: ignore[attr-defined]
                return int(point[0]), int(point[1])
            return None
        if self._display is None:
            return None
        root, child = ctypes.c_ulong(), ctypes.c_ulong()
        rx, ry, wx, wy = (ctypes.c_int() for _ in range(4))
        mask = ctypes.c_uint()
        ok = self._x11.XQueryPointer(
            self._display, self._root, ctypes.byref(root), ctypes.byref(child),
            ctypes.byref(rx), ctypes.byref(ry), ctypes.byref(wx), ctypes.byref(wy),
            ctypes.byref(mask),
        )  # fmt: skip
        return (rx.value, ry.value) if ok else None  # 0: the pointer is on another screen

    def close(self) -> None:
        if self._display is not None:
            self._x11.XCloseDisplay(self._display)
            self._display = None
