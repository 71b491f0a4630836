"""VGG16 up to fc7 (after ReLU) as ONNX, from torchvision ``.pth`` or Keras ``.h5`` weights.

Layer widths come from the weight shapes, so any VGG16-shaped network (13 convs in blocks of
2, 2, 3, 3, 3, then two fully connected layers) converts; tests use a slim one. Both sources
are brought to one layout before the graph is built: conv weights (O, I, 3, 3), fc weights
(out, in) with fc6's inputs in NCHW flatten order.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import onnx

from rtsearch.errors import RtsearchError, first_line
from rtsearch.export.onnx_build import EXPORTER_VERSION, GraphBuilder, save_atomic, sha256_file
from rtsearch.models import ModelInfo

BLOCKS = (2, 2, 3, 3, 3)  # convs per block; a 2x2 max-pool closes each block
INPUT_SIZE = 224
POOLED = INPUT_SIZE // 2 ** len(BLOCKS)  # 7: fc6 sees 7x7 maps at 224x224
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# Keras's names of VGG16's conv layers, in order: block1_conv1, block1_conv2, block2_conv1...
KERAS_CONVS = [f"block{b + 1}_conv{c + 1}" for b, n in enumerate(BLOCKS) for c in range(n)]
Array = npt.NDArray[np.float32]


@dataclass
class VGGWeights:
    convs: list[tuple[Array, Array]]  # 13 x (weight (O, I, 3, 3), bias (O,))
    fcs: list[tuple[Array, Array]]  # fc6, fc7 x (weight (out, in), bias (out,))
    layout: str  # "torchvision" or "keras"
    part: str = ""  # the key prefix taken from a checkpoint of several sets ("" for one set)


def detect_layout(path: Path) -> str:
    """'pth' (zip or legacy pickle) or 'h5', from the file's first bytes, not its name."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise RtsearchError(f"{path}: cannot read weights ({exc.strerror or exc})") from None
    if not head:
        raise RtsearchError(f"{path}: empty file (not weights; an interrupted download?)")
    if head.startswith(HDF5_MAGIC):
        return "h5"
    if head.startswith(b"PK\x03\x04") and _keras_archive(path):
        return "keras"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # zip, or pickle protocol 2+
        return "pth"
    raise RtsearchError(f"{path}: not a PyTorch (.pth) or Keras (.h5) weights file")


KERAS_WEIGHTS = "model.weights.h5"  # a .keras archive's weights, beside its config


