"""`rtsearch view` (also plain `rtsearch`): open the realtime viewer."""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rtsearch import store
from rtsearch.argtypes import in_range, number
from rtsearch.cli import one_index
from rtsearch.errors import Problem, RtsearchError, count, require_folder, warn
from rtsearch.sources import SOURCES, parse_source
from rtsearch.viewer import layout, uiscale

if TYPE_CHECKING:
    from rtsearch.session import FolderGone, SearchSession


def add_arguments(p: argparse.ArgumentParser) -> None:
    from rtsearch.argtypes import positive_int, thread_count

    p.add_argument(
        "index_file",
        nargs="?",
        type=Path,
        default=None,
        metavar="INDEX",
        help="index file (.dat; default: the one the viewer showed last time, from the "
        "folder it showed its images from); a folder of pictures instead: analysed in the "
        "viewer as Analyze folder... (A) does, then shown",
    )
    p.add_argument("--index", type=Path, default=None, help="index file (.dat); same as INDEX")
    p.add_argument(
        "--no-last",
        dest="last",
        action="store_false",
        help="leave what the viewer kept last time out of this run: without INDEX open "
        "none, start from the default settings, and keep nothing of this run (by default "
        "the index shown, the sliders, trimming, the grab region and the window's size are "
        "kept for the next run, where options not given take them)",
    )
    p.add_argument(
        "--base-dir",
        type=Path,
        default=None,
        help="where the images are now (default: where they were analysed; when that "
        "folder is gone, the viewer asks)",
    )
    p.add_argument("--model", default=None, help="model name or .onnx path (default: the index's)")
    p.add_argument(
        "--source", type=source_spec, default="random", help=f"first query source: {SOURCES}"
    )
    p.add_argument(
        "-k",
        type=result_count,
        default=None,
        help=f"results (5-100; default: as left last time, else {layout.RESULTS_DEFAULT})",
    )
    p.add_argument(
        "--threads", type=thread_count, default=1, help="inference threads (GUI shares cores)"
    )
    for flag, bounds, default, what, slider in (
        ("--thumb-height", layout.THUMB_RANGE, layout.THUMB_DEFAULT, "result row", "thumb"),
        ("--header-height", layout.HEADER_RANGE, layout.HEADER_DEFAULT, "query image", "header"),
    ):
        lo, hi = bounds
        p.add_argument(
            flag,
            type=in_range(bounds),
            default=None,
            help=f"{what} height in pixels at UI scale 1 ({lo}-{hi}; the {slider} height "
            f"slider; default: as left last time, else {default})",
        )
    add_window_options(p)
    p.add_argument(
        "--hidpi-scale",
        type=scale,
        default=None,
        help="the screen's physical pixels per logical pixel (0.5-8), for placing the "
        "screengrab region where the window reports logical ones (HiDPI); it does not "
        "scale the viewer: --ui-scale does (default: detected)",
    )
    p.add_argument(
        "--fp32",
        action="store_true",
        help="query with the fp32 model even when a faithful int8 twin exists (by default "
        "the viewer uses an int8 file whose export measured feature cosine >= 0.99)",
    )
    p.add_argument(
        "--no-trim",
        dest="trim",
        action="store_const",
        const=False,
        default=None,
        help="search live pictures whole: by default their plain borders (the page around a "
        "picture grabbed loosely, a video's black bars) are trimmed first (B toggles it; "
        "the default is as left last time)",
    )
    p.add_argument(
        "--trim",
        dest="trim",
        action="store_const",
        const=True,
        help="trim live pictures' plain borders, whatever was left last time",
    )
    p.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="rank live results by vector alone: by default, once a live picture stands "
        "still, its nearest results are verified as query verifies them (matching "
        "keypoints) and shown again so ranked",
    )
    p.add_argument(
        "--watch",
        action="store_true",
        help="follow the index's image folder: new, changed and deleted images update the "
        "index file and the results without a restart (as `rtsearch update --watch`)",
    )
    p.add_argument(
        "--screenshot",
        type=Path,
        default=None,
        help="write a PNG of the window once the first results show, and quit (with "
        "--quit-after-frames: after that many frames)",
    )
    p.add_argument(
        "--quit-after-frames", type=positive_int, default=None, help="stop after N frames"
    )
    p.add_argument(
        "--frame-stats",
        type=Path,
        default=None,
        help="write frame-time statistics, and the index and settings at the end (JSON)",
    )


