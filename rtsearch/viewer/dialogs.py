"""The file dialogs (video, load, base folder, save, analyze) and the paths their OK gives,
and fitting a dialog or the help window into the viewer's window."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import dearpygui.dearpygui as dpg

from rtsearch.decode import IMAGE_EXTENSIONS
from rtsearch.errors import Problem, RtsearchError
from rtsearch.sources import VIDEO_EXTS
from rtsearch.viewer import actions, layout, recent
from rtsearch.viewer.wrap import wrap_lines

if TYPE_CHECKING:
    from rtsearch.viewer.app import ViewerApp

DIALOG_SIZE = (860, 520)  # file dialogs, in windows large enough (at UI scale 1)
HELP_SIZE = (560, 480)
QUESTION_SIZE = (520, 150)
QUIET_FRAMES = 2  # drawn without a question or file dialog before a question waiting shows
DIALOG_MARGIN = 8  # kept between a dialog and the window's edges
MIN_WINDOW = 160  # no dialog is made smaller than this, however small the window


def show_fitted(app: ViewerApp, tag: int | str, size: tuple[int, int]) -> bool:
    """Show a dialog or the help window at ``size`` (at UI scale 1), or smaller where the
    viewer's window is smaller, so that its buttons (OK, Cancel) are never cut off;
    centred. True where the Load dialog's list of indexes came or went (recent.fit)."""
    vw = dpg.get_viewport_client_width()
    vh = dpg.get_viewport_client_height()
    least, margin = app.px(MIN_WINDOW), app.px(DIALOG_MARGIN)
    w = max(least, min(app.px(size[0]), vw - 2 * margin))
    h = max(least, min(app.px(size[1]), vh - 2 * margin))
    dpg.configure_item(tag, width=w, height=h)
    changed = tag == app.ids.load_dialog and recent.fit(app, w)
    file_dialog = dpg.get_item_type(tag) == "mvAppItemType::mvFileDialog"
    if not file_dialog:  # (those centre themselves)
        dpg.configure_item(tag, pos=(max(0, (vw - w) // 2), max(0, (vh - h) // 2)))
    dpg.show_item(tag)
    if file_dialog:
        # the keys go to it: Tab to its Search field, Tab again to File Name (after other
        # windows had the focus, the Tabs went nowhere)
        dpg.focus_item(tag)
    return changed


def refit_shown(app: ViewerApp) -> None:
    """After the viewer's window was resized: the dialogs and the help shown grow back to
    their full size, or shrink to fit, as if opened now. A file dialog keeps the place it
    was first shown at (it has none to set): it is hidden while this frame is drawn, which
    centres it again when shown after (``show_again``); it went past a window made
    smaller, OK and all."""
    ids = app.ids
    for tag in ids.dialogs():
        if dpg.is_item_shown(tag):
            if show_fitted(app, tag, DIALOG_SIZE):
                # the Load dialog's list came or went: made again (in its folder), as the
                # dialog takes in its side pane only then; the names were squeezed, or the
                # list did not come, till it was opened again
                renew(tag, False)
                show_fitted(app, tag, DIALOG_SIZE)
                recent.fill(app)
            dpg.hide_item(tag)
            app.reshow.append(tag)
    if dpg.is_item_shown(ids.help):
        show_fitted(app, ids.help, HELP_SIZE)
    if dpg.is_item_shown(ids.question):
        show_fitted(app, ids.question, QUESTION_SIZE)
        reword(app)  # (wrapped to the width it has now)


def build(app: ViewerApp) -> dict:
    def dialog(
        name: str,
        label: str,
        on_path,
        *,
        directory: bool = False,
        exts: tuple[str, ...] = (),
        on_cancel=lambda: None,
        start: str = "",
        panel=None,
        named=str,
    ) -> str:
        def ok(app_data: dict) -> None:
            try:
                path = named(chosen(app_data, directory=directory))
            except RtsearchError as exc:
                app.message = Problem(exc)
                return
            on_path(path)

        def make(folder: str = "") -> str:
            with dpg.file_dialog(
                tag=f"rtsearch.{name}",  # the same when it is made again (renew)
                label=label,
                show=False,
                directory_selector=directory,
                width=app.px(DIALOG_SIZE[0]),
                height=app.px(DIALOG_SIZE[1]),
                default_path=folder,
                # the name field starts empty: its default '.' was kept before typed names
                default_filename="." if directory else "",
                # (made again by the render loop after this callback, not inside it)
                callback=lambda s, a, answers: closed(s, True, answers["ok"], a),
                cancel_callback=lambda s, a, answers: closed(s, False, answers["cancel"]),
                # Enter and Esc call these too (Ids), and then make it again
                user_data={"ok": ok, "cancel": on_cancel, "make": make},
                modal=True,
            ) as tag:
                for ext in exts:
                    dpg.add_file_extension(ext)
                if panel is not None:  # (beside the files)
                    panel()
            return tag

        return make(start)

    def closed(tag: int | str, picked: bool, answer, *args) -> None:
        try:
            answer(*args)
        finally:
            app.dialogs_closed.put((tag, picked))

    # a named set first: a name typed under the '.*' filter loses its extension
    # (a picture plays as a still; an animated one as a video)
    pictures = tuple(sorted(IMAGE_EXTENSIONS))
    video_exts = (_filter_set("Video files", VIDEO_EXTS), _filter_set("Pictures", pictures), ".*")
    return {
        "video_dialog": dialog(
            "video", "Open a video file", lambda p: app._start_source(f"video:{p}"),
            exts=video_exts,
        ),
        "load_dialog": dialog(
            "load", "Load an index (.dat)", lambda p: actions.load(app, Path(p)),
            exts=(INDEX_FILES, ".*"), panel=lambda: recent.add_panel(app), named=index_there,
        ),
        "base_dialog": dialog(
            "base",
            "Where are this index's images now?",
            lambda p: actions.open_session(app, app.pending_load, Path(p)),
            directory=True,
            on_cancel=lambda: actions.no_base_dir(app),
        ),
        "save_dialog": dialog(
            "save", "Save the index as (.dat)", lambda p: actions.save_as(app, Path(p)),
            exts=(INDEX_FILES,), on_cancel=lambda: setattr(app, "to_save", None),
            named=index_file,
        ),
        "analyze_dialog": dialog(
            "analyze", "Analyze a folder of images", lambda p: actions.analyze_picked(app, Path(p)),
            directory=True, start=pictures_folder(),
        ),
    }  # fmt: skip


def pictures_folder() -> str:
    """Where *Analyze folder...* starts: the user's pictures folder (XDG_PICTURES_DIR,
    ~/Pictures), else the home folder (it started in the folder rtsearch was started from,
    at every run)."""
    import platformdirs

    for folder in (platformdirs.user_pictures_dir(), os.path.expanduser("~")):
        if os.path.isdir(folder):
            return folder
    return ""


def show_again(app: ViewerApp) -> None:
    """The file dialogs ``refit_shown`` hid for the frame just drawn, shown again: centred
    in the next one. (Hidden only while a frame is drawn, they are shown to everything
    else between frames.)"""
    while app.reshow:
        dpg.show_item(app.reshow.pop())


def renew_closed(app: ViewerApp) -> None:
    """Make the dialogs closed by their own OK or Cancel since the last frame again. The
    library starts those afresh, but a folder picked by a click stayed picked, beside a
    path that said '.', for the next open."""
    while not app.dialogs_closed.empty():
        tag, picked = app.dialogs_closed.get()
        if not dpg.is_item_shown(tag):
            renew(tag, picked)


def renew(tag: int | str, picked: bool, folder: str | None = None) -> None:
    """Make a file dialog closed from here (Esc, Enter) again, in ``folder`` or the folder
    it showed (the one holding the folder ``picked`` by OK, for a folder dialog):
    hidden, it kept its state, and showed the name typed last time before the next one
    typed."""
    make = dpg.get_item_user_data(tag)["make"]
    if folder is None:
        info = dpg.get_file_dialog_info(tag)
        folder = info.get("current_path", "")
        if picked and dpg.get_item_configuration(tag)["directory_selector"]:
            # a folder picked, clicked or typed: beside it, not inside (a full path typed
            # came back joined onto the dialog's folder, a folder not there, which the
            # dialog opened on showed empty, '..' and all)
            typed = _typed_after_the_dot(_as_typed(str(info.get("file_path_name", ""))))
            folder = os.path.dirname(typed)
        folder = nearest_folder(folder)  # (one gone since: the nearest still there)
    dpg.delete_item(tag)
    if dpg.does_alias_exist(tag):
        dpg.remove_alias(tag)
    make(folder)


def nearest_folder(path: str) -> str:
    """``path`` where it is a folder, else the nearest folder above it that is ("": none)."""
    while path and not os.path.isdir(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path if os.path.isdir(path) else ""


def add_question(app: ViewerApp) -> tuple[int | str, int | str]:
    """A modal yes-or-no window, shown by ``ask``; its text item with it."""
    # its title bar's X answers as Cancel does (it closed the window and nothing was said)
    with dpg.window(
        label="rtsearch", show=False, modal=True, no_collapse=True,
        width=app.px(QUESTION_SIZE[0]), height=app.px(QUESTION_SIZE[1]),
        on_close=lambda window: dpg.get_item_user_data(window)(False),
    ) as window:  # fmt: skip
        text = dpg.add_text("", wrap=-1)
        with dpg.group(horizontal=True):
            for answer in (True, False):
                button = dpg.add_button(
                    callback=lambda s, a, yes: dpg.get_item_user_data(window)(yes),
                    user_data=answer,
                )
                app.sized(button, width=120)
    return window, text


class Question(NamedTuple):
    """A yes-or-no question for ``ask``, and what each answer does. ``text`` may be a
    function: its words are then taken again while the question shows (figures that move
    on, as an analysis's)."""

    title: str
    text: str | Callable[[], str]
    yes: str
    on_yes: Callable[[], None]
    on_no: Callable[[], None]


def ask(
    app: ViewerApp, title: str, question: str | Callable[[], str], yes: str, on_yes, on_no,
    *, first: bool = False,
) -> None:  # fmt: skip
    """Show ``question`` with a button for ``yes`` and one to cancel; the answer (a click,
    Enter for ``yes``, Esc to cancel) closes it and calls ``on_yes`` or ``on_no``. Asked
    while another question or a file dialog is open, it waits for them to close
    (``ask_next``): it replaced the question on show, whose answer was lost, and behind a
    file dialog that dialog's Esc or Enter answered it unseen. ``first``: before the
    questions waiting."""
    asked = Question(title, question, yes, on_yes, on_no)
    if first:
        app.questions.appendleft(asked)
    else:
        app.questions.append(asked)
    ask_next(app)


def modal_shown(app: ViewerApp) -> bool:
    """Whether a question or a file dialog is on show (or hidden for this frame only)."""
    return bool(app.reshow) or app.ids.asking()


def ask_next(app: ViewerApp) -> None:
    """The question that waited longest, shown once neither a question nor a file dialog is
    (each frame, and when one is asked), and none was in the frames drawn last: shown in the
    frame after a file dialog closed, it closed with it, as if cancelled."""
    ids = app.ids
    if not app.questions or app.quiet_frames < QUIET_FRAMES or modal_shown(app):
        return
    asked = app.questions.popleft()

    def answer(said: bool) -> None:
        dpg.hide_item(ids.question)
        app.question_on_show = None
        (asked.on_yes if said else asked.on_no)()

    first, second = dpg.get_item_children(dpg.get_item_children(ids.question, 1)[1], 1)
    dpg.configure_item(first, label=f"{asked.yes} (Enter)")
    dpg.configure_item(second, label="Cancel (Esc)")
    dpg.set_item_user_data(ids.question, answer)
    dpg.configure_item(ids.question, label=asked.title)
    show_fitted(app, ids.question, QUESTION_SIZE)
    app.question_on_show = asked
    reword(app)


def reword(app: ViewerApp) -> None:
    """The words of the question on show, as they are now (``Question.text``), wrapped
    here, at spaces and after a '/' (Dear PyGui's own wrap breaks at dots)."""
    asked = app.question_on_show
    if asked is None:
        return
    ids = app.ids
    text = asked.text() if callable(asked.text) else asked.text
    room = dpg.get_item_configuration(ids.question)["width"]
    width = room - app.px(2 * layout.PAD + 16)
    wrapped = "\n".join(wrap_lines(text, width))
    if dpg.get_value(ids.question_text) != wrapped:
        dpg.set_value(ids.question_text, wrapped)


def _filter_set(label: str, exts: tuple[str, ...]) -> str:
    """A file dialog filter for several extensions, in both cases (its matching is
    case-sensitive): 'Video files{.mp4,.MP4,...}'."""
    return label + "{" + ",".join(e for ext in exts for e in (ext, ext.upper())) + "}"


# Index files are listed under a named set, not a plain '.dat' filter: under that one, a
# name typed came back with '.dat' in place of what followed its last dot (photos.2024
# saved as photos.dat, s2.v2 as s2.dat, over another index), and one typed with a '/' at
# its end as a hidden file named '.dat' in that folder.
INDEX_FILES = _filter_set("Index files", (".dat",))


def index_file(typed: str) -> str:
    """The file a name typed into the Save dialog stands for: itself where it ends in .dat
    (in any case), else with .dat added; a folder, or no name, is refused. Spaces after
    it are taken off ('photos.2024 ' was saved as 'photos.2024 .dat')."""
    typed = typed.rstrip()
    name = os.path.basename(typed.rstrip("/"))
    if (
        typed.endswith("/")
        or name in (".", "..")  # (saved as hidden files, '..dat' and '...dat')
        or (os.path.isdir(typed) and typed.lower().endswith(".dat"))
    ):
        raise RtsearchError(f"not saved: {typed} names a folder; type a file name after it")
    if not name or name.lower() == ".dat":
        raise RtsearchError("not saved: type a name for the index file")
    return typed if name.lower().endswith(".dat") else f"{typed}.dat"


def index_there(typed: str) -> str:
    """The file a name typed into the Load dialog stands for: itself, or where no such
    file is and one with .dat (or .DAT) added is, that one ('pictures' for pictures.dat)."""
    if os.path.exists(typed):
        return typed
    typed = typed.rstrip()  # (a space typed after the name)
    for candidate in (typed, f"{typed}.dat", f"{typed}.DAT"):
        if os.path.isfile(candidate):
            return candidate
    return typed


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
        return _typed_after_the_dot(name)
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


def _typed_after_the_dot(path: str) -> str:
    """A folder dialog's field starts as ".", and a full path typed after it came back
    under the dialog's folder ('/home/me/tmp/x' for '/tmp/x'): where ``path`` is not there,
    the longest tail of it that names a folder from the root is what was typed."""
    if os.path.exists(path):
        return path
    parts = path.split("/")
    for i in range(2, len(parts)):
        tail = "/" + "/".join(parts[i:])
        if os.path.isdir(tail) and tail != "/":
            return tail
    return path


def _as_typed(path: str) -> str:
    """A full path typed into a dialog's name field comes back joined onto the folder the
    dialog shows: '/home/me//data/x.dat' for '/data/x.dat', '/home/me/~/x' for '~/x'."""
    if "//" in path:
        path = "/" + path.rsplit("//", 1)[1]
    parts = path.split("/")
    if "~" in parts and not os.path.exists(path):
        path = os.path.expanduser("/".join(["~", *parts[parts.index("~") + 1 :]]))
    return path
