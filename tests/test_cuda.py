"""The CUDA execution provider path: runs where onnxruntime-gpu sees a GPU, skipped elsewhere
(tools/gpu_check.sh runs it with the GPU benchmark; README's GPU section says how to install).

The default provider list puts CUDA first; its features must match the CPU's.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from fakes import make_photo_gallery

from rtsearch.decode import load_rgb
from rtsearch.extractor import Extractor

needs_cuda = pytest.mark.skipif(
    "CUDAExecutionProvider" not in ort.get_available_providers(),
    reason="no CUDA execution provider (needs onnxruntime-gpu and a GPU)",
)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@needs_cuda
def test_cuda_features_match_cpu(tmp_path, default_model):
    images = [load_rgb(p) for p in make_photo_gallery(tmp_path, 24)]
    gpu = Extractor(default_model)  # default providers: CUDA first when available
    cpu = Extractor(default_model, providers=["CPUExecutionProvider"])
    assert (gpu.provider, cpu.provider) == ("CUDA", "CPU")
    assert gpu.bound  # CUDA runs through IO binding
    a, b = gpu(images), cpu(images)
    cos = _cosines(a, b)
    assert cos.min() >= 0.999, cos
    # the plain session.run path agrees with the bound one, batch size changes included
    plain = Extractor(default_model, bind=False)
    assert _cosines(plain(images), a).min() >= 0.9999
    assert _cosines(gpu(images[:5]), a[:5]).min() >= 0.9999


@needs_cuda
def test_cuda_analyze_matches_cpu(tmp_path, default_model):
    """`analyze` end to end on CUDA (its GPU batch size) gives the CPU's index."""
    from rtsearch.analyze import Settings, analyze
    from rtsearch.extraction import GPU_BATCH, batch_for

    folder = tmp_path / "photos"
    make_photo_gallery(folder, 70)
    gpu = Extractor(default_model, streams=0)
    assert gpu.streams == 1 and batch_for(gpu) == GPU_BATCH
    cpu = Extractor(default_model, providers=["CPUExecutionProvider"], streams=0)
    settings = Settings(keep_features=True)
    a = analyze(folder, tmp_path / "gpu.dat", gpu, settings).index
    b = analyze(folder, tmp_path / "cpu.dat", cpu, settings).index
    assert a is not None and b is not None and a.paths == b.paths and len(a.paths) == 70
    assert _cosines(a.features, b.features).min() >= 0.999


def test_shadowed_gpu_package_is_reported(monkeypatch, capsys):
    """Both onnxruntime packages installed, CPU build winning: one line says how to fix it
    (runs everywhere: the packages' presence is faked)."""
    from importlib import metadata

    from rtsearch import extractor

    monkeypatch.setattr(metadata, "version", lambda name: "1.0")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    extractor._warn_shadowed_gpu_package.cache_clear()
    assert extractor.default_providers() == ["CPUExecutionProvider"]
    extractor.default_providers()  # said once per process
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip uninstall -y onnxruntime" in err
    extractor._warn_shadowed_gpu_package.cache_clear()
