"""Stage 3: the live query loop, timed per stage, for the screen and video sources.

One iteration is what the viewer's worker does per frame: grab -> trim (its plain borders,
rtsearch/borders.py) -> preprocess -> inference -> projection -> kNN -> thumbnails of the
results. Thumbnails come from the viewer's own cache (``rtsearch.thumbs.ThumbCache``, tiles
of the viewer's size, misses decoded together on a pool sized to the cores);
``thumbs_cold_ms`` is the same step with an empty cache.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from rtsearch.borders import trim_borders
from rtsearch.decode import RGBImage
from rtsearch.extractor import cores, preprocess
from rtsearch.perf.model import throughput
from rtsearch.perf.timing import percentile
from rtsearch.session import SearchSession
from rtsearch.thumbs import ThumbCache
from rtsearch.viewer.worker import THUMB_BOX as THUMB

STAGES = ("grab", "trim", "preprocess", "inference", "projection", "knn", "thumbnails")
K = 20
Grab = Callable[[], RGBImage]


def one_query(
    session: SearchSession, grab: Grab, cache: ThumbCache, pool: Executor
) -> dict[str, float]:
    """Run one iteration; ms per stage."""
    marks = [time.perf_counter()]
    frame = grab()
    marks.append(time.perf_counter())
    frame = trim_borders(frame)
    marks.append(time.perf_counter())
    batch = preprocess([frame], session.extractor.info)
    marks.append(time.perf_counter())
    feats = session.extractor.run(batch)
    marks.append(time.perf_counter())
    vec = session.project(feats)[0]
    marks.append(time.perf_counter())
    results = session.query_vector(vec, K)
    marks.append(time.perf_counter())
    cache.get_many([r.file for r in results], pool)
    marks.append(time.perf_counter())
    return {s: (marks[i + 1] - marks[i]) * 1000.0 for i, s in enumerate(STAGES)}


def run_loop(session: SearchSession, grab: Grab, seconds: float) -> dict:
    """Loop for ``seconds`` (at least 5 queries); median per stage, p50/p99 end to end."""
    with ThreadPoolExecutor(cores()) as pool:
        cold = one_query(session, grab, ThumbCache(THUMB), pool)["thumbnails"]
        cache = ThumbCache(THUMB)
        one_query(session, grab, cache, pool)  # warm-up: first run, page-ins
        rows: list[dict[str, float]] = []
        start = time.perf_counter()
        while len(rows) < 5 or time.perf_counter() - start < seconds:
            rows.append(one_query(session, grab, cache, pool))
        elapsed = time.perf_counter() - start
    totals = [sum(r.values()) for r in rows]
    return {
        "queries": len(rows),
        "qps": round(len(rows) / elapsed, 2),
        "stages_ms": {s: round(percentile([r[s] for r in rows], 50), 3) for s in STAGES},
        "latency_p50_ms": round(percentile(totals, 50), 2),
        "latency_p99_ms": round(percentile(totals, 99), 2),
        "thumbs_cold_ms": round(cold, 2),
    }


class JustInTimeCapture:
    """Grabs and preprocesses the next frame on its own thread, timed to finish as the
    current inference does: the model never waits for a frame, and the frame it gets is
    fresh (capture-to-display stays one grab + one inference + the rest)."""

    def __init__(self, grab: Grab, info) -> None:
        self.grab, self.info = grab, info
        self.ready = threading.Event()
        self.go = threading.Event()
        self.stop = threading.Event()
        self.delay_s = 0.0
        self.capture_s = 0.005
        self.item: tuple[float, np.ndarray] | None = None
        self.thread = threading.Thread(target=self._run, name="capture", daemon=True)

    def _run(self) -> None:
        while self.go.wait() and not self.stop.is_set():
            self.go.clear()
            time.sleep(self.delay_s)
            t0 = time.perf_counter()
            self.item = (t0, preprocess([trim_borders(self.grab())], self.info))
            self.capture_s = time.perf_counter() - t0  # the work alone, not the wait after
            self.ready.set()

    def request(self, delay_s: float) -> None:
        self.delay_s = max(0.0, delay_s)
        self.go.set()

    def take(self) -> tuple[float, np.ndarray]:
        self.ready.wait()
        self.ready.clear()
        assert self.item is not None
        return self.item

    def close(self) -> None:
        self.stop.set()
        self.go.set()
        self.thread.join(timeout=5)


def run_pipelined(session: SearchSession, grab: Grab, seconds: float) -> dict:
    """The overlapped loop: queries/s and capture-to-results latency (p50/p99)."""
    cap = JustInTimeCapture(grab, session.extractor.info)
    cap.thread.start()
    cache = ThumbCache(THUMB)
    pool = ThreadPoolExecutor(cores())
    latencies: list[float] = []
    infer_s = 0.02
    cap.request(0.0)
    start = time.perf_counter()
    try:
        while len(latencies) < 6 or time.perf_counter() - start < seconds:
            t0, batch = cap.take()
            # Start the next grab so that it ends ~1 ms before this inference does.
            cap.request(infer_s - cap.capture_s - 0.001)
            t1 = time.perf_counter()
            feats = session.extractor.run(batch)
            infer_s = time.perf_counter() - t1
            results = session.query_vector(session.project(feats)[0], K)
            cache.get_many([r.file for r in results], pool)
            latencies.append((time.perf_counter() - t0) * 1000.0)
        elapsed = time.perf_counter() - start
    finally:
        cap.close()
        pool.shutdown()
    kept = latencies[1:]  # the first includes start-up
    return {
        "queries": len(kept),
        "qps": round(len(latencies) / elapsed, 2),
        "latency_p50_ms": round(percentile(kept, 50), 2),
        "latency_p99_ms": round(percentile(kept, 99), 2),
    }


@contextmanager
def screen_grab(size: tuple[int, int] = (600, 800)) -> Iterator[Grab]:
    """The viewer's screen source on a region (a private Xvfb when there is no display)."""

    from rtsearch.sources import ScreenSource

    display = None
    if not os.environ.get("DISPLAY"):
        from pyvirtualdisplay import Display

        display = Display(visible=False, size=(1440, 900))
        display.start()
    source = ScreenSource((0, 0, size[1], size[0]))
    try:
        yield lambda: _image(source)
    finally:
        source.close()
        if display is not None:
            display.stop()


