"""Dimensionality reduction of feature rows: random Gaussian projection or PCA.

A projection is plain data (matrix, mean, flags) so it can be stored in the index file and
applied identically to new vectors: ``y = (normalise(x) - mean) @ matrix [/ scale]``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

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
BLOCK_ROWS = 8192  # rows per block when fitting and applying a projection


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
        if x.ndim == 1:
            return self._block(x)
        # In blocks of rows: the normalised and centred copies of a million 1280-d rows
        # would be 5 GB each; the output is all that is allocated in full.
        out = np.empty((x.shape[0], self.out_dims), np.float32)
        for start in range(0, x.shape[0], BLOCK_ROWS):
            out[start : start + BLOCK_ROWS] = self._block(x[start : start + BLOCK_ROWS])
        return out

    @cached_property
    def _identity(self) -> bool:
        """'none' keeps every dim: its matrix is the identity, and multiplying by it cost a
        live query 0.1 ms alone and 8 ms with BLAS threads on busy cores (1280-d)."""
        m = self.matrix
        return (
            self.kind == "none"
            and m.shape[0] == m.shape[1]
            and bool(np.all(np.diagonal(m) == 1))
            and np.count_nonzero(m) == m.shape[0]
        )

    def _block(self, x: Vectors) -> Vectors:
        if self.l2_normalize:
            x = l2_normalize(x)
        if self._identity:
            return np.ascontiguousarray(x - self.mean, dtype=np.float32)
        return np.ascontiguousarray((x - self.mean) @ self.matrix, dtype=np.float32)


def l2_normalize(x: Vectors) -> Vectors:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def check_dims(dims: int, feature_dims: int) -> int:
    if not MIN_DIMS <= dims <= MAX_DIMS:
        raise RtsearchError(f"--dims {dims}: must be between {MIN_DIMS} and {MAX_DIMS}")
    if dims > feature_dims:
        default = " (the default)" if dims == DEFAULT_DIMS else ""
        raise RtsearchError(
            f"--dims {dims}{default}: larger than the model's {feature_dims} features; "
            f"pass --dims {feature_dims} or fewer"
        )
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
    n, d_in = x.shape
    mean = np.zeros(d_in, np.float64)
    for block in _blocks(x, l2):
        mean += block.sum(axis=0, dtype=np.float64)
    mean = (mean / max(n, 1)).astype(np.float32)
    if kind == "none":
        matrix = np.eye(d_in, dtype=np.float32)
    elif kind == "random":
        matrix = random_matrix(d_in, check_dims(dims, d_in), seed)
    else:
        matrix = pca_matrix(x, mean, check_dims(dims, d_in), whiten=kind == "pca-whiten", l2=l2)
    return Projection(kind, matrix, mean, l2, seed)


def _blocks(x: Vectors, l2: bool) -> Iterator[Vectors]:
    """BLOCK_ROWS rows at a time, L2-normalised if asked: peak memory stays one block above
    the features (a normalised copy of all rows was 2x the features for PCA at 300k rows)."""
    for start in range(0, x.shape[0], BLOCK_ROWS):
        block = x[start : start + BLOCK_ROWS]
        yield l2_normalize(block) if l2 else block


def random_matrix(d_in: int, d_out: int, seed: int) -> Vectors:
    """Zero-mean Gaussian, scaled so squared distances are preserved in expectation."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((d_in, d_out)) / np.sqrt(d_out)).astype(np.float32)


def pca_matrix(x: Vectors, mean: Vectors, d_out: int, *, whiten: bool, l2: bool = False) -> Vectors:
    """(D, d_out) float32: the top principal axes of the rows of ``x`` (L2-normalised first
    with ``l2``) about ``mean``."""
    if 0 < len(x) < x.shape[1]:
        eigvals, vecs = gram_axes(x, mean, d_out, l2=l2)
    else:
        eigvals, eigvecs = top_eigenpairs(covariance(x, mean, l2=l2), d_out)
        order = np.argsort(eigvals)[::-1]
        eigvals, vecs = eigvals[order], eigvecs[:, order]
    # Sign convention so the same data always gives the same matrix.
    vecs *= np.sign(vecs[np.abs(vecs).argmax(axis=0), np.arange(vecs.shape[1])])
    if whiten:
        vals = np.maximum(eigvals, 0.0)
        vecs = vecs / np.sqrt(vals + max(vals.max(), 1e-12) * 1e-3)
    return vecs.astype(np.float32)


