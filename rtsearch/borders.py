"""Plain borders trimmed off a live picture before it is searched.

A screen grab drawn loosely around a picture takes the page around it too, and a video
letterboxes a 4:3 picture in black bars; resized whole to the model's input, the margin
moves its features away from the picture's own (on the demo gallery's photos, rank 1 fell
from 1.00 to 0.81 with a 30% margin, and to 0.87 letterboxed: docs/eval.md).

A side's border is the run of lines, from the edge inwards, whose pixels nearly all
(``SHARE``) lie within ``TOLERANCE`` levels, on every channel, of the edge line's median
colour. Layers of different colours (a title bar, a frame line, then the page) take a pass
each, up to ``PASSES``. A trim that would take more than ``MAX_CUT`` of the picture's
height or width leaves that axis as it is (a plain picture, a sky), and what is left is
never smaller than ``MIN_SIDE`` pixels.

The lines are judged on a copy shrunk to ``JUDGED_SIDE`` pixels on its longer side (every
few lines and columns, unblended: a blend of two layers would be a layer of its own), so a
blank frame costs little more than any other; the few lines between a border's last line
judged and the content's first are then judged whole, so a lossless page comes off to the
pixel (JPEG's ringing round the picture, up to its 8x8 block, may stay).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from rtsearch.decode import RGBImage

TOLERANCE = 8  # levels: 24 also cut into the dark gradients of some photos
SHARE = 0.98  # of a line's pixels: a cursor or a few specks do not stop the border
PLAIN_OFF = 0.001  # of a picture's pixels (shrunk) off its colour: a cursor, not a logo
PASSES = 3
MAX_CUT = 0.9
MIN_SIDE = 16
# the line that ends a border holds this share of pixels this far from its colour
EDGE_LEVELS = 3 * TOLERANCE
EDGE_SHARE = 0.05
EDGE_LINES = 6  # (8x8 JPEG blocks ring up to 7 pixels off the picture)
JUDGED_SIDE = 320
EDGE_MARGIN = 32  # px at the verifier's scale: ORB's edge threshold (31), and one more

Box = tuple[int, int, int, int]  # top, bottom, left, right: rows top:bottom, cols left:right


def trim_borders(image: RGBImage) -> RGBImage:
    """``image`` without its plain borders (a view into it; itself when it has none)."""
    top, bottom, left, right = content_box(image)
    if (top, bottom, left, right) == (0, image.shape[0], 0, image.shape[1]):
        return image
    return image[top:bottom, left:right]


def is_plain(image: RGBImage) -> bool:
    """Whether ``image`` is of one colour all over: all but PLAIN_OFF of its pixels within
    ``TOLERANCE`` levels of their median colour (a black frame between two scenes, an empty
    part of the screen; a cursor on it). Judged on a copy shrunk to JUDGED_SIDE by area
    averaging, where a line of one pixel still shows (a logo's thin lines). A logo on a
    white page, 2% of it, was taken for plain (98% was enough) and never searched."""
    h, w = image.shape[:2]
    scale = min(1.0, JUDGED_SIDE / max(h, w))
    small = np.ascontiguousarray(image)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = cv2.resize(small, size, interpolation=cv2.INTER_AREA)
    # the median of every 4th line's every 4th pixel (of them all: ten times the time)
    colour = np.median(small[::4, ::4].reshape(-1, small.shape[2]), axis=0)
    pixels = small.reshape(1, -1, small.shape[2])
    low, high = _within(colour)
    return cv2.countNonZero(cv2.inRange(pixels, low, high)) >= (1 - PLAIN_OFF) * pixels.shape[1]


def _judged_copy(image: RGBImage) -> np.ndarray:
    """``image`` shrunk to JUDGED_SIDE on its longer side by picking lines and columns
    (never below MIN_SIDE across: a line of one pixel is always "plain", and a strip 16 px
    high was peeled a column a pass); itself when it is that small."""
    h, w = image.shape[:2]
    scale = min(1.0, max(JUDGED_SIDE / max(h, w), MIN_SIDE / min(h, w)))
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    if (sh, sw) == (h, w):
        return image
    # line i of the copy is line i * h // sh, exactly
    return cv2.remap(np.ascontiguousarray(image), *_picks(h, w, sh, sw), cv2.INTER_NEAREST)


def content_box(image: RGBImage) -> Box:
    """The box of ``image`` left when its plain borders are trimmed, in its own pixels."""
    layers = layer_boxes(image)
    return layers[-1] if layers else (0, image.shape[0], 0, image.shape[1])


def trimmed_views(image: RGBImage) -> tuple[Box, list[RGBImage]]:
    """``content_box``, and the pictures searched too where it trimmed something: the
    whole, and what each layer before the last left (a page inside a video's black bars);
    none where nothing was trimmed."""
    layers = layer_boxes(image)
    if not layers:
        return (0, image.shape[0], 0, image.shape[1]), []
    return layers[-1], [image, *(image[t:b, le:r] for t, b, le, r in layers[:-1])]


def with_margin(image: RGBImage, box: Box, judged_side: int) -> RGBImage:
    """The part of ``image`` in ``box`` with a margin of the plain border around it (a
    view): keypoints are found only away from a picture's edges (ORB keeps 31 px off them
    at ``judged_side``), and a small trimmed logo lost most of its own; the border has none."""
    top, bottom, left, right = box
    h, w = image.shape[:2]
    scale = min(1.0, judged_side / max(bottom - top, right - left, 1))
    m = round(EDGE_MARGIN / scale)
    return image[max(0, top - m) : min(h, bottom + m), max(0, left - m) : min(w, right + m)]


def layer_boxes(image: RGBImage) -> list[Box]:
    """The boxes of ``image`` left after each pass that trimmed a layer of plain border (a
    video's black bars, then the white margins of the page it shows), in its own pixels;
    the last is ``content_box``'s. None: nothing to trim."""
    h, w = image.shape[:2]
    if h < MIN_SIDE or w < MIN_SIDE:
        return []
    small = _judged_copy(image)
    sh, sw = small.shape[:2]
    boxes = []
    for top, bottom, left, right in _judged_boxes(small):
        # back to the picture's pixels: the lines between the last border line judged and
        # the first content line are judged here, whole (they showed as a line of page or
        # bar along the query)
        t, b = _unjudged(image, 0, top, bottom, sh)
        left_, right_ = _unjudged(image[t:b], 1, left, right, sw)
        if b - t < MIN_SIDE or right_ - left_ < MIN_SIDE:
            return []  # (what is left would be a sliver: nothing is trimmed)
        if (t, b, left_, right_) != (0, h, 0, w):
            boxes.append((t, b, left_, right_))
    return list(dict.fromkeys(boxes))


def _unjudged(image: RGBImage, axis: int, first: int, end: int, judged: int) -> tuple[int, int]:
    """Along ``axis``, the picture's lines kept for the judged copy's ``first`` and
    ``end`` (of ``judged`` lines: line i is line i * n // judged), less the lines between
    a border's last judged line and the content's first that are plain too."""
    n = image.shape[axis]

    def line(i: int) -> np.ndarray:  # as one row of pixels, for inRange
        return np.ascontiguousarray(image[i] if axis == 0 else image[:, i])[None]

    def near(i: int) -> tuple[np.ndarray, np.ndarray]:  # the colour range about line i
        return _within(np.median(line(i)[0], axis=0))

    def plain(i: int, low: np.ndarray, high: np.ndarray) -> bool:
        return cv2.countNonZero(cv2.inRange(line(i), low, high)) >= SHARE * image.shape[1 - axis]

    start, stop = 0, n
    if first:
        last = (first - 1) * n // judged  # the border's last line judged
        start, colours = last + 1, near(last)
        while start < first * n // judged and plain(start, *colours):
            start += 1
    if end < judged:
        border = end * n // judged  # the border's first line judged, from this side
        stop, colours = border, near(border)
        while stop > (end - 1) * n // judged + 1 and plain(stop - 1, *colours):
            stop -= 1
    return start, stop


def _within(colour: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """inRange's bounds for the pixels within TOLERANCE of ``colour`` on every channel."""
    return (
        np.clip(colour - TOLERANCE, 0, 255).astype(np.uint8),
        np.clip(colour + TOLERANCE, 0, 255).astype(np.uint8),
    )


@functools.lru_cache(maxsize=8)
def _picks(h: int, w: int, sh: int, sw: int) -> tuple[np.ndarray, np.ndarray]:
    """remap's maps picking line i * h // sh and column j * w // sw (cv2.resize's nearest
    picks the line before now and then: a cut one line into the picture)."""
    cols = (np.arange(sw) * w // sw).astype(np.float32)
    rows = (np.arange(sh) * h // sh).astype(np.float32)
    return np.tile(cols, (sh, 1)), np.tile(rows[:, None], (1, sw))


def _judged_boxes(small: np.ndarray) -> list[Box]:
    """The box left after each pass that trimmed something, on the judged copy."""
    h, w = small.shape[:2]
    boxes: list[Box] = []
    top, bottom, left, right = 0, h, 0, w
    room_h, room_w = int(h * MAX_CUT), int(w * MAX_CUT)
    rows_open, cols_open = True, True
    for _ in range(PASSES):
        moved = False
        if rows_open:
            view = small[top:bottom, left:right]
            room = room_h - (top + h - bottom)
            cut_top = _border_lines(view, 0, room)
            cut_bottom = _border_lines(view, 0, room - cut_top, True) if cut_top <= room else 0
            if cut_top + cut_bottom > room:  # past the limit: this axis stays as it is
                rows_open = False
            elif cut_top or cut_bottom:
                top, bottom, moved = top + cut_top, bottom - cut_bottom, True
        if cols_open:
            view = small[top:bottom, left:right]
            room = room_w - (left + w - right)
            cut_left = _border_lines(view, 1, room)
            cut_right = _border_lines(view, 1, room - cut_left, True) if cut_left <= room else 0
            if cut_left + cut_right > room:
                cols_open = False
            elif cut_left or cut_right:
                left, right, moved = left + cut_left, right - cut_right, True
        if not moved:
            break
        boxes.append((top, bottom, left, right))
    return boxes


def _border_lines(view: np.ndarray, axis: int, room: int, from_end: bool = False) -> int:
    """How many of ``view``'s lines (rows, ``axis`` 0, or columns, 1), from its first
    (``from_end``: its last) inwards, are border, about that line's median colour;
    ``room + 1`` when more than ``room`` are (the caller then leaves the axis). Judged a
    few lines first, then more: most pictures end within the first few. A run that does
    not end at an edge (a line with some pixels far from its colour) is no border: a
    gradient (a sky, a dark wallpaper) drifts out of the tolerance a little at a time, and
    was peeled off a few lines a pass."""
    n = view.shape[axis]
    if room <= 0 or n < 2:
        return 0

    def lines(a: int, b: int) -> np.ndarray:  # the a-th to b-th lines from the side judged
        span = slice(n - b, n - a) if from_end else slice(a, b)
        return view[span] if axis == 0 else view[:, span]

    def in_order(per_line: np.ndarray) -> np.ndarray:  # from the side judged inwards
        return per_line[::-1] if from_end else per_line

    edge = np.median(lines(0, 1).reshape(-1, view.shape[2]), axis=0)
    low, high = _within(edge)
    done, end = 0, min(room + 1, n)
    need = SHARE * view.shape[1 - axis]
    for step in (4, 16, 64, end):
        upto = min(done + step, end)
        inside = cv2.inRange(lines(done, upto), low, high)
        plain = in_order(np.count_nonzero(inside, axis=1 - axis) >= need)
        content = np.flatnonzero(~plain)
        if len(content):
            cut = done + int(content[0])
            after = lines(cut, min(cut + EDGE_LINES, n))
            return cut if cut == 0 or _is_edge(after, edge, axis) else 0
        done = upto
        if done == end:
            break
    return done


def _is_edge(lines: np.ndarray, colour: np.ndarray, axis: int) -> bool:
    """Whether one of ``lines`` (those after a border's run, along ``axis``: JPEG's ringing
    may come first) holds enough pixels far from the border's ``colour`` to end it."""
    far = np.abs(lines.astype(np.int16) - colour.astype(np.int16)).max(axis=2) > EDGE_LEVELS
    return bool((np.count_nonzero(far, axis=1 - axis) >= EDGE_SHARE * far.shape[1 - axis]).any())