def _keras_archive(path: Path) -> bool:
    """Whether ``path`` is a zip holding Keras 3 weights (a ``.keras`` model file)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return KERAS_WEIGHTS in zf.namelist()
    except (OSError, zipfile.BadZipFile):
        return False  # (the .pth reader words what is wrong with it)


def load_vgg16(path: Path, prefix: str | None = None) -> VGGWeights:
    """``prefix``: which set of weights to take from a checkpoint holding several (.pth)."""
    layout = detect_layout(path)
    if layout in ("h5", "keras"):
        if prefix is not None:
            raise RtsearchError(f"{path}: a Keras file; --weights-prefix is for .pth checkpoints")
        weights = _load_h5(path, archive=layout == "keras")
    else:
        weights = _load_pth(path, prefix)
    _check_shapes(path, weights)
    return weights


def _load_pth(path: Path, chosen: str | None = None) -> VGGWeights:
    from rtsearch.export.torch_pickle import load_state_dict

    # PyTorch's ImageNet example wraps only VGG's features in DataParallel:
    # state_dict.features.module.0.weight beside state_dict.classifier.0.weight
    sd = {re.sub(r"(^|\.)features\.module\.(?=\d)", r"\1features.", k): v
          for k, v in load_state_dict(path).items()}  # fmt: skip
    # Checkpoints may wrap the state dict ("state_dict.", "module."): find the prefix.
    found = [k for k in sd if re.search(r"(^|\.)features\.0\.weight$", k)]
    if not found:
        raise RtsearchError(f"{path}: no torchvision VGG layers (features.0.weight) in file")
    prefixes = [k[: -len("features.0.weight")] for k in found]
    prefix = _one_prefix(path, prefixes, chosen)
    if any(re.fullmatch(re.escape(prefix) + r"features\.\d+\.running_mean", k) for k in sd):
        raise RtsearchError(
            f"{path}: batch-norm VGG16 (vgg16_bn) weights; only plain VGG16 converts"
        )
    conv_ids = sorted(
        int(m.group(1))
        for k in sd
        if (m := re.fullmatch(re.escape(prefix) + r"features\.(\d+)\.weight", k))
    )
    convs = [_pair(sd, f"{prefix}features.{i}", path) for i in conv_ids]
    fcs = [_pair(sd, f"{prefix}classifier.{i}", path) for i in (0, 3)]
    return VGGWeights(convs, fcs, "torchvision", prefix if len(prefixes) > 1 else "")


def _one_prefix(path: Path, prefixes: list[str], chosen: str | None) -> str:
    """The key prefix of the one set of VGG weights to take: the only one, or the one
    chosen (with or without its dot); a checkpoint of several (a model and its moving
    average, a student and a teacher) is not guessed at."""
    shown = ", ".join(repr(p) if p else "'' (top level)" for p in prefixes)
    if chosen is not None:
        for p in prefixes:
            if chosen in (p, p.rstrip(".")):
                return p
        raise RtsearchError(f"{path}: no VGG weights under {chosen!r}; the file holds {shown}")
    if len(prefixes) > 1:
        raise RtsearchError(
            f"{path}: holds {len(prefixes)} sets of VGG weights ({shown}); choose one with "
            f"--weights-prefix, e.g. --weights-prefix {prefixes[0] or prefixes[1]}"
        )
    return prefixes[0]


def _pair(sd: dict[str, np.ndarray], name: str, path: Path) -> tuple[Array, Array]:
    try:
        weight, bias = sd[f"{name}.weight"], sd[f"{name}.bias"]
    except KeyError:
        raise RtsearchError(f"{path}: VGG16 layer {name} missing") from None
    return _floats(weight, name, path), _floats(bias, name, path)


def _floats(array: np.ndarray, name: str, path: Path) -> Array:
    """``array`` as float32 (copy=False: full-size fc6 alone is 400 MB, and it is float32
    already in practice), or one line naming the layer."""
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        what = "text" if array.dtype.kind in "SU" else f"{array.dtype.name} values"
        raise RtsearchError(f"{path}: layer {name} holds {what}, not numbers")
    if not np.issubdtype(array.dtype, np.floating):  # weights are trained as floats
        raise RtsearchError(
            f"{path}: layer {name} holds {array.dtype.name} values, not floating-point weights"
        )
    return array.astype(np.float32, copy=False)


def _load_h5(path: Path, archive: bool = False) -> VGGWeights:
    """Keras weights: a ``.h5`` file, or (``archive``) the weights inside a ``.keras`` one."""
    import h5py

    try:
        with contextlib.ExitStack() as stack:
            source: Path | BinaryIO = path
            if archive:  # read whole: a zip member cannot be seeked cheaply
                zf = stack.enter_context(zipfile.ZipFile(path))
                source = io.BytesIO(zf.read(KERAS_WEIGHTS))
            f = stack.enter_context(h5py.File(source, "r"))
            # a whole saved model, Keras 3's .weights.h5 (layers/conv2d_3/vars/0, 1, the
            # layer's own name an attribute of vars), or Keras 2's weights only
            root = _by_layer_name(f.get("model_weights") or f.get("layers") or f)
            _check_keras_convs(root, KERAS_CONVS, path)
            convs = [_keras_layer(root, name, path) for name in KERAS_CONVS]
            fc6, fc7 = (_keras_layer(root, name, path) for name in ("fc1", "fc2"))
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        # HDF5's words: "truncated file: eof = 3000, sblock->base_addr = 0, stored_eof = ..."
        if cut := re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", str(exc)):
            raise RtsearchError(
                f"{path}: truncated Keras weights file ({cut[1]} of {cut[2]} bytes; an "
                "interrupted download or copy?)"
            ) from None
        raise RtsearchError(f"{path}: unreadable Keras weights ({first_line(exc)})") from None
    # Keras: conv kernels HWIO, dense kernels (in, out), and fc1's rows in HWC flatten
    # order because Keras flattens channels-last maps; ONNX flattens NCHW, so reorder.
    for name, (w, _) in [*zip(KERAS_CONVS, convs, strict=True), ("fc1", fc6), ("fc2", fc7)]:
        want = 2 if name.startswith("fc") else 4
        if w.ndim != want:
            raise RtsearchError(
                f"{path}: Keras layer {name!r} has a kernel of shape {w.shape}, not {want}-D"
            )
        if want == 4 and w.shape[:2] != (3, 3):  # Keras keeps (height, width, in, out)
            raise RtsearchError(
                f"{path}: Keras layer {name!r} has a kernel of shape {w.shape}; Keras stores "
                "3x3 convolutions as (3, 3, in, out)"
            )
    convs = [(w.transpose(3, 2, 0, 1), b) for w, b in convs]
    channels = convs[-1][0].shape[0]
    w6 = fc6[0]
    if w6.shape[0] != POOLED * POOLED * channels:
        raise RtsearchError(f"{path}: fc1 has {w6.shape[0]} inputs, expected 7x7x{channels}")
    w6 = w6.reshape(POOLED, POOLED, channels, -1).transpose(2, 0, 1, 3).reshape(w6.shape)
    fcs = [(np.ascontiguousarray(w6.T), fc6[1]), (np.ascontiguousarray(fc7[0].T), fc7[1])]
    return VGGWeights([(np.ascontiguousarray(w), b) for w, b in convs], fcs, "keras")


def _by_layer_name(root):
    """``root``'s layer groups by the layers' own names. Keras 3 names each group after its
    layer's class and keeps the layer's name in an attribute of its ``vars``
    (layers/conv2d_3/vars: name block2_conv2), so block1_conv1 was "not there"."""
    import h5py

    named = {}
    for key, group in root.items():
        held = group.get("vars") if isinstance(group, h5py.Group) else None
        name = held.attrs.get("name") if isinstance(held, h5py.Group) else None
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        if isinstance(name, str) and name != key and name not in root:
            named[name] = group
    if not named:
        named = _by_class_order(root)
    return {**{key: root[key] for key in root}, **named} if named else root


def _by_class_order(root) -> dict:
    """Keras 3 files of versions that kept no layer names (layers/conv2d, conv2d_1, ...,
    dense, dense_1): the layers by the order Keras numbered them in, which is VGG16's own
    order, where they are VGG16's 13 convs and 2 or 3 dense layers; else none."""

    def numbered(kind: str) -> list[str]:
        found = [k for k in root if re.fullmatch(rf"{kind}(_\d+)?", k)]
        return sorted(found, key=lambda k: int(k.rsplit("_", 1)[1]) if "_" in k[len(kind) :] else 0)

    convs, dense = numbered("conv2d"), numbered("dense")
    if len(convs) != sum(BLOCKS) or len(dense) not in (2, 3):
        return {}
    return {**dict(zip(KERAS_CONVS, (root[k] for k in convs), strict=True)),
            "fc1": root[dense[0]], "fc2": root[dense[1]]}  # fmt: skip


