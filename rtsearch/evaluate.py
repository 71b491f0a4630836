"""`rtsearch eval DIR`: how well each projection and dimensionality retrieves, on your images.

DIR's first-level sub-folders are the labels (images directly in DIR are indexed but never
queried for class metrics). Features are extracted once; every (projection, dims) pair is
then fitted on them, as `analyze` would, and measured side by side:

- p_at_10, map_at_100: each labelled image queries all the others (leave-one-out);
- copy_recall_at_1/10: generated copies (rtsearch.copies) of a sample query the originals;
- agreement_at_20: overlap of the top 20 with the top 20 of exact search on the full,
  L2-normalised features (the ``full`` row, so ``none`` with L2 scores 1.0);
- query_ms: projecting one vector and searching it with the index's own Searcher.

Optional variants, measured as extra rows: re-ranking the top candidates with the full
features (``--rerank K``) and average query expansion (``--qe N``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rtsearch import copies, terminal
from rtsearch import projection as proj
from rtsearch.analyze import Progress, Report, Settings
from rtsearch.decode import load_rgb
from rtsearch.errors import RtsearchError, count, require_folder
from rtsearch.extraction import batch_for, extract
from rtsearch.extractor import Extractor
from rtsearch.rerank import rerank as rerank_rows
from rtsearch.scan import raw_files, scan
from rtsearch.search import Searcher

Vectors = npt.NDArray[np.float32]
Ranked = npt.NDArray[np.int64]  # (queries, k) row numbers, nearest first
PROJECTION_ALIASES = {"rp": "random", "random": "random", "pca": "pca"}
PROJECTION_ALIASES |= {"pca-whiten": "pca-whiten", "none": "none"}
METRIC_KEYS = ("p_at_10", "map_at_100", "copy_recall_at_1", "copy_recall_at_10")
METRIC_KEYS += ("agreement_at_20", "query_ms")
DEPTH = 100  # ranks kept per query: mAP@100 needs them all
TIMED_QUERIES = 200
# Rows whose features are this close (relative) are one picture: duplicate files
SAME_IMAGE = 1e-4


@dataclass(frozen=True)
class Config:
    projection: str  # as in rtsearch.projection.KINDS
    dims: int
    l2: bool = True
    rerank: int = 0  # re-rank this many candidates with the full features (0: off)
    qe: int = 0  # average query expansion over this many neighbours (0: off)


@dataclass
class Data:
    """Everything measured once: features of the folder and of the generated copies."""

    features: Vectors  # (N, D) as extracted
    labels: npt.NDArray[np.int64]  # (N,) label number, -1 for unlabelled
    label_names: list[str]
    copy_features: Vectors  # (C, D)
    copy_of: npt.NDArray[np.int64]  # (C,) row each copy was made from
    skipped: list[str] = field(default_factory=list)  # one line each: file, why


# ---------------------------------------------------------------- command line


def add_arguments(p: argparse.ArgumentParser) -> None:
    from rtsearch.argtypes import non_negative_int, seed, thread_count

    p.add_argument(
        "directory",
        type=Path,
        help="folder whose first-level sub-folders are labels (images directly in it are "
        "searched among, never queried)",
    )
    p.add_argument("--model", default="efficientnet-lite0", help="model name or .onnx path")
    p.add_argument("--dims", type=int_list, default="16,32,64,100,256", help="dims to try")
    p.add_argument(
        "--projection",
        type=kind_list,
        default="random,pca,pca-whiten,none",
        help="projections to try: random (or rp), pca, pca-whiten, none",
    )
    p.add_argument(
        "--l2", choices=("on", "off", "both"), default="on", help="L2-normalise features first"
    )
    p.add_argument(
        "--copies",
        type=non_negative_int,
        default=200,
        help="images to make a copy of (a picked file that cannot be read makes none)",
    )
    p.add_argument(
        "--rerank", type=non_negative_int, default=0, help="also measure re-ranking top K (0: no)"
    )
    p.add_argument(
        "--qe", type=non_negative_int, default=0, help="also measure query expansion over N (0: no)"
    )
    p.add_argument("--seed", type=seed, default=0, help="seed for copies and random projections")
    p.add_argument(
        "--threads", type=thread_count, default=0, help="inference threads (0: all cores)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 16,32,64, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    wrong = [v for v in values if not proj.MIN_DIMS <= v <= proj.MAX_DIMS]
    if wrong:
        above = max(wrong) > proj.MAX_DIMS
        every = " (the none projection measures every feature)" if above else ""
        raise argparse.ArgumentTypeError(
            f"{','.join(map(str, wrong))}: dims must be between {proj.MIN_DIMS} and "
            f"{proj.MAX_DIMS}{every}"
        )
    return list(dict.fromkeys(values))  # a value given twice is measured once


def kind_list(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    bad = [n for n in names if n not in PROJECTION_ALIASES]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown projection {', '.join(bad) if bad else repr(text)} "
            "(choose from random, pca, pca-whiten, none; rp is random)"
        )
    return list(dict.fromkeys(PROJECTION_ALIASES[n] for n in names))  # rp,random: once


def run(args: argparse.Namespace) -> int:
    from rtsearch.cli import with_progress
    from rtsearch.models import resolve_model

    extractor = Extractor(resolve_model(args.model), threads=args.threads, streams=0)
    # (what it is doing on stderr: `eval DIR > table.md` kept it in the table's file)
    log = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr, flush=True))
    l2s = {"on": [True], "off": [False], "both": [True, False]}[args.l2]
    feature_dims = extractor.info.dims
    configs = plan(args.projection, args.dims, l2s, feature_dims, args.rerank, args.qe)
    too_many = [d for d in args.dims if d > feature_dims]
    if too_many and set(args.projection) != {"none"}:
        if not configs:
            raise RtsearchError(
                f"--dims {','.join(map(str, too_many))}: larger than the model's "
                f"{feature_dims} features; pass --dims {feature_dims} or fewer"
            )
        print(
            f"eval: dims {','.join(map(str, too_many))} left out: the model gives "
            f"{feature_dims}-d features",
            file=sys.stderr,
        )
    # (the progress bar on stderr, as analyze's: 20k images took minutes without a word)
    data = with_progress(
        lambda progress, warn: load_data(
            args.directory, extractor, n_copies=args.copies, seed=args.seed, log=log,
            warn=warn, progress=progress,
        )
    )  # fmt: skip
    line = ScoringLine()
    try:
        result = evaluate(data, configs, seed=args.seed, scoring=line)
    finally:
        line.close()
    info = extractor.info  # which file measured it (fp32 and int8 runs told apart)
    result |= {"model": info.name, "model_variant": info.variant, "model_identity": info.identity}
    if args.json:
        print(json.dumps(result))
    else:
        print(format_table(result, args.directory, info.label, data))
    return 0


class ScoringLine:
    """What the scoring is at, on stderr, once it has taken a few seconds (minutes at 20k
    images, silent before): a self-overwriting line on a terminal, a line every few
    seconds otherwise."""

    AFTER_S = 2.0

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.last = 0.0
        self.tty = sys.stderr.isatty()
        self.shown = False

    def __call__(self, i: int, n: int, cfg: Config) -> None:
        now = time.monotonic()
        if now - self.began < self.AFTER_S or (not self.tty and now - self.last < 5.0):
            return
        if self.tty and not terminal.in_foreground():  # (sent on with `bg`)
            return
        self.last = now
        what = "exact search on the full features" if i == 0 else describe(cfg)
        text = f"eval: scoring {i + 1} of {n}: {what}"
        sys.stderr.write(terminal.redraw(text) if self.tty else f"{text}\n")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown and self.tty:
            sys.stderr.write("\n")


def describe(cfg: Config) -> str:
    """A setting in words: ``pca 100 dims, re-ranked by 50``."""
    words = f"{cfg.projection} {cfg.dims} dims" + ("" if cfg.l2 else ", no L2")
    if cfg.rerank:
        words += f", re-ranked by {cfg.rerank}"
    if cfg.qe:
        words += f", query expansion {cfg.qe}"
    return words


# ---------------------------------------------------------------- data


def load_data(
    folder: Path,
    extractor: Extractor,
    *,
    n_copies: int,
    seed: int,
    log=print,
    warn=None,
    progress: Callable[[Progress], None] | None = None,
) -> Data:
    """Decode and extract in batches (a few thousand images never sit in memory at once);
    the images picked for copying are decoded again after, and copied (``_copies``). Files
    that cannot be read are skipped, said with ``warn`` and listed in ``Data.skipped``;
    ``progress`` hears of each batch, as analyze's does."""
    require_folder(folder)
    warn = warn or (lambda m: print(f"warning: {m}", file=sys.stderr))
    skipped: list[str] = []

    def skip(message: str) -> None:
        skipped.append(message)
        warn(message)

    found = scan(Path(folder), warn=warn)
    for where, why in found.skipped:  # named as the scan's warning names them
        skipped.append(f"{Path(folder) if where == '.' else Path(folder) / where}: {why}")
    if found.raw:  # (passed over without a word: a label of them was "too few images")
        warn(f"{folder}: {raw_files(found.raw)} passed over: rtsearch does not read RAW files")
    paths = found.paths
    names = sorted({p.split("/")[0] for p in paths if "/" in p})
    if len(names) < 2:
        raise RtsearchError(f"{folder}: needs at least 2 sub-folders of images (the labels)")
    # too few images per label already by the names: say so before minutes of extraction
    by_name = {n: i for i, n in enumerate(names)}
    _check_labels(
        folder, names, [by_name[p.split("/")[0]] for p in paths if "/" in p], len(skipped)
    )
    log(f"{folder}: {len(paths)} images, {len(names)} labels; extracting features")
    rng = np.random.default_rng(seed)
    picked = set(rng.choice(len(paths), size=min(n_copies, len(paths)), replace=False).tolist())
    # analyze's own loop: files decoded in each inference stream or on a pool, batches run
    # one per core (decoded a batch at a time on this thread, it ran at half the rate)
    report = Report()
    kept: list[str] = []
    feats = []
    # counted as analyze counts: the files the scan skipped among them
    unread, began = len(found.skipped), time.monotonic()
    batches = extract(Path(folder), paths, extractor, 0, report, skip, None)
    for done, feat, _, _ in batches:
        kept.extend(done)
        feats.append(feat)
        if progress:
            looked = len(kept) + len(report.skipped) + unread
            progress(Progress.since(began, looked, len(paths) + unread, len(skipped), len(kept)))
    made, copy_of = _copies(Path(folder), kept, {paths[i] for i in picked}, extractor, rng, warn)
    lookup = {n: i for i, n in enumerate(names)}
    labels = [lookup[p.split("/")[0]] if "/" in p else -1 for p in kept]
    _check_labels(folder, names, labels, len(skipped))
    # a label none of whose images could be read is no label (it was counted as one)
    present = [n for n in names if lookup[n] in labels]
    renumber = {lookup[n]: i for i, n in enumerate(present)}
    labels = [renumber.get(x, -1) for x in labels]
    return Data(
        features=_stack(feats, extractor.info.dims),
        labels=np.array(labels, dtype=np.int64),
        label_names=present,
        copy_features=made,
        copy_of=np.array(copy_of, dtype=np.int64),
        skipped=skipped,
    )


