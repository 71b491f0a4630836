"""Real images for the demo and the evaluation, fetched once into the user data directory.

On Debian/Ubuntu, ``apt-get download`` + ``dpkg-deb -x`` (no root needed) give
``tuxpaint-stamps-default`` (~800 categorised PNG cut-outs, GPL-2), and optionally
``plasma-workspace-wallpapers`` and ``opencv-doc`` (real photos). Elsewhere the sample photos
that scikit-image, scikit-learn and matplotlib ship are used. Layout of the gallery folder:

    stamps/<category>/...   tuxpaint stamps; first-level folders are labels (`rtsearch eval`)
    photos/wallpapers/...   one file per wallpaper (the largest resolution up to 2560 px)
    photos/opencv/...       OpenCV's sample photos
    samples/<package>/...   the Python packages' sample photos (fallback only)
    GALLERY.json            written last: a gallery without it is incomplete and is rebuilt
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import platformdirs

from rtsearch.atomic import atomic_path, os_reason, owned_temp_dir, writer_lock
from rtsearch.decode import IMAGE_EXTENSIONS, load_rgb
from rtsearch.errors import RtsearchError, count, size_text

MARKER = "GALLERY.json"
LAYOUT = ("stamps", "photos", "samples")  # a gallery's first-level folders
STAGING = ".gallery-"  # a fetch's folder beside the gallery, renamed into place when done
# In a fetch's folder: the gallery it is for and the packages whose pictures it holds. A
# fetch cut short keeps its folder, and the next one goes on from there.
PARTIAL = ".fetched.json"
STAMPS_PACKAGE = "tuxpaint-stamps-default"
KEPT_BYTES = 90 * 2**20  # about what the gallery keeps of the packages
PHOTO_PACKAGES = ("plasma-workspace-wallpapers", "opencv-doc")
STAMPS_ROOT = "usr/share/tuxpaint/stamps"
WALLPAPERS_ROOT = "usr/share/wallpapers"
OPENCV_ROOT = "usr/share/doc/opencv-doc/examples/data"
# OpenCV's data folder also holds calibration boards, masks and digit sheets: photos only.
OPENCV_SKIP = re.compile(
    r"^(left|right)\d|chessboard|mask|digits|gradient|logo|text|notes", re.IGNORECASE
)
APT_TIMEOUT_S = 600
Log = Callable[[str], None]


@dataclass(frozen=True)
class Gallery:
    root: Path
    source: str  # "debian" or "python-samples"
    packages: tuple[str, ...]
    count: int

    def describe(self) -> str:
        fallback = ""
        if self.source != "debian" and shutil.which("apt-get") and shutil.which("dpkg-deb"):
            # (offline when it was fetched)
            fallback = "; the Debian packages could not be fetched then: --refetch tries again"
        return (
            f"{self.count} images from {', '.join(self.packages)} ({self.source}{fallback}) "
            f"in {self.root}"
        )


def default_dir() -> Path:
    return Path(platformdirs.user_data_dir("rtsearch")) / "gallery"


def read_marker(root: Path) -> Gallery | None:
    try:
        raw = json.loads((root / MARKER).read_text())
        return Gallery(root, raw["source"], tuple(raw["packages"]), int(raw["count"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ensure_gallery(root: Path | None = None, *, refetch: bool = False, log: Log = print) -> Gallery:
    """The gallery at ``root`` (default: the user data dir), fetching it only if missing,
    or with ``refetch``. A refetch that gets only the fallback keeps a fetched gallery
    there; a folder of other files is never replaced."""
    given = root is not None
    root = Path(root) if given else default_dir()
    found = read_marker(root)
    if found is not None and not refetch:
        return found
    if found is None and (root.is_file() or _holds_files(root)):
        where = "choose another --gallery-dir" if given else "pass --gallery-dir DIR"
        if not _ours(root):  # a fetch only ever renames a finished folder into place
            raise RtsearchError(f"{root}: exists and is not an rtsearch gallery; {where}")
        if not refetch:  # (a swap or a fetch cut short, before this version's)
            raise RtsearchError(
                f"{root}: an incomplete demo gallery (its {MARKER} is missing or damaged); "
                "pass --refetch to fetch it again"
            )
    try:
        root.parent.mkdir(parents=True, exist_ok=True)  # (the lock file goes there)
        with writer_lock(root):  # two demos at once each fetched it, and one removed the other's
            again = read_marker(root)  # one fetched meanwhile, as this one waited to start
            if again is not None and not refetch:
                return again
            return _fetch(root, again or found, log)
    except OSError as exc:  # a data folder that is a file, or not writable
        where = exc.filename or root
        why = os_reason(exc)
        raise RtsearchError(f"{where}: the demo gallery could not be made ({why})") from None


def _fetch(root: Path, found: Gallery | None, log: Log) -> Gallery:
    # named for this process: the next fetch removes one whose process is gone (a killed
    # fetch left 120-330 MB behind for good), or goes on with it (one cut short after two
    # of its three packages downloaded them all again)
    staging = owned_temp_dir(root.parent, STAGING, adopt=lambda p: bool(_taken(p, root)))
    before = _taken(staging, root)
    if before:
        log(f"gallery: going on with the fetch stopped before ({', '.join(before)} fetched then)")
    finished = False
    try:
        for entry in staging.iterdir():  # what a killed fetch was unpacking
            if entry.name not in (*LAYOUT, PARTIAL):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        _record(staging, str(root.absolute()), before)
        source, packages = _fill(staging, log)
        images = count_images(staging)
        if images == 0:
            raise RtsearchError(f"{root}: no gallery images could be obtained")
        if found is not None and found.source == "debian" and source != "debian":
            log(f"gallery: kept the gallery there, fetched from {', '.join(found.packages)}")
            return found  # (a refetch offline replaced 881 photos with 29 samples)
        gallery = Gallery(root, source, tuple(packages), images)
        (staging / PARTIAL).unlink()
        _write_marker(staging, gallery)
        # Swapped in whole, renames only: the old one goes aside first (removed after, or
        # by the next fetch if this one is killed), so no state is half of either.
        aside = owned_temp_dir(root.parent, STAGING) if root.exists() else None
        if aside is not None:
            root.rename(aside / root.name)
        staging.rename(root)
        finished = True
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    finally:
        kept = [] if finished else _taken(staging, root)
        if kept:
            log(
                f"gallery: fetch stopped; the pictures of {', '.join(kept)} are kept in "
                f"{staging}, and the next `rtsearch demo` goes on from there"
            )
        else:
            shutil.rmtree(staging, ignore_errors=True)
    return gallery


def _taken(staging: Path, root: Path) -> list[str]:
    """The packages whose pictures a fetch's folder holds, for the gallery at ``root``."""
    where, packages = _progress(staging)
    return packages if where == str(root.absolute()) else []


