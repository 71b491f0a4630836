"""Building and updating the viewer's widgets; called only from the main thread by app.py."""

from __future__ import annotations

import glob
import os
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import dearpygui.dearpygui as dpg
import numpy as np

from rtsearch import projection as proj
from rtsearch.errors import RtsearchError, count
from rtsearch.viewer import actions, layout
from rtsearch.viewer.shortcuts import SHORTCUTS
from rtsearch.viewer.tasks import Task
from rtsearch.viewer.textures import MAKE_FIXED_TEXELS, make_cost, texture_height
from rtsearch.viewer.worker import THUMB_BOX

if TYPE_CHECKING:
    from rtsearch.session import Result, SearchSession
    from rtsearch.viewer.app import ViewerApp
    from rtsearch.viewer.worker import Published

STATUS_H = 52  # pixels kept under the canvas for the status bar (one status line)
PAD = 8.0  # Dear PyGui's default window padding and item spacing, in pixels
STATUS_SEP = "  |  "
_FIGURE = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")  # a number standing alone
CTRL_KEYS = (dpg.mvKey_LControl, dpg.mvKey_RControl, dpg.mvKey_ModCtrl)
KEY_NAMES = {
    dpg.mvKey_R: "R",
    dpg.mvKey_W: "W",
    dpg.mvKey_V: "V",
    dpg.mvKey_S: "S",
    dpg.mvKey_G: "G",
    dpg.mvKey_M: "M",
    dpg.mvKey_O: "O",
    dpg.mvKey_Spacebar: "Space",
    dpg.mvKey_Plus: "+",
    # '=' (and '+' above it): ImGuiKey_Equal, which Dear PyGui 2 names no constant for; it
    # sits just before '[' (mvKey_Open_Brace), and mvKey_Plus (61) is never reported
    getattr(dpg, "mvKey_Equal", dpg.mvKey_Open_Brace - 1): "+",
    dpg.mvKey_Add: "+",
    dpg.mvKey_Minus: "-",
    dpg.mvKey_Subtract: "-",
    dpg.mvKey_F1: "F1",
    dpg.mvKey_Slash: "/",
    dpg.mvKey_Escape: "Escape",
}
LABEL = (230, 230, 230, 255)
MESSAGE = (255, 190, 120, 255)
GRAB_BORDER = (255, 210, 0, 255)
BACKGROUND = (37, 37, 38)  # Dear PyGui's default window colour
PAUSE_LABELS = {False: "Pause (Space)", True: "Resume (Space)"}
DIALOG_SIZE = (700, 480)  # file dialogs, in windows large enough
HELP_SIZE = (560, 480)
DIALOG_MARGIN = 8  # kept between a dialog and the window's edges
MIN_WINDOW = 160  # no dialog is made smaller than this, however small the window
HINT_SIZE = 16  # the grab mode's hint: font size (also its line height) and top
HINT_TOP = 4
# result textures made in one frame, in texels' worth: two 4:3 ones for 232 px rows (~6 ms
# here), six for 91 px ones, one (whatever it costs) for rows of 300 px and more; the rest
# wait for the next frame (see bind_tiles)
MAKE_BUDGET = 2 * (round(THUMB_BOX[1] * 4 / 3) * THUMB_BOX[1] + MAKE_FIXED_TEXELS)  # 4:3 ones
MIN_CANVAS_H = 120  # a window too short for this scrolls, so the status goes below
DOUBLE_CLICK_S = 0.30  # Dear ImGui's double-click time and distance
DOUBLE_CLICK_PX = 6.0
VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


@dataclass
class Click:
    """A left click on the canvas, kept to tell a double-click's presses apart."""

    t: float  # time.monotonic()
    pos: tuple[float, float]  # on the canvas
    hit: Result | None  # the result clicked, as shown then


@dataclass
class Toolbar:
    """The buttons and the sliders, in rows that wrap when the window is narrow: each
    section (buttons, sliders) starts a row and flows over as many as it needs."""

    rows: list  # horizontal groups, as many as there are chips; the unused ones hidden
    sections: list[list]  # chips (a button, or a group of a slider and its label) in order
    packed: tuple = ()  # the row of each chip, as last laid out