def _check_labels(folder: Path, names: list[str], labels: list[int], skipped: int) -> None:
    """Retrieval by label needs two labels, each with an image to find besides the query."""
    sizes = np.bincount([x for x in labels if x >= 0], minlength=len(names))
    usable = [n for n, size in zip(names, sizes, strict=True) if size >= 2]
    if len(usable) < 2:
        # each label said with what it has ("1 of 3 (c has)" left the others to guess)
        short = [f"{n} ({size})" for n, size in zip(names, sizes, strict=True) if size < 2]
        fewer = ", ".join(short[:5]) + (f" and {len(short) - 5} more" if len(short) > 5 else "")
        having = f" ({', '.join(usable)})" if usable else ""
        unread = f"; {count(skipped, 'file')} could not be read" if skipped else ""
        raise RtsearchError(
            f"{folder}: needs at least 2 labels (sub-folders) with 2 or more readable images "
            f"each; {len(usable)} of {len(names)} {'has' if len(usable) == 1 else 'have'} "
            f"them{having}, too few in {fewer}{unread}"
        )


def _stack(parts: list, dims: int) -> Vectors:
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, dims), np.float32)


def _copies(
    folder: Path,
    kept: list[str],
    picked: set[str],
    extractor: Extractor,
    rng: np.random.Generator,
    warn: Callable[[str], None],
) -> tuple[Vectors, list[int]]:
    """Features of a generated copy of each picked picture, made from the picture as
    decoded (not as fitted to the model's input) with changes drawn in row order, so a seed
    makes the same copies. Each inference stream decodes, copies and runs its own batches
    (one after the other on this thread, the copies took 2.6 s of a 6.7 s run of 480
    pictures). One that cannot be read now (changed since) makes none."""
    rows = [row for row, rel in enumerate(kept) if rel in picked]
    changes = [copies.CopyParams.draw(rng) for _ in rows]
    size = extractor.info.input_size

    unread: list[str] = []  # said on this thread, after (not from the pool's, mid-line)

    def run(chunk: list[int]) -> tuple[Vectors | None, list[int]]:
        made, made_of = [], []
        for i in chunk:
            try:
                image = load_rgb(folder / kept[rows[i]], min_size=size)
            except RtsearchError as exc:
                unread.append(f"{exc} (changed since it was read: no copy made of it)")
                continue
            made.append(copies.apply(image, changes[i]))
            made_of.append(rows[i])
        return (extractor(made) if made else None), made_of

    n, step = len(rows), batch_for(extractor)  # a batch per run, as analyze's
    chunks = [list(range(i, min(i + step, n))) for i in range(0, n, step)]
    parts, copy_of = [], []
    with ThreadPoolExecutor(max(1, extractor.streams)) as pool:
        for features, made_of in pool.map(run, chunks):
            if features is not None:
                parts.append(features)
                copy_of.extend(made_of)
    for message in unread:
        warn(message)
    return _stack(parts, extractor.info.dims), copy_of


