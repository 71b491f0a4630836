"""What the viewer's buttons and dialogs start in the background: load, save, analyze,
re-project. Each runs as a Task; the UI thread polls it and swaps the session when done."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import dearpygui.dearpygui as dpg
import platformdirs

from rtsearch import atomic, store
from rtsearch.errors import Problem, RtsearchError, count
from rtsearch.session import same_path
from rtsearch.viewer import keyboard, memory
from rtsearch.viewer.status import NO_INDEX
from rtsearch.viewer.tasks import Task
from rtsearch.viewer.worker import same_row

if TYPE_CHECKING:
    from rtsearch.extractor import Extractor
    from rtsearch.session import SearchSession
    from rtsearch.store import Index
    from rtsearch.viewer.app import ViewerApp, ViewerOptions

ANALYSIS_RUNNING = "an analysis is running: its Cancel, beside the progress bar, stops it"


def analyzing(app: ViewerApp) -> list[Task]:
    """The analyses running and not cancelled (one at a time; a cancelled one still
    keeping its work lets the next start, which waits for it)."""
    return [t for t in app.tasks if t.name == "analyze" and not t.cancel.is_set()]


def load(app: ViewerApp, path: Path, base: Path | None = None) -> None:
    """Open ``path`` in the background from ``base``, else the folder it was shown from
    before (``memory``), while that holds its images, else with the folder stored in it;
    when that folder is gone, ask for it (the base-directory dialog) and open then."""
    from rtsearch.session import WrongFolder, moved_with_index, scarce_note

    current = app.session
    remember = base is None and app.opts.remember

    def work(task: Task):
        from rtsearch import bigstore

        index = bigstore.load(path)  # read once (mapped when large), and opened as read
        # (one shown before, its folder chosen then; not when the file was written over)
        kept = memory.folder_of(path, index.base_dir) if remember else base
        stored = Path(index.base_dir) if index.base_dir else None
        # (moved together with the index: beside it)
        moved = moved_with_index(index, path) if base is None else None
        found = (kept, stored, moved)
        folders = [f for f in dict.fromkeys(found) if f is not None and f.is_dir()]
        if not folders:
            gone = f"{path}: its image folder {index.base_dir or '?'} is gone"
            return Ask(f"{gone}; choose where the images are", str(kept or stored or ""))
        wrong = None
        for folder in folders:
            try:
                session = open_index(path, folder, current, app.opts, index)
            except WrongFolder as exc:  # holding other pictures: ask, as when it is gone
                wrong = wrong or Ask(exc.ask, str(folder.parent))
                continue
            note = scarce_note(session.index, path, folder)
            if folder == moved and folder != kept:
                why = f"its images' folder {stored} is gone; shown from {folder}, beside it"
                note = "; ".join(filter(None, (why, note)))
            return session, note
        return wrong

    def done(result) -> None:
        if not isinstance(result, Ask):
            session, note = result
            app.set_session(session)
            if note:
                app.message += f"; {note}"
            return
        from rtsearch.viewer import dialogs

        app.pending_load, app.dirty = path, True  # (the query's place says it too)
        app.message = Problem(result.why)  # (the folder is gone, or holds none of them)
        # near the folder it was shown from (it opened where it was left, or where the
        # viewer was started)
        dialogs.renew(app.ids.base_dialog, False, dialogs.nearest_folder(result.near))
        app.open_dialog(app.ids.base_dialog)

    app.message = f"loading {path}..."
    app.start_task(Task("load", work, done))


class Ask(NamedTuple):
    """A load that asks where the index's images are: why, and near which folder."""

    why: str
    near: str


def no_base_dir(app: ViewerApp) -> None:
    """The folder dialog of a load was cancelled: the load ends, and says what stays."""
    path, app.pending_load = app.pending_load, None
    if path is None:
        return
    app.dirty = True
    stays = f"{app.session.source or 'the index on show'} stays" if app.session else NO_INDEX
    app.message = f"not loaded: {path} (no folder given for its images); {stays}"


