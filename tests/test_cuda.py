"""The CUDA execution provider path: runs where onnxruntime-gpu sees a GPU, skipped elsewhere.

`pip install -e '.[gpu]'` installs onnxruntime-gpu; the default provider list then puts CUDA
first, and its features must match the CPU's.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from fakes import make_photo_gallery

from rtsearch.decode import load_rgb
from rtsearch.extractor import Extractor

pytestmark = pytest.mark.skipif(
    "CUDAExecutionProvider" not in ort.get_available_providers(),
    reason="no CUDA execution provider (needs onnxruntime-gpu and a GPU)",
)


def test_cuda_features_match_cpu(tmp_path, default_model):
    images = [load_rgb(p) for p in make_photo_gallery(tmp_path, 24)]
    gpu = Extractor(default_model)  # default providers: CUDA first when available
    cpu = Extractor(default_model, providers=["CPUExecutionProvider"])
    assert (gpu.provider, cpu.provider) == ("CUDA", "CPU")
    a, b = gpu(images), cpu(images)
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.min() >= 0.999, cos
