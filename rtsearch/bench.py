"""`rtsearch bench`: measure every stage in one run, side by side, as ratios to the model.

Stages: (1) model-only throughput per model file, (2) analyze on generated 640x480 and
4000x3000 JPEG folders, (3) the live query loop per source, (4) UI frame time (from the
viewer), (5) kNN per method at 145k and 1M x 100, (6) `.dat` load time and peak RSS at 145k.
``--quick`` shrinks every sample (not the stage list) so a test can run it in seconds;
``--stages`` picks stages (with those they need: 2 needs 1, 3 and 4 need 2's index).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rtsearch.errors import RtsearchError
from rtsearch.models import DEFAULT_MODEL


@dataclass(frozen=True)
class Plan:
    """Sample sizes: the full run must stay under 10 minutes on 2 shared cores."""

    batches: tuple[int, ...]
    gpu_batches: tuple[int, ...]
    model_budget_s: float
    small_jpegs: int
    large_jpegs: int
    gpu_jpegs: tuple[int, int]  # (small, large) on an accelerator: seconds, not milliseconds
    live_seconds: float
    ui_frames: int
    knn_sizes: tuple[int, int]
    knn_budget_s: float
    tree_budget_s: float
    store_entries: int


FULL = Plan(
    batches=(1, 4, 8, 16, 32),
    gpu_batches=(1, 8, 32, 64, 128, 256),
    model_budget_s=1.5,
    small_jpegs=200,
    large_jpegs=40,
    gpu_jpegs=(2000, 200),
    live_seconds=5.0,
    ui_frames=1000,  # p99 of 300 frames is the 3rd-worst frame: runs differed by 2-3 ms
    knn_sizes=(145_000, 1_000_000),
    knn_budget_s=1.5,
    tree_budget_s=2.0,
    store_entries=145_000,
)
QUICK = Plan(
    batches=(1, 8),
    gpu_batches=(1, 8),
    model_budget_s=0.2,
    small_jpegs=24,
    large_jpegs=3,
    gpu_jpegs=(24, 3),
    live_seconds=0.5,
    ui_frames=30,
    knn_sizes=(14_500, 100_000),
    knn_budget_s=0.2,
    tree_budget_s=0.2,
    store_entries=14_500,
)
STAGES = (1, 2, 3, 4, 5, 6)
NEEDS = {2: 1, 3: 2, 4: 2}  # a stage's input comes from this one


# the JSON keys other tools read (issue 4's contract)
CONTRACT_KEYS = (
    "model_b1_ips",
    "model_best_ips",
    "analyze_small_ratio",
    "analyze_large_ratio",
    "live_ratio",
    "latency_ms",
    "ui_p99_ms",
    "knn_145k_ms",
    "knn_1m_ms",
    "load_145k_s",
    "rss_145k_mb",
    "model",
    "provider",
)


def stage_list(text: str) -> tuple[int, ...]:
    """'2,5' -> (1, 2, 5): the stages asked for and those they need, in order."""
    try:
        wanted = {int(part) for part in text.split(",") if part.strip()}
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of stage numbers: {text!r}") from None
    if not wanted or not wanted <= set(STAGES):
        raise argparse.ArgumentTypeError(f"stages are 1-6, comma separated: {text!r}")
    for stage in sorted(wanted, reverse=True):
        while stage in NEEDS:
            stage = NEEDS[stage]
            wanted.add(stage)
    return tuple(sorted(wanted))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        help=f"model for the analyze and live stages (default: {DEFAULT_MODEL}); "
        "stage 1 measures every model file present",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--quick", action="store_true", help="tiny samples (seconds; figures are rough)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="also write the JSON object to this file"
    )
    parser.add_argument(
        "--stages",
        type=stage_list,
        default=STAGES,
        help="comma-separated stage numbers (default: all six); 2 brings 1, 3 and 4 bring 2",
    )


def run(args: argparse.Namespace) -> int:
    plan = QUICK if args.quick else FULL
    log = _logger(args.json)
    if args.out:
        from rtsearch.atomic import check_writable

        check_writable(args.out, "results")  # before minutes of measuring, not after
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rtsearch-bench-") as tmp:
        result = measure(plan, args.model, Path(tmp), log, args.stages)
    for key in CONTRACT_KEYS:  # every key is there; a stage not run leaves it null
        result.setdefault(key, None)
    result["seconds"] = round(time.monotonic() - start, 1)
    result["quick"] = bool(args.quick)
    from rtsearch.perf.machine import load_avg

    result["machine"]["load_avg_end"] = load_avg()
    text = json.dumps(result, indent=None if args.json else 2)
    if args.out:
        from rtsearch.atomic import atomic_path

        with atomic_path(args.out) as tmp_out:
            tmp_out.write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(text)
    else:
        print_summary(result)
    return 0


def _logger(quiet: bool):
    import sys

    def log(message: str) -> None:
        # Progress goes to stderr so `--json` keeps stdout one clean object.
        print(f"bench: {message}", file=sys.stderr, flush=True)

    return log if not quiet else (lambda message: None)


def measure(
    plan: Plan, model: str | None, work: Path, log, stages: tuple[int, ...] = STAGES
) -> dict:
    from rtsearch.perf import machine

    result: dict = {"machine": machine.describe(), "stages": list(stages)}
    if 1 in stages:
        stage_model = _bench_models(plan, model, result, log)
    if 2 in stages:
        _bench_pipeline(plan, stage_model, work, result, log, stages)
    if 5 in stages:
        _bench_knn(plan, result, log)
    if 6 in stages:
        _bench_store(plan, work, result, log)
    return result


def _bench_models(plan: Plan, model: str | None, result: dict, log) -> Path:
    from rtsearch.errors import warn
    from rtsearch.models import available_models, resolve_model
    from rtsearch.perf.images import picture
    from rtsearch.perf.model import bench_models

    chosen = resolve_model(model)
    paths = [chosen]  # first: its problem is the command's error
    for path in available_models():
        if path.resolve() == chosen.resolve():
            continue
        if path.name == chosen.name:  # figures are by file name: the one asked for wins
            warn(f"{path}: not measured (--model {chosen} has the same file name)")
            continue
        paths.append(path)
    log(f"stage 1: model throughput ({', '.join(p.name for p in paths)})")
    images = [picture(480, 640, seed=s) for s in range(16)]
    models = bench_models(
        paths,
        images,
        plan.batches,
        plan.model_budget_s,
        plan.gpu_batches,
        # one broken file beside the others fails no benchmark
        skip=lambda exc: warn(f"not measured: {exc}"),
    )
    result["models"] = models
    row = models[chosen.name]
    result["model"] = chosen.name
    result["provider"] = row["provider"]
    result["model_b1_ips"] = row["b1_ips"]
    result["model_best_ips"] = row["best_ips"]
    result["model_best_batch"] = row["best_batch"]
    result["int8"] = {
        name: {
            k: r[k]
            for k in (
                "fp32_file",
                "cosine_mean",
                "cosine_min",
                "speedup_b1",
                "speedup_best",
                "default_eligible",
            )
        }
        for name, r in models.items()
        if "fp32_file" in r
    }
    return chosen


def _bench_pipeline(
    plan: Plan, model_path: Path, work: Path, result: dict, log, stages: tuple[int, ...]
) -> None:
    from rtsearch.extractor import Extractor
    from rtsearch.perf.analyze import bench_folder
    from rtsearch.perf.images import write_jpegs, write_video
    from rtsearch.perf.live import bench_live
    from rtsearch.perf.ui import bench_ui
    from rtsearch.session import SearchSession

    # analyze runs as `rtsearch analyze` does (one stream per core, its own batch size) and is
    # compared with the model alone as stage 1's best figure ran it; live: one run at a time
    extractor = Extractor(model_path, streams=0)
    best_streams = result["models"][model_path.name]["best_streams"]
    best = extractor if extractor.streams == best_streams else Extractor(model_path)
    best_batch = result["model_best_batch"]
    small, large = work / "small", work / "large"
    n_small, n_large = (plan.small_jpegs, plan.large_jpegs) if extractor.on_cpu else plan.gpu_jpegs
    log(f"stage 2: analyze ({n_small} x 640x480, {n_large} x 4000x3000)")
    write_jpegs(small, n_small, (480, 640))
    write_jpegs(large, n_large, (3000, 4000), seed=10_000)
    result["analyze"] = {
        "small": bench_folder(small, work, extractor, best, best_batch, plan.model_budget_s),
        "large": bench_folder(large, work, extractor, best, best_batch, plan.model_budget_s),
    }
    result["analyze_small_ratio"] = result["analyze"]["small"]["ratio"]
    result["analyze_large_ratio"] = result["analyze"]["large"]["ratio"]
    index = work / "small.dat"
    video = write_video(work / "clip.avi", 120) if {3, 4} & set(stages) else None
    if 3 in stages:
        log("stage 3: live query loop (screen, video)")
        session = SearchSession(_load(index), Extractor(model_path), small, source=index)
        live = bench_live(session, video, plan.live_seconds)
        result["live"] = live
        result.update(_live_summary(live))
    if 4 in stages:
        log("stage 4: UI frame time")
        result["ui"] = bench_ui(index, model_path, video, work, plan.ui_frames, timeout_s=120)
        result["ui_p50_ms"] = result["ui"]["p50_ms"]
        result["ui_p99_ms"] = result["ui"]["p99_ms"]
        result["ui_rss_mb"] = result["ui"].get("peak_rss_mb")


def _live_summary(live: dict) -> dict:
    """The contract's live figures: the screen source (the app's main use; video if the
    screen failed) and the faster of the two loop shapes, the one a viewer should run."""
    main = live["screen"] if "qps" in live.get("screen", {}) else live.get("video", {})
    shapes = {"sequential": main, "overlapped": main.get("pipelined", {})}
    shape = max(shapes, key=lambda k: shapes[k].get("qps") or 0.0)
    return {
        "live_loop": shape,
        "live_ratio": shapes[shape].get("ratio"),
        "live_qps": shapes[shape].get("qps"),
        "latency_ms": shapes[shape].get("latency_p50_ms"),
    }


def _load(index: Path):
    from rtsearch import bigstore

    return bigstore.load(index)


def _bench_knn(plan: Plan, result: dict, log) -> None:
    from rtsearch.perf.knn import bench_size

    small_n, big_n = plan.knn_sizes
    log(f"stage 5: kNN at {small_n} and {big_n} x 100")
    small = bench_size(small_n, plan.knn_budget_s, True, plan.tree_budget_s)
    big = bench_size(big_n, plan.knn_budget_s, True, plan.tree_budget_s)
    result["knn"] = {"small": small, "large": big}
    result["knn_145k_ms"] = small["chosen_ms"]
    result["knn_1m_ms"] = big["chosen_ms"]
    result["knn_145k_exact_ms"] = small["brute_ms"]
    result["knn_1m_exact_ms"] = big["brute_ms"]
    result["knn_145k_method"] = small["auto_method"]
    result["knn_1m_method"] = big["auto_method"]
    # the rows measured: the keys keep their names under --quick, which measures fewer
    result["knn_145k_rows"], result["knn_1m_rows"] = small_n, big_n


def _bench_store(plan: Plan, work: Path, result: dict, log) -> None:
    from rtsearch.perf.storeload import bench_store

    log(f"stage 6: .dat load ({plan.store_entries} entries)")
    try:
        figures = bench_store(work, plan.store_entries)
    except OSError as exc:
        raise RtsearchError(f"{work}: cannot write the benchmark index ({exc.strerror})") from None
    result["store"] = figures
    result["load_145k_s"] = figures["no_features"]["load_s"]
    result["rss_145k_mb"] = figures["no_features"]["rss_mb"]
    result["load_145k_features_s"] = figures["with_features"]["load_s"]
    result["rss_145k_features_mb"] = figures["with_features"]["rss_mb"]
    result["load_145k_rows"] = plan.store_entries  # (fewer under --quick)


def _fmt(value: object, unit: str = "") -> str:
    return "n/a" if value is None else f"{value}{unit}"


def print_summary(r: dict) -> None:
    m = r["machine"]
    print(
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, "
        f"load {m['load_avg_start']} -> {m['load_avg_end']}; provider {r.get('provider', 'n/a')}"
    )
    if "models" in r:
        _print_models(r["models"])
    for size, row in r.get("analyze", {}).items():
        print(
            f"2. analyze {size}: {row['ips']} images/s = {row['ratio']} x model best; "
            f"decode alone {row['decode_ips']} images/s ({row['vs_decode']} x)"
            + (
                f"; after the first batch ({row['first_batch_s']} s) {row['ips_steady']}"
                if "ips_steady" in row
                else ""
            )
        )
    for source, row in r.get("live", {}).items():
        if "error" in row:
            print(f"3. live {source}: {row['error']}")
            continue
        stages = ", ".join(f"{k} {v}" for k, v in row["stages_ms"].items())
        pipe = row["pipelined"]
        print(
            f"3. live {source}: sequential {row['qps']} queries/s = {row['ratio']} x batch-1 "
            f"rate, latency p50 {row['latency_p50_ms']} ms; stages ms: {stages}\n"
            f"   overlapped capture: {pipe['qps']} queries/s = {pipe['ratio']} x batch-1 rate, "
            f"latency p50/p99 {pipe['latency_p50_ms']}/{pipe['latency_p99_ms']} ms "
            f"= {pipe['latency_vs_inference']} x one inference"
        )
    if "ui" in r:
        ui = r["ui"]
        print(
            f"4. UI frame ms p50/p99: {_fmt(ui['p50_ms'])} / {_fmt(ui['p99_ms'])}"
            + (f" ({ui['note']})" if ui.get("note") else "")
        )
    for row in r.get("knn", {}).values():
        ann = f", ann {_fmt(row.get('ann_ms'))} (recall@20 {row.get('ann_recall_at_20')})"
        print(
            f"5. kNN {row['rows']} x {row['dims']}: brute {row['brute_ms']} ms, "
            f"kdtree {row['kdtree_ms']} ms{ann}; auto picks {row['auto_method']}"
        )
    if "store" in r:
        s = r["store"]
        for tag in ("no_features", "with_features"):
            print(
                f"6. .dat {s['entries']} entries {tag}: load {s[tag]['load_s']} s, "
                f"peak RSS {s[tag]['rss_mb']} MiB ({s[tag]['file_mb']} MiB file)"
            )
    print(f"total {r['seconds']} s" + (" (quick: figures rough)" if r["quick"] else ""))


def _print_models(models: dict) -> None:
    print("1. model-only images/s (batch 1 / best batch):")
    for name, row in models.items():
        extra = ""
        if "cosine_mean" in row:
            extra = (
                f"  cosine vs {row['fp32_file']} {row['cosine_mean']} (min "
                f"{row['cosine_min']}), {row['speedup_best']}x faster"
            )
        how = f"batch {row['best_batch']}, {row['provider']}"
        if row.get("best_streams", 1) > 1:
            how += f", {row['best_streams']} single-threaded runs at once"
        print(f"   {name}: {row['b1_ips']} / {row['best_ips']} ({how}){extra}")
        if "cpu_cosine_min" in row:
            unbound = (
                f"; without IO binding {row['best_ips_unbound']} (binding "
                f"{row['binding_speedup_best']}x)"
                if "best_ips_unbound" in row
                else ""
            )
            print(
                f"      cosine vs CPU provider {row['cpu_cosine_mean']} (min "
                f"{row['cpu_cosine_min']}){unbound}"
            )