def open_session(app: ViewerApp, path: Path | None, base: Path) -> None:

    if path is None:
        return
    from rtsearch.session import WrongFolder, scarce_note

    current = app.session

    def work(task: Task) -> tuple[SearchSession, str] | WrongFolder:
        try:
            session = open_index(path, base, current, app.opts)
        except WrongFolder as exc:
            return exc
        return session, scarce_note(session.index, path, base)

    def done(result: tuple[SearchSession, str] | WrongFolder) -> None:
        if isinstance(result, WrongFolder):  # ask again, as the message says
            app.pending_load = path
            app.open_dialog(app.ids.base_dialog)
            app.message = Problem(result.ask)
            return
        session, note = result
        app.set_session(session)
        if note:
            app.message += f"; {note}"

    app.message = f"loading {path}..."
    app.start_task(Task("load", work, done))


def open_index(
    path: Path,
    base: Path,
    current: SearchSession | None,
    opts: ViewerOptions,
    index: Index | None = None,
) -> SearchSession:
    """A session for ``path`` (its ``index`` when read already), reusing the loaded model
    when the index was made with it, else the file the viewer's options pick (its faithful
    int8 twin unless --fp32, at --threads), as the command line picks it."""
    from rtsearch import bigstore
    from rtsearch.session import SearchSession, check_base_dir

    if index is None:
        index = bigstore.load(path)
    if current is not None:
        try:
            session = SearchSession(index, current.extractor, base, source=path)
        except RtsearchError:
            pass  # another model: open finds the right one
        else:
            check_base_dir(index, path, base)
            return session
    return SearchSession.open(
        path, base_dir=base, threads=opts.threads, index=index, prefer_int8=not opts.fp32,
        fp32=opts.fp32,
    )  # fmt: skip


def live_extractor(
    current: SearchSession | None, made_by: Extractor, opts: ViewerOptions
) -> Extractor:
    """What the live queries on an index ``made_by`` made run on: the loaded model when it
    is of those weights (whichever of its files the viewer chose), else the file the
    viewer's options pick. After Analyze folder... they ran on the analysis's fp32 file, at
    every core but one: the int8 twin the status bar had shown was gone without a word."""
    from rtsearch.extractor import Extractor
    from rtsearch.models import find_model_for

    info = made_by.info
    if current is not None and current.extractor.info.identity == info.identity:
        return current.extractor
    try:
        path = find_model_for(
            info.name, info.feature_layer, info.identity, prefer_int8=not opts.fp32,
            first="fp32" if opts.fp32 else "",
        )  # fmt: skip
    except RtsearchError:
        path = made_by.path  # (none but it: the live queries run on the same file)
    return Extractor(path, threads=opts.threads)