@dataclass
class Ids:
    window: int | str
    toolbar: Toolbar
    canvas: int | str
    drawlist: int | str
    results_layer: int | str
    grab_layer: int | str
    query_image: int | str
    query_label: int | str
    results_label: int | str
    tiles: list  # draw items of the result tiles on screen, in slot order
    grab: dict
    k_slider: int | str
    dims_input: int | str
    status: int | str
    message: int | str
    progress: int | str
    progress_group: int | str
    help: int | str
    video_dialog: int | str
    load_dialog: int | str
    base_dialog: int | str
    save_dialog: int | str
    analyze_dialog: int | str
    fields: tuple = ()  # the dims input and the sliders (Ctrl+click types into one)
    pause_button: int | str = 0
    no_picture: int | str = 0  # says why, where the query image would be
    # per tile slot: the texture, rectangle and file it shows, None when hidden
    tile_shows: list = field(default_factory=list)

    def dialogs(self) -> tuple:
        return (
            self.video_dialog, self.load_dialog, self.base_dialog, self.save_dialog,
            self.analyze_dialog,
        )  # fmt: skip

    def typing(self) -> bool:
        """Keys belong to a text field: the dims input, a slider being typed into
        (Ctrl+click), or a file dialog's name field."""
        shown = any(dpg.is_item_shown(d) for d in self.dialogs())
        return shown or any(dpg.is_item_active(f) for f in self.fields)

    def close_dialog(self) -> bool:
        """Esc: close the open file dialog, as its Cancel would; False when none is open."""
        shown = [d for d in self.dialogs() if dpg.is_item_shown(d)]
        for d in shown:
            dpg.hide_item(d)
        return bool(shown)

    def confirm_dialog(self) -> bool:
        """Enter: take the open file dialog's name as its OK would; False when none is open."""
        for d in self.dialogs():
            if dpg.is_item_shown(d):
                info = dpg.get_file_dialog_info(d)  # what OK hands its callback
                directory = dpg.get_item_configuration(d).get("directory_selector")
                if not directory and not info.get("file_name") and not info.get("selections"):
                    return True  # no file named yet: the dialog stays open
                dpg.hide_item(d)
                dpg.get_item_user_data(d)(info)
                return True
        return False


def build(app: ViewerApp) -> Ids:
    with dpg.window(label="rtsearch") as window:
        with dpg.group():
            rows = [dpg.add_group(horizontal=True) for _ in range(32)]
        buttons = _toolbar(app, rows[0])
        k_slider, dims_input, sliders, fields = _sliders(app, rows[1])
        toolbar = Toolbar(rows[: len(buttons) + len(sliders)], [buttons, sliders])
        for row in rows[len(toolbar.rows) :]:
            dpg.delete_item(row)
        with dpg.group(horizontal=True, show=False) as progress_group:
            progress = dpg.add_progress_bar(width=400, overlay="analyzing")
            dpg.add_button(label="Cancel", callback=lambda: actions.cancel_analyze(app))
        with dpg.child_window(height=-STATUS_H, horizontal_scrollbar=False) as canvas:
            drawlist, parts = _canvas(app)
        status = dpg.add_text("")
        message = dpg.add_text("", color=MESSAGE, wrap=0)
    dialogs = _dialogs(app)
    ids = Ids(
        window,
        toolbar,
        canvas,
        drawlist,
        parts["results"],
        parts["grab"],
        parts["query"],
        parts["query_label"],
        parts["results_label"],
        parts["tiles"],
        parts["grab_items"],
        k_slider,
        dims_input,
        status,
        message,
        progress,
        progress_group,
        _help_window(),
        **dialogs,
        fields=fields,
        pause_button=next(b for b in buttons if dpg.get_item_user_data(b) == "pause"),
        no_picture=parts["no_picture"],
    )
    _handlers(app)
    if app.session is not None:
        show_dims(ids, app.session)
    return ids


def show_dims(ids: Ids, session: SearchSession) -> None:
    """The dims box shows the index's dimensions and goes no higher than its model's."""
    dpg.configure_item(ids.dims_input, max_value=min(session.extractor.info.dims, proj.MAX_DIMS))
    dpg.set_value(ids.dims_input, session.index.dims)


def clear_background(window: int | str) -> None:
    """The main window and its canvas draw no background of their own: the viewport is
    cleared to the same colour instead. Each full-window fill is blended pixel by pixel; in
    software rendering (llvmpipe) one costs ~6 ms a frame at 1280x860, more than everything
    else in an idle frame. A colour of alpha 0 keeps the canvas's off, but Dear PyGui draws
    the primary window's at full alpha whatever its colour, so that one needs the
    no_background flag, set after the window is made primary (which resets its flags).
    Other windows (help, dialogs) float above it and keep theirs."""
    with dpg.theme() as theme, dpg.theme_component(dpg.mvAll):
        dpg.add_theme_color(dpg.mvThemeCol_WindowBg, (*BACKGROUND, 0))
        dpg.add_theme_color(dpg.mvThemeCol_ChildBg, (*BACKGROUND, 0))
    dpg.bind_item_theme(window, theme)
    dpg.configure_item(window, no_background=True)
    dpg.set_viewport_clear_color((*BACKGROUND, 255))


