"""The `.dat` index file (HDF5): schema, atomic save, validating load.

Schema (format "rtsearch-index", version 1) — see docs/index-format.md:
  /paths              (N,) utf-8 strings, relative to the base directory, posix separators
  /sizes, /mtimes     (N,) int64 bytes, float64 seconds: what each entry was made from
  /projected          (N, d) float32            [absent in a checkpoint]
  /projection/matrix  (D, d) float32            [absent in a checkpoint]
  /projection/mean    (D,) float32              [absent in a checkpoint]
  /features           (N, D) float32            [optional; always in a checkpoint]
  attrs: format, version, kind ("index" | "checkpoint"), model_name, model_identity,
         feature_layer, feature_dims, model_variant, projection, l2_normalize, seed,
         created, base_dir, exclude (JSON list of the user's patterns; absent when none)
A checkpoint is the features-only form: the same file without the projection.
"""

from __future__ import annotations

import bisect
import faulthandler
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

import h5py
import numpy as np
import numpy.typing as npt

from rtsearch import interrupts
from rtsearch.atomic import (
    atomic_path,
    being_written,
    check_writable,
    file_in_the_way,
    os_reason,
    remove_abandoned_temps,
)
from rtsearch.errors import (
    WINDOWS,
    RtsearchError,
    command,
    first_line,
    size_text,
    system_error,
)
from rtsearch.models import ModelInfo, short_weights
from rtsearch.projection import KINDS, Projection

T = TypeVar("T")

FORMAT = "rtsearch-index"
VERSION = 1
_STR = h5py.string_dtype("utf-8")
PROBE_TIMEOUT_S = 20.0  # a legit 145k-image index reads in well under 1 s
# ... plus the time to read the file from a slow disk (a 4 GB index: 40 s more), so that a
# huge index is not taken for one that hangs the HDF5 library
PROBE_BYTES_PER_S = 100e6
# A CRC-32 of each dataset's bytes (an attribute of it) and of the file's attributes: HDF5
# keeps none, and a file damaged on a disk or in a copy loaded and ranked nonsense (a
# distance of 1e21) or, worse, slightly wrong distances, without a word. Files written
# before them load unchecked.
CRC = "crc32"
ATTRS_CRC = "attrs_crc32"


@dataclass(frozen=True)
class ModelRef:
    """The identity of the model an index was made with."""

    name: str
    identity: str
    feature_layer: str
    feature_dims: int
    # the file's variant ("fp32" | "int8") its rows were made with; "" in files written
    # before it was recorded. Queries may run on either twin (same identity); rows added
    # to an index come from the file that made it (store.check_rows).
    variant: str = ""
    # where that file was (absolute; "" where not recorded): looked at first when the file
    # is looked for again (a file outside the models' folders, or under another name, was
    # not found; an int8 export calibrated on other pictures gave way to the default one)
    file: str = field(default="", compare=False)

    @classmethod
    def of(cls, info: ModelInfo, path: Path | None = None) -> ModelRef:
        file = str(Path(path).resolve()) if path is not None else ""
        return cls(info.name, info.identity, info.feature_layer, info.dims, info.variant, file)

    def __str__(self) -> str:
        """e.g. "vgg16 (fc7, weights 275a54c504cd)": two files of one backbone differ here."""
        return f"{self.name} ({self.feature_layer}, weights {short_weights(self.identity)})"


@dataclass
class Index:
    """Everything a search needs; ``projection``/``projected`` are None in a checkpoint."""

    paths: list[str]
    model: ModelRef
    sizes: npt.NDArray[np.int64]
    mtimes: npt.NDArray[np.float64]
    projected: npt.NDArray[np.float32] | None = None
    projection: Projection | None = None
    features: npt.NDArray[np.float32] | None = None
    base_dir: str = ""
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    # rows added or changed by `update` since the projection was fitted (for the refit advice)
    unfitted: int = 0
    # ... and which they are (None: none, or not known in a file written before it): rows
    # added and removed again no longer count (the advice came at 647 of 3200 so counted,
    # where 500 were new)
    unfitted_mask: npt.NDArray[np.bool_] | None = None
    # the patterns of files and folders left out of the folder (rtsearch.exclusions), which
    # `update` and a rerun of `analyze` keep to
    exclude: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        return len(self.paths)

    @property
    def dims(self) -> int:
        return self.projection.out_dims if self.projection else self.model.feature_dims

    @property
    def is_checkpoint(self) -> bool:
        return self.projection is None

    def row_of(self, path: str) -> int | None:
        """The row of ``path`` (relative, posix); None where there is none. Indexes keep
        their paths sorted (found by bisection); a file that does not is searched through."""
        paths = self.paths
        at = bisect.bisect_left(paths, path)
        if at < len(paths) and paths[at] == path:
            return at
        return next((i for i, p in enumerate(paths) if p == path), None)