def watch(app: ViewerApp) -> None:
    """Follow the loaded index's image folder in the background (``update.follow``): each
    change rewrites the index file and hands the UI thread a new session to swap in. Stops
    when the viewer closes or another index is loaded."""
    from rtsearch import update
    from rtsearch.session import SearchSession

    session = app.session
    if session is None or session.source is None:
        app.message = "watch: load an index file first"
        return
    path, base, extractor = session.source, session.base_dir, session.extractor

    def work(task: Task) -> None:
        from rtsearch.extractor import Extractor

        waiting = lambda why: task.post(why)  # noqa: E731 (why it applies nothing for now)
        # the rows it adds are made with the file that made the index's, as `update` makes
        # them; the live queries may run on its twin (int8 rows in an fp32 index came back
        # at 0.07-0.11 from their own pictures, and stayed so: the files were unchanged for
        # every later update)
        model = update.rows_model(session.index, path, extractor.path)
        same = model.resolve() == Path(extractor.path).resolve()
        rows_by = extractor if same else Extractor(model, threads=1)
        named: set[str] = set()  # files skipped and said: not again on every pass

        def progress(p) -> None:  # a pass analysing new files: the bar, till its last batch
            task.progress, note = progress_note(p)
            task.note = f"adding {note}" if p.done < p.total else ""

        for report in update.follow(
            path, base, rows_by, stop=task.cancel, warn=_ignore, say_waiting=waiting,
            progress=progress,
        ):  # fmt: skip
            if app.session is not None and app.session.source != path:
                return  # another index was loaded: stop following this one
            fresh = SearchSession(report.index, extractor, base, source=path)
            new_skips = [s for s in report.skipped if s[0] not in named]
            named.update(file for file, _ in new_skips)
            note = "watching: " + report.summary(path) + skipped_note(new_skips)
            dims = dims_to_apply(app, fresh)  # the dims applied here stay (the file keeps its own)
            if dims is not None:
                try:
                    fresh = fresh.reprojected(dims)
                except RtsearchError as exc:
                    note += f"; the {dims} dimensions applied here are lost: {exc}"
            moves = {base / new: base / was for new, was in report.moves.items()}
            task.post((fresh, note, moves))

    def posted(value) -> None:
        if task.cancel.is_set():
            return  # (another index is on show: its own watch speaks)
        if isinstance(value, str):
            app.message = Problem(f"watching: {value}")
        else:
            swap_in(app, *value)

    task = Task("watch", work, lambda _: None, on_post=posted)
    task.index = path
    app.worker.watching = task
    app.start_task(task)


def swap_in(
    app: ViewerApp, fresh: SearchSession, summary: str, moves: dict[Path, Path] | None = None
) -> None:
    """Show a newer version of the loaded index (from ``--watch``) with the dims applied
    here: when Apply dims came after the watch made this version, it is re-projected too.
    ``moves``: pictures it found moved within the folder (new file -> old file), which the
    history follows (back passed over them, and they were kept under their old names)."""
    current = app.session
    if current is None or current.source != fresh.source:
        return  # another index was loaded meanwhile
    if moves:
        app.history.moved({was: new for new, was in moves.items()})
    pub = app.published
    # (the query on show is of this index: one of the index before may still show)
    ours = pub is not None and pub.file is not None and pub.row is not None
    ours = ours and current.row_at(pub.file) == pub.row
    if ours and same_row(current, fresh, pub.row) is None:
        # (a random picture drawn in its place, unsaid: "1 removed")
        summary += f"; the query's picture is gone from it ({pub.file.name}): another drawn"
        keyboard.to_top(app)  # (its picture shows at the top, as R's does)
    app.set_session(fresh)
    app.message = summary
    dims = dims_to_apply(app, fresh)
    if dims is not None:
        app.reprojections += 1
        _reproject(app, fresh, dims, app.reprojections, note=summary)


def dims_to_apply(app: ViewerApp, version: SearchSession) -> int | None:
    """The dims applied here to ``version``'s index file, when ``version`` has others."""
    applied = app.applied_dims
    if applied is None or applied[0] != version.source or applied[1] == version.index.dims:
        return None
    return applied[1]


def skipped_note(skipped: list[tuple[str, str]], named: int = 3) -> str:
    """The files an analysis skipped, for the message line: the first few with their
    reasons (each names its file), then how many more."""
    from rtsearch.analyze import skipped_reasons

    if not skipped:
        return ""
    return f"; skipped {count(len(skipped), 'file')}: {skipped_reasons(skipped, named)}"


def _ignore(message: str) -> None:
    """Unreadable files are counted in the update summary; no line per file in the UI."""


