"""Find the image files under a directory: recursive, sorted, symlink-loop safe."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rtsearch.decode import IMAGE_EXTENSIONS
from rtsearch.errors import Warn, count
from rtsearch.exclusions import Exclusions

Say = Callable[[str, str], None]  # (path under the base, reason)

# Folders of copies, not pictures of their own, passed over as hidden ones are (their
# thumbnails filled a photo's nearest results: 68 of 78 rows of a Synology share): NAS
# thumbnail caches, recycle bins and snapshots (Synology, QNAP), Windows' recycle bin and
# system folders. Compared without case.
CLUTTER_DIRS = frozenset(
    {"@eadir", "#recycle", "#snapshot", "@recycle", "@recently-snapshot", "@__thumb",
     "$recycle.bin", "recycler", "system volume information"}
)  # fmt: skip
# Inside a macOS Photos library only these hold the pictures; the rest are its previews
PHOTOS_LIBRARY_ORIGINALS = frozenset({"originals", "masters"})
# camera RAW files: counted, not read (said once, so a folder of them is not "empty")
RAW_EXTENSIONS = frozenset(
    {".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".dng", ".orf", ".rw2",
     ".raf", ".pef", ".srw", ".x3f", ".3fr", ".erf", ".kdc", ".mrw", ".raw", ".rwl", ".iiq"}
)  # fmt: skip
# Android's mark of a folder its gallery apps leave out (apps' caches)
NO_MEDIA = ".nomedia"


def is_gone(path: Path) -> bool:
    """Whether no file is at ``path`` now (deleted, moved, a folder in its place). One that
    may be there but cannot be looked at (in a folder this user may not enter) is not gone:
    it cannot be read (asked with Path.is_file, that raised PermissionError)."""
    try:
        return not path.is_file()
    except OSError:
        return False


def file_size(path: Path) -> int:
    """The size of the file at ``path``; -1 where there is none to look at."""
    try:
        return path.stat().st_size
    except OSError:
        return -1


@dataclass
class ScanResult:
    """paths: sorted posix paths relative to the base; skipped: (path, reason) pairs;
    unread: folders that could not be listed, links to ones not there now (an unmounted
    drive) and image entries that could not be examined ("" for the base itself), whose
    indexed images must be kept, not taken for deleted."""

    paths: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)
    raw: int = 0  # RAW camera files met (not read: no decoder for them here)
    excluded: int = 0  # files left out by the user's patterns (not those in their folders)
    excluded_folders: int = 0  # folders left out so (not walked)
    # folders walked through links that lie outside the base (their real paths, the
    # outermost only): a watch of the base sees no change in them
    outside: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # the links to folders met (absolute)

    def hides(self, path: str) -> bool:
        """Whether ``path`` (relative, posix) may exist unseen in an unread place."""
        return any(u in ("", path) or path.startswith(u + "/") for u in self.unread)


def scan(
    base_dir: Path,
    warn: Warn | None = None,
    exclude: Exclusions | None = None,
    any_name: bool = False,
) -> ScanResult:
    """Every image file below ``base_dir``. A symlinked directory is followed once: a
    directory whose real path was already visited is skipped, so loops terminate, and
    symlinked directories are walked after the real ones, so a link to a folder inside the
    base (a shortcut) never names its images in the folder's place. A link to a folder
    holding the base is not followed (it would take in everything around it), and a link to
    an image indexed under its own name is not indexed again. Hidden entries (names starting
    with a dot: thumbnail caches, macOS's ._ files) are passed over, as are folders of
    copies (CLUTTER_DIRS: NAS thumbnails, recycle bins, snapshots; a Photos library's
    previews) and folders holding a ``.nomedia`` file, and what ``exclude`` names (a folder
    of it not walked).
    Entries named like images that cannot be one (FIFOs, devices, broken or looping
    symlinks, non-UTF-8 names) are reported through ``warn`` and listed in ``skipped``;
    with ``any_name`` a name that is not UTF-8 is listed (pictures to search: no index
    stores their names)."""
    base = Path(base_dir)
    result = ScanResult()
    say = _under(base, warn) if warn is not None else None
    base_real = os.path.realpath(base)
    visited: dict[str, str] = {}  # real path -> the folder's path under the base
    stack = [(base, "")]
    linked: list[tuple[Path, str]] = []  # symlinked folders, walked after the real ones
    file_links: list[tuple[str, str]] = []  # (path under the base, real path)
    while stack or linked:
        from_link = not stack
        directory, rel = stack.pop() if stack else linked.pop(0)
        if from_link:
            result.links.append(os.path.abspath(directory))
        real = os.path.realpath(directory)
        if real in visited:
            continue
        visited[real] = rel
        if rel and _above(real, base_real):
            # a link to a folder that holds the base (`up -> ..`, `home -> ~`) would index
            # everything around it: not followed
            if say is not None:
                say(_printable(rel), f"link to {real}, a folder holding this one: not followed")
            continue
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            _skip(result, say, rel or ".", f"cannot list directory ({exc.strerror})")
            result.unread.append(rel)
            continue
        if rel and any(e.name == NO_MEDIA for e in entries):  # (the folder given: kept)
            continue
        in_library = os.path.basename(directory).lower().endswith(".photoslibrary")
        for entry in entries:
            if entry.name.startswith("."):  # hidden: .thumbnails caches, macOS ._ files
                continue
            if _clutter(entry, in_library):
                continue
            if exclude and (folder := _excluded(entry, rel, exclude)) is not None:
                result.excluded += not folder
                result.excluded_folders += folder
                continue
            added = _visit(entry, rel, stack, linked, result, say, any_name)
            if added and entry.is_symlink():
                file_links.append((result.paths[-1], os.path.realpath(entry.path)))
    _drop_links_to_files_indexed(result, file_links, visited)
    result.paths.sort()
    result.outside = _outermost(r for r in visited if not _within(r, base_real))
    return result


def _within(folder: str, base: str) -> bool:
    """Whether real path ``folder`` is ``base`` or lies inside it."""
    return folder == base or _above(base, folder)


def _outermost(folders) -> list[str]:
    """Of real paths ``folders``, those inside none of the others, sorted."""
    kept: list[str] = []
    for folder in sorted(folders):  # (a folder sorts before what it holds)
        if not any(_within(folder, k) for k in kept):
            kept.append(folder)
    return kept


def under_copies(rel: str) -> bool:
    """Whether ``rel`` (posix, under the base) lies in a folder of copies scan passes over
    by its name (an index made before scan passed over them holds such rows)."""
    folders = rel.split("/")[:-1]
    for i, name in enumerate(folders):
        low = name.lower()
        if low in CLUTTER_DIRS:
            return True
        inner = folders[i + 1].lower() if i + 1 < len(folders) else None
        if low.endswith(".photoslibrary") and inner not in (None, *PHOTOS_LIBRARY_ORIGINALS):
            return True
    return False


def _excluded(entry: os.DirEntry, rel: str, exclude: Exclusions) -> bool | None:
    """None where ``entry`` is not left out, else whether it is a folder."""
    folder = _is_folder(entry)
    child = f"{rel}/{entry.name}" if rel else entry.name
    return folder if exclude.excludes(child, folder) else None


def _clutter(entry: os.DirEntry, in_library: bool) -> bool:
    """Whether ``entry`` is a folder of copies (CLUTTER_DIRS, a Photos library's previews)."""
    name = entry.name.lower()
    if name not in CLUTTER_DIRS and not in_library:
        return False
    return _is_folder(entry) and (name in CLUTTER_DIRS or name not in PHOTOS_LIBRARY_ORIGINALS)


def _is_folder(entry: os.DirEntry) -> bool:
    """Whether ``entry`` is a folder (or a link to one); False where that cannot be told
    (said where the walk stats it)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _drop_links_to_files_indexed(
    result: ScanResult, links: list[tuple[str, str]], folders: dict[str, str]
) -> None:
    """A link to an image indexed under its own name in the folder is not indexed again
    (it was a second row of the same picture, found at distance 0 beside it), as a link to
    a folder inside the base is walked under the folder's name."""
    if not links:
        return
    linked = {rel for rel, _ in links}
    indexed = set(result.paths) - linked
    drop = set()
    for rel, real in links:
        folder, name = os.path.split(real)
        where = folders.get(folder)
        if where is not None and (f"{where}/{name}" if where else name) in indexed:
            drop.add(rel)
    if drop:
        result.paths = [p for p in result.paths if p not in drop]


def _visit(
    entry: os.DirEntry,
    rel: str,
    stack: list,
    linked: list,
    result: ScanResult,
    warn: Say | None,
    any_name: bool = False,
) -> bool:
    """Look at one entry; True when it was added to ``result.paths``."""
    child = f"{rel}/{entry.name}" if rel else entry.name
    try:
        st = entry.stat()  # follows symlinks
    except FileNotFoundError:
        if entry.is_symlink() and _named_like_image(entry.name):
            _skip(result, warn, _printable(child), "broken symlink")
        elif entry.is_symlink():
            # a link to a folder on a drive or share not mounted now: what is indexed under
            # it is kept, not removed (an update removed it all, said only as "N removed"),
            # and the link is named, as a folder that cannot be read is
            try:
                target = os.readlink(entry.path)
            except OSError:
                target = "?"
            _skip(result, warn, _printable(child), f"link to {target}, not there now")
            result.unread.append(child)
        return False  # otherwise it vanished between listing and stat: nothing to index
    except OSError as exc:  # (a folder too: one past PATH_MAX was left out without a word)
        _skip(result, warn, _printable(child), f"cannot stat ({exc.strerror})")
        result.unread.append(child)  # a folder or an image we cannot see into
        return False
    if stat.S_ISDIR(st.st_mode):
        # a link to a folder inside the base is indexed under the folder's own name
        (linked if entry.is_symlink() else stack).append((Path(entry.path), child))
        return False
    if not _named_like_image(entry.name):
        result.raw += os.path.splitext(entry.name)[1].lower() in RAW_EXTENSIONS
        return False
    if not stat.S_ISREG(st.st_mode):
        # Opening a FIFO or a device would block or read forever.
        _skip(result, warn, _printable(child), "not a regular file")
        return False
    try:
        child.encode("utf-8")
    except UnicodeEncodeError:
        if not any_name:
            _skip(result, warn, _printable(child), "file name is not UTF-8")
            return False
    result.paths.append(child)
    return True


def kept_unread(base_dir: Path, n: int) -> str:
    """The warning for ``n`` indexed images kept because their folders could not be read."""
    one = n == 1
    return (
        f"{base_dir}: {n} indexed image{'' if one else 's'} in folders that could not be read "
        f"{'is' if one else 'are'} kept as {'it was' if one else 'they were'}"
    )


def raw_files(n: int) -> str:
    """RAW camera files met by a scan, as messages count them."""
    return f"{count(n, 'RAW camera file')} (.CR2, .NEF, .ARW, .DNG ...)"


def _above(folder: str, base: str) -> bool:
    """Whether real path ``folder`` holds real path ``base`` (is one of its ancestors)."""
    return base.startswith(folder.rstrip(os.sep) + os.sep)


def _named_like_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _printable(path: str) -> str:
    """Undecodable bytes (surrogate escapes) shown as \\xNN so the warning stays one line."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _under(base: Path, warn: Warn) -> Say:
    """Warnings name the path as the user gave the folder, as decoding's warnings do."""

    def say(path: str, reason: str) -> None:
        warn(f"{base if path == '.' else base / path}: {reason}")

    return say


def _skip(result: ScanResult, warn: Say | None, path: str, reason: str) -> None:
    result.skipped.append((path, reason))
    if warn:
        warn(path, reason)
