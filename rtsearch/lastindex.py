"""The index the viewer last showed, kept in the user state folder so that plain `rtsearch`
(or `rtsearch view` without an index) opens it again, from the folder it was shown with."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from rtsearch.atomic import atomic_path


@dataclass(frozen=True)
class LastIndex:
    index: Path
    base_dir: Path | None  # the folder its images were shown from (chosen when they moved)


def state_file() -> Path:
    return Path(platformdirs.user_state_dir("rtsearch")) / "last-index.json"


def remember(index: Path, base_dir: Path | None) -> None:
    """Keep ``index`` (shown from ``base_dir``) as the one to open next time. A state folder
    that cannot be written loses only this convenience: nothing is said."""
    entry = {"index": os.path.abspath(index)}
    if base_dir is not None:
        entry["base_dir"] = os.path.abspath(base_dir)
    with contextlib.suppress(OSError), atomic_path(state_file()) as tmp:
        tmp.write_text(json.dumps(entry) + "\n", encoding="utf-8")


def recall() -> LastIndex | None:
    """The index kept by ``remember``; None when there is none or the file is unreadable
    (damaged, or from another version: it is only a convenience)."""
    try:
        entry = json.loads(state_file().read_text(encoding="utf-8"))
        index, base = entry["index"], entry.get("base_dir")
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if not isinstance(index, str) or not index or not isinstance(base, str | None):
        return None
    return LastIndex(Path(index), Path(base) if base else None)