def save_as(app: ViewerApp, path: Path) -> None:
    """Save to ``path`` as the dialog chose it: a file already there is replaced only when
    the user says so, unless it is the loaded index's own file (saved back). What is saved
    is the index on show when the dialog opened (an analysis that ended meanwhile put its
    own on show, and that was saved, over a file the question said held the other), or a
    newer version of its file (--watch, Apply dims)."""
    from rtsearch.viewer import dialogs

    session, app.to_save = to_save(app), None
    if session is None:
        return
    own = session.source is not None and same_path(path, session.source)
    if own or not path.exists():
        save(app, path, session)
        return

    def ask(holding: str) -> None:
        images = count(len(session.index.paths), "image")
        dialogs.ask(
            app,
            "Replace a file?",
            f"{path} already exists{holding}. Replace it with this index ({images} of "
            f"{session.base_dir})?",
            "Replace",
            on_yes=lambda: save(app, path, session),
            on_no=lambda: setattr(app, "message", f"not saved: {path} is left as it was"),
        )

    # what the file holds is read in the background: an index may take a while
    app.start_task(Task("save", lambda task: _holding(path), ask))


def _holding(path: Path) -> str:
    """What the file at ``path`` holds, when it is an index: ", an index of N images of
    FOLDER"; else ""."""
    from rtsearch import bigstore

    try:
        index = bigstore.load(path)
    except RtsearchError:
        return ""
    return f", an index of {count(len(index.paths), 'image')} of {index.base_dir or '?'}"


def to_save(app: ViewerApp) -> SearchSession | None:
    """The index the save dialog was opened for: the one on show then, or the version of
    its file on show now."""
    chosen, now = app.to_save, app.session
    if chosen is None:
        return now
    newer = now is not None and now.source is not None and now.source == chosen.source
    return now if newer else chosen


def save(app: ViewerApp, path: Path, session: SearchSession | None = None) -> None:
    session = app.session if session is None else session
    if session is None:
        return

    def done(_) -> None:
        images = count(len(session.index.paths), "image")
        app.message = f"saved {path} ({images} of {session.base_dir})"
        if app.unsaved is not None and app.unsaved[0] == session.source:
            app.unsaved = None  # (its re-projection kept: in its file, or in another)

    def work(task: Task) -> None:
        # with the features its file holds (a copy without them could not change
        # dimensions), and the folder the images are in now (chosen for a moved index)
        index = session.with_features()
        store.save(dataclasses.replace(index, base_dir=str(session.base_dir.resolve())), path)

    app.start_task(Task("save", work, done))


def reproject(app: ViewerApp) -> None:
    session = app.session
    if session is None:
        app.message = "no index loaded"
        return
    dims = int(dpg.get_value(app.ids.dims_input))
    if dims == session.index.dims and not any(t.name == "re-projection" for t in app.tasks):
        app.message = f"the index has {dims} dimensions already"
        return
    app.reprojections += 1
    app.applied_dims = (session.source, dims)  # from now: a --watch swap keeps these too
    app.message = f"re-projecting to {dims} dimensions..."
    _reproject(app, session, dims, app.reprojections)


def unsaved_dims(app: ViewerApp) -> tuple[Path, int, int] | None:
    """The index on show, re-projected here and not saved since: (its file, the dimensions
    shown, those its file holds); None where there is none."""
    session, unsaved = app.session, app.unsaved
    if session is None or unsaved is None or session.source != unsaved[0]:
        return None
    file, held = unsaved
    dims = session.index.dims
    return None if dims == held else (file, dims, held)


def thin_note(index: Index) -> str:
    """A PCA of more dimensions than its images span, said as `analyze` says it (the viewer
    said nothing of 1500 dimensions over 128 images)."""
    from rtsearch.analyze import pca_span

    thin = pca_span(index)
    if thin is None:
        return ""
    fitted, span = thin
    return f"; its {count(fitted, 'image')} span at most {span} of them: the rest carry nothing"


