"""The viewer's own X11 windows, found by _NET_WM_PID under the root (a window manager's
frames between): woken on a signal (wakeup.py), asked whether they are maximised, which
the viewer keeps for the next run (Dear PyGui can maximise a window but cannot say whether
one is), and where the pointer is in them (Dear PyGui forgets it when the window loses the
focus, until the pointer moves)."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator

MAX_DEPTH = 3  # the window under a window manager's frame, or two
XA_ATOM, XA_CARDINAL = 4, 6  # Xatom.h
MAXIMIZED = (b"_NET_WM_STATE_MAXIMIZED_VERT", b"_NET_WM_STATE_MAXIMIZED_HORZ")

SEARCHES = 5  # walks of the window tree for a window not found, then no more (each walk is
# a round trip to the X server for every window on a busy desktop)
_found: dict[int, list[int]] = {}  # this process's windows, by connection
_searched: dict[int, int] = {}  # walks made without finding them, by connection


def own_windows(x11, conn: int) -> list[int]:
    """The windows of this process on the connection ``conn``'s display."""
    pid_atom = x11.XInternAtom(conn, b"_NET_WM_PID", True)
    if not pid_atom:  # no client has set it: no window manager, or no window yet
        return []
    root, me = x11.XDefaultRootWindow(conn), [os.getpid()]
    return [
        window
        for window in _windows(x11, conn, root, MAX_DEPTH)
        if _property(x11, conn, window, pid_atom, XA_CARDINAL, 1) == me
    ]


def maximized(x11, conn: int) -> bool:
    """Whether a window of this process is maximised (its _NET_WM_STATE, as a window
    manager sets it)."""
    windows = _remembered(x11, conn)
    state = x11.XInternAtom(conn, b"_NET_WM_STATE", True)
    both = {x11.XInternAtom(conn, name, True) for name in MAXIMIZED}
    if not state or 0 in both:  # never named on this display: nothing has that state
        return False
    return any(both <= set(_property(x11, conn, w, state, XA_ATOM, 32)) for w in windows)


def pointer(x11, conn: int, size: tuple[int, int]) -> tuple[int, int] | None:
    """Where the pointer is in this process's window of ``size`` (width, height: the
    viewport's client area), in its pixels; None when it is in none of them (or on
    another screen)."""
    child, root = ctypes.c_ulong(), ctypes.c_ulong()
    rx, ry, x, y = (ctypes.c_int() for _ in range(4))
    mask = ctypes.c_uint()
    for window in _remembered(x11, conn):
        if not x11.XQueryPointer(
            conn, window, ctypes.byref(root), ctypes.byref(child), ctypes.byref(rx),
            ctypes.byref(ry), ctypes.byref(x), ctypes.byref(y), ctypes.byref(mask),
        ):  # fmt: skip
            return None  # on another screen
        if 0 <= x.value < size[0] and 0 <= y.value < size[1]:
            return x.value, y.value
    return None


def _remembered(x11, conn: int) -> list[int]:
    """This process's windows: looked for until they are there (SEARCHES times at most),
    then remembered."""
    windows = _found.get(conn, [])
    if not windows and _searched.get(conn, 0) < SEARCHES:
        windows = _found[conn] = own_windows(x11, conn)
        _searched[conn] = _searched.get(conn, 0) + (not windows)
    return windows


def forget(conn: int) -> None:
    """The connection ``conn`` is closing: the windows found through it are forgotten."""
    _found.pop(conn, None)
    _searched.pop(conn, None)


def _windows(x11, conn: int, parent: int, depth: int) -> Iterator[int]:
    root, up = ctypes.c_ulong(), ctypes.c_ulong()
    children, count = ctypes.POINTER(ctypes.c_ulong)(), ctypes.c_uint()
    if not x11.XQueryTree(conn, parent, ctypes.byref(root), ctypes.byref(up),
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
            yield from _windows(x11, conn, window, depth - 1)


def _property(x11, conn: int, window: int, atom: int, kind: int, most: int) -> list[int]:
    """``window``'s property ``atom`` of 32-bit items of type ``kind`` (at most ``most``);
    [] where it has none, or of another type."""
    got, fmt = ctypes.c_ulong(), ctypes.c_int()
    items, after = ctypes.c_ulong(), ctypes.c_ulong()
    data = ctypes.POINTER(ctypes.c_ubyte)()
    done = x11.XGetWindowProperty(
        conn, window, atom, 0, most, False, kind,
        ctypes.byref(got), ctypes.byref(fmt), ctypes.byref(items), ctypes.byref(after),
        ctypes.byref(data),
    )  # fmt: skip
    try:
        if done != 0 or not data or fmt.value != 32 or got.value != kind:
            return []
        # format 32 comes as C longs, whatever their size
        return list(ctypes.cast(data, ctypes.POINTER(ctypes.c_ulong))[: items.value])
    finally:
        if data:
            x11.XFree(data)
