"""Ctrl-C and SIGTERM reach a viewer whose window is minimised. Dear PyGui's frame then
waits in GLFW for the window's next X event (glfwWaitEvents), where no Python signal
handler runs: a SIGTERM was not taken until the window was shown again (a logout's
SIGKILL came first). Here the signal's byte, written by Python's C-level handler to a
wake-up pipe, wakes a thread that sends the viewer's own window an X event: the frame
returns, and the handler runs. X11 only (where `x_display` names a display)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
from collections.abc import Callable

from rtsearch.viewer.windows import own_windows
from rtsearch.x11 import libx11

CLIENT_MESSAGE = 33  # X.h


class _ClientMessage(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("serial", ctypes.c_ulong),
        ("send_event", ctypes.c_int),
        ("display", ctypes.c_void_p),
        ("window", ctypes.c_ulong),
        ("message_type", ctypes.c_ulong),
        ("format", ctypes.c_int),
        ("data", ctypes.c_long * 5),
    ]


class _Event(ctypes.Union):
    _fields_ = [("xclient", _ClientMessage), ("pad", ctypes.c_long * 24)]  # XEvent's size


def wake_on_signals() -> Callable[[], None]:
    """Set the wake-up pipe and its thread (from the main thread); returns what undoes it.
    Where there is no libX11 or no pipe to be had, nothing is set."""
    if libx11() is None or threading.current_thread() is not threading.main_thread():
        return lambda: None
    try:
        read, write = os.pipe()
    except OSError:
        return lambda: None
    os.set_blocking(write, False)
    before = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    threading.Thread(target=_wake, args=(read,), name="rtsearch-wakeup", daemon=True).start()

    def undo() -> None:
        signal.set_wakeup_fd(before)
        os.close(write)  # the thread reads the end of the pipe, and ends

    return undo


def _wake(read: int) -> None:
    try:
        while os.read(read, 64):
            with contextlib.suppress(Exception):  # a display gone: nothing to wake
                poke_own_windows()
    finally:
        os.close(read)


def poke_own_windows() -> int:
    """Send each window of this process an event of no meaning, on a connection of its
    own; returns how many were sent one."""
    x11 = libx11()
    if x11 is None:
        return 0
    display = x11.XOpenDisplay(None)
    if not display:
        return 0
    try:
        wake = x11.XInternAtom(display, b"RTSEARCH_WAKE", False)
        sent = 0
        for window in own_windows(x11, display):
            event = _Event()
            event.xclient = _ClientMessage(
                type=CLIENT_MESSAGE, window=window, message_type=wake, format=32
            )
            x11.XSendEvent(display, window, 0, 0, ctypes.byref(event))
            sent += 1
        x11.XFlush(display)
        return sent
    finally:
        x11.XCloseDisplay(display)
