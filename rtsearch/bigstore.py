"""Loading large indexes without copying their vectors: ``/projected`` memory-mapped.

``store.save`` writes ``/projected`` as one contiguous, uncompressed HDF5 dataset, so its
bytes sit at a fixed offset in the file and numpy can map them directly. A 10M x 100
float32 index is 4 GB: mapped, it lives once in the page cache (shared, evictable) instead
of being read into the process, and the ANN backend never needs a second private copy.
Anything not mappable (chunked, compressed, big-endian) falls back to ``store.load``.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt

from rtsearch import store
from rtsearch.errors import RtsearchError
from rtsearch.store import Index

# Small indexes are simply read: a map would keep the file open (blocking its atomic
# replacement on Windows) for no gain.
MAP_MIN_BYTES = 256 << 20


def mapped_dataset(path: Path, name: str) -> npt.NDArray | None:
    """A read-only memmap of dataset ``name`` in HDF5 file ``path``, or None when its
    storage is not one contiguous little-endian block (chunked, compressed, empty)."""
    try:
        with h5py.File(path, "r") as f:
            ds = f.get(name, getlink=True)
            if not isinstance(ds, h5py.HardLink) or not isinstance(f[name], h5py.Dataset):
                return None  # soft and external links are refused by the full loader
            ds = f[name]
            offset = ds.id.get_offset()
            if offset is None or ds.chunks is not None or ds.dtype.byteorder == ">":
                return None
            if ds.external or ds.is_virtual or offset + ds.nbytes > Path(path).stat().st_size:
                return None
            shape, dtype = ds.shape, ds.dtype
    except Exception:  # unreadable or damaged: the full loader words the refusal
        return None
    if not shape or 0 in shape:
        return None
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)


def load(path: Path, *, features: bool = False, isolate: bool = True) -> Index:
    """``store.load`` with ``projected`` (and ``features`` when asked) memory-mapped.

    Validation is the store's own (format, version, model, local storage, path safety,
    shapes); the big arrays are then mapped and checked for finiteness in blocks, so a
    malformed file is still refused with one line naming it. With ``isolate`` the file is
    first read so in a child process (``store.probe``): finding what can be mapped opens
    the file with the HDF5 library, which a damaged file can crash or hang."""
    path = Path(path)
    if not path.is_file():
        return store.load(path, features=features)  # it words the refusal
    if isolate:
        store.probe(path, features, mapped=True)
    return _load(path, features, scan=True)


def probe_read(path: Path, features: bool) -> None:
    """What ``store.probe(mapped=True)`` runs in its child: everything the HDF5 library
    reads for ``load``. Not the finiteness scan of the mapped arrays, which touches no HDF5
    code, and which the caller does anyway: read twice, a 4 GB index on a slow disk would
    take twice as long, and could pass the probe's deadline."""
    _load(Path(path), features, scan=False)


def _load(path: Path, features: bool, *, scan: bool) -> Index:
    projected = mapped_dataset(path, "projected")
    if projected is None or projected.dtype != np.float32 or projected.nbytes < MAP_MIN_BYTES:
        return store.load(path, features=features, isolate=False)
    index = _read(path, lambda f: _read_small(f, str(path)))
    assert index.projection is not None
    want = (index.count, index.projection.out_dims)
    index.projected = _checked_map(projected, path, "projected", want, scan)
    if features:
        index.features = _features(path, index, scan)
    return index


def _features(path: Path, index: Index, scan: bool) -> npt.NDArray[np.float32] | None:
    """The stored features, memory-mapped when contiguous, else read (only them: the rest is
    in hand), shape- and finiteness-checked either way; None when the file has none."""
    want = (index.count, index.model.feature_dims)
    mapped = mapped_dataset(path, "features")
    if mapped is not None and mapped.dtype == np.float32:
        return _checked_map(mapped, path, "features", want, scan)
    return _read(
        path,
        lambda f: (
            store._dataset(f, "features", str(path), want, finite=True) if "features" in f else None
        ),
    )


_read = store.read_with  # one wording of an unreadable file with store.load's


def _checked_map(
    array: np.memmap, path: Path, name: str, want: tuple[int, int], scan: bool = True
) -> np.memmap:
    """A mapped dataset of the expected shape and (``scan``) finite throughout, or one
    refusing line."""
    if array.shape != want:
        raise RtsearchError(f"{path}: {name} has shape {array.shape}, expected {want}")
    if scan:
        check_finite(array, f"{path}: {name}")
        _read(
            path, lambda f: store.check_crc(f, array, f[name].attrs.get(store.CRC), str(path), name)
        )
    return array


def _read_small(f: h5py.File, where: str) -> Index:
    """Everything but the big arrays, through the store's validators."""
    _, model, paths = store._read_head(f, where, allow_checkpoint=False)
    n = len(paths)
    return Index(
        paths=paths,
        model=model,
        sizes=store._dataset(f, "sizes", where, (n,)).astype(np.int64),
        mtimes=store._dataset(f, "mtimes", where, (n,)).astype(np.float64),
        projection=store._read_projection(f, where, model.feature_dims),
        base_dir=str(f.attrs.get("base_dir", "")),
        created=str(f.attrs.get("created", "")),
        unfitted=store.unfitted_rows(f),
        unfitted_mask=store.unfitted_mask(f, where, n),
        exclude=store.excluded(f, where),
    )


def check_finite(array: npt.NDArray, where: str) -> None:
    if not store.all_finite(array):
        raise RtsearchError(f"{where} holds NaN or infinite values")
