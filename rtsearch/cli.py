"""The `rtsearch` command line: analyze, query, info, models, plus the commands that live in
their own modules (view, demo, bench, eval, update), each exposing add_arguments/run."""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import json
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn, TypeVar

from rtsearch import __version__, queries, terminal
from rtsearch.argtypes import (
    file_path,
    in_range,
    non_negative_int,
    positive_int,
    seed,
    thread_count,
)
from rtsearch.errors import RtsearchError, count, printable, system_error, warn
from rtsearch.interrupts import catch_interrupts, ending
from rtsearch.startup import ClosedOutput, Messages, names_as_utf8

T = TypeVar("T")

# name -> (module, one-line help); each module has add_arguments(parser) and run(args) -> int.
EXTERNAL_COMMANDS = {
    "view": ("rtsearch.viewer.cli", "open the realtime viewer (the default command)"),
    "demo": ("rtsearch.demo", "build a demo index over a real gallery, then open the viewer"),
    "bench": ("rtsearch.bench", "measure every stage and print the figures"),
    "eval": ("rtsearch.evaluate", "measure retrieval quality on a labelled folder"),
    "update": ("rtsearch.update", "bring an index up to date with its folder"),
}
COMMANDS = {"analyze", "query", "info", "models", *EXTERNAL_COMMANDS}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" only where it says something: not for a None or False default
    (an optional path, a flag), nor where the help already names its default."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        # (by identity: a default of 0 equals False, and went unsaid; "0: all cores" says it)
        said = "default" in text.lower() or f"({action.default}:" in text
        if action.default is None or action.default is False or said:
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """A usage error is one line, as every error is: the usage block before it only where
    arguments are missing (the command's shape is what was wanted there; before a value
    out of range, `-k 0`, it was eight lines of noise)."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("the following arguments are required"):
            self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    fmt = HelpFormatter
    parser = Parser(
        prog="rtsearch", description="Realtime reverse image search.", formatter_class=fmt
    )
    parser.add_argument("--version", action="version", version=f"rtsearch {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("analyze", help="analyze a directory into an index", formatter_class=fmt)
    p.add_argument("directory", type=Path, help="folder of images, scanned recursively")
    p.add_argument(
        "-o", "--output", type=file_path, required=True, help="index file to write (.dat)"
    )
    add_model_argument(p, default=None, help_default="the index at -o's, else efficientnet-lite0")
    add_projection_arguments(p)
    p.add_argument(
        "--batch",
        type=non_negative_int,
        default=0,
        help="images per inference batch (0: 4 per stream on a multi-core CPU, 16 on one "
        "core, 64 on a GPU)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=None,
        help="write a checkpoint every N images (default: every 2 minutes of work)",
    )
    p.add_argument(
        "--keep-features",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="store the full feature vectors too (allows re-projection; default: as the "
        "index at -o has them, else not)",
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="overwrite an index at -o of another folder that holds none of this one's "
        "images, drop that folder's unfinished checkpoints, or remove most of the index's "
        "images (a folder holding under half of them)",
    )
    p.add_argument(
        "--threads", type=thread_count, default=0, help="inference threads (0: all cores)"
    )
    leave = p.add_mutually_exclusive_group()
    leave.add_argument(
        "--exclude",
        action="append",
        metavar="PATTERN",
        help="leave out files and folders matching PATTERN (repeatable; quote patterns with "
        "* or ?; default: as the index at -o was made; given, they replace its patterns): a "
        "name at any depth (Backup, '*.png'), a path from DIRECTORY (2019/raw, "
        "'phone/*/cache'; ** any folders), a name with a leading / for DIRECTORY's top level "
        "only (/Backup), or a place as a path (photos/Backup, /home/me/photos/Backup); a "
        "trailing / for folders only; case ignored. Kept in the index: update and later runs "
        "leave the same out",
    )
    leave.add_argument(
        "--no-exclude",
        action="store_true",
        help="take in what the index at -o was made to leave out (its --exclude patterns)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="analyze on a Ray cluster (auto, HOST:PORT, ray://HOST:10001; no value: the "
        "cluster running here, else a local one); needs rtsearch[distributed]",
    )
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("query", help="find the images nearest to an image", formatter_class=fmt)
    queries.add_arguments(p)
    p.set_defaults(func=queries.run)

    p = sub.add_parser("info", help="describe an index file", formatter_class=fmt)
    p.add_argument(
        "index",
        type=Path,
        nargs="?",
        help="the index file (.dat) to describe (default: the one the viewer showed last)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("models", help="list the available model files", formatter_class=fmt)
    p.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list: one object per file, its metadata or its 'error'",
    )
    p.set_defaults(func=cmd_models)

    for name, (module, help_text) in EXTERNAL_COMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("rtsearch"):
                continue  # not built into this copy
            raise
        p = sub.add_parser(name, help=help_text, formatter_class=fmt)
        mod.add_arguments(p)
        p.set_defaults(func=mod.run)
    for p in sub.choices.values():  # after the command too (its default leaves the first's)
        p.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
        )
    return parser


def add_model_argument(
    p: argparse.ArgumentParser,
    default: str | None = "efficientnet-lite0",
    help_default: str | None = None,
) -> None:
    p.add_argument(
        "--model",
        default=default,
        # The formatter appends "(default: X)" unless the help mentions %(default); a None
        # default is named by help_default instead ("%(default).0s" prints nothing).
        help="model name or .onnx path"
        + (f" (default: {help_default})%(default).0s" if help_default else ""),
    )


def add_projection_arguments(p: argparse.ArgumentParser) -> None:
    from rtsearch.projection import DEFAULT_DIMS, DEFAULT_KIND, KINDS, MAX_DIMS, MIN_DIMS

    # each of these defaults to what the index at -o was made with (analysed again, it keeps
    # its settings: before, any it had left out went back to the defaults, and every image
    # was analysed again), else to the default shown
    p.add_argument(
        "--dims",
        type=in_range((MIN_DIMS, MAX_DIMS), "--projection none keeps every feature"),
        default=None,
        help=f"projected dimensions, {MIN_DIMS}-{MAX_DIMS} and at most the model's "
        f"features (default: the index at -o's, else {DEFAULT_DIMS})",
    )
    p.add_argument(
        "--projection",
        choices=KINDS,
        default=None,
        help="how features are reduced to --dims (docs/eval.md: why PCA; default: the index "
        f"at -o's, else {DEFAULT_KIND})",
    )
    p.add_argument("--pca", action="store_true", help="same as --projection pca")
    p.add_argument("--whiten", action="store_true", help="same as --projection pca-whiten")
    p.add_argument(
        "--no-l2",
        action="store_true",
        default=None,
        help="do not L2-normalise features first (default: as the index at -o, else do)",
    )
    p.add_argument(
        "--seed",
        type=seed,
        default=None,
        help="random projection seed, 0 to 2**63-1 (default: the index at -o's, else 0)",
    )


def projection_kind(args: argparse.Namespace, default: str) -> str:
    """--projection, or what --pca/--whiten say, else ``default``; options that contradict
    it, or --dims with no projection to size, are refused rather than quietly ignored."""
    kind = args.projection
    if args.pca or args.whiten:
        wanted = "pca-whiten" if args.whiten else "pca"
        if kind not in (None, wanted):
            flag = "--whiten" if args.whiten else "--pca"
            raise RtsearchError(f"{flag} contradicts --projection {kind}")
        kind = wanted
    if kind is None:  # the default; an inherited "none" gives way to --dims
        from rtsearch.projection import DEFAULT_KIND

        kind = DEFAULT_KIND if default == "none" and args.dims is not None else default
    if kind == "none" and args.dims is not None:
        raise RtsearchError("--dims does not apply with --projection none (all dims are kept)")
    return kind


def analyze_settings(args: argparse.Namespace, made: dict) -> dict:
    """dims, projection, l2_normalize, seed, keep_features and exclude for `analyze`: as
    given, else as the index at -o was made (``made``: store.made_with), else the defaults."""
    from rtsearch.exclusions import normalise
    from rtsearch.projection import DEFAULT_DIMS, DEFAULT_KIND

    kind = projection_kind(args, made.get("projection", DEFAULT_KIND))
    dims = args.dims if args.dims is not None else made.get("dims", DEFAULT_DIMS)
    if args.dims is None and made.get("projection") == "none" != kind:
        dims = DEFAULT_DIMS  # from every dimension to a projection: its default size
    no_l2 = args.no_l2 if args.no_l2 is not None else not made.get("l2_normalize", True)
    # the features too: as asked, else as the index has them (analysed again, it kept
    # none: they take a whole analysis to get back)
    keep = args.keep_features if args.keep_features is not None else made.get("features", False)
    if args.exclude:
        exclude = tuple(dict.fromkeys(normalise(t, args.directory) for t in args.exclude))
    else:
        exclude = () if args.no_exclude else made.get("exclude", ())
    return {
        "exclude": exclude,
        "dims": dims,
        "projection": kind,
        "l2_normalize": not no_l2,
        "seed": args.seed if args.seed is not None else made.get("seed", 0),
        "keep_features": keep,
    }


def analysis_model(output: Path, made: dict) -> str:
    """The model `analyze` runs without --model: the file that made the index at -o
    (``made``: store.made_with; as its settings, analysed again it keeps its model: the
    default model was exported first, then refused as another model without naming the
    index's), else the default."""
    from rtsearch.models import DEFAULT_MODEL, find_model_for

    ref = made.get("model")
    if ref is None:
        return DEFAULT_MODEL
    return str(
        find_model_for(
            ref.name, ref.feature_layer, ref.identity, index=output, variant=ref.variant,
            first="" if ref.variant else "fp32", hint=ref.file,
        )
    )  # fmt: skip


# ---------------------------------------------------------------- commands


def cmd_analyze(args: argparse.Namespace) -> int:
    from rtsearch import checkpoints, store
    from rtsearch.analyze import Settings, analyze, thin_pca
    from rtsearch.extractor import Extractor
    from rtsearch.models import DEFAULT_MODEL, drift_warning, resolve_model

    # the settings and the model of the unfinished run whose checkpoints are there (resumed
    # without its options, it made a 100-d PCA of a run asked for 20-d random ones, without
    # a word), the later command; else of the index at -o (one read of its attributes)
    made = checkpoints.made_with(store.checkpoint_dir(args.output))
    if made and args.output.is_file():
        _say_resumed(args, made, store.made_with(args.output))
    if not made and args.output.is_file():
        made = store.made_with(args.output)
    settings = Settings(
        **analyze_settings(args, made),
        batch=args.batch,
        checkpoint_every=args.checkpoint_every,
        replace=args.replace,
    )
    if args.model is None:  # (an index --replace throws away does not choose it)
        args.model = DEFAULT_MODEL if args.replace else analysis_model(args.output, made)
    if args.ray is not None:
        from rtsearch.distributed import run_cli

        return run_cli(args, settings, made.get("exclude", ()))
    extractor = Extractor(resolve_model(args.model), threads=args.threads, streams=0)
    if extractor.info.variant == "int8" and not extractor.info.faithful_int8:
        warn(drift_warning(extractor.path, extractor.info))
    report = with_progress(
        lambda **shown: analyze(args.directory, args.output, extractor, settings, **shown),
        quiet=args.quiet,
    )
    say_taken_back(args, made.get("exclude", ()), report.index.paths)
    print(analysis_summary(args.output, report, f"{extractor.info.label} on {extractor.provider}"))
    # said where the dimensions or the whitening were asked for (a folder of a dozen
    # pictures at the default 100 dims is no mistake of the user's)
    thin = thin_pca(report.index) if args.dims or settings.projection == "pca-whiten" else None
    if thin:
        warn(f"{args.output}: {thin}")
    return 0


def _say_resumed(args: argparse.Namespace, run: dict, index: dict) -> None:
    """Say that an unfinished rerun's settings (``run``), not the index's (``index``), are
    the ones taken, where they differ and the command gives none of them (it went on with
    them without a word, saying only "re-analysing everything")."""
    from rtsearch import store

    keys = ("dims", "projection", "l2_normalize", "seed", "features")
    given = (args.dims, args.projection, args.no_l2, args.seed, args.keep_features)
    if any(g is not None for g in given) or args.pca or args.whiten:
        return
    if all(run.get(k) == index.get(k) for k in keys):
        return
    kept = ", features kept" if run["features"] else ""
    said = f"{run['dims']} dims, {run['projection']}{kept}"
    print_line(
        f"note: {store.checkpoint_dir(args.output)}: an unfinished run's settings are taken "
        f"({said}); give others to start again with them"
    )


def with_progress(job: Callable[..., T], *, quiet: bool = False) -> T:
    """Run ``job(progress=, warn=)`` under a progress bar (none when ``quiet``), warnings
    printed above it one line each: how `analyze`, `analyze --ray` and `demo` report."""
    bar = None if quiet else ProgressBar()
    try:
        return job(progress=bar, warn=lambda m: print_line(f"warning: {m}", bar))
    finally:  # an interruption or an error is said on a line of its own, not after the bar
        if bar:
            bar.close()


def say_taken_back(args: argparse.Namespace, before: tuple[str, ...], paths: list[str]) -> None:
    """Warn where the patterns the index at -o was made with (``before``) left out images it
    holds now (``paths``), after `analyze` with other patterns or --no-exclude: nothing where
    none came back (the same patterns written otherwise: ``backup`` for ``Backup``)."""
    from rtsearch.exclusions import Exclusions, quoted

    old = Exclusions.of(before)
    back = [p for p in paths if old.hides(p)] if before else []
    if not back:
        return
    named = [t for t in before if any(Exclusions.of([t]).hides(p) for p in back)]
    why = "as --no-exclude asks" if args.no_exclude else "the patterns given replace them"
    warn(
        f"{args.output}: {count(len(back), 'image')} its --exclude "
        f"{' '.join(quoted(t) for t in named)} left out {'is' if len(back) == 1 else 'are'} "
        f"taken in again, {why}"
    )


def analysis_summary(output: Path, report, how: str) -> str:
    """The one line `analyze` ends with (local or on Ray)."""
    index = report.index
    assert index is not None
    from rtsearch.analyze import left_out_text

    removed = f"{report.removed} removed, " if report.removed else ""  # (a rerun's)
    left_out = left_out_text(report.excluded)
    return printable(  # a name holding a newline or an escape code: as errors show it
        f"{output}: {count(index.count, 'image')} ({report.analysed} analysed, {report.reused} "
        f"reused, {removed}{len(report.skipped)} skipped{left_out}) in {report.seconds:.1f} s, "
        f"{how}, {index.dims} dims"
    )


def last_shown(usage: str) -> Path:
    """The index the viewer showed last, for a command given none (``usage``), said on
    stderr: a newcomer after `rtsearch demo` had to find the demo index's hashed name to
    `query` or `info` it. Refused, with ``usage``, where there is none."""
    from rtsearch.viewer.memory import recall

    index = recall().index
    if index is None:
        raise RtsearchError(f"no index given: {usage}")
    if not Path(index).is_file():
        raise RtsearchError(
            f"no index given: {usage} (the one the viewer showed last, {index}, is gone)"
        )
    print_line(f"note: index: {index} (the one the viewer showed last)")
    return Path(index)


def one_index(given: Path | None, option: Path | None) -> Path | None:
    """The index a command's argument or its ``--index`` names; both naming two is refused."""
    if given is not None and option is not None and given != option:
        raise RtsearchError(f"two indexes given, {given} and --index {option}: give one")
    return given or option


def index_summary(path: Path) -> dict:
    from rtsearch import bigstore, store
    from rtsearch.models import short_weights
    from rtsearch.search import choose_method, uses_prefilter
    from rtsearch.session import moved_with_index
    from rtsearch.viewer.memory import found_in

    index = bigstore.load(path)  # a large index mapped, not read in (1M rows: 614 MB)
    with_features = store.has_features(path)
    found = None if Path(index.base_dir or ".").is_dir() else found_in(path, index.base_dir)
    moved = moved_with_index(index, path)
    method = choose_method(index.count, index.dims)
    ckpt = store.checkpoint_dir(path)
    return {
        "count": index.count,
        "dims": index.dims,
        "feature_dims": index.model.feature_dims,
        "model": index.model.name,
        "feature_layer": index.model.feature_layer,
        # the weights the model file must have (as `rtsearch models` shows them)
        "model_weights": short_weights(index.model.identity),
        # the file its rows were made with ("fp32" | "int8"; null: a file that does not say)
        "model_variant": index.model.variant or None,
        # where that file was (null: not recorded), looked at first for it
        "model_file": index.model.file or None,
        "projection": index.projection.kind if index.projection else None,
        "l2_normalize": index.projection.l2_normalize if index.projection else None,
        "seed": index.projection.seed if index.projection else None,
        "search": method,
        # the exact scan reads int8 codes first from this many rows (rtsearch/prefilter.py)
        "search_int8_first_pass": uses_prefilter(index.count, method),
        "bytes": path.stat().st_size,
        "features": with_features,
        "base_dir": index.base_dir,
        # whether that folder is there now; where it is not, the folder the viewer showed
        # the images from (chosen there: the file still names the old one), if any
        "base_dir_found": bool(index.base_dir) and Path(index.base_dir).is_dir(),
        "shown_from": None if found is None else str(found),
        # the folder of the images gone, where they moved to with the index file
        "moved_with_index": None if moved is None else str(moved),
        "created": index.created,
        "exclude": list(index.exclude),
        # the checkpoints of an analysis of it that stopped before it finished (null: none)
        "unfinished": str(ckpt) if any(ckpt.glob("part-*.dat")) else None,
    }


def cmd_info(args: argparse.Namespace) -> int:
    info = index_summary(args.index or last_shown("rtsearch info INDEX"))
    if args.json:
        print(json.dumps(info))
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            unsaid = key in ("model_variant", "model_file") and value is None
            shown = "not recorded" if unsaid else value
            if key == "exclude":
                shown = " ".join(shlex.quote(t) for t in value) or "nothing"
            if key == "base_dir_found":
                continue  # (said with base_dir)
            if key == "base_dir" and not info["base_dir_found"]:
                shown = f"{value or '(unknown)'} (not there now)"
            if key in ("shown_from", "moved_with_index", "unfinished") and value is None:
                continue
            if key == "unfinished":
                shown = f"{value} (an analysis into it stopped: analyze again to finish it)"
            shown = printable(str(shown))
            print(f"{key:<{width}}  {shown}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from rtsearch.models import (
        DEFAULT_MODEL,
        INT8_MIN_COSINE,
        read_model_info,
        search_dirs,
        unusable_env_dirs,
    )

    for line in unusable_env_dirs():
        print_line(f"warning: {line}")
    rows = []
    for d in search_dirs():
        for path in sorted(d.glob("*.onnx")) if d.is_dir() else []:
            try:
                rows.append({"path": str(path), **asdict(read_model_info(path))})
            except RtsearchError as exc:
                rows.append({"path": str(path), "error": str(exc)})
    # a name finds the first readable file of that name (models.first_readable)
    found: dict[str, str] = {}
    for row in sorted(rows, key=lambda r: "error" in r):  # stable: search order kept
        found.setdefault(Path(row["path"]).name, row["path"])
    for row in rows:
        if found[Path(row["path"]).name] != row["path"]:
            row["hidden_by"] = found[Path(row["path"]).name]
        row["default"] = Path(row["path"]).stem == DEFAULT_MODEL and "hidden_by" not in row
    _mark_false_twins(rows)
    for row in rows:  # measured for int8 files only: none elsewhere, not 0.0
        if "int8_cosine" in row and not row["int8_cosine"]:
            row["int8_cosine"] = None
    if args.json:
        print(json.dumps(rows))
        return 0
    if not rows:
        print(  # every folder a name is looked for in, in order (one was named)
            "no model files in " + ", ".join(map(str, search_dirs())) + f"; {DEFAULT_MODEL} "
            "(the default) is exported on first use, others with tools/export_onnx.py"
        )
    for row in rows:
        # (the file a name finds may come later in the search: an earlier one is damaged)
        hidden = f"  (not used: its name finds {row['hidden_by']})" if "hidden_by" in row else ""
        if "error" in row:
            print(row["error"] + hidden)  # it names the file
            continue
        notes = []
        if "not_twin_of" in row:
            notes.append(
                f"not the twin of {Path(row['not_twin_of']).name} beside it (other weights)"
            )
        if row["variant"] == "int8" and row["int8_cosine"]:
            notes.append(f"feature cosine vs fp32 {row['int8_cosine']:.3f}")
            if row["int8_cosine"] < INT8_MIN_COSINE:
                notes.append(f"under {INT8_MIN_COSINE}: not used in its twin's place")
        size = "x".join(map(str, row["input_size"]))
        print(
            f"{row['path']}{'  (default)' if row['default'] else ''}{hidden}\n"
            f"  {row['name']} {row['variant']} {row['feature_layer']} "
            f"{row['dims']}-d, input {size} {row['channel_order']}, "
            f"weights {row['weights_sha256'][:12]}" + "".join(f", {n}" for n in notes)
        )
    return 0


def _mark_false_twins(rows: list[dict]) -> None:
    """``not_twin_of`` on each readable file whose twin by name (NAME.onnx beside
    NAME-int8.onnx) holds other weights: the two are taken for one model's files, and an
    index of one is searched with the other's features or refused."""
    from rtsearch.models import twin_path

    by_path = {row["path"]: row for row in rows if "error" not in row}
    for row in by_path.values():
        twin = twin_path(Path(row["path"]))
        other = by_path.get(str(twin))
        keys = ("name", "feature_layer", "weights_sha256")  # the identity's parts
        if other is not None and any(other[k] != row[k] for k in keys):
            row["not_twin_of"] = str(twin)


# ---------------------------------------------------------------- plumbing


class ProgressBar:
    """One self-overwriting stderr line: done/total, images/s, ETA."""

    def __init__(self) -> None:
        self.last = 0.0
        self.tty = sys.stderr.isatty()
        self.shown = False

    def __call__(self, p) -> None:
        now = time.monotonic()
        if now - self.last < (0.2 if self.tty else 5.0) and p.done < p.total:
            return
        if self.tty and not terminal.in_foreground():  # (sent on with `bg`: drawn after `fg`)
            return
        self.last = now
        frac = p.done / p.total if p.total else 1.0
        eta = "?" if p.eta_s == float("inf") else time.strftime("%H:%M:%S", time.gmtime(p.eta_s))
        filled = int(frac * 30)
        # (no rate until a second of the work is measured: it read "0.0 img/s")
        rate = f"{p.images_per_s:.1f}" if p.images_per_s > 0 or p.done >= p.total else "-"
        figures = (f"{p.done}/{p.total}", f"{rate} img/s", f"ETA {eta}",
                   f"skipped {p.skipped}")  # fmt: skip
        line = f"[{'#' * filled}{'.' * (30 - filled)}] {' '.join(figures)}"
        if self.tty:  # redrawn: one line of the terminal's width, the bar dropped first
            sys.stderr.write(terminal.redraw(line, figures))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        """End the bar's line; the next call starts a new bar (a watch's next pass)."""
        if self.shown and self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()
        self.shown = False
        self.last = 0.0


def print_line(message: str, bar: ProgressBar | None = None) -> None:
    if bar is not None and bar.tty and bar.shown and terminal.in_foreground():
        sys.stderr.write(terminal.clear())
    print(printable(message), file=sys.stderr, flush=True)


def missing_reason(path: Path) -> str:
    """Why ``path`` does not exist, in the words analyze's scan uses for a link."""
    if not path.is_symlink():
        return "image file not found"
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"cannot stat ({exc.strerror})"
    return "broken symlink"


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the program as started (a caller's argv is its own business)
        names_as_utf8()
    argv = list(sys.argv[1:] if argv is None else argv)
    _escape_what_stdout_cannot_write()
    try:
        parser = build_parser()  # (imports every command's module: numpy, h5py, onnx...)
    except MemoryError as exc:  # `ulimit -v` of ~500 MB: a traceback through importlib
        print(f"rtsearch: error: {system_error(exc)}", file=sys.stderr)
        return 1
    helping = any(a in ("-h", "--help", "--version") for a in argv)
    first = first_word(argv, parser)
    if not helping and (first is None or (argv[0].startswith("-") and first not in COMMANDS)):
        # no command: the viewer, with its options (`rtsearch --fp32`, `--source webcam X`)
        argv.insert(0, "view")
    elif first is not None and first not in COMMANDS and first.endswith(".dat"):
        argv.insert(argv.index(first), "view")  # `rtsearch pictures.dat`: the viewer on it
    elif first is not None and first not in COMMANDS and Path(first).is_dir():
        argv.insert(argv.index(first), "view")  # `rtsearch ~/Pictures`: analysed, then shown
    elif first is not None and first not in COMMANDS and os.sep in first:
        # a path that is not there (it said "invalid choice", listing the commands)
        print(
            f"rtsearch: error: {printable(first)}: no such file or folder (rtsearch takes an "
            f"index file, a folder of pictures, or a command: {', '.join(sorted(COMMANDS))})",
            file=sys.stderr,
        )
        return 2
    args = parse(parser, argv, first)
    func: Callable[[argparse.Namespace], int] = args.func
    restore = catch_interrupts()
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout = _Output(stdout if stdout is not None else ClosedOutput())
    sys.stderr = Messages(stderr)
    try:
        code = func(args)
        sys.stdout.flush()  # here, where a full disk under `> out.json` is one line
        return code
    except RtsearchError as exc:
        if args.debug:
            raise
        print(f"rtsearch: error: {printable(str(exc))}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, ImportError) as exc:  # SIGTERM too (interrupts.Terminated)
        stopped = ending(exc)
        if stopped is None:
            raise
        print(f"rtsearch: {printable(stopped[0])}", file=sys.stderr)
        return stopped[1]  # 130, or 143 as a shell reports a process ended by SIGTERM
    except BrokenPipeError:  # `rtsearch info X | head -1`: the reader has what it wanted
        # the interpreter flushes stdout once more at exit: point it at nothing first
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as if killed by SIGPIPE, what a shell reports for such a writer
    except (OSError, MemoryError) as exc:  # what no check before it foresaw: one line
        if args.debug:
            raise
        print(f"rtsearch: error: {printable(system_error(exc))}", file=sys.stderr)
        return 1
    finally:
        sys.stdout, sys.stderr = stdout, stderr
        restore()


def _escape_what_stdout_cannot_write() -> None:
    """Names an output's code page cannot hold (Windows' cp1252 when the output is a file or
    a pipe; `PYTHONIOENCODING`) are written as escapes: `rtsearch query X 猫.jpg > out.txt`
    ended in a UnicodeEncodeError traceback. (stderr escapes already, by Python's default.)"""
    stream = sys.stdout
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
    if encoding not in ("", "utf8") and getattr(stream, "errors", None) == "strict":
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]


def parse(
    parser: argparse.ArgumentParser, argv: list[str], command: str | None
) -> argparse.Namespace:
    """The command line parsed; `query`'s pictures may come after its options too
    (`query INDEX -k 5 a.jpg`, `query INDEX --no-verify -- -x.jpg`): argparse takes
    positionals given together only, and said "unrecognized arguments: a.jpg"."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if command not in sub.choices:
        return parser.parse_args(argv)
    args, extra = parser.parse_known_args(argv)
    if not extra:
        return args
    if command != "query":  # (said under the command's usage, not the top level's)
        quote = " (quote --exclude patterns: the shell turns an unquoted '*.png' into the " \
                "names of the files here)" if "--exclude" in argv else ""  # fmt: skip
        sub.choices[command].error(f"unrecognized arguments: {' '.join(extra)}{quote}")
    past = argv[argv.index("--") + 1 :] if "--" in argv else []
    unknown = [e for e in extra if e.startswith("-") and e not in ("-", "--") and e not in past]
    if unknown:
        sub.choices["query"].error(f"unrecognized arguments: {' '.join(unknown)}")
    given = [*([args.index_file] if args.index_file else []), *args.images]
    given += [e for e in extra if e != "--"]  # (as typed: query's own type)
    # as argparse splits them when they come together: the first is the index, if more
    args.index_file, args.images = (given[0], given[1:]) if len(given) > 1 else (None, given)
    return args


def first_word(argv: list[str], parser: argparse.ArgumentParser) -> str | None:
    """The first argument that is neither an option nor the value of one of the viewer's
    (the default command's): the command, when one is given (`rtsearch --base-dir demo
    X.dat` is the viewer's, not the demo's)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    view = sub.choices.get("view")
    options = view._actions if view is not None else []
    takes_value = {s for a in options for s in a.option_strings if a.nargs != 0}
    value_next = False
    for arg in argv:
        if value_next:
            value_next = False
        elif arg.startswith("-") and arg != "-":
            value_next = arg in takes_value
        else:
            return arg
    return None


class OutputFailed(RtsearchError):
    """Standard output could not be written (a full disk under ``> results.json``)."""


class _Output:
    """Standard output whose write errors (but a closed pipe's) are one line naming it, not
    a traceback; what is left unwritten is dropped, so the exit does not try again."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._guard(self._stream.write, text)

    def flush(self) -> None:
        self._guard(self._stream.flush)

    def _guard(self, call, *args):
        try:
            return call(*args)
        except BrokenPipeError:
            raise
        except OSError as exc:
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
            reason = exc.strerror or str(exc)
            raise OutputFailed(f"standard output: cannot write ({reason})") from None

    def __getattr__(self, name: str):
        return getattr(self._stream, name)