def _toolbar(app: ViewerApp, row: int | str) -> list:
    buttons = (
        ("Random (R)", "random"),
        ("Webcam (W)", "webcam"),
        ("Video (V)", "video"),
        ("Screen (S)", "screen"),
        ("Set grab window (G)", "grab_mode"),
        ("Under mouse (M)", "follow_mouse"),
        (PAUSE_LABELS[False], "pause"),
        ("Load (Ctrl+O)", "load"),
        ("Save (Ctrl+S)", "save"),
        ("Help (F1)", "help"),
    )
    chips = [
        dpg.add_button(
            label=label, callback=lambda s, a, u: app.perform(u), user_data=action, parent=row
        )
        for label, action in buttons
    ]
    chips.append(
        dpg.add_button(
            label="Analyze folder...",
            callback=lambda: app.open_dialog(app.ids.analyze_dialog),
            parent=row,
        )
    )
    return chips


def _sliders(app: ViewerApp, row: int | str):
    def relayout(sender, value, field) -> None:  # typed values (Ctrl+click) come clamped
        setattr(app.opts, field, int(value))
        app.dirty = True

    chips = [dpg.add_group(horizontal=True, parent=row) for _ in range(4)]
    with dpg.group(horizontal=True, parent=chips[3]):  # dims and its button stay together
        # named before its box: after it, "num results" and the box read as one
        dpg.add_text("  dims")
        dims_input = dpg.add_input_int(  # set to the index's by show_dims
            default_value=proj.DEFAULT_DIMS,
            width=110,
            min_value=proj.MIN_DIMS,
            max_value=proj.MAX_DIMS,
            min_clamped=True,
            max_clamped=True,
        )
        dpg.add_button(label="Apply dims", callback=lambda: actions.reproject(app))
    with dpg.group(horizontal=True, parent=chips[0]):
        lo, hi = layout.HEADER_RANGE
        header = dpg.add_slider_int(
            label="header height",
            min_value=lo,
            max_value=hi,
            width=160,
            clamped=True,
            default_value=app.opts.header_h,
            callback=relayout,
            user_data="header_h",
        )
    with dpg.group(horizontal=True, parent=chips[1]):
        lo, hi = layout.THUMB_RANGE
        thumb = dpg.add_slider_int(
            label="thumb height",
            min_value=lo,
            max_value=hi,
            width=160,
            clamped=True,
            default_value=app.opts.thumb_h,
            callback=relayout,
            user_data="thumb_h",
        )
    with dpg.group(horizontal=True, parent=chips[2]):
        lo, hi = layout.RESULTS_RANGE
        k_slider = dpg.add_slider_int(
            label="num results",
            min_value=lo,
            max_value=hi,
            width=160,
            clamped=True,
            default_value=app.k,
            callback=lambda s, v: app.set_k(v),
        )
    return k_slider, dims_input, chips, (dims_input, header, thumb, k_slider)


def reflow_toolbar(app: ViewerApp) -> None:
    """Wrap the toolbar's rows to the window's width (each chip's width as last drawn)."""
    bar = app.ids.toolbar
    widths = [[dpg.get_item_rect_size(c)[0] for c in section] for section in bar.sections]
    if not all(w > 0 for section in widths for w in section):
        return  # not drawn yet
    available = dpg.get_viewport_client_width() - 2 * PAD
    packed: list[int] = []
    for section in widths:
        first = len(set(packed))
        for r, row in enumerate(layout.pack_rows(section, available, PAD)):
            packed += [first + r] * len(row)
    if tuple(packed) == bar.packed:
        return
    bar.packed = tuple(packed)
    chips = [c for section in bar.sections for c in section]
    for chip, r in zip(chips, packed, strict=True):
        dpg.move_item(chip, parent=bar.rows[r])
    for r, row in enumerate(bar.rows):
        dpg.configure_item(row, show=r in packed)


def _canvas(app: ViewerApp):
    with dpg.drawlist(width=800, height=600) as drawlist:
        with dpg.draw_layer() as results:
            query_label = dpg.draw_text((0, 0), "Query image", size=16, color=LABEL)
            query = dpg.draw_image(app.query_tex.tag, (0, 0), (1, 1))
            no_picture = dpg.draw_text((0, 0), "", size=16, color=MESSAGE, show=False)
            results_label = dpg.draw_text((0, 0), "Nearest neighbor images", size=16, color=LABEL)
            tiles: list[int | str] = []
        with dpg.draw_layer(show=False) as grab:
            items = {}
            for side in ("top", "bottom", "left", "right"):
                items[side] = dpg.draw_rectangle(
                    (0, 0), (1, 1), fill=(0, 0, 0, 160), color=(0, 0, 0, 0)
                )
            items["border"] = dpg.draw_rectangle((0, 0), (1, 1), color=GRAB_BORDER, thickness=2)
            for corner in ("tl", "br"):
                items[corner] = dpg.draw_rectangle(
                    (0, 0), (1, 1), fill=GRAB_BORDER, color=GRAB_BORDER
                )
            items["hint"] = dpg.draw_text((0, 0), "", size=HINT_SIZE, color=GRAB_BORDER)
    parts = {
        "results": results,
        "grab": grab,
        "query": query,
        "query_label": query_label,
        "no_picture": no_picture,
        "results_label": results_label,
        "tiles": tiles,
        "grab_items": items,
    }
    return drawlist, parts