def check_compatible(index: Index, info: ModelInfo, where: str) -> None:
    """Refuse querying or extending an index with features from another model."""
    if index.model.identity != info.identity:
        raise RtsearchError(
            f"{where}: made with model {index.model}, not {ModelRef.of(info)}; use the same "
            "--model or re-analyze"
        )


def twin_clash(made_by: ModelRef, info: ModelInfo | ModelRef) -> str:
    """ "the fp32 file of NAME, not the int8 one" where rows made by ``made_by``'s file and
    ``info``'s differ though their weights match (an fp32 file and its int8 twin: a copy of
    an indexed picture came back at 0.07-0.11 from its own row, not 0); "" where they do
    not. Files written before the variant was recorded clash with none."""
    if made_by.variant and info.variant and made_by.variant != info.variant:
        return f"the {made_by.variant} file of {made_by.name}, not the {info.variant} one"
    return ""


def check_rows(index: Index, info: ModelInfo, where: str, way_out: str) -> None:
    """Refuse adding rows to ``index`` from another model, or from another file of its
    model's weights (fp32 rows beside int8 ones); ``way_out`` says what to do instead."""
    check_compatible(index, info, where)
    clash = twin_clash(index.model, info)
    if clash:
        raise RtsearchError(
            f"{where}: its rows were made with {clash}; rows of the two differ (a copy of a "
            f"picture no longer comes back at distance 0): {way_out}"
        )


# ---------------------------------------------------------------- saving


class Damaged(RtsearchError):
    """The file's bytes are not those written (its checksums disagree); ``plain``: the
    refusal without what to do."""

    def __init__(self, message: str, plain: str) -> None:
        super().__init__(message)
        self.plain = plain


class NoRoom(RtsearchError):
    """The disk cannot hold the file: said before a byte of it is written."""


def save(index: Index, dest: Path, what: str = "index") -> None:
    """Write ``index`` atomically; an existing ``dest`` survives any failure intact, and
    an index that loading would refuse is not written at all. A first Ctrl-C meanwhile
    comes after the write (interrupts.held). ``what`` names the file in errors."""
    problem = _unloadable(index)
    if problem:
        raise RtsearchError(f"{dest}: not written: {problem}")
    need, free = room_for(index, Path(dest))
    if free is not None and need > free:
        # a read-only mount says 0 free: why it cannot be written comes first
        check_writable(Path(dest), what)
        raise NoRoom(
            f"{dest}: cannot write {what} (No space left on device: it needs about "
            f"{size_text(need)}, {size_text(free)} free)"
        )
    limit = file_size_limit()
    if limit is not None and need > limit:  # HDF5 failed mid-write: a segfault at exit
        raise RtsearchError(
            f"{dest}: cannot write {what} (File too large: it needs about {size_text(need)}, "
            f"past this process's limit of {size_text(limit)} a file; ulimit -f)"
        )
    try:
        with interrupts.held(), atomic_path(dest) as tmp, h5py.File(tmp, "w") as f:
            _write(f, index)
    except OSError as exc:
        blocker = file_in_the_way(Path(dest))  # mkdir said only "File exists"
        reason = f"{blocker} is a file, not a folder" if blocker else os_reason(exc)
        raise RtsearchError(f"{dest}: cannot write {what} ({reason})") from None


def _unloadable(index: Index) -> str:
    """What ``load`` would refuse in ``index`` (shapes that disagree, NaN or infinite
    values), or ""; checked before writing, so a bad model cannot replace a good index."""
    n, dims = len(index.paths), index.model.feature_dims
    arrays: list[tuple[str, object, tuple[int, ...]]] = [
        ("sizes", index.sizes, (n,)),
        ("mtimes", index.mtimes, (n,)),
    ]
    if index.features is not None:
        arrays.append(("features", index.features, (n, dims)))
    if index.projection is not None and index.projected is not None:
        d = index.projection.out_dims
        arrays += [
            ("projected", index.projected, (n, d)),
            ("projection/matrix", index.projection.matrix, (dims, d)),
            ("projection/mean", index.projection.mean, (dims,)),
        ]
        if index.unfitted_mask is not None:
            arrays.append(("unfitted", index.unfitted_mask, (n,)))
    for name, data, shape in arrays:
        a = np.asarray(data)
        if a.shape != shape:
            return f"{name} has shape {a.shape}, expected {shape}"
        if a.dtype.kind == "f" and not all_finite(a):  # in blocks: no full-size mask
            return f"{name} holds NaN or infinite values"
    return ""


