from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fakes import write_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny.onnx")


@pytest.fixture(scope="session")
def default_model() -> Path:
    """The real default model (EfficientNet-Lite0), exported on first use if missing."""
    from rtsearch.models import resolve_model

    return resolve_model("efficientnet-lite0")


@pytest.fixture
def run_cli(monkeypatch):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    from rtsearch.cli import main

    def run(*args: str, capsys=None) -> int:
        return main([str(a) for a in args])

    return run


@pytest.fixture(autouse=True)
def _quiet_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "2"))
