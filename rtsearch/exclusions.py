"""Folders and files a user leaves out of an index (`analyze --exclude`), by glob pattern.

A pattern without a slash is a name, matched at any depth (``Backup``, ``*.png``); one with
a slash is a path from the folder analysed (``2019/raw``, ``phone/*/cache``), ``**``
standing for any number of folders; a trailing slash matches folders only. ``*``, ``?`` and
``[...]`` never cross a slash. Matching ignores case (a NAS share's ``backup`` and
``Backup`` are one folder to its users). A folder matched is not walked at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

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
        meets, so a folder's contents are never asked about)."""
        for p in self.patterns:
            if p.matches(rel, folder):
                self.used.add(p.text)
                return True
        return False

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


def normalise(text: str, base_dir: Path | None = None) -> str:
    """``text`` as stored: backslashes as slashes, no leading ``./``; an absolute path
    inside ``base_dir`` made relative to it. Raises RtsearchError naming the pattern."""
    given = text.strip()
    if WINDOWS:  # (elsewhere a backslash is a character of a name)
        given = given.replace("\\", "/")
    if base_dir is not None and (_absolute(given) or _typed_from_here(given, base_dir)):
        folders_only = given.endswith("/")
        given = _under(Path(given).absolute().as_posix(), base_dir, text)
        given += "/" if folders_only else ""
    while given.startswith("./"):
        given = given[2:]
    if not given or given in (".", "/"):
        raise RtsearchError(f"--exclude {text!r}: an empty pattern would leave nothing out")
    if _absolute(given):
        raise RtsearchError(f"--exclude {text!r}: give a path inside the folder analysed")
    if ".." in PurePosixPath(given).parts:
        raise RtsearchError(f"--exclude {text!r}: '..' cannot name a place inside the folder")
    compile_pattern(given)  # (its errors, here, before any work)
    return given


def compile_pattern(text: str) -> Pattern:
    folders_only = text.endswith("/")
    body = text.rstrip("/")
    parts = body.split("/")
    anywhere = len(parts) == 1 and parts[0] != "**"
    pieces = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            pieces.append(".*" if last else "(?:[^/]+/)*")
            continue
        pieces.append(_name_regex(part, text) + ("" if last else "/"))
    try:
        regex = re.compile("".join(pieces), re.IGNORECASE | re.DOTALL)
    except re.error as exc:
        raise RtsearchError(f"--exclude {text!r}: not a pattern ({exc})") from None
    return Pattern(text, regex, folders_only, anywhere)


def _name_regex(part: str, text: str) -> str:
    """One name's glob as a regex: ``*`` and ``?`` within the name, ``[...]`` a class
    (``[!...]`` its complement), a ``[`` without its ``]`` the character itself."""
    if not part:
        raise RtsearchError(f"--exclude {text!r}: an empty name between two slashes")
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
    shell completes it: ``photos/Backup`` for ``analyze photos``), not a pattern."""
    if re.search(r"[*?\[]", given) or (Path(base_dir) / given).exists():
        return False
    here = Path(given)
    return here.exists() and Path(base_dir).resolve() in here.resolve().parents


def _absolute(given: str) -> bool:
    return given.startswith("/") or bool(re.match(r"[A-Za-z]:/", given))


def _under(given: str, base_dir: Path, text: str) -> str:
    for base in (Path(base_dir).absolute(), Path(base_dir).resolve()):
        try:
            rel = PurePosixPath(given).relative_to(base.as_posix()).as_posix()
        except ValueError:
            continue
        if rel == ".":
            raise RtsearchError(f"--exclude {text!r}: is the folder analysed itself")
        return rel
    raise RtsearchError(f"--exclude {text!r}: not inside {base_dir}")