def gram_axes(
    x: Vectors, mean: Vectors, d_out: int, *, l2: bool = False
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The top ``d_out`` eigenvalues (descending) and axes of the covariance of fewer rows
    than features, from the (N, N) Gram matrix of the centred rows instead of the (D, D)
    covariance: 128 VGG16 rows (4096-d) took 4.6 s (11 s for 1500 dims, 49 s in the
    viewer), the eigendecomposition of 4096 x 4096. Axes past the rows' span (they carry
    nothing of these rows) complete an orthonormal basis, as any basis of the covariance's
    null space would."""
    rows = np.concatenate([block - mean for block in _blocks(x, l2)]).astype(np.float64)
    n, d = rows.shape
    vals, u = np.linalg.eigh(rows @ rows.T)
    vals, u = vals[::-1], u[:, ::-1]
    span = int(np.sum(vals > max(vals[0], 0.0) * 1e-9)) if vals[0] > 0 else 0
    span = min(span, d_out)
    axes = rows.T @ (u[:, :span] / np.sqrt(vals[:span]))
    eigvals = vals[:span] / (max(n, 2) - 1)
    if span < d_out:  # the rest: an orthonormal basis of directions none of the rows take
        rest = np.random.default_rng(0).standard_normal((d, d_out - span))
        rest -= axes @ (axes.T @ rest)
        rest = np.linalg.qr(rest)[0]
        axes = np.hstack([axes, rest])
        eigvals = np.concatenate([eigvals, np.zeros(d_out - span)])
    return eigvals, axes


def covariance(x: Vectors, mean: Vectors, *, l2: bool = False) -> npt.NDArray[np.float64]:
    """(D, D) float64 sample covariance of the rows of ``x`` (L2-normalised first with
    ``l2``) about ``mean``. Each block of BLOCK_ROWS centred rows is multiplied in float32 and
    the blocks are summed in float64: against one float64 product of the whole centred matrix
    (145k x 1280 here) that is 1.5 vs 11.1 s, without its two float64 copies (3 GB; 20 GB at
    1M rows), and the sums differ by 1.6e-6 of the largest."""
    n, d = x.shape
    cov = np.zeros((d, d), np.float64)
    for block in _blocks(x, l2):
        block = block - mean
        cov += block.T @ block
    # One image has no variance; any basis then ranks the same, so do not refuse it.
    return cov / (max(n, 2) - 1)


def top_eigenpairs(cov: npt.NDArray[np.float64], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest eigenvalues (ascending) and their eigenvectors (columns) of a symmetric
    matrix. On the main thread (the command line): scipy's MRRR driver for only those k,
    1.7-1.9x faster than a full decomposition (1280-d 0.15 vs 0.25 s, 4096-d 3.7 vs 7.0 s
    here). Off it (the viewer's background tasks): numpy's full decomposition, because
    scipy's LAPACK wrapper holds the interpreter lock throughout: the viewer's frames and
    live queries stopped for the whole call (3.2 s at 4096-d, VGG16 fc7), while numpy's
    lets them run. Both give the same vectors (to ~1e-14) wherever the spectrum has a gap."""
    top = cov.shape[0]
    if threading.current_thread() is threading.main_thread():
        from scipy.linalg import eigh

        return eigh(cov, subset_by_index=[top - k, top - 1], driver="evr")
    eigvals, eigvecs = np.linalg.eigh(cov)
    return eigvals[top - k :], eigvecs[:, top - k :]
