"""Folders and files a user leaves out of an index (`analyze --exclude`), by glob pattern.

A pattern without a slash is a name, matched at any depth (``Backup``, ``*.png``); one with
a slash inside is a path from the folder analysed (``2019/raw``, ``phone/*/cache``), ``**``
standing for any number of folders; a leading slash keeps a name to the folder's own top
level (``/Backup``), a trailing one to folders. ``*``, ``?`` and ``[...]`` never cross a
slash. Matching ignores case (a NAS share's ``backup`` and ``Backup`` are one folder to its
users). A folder matched is not walked at all. A path given as one (absolute, or from the
current folder: ``photos/Backup`` for ``analyze photos``) is stored as the pattern of that
one place.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from rtsearch.errors import WINDOWS, RtsearchError


@dataclass(frozen=True)
class Pattern:
    text: str  # as stored: posix, relative to the folder analysed
    regex: re.Pattern[str]
    folders_only: bool
    anywhere: bool  # a name (no slash): matched against each entry's own name

    def matches(self, rel: str, folder: bool) -> bool:
        """Whether the entry at ``rel`` (posix, under the base) is this pattern's."""
        if self.folders_only and not folder:
            return False
        return self.regex.fullmatch(rel.rpartition("/")[2] if self.anywhere else rel) is not None


