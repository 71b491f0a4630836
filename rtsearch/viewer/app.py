"""The viewer window: a manual Dear PyGui render loop on the main thread.

Only this thread calls dpg and changes the viewer's state: Dear PyGui's callbacks (keys,
mouse, buttons, sliders, dialogs) are queued and run at the top of each frame, not on the
library's own callback thread. Each frame then takes the worker's latest ``Published``
result (if new) into the query's and the tiles' textures, lays the canvas out, polls
background tasks and renders. ``run_viewer`` is the entry point for `rtsearch view` and
`rtsearch demo`.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import statistics
import subprocess
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import dearpygui.dearpygui as dpg

from rtsearch.atomic import atomic_path
from rtsearch.errors import Problem, RtsearchError, count, first_line, joined, printable
from rtsearch.perf.machine import peak_rss_mb
from rtsearch.session import SearchSession
from rtsearch.sources import (
    ClipboardSource,
    Geometry,
    RandomSource,
    ScreenSource,
    VideoSource,
    WebcamSource,
    parse_region,
    parse_source,
)
from rtsearch.thumbs import Thumb
from rtsearch.viewer import (
    actions,
    dialogs,
    fonts,
    grab_view,
    history,
    keyboard,
    layout,
    layouts,
    memory,
    mouse,
    recent,
    status,
    tiles,
    ui,
    uiscale,
    wakeup,
)
from rtsearch.viewer.display import (
    answers,
    check_display,
    keys_down,
    maximized,
    release_display,
    x_display,
    x_resources,
)
from rtsearch.viewer.grab_region import Box, GrabRegion, detect_scale
from rtsearch.viewer.history import History
from rtsearch.viewer.shortcuts import SHIFTED, action_for
from rtsearch.viewer.status import NO_INDEX
from rtsearch.viewer.tasks import Task
from rtsearch.viewer.textures import PictureTexture, TileTextures
from rtsearch.viewer.worker import Published, ScreenPreview, Worker, random_source

MAX_FPS = 60.0
# frames drawn before a screenshot is taken: the capture reads a frame drawn before the
# latest (Xvfb, llvmpipe), and a query taken in the last frame showed black
SHOT_SETTLE_FRAMES = 3
SETTLE_TIMEOUT_S = 60.0  # headless screenshot: longest wait for the first results
NO_PICTURE_WAIT_S = 5.0  # ... from a source that says it has no picture
RATE_WINDOW_S = 5.0  # the status's queries/s counts the results shown in this window
# frames drawn before the index the viewer started on is kept for the next run: one it
# cannot show (it failed at its first frames) is not the one to open every time after
KEEP_AFTER_FRAMES = 10
KEEP_SETTINGS_FRAMES = 60  # settings changed since are kept every this many frames
CTRL_MEMORY_S = 0.5  # how long a Ctrl press without its release counts as held
BRIEF_S = 4.0  # a confirmation (copied, opened, the UI scale) stays this long on the message line
ZOOM_ACTIONS = ("zoom_in", "zoom_out", "zoom_reset")  # the UI scale's keys
# what leaves the grab mode's rectangle being edited as it is (the rest end the mode)
KEEP_GRAB_MODE = ("grab_mode", "screen", "escape", "help", "trim", *ZOOM_ACTIONS)
FALLBACK_SCREEN = (1440, 900)  # the grab region's screen when none can be read
PREVIEW_W = 640  # the grab mode's preview picture: this wide, as tall as the desktop's shape
DECORATION_H = 80  # a title bar and a desktop panel, off a window that fills the screen
SCREENSHOT_FRAMES = 30  # a screenshot without quit_after_frames: frames drawn before it
TRIMMED = {
    True: "live pictures: plain borders (a page, black bars) trimmed before the search (B: off)",
    False: "live pictures: searched whole, borders and all (B: trim them)",
}


@dataclass
class ViewerOptions:
    source: str = "random"  # random | webcam[:N] | video:PATH | screen[:x,y,w,h|mouse] | none
    region: Box | None = None  # the grab rectangle to start with (None: the default)
    k: int = layout.RESULTS_DEFAULT
    header_h: int = layout.HEADER_DEFAULT
    thumb_h: int = layout.THUMB_DEFAULT
    width: int | None = None  # the window's inside as given, in screen pixels (None: ...
    height: int | None = None
    kept_size: tuple = (None, None)  # ... as kept, at UI scale 1, else the default)
    screenshot: Path | None = None
    quit_after_frames: int | None = None
    frame_stats: Path | None = None
    hidpi_scale: float | None = None  # None: detect
    ui_scale: float | None = None  # text and controls this much larger (None: the desktop's)
    watch: bool = False  # follow the index's folder and swap in updated indexes (--watch)
    # how the live queries' model file is picked for an index loaded or analysed in the
    # viewer (as the command line's was): --fp32, --threads
    fp32: bool = False
    threads: int = 1
    trim: bool = True  # plain borders off live pictures before they are searched (B)
    verify: bool = True  # a still live picture's results verified (off: --no-verify)
    remember: bool = True  # keep the index shown for plain `rtsearch` (off: --no-last)
    size_given: bool = False  # --width or --height: kept for the next run as set
    scale_given: bool = False  # given, kept or set with Ctrl++/-: kept (the desktop's is not)
    # the header and row heights given, kept or set with their sliders; until then each is
    # its default fitted to the window (layout.fit_heights), and not kept
    header_chosen: bool = True
    thumb_chosen: bool = True
    maximized: bool = False  # open maximised (kept so, and no size given)


class ViewerApp:
    def __init__(self, session: SearchSession | None, opts: ViewerOptions) -> None:
        self.opts = opts
        self.session = session
        self.k = layout.clamp(opts.k, layout.RESULTS_RANGE)
        # when a Ctrl (a Shift) press came whose release has not come yet
        self.ctrl_pressed: float | None = None
        self.shift_pressed: float | None = None
        self.alt_pressed: float | None = None
        self.typing_before = False  # a box or slider was typed into at the frame before
        # held from here: reading the screen size cannot reset it; and a display that does
        # not answer is not asked again (mss would wait on it for ever)
        display = x_display()
        read = screen_geometry() if display is None or answers(display) else None
        # text, controls, margins and rows drawn this much larger (HiDPI desktops)
        resources = x_resources(display) if display and read else None
        self.desktop_scale = uiscale.detect(resources=resources)  # Ctrl+0 goes back to it
        self.ui_scale = opts.ui_scale or self.desktop_scale
        # items sized in pixels at UI scale 1, sized again when it changes (sized)
        self.sized_items: list[tuple[int | str, dict]] = []
        self.font_items: dict[int, int | str] = {}  # the text's font at each size loaded
        self.theme: int | str | None = None  # Dear PyGui's sizes at the UI scale
        # the row and header heights the worker last heard of (it sizes pictures by them),
        # in screen pixels
        self.rows_said, self.header_said = self.px(opts.thumb_h), self.px(opts.header_h)
        self.worker = Worker(
            session, self.k, row_h=self.rows_said, header_h=self.header_said, trim=opts.trim,
            verify=opts.verify,
        )  # fmt: skip
        self.published: Published | None = None
        self.layout: layout.Layout | None = None
        self.dirty = True  # layout must be recomputed
        self.canvas_size = (0.0, 0.0)
        self.message = "" if session else NO_INDEX
        # a confirmation said for a moment (say_briefly): the message, and until when
        self.brief: tuple[str, float] | None = None
        self.remembered: tuple[Path, Path] | None = None  # the index shown, kept for next time
        self.font: Path | None = None  # the text's font file (None: Dear PyGui's built-in)
        self.tasks: list[Task] = []
        self.grab_mode = False
        self.preview: ScreenPreview | None = None
        self.video_path: Path | None = None
        # the index each of the load and save dialogs was last opened beside
        self.opened_beside: dict[int | str, Path] = {}
        self.pending_load: Path | None = None  # index chosen, waiting for its image folder
        # the index on show when the save dialog opened: the one saved, whatever shows by OK
        self.to_save: SearchSession | None = None
        self.random_after_load = False  # R pressed while an index loads: drawn from that one
        self.window_size = (0, 0)  # the viewport's client size, for the dialogs shown
        self.reprojections = 0  # re-projection requests: only the last one's result is taken
        self.applied_dims: tuple[Path | None, int] | None = None  # (index file, dims) applied
        # an index re-projected here and not saved since: (its file, the dims the file holds)
        self.unsaved: tuple[Path, int] | None = None
        self.paused = False
        self.frame_times: deque[float] = deque(maxlen=5000)
        self.session_at = 0.0  # when the index on show was shown (perf_counter)
        self._frame_start = 0.0  # when the last frame began rendering (see _pace)
        # the window in physical pixels, refreshed by the UI thread, read by the worker
        self.viewport_box: tuple[int, int, int, int] | None = None
        self.latencies: deque[float] = deque(maxlen=30)
        self.inferences: deque[float] = deque(maxlen=30)  # of the same queries, in ms
        # when each new result was shown, for the status's queries/s; since when they count
        self.shown_times: deque[float] = deque(maxlen=int(RATE_WINDOW_S * MAX_FPS))
        self.shown_count = 0  # new pictures shown with their results, since the start
        self.longest_wait = 0.0  # the longest time between two of them, seconds
        self.first_frame_at: float | None = None  # perf_counter
        self.rate_since = time.perf_counter()
        self.shown_captured = -1.0  # capture time of the query picture on screen
        self.frames = 0
        self.tiles_scroll = 0.0  # the canvas scroll the result tiles were bound for
        self.tiles_waiting = False  # some visible tile waits for its texture (next frame)
        self.last_click: mouse.Click | None = None
        self.source_sent: str | None = None  # the last source handed to the worker
        self.history = History()  # the collection's pictures that were the query (history.py)
        self.recent_panel: int | str = 0  # the Load dialog's list of indexes shown before
        self.unkept_said = False  # memory.unkept shown on the message line
        self.selected: int | None = None  # the rank selected with the keys (keyboard.py)
        self.framed: tuple | None = None  # where its frame is drawn
        self.selected_from: list | None = None  # where the pointer was when it was selected
        # a step back's history entry and the picture it left: framed when it shows
        self.reframe: tuple[int, Path] | None = None
        self.captioned: tuple | None = None  # what the hover caption shows (mouse.show_caption)
        self.captioned_pub: Published | None = None
        self.scroll_back: float | None = None  # the results' scroll, for when grab mode ends
        self.pointer_start: tuple | None = None  # where the pointer was at the first frame
        self.pointer_moved = False
        # where X11 said the pointer was on the canvas when Dear PyGui did not know (mouse.py),
        # and at which frame
        self.pointer_asked: tuple[int, tuple[float, float] | None] = (-1, None)
        self.mirrored = False  # the worker was told the screen grab takes in this window
        self.dialogs_closed: queue.SimpleQueue = queue.SimpleQueue()  # by their own buttons
        self.reshow: list = []  # file dialogs hidden for a frame to be centred again
        self.questions: deque[dialogs.Question] = deque()  # waiting to be asked (dialogs.ask)
        self.quit_asked = False  # whether quitting (during an analysis, unsaved) is asked
        self.question_on_show: dialogs.Question | None = None  # (dialogs.ask_next)
        # frames drawn in a row with no question nor file dialog on show (dialogs.ask_next)
        self.quiet_frames = dialogs.QUIET_FRAMES
        desk, home, monitors = read or ((0, 0, *FALLBACK_SCREEN),) * 2 + ((),)
        self.region = GrabRegion(desk, home=home, monitors=monitors)
        # a region kept from the last run that no longer fits this desktop (a monitor
        # unplugged) is moved onto it, and said once the screen is grabbed (it was not)
        self.region_note = self.region.set_box(opts.region) if opts.region else ""
        self.region.scale = opts.hidpi_scale or detect_scale(home[2], _logical_width())
        # kept at UI scale 1: a window left at 1.5x opens as large for its text at 3x
        sides = zip(opts.kept_size, layout.WINDOW_DEFAULT, strict=True)
        kept_w, kept_h = (side or default for side, default in sides)
        asked_w, asked_h = opts.width or self.px(kept_w), opts.height or self.px(kept_h)
        self.region_before = self.region.box
        self.region_start = self.region.box  # as kept, fitted to this desktop
        self.first_size = (0, 0)  # the window's inside at the first frame
        self.resized = False  # since the first frame: its size kept from then (the first too)
        self.settings_kept: dict | None = None  # what _keep_settings last wrote
        # the window's size when last seen not maximised at two looks in a row (a window
        # manager may say it is maximised a frame after it is drawn so), kept as its size
        # while it is maximised; and the size at the last look. Set below to the size it is
        # made at (maximised before the second look, it had none to keep)
        self.normal_size: tuple[int, int] | None = None
        self.size_looked_at: tuple[int, int] | None = None
        # no larger than the first monitor (1280x860 on a 1366x768 laptop's: its bottom,
        # the status bar and the last row, was off the screen)
        # (taller than the screen: shorter still by a title bar and a panel, which a window
        # manager adds; one that fits is left as asked)
        fits = read is not None
        most_w, most_h = (round(side / self.region.scale) for side in home[2:])
        self.width = most_w if fits and asked_w > most_w else asked_w
        self.height = most_h - self.px(DECORATION_H) if fits and asked_h > most_h else asked_h
        self.normal_size = (self.width, self.height)
        # placed on it: at 100,100 (the toolkit's place) an 800x520 window on an 800x600
        # screen ran 100 px off its right and bottom edges
        x, y = (round(v / self.region.scale) for v in home[:2])
        self.pos = (x + min(100, max(0, most_w - self.width)),
                    y + min(100, max(0, most_h - self.height)))  # fmt: skip

    def px(self, size: float) -> int:
        """``size`` (pixels at UI scale 1) in screen pixels at the viewer's UI scale."""
        return round(size * self.ui_scale)

    def sized(self, item: int | str, **sizes: float | tuple) -> int | str:
        """``item`` with its ``sizes`` (options in pixels at UI scale 1, or pairs of them)
        set at the UI scale, now and whenever it changes."""
        self.sized_items.append((item, sizes))
        dpg.configure_item(item, **self._scaled(sizes))
        return item

    def _scaled(self, sizes: dict) -> dict:
        return {
            name: tuple(self.px(v) for v in size) if isinstance(size, tuple) else self.px(size)
            for name, size in sizes.items()
        }

    def set_ui_scale(self, scale: float, *, given: bool = True) -> None:
        """Draw the viewer at ``scale`` from the next frame: text, controls, margins and
        rows (Ctrl++, Ctrl+-, Ctrl+0). ``given``: kept for the next run, as --ui-scale."""
        self.ui_scale = uiscale.fit(scale)
        self.opts.scale_given = given
        self._draw_at_scale()
        for item, sizes in self.sized_items:
            if dpg.does_item_exist(item):
                dpg.configure_item(item, **self._scaled(sizes))
        dialogs.refit_shown(self)
        self.dirty = True
        keys = f"Ctrl++ larger, Ctrl+- smaller, Ctrl+0 the desktop's ({self.desktop_scale:g}x)"
        self.say_briefly(f"UI scale {self.ui_scale:g}x ({keys})")

    def say_briefly(self, message: str) -> None:
        """``message`` on the message line for BRIEF_S, then the source's own words again:
        a confirmation ("copied: X") stayed up while a live source's results moved on."""
        self.message, self.brief = message, (message, time.monotonic() + BRIEF_S)

    def _draw_at_scale(self) -> None:
        """The font and Dear PyGui's own sizes at the UI scale."""
        if self.font is not None:  # names drawn as they are, not as '?' beyond ASCII
            size = round(fonts.SIZE * self.ui_scale)
            if size not in self.font_items:
                loaded = dpg.add_font(str(self.font), size, parent=self.font_registry)
                self.font_items[size] = loaded
            dpg.bind_font(self.font_items[size])
        else:  # the built-in font has one size: drawn larger, blurred
            dpg.set_global_font_scale(self.ui_scale)
        before, self.theme = self.theme, ui.scale_theme(self.ui_scale, before=self.theme)
        if before is not None and before != self.theme:
            dpg.delete_item(before)

    # ------------------------------------------------------------ set-up
    def build(self) -> None:
        check_display()
        dpg.create_context()
        self.font = fonts.find_font()
        self.font_registry = dpg.add_font_registry()
        self._draw_at_scale()
        dpg.create_viewport(
            title=window_title(self.session), width=self.width, height=self.height,
            x_pos=self.pos[0], y_pos=self.pos[1],
            disable_close=True,  # its close is the exit callback's: _do_quit
        )  # fmt: skip
        dpg.set_exit_callback(self._do_quit)
        # callbacks run in frame(), on this thread: on Dear PyGui's thread they changed the
        # state a frame was drawing (leaving grab mode freed the preview it was drawing)
        dpg.configure_app(manual_callback_management=True)
        dpg.setup_dearpygui()
        with dpg.texture_registry() as reg:
            # the query's texture: one kept for each size of query picture (_show_query)
            self.query_tex = PictureTexture(reg)
            # what a result tile's draw item points at until it is bound (never drawn)
            self.blank_tex = dpg.add_static_texture(1, 1, [0.0, 0.0, 0.0, 1.0])
            # the grab mode's preview of the desktop, uploaded only while the mode is on
            self.preview_tex = PictureTexture(reg, keep=2)
            self.registry = reg
            self.tiles = TileTextures(reg)
        self.ids = ui.build(self)
        dpg.set_primary_window(self.ids.window, True)
        ui.clear_background(self.ids.window)  # after: being made primary resets the flags
        dpg.show_viewport()
        if self.opts.maximized:  # as it was left (a size given wins)
            dpg.maximize_viewport()
        row = self._recall_history(self.session) if self.session is not None else None
        self._start_source(self.opts.source, row)
        self.worker.start()
        if self.opts.watch:
            actions.watch(self)

    def _start_source(self, spec: str, row: int | None = None) -> None:
        """Switch the live source; ``spec`` as for --source. Bad specs become a message.
        ``row``: the random source's first picture (else a random one)."""
        try:
            kind, arg = parse_source(spec)
            # a region given as x,y,w,h that does not fit the screen is moved or cut to fit
            given = kind == "screen" and arg not in ("", "mouse")
            note = self.region.set_box(parse_region(arg)) if given else ""
            if kind == "screen" and arg == "" and self.region_note:
                note, self.region_note = self.region_note, ""
            elif given:
                self.region_note = ""  # (another region given: the kept one is not said)
            source = self._make_source(kind, arg)
            if isinstance(source, RandomSource) and row is not None:
                source.trigger(row, fallback=True)  # (a query recalled: gone, another)
        except (ValueError, RtsearchError) as exc:
            self.message = Problem(exc)
            return
        if source is None:
            return
        self.paused = False
        self.message = note
        self.worker.send("source", source)
        self.source_sent = source.name
        keyboard.to_top(self)  # (its picture shows at the top: S left it below the fold)
        self.dirty = True  # the query's place stops saying there is nothing to search for
        if isinstance(source, RandomSource):
            self.message = "" if self.session else NO_INDEX

    def _make_source(self, kind: str, arg: str):
        if kind == "random":
            s = self.session
            if s is None:
                raise RtsearchError(NO_INDEX)
            return random_source(s)
        if kind == "webcam":
            return WebcamSource(int(arg or 0))
        if kind == "video":  # (its file checked by parse_source)
            self.video_path = Path(arg)
            return VideoSource(self.video_path)
        if kind == "screen" and arg == "mouse":
            return ScreenSource(self.region.box, follow_mouse=True, avoid=self._own_window)
        if kind == "screen":
            return ScreenSource(self.region.box)
        if kind == "clipboard":
            # the picture (and the text, by a helper program) read by the worker
            return ClipboardSource(_toolkit_clipboard_text())
        return None  # none

    def _own_window(self) -> tuple[int, int, int, int] | None:
        """The viewer's window in physical pixels, as last drawn (read by the worker)."""
        return self.viewport_box

    # ------------------------------------------------------------ actions
    def on_key(self, key: int) -> None:
        """Key handler; also what tests drive, so the shortcut path is the real one."""
        if key in ui.CTRL_KEYS:
            self.ctrl_pressed = time.monotonic()
            return
        if key in ui.SHIFT_KEYS:
            self.shift_pressed = time.monotonic()
            return
        if key in ui.ALT_KEYS:
            self.alt_pressed = time.monotonic()
            return
        if key == dpg.mvKey_Escape and self.ids.close_dialog():
            return
        if key in (dpg.mvKey_Return, dpg.mvKey_NumPadEnter) and self.ids.confirm_dialog():
            return
        ctrl, shift = (
            self._held(self.ctrl_pressed, ui.CTRL_KEYS),
            self._held(self.shift_pressed, ui.SHIFT_KEYS),
        )
        name = self._key_name(key, shift, ctrl)
        # the UI scale's keys over a dialog too, to read it (no text field takes these);
        # Ctrl+Q over a file dialog's name field too (it did nothing there)
        held = action_for(name, ctrl=True) if name and ctrl else None
        if held in (*ZOOM_ACTIONS, "quit"):
            self.perform(held)
            return
        if self.ids.typing() or self.typing_before:
            # keys typed into a text field are not shortcuts, nor the Enter that ended the
            # typing (it left the field as the key came: Enter in dims said "no result is
            # selected")
            return
        if key in (dpg.mvKey_Return, dpg.mvKey_NumPadEnter) and self.grab_mode:
            self.perform("screen")  # the region as set: searched, as G and S do
            return
        if name in ("Left", "Right") and self._held(self.alt_pressed, ui.ALT_KEYS):
            name = f"Alt+{name}"
        plain = action_for(name) if name else None
        if plain and keyboard.on_key(self, plain, shift, ctrl):
            return  # (the help scrolled, the grab rectangle moved)
        action = action_for(name, ctrl) if name else None
        if action:
            self.perform(action)

    def _key_name(self, key: int, shift: bool, ctrl: bool) -> str | None:
        """The name the shortcut tables know ``key`` by: for a key Dear PyGui may name by
        its place on a US keyboard, what the layout typed with it (the Swedish '+' is
        named '-' there: layouts.py), where the keys held down can be read; else Dear
        PyGui's name, a few as Shift makes them (SHIFTED: a German '?' read so is '-').
        With Ctrl, the keys unshifted: Ctrl+Shift+'-' is Ctrl+'-'."""
        name = ui.KEY_NAMES.get(key)
        shifted = shift and not ctrl
        if key in ui.PUNCTUATION_KEYS or (shifted and key in ui.DIGIT_KEYS):
            down = keys_down(x_display(), shifted)
            read = layouts.typed(down) if down else None  # (None: not known, or let go)
            if read is not None or (down is not None and len(down) == 1):
                return read  # (one key held, and none the shortcuts take: '_')
        return SHIFTED[name] if shifted and name in SHIFTED else name

    @staticmethod
    def _held(pressed: float | None, keys: tuple) -> bool:
        """Ctrl (Shift) as the key events came, before this one: a quick Ctrl+S is often
        released by the time the key handler runs, and is_key_down alone took it for a
        plain S. (A press whose release never came, outside the window, counts for a moment
        only.)"""
        recent = pressed is not None and time.monotonic() - pressed < CTRL_MEMORY_S
        return recent or any(dpg.is_key_down(k) for k in keys[:2])

    def on_key_release(self, key: int) -> None:
        if key in ui.CTRL_KEYS:
            self.ctrl_pressed = None
        if key in ui.SHIFT_KEYS:
            self.shift_pressed = None
        if key in ui.ALT_KEYS:
            self.alt_pressed = None

    def perform(self, action: str) -> None:
        """Every shortcut and button ends here."""
        if self.grab_mode and action in history.ACTIONS:
            return  # (the rectangle being set stays, as with the other keys; arrows greyed)
        if self.grab_mode and action == "follow_mouse":
            self._leave_grab_mode(apply=False, keep=True)  # the box as set, round the pointer
        elif self.grab_mode and action not in KEEP_GRAB_MODE:
            # (B, a setting of the searches, and the UI scale leave the rectangle being
            # edited as it is)
            self._leave_grab_mode(apply=False)
        self.message = ""  # a new action: the source's own messages show again
        if action in keyboard.ACTIONS:
            keyboard.perform(self, action)
            return
        if action in history.ACTIONS:
            history.perform(self, action)
            return
        handler = getattr(self, f"_do_{action}")
        handler()

    def _do_random(self) -> None:
        if any(t.name == "load" for t in self.tasks):  # (R went to the index being left,
            self.random_after_load = True  # its history kept a picture never chosen)
            self.message = "loading: R draws from the index being loaded once it is open"
            return
        if self.session is None:
            self.message = NO_INDEX
            return
        self._resume()
        self.history.asked_new()
        self.reframe = None
        self.worker.send("random")
        if self.source_sent != "random":  # (the worker makes a random source of it)
            # the query's place stops saying there is nothing to search for (--source none)
            self.source_sent, self.dirty = "random", True
        keyboard.to_top(self)  # (its picture shows at the top)

    def query_row(self, row: int, asked: bool = True) -> None:
        """A clicked result becomes the query, paused or not; ``asked`` False: the random
        draw it was before is put back (a double-click's first press undone)."""
        self.message = ""
        self._resume()
        self.history.asked_new()
        self.reframe = None
        self.worker.send("row", (row, asked))

    def resume_live(self) -> None:
        """Back to the live source a result clicked took the place of, while the worker
        keeps it (worker.PARK_S)."""
        self._resume()
        self.worker.send("unpark")

    def _resume(self) -> None:
        if self.paused:
            self.paused = False
            self.worker.send("pause", False)

    def _do_trim(self) -> None:
        self.opts.trim = not self.opts.trim
        dpg.set_value(self.ids.trim_box, self.opts.trim)
        self.worker.send("trim", self.opts.trim)  # (the last picture is searched again)
        self.message = TRIMMED[self.opts.trim]

    def _do_webcam(self) -> None:
        self._start_source("webcam:0")

    def _do_video(self) -> None:
        on_video = self.published is not None and self.published.source.startswith("video")
        there = self.video_path is not None and self.video_path.exists()
        if there and not on_video:  # the last video again
            self._start_source(f"video:{self.video_path}")
            return
        if self.video_path is not None:  # opened in the folder of the one playing
            if not there:  # (V said "not found" at every press, the dialog never opened)
                self.message = Problem(f"{self.video_path}: gone since it played; choose another")
            folder = dialogs.nearest_folder(str(self.video_path.parent))
            dialogs.renew(self.ids.video_dialog, False, folder)
        self.open_dialog(self.ids.video_dialog)

    def _do_paste(self) -> None:
        self._start_source("clipboard")

    def _do_follow_mouse(self) -> None:
        self._start_source("screen:mouse")

    def _do_screen(self) -> None:
        if self.grab_mode:
            self._leave_grab_mode(apply=True)
        else:
            self._start_source("screen")

    def _do_grab_mode(self) -> None:
        if self.grab_mode:
            self._leave_grab_mode(apply=True)
            return
        self.grab_mode = True
        # the desktop as it is now: monitors may have been added, moved or resized since
        # (the preview was stretched to the old shape, the region placed on the old size)
        read = screen_geometry()
        if read is not None:
            self.message = self.region.set_desktop(*read) or self.message
        self.region_before = self.region.box  # what cancelling the mode puts back
        self.scroll_back = dpg.get_y_scroll(self.ids.canvas)  # the results', after
        self._show_preview()
        self.dirty = True

    def _show_preview(self) -> None:
        """The desktop's preview started, of the desktop's shape."""
        _, _, dw, dh = self.region.desk
        if "preview" not in self.ids.grab:
            grab_view.add_preview(self)
        if self.preview is not None:
            self.preview.close()
        wide = self.px(PREVIEW_W)
        self.preview = ScreenPreview(wide, max(1, round(wide * dh / dw)))
        # hidden until its first picture: the texture holds the last one, of the desktop
        # as it was (stretched where its shape changed), for the first tenth of a second
        dpg.configure_item(self.ids.grab["preview"], show=False)

    def desktop_changed(self, desk: tuple[int, int, int, int], home, monitors=()) -> None:
        """The preview saw another desktop (a monitor changed while the mode is on)."""
        self.message = self.region.set_desktop(desk, home, monitors) or self.message
        self._show_preview()
        self.dirty = True

    def _leave_grab_mode(self, apply: bool, keep: bool | None = None) -> None:
        """G or S keep the region as set and search it (``apply``); M keeps it to follow
        the pointer with (``keep``); Esc, or another action, put back the one before."""
        self.grab_mode = False
        self.region.end()
        if not (apply if keep is None else keep):
            # (onto the desktop as it is now: a monitor may have gone meanwhile)
            self.region.set_box(self.region_before)
        if self.preview is not None:
            self.preview.close()
            self.preview = None
        if "preview" in self.ids.grab:
            grab_view.remove_preview(self)
        self.dirty = True
        if apply:
            self._start_source("screen")

    def _do_pause(self) -> None:
        self.paused = not self.paused
        self._count_afresh()
        self.worker.send("pause", self.paused)

    def _do_more(self) -> None:
        self.set_k(self.k + 1)

    def _do_fewer(self) -> None:
        self.set_k(self.k - 1)

    def set_k(self, k: int) -> None:
        self.k = layout.clamp(k, layout.RESULTS_RANGE)
        dpg.set_value(self.ids.k_slider, self.k)
        self.worker.send("k", self.k)
        self.dirty = True  # the results' title may say how many the index could give

    def _do_analyze(self) -> None:
        if actions.analyzing(self):  # (said once a folder was chosen)
            self.message = actions.ANALYSIS_RUNNING
            return
        self.open_dialog(self.ids.analyze_dialog)

    def _do_quit(self) -> None:
        """Ctrl+Q, and the window's close (its X, Alt+F4): the viewer closes, but while an
        analysis runs it asks first (it closed without a word, cutting an hour's analysis
        short). Asked again before the answer (the question waits behind a file dialog),
        it closes."""
        running = actions.analyzing(self)
        unsaved = actions.unsaved_dims(self)
        if (not running and unsaved is None) or self.quit_asked:
            dpg.stop_dearpygui()
            return
        self.quit_asked = True
        # a file dialog open is closed, as Esc closes it: the question showed only once the
        # user had closed it, unseen till then; one asked of another question comes next
        self.ids.close_file_dialogs()
        if self.question_on_show is not None:
            what = "during the analysis" if running else "without saving"
            self.message = (
                f"quitting {what} is asked once the question on show is answered; close the "
                "window again to quit now"
            )
        if not running:
            self._ask_quit_unsaved(*unsaved)  # type: ignore[misc]
            return
        task = running[0]

        def stay() -> None:
            self.quit_asked = False
            if not task.finished:
                self.message = f"the analysis of {task.folder} goes on"

        def words() -> str:  # (its figures as they are while it is asked: they went stale)
            if task.finished:
                return f"The analysis of {task.folder} has ended. Quit now?"
            return (
                f"The analysis of {task.folder} is at {task.note or 'its start'}. Quit now? "
                "The images analysed so far are kept, and Analyze folder... (A) on it again "
                "goes on from there."
            )

        dialogs.ask(
            self, "Quit during an analysis?", words, "Quit", on_yes=dpg.stop_dearpygui,
            on_no=stay, first=True,
        )  # fmt: skip

    def _ask_quit_unsaved(self, file: Path, dims: int, held: int) -> None:
        """Ctrl+Q, or the window's close, with a re-projection not saved: asked first (it
        quit without a word, and the next run showed the file's dimensions again)."""

        def stay() -> None:
            self.quit_asked = False
            self.message = "not quit: Save... (Ctrl+S) keeps the re-projection"

        dialogs.ask(
            self, "Quit without saving?",
            f"The index on show was re-projected here to {dims} dimensions, and {file} "
            f"still holds {held}. Quit without saving it? Save... (Ctrl+S) keeps it.",
            "Quit", on_yes=dpg.stop_dearpygui, on_no=stay, first=True,
        )  # fmt: skip

    def _do_load(self) -> None:
        self._open_beside_index(self.ids.load_dialog)
        recent.fill(self)  # (the indexes shown before, beside the files)

    def _do_save(self) -> None:
        if self.session is None:
            self.message = "nothing to save: no index loaded"
            return
        self.to_save = self.session
        self._open_beside_index(self.ids.save_dialog)

    def _open_beside_index(self, tag: int | str) -> None:
        """Open the load or save dialog in the folder of the index shown, the first time
        for that index (they opened in the folder the viewer was started from); then where
        it was left."""
        source = self.session.source if self.session is not None else None
        if source is not None and self.opened_beside.get(tag) != source:
            self.opened_beside[tag] = source
            dialogs.renew(tag, False, str(Path(source).parent))
        self.open_dialog(tag)

    def open_dialog(self, tag: int | str) -> None:
        dialogs.show_fitted(self, tag, dialogs.DIALOG_SIZE)

    def _do_zoom_in(self) -> None:
        self.set_ui_scale(self.ui_scale + uiscale.STEP)

    def _do_zoom_out(self) -> None:
        self.set_ui_scale(self.ui_scale - uiscale.STEP)

    def _do_zoom_reset(self) -> None:
        self.set_ui_scale(self.desktop_scale, given=False)

    def _do_help(self) -> None:
        if dpg.is_item_shown(self.ids.help):
            dpg.hide_item(self.ids.help)
        else:
            dialogs.show_fitted(self, self.ids.help, dialogs.HELP_SIZE)

    def _do_escape(self) -> None:
        closes = self.grab_mode or dpg.is_item_shown(self.ids.help)
        if self.grab_mode:
            self._leave_grab_mode(apply=False)
        dpg.hide_item(self.ids.help)
        if not closes:
            self.selected = None  # (the last thing Esc takes away)

    # ------------------------------------------------------------ sessions and tasks
    def start_task(self, task: Task) -> None:
        self.tasks.append(task)

    def set_session(self, session: SearchSession) -> None:
        old = self.session
        if old is not None and self._kept_here():
            memory.keep(**history_fields(self._kept_history()))  # (the one shown until now)
        first, self.session = old is None, session
        self.session_at = time.perf_counter()
        self.worker.send("session", session)  # a random source is renewed by the worker
        # another index: its own history, and the query shown last with it
        other = first or _file(old.source) != _file(session.source)
        row = self._recall_history(session) if other else None
        if first and self.published is None:  # nothing was showing: start with a random image
            self._start_source("random", row)  # (or the query shown last with this index)
        elif row is not None and self.source_sent == "random":
            self.worker.send("recall", row)
            self.history.went(self.history.at)  # (the pictures before it are no queries)
        images = count(len(session.index.paths), "image")
        self.message = f"index: {session.source or 'analysed'} ({images})"
        dpg.set_viewport_title(window_title(session))
        ui.show_dims(self.ids, session)
        self._remember(session)
        if self.opts.watch:
            self._watch(session)

    def _watch(self, session: SearchSession) -> None:
        """`view --watch`: follow the folder of the index on show, whichever was loaded or
        analysed last (the watch stayed on the first until that one's folder changed, and
        an analysed copy of the folder watched was never followed)."""
        watches = [t for t in self.tasks if t.name == "watch" and not t.cancel.is_set()]
        for task in watches:
            if session.source is None or _file(task.index) != _file(session.source):
                task.quiet = True
                task.cancel.set()
        if session.source is not None and all(t.cancel.is_set() for t in watches):
            actions.watch(self)

    def _recall_history(self, session: SearchSession) -> int | None:
        """An index shown (the first of a run, or another than the one on show): its
        history as kept with it (memory.py, where it was shown before), else none, and
        the row of the query to start on (history.recalled); None: a random one. Without
        the memory (--no-last), one history goes on over the indexes loaded."""
        if not self.opts.remember:
            return None
        source, named = session.source, session.index.base_dir
        kept = memory.history_of(source, named) if source is not None else None
        self.history, row = history.recalled(*kept, session) if kept else (History(), None)
        return row

    def _kept_here(self) -> bool:
        """Whether the index on show is the one kept for next time (its history is kept
        with it; not with one of another file, kept before an index without a file)."""
        s, kept = self.session, self.remembered
        return s is not None and kept is not None and _file(kept[0]) == _file(s.source)

    def _kept_history(self) -> tuple[tuple[str, ...], int] | None:
        """The history as kept with the index shown (memory.py)."""
        s = self.session
        return history.kept(self.history, s.base_dir) if s is not None else None

    def _remember(self, session: SearchSession) -> None:
        """Keep the index file shown, and the folder its images are shown from, for plain
        `rtsearch` to open next time: written when they change, not for every new version
        of one index (--watch, Apply dims)."""
        source = session.source
        if not self.opts.remember or source is None:
            return
        if (source, session.base_dir) == self.remembered:
            return
        self.remembered = (source, session.base_dir)
        memory.keep_shown(source, session.base_dir, self._kept_history(), session.index.base_dir)

    def _poll_tasks(self) -> None:
        shown = self.session
        for task in self.tasks:
            while task.on_post is not None and not task.posted.empty():
                task.on_post(task.posted.get())
        for task in [t for t in self.tasks if t.finished]:
            self.tasks.remove(task)
            if task.quiet:
                continue
            if task.error:
                self.message = Problem(task.error)
            elif task.cancel.is_set() and task.result is None:
                self.message = task.cancelled or f"{task.name} cancelled"
            else:
                task.done(task.result)
                if task.cancel.is_set():  # in its last step (the save): it is done, and used
                    self.message += f" ({task.name} finished before the cancel could stop it)"
        if self.random_after_load and not any(t.name == "load" for t in self.tasks):
            self.random_after_load = False
            if self.session is not shown:  # loaded (not failed, nor asking for its folder)
                self._do_random()
        # the analysis asked for last: a cancelled one may still be keeping its work; else a
        # watch pass analysing new files (it said nothing until their index showed)
        analyses = actions.analyzing(self) or [t for t in self.tasks if t.name == "analyze"]
        analyses = analyses or [t for t in self.tasks if t.name == "watch" and t.note]
        status.show_progress(self, analyses[0] if analyses else None)

    # ------------------------------------------------------------ per frame
    def frame(self) -> None:
        self._pace()  # first: what the worker publishes while we wait is in this frame
        self._run_callbacks()
        pub = self.worker.latest()
        if pub is not None and pub is not self.published:
            self._take(pub)
        while not self.worker.refused.empty():  # a paste of no picture: the source stays
            self.message, self.source_sent = self.worker.refused.get_nowait()
        if self.brief is not None and time.monotonic() > self.brief[1]:
            if self.message == self.brief[0]:  # (not another said since)
                self.message = ""
            self.brief = None
        size = ui.canvas_size(self)
        if size != self.canvas_size:
            self.canvas_size, self.dirty = size, True
            ui.reflow_toolbar(self)
            window = dpg.get_viewport_client_width(), dpg.get_viewport_client_height()
            if window != self.window_size:  # not when only the bars reflowed
                self.window_size = window
                self.first_size = self.first_size if any(self.first_size) else window
                self.resized = self.resized or window != self.first_size
                dialogs.refit_shown(self)
        if self.dirty:
            self._relayout()
        elif self.tiles_waiting or tiles.scrolled(self):
            tiles.bind_tiles(self)
        if self.grab_mode:
            grab_view.draw_grab(self)
        keyboard.reframe(self)
        keyboard.show_frame(self)
        mouse.show_caption(self)
        dialogs.renew_closed(self)
        self._poll_tasks()
        dialogs.ask_next(self)  # (one asked behind a file dialog or another question)
        if self.frames % 10 == 0:
            dialogs.reword(self)  # (figures that move on: an analysis's)
        if self.frames % 10 == 0 or not self.ids.toolbar.packed:
            # every frame until the first drawn frame has given the bars' sizes
            ui.reflow_toolbar(self)
            mirrored = status.searches_itself(self)  # (the status's message says so too)
            if mirrored != self.mirrored:  # searched less often while it would search itself
                self.mirrored = mirrored
                self.worker.send("mirror", mirrored)
            status.update_status(self)
            self.viewport_box = self.region.to_physical(grab_view.viewport_box())
        # (for the keys of the frame drawn next: the field's Enter ends its typing)
        self.typing_before = any(dpg.is_item_active(f) for f in self.ids.fields)
        modal = dialogs.modal_shown(self)  # (a dialog's own Cancel hides it as it draws)
        dpg.render_dearpygui_frame()
        modal = modal or dialogs.modal_shown(self)
        self.quiet_frames = 0 if modal else self.quiet_frames + 1
        dialogs.show_again(self)  # hidden by refit_shown for the frame just drawn
        if self.scroll_back is not None and not self.grab_mode and not self.dirty:
            # the results are back at their height (the frame just drawn): scroll as before
            dpg.set_y_scroll(self.ids.canvas, self.scroll_back)
            self.scroll_back = None
        now = time.perf_counter()
        self.first_frame_at = self.first_frame_at or now
        self.frame_times.append(now)
        # a message or a rate change re-publishes the same picture: not a new latency
        # (a picture captured before the one on show, shown again, is not a new query: a
        # plain one's picture before it)
        if pub is not None and pub.captured > self.shown_captured and pub.query is not None:
            self.shown_captured = pub.captured
            self.latencies.append((now - pub.captured) * 1000.0)
            if not pub.stored:  # (no model run: not an inference of 0 ms)
                self.inferences.append(pub.inference_ms)
            if self.shown_times:  # (for --frame-stats: how long a picture stood still)
                self.longest_wait = max(self.longest_wait, now - self.shown_times[-1])
            self.shown_times.append(now)
            self.shown_count += 1
        self.frames += 1
        if self.frames == KEEP_AFTER_FRAMES and self.session is not None:
            self._remember(self.session)  # the index it started on, once it has been shown
        if self.opts.remember and self.frames % KEEP_SETTINGS_FRAMES == 0:
            self._keep_settings()  # as they change: a run killed later loses none of them

    def _run_callbacks(self) -> None:
        """What the input of the frames before asked for, each callback on its own: one that
        fails is said (traceback on stderr) and the viewer goes on, as Dear PyGui's own
        callback thread went on."""
        for job in dpg.get_callback_queue() or ():
            try:
                dpg.run_callbacks([job])
            except Exception as exc:
                traceback.print_exc()
                self.message = Problem(f"internal error: {first_line(exc)} (details on stderr)")

    def _pace(self) -> None:
        """Cap the frame rate: without vsync (Xvfb, some drivers) the loop would take a whole
        core from the worker's inference for frames nobody can see. Frames *start* at most
        MAX_FPS times a second; the render time counts towards the period, so a frame that
        takes longer than 1/MAX_FPS is never delayed further (the sleep used to be measured
        from the end of the previous render, which doubled a 15 ms frame to 31 ms). The wait
        comes before the frame takes the worker's latest result, not between that and the
        render, so a result published meanwhile is shown one frame sooner."""
        spare = self._frame_start + 1.0 / MAX_FPS - time.perf_counter()
        if spare > 0:
            time.sleep(spare)
        self._frame_start = time.perf_counter()

    def _take(self, pub: Published) -> None:
        last = self.published
        changed = (
            last is None
            or pub.results != last.results
            # the same results fitted to another box (rows resized past TALL_ABOVE)
            or any(a is not b for a, b in zip(pub.thumbs, last.thumbs, strict=False))
        )
        if pub.query is not None and (last is None or pub.query is not last.query):
            self._show_query(pub.query)
            self.dirty = True
        said = last.message if last else ""
        if last is not None and pub.searched != last.searched:
            self.dirty = True  # the outline round the part searched moves
        if changed or (pub.query is None and pub.message != said):
            self.dirty = True  # a source without a picture says why in its place
        if last is not None and pub.source != last.source:
            self._count_afresh()  # the status's figures are the new source's
        if pub.file is not None:  # (a picture of the collection: the random source's)
            self.history.arrived(pub.file)
        self.published = pub

    def _show_query(self, query: Thumb) -> None:
        """Put ``query`` into the query's texture (one of its size, kept: see
        PictureTexture), the draw item moved to it where that is another."""
        before = self.query_tex.tag
        self.query_tex.put(query.tile)
        if self.query_tex.tag != before:
            dpg.configure_item(self.ids.query_image, texture_tag=self.query_tex.tag)

    def _count_afresh(self) -> None:
        self.latencies.clear()
        self.inferences.clear()
        self.shown_times.clear()
        self.rate_since = time.perf_counter()

    def run_s(self) -> float:
        """Seconds since the first frame was drawn."""
        return 0.0 if self.first_frame_at is None else time.perf_counter() - self.first_frame_at

    def query_rate(self) -> float:
        """Results shown per second over the last RATE_WINDOW_S (or since the source or the
        pause changed): it falls to 0 when nothing new comes, and a picture that changes
        every 1.5 s reads 0.7."""
        now = time.perf_counter()
        recent = [t for t in self.shown_times if now - t <= RATE_WINDOW_S]
        window = min(RATE_WINDOW_S, now - self.rate_since)
        if len(recent) >= 2 and window < 1.0:  # just started: between its results
            return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)
        return len(recent) / window if window >= 1.0 else 0.0

    def _relayout(self) -> None:
        self.dirty = False
        if not (self.opts.header_chosen and self.opts.thumb_chosen):
            self._fit_heights()
        rows_h, header_h = self.px(self.opts.thumb_h), self.px(self.opts.header_h)
        if rows_h != self.rows_said:  # the worker picks the results' box by it
            self.rows_said = rows_h
            self.worker.send("rows", self.rows_said)
        if header_h != self.header_said:  # ... and the query picture's size
            self.header_said = header_h
            self.worker.send("header", self.header_said)
        pub = self.published
        q = pub.query if pub else None
        aspects = [t.aspect for t in pub.thumbs] if pub else []
        self.layout = layout.compute(
            self.canvas_size[0],
            header_h,
            rows_h,
            q.aspect if q else 4 / 3,
            aspects,
            scale=self.ui_scale,
        )
        ui.apply_layout(self)

    def _fit_heights(self) -> None:
        """The default header and row heights, shrunk in a window too short for the query
        and a row of results (the sliders follow)."""
        o = self.opts
        fitted = layout.fit_heights(
            self.canvas_size[1] / self.ui_scale,
            o.header_h if o.header_chosen else None,
            o.thumb_h if o.thumb_chosen else None,
        )
        if fitted != (o.header_h, o.thumb_h):
            o.header_h, o.thumb_h = fitted
            _, header, thumb, _ = self.ids.fields
            dpg.set_value(header, fitted[0])
            dpg.set_value(thumb, fitted[1])

    # ------------------------------------------------------------ loop
    def run(self) -> int:
        target = self.opts.quit_after_frames
        while dpg.is_dearpygui_running():
            self.frame()
            if target is not None and self.frames >= target and self._settled():
                break
        if self.opts.screenshot is not None:
            self._screenshot(self.opts.screenshot)
        return 0

    def _settled(self) -> bool:
        """Headless runs wait (bounded) for results before they stop or take a screenshot;
        a source that has no picture and says why (a webcam not there) is waited for only
        NO_PICTURE_WAIT_S: its screenshot shows why. Results are there once every tile on
        screen has its texture (a few are made a frame). An index being loaded is waited
        for, as results are: until it is shown, or its folder is asked for."""
        if self.opts.screenshot is None and self.opts.frame_stats is None:
            return True
        if self.dirty:  # drawn in the next frame (a load ended in this one: it asks for the
            return False  # folder in the query's place, which a slow CI run's stats missed)
        # (from the first frame, or the index shown: one analysed first took its time)
        since = max(self.frame_times[0], self.session_at) if self.frame_times else 0.0
        waited = len(self.frame_times) and self.frame_times[-1] - since
        if any(t.name == "load" for t in self.tasks) and waited < SETTLE_TIMEOUT_S:
            return False  # an index given being read (its folder may be asked for)
        if any(t.name == "analyze" for t in self.tasks):
            return False  # a folder given being analysed: shown once it is (it takes long)
        pub = self.published
        if self.session is None or self.opts.source == "none":
            return True
        if pub and pub.results:
            return not self.tiles_waiting and not pub.pending
        why = self.message or (pub.message if pub else "")
        return waited > (NO_PICTURE_WAIT_S if why else SETTLE_TIMEOUT_S)

    def _screenshot(self, path: Path) -> None:
        path = Path(path)
        status.update_status(self)  # drawn every 10 frames: may not have seen the results yet
        for _ in range(SHOT_SETTLE_FRAMES):
            self.frame()
        with atomic_path(path) as tmp:
            png = tmp.with_suffix(".png")
            dpg.output_frame_buffer(file=str(png))
            for _ in range(10):  # the capture happens while a frame is rendered
                self.frame()
                if png.is_file() and png.stat().st_size > 0:
                    break
            if not png.is_file():
                raise RtsearchError(f"{path}: the screenshot could not be taken")
            os.replace(png, tmp)

    def close(self) -> None:
        for task in self.tasks:
            task.cancel.set()
            task.join(30.0)
        if self.preview is not None:
            self.preview.close()
        # an onnxruntime thread still inside run() at exit aborts the process
        if not self.worker.join(60.0):
            print("rtsearch: the worker did not stop in time", file=sys.stderr)
        if self.opts.frame_stats is not None:
            write_frame_stats(self.opts.frame_stats, self)
        if self.opts.remember and self.frames >= KEEP_AFTER_FRAMES:
            self._keep_settings()
        dpg.destroy_context()
        release_display()

    def _keep_settings(self) -> None:
        """The settings as left, for the next run. The grab rectangle and the window's size
        only when this run set them (given, or changed): fitted to a smaller screen for a
        run, they stay as chosen for the larger one. A rectangle moved in the grab mode
        and not confirmed when the window closed is left, as Esc leaves it. Written as they
        change (looked at every KEEP_SETTINGS_FRAMES frames) and at the close."""
        region = self.region_before if self.grab_mode else self.region.box
        o = self.opts  # (heights fitted to this window are not kept)
        settings: dict = dict(
            k=self.k, thumb_h=o.thumb_h if o.thumb_chosen else None,
            header_h=o.header_h if o.header_chosen else None, trim=o.trim,
        )  # fmt: skip
        now = maximized(x_display())  # (known on X11 only)
        size = self.window_size
        if not now and size[0]:
            looked_at, self.size_looked_at = self.size_looked_at, size
            self.normal_size = size if size == looked_at else self.normal_size
        size = self.normal_size if now else size  # maximised: the size it goes back to
        if size and size[0] and (self.opts.size_given or self.resized):
            w, h = size  # kept at UI scale 1 (kept_size)
            settings.update(width=round(w / self.ui_scale), height=round(h / self.ui_scale))
        settings.update(maximized=True if now else None)
        if region != self.region_start:
            settings.update(region=region)
        # a scale given (--ui-scale, Ctrl++ or Ctrl+-, or kept) is kept; the desktop's
        # (detected, or Ctrl+0) leaves none, for the desktop's next time
        settings.update(ui_scale=self.ui_scale if self.opts.scale_given else None)
        if self._kept_here():
            settings.update(history_fields(self._kept_history()))
        if settings != self.settings_kept:  # written only when they changed
            self.settings_kept = settings
            memory.keep(**settings)
        if memory.unkept and not self.unkept_said:  # (from this, or the index's keep_shown)
            self.unkept_said = True
            self.message = Problem(memory.unkept)

    def open_file(self, path: Path) -> None:
        opener = "open" if sys.platform == "darwin" else "xdg-open"
        if sys.platform.startswith("win"):
            os.startfile(path)  # type: ignore[attr-defined]
            return
        try:
            subprocess.Popen(
                [opener, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            self.say_briefly(f"opened: {path}")  # (in the system's viewer: it takes the focus)
        except FileNotFoundError:
            self.message = Problem(f"{path}: cannot open it here: {opener} is not installed")
        except OSError as exc:
            self.message = Problem(f"{path}: cannot open it: {exc.strerror or exc}")


def frame_ms(times: deque[float]) -> list[float]:
    t = list(times)
    return [(b - a) * 1000.0 for a, b in itertools.pairwise(t)]


def window_title(session: SearchSession | None) -> str:
    """The collection on show, in the title bar and the task bar (from the start too: an
    index given or kept said only "rtsearch"): its folder's name, then where that folder
    is (two collections of one name told apart: `holiday (~/2019)`, `holiday (~/2023)`);
    stray bytes escaped (not UTF-8, they crashed Dear PyGui)."""
    if session is None:
        return "rtsearch"
    folder = Path(os.path.abspath(session.base_dir))
    if not folder.name:  # (the root)
        return f"rtsearch - {printable(str(folder))}"
    return f"rtsearch - {printable(folder.name)} ({printable(_homed(folder.parent))})"


def _homed(folder: Path) -> str:
    """``folder`` with the home folder written ``~``, as a shell's prompt shows it."""
    home = Path(os.path.expanduser("~"))
    if folder == home:
        return "~"
    if folder.is_relative_to(home) and home != Path(home.anchor):
        return f"~/{folder.relative_to(home).as_posix()}"
    return str(folder)


def history_fields(kept: tuple[tuple[str, ...], int] | None) -> dict:
    """A history as kept (history.kept), as memory.Memory's fields."""
    names, at = kept or (None, None)
    return {"history": names, "history_at": at}


def _file(path: Path | None) -> Path | None:
    return None if path is None else Path(os.path.abspath(path))


def write_frame_stats(path: Path, app: ViewerApp) -> None:
    ms = sorted(frame_ms(app.frame_times))
    pub = app.published
    peak = peak_rss_mb()
    stats = {
        "frames": app.frames,
        "p50_ms": round(statistics.median(ms), 2) if ms else None,
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2) if ms else None,
        "max_ms": round(ms[-1], 2) if ms else None,
        "queries": pub.seq if pub else 0,  # (results published, fill-ins included)
        # new pictures shown with their results, per second of the run, and the longest
        # time between two (a video that keeps changing: how long its picture stood still);
        # the frame times and the medians above are of the last frames and results only
        "shown": app.shown_count,
        "shown_per_s": round(app.shown_count / max(app.run_s(), 1e-6), 2),
        "longest_wait_s": round(app.longest_wait, 3),
        "latency_ms": round(statistics.median(app.latencies), 1) if app.latencies else None,
        "inference_ms": round(statistics.median(app.inferences), 2) if app.inferences else None,
        "thumb_box": list(app.worker.cache.size),  # (width, height): by the rows' height
        "thumbs_cached": len(app.worker.cache),
        "thumbs_mb": round(app.worker.cache.nbytes / 2**20, 1),
        "peak_rss_mb": None if peak is None else round(peak, 1),
        # what was on show at the end: the index file and the message line
        "index": os.path.abspath(app.session.source)
        if app.session and app.session.source
        else None,
        "message": app.message,
        # ... and the line as it reads: the viewer's own message, else what the results
        # on show say (a source's problem, grey tiles: "message" was "" meanwhile)
        "message_line": status.said(app.message, pub.message if pub else ""),
        "title": dpg.get_viewport_title(),
        # the collection's picture that is the query (None: a live one), and the history
        "query_file": str(pub.file) if pub is not None and pub.file is not None else None,
        "history": [str(f) for f in app.history.files],
        "history_at": app.history.at,
        # what the query's place says instead of a picture (a source without one, no index)
        "query_place": _query_place(app),
        "font": None if app.font is None else str(app.font),
        "char_px": list(dpg.get_text_size("M") or ()),  # one character, as drawn
        # the settings as left (what the next run takes where its options do not say)
        "settings": {
            "k": app.k,
            "thumb_h": app.opts.thumb_h,
            "header_h": app.opts.header_h,
            "trim": app.opts.trim,
            "region": list(app.region.box),
            "window": list(app.window_size),
            "maximized": maximized(x_display()),
            "ui_scale": app.ui_scale,
        },
    }
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(json.dumps(stats, indent=1))


def _query_place(app: ViewerApp) -> str | None:
    said = app.ids.no_picture
    if not dpg.is_item_shown(said):
        return None
    return " ".join(dpg.get_item_configuration(said)["text"].split())


def screen_geometry() -> Geometry | None:
    """The desktop (every monitor together), the first monitor and each monitor, as left,
    top, width, height in physical pixels; None without a display."""
    src = ScreenSource()
    try:
        return src.geometry()
    except Exception:  # no display: the grab region is chosen later, if ever
        return None
    finally:
        src.close()


def _logical_width() -> int | None:
    """The toolkit's idea of the screen width, to compare with mss (HiDPI); None if unknown."""
    if sys.platform != "darwin":
        return None  # X11 and Windows (per-monitor aware) report physical pixels to both
    try:
        import tkinter

        root = tkinter.Tk()
        root.withdraw()
        width = root.winfo_screenwidth()
        root.destroy()
        return width
    except Exception:
        return None


def _toolkit_clipboard_text() -> str | None:
    """The clipboard's text through GLFW, on the thread that draws (as GLFW wants), on
    Windows and macOS (clipboard.text_from_toolkit: on X11 it could abort or hang)."""
    from rtsearch.clipboard import text_from_toolkit

    if not text_from_toolkit():
        return None
    try:
        return dpg.get_clipboard_text() or ""
    except Exception:  # no text there
        return ""


def run_viewer(
    session: SearchSession | None,
    *,
    source: str = "random",
    screenshot: Path | None = None,
    quit_after_frames: int | None = None,
    frame_stats: Path | None = None,
    k: int | None = None,
    thumb_h: int | None = None,
    header_h: int | None = None,
    width: int | None = None,
    height: int | None = None,
    hidpi_scale: float | None = None,
    ui_scale: float | str | None = None,
    watch: bool = False,
    fp32: bool = False,
    threads: int = 1,
    trim: bool | None = None,
    verify: bool = True,
    message: str = "",
    remember: bool = True,
    ask_folder_of: Path | None = None,
    analyze_folder: Path | None = None,
) -> int:
    """Open the viewer on ``session`` (None: start empty; load or analyze from the UI),
    ``message`` on its message line; ``ask_folder_of``: an index to load as Ctrl+O does
    (its folder asked for where its images are not); ``analyze_folder``: a folder to
    analyse as Analyze folder... does (the index kept for it brought up to date), then
    show. Settings not given (None) are as the viewer was left last time (``memory``),
    else the defaults; with ``remember`` False nothing kept is read, and nothing of this
    run is kept.

    Blocks until the window is closed, or after ``quit_after_frames`` frames (headless runs
    then wait, at most a minute, for the first results), writes ``screenshot`` (PNG of the
    viewport) and ``frame_stats`` (JSON: p50_ms, p99_ms, ...) if asked; returns 0. A
    screenshot without ``quit_after_frames`` is taken after SCREENSHOT_FRAMES frames: nobody
    can close the window of a headless run.
    """
    if screenshot is not None and quit_after_frames is None:
        quit_after_frames = SCREENSHOT_FRAMES
    kept = memory.recall() if remember else memory.Memory()
    defaults = ViewerOptions()

    def setting(value, name: str):
        for choice in (value, getattr(kept, name)):
            if choice is not None:
                return choice
        return getattr(defaults, name)

    # 'auto': the desktop's scale, and the one kept forgotten; else given, else kept
    scale = None if ui_scale == "auto" else setting(ui_scale, "ui_scale")

    opts = ViewerOptions(
        source=source, k=setting(k, "k"), header_h=setting(header_h, "header_h"),
        thumb_h=setting(thumb_h, "thumb_h"), width=width, height=height,
        kept_size=(kept.width, kept.height),
        region=kept.region, screenshot=screenshot,
        quit_after_frames=quit_after_frames, frame_stats=frame_stats, hidpi_scale=hidpi_scale,
        ui_scale=scale, watch=watch, fp32=fp32, threads=threads,
        trim=setting(trim, "trim"), verify=verify,
        remember=remember, size_given=width is not None or height is not None,
        maximized=bool(kept.maximized) and width is None and height is None,
        scale_given=scale is not None,
        header_chosen=header_h is not None or kept.header_h is not None,
        thumb_chosen=thumb_h is not None or kept.thumb_h is not None,
    )  # fmt: skip
    app = ViewerApp(session, opts)
    app.build()
    if message:  # with what the first source said as it started (a region moved to fit)
        said = "" if app.message == NO_INDEX else app.message
        app.message = joined(message, said)
    if ask_folder_of is not None:
        actions.load(app, ask_folder_of)
    if analyze_folder is not None:
        actions.analyze(app, analyze_folder)
    # a signal wakes a minimised window's frame, which waits for X events (X11)
    undo = wakeup.wake_on_signals() if x_display() is not None else lambda: None
    try:
        return app.run()
    finally:
        undo()
        app.close()