# pixels: Dear PyGui makes no window smaller than 250 (--width 10 gave 250 without a word)
WINDOW_RANGE = (250, 16384)


def add_window_options(p: argparse.ArgumentParser, what: str = "") -> None:
    """--width, --height and --ui-scale of the viewer's window (`view`, `demo`): None when
    not given, for what it was left at last time."""
    lo, hi = WINDOW_RANGE
    for side, default in zip(("width", "height"), layout.WINDOW_DEFAULT, strict=True):
        p.add_argument(
            f"--{side}",
            type=in_range(WINDOW_RANGE),
            default=None,
            help=f"{what}window {side}, {lo}-{hi} (default: as left last time, else {default} "
            "times the UI scale)",
        )
    lo, hi = uiscale.RANGE
    p.add_argument(
        "--ui-scale",
        type=ui_scale,
        default=None,
        help=f"{what}draw text, controls and rows this many times larger ({lo:g}-{hi:g}, in "
        "quarters: 1.3 is 1.25; 2 on a HiDPI screen set to 200%%; 'auto': the desktop's, "
        "and one given before is forgotten; default: as given last time, or set with "
        "Ctrl++ and Ctrl+-, else the desktop's: Xft.dpi / 96, times GDK_SCALE or "
        "QT_SCALE_FACTOR where set)",
    )


def ui_scale(text: str) -> float | str:
    """A UI scale (to the nearest quarter), or 'auto'."""
    if text.strip().lower() == "auto":
        return "auto"
    lo, hi = uiscale.RANGE
    value = number(text)
    if not lo <= value <= hi:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be from {lo:g} to {hi:g}, or auto, got {text}")
    return uiscale.fit(value)


