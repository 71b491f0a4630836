"""Approximate nearest neighbours for large indexes (faiss, optional extra ``ann``).

Past ~1M rows an exact scan costs tens of milliseconds per query (23 ms at 1M x 100 here),
too slow for a live viewer. The backend is a faiss inverted file with 8-bit scalar-quantised
codes (IVF-SQ8): 1 byte per dimension, so a 10M x 100 index adds 1 GB beside the 4 GB of
vectors instead of a second 4 GB copy. The candidates it returns are re-ranked with exact
float32 distances read from the (memory-mapped) projected vectors, so reported distances
are exact and only recall is approximate; ``nprobe`` is tuned at build time until recall@20
on held-in queries reaches TARGET_RECALL.

The built structure is stored beside the index as ``INDEX.dat.ann`` (magic line, JSON
header, faiss bytes, their CRC-32) with a fingerprint of the vectors, so loading a 10M index
reads it in seconds instead of rebuilding it for minutes; a stale, foreign or damaged file is
ignored and rebuilt, with one warning. (Without the CRC, bytes damaged inside the faiss data
loaded, then gave wrong answers or row numbers past the index, for good.)
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt

from rtsearch import atomic
from rtsearch.errors import RtsearchError, Warn

ANN_MIN_ROWS = 1_000_000  # below this the exact scan is fast enough (<25 ms) and exact
TARGET_RECALL = 0.95
MAGIC = b"rtsearch-ann 2\n"  # 2: the faiss bytes are followed by their CRC-32
SUFFIX = ".ann"
RERANK_MIN = 64  # candidates fetched from faiss per query before exact re-ranking


def available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _faiss():
    try:
        import faiss
    except ImportError:
        raise RtsearchError(
            "the ANN search backend needs faiss: pip install 'rtsearch[ann]'"
        ) from None
    return faiss


@dataclass
class AnnInfo:
    """What was built and how well it does: stored in the sidecar's header."""

    count: int
    dims: int
    nlist: int
    nprobe: int
    recall_at_20: float
    build_s: float
    fingerprint: str


def sidecar(index_path: Path) -> Path:
    return Path(str(index_path) + SUFFIX)


def fingerprint(vectors: npt.NDArray[np.float32], tag: str = "") -> str:
    """Cheap identity of a vector set: shape, a tag (the index's creation time) and 4096
    evenly spaced rows; reading all 4 GB of a 10M index just to hash it would cost seconds."""
    n, d = vectors.shape
    h = hashlib.sha256(f"{n}x{d}:{tag}".encode())
    rows = np.unique(np.linspace(0, n - 1, min(n, 4096)).astype(np.int64)) if n else []
    h.update(np.ascontiguousarray(vectors[rows], dtype=np.float32).tobytes())
    return h.hexdigest()


def choose_nlist(n: int) -> int:
    """About sqrt(n) inverted lists (a power of two): ~2.4k rows per list at 10M."""
    return int(min(65536, max(16, 2 ** round(np.log2(max(n, 1) ** 0.5)))))