def plan(
    kinds: list[str], dims: list[int], l2s: list[bool], feature_dims: int, rerank: int, qe: int
) -> list[Config]:
    """Every requested combination; dims the features cannot give are left out."""
    configs = []
    for l2 in l2s:
        for kind in kinds:
            wanted = [feature_dims] if kind == "none" else [d for d in dims if d <= feature_dims]
            for d in wanted:  # ("none" keeps every feature, beyond --dims's 1500 too)
                configs.append(
                    Config(kind, d if kind == "none" else proj.check_dims(d, feature_dims), l2)
                )
                if rerank:
                    configs.append(Config(kind, d, l2, rerank=rerank))
                if qe:
                    configs.append(Config(kind, d, l2, qe=qe))
    return list(dict.fromkeys(configs))  # "none" gives one row whatever the dims


# ---------------------------------------------------------------- evaluation


def evaluate(
    data: Data,
    configs: list[Config],
    *,
    seed: int = 0,
    scoring: Callable[[int, int, Config], None] | None = None,
) -> dict:
    """The `--json` object: rows, default (analyze's settings), full (exact, unreduced).
    ``scoring(i, n, config)`` hears of each of the n settings before it is measured."""
    d = data.features.shape[1]
    full_cfg = Config("none", d, True)
    s = Settings()
    # null when analyze's default dims exceed the features (analyze refuses that model)
    default_cfg = Config(s.projection, s.dims, s.l2_normalize) if s.dims <= d else None
    todo = list(dict.fromkeys([full_cfg, *configs, *([default_cfg] if default_cfg else [])]))
    if scoring:
        scoring(0, len(todo), full_cfg)
    full_space = _spaces(data, full_cfg, seed)[0]
    reference = rank(full_space, full_space, DEPTH, exclude_self=True)
    measure = _Measurer(data, reference, seed)
    for i, cfg in enumerate(todo):
        if scoring:
            scoring(i, len(todo), cfg)
        measure(cfg)
    rows = [measure(c) for c in configs]
    default = measure(default_cfg) if default_cfg else None
    return {
        "rows": rows,
        "default": default,
        "full": measure(full_cfg),
        "images": len(data.labels),
        "queried": int(queryable(data.labels).sum()),  # rows P@10 and mAP are averaged over
        "p_at_10_best": best_precision_at(data.labels, 10),  # below 1 for labels of < 11
        # the dimensions a PCA of these images spans: a PCA row asking for more carries
        # nothing in the rest (its figures are those of this many)
        "pca_span": max(len(data.labels) - 1, 0),
        # true when agree@20 is 1.000 for any ranking (21 images or fewer)
        "agree_20_trivial": len(data.labels) <= 21,
        "labels": data.label_names,
        "copies": len(data.copy_of),
        "skipped": len(data.skipped),
        "skipped_files": data.skipped,  # one line each, naming the file and the problem
    }