def _reproject(
    app: ViewerApp, session: SearchSession, dims: int, mine: int, note: str = ""
) -> None:
    """Re-project ``session`` in the background and show it. ``mine`` is the request it
    serves: only the last one counts. A version of the same index that ``--watch`` swaps in
    meanwhile is re-projected by the watch (``swap_in``): the dims are not lost and the
    message is not left waiting."""

    def work(task: Task) -> SearchSession | RtsearchError:
        try:
            return session.reprojected(dims)
        except RtsearchError as exc:
            return exc

    def done(fresh: SearchSession | RtsearchError) -> None:
        current = app.session
        if mine != app.reprojections or current is None or current.source != session.source:
            return  # a later request came, or another index was loaded and said so
        if isinstance(fresh, RtsearchError):
            app.applied_dims = (session.source, current.index.dims)
            app.message = Problem(f"re-projection failed: {fresh}")
            dpg.set_value(app.ids.dims_input, current.index.dims)  # what it still has
        elif current is session or current.index.dims == dims:
            if current is session:  # else --watch swapped in a newer version with these dims
                # (the first re-projection since it was loaded or saved: its dims are the
                # file's)
                if session.source is not None and (
                    app.unsaved is None or app.unsaved[0] != session.source
                ):
                    app.unsaved = (session.source, session.index.dims)
                app.set_session(current := fresh)
            images = count(current.index.count, "image")
            kind = current.index.projection.kind if current.index.projection else ""
            by = f" by {kind}" if kind != session.index.projection.kind else ""
            said = f"re-projected to {dims} dimensions{by} ({images}){thin_note(current.index)}"
            app.message = note or said
        # else the same file was loaded again meanwhile, with its own dims, and said so

    app.start_task(Task("re-projection", work, done))


def analysis_output(folder: Path, model: str) -> Path:
    """Where an index analysed from the UI goes: one per folder and model (``model_key``)
    in the user data folder. Keyed by the folder alone, a folder analysed before with
    another model was refused ("use the same --model")."""
    digest = hashlib.sha1(f"{folder.resolve()}\0{model}".encode()).hexdigest()[:10]
    name = f"{folder.name}-{model}-{digest}.dat"
    return Path(platformdirs.user_data_dir("rtsearch")) / "indexes" / name


def own_index(folder: Path, info, model: Path) -> Path:
    """The viewer's index of ``folder`` made with the model file ``model`` (``info``):
    ``analysis_output``. One an earlier version made (named by the folder alone, by the
    model file's name, or by its weights without the variant) becomes it, rather than the
    folder analysed again, full features and all, with the old file left behind."""
    out = analysis_output(folder, model_key(info))
    if out.exists():
        return out
    weights = hashlib.sha1(info.identity.encode()).hexdigest()[:8]
    by_folder = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:10]
    older = [out.with_name(f"{folder.name}-{by_folder}.dat")]
    older += [
        analysis_output(folder, key) for key in (info.name, model.stem, f"{info.name}-{weights}")
    ]
    for path in dict.fromkeys(older):
        if path != out and path.is_file() and _made_here(path, folder, info):
            os.replace(path, out)
            if store.checkpoint_dir(path).is_dir() and not store.checkpoint_dir(out).exists():
                os.replace(store.checkpoint_dir(path), store.checkpoint_dir(out))
            break
    return out


def _made_here(path: Path, folder: Path, info) -> bool:
    """Whether the index at ``path`` is of ``folder`` and of rows ``info``'s file makes."""
    try:
        index = store.load(path)
    except RtsearchError:
        return False  # a damaged one is left where it is; the folder is analysed afresh
    return (
        index.base_dir == str(folder.resolve())
        and index.model.identity == info.identity
        and not store.twin_clash(index.model, info)
    )


def analyze_picked(app: ViewerApp, folder: Path) -> None:
    """What *Analyze folder...* picked: a folder holding the one on show is asked about
    first. The dialog opens beside the folder on show, and A then Enter analysed all of the
    folder around it (~/Pictures, for an index of ~/Pictures/Trip) without a word."""
    from rtsearch.viewer import dialogs

    folder = Path(os.path.normpath(folder))  # (as typed: '/tmp/pics/..')
    shown = app.session.base_dir if app.session is not None else None
    if shown is None or not _holds(folder, shown):
        analyze(app, folder)
        return
    dialogs.ask(
        app,
        "Analyze the folder around the one on show?",
        f"{folder} holds {shown}, the folder on show, and everything beside it. Analyze all "
        "of it? (To bring the index on show up to date, pick its folder itself.)",
        "Analyze",
        on_yes=lambda: analyze(app, folder),
        on_no=lambda: setattr(app, "message", f"not analysed: {folder}"),
    )


