"""What a key press typed, as the keyboard's own layout has it.

Dear PyGui names letters as the layout has them, and a little punctuation, but other keys
by their place on a US keyboard: the German '+' came as ']', the Swedish '+' as '-' (its
'-' too, so '+' asked for fewer results), the Spanish '?' as an apostrophe. On X11 the
keys held down as a press is handled are read from the server (XQueryKeymap) and named as
the layout in use names them, shifted or not (XkbKeycodeToKeysym); the viewer takes the
key typed from those (``typed``). A key let go before the frame handled it (a script's
press) keeps the name Dear PyGui gave it."""

from __future__ import annotations

import ctypes

XKB_USE_CORE_KBD = 0x0100
# keysyms of what the shortcuts take, by the names the shortcut tables use
TYPED = {
    "plus": "+",
    "KP_Add": "+",
    "equal": "=",
    "minus": "-",
    "KP_Subtract": "-",
    "question": "?",
    "slash": "/",
}
# keysyms of keys held with another: not what was typed
MODIFIERS = frozenset(
    f"{name}_{side}" for name in ("Shift", "Control", "Alt", "Meta", "Super", "Hyper")
    for side in "LR"
) | {"ISO_Level3_Shift", "ISO_Level5_Shift", "Mode_switch", "Caps_Lock", "Num_Lock"}  # fmt: skip


def keysyms_down(x11: ctypes.CDLL, conn: int, shifted: bool) -> set[str]:
    """The keys held down now but the modifiers, each named by its keysym in the group of
    the layout in use (``plus``, ``question``), at its shifted level where ``shifted``."""
    keys = ctypes.create_string_buffer(32)
    x11.XQueryKeymap(conn, keys)
    state = ctypes.create_string_buffer(32)  # XkbStateRec: its first byte, the group in use
    group = state.raw[0] if x11.XkbGetState(conn, XKB_USE_CORE_KBD, state) == 0 else 0
    names: set[str] = set()
    for code in range(8, 256):  # (X keycodes start at 8)
        if keys.raw[code // 8] & (1 << code % 8):
            sym = x11.XkbKeycodeToKeysym(conn, code, group, int(shifted))
            name = x11.XKeysymToString(sym) if sym else None
            if name:
                names.add(name.decode("latin-1"))
    return names - MODIFIERS


def typed(down: set[str]) -> str | None:
    """What the shortcut tables call the key in ``down`` (keysyms_down) they take, or None:
    none of them (Shift+'-', '_' on a US keyboard, is none), or two."""
    found = {TYPED[name] for name in down if name in TYPED}
    return found.pop() if len(found) == 1 else None
