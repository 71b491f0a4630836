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
from collections.abc import Callable, Iterator

from rtsearch.x11 import libx11

CLIENT_MESSAGE = 33  # X.h
MAX_DEPTH = 3  # the window under a window manager's frame, or two


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
    """Send each window of this process (by _NET_WM_PID) an event of no meaning on a
    connection of its own; returns how many were sent one."""
    x11 = libx11()
    if x11 is None:
        return 0
    display = x11.XOpenDisplay(None)
    if not display:
        return 0
    try:
        pid_atom = x11.XInternAtom(display, b"_NET_WM_PID", True)
        if not pid_atom:
            return 0
        wake = x11.XInternAtom(display, b"RTSEARCH_WAKE", False)
        sent = 0
        for window in _windows(x11, display, x11.XDefaultRootWindow(display), MAX_DEPTH):
            if _pid(x11, display, window, pid_atom) == os.getpid():
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


def _windows(x11, display: int, parent: int, depth: int) -> Iterator[int]:
    root, up = ctypes.c_ulong(), ctypes.c_ulong()
    children, count = ctypes.POINTER(ctypes.c_ulong)(), ctypes.c_uint()
    if not x11.XQueryTree(display, parent, ctypes.byref(root), ctypes.byref(up),
                          ctypes.byref(children), ctypes.byref(count)):  # fmt: skip
        return
    try:
        found = [children[i] for i in range(count.value)]
    finally:
        if children:
            x11.XFree(children)
    for window in found:
        yield window
        if depth > 1:
            yield from _windows(x11, display, window, depth - 1)


def _pid(x11, display: int, window: int, atom: int) -> int | None:
    kind, fmt = ctypes.c_ulong(), ctypes.c_int()
    items, after = ctypes.c_ulong(), ctypes.c_ulong()
    data = ctypes.POINTER(ctypes.c_ubyte)()
    done = x11.XGetWindowProperty(
        display, window, atom, 0, 1, False, 6,  # XA_CARDINAL
        ctypes.byref(kind), ctypes.byref(fmt), ctypes.byref(items), ctypes.byref(after),
        ctypes.byref(data),
    )  # fmt: skip
    try:
        if done != 0 or not data or fmt.value != 32 or items.value != 1:
            return None
        return ctypes.cast(data, ctypes.POINTER(ctypes.c_ulong))[0]
    finally:
        if data:
            x11.XFree(data)
