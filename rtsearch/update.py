"""`rtsearch update INDEX.dat DIR [--watch]`: bring an index up to date with its folder.

New images are added, deleted ones dropped, changed ones (size or mtime differ) analysed
again; unchanged rows keep their stored vectors bit for bit. The index keeps its projection
even when it stores features (a re-run of ``analyze`` would refit): a random projection is
data-independent, so new rows land exactly where a full re-analysis would put them; a PCA
was fitted to the old rows, so past REFIT_FRACTION new or changed rows the update says a
refit is advisable. Extraction reuses the analyzer's loop and its checkpoints
(``INDEX.dat.ckpt``), so an interrupted large update resumes.

``follow()`` is the live hook: it yields a fresh UpdateReport (with the new ``Index``) each
time the folder changes, using watchdog's filesystem events when installed, else polling.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from rtsearch import analyze as single
from rtsearch import atomic, store
from rtsearch.analyze import Progress, Report
from rtsearch.argtypes import number
from rtsearch.checkpoints import (
    SETTINGS,
    CheckpointWriter,
    check_folder,
    checkpoint_dir,
    checkpoint_files,
)
from rtsearch.decode import is_image_file
from rtsearch.errors import RtsearchError, Warn, command, count, printable, require_folder
from rtsearch.exclusions import Exclusions
from rtsearch.extractor import Extractor
from rtsearch.interrupts import Terminated
from rtsearch.moves import moved_rows
from rtsearch.scan import file_size, kept_unread, scan
from rtsearch.store import Index

REFIT_FRACTION = single.REFIT_FRACTION
SETTLE_AT_MOST = 30.0  # s a watch waits at most for the folder's files to stand still


@dataclass
class UpdateReport:
    index: Index
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    relocated: list[str] = field(default_factory=list)  # moved within the folder: new paths
    moves: dict[str, str] = field(default_factory=dict)  # of those: new path -> the old one
    # analysed again (another file time), the same picture as before: its vector unchanged
    touched: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    unreadable: int = 0  # of the removed: indexed files changed into ones that do not decode
    refit_advised: bool = False
    seconds: float = 0.0
    moved_from: str | None = None  # the folder the index named before, if it now names another
    excluded: tuple[int, int] = (0, 0)  # folders and files its --exclude patterns left out
    outside: list[str] = field(default_factory=list)  # folders linked from outside (scan's)
    links: list[str] = field(default_factory=list)  # the links to folders met (scan's)

    @property
    def modified(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.relocated or self.touched)

    def summary(self, where: Path) -> str:
        moved = f"; its folder is now {self.index.base_dir}" if self.moved_from else ""
        return printable(
            f"{where}: {count(self.index.count, 'image')} ({len(self.added)} added, "
            f"{len(self.changed)} changed, "
            + (f"{len(self.relocated)} moved, " if self.relocated else "")
            + (f"{len(self.touched)} the same but for their file times, " if self.touched else "")
            + f"{len(self.removed)} removed, "
            + (f"{self.unreadable} of them unreadable now, " if self.unreadable else "")
            + f"{len(self.skipped)} skipped"
            + single.left_out_text(self.excluded)
            + f") in {self.seconds:.1f} s{moved}"
        )


def update(
    index_path: Path,
    base_dir: Path,
    extractor: Extractor,
    *,
    batch: int = 0,
    warn: Warn | None = None,
    cancel: threading.Event | None = None,
    replace: bool = False,
    prune: bool | None = None,
    progress: Callable[[Progress], None] | None = None,
    own_folder: bool = False,
) -> UpdateReport:
    """Update ``index_path`` in place for ``base_dir``; an unchanged folder rewrites nothing,
    unless it is not the folder the index names (the images moved): then only that changes.
    A folder holding none of the indexed images (a mistyped folder would otherwise replace
    the whole index) is refused unless ``replace``; one that would remove most of them (a
    wrong folder, an old backup, a copy still in progress) unless ``prune`` (by default,
    as ``replace``). ``progress`` hears of the new and changed files analysed, as an
    analysis's does. ``own_folder``: the index must be of ``base_dir`` already (a watch's
    later passes), or Rewritten is raised."""
    index_path, base_dir = Path(index_path), Path(base_dir)
    require_folder(base_dir)
    store.check_storable_folder(base_dir)
    prune = replace if prune is None else prune
    with atomic.writer_lock(index_path):
        return _update(
            index_path, base_dir, extractor, batch, warn, cancel, replace, prune, progress,
            own_folder,
        )  # fmt: skip


def _update(
    index_path, base_dir, extractor, batch, warn, cancel, replace, prune, progress, own_folder
) -> UpdateReport:
    start = time.monotonic()
    # its stored features are checked (in the probe's child) but not read here: merge
    # copies the kept rows from the file a block at a time
    old = store.load(index_path, check_features=True)
    check_folder(index_path)
    stored = index_path if store.has_features(index_path) else None
    store.check_rows(old, extractor.info, str(index_path), OTHER_FILE)
    # the index's folder written otherwise (another letter case on FAT or exFAT, a bind
    # mount) is that folder: it was said moved there, and that name stored
    if _same_folder(old.base_dir, base_dir):
        base_dir = Path(old.base_dir)
    rows = {p: i for i, p in enumerate(old.paths)}
    found = scan(base_dir, warn, Exclusions.of(old.exclude))  # (as analysed: kept)
    todo = [
        p
        for p in found.paths
        if p not in rows
        or not single._unchanged(base_dir / p, old.sizes[rows[p]], old.mtimes[rows[p]])
    ]
    seen = set(found.paths)
    hidden = [p for p in old.paths if p not in seen and found.hides(p)] if found.unread else []
    if hidden and warn:  # unreadable for now (permissions, a share's outage): not deleted
        warn(kept_unread(base_dir, len(hidden)))
    present = seen | set(hidden)
    gone = [p for p in old.paths if p not in present]
    # files moved within the folder keep their rows (moved_rows), under their new paths
    relocated = moved_rows(old, gone, [p for p in todo if p not in rows], base_dir)
    todo = [p for p in todo if p not in relocated]
    rows.update(relocated)
    moved = old.base_dir != str(base_dir.resolve())
    if moved and own_folder:
        raise Rewritten(
            f"{index_path}: now an index of {old.base_dir} (written since by another "
            f"command), not of {base_dir}: no longer followed"
        )
    if rows and seen and not replace:
        _check_same_images(index_path, base_dir, old, rows, seen, moved)
    report = UpdateReport(old, skipped=list(found.skipped))
    report.excluded = (found.excluded_folders, found.excluded)
    report.outside, report.links = found.outside, found.links
    moved_away = {old.paths[i] for i in relocated.values()}
    report.removed = [p for p in gone if p not in moved_away]
    report.relocated = sorted(relocated)
    report.moves = {p: old.paths[i] for p, i in relocated.items()}
    if not prune and seen:  # (an emptied folder: "no images left", below)
        single.refuse_removing_most(index_path, base_dir, old.count, report.removed, "updating")
    if todo or report.removed or report.relocated or moved:
        atomic.check_writable(index_path)  # before the work, not after it
        atomic.check_room_for_siblings(index_path)
    fresh, used = _extract(
        index_path, base_dir, old, todo, extractor, batch, report, warn, cancel, relocated,
        present, progress,
    )  # fmt: skip
    report.added = [p for p in todo if p in fresh.stats and p not in rows]
    report.changed = [p for p in todo if p in fresh.stats and p in rows]
    # an indexed file that changed and no longer decodes is dropped, as analyze drops it
    failed = [p for p in todo if p in rows and p not in fresh.stats]
    report.removed += failed
    report.unreadable = len(failed)  # (said apart: they were not deleted)
    if report.modified:
        keep = present.difference(todo)  # changed files that failed to decode are dropped
        if not keep and not fresh.features:  # an index is never empty (loading refuses it)
            raise RtsearchError(
                f"{base_dir}: no images left to index; {index_path} still lists its "
                f"{count(old.count, 'image')}: delete it, or add images to the folder"
            )
        assert old.projection is not None  # (a loaded index, never a checkpoint)
        report.index = merge(old, rows, fresh, keep, base_dir, stored)
        same_pictures(report, old, rows, fresh.stats)
        # counted over every update since the fit (--watch adds a few rows at a time), those
        # removed since taken off; the same pictures analysed again are not new
        new = set(report.added) | set(report.changed)
        index = report.index
        index.unfitted, index.unfitted_mask = single.unfitted_after(old, index.paths, rows, new)
        store.save(report.index, index_path)
        report.refit_advised = single.stale_pca(report.index)
    elif moved:  # the same rows (and features, when stored), naming the new folder
        report.index = merge(old, rows, fresh, present, base_dir, stored)
        index = report.index
        index.unfitted, index.unfitted_mask = single.unfitted_after(old, index.paths, rows, set())
        store.save(report.index, index_path)
    if report.index.base_dir != old.base_dir:
        report.moved_from = old.base_dir
    _drop_parts(checkpoint_dir(index_path), used)
    report.seconds = time.monotonic() - start
    return report


def same_pictures(report: UpdateReport, old: Index, rows: dict[str, int], stats) -> None:
    """Of the files analysed again, those that are the pictures indexed before (a folder
    copied: every file time new; `touch`): a changed file whose vector is its old one is
    ``touched``; a new file whose size and vector are a removed file's moved
    (``relocated``). Analysed all the same (their file times are all there is to tell), but
    not counted as changed, nor as new rows the PCA was not fitted on: a copied folder was
    "206 changed, 34 added, 34 removed", and a refit was advised."""
    index = report.index
    at = {p: i for i, p in enumerate(index.paths)}

    def same(p: str, row: int) -> bool:
        return single.same_vector(index.projected[at[p]], old.projected[row])

    touched = {p for p in report.changed if same(p, rows[p])}
    report.touched = [p for p in report.changed if p in touched]
    report.changed = [p for p in report.changed if p not in touched]
    moved = _moved(report, old, rows, stats, at)  # new path: the removed file's path it is
    if moved:  # (set lookups: a renamed folder of many files, each removed from a list)
        was = set(moved.values())
        report.added = [p for p in report.added if p not in moved]
        report.removed = [q for q in report.removed if q not in was]
        report.relocated = sorted([*report.relocated, *moved])
        report.moves.update(moved)


def _moved(report: UpdateReport, old: Index, rows, stats, at) -> dict[str, str]:
    """Of the files added, those that are a removed file moved (its size, its vector):
    each new path with the removed path it is, a removed file matched once. The removed
    files of a size are searched by one k-d tree: a folder of same-size BMPs (a camera's,
    a scanner's) renamed is not every new file compared with every removed one."""
    by_size: dict[int, list[str]] = {}  # removed files by size: a moved file keeps it
    for q in report.removed:
        by_size.setdefault(int(old.sizes[rows[q]]), []).append(q)
    wanted: dict[int, list[str]] = {}
    for p in report.added:
        if int(stats[p][0]) in by_size:
            wanted.setdefault(int(stats[p][0]), []).append(p)
    moved: dict[str, str] = {}
    for size, news in wanted.items():
        twins = by_size[size]
        was = old.projected[[rows[q] for q in twins]].astype(np.float64)
        now = report.index.projected[[at[p] for p in news]].astype(np.float64)
        # same_vector's bound is relative to the old vector's length: the longest bounds all
        reach = single.SAME * max(float(np.linalg.norm(was, axis=1).max()), 1e-12)
        near = cKDTree(was).query_ball_point(now, r=reach)
        taken: set[int] = set()
        for p, b, cands in zip(news, now, near, strict=True):
            j = next(
                (j for j in sorted(cands) if j not in taken and single.same_vector(b, was[j])),
                None,
            )
            if j is not None:
                taken.add(j)
                moved[p] = twins[j]
    return moved


def _extract(
    index_path, base_dir, old, todo, extractor, batch, report, warn, cancel, moved, present,
    progress,
):  # fmt: skip
    """Features for ``todo``, resuming from the checkpoints of an interrupted update, and
    the parts it used up or wrote (removed once the index is saved). Parts of another run
    (an analysis of another folder to this index, or an unfinished re-analysis of this
    one: rows of files this update does not analyse) are left for that run: update
    deleted them, and their work, whatever it took. Rows of files ``moved`` within the
    folder (kept from the index), and of files no longer ``present``, count as this
    update's: no run can use them (a part whose files were deleted stayed for good)."""
    fresh, used = single._Done(), []
    folder = checkpoint_dir(index_path)
    wanted = set(todo)
    ours = wanted.union(moved)
    here = str(base_dir.resolve())
    for path, ck in checkpoint_files(folder, old.model, warn):
        # another folder's is left; one of a version that stored the folder as given
        # (relative to where that run started: "U") is taken for its files unchanged here
        # (all 108 rows of an interrupted update were analysed again, the part left for good)
        given = Path(ck.base_dir)
        if ck.base_dir and given.is_absolute() and str(given.resolve()) != here:
            continue
        had = len(fresh)
        single._take(fresh, ck, base_dir, wanted, lambda p: False, use_features=True)
        if ck.base_dir and not given.is_absolute() and len(fresh) == had:
            continue  # none of its files here: another folder's, left for that run
        if all(p in ours or p not in present for p in ck.paths):
            used.append(path)
    todo = [p for p in todo if p not in fresh]
    writer = CheckpointWriter(folder, old.model, base_dir, None, warn)
    writer.held = len(fresh)
    run, began = Report(), time.monotonic()

    def said() -> None:
        if progress:
            progress(Progress.of(run, began, len(todo)))

    single.extract_into(fresh, writer, base_dir, todo, extractor, batch, run, warn, cancel, said)
    used.extend(writer.written)
    if run.cancelled:
        raise KeyboardInterrupt
    report.skipped.extend(run.skipped)
    return fresh, used


def _drop_parts(folder: Path, parts: list[Path]) -> None:
    """Remove ``parts``, and the folder once it holds no other."""
    for part in parts:
        part.unlink(missing_ok=True)
    if not any(folder.glob("part-*.dat")):  # (the settings of the run that wrote them too)
        (folder / SETTINGS).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()  # only when empty: another run's parts stay


def _same_folder(stored: str, given: Path) -> bool:
    """Whether ``given`` is the folder the index names as ``stored``, written otherwise."""
    try:
        return bool(stored) and os.path.samefile(stored, given)
    except OSError:  # (the one stored gone: moved)
        return False


def _check_same_images(index_path, base_dir, old, rows, seen, moved) -> None:
    """Refuse a folder that is not the indexed one: it shares no names with the index, or,
    given in place of the folder the index was made of, no file whose name and size match
    (another camera's IMG_0001.JPG shares a name, not its size; a copy keeps the sizes)."""
    shared = seen.intersection(rows)
    if shared and not moved:
        return
    if any(file_size(base_dir / p) == int(old.sizes[rows[p]]) for p in shared):
        return  # (stops at the first: a moved folder matches at once)
    why = (
        f"{count(len(shared), 'file')} share their names, not their sizes: another folder?"
        if shared
        else "another folder?"
    )
    raise RtsearchError(
        f"{base_dir}: holds none of the {count(old.count, 'image')} in {index_path} ({why}); "
        "pass --replace to index it in their place"
    )


def merge(
    old: Index, rows: dict[str, int], fresh, keep: set[str], base_dir: Path, stored: Path | None
) -> Index:
    """Old rows in ``keep`` (present, unchanged), plus fresh rows through the old projection;
    with the features too when ``stored`` (the index file) has them, its kept rows copied
    from it (store.copy_features)."""
    projection = old.projection
    assert projection is not None and old.projected is not None
    paths = sorted({p for p in rows if p in keep} | set(fresh.features))  # (never empty)
    fresh_paths = [p for p in paths if p in fresh.features]
    feats = (
        np.stack([fresh.features[p] for p in fresh_paths]).astype(np.float32, copy=False)
        if fresh_paths
        else None
    )
    new_vec = dict(zip(fresh_paths, projection(feats), strict=True)) if feats is not None else {}
    new_feat = dict(zip(fresh_paths, feats, strict=True)) if feats is not None else {}

    def pick(p, fresh_value, old_array):
        return fresh_value[p] if p in fresh_value else old_array[rows[p]]

    stats = [
        fresh.stats[p] if p in fresh.stats else (old.sizes[rows[p]], old.mtimes[rows[p]])
        for p in paths
    ]
    return Index(
        paths=paths,
        model=old.model,
        sizes=np.array([s for s, _ in stats], np.int64),
        mtimes=np.array([m for _, m in stats], np.float64),
        projected=np.stack([pick(p, new_vec, old.projected) for p in paths]).astype(
            np.float32, copy=False
        ),
        projection=projection,
        features=_merged_features(paths, rows, new_feat, old, stored),
        base_dir=str(base_dir.resolve()),
        created=old.created,  # when it was made; an update is not a new index
        exclude=old.exclude,
    )


def _merged_features(paths, rows, new_feat, old: Index, stored: Path | None):
    if stored is None:
        return None
    out = np.empty((len(paths), old.model.feature_dims), np.float32)
    kept = []  # (row in the file, row here) of the rows copied from the file
    for j, p in enumerate(paths):
        if p in new_feat:
            out[j] = new_feat[p]
        else:
            kept.append((rows[p], j))
    if kept:
        source, to = zip(*kept, strict=True)
        store.copy_features(stored, np.array(source), out, np.array(to))
    return out


# ---------------------------------------------------------------- following a folder

# Pillow's words for a file cut short, whose count grows while a download goes on
_STILL_WRITTEN = re.compile(r" \(\d+ bytes not processed\)")


def follow(
    index_path: Path,
    base_dir: Path,
    extractor: Extractor,
    *,
    stop: threading.Event,
    interval: float = 2.0,
    batch: int = 0,
    warn: Warn | None = None,
    prune: bool = False,
    say_waiting: Warn | None = None,
    progress: Callable[[Progress], None] | None = None,
    replace: bool = False,
) -> Iterator[UpdateReport]:
    """Yield an UpdateReport (``.index`` is the new Index) each time an update changed the
    index, until ``stop`` is set. The first pass runs at once. With watchdog installed a pass
    runs ``interval`` s after the last filesystem event (a copy in progress settles first);
    without it the folder is re-scanned every ``interval`` s (stat calls only). A pass that
    would remove most of the index waits for the folder to change, unless ``prune``. Why it
    waits goes to ``say_waiting`` (default: ``warn``); how far a pass analysing new files
    has got, to ``progress``. The first pass refuses a folder that holds none of the
    indexed images, unless ``replace`` (as `update` does); later passes take any change of
    the folder, which the index is of by then, and end (Rewritten) once the index is
    written over as another folder's."""
    say_waiting = say_waiting or warn
    events = _watch(require_folder(Path(base_dir)))
    said: set[str] = set()

    def warn_once(message: str) -> None:  # a bad file is not reported again on every pass
        # (nor a file still being written, whose "N bytes not processed" grows each pass)
        key = _STILL_WRITTEN.sub("", message)
        if warn and key not in said:
            said.add(key)
            warn(message)

    first, outage, busy = True, False, False  # outage: the passes since the last good one failed
    last_problem = said_problem = ""  # the last failed pass's problem, and the last one warned
    try:
        while not stop.is_set():
            if events is not None:
                events.clear()
            try:
                report = update(  # after the first pass, the folder followed is the index's
                    index_path, base_dir, extractor, batch=batch, warn=warn_once, cancel=stop,
                    replace=replace or not first, prune=prune, progress=progress,
                    own_folder=not first,
                )  # fmt: skip
            except KeyboardInterrupt:
                if stop.is_set():
                    return  # cancelled by the caller mid-update; the checkpoint keeps the work
                raise
            except atomic.IndexBusy as exc:  # a one-off analyze or update: wait for it
                if say_waiting and not busy:  # once while it runs, not every interval
                    say_waiting(f"{exc}; trying again every {interval:g} s")
                busy = True
                stop.wait(interval)
                continue
            except RtsearchError as exc:
                if first or isinstance(exc, Rewritten):
                    raise  # a problem from the start (another model, ...) is not transient
                # the folder emptied or gone for a moment (a sync tool, a move): keep following
                # one warning an outage, and one more for a problem that then stays (two
                # passes running): a pass that races a move can fail twice, differently
                problem = str(exc)
                if say_waiting and (not outage or problem == last_problem != said_problem):
                    gone = not Path(index_path).exists()  # deleted: analyze makes it again
                    if gone:
                        until = "waiting for it to be made again"
                    elif isinstance(exc, store.NoRoom):  # the disk, not the folder
                        until = f"trying again every {interval:g} s"
                    else:
                        until = "waiting for the folder to change"
                    say_waiting(f"{exc}; {until}")
                    said_problem = problem
                outage, last_problem = True, problem
                if events is not None:  # a deleted folder's watch is gone: poll till it is back
                    events.close()
                    events = None
                stop.wait(interval)
                continue
            if outage and events is None:
                events = _watch(Path(base_dir))
            if events is not None:  # (folders linked from outside it: watched too)
                events.watch_also(report.outside, report.links)
            first, outage, busy = False, False, False
            last_problem = said_problem = ""
            if report.modified:
                yield report
            written = _signature(index_path)  # (another command writing it: a pass at once)
            _wait_for_change(events, stop, interval, Path(base_dir), (Path(index_path), written))
    finally:
        if events is not None:
            events.close()


class Rewritten(RtsearchError):
    """The index followed was written over as an index of another folder."""


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def _wait_for_change(
    events: _Events | None,
    stop: threading.Event,
    interval: float,
    folder: Path,
    index: tuple[Path, tuple[int, int, int] | None],
) -> None:
    """Until the folder changes (settled, with watchdog), or the index is written by
    another command (``index``: its path, and its signature as the last pass left it; a
    watch of an index written over as another folder's went on in silence until the folder
    next changed)."""
    if events is None:
        stop.wait(interval)
        return
    # a folder moved or deleted sends its own watch no event: look for it too
    while not stop.is_set() and not events.wait(0.2) and folder.is_dir():
        if _signature(index[0]) != index[1]:
            return
    # debounce bursts (a copy in progress), but not for ever: a camera's import writing for
    # minutes delays its first pictures by at most SETTLE_AT_MOST
    cap = time.monotonic() + max(SETTLE_AT_MOST, 10 * interval)
    while not stop.is_set() and events.quiet_for() < interval and time.monotonic() < cap:
        stop.wait(0.2)


class _Events:
    """Filesystem events from watchdog that may change the index (folders, and files named
    as pictures outside hidden folders), reduced to 'something changed, last at t'."""

    def __init__(self, observer, base_dir: Path) -> None:
        self.observer = observer
        self.base = os.path.abspath(base_dir)
        self.flag = threading.Event()
        self.last = time.monotonic()
        self.also: dict[str, object] = {}  # folders linked from outside the base: watches
        self.links: frozenset[str] = frozenset()  # the links to folders in it (absolute)

    def watch_also(self, folders: list[str], links: list[str]) -> None:
        """Watch ``folders`` too (folders outside the base that links in it lead to: the
        base's watch does not follow links, and pictures added there waited for a change
        in the base), and no longer those watched before and not among them. ``links``:
        the links to folders the last pass met, whose removal is a change."""
        self.links = frozenset(links)
        for folder in [f for f in self.also if f not in folders]:
            with contextlib.suppress(KeyError, OSError):  # (its watch gone with it)
                self.observer.unschedule(self.also.pop(folder))
        for folder in folders:
            if folder not in self.also:
                with contextlib.suppress(OSError):  # gone since the scan: the next pass's
                    self.also[folder] = self.observer.schedule(self, folder, recursive=True)

    def on_any_event(self, event) -> None:  # called on watchdog's thread
        if event.event_type in ("opened", "closed_no_write"):
            return  # reads, e.g. by the update itself, change nothing
        if not self._matters(event):
            return  # a log written every second held every pass back while it was
        self.last = time.monotonic()
        self.flag.set()

    def _matters(self, event) -> bool:
        if event.is_directory:  # a folder's own "modified" comes with its files' events
            return event.event_type != "modified"
        # (absolute: a folder followed as given relative gives its events so)
        paths = [
            os.path.abspath(os.fsdecode(p))
            for p in (event.src_path, getattr(event, "dest_path", ""))
            if p
        ]
        # a link made, pointed elsewhere (ln -sfn) or removed: the folder it leads to comes
        # or goes (named as no picture is, it waited for another change)
        links = any(os.path.islink(p) or p in self.links for p in paths)
        return links or any(self._picture(path) for path in paths)

    def _picture(self, path: str) -> bool:
        outside = next((f for f in tuple(self.also) if path.startswith(f + os.sep)), None)
        rel = os.path.relpath(path, outside or self.base)
        parts = rel.split(os.sep)
        if any(part.startswith(".") for part in parts if part not in (".", "..")):
            return False  # hidden, passed over by the scan (a download's .part file too)
        return is_image_file(Path(parts[-1]))

    def dispatch(self, event) -> None:
        self.on_any_event(event)

    def clear(self) -> None:
        self.flag.clear()

    def wait(self, timeout: float) -> bool:
        return self.flag.wait(timeout)

    def quiet_for(self) -> float:
        return time.monotonic() - self.last

    def close(self) -> None:
        self.observer.stop()
        self.observer.join(timeout=5)


def _watch(base_dir: Path) -> _Events | None:
    try:
        from watchdog.observers import Observer
    except ImportError:
        return None  # polling fallback
    observer = Observer()
    events = _Events(observer, base_dir)
    try:
        observer.schedule(events, str(base_dir), recursive=True)
        observer.start()
    except OSError:  # gone again since it was checked (a move, a sync tool): poll meanwhile
        return None  # (an observer that did not start has no thread to stop)
    return events


# ---------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rtsearch.argtypes import non_negative_int, thread_count
    from rtsearch.cli import add_model_argument

    parser.add_argument("index", type=Path, help="index file to update (.dat)")
    parser.add_argument(
        "directory",
        type=Path,
        nargs="?",
        help="the folder the index describes (what its analyze --exclude patterns name stays "
        "out; `rtsearch info` lists them); default: the folder the index names, or where it "
        "is gone, the one the viewer showed its images from",
    )
    add_model_argument(parser, default=None, help_default="the index's model")
    parser.add_argument(
        "--batch", type=non_negative_int, default=0, help="images per batch (0: as analyze picks)"
    )
    parser.add_argument(
        "--threads", type=thread_count, default=0, help="inference threads (0: all cores)"
    )
    parser.add_argument(
        "--watch", action="store_true", help="keep following the folder until interrupted"
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="index the folder even if it holds none of the indexed images, or an update "
        "would remove more than half of them (and 10 or more)",
    )
    parser.add_argument(
        "--interval",
        type=seconds,
        default=None,
        help="--watch: seconds of quiet before updating (more than 0, at most a day; default 2)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="print nothing when nothing changed (files that cannot be read included)",
    )


def seconds(text: str) -> float:
    value = number(text)
    if not 0 < value <= 86400:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 86400, got {text}")
    return value


def rows_model(index: Index, index_path: Path, loaded: Path | None = None) -> Path:
    """The model file that rows added to ``index`` come from: the file that made its rows
    (for an index that does not say which, either twin, fp32 first). ``loaded`` (the
    viewer's, found by any name or path) is taken when it is that file."""
    from rtsearch.models import find_model_for, read_model_info

    m = index.model
    if loaded is not None:
        info = read_model_info(loaded)
        if info.identity == m.identity and info.variant == (m.variant or "fp32"):
            return loaded
    try:
        return find_model_for(
            m.name, m.feature_layer, m.identity, index=index_path, variant=m.variant, hint=m.file
        )
    except RtsearchError:
        if loaded is not None and not m.variant:
            return loaded  # an index that does not say: the file there is
        raise


def folder_of_index(index_path: Path, index: Index) -> Path:
    """The folder `update INDEX` brings the index up to date with when none is given: the
    one it names; where that is gone, the one the viewer showed its images from (chosen
    there), else the one they moved to with the index file, said; else none, and the way
    out is said."""
    from rtsearch.cli import print_line
    from rtsearch.session import moved_with_index
    from rtsearch.viewer.memory import found_in

    named = index.base_dir
    if named and Path(named).is_dir():
        return Path(named)
    found, where = found_in(index_path, named), "the viewer showed them from"
    if found is None:
        found, where = moved_with_index(index, index_path), "they moved with the index to"
    if found is None:
        raise RtsearchError(
            f"{index_path}: the images' folder {named or '(unknown)'} is gone; give the folder "
            f"they are in now: {command('rtsearch', 'update', index_path, 'FOLDER')}"
        )
    print_line(f"note: the images' folder {named} is gone; {where} {found}")
    return found


def open_extractor(
    index_path: Path, model: str | None, threads: int, index: Index | None = None
) -> Extractor:
    """The extractor an update of ``index_path`` (``index``, when read already) runs."""
    from rtsearch.models import resolve_model

    if model:
        chosen = resolve_model(model)
    else:
        chosen = rows_model(index or store.load(index_path), index_path)
    return Extractor(chosen, threads=threads, streams=0)


# what to do when --model names the other file of the index's weights (store.check_rows)
OTHER_FILE = "leave out --model to update it with that file"


def run(args: argparse.Namespace) -> int:
    from rtsearch.cli import ProgressBar, print_line

    if args.interval is not None and not args.watch:
        raise RtsearchError("--interval applies to --watch only")
    # (read once for both where wanted: each read probes the file in a child process)
    index = store.load(args.index) if args.directory is None or not args.model else None
    if index is not None and args.directory is None:
        args.directory = folder_of_index(args.index, index)
    extractor = open_extractor(args.index, args.model, args.threads, index)
    # in a terminal, the new files' analysis redraws a bar as analyze's does; in a log or a
    # pipe it says nothing more than the summary (cron's mail, a watch's log)
    bar = ProgressBar() if sys.stderr.isatty() else None
    warn = lambda m: print_line(f"warning: {m}", bar)  # noqa: E731
    if not args.watch:
        # quiet: the files that cannot be read are said only with a change (they were
        # warned about on every run, as each run tries them again)
        held: list[str] = []
        try:
            report = update(
                args.index, args.directory, extractor, batch=args.batch,
                warn=held.append if args.quiet else warn, replace=args.replace, progress=bar,
            )  # fmt: skip
        finally:  # (an interruption is said on a line of its own)
            if bar:
                bar.close()
        if report.modified:
            for message in held:
                warn(message)
        _print(report, args.index, args.directory, extractor.path, args.quiet)
        return 0
    stop = threading.Event()
    require_folder(args.directory)  # before saying it is followed
    atomic.check_writable(args.index)  # (a read-only folder: before the watcher starts)
    if args.model:  # a file that may not add rows to it: said before it is followed
        store.check_rows(store.load(args.index), extractor.info, str(args.index), OTHER_FILE)
    print(printable(f"following {args.directory} (Ctrl-C to stop)"), flush=True)
    advised = False  # the refit advice is said once, not on every pass after the threshold
    held: list[str] = []  # --quiet: files that cannot be read, said only with a change
    try:
        for report in follow(
            args.index,
            args.directory,
            extractor,
            stop=stop,
            interval=2.0 if args.interval is None else args.interval,
            batch=args.batch,
            warn=held.append if args.quiet else warn,
            prune=args.replace,
            say_waiting=warn,
            progress=bar,
            replace=args.replace,
        ):
            if bar:
                bar.close()
            for message in held:
                warn(message)
            held.clear()
            _print(
                report, args.index, args.directory, extractor.path, quiet=False,
                advise=not advised,
            )  # fmt: skip
            advised = advised or report.refit_advised
    except KeyboardInterrupt as exc:
        stop.set()
        if bar:
            bar.close()
        # a pass cut short keeps its finished rows as a checkpoint for the next run, and
        # says so (a kill's message says it, as the command's ending)
        if isinstance(exc, Terminated):  # Ctrl-C is how a watch ends; a kill is not
            print(printable(f"stopped following {args.directory}"), flush=True)
            raise
        kept = f"; {exc.args[0]}" if exc.args else ""
        print(printable(f"stopped following {args.directory}{kept}"), flush=True)
    return 0


def _print(
    report: UpdateReport,
    where: Path,
    folder: Path,
    model: Path,
    quiet: bool,
    advise: bool = True,
) -> None:
    """The summary of a pass, and the refit advice where it is due (``refit_advice``)."""
    if report.modified or not quiet:
        print(report.summary(where), flush=True)
    if report.refit_advised and advise:
        print(f"{where}: {refit_advice(where, folder, model)}", flush=True)


def refit_advice(where: Path, folder: Path, model: Path) -> str:
    """Why a refit of the index at ``where`` is advisable, and the command that does it
    (naming ``model``, the file its rows came from, when analyze's default would not
    find it)."""
    from rtsearch.models import model_option

    how = (
        "it refits from the stored features"
        if store.has_features(where)
        else "it analyses every image again and refits, keeping the features, so that the "
        "next refit needs no analysis"
    )
    options = [*model_option(model), "--pca", "--keep-features"]
    refit = command("rtsearch", "analyze", folder, "-o", where, *options)
    return (
        f"over {REFIT_FRACTION:.0%} of the rows are new since the PCA was fitted; a refit is "
        f"advisable: {refit} ({how})"
    )
