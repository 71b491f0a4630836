"""Textures: a raw texture each for the query and the screen preview, and a static texture
per result picture at the size its row shows it.

Dear PyGui uploads every raw (and dynamic) texture on every frame, shown or not; under Xvfb
and llvmpipe that costs 13-14 ns a texel, ~0.9 ms a frame for one 296x224 tile. The query
changes with every query, about every other frame, so a raw texture suits it (RGB: a quarter
fewer bytes than RGBA). Result pictures mostly come back: a live source's neighbours change a
few at a time and return as the camera moves, so each is made once as a static texture
(uploaded once) and kept while it is among the recently shown. It is made at one of HEIGHTS,
the first at least as tall as its row: the renderer then only shrinks it a little, and small
rows take small, cheap textures, so a grid of small tiles fills in a few frames. Making one
took 1.0 ms at 91 px, 2.9 ms at 224 and 8.6 ms at 420 (560x420) in a Dear PyGui process
under Xvfb here, most of it Dear PyGui copying the floats (medians of 15).
"""

from __future__ import annotations

from collections import OrderedDict

import cv2
import dearpygui.dearpygui as dpg
import numpy as np

from rtsearch.thumbs import Thumb
from rtsearch.viewer import layout

KEEP_TILES = 48  # pictures kept as textures (a page of results and its neighbours) ...
KEEP_BYTES = 64 * 2**20  # ... within this (Dear PyGui keeps a texture's floats: 16 B a texel)
# Making a texture costs about a fixed part plus a part per texel: ~0.45 ms for a 148x112
# one, ~1.45 ms for 296x224 when this was set (under Xvfb and llvmpipe; the same machine
# measured 1.0 ms at 120x91 and 2.9 ms at 299x224 on a slower evening, see the module's
# docstring). The fixed part, in texels' worth, from the first figures:
MAKE_FIXED_TEXELS = 6_600
# Texture heights, from the tallest row down in steps of 1/8. The renderer samples without
# mipmaps: shrinking a picture by more than that skips texels (edges shimmer), and enlarging
# it blurs; shrunk on the CPU by area averaging, a picture stays sharp at any row height.
# Steps, rather than the row's own height, let a row resized a little keep its textures.
STEP = 1.125
HEIGHTS = tuple(
    sorted({round(layout.THUMB_RANGE[1] / STEP**i) for i in range(40)} - set(range(32)))
)


def texture_height(thumb: Thumb, rect: tuple) -> int:
    """The height to make ``thumb``'s texture at for a tile drawn at ``rect``: the first of
    HEIGHTS at least as tall as the tile, never taller than the thumbnail's picture."""
    shown = rect[3] - rect[1]
    step = next((h for h in HEIGHTS if h >= shown - 0.5), HEIGHTS[-1])
    return min(step, thumb.height)


def texture_width(thumb: Thumb, height: int) -> int:
    return max(1, round(thumb.width * height / thumb.height))


def make_cost(thumb: Thumb, height: int) -> int:
    """What making ``thumb``'s texture at ``height`` costs, in texels' worth."""
    return texture_width(thumb, height) * height + MAKE_FIXED_TEXELS


def edge_uv(
    texels: tuple[int, int], used: tuple[int, int], rect: tuple
) -> tuple[tuple[float, float], tuple[float, float]]:
    """uv of the ``used`` (width, height) texels at the top left of a texture of ``texels``,
    drawn at ``rect``. Drawn larger than they are, each edge is drawn from half a texel in:
    filtering at the very edge wraps round to the opposite one (textures repeat), and drew
    a line of a picture's bottom row above its top, and of its right column beside its
    left (a 224 px result in 232 px rows, a small query in a tall header)."""
    (tw, th), (w, h) = texels, used
    u, v = w / tw, h / th
    if rect[2] - rect[0] <= w and rect[3] - rect[1] <= h:
        return (0.0, 0.0), (u, v)
    du, dv = 0.5 / tw, 0.5 / th
    return (du, dv), (u - du, v - dv)


