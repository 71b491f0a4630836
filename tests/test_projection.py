"""projection.fit: PCA off the main thread gives the same basis and lets other threads run."""

from __future__ import annotations

import threading
import time

import numpy as np

from rtsearch import projection as proj


def _features(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Non-negative rows with a decaying spectrum, like CNN activations after ReLU."""
    rng = np.random.default_rng(seed)
    scales = 1.0 / np.sqrt(1.0 + np.arange(d))
    mixed = (rng.standard_normal((n, d)) * scales) @ rng.standard_normal((d, d)) / np.sqrt(d)
    return np.maximum(mixed + 0.05, 0).astype(np.float32)


def _in_thread(fn):
    out: list = []
    worker = threading.Thread(target=lambda: out.append(fn()))
    worker.start()
    worker.join()
    return out[0]


def test_pca_in_a_background_thread_matches_the_main_threads():
    x = _features(600, 256)
    for kind in ("pca", "pca-whiten"):
        main = proj.fit(x, 40, kind)
        background = _in_thread(lambda k=kind: proj.fit(x, 40, k))
        assert np.allclose(main.matrix, background.matrix, atol=1e-4)
        assert np.allclose(main(x[:50]), background(x[:50]), atol=1e-4)


def test_pca_in_a_background_thread_lets_other_threads_run():
    """The viewer re-projects and analyzes on a task thread while it draws frames; a fit
    that held the interpreter lock froze the window for the whole eigendecomposition
    (3.2 s at VGG16's 4096 dims). Here a ticker thread must keep ticking through a
    2048-d fit: its longest pause stays a small part of the fit."""
    x = _features(2200, 2048, seed=1)
    stop = threading.Event()
    gaps: list[float] = []

    def tick() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            time.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    def fit() -> float:
        start = time.perf_counter()
        proj.fit(x, 100, "pca")
        return time.perf_counter() - start

    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        seconds = _in_thread(fit)
    finally:
        stop.set()
        ticker.join()
    assert max(gaps) < max(0.25 * seconds, 0.1), (max(gaps), seconds)


def test_blocked_float32_covariance_matches_float64():
    """Rows past several BLOCK_ROWS blocks, summed block by block: the float64 product of the
    whole centred matrix, to ~1e-6, and the same principal axes."""
    x = proj.l2_normalize(_features(3 * proj.BLOCK_ROWS + 123, 96, seed=2))
    mean = x.mean(axis=0)
    centred = x.astype(np.float64) - mean
    reference = centred.T @ centred / (len(x) - 1)
    cov = proj.covariance(x, mean)
    assert np.abs(cov - reference).max() < 1e-5 * np.abs(reference).max()
    fitted = proj.fit(x, 20, "pca", l2=False)
    _, vecs = np.linalg.eigh(reference)
    top = vecs[:, ::-1][:, :20]
    cosines = np.abs((fitted.matrix.astype(np.float64) * top).sum(axis=0))
    assert cosines.min() > 0.9999


def test_fit_and_apply_in_blocks_equal_the_whole_matrix_at_once():
    """Fitting and projecting go BLOCK_ROWS rows at a time (no normalised copy of all rows):
    the mean, and every projected row, are what the whole matrix at once gives."""
    x = _features(2 * proj.BLOCK_ROWS + 77, 64, seed=3) * 5.0
    for kind in ("pca", "random"):
        p = proj.fit(x, 16, kind, l2=True)
        unit = x.astype(np.float64) / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
        assert np.allclose(p.mean, unit.mean(axis=0), atol=1e-6)
        whole = (unit - p.mean) @ p.matrix.astype(np.float64)
        assert np.allclose(p(x), whole, atol=1e-5)
        assert np.allclose(p(x[-1]), whole[-1], atol=1e-5)  # one vector, as a query


def test_fewer_rows_than_features_give_the_covariances_axes_from_their_gram_matrix():
    """128 VGG16 rows (4096-d): the 4096 x 4096 eigendecomposition took 4.6 s (11 s for
    1500 dims); the (128, 128) Gram matrix gives the same axes, and past the rows' span an
    orthonormal basis none of them take."""
    x = _features(60, 300, seed=2)
    mean = x.mean(axis=0)
    for l2 in (False, True):
        vals, vecs = proj.top_eigenpairs(proj.covariance(x, mean, l2=l2), 40)
        order = np.argsort(vals)[::-1]
        gram_vals, axes = proj.gram_axes(x, mean, 40, l2=l2)
        assert np.allclose(gram_vals, vals[order], rtol=1e-6, atol=1e-12)
        # the same axes up to sign: each one's projection of the rows agrees
        dots = np.abs(np.sum(axes * vecs[:, order], axis=0))
        assert np.allclose(dots, 1.0, atol=1e-6)
    for kind in ("pca", "pca-whiten"):
        p = proj.fit(x, 100, kind)  # more dims than the 59 the rows span
        m = p.matrix.astype(np.float64)
        if kind == "pca":
            assert np.allclose(m.T @ m, np.eye(100), atol=1e-5)  # orthonormal
        y = p(x)
        assert np.allclose(y[:, 59:], 0.0, atol=1e-4)  # the rows take none of the rest
        assert np.isfinite(y).all()
    # as the covariance's path does with as many rows as features, or none
    wide = _features(300, 300, seed=3)
    assert proj.fit(wide, 40, "pca").matrix.shape == (300, 40)
    assert proj.fit(np.zeros((0, 64), np.float32), 10, "pca").matrix.shape == (64, 10)


def test_none_keeps_every_dim_centred_without_a_product():
    """'none' multiplied every query by an identity matrix: 0.1 ms a 1280-d query alone,
    8 ms with BLAS threads on busy cores. Its output is the centred vector, bit for bit."""
    x = np.random.default_rng(3).random((50, 64), dtype=np.float32)
    p = proj.fit(x, 64, "none")
    centred = (x / np.linalg.norm(x, axis=1, keepdims=True)) - p.mean
    np.testing.assert_array_equal(p(x), centred.astype(np.float32))
    np.testing.assert_array_equal(p(x[7]), centred[7])
    assert p._identity and not proj.fit(x, 64, "pca")._identity
    # a 'none' file whose matrix is not the identity (written by hand) is multiplied
    scaled = proj.Projection("none", p.matrix * 2, p.mean, True)
    np.testing.assert_allclose(scaled(x[7]), centred[7] * 2, rtol=1e-6)