@dataclass
class Exclusions:
    """The patterns of one analysis; ``used`` collects those that left something out."""

    patterns: tuple[Pattern, ...] = ()
    used: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, texts: tuple[str, ...] | list[str]) -> Exclusions:
        return cls(tuple(compile_pattern(t) for t in texts))

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(p.text for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def excludes(self, rel: str, folder: bool) -> bool:
        """Whether the entry at ``rel`` itself is left out (the walk asks of each entry it
        meets, so a folder's contents are never asked about). Every pattern matching it
        counts as used (``*.jpg`` and ``*.JPG`` both leave out ``a.JPG``)."""
        matched = [p.text for p in self.patterns if p.matches(rel, folder)]
        self.used.update(matched)
        return bool(matched)

    def hides(self, rel: str) -> bool:
        """Whether the file at ``rel`` is left out, by its own name or one of its folders'
        (a row of an index made before the pattern was given)."""
        parts = rel.split("/")
        return any(
            p.matches("/".join(parts[: i + 1]), i < len(parts) - 1)
            for i in range(len(parts))
            for p in self.patterns
        )

    def unused(self) -> list[str]:
        return [t for t in self.texts if t not in self.used]


def quoted(text: str) -> str:
    """A pattern as messages write it: in single quotes, as typed (no escaped backslashes)."""
    return f"'{text}'"


def normalise(text: str, base_dir: Path | None = None) -> str:
    """``text`` as stored: no ``.`` folders or leading ``./`` (which keeps a name to the top
    level, as ``/``); a path given as one, absolute or from the current folder, as the
    pattern of that place in ``base_dir``. Raises RtsearchError naming the pattern."""
    given = text.strip()
    if WINDOWS:  # (elsewhere a backslash is a character of a name)
        given = given.replace("\\", "/")
    if given.startswith("~"):
        given = os.path.expanduser(given)
    if base_dir is not None and (_absolute(given) or _typed_from_here(given, base_dir)):
        given = _place(given, base_dir, text)
        compile_pattern(given, text)
        return given
    if base_dir is not None and (rest := _past_the_folder(given, base_dir)) is not None:
        given = rest if "/" in rest.rstrip("/") else "/" + rest  # (its top level)
    top = given.startswith(("/", "./"))  # (a leading / that is no place on this machine)
    folders_only = given.endswith("/")
    parts = [part for part in given.strip("/").split("/") if part != "."]
    if not any(parts):
        raise RtsearchError(f"--exclude {quoted(text)}: an empty pattern would leave nothing out")
    if ".." in parts:
        raise RtsearchError(f"--exclude {quoted(text)}: '..' cannot name a place inside the folder")
    given = "/" * (top and len(parts) == 1) + "/".join(parts) + "/" * folders_only
    compile_pattern(given, text)  # (its errors, here, before any work)
    return given


def compile_pattern(text: str, given: str | None = None) -> Pattern:
    """The stored pattern ``text`` ready to match; errors name it as ``given``."""
    given = text if given is None else given
    folders_only = text.endswith("/")
    top = text.startswith("/")
    parts = text.strip("/").split("/")
    anywhere = len(parts) == 1 and parts[0] != "**" and not top
    pieces = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            pieces.append(".*" if last else "(?:[^/]+/)*")
            continue
        pieces.append(_name_regex(part, given) + ("" if last else "/"))
    try:
        regex = re.compile("".join(pieces), re.IGNORECASE | re.DOTALL)
    except re.error as exc:
        raise RtsearchError(f"--exclude {quoted(given)}: not a pattern ({exc})") from None
    return Pattern(text, regex, folders_only, anywhere)


def _name_regex(part: str, text: str) -> str:
    """One name's glob as a regex: ``*`` and ``?`` within the name, ``[...]`` a class
    (``[!...]`` its complement), a ``[`` without its ``]`` the character itself."""
    if not part:
        raise RtsearchError(f"--exclude {quoted(text)}: an empty name between two slashes")
    out, i = [], 0
    while i < len(part):
        c = part[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and (end := part.find("]", i + 2 + (part[i + 1 : i + 2] == "!"))) > 0:
            negate = part[i + 1] == "!"
            body = part[i + 1 + negate : end]
            body = body.replace("\\", "\\\\").replace("[", "\\[")
            out.append("[" + ("^" if negate else "\\" if body.startswith("^") else "") + body + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _typed_from_here(given: str, base_dir: Path) -> bool:
    """Whether ``given`` is a path from the current folder into the one analysed (as a
    shell completes it: ``photos/Backup`` for ``analyze photos``), not a pattern: it has a
    slash, no wildcard, names no place in the folder and one here, inside the folder."""
    if "/" not in given.rstrip("/") or re.search(r"[*?\[]", given):
        return False
    if given.startswith("/") or (Path(base_dir) / given).exists():
        return False
    here = Path(given)
    return here.exists() and Path(base_dir).resolve() in here.resolve().parents


def _past_the_folder(given: str, base_dir: Path) -> str | None:
    """What follows the folder analysed in ``given``, a pattern written from the current
    folder (``photos/2020/*`` for ``analyze photos``: a wildcard, or a case the disk does
    not have, made it no place to find); None where ``given`` does not start with it or the
    folder holds an entry of that first name (then it is a pattern inside the folder)."""
    try:
        here = os.path.relpath(os.path.abspath(base_dir)).replace(os.sep, "/")
    except ValueError:  # (Windows: on another drive than the current folder)
        return None
    if here == "." or not given.startswith(here + "/"):
        return None
    rest = given[len(here) + 1 :]
    first = rest.split("/")[0]
    if (
        not rest.strip("/")
        or first in ("..", ".")
        or (Path(base_dir) / given.split("/")[0]).exists()
    ):
        return None
    return rest


def _absolute(given: str) -> bool:
    """A path of this machine: C:/..., or /... where its first folder is there (``/Backup``
    naming nothing at the root is a pattern kept to the top level)."""
    if re.match(r"[A-Za-z]:/", given):
        return True
    first = given.lstrip("/").split("/")[0]
    return given.startswith("/") and bool(first) and os.path.exists("/" + first)


def _place(given: str, base_dir: Path, text: str) -> str:
    """The pattern of the one place ``given`` names inside ``base_dir``."""
    folders_only = given.endswith("/")
    target = os.path.abspath(given)
    for base in (os.path.abspath(base_dir), os.path.realpath(base_dir)):
        for there in (target, os.path.realpath(target)):
            try:
                rel = os.path.relpath(there, base).replace(os.sep, "/")
            except ValueError:  # (Windows: another drive)
                continue
            if rel == ".":
                raise RtsearchError(f"--exclude {quoted(text)}: is the folder analysed itself")
            if not rel.startswith("../") and rel != "..":
                anchored = rel if "/" in rel else "/" + rel  # (a name alone: its top level)
                return anchored + ("/" if folders_only else "")
    raise RtsearchError(f"--exclude {quoted(text)}: not inside {base_dir}")