def _progress(staging: Path) -> tuple[str | None, list[str]]:
    """A fetch's folder's record: the gallery it is for, the packages it holds."""
    try:
        data = json.loads((staging / PARTIAL).read_text())
    except (OSError, ValueError):
        return None, []
    if not isinstance(data, dict) or not isinstance(data.get("root"), str):
        return None, []
    packages = data.get("packages")
    if not isinstance(packages, list):
        return None, []
    return data["root"], [p for p in packages if isinstance(p, str)]


def _record(staging: Path, root: str, packages: list[str]) -> None:
    with atomic_path(staging / PARTIAL) as tmp:
        Path(tmp).write_text(json.dumps({"root": root, "packages": packages}))


def _holds_files(root: Path) -> bool:
    return root.is_dir() and any(p.is_file() for p in root.rglob("*"))


def _ours(root: Path) -> bool:
    """Whether ``root`` is laid out as a gallery (no marker: a fetch or swap cut short)."""
    return root.is_dir() and {p.name for p in root.iterdir()} <= {*LAYOUT, MARKER}


def _fill(staging: Path, log: Log) -> tuple[str, list[str]]:
    if shutil.which("apt-get") and shutil.which("dpkg-deb"):
        packages = fetch_debian(staging, log)
        if packages:
            return "debian", packages
        log("gallery: Debian packages unavailable; using the Python packages' sample photos")
    return "python-samples", copy_python_samples(staging / "samples")


