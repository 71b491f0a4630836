"""Stage 5: kNN query time per method at 145k and 1M vectors of 100 dims (k=20).

Vectors are clustered (near-duplicate groups of uneven size, like photo collections); the
queries are stored rows plus a little noise, the queries this app answers.
"""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt

from rtsearch import ann
from rtsearch.perf.timing import per_call_ms
from rtsearch.search import Searcher, choose_method, uses_prefilter

DIMS = 100
K = 20


def clustered(n: int, dims: int = DIMS, seed: int = 0) -> npt.NDArray[np.float32]:
    """n vectors in ~n/500 Gaussian clusters of random spread."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(1, n // 500), dims)).astype(np.float32)
    which = rng.integers(0, len(centers), n)
    spread = rng.uniform(0.2, 0.8, len(centers)).astype(np.float32)
    out = rng.standard_normal((n, dims), dtype=np.float32)
    out *= spread[which, None]
    out += centers[which]
    return out


def time_method(searcher: Searcher, queries: npt.NDArray[np.float32], budget_s: float) -> float:
    """Median ms per single-vector query, cycling through ``queries``."""
    state = {"i": 0}

    def one() -> None:
        searcher.query(queries[state["i"] % len(queries)], K)
        state["i"] += 1

    return round(per_call_ms(one, budget_s=budget_s), 3)


def time_cold(searcher: Searcher, queries: npt.NDArray[np.float32], count: int = 30) -> float:
    """Median ms per query with the CPU caches flushed (64 MB written) before each one."""
    flush = np.ones(16 * 1024 * 1024, np.float32)
    times = []
    for i in range(count):
        flush += 1.0
        start = time.perf_counter()
        searcher.query(queries[i % len(queries)], K)
        times.append((time.perf_counter() - start) * 1000.0)
    return round(float(np.median(times)), 3)


def bench_size(n: int, budget_s: float, with_ann: bool, tree_budget_s: float) -> dict:
    """Every exact method at ``n`` rows, the ANN when asked and installed, and auto's pick."""
    vectors = clustered(n)
    queries = ann.sample_queries(vectors, 64, np.random.default_rng(1))
    row: dict = {"rows": n, "dims": DIMS, "auto_method": choose_method(n, DIMS, "auto")}
    start = time.perf_counter()
    exact = Searcher(vectors, "brute")
    row["brute_build_s"] = round(time.perf_counter() - start, 3)  # the int8 codes, if used
    row["brute_ms"] = time_method(exact, queries, budget_s)
    row["brute_prefilter"] = uses_prefilter(n, exact.method)
    plain = Searcher(vectors, "brute", prefilter=False)
    row["brute_f32_ms"] = time_method(plain, queries, budget_s)
    # between live queries the model runs and evicts the caches: time that case too
    row["brute_cold_ms"] = time_cold(exact, queries)
    row["brute_f32_cold_ms"] = time_cold(plain, queries)
    del exact, plain
    start = time.perf_counter()
    tree = Searcher(vectors, "kdtree")
    row["kdtree_build_s"] = round(time.perf_counter() - start, 2)
    row["kdtree_ms"] = time_method(tree, queries, tree_budget_s)
    del tree
    if with_ann and ann.available():
        figures = ann.measure(vectors, None, queries=100)
        row["ann_ms"] = figures["ann_ms"]
        row["ann_recall_at_20"] = figures["recall_at_20"]
        row["ann_build_s"] = figures["build_s"]
        row["ann_method"] = figures["method"]
    elif with_ann:
        row["ann_ms"] = None
        row["ann_note"] = "faiss not installed (pip install 'rtsearch[ann]')"
    row["chosen_ms"] = row.get(f"{_key(row['auto_method'])}_ms", row["brute_ms"])
    return row


def _key(method: str) -> str:
    return {"brute": "brute", "kdtree": "kdtree", "ann": "ann"}.get(method, "brute")