def _holds(folder: Path, inner: Path) -> bool:
    """Whether ``inner`` lies inside ``folder`` (links followed), and is not it."""
    outer, inner = Path(os.path.realpath(folder)), Path(os.path.realpath(inner))
    return outer != inner and inner.is_relative_to(outer)


def analyze(app: ViewerApp, folder: Path, kept: bool = True) -> None:
    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor, cores
    from rtsearch.models import DEFAULT_MODEL, resolve_model
    from rtsearch.session import SearchSession

    if analyzing(app):
        app.message = ANALYSIS_RUNNING
        return
    stopping = [t for t in app.tasks if t.name == "analyze"]  # cancelled, keeping its work
    current = app.session
    if updatable(current, folder):
        update_index(app, folder, stopping, Path(current.source))  # type: ignore[union-attr]
        return
    before = kept_index(folder) if kept else None
    if before is not None:  # (not on show: loaded, and shown once it is up to date)
        update_index(app, folder, stopping, before.index, before)
        return
    info = current.extractor.info if current else None
    loaded = current.extractor.path if current else None

    def work(task: Task):
        wait_for(stopping, task)
        # every core but one, which the window and the live source keep (on 2 cores: one
        # thread, as before; it was one on any machine)
        # here, not on the UI thread: the default model's first use exports it
        model = analysis_file(loaded, info) if loaded and info else resolve_model(DEFAULT_MODEL)
        extractor = Extractor(model, threads=max(1, cores() - 1), streams=0)
        # one index per folder and model, whichever of its files the live queries use
        out = own_index(folder, extractor.info, model)
        try:
            report = analyze(
                folder,
                out,
                extractor,
                # the viewer's own file of the folder: what the folder holds now replaces it
                # (a folder culled since was refused with advice the viewer has no way to take)
                Settings(keep_features=True, replace=True),
                progress=lambda p: show_progress(task, p),
                cancel=task.cancel,
            )
        except atomic.IndexBusy:
            if not watched(app, out):
                raise
            return watched_note(folder)
        if report.index is None:
            return None
        live = live_extractor(current, extractor, app.opts)
        return SearchSession(report.index, live, folder, source=out), report

    def done(result) -> None:
        if said(app, result):
            return
        session, report = result
        skipped = report.skipped
        now = app.session
        if _still(current, now):
            app.set_session(session)
            app.message += again_note(report) + skipped_note(skipped)
            return
        # another index was loaded meanwhile: it stays until the user says (it was replaced)
        from rtsearch.viewer import dialogs

        images = count(len(session.index.paths), "image")
        kept = f"analysis of {folder} done ({images}{skipped_note(skipped)})"
        dialogs.ask(
            app, "Analysis done",
            f"The analysis of {folder} is done: {images}. Show it in place of "
            f"{now.source or now.base_dir}?",
            "Show it",
            on_yes=lambda: app.set_session(session),
            on_no=lambda: setattr(
                app, "message", f"{kept}; Analyze folder... (A) on it again shows it at once"
            ),
        )  # fmt: skip

    app.message = f"analyzing {folder}"  # (into the file the loaded index then names)
    task = Task("analyze", work, done)
    task.folder = folder
    # (it said "analyze cancelled", and nothing of the work done: its checkpoints keep it)
    task.cancelled = (
        f"analysis of {folder} cancelled: the images analysed so far are kept, and Analyze "
        "folder... (A) on it again goes on from there"
    )
    app.start_task(task)


