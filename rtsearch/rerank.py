"""Re-ranking the nearest candidates of a projected search with the full stored features.

The projected search is fast but approximate; re-ordering its first K candidates by distance
between L2-normalised full feature vectors recovers exact-search quality for copy detection
(`rtsearch eval --rerank K`, docs/eval.md) at the cost of keeping the features in memory.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rtsearch.projection import l2_normalize

Vectors = npt.NDArray[np.float32]
Rows = npt.NDArray[np.int64]


def rerank(
    features: Vectors, queries: Vectors, candidates: Rows, l2: bool = True
) -> tuple[Rows, Vectors]:
    """Re-order each query's candidate rows by full-feature Euclidean distance.

    features: (N, D) stored rows (a memmap is fine: only candidate rows are read);
    queries: (Q, D) or (D,) full features; candidates: (Q, K) or (K,) row numbers.
    Returns (rows, distances) shaped like ``candidates``, nearest first.
    """
    single = np.ndim(candidates) == 1
    cand = np.atleast_2d(np.asarray(candidates, dtype=np.int64))
    q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    needed = np.unique(cand)  # sorted: h5py and memmaps read ascending rows fastest
    rows = np.asarray(features[needed], dtype=np.float32)
    where = np.searchsorted(needed, cand)
    if l2:
        rows, q = l2_normalize(rows), l2_normalize(q)
    d2 = ((rows[where] - q[:, None, :]) ** 2).sum(axis=2)
    order = np.argsort(d2, axis=1, kind="stable")
    out = np.take_along_axis(cand, order, axis=1)
    dist = np.sqrt(np.take_along_axis(d2, order, axis=1)).astype(np.float32)
    return (out[0], dist[0]) if single else (out, dist)