class PictureTexture:
    """Pictures of changing sizes (the query, the desktop's preview) drawn from dynamic
    textures kept by size, each at least its picture's size (each side rounded up to one
    of ``SIDES``, quarter octaves: at most 1.19 times it, so a few sizes serve every shape;
    draw it with ``edge_uv(texels, used, rect)``). A texture is uploaded only when
    a picture is put into it, and none is freed while fewer than ``keep`` sizes are in
    use: Dear PyGui never gives back a deleted raw or dynamic texture's memory (3 MiB each
    time a 640x400 one went: a viewer grew by 1 GB in minutes of switching sources and
    entering the grab mode, where the query's texture was made anew for each new size)."""

    SIDES = tuple(round(16 * 2 ** (i / 4)) for i in range(33))  # 16 ... 4096

    def __init__(self, registry: int | str, keep: int = 16) -> None:
        self.registry = registry
        self.keep = keep
        # (width, height) of a texture -> (its tag, its RGBA float buffer)
        self._made: OrderedDict[tuple[int, int], tuple[int | str, np.ndarray]] = OrderedDict()
        self.tag: int | str = self._texture(16, 16)
        self.width = self.height = 16  # the texture drawn now: its texels
        self.used = (1, 1)  # (width, height) of the picture in its top left

    def put(self, picture: np.ndarray) -> None:
        """Show ``picture`` (uint8 RGB): ``tag`` may name another texture after it."""
        h, w = picture.shape[:2]
        tw, th = (next((s for s in self.SIDES if s >= side), side) for side in (w, h))
        self.tag = self._texture(tw, th)
        buffer = self._made[(tw, th)][1]
        # (OpenCV's conversion, then one pass into the buffer: 0.7 ms a 267x200 picture
        # took through numpy's casts, 0.1 ms so)
        np.multiply(cv2.cvtColor(picture, cv2.COLOR_RGB2RGBA), np.float32(1 / 255),
                    out=buffer[:h, :w])  # fmt: skip
        # the texel beyond each edge as the edge: filtering at the edge reads it
        if w < tw:
            buffer[:h, w] = buffer[:h, w - 1]
        if h < th:
            buffer[h, : min(w + 1, tw)] = buffer[h - 1, : min(w + 1, tw)]
        dpg.set_value(self.tag, buffer.ravel())
        self.width, self.height, self.used = tw, th, (w, h)

    def _texture(self, width: int, height: int) -> int | str:
        made = self._made.get((width, height))
        if made is not None:
            self._made.move_to_end((width, height))
            return made[0]
        if len(self._made) >= self.keep:  # the least recently used size goes
            _, (tag, _) = self._made.popitem(last=False)
            if tag != self.tag:
                dpg.delete_item(tag)
        buffer = np.ones((height, width, 4), np.float32)  # (alpha stays 1)
        tag = dpg.add_dynamic_texture(width, height, buffer.ravel(), parent=self.registry)
        self._made[(width, height)] = (tag, buffer)
        return tag

    def textures(self) -> set[int | str]:
        return {tag for tag, _ in self._made.values()}


class TileTextures:
    """Static textures of result pictures, one per thumbnail and height, made when it first
    shows and kept while it is among the ``keep`` most recently shown and their floats fit in
    ``keep_bytes``. A static texture is uploaded once, so a frame pays only for the pictures
    that came new into view; a raw one is uploaded on every frame whether it changed or not."""

    def __init__(
        self, registry: int | str, keep: int = KEEP_TILES, keep_bytes: int = KEEP_BYTES
    ) -> None:
        self.registry = registry
        self.keep = keep
        self.keep_bytes = keep_bytes
        # (id(thumb), height) -> (thumb, texture, bytes); the thumb is held so its id stays
        # its own
        self._made: OrderedDict[tuple[int, int], tuple[Thumb, int | str, int]] = OrderedDict()
        self.nbytes = 0  # what the kept textures hold
        self.made = 0  # textures made so far
        self._sizes: dict[int | str, tuple[int, int]] = {}  # texture -> (width, height)

    def find(self, thumb: Thumb, height: int) -> int | str | None:
        """The texture made for ``thumb`` at ``height``, if it is still kept."""
        entry = self._made.get((id(thumb), height))
        if entry is None:
            return None
        self._made.move_to_end((id(thumb), height))
        return entry[1]

    def find_any(self, thumb: Thumb) -> int | str | None:
        """The tallest texture kept for ``thumb`` at any height (one to stand in while the
        right one waits)."""
        heights = [h for (key, h) in self._made if key == id(thumb)]
        return self.find(thumb, max(heights)) if heights else None

    def make(self, thumb: Thumb, height: int) -> int | str:
        """A texture of exactly ``thumb``'s picture (uv 0..1) at ``height`` pixels (shrunk
        by area averaging where that is less than the picture's), kept as the latest shown."""
        made = self.find(thumb, height)
        if made is not None:  # never two: the first would be drawn but never freed
            return made
        picture = thumb.tile[: thumb.height, : thumb.width]
        w = texture_width(thumb, height)
        if height != thumb.height:
            picture = cv2.resize(picture, (w, height), interpolation=cv2.INTER_AREA)
        # opaque RGBA floats, as static textures take; OpenCV's conversion is ~10x numpy's
        rgba = cv2.cvtColor(picture, cv2.COLOR_RGB2RGBA)
        rgba = np.multiply(rgba, np.float32(1 / 255), dtype=np.float32)
        tag = dpg.add_static_texture(w, height, rgba.ravel(), parent=self.registry)
        self._made[(id(thumb), height)] = (thumb, tag, rgba.nbytes)
        self._sizes[tag] = (w, height)
        self.nbytes += rgba.nbytes
        self.made += 1
        return tag

    def trim(self, in_use: set[int | str]) -> None:
        """Free the least recently shown textures beyond ``keep`` or ``keep_bytes``, except
        those in use (a draw item points at them)."""
        for key in list(self._made):
            if len(self._made) <= self.keep and self.nbytes <= self.keep_bytes:
                break
            _, tag, nbytes = self._made[key]
            if tag not in in_use:
                del self._made[key]
                del self._sizes[tag]
                self.nbytes -= nbytes
                dpg.delete_item(tag)

    def uv(self, tag: int | str, rect: tuple) -> tuple[tuple[float, float], tuple[float, float]]:
        """The part of texture ``tag`` to draw at ``rect`` (edge_uv); the whole of one not
        made here (the blank texture)."""
        size = self._sizes.get(tag)
        return ((0.0, 0.0), (1.0, 1.0)) if size is None else edge_uv(size, size, rect)

    def textures(self) -> set[int | str]:
        """Every kept texture."""
        return {entry[1] for entry in self._made.values()}

    def __len__(self) -> int:
        return len(self._made)
