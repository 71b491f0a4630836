"""libX11 through ctypes (no extra package), loaded once with the calls rtsearch makes
typed: the viewer's display check and the desktop mouse position."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def libx11() -> ctypes.CDLL | None:
    """libX11, or None where it is not installed or cannot be loaded."""
    name = ctypes.util.find_library("X11")
    if name is None:
        return None
    try:
        x11 = ctypes.CDLL(name)
    except OSError:
        return None
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    x11.XDefaultRootWindow.restype = ctypes.c_ulong
    x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    ulong_p, int_p = ctypes.POINTER(ctypes.c_ulong), ctypes.POINTER(ctypes.c_int)
    x11.XQueryPointer.restype = ctypes.c_int
    x11.XQueryPointer.argtypes = [
        ctypes.c_void_p, ctypes.c_ulong, ulong_p, ulong_p,
        int_p, int_p, int_p, int_p, ctypes.POINTER(ctypes.c_uint),
    ]  # fmt: skip
    return x11
