"""Writing files so that nothing is lost: a temp file renamed over the destination in one
step, one writer at a time per index, and destinations checked before the work starts."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from rtsearch.errors import WINDOWS, RtsearchError, first_line

# Read once at import (single-threaded then): os.umask can only be read by setting it.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


STALE_TEMP_S = 24 * 3600  # another machine's temp file (shared folder): older is abandoned
_HOST = "".join(c for c in socket.gethostname() if c.isalnum())[:40] or "host"


_held: set[Path] = set()  # the writer locks this process holds


class IndexBusy(RtsearchError):
    """Another process is writing this index (see writer_lock)."""


@contextlib.contextmanager
def writer_lock(dest: Path) -> Iterator[None]:
    """One analyze or update at a time per index: two would both do the work and trip over
    each other's checkpoint parts. A lock on ``DEST.lock`` (flock on POSIX, its first byte
    on Windows), removed on release. A lock file whose holder died is free again."""
    lock = _lock_path(dest)
    tries = 0
    while True:
        try:
            fd = _open_lock(lock)
        except OSError:  # a folder we cannot write to: the writer's own checks say so
            yield
            return
        try:
            _lock(fd)
        except BlockingIOError:
            os.close(fd)
            tries += 1
            if tries < 5:  # (held for a moment by being_written's look)
                time.sleep(0.05)
                continue
            raise IndexBusy(
                f"{dest}: another rtsearch analyze, update, demo or viewer watching it is "
                "writing it; wait for it to end"
            ) from None
        except OSError:  # not to be locked (NFS's flock, emulated, needs a file to write)
            os.close(fd)
            fd = -1
            break
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        _unlock(fd)
        os.close(fd)  # its holder removed it as we opened it: take the new one
    if fd < 0:  # (as where no lock file can be made: the writer's own checks go on)
        yield
        return
    _held.add(lock)
    try:
        yield
    finally:
        _held.discard(lock)
        if WINDOWS:  # an open file cannot be removed there: closed first
            _unlock(fd)
            os.close(fd)
        with contextlib.suppress(OSError):
            lock.unlink()
        if not WINDOWS:  # removed while held: no one takes the old file meanwhile
            os.close(fd)


def being_written(dest: Path) -> bool:
    """Whether an analyze or update holds ``dest``'s writer lock now (a look: the lock is
    taken and let go at once, where it is free)."""
    lock = _lock_path(dest)
    if lock in _held:  # (this process's own: an update reading the index it writes)
        return False
    try:
        fd = _open_lock(lock, make=False)
    except OSError:  # no lock file: no writer (or none this process could see)
        return False
    try:
        _lock(fd)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        _unlock(fd)
        return False
    finally:
        os.close(fd)


def _open_lock(lock: Path, *, make: bool = True) -> int:
    """``lock`` opened to be locked, made where it is not there (``make``): as the umask
    allows (a folder shared by a group, umask 002: its group may take it too), and
    read-only where another user's is not ours to write (flock needs no more; it was taken
    for no lock, and two users' runs of one index went on together)."""
    try:
        return os.open(lock, os.O_RDWR | (os.O_CREAT if make else 0), 0o666)
    except PermissionError:
        if WINDOWS or not lock.exists():
            raise
        return os.open(lock, os.O_RDONLY)


def _lock_path(dest: Path) -> Path:
    return Path(os.path.realpath(dest) + ".lock")  # one lock whatever link names the index


def _lock(fd: int) -> None:
    """An exclusive lock on ``fd``'s file, or BlockingIOError while another holds one."""
    if WINDOWS:
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as exc:  # (EACCES: locked by another)
            raise BlockingIOError(exc.errno, exc.strerror) from None
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlock(fd: int) -> None:
    """Windows frees a lock left at close "when resources allow": it is freed first. (POSIX
    frees flock's with the file.)"""
    if WINDOWS:
        import msvcrt

        with contextlib.suppress(OSError):
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


