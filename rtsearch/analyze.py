"""Analyze a directory into an index: scan -> decode (thread pool) -> extract -> project.

Long runs write features-only checkpoints (``INDEX.dat.ckpt/part-NNNNNN.dat``, each atomic)
so a crash loses at most one checkpoint interval; a rerun resumes from them, and a rerun
over an existing index analyses only new or changed files.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import h5py
import numpy as np

from rtsearch import atomic, interrupts, store
from rtsearch import projection as proj
from rtsearch.checkpoints import (
    CheckpointWriter,
    OtherModel,
    check_folder,
    checkpoint_dir,
    checkpoint_on_interrupt,
    checkpoint_parts,
)
from rtsearch.checkpoints import made_with as checkpoint_settings
from rtsearch.errors import RtsearchError, Warn, command, count, require_folder
from rtsearch.exclusions import Exclusions, quoted
from rtsearch.extraction import extract
from rtsearch.extractor import Extractor
from rtsearch.moves import moved_rows, same_stat
from rtsearch.scan import file_size, kept_unread, raw_files, scan, under_copies
from rtsearch.store import Index, ModelRef

BLOCK_ROWS = 16384  # feature rows per storage block while analysing
# a PCA fitted before more than this fraction of an index's rows were added is advised a
# refit (update, analyze): it was fitted to the old rows only
REFIT_FRACTION = 0.2


@dataclass(frozen=True)
class Options:
    """The caller's names for the options analyze's refusals advise: `demo` takes --index
    and --rebuild where `analyze` takes -o and --replace."""

    out: str = "-o"
    replace: str = "--replace"


@dataclass(frozen=True)
class Settings:
    dims: int = proj.DEFAULT_DIMS
    projection: str = proj.DEFAULT_KIND
    l2_normalize: bool = True
    seed: int = proj.DEFAULT_SEED
    batch: int = 0  # images per inference batch; 0: batch_for(extractor)
    checkpoint_every: int | None = None  # images; None: every DEFAULT_CHECKPOINT_SECONDS
    keep_features: bool = False
    # an index already at the output, of another folder and holding none of this folder's
    # images, is replaced; without it that is refused (a mistyped -o would lose it)
    replace: bool = False
    # rows of an index already at the output (and of its checkpoints) are analysed again,
    # not reused; the old index stays until the new one replaces it
    fresh: bool = False
    options: Options = Options()
    # the user's patterns of files and folders to leave out (rtsearch.exclusions), stored
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    skipped: int
    images_per_s: float
    # images of the folder analysed before this run (an index's rows kept, checkpoints of
    # an interrupted run): not in done and total, which count this run's work
    before: int = 0

    @property
    def eta_s(self) -> float:
        left = self.total - self.done
        return left / self.images_per_s if self.images_per_s > 0 else float("inf")

    @classmethod
    def since(
        cls, began: float, done: int, total: int, skipped: int, made: int, before: int = 0
    ) -> Progress:
        """``done`` of ``total`` (``skipped`` among them), at the rate ``made`` images were
        made since ``began``, the work's own start (the scan and the checkpoints read
        before it made the first ETA of a resumed run 2.5 hours for 84 s): said once a
        second of it has passed, or at the end."""
        elapsed = time.monotonic() - began
        said = elapsed >= 1.0 or done >= total
        return cls(done, total, skipped, made / max(elapsed, 1e-9) if said else 0.0, before)

    @classmethod
    def of(cls, report: Report, began: float, total: int, before: int = 0) -> Progress:
        """An extraction's progress as ``report`` counts it: the images analysed and the
        files skipped of ``total`` (analyze and update alike)."""
        skipped = len(report.skipped)
        return cls.since(began, report.analysed + skipped, total, skipped, report.analysed, before)


@dataclass
class Report:
    index: Index | None = None
    analysed: int = 0  # newly extracted this run
    reused: int = 0  # taken from the old index or checkpoints
    removed: int = 0  # rows of the old index whose files are gone (not moved)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    cancelled: bool = False
    seconds: float = 0.0
    excluded: tuple[int, int] = (0, 0)  # folders and files the user's patterns left out


@dataclass
class _Done:
    """Entries already in hand, keyed by relative path: feature rows, or (when an old index
    kept no features) the row number of its already-projected vector."""

    features: dict[str, np.ndarray] = field(default_factory=dict)
    old_rows: dict[str, int] = field(default_factory=dict)
    stats: dict[str, tuple[int, float]] = field(default_factory=dict)
    moved_from: set[str] = field(default_factory=set)  # old paths whose files moved
    from_checkpoints: int = 0  # rows taken from the checkpoints of a run before
    from_index: int = 0  # rows taken from the index at the output
    # rows taken from a file that does not say which model file made them (written before
    # the variant was recorded): the new index does not say either
    unrecorded: bool = False
    _block: np.ndarray | None = field(default=None, repr=False)
    _used: int = 0

    def add(self, paths, feats, sizes, mtimes) -> list[np.ndarray]:
        """Record a batch; returns the kept rows (views of the blocks) in ``paths`` order."""
        rows = []
        for p, f, s, m in zip(paths, feats, sizes, mtimes, strict=True):
            rows.append(row := self._keep(f))
            self.features[p] = row
            self.stats[p] = (int(s), float(m))
        return rows

    def _keep(self, row: np.ndarray) -> np.ndarray:
        """``row`` copied into the current block of BLOCK_ROWS rows. Rows live in large
        blocks rather than in their small extraction batches so that ``take_features`` frees
        memory as it goes: a freed block goes back to the system, while the C heap kept
        freed 20 KB batches (the final step's peak above the features at 200k x 1280: 1.18
        GB with batches, 0.25 GB with blocks)."""
        block = self._block
        if block is None or self._used == len(block) or block.shape[1:] != row.shape:
            block = self._block = np.empty((BLOCK_ROWS, *row.shape), np.float32)
            self._used = 0
        block[self._used] = row
        self._used += 1
        return block[self._used - 1]

    def take_features(self, paths: list[str]) -> np.ndarray:
        """(len(paths), D) float32 rows in ``paths`` order, moved out of this record: each
        block is freed once its last row is copied, so the rows are not held twice (at 1M
        x 1280 that is 5 GB) when ``paths`` come in extraction order, as a fresh analysis's
        sorted paths do. ``paths`` must not be empty."""
        self._block = None
        out = np.empty((len(paths), *self.features[paths[0]].shape), np.float32)
        for i, p in enumerate(paths):
            out[i] = self.features.pop(p)
        return out

    def __contains__(self, path: str) -> bool:
        return path in self.stats

    def __len__(self) -> int:
        return len(self.stats)


# a run removing more than this fraction of an index, and at least PRUNE_MIN images, asks
# for --replace: a wrong folder or an old backup would otherwise empty it in silence
PRUNE_FRACTION = 0.5
PRUNE_MIN = 10


def analyze(
    base_dir: Path,
    out: Path,
    extractor: Extractor,
    settings: Settings = Settings(),
    *,
    progress: Callable[[Progress], None] | None = None,
    warn: Warn | None = None,
    cancel: threading.Event | None = None,
) -> Report:
    """Analyze ``base_dir`` into ``out``; see the module docstring for resumption."""
    base_dir, out = Path(base_dir), Path(out)
    require_folder(base_dir)
    store.check_storable_folder(base_dir)
    try:
        atomic.check_writable(out)  # fail before the work, not after it
        atomic.check_room_for_siblings(out)
    except RtsearchError:
        # an index there that this run leaves as it is needs no writing (the demo's, in a
        # read-only data folder, was refused: `update` already said "up to date")
        report = _as_it_is(base_dir, out, extractor, settings, warn)
        if report is None:
            raise
        return report
    with atomic.writer_lock(out):
        return _analyze(base_dir, out, extractor, settings, progress, warn, cancel)


def _as_it_is(base_dir, out, extractor, settings, warn) -> Report | None:
    """The report of a run with nothing to do on the index at ``out`` (None: something to
    do, or no index there): nothing to analyse, remove or fold in, the same settings."""
    if settings.fresh or not out.is_file():
        return None
    start = time.monotonic()
    try:
        made_by = ModelRef.of(extractor.info, extractor.path)
        report, done, old, todo = plan(base_dir, out, made_by, settings, warn)
    except RtsearchError:  # its refusals are for a run that could write
        return None
    if todo or not _as_it_was(
        old, sorted(done.stats), report, settings, base_dir, checkpoint_dir(out)
    ):
        return None
    report.index = old
    report.seconds = time.monotonic() - start
    _say_if_stale(out, old, warn)  # (as where it could be written)
    return report


def _analyze(base_dir, out, extractor, settings, progress, warn, cancel) -> Report:
    start = time.monotonic()
    if settings.projection != "none":
        proj.check_dims(settings.dims, extractor.info.dims)
    model = ModelRef.of(extractor.info, extractor.path)
    report, done, old, todo = plan(base_dir, out, model, settings, warn)
    unreadable = len(report.skipped)  # found so at the scan
    asked = {
        "projection": settings.projection,
        "dims": settings.dims,
        "l2_normalize": settings.l2_normalize,
        "seed": settings.seed,
        "features": settings.keep_features,
        "exclude": list(settings.exclude),
        "rebuild": settings.fresh,  # its own parts are taken by a rerun of it, no others
    }  # (kept with the checkpoints: the same command without them resumes with them)
    every = settings.checkpoint_every
    writer = CheckpointWriter(checkpoint_dir(out), model, base_dir, every, warn, asked)
    writer.held = done.from_checkpoints
    if settings.fresh:  # (demo --rebuild: the index stays as it was until it is done)
        writer.resume = (
            "the same command goes on from there (without --rebuild, the index stays as it was)"
        )

    def said() -> None:
        if progress:
            progress(Progress.of(report, began, len(todo) + unreadable, report.reused))

    began = time.monotonic()
    extract_into(
        done, writer, base_dir, todo, extractor, settings.batch, report, warn, cancel, said
    )
    if report.cancelled:
        report.seconds = time.monotonic() - start
        return report
    finish(base_dir, out, model, settings, report, done, old, warn)
    report.seconds = time.monotonic() - start
    return report


def extract_into(
    done: _Done,
    writer: CheckpointWriter,
    base_dir: Path,
    todo: list[str],
    extractor: Extractor,
    batch: int,
    report: Report,
    warn: Warn | None,
    cancel: threading.Event | None,
    after_batch: Callable[[], None] | None = None,
) -> None:
    """Extract ``todo`` into ``done``, written as checkpoints by ``writer`` as they come
    and on an interrupt; ``report`` counts them and the files skipped (analyze and update
    alike)."""
    batches = extract(base_dir, todo, extractor, batch, report, warn, cancel)
    with checkpoint_on_interrupt(writer):
        for paths, feats, sizes, mtimes in batches:
            writer.add(paths, done.add(paths, feats, sizes, mtimes), sizes, mtimes)
            report.analysed += len(paths)
            if after_batch:
                after_batch()
    writer.flush()


def plan(
    base_dir: Path, out: Path, model: ModelRef, settings: Settings, warn: Warn | None
) -> tuple[Report, _Done, Index | None, list[str]]:
    """What a run (here or on a cluster) starts from: the folder scanned, the rows it can
    reuse (the index at ``out``, checkpoints), the index at ``out`` if any, and the images
    left to analyse. A run that would remove most of that index is refused here."""
    check_folder(out)
    report = Report()
    exclusions = Exclusions.of(settings.exclude)
    found = scan(base_dir, warn, exclusions)
    report.skipped.extend(found.skipped)
    report.excluded = (found.excluded_folders, found.excluded)
    if warn:
        more = " the other patterns do not" if exclusions.used else ""  # (Backup/Backup)
        for text in exclusions.unused():  # (a misspelt name left all in)
            warn(f"{base_dir}: --exclude {quoted(text)} leaves nothing out there{more}"
                 f"{_hint(text)}")  # fmt: skip
    if found.raw:  # (passed over without a word: a folder of them was "no usable images")
        raw = raw_files(found.raw)
        if not found.paths:
            raise RtsearchError(
                f"{base_dir}: no usable images found: it holds {raw}, which rtsearch does not "
                "read; export them as JPEGs to index them"
            )
        if warn:
            warn(f"{base_dir}: {raw} passed over: rtsearch does not read RAW files")
    done, old = _reusable(base_dir, out, model, settings, found, warn)
    if old is not None and not settings.replace:
        _check_most_kept(out, base_dir, old, found, done.moved_from, settings.options, exclusions)
    report.reused = len(done)
    return report, done, old, [p for p in found.paths if p not in done]


def finish(
    base_dir: Path,
    out: Path,
    model: ModelRef,
    settings: Settings,
    report: Report,
    done: _Done,
    old: Index | None,
    warn: Warn | None,
) -> None:
    """After the extraction (here or on a cluster): the index built from ``done`` and saved
    over the checkpoints, or left as it was when nothing changed; ``report.index`` is it."""
    ckpt = checkpoint_dir(out)
    if not base_dir.is_dir():  # moved or unmounted meanwhile: its files were "skipped"
        raise RtsearchError(
            f"{base_dir}: the folder went away during the analysis; what was done is kept in "
            f"{ckpt}: analyze the folder again where it is now to go on"
        )
    paths = sorted(done.stats)
    if not paths:
        left_out = left_out_text(report.excluded, " by --exclude")
        # why, for the first few (the viewer said only "2 skipped": its lines per file are
        # the command line's warnings)
        why = f": {skipped_reasons(report.skipped)}" if report.skipped else ""
        raise RtsearchError(
            f"{base_dir}: no usable images found ({len(report.skipped)} skipped{why}{left_out})"
        )
    if old is not None:
        gone = (p for p in old.paths if p not in done.stats and p not in done.moved_from)
        report.removed = sum(1 for _ in gone)
    if done.unrecorded:  # which file made some of its rows is not known: it does not say
        model = replace(model, variant="")
    if _as_it_was(old, paths, report, settings, base_dir, ckpt):
        report.index = old  # nothing to write: rewritten, it lost the ANN file beside it
    else:
        report.index = build_index(paths, done, model, settings, base_dir, old)
        atomic.check_output_folder(out)
        with interrupts.held():  # saved and its checkpoints gone, or neither
            save_over_checkpoints(report.index, out, warn)
            _remove_checkpoints(ckpt, out, warn)
    _say_if_stale(out, report.index, warn)


def _remove_checkpoints(ckpt: Path, out: Path, warn: Warn | None) -> None:
    """The checkpoints whose rows ``out`` now holds, removed; those that cannot be (another
    user's, in a shared folder) are said: left in silence, `info` took them for an
    unfinished analysis."""
    shutil.rmtree(ckpt, ignore_errors=True)
    if warn and any(ckpt.glob("part-*.dat")):
        warn(
            f"{ckpt}: cannot remove its checkpoints (another user's, or a folder this user "
            f"may not write); {out} holds their rows, so the folder can be deleted"
        )


def skipped_reasons(skipped: list[tuple[str, str]], named: int = 3) -> str:
    """The first ``named`` of the files skipped with their reasons (each names its file),
    then how many more: "a.jpg: empty file; b.png: ...; and 2 more"."""
    more = len(skipped) - named
    return "; ".join(reason for _, reason in skipped[:named]) + (
        f"; and {more} more" if more > 0 else ""
    )


def _say_if_stale(out: Path, index: Index, warn: Warn | None) -> None:
    if warn and stale_pca(index):
        warn(
            f"{out}: its PCA was fitted on {index.count - index.unfitted} of its "
            f"{count(index.count, 'image')} (the others were added since, and it stores no "
            "features to fit it again): analyze again with --keep-features to refit it "
            "(every image is analysed once more)"
        )


def _as_it_was(
    old: Index | None, paths, report: Report, settings: Settings, base_dir, ckpt
) -> bool:
    """Whether a rerun leaves the index exactly as it is: no image analysed, none dropped,
    the same folder and settings, no checkpoint to fold in. Writing it again anyway took
    36 s and 3.6 GB at 300k rows with features, and its new vectors' file made the viewer
    rebuild the ANN structure beside it (37 s at 1M rows)."""
    if old is None or old.projection is None or report.analysed or paths != old.paths:
        return False
    p = old.projection
    same = (
        p.kind == settings.projection
        and (p.kind == "none" or p.out_dims == settings.dims)
        and p.l2_normalize == settings.l2_normalize
        and (p.kind != "random" or p.seed == settings.seed)
        and (old.features is not None) == settings.keep_features
        and old.base_dir == str(Path(base_dir).resolve())
        and old.exclude == settings.exclude
        # rows added since the fit, with features to fit again: the rerun is the refit
        and not (old.unfitted and old.features is not None)
    )
    return same and not any(ckpt.glob("part-*.dat"))


def left_out_text(excluded: tuple[int, int], how: str = "") -> str:
    """ ", 2 folders and 12 files left out" (either alone where the other is 0) and ``how``,
    for a summary's parentheses; "" where nothing was left out."""
    folders, files = excluded
    said = [count(folders, "folder") if folders else "", count(files, "file") if files else ""]
    return f", {' and '.join(s for s in said if s)} left out{how}" if any(excluded) else ""


def _hint(text: str) -> str:
    """Why a pattern may have left nothing out: a file of the current folder's name (the
    shell put it for an unquoted ``*.png``), a backslash where the separator is a slash."""
    if Path(text).is_file() and not any(c in text for c in "*?["):
        return " (the name of a file here: quote patterns, or the shell turns '*.png' into them)"
    if "\\" in text:
        return " (folders are separated by /)"
    return ""


def _check_most_kept(
    out: Path, base_dir: Path, old: Index, found, moved: set[str], options: Options,
    exclusions: Exclusions,
) -> None:  # fmt: skip
    """Refuse a rerun that would remove most of the index at -o, as update refuses it: a
    half-mounted drive or a partial copy dropped 700,000 of 1,000,000 rows without a word.
    Files ``moved`` within the folder are not removed; those ``exclusions`` leave out are
    removed as asked."""
    present = set(found.paths)
    removed = [
        p
        for p in old.paths
        if p not in present and not found.hides(p) and p not in moved and not exclusions.hides(p)
    ]
    refuse_removing_most(out, base_dir, len(old.paths), removed, "analysing it", options.replace)


def refuse_removing_most(
    index: Path,
    base_dir: Path,
    rows: int,
    removed: list[str],
    doing: str,
    option: str = "--replace",
) -> None:
    """Refuse ``doing`` (analyse, update) that would remove most of ``index``, the rows
    at ``removed``: more than PRUNE_FRACTION of its images, and at least PRUNE_MIN
    (``option``, --replace or its like, goes on). Rows in folders of copies an older scan
    took in (scan.under_copies) go without asking: a share's 12 photos were 72 rows."""
    gone = sum(not under_copies(p) for p in removed)
    if gone < PRUNE_MIN or gone <= PRUNE_FRACTION * rows:
        return
    raise RtsearchError(
        f"{base_dir}: holds only {rows - gone} of the {count(rows, 'image')} in {index}; "
        f"{doing} would remove the other {gone} (another folder, an old copy, or one "
        f"still being copied?); pass {option} to remove them"
    )


def save_over_checkpoints(index: Index, out: Path, warn: Warn | None) -> None:
    """Save the finished ``index``; where the disk has no room for it but would once this
    run's checkpoints are gone, they go first (their rows are in ``index``): they held the
    room every rerun needed, and each rerun reused them and failed the same way."""
    ckpt = checkpoint_dir(out)
    try:
        store.save(index, out)
        return
    except store.NoRoom:
        need, free = store.room_for(index, out)
        held = sum(f.stat().st_size for f in ckpt.glob("part-*.dat")) if ckpt.is_dir() else 0
        if free is None or need > free + held:
            raise
    if warn:
        warn(
            f"{ckpt}: its checkpoints take the room {out} needs; removed first (their rows "
            "are in the index)"
        )
    shutil.rmtree(ckpt, ignore_errors=True)
    store.save(index, out)


def pca_span(index: Index) -> tuple[int, int] | None:
    """(images the PCA was fitted on, the dimensions they span) where that is fewer than
    its dimensions: n images span at most n - 1; None otherwise, or for no PCA."""
    p = index.projection
    fitted = index.count - index.unfitted
    span = max(fitted - 1, 0)
    if p is None or not p.kind.startswith("pca") or span >= p.out_dims:
        return None
    return fitted, span


def thin_pca(index: Index) -> str | None:
    """What to say of a PCA fitted on fewer images than its dimensions (``pca_span``); the
    other axes are arbitrary (every query's distances grow alike there; whitened, rows
    added later stand apart). A note, not a refusal: the index works."""
    thin = pca_span(index)
    if thin is None:
        return None
    fitted, span = thin
    p = index.projection
    assert p is not None
    empty = p.out_dims - span
    fits = f"pass --dims {span}, or " if span >= proj.MIN_DIMS else ""
    return (
        f"its PCA was fitted on {count(fitted, 'image')}, which span at most {span} of its "
        f"{p.out_dims} dimensions: the other {empty} {'carries' if empty == 1 else 'carry'} "
        f"nothing ({fits}analyze more images)"
    )


def stale_pca(index: Index) -> bool:
    """Whether ``index``'s PCA was fitted on too few of its rows: over REFIT_FRACTION of
    them came after the fit (added by update, or by a re-analysis that kept no features)."""
    pca = index.projection is not None and index.projection.kind.startswith("pca")
    return pca and index.unfitted > REFIT_FRACTION * index.count


def unfitted_after(
    old: Index, paths: list[str], old_row: dict[str, int], new: set[str]
) -> tuple[int, np.ndarray | None]:
    """How many rows of an index of ``paths`` came after its projection's fit, and which:
    those ``new`` (added or changed now), and the others as they were in ``old`` (its row
    of each: ``old_row``). A file written before the mask, with rows after its fit, gives
    a count only, as before it."""
    if old.unfitted_mask is None and old.unfitted:
        return min(len(paths), old.unfitted + len(new)), None
    before = old.unfitted_mask
    mask = np.array(
        [p in new or (before is not None and p in old_row and bool(before[old_row[p]]))
         for p in paths],
        dtype=bool,
    )  # fmt: skip
    return int(mask.sum()), mask


SAME = 1e-4  # a vector this near (relative) another: the same picture analysed again


def same_vector(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a``, a picture's vector as analysed now, is ``b``, its old one: the same
    picture (a model run's rounding apart), not a changed one."""
    return bool(np.linalg.norm(a - b) <= SAME * max(float(np.linalg.norm(b)), 1e-12))


def build_index(paths, done: _Done, model, settings: Settings, base_dir, old) -> Index:
    stats = np.array([done.stats[p] for p in paths], dtype=np.float64).reshape(-1, 2)
    # Nothing fresh happens on a rerun over an unchanged folder whose index kept no features.
    fresh = [p for p in paths if p in done.features]
    features = done.take_features(fresh) if fresh else np.zeros((0, model.feature_dims), np.float32)
    if done.old_rows:
        # The old index kept no features: its rows stay, new rows join its projection.
        projection = old.projection
        rows = dict(zip(fresh, projection(features), strict=True))
        projected = np.stack(
            [rows[p] if p in rows else old.projected[done.old_rows[p]] for p in paths]
        ).astype(np.float32, copy=False)
        keep = None
        # (a file analysed again that is the picture it was, its time changed: not new)
        at = {p: i for i, p in enumerate(old.paths)}
        same = {p for p in fresh if p in at and same_vector(rows[p], old.projected[at[p]])}
        carried = {**done.old_rows, **{p: at[p] for p in same}}
        unfitted, mask = unfitted_after(old, paths, carried, set(fresh) - same)
    else:
        projection = proj.fit(
            features,
            settings.dims,
            settings.projection,
            l2=settings.l2_normalize,
            seed=settings.seed,
        )
        projected = projection(features)
        keep = features if settings.keep_features else None
        unfitted, mask = 0, None
    return Index(
        paths=paths,
        model=model,
        sizes=stats[:, 0].astype(np.int64),
        mtimes=stats[:, 1],
        projected=projected,
        projection=projection,
        features=keep,
        base_dir=str(base_dir.resolve()),
        unfitted=unfitted,
        unfitted_mask=mask,
        exclude=settings.exclude,
    )


def _reusable(base_dir, out, model, settings, found, warn) -> tuple[_Done, Index | None]:
    """What need not be extracted again: unchanged files in the old index and checkpoints,
    and what is indexed under folders this scan could not read (kept as it was)."""
    done = _Done()
    wanted = set(found.paths)
    # a fresh run (demo --rebuild) takes no rows of the index, and only the checkpoints of
    # a fresh run like it, which it goes on from (an interrupted one said it would, and
    # started from the first image)
    if settings.fresh and not checkpoint_settings(checkpoint_dir(out)).get("rebuild"):
        shutil.rmtree(checkpoint_dir(out), ignore_errors=True)
        return done, None
    old = None if settings.fresh else _old_index(out, base_dir, model, settings, warn, found)
    try:
        parts = list(checkpoint_parts(checkpoint_dir(out), model, warn, settings.replace))
    except OtherModel as exc:
        raise RtsearchError(f"{exc} (or pass {settings.options.replace})") from None
    if not settings.replace:
        _refuse_another_run(out, parts, base_dir, wanted, settings.options)
    for ck in parts:
        before = len(done)
        _take(done, ck, base_dir, wanted, found.hides, use_features=True)
        done.unrecorded |= len(done) > before and not ck.model.variant
    done.from_checkpoints = len(done)
    if old is not None:
        before = len(done)
        _take(done, old, base_dir, wanted, found.hides, use_features=old.features is not None)
        _take_moved(done, old, base_dir, found)
        done.from_index = len(done) - before
        done.unrecorded |= done.from_index > 0 and not old.model.variant
        if not done.from_index:
            _refuse_another_folder(out, old, base_dir, settings, found)
    kept = [p for p in done.stats if p not in wanted]
    if kept and warn:
        warn(kept_unread(base_dir, len(kept)))
    return done, old


def _take(done: _Done, index: Index, base_dir: Path, wanted, hidden, *, use_features) -> None:
    """Rows of ``index`` to reuse: wanted and unchanged, or ``hidden`` from this scan."""
    for i, p in enumerate(index.paths):
        if p not in done and (
            (p in wanted and _unchanged(base_dir / p, index.sizes[i], index.mtimes[i])) or hidden(p)
        ):
            done.stats[p] = (int(index.sizes[i]), float(index.mtimes[i]))
            if use_features:
                done.features[p] = index.features[i]
            else:
                done.old_rows[p] = i


def _take_moved(done: _Done, old: Index, base_dir: Path, found) -> None:
    """Rows of ``old`` whose files moved within the folder (moves.moved_rows), under their
    new paths; ``done.moved_from`` holds the paths they left."""
    wanted = set(found.paths)
    gone = [p for p in old.paths if p not in wanted and p not in done and not found.hides(p)]
    new = [p for p in found.paths if p not in done]
    for p, i in moved_rows(old, gone, new, base_dir).items():
        done.stats[p] = (int(old.sizes[i]), float(old.mtimes[i]))
        if old.features is not None:
            done.features[p] = old.features[i]
        else:
            done.old_rows[p] = i
        done.moved_from.add(old.paths[i])


def _refuse_another_run(
    out: Path, parts: list[Index], base_dir: Path, wanted: set[str], options: Options
) -> None:
    """Checkpoints of an unfinished analysis of another folder, none of whose images are
    in ``base_dir``, are not dropped without --replace: they are that run's work (a
    mistyped -o, or a second folder sent to the same index, deleted them in silence)."""
    here = Path(base_dir).resolve()
    others = [p for p in parts if p.base_dir and Path(p.base_dir).resolve() != here]
    if not others or any(path in wanted for part in others for path in part.paths):
        return  # (the same images: that folder moved here, and the run goes on)
    images = count(sum(part.count for part in others), "image")
    folder = others[0].base_dir
    raise RtsearchError(
        f"{checkpoint_dir(out)}: holds an unfinished analysis of {folder} ({images}), none "
        f"of them in {base_dir}; analyze {folder} again to finish it, choose another "
        f"{options.out}, or pass {options.replace} to drop it"
    )


def _refuse_another_folder(
    out: Path, old: Index, base_dir: Path, settings: Settings, found
) -> None:
    """An index of another folder, none of whose images are unchanged in ``base_dir``, is
    not overwritten without --replace: a mistyped -o would lose it. A copy of its folder
    (its pictures there under their names, of the sizes indexed; `cp -r` gave them new
    times) is analysed as its folder, as `update` takes it."""
    if settings.replace or not old.count or old.base_dir == str(Path(base_dir).resolve()):
        return
    wanted = set(found.paths)
    named = [i for i, p in enumerate(old.paths) if p in wanted]
    if any(file_size(base_dir / old.paths[i]) == int(old.sizes[i]) for i in named):
        return  # (update's test of a copy: another camera's IMG_0001.JPG shares no size)
    where = (
        f"none of them in {base_dir}"
        if not named
        else f"{base_dir} holds {count(len(named), 'file')} of their names, none of the "
        "size indexed"
    )
    raise RtsearchError(
        f"{out}: already an index of {old.base_dir} ({count(old.count, 'image')}), "
        f"{where}; choose another {settings.options.out}, or pass "
        f"{settings.options.replace} to overwrite it"
    )


def _old_index(out: Path, base_dir: Path, model, settings: Settings, warn, found) -> Index | None:
    if not out.exists():
        return None
    out_option, replace = settings.options.out, settings.options.replace
    if not out.is_file() and not out.is_dir():  # a device, a FIFO: never a thing to delete
        raise RtsearchError(f"{out}: not a regular file; choose another {out_option}")
    try:
        old = store.load(out, features=True)
    except store.Damaged as exc:  # (its checksums disagree: nothing in it to trust)
        if not settings.replace:
            raise
        if warn:
            warn(f"{exc.plain}; {replace}: analysing all of it anew")
        return None
    except RtsearchError as exc:  # analysing again would overwrite it: say so, do not guess
        if out.is_file() and not h5py.is_hdf5(out):  # a photo, a document: not ours to delete
            raise RtsearchError(f"{out}: not an index file; choose another {out_option}") from None
        if not store.looks_like_index(out):  # another program's HDF5 file
            raise RtsearchError(  # (it said "it is reused when analysing to it again")
                f"{exc}; not written over: delete it, or choose another {out_option}"
            ) from None
        if not settings.replace:  # (an index damaged past reading: --replace was refused)
            raise RtsearchError(
                f"{exc}; not written over: delete it, choose another {out_option}, or pass "
                f"{replace} to analyse all of it anew"
            ) from None
        if warn:
            warn(f"{exc}; {replace}: analysing all of it anew")
        return None
    other = old.model.identity != model.identity
    clash = "" if other else store.twin_clash(old.model, model)  # its rows and these differ
    if (other or clash) and settings.replace:  # (all of it analysed again, as asked)
        if warn:
            made = f"model {old.model}" if other else clash
            warn(f"{out}: an index made with {made}; {replace}: analysing all of it anew")
        return None
    if other:  # analysing to it would replace it
        raise RtsearchError(
            f"{out}: an index made with model {old.model}, not {model}; use the same --model "
            f"to update it, choose another {out_option} (or delete it) to start a new one, or "
            f"pass {replace} to analyse all of it anew with this one"
        )
    if clash:
        raise RtsearchError(
            f"{out}: an index made with {clash}; {command('rtsearch', 'update', out, base_dir)} "
            f"brings it up to date with that file, choose another {out_option} (or delete "
            f"it) to start a new one, or pass {replace} to analyse all of it anew with this one"
        )
    if old.features is not None and not settings.keep_features and warn:
        warn(
            f"{out}: it kept its full features and will not any more (they allow changing "
            "dims without analysing again)"
        )
    refit = old.projection is not None and (
        old.projection.kind != settings.projection
        or old.dims != settings.dims
        or old.projection.l2_normalize != settings.l2_normalize
    )
    # Its rows cannot be re-projected, nor their features kept (--keep-features was
    # ignored: "0 analysed, N reused", and the index still had none).
    if old.features is None and (refit or settings.keep_features):
        indexed = set(old.paths)
        if not any(
            _unchanged(base_dir / p, size, mtime)
            for p, size, mtime in zip(old.paths, old.sizes, old.mtimes, strict=True)
        ) and not moved_rows(
            old, old.paths, [p for p in found.paths if p not in indexed], base_dir
        ):
            # nothing of it there, as it was or moved within: is it another folder's?
            _refuse_another_folder(out, old, base_dir, settings, found)
        if warn:
            why = "with other projection settings" if refit else "(--keep-features asks for them)"
            warn(f"{out}: stored without features {why}; its images are analysed again")
        return None
    return old


def _unchanged(path: Path, size, mtime) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    return same_stat(size, mtime, st.st_size, st.st_mtime)
