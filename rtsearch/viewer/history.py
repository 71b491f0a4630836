"""Back and forward through the queries, as in a browser: the pictures of the collection
that were the query (a random one, a result clicked or chosen with the keys), in order.

Backspace or Alt+Left (the mouse's back button, the toolbar's left arrow) goes back to the
query before; Shift+Backspace or Alt+Right (the forward button, the right arrow) forward
again. From a live source, back goes to the last picture of the collection searched. A
new query after a step back drops the steps ahead, as a browser does. Files are kept,
not rows: an index swapped in (--watch, a re-projection, one loaded) keeps what it still
holds, and a picture it no longer holds is passed over.

Between runs the history is kept with the index shown (memory.py), its pictures relative
to the index's image folder (``kept``): the next run that shows that index starts on the
query shown last, with the steps back to it (``recalled``; a restart showed a random
picture, and back had nothing before it)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rtsearch.errors import joined
from rtsearch.viewer import keyboard, memory

if TYPE_CHECKING:
    from collections.abc import Callable

    from rtsearch.session import SearchSession
    from rtsearch.viewer.app import ViewerApp
    from rtsearch.viewer.mouse import Click

ACTIONS = ("back", "forward")
MAX_ENTRIES = 500  # the oldest go first
NONE_BEFORE = "nothing to go back to: the first query of the collection"
NONE_AFTER = "nothing to go forward to: the last query"
LOST = "the index loaded holds none of the pictures that were the query that way"
# (from a live source before any picture of the collection: "the first query" was none)
NONE_YET = "no picture of the collection has been the query yet"


@dataclass
class History:
    files: list[Path] = field(default_factory=list)
    at: int = -1  # the entry shown, or shown last while a live source runs
    # a step's picture on its way: the worker's pictures before it are not new queries
    going: Path | None = None
    # a new query asked for and not shown yet (a click, R): a step back from now goes to
    # the picture on show, not past it (a slow picture clicked, then Backspace at once,
    # went two back)
    asked: bool = False
    skip: Path | None = None  # a picture on its way that is no query (a double-click's)
    # the steps open (open_steps) and what they were worked out for
    steps: tuple[bool, bool] = (False, False)
    steps_for: tuple = ()

    def arrived(self, file: Path) -> None:
        """A picture of the collection is the query on show."""
        if file == self.skip:
            self.skip = None
            return
        if self.going is not None:
            if file == self.going:
                self.going = None
            return
        self.asked = False
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
        """Whether the query ``shown`` is the entry at: from a live picture, or with a new
        query on its way, back starts at the entry itself, the last of the collection's
        pictures shown (a step on its way is where it goes)."""
        return self.going is not None or (not self.asked and shown == self.files[self.at])

    def asked_new(self) -> None:
        """A new query was asked for (R, a result clicked): not a step's picture; a step
        back or forward, or a double-click, sets these again after."""
        self.going, self.asked, self.skip = None, True, None

    def went(self, at: int) -> None:
        """A step to entry ``at`` was asked of the worker."""
        self.at, self.going, self.asked = at, self.files[at], False

    def moved(self, moves: dict[Path, Path]) -> None:
        """Pictures moved within the folder (old file -> new file): their entries follow."""
        self.files = [moves.get(f, f) for f in self.files]
        self.going = moves.get(self.going, self.going) if self.going else None
        self.skip = moves.get(self.skip, self.skip) if self.skip else None

    def snapshot(self) -> tuple[list[Path], int]:
        return list(self.files), self.at

    def restore(self, kept: tuple[list[Path], int]) -> None:
        self.files, self.at = list(kept[0]), kept[1]
        self.asked = False


def kept(h: History, base_dir: Path) -> tuple[tuple[str, ...], int] | None:
    """What of ``h`` is kept between runs: its pictures under ``base_dir`` (the index's
    image folder; a history spans the indexes loaded), relative to it, as many round the
    entry shown as memory.HISTORY_BYTES hold, and that entry's place. None when there is
    none."""
    names, at = [], -1
    for i, file in enumerate(h.files):
        try:
            names.append(file.relative_to(base_dir).as_posix())
        except ValueError:  # (another index's picture)
            continue
        at = len(names) - 1 if i <= h.at else at
    return None if at < 0 else memory.fit(names, at)


def recalled(names: tuple[str, ...], at: int, session: SearchSession):
    """The history ``kept`` for ``session``'s index, and the row of the query to start on:
    the one shown last, else the nearest before it that the index and the folder still
    hold (None: none is, a random picture then)."""
    h = History(files=[session.base_dir / name for name in names], at=at)
    for i in range(at, -1, -1):
        row = session.row_at(h.files[i])
        if row is not None and os.path.isfile(h.files[i]):
            h.at = i
            return h, row
    return h, None


def open_steps(app: ViewerApp) -> tuple[bool, bool]:
    """Whether back and forward have a picture of the index loaded to go to (the arrows
    are greyed where not, and in the grab mode, where they do nothing); worked out again
    only when the history, the query or the index change."""
    h, session, pub = app.history, app.session, app.published
    if app.grab_mode or session is None:
        return False, False
    shown = pub.file if pub is not None else None
    # (the same entries compare by identity: quick)
    now = (session, shown, h.at, h.going, h.asked, tuple(h.files))
    if now != h.steps_for:
        back, forward = (h.target(by, shown, session.row_at) is not None for by in (-1, 1))
        h.steps, h.steps_for = (back, forward), now
    return h.steps


def perform(app: ViewerApp, action: str) -> None:
    session, pub = app.session, app.published
    if session is None:
        return
    shown = pub.file if pub is not None else None  # (a collection's picture: random only)
    by = -1 if action == "back" else 1
    found = app.history.target(by, shown, session.row_at)
    if found is None:
        lost = app.history.can_step(shown)[by > 0]  # there were entries, of another index
        note = LOST if lost else NONE_BEFORE if by < 0 else NONE_AFTER
        if not app.history.files:
            note = f"nothing to go {'back' if by < 0 else 'forward'} to: {NONE_YET}"
        said = pub.message if pub is not None else ""  # (the query's path stays in sight)
        # (on one line: the message line escapes a newline, a file name's one too)
        app.message = joined(said, note)
        return
    at, row = found
    left = app.history.going or shown  # (a step on its way: its picture is the one left)
    app.query_row(row)
    app.history.went(at)
    keyboard.to_top(app)  # (as a new query from the keys: from the top, the frame on the first)
    if by < 0 and app.selected is not None and left is not None:
        app.reframe = (at, left)  # (then on the result it came from: keyboard.reframe)


def undo_click(app: ViewerApp, click: Click) -> None:
    """A double-click's first press made its result the query, and the second opens it:
    the query goes back to what it was, a picture of the collection or the live source
    (the worker keeps it open a moment for this), and the history to what it was before
    the press: the picture opened was no query of its own, and no step ahead is lost."""
    h, session, clicked = app.history, app.session, click.hit.file if click.hit else None
    if click.before is not None:  # (said as it was: a random draw, or one asked for)
        app.query_row(click.before, asked=click.asked)
    elif click.live:
        app.resume_live()
    h.restore(click.history)
    pub = app.published
    if pub is None or pub.file != clicked:
        h.skip = clicked  # (its picture is still on its way)
    rows = len(session.index.paths) if session is not None else 0
    if click.before is not None and session is not None and 0 <= click.before < rows:
        h.going = session.file_of(click.before)
