"""libX11 through ctypes (no extra package), loaded once with the calls rtsearch makes
typed: the viewer's display check, the desktop mouse position, the wake-up of the
viewer's own window and its maximised state, the desktop's Xft.dpi, and the keys held."""

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
    # the viewer's own windows: woken, asked if maximised (rtsearch/viewer/windows.py)
    vp, ul, ulp = ctypes.c_void_p, ctypes.c_ulong, ulong_p
    x11.XInternAtom.restype = ul
    x11.XInternAtom.argtypes = [vp, ctypes.c_char_p, ctypes.c_int]
    x11.XQueryTree.restype = ctypes.c_int
    x11.XQueryTree.argtypes = [vp, ul, ulp, ulp, ctypes.POINTER(ulp), ctypes.POINTER(ctypes.c_uint)]
    x11.XFree.argtypes = [vp]
    x11.XGetWindowProperty.restype = ctypes.c_int
    x11.XGetWindowProperty.argtypes = [
        vp, ul, ul, ctypes.c_long, ctypes.c_long, ctypes.c_int, ul,
        ulp, int_p, ulp, ulp, ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte)),
    ]  # fmt: skip
    x11.XSendEvent.restype = ctypes.c_int
    x11.XSendEvent.argtypes = [vp, ul, ctypes.c_int, ctypes.c_long, vp]
    x11.XFlush.argtypes = [vp]
    # the desktop's Xft.dpi, for the viewer's scale (rtsearch/viewer/display.py)
    x11.XResourceManagerString.restype = vp
    x11.XResourceManagerString.argtypes = [vp]
    # the keys held down, as the keyboard's layout names them (rtsearch/viewer/layouts.py)
    x11.XQueryKeymap.argtypes = [vp, ctypes.c_char_p]
    x11.XkbGetState.argtypes = [vp, ctypes.c_uint, vp]
    x11.XkbKeycodeToKeysym.restype = ul
    x11.XkbKeycodeToKeysym.argtypes = [vp, ctypes.c_ubyte, ctypes.c_int, ctypes.c_int]
    x11.XKeysymToString.restype = ctypes.c_char_p
    x11.XKeysymToString.argtypes = [ul]
    return x11
