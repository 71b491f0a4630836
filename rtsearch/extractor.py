"""One ONNX model as a callable: RGB images in, float32 feature rows out.

Preprocessing is a pure function of the model's metadata (input size, channel order, mean,
std, resize policy); nothing about a particular backbone is hard-coded here.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rtsearch.decode import RGBImage, resize_to
from rtsearch.errors import RtsearchError
from rtsearch.models import ModelInfo

Features = npt.NDArray[np.float32]  # (N, D)
MAX_AUTO_STREAMS = 4  # concurrent inference runs chosen by streams=0 (see Extractor)


def fit_to_input(image: RGBImage, info: ModelInfo) -> RGBImage:
    """Apply the model's resize policy; the result has exactly info.input_size."""
    if info.resize != "squash":
        raise RtsearchError(f"model {info.name}: unknown resize policy {info.resize!r}")
    return resize_to(image, info.input_size)


def preprocess(images: Sequence[RGBImage], info: ModelInfo) -> npt.NDArray[np.float32]:
    """RGB uint8 images (any size) -> (N, 3, H, W) float32 normalised per the metadata.

    Pixels are 8-bit, so normalisation is a lookup: one gather per channel straight into the
    channel-first batch, bit-identical to (float32(v) - mean) / std and 0.55 -> 0.23 ms per
    224x224 image here (the float convert, subtract, divide and transpose took four passes).
    """
    h, w = info.input_size
    table = _normalise_table(tuple(info.mean), tuple(info.std))
    sources = (2, 1, 0) if info.channel_order == "BGR" else (0, 1, 2)
    batch = np.empty((len(images), 3, h, w), dtype=np.float32)
    for i, image in enumerate(images):
        image = fit_to_input(image, info)
        for c, src in enumerate(sources):
            np.take(table[c], image[:, :, src], out=batch[i, c])
    return batch


@functools.lru_cache(maxsize=8)
def _normalise_table(mean: tuple[float, ...], std: tuple[float, ...]) -> npt.NDArray[np.float32]:
    """(3, 256): the model's input value for each 8-bit level, per input channel."""
    levels = np.arange(256, dtype=np.float32)[None, :]
    table = (levels - np.asarray(mean, np.float32)[:, None]) / np.asarray(std, np.float32)[:, None]
    return np.ascontiguousarray(table, dtype=np.float32)


def default_providers() -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


class Extractor:
    """Holds one onnxruntime session; ``extractor(images)`` returns (N, D) float32.

    ``threads``: CPU threads in all (0: every core). ``streams``: how many ``run`` calls the
    caller makes at once, each on ``threads // streams`` intra-op threads; 0 picks one
    stream per thread on the CPU up to MAX_AUTO_STREAMS (one on a GPU). One stream suits a
    live query (lowest latency); bulk analysis wants several: on 2 cores two single-threaded
    runs beat one two-threaded run (EfficientNet-Lite0 int8: ~440 vs ~395 images/s), and
    keep both cores busy while decode threads come and go, where a two-threaded run waits at
    every operator for the core a decoder holds. The cap keeps the activation memory of
    concurrent batches bounded on many-core machines (4 streams of 4 threads on 16 cores)."""

    def __init__(
        self,
        model_path: Path,
        *,
        providers: Sequence[str] | None = None,
        threads: int = 0,
        streams: int = 1,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(model_path)
        providers = list(providers or default_providers())
        total = threads if threads > 0 else (os.cpu_count() or 1)
        on_cpu = providers[0] == "CPUExecutionProvider"
        auto = min(total, MAX_AUTO_STREAMS) if on_cpu else 1
        self.streams = auto if streams == 0 else max(1, streams)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = (
            threads if self.streams == 1 else max(1, total // self.streams)
        )
        options.log_severity_level = 3
        # Idle intra-op threads must not spin: on 2 cores they starve the decode pool and the
        # GUI. Measured side by side in analyze (rtsearch bench, shared machine): 640x480
        # JPEGs 74-157 vs 33-59 images/s, 12 MP JPEGs 67-70 vs 59-64 images/s.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if not self.path.is_file():
            raise RtsearchError(f"{self.path}: model file not found")
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:
            raise RtsearchError(f"{self.path}: cannot load model ({exc})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.info = ModelInfo.from_props(meta, where=str(self.path))
        self.provider = self.session.get_providers()[0].replace("ExecutionProvider", "")
        self.last_ms = 0.0

    @property
    def dims(self) -> int:
        return self.info.dims

    def run(self, batch: npt.NDArray[np.float32]) -> Features:
        """Run an already preprocessed (N, 3, H, W) batch."""
        start = time.perf_counter()
        (out,) = self.session.run([self.info.feature_output], {self.info.input_name: batch})
        self.last_ms = (time.perf_counter() - start) * 1000.0
        return np.asarray(out, dtype=np.float32).reshape(len(batch), -1)

    def __call__(self, images: Sequence[RGBImage]) -> Features:
        if not images:
            return np.zeros((0, self.dims), dtype=np.float32)
        return self.run(preprocess(images, self.info))
