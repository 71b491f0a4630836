"""Simulated large-index benchmark: N clustered 100-d float32 vectors in a real `.dat`.

    python tools/bench_scale.py 1000000 --dir /tmp/scale [--json]

Steps, each timed: write the index (store.save), open it cold in a fresh process and build
the ANN structure (saved beside it as INDEX.dat.ann), open it again in a fresh process
(loading the stored structure), then query: ANN ms/query, recall@20 vs exact, exact scan
ms/query. RSS is reported per process (total and anonymous: memory-mapped vectors count
as file pages, not as a private copy).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from rtsearch import store
from rtsearch.projection import Projection
from rtsearch.store import Index, ModelRef

DIMS = 100


def clustered(n: int, seed: int = 0) -> np.ndarray:
    """~n/500 clusters of uneven size and spread: near-duplicate groups, like photo sets."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(1, n // 500), DIMS)).astype(np.float32)
    spread = rng.uniform(0.2, 0.8, len(centers)).astype(np.float32)
    weights = rng.zipf(1.5, len(centers)).astype(np.float64).clip(max=50)
    weights /= weights.sum()
    out = np.empty((n, DIMS), np.float32)
    for lo in range(0, n, 1 << 20):
        hi = min(n, lo + (1 << 20))
        c = rng.choice(len(centers), size=hi - lo, p=weights)
        noise = rng.standard_normal((hi - lo, DIMS), dtype=np.float32)
        out[lo:hi] = centers[c] + noise * spread[c, None]
    return out


def write(path: Path, n: int) -> float:
    vectors = clustered(n)
    d_in = 1280
    projection = Projection(
        "random", np.zeros((d_in, DIMS), np.float32), np.zeros(d_in, np.float32), True
    )
    index = Index(
        paths=[f"img/{i:08d}.jpg" for i in range(n)],
        model=ModelRef("simulated", "simulated/pool/0", "pool", d_in),
        sizes=np.zeros(n, np.int64),
        mtimes=np.zeros(n, np.float64),
        projected=vectors,
        projection=projection,
        base_dir="/nonexistent",
    )
    start = time.monotonic()
    store.save(index, path)
    return time.monotonic() - start


def rss_mb() -> dict[str, float]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def open_and_query(path: Path, queries: int) -> dict:
    """Runs in a fresh process: load, build or read the ANN, query, measure."""
    from rtsearch import ann, bigstore
    from rtsearch.search import Searcher

    t0 = time.monotonic()
    index = bigstore.load(path)
    t1 = time.monotonic()
    searcher = Searcher(index.projected, "auto", path)
    t2 = time.monotonic()
    result = {"load_s": t1 - t0, "ann_open_s": t2 - t1, "method": searcher.method}
    result["rss_after_open_mb"] = rss_mb()
    if searcher._ann is not None:
        rec, ms = ann.recall_at_k(searcher._ann, queries=queries, k=20)
        result.update(recall_at_20=rec, ann_ms=ms, ann=vars(searcher._ann.info))
    rng = np.random.default_rng(5)
    qs = ann.sample_queries(index.projected, 5, rng)
    exact = Searcher(index.projected, "brute")
    start = time.perf_counter()
    for q in qs:
        exact.query(q, 20)
    result["exact_ms"] = (time.perf_counter() - start) * 1000 / len(qs)
    result["rss_end_mb"] = rss_mb()
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", type=int)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/rtsearch-scale"))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    path = args.dir / f"sim{args.n}.dat"
    if args.child:
        print(json.dumps(open_and_query(path, args.queries)))
        return 0
    args.dir.mkdir(parents=True, exist_ok=True)
    for stale in (path, Path(str(path) + ".ann")):
        stale.unlink(missing_ok=True)
    report: dict = {"n": args.n, "dims": DIMS, "write_s": write(path, args.n)}
    report["bytes"] = path.stat().st_size
    for step in ("first_open", "second_open"):
        child = [sys.executable, __file__, str(args.n), "--dir", str(args.dir), "--child"]
        out = subprocess.run(
            [*child, "--queries", str(args.queries)], capture_output=True, text=True, check=True
        )
        report[step] = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
