"""The screengrab rectangle and its on-screen preview: drag by body or corners, clamped.

All region coordinates are physical desktop pixels, as mss captures them: every monitor
together, whose top-left need not be 0,0 (a monitor left of the primary one has negative
x). The preview shows the whole desktop scaled into a canvas rectangle; ``to_screen`` and
``preview_rect`` convert.
HiDPI: the app's window position is reported in logical pixels, so ``scale`` (physical per
logical, detected from mss vs the toolkit, or set by hand) converts it.
"""

from __future__ import annotations

from dataclasses import dataclass

from rtsearch.sources import Box, boxes_overlap

HANDLE = 12  # preview pixels around a corner that grab it
MIN_SIZE = 16


@dataclass
class Preview:
    """Where the desktop's preview sits in the canvas: the canvas point of the desktop's
    top-left, preview px per desktop px, and that top-left in desktop pixels."""

    x: float
    y: float
    scale: float
    left: int = 0
    top: int = 0


class GrabRegion:
    """The rectangle grabbed, on a desktop ``desk`` (left, top, width, height: every
    monitor together); ``home`` is the first monitor, where the default rectangle is;
    ``monitors`` each monitor (none given: the whole desktop is grabbed)."""

    def __init__(
        self, desk: Box, box: Box | None = None, home: Box | None = None,
        monitors: tuple[Box, ...] = (),
    ) -> None:  # fmt: skip
        self.desk = desk
        self.home = home or desk
        self.monitors = tuple(monitors)
        self.box: Box = self._moved_on(box or self.default())
        self._drag: str | None = None
        self._anchor = (0.0, 0.0, self.box)
        self.scale = 1.0  # physical pixels per logical pixel

    def default(self) -> Box:
        """The middle half of the first monitor."""
        x, y, w, h = self.home
        return x + w // 4, y + h // 4, w // 2, h // 2

    def set_desktop(
        self, desk: Box, home: Box | None = None, monitors: tuple[Box, ...] = ()
    ) -> str:
        """The desktop as it is now (monitors added, removed, resized): the region moved
        onto it; "" when it still fitted, else a line saying where it went."""
        self.desk, self.home, self.monitors = desk, home or desk, tuple(monitors)
        box = self.box
        self.box = self._moved_on(box)
        return "" if self.box == box else self._not_fitting(box)

    # -------------------------------------------------------------- geometry
    def fit_preview(self, x: float, y: float, w: float, h: float) -> Preview:
        left, top, dw, dh = self.desk
        return Preview(x, y, min(w / dw, h / dh), left, top)

    @staticmethod
    def to_screen(p: Preview, px: float, py: float) -> tuple[float, float]:
        return (px - p.x) / p.scale + p.left, (py - p.y) / p.scale + p.top

    def preview_rect(self, p: Preview) -> tuple[float, float, float, float]:
        return _on_preview(p, self.box)

    def monitor_rects(self, p: Preview) -> list[tuple[float, float, float, float]]:
        """Each monitor's place on the canvas, where there are several (their edges are
        drawn: a region in a gap between unequal ones grabs nothing)."""
        return [_on_preview(p, m) for m in self.monitors] if len(self.monitors) > 1 else []

    def desk_rect(self, p: Preview) -> tuple[float, float, float, float]:
        """The whole desktop's place on the canvas."""
        _, _, w, h = self.desk
        return p.x, p.y, p.x + w * p.scale, p.y + h * p.scale

    def part_at(self, p: Preview, px: float, py: float, handle: float = HANDLE) -> str | None:
        """'tl', 'br' (corner handles, ``handle`` pixels around), 'body', or None for a
        preview point."""
        x0, y0, x1, y1 = self.preview_rect(p)
        if abs(px - x0) <= handle and abs(py - y0) <= handle:
            return "tl"
        if abs(px - x1) <= handle and abs(py - y1) <= handle:
            return "br"
        if x0 <= px <= x1 and y0 <= py <= y1:
            return "body"
        return None

    # -------------------------------------------------------------- dragging
    def begin(self, part: str | None, sx: float, sy: float) -> bool:
        """Start dragging ``part`` at screen point (sx, sy); False when nothing is grabbed."""
        self._drag = part
        self._anchor = (sx, sy, self.box)
        return part is not None

    def drag(self, sx: float, sy: float) -> None:
        if self._drag is None:
            return
        ax, ay, (x, y, w, h) = self._anchor
        dx, dy = round(sx - ax), round(sy - ay)
        if self._drag == "body":
            self.box = self._moved_on((x + dx, y + dy, w, h))
        elif self._drag == "tl":
            right, bottom = x + w, y + h
            nx = min(max(self.desk[0], x + dx), right - MIN_SIZE)
            ny = min(max(self.desk[1], y + dy), bottom - MIN_SIZE)
            self.box = (nx, ny, right - nx, bottom - ny)
        elif self._drag == "br":
            self.box = self._clamped((x, y, w + dx, h + dy))

    def end(self) -> None:
        self._drag = None

    @property
    def dragging(self) -> bool:
        return self._drag is not None

    def _clamped(self, box: Box) -> Box:
        """Cut at the desktop's right and bottom edges (a corner dragged past them)."""
        x, y, w, h = box
        left, top, dw, dh = self.desk
        x = min(max(left, x), left + dw - MIN_SIZE)
        y = min(max(top, y), top + dh - MIN_SIZE)
        w = min(max(MIN_SIZE, w), left + dw - x)
        h = min(max(MIN_SIZE, h), top + dh - y)
        return x, y, w, h

    def _moved_on(self, box: Box) -> Box:
        """Kept its size (up to the desktop's) and moved the least way onto the desktop,
        and onto a monitor where it would lie in a gap between unequal ones (nothing to
        grab there: a region moved onto the desktop could land in one)."""
        on = _moved_into(box, self.desk)
        if not self.monitors or any(boxes_overlap(on, m) for m in self.monitors):
            return on
        x, y = on[:2]
        return min(
            (_moved_into(on, m) for m in self.monitors),
            key=lambda b: abs(b[0] - x) + abs(b[1] - y),
        )

    def nudge(self, dx: int, dy: int, resize: bool = False, fine: bool = False) -> None:
        """The arrow keys in the grab mode: move the region (``resize``: its bottom-right
        corner) a step of a fiftieth of the desktop's shorter side (``fine``: one pixel)
        each way ``dx``, ``dy`` says (-1, 0 or 1)."""
        step = 1 if fine else max(4, min(self.desk[2:]) // 50)
        x, y, w, h = self.box
        if resize:
            self.box = self._clamped((x, y, w + dx * step, h + dy * step))
        else:
            self.box = self._moved_on((x + dx * step, y + dy * step, w, h))

    def center_on(self, sx: float, sy: float) -> None:
        """Move the region (same size) so its centre is at the screen point, clamped."""
        _, _, w, h = self.box
        self.box = self._moved_on((round(sx - w / 2), round(sy - h / 2), w, h))

    def set_box(self, box: Box) -> str:
        """Take ``box`` as the region, moved onto the screen (and no larger than it); "" when
        it fitted, else a line saying what became of it."""
        self.box = self._moved_on(box)
        return "" if self.box == tuple(box) else self._not_fitting(box)

    def _not_fitting(self, box: Box) -> str:
        """What became of ``box``, which did not fit."""
        if box[2] < MIN_SIZE or box[3] < MIN_SIZE:
            return (
                f"the screen region {_spec(box)} is smaller than {MIN_SIZE}x{MIN_SIZE}:"
                f" now {_spec(self.box)} (G to choose another)"
            )
        return (
            f"the screen region {_spec(box)} does not fit the {self.desk_text()}: "
            f"now {_spec(self.box)} (G to choose another)"
        )

    def desk_text(self) -> str:
        """The desktop in words: "1440x900 screen", "3200x1080 desktop at -1280,0"."""
        left, top, w, h = self.desk
        where = f" at {left},{top}" if (left, top) != (0, 0) else ""
        return f"{w}x{h} {'screen' if self.desk == self.home else 'desktop'}{where}"

    # -------------------------------------------------------------- own window
    def to_physical(self, window: Box) -> Box:
        """A box in logical pixels (e.g. the viewport) in the region's physical pixels."""
        x, y, w, h = (round(v * self.scale) for v in window)
        return x, y, w, h

    def overlaps(self, window: Box) -> bool:
        """Does the region overlap ``window`` (logical pixels, e.g. the viewport)?"""
        return boxes_overlap(self.box, self.to_physical(window))


def _on_preview(p: Preview, box: Box) -> tuple[float, float, float, float]:
    """A box of the desktop (left, top, width, height) as x0, y0, x1, y1 on the canvas."""
    x, y, w, h = box
    x0, y0 = p.x + (x - p.left) * p.scale, p.y + (y - p.top) * p.scale
    return x0, y0, x0 + w * p.scale, y0 + h * p.scale


def _moved_into(box: Box, area: Box) -> Box:
    """``box`` kept its size (up to the area's) and moved the least way into ``area``."""
    x, y, w, h = box
    left, top, aw, ah = area
    w = min(max(MIN_SIZE, w), aw)
    h = min(max(MIN_SIZE, h), ah)
    return min(max(left, x), left + aw - w), min(max(top, y), top + ah - h), w, h


def _spec(box: Box) -> str:
    """A box as ``--source screen:`` takes it (x,y,w,h)."""
    return ",".join(str(v) for v in box)


def detect_scale(physical_w: int, logical_w: int | None) -> float:
    """Physical per logical pixel; 1.0 when the logical size is unknown."""
    if not logical_w:
        return 1.0
    ratio = physical_w / logical_w
    return round(ratio * 4) / 4 if ratio > 0 else 1.0  # HiDPI factors come in quarters
