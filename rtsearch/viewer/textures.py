"""Textures: a raw texture each for the query and the screen preview, and a static texture
per result picture.

Dear PyGui uploads every raw (and dynamic) texture on every frame, shown or not; under Xvfb
and llvmpipe that costs 13-14 ns a texel, ~0.9 ms a frame for one 296x224 tile. The query
changes with every query, about every other frame, so a raw texture suits it (RGB: a quarter
fewer bytes than RGBA). Result pictures mostly come back: a live source's neighbours change a
few at a time and return as the camera moves, so each is made once as a static texture
(uploaded once; ~1.5 ms to make, most of it Dear PyGui copying the floats) and kept while
it is among the KEEP_TILES most recently shown. Rows no taller than half a thumbnail take
it at half size (~0.5 ms to make), so a grid of small tiles fills in a third of the frames.
"""

from __future__ import annotations

from collections import OrderedDict

import cv2
import dearpygui.dearpygui as dpg
import numpy as np

from rtsearch.thumbs import Thumb

KEEP_TILES = 48  # pictures kept as textures: each holds ~1.3 MB (Dear PyGui keeps its floats)
# Making a texture costs about a fixed part plus a part per texel: ~0.45 ms for a 148x112
# one, ~1.45 ms for 296x224 (under Xvfb and llvmpipe). The fixed part, in texels' worth:
MAKE_FIXED_TEXELS = 6_600


def scale_for(thumb: Thumb, rect: tuple) -> int:
    """1: a texture of the whole thumbnail; 2: of it at half size, where the tile shows it
    no bigger than that (small thumbnail rows): a quarter of the texels to make and upload,
    and a picture shrunk by area averaging, sharper than the renderer's minifying."""
    w, h = rect[2] - rect[0], rect[3] - rect[1]
    return 2 if w <= -(-thumb.width // 2) and h <= -(-thumb.height // 2) else 1


def make_cost(thumb: Thumb, scale: int) -> int:
    """What making ``thumb``'s texture at ``scale`` costs, in texels' worth."""
    return -(-thumb.width // scale) * -(-thumb.height // scale) + MAKE_FIXED_TEXELS


class RawImage:
    """A float32 RGB buffer shown through a raw texture; update with ``put``."""

    def __init__(self, registry: int | str, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.buffer = np.zeros((height, width, 3), np.float32)
        self.tag = dpg.add_raw_texture(
            width, height, self.buffer, format=dpg.mvFormat_Float_rgb, parent=registry
        )

    def put(self, tile: np.ndarray) -> None:
        """Show ``tile`` (uint8 RGB of the texture's size)."""
        np.multiply(tile, np.float32(1 / 255), out=self.buffer)

    def delete(self) -> None:
        """Free the texture (nothing may draw it any more)."""
        dpg.delete_item(self.tag)


class TileTextures:
    """Static textures of result pictures, one per thumbnail, made when it first shows and
    kept while it is among the ``keep`` most recently shown. A static texture is uploaded
    once, so a frame pays only for the pictures that came new into view; a raw one is
    uploaded on every frame whether it changed or not."""

    def __init__(self, registry: int | str, keep: int = KEEP_TILES) -> None:
        self.registry = registry
        self.keep = keep
        # (id(thumb), scale) -> (thumb, texture); the thumb is held so its id stays its own
        self._made: OrderedDict[tuple[int, int], tuple[Thumb, int | str]] = OrderedDict()
        self.made = 0  # textures made so far

    def find(self, thumb: Thumb, scale: int = 1) -> int | str | None:
        """The texture made for ``thumb`` at ``scale``, if it is still kept."""
        entry = self._made.get((id(thumb), scale))
        if entry is None:
            return None
        self._made.move_to_end((id(thumb), scale))
        return entry[1]

    def make(self, thumb: Thumb, scale: int = 1) -> int | str:
        """A texture of exactly ``thumb``'s picture (uv 0..1), at full size or shrunk by
        ``scale``, kept as the latest shown."""
        made = self.find(thumb, scale)
        if made is not None:  # never two: the first would be drawn but never freed
            return made
        w, h = thumb.width, thumb.height
        picture = thumb.tile[:h, :w]
        if scale > 1:
            w, h = -(-w // scale), -(-h // scale)
            picture = cv2.resize(picture, (w, h), interpolation=cv2.INTER_AREA)
        # opaque RGBA floats, as static textures take; OpenCV's conversion is ~10x numpy's
        rgba = cv2.cvtColor(picture, cv2.COLOR_RGB2RGBA)
        rgba = np.multiply(rgba, np.float32(1 / 255), dtype=np.float32)
        tag = dpg.add_static_texture(w, h, rgba.ravel(), parent=self.registry)
        self._made[(id(thumb), scale)] = (thumb, tag)
        self.made += 1
        return tag

    def trim(self, in_use: set[int | str]) -> None:
        """Free the least recently shown textures beyond ``keep``, except those in use (a
        draw item points at them)."""
        for key in list(self._made):
            if len(self._made) <= self.keep:
                break
            if self._made[key][1] not in in_use:
                dpg.delete_item(self._made.pop(key)[1])

    def __len__(self) -> int:
        return len(self._made)
