"""The status bar under the canvas (source, latency, rates, index, model), the message
line under it, the room kept for both, and the analysis progress bar."""

from __future__ import annotations

import re
import statistics
from typing import TYPE_CHECKING

import dearpygui.dearpygui as dpg

from rtsearch.errors import Problem, count, joined, printable
from rtsearch.viewer import history, layout, uiscale, worker
from rtsearch.viewer.grab_view import viewport_box
from rtsearch.viewer.wrap import wrap_lines

if TYPE_CHECKING:
    from rtsearch.viewer.app import ViewerApp
    from rtsearch.viewer.tasks import Task

NO_INDEX = (
    "no index loaded: Analyze folder... (A) indexes a folder of pictures; Load (Ctrl+O) opens "
    "an index made before; `rtsearch demo` in a terminal makes one of a demo gallery"
)
# the message line's words (and those where the query image would be): what went wrong
# (errors.Problem: a file that cannot be read, a camera lost) stands out from what reports
MESSAGE = (160, 200, 245, 255)
PROBLEM = (255, 120, 95, 255)
STATUS_H = 52  # pixels kept under the canvas for the status bar (one status line)
STATUS_SEP = "  |  "
_FIGURE = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")  # a number standing alone
MIN_CANVAS_H = 120  # a window too short for this scrolls, so the status goes below
PAUSE_LABELS = {False: "Pause (Space)", True: "Resume (Space)"}


def source_name(pub: worker.Published | None) -> str:
    """The source as the status bar names it: `collection` for a picture of the collection
    asked for (a result clicked, back, the query kept from the last run), which is no
    random draw (it said `random`)."""
    if pub is None:
        return "-"
    return "collection" if pub.source == "random" and pub.chosen else pub.source


