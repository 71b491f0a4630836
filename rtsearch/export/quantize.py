"""Static int8 (QDQ) quantisation calibrated on real photos, with a quality report.

Static QDQ is the variant that pays on this kind of CPU (VNNI): ~2.4x faster for
EfficientNet-Lite0 and ~4x for VGG16, where dynamic quantisation is slower than fp32 and
wrecks the features (measured in shared/FACTS.md). Activation ranges come from real images,
never random noise, because noise ranges are far from those of photos.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
from google.protobuf.message import DecodeError
from onnx import helper

from rtsearch.decode import RGBImage, is_image_file, load_rgb
from rtsearch.errors import RtsearchError, count, first_line, size_text
from rtsearch.models import INT8_MIN_COSINE, ModelInfo

# scikit-image's bundled photos: installed with the package, so calibration works offline.
CALIBRATION_SAMPLES = (
    "astronaut",
    "coffee",
    "rocket",
    "camera",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "coins",
    "clock",
    "gravel",
    "moon",
)
HELD_OUT_SAMPLES = ("chelsea", "motorcycle", "logo", "brick")
MAX_CALIB_FILES = 64  # activation ranges settle long before this; more only costs time
QUALITY_FLOOR = INT8_MIN_COSINE  # held-out mean cosine below which the export log shouts


def sample_image(name: str) -> RGBImage:
    """One scikit-image sample photo as RGB uint8 (grey and RGBA converted)."""
    import skimage.data

    image = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else None
    image = getattr(skimage.data, name)() if image is None else image
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 4:  # logo: composite on white as the decoder does for cut-outs
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        image = image[:, :, :3] * alpha + 255.0 * (1.0 - alpha)
    return np.ascontiguousarray(image[:, :, :3].astype(np.uint8))


def folder_images(folder: Path, limit: int = MAX_CALIB_FILES) -> tuple[list[RGBImage], int]:
    """Decodable images from ``folder`` (recursive, sorted, at most ``limit``), and how many
    image files were passed over as not decodable (one bad file is not worth failing over)."""
    if not Path(folder).is_dir():
        raise RtsearchError(f"{folder}: calibration folder not found")
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and is_image_file(p))
    images, skipped = [], 0
    for path in files:
        if len(images) == limit:
            break
        try:
            images.append(load_rgb(path, min_size=(448, 448)))
        except RtsearchError:
            skipped += 1
    if not images:
        what = f"{count(skipped, 'image file')}, none decodable" if skipped else "no image files"
        raise RtsearchError(f"{folder}: no images to calibrate int8 on ({what})")
    return images, skipped


class ImageReader:
    """onnxruntime CalibrationDataReader over preprocessed single-image batches."""

    def __init__(self, batches: Sequence[npt.NDArray[np.float32]], input_name: str) -> None:
        self._batches = batches
        self._input_name = input_name
        self._iter: Iterator[npt.NDArray[np.float32]] = iter(batches)

    def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
        batch = next(self._iter, None)
        return None if batch is None else {self._input_name: batch}

    def rewind(self) -> None:
        self._iter = iter(self._batches)


def preprocess_each(images: Sequence[RGBImage], info: ModelInfo) -> list[np.ndarray]:
    # The runtime's own preprocessing, so calibration sees exactly what inference will.
    from rtsearch.extractor import preprocess

    return [preprocess([image], info) for image in images]


def cpu_session(model: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def feature_cosines(
    fp32: Path, int8_path: Path, batches: Sequence[np.ndarray], info: ModelInfo
) -> npt.NDArray[np.float64]:
    """Cosine similarity of int8 vs fp32 features, one value per batch row."""
    sessions = (cpu_session(fp32), cpu_session(int8_path))
    out = []
    for batch in batches:
        a, b = (
            s.run([info.feature_output], {info.input_name: batch})[0].astype(np.float64)
            for s in sessions
        )
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        out.append(np.sum(a * b, axis=1) / np.maximum(norms, 1e-12))
    return np.concatenate(out)


def quantize_model(
    model: onnx.ModelProto,
    info: ModelInfo,
    out: Path,
    *,
    calib_dir: Path | None = None,
    log: Callable[[str], None] = print,
    min_cosine: float | None = None,
    keep_fp32: Sequence[str] = (),
) -> Path:
    """Quantise fp32 ``model`` to static int8 QDQ at ``out``, logging its fidelity.

    ``keep_fp32``: node-name prefixes left unquantised. With ``min_cosine``, a model whose
    mean cosine on held-out photos falls below it is not written and RtsearchError says why.
    """
    from rtsearch.atomic import atomic_path, owned_temp_dir
    from rtsearch.export.checks import check_features, check_room

    out = Path(out)
    if calib_dir is not None:
        calib, skipped = folder_images(calib_dir)
        where = str(calib_dir)
        if skipped:
            where += f"; {count(skipped, 'file')} not decodable, skipped"
    else:
        calib, where = [sample_image(n) for n in CALIBRATION_SAMPLES], "scikit-image samples"
    held = [sample_image(n) for n in HELD_OUT_SAMPLES]
    calib_batches, held_batches = preprocess_each(calib, info), preprocess_each(held, info)
    excluded = [n.name for n in model.graph.node if n.name.startswith(tuple(keep_fp32))]
    folder = Path(os.path.realpath(out)).parent
    folder.mkdir(parents=True, exist_ok=True)
    # Named by process, so a killed export's folder (a copy of the fp32 model) is removed by
    # the next one (atomic.owned_temp_dir), before the room is measured.
    tmp = owned_temp_dir(folder, ".rtsearch-int8-")
    try:
        # the fp32 copy, onnxruntime's calibration copy of it, the int8 model, its final copy
        check_room(out, 3 * model.ByteSize() + (16 << 20), "an int8 model")
        staged, fp32_path = tmp / out.name, tmp / "fp32.onnx"
        # quantize_static rewrites a ModelProto it is given in place, so hand it a file.
        onnx.save(model, str(fp32_path))
        check_features(fp32_path, info, out)  # before the minutes of calibration
        log(f"{info.name}: calibrating int8 on {len(calib)} images ({where})")
        _quantize(fp32_path, staged, ImageReader(calib_batches, info.input_name), excluded)
        # Measured before the metadata goes in (the report reads features, not metadata), so
        # the file is written once, with its fidelity: the viewer uses an int8 twin by
        # default only when it is faithful.
        fidelity = _report(fp32_path, staged, calib_batches, held_batches, info, log)
        # --force keeps a drifting model, not a useless one: an int8 model of all-zero (or
        # equal) features was written, and every picture came back at distance 0
        check_features(staged, info, out, INT8_COLLAPSED)
        if min_cosine is not None and fidelity < min_cosine:
            raise RtsearchError(
                f"{out}: int8 export rejected, held-out mean feature cosine {fidelity:.4f} < "
                f"{min_cosine} (--force keeps it anyway)"
            )
        quantized = onnx.load(str(staged))
        measured = replace(info, variant="int8", int8_cosine=round(fidelity, 4))
        helper.set_model_props(quantized, measured.to_props())
        with atomic_path(out) as final:  # a symlink's target replaced, permissions kept
            onnx.save(quantized, str(final))
    except (OSError, DecodeError) as exc:
        # onnxruntime writes its copies without checking: a disk that filled shows as a file
        # it cannot parse back
        free = shutil.disk_usage(folder).free
        raise RtsearchError(
            f"{out}: the int8 export failed writing its files beside it "
            f"({getattr(exc, 'strerror', None) or first_line(str(exc))}; "
            f"{size_text(free)} free there)"
        ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"{info.name}: wrote int8 model to {out}")
    return out


# (the fp32 model passed the same check: its weights are not to blame)
INT8_COLLAPSED = (
    "its int8 quantisation collapsed them, while the fp32 model's features pass: keep the "
    "fp32 file; a layer of a few outsized weights does this"
)


def _quantize(model: Path, dest: Path, reader: ImageReader, exclude: list[str]) -> None:
    import logging

    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    # uint8 activations with int8 per-channel weights: the U8S8 pattern onnxruntime fuses
    # into QLinearConv on x86 (int8 activations left 14 of 49 convs in fp32, 3x slower), and
    # per-tensor weights cost EfficientNet's depthwise convs 0.2 of feature cosine.
    # reduce_range (7-bit weights): CPUs without VNNI (AVX2 only) multiply u8 x s8 pairs
    # with a saturating 16-bit add, which 8-bit weights overflow. Measured on an AVX2-only
    # EPYC, EfficientNet-Lite0, held-out photos: mean cosine 0.971 -> 0.992, and still
    # 1.6x the fp32 rate; u8 weights avoid it too but ran at 0.3x fp32 there.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its "consider pre-processing" advice does not apply here
    try:
        quantize_static(
            model,
            dest,
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=exclude,
            reduce_range=True,
        )
    finally:
        root.setLevel(level)


def _report(
    fp32: Path,
    int8_path: Path,
    calib: Sequence[np.ndarray],
    held: Sequence[np.ndarray],
    info: ModelInfo,
    log: Callable[[str], None],
) -> float:
    """Log int8-vs-fp32 feature cosine on both image sets; return the held-out mean, the
    figure the quality gate judges (images the calibration never saw, as in real use)."""
    held_mean = 1.0
    for label, batches in (("calibration", calib), ("held-out", held)):
        cos = feature_cosines(fp32, int8_path, batches, info)
        held_mean = float(cos.mean())
        log(
            f"{info.name}: int8 vs fp32 feature cosine on {len(cos)} {label} images: "
            f"mean {cos.mean():.4f}, min {cos.min():.4f}"
        )
    if held_mean < QUALITY_FLOOR:
        log(
            f"!!! WARNING: {info.name} int8 features drift from fp32: held-out mean cosine "
            f"{held_mean:.4f} < {QUALITY_FLOOR}. Search results will differ; prefer fp32."
        )
    return held_mean
