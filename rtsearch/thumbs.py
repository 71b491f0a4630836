"""Result thumbnails: decode, shrink to fit a fixed tile, LRU-cached by file.

A tile is uint8 RGB (height, width, 3) with the picture in its top-left corner and the rest
black; ``Thumb.width/height`` say how much of the tile the picture covers, so a viewer shows
exactly that part (uv = width/tile width, height/tile height) and keeps the aspect. Bytes,
as decoded: the 300 cached tiles hold 60 MB, where float32 tiles held 239 MB; the viewer
turns a picture into floats (0..1) only when it makes a texture of it. Tiles are landscape
(the viewer's are 4:3): most photos, screens and videos are, and a square tile left a 16:9
picture 126 rows to fill a 232 px row. RGB, not RGBA: the viewer's query is a raw texture,
re-uploaded every frame, and a fourth channel nobody sees would be a third more bytes a
frame; it makes a result's texture from the picture's part.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rtsearch.decode import RGBImage, fit_within, load_rgb, resize_to

Tile = npt.NDArray[np.uint8]  # (height, width, 3) RGB
Box = int | tuple[int, int]  # a tile's (width, height); an int is a square


def box_size(box: Box) -> tuple[int, int]:
    return (box, box) if isinstance(box, int) else box


@dataclass(frozen=True)
class Thumb:
    tile: Tile
    width: int  # picture pixels used in the tile
    height: int

    @property
    def aspect(self) -> float:
        return self.width / self.height


def to_tile(image: RGBImage, size: Box) -> Thumb:
    """Fit ``image`` (RGB uint8) into an RGB uint8 tile of ``size``, top-left."""
    box_w, box_h = box_size(size)
    h, w = image.shape[:2]
    scale = min(box_h / h, box_w / w)
    if scale > 1.0:  # small pictures are enlarged so tiles look alike
        shape = (min(box_h, max(1, round(h * scale))), min(box_w, max(1, round(w * scale))))
        image = resize_to(image, shape)
    else:
        image = fit_within(image, box_h, box_w)
    h, w = image.shape[:2]
    tile = np.zeros((box_h, box_w, 3), np.uint8)
    tile[:h, :w] = image
    return Thumb(tile, w, h)


@functools.lru_cache(maxsize=4)
def placeholder(size: Box, grey: int = 89) -> Thumb:
    """A grey tile for a result whose file cannot be read (the viewer says why); the same
    object each time, so the viewer makes one texture for all of them."""
    w, h = box_size(size)
    return Thumb(np.full((h, w, 3), grey, np.uint8), w, h)


Stamp = tuple[int, int]  # a file's (mtime in ns, size): a different one is another picture


def _stamp(path: Path) -> Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # decoding says why
    return st.st_mtime_ns, st.st_size


class ThumbCache:
    """Tiles by file, least recently used dropped first; safe to share between threads. A
    cached tile is used while its file keeps the size and modification time it was read
    with (one stat: ~2 us), so a picture replaced on disk (``view --watch``) shows anew."""

    def __init__(self, size: Box, capacity: int = 300) -> None:
        self.size = size
        self.capacity = capacity
        self._items: OrderedDict[Path, tuple[Stamp | None, Thumb]] = OrderedDict()
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
        w, h = box_size(self.size)
        thumb = to_tile(load_rgb(path, min_size=(h, w)), self.size)
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
        stamps = {p: _stamp(p) for p in paths}
        cached: dict[Path, Thumb] = {}
        with self._lock:
            for p in paths:
                thumb = self._cached(p, stamps[p])
                if thumb is not None:
                    cached[p] = thumb
        missing = list(dict.fromkeys(p for p in paths if p not in cached))
        fetch = map if pool is None or len(missing) < 2 else pool.map
        loaded = fetch(self._load_or_error, missing, [stamps[p] for p in missing])
        decoded = dict(zip(missing, loaded, strict=True))
        return [cached[p] if p in cached else decoded[p] for p in paths]

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
