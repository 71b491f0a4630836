"""Exact k-nearest-neighbour search over projected vectors (Euclidean distance).

Measured on this project's 2-core machine at 145k x 100: cKDTree ~56 ms/query, a float32
brute-force scan ~3 ms. Trees only win at low dimension, so ``auto`` picks the tree up to
KDTREE_MAX_DIMS and the scan above it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rtsearch.errors import RtsearchError

METHODS = ("auto", "brute", "kdtree", "ann")
KDTREE_MAX_DIMS = 16
SCAN_CHUNK = 128  # rows per group in the scan's threshold; see Searcher._scan
# The int8 first pass (rtsearch.prefilter) pays from tens of thousands of rows; its codes
# and onnxruntime's copy of them cost ~3 bytes per value, so very large indexes skip it.
PREFILTER_ROWS = (65_536, 4_000_000)
PREFILTER_MAX_SHARE = 8  # more candidates than 1/8 of the rows: scan them all instead
# distances closer than this (a fraction of the query's length) rank as equal, by row: the
# noise between two model runs on one picture is ~1e-7 of it; results show 4 decimals
TIE = 1e-5


@dataclass(frozen=True)
class Hits:
    """Ranked results: indices into the index's rows and their Euclidean distances."""

    indices: npt.NDArray[np.int64]
    distances: npt.NDArray[np.float32]


def choose_method(n: int, dims: int, method: str = "auto") -> str:
    if method not in METHODS:
        raise RtsearchError(f"unknown search method {method!r} (choose from {', '.join(METHODS)})")
    if method != "auto":
        return method
    from rtsearch import ann  # large indexes: approximate, when faiss is installed

    if n >= ann.ANN_MIN_ROWS and ann.available():
        return "ann"
    return "kdtree" if dims <= KDTREE_MAX_DIMS else "brute"