class _Measurer:
    def __init__(self, data: Data, reference: Ranked, seed: int) -> None:
        self.data, self.reference, self.seed = data, reference, seed
        self.full = proj.l2_normalize(data.features)
        self.truth = twins(data.features, data.copy_of)
        self.cache: dict[Config, dict] = {}

    def __call__(self, cfg: Config) -> dict:
        if cfg not in self.cache:
            self.cache[cfg] = self._measure(cfg)
        return self.cache[cfg]

    def _measure(self, cfg: Config) -> dict:
        base, copies_q, project = _spaces(self.data, cfg, self.seed)
        ranker = self._ranker(cfg, base)
        loo = ranker(base, True)
        labels = self.data.labels
        copy_ranked = ranker(copies_q, False)
        row = {"projection": cfg.projection, "dims": cfg.dims, "l2": cfg.l2}
        row |= {"rerank": cfg.rerank, "qe": cfg.qe}
        row["p_at_10"] = precision_at(loo, labels, 10)
        row["map_at_100"] = map_at(loo, labels, DEPTH)
        row["copy_recall_at_1"] = recall_at(copy_ranked, self.truth, 1)
        row["copy_recall_at_10"] = recall_at(copy_ranked, self.truth, 10)
        row["agreement_at_20"] = agreement_at(loo, self.reference, 20)
        row["query_ms"] = self._time(cfg, base, project)
        return row

    def _ranker(self, cfg: Config, base: Vectors) -> Callable[[Vectors, bool], Ranked]:
        def ranker(queries: Vectors, exclude_self: bool) -> Ranked:
            if cfg.qe:
                queries = expand(base, queries, rank(base, queries, cfg.qe, exclude_self))
            ranked = rank(base, queries, DEPTH, exclude_self)
            if cfg.rerank:
                qfull = self.full if exclude_self else proj.l2_normalize(self.data.copy_features)
                ranked = rerank(self.full, qfull, ranked, cfg.rerank)
            return ranked

        return ranker

    def _time(self, cfg: Config, base: Vectors, project: proj.Projection) -> float:
        """Median ms to project one raw feature vector and find its 10 nearest rows."""
        searcher = Searcher(base)
        raw = self.data.features[: min(TIMED_QUERIES, len(base))]
        times = []
        for x in raw:
            t0 = time.perf_counter()
            q = project(x)
            hits = searcher.query(q, max(10, cfg.rerank, cfg.qe))
            if cfg.qe:
                q = (q + base[hits.indices[: cfg.qe]].sum(axis=0)) / (cfg.qe + 1)
                hits = searcher.query(q, 10)
            if cfg.rerank:
                rerank_rows(self.full, proj.l2_normalize(x), hits.indices[: cfg.rerank], l2=False)
            times.append(time.perf_counter() - t0)
        return float(np.median(times) * 1000) if times else 0.0


