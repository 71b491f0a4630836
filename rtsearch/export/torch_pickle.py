"""Read PyTorch ``.pth`` state dicts into numpy arrays without torch, and without running code.

A ``.pth`` file is a pickle, and unpickling runs whatever callables the file names. This
unpickler resolves only the handful of globals a state dict needs (OrderedDict, the tensor
rebuild functions, storage types); every other name a checkpoint holds (its training
arguments, a numpy scalar) resolves to an inert stand-in, so nothing of it is imported or
called, and its value is dropped.
Both layouts torch writes are read: the zip archive (torch >= 1.6) and the legacy stream of
pickles followed by raw storages. Tensors come out bit-identical to ``torch.load``.
"""

from __future__ import annotations

import collections
import pickle
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from rtsearch.errors import RtsearchError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
# bfloat16 has no numpy dtype: it is read as uint16 and widened to float32 (exact).
_STORAGE_DTYPES = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "BFloat16Storage": "<u2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}
_REBUILDERS = {"_rebuild_tensor_v2", "_rebuild_parameter"}


# slots (and frozen where possible) so a pickle's BUILD opcode cannot rewrite these objects
# fields after they were validated; _materialise re-checks types all the same.
@dataclass(frozen=True, slots=True)
class _StorageType:
    name: str


@dataclass(slots=True)
class _Storage:
    kind: _StorageType
    key: str
    numel: int
    data: npt.NDArray[Any] | None = None


@dataclass(frozen=True, slots=True)
class _LazyTensor:
    """A tensor whose storage bytes may not be read yet (legacy files put them last)."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(
    storage: Any, offset: Any, size: Any, stride: Any, *_ignored: Any
) -> _LazyTensor:
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("tensor without a storage")
    return _LazyTensor(storage, int(offset), tuple(map(int, size)), tuple(map(int, stride)))


def _rebuild_parameter(data: Any, *_ignored: Any) -> Any:
    return data  # a Parameter is its tensor plus requires_grad, which we do not keep


class _Foreign:
    """What any other name a checkpoint holds resolves to (``argparse.Namespace``, a numpy
    scalar, a class of the training code, ``os.system`` in a hostile file): whatever the
    pickle calls it with, fills it with or sets on it is dropped. One such object refused
    the whole checkpoint ("refusing to unpickle argparse.Namespace"), its weights and all."""

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        pass

    def __setstate__(self, _state: Any) -> None:
        pass

    def __setitem__(self, _key: Any, _value: Any) -> None:
        pass

    def append(self, _value: Any) -> None:
        pass

    def extend(self, _values: Any) -> None:
        pass

    def add(self, _value: Any) -> None:
        pass


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, foreign: set[str] | None = None) -> None:
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}
        self.foreign = set() if foreign is None else foreign  # the names stood in for

    def find_class(self, module: str, name: str) -> Any:
        # Everything a malicious pickle could call passes through here first.
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in _REBUILDERS:
            return {"_rebuild_tensor_v2": _rebuild_tensor_v2}.get(name, _rebuild_parameter)
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        self.foreign.add(f"{module}.{name}")
        return _Foreign

    def persistent_load(self, pid: Any) -> _Storage:
        # zip: ('storage', type, key, location, numel); legacy adds view_metadata.
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.60}")
        kind, key, numel = pid[1], str(pid[2]), int(pid[4])
        if not isinstance(kind, _StorageType):
            raise pickle.UnpicklingError("persistent id without a storage type")
        if len(pid) == 6 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views (torch < 0.4 files) are not supported")
        return self.storages.setdefault(key, _Storage(kind, key, numel))


class _Truncated(pickle.UnpicklingError):
    """The file ends inside a tensor's data (a download or copy cut short)."""


def load_state_dict(path: Path) -> dict[str, npt.NDArray[Any]]:
    """Tensors of a ``.pth`` file by name; nested containers are flattened with dots."""
    path = Path(path)
    foreign: set[str] = set()
    try:
        if zipfile.is_zipfile(path):
            obj = _load_zip(path, foreign)
        elif _zip_start(path):  # a zip whose end (the directory) is missing
            raise RtsearchError(f"{path}: truncated or damaged (a zip file without its end)")
        else:
            with open(path, "rb") as f:
                obj = _load_legacy(f, foreign)
        tensors = dict(_flatten(obj, ""))
    except RtsearchError:
        raise
    except _Truncated as exc:
        raise RtsearchError(f"{path}: truncated or damaged ({exc})") from None
    except (EOFError, struct.error):  # pickle's "Ran out of input", a short size field
        raise RtsearchError(f"{path}: truncated or damaged (the file ends early)") from None
    except zipfile.BadZipFile as exc:  # e.g. "Bad CRC-32 for file 'x/data/26'"
        raise RtsearchError(f"{path}: a damaged PyTorch weights file ({exc})") from None
    except OSError as exc:
        raise RtsearchError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # truncated or foreign data raises many types
        raise RtsearchError(f"{path}: not a PyTorch weights file ({exc})") from None
    if not tensors:
        held = ""
        if foreign:  # (a whole model pickled: its layers' classes, not a state dict)
            names = sorted(foreign)
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            held = (
                f" (only objects of {shown}, which are not read: a whole pickled model? "
                "torch.save its state_dict())"
            )
        raise RtsearchError(f"{path}: no tensors in this PyTorch file{held}")
    return tensors


