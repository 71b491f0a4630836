"""One ONNX model as a callable: RGB images in, float32 feature rows out.

Preprocessing is a pure function of the model's metadata (input size, channel order, mean,
std, resize policy); nothing about a particular backbone is hard-coded here.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rtsearch.decode import RGBImage, resize_to
from rtsearch.errors import RtsearchError, first_line
from rtsearch.models import ModelInfo, check_graph, refuse_non_model

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


def cores() -> int:
    """The cores this process may run on (``taskset``, a container's cpuset), not the
    machine's: under `taskset -c 0` two streams shared one core, 6.9 s against 6.3."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # (not on Windows or macOS)
        return os.cpu_count() or 1


def default_providers() -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        _warn_shadowed_gpu_package()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


@functools.cache
def _warn_shadowed_gpu_package() -> None:
    """onnxruntime and onnxruntime-gpu install the same module; with both present the CPU
    build can win, and CUDA is silently unused. Say so once, with the fix."""
    from importlib import metadata

    try:
        metadata.version("onnxruntime-gpu")
        metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:
        return
    print(
        "rtsearch: onnxruntime-gpu is installed but the CPU-only onnxruntime package hides "
        "its CUDA provider; fix: pip uninstall -y onnxruntime && "
        "pip install --force-reinstall --no-deps onnxruntime-gpu",
        file=sys.stderr,
    )


@functools.cache
def _preload_cuda_libraries() -> None:
    """Let onnxruntime-gpu find CUDA and cuDNN from pip's nvidia-* packages (or PyTorch's),
    not only from the system library path. Once per process; quiet when nothing is found,
    since the session's own error then says what is missing."""
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)  # onnxruntime >= 1.21
    if preload is not None:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(Exception):
            preload()


class Extractor:
    """Holds one onnxruntime session; ``extractor(images)`` returns (N, D) float32.

    ``threads``: CPU threads in all (0: every core). ``streams``: how many ``run`` calls the
    caller makes at once, each on ``threads // streams`` intra-op threads; 0 picks one
    stream per thread on the CPU up to MAX_AUTO_STREAMS (one on a GPU). One stream suits a
    live query (lowest latency); bulk analysis wants several: on 2 cores two single-threaded
    runs beat one two-threaded run (EfficientNet-Lite0 int8: ~440 vs ~395 images/s), and
    keep both cores busy while decode threads come and go, where a two-threaded run waits at
    every operator for the core a decoder holds. The cap keeps the activation memory of
    concurrent batches bounded on many-core machines (4 streams of 4 threads on 16 cores).

    On CUDA (or TensorRT) ``run`` uses IO binding: each thread copies its batch into one
    device buffer it keeps per batch shape. On an H200 that measured within noise of the
    plain run (0.94-1.06x, `rtsearch bench`); ``bind=False`` runs the plain way."""

    def __init__(
        self,
        model_path: Path,
        *,
        providers: Sequence[str] | None = None,
        threads: int = 0,
        streams: int = 1,
        bind: bool = True,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(model_path)
        providers = list(providers or default_providers())
        if "CUDAExecutionProvider" in providers:
            _preload_cuda_libraries()
        total = threads if threads > 0 else cores()
        on_cpu = providers[0] == "CPUExecutionProvider"
        auto = min(total, MAX_AUTO_STREAMS) if on_cpu else 1
        self.streams = auto if streams == 0 else max(1, streams)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = (
            threads if self.streams == 1 else max(1, total // self.streams)
        )
        # intra-op threads of each run (0: onnxruntime's own choice, every core)
        self.threads_per_stream = options.intra_op_num_threads
        options.log_severity_level = 3
        # Idle intra-op threads must not spin: on 2 cores they starve the decode pool and the
        # GUI. Measured side by side in analyze (rtsearch bench, shared machine): 640x480
        # JPEGs 74-157 vs 33-59 images/s, 12 MP JPEGs 67-70 vs 59-64 images/s.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        refuse_non_model(self.path)  # onnxruntime: "No graph was found in the protobuf"
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:
            if "INVALID_PROTOBUF" in str(exc):  # cut short or overwritten
                raise RtsearchError(
                    f"{self.path}: a damaged or truncated model file (it does not parse as "
                    "ONNX); export it again"
                ) from None
            raise RtsearchError(f"{self.path}: cannot load model ({first_line(exc)})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.info = ModelInfo.from_props(meta, where=str(self.path))
        check_graph(
            self.info,
            {i.name: i.shape for i in self.session.get_inputs()},
            {o.name: o.shape for o in self.session.get_outputs()},
            str(self.path),
        )
        used = self.session.get_providers()[0]
        self.provider = used.replace("ExecutionProvider", "")
        on_device = used in ("CUDAExecutionProvider", "TensorrtExecutionProvider")
        device_id = int(self.session.get_provider_options().get(used, {}).get("device_id", 0))
        self._device = ("cuda", device_id) if on_device else ("cpu", 0)
        self.bound = bind and on_device  # settable: tests bind on the CPU too
        self._local = threading.local()  # per thread: IO binding and its device input buffer

    @property
    def on_cpu(self) -> bool:
        """Whether the session runs on the CPU provider (else an accelerator: larger
        batches, padded to one shape)."""
        return self.provider == "CPU"

    @property
    def dims(self) -> int:
        return self.info.dims

    def run(self, batch: npt.NDArray[np.float32]) -> Features:
        """Run an already preprocessed (N, 3, H, W) batch."""
        if self.bound:
            out = self._run_bound(batch)
        else:
            (out,) = self.session.run([self.info.feature_output], {self.info.input_name: batch})
        feats = np.asarray(out, dtype=np.float32).reshape(len(batch), -1)
        if feats.shape[1] != self.info.dims:
            raise RtsearchError(
                f"{self.path}: the model gives {feats.shape[1]} values per image, its metadata "
                f"says dims {self.info.dims}"
            )
        if not np.isfinite(feats).all():  # damaged weights; an index must never hold these
            raise RtsearchError(f"{self.path}: the model gives NaN or infinite features")
        return feats

    def _run_bound(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        import onnxruntime as ort

        local = self._local
        if getattr(local, "shape", None) != batch.shape:
            kind, device_id = self._device
            local.input = ort.OrtValue.ortvalue_from_shape_and_type(
                batch.shape, np.float32, kind, device_id
            )
            local.binding = self.session.io_binding()
            local.binding.bind_ortvalue_input(self.info.input_name, local.input)
            local.binding.bind_output(self.info.feature_output, kind, device_id)
            local.shape = batch.shape
        local.input.update_inplace(np.ascontiguousarray(batch, dtype=np.float32))
        self.session.run_with_iobinding(local.binding)
        return local.binding.copy_outputs_to_cpu()[0]

    def __call__(self, images: Sequence[RGBImage], pad_to: int = 0) -> Features:
        """``pad_to``: run a shorter list as a batch of that many (blank images added, their
        rows dropped). On CUDA every new batch shape costs a cuDNN algorithm search (1.4 s
        for EfficientNet-Lite0 on an H200), so bulk analysis keeps to one shape."""
        if not images:
            return np.zeros((0, self.dims), dtype=np.float32)
        batch = preprocess(images, self.info)
        if pad_to > len(batch):
            blank = np.zeros((pad_to - len(batch), *batch.shape[1:]), dtype=np.float32)
            return self.run(np.concatenate([batch, blank]))[: len(images)]
        return self.run(batch)
