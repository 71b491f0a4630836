"""Features-only checkpoints of a long analysis or update (``INDEX.dat.ckpt/part-NNNNNN.dat``,
each written atomically): written as rows come and on an interrupt, read back to resume."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np

from rtsearch import atomic, interrupts, store
from rtsearch.decode import exhausted, exhausted_reason
from rtsearch.errors import RtsearchError, Warn, count
from rtsearch.store import Index, ModelRef, checkpoint_dir

DEFAULT_CHECKPOINT_SECONDS = 120.0
SETTINGS = "settings.json"  # how the run that wrote the parts was asked to make the index

__all__ = ["CheckpointWriter", "checkpoint_dir", "checkpoint_files", "checkpoint_parts"]


def checkpoint_parts(
    folder: Path, model: ModelRef, warn: Warn | None, replace: bool = False
) -> Iterator[Index]:
    """The checkpoint parts in ``folder``, to resume from. A part that cannot be read (a
    disk's fault: each is written atomically) is passed over with a warning, and its images
    analysed again; one made with another model stops the run (check_part_model), or with
    ``replace`` (--replace) is passed over so."""
    for _, part in checkpoint_files(folder, model, warn, replace):
        yield part


def checkpoint_files(
    folder: Path, model: ModelRef, warn: Warn | None, replace: bool = False
) -> Iterator[tuple[Path, Index]]:
    """As checkpoint_parts, with each part's file."""
    for path in sorted(folder.glob("part-*.dat")):
        try:
            part = store.load(path, allow_checkpoint=True)
            check_part_model(part, model, path)
        except RtsearchError as exc:
            if isinstance(exc, OtherModel) and not replace:
                raise
            if warn:
                warn(f"{exc}; passed over: its images are analysed again")
            continue
        yield path, part


def made_with(folder: Path) -> dict:
    """What the unfinished run whose checkpoints are in ``folder`` was asked to make, as
    store.made_with gives an index's (model, projection, dims, l2_normalize, seed,
    features, exclude); {} where it is not known."""
    try:
        kept = json.loads((folder / SETTINGS).read_text())
        return {
            "projection": str(kept["projection"]),
            "dims": int(kept["dims"]),
            "l2_normalize": bool(kept["l2_normalize"]),
            "seed": int(kept["seed"]),
            "features": bool(kept["features"]),
            "model": ModelRef(**kept["model"]),
            "exclude": tuple(str(t) for t in kept["exclude"]),
            "rebuild": bool(kept.get("rebuild", False)),  # (absent before it was kept)
        }
    except (OSError, ValueError, KeyError, TypeError):
        return {}


class OtherModel(RtsearchError):
    """A checkpoint part made with another model, or another file of its weights."""


def check_part_model(part: Index, model: ModelRef, where: Path) -> None:
    """A checkpoint part resumed with another model is refused, with the way out."""
    if part.model.identity != model.identity:
        raise OtherModel(
            f"{where}: checkpoint made with model {part.model}, not {model}; use the same "
            f"--model, or delete {where.parent} to start again"
        )
    clash = store.twin_clash(part.model, model)  # its rows and this run's would differ
    if clash:
        raise OtherModel(
            f"{where}: checkpoint made with {clash}; pass --model with its "
            f"{part.model.variant} file, as the run that wrote it did, or delete "
            f"{where.parent} to start again"
        )


@contextlib.contextmanager
def checkpoint_on_interrupt(writer: CheckpointWriter) -> Iterator[None]:
    """A Ctrl-C (or SIGTERM) first writes the rows finished since the last checkpoint, so
    the rerun resumes from where it stopped, not from the last checkpoint."""
    try:
        yield
    except KeyboardInterrupt as exc:
        writer.flush()
        if writer.rows_written and not exc.args:  # said by the command's "interrupted; ..."
            exc.args = (_kept(writer),)
        raise
    except OSError as exc:  # out of file descriptors or memory: stopped, the work kept
        if not exhausted(exc):
            raise
        with contextlib.suppress(Exception):  # (it may need what ran out)
            writer.flush()
        kept = f"; {_kept(writer)}" if writer.rows_written else ""
        raise RtsearchError(f"stopped: {exhausted_reason(exc)}{kept}") from None


def _kept(writer: CheckpointWriter) -> str:
    n = writer.rows_written
    kept = (
        f"{count(writer.held + n, 'image')} ({n} of them analysed by this run)"
        if writer.held
        else f"the {count(n, 'image')} this run analysed"
    )
    return f"{writer.folder} keeps {kept}: {writer.resume}"


def check_folder(out: Path) -> None:
    """Refuse, before the work, an index whose checkpoint folder's name is taken by
    something else (another index written as ``-o X.dat.ckpt``): every run to it ended in
    a traceback when its first checkpoint was due."""
    folder = checkpoint_dir(out)
    if folder.exists() and not folder.is_dir():
        raise RtsearchError(
            f"{folder}: a file where {out} keeps its checkpoints; move it away (or write "
            "the index elsewhere)"
        )


class CheckpointWriter:
    """Collects new feature rows (the analysis's own rows, not copies) and writes them as
    numbered features-only index parts."""

    def __init__(
        self,
        folder: Path,
        model: ModelRef,
        base_dir: Path,
        every: int | None,
        warn: Warn | None = None,
        settings: dict | None = None,
    ) -> None:
        self.folder, self.model, self.base_dir, self.every = folder, model, base_dir, every
        self.warn = warn
        # the run's settings (as store.made_with gives an index's, but the model), kept
        # beside its first part: the same command without them resumes with them
        self.settings = settings
        self.failed = False  # a part could not be written (said once)
        self.written: list[Path] = []  # the parts this writer made
        self.rows_written = 0  # the images in them
        self.held = 0  # the images in the parts of the runs before, that this one took
        # how the run that wrote them goes on (an interrupted one says it)
        self.resume = "the same command again goes on from there"
        self._reset()

    def _reset(self) -> None:
        self.paths: list[str] = []
        self.rows: list[np.ndarray] = []
        self.sizes: list[int] = []
        self.mtimes: list[float] = []
        self.last = time.monotonic()

    def add(self, paths, rows, sizes, mtimes) -> None:
        self.paths.extend(paths)
        self.rows.extend(rows)
        self.sizes.extend(int(s) for s in sizes)
        self.mtimes.extend(float(m) for m in mtimes)
        due = (
            len(self.paths) >= self.every
            if self.every
            else time.monotonic() - self.last >= DEFAULT_CHECKPOINT_SECONDS
        )
        if due:
            self.flush()

    def flush(self) -> None:
        if not self.paths:
            return
        atomic.check_output_folder(self.folder)
        try:
            self.folder.mkdir(exist_ok=True)
        except OSError as exc:  # a file of that name (check_folder refuses it first)
            self._failed(RtsearchError(f"{self.folder}: cannot write checkpoints ({exc.strerror})"))
            return
        # after the last part there (not their count: one passed over may be among them)
        numbers = [p.stem[5:] for p in self.folder.glob("part-*.dat")]
        number = max((int(n) + 1 for n in numbers if n.isdigit()), default=0)
        part = Index(
            paths=self.paths,
            model=self.model,
            sizes=np.array(self.sizes, np.int64),
            mtimes=np.array(self.mtimes, np.float64),
            features=np.stack(self.rows),
            base_dir=str(Path(self.base_dir).resolve()),  # absolute, as in an index
        )
        dest = self.folder / f"part-{number:06d}.dat"
        # a Ctrl-C or SIGTERM during the save comes after its rows are counted as written:
        # raised as the save ended, it left them counted as not, and the interrupt's own
        # flush wrote them again (a part twice, and "keeps the 16 images" of 32 kept)
        with interrupts.held():
            try:
                store.save(part, dest, "checkpoint")
                self.written.append(dest)
                self.rows_written += len(self.paths)
                if self.settings is not None:
                    self._keep_settings()
            except RtsearchError as exc:  # a full disk: the analysis itself can still finish
                self._failed(exc)
                with contextlib.suppress(OSError):
                    self.folder.rmdir()  # only if no part made it: no empty folder left
            self._reset()

    def _keep_settings(self) -> None:
        kept = {**self.settings, "model": asdict(self.model)}  # type: ignore[dict-item]
        with contextlib.suppress(OSError), atomic.atomic_path(self.folder / SETTINGS) as tmp:
            tmp.write_text(json.dumps(kept))
        self.settings = None  # (once a run)

    def _failed(self, exc: RtsearchError) -> None:
        if self.warn and not self.failed:
            self.warn(f"{exc}; going on without checkpoints (a crash now loses this run)")
        self.failed = True
        self._reset()
