"""Background jobs started from the UI (load, save, analyze, re-project, watch): the UI polls
them each frame and never waits; a failure becomes a one-line message."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


class Task:
    def __init__(
        self,
        name: str,
        fn: Callable[[Task], Any],
        done: Callable[[Any], None],
        on_post: Callable[[Any], None] | None = None,
    ):
        self.name = name
        self.done = done  # called on the UI thread with fn's result
        # A long task's intermediate results: fn calls post(value), the UI thread calls
        # on_post(value) on its next poll.
        self.on_post = on_post
        self.posted: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.cancel = threading.Event()
        self.progress = 0.0  # 0..1, written by fn
        self.note = ""
        self.cancelled = ""  # what the message line says when it was cancelled ("" NAME cancelled)
        self.quiet = False  # cancelled by the viewer itself (a watch of an index left): unsaid
        self.index: Path | None = None  # the index file it writes or follows, if any
        self.folder: Path | None = None  # the folder it analyses, if any
        self.result: Any = None
        self.error: str | None = None
        self._fn = fn
        self._thread = threading.Thread(target=self._run, name=f"task-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.result = self._fn(self)
        except Exception as exc:  # shown in the status bar, never raised into the UI
            self.error = f"{self.name} failed: {exc}"

    def post(self, value: Any) -> None:
        """From fn's thread: hand ``value`` to ``on_post`` on the UI thread."""
        self.posted.put(value)

    @property
    def finished(self) -> bool:
        return not self._thread.is_alive()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