def _spaces(data: Data, cfg: Config, seed: int) -> tuple[Vectors, Vectors, proj.Projection]:
    """The index rows and copy queries in the projected space of ``cfg``."""
    p = proj.fit(data.features, cfg.dims, cfg.projection, l2=cfg.l2, seed=seed)
    return p(data.features), p(data.copy_features), p


def rank(base: Vectors, queries: Vectors, k: int, exclude_self: bool) -> Ranked:
    """Exact Euclidean top-k of each query among ``base`` rows (query i is row i when
    ``exclude_self``, and never ranks itself)."""
    k = min(k, len(base) - exclude_self)
    sq = np.einsum("ij,ij->i", base, base)
    out = np.empty((len(queries), k), np.int64)
    for start in range(0, len(queries), 512):
        q = queries[start : start + 512]
        d2 = sq[None, :] - 2.0 * (q @ base.T)
        if exclude_self:
            d2[np.arange(len(q)), np.arange(start, start + len(q))] = np.inf
        part = np.argpartition(d2, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(d2, part, axis=1), axis=1, kind="stable")
        out[start : start + len(q)] = np.take_along_axis(part, order, axis=1)
    return out


def rerank(full: Vectors, queries_full: Vectors, ranked: Ranked, k: int) -> Ranked:
    """Re-order each query's first ``k`` candidates by distance in the full feature space."""
    out = ranked.copy()
    k = min(k, ranked.shape[1])
    out[:, :k] = rerank_rows(full, queries_full, ranked[:, :k], l2=False)[0]
    return out


