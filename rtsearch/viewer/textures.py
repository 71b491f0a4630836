"""Textures created once after setup: a raw texture for the query and the screen preview,
and a pool of raw textures for the result tiles on screen, re-filled only when a slot's file
changes.

Dear PyGui uploads every raw and dynamic texture on every frame, shown or not; measured here
(Xvfb, llvmpipe) that costs ~8 ns per texel, ~0.4 ms per 224 px RGBA texture per frame. A
static texture is uploaded once but costs ~2.3x that to make, so it loses as soon as results
change on most frames (a live source). Hence raw textures, RGB rather than RGBA (a quarter
fewer bytes), and only as many as there are result tiles on screen: at the default window
and thumbnail size 6 to 10 of 20 results are visible without scrolling, by their shapes.
"""

from __future__ import annotations

from pathlib import Path

import dearpygui.dearpygui as dpg
import numpy as np

MAX_RESULTS = 100


class RawImage:
    """A float32 RGB buffer shown through a raw texture; update with ``put``."""

    def __init__(self, registry: int | str, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.buffer = np.zeros((height, width, 3), np.float32)
        self.tag = dpg.add_raw_texture(
            width, height, self.buffer, format=dpg.mvFormat_Float_rgb, parent=registry
        )

    def put(self, tile: np.ndarray) -> None:
        np.copyto(self.buffer, tile)

    def delete(self) -> None:
        """Free the texture (nothing may draw it any more)."""
        dpg.delete_item(self.tag)


class ThumbPool:
    """Raw textures of ``size`` (width, height) for the result tiles on screen; slot i shows
    the i-th visible result. The pool grows to the most tiles ever visible at once (at most
    MAX_RESULTS) and never shrinks: after the window is made smaller, its spare textures are
    still uploaded every frame until the viewer restarts. (Dynamic textures, which would
    avoid the pool, crash a second Dear PyGui context in the same process.)
    """

    def __init__(self, registry: int | str, size: tuple[int, int]) -> None:
        self.registry = registry
        self.size = size  # (width, height)
        self.images: list[RawImage] = []
        self.files: list[Path | None] = []  # what each slot holds now

    @property
    def tags(self) -> list[int | str]:
        return [image.tag for image in self.images]

    def ensure(self, count: int) -> list[int | str]:
        """Grow to ``count`` slots (at most MAX_RESULTS); returns the new textures' tags."""
        new = []
        while len(self.images) < min(count, MAX_RESULTS):
            self.images.append(RawImage(self.registry, *self.size))
            self.files.append(None)
            new.append(self.images[-1].tag)
        return new

    def assign(self, files: list[Path], tiles: list[np.ndarray]) -> int:
        """Copy in the tiles whose slot holds another file; returns how many changed."""
        self.ensure(len(files))
        changed = 0
        for i, (file, tile) in enumerate(zip(files, tiles, strict=True)):
            if self.files[i] != file:
                self.images[i].put(tile)
                self.files[i] = file
                changed += 1
        return changed
