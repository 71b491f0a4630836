"""Dimensionality reduction of feature rows: random Gaussian projection or PCA.

A projection is plain data (matrix, mean, flags) so it can be stored in the index file and
applied identically to new vectors: ``y = (normalise(x) - mean) @ matrix [/ scale]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rtsearch.errors import RtsearchError

Vectors = npt.NDArray[np.float32]
KINDS = ("random", "pca", "pca-whiten", "none")
MIN_DIMS, MAX_DIMS = 2, 1500
DEFAULT_DIMS = 100
# PCA beat random projection on every retrieval metric for the default model on real
# images at the same size and query cost (docs/eval.md, `rtsearch eval`).
DEFAULT_KIND = "pca"
DEFAULT_SEED = 0


@dataclass(frozen=True)
class Projection:
    """matrix: (D, d) float32; mean: (D,) float32, subtracted after optional L2 norm."""

    kind: str
    matrix: Vectors
    mean: Vectors
    l2_normalize: bool
    seed: int = DEFAULT_SEED

    @property
    def in_dims(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def out_dims(self) -> int:
        return int(self.matrix.shape[1])

    def __call__(self, features: Vectors) -> Vectors:
        """(N, D) or (D,) features -> (N, d) or (d,) float32."""
        x = np.asarray(features, dtype=np.float32)
        if x.shape[-1] != self.in_dims:
            raise RtsearchError(
                f"feature dims {x.shape[-1]} do not match the projection's {self.in_dims}"
            )
        if self.l2_normalize:
            x = l2_normalize(x)
        return np.ascontiguousarray((x - self.mean) @ self.matrix, dtype=np.float32)


def l2_normalize(x: Vectors) -> Vectors:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def check_dims(dims: int, feature_dims: int) -> int:
    if not MIN_DIMS <= dims <= MAX_DIMS:
        raise RtsearchError(f"--dims {dims}: must be between {MIN_DIMS} and {MAX_DIMS}")
    if dims > feature_dims:
        raise RtsearchError(f"--dims {dims}: larger than the model's {feature_dims} features")
    return dims


def fit(
    features: Vectors,
    dims: int = DEFAULT_DIMS,
    kind: str = "random",
    *,
    l2: bool = True,
    seed: int = DEFAULT_SEED,
) -> Projection:
    """Fit a projection to (N, D) features. 'none' keeps all D dims (mean-centred only)."""
    if kind not in KINDS:
        raise RtsearchError(f"unknown projection {kind!r} (choose from {', '.join(KINDS)})")
    x = np.asarray(features, dtype=np.float32)
    if l2:
        x = l2_normalize(x)
    n, d_in = x.shape
    mean = x.mean(axis=0).astype(np.float32) if n else np.zeros(d_in, np.float32)
    if kind == "none":
        matrix = np.eye(d_in, dtype=np.float32)
    elif kind == "random":
        matrix = random_matrix(d_in, check_dims(dims, d_in), seed)
    else:
        matrix = pca_matrix(x - mean, check_dims(dims, d_in), whiten=kind == "pca-whiten")
    return Projection(kind, matrix, mean, l2, seed)


def random_matrix(d_in: int, d_out: int, seed: int) -> Vectors:
    """Zero-mean Gaussian, scaled so squared distances are preserved in expectation."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((d_in, d_out)) / np.sqrt(d_out)).astype(np.float32)


def pca_matrix(centred: Vectors, d_out: int, *, whiten: bool) -> Vectors:
    # One image has no variance; any basis then ranks the same, so do not refuse it.
    n = max(centred.shape[0], 2)
    cov = (centred.T.astype(np.float64) @ centred.astype(np.float64)) / (n - 1)
    # Only the top d_out eigenpairs (MRRR driver): ~2x faster than a full eigh at 1280 dims,
    # which is a fixed cost of every analyze run.
    from scipy.linalg import eigh

    top = cov.shape[0]
    eigvals, eigvecs = eigh(cov, subset_by_index=[top - d_out, top - 1], driver="evr")
    order = np.argsort(eigvals)[::-1]
    vecs = eigvecs[:, order]
    # Sign convention so the same data always gives the same matrix.
    vecs *= np.sign(vecs[np.abs(vecs).argmax(axis=0), np.arange(vecs.shape[1])])
    if whiten:
        vals = np.maximum(eigvals[order], 0.0)
        vecs = vecs / np.sqrt(vals + max(vals.max(), 1e-12) * 1e-3)
    return vecs.astype(np.float32)