def _check_keras_convs(root, names: list[str], path: Path) -> None:
    """Keras names VGG19's extra convs block3_conv4 etc.: taking VGG16's 13 of them would
    build a model of the right shapes and wrong features, so count them all."""
    convs = sorted(k for k in root if re.fullmatch(r"block\d+_conv\d+", k))
    extra = [k for k in convs if k not in names]
    if extra:
        raise RtsearchError(
            f"{path}: {len(convs)} conv layers ({', '.join(extra)} beyond VGG16's), VGG16 has "
            f"{len(names)} (is this VGG19?)"
        )


def _keras_layer(root, name: str, path: Path) -> tuple[Array, Array]:
    """(kernel, bias) of one Keras layer group, whatever the dataset names' style."""
    import h5py

    if name not in root:
        if name.startswith("fc") and "block5_conv3" in root:
            raise RtsearchError(
                f"{path}: Keras VGG16 without its top (include_top=False): it has no "
                f"{name!r} layer, and the features (fc7) are the top's; use the weights file "
                "with the top"
            )
        raise RtsearchError(f"{path}: no Keras layer {name!r} (is this VGG16?)")
    if not isinstance(root[name], h5py.Group):
        raise RtsearchError(f"{path}: Keras layer {name!r} is not a group of weights")
    found: list[np.ndarray] = []
    root[name].visititems(
        lambda _n, obj: found.append(np.asarray(obj[()])) if isinstance(obj, h5py.Dataset) else None
    )
    kernels = [a for a in found if a.ndim > 1]
    biases = [a for a in found if a.ndim == 1]
    if len(kernels) != 1 or len(biases) != 1:
        raise RtsearchError(f"{path}: Keras layer {name!r} is not a kernel + bias pair")
    return _floats(kernels[0], name, path), _floats(biases[0], name, path)


