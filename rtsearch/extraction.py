"""The extraction loop analyze and update run: files decoded on a pool (or in each
inference stream), batched, and run ``extractor.streams`` at a time; the files that cannot
be decoded are skipped and said, each in one line, but for those a missing codec leaves
unread: the first is said, the rest counted in one line at the end."""

from __future__ import annotations

import os
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from rtsearch.decode import Codec, FileGone, RGBImage, exhausted, load_rgb, missing_codec
from rtsearch.errors import RtsearchError, Warn, count
from rtsearch.extractor import Extractor, cores, fit_to_input

DEFAULT_BATCH = 16  # one run at a time on the CPU: bigger batches pay
GPU_BATCH = 64  # one run at a time on CUDA: the GPU needs large batches to fill up
STREAM_BATCH = 4  # per single-threaded CPU stream: measured best for EfficientNet-Lite0


def _decode_one(path: Path, info) -> tuple[RGBImage, int, float]:
    st = os.stat(path)
    image = load_rgb(path, min_size=info.input_size)
    return fit_to_input(image, info), st.st_size, st.st_mtime


def batch_for(extractor: Extractor) -> int:
    """The default batch: small per CPU stream (each stream's activations stay in its core's
    cache: 2 streams at batch 4 ran 206-218 images/s, at 16 176-188), larger otherwise."""
    if not extractor.on_cpu:
        return GPU_BATCH
    return STREAM_BATCH if extractor.streams > 1 else DEFAULT_BATCH


def extract(base_dir, todo, extractor, batch_size, report, warn, cancel) -> Iterator[tuple]:
    """Yield (paths, features, sizes, mtimes) per batch, in order; batches run
    ``extractor.streams`` at a time. ``batch_size`` 0: batch_for."""
    batch_size = batch_size or batch_for(extractor)
    run = _extract_in_streams if decodes_in_streams(extractor) else _extract_beside
    said = Collapsed(warn) if warn else None
    try:
        yield from run(base_dir, todo, extractor, batch_size, report, said, cancel)
    finally:
        if said:
            said.close()


# a file listed by the scan, not there when its turn came
GONE = "gone since the folder was read (moved or deleted)"


class Collapsed:
    """A ``warn`` that says each line, but of the lines for files a missing codec leaves
    unread (MissingCodec's) only the first; ``close`` then says how many more there were,
    in one line per codec: a library of 10,000 HEICs without pillow-heif is two lines.
    Files gone since the scan likewise (a folder of 200 renamed during a pass was 200
    lines)."""

    def __init__(self, warn: Warn) -> None:
        self.warn = warn
        self.held: Counter[Codec] = Counter()
        self.gone: int | None = None  # the gone files after the first, once one is said

    def __call__(self, message: str) -> None:
        if message.endswith(f": {GONE}"):
            if self.gone is not None:
                self.gone += 1
                return
            self.gone = 0
        codec = missing_codec(message)
        if codec is not None and codec in self.held:
            self.held[codec] += 1
            return
        if codec is not None:
            self.held[codec] = 0
        self.warn(message)

    def close(self) -> None:
        for codec, n in self.held.items():
            if n:
                self.warn(codec.more(n))
        self.held.clear()
        if self.gone:
            self.warn(f"{count(self.gone, 'more file')} {GONE}")
        self.gone = None


def decodes_in_streams(extractor: Extractor) -> bool:
    """Whether each inference stream decodes its own batch before running it: on the CPU
    when there is a single-threaded stream for every core (small machines). Then exactly
    as many threads are busy as there are cores; a decode pool beside the streams doubled
    that on 2 cores. 200 640x480 JPEGs, alternating rounds on a shared 2-core
    machine: 0.78-0.82 of the model's rate with the pool, 0.84-0.91 in the streams (medians
    of three runs of 4-6 rounds), 1.08x as fast and faster in 8 of 8 rounds of this code;
    40 12 MP JPEGs (decode-bound): 58 vs 59 images/s.
    Fewer streams than cores (``--threads 1``, the viewer's analysis, 5-7 cores with at most
    MAX_AUTO_STREAMS streams), streams of several threads or an accelerator keep the pool:
    decoding in the streams would leave cores, a stream's other threads or the device idle
    meanwhile (one stream of 1280x960 PNGs: 14-16 images/s against 22-33 with the pool)."""
    return extractor.on_cpu and extractor.threads_per_stream == 1 and extractor.streams >= cores()


