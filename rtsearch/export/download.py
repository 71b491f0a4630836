"""Fetch the official torchvision VGG16 weights into the user's cache, checked by hash."""

from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import platformdirs

from rtsearch.errors import RtsearchError
from rtsearch.export.onnx_build import sha256_file as _sha256

VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
VGG16_FILE = "vgg16-397923af.pth"
VGG16_SHA256_PREFIX = "397923af"  # torchvision names its files after their hash's prefix


def weights_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("rtsearch")) / "weights"


def _torch_hub_copy() -> Path:
    """Where torchvision itself would have cached the file, so we reuse it if present."""
    torch_home = os.environ.get("TORCH_HOME") or Path.home() / ".cache" / "torch"
    return Path(torch_home) / "hub" / "checkpoints" / VGG16_FILE


def fetch_vgg16(log: Callable[[str], None] = print, url: str = VGG16_URL) -> Path:
    """Path of a verified vgg16-397923af.pth: cached, torch hub's copy, or downloaded."""
    dest = weights_cache_dir() / VGG16_FILE
    wrong = ""  # what is at dest when it is not the file (a cut-short download)
    for candidate in (dest, _torch_hub_copy()):
        if not candidate.is_file():
            continue
        digest = _sha256(candidate)
        if digest.startswith(VGG16_SHA256_PREFIX):
            log(f"vgg16: using cached weights {candidate}")
            return candidate
        log(
            f"vgg16: {candidate} has sha256 {digest[:8]}..., not {VGG16_SHA256_PREFIX}... "
            "(damaged or another file): not used"
        )
        if candidate == dest:
            wrong = f" (the file there now has sha256 {digest[:8]}...: damaged or another file)"
    dest.parent.mkdir(parents=True, exist_ok=True)
    log(f"vgg16: downloading {url} (528 MiB) to {dest}")
    fd, tmp = tempfile.mkstemp(prefix=f".{VGG16_FILE}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=30) as response:
            while block := response.read(1 << 20):
                f.write(block)
        digest = _sha256(Path(tmp))
        if not digest.startswith(VGG16_SHA256_PREFIX):
            raise RtsearchError(
                f"{url}: downloaded file has sha256 {digest[:8]}..., expected "
                f"{VGG16_SHA256_PREFIX}...; not kept"
            )
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise RtsearchError(
            f"cannot download {url} ({reason}); fetch it by other means and put it at "
            f"{dest}{wrong}, or pass --weights FILE"
        ) from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest
