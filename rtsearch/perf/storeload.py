"""Stage 6: load time and peak RSS of a 145k-entry `.dat`, with and without features.

Each load runs in a fresh interpreter so its peak RSS is the load's own; the time excludes
Python start-up and imports, which the viewer pays once anyway.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from rtsearch import store
from rtsearch.perf.knn import clustered
from rtsearch.projection import Projection
from rtsearch.store import Index, ModelRef

FEATURE_DIMS = 1280  # EfficientNet-Lite0's pooled features

# Each load in a fresh interpreter, measured by its peak resident memory (VmHWM).
_CHILD = """
import json, sys, time
from rtsearch import bigstore
from rtsearch.perf.machine import peak_rss_mb

base = peak_rss_mb() or 0.0
t = time.perf_counter()
index = bigstore.load(sys.argv[1], features=sys.argv[2] == "1")
s = time.perf_counter() - t
peak = peak_rss_mb() or 0.0
print(json.dumps({"count": index.count, "s": s, "rss_mb": peak, "rss_delta_mb": peak - base}))
"""


def synthetic_index(n: int, dims: int, with_features: bool) -> Index:
    """An index of n entries shaped like a real one (paths, stats, projection, vectors)."""
    rng = np.random.default_rng(0)
    features = clustered(n, FEATURE_DIMS, seed=3) if with_features else None
    matrix = rng.standard_normal((FEATURE_DIMS, dims)).astype(np.float32)
    return Index(
        paths=[f"photos/{i // 1000:04d}/IMG_{i:07d}.jpg" for i in range(n)],
        model=ModelRef("efficientnet-lite0", "bench/pool/0", "pool", FEATURE_DIMS),
        sizes=rng.integers(10_000, 5_000_000, n).astype(np.int64),
        mtimes=rng.uniform(1.5e9, 1.7e9, n),
        projected=clustered(n, dims, seed=4),
        projection=Projection("random", matrix, np.zeros(FEATURE_DIMS, np.float32), True),
        features=features,
        base_dir="/nonexistent",
    )


def measure_load(path: Path, features: bool) -> dict:
    cmd = [sys.executable, "-c", _CHILD, str(path), "1" if features else "0"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_store(work: Path, n: int, dims: int = 100) -> dict:
    """Write two n-entry indexes (with / without features) in ``work``, load each, delete."""
    out: dict = {"entries": n}
    for with_features in (False, True):
        tag = "with_features" if with_features else "no_features"
        path = work / f"store-{tag}.dat"
        start = time.perf_counter()
        store.save(synthetic_index(n, dims, with_features), path)
        write_s = time.perf_counter() - start
        try:
            loaded = measure_load(path, with_features)
        finally:
            size_mb = path.stat().st_size / 2**20
            path.unlink()
        out[tag] = {
            "file_mb": round(size_mb, 1),
            "write_s": round(write_s, 2),
            "load_s": round(loaded["s"], 3),
            "rss_mb": round(loaded["rss_mb"], 1),
            "rss_delta_mb": round(loaded["rss_delta_mb"], 1),
        }
    return out
