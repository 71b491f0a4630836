"""`rtsearch analyze DIR -o OUT.dat --ray [ADDRESS]`: the same analysis spread over a Ray
cluster (optional extra ``distributed``).

The driver scans the folder and skips what is already done (an existing index, finished
shard parts), cuts the rest into shards and hands them to Ray actors, each holding one
Extractor (onnxruntime picks CUDA on GPU nodes). The model travels through the object store,
so only the images need to be reachable from every node (a shared filesystem mounted at
the same path). Each finished shard comes back as feature rows and is written at once as
its own checkpoint part, ``OUT.dat.ckpt/part-shard-<hash>.dat`` — the same features-only
format single-process analysis writes — so a crashed or interrupted run, distributed or
not, resumes without redoing finished shards. A worker that dies mid-shard is restarted
by Ray and its shard retried (``max_restarts``/``max_task_retries``). The merge step is
the single-process one: one projection fitted over all features, written atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtsearch import analyze as single
from rtsearch import atomic, store
from rtsearch import projection as proj
from rtsearch.analyze import Progress, Report, Settings
from rtsearch.checkpoints import checkpoint_dir
from rtsearch.errors import RtsearchError, Warn, require_folder
from rtsearch.extraction import Collapsed, extract
from rtsearch.models import read_model_info
from rtsearch.store import Index, ModelRef

MAX_SHARD = 1024  # images per shard: a lost shard costs at most ~5 s of a GPU's work
RETRIES = 3


@dataclass(frozen=True)
class Shard:
    """A slice of the work list; its part file name depends only on its paths, so a retried
    or re-planned shard with the same paths finds its finished part."""

    paths: tuple[str, ...]

    @property
    def name(self) -> str:
        digest = hashlib.sha256("\n".join(self.paths).encode()).hexdigest()[:16]
        return f"part-shard-{digest}.dat"


def plan_shards(todo: list[str], workers: int) -> list[Shard]:
    """About four shards per worker (load balancing), none larger than MAX_SHARD."""
    if not todo:
        return []
    size = max(1, min(MAX_SHARD, math.ceil(len(todo) / (workers * 4))))
    return [Shard(tuple(todo[i : i + size])) for i in range(0, len(todo), size)]


class ShardWorker:
    """A Ray actor body: one Extractor, made on the first shard and reused for the rest.

    The model arrives with each task as an object-store reference wrapped in a list (so Ray
    does not resolve it eagerly): a restarted actor rebuilds its Extractor from it, and
    its constructor holds no object-store arguments that could be lost."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.extractor = None

    def _extractor(self, model: list, suffix: str):
        if self.extractor is None:
            import ray

            from rtsearch.extractor import Extractor

            # A private copy of the model on this node: no shared model folder needed.
            tmp = private_copy(ray.get(model[0]), suffix)
            try:
                self.extractor = Extractor(tmp, threads=self.threads)
            finally:
                tmp.unlink()  # the session has read it
        return self.extractor

    def run(self, base_dir: str, shard: Shard, batch: int, model: list, suffix: str) -> tuple:
        """(paths, features (n, D), sizes, mtimes, skipped [(path, reason)]) for a shard."""
        extractor = self._extractor(model, suffix)
        report = Report()
        parts = list(
            extract(Path(base_dir), list(shard.paths), extractor, batch, report, None, None)
        )
        paths = [p for part in parts for p in part[0]]
        dims = extractor.dims
        feats = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, dims), np.float32)
        sizes = [s for part in parts for s in part[2]]
        mtimes = [m for part in parts for m in part[3]]
        return paths, feats, sizes, mtimes, report.skipped


COPY_PREFIX = "rtsearch-model-"


