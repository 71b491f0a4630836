"""The viewer's worker thread: newest frame -> features -> projection -> kNN -> thumbnails.

The UI talks to it only through ``send`` (a queue of commands) and ``latest()`` (one
lock-protected slot holding an immutable ``Published``); it never calls Dear PyGui.

A live source's picture that looks the same as the last one searched is not searched again:
a still screen, a paused scene in a video or a camera on a still scene costs a grab and a
comparison, not an inference, and the results do not flicker with sensor noise. Changing k
or the index searches the last picture again instead, paused or still.

A live source's picture has its plain borders trimmed before it is searched (``trim``,
rtsearch/borders.py): the page around a picture grabbed loosely, a video's black bars. The
query is shown whole, the part searched outlined (``Published.searched``): a query texture
of the trimmed part's size was made anew whenever that size changed, and Dear PyGui keeps
each raw texture's memory (1.3 MB each here: 67 MB in a minute of video).
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import sys
import threading
import time
from concurrent.futures import ALL_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np

from rtsearch.borders import is_plain, trimmed_views
from rtsearch.decode import RGBImage, resize_to
from rtsearch.errors import Problem, RtsearchError, command, count
from rtsearch.extractor import cores
from rtsearch.moves import same_stat
from rtsearch.scan import is_gone
from rtsearch.session import (
    Result,
    SearchSession,
    nearer_of,
    own_folder_note,
    replaced,
    same_collection,
    same_path,
)
from rtsearch.sources import PASSED_OVER, UNREAD_ALL, Frame, Geometry, RandomSource, Source
from rtsearch.thumbs import Thumb, ThumbCache, placeholder, stand_in
from rtsearch.viewer import layout
from rtsearch.viewer.tasks import Task

# The query picture is shown from a raw texture of its own size, re-uploaded every frame: it is
# shrunk to the header's height (never enlarged; at most 2:1 wide, and at most this many
# texels: a 16:9 frame in a 480 px header is 739x415), so a 4:3 one in the default 320 px
# header uploads 427x320 a frame rather than a 512x384 tile, and a wide one or a taller
# header is not drawn enlarged from 384 px.
QUERY_MAX_TEXELS = 640 * 480
# the random source decodes a picture no smaller than the tallest header both ways (JPEGs
# are decoded reduced: at the model's 224 px a 640x480 one came half size, enlarged 1.3x)
RANDOM_MIN_SIZE = (layout.HEADER_RANGE[1], layout.HEADER_RANGE[1])
# Result pictures are fitted to this box (2:1: a 16:9 or 3:2 picture fills its row's height
# too; each keeps only its own pixels), enough for rows up to TALL_ABOVE (the default 232 px
# rows show 224 px pictures 1.04x) ...
THUMB_BOX = (448, 224)
# ... and rows taller than that (the thumb height slider goes to 420) take them fitted to
# this one instead, so a 420 px row does not show a 224 px picture enlarged 1.9x. They hold
# 706 KB for a 4:3 picture against 201 KB, so they are decoded only for such rows, and the
# cache keeps fewer: enough for the most results a query shows (100), and some.
TALL_BOX = (840, 420)
TALL_ABOVE = THUMB_BOX[1] * 1.05  # rows taller take TALL_BOX; the default 232 px ones do not
CACHED = {THUMB_BOX: 300, TALL_BOX: 110}
# A live source that gives no new picture for this long shows 0 queries/s, not its last rate.
IDLE_S = 1.0
UNCHANGED = "the picture has not changed: these results are current"
# A live picture of one colour all over (a black frame between two scenes, an empty part of
# the screen; borders.is_plain) is not searched: its neighbours are whatever lies nearest to
# nothing, and a video's fade through black flashed a grid of them between two scenes.
PLAIN = "a plain picture (one colour all over): nothing to search"
PLAIN_KEPT = f"{PLAIN}; the picture before it and its results stay"
# ... the picture before it: the last one that stood still, if it did within this many
# seconds (a fade through black searched ever darker frames on its way: the results of one
# 7% bright stayed through the black), else the last one searched
STEADY_S = 3.0
# ... and it stood still once its results had shown this long unchanged (a fade's frame
# grabbed twice, or a test's, counted as one that stood still)
STILL_S = 0.2
# A new picture's results wait this long for their pictures to decode; those not decoded by
# then show as dark tiles (LOADING_GREY), filled in every THUMB_REFRESH_S as they come: 20
# results from 4K PNGs (170 ms a decode) held them back 2 s, the last results showing on.
THUMB_WAIT_S = 0.1
THUMB_REFRESH_S = 0.25
# Meanwhile a live source is looked at this often: a new picture that stands still from one
# look to the next (a page scrolled on to another photo) is searched without waiting for
# them; one that keeps changing (a video) waits, so that its results show whole, but no
# longer than FILL_WAIT_S after they showed (decodes slowed by busy cores or a slow disk
# held a video's picture still for 5-10 s).
FILL_LOOK_S = 0.1
FILL_WAIT_S = 1.0
# a live source a clicked result took the place of is kept open this long: a double-click
# (which opens the result) takes it back, rather than leave that result the query
PARK_S = 1.0
# A live picture that stands still (the source repeats it: a page, a paused video, a camera
# on a still scene) has its nearest results verified as `query` verifies them (ORB keypoints
# agreeing on one similarity, rtsearch/verify.py), on the decoders' pool, and shown again so
# ranked: over one thumbnail of a grid with its neighbours' edges in the rectangle, the
# source came first 9-10 times in 12 live, 12 in 12 verified. It begins once the picture
# has stood still this long and its results' pictures are all shown; each candidate's
# keypoints are read once, on the pool (a decode), then matched (~0.5 ms a candidate).
VERIFY_AFTER_S = 0.3
VERIFY_NICER = 19  # ... read on one thread, as nice as a thread gets
# A screen grab whose rectangle takes in the viewer's own window changes with every search
# (the viewer shows what it grabs, its figures, its results): searched as fast as it could
# be, 30 times a second, a core, it is searched this often while the rectangle is there.
MIRROR_QPS = 2.0
LOADING_GREY = 52  # (a picture that cannot be read is placeholder's lighter grey)
# "Looks the same": both pictures shrunk to SIGNATURE (w, h) by area averaging differ by at
# most STILL_LEVELS (of 255) in every cell and channel. Measured on a 640x480 photo: camera
# noise of sigma 3-5 and JPEG re-compression at quality 80 move a cell by at most 2; a 4x4
# square inverted anywhere, or the whole picture 3 levels brighter, by 4-5 or more.
SIGNATURE = (32, 24)
STILL_LEVELS = 2
# The worker and its thumbnail decoders run this much nicer than the process: when they
# compete with the render thread and the GL rasteriser for the cores, the frame goes first.
# Measured with the video source at 30 queries/s: UI p99 lower in 7 of 8 pairs of 1000
# frames (median -1.4 ms), same queries/s and latency. The price, with two busy programs
# holding both cores: about 20 queries/s instead of 28. Mild, so that they cannot starve it.
NICER = 5


def lower_priority(step: int = NICER) -> None:
    """Make the calling thread ``step`` nicer than the process's main thread (Linux sets
    nice per thread; elsewhere, and where it is refused, nothing changes). Than the main
    thread's, not its own: a thread inherits the nice of the thread that starts it, and the
    decoders, started by the worker, ran at twice NICER (10: with two busy programs on the
    cores they got a tenth of one, and a video's search waited seconds for its results'
    pictures)."""
    if not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        nicer = min(19, os.getpriority(os.PRIO_PROCESS, os.getpid()) + step)
        if nicer > os.getpriority(os.PRIO_PROCESS, tid):  # (never less nice: not allowed)
            os.setpriority(os.PRIO_PROCESS, tid, nicer)


def box_for_rows(row_h: float) -> tuple[int, int]:
    """The box result pictures are fitted to for result rows ``row_h`` pixels tall."""
    return TALL_BOX if row_h > TALL_ABOVE else THUMB_BOX


def query_picture(image: RGBImage, header_h: int) -> Thumb:
    """The query as the viewer shows it under a header ``header_h`` tall (see
    QUERY_MAX_TEXELS)."""
    h, w = image.shape[:2]
    # (a header taller than the sliders' highest, at a UI scale above 1, takes more)
    most = QUERY_MAX_TEXELS * max(1.0, header_h / layout.HEADER_RANGE[1]) ** 2
    scale = min(1.0, header_h / h, 2 * header_h / w, math.sqrt(most / (h * w)))
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    if size[0] * size[1] > most:  # rounded up past the bound
        size = (int(h * scale), int(w * scale))
    picture = resize_to(image, size) if size != (h, w) else image.copy()
    return Thumb(picture, size[1], size[0])


def same_row(old: SearchSession, new: SearchSession, row: int | None) -> int | None:
    """The row of ``new``'s index that holds the picture at ``row`` of ``old``'s, if any:
    only where ``new`` is a version of ``old``'s collection (its file, or its folder). In
    another collection a picture of the same name is another picture."""
    if row is None or not 0 <= row < len(old.index.paths):
        return None
    if not same_collection(old, new):
        return None
    paths = new.index.paths
    if paths is old.index.paths or paths == old.index.paths:
        return row
    path = old.index.paths[row]
    found = new.index.row_of(path)
    if found is None:  # moved within the folder (moves.moved_rows): its name, size and time
        name, size, mtime = PurePosixPath(path).name, old.index.sizes[row], old.index.mtimes[row]
        found = next(
            (
                i
                for i, p in enumerate(paths)
                if PurePosixPath(p).name == name
                and same_stat(size, mtime, new.index.sizes[i], new.index.mtimes[i])
            ),
            None,
        )
    return found


GREY_TILES = "cannot show "  # how a message of results that cannot be shown begins
# ... and one of results whose files are not those indexed (replaced under their names:
# the tile shows the new picture, the distance is the old one's)
NOT_INDEXED = "not the picture indexed (another size now): "


def is_problem(message: str) -> bool:
    """Whether a published ``message`` tells of pictures of the index that cannot be shown
    or read: results as grey tiles or not the pictures indexed, random draws passed over
    (sources.RandomSource)."""
    return (
        message.startswith((GREY_TILES, NOT_INDEXED))
        or PASSED_OVER in message
        or UNREAD_ALL in message
    )


def candidates(
    session: SearchSession, vector: np.ndarray, others: list[RGBImage], n: int
) -> list[Result]:
    """The ``n`` nearest to a still live picture searched as ``vector``, to be verified;
    where its plain borders were trimmed, the nearest to its ``others`` too (the whole
    picture, and what each layer trimmed left), each row at its nearest distance: a picture
    whose own margins were taken for a page's (a document, a logo on white, played in a
    video, inside its black bars) missed its own file, which those find."""
    wide = session.query_vector(vector, n)
    if not others:
        return wide
    try:
        vectors = session.project(session.features_of(others))
    except Exception:  # (as the search's own: the results stay as they were)
        return wide
    return nearer_of([wide, *(session.query_vector(v, n) for v in vectors)], n)


def random_source(session: SearchSession) -> RandomSource:
    """Random pictures of ``session``'s index, decoded large enough for the header."""
    s = session
    size = tuple(
        max(a, b) for a, b in zip(s.extractor.info.input_size, RANDOM_MIN_SIZE, strict=True)
    )
    return RandomSource(len(s.index.paths), s.file_of, None, size)


