#!/usr/bin/env python3
"""Export a backbone to an rtsearch ONNX model; see --help. Works from any directory.

python tools/export_onnx.py efficientnet-lite0 [--int8]
python tools/export_onnx.py vgg16 --weights vgg16-397923af.pth [--int8] [--calib DIR]
python tools/export_onnx.py vgg16 --download
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import rtsearch  # noqa: F401  (installed, or already on the path)
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rtsearch.export.cli import main

if __name__ == "__main__":
    sys.exit(main())
