"""Where things go in the viewer's canvas: pure geometry, no GUI, so it is tested directly.

Coordinates are canvas pixels, origin top-left; a Rect is (x0, y0, x1, y1). The sizes
here are at UI scale 1: the viewer draws them ``scale`` times larger (HiDPI, uiscale.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Rect = tuple[float, float, float, float]

MARGIN = 8.0
LABEL_H = 20.0
GAP = 6.0
PAD = 8.0  # Dear PyGui's default window padding and item spacing, in pixels

HEADER_RANGE = (100, 480)
HEADER_DEFAULT = 320
THUMB_RANGE = (90, 420)
THUMB_DEFAULT = 232
RESULTS_RANGE = (5, 100)
RESULTS_DEFAULT = 20
WINDOW_DEFAULT = (1280, 860)  # the window's inside, width and height
# A result's cell is this narrow to this wide for its row's height (the widest is the
# thumbnail box's 2:1): a picture beyond is drawn at its own aspect, centred in it, rather
# than enlarged past its pixels (a panorama) or drawn as a line a row wide (a 3000x1 strip)
CELL_ASPECT = (0.25, 2.0)


@dataclass(frozen=True)
class Layout:
    query_label: tuple[float, float]
    query: Rect
    results_label: tuple[float, float]
    results: tuple[Rect, ...]  # one per result, in rank order; may reach below the canvas
    height: float  # bottom of the last row, for scrolling


def compute(
    canvas_w: float,
    header_h: float,
    thumb_h: float,
    query_aspect: float,
    result_aspects: Sequence[float],
    scale: float = 1.0,
) -> Layout:
    """Query on top (``header_h`` tall), results below in rows ``thumb_h`` tall, flowing left
    to right, each cell as wide as its aspect ratio (width / height) asks, within
    CELL_ASPECT (picture_rect places the picture in it); a cell wider than the canvas is
    shrunk to fit rather than cropped. Heights in canvas pixels; margins, labels and gaps
    ``scale`` times their sizes here."""
    margin, label_h, gap = MARGIN * scale, LABEL_H * scale, GAP * scale
    inner = max(canvas_w - 2 * margin, 1.0)
    y = margin
    query_label = (margin, y)
    y += label_h
    qw, qh = _fit(header_h * query_aspect, header_h, inner)
    query = (margin, y, margin + qw, y + qh)
    y += header_h + gap
    results_label = (margin, y)
    y += label_h
    rects, bottom = _flow(result_aspects, thumb_h, inner, y, margin, gap)
    return Layout(query_label, query, results_label, tuple(rects), bottom + margin)


def fit_heights(
    canvas_h: float, header: int | None = None, thumb: int | None = None
) -> tuple[int, int]:
    """The header and row heights a canvas ``canvas_h`` tall starts with (all at UI scale
    1): ``header`` and ``thumb`` where chosen; the others the defaults, or shrunk (both
    alike, to their least) until the query and a row of results fit, so that a small
    screen, or a HiDPI one at 200%, shows a result at once."""
    room = canvas_h - 2 * MARGIN - 2 * LABEL_H - GAP
    if header is not None and thumb is not None:
        return header, thumb
    if header is not None:
        return header, clamp(min(THUMB_DEFAULT, int(room - header)), THUMB_RANGE)
    if thumb is not None:
        return clamp(min(HEADER_DEFAULT, int(room - thumb)), HEADER_RANGE), thumb
    wanted = HEADER_DEFAULT + THUMB_DEFAULT
    if room >= wanted:
        return HEADER_DEFAULT, THUMB_DEFAULT
    f = max(room, 0.0) / wanted
    return clamp(int(HEADER_DEFAULT * f), HEADER_RANGE), clamp(int(THUMB_DEFAULT * f), THUMB_RANGE)


def _fit(w: float, h: float, max_w: float) -> tuple[float, float]:
    if w <= max_w:
        return w, h
    return max_w, h * max_w / w


def picture_rect(cell: Rect, aspect: float) -> Rect:
    """Where a picture of ``aspect`` (width / height) is drawn in its result ``cell``: the
    whole cell, or centred in it at its own aspect where that is beyond CELL_ASPECT."""
    x0, y0, x1, y1 = cell
    w, h = x1 - x0, y1 - y0
    if aspect * h > w + 0.5:  # wider than the cell: full width, centred vertically
        h2 = w / max(aspect, 1e-6)
        return (x0, y0 + (h - h2) / 2, x1, y0 + (h + h2) / 2)
    if aspect * h < w - 0.5:  # narrower: full height, centred across
        w2 = h * aspect
        return (x0 + (w - w2) / 2, y0, x0 + (w + w2) / 2, y1)
    return cell


def _flow(
    aspects: Sequence[float], row_h: float, inner: float, top: float, margin: float, gap: float
):
    rects: list[Rect] = []
    x, y = margin, top
    for aspect in aspects:
        w, h = _fit(row_h * min(max(aspect, CELL_ASPECT[0]), CELL_ASPECT[1]), row_h, inner)
        if x > margin and x + w > margin + inner:
            x, y = margin, y + row_h + gap
        rects.append((x, y, x + w, y + h))
        x += w + gap
    bottom = y + row_h if rects else top
    return rects, bottom


def hit(rects: Sequence[Rect], x: float, y: float) -> int | None:
    """Index of the rect containing (x, y), or None."""
    for i, (x0, y0, x1, y1) in enumerate(rects):
        if x0 <= x < x1 and y0 <= y < y1:
            return i
    return None


def step_rows(rects: Sequence[Rect], rank: int, rows: int) -> int:
    """The tile ``rows`` rows below ``rank``'s (above where negative) in the result grid
    ``rects`` (cells, rows sharing their top): the one whose middle is nearest across.
    ``rank`` where there is no such row."""
    tops = sorted({r[1] for r in rects})
    x0, y0, x1, _ = rects[rank]
    row = tops.index(y0) + rows
    if not 0 <= row < len(tops):
        return rank
    middle = (x0 + x1) / 2
    there = [i for i, r in enumerate(rects) if r[1] == tops[row]]
    return min(there, key=lambda i: abs((rects[i][0] + rects[i][2]) / 2 - middle))


def pack_rows(widths: Sequence[float], available: float, spacing: float) -> list[list[int]]:
    """Indexes of items laid left to right in rows no wider than ``available`` (items
    ``spacing`` apart), in order; an item wider than a row gets a row of its own. The
    toolbar and the status bar wrap this way when the window is narrow."""
    rows: list[list[int]] = []
    used = 0.0
    for i, w in enumerate(widths):
        if rows and rows[-1] and used + spacing + w <= available:
            rows[-1].append(i)
            used += spacing + w
        else:
            rows.append([i])
            used = w
    return rows


def clamp(value: int, bounds: tuple[int, int]) -> int:
    return max(bounds[0], min(bounds[1], value))