def wait_for(stopping: list[Task], task: Task) -> None:
    """Wait, on ``task``'s thread, for the analyses ``stopping`` (cancelled, keeping their
    work) to end: Cancel, then A at once, said one was running."""
    for old in stopping:
        while not old.finished and not task.cancel.is_set():
            old.join(0.1)


def show_progress(task: Task, p) -> None:
    """An analysis's progress (analyze.Progress) onto ``task``, as its bar shows it."""
    task.progress, task.note = progress_note(p)


def again_note(report) -> str:
    """What an analysis of a folder analysed before (its index kept) did: how many pictures
    it analysed now, and how many it dropped (gone); "" for a first analysis. It said only
    the index's size, as if nothing had been seen of the pictures added."""
    if not report.reused:
        return ""
    gone = f", {count(report.removed, 'picture')} gone" if report.removed else ""
    return f"; {count(report.analysed, 'picture')} new or changed analysed now{gone}"


def watched(app: ViewerApp, index: Path) -> bool:
    """Whether this viewer's own --watch is writing ``index`` (an analysis or update of it
    found it busy, and said another rtsearch was writing it)."""
    return any(t.name == "watch" and same_path(t.index, index) for t in list(app.tasks))


def watched_note(folder: Path) -> str:
    return f"{folder}: --watch is bringing its index up to date; it shows when done"


def said(app: ViewerApp, result) -> bool:
    """Whether an analysis's ``result`` is all there is to show: nothing (cancelled), or
    words for the message line."""
    if isinstance(result, str):
        app.message = result
    return result is None or isinstance(result, str)


def updatable(session: SearchSession | None, folder: Path) -> bool:
    """Whether *Analyze folder...* on ``folder`` brings the index on show up to date: its
    images are shown from ``folder``, and its file (not one of the viewer's own, which an
    analysis brings up to date) can be written. It analysed the whole folder again into a
    second index, the one on show left as it was: hours, for a large collection."""
    if session is None or session.source is None or not same_path(session.base_dir, folder):
        return False
    return _writable_not_own(Path(session.source), folder)


def kept_index(folder: Path) -> memory.Shown | None:
    """The index shown before from ``folder`` (the Load dialog's list), last first, that
    *Analyze folder...* on ``folder`` brings up to date, as ``updatable``: another index was
    on show, and the folder was analysed again into a second index."""
    for shown in memory.all_shown(memory.recall()):
        if same_path(shown.base_dir, folder) and _writable_not_own(shown.index, folder):
            return shown
    return None


def _writable_not_own(path: Path, folder: Path) -> bool:
    if same_path(path.parent, analysis_output(folder, "-").parent):
        return False
    return path.is_file() and os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


ANEW = object()  # an index kept from before that cannot be brought up to date: analysed anew