@contextlib.contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temp path beside ``dest``; on success it replaces ``dest`` in one rename.

    The temp name holds the host and process id. A process killed mid-write (SIGKILL, power)
    leaves its temp file behind, hidden by the leading dot; the next write to ``dest``
    removes those whose process is gone (or, from another host, that are a day old).
    A ``dest`` that is a symlink has its target replaced (the link stays a link), and an
    existing file keeps its permissions."""
    dest = Path(os.path.realpath(dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(os.stat(dest).st_mode)
    except OSError:
        mode = 0o666 & ~_UMASK  # mkstemp makes 0600; new files get what the umask allows
    tmp = owned_temp(dest.parent, temp_prefix(dest))
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)
        if not hasattr(os, "fchmod"):  # Windows before Python 3.13: its read-only flag only
            os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def temp_prefix(dest: Path) -> str:
    """How atomic_path names the temp files of ``dest`` (cut short so a 255-byte name still
    leaves room for the rest)."""
    return f".{Path(dest).name[:100]}."


def remove_abandoned_temps(dest: Path) -> None:
    """Remove the temp files of ``dest`` left by writers that died: before the free space
    is measured for a new write, since they hold room it needs."""
    dest = Path(os.path.realpath(dest))
    _remove_abandoned(dest.parent, temp_prefix(dest), ".tmp")


def owned_temp(folder: Path, prefix: str, suffix: str = ".tmp") -> Path:
    """A new empty file in ``folder`` named ``prefix``, this host and process id, random,
    ``suffix``; first those of that prefix whose process is gone are removed (another
    host's after STALE_TEMP_S), so a killed writer's file does not stay for ever."""
    _remove_abandoned(folder, prefix, suffix)
    owner = f"{_HOST}-{os.getpid()}-"
    fd, tmp = tempfile.mkstemp(prefix=prefix + owner, suffix=suffix, dir=folder)
    os.close(fd)
    return Path(tmp)


def owned_temp_dir(folder: Path, prefix: str, adopt: Callable[[Path], bool] | None = None) -> Path:
    """A new folder in ``folder``, named as ``owned_temp`` names files; abandoned ones of
    that prefix (their process gone) are removed with what they hold, except the newest
    one ``adopt`` accepts: that one is renamed to this process's name and returned, so
    work cut short can go on from where it stopped."""
    left = _abandoned(folder, prefix, "")
    taken = None
    if adopt is not None:
        for path in sorted(left, key=_mtime, reverse=True):
            if path.is_dir() and not path.is_symlink() and adopt(path):
                taken = path
                break
    for path in left:
        if path != taken:
            _remove(path)
    owner = prefix + f"{_HOST}-{os.getpid()}-"
    if taken is not None:
        mine = folder / (owner + secrets.token_hex(4))
        try:
            taken.rename(mine)  # (one fetch at a time holds the writer lock)
            return mine
        except OSError:
            _remove(taken)
    return Path(tempfile.mkdtemp(prefix=owner, dir=folder))


def _abandoned(folder: Path, prefix: str, suffix: str) -> list[Path]:
    """Entries of ``folder`` of that prefix and suffix whose process is gone (another
    host's: older than STALE_TEMP_S)."""
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix) and n.endswith(suffix)]
    except OSError:
        return []
    found = []
    for name in names:
        host, _, rest = name[len(prefix) :].partition("-")
        pid = rest.partition("-")[0]
        path = folder / name
        try:
            if host == _HOST and pid.isdigit():
                if _alive(int(pid)):
                    continue
            elif time.time() - path.stat().st_mtime < STALE_TEMP_S:
                continue
        except OSError:
            continue  # gone meanwhile
        found.append(path)
    return found


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except OSError:
        pass  # gone meanwhile, or not ours to remove


def _remove_abandoned(folder: Path, prefix: str, suffix: str) -> None:
    for path in _abandoned(folder, prefix, suffix):
        _remove(path)