def _check_shapes(path: Path, w: VGGWeights) -> None:
    if len(w.convs) != sum(BLOCKS):
        guess = {16: " (is this VGG19?)", 8: " (is this VGG11?)", 10: " (is this VGG13?)"}
        raise RtsearchError(
            f"{path}: {len(w.convs)} conv layers, VGG16 has {sum(BLOCKS)}"
            + guess.get(len(w.convs), "")
        )
    keras = w.layout == "keras"  # said as the file holds them, not as turned here
    cin = 3
    for i, (weight, bias) in enumerate(w.convs):
        if weight.ndim != 4 or weight.shape[1:] != (cin, 3, 3) or bias.shape != weight.shape[:1]:
            if keras:
                raise RtsearchError(
                    f"{path}: Keras layer {KERAS_CONVS[i]!r} has a kernel of shape "
                    f"{weight.transpose(2, 3, 1, 0).shape}, expected (3, 3, {cin}, *)"
                )
            raise RtsearchError(
                f"{path}: conv {i} has shape {weight.shape}, expected (*, {cin}, 3, 3)"
            )
        cin = weight.shape[0]
    (w6, b6), (w7, b7) = w.fcs
    if (
        w6.ndim != 2
        or w7.ndim != 2
        or w6.shape[1] != cin * POOLED * POOLED
        or w7.shape[1] != w6.shape[0]
    ):
        if keras:
            raise RtsearchError(
                f"{path}: fc1/fc2 kernels of shapes {w6.T.shape}/{w7.T.shape} do not fit VGG16 "
                f"(expected ({cin * POOLED * POOLED}, *)/({w6.shape[0]}, *))"
            )
        raise RtsearchError(f"{path}: fc6/fc7 shapes {w6.shape}/{w7.shape} do not fit VGG16")
    if b6.shape != w6.shape[:1] or b7.shape != w7.shape[:1]:
        raise RtsearchError(f"{path}: fc bias shapes do not match their weights")
    layers = [(f"conv {i}", pair) for i, pair in enumerate(w.convs)]
    for name, (weight, bias) in [*layers, ("fc6", w.fcs[0]), ("fc7", w.fcs[1])]:
        if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
            raise RtsearchError(f"{path}: {name} holds NaN or infinite weights (a damaged file)")


def vgg16_info(weights: VGGWeights, sha256: str, source: str, variant: str = "fp32") -> ModelInfo:
    if weights.layout == "keras":  # Keras "caffe" preprocessing: BGR, mean only
        order, mean, std = "BGR", (103.939, 116.779, 123.68), (1.0, 1.0, 1.0)
    else:
        order, mean, std = "RGB", (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
    return ModelInfo(
        name="vgg16",
        variant=variant,
        feature_layer="fc7",
        feature_output="features",
        dims=int(weights.fcs[1][0].shape[0]),
        input_name="input",
        input_size=(INPUT_SIZE, INPUT_SIZE),
        channel_order=order,
        mean=mean,
        std=std,
        resize="squash",
        weights_sha256=sha256,
        exporter_version=EXPORTER_VERSION,
        source=source,
    )


def build_vgg16(weights: VGGWeights, info: ModelInfo) -> onnx.ModelProto:
    g = GraphBuilder(info.input_name)
    x, layers = g.input_name, iter(weights.convs)
    for block, count in enumerate(BLOCKS, start=1):
        for conv in range(1, count + 1):
            w, b = next(layers)
            x = g.op("Relu", [g.conv(x, w, b, pads=(1, 1, 1, 1), hint=f"block{block}_conv{conv}")])
        x = g.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = g.op("Flatten", [x], axis=1)  # torchvision's adaptive pool is the identity at 224
    (w6, b6), (w7, b7) = weights.fcs
    x = g.op("Relu", [g.dense(x, w6, b6)])  # fc6 (dropout is inference-time identity)
    x = g.op("Relu", [g.dense(x, w7, b7)], info.feature_output)  # fc7 after ReLU
    return g.build((3, INPUT_SIZE, INPUT_SIZE), {info.feature_output: info.dims}, info)


def export_vgg16(
    weights: Path,
    out: Path,
    *,
    prefix: str | None = None,
    int8: bool = False,
    calib_dir: Path | None = None,
    log: Callable[[str], None] = print,
    min_cosine: float | None = None,
) -> Path:
    """Convert VGG16 weights (torchvision .pth or Keras .h5, told apart by content) to ONNX."""
    weights = Path(weights)
    if not weights.exists():
        raise RtsearchError(f"{weights}: weights file not found")
    if not weights.is_file():
        raise RtsearchError(f"{weights}: not a regular file")
    vgg = load_vgg16(weights, prefix)
    source = f"{vgg.layout} weights {weights.name}"
    digest = sha256_file(weights)
    if vgg.part:  # one file, several models: each set its own identity (its own indexes)
        source += f", set {vgg.part!r}"
        digest = hashlib.sha256(f"{digest}:{vgg.part}".encode()).hexdigest()
    info = vgg16_info(vgg, digest, source)
    log(f"vgg16: read {vgg.layout} weights from {weights} (fc7: {info.dims} dims)")
    model = build_vgg16(vgg, info)
    del vgg  # the graph holds its own copy; full-size weights are 0.5 GB
    if not int8:
        log(f"vgg16: checking the fp32 model's features, then writing it to {out}")
        return save_atomic(model, Path(out), info)
    from rtsearch.export.quantize import quantize_model

    return quantize_model(
        model, info, Path(out), calib_dir=calib_dir, log=log, min_cosine=min_cosine
    )
