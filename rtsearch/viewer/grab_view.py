"""Drawing the grab mode: the screen preview, the region on it with its dimmed
surroundings and corner handles, and the hint above (geometry in grab_region)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dearpygui.dearpygui as dpg

from rtsearch.viewer.textures import edge_uv
from rtsearch.viewer.wrap import wrap_words

if TYPE_CHECKING:
    from rtsearch.viewer.app import ViewerApp

GRAB_BORDER = (255, 210, 0, 255)
MONITOR_EDGE = (90, 170, 255, 220)  # each monitor's outline, on a desktop of several
MONITORS_DRAWN = 8
HINT_SIZE = 16  # the grab mode's hint: font size (also its line height) and top
HINT_TOP = 4
GRAB_HELP = (
    "Drag it or a corner (arrow keys: move it, Shift+arrows: size it, with Ctrl: a pixel); "
    "G/S/Enter: use it, M: under the mouse, Esc: cancel."
)
OVERLAP_NOTE = "  (overlaps this window: it would search for itself)"
_hint_rows: dict[tuple[float, int], int] = {}  # (width for it, font size) -> rows kept


def add_items(app: ViewerApp) -> dict:
    """The grab mode's draw items, in the draw layer being built: the dimmed surroundings,
    the region's border and corner handles, and the hint. The preview's image goes under
    them while the mode is on (add_preview)."""
    items = {}
    for side in ("top", "bottom", "left", "right"):
        items[side] = dpg.draw_rectangle((0, 0), (1, 1), fill=(0, 0, 0, 160), color=(0, 0, 0, 0))
    for i in range(MONITORS_DRAWN):  # (over the dimming, under the region's border)
        items[f"monitor{i}"] = dpg.draw_rectangle((0, 0), (1, 1), color=MONITOR_EDGE, show=False)
    items["border"] = app.sized(dpg.draw_rectangle((0, 0), (1, 1), color=GRAB_BORDER), thickness=2)
    for corner in ("tl", "br"):
        items[corner] = dpg.draw_rectangle((0, 0), (1, 1), fill=GRAB_BORDER, color=GRAB_BORDER)
    items["hint"] = app.sized(dpg.draw_text((0, 0), "", color=GRAB_BORDER), size=HINT_SIZE)
    return items


def add_preview(app: ViewerApp) -> None:
    """The screen preview's draw item, under the dimming rectangles."""
    items = app.ids.grab
    items["preview"] = dpg.draw_image(
        app.preview_tex.tag, (0, 0), (1, 1), parent=app.ids.grab_layer, before=items["top"]
    )


def remove_preview(app: ViewerApp) -> None:
    dpg.delete_item(app.ids.grab.pop("preview"))


def grab_preview(app: ViewerApp):
    """Where the screen preview goes on the canvas: under the room kept for the hint, as
    large as fits."""
    w, h = app.canvas_size
    size, pad = app.px(HINT_SIZE), app.px(8)
    top = app.px(HINT_TOP) + hint_rows(w - app.px(16), size) * size + pad
    return app.region.fit_preview(pad, top, w - 2 * pad, h - top - pad)


def grab_hint(app: ViewerApp) -> list[str]:
    """The grab mode's instructions, in as many lines as the canvas's width needs."""
    bx, by, bw, bh = app.region.box
    hint = f"{GRAB_HELP}  {bw}x{bh} at {bx},{by}"
    if app.region.overlaps(viewport_box()):
        hint += OVERLAP_NOTE
    return wrap_words(hint, app.canvas_size[0] - app.px(16), app.px(HINT_SIZE))


def hint_rows(room: float, size: int) -> int:
    """Rows kept above the preview for the hint: as many as its longest form takes (the
    widest figures and the overlap note), so the preview does not move under the pointer
    when the note comes or goes in the middle of a drag."""
    if (room, size) not in _hint_rows:
        longest = f"{GRAB_HELP}  99999x99999 at -99999,-99999{OVERLAP_NOTE}"
        lines = wrap_words(longest, room, size)
        if dpg.get_text_size("A") is None:
            return len(lines)  # no font yet: not kept
        _hint_rows[room, size] = len(lines)
    return _hint_rows[room, size]


def draw_grab(app: ViewerApp) -> None:
    tex, items = app.preview_tex, app.ids.grab
    if app.preview is not None:
        seen = app.preview.geometry
        if seen is not None and (seen[0], seen[2]) != (app.region.desk, app.region.monitors):
            app.desktop_changed(*seen)  # a monitor changed while the mode is on
        image = app.preview.take()
        if image is not None:
            before = tex.tag
            tex.put(image)
            if tex.tag != before:
                dpg.configure_item(items["preview"], texture_tag=tex.tag)
            dpg.configure_item(items["preview"], show=True)
    hint = grab_hint(app)
    p = grab_preview(app)
    sx0, sy0, sx1, sy1 = app.region.desk_rect(p)
    x0, y0, x1, y1 = app.region.preview_rect(p)
    uv_min, uv_max = edge_uv((tex.width, tex.height), tex.used, (sx0, sy0, sx1, sy1))
    dpg.configure_item(
        items["preview"], pmin=(sx0, sy0), pmax=(sx1, sy1), uv_min=uv_min, uv_max=uv_max
    )
    dpg.configure_item(items["top"], pmin=(sx0, sy0), pmax=(sx1, y0))
    dpg.configure_item(items["bottom"], pmin=(sx0, y1), pmax=(sx1, sy1))
    dpg.configure_item(items["left"], pmin=(sx0, y0), pmax=(x0, y1))
    dpg.configure_item(items["right"], pmin=(x1, y0), pmax=(sx1, y1))
    monitors = app.region.monitor_rects(p)[:MONITORS_DRAWN]
    for i in range(MONITORS_DRAWN):
        shown = i < len(monitors)
        where = {"pmin": monitors[i][:2], "pmax": monitors[i][2:]} if shown else {}
        dpg.configure_item(items[f"monitor{i}"], show=shown, **where)
    dpg.configure_item(items["border"], pmin=(x0, y0), pmax=(x1, y1))
    c = app.px(5)  # the corner handles' half side
    dpg.configure_item(items["tl"], pmin=(x0 - c, y0 - c), pmax=(x0 + c, y0 + c))
    dpg.configure_item(items["br"], pmin=(x1 - c, y1 - c), pmax=(x1 + c, y1 + c))
    dpg.configure_item(items["hint"], pos=(app.px(8), app.px(HINT_TOP)), text="\n".join(hint))


def viewport_box() -> tuple[int, int, int, int]:
    x, y = dpg.get_viewport_pos()
    return int(x), int(y), dpg.get_viewport_client_width(), dpg.get_viewport_client_height()