def _alive(pid: int) -> bool:
    if WINDOWS:  # os.kill(pid, 0) sends CTRL_C_EVENT there, and a dead one is EINVAL
        import psutil

        return psutil.pid_exists(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def check_writable(dest: Path, what: str = "index") -> None:
    """Refuse, in one line, a destination (of an index, or ``what``) that cannot be written."""
    dest = Path(dest)
    blocker = file_in_the_way(dest)
    if blocker is not None:
        raise RtsearchError(f"{dest}: cannot write {what} ({blocker} is a file, not a folder)")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RtsearchError(f"{dest}: cannot write {what} ({os_reason(exc)})") from None
    if dest.is_dir():
        raise RtsearchError(f"{dest}: cannot write {what} (is a directory)")
    try:
        mode = os.stat(dest).st_mode  # through links: /dev/stdout is a pipe or a terminal
    except OSError:
        mode = None  # not there yet (or a dangling link): made new
    if mode is not None and not stat.S_ISREG(mode):
        # a file is written beside it and renamed over it: a device or a pipe would be
        # replaced by a plain file, or the rename refused after all the work
        raise RtsearchError(f"{dest}: cannot write {what} (not a regular file)")
    # a link's target is what is written (atomic_path): its folder is the one to check
    folder = Path(os.path.realpath(dest)).parent
    if not folder.is_dir():  # a dangling link into a folder that is not there
        raise RtsearchError(
            f"{dest}: cannot write {what} (a link to {os.path.realpath(dest)}, in a folder "
            "that does not exist)"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RtsearchError(f"{dest}: cannot write {what} (folder not writable)")
    try:  # what access() passes may still refuse a file (root in /proc, some mounts)
        with tempfile.NamedTemporaryFile(
            dir=folder, prefix=f".{dest.name[:100]}.", suffix=".probe"
        ):
            pass
    except OSError as exc:
        raise RtsearchError(f"{dest}: cannot write {what} ({os_reason(exc)})") from None


SIBLING_SUFFIX = ".ckpt"  # the longest name an index keeps beside it (NAME.lock too)


def check_room_for_siblings(dest: Path) -> None:
    """An analysis keeps its checkpoints and lock beside the index, named after it: a name
    that leaves them no room under the file system's limit is refused in one line (a
    255-byte name ended in a traceback, "File name too long"); a save alone takes it."""
    real = Path(os.path.realpath(dest))
    try:
        limit = os.pathconf(real.parent, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # (no pathconf on Windows: 255 there)
        limit = 255
    size = len(os.fsencode(real.name))
    if size + len(SIBLING_SUFFIX) > limit:
        raise RtsearchError(
            f"{dest}: name too long ({size} bytes): its checkpoint folder beside it, "
            f"NAME{SIBLING_SUFFIX}, would pass the file system's {limit}; choose a name of at "
            f"most {limit - len(SIBLING_SUFFIX)} bytes"
        )


def file_in_the_way(dest: Path) -> Path | None:
    """A file where one of ``dest``'s folders should be."""
    return next((p for p in dest.parents if p.exists() and not p.is_dir()), None)


def os_reason(exc: OSError) -> str:
    """h5py puts the errno inside a long multi-line message: show just the errno's text."""
    text = f"{exc.strerror or ''} {exc}"
    for code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EIO):
        if f"errno = {code}," in text:
            return os.strerror(code)
    return (exc.strerror or "").strip().split("\n")[0] or first_line(exc)


def check_output_folder(path: Path) -> None:
    """The folder ``path`` goes in (the output's, made before the work) is still there:
    deleted meanwhile, writing again would make it again without a word, and its lock
    with it gone, another run to the same -o would start beside this one."""
    folder = Path(os.path.realpath(path)).parent
    if not folder.is_dir():
        raise RtsearchError(
            f"{folder}: the output folder went away during the analysis (deleted?); stopped: "
            "analyze again to make it anew"
        )
