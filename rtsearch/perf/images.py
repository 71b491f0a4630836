"""Generated photo-like test pictures: smooth colour fields with edges and grain.

Pure noise would make JPEGs many times larger (and slower to decode) than photographs of the
same size; upscaled low-resolution fields plus mild grain decode like real photos.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from rtsearch.extractor import cores


def picture(height: int, width: int, seed: int) -> np.ndarray:
    """One (height, width, 3) uint8 picture, different for every seed."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    img = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(4):  # hard edges, as objects give
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(min(height, width) // 12, min(height, width) // 4))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.circle(img, (x, y), r, colour, thickness=-1)
    grain = rng.integers(-6, 7, (height // 4 + 1, width // 4 + 1, 1), dtype=np.int16)
    grain = cv2.resize(grain.astype(np.float32), (width, height))[..., None]
    return np.clip(img.astype(np.float32) + grain, 0, 255).astype(np.uint8)


def write_jpegs(folder: Path, count: int, size: tuple[int, int], seed: int = 0) -> list[Path]:
    """``count`` JPEGs of ``size`` (height, width) in ``folder`` (quality 90, like a camera)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"img{i:05d}.jpg" for i in range(count)]

    def one(i: int) -> None:
        Image.fromarray(picture(*size, seed=seed + i)).save(paths[i], quality=90)

    with ThreadPoolExecutor(cores()) as pool:
        list(pool.map(one, range(count)))
    return paths


def write_video(
    path: Path, frames: int, size: tuple[int, int] = (480, 640), fps: float = 30.0
) -> Path:
    """An MJPG .avi of slowly panning pictures (the video source's input). The viewer plays
    it in real time, so ``fps`` sets its query rate up to the worker's cap (30, a webcam's)."""
    h, w = size
    base = picture(h, w * 2, seed=999)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for i in range(frames):
        x = (i * 8) % w
        writer.write(np.ascontiguousarray(base[:, x : x + w, ::-1]))
    writer.release()
    return path