def _zip_start(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def _load_zip(path: Path, foreign: set[str]) -> Any:
    with zipfile.ZipFile(path) as zf:
        pkl = next((n for n in zf.namelist() if n.endswith("data.pkl")), None)
        if pkl is None:
            raise pickle.UnpicklingError("zip archive without data.pkl")
        prefix = pkl[: -len("data.pkl")]
        if prefix + "byteorder" in zf.namelist() and zf.read(prefix + "byteorder") != b"little":
            raise pickle.UnpicklingError("big-endian tensors are not supported")
        unpickler = _RestrictedUnpickler(zf.open(pkl), foreign)
        obj = unpickler.load()
        for storage in unpickler.storages.values():
            _fill(storage, zf.read(f"{prefix}data/{storage.key}"))
    return obj


def _load_legacy(f: BinaryIO, foreign: set[str]) -> Any:
    # Header pickles hold only ints, strings and dicts, so they go through the same gate.
    if _RestrictedUnpickler(f).load() != LEGACY_MAGIC:
        raise pickle.UnpicklingError("no torch magic number")
    try:
        return _load_legacy_rest(f, foreign)
    except (EOFError, struct.error, pickle.UnpicklingError) as exc:
        if isinstance(exc, pickle.UnpicklingError) and "truncated" not in str(exc):
            raise
        # a torch file (its magic number read) that ends early: pickle's "pickle data was
        # truncated" named no torch file
        raise _Truncated("the file ends early") from None


def _load_legacy_rest(f: BinaryIO, foreign: set[str]) -> Any:
    if _RestrictedUnpickler(f).load() != LEGACY_PROTOCOL:
        raise pickle.UnpicklingError("unknown torch legacy protocol")
    sys_info = _RestrictedUnpickler(f).load()
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise pickle.UnpicklingError("big-endian tensors are not supported")
    unpickler = _RestrictedUnpickler(f, foreign)
    obj = unpickler.load()
    keys = _RestrictedUnpickler(f).load()
    for key in keys:
        storage = unpickler.storages[str(key)]
        (numel,) = struct.unpack("<q", f.read(8))
        itemsize = np.dtype(_STORAGE_DTYPES[storage.kind.name]).itemsize
        _fill(storage, f.read(numel * itemsize))
    return obj


def _fill(storage: _Storage, raw: bytes) -> None:
    dtype = np.dtype(_STORAGE_DTYPES[storage.kind.name])
    if len(raw) < storage.numel * dtype.itemsize:
        # (not its key: in a legacy file, a number that says nothing to the user)
        raise _Truncated(
            f"a tensor's data ends early: {len(raw)} of its {storage.numel * dtype.itemsize} bytes"
        )
    storage.data = np.frombuffer(raw, dtype=dtype, count=storage.numel)


def _materialise(t: _LazyTensor) -> npt.NDArray[Any]:
    data = t.storage.data if isinstance(t.storage, _Storage) else None
    if not isinstance(data, np.ndarray):
        raise pickle.UnpicklingError("tensor storage has no data")
    geometry = (t.offset, *t.size, *t.stride)
    if len(t.size) != len(t.stride) or not all(type(v) is int and v >= 0 for v in geometry):
        raise pickle.UnpicklingError("malformed tensor geometry")
    if 0 in t.size:
        return np.zeros(t.size, dtype=data.dtype)
    # Bounds check before as_strided, which would otherwise read past the buffer.
    last = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride, strict=True))
    if last >= data.size:
        raise pickle.UnpicklingError("tensor reaches past its storage")
    strides = tuple(s * data.itemsize for s in t.stride)
    view = np.lib.stride_tricks.as_strided(data[t.offset :], t.size, strides, writeable=False)
    out = np.array(view, dtype=data.dtype.newbyteorder("="), order="C")
    if t.storage.kind.name == "BFloat16Storage":
        out = (out.astype(np.uint32) << 16).view(np.float32)
    return out


def _flatten(obj: Any, prefix: str) -> Iterator[tuple[str, npt.NDArray[Any]]]:
    if isinstance(obj, _LazyTensor):
        yield prefix.rstrip("."), _materialise(obj)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _flatten(value, f"{prefix}{key}.")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _flatten(value, f"{prefix}{i}.")
