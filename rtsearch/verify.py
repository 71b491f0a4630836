"""Geometric verification: re-rank the top candidates by local feature agreement.

A global CNN vector says "looks alike"; it cannot tell the exact source of a crop from its
near neighbours that share most of its content. Here the query's ORB keypoints are matched
against each of the first candidates, and a RANSAC fit of one similarity transform (shift,
scale, rotation) counts the matches that agree. Candidates with enough inliers, and not
much farther by vector than the nearest (GATE), move to the front, most inliers first; the
rest keep their order. Copies (crops, resizes, small rotations, brightness, heavy JPEG) land
at rank 1; unrelated look-alikes do not verify.

The gate: shared overlays (a photographer's watermark on every picture) and plain shapes
(letters, diagrams, corners) give unrelated pictures 10-120 inliers, and moved them ahead of
a source clearly nearer by vector. True sources that verification rescues lie within 1.2x
of the nearest's distance in every set measured (query copies of each picture, ranked
first: vector alone / verified without the gate / with it at 1.25):
- the demo gallery's 85 real photos among its 881 images, cropped to 50% and 30% of their
  area or rotated up to 15 degrees, JPEG 50 (255 queries): 235 / 230 / 244;
- 300 distinct generated pictures sharing one corner watermark, rotated or cropped (20):
  19 / 11 / 19;
- the photo mosaics below (40): 29 / 38 / 38.

The mosaics are tests/test_pipeline.py's gallery: generated photo mosaics that share content
(300 images, 40 copies; the two not verified first have their original beyond the 50
candidates or with too few inliers). Pictures unrelated to the collection mostly reach 0-5
inliers, true copies 20-200. ~0.5 ms per candidate with cached keypoints;
decoding a candidate the first time costs its decode on top.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import numpy.typing as npt

from rtsearch.borders import Box, with_margin
from rtsearch.decode import RGBImage, load_rgb
from rtsearch.errors import RtsearchError

if TYPE_CHECKING:
    from rtsearch.session import Result

MAX_SIDE = 320  # keypoints are found on images scaled to this longest side
FEATURES = 1000  # ORB keypoints per image
MIN_SIDE = 2 * 31 + 1  # ORB keeps its keypoints 31 px (its edge threshold) from the border
RATIO = 0.7  # Lowe's ratio test on the two nearest descriptors
RANSAC_PX = 3.0  # reprojection tolerance at MAX_SIDE
MIN_INLIERS = 10  # fewer agreeing matches than this is chance (unrelated pictures: mostly 0-5)
CANDIDATES = 50  # how many of the nearest results are verified
GATE = 1.25  # a verified result moves ahead only within this factor of the nearest distance
CACHE_SIZE = 4096  # keypoint sets kept (~20 KiB each)


@dataclass(frozen=True)
class Keypoints:
    points: npt.NDArray[np.float32]  # (N, 2) at MAX_SIDE scale
    descriptors: npt.NDArray[np.uint8]  # (N, 32) ORB bits

    @property
    def count(self) -> int:
        return len(self.points)


EMPTY = Keypoints(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))
UNREAD = Keypoints(EMPTY.points, EMPTY.descriptors)  # a file that could not be read: no verdict


class Verifier:
    """ORB + RANSAC re-ranker with an LRU cache of the gallery images' keypoints.

    Thread-safe for one caller at a time per instance (OpenCV objects are not shared).
    """

    def __init__(
        self,
        candidates: int = CANDIDATES,
        min_inliers: int = MIN_INLIERS,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self.candidates = candidates
        self.min_inliers = min_inliers
        self._orb = cv2.ORB_create(FEATURES)
        self._matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
        self._cache: OrderedDict[Path, Keypoints] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        # candidates' files that could not be read (what query then notes), by path
        self.unreadable: dict[Path, str] = {}

    def keypoints(self, image: RGBImage, side: int | None = None) -> Keypoints:
        """``side``: the longest side of the picture in ``image`` where the rest is a margin
        of its border (with_margin), scaled as the picture alone would be."""
        grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
        scale = MAX_SIDE / (side or max(grey.shape))
        if min(grey.shape) * min(scale, 1.0) < MIN_SIDE:
            return EMPTY  # a strip or a dot: ORB finds nothing there (and fails on a 1 px side)
        if scale < 1:
            grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        with self._lock:
            found, descriptors = self._orb.detectAndCompute(grey, None)
        if descriptors is None or not found:
            return EMPTY
        points = np.array([k.pt for k in found], np.float32)
        return Keypoints(points, descriptors)

    def views(self, image: RGBImage, box: Box) -> list[Keypoints]:
        """Keypoints of the part of ``image`` in ``box``, a picture trimmed off its page (or
        all of it): alone, and, trimmed, with a margin of its border too (ORB finds none
        near an image's edges: a small logo trimmed from its page lost most of its own,
        where its file has white margins of its own). A result's inliers are the most of
        either: with the margin alone, a photo pasted on a page had half of its own."""
        top, bottom, left, right = box
        alone = self.keypoints(image[top:bottom, left:right])
        if (top, bottom, left, right) == (0, image.shape[0], 0, image.shape[1]):
            return [alone]
        side = max(bottom - top, right - left)
        return [alone, self.keypoints(with_margin(image, box, MAX_SIDE), side=side)]

    def keypoints_of_file(self, path: Path) -> Keypoints:
        """Keypoints of a gallery file, cached; an unreadable (a missing) file's are UNREAD:
        none, and no verdict on it."""
        with self._lock:
            cached = self._cache.get(path)
            if cached is not None:
                self._cache.move_to_end(path)
                return cached
        try:
            kp = self.keypoints(load_rgb(path, min_size=(MAX_SIDE, MAX_SIDE)))
        except RtsearchError as exc:
            kp = UNREAD
            with self._lock:
                self.unreadable[path] = str(exc)
        with self._lock:
            self._cache[path] = kp
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return kp

    def inliers(self, a: Keypoints, b: Keypoints) -> int:
        """Matches of ``a`` in ``b`` consistent with one similarity transform."""
        if a.count < 5 or b.count < 5:
            return 0
        with self._lock:
            pairs = self._matcher.knnMatch(a.descriptors, b.descriptors, k=2)
        good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
        if len(good) < 3:
            return 0
        src = a.points[[m.queryIdx for m in good]]
        dst = b.points[[m.trainIdx for m in good]]
        _, mask = cv2.estimateAffinePartial2D(
            src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX
        )
        return 0 if mask is None else int(mask.sum())

    def rerank(
        self, query: RGBImage | Keypoints | list[Keypoints], results: Sequence[Result]
    ) -> list[Result]:
        """``results`` with the verified ones among the first ``candidates`` (enough inliers,
        within GATE of the nearest distance) moved to the front, most inliers first; every
        result of the head gets its ``inliers`` count, but those whose files could not be
        read (None: not verified, as those past the head; 0 read as a verdict). ``query``
        as several views (``views``): a result's inliers are the most of any."""
        if isinstance(query, list):
            views = query
        else:
            views = [query if isinstance(query, Keypoints) else self.keypoints(query)]

        def checked(r: Result) -> Result:
            kp = self.keypoints_of_file(r.file)
            most = max(self.inliers(q, kp) for q in views) if views else 0
            return replace(r, inliers=None if kp is UNREAD else most)

        head = [checked(r) for r in results[: self.candidates]]
        reach = GATE * min((r.distance for r in head), default=0.0)

        def verified(r: Result) -> bool:
            return (r.inliers or 0) >= self.min_inliers and r.distance <= reach

        front = sorted((r for r in head if verified(r)), key=lambda r: -(r.inliers or 0))
        rest = [r for r in head if not verified(r)]  # (sorted is stable: ties by distance)
        return [*front, *rest, *results[self.candidates :]]
