"""How large the viewer draws its text and controls: 1 on an ordinary screen, 2 on a
HiDPI one whose desktop scales by 200%. Dear PyGui draws in screen pixels whatever the
desktop's scale, so on a 4K laptop set to 200% its 13 px text was 6.5 px as a user sees
it. The scale is ``--ui-scale``, else what the desktop says (the X server's Xft.dpi over
96, times GDK_SCALE or QT_SCALE_FACTOR), else 1; the viewer then draws its font at that size,
Dear PyGui's spacing, paddings and scrollbars, its own margins and the row and header
heights (the sliders stay in the sizes they have at 1) that much larger."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping

RANGE = (0.75, 3.0)
STEP = 0.25  # Ctrl++ and Ctrl+-
BASE_DPI = 96.0  # Xft.dpi of a desktop that does not scale
_XFT_DPI = re.compile(r"^Xft\.dpi:\s*([0-9.]+)\s*$", re.MULTILINE)

# Dear PyGui's (Dear ImGui's) sizes at scale 1, as (x, y) or one value: scaled by a theme
# (ui.scale_theme)
SIZES = {
    "WindowPadding": (8, 8),
    "FramePadding": (4, 3),
    "ItemSpacing": (8, 4),
    "ItemInnerSpacing": (4, 4),
    "CellPadding": (4, 2),
    "IndentSpacing": 21,
    "ScrollbarSize": 14,
    "GrabMinSize": 12,
}


def detect(environ: Mapping[str, str] | None = None, resources: str | None = None) -> float:
    """The desktop's scale, as GTK and Qt on X11 draw their text: Xft.dpi in the X
    server's ``resources`` over 96, times GDK_SCALE and GDK_DPI_SCALE (either), else
    times QT_SCALE_FACTOR (the common hand-made 200%, Xft.dpi 192 with GDK_SCALE=2 and
    GDK_DPI_SCALE=0.5, is 2); a value missing or nonsense counts as 1. Rounded to
    quarters, within RANGE."""
    env = os.environ if environ is None else environ
    found = _XFT_DPI.search(resources or "")
    dpi = (_number(found.group(1)) if found else None) or BASE_DPI
    gdk, gdk_text = _number(env.get("GDK_SCALE")), _number(env.get("GDK_DPI_SCALE"))
    if gdk is not None or gdk_text is not None:
        toolkit = (gdk or 1.0) * (gdk_text or 1.0)
    else:
        toolkit = _number(env.get("QT_SCALE_FACTOR")) or 1.0
    return fit(toolkit * dpi / BASE_DPI)


def fit(scale: float) -> float:
    """``scale`` to the nearest quarter within RANGE (HiDPI factors come in quarters)."""
    return min(max(round(scale * 4) / 4, RANGE[0]), RANGE[1])


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and 0 < value < math.inf else None  # (not nan)
