"""Weights files the export tests make for themselves, without torch or Keras, and an
independent numpy VGG16 forward pass to check the exported graphs against."""

from __future__ import annotations

import collections
import pickle
import struct
import sys
import types
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

VGG_BLOCKS = (2, 2, 3, 3, 3)
STORAGE_CLASSES = {
    np.dtype("float32"): "FloatStorage",
    np.dtype("float64"): "DoubleStorage",
    np.dtype("float16"): "HalfStorage",
    np.dtype("int64"): "LongStorage",
    np.dtype("int32"): "IntStorage",
    np.dtype("uint8"): "ByteStorage",
    np.dtype("bool"): "BoolStorage",
}


# ---------------------------------------------------------------- torch files without torch


@dataclass
class TorchTensor:
    """A tensor as torch stores it: a view (offset, size, stride in elements) of a storage."""

    storage: np.ndarray  # 1-D
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    @classmethod
    def of(cls, array: np.ndarray) -> TorchTensor:
        array = np.ascontiguousarray(array)
        strides = tuple(s // array.itemsize for s in array.strides)
        return cls(array.reshape(-1), 0, array.shape, strides)


@contextmanager
def _fake_torch() -> Iterator[types.SimpleNamespace]:
    """Stand-in modules so pickle writes GLOBAL torch._utils._rebuild_tensor_v2 and
    torch.FloatStorage exactly as torch.save does; the real torch, if any, is put back."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # never called: only its name is pickled
        raise AssertionError("fake")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    classes = {}
    for name in STORAGE_CLASSES.values():
        classes[name] = type(name, (), {"__module__": "torch"})
        setattr(torch, name, classes[name])
    torch._utils = utils
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        yield types.SimpleNamespace(rebuild=_rebuild_tensor_v2, storages=classes)
    finally:
        for key, module in saved.items():
            if module is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = module


class _Reduced:
    def __init__(self, func, args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _pickle_tensors(tensors: dict, legacy: bool) -> tuple[bytes, dict[str, np.ndarray]]:
    """data.pkl bytes for an OrderedDict of tensors, plus the storages by key."""
    import io

    storages: dict[int, tuple[str, np.ndarray]] = {}
    with _fake_torch() as fake:

        class Pickler(pickle.Pickler):
            def persistent_id(self, obj):
                if not isinstance(obj, np.ndarray):
                    return None
                key, _ = storages.setdefault(id(obj), (str(len(storages)), obj))
                kind = fake.storages[STORAGE_CLASSES[obj.dtype]]
                pid = ("storage", kind, key, "cpu", obj.size)
                return (*pid, None) if legacy else pid

        def pickled(value):  # arrays as tensors, dicts within, anything else as it is
            if isinstance(value, dict):
                return collections.OrderedDict((k, pickled(v)) for k, v in value.items())
            if not isinstance(value, (np.ndarray, TorchTensor, list)):
                return value
            t = value if isinstance(value, TorchTensor) else TorchTensor.of(np.asarray(value))
            args = (t.storage, t.offset, t.size, t.stride, False, collections.OrderedDict())
            return _Reduced(fake.rebuild, args)

        state = pickled(tensors)
        buf = io.BytesIO()
        Pickler(buf, protocol=2).dump(state)
    return buf.getvalue(), {key: arr for key, arr in storages.values()}


def write_torch_pth(path: Path, tensors: dict, *, legacy: bool = False) -> Path:
    """Write ``tensors`` (name -> array or TorchTensor) as torch.save would: the zip layout,
    or with ``legacy`` the pre-1.6 stream of pickles followed by raw storages."""
    data, storages = _pickle_tensors(tensors, legacy)
    raw = {
        k: np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")) for k, a in storages.items()
    }
    if not legacy:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr("archive/data.pkl", data)
            zf.writestr("archive/byteorder", "little")
            for key, arr in raw.items():
                zf.writestr(f"archive/data/{key}", arr.tobytes())
            zf.writestr("archive/version", "3\n")
        return path
    with open(path, "wb") as f:
        for header in (
            0x1950A86A20F9469CFC6C,
            1001,
            {"protocol_version": 1001, "little_endian": True},
        ):
            pickle.dump(header, f, protocol=2)
        f.write(data)
        pickle.dump(list(raw), f, protocol=2)
        for arr in raw.values():
            f.write(struct.pack("<q", arr.size) + arr.tobytes())
    return path


# ---------------------------------------------------------------- VGG16-shaped weights


def vgg_weights(
    widths: tuple[int, ...] = (4, 4, 6, 8, 8), fc: int = 64, seed: int = 0
) -> dict[str, np.ndarray]:
    """Random torchvision-layout VGG16 state dict (He init, so activations neither vanish
    nor explode over 15 layers); ``widths`` per block, fc6/fc7 of ``fc`` units."""
    rng = np.random.default_rng(seed)
    sd: dict[str, np.ndarray] = {}
    cin, index = 3, 0
    for width, count in zip(widths, VGG_BLOCKS, strict=True):
        for _ in range(count):
            sd[f"features.{index}.weight"] = _he(rng, (width, cin, 3, 3), cin * 9)
            sd[f"features.{index}.bias"] = (rng.standard_normal(width) * 0.1).astype(np.float32)
            cin, index = width, index + 2
        index += 1  # the max-pool's slot in torchvision's Sequential
    for slot, (n_in, n_out) in zip((0, 3, 6), ((cin * 49, fc), (fc, fc), (fc, 10)), strict=True):
        sd[f"classifier.{slot}.weight"] = _he(rng, (n_out, n_in), n_in)
        sd[f"classifier.{slot}.bias"] = (rng.standard_normal(n_out) * 0.1).astype(np.float32)
    return sd


def _he(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    w = rng.standard_normal(shape, dtype=np.float32)
    w *= np.float32(np.sqrt(2.0 / fan_in))
    return w


def keras_layers(sd: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The same network in Keras layout: HWIO kernels, (in, out) dense kernels, and fc1's
    rows in channels-last (H, W, C) flatten order."""
    convs = sorted(
        (k for k in sd if k.startswith("features.") and k.endswith(".weight")),
        key=lambda k: int(k.split(".")[1]),
    )
    names = [f"block{b + 1}_conv{c + 1}" for b, n in enumerate(VGG_BLOCKS) for c in range(n)]
    layers = {}
    for name, key in zip(names, convs, strict=True):
        layers[name] = (sd[key].transpose(2, 3, 1, 0), sd[key.replace("weight", "bias")])
    w6 = sd["classifier.0.weight"]  # (out, C*7*7) in C, H, W order
    channels = w6.shape[1] // 49
    w6_hwc = w6.reshape(-1, channels, 7, 7).transpose(0, 2, 3, 1).reshape(w6.shape)
    layers["fc1"] = (np.ascontiguousarray(w6_hwc.T), sd["classifier.0.bias"])
    layers["fc2"] = (np.ascontiguousarray(sd["classifier.3.weight"].T), sd["classifier.3.bias"])
    layers["predictions"] = (sd["classifier.6.weight"].T, sd["classifier.6.bias"])
    return layers


def write_keras_h5(path: Path, layers: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """A Keras 2 ``save_weights`` style file: one group per layer, attrs naming them."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode() for n in ["input_1", *layers]]
        f.attrs["backend"] = b"tensorflow"
        f.create_group("input_1").attrs["weight_names"] = []
        for name, (kernel, bias) in layers.items():
            group = f.create_group(name)
            group.attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
            inner = group.create_group(name)
            inner["kernel:0"] = kernel
            inner["bias:0"] = bias
    return path


# ---------------------------------------------------------------- numpy reference forward


def conv3x3_hwc(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """'Same' 3x3 cross-correlation by im2col: x (H, W, C), kernel HWIO (3, 3, C, O)."""
    h, w, c = x.shape
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    cols = np.stack([padded[i : i + h, j : j + w] for i in range(3) for j in range(3)], axis=2)
    return cols.reshape(h * w, 9 * c) @ kernel.reshape(9 * c, -1) + bias


def vgg_fc7_reference(
    image_hwc: np.ndarray,
    kernels: list[tuple[np.ndarray, np.ndarray]],
    fcs: list[tuple[np.ndarray, np.ndarray]],
    flatten: str,
) -> np.ndarray:
    """fc7 (after ReLU) of one preprocessed (H, W, 3) image; HWIO conv kernels, (in, out)
    dense kernels; ``flatten`` "chw" (torch) or "hwc" (Keras) decides fc6's input order."""
    x = image_hwc.astype(np.float64)
    layers = iter(kernels)
    for count in VGG_BLOCKS:
        for _ in range(count):
            k, b = next(layers)
            x = np.maximum(conv3x3_hwc(x, k, b).reshape(*x.shape[:2], -1), 0)
        h, w, c = x.shape
        x = x.reshape(h // 2, 2, w // 2, 2, c).max(axis=(1, 3))
    x = (x.transpose(2, 0, 1) if flatten == "chw" else x).reshape(-1)
    for k, b in fcs:
        x = np.maximum(x @ k + b, 0)
    return x


def torch_reference(image_hwc: np.ndarray, sd: dict[str, np.ndarray]) -> np.ndarray:
    convs = sorted(
        (k for k in sd if k.startswith("features.") and k.endswith(".weight")),
        key=lambda k: int(k.split(".")[1]),
    )
    kernels = [(sd[k].transpose(2, 3, 1, 0), sd[k.replace("weight", "bias")]) for k in convs]
    fcs = [(sd[f"classifier.{i}.weight"].T, sd[f"classifier.{i}.bias"]) for i in (0, 3)]
    return vgg_fc7_reference(image_hwc, kernels, fcs, "chw")


def keras_reference(image_hwc: np.ndarray, layers: dict) -> np.ndarray:
    kernels = [v for k, v in layers.items() if k.startswith("block")]
    return vgg_fc7_reference(image_hwc, kernels, [layers["fc1"], layers["fc2"]], "hwc")