def source_spec(text: str) -> str:
    try:
        parse_source(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def scale(text: str) -> float:
    value = number(text)
    if not 0.5 <= value <= 8:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be from 0.5 to 8, got {text}")
    return value


result_count = in_range(layout.RESULTS_RANGE)


def run(args: argparse.Namespace) -> int:
    from rtsearch.atomic import check_writable
    from rtsearch.session import SearchSession
    from rtsearch.viewer.app import run_viewer
    from rtsearch.viewer.display import check_display

    index = one_index(args.index_file, args.index)
    folder = None  # a folder of pictures given: analysed in the viewer (A), then shown
    if args.index_file is not None and args.index_file.is_dir() and args.index is None:
        folder, index = require_folder(args.index_file), None
        if args.base_dir is not None:
            raise RtsearchError(
                f"--base-dir {args.base_dir}: {folder} is a folder of pictures to analyse, "
                "not an index whose pictures moved: drop one"
            )
    for path, what in ((args.screenshot, "screenshot"), (args.frame_stats, "frame statistics")):
        if path is not None:  # before the window opens, not after it closes
            check_writable(path, what)
    from rtsearch.models import read_model_info, resolve_model

    if args.fp32 and args.model:
        model = resolve_model(args.model)
        if read_model_info(model).variant == "int8":
            raise RtsearchError(f"{model}: an int8 model, and --fp32 asks for fp32: drop one")
    if index is not None:  # a mistyped name is said as such, display or not
        store.require_index_file(index)
    check_display()  # before the index is read and the model made ready, not after
    if args.model and not args.fp32:  # a mistake in an option given is an error, whichever
        resolve_model(args.model)  # index it is for (the one kept too)
    if args.base_dir is not None:
        require_folder(args.base_dir)
    open_index = functools.partial(
        SearchSession.open,
        model=args.model,
        threads=args.threads,
        prefer_int8=not args.fp32,
        fp32=args.fp32,
    )
    session, message, ask = None, "", None
    if index is not None:
        from rtsearch.session import FolderGone

        try:
            session = open_index(index, base_dir=args.base_dir)
        except FolderGone as gone:  # (none given) where it was shown from last, else asked for
            session = shown_from_last(open_index, index) if args.last else None
            if session is None:
                session, why = from_moved(open_index, index, gone)
                message = f"index: {index}: {why}" if session is not None else ""
            ask = index if session is None else None
    elif args.last and folder is None:
        session, message, ask = reopen(open_index, args.base_dir)
    if session is None and ask is None and args.base_dir is not None:
        why = f"; {message}" if message else ""
        raise RtsearchError(f"--base-dir {args.base_dir}: no index given to show from it{why}")
    if session is not None and args.watch:  # its new rows' file: said here, not later
        from rtsearch.update import rows_model

        rows_model(session.index, session.source, session.extractor.path)
    return run_viewer(
        session,
        message=message,
        ask_folder_of=ask,
        analyze_folder=folder,
        remember=args.last,
        # (no index to draw from: none, until one is loaded; a folder given: once analysed)
        source=args.source if session or folder or args.source != "random" else "none",
        screenshot=args.screenshot,
        quit_after_frames=args.quit_after_frames,
        frame_stats=args.frame_stats,
        k=args.k,
        thumb_h=args.thumb_height,
        header_h=args.header_height,
        width=args.width,
        height=args.height,
        hidpi_scale=args.hidpi_scale,
        ui_scale=args.ui_scale,
        watch=args.watch,
        trim=args.trim,
        verify=args.verify,
        fp32=args.fp32,
        threads=args.threads,
    )


def from_moved(
    open_index: Callable[..., SearchSession], index: Path, gone: FolderGone
) -> tuple[SearchSession | None, str]:
    """``index`` opened from the folder its images moved to with it (``gone.moved``), its
    own being ``gone``, with the words the message line says it in; (None, "") where they
    did not."""
    from rtsearch.session import WrongFolder

    if gone.moved is None:
        return None, ""
    try:
        session = open_index(index, base_dir=gone.moved)
    except WrongFolder:
        return None, ""
    return session, (
        f"its images' folder {gone.named} is gone; shown from {gone.moved}, beside the index "
        "(moved with it)"
    )


def shown_from_last(open_index: Callable[..., SearchSession], index: Path) -> SearchSession | None:
    """``index`` opened from the folder the viewer showed its images from last time, when
    it was the index shown then (its folder chosen in the viewer) and that folder holds
    them; else None."""
    from rtsearch.session import WrongFolder
    from rtsearch.viewer.memory import applies, recall

    last = recall()
    if last.index is None or last.base_dir is None or not last.base_dir.is_dir():
        return None
    if os.path.abspath(last.index) != os.path.abspath(index):
        return None
    try:
        session = open_index(index, base_dir=last.base_dir)
    except WrongFolder:
        return None
    # (not when the file was written over since: another collection's index)
    return session if applies(last, session.index.base_dir) else None


def reopen(
    open_index: Callable[..., SearchSession], base_dir: Path | None
) -> tuple[SearchSession | None, str, Path | None]:
    """The index the viewer showed last time (``memory``), opened from ``base_dir`` when
    given, else from the folder its images were shown from (while it holds them), else
    from its own; with what the message line says. When its images are in none of those,
    the index is handed back to be loaded in the viewer, which asks where they are (as
    Ctrl+O does); when it cannot be opened at all, the message says why (also on stderr)."""
    from rtsearch.session import FolderGone, WrongFolder, same_path
    from rtsearch.viewer.memory import applies, recall

    last = recall()
    index = last.index
    if index is None:
        return None, "", None
    if not index.is_file():
        what = "is not a file" if index.exists() else "is not there (moved or deleted)"
        return None, f"the index shown last time, {index}, {what}; Ctrl+O loads one", None
    folders = [base_dir] if base_dir is not None else [last.base_dir, None]
    for folder in dict.fromkeys(f for f in folders if f is None or f.is_dir()):
        try:
            session = open_index(index, base_dir=folder)
            kept = base_dir is None and folder is not None  # (the folder kept with it)
            if kept and not applies(last, session.index.base_dir):
                continue  # the file written over since, by another collection's index
        except WrongFolder:
            if base_dir is not None:
                raise  # the folder given: as for an index given
            continue  # shown from a folder that now holds others: the index's own next
        except FolderGone as gone:
            session, why = from_moved(open_index, index, gone)
            if session is None:
                break
            images = count(len(session.index.paths), "image")
            return session, f"index: {index} ({images}), the one shown last time; {why}", None
        except RtsearchError as exc:
            message = f"the index shown last time is not opened: {exc}"
            warn(message)
            return None, Problem(f"{message}; Ctrl+O loads one"), None
        images = count(len(session.index.paths), "image")
        said = f"index: {index} ({images}), the one shown last time"
        own = session.index.base_dir
        if not own or not same_path(session.base_dir, Path(own)):  # (chosen in a run before)
            said += f"; its pictures from {session.base_dir}, not its own folder {own or '?'}"
        return session, said, None
    return None, "", index