class Searcher:
    """Built once per index; ``query`` is thread-safe (it only reads)."""

    def __init__(
        self,
        vectors: npt.NDArray[np.float32],
        method: str = "auto",
        source: Path | None = None,
        *,
        prefilter: bool = True,
        build_ann: bool = True,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        """``source``: the index file, beside which the ANN structure is stored;
        ``prefilter``: let the exact scan use the int8 first pass where it pays;
        ``build_ann``: without it (one query: a build takes 20 s at 1M rows, an exact scan
        10 ms), an ANN structure is only opened when one is stored, else the scan is exact;
        ``warn``: says a stored structure that does not fit, a build, a save that fails."""
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dims = self.vectors.shape
        self.method = choose_method(n, dims, method)
        self._tree = None
        self._ann = None
        self._local = threading.local()
        if self.method == "ann":
            from rtsearch.ann import open_or_build, open_stored

            if build_ann:
                self._ann = open_or_build(self.vectors, source, warn)
            else:
                self._ann = open_stored(self.vectors, source, warn)
                self.method = "ann" if self._ann is not None else "brute"
            if self._ann is not None:
                return  # no norms: the ANN never scans, and a memmap stays paged out
        if self.method == "kdtree" and n:
            from scipy.spatial import cKDTree

            self._tree = cKDTree(self.vectors)
        self._sq_norms = np.einsum("ij,ij->i", self.vectors, self.vectors)
        self._max_sq_norm = float(self._sq_norms.max()) if n else 0.0
        self._bounds = None
        if prefilter and uses_prefilter(n, self.method):
            from rtsearch.prefilter import Int8Bounds

            self._bounds = Int8Bounds(self.vectors, self._sq_norms)

    @property
    def count(self) -> int:
        return int(self.vectors.shape[0])

    def query(
        self, vector: npt.NDArray[np.float32], k: int, exclude: int | None = None,
        *, first: int | None = None,
    ) -> Hits:  # fmt: skip
        """The k nearest rows to ``vector`` (d,); ``exclude`` drops one row (the query's own);
        ``first`` ranks one before the others at its distance (the query's own file among
        its identical copies); other ties go by row."""
        n = self.count
        want = min(k + (exclude is not None), n)
        if want <= 0:
            return Hits(np.zeros(0, np.int64), np.zeros(0, np.float32))
        q = np.asarray(vector, dtype=np.float32).reshape(-1)
        if self._ann is not None:
            idx, _ = self._ann.search(q, want)
        elif self._tree is not None:
            _, idx = self._tree.query(q, k=want)
            idx = np.atleast_1d(idx).astype(np.int64)
        else:
            idx = self._prefiltered(q, want) if self._bounds else self._scan(q, want)
        idx, dist = self._exact(idx, q, want, first)
        if exclude is not None:
            keep = idx != exclude
            idx, dist = idx[keep], dist[keep]
        return Hits(idx[:k], dist[:k].astype(np.float32))

    def _exact(
        self, rows: npt.NDArray[np.int64], q: npt.NDArray[np.float32], want: int,
        first: int | None = None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:  # fmt: skip
        """The ``want`` best of candidate ``rows`` by distances taken again in float64 from
        the differences, near-equal ones by row (_by_distance_then_row): the scan's
        |x|^2 - 2 x.q form loses the small distances to float32 cancellation (identical
        copies of a picture came out 0.0000 and 0.0005, the first of them by chance), and a
        tree or the ANN orders equal distances as it finds them. A few dozen rows: ~25 us."""
        rows = np.asarray(rows, dtype=np.int64)
        order = np.sort(rows)  # (a memmap is read in file order)
        diff = np.asarray(self.vectors[order], dtype=np.float64) - q.astype(np.float64)
        d = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        best = _by_distance_then_row(d, order, want, first, TIE * float(np.linalg.norm(q)))
        return order[best], d[best]

    def _scan(self, q: npt.NDArray[np.float32], want: int) -> npt.NDArray[np.int64]:
        # |x - q|^2 = |x|^2 - 2 x.q + |q|^2; the last term does not change the ranking.
        # One GEMV (memory-bound: it reads every vector once) into a per-thread buffer, then
        # a threshold that provably keeps at least ``want`` rows (_kth_bound), found without
        # a full-length argpartition, which costs as much as the GEMV; the rows under it
        # include the true top ``want`` and every row tied with the last. Side by side at
        # 145k x 100: 2.5 -> 1.8 ms per query, of which the GEMV is 1.6 (docs/bench.md).
        d2 = self._buffer()
        np.dot(self.vectors, (-2.0 * q).astype(np.float32), out=d2)
        d2 += self._sq_norms
        rows = np.flatnonzero(d2 <= _kth_bound(d2, want))
        return self._candidates(rows, d2[rows], q, want)

    def _prefiltered(self, q: npt.NDArray[np.float32], want: int) -> npt.NDArray[np.int64]:
        """The scan's answer from the int8 bounds: rows whose lower bound is under the
        want-th smallest upper bound (at least ``want`` rows are surely that close, so every
        row of the true top ``want``, ties included, passes), narrowed in float32."""
        assert self._bounds is not None
        lower, upper = self._bounds.bounds(q)
        thr = _kth_bound(upper, want)
        rows = np.flatnonzero(lower <= thr)
        if len(rows) * PREFILTER_MAX_SHARE > self.count:
            return self._scan(q, want)
        d2 = self.vectors[rows] @ (-2.0 * q).astype(np.float32)
        d2 += self._sq_norms[rows]
        return self._candidates(rows, d2, q, want)

    def _candidates(
        self, rows: npt.NDArray[np.intp], d2: npt.NDArray[np.float32], q: npt.NDArray[np.float32],
        want: int,
    ) -> npt.NDArray[np.int64]:  # fmt: skip
        """The rows among ``rows`` (ranking distances ``d2``: |x|^2 - 2 q.x) that may be among
        the ``want`` nearest: those within float32's rounding error of the want-th, every
        one of which ``_exact`` measures again."""
        if len(rows) <= want:
            return rows.astype(np.int64)
        kth = float(np.partition(d2, want - 1)[want - 1])
        keep = d2 <= kth + self._slack(q)
        return rows[keep].astype(np.int64)

    def _slack(self, q: npt.NDArray[np.float32]) -> float:
        """A bound on the rounding error of a float32 ranking distance |x|^2 - 2 q.x over
        ``dims`` terms: dims * eps * (|x| + |q|)^2, |x| at its largest over the index."""
        dims = self.vectors.shape[1]
        reach = (np.sqrt(self._max_sq_norm) + float(np.sqrt(q @ q))) ** 2
        return float(dims * np.finfo(np.float32).eps * reach)

    def _buffer(self) -> npt.NDArray[np.float32]:
        """A distance buffer per thread: a fresh 4 MB array per query at 1M rows costs page
        faults, and ``query`` must stay thread-safe."""
        buf = getattr(self._local, "d2", None)
        if buf is None:
            buf = self._local.d2 = np.empty(self.count, np.float32)
        return buf


def uses_prefilter(rows: int, method: str) -> bool:
    """Whether a Searcher over ``rows`` vectors with ``method`` builds the int8 first pass."""
    return method == "brute" and PREFILTER_ROWS[0] <= rows <= PREFILTER_ROWS[1]


def _by_distance_then_row(
    d: npt.NDArray[np.float64], rows: npt.NDArray[np.int64], want: int, first: int | None,
    tie: float,
) -> npt.NDArray[np.intp]:  # fmt: skip
    """Positions of the ``want`` best: by distance ``d``, where distances within ``tie`` of
    the nearest of their run rank as one (a picture's identical copies, analysed in other
    batches, differ by ~1e-7 and came out in chance order), then ``first``, then by row."""
    by_d = np.argsort(d, kind="stable")
    if len(by_d) == 0:
        return by_d
    # only the first ``want`` and those tied with the last of them can be taken
    last = float(d[by_d[min(want, len(by_d)) - 1]])
    head = by_d[: int(np.searchsorted(d[by_d], last + tie, side="right"))]
    runs = np.empty(len(head), np.int64)
    run, start = 0, float(d[head[0]])
    for i, j in enumerate(head):
        if d[j] - start > tie:
            run, start = run + 1, float(d[j])
        runs[i] = run
    return head[np.lexsort((rows[head], rows[head] != first, runs))][:want]


def _kth_bound(values: npt.NDArray[np.float32], want: int) -> float:
    """A value with at least ``want`` entries at or under it, close to the want-th smallest,
    without a full-length partition: split the entries into G groups (entry r in group
    r mod G, so one elementwise minimum over SCAN_CHUNK slices gives every group's minimum)
    and take the want-th smallest group minimum; at least ``want`` groups hold an entry at
    or under it."""
    groups = len(values) // SCAN_CHUNK
    if groups < want:
        return float(np.partition(values, want - 1)[want - 1])
    mins = values[: groups * SCAN_CHUNK].reshape(SCAN_CHUNK, groups).min(axis=0)
    return float(np.partition(mins, want - 1)[want - 1])
