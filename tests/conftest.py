from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fakes import write_tiny_model  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _state_of_the_session(tmp_path_factory):
    """The viewer keeps the index it shows and its settings for the next run
    (rtsearch/viewer/memory.py) in the user state folder: the tests' viewers keep theirs in
    a folder of the run's own."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
        # the tests' viewers are drawn at UI scale 1 whatever the desktop running them
        # says (rtsearch/viewer/uiscale.py; their own virtual displays say nothing)
        for name in ("GDK_SCALE", "GDK_DPI_SCALE", "QT_SCALE_FACTOR"):
            mp.delenv(name, raising=False)
        yield


@pytest.fixture(autouse=True)
def _state_of_the_test(tmp_path_factory, monkeypatch):
    """... and each test in one of its own: a viewer started without an index opens none,
    and with the default settings, not another test's."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny.onnx")


@pytest.fixture(scope="session")
def default_model() -> Path:
    """The real default model (EfficientNet-Lite0), exported on first use if missing."""
    from rtsearch.models import resolve_model

    return resolve_model("efficientnet-lite0")
