"""Indexed files moved within the folder: a file no longer at its indexed path, and a new
path holding a file of the same name, size and modification time, are one picture moved
(into a subfolder, out of one), so its row is kept rather than analysed again. Sorting a
collection into dated folders otherwise analysed every picture again, and the run was first
refused as one removing most of the index."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from rtsearch.store import Index

MTIME_TOLERANCE_S = 1e-3  # a file system's own rounding of modification times
# Coarser clocks, told by a time on their grid: FAT keeps even seconds, exFAT hundredths. A
# collection copied onto a FAT or exFAT drive (or off one) was analysed again whole.
COARSE_CLOCKS_S = (2.0, 0.01)


def same_stat(size, mtime, other_size, other_mtime) -> bool:
    """Whether two (size, modification time) pairs are one file's: the check analyze's
    unchanged files, moves and the viewer's query across an update all go by. Times match
    within a millisecond, or within the step of a coarse clock one of them is on."""
    if int(size) != int(other_size):
        return False
    a, b = float(mtime), float(other_mtime)
    return abs(a - b) < max(MTIME_TOLERANCE_S, _step(a), _step(b))


def _step(t: float) -> float:
    """The step of the coarsest file system clock ``t`` is on (0: a fine one)."""
    for step in COARSE_CLOCKS_S:
        if abs(t - round(t / step) * step) < 1e-5:  # (a float of 1.7e9 s: 0.24 us apart)
            return step
    return 0.0


def moved_rows(
    index: Index, gone: Iterable[str], new: Iterable[str], base_dir: Path
) -> dict[str, int]:
    """New path -> the row of ``index`` it is a move of. ``gone``: indexed paths no longer
    there; ``new``: paths found that the index lacks. Times match as analyze's unchanged
    check matches them (within a millisecond); a new file matching two gone ones is left
    out, as is a gone one two new files match after the first: which moved where cannot
    be told."""
    rows = {p: i for i, p in enumerate(index.paths)}
    by_key: dict[tuple[str, int], list[int]] = {}
    for p in gone:
        i = rows[p]
        by_key.setdefault((PurePosixPath(p).name, int(index.sizes[i])), []).append(i)
    found: dict[str, int] = {}
    taken: set[int] = set()
    names = {name for name, _ in by_key}
    for p in new:
        name = PurePosixPath(p).name
        if name not in names:
            continue  # (no stat for files that cannot match)
        try:
            st = (base_dir / p).stat()
        except OSError:
            continue
        same = [
            i
            for i in by_key.get((name, st.st_size), ())
            if same_stat(index.sizes[i], index.mtimes[i], st.st_size, st.st_mtime)
        ]
        if len(same) == 1 and same[0] not in taken:
            found[p] = same[0]
            taken.add(same[0])
    return found
