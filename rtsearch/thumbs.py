"""Result thumbnails: decode, fit to a box, LRU-cached by file.

A thumbnail is the picture itself, shrunk (or enlarged, if small) to fit a box: as tall as
the box unless it is wider than the box's aspect. The viewer's boxes are 2:1, so a 16:9
frame or a 3:2 photo fills its row's height from as many pixels as a 4:3 one (a 4:3 box gave
a 16:9 picture 166 of a 232 px row's pixels), and a portrait one is as tall. Each holds only
its own pixels: 201 KB for a 4:3 picture 224 px tall, 267 KB for 16:9. Bytes, as decoded
(uint8 RGB); the viewer turns a picture into floats (0..1) only when it makes a texture.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rtsearch.decode import RGBImage, load_rgb, picture_size, resize_to

Tile = npt.NDArray[np.uint8]  # (height, width, 3) RGB
Box = int | tuple[int, int]  # a box's (width, height); an int is a square


def box_size(box: Box) -> tuple[int, int]:
    return (box, box) if isinstance(box, int) else box


@dataclass(frozen=True)
class Thumb:
    tile: Tile
    width: int  # picture pixels used in the tile (all of it, as the viewer makes them)
    height: int

    @property
    def aspect(self) -> float:
        return self.width / self.height


def fit(image: RGBImage, size: Box) -> RGBImage:
    """``image`` (RGB uint8) scaled to fit ``size`` keeping its aspect; small pictures are
    enlarged so that results look alike."""
    shape = fitted_shape(*image.shape[:2], size)
    return image if shape == image.shape[:2] else resize_to(image, shape)


def fitted_shape(h: int, w: int, size: Box) -> tuple[int, int]:
    """The (height, width) a picture of ``h`` x ``w`` takes fitted to ``size`` (``fit``)."""
    box_w, box_h = box_size(size)
    scale = min(box_h / h, box_w / w)
    if scale > 1.0:
        return min(box_h, max(1, round(h * scale))), min(box_w, max(1, round(w * scale)))
    return max(1, round(h * scale)), max(1, round(w * scale))  # (scale 1: h, w exactly)


def to_thumb(image: RGBImage, size: Box) -> Thumb:
    """``image`` fitted to ``size``, holding only its own pixels."""
    picture = np.ascontiguousarray(fit(image, size))
    if picture is image:  # already that size: a copy, not the caller's array
        picture = picture.copy()
    return Thumb(picture, picture.shape[1], picture.shape[0])


@functools.lru_cache(maxsize=4)
def placeholder(height: int, grey: int = 89) -> Thumb:
    """A 4:3 grey picture ``height`` tall for a result whose file cannot be read (the viewer
    says why); the same object each time, so the viewer makes one texture for all of them."""
    width = round(height * 4 / 3)
    return Thumb(np.full((height, width, 3), grey, np.uint8), width, height)


def stand_in(path: Path, size: Box, grey: int) -> Thumb:
    """A grey picture of the shape ``path``'s picture takes fitted to ``size``, from its
    header alone (``picture_size``): what shows while the picture decodes, so that the rows
    do not move when it comes; 4:3 where the header does not say."""
    shape = picture_size(path)
    if shape is None:
        return placeholder(box_size(size)[1], grey)
    return _grey(*fitted_shape(shape[1], shape[0], size), grey)


@functools.lru_cache(maxsize=64)
def _grey(h: int, w: int, grey: int) -> Thumb:
    """One object for each shape: one texture for all the tiles of that shape."""
    return Thumb(np.full((h, w, 3), grey, np.uint8), w, h)


Stamp = tuple[int, int]  # a file's (mtime in ns, size): a different one is another picture


def _stamp(path: Path) -> Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # decoding says why
    return st.st_mtime_ns, st.st_size


class ThumbCache:
    """Thumbnails fitted to the box ``size`` by file, least recently used dropped first; safe
    to share between threads. A cached one is used while its file keeps the size and
    modification time it was read with (one stat: ~2 us), so a picture replaced on disk
    (``view --watch``) shows anew."""

    def __init__(self, size: Box, capacity: int = 300) -> None:
        self.size = size
        self.capacity = capacity
        self._items: OrderedDict[Path, tuple[Stamp | None, Thumb]] = OrderedDict()
        # decodes start_many has begun on a pool and not finished: a file asked for again
        # meanwhile (the same results searched again) shares its Future, not decoded twice
        self._decoding: dict[Path, tuple[Stamp | None, Future]] = {}
        self._lock = threading.Lock()
        self.misses = 0

    def _cached(self, path: Path, stamp: Stamp | None) -> Thumb | None:
        """The cached tile when it was read from the same file (call with the lock held)."""
        entry = self._items.get(path)
        if entry is None or entry[0] != stamp:
            return None
        self._items.move_to_end(path)
        return entry[1]

    def get(self, path: Path) -> Thumb:
        """The tile for ``path``; raises what decoding raises (the caller decides)."""
        stamp = _stamp(path)
        with self._lock:
            thumb = self._cached(path, stamp)
        return thumb if thumb is not None else self._load(path, stamp)

    def _load(self, path: Path, stamp: Stamp | None) -> Thumb:
        """Decode ``path`` (``stamp``: its file as stat saw it just before) and keep it."""
        # decoded (JPEGs: reduced by up to 8) no smaller than the box's height both ways,
        # enough for a picture of any aspect: fitted, it is at most that tall, and its width
        # is its aspect times its height either way
        h = box_size(self.size)[1]
        thumb = to_thumb(load_rgb(path, min_size=(h, h)), self.size)
        with self._lock:
            self.misses += 1
            self._items[path] = (stamp, thumb)
            self._items.move_to_end(path)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return thumb

    def get_many(
        self, paths: Sequence[Path], pool: Executor | None = None
    ) -> list[Thumb | Exception]:
        """Tiles for ``paths`` in order; those not cached are decoded at once on ``pool``
        (decoding holds the interpreter lock only briefly, so it spreads over the cores: 20
        new 12 MP results are ~300 ms of decoding on one core). A file that cannot be read
        gives its exception in its place."""
        tiles = self.start_many(paths, pool if pool is not None and len(paths) > 1 else None)
        return [t.result() if isinstance(t, Future) else t for t in tiles]

    def start_many(
        self, paths: Sequence[Path], pool: Executor | None = None
    ) -> list[Thumb | Exception | Future]:
        """As ``get_many``, without waiting: a tile not cached is a Future of its tile (or
        exception) decoding on ``pool``, in the order of ``paths`` (the first come first);
        decoded here, one after the other, without a pool. A file named twice, or one still
        decoding for an earlier call, is decoded once: its Future is shared (cancel one only
        when no caller wants it)."""
        stamps = {p: _stamp(p) for p in paths}
        found: dict[Path, Thumb | Future] = {}
        with self._lock:
            for p in paths:
                thumb = self._cached(p, stamps[p])
                decoding = self._decoding.get(p)
                if thumb is not None:
                    found[p] = thumb
                elif decoding is not None and decoding[0] == stamps[p]:
                    found[p] = decoding[1]
        started: dict[Path, Thumb | Exception | Future] = {}
        for p in dict.fromkeys(p for p in paths if p not in found):
            if pool is None:
                started[p] = self._load_or_error(p, stamps[p])
            else:
                started[p] = self._submit(pool, p, stamps[p])
        return [found[p] if p in found else started[p] for p in paths]

    def _submit(self, pool: Executor, path: Path, stamp: Stamp | None) -> Future:
        future = pool.submit(self._load_or_error, path, stamp)
        with self._lock:
            self._decoding[path] = (stamp, future)

        def finished(done: Future) -> None:
            with self._lock:
                if self._decoding.get(path, (None, None))[1] is done:
                    del self._decoding[path]

        future.add_done_callback(finished)
        return future

    def _load_or_error(self, path: Path, stamp: Stamp | None) -> Thumb | Exception:
        try:
            return self._load(path, stamp)
        except Exception as exc:
            return exc

    @property
    def nbytes(self) -> int:
        """What the cached tiles hold."""
        with self._lock:
            return sum(thumb.tile.nbytes for _, thumb in self._items.values())

    def __len__(self) -> int:
        return len(self._items)
