"""Stage 1: model-only throughput at batch 1 and the best batch, per model file.

Input is one preprocessed random batch, so only ``session.run`` is timed; int8 files are
also compared with their fp32 sibling (same weights identity) on real-looking images.
Both ways of using the cores are timed: one run at a time on all of them, and one
single-threaded run per core at once (how analyze runs); the best batch is the best of both.
On CUDA the larger ``gpu_batches`` are timed instead, with IO binding (how rtsearch runs) and
without it, and the features are checked against the CPU provider's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rtsearch.errors import RtsearchError
from rtsearch.extractor import Extractor
from rtsearch.perf.timing import per_call_ms


def throughput(extractor: Extractor, batches: tuple[int, ...], budget_s: float) -> dict:
    """Images/s per batch size for one loaded model, ``extractor.streams`` runs at once."""
    h, w = extractor.info.input_size
    rng = np.random.default_rng(0)
    rates: dict[str, float] = {}
    for b in batches:
        x = rng.standard_normal((b, 3, h, w)).astype(np.float32)
        if extractor.streams == 1:
            ms = per_call_ms(lambda x=x: extractor.run(x), budget_s=budget_s)
            rates[str(b)] = round(b * 1000.0 / ms, 2)
        else:
            rates[str(b)] = round(concurrent_rate(extractor, x, budget_s), 2)
    best = max(rates, key=lambda k: rates[k])
    first = rates[str(batches[0])]
    return {
        "b1_ips": first,  # batches[0] is 1 in the benchmark's plans
        "b1_ms": round(1000.0 / first, 2),
        "best_ips": rates[best],
        "best_batch": int(best),
        "by_batch": rates,
    }


def concurrent_rate(extractor: Extractor, x: np.ndarray, budget_s: float) -> float:
    """Images/s with ``extractor.streams`` threads each running ``x`` back to back."""
    extractor.run(x)  # warm-up
    counts = [0] * extractor.streams
    start = time.perf_counter()
    deadline = start + budget_s

    stop = threading.Event()

    def loop(i: int) -> None:
        while not stop.is_set() and (counts[i] < 2 or time.perf_counter() < deadline):
            extractor.run(x)
            counts[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(extractor.streams)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        # After a Ctrl-C the runs end here, before the caller unwinds: a thread left running
        # holds the model until the interpreter exits, and freeing an onnxruntime session
        # then aborts ("terminate called without an active exception").
        stop.set()
        for t in threads:
            if t.ident is not None:
                t.join()
    return sum(counts) * len(x) / (time.perf_counter() - start)


def best_of_both(single: Extractor, batches: tuple[int, ...], budget_s: float) -> dict:
    """One model file, loaded as one stream: one run at a time (``by_batch``, ``b1_ips``)
    and, on a multi-core CPU, one run per core at once (``by_batch_streams``); ``best_*``
    over both. On an accelerator: with IO binding (``by_batch``) and without
    (``by_batch_unbound``), and ``cpu_cosine_*`` against the CPU provider."""
    row = {
        "name": single.info.name,
        "variant": single.info.variant,
        "provider": single.provider,
        **throughput(single, batches, budget_s),
        "best_streams": 1,
    }
    if not single.on_cpu:
        return row | accelerator_extras(single, batches, budget_s, row["best_ips"])
    parallel = Extractor(single.path, streams=0)
    if parallel.streams > 1:
        rates = throughput(parallel, batches, budget_s)
        row["by_batch_streams"] = rates["by_batch"]
        row["streams"] = parallel.streams
        if rates["best_ips"] > row["best_ips"]:
            row["best_ips"], row["best_batch"] = rates["best_ips"], rates["best_batch"]
            row["best_streams"] = parallel.streams
    return row


def accelerator_extras(
    single: Extractor, batches: tuple[int, ...], budget_s: float, best_ips: float
) -> dict:
    """The plain ``session.run`` rates beside the IO-bound ones, and the features' cosine
    against the CPU provider on real-looking pictures (must be >= 0.999)."""
    from rtsearch.perf.images import picture

    out: dict = {"io_binding": single.bound}
    if single.bound:
        plain = throughput(Extractor(single.path, bind=False), batches, budget_s)
        out["by_batch_unbound"] = plain["by_batch"]
        out["best_ips_unbound"] = plain["best_ips"]
        out["binding_speedup_best"] = round(best_ips / plain["best_ips"], 3)
    images = [picture(480, 640, seed=100 + s) for s in range(16)]
    cpu = Extractor(single.path, providers=["CPUExecutionProvider"])
    vs_cpu = agreement(single, cpu, images)
    out["cpu_cosine_mean"] = vs_cpu["cosine_mean"]
    out["cpu_cosine_min"] = vs_cpu["cosine_min"]
    return out


def agreement(model: Extractor, reference: Extractor, images: list[np.ndarray]) -> dict:
    """Mean and minimum feature cosine of ``model`` against ``reference`` (an int8 model
    against its fp32 original, or one provider against the CPU's)."""
    a, b = model(images), reference(images)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    return {"cosine_mean": round(float(cos.mean()), 4), "cosine_min": round(float(cos.min()), 4)}


def bench_models(
    paths: list[Path],
    images: list[np.ndarray],
    batches: tuple[int, ...],
    budget_s: float,
    gpu_batches: tuple[int, ...],
    skip: Callable[[RtsearchError], None] | None = None,
) -> dict[str, dict]:
    """Figures for every model file, keyed by file name; int8 files get cosine + speed-up.
    A file after the first that cannot be loaded is left out and handed to ``skip`` with
    the reason (the first file's error, or any without ``skip``, is raised)."""
    out: dict[str, dict] = {}
    loaded: dict[str, Extractor] = {}
    for path in paths:
        try:
            ext = Extractor(path)
        except RtsearchError as exc:
            if skip is None or path == paths[0]:
                raise
            skip(exc)
            continue
        loaded[path.name] = ext
        sizes = batches if ext.on_cpu else gpu_batches
        out[path.name] = best_of_both(ext, sizes, budget_s)
    for name, ext in loaded.items():
        if ext.info.variant != "int8":
            continue
        twin = next(
            (n for n, e in loaded.items() if e.info.variant != "int8" and _same(e, ext)), None
        )
        if twin is None:
            continue
        row = out[name]
        row.update(agreement(ext, loaded[twin], images))
        row["fp32_file"] = twin
        row["speedup_b1"] = round(row["b1_ips"] / out[twin]["b1_ips"], 2)
        row["speedup_best"] = round(row["best_ips"] / out[twin]["best_ips"], 2)
        row["default_eligible"] = row["cosine_mean"] >= 0.99 and row["speedup_best"] > 1.0
    return out


def _same(a: Extractor, b: Extractor) -> bool:
    return a.info.identity == b.info.identity