def add_preview(app: ViewerApp) -> None:
    """The screen preview's draw item, under the dimming rectangles."""
    assert app.preview_tex is not None
    items = app.ids.grab
    items["preview"] = dpg.draw_image(
        app.preview_tex.tag, (0, 0), (1, 1), parent=app.ids.grab_layer, before=items["top"]
    )


def remove_preview(app: ViewerApp) -> None:
    dpg.delete_item(app.ids.grab.pop("preview"))


def _help_window() -> int | str:
    with dpg.window(
        label="Keyboard shortcuts (F1)",
        show=False,
        modal=False,
        pos=(120, 120),
        width=HELP_SIZE[0],
        height=HELP_SIZE[1],
        no_collapse=True,
    ) as win:
        with dpg.table(header_row=True, borders_innerH=True):
            dpg.add_table_column(label="key", width_fixed=True, init_width_or_weight=110)
            dpg.add_table_column(label="does")
            for key, _, text in SHORTCUTS:
                with dpg.table_row():
                    dpg.add_text(key)
                    dpg.add_text(text, wrap=0)
        dpg.add_text(
            "Screengrab: the region is chosen on a screen preview (G), because a "
            "see-through window is not possible here; keep it off this window.",
            wrap=0,
        )
    return win


def show_fitted(tag: int | str, size: tuple[int, int]) -> None:
    """Show a dialog or the help window at ``size``, or smaller where the viewer's window
    is smaller, so that its buttons (OK, Cancel) are never cut off; centred."""
    vw = dpg.get_viewport_client_width()
    vh = dpg.get_viewport_client_height()
    w = max(MIN_WINDOW, min(size[0], vw - 2 * DIALOG_MARGIN))
    h = max(MIN_WINDOW, min(size[1], vh - 2 * DIALOG_MARGIN))
    dpg.configure_item(tag, width=w, height=h)
    if dpg.get_item_type(tag) != "mvAppItemType::mvFileDialog":  # those centre themselves
        dpg.configure_item(tag, pos=(max(0, (vw - w) // 2), max(0, (vh - h) // 2)))
    dpg.show_item(tag)


def refit_shown(ids: Ids) -> None:
    """After the viewer's window was resized: the dialogs and the help shown grow back to
    their full size, or shrink to fit, as if opened now."""
    for tag in ids.dialogs():
        if dpg.is_item_shown(tag):
            show_fitted(tag, DIALOG_SIZE)
    if dpg.is_item_shown(ids.help):
        show_fitted(ids.help, HELP_SIZE)


def _dialogs(app: ViewerApp) -> dict:
    def dialog(
        label: str, on_path, *, directory: bool = False, exts: tuple[str, ...] = ()
    ) -> int | str:
        def ok(app_data: dict) -> None:
            try:
                path = chosen(app_data, directory=directory)
            except RtsearchError as exc:
                app.message = str(exc)
                return
            on_path(path)

        with dpg.file_dialog(
            label=label,
            show=False,
            directory_selector=directory,
            width=DIALOG_SIZE[0],
            height=DIALOG_SIZE[1],
            # the name field starts empty: its default '.' was kept in front of typed names
            default_filename="." if directory else "",
            callback=lambda s, a, ok: ok(a),
            user_data=ok,  # Enter calls it too (Ids.confirm_dialog)
            modal=True,
        ) as tag:
            for ext in exts:
                dpg.add_file_extension(ext)
        return tag

    # a named set first: a name typed under the '.*' filter loses its extension
    video_exts = (_filter_set("Video files", VIDEO_EXTS), ".*")
    return {
        "video_dialog": dialog(
            "Open a video file", lambda p: app._start_source(f"video:{p}"), exts=video_exts
        ),
        "load_dialog": dialog(
            "Load an index (.dat)", lambda p: actions.load(app, Path(p)), exts=(".dat", ".*")
        ),
        "base_dialog": dialog(
            "Where are this index's images now?",
            lambda p: actions.open_session(app, app.pending_load, Path(p)),
            directory=True,
        ),
        "save_dialog": dialog(
            "Save the index as (.dat)", lambda p: actions.save(app, Path(p)), exts=(".dat",)
        ),
        "analyze_dialog": dialog(
            "Analyze a folder of images", lambda p: actions.analyze(app, Path(p)), directory=True
        ),
    }


def _filter_set(label: str, exts: tuple[str, ...]) -> str:
    """A file dialog filter for several extensions, in both cases (its matching is
    case-sensitive): 'Video files{.mp4,.MP4,...}'."""
    return label + "{" + ",".join(e for ext in exts for e in (ext, ext.upper())) + "}"


def chosen(app_data: dict, *, directory: bool = False) -> str:
    """The path a file dialog's OK gives.

    'file_path_name' puts the current filter's extension in place of the file's own, so
    clip.mp4 picked from the list under '.*' came back as clip.*: a file picked from the list
    is read from 'selections', unless another name was typed after picking it ('file_name'
    is what the name field held). A name typed under '.*' has lost its extension; it stands
    for the one file that matches it. A folder is read from 'file_path_name' ('selections'
    names it twice).
    """
    name = _as_typed(str(app_data.get("file_path_name", "")))
    if directory:
        return name
    typed = str(app_data.get("file_name", ""))
    for picked, path in (app_data.get("selections") or {}).items():
        if typed == picked or (typed.endswith(".*") and typed[:-2] == Path(picked).stem):
            return str(path)
        break  # one file is picked at most
    if not name.endswith(".*"):
        return name
    matches = sorted(glob.glob(glob.escape(name[:-2]) + ".*"))
    if len(matches) == 1:
        return matches[0]
    found = f"{len(matches)} files match" if matches else "no file matches"
    raise RtsearchError(f"{name}: {found}; pick the file from the list")


def _as_typed(path: str) -> str:
    """A full path typed into a dialog's name field comes back joined onto the folder the
    dialog shows: '/home/me//data/x.dat' for '/data/x.dat', '/home/me/~/x' for '~/x'."""
    if "//" in path:
        path = "/" + path.rsplit("//", 1)[1]
    parts = path.split("/")
    if "~" in parts and not os.path.exists(path):
        path = os.path.expanduser("/".join(["~", *parts[parts.index("~") + 1 :]]))
    return path


def _handlers(app: ViewerApp) -> None:
    with dpg.handler_registry():
        dpg.add_key_press_handler(callback=lambda s, key: app.on_key(key))
        dpg.add_key_release_handler(callback=lambda s, key: app.on_key_release(key))
        dpg.add_mouse_click_handler(button=dpg.mvMouseButton_Left, callback=lambda: on_click(app))
        dpg.add_mouse_click_handler(button=dpg.mvMouseButton_Right, callback=lambda: on_right(app))
        dpg.add_mouse_double_click_handler(
            button=dpg.mvMouseButton_Left, callback=lambda: on_double(app)
        )
        dpg.add_mouse_drag_handler(
            button=dpg.mvMouseButton_Left, threshold=1, callback=lambda: on_drag(app)
        )
        dpg.add_mouse_release_handler(
            button=dpg.mvMouseButton_Left, callback=lambda: app.region.end()
        )


# ---------------------------------------------------------------- mouse
def _mouse(app: ViewerApp) -> tuple[float, float] | None:
    if not dpg.is_item_hovered(app.ids.canvas):
        return None
    x, y = dpg.get_drawing_mouse_pos()
    return float(x), float(y)


def result_at(app: ViewerApp, pos: tuple[float, float] | None):
    pub, lay = app.published, app.layout
    if pos is None or pub is None or lay is None or app.grab_mode:
        return None
    i = layout.hit(lay.results[: len(pub.results)], *pos)
    return None if i is None else pub.results[i]


def on_click(app: ViewerApp) -> None:
    pos = _mouse(app)
    if app.grab_mode and pos is not None:
        p = grab_preview(app)
        part, point = app.region.part_at(p, *pos), app.region.to_screen(p, *pos)
        if part is None:  # a click beside the region brings it there, ready to drag
            app.region.center_on(*point)
            part = "body"
        app.region.begin(part, *point)
        return
    now, last = time.monotonic(), app.last_click
    if pos is not None and last is not None and _same_click(last, now, pos):
        return  # a double-click's second press: the first press's result is the one it opens
    hit = result_at(app, pos)
    app.last_click = Click(now, pos or (-1.0, -1.0), hit)
    if hit is not None:
        app.query_row(hit.row)


def _same_click(last: Click, now: float, pos: tuple[float, float]) -> bool:
    dx, dy = abs(pos[0] - last.pos[0]), abs(pos[1] - last.pos[1])
    return now - last.t <= DOUBLE_CLICK_S and max(dx, dy) <= DOUBLE_CLICK_PX


def on_double(app: ViewerApp) -> None:
    """Open the result the double-click's first press landed on. The first press made that
    result the query, so the results have moved on since: the tile under the pointer now
    is another picture."""
    last = app.last_click
    if last is not None and last.hit is not None:
        app.open_file(last.hit.file)


def on_right(app: ViewerApp) -> None:
    hit = result_at(app, _mouse(app))
    if hit is not None:
        dpg.set_clipboard_text(str(hit.file))
        app.message = f"copied: {hit.file}"


def on_drag(app: ViewerApp) -> None:
    if app.grab_mode and app.region.dragging:
        x, y = dpg.get_drawing_mouse_pos()
        app.region.drag(*app.region.to_screen(grab_preview(app), x, y))


# ---------------------------------------------------------------- per frame
def canvas_size(app: ViewerApp) -> tuple[float, float]:
    w, h = dpg.get_item_rect_size(app.ids.canvas)
    return float(max(w - 16, 100)), float(max(h - 8, 100))  # minus the scrollbar


def apply_layout(app: ViewerApp) -> None:
    ids, lay, pub = app.ids, app.layout, app.published
    assert lay is not None
    w, h = app.canvas_size
    dpg.configure_item(ids.drawlist, width=w, height=h if app.grab_mode else max(h, lay.height))
    dpg.configure_item(ids.results_layer, show=not app.grab_mode)
    dpg.configure_item(ids.grab_layer, show=app.grab_mode)
    dpg.configure_item(ids.query_label, pos=lay.query_label)
    dpg.configure_item(ids.results_label, pos=lay.results_label, text=results_title(app))
    q = pub.query if pub else None
    tex = app.query_tex
    dpg.configure_item(
        ids.query_image,
        pmin=lay.query[:2],
        pmax=lay.query[2:],
        show=q is not None,
        uv_max=(q.width / tex.width, q.height / tex.height) if q else (1, 1),
    )
    why = no_picture(pub)
    dpg.configure_item(
        ids.no_picture,
        pos=lay.query[:2],
        text="\n".join(wrap_words(why, w - 2 * layout.MARGIN, 16)),
        show=bool(why),
    )
    bind_tiles(app)


def no_picture(pub: Published | None) -> str:
    """What the query image's place says when the source has no picture to show."""
    if pub is None or pub.query is not None or not pub.message:
        return ""
    return f"No picture from {pub.source}: {pub.message}"


def results_title(app: ViewerApp) -> str:
    """Says so when the index holds fewer images than the results asked for."""
    pub, title = app.published, "Nearest neighbor images"
    if pub is None or not pub.results or len(pub.results) >= app.k:
        return title
    return f"{title}: {len(pub.results)} of {app.k} asked for, all the index has"


def visible_results(app: ViewerApp) -> list[int]:
    """Ranks of the results whose tiles show in the canvas at its current scroll."""
    lay, pub = app.layout, app.published
    if lay is None or pub is None or app.grab_mode:
        return []
    top = dpg.get_y_scroll(app.ids.canvas)
    bottom = top + app.canvas_size[1]
    rects = lay.results[: len(pub.thumbs)]
    return [i for i, r in enumerate(rects) if r[3] > top and r[1] < bottom]


def scrolled(app: ViewerApp) -> bool:
    return dpg.get_y_scroll(app.ids.canvas) != app.tiles_scroll


def bind_tiles(app: ViewerApp) -> None:
    """Point a draw item at each visible result's texture, made at its row's height (see
    textures.HEIGHTS), and hide the other items. The textures made in one frame stay within
    MAKE_BUDGET; a tile whose texture waits for a later frame keeps the picture it showed if
    it is in the same place (a live source's new results), or shows the same picture at
    another height meanwhile (rows resized), and is hidden otherwise, so those that would be
    hidden are made first."""
    ids, lay, pub = app.ids, app.layout, app.published
    app.tiles_scroll = dpg.get_y_scroll(ids.canvas)
    shown = visible_results(app)
    assert not shown or (lay is not None and pub is not None)
    while len(ids.tiles) < len(shown):  # made hidden, on any texture, until bound
        item = dpg.draw_image(app.blank_tex, (0, 0), (1, 1), show=False, parent=ids.results_layer)
        ids.tiles.append(item)
        ids.tile_shows.append(None)
    rects = [tuple(lay.results[rank]) for rank in shown] if lay else []
    thumbs = [pub.thumbs[rank] for rank in shown] if pub else []
    files = [pub.results[rank].file for rank in shown] if pub else []
    # what each file's tile showed before this call, to stand in for a texture that waits
    before = {shows[2]: shows[0] for shows in ids.tile_shows if shows}
    heights = [texture_height(thumb, rect) for thumb, rect in zip(thumbs, rects, strict=True)]
    missing = [s for s, thumb in enumerate(thumbs) if app.tiles.find(thumb, heights[s]) is None]
    stand_ins = {s: _stand_in(app, thumbs[s], before.get(files[s])) for s in missing}
    # those that would show nothing first: no picture in place, none to stand in
    missing.sort(key=lambda s: _keeps_place(ids, s, rects[s]) or stand_ins[s] is not None)
    budget = MAKE_BUDGET
    for slot in missing:
        thumb, height = thumbs[slot], heights[slot]
        cost = make_cost(thumb, height)
        if cost > budget and budget < MAKE_BUDGET:  # the first is made whatever it costs
            break
        # one texture per picture: grey tiles share one picture
        if app.tiles.find(thumb, height) is None:
            app.tiles.make(thumb, height)
            budget -= cost
    app.tiles_waiting = False
    for slot, (thumb, rect) in enumerate(zip(thumbs, rects, strict=True)):
        tex = app.tiles.find(thumb, heights[slot])
        app.tiles_waiting |= tex is None
        if tex is None and not _keeps_place(ids, slot, rect):
            tex = stand_ins[slot]  # (no texture now: it was missing, and none was made)
        if tex is not None:
            dpg.configure_item(ids.tiles[slot], texture_tag=tex, pmin=rect[:2], pmax=rect[2:])
            dpg.show_item(ids.tiles[slot])
            ids.tile_shows[slot] = (tex, rect, files[slot])
        elif not _keeps_place(ids, slot, rect):
            _hide_tile(ids, slot)
    for slot in range(len(shown), len(ids.tiles)):
        _hide_tile(ids, slot)
    app.tiles.trim({shows[0] for shows in ids.tile_shows if shows})


def _stand_in(app: ViewerApp, thumb, shown: int | str | None) -> int | str | None:
    """What shows ``thumb``'s picture at another size until its texture is made: one made
    for it at another height, else ``shown``, the texture a tile showed its file with (from
    a thumbnail fitted to the other box: rows resized past worker.TALL_ABOVE)."""
    tex = app.tiles.find_any(thumb)
    return shown if tex is None else tex


def _keeps_place(ids: Ids, slot: int, rect: tuple) -> bool:
    """Whether the slot's tile shows a picture at ``rect`` already."""
    shows = ids.tile_shows[slot]
    return shows is not None and shows[1] == rect


def _hide_tile(ids: Ids, slot: int) -> None:
    if ids.tile_shows[slot] is not None:
        dpg.hide_item(ids.tiles[slot])
        ids.tile_shows[slot] = None


def grab_preview(app: ViewerApp):
    """Where the screen preview goes on the canvas: under the room kept for the hint, as
    large as fits."""
    w, h = app.canvas_size
    top = HINT_TOP + hint_rows(w) * HINT_SIZE + 8
    return app.region.fit_preview(8, top, w - 16, h - top - 8)


GRAB_HELP = "Click or drag the region or its corners; G/S: use it, Esc: cancel."
OVERLAP_NOTE = "  (overlaps this window: it would search for itself)"
_hint_rows: dict[float, int] = {}  # canvas width -> rows kept for the hint


def grab_hint(app: ViewerApp) -> list[str]:
    """The grab mode's instructions, in as many lines as the canvas's width needs."""
    bx, by, bw, bh = app.region.box
    hint = f"{GRAB_HELP}  {bw}x{bh} at {bx},{by}"
    if app.region.overlaps(viewport_box()):
        hint += OVERLAP_NOTE
    return wrap_words(hint, app.canvas_size[0] - 16, HINT_SIZE)


def hint_rows(width: float) -> int:
    """Rows kept above the preview for the hint: as many as its longest form takes (the
    widest figures and the overlap note), so the preview does not move under the pointer
    when the note comes or goes in the middle of a drag."""
    if width not in _hint_rows:
        longest = f"{GRAB_HELP}  99999x99999 at -99999,-99999{OVERLAP_NOTE}"
        lines = wrap_words(longest, width - 16, HINT_SIZE)
        if dpg.get_text_size("A") is None:
            return len(lines)  # no font yet: not kept
        _hint_rows[width] = len(lines)
    return _hint_rows[width]


_advances: dict[float, dict[str, int]] = {}  # font size -> character -> advance (pixels)


def wrap_words(text: str, available: float, size: float | None = None) -> list[str]:
    """``text`` broken between words into lines no wider than ``available`` when drawn at
    font ``size`` (default: the font's own). A word wider than that (a long path) is broken
    after a '/' where one fits, else where the line is full; never after a dot, as Dear
    PyGui's own wrapping does ('/root/.' then 'local/...')."""
    one = dpg.get_text_size("A")
    if one is None or not one[1]:
        return [text]  # no font yet
    size = size or one[1]
    advance = _advances.setdefault(size, {})
    for c in set(text).difference(advance):
        # drawn larger than the font, each character's advance is rounded to whole pixels
        width = (dpg.get_text_size(c) or (0, 0))[0]
        advance[c] = round(width * size / one[1])
    lines: list[str] = []
    for word in text.split(" "):
        first, *rest = _pieces(word, available, advance)
        wider = f"{lines[-1]} {first}" if lines else first
        if lines and sum(advance[c] for c in wider) <= available:
            lines[-1] = wider
        else:
            lines.append(first)
        lines += rest
    return [line.strip() for line in lines] or [""]


def wrap_lines(text: str, available: float) -> list[str]:
    """Each of ``text``'s lines wrapped by wrap_words, at the font's own size."""
    return [line for part in text.split("\n") for line in wrap_words(part, available)]


def _pieces(word: str, available: float, advance: dict[str, int]) -> list[str]:
    """``word`` as it goes on lines ``available`` wide: whole when it fits, else in pieces
    that do, each ending after a '/' where one fits."""
    pieces = []
    while sum(advance[c] for c in word) > available:
        width, fit = 0, 1
        for i, c in enumerate(word):
            width += advance[c]
            if width > available:
                break
            fit = i + 1
        cut = word.rfind("/", 0, fit) + 1  # just after the last '/' that fits
        fit = cut if cut > 1 else fit
        pieces.append(word[:fit])
        word = word[fit:]
    return [*pieces, word] if word or not pieces else pieces


def draw_grab(app: ViewerApp) -> None:
    if app.preview is not None and app.preview_tex is not None:
        image = app.preview.take()
        if image is not None:
            np.multiply(image, np.float32(1 / 255), out=app.preview_tex.buffer)
    hint = grab_hint(app)
    p = grab_preview(app)
    items = app.ids.grab
    sx0, sy0 = p.x, p.y
    sx1, sy1 = p.x + app.region.screen_w * p.scale, p.y + app.region.screen_h * p.scale
    x0, y0, x1, y1 = app.region.preview_rect(p)
    dpg.configure_item(items["preview"], pmin=(sx0, sy0), pmax=(sx1, sy1))
    dpg.configure_item(items["top"], pmin=(sx0, sy0), pmax=(sx1, y0))
    dpg.configure_item(items["bottom"], pmin=(sx0, y1), pmax=(sx1, sy1))
    dpg.configure_item(items["left"], pmin=(sx0, y0), pmax=(x0, y1))
    dpg.configure_item(items["right"], pmin=(x1, y0), pmax=(sx1, y1))
    dpg.configure_item(items["border"], pmin=(x0, y0), pmax=(x1, y1))
    dpg.configure_item(items["tl"], pmin=(x0 - 5, y0 - 5), pmax=(x0 + 5, y0 + 5))
    dpg.configure_item(items["br"], pmin=(x1 - 5, y1 - 5), pmax=(x1 + 5, y1 + 5))
    dpg.configure_item(items["hint"], pos=(8, HINT_TOP), text="\n".join(hint))


def viewport_box() -> tuple[int, int, int, int]:
    x, y = dpg.get_viewport_pos()
    return int(x), int(y), dpg.get_viewport_client_width(), dpg.get_viewport_client_height()


def update_status(app: ViewerApp) -> None:
    pub, s = app.published, app.session
    times = list(app.frame_times)[-30:]
    fps = (
        (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0
    )
    # figures of the live loop; "-" where there is none (paused, just resumed, or a source
    # with no new picture), not the last source's: both or neither
    live = pub is not None and not app.paused
    figures = live and pub.inference_ms > 0 and bool(app.latencies)
    lat = f"{statistics.median(app.latencies):.0f} ms" if figures else "-"
    infer = f"{pub.inference_ms:.1f} ms" if figures else "-"
    parts = [
        f"source {pub.source if pub else '-'}{' (paused)' if app.paused else ''}",
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
    dpg.set_value(app.ids.status, wrap_parts(parts, dpg.get_viewport_client_width() - 2 * PAD))
    note = app.message or (pub.message if pub else "")
    if (
        app.grab_mode is False
        and app.region.overlaps(viewport_box())
        and pub
        and pub.source == "screen"  # following the mouse skips this window by itself
    ):
        overlap = (
            "the grab region overlaps this window: move it (G) so the viewer does not search itself"
        )
        note = f"{note}\n{overlap}" if note and overlap not in note else overlap
    # wrapped here, at spaces and after a '/': Dear PyGui's wrap would break paths at dots
    # (a character's width is left spare, for a scroll bar the window may show)
    width = dpg.get_viewport_client_width() - 2 * PAD - (dpg.get_text_size("M") or (0, 0))[0]
    dpg.set_value(app.ids.message, "\n".join(wrap_lines(note, width)))
    pause = PAUSE_LABELS[app.paused]
    if dpg.get_item_label(app.ids.pause_button) != pause:
        dpg.configure_item(app.ids.pause_button, label=pause)
    _fit_status(app)


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
    return "\n".join(STATUS_SEP.join(parts[i] for i in row) for row in rows)


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
    below = STATUS_H + round((lines - 1) * one[1])  # STATUS_H holds one line of each
    room = dpg.get_viewport_client_height() - dpg.get_item_pos(app.ids.canvas)[1] - below
    # the canvas fills the window above the status; in a window too short for that it keeps
    # MIN_CANVAS_H, and the window scrolls to the status under it
    height = -below if room >= MIN_CANVAS_H else MIN_CANVAS_H
    if dpg.get_item_configuration(app.ids.canvas)["height"] != height:
        dpg.configure_item(app.ids.canvas, height=height)


def show_progress(app: ViewerApp, task: Task | None) -> None:
    dpg.configure_item(app.ids.progress_group, show=task is not None)
    if task is not None:
        dpg.set_value(app.ids.progress, task.progress)
        dpg.configure_item(app.ids.progress, overlay=task.note or "analyzing")
