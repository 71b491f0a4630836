"""Indexed files moved within the folder: a file no longer at its indexed path, and a new
path holding a file of the same name, size and modification time, are one picture moved
(into a subfolder, out of one), so its row is kept rather than analysed again. Sorting a
collection into dated folders otherwise analysed every picture again, and the run was first
refused as one removing most of the index."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from rtsearch.store import Index


def moved_rows(
    index: Index, gone: Iterable[str], new: Iterable[str], base_dir: Path
) -> dict[str, int]:
    """New path -> the row of ``index`` it is a move of. ``gone``: indexed paths no longer
    there; ``new``: paths found that the index lacks. A key (name, size, mtime) shared by
    two gone files is left out: which of them moved where cannot be told."""
    rows = {p: i for i, p in enumerate(index.paths)}
    by_key: dict[tuple[str, int, float], int | None] = {}
    for p in gone:
        i = rows[p]
        key = (PurePosixPath(p).name, int(index.sizes[i]), round(float(index.mtimes[i]), 3))
        by_key[key] = None if key in by_key else i
    found: dict[str, int] = {}
    if not any(row is not None for row in by_key.values()):
        return found
    names = {key[0] for key in by_key}
    for p in new:
        name = PurePosixPath(p).name
        if name not in names:
            continue  # (no stat for files that cannot match)
        try:
            st = (base_dir / p).stat()
        except OSError:
            continue
        row = by_key.get((name, st.st_size, round(st.st_mtime, 3)))
        if row is not None:
            found[p] = row
            by_key[(name, st.st_size, round(st.st_mtime, 3))] = None  # one move per row
    return found
