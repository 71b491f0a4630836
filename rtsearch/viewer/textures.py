"""Textures created once after setup: a raw texture for the query and the screen preview,
and a pool of raw textures for result tiles, re-filled only when a slot's file changes."""

from __future__ import annotations

from pathlib import Path

import dearpygui.dearpygui as dpg
import numpy as np

MAX_RESULTS = 100


class RawImage:
    """A float32 RGBA buffer shown through a raw texture; update with ``put``."""

    def __init__(self, registry: int | str, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.buffer = np.zeros((height, width, 4), np.float32)
        self.tag = dpg.add_raw_texture(
            width, height, self.buffer, format=dpg.mvFormat_Float_rgba, parent=registry
        )

    def put(self, tile: np.ndarray) -> None:
        np.copyto(self.buffer, tile)


class ThumbPool:
    """Raw textures of side ``size`` for result tiles; slot i shows result i.

    Measured here (Xvfb, llvmpipe): every texture, raw or dynamic, shown or not, costs upload
    time each frame (100 x 224 px: ~15 ms/frame), and dynamic textures crash a second
    Dear PyGui context in the same process. So the pool is raw and grows to the largest k
    asked for, never shrinks, and never deletes a texture.
    """

    def __init__(self, registry: int | str, size: int) -> None:
        self.registry = registry
        self.size = size
        self.images: list[RawImage] = []
        self.files: list[Path | None] = []  # what each slot holds now

    @property
    def tags(self) -> list[int | str]:
        return [image.tag for image in self.images]

    def ensure(self, count: int) -> list[int | str]:
        """Grow to ``count`` slots (at most MAX_RESULTS); returns the new textures' tags."""
        new = []
        while len(self.images) < min(count, MAX_RESULTS):
            self.images.append(RawImage(self.registry, self.size, self.size))
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
