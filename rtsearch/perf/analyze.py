"""Stage 2: `analyze` throughput on generated JPEG folders, against the model alone.

The decode-only rate (the same thread pool analyze uses, no model) shows which side limits
analyze on large photos: decoding or inference.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rtsearch.analyze import Settings, analyze
from rtsearch.decode import load_rgb
from rtsearch.extractor import Extractor, fit_to_input
from rtsearch.perf.model import throughput


def analyze_rate(folder: Path, out: Path, extractor: Extractor, batch: int = 0) -> dict:
    """Images/s of a full analyze run (``ips_total``) and of its extraction phase (``ips``:
    start to the last batch, without the once-per-run projection fit and save, which do not
    grow with the number of images)."""
    last = [0.0]

    def progress(_: object) -> None:
        last[0] = time.perf_counter()

    start = time.perf_counter()
    report = analyze(folder, out, extractor, Settings(batch=batch), progress=progress)
    count = report.analysed
    extract_s = max(last[0] - start, 1e-9)
    return {
        "images": count,
        "seconds": round(report.seconds, 3),
        "ips": round(count / extract_s, 2),
        "ips_total": round(count / report.seconds, 2) if report.seconds else 0.0,
        "finish_s": round(report.seconds - extract_s, 3),
        "skipped": len(report.skipped),
    }


def decode_rate(paths: list[Path], extractor: Extractor) -> float:
    """Images/s decoding to the model's input size on a pool sized to the cores."""
    info = extractor.info

    def one(p: Path) -> None:
        fit_to_input(load_rgb(p, min_size=info.input_size), info)

    start = time.perf_counter()
    with ThreadPoolExecutor(max(1, os.cpu_count() or 1)) as pool:
        list(pool.map(one, paths))
    return round(len(paths) / (time.perf_counter() - start), 2)


def bench_folder(
    folder: Path,
    work: Path,
    extractor: Extractor,
    best: Extractor,
    best_batch: int,
    budget_s: float,
) -> dict:
    """Analyze ``folder`` once with ``extractor`` as `rtsearch analyze` runs it; ``work``
    holds the .dat. The model's best rate (``best`` at ``best_batch``: stage 1's best way
    to run it) is re-measured right before and after, so load from other processes hits both
    sides of the ratio alike."""
    paths = sorted(folder.glob("*.jpg"))
    before = throughput(best, (best_batch,), budget_s)["by_batch"][str(best_batch)]
    row = analyze_rate(folder, work / f"{folder.name}.dat", extractor, batch=0)
    after = throughput(best, (best_batch,), budget_s)["by_batch"][str(best_batch)]
    model_ips = (before + after) / 2.0
    row["model_ips_adjacent"] = round(model_ips, 2)
    row["decode_ips"] = decode_rate(paths, extractor)
    row["ratio"] = round(row["ips"] / model_ips, 3)
    row["ratio_total"] = round(row["ips_total"] / model_ips, 3)
    # "decoding must not cost more than the model": decode time per image / model time.
    row["decode_vs_model"] = round(model_ips / row["decode_ips"], 3)
    return row
