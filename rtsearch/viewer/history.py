"""Back and forward through the queries, as in a browser: the pictures of the collection
that were the query (a random one, a result clicked or chosen with the keys), in order.

Backspace or Alt+Left (the mouse's back button, the toolbar's left arrow) goes back to the
query before; Shift+Backspace or Alt+Right (the forward button, the right arrow) forward
again. From a live source, back goes to the last picture of the collection searched. A
new query after a step back drops the steps ahead, as a browser does. Files are kept,
not rows: an index swapped in (--watch, a re-projection, one loaded) keeps what it still
holds, and a picture it no longer holds is passed over."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from rtsearch.viewer.app import ViewerApp

ACTIONS = ("back", "forward")
MAX_ENTRIES = 500  # the oldest go first
NONE_BEFORE = "no query before this one: R, or a result clicked, makes one"
NONE_AFTER = "no query after this one"
LOST = "the index loaded holds none of the pictures that were the query that way"


@dataclass
class History:
    files: list[Path] = field(default_factory=list)
    at: int = -1  # the entry shown, or shown last while a live source runs
    # a step's picture on its way: the worker's pictures before it are not new queries
    going: Path | None = None

    def arrived(self, file: Path) -> None:
        """A picture of the collection is the query on show."""
        if self.going is not None:
            if file == self.going:
                self.going = None
            return
        if self.at >= 0 and self.files[self.at] == file:
            return  # (the same shown again: more results, another index)
        del self.files[self.at + 1 :]
        self.files.append(file)
        del self.files[:-MAX_ENTRIES]
        self.at = len(self.files) - 1

    def target(self, by: int, shown: Path | None, row_of: Callable[[Path], int | None]):
        """The entry a step ``by`` (-1 back, 1 forward) goes to from the query ``shown``
        (None: a live picture), as (its place, its row in the index): entries the index
        has no row for are passed over. None where there is none."""
        if self.at < 0:
            return None
        at = self.at if by < 0 and not self._here(shown) else self.at + by
        while 0 <= at < len(self.files):
            row = row_of(self.files[at])
            if row is not None:
                return at, row
            at += by
        return None

    def can_step(self, shown: Path | None) -> tuple[bool, bool]:
        """Whether there are entries to go back and forward to from the query ``shown``
        (as ``target``; an entry the index lost may make one a step to nothing)."""
        if self.at < 0:
            return False, False
        return self.at > 0 or not self._here(shown), self.at < len(self.files) - 1

    def _here(self, shown: Path | None) -> bool:
        """Whether the query ``shown`` is the entry at: from a live picture, back starts
        at the entry itself, the last of the collection's pictures shown (a step on its way
        is where it goes)."""
        return self.going is not None or shown == self.files[self.at]

    def went(self, at: int) -> None:
        """A step to entry ``at`` was asked of the worker."""
        self.at = at
        self.going = self.files[at]

    def back_from_click(self, clicked: Path, before: Path) -> None:
        """A double-click's first press made ``clicked`` the query, and the second opens it
        and goes back to ``before``: ``clicked`` was never a query of its own (whether or not
        its picture was shown yet)."""
        if self.at > 0 and self.files[self.at] == clicked and self.files[self.at - 1] == before:
            del self.files[self.at :]
            self.at -= 1
        if self.at >= 0 and self.files[self.at] == before:
            self.going = before


def perform(app: ViewerApp, action: str) -> None:
    session, pub = app.session, app.published
    if session is None:
        return
    shown = pub.file if pub is not None and pub.source == "random" else None
    by = -1 if action == "back" else 1
    found = app.history.target(by, shown, session.row_at)
    if found is None:
        lost = app.history.can_step(shown)[by > 0]  # there were entries, of another index
        app.message = LOST if lost else NONE_BEFORE if by < 0 else NONE_AFTER
        return
    at, row = found
    app.query_row(row)
    app.history.went(at)


def back_from_click(app: ViewerApp, clicked: Path, before_row: int) -> None:
    """See History.back_from_click; ``before_row`` is asked of the worker."""
    session = app.session
    app.query_row(before_row)
    if session is not None and 0 <= before_row < len(session.index.paths):
        before = session.base_dir / session.index.paths[before_row]
        app.history.back_from_click(clicked, before)
