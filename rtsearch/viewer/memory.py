"""What the viewer keeps between runs, in one small file in the user state folder: the index
it showed last, with the folder it showed its images from (plain `rtsearch` opens it
again), and the settings a user left it with (results, row and header heights, trimming,
the grab region, the window's size and whether it was maximised, a UI scale given). A run
with --no-last reads and keeps none of it."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import platformdirs

from rtsearch.atomic import atomic_path
from rtsearch.viewer import layout, uiscale
from rtsearch.viewer.grab_region import Box

MAX_BYTES = 65536  # what is read of the file: it holds a few hundred


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
    kept = {f.name: _valid(f.name, entry.get(f.name)) for f in fields(Memory)}
    return Memory(**kept)


def _valid(name: str, value: object) -> object:
    if name in ("index", "base_dir"):
        return Path(value) if isinstance(value, str) and value else None
    if name == "trim":
        return value if isinstance(value, bool) else None
    if name == "maximized":
        return True if value is True else None
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


def keep(**changes: object) -> None:
    """Keep ``changes`` (Memory's fields) with what was kept before. A state folder that
    cannot be written loses only this convenience: nothing is said."""
    now = replace(recall(), **changes)
    entry = {k: _plain(v) for k, v in asdict(now).items() if v is not None}
    with contextlib.suppress(OSError), atomic_path(state_file()) as tmp:
        tmp.write_text(json.dumps(entry, indent=1) + "\n", encoding="utf-8")


def _plain(value: object) -> object:
    if isinstance(value, Path):
        return os.path.abspath(value)
    return list(value) if isinstance(value, tuple) else value
