"""The ANN backend: close to exact results with exact distances, chosen by size, stored
beside the index and reused, rebuilt when stale; large indexes load memory-mapped."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from rtsearch import bigstore, store
from rtsearch.cli import main
from rtsearch.errors import RtsearchError
from rtsearch.projection import Projection
from rtsearch.search import Searcher, choose_method
from rtsearch.store import Index, ModelRef

faiss = pytest.importorskip("faiss")
from rtsearch import ann  # noqa: E402


def clustered(n: int, dims: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(1, n // 100), dims)).astype(np.float32)
    labels = rng.integers(0, len(centers), n)
    return centers[labels] + 0.4 * rng.standard_normal((n, dims)).astype(np.float32)


def write_index(path: Path, vectors: np.ndarray) -> Path:
    n, d = vectors.shape
    index = Index(
        paths=[f"img/{i:06d}.jpg" for i in range(n)],
        model=ModelRef("sim", "sim/pool/0", "pool", 64),
        sizes=np.zeros(n, np.int64),
        mtimes=np.zeros(n, np.float64),
        projected=vectors,
        projection=Projection(
            "random", np.ones((64, d), np.float32), np.zeros(64, np.float32), True
        ),
    )
    store.save(index, path)
    return path


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return clustered(20_000)


def test_ann_finds_nearly_all_exact_neighbours_with_exact_distances(vectors):
    index = ann.AnnIndex.build(vectors)
    assert index.info.recall_at_20 >= ann.TARGET_RECALL
    recall, ms = ann.recall_at_k(index, queries=100, k=20)
    assert recall >= 0.9 and ms > 0
    exact, approx = Searcher(vectors, "brute"), Searcher(vectors, "ann")
    q = vectors[123] + 0.01
    e, a = exact.query(q, 10), approx.query(q, 10)
    assert a.indices[0] == e.indices[0] == 123
    assert np.allclose(a.distances, np.linalg.norm(vectors[a.indices] - q, axis=1), atol=1e-4)
    assert 123 not in approx.query(vectors[123], 5, exclude=123).indices


def test_auto_switches_to_ann_past_the_size_threshold(monkeypatch, capsys, tmp_path, vectors):
    assert choose_method(999_999, 100) == "brute"
    assert choose_method(1_000_000, 100) == "ann"
    monkeypatch.setattr(ann, "ANN_MIN_ROWS", 10_000)
    path = write_index(tmp_path / "big.dat", vectors)
    assert main(["info", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["search"] == "ann"


def test_structure_is_stored_beside_the_index_and_reused(monkeypatch, tmp_path, vectors):
    path = write_index(tmp_path / "i.dat", vectors)
    first = Searcher(vectors, "ann", source=path)
    assert ann.sidecar(path).is_file()

    def no_build(*args, **kwargs):
        raise AssertionError("rebuilt although a matching structure was stored")

    monkeypatch.setattr(ann.AnnIndex, "build", no_build)
    second = Searcher(bigstore.load(path).projected, "ann", source=path)
    q = vectors[7] + 0.02
    assert np.array_equal(first.query(q, 20).indices, second.query(q, 20).indices)


def test_stale_or_corrupt_structure_is_rebuilt(tmp_path, vectors):
    path = write_index(tmp_path / "i.dat", vectors)
    Searcher(vectors, "ann", source=path)
    changed = vectors.copy()
    changed[::2] += 5.0  # same shape, other content: a re-analysed folder
    write_index(path, changed)
    warnings: list[str] = []
    rebuilt = ann.open_or_build(changed, path, warn=warnings.append)
    assert "other vectors" in warnings[0]
    assert rebuilt.search(changed[10], 1)[0][0] == 10
    ann.sidecar(path).write_bytes(ann.MAGIC + b"\xff" * 40)
    warnings.clear()
    ann.open_or_build(changed, path, warn=warnings.append)
    assert "corrupt" in warnings[0] and "\n" not in warnings[0]
    assert ann.AnnIndex.load(ann.sidecar(path), changed, ann.index_tag(path)).info.count == 20_000


def test_large_index_loads_memory_mapped_and_is_still_validated(monkeypatch, tmp_path, vectors):
    monkeypatch.setattr(bigstore, "MAP_MIN_BYTES", 0)
    path = write_index(tmp_path / "m.dat", vectors)
    mapped = bigstore.load(path)
    assert isinstance(mapped.projected, np.memmap)
    assert np.array_equal(mapped.projected, store.load(path).projected)
    assert mapped.paths == store.load(path).paths
    with h5py.File(path, "r+") as f:
        f["projected"][5, 3] = np.nan
    with pytest.raises(RtsearchError, match=r"m\.dat: projected holds NaN"):
        bigstore.load(path)


def test_damage_inside_the_stored_structure_is_found_and_it_is_rebuilt(tmp_path, vectors):
    """Bytes damaged inside the faiss data (header and fingerprint intact) loaded: queries
    then gave wrong neighbours or row numbers past the index (a traceback), for good."""
    path = write_index(tmp_path / "i.dat", vectors)
    Searcher(vectors, "ann", source=path)
    side = ann.sidecar(path)
    data = bytearray(side.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\x11" * 64
    side.write_bytes(bytes(data))
    warnings: list[str] = []
    searcher = Searcher(vectors, "ann", source=path, warn=warnings.append)
    assert warnings[0] == f"{side}: corrupt ANN index (checksum mismatch); not used"
    assert warnings[1].startswith("building the ANN index of 20,000 rows")
    assert searcher.query(vectors[10], 1).indices[0] == 10
    assert ann.AnnIndex.load(side, vectors, ann.index_tag(path)).info.count == 20_000
    side.write_bytes(b"rtsearch-ann 1\n" + bytes(data[15:]))  # the format before the CRC
    with pytest.raises(RtsearchError, match="an ANN index of an older format"):
        ann.AnnIndex.load(side, vectors, ann.index_tag(path))


def test_one_query_uses_a_stored_structure_or_scans_exactly(monkeypatch, capsys, tmp_path, vectors):
    """`rtsearch query` on a large index with no structure stored (a read-only folder, a
    new index) built one for every query: 20-35 s at 1M rows, where a scan takes 10 ms."""

    def no_build(*args, **kwargs):
        raise AssertionError("built for one query")

    monkeypatch.setattr(ann.AnnIndex, "build", no_build)
    path = write_index(tmp_path / "i.dat", vectors)
    warnings: list[str] = []
    searcher = Searcher(vectors, "ann", source=path, build_ann=False, warn=warnings.append)
    assert searcher.method == "brute" and warnings == []
    assert searcher.query(vectors[10], 1).indices[0] == 10
    monkeypatch.undo()
    Searcher(vectors, "ann", source=path)  # a viewer's session builds and keeps it
    stored = Searcher(vectors, "ann", source=path, build_ann=False)
    assert stored.method == "ann" and stored.query(vectors[10], 1).indices[0] == 10
