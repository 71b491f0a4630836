"""What an export checks before a model file is written: room for it beside the
destination, and features that tell photos apart (weights of zeros, or a checkpoint's
untrained copy, give every picture the same vector, and an index of them ranks at random)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from rtsearch.errors import RtsearchError, size_text
from rtsearch.models import ModelInfo

# Features whose spread over the test photos is at most this fraction of their size are
# taken for one vector: trained networks differ by tens of percent between those photos.
SAME_FEATURES = 1e-4


def check_room(out: Path, need: int, what: str) -> None:
    """Refuse before the work when the disk beside ``out`` has less than ``need`` bytes free
    (an export that runs out of room half-way leaves a file onnxruntime cannot parse)."""
    from rtsearch.atomic import check_writable, remove_abandoned_temps

    folder = Path(os.path.realpath(out)).parent
    if folder.is_dir():
        remove_abandoned_temps(out)  # a killed export's copy holds room this one needs
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # made by the write
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # the write itself will say what is wrong
    if free < need:
        check_writable(out, "the model")  # a read-only mount says 0 free: why, first
        raise RtsearchError(
            f"{out}: not enough room to export {what}: it needs about {size_text(need)} free on "
            f"that disk, {size_text(free)} is"
        )


UNTRAINED = "weights untrained, zeroed or damaged; a checkpoint may hold another set of them"


def check_features(model: Path, info: ModelInfo, out: Path, why: str = UNTRAINED) -> None:
    """Run ``model`` on scikit-image's held-out photos; refuse features that are not finite,
    all zero, or the same for every photo. ``out`` is the file the error names; ``why``,
    what such features come from."""
    from rtsearch.export.quantize import (
        HELD_OUT_SAMPLES,
        cpu_session,
        preprocess_each,
        sample_image,
    )

    batch = np.concatenate(preprocess_each([sample_image(n) for n in HELD_OUT_SAMPLES], info))
    features = cpu_session(model).run([info.feature_output], {info.input_name: batch})[0]
    features = features.astype(np.float64)
    n = len(features)
    if not np.isfinite(features).all():
        problem = "NaN or infinite features"
    elif not features.any():
        problem = f"all-zero features for each of {n} test photos"
    elif np.abs(features - features[0]).max() <= SAME_FEATURES * np.abs(features).max():
        problem = f"the same features for each of {n} test photos"
    else:
        return
    raise RtsearchError(f"{out}: not written: the model gives {problem} ({why})")