def room_for(index: Index, dest: Path) -> tuple[int, int | None]:
    """Bytes ``index`` takes as ``save`` writes it, and bytes free beside ``dest`` (None
    when that cannot be told: a folder not made yet). Checked before HDF5 starts: HDF5
    failing mid-write leaves objects it cannot close, and the interpreter crashed on them
    at exit. Temp files of writers that died (a killed save) are removed first: they hold
    room the write needs, and were counted against it for good."""
    arrays = (index.sizes, index.mtimes, index.projected)
    need = sum(np.asarray(a).nbytes for a in arrays if a is not None)
    if index.features is not None:  # stored in whole chunks
        rows, dims = np.shape(index.features)
        chunk = feature_chunk_rows(rows)
        need += -(-rows // chunk) * chunk * dims * 4 if rows else 0
    if index.projection is not None:
        need += index.projection.matrix.nbytes + index.projection.mean.nbytes
    need += sum(len(p.encode("utf-8", "surrogateescape")) + 32 for p in index.paths)
    need = int(need * 1.02) + 64 * 1024  # HDF5's own structures
    real = Path(os.path.realpath(dest))
    remove_abandoned_temps(real)
    try:
        return need, shutil.disk_usage(real.parent).free
    except OSError:
        return need, None  # check_writable and the write itself say why


def file_size_limit() -> int | None:
    """The largest file this process may write, in bytes (``ulimit -f``), or None."""
    try:
        import resource
    except ImportError:  # (Windows)
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else soft


def feature_chunk_rows(rows: int) -> int:
    """Rows per chunk of stored features: at most 1024, as even as the rows allow (HDF5
    allocates whole chunks: 1500 rows in chunks of 1024 took room for 2048)."""
    chunks = max(1, -(-rows // 1024))
    return max(1, -(-rows // chunks))


def _write(f: h5py.File, index: Index) -> None:
    m = index.model
    f.attrs.update(
        format=FORMAT,
        version=VERSION,
        kind="checkpoint" if index.is_checkpoint else "index",
        model_name=m.name,
        model_identity=m.identity,
        feature_layer=m.feature_layer,
        feature_dims=m.feature_dims,
        created=index.created,
        base_dir=index.base_dir,
    )
    if m.variant:  # (not known: not said, as files before it)
        f.attrs["model_variant"] = m.variant
    if m.file:
        f.attrs["model_file"] = m.file
    if index.exclude:
        f.attrs["exclude"] = json.dumps(list(index.exclude))
    paths = f.create_dataset("paths", data=np.array(index.paths, dtype=object), dtype=_STR)
    paths.attrs[CRC] = _paths_crc(index.paths)
    _checked_dataset(f, "sizes", np.asarray(index.sizes, dtype=np.int64))
    _checked_dataset(f, "mtimes", np.asarray(index.mtimes, dtype=np.float64))
    if index.projection is not None and index.projected is not None:
        p = index.projection
        f.attrs.update(projection=p.kind, l2_normalize=p.l2_normalize, seed=p.seed)
        f.attrs["unfitted_rows"] = int(index.unfitted)
        if index.unfitted_mask is not None:
            _checked_dataset(f, "unfitted", np.asarray(index.unfitted_mask, dtype=np.uint8))
        _checked_dataset(f, "projected", np.asarray(index.projected, dtype=np.float32))
        _checked_dataset(f, "projection/matrix", np.asarray(p.matrix))
        _checked_dataset(f, "projection/mean", np.asarray(p.mean))
    if index.features is not None:
        feats = np.asarray(index.features, dtype=np.float32)
        chunks = (feature_chunk_rows(len(feats)), feats.shape[1]) if len(feats) else None
        _checked_dataset(f, "features", feats, chunks=chunks)
    f.attrs[ATTRS_CRC] = _attrs_crc(f)  # (last: of the attributes as they read back)


def _checked_dataset(f: h5py.File, name: str, data: np.ndarray, **options) -> None:
    """``data`` written as dataset ``name``, with the CRC-32 of its bytes."""
    data = np.ascontiguousarray(data)
    ds = f.create_dataset(name, data=data, **options)
    ds.attrs[CRC] = zlib.crc32(data)


def _paths_crc(paths: list[str]) -> int:
    return zlib.crc32("\0".join(paths).encode("utf-8", "surrogatepass"))


def _attrs_crc(f: h5py.File) -> int:
    """A CRC-32 of the file's attributes (but this one), as they read back."""

    def plain(value: object) -> object:
        if isinstance(value, bytes):
            return value.decode("utf-8", "surrogateescape")
        if isinstance(value, np.ndarray):
            return value.tolist()
        return value.item() if isinstance(value, np.generic) else value

    held = {k: plain(v) for k, v in f.attrs.items() if k != ATTRS_CRC}
    text = json.dumps(held, sort_keys=True, default=str, ensure_ascii=False)
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


def check_crc(
    f: h5py.File, data: np.ndarray | list[str], stored: object, where: str, name: str
) -> None:
    """Refuse ``data`` (dataset ``name`` of ``f``, as read) where it does not match the
    CRC-32 ``stored`` with it (None: a file from before checksums)."""
    if stored is None:
        return
    crc = _paths_crc(data) if isinstance(data, list) else zlib.crc32(np.ascontiguousarray(data))
    if not _same_crc(stored, crc):
        raise damaged(f, where, f"its {name} data is not as written")


def _same_crc(stored: object, crc: int) -> bool:
    """Whether the attribute ``stored`` (of any type, in a damaged file) holds ``crc``."""
    try:
        return np.ndim(stored) == 0 and int(stored) == crc  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False


def damaged(f: h5py.File, where: str, what: str, *, named: bool = True) -> Damaged:
    """The refusal of a file whose checksums disagree, with the command that makes the
    index anew (``named``: its attributes, intact, name its folder)."""
    base = f.attrs.get("base_dir") if named else None
    if f.attrs.get("kind") == "checkpoint":
        again = ""
    elif isinstance(base, str) and base:
        again = f"; {command('rtsearch', 'analyze', base, '-o', where, '--replace')} makes it anew"
    else:
        again = "; analyze its folder again into it with --replace"
    plain = f"{where}: damaged index: {what} (a disk or copy fault)"
    return Damaged(plain + again, plain)


# ---------------------------------------------------------------- loading


def checkpoint_dir(out: Path) -> Path:
    """Where an analysis to ``out`` keeps its checkpoints: beside the file ``out`` names (a
    symlink's target), as its lock is: checkpoints named after the link were not found
    through the target's name. Those an earlier version kept beside a link, named after
    it, are found there until they are used up (80 checkpointed images were analysed
    again, their folder left for good)."""
    here = Path(os.path.realpath(out) + ".ckpt")
    beside_link = Path(f"{out}.ckpt")
    try:
        if not here.exists() and os.path.islink(out) and beside_link.is_dir():
            return beside_link
    except OSError:  # a name too long for it: analyze says so (check_room_for_siblings)
        pass
    return here


def looks_like_index(path: Path) -> bool:
    """Whether ``path`` is an HDF5 file with an index's format name among its first bytes
    (its root attributes, written first): one of ours, even damaged past reading (a
    byte flipped in HDF5's own structure), which `analyze --replace` may write over."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    return head.startswith(b"\x89HDF\r\n\x1a\n") and FORMAT.encode() in head


def require_index_file(path: Path) -> Path:
    """``path``, where a file is there to read as an index; else one line why not."""
    path = Path(path)
    if not path.exists():
        unfinished = checkpoint_dir(path)
        if being_written(path):  # a first analysis into it, still running
            raise RtsearchError(
                f"{path}: index file not there yet; another rtsearch analyze or update is "
                "writing it; wait for it to end"
            )
        if any(unfinished.glob("part-*.dat")):  # an analysis stopped before it wrote one
            raise RtsearchError(
                f"{path}: index file not found; {unfinished} holds an unfinished analysis: "
                "analyze its folder again with this -o to finish it"
            )
        raise RtsearchError(f"{path}: index file not found")
    if path.is_dir():
        raise RtsearchError(f"{path}: is a folder, not an index file")
    if not path.is_file():
        raise RtsearchError(f"{path}: not a regular file")
    return path


def load(
    path: Path,
    *,
    features: bool = False,
    allow_checkpoint: bool = False,
    isolate: bool = True,
    check_features: bool = False,
) -> Index:
    """Read and validate an index; any problem is an RtsearchError naming the file.
    ``check_features``: its stored features are validated too (in the child, with
    ``isolate``), without being read here (``copy_features`` reads them in blocks).

    With ``isolate`` (the default) the file is first read in a child process: fuzzing showed
    the HDF5 C library can segfault or loop forever on a damaged file, which no Python
    ``except`` can catch. Only a file the child read cleanly is then read here."""
    path = require_index_file(path)
    if path.stat().st_size == 0:  # (said "not an HDF5 file": a write cut short, a touch)
        raise RtsearchError(f"{path}: empty file (0 bytes), not an index")
    if isolate:
        probe(path, features or check_features, allow_checkpoint)
    return _load_here(path, features, allow_checkpoint)


def probe(
    path: Path,
    features: bool = False,
    allow_checkpoint: bool = False,
    *,
    fork: bool | None = None,
    mapped: bool = False,
) -> None:
    """Load ``path`` in a child process; raise its refusal, or one for a crash or hang.
    Call it before any in-process h5py read of an untrusted file (``load`` does).
    ``mapped``: the child reads as ``bigstore.load`` does (big arrays memory-mapped, so a
    huge index is not copied into the child, and not scanned there).

    The child is forked (a few ms) when this is the process's only thread; with others
    running (the viewer) it is a new interpreter (~0.2 s): fork() stops OpenBLAS's thread
    pool, and a BLAS call running meanwhile in another thread then waits forever (the
    viewer's re-projection hung so in its eigh, in 3 of 9 runs of the viewer tests)."""
    if fork is None:
        fork = hasattr(os, "fork") and threading.active_count() == 1
    timeout = probe_timeout(path)
    if not fork:
        _probe_spawned(path, features, allow_checkpoint, mapped, timeout)
        return
    read_end, write_end = os.pipe()
    # Holding h5py's global lock across fork() means no other thread holds it in the child.
    with h5py._objects.phil:
        pid = os.fork()
    if pid == 0:  # the child: report and leave without running any parent cleanup
        faulthandler.disable()  # a crash here is reported by the parent in one line
        code = 0
        try:
            _reader(mapped)(path, features, allow_checkpoint)
        except RtsearchError as exc:
            os.write(write_end, _refusal(exc).encode("utf-8", "replace")[:8000])
            code = DAMAGED_EXIT if isinstance(exc, Damaged) else 2
        except OSError as exc:  # said as the system says it (it was "malformed index")
            os.write(write_end, system_error(exc).encode("utf-8", "replace")[:4000])
            code = 2
        except BaseException:
            code = 3
        os._exit(code)
    os.close(write_end)
    try:
        status = _wait(pid, timeout)
        message = os.read(read_end, 8192).decode("utf-8", "replace")
    finally:
        os.close(read_end)
    if status is None:
        raise RtsearchError(_unfinished(path, timeout))
    if os.WIFSIGNALED(status):
        raise RtsearchError(_crashed(path, os.WTERMSIG(status)))
    _raise_refusal(path, os.WEXITSTATUS(status), message)


def probe_timeout(path: Path) -> float:
    """Seconds a probe of ``path`` may take before the file counts as one that hangs."""
    try:
        size = Path(path).stat().st_size
    except OSError:
        size = 0
    return PROBE_TIMEOUT_S + size / PROBE_BYTES_PER_S


def _reader(mapped: bool) -> Callable[[Path, bool, bool], object]:
    """What the probe's child runs: the store's own read, or bigstore's mapped one."""
    if not mapped:
        return _load_here
    from rtsearch import bigstore  # (it imports this module)

    return lambda path, features, _: bigstore.probe_read(path, features)


def _probe_spawned(
    path: Path, features: bool, allow_checkpoint: bool, mapped: bool, timeout: float
) -> None:
    # this very rtsearch, first: `python -c` would put the current folder first, and an
    # rtsearch/ there (another checkout) was imported instead ("malformed index")
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    flags = f"{int(features)}{int(allow_checkpoint)}{int(mapped)}"
    code = f"import sys; sys.path[0] = {root!r}; import rtsearch.store as s; s._probe_child()"
    try:
        run = subprocess.run(
            [sys.executable, "-c", code, str(path), flags],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, env=env,
        )  # fmt: skip
    except subprocess.TimeoutExpired:  # (the child is killed)
        raise RtsearchError(_unfinished(path, timeout)) from None
    if run.returncode < 0:
        raise RtsearchError(_crashed(path, -run.returncode))
    _raise_refusal(path, run.returncode, run.stdout.decode("utf-8", "replace")[:8000])


DAMAGED_EXIT = 4  # a probe's child found the file damaged: its refusal, then its plain one


def _refusal(exc: RtsearchError) -> str:
    """What a probe's child writes of its refusal (a Damaged one's two, parted by NUL)."""
    return f"{exc}\0{exc.plain}" if isinstance(exc, Damaged) else str(exc)


def _raise_refusal(path: Path, code: int, message: str) -> None:
    """A probe child's refusal raised here, as it was raised there (Damaged as Damaged:
    analyze --replace replaces a damaged index)."""
    if code == DAMAGED_EXIT and "\0" in message:
        raise Damaged(*message.split("\0", 1))
    if code != 0:
        raise RtsearchError(message or f"{path}: malformed index")


def _probe_child() -> None:
    """``probe``'s new interpreter: argv is PATH FLAGS; the refusal goes to stdout."""
    path, flags = sys.argv[1], sys.argv[2]
    try:
        _reader(flags[2] == "1")(Path(path), flags[0] == "1", flags[1] == "1")
    except (RtsearchError, OSError) as exc:
        # bytes, read back as UTF-8: a Windows pipe's cp1252 could not write every name,
        # and the refusal became "malformed index"
        said = system_error(exc) if isinstance(exc, OSError) else _refusal(exc)
        sys.stdout.buffer.write(said.encode("utf-8", "replace"))
        sys.stdout.flush()
        os._exit(DAMAGED_EXIT if isinstance(exc, Damaged) else 2)
    except BaseException:
        os._exit(3)
    os._exit(0)


def _unfinished(path: Path, timeout: float) -> str:
    return f"{path}: corrupt index (reading it did not finish in {timeout:.0f} s)"


def _crashed(path: Path, signum: int) -> str:
    name = signal.Signals(signum).name
    return f"{path}: corrupt index (the HDF5 library crashed reading it: {name})"


def _wait(pid: int, timeout: float) -> int | None:
    """waitpid with a deadline; past it the child is killed and None returned."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(pause)
        pause = min(pause * 2, 0.02)


def _load_here(path: Path, features: bool, allow_checkpoint: bool) -> Index:
    return read_with(path, lambda f: _read(f, str(path), features, allow_checkpoint))


def read_with(path: Path, read: Callable[[h5py.File], T]) -> T:
    """``read`` on the open file; any failure but a refusal becomes one line naming the file
    (an untrusted file): not readable and why, or malformed."""
    try:
        with h5py.File(path, "r") as f:
            return read(f)
    except RtsearchError:
        raise
    except OSError as exc:
        raise RtsearchError(f"{path}: not a readable index file ({_hdf5_reason(exc)})") from None
    except MemoryError:
        raise RtsearchError(f"{path}: malformed index (sizes beyond available memory)") from None
    except Exception as exc:  # untrusted file: h5py and numpy raise many types
        raise RtsearchError(f"{path}: malformed index ({first_line(exc)})") from None


def _hdf5_reason(exc: OSError) -> str:
    """HDF5's reason for not opening a file, in words: "not an HDF5 file", "truncated: 5000
    of 529408 bytes"; others as HDF5 gives them, without its "Unable to ... open file"."""
    text = first_line(exc)
    if "file signature not found" in text:
        return "not an HDF5 file"
    sizes = re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", text)
    if sizes:
        return f"truncated: {sizes[1]} of {sizes[2]} bytes"
    system = re.search(r"errno = \d+, error message = '([^']*)'", text)
    if system:  # the system's refusal ("Permission denied"), without HDF5's flags around it
        return system[1]
    inner = re.fullmatch(r"Unable to (?:synchronously )?open file \((.*)\)", text)
    return inner[1] if inner else text


def _attr(f: h5py.File, name: str, where: str) -> object:
    if name not in f.attrs:
        raise RtsearchError(f"{where}: malformed index (attribute {name!r} missing)")
    value = f.attrs[name]
    return value.item() if isinstance(value, np.generic) else value


def _read(f: h5py.File, where: str, with_features: bool, allow_checkpoint: bool) -> Index:
    kind, model, paths = _read_head(f, where, allow_checkpoint)
    n = len(paths)
    sizes = _dataset(f, "sizes", where, (n,))
    mtimes = _dataset(f, "mtimes", where, (n,))
    projection = projected = None
    if kind == "index":
        projection = _read_projection(f, where, model.feature_dims)
        projected = _dataset(f, "projected", where, (n, projection.out_dims), finite=True)
    features = None
    if "features" in f and (with_features or kind == "checkpoint"):
        features = _dataset(f, "features", where, (n, model.feature_dims), finite=True)
    return Index(
        paths=paths,
        model=model,
        sizes=sizes.astype(np.int64),
        mtimes=mtimes.astype(np.float64),
        projected=projected,
        projection=projection,
        features=features,
        base_dir=str(f.attrs.get("base_dir", "")),
        created=str(f.attrs.get("created", "")),
        unfitted=unfitted_rows(f),
        unfitted_mask=unfitted_mask(f, where, n),
        exclude=excluded(f, where),
    )


def unfitted_mask(f: h5py.File, where: str, n: int) -> npt.NDArray[np.bool_] | None:
    """Which rows came after the fit; None where the file does not say (Index.unfitted)."""
    if "unfitted" not in f:
        return None
    return _dataset(f, "unfitted", where, (n,)).astype(bool)


def excluded(f: h5py.File, where: str) -> tuple[str, ...]:
    """The user's patterns of what the folder's index leaves out; () where none."""
    from rtsearch.exclusions import compile_pattern

    value = f.attrs.get("exclude")
    if value is None:
        return ()
    try:
        texts = json.loads(value if isinstance(value, str) else bytes(value).decode())
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise ValueError
        for text in texts:
            compile_pattern(text)
    except (ValueError, TypeError, RtsearchError):
        raise RtsearchError(f"{where}: malformed index (its excluded patterns)") from None
    return tuple(texts)


def unfitted_rows(f: h5py.File) -> int:
    """The refit counter; 0 in files written before it existed."""
    value = f.attrs.get("unfitted_rows", 0)
    return max(0, int(value)) if np.ndim(value) == 0 else 0


def _read_head(f: h5py.File, where: str, allow_checkpoint: bool) -> tuple[str, ModelRef, list[str]]:
    """Kind, model and paths, after every check that does not read the big arrays (format,
    version, kind, local storage only, path safety, not empty); also bigstore's."""
    if f.attrs.get("format") != FORMAT:
        raise RtsearchError(f"{where}: not an rtsearch index (another HDF5 schema)")
    stored = f.attrs.get(ATTRS_CRC)
    if stored is not None and not _same_crc(stored, _attrs_crc(f)):
        raise damaged(f, where, "its attributes are not as written", named=False)
    version = _attr(f, "version", where)
    if version != VERSION:
        raise RtsearchError(
            f"{where}: index format version {version}, this rtsearch reads {VERSION}"
        )
    kind = _attr(f, "kind", where)
    if kind not in ("index", "checkpoint"):
        raise RtsearchError(f"{where}: malformed index (kind {kind!r})")
    if kind == "checkpoint" and not allow_checkpoint:
        raise RtsearchError(
            f"{where}: is an analysis checkpoint, not a finished index (rerun analyze to finish)"
        )
    model = _model_ref(f, where)
    _check_local(f, where)
    paths = _read_paths(f, where)
    if not paths:
        raise RtsearchError(f"{where}: empty index (0 images); analyze a folder with images")
    return str(kind), model, paths


def _model_ref(f: h5py.File, where: str) -> ModelRef:
    """The model an index or checkpoint was made with, from its attributes."""
    return ModelRef(
        str(_attr(f, "model_name", where)),
        str(_attr(f, "model_identity", where)),
        str(_attr(f, "feature_layer", where)),
        int(_attr(f, "feature_dims", where)),  # type: ignore[call-overload]
        _variant(f, where),
        _text(f.attrs.get("model_file", "")),
    )


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _variant(f: h5py.File, where: str) -> str:
    """The model file's variant its rows came from; "" for a file that does not say."""
    value = f.attrs.get("model_variant", "")
    value = value.decode() if isinstance(value, bytes) else str(value)
    if value not in ("", "fp32", "int8"):
        raise RtsearchError(f"{where}: malformed index (model_variant {value!r})")
    return value


def _check_local(f: h5py.File, where: str) -> None:
    """HDF5 can point anywhere: external links, external raw storage and virtual datasets
    read other files (e.g. /etc/shadow as "features"). Refuse all of them; also refuse
    datasets whose declared size dwarfs their stored bytes (unallocated chunks or extreme
    compression), which would make a small file allocate gigabytes."""
    groups: list[h5py.Group] = [f]
    while groups:
        group = groups.pop()
        for name in group:
            # getlink=True inspects the link itself without following it to another file.
            link = group.get(name, getlink=True)
            where_name = f"{group.name.rstrip('/')}/{name}"
            if link is None:  # a name in the group's list that it cannot find (a damaged one)
                raise RtsearchError(f"{where}: malformed index ({where_name} cannot be read)")
            if not isinstance(link, h5py.HardLink):
                problem = f"{where_name} is a {type(link).__name__}"
                raise RtsearchError(f"{where}: refusing index: {problem}")
            obj = group[name]
            if isinstance(obj, h5py.Group):
                groups.append(obj)
            else:
                _check_dataset_storage(obj, where_name, where)


def _check_dataset_storage(ds: h5py.Dataset, name: str, where: str) -> None:
    if ds.external or ds.is_virtual:
        raise RtsearchError(f"{where}: refusing index: {name} stores its data in another file")
    if ds.nbytes > 16 * ds.id.get_storage_size() + (1 << 20):
        raise RtsearchError(
            f"{where}: refusing index: {name} declares shape {ds.shape} but stores far fewer bytes"
        )


def _dataset(
    f: h5py.File, name: str, where: str, shape: tuple[int, ...], *, finite: bool = False
) -> np.ndarray:
    if name not in f or not isinstance(f[name], h5py.Dataset):
        raise RtsearchError(f"{where}: malformed index (dataset {name!r} missing)")
    ds = f[name]
    if ds.shape != shape:
        raise RtsearchError(f"{where}: {name} has shape {ds.shape}, expected {shape}")
    data = ds[()]
    if data.dtype.kind not in "fiu":
        raise RtsearchError(f"{where}: {name} is not numeric")
    check_crc(f, data, ds.attrs.get(CRC), where, name)
    if finite and not all_finite(data):
        raise RtsearchError(f"{where}: {name} holds NaN or infinite values")
    # float32 already (as saved): no copy, which was a second 777 MB at 145k x 1280 features
    return data.astype(np.float32, copy=False) if data.dtype.kind == "f" and finite else data


def all_finite(array: npt.NDArray) -> bool:
    """No NaN or infinity, checked a few MB at a time (one boolean per element of a 2.2 GB
    features array would be another 560 MB)."""
    if array.ndim == 0:
        return bool(np.isfinite(array))
    rows = max(1, (1 << 22) // max(1, int(np.prod(array.shape[1:]))))
    return all(np.isfinite(array[i : i + rows]).all() for i in range(0, len(array), rows))


def _read_projection(f: h5py.File, where: str, feature_dims: int) -> Projection:
    if "projection" not in f:
        raise RtsearchError(f"{where}: malformed index (projection missing)")
    matrix = _dataset(
        f, "projection/matrix", where, (feature_dims, f["projection/matrix"].shape[-1]), finite=True
    )
    mean = _dataset(f, "projection/mean", where, (feature_dims,), finite=True)
    kind = _text(_attr(f, "projection", where))
    if kind not in KINDS:  # (a damaged one was loaded, and shown by `info` as it was)
        raise RtsearchError(f"{where}: malformed index (projection {kind!r})")
    return Projection(
        kind=kind,
        matrix=np.ascontiguousarray(matrix, dtype=np.float32),
        mean=np.ascontiguousarray(mean, dtype=np.float32),
        l2_normalize=bool(_attr(f, "l2_normalize", where)),
        seed=int(_attr(f, "seed", where)),  # type: ignore[call-overload]
    )


def _read_paths(f: h5py.File, where: str) -> list[str]:
    if "paths" not in f or f["paths"].ndim != 1:
        raise RtsearchError(f"{where}: malformed index (paths missing)")
    raw = f["paths"].asstr()[()] if len(f["paths"]) else []
    paths = [str(p) for p in raw]
    check_crc(f, paths, f["paths"].attrs.get(CRC), where, "paths")
    for p in paths:
        check_relative(p, where)
    return paths


def check_storable_folder(base_dir: Path) -> None:
    """An index stores its folder's path as UTF-8 text: a folder whose name is not UTF-8
    is refused before the work (the whole analysis ran, then the save failed with a
    traceback, its checkpoints left behind)."""
    folder = Path(base_dir).resolve()
    try:
        str(folder).encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(folder).decode("utf-8", "backslashreplace")
        raise RtsearchError(
            f"{shown}: a folder name that is not UTF-8, which an index cannot store; rename it"
        ) from None


def check_relative(rel: str, where: str) -> str:
    """Refuse a stored path that could point outside the base directory. A backslash and a
    drive-like start (``5:4 crop.jpg``) are plain characters of a name here; only where
    the system reads them as separators or a drive (Windows) are they refused: one such
    file, indexed without a word, made the whole index unreadable for good."""
    # Plain string tests, same rules as PurePosixPath (is_absolute, ".." in parts) at a
    # fraction of the cost: loading a 10M-path index calls this 10M times.
    if (
        not rel
        or rel.startswith("/")
        or ".." in rel.split("/")
        or "\x00" in rel
        or (WINDOWS_PATHS and ("\\" in rel or (len(rel) > 1 and rel[1] == ":")))
    ):
        raise RtsearchError(f"{where}: refusing path {rel!r} that escapes the base directory")
    return rel


WINDOWS_PATHS = WINDOWS  # backslashes separate, and "C:" names a drive


FEATURE_BLOCK_BYTES = 16 << 20  # read at a time by copy_features (with its copy: 32 MB)


def copy_features(path: Path, rows: npt.NDArray[np.int64], out: np.ndarray, to) -> None:
    """Stored feature rows ``rows`` of the index at ``path`` into ``out[to]``, read a block
    of rows at a time: the index's features are never held whole beside ``out`` (an update
    of an index storing them held them about 2.4 times over). Call after ``probe(path,
    features=True)`` has checked them."""
    rows, to = np.asarray(rows, np.int64), np.asarray(to, np.int64)
    order = np.argsort(rows, kind="stable")
    rows, to = rows[order], to[order]

    def read(f: h5py.File) -> None:
        ds = f.get("features")
        if not isinstance(ds, h5py.Dataset) or ds.ndim != 2 or ds.shape[1] != out.shape[1]:
            raise RtsearchError(f"{path}: malformed index (features missing or misshapen)")
        if len(rows) and rows[-1] >= ds.shape[0]:
            raise RtsearchError(f"{path}: features has {ds.shape[0]} rows, fewer than listed")
        step = max(1, FEATURE_BLOCK_BYTES // (4 * out.shape[1]))
        first = 0
        while first < len(rows):
            start = int(rows[first])
            stop = min(start + step, ds.shape[0])
            last = int(np.searchsorted(rows, stop, side="left"))
            block = ds[start:stop]
            out[to[first:last]] = block[rows[first:last] - start]
            first = last

    read_with(path, read)


def has_features(path: Path) -> bool:
    """Whether an index file stores the full feature vectors (without reading them)."""
    try:
        with h5py.File(path, "r") as f:
            return "features" in f
    except OSError:
        return False


def made_with(path: Path) -> dict:
    """What the index at ``path`` was made with, read from its attributes without its
    arrays: projection, dims, l2_normalize, seed, features (stored or not), model (its
    ``ModelRef``), exclude; {} where there is no index to read (loading it says why)."""
    try:
        with h5py.File(path, "r") as f:
            if "projected" not in f or "projection" not in f.attrs:
                return {}
            return {
                "projection": str(f.attrs["projection"]),
                "dims": int(f["projected"].shape[1]),
                "l2_normalize": bool(f.attrs["l2_normalize"]),
                "seed": int(f.attrs["seed"]),
                "features": "features" in f,
                "model": _model_ref(f, str(path)),
                "exclude": excluded(f, str(path)),
            }
    except (OSError, KeyError, ValueError, TypeError, IndexError, RtsearchError):
        return {}
