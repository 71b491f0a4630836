"""The keys beyond the shortcuts' actions, for those who keep their hands off the mouse.

- A selected result: the arrow keys (Home, End) move a frame over the result grid, Enter
  makes the framed result the query (as a click does), Ctrl+Enter opens its file (as a
  double-click), Ctrl+C copies its path (as a right-click; the first result's when none is
  framed). The frame keeps its rank as live results change, and its caption shows while
  the pointer is off the results. Esc takes it away. A new query asked for from the
  keyboard (Enter, R) shows from the top: the query, the frame on the first result; a step
  back frames the result it came from, where that is among the results.
- Page Up and Page Down scroll the results a page.
- With the help shown, the arrows, Home, End and the page keys scroll the help instead.
- In the grab mode the arrow keys move the rectangle (with Shift: size it; with Ctrl: a
  pixel at a time)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dearpygui.dearpygui as dpg

from rtsearch.viewer import layout

if TYPE_CHECKING:
    from rtsearch.session import Result
    from rtsearch.viewer.app import ViewerApp

FRAME = (255, 196, 64, 255)  # the frame's colour and width (pixels at UI scale 1)
FRAME_W = 3.0
# the actions that move the frame: (rows down, steps along), or None: the first / last
MOVES: dict[str, tuple[int, int] | None] = {
    "select_left": (0, -1),
    "select_right": (0, 1),
    "select_up": (-1, 0),
    "select_down": (1, 0),
    "select_first": None,
    "select_last": None,
}
PAGES = {"page_up": -1, "page_down": 1}
ACTIONS = (*MOVES, *PAGES, "query_selected", "open_selected", "copy_result")
LINE = 20  # the help scrolled by a line: pixels at UI scale 1
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


def on_key(app: ViewerApp, action: str, shift: bool, ctrl: bool) -> bool:
    """Keys that mean something else where they are pressed: True when taken so (the help
    scrolled, the grab rectangle moved)."""
    if dpg.is_item_shown(app.ids.help) and (action in MOVES or action in PAGES):
        _scroll_help(app, action)
        return True
    if app.grab_mode and (action in MOVES or action in PAGES):
        # (Home, End and the page keys do nothing there: as other keys, they left the mode,
        # and the rectangle moved so far was lost)
        step = MOVES.get(action)
        if step is not None:  # (rows down, steps along: y and x)
            app.region.nudge(step[1], step[0], resize=shift, fine=ctrl)
        return True
    return False


def perform(app: ViewerApp, action: str) -> None:
    if action in MOVES:
        move(app, action)
    elif action in PAGES:
        _page(app, PAGES[action])
    elif action == "copy_result":
        hit = selected(app) or (app.published.results[0] if shown(app) else None)  # type: ignore[union-attr]
        if hit is None:
            app.message = "no results to copy"
            return
        dpg.set_clipboard_text(str(hit.file))
        app.say_briefly(f"copied: {hit.file}")
    else:
        hit = selected(app)
        if hit is None:
            app.message = NONE_SELECTED
        elif action == "query_selected":
            app.query_row(hit.row)
            to_top(app)
        else:
            app.open_file(hit.file)


def captioned_rank(app: ViewerApp, hovered: int | None) -> int | None:
    """Whose caption shows: the result under the pointer, but the one selected while the
    pointer has not moved since the key that selected it (a pointer resting on another
    result took the caption from every key)."""
    at = rank(app)
    if hovered is None or at is None:
        return at if hovered is None else hovered
    still = tuple(dpg.get_mouse_pos(local=False)) == tuple(app.selected_from or ())
    return at if still else hovered


def to_top(app: ViewerApp) -> None:
    """A new query asked for: shown from the top, the frame (if any) on the first result."""
    dpg.set_y_scroll(app.ids.canvas, 0.0)
    if app.selected is not None:
        app.selected = 0


def move(app: ViewerApp, action: str) -> None:
    """Move the frame (the first key frames the first result, End the last), and scroll
    the canvas to show it (all the way up on the first row: the query too)."""
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
    app.selected_from = dpg.get_mouse_pos(local=False)
    _reveal(app, rects, new)


def _reveal(app: ViewerApp, rects: list, new: int) -> None:
    """Scroll the canvas to show result ``new`` (all the way up on the first row: the
    query too)."""
    canvas, rect = app.ids.canvas, rects[new]
    top, height = dpg.get_y_scroll(canvas), app.canvas_size[1]
    margin = app.px(layout.MARGIN)
    if rect[1] == rects[0][1]:
        dpg.set_y_scroll(canvas, 0.0)
    elif rect[3] + margin > top + height:
        dpg.set_y_scroll(canvas, rect[3] + margin - height)
    elif rect[1] - margin < top:
        dpg.set_y_scroll(canvas, rect[1] - margin)


def reframe(app: ViewerApp) -> None:
    """A step back asked from the keys (``app.reframe``: the entry it went to, the picture
    it left) frames, once its results show, the result it left, as a browser's back keeps
    the place: the frame went to the first result, and the keys had to find the way back
    to where the user was along the results."""
    if app.reframe is None or app.history.going is not None or app.dirty:
        return  # (not arrived yet, or not laid out)
    (at, left), app.reframe = app.reframe, None
    h, pub, n = app.history, app.published, shown(app)
    if pub is None or h.at != at or pub.file != h.files[at] or app.selected is None:
        return
    files = [r.file for r in pub.results[:n]]
    if left in files:
        app.selected = files.index(left)
        app.selected_from = dpg.get_mouse_pos(local=False)
        _reveal(app, app.layout.results[:n], app.selected)  # type: ignore[union-attr]


def _page(app: ViewerApp, way: int) -> None:
    """Scroll the results a page down (``way`` 1) or up (-1); a frame comes onto the page,
    on its first result (left where it was, the next key moved it from there and scrolled
    back)."""
    canvas = app.ids.canvas
    page = app.canvas_size[1] - app.px(layout.MARGIN + layout.LABEL_H)
    top = min(max(dpg.get_y_scroll(canvas) + way * page, 0.0), dpg.get_y_scroll_max(canvas))
    dpg.set_y_scroll(canvas, top)
    n = shown(app)
    if app.selected is not None and n:
        rects = app.layout.results[:n]  # type: ignore[union-attr]
        on_page = [i for i, r in enumerate(rects) if r[1] >= top]
        app.selected = on_page[0] if on_page else n - 1
        app.selected_from = dpg.get_mouse_pos(local=False)


def _scroll_help(app: ViewerApp, action: str) -> None:
    help_window = app.ids.help
    top, most = dpg.get_y_scroll(help_window), dpg.get_y_scroll_max(help_window)
    page = dpg.get_item_height(help_window) or 0
    line = app.px(LINE)
    to = {
        "select_up": top - line,
        "select_down": top + line,
        "select_left": top - line,
        "select_right": top + line,
        "select_first": 0.0,
        "select_last": most,
        "page_up": top - page + line,
        "page_down": top + page - line,
    }[action]
    dpg.set_y_scroll(help_window, min(max(to, 0.0), most))


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
