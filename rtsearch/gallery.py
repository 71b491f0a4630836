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

import importlib.util
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import platformdirs

from rtsearch.atomic import atomic_path
from rtsearch.decode import IMAGE_EXTENSIONS
from rtsearch.errors import RtsearchError

MARKER = "GALLERY.json"
STAMPS_PACKAGE = "tuxpaint-stamps-default"
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
        return f"{self.count} images from {', '.join(self.packages)} ({self.source}) in {self.root}"


def default_dir() -> Path:
    return Path(platformdirs.user_data_dir("rtsearch")) / "gallery"


def read_marker(root: Path) -> Gallery | None:
    try:
        raw = json.loads((root / MARKER).read_text())
        return Gallery(root, raw["source"], tuple(raw["packages"]), int(raw["count"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ensure_gallery(root: Path | None = None, *, refetch: bool = False, log: Log = print) -> Gallery:
    """The gallery at ``root`` (default: the user data dir), fetching it only if missing."""
    root = Path(root) if root is not None else default_dir()
    found = read_marker(root)
    if found is not None and not refetch:
        return found
    if found is None and (root.is_file() or any(p.is_file() for p in root.rglob("*"))):
        # Never ours: a fetch only ever renames a finished folder (marker inside) into place.
        raise RtsearchError(f"{root}: exists and is not an rtsearch gallery; choose another")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".gallery-", dir=root.parent))
    try:
        source, packages = _fill(staging, log)
        count = count_images(staging)
        if count == 0:
            raise RtsearchError(f"{root}: no gallery images could be obtained")
        gallery = Gallery(root, source, tuple(packages), count)
        _write_marker(staging, gallery)
        # Swap the finished folder in whole, so an interrupted fetch never looks complete.
        if root.exists():
            shutil.rmtree(root)
        staging.rename(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return gallery


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
    """Download and unpack the packages; returns those that gave images."""
    got = []
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        for package, take in (
            (STAMPS_PACKAGE, _take_stamps),
            (PHOTO_PACKAGES[0], _take_wallpapers),
            (PHOTO_PACKAGES[1], _take_opencv),
        ):
            tree = Path(tmp) / package
            try:
                unpack_package(package, tree, log)
            except RtsearchError as exc:
                log(f"gallery: {exc}")
                continue
            if take(tree, dest) > 0:
                got.append(package)
            shutil.rmtree(tree, ignore_errors=True)  # sounds and docs: hundreds of MB
    return got


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
    try:
        done = subprocess.run(
            cmd, cwd=cwd, capture_output=True, text=True, timeout=APT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RtsearchError(f"{what}: {cmd[0]} failed ({exc})") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise RtsearchError(f"{what}: {' '.join(cmd[:2])} failed: {last}")


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
        files = [f for f in sorted(folder.rglob("*")) if f.suffix.lower() in IMAGE_EXTENSIONS]
        for f in files:
            target = dest / package / f.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)
        if files:
            got.append(package)
    return got