def update_status(app: ViewerApp) -> None:
    pub, s = app.published, app.session
    times = list(app.frame_times)[-30:]
    fps = (
        (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0
    )
    # figures of the live loop; "-" where there is none (paused, just resumed, or a source
    # with no new picture), not the last source's: both or neither
    live = pub is not None and not app.paused
    figures = live and (pub.inference_ms > 0 or pub.stored) and bool(app.latencies)
    # medians over the same queries, so the latency (which holds the inference) is never
    # shown below it; a collection's picture searched with its stored vector runs none
    lat = f"{statistics.median(app.latencies):.0f} ms" if figures else "-"
    infer = "-"
    if live and pub.stored:  # (its vector in the index: no model run, resumed or not)
        infer = "stored"
    elif figures and app.inferences:
        infer = f"{statistics.median(app.inferences):.1f} ms"
    parts = [
        printable(f"source {source_name(pub)}{' (paused)' if app.paused else ''}"),
        f"latency {lat}",
        f"inference {infer}",
        f"{app.query_rate() if live else 0:.1f} queries/s",
        f"UI {fps:.0f} fps",
    ]
    if s is not None:
        parts += [
            f"index {count(len(s.index.paths), 'image')}, {s.index.dims}-d",
            f"model {s.extractor.info.name}"
            + (" int8" if s.extractor.info.variant == "int8" else ""),
            s.extractor.provider,
        ]
    else:
        parts.append("no index")
    inside = inner_width(app)
    dpg.set_value(app.ids.status, wrap_parts(parts, inside))
    # a file's name in it escaped, as on the terminal (a newline in one broke the line)
    told = said(app.message, pub.message if pub else "")
    problem, note = isinstance(told, Problem), printable(told)
    if app.mirrored:  # (searches_itself, as the frame last looked)
        meanwhile = (
            "" if app.paused else f" (searched {worker.MIRROR_QPS:g} times a second meanwhile)"
        )
        overlap = (
            "the grab region overlaps this window: move it (G) so the viewer does not search "
            f"itself{meanwhile}"
        )
        note = f"{note}\n{overlap}" if note and overlap not in note else overlap
        problem = True
    colour(app.ids.message, problem)
    # wrapped here, at spaces and after a '/': Dear PyGui's wrap would break paths at dots
    # (a character's width is left spare, for a scroll bar the window may show)
    width = inside - (dpg.get_text_size("M") or (0, 0))[0]
    dpg.set_value(app.ids.message, "\n".join(wrap_lines(note, width)))
    pause = PAUSE_LABELS[app.paused]
    if dpg.get_item_label(app.ids.pause_button) != pause:
        dpg.configure_item(app.ids.pause_button, label=pause)
    for button, can in zip(app.ids.step_buttons, history.open_steps(app), strict=True):
        if dpg.get_item_configuration(button)["enabled"] != can:
            dpg.configure_item(button, enabled=can)
    _fit_status(app)


def inner_width(app: ViewerApp) -> int:
    """The width the window's rows have: inside its padding, and beside its scrollbar when
    it scrolls (a short window: the toolbar's last chip ran under the scrollbar)."""
    scrollbar = uiscale.SIZES["ScrollbarSize"] if dpg.get_y_scroll_max(app.ids.window) > 0 else 0
    return dpg.get_viewport_client_width() - app.px(2 * layout.PAD + scrollbar)


def wrap_parts(parts: list[str], available: float) -> str:
    """The status parts joined by STATUS_SEP, on as many lines as the width needs, broken
    between parts rather than inside one. Each part is measured with its figures at least
    five characters wide ("17.1" as "017.1"), so that the lines (and the canvas above them)
    stay put as figures change; digits inside a name ("lite0") are left as they are."""
    sizes = [dpg.get_text_size(_FIGURE.sub(lambda m: m[0].rjust(5, "0"), p)) for p in parts]
    sep = dpg.get_text_size(STATUS_SEP)
    if sep is None or any(z is None for z in sizes):
        return STATUS_SEP.join(parts)  # no font yet
    widths = [z[0] for z in sizes if z is not None]
    rows = layout.pack_rows(widths, available, sep[0])
    # a part wider than a row alone (a video's long name) is broken as the message's lines
    # are, not cut at the window's edge
    return "\n".join(
        "\n".join(wrap_lines(parts[row[0]], available))
        if widths[row[0]] > available
        else STATUS_SEP.join(parts[i] for i in row)
        for row in rows
    )


def _fit_status(app: ViewerApp) -> None:
    """Keep room under the canvas for the status bar and the message as they wrap in a
    narrow window: the status from its own lines, the message from its lines as set (or as
    last drawn, when that took more)."""
    one = dpg.get_text_size("A")
    drawn = dpg.get_item_rect_size(app.ids.message)[1]
    if one is None or not one[1] or not drawn:
        return
    # the message's lines as set now (update_status wraps it), or as last drawn if Dear
    # PyGui wrapped it further: the drawn size alone lagged a message that grew by a frame
    said = dpg.get_value(app.ids.message).count("\n") + 1
    lines = dpg.get_value(app.ids.status).count("\n") + max(said, round(drawn / one[1]))
    below = app.px(STATUS_H) + round((lines - 1) * one[1])  # STATUS_H: one line of each
    room = dpg.get_viewport_client_height() - dpg.get_item_pos(app.ids.canvas)[1] - below
    # the canvas fills the window above the status; in a window too short for that it keeps
    # MIN_CANVAS_H, and the window scrolls to the status under it
    least = app.px(MIN_CANVAS_H)
    height = -below if room >= least else least
    if dpg.get_item_configuration(app.ids.canvas)["height"] != height:
        dpg.configure_item(app.ids.canvas, height=height)


def show_progress(app: ViewerApp, task: Task | None) -> None:
    """The progress bar of an analysis, with its Cancel; of a watch pass, without (it is
    not stopped from here)."""
    group = app.ids.progress_group
    dpg.configure_item(group, show=task is not None)
    if task is not None:
        dpg.set_value(app.ids.progress, task.progress)
        dpg.configure_item(app.ids.progress, overlay=task.note or "analyzing")
        cancel = dpg.get_item_children(group, 1)[1]
        dpg.configure_item(cancel, show=task.name != "watch")


def searches_itself(app: ViewerApp) -> bool:
    """Whether the screen grab's rectangle takes in this window (a picture of the viewer
    changes with every search: it would search itself as fast as it can)."""
    pub = app.published
    return (
        app.grab_mode is False
        and app.region.overlaps(viewport_box())
        and pub is not None
        and pub.source == "screen"  # following the mouse skips this window by itself
    )


def said(message: str, results_said: str) -> str:
    """What the message line says: the viewer's own ``message`` (an action's, until the
    next), else what the results on show say. An index just shown (``index: ...``) yields
    to none of them, but the results' problems are said after it: pictures gone since
    (grey tiles) or passed over by the random draw were unsaid until a key was pressed.
    A Problem where what it says went wrong (the results' problems too)."""
    results_problem = worker.is_problem(results_said)
    if results_problem:
        results_said = Problem(results_said)
    if not message:
        return results_said
    if message.startswith("index: ") and results_problem:
        return joined(message, results_said)
    return message


def colour(item: int | str, problem: bool) -> None:
    """``item``'s words in the problem colour, or in that of other messages."""
    want = list(PROBLEM if problem else MESSAGE)
    if [round(c * 255) for c in dpg.get_item_configuration(item)["color"]] != want:
        dpg.configure_item(item, color=want)
