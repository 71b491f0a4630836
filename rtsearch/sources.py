"""Live query sources for the viewer and the benchmark: random-from-index, webcam, video,
screen, clipboard.

Every source has ``read() -> Frame | None`` returning the newest RGB uint8 (H, W, 3) picture
with its capture time (``time.perf_counter()`` seconds), or None when there is nothing new.
A source never raises from ``read``: a failure becomes ``source.message`` (one line) and the
worker shows it. No GUI imports here.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Protocol

import cv2
import numpy as np
from PIL import Image

from rtsearch.decode import RGBImage, is_image_file, load_rgb
from rtsearch.errors import Problem, RtsearchError, first_line
from rtsearch.sniff import (
    HEAD_BYTES,
    MATROSKA,
    audio_kind,
    ftyp_brands,
    iso_tracks,
    matroska_tracks,
    video_kind,
    video_length_ms,
)

# OpenCV's own warnings ("can't open camera by index", every retry) would repeat on stderr
# what ``source.message`` already says in one line; errors still show.
# (cv2.utils.logging from OpenCV 4.13 on, where cv2.setLogLevel went; 2 is LOG_LEVEL_ERROR)
if hasattr(cv2.utils, "logging"):
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
else:
    cv2.setLogLevel(2)
# Nor ffmpeg's ("moov atom not found" for a file that is no video); read when a video is
# first opened. A user who wants them sets the variable.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "0")  # AV_LOG_PANIC only


# what the video file dialog lists, and what a copied file's name is played as (Ctrl+V)
VIDEO_EXTS = (
    ".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".3gp", ".ogv",
    ".ts", ".mts", ".m2ts", ".flv", ".vob", ".mod", ".asf", ".m2v", ".f4v", ".divx", ".mxf",
)  # fmt: skip


def is_video_file(path: Path) -> bool:
    """Whether ``path`` is named as a video file (any case)."""
    return Path(path).suffix.lower() in VIDEO_EXTS


@dataclass(frozen=True)
class Frame:
    """One captured picture: RGB uint8 (H, W, 3), capture time in perf_counter seconds,
    and the index row it came from (random source only, so it can be excluded) and its
    file."""

    image: RGBImage
    captured: float
    row: int | None = None
    file: Path | None = None
    chosen: bool = False  # the row was asked for (a result clicked, back), not drawn
    stored: bool = False  # a picture file as it is stored: searched whole, never trimmed


class Source(Protocol):
    name: str
    message: str
    live: bool  # True: yields a new frame continuously; False: one frame per trigger

    def read(self) -> Frame | None: ...

    def close(self) -> None: ...


class RandomSource:
    """One indexed image per trigger (`R`), or the row asked for; ``count`` is the index's
    rows, ``file_of(row)`` the file of one. A random draw is never the picture on show (R
    that brought the same picture back looked like a key that did nothing), nor a file that
    could not be read: one that cannot is passed over for another (an index out of date
    with its folder showed an empty window for its first query)."""

    live = False
    TRIES = 20  # draws before giving up on an index whose files are mostly gone

    def __init__(self, count: int, file_of, seed: int | None = None, min_size=None) -> None:
        self.name = "random"
        self.message = ""
        self.count = count
        self.file_of = file_of
        self.min_size = min_size
        self.rng = np.random.default_rng(seed)
        self._pending: int | None = None
        self._chosen = False  # whether the pending row was asked for, not drawn
        self._asked = False  # whether its picture is said to be asked for (Frame.chosen)
        self._fallback = False  # whether another is drawn where the row asked for fails
        self.shown: int | None = None  # the row last read
        self.unread: set[int] = set()  # rows whose file could not be read (not drawn again)
        self.trigger()

    def trigger(
        self, row: int | None = None, fallback: bool = False, asked: bool | None = None
    ) -> None:
        """Ask for a new random image (or a chosen row) on the next read; ``fallback``: a
        chosen row whose file cannot be read gives a random one (a query recalled).
        ``asked``: whether the row's picture is one asked for (its frame ``chosen``), by
        default where a row is given; not for a random draw kept in a new version of the
        index (--watch: it was said to be asked for, "collection")."""
        if not self.count:
            return
        self._chosen, self._fallback = row is not None, fallback
        self._asked = self._chosen if asked is None else asked
        if row is None and self._draw() is None:
            self.unread.clear()  # none left that could be read: each is tried again
        self._pending = self._draw() if row is None else row

    def _draw(self) -> int | None:
        skip = {self.shown} if self.shown is not None and self.count > 1 else set()
        skip |= self.unread
        if len(skip) >= self.count:
            return None
        if len(skip) > self.count // 2:  # (few left: drawn among them)
            return int(self.rng.choice([r for r in range(self.count) if r not in skip]))
        while True:
            row = int(self.rng.integers(self.count))
            if row not in skip:
                return row

    def read(self) -> Frame | None:
        row, self._pending = self._pending, None
        chosen, fallback = self._chosen, self._fallback
        failed: list[str] = []
        while row is not None:
            self.shown = row
            path = self.file_of(row)
            try:
                image = load_rgb(path, min_size=self.min_size)
            except RtsearchError as exc:  # names the file and the problem
                failed.append(str(exc))
            except Exception as exc:  # a vanished or broken file must not stop the viewer
                failed.append(f"{path}: cannot read ({exc})")
            else:
                self.message = f"query: {path}"
                if failed and not (chosen and not fallback):
                    self.message += f" ({_passed_over(failed)})"
                asked = self._asked and not failed
                return Frame(image, time.perf_counter(), row, Path(path), asked)
            self.unread.add(row)
            if (chosen and not fallback) or len(failed) >= self.TRIES:
                break
            row = self._draw()
        if not failed:
            return None
        self.message = Problem(failed[0])
        if failed[1:]:
            self.message = Problem(f"{len(failed)} pictures {UNREAD_ALL}{failed[0]}")
        return None

    def close(self) -> None:
        pass


PASSED_OVER = "of the index passed over: "
UNREAD_ALL = "of the index could not be read: "


def _passed_over(failed: list[str]) -> str:
    n = len(failed)
    return f"{n} picture{'s' if n > 1 else ''} {PASSED_OVER}{failed[0]}" + (
        f", and {n - 1} more" if n > 1 else ""
    )


class ClipboardSource:
    """The picture on the clipboard when it was made, or the picture file it names (Ctrl+V),
    searched once; a video file it names is played as V plays one. ``text``: the
    clipboard's text as the viewer's toolkit read it (None: read it here); the clipboard
    itself is read by the first ``read``, on the worker's thread (a helper program may take
    seconds, said meanwhile by ``message``)."""

    live = True
    # a paste that finds no picture gives the source before it back (the worker keeps it
    # meanwhile): a failed Ctrl+V blanked a video playing, its results too
    keeps_before = True

    def __init__(self, text: str | None = None) -> None:
        self.name = "clipboard"
        self.message = READING
        self.text = text
        self.video: VideoSource | None = None
        self._read = False
        self.failed = False  # read, and no picture nor video came of it (``message``: why)

    @property
    def pending(self) -> bool:
        """Whether the clipboard is still to be read."""
        return not self._read

    def read(self) -> Frame | None:
        if self.video is not None:
            frame = self.video.read()
            self.message = self.video.message
            return frame
        if self._read:
            return None  # once: a still picture
        self._read = True
        from rtsearch.clipboard import clipboard_query

        try:
            got = clipboard_query(self.text, LIVE_MIN_SIZE)
        except RtsearchError as exc:
            self.message, self.failed = Problem(exc), True
            return None
        except Exception as exc:  # a broken helper must not stop the viewer
            why = f"cannot read the clipboard ({first_line(exc)})"
            self.message, self.failed = Problem(why), True
            return None
        if isinstance(got, Path):  # a copied video file
            self.video = VideoSource(got)
            self.name = self.video.name
            return self.read()
        w, h = got.size
        self.message = f"query: {got.where} ({w}x{h}, pasted)"
        # a file's plain strip is its own, as analysed: trimmed, its copies in the collection
        # came at 0.41, not 0 (a picture copied from a page or a screenshot is trimmed)
        return Frame(got.image, time.perf_counter(), stored=got.file is not None)

    def set_paused(self, paused: bool) -> None:
        if self.video is not None:
            self.video.set_paused(paused)

    def close(self) -> None:
        if self.video is not None:
            self.video.close()


READING = "reading the clipboard..."
# a picture searched live (pasted, or a picture file played as a video) is decoded no
# smaller than this, (h, w), where it is larger: enough for the part its borders' trim
# leaves to fill a model's input, and for the header. (A 12000x9000 paste took 1-2 s at
# full size, holding the interpreter lock for up to hundreds of ms: a frame of 464 ms.)
LIVE_MIN_SIZE = (1024, 1024)
DEFAULT_GRAB = (400, 300)  # region size when following the mouse without a chosen region


Box = tuple[int, int, int, int]  # left, top, width, height (the grab region's too)
# the desktop (every monitor together), the first monitor, and each monitor
Geometry = tuple[Box, Box, tuple[Box, ...]]


def _rect(monitor: dict) -> Box:
    """An mss monitor as left, top, width, height."""
    return monitor["left"], monitor["top"], monitor["width"], monitor["height"]


class ScreenSource:
    """A rectangle of the screen (physical pixels) via mss; the mss object is created lazily
    by the thread that reads, because mss handles are per-thread on X11."""

    live = True
    REREAD_S = 2.0  # a region off the desktop: its monitors read again this often

    def __init__(
        self,
        region: tuple[int, int, int, int] | None = None,
        *,
        follow_mouse: bool = False,
        avoid: Callable[[], tuple[int, int, int, int] | None] | None = None,
    ) -> None:
        """``follow_mouse``: each read centres the region (its size kept) on the mouse
        pointer, anywhere on the desktop; while the pointer is inside ``avoid()`` (the
        viewer's own window) nothing is grabbed, so the viewer never searches for itself."""
        self.name = "screen:mouse" if follow_mouse else "screen"
        self.message = ""
        self.region = region  # x, y, w, h; None: the whole first monitor
        self.follow_mouse = follow_mouse
        self.avoid = avoid
        self._local = threading.local()
        self._reread_at = 0.0

    def _mss(self):
        grabber = getattr(self._local, "mss", None)
        if grabber is None:
            import mss

            grabber = self._local.mss = mss.MSS()
        return grabber

    def monitor(self) -> Box:
        """The first monitor (mss's order): left, top, width, height."""
        return _rect(self._mss().monitors[1])

    def desktop(self) -> Box:
        """Every monitor together (the dead parts of a desktop of unequal ones included)."""
        return _rect(self._mss().monitors[0])

    def monitors(self) -> tuple[Box, ...]:
        """Each monitor, in mss's order."""
        return tuple(_rect(m) for m in self._mss().monitors[1:])

    def geometry(self) -> Geometry:
        """The desktop, the first monitor and every monitor, as the grab region takes them."""
        return self.desktop(), self.monitor(), self.monitors()

    def grab(self, region: tuple[int, int, int, int] | None = None) -> RGBImage:
        """The region's visible part (a region partly off the desktop is cut to it).
        ValueError when nothing of it is on the desktop or it is empty."""
        return cv2.cvtColor(self.grab_bgra(region), cv2.COLOR_BGRA2RGB)

    def grab_bgra(self, region: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """As ``grab``, in the screen's own BGRA (H, W, 4) (to shrink before converting)."""
        x, y, w, h = region or self.region or self.monitor()
        left, top, dw, dh = self.desktop()
        x0, y0 = max(x, left), max(y, top)
        x1, y1 = min(x + w, left + dw), min(y + h, top + dh)
        if w <= 0 or h <= 0:
            raise ValueError(f"the region {w}x{h} is empty")
        spec = f"{x},{y},{w},{h}"  # (as --source screen: and the viewer's lines write it)
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"the region {spec} is off the desktop ({dw}x{dh}); move it with G")
        if not any(boxes_overlap((x0, y0, x1 - x0, y1 - y0), m) for m in self.monitors()):
            # the dead part of a desktop of unequal monitors: it was grabbed as black
            raise ValueError(f"the region {spec} is on no monitor (a gap between them); move "
                             "it with G")  # fmt: skip
        shot = self._mss().grab({"left": x0, "top": y0, "width": x1 - x0, "height": y1 - y0})
        return np.asarray(shot)

    def read(self) -> Frame | None:
        try:
            t = time.perf_counter()
            if self.follow_mouse:
                box = self._box_under_mouse()
                if box is None:
                    return None
                self.region = box
            image = self.grab()
        except ValueError as exc:  # our own check: the region is empty or off the desktop
            self.message = Problem(f"screen capture failed: {exc}")
            # the desktop the handle knows may have grown back meanwhile (a monitor plugged
            # in again, the resolution put back): it said "off the desktop" for ever. Read
            # again now and then, not every 10 ms as the worker polls
            if time.perf_counter() - self._reread_at >= self.REREAD_S:
                self._reread_at = time.perf_counter()
                self._forget_mss()
            return None
        except Exception as exc:  # no display, X error, ...
            self.message = Problem(f"screen capture failed: {exc}")
            # Monitors may have changed under a cached handle: the next read asks again.
            # (Not on ValueError: the worker polls every 10 ms, and a region the user left
            # off the desktop must not open a display connection each time.)
            self._forget_mss()
            return None
        self.message = ""
        return Frame(image, t)

    def refresh(self) -> None:
        """Read the monitors again at the next grab (a handle keeps those it first saw)."""
        self._forget_mss()

    def _forget_mss(self) -> None:
        grabber = getattr(self._local, "mss", None)
        self._local.mss = None
        if grabber is not None:
            with contextlib.suppress(Exception):  # a dead display may not close cleanly
                grabber.close()

    def _pointer(self):
        pointer = getattr(self._local, "pointer", None)
        if pointer is None:
            from rtsearch.pointer import Pointer

            pointer = self._local.pointer = Pointer()
        return pointer

    def _box_under_mouse(self) -> tuple[int, int, int, int] | None:
        pointer = self._pointer()
        pos = pointer.position()
        if pos is None:
            self.message = Problem(pointer.message or "the mouse position cannot be read")
            return None
        px, py = pos
        own = self.avoid() if self.avoid else None
        if own is not None and own[0] <= px < own[0] + own[2] and own[1] <= py < own[1] + own[3]:
            self.message = "following the mouse: point at a picture outside this window"
            return None
        left, top, dw, dh = self.desktop()
        w, h = (self.region or (0, 0, DEFAULT_GRAB[0], DEFAULT_GRAB[1]))[2:]
        w, h = min(w, dw), min(h, dh)
        x = min(max(px - w // 2, left), left + dw - w)
        y = min(max(py - h // 2, top), top + dh - h)
        if own is not None and boxes_overlap((x, y, w, h), own):
            # the pointer is outside, but the box around it would take in this window
            self.message = (
                "following the mouse: the grab box would take in this window; point further "
                "from it (or make the box smaller with G)"
            )
            return None
        return x, y, w, h

    def close(self) -> None:
        self._forget_mss()
        pointer = getattr(self._local, "pointer", None)
        if pointer is not None:
            pointer.close()
            self._local.pointer = None


def _still_picture(path: Path) -> bool:
    """Whether ``path`` is a picture of one frame (an animated GIF or WebP plays as a
    video)."""
    if not is_image_file(path):
        return False
    try:
        with Image.open(path) as img:
            return getattr(img, "n_frames", 1) <= 1
    except Exception:  # not one Pillow reads: OpenCV may still open it as a video
        return False


def video_problem(path: Path) -> str:
    """Why ``path`` cannot be a video source, or "": a file that is there is refused only
    where its first bytes show it is sound or text, or its MP4 header holds no video track
    (one chosen by mistake replaced the source on show with an empty page, and was played
    again as the last video); any other is tried, and tried again as it changes (still
    being copied)."""
    try:
        if path.is_dir():
            return "is a folder, not a video file"
        if not path.exists():
            return "video file not found"
        if not path.is_file():
            return "not a regular file"
    except OSError as exc:  # in a folder this user may not enter
        return f"cannot stat ({exc.strerror})"
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
            f.seek(0)
            tracks = _tracks(f, head)
    except OSError:
        return ""  # (said as the source opens it)
    return _sound_or_text(head) or _trackless(head, tracks)


def _tracks(f: BinaryIO, head: bytes) -> list[bytes] | None:
    """The kinds of the tracks (b"vide", b"soun") of an MP4, MOV, MKV or WebM file whose
    first bytes are ``head``; None for another kind of file (HEIF and AVIF pictures are
    ISO-BMFF too, without tracks) or a Matroska one whose tracks are not found; [] for an
    ISO-BMFF one without its movie header."""
    kind = video_kind(head)
    if kind and ftyp_brands(head):
        return iso_tracks(f)
    if kind and head[:4] == MATROSKA:
        return matroska_tracks(f)
    return None


def _trackless(head: bytes, tracks: list[bytes] | None) -> str:
    """What to say of a video file whose ``tracks`` hold no video (a voice memo, a
    podcast, a web page's sound as WebM), or "" (its header not there yet: still being
    copied, tried as it changes)."""
    if tracks and b"vide" not in tracks:
        what = "sound only" if b"soun" in tracks else "no video track"
        return f"{video_kind(head)} file: {what}, no pictures to search"
    return ""


def _sound_or_text(head: bytes) -> str:
    """What a file whose first bytes are ``head`` is, where that is sound or text: no
    video; else ""."""
    kind = audio_kind(head)  # (it said "cannot open as a video" of an MP3)
    if kind:
        return f"{kind} file: sound only, no pictures to search"
    if head and _is_text(head):
        return "a text file, not a video"
    return ""


def _is_text(head: bytes) -> bool:
    """Whether a file's first bytes are text (UTF-8, no control bytes but white space)."""
    for cut in range(4):  # (a character cut at the end of what was read)
        try:
            text = head[: len(head) - cut].decode("utf-8")
            break
        except UnicodeDecodeError:
            continue
    else:
        return False
    return all(c.isprintable() or c in "\t\n\r\f" for c in text)


def _why_not_a_video(path: Path) -> str:
    """What to say of a file OpenCV did not open as a video."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
            f.seek(0)
            tracks = _tracks(f, head)
    except OSError as exc:
        return f"cannot open as a video ({exc.strerror or first_line(exc)})"
    if not head:
        return "cannot open as a video (empty file: still being copied?)"
    said = _sound_or_text(head)  # (a file waited for that came as sound or text)
    if said:
        return said
    # an MP4 whose movie header, written last, is not there
    if tracks == [] and ftyp_brands(head):
        return "cannot open as a video (an MP4 or QuickTime file without its movie header: " \
               "still being copied, or cut short?)"  # fmt: skip
    return _trackless(head, tracks) or "cannot open as a video"


class VideoSource:
    """A video file played in real time, looping: each frame is handed out when its own
    time in the file comes (variable frame rates, slideshows of 0.5 fps, 300 fps clips),
    frames the worker was too slow for are skipped with ``grab()`` (no decode), so the
    query is always the current frame, and before the next frame is due ``read`` returns
    None (as a camera does between frames), so a fast worker does not play the file faster
    than it runs. ``realtime=False`` hands out every frame in order, as fast as asked
    (benchmarks time decoding that way). A file that does not open (not there yet, still
    being written) is tried again when it changes."""

    live = True

    def __init__(self, path: Path, *, realtime: bool = True) -> None:
        self.name = f"video:{Path(path).name}"
        self.path = Path(path)
        self.realtime = realtime
        self.message = ""
        self.paused = False
        self.still: Frame | None = None  # a picture given as the video, shown once
        self.cap = None
        self.interval_ms = 40.0  # the file's mean frame time (its rate, where it says one)
        self.start = time.perf_counter()  # when this pass's time 0 was
        self.ahead_ms: float | None = None  # the time of a frame grabbed, not yet decoded
        self.last_ms = 0.0  # the time of the last frame grabbed in this pass
        self.loop_frames = 0  # frames grabbed in this pass through the file
        self.single: RGBImage | None = None  # a file of one frame, decoded once
        self.length_ms: float | None = None  # how long its header says its video plays
        self.short = ""  # said as it plays: a pass ended well before that length
        self._retry_at = 0.0
        self._failed: tuple | None = None
        # opened by the first read, on the thread that reads: a 48 MP still picture took
        # 1.6 s to decode, and the viewer makes its sources on the thread that draws
        self._opened = False

    def _open(self) -> None:
        self._opened = True
        self._failed = None
        if _still_picture(self.path):
            # decoded as analyze decodes it: OpenCV's reader drops transparency (a cut-out
            # showed on black, and found itself at 0.42 instead of 0)
            try:
                self.still = Frame(load_rgb(self.path, min_size=LIVE_MIN_SIZE), time.perf_counter())
                self.message = ""
            except RtsearchError as exc:
                self._fail(str(exc))
            return
        self.cap = cv2.VideoCapture(str(self.path))
        if not self.cap.isOpened():
            self.cap = None
            self._fail(f"{self.path}: {_why_not_a_video(self.path)}")
            return
        self.message = self.short = ""  # (a file put in its place: its own pass says)
        self.length_ms = _header_length_ms(self.path)
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.interval_ms = 1000.0 / fps if 0.01 <= fps <= 1000.0 else 40.0
        self.start = time.perf_counter()
        self.ahead_ms, self.last_ms, self.loop_frames = None, 0.0, 0

    def _fail(self, message: str) -> None:
        """Say ``message``; the file is opened again once it changes (a copy or a recording
        still being written, a file put in its place)."""
        self.message = Problem(message)
        self._failed = _signature(self.path)
        if self.cap is not None:
            self.cap.release()
            self.cap = None

    def _again_if_changed(self) -> None:
        now = time.perf_counter()
        if self._failed is None or now < self._retry_at:
            return
        self._retry_at = now + 0.5
        if _signature(self.path) != self._failed:
            self._open()

    def _grab(self) -> bool:
        """Grab the next frame (past the end: the first of the next pass), its time in
        ``ahead_ms``; False when there is none (said in ``message``)."""
        assert self.cap is not None
        if not self.cap.grab():
            if self.loop_frames == 1:  # a file of one frame: kept, not read again
                self._keep_single()
                return False
            if self.loop_frames == 0:
                self._fail(f"{self.path}: no frames could be decoded")
                return False
            self._end_of_pass()
            # the next pass starts when the last frame's time is over
            self.start += (self.last_ms + self.interval_ms) / 1000.0
            self._restart()
            if self.cap is None or not self.cap.grab():
                self._fail(f"{self.path}: no frames could be decoded")
                return False
        self.loop_frames += 1
        ms = self.cap.get(cv2.CAP_PROP_POS_MSEC)
        counted = (self.loop_frames - 1) * self.interval_ms
        before = self.last_ms if self.loop_frames > 1 else -1.0
        # a container without times (or with times that go back): counted at the mean rate
        self.ahead_ms = self.last_ms = ms if np.isfinite(ms) and ms > before else counted
        return True

    def _restart(self) -> None:
        """Back to the first frame: opened again (seeking to frame 0 left MPEG-TS, MPEG-PS
        and .m2ts files half a second to a second in, every pass), or sought where the file
        is gone (it plays on from the open handle)."""
        assert self.cap is not None
        again = cv2.VideoCapture(str(self.path))
        if again.isOpened():
            self.cap.release()
            self.cap = again
            self.length_ms = _header_length_ms(self.path)  # (a download since gone on)
        else:
            again.release()
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self.ahead_ms, self.last_ms, self.loop_frames = None, 0.0, 0

    def _end_of_pass(self) -> None:
        """A pass that ended well before the length its header gives is said while the file
        plays on (a download or a copy cut short, or not finished: it looped without a
        word); a whole pass says nothing."""
        whole_ms, played_ms = self.length_ms or 0.0, self.last_ms + self.interval_ms
        room = max(CUT_SHORT_FRAMES * self.interval_ms, whole_ms * CUT_SHORT_PART)
        if whole_ms - played_ms < room:
            self.short = ""
            return
        played, whole = _clock(played_ms), _clock(whole_ms)
        if played == whole:  # (a second or less short)
            played, whole = _clock(played_ms, tenths=True), _clock(whole_ms, tenths=True)
        self.short = Problem(
            f"{self.path}: ends at {played} of the {whole} its header gives: cut short "
            "(a download or copy not finished?); played in a loop"
        )

    def _keep_single(self) -> None:
        assert self.cap is not None
        self.cap.release()
        self.cap = cv2.VideoCapture(str(self.path))
        ok, bgr = self.cap.read() if self.cap.isOpened() else (False, None)
        self.cap.release()
        self.cap = None
        if not ok:
            self._fail(f"{self.path}: no frames could be decoded")
            return
        self.single = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def read(self) -> Frame | None:
        if not self._opened:
            self._open()
        if self.still is not None:  # once: it never changes
            frame, self.still = self.still, None
            return replace(frame, captured=time.perf_counter())
        if self.single is not None:  # shown once live; every time for a benchmark
            return None if self.realtime else Frame(self.single, time.perf_counter())
        if self.paused:
            return None
        if self.cap is None:
            self._again_if_changed()
            if self.cap is None:
                return self.read() if self.still is not None else None
        try:
            return self._next()
        except cv2.error as exc:
            self.message = Problem(f"{self.path}: {first_line(str(exc))}")
            return None

    def _next(self) -> Frame | None:
        if self.ahead_ms is None and not self._grab():
            return self._after_end()
        if self.realtime:
            asked = time.perf_counter()
            if self.ahead_ms is not None and self.ahead_ms > (asked - self.start) * 1000.0:
                return None  # the next frame is not due yet
            # late: the frames after this one that are due too (by the mean rate) are
            # skipped, for at most SKIP_S; a file that decodes slower than it plays (8K at
            # 120 fps here) never caught up, and the loop chased it for ever
            while (
                self.ahead_ms is not None
                and self.ahead_ms + self.interval_ms <= (asked - self.start) * 1000.0
                and time.perf_counter() - asked < SKIP_S
            ):
                if not self._grab():
                    return self._after_end()
            if self.ahead_ms is not None:
                behind = (asked - self.start) * 1000.0 - self.ahead_ms
                if behind > self.interval_ms + SKIP_S * 1000.0:  # still: played from here on
                    self.start += behind / 1000.0
        assert self.cap is not None
        ok, bgr = self.cap.retrieve()
        self.ahead_ms = None
        if not ok:
            self.message = Problem(f"{self.path}: a frame could not be decoded")
            return None
        self.message = self.short
        return Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), time.perf_counter())

    def _after_end(self) -> Frame | None:
        """The end came where a frame was wanted: a file of one frame gives it (once, live)."""
        if self.single is not None:
            return Frame(self.single, time.perf_counter())
        return None

    def set_paused(self, paused: bool) -> None:
        if self.paused and not paused:  # resumed where it stopped: its next frame, now
            following = self.last_ms + self.interval_ms if self.ahead_ms is None else self.ahead_ms
            self.start = time.perf_counter() - following / 1000.0
        self.paused = paused

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()


SKIP_S = 0.1  # a late video's read skips frames for at most this long, then plays on
# a pass shorter than its header's length by this many frames' time, and by this part of
# it, is cut short (the last frame's own time is the mean's, not its own)
CUT_SHORT_FRAMES = 5
CUT_SHORT_PART = 0.02


def _header_length_ms(path: Path) -> float | None:
    """How long ``path``'s video plays by its header, where that is known (sniff)."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
            f.seek(0)
            return video_length_ms(f, head)
    except Exception:  # (a header damaged past what the reader checks: no length, and play on)
        return None


def _clock(ms: float, *, tenths: bool = False) -> str:
    """``ms`` as a player shows it, whole seconds gone by (or tenths): 1:05, 1:02:03."""
    s = int(ms // 1000)
    h, m = divmod(s // 60, 60)
    shown = f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"
    return f"{shown}.{int(ms % 1000 // 100)}" if tenths else shown


def _signature(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


# where a camera refused to this program is allowed (an open that is refused looks like
# no camera at all to OpenCV)
CAMERA_PERMISSION = {
    "darwin": ", or not allowed: System Settings > Privacy & Security > Camera",
    "win32": ", or not allowed: Settings > Privacy & security > Camera, desktop apps",
}
_camera_asked: set[int] = set()


def ask_camera_permission(device: int) -> None:
    """macOS asks the user to allow the camera only when it is first opened on the main
    thread (OpenCV's AVFoundation capture refuses to ask from another: "can not spin main
    run loop from other thread"), and the camera's own thread then found "no camera" for
    ever. Opened and closed here once per device, on the UI thread; elsewhere nothing."""
    if sys.platform != "darwin" or device in _camera_asked:
        return
    if threading.current_thread() is not threading.main_thread():
        return
    _camera_asked.add(device)
    with contextlib.suppress(Exception):  # what it says is the camera thread's to say
        cv2.VideoCapture(device).release()


class WebcamSource:
    """A camera read by its own thread into a one-slot buffer: cameras queue frames, and
    reading them at the worker's pace would show ever older pictures."""

    live = True

    RETRY_S = 1.0

    def __init__(self, device: int = 0) -> None:
        self.name = f"webcam:{device}"
        self.message = "opening the camera..."
        self.device = device
        ask_camera_permission(device)
        self._latest: Frame | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webcam", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """Open, read until the camera fails, and retry every RETRY_S: a camera that is
        unplugged and plugged back in resumes by itself."""
        while not self._stop.is_set():
            try:
                cap = cv2.VideoCapture(self.device)
            except Exception as exc:  # OpenCV refused the device number itself
                why = f"camera {self.device}: cannot open ({first_line(str(exc))})"
                self.message = Problem(why)
                return  # the same number fails the same way: no retry
            try:
                if not cap.isOpened():
                    hint = CAMERA_PERMISSION.get(sys.platform, "")
                    why = f"no camera found (device {self.device}{hint}); retrying"
                    self.message = Problem(why)
                else:
                    self.message = ""
                    while not self._stop.is_set():
                        ok, bgr = cap.read()
                        if not ok:
                            self.message = Problem(
                                f"camera {self.device} stopped sending frames; retrying"
                            )
                            break
                        frame = Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), time.perf_counter())
                        with self._lock:
                            self._latest = frame
            except Exception as exc:  # the thread must outlive a driver's error
                self.message = Problem(f"camera {self.device}: {first_line(str(exc))}; retrying")
            finally:
                cap.release()
            self._stop.wait(self.RETRY_S)

    def read(self) -> Frame | None:
        with self._lock:
            frame, self._latest = self._latest, None
        return frame

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)


def boxes_overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Do two (x, y, w, h) boxes share a pixel?"""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def parse_region(text: str) -> tuple[int, int, int, int]:
    """'x,y,w,h' -> ints; ValueError with the reason otherwise."""
    try:
        parts = [int(p) for p in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 4 or parts[2] <= 0 or parts[3] <= 0:
        raise ValueError(
            f"screen region must be x,y,w,h in whole pixels with w,h > 0, got {text!r}"
        )
    return parts[0], parts[1], parts[2], parts[3]


SOURCES = "random | webcam[:N] | video:PATH | screen[:x,y,w,h] | screen:mouse | clipboard | none"


def parse_source(text: str) -> tuple[str, str]:
    """A source spec (``--source``, a button) as (kind, argument); ValueError with the
    reason for one that names no source or gives one what it cannot take. A video's file
    is checked too (``video_problem``)."""
    kind, sep, arg = text.partition(":")
    if kind not in ("random", "webcam", "video", "screen", "clipboard", "none"):
        raise ValueError(f"unknown source {text!r}; use {SOURCES}")
    if kind == "video" and not arg:
        raise ValueError("video needs a file: video:PATH")
    if kind == "video":
        # `--source video:~/clip.mp4`: no shell expands a `~` after "video:"
        arg = os.path.expanduser(arg)
        problem = video_problem(Path(arg))
        if problem:
            raise ValueError(f"{arg}: {problem}")
    if kind == "screen" and arg and arg != "mouse":
        parse_region(arg)
    # ASCII digits ("²" passes isdigit), and small enough for OpenCV's C int
    if kind == "webcam" and arg and not re.fullmatch(r"[0-9]{1,5}", arg):
        raise ValueError(
            f"webcam needs a device number from 0 to 99999: webcam:0, webcam:1, got {text!r}"
        )
    if kind in ("random", "clipboard", "none") and sep:
        raise ValueError(f"{kind} takes nothing after it, got {text!r}")
    return kind, arg
