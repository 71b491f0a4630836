"""What the viewer keeps between runs, in one small file in the user state folder: the index
it showed last, with the folder it showed its images from (plain `rtsearch` opens it
again), and the settings a user left it with (results, row and header heights, trimming,
the grab region, the window's size and whether it was maximised, a UI scale given), the
queries' history with that index (history.py: the next run starts on the query shown
last), and the indexes shown before it with theirs (``recent``: the Load dialog lists
them, recent.py). A run with --no-last reads and keeps none of it."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import platformdirs

from rtsearch.atomic import atomic_path, os_reason
from rtsearch.errors import warn
from rtsearch.viewer import layout, uiscale
from rtsearch.viewer.grab_region import Box

MAX_BYTES = 262144  # what is read of the file: settings, and histories (HISTORY_BYTES...)
HISTORY_BYTES = 24576  # of the history kept with the index shown (as written, JSON)
RECENT_MAX = 10  # indexes shown before that are kept, the last first
RECENT_HISTORY_BYTES = 4096  # of each one's history


@dataclass(frozen=True)
class Shown:
    """An index shown before: the folder its images were shown from, and its queries'
    history (as Memory's)."""

    index: Path
    base_dir: Path
    history: tuple[str, ...] | None = None
    history_at: int | None = None
    named: str | None = None  # the folder the index file named then (``applies``)


@dataclass(frozen=True)
class Memory:
    index: Path | None = None
    base_dir: Path | None = None  # the folder its images were shown from (chosen if moved)
    k: int | None = None
    thumb_h: int | None = None
    header_h: int | None = None
    trim: bool | None = None
    region: Box | None = None  # the grab rectangle, desktop pixels
    width: int | None = None  # the window's inside, at UI scale 1
    height: int | None = None
    ui_scale: float | None = None  # given with --ui-scale (a detected one is not kept)
    maximized: bool | None = None  # True: the window was maximised (width, height: its size
    # before; X11 only, where a window manager says so)
    # the queries' history with the index (history.kept: its pictures relative to
    # base_dir), and the place of the one shown last
    history: tuple[str, ...] | None = None
    history_at: int | None = None
    recent: tuple[Shown, ...] | None = None  # the indexes shown before this one, the last first
    named: str | None = None  # the folder the index file named when shown (``applies``)


# what a setting may be: a value out of its range (another version's, edited by hand) is
# passed over, and the default taken
RANGES = {
    "k": layout.RESULTS_RANGE,
    "thumb_h": layout.THUMB_RANGE,
    "header_h": layout.HEADER_RANGE,
    "width": (200, 16384),
    "height": (150, 16384),
}


def state_file() -> Path:
    return Path(platformdirs.user_state_dir("rtsearch")) / "viewer.json"


def recall() -> Memory:
    """What was kept; each part that is missing, damaged or of another shape is None (it
    is only a convenience: nothing is said)."""
    path = state_file()
    try:
        if not path.is_file():  # a FIFO in its place is not opened: that would wait
            return Memory()
        with open(path, "rb") as f:
            entry = json.loads(f.read(MAX_BYTES))
    except (OSError, ValueError):  # a file cut at MAX_BYTES does not parse either
        return Memory()
    if not isinstance(entry, dict):
        return Memory()
    return Memory(**_parts(entry, Memory))


def _parts(entry: dict, kind: type) -> dict:
    """``entry``'s fields of ``kind`` (Memory, Shown), each one that is damaged None."""
    kept = {f.name: _valid(f.name, entry.get(f.name)) for f in fields(kind)}
    names, at = kept["history"], kept["history_at"]
    if names is None or at is None or at >= len(names):  # (the two go together)
        kept.update(history=None, history_at=None)
    return kept


def _valid(name: str, value: object) -> object:
    if name in ("index", "base_dir"):
        return Path(value) if isinstance(value, str) and value else None
    if name == "named":
        return value if isinstance(value, str) else None
    if name == "trim":
        return value if isinstance(value, bool) else None
    if name == "maximized":
        return True if value is True else None
    if name == "history":
        ok = isinstance(value, list) and all(isinstance(v, str) and v for v in value)
        return tuple(value) if ok and value else None
    if name == "history_at":
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        return value if ok else None
    if name == "recent":
        entries = [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []
        parts = [_parts(e, Shown) for e in entries[:RECENT_MAX]]
        return tuple(Shown(**e) for e in parts if e["index"] and e["base_dir"]) or None
    if name == "region":
        ok = (
            isinstance(value, list)
            and len(value) == 4
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        )
        return tuple(value) if ok and value[2] > 0 and value[3] > 0 else None  # type: ignore[index]
    if name == "ui_scale":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        lo, hi = uiscale.RANGE
        return uiscale.fit(value) if lo <= value <= hi else None
    lo, hi = RANGES[name]
    ok = isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi
    return value if ok else None


def all_shown(kept: Memory) -> list[Shown]:
    """The indexes ``kept``: the one shown last, then those shown before, the last first."""
    last = kept.index is not None and kept.base_dir is not None
    now = (
        Shown(kept.index, kept.base_dir, kept.history, kept.history_at, kept.named)  # type: ignore[arg-type]
        if last
        else None
    )
    return ([now] if now else []) + list(kept.recent or ())  # type: ignore[list-item]


def shown_before(index: Path, named: str | None) -> Shown | None:
    """``index`` as kept (shown last, or before), where that applies to the file as it is
    now, which names the folder ``named`` (``applies``); None where it is not."""
    index = Path(os.path.abspath(index))
    shown = next((s for s in all_shown(recall()) if s.index == index), None)
    return shown if shown is not None and applies(shown, named) else None


def applies(shown: Shown | Memory, named: str | None) -> bool:
    """Whether what was kept with an index applies to its file now naming the folder
    ``named``: the file names the folder it named then, or the folder its images were
    shown from (an index whose folder moved, brought up to date there by `update`: its
    history was lost). Written over since by another collection's index, it names
    another, and the folder kept showed other pictures (the same names, in a generated
    set), which a save then wrote into its copies. Kept by a version that kept no
    ``named``: it applies."""
    if shown.named is None or shown.named == (named or ""):
        return True
    return bool(named) and shown.base_dir is not None and Path(named) == shown.base_dir


def history_of(index: Path, named: str | None) -> tuple[tuple[str, ...], int] | None:
    """The history kept with ``index``, which names ``named`` (None: none kept)."""
    shown = shown_before(index, named)
    if shown is None or shown.history is None:
        return None
    return shown.history, shown.history_at  # type: ignore[return-value]


def folder_of(index: Path, named: str | None) -> Path | None:
    """The folder ``index``'s images were shown from (last, or before), where kept for the
    file as it is: one that names ``named``."""
    shown = shown_before(index, named)
    return None if shown is None else shown.base_dir


def found_in(index: Path, named: str | None) -> Path | None:
    """Where ``index``'s images are now, by the viewer: the folder they were shown from
    (``folder_of``) while it is there and not the folder the file names (``named``); the
    command line takes it where the folder named is gone (located in the viewer)."""
    folder = folder_of(index, named)
    if folder is None or not folder.is_dir() or (named and Path(named) == folder):
        return None
    return folder


def keep_shown(
    index: Path,
    base_dir: Path,
    history: tuple[tuple[str, ...], int] | None,
    named: str | None = None,
) -> None:
    """``index`` is the one shown now, from ``base_dir``, with ``history`` (as ``fit``
    makes it), its file naming the folder ``named``: the one shown until now goes first
    among those shown before, with its history as kept, made shorter
    (RECENT_HISTORY_BYTES)."""
    now, index = recall(), Path(os.path.abspath(index))
    recent = all_shown(now)
    if recent and recent[0].index != index and recent[0].history is not None:
        last = recent[0]  # (history and history_at go together: recall)
        short = fit(last.history, last.history_at, RECENT_HISTORY_BYTES)  # type: ignore[arg-type]
        recent[0] = replace(last, history=short and short[0], history_at=short and short[1])
    recent = [shown for shown in recent if shown.index != index][:RECENT_MAX]
    names, at = history or (None, None)
    _write(replace(now, index=index, base_dir=base_dir, history=names, history_at=at,
                   recent=tuple(recent) or None, named=named))  # fmt: skip


def fit(names, at: int, budget: int = HISTORY_BYTES) -> tuple[tuple[str, ...], int] | None:
    """The entries of a history (``names``) round its entry ``at``, the steps back first,
    that ``budget`` bytes hold as written, and that entry's place among them; None where
    that entry alone does not fit."""
    sizes = [len(json.dumps(name)) for name in names]  # (as written: escapes and all)
    lo, hi, size = at, at + 1, sizes[at]
    if size > budget:
        return None
    while lo > 0 and size + sizes[lo - 1] <= budget:
        lo, size = lo - 1, size + sizes[lo - 1]
    while hi < len(names) and size + sizes[hi] <= budget:
        hi, size = hi + 1, size + sizes[hi]
    return tuple(names[lo:hi]), at - lo


def keep(**changes: object) -> None:
    """Keep ``changes`` (Memory's fields) with what was kept before. A state folder that
    cannot be written loses only this convenience, said once (``unkept``)."""
    _write(replace(recall(), **changes))


# why what the viewer keeps could not be written, once it could not (a read-only home):
# said once on stderr and the message line; the next run started as the last one had
# left it, the history and settings of this one lost without a word
unkept = ""


def _write(now: Memory) -> None:
    global unkept
    entry = _plain(asdict(now))
    try:
        with atomic_path(state_file()) as tmp:
            tmp.write_text(json.dumps(entry, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        if not unkept:
            unkept = (
                f"{state_file()}: cannot keep the viewer's index, settings and history for "
                f"the next run ({os_reason(exc)})"
            )
            warn(unkept)


def _plain(value: object) -> object:
    """As JSON holds it: paths absolute, tuples as lists, dataclasses (asdict made them
    dicts) without their parts that are None."""
    if isinstance(value, Path):
        return os.path.abspath(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    return [_plain(v) for v in value] if isinstance(value, tuple | list) else value