def _write_marker(root: Path, gallery: Gallery) -> None:
    data = asdict(gallery) | {"root": None}
    with atomic_path(root / MARKER) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=1))


def count_images(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)


# ---------------------------------------------------------------- Debian packages


def fetch_debian(dest: Path, log: Log) -> list[str]:
    """Download and unpack the packages; returns those that gave images. Their size is
    said first, and a disk without room for them is said instead (350 MB came down
    without a word, and a disk that filled on the way failed each package in turn).
    Packages ``dest``'s record (PARTIAL) names are there already: each one taken is added
    to it as it is."""
    where, got = _progress(dest)
    packages = tuple(p for p in (STAMPS_PACKAGE, *PHOTO_PACKAGES) if p not in got)
    sizes = package_sizes(packages) if packages else {}
    if sizes:
        download = sum(size for size, _ in sizes.values())
        # one package at a time: its .deb and its unpacked tree, then the pictures kept
        room = max(size + unpacked for size, unpacked in sizes.values()) + KEPT_BYTES
        free = shutil.disk_usage(dest).free
        if free < room:
            log(
                f"gallery: the Debian packages need about {size_text(room)} free in {dest.parent}"
                f" while unpacked, and {size_text(free)} is"
            )
            return got
        log(
            f"gallery: fetching {count(len(packages), 'Debian package')} with apt-get: about "
            f"{size_text(download)} to download, the pictures kept about {size_text(KEPT_BYTES)}"
        )
    with tempfile.TemporaryDirectory(dir=dest, ignore_cleanup_errors=True) as tmp:
        for package, take in (
            (STAMPS_PACKAGE, _take_stamps),
            (PHOTO_PACKAGES[0], _take_wallpapers),
            (PHOTO_PACKAGES[1], _take_opencv),
        ):
            if package not in packages:
                continue
            tree = Path(tmp) / package
            try:
                unpack_package(package, tree, log)
            except RtsearchError as exc:
                log(f"gallery: {exc}")
                continue
            if take(tree, dest) > 0:
                got.append(package)
                if where is not None:
                    _record(dest, where, got)
            shutil.rmtree(tree, ignore_errors=True)  # sounds and docs: hundreds of MB
    return got


