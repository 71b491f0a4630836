"""Input on the canvas: a click makes a result the query, a double-click opens its file, a
right-click copies its path, and in grab mode the mouse moves the region. Keys go to
ViewerApp.on_key."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dearpygui.dearpygui as dpg

from rtsearch.errors import printable
from rtsearch.viewer import history, keyboard, layout
from rtsearch.viewer.display import pointer_in_window, x_display
from rtsearch.viewer.grab_region import HANDLE
from rtsearch.viewer.grab_view import grab_preview
from rtsearch.viewer.wrap import text_width

if TYPE_CHECKING:
    from rtsearch.session import Result
    from rtsearch.viewer.app import ViewerApp

CAPTION_SIZE = 15  # a hovered result's caption: font size, padding, band colour
CAPTION_PAD = 4.0
CAPTION_BG = (20, 20, 20, 215)
DOUBLE_CLICK_S = 0.30  # Dear ImGui's double-click time and distance
DOUBLE_CLICK_PX = 6.0
UNKNOWN = 1e6  # Dear ImGui's mouse position when it knows none is -FLT_MAX
ASK_FRAMES = 6  # X11 is asked where the pointer is at most this often (a round trip)


@dataclass
class Click:
    """A left click on the canvas, kept to tell a double-click's presses apart."""

    t: float  # time.monotonic()
    pos: tuple[float, float]  # on the canvas
    hit: Result | None  # the result clicked, as shown then
    before: int | None = None  # the index row the query showed before it (random source)
    live: bool = False  # a live source's picture was the query before it
    history: tuple = ((), -1)  # the queries' history before it (History.snapshot)
    asked: bool = False  # that row's picture was asked for, not drawn (Published.chosen)


def add_handlers(app: ViewerApp) -> None:
    with dpg.handler_registry():
        dpg.add_key_press_handler(callback=lambda s, key: app.on_key(key))
        dpg.add_key_release_handler(callback=lambda s, key: app.on_key_release(key))
        dpg.add_mouse_click_handler(button=dpg.mvMouseButton_Left, callback=lambda: on_click(app))
        dpg.add_mouse_click_handler(button=dpg.mvMouseButton_Right, callback=lambda: on_right(app))
        # the mouse's side buttons: back and forward, as in a browser
        for button, step in ((dpg.mvMouseButton_X1, "back"), (dpg.mvMouseButton_X2, "forward")):
            dpg.add_mouse_click_handler(
                button=button, callback=lambda s, a, u: on_side(app, u), user_data=step
            )
        dpg.add_mouse_double_click_handler(
            button=dpg.mvMouseButton_Left, callback=lambda: on_double(app)
        )
        dpg.add_mouse_drag_handler(
            button=dpg.mvMouseButton_Left, threshold=1, callback=lambda: on_drag(app)
        )
        dpg.add_mouse_release_handler(
            button=dpg.mvMouseButton_Left, callback=lambda: app.region.end()
        )


def _mouse(app: ViewerApp, fresh: bool = False) -> tuple[float, float] | None:
    """Where the pointer is on the canvas (its drawing's pixels); None when it is not.
    ``fresh``: for a click, not as X11 said a few frames ago."""
    if dpg.is_item_hovered(app.ids.canvas):
        x, y = dpg.get_drawing_mouse_pos()
        return float(x), float(y)
    # Not hovered as Dear PyGui sees it: the pointer is elsewhere, or the window lost the
    # focus and got it back with the pointer resting on the canvas, which it takes for
    # hovered again only once the pointer moves (a right-click copied nothing, a click did
    # nothing, no caption showed). X11 says where it is (asked at most every ASK_FRAMES
    # frames, but for a click).
    frame, pos = app.pointer_asked
    if fresh or not 0 <= app.frames - frame < ASK_FRAMES:
        pos = _pointer_from_x(app)
        app.pointer_asked = (app.frames, pos)
    return pos


def _pointer_from_x(app: ViewerApp) -> tuple[float, float] | None:
    ids = app.ids
    if any(dpg.is_item_shown(d) for d in (*ids.dialogs(), ids.question, ids.help)):
        return None  # (over the canvas, they take the clicks)
    size = dpg.get_viewport_client_width(), dpg.get_viewport_client_height()
    at = pointer_in_window(x_display(), size)
    if at is None:
        return None
    ox, oy = dpg.get_item_rect_min(ids.drawlist)  # (scrolled up with the canvas)
    x, y = at[0] - ox, at[1] - oy
    top, (width, height) = dpg.get_y_scroll(ids.canvas), app.canvas_size  # what shows of it
    return (float(x), float(y)) if 0 <= x < width and top <= y < top + height else None


def rank_at(app: ViewerApp, pos: tuple[float, float] | None) -> int | None:
    """The rank of the result whose tile is at ``pos`` on the canvas, if any."""
    pub, lay = app.published, app.layout
    if pos is None or pub is None or lay is None or app.grab_mode:
        return None
    return layout.hit(lay.results[: len(pub.results)], *pos)


def result_at(app: ViewerApp, pos: tuple[float, float] | None):
    rank = rank_at(app, pos)
    return None if rank is None else app.published.results[rank]


