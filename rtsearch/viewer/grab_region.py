"""The screengrab rectangle and its on-screen preview: drag by body or corners, clamped.

All region coordinates are physical screen pixels (what mss captures). The preview shows
the whole screen scaled into a canvas rectangle; ``to_screen``/``to_preview`` convert.
HiDPI: the app's window position is reported in logical pixels, so ``scale`` (physical per
logical, detected from mss vs the toolkit, or set by hand) converts it.
"""

from __future__ import annotations

from dataclasses import dataclass

from rtsearch.sources import boxes_overlap

Box = tuple[int, int, int, int]  # x, y, w, h

HANDLE = 12  # preview pixels around a corner that grab it
MIN_SIZE = 16


@dataclass
class Preview:
    """Where the screen preview sits in the canvas: origin and preview px per screen px."""

    x: float
    y: float
    scale: float


class GrabRegion:
    def __init__(self, screen_w: int, screen_h: int, box: Box | None = None) -> None:
        self.screen_w, self.screen_h = screen_w, screen_h
        default = (screen_w // 4, screen_h // 4, screen_w // 2, screen_h // 2)
        self.box: Box = self._moved_on(box or default)
        self._drag: str | None = None
        self._anchor = (0.0, 0.0, self.box)
        self.scale = 1.0  # physical pixels per logical pixel

    # -------------------------------------------------------------- geometry
    def fit_preview(self, x: float, y: float, w: float, h: float) -> Preview:
        s = min(w / self.screen_w, h / self.screen_h)
        return Preview(x, y, s)

    @staticmethod
    def to_screen(p: Preview, px: float, py: float) -> tuple[float, float]:
        return (px - p.x) / p.scale, (py - p.y) / p.scale

    def preview_rect(self, p: Preview) -> tuple[float, float, float, float]:
        x, y, w, h = self.box
        return (
            p.x + x * p.scale,
            p.y + y * p.scale,
            p.x + (x + w) * p.scale,
            p.y + (y + h) * p.scale,
        )

    def part_at(self, p: Preview, px: float, py: float) -> str | None:
        """'tl', 'br' (corner handles), 'body', or None for a preview point."""
        x0, y0, x1, y1 = self.preview_rect(p)
        if abs(px - x0) <= HANDLE and abs(py - y0) <= HANDLE:
            return "tl"
        if abs(px - x1) <= HANDLE and abs(py - y1) <= HANDLE:
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
            nx = min(max(0, x + dx), right - MIN_SIZE)
            ny = min(max(0, y + dy), bottom - MIN_SIZE)
            self.box = (nx, ny, right - nx, bottom - ny)
        elif self._drag == "br":
            self.box = self._clamped((x, y, w + dx, h + dy))

    def end(self) -> None:
        self._drag = None

    @property
    def dragging(self) -> bool:
        return self._drag is not None

    def _clamped(self, box: Box) -> Box:
        """Cut at the screen's right and bottom edges (a corner dragged past them)."""
        x, y, w, h = box
        x = min(max(0, x), self.screen_w - MIN_SIZE)
        y = min(max(0, y), self.screen_h - MIN_SIZE)
        w = min(max(MIN_SIZE, w), self.screen_w - x)
        h = min(max(MIN_SIZE, h), self.screen_h - y)
        return x, y, w, h

    def _moved_on(self, box: Box) -> Box:
        """Kept its size (up to the screen's) and moved the least way onto the screen."""
        x, y, w, h = box
        w = min(max(MIN_SIZE, w), self.screen_w)
        h = min(max(MIN_SIZE, h), self.screen_h)
        return min(max(0, x), self.screen_w - w), min(max(0, y), self.screen_h - h), w, h

    def center_on(self, sx: float, sy: float) -> None:
        """Move the region (same size) so its centre is at the screen point, clamped."""
        _, _, w, h = self.box
        self.box = self._moved_on((round(sx - w / 2), round(sy - h / 2), w, h))

    def set_box(self, box: Box) -> str:
        """Take ``box`` as the region, moved onto the screen (and no larger than it); "" when
        it fitted, else a line saying what became of it."""
        self.box = self._moved_on(box)
        if self.box == tuple(box):
            return ""
        if box[2] < MIN_SIZE or box[3] < MIN_SIZE:
            return (
                f"the screen region {_spec(box)} is smaller than {MIN_SIZE}x{MIN_SIZE}:"
                f" grabbing {_spec(self.box)} instead (G to choose another)"
            )
        return (
            f"the screen region {_spec(box)} does not fit the {self.screen_w}x{self.screen_h}"
            f" screen: grabbing {_spec(self.box)} instead (G to choose another)"
        )

    # -------------------------------------------------------------- own window
    def to_physical(self, window: Box) -> Box:
        """A box in logical pixels (e.g. the viewport) in the region's physical pixels."""
        x, y, w, h = (round(v * self.scale) for v in window)
        return x, y, w, h

    def overlaps(self, window: Box) -> bool:
        """Does the region overlap ``window`` (logical pixels, e.g. the viewport)?"""
        return boxes_overlap(self.box, self.to_physical(window))


def _spec(box: Box) -> str:
    """A box as ``--source screen:`` takes it (x,y,w,h)."""
    return ",".join(str(v) for v in box)


def detect_scale(physical_w: int, logical_w: int | None) -> float:
    """Physical per logical pixel; 1.0 when the logical size is unknown."""
    if not logical_w:
        return 1.0
    ratio = physical_w / logical_w
    return round(ratio * 4) / 4 if ratio > 0 else 1.0  # HiDPI factors come in quarters