def expand(base: Vectors, queries: Vectors, neighbours: Ranked) -> Vectors:
    """Average query expansion: the query averaged with its nearest rows."""
    return ((queries + base[neighbours].sum(axis=1)) / (neighbours.shape[1] + 1)).astype(np.float32)


# ---------------------------------------------------------------- metrics


def precision_at(ranked: Ranked, labels: npt.NDArray[np.int64], k: int) -> float:
    """Share of the first k results with the query's label, over the queries that have an
    image of their label to find (as map_at: a label of one image has none)."""
    queried = queryable(labels)
    if not queried.any():
        return 0.0
    hits = labels[ranked[queried, :k]] == labels[queried, None]
    return float(hits.mean())


def queryable(labels: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Labelled rows whose label has another row (leave-one-out queries with an answer)."""
    counts = np.bincount(labels[labels >= 0], minlength=1)
    return (labels >= 0) & (counts[np.maximum(labels, 0)] >= 2)


def map_at(ranked: Ranked, labels: npt.NDArray[np.int64], k: int) -> float:
    """Mean average precision over the first k ranks, normalised by min(relevant, k)."""
    counts = np.bincount(labels[labels >= 0], minlength=1)
    aps = []
    for i in np.flatnonzero(queryable(labels)):
        relevant = counts[labels[i]] - 1  # leave-one-out: the query is not in its list
        rel = labels[ranked[i, :k]] == labels[i]
        precision = np.cumsum(rel) / np.arange(1, len(rel) + 1)
        aps.append(float((precision * rel).sum() / min(relevant, k)))
    return float(np.mean(aps)) if aps else 0.0


def twins(features: Vectors, rows: npt.NDArray[np.int64]) -> list[npt.NDArray[np.int64]]:
    """For each of ``rows``, the rows with its features (itself, and duplicates of its file
    elsewhere in the folder): a copy that finds any of them first has found its original."""
    norms = np.linalg.norm(features, axis=1)
    out = []
    for r in rows:
        apart = np.linalg.norm(features - features[r], axis=1)
        out.append(np.flatnonzero(apart <= SAME_IMAGE * max(float(norms[r]), 1e-12)))
    return out


def recall_at(
    ranked: Ranked, truth: Sequence[npt.NDArray[np.int64]] | npt.NDArray[np.int64], k: int
) -> float | None:
    """Share of queries with one of their true rows (a row each, or a set each) in the
    first k."""
    if len(truth) == 0:
        return None  # no copies made (--copies 0): not measured, which 0.0 would hide
    hits = [np.isin(ranked[i, :k], np.atleast_1d(t)).any() for i, t in enumerate(truth)]
    return float(np.mean(hits))


def best_precision_at(labels: npt.NDArray[np.int64], k: int) -> float:
    """The P@k a perfect ranking scores: a label of n images gives each query n - 1 to find,
    so below k + 1 images even that stays under 1."""
    counts = np.bincount(labels[labels >= 0], minlength=1)
    queried = queryable(labels)
    if not queried.any():
        return 0.0
    return float(np.mean(np.minimum(counts[labels[queried]] - 1, k) / k))


def agreement_at(ranked: Ranked, reference: Ranked, k: int) -> float:
    a, b = ranked[:, :k], reference[:, :k]
    overlap = [len(np.intersect1d(x, y, assume_unique=True)) for x, y in zip(a, b, strict=True)]
    return float(np.mean(overlap) / b.shape[1]) if overlap else 0.0


# ---------------------------------------------------------------- output


def format_table(result: dict, folder: Path, model: str, data: Data) -> str:
    head = (
        f"{folder}: {result['images']} images, {len(result['labels'])} labels, "
        f"{result['copies']} copies; model {model} ({data.features.shape[1]}-d)"
        + (f"; {count(result['skipped'], 'file')} skipped" if result["skipped"] else "")
    )
    alone = int((data.labels >= 0).sum()) - result["queried"]
    if alone:
        lone = "alone in its label" if alone == 1 else "alone in their labels"
        head += f"\n{count(alone, 'image')} {lone}: not queried for P@10 and mAP"
    if result["p_at_10_best"] < 1.0:
        head += (
            f"\nP@10 is at most {result['p_at_10_best']:.3f} here, even ranked perfectly: "
            "labels of fewer than 11 images"
        )
    if result["agree_20_trivial"]:
        head += "\nagree@20 is 1.000 for any ranking here: 21 images or fewer"
    span = result["pca_span"]
    pcas = (r for r in result["rows"] if r["projection"].startswith("pca"))
    thin = sorted({r["dims"] for r in pcas if r["dims"] > span})
    if thin:  # (pca 256 and pca 100 gave one row's figures twice, unsaid; analyze says it)
        head += (
            f"\npca at {', '.join(map(str, thin))} dims: {count(result['images'], 'image')} span "
            f"at most {span} dimensions; the others carry nothing"
        )
    cols = ["projection", "dims", "l2", "variant", "P@10", "mAP@100", "copy R@1", "copy R@10"]
    cols += ["agree@20", "query ms"]
    lines = [head, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    named = [(r, "") for r in result["rows"]]
    if result["default"] is not None:
        named.append((result["default"], " (analyze default)"))
    named.append((result["full"], " (full, exact)"))
    for row, note in named:
        lines.append("| " + " | ".join(table_cells(row, note)) + " |")
    return "\n".join(lines)


def table_cells(row: dict, note: str = "") -> list[str]:
    kind = row["projection"] + note  # as analyze and --json name it ("rp" before)
    variant = (f"rerank {row['rerank']}" if row["rerank"] else "") + (
        f"qe {row['qe']}" if row["qe"] else ""
    )
    cells = [kind, str(row["dims"]), "on" if row["l2"] else "off", variant or "-"]
    cells += ["-" if row[k] is None else f"{row[k]:.3f}" for k in METRIC_KEYS[:-1]]
    cells += [f"{row['query_ms']:.3f}"]
    return cells
