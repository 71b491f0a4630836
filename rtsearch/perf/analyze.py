"""Stage 2: `analyze` throughput on generated JPEG folders, against the model alone.

The decode-only rate (the same thread pool analyze uses, no model) shows which side limits
analyze on large photos: decoding or inference.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rtsearch.analyze import Progress, Settings, analyze
from rtsearch.decode import load_rgb
from rtsearch.extractor import Extractor, cores, fit_to_input
from rtsearch.perf.model import throughput


def analyze_rate(folder: Path, out: Path, extractor: Extractor, batch: int = 0) -> dict:
    """Images/s of a full analyze run (``ips_total``) and of its extraction phase (``ips``:
    start to the last batch, without the once-per-run projection fit and save, which do not
    grow with the number of images). ``ips_steady``: from the first batch's result to the
    last, without the first batch's once-per-run costs too (on CUDA, cuDNN's algorithm
    search: ``first_batch_s``). The decode pool keeps working through the first batch, up to
    its lookahead (3 batches on CUDA), so on a folder of only a few batches ``ips_steady``
    overstates the rate; it means something on folders many times the lookahead."""
    marks: list[tuple[float, int]] = []

    def progress(p: Progress) -> None:
        marks.append((time.perf_counter(), p.done))

    start = time.perf_counter()
    report = analyze(folder, out, extractor, Settings(batch=batch), progress=progress)
    count = report.analysed
    extract_s = max(marks[-1][0] - start, 1e-9) if marks else report.seconds
    row = {
        "images": count,
        "seconds": round(report.seconds, 3),
        "ips": round(count / extract_s, 2),
        "ips_total": round(count / report.seconds, 2) if report.seconds else 0.0,
        "finish_s": round(report.seconds - extract_s, 3),
        "skipped": len(report.skipped),
    }
    if len(marks) >= 3:
        (t0, n0), (t1, n1) = marks[0], marks[-1]
        row["first_batch_s"] = round(t0 - start, 3)
        row["ips_steady"] = round((n1 - n0) / max(t1 - t0, 1e-9), 2)
    return row


def decode_rate(paths: list[Path], extractor: Extractor) -> float:
    """Images/s decoding to the model's input size on a pool sized to the cores."""
    info = extractor.info

    def one(p: Path) -> None:
        fit_to_input(load_rgb(p, min_size=info.input_size), info)

    start = time.perf_counter()
    with ThreadPoolExecutor(cores()) as pool:
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
    row["vs_decode"] = round(row["ips"] / row["decode_ips"], 3)  # the bound where decode limits
    # "decoding must not cost more than the model": decode time per image / model time.
    row["decode_vs_model"] = round(model_ips / row["decode_ips"], 3)
    return row