def private_copy(data: bytes, suffix: str, folder: Path | None = None) -> Path:
    """Write ``data`` to a new file named for this process in the temporary folder; the
    copies of processes that are gone are removed first (an actor killed while it loaded
    its model left its copy behind: up to 528 MB each for VGG16)."""
    tmp = atomic.owned_temp(Path(folder or tempfile.gettempdir()), COPY_PREFIX, suffix)
    try:
        tmp.write_bytes(data)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def connect(address: str | None) -> None:
    """Join the cluster at ``address`` ("auto", "HOST:PORT", "ray://HOST:10001"); with no
    address, Ray joins the cluster already running on this machine or starts a local one."""
    try:
        import ray
    except ImportError:
        raise RtsearchError(
            "--ray needs Ray: pip install 'rtsearch[distributed]' "
            "(from a checkout: pip install -e '.[distributed]')"
        ) from None
    if ray.is_initialized():
        return
    target, origin = bootstrap_address(address)
    shown = address or "(local)"
    if origin == "RAY_ADDRESS":
        env = f"RAY_ADDRESS={os.environ['RAY_ADDRESS']}"
        shown = f"{address} ({env})" if address else env
    if target is not None:
        check_reachable(target, shown, origin)
    try:
        # Starting a local cluster (no HOST:PORT to reach), a Ctrl-C waits until it is up,
        # 4-8 s here (the caller's disconnect then stops it): taken halfway through, it left
        # the cluster's agents running. The processes Ray starts inherit the block, so a
        # terminal's Ctrl-C, which reaches the whole process group, leaves them to that
        # disconnect (its workers printed errors). Joining a cluster starts nothing here,
        # and Ray may retry for a while: a Ctrl-C then acts at once.
        local = target is None
        with _sigint_blocked() if local else contextlib.nullcontext():
            ray.init(address=address or None, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        # the token is what Ray leaves out for an explicit HOST:PORT (see _auth_hint)
        hint = _auth_hint() if origin == "given" and first.startswith("Failed to connect") else ""
        raise RtsearchError(f"Ray cluster {shown}: cannot connect ({first}){hint}") from None


def _auth_hint() -> str:
    """Ray (2.60) sends its token only when it finds the cluster itself (no address or
    "auto"): a cluster started with token authentication refuses an explicit address."""
    token = Path.home() / ".ray" / "auth_token"
    if os.environ.get("RAY_AUTH_MODE") or not token.is_file():
        return ""
    return f"; if the cluster uses token authentication ({token} is there), try RAY_AUTH_MODE=token"


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT held pending meanwhile (on the main thread); delivered, as a Ctrl-C, after."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "pthread_sigmask"
    ):  # (Windows has no signal masks: a Ctrl-C there is taken as it comes)
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def disconnect(quiet: bool = False) -> None:
    """Leave the cluster now (a local one started for this run stops), with Ctrl-C held
    off meanwhile: Ray leaves at exit otherwise, and a second Ctrl-C there broke its
    shutdown (a traceback, at times a crash) and left its agents running. ``quiet``: what
    Ray's native code writes to stderr meanwhile is dropped."""
    try:
        import ray
    except ImportError:  # connect said so
        return
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        with _stderr_dropped() if quiet else contextlib.nullcontext():
            ray.shutdown()
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _stderr_dropped() -> Iterator[None]:
    """File descriptor 2 points at /dev/null meanwhile (native code writes there)."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def bootstrap_address(address: str | None) -> tuple[str | None, str]:
    """The HOST:PORT that ``ray.init(address)`` will connect to, found as Ray finds it,
    and where it came from ("given", "RAY_ADDRESS" or "record"): for no address or "auto",
    RAY_ADDRESS, else the cluster last started on this machine (Ray's ``ray_current_cluster``
    file); a loopback host becomes this node's address. None where Ray would start a local
    cluster, or cannot tell (it then says why itself)."""
    origin = "given"
    if not address or address == "auto":
        env = os.environ.get("RAY_ADDRESS", "")
        origin = "RAY_ADDRESS" if env else "record"
        if env.startswith("ray://"):
            address = env
    if address and address.startswith("ray://"):
        return address.removeprefix("ray://"), origin
    if address and address != "auto":
        check_address(address)
    try:
        from ray._private.services import canonicalize_bootstrap_address

        return canonicalize_bootstrap_address(address or None), origin
    except Exception:  # a private helper: any change or failure leaves it to ray.init
        return (address if address and address != "auto" else None), origin


FORMS = "HOST:PORT (the head's GCS port, 6379 by default), ray://HOST:10001 or auto"


def check_address(address: str) -> None:
    """A HOST:PORT that Ray cannot use, in one line: Ray printed a traceback for ":123",
    "Connection refused" for port 99999, and took "http://HOST:PORT" for a host name."""
    if "://" in address:
        raise RtsearchError(f"Ray cluster {address}: not an address Ray takes ({FORMS})")
    host, sep, port = address.rpartition(":")
    if not sep or host.endswith(":"):  # no port, or an IPv6 address without brackets
        raise RtsearchError(f"Ray cluster {address}: no port; Ray takes {FORMS}")
    if not host.strip("[]"):
        raise RtsearchError(f"Ray cluster {address}: no host before the port")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise RtsearchError(f"Ray cluster {address}: the port must be a number from 1 to 65535")


# HTTP/2's client preface and an empty SETTINGS frame: a gRPC server (Ray's GCS, its client
# server) answers with a SETTINGS frame of its own (type 4, the frame header's 4th byte).
_H2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def check_reachable(target: str, shown: str, origin: str = "given", timeout: float = 10.0) -> None:
    """Fail in seconds where Ray retries for minutes: a HOST:PORT where nothing listens,
    where something else answers (a web server, Ray's dashboard), or a cluster last
    started here that is gone. ``target`` is what Ray connects to; ``shown`` names the
    address asked for, ``origin`` where Ray found it. ``timeout`` bounds the whole probe."""
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return  # other forms Ray resolves itself
    check_address(target)
    if not shown.startswith(target):
        shown += f", reached at {target}"
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as conn:
            conn.sendall(_H2_HELLO)
            reply = _read(conn, 9, deadline)
            if len(reply) == 9 and reply[3] != 4:  # for the message: the rest of its line
                reply += _read(conn, 120, min(deadline, time.monotonic() + 1.0))
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        hint = "; `ray stop --force` forgets a stopped one" if origin == "record" else ""
        raise RtsearchError(f"Ray cluster {shown}: cannot connect ({reason}{hint})") from None
    if len(reply) < 9 or reply[3] != 4:
        line = reply.splitlines()[0] if reply.strip() else b""
        said = "".join(c if c.isprintable() else "?" for c in line.decode("ascii", "replace"))
        said = said[:60] or "nothing"
        raise RtsearchError(
            f"Ray cluster {shown}: something listens there, but not Ray (it said {said!r}); "
            f"Ray takes {FORMS}"
        )


def _read(conn: socket.socket, n: int, deadline: float) -> bytes:
    """Up to ``n`` bytes, fewer where the other side closes, or stays silent or slow past
    ``deadline`` (time.monotonic())."""
    data = b""
    with contextlib.suppress(TimeoutError, OSError):
        while len(data) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            conn.settimeout(left)
            chunk = conn.recv(n - len(data))
            if not chunk:
                break
            data += chunk
    return data


def make_workers() -> list:
    """One actor per GPU when the cluster has GPUs, else one per CPU (1 inference thread)."""
    import ray

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    count = gpus or max(1, int(resources.get("CPU", 1)))
    actor = ray.remote(
        num_cpus=1, num_gpus=1 if gpus else 0, max_restarts=RETRIES, max_task_retries=RETRIES
    )(ShardWorker)
    return [actor.remote(1) for _ in range(count)]


def analyze(
    base_dir: Path,
    out: Path,
    model_path: Path,
    settings: Settings = Settings(),
    *,
    address: str | None = None,
    progress: Callable[[Progress], None] | None = None,
    warn: Warn | None = None,
) -> Report:
    """Analyze ``base_dir`` into ``out`` on a Ray cluster; same result as rtsearch.analyze,
    and like it one writer at a time per index (atomic.writer_lock)."""
    base_dir, out = Path(base_dir), Path(out)
    require_folder(base_dir)
    store.check_storable_folder(base_dir)
    atomic.check_writable(out)  # fail before the cluster work, not after it
    atomic.check_room_for_siblings(out)
    with atomic.writer_lock(out):
        return _analyze(base_dir, out, model_path, settings, address, progress, warn)


def _analyze(base_dir, out, model_path, settings, address, progress, warn) -> Report:
    start = time.monotonic()
    model = ModelRef.of(read_model_info(model_path), model_path)
    if settings.projection != "none":
        proj.check_dims(settings.dims, model.feature_dims)
    report, done, old, todo = single.plan(base_dir, out, model, settings, warn)
    if todo:
        interrupted = False
        try:
            connect(address)
            _run_shards(
                base_dir, out, model, model_path, todo, settings, done, report, progress, warn
            )
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            # after a Ctrl-C, what Ray says while it stops (the tasks it could not report)
            # is not news
            disconnect(quiet=interrupted)
    single.finish(base_dir, out, model, settings, report, done, old, warn)
    report.seconds = time.monotonic() - start
    return report


def _run_shards(base_dir, out, model, model_path, todo, settings, done, report, progress, warn):
    """Farm the shards out; write each finished one as a checkpoint part as it arrives."""
    import ray

    workers = make_workers()
    weights = [ray.put(Path(model_path).read_bytes())]  # listed: passed as a reference
    suffix = Path(model_path).suffix
    shards = plan_shards(todo, len(workers))
    folder = checkpoint_dir(out)
    skipped_before = len(report.skipped)  # unreadable at scan time
    # absolute: a worker's own working folder (the cluster's, not ours) would resolve a
    # relative one elsewhere and find no image at all
    where = str(Path(base_dir).resolve())
    pending = {}
    for i, shard in enumerate(shards):
        worker = workers[i % len(workers)]
        pending[worker.run.remote(where, shard, settings.batch, weights, suffix)] = shard
    said = Collapsed(warn) if warn else None  # 10,000 HEICs without pillow-heif: 2 lines
    start = time.monotonic()
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        shard = pending.pop(ready[0])
        try:
            paths, feats, sizes, mtimes, skipped = ray.get(ready[0])
        except ray.exceptions.RayError as exc:
            raise RtsearchError(
                f"{base_dir}: a shard of {len(shard.paths)} images starting with "
                f"{shard.paths[0]} failed on Ray after {RETRIES} retries ({type(exc).__name__}); "
                "rerun to resume: finished shards are kept"
            ) from None
        _write_part(folder / shard.name, model, base_dir, paths, feats, sizes, mtimes)
        done.add(paths, feats, sizes, mtimes)
        report.analysed += len(paths)
        report.skipped.extend(skipped)
        for _, reason in skipped:
            if said:
                said(reason)
        if progress:
            elapsed = max(time.monotonic() - start, 1e-9)
            finished = report.analysed + len(report.skipped)
            total = len(todo) + skipped_before
            progress(Progress(finished, total, len(report.skipped), report.analysed / elapsed))
    if said:
        said.close()


def _write_part(dest: Path, model: ModelRef, base_dir: Path, paths, feats, sizes, mtimes) -> None:
    if not paths:
        return
    part = Index(
        paths=list(paths),
        model=model,
        sizes=np.asarray(sizes, np.int64),
        mtimes=np.asarray(mtimes, np.float64),
        features=np.asarray(feats, np.float32),
        base_dir=str(Path(base_dir).resolve()),  # absolute, as in an index
    )
    store.save(part, dest)


def run_cli(args, settings: Settings, excluded_before: tuple[str, ...] = ()) -> int:
    """`rtsearch analyze ... --ray [ADDRESS]`, called from rtsearch.cli.cmd_analyze;
    ``excluded_before``: the --exclude patterns of the index at -o, said where the images
    they left out come back."""
    from rtsearch.cli import analysis_summary, say_taken_back, with_progress
    from rtsearch.models import read_model_info, resolve_model

    model_path = resolve_model(args.model)
    report = with_progress(
        lambda **shown: analyze(
            args.directory, args.output, model_path, settings, address=args.ray or None, **shown
        ),
        quiet=args.quiet,
    )
    assert report.index is not None
    say_taken_back(args, excluded_before, report.index.paths)
    print(analysis_summary(args.output, report, f"{read_model_info(model_path).label} on Ray"))
    return 0