def package_sizes(packages: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """Each package's download and unpacked size in bytes, from apt's own lists (no
    network); {} where apt-cache cannot tell them all."""
    try:
        run = subprocess.run(
            ["apt-cache", "show", "--no-all-versions", *packages],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return {}
    sizes: dict[str, tuple[int, int]] = {}
    for record in run.stdout.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in record.splitlines() if ": " in line and line[0] != " "
        )
        with contextlib.suppress(KeyError, ValueError):
            sizes[fields["Package"]] = (int(fields["Size"]), int(fields["Installed-Size"]) * 1024)
    return sizes if set(sizes) == set(packages) else {}


def unpack_package(package: str, tree: Path, log: Log) -> None:
    """``apt-get download`` into a temporary folder, then ``dpkg-deb -x`` into ``tree``."""
    tree.mkdir(parents=True)
    log(f"gallery: downloading {package} with apt-get")
    _run(["apt-get", "download", package], cwd=tree.parent, what=package)
    debs = sorted(tree.parent.glob(f"{package}_*.deb"))
    if not debs:
        raise RtsearchError(f"{package}: apt-get download produced no .deb")
    _run(["dpkg-deb", "-x", str(debs[-1]), str(tree)], cwd=tree.parent, what=debs[-1].name)
    debs[-1].unlink()


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    """``cmd`` in a process group of its own, killed whole if this one stops (a SIGTERM
    while dpkg-deb unpacked left its tar writing into the folder being removed: a
    traceback, and 210 MB left behind)."""
    try:
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
    except OSError as exc:
        raise RtsearchError(f"{what}: {cmd[0]} failed ({exc})") from None
    try:
        _, stderr = proc.communicate(timeout=APT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise RtsearchError(f"{what}: {cmd[0]} took over {APT_TIMEOUT_S} s") from None
    except BaseException:  # Ctrl-C, SIGTERM: its children stop too
        _kill_group(proc)
        raise
    if proc.returncode != 0:
        last = (stderr.strip().splitlines() or ["no message"])[-1]
        raise RtsearchError(f"{what}: {' '.join(cmd[:2])} failed: {last}")


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _take_stamps(tree: Path, dest: Path) -> int:
    """PNG stamps keep their category tree (SVG duplicates and sounds are left out)."""
    src = tree / STAMPS_ROOT
    n = 0
    for f in sorted(src.rglob("*.png")):
        target = dest / "stamps" / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
        n += 1
    return n


def _take_wallpapers(tree: Path, dest: Path) -> int:
    """Each wallpaper ships in many resolutions: keep one, the widest up to 2560 px."""
    best: dict[str, tuple[int, Path]] = {}
    for f in (tree / WALLPAPERS_ROOT).rglob("*"):
        m = re.fullmatch(r"(\d+)x(\d+)\.(jpg|jpeg|png)", f.name.lower())
        if not m:
            continue
        name = f.relative_to(tree / WALLPAPERS_ROOT).parts[0]
        variant = f"{name}-dark" if "dark" in f.parent.name else name
        width = int(m.group(1))
        score = width if width <= 2560 else -width
        if variant not in best or score > best[variant][0]:
            best[variant] = (score, f)
    for variant, (_, f) in best.items():
        (dest / "photos" / "wallpapers").mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dest / "photos" / "wallpapers" / f"{variant}{f.suffix.lower()}")
    return len(best)


def _take_opencv(tree: Path, dest: Path) -> int:
    n = 0
    for f in sorted((tree / OPENCV_ROOT).glob("*")):
        if f.suffix.lower() in (".jpg", ".jpeg", ".png") and not OPENCV_SKIP.search(f.name):
            (dest / "photos" / "opencv").mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest / "photos" / "opencv" / f.name)
            n += 1
    return n


# ---------------------------------------------------------------- Python packages


def python_sample_dirs() -> dict[str, Path]:
    """Folders of sample photos shipped inside installed Python packages."""
    where = {
        "scikit-image": ("skimage", "data"),
        "scikit-learn": ("sklearn", "datasets/images"),
        "matplotlib": ("matplotlib", "mpl-data/sample_data"),
    }
    found = {}
    for package, (module, sub) in where.items():
        spec = importlib.util.find_spec(module)
        if spec and spec.submodule_search_locations:
            folder = Path(next(iter(spec.submodule_search_locations))) / sub
            if folder.is_dir():
                found[package] = folder
    return found


def copy_python_samples(dest: Path) -> list[str]:
    got = []
    for package, folder in python_sample_dirs().items():
        # only what analysis can read (scikit-image's multipage TIFF was said unreadable
        # on every run of the demo)
        files = [
            f
            for f in sorted(folder.rglob("*"))
            if f.suffix.lower() in IMAGE_EXTENSIONS and _readable(f)
        ]
        for f in files:
            target = dest / package / f.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)
        if files:
            got.append(package)
    return got


def _readable(path: Path) -> bool:
    try:
        load_rgb(path)
    except RtsearchError:
        return False
    return True