class AnnIndex:
    """IVF-SQ8 candidates + exact re-ranking over ``vectors`` (N, d) float32 (may be a
    memmap; only the re-ranked rows are ever read from it at query time)."""

    def __init__(self, faiss_index, vectors: npt.NDArray[np.float32], info: AnnInfo) -> None:
        self.faiss_index = faiss_index
        self.vectors = vectors
        self.info = info
        self.faiss_index.nprobe = info.nprobe

    @classmethod
    def build(
        cls,
        vectors: npt.NDArray[np.float32],
        *,
        tag: str = "",
        nlist: int | None = None,
        seed: int = 0,
    ) -> AnnIndex:
        faiss = _faiss()
        start = time.monotonic()
        n, d = vectors.shape
        nlist = min(nlist or choose_nlist(n), max(1, n // 39))
        quantizer = faiss.IndexFlatL2(d)
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_L2
        )
        rng = np.random.default_rng(seed)
        # k-means on a sample: 64 rows per list is plenty and keeps training to seconds.
        sample = np.sort(rng.choice(n, size=min(n, nlist * 64), replace=False))
        index.train(np.ascontiguousarray(vectors[sample], dtype=np.float32))
        for lo in range(0, n, 1 << 18):  # add in blocks: a memmap is paged in gradually
            index.add(np.ascontiguousarray(vectors[lo : lo + (1 << 18)], dtype=np.float32))
        info = AnnInfo(n, d, nlist, 1, 0.0, 0.0, fingerprint(vectors, tag))
        ann = cls(index, vectors, info)
        ann.tune(rng)
        info.build_s = time.monotonic() - start
        return ann

    def tune(self, rng: np.random.Generator, queries: int = 64, k: int = 20) -> None:
        """Smallest nprobe (doubling) whose recall@k on perturbed stored rows reaches
        TARGET_RECALL; the reached recall is kept in ``info``."""
        q = sample_queries(self.vectors, queries, rng)
        truth = exact_knn(self.vectors, q, k)
        nprobe = 4
        while True:
            self.info.nprobe = self.faiss_index.nprobe = min(nprobe, self.info.nlist)
            found = [self.search(row, k)[0] for row in q]
            self.info.recall_at_20 = recall(found, truth)
            if self.info.recall_at_20 >= TARGET_RECALL or nprobe >= self.info.nlist:
                return
            nprobe *= 2

    def search(self, q: npt.NDArray[np.float32], want: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices, exact distances) of the ``want`` best rows among the ANN candidates."""
        fetch = min(max(want * 2, RERANK_MIN), self.info.count)
        _, cand = self.faiss_index.search(q.reshape(1, -1).astype(np.float32), fetch)
        cand = cand[0][(cand[0] >= 0) & (cand[0] < len(self.vectors))]
        order = np.sort(cand)  # sorted rows read a memmap in file order
        d2 = ((np.asarray(self.vectors[order], dtype=np.float32) - q) ** 2).sum(axis=1)
        best = np.argsort(d2, kind="stable")[:want]
        return order[best].astype(np.int64), np.sqrt(d2[best])

    # ------------------------------------------------------------ persistence

    def save(self, dest: Path) -> None:
        faiss = _faiss()
        header = json.dumps(asdict(self.info)).encode()
        try:
            with atomic.atomic_path(dest) as tmp, open(tmp, "wb") as fh:
                fh.write(MAGIC + len(header).to_bytes(8, "little") + header)
                crc = _Crc(fh.write)
                writer = faiss.PyCallbackIOWriter(crc)
                faiss.write_index(self.faiss_index, writer)
                del writer  # flushes into fh before it closes
                fh.write(crc.value.to_bytes(4, "little"))
        except OSError as exc:
            raise RtsearchError(f"{dest}: cannot write ANN index ({exc.strerror})") from None

    @classmethod
    def load(cls, path: Path, vectors: npt.NDArray[np.float32], tag: str = "") -> AnnIndex:
        """Read a sidecar; RtsearchError when it is unreadable or for other vectors."""
        faiss = _faiss()
        try:
            with open(path, "rb") as fh:
                info = _read_header(fh, path)
                if info.fingerprint != fingerprint(vectors, tag):
                    raise RtsearchError(f"{path}: ANN index is for other vectors")
                crc = _Crc(fh.read)
                reader = faiss.PyCallbackIOReader(crc)
                index = faiss.read_index(reader)
                del reader
                if fh.read(4) != crc.value.to_bytes(4, "little"):
                    raise RtsearchError(f"{path}: corrupt ANN index (checksum mismatch)")
        except OSError as exc:
            raise RtsearchError(f"{path}: cannot read ANN index ({exc.strerror})") from None
        except RuntimeError as exc:  # faiss reports corrupt data as RuntimeError
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "corrupt"
            raise RtsearchError(f"{path}: corrupt ANN index ({first})") from None
        if index.ntotal != info.count or index.d != info.dims:
            raise RtsearchError(f"{path}: ANN index size does not match its header")
        return cls(index, vectors, info)


class _Crc:
    """A read or write callable for faiss that keeps the CRC-32 of the bytes passing."""

    def __init__(self, io: Callable) -> None:
        self.io, self.value = io, 0

    def __call__(self, arg):
        if isinstance(arg, int):  # a read of that many bytes
            data = self.io(arg)
            self.value = zlib.crc32(data, self.value)
            return data
        self.value = zlib.crc32(arg, self.value)
        return self.io(arg)


def _read_header(fh, path: Path) -> AnnInfo:
    magic = fh.read(len(MAGIC))
    if magic != MAGIC:
        older = magic.startswith(b"rtsearch-ann ")
        raise RtsearchError(
            f"{path}: {'an ANN index of an older format' if older else 'not an rtsearch ANN index'}"
        )
    size = int.from_bytes(fh.read(8), "little")
    if not 0 < size < 1 << 20:
        raise RtsearchError(f"{path}: corrupt ANN index header")
    try:
        return AnnInfo(**json.loads(fh.read(size)))
    except (ValueError, TypeError) as exc:
        raise RtsearchError(f"{path}: corrupt ANN index header ({exc})") from None


def index_tag(index_path: Path | None) -> str:
    """The index file's creation stamp, so a rewritten index never matches an old sidecar."""
    if index_path is None:
        return ""
    try:
        with h5py.File(index_path, "r") as f:
            return str(f.attrs.get("created", ""))
    except OSError:
        return ""


def open_or_build(
    vectors: npt.NDArray[np.float32], source: Path | None = None, warn: Warn | None = None
) -> AnnIndex:
    """The stored ANN structure for ``source`` when it matches, else a fresh build that is
    saved beside ``source`` (best effort: a read-only folder only costs the rebuild)."""
    ann = open_stored(vectors, source, warn)
    if ann is not None:
        return ann
    tag = index_tag(source)
    path = sidecar(source) if source is not None else None
    if warn:
        warn(f"building the ANN index of {len(vectors):,} rows (once: it is kept beside the index)")
    ann = AnnIndex.build(vectors, tag=tag)
    if path is not None:
        try:
            ann.save(path)
        except RtsearchError as exc:
            if warn:
                warn(str(exc))
    return ann


def open_stored(
    vectors: npt.NDArray[np.float32], source: Path | None, warn: Warn | None = None
) -> AnnIndex | None:
    """The stored ANN structure for ``source`` when there is one that matches, else None
    (one that does not is said with ``warn``)."""
    path = sidecar(source) if source is not None else None
    if path is None or not path.is_file():
        return None
    try:
        return AnnIndex.load(path, vectors, index_tag(source))
    except RtsearchError as exc:
        if warn:
            warn(f"{exc}; not used")
        return None


# ---------------------------------------------------------------- measuring recall


def sample_queries(
    vectors: npt.NDArray[np.float32], count: int, rng: np.random.Generator
) -> npt.NDArray[np.float32]:
    """Stored rows plus noise of 5% of the data's spread: near-duplicates of indexed
    images, the queries this app answers, without the trivial exact self-match."""
    n = len(vectors)
    rows = np.sort(rng.choice(n, size=min(count, n), replace=False))
    base = np.asarray(vectors[rows], dtype=np.float32)
    spread = float(base.std()) or 1.0
    return base + rng.normal(0, 0.05 * spread, base.shape).astype(np.float32)


def exact_knn(
    vectors: npt.NDArray[np.float32], queries: npt.NDArray[np.float32], k: int
) -> npt.NDArray[np.int64]:
    """Exact k nearest rows per query, scanning ``vectors`` in blocks (memmap friendly)."""
    k = min(k, len(vectors))
    best_d = np.full((len(queries), 0), np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    for lo in range(0, len(vectors), 1 << 18):
        block = np.asarray(vectors[lo : lo + (1 << 18)], dtype=np.float32)
        d2 = (block * block).sum(1)[None, :] - 2.0 * (queries @ block.T)
        top = np.argpartition(d2, min(k, d2.shape[1]) - 1, axis=1)[:, :k]
        best_d = np.concatenate([best_d, np.take_along_axis(d2, top, 1)], axis=1)
        best_i = np.concatenate([best_i, top + lo], axis=1)
        keep = np.argsort(best_d, axis=1, kind="stable")[:, :k]
        best_d = np.take_along_axis(best_d, keep, 1)
        best_i = np.take_along_axis(best_i, keep, 1)
    return best_i


def recall(found: list[npt.NDArray[np.int64]], truth: npt.NDArray[np.int64]) -> float:
    """Mean fraction of each query's true neighbours that were found."""
    hits = [len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits)) / truth.shape[1] if len(truth) else 1.0


def recall_at_k(
    ann: AnnIndex, queries: int = 200, k: int = 20, seed: int = 1
) -> tuple[float, float]:
    """(recall@k, mean ms per ANN query) on fresh perturbed-row queries: for `rtsearch bench`."""
    rng = np.random.default_rng(seed)
    q = sample_queries(ann.vectors, queries, rng)
    truth = exact_knn(ann.vectors, q, k)
    start = time.perf_counter()
    found = [ann.search(row, k)[0] for row in q]
    ms = (time.perf_counter() - start) * 1000.0 / max(len(q), 1)
    return recall(found, truth), ms


def measure(
    vectors: npt.NDArray[np.float32], source: Path | None = None, queries: int = 200
) -> dict[str, float | int | str]:
    """Figures for `rtsearch bench`: the ANN (stored beside ``source`` or built) against the
    exact scan on the same perturbed-row queries: recall@20 and ms per query of each."""
    from rtsearch.search import Searcher

    start = time.monotonic()
    index = open_or_build(vectors, source)
    open_s = time.monotonic() - start
    rec, ann_ms = recall_at_k(index, queries=queries, k=20)
    exact = Searcher(vectors, "brute")
    q = sample_queries(vectors, min(queries, 20), np.random.default_rng(2))
    t = time.perf_counter()
    for row in q:
        exact.query(row, 20)
    exact_ms = (time.perf_counter() - t) * 1000.0 / len(q)
    info = index.info
    return {
        "method": "ann (faiss IVF-SQ8 + exact re-rank)",
        "count": info.count,
        "nlist": info.nlist,
        "nprobe": info.nprobe,
        "recall_at_20": round(rec, 4),
        "ann_ms": round(ann_ms, 3),
        "exact_ms": round(exact_ms, 3),
        "build_s": round(info.build_s, 2),
        "open_s": round(open_s, 2),
    }