def update_index(
    app: ViewerApp, folder: Path, stopping: list[Task], path: Path, kept: memory.Shown | None = None
) -> None:
    """Bring the index file ``path`` up to date with ``folder``, its images' folder, as
    `rtsearch update` does: only new and changed pictures are analysed, with the model file
    that made its rows, the rest kept. The index on show (``kept`` None) is shown updated as
    ``--watch`` shows one; one shown before (``kept``) is shown once it is up to date, or,
    where its file no longer names that folder or its model file is gone, the folder is
    analysed anew as before. Cancelled, its work is kept for the next time."""
    from rtsearch import update
    from rtsearch.extractor import Extractor, cores
    from rtsearch.session import SearchSession

    current = app.session
    loaded = current.extractor.path if current is not None else None

    def work(task: Task):
        wait_for(stopping, task)
        if kept is None:
            assert current is not None
            model = update.rows_model(current.index, path, loaded)
        else:
            try:
                index = store.load(path)
                if not memory.applies(kept, index.base_dir):  # (written over since)
                    return ANEW
                model = update.rows_model(index, path, loaded)
            except RtsearchError:
                return ANEW
        rows_by = Extractor(model, threads=max(1, cores() - 1), streams=0)
        try:
            report = update.update(
                path, folder, rows_by, cancel=task.cancel, progress=lambda p: show_progress(task, p)
            )
        except KeyboardInterrupt:  # cancelled: its checkpoints keep the work (task.cancelled)
            return None
        except atomic.IndexBusy:
            if not watched(app, path):
                raise
            return watched_note(folder)
        live = current.extractor if kept is None else live_extractor(current, rows_by, app.opts)
        fresh = SearchSession(report.index, live, folder, source=path)
        summary = report.summary(path) + skipped_note(report.skipped)
        if report.refit_advised:  # (said by `update`; the viewer said nothing of it)
            summary += "; " + update.refit_advice(path, folder, model)
        return fresh, summary

    def done(result) -> None:
        if result is ANEW:
            analyze(app, folder, kept=False)
            return
        if said(app, result):
            return
        fresh, summary = result
        now = app.session
        if (
            kept is None
            and now is not None
            and now.source is not None
            and same_path(now.source, path)
        ):
            swap_in(app, fresh, summary)  # (with the dims applied here)
            return
        if kept is not None and _still(current, now):
            app.set_session(fresh)  # (at its last query, as Ctrl+O opens it)
        app.message = summary  # (else another index was loaded meanwhile: it stays)

    app.message = (
        f"bringing {path} up to date with {folder}: only its new and changed pictures are analysed"
    )
    task = Task("analyze", work, done)
    task.folder, task.index = folder, path
    task.cancelled = (
        f"update of {path} cancelled: the images analysed so far are kept, and Analyze "
        "folder... (A) on its folder again goes on from there"
    )
    app.start_task(task)


def _still(before: SearchSession | None, now: SearchSession | None) -> bool:
    """Whether the collection on show ``now`` is the one shown ``before`` (a version of its
    file or its folder: --watch, Apply dims), or none is shown still."""
    from rtsearch.session import same_collection

    if before is None or now is None:
        return before is now
    return same_collection(before, now)


def progress_note(p) -> tuple[float, str]:
    """An analysis's progress (analyze.Progress) as the bar shows it: the folder's images,
    those analysed before (a resumed run, a folder analysed again) counted in (it said
    32/104 of a folder of 120, 16 done before), the rate, and the time left."""
    done, total = p.before + p.done, p.before + p.total
    if p.images_per_s <= 0:  # (not measured in the work's first second)
        return done / max(total, 1), f"{done}/{total} images"
    note = f"{done}/{total} images, {p.images_per_s:.0f}/s"
    if p.done < p.total:
        note += f", {_duration(p.eta_s)} left"
    return done / max(total, 1), note


def _duration(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def model_key(info) -> str:
    """A model's name in an index file's name: its weights too, so two exports of one
    backbone from other weights (VGG16 from torchvision's and from Keras's) do not share a
    file; its fp32 and int8 files do not either (an index's rows come from one of them)."""
    key = f"{info.name}-{hashlib.sha1(info.identity.encode()).hexdigest()[:8]}"
    return key + ("-int8" if info.variant == "int8" else "")


def analysis_file(loaded: Path, info) -> Path:
    """The file an index of ``info``'s model is made with: its fp32 one, as `analyze` makes
    them, when the live queries run on its int8 twin (an index analysed from the viewer
    held int8 features: 0.978 cosine at worst to the fp32 ones); else ``loaded``."""
    from rtsearch.models import find_model_for

    if info.variant == "fp32":
        return loaded
    try:
        return find_model_for(info.name, info.feature_layer, info.identity, variant="fp32")
    except RtsearchError:
        return loaded  # no fp32 file of it: the twin is what there is


def cancel_analyze(app: ViewerApp) -> None:
    for task in app.tasks:
        if task.name == "analyze":
            task.cancel.set()
            app.message = "cancelling the analysis..."