def on_click(app: ViewerApp) -> None:
    pos = _mouse(app, fresh=True)
    if app.grab_mode and pos is not None:
        p = grab_preview(app)
        part, point = app.region.part_at(p, *pos, app.px(HANDLE)), app.region.to_screen(p, *pos)
        if part is None:  # a click beside the region brings it there, ready to drag
            app.region.center_on(*point)
            part = "body"
        app.region.begin(part, *point)
        return
    now, last = time.monotonic(), app.last_click
    within = app.px(DOUBLE_CLICK_PX)
    if pos is not None and last is not None and _same_click(last, now, pos, within):
        return  # a double-click's second press: the first press's result is the one it opens
    hit = result_at(app, pos)
    pub = app.published
    before = pub.row if pub is not None else None
    live = pub is not None and pub.row is None and pub.source not in ("random", "")
    asked = pub is not None and pub.chosen
    app.last_click = Click(
        now, pos or (-1.0, -1.0), hit, before, live, app.history.snapshot(), asked
    )
    if hit is not None:
        app.query_row(hit.row)


def _same_click(last: Click, now: float, pos: tuple[float, float], within: float) -> bool:
    dx, dy = abs(pos[0] - last.pos[0]), abs(pos[1] - last.pos[1])
    return now - last.t <= DOUBLE_CLICK_S and max(dx, dy) <= within


def on_double(app: ViewerApp) -> None:
    """Open the result the double-click's first press landed on. The first press made that
    result the query, so the results have moved on since (the tile under the pointer now
    is another picture): the query goes back to the picture it showed before, so opening
    a result does not lose the results being browsed."""
    last = app.last_click
    if last is not None and last.hit is not None:
        history.undo_click(app, last)  # first: it clears the message line
        app.open_file(last.hit.file)  # which says when the file cannot be opened


def on_side(app: ViewerApp, step: str) -> None:
    """The mouse's back or forward button: as the keys, not behind a dialog or a question
    (they take the keys; the buttons stepped behind them)."""
    if not app.ids.asking():
        app.perform(step)


def on_right(app: ViewerApp) -> None:
    hit = result_at(app, _mouse(app, fresh=True))
    if hit is not None:
        dpg.set_clipboard_text(str(hit.file))
        app.say_briefly(f"copied: {hit.file}")


def on_drag(app: ViewerApp) -> None:
    if app.grab_mode and app.region.dragging:
        x, y = dpg.get_drawing_mouse_pos()
        app.region.drag(*app.region.to_screen(grab_preview(app), x, y))


def show_caption(app: ViewerApp) -> None:
    """Under the pointer, a result's rank, file and distance, in a band across the foot of
    its tile (wider where the text needs it, within the canvas); nothing elsewhere, nor
    before the pointer first moves (a headless run's screenshot: Xvfb starts it mid-screen)."""
    pub, lay, ids = app.published, app.layout, app.ids
    rank = keyboard.captioned_rank(app, rank_at(app, _mouse(app) if _moved(app) else None))
    bottom = dpg.get_y_scroll(ids.canvas) + app.canvas_size[1]  # of the canvas's visible part
    key = None if rank is None else (rank, tuple(lay.results[rank]), bottom)
    # the results by identity: a published result compares its pictures' arrays
    if key == app.captioned and (key is None or pub is app.captioned_pub):
        return
    app.captioned, app.captioned_pub = key, pub
    band, text = ids.caption
    if key is None:
        dpg.hide_item(band)
        dpg.hide_item(text)
        return
    hit, (x0, _, x1, y1) = pub.results[rank], lay.results[rank]
    y1 = min(y1, bottom)  # a tile cut off by the canvas's foot: at the foot of what shows
    verified = "" if hit.inliers is None else f", {hit.inliers} matching points"
    line = caption_line(rank, hit.path, f"  (distance {hit.distance:.3f}{verified})", app)
    size, pad = app.px(CAPTION_SIZE), app.px(CAPTION_PAD)
    height = size + 2 * pad
    width = text_width(line, size) + 2 * pad
    left = max(0.0, min(x0, app.canvas_size[0] - width))
    right = max(x1, left + width)
    dpg.configure_item(band, pmin=(left, y1 - height), pmax=(right, y1), show=True)
    dpg.configure_item(text, pos=(left + pad, y1 - height + pad), text=line)
    dpg.show_item(text)


def caption_line(rank: int, path: str, tail: str, app: ViewerApp) -> str:
    """A result's caption: its path escaped as on the terminal (a newline in a name split
    the caption), cut from its start to fit the canvas (a 255-byte name ran off the window
    and its distance never showed)."""
    name = printable(path)
    size = app.px(CAPTION_SIZE)
    room = app.canvas_size[0] - 2 * app.px(CAPTION_PAD)
    line = f"{rank + 1}. {name}{tail}"
    while len(name) > 12 and text_width(line, size) > room:
        name = name[max(4, len(name) // 8) :]
        line = f"{rank + 1}. ...{name}{tail}"
    return line


def _moved(app: ViewerApp) -> bool:
    """Whether the pointer has moved since the viewer first knew where it was."""
    if not app.pointer_moved:
        here = tuple(dpg.get_mouse_pos(local=False))
        if app.frames < 2 or max(abs(v) for v in here) > UNKNOWN:
            return False  # not known yet: (0, 0) before the first frame, or -FLT_MAX
        if app.pointer_start is None:
            app.pointer_start = here
        app.pointer_moved = here != app.pointer_start
    return app.pointer_moved
