"""The result chosen with the keyboard, for those who keep their hands off the mouse: the
arrow keys (Home, End) move a frame over the result grid, Enter makes the framed result the
query (as a click does), Ctrl+Enter opens its file (as a double-click), Ctrl+C copies its
path (as a right-click; the first result's when none is framed). The frame stays on its
rank as live results change, and its caption shows while the pointer is off the results.
Esc takes it away."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dearpygui.dearpygui as dpg

from rtsearch.viewer import layout

if TYPE_CHECKING:
    from rtsearch.session import Result
    from rtsearch.viewer.app import ViewerApp

FRAME = (255, 196, 64, 255)  # the frame's colour and width (pixels at UI scale 1)
FRAME_W = 3.0
# the actions that move the frame: (rows down, steps along, or the first / last)
MOVES = {
    "select_left": (0, -1),
    "select_right": (0, 1),
    "select_up": (-1, 0),
    "select_down": (1, 0),
    "select_first": None,
    "select_last": None,
}
ACTIONS = (*MOVES, "query_selected", "open_selected", "copy_result")
NONE_SELECTED = "no result is selected: the arrow keys select one"


def shown(app: ViewerApp) -> int:
    """How many results show (laid out and published)."""
    pub, lay = app.published, app.layout
    if pub is None or lay is None or app.grab_mode:
        return 0
    return min(len(pub.results), len(lay.results))


def rank(app: ViewerApp) -> int | None:
    """The framed result's rank, within the results that show (fewer results since: the
    last of them)."""
    n = shown(app)
    return None if app.selected is None or n == 0 else min(app.selected, n - 1)


def selected(app: ViewerApp) -> Result | None:
    at = rank(app)
    return None if at is None else app.published.results[at]  # type: ignore[union-attr]


def perform(app: ViewerApp, action: str) -> None:
    if action in MOVES:
        move(app, action)
    elif action == "copy_result":
        hit = selected(app) or (app.published.results[0] if shown(app) else None)  # type: ignore[union-attr]
        if hit is None:
            app.message = "no results to copy"
            return
        dpg.set_clipboard_text(str(hit.file))
        app.message = f"copied: {hit.file}"
    else:
        hit = selected(app)
        if hit is None:
            app.message = NONE_SELECTED
        elif action == "query_selected":
            app.query_row(hit.row)
        else:
            app.open_file(hit.file)


def move(app: ViewerApp, action: str) -> None:
    """Move the frame (the first key frames the first result, End the last), and scroll
    the canvas to show it."""
    n, now = shown(app), rank(app)
    if n == 0:
        app.message = "no results to select"
        return
    rects = app.layout.results[:n]  # type: ignore[union-attr]
    step = MOVES[action]
    if action == "select_last":
        new = n - 1
    elif now is None or step is None:
        new = 0
    elif step[0]:
        new = layout.step_rows(rects, now, step[0])
    else:
        new = min(max(now + step[1], 0), n - 1)
    app.selected = new
    _scroll_to(app, rects[new])


def _scroll_to(app: ViewerApp, rect: layout.Rect) -> None:
    canvas = app.ids.canvas
    top, height = dpg.get_y_scroll(canvas), app.canvas_size[1]
    margin = app.px(layout.MARGIN)
    if rect[3] + margin > top + height:
        dpg.set_y_scroll(canvas, rect[3] + margin - height)
    elif rect[1] - margin < top:
        dpg.set_y_scroll(canvas, max(rect[1] - margin, 0.0))


def show_frame(app: ViewerApp) -> None:
    """Draw the frame round the selected result's tile (hidden where none is)."""
    at = rank(app)
    key = None if at is None else tuple(app.layout.results[at])  # type: ignore[union-attr]
    if key == app.framed:
        return
    app.framed = key
    item = app.ids.selection_frame
    if key is None:
        dpg.hide_item(item)
        return
    half = app.px(FRAME_W) / 2
    x0, y0, x1, y1 = key
    dpg.configure_item(item, pmin=(x0 - half, y0 - half), pmax=(x1 + half, y1 + half), show=True)