@contextmanager
def video_grab(path: Path) -> Iterator[Grab]:
    """The viewer's video source, every frame in turn: the loop's own rate, not the file's."""
    from rtsearch.sources import VideoSource

    source = VideoSource(path, realtime=False)
    try:
        yield lambda: _image(source)
    finally:
        source.close()


def _image(source) -> RGBImage:
    frame = source.read()
    if frame is None:
        raise RuntimeError(source.message or f"{source.name}: no frame")
    return frame.image


def bench_live(session: SearchSession, video: Path, seconds: float) -> dict:
    """Both loops on both sources; ratios to the model's batch-1 rate measured just before."""
    out: dict = {}
    for name, source in (("screen", screen_grab()), ("video", video_grab(video))):
        try:
            with source as grab:
                row = run_loop(session, grab, seconds)
                row["pipelined"] = run_pipelined(session, grab, seconds)
        except Exception as exc:  # a missing display server must not sink the other stages
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        b1_ips = throughput(session.extractor, (1,), min(seconds, 1.0))["b1_ips"]
        row["model_b1_ips_adjacent"] = b1_ips
        for r in (row, row["pipelined"]):
            r["ratio"] = round(r["qps"] / b1_ips, 3)
            r["latency_vs_inference"] = round(r["latency_p50_ms"] * b1_ips / 1000.0, 2)
        out[name] = row
    return out
