"""The viewer's widgets: building the window, toolbar, sliders and canvas, and placing the
canvas's items each time the layout changes. Called only from the main thread by app.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dearpygui.dearpygui as dpg

from rtsearch import projection as proj
from rtsearch.errors import Problem
from rtsearch.viewer import (
    actions,
    dialogs,
    grab_view,
    keyboard,
    layout,
    mouse,
    status,
    tiles,
    uiscale,
)
from rtsearch.viewer.shortcuts import SHORTCUTS, key_for
from rtsearch.viewer.textures import edge_uv
from rtsearch.viewer.wrap import wrap_words

if TYPE_CHECKING:
    from rtsearch.session import SearchSession
    from rtsearch.thumbs import Thumb
    from rtsearch.viewer.app import ViewerApp
    from rtsearch.viewer.textures import PictureTexture
    from rtsearch.viewer.worker import Published

CTRL_KEYS = (dpg.mvKey_LControl, dpg.mvKey_RControl, dpg.mvKey_ModCtrl)
SHIFT_KEYS = (dpg.mvKey_LShift, dpg.mvKey_RShift, dpg.mvKey_ModShift)
ALT_KEYS = (dpg.mvKey_LAlt, dpg.mvKey_RAlt, dpg.mvKey_ModAlt)
# the punctuation keys, ImGuiKey_Apostrophe to _GraveAccent (Dear PyGui names a few of
# them): those it may name by their place on a US keyboard (layouts.py)
PUNCTUATION_KEYS = range(dpg.mvKey_Comma - 1, dpg.mvKey_Close_Brace + 2)
DIGIT_KEYS = range(dpg.mvKey_0, dpg.mvKey_9 + 1)  # (by place too: the Russian '?' is Shift+7)
KEY_NAMES = {
    dpg.mvKey_R: "R",
    dpg.mvKey_W: "W",
    dpg.mvKey_V: "V",
    dpg.mvKey_S: "S",
    dpg.mvKey_G: "G",
    dpg.mvKey_M: "M",
    dpg.mvKey_B: "B",
    dpg.mvKey_O: "O",
    dpg.mvKey_Spacebar: "Space",
    dpg.mvKey_Plus: "+",
    # '=' (and '+' above it): ImGuiKey_Equal, which Dear PyGui 2 names no constant for; it
    # sits just before '[' (mvKey_Open_Brace), and mvKey_Plus (61) is never reported
    getattr(dpg, "mvKey_Equal", dpg.mvKey_Open_Brace - 1): "+",
    dpg.mvKey_Add: "+",
    # the German '+' (and French, Spanish, Italian keys beside Enter): Dear PyGui names the
    # labelled key only for letters and a little punctuation, the others by their place on
    # a US keyboard, where ']' is
    dpg.mvKey_Close_Brace: "]",
    dpg.mvKey_Minus: "-",
    dpg.mvKey_Subtract: "-",
    dpg.mvKey_0: "0",
    dpg.mvKey_NumPad0: "0",
    dpg.mvKey_F1: "F1",
    dpg.mvKey_Slash: "/",
    dpg.mvKey_Comma: ",",  # the French '?' is Shift+','
    dpg.mvKey_Escape: "Escape",
    dpg.mvKey_C: "C",
    dpg.mvKey_Q: "Q",
    dpg.mvKey_Return: "Enter",
    dpg.mvKey_NumPadEnter: "Enter",
    dpg.mvKey_Left: "Left",
    dpg.mvKey_Right: "Right",
    dpg.mvKey_Up: "Up",
    dpg.mvKey_Down: "Down",
    dpg.mvKey_Home: "Home",
    dpg.mvKey_End: "End",
    # ImGuiKey_PageUp and _PageDown, which Dear PyGui 2 names no constants for (its
    # mvKey_Prior and mvKey_Next, 266 and 267, are never reported)
    517: "Page Up",
    518: "Page Down",
    dpg.mvKey_A: "A",
    dpg.mvKey_Back: "Backspace",
    dpg.mvKey_Browser_Back: "Browser Back",
    dpg.mvKey_Browser_Forward: "Browser Forward",
}
LABEL = (230, 230, 230, 255)
GREYED = (128, 128, 128, 255)  # the text of a control that cannot be used now
NOTHING_YET = (  # the query's place, before any source was chosen (view --source none)
    "Nothing to search for yet: R for a random image of the index, W the webcam, V a video "
    "file, S a region of the screen (G to set it), M the screen under the mouse"
)
DIMS_TIP_EMPTY = "The index's dimensions: load or analyze an index first."
TRIM_TIP = (
    "Live pictures (screen, video, webcam, a picture file opened with V) lose their plain "
    "borders before they are searched: the page around a picture grabbed loosely, a "
    "video's black bars. The query image outlines the part searched. Pictures of the "
    "collection (random, a result clicked) are searched as they are."
)
BACKGROUND = (37, 37, 38)  # Dear PyGui's default window colour
LABEL_SIZE = 16  # the canvas's words ("Query image", why there is none): font size


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
    step_buttons: tuple = ()  # back and forward (history.py)
    no_picture: int | str = 0  # says why, where the query image would be
    query_outline: int | str = 0  # round the part of the query searched, when trimmed
    # the hovered result's caption (its band and text), in a layer above the tiles
    caption: tuple = ()
    selection_frame: int | str = 0  # round the result selected with the keys
    caption_layer: int | str = 0
    question: int | str = 0  # the yes-or-no window (dialogs.ask); its user data answers it
    question_text: int | str = 0
    dims_apply: int | str = 0  # the Apply dims button, and what hovering dims says
    trim_box: int | str = 0  # the "trim borders" checkbox
    dims_tips: tuple = ()
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
        return self.asking() or any(dpg.is_item_active(f) for f in self.fields)

    def asking(self) -> bool:
        """Whether a file dialog or the question is on show."""
        return any(dpg.is_item_shown(d) for d in (*self.dialogs(), self.question))

    def close_dialog(self) -> bool:
        """Esc: close the open file dialog, as its Cancel would (the question, as its No);
        False when none is open."""
        if dpg.is_item_shown(self.question):
            dpg.get_item_user_data(self.question)(False)
            return True
        return self.close_file_dialogs()

    def close_file_dialogs(self) -> bool:
        """Close the open file dialog as its Cancel would; False when none is open."""
        shown = [d for d in self.dialogs() if dpg.is_item_shown(d)]
        for d in shown:
            dpg.hide_item(d)
            dpg.get_item_user_data(d)["cancel"]()
            dialogs.renew(d, picked=False)
        return bool(shown)

    def confirm_dialog(self) -> bool:
        """Enter: take the open file dialog's name as its OK would (the question's first
        answer, as clicked); False when none is open."""
        if dpg.is_item_shown(self.question):
            dpg.get_item_user_data(self.question)(True)
            return True
        for d in self.dialogs():
            if dpg.is_item_shown(d):
                info = dpg.get_file_dialog_info(d)  # what OK hands its callback
                directory = dpg.get_item_configuration(d).get("directory_selector")
                if not directory and not info.get("file_name") and not info.get("selections"):
                    return True  # no file named yet: the dialog stays open
                dpg.hide_item(d)
                dpg.get_item_user_data(d)["ok"](info)
                dialogs.renew(d, picked=True)
                return True
        return False


def build(app: ViewerApp) -> Ids:
    with dpg.window(label="rtsearch") as window:
        with dpg.group():
            rows = [dpg.add_group(horizontal=True) for _ in range(32)]
        buttons = _toolbar(app, rows[0])
        # (at the head of the sliders' row: the buttons' row of a 1280 px window is full)
        steps = _step_buttons(app, rows[1])
        k_slider, dims, sliders, fields, trim_box = _sliders(app, rows[1])
        sliders.insert(0, steps)
        dims_input, dims_apply, dims_tips = dims
        toolbar = Toolbar(rows[: len(buttons) + len(sliders)], [buttons, sliders])
        for row in rows[len(toolbar.rows) :]:
            dpg.delete_item(row)
        with dpg.group(horizontal=True, show=False) as progress_group:
            progress = app.sized(dpg.add_progress_bar(overlay="analyzing"), width=400)
            dpg.add_button(label="Cancel", callback=lambda: actions.cancel_analyze(app))
        below = app.px(status.STATUS_H)
        with dpg.child_window(height=-below, horizontal_scrollbar=False) as canvas:
            drawlist, parts = _canvas(app)
        status_text = dpg.add_text("")
        message = dpg.add_text("", color=status.MESSAGE, wrap=0)
    file_dialogs = dialogs.build(app)
    question, question_text = dialogs.add_question(app)
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
        status_text,
        message,
        progress,
        progress_group,
        _help_window(),
        **file_dialogs,
        fields=fields,
        pause_button=next(b for b in buttons if dpg.get_item_user_data(b) == "pause"),
        step_buttons=tuple(
            b for b in dpg.get_item_children(steps, 1) if dpg.get_item_user_data(b)
        ),  # (beside their tooltips)
        no_picture=parts["no_picture"],
        query_outline=parts["query_outline"],
        caption=parts["caption"],
        selection_frame=parts["selection_frame"],
        caption_layer=parts["caption_layer"],
        question=question,
        question_text=question_text,
        dims_apply=dims_apply,
        dims_tips=dims_tips,
        trim_box=trim_box,
    )
    mouse.add_handlers(app)
    if app.session is not None:
        show_dims(ids, app.session)
    return ids


def show_dims(ids: Ids, session: SearchSession) -> None:
    """The dims box shows the index's dimensions and goes no higher than its model's; it
    and its button are greyed out, saying why, when the index holds no features to
    project again."""
    top = min(session.extractor.info.dims, proj.MAX_DIMS)
    dpg.configure_item(ids.dims_input, max_value=top)
    dpg.set_value(ids.dims_input, session.index.dims)
    can = session.reprojectable
    for item in (ids.dims_input, ids.dims_apply):
        dpg.configure_item(item, enabled=can)
    every = session.index.projection is not None and session.index.projection.kind == "none"
    tip = (
        f"The index keeps all {session.index.dims} features (--projection none): type "
        f"{proj.MIN_DIMS}-{top}, then Apply dims to reduce them by PCA."
        if can and every
        else f"The index's dimensions: type {proj.MIN_DIMS}-{top}, then Apply dims to project "
        "its stored features again."
        if can
        else "This index was saved without its features, so its dimensions cannot change "
        "here: analyze its folder again (Analyze folder..., or rtsearch analyze "
        "--keep-features)."
    )
    for item in ids.dims_tips:
        dpg.set_value(item, tip)


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


def scale_theme(scale: float, before: int | str | None = None) -> int | str | None:
    """Dear PyGui's paddings, spacings, scrollbars and slider grabs at ``scale``, bound for
    every item: the theme, or None where none is needed (scale 1 and none ``before``: Dear
    PyGui's own sizes are those)."""
    if scale == 1.0 and before is None:
        return None
    with dpg.theme() as theme, dpg.theme_component(dpg.mvAll):
        for name, size in uiscale.SIZES.items():
            values = size if isinstance(size, tuple) else (size,)
            dpg.add_theme_style(getattr(dpg, f"mvStyleVar_{name}"), *(v * scale for v in values))
    dpg.bind_theme(theme)
    return theme


def _toolbar(app: ViewerApp, row: int | str) -> list:
    named = (
        ("Random", "random"),
        ("Webcam", "webcam"),
        ("Video", "video"),
        ("Screen", "screen"),
        ("Set grab window", "grab_mode"),
        ("Under mouse", "follow_mouse"),
        ("Paste", "paste"),
        ("Load", "load"),
        ("Save", "save"),
        ("Help", "help"),
        ("Analyze folder...", "analyze"),
    )
    # each named with its key from the shortcuts' table, which the key handler goes by
    buttons = [(f"{name} ({key_for(action)})", action) for name, action in named]
    buttons.insert(7, (status.PAUSE_LABELS[False], "pause"))  # after the sources
    return [
        dpg.add_button(
            label=label, callback=lambda s, a, u: app.perform(u), user_data=action, parent=row
        )
        for label, action in buttons
    ]


def _step_buttons(app: ViewerApp, row: int | str) -> int | str:
    """Back and forward through the queries (history.py): two arrows, greyed where
    there is no step to take; one chip, so they stay together."""
    with dpg.group(horizontal=True, parent=row) as chip:
        for direction, action, tip in (
            (dpg.mvDir_Left, "back", f"Back to the query before ({key_for('back')}, Alt+Left"),
            (dpg.mvDir_Right, "forward", f"Forward again ({key_for('forward')}, Shift+Backspace"),
        ):
            button = dpg.add_button(
                arrow=True,
                direction=direction,
                callback=lambda s, a, u: app.perform(u),
                user_data=action,
                enabled=False,  # (no query yet)
            )
            with dpg.tooltip(button):
                dpg.add_text(f"{tip}, the mouse's {action} button)")
    dpg.bind_item_theme(chip, _greyed())
    return chip


def _greyed() -> int | str:
    """A theme that greys the boxes and buttons that cannot be used now."""
    with dpg.theme() as greyed:
        for kind in (dpg.mvInputInt, dpg.mvButton):
            with dpg.theme_component(kind, enabled_state=False):
                dpg.add_theme_color(dpg.mvThemeCol_Text, GREYED)
                dpg.add_theme_color(dpg.mvThemeCol_Button, BACKGROUND)
                dpg.add_theme_color(dpg.mvThemeCol_ButtonHovered, BACKGROUND)
                dpg.add_theme_color(dpg.mvThemeCol_ButtonActive, BACKGROUND)
    return greyed


def _sliders(app: ViewerApp, row: int | str):
    def relayout(sender, value, field) -> None:  # typed values (Ctrl+click) come clamped
        setattr(app.opts, field, int(value))
        # no longer fitted to the window (fit_heights), and kept
        setattr(app.opts, field.replace("_h", "_chosen"), True)
        app.dirty = True

    chips = [dpg.add_group(horizontal=True, parent=row) for _ in range(5)]
    tips: list[int | str] = []  # what hovering dims says
    # dims and its button stay together
    with dpg.group(horizontal=True, parent=chips[3]) as dims_group:
        # named before its box: after it, "num results" and the box read as one
        dpg.add_text("  dims")
        # its value follows the typing (on_enter kept it until Enter: *Apply dims* clicked
        # after typing 32 read the 100 before, and the box went back to it); Enter applies
        # it, as the button does
        dims_input = dpg.add_input_int(  # set to the index's by show_dims
            default_value=proj.DEFAULT_DIMS,
            step=0,  # no -/+ buttons: steps of one across 2-1280 are no use
            min_value=proj.MIN_DIMS,
            max_value=proj.MAX_DIMS,
            min_clamped=True,
            max_clamped=True,
        )
        with dpg.item_handler_registry() as typed:
            dpg.add_item_deactivated_after_edit_handler(callback=lambda: _dims_typed(app))
        dpg.bind_item_handler_registry(dims_input, typed)
        apply = dpg.add_button(label="Apply dims", callback=lambda: actions.reproject(app))
        app.sized(dims_input, width=60)
    with dpg.tooltip(dims_group):  # the group's: a disabled box has no hover of its own
        tips.append(app.sized(dpg.add_text(DIMS_TIP_EMPTY), wrap=380))
    dpg.bind_item_theme(dims_group, _greyed())
    with dpg.group(horizontal=True, parent=chips[0]):
        lo, hi = layout.HEADER_RANGE
        header = dpg.add_slider_int(
            label="header height",
            min_value=lo,
            max_value=hi,
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
            clamped=True,
            default_value=app.k,
            callback=lambda s, v: app.set_k(v),
        )
    for slider in (header, thumb, k_slider):
        app.sized(slider, width=160)
    trim = dpg.add_checkbox(
        label=f"trim borders ({key_for('trim')})",
        default_value=app.opts.trim,
        callback=lambda: app.perform("trim"),
        parent=chips[4],
    )
    with dpg.tooltip(trim):
        app.sized(dpg.add_text(TRIM_TIP), wrap=380)
    dims = (dims_input, apply, tuple(tips))
    return k_slider, dims, chips, (dims_input, header, thumb, k_slider), trim


def _dims_typed(app: ViewerApp) -> None:
    """The dims box left after typing: applied where Enter left it (Tab or a click
    elsewhere keep the number for *Apply dims*)."""
    if any(dpg.is_key_down(k) for k in (dpg.mvKey_Return, dpg.mvKey_NumPadEnter)):
        actions.reproject(app)


def reflow_toolbar(app: ViewerApp) -> None:
    """Wrap the toolbar's rows to the window's width (each chip's width as last drawn)."""
    bar = app.ids.toolbar
    widths = [[dpg.get_item_rect_size(c)[0] for c in section] for section in bar.sections]
    if not all(w > 0 for section in widths for w in section):
        return  # not drawn yet
    available, pad = status.inner_width(app), app.px(layout.PAD)
    packed: list[int] = []
    for section in widths:
        first = len(set(packed))
        for r, row in enumerate(layout.pack_rows(section, available, pad)):
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
            query_label = dpg.draw_text((0, 0), "Query image", color=LABEL)
            query = dpg.draw_image(app.query_tex.tag, (0, 0), (1, 1))
            # the part of a live picture searched (its plain borders trimmed)
            outline = dpg.draw_rectangle(
                (0, 0), (1, 1), color=grab_view.GRAB_BORDER, thickness=2, show=False
            )
            no_picture = dpg.draw_text((0, 0), "", color=status.MESSAGE, show=False)
            results_label = dpg.draw_text((0, 0), "Nearest neighbor images", color=LABEL)
            for words in (query_label, no_picture, results_label):
                app.sized(words, size=LABEL_SIZE)
            tile_items: list[int | str] = []
        with dpg.draw_layer(show=False) as grab:
            items = grab_view.add_items(app)
        with dpg.draw_layer() as caption_layer:  # above the tiles, which come later
            frame = app.sized(
                dpg.draw_rectangle((0, 0), (1, 1), color=keyboard.FRAME, show=False),
                thickness=keyboard.FRAME_W,
            )
            caption = (
                dpg.draw_rectangle(
                    (0, 0), (1, 1), fill=mouse.CAPTION_BG, color=mouse.CAPTION_BG, show=False
                ),
                app.sized(
                    dpg.draw_text((0, 0), "", color=LABEL, show=False), size=mouse.CAPTION_SIZE
                ),
            )
    parts = {
        "results": results,
        "grab": grab,
        "query": query,
        "query_outline": outline,
        "query_label": query_label,
        "no_picture": no_picture,
        "results_label": results_label,
        "tiles": tile_items,
        "grab_items": items,
        "caption_layer": caption_layer,
        "caption": caption,
        "selection_frame": frame,
    }
    return drawlist, parts


def _help_window() -> int | str:
    with dpg.window(
        label="Keyboard shortcuts (F1)",
        show=False,
        modal=False,
        no_collapse=True,
    ) as win:
        with dpg.table(header_row=True, borders_innerH=True):
            dpg.add_table_column(label="key", width_fixed=True)  # as wide as its widest
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


def canvas_size(app: ViewerApp) -> tuple[float, float]:
    w, h = dpg.get_item_rect_size(app.ids.canvas)
    # minus the scrollbar (and the window's padding)
    return float(max(w - app.px(16), 100)), float(max(h - app.px(8), 100))


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
    uv_min, uv_max = query_uv(q, app.query_tex, lay.query) if q else ((0, 0), (1, 1))
    dpg.configure_item(
        ids.query_image,
        pmin=lay.query[:2],
        pmax=lay.query[2:],
        show=q is not None,
        uv_min=uv_min,
        uv_max=uv_max,
    )
    box = searched_rect(pub.searched, lay.query) if q is not None and pub.searched else None
    if box is not None:
        dpg.configure_item(ids.query_outline, pmin=box[:2], pmax=box[2:], show=True)
    else:
        dpg.configure_item(ids.query_outline, show=False)
    why = no_picture(pub) or (NOTHING_YET if app.source_sent is None else "")
    if why == NOTHING_YET and app.session is None:
        why = status.NO_INDEX[0].upper() + status.NO_INDEX[1:]
        if app.pending_load is not None:  # (the folder dialog says so too)
            why = f"{app.pending_load}: choose the folder its images are in now"
        analysing = next((t for t in app.tasks if t.name == "analyze" and t.folder), None)
        if analysing is not None:  # (it said to analyse a folder, one being analysed)
            why = f"Analysing {analysing.folder}: its pictures are searched once it is done"
    status.colour(ids.no_picture, isinstance(why, Problem))
    dpg.configure_item(
        ids.no_picture,
        pos=lay.query[:2],
        text="\n".join(wrap_words(why, w - 2 * app.px(layout.MARGIN), app.px(LABEL_SIZE))),
        show=bool(why),
    )
    tiles.bind_tiles(app)


def searched_rect(searched: tuple, rect: tuple) -> tuple[float, float, float, float]:
    """The canvas rectangle round the part of the query searched (fractions of it: top,
    bottom, left, right), the query drawn at ``rect``."""
    top, bottom, left, right = searched
    x0, y0, x1, y1 = rect
    w, h = x1 - x0, y1 - y0
    return x0 + left * w, y0 + top * h, x0 + right * w, y0 + bottom * h


def query_uv(q: Thumb, tex: PictureTexture, rect: tuple) -> tuple[tuple, tuple]:
    """The part of the query's texture to draw in ``rect``: its picture's texels, from half
    a texel in when drawn larger (textures.edge_uv)."""
    return edge_uv((tex.width, tex.height), (q.width, q.height), rect)


def no_picture(pub: Published | None) -> str:
    """What the query image's place says when the source has no picture to show."""
    if pub is None or pub.query is not None or not pub.message:
        return ""
    said = f"No picture from {pub.source}: {pub.message}"
    return Problem(said) if isinstance(pub.message, Problem) else said


def results_title(app: ViewerApp) -> str:
    """Says so when the index holds fewer images than the results asked for."""
    pub, title = app.published, "Nearest neighbor images"
    if pub is None or not pub.results or len(pub.results) >= app.k or app.session is None:
        return title
    # a picture of the index searched for itself is left out of its results
    has = len(app.session.index.paths) - (pub.row is not None)
    if len(pub.results) < has:  # (results of a smaller k, the new ones on their way)
        return title
    besides = " besides the query" if pub.row is not None else ""
    return f"{title}: {len(pub.results)} of {app.k} asked for, all the index has{besides}"
