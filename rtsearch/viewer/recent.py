"""The indexes shown before (memory.py's ``recent``), listed beside the Load dialog's
files: a click opens one from the folder its images were shown from, at the query shown
last with it (history.py). Analysing a second folder, or loading another index, left the
first to be found again in a hidden data folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import dearpygui.dearpygui as dpg

from rtsearch.errors import printable
from rtsearch.viewer import actions, memory, ui

if TYPE_CHECKING:
    from rtsearch.viewer.app import ViewerApp

PANEL_W = 200  # at UI scale 1
FILES_W = 400  # the Load dialog's file list needs this much for its names to show
TITLE = "Shown before"
HINT = "(a click opens one)"
EMPTY = "The indexes you load or analyse are listed here."
OTHERS = "The other indexes you load or analyse are listed here."
TIP = "Opens it from the folder its images were shown from, at the query shown last."


def add_panel(app: ViewerApp) -> None:
    """The list's place, inside the Load dialog as it is made; ``fill`` fills it."""
    app.recent_panel = dpg.add_child_window(width=app.px(PANEL_W), show=False)


def fit(app: ViewerApp, dialog_width: int) -> bool:
    """The list in the Load dialog of ``dialog_width`` where that leaves the file list its
    FILES_W, and where there is a list (not with --no-last); else taken out. The dialog
    keeps a side pane of its own width for anything in it, shown or not: in a narrow window
    the file list showed '[F.dat' for every name, the names squeezed out. True where the
    list came or went: a dialog on show takes that in only when made again."""
    wanted = app.opts.remember and dialog_width >= app.px(PANEL_W + FILES_W)
    if app.recent_panel and not wanted:
        dpg.delete_item(app.recent_panel)
        app.recent_panel = 0
        return True
    if wanted and not app.recent_panel:
        app.recent_panel = dpg.add_child_window(parent=app.ids.load_dialog, width=app.px(PANEL_W))
        return True
    return False


def entries(app: ViewerApp) -> list[memory.Shown]:
    """The indexes shown before, the last first: not the one on show, nor one whose file
    is gone; none without the memory (--no-last)."""
    if not app.opts.remember:
        return []
    session = app.session
    on_show = session.source if session is not None else None
    seen = {os.path.abspath(on_show)} if on_show is not None else set()
    found = []
    for shown in memory.all_shown(memory.recall()):
        if str(shown.index) not in seen and shown.index.is_file():
            seen.add(str(shown.index))
            found.append(shown)
    return found


def fill(app: ViewerApp) -> None:
    """The list as the dialog opens: each index by its image folder's name, with the name
    of the folder above where two share one (the whole path in its tooltip). The panel
    stays when there is none (the dialog keeps its place), and says what comes there."""
    panel = app.recent_panel
    if not panel:  # (no room for it)
        return
    dpg.delete_item(panel, children_only=True)
    shown = entries(app)
    dpg.configure_item(panel, show=True)
    dpg.add_text(TITLE, parent=panel)
    empty = EMPTY if app.session is None else OTHERS  # (the one on show is not listed)
    dpg.add_text(HINT if shown else empty, parent=panel, color=ui.GREYED, wrap=0)
    names = [printable(s.base_dir.name or str(s.base_dir)) for s in shown]
    for entry, name in zip(shown, names, strict=True):
        label = name if names.count(name) == 1 else f"{name} ({_above(entry, shown)})"
        item = dpg.add_selectable(
            label=label, parent=panel, user_data=entry, callback=lambda s, a, u: choose(app, u)
        )
        with dpg.tooltip(item):
            dpg.add_text(f"{printable(str(entry.base_dir))}\nindex: {printable(str(entry.index))}")
            dpg.add_text(TIP)


def _above(entry: memory.Shown, shown: list[memory.Shown]) -> str:
    """What tells ``entry``'s folder from the others of its name: the name of the folder
    above it, else that folder's whole path (the panel is narrow: a path is cut short);
    the index's file name for two indexes of one folder (they read the same)."""
    if sum(s.base_dir == entry.base_dir for s in shown) > 1:
        return printable(entry.index.name)
    twins = [s.base_dir for s in shown if s.base_dir.name == entry.base_dir.name]
    parent = entry.base_dir.parent
    unique = sum(t.parent.name == parent.name for t in twins) == 1
    return printable(parent.name if unique and parent.name else str(parent))


def choose(app: ViewerApp, entry: memory.Shown) -> None:
    """A click on an entry: the dialog closes, and the index opens (actions.load: from the
    folder it was shown from, while the file is the one shown then, else its own, else the
    folder is asked for)."""
    tag = app.ids.load_dialog
    dpg.hide_item(tag)
    app.dialogs_closed.put((tag, False))  # (made again at the next frame)
    actions.load(app, Path(entry.index))