def shrunk(bgra: np.ndarray, size: tuple[int, int]) -> RGBImage:
    """A screen grab (BGRA) as an RGB picture of ``size`` (w, h): every k-th pixel first,
    where k leaves at least twice the size, then area averaging (the area filter on a 5K
    screen took 17 ms, 5 ms so), then converted (fewer pixels to convert)."""
    h, w = bgra.shape[:2]
    k = max(1, min(w // (2 * size[0]), h // (2 * size[1])))
    small = cv2.resize(bgra[::k, ::k], size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGRA2RGB)


def signature(image: RGBImage) -> np.ndarray:
    """The picture shrunk to SIGNATURE by area averaging, as int16 (about 0.3-0.7 ms)."""
    return cv2.resize(image, SIGNATURE, interpolation=cv2.INTER_AREA).astype(np.int16)


@dataclass(frozen=True)
class Published:
    """One finished query, as the UI shows it. ``captured``/``finished`` are perf_counter s."""

    seq: int
    source: str
    query: Thumb | None
    captured: float
    finished: float
    row: int | None
    results: tuple[Result, ...]
    thumbs: tuple[Thumb, ...]
    inference_ms: float
    message: str
    # the part of the query searched, as fractions of it (top, bottom, left, right); None:
    # all of it
    searched: tuple[float, float, float, float] | None = None
    pending: int = 0  # result pictures still decoding, shown meanwhile as dark tiles
    file: Path | None = None  # the collection's file the query is (random source only)
    chosen: bool = False  # that file was asked for (a result clicked, back), not drawn
    stored: bool = False  # searched with that file's vector in the index: no model run


class Worker:
    def __init__(
        self,
        session: SearchSession | None,
        k: int = 20,
        max_qps: float = 30.0,
        row_h: float = THUMB_BOX[1],
        header_h: int = layout.HEADER_DEFAULT,
        trim: bool = True,
        verify: bool = True,
    ) -> None:
        self.session = session
        self.trim = trim  # plain borders off live pictures before they are searched
        self.verify = verify  # a live picture's results verified once it stands still
        self.min_interval = 1.0 / max_qps  # a live source gets no more queries than this
        self._max_qps = max_qps  # (min_interval is longer while the grab takes in the window)
        self.k = k
        self.source: Source | None = None
        self.paused = False
        self.commands: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.stop = threading.Event()
        # set by a command or the stop: the pause between two searches ends at once (while
        # the grab takes in the window, that pause is half a second: R waited for it)
        self._wake = threading.Event()
        box = box_for_rows(row_h)
        self.cache = ThumbCache(box, CACHED[box])
        self._decoders = ThreadPoolExecutor(cores(), "rtsearch-thumbs", initializer=lower_priority)
        # (one thread, the nicest: what the window and the searches leave)
        self._verifiers = ThreadPoolExecutor(
            1, "rtsearch-verify", initializer=lower_priority, initargs=(VERIFY_NICER,)
        )
        self._slot: Published | None = None
        self._lock = threading.Lock()
        self._seq = 0
        self._last_query_at = 0.0  # perf_counter
        self._message = ""
        self._last: Frame | None = None  # the last picture searched, for a search again
        self._last_sig: np.ndarray | None = None  # a live picture's signature(), once taken
        self._again = False  # k or the index changed: search the last picture again
        self._unchanged = False  # this poll's picture was the last one searched
        self._repeated = False  # the source has only repeated that picture since
        self._idle_said = False  # _note_idle has published since the last search
        self._plain = False  # the source's picture is plain (not searched) since the last search
        # the last picture that stood still (the source repeated it): (published, frame, when)
        self._steady: tuple[Published, Frame, float] | None = None
        # the results on show whose pictures still decode: (results, tiles, message)
        self._filling: tuple | None = None
        self._filled_at = 0.0  # perf_counter of _fill_in's last publishing
        # meanwhile, a live source's new picture at the last look, (frame, signature), and
        # the one that stood still since, for _next_frame to search (_moved_on)
        self._looked: tuple[Frame, np.ndarray] | None = None
        self._held: Frame | None = None
        # a live source a result clicked took the place of, kept open PARK_S (and since
        # when) for a double-click to take it back (ViewerApp.resume_live)
        self._parked: tuple[Source, float] | None = None
        # the source a paste took the place of, until the clipboard is read, with the last
        # picture searched and its signature: a paste of no picture gives it back
        self._before: tuple[Source, Frame | None, np.ndarray | None] | None = None
        # what a paste that gave the source before it back could not search, for the
        # viewer to say (its message, until the next action): (why, the source given back)
        self.refused: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        # the viewer's --watch (its task: the index file it keeps up to date, and whether it
        # still runs): a result's file gone is its to take out, no update to advise
        self.watching: Task | None = None
        # the last live picture searched, to verify once it stands still: (picture searched,
        # its vector, the session, the results published); then the candidates and the
        # reading of their keypoints on the pool
        self._to_verify: tuple | None = None
        self._verifying: tuple[list[Result], list[Future]] | None = None
        self._rethumb = False  # the box changed: the results on show want new thumbnails
        self.header_h = header_h  # the query is shrunk to this height (query_picture)
        self._requery = False  # the header changed: the query on show wants a new picture
        self._stale = False  # the index changed since the pictures on show were searched
        self._shown_from: tuple = ()  # what the picture on show was taken from (_taken_from)
        self._thread = threading.Thread(target=self._run, name="rtsearch-worker", daemon=True)

    # ------------------------------------------------------------ UI side
    def start(self) -> None:
        self._thread.start()

    def send(self, command: str, value: Any = None) -> None:
        self.commands.put((command, value))
        self._wake.set()

    def latest(self) -> Published | None:
        with self._lock:
            return self._slot

    def join(self, timeout: float = 10.0) -> bool:
        """Stop and wait; True when the thread is gone (inference must not outlive dpg)."""
        self.stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    # ------------------------------------------------------------ worker side
    def _run(self) -> None:
        lower_priority()
        try:
            while not self.stop.is_set():
                self._wake.clear()  # (before the commands are taken: none is missed)
                started = time.perf_counter()
                frame = None
                # the worker must outlive any one bad frame, command or picture (a result
                # it could not stat, as it filled in the grid, ended the thread for good)
                try:
                    asked = self._drain()
                    if self._filling is not None:
                        self._fill_in(asked)
                        if self._filling is not None and not (
                            asked or self._moved_on() or self._waited_long()
                        ):
                            continue  # no new picture searched until these show (_fill_in)
                    self._drop_parked(older_than=PARK_S)
                    if self._rethumb or self._requery:
                        self._publish_again()
                    frame = self._next_frame()
                    if frame is not None:
                        self._query(frame)
                    else:
                        self._note_idle(started)
                        self._verify_still()
                except Exception as exc:
                    self._filling = None  # (not tried again and again)
                    self._message = Problem(f"worker: {exc}")
                    self._publish_message()
                    frame = None
                if frame is not None or self._unchanged:
                    # more queries (or grabs) than a screen shows only take CPU from the UI
                    self._wake.wait(max(0.0, started + self.min_interval - time.perf_counter()))
                else:
                    self._wake.wait(0.01)
        finally:
            self._decoders.shutdown(wait=True, cancel_futures=True)
            self._verifiers.shutdown(wait=True, cancel_futures=True)
            if self.source is not None:
                self.source.close()
            self._drop_parked()
            self._drop_before()

    def _drain(self) -> bool:
        """Apply the commands sent since; whether there were any."""
        applied = False
        while True:
            try:
                command, value = self.commands.get_nowait()
            except queue.Empty:
                return applied
            self._apply(command, value)
            applied = True

    def _fill_in(self, asked: bool) -> None:
        """The pictures of the results on show that were still decoding, put in as they
        come (every THUMB_REFRESH_S). Waited for, no new picture being searched meanwhile,
        until a command comes (``asked``: R, k, a source, pause are taken at once, and the
        pictures are put in as the loop comes round) or a live source's picture changes and
        stands still (``_moved_on``, looked at every FILL_LOOK_S). Given up once other
        results show: those not begun are not decoded."""
        results, tiles, message = self._filling
        with self._lock:
            pub = self._slot
        if pub is None or pub.results is not results:  # other results show now
            self._drop_filling()
            return
        waiting = [t[0] for t in tiles if isinstance(t, tuple) and not t[0].done()]
        if not asked:
            wait(waiting, FILL_LOOK_S if self._live() else THUMB_REFRESH_S, ALL_COMPLETED)
        thumbs, bad, pending = self._tiles(results, tiles)
        if pending == pub.pending and pending:
            return  # nothing new to show
        if pending and time.perf_counter() - self._filled_at < THUMB_REFRESH_S:
            return  # shown with the next ones
        self._filled_at = time.perf_counter()
        self._seq += 1  # only this thread publishes: the slot still holds pub
        with self._lock:
            self._slot = replace(
                pub, seq=self._seq, thumbs=thumbs, message=bad or message, pending=pending
            )
        if not pending:
            self._filling = None

    def _drop_filling(self, keep: frozenset[Path] = frozenset()) -> None:
        """Stop filling in the results on show: their pictures' decodes not begun are
        dropped, but those of files in ``keep`` (the next results': ThumbCache shares them)."""
        if self._filling is not None:
            results, tiles, _ = self._filling
            for r, tile in zip(results, tiles, strict=True):
                if isinstance(tile, tuple) and r.file not in keep:
                    tile[0].cancel()
        self._filling = None

    def _waited_long(self) -> bool:
        """Whether a live source's new picture has waited FILL_WAIT_S for the pictures of
        the results on show: it is searched then, as one that stands still is at once."""
        return self._live() and time.perf_counter() - self._last_query_at > FILL_WAIT_S

    def _live(self) -> bool:
        return not self.paused and self.source is not None and self.source.live

    def _moved_on(self) -> bool:
        """While the results' pictures decode: whether the live source's picture has
        changed from the one searched and stood still since the last look (FILL_LOOK_S
        before); it is then held for ``_next_frame`` to search."""
        if not self._live():
            return False
        assert self.source is not None
        frame = self.source.read()
        if frame is None:
            return False
        sig, looked = signature(frame.image), self._looked
        if self._is_last(frame, sig):
            self._looked = None  # (back to the picture searched)
            return False
        self._looked = (frame, sig)
        if looked is None or not _same(looked[0], looked[1], frame, sig):
            return False
        self._looked, self._held = None, frame
        return True

    def _drop_parked(self, older_than: float = 0.0) -> None:
        parked = self._parked
        if parked is not None and time.perf_counter() - parked[1] >= older_than:
            self._parked = None
            parked[0].close()

    def _drop_before(self) -> None:
        before, self._before = self._before, None
        if before is not None:
            before[0].close()

    def _give_back(self) -> None:
        """The paste on show found no picture: the source before it, with its picture and
        results (still on show), comes back; why is handed to the viewer to say."""
        assert self._before is not None and self.source is not None
        why = self.source.message
        self.source.close()
        (self.source, self._last, self._last_sig), self._before = self._before, None
        self._message = self.source.message
        self._reword(self._message)
        self.refused.put((why, self.source.name))

    def _reword(self, message: str) -> None:
        """What is on show, its picture and results, said anew."""
        with self._lock:
            if self._slot is not None:
                self._seq += 1
                self._slot = replace(self._slot, seq=self._seq, message=message)

    def _apply(self, command: str, value: Any) -> None:
        """One command from the viewer (``commands``), applied by its ``_on_<name>``."""
        getattr(self, f"_on_{command}")(value)

    def _on_source(self, value: Any) -> None:
        keep = getattr(value, "keeps_before", False) and self.source is not None
        if keep and self._before is not None:  # (a paste over one not read yet)
            self.source.close()
        elif keep:
            self._before = (self.source, self._last, self._last_sig)
        else:
            self._drop_before()
            if self.source is not None and self.source is not value:
                self.source.close()
        if self._parked is not None and self._parked[0] is not value:
            self._drop_parked()  # (another source chosen)
        self.source, self.paused = value, False
        self._last, self._last_sig, self._steady = None, None, None
        self._looked = self._held = None
        self._again, self._repeated, self._idle_said = False, False, False
        self._plain = False
        if keep:  # the picture and results before it stay on show while it is read
            self._message = value.message
            self._reword(value.message)
        elif value.message and value.message != self._message:
            # said before its first read, which may take seconds (a camera opening, a
            # clipboard's program): the last source's words stayed meanwhile
            self._message = value.message
            self._publish_message()

    def _on_k(self, value: Any) -> None:
        self.k = int(value)
        self._again = True

    def _on_mirror(self, value: Any) -> None:
        """The screen grab takes in the viewer's window (or no more): fewer grabs a second."""
        self.min_interval = 1.0 / (min(MIRROR_QPS, self._max_qps) if value else self._max_qps)

    def _on_trim(self, value: Any) -> None:
        if bool(value) != self.trim:
            self.trim = bool(value)
            self._again = True

    def _on_rows(self, value: Any) -> None:
        """The result rows' height, in pixels."""
        box = box_for_rows(value)
        if box != self.cache.size:
            self.cache = ThumbCache(box, CACHED[box])
            self._rethumb = True

    def _on_header(self, value: Any) -> None:
        """The query image's height, in pixels."""
        if int(value) != self.header_h:
            self.header_h = int(value)
            self._requery = True

    def _on_pause(self, value: Any) -> None:
        self.paused = bool(value)
        if hasattr(self.source, "set_paused"):
            self.source.set_paused(self.paused)
        with self._lock:  # paused, the picture is not looked at: nothing to claim of it
            pub = self._slot
            if self.paused and pub is not None and pub.message == UNCHANGED:
                self._seq += 1
                self._slot = replace(pub, seq=self._seq, message="")
                self._idle_said = False

    def _on_session(self, value: Any) -> None:
        old, self.session = self.session, value
        self._drop_before()  # (a random source counts the old index's rows)
        self._stale = True  # what is on show came from the index before
        self._steady = None
        if isinstance(self.source, RandomSource):
            # the old source counts rows of the old index: the query keeps its picture
            # at the row that picture has in the new one (a re-projection: the same;
            # --watch: moved by files added or dropped); a picture gone draws another
            last = self.latest()
            self.source = self._random_source()
            row = None if last is None or old is None else same_row(old, value, last.row)
            if row is not None:  # (said as it was: a random draw, or one asked for)
                self.source.trigger(row, fallback=True, asked=last.chosen)
        else:  # any picture can be searched in any index
            self._again = True

    def _on_row(self, value: Any) -> None:
        if self.session is None:
            return
        if not isinstance(self.source, RandomSource):
            live, self.source = self.source, None
            self._on_source(self._random_source())
            if live is not None and live.live:
                # kept open a moment, not closed: a double-click takes it back
                self._parked = (live, time.perf_counter())
            elif live is not None:
                live.close()
        assert isinstance(self.source, RandomSource)
        row, asked = value if isinstance(value, tuple) else (value, True)
        self.source.trigger(int(row), asked=asked)

    def _on_recall(self, value: Any) -> None:
        if not isinstance(self.source, RandomSource):
            return
        self.source.trigger(int(value), fallback=True)  # (the query shown last: gone, another)

    def _on_unpark(self, value: Any) -> None:
        if self._parked is None:
            return
        parked, self._parked = self._parked[0], None
        self._on_source(parked)

    def _on_random(self, value: Any) -> None:
        if self.session is None:
            return
        if isinstance(self.source, RandomSource):
            self.source.trigger()
        else:  # a new random source triggers itself
            self._on_source(self._random_source())

    def _random_source(self) -> RandomSource:
        assert self.session is not None
        return random_source(self.session)

    def _next_frame(self) -> Frame | None:
        """The source's new picture; else the last one again when k or the index changed."""
        frame, self._held = self._held, None
        if not self.paused and self.source is not None:
            frame = frame or self.source.read()
            if self._before is not None and not getattr(self.source, "pending", False):
                if frame is None and getattr(self.source, "failed", False):
                    self._give_back()
                    return None
                self._drop_before()  # (the paste gave a picture, or a video to play)
            if self.source.message != self._message:
                self._message = self.source.message
                if frame is None:
                    self._publish_message()
            self._unchanged = frame is not None and self.source.live and self._looks_same(frame)
            if self._unchanged:
                pub = self.latest()
                # (with its pictures all there: shown again later, none would come)
                shown = pub is not None and pub.query is not None and not pub.pending
                if shown and not self._plain and time.perf_counter() - pub.finished >= STILL_S:
                    self._steady = (pub, self._last, time.perf_counter())  # it stands still
                frame, self._repeated = None, True
            # (live only: a collection's own picture, random or clicked, is searched as stored)
            elif frame is not None and self.source.live and is_plain(frame.image):
                self._show_plain(frame)
                frame, self._unchanged = None, True
        if frame is None and self._again and self._last is not None:
            frame = replace(self._last, captured=time.perf_counter())
        return frame

    def _looks_same(self, frame: Frame) -> bool:
        """Compare with the last picture searched; a new picture's signature is kept for the
        next comparison (it is searched next), so each picture is shrunk once."""
        sig = signature(frame.image)
        if self._is_last(frame, sig):
            return True
        self._last_sig = sig
        return False

    def _is_last(self, frame: Frame, sig: np.ndarray) -> bool:
        """Whether ``frame`` (of signature ``sig``) looks like the last picture searched."""
        last, last_sig = self._last, self._last_sig
        return last is not None and last_sig is not None and _same(last, last_sig, frame, sig)

    def _note_idle(self, now: float) -> None:
        """A live source with nothing new for IDLE_S: say why, when its picture is unchanged;
        once, not every poll."""
        pub = self.latest()
        live = self.source is not None and self.source.live
        if self._idle_said or not live or pub is None or pub.query is None:
            return
        if now - self._last_query_at < IDLE_S:
            return
        self._idle_said = True
        if self._plain and not self._message:
            return  # said by _show_plain: not "these results are current"
        if is_problem(pub.message) and not self._message:
            return  # its results' grey tiles stay said (a still picture's went in a second)
        still = self._repeated and not self.paused and not self._message
        message = UNCHANGED if still else self._message
        with self._lock:
            if self._slot is pub:
                self._seq += 1
                self._slot = replace(pub, seq=self._seq, message=message)

    def _query(self, frame: Frame) -> None:
        # the last picture searched again (k, trim or the index changed) while the source
        # shows a plain one: that is still said
        again = self._last is not None and frame.image is self._last.image
        self._plain = self._plain and again
        self._last = frame
        # a collection's own picture (random, a result clicked), or a picture file pasted,
        # is searched as it is stored
        h, w = frame.image.shape[:2]
        trimmed = frame.row is None and not frame.stored and self.trim
        # trimmed: the whole picture, and what each layer trimmed left, also looked at
        box, others = trimmed_views(frame.image) if trimmed else ((0, h, 0, w), [])
        top, bottom, left, right = box
        picture = frame.image[top:bottom, left:right]
        searched = None
        if (top, bottom, left, right) != (0, h, 0, w):
            searched = (top / h, bottom / h, left / w, right / w)
        self._again, self._repeated, self._idle_said = False, False, False
        results: list[Result] = []
        vector = own = None
        message, infer_ms = self.source.message if self.source else "", 0.0
        message = message or (PLAIN_KEPT if self._plain else "")
        session = self.session
        if session is not None:
            try:
                k = min(self.k, len(session.index.paths))
                start = time.perf_counter()
                # a collection's picture as it was analysed: its row's vector, as `query`
                # searches it (the live model's vector ranked its neighbours otherwise)
                if frame.file is not None and frame.row is not None:
                    own = session.stored_vector(frame.row, frame.file)
                if own is not None:
                    vector = own
                else:
                    vector = session.project(session.features_of([picture]))[0]
                    infer_ms = (time.perf_counter() - start) * 1000.0
                results = session.query_vector(vector, k, exclude=frame.row)
            except Exception as exc:  # a broken model or index must not kill the viewer
                message = Problem(f"query failed: {exc}")
        self._looked = None
        self._drop_verifying()
        found = self._show(frame, searched, results, infer_ms, message, stored=own is not None)
        live = frame.row is None and self.source is not None and self.source.live
        verify = self.verify and live and session is not None and not self._plain and found
        # (verified as searched, and with a margin of its border: Verifier.views)
        seen = (frame.image, box)
        self._to_verify = (seen, vector, session, found, others) if verify else None

    def _show(
        self,
        frame: Frame,
        searched: tuple[float, float, float, float] | None,
        results: list[Result],
        infer_ms: float,
        message: str,
        stored: bool = False,
    ) -> tuple[Result, ...]:
        """Publish ``results`` of ``frame``, their pictures not decoded within THUMB_WAIT_S
        as dark tiles (filled in by _fill_in); the results as published."""
        # the decodes of the results before, not begun, dropped (those of these shared)
        self._drop_filling(frozenset(r.file for r in results))
        tiles = self.cache.start_many([r.file for r in results], self._decoders)
        decoding = [tile for tile in tiles if isinstance(tile, Future)]
        wait(decoding, THUMB_WAIT_S)
        # what shows meanwhile: a dark tile of each picture's shape, from its file's header
        tiles = [
            t if not isinstance(t, Future)
            else t.result() if t.done()
            else (t, stand_in(r.file, self.cache.size, LOADING_GREY))
            for r, t in zip(results, tiles, strict=True)
        ]  # fmt: skip
        thumbs, bad, pending = self._tiles(results, tiles)
        self._last_query_at = time.perf_counter()
        found = tuple(results)
        self._store(frame, searched, found, thumbs, infer_ms, bad or message, pending, stored)
        self._filling = (found, tiles, message) if pending else None  # the rest: _fill_in
        self._filled_at = self._last_query_at
        return found

    def _verify_still(self) -> None:
        """The last live picture searched, standing still: its nearest results verified
        (VERIFY above), then shown so ranked, the query as it is (not a new query: its
        capture time is the search's). Dropped once other results show."""
        if self._to_verify is None:
            return
        picture, vector, session, shown, others = self._to_verify
        pub = self.latest()
        if pub is None or pub.results is not shown or self.session is not session:
            self._to_verify = None  # other results show, or another index
            self._drop_verifying()
            return
        if self._verifying is None:
            still = self._repeated and not self._plain and not self.paused
            if still and time.perf_counter() - pub.finished >= VERIFY_AFTER_S:
                verifier = session.verifier
                wide = candidates(session, vector, others, max(self.k, verifier.candidates))
                reading = [
                    self._verifiers.submit(verifier.keypoints_of_file, r.file)
                    for r in wide[: verifier.candidates]
                ]
                self._verifying = (wide, reading)
            return
        wide, reading = self._verifying
        if not all(f.done() for f in reading):
            return
        self._to_verify = self._verifying = None
        try:
            ranked = session.verifier.rerank(session.verifier.views(*picture), wide)
            ranked = ranked[: len(shown)]
        except Exception:  # (OpenCV's own errors): the results stay as they were
            return
        if self._last is not None:
            self._show(self._last, pub.searched, ranked, pub.inference_ms, pub.message)
            self._last_query_at = pub.finished  # (idle since the search, not since this)

    def _drop_verifying(self) -> None:
        if self._verifying is not None:
            for reading in self._verifying[1]:
                reading.cancel()  # (those begun end, their keypoints kept)
        self._verifying = None

    def _thumbs(self, results: list[Result]) -> tuple[tuple[Thumb, ...], str]:
        tiles = self.cache.get_many([r.file for r in results], self._decoders)
        return self._tiles(results, list(tiles))[:2]

    def _tiles(
        self, results: list[Result], tiles: list[Thumb | Exception | tuple[Future, Thumb]]
    ) -> tuple[tuple[Thumb, ...], str, int]:
        """The results' pictures, what to say of those that cannot be shown, and how many
        still decode (a decoding one comes with the dark tile that shows meanwhile)."""
        thumbs, bad, gone, pending = [], [], [], 0
        for r, tile in zip(results, tiles, strict=True):
            if isinstance(tile, tuple):
                decoding, meanwhile = tile
                if not decoding.done():
                    pending += 1
                    thumbs.append(meanwhile)
                    continue
                tile = decoding.result()
            if isinstance(tile, Exception):
                # the decoder's errors name the file already
                bad.append(str(tile) if isinstance(tile, RtsearchError) else f"{r.file}: {tile}")
                if is_gone(r.file):  # (not one in a folder it may not enter)
                    gone.append(r.path)
                tile = placeholder(self.cache.size[1])
            thumbs.append(tile)
        # (grey tiles are said first; a folder given whose files share the names: said so)
        s = self.session
        changed = [] if bad or s is None else replaced(results, s.index.sizes)
        if changed:
            more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
            again = self._update_hint([r.path for r in changed], changed=True)
            return tuple(thumbs), f"{NOT_INDEXED}{changed[0].file}{more}{again}", pending
        if not bad:
            return tuple(thumbs), "", pending
        more = f" (and {count(len(bad) - 1, 'more grey tile')})" if len(bad) > 1 else ""
        return tuple(thumbs), f"{GREY_TILES}{bad[0]}{more}{self._update_hint(gone)}", pending

    def _update_hint(self, paths: list[str], *, changed: bool = False) -> str:
        """For results whose files are gone (``paths``, as stored; ``changed``: replaced by
        others under their names): where the index's own folder holds them, that (another folder
        was chosen for its images); else (moved, deleted or replaced since the index was
        made) the command that brings it up to date, as `query` says."""
        s = self.session
        if not paths or s is None:
            return ""
        elsewhere = own_folder_note(s.index, s.base_dir, paths)
        if elsewhere:
            return f"; {'other files in' if changed else 'not in'} {s.base_dir}: {elsewhere}"
        if s.source is None:
            return ""
        w = self.watching
        what = "changed" if changed else "gone"
        if w is not None and not w.finished and w.index and same_path(w.index, s.source):
            doing = "analysing it again" if changed else "taking it out"
            return f"; {what} since the index was made: --watch is {doing}"
        return f"; {what} since it was made: {command('rtsearch', 'update', s.source, s.base_dir)}"

    def _publish_again(self) -> None:
        """The picture and results on show again, the query shrunk to the new header height
        and the results fitted to the cache's new box: no new search."""
        pub = self.latest()
        again = {}
        if self._rethumb and pub is not None and pub.results:
            thumbs, bad = self._thumbs(list(pub.results))
            again.update(thumbs=thumbs, message=bad or pub.message, pending=0)
            self._drop_filling()  # (all of them decoded for the new box)
        last = self._last
        if self._requery and pub is not None and pub.query is not None and last is not None:
            again["query"] = query_picture(last.image, self.header_h)
        self._rethumb = self._requery = False
        if pub is None or not again:
            return
        self._seq += 1  # only this thread publishes: the slot still holds pub
        with self._lock:
            self._slot = replace(pub, seq=self._seq, **again)

    def _store(
        self,
        frame,
        searched,
        results,
        thumbs,
        infer_ms: float,
        message: str,
        pending: int = 0,
        stored: bool = False,
    ) -> None:
        self._stale, self._shown_from = False, _taken_from(self.source)
        query = query_picture(frame.image, self.header_h)
        self._seq += 1
        name = self.source.name if self.source else ""
        pub = Published(
            self._seq, name, query, frame.captured, time.perf_counter(), frame.row,
            results, thumbs, infer_ms, message, searched, pending, frame.file, frame.chosen,
            stored,
        )  # fmt: skip
        with self._lock:
            self._slot = pub

    def _show_plain(self, frame: Frame) -> None:
        """A plain picture, not searched (PLAIN): the picture before it (the last that stood
        still, within STEADY_S; else the last searched) and its results stay, said so, where
        they are this source's and of the index loaded; else the plain picture shows, with
        no results. Once for a run of plain pictures."""
        if self._plain:
            return
        self._plain = True
        name = self.source.name if self.source else ""
        steady = self._steady
        if steady is not None and time.perf_counter() - steady[2] <= STEADY_S:
            self._last = steady[1]  # (what is searched again when k or the index changes)
        with self._lock:
            last = self._slot if steady is None or self._last is not steady[1] else steady[0]
            keep = (
                last is not None
                and last.query is not None
                and last.source == name
                and not self._stale
                and self._shown_from == _taken_from(self.source)
            )
            if keep:
                self._seq += 1
                self._slot = replace(last, seq=self._seq, message=PLAIN_KEPT, inference_ms=0.0)
        if not keep:
            self._store(frame, None, (), (), 0.0, PLAIN)

    def _publish_message(self) -> None:
        """A source problem with no new frame: change the message; keep the last pictures
        when this source showed them (a camera that stopped), else show none (a camera that
        is not there must not sit under another source's picture and results)."""
        with self._lock:
            last = self._slot
            self._seq += 1
            name = self.source.name if self.source else ""
            # (nor the results of an index no longer loaded: a picture of the old index
            # that the new one's folder lacks showed the old results, unlabelled; nor those
            # of another screen region: one moved into a gap between monitors showed the
            # old region's)
            if (
                last is None
                or last.source != name
                or self._stale
                or self._shown_from != _taken_from(self.source)
            ):
                self._slot = Published(
                    self._seq, name, None, 0.0, time.perf_counter(), None, (), (), 0.0,
                    self._message,
                )  # fmt: skip
            else:
                # no new picture: no inference time (the last one was this source's
                # before it stopped)
                self._slot = replace(
                    last, seq=self._seq, message=self._message, inference_ms=0.0
                )  # fmt: skip


def _same(a: Frame, a_sig: np.ndarray, b: Frame, b_sig: np.ndarray) -> bool:
    """Whether two pictures look the same: one shape, signatures within STILL_LEVELS."""
    return a.image.shape == b.image.shape and int(np.abs(a_sig - b_sig).max()) <= STILL_LEVELS


def _taken_from(source: Source | None) -> tuple:
    """What a source's pictures show: its name, and a screen grab's region (a new region
    is another picture; a paste that failed keeps the last one pasted)."""
    return ("", None) if source is None else (source.name, getattr(source, "region", None))


class ScreenPreview:
    """The whole desktop (every monitor), small, for the grab-region chooser: about 10 times
    a second, less where grabbing a large desktop takes long (a 5K screen: 75 ms a time, a
    core's worth at 10/s); its own thread so a slow model never freezes the preview.
    ``geometry``: the desktop, the first monitor and each monitor as last seen (read again
    every few seconds, and after a failed grab: monitors come and go)."""

    INTERVAL_S = 0.1
    BUSY_SHARE = 0.2  # of one core, at most, spent on the preview
    REREAD_S = 2.0

    def __init__(self, width: int, height: int) -> None:
        self.size = (width, height)
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._latest: RGBImage | None = None
        self.message = ""
        self.geometry: Geometry | None = None
        self._thread = threading.Thread(target=self._run, name="screen-preview", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from rtsearch.sources import ScreenSource

        src = ScreenSource()
        read_at = time.perf_counter()
        try:
            while not self.stop.is_set():
                began = time.perf_counter()
                if began - read_at > self.REREAD_S:
                    src.refresh()
                    read_at = began
                try:
                    self.geometry = src.geometry()
                    small = shrunk(src.grab_bgra(self.geometry[0]), self.size)
                except Exception as exc:
                    self.message = Problem(f"screen capture failed: {exc}")
                    src.refresh()
                    self.stop.wait(0.5)
                    continue
                self.message = ""
                with self._lock:
                    self._latest = small
                took = time.perf_counter() - began
                self.stop.wait(max(self.INTERVAL_S, took / self.BUSY_SHARE - took))
        finally:
            src.close()

    def take(self) -> RGBImage | None:
        with self._lock:
            image, self._latest = self._latest, None
        return image

    def close(self) -> None:
        self.stop.set()
        self._thread.join(timeout=2.0)
