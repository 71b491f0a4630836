"""Where things go in the viewer's canvas: pure geometry, no GUI, so it is tested directly.

Coordinates are canvas pixels, origin top-left; a Rect is (x0, y0, x1, y1).
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


@dataclass(frozen=True)
class Layout:
    query_label: tuple[float, float]
    query: Rect
    results_label: tuple[float, float]
    results: tuple[Rect, ...]  # one per result, in rank order; may reach below the canvas
    height: float  # bottom of the last row, for scrolling

    def visible(self, canvas_h: float) -> int:
        """How many result tiles start inside the canvas."""
        return sum(1 for r in self.results if r[1] < canvas_h)


def compute(
    canvas_w: float,
    header_h: float,
    thumb_h: float,
    query_aspect: float,
    result_aspects: Sequence[float],
) -> Layout:
    """Query on top (``header_h`` tall), results below in rows ``thumb_h`` tall, flowing left
    to right, each as wide as its aspect ratio (width / height) asks; a picture wider than
    the canvas is shrunk to fit rather than cropped."""
    inner = max(canvas_w - 2 * MARGIN, 1.0)
    y = MARGIN
    query_label = (MARGIN, y)
    y += LABEL_H
    qw, qh = _fit(header_h * query_aspect, header_h, inner)
    query = (MARGIN, y, MARGIN + qw, y + qh)
    y += header_h + GAP
    results_label = (MARGIN, y)
    y += LABEL_H
    rects, bottom = _flow(result_aspects, thumb_h, inner, y)
    return Layout(query_label, query, results_label, tuple(rects), bottom + MARGIN)


def _fit(w: float, h: float, max_w: float) -> tuple[float, float]:
    if w <= max_w:
        return w, h
    return max_w, h * max_w / w


def _flow(aspects: Sequence[float], row_h: float, inner: float, top: float):
    rects: list[Rect] = []
    x, y = MARGIN, top
    for aspect in aspects:
        w, h = _fit(row_h * max(aspect, 0.05), row_h, inner)
        if x > MARGIN and x + w > MARGIN + inner:
            x, y = MARGIN, y + row_h + GAP
        rects.append((x, y, x + w, y + h))
        x += w + GAP
    bottom = y + row_h if rects else top
    return rects, bottom


def hit(rects: Sequence[Rect], x: float, y: float) -> int | None:
    """Index of the rect containing (x, y), or None."""
    for i, (x0, y0, x1, y1) in enumerate(rects):
        if x0 <= x < x1 and y0 <= y < y1:
            return i
    return None


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
