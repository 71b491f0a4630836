"""Small helpers to write an ONNX graph straight from numpy weights, and to save it safely."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from rtsearch.models import ModelInfo

OPSET = 17  # QDQ per-channel quantisation needs >= 13; 17 is widely supported
IR_VERSION = 8
EXPORTER_VERSION = "1"


class GraphBuilder:
    """Accumulates nodes and float32 initializers; every helper returns its output's name."""

    def __init__(self, input_name: str = "input") -> None:
        self.input_name = input_name
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, array: npt.ArrayLike, hint: str) -> str:
        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], out: str | None = None, **attrs: Any) -> str:
        out = out or self._name(op_type.lower())
        # Nodes are named after their output so quantisation can include/exclude them by name.
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def conv(
        self,
        x: str,
        weight: npt.NDArray[np.float32],
        bias: npt.NDArray[np.float32],
        *,
        stride: int = 1,
        pads: Sequence[int] = (0, 0, 0, 0),
        group: int = 1,
        hint: str = "conv",
    ) -> str:
        """weight (O, I/group, kH, kW); pads (top, left, bottom, right) as ONNX wants them.
        ``hint`` starts the node's name (quantisation selects nodes by name)."""
        w = self.const(weight.astype(np.float32, copy=False), "w")
        b = self.const(bias.astype(np.float32, copy=False), "b")
        kernel = list(weight.shape[2:])
        return self.op(
            "Conv",
            [x, w, b],
            self._name(hint),
            kernel_shape=kernel,
            strides=[stride, stride],
            pads=list(pads),
            group=group,
        )

    def dense(
        self,
        x: str,
        weight: npt.NDArray[np.float32],
        bias: npt.NDArray[np.float32],
        out: str | None = None,
    ) -> str:
        """weight (out_features, in_features), as torch.nn.Linear stores it."""
        w = self.const(weight.astype(np.float32, copy=False), "w")
        b = self.const(bias.astype(np.float32, copy=False), "b")
        return self.op("Gemm", [x, w, b], out, transB=1)

    def relu6(self, x: str) -> str:
        """Clip(x, 0, 6), named after its input's block ("b1_dw_24" -> "b1_dw_relu6_25"),
        so excluding a block from quantisation by name keeps its activations in fp32 too."""
        lo = self.const(np.array(0.0, np.float32), "zero")
        hi = self.const(np.array(6.0, np.float32), "six")
        return self.op("Clip", [x, lo, hi], self._name(x.rsplit("_", 1)[0] + "_relu6"))

    def build(
        self, input_chw: tuple[int, int, int], outputs: dict[str, int], info: ModelInfo
    ) -> onnx.ModelProto:
        """Finish the model: dynamic batch, named (N, D) outputs, rtsearch metadata."""
        inputs = [
            helper.make_tensor_value_info(self.input_name, TensorProto.FLOAT, ["batch", *input_chw])
        ]
        outs = [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", dims])
            for name, dims in outputs.items()
        ]
        graph = helper.make_graph(self.nodes, info.name, inputs, outs, self.initializers)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="rtsearch.export",
            producer_version=EXPORTER_VERSION,
        )
        model.ir_version = IR_VERSION
        helper.set_model_props(model, info.to_props())
        onnx.checker.check_model(model)
        return model


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_atomic(model: onnx.ModelProto, out: Path, info: ModelInfo | None = None) -> Path:
    """Write next to ``out`` then rename, so readers never see a half-written model; as an
    index is written (a symlink's target is replaced, the link kept). With ``info``, the
    written file's features are checked first (checks.check_features): a refused model
    never replaces ``out``."""
    from rtsearch.atomic import atomic_path
    from rtsearch.export.checks import check_features, check_room

    out = Path(out)
    check_room(out, model.ByteSize() + (1 << 20), "this model")
    with atomic_path(out) as tmp:
        onnx.save(model, str(tmp))
        if info is not None:
            check_features(tmp, info, out)
    return out