def _extract_in_streams(
    base_dir, todo, extractor, batch_size, report, warn, cancel
) -> Iterator[tuple]:
    info = extractor.info

    def decode_and_run(rels: list[str]) -> tuple[tuple | None, list[tuple[str, str]] | None]:
        if cancel is not None and cancel.is_set():  # queued before the cancel: not started
            return None, None
        batch, skipped = [], []
        for rel in rels:
            try:
                batch.append((rel, *_decode_one(base_dir / rel, info)))
            except (RtsearchError, OSError) as exc:
                if exhausted(exc):
                    raise
                skipped.append((rel, _problem(base_dir, rel, exc)))
        return (_run_batch(extractor, batch, 0) if batch else None), skipped

    def collect(fut: Future) -> Iterator[tuple]:
        result, skipped = fut.result()
        if skipped is None:  # its images are left for the next run
            report.cancelled = True
            return
        for rel, msg in skipped:
            report.skipped.append((rel, msg))
            if warn:
                warn(msg)
        if result is not None:
            yield result

    chunks = (todo[i : i + batch_size] for i in range(0, len(todo), batch_size))
    running: deque[Future] = deque()
    # one batch queued beyond the streams, so that a stream that finishes starts the next
    with ThreadPoolExecutor(extractor.streams, thread_name_prefix="stream") as pool:
        try:
            for rels in chunks:
                if cancel is not None and cancel.is_set():
                    report.cancelled = True
                    break
                running.append(pool.submit(decode_and_run, rels))
                while len(running) > extractor.streams:
                    yield from collect(running.popleft())
            while running:  # (after a cancel too: running batches finish and are kept)
                yield from collect(running.popleft())
        finally:
            for fut in running:
                fut.cancel()


def _problem(base_dir: Path, rel: str, exc: Exception) -> str:
    path = base_dir / rel
    if isinstance(exc, (FileNotFoundError, FileGone)):
        return f"{path}: {GONE}"
    return str(exc) if isinstance(exc, RtsearchError) else f"{path}: {exc.strerror}"


def _extract_beside(base_dir, todo, extractor, batch_size, report, warn, cancel) -> Iterator[tuple]:
    """Decoding runs ahead on a pool beside the inference streams."""
    info = extractor.info
    workers = cores()
    with (
        ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool,
        _Inference(extractor, batch_size) as inference,
    ):
        lookahead = max(batch_size * (1 + inference.depth), workers * 4)
        pending: list[tuple[str, Future]] = []
        queue = iter(todo)
        batch: list[tuple[str, RGBImage, int, float]] = []
        while True:
            while len(pending) < lookahead and (rel := next(queue, None)) is not None:
                pending.append((rel, pool.submit(_decode_one, base_dir / rel, info)))
            if not pending or (cancel is not None and cancel.is_set()):
                report.cancelled = bool(pending)
                break
            rel, fut = pending.pop(0)
            try:
                batch.append((rel, *fut.result()))
            except (RtsearchError, OSError) as exc:
                if exhausted(exc):
                    raise
                msg = _problem(base_dir, rel, exc)
                report.skipped.append((rel, msg))
                if warn:
                    warn(msg)
            if len(batch) >= batch_size or (not pending and batch):
                yield from inference.submit(batch)
                batch = []
        for _, fut in pending:
            fut.cancel()
        if batch and not report.cancelled:
            yield from inference.submit(batch)
        yield from inference.drain()


class _Inference:
    """Runs batches on ``extractor.streams`` threads and hands results back in order: each
    ``submit`` yields the oldest batch's result once ``depth`` batches are in flight. On the
    CPU depth is the stream count (1: run in the caller's thread). On an accelerator two
    threads run batches, so one batch is preprocessed while the device works on the other
    and the caller gathers the next; a short last batch runs padded (one shape, one cuDNN
    search)."""

    def __init__(self, extractor: Extractor, batch_size: int) -> None:
        self.extractor = extractor
        self.pad_to = 0 if extractor.on_cpu else batch_size
        self.depth = extractor.streams if extractor.on_cpu else max(2, extractor.streams)
        self.pool = (
            ThreadPoolExecutor(self.depth, thread_name_prefix="infer") if self.depth > 1 else None
        )
        self.running: deque[Future] = deque()

    def submit(self, batch) -> Iterator[tuple]:
        if self.pool is None:
            yield _run_batch(self.extractor, batch, self.pad_to)
            return
        self.running.append(self.pool.submit(_run_batch, self.extractor, batch, self.pad_to))
        while len(self.running) >= self.depth:
            yield self.running.popleft().result()

    def drain(self) -> Iterator[tuple]:
        while self.running:
            yield self.running.popleft().result()

    def __enter__(self) -> _Inference:
        return self

    def __exit__(self, *exc) -> None:
        for fut in self.running:
            fut.cancel()
        if self.pool is not None:
            self.pool.shutdown(wait=True)


def _run_batch(extractor: Extractor, batch, pad_to: int) -> tuple:
    paths, images, sizes, mtimes = zip(*batch, strict=True)
    return list(paths), extractor(list(images), pad_to=pad_to), list(sizes), list(mtimes)
