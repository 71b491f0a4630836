"""Find the image files under a directory: recursive, sorted, symlink-loop safe."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rtsearch.decode import IMAGE_EXTENSIONS


@dataclass
class ScanResult:
    """paths: sorted posix paths relative to the base; skipped: (path, reason) pairs."""

    paths: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def scan(base_dir: Path, warn: Callable[[str], None] | None = None) -> ScanResult:
    """Every image file below ``base_dir``. A symlinked directory is followed once: a
    directory whose real path was already visited is skipped, so loops terminate."""
    base = Path(base_dir)
    result = ScanResult()
    visited: set[str] = set()
    stack = [(base, "")]
    while stack:
        directory, rel = stack.pop()
        real = os.path.realpath(directory)
        if real in visited:
            continue
        visited.add(real)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            _skip(result, warn, rel or ".", f"cannot list directory ({exc.strerror})")
            continue
        for entry in entries:
            _visit(entry, rel, stack, result, warn)
    result.paths.sort()
    return result


def _visit(entry: os.DirEntry, rel: str, stack: list, result: ScanResult, warn) -> None:
    child = f"{rel}/{entry.name}" if rel else entry.name
    try:
        is_dir = entry.is_dir()  # follows symlinks
        is_file = not is_dir and entry.is_file()
    except OSError:
        return
    if is_dir:
        stack.append((Path(entry.path), child))
        return
    if not is_file or os.path.splitext(entry.name)[1].lower() not in IMAGE_EXTENSIONS:
        return
    try:
        child.encode("utf-8")
    except UnicodeEncodeError:
        _skip(result, warn, child.encode("utf-8", "replace").decode(), "file name is not UTF-8")
        return
    result.paths.append(child)


def _skip(result: ScanResult, warn, path: str, reason: str) -> None:
    result.skipped.append((path, reason))
    if warn:
        warn(f"{path}: {reason}")
