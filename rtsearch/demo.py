"""`rtsearch demo`: fetch a gallery of real images once, index it once, open the viewer on it.

The index keeps its full features (``--keep-features``) so the viewer can change
dimensionality; it lives in the user data directory and is reused on later runs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import h5py
import platformdirs

from rtsearch import atomic, gallery, store
from rtsearch.errors import RtsearchError, count, printable, require_folder
from rtsearch.models import DEFAULT_MODEL, ModelInfo
from rtsearch.store import ModelRef

VIEWER_THREADS = 1  # the GUI shares the cores: one inference thread keeps frames smooth


def add_arguments(p: argparse.ArgumentParser) -> None:
    from rtsearch.argtypes import positive_int, thread_count

    p.add_argument(
        "--gallery",
        type=Path,
        default=None,
        help="use this folder of images instead of fetching the demo gallery",
    )
    p.add_argument(
        "--gallery-dir",
        type=Path,
        default=None,
        help="where the fetched gallery goes (default: the user data folder)",
    )
    p.add_argument("--refetch", action="store_true", help="fetch the gallery again")
    p.add_argument("--rebuild", action="store_true", help="analyze the gallery again")
    p.add_argument(
        "--index",
        type=Path,
        default=None,
        help="demo index file (default: one per gallery and model in the user data folder)",
    )
    p.add_argument("--model", default=DEFAULT_MODEL, help="model name or .onnx path")
    p.add_argument(
        "--threads",
        type=thread_count,
        default=0,
        help="inference threads for the analysis (0: all cores)",
    )
    p.add_argument("--no-view", action="store_true", help="build the index, do not open the viewer")
    p.add_argument(
        "--no-last",
        dest="last",
        action="store_false",
        help="viewer: start from the default settings and keep nothing of this run (by "
        "default it starts as the viewer was left, and plain `rtsearch` opens the demo "
        "index next)",
    )
    p.add_argument("--screenshot", type=Path, default=None, help="viewer: write a screenshot")
    p.add_argument(
        "--quit-after-frames", type=positive_int, default=None, help="viewer: quit after N frames"
    )
    from rtsearch.viewer.cli import add_window_options

    add_window_options(p, "viewer: ")


def run(args: argparse.Namespace) -> int:
    from rtsearch.models import read_model_info, resolve_model

    if args.screenshot is not None:  # before the analysis, not after it
        atomic.check_writable(args.screenshot, "screenshot")
    if not args.no_view:  # before minutes of fetching and analysing, not after them
        from rtsearch.viewer.display import XVFB_HINT, check_display

        # (xvfb-run opens a window nobody sees: the index alone is what such a machine wants)
        check_display(f"pass --no-view to build the index only ({XVFB_HINT} for a --screenshot)")
    root = resolve_gallery(args)
    model = resolve_model(args.model)  # (the default's first use exports it)
    index_path = args.index or default_index_path(root, read_model_info(model))
    if args.index is None:
        _adopt_older(root, args.model, index_path)
    build_index(
        root, index_path, str(model), rebuild=args.rebuild, threads=args.threads,
        owned=args.index is None,
    )  # fmt: skip
    if args.no_view:
        if args.last:
            _shown_next(index_path, root)
        return 0
    return open_viewer(index_path, root, args)


def _shown_next(index_path: Path, root: Path) -> None:
    """The demo index is the one plain `rtsearch` opens, where the viewer has shown none
    yet (built with --no-view, it opened an empty viewer); one the user had shown stays."""
    from rtsearch.viewer import memory

    if memory.recall().index is None:
        memory.keep_shown(index_path, root.resolve(), None, named=str(root.resolve()))


def resolve_gallery(args: argparse.Namespace) -> Path:
    if args.gallery is not None:
        if args.refetch:  # (it was left unsaid that the folder given is not fetched)
            raise RtsearchError(
                f"--refetch fetches the demo gallery, and --gallery {args.gallery} is used as "
                "it is: give one"
            )
        require_folder(args.gallery)
        print(f"demo gallery: {args.gallery} (given)")
        return args.gallery
    found = gallery.ensure_gallery(args.gallery_dir, refetch=args.refetch, log=_say)
    print(f"demo gallery: {found.describe()}")
    there = gallery.count_images(found.root)
    if there < found.count:  # its pictures are indexed as they are: say what fixes it
        _say(
            f"gallery: holds {there} of the {found.count} images it was fetched with (deleted "
            "or damaged since): --refetch fetches it again"
        )
    return found.root


def default_index_path(root: Path, info: ModelInfo) -> Path:
    """One index per gallery folder and model file's weights and variant, so switching
    either never mixes them, and a model named or given by its path shares one."""
    model = info.label.replace(" ", "-")
    key = hashlib.sha256(f"{root.resolve()}\0{info.identity}\0{model}".encode()).hexdigest()
    return Path(platformdirs.user_data_dir("rtsearch")) / "demo" / f"{model}-{key[:12]}.dat"


def _adopt_older(root: Path, model: str, index_path: Path) -> None:
    """The demo index an earlier version kept for this gallery and ``--model`` text (its
    file was keyed by the text) becomes this one's, rather than left behind as the gallery
    is analysed again."""
    key = hashlib.sha256(f"{root.resolve()}\0{model}".encode()).hexdigest()[:12]
    name = Path(model).stem if model.endswith(".onnx") else model
    older = index_path.parent / f"{name}-{key}.dat"
    if older != index_path and older.is_file() and not index_path.exists():
        os.replace(older, index_path)


def build_index(
    root: Path, index_path: Path, model: str, *, rebuild: bool, threads: int, owned: bool = True
) -> None:
    """Analyze ``root`` into ``index_path``: only what changed since the index there was
    made (nothing, most times), or all of it with ``rebuild``. ``owned``: the demo's own
    file (in the user data folder), rebuilt when it is damaged; a file given with --index
    is replaced only when it is an index, of this gallery or (with --rebuild) of any."""
    if index_path.is_dir():
        raise RtsearchError(f"{index_path}: is a folder; choose another --index")
    from rtsearch.analyze import Options, Settings, analyze
    from rtsearch.cli import with_progress
    from rtsearch.extractor import Extractor
    from rtsearch.models import resolve_model

    extractor = Extractor(resolve_model(model), threads=threads, streams=0)
    had = _usable(index_path, root, owned, rebuild, extractor.info)
    start = time.monotonic()
    # (fresh: every image analysed again; the old file stays until the new one replaces it)
    # an index there keeps the settings it was made with (a user's --index was analysed
    # again to the demo's, 8 dims without features made 100 with them); the demo's own
    # keep their features, for the viewer's dims box
    made = store.made_with(index_path) if had is not None else {}
    kept = {k: made[k] for k in ("dims", "projection", "l2_normalize", "seed") if k in made}
    settings = Settings(
        **kept,
        keep_features=made.get("features", True),
        fresh=rebuild,
        # the demo's own file follows its gallery, refetched or not (a refetch was refused:
        # "holds only 0 of the 28 images ...: pass --rebuild")
        replace=owned,
        options=Options(out="--index", replace="--rebuild"),  # its refusals name the demo's
    )
    report = with_progress(lambda **shown: analyze(root, index_path, extractor, settings, **shown))
    assert report.index is not None
    if had is not None and not report.analysed and report.index.paths == had.paths:
        print(printable(f"demo index: {index_path} (up to date; --rebuild to analyze again)"))
        return
    # (what a run before kept, in the index or its checkpoints, is said)
    changed = f", {report.analysed} analysed, {report.reused} reused" if report.reused else ""
    print(
        printable(
            f"demo index: {index_path} ({count(report.index.count, 'image')}, "
            f"{extractor.info.label}, {report.index.dims} dims{changed}, built in "
            f"{time.monotonic() - start:.1f} s)"
        )
    )


def _usable(
    index_path: Path, root: Path, owned: bool, rebuild: bool, info: ModelInfo
) -> store.Index | None:
    """The index at ``index_path`` to bring up to date (None: none, or ``rebuild``); what
    is there and not an index of ``root`` is refused, or with ``rebuild`` replaced only
    when it is an index (a photo given as --index was overwritten)."""
    if not index_path.exists():
        return None
    if not index_path.is_file():  # a device, a FIFO
        raise RtsearchError(f"{index_path}: not a regular file; choose another --index")
    try:
        index = store.load(index_path)
    except RtsearchError as exc:
        if owned:  # the demo's own file: nothing of the user's
            _say(f"demo index: {exc}; rebuilding")
            index_path.unlink()
            return None
        if not h5py.is_hdf5(index_path):  # a photo, a document: not ours to delete
            raise RtsearchError(
                f"{index_path}: not an index file; choose another --index"
            ) from None
        if not store.looks_like_index(index_path):  # another program's HDF5 file
            raise RtsearchError(f"{exc}; delete it, or choose another --index") from None
        if not rebuild:  # an index of ours damaged: --rebuild writes over it, as asked
            raise RtsearchError(
                f"{exc}; delete it, choose another --index, or pass --rebuild to analyze "
                f"{root} into it"
            ) from None
        _say(f"demo index: {exc}; --rebuild: analysing all of it anew")
        return None
    if rebuild:
        return None
    if index.base_dir != str(root.resolve()):  # its rows would be looked for in root
        raise RtsearchError(
            f"{index_path}: an index of {index.base_dir}, not of {root}; choose another "
            f"--index, or pass --rebuild to analyze {root} into it"
        )
    if index.model.identity != info.identity:
        raise RtsearchError(
            f"{index_path}: an index made with model {index.model}, not "
            f"{ModelRef.of(info)}; choose another --index, or pass --rebuild to analyze "
            f"{root} into it with {info.name}"
        )
    clash = store.twin_clash(index.model, info)  # rows of the two files would be mixed
    if clash:
        raise RtsearchError(
            f"{index_path}: an index made with {clash}; choose another --index, or pass "
            f"--rebuild to analyze {root} into it with that one"
        )
    return index


def open_viewer(index_path: Path, root: Path, args: argparse.Namespace) -> int:
    try:
        from rtsearch.viewer.app import run_viewer
    except ImportError as exc:
        raise RtsearchError(
            f"the viewer cannot start ({exc}); the demo index is ready at {index_path}"
        ) from None
    from rtsearch.session import SearchSession

    # The index's own model (its faithful int8 twin, when there is one: live queries are
    # the speed-bound part), unless --model named a file or a non-default model.
    named = args.model if args.model != DEFAULT_MODEL else None
    session = SearchSession.open(
        index_path, base_dir=root, model=named, threads=VIEWER_THREADS, prefer_int8=not named
    )
    _say(f"demo: querying with {session.extractor.path.name} on {session.extractor.provider}")
    return run_viewer(
        session, screenshot=args.screenshot, quit_after_frames=args.quit_after_frames,
        width=args.width, height=args.height, ui_scale=args.ui_scale, remember=args.last,
    )  # fmt: skip


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
